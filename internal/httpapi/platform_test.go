package httpapi

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/message"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/tenant"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// platformDepsOf wires the router's platform dependencies to a platform
// fixture, as wire_platform.go does for a real replica.
func platformDepsOf(p *componenttest.Platform) PlatformDeps {
	return PlatformDeps{
		ComponentAppID: p.AppID, Events: p.Receiver, Flow: p.Flow,
		Directory: p.Store, Authorizers: p.Authorizers, Component: p.Credentials, Metrics: p.Metrics, Now: p.Clock.Now,
	}
}

// platformFixture is the real router with the real tenant services and the
// real platform backend over one store, with the simulator pushing its
// events to the router's /wechat/events.
type platformFixture struct {
	*tenantFixture
	p *componenttest.Platform
}

func newPlatformFixture(t *testing.T, dialect store.Dialect, opts ...func(*componenttest.Options)) *platformFixture {
	t.Helper()
	// As in the gateway, a binding made by an authorization reloads the
	// tenant directory at once.
	var dir atomic.Pointer[tenant.Directory]
	o := componenttest.Options{ComponentAppID: tfComponent, Dialect: dialect,
		OnBound: func(ctx context.Context, _, _ string) {
			if d := dir.Load(); d != nil {
				_ = d.Reload(ctx)
			}
		}}
	for _, fn := range opts {
		fn(&o)
	}
	// As in the gateway, the flow reads the tenants' return_url hosts from
	// the tenant directory.
	adjust := o.Flow
	o.Flow = func(fo *component.FlowOptions) {
		fo.Tenants = lateHosts{&dir}
		if adjust != nil {
			adjust(fo)
		}
	}
	p := componenttest.New(t, o)
	f := newTenantFixtureOn(t, p.Store, p.Clock, func(o *tenantFixtureOptions) {
		o.wire = append(o.wire, func(f *tenantFixture) {
			f.deps.Platform = platformDepsOf(p)
			// The accounts' message URL, as newGateway builds it.
			f.deps.Platform.Messages = message.New(message.Options{
				Crypter: p.Crypter, Inbox: &message.StoreInbox{ComponentAppID: p.AppID, Store: p.Store},
				Exchanger: p.Flow, Sender: p.WeChat, Receipts: p.Store, Leases: p.Store,
				Owner: p.Owner, Now: p.Clock.Now, Logger: p.Log, Metrics: p.Metrics,
			})
			// The real proxy over the platform's manager and WeChat client,
			// as wire_proxy.go builds it.
			f.deps.Proxy = ProxyDeps{
				Service:  proxy.NewService(proxy.Options{Authorizers: p.Authorizers, Upstream: p.WeChat, Metrics: f.metrics, Logger: f.deps.Logger, Timeout: 10 * time.Second}),
				Bindings: f.svc.Directory, Usage: f.svc.Usage, Metrics: f.metrics, Log: f.deps.Logger,
			}
		})
	})
	dir.Store(f.svc.Directory)
	p.Events.Set(f.router)
	return &platformFixture{tenantFixture: f, p: p}
}

// lateHosts reads return_url hosts from a directory built after the flow.
type lateHosts struct {
	dir *atomic.Pointer[tenant.Directory]
}

func (l lateHosts) ReturnURLHosts(tenantID string) ([]string, bool) {
	if d := l.dir.Load(); d != nil {
		return d.ReturnURLHosts(tenantID)
	}
	return nil, false
}

func (l lateHosts) CatchUp(ctx context.Context) error {
	if d := l.dir.Load(); d != nil {
		return d.CatchUp(ctx)
	}
	return nil
}

// seal encrypts a plaintext event as WeChat pushes it and returns the body
// and query.
func seal(t *testing.T, c *wxcrypt.Crypter, plain []byte) ([]byte, url.Values) {
	t.Helper()
	body, sig, err := c.SealEvent(plain, "1700000000", "12345")
	if err != nil {
		t.Fatal(err)
	}
	return body, url.Values{"timestamp": {"1700000000"}, "nonce": {"12345"}, "encrypt_type": {"aes"}, "msg_signature": {sig}, "signature": {c.SignURL("1700000000", "12345")}}
}

func postEvent(t *testing.T, h http.Handler, body []byte, q url.Values) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/wechat/events?"+q.Encode(), strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "text/xml")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// recordingEvents counts the events that reach the flow and can fail.
type recordingEvents struct {
	n    atomic.Int64
	fail atomic.Int64 // fail this many more times
	last atomic.Pointer[wxcrypt.Event]
	// during, if set, runs while an event is being handled.
	during func()
}

func (r *recordingEvents) HandleEvent(_ context.Context, ev wxcrypt.Event) error {
	r.n.Add(1)
	r.last.Store(&ev)
	if r.during != nil {
		r.during()
	}
	if r.fail.Add(-1) >= 0 {
		return errs.E(errs.Internal, "internal error")
	}
	return nil
}

func eventsRouter(t *testing.T, crypter *wxcrypt.Crypter, appid string, events component.EventHandler) (http.Handler, *store.Store) {
	t.Helper()
	st := storetest.Open(t, store.SQLite, nil)
	return eventsRouterOn(st, component.EventOptions{AppID: appid, Crypter: crypter, Handler: events}), st
}

