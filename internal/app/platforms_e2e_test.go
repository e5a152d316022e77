package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/httpapi"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// The second platform of TestSeveralPlatformsInOneDeployment.
const (
	secondComponent = "wxc0ffee0000000002"
	secondSecret    = "second-component-secret"
	secondToken     = "secondtoken2"
	secondAESKey    = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
)

// TestSeveralPlatformsInOneDeployment runs two third-party platforms in one
// deployment: two replicas on one PostgreSQL database, the default platform
// from the environment and a second one registered through the admin API
// of one replica. It shows that the second platform is served by every
// replica without a restart, that tickets and component tokens never cross
// platforms, that one account authorized to both is two authorizations
// with their own tokens and refreshes, that tenants of one platform never
// reach the other's accounts (the isolation matrix, over every account
// route of the API), and that a platform in use cannot be removed.
func TestSeveralPlatformsInOneDeployment(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{Replicas: 2, Dialect: store.Postgres})
	ctx := context.Background()
	a, b := st.Replicas[0], st.Replicas[1]
	second := sim.PlatformOptions{
		AppID: secondComponent, Secret: secondSecret, Token: secondToken, EncodingAESKey: secondAESKey,
		EventURL:   st.SimURL + "/relay/wechat/components/" + secondComponent + "/events",
		MessageURL: st.SimURL + "/relay/wechat/components/" + secondComponent + "/accounts/$APPID$/callback",
	}
	if err := st.Sim.AddPlatform(second); err != nil {
		t.Fatal(err)
	}
	p2, err := st.Sim.Platform(secondComponent)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := st.Sim.Platform(testComponentAppID)
	if err != nil {
		t.Fatal(err)
	}
	componentOn := func(r *instance, appid string) (ticketAt, tokenExpires string) {
		var c struct {
			TicketReceivedAt *string `json:"ticket_received_at"`
			TokenExpiresAt   *string `json:"token_expires_at"`
		}
		if code, raw := st.callOn(r, http.MethodGet, "/admin/component?component_appid="+appid, testAdminToken, nil, &c); code != 200 {
			t.Fatalf("GET /admin/component?component_appid=%s on %s = %d %s", appid, r.Addr, code, raw)
		}
		if c.TicketReceivedAt != nil {
			ticketAt = *c.TicketReceivedAt
		}
		if c.TokenExpiresAt != nil {
			tokenExpires = *c.TokenExpiresAt
		}
		return ticketAt, tokenExpires
	}
	firstTicket, _ := componentOn(a, testComponentAppID)

	t.Run("a platform registered on one replica receives tickets on the other without a restart", func(t *testing.T) {
		st := st.in(t)
		var created struct {
			AppID      string `json:"appid"`
			EventURL   string `json:"event_url"`
			MessageURL string `json:"message_url"`
			Default    bool   `json:"default"`
		}
		body := map[string]any{"appid": secondComponent, "secret": secondSecret, "token": secondToken, "aes_key": secondAESKey}
		if code, raw := st.callOn(a, http.MethodPost, "/admin/components", testAdminToken, body, &created); code != 201 {
			t.Fatalf("POST /admin/components = %d %s", code, raw)
		} else if strings.Contains(string(raw), secondSecret) || strings.Contains(string(raw), secondAESKey) {
			t.Fatalf("the registration answered a secret: %s", raw)
		}
		if created.AppID != secondComponent || created.Default || !strings.HasSuffix(created.EventURL, "/wechat/components/"+secondComponent+"/events") {
			t.Fatalf("registered platform = %+v", created)
		}
		// WeChat pushes the new platform's first ticket to the replica
		// that did not register it, at once.
		st.Host.Relay(b.Addr)
		if _, err := p2.PushTicket(ctx); err != nil {
			t.Fatalf("the second platform's ticket pushed to the other replica: %v", err)
		}
		for _, r := range st.Replicas {
			eventually(t, 10*time.Second, "the second platform's component token on "+r.Addr, func() bool {
				_, exp := componentOn(r, secondComponent)
				return exp != ""
			})
		}
		for _, r := range st.Replicas {
			eventually(t, 5*time.Second, "/readyz on "+r.Addr+" reporting the second platform's ticket", func() bool {
				code, raw := st.callOn(r, http.MethodGet, "/readyz", "", nil, nil)
				return code == 200 && strings.Contains(string(raw), "component: ticket received\n") &&
					strings.Contains(string(raw), "component "+secondComponent+": ticket received\n")
			})
		}
		var list struct {
			Components []struct {
				AppID   string `json:"appid"`
				Default bool   `json:"default"`
			} `json:"components"`
		}
		st.must(http.MethodGet, "/admin/components", testAdminToken, nil, &list, 200)
		if len(list.Components) != 2 || list.Components[0].AppID != testComponentAppID || !list.Components[0].Default || list.Components[1].AppID != secondComponent {
			t.Fatalf("GET /admin/components = %+v, want the default then the second", list.Components)
		}
	})

	t.Run("tickets and component tokens are kept apart", func(t *testing.T) {
		st := st.in(t)
		if got, _ := componentOn(b, testComponentAppID); got != firstTicket {
			t.Errorf("the default platform's ticket moved from %s to %s when the second's arrived", firstTicket, got)
		}
		if c1, c2 := p1.Counters().Calls["api_component_token"], p2.Counters().Calls["api_component_token"]; c1 < 1 || c2 < 1 {
			t.Errorf("component tokens obtained: default %d, second %d; want each its own", c1, c2)
		}
		// A push sealed with one platform's settings is refused at the
		// other's URL and changes nothing there.
		c1, _ := wxcrypt.New("test-component-token", testAESKey, testComponentAppID)
		c2, _ := wxcrypt.New(secondToken, secondAESKey, secondComponent)
		for _, tc := range []struct {
			name string
			c    *wxcrypt.Crypter
			path string
		}{
			{"the default's ticket at the second's URL", c1, "/wechat/components/" + secondComponent + "/events"},
			{"the second's ticket at the default's URL", c2, "/wechat/events"},
			{"the second's ticket at the default's long URL", c2, "/wechat/components/" + testComponentAppID + "/events"},
		} {
			before1, _ := componentOn(a, testComponentAppID)
			before2, _ := componentOn(a, secondComponent)
			if code, raw := pushTicket(t, a, tc.path, tc.c); code == 200 {
				t.Errorf("%s: answered %d %s, want a refusal", tc.name, code, raw)
			}
			after1, _ := componentOn(a, testComponentAppID)
			after2, _ := componentOn(a, secondComponent)
			if after1 != before1 || after2 != before2 {
				t.Errorf("%s: a ticket was stored (default %s→%s, second %s→%s)", tc.name, before1, after1, before2, after2)
			}
		}
		// Operators often give two platforms the same Token and key: then the
		// appid inside the push alone keeps them apart.
		const third = "wxc0ffee0000000003"
		st.must(http.MethodPost, "/admin/components", testAdminToken, map[string]any{"appid": third, "secret": "third-secret",
			"token": secondToken, "aes_key": secondAESKey}, nil, 201)
		if code, raw := pushTicket(t, b, "/wechat/components/"+third+"/events", c2); code != http.StatusBadRequest {
			t.Errorf("the second's ticket at a platform sharing its Token and key = %d %s, want 400 (its appid is not the platform's)", code, raw)
		}
		if got, _ := componentOn(b, third); got != "" {
			t.Errorf("the platform sharing the second's crypto stored a ticket (%s)", got)
		}
		// New settings for it (a Token rotated on WeChat's page) reach the
		// other replica without a restart: a push sealed with them is
		// accepted there.
		var updated struct {
			AppID string `json:"appid"`
		}
		if code, raw := st.callOn(a, http.MethodPut, "/admin/components/"+third, testAdminToken, map[string]any{"token": "thirdtoken3"}, &updated); code != 200 || updated.AppID != third || strings.Contains(string(raw), "thirdtoken3") {
			t.Fatalf("PUT /admin/components/%s = %d %s", third, code, raw)
		}
		c3, _ := wxcrypt.New("thirdtoken3", secondAESKey, third)
		eventually(t, 5*time.Second, "a push sealed with the new Token accepted by the other replica", func() bool {
			code, _ := pushTicket(t, b, "/wechat/components/"+third+"/events", c3)
			return code == 200
		})
		st.must(http.MethodDelete, "/admin/components/"+third, testAdminToken, nil, nil, 204)
		if code, raw := st.callOn(a, http.MethodPost, "/wechat/components/wx0000000000000bad/events", "", nil, nil); code != 404 {
			t.Errorf("a push to a platform the deployment does not have = %d %s, want 404", code, raw)
		}
	})

	// Tenants: acme on the default platform (newStack's), beta on the
	// second. One account is authorized to both platforms and bound to
	// both tenants; another only to the default and acme.
	var beta struct {
		ID             string `json:"id"`
		ComponentAppID string `json:"component_appid"`
	}
	st.must(http.MethodPost, "/admin/tenants", testAdminToken, map[string]any{"name": "beta", "component_appid": secondComponent}, &beta, 201)
	if beta.ComponentAppID != secondComponent {
		t.Fatalf("tenant beta's platform = %q", beta.ComponentAppID)
	}
	var betaKey struct{ Key string }
	st.must(http.MethodPost, "/admin/tenants/"+beta.ID+"/keys", testAdminToken, map[string]any{"name": "beta"}, &betaKey, 201)
	const shared, onlyFirst, onlySecond = "wxa0000000000e2e01", "wxa0000000000e2e02", "wxa0000000000e2e03"
	for _, spec := range []sim.AccountSpec{
		{AppID: shared, Followers: 1200, PermissionSets: []int{2}, Tags: []sim.TagSpec{{ID: 2, Name: "vip", From: 0, To: 10}}},
		{AppID: onlyFirst, Followers: 30, PermissionSets: []int{2}},
		{AppID: onlySecond, Followers: 30, PermissionSets: []int{2}, Tags: []sim.TagSpec{{ID: 2, Name: "vip", From: 0, To: 10}}},
	} {
		if err := st.Sim.CreateAccount(spec); err != nil {
			t.Fatal(err)
		}
	}
	st.Host.Relay(a.Addr)
	for _, step := range []struct {
		p     *sim.Platform
		appid string
	}{{p1, shared}, {p2, shared}, {p1, onlyFirst}} {
		if _, err := step.p.Authorize(ctx, step.appid, ""); err != nil {
			t.Fatalf("authorize %s on %s: %v", step.appid, step.p.AppID(), err)
		}
	}
	st.must(http.MethodPut, "/admin/tenants/"+st.TenantID+"/authorizers/"+shared, testAdminToken, nil, nil, 204)
	st.must(http.MethodPut, "/admin/tenants/"+st.TenantID+"/authorizers/"+onlyFirst, testAdminToken, nil, nil, 204)
	st.must(http.MethodPut, "/admin/tenants/"+beta.ID+"/authorizers/"+shared, testAdminToken, nil, nil, 204)

	// beta authorizes a third account through the second platform's own
	// flow: its authorization link, WeChat's page, and the merchant's
	// browser back at the second platform's callback URL.
	t.Run("the second platform's authorization flow binds to its tenant", func(t *testing.T) {
		st := st.in(t)
		var auth struct{ URL string }
		st.must(http.MethodPost, "/v1/authorizations", betaKey.Key, map[string]any{"return_url": "https://beta.example/done", "biz_appid": onlySecond}, &auth, 201)
		u, err := url.Parse(auth.URL)
		if err != nil {
			t.Fatal(err)
		}
		redirect := u.Query().Get("redirect_uri")
		if u.Query().Get("component_appid") != secondComponent || !strings.Contains(redirect, "/wechat/components/"+secondComponent+"/callback?session=") {
			t.Fatalf("beta's authorization link %s: want the second platform's appid and callback", auth.URL)
		}
		code, err := p2.Authorize(ctx, onlySecond, u.Query().Get("pre_auth_code"))
		if err != nil {
			t.Fatal(err)
		}
		// The browser comes back to the other replica.
		cb, _ := url.Parse(sim.RedirectURL(redirect, code))
		status, raw := st.callOn(b, http.MethodGet, cb.RequestURI(), "", nil, nil)
		if status != http.StatusFound {
			t.Fatalf("the second platform's callback = %d %s, want 302", status, raw)
		}
		// The session is the second platform's: the default's callback
		// refuses it.
		if status, _ := st.callOn(b, http.MethodGet, "/wechat/callback?"+cb.RawQuery, "", nil, nil); status != http.StatusBadRequest {
			t.Errorf("the second platform's session at the default's callback = %d, want 400", status)
		}
		for i, r := range st.Replicas {
			eventually(t, 5*time.Second, fmt.Sprintf("beta serves %s on replica %d", onlySecond, i), func() bool {
				code, _ := st.callOn(r, http.MethodGet, "/v1/authorizers/"+onlySecond+"/fans", betaKey.Key, nil, nil)
				return code == 200
			})
		}
	})

	t.Run("the release test passes at the second platform's message URL, on either replica", func(t *testing.T) {
		st := st.in(t)
		var targets []string
		for _, r := range st.Replicas {
			targets = append(targets, "http://"+r.Addr+"/wechat/components/"+secondComponent+"/accounts/$APPID$/callback")
		}
		rep, err := p2.RunReleaseTest(ctx, sim.ReleaseTestOptions{Group: 2, Targets: targets, Copies: 2})
		if err != nil {
			t.Fatal(err)
		}
		wantPassed(t, rep)
		// The test account is the second platform's authorization, bound
		// to no tenant, and not the default platform's.
		list := func(component string) map[string]bool {
			var all struct {
				Authorizers []struct {
					AppID string `json:"appid"`
				} `json:"authorizers"`
			}
			st.must(http.MethodGet, "/admin/authorizers?component_appid="+component, testAdminToken, nil, &all, 200)
			out := map[string]bool{}
			for _, a := range all.Authorizers {
				out[a.AppID] = true
			}
			return out
		}
		group := sim.ReleaseGroups[1].AppID
		if !list(secondComponent)[group] || list(testComponentAppID)[group] {
			t.Errorf("the release test account %s: want it authorized to the second platform only", group)
		}
	})

	fans := func(r *instance, key, appid string) (int, []byte) {
		return st.callOn(r, http.MethodGet, "/v1/authorizers/"+appid+"/fans", key, nil, nil)
	}
	t.Run("one account authorized to both platforms is two authorizations", func(t *testing.T) {
		st := st.in(t)
		t1, t2 := p1.CurrentAccessToken(shared), p2.CurrentAccessToken(shared)
		if t1 == "" || t2 == "" || t1 == t2 {
			t.Fatalf("the account's tokens: default %q, second %q; want two different ones", t1, t2)
		}
		before1, before2 := p1.Counters().ByAccount["user/get"][shared], p2.Counters().ByAccount["user/get"][shared]
		for i, r := range st.Replicas {
			if code, raw := fans(r, st.Key, shared); code != 200 {
				t.Fatalf("acme's call on replica %d = %d %s", i, code, raw)
			}
			if code, raw := fans(r, betaKey.Key, shared); code != 200 {
				t.Fatalf("beta's call on replica %d = %d %s", i, code, raw)
			}
		}
		after1, after2 := p1.Counters().ByAccount["user/get"][shared], p2.Counters().ByAccount["user/get"][shared]
		if after1-before1 != 2 || after2-before2 != 2 {
			t.Errorf("user/get with each platform's token: default %d, second %d; want 2 each", after1-before1, after2-before2)
		}
		refreshes := func(p *sim.Platform) int64 { return p.Counters().ByAccount["api_authorizer_token"][shared] }
		r1, r2 := refreshes(p1), refreshes(p2)
		var refreshed struct {
			AppID string `json:"appid"`
		}
		st.must(http.MethodPost, "/admin/authorizers/"+shared+"/refresh?component_appid="+secondComponent, testAdminToken, nil, &refreshed, 200)
		if got1, got2 := refreshes(p1)-r1, refreshes(p2)-r2; got1 != 0 || got2 != 1 {
			t.Errorf("a refresh of the second platform's authorization: default refreshed %d times, second %d; want 0 and 1", got1, got2)
		}
		if p1.CurrentAccessToken(shared) != t1 {
			t.Errorf("the default platform's token changed when the second's was refreshed")
		}
		for i, r := range st.Replicas {
			eventually(t, 5*time.Second, fmt.Sprintf("beta served with the refreshed token on replica %d", i), func() bool {
				code, _ := fans(r, betaKey.Key, shared)
				return code == 200
			})
		}
		// Unauthorizing one platform leaves the other's authorization.
		if err := p2.Unauthorize(ctx, shared); err != nil {
			t.Fatal(err)
		}
		for i, r := range st.Replicas {
			eventually(t, 5*time.Second, fmt.Sprintf("beta refused on replica %d", i), func() bool {
				code, raw := fans(r, betaKey.Key, shared)
				return code == 403 && strings.Contains(string(raw), "authorizer_unauthorized")
			})
			if code, raw := fans(r, st.Key, shared); code != 200 {
				t.Errorf("acme after the second platform was unauthorized, replica %d = %d %s", i, code, raw)
			}
		}
		if _, err := p2.Authorize(ctx, shared, ""); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("tenants never reach another platform's accounts", func(t *testing.T) {
		st := st.in(t)
		// Binding beta to an account only the default platform holds is
		// refused as if the account did not exist.
		if code, raw := st.call(http.MethodPut, "/admin/tenants/"+beta.ID+"/authorizers/"+onlyFirst, testAdminToken, nil, nil); code != 404 {
			t.Errorf("binding beta to the default platform's account = %d %s, want 404", code, raw)
		}
		if code, raw := st.call(http.MethodPut, "/admin/tenants/"+st.TenantID+"/authorizers/"+onlySecond, testAdminToken, nil, nil); code != 404 {
			t.Errorf("binding acme to the second platform's account = %d %s, want 404", code, raw)
		}
		for _, route := range accountRoutesOfTheAPI(t) {
			for _, c := range []struct {
				name, key, appid string
				want             int
			}{
				{"beta on the default platform's account", betaKey.Key, onlyFirst, 404},
				{"acme on the second platform's account", st.Key, onlySecond, 404},
				{"beta on an appid no platform has", betaKey.Key, "wxa0000000000e2eff", 404},
				{"acme on an appid no platform has", st.Key, "wxa0000000000e2eff", 404},
			} {
				for i, r := range st.Replicas {
					code, raw := route.call(st, r, c.key, c.appid)
					if code != c.want {
						t.Errorf("%s: %s on replica %d = %d %s, want %d", route.name, c.name, i, code, raw, c.want)
					}
				}
			}
		}
		var list struct {
			Authorizers []struct {
				AppID string `json:"appid"`
			} `json:"authorizers"`
		}
		st.must(http.MethodGet, "/admin/authorizers?component_appid="+secondComponent, testAdminToken, nil, &list, 200)
		of := map[string]bool{}
		for _, a := range list.Authorizers {
			of[a.AppID] = true
		}
		if !of[shared] || !of[onlySecond] || of[onlyFirst] {
			t.Errorf("the second platform's accounts = %+v, want %s and %s, not %s", list.Authorizers, shared, onlySecond, onlyFirst)
		}
	})

	t.Run("the platforms' metrics are labelled apart", func(t *testing.T) {
		st := st.in(t)
		code, raw := st.callOn(a, http.MethodGet, "/metrics", "", nil, nil)
		if code != 200 {
			t.Fatalf("/metrics = %d", code)
		}
		for _, want := range []string{
			`wxgate_token_refreshes_total{component="` + secondComponent + `",kind="authorizer",result="ok"}`,
			`wxgate_component_ticket_age_seconds{component="` + testComponentAppID + `"}`,
			`wxgate_component_ticket_age_seconds{component="` + secondComponent + `"}`,
		} {
			if !bytes.Contains(raw, []byte(want)) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("a platform is removed only when no tenant uses it", func(t *testing.T) {
		st := st.in(t)
		for _, c := range []struct{ appid, why string }{{secondComponent, "beta belongs to it"}, {testComponentAppID, "the default platform"}} {
			if code, raw := st.call(http.MethodDelete, "/admin/components/"+c.appid, testAdminToken, nil, nil); code != 409 {
				t.Errorf("removing %s (%s) = %d %s, want 409", c.appid, c.why, code, raw)
			}
		}
		st.must(http.MethodDelete, "/admin/tenants/"+beta.ID, testAdminToken, nil, nil, 204)
		st.must(http.MethodDelete, "/admin/components/"+secondComponent, testAdminToken, nil, nil, 204)
		for _, r := range st.Replicas {
			eventually(t, 10*time.Second, "the removed platform's URL unknown on "+r.Addr, func() bool {
				code, _ := st.callOn(r, http.MethodPost, "/wechat/components/"+secondComponent+"/events", "", nil, nil)
				return code == 404
			})
		}
		if code, raw := st.callOn(b, http.MethodGet, "/wechat/components/"+secondComponent+"/callback?session=as_0&auth_code=x", "", nil, nil); code != 400 || !strings.Contains(string(raw), "<html") {
			t.Errorf("a merchant's browser back at a removed platform's callback = %d %.200s, want the 400 page", code, raw)
		}
		if code, raw := st.call(http.MethodPost, "/admin/tenants", testAdminToken, map[string]any{"name": "late", "component_appid": secondComponent}, nil); code != 400 {
			t.Errorf("a tenant on the removed platform = %d %s, want 400", code, raw)
		}
	})
}

// pushTicket posts to the replica's path a component_verify_ticket push
// sealed and signed by c, for c's appid, as WeChat would, and returns the
// answer.
func pushTicket(t *testing.T, on *instance, path string, c *wxcrypt.Crypter) (int, []byte) {
	t.Helper()
	now := time.Now()
	plain := wxcrypt.EncodeEvent(wxcrypt.Event{AppID: c.AppID(), CreateTime: now.Unix(), InfoType: wxcrypt.InfoTypeVerifyTicket, ComponentVerifyTicket: "ticket@@@forged"})
	ts, nonce := strconv.FormatInt(now.Unix(), 10), "n0nce"
	sealed, sig, err := c.SealEvent(plain, ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"timestamp": {ts}, "nonce": {nonce}, "msg_signature": {sig}, "encrypt_type": {"aes"}}
	resp, err := http.Post("http://"+on.Addr+path+"?"+q.Encode(), "text/xml", bytes.NewReader(sealed))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// apiAccountRoute is one route of the tenant API that names an account,
// as the OpenAPI document lists it.
type apiAccountRoute struct {
	name, method, path string
	compat             bool
	// bodyAppID: the account is named in the JSON body.
	bodyAppID bool
}

func (r apiAccountRoute) call(st *stack, on *instance, key, appid string) (int, []byte) {
	path := strings.ReplaceAll(strings.ReplaceAll(r.path, "{appid}", appid), "{tagid}", "2")
	if r.compat {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "access_token=" + url.QueryEscape(key)
		var body io.Reader
		if r.method == http.MethodPost {
			body = strings.NewReader(`{"tagid":2}`)
		}
		req, _ := http.NewRequest(r.method, "http://"+on.Addr+path, body)
		resp, err := st.client.Do(req)
		if err != nil {
			st.t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		// The compatible API answers WeChat's shape: an unknown account is
		// errcode 40013 (invalid appid) with HTTP 200.
		var e struct {
			Errcode int `json:"errcode"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Errcode != 0 && resp.StatusCode == 200 {
			return 404, raw
		}
		return resp.StatusCode, raw
	}
	if r.bodyAppID {
		return st.callOn(on, r.method, path, key, map[string]any{"appid": appid}, nil)
	}
	return st.callOn(on, r.method, path, key, nil, nil)
}

// accountRoutesOfTheAPI lists every tenant and compatible route whose path
// names an account, from the OpenAPI document, so a route added later
// joins the cross-platform matrix by itself.
func accountRoutesOfTheAPI(t *testing.T) []apiAccountRoute {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var out []apiAccountRoute
	for path, ops := range doc.Paths {
		if !strings.Contains(path, "{appid}") || !(strings.HasPrefix(path, "/v1/") || strings.HasPrefix(path, "/wx/")) {
			continue
		}
		for method := range ops {
			m := strings.ToUpper(method)
			out = append(out, apiAccountRoute{name: m + " " + path, method: m, path: path, compat: strings.HasPrefix(path, "/wx/")})
		}
	}
	// The cloud-call route names its account in the body.
	if _, ok := doc.Paths["/v1/openapi/{name}"]; ok {
		out = append(out, apiAccountRoute{name: "POST /v1/openapi/{name} (appid in the body)", method: http.MethodPost, path: "/v1/openapi/officialAccount.user.getList", bodyAppID: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	if len(out) < 6 {
		t.Fatalf("only %d account routes in the OpenAPI document: %v", len(out), out)
	}
	return out
}
