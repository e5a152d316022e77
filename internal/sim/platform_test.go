package sim

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// A second and a third third-party platform, with settings of their own.
const (
	testComponentB = "wxcomponent0000002"
	testSecretB    = "component-secret-b-fedcba9876543210"
	testTokenB     = "msgtokenb"
	testAESKeyB    = "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkG"
	testComponentC = "wxcomponent0000003"
	testSecretC    = "component-secret-c-0011223344556677"
	testTokenC     = "msgtokenc"
	testAESKeyC    = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
)

// messageReceiver is a message URL that opens each push with one
// platform's crypto, answering "success" when it can and 401 when it
// cannot, and remembers the ToUserName of what it opened.
type messageReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	opened []string
}

func newMessageReceiver(t *testing.T, token, aesKey, component string) *messageReceiver {
	t.Helper()
	c, err := wxcrypt.New(token, aesKey, component)
	if err != nil {
		t.Fatal(err)
	}
	mr := &messageReceiver{}
	mr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		body, _ := io.ReadAll(r.Body)
		plain, err := c.Open(body, q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"))
		if err != nil || q.Get("signature") != c.SignURL(q.Get("timestamp"), q.Get("nonce")) {
			http.Error(w, "bad push", http.StatusUnauthorized)
			return
		}
		to, _, _ := strings.Cut(strings.TrimPrefix(string(plain), "<xml><ToUserName><![CDATA["), "]]>")
		mr.mu.Lock()
		mr.opened = append(mr.opened, to)
		mr.mu.Unlock()
		_, _ = io.WriteString(w, "success")
	}))
	t.Cleanup(mr.srv.Close)
	return mr
}

func (mr *messageReceiver) count() int {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	return len(mr.opened)
}

// multiEnv is an env whose simulator serves the primary platform A and a
// platform B, each with its own event receiver and message receiver.
type multiEnv struct {
	*env
	rcvB       *receiver
	msgA, msgB *messageReceiver
	a, b       *Platform
}

func newMultiEnv(t *testing.T, mutate ...func(*Options)) *multiEnv {
	t.Helper()
	rcvB := newReceiverFor(t, testTokenB, testAESKeyB, testComponentB)
	msgA := newMessageReceiver(t, testToken, testAESKey, testComponent)
	msgB := newMessageReceiver(t, testTokenB, testAESKeyB, testComponentB)
	e := newEnv(t, append([]func(*Options){func(o *Options) {
		o.MessageURL = msgA.srv.URL + "/wechat/accounts/$APPID$/callback"
		o.Platforms = []PlatformOptions{{AppID: testComponentB, Secret: testSecretB, Token: testTokenB, EncodingAESKey: testAESKeyB,
			EventURL: rcvB.srv.URL + "/wechat/components/b/events", MessageURL: msgB.srv.URL + "/wechat/b/$APPID$"}}
	}}, mutate...)...)
	a, err := e.sim.Platform(testComponent)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.sim.Platform(testComponentB)
	if err != nil {
		t.Fatal(err)
	}
	return &multiEnv{env: e, rcvB: rcvB, msgA: msgA, msgB: msgB, a: a, b: b}
}

func (m *multiEnv) in(t *testing.T) *multiEnv {
	c := *m
	c.env = m.env.in(t)
	return &c
}

