package app_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
)

// consoleClient is an operator signed in to the console of a running
// replica over HTTP, with a cookie jar and the session's CSRF token.
type consoleClient struct {
	t    testing.TB
	base string
	c    *http.Client
	csrf string
}

var (
	consoleFormToken = regexp.MustCompile(`name="form" value="([^"]+)"`)
	consoleCSRFToken = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

func signInConsole(t testing.TB, base, adminToken string) *consoleClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	cc := &consoleClient{t: t, base: base, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	_, page := cc.get("/console/signin")
	m := consoleFormToken.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("sign-in page without its form token:\n%s", page)
	}
	if code, _, _ := cc.post("/console/signin", url.Values{"form": {m[1]}, "token": {adminToken}}); code != http.StatusSeeOther {
		t.Fatalf("sign-in: got %d want 303", code)
	}
	_, page = cc.get("/console/")
	if m = consoleCSRFToken.FindStringSubmatch(page); m == nil {
		t.Fatalf("signed in, the overview has no CSRF token:\n%s", page)
	}
	cc.csrf = m[1]
	return cc
}

func (cc *consoleClient) get(path string) (int, string) {
	cc.t.Helper()
	resp, err := cc.c.Get(cc.base + path)
	if err != nil {
		cc.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// post sends a form with the session's CSRF token and returns the status,
// the Location and the page.
func (cc *consoleClient) post(path string, form url.Values) (int, string, string) {
	cc.t.Helper()
	if cc.csrf != "" {
		form.Set("csrf", cc.csrf)
	}
	resp, err := cc.c.PostForm(cc.base+path, form)
	if err != nil {
		cc.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(raw)
}

// The Quota view against `wxgate serve` and the simulator: limits learned
// from WeChat, the gateway's use, the accounts below 10%, the operator's
// caps on bindings (set, refused, removed) and clear_quota, up to WeChat's
// monthly refusal, which the page explains.
func TestConsoleQuota(t *testing.T) {
	t.Parallel()
	acct, shared := appid(0x40), appid(0x41)
	st := newStack(t, stackOptions{Dialect: store.SQLite, Accounts: []sim.AccountSpec{
		{AppID: acct, NickName: "Quota Shop", Followers: 5, DailyQuota: 20},
		{AppID: shared, Followers: 5, DailyQuota: 1000},
	}})
	var other struct{ ID string }
	st.must(http.MethodPost, "/admin/tenants", testAdminToken, map[string]any{"name": "other"}, &other, 201)
	st.must(http.MethodPut, "/admin/tenants/"+other.ID+"/authorizers/"+shared, testAdminToken, nil, nil, 204)
	// The limits are learned first, so no quota/get runs while the calls
	// are in flight (it would count one in flight twice, by design).
	for _, a := range []string{acct, shared} {
		if code, _, body := st.get("/v1/authorizers/"+a+"/quota", st.Key); code != 200 {
			t.Fatalf("quota of %s: %d %s", a, code, body)
		}
	}
	fans := "/v1/authorizers/" + acct + "/fans"
	for range 19 {
		if code, _, body := st.get(fans, st.Key); code != 200 {
			t.Fatalf("getFans: %d %s", code, body)
		}
	}
	cc := signInConsole(t, st.base(), testAdminToken)
	row := func(page, key string) string {
		m := regexp.MustCompile(`<tr data-quota="` + regexp.QuoteMeta(key) + `"[^>]*>([\s\S]*?)</tr>`).FindStringSubmatch(page)
		if m == nil {
			return ""
		}
		return regexp.MustCompile(`\s+`).ReplaceAllString(regexp.MustCompile(`<[^>]+>`).ReplaceAllString(m[1], " "), " ")
	}

	journey.Step(t, "the overview counts the accounts below 10%", func(t *testing.T) {
		_, page := cc.get("/console/")
		if !regexp.MustCompile(`id="quota-health">[\s\S]*?low=1">1</a>[\s\S]*?of 6 with a known limit`).MatchString(page) {
			t.Fatalf("overview: no 1 of 6 below 10%%:\n%s", page)
		}
	})

	journey.Step(t, "limit, used and left per account and API, the lowest first", func(t *testing.T) {
		code, page := cc.get("/console/quota")
		if code != 200 {
			t.Fatalf("quota page: %d", code)
		}
		if got := row(page, acct+"/getFans"); !strings.Contains(got, "Quota Shop "+acct+" getFans 20 19 1 ") || !strings.Contains(got, "5%") {
			t.Fatalf("getFans row: got %q want Quota Shop, 20 19 1, 5%%", got)
		}
		if got := regexp.MustCompile(`<tr data-quota="([^"]+)"`).FindAllStringSubmatch(page, -1); len(got) != 6 || got[0][1] != acct+"/getFans" {
			t.Fatalf("rows: got %v want 6, getFans of %s first", got, acct)
		}
		if _, page = cc.get("/console/quota?low=1"); strings.Count(page, "<tr data-quota=") != 1 {
			t.Fatalf("below 10%%: got %d rows want 1", strings.Count(page, "<tr data-quota="))
		}
		if _, page = cc.get("/console/quota?q=" + shared); strings.Count(page, "<tr data-quota=") != 3 {
			t.Fatalf("search: got %d rows want the 3 APIs of %s", strings.Count(page, "<tr data-quota="), shared)
		}
	})

	journey.Step(t, "caps: set on the quota page and on the account, refused when wrong, removed", func(t *testing.T) {
		code, loc, _ := cc.post("/console/quota/caps", url.Values{"tenant": {st.TenantID}, "appid": {acct}, "daily_limit": {"50"}})
		if code != http.StatusSeeOther || loc != "/console/quota?flash=cap_saved#caps" {
			t.Fatalf("set cap: got %d %s", code, loc)
		}
		_, page := cc.get("/console/quota")
		m := regexp.MustCompile(`<tr data-cap="` + st.TenantID + `/` + acct + `">[\s\S]*?<td class="num">(\d+)</td><td class="num">(\d+)</td>`).FindStringSubmatch(page)
		if m == nil || m[1] != "50" || m[2] != "19" {
			t.Fatalf("cap row: got %v want cap 50, 19 used by the tenant", m)
		}
		code, loc, _ = cc.post("/console/accounts/"+shared+"/tenants/"+other.ID+"/cap", url.Values{"daily_limit": {"7"}})
		if code != http.StatusSeeOther || loc != "/console/accounts/"+shared+"?flash=cap_saved#tenants" {
			t.Fatalf("cap from the account page: got %d %s", code, loc)
		}
		if _, page = cc.get("/console/accounts/" + shared); !regexp.MustCompile(`data-tenant="` + other.ID + `"[\s\S]*?name="daily_limit"[^>]*value="7"`).MatchString(page) {
			t.Fatalf("the account page does not show the cap of 7")
		}
		for _, c := range []struct {
			path string
			form url.Values
			want int
		}{
			{"/console/quota/caps", url.Values{"tenant": {st.TenantID}, "appid": {acct}, "daily_limit": {"-1"}}, 400},
			{"/console/quota/caps", url.Values{"tenant": {st.TenantID}, "appid": {acct}, "daily_limit": {"lots"}}, 400},
			{"/console/quota/caps", url.Values{"tenant": {st.TenantID}, "appid": {"wx123"}, "daily_limit": {"5"}}, 400},
			{"/console/quota/caps", url.Values{"tenant": {other.ID}, "appid": {acct}, "daily_limit": {"5"}}, 404},
			{"/console/accounts/" + acct + "/tenants/" + other.ID + "/cap", url.Values{"daily_limit": {"5"}}, 404},
		} {
			if code, _, _ := cc.post(c.path, c.form); code != c.want {
				t.Errorf("%s %v: got %d want %d", c.path, c.form, code, c.want)
			}
		}
		if code, loc, _ = cc.post("/console/quota/caps", url.Values{"tenant": {st.TenantID}, "appid": {acct}, "daily_limit": {""}}); loc != "/console/quota?flash=cap_cleared#caps" {
			t.Fatalf("remove cap: got %d %s", code, loc)
		}
		if _, page = cc.get("/console/quota"); strings.Count(page, "<tr data-cap=") != 1 {
			t.Fatalf("caps left: got %d want the other tenant's", strings.Count(page, "<tr data-cap="))
		}
	})

	journey.Step(t, "clear the quota; the eleventh clear of the month is refused, and the page says so", func(t *testing.T) {
		code, loc, _ := cc.post("/console/accounts/"+acct+"/quota/clear", url.Values{})
		if code != http.StatusSeeOther || loc != "/console/accounts/"+acct+"?flash=quota_cleared#quota" {
			t.Fatalf("clear: got %d %s", code, loc)
		}
		_, page := cc.get("/console/accounts/" + acct)
		if got := row(page, "getFans"); !strings.Contains(got, "getFans 20 0 20 ") {
			t.Fatalf("getFans after the clear: got %q want 20 0 20", got)
		}
		for i := 2; i <= sim.ClearQuotaMonthlyLimit; i++ {
			st.must(http.MethodPost, "/admin/authorizers/"+acct+"/quota/clear", testAdminToken, nil, nil, 200)
		}
		code, _, page = cc.post("/console/accounts/"+acct+"/quota/clear", url.Values{})
		if code != http.StatusTooManyRequests || !strings.Contains(page, "has used its 10 quota clears of the month. It may clear again from ") {
			t.Fatalf("the eleventh clear: got %d, want 429 saying the month's clears are used", code)
		}
	})
}
