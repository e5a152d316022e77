package component_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wechat"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

func componentRequest() component.AuthorizationRequest {
	return component.AuthorizationRequest{ReturnURL: "https://tenant.example.com/done?x=1"}
}

const appA = "wx00000000000000a1"

// callbackQuery splits the redirect the simulator sends the browser to.
func callbackQuery(t *testing.T, location string) (session, authCode string) {
	t.Helper()
	u, err := url.Parse(location)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(location, componenttest.PublicURL+"/wechat/callback?") {
		t.Fatalf("redirect to %s", location)
	}
	return u.Query().Get("session"), u.Query().Get("auth_code")
}

func TestCreateAuthorizationURLs(t *testing.T) {
	t.Parallel()
	p := componenttest.New(t, componenttest.Options{Dialect: store.SQLite})
	p.PushTicket()
	tenant := p.NewTenant("acme")
	ctx := p.Ctx()
	a, err := p.Flow.CreateAuthorization(ctx, tenant, component.AuthorizationRequest{ReturnURL: "https://t.example/x", AuthType: 1, BizAppID: appA})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.ID, "as_") || !a.ExpiresAt.Equal(p.Clock.Now().Add(600*time.Second)) {
		t.Fatalf("authorization = %+v", a)
	}
	code := componenttest.PreAuthCode(t, a.URL)
	redirect := url.QueryEscape(componenttest.PublicURL + "/wechat/callback?session=" + a.ID)
	params := "component_appid=" + componenttest.ComponentAppID + "&pre_auth_code=" + url.QueryEscape(code) +
		"&redirect_uri=" + redirect + "&auth_type=1&biz_appid=" + appA
	if want := p.SimServer.URL + "/cgi-bin/componentloginpage?" + params; a.URL != want {
		t.Fatalf("url =\n%s\nwant\n%s", a.URL, want)
	}
	if want := p.SimServer.URL + "/wxaopen/safe/bindcomponent?action=bindcomponent&no_scan=1&" + params + "#wechat_redirect"; a.MobileURL != want {
		t.Fatalf("mobile_url =\n%s\nwant\n%s", a.MobileURL, want)
	}
	sess, err := p.Store.SessionByPreAuthCode(ctx, "preauthcode@@@nope")
	if !errs.Is(err, errs.NotFound) {
		t.Fatalf("unknown code found %+v", sess)
	}
	sess, err = p.Store.GetSession(ctx, a.ID)
	if err != nil || sess.TenantID != tenant || sess.ReturnURL != "https://t.example/x" || sess.AuthType != 1 || sess.BizAppID != appA {
		t.Fatalf("session = %+v, %v", sess, err)
	}

	for _, bad := range []component.AuthorizationRequest{
		{ReturnURL: ""}, {ReturnURL: "/relative"}, {ReturnURL: "ftp://x.example/"}, {ReturnURL: "javascript:alert(1)"},
		{ReturnURL: "https:///nohost"}, {ReturnURL: "https://ok.example/", AuthType: 4}, {ReturnURL: "https://ok.example/", BizAppID: "nope"},
		{ReturnURL: "https://ok.example/" + strings.Repeat("a", 3000)},
	} {
		if _, err := p.Flow.CreateAuthorization(ctx, tenant, bad); !errs.Is(err, errs.InvalidArgument) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := p.Flow.CreateAuthorization(ctx, "", componentRequest()); !errs.Is(err, errs.Internal) {
		t.Errorf("no tenant must fail closed: %v", err)
	}
	if n := p.Calls(sim.EndpointCreatePreAuthCode, ""); n != 1 {
		t.Fatalf("refused requests reached WeChat: %d calls", n)
	}
}

