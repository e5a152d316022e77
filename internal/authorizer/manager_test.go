package authorizer_test

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxgate/wxgate/internal/authorizer"
	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/wechat"
)

const appA = "wx00000000000000a1"

// setup starts a platform with one authorized account.
func setup(t *testing.T, o componenttest.Options, appids ...string) *componenttest.Platform {
	t.Helper()
	p := componenttest.New(t, o)
	p.PushTicket()
	tenant := p.NewTenant("acme")
	for _, appid := range appids {
		p.NewAccount(appid)
		p.Authorize(tenant, appid)
	}
	return p
}

// getFans calls user/get for appid with tok and returns the errcode.
func getFans(t *testing.T, p *componenttest.Platform, tok secret.Value) int {
	t.Helper()
	resp, err := p.WeChat.Call(p.Ctx(), wechat.Request{API: "getFans", Path: "/cgi-bin/user/get", AccessToken: tok})
	if err != nil {
		t.Fatalf("user/get: %v", err)
	}
	return resp.Errcode
}

func TestProactiveRefreshBeforeExpiry(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			const life = 20 * time.Second
			p := setup(t, componenttest.Options{Dialect: d, TokenLifetime: life}, appA)
			ctx := p.Ctx()
			start, _ := p.Authorizers.Get(appA)
			var refreshedAt []time.Duration
			last := start.AccessToken
			for step := 0; step < 100; step++ { // five lifetimes in 1 s steps
				p.Clock.Advance(time.Second)
				p.Authorizers.RefreshDue(ctx)
				a, ok := p.Authorizers.Get(appA)
				if !ok {
					t.Fatal("account vanished")
				}
				now := p.Clock.Now()
				if left := a.TokenExpiresAt.Sub(now); left < life/4-time.Second {
					t.Fatalf("at +%ds served a token %v before its expiry", step+1, left)
				}
				if a.AccessToken != last {
					refreshedAt = append(refreshedAt, now.Sub(start.TokenRefreshedAt))
					last = a.AccessToken
				}
				if a.AccessToken.Reveal() != p.Sim.CurrentAccessToken(appA) {
					t.Fatalf("at +%ds the served token is not WeChat's current one", step+1)
				}
			}
			if len(refreshedAt) < 5 || len(refreshedAt) > 10 {
				t.Fatalf("refreshes at %v", refreshedAt)
			}
			first := refreshedAt[0]
			if first < life/2 || first > life*3/4+time.Second {
				t.Fatalf("first refresh at %v, want within 50-75%% of %v", first, life)
			}
			if n := p.Calls(sim.EndpointAuthorizerToken, appA); n != int64(len(refreshedAt)) {
				t.Fatalf("%d api_authorizer_token calls for %d refreshes", n, len(refreshedAt))
			}
			if getFans(t, p, last) != 0 {
				t.Fatal("the served token is refused")
			}
		})
	}
}

func TestGetMakesNoDatabaseQuery(t *testing.T) {
	t.Parallel()
	p := setup(t, componenttest.Options{Dialect: store.SQLite}, appA)
	var queries atomic.Int64
	p.Store.OnQuery(func() { queries.Add(1) })
	for range 1000 {
		if a, ok := p.Authorizers.Get(appA); !ok || a.AccessToken.IsZero() || !a.RefreshToken.IsZero() {
			t.Fatalf("get = %+v", a)
		}
		if _, err := p.Authorizers.Token(p.Ctx(), appA); err != nil {
			t.Fatal(err)
		}
	}
	if n := queries.Load(); n != 0 {
		t.Fatalf("the hot path made %d queries", n)
	}
}

