package app

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // schema setup of the benchmark database

	"github.com/wxgate/wxgate/internal/sim"
)

// benchOptions are the knobs of `wxgate bench`.
type benchOptions struct {
	databaseURL string
	duration    time.Duration
	concurrency int
	replicas    int
	accounts    int
	lifetime    time.Duration
	windows     int
	exportSize  int
	cpuRequests int
	// env adds to the replicas' environment.
	env          map[string]string
	moderateRate float64
}

func runBench(ctx context.Context, args []string, _ Env, stdio IO) error {
	fs := newFlags("bench", "Measure wxgate against the simulator on loopback and print two tables: throughput and latency direct\nvs through the gateway (32 and 8 clients), database queries per proxied request, an export of many\nfollowers (time and the gateway's peak RSS), token refresh coordination across replicas; then the CPU per\nproxied call of wxgate, a bare Go reverse proxy and nginx (when installed) on the same upstream, each a\nchild process. Needs PostgreSQL: a fresh schema is created in --database-url and dropped afterwards.\nGOGC and GOMEMLIMIT are passed to the gateways. Bounded: about 4 minutes with the defaults.", stdio)
	var o benchOptions
	fs.StringVar(&o.databaseURL, "database-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL `URL` to create the benchmark schema in")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each throughput run")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent clients in the throughput runs")
	fs.Float64Var(&o.moderateRate, "moderate-rate", 0, "requests per second of the 8 paced clients of the moderate-load latency run (0: a quarter of the gateway's measured throughput)")
	fs.IntVar(&o.replicas, "replicas", 3, "gateway replicas (child processes) on the one database")
	fs.IntVar(&o.accounts, "accounts", 300, "accounts in the refresh coordination run")
	fs.DurationVar(&o.lifetime, "token-lifetime", 30*time.Second, "the simulator's token lifetime (short, so refreshes happen during the run)")
	fs.IntVar(&o.windows, "windows", 3, "token lifetimes the refresh coordination run lasts")
	fs.IntVar(&o.exportSize, "export-followers", 1_000_000, "followers of the exported account")
	fs.IntVar(&o.cpuRequests, "cpu-requests", 40_000, "requests sent to each proxy (wxgate, a bare Go reverse proxy, nginx) in the CPU comparison")
	stalled := fs.Int("stalled-exports", 0, "measure only the gateway's RSS while this many export attempts never read their answer, with the default export caps and without (docs/performance.md)")
	bareProxy := fs.String("bare-proxy", "", "internal: serve only the bare Go reverse proxy to this upstream `URL` (the benchmark runs itself with it)")
	if done, err := parse(fs, args); done {
		return err
	}
	if *bareProxy != "" {
		return serveBareProxy(ctx, *bareProxy, slog.New(slog.NewJSONHandler(stdio.Stderr, nil)))
	}
	if o.replicas < 1 || o.concurrency < 1 || o.accounts < 1 || o.windows < 1 || o.exportSize < 1 || o.cpuRequests < 1 {
		return fmt.Errorf("%w: --replicas, --concurrency, --accounts, --windows, --export-followers and --cpu-requests must be positive", ErrUsage)
	}
	log := slog.New(slog.NewTextHandler(stdio.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if *stalled > 0 {
		return runStalledExports(ctx, o, *stalled, stdio.Stdout, log)
	}
	b, err := newBench(ctx, o, log)
	if err != nil {
		return err
	}
	defer b.close()
	rows, cpu, err := b.run(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdio.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tdirect (simulator)\tthrough wxgate\tnote")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r[0], r[1], r[2], r[3])
	}
	fmt.Fprintln(tw)
	printCPU(tw, cpu, o)
	fmt.Fprintln(tw)
	printHops(tw, cpu, b.moderate, b.o.duration)
	return tw.Flush()
}

// bench is one benchmark deployment: the simulator in this process, the
// gateways as child processes on a fresh PostgreSQL schema.
type bench struct {
	o benchOptions
	// moderate is the paced clients' rate (requests per second in all).
	moderate float64
	log      *slog.Logger
	host     *simHost
	sim      *sim.Simulator
	simURL   string
	replicas []*replica
	key      string
	admin    string
	client   *http.Client
	dropDB   func()
}

const (
	benchSmall = "wxbe000000000small"
	benchBig   = "wxbe00000000000big"
	// moderateClients is how many clients the moderate-load runs have.
	moderateClients = 8
	// moderateShare is the paced latency run's rate as a share of the
	// gateway's measured throughput: loaded, not saturated.
	moderateShare = 0.25
)

func benchAccount(i int) string { return fmt.Sprintf("wxbf%014x", i) }

func newBench(ctx context.Context, o benchOptions, log *slog.Logger) (*bench, error) {
	b := &bench{o: o, log: log, client: &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		MaxIdleConns: 4 * o.concurrency, MaxIdleConnsPerHost: 2 * o.concurrency, IdleConnTimeout: time.Minute,
	}}}
	dbURL, drop, err := benchSchema(ctx, o.databaseURL)
	if err != nil {
		return nil, err
	}
	b.dropDB = drop
	env := demoEnv("127.0.0.1:0", dbURL, "http://127.0.0.1:8080", "")
	b.admin = env["WXGATE_ADMIN_TOKEN"]

	host, err := startSimHost(sim.Options{
		ComponentAppID: env["WXGATE_COMPONENT_APPID"], ComponentSecret: env["WXGATE_COMPONENT_SECRET"],
		Token: env["WXGATE_COMPONENT_TOKEN"], EncodingAESKey: env["WXGATE_COMPONENT_AES_KEY"],
		TicketInterval: -1, DailyQuota: -1, TokenLifetime: o.lifetime,
		PushRetryDelay: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.close()
		return nil, err
	}
	b.host, b.sim, b.simURL = host, host.Sim, host.URL
	exe, err := os.Executable()
	if err != nil {
		b.close()
		return nil, err
	}
	for k, v := range map[string]string{"WXGATE_WECHAT_API_URL": b.simURL, "WXGATE_WECHAT_MP_URL": b.simURL, "WXGATE_WECHAT_OPEN_URL": b.simURL, "WXGATE_LOG_LEVEL": "info"} {
		env[k] = v
	}
	maps.Copy(env, o.env)
	// The garbage collector's settings reach the gateways, to compare
	// them with Go's defaults (docs/performance.md).
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
	}
	for i := range o.replicas {
		r, err := startReplica(ctx, exe, []string{"serve"}, env, nil)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("bench: replica %d: %w", i, err)
		}
		b.replicas = append(b.replicas, r)
	}
	host.Relay(b.replicas[0].Addr)
	return b, nil
}

