package console

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sign-in throttling: every attempt (token or one-time code, right or
// wrong) takes a token from the client's bucket and from the global one.
// Per client: a burst of 5, then one every 10 s; overall: a burst of 20,
// then one every 2 s. The buckets are per replica: N replicas allow N times
// the global rate, still far too little to guess a 32-character token.
const (
	perClientEvery = 10 * time.Second
	perClientBurst = 5
	globalEvery    = 2 * time.Second
	globalBurst    = 20
	// maxClients bounds the per-client map; when full, idle buckets are
	// dropped (a full bucket is the same as none).
	maxClients = 10_000
)

type throttle struct {
	now    func() time.Time
	mu     sync.Mutex
	global *rate.Limiter
	byIP   map[string]*rate.Limiter
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, global: rate.NewLimiter(rate.Every(globalEvery), globalBurst), byIP: map[string]*rate.Limiter{}}
}

// allow takes one attempt for ip, or answers false and how long to wait.
func (t *throttle) allow(ip string) (bool, time.Duration) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.byIP[ip]
	if !ok {
		if len(t.byIP) >= maxClients {
			t.prune(now)
		}
		l = rate.NewLimiter(rate.Every(perClientEvery), perClientBurst)
		t.byIP[ip] = l
	}
	if !l.AllowN(now, 1) {
		return false, perClientEvery
	}
	if !t.global.AllowN(now, 1) {
		return false, globalEvery
	}
	return true, 0
}

// prune drops the buckets that are full again.
func (t *throttle) prune(now time.Time) {
	for ip, l := range t.byIP {
		if l.TokensAt(now) >= perClientBurst {
			delete(t.byIP, ip)
		}
	}
	if len(t.byIP) >= maxClients {
		t.byIP = map[string]*rate.Limiter{}
	}
}
