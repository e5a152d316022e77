package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

const comp = "wx0000000000000001"

// forEachDialect runs the same contract test against every real store, in parallel.
func forEachDialect(t *testing.T, fn func(t *testing.T, s *store.Store, clock *storetest.Clock)) {
	t.Helper()
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			clock := storetest.NewClock()
			fn(t, storetest.Open(t, d, clock.Now), clock)
		})
	}
}

func newAuthorizer(appid string) store.Authorizer {
	return store.Authorizer{
		ComponentAppID: comp, AppID: appid, Status: store.StatusAuthorized,
		AccessToken: secret.Value("AT-" + appid), RefreshToken: secret.Value("refreshtoken@@@" + appid),
		TokenExpiresAt: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC), PermissionSets: []int{11, 2, 1},
		NickName: "Shop " + appid,
	}
}

func TestComponentTicketAndToken(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		if _, err := s.GetComponent(ctx, comp); !errs.Is(err, errs.NotFound) {
			t.Fatalf("GetComponent before any ticket: got %v, want not_found", err)
		}
		t1 := clock.Now()
		if ok, err := s.SaveTicket(ctx, comp, "ticket@@@one", t1); err != nil || !ok {
			t.Fatalf("SaveTicket: %v %v", ok, err)
		}
		// An older ticket arriving late does not replace the newer one.
		if ok, err := s.SaveTicket(ctx, comp, "ticket@@@old", t1.Add(-time.Minute)); err != nil || ok {
			t.Fatalf("SaveTicket(older): stored=%v err=%v, want not stored", ok, err)
		}
		c, err := s.GetComponent(ctx, comp)
		if err != nil || c.Ticket != "ticket@@@one" || !c.TicketReceivedAt.Equal(t1) {
			t.Fatalf("GetComponent = %+v, %v", c, err)
		}
		exp := t1.Add(2 * time.Hour)
		c2, err := s.SaveComponentToken(ctx, comp, c.Version, "ctoken", exp)
		if err != nil || c2.Token != "ctoken" || !c2.TokenExpiresAt.Equal(exp) || c2.Version != c.Version+1 {
			t.Fatalf("SaveComponentToken = %+v, %v", c2, err)
		}
		// A writer holding the old version loses the compare-and-swap.
		if _, err := s.SaveComponentToken(ctx, comp, c.Version, "other", exp); !errs.Is(err, errs.Conflict) {
			t.Fatalf("stale SaveComponentToken: got %v, want conflict", err)
		}
	})
}

func TestAuthorizerCRUDAndCompareAndSwap(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		a, err := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa1"), "")
		if err != nil {
			t.Fatal(err)
		}
		if a.Version != 1 || a.Rev == 0 {
			t.Fatalf("first save: version %d rev %d", a.Version, a.Rev)
		}
		got, err := s.GetAuthorizer(ctx, comp, a.AppID)
		if err != nil {
			t.Fatal(err)
		}
		if got.AccessToken != "AT-wxaaaaaaaaaaaaaaa1" || got.RefreshToken != "refreshtoken@@@wxaaaaaaaaaaaaaaa1" ||
			fmt.Sprint(got.PermissionSets) != "[1 2 11]" || got.NickName != "Shop wxaaaaaaaaaaaaaaa1" || got.Status != store.StatusAuthorized {
			t.Fatalf("GetAuthorizer = %+v", got)
		}
		clock.Advance(time.Minute)
		upd, err := s.UpdateAuthorizer(ctx, comp, a.AppID, a.Version, func(x *store.Authorizer) error {
			x.AccessToken = "AT-2"
			return nil
		})
		if err != nil || upd.Version != 2 || upd.Rev <= a.Rev {
			t.Fatalf("UpdateAuthorizer = %+v, %v", upd, err)
		}
		// Compare-and-swap: the old version is refused and fn is not called.
		called := false
		_, err = s.UpdateAuthorizer(ctx, comp, a.AppID, a.Version, func(*store.Authorizer) error { called = true; return nil })
		if !errs.Is(err, errs.Conflict) || called {
			t.Fatalf("stale UpdateAuthorizer: err %v called %v", err, called)
		}
		// An error from fn rolls back.
		boom := errors.New("boom")
		if _, err := s.UpdateAuthorizer(ctx, comp, a.AppID, 0, func(x *store.Authorizer) error { x.AccessToken = "X"; return boom }); !errors.Is(err, boom) {
			t.Fatalf("fn error not returned: %v", err)
		}
		if got, _ := s.GetAuthorizer(ctx, comp, a.AppID); got.AccessToken != "AT-2" {
			t.Fatalf("rolled-back write visible: %v", got.AccessToken)
		}
		// Re-authorization bumps the version and keeps the nick name.
		again := newAuthorizer(a.AppID)
		again.NickName = ""
		again.PermissionSets = []int{100}
		re, err := s.SaveAuthorization(ctx, again, "")
		if err != nil || re.Version != 3 || re.NickName != "Shop wxaaaaaaaaaaaaaaa1" {
			t.Fatalf("re-authorization = %+v, %v", re, err)
		}
		changed, err := s.AuthorizersChangedSince(ctx, comp, upd.Rev)
		if err != nil || len(changed) != 1 || changed[0].Version != 3 {
			t.Fatalf("AuthorizersChangedSince = %+v, %v", changed, err)
		}
		if _, err := s.GetAuthorizer(ctx, comp, "wxffffffffffffffff"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("unknown authorizer: %v", err)
		}
	})
}

