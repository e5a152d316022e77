package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/wxgate/wxgate/internal/app"
)

// The operator console in a real browser: headless Chromium drives
// `wxgate demo` (gateway + simulator in one process) through sign-in,
// tenants, keys, an authorization completed on the simulator's own page,
// the new account in the list, a refused CSRF-less form, sign-out and the
// demo's one-click sign-in link, and another third-party platform
// registered while it runs. Every page is checked for Content-Security-
// Policy violations. With WXGATE_SCREENSHOTS set, screenshots are written
// there (make screenshots: docs/img/console/).

// chromiumPath finds the browser: WXGATE_CHROMIUM, else Debian's chromium.
func chromiumPath() string {
	if p := os.Getenv("WXGATE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// syncBuffer collects a process's stdout.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// demoRun is a running `wxgate demo` and what its banner said.
type demoRun struct {
	Gateway, Sim, Console, SignIn, Admin, Tenant, Key string
	// Banner is everything the demo printed when it was ready; Out all it
	// prints (the webhook receiver's lines keep coming).
	Banner string
	// Out is what the demo prints (the banner, written while it is read).
	Out *syncBuffer
	// Hook is the demo's webhook receiver.
	Hook string
}

func startDemo(t *testing.T) demoRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, logs := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--sim-listen", "127.0.0.1:0", "--hook-listen", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "demo.db")},
			func(string) string { return "" }, app.IO{Stdout: out, Stderr: logs})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("demo did not stop within 30 s")
		}
	})
	field := func(re string) string {
		m := regexp.MustCompile(re).FindStringSubmatch(out.String())
		if m == nil {
			return ""
		}
		return m[1]
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "export ADMIN=") {
		select {
		case err := <-done:
			t.Fatalf("demo exited: %v\n%s\n%s", err, out, logs)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo not ready within 60 s:\n%s\n%s", out, logs)
		}
	}
	d := demoRun{
		Gateway: field(`gateway\s+(http://\S+)`), Sim: field(`simulator\s+(http://\S+)`), Console: field(`console\s+(http://\S+)`),
		SignIn: field(`(http://\S+/console/signin/code\?code=\S+)`), Admin: field(`export ADMIN='([^']+)'`), Key: field(`export KEY='([^']+)'`),
		Tenant: field(`export TENANT='([^']+)'`), Banner: out.String(), Out: out,
		Hook: field(`webhook\s+(http://\S+)`),
	}
	if d.Gateway == "" || d.Sim == "" || d.Console != d.Gateway+"/console/" || d.SignIn == "" || d.Admin == "" || d.Key == "" {
		t.Fatalf("banner lacks the console URL, its sign-in link or the credentials: %+v\n%s", d, out)
	}
	return d
}

// stepTimeout bounds one browser action, generously: it is a liveness
// bound for a loaded machine running the race detector, not a performance
// figure.
const stepTimeout = 60 * time.Second

// cspProbe records Content-Security-Policy violations on every page.
const cspProbe = `window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) { window.__csp.push(e.violatedDirective + " " + e.blockedURI); });`