// eventsRouterOn is the real router with the event policy o over st.
func eventsRouterOn(st *store.Store, o component.EventOptions) http.Handler {
	m := obs.NewMetrics()
	o.Receipts, o.Metrics = st, m
	return NewServer(Deps{
		Logger: slog.New(slog.DiscardHandler), Metrics: m, Store: st,
		Platform: PlatformDeps{ComponentAppID: o.AppID, Events: component.NewEvents(o)},
	})
}

// receipts counts the stored event receipts (by deleting them).
func receipts(t *testing.T, st *store.Store) int64 {
	t.Helper()
	n, err := st.DeleteEventsBefore(context.Background(), storetest.NewClock().Now().AddDate(100, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEventsOfficialVector feeds WeChat's own WXBizMsgCrypt sample through
// the handler: a message in the ToUserName form, acknowledged, not handled.
func TestEventsOfficialVector(t *testing.T) {
	t.Parallel()
	const encrypt = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
	c, err := wxcrypt.New("spamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2")
	if err != nil {
		t.Fatal(err)
	}
	events := &recordingEvents{}
	h, st := eventsRouter(t, c, "wx2c2769f8efd9abc2", events)
	body := []byte("<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[" + encrypt + "]]></Encrypt></xml>")
	q := url.Values{"timestamp": {"1409735669"}, "nonce": {"1320562132"}, "encrypt_type": {"aes"},
		"msg_signature": {"5d197aaffba7e9b25a30732f161a50dee96bd5fa"}, "signature": {"16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"}}
	if w := postEvent(t, h, body, q); w.Code != 200 || w.Body.String() != "success" {
		t.Fatalf("official vector: %d %q", w.Code, w.Body)
	}
	if events.n.Load() != 0 {
		t.Fatal("a text message was handled as a platform event")
	}
	q.Set("msg_signature", "5d197aaffba7e9b25a30732f161a50dee96bd5fb")
	if w := postEvent(t, h, body, q); w.Code != http.StatusUnauthorized {
		t.Fatalf("one flipped signature digit: %d", w.Code)
	}
	// The URL signature alone is not enough.
	q.Del("msg_signature")
	if w := postEvent(t, h, body, q); w.Code != http.StatusUnauthorized {
		t.Fatalf("no msg_signature: %d", w.Code)
	}
	if n := receipts(t, st); n != 0 {
		t.Fatalf("%d receipts after refusals", n)
	}
}

// cbcWithBadPadding encrypts a block-aligned plaintext whose last byte is
// not a valid pad, with WeChat's key and IV.
func cbcWithBadPadding(t *testing.T, aesKey string) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(aesKey + "=")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	plain := make([]byte, 64)
	plain[63] = 0 // pad byte 0
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(plain, plain)
	return base64.StdEncoding.EncodeToString(plain)
}

func TestEventsRefusalsChangeNothing(t *testing.T) {
	t.Parallel()
	c, _ := wxcrypt.New(componenttest.MessageToken, componenttest.AESKey, tfComponent)
	other, _ := wxcrypt.New(componenttest.MessageToken, componenttest.AESKey, "wx00000000000000e9")
	events := &recordingEvents{}
	h, st := eventsRouter(t, c, tfComponent, events)
	ticket := wxcrypt.EncodeEvent(wxcrypt.Event{AppID: tfComponent, CreateTime: 1700000000, InfoType: "component_verify_ticket", ComponentVerifyTicket: "ticket@@@x"})
	signed := func(encrypt string) ([]byte, url.Values) {
		q := url.Values{"timestamp": {"1700000000"}, "nonce": {"1"}, "encrypt_type": {"aes"}, "msg_signature": {c.Sign("1700000000", "1", encrypt)}}
		return []byte("<xml><AppId><![CDATA[" + tfComponent + "]]></AppId><Encrypt><![CDATA[" + encrypt + "]]></Encrypt></xml>"), q
	}
	good, goodQ := seal(t, c, ticket)
	env, _ := wxcrypt.ParseEnvelope(good)

	cases := []struct {
		name   string
		body   []byte
		q      url.Values
		status int
	}{
		{"forged signature", good, url.Values{"timestamp": {"1700000000"}, "nonce": {"12345"}, "msg_signature": {strings.Repeat("0", 40)}}, 401},
		{"signature over another timestamp", good, url.Values{"timestamp": {"1700000001"}, "nonce": {"12345"}, "msg_signature": {goodQ.Get("msg_signature")}}, 401},
		{"truncated ciphertext", nil, nil, 400},
		{"bad padding", nil, nil, 400},
		{"bad base64", nil, nil, 400},
		{"wrong appid", nil, nil, 400},
		{"malformed event XML", nil, nil, 400},
		{"malformed envelope", []byte("<xml><Encrypt>abc</Encrypt"), goodQ, 400},
		{"no Encrypt", []byte("<xml><AppId>x</AppId></xml>"), goodQ, 400},
		{"empty body", nil, goodQ, 400},
		{"oversize body", []byte("<xml><Encrypt>" + strings.Repeat("A", 70<<10) + "</Encrypt></xml>"), goodQ, 413},
	}
	cases[2].body, cases[2].q = signed(env.Encrypt[:len(env.Encrypt)-8])
	cases[3].body, cases[3].q = signed(cbcWithBadPadding(t, componenttest.AESKey))
	cases[4].body, cases[4].q = signed("!!!not base64!!!")
	wrong, _ := seal(t, other, ticket)
	wenv, _ := wxcrypt.ParseEnvelope(wrong)
	cases[5].body, cases[5].q = signed(wenv.Encrypt)
	notXML, _ := c.Encrypt([]byte("this is not xml"))
	cases[6].body, cases[6].q = signed(notXML)
	for _, tc := range cases {
		if tc.body == nil && tc.name != "empty body" {
			t.Fatalf("%s: no body built", tc.name)
		}
		w := postEvent(t, h, tc.body, tc.q)
		if w.Code != tc.status {
			t.Errorf("%s: %d %q, want %d", tc.name, w.Code, w.Body, tc.status)
		}
		if w.Body.String() == "success" {
			t.Errorf("%s: answered success", tc.name)
		}
	}
	if n := events.n.Load(); n != 0 {
		t.Fatalf("%d refused events reached the flow", n)
	}
	if n := receipts(t, st); n != 0 {
		t.Fatalf("%d receipts stored by refusals", n)
	}
	// The untouched original still works, once; its replay is acknowledged
	// without being handled again.
	for i := range 3 {
		if w := postEvent(t, h, good, goodQ); w.Code != 200 || w.Body.String() != "success" {
			t.Fatalf("push %d: %d %q", i, w.Code, w.Body)
		}
	}
	if n := events.n.Load(); n != 1 {
		t.Fatalf("the event was handled %d times", n)
	}
}

func TestEventsTransientFailureIsRetriedByWeChat(t *testing.T) {
	t.Parallel()
	c, _ := wxcrypt.New(componenttest.MessageToken, componenttest.AESKey, tfComponent)
	events := &recordingEvents{}
	events.fail.Store(1)
	h, _ := eventsRouter(t, c, tfComponent, events)
	body, q := seal(t, c, wxcrypt.EncodeEvent(wxcrypt.Event{AppID: tfComponent, CreateTime: 1, InfoType: "unauthorized", AuthorizerAppid: "wx00000000000000a1"}))
	if w := postEvent(t, h, body, q); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("failed handling answered %d %q", w.Code, w.Body)
	}
	if w := postEvent(t, h, body, q); w.Code != 200 || w.Body.String() != "success" {
		t.Fatalf("WeChat's retry answered %d %q", w.Code, w.Body)
	}
	if n := events.n.Load(); n != 2 {
		t.Fatalf("handled %d times, want 2 (the failure and the retry)", n)
	}
}

// TestEventReceiptFollowsTheEffect: the receipt that turns later copies into
// no-ops is written only once the event was applied, so a replica that dies
// while handling a push leaves nothing behind that would make WeChat's retry
// a silent no-op.
func TestEventReceiptFollowsTheEffect(t *testing.T) {
	t.Parallel()
	c, _ := wxcrypt.New(componenttest.MessageToken, componenttest.AESKey, tfComponent)
	events := &recordingEvents{}
	h, st := eventsRouter(t, c, tfComponent, events)
	body, q := seal(t, c, wxcrypt.EncodeEvent(wxcrypt.Event{AppID: tfComponent, CreateTime: 1, InfoType: "component_verify_ticket", ComponentVerifyTicket: "ticket@@@x"}))
	env, err := wxcrypt.ParseEnvelope(body)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(env.Encrypt))
	digest := hex.EncodeToString(sum[:])
	var seenDuring []bool
	events.during = func() {
		seen, err := st.EventSeen(context.Background(), digest)
		if err != nil {
			t.Error(err)
		}
		seenDuring = append(seenDuring, seen)
	}
	for range 3 {
		if w := postEvent(t, h, body, q); w.Code != 200 || w.Body.String() != "success" {
			t.Fatalf("push answered %d %q", w.Code, w.Body)
		}
	}
	if !slices.Equal(seenDuring, []bool{false}) {
		t.Fatalf("receipt seen while handling = %v, want [false] (handled once, before the receipt)", seenDuring)
	}
	if seen, _ := st.EventSeen(context.Background(), digest); !seen {
		t.Fatal("no receipt after the event was applied")
	}
}