// TestSaveAuthorizationNeverRestoresAnOlderToken: a save of tokens read
// before a refresh committed (a re-sync of an account's sets) keeps the newer
// tokens and still applies the rest.
func TestSaveAuthorizationNeverRestoresAnOlderToken(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		old := newAuthorizer("wxaaaaaaaaaaaaaaa7")
		old.TokenRefreshedAt = clock.Now()
		if _, err := s.SaveAuthorization(ctx, old, ""); err != nil {
			t.Fatal(err)
		}
		// A refresh commits a newer token.
		clock.Advance(time.Hour)
		if _, err := s.UpdateAuthorizer(ctx, comp, old.AppID, 0, func(a *store.Authorizer) error {
			a.AccessToken, a.RefreshToken = "AT-new", "refreshtoken@@@new"
			a.TokenRefreshedAt, a.TokenExpiresAt = clock.Now(), clock.Now().Add(2*time.Hour)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// The save of what was read before the refresh, with new sets.
		stale := old
		stale.PermissionSets = []int{100}
		got, err := s.SaveAuthorization(ctx, stale, "")
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := s.GetAuthorizer(ctx, comp, old.AppID)
		for _, a := range []store.Authorizer{got, stored} {
			if a.AccessToken != "AT-new" || a.RefreshToken != "refreshtoken@@@new" || !a.TokenRefreshedAt.Equal(clock.Now()) ||
				fmt.Sprint(a.PermissionSets) != "[100]" {
				t.Fatalf("after the stale save: %+v", a)
			}
		}
		// A newer authorization replaces the tokens as before.
		clock.Advance(time.Minute)
		fresh := old
		fresh.AccessToken, fresh.TokenRefreshedAt = "AT-reauthorized", clock.Now()
		if got, _ := s.SaveAuthorization(ctx, fresh, ""); got.AccessToken != "AT-reauthorized" {
			t.Fatalf("a newer authorization did not replace the token: %+v", got)
		}
	})
}

func TestConcurrentCompareAndSwapHasOneWinner(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, _ *storetest.Clock) {
		ctx := context.Background()
		a, err := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa2"), "")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range 8 {
			wg.Go(func() {
				_, err := s.UpdateAuthorizer(ctx, comp, a.AppID, a.Version, func(x *store.Authorizer) error {
					x.AccessToken = secret.Value(fmt.Sprintf("AT-%d", i))
					return nil
				})
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errs.Is(err, errs.Conflict) {
					t.Errorf("unexpected error: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d writers won the compare-and-swap, want 1", wins)
		}
	})
}

