package lease_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

const appA = "wx00000000000000a1"

// holder is one job of the platform that runs under a lease.
type holder struct {
	name string
	// endpoint is the WeChat call the job makes under its lease.
	endpoint string
	// tokenLifetime is the simulator's token lifetime (0: WeChat's 7200 s).
	tokenLifetime time.Duration
	// ttl is how long a dead holder blocks the job: an eighth of the
	// lifetime of what the job renews, at most 30 s.
	ttl time.Duration
	// prepare brings the platform to where the job is due.
	prepare func(p *componenttest.Platform)
	// start runs the job; it blocks while WeChat holds the call back.
	start func(ctx context.Context, p *componenttest.Platform) error
	// lease names the job's lease, given the request WeChat received.
	lease func(p *componenttest.Platform, body []byte) string
}

var holders = []holder{
	{
		name:     "component token",
		endpoint: "/cgi-bin/component/api_component_token", tokenLifetime: 40 * time.Second, ttl: 5 * time.Second,
		prepare: func(p *componenttest.Platform) {
			p.PushTicket()                            // the first token
			p.Clock.Advance(40 * time.Second * 3 / 4) // due
		},
		start: func(ctx context.Context, p *componenttest.Platform) error { return p.Credentials.Tick(ctx) },
		lease: func(p *componenttest.Platform, _ []byte) string { return "component-token:" + p.AppID },
	},
	{
		name:     "authorizer token",
		endpoint: "/cgi-bin/component/api_authorizer_token", tokenLifetime: 40 * time.Second, ttl: 5 * time.Second,
		prepare: func(p *componenttest.Platform) {
			p.PushTicket()
			p.NewAccount(appA)
			p.Authorize(p.NewTenant("acme"), appA)
		},
		start: func(ctx context.Context, p *componenttest.Platform) error {
			_, err := p.Authorizers.ForceRefresh(ctx, appA)
			return err
		},
		lease: func(p *componenttest.Platform, _ []byte) string { return "authorizer:" + p.AppID + ":" + appA },
	},
	{
		name:     "authorization code",
		endpoint: "/cgi-bin/component/api_query_auth", ttl: 30 * time.Second, // a 600 s auth_code: the ceiling
		prepare: func(p *componenttest.Platform) {
			p.PushTicket()
			p.NewAccount(appA)
		},
		start: func(ctx context.Context, p *componenttest.Platform) error {
			_, err := p.Sim.Authorize(ctx, appA, "") // the event's exchange holds the lease
			return err
		},
		lease: func(_ *componenttest.Platform, body []byte) string {
			var req struct {
				Code string `json:"authorization_code"`
			}
			_ = json.Unmarshal(body, &req)
			sum := sha256.Sum256([]byte(req.Code))
			return "authcode:" + hex.EncodeToString(sum[:16])
		},
	},
}

// TestDeadHolderBlocksTheJobForItsTTLOnly: a replica that dies while doing
// a job under its lease leaves the lease behind. Until the lease runs out
// no other replica may take the job over; once it has (an eighth of a
// short token lifetime, as the 30 s lease is next to WeChat's 7200 s, so
// the token cannot expire while nobody may renew it; 30 s for a 600 s
// authorization code) another replica must be able to take it at once.
func TestDeadHolderBlocksTheJobForItsTTLOnly(t *testing.T) {
	t.Parallel()
	for _, h := range holders {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			storetest.ForEachDialect(t, func(t *testing.T, d store.Dialect) { deadHolder(t, d, h) })
		})
	}
}

func deadHolder(t *testing.T, d store.Dialect, h holder) {
	var armed atomic.Bool
	arrived, release := make(chan []byte, 1), make(chan struct{})
	p := componenttest.New(t, componenttest.Options{
		Dialect: d, TokenLifetime: h.tokenLifetime,
		SimMiddleware: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == h.endpoint && armed.CompareAndSwap(true, false) {
					body, _ := io.ReadAll(r.Body)
					r.Body = io.NopCloser(bytes.NewReader(body))
					arrived <- body
					<-release // the holder "dies" here while holding its lease
				}
				next.ServeHTTP(w, r)
			})
		},
	})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the simulator's server closes
	ctx := p.Ctx()
	h.prepare(p)
	armed.Store(true)
	done := make(chan error, 1)
	go func() { done <- h.start(ctx, p) }()
	var body []byte
	select {
	case body = <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the job never reached WeChat")
	}
	name, ttl := h.lease(p, body), h.ttl
	try := func() bool {
		t.Helper()
		got, err := p.Store.TryLease(ctx, name, "another-replica", time.Second)
		if err != nil {
			t.Fatalf("TryLease %s: %v", name, err)
		}
		return got
	}
	t.Run("held while the job runs", func(t *testing.T) {
		if try() {
			t.Fatalf("another replica took %s during the job", name)
		}
	})
	t.Run("still held just before its TTL", func(t *testing.T) {
		p.Clock.Advance(ttl - time.Second)
		if try() {
			t.Fatalf("%s ran out before %v", name, ttl)
		}
	})
	t.Run("free once its TTL is over", func(t *testing.T) {
		p.Clock.Advance(time.Second + time.Millisecond)
		if !try() {
			t.Fatalf("a dead holder's %s still blocks the job after %v", name, ttl)
		}
	})
	free()
	<-done
}
