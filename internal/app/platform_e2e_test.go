package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/sim"
)

// TestTwoGatewaysRefreshEachAccountOncePerWindow runs two `wxgate serve`
// on one PostgreSQL database against a simulator whose tokens live 20 s
// and stay valid only 2 s after a refresh (WeChat's 5 minutes, shortened
// further than the lifetime), with traffic on both replicas for two and a
// half lifetimes. Every account must be refreshed once per window (no
// refresh may replace a token younger than 45% of its lifetime), and no
// request may fail: a replica serving a token the other just replaced
// compare-and-refreshes to the new one without a refresh of its own.
//
// (With no overlap at all, which WeChat never does, each replica's renewal
// of the component token kills the other's copy at once; on a loaded
// machine the two then take turns renewing it, and an authorizer refresh
// waiting on that can outlast its lease.)
func TestTwoGatewaysRefreshEachAccountOncePerWindow(t *testing.T) {
	t.Parallel()
	const (
		life     = 20 * time.Second
		accounts = 200
		run      = 50 * time.Second
	)
	st := newStack(t, stackOptions{
		Replicas: 2,
		Sim:      func(o *sim.Options) { o.TokenLifetime = life; o.TokenOverlap = 2 * time.Second },
		Env: func(env map[string]string) {
			env["WXGATE_TENANT_RATE_LIMIT"] = "10000"
			env["WXGATE_TENANT_RATE_BURST"] = "10000"
			env["WXGATE_LOG_LEVEL"] = "info"
		},
	})
	appids := make([]string, accounts)
	for i := range appids {
		appids[i] = fmt.Sprintf("wx2e%014d", i)
		if err := st.Sim.CreateAccount(sim.AccountSpec{AppID: appids[i], Followers: 3}); err != nil {
			t.Fatal(err)
		}
	}
	var ok, failed atomic.Int64

	journey.Step(t, "authorize and bind every account", func(t *testing.T) {
		st := st.in(t)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for _, appid := range appids {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				if _, err := st.Sim.Authorize(t.Context(), appid, ""); err != nil {
					t.Errorf("authorize %s: got %v, want no error", appid, err)
					return
				}
				st.must(http.MethodPut, "/admin/tenants/"+st.TenantID+"/authorizers/"+appid, testAdminToken, nil, nil, 204)
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow() // the rest needs every account
		}
		for _, r := range st.Replicas {
			eventually(t, 10*time.Second, "every account served by "+r.Addr, func() bool {
				code, _ := st.callOn(r, http.MethodGet, "/v1/authorizers/"+appids[accounts-1]+"/fans", st.Key, nil, nil)
				return code == 200
			})
		}
	})

	journey.Step(t, "traffic on both replicas for the whole run", func(t *testing.T) {
		st := st.in(t)
		// Count from here: the simulator records every successful refresh
		// and the age of the youngest token one replaced.
		st.Sim.ResetCounters()
		stop := make(chan struct{})
		var watch sync.WaitGroup
		var firstFailure atomic.Pointer[string]
		for i, r := range st.Replicas {
			for w := range 4 {
				watch.Add(1)
				go func() {
					defer watch.Done()
					rng := rand.New(rand.NewPCG(uint64(i), uint64(w)))
					for {
						select {
						case <-stop:
							return
						default:
						}
						appid := appids[rng.IntN(accounts)]
						code, body := st.callOn(r, http.MethodGet, "/v1/authorizers/"+appid+"/fans", st.Key, nil, nil)
						if code == 200 {
							ok.Add(1)
						} else {
							failed.Add(1)
							msg := fmt.Sprintf("%s on %s: %d %s", appid, r.Addr, code, body)
							firstFailure.CompareAndSwap(nil, &msg)
						}
						time.Sleep(5 * time.Millisecond)
					}
				}()
			}
		}
		time.Sleep(run)
		close(stop)
		watch.Wait()

		if n := failed.Load(); n > 0 {
			t.Errorf("failed requests: got %d of %d, want none; first: %s", n, n+ok.Load(), *firstFailure.Load())
			for _, r := range st.Replicas {
				for _, line := range strings.Split(r.Logs.String(), "\n") {
					if strings.Contains(line, `"level":"ERROR"`) {
						t.Logf("%s: %s", r.Addr, line)
					}
				}
			}
		}
	})

	journey.Step(t, "each account refreshed once per window", func(t *testing.T) {
		// Refreshes come at 50-75% of a lifetime; a second replica
		// refreshing the same window would replace a token only moments old.
		c := st.Sim.Counters()
		total, youngest := int64(0), run
		for _, appid := range appids {
			r := c.Refreshes[appid]
			total += r.Count
			if r.Count < 2 {
				t.Errorf("%s: got %d refreshes in %v of %v tokens, want at least 2", appid, r.Count, run, life)
			}
			if r.Count > 0 {
				youngest = min(youngest, r.MinReplacedAge)
			}
			if r.Count > 0 && r.MinReplacedAge < life*45/100 {
				t.Errorf("%s: got a refresh replacing a token only %v old, want none younger than %v: one window refreshed twice", appid, r.MinReplacedAge, life*45/100)
			}
		}
		t.Logf("api_authorizer_token answers %v; user/get answers %v (40001s are the other replica's stale token, compare-and-refreshed without a refresh)",
			c.ByErrcode[sim.EndpointAuthorizerToken], c.ByErrcode[sim.EndpointUserGet])
		t.Logf("%d requests ok; %d refreshes for %d accounts in %v (%.2f per account); youngest replaced token %v",
			ok.Load(), total, accounts, run, float64(total)/accounts, youngest)
	})
}

