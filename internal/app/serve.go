package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/console"
	"github.com/wxgate/wxgate/internal/httpapi"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/platform"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/quota"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/tenant"
	"github.com/wxgate/wxgate/internal/webhook"
	"github.com/wxgate/wxgate/internal/wechat"
)

func runServe(ctx context.Context, args []string, getenv Env, stdio IO) error {
	fs := newFlags("serve", "Run the gateway: WeChat-facing endpoints, tenant API, compatible API, admin API and\noperations endpoints. Applies pending migrations at start-up.", stdio)
	cfgPath := fs.String("config", "", "optional YAML configuration `file` (the environment wins over it)")
	listEnvironment(fs)
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
	// Bind first: an address in use is a configuration problem, reported
	// before any migration runs.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("serve: listen on %s (WXGATE_LISTEN): %w", cfg.Listen, err)
	}
	gw, err := openGateway(ctx, cfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer gw.store.Close()
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

// gateway is one wired wxgate replica: its router and the background
// workers that run beside it.
type gateway struct {
	cfg     config.Config
	log     *slog.Logger
	store   *store.Store
	handler http.Handler
	// console signs the demo's operator in (SignInLink).
	console *console.Console
	// webhooks queues message.received events (the account message
	// callback) and registers the demo's webhook.
	webhooks *webhook.Service
	// workers run until the context ends (token refreshers, cache pollers,
	// usage flusher, janitor). Each must return nil on cancellation.
	workers []func(ctx context.Context) error
}

// How long handled-event receipts and finished authorization sessions are
// kept before the janitor deletes them.
const (
	eventReceiptRetention = 7 * 24 * time.Hour
	sessionRetention      = 24 * time.Hour
	janitorInterval       = time.Hour
	// callMinuteRetention keeps the console's per-minute call counts for
	// its longest chart window (24 h) and a day more.
	callMinuteRetention = 48 * time.Hour
	// consoleIdleTimeout ends console sessions unused for that long.
	consoleIdleTimeout = console.DefaultIdleTimeout
	// webhookEventRetention keeps finished webhook events and deliveries
	// visible (and redeliverable) for a month.
	webhookEventRetention = 30 * 24 * time.Hour
	// webhookPoll is how often an idle replica looks for due deliveries
	// (events enqueued on the replica itself wake it at once).
	webhookPoll = 500 * time.Millisecond
)

// newGateway wires every service of one replica over an open, migrated
// store, in the order they depend on each other: each service is a local
// variable built from the ones above it and handed on explicitly.
func newGateway(ctx context.Context, cfg config.Config, st *store.Store, log *slog.Logger, now func() time.Time) (*gateway, error) {
	// Metrics: the store-query counter the hot-path tests read, and
	// whether the store answers (every statement tells; the directory's
	// poll makes one every half second even without traffic).
	metrics := obs.NewMetrics()
	st.OnQueryContext(func(ctx context.Context, err error) {
		origin := "background"
		if obs.RequestID(ctx) != "" {
			origin = "request"
		}
		metrics.StoreQueries.WithLabelValues(origin).Inc()
		switch {
		case err == nil:
			metrics.StoreUp.Set(1)
		case store.Unavailable(err):
			metrics.StoreUp.Set(0)
			metrics.StoreUnavailable.Inc()
		}
	})

	// Tenants: directory, key verifier, rate limiter, usage, admin. A
	// tenant is created on one of the platforms, which are built below
	// over the tenants (reg is set before anything is served).
	var reg *platform.Registry[*platformStack]
	tenants, err := tenant.New(ctx, tenant.Options{
		Store:          st,
		ComponentAppID: cfg.ComponentAppID,
		Platforms:      hasPlatform(func(ctx context.Context, appid string) (bool, error) { return reg.HasPlatform(ctx, appid) }),
		MasterKey:      cfg.SecretKey,
		DefaultRate:    cfg.TenantRateLimit,
		DefaultBurst:   cfg.TenantRateBurst,
		MaxStaleness:   cfg.DirectoryMaxStaleness,
		OnLookup:       func(result string) { metrics.DirectoryLookups.WithLabelValues(result).Inc() },
		Now:            now,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	metrics.WatchDirectoryAge(func() float64 { return tenants.Directory.Age().Seconds() })

	// WeChat: the replica's upstream client (keep-alive pool, retry
	// budgets, reachability), which each platform's own client shares.
	wx, err := wechat.New(wechat.Options{
		BaseURL:         cfg.WeChatAPIURL,
		ComponentAppID:  cfg.ComponentAppID,
		ComponentSecret: cfg.ComponentSecret,
		Metrics:         metrics.ForComponent(cfg.ComponentAppID),
		Logger:          log,
	})
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}

	owner := replicaID()
	// The webhook dispatcher sends what the store's outbox holds: the
	// store writes each account's events in the transaction that changes
	// it, wherever the change comes from.
	dispatcher := webhook.NewDispatcher(webhook.DispatcherOptions{
		Queue: st, Owner: owner, AllowPrivate: cfg.WebhookAllowPrivate, Timeout: cfg.WebhookTimeout,
		Poll: webhookPoll, Now: now, Logger: log, Metrics: metrics,
	})
	// Webhooks: the tenant's webhook API; each platform also queues its
	// accounts' messages and pending bindings through it.
	webhooks := webhook.New(webhook.Options{
		Store: st, ComponentAppID: cfg.ComponentAppID, AllowPrivate: cfg.WebhookAllowPrivate,
		Now: now, Logger: log, Wake: dispatcher.Wake,
	})

	// The platforms: the default one from WXGATE_COMPONENT_* and those
	// registered through the admin API, each with its own credentials,
	// accounts, flow, receivers, quotas and proxy (platform.go), built
	// now and whenever this replica learns of another.
	replica := replicaServices{cfg: cfg, store: st, log: log, now: now, metrics: metrics, owner: owner,
		wx: wx, tenants: tenants, webhooks: webhooks, wake: dispatcher.Wake}
	reg, err = platform.New(ctx, platform.Options[*platformStack]{
		Store: st,
		Default: platform.Settings{AppID: cfg.ComponentAppID, Secret: cfg.ComponentSecret,
			Token: cfg.ComponentToken, AESKey: cfg.ComponentAESKey},
		Build: func(ctx context.Context, s platform.Settings) (*platformStack, func(context.Context) error, error) {
			return buildPlatform(ctx, replica, s)
		},
		Forget: metrics.ForgetComponent,
		Now:    now, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	def := reg.Default()

	// The operator console, over the same services (no HTTP calls to itself).
	cons, err := console.New(console.Options{
		AdminToken: cfg.AdminToken, PublicURL: cfg.PublicURL, Platforms: consolePlatforms{reg: reg},
		Tenants: tenants.Admin, Directory: tenants.Directory, Calls: st, Pending: st, Sessions: st,
		Webhooks: webhooks, WebhookQueue: st, StatusOf: httpapi.StatusOf,
		IdleTimeout: consoleIdleTimeout, Now: now, Logger: log,
	})
	if err != nil {
		return nil, err
	}

	// The router, over everything above.
	handler := httpapi.NewServer(httpapi.Deps{
		Logger:         log,
		TrustedProxies: cfg.TrustedProxies,
		Metrics:        metrics,
		Store:          st,
		WeChat:         wx,
		Tickets:        def.credentials,
		PublicURL:      cfg.PublicURL,
		Platforms:      platforms{reg: reg},
		Tenant: httpapi.TenantDeps{
			AdminToken:   cfg.AdminToken,
			Now:          now,
			Keys:         tenants.Verifier,
			Bindings:     tenants.Directory,
			Limiter:      tenants.Limiter,
			Usage:        tenants.Usage,
			Tenants:      tenants.Admin,
			KeyAdmin:     tenants.Admin,
			BindingAdmin: tenants.Admin,
			UsageReport:  tenants.Admin,
		},
		Proxy: httpapi.ProxyDeps{
			Bindings:            tenants.Directory,
			Access:              tenants.Directory,
			Usage:               tenants.Usage,
			Metrics:             metrics,
			Log:                 log,
			ExportProgressEvery: 5 * time.Second,
			Exports: proxy.NewExports(proxy.ExportLimits{PerTenant: cfg.ExportMaxPerTenant,
				PerReplica: cfg.ExportMaxPerReplica, Deadline: cfg.ExportDeadline}),
		},
		Webhooks: webhooks,
		Console:  cons,
	})

	workers := append(tenants.Workers(), reg.Run, dispatcher.Run, func(ctx context.Context) error {
		return platformJanitor(ctx, st, log, now)
	})
	return &gateway{cfg: cfg, log: log, store: st, handler: handler, console: cons, webhooks: webhooks, workers: workers}, nil
}

// platformJanitor prunes old event receipts, finished authorization
// sessions, expired console sessions, old per-minute call counts and the
// quota counts of days before yesterday hourly.
func platformJanitor(ctx context.Context, st *store.Store, log *slog.Logger, now func() time.Time) error {
	t := time.NewTicker(janitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		at := now()
		if _, err := st.DeleteEventsBefore(ctx, at.Add(-eventReceiptRetention)); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "janitor: pruning event receipts failed", "err", err.Error())
		}
		if _, err := st.DeleteExpiredSessions(ctx, at.Add(-sessionRetention)); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "janitor: pruning authorization sessions failed", "err", err.Error())
		}
		if _, err := st.DeleteExpiredConsoleTokens(ctx, at, at.Add(-consoleIdleTimeout)); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "janitor: pruning console sessions failed", "err", err.Error())
		}
		if _, err := st.DeleteWebhookEventsBefore(ctx, at.Add(-webhookEventRetention)); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "janitor: pruning webhook events failed", "err", err.Error())
		}
		if _, err := st.DeleteInboundMessagesBefore(ctx, at.Add(-webhookEventRetention)); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "janitor: pruning inbound message receipts failed", "err", err.Error())
		}
		if _, err := st.DeleteCallMinutesBefore(ctx, at.Add(-callMinuteRetention)); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "janitor: pruning per-minute call counts failed", "err", err.Error())
		}
		if _, err := st.DeleteQuotaCountsBefore(ctx, quota.Day(at)-1); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "janitor: pruning daily quota counts failed", "err", err.Error())
		}
	}
}

// replicaID names this process in leases: host, pid and a random suffix.
func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
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