// platformToken pushes a ticket to p and exchanges it for p's component token.
func (e *env) platformToken(p *Platform, secret string) string {
	e.t.Helper()
	ticket, err := p.PushTicket(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	r := e.post("/cgi-bin/component/api_component_token", map[string]string{
		"component_appid": p.AppID(), "component_appsecret": secret, "component_verify_ticket": ticket})
	e.mustCode(r, 0)
	var v struct {
		Token string `json:"component_access_token"`
	}
	r.decode(e.t, &v)
	return v.Token
}

// authorizeOn has the account (created if needed) authorize p through p's
// own pre-auth code and exchanges the code with p's component token.
func (e *env) authorizeOn(p *Platform, ctok string, spec AccountSpec) authInfo {
	e.t.Helper()
	if _, err := e.sim.Account(spec.AppID); err != nil {
		if err := e.sim.CreateAccount(spec); err != nil {
			e.t.Fatal(err)
		}
	}
	r := e.component("api_create_preauthcode", ctok, map[string]string{"component_appid": p.AppID()})
	e.mustCode(r, 0)
	var pre struct {
		Code string `json:"pre_auth_code"`
	}
	r.decode(e.t, &pre)
	code, err := p.Authorize(context.Background(), spec.AppID, pre.Code)
	if err != nil {
		e.t.Fatal(err)
	}
	r = e.component("api_query_auth", ctok, map[string]string{"component_appid": p.AppID(), "authorization_code": code})
	e.mustCode(r, 0)
	var v struct {
		Info authInfo `json:"authorization_info"`
	}
	r.decode(e.t, &v)
	return v.Info
}

// refresh calls api_authorizer_token with a component token.
func (e *env) refresh(ctok, component, appid, refreshToken string) wxResp {
	e.t.Helper()
	return e.component("api_authorizer_token", ctok, map[string]string{
		"component_appid": component, "authorizer_appid": appid, "authorizer_refresh_token": refreshToken})
}

// waitUntil polls cond (Run pushes from its own goroutine); it fails the
// test with what after a generous real-time bound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunPushesTicketsToEveryPlatform: Run pushes a ticket to each
// platform's event URL, sealed with that platform's Token and key and
// carrying its AppId, and a platform added while it runs gets one at once.
func TestRunPushesTicketsToEveryPlatform(t *testing.T) {
	m := newMultiEnv(t, func(o *Options) { o.TicketInterval = time.Hour })
	rcvC := newReceiverFor(t, testTokenC, testAESKeyC, testComponentC)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.sim.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
	})

	check := func(t *testing.T, rc *receiver, component string) {
		t.Helper()
		waitUntil(t, "a ticket for "+component, func() bool { return len(rc.all()) > 0 })
		ev := rc.events(t)[0] // fails unless it opened with this platform's crypto
		if ev.InfoType != wxcrypt.InfoTypeVerifyTicket || ev.AppID != component || ev.ComponentVerifyTicket == "" {
			t.Fatalf("first push: got %+v, want a ticket of %s", ev, component)
		}
	}
	t.Run("the primary platform's ticket", func(t *testing.T) { check(t, m.rcv, testComponent) })
	t.Run("the second platform's ticket", func(t *testing.T) { check(t, m.rcvB, testComponentB) })
	t.Run("a platform added at run time", func(t *testing.T) {
		err := m.sim.AddPlatform(PlatformOptions{AppID: testComponentC, Secret: testSecretC, Token: testTokenC,
			EncodingAESKey: testAESKeyC, EventURL: rcvC.srv.URL + "/events"})
		if err != nil {
			t.Fatal(err)
		}
		check(t, rcvC, testComponentC)
	})
	t.Run("the others got no second ticket", func(t *testing.T) {
		if a, b := len(m.rcv.all()), len(m.rcvB.all()); a != 1 || b != 1 {
			t.Fatalf("pushes: got A %d, B %d, want 1 each within the interval", a, b)
		}
	})
	t.Run("each ticket works only at its own platform", func(t *testing.T) {
		e := m.env.in(t)
		ticketB := m.rcvB.events(t)[0].ComponentVerifyTicket
		e.mustCode(e.post("/cgi-bin/component/api_component_token", map[string]string{
			"component_appid": testComponent, "component_appsecret": testSecret, "component_verify_ticket": ticketB}), errTicketInvalid)
		e.mustCode(e.post("/cgi-bin/component/api_component_token", map[string]string{
			"component_appid": testComponentB, "component_appsecret": testSecret, "component_verify_ticket": ticketB}), errInvalidSecret)
		e.mustCode(e.post("/cgi-bin/component/api_component_token", map[string]string{
			"component_appid": testComponentB, "component_appsecret": testSecretB, "component_verify_ticket": ticketB}), 0)
	})
}

