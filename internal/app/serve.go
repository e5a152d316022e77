package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wxgate/wxgate/internal/authorizer"
	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/httpapi"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wechat"
)

func runServe(ctx context.Context, args []string, getenv Env, stdio IO) error {
	fs := newFlags("serve", "Run the gateway: WeChat-facing endpoints, tenant API, compatible API, admin API and\noperations endpoints. Applies pending migrations at start-up.", stdio)
	cfgPath := fs.String("config", "", "optional YAML configuration `file` (the environment wins over it)")
	if done, err := parse(fs, args); done {
		return err
	}
	cfg, err := config.Load(getenv, *cfgPath, config.NeedGateway)
	if err != nil {
		return err
	}
	// One write system call per batch of log lines, not per request.
	logOut := obs.NewLineBuffer(stdio.Stderr, logFlushInterval)
	defer logOut.Close()
	log := obs.NewLogger(logOut, cfg.LogLevel)
	gw, err := openGateway(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer gw.store.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", cfg.Listen, err)
	}
	return gw.serve(ctx, ln)
}

// logFlushInterval is how long an informational log line may wait in the
// buffer; warnings and errors are written at once.
const logFlushInterval = 100 * time.Millisecond

// openGateway opens and migrates the configured store and wires a replica
// over it; the caller closes gw.store when done.
func openGateway(ctx context.Context, cfg config.Config, log *slog.Logger) (*gateway, error) {
	st, err := openStore(ctx, cfg, log, time.Now)
	if err != nil {
		return nil, err
	}
	if _, err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	gw, err := newGateway(ctx, cfg, st, log, time.Now)
	if err != nil {
		st.Close()
		return nil, err
	}
	return gw, nil
}

// openStore opens the configured database with the at-rest box.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, now func() time.Time) (*store.Store, error) {
	var box *secret.Box
	if len(cfg.SecretKey) > 0 {
		var err error
		if box, err = secret.NewBox(cfg.SecretKey); err != nil {
			return nil, err
		}
	}
	return store.Open(ctx, cfg.DatabaseURL, store.Options{Box: box, Now: now, Logger: log, MaxOpenConns: cfg.DatabaseMaxConns})
}

// gateway is one wired wxgate replica: its router and its background workers.
type gateway struct {
	cfg     config.Config
	log     *slog.Logger
	store   *store.Store
	metrics *obs.Metrics
	handler http.Handler
	now     func() time.Time
	// tokens is the authorizer token manager and wechat the WeChat client
	// (wire_platform.go); the proxy uses both.
	tokens *authorizer.Manager
	wechat *wechat.Client
	// reloadTenants refreshes this replica's tenant directory at once
	// (wire_tenant.go); the platform calls it after binding an account.
	reloadTenants func(context.Context) error
	// workers run until the context ends (token refresher, cache pollers,
	// usage flusher, ...). Each must return nil on cancellation.
	workers []func(ctx context.Context) error
}

// newGateway wires every service of one replica over an open, migrated store.
func newGateway(ctx context.Context, cfg config.Config, st *store.Store, log *slog.Logger, now func() time.Time) (*gateway, error) {
	m := obs.NewMetrics()
	st.OnQueryContext(func(ctx context.Context) {
		origin := "background"
		if obs.RequestID(ctx) != "" {
			origin = "request"
		}
		m.StoreQueries.WithLabelValues(origin).Inc()
	})
	g := &gateway{cfg: cfg, log: log, store: st, metrics: m, now: now}
	tenants, err := wireTenant(ctx, g)
	if err != nil {
		return nil, err
	}
	platform, err := wirePlatform(ctx, g)
	if err != nil {
		return nil, err
	}
	g.handler = httpapi.NewServer(httpapi.Deps{
		Logger:   log,
		Metrics:  m,
		Store:    st,
		Platform: platform,
		Tenant:   tenants,
		Proxy:    wireProxy(g, tenants),
	})
	return g, nil
}

// serve runs the HTTP server on ln and the workers until ctx ends, then
// stops accepting, lets in-flight requests finish (bounded by the shutdown
// timeout) and stops the workers.
func (g *gateway) serve(ctx context.Context, ln net.Listener) error {
	srv := newHTTPServer(g.handler, g.log)
	g.log.Info("listening", "addr", ln.Addr().String(), "version", Version, "store", string(g.store.Dialect()))
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	grp, _ := errgroup.WithContext(workCtx)
	for _, w := range g.workers {
		grp.Go(func() error { return w(workCtx) })
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		g.log.Info("shutting down", "timeout", g.cfg.ShutdownTimeout.String())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			serveErr = fmt.Errorf("serve: shutdown: %w", err)
		}
	}
	stopWork()
	if err := grp.Wait(); err != nil && !errors.Is(err, context.Canceled) && serveErr == nil {
		serveErr = err
	}
	g.log.Info("stopped")
	return serveErr
}

// newHTTPServer sets the timeouts that keep slow or huge requests from
// holding connections: slowloris headers and bodies time out, headers are
// capped. Streaming exports extend their own write deadline.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func runMigrate(ctx context.Context, args []string, getenv Env, stdio IO) error {
	fs := newFlags("migrate", "Apply pending migrations to WXGATE_DATABASE_URL and exit. Safe to run from several\nreplicas at once; a no-op when nothing is pending.", stdio)
	cfgPath := fs.String("config", "", "optional YAML configuration `file`")
	if done, err := parse(fs, args); done {
		return err
	}
	cfg, err := config.Load(getenv, *cfgPath, 0)
	if err != nil {
		return err
	}
	log := obs.NewLogger(stdio.Stderr, cfg.LogLevel)
	st, err := openStore(ctx, cfg, log, time.Now)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.Migrate(ctx)
	if err != nil {
		return err
	}
	v, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdio.Stdout, "applied %d migration(s); schema version %d\n", n, v)
	return err
}