// benchSchema creates a fresh schema in the database and returns a URL that uses it.
func benchSchema(ctx context.Context, base string) (string, func(), error) {
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, fmt.Errorf("bench: %w", err)
	}
	name := "bench_" + randomHex(6)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("bench: PostgreSQL is needed (--database-url): %w", err)
	}
	drop := func() {
		_, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+name+" CASCADE")
		db.Close()
	}
	u, err := url.Parse(base)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

func (b *bench) close() {
	for _, r := range b.replicas {
		_ = r.Stop()
	}
	if b.host != nil {
		b.host.Close()
	}
	if b.dropDB != nil {
		b.dropDB()
	}
}

func (b *bench) gw(i int) demoClient {
	return demoClient{base: "http://" + b.replicas[i%len(b.replicas)].Addr, http: b.client}
}

// setUp pushes a ticket, creates a tenant and a key, and authorizes and
// binds every account (event only, then the admin API).
func (b *bench) setUp(ctx context.Context) error {
	specs := []sim.AccountSpec{
		{AppID: benchSmall, Followers: 20, PermissionSets: []int{2}},
		{AppID: benchBig, Followers: b.o.exportSize, PermissionSets: []int{2}},
	}
	for i := range b.o.accounts {
		specs = append(specs, sim.AccountSpec{AppID: benchAccount(i), Followers: 5, PermissionSets: []int{2}})
	}
	c := b.gw(0)
	if _, err := b.sim.PushTicket(ctx); err != nil {
		return fmt.Errorf("bench: push ticket: %w", err)
	}
	var tn struct{ ID string }
	if _, err := c.do(ctx, http.MethodPost, "/admin/tenants", b.admin, map[string]any{"name": "bench"}, &tn); err != nil {
		return err
	}
	var key struct{ Key string }
	if _, err := c.do(ctx, http.MethodPost, "/admin/tenants/"+tn.ID+"/keys", b.admin, map[string]any{"name": "bench"}, &key); err != nil {
		return err
	}
	b.key = key.Key
	// A generous rate limit so the tenant bucket does not shape the measurement.
	if _, err := c.do(ctx, http.MethodPatch, "/admin/tenants/"+tn.ID, b.admin, map[string]any{"rate_limit": 100000, "rate_burst": 100000}, nil); err != nil {
		return err
	}
	for _, s := range specs {
		if err := b.sim.CreateAccount(s); err != nil {
			return err
		}
		err := waitFor(ctx, 15*time.Second, func() error {
			_, err := b.sim.Authorize(ctx, s.AppID, "")
			return err
		})
		if err != nil {
			return fmt.Errorf("bench: authorize %s: %w", s.AppID, err)
		}
		if _, err := c.do(ctx, http.MethodPut, "/admin/tenants/"+tn.ID+"/authorizers/"+s.AppID, b.admin, nil, nil); err != nil {
			return err
		}
	}
	// Every replica must serve every account before measuring.
	for i := range b.replicas {
		g := b.gw(i)
		for _, s := range []string{benchSmall, benchBig, benchAccount(b.o.accounts - 1)} {
			if err := waitFor(ctx, 15*time.Second, func() error {
				_, err := g.do(ctx, http.MethodGet, "/v1/authorizers/"+s, b.key, nil, nil)
				return err
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadResult is one throughput run.
type loadResult struct {
	n, failed int
	elapsed   time.Duration
	lat       []time.Duration
}

func (r loadResult) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r loadResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

// load runs do from workers goroutines for d and collects latencies.
func load(ctx context.Context, workers int, d time.Duration, do func(ctx context.Context) error) loadResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return drive(ctx, workers, asFastAsAnswered(func() bool { return ctx.Err() == nil }), do)
}

// loadPaced calls do from workers goroutines at rate calls per second in
// all, each worker on its own fixed schedule (open loop, as wrk2 or fortio
// -qps do), for d. A latency counts from the call's scheduled time, not
// from when it was sent, so a call delayed behind a slow one is charged
// the wait (no coordinated omission).
func loadPaced(ctx context.Context, workers int, rate float64, d time.Duration, do func(ctx context.Context) error) loadResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	interval := time.Duration(float64(workers) / rate * float64(time.Second))
	start := time.Now()
	return drive(ctx, workers, func(w int) func() (time.Time, bool) {
		due := start.Add(interval*time.Duration(w)/time.Duration(workers) - interval)
		return func() (time.Time, bool) {
			due = due.Add(interval)
			if wait := time.Until(due); wait > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
			return due, ctx.Err() == nil
		}
	}, do)
}

// loadN makes n calls of do from workers goroutines and collects latencies.
func loadN(ctx context.Context, workers, n int, do func(ctx context.Context) error) loadResult {
	var next atomic.Int64
	return drive(ctx, workers, asFastAsAnswered(func() bool { return next.Add(1) <= int64(n) }), do)
}

// drive calls do from workers goroutines, each on its schedule: schedule(w)
// gives worker w's next function, which waits until its next call is due
// and returns when its latency counts from, or false to stop.
func drive(ctx context.Context, workers int, schedule func(w int) func() (time.Time, bool), do func(ctx context.Context) error) loadResult {
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			var lat []time.Duration
			failed := 0
			next := schedule(w)
			for {
				from, ok := next()
				if !ok {
					break
				}
				err := do(ctx)
				if ctx.Err() != nil {
					break
				}
				if err != nil {
					failed++
					continue
				}
				lat = append(lat, time.Since(from))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.failed += failed
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	slices.Sort(res.lat)
	return res
}

// asFastAsAnswered is drive's schedule of a closed loop: each worker calls
// again as soon as it has an answer, while more says so.
func asFastAsAnswered(more func() bool) func(int) func() (time.Time, bool) {
	return func(int) func() (time.Time, bool) {
		return func() (time.Time, bool) { return time.Now(), more() }
	}
}

// get performs one GET and drains the body; non-200 is an error.
func (b *bench) get(ctx context.Context, u, bearer string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("status %d", resp.StatusCode)
	}
	return n, err
}

// scrape calls fn with each line of a replica's /metrics.
func (b *bench) scrape(ctx context.Context, i int, fn func(line string)) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.replicas[i].Addr+"/metrics", nil)
	resp, err := b.client.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		fn(sc.Text())
	}
}

