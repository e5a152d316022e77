package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/webhook"
)

const comp = "wx0000000000000001"

// received is one request a receiver got.
type received struct {
	EventID, Signature string
	Body               []byte
}

// receiver is a webhook receiver on loopback that answers the statuses of
// answers in turn (then 200) and records what it got.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []received
	answers []int
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	r := &receiver{answers: answers}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Get(webhook.EventIDHeader), req.Header.Get(webhook.SignatureHeader), body})
		status := http.StatusOK
		if len(r.answers) > 0 {
			status, r.answers = r.answers[0], r.answers[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) Got() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// fixture is a store with a tenant, a webhook, and a dispatcher over them
// driven by hand on an injected clock.
type fixture struct {
	st     *store.Store
	clock  *storetest.Clock
	svc    *webhook.Service
	disp   *webhook.Dispatcher
	tenant string
	secret string
}

func newFixture(t *testing.T, allowPrivate bool, url string) *fixture {
	t.Helper()
	clock := storetest.NewClock()
	st := storetest.Open(t, store.Postgres, clock.Now)
	tn, err := st.CreateTenant(context.Background(), comp, "acme")
	if err != nil {
		t.Fatal(err)
	}
	svc := webhook.New(webhook.Options{Store: st, ComponentAppID: comp, AllowPrivate: true, Now: clock.Now})
	w, _, err := svc.Put(context.Background(), tn.ID, webhook.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	disp := webhook.NewDispatcher(webhook.DispatcherOptions{Queue: st, Owner: "r1", AllowPrivate: allowPrivate,
		Timeout: 2 * time.Second, Now: clock.Now, Metrics: obs.NewMetrics()})
	return &fixture{st: st, clock: clock, svc: svc, disp: disp, tenant: tn.ID, secret: w.Secret.Reveal()}
}

// sendDue claims and sends what is due now and waits for the attempts.
func (f *fixture) sendDue(t *testing.T) int {
	t.Helper()
	var wg sync.WaitGroup
	n := f.disp.ClaimAndSend(context.Background(), context.Background(), &wg)
	wg.Wait()
	return n
}

func (f *fixture) delivery(t *testing.T) store.WebhookDelivery {
	t.Helper()
	list, err := f.svc.Deliveries(context.Background(), f.tenant, "", 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("deliveries = %+v, %v; want one", list, err)
	}
	return list[0]
}

// TestRetriesKeepTheEventID: a receiver failing twice gets the same event,
// signed, a third time, after the documented delays; the delivery then
// reads delivered with 3 attempts.
func TestRetriesKeepTheEventID(t *testing.T) {
	t.Parallel()
	recv := newReceiver(t, 500, 503)
	f := newFixture(t, true, recv.URL)
	ctx := context.Background()
	if _, err := f.svc.Test(ctx, f.tenant); err != nil {
		t.Fatal(err)
	}
	t.Run("first attempt fails: retried after about 5 s", func(t *testing.T) {
		if n := f.sendDue(t); n != 1 {
			t.Fatalf("sent %d, want 1", n)
		}
		d := f.delivery(t)
		if d.Status != store.DeliveryPending || d.Attempts != 1 || d.LastStatus != 500 || !d.NextAttemptAt.Equal(f.clock.Now().Add(5*time.Second)) {
			t.Fatalf("after 1 failure: %+v", d)
		}
	})
	t.Run("nothing is sent before the delay", func(t *testing.T) {
		f.clock.Advance(4 * time.Second)
		if n := f.sendDue(t); n != 0 {
			t.Fatalf("sent %d early", n)
		}
	})
	t.Run("second attempt fails: retried after 30 s", func(t *testing.T) {
		f.clock.Advance(time.Second)
		if n := f.sendDue(t); n != 1 {
			t.Fatalf("sent %d, want 1", n)
		}
		if d := f.delivery(t); d.Attempts != 2 || !d.NextAttemptAt.Equal(f.clock.Now().Add(30*time.Second)) {
			t.Fatalf("after 2 failures: %+v", d)
		}
	})
	t.Run("third attempt delivers the same event", func(t *testing.T) {
		f.clock.Advance(30 * time.Second)
		if n := f.sendDue(t); n != 1 {
			t.Fatalf("sent %d, want 1", n)
		}
		d := f.delivery(t)
		if d.Status != store.DeliveryDelivered || d.Attempts != 3 || d.DeliveredAt == nil {
			t.Fatalf("got %+v, want delivered after 3 attempts", d)
		}
		got := recv.Got()
		if len(got) != 3 {
			t.Fatalf("receiver got %d requests, want 3", len(got))
		}
		for i, r := range got {
			var body struct{ ID, Type string }
			if err := json.Unmarshal(r.Body, &body); err != nil || body.ID != d.EventID || r.EventID != d.EventID || body.Type != store.EventWebhookTest {
				t.Fatalf("request %d: header id %q, body %s; want event %s", i, r.EventID, r.Body, d.EventID)
			}
			if string(r.Body) != string(got[0].Body) {
				t.Fatalf("request %d's body differs from the first", i)
			}
			if !webhook.Verify(f.secret, r.Signature, r.Body, f.clock.Now(), time.Hour) {
				t.Fatalf("request %d: signature %q does not verify", i, r.Signature)
			}
		}
	})
}

// TestGivesUpAfter24Hours: a receiver that never answers 2xx leaves the
// delivery failed once 24 h have passed, and redeliver queues it again.
func TestGivesUpAfter24Hours(t *testing.T) {
	t.Parallel()
	answers := make([]int, 100)
	for i := range answers {
		answers[i] = 502
	}
	recv := newReceiver(t, answers...)
	f := newFixture(t, true, recv.URL)
	ctx := context.Background()
	if _, err := f.svc.Test(ctx, f.tenant); err != nil {
		t.Fatal(err)
	}
	attempts := 0
	for f.delivery(t).Status == store.DeliveryPending && attempts < 100 {
		attempts += f.sendDue(t)
		f.clock.Advance(time.Hour)
	}
	d := f.delivery(t)
	// 5 s, 30 s, 2 min, 10 min, 1 h, then hourly: about 24 attempts in 24 h.
	if d.Status != store.DeliveryFailed || attempts < 20 || attempts > 26 {
		t.Fatalf("after %d attempts: %+v, want failed after about 24", attempts, d)
	}
	nd, err := f.svc.Redeliver(ctx, f.tenant, d.ID)
	if err != nil || nd.EventID != d.EventID || nd.Status != store.DeliveryPending {
		t.Fatalf("redeliver = %+v, %v", nd, err)
	}
}

// TestPrivateAddressRefused: without WXGATE_WEBHOOK_ALLOW_PRIVATE a
// delivery never connects to a loopback address, whatever the saved URL
// says, and saving such a URL is refused.
func TestPrivateAddressRefused(t *testing.T) {
	t.Parallel()
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("the receiver on loopback was reached")
	}))
	t.Cleanup(recv.Close)
	f := newFixture(t, false, recv.URL) // saved while allowed; the connection is checked
	if _, err := f.svc.Test(context.Background(), f.tenant); err != nil {
		t.Fatal(err)
	}
	f.sendDue(t)
	if d := f.delivery(t); d.Status != store.DeliveryPending || d.Attempts != 1 || !strings.Contains(d.LastError, "not public") {
		t.Fatalf("delivery = %+v; want refused as not public", d)
	}

	strict := webhook.New(webhook.Options{Store: f.st, ComponentAppID: comp})
	for _, tc := range []struct{ url, why string }{
		{"http://example.com/hook", "plain http"},
		{"https://127.0.0.1/hook", "loopback"},
		{"https://10.1.2.3/hook", "private"},
		{"https://169.254.169.254/latest", "link-local (cloud metadata)"},
		{"https://[::1]/hook", "IPv6 loopback"},
		{"https://localhost/hook", "localhost"},
		{"https://user:pw@example.com/hook", "credentials"},
		{"ftp://example.com/", "another scheme"},
		{"/hook", "relative"},
	} {
		t.Run("refused: "+tc.why, func(t *testing.T) {
			if _, _, err := strict.Put(context.Background(), f.tenant, webhook.Config{URL: tc.url}); !errs.Is(err, errs.InvalidArgument) {
				t.Fatalf("Put(%s) = %v, want invalid_argument", tc.url, err)
			}
		})
	}
	if _, _, err := strict.Put(context.Background(), f.tenant, webhook.Config{URL: "https://hooks.example.com/wx", Events: []string{"authorizer.*"}}); err != nil {
		t.Fatalf("a public https URL: %v", err)
	}
}

