package wechat_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/wechat"
)

const (
	compAppID  = "wx00000000000000f1"
	compSecret = "component-secret-for-tests-0123456789"
	account    = "wx00000000000000a1"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	sim     *sim.Simulator
	srv     *httptest.Server
	client  *wechat.Client
	metrics *obs.Metrics
	logs    *syncBuffer
	clock   *storetest.Clock
}

func newFixture(t *testing.T, adjust func(*wechat.Options)) *fixture {
	t.Helper()
	clock := storetest.NewClock()
	s, err := sim.New(sim.Options{
		ComponentAppID: compAppID, ComponentSecret: compSecret, Token: "spamtest",
		EncodingAESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", TicketInterval: -1, DailyQuota: -1,
		Now: clock.Now, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	f := &fixture{sim: s, srv: srv, metrics: obs.NewMetrics(), logs: &syncBuffer{}, clock: clock}
	o := wechat.Options{
		BaseURL: srv.URL, ComponentAppID: compAppID, ComponentSecret: secret.Value(compSecret),
		Metrics: f.metrics, Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		BaseBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, AttemptTimeout: time.Second,
	}
	if adjust != nil {
		adjust(&o)
	}
	if f.client, err = wechat.New(o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.client.CloseIdle)
	return f
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// componentToken pushes a ticket and exchanges it.
func (f *fixture) componentToken(t *testing.T) secret.Value {
	t.Helper()
	ticket, err := f.sim.PushTicket(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.client.GetComponentToken(ctx(t), secret.Value(ticket))
	if err != nil {
		t.Fatalf("api_component_token: %v", err)
	}
	if tok.Token.IsZero() || tok.ExpiresIn != 7200*time.Second {
		t.Fatalf("component token = %v, expires in %v", tok.Token, tok.ExpiresIn)
	}
	return tok.Token
}

// authorize creates and authorizes an account and returns its authorization.
func (f *fixture) authorize(t *testing.T, ct secret.Value, sets []int, followers int) wechat.Authorization {
	t.Helper()
	if err := f.sim.CreateAccount(sim.AccountSpec{AppID: account, NickName: "Shop", Followers: followers, PermissionSets: sets}); err != nil {
		t.Fatal(err)
	}
	pre, err := f.client.CreatePreAuthCode(ctx(t), ct)
	if err != nil {
		t.Fatal(err)
	}
	code, err := f.sim.Authorize(ctx(t), account, pre.Code.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	auth, err := f.client.QueryAuth(ctx(t), ct, secret.Value(code))
	if err != nil {
		t.Fatalf("api_query_auth: %v", err)
	}
	return auth
}

func TestComponentAPIs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ct := f.componentToken(t)
	auth := f.authorize(t, ct, []int{1, 2, 11}, 3)
	if auth.AppID != account || auth.AccessToken.IsZero() || auth.RefreshToken.IsZero() || auth.ExpiresIn != 7200*time.Second {
		t.Fatalf("authorization = %+v", auth)
	}
	if got := auth.PermissionSets; len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 11 {
		t.Fatalf("sets = %v", got)
	}
	// The one-time code cannot be exchanged twice: 61009, not retried.
	info, err := f.client.GetAuthorizerInfo(ctx(t), ct, account)
	if err != nil || info.NickName != "Shop" || !info.Authorized || len(info.PermissionSets) != 3 {
		t.Fatalf("authorizer info = %+v, %v", info, err)
	}
	tok, err := f.client.RefreshAuthorizerToken(ctx(t), ct, account, auth.RefreshToken)
	if err != nil || tok.AccessToken.IsZero() || tok.AccessToken == auth.AccessToken || tok.RefreshToken != auth.RefreshToken {
		t.Fatalf("authorizer token = %+v, %v", tok, err)
	}
	list, err := f.client.GetAuthorizerList(ctx(t), ct, 0, 500)
	if err != nil || list.Total != 1 || len(list.List) != 1 || list.List[0].AppID != account || list.List[0].RefreshToken != auth.RefreshToken {
		t.Fatalf("authorizer list = %+v, %v", list, err)
	}
	_, err = f.client.RefreshAuthorizerToken(ctx(t), ct, account, "refreshtoken@@@wrong")
	if e := errs.As(err); e == nil || e.Code != errs.AuthorizerUnauthorized || e.WeChatErrcode != wechat.ErrRefreshTokenInvalid {
		t.Fatalf("wrong refresh token: %v", err)
	}
}

func TestComponentTokenWithBadTicketIsComponentNotReady(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	_, err := f.client.GetComponentToken(ctx(t), "ticket@@@never-pushed")
	e := errs.As(err)
	if e == nil || e.Code != errs.ComponentNotReady || e.WeChatErrcode != wechat.ErrTicketInvalid {
		t.Fatalf("err = %v", err)
	}
	if n := f.sim.Counters().Calls[sim.EndpointComponentToken]; n != 1 {
		t.Fatalf("61006 must not be retried: %d calls", n)
	}
}

func TestCallReturnsTheRawBodyUnchanged(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ct := f.componentToken(t)
	auth := f.authorize(t, ct, nil, 12345)
	resp, err := f.client.Call(ctx(t), wechat.Request{API: "getFans", Method: "GET", Path: "/cgi-bin/user/get", AccessToken: auth.AccessToken})
	if err != nil || resp.Errcode != 0 || resp.Attempts != 1 {
		t.Fatalf("call = %+v, %v", resp.Errcode, err)
	}
	direct, err := http.Get(f.srv.URL + "/cgi-bin/user/get?access_token=" + url.QueryEscape(auth.AccessToken.Reveal()))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(direct.Body)
	direct.Body.Close()
	if !bytes.Equal(resp.Body, want) {
		t.Fatalf("body differs from WeChat's: %d vs %d bytes", len(resp.Body), len(want))
	}
	if !bytes.HasPrefix(resp.Body, []byte(`{"total":12345,"count":10000,`)) || bytes.HasSuffix(resp.Body, []byte("\n")) {
		t.Fatalf("unexpected body start %q", resp.Body[:40])
	}
	// An errcode answer is data, not an error.
	resp, err = f.client.Call(ctx(t), wechat.Request{API: "getFans", Path: "/cgi-bin/user/get", AccessToken: "90_bogus"})
	if err != nil || resp.Errcode != wechat.ErrInvalidCredential || !strings.HasPrefix(resp.Errmsg, "invalid credential") {
		t.Fatalf("bad token: %+v, %v", resp, err)
	}
}

// TestRetryPolicy checks which failures are retried. The ceiling is pinned
// at three attempts so that a retryable failure shows as exactly three
// calls (the budgets have room for more: TestRetryBudgetEndsAFailingCall).
func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		fault     sim.Fault
		attempts  int64
		code      errs.Code // of the error, or of Response.Err()
		asData    bool      // the failure comes back as an errcode in Response
		retryWhy  string
		callLabel string
	}{
		{"errcode -1 is retried", sim.Fault{Kind: sim.FaultErrcode}, 3, errs.UpstreamUnavailable, true, "errcode_-1", "-1"},
		{"HTTP 502 is retried", sim.Fault{Kind: sim.FaultHTTPStatus, Status: 502}, 3, errs.UpstreamUnavailable, false, "http_5xx", "http_5xx"},
		{"a dropped connection is retried", sim.Fault{Kind: sim.FaultDrop}, 3, errs.UpstreamUnavailable, false, "network", "network"},
		{"45009 is not retried", sim.Fault{Kind: sim.FaultErrcode, Errcode: 45009}, 1, errs.RateLimited, true, "", "45009"},
		{"40003 is not retried", sim.Fault{Kind: sim.FaultErrcode, Errcode: 40003}, 1, errs.InvalidArgument, true, "", "40003"},
		{"HTTP 404 is not retried", sim.Fault{Kind: sim.FaultHTTPStatus, Status: 404}, 1, errs.UpstreamError, false, "", "http_status"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(o *wechat.Options) { o.MaxAttempts = 3 })
			ct := f.componentToken(t)
			tc.fault.Endpoint = sim.EndpointCreatePreAuthCode
			if err := f.sim.SetFault(tc.fault); err != nil {
				t.Fatal(err)
			}
			resp, err := f.client.Call(ctx(t), wechat.Request{API: "api_create_preauthcode", Path: "/cgi-bin/component/api_create_preauthcode",
				Body: []byte(`{"component_appid":"` + compAppID + `"}`), ComponentToken: ct})
			if tc.asData {
				if err != nil {
					t.Fatalf("want the errcode as data, got error %v", err)
				}
				err = resp.Err()
			}
			if e := errs.As(err); e == nil || e.Code != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
			if n := f.sim.Counters().Calls[sim.EndpointCreatePreAuthCode]; n != tc.attempts {
				t.Fatalf("simulator saw %d calls, want %d", n, tc.attempts)
			}
			if got := testutil.ToFloat64(f.metrics.UpstreamCalls.WithLabelValues("api_create_preauthcode", tc.callLabel)); got != float64(tc.attempts) {
				t.Fatalf("upstream_calls{%s} = %v", tc.callLabel, got)
			}
			if tc.retryWhy != "" {
				if got := testutil.ToFloat64(f.metrics.UpstreamRetries.WithLabelValues("api_create_preauthcode", tc.retryWhy)); got != float64(tc.attempts-1) {
					t.Fatalf("retries{%s} = %v", tc.retryWhy, got)
				}
			}
			if strings.Contains(f.logs.String(), ct.Reveal()) || (err != nil && strings.Contains(err.Error(), ct.Reveal())) {
				t.Fatal("a token reached a log line or an error")
			}
		})
	}
}

