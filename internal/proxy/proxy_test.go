package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/quota"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wechat"
)

// The proxy's tests run the real Service over the real authorizer manager
// and WeChat client, against the simulator (componenttest), on the
// embedded store: nothing here depends on the database's dialect.

var (
	getFans    = api("getFans")
	getTagFans = api("getTagFans")
)

func api(name string) *proxy.API {
	for _, a := range proxy.APIs {
		if a.Name == name {
			return a
		}
	}
	panic("no API " + name)
}

// fixture is a platform with a proxy Service over it.
type fixture struct {
	*componenttest.Platform
	svc *proxy.Service
}

func newFixture(t testing.TB, o componenttest.Options) *fixture {
	t.Helper()
	if o.Dialect == "" {
		o.Dialect = store.SQLite
	}
	p := componenttest.New(t, o)
	p.PushTicket()
	return &fixture{Platform: p, svc: proxy.NewService(proxy.Options{Authorizers: p.Authorizers, Upstream: p.WeChat, Metrics: p.Metrics, Logger: p.Log, Timeout: 10 * time.Second})}
}

// account creates a simulated account and has it authorize the platform.
func (f *fixture) account(spec sim.AccountSpec) string {
	f.T.Helper()
	if spec.NickName == "" {
		spec.NickName = "Nick " + spec.AppID
	}
	if err := f.Sim.CreateAccount(spec); err != nil {
		f.T.Fatal(err)
	}
	if _, err := f.Sim.Authorize(f.Ctx(), spec.AppID, ""); err != nil {
		f.T.Fatalf("authorize %s: %v", spec.AppID, err)
	}
	if _, ok := f.Authorizers.Get(spec.AppID); !ok {
		f.T.Fatalf("%s is not in the cache after its authorization", spec.AppID)
	}
	return spec.AppID
}

// userCalls counts user/get and user/tag/get calls for appid.
func (f *fixture) userCalls(appid string) int64 {
	return f.Calls(sim.EndpointUserGet, appid) + f.Calls(sim.EndpointUserTagGet, appid)
}

// TestRefusedLocallyBeforeWeChat: Check, Call and Walk refuse an unknown
// account, one that unauthorized the platform, one whose refresh token is
// no longer valid and one that granted no permission set the API needs,
// each with its error code, and none of them sends anything to WeChat.
func TestRefusedLocallyBeforeWeChat(t *testing.T) {
	t.Parallel()
	f := newFixture(t, componenttest.Options{})
	ctx := f.Ctx()
	set1 := f.account(sim.AccountSpec{AppID: "wx000000000000051a", Followers: 5, PermissionSets: []int{1}})
	gone := f.account(sim.AccountSpec{AppID: "wx0000000000000e0a", Followers: 5, PermissionSets: []int{2}})
	if err := f.Sim.Unauthorize(ctx, gone); err != nil {
		t.Fatal(err)
	}
	stale := f.account(sim.AccountSpec{AppID: "wx0000000000000e0b", Followers: 5, PermissionSets: []int{100}})
	if _, err := f.Store.UpdateAuthorizer(ctx, f.AppID, stale, 0, func(a *store.Authorizer) error {
		a.Status = store.StatusNeedsReauthorization
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.Authorizers.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, appid string
		want        errs.Code
	}{
		{"unknown account", "wx0000000000000404", errs.NotFound},
		{"unauthorized the platform", gone, errs.AuthorizerUnauthorized},
		{"needs re-authorization", stale, errs.AuthorizerUnauthorized},
		{"no permission set 2 or 100", set1, errs.PermissionSetMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.userCalls(tt.appid)
			for _, a := range []*proxy.API{getFans, getTagFans} {
				args := proxy.Args{}
				if a == getTagFans {
					args["tagid"] = "2"
				}
				if err := f.svc.Check(context.Background(), a, tt.appid); errs.CodeOf(err) != tt.want {
					t.Errorf("%s: Check = %v, want %s", a.Name, err, tt.want)
				}
				if body, err := f.svc.Call(ctx, a, tt.appid, "t1", args); errs.CodeOf(err) != tt.want || body != nil {
					t.Errorf("%s: Call = %s, %v; want %s", a.Name, body, err, tt.want)
				}
				emitted := 0
				_, pages, err := f.svc.Walk(ctx, a, tt.appid, "t1", args, nil, func(ids []string) error { emitted += len(ids); return nil })
				if errs.CodeOf(err) != tt.want || pages != 0 || emitted != 0 {
					t.Errorf("%s: Walk = %d pages, %d openids, %v; want %s", a.Name, pages, emitted, err, tt.want)
				}
			}
			if n := f.userCalls(tt.appid) - before; n != 0 {
				t.Fatalf("%d calls reached WeChat", n)
			}
		})
	}
	t.Run("the permission error names what is required and what is granted", func(t *testing.T) {
		e := errs.As(f.svc.Check(context.Background(), getFans, set1))
		if e == nil || !slices.Equal(e.Details["required_any"].([]int), []int{2, 100}) || !slices.Equal(e.Details["granted"].([]int), []int{1}) {
			t.Fatalf("details = %v", e)
		}
	})
	t.Run("an account granting set 2 or 100 passes", func(t *testing.T) {
		ok := f.account(sim.AccountSpec{AppID: "wx0000000000000100", Followers: 5, PermissionSets: []int{100}})
		if err := f.svc.Check(context.Background(), getFans, ok); err != nil {
			t.Fatalf("Check = %v", err)
		}
	})
}