// checkAuthorized asserts appid is stored authorized with sets, bound to
// tenant only, and served by the token manager with WeChat's current token.
func checkAuthorized(t *testing.T, p *componenttest.Platform, tenant, appid string, sets []int) store.Authorizer {
	t.Helper()
	ctx := p.Ctx()
	a, err := p.Store.TenantAuthorizer(ctx, componenttest.ComponentAppID, tenant, appid)
	if err != nil {
		t.Fatalf("authorizer not bound to the tenant: %v", err)
	}
	if a.Status != store.StatusAuthorized || !slices.Equal(a.PermissionSets, sets) || a.NickName != "Nick "+appid ||
		a.AccessToken.Reveal() != p.Sim.CurrentAccessToken(appid) || a.RefreshToken.IsZero() {
		t.Fatalf("stored authorizer = %+v", a)
	}
	if err := p.Authorizers.Sync(ctx); err != nil { // the periodic poll
		t.Fatal(err)
	}
	got, ok := p.Authorizers.Get(appid)
	if !ok || got.AccessToken != a.AccessToken || got.Version != a.Version {
		t.Fatalf("token manager has %+v", got)
	}
	bindings, _ := p.Store.ListBindings(ctx, componenttest.ComponentAppID)
	n := 0
	for _, b := range bindings {
		if b.AppID == appid {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d bindings for %s", n, appid)
	}
	return a
}

// quickCallbacks makes a callback wait at most a moment for WeChat's event.
func quickCallbacks(o *component.FlowOptions) { o.CallbackWait = 200 * time.Millisecond }

// captureEvents answers every push with 500 (WeChat will retry it) and
// keeps the decrypted events, for the test to deliver later.
func captureEvents(t *testing.T, p *componenttest.Platform) *[]wxcrypt.Event {
	t.Helper()
	var mu sync.Mutex
	var got []wxcrypt.Event
	p.Events.Set(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := r.URL.Query()
		plain, err := p.Crypter.Open(body, q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"))
		if err == nil {
			if ev, err := wxcrypt.ParseEvent(plain); err == nil {
				mu.Lock()
				got = append(got, ev)
				mu.Unlock()
			}
		}
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	return &got
}

// TestCallbackWaitsForTheEvent: the browser's redirect alone does not
// complete an authorization, since only WeChat's authorized event ties its
// code to the session. While the event is lost the callback says WeChat has
// not confirmed (and exchanges nothing); WeChat's retry of the event
// completes it, and the browser reloading the callback is then sent back.
func TestCallbackWaitsForTheEvent(t *testing.T) {
	t.Parallel()
	p := componenttest.New(t, componenttest.Options{Flow: quickCallbacks})
	p.PushTicket()
	p.NewAccount(appA, 1, 2)
	tenant := p.NewTenant("acme")
	ctx := p.Ctx()
	a, err := p.Flow.CreateAuthorization(ctx, tenant, componentRequest())
	if err != nil {
		t.Fatal(err)
	}
	lost := captureEvents(t, p)
	session, code := callbackQuery(t, p.FollowPage(a.URL, appA))
	if session != a.ID || code == "" || len(*lost) != 1 || (*lost)[0].AuthorizationCode != code {
		t.Fatalf("session %q code %q, events %+v", session, code, *lost)
	}
	res, err := p.Flow.Callback(ctx, session, code)
	if err != component.ErrNotConfirmed || res.ReturnURL != "" {
		t.Fatalf("callback before the event: got %+v, %v, want ErrNotConfirmed and no redirect", res, err)
	}
	if n := p.Calls(sim.EndpointQueryAuth, ""); n != 0 {
		t.Fatalf("api_query_auth calls before the event: got %d, want 0", n)
	}
	if err := p.Flow.HandleEvent(ctx, (*lost)[0]); err != nil { // WeChat's retry
		t.Fatal(err)
	}
	checkAuthorized(t, p, tenant, appA, []int{1, 2})
	res, err = p.Flow.Callback(ctx, session, code)
	if err != nil || res.AppID != appA || res.Pending || res.ReturnURL != "https://tenant.example.com/done?x=1" {
		t.Fatalf("reloaded callback: got %+v, %v, want %s authorized", res, err, appA)
	}
	if n := p.Calls(sim.EndpointQueryAuth, ""); n != 1 {
		t.Fatalf("api_query_auth calls = %d, want 1", n)
	}
}

// TestCodeOfAnotherSessionIsRefused is the cross-tenant attack: an
// authorization code WeChat issued for tenant A's session is presented, on
// the callback, to tenant B's session before WeChat's event arrives. The
// callback waits for the event, which names A's pre_auth_code, and refuses;
// the account is bound to A alone, and presenting the code again changes
// nothing.
func TestCodeOfAnotherSessionIsRefused(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		p := componenttest.New(t, componenttest.Options{Dialect: d, Flow: func(o *component.FlowOptions) { o.CallbackWait = 20 * time.Second }})
		p.PushTicket()
		p.NewAccount(appA, 1, 2)
		victim, attacker := p.NewTenant("victim"), p.NewTenant("attacker")
		ctx := p.Ctx()
		va, err := p.Flow.CreateAuthorization(ctx, victim, componentRequest())
		if err != nil {
			t.Fatal(err)
		}
		aa, err := p.Flow.CreateAuthorization(ctx, attacker, component.AuthorizationRequest{ReturnURL: "https://attacker.example/"})
		if err != nil {
			t.Fatal(err)
		}
		// Hold the victim's event until the attacker's callback is waiting.
		gotCode, release := make(chan string, 1), make(chan struct{})
		p.Events.Set(componenttest.Intercept(p, func(_ context.Context, ev wxcrypt.Event) {
			gotCode <- ev.AuthorizationCode
			<-release
		}))
		pushed := make(chan error, 1)
		go func() {
			_, err := p.Sim.Authorize(ctx, appA, componenttest.PreAuthCode(t, va.URL))
			pushed <- err
		}()
		code := <-gotCode
		type answer struct {
			res component.CallbackResult
			err error
		}
		stolen := make(chan answer, 1)
		go func() {
			res, err := p.Flow.Callback(ctx, aa.ID, code)
			stolen <- answer{res, err}
		}()
		close(release)
		if err := <-pushed; err != nil {
			t.Fatal(err)
		}
		got := <-stolen
		if got.err != component.ErrForeignCode || got.res.ReturnURL != "" || got.res.AppID != "" {
			t.Fatalf("the victim's code on the attacker's session: got %+v, %v, want ErrForeignCode without a redirect", got.res, got.err)
		}
		if res, err := p.Flow.Callback(ctx, aa.ID, code); err != component.ErrForeignCode || res.ReturnURL != "" {
			t.Fatalf("presented again after the event: got %+v, %v, want ErrForeignCode", res, err)
		}
		checkAuthorized(t, p, victim, appA, []int{1, 2})
		if bound, _ := p.Store.BoundTenants(ctx, p.AppID, appA); !slices.Equal(bound, []string{victim}) {
			t.Fatalf("bound to %v, want the victim %s alone", bound, victim)
		}
		if sess, _ := p.Store.GetSession(ctx, aa.ID); sess.CompletedAt != nil {
			t.Fatalf("the attacker's session completed: %+v", sess)
		}
		if res, err := p.Flow.Callback(ctx, va.ID, code); err != nil || res.AppID != appA {
			t.Fatalf("the victim's own callback: got %+v, %v, want %s", res, err, appA)
		}
	})
}

func TestAuthorizationByEventOnly(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		p := componenttest.New(t, componenttest.Options{Dialect: d})
		p.PushTicket()
		p.NewAccount(appA, 2, 100)
		tenant := p.NewTenant("acme")
		a, code := p.Authorize(tenant, appA) // the admin closes the browser before the redirect
		checkAuthorized(t, p, tenant, appA, []int{2, 100})
		sess, _ := p.Store.GetSession(p.Ctx(), a.ID)
		if sess.CompletedAt == nil || sess.AppID != appA {
			t.Fatalf("session not completed: %+v", sess)
		}
		// The browser arriving late with the event's code finds the session
		// completed; the code is not exchanged again. Any other code is not
		// this session's.
		res, err := p.Flow.Callback(p.Ctx(), a.ID, code)
		if err != nil || res.AppID != appA {
			t.Fatalf("late callback = %+v, %v", res, err)
		}
		if res, err := p.Flow.Callback(p.Ctx(), a.ID, "queryauthcode@@@whatever"); err != component.ErrForeignCode || res.ReturnURL != "" {
			t.Fatalf("late callback with another code: got %+v, %v, want ErrForeignCode", res, err)
		}
		if n := p.Calls(sim.EndpointQueryAuth, ""); n != 1 {
			t.Fatalf("api_query_auth calls = %d", n)
		}
	})
}

