package tenant_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/tenant"
)

const component = "wx00000000000000c1"

type env struct {
	st    *store.Store
	clock *storetest.Clock
	svc   *tenant.Service
}

func newEnv(t *testing.T, dialect store.Dialect, rate float64, burst int) *env {
	t.Helper()
	clock := storetest.NewClock()
	st := storetest.Open(t, dialect, clock.Now)
	svc, err := tenant.New(context.Background(), tenant.Options{
		Store: st, ComponentAppID: component, MasterKey: storetest.Key(),
		DefaultRate: rate, DefaultBurst: burst, Now: clock.Now, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: st, clock: clock, svc: svc}
}

func forEachDialect(t *testing.T, fn func(t *testing.T, d store.Dialect)) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func TestIssuedKeyAuthenticatesUntilRevoked(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, 10, 10)
		ctx := context.Background()
		tn, err := e.svc.Admin.CreateTenant(ctx, "", "acme")
		if err != nil {
			t.Fatal(err)
		}
		k, raw, err := e.svc.Admin.IssueKey(ctx, tn.ID, tenant.KeyRequest{Name: "ci", TTL: time.Hour, AppIDs: []string{"wxbbbbbbbbbbbbbbb1", "wxaaaaaaaaaaaaaaa1"}})
		if err != nil {
			t.Fatal(err)
		}
		if raw.String() == raw.Reveal() {
			t.Fatal("the key prints in clear")
		}
		p, err := e.svc.Verifier.Authenticate(ctx, raw.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		if p.TenantID != tn.ID || p.KID != k.KID || len(p.AppIDs) != 2 || p.AppIDs[0] != "wxaaaaaaaaaaaaaaa1" {
			t.Fatalf("principal = %+v", p)
		}
		if !p.Restricts("wxcccccccccccccccc") || p.Restricts("wxbbbbbbbbbbbbbbb1") {
			t.Fatal("restriction not carried")
		}
		if _, _, err := e.svc.Admin.IssueKey(ctx, "tn_unknown", tenant.KeyRequest{}); !errs.Is(err, errs.NotFound) {
			t.Fatalf("key for an unknown tenant: %v", err)
		}
		if err := e.svc.Admin.RevokeKey(ctx, k.KID); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Verifier.Authenticate(ctx, raw.Reveal())
		if !errs.Is(err, errs.Unauthenticated) || tenant.FailureReason(err) != tenant.ReasonRevoked {
			t.Fatalf("revoked key: %v", err)
		}
		if e := errs.As(err); e.Message != "invalid or missing credentials" {
			t.Fatalf("message %q tells too much", e.Message)
		}
	})
}

