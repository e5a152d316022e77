package sim

import (
	"bytes"
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

	"github.com/wxgate/wxgate/internal/wxcrypt"
)

const (
	testComponent = "wxcomponent0000001"
	testSecret    = "component-secret-0123456789abcdef"
	testToken     = "msgtoken"
	testAESKey    = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// fakeClock is an injected clock tests advance by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// receivedPush is one push as the event receiver saw it.
type receivedPush struct {
	Query url.Values
	Body  []byte
	Event wxcrypt.Event
	Err   error // verification or decryption failure
}

// receiver is an event URL that verifies and decrypts pushes with wxcrypt,
// the way the gateway must, and answers what answer says.
type receiver struct {
	srv     *httptest.Server
	crypter *wxcrypt.Crypter
	mu      sync.Mutex
	pushes  []receivedPush
	answer  func(n int) (int, string) // n = 1-based push number
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	return newReceiverFor(t, testToken, testAESKey, testComponent)
}

// newReceiverFor is a receiver for the platform with these settings.
func newReceiverFor(t *testing.T, token, aesKey, component string) *receiver {
	t.Helper()
	c, err := wxcrypt.New(token, aesKey, component)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{crypter: c, answer: func(int) (int, string) { return 200, "success" }}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := r.URL.Query()
		p := receivedPush{Query: q, Body: body}
		if r.Method != http.MethodPost || q.Get("encrypt_type") != "aes" {
			p.Err = errString("not a POST with encrypt_type=aes")
		} else if q.Get("signature") != wxcrypt.Signature(token, q.Get("timestamp"), q.Get("nonce")) {
			p.Err = errString("bad URL signature")
		} else if plain, err := c.Open(body, q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce")); err != nil {
			p.Err = err
		} else {
			p.Event, p.Err = wxcrypt.ParseEvent(plain)
		}
		rc.mu.Lock()
		rc.pushes = append(rc.pushes, p)
		n := len(rc.pushes)
		answer := rc.answer
		rc.mu.Unlock()
		status, text := answer(n)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, text)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

type errString string

func (e errString) Error() string { return string(e) }

func (rc *receiver) setAnswer(f func(n int) (int, string)) {
	rc.mu.Lock()
	rc.answer = f
	rc.mu.Unlock()
}

func (rc *receiver) all() []receivedPush {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedPush(nil), rc.pushes...)
}

// events returns the verified events received, failing on any bad push.
func (rc *receiver) events(t *testing.T) []wxcrypt.Event {
	t.Helper()
	var out []wxcrypt.Event
	for i, p := range rc.all() {
		if p.Err != nil {
			t.Fatalf("push %d failed verification: %v", i+1, p.Err)
		}
		out = append(out, p.Event)
	}
	return out
}

func (rc *receiver) last(t *testing.T) wxcrypt.Event {
	t.Helper()
	evs := rc.events(t)
	if len(evs) == 0 {
		t.Fatal("no event pushed")
	}
	return evs[len(evs)-1]
}

// env is a simulator on an httptest server with an injected clock and an
// event receiver.
type env struct {
	t     *testing.T
	sim   *Simulator
	clock *fakeClock
	srv   *httptest.Server
	rcv   *receiver
}

func newEnv(t *testing.T, mutate ...func(*Options)) *env {
	t.Helper()
	clock := &fakeClock{t: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)}
	rcv := newReceiver(t)
	opts := Options{
		ComponentAppID: testComponent, ComponentSecret: testSecret, Token: testToken, EncodingAESKey: testAESKey,
		EventURL: rcv.srv.URL + "/wechat/events", Now: clock.Now, Seed: 42,
		PushRetryDelay: time.Millisecond, TicketInterval: -1,
	}
	for _, m := range mutate {
		m(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, sim: s, clock: clock, srv: srv, rcv: rcv}
}