// TestTokenErrorIsRefreshedOnceAndRetriedOnce: a 40001 makes the proxy
// refresh (compare-and-refresh) and retry once with the new token; a token
// WeChat keeps refusing ends in upstream_error carrying 40001, after one
// retry, not in a loop of refreshes.
func TestTokenErrorIsRefreshedOnceAndRetriedOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, componenttest.Options{})
	ctx := f.Ctx()
	appid := f.account(sim.AccountSpec{AppID: "wx00000000000000a1", Followers: 3, PermissionSets: []int{2}})

	t.Run("an invalidated token is replaced and the call answers", func(t *testing.T) {
		old, _ := f.Authorizers.Get(appid)
		if err := f.Sim.InvalidateToken(appid); err != nil {
			t.Fatal(err)
		}
		body, err := f.svc.Call(ctx, getFans, appid, "t1", proxy.Args{})
		if err != nil {
			t.Fatalf("Call = %v", err)
		}
		var p proxy.Page
		if json.Unmarshal(body, &p) != nil || p.Count != 3 {
			t.Fatalf("body = %s", body)
		}
		if n := f.Calls(sim.EndpointAuthorizerToken, appid); n != 1 {
			t.Fatalf("api_authorizer_token calls = %d, want 1", n)
		}
		if n := f.Calls(sim.EndpointUserGet, appid); n != 2 {
			t.Fatalf("user/get calls = %d, want 2 (refused, retried)", n)
		}
		if now, _ := f.Authorizers.Get(appid); now.AccessToken == old.AccessToken || now.AccessToken.Reveal() != f.Sim.CurrentAccessToken(appid) {
			t.Fatal("the cache does not serve WeChat's new token")
		}
	})
	t.Run("a fresh token refused too is upstream_error after one retry", func(t *testing.T) {
		defer f.Sim.ClearFaults()
		if err := f.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointUserGet, AppID: appid, Kind: sim.FaultErrcode, Errcode: wechat.ErrInvalidCredential}); err != nil {
			t.Fatal(err)
		}
		// Past the pause between two error-driven refreshes of one account.
		f.Clock.Advance(2 * time.Minute)
		refreshes, users := f.Calls(sim.EndpointAuthorizerToken, appid), f.Calls(sim.EndpointUserGet, appid)
		_, err := f.svc.Call(ctx, getFans, appid, "t1", proxy.Args{})
		if errs.CodeOf(err) != errs.UpstreamError || wechat.ErrcodeOf(err) != wechat.ErrInvalidCredential {
			t.Fatalf("Call = %v, want upstream_error with 40001", err)
		}
		if n := f.Calls(sim.EndpointAuthorizerToken, appid) - refreshes; n != 1 {
			t.Fatalf("api_authorizer_token calls = %d, want 1", n)
		}
		if n := f.Calls(sim.EndpointUserGet, appid) - users; n != 2 {
			t.Fatalf("user/get attempts = %d, want 2", n)
		}
	})
}

