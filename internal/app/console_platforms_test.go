package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// The console of a deployment with two platforms, through the real router
// of a replica built by the composition root: the second platform is
// registered with the admin API, each platform has an account, and the
// console shows both platforms, lists and acts on one platform's accounts
// at a time, and creates a tenant on the platform chosen.

const (
	consoleDefaultComponent = "wx1234567890abcdef"
	consoleOtherComponent   = "wxc0ffee00000000c2"
	consoleDefaultAccount   = "wxaaaaaaaaaaaaaaa1"
	consoleOtherAccount     = "wxbbbbbbbbbbbbbbb2"
)

func TestConsoleSeveralPlatforms(t *testing.T) {
	clock := storetest.NewClock()
	st := storetest.Open(t, store.SQLite, clock.Now)
	ctx := context.Background()
	for _, a := range []struct{ component, appid, nick string }{
		{consoleDefaultComponent, consoleDefaultAccount, "Default Shop"},
		{consoleOtherComponent, consoleOtherAccount, "Second Shop"},
	} {
		if _, err := st.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: a.component, AppID: a.appid, AccessToken: "a", RefreshToken: "r",
			TokenExpiresAt: clock.Now().Add(time.Hour), TokenRefreshedAt: clock.Now(), PermissionSets: []int{2}, NickName: a.nick}, ""); err != nil {
			t.Fatal(err)
		}
	}
	gw := consoleReplica(t, st, clock.Now, "http://gw.test")

	// The second platform, registered as an operator does: its services
	// are built at once and load its account.
	body, _ := json.Marshal(map[string]string{"appid": consoleOtherComponent, "secret": "second-secret", "token": "secondtoken",
		"aes_key": "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"})
	req := httptest.NewRequest(http.MethodPost, "/admin/components", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+consoleAdminToken)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	gw.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /admin/components: got %d %s", rec.Code, rec.Body)
	}

	br := newBrowser(t, gw)
	wantStatus(t, br.signIn(consoleAdminToken), http.StatusSeeOther)
	csrf := br.csrf()
	post := func(path string, form url.Values) (*http.Response, string) {
		form.Set("csrf", csrf)
		return br.post(path, form)
	}
	rows := regexp.MustCompile(`<tr data-appid="(wx[0-9a-z]+)"`)
	listed := func(page string) []string {
		var out []string
		for _, m := range rows.FindAllStringSubmatch(page, -1) {
			out = append(out, m[1])
		}
		return out
	}

	t.Run("the overview shows the health of each platform, the default first", func(t *testing.T) {
		resp, page := br.get("/console/")
		wantStatus(t, resp, http.StatusOK)
		i, j := strings.Index(page, `id="platform-`+consoleDefaultComponent+`"`), strings.Index(page, `id="platform-`+consoleOtherComponent+`"`)
		if i < 0 || j < i {
			t.Fatalf("platform rows at %d and %d: want the default's then the second's", i, j)
		}
		other := page[j:]
		other = other[:strings.Index(other, "</tr>")]
		for _, want := range []string{"health-bad", "never", `href="/console/accounts?platform=` + consoleOtherComponent + `">1</a>`} {
			if !strings.Contains(other, want) {
				t.Errorf("the second platform's row lacks %q: %s", want, other)
			}
		}
		if strings.Contains(other, "default") {
			t.Errorf("the second platform is marked default: %s", other)
		}
		if m := regexp.MustCompile(`id="accounts-by-status">\s*<h2>[^<]*</h2>\s*<p class="big"><a [^>]*>(\d+)<`).FindStringSubmatch(page); m == nil || m[1] != "2" {
			t.Errorf("accounts card: got %v want 2 accounts over both platforms", m)
		}
	})

	var otherTenant, defaultTenant string
	t.Run("a tenant is created on the platform chosen, the default preselected", func(t *testing.T) {
		_, page := br.get("/console/tenants")
		sel := regexp.MustCompile(`(?s)<select id="tenant-platform" name="platform"[^>]*>(.*?)</select>`).FindStringSubmatch(page)
		if sel == nil {
			t.Fatalf("no platform select on the tenants page")
		}
		if !regexp.MustCompile(`<option value="`+consoleDefaultComponent+`" selected>`).MatchString(sel[1]) || !strings.Contains(sel[1], `value="`+consoleOtherComponent+`"`) {
			t.Fatalf("platform options: %s", sel[1])
		}
		for _, tc := range []struct{ name, platform string }{{"Second Group", consoleOtherComponent}, {"Default Group", ""}} {
			resp, _ := post("/console/tenants", url.Values{"name": {tc.name}, "platform": {tc.platform}})
			wantStatus(t, resp, http.StatusSeeOther)
		}
		for _, tc := range []struct {
			component string
			id        *string
		}{{consoleOtherComponent, &otherTenant}, {consoleDefaultComponent, &defaultTenant}} {
			list, err := st.ListTenants(ctx, tc.component)
			if err != nil || len(list) != 1 {
				t.Fatalf("tenants of %s: got %+v, %v", tc.component, list, err)
			}
			*tc.id = list[0].ID
		}
		resp, _ := post("/console/tenants", url.Values{"name": {"Nowhere"}, "platform": {"wxffffffffffffffff"}})
		wantStatus(t, resp, http.StatusBadRequest)

		_, page = br.get("/console/tenants")
		if !regexp.MustCompile(`/console/tenants/` + otherTenant + `"[\s\S]*?data-platform="` + consoleOtherComponent + `"`).MatchString(page) {
			t.Errorf("the tenant list does not show the second tenant's platform")
		}
		_, page = br.get("/console/tenants/" + otherTenant)
		if !strings.Contains(page, `<span id="tenant-platform">`) || !strings.Contains(page, consoleOtherComponent) {
			t.Errorf("the tenant's page does not name its platform")
		}
	})

	t.Run("the accounts page lists the platform picked, the default one first", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			want []string
			code int
		}{
			{"/console/accounts", []string{consoleDefaultAccount}, 200},
			{"/console/accounts?platform=" + consoleDefaultComponent, []string{consoleDefaultAccount}, 200},
			{"/console/accounts?platform=" + consoleOtherComponent, []string{consoleOtherAccount}, 200},
			{"/console/accounts?tenant=" + otherTenant, nil, 200},
			{"/console/accounts?platform=wxffffffffffffffff", nil, 404},
		} {
			resp, page := br.get(tc.path)
			if resp.StatusCode != tc.code {
				t.Errorf("%s: got %d want %d", tc.path, resp.StatusCode, tc.code)
				continue
			}
			if got := listed(page); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%s: got %v want %v", tc.path, got, tc.want)
			}
		}
		_, page := br.get("/console/accounts?platform=" + consoleOtherComponent)
		if !regexp.MustCompile(`id="platform-picker"[\s\S]*?data-platform="` + consoleOtherComponent + `" class="active"`).MatchString(page) {
			t.Errorf("the picker does not show the second platform picked")
		}
		if !strings.Contains(page, `href="/console/accounts/`+consoleOtherAccount+`?platform=`+consoleOtherComponent+`"`) {
			t.Errorf("the account's link does not keep its platform")
		}
	})

	t.Run("an account's page offers only its platform's tenants, and its forms act there", func(t *testing.T) {
		resp, page := br.get("/console/accounts/" + consoleOtherAccount)
		wantStatus(t, resp, http.StatusOK)
		bind := regexp.MustCompile(`(?s)<form method="post" action="/console/accounts/` + consoleOtherAccount + `/bind\?platform=` + consoleOtherComponent + `"[^>]*id="bind-tenant">(.*?)</form>`).FindStringSubmatch(page)
		if bind == nil {
			t.Fatalf("no bind form acting on the second platform:\n%s", page)
		}
		if !strings.Contains(bind[1], otherTenant) || strings.Contains(bind[1], defaultTenant) {
			t.Fatalf("tenants offered: %s; want the second platform's only", bind[1])
		}
		resp, _ = post("/console/accounts/"+consoleOtherAccount+"/bind?platform="+consoleOtherComponent, url.Values{"tenant": {otherTenant}})
		wantStatus(t, resp, http.StatusSeeOther)
		wantLocation(t, resp, "/console/accounts/"+consoleOtherAccount+"?platform="+consoleOtherComponent+"&flash=bound")
		_, page = br.get("/console/tenants/" + otherTenant)
		if !strings.Contains(page, `href="/console/accounts/`+consoleOtherAccount+`?platform=`+consoleOtherComponent+`">Second Shop</a>`) {
			t.Errorf("the tenant's page does not list its account with its nick name from its platform")
		}
		if resp, _ := br.get("/console/accounts/" + consoleDefaultAccount + "?platform=" + consoleOtherComponent); resp.StatusCode != http.StatusNotFound {
			t.Errorf("the default's account on the second platform: got %d want 404", resp.StatusCode)
		}
	})

	t.Run("the quota page picks a platform; its caps are its tenants'", func(t *testing.T) {
		resp, _ := post("/console/quota/caps?platform="+consoleOtherComponent, url.Values{"tenant": {otherTenant}, "appid": {consoleOtherAccount}, "daily_limit": {"9"}})
		wantStatus(t, resp, http.StatusSeeOther)
		wantLocation(t, resp, "/console/quota?platform="+consoleOtherComponent+"&flash=cap_saved#caps")
		_, page := br.get("/console/quota?platform=" + consoleOtherComponent)
		if !strings.Contains(page, `data-cap="`+otherTenant+`/`+consoleOtherAccount+`"`) {
			t.Errorf("the second platform's quota page lacks the cap")
		}
		if strings.Contains(page, `<option value="`+defaultTenant+`"`) {
			t.Errorf("the second platform's cap form offers the default platform's tenant")
		}
		if _, page = br.get("/console/quota"); strings.Contains(page, `data-cap="`+otherTenant) {
			t.Errorf("the default platform's quota page shows the second's cap")
		}
	})
}