// TestConcurrentTokenErrorsRefreshOnce: WeChat invalidates the token and
// 50 requests, spread over two replicas, all get 40001 at once.
func TestConcurrentTokenErrorsRefreshOnce(t *testing.T) {
	t.Parallel()
	p := setup(t, componenttest.Options{}, appA)
	other := p.Replica(componenttest.Options{})
	ctx := p.Ctx()
	if err := other.Authorizers.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	old, _ := p.Authorizers.Get(appA)
	if err := p.Sim.InvalidateToken(appA); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 50 {
		r := p
		if i%2 == 1 {
			r = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, _ := r.Authorizers.Get(appA)
			<-start
			if code := getFans(t, r, a.AccessToken); code != wechat.ErrInvalidCredential {
				t.Errorf("first call answered %d", code)
				return
			}
			tok, err := r.Authorizers.OnTokenError(ctx, appA, a.AccessToken)
			if err != nil {
				t.Errorf("on token error: %v", err)
				return
			}
			if code := getFans(t, r, tok); code != 0 {
				t.Errorf("retry answered %d", code)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := p.Calls(sim.EndpointAuthorizerToken, appA); n != 1 {
		t.Fatalf("api_authorizer_token calls = %d, want exactly 1", n)
	}
	// A stale failure report does not refresh again.
	tok, err := p.Authorizers.OnTokenError(ctx, appA, old.AccessToken)
	if err != nil || tok == old.AccessToken {
		t.Fatalf("stale token error: %v, %v", tok, err)
	}
	if n := p.Calls(sim.EndpointAuthorizerToken, appA); n != 1 {
		t.Fatalf("a stale token error refreshed: %d calls", n)
	}
}

// refreshesExpected replays the schedule: each refresh happens at the first
// step at or after the due time of the previous token.
func refreshesExpected(a store.Authorizer, life, step time.Duration, end time.Time) int {
	n := 0
	t := a.TokenRefreshedAt
	for {
		due := authorizer.DueAt(store.Authorizer{AppID: a.AppID, TokenRefreshedAt: t, TokenExpiresAt: t.Add(life)})
		at := a.TokenRefreshedAt
		for at.Before(due) {
			at = at.Add(step)
		}
		if at.After(end) {
			return n
		}
		n++
		t = at
	}
}

// TestTwoReplicasRefreshEachAccountOncePerWindow runs two token managers,
// each with its own connection pool on one PostgreSQL schema, through
// three lifetimes of 200 accounts, both ticking at once every second.
func TestTwoReplicasRefreshEachAccountOncePerWindow(t *testing.T) {
	t.Parallel()
	const (
		life  = 60 * time.Second
		step  = time.Second
		steps = 180
	)
	p := componenttest.New(t, componenttest.Options{TokenLifetime: life})
	p.PushTicket()
	appids := p.AuthorizeMany("rp", 200)
	other := p.Replica(componenttest.Options{})
	replicas := []*componenttest.Platform{p, other}
	ctx := p.Ctx()
	initial := map[string]store.Authorizer{}
	for _, appid := range appids {
		a, ok := p.Authorizers.Get(appid)
		if !ok {
			t.Fatalf("%s not cached", appid)
		}
		initial[appid] = a
	}
	p.Sim.ResetCounters()
	for i := 0; i < steps; i++ {
		p.Clock.Advance(step)
		var wg sync.WaitGroup
		for _, r := range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.Authorizers.Sync(ctx); err != nil {
					t.Error(err)
				}
				r.Authorizers.RefreshDue(ctx)
			}()
		}
		wg.Wait()
		if i%20 == 19 {
			for _, r := range replicas {
				if err := r.Authorizers.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				for _, appid := range appids {
					a, _ := r.Authorizers.Get(appid)
					if a.AccessToken.Reveal() != p.Sim.CurrentAccessToken(appid) {
						t.Fatalf("step %d: %s serves a token that is not WeChat's current one", i, appid)
					}
					if left := a.TokenExpiresAt.Sub(p.Clock.Now()); left < life/4-step {
						t.Fatalf("step %d: %s served %v before expiry", i, appid, left)
					}
				}
			}
		}
	}
	end := p.Clock.Now()
	counts := p.Sim.Counters().ByAccount[sim.EndpointAuthorizerToken]
	total := 0
	for _, appid := range appids {
		want := refreshesExpected(initial[appid], life, step, end)
		if got := counts[appid]; got != int64(want) {
			t.Errorf("%s: %d api_authorizer_token calls, want %d (one per window)", appid, got, want)
		}
		total += want
	}
	if total < 3*200 {
		t.Fatalf("only %d refreshes expected in three lifetimes", total)
	}
	if n := p.Sim.Counters().Calls[sim.EndpointAuthorizerToken]; n != int64(total) {
		t.Fatalf("api_authorizer_token calls = %d, want %d", n, total)
	}
}

// TestRefreshTokenRecoveredThroughTheAuthorizerList: the account
// re-authorized while the event was lost, so the stored refresh token is
// stale (61023); api_get_authorizer_list has the new one.
func TestRefreshTokenRecoveredThroughTheAuthorizerList(t *testing.T) {
	t.Parallel()
	p := setup(t, componenttest.Options{}, appA)
	ctx := p.Ctx()
	good := componenttest.Direct(p)
	p.Events.Set(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "lost", 500) }))
	if _, err := p.Sim.Authorize(ctx, appA, ""); !errors.Is(err, sim.ErrPush) {
		t.Fatalf("re-authorization with the event lost: %v", err)
	}
	p.Events.Set(good)
	a, err := p.Authorizers.ForceRefresh(ctx, appA)
	if err != nil || a.Status != store.StatusAuthorized || a.AccessToken.Reveal() != p.Sim.CurrentAccessToken(appA) {
		t.Fatalf("after recovery: %+v, %v", a, err)
	}
	if n := p.Calls(sim.EndpointGetAuthorizerList, ""); n != 1 {
		t.Fatalf("api_get_authorizer_list calls = %d", n)
	}
	if got := testutil.ToFloat64(p.Metrics.TokenRefreshes.WithLabelValues("authorizer", "recovered")); got != 1 {
		t.Fatalf("recovered = %v", got)
	}
	stored, _ := p.Store.GetAuthorizer(ctx, componenttest.ComponentAppID, appA)
	if stored.Status != store.StatusAuthorized || stored.AccessToken != a.AccessToken {
		t.Fatalf("stored = %+v", stored)
	}
	// The recovered refresh token was stored: the next refresh needs no list.
	if _, err := p.Authorizers.ForceRefresh(ctx, appA); err != nil {
		t.Fatal(err)
	}
	if n := p.Calls(sim.EndpointGetAuthorizerList, ""); n != 1 {
		t.Fatalf("api_get_authorizer_list calls = %d", n)
	}
}