// TestPermissionRefusedByWeChatRereadsTheSets: the account withdrew set 2
// at WeChat without the gateway hearing of it; WeChat's 61007 becomes
// permission_set_missing with the sets re-read, and the next call is
// refused locally.
func TestPermissionRefusedByWeChatRereadsTheSets(t *testing.T) {
	t.Parallel()
	f := newFixture(t, componenttest.Options{})
	ctx := f.Ctx()
	appid := f.account(sim.AccountSpec{AppID: "wx00000000000000a2", Followers: 3, PermissionSets: []int{1, 2}})
	if err := f.Sim.SetPermissionSets(ctx, appid, []int{1}, false); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Call(ctx, getFans, appid, "t1", proxy.Args{})
	e := errs.As(err)
	if e == nil || e.Code != errs.PermissionSetMissing || e.WeChatErrcode != wechat.ErrAPIUnauthorizedToComp {
		t.Fatalf("Call = %v, want permission_set_missing with 61007", err)
	}
	if got, _ := e.Details["granted"].([]int); !slices.Equal(got, []int{1}) {
		t.Fatalf("granted = %v, want the re-read [1]", e.Details["granted"])
	}
	before := f.userCalls(appid)
	if err := f.svc.Check(context.Background(), getFans, appid); errs.CodeOf(err) != errs.PermissionSetMissing {
		t.Fatalf("Check after the re-read = %v", err)
	}
	if _, err := f.svc.Call(ctx, getFans, appid, "t1", proxy.Args{}); errs.CodeOf(err) != errs.PermissionSetMissing || f.userCalls(appid) != before {
		t.Fatalf("the next call was not refused locally: %v", err)
	}
}

// walkAll walks api from args and returns every openid emitted and the page count.
func walkAll(t *testing.T, f *fixture, a *proxy.API, appid string, args proxy.Args) ([]string, int) {
	t.Helper()
	var got []string
	resume, pages, err := f.svc.Walk(f.Ctx(), a, appid, "t1", args, nil, func(ids []string) error {
		got = append(got, ids...)
		return nil
	})
	if err != nil || resume != "" {
		t.Fatalf("Walk = resume %q, %v", resume, err)
	}
	return got, pages
}

// TestWalkEmitsEveryOpenIDExactlyOnce walks follower counts around the
// 10000-openid page, where the last page either ends with an empty
// next_openid (getFans) or is followed by an empty page (getTagFans).
func TestWalkEmitsEveryOpenIDExactlyOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, componenttest.Options{})
	fans := []struct{ followers, pages int }{{0, 1}, {1, 1}, {9999, 1}, {10000, 2}, {10001, 2}, {23000, 3}}
	appids := make([]string, len(fans))
	for i, tt := range fans {
		appids[i] = f.account(sim.AccountSpec{AppID: fmt.Sprintf("wx00000000000f%04d", i), Followers: tt.followers, PermissionSets: []int{2}})
	}
	tags := []sim.TagSpec{{ID: 2, From: 0, To: 15000}, {ID: 3, From: 100, To: 110}, {ID: 4, From: 3000, To: 13000}, {ID: 5, From: 22999, To: 23000}, {ID: 6, From: 50, To: 50}}
	tagged := f.account(sim.AccountSpec{AppID: "wx00000000000a0001", Followers: 23000, PermissionSets: []int{100}, Tags: tags})
	for i, tt := range fans {
		t.Run(fmt.Sprintf("getFans of %d followers", tt.followers), func(t *testing.T) {
			t.Parallel()
			got, pages := walkAll(t, f, getFans, appids[i], proxy.Args{})
			componenttest.WantFollowers(t, appids[i], got, 0, tt.followers)
			if pages != tt.pages {
				t.Fatalf("%d pages, want %d", pages, tt.pages)
			}
		})
	}
	for _, tag := range tags {
		t.Run(fmt.Sprintf("getTagFans of tag %d (%d..%d)", tag.ID, tag.From, tag.To), func(t *testing.T) {
			t.Parallel()
			got, _ := walkAll(t, f, getTagFans, tagged, proxy.Args{"tagid": fmt.Sprint(tag.ID)})
			componenttest.WantFollowers(t, tagged, got, tag.From, tag.To)
		})
	}
	t.Run("a walk resumed from a cursor starts after it", func(t *testing.T) {
		t.Parallel()
		big := appids[len(appids)-1]
		got, _ := walkAll(t, f, getFans, big, proxy.Args{"next_openid": sim.OpenID(big, 12344)})
		componenttest.WantFollowers(t, big, got, 12345, 23000)
		got, _ = walkAll(t, f, getTagFans, tagged, proxy.Args{"tagid": "2", "next_openid": sim.OpenID(tagged, 9999)})
		componenttest.WantFollowers(t, tagged, got, 10000, 15000)
	})
}