// windowedEventsRouter is the router over a recording flow, with the
// gateway's 7-day replay window and a clock stopped at now.
func windowedEventsRouter(t *testing.T, now time.Time) (http.Handler, *wxcrypt.Crypter, *recordingEvents, *store.Store) {
	t.Helper()
	c, _ := wxcrypt.New(componenttest.MessageToken, componenttest.AESKey, tfComponent)
	events := &recordingEvents{}
	st := storetest.Open(t, store.SQLite, nil)
	h := eventsRouterOn(st, component.EventOptions{AppID: tfComponent, Crypter: c, Handler: events,
		ReplayWindow: componenttest.ReplayWindow, Now: func() time.Time { return now }})
	return h, c, events, st
}

// TestEventsOlderThanTheReplayWindowAreIgnored: receipts are pruned after
// the replay window, so a genuine push replayed later must not be applied
// again, e.g. an old ticket replacing the newest one. Its age is the
// event's CreateTime, which is inside the signed ciphertext: a push whose
// URL timestamp is recent but whose event is older than the window is
// ignored too.
func TestEventsOlderThanTheReplayWindowAreIgnored(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	h, c, events, _ := windowedEventsRouter(t, now)
	const window = componenttest.ReplayWindow
	for _, tc := range []struct {
		name         string
		created, url time.Duration // the event's age by its CreateTime and by the URL timestamp
		applied      int64
	}{
		{"a day late", 24 * time.Hour, 24 * time.Hour, 1},
		{"just inside the window", window - time.Minute, window - time.Minute, 2},
		{"older than the window", window + time.Minute, window + time.Minute, 2},
		{"a year old", 365 * 24 * time.Hour, 365 * 24 * time.Hour, 2},
		{"a recent URL timestamp on an event older than the window", window + time.Minute, time.Minute, 2},
		{"an old URL timestamp on a recent event", time.Minute, window + time.Minute, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := wxcrypt.EncodeEvent(wxcrypt.Event{AppID: tfComponent, CreateTime: now.Add(-tc.created).Unix(),
				InfoType: "component_verify_ticket", ComponentVerifyTicket: "ticket@@@" + tc.name})
			ts := strconv.FormatInt(now.Add(-tc.url).Unix(), 10)
			body, sig, err := c.SealEvent(plain, ts, "777")
			if err != nil {
				t.Fatal(err)
			}
			q := url.Values{"timestamp": {ts}, "nonce": {"777"}, "encrypt_type": {"aes"}, "msg_signature": {sig}}
			if w := postEvent(t, h, body, q); w.Code != 200 || w.Body.String() != "success" {
				t.Fatalf("got %d %q, want 200 \"success\"", w.Code, w.Body)
			}
			if n := events.n.Load(); n != tc.applied {
				t.Fatalf("%d events applied, want %d", n, tc.applied)
			}
		})
	}
}