func TestAuthorizationEventThenRedirectThroughThePage(t *testing.T) {
	t.Parallel()
	p := componenttest.New(t, componenttest.Options{})
	p.PushTicket()
	p.NewAccount(appA)
	tenant := p.NewTenant("acme")
	a, err := p.Flow.CreateAuthorization(p.Ctx(), tenant, componentRequest())
	if err != nil {
		t.Fatal(err)
	}
	// The page pushes the event (handled) and then redirects the browser.
	session, code := callbackQuery(t, p.FollowPage(a.URL, appA))
	res, err := p.Flow.Callback(p.Ctx(), session, code)
	if err != nil || res.AppID != appA {
		t.Fatalf("callback = %+v, %v", res, err)
	}
	checkAuthorized(t, p, tenant, appA, []int{1, 2})
	if n := p.Calls(sim.EndpointQueryAuth, ""); n != 1 {
		t.Fatalf("api_query_auth calls = %d", n)
	}
}

// TestAuthorizationEventAndRedirectRacing holds the authorized event while
// the callback with the same code runs, on two replicas, so both exchange
// the one-time code at once: one wins at WeChat, the other sees 61009 and
// waits for the winner's session completion.
func TestAuthorizationEventAndRedirectRacing(t *testing.T) {
	t.Parallel()
	// Rounds 0-2 run the callback on another replica, 3-5 on the replica
	// that handles the event.
	for round := range 6 {
		p := componenttest.New(t, componenttest.Options{})
		other := p.Replica(componenttest.Options{})
		if round >= 3 {
			other = p
		}
		p.PushTicket()
		p.NewAccount(appA)
		tenant := p.NewTenant("acme")
		a, err := p.Flow.CreateAuthorization(p.Ctx(), tenant, componentRequest())
		if err != nil {
			t.Fatal(err)
		}
		gotCode := make(chan string, 1)
		release := make(chan struct{})
		p.Events.Set(componenttest.Intercept(p, func(_ context.Context, ev wxcrypt.Event) {
			gotCode <- ev.AuthorizationCode
			<-release
		}))
		pushed := make(chan error, 1)
		go func() {
			_, err := p.Sim.Authorize(p.Ctx(), appA, componenttest.PreAuthCode(t, a.URL))
			pushed <- err
		}()
		code := <-gotCode
		var wg sync.WaitGroup
		var res component.CallbackResult
		var cerr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, cerr = other.Flow.Callback(p.Ctx(), a.ID, code)
		}()
		if round%2 == 0 {
			time.Sleep(time.Millisecond)
		}
		close(release)
		wg.Wait()
		if err := <-pushed; err != nil {
			t.Fatalf("round %d: event: %v", round, err)
		}
		if cerr != nil || res.AppID != appA {
			t.Fatalf("round %d: callback = %+v, %v", round, res, cerr)
		}
		checkAuthorized(t, p, tenant, appA, []int{1, 2})
		if n := p.Calls(sim.EndpointQueryAuth, ""); n > 2 {
			t.Fatalf("api_query_auth calls = %d", n)
		}
		if ok := p.Sim.Counters().ByErrcode[sim.EndpointQueryAuth][0]; ok != 1 {
			t.Fatalf("round %d: %d successful exchanges", round, ok)
		}
		if n := p.Calls(sim.EndpointGetAuthorizerList, ""); n != 0 {
			t.Fatalf("round %d: a needless recovery (%d api_get_authorizer_list calls)", round, n)
		}
	}
}