// TestWalkFailureReturnsTheCursorToResumeFrom: WeChat fails the second
// page; every openid before the returned cursor was emitted and none
// after, so resuming from it completes the export exactly.
func TestWalkFailureReturnsTheCursorToResumeFrom(t *testing.T) {
	t.Parallel()
	f := newFixture(t, componenttest.Options{})
	ctx := f.Ctx()
	appid := f.account(sim.AccountSpec{AppID: "wx00000000000000b1", Followers: 23000, PermissionSets: []int{2}})
	var got []string
	resume, pages, err := f.svc.Walk(ctx, getFans, appid, "t1", proxy.Args{}, nil, func(ids []string) error {
		got = append(got, ids...)
		// The next page fails.
		return f.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointUserGet, AppID: appid, Kind: sim.FaultErrcode, Errcode: wechat.ErrDailyQuota})
	})
	f.Sim.ClearFaults()
	if errs.CodeOf(err) != errs.RateLimited || wechat.ErrcodeOf(err) != wechat.ErrDailyQuota || pages != 1 {
		t.Fatalf("Walk = %d pages, %v; want rate_limited after one page", pages, err)
	}
	// WeChat's own 45009 carries the scope of the gateway's local refusal.
	if e := errs.As(err); e.Details["scope"] != quota.ScopeWeChat {
		t.Fatalf("45009 details = %v, want scope %s", e.Details, quota.ScopeWeChat)
	}
	if resume != sim.OpenID(appid, 9999) {
		t.Fatalf("resume = %q, want the last emitted openid", resume)
	}
	rest, _ := walkAll(t, f, getFans, appid, proxy.Args{"next_openid": resume})
	componenttest.WantFollowers(t, appid, append(got, rest...), 0, 23000)

	t.Run("an emit failure stops the walk at once", func(t *testing.T) {
		stop := errors.New("client went away")
		calls := f.Calls(sim.EndpointUserGet, appid)
		resume, pages, err := f.svc.Walk(ctx, getFans, appid, "t1", proxy.Args{}, nil, func([]string) error { return stop })
		if !errors.Is(err, stop) || pages != 1 || resume != sim.OpenID(appid, 9999) || f.Calls(sim.EndpointUserGet, appid)-calls != 1 {
			t.Fatalf("Walk = %q, %d pages, %v", resume, pages, err)
		}
	})
	t.Run("a cancelled walk asks WeChat nothing", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		calls := f.Calls(sim.EndpointUserGet, appid)
		resume, _, err := f.svc.Walk(cctx, getFans, appid, "t1", proxy.Args{"next_openid": sim.OpenID(appid, 5)}, nil, func([]string) error { return nil })
		if errs.CodeOf(err) != errs.UpstreamTimeout || resume != sim.OpenID(appid, 5) || f.Calls(sim.EndpointUserGet, appid) != calls {
			t.Fatalf("cancelled Walk = %q, %v", resume, err)
		}
	})
}

func TestIdenticalCallsInFlightShareOneWeChatCall(t *testing.T) {
	f := newFixture(t, componenttest.Options{})
	appid := f.account(sim.AccountSpec{AppID: "wxcccccccccccccccc", Followers: 30})
	if err := f.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointUserGet, Kind: sim.FaultLatency, Latency: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	burst := func(n int, args func(i int) proxy.Args) ([][]byte, []error) {
		bodies, errors := make([][]byte, n), make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				bodies[i], errors[i] = f.svc.Call(f.Ctx(), getFans, appid, fmt.Sprintf("t%d", i%3), args(i))
			}()
		}
		wg.Wait()
		return bodies, errors
	}
	same := func(int) proxy.Args { return proxy.Args{} }

	t.Run("identical calls of several tenants: one WeChat call, one answer", func(t *testing.T) {
		before := f.Calls(sim.EndpointUserGet, appid)
		bodies, errs := burst(20, same)
		if n := f.Calls(sim.EndpointUserGet, appid) - before; n != 1 {
			t.Fatalf("WeChat calls: got %d, want 1", n)
		}
		for i := range bodies {
			if errs[i] != nil || string(bodies[i]) != string(bodies[0]) || len(bodies[0]) == 0 {
				t.Fatalf("call %d: %v %.60s, want the shared page", i, errs[i], bodies[i])
			}
		}
	})
	t.Run("an error is shared too", func(t *testing.T) {
		if err := f.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointUserGet, Kind: sim.FaultErrcode, Errcode: 48001}); err != nil {
			t.Fatal(err)
		}
		before := f.Calls(sim.EndpointUserGet, appid)
		_, errs := burst(10, same)
		if n := f.Calls(sim.EndpointUserGet, appid) - before; n != 1 {
			t.Fatalf("WeChat calls: got %d, want 1", n)
		}
		for i, err := range errs {
			if wechat.ErrcodeOf(err) != 48001 {
				t.Fatalf("call %d: %v, want WeChat's 48001", i, err)
			}
		}
	})
	t.Run("calls with other arguments are not merged", func(t *testing.T) {
		f.Sim.ClearFaults()
		before := f.Calls(sim.EndpointUserGet, appid)
		_, errs := burst(4, func(i int) proxy.Args { return proxy.Args{"next_openid": sim.OpenID(appid, i)} })
		for i, err := range errs {
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		if n := f.Calls(sim.EndpointUserGet, appid) - before; n != 4 {
			t.Fatalf("WeChat calls: got %d, want 4", n)
		}
	})
}