func TestIsPublic(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "127.0.0.1": false, "10.0.0.1": false, "172.16.5.4": false,
		"192.168.1.1": false, "169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "::1": false,
		"fe80::1": false, "fc00::1": false, "::ffff:127.0.0.1": false, "::ffff:8.8.8.8": true, "224.0.0.1": false,
		"64:ff9b::7f00:1": false,
	} {
		if got := webhook.IsPublic(netip.MustParseAddr(addr)); got != want {
			t.Errorf("IsPublic(%s) = %v, want %v", addr, got, want)
		}
	}
}

// TestSignature: one v1 per live secret; Verify accepts either, refuses a
// changed body, another key or an old timestamp.
func TestSignature(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	h := webhook.Sign([]secret.Value{"whsec_new", "whsec_old"}, now, body)
	if !strings.HasPrefix(h, "t=1800000000,v1=") || strings.Count(h, "v1=") != 2 {
		t.Fatalf("header %q", h)
	}
	for _, tc := range []struct {
		name string
		key  string
		body []byte
		at   time.Time
		want bool
	}{
		{"new secret", "whsec_new", body, now, true},
		{"old secret during rotation", "whsec_old", body, now, true},
		{"another secret", "whsec_x", body, now, false},
		{"changed body", "whsec_new", []byte(`{"id":"evt_2"}`), now, false},
		{"replayed late", "whsec_new", body, now.Add(10 * time.Minute), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := webhook.Verify(tc.key, h, tc.body, tc.at, 5*time.Minute); got != tc.want {
				t.Fatalf("Verify = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestMessageReceived: EnqueueForAccount queues message.received for the
// tenants bound to the account, once however often WeChat retries the
// message, and it arrives signed with the message's fields as data.
func TestMessageReceived(t *testing.T) {
	t.Parallel()
	recv := newReceiver(t)
	f := newFixture(t, true, recv.URL)
	ctx := context.Background()
	const appid = "wxaaaaaaaaaaaaaaa1"
	if _, err := f.st.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: comp, AppID: appid, AccessToken: "AT", RefreshToken: "RT"}, f.tenant); err != nil {
		t.Fatal(err)
	}
	lonely, _ := f.st.CreateTenant(ctx, comp, "lonely") // not bound: gets nothing
	if _, _, err := f.svc.Put(ctx, lonely.ID, webhook.Config{URL: recv.URL + "/lonely"}); err != nil {
		t.Fatal(err)
	}
	msg := map[string]any{"msg_type": "text", "from_openid": "o1", "create_time": 1800000000, "msg_id": "42", "content": "hi"}
	for range 3 { // WeChat retries a message it got no answer for
		if _, err := f.svc.EnqueueForAccount(ctx, appid, msg); err != nil {
			t.Fatal(err)
		}
	}
	f.sendDue(t)
	var types []string
	for _, r := range recv.Got() {
		var body struct {
			Type, AppID string
			Data        map[string]any
		}
		_ = json.Unmarshal(r.Body, &body)
		types = append(types, body.Type)
		if body.Type == store.EventMessageReceived && (body.Data["content"] != "hi" || body.Data["msg_id"] != "42" || body.AppID != appid) {
			t.Fatalf("message event %s", r.Body)
		}
		if !webhook.Verify(f.secret, r.Signature, r.Body, f.clock.Now(), time.Minute) {
			t.Fatalf("%s: signature does not verify", body.Type)
		}
	}
	if len(types) != 2 || !slices.Contains(types, store.EventAuthorized) || !slices.Contains(types, store.EventMessageReceived) {
		t.Fatalf("received %v, want one authorized and one message.received", types)
	}
}

// TestSlowReceiverDoesNotStarveOthers: a tenant whose receiver never
// answers holds only its per-tenant share of the dispatcher; another
// tenant's events, queued after a long backlog of the slow one's, are
// delivered while the slow receiver still holds its requests.
func TestSlowReceiverDoesNotStarveOthers(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	held := 0
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		held++
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	fast := newReceiver(t)
	clock := storetest.NewClock()
	st := storetest.Open(t, store.Postgres, clock.Now)
	ctx := context.Background()
	svc := webhook.New(webhook.Options{Store: st, ComponentAppID: comp, AllowPrivate: true, Now: clock.Now})
	slowTenant, _ := st.CreateTenant(ctx, comp, "slow")
	fastTenant, _ := st.CreateTenant(ctx, comp, "fast")
	for tn, url := range map[string]string{slowTenant.ID: slow.URL, fastTenant.ID: fast.URL} {
		if _, _, err := svc.Put(ctx, tn, webhook.Config{URL: url}); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		if _, err := svc.Test(ctx, slowTenant.ID); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Second) // the fast tenant's events are the newest
	for range 3 {
		if _, err := svc.Test(ctx, fastTenant.ID); err != nil {
			t.Fatal(err)
		}
	}
	disp := webhook.NewDispatcher(webhook.DispatcherOptions{Queue: st, Owner: "r1", AllowPrivate: true,
		Timeout: time.Hour, Concurrency: 8, PerTenant: 2, Poll: 20 * time.Millisecond, Now: clock.Now})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = disp.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	t.Cleanup(func() { close(release) }) // runs first: the held requests end, then the dispatcher stops
	deadline := time.Now().Add(30 * time.Second)
	for len(fast.Got()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the fast tenant got %d of 3 events while the slow one holds its requests", len(fast.Got()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if held != 2 {
		t.Fatalf("the slow receiver holds %d requests, want its per-tenant share of 2", held)
	}
}
