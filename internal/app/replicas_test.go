package app_test

// Multi-process tests: `wxgate serve` child processes (the test binary
// re-executed as wxgate, see main_test.go) on one PostgreSQL schema, with
// the simulator in this process. The cluster type below is shared with
// faults_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/app"
	"github.com/wxgate/wxgate/internal/faultnet"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// cluster is a deployment of `wxgate serve` child processes on one
// PostgreSQL schema, in front of the simulator running in this process.
// Events the simulator pushes go to the first replica through /relay/ on
// the simulator's own listener (the benchmark's trick).
type cluster struct {
	t        *testing.T
	Sim      *sim.Simulator
	SimURL   string // the simulator itself (the tests' direct calls)
	DBURL    string
	Env      map[string]string
	Replicas []*app.Replica
	// WeChat sits between the gateways and the simulator when
	// clusterOptions.WeChatLink is set: Cut takes WeChat off the network.
	WeChat   *faultnet.Forwarder
	Key      string
	TenantID string
	client   *http.Client

	mu     sync.Mutex
	killed map[*app.Replica]bool
}

type clusterOptions struct {
	Replicas int
	// Sim adjusts the simulator's options (lifetimes, push retries).
	Sim func(*sim.Options)
	// Env adjusts the replicas' environment.
	Env func(map[string]string)
	// WeChatLink puts a faultnet forwarder between the replicas and the
	// simulator.
	WeChatLink bool
}

func newCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, killed: map[*app.Replica]bool{}, client: &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns: 512, MaxIdleConnsPerHost: 128, IdleConnTimeout: 30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	t.Cleanup(c.client.CloseIdleConnections)

	simOpts := sim.Options{
		ComponentAppID: testComponentAppID, ComponentSecret: "test-component-secret",
		Token: "test-component-token", EncodingAESKey: testAESKey,
		TicketInterval: -1, DailyQuota: -1,
		PushRetryDelay: 100 * time.Millisecond, Seed: 1, Logger: slog.New(slog.DiscardHandler),
	}
	if o.Sim != nil {
		o.Sim(&simOpts)
	}
	host, err := app.StartSimHost(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(host.Close)
	c.Sim, c.SimURL = host.Sim, host.URL
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	wechatURL := c.SimURL
	if o.WeChatLink {
		fwd, err := faultnet.Start(host.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fwd.Close)
		c.WeChat = fwd
		wechatURL = "http://" + fwd.Addr()
	}
	c.DBURL = storetest.NewURL(t, store.Postgres)
	c.Env = gatewayEnv(c.DBURL, wechatURL)
	c.Env["WXGATE_LOG_LEVEL"] = "info"
	c.Env["WXGATE_TENANT_RATE_LIMIT"] = "100000"
	c.Env["WXGATE_TENANT_RATE_BURST"] = "100000"
	c.Env[asWxgate] = "1"
	if o.Env != nil {
		o.Env(c.Env)
	}
	// One at a time: the first applies the migrations.
	for i := range o.Replicas {
		r, err := app.StartReplica(ctx, exe, []string{"serve"}, c.Env, nil)
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		c.Replicas = append(c.Replicas, r)
		t.Cleanup(func() { c.stop(r) })
	}
	host.Relay(c.Replicas[0].Addr)

	if _, err := c.Sim.PushTicket(ctx); err != nil {
		t.Fatalf("push ticket: %v", err)
	}
	eventually(t, 20*time.Second, "component token", func() bool {
		var st struct {
			TokenExpiresAt *string `json:"token_expires_at"`
		}
		code, _, _ := c.do(c.Replicas[0], http.MethodGet, "/admin/component", testAdminToken, nil, &st)
		return code == 200 && st.TokenExpiresAt != nil
	})
	var tn struct{ ID string }
	c.must(http.MethodPost, "/admin/tenants", testAdminToken, map[string]any{"name": "acme"}, &tn, 201)
	c.TenantID = tn.ID
	var k struct{ Key string }
	c.must(http.MethodPost, "/admin/tenants/"+c.TenantID+"/keys", testAdminToken, map[string]any{"name": "load"}, &k, 201)
	c.Key = k.Key
	return c
}

// stop ends a replica with SIGTERM (unless the test killed it) and reports
// an unclean exit: a race detected in the child exits 66.
func (c *cluster) stop(r *app.Replica) {
	c.mu.Lock()
	killed := c.killed[r]
	c.mu.Unlock()
	if killed {
		return
	}
	if err := r.Stop(); err != nil {
		c.t.Errorf("replica %s did not exit cleanly: %v\nlast log lines:\n%s", r.Addr, err, r.Logs())
	}
}

// kill ends a replica with SIGKILL, as a crash would.
func (c *cluster) kill(r *app.Replica) {
	c.mu.Lock()
	c.killed[r] = true
	c.mu.Unlock()
	r.Kill()
}