// TestOneAccountTwoPlatforms follows one account that authorizes two
// platforms: two independent authorizations, each with its own tokens,
// events, permission sets and counters, over one shared account.
func TestOneAccountTwoPlatforms(t *testing.T) {
	m := newMultiEnv(t)
	const acct, onlyA = "wxshared0000000001", "wxonlyaz0000000001"
	ctokA := m.platformToken(m.a, testSecret)
	ctokB := m.platformToken(m.b, testSecretB)
	var infoA, infoB authInfo

	t.Run("authorized to both", func(t *testing.T) {
		e := m.in(t)
		infoA = e.authorizeOn(e.a, ctokA, AccountSpec{AppID: acct, Followers: 5, DailyQuota: 3})
		infoB = e.authorizeOn(e.b, ctokB, AccountSpec{AppID: acct})
		e.authorizeOn(e.a, ctokA, AccountSpec{AppID: onlyA, Followers: 1})
		if infoA.AccessToken == infoB.AccessToken || infoA.RefreshToken == infoB.RefreshToken {
			t.Fatalf("tokens: got the same for both platforms, want independent ones")
		}
		for _, tc := range []struct {
			name      string
			rc        *receiver
			component string
		}{{"A", e.rcv, testComponent}, {"B", e.rcvB, testComponentB}} {
			ev := tc.rc.last(t)
			if ev.InfoType != wxcrypt.InfoTypeAuthorized || ev.AppID != tc.component {
				t.Fatalf("%s's last event: got %s from %s, want authorized from %s", tc.name, ev.InfoType, ev.AppID, tc.component)
			}
		}
	})

	t.Run("each platform's calls are checked against that platform", func(t *testing.T) {
		codeA, err := m.a.Authorize(context.Background(), acct, "") // updateauthorized on A: rotates A's refresh token
		if err != nil {
			t.Fatal(err)
		}
		r := m.component("api_query_auth", ctokA, map[string]string{"component_appid": testComponent, "authorization_code": codeA})
		m.mustCode(r, 0)
		var v struct {
			Info authInfo `json:"authorization_info"`
		}
		r.decode(t, &v)
		old := infoA.RefreshToken
		infoA = v.Info
		for _, tc := range []struct {
			name string
			call func() wxResp
			want int
		}{
			{"A's component token names B", func() wxResp {
				return m.component("api_create_preauthcode", ctokA, map[string]string{"component_appid": testComponentB})
			}, errInvalidAppID},
			{"A's refresh token through B", func() wxResp { return m.refresh(ctokB, testComponentB, acct, infoA.RefreshToken) }, errRefreshInvalid},
			{"A's refresh token through B, B's appid with A's token", func() wxResp {
				return m.refresh(ctokA, testComponentB, acct, infoA.RefreshToken)
			}, errInvalidAppID},
			{"an account that never authorized B", func() wxResp {
				return m.refresh(ctokB, testComponentB, onlyA, infoA.RefreshToken)
			}, errNotAuthorizedBy},
			{"its info through B", func() wxResp {
				return m.component("api_get_authorizer_info", ctokB, map[string]string{"component_appid": testComponentB, "authorizer_appid": onlyA})
			}, errNotAuthorizedBy},
			{"A's authorization code through B", func() wxResp {
				code, err := m.a.Authorize(context.Background(), onlyA, "")
				if err != nil {
					t.Fatal(err)
				}
				return m.component("api_query_auth", ctokB, map[string]string{"component_appid": testComponentB, "authorization_code": code})
			}, errCodeInvalid},
			{"A's re-authorization left B's refresh token valid", func() wxResp { return m.refresh(ctokB, testComponentB, acct, infoB.RefreshToken) }, 0},
			{"A's previous refresh token", func() wxResp { return m.refresh(ctokA, testComponent, acct, old) }, errRefreshInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) { m.in(t).mustCode(tc.call(), tc.want) })
		}
		infoB.AccessToken = m.b.CurrentAccessToken(acct)
	})

	t.Run("a pre-auth code of A does not authorize B", func(t *testing.T) {
		r := m.component("api_create_preauthcode", ctokA, map[string]string{"component_appid": testComponent})
		var pre struct {
			Code string `json:"pre_auth_code"`
		}
		r.decode(t, &pre)
		if _, err := m.b.Authorize(context.Background(), acct, pre.Code); !errors.Is(err, ErrInvalidPreAuthCode) {
			t.Fatalf("B.Authorize with A's pre_auth_code: got %v, want ErrInvalidPreAuthCode", err)
		}
	})

	t.Run("both tokens read the account, from one shared quota", func(t *testing.T) {
		m.sim.ResetCounters()
		for i, tc := range []struct {
			token string
			want  int
		}{{infoA.AccessToken, 0}, {infoB.AccessToken, 0}, {infoB.AccessToken, 0}, {infoA.AccessToken, errDailyQuota}} {
			_, r := m.userGet(tc.token, "")
			if got := r.errcode(); got != tc.want {
				t.Fatalf("user/get #%d: got errcode %d, want %d", i+1, got, tc.want)
			}
		}
	})

	t.Run("counters are per platform", func(t *testing.T) {
		m.sim.ResetCounters()
		m.mustCode(m.refresh(ctokA, testComponent, acct, infoA.RefreshToken), 0)
		infoA.AccessToken = m.a.CurrentAccessToken(acct)
		if err := m.sim.ResetQuota(acct); err != nil {
			t.Fatal(err)
		}
		_, r := m.userGet(infoB.AccessToken, "")
		m.mustCode(r, 0)
		a, b, all := m.a.Counters(), m.b.Counters(), m.sim.Counters()
		for _, tc := range []struct {
			name      string
			got, want int64
		}{
			{"A's refreshes of the account", a.Refreshes[acct].Count, 1},
			{"B's refreshes of the account", b.Refreshes[acct].Count, 0},
			{"A's api_authorizer_token calls", a.Calls[EndpointAuthorizerToken], 1},
			{"B's api_authorizer_token calls", b.Calls[EndpointAuthorizerToken], 0},
			{"A's user/get calls for the account", a.ByAccount[EndpointUserGet][acct], 0},
			{"B's user/get calls for the account", b.ByAccount[EndpointUserGet][acct], 1},
			{"all api_authorizer_token calls", all.Calls[EndpointAuthorizerToken], 1},
			{"all user/get calls", all.Calls[EndpointUserGet], 1},
		} {
			if tc.got != tc.want {
				t.Errorf("%s: got %d, want %d", tc.name, tc.got, tc.want)
			}
		}
	})

	t.Run("permission sets are per platform", func(t *testing.T) {
		if err := m.b.SetPermissionSets(context.Background(), acct, []int{1}, false); err != nil {
			t.Fatal(err)
		}
		_, r := m.userGet(infoB.AccessToken, "")
		m.in(t).mustCode(r, errAPINotGranted)
		_, r = m.userGet(infoA.AccessToken, "")
		m.in(t).mustCode(r, 0)
		if err := m.b.SetPermissionSets(context.Background(), acct, []int{1, 2}, false); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("messages go to each platform's message URL with its crypto", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			p    *Platform
			mr   *messageReceiver
		}{{"A", m.a, m.msgA}, {"B", m.b, m.msgB}} {
			before := tc.mr.count()
			ds, err := tc.p.PushMessage(context.Background(), acct, FollowerMessage{Content: "hello"})
			if err != nil {
				t.Fatal(err)
			}
			if ds[0].Problem != "" || tc.mr.count() != before+1 {
				t.Fatalf("%s: got delivery %+v (%d opened), want one push opened by %s's receiver", tc.name, ds[0], tc.mr.count()-before, tc.name)
			}
		}
	})

	t.Run("unauthorizing A leaves B's authorization", func(t *testing.T) {
		pushesB := len(m.rcvB.all())
		if err := m.a.Unauthorize(context.Background(), acct); err != nil {
			t.Fatal(err)
		}
		e := m.in(t)
		_, r := e.userGet(infoA.AccessToken, "")
		e.mustCode(r, errInvalidCredential)
		_, r = e.userGet(infoB.AccessToken, "")
		e.mustCode(r, 0)
		e.mustCode(e.refresh(ctokA, testComponent, acct, infoA.RefreshToken), errRefreshInvalid)
		e.mustCode(e.refresh(ctokB, testComponent+"x", acct, infoB.RefreshToken), errInvalidAppID)
		e.mustCode(e.refresh(ctokB, testComponentB, acct, infoB.RefreshToken), 0)
		if ev := e.rcv.last(t); ev.InfoType != wxcrypt.InfoTypeUnauthorized || ev.AuthorizerAppid != acct {
			t.Fatalf("A's last event: got %+v, want unauthorized of %s", ev, acct)
		}
		if got := len(m.rcvB.all()); got != pushesB {
			t.Fatalf("B's events: got %d new, want none", got-pushesB)
		}
		infoOnA, _ := m.a.Account(acct)
		infoOnB, _ := m.b.Account(acct)
		if infoOnA.Authorized || !infoOnB.Authorized {
			t.Fatalf("authorized: got A %v, B %v, want A false, B true", infoOnA.Authorized, infoOnB.Authorized)
		}
		if err := m.a.Unauthorize(context.Background(), acct); !errors.Is(err, ErrNotAuthorized) {
			t.Fatalf("second Unauthorize on A: got %v, want ErrNotAuthorized", err)
		}
	})

	t.Run("component tokens are per platform", func(t *testing.T) {
		if err := m.a.InvalidateComponentToken(); err != nil {
			t.Fatal(err)
		}
		e := m.in(t)
		e.mustCode(e.component("api_create_preauthcode", ctokA, map[string]string{"component_appid": testComponent}), errInvalidCredential)
		e.mustCode(e.component("api_create_preauthcode", ctokB, map[string]string{"component_appid": testComponentB}), 0)
		if m.b.CurrentComponentToken() != ctokB || m.sim.CurrentComponentToken() != ctokA {
			t.Fatalf("current component tokens: got the other platform's")
		}
	})
}

