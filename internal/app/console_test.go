package app

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// The console's security properties, through the real router of replicas
// built by the composition root over one store, with an injected clock.
// The browser journey is in console_e2e_test.go.

const consoleAdminToken = "console-admin-token-0123456789abcdef"

// consoleReplica wires a gateway replica over st as `wxgate serve` does
// (no workers: the tests drive the clock themselves).
func consoleReplica(t testing.TB, st *store.Store, now func() time.Time, publicURL string) *gateway {
	t.Helper()
	env := map[string]string{
		"WXGATE_PUBLIC_URL":        publicURL,
		"WXGATE_SECRET_KEY":        base64.StdEncoding.EncodeToString(storetest.Key()),
		"WXGATE_ADMIN_TOKEN":       consoleAdminToken,
		"WXGATE_COMPONENT_APPID":   "wx1234567890abcdef",
		"WXGATE_COMPONENT_SECRET":  "console-test-secret",
		"WXGATE_COMPONENT_TOKEN":   "console-test-token",
		"WXGATE_COMPONENT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		// Nothing listens there: no test here reaches WeChat.
		"WXGATE_WECHAT_API_URL": "http://127.0.0.1:9",
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, "", config.NeedGateway)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := newGateway(context.Background(), cfg, st, slog.New(slog.DiscardHandler), now)
	if err != nil {
		t.Fatal(err)
	}
	return gw
}

// browser is a minimal cookie-keeping client of one replica's handler.
type browser struct {
	t       testing.TB
	h       http.Handler
	ip      string
	cookies map[string]*http.Cookie
	header  http.Header // extra request headers
}

func newBrowser(t testing.TB, gw *gateway) *browser {
	return &browser{t: t, h: gw.handler, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}, header: http.Header{}}
}

// on returns a browser with the same cookies talking to another replica.
func (b *browser) on(gw *gateway) *browser {
	c := *b
	c.h = gw.handler
	return &c
}

func (b *browser) do(method, path string, form url.Values) *http.Response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = b.ip + ":40000"
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	for _, c := range b.cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	resp := rec.Result()
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return resp
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	resp := b.do(http.MethodGet, path, nil)
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	resp := b.do(http.MethodPost, path, form)
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

var (
	csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	formInput = regexp.MustCompile(`name="form" value="([^"]+)"`)
)

// signIn signs in with token and returns the answer to the form post.
func (b *browser) signIn(token string) *http.Response {
	b.t.Helper()
	_, page := b.get("/console/signin")
	m := formInput.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("sign-in page without its form token:\n%s", page)
	}
	resp, _ := b.post("/console/signin", url.Values{"form": {m[1]}, "token": {token}, "next": {"/console/tenants"}})
	return resp
}

// csrf reads the CSRF token of a signed-in page.
func (b *browser) csrf() string {
	b.t.Helper()
	_, page := b.get("/console/tenants")
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no CSRF token on the tenants page:\n%s", page)
	}
	return m[1]
}

func wantStatus(t testing.TB, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("status: got %d want %d (Location %q)", resp.StatusCode, want, resp.Header.Get("Location"))
	}
}

func wantLocation(t testing.TB, resp *http.Response, want string) {
	t.Helper()
	if got := resp.Header.Get("Location"); got != want {
		t.Fatalf("Location: got %q want %q", got, want)
	}
}

func sessionDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func TestConsoleSecurity(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			testConsoleSecurity(t, dialect)
		})
	}
}