// TestRestartKeepsTicketAndTokens stops the only gateway and starts it
// again on the same database: the component token, every authorizer's
// token and refresh token are still there, nothing is fetched again, and
// the proxied calls keep working with the same tokens.
func TestRestartKeepsTicketAndTokens(t *testing.T) {
	t.Parallel()
	accounts := []sim.AccountSpec{{AppID: "wx2e00000000000101", Followers: 3}, {AppID: "wx2e00000000000102", Followers: 3}}
	var env map[string]string
	st := newStack(t, stackOptions{Accounts: accounts, Env: func(e map[string]string) { env = e }})
	type component struct {
		TicketReceivedAt *string `json:"ticket_received_at"`
		TokenExpiresAt   *string `json:"token_expires_at"`
	}
	var before component
	st.must(http.MethodGet, "/admin/component", testAdminToken, nil, &before, 200)
	tokensBefore := map[string]string{}
	for _, a := range accounts {
		tokensBefore[a.AppID] = st.Sim.CurrentAccessToken(a.AppID)
		if code, _, body := st.get("/v1/authorizers/"+a.AppID+"/fans", st.Key); code != 200 {
			t.Fatalf("before restart: %d %s", code, body)
		}
	}
	calls := st.Sim.Counters().Calls
	if err := st.Replicas[0].Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	st.Replicas[0] = start(t, env, "serve")
	time.Sleep(1500 * time.Millisecond) // a few refresher ticks and polls
	var after component
	st.must(http.MethodGet, "/admin/component", testAdminToken, nil, &after, 200)
	if after.TicketReceivedAt == nil || *after.TicketReceivedAt != *before.TicketReceivedAt ||
		after.TokenExpiresAt == nil || *after.TokenExpiresAt != *before.TokenExpiresAt {
		t.Fatalf("component before %+v, after %+v", before, after)
	}
	for _, a := range accounts {
		if code, _, body := st.get("/v1/authorizers/"+a.AppID+"/fans", st.Key); code != 200 {
			t.Fatalf("after restart: %d %s", code, body)
		}
		if st.Sim.CurrentAccessToken(a.AppID) != tokensBefore[a.AppID] {
			t.Fatalf("%s got a new token on restart", a.AppID)
		}
	}
	now := st.Sim.Counters()
	for _, ep := range []string{sim.EndpointComponentToken, sim.EndpointAuthorizerToken, sim.EndpointGetAuthorizerList} {
		if now.Calls[ep] != calls[ep] {
			t.Errorf("%s called %d times after the restart", ep, now.Calls[ep]-calls[ep])
		}
	}
	if n := now.ByErrcode[sim.EndpointUserGet][40001]; n != 0 {
		t.Errorf("%d calls with a stale token", n)
	}
	secrets := []string{st.Sim.CurrentComponentToken(), "test-component-secret", st.Key}
	for _, a := range accounts {
		secrets = append(secrets, st.Sim.CurrentAccessToken(a.AppID))
	}
	for _, s := range secrets {
		if strings.Contains(st.Replicas[0].Logs.String(), s) {
			t.Error("a secret reached the gateway's log")
		}
	}
}

// TestAuthorizedAccountIsCallableAtOnce: once the authorization event is
// answered and the browser is redirected back, the tenant can call the
// account immediately, without waiting for the tenant directory's poller.
func TestAuthorizedAccountIsCallableAtOnce(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{})
	for i := range 5 {
		appid := fmt.Sprintf("wx3c%014d", i)
		if err := st.Sim.CreateAccount(sim.AccountSpec{AppID: appid, Followers: 3, PermissionSets: []int{2}}); err != nil {
			t.Fatal(err)
		}
		var auth struct{ URL string }
		st.must(http.MethodPost, "/v1/authorizations", st.Key, map[string]any{"return_url": "https://tenant.example/back"}, &auth, 201)
		u, err := url.Parse(auth.URL)
		if err != nil {
			t.Fatal(err)
		}
		code, err := st.Sim.Authorize(context.Background(), appid, u.Query().Get("pre_auth_code"))
		if err != nil {
			t.Fatal(err)
		}
		status, _ := st.call(http.MethodGet, strings.TrimPrefix(sim.RedirectURL(u.Query().Get("redirect_uri"), code), "http://localhost:8080"), "", nil, nil)
		if status != http.StatusFound {
			t.Fatalf("callback answered %d", status)
		}
		if got, _, body := st.get("/v1/authorizers/"+appid+"/fans", st.Key); got != 200 {
			t.Fatalf("account %s right after its authorization: %d %s", appid, got, body)
		}
	}
}
