// Package store is wxgate's persistence: gorm over PostgreSQL (production,
// several replicas) or the embedded SQLite store (one node, the demo),
// migrations, and the repositories every other package uses through small
// interfaces of its own. Nothing outside this package imports gorm. Secret
// columns are sealed with a secret.Box before they are written.
//
// Each table of migrations/ has one file named after it (components.go,
// authorizers.go, tenant_keys.go, …) holding its one row struct and every
// query of it; this file opens the store, migrates it and translates
// database errors into domain errors.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/migrations"
)

// Dialect names the database behind a Store.
type Dialect string

// The supported dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Options configures Open.
type Options struct {
	// Box seals and opens secret columns. Without one (wxgate migrate) any
	// read or write of a secret column fails.
	Box *secret.Box
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// Logger receives slow-query and migration logs; defaults to slog.Default().
	Logger *slog.Logger
	// MaxOpenConns caps the connection pool (default 20 on Postgres).
	MaxOpenConns int
	// OpTimeout bounds each store operation, waiting for a pooled
	// connection included (default DefaultOpTimeout).
	OpTimeout time.Duration
}

// DefaultOpTimeout bounds one store operation: a store that stopped
// answering, or a pool whose connections are all busy, ends in
// store_unavailable after it rather than holding the caller forever.
const DefaultOpTimeout = 10 * time.Second

// Store is the repository over one database.
type Store struct {
	db      *gorm.DB
	sqlDB   *sql.DB
	dialect Dialect
	box     *secret.Box
	now     func() time.Time
	log     *slog.Logger
	timeout time.Duration
	hooks   atomic.Int64 // numbers OnQuery callbacks so several can coexist
}

// bound gives one operation the store's timeout (or the caller's deadline,
// if sooner).
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// Open connects to databaseURL ("postgres://…" or "sqlite:PATH") without
// migrating it.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var (
		dialector gorm.Dialector
		dialect   Dialect
	)
	switch {
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		dialect = Postgres
		dialector = postgres.New(postgres.Config{DSN: databaseURL})
	case strings.HasPrefix(databaseURL, "sqlite:"):
		dialect = SQLite
		dialector = sqlite.Open(sqliteDSN(strings.TrimPrefix(databaseURL, "sqlite:")))
	default:
		return nil, fmt.Errorf("store: unsupported database URL scheme (want postgres:// or sqlite:)")
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		TranslateError:         true,
		SkipDefaultTransaction: true,
		Logger:                 logger.Discard,
		NowFunc:                func() time.Time { return opts.Now().UTC() },
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dialect, err)
	}
	switch dialect {
	case Postgres:
		n := opts.MaxOpenConns
		if n <= 0 {
			n = 20
		}
		sqlDB.SetMaxOpenConns(n)
		sqlDB.SetMaxIdleConns(n)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	case SQLite:
		// SQLite has one writer; a small pool with a busy timeout avoids
		// "database is locked" while still allowing concurrent readers.
		sqlDB.SetMaxOpenConns(4)
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = DefaultOpTimeout
	}
	s := &Store{db: db, sqlDB: sqlDB, dialect: dialect, box: opts.Box, now: opts.Now, log: opts.Logger, timeout: opts.OpTimeout}
	return s, nil
}

// sqliteDSN turns a path into a DSN with WAL, foreign keys, a busy timeout
// and immediate write transactions.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	if path == ":memory:" {
		return "file::memory:?" + q.Encode()
	}
	// The path is escaped: in a file: URI a '#' or '?' in a directory name
	// would otherwise cut it short and open another file.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Dialect reports which database the store runs on.
func (s *Store) Dialect() Dialect { return s.dialect }

// Ping checks the database answers; /readyz uses it.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	var one int
	if err := s.sqlDB.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Close closes the connection pool.
func (s *Store) Close() error { return s.sqlDB.Close() }