func TestTenantsKeysBindingsAndIsolation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		t1, err := s.CreateTenant(ctx, comp, "acme")
		if err != nil {
			t.Fatal(err)
		}
		t2, err := s.CreateTenant(ctx, comp, "globex")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateTenant(ctx, comp, "acme"); !errs.Is(err, errs.Conflict) {
			t.Fatalf("duplicate tenant: %v", err)
		}
		list, err := s.ListTenants(ctx, comp)
		if err != nil || len(list) != 2 {
			t.Fatalf("ListTenants = %v, %v", list, err)
		}
		upd, err := s.UpdateTenant(ctx, comp, t1.ID, func(x *store.Tenant) error { x.RateLimit, x.RateBurst = 5, 10; return nil })
		if err != nil || upd.RateLimit != 5 {
			t.Fatalf("UpdateTenant = %+v, %v", upd, err)
		}
		if got, _ := s.GetTenant(ctx, comp, t1.ID); got.RateBurst != 10 {
			t.Fatalf("rate burst not stored: %+v", got)
		}

		exp := clock.Now().Add(time.Hour)
		k, err := s.CreateKey(ctx, store.Key{KID: "k_1", TenantID: t1.ID, Name: "ci", AppIDs: []string{"wxaaaaaaaaaaaaaaa1"}, ExpiresAt: &exp})
		if err != nil || k.ExpiresAt == nil || !k.ExpiresAt.Equal(exp) {
			t.Fatalf("CreateKey = %+v, %v", k, err)
		}
		if _, err := s.CreateKey(ctx, store.Key{KID: "k_2", TenantID: "tn_missing"}); !errs.Is(err, errs.NotFound) {
			t.Fatalf("key for unknown tenant: %v", err)
		}
		if err := s.RevokeKey(ctx, "k_1"); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeKey(ctx, "k_nope"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("revoke unknown: %v", err)
		}
		used := clock.Now().Add(time.Minute)
		if err := s.TouchKeys(ctx, map[string]time.Time{"k_1": used}); err != nil {
			t.Fatal(err)
		}
		keys, err := s.ListKeys(ctx, t1.ID)
		if err != nil || len(keys) != 1 || keys[0].RevokedAt == nil || keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(used) ||
			fmt.Sprint(keys[0].AppIDs) != "[wxaaaaaaaaaaaaaaa1]" {
			t.Fatalf("ListKeys = %+v, %v", keys, err)
		}

		a1, _ := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa1"), t1.ID)
		a2, _ := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa2"), "")
		if err := s.Bind(ctx, comp, t2.ID, a2.AppID); err != nil {
			t.Fatal(err)
		}
		if err := s.Bind(ctx, comp, t2.ID, a2.AppID); err != nil {
			t.Fatalf("binding twice: %v", err)
		}
		if err := s.Bind(ctx, comp, t2.ID, "wxffffffffffffffff"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("bind unknown authorizer: %v", err)
		}
		if err := s.Bind(ctx, comp, "tn_missing", a2.AppID); !errs.Is(err, errs.NotFound) {
			t.Fatalf("bind unknown tenant: %v", err)
		}
		own, err := s.TenantAuthorizers(ctx, comp, t1.ID)
		if err != nil || len(own) != 1 || own[0].AppID != a1.AppID {
			t.Fatalf("TenantAuthorizers(t1) = %+v, %v", own, err)
		}
		// Another tenant's account is simply not found, like an unknown one.
		if _, err := s.TenantAuthorizer(ctx, comp, t1.ID, a2.AppID); !errs.Is(err, errs.NotFound) {
			t.Fatalf("foreign authorizer: %v", err)
		}
		if _, err := s.TenantAuthorizer(ctx, comp, t1.ID, "wxffffffffffffffff"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("unknown authorizer: %v", err)
		}
		// No principal: fail closed.
		if _, err := s.TenantAuthorizers(ctx, comp, ""); err == nil {
			t.Fatal("TenantAuthorizers without a tenant must fail")
		}
		snap, err := s.LoadTenantSnapshot(ctx, comp)
		if err != nil || len(snap.Tenants) != 2 || len(snap.Keys) != 1 || len(snap.Bindings) != 2 || snap.Rev == 0 {
			t.Fatalf("snapshot = %+v, %v", snap, err)
		}
		if err := s.Unbind(ctx, comp, t2.ID, a2.AppID); err != nil {
			t.Fatal(err)
		}
		if err := s.Unbind(ctx, comp, t2.ID, a2.AppID); err != nil {
			t.Fatalf("unbind twice must be a no-op: %v", err)
		}
		if rev, _ := s.Revision(ctx, "tenants"); rev <= snap.Rev {
			t.Fatalf("unbind did not bump the tenants revision: %d <= %d", rev, snap.Rev)
		}
		if err := s.DeleteTenant(ctx, comp, t1.ID); err != nil {
			t.Fatal(err)
		}
		if keys, _ := s.ListKeys(ctx, t1.ID); len(keys) != 0 {
			t.Fatalf("keys of a deleted tenant survive: %v", keys)
		}
	})
}