// do sends a request to a replica; out (if not nil) receives the JSON answer.
func (c *cluster) do(r *app.Replica, method, path, bearer string, in, out any) (int, []byte, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+r.Addr+path, body)
	if err != nil {
		return 0, nil, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		_ = json.Unmarshal(raw, out)
	}
	return resp.StatusCode, raw, err
}

// must sends a request to the first replica and fails the test unless it
// answers want.
func (c *cluster) must(method, path, bearer string, in, out any, want int) {
	c.t.Helper()
	code, raw, err := c.do(c.Replicas[0], method, path, bearer, in, out)
	if err != nil || code != want {
		c.t.Fatalf("%s %s = %d %s (%v), want %d", method, path, code, raw, err, want)
	}
}

// fans calls getFans for appid on a replica.
func (c *cluster) fans(r *app.Replica, appid string) (int, []byte, error) {
	return c.do(r, http.MethodGet, "/v1/authorizers/"+appid+"/fans", c.Key, nil, nil)
}

// addAccounts creates the accounts in the simulator, has each authorize the
// platform (the authorized event reaches the first replica), binds them to
// the tenant and waits until every replica serves every one of them.
func (c *cluster) addAccounts(specs []sim.AccountSpec) {
	c.t.Helper()
	ctx := c.t.Context()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, a := range specs {
		if err := c.Sim.CreateAccount(a); err != nil {
			c.t.Fatal(err)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var err error
			for try := 0; try < 5; try++ {
				if _, err = c.Sim.Authorize(ctx, a.AppID, ""); err == nil {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err != nil {
				c.t.Errorf("authorize %s: %v", a.AppID, err)
				return
			}
			code, raw, err := c.do(c.Replicas[0], http.MethodPut, "/admin/tenants/"+c.TenantID+"/authorizers/"+a.AppID, testAdminToken, nil, nil)
			if err != nil || code != 204 {
				c.t.Errorf("bind %s: %d %s %v", a.AppID, code, raw, err)
			}
		}()
	}
	wg.Wait()
	if c.t.Failed() {
		c.t.FailNow()
	}
	for _, r := range c.Replicas {
		for _, a := range specs {
			deadline := time.Now().Add(20 * time.Second)
			for {
				code, raw, err := c.fans(r, a.AppID)
				if code == 200 {
					break
				}
				if time.Now().After(deadline) {
					c.t.Fatalf("%s not served by %s within 20 s: %d %s %v", a.AppID, r.Addr, code, raw, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

// metric reads a replica's /metrics: see metricAt.
func (c *cluster) metric(r *app.Replica, name string) (float64, error) {
	return metricAt(c.client, r.Addr, name)
}

// metricAt reads /metrics at addr and sums the samples of name (all label
// sets, or exactly the one given in braces).
func metricAt(client *http.Client, addr, name string) (float64, error) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || (!strings.Contains(name, "{") && strings.HasPrefix(line, name+"{")) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				sum += v
				found = true
			}
		}
	}
	if !found {
		return 0, fmt.Errorf("no %s on /metrics", name)
	}
	return sum, sc.Err()
}

// loadCounts are the answers a load run got from one replica.
type loadCounts struct {
	ok, failed atomic.Int64
}

// loadRun sends getFans for random accounts to each replica from workers
// goroutines per replica until stop is closed. skip(i) tells a worker to
// leave replica i alone (killed); failures recorded while skip(i) is true
// are not counted. The first failure is kept for the report.
type loadRun struct {
	counts []loadCounts
	first  atomic.Pointer[string]
	wg     sync.WaitGroup
	stop   chan struct{}
}

func (c *cluster) startLoad(workers int, pause time.Duration, appids []string, skip func(int) bool) *loadRun {
	l := &loadRun{counts: make([]loadCounts, len(c.Replicas)), stop: make(chan struct{})}
	for i, r := range c.Replicas {
		for w := range workers {
			l.wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(i), uint64(w)))
				t := time.NewTicker(pause)
				defer t.Stop()
				for {
					select {
					case <-l.stop:
						return
					case <-t.C:
					}
					if skip != nil && skip(i) {
						continue
					}
					appid := appids[rng.IntN(len(appids))]
					code, raw, err := c.fans(r, appid)
					if code == 200 && err == nil {
						l.counts[i].ok.Add(1)
						continue
					}
					if skip != nil && skip(i) {
						continue
					}
					l.counts[i].failed.Add(1)
					msg := fmt.Sprintf("%s on replica %d: %d %.300s %v", appid, i, code, raw, err)
					l.first.CompareAndSwap(nil, &msg)
				}
			})
		}
	}
	return l
}

// end stops the load and returns the totals.
func (l *loadRun) end() (ok, failed int64, first string) {
	close(l.stop)
	l.wg.Wait()
	for i := range l.counts {
		ok += l.counts[i].ok.Load()
		failed += l.counts[i].failed.Load()
	}
	if p := l.first.Load(); p != nil {
		first = *p
	}
	return ok, failed, first
}

