package wechat

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestPolicy(o RetryOptions) (*RetryPolicy, *fakeClock) {
	c := &fakeClock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	o.Now = c.now
	if o.Rand == nil {
		o.Rand = func(int64) int64 { return 0 }
	}
	return NewRetryPolicy(o), c
}

// attempts records n calls for account.
func attempts(p *RetryPolicy, account string, n int) {
	for range n {
		p.Attempt(account)
	}
}

// grants asks for retries for account until one is refused and returns
// how many were granted and why the last was not.
func grants(p *RetryPolicy, account string) (int, string) {
	for n := 0; ; n++ {
		if _, why, ok := p.Retry(account, 1, time.Time{}); !ok {
			return n, why
		}
	}
}

func TestRetryBudget(t *testing.T) {
	t.Parallel()
	t.Run("an account's budget is 20% of its calls plus the floor", func(t *testing.T) {
		p, _ := newTestPolicy(RetryOptions{MinRetries: 2})
		attempts(p, "a", 10)
		attempts(p, "b", 100) // room in the replica's budget
		if n, why := grants(p, "a"); n != 4 || why != GiveUpAccountBudget {
			t.Fatalf("granted %d (%s), want 4 = 0.2·10 + 2 then %s", n, why, GiveUpAccountBudget)
		}
	})
	t.Run("the replica's budget caps every account together", func(t *testing.T) {
		p, _ := newTestPolicy(RetryOptions{MinRetries: 2})
		attempts(p, "a", 10)
		attempts(p, "b", 40)
		// Replica: 0.2·50 + 2 = 12. a takes 4 (its own cap), b the 8 left.
		if n, why := grants(p, "a"); n != 4 || why != GiveUpAccountBudget {
			t.Fatalf("a: granted %d (%s), want 4 then %s", n, why, GiveUpAccountBudget)
		}
		if n, why := grants(p, "b"); n != 8 || why != GiveUpReplicaBudget {
			t.Fatalf("b: granted %d (%s), want 8 then %s", n, why, GiveUpReplicaBudget)
		}
	})
	t.Run("a quiet account's isolated failure is retried", func(t *testing.T) {
		p, _ := newTestPolicy(RetryOptions{})
		attempts(p, "quiet", 1)
		if _, why, ok := p.Retry("quiet", 1, time.Time{}); !ok {
			t.Fatalf("refused (%s), want the floor to grant it", why)
		}
	})
	t.Run("the window forgets old calls and retries", func(t *testing.T) {
		p, c := newTestPolicy(RetryOptions{MinRetries: 2, Window: 10 * time.Second})
		attempts(p, "a", 10)
		if n, _ := grants(p, "a"); n != 4 {
			t.Fatalf("granted %d, want 4", n)
		}
		// Half a window into the next slot, the previous one weighs half:
		// 5 calls and 2 retries, so 0.2·5 + 2 - 2 = 1 more.
		c.advance(15 * time.Second)
		if n, _ := grants(p, "a"); n != 1 {
			t.Fatalf("half a window later: granted %d, want 1", n)
		}
		// Two windows later nothing is remembered: the floor again.
		c.advance(20 * time.Second)
		if n, _ := grants(p, "a"); n != 2 {
			t.Fatalf("two windows later: granted %d, want 2", n)
		}
	})
	t.Run("a WeChat-wide outage: retries stay within the budget", func(t *testing.T) {
		// Every attempt fails and every call asks for retries until refused.
		p, _ := newTestPolicy(RetryOptions{MaxAttempts: 1000})
		const calls = 10000
		made, retried := 0, 0
		for i := range calls {
			account := fmt.Sprintf("wx%016d", i%500)
			for attempt := 1; ; attempt++ {
				p.Attempt(account)
				made++
				if _, _, ok := p.Retry(account, attempt, time.Time{}); !ok {
					break
				}
				retried++
			}
		}
		// retries ≤ 0.2·(calls + retries) + floor  ⇔  retries ≤ (0.2·calls + floor)/0.8
		bound := (0.2*calls + DefaultMinRetries) / 0.8
		if float64(retried) > bound {
			t.Fatalf("%d retries for %d calls, budget %.0f", retried, calls, bound)
		}
		t.Logf("%d calls, %d attempts: amplification %.3f (bound %.3f)", calls, made, float64(made)/calls, 1+bound/calls)
	})
	t.Run("idle accounts are forgotten", func(t *testing.T) {
		p, c := newTestPolicy(RetryOptions{Window: 10 * time.Second})
		for i := range 1000 {
			p.Attempt(fmt.Sprintf("wx%016d", i))
		}
		c.advance(20 * time.Second)
		p.Attempt("fresh")
		if n := len(p.accounts); n != 1 {
			t.Fatalf("%d budgets kept, want 1", n)
		}
	})
}