func TestSessionsLeasesReceiptsUsage(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		tn, _ := s.CreateTenant(ctx, comp, "acme")
		sess, err := s.CreateSession(ctx, store.AuthSession{ID: "as_1", TenantID: tn.ID, ComponentAppID: comp,
			ReturnURL: "https://example.com/done", AuthType: 1, ExpiresAt: clock.Now().Add(10 * time.Minute)}, "preauthcode@@@x")
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.SessionByPreAuthCode(ctx, "preauthcode@@@x")
		if err != nil || got.ID != sess.ID || got.ReturnURL != "https://example.com/done" {
			t.Fatalf("SessionByPreAuthCode = %+v, %v", got, err)
		}
		if _, err := s.SessionByPreAuthCode(ctx, "other"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("unknown pre_auth_code: %v", err)
		}
		if first, err := s.CompleteSession(ctx, "as_1", "wxaaaaaaaaaaaaaaa1"); err != nil || !first {
			t.Fatalf("CompleteSession = %v, %v", first, err)
		}
		if first, err := s.CompleteSession(ctx, "as_1", "wxaaaaaaaaaaaaaaa1"); err != nil || first {
			t.Fatalf("second CompleteSession = %v, %v", first, err)
		}
		if got, _ := s.GetSession(ctx, "as_1"); got.CompletedAt == nil || got.AppID != "wxaaaaaaaaaaaaaaa1" {
			t.Fatalf("completed session = %+v", got)
		}

		if ok, err := s.TryLease(ctx, "authorizer:x", "r1", 30*time.Second); err != nil || !ok {
			t.Fatalf("TryLease r1 = %v, %v", ok, err)
		}
		if ok, _ := s.TryLease(ctx, "authorizer:x", "r2", 30*time.Second); ok {
			t.Fatal("r2 took a held lease")
		}
		if ok, _ := s.TryLease(ctx, "authorizer:x", "r1", 30*time.Second); !ok {
			t.Fatal("owner could not renew its lease")
		}
		clock.Advance(31 * time.Second)
		if ok, _ := s.TryLease(ctx, "authorizer:x", "r2", 30*time.Second); !ok {
			t.Fatal("r2 could not take an expired lease")
		}
		if err := s.ReleaseLease(ctx, "authorizer:x", "r2"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.TryLease(ctx, "authorizer:x", "r1", 30*time.Second); !ok {
			t.Fatal("released lease not free")
		}

		if seen, err := s.EventSeen(ctx, "d1"); seen || err != nil {
			t.Fatalf("unrecorded receipt seen: %v, %v", seen, err)
		}
		for range 2 { // recording twice is harmless
			if err := s.RecordEvent(ctx, "d1"); err != nil {
				t.Fatal(err)
			}
		}
		if seen, err := s.EventSeen(ctx, "d1"); !seen || err != nil {
			t.Fatalf("recorded receipt not seen: %v, %v", seen, err)
		}
		if seen, _ := s.EventSeen(ctx, "d2"); seen {
			t.Fatal("another digest seen")
		}

		h := clock.Now().Truncate(time.Hour)
		rows := []store.UsageRow{{TenantID: tn.ID, AppID: "wxa", API: "getFans", Outcome: "ok", Hour: h, Count: 3}}
		_ = s.AddUsage(ctx, rows)
		_ = s.AddUsage(ctx, rows)
		_ = s.AddUsage(ctx, []store.UsageRow{{TenantID: "tn_other", AppID: "wxa", API: "getFans", Outcome: "ok", Hour: h, Count: 9}})
		u, err := s.Usage(ctx, tn.ID, h, h.Add(time.Hour))
		if err != nil || len(u) != 1 || u[0].Count != 6 {
			t.Fatalf("Usage = %+v, %v", u, err)
		}
		if u, _ := s.Usage(ctx, tn.ID, h.Add(time.Hour), h.Add(2*time.Hour)); len(u) != 0 {
			t.Fatalf("usage outside range: %+v", u)
		}
	})
}

func TestMigrateIsIdempotent(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, _ *storetest.Clock) {
		n, err := s.Migrate(context.Background())
		if err != nil || n != 0 {
			t.Fatalf("second Migrate applied %d (err %v), want 0", n, err)
		}
	})
}

// TestSQLitePathsAreTakenLiterally: '#', '?', '%' and spaces in a SQLite
// path name that file and no other (in a file: URI they would cut the path
// short, and two stores would share one database).
func TestSQLitePathsAreTakenLiterally(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"a#1", "a#2", "b?x=1", "c%20d", "e f"} {
		path := filepath.Join(dir, name, "wxgate.db")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		s := storetest.OpenURL(t, "sqlite:"+path, nil)
		if _, err := s.CreateTenant(context.Background(), comp, "acme"); err != nil {
			t.Fatalf("%s: %v (a store opened another's file)", name, err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("%s: the database is not at its path: %v", name, err)
		}
	}
}

