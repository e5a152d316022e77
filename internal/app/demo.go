package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/sim"
)

// demoAccounts are the simulated accounts the demo authorizes: one with
// 23000 followers and tags, one that granted only set 1 (refused locally),
// one that granted only set 100 (allowed).
var demoAccounts = []sim.AccountSpec{
	{AppID: "wxd000000000c0ffee", NickName: "Demo Coffee", Followers: 23000, PermissionSets: []int{1, 2, 11},
		Tags: []sim.TagSpec{{ID: 134, Name: "regulars", From: 0, To: 12000}, {ID: 2, Name: "vip", From: 100, To: 350}}},
	{AppID: "wxd0000000000bread", NickName: "Demo Bakery (set 1 only)", Followers: 1200, PermissionSets: []int{1}},
	{AppID: "wxd00000000000b00c", NickName: "Demo Books (set 100 only)", Followers: 800, PermissionSets: []int{100}},
}

// demoSecond is the demo's second third-party platform, registered through
// the admin API: another brand of the same service provider. Demo Coffee
// authorizes it too, for the second brand's tenant.
var demoSecond = struct{ AppID, Tenant, Account string }{AppID: "wxd0c0000000000002", Tenant: "demo-two", Account: "wxd000000000c0ffee"}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// demoEnv is a complete configuration for a demo on loopback: fresh secrets
// every run, the simulator as WeChat.
func demoEnv(listen, dbURL, gatewayURL, simURL string) map[string]string {
	aes := strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(randomHex(16))), "=")[:43]
	return map[string]string{
		"WXGATE_LISTEN":            listen,
		"WXGATE_DATABASE_URL":      dbURL,
		"WXGATE_PUBLIC_URL":        gatewayURL,
		"WXGATE_SECRET_KEY":        randomB64(32),
		"WXGATE_ADMIN_TOKEN":       "demo-admin-" + randomHex(16),
		"WXGATE_COMPONENT_APPID":   "wxd0c0000000000001",
		"WXGATE_COMPONENT_SECRET":  "demo-secret-" + randomHex(8),
		"WXGATE_COMPONENT_TOKEN":   "demotoken" + randomHex(4),
		"WXGATE_COMPONENT_AES_KEY": aes,
		"WXGATE_WECHAT_API_URL":    simURL,
		"WXGATE_WECHAT_MP_URL":     simURL,
		"WXGATE_WECHAT_OPEN_URL":   simURL,
		"WXGATE_LOG_LEVEL":         "warn",
		// The demo's webhook receiver is on loopback, over http.
		"WXGATE_WEBHOOK_ALLOW_PRIVATE": "true",
	}
}