// BenchmarkIdenticalBurst measures what coalescing saves: each iteration is
// a burst of identical getFans calls in flight at once (WeChat answering in
// 20 ms), and wechat-calls/call is WeChat calls per tenant call.
// docs/performance.md records it.
func BenchmarkIdenticalBurst(b *testing.B) {
	for _, burst := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("burst=%d", burst), func(b *testing.B) {
			f := newFixture(b, componenttest.Options{})
			appid := f.account(sim.AccountSpec{AppID: "wxbbbbbbbbbbbbbbb1", Followers: 100})
			if err := f.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointUserGet, Kind: sim.FaultLatency, Latency: 20 * time.Millisecond}); err != nil {
				b.Fatal(err)
			}
			before := f.Calls(sim.EndpointUserGet, appid)
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				var wg sync.WaitGroup
				for range burst {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := f.svc.Call(ctx, getFans, appid, "t1", proxy.Args{}); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
			}
			b.StopTimer()
			calls := f.Calls(sim.EndpointUserGet, appid) - before
			b.ReportMetric(float64(calls)/float64(b.N*burst), "wechat-calls/call")
		})
	}
}

// TestWalkFetchesTheNextPageWhileEmitting: while a page is handed over
// (written to a slow client), the next one is already asked of WeChat, so
// an export takes about as long as its WeChat calls; a walk whose emit
// fails makes at most that one call more, and resumes exactly.
func TestWalkFetchesTheNextPageWhileEmitting(t *testing.T) {
	t.Parallel()
	f := newFixture(t, componenttest.Options{})
	appid := f.account(sim.AccountSpec{AppID: "wx00000000000a0f01", Followers: 25000, PermissionSets: []int{2}})
	calls := func() int64 { return f.Sim.Counters().ByAccount["user/get"][appid] }
	before := calls()
	var got []string
	emitted := 0
	resume, _, err := f.svc.Walk(f.Ctx(), getFans, appid, "t1", proxy.Args{}, nil, func(ids []string) error {
		emitted++
		if emitted == 1 {
			// The first page is being handed over: the second is asked for
			// meanwhile (a walk without look-ahead would wait here forever).
			deadline := time.Now().Add(10 * time.Second)
			for calls()-before < 2 {
				if time.Now().After(deadline) {
					return errors.New("the next page was not asked for while this one was emitted")
				}
				time.Sleep(time.Millisecond)
			}
			got = append(got, ids...)
			return nil
		}
		// Handed over, then the client goes away: the walk stops here.
		got = append(got, ids...)
		return errors.New("the client went away")
	})
	if err == nil || err.Error() != "the client went away" {
		t.Fatalf("Walk = %v, want the emit's failure", err)
	}
	if n := calls() - before; n > 3 {
		t.Errorf("a walk ended at its second page made %d calls, want at most 3 (one fetched ahead)", n)
	}
	// Resuming from the cursor returned gives every remaining follower once.
	rest, _ := walkAll(t, f, getFans, appid, proxy.Args{"next_openid": resume})
	componenttest.WantFollowers(t, appid, append(got, rest...), 0, 25000)
}
