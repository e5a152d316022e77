package lease_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/lease"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

func TestTTL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name              string
		ceiling, lifetime time.Duration
		want              time.Duration
	}{
		{"WeChat's 7200 s token: the ceiling", 30 * time.Second, 7200 * time.Second, 30 * time.Second},
		{"a 600 s authorization code: the ceiling", 30 * time.Second, 600 * time.Second, 30 * time.Second},
		{"an eighth of a short lifetime", 30 * time.Second, 160 * time.Second, 20 * time.Second},
		{"never under MinTTL", 30 * time.Second, 8 * time.Second, lease.MinTTL},
		{"a lower ceiling wins", 10 * time.Second, 7200 * time.Second, 10 * time.Second},
		{"unknown lifetime: the ceiling", 30 * time.Second, 0, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lease.TTL(tc.ceiling, tc.lifetime); got != tc.want {
				t.Fatalf("TTL(%v, %v) = %v, want %v", tc.ceiling, tc.lifetime, got, tc.want)
			}
		})
	}
}

// recorder keeps the log records a test's Leases write.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

// warnings returns the messages logged at warning level or above, each
// with its "lease" attribute.
func (r *recorder) warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.records {
		if rec.Level < slog.LevelWarn {
			continue
		}
		msg := rec.Message
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "lease" {
				msg += " [" + a.Value.String() + "]"
			}
			return true
		})
		out = append(out, msg)
	}
	return out
}

// TestLeasesOnEachStore runs the lease table through Leases as a job's
// replicas use it: one holder at a time, renewal by the holder, release,
// expiry of a dead holder's lease by the store's clock, attempts of one
// replica excluding each other, and a failed release that is logged.
func TestLeasesOnEachStore(t *testing.T) {
	t.Parallel()
	storetest.ForEachDialect(t, func(t *testing.T, d store.Dialect) {
		clock := storetest.NewClock()
		st := storetest.Open(t, d, clock.Now)
		log := &recorder{}
		newLeases := func(owner string) *lease.Leases {
			return lease.New(st, owner, clock.Now, slog.New(log))
		}
		a, b := newLeases("replica-a"), newLeases("replica-b")
		ctx := context.Background()
		const name, ttl = "job:1", 10 * time.Second
		take := func(t *testing.T, l *lease.Leases, want bool) *lease.Lease {
			t.Helper()
			held, err := l.Take(ctx, name, ttl)
			if err != nil {
				t.Fatalf("%s takes %s: %v", l.Owner(), name, err)
			}
			if got := held != nil; got != want {
				t.Fatalf("%s takes %s: got %v, want %v", l.Owner(), name, got, want)
			}
			return held
		}
		var held *lease.Lease
		t.Run("the first taker holds it", func(t *testing.T) { held = take(t, a, true) })
		t.Run("another owner is refused while it is held", func(t *testing.T) { take(t, b, false) })
		t.Run("the holder renews it", func(t *testing.T) {
			clock.Advance(ttl - time.Second)
			take(t, a, true) // now held until ttl from here
			clock.Advance(2 * time.Second)
			take(t, b, false)
		})
		var late *lease.Lease
		t.Run("a released lease is free at once", func(t *testing.T) {
			held.Release(ctx)
			late = take(t, b, true)
		})
		t.Run("a dead holder's lease runs out at its TTL, not before", func(t *testing.T) {
			// b "dies" holding it.
			clock.Advance(ttl - time.Millisecond)
			take(t, a, false)
			clock.Advance(2 * time.Millisecond)
			held = take(t, a, true)
		})
		t.Run("the late release of a holder that was taken over frees nothing", func(t *testing.T) {
			late.Release(ctx) // b wakes up after its lease ran out
			take(t, b, false)
		})
		t.Run("two attempts of one owner exclude each other", func(t *testing.T) {
			first, second := a.Attempt(), a.Attempt()
			if first.Owner() == second.Owner() || first.Owner() == a.Owner() {
				t.Fatalf("attempt owners %q, %q of %q are not distinct", first.Owner(), second.Owner(), a.Owner())
			}
			h, err := first.Take(ctx, "authcode:x", ttl)
			if err != nil || h == nil {
				t.Fatalf("first attempt: %v %v", h, err)
			}
			if h2, err := second.Take(ctx, "authcode:x", ttl); err != nil || h2 != nil {
				t.Fatalf("second attempt took the first's lease: %v %v", h2, err)
			}
			h.Release(ctx)
			if h2, err := second.Take(ctx, "authcode:x", ttl); err != nil || h2 == nil {
				t.Fatalf("second attempt after the release: %v %v", h2, err)
			}
		})
		t.Run("a failed release is logged, never dropped", func(t *testing.T) {
			if got := log.warnings(); len(got) != 0 {
				t.Fatalf("warnings before any failure: %v", got)
			}
			h := take(t, a, true)
			_ = st.Close() // the store goes away under the holder
			h.Release(ctx)
			want := []string{"lease: release failed; the lease runs out at its TTL [job:1]"}
			if got := log.warnings(); !slices.Equal(got, want) {
				t.Fatalf("warnings = %q, want %q", got, want)
			}
		})
	})
}