func runDemo(ctx context.Context, args []string, getenv Env, stdio IO) error {
	fs := newFlags("demo", "Run the gateway and the WeChat simulator in one process on the embedded SQLite store, with a\ndemo tenant, a tenant key and three accounts authorized through the real flow. Prints the URLs,\nthe key and ready-to-paste curl lines, then serves until interrupted.", stdio)
	listen := fs.String("listen", "127.0.0.1:8080", "gateway listen `address`")
	simListen := fs.String("sim-listen", "127.0.0.1:9090", "simulator listen `address`")
	hookListen := fs.String("hook-listen", "127.0.0.1:9091", "listen `address` of the demo's own webhook receiver")
	dbPath := fs.String("db", "", "SQLite `file` (default: a fresh file in a temporary directory)")
	logLevel := fs.String("log-level", "warn", "log level of the gateway and simulator")
	if done, err := parse(fs, args); done {
		return err
	}
	gwLn, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("demo: gateway listen on %s: %w (choose another with --listen)", *listen, err)
	}
	simLn, err := net.Listen("tcp", *simListen)
	if err != nil {
		gwLn.Close()
		return fmt.Errorf("demo: simulator listen on %s: %w (choose another with --sim-listen)", *simListen, err)
	}
	hookLn, err := net.Listen("tcp", *hookListen)
	if err != nil {
		gwLn.Close()
		simLn.Close()
		return fmt.Errorf("demo: webhook receiver listen on %s: %w (choose another with --hook-listen)", *hookListen, err)
	}
	if *dbPath == "" {
		dir, err := os.MkdirTemp("", "wxgate-demo-")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer os.RemoveAll(dir)
		*dbPath = filepath.Join(dir, "wxgate.db")
	}
	gatewayURL, simURL, hookURL := "http://"+gwLn.Addr().String(), "http://"+simLn.Addr().String(), "http://"+hookLn.Addr().String()
	env := demoEnv(gwLn.Addr().String(), "sqlite:"+*dbPath, gatewayURL, simURL)
	env["WXGATE_LOG_LEVEL"] = *logLevel
	cfg, err := config.Load(func(k string) string { return env[k] }, "", config.NeedGateway)
	if err != nil {
		return err
	}
	log := obs.NewLogger(stdio.Stderr, cfg.LogLevel)

	opts := simOptions(cfg)
	opts.EventURL, opts.PublicURL, opts.DailyQuota, opts.Logger = gatewayURL+"/wechat/events", simURL, -1, log
	opts.MessageURL = gatewayURL + "/wechat/accounts/$APPID$/callback"
	simulator, err := sim.New(opts)
	if err != nil {
		return err
	}
	for _, a := range demoAccounts {
		if err := simulator.CreateAccount(a); err != nil {
			return err
		}
	}
	gw, err := openGateway(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer gw.store.Close()

	hook := &demoHook{out: stdio.Stdout}
	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error {
		return serveUntilDone(gctx, simLn, simulator.Handler(), log, 2*time.Second, simulator.Run)
	})
	grp.Go(func() error { return serveUntilDone(gctx, hookLn, hook, log, 2*time.Second) })
	grp.Go(func() error { return gw.serve(gctx, gwLn) })
	grp.Go(func() error {
		tenantID, key, err := setUpDemo(gctx, gatewayURL, cfg.AdminToken.Reveal(), simulator, hookURL, hook, log)
		if err != nil {
			return fmt.Errorf("demo: setting up: %w", err)
		}
		key2, err := setUpSecondPlatform(gctx, gatewayURL, cfg.AdminToken.Reveal(), simulator, log)
		if err != nil {
			return fmt.Errorf("demo: setting up the second platform: %w", err)
		}
		signIn, err := gw.console.SignInLink(gctx)
		if err != nil {
			return fmt.Errorf("demo: console sign-in link: %w", err)
		}
		return printDemo(stdio.Stdout, demoBanner{Gateway: gatewayURL, Sim: simURL, SimAddr: simLn.Addr().String(), Tenant: tenantID, Key: key, Key2: key2, Second: demoSecond.AppID, Admin: cfg.AdminToken.Reveal(),
			Console: gw.console.URL(), SignIn: signIn, Hook: hookURL})
	})
	err = grp.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// demoClient calls the gateway's HTTP API.
type demoClient struct {
	base string
	http *http.Client
}

func (d demoClient) do(ctx context.Context, method, path, bearer string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, body)
	if err != nil {
		return 0, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusFound {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, raw)
	}
	if out != nil && len(raw) > 0 {
		return resp.StatusCode, json.Unmarshal(raw, out)
	}
	return resp.StatusCode, nil
}