func TestConsoleInBrowser(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("Chromium is required for the console's browser tests: apt-get install -y chromium (.ci/run does)")
		}
		t.Skip("Chromium not found: install it with `apt-get install -y chromium` (or set WXGATE_CHROMIUM) to run the console's browser tests")
	}
	shots := os.Getenv("WXGATE_SCREENSHOTS")
	if shots != "" {
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	demo := startDemo(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// Accept the console's confirm() dialogs (revoke, delete, unbind).
	dialogs := chromedp.Events(browser, page.JavascriptDialogOpening)
	if _, err := chromedp.Call(browser, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspProbe}); err != nil {
		t.Fatalf("start Chromium (%s): %v", chromium, err)
	}
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(browser, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()

	// do runs the actions with a bounded wait, failing the step with err.
	do := func(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, stepTimeout)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			loc, _ := chromedp.Run(browser, chromedp.Location())
			t.Fatalf("at %s: %v", loc, err)
		}
	}
	text := func(t *testing.T, sel string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, stepTimeout)
		defer cancel()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	location := func(t *testing.T) string {
		t.Helper()
		loc, err := chromedp.Run(browser, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
	noViolations := func(t *testing.T) {
		t.Helper()
		v, err := chromedp.Run(browser, chromedp.Evaluate[[]string](`window.__csp || []`))
		if err != nil {
			t.Fatal(err)
		}
		if len(v) > 0 {
			t.Fatalf("Content-Security-Policy violations on %s: %v", location(t), v)
		}
	}
	shot := func(t *testing.T, name string) {
		t.Helper()
		if shots == "" {
			return
		}
		png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	api := func(method, path, bearer string, body any) int {
		var r *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		} else {
			r = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, path, r)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// step runs one step of the journey; the next ones need it to pass.
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	// Some traffic for the usage page and the per-minute chart: three
	// successful calls and two refused locally (permission set missing).
	for _, appid := range []string{"wxd000000000c0ffee", "wxd000000000c0ffee", "wxd00000000000b00c", "wxd0000000000bread", "wxd0000000000bread"} {
		api(http.MethodGet, demo.Gateway+"/v1/authorizers/"+appid+"/fans", demo.Key, nil)
	}

	step("signed out, the console asks for the admin token and refuses a wrong one", func(t *testing.T) {
		do(t, chromedp.Navigate(demo.Console+"tenants"), chromedp.WaitVisible(chromedp.ID("token")))
		if loc := location(t); !strings.Contains(loc, "/console/signin?next=") {
			t.Fatalf("location: got %s want the sign-in page", loc)
		}
		shot(t, "signin")
		do(t, chromedp.SendKeys(chromedp.ID("token"), "not-the-admin-token"), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("error")))
		if got := text(t, "#error"); !strings.Contains(got, "not the admin token") {
			t.Fatalf("error: got %q", got)
		}
		noViolations(t)
	})

	step("sign in", func(t *testing.T) {
		do(t, chromedp.SetValue(chromedp.ID("token"), demo.Admin), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("create-tenant")))
		if loc := location(t); loc != demo.Console+"tenants" {
			t.Fatalf("after sign-in: got %s want the page asked for", loc)
		}
		noViolations(t)
	})

	var tenantURL string
	step("create a tenant", func(t *testing.T) {
		do(t, chromedp.SendKeys(chromedp.ID("tenant-name"), "Browser Bistro Group"), chromedp.Submit(chromedp.ID("tenant-name")),
			chromedp.WaitVisible(chromedp.ID("tenant-title")))
		if got := text(t, "#tenant-title"); got != "Browser Bistro Group" {
			t.Fatalf("tenant title: got %q", got)
		}
		tenantURL = strings.SplitN(location(t), "?", 2)[0]
		noViolations(t)
	})

	var key, kid string
	step("issue a key, shown once, that works", func(t *testing.T) {
		do(t, chromedp.SendKeys(chromedp.ID("key-name"), "browser test"), chromedp.Click(chromedp.ID("issue")), chromedp.WaitVisible(chromedp.ID("new-key")))
		var err error
		if key, err = chromedp.Run(browser, chromedp.Value(chromedp.ID("new-key"))); err != nil {
			t.Fatal(err)
		}
		kid = text(t, "#new-kid")
		shot(t, "key")
		if code := api(http.MethodGet, demo.Gateway+"/v1/authorizers", key, nil); code != http.StatusOK {
			t.Fatalf("the new key: got %d want 200", code)
		}
		noViolations(t)
	})

	step("revoke the key", func(t *testing.T) {
		do(t, chromedp.Click(chromedp.ID("back-to-tenant")), chromedp.WaitVisible(chromedp.CSS("#key-"+kid+" button")))
		do(t, chromedp.Click(chromedp.CSS("#key-"+kid+" button")), chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
		if got := text(t, "#key-"+kid); !strings.Contains(got, "revoked") {
			t.Fatalf("key row: got %q want revoked", got)
		}
		if code := api(http.MethodGet, demo.Gateway+"/v1/authorizers", key, nil); code != http.StatusUnauthorized {
			t.Fatalf("the revoked key: got %d want 401", code)
		}
		shot(t, "tenant")
		noViolations(t)
	})

	step("make an authorization link with a QR code", func(t *testing.T) {
		if code := api(http.MethodPost, demo.Sim+"/sim/accounts", "", map[string]any{"appid": "wxb00000000b157a00", "nick_name": "Browser Bistro",
			"followers": 42, "permission_sets": []int{1, 2, 7}}); code/100 != 2 {
			t.Fatalf("create the simulated account: got %d", code)
		}
		id := tenantURL[strings.LastIndex(tenantURL, "/")+1:]
		do(t, chromedp.Navigate(demo.Console+"authorize?tenant="+id), chromedp.Click(chromedp.ID("make-link")), chromedp.WaitVisible(chromedp.ID("qr")))
		src, err := chromedp.Run(browser, chromedp.AttributeValue(chromedp.ID("qr"), "src"))
		if err != nil || !strings.HasPrefix(src.Value, "data:image/png;base64,") {
			t.Fatalf("QR code: got %.40q, %v", src.Value, err)
		}
		shot(t, "authorize")
		noViolations(t)
	})

	step("complete the authorization on the simulator's page", func(t *testing.T) {
		do(t, chromedp.Click(chromedp.ID("pc-link")), chromedp.WaitVisible(chromedp.CSS(`input[value="wxb00000000b157a00"]`)))
		if loc := location(t); !strings.HasPrefix(loc, demo.Sim+"/cgi-bin/componentloginpage") {
			t.Fatalf("the link opened %s, not the simulator's authorization page", loc)
		}
		do(t, chromedp.Click(chromedp.CSS(`input[value="wxb00000000b157a00"]`)), chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("done-ok")))
		if loc := location(t); !strings.HasPrefix(loc, demo.Console+"authorize/done?") {
			t.Fatalf("after authorizing: got %s want the console's landing page", loc)
		}
		shot(t, "done")
	})

	step("the account appears with its permission sets and tenant", func(t *testing.T) {
		do(t, chromedp.Navigate(demo.Console+"accounts"), chromedp.WaitVisible(chromedp.CSS(`tr[data-appid="wxb00000000b157a00"]`)))
		shot(t, "accounts")
		row := text(t, `tr[data-appid="wxb00000000b157a00"]`)
		for _, want := range []string{"Browser Bistro", "authorized", "Message management", "User management", "Broadcasts and notifications", "Browser Bistro Group"} {
			if !strings.Contains(row, want) {
				t.Errorf("account row %q lacks %q", row, want)
			}
		}
		// Typing in the search box narrows the list in place (htmx).
		do(t, chromedp.SendKeys(chromedp.CSS(`input[name="q"]`), "bistro"),
			chromedp.WaitNotPresent(chromedp.CSS(`tr[data-appid="wxd000000000c0ffee"]`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-appid="wxb00000000b157a00"]`)))
		if loc := location(t); !strings.Contains(loc, "q=bistro") {
			t.Errorf("the search is not in the URL: %s", loc)
		}
		do(t, chromedp.Click(chromedp.CSS(`tr[data-appid="wxb00000000b157a00"] a`)), chromedp.WaitVisible(chromedp.ID("refresh-form")))
		shot(t, "account")
		noViolations(t)
	})

	step("a second tenant's authorization of the account waits for approval, given here", func(t *testing.T) {
		do(t, chromedp.Navigate(demo.Console+"tenants"), chromedp.SendKeys(chromedp.ID("tenant-name"), "Second Bistro"),
			chromedp.Submit(chromedp.ID("tenant-name")), chromedp.WaitVisible(chromedp.ID("tenant-title")))
		second := strings.SplitN(location(t), "?", 2)[0]
		id := second[strings.LastIndex(second, "/")+1:]
		do(t, chromedp.Navigate(demo.Console+"authorize?tenant="+id), chromedp.Click(chromedp.ID("make-link")), chromedp.WaitVisible(chromedp.ID("pc-link")),
			chromedp.Click(chromedp.ID("pc-link")), chromedp.WaitVisible(chromedp.CSS(`input[value="wxb00000000b157a00"]`)),
			chromedp.Click(chromedp.CSS(`input[value="wxb00000000b157a00"]`)), chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("done-pending")))
		do(t, chromedp.Navigate(demo.Console+"accounts"), chromedp.WaitVisible(chromedp.ID("pending-notice")))
		if got := text(t, `tr[data-appid="wxb00000000b157a00"]`); !strings.Contains(got, "Second Bistro · waiting") {
			t.Fatalf("account row: got %q want the second tenant waiting", got)
		}
		do(t, chromedp.Navigate(demo.Console+"accounts/wxb00000000b157a00"), chromedp.WaitVisible(chromedp.CSS(`[data-pending="`+id+`"] button`)))
		shot(t, "pending")
		do(t, chromedp.Click(chromedp.CSS(`[data-pending="`+id+`"] button`)), chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
		if got := text(t, "main"); !strings.Contains(got, "Second Bistro") || strings.Contains(got, "Waiting for approval") {
			t.Fatalf("after approving: got %q want the second tenant bound, nothing waiting", got)
		}
		noViolations(t)
	})

	step("usage per tenant and API, with a chart", func(t *testing.T) {
		do(t, chromedp.Navigate(demo.Console+"usage"), chromedp.SetValue(chromedp.CSS(`select[name="tenant"]`), "", chromedp.NodeVisible))
		opts, err := chromedp.Run(browser, chromedp.Evaluate[string](`[...document.querySelectorAll('select[name="tenant"] option')].find(o => o.text === "demo").value`))
		if err != nil {
			t.Fatal(err)
		}
		do(t, chromedp.Navigate(demo.Console+"usage?tenant="+opts+"&range=24h"), chromedp.WaitVisible(chromedp.CSS(".chart .uplot")))
		if got := text(t, "#usage-totals"); !strings.Contains(got, "getFans") {
			t.Fatalf("usage table: got %q", got)
		}
		shot(t, "usage")
		noViolations(t)
	})

	step("webhooks: the queue, the demo tenant's webhook and its delivered events", func(t *testing.T) {
		do(t, chromedp.Navigate(demo.Console+"webhooks"), chromedp.WaitVisible(chromedp.ID("webhook-queue")))
		if got := text(t, "#webhooks-list"); !strings.Contains(got, demo.Hook+"/wxgate") || !strings.Contains(got, "demo") {
			t.Fatalf("webhook list: got %q want the demo tenant's receiver", got)
		}
		// The dispatcher delivers in the background: wait for a delivered row.
		deadline := time.Now().Add(20 * time.Second)
		for {
			do(t, chromedp.Navigate(demo.Console+"webhooks?tenant="+demo.Tenant), chromedp.WaitVisible(chromedp.ID("deliveries")))
			if got := text(t, "#deliveries"); strings.Contains(got, "delivered") && strings.Contains(got, "authorizer.") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("deliveries: got %q want a delivered authorizer event", text(t, "#deliveries"))
			}
			time.Sleep(time.Second)
		}
		shot(t, "webhooks")
		noViolations(t)
	})

	step("quota: what the first calls learned, and a clear on the account's page", func(t *testing.T) {
		do(t, chromedp.Navigate(demo.Console+"quota"), chromedp.WaitVisible(chromedp.CSS(`tr[data-quota="wxd000000000c0ffee/getFans"]`)))
		if got := text(t, `tr[data-quota="wxd000000000c0ffee/getFans"]`); !strings.Contains(got, "getFans") || !strings.Contains(got, "%") {
			t.Fatalf("quota row: got %q", got)
		}
		shot(t, "quota")
		do(t, chromedp.Navigate(demo.Console+"accounts/wxd000000000c0ffee"), chromedp.WaitVisible(chromedp.ID("clear-quota")),
			chromedp.Click(chromedp.CSS("#clear-quota button")), chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
		if got := text(t, ".flash.ok"); !strings.Contains(got, "Quota cleared") {
			t.Fatalf("after clearing: got %q", got)
		}
		if got := text(t, `tr[data-quota="getFans"]`); !strings.Contains(got, "100%") {
			t.Fatalf("getFans after the clear: got %q want all of it left", got)
		}
		noViolations(t)
	})

	step("a form without its CSRF token is refused", func(t *testing.T) {
		do(t, chromedp.Navigate(tenantURL), chromedp.WaitVisible(chromedp.ID("rename-form")),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('#rename-form input[name="csrf"]').remove()`),
			chromedp.SetValue(chromedp.ID("rename"), "Renamed by a forged form"), chromedp.Submit(chromedp.ID("rename")),
			chromedp.WaitVisible(chromedp.ID("error")))
		if got := text(t, "#error"); !strings.Contains(got, "security token") {
			t.Fatalf("error: got %q", got)
		}
		do(t, chromedp.Navigate(tenantURL), chromedp.WaitVisible(chromedp.ID("tenant-title")))
		if got := text(t, "#tenant-title"); got != "Browser Bistro Group" {
			t.Fatalf("the forged form renamed the tenant to %q", got)
		}
	})

	step("the overview shows the platform, in English and Chinese", func(t *testing.T) {
		// The five calls made at the start reach the chart with the usage
		// flusher (every 10 s), from the store.
		deadline := time.Now().Add(20 * time.Second)
		for {
			do(t, chromedp.Navigate(demo.Console+"?window=1h"), chromedp.WaitVisible(chromedp.CSS("#overview .uplot")))
			got := text(t, "#call-totals")
			if strings.HasPrefix(got, "5 calls, 2 errors") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("call totals: got %q want 5 calls, 2 errors", got)
			}
			time.Sleep(time.Second)
		}
		// Four accounts on the default platform, and Demo Coffee's
		// authorization of the demo's second platform.
		if got := text(t, "#accounts-by-status"); !strings.Contains(got, "5") {
			t.Errorf("accounts card: got %q want 5 accounts over both platforms", got)
		}
		if got := text(t, "#platform-wxd0c0000000000002"); !strings.Contains(got, "1") {
			t.Errorf("the demo's second platform: got %q want its one account", got)
		}
		shot(t, "overview")
		do(t, chromedp.Click(chromedp.CSS("a.lang")), chromedp.WaitVisible(chromedp.CSS("#overview .uplot")))
		if got := text(t, "nav.nav"); !strings.Contains(got, "概览") || !strings.Contains(got, "租户") {
			t.Fatalf("after switching: nav %q", got)
		}
		shot(t, "overview-zh")
		do(t, chromedp.Click(chromedp.CSS("a.lang")), chromedp.WaitVisible(chromedp.CSS("#overview .uplot")))
		noViolations(t)
	})

	step("another platform: registered, a tenant on it authorizes an account, every platform on the overview, its accounts picked", func(t *testing.T) {
		// The demo runs two platforms; the operator registers a third here.
		// WeChat (the demo's simulator) serves it and pushes to its own
		// event URL.
		if code := api(http.MethodPost, demo.Sim+"/sim/components", "", map[string]any{"appid": secondComponent, "secret": secondSecret,
			"token": secondToken, "aes_key": secondAESKey, "event_url": demo.Gateway + "/wechat/components/" + secondComponent + "/events"}); code != http.StatusCreated {
			t.Fatalf("add the platform to the simulator: got %d", code)
		}
		if code := api(http.MethodPost, demo.Gateway+"/admin/components", demo.Admin, map[string]any{"appid": secondComponent, "secret": secondSecret,
			"token": secondToken, "aes_key": secondAESKey}); code != http.StatusCreated {
			t.Fatalf("POST /admin/components: got %d", code)
		}
		if code := api(http.MethodPost, demo.Sim+"/sim/ticket?component_appid="+secondComponent, "", nil); code != http.StatusOK {
			t.Fatalf("push the new platform's ticket: got %d", code)
		}

		do(t, chromedp.Navigate(demo.Console+"tenants"), chromedp.WaitVisible(chromedp.ID("tenant-platform")))
		if got, err := chromedp.Run(browser, chromedp.Value(chromedp.ID("tenant-platform"))); err != nil || got == secondComponent {
			t.Fatalf("the platform preselected: got %q, %v want the default", got, err)
		}
		do(t, chromedp.SetValue(chromedp.ID("tenant-platform"), secondComponent), chromedp.SendKeys(chromedp.ID("tenant-name"), "Second Platform Bistro"),
			chromedp.Submit(chromedp.ID("tenant-name")), chromedp.WaitVisible(chromedp.ID("tenant-title")))
		if got := text(t, "#tenant-platform"); !strings.Contains(got, secondComponent) {
			t.Fatalf("the new tenant's platform: got %q want %s", got, secondComponent)
		}
		tenant := strings.SplitN(location(t), "?", 2)[0]
		id := tenant[strings.LastIndex(tenant, "/")+1:]

		// The tenant's link is its platform's: the simulator's page asks to
		// authorize that platform, and the account joins its accounts.
		do(t, chromedp.Navigate(demo.Console+"authorize?tenant="+id), chromedp.Click(chromedp.ID("make-link")), chromedp.WaitVisible(chromedp.ID("pc-link")))
		if got, err := chromedp.Run(browser, chromedp.Value(chromedp.ID("pc-url"))); err != nil || !strings.Contains(got, "component_appid="+secondComponent) {
			t.Fatalf("the authorization link: got %q, %v want the new platform's", got, err)
		}
		do(t, chromedp.Click(chromedp.ID("pc-link")), chromedp.WaitVisible(chromedp.CSS(`input[value="wxb00000000b157a00"]`)),
			chromedp.Click(chromedp.CSS(`input[value="wxb00000000b157a00"]`)), chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("done-ok")))

		do(t, chromedp.Navigate(demo.Console), chromedp.WaitVisible(chromedp.ID("platform-"+secondComponent)))
		if got := text(t, "#platforms"); !strings.Contains(got, secondComponent) || !strings.Contains(got, "default") {
			t.Fatalf("platforms on the overview: got %q want the default and the new one", got)
		}
		shot(t, "overview-platforms")

		do(t, chromedp.Navigate(demo.Console+"accounts"), chromedp.WaitVisible(chromedp.CSS(`tr[data-appid="wxd000000000c0ffee"]`)),
			chromedp.Click(chromedp.CSS(`#platform-picker a[data-platform="`+secondComponent+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-appid="wxb00000000b157a00"]`)), chromedp.WaitNotPresent(chromedp.CSS(`tr[data-appid="wxd000000000c0ffee"]`)))
		if loc := location(t); !strings.Contains(loc, "platform="+secondComponent) {
			t.Errorf("the platform picked is not in the URL: %s", loc)
		}
		if got := text(t, `tr[data-appid="wxb00000000b157a00"]`); !strings.Contains(got, "Second Platform Bistro") || strings.Contains(got, "Browser Bistro Group") {
			t.Fatalf("the account on the new platform: got %q want its tenant there only", got)
		}
		shot(t, "accounts-platform")
		// The account authorized two platforms: its page on the default
		// one links to its page on the new one.
		do(t, chromedp.Navigate(demo.Console+"accounts/wxb00000000b157a00"), chromedp.WaitVisible(chromedp.ID("also-on")),
			chromedp.Click(chromedp.CSS(`#also-on a[data-platform="`+secondComponent+`"]`)), chromedp.WaitVisible(chromedp.ID("account-platform")))
		if got := text(t, "#account-platform"); !strings.Contains(got, secondComponent) {
			t.Fatalf("the account's page on the new platform: got %q", got)
		}
		if got := text(t, "#tenants"); !strings.Contains(got, "Second Platform Bistro") || strings.Contains(got, "Browser Bistro Group") {
			t.Fatalf("the account's tenants on the new platform: got %q want its tenant there only", got)
		}
		noViolations(t)
	})

	step("sign out", func(t *testing.T) {
		do(t, chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")))
		do(t, chromedp.Navigate(demo.Console+"accounts"), chromedp.WaitVisible(chromedp.ID("token")))
		if loc := location(t); !strings.Contains(loc, "/console/signin") {
			t.Fatalf("signed out, /console/accounts went to %s", loc)
		}
	})

	step("the demo's one-click link signs in once", func(t *testing.T) {
		do(t, chromedp.Navigate(demo.SignIn), chromedp.WaitVisible(chromedp.ID("accounts-by-status")))
		do(t, chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")))
		do(t, chromedp.Navigate(demo.SignIn), chromedp.WaitVisible(chromedp.ID("error")))
		if got := text(t, "#error"); !strings.Contains(got, "already used") {
			t.Fatalf("second use: got %q", got)
		}
		noViolations(t)
	})
}