func TestDirectoryPollerSeesOtherReplicasWrites(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		clock := storetest.NewClock()
		url := storetest.NewURL(t, d)
		a := storetest.OpenURL(t, url, clock.Now)
		b := storetest.OpenURL(t, url, clock.Now)
		ctx := context.Background()
		mk := func(st *store.Store) *tenant.Service {
			svc, err := tenant.New(ctx, tenant.Options{Store: st, ComponentAppID: component, MasterKey: storetest.Key(),
				DefaultRate: 1, DefaultBurst: 1, Now: clock.Now, Logger: slog.New(slog.DiscardHandler), Poll: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return svc
		}
		sa, sb := mk(a), mk(b)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sb.Directory.Run(runCtx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
		tn, err := sa.Admin.CreateTenant(ctx, "", "acme")
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Second, "tenant reaches replica b", func() bool { return sb.Directory.TenantExists(tn.ID) })
		if _, err := sa.Admin.UpdateTenant(ctx, tn.ID, func(t *store.Tenant) error { t.RateLimit, t.RateBurst = 7, 9; return nil }); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Second, "rate override reaches replica b", func() bool {
			r, b, ok := sb.Directory.TenantRate(tn.ID)
			return ok && r == 7 && b == 9
		})
		if err := sa.Admin.DeleteTenant(ctx, tn.ID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Second, "deletion reaches replica b", func() bool { return !sb.Directory.TenantExists(tn.ID) })
	})
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLimiterDefaultOverrideAndRefill(t *testing.T) {
	e := newEnv(t, store.SQLite, 1, 2)
	ctx := context.Background()
	tn, _ := e.svc.Admin.CreateTenant(ctx, "", "acme")
	l := e.svc.Limiter
	for i := range 2 {
		if ok, _ := l.Allow(tn.ID); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.Allow(tn.ID)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("third request: ok=%v wait=%v", ok, wait)
	}
	e.clock.Advance(time.Second)
	if ok, _ := l.Allow(tn.ID); !ok {
		t.Fatal("bucket did not refill")
	}
	// An override applies to the existing bucket (which then refills to the new burst).
	if _, err := e.svc.Admin.UpdateTenant(ctx, tn.ID, func(t *store.Tenant) error { t.RateLimit, t.RateBurst = 100, 5; return nil }); err != nil {
		t.Fatal(err)
	}
	l.Allow(tn.ID) // applies the new rate and burst to the bucket
	e.clock.Advance(time.Second)
	n := 0
	for {
		if ok, _ := l.Allow(tn.ID); !ok {
			break
		}
		n++
	}
	if n != 5 {
		t.Fatalf("override burst: %d requests allowed, want 5", n)
	}
	// Tenants do not share buckets.
	other, _ := e.svc.Admin.CreateTenant(ctx, "", "globex")
	if ok, _ := l.Allow(other.ID); !ok {
		t.Fatal("another tenant's bucket is empty")
	}
}