func TestRetryRecoversFromATransientFault(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ct := f.componentToken(t)
	// Fail every call, then lift the fault while the client backs off.
	if err := f.sim.SetFault(sim.Fault{Endpoint: sim.EndpointCreatePreAuthCode, Kind: sim.FaultErrcode}); err != nil {
		t.Fatal(err)
	}
	f2 := newFixture(t, func(o *wechat.Options) {
		o.BaseURL = f.srv.URL
		o.BaseBackoff = 100 * time.Millisecond
		o.MaxBackoff = 100 * time.Millisecond
	})
	go func() { time.Sleep(30 * time.Millisecond); f.sim.ClearFaults() }()
	pre, err := f2.client.CreatePreAuthCode(ctx(t), ct)
	if err != nil || pre.Code.IsZero() || pre.ExpiresIn != 600*time.Second {
		t.Fatalf("pre_auth_code = %+v, %v", pre, err)
	}
}

// TestRetryBudgetEndsAFailingCall: against a WeChat that answers every
// call -1, the budget (2 retries plus 10 % of the calls, on a clock that
// does not move) grants the first call two retries and refuses the third;
// the next call is not retried at all. The ceiling (10) is not what ends
// them, and no pause is slept (the random source draws 0).
func TestRetryBudgetEndsAFailingCall(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock()
	f := newFixture(t, func(o *wechat.Options) {
		o.Retry = wechat.NewRetryPolicy(wechat.RetryOptions{Ratio: 0.1, MinRetries: 2, MaxAttempts: 10, Now: clock.Now,
			Rand: func(int64) int64 { return 0 }})
	})
	ct := f.componentToken(t)
	if err := f.sim.SetFault(sim.Fault{Endpoint: sim.EndpointCreatePreAuthCode, Kind: sim.FaultErrcode}); err != nil {
		t.Fatal(err)
	}
	call := func() wechat.Response {
		t.Helper()
		resp, err := f.client.Call(ctx(t), wechat.Request{API: "api_create_preauthcode", Path: "/cgi-bin/component/api_create_preauthcode",
			Body: []byte(`{"component_appid":"` + compAppID + `"}`), ComponentToken: ct})
		if err != nil || resp.Errcode != -1 {
			t.Fatalf("want -1 as data after the retries, got %+v, %v", resp.Errcode, err)
		}
		return resp
	}
	// The component token exchange made one call before: after 1 + 3
	// calls, 2 retries ≤ 0.1·4 + 2 and a third would be 3 > 0.1·4 + 2.
	if r := call(); r.Attempts != 3 {
		t.Errorf("first call: %d attempts, want 3 (two retries granted)", r.Attempts)
	}
	if r := call(); r.Attempts != 1 {
		t.Errorf("second call: %d attempts, want 1 (budget spent)", r.Attempts)
	}
	if got := testutil.ToFloat64(f.metrics.UpstreamGiveUps.WithLabelValues("api_create_preauthcode", wechat.GiveUpAccountBudget)); got != 2 {
		t.Errorf("give-ups for the account budget = %v, want 2", got)
	}
	if n := f.sim.Counters().Calls[sim.EndpointCreatePreAuthCode]; n != 4 {
		t.Errorf("WeChat saw %d calls, want 4", n)
	}
	// Two windows later the floor is back.
	clock.Advance(2 * wechat.DefaultRetryWindow)
	if r := call(); r.Attempts != 3 {
		t.Errorf("after the window: %d attempts, want 3", r.Attempts)
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *wechat.Options) { o.AttemptTimeout = 100 * time.Millisecond; o.MaxAttempts = 3 })
	ct := f.componentToken(t)
	if err := f.sim.SetFault(sim.Fault{Endpoint: sim.EndpointCreatePreAuthCode, Kind: sim.FaultLatency, Latency: time.Second}); err != nil {
		t.Fatal(err)
	}
	// Every attempt times out: three attempts, then upstream_timeout.
	start := time.Now()
	_, err := f.client.CreatePreAuthCode(ctx(t), ct)
	if e := errs.As(err); e == nil || e.Code != errs.UpstreamTimeout {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("three 100ms attempts took %v", d)
	}
	if got := testutil.ToFloat64(f.metrics.UpstreamRetries.WithLabelValues("api_create_preauthcode", "timeout")); got != 2 {
		t.Fatalf("timeout retries = %v", got)
	}
	// The caller's deadline bounds the whole call, retries included.
	f2 := newFixture(t, func(o *wechat.Options) { o.BaseURL = f.srv.URL; o.AttemptTimeout = 5 * time.Second })
	c, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = f2.client.CreatePreAuthCode(c, ct)
	if e := errs.As(err); e == nil || e.Code != errs.UpstreamTimeout {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Fatalf("a 150ms deadline returned after %v", d)
	}
}

