package wechat

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Defaults of RetryOptions.
const (
	// DefaultRetryRatio: retries may be at most 20 % of the recent calls
	// to WeChat (attempts, retries included) of an account and of the
	// replica. In a WeChat-wide outage that caps the calls WeChat sees at
	// 1/(1-0.2) = 1.25 per client call, once the floor below is spent.
	DefaultRetryRatio = 0.2
	// DefaultMinRetries is the floor of each budget: retries always
	// allowed per window, so that a quiet account's isolated failure is
	// retried too. 20 per 10 s keeps a budget from running dry by chance
	// when about a sixth of all attempts fail (each extra retry is then
	// more than four standard deviations away; see docs/performance.md).
	DefaultMinRetries = 20
	// DefaultRetryWindow is how far back "recent" reaches.
	DefaultRetryWindow = 10 * time.Second
	// minAttemptRoom is the least time an attempt needs: a retry whose
	// pause would leave less before the deadline is not made.
	minAttemptRoom = 10 * time.Millisecond
)

// Reasons a failed call is not retried (the reason label of
// UpstreamGiveUps).
const (
	GiveUpAccountBudget = "account_budget"
	GiveUpReplicaBudget = "replica_budget"
	GiveUpDeadline      = "deadline"
	GiveUpMaxAttempts   = "max_attempts"
)

// RetryOptions configure a RetryPolicy. Zero fields take the defaults.
type RetryOptions struct {
	// Ratio is the share of recent calls that may be retries, per account
	// and per replica.
	Ratio float64
	// MinRetries is each budget's floor per Window.
	MinRetries int
	// Window is how far back the budgets count calls.
	Window time.Duration
	// BaseBackoff caps the first pause, MaxBackoff every pause; the cap
	// doubles with each retry (exponential backoff) and the pause is drawn
	// uniformly below it (full jitter).
	BaseBackoff, MaxBackoff time.Duration
	// MaxAttempts is a ceiling per call (first try included) for a WeChat
	// that keeps failing one call while the budgets still have room; 0
	// means DefaultMaxAttempts.
	MaxAttempts int
	// Now is the clock (default time.Now) and Rand draws uniformly in
	// [0, n) (default math/rand/v2's Int64N); tests inject both.
	Now  func() time.Time
	Rand func(n int64) int64
}

// RetryPolicy decides which failed calls to WeChat are retried, and when:
// a retry needs room in two budgets, its account's and the replica's
// (retries at most Ratio of the recent calls, plus a floor), time before
// the call's deadline for the pause and one more attempt, and an attempt
// under the ceiling. Isolated transient failures are so retried until the
// call succeeds or its deadline nears, while in a WeChat-wide outage the
// budgets run dry within a few calls and every call fails fast, with the
// calls WeChat sees bounded by the budget. It is safe for concurrent use.
//
// Which failures are retryable at all (errcode -1, HTTP 5xx, dropped
// connections, attempt timeouts) is the Client's decision (retryable).
type RetryPolicy struct {
	o RetryOptions

	mu        sync.Mutex
	replica   budget
	accounts  map[string]*budget
	lastSweep time.Time
}

// NewRetryPolicy returns a policy with o (zero fields take the defaults).
func NewRetryPolicy(o RetryOptions) *RetryPolicy {
	if o.Ratio <= 0 {
		o.Ratio = DefaultRetryRatio
	}
	if o.MinRetries <= 0 {
		o.MinRetries = DefaultMinRetries
	}
	if o.Window <= 0 {
		o.Window = DefaultRetryWindow
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = DefaultBaseBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Int64N
	}
	return &RetryPolicy{o: o, accounts: map[string]*budget{}}
}

// Attempt records a call to WeChat for account ("" for the platform's
// own calls, which share one budget): each call adds to the room for
// retries.
func (p *RetryPolicy) Attempt(account string) {
	now := p.o.Now()
	p.mu.Lock()
	p.replica.add(now, p.o.Window, 1, 0)
	p.account(account, now).add(now, p.o.Window, 1, 0)
	p.mu.Unlock()
}

