package app_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/app"
	"github.com/wxgate/wxgate/internal/faultnet"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

func get(t testing.TB, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServeReadyzFollowsTheStore(t *testing.T) {
	t.Parallel()
	// Put a forwarder between the gateway and PostgreSQL so the test can take
	// the database away and bring it back without touching the server.
	base, err := url.Parse(storetest.NewSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := faultnet.Start(base.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fwd.Close)
	base.Host = fwd.Addr()

	gw := start(t, gatewayEnv(base.String(), "http://127.0.0.1:1"), "serve")
	root := "http://" + gw.Addr
	if code, body := get(t, root+"/healthz"); code != 200 || body != "ok" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	// No simulator pushes tickets here: /readyz says so instead of only
	// "wechat: not called yet".
	if code, body := get(t, root+"/readyz"); code != 200 || !strings.Contains(body, "component: no component_verify_ticket yet") {
		t.Fatalf("/readyz with the store up and no ticket = %d %q", code, body)
	}
	fwd.Cut()
	eventually(t, 10*time.Second, "/readyz 503 with the store down", func() bool { c, _ := get(t, root+"/readyz"); return c == 503 })
	if code, _ := get(t, root+"/healthz"); code != 200 {
		t.Fatalf("/healthz must stay 200 while the store is down, got %d", code)
	}
	if err := fwd.Restore(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "/readyz 200 once the store is back", func() bool { c, _ := get(t, root+"/readyz"); return c == 200 })
	if code, body := get(t, root+"/metrics"); code != 200 || !strings.Contains(body, "wxgate_http_requests_total") {
		t.Fatalf("/metrics = %d", code)
	}
	if err := gw.Stop(t); err != nil {
		t.Fatalf("clean shutdown returned %v", err)
	}
	if !strings.Contains(gw.Logs.String(), `"msg":"stopped"`) {
		t.Fatalf("no stopped line in logs:\n%s", gw.Logs)
	}
}

func TestServeOnSQLiteAndMigrateTwice(t *testing.T) {
	t.Parallel()
	dbURL := storetest.NewURL(t, "sqlite")
	env := gatewayEnv(dbURL, "http://127.0.0.1:1")
	var out bytes.Buffer
	getenv := func(k string) string { return env[k] }
	if err := app.Run(context.Background(), []string{"migrate"}, getenv, app.IO{Stdout: &out, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "applied 1 migration") && !strings.Contains(out.String(), "applied") {
		t.Fatalf("first migrate printed %q", out.String())
	}
	out.Reset()
	if err := app.Run(context.Background(), []string{"migrate"}, getenv, app.IO{Stdout: &out, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "applied 0 migration") {
		t.Fatalf("second migrate must change nothing, printed %q", out.String())
	}
	gw := start(t, env, "serve")
	if code, _ := get(t, "http://"+gw.Addr+"/readyz"); code != 200 {
		t.Fatalf("/readyz on SQLite = %d", code)
	}
}

func TestBadConfigurationNamesEveryProblem(t *testing.T) {
	t.Parallel()
	err := app.Run(context.Background(), []string{"serve"}, func(string) string { return "" }, app.IO{Stdout: io.Discard, Stderr: io.Discard})
	if err == nil {
		t.Fatal("serve with an empty environment must fail")
	}
	for _, v := range []string{"WXGATE_SECRET_KEY", "WXGATE_ADMIN_TOKEN", "WXGATE_COMPONENT_APPID", "WXGATE_COMPONENT_SECRET", "WXGATE_COMPONENT_TOKEN", "WXGATE_COMPONENT_AES_KEY"} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("error does not name %s: %v", v, err)
		}
	}
}

// TestListenProblemsComeBeforeMigrations occupies the listen address: serve
// must say so and leave the (new) database untouched.
func TestListenProblemsComeBeforeMigrations(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dbPath := filepath.Join(t.TempDir(), "never.db")
	env := gatewayEnv("sqlite:"+dbPath, "http://127.0.0.1:1")
	env["WXGATE_LISTEN"] = busy.Addr().String()
	err = app.Run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, app.IO{Stdout: io.Discard, Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "WXGATE_LISTEN") {
		t.Fatalf("serve on a busy address: %v, want an error naming WXGATE_LISTEN", err)
	}
	if _, statErr := os.Stat(dbPath); !errors.Is(statErr, os.ErrNotExist) {
		t.Fatalf("the database was opened before the listen problem was found (stat: %v)", statErr)
	}
}

func TestCommandsHaveHelpAndUsageErrors(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"serve", "migrate", "sim", "demo", "bench", "version", "healthcheck"} {
		var out bytes.Buffer
		if err := app.Run(context.Background(), []string{cmd, "--help"}, func(string) string { return "" }, app.IO{Stdout: &out, Stderr: io.Discard}); err != nil {
			t.Errorf("%s --help: %v", cmd, err)
		}
		if !strings.Contains(out.String(), "Usage: wxgate "+cmd) {
			t.Errorf("%s --help printed %q", cmd, out.String())
		}
	}
	var help bytes.Buffer
	if err := app.Run(context.Background(), []string{"serve", "--help"}, func(string) string { return "" }, app.IO{Stdout: &help, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"WXGATE_DATABASE_URL (default \"sqlite:wxgate.db\")", "WXGATE_SECRET_KEY (required)", "openssl rand -base64 32", "WXGATE_TRUSTED_PROXIES"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("serve --help does not list %q:\n%s", want, help.String())
		}
	}
	err := app.Run(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, app.IO{Stdout: io.Discard, Stderr: io.Discard})
	if !errors.Is(err, app.ErrUsage) {
		t.Fatalf("unknown command: %v", err)
	}
	var out bytes.Buffer
	if err := app.Run(context.Background(), []string{"version"}, nil, app.IO{Stdout: &out, Stderr: io.Discard}); err != nil || !strings.HasPrefix(out.String(), "wxgate ") {
		t.Fatalf("version: %q %v", out.String(), err)
	}
}

// TestReplicasMigratingAtOnce starts four `wxgate migrate` processes on one
// empty PostgreSQL schema at the same moment: all succeed, exactly one
// applies the migrations, and a gateway then serves on the schema.
func TestReplicasMigratingAtOnce(t *testing.T) {
	t.Parallel()
	dbURL := storetest.NewURL(t, "postgres")
	env := gatewayEnv(dbURL, "http://127.0.0.1:1")
	const n = 4
	outs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "migrate")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), asWxgate + "=1"}
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.Output()
			outs[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	applied := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("migrate process %d: %v (%q)", i, errs[i], outs[i])
		}
		if !strings.HasPrefix(outs[i], "applied 0 migration") {
			applied++
		}
	}
	if applied != 1 {
		t.Fatalf("%d processes applied migrations, want exactly 1: %q", applied, outs)
	}
	gw := start(t, env, "serve")
	if code, _ := get(t, "http://"+gw.Addr+"/readyz"); code != 200 {
		t.Fatalf("/readyz after the concurrent migrations = %d", code)
	}
}