func TestRetryDeadlineAndCeiling(t *testing.T) {
	t.Parallel()
	longest := func(n int64) int64 { return n - 1 }
	tests := []struct {
		name     string
		rand     func(int64) int64
		attempt  int
		left     time.Duration // before the deadline; 0: none
		wantOK   bool
		wantWhy  string
		maxPause time.Duration
	}{
		{"no deadline", longest, 1, 0, true, "", 100 * time.Millisecond},
		{"the pause and an attempt fit", longest, 1, time.Second, true, "", 100 * time.Millisecond},
		{"the longest pause would end past the deadline", longest, 1, 100 * time.Millisecond, false, GiveUpDeadline, 0},
		{"a short draw still fits", func(int64) int64 { return 0 }, 1, 50 * time.Millisecond, true, "", 0},
		{"too close to the deadline for any attempt", func(int64) int64 { return 0 }, 1, 5 * time.Millisecond, false, GiveUpDeadline, 0},
		{"the ceiling", func(int64) int64 { return 0 }, 8, 0, false, GiveUpMaxAttempts, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, c := newTestPolicy(RetryOptions{Rand: tc.rand})
			p.Attempt("a")
			var deadline time.Time
			if tc.left > 0 {
				deadline = c.now().Add(tc.left)
			}
			pause, why, ok := p.Retry("a", tc.attempt, deadline)
			if ok != tc.wantOK || why != tc.wantWhy {
				t.Fatalf("Retry = %v, %q, %v; want %q, %v", pause, why, ok, tc.wantWhy, tc.wantOK)
			}
			if ok && (pause < 0 || pause > tc.maxPause) {
				t.Fatalf("pause %v, want within [0, %v]", pause, tc.maxPause)
			}
			if ok && !deadline.IsZero() && c.now().Add(pause+minAttemptRoom).After(deadline) {
				t.Fatalf("pause %v leaves no room before the deadline", pause)
			}
		})
	}
}

func TestBackoffIsFullJitter(t *testing.T) {
	t.Parallel()
	var limits []int64
	p, _ := newTestPolicy(RetryOptions{BaseBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second,
		Rand: func(n int64) int64 { limits = append(limits, n); return n - 1 }})
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000, 2000}
	for i, w := range want {
		w *= time.Millisecond
		if got := p.Backoff(i + 1); got != w-1 {
			t.Errorf("retry %d: longest pause %v, want just under %v", i+1, got, w)
		}
		if limits[i] != int64(w) {
			t.Errorf("retry %d: drawn below %v, want below %v", i+1, time.Duration(limits[i]), w)
		}
	}
	if got := p.Backoff(200); got != 2*time.Second-1 {
		t.Errorf("a huge retry number: %v, want the cap", got)
	}
	// With the real random source every pause lies in [0, cap).
	r := NewRetryPolicy(RetryOptions{BaseBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second})
	seenLow, seenHigh := false, false
	for range 2000 {
		d := r.Backoff(1)
		if d < 0 || d >= 100*time.Millisecond {
			t.Fatalf("pause %v outside [0, 100ms)", d)
		}
		seenLow = seenLow || d < 10*time.Millisecond
		seenHigh = seenHigh || d >= 90*time.Millisecond
	}
	if !seenLow || !seenHigh {
		t.Errorf("2000 draws never came near one end of [0, 100ms): low %v, high %v", seenLow, seenHigh)
	}
}