// TestUnrecoverableRefreshTokenNeedsReauthorization: the account
// unauthorized while the event was lost; the list does not have it.
func TestUnrecoverableRefreshTokenNeedsReauthorization(t *testing.T) {
	t.Parallel()
	const life = 100 * time.Second
	p := setup(t, componenttest.Options{TokenLifetime: life}, appA)
	ctx := p.Ctx()
	good := componenttest.Direct(p)
	p.Events.Set(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "lost", 500) }))
	if err := p.Sim.Unauthorize(ctx, appA); !errors.Is(err, sim.ErrPush) {
		t.Fatalf("unauthorize with the event lost: %v", err)
	}
	p.Events.Set(good)
	p.Clock.Advance(80 * time.Second)
	p.Authorizers.RefreshDue(ctx)
	a, _ := p.Authorizers.Get(appA)
	if a.Status != store.StatusNeedsReauthorization {
		t.Fatalf("status = %s", a.Status)
	}
	if _, err := p.Authorizers.Token(ctx, appA); !errs.Is(err, errs.AuthorizerUnauthorized) {
		t.Fatalf("token while needs_reauthorization: %v", err)
	}
	stored, _ := p.Store.GetAuthorizer(ctx, componenttest.ComponentAppID, appA)
	if stored.Status != store.StatusNeedsReauthorization {
		t.Fatalf("stored status = %s", stored.Status)
	}
	// Recovery is retried later, not at every tick.
	lists := p.Calls(sim.EndpointGetAuthorizerList, "")
	p.Clock.Advance(time.Second)
	p.Authorizers.RefreshDue(ctx)
	if n := p.Calls(sim.EndpointGetAuthorizerList, ""); n != lists {
		t.Fatalf("recovery retried at once: %d list calls", n)
	}
	// The merchant authorizes again: the account resumes.
	p.PushTicket()
	p.Authorize(p.NewTenant("again"), appA)
	if a, err := p.Authorizers.Token(ctx, appA); err != nil || a.Status != store.StatusAuthorized {
		t.Fatalf("after re-authorization: %+v, %v", a, err)
	}
}