// TestReplicasRefreshEachAccountOncePerWindow runs three `wxgate serve`
// processes on one PostgreSQL schema in front of a simulator whose tokens
// live 10 s, with a few hundred accounts and steady getFans traffic spread
// over the three for three and a half token lifetimes. It proves:
//
//   - no client request fails;
//
//   - each account is refreshed exactly once per token generation across
//     the three replicas: every refresh the simulator saw replaced a token
//     at least 45% of a lifetime old (a second replica refreshing the same
//     window would replace a token seconds old), and no account went a
//     lifetime without one;
//
//   - the simulator never answered user/get with 40001 or 42001: every
//     token a replica served was valid.
//
//     go test -race -count=1 -run TestReplicasRefreshEachAccountOncePerWindow -v ./internal/app/
func TestReplicasRefreshEachAccountOncePerWindow(t *testing.T) {
	t.Parallel()
	const life = 10 * time.Second
	accounts, run := 200, 35*time.Second
	if testing.Short() {
		accounts, run = 60, 25*time.Second
	}
	c := newCluster(t, clusterOptions{Replicas: 3, Sim: func(o *sim.Options) { o.TokenLifetime = life }})
	specs := make([]sim.AccountSpec, accounts)
	appids := make([]string, accounts)
	for i := range specs {
		appids[i] = fmt.Sprintf("wx3r%014d", i)
		specs[i] = sim.AccountSpec{AppID: appids[i], Followers: 3, PermissionSets: []int{2}}
	}
	c.addAccounts(specs)

	c.Sim.ResetCounters()
	began := time.Now()
	load := c.startLoad(2, 10*time.Millisecond, appids, nil)
	time.Sleep(run)
	ok, failed, first := load.end()
	elapsed := time.Since(began)
	counters := c.Sim.Counters()

	if failed > 0 {
		t.Errorf("%d of %d requests failed; first: %s", failed, ok+failed, first)
	}
	for i := range c.Replicas {
		if load.counts[i].ok.Load() == 0 {
			t.Errorf("replica %d served nothing", i)
		}
	}
	for _, code := range []int{40001, 42001} {
		if n := counters.ByErrcode[sim.EndpointUserGet][code]; n != 0 {
			t.Errorf("the simulator answered user/get %d times with %d: a replica served a token that was no longer valid", n, code)
		}
	}
	// Refreshes come at 50-75% of a lifetime (plus a refresher tick), so a
	// token is replaced once, when it is at least half a lifetime old.
	minWant := int64(elapsed / life)
	total, youngest := int64(0), time.Duration(math.MaxInt64)
	var youngestApp string
	var perAccount []int64
	for _, appid := range appids {
		r := counters.Refreshes[appid]
		total += r.Count
		perAccount = append(perAccount, r.Count)
		if r.Count < minWant {
			t.Errorf("%s refreshed %d times in %v of %v tokens (want at least %d)", appid, r.Count, elapsed.Round(time.Second), life, minWant)
		}
		if r.Count > 0 && r.MinReplacedAge < youngest {
			youngest, youngestApp = r.MinReplacedAge, appid
		}
		if r.Count > 0 && r.MinReplacedAge < life*45/100 {
			t.Errorf("%s: a refresh replaced a token only %v old (lifetime %v): two refreshes in one window", appid, r.MinReplacedAge, life)
		}
	}
	if n := counters.ByErrcode[sim.EndpointAuthorizerToken]; n[0] != total {
		t.Errorf("api_authorizer_token answered %v, want %d successes and nothing else", n, total)
	}
	slices.Sort(perAccount)
	windows := elapsed.Seconds() / life.Seconds()
	t.Logf("%d replicas, %d accounts, token lifetime %v, %v of load: %d requests, %d failed (%.0f/s); per replica %d/%d/%d",
		len(c.Replicas), accounts, life, elapsed.Round(100*time.Millisecond), ok+failed, failed, float64(ok+failed)/elapsed.Seconds(),
		load.counts[0].ok.Load(), load.counts[1].ok.Load(), load.counts[2].ok.Load())
	t.Logf("refreshes: %d in total, %.2f per account per lifetime (min %d, median %d, max %d per account over %.1f lifetimes); youngest replaced token %v (%.0f%% of a lifetime, %s); user/get 40001: %d, 42001: %d",
		total, float64(total)/float64(accounts)/windows, perAccount[0], perAccount[len(perAccount)/2], perAccount[len(perAccount)-1], windows,
		youngest.Round(time.Millisecond), 100*youngest.Seconds()/life.Seconds(), youngestApp,
		counters.ByErrcode[sim.EndpointUserGet][40001], counters.ByErrcode[sim.EndpointUserGet][42001])
}