// TestPlatformOptions: settings are validated and appids are unique, at New
// and at run time.
func TestPlatformOptions(t *testing.T) {
	good := PlatformOptions{AppID: testComponentB, Secret: testSecretB, Token: testTokenB, EncodingAESKey: testAESKeyB}
	with := func(f func(*PlatformOptions)) PlatformOptions { o := good; f(&o); return o }
	for _, tc := range []struct {
		name string
		o    PlatformOptions
		want error // from AddPlatform; New fails for all but nil
	}{
		{"good", good, nil},
		{"no appid", with(func(o *PlatformOptions) { o.AppID = "" }), ErrInvalid},
		{"no secret", with(func(o *PlatformOptions) { o.Secret = "" }), ErrInvalid},
		{"no token", with(func(o *PlatformOptions) { o.Token = "" }), ErrInvalid},
		{"short key", with(func(o *PlatformOptions) { o.EncodingAESKey = "abc" }), ErrInvalid},
		{"relative event URL", with(func(o *PlatformOptions) { o.EventURL = "/events" }), ErrInvalid},
		{"message URL without host", with(func(o *PlatformOptions) { o.MessageURL = "http:///$APPID$" }), ErrInvalid},
		{"the primary's appid", with(func(o *PlatformOptions) { o.AppID = testComponent }), ErrPlatformExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if err := e.sim.AddPlatform(tc.o); !errors.Is(err, tc.want) && (tc.want != nil || err != nil) {
				t.Fatalf("AddPlatform: got %v, want %v", err, tc.want)
			}
			_, err := New(Options{ComponentAppID: testComponent, ComponentSecret: testSecret, Token: testToken,
				EncodingAESKey: testAESKey, Platforms: []PlatformOptions{tc.o}})
			if (err == nil) != (tc.want == nil) {
				t.Fatalf("New: got %v, want an error: %v", err, tc.want != nil)
			}
		})
	}
	t.Run("twice at New", func(t *testing.T) {
		_, err := New(Options{ComponentAppID: testComponent, ComponentSecret: testSecret, Token: testToken,
			EncodingAESKey: testAESKey, Platforms: []PlatformOptions{good, good}})
		if !errors.Is(err, ErrPlatformExists) {
			t.Fatalf("New: got %v, want ErrPlatformExists", err)
		}
	})
	t.Run("twice at run time", func(t *testing.T) {
		e := newEnv(t)
		if err := e.sim.AddPlatform(good); err != nil {
			t.Fatal(err)
		}
		if err := e.sim.AddPlatform(good); !errors.Is(err, ErrPlatformExists) {
			t.Fatalf("second AddPlatform: got %v, want ErrPlatformExists", err)
		}
		if got := e.sim.Platforms(); len(got) != 2 || got[0] != testComponent || got[1] != testComponentB {
			t.Fatalf("Platforms: got %v, want [primary, B]", got)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		if _, err := newEnv(t).sim.Platform(testComponentC); !errors.Is(err, ErrUnknownPlatform) {
			t.Fatalf("Platform: got %v, want ErrUnknownPlatform", err)
		}
	})
}