func TestFailedRefreshIsRetriedWhileTheOldTokenServes(t *testing.T) {
	t.Parallel()
	for _, fault := range []sim.Fault{
		{Endpoint: sim.EndpointAuthorizerToken, Kind: sim.FaultErrcode},
		{Endpoint: sim.EndpointAuthorizerToken, Kind: sim.FaultLatency, Latency: time.Second},
	} {
		t.Run(fault.Kind, func(t *testing.T) {
			t.Parallel()
			const life = 720 * time.Second // first retry pause: 1 s
			// Three attempts per call (the client's ceiling, pinned: its
			// retry budget would allow more) make one refresh attempt.
			p := setup(t, componenttest.Options{TokenLifetime: life, WeChat: func(o *wechat.Options) {
				o.AttemptTimeout = 100 * time.Millisecond
				o.MaxAttempts = 3
			}}, appA)
			ctx := p.Ctx()
			old, _ := p.Authorizers.Get(appA)
			if err := p.Sim.SetFault(fault); err != nil {
				t.Fatal(err)
			}
			// The simulator counts a slow call when it answers, which may be
			// after the client gave up: wait for the count to reach want,
			// then make sure it is exactly want.
			calls := func(want int64) int64 {
				t.Helper()
				deadline := time.Now().Add(5 * time.Second)
				n := p.Calls(sim.EndpointAuthorizerToken, appA)
				for n < want && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
					n = p.Calls(sim.EndpointAuthorizerToken, appA)
				}
				return n
			}
			p.Clock.Advance(life * 3 / 4)
			p.Authorizers.RefreshDue(ctx)
			const tried = 3
			if n := calls(tried); n != tried {
				t.Fatalf("api_authorizer_token attempts = %d, want 3 (one call, two retries)", n)
			}
			a, _ := p.Authorizers.Get(appA)
			if a.AccessToken != old.AccessToken || getFans(t, p, a.AccessToken) != 0 {
				t.Fatal("the old token does not keep serving")
			}
			// Backoff: not again at once, again after the pause, which grows.
			p.Authorizers.RefreshDue(ctx)
			if n := p.Calls(sim.EndpointAuthorizerToken, appA); n != tried {
				t.Fatalf("retried without backoff: %d", n)
			}
			p.Clock.Advance(time.Second)
			p.Authorizers.RefreshDue(ctx)
			if n := calls(2 * tried); n != 2*tried {
				t.Fatalf("not retried after the pause: %d", n)
			}
			p.Clock.Advance(time.Second)
			p.Authorizers.RefreshDue(ctx)
			if n := p.Calls(sim.EndpointAuthorizerToken, appA); n != 2*tried {
				t.Fatalf("the second pause did not grow: %d", n)
			}
			p.Sim.ClearFaults()
			p.Clock.Advance(time.Second)
			p.Authorizers.RefreshDue(ctx)
			a, _ = p.Authorizers.Get(appA)
			if a.AccessToken == old.AccessToken || a.AccessToken.Reveal() != p.Sim.CurrentAccessToken(appA) {
				t.Fatal("not refreshed once WeChat recovered")
			}
			if got := testutil.ToFloat64(p.Metrics.TokenRefreshes.WithLabelValues("authorizer", "error")); got != 2 {
				t.Fatalf("error refreshes = %v", got)
			}
		})
	}
}