// metric reads one counter or gauge (summed over its label sets) from a replica's /metrics.
func (b *bench) metric(ctx context.Context, i int, name string) float64 {
	var sum float64
	b.scrape(ctx, i, func(line string) {
		if strings.HasPrefix(line, name+" ") || (!strings.Contains(name, "{") && strings.HasPrefix(line, name+"{")) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	})
	return sum
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// histogram is a Prometheus histogram read from /metrics: cumulative
// counts by upper bound.
type histogram struct {
	bounds []float64
	counts []float64
	count  float64
}

// histogram reads name's buckets from a replica's /metrics.
func (b *bench) histogram(ctx context.Context, i int, name string) histogram {
	var h histogram
	b.scrape(ctx, i, func(line string) {
		le, ok := strings.CutPrefix(line, name+`_bucket{le="`)
		if !ok {
			return
		}
		bound, rest, _ := strings.Cut(le, `"}`)
		ub, err1 := strconv.ParseFloat(bound, 64)
		n, err2 := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err1 != nil || err2 != nil {
			return
		}
		h.bounds, h.counts = append(h.bounds, ub), append(h.counts, n)
		h.count = n // +Inf comes last
	})
	return h
}

// minus is the observations made since before.
func (h histogram) minus(before histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts)), count: h.count - before.count}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(before.counts) {
			out.counts[i] -= before.counts[i]
		}
	}
	return out
}