// Retry decides whether a call for account whose attempt number attempt
// (1-based) just failed is retried. It answers the pause to wait before
// the next attempt, or the GiveUp* reason it is not retried. deadline is
// the call's (zero: none). A retry it grants is counted in both budgets.
func (p *RetryPolicy) Retry(account string, attempt int, deadline time.Time) (time.Duration, string, bool) {
	if attempt >= p.o.MaxAttempts {
		return 0, GiveUpMaxAttempts, false
	}
	pause := p.Backoff(attempt)
	now := p.o.Now()
	if !deadline.IsZero() && deadline.Sub(now) < pause+minAttemptRoom {
		return 0, GiveUpDeadline, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.account(account, now)
	switch {
	case !a.allows(now, p.o):
		return 0, GiveUpAccountBudget, false
	case !p.replica.allows(now, p.o):
		return 0, GiveUpReplicaBudget, false
	}
	a.add(now, p.o.Window, 0, 1)
	p.replica.add(now, p.o.Window, 0, 1)
	return pause, "", true
}

// Backoff is the pause before retry n (1-based): drawn uniformly in
// [0, min(MaxBackoff, BaseBackoff·2^(n-1))), so calls that failed together
// do not come back together ("full jitter").
func (p *RetryPolicy) Backoff(n int) time.Duration {
	limit := p.o.MaxBackoff
	if n >= 1 && n < 32 {
		if d := p.o.BaseBackoff << (n - 1); d > 0 && d < limit {
			limit = d
		}
	}
	return time.Duration(p.o.Rand(int64(limit)))
}

// account returns account's budget, creating it; once a window it drops
// the budgets idle for two windows, so the map holds only recent accounts.
// The caller holds p.mu.
func (p *RetryPolicy) account(account string, now time.Time) *budget {
	if now.Sub(p.lastSweep) >= p.o.Window {
		p.lastSweep = now
		for k, b := range p.accounts {
			if now.Sub(b.start) >= 2*p.o.Window {
				delete(p.accounts, k)
			}
		}
	}
	b := p.accounts[account]
	if b == nil {
		b = &budget{}
		p.accounts[account] = b
	}
	return b
}

// budget counts calls and retries over a sliding window, approximated by
// two fixed slots: the current one, and the previous one weighted by the
// share of it still inside the window.
type budget struct {
	start          time.Time // start of the current slot
	calls, retries float64   // in the current slot
	prevCalls      float64   // in the previous slot
	prevRetries    float64
}

// roll moves the slots forward to now.
func (b *budget) roll(now time.Time, window time.Duration) {
	switch d := now.Sub(b.start); {
	case d < window:
	case d < 2*window:
		b.prevCalls, b.prevRetries = b.calls, b.retries
		b.calls, b.retries = 0, 0
		b.start = b.start.Add(window)
	default:
		b.prevCalls, b.prevRetries, b.calls, b.retries = 0, 0, 0, 0
		b.start = now
	}
}

func (b *budget) add(now time.Time, window time.Duration, calls, retries float64) {
	b.roll(now, window)
	b.calls += calls
	b.retries += retries
}

// recent returns the calls and retries inside the window ending at now.
func (b *budget) recent(now time.Time, window time.Duration) (calls, retries float64) {
	b.roll(now, window)
	w := 1 - float64(now.Sub(b.start))/float64(window)
	return b.calls + w*b.prevCalls, b.retries + w*b.prevRetries
}

// allows reports whether one more retry stays within the budget:
// retries+1 ≤ Ratio·calls + MinRetries over the window.
func (b *budget) allows(now time.Time, o RetryOptions) bool {
	calls, retries := b.recent(now, o.Window)
	return retries+1 <= o.Ratio*calls+float64(o.MinRetries)
}