// TestWait: a waiter polls until the holder's result is there, gives up
// after MaxWait by the injected clock (not by sleeping that long), and
// stops when its context ends.
func TestWait(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock()
	l := lease.New(nil, "waiter", clock.Now, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	t.Run("returns once done", func(t *testing.T) {
		polls := 0
		err := l.Wait(ctx, "the job", func(context.Context) (bool, error) {
			polls++
			return polls == 3, nil
		})
		if err != nil || polls != 3 {
			t.Fatalf("Wait = %v after %d polls, want nil after 3", err, polls)
		}
	})
	t.Run("returns the check's error", func(t *testing.T) {
		boom := errors.New("store down")
		if err := l.Wait(ctx, "the job", func(context.Context) (bool, error) { return false, boom }); !errors.Is(err, boom) {
			t.Fatalf("Wait = %v, want %v", err, boom)
		}
	})
	t.Run("gives up after MaxWait by the clock", func(t *testing.T) {
		polls := 0
		err := l.Wait(ctx, "the job", func(context.Context) (bool, error) {
			polls++
			if polls == 2 {
				clock.Advance(lease.MaxWait - time.Millisecond)
			}
			if polls == 4 {
				clock.Advance(time.Millisecond)
			}
			return false, nil
		})
		if !errors.Is(err, lease.ErrStillHeld) || polls != 4 {
			t.Fatalf("Wait = %v after %d polls, want ErrStillHeld after 4", err, polls)
		}
	})
	t.Run("stops when its context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		err := l.Wait(ctx, "the job", func(context.Context) (bool, error) {
			cancel()
			return false, nil
		})
		e := errs.As(err)
		if e == nil || e.Code != errs.UpstreamTimeout || e.Message != "timed out waiting for the job" || !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want upstream_timeout \"timed out waiting for the job\" wrapping context.Canceled", err)
		}
	})
}

type ctxKey struct{}

// TestDetach: a shared job outlives the caller that started it, but not
// its own bound nor the owner's Run.
func TestDetach(t *testing.T) {
	t.Parallel()
	l := lease.New(nil, "replica", time.Now, slog.New(slog.DiscardHandler))
	ended := func(ctx context.Context) bool {
		select {
		case <-ctx.Done():
			return true
		case <-time.After(5 * time.Second):
			return false
		}
	}
	t.Run("outlives the caller and keeps its values", func(t *testing.T) {
		caller, cancelCaller := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "request-7"))
		job, cancel := l.Detach(caller, time.Minute)
		defer cancel()
		cancelCaller()
		if job.Err() != nil || job.Value(ctxKey{}) != "request-7" {
			t.Fatalf("after the caller gave up: err %v, value %v", job.Err(), job.Value(ctxKey{}))
		}
	})
	t.Run("ends at its bound", func(t *testing.T) {
		job, cancel := l.Detach(context.Background(), 20*time.Millisecond)
		defer cancel()
		if !ended(job) || !errors.Is(job.Err(), context.DeadlineExceeded) {
			t.Fatalf("the job outlived its bound: %v", job.Err())
		}
	})
	t.Run("ends with the owner's Run", func(t *testing.T) {
		run, stop := context.WithCancel(context.Background())
		l.Bind(run)
		job, cancel := l.Detach(context.Background(), time.Minute)
		defer cancel()
		attempt, cancelAttempt := l.Attempt().Detach(context.Background(), time.Minute)
		defer cancelAttempt()
		stop()
		if !ended(job) || !ended(attempt) {
			t.Fatalf("jobs outlived the Run: %v, %v", job.Err(), attempt.Err())
		}
	})
}