// TestRefreshesAskedForRunDuringThePauseAfterAFailure: the pause after a
// failed refresh holds back only the background refresher. An admin's forced
// refresh, a token WeChat refused and an expired token are refreshed at once
// even inside that pause: each is asked for by someone who cannot wait.
func TestRefreshesAskedForRunDuringThePauseAfterAFailure(t *testing.T) {
	t.Parallel()
	const life = 7200 * time.Second // first pause: 10 s
	for _, tc := range []struct {
		name string
		// failAt is how long after the authorization the due refresh fails;
		// inPause how long after that failure the refresh is asked for.
		failAt, inPause time.Duration
		ask             func(t *testing.T, p *componenttest.Platform, cur store.Authorizer) (secret.Value, error)
	}{
		{"forced", life * 3 / 4, time.Second, func(_ *testing.T, p *componenttest.Platform, _ store.Authorizer) (secret.Value, error) {
			a, err := p.Authorizers.ForceRefresh(p.Ctx(), appA)
			return a.AccessToken, err
		}},
		{"token error", life * 3 / 4, time.Second, func(t *testing.T, p *componenttest.Platform, cur store.Authorizer) (secret.Value, error) {
			if err := p.Sim.InvalidateToken(appA); err != nil {
				return "", err
			}
			if code := getFans(t, p, cur.AccessToken); code != wechat.ErrInvalidCredential {
				t.Fatalf("user/get with the invalidated token answered %d, want 40001", code)
			}
			return p.Authorizers.OnTokenError(p.Ctx(), appA, cur.AccessToken)
		}},
		{"expired", life - 5*time.Second, 6 * time.Second, func(t *testing.T, p *componenttest.Platform, cur store.Authorizer) (secret.Value, error) {
			if p.Clock.Now().Before(cur.TokenExpiresAt) {
				t.Fatal("the token has not expired yet; the row needs it expired")
			}
			a, err := p.Authorizers.Token(p.Ctx(), appA)
			return a.AccessToken, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := setup(t, componenttest.Options{Dialect: store.SQLite, TokenLifetime: life}, appA)
			ctx := p.Ctx()
			old, _ := p.Authorizers.Get(appA)
			t.Run("the due refresh fails", func(t *testing.T) {
				if err := p.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointAuthorizerToken, Kind: sim.FaultErrcode}); err != nil {
					t.Fatal(err)
				}
				p.Clock.Advance(tc.failAt)
				p.Authorizers.RefreshDue(ctx)
				if got := testutil.ToFloat64(p.Metrics.TokenRefreshes.WithLabelValues("authorizer", "error")); got != 1 {
					t.Fatalf("failed refreshes = %v, want 1", got)
				}
				p.Sim.ClearFaults()
			})
			t.Run("inside the pause the refresher waits", func(t *testing.T) {
				p.Clock.Advance(tc.inPause)
				calls := p.Calls(sim.EndpointAuthorizerToken, appA)
				p.Authorizers.RefreshDue(ctx)
				if n := p.Calls(sim.EndpointAuthorizerToken, appA); n != calls {
					t.Fatalf("the refresher did not wait: %d api_authorizer_token calls", n-calls)
				}
				if a, _ := p.Authorizers.Get(appA); a.AccessToken != old.AccessToken {
					t.Fatal("the token changed inside the pause")
				}
			})
			t.Run("the refresh asked for runs at once", func(t *testing.T) {
				calls := p.Calls(sim.EndpointAuthorizerToken, appA)
				tok, err := tc.ask(t, p.In(t), old)
				if err != nil {
					t.Fatalf("refresh asked for: %v", err)
				}
				if tok == old.AccessToken || tok.Reveal() != p.Sim.CurrentAccessToken(appA) || getFans(t, p, tok) != 0 {
					t.Fatal("got the old token, want a new one WeChat accepts")
				}
				if n := p.Calls(sim.EndpointAuthorizerToken, appA) - calls; n != 1 {
					t.Fatalf("api_authorizer_token calls = %d, want 1", n)
				}
				if a, _ := p.Authorizers.Get(appA); a.AccessToken != tok || !p.Clock.Now().Before(a.TokenExpiresAt) {
					t.Fatal("the cache does not serve the new token")
				}
			})
		})
	}
}