// TestPlatformControlAPI: /sim/components adds and lists platforms, and
// the platform-scoped routes act on the platform component_appid names.
func TestPlatformControlAPI(t *testing.T) {
	e := newEnv(t)
	rcvB := newReceiverFor(t, testTokenB, testAESKeyB, testComponentB)
	add := map[string]string{"appid": testComponentB, "secret": testSecretB, "token": testTokenB, "aes_key": testAESKeyB,
		"event_url": rcvB.srv.URL + "/events"}
	const acct = "wxctlplat000000001"
	if err := e.sim.CreateAccount(AccountSpec{AppID: acct, Followers: 2}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"add", http.MethodPost, "/sim/components", add, http.StatusCreated},
		{"add again", http.MethodPost, "/sim/components", add, http.StatusConflict},
		{"add without secret", http.MethodPost, "/sim/components", map[string]string{"appid": testComponentC, "token": "t", "aes_key": testAESKeyC}, http.StatusBadRequest},
		{"add an unknown field", http.MethodPost, "/sim/components", `{"appid":"x","secrets":"y"}`, http.StatusBadRequest},
		{"list", http.MethodGet, "/sim/components", nil, http.StatusOK},
		{"ticket for B", http.MethodPost, "/sim/ticket?component_appid=" + testComponentB, nil, http.StatusOK},
		{"ticket for an unknown platform", http.MethodPost, "/sim/ticket?component_appid=" + testComponentC, nil, http.StatusNotFound},
		{"authorize B", http.MethodPost, "/sim/accounts/" + acct + "/authorize?component_appid=" + testComponentB, nil, http.StatusOK},
		{"B's view of the account", http.MethodGet, "/sim/accounts/" + acct + "?component_appid=" + testComponentB, nil, http.StatusOK},
		{"B has no token yet", http.MethodPost, "/sim/accounts/" + acct + "/expire_token?component_appid=" + testComponentB, nil, http.StatusConflict},
		{"unknown platform's token", http.MethodGet, "/sim/component/token?component_appid=" + testComponentC, nil, http.StatusNotFound},
		{"unknown platform's account view", http.MethodGet, "/sim/accounts/" + acct + "?component_appid=" + testComponentC, nil, http.StatusNotFound},
		{"unknown platform's counters", http.MethodGet, "/sim/counters?component_appid=" + testComponentC, nil, http.StatusNotFound},
		{"A never authorized", http.MethodPost, "/sim/accounts/" + acct + "/unauthorize", nil, http.StatusConflict},
		{"unauthorize B", http.MethodPost, "/sim/accounts/" + acct + "/unauthorize?component_appid=" + testComponentB, nil, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.do(tc.method, tc.path, tc.body)
			if r.Status != tc.want {
				t.Fatalf("%s %s: got %d %s, want %d", tc.method, tc.path, r.Status, r.Body, tc.want)
			}
			if strings.Contains(string(r.Body), testSecretB) || strings.Contains(string(r.Body), testAESKeyB) {
				t.Fatalf("%s %s: the answer shows B's secret or key: %s", tc.method, tc.path, r.Body)
			}
		})
	}
	t.Run("the list names both platforms", func(t *testing.T) {
		var v struct {
			Components []struct {
				AppID   string `json:"appid"`
				Primary bool   `json:"primary"`
			} `json:"components"`
		}
		e.in(t).get("/sim/components").decode(t, &v)
		if len(v.Components) != 2 || v.Components[0].AppID != testComponent || !v.Components[0].Primary ||
			v.Components[1].AppID != testComponentB || v.Components[1].Primary {
			t.Fatalf("components: got %+v, want the primary then B", v.Components)
		}
	})
	t.Run("B's events reached B only", func(t *testing.T) {
		var kinds []string
		for _, ev := range rcvB.events(t) {
			if ev.AppID != testComponentB {
				t.Fatalf("B's receiver got an event of %s", ev.AppID)
			}
			kinds = append(kinds, ev.InfoType)
		}
		if want := []string{wxcrypt.InfoTypeVerifyTicket, wxcrypt.InfoTypeAuthorized, wxcrypt.InfoTypeUnauthorized}; strings.Join(kinds, ",") != strings.Join(want, ",") {
			t.Fatalf("B's events: got %v, want %v", kinds, want)
		}
		if got := len(e.rcv.all()); got != 0 {
			t.Fatalf("A's events: got %d, want none", got)
		}
	})
	t.Run("B's counters count B's pushes", func(t *testing.T) {
		var c Counters
		e.in(t).get("/sim/counters?component_appid="+testComponentB).decode(t, &c)
		if got := c.Pushes[wxcrypt.InfoTypeAuthorized].Delivered; got != 1 {
			t.Fatalf("B's delivered authorized events: got %d, want 1", got)
		}
		if got := e.sim.primary.Counters().Pushes[wxcrypt.InfoTypeAuthorized].Delivered; got != 0 {
			t.Fatalf("A's delivered authorized events: got %d, want 0", got)
		}
	})
}