func TestResponseBodyIsCapped(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *wechat.Options) { o.MaxBodyBytes = 1024 })
	ct := f.componentToken(t)
	auth := f.authorize(t, ct, nil, 5000)
	_, err := f.client.Call(ctx(t), wechat.Request{API: "getFans", Path: "/cgi-bin/user/get", AccessToken: auth.AccessToken})
	if e := errs.As(err); e == nil || e.Code != errs.UpstreamUnavailable {
		t.Fatalf("err = %v", err)
	}
}

func TestAsError(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 15, 30, 0, 0, time.UTC) // 23:30 in Beijing
	cases := []struct {
		errcode int
		code    errs.Code
		retry   time.Duration
	}{
		{40003, errs.InvalidArgument, 0},
		{45159, errs.InvalidArgument, 0},
		{45009, errs.RateLimited, 30 * time.Minute},
		{45011, errs.RateLimited, time.Minute},
		{48001, errs.UpstreamError, 0},
		{61007, errs.PermissionSetMissing, 0},
		{61003, errs.AuthorizerUnauthorized, 0},
		{61023, errs.AuthorizerUnauthorized, 0},
		{61005, errs.ComponentNotReady, 0},
		{61006, errs.ComponentNotReady, 0},
		{-1, errs.UpstreamUnavailable, 0},
		{40013, errs.UpstreamError, 0},
		{61004, errs.UpstreamError, 0},
	}
	for _, tc := range cases {
		e := wechat.AsErrorAt(tc.errcode, "msg rid: 1", now)
		if e.Code != tc.code || e.WeChatErrcode != tc.errcode || e.WeChatErrmsg != "msg rid: 1" || e.RetryAfter != tc.retry {
			t.Errorf("AsError(%d) = %+v", tc.errcode, e)
		}
	}
	if wechat.AsError(0, "ok") != nil {
		t.Error("AsError(0) must be nil")
	}
	if e := wechat.AsError(45011, ""); e.WeChatErrmsg != wechat.Errmsg(45011) {
		t.Errorf("empty errmsg not filled: %q", e.WeChatErrmsg)
	}
}