// failingStore fails UpdateAuthorizer while fail is set.
type failingStore struct {
	*store.Store
	fail atomic.Bool
}

func (f *failingStore) UpdateAuthorizer(ctx context.Context, c, appid string, v int64, fn func(*store.Authorizer) error) (store.Authorizer, error) {
	if f.fail.Load() {
		return store.Authorizer{}, errs.Wrap(errs.Internal, "internal error", errors.New("database unreachable"))
	}
	return f.Store.UpdateAuthorizer(ctx, c, appid, v, fn)
}

func TestNewTokenIsKeptWhenStoringItFails(t *testing.T) {
	t.Parallel()
	var fs *failingStore
	p := setup(t, componenttest.Options{Authorizers: func(o *authorizer.Options) {
		fs = &failingStore{Store: o.Store.(*store.Store)}
		o.Store = fs
	}}, appA)
	ctx := p.Ctx()
	old, _ := p.Authorizers.Get(appA)
	fs.fail.Store(true)
	a, err := p.Authorizers.ForceRefresh(ctx, appA)
	if err != nil || a.AccessToken == old.AccessToken || a.AccessToken.Reveal() != p.Sim.CurrentAccessToken(appA) {
		t.Fatalf("forced refresh with the store failing: %+v, %v", a, err)
	}
	if got, _ := p.Authorizers.Get(appA); got.AccessToken != a.AccessToken {
		t.Fatal("the new token is not served from memory")
	}
	// The poll sees the old stored row: it must not replace the new token.
	if err := p.Authorizers.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Authorizers.Get(appA); got.AccessToken != a.AccessToken {
		t.Fatal("the poll replaced the unsaved token")
	}
	fs.fail.Store(false)
	p.Clock.Advance(20 * time.Second)
	p.Authorizers.RefreshDue(ctx)
	stored, _ := p.Store.GetAuthorizer(ctx, componenttest.ComponentAppID, appA)
	if stored.AccessToken != a.AccessToken {
		t.Fatal("the unsaved token was not written later")
	}
	if n := p.Calls(sim.EndpointAuthorizerToken, appA); n != 1 {
		t.Fatalf("api_authorizer_token calls = %d, want 1 (the write is retried, not the refresh)", n)
	}
}

