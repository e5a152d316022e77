package app_test

// Fault tests: a WeChat that fails part of the time or entirely, a
// database that goes away and comes back, and a replica killed in the
// middle of a refresh. Each is bounded in calls and time and stops by
// itself; everything runs on loopback.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // reads the lease table

	"github.com/wxgate/wxgate/internal/app"
	"github.com/wxgate/wxgate/internal/authorizer"
	"github.com/wxgate/wxgate/internal/faultnet"
	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/wechat"
)

// simRefreshToken asks the simulator (as WeChat's api_get_authorizer_list)
// for the refresh token it currently honours for appid.
func simRefreshToken(t *testing.T, s *sim.Simulator, simURL, appid string) string {
	t.Helper()
	body := strings.NewReader(fmt.Sprintf(`{"component_appid":%q,"offset":0,"count":500}`, testComponentAppID))
	resp, err := http.Post(simURL+"/cgi-bin/component/api_get_authorizer_list?component_access_token="+s.CurrentComponentToken(), "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Errcode int `json:"errcode"`
		List    []struct {
			AppID        string `json:"authorizer_appid"`
			RefreshToken string `json:"refresh_token"`
		} `json:"list"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || list.Errcode != 0 {
		t.Fatalf("api_get_authorizer_list: %v errcode %d", err, list.Errcode)
	}
	for _, a := range list.List {
		if a.AppID == appid {
			return a.RefreshToken
		}
	}
	t.Fatalf("%s is not in the simulator's authorizer list", appid)
	return ""
}

// earliestDue returns, of n candidate appids made by name, the one whose
// token the refresher renews earliest in its lifetime, and that fraction.
func earliestDue(n int, name func(int) string) (string, float64) {
	t0 := time.Unix(1_700_000_000, 0)
	best, frac := "", 2.0
	for i := range n {
		appid := name(i)
		due := authorizer.DueAt(store.Authorizer{AppID: appid, TokenRefreshedAt: t0, TokenExpiresAt: t0.Add(time.Hour)})
		if f := due.Sub(t0).Seconds() / 3600; f < frac {
			best, frac = appid, f
		}
	}
	return best, frac
}

// leaseOwnerPid reads which process holds the refresh lease of appid
// (owners are "host-pid-random"); 0 if nobody does.
func leaseOwnerPid(t *testing.T, db *sql.DB, appid string) int {
	t.Helper()
	var owner string
	err := db.QueryRow("SELECT owner FROM leases WHERE name = $1", "authorizer:"+testComponentAppID+":"+appid).Scan(&owner)
	if err == sql.ErrNoRows {
		return 0
	}
	if err != nil {
		t.Fatalf("read lease: %v", err)
	}
	parts := strings.Split(owner, "-")
	if len(parts) < 3 {
		t.Fatalf("lease owner %q is not host-pid-random", owner)
	}
	pid, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil {
		t.Fatalf("lease owner %q: %v", owner, err)
	}
	return pid
}

// TestFaultKillReplicaMidRefresh runs three `wxgate serve` processes with
// traffic on all of them, makes WeChat slow to answer one account's token
// refresh, and kills with SIGKILL the replica whose refresh is in flight
// (the one holding the account's lease). It proves that another replica
// completes the account's refresh once the dead replica's lease runs out,
// before the account's token expires; that no client request to the
// surviving replicas fails and WeChat never sees an invalid token; and that
// nothing is lost: the stored access token is the one WeChat issued last,
// the stored refresh token is the one WeChat honours, and the account stays
// authorized.
//
//	go test -race -count=1 -run TestFaultKillReplicaMidRefresh -v ./internal/app/
func TestFaultKillReplicaMidRefresh(t *testing.T) {
	t.Parallel()
	const (
		life    = 30 * time.Second
		slow    = 3 * time.Second
		victims = 40 // candidates; the one renewed earliest in its lifetime is the victim
	)
	name := func(i int) string { return fmt.Sprintf("wx4k%014d", i) }
	victim, frac := earliestDue(victims, name)
	var specs []sim.AccountSpec
	var appids []string
	for i := range 20 {
		appids = append(appids, name(i))
	}
	if !slices.Contains(appids, victim) {
		appids = append(appids, victim)
	}
	for _, a := range appids {
		specs = append(specs, sim.AccountSpec{AppID: a, Followers: 3, PermissionSets: []int{2}})
	}
	c := newCluster(t, clusterOptions{Replicas: 3, Sim: func(o *sim.Options) { o.TokenLifetime = life }})
	if err := c.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointAuthorizerToken, AppID: victim, Kind: sim.FaultLatency, Latency: slow}); err != nil {
		t.Fatal(err)
	}
	c.addAccounts(specs)
	authorized := time.Now()
	db, err := sql.Open("pgx", c.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	var dead atomic.Int64 // the killed replica's index
	dead.Store(-1)
	load := c.startLoad(2, 20*time.Millisecond, appids, func(i int) bool { return dead.Load() == int64(i) })

	var (
		before             int64
		pid                int
		killed             *app.Replica
		killedAt, finished time.Time
		ok, failed         int64
		counters           sim.Counters
	)

	journey.Step(t, "kill the replica holding the victim's refresh", func(t *testing.T) {
		// Wait for the victim's refresh to reach WeChat (it then hangs for slow).
		eventually(t, life, "the victim's refresh reaching WeChat", func() bool {
			return c.Sim.Counters().Faults[sim.EndpointAuthorizerToken][sim.FaultLatency] > 0
		})
		before = c.Sim.Counters().Refreshes[victim].Count
		pid = leaseOwnerPid(t, db, victim)
		for i, r := range c.Replicas {
			if r.Pid() == pid {
				killed = r
				dead.Store(int64(i))
			}
		}
		if killed == nil {
			t.Fatalf("the lease of %s: got pid %d, want one of the replicas'", victim, pid)
		}
		c.kill(killed)
		killedAt = time.Now()
		c.Sim.ClearFaults() // WeChat is fine; the crash was the fault
	})

	journey.Step(t, "a survivor refreshes before the token expires", func(t *testing.T) {
		// WeChat completes the refresh it was serving when the replica died
		// (it issues a token nobody receives: one refresh); a survivor's
		// refresh must follow before the account's token expires.
		eventually(t, life+10*time.Second, "a surviving replica refreshing "+victim, func() bool {
			if c.Sim.Counters().Refreshes[victim].Count >= before+2 {
				finished = time.Now()
				return true
			}
			return false
		})
		if expiry := authorized.Add(life); !finished.Before(expiry) {
			t.Errorf("the survivor's refresh: got it %v after the token it renewed expired, want it before", finished.Sub(expiry))
		}
	})

	journey.Step(t, "the survivors served everything and nothing was lost", func(t *testing.T) {
		time.Sleep(2 * time.Second) // traffic on the new token
		var first string
		ok, failed, first = load.end()
		if failed > 0 {
			t.Errorf("requests to the surviving replicas: got %d of %d failed, want none; first: %s", failed, ok+failed, first)
		}
		counters = c.Sim.Counters()
		for _, code := range []int{40001, 42001} {
			if n := counters.ByErrcode[sim.EndpointUserGet][code]; n != 0 {
				t.Errorf("user/get answered %d: got %d times, want 0", code, n)
			}
		}
		if n := counters.ByErrcode[sim.EndpointAuthorizerToken][61023]; n != 0 {
			t.Errorf("refresh tokens WeChat refused: got %d, want 0 (a refresh token was lost)", n)
		}
		st := storetest.OpenURL(t, c.DBURL, nil)
		eventually(t, 5*time.Second, "the stored token being the one WeChat issued last", func() bool {
			a, err := st.GetAuthorizer(context.Background(), testComponentAppID, victim)
			return err == nil && a.AccessToken.Reveal() == c.Sim.CurrentAccessToken(victim)
		})
		a, err := st.GetAuthorizer(context.Background(), testComponentAppID, victim)
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != store.StatusAuthorized {
			t.Errorf("%s after the crash: got %s, want authorized", victim, a.Status)
		}
		if a.RefreshToken.Reveal() != simRefreshToken(t, c.Sim, c.SimURL, victim) {
			t.Errorf("the stored refresh token of %s: got one WeChat does not honour, want WeChat's", victim)
		}
		for i, r := range c.Replicas {
			if r == killed {
				continue
			}
			if code, raw, err := c.fans(r, victim); code != 200 {
				t.Errorf("replica %d after the crash: got %d %s %v, want 200", i, code, raw, err)
			}
		}
	})

	t.Logf("victim %s renews at %.0f%% of its %v lifetime; its refresh reached WeChat %v after authorization; replica pid %d killed;"+
		" a survivor completed the refresh %v after the kill (%v before the old token expired); %d requests to survivors, %d failed; refreshes of %s: %d",
		victim, 100*frac, life, killedAt.Sub(authorized).Round(100*time.Millisecond), pid, finished.Sub(killedAt).Round(100*time.Millisecond),
		authorized.Add(life).Sub(finished).Round(100*time.Millisecond), ok+failed, failed, victim, counters.Refreshes[victim].Count)
}

// callResult is one client call's answer.
type callResult struct {
	status int
	code   string // the error code slug, "" on success
	took   time.Duration
	err    error
}

// fansCall calls getFans for appid at addr with key; safe from any goroutine.
func fansCall(client *http.Client, addr, key, appid string) callResult {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/authorizers/"+appid+"/fans", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	began := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return callResult{err: err, took: time.Since(began)}
	}
	defer resp.Body.Close()
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	raw, err := io.ReadAll(resp.Body)
	r := callResult{status: resp.StatusCode, took: time.Since(began), err: err}
	if resp.StatusCode != 200 {
		_ = json.Unmarshal(raw, &e)
		r.code = e.Error.Code
	}
	return r
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestFaultWeChatFlakyUserGet: WeChat answers user/get with errcode -1 10%
// of the time, HTTP 502 5%, drops the connection 2% and is 300 ms slow 5%,
// all at once. The retry policy retries each transient failure while the
// budgets have room (about 17% of the attempts fail; the budgets allow 20%
// plus a floor), so at least 99.99% of the calls succeed: with fewer than
// 10,000 calls, every one. Any failure is a clean 503 upstream_unavailable,
// and none of it makes the gateway refresh a token: the faults are not
// token errors. WXGATE_FAULT_CALLS sets the number of calls (default 2000,
// about 20 s under -race on a busy 2-core machine; 1000 with -short).
//
//	go test -race -count=1 -run TestFaultWeChatFlakyUserGet -v ./internal/app/
//	WXGATE_FAULT_CALLS=20000 go test -count=1 -run TestFaultWeChatFlakyUserGet -v ./internal/app/
func TestFaultWeChatFlakyUserGet(t *testing.T) {
	t.Parallel()
	calls, workers := 2000, 16
	if testing.Short() {
		calls = 1000
	}
	if v := os.Getenv("WXGATE_FAULT_CALLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("WXGATE_FAULT_CALLS=%q is not a positive number", v)
		}
		calls = n
	}
	var specs []sim.AccountSpec
	var appids []string
	for i := range 10 {
		appids = append(appids, fmt.Sprintf("wx5f%014d", i))
		specs = append(specs, sim.AccountSpec{AppID: appids[i], Followers: 5, PermissionSets: []int{2}})
	}
	st := newStack(t, stackOptions{Accounts: specs, Env: func(e map[string]string) {
		e["WXGATE_LOG_LEVEL"] = "info"
		e["WXGATE_TENANT_RATE_LIMIT"] = "100000"
		e["WXGATE_TENANT_RATE_BURST"] = "100000"
	}})
	addr := st.Replicas[0].Addr
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * workers}}
	defer client.CloseIdleConnections()
	for _, a := range appids {
		if r := fansCall(client, addr, st.Key, a); r.status != 200 {
			t.Fatalf("%s before the faults: %+v", a, r)
		}
	}
	retries0, _ := metricAt(client, addr, "wxgate_upstream_retries_total")
	attempts0, _ := metricAt(client, addr, "wxgate_upstream_calls_total")
	before := st.Sim.Counters()
	// A call draws the faults in this order and the first error that fires
	// answers it; the probabilities are conditional so that the overall
	// shares are 10%, 5% and 2%. The latency spike is drawn independently.
	for _, f := range []sim.Fault{
		{Endpoint: sim.EndpointUserGet, Kind: sim.FaultErrcode, Errcode: -1, Probability: 0.10},
		{Endpoint: sim.EndpointUserGet, Kind: sim.FaultHTTPStatus, Status: 502, Probability: 0.05 / 0.90},
		{Endpoint: sim.EndpointUserGet, Kind: sim.FaultDrop, Probability: 0.02 / 0.85},
		{Endpoint: sim.EndpointUserGet, Kind: sim.FaultLatency, Latency: 300 * time.Millisecond, Probability: 0.05},
	} {
		if err := st.Sim.SetFault(f); err != nil {
			t.Fatal(err)
		}
	}
	results := make([]callResult, calls)
	var next atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= calls {
					return
				}
				results[i] = fansCall(client, addr, st.Key, appids[i%len(appids)])
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	st.Sim.ClearFaults()
	after := st.Sim.Counters()
	retries1, _ := metricAt(client, addr, "wxgate_upstream_retries_total")
	attempts1, _ := metricAt(client, addr, "wxgate_upstream_calls_total")
	giveUps, _ := metricAt(client, addr, "wxgate_upstream_give_ups_total")

	ok, failures := 0, map[string]int{}
	var took []time.Duration
	for _, r := range results {
		took = append(took, r.took)
		switch {
		case r.err != nil:
			failures["transport: "+r.err.Error()]++
		case r.status == 200:
			ok++
		default:
			failures[fmt.Sprintf("%d %s", r.status, r.code)]++
		}
	}
	rate := float64(ok) / float64(calls)
	if allowed := calls / 10000; calls-ok > allowed {
		t.Errorf("got success rate %.3f%% (%d of %d), want at least 99.99%% (at most %d failed); failures: %v", 100*rate, ok, calls, allowed, failures)
	}
	for f := range failures {
		if f != "503 upstream_unavailable" {
			t.Errorf("a failure was not a clean 503 upstream_unavailable: %s", f)
		}
	}
	for _, ep := range []string{sim.EndpointAuthorizerToken, sim.EndpointComponentToken, sim.EndpointGetAuthorizerInfo} {
		if n := after.Calls[ep] - before.Calls[ep]; n != 0 {
			t.Errorf("%s called %d times under user/get faults: a refresh storm", ep, n)
		}
	}
	if n := after.ByErrcode[sim.EndpointUserGet][40001] + after.ByErrcode[sim.EndpointUserGet][42001]; n != 0 {
		t.Errorf("%d user/get calls with an invalid token", n)
	}
	attempts := after.Calls[sim.EndpointUserGet] - before.Calls[sim.EndpointUserGet]
	injected := after.Faults[sim.EndpointUserGet]
	t.Logf("%d calls in %v through 1 replica, %d workers: %.2f%% succeeded (%d failed: %v); p50 %v, p99 %v, max %v",
		calls, elapsed.Round(time.Millisecond), workers, 100*rate, calls-ok, failures, pct(took, 0.5).Round(time.Millisecond),
		pct(took, 0.99).Round(time.Millisecond), pct(took, 1).Round(time.Millisecond))
	t.Logf("retry amplification: the gateway made %.0f attempts (%.3f per call: %.0f retries, %.0f transient failures not retried);"+
		" WeChat saw %d (%.3f per call; net/http replays a GET once when a reused connection closes before any answer)",
		attempts1-attempts0, (attempts1-attempts0)/float64(calls), retries1-retries0, giveUps, attempts, float64(attempts)/float64(calls))
	t.Logf("WeChat saw %d user/get attempts (%.2f per call); injected: errcode -1 %d (%.1f%%), HTTP 502 %d (%.1f%%), drop %d (%.1f%%), latency %d (%.1f%%); the gateway counted %.0f retries; token refreshes meanwhile: %d",
		attempts, float64(attempts)/float64(calls),
		injected[sim.FaultErrcode], 100*float64(injected[sim.FaultErrcode])/float64(attempts),
		injected[sim.FaultHTTPStatus], 100*float64(injected[sim.FaultHTTPStatus])/float64(attempts),
		injected[sim.FaultDrop], 100*float64(injected[sim.FaultDrop])/float64(attempts),
		injected[sim.FaultLatency], 100*float64(injected[sim.FaultLatency])/float64(attempts),
		retries1-retries0, after.Calls[sim.EndpointAuthorizerToken]-before.Calls[sim.EndpointAuthorizerToken])
}

// burstResult is what a burst of concurrent calls got, and how many
// goroutines the replica ran at most meanwhile.
type burstResult struct {
	results []callResult
	peak    float64
}

// burst makes n concurrent getFans calls to replica r while sampling its
// go_goroutines.
func (c *cluster) burst(r *app.Replica, n int, appids []string) burstResult {
	var b burstResult
	b.results = make([]callResult, n)
	stop := make(chan struct{})
	sampled := make(chan float64)
	go func() {
		peak := 0.0
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if g, err := c.metric(r, "go_goroutines"); err == nil {
				peak = max(peak, g)
			}
			select {
			case <-stop:
				sampled <- peak
				return
			case <-t.C:
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { b.results[i] = fansCall(c.client, r.Addr, c.Key, appids[i%len(appids)]) })
	}
	wg.Wait()
	close(stop)
	b.peak = <-sampled
	return b
}

// outcomes summarises a burst: answers by "status code" and the slowest.
func (b burstResult) outcomes() (map[string]int, time.Duration) {
	m := map[string]int{}
	var slowest time.Duration
	for _, r := range b.results {
		key := fmt.Sprintf("%d %s", r.status, r.code)
		if r.err != nil {
			key = "transport error"
		}
		m[key]++
		slowest = max(slowest, r.took)
	}
	return m, slowest
}

// TestFaultWeChatDownAndBack takes WeChat away entirely, three ways: it
// drops every connection, it is unreachable (connection refused), and it
// accepts calls but never answers. In each case a burst of concurrent
// client calls gets a clean answer fast (503 upstream_unavailable once the
// retry budget is spent; 504 upstream_timeout after WXGATE_UPSTREAM_TIMEOUT
// for the silent WeChat), the retries stay within the replica's budget
// (20% of its recent calls plus the floor) however many calls fail, the
// replica stays ready (its database is fine), its goroutines return to
// their level before the burst (nothing piles up), and when WeChat is back
// the same calls succeed at once.
//
//	go test -race -count=1 -run TestFaultWeChatDownAndBack -v ./internal/app/
func TestFaultWeChatDownAndBack(t *testing.T) {
	t.Parallel()
	const (
		concurrency = 64
		fastBound   = 5 * time.Second // the budget is spent within a few backoffs: ~0.5 s
		// The budget leaves the failing attempts room even on a loaded
		// machine (with two suites at once under -race they once took 2 s),
		// so a dropped or refused call is always answered 503, not 504.
		timeout = 4 * time.Second
	)
	c := newCluster(t, clusterOptions{WeChatLink: true, Env: func(e map[string]string) {
		e["WXGATE_UPSTREAM_TIMEOUT"] = timeout.String()
	}})
	var specs []sim.AccountSpec
	var appids []string
	for i := range 16 {
		appids = append(appids, fmt.Sprintf("wx6d%014d", i))
		specs = append(specs, sim.AccountSpec{AppID: appids[i], Followers: 5, PermissionSets: []int{2}})
	}
	c.addAccounts(specs)
	r := c.Replicas[0]
	goroutines := func(t *testing.T) float64 {
		t.Helper()
		g, err := c.metric(r, "go_goroutines")
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	settled := func(t *testing.T, limit float64) float64 {
		t.Helper()
		var g float64
		deadline := time.Now().Add(10 * time.Second)
		for {
			if g = goroutines(t); g <= limit || time.Now().After(deadline) {
				return g
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ready := func() (int, string) {
		code, body, _ := c.do(r, http.MethodGet, "/readyz", "", nil, nil)
		return code, string(body)
	}
	var baseline float64
	slack := 10.0

	journey.Step(t, "healthy bursts set the baseline", func(t *testing.T) {
		// Two healthy bursts open every connection a burst needs; the level
		// after them is the baseline.
		for range 2 {
			if out, _ := c.burst(r, concurrency, appids).outcomes(); out["200 "] != concurrency {
				t.Fatalf("healthy burst: got %v, want %d × 200", out, concurrency)
			}
		}
		time.Sleep(300 * time.Millisecond)
		baseline = goroutines(t)
	})

	type phase struct {
		name       string
		down, back func(t *testing.T)
		want       string
		bound      time.Duration
		// refused: the connection fails, which /readyz must state.
		refused bool
	}
	clearFaults := func(*testing.T) { c.Sim.ClearFaults() }
	phases := []phase{
		{"drops every connection", func(*testing.T) {
			_ = c.Sim.SetFault(sim.Fault{Endpoint: "*", Kind: sim.FaultDrop})
		}, clearFaults, "503 upstream_unavailable", fastBound, true},
		{"is unreachable", func(*testing.T) { c.WeChat.Cut() }, func(t *testing.T) {
			if err := c.WeChat.Restore(); err != nil {
				t.Fatal(err)
			}
		}, "503 upstream_unavailable", fastBound, true},
		{"never answers", func(*testing.T) {
			_ = c.Sim.SetFault(sim.Fault{Endpoint: "*", Kind: sim.FaultLatency, Latency: 5 * time.Minute})
		}, clearFaults, "504 upstream_timeout", timeout + 3*time.Second, false},
	}
	upstream := func(t *testing.T) (attempts, retries float64) {
		t.Helper()
		a, err1 := c.metric(r, "wxgate_upstream_calls_total")
		n, err2 := c.metric(r, "wxgate_upstream_retries_total")
		if err1 != nil {
			t.Fatal(err1)
		}
		if err2 != nil {
			n = 0 // no retry yet: the vector has no sample
		}
		return a, n
	}
	for _, p := range phases {
		journey.Step(t, "WeChat "+p.name, func(t *testing.T) {
			a0, r0 := upstream(t)
			sim0 := c.Sim.Counters().Calls[sim.EndpointUserGet]
			p.down(t)
			b := c.burst(r, concurrency, appids)
			out, slowest := b.outcomes()
			a1, r1 := upstream(t)
			simCalls := c.Sim.Counters().Calls[sim.EndpointUserGet] - sim0
			readyDown, readyBody := ready()
			after := settled(t, baseline+slack)
			p.back(t)
			var recovered time.Duration
			began := time.Now()
			eventually(t, 10*time.Second, "calls succeeding once WeChat is back", func() bool {
				return fansCall(c.client, r.Addr, c.Key, appids[0]).status == 200
			})
			recovered = time.Since(began)
			backOut, _ := c.burst(r, concurrency, appids).outcomes()

			if out[p.want] != concurrency {
				t.Errorf("WeChat %s: got %v, want %d × %s", p.name, out, concurrency, p.want)
			}
			if slowest > p.bound {
				t.Errorf("WeChat %s: the slowest answer took %v, want under %v", p.name, slowest, p.bound)
			}
			// Every retry needs retries+1 ≤ 0.2·calls + floor over the
			// replica's window; at most every call it ever made is in that
			// window, and the sliding window discounts a retry of this
			// burst by at most the share of the window the burst lasted.
			weight := 1 - slowest.Seconds()/wechat.DefaultRetryWindow.Seconds()
			budget := (wechat.DefaultRetryRatio*a1 + wechat.DefaultMinRetries) / weight
			if r1-r0 > budget {
				t.Errorf("WeChat %s: got %.0f retries during the burst, want at most the budget of %.0f (%.0f calls so far)", p.name, r1-r0, budget, a1)
			}
			if readyDown != 200 {
				t.Errorf("WeChat %s: /readyz got %d, want 200: the replica's database is fine, it must stay ready", p.name, readyDown)
			}
			if p.refused && !strings.Contains(readyBody, "wechat: UNREACHABLE since ") {
				t.Errorf("WeChat %s: /readyz said %q, want it to state that WeChat is unreachable", p.name, readyBody)
			}
			if after > baseline+slack {
				t.Errorf("WeChat %s: got %v goroutines 10 s after the burst, want at most %v (%v before): they pile up", p.name, after, baseline+slack, baseline)
			}
			if backOut["200 "] != concurrency {
				t.Errorf("WeChat back after it %s: got %v, want %d × 200", p.name, backOut, concurrency)
			}
			t.Logf("WeChat %s: %d concurrent calls → %v, slowest %v, median %v; goroutines %.0f before, %.0f at peak, %.0f after; ready %d; calls succeed again %v after WeChat returned",
				p.name, concurrency, out, slowest.Round(time.Millisecond), pct(durations(b.results), 0.5).Round(time.Millisecond),
				baseline, b.peak, after, readyDown, recovered.Round(time.Millisecond))
			t.Logf("WeChat %s: amplification %.2f attempts per call by the gateway (%.0f attempts, %.0f retries, budget %.0f), %.2f user/get calls per call seen by WeChat",
				p.name, (a1-a0)/concurrency, a1-a0, r1-r0, budget, float64(simCalls)/concurrency)
		})
	}
}

func durations(rs []callResult) []time.Duration {
	d := make([]time.Duration, len(rs))
	for i, r := range rs {
		d[i] = r.took
	}
	return d
}

// TestFaultDatabaseDownKeepsServingAndLosesNothing puts a forwarder between
// a replica and PostgreSQL and cuts it while the replica serves accounts
// whose tokens are cached and valid. It proves that:
//
//   - proxied calls keep succeeding while the database is away, and
//     /readyz answers 503;
//
//   - a token WeChat issues while the database is away is not lost: a
//     refresh whose answer arrives after the cut is served from memory and
//     written once the database is back, without asking WeChat again, so
//     the stored token is the one WeChat issued last;
//
//   - a token WeChat revokes while the database is away is either renewed
//     and then stored, or not renewed at all (WeChat not asked): never
//     renewed upstream only;
//
//   - a component_verify_ticket pushed while the database is away is
//     answered non-success (so WeChat retries it) and stored when a retry
//     lands after the database is back;
//
//   - everything resumes without a restart.
//
//     go test -race -count=1 -run TestFaultDatabaseDownKeepsServingAndLosesNothing -v ./internal/app/
func TestFaultDatabaseDownKeepsServingAndLosesNothing(t *testing.T) {
	t.Parallel()
	const life = 720 * time.Second // a failed write is retried after life/720 = 1 s
	var link *faultnet.Forwarder
	var specs []sim.AccountSpec
	var appids []string
	for i := range 4 {
		appids = append(appids, fmt.Sprintf("wx7d%014d", i))
		specs = append(specs, sim.AccountSpec{AppID: appids[i], Followers: 5, PermissionSets: []int{2}})
	}
	inFlight, revoked := appids[1], appids[2]
	st := newStack(t, stackOptions{
		Accounts: specs,
		Sim: func(o *sim.Options) {
			o.TokenLifetime = life
			o.PushRetries, o.PushRetryDelay = 40, 250*time.Millisecond // WeChat keeps retrying a push for 10 s
		},
		Env: func(e map[string]string) {
			e["WXGATE_DATABASE_URL"], link = storetest.Behind(t, e["WXGATE_DATABASE_URL"])
			e["WXGATE_LOG_LEVEL"] = "info"
		},
	})
	db := storetest.OpenURL(t, st.DBURL, nil) // the database itself, not through the link
	ctx := context.Background()
	gw := st.Replicas[0]
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	call := func(appid string) callResult { return fansCall(client, gw.Addr, st.Key, appid) }
	ready := func(t *testing.T) int { code, _ := get(t, "http://"+gw.Addr+"/readyz"); return code }
	refreshes := func(appid string) int64 {
		return st.Sim.Counters().ByAccount[sim.EndpointAuthorizerToken][appid]
	}
	var comp0 struct {
		TicketReceivedAt string `json:"ticket_received_at"`
	}
	var (
		cutAt, restoredAt    time.Time
		issued, pushedTicket string
		during               []time.Duration
		pushes0, pushes      sim.PushCounts
		down, landed, stored time.Duration
	)

	journey.Step(t, "before the cut", func(t *testing.T) {
		for _, a := range appids {
			if r := call(a); r.status != 200 {
				t.Fatalf("%s before the cut: got %+v, want 200", a, r)
			}
		}
		st.in(t).must(http.MethodGet, "/admin/component", testAdminToken, nil, &comp0, 200)
	})

	journey.Step(t, "a refresh in flight when the database goes", func(t *testing.T) {
		// WeChat is slow to answer, and the database is cut once the call
		// has reached it.
		if err := st.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointAuthorizerToken, AppID: inFlight, Kind: sim.FaultLatency, Latency: 1500 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		if err := st.Sim.InvalidateToken(inFlight); err != nil {
			t.Fatal(err)
		}
		first := make(chan callResult, 1)
		go func() { first <- call(inFlight) }()
		eventually(t, 10*time.Second, "the refresh reaching WeChat", func() bool {
			return st.Sim.Counters().Faults[sim.EndpointAuthorizerToken][sim.FaultLatency] > 0
		})
		link.Cut()
		cutAt = time.Now()
		st.Sim.ClearFaults()
		if r := <-first; r.status != 200 {
			t.Errorf("the call whose token WeChat revoked while the database went away: got %+v, want 200", r)
		}
		issued = st.Sim.CurrentAccessToken(inFlight)
		if a, err := db.GetAuthorizer(ctx, testComponentAppID, inFlight); err != nil || a.AccessToken.Reveal() == issued {
			t.Fatalf("the stored token: got the one WeChat issued after the cut (%v), want the old one: nothing passes a cut link", err)
		}
	})

	journey.Step(t, "calls are served while the database is away", func(t *testing.T) {
		// The new token from memory; /readyz says 503; WeChat is not asked
		// for another token.
		eventually(t, 10*time.Second, "/readyz 503 with the database away", func() bool { return ready(t) == 503 })
		for i := 0; time.Since(cutAt) < 3*time.Second; i++ {
			a := appids[i%len(appids)]
			r := call(a)
			during = append(during, r.took)
			if r.status != 200 {
				t.Errorf("%s with the database away: got %+v, want 200", a, r)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	journey.Step(t, "a token WeChat revokes while the database is away", func(t *testing.T) {
		asked := refreshes(revoked)
		if err := st.Sim.InvalidateToken(revoked); err != nil {
			t.Fatal(err)
		}
		rv := call(revoked)
		renewedUpstream := refreshes(revoked) > asked
		switch {
		case rv.status == 200 && renewedUpstream:
			t.Logf("revoked while the database is away: renewed from WeChat and served from memory")
		case rv.status >= 500 && !renewedUpstream:
			t.Logf("revoked while the database is away: not renewed (WeChat not asked), answered %d %s", rv.status, rv.code)
		default:
			t.Errorf("revoked while the database is away: got %+v with WeChat asked: %v, want 200 renewed from WeChat, or 5xx without asking", rv, renewedUpstream)
		}
	})

	journey.Step(t, "a ticket pushed while the database is away", func(t *testing.T) {
		// The gateway answers non-success until it can store it; a retry
		// after the restore lands.
		pushes0 = st.Sim.Counters().Pushes["component_verify_ticket"]
		type pushed struct {
			ticket string
			err    error
		}
		push := make(chan pushed, 1)
		go func() {
			tk, err := st.Sim.PushTicket(ctx)
			push <- pushed{tk, err}
		}()
		eventually(t, 10*time.Second, "a refused push being retried", func() bool {
			return st.Sim.Counters().Pushes["component_verify_ticket"].Attempts >= pushes0.Attempts+2
		})
		if p := st.Sim.Counters().Pushes["component_verify_ticket"]; p.Delivered != pushes0.Delivered {
			t.Fatalf("ticket pushes while the database was away: got %+v, want none answered success (delivered %d)", p, pushes0.Delivered)
		}
		down = time.Since(cutAt)
		if err := link.Restore(); err != nil {
			t.Fatal(err)
		}
		restoredAt = time.Now()
		pr := <-push
		if pr.err != nil {
			t.Fatalf("the ticket push: got %v, want it to land", pr.err)
		}
		landed = time.Since(restoredAt)
		pushes = st.Sim.Counters().Pushes["component_verify_ticket"]
		pushedTicket = pr.ticket
	})

	journey.Step(t, "back without a restart", func(t *testing.T) {
		// Ready, the ticket and the in-flight token stored, the revoked
		// account working.
		eventually(t, 10*time.Second, "/readyz 200 with the database back", func() bool { return ready(t) == 200 })
		comp, err := db.GetComponentState(ctx, testComponentAppID)
		if err != nil || comp.Ticket.Reveal() != pushedTicket {
			t.Errorf("the stored ticket: got another (%v), want the one pushed while the database was away", err)
		}
		var comp1 struct {
			TicketReceivedAt string `json:"ticket_received_at"`
		}
		st.in(t).must(http.MethodGet, "/admin/component", testAdminToken, nil, &comp1, 200)
		if comp1.TicketReceivedAt <= comp0.TicketReceivedAt {
			t.Errorf("ticket_received_at: got %s, want later than before the outage (%s)", comp1.TicketReceivedAt, comp0.TicketReceivedAt)
		}
		eventually(t, 15*time.Second, "the token WeChat issued during the outage being stored", func() bool {
			a, err := db.GetAuthorizer(ctx, testComponentAppID, inFlight)
			stored = time.Since(restoredAt)
			return err == nil && a.AccessToken.Reveal() == issued
		})
		if n := refreshes(inFlight); n != 1 {
			t.Errorf("api_authorizer_token calls for %s: got %d, want 1 (else the token issued during the outage was not the one stored)", inFlight, n)
		}
		if st.Sim.CurrentAccessToken(inFlight) != issued {
			t.Errorf("%s's token after the restore: got yet another, want the one issued during the outage", inFlight)
		}
		for _, a := range appids {
			if r := call(a); r.status != 200 {
				t.Errorf("%s with the database back: got %+v, want 200", a, r)
			}
		}
		eventually(t, 15*time.Second, "the revoked account's token stored", func() bool {
			a, err := db.GetAuthorizer(ctx, testComponentAppID, revoked)
			return err == nil && a.AccessToken.Reveal() == st.Sim.CurrentAccessToken(revoked) && a.Status == store.StatusAuthorized
		})
		if n := st.Sim.Counters().ByErrcode[sim.EndpointUserGet][42001]; n != 0 {
			t.Errorf("user/get calls with an expired token: got %d, want 0", n)
		}
	})

	t.Logf("database away for %v: %d calls served meanwhile (p50 %v, max %v); the token WeChat issued mid-refresh was stored %v after the restore (WeChat asked once);"+
		" ticket push: %d attempts refused, landed %v after the restore (%+v); /readyz 503 while away, 200 after",
		down.Round(100*time.Millisecond), len(during), pct(during, 0.5).Round(time.Millisecond), pct(during, 1).Round(time.Millisecond),
		stored.Round(100*time.Millisecond), pushes.Attempts-pushes0.Attempts-1, landed.Round(time.Millisecond), pushes)
}
