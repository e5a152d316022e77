package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/wxgate/wxgate/internal/webhook"
)

// demoHook is the demo's own webhook receiver: what a tenant's system
// would run. It verifies each delivery's signature, prints one line per
// event and lists the last events at its URL.
type demoHook struct {
	out io.Writer

	mu     sync.Mutex
	secret string
	events []demoHookEvent
}

type demoHookEvent struct {
	ReceivedAt string          `json:"received_at"`
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	AppID      string          `json:"appid,omitempty"`
	Verified   bool            `json:"signature_verified"`
	Data       json.RawMessage `json:"data"`
}

// demoHookKeep is how many events the receiver lists.
const demoHookKeep = 100

// SetSecret gives the receiver the webhook's signing secret.
func (h *demoHook) SetSecret(s string) {
	h.mu.Lock()
	h.secret = s
	h.mu.Unlock()
}

// ServeHTTP receives deliveries (POST) and lists them (GET).
func (h *demoHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		h.mu.Lock()
		list := append([]demoHookEvent(nil), h.events...)
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"events": list})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var ev demoHookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	ev.Verified = webhook.Verify(h.secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), 5*time.Minute)
	ev.ReceivedAt = time.Now().UTC().Format(time.RFC3339)
	h.events = append(h.events, ev)
	if len(h.events) > demoHookKeep {
		h.events = h.events[len(h.events)-demoHookKeep:]
	}
	h.mu.Unlock()
	if !ev.Verified {
		// A real receiver refuses what it cannot verify; the gateway retries.
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	fmt.Fprintf(h.out, "webhook received: %-34s %-20s %s (signature verified)\n", ev.Type, ev.AppID, ev.ID)
	w.WriteHeader(http.StatusNoContent)
}