// quantile estimates the q-quantile by linear interpolation inside its
// bucket, as Prometheus's histogram_quantile does.
func (h histogram) quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	rank := q * h.count
	lower, prev := 0.0, 0.0
	for i, n := range h.counts {
		if n >= rank {
			if math.IsInf(h.bounds[i], 1) {
				return time.Duration(lower * float64(time.Second))
			}
			frac := 0.0
			if n > prev {
				frac = (rank - prev) / (n - prev)
			}
			return time.Duration((lower + frac*(h.bounds[i]-lower)) * float64(time.Second))
		}
		lower, prev = h.bounds[i], n
	}
	return time.Duration(lower * float64(time.Second))
}

func (b *bench) run(ctx context.Context) ([][4]string, []cpuResult, error) {
	b.log.Info("setting up", "replicas", len(b.replicas), "accounts", b.o.accounts+2)
	if err := b.setUp(ctx); err != nil {
		return nil, nil, err
	}
	var rows [][4]string

	// Export first, so the first replica's peak RSS is the export's. The
	// two walks take turns and the median of each is kept: one walk is a
	// second or so, short enough for the rest of the machine to sway it.
	b.log.Info("export", "followers", b.o.exportSize, "turns", exportTurns)
	var directs, throughs []time.Duration
	walked, lines := 0, 0
	for range exportTurns {
		start := time.Now()
		n, err := b.walkDirect(ctx, benchBig)
		if err != nil {
			return nil, nil, err
		}
		directs = append(directs, time.Since(start))
		start = time.Now()
		m, err := b.exportLines(ctx, benchBig)
		if err != nil {
			return nil, nil, err
		}
		throughs = append(throughs, time.Since(start))
		walked, lines = n, m
	}
	direct, through := median(directs), median(throughs)
	rows = append(rows,
		[4]string{fmt.Sprintf("export %d followers (wall time, median of %d)", b.o.exportSize, exportTurns), direct.Round(time.Millisecond).String(), through.Round(time.Millisecond).String(),
			fmt.Sprintf("%d vs %d openids; gateway/direct %.2fx (target <= 1.05x)", walked, lines, through.Seconds()/direct.Seconds())},
		[4]string{"gateway peak RSS (VmHWM) after the export", "", fmt.Sprintf("%.1f MiB", float64(b.replicas[0].PeakRSS())/(1<<20)), "target < 64 MiB"})

	// Throughput of a small page, direct and through one replica.
	b.log.Info("throughput", "concurrency", b.o.concurrency, "duration", b.o.duration)
	directCall := func(ctx context.Context) error {
		_, err := b.get(ctx, b.simURL+b.upstreamPath(benchSmall), "")
		return err
	}
	gatewayCall := func(ctx context.Context) error {
		_, err := b.get(ctx, "http://"+b.replicas[0].Addr+"/v1/authorizers/"+benchSmall+"/fans", b.key)
		return err
	}
	d := load(ctx, b.o.concurrency, b.o.duration, directCall)
	q0 := b.metric(ctx, 0, `wxgate_store_queries_total{origin="request"}`)
	bg0 := b.metric(ctx, 0, `wxgate_store_queries_total{origin="background"}`)
	g := load(ctx, b.o.concurrency, b.o.duration, gatewayCall)
	q1 := b.metric(ctx, 0, `wxgate_store_queries_total{origin="request"}`)
	bg1 := b.metric(ctx, 0, `wxgate_store_queries_total{origin="background"}`)
	rows = append(rows,
		[4]string{fmt.Sprintf("small page, %d clients: requests/s", b.o.concurrency), fmt.Sprintf("%.0f", d.rps()), fmt.Sprintf("%.0f", g.rps()), fmt.Sprintf("gateway/direct %.2f", g.rps()/d.rps())},
		[4]string{"small page: p50 latency", ms(d.pct(0.50)), ms(g.pct(0.50)), latencyNote(d.pct(0.50), g.pct(0.50))},
		[4]string{"small page: p99 latency", ms(d.pct(0.99)), ms(g.pct(0.99)), latencyNote(d.pct(0.99), g.pct(0.99))},
		[4]string{fmt.Sprintf("failed requests (%d clients)", b.o.concurrency), strconv.Itoa(d.failed), strconv.Itoa(g.failed), ""},
		[4]string{"database queries per proxied request", "", fmt.Sprintf("%.4f", (q1-q0)/float64(max(g.n, 1))),
			fmt.Sprintf("%.0f made by requests over %d requests; background workers made %.0f meanwhile", q1-q0, g.n, bg1-bg0)},
	)

	// Moderate load: the latency the gateway adds when it is not saturated.
	// Eight clients on a fixed schedule (open loop) at a rate well below
	// what the gateway sustains, the same rate direct and through it; then
	// the same eight clients unpaced (closed loop), which saturates a small
	// machine and so measures queueing as much as the gateway.
	const moderate = moderateClients
	rate := b.o.moderateRate
	if rate <= 0 {
		rate = math.Round(g.rps() * moderateShare)
	}
	b.moderate = rate
	b.log.Info("latency under moderate load", "clients", moderate, "rate", rate, "duration", b.o.duration)
	dp := loadPaced(ctx, moderate, rate, b.o.duration, directCall)
	p0 := b.histogram(ctx, 0, "wxgate_gateway_overhead_seconds")
	gp := loadPaced(ctx, moderate, rate, b.o.duration, gatewayCall)
	ownPaced := b.histogram(ctx, 0, "wxgate_gateway_overhead_seconds").minus(p0)
	paced := fmt.Sprintf("%d clients at %.0f requests/s", moderate, rate)
	rows = append(rows,
		[4]string{"small page, " + paced + ": requests/s", fmt.Sprintf("%.0f", dp.rps()), fmt.Sprintf("%.0f", gp.rps()), fmt.Sprintf("open loop; %.0f%% of the gateway's %d-client throughput", 100*rate/g.rps(), b.o.concurrency)},
		[4]string{"small page, " + paced + ": p50 latency", ms(dp.pct(0.50)), ms(gp.pct(0.50)), latencyNote(dp.pct(0.50), gp.pct(0.50))},
		[4]string{"small page, " + paced + ": p99 latency", ms(dp.pct(0.99)), ms(gp.pct(0.99)), latencyNote(dp.pct(0.99), gp.pct(0.99)) + "; target: added <= 1 ms"},
		[4]string{"failed requests (" + paced + ")", strconv.Itoa(dp.failed), strconv.Itoa(gp.failed), ""},
		[4]string{"gateway's own time per call, " + paced + ": p50 / p99", "",
			fmt.Sprintf("%s / %s", ms(ownPaced.quantile(0.50)), ms(ownPaced.quantile(0.99))),
			fmt.Sprintf("request time minus WeChat's, inside the gateway (wxgate_gateway_overhead_seconds, %.0f calls)", ownPaced.count)},
	)
	b.log.Info("latency with unpaced clients", "clients", moderate, "duration", b.o.duration)
	dm := load(ctx, moderate, b.o.duration, directCall)
	o0 := b.histogram(ctx, 0, "wxgate_gateway_overhead_seconds")
	gm := load(ctx, moderate, b.o.duration, gatewayCall)
	own := b.histogram(ctx, 0, "wxgate_gateway_overhead_seconds").minus(o0)
	rows = append(rows,
		[4]string{fmt.Sprintf("small page, %d clients unpaced: requests/s", moderate), fmt.Sprintf("%.0f", dm.rps()), fmt.Sprintf("%.0f", gm.rps()), fmt.Sprintf("closed loop; gateway/direct %.2f", gm.rps()/dm.rps())},
		[4]string{fmt.Sprintf("small page, %d clients unpaced: p50 latency", moderate), ms(dm.pct(0.50)), ms(gm.pct(0.50)), latencyNote(dm.pct(0.50), gm.pct(0.50))},
		[4]string{fmt.Sprintf("small page, %d clients unpaced: p99 latency", moderate), ms(dm.pct(0.99)), ms(gm.pct(0.99)), latencyNote(dm.pct(0.99), gm.pct(0.99))},
		[4]string{fmt.Sprintf("failed requests (%d clients unpaced)", moderate), strconv.Itoa(dm.failed), strconv.Itoa(gm.failed), ""},
		[4]string{fmt.Sprintf("gateway's own time per call, %d clients unpaced: p50 / p99", moderate), "",
			fmt.Sprintf("%s / %s", ms(own.quantile(0.50)), ms(own.quantile(0.99))),
			fmt.Sprintf("as above (%.0f calls); includes waiting for a CPU the clients and the simulator hold", own.count)},
	)

	cpu, err := b.cpuRun(ctx)
	if err != nil {
		return nil, nil, err
	}
	refreshRows, err := b.refreshRun(ctx)
	if err != nil {
		return nil, nil, err
	}
	return append(rows, refreshRows...), cpu, nil
}

