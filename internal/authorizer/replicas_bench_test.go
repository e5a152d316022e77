package authorizer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/authorizer"
	"github.com/wxgate/wxgate/internal/component/componenttest"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// refreshLog records when the simulator was asked for each account's token.
type refreshLog struct {
	mu    sync.Mutex
	now   func() time.Time
	calls map[string][]time.Time
}

func (l *refreshLog) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cgi-bin/component/api_authorizer_token" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var req struct {
				AppID string `json:"authorizer_appid"`
			}
			_ = json.Unmarshal(body, &req)
			l.mu.Lock()
			l.calls[req.AppID] = append(l.calls[req.AppID], l.now())
			l.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// BenchmarkReplicasRefresh measures the token lifecycle the way production
// runs it: N replicas (each its own connection pool on one PostgreSQL
// schema) run their real Run loops (poll and refresh tick) against the
// simulator while the clock runs fast, and readers on every replica keep
// taking tokens from memory. It reports refreshes per account per token
// window, the shortest gap between two refreshes of one account, and how
// close to its expiry any served token was. It runs once whatever b.N is:
//
//	go test ./internal/authorizer -run '^$' -bench ReplicasRefresh -benchtime 1x
//
// WXGATE_BENCH_ACCOUNTS (default 1000), WXGATE_BENCH_REPLICAS (3),
// WXGATE_BENCH_LIFETIME_S (600, simulated) and WXGATE_BENCH_SPEED (30:
// simulated seconds per real second) tune it.
func BenchmarkReplicasRefresh(b *testing.B) {
	accounts := envInt("WXGATE_BENCH_ACCOUNTS", 1000)
	nReplicas := envInt("WXGATE_BENCH_REPLICAS", 3)
	life := time.Duration(envInt("WXGATE_BENCH_LIFETIME_S", 600)) * time.Second
	speed := envInt("WXGATE_BENCH_SPEED", 30)
	const lifetimes = 3
	// One real tick of 100 ms is speed/10 simulated seconds.
	tuning := func(o *authorizer.Options) {
		o.TickInterval, o.PollInterval = 100*time.Millisecond, 100*time.Millisecond
	}
	log := &refreshLog{calls: map[string][]time.Time{}}
	p := componenttest.New(b, componenttest.Options{TokenLifetime: life, Authorizers: tuning, SimMiddleware: log.middleware})
	log.now = p.Clock.Now
	p.PushTicket()
	appids := p.AuthorizeMany("bn", accounts)
	replicas := []*componenttest.Platform{p}
	for len(replicas) < nReplicas {
		replicas = append(replicas, p.Replica(componenttest.Options{Authorizers: tuning}))
	}
	log.mu.Lock()
	clear(log.calls)
	log.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Add(2)
		go func() { defer wg.Done(); _ = r.Authorizers.Run(ctx) }()
		go func() { defer wg.Done(); _ = r.Credentials.Run(ctx) }()
	}
	// Readers: what a request would be served, sampled continuously.
	type sample struct {
		minLeft time.Duration
		n       int
		stale   int // served a token that is neither current nor the one before
	}
	samples := make([]sample, len(replicas))
	for i, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := sample{minLeft: life}
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for ctx.Err() == nil {
				appid := appids[rng.IntN(len(appids))]
				a, ok := r.Authorizers.Get(appid)
				if !ok {
					continue
				}
				if left := a.TokenExpiresAt.Sub(p.Clock.Now()); left < s.minLeft {
					s.minLeft = left
				}
				s.n++
				if s.n%64 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			samples[i] = s
		}()
	}
	start := p.Clock.Now()
	end := start.Add(lifetimes * life)
	b.ResetTimer()
	for p.Clock.Now().Before(end) {
		time.Sleep(10 * time.Millisecond)
		p.Clock.Advance(time.Duration(speed) * 10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	b.StopTimer()

	log.mu.Lock()
	defer log.mu.Unlock()
	total, minGap := 0, life
	perAccountMax := 0
	for _, appid := range appids {
		calls := log.calls[appid]
		total += len(calls)
		perAccountMax = max(perAccountMax, len(calls))
		slices.SortFunc(calls, func(a, b time.Time) int { return a.Compare(b) })
		for i := 1; i < len(calls); i++ {
			minGap = min(minGap, calls[i].Sub(calls[i-1]))
		}
	}
	// A window is one token's life from its refresh to the next one: an
	// account refreshed k times in the run went through k windows, so
	// duplicates show up as gaps far below half a lifetime.
	dup := 0
	for _, appid := range appids {
		calls := log.calls[appid]
		for i := 1; i < len(calls); i++ {
			if calls[i].Sub(calls[i-1]) < life/4 {
				dup++
			}
		}
	}
	minLeft, reads := life, 0
	for _, s := range samples {
		minLeft = min(minLeft, s.minLeft)
		reads += s.n
	}
	windows := float64(total - dup)
	b.ReportMetric(float64(total)/windows, "refreshes/window")
	b.ReportMetric(float64(dup), "duplicate-refreshes")
	b.ReportMetric(float64(total)/float64(len(appids)), "refreshes/account")
	b.ReportMetric(minGap.Seconds()/life.Seconds(), "min-gap/lifetime")
	b.ReportMetric(minLeft.Seconds(), "min-left-s")
	b.ReportMetric(minLeft.Seconds()/life.Seconds(), "min-left/lifetime")
	b.Logf("%d accounts, %d replicas, lifetime %v simulated, %d lifetimes at %dx: %d api_authorizer_token calls (max %d for one account), %d duplicates, shortest gap %v, %d reads, closest to expiry served %v (%.1f%% of the lifetime)",
		len(appids), len(replicas), life, lifetimes, speed, total, perAccountMax, dup, minGap, reads, minLeft, 100*minLeft.Seconds()/life.Seconds())
	if dup > 0 {
		b.Errorf("%d duplicate refreshes", dup)
	}
}