// moveDigits returns the timestamp and nonce of a forgery of a signed push:
// digits moved between the nonce and the timestamp so that the sorted
// concatenation msg_signature hashes is unchanged. It answers ok=false if
// no such move keeps the signature (then the parts are not adjacent in the
// sort order).
func moveDigits(c *wxcrypt.Crypter, sig, ts, nonce, encrypt string) (string, string, bool) {
	for k := 1; k < len(nonce); k++ {
		for _, f := range [][2]string{
			{ts + nonce[:k], nonce[k:]}, // the nonce's first digits to the timestamp's end
			{nonce[k:] + ts, nonce[:k]}, // the nonce's last digits to the timestamp's start
		} {
			if c.Verify(sig, f[0], f[1], encrypt) {
				return f[0], f[1], true
			}
		}
	}
	return "", "", false
}

// TestEventTimestampsInTheFutureAreRefused: msg_signature cannot tell
// which digits belong to the timestamp and which to the nonce, so a
// captured push can be re-sent with its timestamp made later (a timestamp
// only grows when it gains digits) and its signature intact. A timestamp
// or a CreateTime further ahead of the clock than component.FutureWindow is
// refused before anything is applied or stored.
func TestEventTimestampsInTheFutureAreRefused(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	h, c, events, st := windowedEventsRouter(t, now)
	ticket := func(created int64) []byte {
		return wxcrypt.EncodeEvent(wxcrypt.Event{AppID: tfComponent, CreateTime: created, InfoType: "component_verify_ticket", ComponentVerifyTicket: "ticket@@@x"})
	}
	// forge seals plain as WeChat did at sent, then moves digits of the
	// nonce into the timestamp, keeping msg_signature.
	forge := func(t *testing.T, plain []byte, sent time.Time) ([]byte, url.Values) {
		t.Helper()
		ts := strconv.FormatInt(sent.Unix(), 10)
		for range 20 { // the random IV may put Encrypt between timestamp and nonce
			body, sig, err := c.SealEvent(plain, ts, "9876543210")
			if err != nil {
				t.Fatal(err)
			}
			env, _ := wxcrypt.ParseEnvelope(body)
			if fts, fnonce, ok := moveDigits(c, sig, ts, "9876543210", env.Encrypt); ok {
				return body, url.Values{"timestamp": {fts}, "nonce": {fnonce}, "encrypt_type": {"aes"}, "msg_signature": {sig}}
			}
		}
		t.Fatal("no digit move kept the signature")
		return nil, nil
	}
	sealAt := func(t *testing.T, plain []byte, ts string) ([]byte, url.Values) {
		t.Helper()
		body, sig, err := c.SealEvent(plain, ts, "4242")
		if err != nil {
			t.Fatal(err)
		}
		return body, url.Values{"timestamp": {ts}, "nonce": {"4242"}, "encrypt_type": {"aes"}, "msg_signature": {sig}}
	}
	unix := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	eightDays := 8 * 24 * time.Hour
	for _, tc := range []struct {
		name    string
		push    func(t *testing.T) ([]byte, url.Values)
		status  int
		applied int64
	}{
		{"an eight-day-old push with digits moved into its timestamp", func(t *testing.T) ([]byte, url.Values) {
			return forge(t, ticket(now.Add(-eightDays).Unix()), now.Add(-eightDays))
		}, 400, 0},
		{"the same forgery of a push without CreateTime", func(t *testing.T) ([]byte, url.Values) {
			return forge(t, ticket(0), now.Add(-eightDays))
		}, 400, 0},
		{"a CreateTime an hour ahead", func(t *testing.T) ([]byte, url.Values) {
			return sealAt(t, ticket(now.Add(time.Hour).Unix()), unix(0))
		}, 400, 0},
		{"a URL timestamp an hour ahead", func(t *testing.T) ([]byte, url.Values) {
			return sealAt(t, ticket(now.Unix()), unix(time.Hour))
		}, 400, 0},
		{"a timestamp that is no number", func(t *testing.T) ([]byte, url.Values) {
			return sealAt(t, ticket(now.Unix()), "17x")
		}, 400, 0},
		{"both within the window ahead (clock skew)", func(t *testing.T) ([]byte, url.Values) {
			return sealAt(t, ticket(now.Add(component.FutureWindow).Unix()), unix(component.FutureWindow))
		}, 200, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, q := tc.push(t)
			w := postEvent(t, h, body, q)
			if w.Code != tc.status {
				t.Fatalf("got %d %q, want %d", w.Code, w.Body, tc.status)
			}
			if n := events.n.Load(); n != tc.applied {
				t.Fatalf("%d events applied, want %d", n, tc.applied)
			}
		})
	}
	if n := receipts(t, st); n != 1 {
		t.Fatalf("%d receipts stored, want 1 (the push within the window)", n)
	}
}

