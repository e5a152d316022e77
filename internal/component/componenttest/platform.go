// Package componenttest wires the platform backend (WeChat client,
// component token, authorization flow, authorizer token manager) over a
// fresh store and the WeChat simulator, for the tests of the platform
// packages. Nothing in it talks to real WeChat or mocks it: every WeChat
// call goes to the simulator over HTTP.
package componenttest

import (
	"context"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/authorizer"
	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/wechat"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// The component the simulator and the gateway share in tests.
const (
	ComponentAppID  = "wx00000000000000f1"
	ComponentSecret = "component-secret-for-tests-0123456789"
	MessageToken    = "spamtest"
	AESKey          = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	PublicURL       = "https://gateway.example.com"
	// ReplayWindow is how long the gateway keeps event receipts.
	ReplayWindow = 7 * 24 * time.Hour
)

// Options tune a Platform. Zero values are fine.
type Options struct {
	// ComponentAppID overrides the component's appid (default ComponentAppID).
	ComponentAppID string
	// Dialect is the store (default PostgreSQL).
	Dialect store.Dialect
	// TokenLifetime is the simulator's token lifetime (default 7200 s).
	TokenLifetime time.Duration
	// EventHandler builds the handler the simulator pushes events to
	// (default: Direct, which decrypts and calls Flow.HandleEvent).
	EventHandler func(*Platform) http.Handler
	// WeChat adjusts the WeChat client's options.
	WeChat func(*wechat.Options)
	// Authorizers adjusts the authorizer manager's options.
	Authorizers func(*authorizer.Options)
	// Sim adjusts the simulator's options.
	Sim func(*sim.Options)
	// SimMiddleware wraps the simulator's handler (to observe calls).
	SimMiddleware func(http.Handler) http.Handler
	// OnBound is called after an authorization bound an account to a
	// tenant (the gateway reloads its tenant directory there).
	OnBound func(ctx context.Context, tenantID, appid string)
	// Flow adjusts the authorization flow's options.
	Flow func(*component.FlowOptions)
}

// Platform is one replica of the platform backend with its simulator.
type Platform struct {
	T           testing.TB
	AppID       string // the component appid
	Clock       *storetest.Clock
	Sim         *sim.Simulator
	SimServer   *httptest.Server
	DatabaseURL string
	Store       *store.Store
	WeChat      *wechat.Client
	Credentials *component.Credentials
	Flow        *component.Flow
	// Receiver is the event URL's policy over Flow and the store, as the
	// gateway's /wechat/events handler calls it.
	Receiver    *component.Events
	Authorizers *authorizer.Manager
	Metrics     *obs.Metrics
	Crypter     *wxcrypt.Crypter
	Log         *slog.Logger
	Owner       string
	// Events is what the simulator pushes to; set its handler with Set.
	Events       *Switch
	EventsServer *httptest.Server
}

// In returns p reporting to t: the helpers called in a step of a journey
// test fail that step, not the test around it. The replica is the same.
func (p *Platform) In(t testing.TB) *Platform {
	q := *p
	q.T = t
	return &q
}

// Switch is an http.Handler whose target can be replaced while serving.
type Switch struct{ h atomic.Pointer[http.Handler] }

// Set replaces the handler.
func (s *Switch) Set(h http.Handler) { s.h.Store(&h) }

// ServeHTTP serves with the current handler.
func (s *Switch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := s.h.Load()
	if h == nil {
		http.Error(w, "no handler", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

var ownerSeq atomic.Int64

// Logger returns a logger for tests: silent unless WXGATE_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("WXGATE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// New starts a simulator and wires a replica over a fresh database.
func New(t testing.TB, o Options) *Platform {
	t.Helper()
	if o.Dialect == "" {
		o.Dialect = store.Postgres
	}
	if o.ComponentAppID == "" {
		o.ComponentAppID = ComponentAppID
	}
	clock := storetest.NewClock()
	p := &Platform{T: t, AppID: o.ComponentAppID, Clock: clock, Log: Logger(), Events: &Switch{}}
	p.EventsServer = httptest.NewServer(p.Events)
	t.Cleanup(p.EventsServer.Close)
	so := sim.Options{
		ComponentAppID: p.AppID, ComponentSecret: ComponentSecret, Token: MessageToken, EncodingAESKey: AESKey,
		EventURL: p.EventsServer.URL + "/wechat/events", TicketInterval: -1, TokenLifetime: o.TokenLifetime,
		PushRetries: -1, PushRetryDelay: 10 * time.Millisecond, DailyQuota: -1, Now: clock.Now, Seed: 1,
	}
	if o.Sim != nil {
		o.Sim(&so)
	}
	s, err := sim.New(so)
	if err != nil {
		t.Fatal(err)
	}
	p.Sim = s
	var h http.Handler = s.Handler()
	if o.SimMiddleware != nil {
		h = o.SimMiddleware(h)
	}
	p.SimServer = httptest.NewServer(h)
	t.Cleanup(p.SimServer.Close)
	p.DatabaseURL = storetest.NewURL(t, o.Dialect)
	p.wire(o)
	if o.EventHandler != nil {
		p.Events.Set(o.EventHandler(p))
	} else {
		p.Events.Set(Direct(p))
	}
	return p
}

// Replica wires another replica over the same database, simulator and
// clock, with its own store connection pool and its own lease owner.
func (p *Platform) Replica(o Options) *Platform {
	p.T.Helper()
	r := &Platform{T: p.T, AppID: p.AppID, Clock: p.Clock, Sim: p.Sim, SimServer: p.SimServer, DatabaseURL: p.DatabaseURL,
		Log: p.Log, Events: p.Events, EventsServer: p.EventsServer}
	r.wire(o)
	return r
}

func (p *Platform) wire(o Options) {
	t := p.T
	p.Store = storetest.OpenURL(t, p.DatabaseURL, p.Clock.Now)
	p.Metrics = obs.NewMetrics()
	p.Owner = fmt.Sprintf("replica-%d", ownerSeq.Add(1))
	var err error
	if p.Crypter, err = wxcrypt.New(MessageToken, AESKey, p.AppID); err != nil {
		t.Fatal(err)
	}
	wo := wechat.Options{
		BaseURL: p.SimServer.URL, ComponentAppID: p.AppID, ComponentSecret: secret.Value(ComponentSecret),
		Metrics: p.Metrics, Logger: p.Log, BaseBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		AttemptTimeout: 2 * time.Second,
	}
	if o.WeChat != nil {
		o.WeChat(&wo)
	}
	if p.WeChat, err = wechat.New(wo); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.WeChat.CloseIdle)
	p.Credentials = component.NewCredentials(component.CredentialOptions{
		AppID: p.AppID, Store: p.Store, WeChat: p.WeChat, Owner: p.Owner,
		Now: p.Clock.Now, Logger: p.Log, Metrics: p.Metrics,
	})
	to := authorizer.Options{
		ComponentAppID: p.AppID, Store: p.Store, WeChat: p.WeChat, Component: p.Credentials, Owner: p.Owner,
		Now: p.Clock.Now, Logger: p.Log, Metrics: p.Metrics,
	}
	if o.Authorizers != nil {
		o.Authorizers(&to)
	}
	p.Authorizers = authorizer.New(to)
	fo := component.FlowOptions{
		AppID: p.AppID, Store: p.Store, WeChat: p.WeChat, Credentials: p.Credentials, Owner: p.Owner,
		PublicURL: PublicURL, MPURL: p.SimServer.URL, OpenURL: p.SimServer.URL,
		Now: p.Clock.Now, Logger: p.Log, Metrics: p.Metrics, OnAuthorizerChanged: p.Authorizers.Apply,
		OnBound: o.OnBound,
	}
	if o.Flow != nil {
		o.Flow(&fo)
	}
	p.Flow = component.NewFlow(fo)
	p.Receiver = component.NewEvents(component.EventOptions{
		AppID: p.AppID, Crypter: p.Crypter, Handler: p.Flow, Receipts: p.Store, ReplayWindow: ReplayWindow,
		Now: p.Clock.Now, Logger: p.Log, Metrics: p.Metrics,
	})
	ctx := context.Background()
	if err := p.Credentials.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Authorizers.Load(ctx); err != nil {
		t.Fatal(err)
	}
}

// Direct is an event receiver that verifies and decrypts pushes with
// wxcrypt and hands them to Flow.HandleEvent, for tests that do not go
// through the HTTP layer.
func Direct(p *Platform) http.Handler { return Intercept(p, nil) }

// Intercept is Direct calling before (if not nil) with each decrypted event
// first: to hold it back, or to act before the flow sees it.
func Intercept(p *Platform, before func(ctx context.Context, ev wxcrypt.Event)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := r.URL.Query()
		plain, err := p.Crypter.Open(body, q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ev, err := wxcrypt.ParseEvent(plain)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if before != nil {
			before(r.Context(), ev)
		}
		if err := p.Flow.HandleEvent(r.Context(), ev); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "success")
	})
}

// Ctx returns a context that ends with the test (or after a minute).
func (p *Platform) Ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	p.T.Cleanup(cancel)
	return ctx
}