func testConsoleSecurity(t *testing.T, dialect store.Dialect) {
	clock := storetest.NewClock()
	st := storetest.Open(t, dialect, clock.Now)
	a := consoleReplica(t, st, clock.Now, "http://gw.test")
	b := consoleReplica(t, st, clock.Now, "http://gw.test")
	ctx := context.Background()

	t.Run("every answer carries the security headers", func(t *testing.T) {
		for _, path := range []string{"/console/signin", "/console/tenants", "/console/nowhere", "/console/static/console.css"} {
			resp, _ := newBrowser(t, a).get(path)
			h := resp.Header
			if got := h.Get("Content-Security-Policy"); got != "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'" {
				t.Errorf("%s: CSP: got %q", path, got)
			}
			for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
				if got := h.Get(k); got != want {
					t.Errorf("%s: %s: got %q want %q", path, k, got, want)
				}
			}
		}
		_, page := newBrowser(t, a).get("/console/signin")
		if strings.Contains(page, "<script>") || strings.Contains(page, " style=") || strings.Contains(page, "<style") {
			t.Errorf("the sign-in page has inline script or style:\n%s", page)
		}
	})

	t.Run("signed out, pages send to sign-in and back", func(t *testing.T) {
		br := newBrowser(t, a)
		resp, _ := br.get("/console/accounts?q=x")
		wantStatus(t, resp, http.StatusSeeOther)
		wantLocation(t, resp, "/console/signin?next=%2Fconsole%2Faccounts%3Fq%3Dx")
		resp, _ = br.post("/console/tenants", url.Values{"name": {"x"}})
		wantStatus(t, resp, http.StatusSeeOther)
		br.header.Set("HX-Request", "true")
		resp, _ = br.get("/console/accounts")
		wantStatus(t, resp, http.StatusUnauthorized)
		if resp.Header.Get("HX-Redirect") == "" {
			t.Error("htmx request without HX-Redirect")
		}
	})

	t.Run("a wrong admin token is refused", func(t *testing.T) {
		br := newBrowser(t, a)
		br.ip = "192.0.2.20"
		resp := br.signIn(consoleAdminToken + "x")
		wantStatus(t, resp, http.StatusUnauthorized)
		if _, ok := br.cookies["wxgate_console"]; ok {
			t.Error("a refused sign-in set a session cookie")
		}
	})

	t.Run("the sign-in form needs its pairing cookie", func(t *testing.T) {
		br := newBrowser(t, a)
		br.ip = "192.0.2.21"
		_, page := br.get("/console/signin")
		form := formInput.FindStringSubmatch(page)[1]
		delete(br.cookies, "wxgate_console_signin")
		resp, _ := br.post("/console/signin", url.Values{"form": {form}, "token": {consoleAdminToken}})
		wantStatus(t, resp, http.StatusForbidden)
	})

	br := newBrowser(t, a)
	t.Run("sign-in sets an HttpOnly SameSite=Strict cookie and stores only its digest", func(t *testing.T) {
		resp := br.signIn(consoleAdminToken)
		wantStatus(t, resp, http.StatusSeeOther)
		wantLocation(t, resp, "/console/tenants")
		ck := br.cookies["wxgate_console"]
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/console" {
			t.Fatalf("session cookie: got %+v", ck)
		}
		if _, err := st.GetConsoleToken(ctx, store.ConsoleSession, sessionDigest(ck.Value)); err != nil {
			t.Fatalf("no session stored under the token's digest: %v", err)
		}
		if _, err := st.GetConsoleToken(ctx, store.ConsoleSession, ck.Value); err == nil {
			t.Fatal("the token itself is stored")
		}
		resp, page := br.get("/console/tenants")
		wantStatus(t, resp, http.StatusOK)
		if strings.Contains(page, consoleAdminToken) || strings.Contains(page, ck.Value) {
			t.Fatal("a page shows the admin token or the session token")
		}
	})

	t.Run("the session works on every replica", func(t *testing.T) {
		resp, _ := br.on(b).get("/console/accounts")
		wantStatus(t, resp, http.StatusOK)
	})

	csrf := br.csrf()
	t.Run("state changes need the session's CSRF token", func(t *testing.T) {
		other := newBrowser(t, b)
		other.ip = "192.0.2.30"
		wantStatus(t, other.signIn(consoleAdminToken), http.StatusSeeOther)
		foreign := other.csrf()
		if foreign == csrf {
			t.Fatal("two sessions share a CSRF token")
		}
		for name, form := range map[string]url.Values{
			"none":    {"name": {"forged"}},
			"wrong":   {"name": {"forged"}, "csrf": {csrf[:len(csrf)-2] + "xx"}},
			"foreign": {"name": {"forged"}, "csrf": {foreign}},
		} {
			resp, page := br.post("/console/tenants", form)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, `id="error"`) {
				t.Errorf("%s: got %d want 403 with the error page", name, resp.StatusCode)
			}
		}
		cross := br.on(a)
		cross.header = http.Header{"Sec-Fetch-Site": {"cross-site"}}
		resp, _ := cross.post("/console/tenants", url.Values{"name": {"forged"}, "csrf": {csrf}})
		wantStatus(t, resp, http.StatusForbidden)
		list, _ := st.ListTenants(ctx, "wx1234567890abcdef")
		if len(list) != 0 {
			t.Fatalf("a refused form created a tenant: %+v", list)
		}
		htmx := br.on(a)
		htmx.header = http.Header{"X-Csrf-Token": {csrf}}
		resp, _ = htmx.post("/console/tenants", url.Values{"name": {"acme"}})
		wantStatus(t, resp, http.StatusSeeOther)
	})

	t.Run("a new key is shown once, on a page that is not cached", func(t *testing.T) {
		list, _ := st.ListTenants(ctx, "wx1234567890abcdef")
		if len(list) != 1 {
			t.Fatalf("tenants: got %d want 1", len(list))
		}
		path := "/console/tenants/" + list[0].ID
		resp, page := br.post(path+"/keys", url.Values{"csrf": {csrf}, "name": {"ci"}})
		wantStatus(t, resp, http.StatusCreated)
		m := regexp.MustCompile(`id="new-key" class="mono grow" value="([^"]+)"`).FindStringSubmatch(page)
		if m == nil || strings.Count(m[1], ".") != 2 {
			t.Fatalf("no key on the page:\n%s", page)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control: got %q", resp.Header.Get("Cache-Control"))
		}
		if _, again := br.get(path); strings.Contains(again, m[1]) {
			t.Fatal("the tenant page shows the key again")
		}
	})

	t.Run("no page shows an account's tokens", func(t *testing.T) {
		_, err := st.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: "wx1234567890abcdef", AppID: "wxaaaaaaaaaaaaaaa1",
			AccessToken: secret.Value("ACCESS-TOKEN-MUST-NOT-SHOW"), RefreshToken: secret.Value("REFRESH-TOKEN-MUST-NOT-SHOW"),
			TokenExpiresAt: clock.Now().Add(2 * time.Hour), TokenRefreshedAt: clock.Now(), PermissionSets: []int{1, 2, 100}, NickName: "Shop"}, "")
		if err != nil {
			t.Fatal(err)
		}
		fresh := consoleReplica(t, st, clock.Now, "http://gw.test") // loads the account
		for _, path := range []string{"/console/", "/console/accounts", "/console/accounts/wxaaaaaaaaaaaaaaa1", "/console/accounts?q=shop"} {
			resp, page := br.on(fresh).get(path)
			wantStatus(t, resp, http.StatusOK)
			if strings.Contains(page, "MUST-NOT-SHOW") {
				t.Fatalf("%s shows a token", path)
			}
			if path != "/console/" && (!strings.Contains(page, "User management") || !strings.Contains(page, "#100")) {
				t.Errorf("%s: permission sets not shown by name", path)
			}
		}
	})

	t.Run("sign-in goes back only to console pages", func(t *testing.T) {
		for _, next := range []string{"//evil.example/console/", "https://evil.example/", "/console//evil.example", "/console\\evil"} {
			o := newBrowser(t, a)
			o.ip = "192.0.2.40"
			_, page := o.get("/console/signin")
			resp, _ := o.post("/console/signin", url.Values{"form": {formInput.FindStringSubmatch(page)[1]}, "token": {consoleAdminToken}, "next": {next}})
			wantLocation(t, resp, "/console/")
		}
	})

	t.Run("an idle session expires", func(t *testing.T) {
		idle := newBrowser(t, a)
		idle.ip = "192.0.2.50"
		wantStatus(t, idle.signIn(consoleAdminToken), http.StatusSeeOther)
		clock.Advance(consoleIdleTimeout - time.Minute)
		resp, _ := idle.get("/console/accounts")
		wantStatus(t, resp, http.StatusOK) // used within the idle timeout: moved forward
		clock.Advance(consoleIdleTimeout - time.Minute)
		resp, _ = idle.get("/console/accounts")
		wantStatus(t, resp, http.StatusOK)
		clock.Advance(consoleIdleTimeout)
		resp, _ = idle.get("/console/accounts")
		wantStatus(t, resp, http.StatusSeeOther)
	})

	t.Run("every session ends after its lifetime, however busy", func(t *testing.T) {
		busy := newBrowser(t, a)
		busy.ip = "192.0.2.51"
		wantStatus(t, busy.signIn(consoleAdminToken), http.StatusSeeOther)
		for elapsed := time.Duration(0); elapsed < 12*time.Hour-20*time.Minute; elapsed += 20 * time.Minute {
			clock.Advance(20 * time.Minute)
			if resp, _ := busy.get("/console/accounts"); resp.StatusCode != http.StatusOK {
				t.Fatalf("after %s: got %d want 200", elapsed, resp.StatusCode)
			}
		}
		clock.Advance(20 * time.Minute)
		resp, _ := busy.get("/console/accounts")
		wantStatus(t, resp, http.StatusSeeOther)
	})

	t.Run("sign-out ends the session on every replica", func(t *testing.T) {
		out := newBrowser(t, a)
		out.ip = "192.0.2.52"
		wantStatus(t, out.signIn(consoleAdminToken), http.StatusSeeOther)
		token := out.cookies["wxgate_console"].Value
		resp, _ := out.post("/console/signout", url.Values{"csrf": {out.csrf()}})
		wantStatus(t, resp, http.StatusSeeOther)
		if _, ok := out.cookies["wxgate_console"]; ok {
			t.Error("sign-out left the cookie")
		}
		stale := newBrowser(t, b)
		stale.cookies["wxgate_console"] = &http.Cookie{Name: "wxgate_console", Value: token}
		resp, _ = stale.get("/console/accounts")
		wantStatus(t, resp, http.StatusSeeOther)
	})

	t.Run("a one-time sign-in code works once, briefly", func(t *testing.T) {
		link, err := a.console.SignInLink(ctx)
		if err != nil {
			t.Fatal(err)
		}
		path := strings.TrimPrefix(link, "http://gw.test")
		first := newBrowser(t, b)
		first.ip = "192.0.2.60"
		resp, _ := first.get(path)
		wantStatus(t, resp, http.StatusSeeOther)
		if resp, _ := first.get("/console/accounts"); resp.StatusCode != http.StatusOK {
			t.Fatalf("signed in by the code: got %d", resp.StatusCode)
		}
		again := newBrowser(t, a)
		again.ip = "192.0.2.61"
		resp, _ = again.get(path)
		wantStatus(t, resp, http.StatusUnauthorized)
		late, _ := a.console.SignInLink(ctx)
		clock.Advance(11 * time.Minute)
		resp, _ = again.get(strings.TrimPrefix(late, "http://gw.test"))
		wantStatus(t, resp, http.StatusUnauthorized)
	})

	t.Run("sign-in is throttled per client and overall", func(t *testing.T) {
		clock.Advance(time.Hour) // full buckets
		c := newBrowser(t, a)
		c.ip = "198.51.100.1"
		for i := range 5 {
			if resp := c.signIn("wrong"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("attempt %d: got %d want 401", i+1, resp.StatusCode)
			}
		}
		resp := c.signIn(consoleAdminToken)
		wantStatus(t, resp, http.StatusTooManyRequests)
		if resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		other := newBrowser(t, a)
		other.ip = "198.51.100.2"
		wantStatus(t, other.signIn(consoleAdminToken), http.StatusSeeOther)
		clock.Advance(10 * time.Second)
		wantStatus(t, c.signIn(consoleAdminToken), http.StatusSeeOther)

		// No proxy is trusted by default: a client that names itself in
		// X-Forwarded-For is still throttled by its own address.
		clock.Advance(time.Hour)
		spoof := newBrowser(t, a)
		spoof.ip = "198.51.100.3"
		for i := range 5 {
			spoof.header.Set("X-Forwarded-For", "203.0.113."+strconv.Itoa(100+i))
			if resp := spoof.signIn("wrong"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("spoofed attempt %d: got %d want 401", i+1, resp.StatusCode)
			}
		}
		spoof.header.Set("X-Forwarded-For", "203.0.113.150")
		wantStatus(t, spoof.signIn(consoleAdminToken), http.StatusTooManyRequests)

		clock.Advance(time.Hour)
		for i := range 20 {
			m := newBrowser(t, a)
			m.ip = "203.0.113." + strconv.Itoa(i+1)
			m.signIn("wrong")
		}
		last := newBrowser(t, a)
		last.ip = "203.0.113.200"
		wantStatus(t, last.signIn(consoleAdminToken), http.StatusTooManyRequests)
	})

	t.Run("the language follows Accept-Language and the switch", func(t *testing.T) {
		zh := newBrowser(t, a)
		zh.header.Set("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8")
		if _, page := zh.get("/console/signin"); !strings.Contains(page, "登录 wxgate 控制台") {
			t.Error("zh-CN browser: no Chinese page")
		}
		resp, _ := zh.get("/console/lang/en?back=/console/signin")
		wantStatus(t, resp, http.StatusSeeOther)
		wantLocation(t, resp, "/console/signin")
		if _, page := zh.get("/console/signin"); !strings.Contains(page, "Sign in to the wxgate console") {
			t.Error("after switching to English: no English page")
		}
	})
}