// setUpSecondPlatform registers the demo's second platform through the
// admin API and with the simulator (WeChat), which pushes its ticket to the
// platform's own event URL; creates its tenant and a key; and authorizes
// Demo Coffee to it through the real flow, a second authorization of an
// account the first platform already manages.
func setUpSecondPlatform(ctx context.Context, gatewayURL, adminToken string, s *sim.Simulator, log *slog.Logger) (tenantKey string, err error) {
	c := demoClient{base: gatewayURL, http: &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	settings := sim.PlatformOptions{AppID: demoSecond.AppID, Secret: "demo-secret-" + randomHex(8), Token: "demotoken" + randomHex(4),
		EncodingAESKey: strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(randomHex(16))), "=")[:43]}
	var created struct {
		EventURL   string `json:"event_url"`
		MessageURL string `json:"message_url"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/admin/components", adminToken, map[string]any{"appid": settings.AppID, "secret": settings.Secret,
		"token": settings.Token, "aes_key": settings.EncodingAESKey}, &created); err != nil {
		return "", err
	}
	// The URLs the admin API answers are those entered on WeChat's
	// platform page for it.
	settings.EventURL, settings.MessageURL = created.EventURL, created.MessageURL
	if err := s.AddPlatform(settings); err != nil {
		return "", err
	}
	p, err := s.Platform(settings.AppID)
	if err != nil {
		return "", err
	}
	if _, err := p.PushTicket(ctx); err != nil {
		return "", fmt.Errorf("push the second platform's ticket: %w", err)
	}
	var tn struct{ ID string }
	if _, err := c.do(ctx, http.MethodPost, "/admin/tenants", adminToken, map[string]any{"name": demoSecond.Tenant, "component_appid": settings.AppID}, &tn); err != nil {
		return "", err
	}
	var key struct{ Key string }
	if _, err := c.do(ctx, http.MethodPost, "/admin/tenants/"+tn.ID+"/keys", adminToken, map[string]any{"name": "demo-two key"}, &key); err != nil {
		return "", err
	}
	var auth struct{ URL string }
	if err := waitFor(ctx, 15*time.Second, func() error {
		_, err := c.do(ctx, http.MethodPost, "/v1/authorizations", key.Key, map[string]any{"return_url": "https://brand-two.example/wxgate/done", "auth_type": 1, "biz_appid": demoSecond.Account}, &auth)
		return err
	}); err != nil {
		return "", err
	}
	u, err := url.Parse(auth.URL)
	if err != nil {
		return "", err
	}
	code, err := p.Authorize(ctx, demoSecond.Account, u.Query().Get("pre_auth_code"))
	if err != nil {
		return "", fmt.Errorf("authorize %s to the second platform: %w", demoSecond.Account, err)
	}
	cb := sim.RedirectURL(u.Query().Get("redirect_uri"), code)
	if _, err := c.do(ctx, http.MethodGet, strings.TrimPrefix(cb, gatewayURL), "", nil, nil); err != nil {
		return "", fmt.Errorf("callback %s on the second platform: %w", demoSecond.Account, err)
	}
	log.Info("demo account authorized to the second platform", "appid", demoSecond.Account, "component_appid", demoSecond.AppID)
	return key.Key, nil
}

// setUpDemo makes the demo state through the public surfaces only: the
// simulator pushes a ticket, the admin API creates a tenant and a key, and
// each account is authorized through POST /v1/authorizations, the
// simulator's confirmation (which pushes the authorized event) and the
// browser's redirect to /wechat/callback.
func setUpDemo(ctx context.Context, gatewayURL, adminToken string, s *sim.Simulator, hookURL string, hook *demoHook, log *slog.Logger) (tenantID, tenantKey string, err error) {
	c := demoClient{base: gatewayURL, http: &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if err := waitFor(ctx, 10*time.Second, func() error {
		_, err := c.do(ctx, http.MethodGet, "/readyz", "", nil, nil)
		return err
	}); err != nil {
		return "", "", err
	}
	if _, err := s.PushTicket(ctx); err != nil {
		return "", "", fmt.Errorf("push ticket: %w", err)
	}
	var tn struct{ ID string }
	if _, err := c.do(ctx, http.MethodPost, "/admin/tenants", adminToken, map[string]any{"name": "demo"}, &tn); err != nil {
		return "", "", err
	}
	var key struct{ Key string }
	if _, err := c.do(ctx, http.MethodPost, "/admin/tenants/"+tn.ID+"/keys", adminToken, map[string]any{"name": "demo key"}, &key); err != nil {
		return "", "", err
	}
	// The tenant's webhook points at the demo's receiver before the
	// accounts authorize, so their authorizer.authorized events arrive.
	var wh struct{ Secret string }
	if _, err := c.do(ctx, http.MethodPut, "/v1/webhook", key.Key, map[string]any{"url": hookURL + "/wxgate", "events": []string{"*"}}, &wh); err != nil {
		return "", "", err
	}
	hook.SetSecret(wh.Secret)
	for _, a := range demoAccounts {
		var auth struct{ URL string }
		// The component token is fetched right after the first ticket; retry until it is there.
		err := waitFor(ctx, 15*time.Second, func() error {
			_, err := c.do(ctx, http.MethodPost, "/v1/authorizations", key.Key, map[string]any{"return_url": "https://merchant.example/wxgate/done", "auth_type": 1, "biz_appid": a.AppID}, &auth)
			return err
		})
		if err != nil {
			return "", "", err
		}
		u, err := url.Parse(auth.URL)
		if err != nil {
			return "", "", err
		}
		code, err := s.Authorize(ctx, a.AppID, u.Query().Get("pre_auth_code"))
		if err != nil {
			return "", "", fmt.Errorf("authorize %s: %w", a.AppID, err)
		}
		// The admin's browser follows WeChat's redirect back to the gateway.
		cb := sim.RedirectURL(u.Query().Get("redirect_uri"), code)
		if _, err := c.do(ctx, http.MethodGet, strings.TrimPrefix(cb, gatewayURL), "", nil, nil); err != nil {
			return "", "", fmt.Errorf("callback %s: %w", a.AppID, err)
		}
		log.Info("demo account authorized", "appid", a.AppID)
	}
	return tn.ID, key.Key, nil
}

func waitFor(ctx context.Context, within time.Duration, try func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := try()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var demoText = template.Must(template.New("demo").Parse(`
wxgate demo is running (embedded SQLite store, WeChat replaced by the simulator). Ctrl-C stops it.

  gateway    {{.Gateway}}        (OpenAPI: {{.Gateway}}/openapi.json, metrics: {{.Gateway}}/metrics)
  simulator  {{.Sim}}        (control API: {{.Sim}}/sim/accounts)
  console    {{.Console}}
  webhook    {{.Hook}}        (the tenant's receiver: the events it got, signatures verified)

Open the operator console signed in with one click (the link works once, within 10 minutes;
afterwards sign in with the admin token below):

  {{.SignIn}}

A tenant "demo" was created with this key (shown once):

  export TENANT='{{.Tenant}}'
  export KEY='{{.Key}}'

and this run's admin token (fresh every run):

  export ADMIN='{{.Admin}}'

A second third-party platform, {{.Second}}, was registered through the admin API, with a
tenant "demo-two" of its own; Demo Coffee authorized it too (a second, separate authorization):

  export KEY2='{{.Key2}}'

Accounts authorized through the real flow and bound to the tenant:
  wxd000000000c0ffee  Demo Coffee   23000 followers, tags 134 and 2, granted sets 1,2,11
  wxd0000000000bread  Demo Bakery   granted set 1 only  -> refused locally (permission_set_missing)
  wxd00000000000b00c  Demo Books    granted set 100 only -> allowed

Try:

  # the tenant's accounts
  curl -s -H "Authorization: Bearer $KEY" {{.Gateway}}/v1/authorizers

  # getFans, first page (10000 openids) and the next one
  curl -s -H "Authorization: Bearer $KEY" {{.Gateway}}/v1/authorizers/wxd000000000c0ffee/fans | head -c 300; echo
  NEXT=$(curl -s -H "Authorization: Bearer $KEY" {{.Gateway}}/v1/authorizers/wxd000000000c0ffee/fans | grep -o '"next_openid":"[^"]*"' | cut -d'"' -f4)
  curl -s -H "Authorization: Bearer $KEY" "{{.Gateway}}/v1/authorizers/wxd000000000c0ffee/fans?next_openid=$NEXT" | head -c 300; echo

  # the account's tags (the ids getTagFans takes), then getTagFans for tag 2
  curl -s -H "Authorization: Bearer $KEY" {{.Gateway}}/v1/authorizers/wxd000000000c0ffee/tags; echo
  curl -s -H "Authorization: Bearer $KEY" {{.Gateway}}/v1/authorizers/wxd000000000c0ffee/tags/2/fans | head -c 300; echo

  # WeChat's daily quota of each API (learnt from quota/get), and a call by its cloud-call name
  curl -s -H "Authorization: Bearer $KEY" {{.Gateway}}/v1/authorizers/wxd000000000c0ffee/quota; echo
  curl -s -H "Authorization: Bearer $KEY" -d '{"appid":"wxd000000000c0ffee"}' {{.Gateway}}/v1/openapi/officialAccount.user.getList | head -c 300; echo

  # every follower, streamed (NDJSON, or CSV with format=csv)
  curl -sN -H "Authorization: Bearer $KEY" {{.Gateway}}/v1/authorizers/wxd000000000c0ffee/fans/export | wc -l
  curl -sN -H "Authorization: Bearer $KEY" "{{.Gateway}}/v1/authorizers/wxd000000000c0ffee/tags/134/fans/export?format=csv" | head -3

  # the WeChat-compatible path: point an SDK's API base at {{.Gateway}}/wx/APPID
  curl -s "{{.Gateway}}/wx/wxd000000000c0ffee/cgi-bin/user/get?access_token=$KEY" | head -c 300; echo
  curl -s -X POST -d '{"tagid":2,"next_openid":""}' "{{.Gateway}}/wx/wxd000000000c0ffee/cgi-bin/user/tag/get?access_token=$KEY" | head -c 300; echo

  # permission refusal: Demo Bakery granted neither set 2 nor 100; WeChat is not called
  curl -s -H "Authorization: Bearer $KEY" {{.Gateway}}/v1/authorizers/wxd0000000000bread/fans; echo
  curl -s "{{.Gateway}}/wx/wxd0000000000bread/cgi-bin/user/get?access_token=$KEY"; echo

  # set 100 alone is enough
  curl -s -H "Authorization: Bearer $KEY" {{.Gateway}}/v1/authorizers/wxd00000000000b00c/fans | head -c 200; echo

  # webhooks: the tenant's webhook, a test event, the deliveries, and what the receiver got
  # (each event it receives is also printed below as it arrives)
  curl -s -H "Authorization: Bearer $KEY" {{.Gateway}}/v1/webhook; echo
  curl -s -X POST -H "Authorization: Bearer $KEY" {{.Gateway}}/v1/webhook/test; echo
  curl -s -H "Authorization: Bearer $KEY" "{{.Gateway}}/v1/webhook/deliveries?limit=5"; echo
  curl -s {{.Hook}}/ | head -40
  # the merchant changes its permission sets: authorizer.updated arrives
  curl -s -X PUT -d '{"permission_sets":[1,2,11,100],"push":true}' {{.Sim}}/sim/accounts/wxd000000000c0ffee/permission_sets; echo

  # the operator's view: accounts with their tenants, the component, usage
  curl -s -H "Authorization: Bearer $ADMIN" {{.Gateway}}/admin/authorizers; echo
  curl -s -H "Authorization: Bearer $ADMIN" {{.Gateway}}/admin/component; echo
  curl -s -H "Authorization: Bearer $ADMIN" {{.Gateway}}/admin/tenants; echo
  curl -s -H "Authorization: Bearer $ADMIN" {{.Gateway}}/admin/tenants/$TENANT/usage; echo

  # several platforms: both listed with the URLs to enter on WeChat, the second's component state
  curl -s -H "Authorization: Bearer $ADMIN" {{.Gateway}}/admin/components; echo
  curl -s -H "Authorization: Bearer $ADMIN" "{{.Gateway}}/admin/component?component_appid={{.Second}}"; echo
  # the second platform's tenant calls Demo Coffee with the second platform's own token
  curl -s -H "Authorization: Bearer $KEY2" {{.Gateway}}/v1/authorizers; echo
  curl -s -H "Authorization: Bearer $KEY2" {{.Gateway}}/v1/authorizers/wxd000000000c0ffee/fans | head -c 200; echo
  # ...and never reaches the first platform's accounts (404 not_found)
  curl -s -H "Authorization: Bearer $KEY2" {{.Gateway}}/v1/authorizers/wxd0000000000bread/fans; echo

  # a follower writes to Demo Coffee: queued for the tenant as a message.received event
  curl -s -X POST -d '{"content":"hello"}' {{.Sim}}/sim/accounts/wxd000000000c0ffee/messages; echo

  # WeChat's full-network release test against this gateway, item by item (it passes)
  wxgate sim --release-test --listen {{.SimAddr}}
  curl -s -X POST {{.Sim}}/sim/release_test; echo
`))

// demoBanner is what the demo prints once it is ready.
type demoBanner struct {
	Gateway, Sim, Tenant, Key, Admin string
	// Key2 is the key of the second platform's tenant, Second its appid.
	Key2, Second string
	// SimAddr is the simulator's host:port.
	SimAddr string
	// Console is the console's URL; SignIn its one-time sign-in link.
	Console, SignIn string
	// Hook is the demo's webhook receiver.
	Hook string
}

func printDemo(w io.Writer, b demoBanner) error {
	return demoText.Execute(w, b)
}