// TestAuthorizationPagePicksPlatform: the page serves the platform its
// component_appid names, with that platform's pre-auth codes only, and the
// confirmation pushes the event to that platform.
func TestAuthorizationPagePicksPlatform(t *testing.T) {
	m := newMultiEnv(t)
	const acct = "wxpageplat00000001"
	if err := m.sim.CreateAccount(AccountSpec{AppID: acct}); err != nil {
		t.Fatal(err)
	}
	preOf := func(ctok, component string) string {
		r := m.component("api_create_preauthcode", ctok, map[string]string{"component_appid": component})
		var v struct {
			Code string `json:"pre_auth_code"`
		}
		r.decode(t, &v)
		return v.Code
	}
	preA := preOf(m.platformToken(m.a, testSecret), testComponent)
	ctokB := m.platformToken(m.b, testSecretB)
	preB := preOf(ctokB, testComponentB)
	redirect := "http://gateway.example/wechat/components/b/callback"
	page := func(component, pre string) url.Values {
		return url.Values{"component_appid": {component}, "pre_auth_code": {pre}, "redirect_uri": {redirect}}
	}
	for _, tc := range []struct {
		name   string
		q      url.Values
		status int
	}{
		{"A's code at B", page(testComponentB, preA), http.StatusBadRequest},
		{"an unknown platform", page(testComponentC, preB), http.StatusBadRequest},
		{"B's code at B", page(testComponentB, preB), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, html := m.in(t).getPage("/cgi-bin/componentloginpage?" + tc.q.Encode()); status != tc.status {
				t.Fatalf("page: got %d, want %d: %s", status, tc.status, html)
			}
		})
	}
	t.Run("confirm", func(t *testing.T) {
		_, html := m.in(t).getPage("/cgi-bin/componentloginpage?" + page(testComponentB, preB).Encode())
		form := formOf(t, html)
		form.Set("appid", acct)
		resp, err := m.noRedirect().PostForm(m.srv.URL+"/sim/authpage/confirm", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc.Query().Get("auth_code") == "" {
			t.Fatalf("confirm: got %d to %q, want a redirect with auth_code", resp.StatusCode, loc)
		}
		if ev := m.rcvB.last(t); ev.InfoType != wxcrypt.InfoTypeAuthorized || ev.PreAuthCode != preB || ev.AppID != testComponentB {
			t.Fatalf("B's event: got %+v, want authorized with B's pre_auth_code", ev)
		}
		for _, ev := range m.rcv.events(t) {
			if ev.InfoType != wxcrypt.InfoTypeVerifyTicket {
				t.Fatalf("A's events: got %s, want tickets only", ev.InfoType)
			}
		}
		r := m.component("api_query_auth", ctokB, map[string]string{"component_appid": testComponentB, "authorization_code": loc.Query().Get("auth_code")})
		m.in(t).mustCode(r, 0)
	})
}