// upstreamPath is the simulator's getFans path for appid with its current token.
func (b *bench) upstreamPath(appid string) string {
	return "/cgi-bin/user/get?access_token=" + url.QueryEscape(b.sim.CurrentAccessToken(appid))
}

// cpuRun sends the same small getFans call through wxgate, a bare Go
// reverse proxy and (when installed) nginx, each a child process in front
// of the same simulator, and reads the CPU each process used per request.
func (b *bench) cpuRun(ctx context.Context) ([]cpuResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	bare, err := startReplica(ctx, exe, []string{"bench", "--bare-proxy", b.simURL}, map[string]string{}, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: bare proxy: %w", err)
	}
	defer bare.Kill()
	ng, err := startNginx(ctx, b.host.Addr())
	if err != nil {
		return nil, err
	}
	targets := []cpuTarget{
		{name: "wxgate", pid: b.replicas[0].Pid(), url: func() string { return "http://" + b.replicas[0].Addr + "/v1/authorizers/" + benchSmall + "/fans" }, auth: b.key},
		{name: "bare Go httputil.ReverseProxy", pid: bare.Pid(), url: func() string { return "http://" + bare.Addr + b.upstreamPath(benchSmall) }},
	}
	if ng != nil {
		defer ng.Stop()
		targets = append(targets, cpuTarget{name: "nginx " + ng.Version(), pid: ng.Pid(), url: func() string { return "http://" + ng.Addr + b.upstreamPath(benchSmall) }})
	}
	// The targets take turns, a share of the requests each round, so that
	// a change in what else the machine runs weighs on all of them alike.
	out := make([]cpuResult, len(targets))
	per := max(b.o.cpuRequests/cpuRounds, 1)
	for round := range cpuRounds {
		for i, t := range targets {
			b.log.Info("CPU per request", "proxy", t.name, "round", round+1, "requests", per, "concurrency", b.o.concurrency)
			r, err := b.measureCPU(ctx, t, per, b.o.concurrency)
			if err != nil {
				return nil, err
			}
			out[i] = out[i].merge(r)
		}
	}
	// Then the latency each proxy adds at the moderate rate, paced, in
	// turns with the direct calls the additions are measured against.
	direct := cpuTarget{name: "direct (no proxy)", url: func() string { return b.simURL + b.upstreamPath(benchSmall) }}
	var directPaced loadResult
	turn := max(b.o.duration/hopRounds, time.Second)
	for round := range hopRounds {
		b.log.Info("latency added by each proxy", "round", round+1, "rate", b.moderate, "clients", moderateClients)
		directPaced = directPaced.merge(b.paced(ctx, direct, turn))
		for i, t := range targets {
			out[i].paced = out[i].paced.merge(b.paced(ctx, t, turn))
		}
	}
	out = append(out, cpuResult{name: direct.name, paced: directPaced, direct: true})
	if ng == nil {
		out = append(out, cpuResult{name: "nginx"})
	}
	return out, nil
}