// PushTicket makes the simulator push a component_verify_ticket.
func (p *Platform) PushTicket() string {
	p.T.Helper()
	ticket, err := p.Sim.PushTicket(p.Ctx())
	if err != nil {
		p.T.Fatalf("push ticket: %v", err)
	}
	return ticket
}

// RenewComponentToken moves the clock to when a component token of the
// given lifetime is due and renews it. It fails t unless this replica then
// serves WeChat's current token, WeChat answered api_component_token with
// success successes times in all, and it never refused a ticket (61005,
// 61006).
func (p *Platform) RenewComponentToken(t testing.TB, lifetime time.Duration, successes int64) {
	t.Helper()
	ctx := p.Ctx()
	p.Clock.Advance(lifetime * 3 / 4)
	if err := p.Credentials.Tick(ctx); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	if tok, err := p.Credentials.Token(ctx); err != nil || tok.Reveal() != p.Sim.CurrentComponentToken() {
		t.Fatalf("component token after the renewal: %v, %v; want WeChat's current one", tok, err)
	}
	answers := p.Sim.Counters().ByErrcode[sim.EndpointComponentToken]
	if answers[0] != successes || answers[61005]+answers[61006] != 0 {
		t.Fatalf("api_component_token answers = %v, want %d successes and no refused ticket", answers, successes)
	}
}