func TestUpdateAuthorizedChangesSets(t *testing.T) {
	t.Parallel()
	p := componenttest.New(t, componenttest.Options{})
	p.PushTicket()
	p.NewAccount(appA, 1, 2)
	tenant := p.NewTenant("acme")
	p.Authorize(tenant, appA)
	before, _ := p.Authorizers.Get(appA)
	// The admin removes set 2 and adds 100: WeChat pushes updateauthorized
	// (without a pre_auth_code) with a new code and a new refresh token.
	if err := p.Sim.SetPermissionSets(p.Ctx(), appA, []int{1, 100}, true); err != nil {
		t.Fatal(err)
	}
	a := checkAuthorized(t, p, tenant, appA, []int{1, 100})
	if a.Version <= before.Version {
		t.Fatal("version did not move")
	}
	if got, _ := p.Authorizers.Get(appA); !slices.Equal(got.PermissionSets, []int{1, 100}) {
		t.Fatalf("token manager sets = %v", got.PermissionSets)
	}
	// The new refresh token works.
	if _, err := p.Authorizers.ForceRefresh(p.Ctx(), appA); err != nil {
		t.Fatalf("refresh with the rotated refresh token: %v", err)
	}
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		p := componenttest.New(t, componenttest.Options{Dialect: d})
		other := p.Replica(componenttest.Options{})
		p.PushTicket()
		p.NewAccount(appA)
		tenant := p.NewTenant("acme")
		p.Authorize(tenant, appA)
		if err := other.Authorizers.Sync(p.Ctx()); err != nil {
			t.Fatal(err)
		}
		if err := p.Sim.Unauthorize(p.Ctx(), appA); err != nil {
			t.Fatal(err)
		}
		a, err := p.Store.TenantAuthorizer(p.Ctx(), componenttest.ComponentAppID, tenant, appA)
		if err != nil || a.Status != store.StatusUnauthorized || !a.AccessToken.IsZero() || !a.RefreshToken.IsZero() || !a.TokenExpiresAt.IsZero() {
			t.Fatalf("after unauthorized: %+v, %v", a, err)
		}
		// This replica refuses at once; the other one after its next poll.
		if _, err := p.Authorizers.Token(p.Ctx(), appA); !errs.Is(err, errs.AuthorizerUnauthorized) {
			t.Fatalf("token after unauthorized: %v", err)
		}
		if err := other.Authorizers.Sync(p.Ctx()); err != nil {
			t.Fatal(err)
		}
		if g, _ := other.Authorizers.Get(appA); g.Status != store.StatusUnauthorized || !g.AccessToken.IsZero() {
			t.Fatalf("other replica: %+v", g)
		}
		if _, err := other.Authorizers.OnTokenError(p.Ctx(), appA, "90_old"); !errs.Is(err, errs.AuthorizerUnauthorized) {
			t.Fatalf("token error after unauthorized: %v", err)
		}
		if _, err := p.Authorizers.ForceRefresh(p.Ctx(), appA); !errs.Is(err, errs.AuthorizerUnauthorized) {
			t.Fatalf("forced refresh after unauthorized: %v", err)
		}
		p.Clock.Advance(3 * time.Hour)
		p.Authorizers.RefreshDue(p.Ctx())
		if n := p.Calls(sim.EndpointAuthorizerToken, ""); n != 0 {
			t.Fatalf("refreshed an unauthorized account %d times", n)
		}
		// Authorizing again resumes it.
		p.Clock.Advance(time.Second)
		p.PushTicket()
		p.Authorize(tenant, appA)
		checkAuthorized(t, p, tenant, appA, []int{1, 2})
	})
}

