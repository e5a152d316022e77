// Package storetest gives each test its own freshly migrated database: a new
// schema in the test PostgreSQL database, or a new SQLite file. Tests that
// need PostgreSQL fail, never skip, when it is unreachable, and say how to
// start it.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for schema setup

	"github.com/wxgate/wxgate/internal/faultnet"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
)

// DefaultPostgresURL is used when WXGATE_TEST_DATABASE_URL is not set.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// StartHint tells a developer how to get the test database running.
const StartHint = "start PostgreSQL with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` " +
	"(or `docker compose up -d postgres`), create the database with `createdb -h 127.0.0.1 -U postgres test`, " +
	"or point WXGATE_TEST_DATABASE_URL at a PostgreSQL database you may create schemas in"

// unreachable explains a failed ping: a server that answered but lacks the
// database needs `createdb`, not a start command.
func unreachable(base string, err error) string {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "3D000" {
		db := "test"
		if u, perr := url.Parse(base); perr == nil && strings.Trim(u.Path, "/") != "" {
			db = strings.Trim(u.Path, "/")
		}
		return fmt.Sprintf("PostgreSQL at %s is up but has no database %q: create it with `createdb -h 127.0.0.1 -U postgres %s` "+
			"(or point WXGATE_TEST_DATABASE_URL at a database you may create schemas in)", redact(base), db, db)
	}
	return fmt.Sprintf("PostgreSQL at %s is not reachable (%v): %s", redact(base), err, StartHint)
}

// Dialects lists the stores the shared contract tests run against.
var Dialects = []store.Dialect{store.Postgres, store.SQLite}

// ForEachDialect runs fn as a parallel subtest on each store of Dialects.
func ForEachDialect(t *testing.T, fn func(t *testing.T, d store.Dialect)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

// PostgresURL returns the base URL of the test PostgreSQL database.
func PostgresURL() string {
	if v := os.Getenv("WXGATE_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return DefaultPostgresURL
}

// Key returns a fixed 32-byte master key for tests.
func Key() []byte {
	k := make([]byte, secret.MasterKeySize)
	for i := range k {
		k[i] = byte(i + 1)
	}
	return k
}

// Box returns a secret box over Key().
func Box(t testing.TB) *secret.Box {
	t.Helper()
	b, err := secret.NewBox(Key())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// NewSchema creates an empty schema in the test PostgreSQL database, drops it
// when the test ends, and returns a URL whose connections use it.
func NewSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("storetest: %s", unreachable(base, err))
	}
	name := "t_" + randomHex(8)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("storetest: create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = db.ExecContext(ctx, "DROP SCHEMA "+name+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// SchemaOf returns the schema name a URL from NewSchema uses.
func SchemaOf(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return ""
	}
	return u.Query().Get("search_path")
}

// NewURL returns a fresh, empty database URL for dialect.
func NewURL(t testing.TB, dialect store.Dialect) string {
	t.Helper()
	switch dialect {
	case store.Postgres:
		return NewSchema(t)
	case store.SQLite:
		return "sqlite:" + filepath.Join(t.TempDir(), "wxgate.db")
	}
	t.Fatalf("storetest: unknown dialect %q", dialect)
	return ""
}

// Open returns a migrated store on a fresh database of dialect, closed at
// the end of the test. now may be nil for the wall clock.
func Open(t testing.TB, dialect store.Dialect, now func() time.Time) *store.Store {
	t.Helper()
	return OpenURL(t, NewURL(t, dialect), now)
}

// OpenURL opens and migrates the database at databaseURL for a test.
func OpenURL(t testing.TB, databaseURL string, now func() time.Time) *store.Store {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, databaseURL, store.Options{Box: Box(t), Now: now, MaxOpenConns: 6, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("storetest: open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("storetest: migrate: %v", err)
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(u string) string {
	if i := strings.Index(u, "@"); i > 0 {
		if j := strings.Index(u, "://"); j > 0 && j < i {
			return u[:j+3] + "…" + u[i:]
		}
	}
	return u
}

// Clock is a settable, concurrency-safe clock for tests.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// String describes the clock.
func (c *Clock) String() string { return fmt.Sprintf("Clock(%s)", c.Now().Format(time.RFC3339)) }

// Behind returns dbURL rewritten to reach its server through a new fault
// forwarder (closed when the test ends), so the test can cut the store
// away and bring it back.
func Behind(t testing.TB, dbURL string) (string, *faultnet.Forwarder) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	link, err := faultnet.Start(u.Host)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(link.Close)
	u.Host = link.Addr()
	return u.String(), link
}