// TestLimiterAppliesAChangedOverrideToTheExistingBucket: a tenant whose
// override changes keeps its bucket (no fresh burst), but the bucket takes
// the new rate and the new burst at once, whichever of the two changed.
func TestLimiterAppliesAChangedOverrideToTheExistingBucket(t *testing.T) {
	const defRate, defBurst = 1, 2
	type limits struct {
		rate  float64
		burst int
	}
	for _, tc := range []struct {
		name     string
		from, to limits // the override (0 = the default)
		want     limits // what the bucket then does
	}{
		{"only the rate", limits{}, limits{rate: 10}, limits{10, defBurst}},
		{"only the burst", limits{}, limits{burst: 5}, limits{defRate, 5}},
		{"both", limits{}, limits{10, 5}, limits{10, 5}},
		{"only the rate, back to the default", limits{rate: 10}, limits{}, limits{defRate, defBurst}},
		{"a rate below one per second", limits{burst: 3}, limits{0.5, 3}, limits{0.5, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, d store.Dialect) {
				e := newEnv(t, d, defRate, defBurst)
				ctx := context.Background()
				tn, err := e.svc.Admin.CreateTenant(ctx, "", "acme")
				if err != nil {
					t.Fatal(err)
				}
				override := func(l limits) {
					t.Helper()
					if _, err := e.svc.Admin.UpdateTenant(ctx, tn.ID, func(t *store.Tenant) error {
						t.RateLimit, t.RateBurst = l.rate, l.burst
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				l := e.svc.Limiter
				// drain takes every token there is and answers how many, and
				// the wait the first refusal announced.
				drain := func() (int, time.Duration) {
					for n := 0; n < 1000; n++ {
						if ok, wait := l.Allow(tn.ID); !ok {
							return n, wait
						}
					}
					t.Fatal("the bucket never emptied")
					return 0, 0
				}
				override(tc.from)
				t.Run("the bucket is drained under the first override", func(t *testing.T) {
					if n, _ := drain(); n < 1 {
						t.Fatal("a new bucket did not start full")
					}
				})
				override(tc.to)
				period := time.Duration(float64(time.Second) / tc.want.rate)
				t.Run("the next refusal announces the new rate's wait", func(t *testing.T) {
					// No time passed: the bucket is still empty, not refilled
					// by the change.
					n, wait := drain()
					if n != 0 {
						t.Fatalf("%d requests allowed right after the change, want 0 (no fresh burst)", n)
					}
					if d := wait - period; d < -time.Millisecond || d > time.Millisecond {
						t.Fatalf("wait %v, want %v (%v per second)", wait, period, tc.want.rate)
					}
				})
				t.Run("one period refills one token", func(t *testing.T) {
					e.clock.Advance(period)
					if n, _ := drain(); n != 1 {
						t.Fatalf("%d requests allowed after %v, want 1", n, period)
					}
				})
				t.Run("a long pause refills the new burst", func(t *testing.T) {
					e.clock.Advance(time.Hour)
					if n, _ := drain(); n != tc.want.burst {
						t.Fatalf("%d requests allowed after a long pause, want a burst of %d", n, tc.want.burst)
					}
				})
			})
		})
	}
}

func TestUsageCountsFlushAndFilterUnboundAccounts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, 10, 10)
		ctx := context.Background()
		tn, _ := e.svc.Admin.CreateTenant(ctx, "", "acme")
		if _, err := e.st.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: component, AppID: "wxaaaaaaaaaaaaaaa1",
			AccessToken: "a", RefreshToken: "r"}, tn.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.Directory.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		u := e.svc.Usage
		h0 := e.clock.Now().Truncate(time.Hour)
		u.Record(tn.ID, "wxaaaaaaaaaaaaaaa1", "getFans", "ok")
		u.Record(tn.ID, "wxaaaaaaaaaaaaaaa1", "getFans", "ok")
		u.Record(tn.ID, "wxaaaaaaaaaaaaaaa1", "getFans", "rate_limited")
		u.Record(tn.ID, "wxmadeupmadeup0001", "getFans", "not_found")
		u.Record("", "wxaaaaaaaaaaaaaaa1", "getFans", "ok")
		e.clock.Advance(time.Hour)
		u.Record(tn.ID, "wxaaaaaaaaaaaaaaa1", "getTagFans", "ok")
		if err := u.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		u.Record(tn.ID, "wxaaaaaaaaaaaaaaa1", "getTagFans", "ok")
		if err := u.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		rows, err := e.st.Usage(ctx, tn.ID, h0, h0.Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, r := range rows {
			got[r.Hour.Sub(h0).String()+"/"+r.AppID+"/"+r.API+"/"+r.Outcome] = r.Count
		}
		want := map[string]int64{
			"0s/wxaaaaaaaaaaaaaaa1/getFans/ok":           2,
			"0s/wxaaaaaaaaaaaaaaa1/getFans/rate_limited": 1,
			"0s//getFans/not_found":                      1,
			"1h0m0s/wxaaaaaaaaaaaaaaa1/getTagFans/ok":    2,
		}
		if len(got) != len(want) {
			t.Fatalf("usage = %v, want %v", got, want)
		}
		for k, n := range want {
			if got[k] != n {
				t.Fatalf("usage = %v, want %v", got, want)
			}
		}
	})
}