// hopRounds is how many turns the proxies and the direct calls take in the
// paced latency comparison.
const hopRounds = 3

// paced sends t the moderate-load calls for d and returns their latencies.
func (b *bench) paced(ctx context.Context, t cpuTarget, d time.Duration) loadResult {
	return loadPaced(ctx, moderateClients, b.moderate, d, func(ctx context.Context) error {
		_, err := b.get(ctx, t.url(), t.auth)
		return err
	})
}

// printHops prints the latency each proxy adds at the moderate rate: what
// a loopback hop through any proxy costs on this machine, beside what
// wxgate's costs.
func printHops(w io.Writer, cpu []cpuResult, rate float64, d time.Duration) {
	var direct loadResult
	for _, r := range cpu {
		if r.direct {
			direct = r.paced
		}
	}
	fmt.Fprintf(w, "proxy (same upstream, %d paced clients at %.0f requests/s, %s in %d turns)\tp50 latency\tp99 latency\tp99 added to the direct call's\n", moderateClients, rate, d.Round(time.Second), hopRounds)
	for _, r := range cpu {
		if !r.installed && !r.direct {
			fmt.Fprintf(w, "%s\tnot installed\t\t\n", r.name)
			continue
		}
		added := "-"
		if !r.direct {
			added = ms(r.paced.pct(0.99) - direct.pct(0.99))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.name, ms(r.paced.pct(0.50)), ms(r.paced.pct(0.99)), added)
	}
}