// TestOldTicketPushReplayedDoesNotBreakTheComponentToken replays, through
// the router, a ticket push WeChat sent eight days earlier (after the
// janitor pruned its receipt), as it was and with digits moved into its
// timestamp. Neither may replace the current ticket: the component token
// must still renew with it (WeChat answers 61005/61006 for the old one).
func TestOldTicketPushReplayedDoesNotBreakTheComponentToken(t *testing.T) {
	t.Parallel()
	pf := newPlatformFixture(t, store.Postgres)
	p := pf.p
	ctx := p.Ctx()
	var mu sync.Mutex
	var pushes []capturedPush
	p.Events.Set(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		pushes = append(pushes, capturedPush{body: body, query: r.URL.Query()})
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		pf.router.ServeHTTP(w, r)
	}))
	var first capturedPush
	var forged url.Values
	t.Run("the ticket of eight days ago", func(t *testing.T) {
		// The attacker keeps a push whose digits can be moved: one where
		// nothing sorts between the timestamp and the random nonce.
		for range 30 {
			p.PushTicket()
			mu.Lock()
			first = pushes[len(pushes)-1]
			mu.Unlock()
			env, _ := wxcrypt.ParseEnvelope(first.body)
			sig := first.query.Get("msg_signature")
			if ts, nonce, ok := moveDigits(p.Crypter, sig, first.query.Get("timestamp"), first.query.Get("nonce"), env.Encrypt); ok {
				forged = url.Values{"timestamp": {ts}, "nonce": {nonce}, "encrypt_type": {"aes"}, "msg_signature": {sig}}
				break
			}
		}
		if forged == nil {
			t.Fatal("no pushed ticket left digits to move")
		}
		if _, err := p.Credentials.Token(ctx); err != nil {
			t.Fatalf("component token: %v", err)
		}
	})
	var current string
	t.Run("today's ticket", func(t *testing.T) {
		p.Clock.Advance(8 * 24 * time.Hour)
		current = p.PushTicket()
		if tok, err := p.Credentials.Token(ctx); err != nil || tok.Reveal() != p.Sim.CurrentComponentToken() {
			t.Fatalf("component token with today's ticket: %v, %v", tok, err)
		}
	})
	t.Run("the janitor prunes receipts past the window", func(t *testing.T) {
		if n, err := p.Store.DeleteEventsBefore(ctx, p.Clock.Now().Add(-componenttest.ReplayWindow)); err != nil || n != int64(len(pushes)-1) {
			t.Fatalf("pruned %d receipts (%v), want %d", n, err, len(pushes)-1)
		}
	})
	t.Run("the replay as it was is acknowledged and ignored", func(t *testing.T) {
		if w := postEvent(t, pf.router, first.body, first.query); w.Code != 200 || w.Body.String() != "success" {
			t.Fatalf("got %d %q, want 200 \"success\"", w.Code, w.Body)
		}
	})
	t.Run("the replay with digits moved into its timestamp is refused", func(t *testing.T) {
		if w := postEvent(t, pf.router, first.body, forged); w.Code != http.StatusBadRequest {
			t.Fatalf("got %d %q, want 400", w.Code, w.Body)
		}
	})
	t.Run("today's ticket is still the stored one", func(t *testing.T) {
		st, err := p.Store.GetComponentState(ctx, tfComponent)
		if err != nil || st.Ticket.Reveal() != current {
			t.Fatal("an eight-day-old ticket replaced today's")
		}
	})
	t.Run("the component token renews with it", func(t *testing.T) {
		p.RenewComponentToken(t, 7200*time.Second, 3) // the first ticket's, today's, the renewal
	})
}

// capturedPush is a push as the simulator sent it.
type capturedPush struct {
	body  []byte
	query url.Values
}