// NewTenant creates a tenant in the store.
func (p *Platform) NewTenant(name string) string {
	p.T.Helper()
	tn, err := p.Store.CreateTenant(p.Ctx(), p.AppID, name)
	if err != nil {
		p.T.Fatal(err)
	}
	return tn.ID
}

// NewAccount creates a simulated Official Account.
func (p *Platform) NewAccount(appid string, sets ...int) {
	p.T.Helper()
	spec := sim.AccountSpec{AppID: appid, NickName: "Nick " + appid, Followers: 25}
	if len(sets) > 0 {
		spec.PermissionSets = sets
	}
	if err := p.Sim.CreateAccount(spec); err != nil {
		p.T.Fatal(err)
	}
}

// PreAuthCode extracts the pre_auth_code of an authorization page URL.
func PreAuthCode(t testing.TB, pageURL string) string {
	t.Helper()
	u, err := url.Parse(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	code := u.Query().Get("pre_auth_code")
	if code == "" {
		t.Fatalf("no pre_auth_code in %s", pageURL)
	}
	return code
}

// Authorize runs the authorization of appid for tenantID by event only:
// it starts a session, has the simulated admin confirm with its
// pre_auth_code (the simulator pushes the authorized event) and returns
// the session and the authorization code.
func (p *Platform) Authorize(tenantID, appid string) (component.Authorization, string) {
	p.T.Helper()
	ctx := p.Ctx()
	a, err := p.Flow.CreateAuthorization(ctx, tenantID, component.AuthorizationRequest{ReturnURL: "https://tenant.example.com/done"})
	if err != nil {
		p.T.Fatalf("create authorization: %v", err)
	}
	code, err := p.Sim.Authorize(ctx, appid, PreAuthCode(p.T, a.URL))
	if err != nil {
		p.T.Fatalf("sim authorize %s: %v", appid, err)
	}
	return a, code
}

// AuthorizeMany creates n accounts and authorizes each without a session
// (the simulator pushes authorized events that the flow handles),
// concurrently.
func (p *Platform) AuthorizeMany(prefix string, n int) []string {
	p.T.Helper()
	appids := make([]string, n)
	for i := range appids {
		appids[i] = AppID(prefix, i)
		p.NewAccount(appids[i])
	}
	ctx := p.Ctx()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	errs := make(chan error, n)
	for _, appid := range appids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := p.Sim.Authorize(ctx, appid, ""); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		p.T.Fatalf("authorize: %v", err)
	}
	return appids
}

// AppID builds a valid test appid from a 2-letter prefix and a number.
func AppID(prefix string, i int) string {
	const digits = "0123456789"
	b := []byte("wx" + prefix + "00000000000000")[:18]
	for j := 17; j >= 4 && i > 0; j-- {
		b[j] = digits[i%10]
		i /= 10
	}
	return string(b)
}

// Calls returns how often the simulator answered an endpoint for appid
// ("" = in total).
func (p *Platform) Calls(endpoint, appid string) int64 {
	c := p.Sim.Counters()
	if appid == "" {
		return c.Calls[endpoint]
	}
	return c.ByAccount[endpoint][appid]
}

// FollowPage plays the merchant's admin on the simulator's authorization
// page: it opens pageURL, picks appid and confirms, and returns where the
// simulator redirects the browser (redirect_uri with auth_code appended).
// The simulator pushes the authorization event before redirecting.
func (p *Platform) FollowPage(pageURL, appid string) string {
	p.T.Helper()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(pageURL)
	if err != nil {
		p.T.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.T.Fatalf("authorization page answered %d: %s", resp.StatusCode, page)
	}
	form := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	form.Set("appid", appid)
	action := formAction.FindStringSubmatch(string(page))
	if action == nil {
		p.T.Fatalf("no form on the authorization page: %s", page)
	}
	target := html.UnescapeString(action[1])
	if strings.HasPrefix(target, "/") {
		target = p.SimServer.URL + target
	}
	resp, err = noRedirect.PostForm(target, form)
	if err != nil {
		p.T.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		p.T.Fatalf("confirm answered %d: %s", resp.StatusCode, body)
	}
	return resp.Header.Get("Location")
}

var (
	hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
)
