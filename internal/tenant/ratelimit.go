package tenant

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateConfig answers a tenant's rate-limit override (0 = the default).
type RateConfig interface {
	TenantRate(tenantID string) (limit float64, burst int, ok bool)
}

// Limiter is one token bucket per tenant. The rate and burst come from the
// configuration (WXGATE_TENANT_RATE_LIMIT / _BURST) unless the tenant has
// an override, which is read from the directory on every call, so a change
// made through the admin API applies within the directory's propagation
// time.
//
// Limits are per replica: each replica keeps its own buckets and nothing is
// shared through the store, so N replicas behind a load balancer let a
// tenant through at up to N times its rate. Set the limits with that in mind.
type Limiter struct {
	rates    RateConfig
	defRate  float64
	defBurst int
	now      func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim   *rate.Limiter
	rate  float64
	burst int
}

// NewLimiter returns a limiter with the default rate (requests per second)
// and burst.
func NewLimiter(rates RateConfig, defaultRate float64, defaultBurst int, now func() time.Time) *Limiter {
	return &Limiter{rates: rates, defRate: defaultRate, defBurst: defaultBurst, now: now, buckets: map[string]*bucket{}}
}

// Allow takes one token from the tenant's bucket. When the bucket is empty
// it answers false and how long until a token is available.
func (l *Limiter) Allow(tenantID string) (bool, time.Duration) {
	r, b := l.defRate, l.defBurst
	if or, ob, ok := l.rates.TenantRate(tenantID); ok {
		if or > 0 {
			r = or
		}
		if ob > 0 {
			b = ob
		}
	}
	if b < 1 {
		b = 1
	}
	now := l.now()
	l.mu.Lock()
	bk := l.buckets[tenantID]
	switch {
	case bk == nil:
		// A new bucket starts full.
		bk = &bucket{lim: rate.NewLimiter(rate.Limit(r), b), rate: r, burst: b}
		l.buckets[tenantID] = bk
	case bk.rate != r || bk.burst != b:
		bk.lim.SetLimitAt(now, rate.Limit(r))
		bk.lim.SetBurstAt(now, b)
		bk.rate, bk.burst = r, b
	}
	l.mu.Unlock()
	res := bk.lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Forget drops the buckets of tenants that no longer exist.
func (l *Limiter) Forget(exists func(tenantID string) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.buckets {
		if !exists(id) {
			delete(l.buckets, id)
		}
	}
}