// printCPU prints the CPU comparison: each proxy's CPU per request and
// wxgate's ratios to the others.
func printCPU(w io.Writer, cpu []cpuResult, o benchOptions) {
	fmt.Fprintf(w, "proxy (same upstream, %d requests in %d turns, %d clients)\tCPU per request\tidle work subtracted\trequests/s\tp99 latency\twxgate / this\n", o.cpuRequests, cpuRounds, o.concurrency)
	var gw time.Duration
	for _, r := range cpu {
		if r.name == "wxgate" {
			gw = r.perReq()
		}
	}
	for _, r := range cpu {
		if r.direct {
			continue
		}
		if !r.installed {
			fmt.Fprintf(w, "%s\tnot installed\t\t\t\t\n", r.name)
			continue
		}
		fmt.Fprintf(w, "%s\t%.1f µs\t%.1f µs\t%.0f\t%s\t%.2fx\n", r.name, micros(r.perReq()), micros(r.idle/time.Duration(max(r.load.n, 1))),
			r.load.rps(), ms(r.load.pct(0.99)), float64(gw)/float64(max(r.perReq(), 1)))
	}
}

// exportTurns is how many times each export walk runs.
const exportTurns = 3

// median returns the middle of ds (which it sorts).
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// latencyNote compares a latency through the gateway with the direct one.
func latencyNote(direct, through time.Duration) string {
	return fmt.Sprintf("added %s; gateway/direct %.2fx", ms(through-direct), through.Seconds()/max(direct.Seconds(), 1e-9))
}