func TestConsoleCookieIsSecureUnderHTTPS(t *testing.T) {
	clock := storetest.NewClock()
	st := storetest.Open(t, store.SQLite, clock.Now)
	gw := consoleReplica(t, st, clock.Now, "https://gw.example")
	br := newBrowser(t, gw)
	wantStatus(t, br.signIn(consoleAdminToken), http.StatusSeeOther)
	ck := br.cookies["__Host-wxgate_console"]
	if ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" {
		t.Fatalf("session cookie under https: got %+v", ck)
	}
}

// The operator's tasks through the console's forms, as a browser posts
// them: each changes what the admin API would, and refuses what it would.
func TestConsoleOperatorTasks(t *testing.T) {
	clock := storetest.NewClock()
	st := storetest.Open(t, store.SQLite, clock.Now)
	gw := consoleReplica(t, st, clock.Now, "http://gw.test")
	ctx := context.Background()
	const comp = "wx1234567890abcdef"
	for _, appid := range []string{"wxaaaaaaaaaaaaaaa1", "wxaaaaaaaaaaaaaaa2"} {
		if _, err := st.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: comp, AppID: appid, AccessToken: "a", RefreshToken: "r",
			TokenExpiresAt: clock.Now().Add(time.Hour), TokenRefreshedAt: clock.Now(), PermissionSets: []int{2}, NickName: "Shop " + appid[16:]}, ""); err != nil {
			t.Fatal(err)
		}
	}
	gw = consoleReplica(t, st, clock.Now, "http://gw.test") // loads the accounts
	br := newBrowser(t, gw)
	wantStatus(t, br.signIn(consoleAdminToken), http.StatusSeeOther)
	csrf := br.csrf()
	post := func(path string, form url.Values) (*http.Response, string) {
		form.Set("csrf", csrf)
		return br.post(path, form)
	}
	var id string

	t.Run("create a tenant; a taken or empty name is refused", func(t *testing.T) {
		resp, _ := post("/console/tenants", url.Values{"name": {"  Acme  "}})
		wantStatus(t, resp, http.StatusSeeOther)
		list, _ := st.ListTenants(ctx, comp)
		if len(list) != 1 || list[0].Name != "Acme" {
			t.Fatalf("tenants: got %+v", list)
		}
		id = list[0].ID
		wantLocation(t, resp, "/console/tenants/"+id+"?flash=tenant_created")
		resp, page := post("/console/tenants", url.Values{"name": {"Acme"}})
		if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "already taken") {
			t.Fatalf("duplicate: got %d", resp.StatusCode)
		}
		resp, page = post("/console/tenants", url.Values{"name": {" "}})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "name: is required") {
			t.Fatalf("empty name: got %d", resp.StatusCode)
		}
	})

	t.Run("rename and set the rate limit; out-of-range limits are refused", func(t *testing.T) {
		wantStatus(t, first(post("/console/tenants/"+id+"/rename", url.Values{"name": {"Acme Group"}})), http.StatusSeeOther)
		wantStatus(t, first(post("/console/tenants/"+id+"/limits", url.Values{"rate_limit": {"12.5"}, "rate_burst": {"40"}})), http.StatusSeeOther)
		tn, _ := st.GetTenant(ctx, id)
		if tn.Name != "Acme Group" || tn.RateLimit != 12.5 || tn.RateBurst != 40 {
			t.Fatalf("tenant: got %+v", tn)
		}
		for _, form := range []url.Values{{"rate_limit": {"-1"}}, {"rate_limit": {"1e9"}}, {"rate_burst": {"2.5"}}, {"rate_limit": {"NaN"}}} {
			if resp, _ := post("/console/tenants/"+id+"/limits", form); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%v: got %d want 400", form, resp.StatusCode)
			}
		}
		wantStatus(t, first(post("/console/tenants/"+id+"/limits", url.Values{"rate_limit": {""}, "rate_burst": {""}})), http.StatusSeeOther)
		if tn, _ := st.GetTenant(ctx, id); tn.RateLimit != 0 || tn.RateBurst != 0 {
			t.Fatalf("back to the default: got %+v", tn)
		}
	})

	t.Run("issue a restricted, expiring key; bad appids are refused", func(t *testing.T) {
		resp, _ := post("/console/tenants/"+id+"/keys", url.Values{"name": {"ci"}, "ttl_days": {"30"}, "appids": {"wxaaaaaaaaaaaaaaa1, wxaaaaaaaaaaaaaaa2"}})
		wantStatus(t, resp, http.StatusCreated)
		keys, _ := st.ListKeys(ctx, id)
		if len(keys) != 1 || len(keys[0].AppIDs) != 2 || keys[0].ExpiresAt == nil || !keys[0].ExpiresAt.Equal(clock.Now().Add(30*24*time.Hour)) {
			t.Fatalf("keys: got %+v", keys)
		}
		for _, form := range []url.Values{{"appids": {"wx123"}}, {"ttl_days": {"-1"}}, {"ttl_days": {"3661"}}, {"ttl_days": {"999999999999"}}} {
			if resp, _ := post("/console/tenants/"+id+"/keys", form); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%v: got %d want 400", form, resp.StatusCode)
			}
		}
		wantStatus(t, first(post("/console/tenants/"+id+"/keys/"+keys[0].KID+"/revoke", url.Values{})), http.StatusSeeOther)
		if keys, _ := st.ListKeys(ctx, id); keys[0].RevokedAt == nil {
			t.Fatal("not revoked")
		}
	})

	t.Run("bind and unbind from both sides; the accounts page filters by tenant", func(t *testing.T) {
		wantStatus(t, first(post("/console/tenants/"+id+"/bind", url.Values{"appid": {"wxaaaaaaaaaaaaaaa1"}})), http.StatusSeeOther)
		wantStatus(t, first(post("/console/accounts/wxaaaaaaaaaaaaaaa2/bind", url.Values{"tenant": {id}})), http.StatusSeeOther)
		if resp, _ := post("/console/tenants/"+id+"/bind", url.Values{"appid": {"wxbbbbbbbbbbbbbbb9"}}); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown account: got %d want 404", resp.StatusCode)
		}
		_, page := br.get("/console/accounts?tenant=" + id)
		if strings.Count(page, `<tr data-appid=`) != 2 || !strings.Contains(page, "Acme Group") {
			t.Fatalf("accounts of the tenant:\n%s", page)
		}
		wantStatus(t, first(post("/console/accounts/wxaaaaaaaaaaaaaaa2/tenants/"+id+"/unbind", url.Values{})), http.StatusSeeOther)
		wantStatus(t, first(post("/console/tenants/"+id+"/accounts/wxaaaaaaaaaaaaaaa1/unbind", url.Values{})), http.StatusSeeOther)
		if b, _ := st.ListBindings(ctx, comp); len(b) != 0 {
			t.Fatalf("bindings left: %+v", b)
		}
	})

	t.Run("search, filter and page the accounts", func(t *testing.T) {
		for path, want := range map[string]int{
			"/console/accounts":                          2,
			"/console/accounts?q=A2":                     1,
			"/console/accounts?status=unauthorized":      0,
			"/console/accounts?sort=expiry&page=99":      2,
			"/console/tenants?q=acme":                    0,
			"/console/accounts?q=%3Cscript%3E&sort=name": 0,
		} {
			resp, page := br.get(path)
			wantStatus(t, resp, http.StatusOK)
			if got := strings.Count(page, `<tr data-appid=`); got != want && strings.HasPrefix(path, "/console/accounts") {
				t.Errorf("%s: got %d rows want %d", path, got, want)
			}
			if strings.Contains(page, "<script>") {
				t.Errorf("%s: the query is echoed unescaped", path)
			}
		}
	})

	t.Run("usage as a chart page and a CSV download", func(t *testing.T) {
		if err := st.AddUsage(ctx, []store.UsageRow{{TenantID: id, AppID: "wxaaaaaaaaaaaaaaa1", API: "getFans", Outcome: "ok", Hour: clock.Now(), Count: 7}}); err != nil {
			t.Fatal(err)
		}
		resp, page := br.get("/console/usage?tenant=" + id + "&range=7d")
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="chart-usage"`) || !strings.Contains(page, "7 calls in this range") {
			t.Fatalf("usage page: got %d", resp.StatusCode)
		}
		resp, csv := br.get("/console/usage.csv?tenant=" + id + "&range=7d")
		if resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
			t.Fatalf("CSV headers: %v", resp.Header)
		}
		if want := "hour,appid,api,outcome,count\n" + clock.Now().Truncate(time.Hour).Format(time.RFC3339) + ",wxaaaaaaaaaaaaaaa1,getFans,ok,7\n"; csv != want {
			t.Fatalf("CSV: got %q want %q", csv, want)
		}
	})

	t.Run("without a ticket, an authorization link is refused with the reason", func(t *testing.T) {
		resp, page := post("/console/authorize", url.Values{"tenant": {id}, "auth_type": {"1"}})
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "component_verify_ticket") {
			t.Fatalf("got %d", resp.StatusCode)
		}
	})

	t.Run("the tenant's webhook and its deliveries, never its secret", func(t *testing.T) {
		_, page := br.get("/console/tenants/" + id)
		if !strings.Contains(page, `id="webhook"`) || !strings.Contains(page, "No webhook.") {
			t.Fatalf("tenant without a webhook: no webhook card saying so")
		}
		w, _, err := st.PutWebhook(ctx, id, "https://hooks.example.com/acme", []string{"authorizer.*"}, "whsec_console_test_secret")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.EnqueueTenantEvent(ctx, id, store.EventWebhookTest, "", nil); err != nil {
			t.Fatal(err)
		}
		_, page = br.get("/console/tenants/" + id)
		for _, want := range []string{w.URL, "authorizer.*", "webhook.test", `class="badge pending"`} {
			if !strings.Contains(page, want) {
				t.Errorf("the webhook card lacks %q", want)
			}
		}
		if strings.Contains(page, "whsec_console_test_secret") {
			t.Fatal("the console shows the webhook secret")
		}
	})

	t.Run("delete the tenant; unknown pages are 404 pages", func(t *testing.T) {
		wantStatus(t, first(post("/console/tenants/"+id+"/delete", url.Values{})), http.StatusSeeOther)
		if list, _ := st.ListTenants(ctx, comp); len(list) != 0 {
			t.Fatalf("tenants left: %+v", list)
		}
		for _, path := range []string{"/console/tenants/" + id, "/console/accounts/wxnope00000000000", "/console/nope"} {
			resp, page := br.get(path)
			if resp.StatusCode != http.StatusNotFound || !strings.Contains(page, "<html") {
				t.Errorf("%s: got %d want a 404 page", path, resp.StatusCode)
			}
		}
	})
}

func first(resp *http.Response, _ string) *http.Response { return resp }

// An account a second tenant authorized waits for the operator: the
// console shows it on the overview, the accounts list, the account and the
// tenant, and approving or refusing it there changes what the admin API
// would. The tenant's return_url hosts are edited on its page.
func TestConsolePendingBindingsAndReturnHosts(t *testing.T) {
	clock := storetest.NewClock()
	st := storetest.Open(t, store.SQLite, clock.Now)
	ctx := context.Background()
	const comp, appid = "wx1234567890abcdef", "wxaaaaaaaaaaaaaaa1"
	holder, _ := st.CreateTenant(ctx, comp, "Holder")
	asker, _ := st.CreateTenant(ctx, comp, "Asker")
	other, _ := st.CreateTenant(ctx, comp, "Other")
	if _, err := st.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: comp, AppID: appid, AccessToken: "a", RefreshToken: "r",
		TokenExpiresAt: clock.Now().Add(time.Hour), TokenRefreshedAt: clock.Now(), PermissionSets: []int{2}, NickName: "Shop One"}, holder.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.RequestBinding(ctx, comp, asker.ID, appid); err != nil {
		t.Fatal(err)
	}
	gw := consoleReplica(t, st, clock.Now, "http://gw.test")
	br := newBrowser(t, gw)
	wantStatus(t, br.signIn(consoleAdminToken), http.StatusSeeOther)
	csrf := br.csrf()
	post := func(path string, form url.Values) (*http.Response, string) {
		form.Set("csrf", csrf)
		return br.post(path, form)
	}
	bound := func(t *testing.T, want ...string) {
		t.Helper()
		got, err := st.BoundTenants(ctx, comp, appid)
		slices.Sort(want)
		if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("bound tenants: got %v, %v want %v", got, err, want)
		}
	}

	t.Run("the waiting account shows on every page that concerns it", func(t *testing.T) {
		_, page := br.get("/console/")
		if !regexp.MustCompile(`id="pending-approvals"[\s\S]*?pending=1">1</a>`).MatchString(page) {
			t.Errorf("overview: no count of 1 waiting account:\n%s", page)
		}
		_, page = br.get("/console/accounts")
		if !strings.Contains(page, `id="pending-notice"`) || !strings.Contains(page, "Asker · waiting") {
			t.Errorf("accounts: no notice or no waiting tenant:\n%s", page)
		}
		_, page = br.get("/console/accounts?pending=1")
		if got := strings.Count(page, `<tr data-appid=`); got != 1 {
			t.Errorf("accounts waiting for approval: got %d rows want 1", got)
		}
		_, page = br.get("/console/accounts/" + appid)
		if !strings.Contains(page, `data-pending="`+asker.ID+`"`) || !strings.Contains(page, `/tenants/`+asker.ID+`/approve"`) {
			t.Errorf("account page: no approval for the asker:\n%s", page)
		}
		if strings.Contains(page, `<option value="`+asker.ID+`"`) || !strings.Contains(page, `<option value="`+other.ID+`"`) {
			t.Errorf("account page: the bind list should offer the other tenant, not the waiting one")
		}
		_, page = br.get("/console/tenants/" + asker.ID)
		if !strings.Contains(page, `data-pending="`+appid+`"`) {
			t.Errorf("tenant page: the waiting account is missing:\n%s", page)
		}
		if _, page = br.get("/console/tenants/" + holder.ID); strings.Contains(page, `data-pending=`) {
			t.Errorf("the holder's page shows a waiting account")
		}
	})

	t.Run("an authorization left waiting lands on a page that says so", func(t *testing.T) {
		_, page := newBrowser(t, gw).get("/console/authorize/done?appid=" + appid + "&result=pending")
		if !strings.Contains(page, `id="done-pending"`) || !strings.Contains(page, "waits for the operator") {
			t.Errorf("landing page of a pending authorization:\n%s", page)
		}
		if _, page = newBrowser(t, gw).get("/console/authorize/done?appid=" + appid + "&result=authorized"); strings.Contains(page, `id="done-pending"`) {
			t.Errorf("an authorization bound at once is shown as waiting")
		}
	})

	t.Run("approving needs the CSRF token", func(t *testing.T) {
		resp, _ := br.post("/console/accounts/"+appid+"/tenants/"+asker.ID+"/approve", url.Values{})
		wantStatus(t, resp, http.StatusForbidden)
		bound(t, holder.ID)
	})

	t.Run("approve from the account page", func(t *testing.T) {
		resp, _ := post("/console/accounts/"+appid+"/tenants/"+asker.ID+"/approve", url.Values{})
		wantStatus(t, resp, http.StatusSeeOther)
		wantLocation(t, resp, "/console/accounts/"+appid+"?flash=approved")
		bound(t, holder.ID, asker.ID)
		if _, page := br.get("/console/accounts"); strings.Contains(page, `id="pending-notice"`) {
			t.Errorf("the notice stays after approval")
		}
	})

	t.Run("refuse from the tenant page; a bound tenant cannot be refused", func(t *testing.T) {
		if err := st.RequestBinding(ctx, comp, other.ID, appid); err != nil {
			t.Fatal(err)
		}
		resp, _ := post("/console/tenants/"+other.ID+"/accounts/"+appid+"/refuse", url.Values{})
		wantStatus(t, resp, http.StatusSeeOther)
		wantLocation(t, resp, "/console/tenants/"+other.ID+"?flash=refused")
		if list, _ := st.ListBindings(ctx, comp); len(list) != 2 {
			t.Fatalf("bindings after refusal: got %+v want the holder's and the asker's", list)
		}
		if resp, _ := post("/console/tenants/"+holder.ID+"/accounts/"+appid+"/refuse", url.Values{}); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("refusing a bound tenant: got %d want 404", resp.StatusCode)
		}
		if resp, _ := post("/console/tenants/"+other.ID+"/accounts/"+appid+"/approve", url.Values{}); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("approving what nobody asked for: got %d want 404", resp.StatusCode)
		}
		bound(t, holder.ID, asker.ID)
	})

	t.Run("edit the return_url hosts; a URL is refused", func(t *testing.T) {
		resp, _ := post("/console/tenants/"+asker.ID+"/return-hosts", url.Values{"return_url_hosts": {"App.Example.com,\r\nb.example  app.example.com"}})
		wantStatus(t, resp, http.StatusSeeOther)
		if tn, _ := st.GetTenant(ctx, asker.ID); strings.Join(tn.ReturnURLHosts, " ") != "app.example.com b.example" {
			t.Fatalf("hosts: got %v want [app.example.com b.example]", tn.ReturnURLHosts)
		}
		if _, page := br.get("/console/tenants/" + asker.ID); !strings.Contains(page, ">app.example.com\nb.example</textarea>") {
			t.Errorf("the tenant page does not show the hosts")
		}
		resp, page := post("/console/tenants/"+asker.ID+"/return-hosts", url.Values{"return_url_hosts": {"https://evil.example/x"}})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "return_url_hosts:") {
			t.Fatalf("a URL: got %d want 400 naming the field", resp.StatusCode)
		}
		wantStatus(t, first(post("/console/tenants/"+asker.ID+"/return-hosts", url.Values{"return_url_hosts": {""}})), http.StatusSeeOther)
		if tn, _ := st.GetTenant(ctx, asker.ID); len(tn.ReturnURLHosts) != 0 {
			t.Fatalf("cleared hosts: got %v", tn.ReturnURLHosts)
		}
	})
}