func TestConcurrentMigrationsOnPostgres(t *testing.T) {
	t.Parallel()
	url := storetest.NewSchema(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	applied := make([]int, 3)
	for i := range applied {
		wg.Go(func() {
			s, err := store.Open(ctx, url, store.Options{Box: storetest.Box(t)})
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			n, err := s.Migrate(ctx)
			if err != nil {
				t.Errorf("migrator %d: %v", i, err)
			}
			applied[i] = n
		})
	}
	wg.Wait()
	total := 0
	for _, n := range applied {
		total += n
	}
	s := storetest.OpenURL(t, url, nil)
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := latestMigration(t); total != int(want) || v != want {
		t.Fatalf("three concurrent migrators applied %v (total %d), schema version %d; want each migration applied once (%d)", applied, total, v, want)
	}
}

func latestMigration(t *testing.T) int64 {
	t.Helper()
	out, err := exec.Command("sh", "-c", "ls ../../migrations/*.sql | wc -l").Output()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	fmt.Sscan(strings.TrimSpace(string(out)), &n)
	return n
}

func TestPostgresDumpHasNoPlaintextSecrets(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("pg_dump"); err != nil {
		t.Fatalf("pg_dump is needed for this test (apt-get install postgresql-client): %v", err)
	}
	url := storetest.NewSchema(t)
	s := storetest.OpenURL(t, url, nil)
	ctx := context.Background()
	a := newAuthorizer("wxaaaaaaaaaaaaaaa3")
	a.AccessToken = "ACCESS-TOKEN-PLAINTEXT-8f3a"
	a.RefreshToken = "refreshtoken@@@PLAINTEXT-77c1"
	if _, err := s.SaveAuthorization(ctx, a, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveTicket(ctx, comp, "ticket@@@PLAINTEXT-TICKET-19d0", time.Now()); err != nil {
		t.Fatal(err)
	}
	c, _ := s.GetComponent(ctx, comp)
	if _, err := s.SaveComponentToken(ctx, comp, c.Version, "COMPONENT-TOKEN-PLAINTEXT-4b2e", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSession(ctx, store.AuthSession{ID: "as_x", TenantID: mustTenant(t, s), ComponentAppID: comp,
		ReturnURL: "https://e.example/", ExpiresAt: time.Now().Add(time.Hour)}, "preauthcode@@@PLAINTEXT-PAC-55e1"); err != nil {
		t.Fatal(err)
	}
	base := strings.Split(storetest.PostgresURL(), "?")[0]
	dump, err := exec.Command("pg_dump", "--data-only", "-n", storetest.SchemaOf(url), base).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump: %v: %s", err, dump)
	}
	if !strings.Contains(string(dump), "wxaaaaaaaaaaaaaaa3") {
		t.Fatal("dump does not contain the authorizer row; the test is not looking at the right data")
	}
	for _, plain := range []string{"ACCESS-TOKEN-PLAINTEXT", "PLAINTEXT-77c1", "PLAINTEXT-TICKET", "COMPONENT-TOKEN-PLAINTEXT", "PLAINTEXT-PAC"} {
		if strings.Contains(string(dump), plain) {
			t.Errorf("pg_dump contains plaintext %q", plain)
		}
	}
}

func mustTenant(t *testing.T, s *store.Store) string {
	t.Helper()
	tn, err := s.CreateTenant(context.Background(), comp, "t-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

func TestTamperedCiphertextIsAnError(t *testing.T) {
	t.Parallel()
	url := storetest.NewSchema(t)
	s := storetest.OpenURL(t, url, nil)
	ctx := context.Background()
	if _, err := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa4"), ""); err != nil {
		t.Fatal(err)
	}
	// Open the same database with another key: reading the tokens must fail, not return garbage.
	other := make([]byte, secret.MasterKeySize)
	box, _ := secret.NewBox(other)
	s2, err := store.Open(ctx, url, store.Options{Box: box})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.GetAuthorizer(ctx, comp, "wxaaaaaaaaaaaaaaa4"); !errs.Is(err, errs.Internal) || !errors.Is(err, secret.ErrDecrypt) {
		t.Fatalf("reading with the wrong key: %v, want a decrypt error", err)
	}
}