// walkDirect pages through an account on the simulator as a client would.
func (b *bench) walkDirect(ctx context.Context, appid string) (int, error) {
	next, n := "", 0
	for {
		q := url.Values{"access_token": {b.sim.CurrentAccessToken(appid)}}
		if next != "" {
			q.Set("next_openid", next)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.simURL+"/cgi-bin/user/get?"+q.Encode(), nil)
		resp, err := b.client.Do(req)
		if err != nil {
			return n, err
		}
		var p struct {
			Count int `json:"count"`
			Data  struct {
				OpenID []string `json:"openid"`
			} `json:"data"`
			NextOpenID string `json:"next_openid"`
		}
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil {
			return n, err
		}
		n += len(p.Data.OpenID)
		if p.NextOpenID == "" || p.Count == 0 {
			return n, nil
		}
		next = p.NextOpenID
	}
}

// exportLines streams the gateway's export and counts its lines.
func (b *bench) exportLines(ctx context.Context, appid string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.replicas[0].Addr+"/v1/authorizers/"+appid+"/fans/export?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+b.key)
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("bench: export: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	n := -1 // the CSV header
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#error") {
			return n, fmt.Errorf("bench: export failed: %s", sc.Text())
		}
		n++
	}
	return n, sc.Err()
}

// refreshRun keeps light load on every account through every replica for
// several token lifetimes, then counts refreshes per account in the
// simulator and the token errors it answered.
func (b *bench) refreshRun(ctx context.Context) ([][4]string, error) {
	b.sim.ResetCounters()
	dur := time.Duration(b.o.windows) * b.o.lifetime
	b.log.Info("refresh coordination", "replicas", len(b.replicas), "accounts", b.o.accounts, "lifetime", b.o.lifetime, "duration", dur)
	var next atomic.Int64
	res := load(ctx, 8, dur, func(ctx context.Context) error {
		i := int(next.Add(1))
		appid := benchAccount(rand.IntN(b.o.accounts))
		_, err := b.get(ctx, "http://"+b.replicas[i%len(b.replicas)].Addr+"/v1/authorizers/"+appid+"/fans", b.key)
		return err
	})
	c := b.sim.Counters()
	total, most, least, youngest := 0, 0, -1, time.Duration(-1)
	for i := range b.o.accounts {
		r := c.Refreshes[benchAccount(i)]
		n := int(r.Count)
		total += n
		most = max(most, n)
		if least < 0 || n < least {
			least = n
		}
		if n > 0 && (youngest < 0 || r.MinReplacedAge < youngest) {
			youngest = r.MinReplacedAge
		}
	}
	windows := float64(dur) / float64(b.o.lifetime)
	tokenErrs := c.ByErrcode[sim.EndpointUserGet][40001] + c.ByErrcode[sim.EndpointUserGet][42001] + c.ByErrcode[sim.EndpointUserGet][40014]
	return [][4]string{
		{fmt.Sprintf("refreshes per account per token lifetime (%d replicas, %d accounts, %s lifetime)", len(b.replicas), b.o.accounts, b.o.lifetime), "",
			fmt.Sprintf("%.2f", float64(total)/float64(b.o.accounts)/windows), fmt.Sprintf("%d refreshes in %.0f lifetimes; per account min %d, max %d", total, windows, least, most)},
		{"youngest token any refresh replaced (a duplicate refresh would replace a seconds-old token)", "", youngest.Round(100 * time.Millisecond).String(),
			fmt.Sprintf("%.0f%% of the lifetime; the refresher renews at 50-75%%", 100*youngest.Seconds()/b.o.lifetime.Seconds())},
		{"token errors answered by WeChat (40001/40014/42001)", "", strconv.FormatInt(tokenErrs, 10), fmt.Sprintf("over %d proxied calls, %d client-visible errors", res.n+res.failed, res.failed)},
	}, nil
}