func TestEventsThroughTheRouter(t *testing.T) {
	t.Parallel()
	pf := newPlatformFixture(t, store.Postgres)
	p := pf.p
	ctx := p.Ctx()
	// A ticket pushed by the simulator goes through /wechat/events.
	p.PushTicket()
	if _, err := p.Credentials.Token(ctx); err != nil {
		t.Fatalf("component token after the pushed ticket: %v", err)
	}
	// Unknown InfoType: acknowledged, nothing changes.
	unknown := wxcrypt.EncodeEvent(wxcrypt.Event{AppID: tfComponent, CreateTime: p.Clock.Now().Unix(), InfoType: "notify_third_fasteregister"})
	body, q := seal(t, p.Crypter, unknown)
	if w := postEvent(t, pf.router, body, q); w.Code != 200 || w.Body.String() != "success" {
		t.Fatalf("unknown InfoType: %d %q", w.Code, w.Body)
	}
	// An account's event in the ToUserName form is accepted too.
	p.NewAccount(appA1)
	code, err := p.Sim.Authorize(ctx, appA1, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Authorizers.Get(appA1); !ok {
		t.Fatal("the authorized event was not handled")
	}
	// Replaying the authorized event (same ciphertext) changes nothing;
	// a re-sealed copy of it (new ciphertext) finds the code used and the
	// account stored, and answers success.
	auth := wxcrypt.EncodeEvent(wxcrypt.Event{AppID: tfComponent, CreateTime: p.Clock.Now().Unix(), InfoType: "authorized",
		AuthorizerAppid: appA1, AuthorizationCode: code, AuthorizationCodeExpiredTime: p.Clock.Now().Unix() + 600})
	body, q = seal(t, p.Crypter, auth)
	env, _ := wxcrypt.ParseEnvelope(body)
	toUser := []byte("<xml><ToUserName><![CDATA[gh_123]]></ToUserName><Encrypt><![CDATA[" + env.Encrypt + "]]></Encrypt></xml>")
	before, _ := p.Store.GetAuthorizer(ctx, tfComponent, appA1)
	for i := range 2 {
		if w := postEvent(t, pf.router, toUser, q); w.Code != 200 || w.Body.String() != "success" {
			t.Fatalf("push %d: %d %q", i, w.Code, w.Body)
		}
	}
	after, _ := p.Store.GetAuthorizer(ctx, tfComponent, appA1)
	if after.Version != before.Version || after.AccessToken != before.AccessToken {
		t.Fatal("a replayed authorized event changed the authorizer")
	}
	if n := p.Sim.Counters().ByErrcode[sim.EndpointQueryAuth]; n[0] != 1 || n[61009] != 1 { // the original + the re-sealed copy
		t.Fatalf("api_query_auth answers = %v", n)
	}
}

const appA1 = "wx00000000000000a1"

// TestAuthorizationFlowOverHTTP runs the whole flow a tenant sees: create
// the authorization with its key, the admin confirms on the simulator's
// page (which pushes the event to /wechat/events), the browser follows the
// redirect to /wechat/callback and lands on return_url.
func TestAuthorizationFlowOverHTTP(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			pf := newPlatformFixture(t, d)
			p := pf.p
			p.PushTicket()
			p.NewAccount(appA1, 1, 2)
			acme := pf.createTenant("acme")
			_, key := pf.issueKey(acme, nil)
			rival := pf.createTenant("rival")
			_, rivalKey := pf.issueKey(rival, nil)

			secrets := func() []string {
				a, _ := p.Store.GetAuthorizer(p.Ctx(), tfComponent, appA1)
				st, _ := p.Store.GetComponentState(p.Ctx(), tfComponent)
				return []string{a.AccessToken.Reveal(), a.RefreshToken.Reveal(), st.Token.Reveal(), st.Ticket.Reveal()}
			}
			noSecrets := func(t *testing.T, what string, w *httptest.ResponseRecorder) {
				t.Helper()
				for _, s := range secrets() {
					if s != "" && strings.Contains(w.Body.String(), s) {
						t.Fatalf("%s: got a secret in the answer, want none", what)
					}
				}
			}

			journey.Step(t, "authorize through the pages", func(t *testing.T) {
				w := pf.do(http.MethodPost, "/v1/authorizations", map[string]any{"return_url": "https://acme.example/wx?step=2", "auth_type": 1},
					"Authorization", "Bearer "+key)
				if w.Code != http.StatusCreated {
					t.Fatalf("create: got %d %s, want 201", w.Code, w.Body)
				}
				// URLs print as a person would paste them: no HTML escaping in API JSON.
				if raw := w.Body.String(); strings.Contains(raw, `\u0026`) || !strings.Contains(raw, "&pre_auth_code=") {
					t.Fatalf("create: body %s, want URLs with a literal & (no \\u0026)", raw)
				}
				var created map[string]string
				if err := json.Unmarshal(w.Body.Bytes(), &created); err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(created["id"], "as_") || created["expires_at"] == "" ||
					!strings.HasPrefix(created["url"], p.SimServer.URL+"/cgi-bin/componentloginpage?component_appid="+tfComponent+"&pre_auth_code=") ||
					!strings.Contains(created["url"], "&redirect_uri="+url.QueryEscape(componenttest.PublicURL+"/wechat/callback?session="+created["id"])+"&auth_type=1") ||
					!strings.HasSuffix(created["mobile_url"], "#wechat_redirect") {
					t.Fatalf("created: got %v, want an as_ id, expires_at, the PC page URL with this session's redirect_uri and auth_type=1, a mobile URL", created)
				}
				location := p.FollowPage(created["url"], appA1)
				u, _ := url.Parse(location)
				w = pf.do(http.MethodGet, "/wechat/callback?"+u.RawQuery, nil)
				if w.Code != http.StatusFound {
					t.Fatalf("callback: got %d %s, want 302", w.Code, w.Body)
				}
				if got, want := w.Header().Get("Location"), "https://acme.example/wx?step=2&appid="+appA1+"&result=authorized"; got != want {
					t.Fatalf("redirect: got %s, want %s", got, want)
				}
			})

			journey.Step(t, "the tenant sees its account", func(t *testing.T) {
				w := pf.tenantCall(http.MethodGet, "/v1/authorizers", key)
				noSecrets(t, "GET /v1/authorizers", w)
				var list struct {
					Authorizers []map[string]any `json:"authorizers"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || w.Code != 200 || len(list.Authorizers) != 1 {
					t.Fatalf("list: got %d %s, want 200 with one authorizer", w.Code, w.Body)
				}
				got := list.Authorizers[0]
				keys := make([]string, 0, len(got))
				for k := range got {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				if want := []string{"appid", "authorized_at", "nick_name", "permission_sets", "status", "token_expires_at"}; !slices.Equal(keys, want) {
					t.Fatalf("AUTHORIZER keys: got %v, want %v", keys, want)
				}
				if got["appid"] != appA1 || got["status"] != "authorized" || got["nick_name"] != "Nick "+appA1 || got["token_expires_at"] == nil {
					t.Fatalf("AUTHORIZER: got %v, want %s authorized, nick_name %q, a token expiry", got, appA1, "Nick "+appA1)
				}
				if sets, _ := got["permission_sets"].([]any); len(sets) != 2 {
					t.Fatalf("permission_sets: got %v, want 2 sets", got["permission_sets"])
				}
				if w := pf.tenantCall(http.MethodGet, "/v1/authorizers/"+appA1, key); w.Code != 200 {
					t.Fatalf("get: got %d %s, want 200", w.Code, w.Body)
				} else {
					noSecrets(t, "GET /v1/authorizers/{appid}", w)
				}
			})

			journey.Step(t, "another tenant sees nothing", func(t *testing.T) {
				// The same 404 as for an unknown account.
				if w := pf.tenantCall(http.MethodGet, "/v1/authorizers", rivalKey); !strings.Contains(w.Body.String(), `"authorizers":[]`) {
					t.Fatalf("rival list: got %s, want no authorizers", w.Body)
				}
				w1 := pf.tenantCall(http.MethodGet, "/v1/authorizers/"+appA1, rivalKey)
				w2 := pf.tenantCall(http.MethodGet, "/v1/authorizers/wx0000000000000404", rivalKey)
				if w1.Code != 404 || w2.Code != 404 || w1.Body.String() != w2.Body.String() {
					t.Fatalf("rival get: got %d %s / %d %s, want the same 404 for both", w1.Code, w1.Body, w2.Code, w2.Body)
				}
			})

			journey.Step(t, "admin views", func(t *testing.T) {
				w := pf.admin(http.MethodGet, "/admin/authorizers", nil)
				noSecrets(t, "GET /admin/authorizers", w)
				if w.Code != 200 || !strings.Contains(w.Body.String(), `"tenants":["`+acme+`"]`) {
					t.Fatalf("admin list: got %d %s, want 200 with tenants [%s]", w.Code, w.Body, acme)
				}
				before := p.Calls(sim.EndpointAuthorizerToken, appA1)
				w = pf.admin(http.MethodPost, "/admin/authorizers/"+appA1+"/refresh", nil)
				if calls := p.Calls(sim.EndpointAuthorizerToken, appA1); w.Code != 200 || !strings.Contains(w.Body.String(), `"appid":"`+appA1+`"`) || calls != before+1 {
					t.Fatalf("admin refresh: got %d %s after %d api_authorizer_token calls, want 200 for %s after %d", w.Code, w.Body, calls-before, appA1, 1)
				}
				noSecrets(t, "POST /admin/authorizers/{appid}/refresh", w)
				if w := pf.admin(http.MethodPost, "/admin/authorizers/wx0000000000000404/refresh", nil); w.Code != 404 {
					t.Fatalf("refresh unknown: got %d %s, want 404", w.Code, w.Body)
				}
				w = pf.admin(http.MethodGet, "/admin/component", nil)
				noSecrets(t, "GET /admin/component", w)
				var comp map[string]any
				_ = json.Unmarshal(w.Body.Bytes(), &comp)
				if w.Code != 200 || comp["component_appid"] != tfComponent || comp["ticket_received_at"] == nil || comp["token_expires_at"] == nil {
					t.Fatalf("admin component: got %d %s, want 200 for %s with ticket and token times", w.Code, w.Body, tfComponent)
				}
			})

			journey.Step(t, "bad requests", func(t *testing.T) {
				for field, body := range map[string]map[string]any{
					"return_url": {"return_url": "javascript:alert(1)"},
					"auth_type":  {"return_url": "https://x.example/", "auth_type": 9},
					"biz_appid":  {"return_url": "https://x.example/", "biz_appid": "nope"},
				} {
					w := pf.do(http.MethodPost, "/v1/authorizations", body, "Authorization", "Bearer "+key)
					var b struct {
						Error struct {
							Code    string
							Details struct{ Fields map[string]string }
						}
					}
					_ = json.Unmarshal(w.Body.Bytes(), &b)
					if w.Code != 400 || b.Error.Code != "invalid_argument" || b.Error.Details.Fields[field] == "" {
						t.Fatalf("bad %s: got %d %s, want 400 invalid_argument with details.fields.%s", field, w.Code, w.Body, field)
					}
				}
				// /v1 and /admin word a broken body the same way.
				for _, raw := range []string{"{not json", "[1]", `{"return_url":"https://x.example/","name":"x","nope":1}`, "\xff", ""} {
					v1 := pf.do(http.MethodPost, "/v1/authorizations", raw, "Authorization", "Bearer "+key)
					adm := pf.admin(http.MethodPost, "/admin/tenants", raw)
					var a, b struct {
						Error struct {
							Code, Message string
							Details       struct{ Fields map[string]string }
						}
					}
					_ = json.Unmarshal(v1.Body.Bytes(), &a)
					_ = json.Unmarshal(adm.Body.Bytes(), &b)
					if v1.Code != 400 || adm.Code != 400 || a.Error.Code != "invalid_argument" || a.Error.Message != b.Error.Message ||
						a.Error.Details.Fields["nope"] != b.Error.Details.Fields["nope"] {
						t.Fatalf("body %q: /v1 %d %s, /admin %d %s: want the same 400 answer", raw, v1.Code, v1.Body, adm.Code, adm.Body)
					}
				}
				if w := pf.do(http.MethodPost, "/v1/authorizations", map[string]any{"return_url": "https://x.example/"}); w.Code != 401 {
					t.Fatalf("no key: got %d %s, want 401", w.Code, w.Body)
				}
			})
		})
	}
}

func TestCallbackPages(t *testing.T) {
	t.Parallel()
	pf := newPlatformFixture(t, store.SQLite, func(o *componenttest.Options) {
		o.Flow = func(fo *component.FlowOptions) { fo.CallbackWait = 200 * time.Millisecond }
	})
	p := pf.p
	p.PushTicket()
	acme := pf.createTenant("acme")
	a, err := p.Flow.CreateAuthorization(p.Ctx(), acme, componentRequestFor("https://acme.example/back#frag"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, query string
		status      int
		page        string
	}{
		{"nothing", "", 400, "unknown or has expired"},
		{"unknown session", "?session=as_unknown&auth_code=x", 400, "unknown or has expired"},
		{"no session", "?auth_code=x", 400, "unknown or has expired"},
		// A live session without a code is no redirect: the gateway is no
		// open redirect to the session's return_url.
		{"no code", "?session=" + a.ID, 400, "unknown or has expired"},
		// A code no event of WeChat named: not confirmed, no redirect.
		{"unconfirmed code", "?session=" + a.ID + "&auth_code=queryauthcode@@@forged&expires_in=600", 503, "not confirmed"},
	} {
		w := pf.do(http.MethodGet, "/wechat/callback"+tc.query, nil)
		if w.Code != tc.status || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") ||
			!strings.Contains(w.Body.String(), tc.page) || w.Header().Get("Location") != "" {
			t.Fatalf("%s: got %d %v %s, want %d HTML saying %q and no Location", tc.name, w.Code, w.Header(), w.Body, tc.status, tc.page)
		}
	}
}

func TestTenantRoutesFailClosedWithoutAPrincipal(t *testing.T) {
	t.Parallel()
	pf := newPlatformFixture(t, store.SQLite)
	log := slog.New(slog.DiscardHandler)
	deps := platformDepsOf(pf.p)
	d := defaultPlatform(onePlatform{p: &deps})
	r := gin.New()
	r.POST("/v1/authorizations", handleCreateAuthorization(d, log))
	b := pf.svc.Directory
	r.GET("/v1/authorizers", handleListAuthorizers(d, b, log))
	r.GET("/v1/authorizers/:appid", handleGetAuthorizer(d, b, log))
	// A principal with an empty tenant id is no principal either.
	r.GET("/empty/authorizers", func(c *gin.Context) { setPrincipal(c, tenant.Principal{}) }, handleListAuthorizers(d, b, log))
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/v1/authorizations", strings.NewReader(`{"return_url":"https://x.example/"}`)),
		httptest.NewRequest(http.MethodGet, "/v1/authorizers", nil),
		httptest.NewRequest(http.MethodGet, "/v1/authorizers/"+appA1, nil),
		httptest.NewRequest(http.MethodGet, "/empty/authorizers", nil),
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != 500 || strings.Contains(w.Body.String(), "authorizers\":[") {
			t.Errorf("%s without a principal: %d %s", req.URL, w.Code, w.Body)
		}
	}
}

func TestRestrictedKeySeesOnlyItsAccounts(t *testing.T) {
	t.Parallel()
	pf := newPlatformFixture(t, store.SQLite)
	acme := pf.createTenant("acme")
	pf.authorize(appA1, acme)
	pf.authorize("wx00000000000000a2", acme)
	_, key := pf.issueKey(acme, map[string]any{"appids": []string{"wx00000000000000a2"}})
	w := pf.tenantCall(http.MethodGet, "/v1/authorizers", key)
	if w.Code != 200 || strings.Contains(w.Body.String(), appA1) || !strings.Contains(w.Body.String(), "wx00000000000000a2") {
		t.Fatalf("restricted list: %d %s", w.Code, w.Body)
	}
	if w := pf.tenantCall(http.MethodGet, "/v1/authorizers/"+appA1, key); w.Code != 403 || errorCodeOf(t, w) != "forbidden" {
		t.Fatalf("restricted get: %d %s", w.Code, w.Body)
	}
	if w := pf.tenantCall(http.MethodGet, "/v1/authorizers/wx00000000000000a2", key); w.Code != 200 {
		t.Fatalf("allowed get: %d %s", w.Code, w.Body)
	}
}

// componentRequestFor is a one-field authorization request.
func componentRequestFor(returnURL string) component.AuthorizationRequest {
	return component.AuthorizationRequest{ReturnURL: returnURL}
}