// The webhooks page: the queue's depth and age, each tenant's webhook with
// what is pending and failed (failing ones first), one tenant's deliveries,
// and a failed delivery redelivered with the same event; the overview's
// webhook health. No page shows a webhook secret.
func TestConsoleWebhooks(t *testing.T) {
	clock := storetest.NewClock()
	st := storetest.Open(t, store.SQLite, clock.Now)
	ctx := context.Background()
	const comp = "wx1234567890abcdef"
	acme, _ := st.CreateTenant(ctx, comp, "Acme")
	globex, _ := st.CreateTenant(ctx, comp, "Globex")
	for _, tn := range []store.Tenant{acme, globex} {
		if _, _, err := st.PutWebhook(ctx, tn.ID, "https://"+strings.ToLower(tn.Name)+".example/hook", []string{"authorizer.*"}, "whsec_console_secret_"+secret.Value(tn.ID)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := st.EnqueueTenantEvent(ctx, acme.ID, store.EventWebhookTest, "", nil); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	claimed, err := st.ClaimWebhookDeliveries(ctx, store.ClaimRequest{Owner: "r1", Now: clock.Now(), LeaseUntil: clock.Now().Add(time.Minute), Limit: 2, PerTenant: 2})
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claimed %d, %v", len(claimed), err)
	}
	failed := claimed[1]
	for i, outcome := range []string{store.DeliveryDelivered, store.DeliveryFailed} {
		if ok, err := st.FinishWebhookAttempt(ctx, claimed[i].ID, "r1", store.AttemptResult{Outcome: outcome, Status: 503, Error: "HTTP 503 from the receiver", At: clock.Now()}); err != nil || !ok {
			t.Fatalf("finish: %v, %v", ok, err)
		}
	}
	clock.Advance(10 * time.Minute) // the one left pending is late
	gw := consoleReplica(t, st, clock.Now, "http://gw.test")
	br := newBrowser(t, gw)
	wantStatus(t, br.signIn(consoleAdminToken), http.StatusSeeOther)
	csrf := br.csrf()
	noSecret := func(t *testing.T, page string) {
		t.Helper()
		if strings.Contains(page, "whsec_") {
			t.Fatal("a page shows a webhook secret")
		}
	}

	t.Run("the overview shows the queue, late", func(t *testing.T) {
		_, page := br.get("/console/")
		if !regexp.MustCompile(`class="card stat warn" id="webhook-health">[\s\S]*?webhooks">1</a>[\s\S]*?oldest pending created 10 min ago`).MatchString(page) {
			t.Errorf("overview: no late queue of 1:\n%s", page)
		}
	})

	t.Run("every webhook with its pending and failed deliveries, the failing first", func(t *testing.T) {
		resp, page := br.get("/console/webhooks")
		wantStatus(t, resp, http.StatusOK)
		noSecret(t, page)
		rows := regexp.MustCompile(`<tr data-webhook="([^"]+)">`).FindAllStringSubmatch(page, -1)
		if len(rows) != 2 || rows[0][1] != acme.ID || rows[1][1] != globex.ID {
			t.Fatalf("webhook rows: got %v want Acme (failing) then Globex", rows)
		}
		for _, want := range []string{"https://acme.example/hook", `class="badge failing"`, `class="badge ok"`, `id="webhook-failed">`} {
			if !strings.Contains(page, want) {
				t.Errorf("webhooks page lacks %q", want)
			}
		}
		if _, page = br.get("/console/webhooks?q=globex"); strings.Count(page, "<tr data-webhook=") != 1 {
			t.Errorf("search: got %d rows want 1", strings.Count(page, "<tr data-webhook="))
		}
	})

	t.Run("one tenant's deliveries, filtered by status; redeliver only the failed", func(t *testing.T) {
		_, page := br.get("/console/webhooks?tenant=" + acme.ID)
		noSecret(t, page)
		if got := strings.Count(page, "<tr data-delivery="); got != 3 {
			t.Fatalf("deliveries: got %d want 3", got)
		}
		if got := strings.Count(page, "/redeliver\""); got != 1 || !strings.Contains(page, "/deliveries/"+failed.ID+"/redeliver\"") {
			t.Fatalf("redeliver buttons: got %d want 1, for the failed delivery", got)
		}
		if !strings.Contains(page, "HTTP 503 from the receiver") {
			t.Errorf("the last error is missing")
		}
		if _, page = br.get("/console/webhooks?tenant=" + acme.ID + "&status=failed"); strings.Count(page, "<tr data-delivery=") != 1 {
			t.Errorf("failed only: got %d rows want 1", strings.Count(page, "<tr data-delivery="))
		}
		if resp, _ := br.get("/console/webhooks?tenant=nope"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("unknown tenant: got %d want 404", resp.StatusCode)
		}
	})

	t.Run("redeliver needs the CSRF token and the delivery's own tenant", func(t *testing.T) {
		path := "/console/webhooks/" + acme.ID + "/deliveries/" + failed.ID + "/redeliver"
		wantStatus(t, first(br.post(path, url.Values{})), http.StatusForbidden)
		if resp, _ := br.post("/console/webhooks/"+globex.ID+"/deliveries/"+failed.ID+"/redeliver", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("another tenant's delivery: got %d want 404", resp.StatusCode)
		}
		resp, _ := br.post(path, url.Values{"csrf": {csrf}})
		wantStatus(t, resp, http.StatusSeeOther)
		wantLocation(t, resp, "/console/webhooks?flash=redelivered&tenant="+acme.ID+"#deliveries")
		pending, err := st.ListWebhookDeliveries(ctx, acme.ID, store.DeliveryPending, 10)
		if err != nil || len(pending) != 2 || pending[0].EventID != failed.EventID {
			t.Fatalf("pending after redelivery: %+v, %v; want the failed event queued again", pending, err)
		}
	})
}