func TestRefreshInfoRereadsSets(t *testing.T) {
	t.Parallel()
	p := setup(t, componenttest.Options{Dialect: store.SQLite}, appA)
	ctx := p.Ctx()
	if err := p.Sim.SetPermissionSets(ctx, appA, []int{1, 100}, false); err != nil {
		t.Fatal(err)
	}
	a, err := p.Authorizers.RefreshInfo(ctx, appA)
	if err != nil || !slices.Equal(a.PermissionSets, []int{1, 100}) {
		t.Fatalf("refresh info = %+v, %v", a, err)
	}
	if got, _ := p.Authorizers.Get(appA); !got.HasAnySet([]int{100}) {
		t.Fatal("the cache did not get the new sets")
	}
	stored, _ := p.Store.GetAuthorizer(ctx, componenttest.ComponentAppID, appA)
	if !slices.Equal(stored.PermissionSets, []int{1, 100}) {
		t.Fatalf("stored sets = %v", stored.PermissionSets)
	}
	// Within the interval it answers from memory.
	for range 5 {
		if _, err := p.Authorizers.RefreshInfo(ctx, appA); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.Calls(sim.EndpointGetAuthorizerInfo, appA); n != 2 { // authorization + one re-read
		t.Fatalf("api_get_authorizer_info calls = %d", n)
	}
	// Past the interval WeChat is asked again.
	p.Clock.Advance(authorizer.DefaultInfoInterval + time.Second)
	if _, err := p.Authorizers.RefreshInfo(ctx, appA); err != nil {
		t.Fatal(err)
	}
	if n := p.Calls(sim.EndpointGetAuthorizerInfo, appA); n != 3 {
		t.Fatalf("api_get_authorizer_info calls after the interval = %d, want 3", n)
	}
	if _, err := p.Authorizers.RefreshInfo(ctx, "wx0000000000000404"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("unknown account: %v", err)
	}
}

func TestExpiredTokenIsRefreshedOnDemand(t *testing.T) {
	t.Parallel()
	p := setup(t, componenttest.Options{Dialect: store.SQLite, TokenLifetime: 60 * time.Second}, appA)
	ctx := p.Ctx()
	p.Clock.Advance(61 * time.Second) // the refresher did not run (e.g. the process was suspended)
	a, err := p.Authorizers.Token(ctx, appA)
	if err != nil || getFans(t, p, a.AccessToken) != 0 {
		t.Fatalf("token = %+v, %v", a, err)
	}
	if _, err := p.Authorizers.Token(ctx, "wx0000000000000404"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("unknown account: %v", err)
	}
}

func TestRestartLosesNothingAndRefreshesNothingEarly(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			const life = 100 * time.Second
			p := setup(t, componenttest.Options{Dialect: d, TokenLifetime: life}, appA, "wx00000000000000a2")
			ctx := p.Ctx()
			p.Clock.Advance(76 * time.Second)
			p.Authorizers.RefreshDue(ctx)                   // refreshes appA or both, depending on their jitter
			if err := p.Credentials.Tick(ctx); err != nil { // the component token is due too
				t.Fatal(err)
			}
			p.Clock.Advance(time.Second)
			before := map[string]store.Authorizer{}
			for _, appid := range []string{appA, "wx00000000000000a2"} {
				before[appid], _ = p.Authorizers.Get(appid)
			}
			calls := p.Calls(sim.EndpointAuthorizerToken, "")
			compCalls := p.Calls(sim.EndpointComponentToken, "")
			compTok, _ := p.Credentials.Token(ctx)

			// "Restart": a new replica on the same database, the old one gone.
			r := p.Replica(componenttest.Options{})
			r.Authorizers.RefreshDue(ctx)
			if err := r.Credentials.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			if n := p.Calls(sim.EndpointAuthorizerToken, ""); n != calls {
				t.Fatalf("the restart made %d refreshes that were not due", n-calls)
			}
			if n := p.Calls(sim.EndpointComponentToken, ""); n != compCalls {
				t.Fatal("the restart fetched a component token")
			}
			if tok, err := r.Credentials.Token(ctx); err != nil || tok != compTok {
				t.Fatal("the component token was lost")
			}
			for appid, b := range before {
				a, ok := r.Authorizers.Get(appid)
				if !ok || a.AccessToken != b.AccessToken || !a.TokenExpiresAt.Equal(b.TokenExpiresAt) || a.Version != b.Version {
					t.Fatalf("%s after restart = %+v, before %+v", appid, a, b)
				}
			}
			// The refresh tokens survived: the next due refreshes work.
			p.Clock.Advance(life)
			r.Authorizers.RefreshDue(ctx)
			for appid := range before {
				a, _ := r.Authorizers.Get(appid)
				if a.AccessToken == before[appid].AccessToken || a.AccessToken.Reveal() != p.Sim.CurrentAccessToken(appid) {
					t.Fatalf("%s not refreshed after restart", appid)
				}
			}
			st, _ := r.Store.GetComponentState(ctx, componenttest.ComponentAppID)
			if st.Ticket.IsZero() {
				t.Fatal("the ticket was lost")
			}
		})
	}
}

