package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/webhook"
)

// hookEvent is one delivery a webhook receiver got, as sent.
type hookEvent struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt string          `json:"created_at"`
	AppID     string          `json:"appid"`
	Data      json.RawMessage `json:"data"`
	// Header and Signature are the Wxgate-Event-Id and Wxgate-Signature
	// headers; Body the raw body.
	Header, Signature string
	Body              []byte
}

// hookReceiver is a tenant's webhook receiver on loopback. fail, when set,
// answers with a status of its choosing (0: 200).
type hookReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []hookEvent
	fail func(ev hookEvent) int
}

func newHookReceiver(t testing.TB) *hookReceiver {
	r := &hookReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ev hookEvent
		_ = json.Unmarshal(body, &ev)
		ev.Header, ev.Signature, ev.Body = req.Header.Get(webhook.EventIDHeader), req.Header.Get(webhook.SignatureHeader), body
		r.mu.Lock()
		fail := r.fail
		r.mu.Unlock()
		if fail != nil {
			if status := fail(ev); status != 0 {
				w.WriteHeader(status)
				return
			}
		}
		r.mu.Lock()
		r.got = append(r.got, ev)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

// Events returns what the receiver accepted so far.
func (r *hookReceiver) Events() []hookEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookEvent(nil), r.got...)
}

