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

// step runs one named step of a longer test and stops the test if it
// fails: the steps after it build on it.
func step(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, fn) {
		t.FailNow()
	}
}

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
	if count, latest := migrationFiles(t); total != count || v != latest {
		t.Fatalf("three concurrent migrators applied %v (total %d), schema version %d; want each of the %d migrations applied once, version %d", applied, total, v, count, latest)
	}
}

// migrationFiles counts the migration files and returns the highest
// version among them (numbers are handed out per branch, so there may be
// gaps).
func migrationFiles(t *testing.T) (count int, latest int64) {
	t.Helper()
	names, err := filepath.Glob("../../migrations/*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	for _, name := range names {
		var v int64
		if _, err := fmt.Sscanf(filepath.Base(name), "%05d_", &v); err != nil {
			t.Fatalf("migration %s: %v", name, err)
		}
		latest = max(latest, v)
	}
	return len(names), latest
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
	if _, err := s.SaveTicket(ctx, comp, "ticket@@@PLAINTEXT-TICKET-19d0", time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	c, _ := s.GetComponentState(ctx, comp)
	if _, err := s.SwapComponentToken(ctx, comp, c.Version, "COMPONENT-TOKEN-PLAINTEXT-4b2e", time.Now(), time.Now().Add(time.Hour)); err != nil {
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
