package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/sim"
)

// defaultSimListen is loopback only: the simulator's /sim/ control API has
// no authentication and answers live tokens, so reaching it from another
// machine takes an explicit --listen.
const defaultSimListen = "127.0.0.1:9090"

func runSim(ctx context.Context, args []string, getenv Env, stdio IO) error {
	fs := newFlags("sim", "Run the WeChat simulator (docs/simulator.md): component APIs, user/get and user/tag/get,\nthe authorization pages, event pushes and the /sim/ control API. Component settings come from\nthe same WXGATE_COMPONENT_* variables as serve.", stdio)
	listen := fs.String("listen", defaultSimListen, "listen `address` (the control API is unauthenticated and hands out live tokens: keep it off public interfaces)")
	eventURL := fs.String("event-url", "http://localhost:8080/wechat/events", "`URL` events are pushed to (empty: do not push)")
	messageURL := fs.String("message-url", "http://localhost:8080/wechat/accounts/$APPID$/callback", "the platform's message and event receive `URL`, $APPID$ standing for the account (empty: none)")
	releaseTest := fs.Bool("release-test", false, "do not serve: have the simulator already listening on --listen (wxgate sim or wxgate demo) run WeChat's full-network release test against its platform, print the result page and exit (non-zero if an item failed)")
	releaseGroup := fs.Int("release-group", 0, "test account group 1..5 for --release-test (0: at random, as WeChat does)")
	publicURL := fs.String("public-url", "", "the simulator's own external base `URL` (links in its pages)")
	seed := fs.String("seed", "", "YAML or JSON `file` of accounts to preload")
	ticketEvery := fs.Duration("ticket-interval", sim.DefaultTicketInterval, "push a component_verify_ticket this often (negative: never)")
	lifetime := fs.Duration("token-lifetime", sim.DefaultTokenLifetime, "lifetime of component and authorizer access tokens")
	overlap := fs.Duration("token-overlap", sim.DefaultTokenOverlap, "how long the previous token keeps working after a refresh")
	quota := fs.Int("daily-quota", sim.DefaultDailyQuota, "calls per account per API per day (-1: unlimited)")
	cfgPath := fs.String("config", "", "optional YAML configuration `file`")
	if done, err := parse(fs, args); done {
		return err
	}
	if *releaseTest {
		return runReleaseTest(ctx, *listen, *releaseGroup, stdio.Stdout)
	}
	cfg, err := config.Load(getenv, *cfgPath, config.NeedComponent)
	if err != nil {
		return err
	}
	log := obs.NewLogger(stdio.Stderr, cfg.LogLevel)
	opts := simOptions(cfg)
	opts.EventURL, opts.MessageURL, opts.PublicURL, opts.TicketInterval = *eventURL, *messageURL, *publicURL, *ticketEvery
	opts.TokenLifetime, opts.TokenOverlap, opts.DailyQuota, opts.Logger = *lifetime, *overlap, *quota, log
	s, err := sim.New(opts)
	if err != nil {
		return err
	}
	if *seed != "" {
		specs, err := sim.LoadSeed(*seed)
		if err != nil {
			return err
		}
		for _, spec := range specs {
			if err := s.CreateAccount(spec); err != nil {
				return fmt.Errorf("sim: seed %s: %w", spec.AppID, err)
			}
		}
		log.Info("seeded accounts", "count", len(specs))
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("sim: listen on %s: %w", *listen, err)
	}
	log.Info("simulator listening", "addr", ln.Addr().String(), "event_url", *eventURL, "message_url", *messageURL)
	return serveUntilDone(ctx, ln, s.Handler(), log, 5*time.Second, s.Run)
}

// runReleaseTest asks the simulator running at listen (a `wxgate sim` or
// the demo's) to play WeChat's full-network release test against its
// platform, prints the result page and fails if an item failed.
func runReleaseTest(ctx context.Context, listen string, group int, stdout io.Writer) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("sim: --listen %q: %w", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	body, _ := json.Marshal(sim.ReleaseTestOptions{Group: group})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+net.JoinHostPort(host, port)+"/sim/release_test", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sim: release test: %w", err)
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("sim: release test: is a simulator (wxgate sim or wxgate demo) listening on %s? %w", listen, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sim: release test: the simulator answered %s: %s", resp.Status, raw)
	}
	var rep sim.ReleaseReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("sim: release test: reading the report: %w", err)
	}
	if _, err := fmt.Fprint(stdout, rep.String()); err != nil {
		return err
	}
	if !rep.Passed {
		return errors.New("sim: the full-network release test failed (see the items above)")
	}
	return nil
}

// simOptions are the simulator's settings for the component of cfg: the same
// appid, secret, token and AES key the gateway uses.
func simOptions(cfg config.Config) sim.Options {
	return sim.Options{
		ComponentAppID: cfg.ComponentAppID, ComponentSecret: cfg.ComponentSecret.Reveal(),
		Token: cfg.ComponentToken.Reveal(), EncodingAESKey: cfg.ComponentAESKey.Reveal(),
	}
}

// serveUntilDone serves h on ln and runs the workers until ctx ends, then
// shuts the server down gracefully within timeout.
func serveUntilDone(ctx context.Context, ln net.Listener, h http.Handler, log interface{ Info(string, ...any) }, timeout time.Duration, workers ...func(context.Context) error) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	grp, gctx := errgroup.WithContext(ctx)
	for _, w := range workers {
		grp.Go(func() error { return w(gctx) })
	}
	grp.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	grp.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	err := grp.Wait()
	log.Info("stopped")
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