// TestNoPlaintextSecretAtRest reads every row of the secret-bearing tables
// straight from PostgreSQL: no token, refresh token or ticket in clear.
func TestNoPlaintextSecretAtRest(t *testing.T) {
	t.Parallel()
	p := setup(t, componenttest.Options{}, appA)
	ctx := p.Ctx()
	a, _ := p.Store.GetAuthorizer(ctx, componenttest.ComponentAppID, appA)
	st, _ := p.Store.GetComponentState(ctx, componenttest.ComponentAppID)
	secrets := map[string]string{
		"access token": a.AccessToken.Reveal(), "refresh token": a.RefreshToken.Reveal(),
		"component token": st.Token.Reveal(), "ticket": st.Ticket.Reveal(),
	}
	for what, s := range secrets {
		if len(s) < 16 {
			t.Fatalf("%s is too short to search for: %q", what, s)
		}
	}
	db, err := sql.Open("pgx", p.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var dump strings.Builder
	for _, table := range []string{"authorizers", "components", "authorization_sessions", "leases", "event_receipts"} {
		rows, err := db.QueryContext(ctx, "SELECT * FROM "+table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		n := 0
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				switch v := v.(type) {
				case string:
					dump.WriteString(v + "\n")
				case []byte:
					dump.Write(v)
					dump.WriteString("\n")
				}
			}
			n++
		}
		rows.Close()
		if table == "authorizers" || table == "components" {
			if n == 0 {
				t.Fatalf("no rows in %s", table)
			}
		}
	}
	for what, s := range secrets {
		if strings.Contains(dump.String(), s) {
			t.Errorf("the %s is stored in clear", what)
		}
	}
	if !strings.Contains(dump.String(), "wxg1.") {
		t.Fatal("no sealed value found: is the dump empty?")
	}
}

// TestRunStopsPromptlyDuringAStuckRefresh: shutdown does not wait for a
// refresh that WeChat is slow to answer.
func TestRunStopsPromptlyDuringAStuckRefresh(t *testing.T) {
	t.Parallel()
	p := setup(t, componenttest.Options{Dialect: store.SQLite, TokenLifetime: 100 * time.Second,
		WeChat:      func(o *wechat.Options) { o.AttemptTimeout = time.Minute },
		Authorizers: func(o *authorizer.Options) { o.TickInterval, o.PollInterval = 10*time.Millisecond, 10*time.Millisecond }}, appA)
	if err := p.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointAuthorizerToken, Kind: sim.FaultLatency, Latency: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	p.Clock.Advance(80 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Authorizers.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for p.Sim.Counters().Faults[sim.EndpointAuthorizerToken][sim.FaultLatency] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the refresh never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of cancellation")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Run took %v to stop", d)
	}
}

// TestSoonestExpiryGaugeShowsOverdueTokens: the gauge operators alert on
// must go to (and below) zero when a token cannot be refreshed, and says
// +Inf while there is no token to watch.
func TestSoonestExpiryGaugeShowsOverdueTokens(t *testing.T) {
	t.Parallel()
	const life = 100 * time.Second
	empty := setup(t, componenttest.Options{TokenLifetime: life})
	empty.Authorizers.RefreshDue(empty.Ctx())
	if v := testutil.ToFloat64(empty.Metrics.SoonestTokenExpiry); !math.IsInf(v, 1) {
		t.Fatalf("without accounts the gauge = %v, want +Inf", v)
	}

	const stuck, fine = "wx0000000000000a51", "wx0000000000000a52"
	p := setup(t, componenttest.Options{TokenLifetime: life}, stuck, fine)
	ctx := p.Ctx()
	if err := p.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointAuthorizerToken, AppID: stuck, Kind: sim.FaultErrcode, Errcode: 61004}); err != nil {
		t.Fatal(err)
	}
	p.Clock.Advance(40 * time.Second)
	p.Authorizers.RefreshDue(ctx)
	if v := testutil.ToFloat64(p.Metrics.SoonestTokenExpiry); v != 60 {
		t.Fatalf("gauge = %v, want 60", v)
	}
	// Both are due; only one can be refreshed. The other's token runs out.
	for range 3 {
		p.Clock.Advance(35 * time.Second)
		p.Authorizers.RefreshDue(ctx)
	}
	if a, _ := p.Authorizers.Get(fine); a.AccessToken.Reveal() != p.Sim.CurrentAccessToken(fine) {
		t.Fatal("the healthy account was not refreshed")
	}
	p.Authorizers.RefreshDue(ctx)
	if v := testutil.ToFloat64(p.Metrics.SoonestTokenExpiry); v != -45 {
		t.Fatalf("gauge = %v, want -45 (the stuck token expired 45 s ago)", v)
	}
}