// in returns e reporting to t: a journey step's helpers must fail the step
// that called them, not the test around it.
func (e *env) in(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// wxResp is a raw WeChat answer.
type wxResp struct {
	Status int
	Header http.Header
	Body   []byte
}

// errcode decodes the errcode of an answer (0 if absent).
func (r wxResp) errcode() int {
	var v struct {
		Errcode int `json:"errcode"`
	}
	_ = json.Unmarshal(r.Body, &v)
	return v.Errcode
}

func (r wxResp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

func (e *env) do(method, path string, body any) wxResp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return wxResp{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

func (e *env) post(path string, body any) wxResp {
	e.t.Helper()
	return e.do(http.MethodPost, path, body)
}
func (e *env) get(path string) wxResp { e.t.Helper(); return e.do(http.MethodGet, path, nil) }

func (e *env) mustCode(r wxResp, want int) {
	e.t.Helper()
	if got := r.errcode(); got != want || r.Status != 200 {
		e.t.Fatalf("answer %d %s: got errcode %d, want %d", r.Status, r.Body, got, want)
	}
}

// componentToken pushes a ticket and exchanges it for a component token.
func (e *env) componentToken() string {
	e.t.Helper()
	ticket, err := e.sim.PushTicket(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	r := e.post("/cgi-bin/component/api_component_token", map[string]string{
		"component_appid": testComponent, "component_appsecret": testSecret, "component_verify_ticket": ticket})
	e.mustCode(r, 0)
	var v struct {
		Token     string `json:"component_access_token"`
		ExpiresIn int    `json:"expires_in"`
	}
	r.decode(e.t, &v)
	if v.Token == "" || v.ExpiresIn != int(e.sim.opts.TokenLifetime/time.Second) {
		e.t.Fatalf("api_component_token: %s", r.Body)
	}
	return v.Token
}

func (e *env) component(name, token string, body any) wxResp {
	e.t.Helper()
	return e.post("/cgi-bin/component/"+name+"?component_access_token="+url.QueryEscape(token), body)
}

func (e *env) preAuthCode(ctok string) string {
	e.t.Helper()
	r := e.component("api_create_preauthcode", ctok, map[string]string{"component_appid": testComponent})
	e.mustCode(r, 0)
	var v struct {
		Code      string `json:"pre_auth_code"`
		ExpiresIn int    `json:"expires_in"`
	}
	r.decode(e.t, &v)
	if v.Code == "" || v.ExpiresIn != 600 {
		e.t.Fatalf("api_create_preauthcode: %s", r.Body)
	}
	return v.Code
}

type authInfo struct {
	AuthorizerAppID string `json:"authorizer_appid"`
	AccessToken     string `json:"authorizer_access_token"`
	ExpiresIn       int    `json:"expires_in"`
	RefreshToken    string `json:"authorizer_refresh_token"`
	FuncInfo        []struct {
		Category struct {
			ID int `json:"id"`
		} `json:"funcscope_category"`
	} `json:"func_info"`
}

func (e *env) queryAuth(ctok, code string) (authInfo, wxResp) {
	e.t.Helper()
	r := e.component("api_query_auth", ctok, map[string]string{"component_appid": testComponent, "authorization_code": code})
	var v struct {
		Info authInfo `json:"authorization_info"`
	}
	_ = json.Unmarshal(r.Body, &v)
	return v.Info, r
}

// authorize creates (if needed) and authorizes an account, returning its
// access and refresh tokens as the gateway would hold them.
func (e *env) authorize(ctok string, spec AccountSpec) authInfo {
	e.t.Helper()
	if _, err := e.sim.Account(spec.AppID); err != nil {
		if err := e.sim.CreateAccount(spec); err != nil {
			e.t.Fatal(err)
		}
	}
	code, err := e.sim.Authorize(context.Background(), spec.AppID, e.preAuthCode(ctok))
	if err != nil {
		e.t.Fatal(err)
	}
	info, r := e.queryAuth(ctok, code)
	e.mustCode(r, 0)
	return info
}

// page is a decoded user/get or user/tag/get answer.
type page struct {
	Total *int `json:"total"`
	Count int  `json:"count"`
	Data  *struct {
		OpenID []string `json:"openid"`
	} `json:"data"`
	NextOpenID string `json:"next_openid"`
	Errcode    int    `json:"errcode"`
}

func (e *env) userGet(token, next string) (page, wxResp) {
	e.t.Helper()
	path := "/cgi-bin/user/get?access_token=" + url.QueryEscape(token)
	if next != "" {
		path += "&next_openid=" + url.QueryEscape(next)
	}
	r := e.get(path)
	var p page
	if r.Status == 200 {
		r.decode(e.t, &p)
	}
	return p, r
}

func (e *env) tagGet(token string, tagid int, next string) (page, wxResp) {
	e.t.Helper()
	r := e.post("/cgi-bin/user/tag/get?access_token="+url.QueryEscape(token), map[string]any{"tagid": tagid, "next_openid": next})
	var p page
	if r.Status == 200 {
		r.decode(e.t, &p)
	}
	return p, r
}
