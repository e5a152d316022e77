package sim

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// noRedirect is a client that returns redirects instead of following them.
func (e *env) noRedirect() *http.Client {
	c := *e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (e *env) getPage(path string) (int, string) {
	e.t.Helper()
	resp, err := e.srv.Client().Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// formOf extracts the hidden fields of the page's form.
func formOf(t *testing.T, html string) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(html, -1) {
		v.Set(m[1], htmlUnescape(m[2]))
	}
	if v.Get("pre_auth_code") == "" {
		t.Fatalf("page has no form: %s", html)
	}
	return v
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

func TestAuthorizationPageFlow(t *testing.T) {
	e := newEnv(t)
	ctok := e.componentToken()
	_ = e.sim.CreateAccount(AccountSpec{AppID: "wxacct1z0000000000", NickName: "Acme <News>", Followers: 12})
	_ = e.sim.CreateAccount(AccountSpec{AppID: "wxacct2z0000000000", NickName: "Beta"})
	pre := e.preAuthCode(ctok)
	redirect := "http://gateway.example/wechat/callback?session=abc123"
	q := url.Values{"component_appid": {testComponent}, "pre_auth_code": {pre}, "redirect_uri": {redirect}, "auth_type": {"3"}}

	status, html := e.getPage("/cgi-bin/componentloginpage?" + q.Encode())
	if status != 200 {
		t.Fatalf("page %d: %s", status, html)
	}
	for _, want := range []string{`value="wxacct1z0000000000" checked`, `value="wxacct2z0000000000"`, "Acme &lt;News&gt;", `action="/sim/authpage/confirm"`, `id="confirm"`} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	form := formOf(t, html)
	if form.Get("redirect_uri") != redirect {
		t.Fatalf("hidden redirect_uri = %q", form.Get("redirect_uri"))
	}
	form.Set("appid", "wxacct2z0000000000")
	resp, err := e.noRedirect().PostForm(e.srv.URL+"/sim/authpage/confirm", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("confirm answered %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	lq := loc.Query()
	if loc.Host != "gateway.example" || loc.Path != "/wechat/callback" || lq.Get("session") != "abc123" || lq.Get("expires_in") != "600" ||
		!strings.HasPrefix(loc.RawQuery, "session=abc123&auth_code=") {
		t.Fatalf("Location = %s", loc)
	}
	ev := e.rcv.last(t)
	if ev.InfoType != "authorized" || ev.AuthorizerAppid != "wxacct2z0000000000" || ev.PreAuthCode != pre || ev.AuthorizationCode != lq.Get("auth_code") {
		t.Fatalf("event %+v", ev)
	}
	info, r := e.queryAuth(ctok, lq.Get("auth_code"))
	e.mustCode(r, 0)
	if info.AuthorizerAppID != "wxacct2z0000000000" {
		t.Fatalf("exchanged code for %s", info.AuthorizerAppID)
	}

	// The pre-auth code is used up: the page and the confirm refuse it.
	if status, _ := e.getPage("/cgi-bin/componentloginpage?" + q.Encode()); status != 400 {
		t.Fatalf("page with a used pre-auth code: %d", status)
	}
	resp, _ = e.noRedirect().PostForm(e.srv.URL+"/sim/authpage/confirm", form)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("confirm with a used pre-auth code: %d", resp.StatusCode)
	}
}

func TestMobilePageAndBizAppID(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.PublicURL = "http://sim.example:9090/" })
	ctok := e.componentToken()
	_ = e.sim.CreateAccount(AccountSpec{AppID: "wxacct1z0000000000"})
	_ = e.sim.CreateAccount(AccountSpec{AppID: "wxacct2z0000000000"})
	if _, err := e.sim.Authorize(t.Context(), "wxacct2z0000000000", ""); err != nil {
		t.Fatal(err)
	}
	pre := e.preAuthCode(ctok)
	q := url.Values{"action": {"bindcomponent"}, "no_scan": {"1"}, "component_appid": {testComponent}, "pre_auth_code": {pre},
		"redirect_uri": {"https://gw.example/cb"}, "auth_type": {"1"}, "biz_appid": {"wxacct2z0000000000"}}
	status, html := e.getPage("/wxaopen/safe/bindcomponent?" + q.Encode())
	if status != 200 || strings.Contains(html, "wxacct1z0000000000") || !strings.Contains(html, `value="wxacct2z0000000000" checked`) ||
		!strings.Contains(html, "already authorized") || !strings.Contains(html, `action="http://sim.example:9090/sim/authpage/confirm"`) {
		t.Fatalf("mobile page %d: %s", status, html)
	}
	form := formOf(t, html)
	form.Set("appid", "wxacct1z0000000000") // not allowed by biz_appid
	resp, _ := e.noRedirect().PostForm(e.srv.URL+"/sim/authpage/confirm", form)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("confirm of an account outside biz_appid: %d", resp.StatusCode)
	}
	form.Set("appid", "wxacct2z0000000000")
	resp, _ = e.noRedirect().PostForm(e.srv.URL+"/sim/authpage/confirm", form)
	resp.Body.Close()
	if resp.StatusCode != 302 || !strings.HasPrefix(resp.Header.Get("Location"), "https://gw.example/cb?auth_code=") {
		t.Fatalf("confirm: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if ev := e.rcv.last(t); ev.InfoType != "updateauthorized" || ev.PreAuthCode != pre {
		t.Fatalf("event %+v", ev)
	}

	// Bad parameters each get an error page.
	good := func() url.Values {
		return url.Values{"component_appid": {testComponent}, "pre_auth_code": {e.preAuthCode(ctok)}, "redirect_uri": {"https://gw.example/cb"}}
	}
	tests := []struct {
		name string
		path string
		q    func() url.Values
	}{
		{"wrong component", "/cgi-bin/componentloginpage", func() url.Values { v := good(); v.Set("component_appid", "wxotherz0000000000"); return v }},
		{"unknown pre-auth code", "/cgi-bin/componentloginpage", func() url.Values { v := good(); v.Set("pre_auth_code", "preauthcode@@@x"); return v }},
		{"no redirect", "/cgi-bin/componentloginpage", func() url.Values { v := good(); v.Del("redirect_uri"); return v }},
		{"relative redirect", "/cgi-bin/componentloginpage", func() url.Values { v := good(); v.Set("redirect_uri", "/cb"); return v }},
		{"bad auth_type", "/cgi-bin/componentloginpage", func() url.Values { v := good(); v.Set("auth_type", "9"); return v }},
		{"unknown biz_appid", "/cgi-bin/componentloginpage", func() url.Values { v := good(); v.Set("biz_appid", "wxnobodyz000000000"); return v }},
		{"mobile without action", "/wxaopen/safe/bindcomponent", good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, html := e.getPage(tt.path + "?" + tt.q().Encode())
			if status != 400 || !strings.Contains(html, `id="error"`) {
				t.Fatalf("%d: %s", status, html)
			}
		})
	}
	// Mini Programs only: no Official Account to pick.
	v := good()
	v.Set("auth_type", "2")
	if status, html := e.getPage("/cgi-bin/componentloginpage?" + v.Encode()); status != 200 || strings.Contains(html, "<form") {
		t.Fatalf("auth_type 2: %d %s", status, html)
	}
	// An expired pre-auth code.
	v = good()
	e.clock.Advance(600e9)
	if status, _ := e.getPage("/cgi-bin/componentloginpage?" + v.Encode()); status != 400 {
		t.Fatalf("expired pre-auth code: %d", status)
	}
}

func TestRedirectURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://gw.example/cb", "https://gw.example/cb?auth_code=queryauthcode%40%40%40x&expires_in=600"},
		{"https://gw.example/cb?session=ID", "https://gw.example/cb?session=ID&auth_code=queryauthcode%40%40%40x&expires_in=600"},
		{"https://gw.example/cb?a=1&b=2#frag", "https://gw.example/cb?a=1&b=2&auth_code=queryauthcode%40%40%40x&expires_in=600#frag"},
	}
	for _, tt := range tests {
		if got := RedirectURL(tt.in, "queryauthcode@@@x"); got != tt.want {
			t.Errorf("RedirectURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