func TestCallbackWithBadSessions(t *testing.T) {
	t.Parallel()
	p := componenttest.New(t, componenttest.Options{Dialect: store.SQLite, Flow: quickCallbacks})
	p.PushTicket()
	p.NewAccount(appA)
	tenant := p.NewTenant("acme")
	ctx := p.Ctx()
	for _, id := range []string{"", "as_unknown"} {
		res, err := p.Flow.Callback(ctx, id, "code")
		if err != component.ErrBadSession || res.ReturnURL != "" {
			t.Fatalf("session %q: %+v, %v", id, res, err)
		}
	}
	a, err := p.Flow.CreateAuthorization(ctx, tenant, componentRequest())
	if err != nil {
		t.Fatal(err)
	}
	// No code: nowhere to redirect.
	if res, err := p.Flow.Callback(ctx, a.ID, ""); err != component.ErrBadSession || res.ReturnURL != "" {
		t.Fatalf("no code: %+v, %v", res, err)
	}
	// A code WeChat never issued (no event names it): not confirmed, no
	// redirect, nothing exchanged.
	res, err := p.Flow.Callback(ctx, a.ID, "queryauthcode@@@forged")
	if err != component.ErrNotConfirmed || res.ReturnURL != "" {
		t.Fatalf("forged code: %+v, %v", res, err)
	}
	// Just past the pre_auth_code's expiry the callback still waits for an
	// auth_code WeChat issued before it.
	p.Clock.Advance(601 * time.Second)
	if _, err := p.Flow.Callback(ctx, a.ID, "code"); err == component.ErrBadSession {
		t.Fatal("the session expired with its pre_auth_code, before the auth_code it led to")
	}
	// Past the auth_code's lifetime too: expired.
	p.Clock.Advance(600 * time.Second)
	res, err = p.Flow.Callback(ctx, a.ID, "code")
	if err != component.ErrBadSession || res.ReturnURL != "" {
		t.Fatalf("expired session: %+v, %v", res, err)
	}
	if list, _ := p.Store.ListAuthorizers(ctx, componenttest.ComponentAppID); len(list) != 0 {
		t.Fatalf("stored %d authorizers", len(list))
	}
}