func TestFlushersWriteOnShutdownAndKeepCountsOnFailure(t *testing.T) {
	clock := storetest.NewClock()
	url := storetest.NewURL(t, store.SQLite)
	st := storetest.OpenURL(t, url, clock.Now)
	ctx := context.Background()
	svc, err := tenant.New(ctx, tenant.Options{Store: st, ComponentAppID: component, MasterKey: storetest.Key(),
		DefaultRate: 1, DefaultBurst: 1, Now: clock.Now, Logger: slog.New(slog.DiscardHandler),
		UsageFlush: time.Hour, TouchFlush: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := svc.Admin.CreateTenant(ctx, "", "acme")
	k, raw, _ := svc.Admin.IssueKey(ctx, tn.ID, tenant.KeyRequest{})
	if _, err := svc.Verifier.Authenticate(ctx, raw.Reveal()); err != nil {
		t.Fatal(err)
	}
	svc.Usage.Record(tn.ID, "", "getFans", "ok")

	// A store that fails keeps the counts for the next flush.
	broken := storetest.OpenURL(t, url, clock.Now)
	_ = broken.Close()
	lu := tenant.NewLastUsed(broken, slog.New(slog.DiscardHandler), 0)
	lu.Mark(k.KID, clock.Now())
	if err := lu.Flush(ctx); err == nil {
		t.Fatal("flush to a closed store succeeded")
	}
	if len(lu.Pending()) != 1 {
		t.Fatal("a failed flush lost the marks")
	}
	uf := tenant.NewUsage(broken, "wxcomponent", nil, clock.Now, slog.New(slog.DiscardHandler), 0)
	uf.Record(tn.ID, "", "getFans", "ok")
	if err := uf.Flush(ctx); err == nil {
		t.Fatal("flush to a closed store succeeded")
	}
	uf.Record(tn.ID, "", "getFans", "ok")
	if err := tenant.NewUsage(st, "wxcomponent", nil, clock.Now, slog.New(slog.DiscardHandler), 0).Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// Stopping the workers flushes what is pending.
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 2)
	go func() { errc <- svc.Usage.Run(runCtx) }()
	go func() { errc <- svc.LastUsed.Run(runCtx) }()
	cancel()
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	keys, _ := st.ListKeys(ctx, tn.ID)
	if len(keys) != 1 || keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(clock.Now()) {
		t.Fatalf("last use not written at shutdown: %+v", keys)
	}
	rows, _ := st.Usage(ctx, tn.ID, clock.Now().Add(-time.Hour), clock.Now().Add(time.Hour))
	if len(rows) != 1 || rows[0].Count != 1 {
		t.Fatalf("usage not written at shutdown: %+v", rows)
	}
}

func TestDirectoryKeepsItsSnapshotWhenTheStoreIsUnreachable(t *testing.T) {
	clock := storetest.NewClock()
	url := storetest.NewURL(t, store.SQLite)
	writer := storetest.OpenURL(t, url, clock.Now)
	reader := storetest.OpenURL(t, url, clock.Now)
	ctx := context.Background()
	w, err := tenant.New(ctx, tenant.Options{Store: writer, ComponentAppID: component, MasterKey: storetest.Key(),
		DefaultRate: 1, DefaultBurst: 1, Now: clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := w.Admin.CreateTenant(ctx, "", "acme")
	_, raw, _ := w.Admin.IssueKey(ctx, tn.ID, tenant.KeyRequest{})
	r, err := tenant.New(ctx, tenant.Options{Store: reader, ComponentAppID: component, MasterKey: storetest.Key(),
		DefaultRate: 1, DefaultBurst: 1, Now: clock.Now, Logger: slog.New(slog.DiscardHandler), Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_ = reader.Close()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Directory.Run(runCtx) }()
	time.Sleep(50 * time.Millisecond) // a few failed polls
	if _, err := r.Verifier.Authenticate(ctx, raw.Reveal()); err != nil {
		t.Fatalf("the last snapshot was dropped: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestKeyStopsAuthenticatingAtItsExpiry: a key that authenticated (and so
// sits in the verifier's cache) is refused once the clock passes its
// expiry plus the leeway.
func TestKeyStopsAuthenticatingAtItsExpiry(t *testing.T) {
	e := newEnv(t, store.SQLite, 10, 10)
	ctx := context.Background()
	tn, err := e.svc.Admin.CreateTenant(ctx, "", "acme")
	if err != nil {
		t.Fatal(err)
	}
	_, raw, err := e.svc.Admin.IssueKey(ctx, tn.ID, tenant.KeyRequest{Name: "short", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name    string
		advance time.Duration
		ok      bool
	}{
		{"fresh", 0, true},
		{"within its hour", 59 * time.Minute, true},
		{"within the leeway", time.Minute + tenant.Leeway - time.Second, true},
		{"past expiry and leeway", 2 * time.Second, false},
	} {
		e.clock.Advance(step.advance)
		_, err := e.svc.Verifier.Authenticate(ctx, raw.Reveal())
		if step.ok && err != nil || !step.ok && !errs.Is(err, errs.Unauthenticated) {
			t.Fatalf("%s: %v, want ok=%v", step.name, err, step.ok)
		}
	}
}