// OnQuery registers fn to run after every statement gorm issues (tests
// count database round trips with it).
func (s *Store) OnQuery(fn func()) {
	s.OnQueryContext(func(context.Context, error) { fn() })
}

// OnQueryContext registers fn to run after every statement gorm issues, with
// the statement's context and error (nil on success): metrics tell a
// request's queries from the background workers' by the request id on it,
// and an unreachable store by Unavailable(err).
func (s *Store) OnQueryContext(fn func(ctx context.Context, err error)) {
	cb := func(db *gorm.DB) {
		ctx := context.Background()
		if db.Statement != nil && db.Statement.Context != nil {
			ctx = db.Statement.Context
		}
		fn(ctx, db.Error)
	}
	name := fmt.Sprintf("wxgate:on_query_%d", s.hooks.Add(1))
	_ = s.db.Callback().Query().After("gorm:query").Register(name+"_query", cb)
	_ = s.db.Callback().Create().After("gorm:create").Register(name+"_create", cb)
	_ = s.db.Callback().Update().After("gorm:update").Register(name+"_update", cb)
	_ = s.db.Callback().Delete().After("gorm:delete").Register(name+"_delete", cb)
	_ = s.db.Callback().Raw().After("gorm:raw").Register(name+"_raw", cb)
	_ = s.db.Callback().Row().After("gorm:row").Register(name+"_row", cb)
}

// Migrate applies pending migrations and returns how many it applied. On
// PostgreSQL it holds an advisory lock, so replicas starting together
// migrate once; applying with nothing pending is a no-op.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	dialect := goose.DialectSQLite3
	if s.dialect == Postgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return 0, fmt.Errorf("store: migrate: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, s.sqlDB, migrations.FS, opts...)
	if err != nil {
		return 0, fmt.Errorf("store: migrate: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: migrate: %w", err)
	}
	for _, r := range results {
		s.log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return len(results), nil
}

// SchemaVersion returns the newest applied migration version.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	dialect := goose.DialectSQLite3
	if s.dialect == Postgres {
		dialect = goose.DialectPostgres
	}
	p, err := goose.NewProvider(dialect, s.sqlDB, migrations.FS, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return v, nil
}

// translate turns gorm and driver errors into domain errors. what names the
// entity for the client-safe message.
func translate(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errs.As(err) != nil:
		return err
	case errors.Is(err, gorm.ErrRecordNotFound):
		return errs.Wrap(errs.NotFound, what+" not found", err)
	case Unavailable(err):
		return errUnavailable(err, what)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return errs.Wrap(errs.Conflict, what+" already exists", err)
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		return errs.Wrap(errs.NotFound, what+" refers to something that does not exist", err)
	case sqlState(err) == pgInvalidByteSequence:
		// PostgreSQL text holds neither invalid UTF-8 nor NUL; such a value,
		// e.g. a session id from a query string, is malformed input, not a
		// store failure.
		return errs.Wrap(errs.InvalidArgument, what+": text must be valid UTF-8 without NUL characters", err)
	default:
		return errs.Wrap(errs.Internal, "internal error", fmt.Errorf("store: %s: %w", what, err))
	}
}

// pgInvalidByteSequence is PostgreSQL's character_not_in_repertoire:
// "invalid byte sequence for encoding UTF8".
const pgInvalidByteSequence = "22021"

// sqlState returns the SQLSTATE of a PostgreSQL error, or "".
func sqlState(err error) string {
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) {
		return pe.SQLState()
	}
	return ""
}

// ms converts a time to Unix milliseconds; the zero time is 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS converts Unix milliseconds back to a UTC time; 0 is the zero time.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// msPtr and fromMSPtr do the same for nullable columns.
func msPtr(t *time.Time) *int64 {
	if t == nil || t.IsZero() {
		return nil
	}
	v := t.UnixMilli()
	return &v
}

func fromMSPtr(v *int64) *time.Time {
	if v == nil {
		return nil
	}
	t := fromMS(*v)
	return &t
}