// TestLateUnauthorizedEventIsIgnored: an unauthorized event created before
// the account's latest authorization (a late retry, or out of order) does
// not undo that authorization; an update keeps authorized_at.
func TestLateUnauthorizedEventIsIgnored(t *testing.T) {
	t.Parallel()
	p := componenttest.New(t, componenttest.Options{Dialect: store.SQLite})
	p.PushTicket()
	p.NewAccount(appA)
	tenant := p.NewTenant("acme")
	p.Authorize(tenant, appA)
	first, err := p.Store.GetAuthorizer(p.Ctx(), componenttest.ComponentAppID, appA)
	if err != nil {
		t.Fatal(err)
	}
	stale := first.AuthorizedAt.Add(-time.Minute)
	p.Clock.Advance(time.Minute)
	if err := p.Flow.Unauthorized(p.Ctx(), appA, stale); err != nil {
		t.Fatal(err)
	}
	if a, _ := p.Store.GetAuthorizer(p.Ctx(), componenttest.ComponentAppID, appA); a.Status != store.StatusAuthorized || a.AccessToken.IsZero() {
		t.Fatalf("a stale unauthorized event changed the account: %+v", a)
	}
	// updateauthorized keeps when the authorization began.
	p.Authorize(tenant, appA)
	if a, _ := p.Store.GetAuthorizer(p.Ctx(), componenttest.ComponentAppID, appA); !a.AuthorizedAt.Equal(first.AuthorizedAt) {
		t.Fatalf("authorized_at moved from %v to %v on an update", first.AuthorizedAt, a.AuthorizedAt)
	}
	// A current one is applied.
	if err := p.Flow.Unauthorized(p.Ctx(), appA, p.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if a, _ := p.Store.GetAuthorizer(p.Ctx(), componenttest.ComponentAppID, appA); a.Status != store.StatusUnauthorized {
		t.Fatalf("a current unauthorized event was not applied: %+v", a)
	}
}

// loseExchangeAnswers makes every authorization event p receives arrive
// after an exchange of its code whose answer was lost: WeChat used the code,
// the gateway never saw the result. If holdFor > 0, that exchange runs as if
// on another replica (a browser callback): it holds the code's lease for
// holdFor, then gives up.
func loseExchangeAnswers(t *testing.T, p *componenttest.Platform, holdFor time.Duration) {
	p.Events.Set(componenttest.Intercept(p, func(ctx context.Context, ev wxcrypt.Event) {
		if ev.AuthorizationCode == "" {
			return
		}
		if holdFor > 0 {
			sum := sha256.Sum256([]byte(ev.AuthorizationCode))
			lease := "authcode:" + hex.EncodeToString(sum[:16])
			if ok, err := p.Store.TryLease(ctx, lease, "the-callback-replica", time.Minute); !ok || err != nil {
				t.Errorf("taking the code's lease: %v, %v", ok, err)
			}
			time.AfterFunc(holdFor, func() { _ = p.Store.ReleaseLease(context.Background(), lease, "the-callback-replica") })
		}
		tok, err := p.Credentials.Token(ctx)
		if err != nil {
			t.Error(err)
		}
		if _, err := p.WeChat.QueryAuth(ctx, tok, secret.Value(ev.AuthorizationCode)); err != nil {
			t.Errorf("the lost exchange: %v", err)
		}
	}))
}

// TestLostExchangeAnswerIsRecovered: after a lost exchange every later
// exchange of the code answers 61009. The authorized event names the
// account; the flow recovers its tokens through api_get_authorizer_list and
// completes the authorization, bound to the session's tenant, also when the
// lost exchange was a callback on another replica that held the code's lease.
func TestLostExchangeAnswerIsRecovered(t *testing.T) {
	t.Parallel()
	for _, hold := range []time.Duration{0, 300 * time.Millisecond} {
		forEachDialect(t, func(t *testing.T, d store.Dialect) {
			p := componenttest.New(t, componenttest.Options{Dialect: d})
			p.PushTicket()
			p.NewAccount(appA, 2, 100)
			tenant := p.NewTenant("acme")
			loseExchangeAnswers(t, p, hold)
			a, _ := p.Authorize(tenant, appA)
			checkAuthorized(t, p, tenant, appA, []int{2, 100})
			if sess, _ := p.Store.GetSession(p.Ctx(), a.ID); sess.CompletedAt == nil || sess.AppID != appA {
				t.Fatalf("session not completed: %+v", sess)
			}
			c := p.Sim.Counters()
			if n := c.ByErrcode[sim.EndpointQueryAuth]; n[0] != 1 || n[61009] != 1 {
				t.Fatalf("api_query_auth answers = %v, want one success (lost) and one 61009", n)
			}
			if n := p.Calls(sim.EndpointGetAuthorizerList, ""); n != 1 {
				t.Fatalf("api_get_authorizer_list calls = %d, want 1", n)
			}
		})
	}
}

// TestLostUpdateAnswerStillUpdatesTheSets: an updateauthorized event whose
// code was used by a lost exchange still brings the new sets in, and the
// rotated refresh token is recovered when the old one is refused.
func TestLostUpdateAnswerStillUpdatesTheSets(t *testing.T) {
	t.Parallel()
	for _, hold := range []time.Duration{0, 300 * time.Millisecond} {
		t.Run(hold.String(), func(t *testing.T) {
			t.Parallel()
			p := componenttest.New(t, componenttest.Options{})
			p.PushTicket()
			p.NewAccount(appA, 1, 2)
			tenant := p.NewTenant("acme")
			p.Authorize(tenant, appA)
			loseExchangeAnswers(t, p, hold)
			if err := p.Sim.SetPermissionSets(p.Ctx(), appA, []int{1, 100}, true); err != nil {
				t.Fatal(err)
			}
			// The access token WeChat issued with the lost answer is unknown
			// here; the stored one keeps serving (WeChat's overlap) until
			// refreshed.
			if a, err := p.Store.TenantAuthorizer(p.Ctx(), componenttest.ComponentAppID, tenant, appA); err != nil ||
				!slices.Equal(a.PermissionSets, []int{1, 100}) || a.Status != store.StatusAuthorized {
				t.Fatalf("after the lost update: %+v, %v", a, err)
			}
			if _, err := p.Authorizers.ForceRefresh(p.Ctx(), appA); err != nil {
				t.Fatalf("refresh after the lost update: %v", err)
			}
			if a, _ := p.Authorizers.Get(appA); a.AccessToken.Reveal() != p.Sim.CurrentAccessToken(appA) || a.Status != store.StatusAuthorized {
				t.Fatalf("after the refresh: %+v", a)
			}
		})
	}
}

// TestSharedErrorsStayUnchanged: ErrNoTicket and ErrBadSession are answered
// to every caller at once; deriving a variant of one (as the HTTP layer
// may) must leave the shared value as it was.
func TestSharedErrorsStayUnchanged(t *testing.T) {
	t.Parallel()
	for name, shared := range map[string]*errs.Error{"ErrNoTicket": component.ErrNoTicket, "ErrBadSession": component.ErrBadSession} {
		t.Run(name, func(t *testing.T) {
			code, msg := shared.Code, shared.Message
			derived := shared.WithDetails(map[string]any{"request": "r1"}).WithWeChat(wechat.ErrTicketExpired, "").WithRetryAfter(time.Minute)
			if derived.Details["request"] != "r1" || derived.WeChatErrcode != wechat.ErrTicketExpired || derived.RetryAfter != time.Minute {
				t.Fatalf("derived %+v, want the request detail, errcode 61005 and a 1m Retry-After", derived)
			}
			if shared.Details != nil || shared.WeChatErrcode != 0 || shared.WeChatErrmsg != "" || shared.RetryAfter != 0 ||
				shared.Code != code || shared.Message != msg || shared.Cause != nil {
				t.Fatalf("%s changed: %+v", name, shared)
			}
		})
	}
}