// waitFor waits until an event of type typ about appid arrived and returns it.
func (r *hookReceiver) waitFor(t testing.TB, typ, appid string) hookEvent {
	t.Helper()
	var found hookEvent
	eventually(t, 15*time.Second, typ+" for "+appid, func() bool {
		for _, ev := range r.Events() {
			if ev.Type == typ && ev.AppID == appid {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// putWebhook registers url as the webhook of the key's tenant and returns its secret.
func (st *stack) putWebhook(key, url string, events []string) string {
	st.t.Helper()
	var w struct {
		URL, Secret string
		Events      []string
	}
	st.must(http.MethodPut, "/v1/webhook", key, map[string]any{"url": url, "events": events}, &w, 200)
	if !strings.HasPrefix(w.Secret, "whsec_") || w.URL != url {
		st.t.Fatalf("PUT /v1/webhook = %+v", w)
	}
	return w.Secret
}

// TestWebhookEventsArriveSigned: each event type reaches the tenant's
// receiver on loopback with a signature that verifies, carrying the
// account's state and no token; another tenant's receiver gets nothing of
// it; deliveries, rotation and the test event work through the API.
func TestWebhookEventsArriveSigned(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{Env: func(env map[string]string) { env["WXGATE_WEBHOOK_ALLOW_PRIVATE"] = "true" }})
	ctx := context.Background()
	recv, other := newHookReceiver(t), newHookReceiver(t)
	const appid = "wx5e0000000000a001"
	var secret, globexKey string
	var tokens []string // every token the account had, none may be in an event

	st.step(t, "register webhooks for acme and for another tenant", func(st *stack) {
		secret = st.putWebhook(st.Key, recv.URL+"/hooks/wx", []string{"authorizer.*", "message.received"})
		var w map[string]any
		st.must(http.MethodGet, "/v1/webhook", st.Key, nil, &w, 200)
		if _, ok := w["secret"]; ok {
			st.t.Fatalf("GET /v1/webhook shows the secret: %v", w)
		}
		var again map[string]any
		st.must(http.MethodPut, "/v1/webhook", st.Key, map[string]any{"url": recv.URL + "/hooks/wx", "events": []string{"*"}}, &again, 200)
		if _, ok := again["secret"]; ok {
			st.t.Fatal("changing the webhook showed the secret again")
		}
		var tn struct{ ID string }
		st.must(http.MethodPost, "/admin/tenants", testAdminToken, map[string]any{"name": "globex"}, &tn, 201)
		var k struct{ Key string }
		st.must(http.MethodPost, "/admin/tenants/"+tn.ID+"/keys", testAdminToken, nil, &k, 201)
		st.putWebhook(k.Key, other.URL, nil)
		globexKey = k.Key
	})
	st.step(t, "authorized through acme's session", func(st *stack) {
		if err := st.Sim.CreateAccount(sim.AccountSpec{AppID: appid, Followers: 3, PermissionSets: []int{2}}); err != nil {
			st.t.Fatal(err)
		}
		var auth struct{ URL string }
		st.must(http.MethodPost, "/v1/authorizations", st.Key, map[string]any{"return_url": "https://tenant.example/back"}, &auth, 201)
		u, _ := url.Parse(auth.URL)
		if _, err := st.Sim.Authorize(ctx, appid, u.Query().Get("pre_auth_code")); err != nil {
			st.t.Fatal(err)
		}
		tokens = append(tokens, st.Sim.CurrentAccessToken(appid))
		ev := recv.waitFor(st.t, "authorizer.authorized", appid)
		var data struct {
			AppID, Status  string
			PermissionSets []int `json:"permission_sets"`
		}
		if err := json.Unmarshal(ev.Data, &data); err != nil || data.AppID != appid || data.Status != "authorized" || len(data.PermissionSets) != 1 {
			st.t.Fatalf("authorized data = %s", ev.Data)
		}
	})
	st.step(t, "a follower's message, pushed twice by WeChat: one message.received", func(st *stack) {
		ds, err := st.Sim.PushMessage(ctx, appid, sim.FollowerMessage{Content: "hello from a follower", Copies: 2})
		if err != nil {
			st.t.Fatal(err)
		}
		for _, d := range ds {
			if d.Body != "success" {
				st.t.Fatalf("the message URL answered %d %q (%s), want success", d.Status, d.Body, d.Problem)
			}
		}
		ev := recv.waitFor(st.t, "message.received", appid)
		if !strings.Contains(string(ev.Data), `"content":"hello from a follower"`) || !strings.Contains(string(ev.Data), `"msg_type":"text"`) {
			st.t.Fatalf("message.received data = %s", ev.Data)
		}
	})
	st.step(t, "another tenant authorizes the account: acme is told, the binding waits", func(st *stack) {
		var auth struct{ URL string }
		st.must(http.MethodPost, "/v1/authorizations", globexKey, map[string]any{"return_url": "https://tenant.example/back"}, &auth, 201)
		u, _ := url.Parse(auth.URL)
		if _, err := st.Sim.Authorize(ctx, appid, u.Query().Get("pre_auth_code")); err != nil {
			st.t.Fatal(err)
		}
		ev := recv.waitFor(st.t, "authorizer.binding_requested", appid)
		if !strings.Contains(string(ev.Data), `"pending":true`) || strings.Contains(string(ev.Data), "tn_") {
			st.t.Fatalf("binding_requested data = %s, want pending and no tenant id", ev.Data)
		}
		tokens = append(tokens, st.Sim.CurrentAccessToken(appid))
	})
	st.step(t, "permission sets change: updated, with the new sets", func(st *stack) {
		if err := st.Sim.SetPermissionSets(ctx, appid, []int{1, 2}, true); err != nil {
			st.t.Fatal(err)
		}
		tokens = append(tokens, st.Sim.CurrentAccessToken(appid))
		ev := recv.waitFor(st.t, "authorizer.updated", appid)
		if !strings.Contains(string(ev.Data), `"permission_sets":[1,2]`) {
			st.t.Fatalf("updated data = %s", ev.Data)
		}
	})
	st.step(t, "the refresh token is refused (61023): needs_reauthorization", func(st *stack) {
		if err := st.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointAuthorizerToken, AppID: appid, Kind: "errcode", Errcode: 61023}); err != nil {
			st.t.Fatal(err)
		}
		st.call(http.MethodPost, "/admin/authorizers/"+appid+"/refresh", testAdminToken, nil, nil)
		st.Sim.ClearFaults()
		recv.waitFor(st.t, "authorizer.needs_reauthorization", appid)
	})
	st.step(t, "the merchant leaves: unauthorized", func(st *stack) {
		if err := st.Sim.Unauthorize(ctx, appid); err != nil {
			st.t.Fatal(err)
		}
		ev := recv.waitFor(st.t, "authorizer.unauthorized", appid)
		if !strings.Contains(string(ev.Data), `"status":"unauthorized"`) {
			st.t.Fatalf("unauthorized data = %s", ev.Data)
		}
	})
	st.step(t, "a test event", func(st *stack) {
		st.must(http.MethodPost, "/v1/webhook/test", st.Key, nil, nil, 202)
		recv.waitFor(st.t, "webhook.test", "")
	})
	st.step(t, "every event is signed, carries its id in the header, and no token", func(st *stack) {
		for _, ev := range recv.Events() {
			if !webhook.Verify(secret, ev.Signature, ev.Body, time.Now(), time.Minute) {
				st.t.Fatalf("%s: signature %q does not verify", ev.Type, ev.Signature)
			}
			if ev.Header != ev.ID || !strings.HasPrefix(ev.ID, "evt_") {
				st.t.Fatalf("%s: header id %q, body id %q", ev.Type, ev.Header, ev.ID)
			}
			for _, tok := range tokens {
				if tok != "" && strings.Contains(string(ev.Body), tok) {
					st.t.Fatalf("%s carries a token: %s", ev.Type, ev.Body)
				}
			}
		}
	})
	st.step(t, "the deliveries read delivered, newest first", func(st *stack) {
		var out struct {
			Deliveries []struct {
				ID, Type, Status string
				EventID          string `json:"event_id"`
				Attempts         int
			}
		}
		st.must(http.MethodGet, "/v1/webhook/deliveries?status=delivered&limit=10", st.Key, nil, &out, 200)
		// authorized, message.received (once, though pushed twice),
		// binding_requested, updated, needs_reauthorization, unauthorized,
		// webhook.test.
		if len(out.Deliveries) != 7 || out.Deliveries[0].Type != "webhook.test" || out.Deliveries[0].Attempts != 1 {
			st.t.Fatalf("deliveries = %+v, want 7 delivered, the test event first", out.Deliveries)
		}
		st.must(http.MethodGet, "/v1/webhook/deliveries?status=bogus", st.Key, nil, nil, 400)
		st.must(http.MethodPost, "/v1/webhook/deliveries/"+out.Deliveries[1].ID+"/redeliver", st.Key, nil, nil, 202)
		st.must(http.MethodPost, "/v1/webhook/deliveries/dlv_nosuch/redeliver", st.Key, nil, nil, 404)
		eventually(st.t, 10*time.Second, "the redelivered event", func() bool {
			n := 0
			for _, ev := range recv.Events() {
				if ev.ID == out.Deliveries[1].EventID {
					n++
				}
			}
			return n == 2
		})
	})
	st.step(t, "rotation: the old secret signs beside the new one", func(st *stack) {
		var rot struct{ Secret string }
		st.must(http.MethodPost, "/v1/webhook/rotate-secret", st.Key, nil, &rot, 200)
		if !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == secret {
			st.t.Fatalf("rotated secret %q", rot.Secret)
		}
		before := len(recv.Events())
		st.must(http.MethodPost, "/v1/webhook/test", st.Key, nil, nil, 202)
		eventually(st.t, 10*time.Second, "the test event after rotation", func() bool { return len(recv.Events()) > before })
		ev := recv.Events()[before]
		for _, key := range []string{secret, rot.Secret} {
			if !webhook.Verify(key, ev.Signature, ev.Body, time.Now(), time.Minute) {
				st.t.Fatalf("signature %q does not verify with one of the live secrets", ev.Signature)
			}
		}
	})
	st.step(t, "a second rotation during the grace is refused and keeps both secrets", func(st *stack) {
		var e struct {
			Error struct{ Code, Message string }
		}
		st.must(http.MethodPost, "/v1/webhook/rotate-secret", st.Key, nil, &e, 409)
		if e.Error.Code != "conflict" || !strings.Contains(e.Error.Message, "rotation is in progress until") {
			st.t.Fatalf("second rotation answered %+v", e)
		}
		before := len(recv.Events())
		st.must(http.MethodPost, "/v1/webhook/test", st.Key, nil, nil, 202)
		eventually(st.t, 10*time.Second, "the test event after the refused rotation", func() bool { return len(recv.Events()) > before })
		if ev := recv.Events()[before]; !webhook.Verify(secret, ev.Signature, ev.Body, time.Now(), time.Minute) {
			st.t.Fatalf("the original secret no longer signs after a refused rotation: %q", ev.Signature)
		}
	})
	st.step(t, "the other tenant received nothing of acme's account", func(st *stack) {
		if got := other.Events(); len(got) != 0 {
			st.t.Fatalf("globex received %d events: %s", len(got), got[0].Body)
		}
	})
	st.step(t, "delete: the webhook is gone", func(st *stack) {
		st.must(http.MethodDelete, "/v1/webhook", st.Key, nil, nil, 204)
		st.must(http.MethodGet, "/v1/webhook", st.Key, nil, nil, 404)
		st.must(http.MethodPost, "/v1/webhook/test", st.Key, nil, nil, 404)
	})
}

// TestWebhookPrivateTargetRefusedByDefault: without the setting, a
// webhook on loopback (or over http) cannot be registered.
func TestWebhookPrivateTargetRefusedByDefault(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{Dialect: "sqlite"})
	recv := newHookReceiver(t)
	https := strings.Replace(recv.URL, "http://", "https://", 1)
	for _, u := range []string{recv.URL, https, "https://localhost/hook", "https://169.254.169.254/"} {
		st.must(http.MethodPut, "/v1/webhook", st.Key, map[string]any{"url": u}, nil, 400)
	}
}

// step runs one named step of a journey over the stack, its helpers
// reporting to the step (journey.Step).
func (st *stack) step(t *testing.T, name string, fn func(st *stack)) {
	t.Helper()
	journey.Step(t, name, func(t *testing.T) { fn(st.in(t)) })
}

// TestDemoShowsWebhookEvents: the demo registers a webhook to its own
// receiver, which gets each demo account's authorizer.authorized event with
// a signature it verifies, prints them, and lists them at its URL.
func TestDemoShowsWebhookEvents(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	eventually(t, 20*time.Second, "three authorized events printed", func() bool {
		return strings.Count(d.Out.String(), "webhook received: authorizer.authorized") == 3
	})
	resp, err := http.Get(d.Hook + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Events []struct {
			Type     string
			Verified bool `json:"signature_verified"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Events) < 3 {
		t.Fatalf("receiver lists %+v, %v", list, err)
	}
	for _, ev := range list.Events {
		if !ev.Verified {
			t.Fatalf("an event's signature did not verify: %+v", list.Events)
		}
	}
}
