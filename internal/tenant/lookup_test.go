package tenant_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/tenant"
)

// replicaOn builds a tenant service over st whose poller is not running:
// whatever it learns of another replica's writes, it learns by lookups.
func replicaOn(t *testing.T, st *store.Store, clock *storetest.Clock, maxStale time.Duration, lookups *sync.Map) *tenant.Service {
	t.Helper()
	svc, err := tenant.New(context.Background(), tenant.Options{Store: st, ComponentAppID: component, MasterKey: storetest.Key(),
		DefaultRate: 1, DefaultBurst: 1, Now: clock.Now, Logger: slog.New(slog.DiscardHandler), MaxStaleness: maxStale,
		OnLookup: func(result string) {
			if lookups == nil {
				return
			}
			n, _ := lookups.LoadOrStore(result, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func lookupCount(m *sync.Map, result string) int64 {
	n, ok := m.Load(result)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// signedUnknownKey mints a validly signed key for tenantID whose kid no
// store holds: what garbage with a stolen signing key, or a key of a
// deleted tenant, looks like.
func signedUnknownKey(t *testing.T, tenantID string, at time.Time) string {
	t.Helper()
	iss, err := tenant.NewIssuer(storetest.Key())
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	raw, err := iss.Sign(store.Key{KID: "k_" + hex.EncodeToString(b), TenantID: tenantID, CreatedAt: at.Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	return raw.Reveal()
}

// TestWritesThroughOneReplicaWorkAtOnceOnAnother: replica b, whose poller
// never runs, accepts a key issued and an account bound through replica a
// on its very next request (it looks them up), refuses garbage with one
// query at most and remembers the miss, and coalesces a flood of distinct
// unknown signed keys into a bounded number of store reads.
func TestWritesThroughOneReplicaWorkAtOnceOnAnother(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		clock := storetest.NewClock()
		dbURL := storetest.NewURL(t, d)
		stA, stB := storetest.OpenURL(t, dbURL, clock.Now), storetest.OpenURL(t, dbURL, clock.Now)
		var queries atomic.Int64
		stB.OnQuery(func() { queries.Add(1) })
		lookups := &sync.Map{}
		a, b := replicaOn(t, stA, clock, 0, nil), replicaOn(t, stB, clock, 0, lookups)
		ctx := context.Background()
		tn, err := a.Admin.CreateTenant(ctx, "", "acme")
		if err != nil {
			t.Fatal(err)
		}
		const appid = "wxaaaaaaaaaaaaaaa1"
		if _, err := stA.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: component, AppID: appid, Status: store.StatusAuthorized,
			AccessToken: "at", RefreshToken: "rt", TokenExpiresAt: clock.Now().Add(time.Hour)}, ""); err != nil {
			t.Fatal(err)
		}

		journey.Step(t, "a key issued on a authenticates on b at once", func(t *testing.T) {
			k, raw, err := a.Admin.IssueKey(ctx, tn.ID, tenant.KeyRequest{Name: "fresh"})
			if err != nil {
				t.Fatal(err)
			}
			p, err := b.Verifier.Authenticate(ctx, raw.Reveal())
			if err != nil || p.KID != k.KID || p.TenantID != tn.ID {
				t.Fatalf("got %+v, %v; want the key's principal", p, err)
			}
			if n := lookupCount(lookups, tenant.LookupFound); n != 1 {
				t.Fatalf("lookups found: got %d, want 1", n)
			}
			before := queries.Load()
			for range 100 {
				if _, err := b.Verifier.Authenticate(ctx, raw.Reveal()); err != nil {
					t.Fatal(err)
				}
			}
			if n := queries.Load() - before; n != 0 {
				t.Fatalf("store queries for 100 uses of a known key: got %d, want 0", n)
			}
		})

		journey.Step(t, "an account bound on a is bound on b at once", func(t *testing.T) {
			if err := a.Admin.Bind(ctx, tn.ID, appid); err != nil {
				t.Fatal(err)
			}
			if ok, err := b.Directory.Authorize(ctx, tn.ID, appid); !ok || err != nil {
				t.Fatalf("after the binding: got %v, %v; want true", ok, err)
			}
			if ok, err := b.Directory.Authorize(ctx, tn.ID, "wxbbbbbbbbbbbbbbb1"); ok || err != nil {
				t.Fatalf("an account bound nowhere: got %v, %v; want false", ok, err)
			}
		})

		journey.Step(t, "asked on b before it was bound on a, then bound: found at once", func(t *testing.T) {
			const later = "wxaaaaaaaaaaaaaaa2"
			if _, err := stA.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: component, AppID: later, Status: store.StatusAuthorized,
				AccessToken: "at2", RefreshToken: "rt2", TokenExpiresAt: clock.Now().Add(time.Hour)}, ""); err != nil {
				t.Fatal(err)
			}
			if ok, err := b.Directory.Authorize(ctx, tn.ID, later); ok || err != nil {
				t.Fatalf("before the binding: got %v, %v; want false", ok, err)
			}
			if err := a.Admin.Bind(ctx, tn.ID, later); err != nil {
				t.Fatal(err)
			}
			if ok, err := b.Directory.Authorize(ctx, tn.ID, later); !ok || err != nil {
				t.Fatalf("asked again right after the binding: got %v, %v; want true (a remembered miss must not hide it)", ok, err)
			}
		})

		journey.Step(t, "a listing and return_url hosts on b see a's writes after CatchUp", func(t *testing.T) {
			const listed = "wxaaaaaaaaaaaaaaa3"
			if _, err := stA.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: component, AppID: listed, Status: store.StatusAuthorized,
				AccessToken: "at3", RefreshToken: "rt3", TokenExpiresAt: clock.Now().Add(time.Hour)}, tn.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Admin.UpdateTenant(ctx, tn.ID, func(t *store.Tenant) error { t.ReturnURLHosts = []string{"shop.example"}; return nil }); err != nil {
				t.Fatal(err)
			}
			if err := b.Directory.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(b.Directory.BoundAppIDs(tn.ID), listed) {
				t.Fatalf("listing on b: %v, want %s", b.Directory.BoundAppIDs(tn.ID), listed)
			}
			if hosts, _ := b.Directory.ReturnURLHosts(tn.ID); !slices.Equal(hosts, []string{"shop.example"}) {
				t.Fatalf("return_url hosts on b: %v, want [shop.example]", hosts)
			}
		})

		journey.Step(t, "the same garbage costs one query, then none", func(t *testing.T) {
			raw := signedUnknownKey(t, tn.ID, clock.Now())
			if err := b.Directory.Reload(ctx); err != nil { // current: a catch-up is one revision read
				t.Fatal(err)
			}
			before := queries.Load()
			for i := range 100 {
				_, err := b.Verifier.Authenticate(ctx, raw)
				if !errs.Is(err, errs.Unauthenticated) || tenant.FailureReason(err) != tenant.ReasonUnknownKey {
					t.Fatalf("call %d: got %v, want unauthenticated unknown_key", i, err)
				}
			}
			if n := queries.Load() - before; n != 1 {
				t.Fatalf("store queries for 100 uses of one unknown key: got %d, want 1 (the revision read)", n)
			}
			if n := lookupCount(lookups, tenant.LookupRemembered); n < 99 {
				t.Fatalf("remembered misses: got %d, want at least 99", n)
			}
		})

		journey.Step(t, "a flood of distinct unknown keys is coalesced", func(t *testing.T) {
			const workers, each = 50, 20
			keys := make([]string, workers*each)
			for i := range keys {
				keys[i] = signedUnknownKey(t, tn.ID, clock.Now())
			}
			before := queries.Load()
			began := time.Now()
			var wg sync.WaitGroup
			var wrong atomic.Int64
			for w := range workers {
				wg.Go(func() {
					for _, raw := range keys[w*each : (w+1)*each] {
						if _, err := b.Verifier.Authenticate(ctx, raw); tenant.FailureReason(err) != tenant.ReasonUnknownKey {
							wrong.Add(1)
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(began)
			n := queries.Load() - before
			if wrong.Load() != 0 {
				t.Fatalf("%d of %d unknown keys were not refused as unknown", wrong.Load(), len(keys))
			}
			// One revision read per catch-up, catch-ups at least
			// DefaultLookupSpacing apart.
			bound := int64(elapsed/tenant.DefaultLookupSpacing) + 2
			if n > bound || n > int64(len(keys)/10) {
				t.Fatalf("store queries for %d distinct unknown keys in %v: got %d, want at most %d and under a tenth of the requests", len(keys), elapsed, n, bound)
			}
			t.Logf("%d distinct unknown signed keys from %d workers in %v: %d store queries", len(keys), workers, elapsed.Round(time.Millisecond), n)
		})
	})
}

// TestCutOffReplicaRefusesTenantCallsPastTheStalenessLimit puts a
// forwarder between a replica and PostgreSQL. With the link cut, the
// replica serves known keys from its last snapshot until the staleness
// limit (by the injected clock) and refuses them with store_unavailable
// after it; an unknown signed key needs the store and is store_unavailable
// at once, a forged one is still unauthenticated; a running export's
// re-check says store_unavailable too. Once the link is back, one
// successful read makes the replica serve again.
func TestCutOffReplicaRefusesTenantCallsPastTheStalenessLimit(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock()
	dbURL := storetest.NewURL(t, store.Postgres)
	cutURL, link := storetest.Behind(t, dbURL)
	writer := storetest.OpenURL(t, dbURL, clock.Now)
	const limit = 10 * time.Second
	w := replicaOn(t, writer, clock, limit, nil)
	ctx := context.Background()
	tn, _ := w.Admin.CreateTenant(ctx, "", "acme")
	_, raw, err := w.Admin.IssueKey(ctx, tn.ID, tenant.KeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	const appid = "wxaaaaaaaaaaaaaaa1"
	if _, err := writer.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: component, AppID: appid, Status: store.StatusAuthorized,
		AccessToken: "at", RefreshToken: "rt", TokenExpiresAt: clock.Now().Add(time.Hour)}, ""); err != nil {
		t.Fatal(err)
	}
	if err := w.Admin.Bind(ctx, tn.ID, appid); err != nil {
		t.Fatal(err)
	}
	r := replicaOn(t, storetest.OpenURL(t, cutURL, clock.Now), clock, limit, nil)
	p, err := r.Verifier.Authenticate(ctx, raw.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	unavailable := func(t *testing.T, what string, err error) {
		t.Helper()
		e := errs.As(err)
		if e == nil || e.Code != errs.StoreUnavailable || e.RetryAfter <= 0 {
			t.Fatalf("%s: got %v, want store_unavailable with a Retry-After", what, err)
		}
	}

	journey.Step(t, "cut off, within the limit: the last snapshot serves", func(t *testing.T) {
		link.Cut()
		if err := r.Directory.Reload(ctx); err == nil {
			t.Fatal("a reload through a cut link succeeded")
		}
		clock.Advance(limit - time.Second)
		if _, err := r.Verifier.Authenticate(ctx, raw.Reveal()); err != nil {
			t.Fatalf("a known key: got %v, want it served from the snapshot", err)
		}
		if err := r.Directory.Recheck(p, appid); err != nil {
			t.Fatalf("an export's re-check: got %v, want nil", err)
		}
		unavailable(t, "an unknown signed key (needs the store)", func() error {
			_, err := r.Verifier.Authenticate(ctx, signedUnknownKey(t, tn.ID, clock.Now()))
			return err
		}())
		_, err := r.Directory.Authorize(ctx, tn.ID, "wxbbbbbbbbbbbbbbb1")
		unavailable(t, "a binding the snapshot does not know", err)
		if _, err := r.Verifier.Authenticate(ctx, raw.Reveal()+"x"); !errs.Is(err, errs.Unauthenticated) {
			t.Fatalf("a forged key: got %v, want unauthenticated (the signature is checked before anything else)", err)
		}
	})

	journey.Step(t, "cut off past the limit: store_unavailable", func(t *testing.T) {
		clock.Advance(2 * time.Second)
		_, err := r.Verifier.Authenticate(ctx, raw.Reveal())
		unavailable(t, "a known key", err)
		unavailable(t, "an export's re-check", r.Directory.Recheck(p, appid))
		_, err = r.Directory.Authorize(ctx, tn.ID, appid)
		unavailable(t, "a known binding", err)
		if _, err := r.Verifier.Authenticate(ctx, raw.Reveal()+"x"); !errs.Is(err, errs.Unauthenticated) {
			t.Fatalf("a forged key: got %v, want unauthenticated", err)
		}
	})

	journey.Step(t, "the link back: one read and it serves again", func(t *testing.T) {
		if err := link.Restore(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for r.Directory.Reload(ctx) != nil {
			if time.Now().After(deadline) {
				t.Fatal("the directory did not reload within 10 s of the link's return")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := r.Verifier.Authenticate(ctx, raw.Reveal()); err != nil {
			t.Fatalf("a known key after the link's return: got %v, want it served", err)
		}
	})
}

// TestRecheckFollowsTheDirectory: what a running export asks before each
// page. The key's revocation, its tenant's deletion and the account's
// unbinding each end it, from memory, once the directory has them.
func TestRecheckFollowsTheDirectory(t *testing.T) {
	const appid = "wxaaaaaaaaaaaaaaa1"
	tests := []struct {
		name   string
		change func(e *env, tenantID, kid string) error
		want   errs.Code
		reason string
	}{
		{"the key revoked", func(e *env, _, kid string) error { return e.svc.Admin.RevokeKey(context.Background(), kid) }, errs.Unauthenticated, tenant.ReasonRevoked},
		{"the tenant deleted", func(e *env, id, _ string) error { return e.svc.Admin.DeleteTenant(context.Background(), id) }, errs.Unauthenticated, tenant.ReasonUnknownKey},
		{"the account unbound", func(e *env, id, _ string) error { return e.svc.Admin.Unbind(context.Background(), id, appid) }, errs.NotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, store.SQLite, 1, 1)
			ctx := context.Background()
			tn, _ := e.svc.Admin.CreateTenant(ctx, "", "acme")
			if _, err := e.st.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: component, AppID: appid, Status: store.StatusAuthorized,
				AccessToken: "at", RefreshToken: "rt", TokenExpiresAt: e.clock.Now().Add(time.Hour)}, tn.ID); err != nil {
				t.Fatal(err)
			}
			_, raw, err := e.svc.Admin.IssueKey(ctx, tn.ID, tenant.KeyRequest{})
			if err != nil {
				t.Fatal(err)
			}
			p, err := e.svc.Verifier.Authenticate(ctx, raw.Reveal())
			if err != nil {
				t.Fatal(err)
			}
			if err := e.svc.Directory.Recheck(p, appid); err != nil {
				t.Fatalf("before the change: got %v, want nil", err)
			}
			if err := tc.change(e, tn.ID, p.KID); err != nil {
				t.Fatal(err)
			}
			err = e.svc.Directory.Recheck(p, appid)
			if errs.CodeOf(err) != tc.want || tenant.FailureReason(err) != tc.reason {
				t.Fatalf("after the change: got %v (reason %q), want %s (reason %q)", err, tenant.FailureReason(err), tc.want, tc.reason)
			}
		})
	}
}
