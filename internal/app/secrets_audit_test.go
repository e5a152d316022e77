package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// auditSecretFields are the JSON fields and query parameters through which
// WeChat and the gateway exchange secrets (docs/wechat.md, "The component token chain"): whatever value
// they carry is recorded as a secret.
var auditSecretFields = map[string]string{
	"component_appsecret":      "component secret",
	"component_verify_ticket":  "ticket",
	"component_access_token":   "component token",
	"pre_auth_code":            "pre_auth_code",
	"authorization_code":       "auth code",
	"auth_code":                "auth code",
	"authorizer_access_token":  "access token",
	"access_token":             "access token",
	"authorizer_refresh_token": "refresh token",
	"refresh_token":            "refresh token",
}

// auditSecrets is every secret used during the audit, by value, with its kind.
type auditSecrets struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *auditSecrets) add(kind, v string) {
	if v == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	if _, ok := s.m[v]; !ok {
		s.m[v] = kind
	}
}

// count returns how many secrets of kind were recorded.
func (s *auditSecrets) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range s.m {
		if k == kind {
			n++
		}
	}
	return n
}

func (s *auditSecrets) has(v string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[v]
	return ok
}

// snapshot returns the secrets sorted by value.
func (s *auditSecrets) snapshot() [][2]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][2]string, 0, len(s.m))
	for v, k := range s.m {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][1] < out[j][1] })
	return out
}

// fromQuery records the secret parameters of a query.
func (s *auditSecrets) fromQuery(q url.Values) {
	for name, kind := range auditSecretFields {
		for _, v := range q[name] {
			s.add(kind, v)
		}
	}
}

// fromJSON records the secret fields anywhere in a JSON document.
func (s *auditSecrets) fromJSON(raw []byte) {
	var doc any
	if json.Unmarshal(raw, &doc) != nil {
		return
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if str, ok := x.(string); ok {
					if kind, ok := auditSecretFields[k]; ok {
						s.add(kind, str)
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
}

// eventRecorder is the simulator's push transport: it decrypts every pushed
// event (with the platform's own key, as the gateway does) and records the
// ticket, authorization code and pre_auth_code it carries.
type eventRecorder struct {
	secrets *auditSecrets
	crypter *wxcrypt.Crypter
	next    http.RoundTripper
}

func (r *eventRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if env, err := wxcrypt.ParseEnvelope(body); err == nil {
			if plain, err := r.crypter.Decrypt(env.Encrypt); err == nil {
				if ev, err := wxcrypt.ParseEvent(plain); err == nil {
					r.secrets.add("ticket", ev.ComponentVerifyTicket)
					r.secrets.add("auth code", ev.AuthorizationCode)
					r.secrets.add("pre_auth_code", ev.PreAuthCode)
				}
			}
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	return r.next.RoundTrip(req)
}

// wechatRecorder sits between the gateway and the simulator and records
// every secret in the gateway's WeChat requests (query and body) and in
// WeChat's answers.
func wechatRecorder(t *testing.T, secrets *auditSecrets, upstream string) string {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			secrets.fromQuery(pr.In.URL.Query())
			if pr.In.Body != nil {
				body, _ := io.ReadAll(pr.In.Body)
				secrets.fromJSON(body)
				pr.Out.Body = io.NopCloser(bytes.NewReader(body))
				pr.Out.ContentLength = int64(len(body))
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			secrets.fromJSON(body)
			resp.Body = io.NopCloser(bytes.NewReader(body))
			return nil
		},
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

// auditExchange is one gateway answer kept for the scan. allowed are the
// secrets the contract says this answer carries (a key on issue, the
// pre_auth_code inside the authorization URL).
type auditExchange struct {
	what    string
	status  int
	header  http.Header
	body    []byte
	allowed []string
}

// auditClient sends requests to the gateway and keeps every answer.
type auditClient struct {
	base      string
	client    *http.Client
	mu        sync.Mutex
	exchanges []auditExchange
}

func (c *auditClient) do(t *testing.T, method, path, bearer string, body any, wantStatus int) auditExchange {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	x := auditExchange{what: method + " " + path, status: resp.StatusCode, header: resp.Header, body: raw}
	c.mu.Lock()
	c.exchanges = append(c.exchanges, x)
	c.mu.Unlock()
	if wantStatus != 0 && resp.StatusCode != wantStatus {
		t.Fatalf("%s %s = %d %.300s, want %d", method, path, resp.StatusCode, raw, wantStatus)
	}
	return x
}

// allow marks secrets the last answer may carry by contract.
func (c *auditClient) allow(secrets ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exchanges[len(c.exchanges)-1].allowed = append(c.exchanges[len(c.exchanges)-1].allowed, secrets...)
}

// auditNeedles are the strings whose presence betrays secret v: the value
// itself, its random part (after a "…@@@" or "90_" prefix, so a re-encoded
// or prefixed copy is found too), its query-escaped form, and for a tenant
// key its signature.
func auditNeedles(v string) []string {
	needles := []string{v}
	if _, rest, ok := strings.Cut(v, "@@@"); ok && len(rest) >= 16 {
		needles = append(needles, rest)
	}
	if rest, ok := strings.CutPrefix(v, "90_"); ok && len(rest) >= 16 {
		needles = append(needles, rest)
	}
	if e := url.QueryEscape(v); e != v {
		needles = append(needles, e)
	}
	if parts := strings.Split(v, "."); len(parts) == 3 && len(parts[2]) >= 16 {
		needles = append(needles, parts[2])
	}
	return needles
}

var (
	auditFlowAccount    = appid(0xa0d1) // authorized through POST /v1/authorizations during the audit
	auditSet1Account    = appid(0xa0d2) // granted set 1 only: refused locally
	auditLeavingAccount = appid(0xa0d3) // unauthorizes the platform during the audit
)

// TestSecretsAudit runs the whole flow with debug logging (ticket pushes,
// the authorization through POST /v1/authorizations, the simulator's
// confirmation and the callback redirect, REST, export and compatible
// calls, a forced refresh, an invalidated token recovered by
// compare-and-refresh, an invalidated component token, a re-authorization,
// an account leaving, refused keys and permissions, injected errcodes and
// HTTP errors, key revocation) while recording every secret that crossed
// the wire: the configured ones, every tenant key, and every ticket,
// component token, access token, refresh token, pre_auth_code and auth code
// the simulator issued or the gateway sent. None of them may appear in a log
// line, a /metrics line, an API answer (body or header; only the contract's
// own exceptions: a key on issue, the pre_auth_code in the authorization
// URL) or a pg_dump of the database.
func TestSecretsAudit(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("pg_dump"); err != nil {
		t.Fatalf("pg_dump is needed for this test (apt-get install postgresql-client): %v", err)
	}
	secrets := &auditSecrets{}
	crypter, err := wxcrypt.New("test-component-token", testAESKey, testComponentAppID)
	if err != nil {
		t.Fatal(err)
	}
	var wechatURL string
	st := newStack(t, stackOptions{
		Accounts: []sim.AccountSpec{
			{AppID: fansAccount, Followers: 23000, PermissionSets: []int{2}, Tags: []sim.TagSpec{{ID: 134, From: 0, To: 150}}},
			{AppID: auditSet1Account, Followers: 5, PermissionSets: []int{1}},
			{AppID: auditLeavingAccount, Followers: 5, PermissionSets: []int{2}},
		},
		Sim: func(o *sim.Options) {
			o.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: &eventRecorder{secrets: secrets, crypter: crypter, next: http.DefaultTransport}}
		},
		Env: func(e map[string]string) {
			e["WXGATE_LOG_LEVEL"] = "debug"
			e["WXGATE_UPSTREAM_TIMEOUT"] = "5s"
			e["WXGATE_WEBHOOK_ALLOW_PRIVATE"] = "true" // the audit's webhook receiver is on loopback
			if wechatURL == "" {
				wechatURL = wechatRecorder(t, secrets, e["WXGATE_WECHAT_API_URL"])
			}
			e["WXGATE_WECHAT_API_URL"], e["WXGATE_WECHAT_MP_URL"], e["WXGATE_WECHAT_OPEN_URL"] = wechatURL, wechatURL, wechatURL
			for _, k := range []string{"WXGATE_SECRET_KEY", "WXGATE_ADMIN_TOKEN", "WXGATE_COMPONENT_SECRET", "WXGATE_COMPONENT_TOKEN", "WXGATE_COMPONENT_AES_KEY"} {
				secrets.add(k, e[k])
			}
		},
	})
	ctx := context.Background()
	gw := st.Replicas[0]
	c := &auditClient{base: st.base(), client: &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	admin := testAdminToken
	secrets.add("tenant key", st.Key)
	master := storetest.Key()
	secrets.add("WXGATE_SECRET_KEY (raw)", base64.RawStdEncoding.EncodeToString(master))
	secrets.add("WXGATE_SECRET_KEY (raw)", base64.URLEncoding.EncodeToString(master))
	secrets.add("WXGATE_SECRET_KEY (raw)", hex.EncodeToString(master))

	// The tenant's webhook receives every authorizer event of the audit:
	// what it is sent is one more haystack.
	hook := newHookReceiver(t)
	t.Run("webhook registered", func(t *testing.T) {
		x := c.do(t, http.MethodPut, "/v1/webhook", st.Key, map[string]any{"url": hook.URL}, 200)
		var w struct{ Secret string }
		if err := json.Unmarshal(x.body, &w); err != nil || w.Secret == "" {
			t.Fatalf("PUT /v1/webhook: %s", x.body)
		}
		secrets.add("webhook secret", w.Secret)
		c.allow(w.Secret) // docs/api.md, "Webhooks": the secret is shown when the webhook is created
	})

	// A second platform, registered through the admin API: its settings
	// travel in one request body and must never come back out.
	t.Run("second platform registered", func(t *testing.T) {
		second := sim.PlatformOptions{AppID: "wxc0ffee00000a0d17", Secret: "audit-second-platform-secret", Token: "auditsecondtoken",
			EncodingAESKey: "AuditSecondPlatformKey0123456789abcdefghijk"}
		second.EventURL = st.SimURL + "/relay/wechat/components/" + second.AppID + "/events"
		for kind, v := range map[string]string{"second platform's secret": second.Secret, "second platform's Token": second.Token,
			"second platform's EncodingAESKey": second.EncodingAESKey} {
			secrets.add(kind, v)
		}
		c.do(t, http.MethodPost, "/admin/components", admin, map[string]any{"appid": second.AppID, "secret": second.Secret,
			"token": second.Token, "aes_key": second.EncodingAESKey}, 201)
		if err := st.Sim.AddPlatform(second); err != nil {
			t.Fatal(err)
		}
		p, err := st.Sim.Platform(second.AppID)
		if err != nil {
			t.Fatal(err)
		}
		ticket, err := p.PushTicket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		secrets.add("second platform's ticket", ticket)
		c.do(t, http.MethodGet, "/admin/components", admin, nil, 200)
	})

	t.Run("events and authorization", func(t *testing.T) {
		ticket, err := st.Sim.PushTicket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		secrets.add("ticket", ticket)
		if err := st.Sim.CreateAccount(sim.AccountSpec{AppID: auditFlowAccount, Followers: 40, PermissionSets: []int{1, 2}}); err != nil {
			t.Fatal(err)
		}
		x := c.do(t, http.MethodPost, "/v1/authorizations", st.Key, map[string]any{"return_url": "https://shop.example/wechat/done?order=7", "biz_appid": auditFlowAccount}, 201)
		var a struct {
			ID        string `json:"id"`
			URL       string `json:"url"`
			MobileURL string `json:"mobile_url"`
		}
		if err := json.Unmarshal(x.body, &a); err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(a.URL)
		if err != nil {
			t.Fatal(err)
		}
		pac := u.Query().Get("pre_auth_code")
		if !strings.HasPrefix(pac, "preauthcode@@@") || !strings.Contains(a.MobileURL, url.QueryEscape(pac)) {
			t.Fatalf("authorization URLs %q / %q carry no pre_auth_code", a.URL, a.MobileURL)
		}
		secrets.add("pre_auth_code", pac)
		c.allow(pac) // docs/api.md, "POST /v1/authorizations": the URLs carry a fresh pre_auth_code
		code, err := st.Sim.Authorize(ctx, auditFlowAccount, pac)
		if err != nil {
			t.Fatal(err)
		}
		secrets.add("auth code", code)
		x = c.do(t, http.MethodGet, "/wechat/callback?session="+url.QueryEscape(a.ID)+"&auth_code="+url.QueryEscape(code)+"&expires_in=600", "", nil, http.StatusFound)
		loc, _ := url.Parse(x.header.Get("Location"))
		if loc == nil || loc.Host != "shop.example" || loc.Query().Get("result") != "authorized" || loc.Query().Get("appid") != auditFlowAccount {
			t.Fatalf("callback redirect %q", x.header.Get("Location"))
		}
		// A second authorization of an authorized account (updateauthorized) rotates its refresh token.
		if err := st.Sim.SetPermissionSets(ctx, auditFlowAccount, []int{1, 2, 100}, true); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "updateauthorized applied", func() bool {
			x := c.do(t, http.MethodGet, "/v1/authorizers/"+auditFlowAccount, st.Key, nil, 200)
			return bytes.Contains(x.body, []byte(`"permission_sets":[1,2,100]`))
		})
		// The binding the callback made reaches the in-memory directory at its next poll.
		eventually(t, 5*time.Second, "the new account callable", func() bool {
			return c.do(t, http.MethodGet, "/v1/authorizers/"+auditFlowAccount+"/fans", st.Key, nil, 0).status == 200
		})
	})

	t.Run("proxied calls", func(t *testing.T) {
		for _, p := range []string{
			"/v1/authorizers",
			"/v1/authorizers/" + fansAccount,
			"/v1/authorizers/" + fansAccount + "/fans",
			"/v1/authorizers/" + fansAccount + "/fans?next_openid=" + url.QueryEscape(sim.OpenID(fansAccount, 9999)),
			"/v1/authorizers/" + fansAccount + "/tags/134/fans",
			"/v1/authorizers/" + fansAccount + "/tags/134/fans/export?format=csv",
			"/v1/authorizers/" + auditFlowAccount + "/fans/export",
			"/v1/authorizers/" + auditFlowAccount + "/fans",
		} {
			c.do(t, http.MethodGet, p, st.Key, nil, 200)
		}
		c.do(t, http.MethodGet, "/wx/"+fansAccount+"/cgi-bin/user/get?access_token="+url.QueryEscape(st.Key), "", nil, 200)
		c.do(t, http.MethodPost, "/wx/"+fansAccount+"/cgi-bin/user/tag/get?access_token="+url.QueryEscape(st.Key), "", []byte(`{"tagid":134,"next_openid":""}`), 200)
		if last := c.exchanges[len(c.exchanges)-1]; !bytes.Contains(last.body, []byte(sim.OpenID(fansAccount, 0))) {
			t.Fatalf("compatible getTagFans did not return followers: %.200s", last.body)
		}
	})

	t.Run("refreshes", func(t *testing.T) {
		before := st.Sim.CurrentAccessToken(fansAccount)
		c.do(t, http.MethodPost, "/admin/authorizers/"+fansAccount+"/refresh", admin, nil, 200)
		if after := st.Sim.CurrentAccessToken(fansAccount); after == before {
			t.Fatal("the forced refresh issued no new token")
		}
		if err := st.Sim.InvalidateToken(auditFlowAccount); err != nil {
			t.Fatal(err)
		}
		old := st.Sim.CurrentAccessToken(auditFlowAccount)
		c.do(t, http.MethodGet, "/v1/authorizers/"+auditFlowAccount+"/fans", st.Key, nil, 200)
		if st.Sim.CurrentAccessToken(auditFlowAccount) == old {
			t.Fatal("compare-and-refresh issued no new token")
		}
		if err := st.Sim.InvalidateComponentToken(); err != nil {
			t.Fatal(err)
		}
		c.do(t, http.MethodPost, "/admin/authorizers/"+auditFlowAccount+"/refresh", admin, nil, 200)
	})

	t.Run("errors", func(t *testing.T) {
		c.do(t, http.MethodGet, "/v1/authorizers", st.Key+"x", nil, 401)
		c.do(t, http.MethodGet, "/v1/authorizers", admin, nil, 401)
		c.do(t, http.MethodGet, "/admin/tenants", st.Key, nil, 401)
		c.do(t, http.MethodGet, "/wx/"+fansAccount+"/cgi-bin/user/get?access_token="+url.QueryEscape(st.Key[:len(st.Key)-2]), "", nil, 200)
		c.do(t, http.MethodGet, "/v1/authorizers/"+auditSet1Account+"/fans", st.Key, nil, 403)
		c.do(t, http.MethodGet, "/v1/authorizers/"+fansAccount+"/tags/999/fans", st.Key, nil, 400)
		for _, f := range []struct {
			fault  sim.Fault
			status int
		}{
			{sim.Fault{Endpoint: sim.EndpointUserGet, AppID: fansAccount, Kind: "errcode", Errcode: 45009}, 429},
			{sim.Fault{Endpoint: sim.EndpointUserGet, AppID: fansAccount, Kind: "errcode", Errcode: 40013}, 502},
			{sim.Fault{Endpoint: sim.EndpointUserGet, AppID: fansAccount, Kind: "errcode", Errcode: -1}, 503},
			{sim.Fault{Endpoint: sim.EndpointUserGet, AppID: fansAccount, Kind: "http_status", Status: 502}, 503},
			{sim.Fault{Endpoint: sim.EndpointUserGet, AppID: fansAccount, Kind: "errcode", Errcode: 42001}, 0},
		} {
			if err := st.Sim.SetFault(f.fault); err != nil {
				t.Fatal(err)
			}
			c.do(t, http.MethodGet, "/v1/authorizers/"+fansAccount+"/fans", st.Key, nil, f.status)
			c.do(t, http.MethodGet, "/wx/"+fansAccount+"/cgi-bin/user/get?access_token="+url.QueryEscape(st.Key), "", nil, 200)
			st.Sim.ClearFaults()
		}
		// A refused refresh token sends the gateway to api_get_authorizer_list, whose answer lists every refresh token.
		if err := st.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointAuthorizerToken, AppID: auditLeavingAccount, Kind: "errcode", Errcode: 61023}); err != nil {
			t.Fatal(err)
		}
		c.do(t, http.MethodPost, "/admin/authorizers/"+auditLeavingAccount+"/refresh", admin, nil, 0)
		st.Sim.ClearFaults()
		c.do(t, http.MethodPost, "/admin/authorizers/"+auditLeavingAccount+"/refresh", admin, nil, 0)
		c.do(t, http.MethodGet, "/v1/authorizers/"+auditLeavingAccount+"/fans", st.Key, nil, 0)
		if err := st.Sim.Unauthorize(ctx, auditLeavingAccount); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "unauthorized applied", func() bool {
			return c.do(t, http.MethodGet, "/v1/authorizers/"+auditLeavingAccount+"/fans", st.Key, nil, 0).status == 403
		})
	})

	t.Run("keys", func(t *testing.T) {
		x := c.do(t, http.MethodPost, "/admin/tenants/"+st.TenantID+"/keys", admin, map[string]any{"name": "ci", "ttl_seconds": 3600, "appids": []string{fansAccount}}, 201)
		var k struct{ KID, Key string }
		if err := json.Unmarshal(x.body, &k); err != nil || k.Key == "" {
			t.Fatalf("issued key: %s", x.body)
		}
		secrets.add("tenant key", k.Key)
		c.allow(k.Key) // docs/api.md, "Keys": the key is shown once, on issue
		c.do(t, http.MethodGet, "/v1/authorizers/"+fansAccount+"/fans", k.Key, nil, 200)
		c.do(t, http.MethodGet, "/v1/authorizers/"+auditFlowAccount+"/fans", k.Key, nil, 403)
		c.do(t, http.MethodDelete, "/admin/keys/"+k.KID, admin, nil, 204)
		c.do(t, http.MethodGet, "/v1/authorizers/"+fansAccount+"/fans", k.Key, nil, 401)
		c.do(t, http.MethodGet, "/wx/"+fansAccount+"/cgi-bin/user/get?access_token="+url.QueryEscape(k.Key), "", nil, 200)
	})

	t.Run("webhook rotated and tested", func(t *testing.T) {
		x := c.do(t, http.MethodPost, "/v1/webhook/rotate-secret", st.Key, nil, 200)
		var w struct{ Secret string }
		if err := json.Unmarshal(x.body, &w); err != nil || w.Secret == "" {
			t.Fatalf("rotate: %s", x.body)
		}
		secrets.add("webhook secret", w.Secret)
		c.allow(w.Secret) // and by a rotation
		c.do(t, http.MethodGet, "/v1/webhook", st.Key, nil, 200)
		c.do(t, http.MethodPost, "/v1/webhook/test", st.Key, nil, 202)
		hook.waitFor(t, "webhook.test", "")
		hook.waitFor(t, "authorizer.unauthorized", auditLeavingAccount)
		c.do(t, http.MethodGet, "/v1/webhook/deliveries", st.Key, nil, 200)
	})

	t.Run("operator views", func(t *testing.T) {
		for _, p := range []string{"/admin/tenants", "/admin/tenants/" + st.TenantID + "/keys", "/admin/tenants/" + st.TenantID + "/usage",
			"/admin/authorizers", "/admin/component"} {
			c.do(t, http.MethodGet, p, admin, nil, 200)
		}
		for _, p := range []string{"/healthz", "/readyz", "/openapi.json"} {
			c.do(t, http.MethodGet, p, "", nil, 200)
		}
	})

	// Everything the simulator still considers current must have been recorded on the wire.
	for _, a := range []string{fansAccount, auditFlowAccount, auditSet1Account} {
		if tok := st.Sim.CurrentAccessToken(a); !secrets.has(tok) {
			t.Errorf("the current access token of %s was never seen on the wire; the recorder is blind", a)
		}
	}
	if tok := st.Sim.CurrentComponentToken(); !secrets.has(tok) {
		t.Error("the current component token was never seen on the wire; the recorder is blind")
	}
	for kind, least := range map[string]int{
		"ticket": 2, "component token": 2, "access token": 6, "refresh token": 4, "pre_auth_code": 1, "auth code": 5,
		"tenant key": 2, "webhook secret": 2, "WXGATE_ADMIN_TOKEN": 1, "WXGATE_COMPONENT_SECRET": 1, "WXGATE_COMPONENT_TOKEN": 1, "WXGATE_COMPONENT_AES_KEY": 1, "WXGATE_SECRET_KEY": 1,
	} {
		if n := secrets.count(kind); n < least {
			t.Errorf("recorded %d %s(s), want at least %d: the audit did not see the whole flow", n, kind, least)
		}
	}

	// The haystacks: logs, metrics, answers, the database.
	metrics := c.do(t, http.MethodGet, "/metrics", "", nil, 200).body
	// The access line is written after the answer; wait for the last one.
	eventually(t, 5*time.Second, "the /metrics request logged", func() bool { return strings.Contains(gw.Logs.String(), `"route":"/metrics"`) })
	logs := gw.Logs.String() + gw.Stdout.String()
	base := strings.Split(storetest.PostgresURL(), "?")[0]
	dump, err := exec.Command("pg_dump", "--data-only", "-n", storetest.SchemaOf(st.DBURL), base).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump: %v: %s", err, dump)
	}

	var delivered bytes.Buffer
	for _, ev := range hook.Events() {
		fmt.Fprintf(&delivered, "%s\n%s %s\n", ev.Body, ev.Header, ev.Signature)
	}

	// Prove each haystack is the real thing.
	for what, cond := range map[string]bool{
		"the dump holds the authorizers":            bytes.Contains(dump, []byte(auditFlowAccount)) && bytes.Contains(dump, []byte(fansAccount)),
		"the dump holds the tenant":                 bytes.Contains(dump, []byte(st.TenantID)),
		"the dump holds sealed tokens":              bytes.Count(dump, []byte("wxg1.")) >= 8, // access + refresh of 4 accounts, at least
		"the logs hold proxied request lines":       strings.Contains(logs, `"route":"/v1/authorizers/:appid/fans"`),
		"the logs hold compatible request lines":    strings.Contains(logs, `"route":"/wx/:appid/cgi-bin/user/get"`),
		"the logs hold the callback":                strings.Contains(logs, `"route":"/wechat/callback"`),
		"the logs are at debug level":               strings.Contains(logs, `"level":"DEBUG"`),
		"the logs hold refused keys":                strings.Contains(logs, `"msg":"credential refused"`),
		"the metrics hold requests":                 bytes.Contains(metrics, []byte("wxgate_http_requests_total{")),
		"the webhook got the account events":        bytes.Contains(delivered.Bytes(), []byte(`"type":"authorizer.authorized"`)) && bytes.Contains(delivered.Bytes(), []byte(`"type":"authorizer.unauthorized"`)),
		"the dump holds the webhook and its events": bytes.Contains(dump, []byte(hook.URL)) && bytes.Contains(dump, []byte(`authorizer.unauthorized`)),
		"the metrics hold upstream calls":           bytes.Contains(metrics, []byte("wxgate_upstream_calls_total{")),
		"the answers hold followers":                slices.ContainsFunc(c.exchanges, func(x auditExchange) bool { return bytes.Contains(x.body, []byte(sim.OpenID(fansAccount, 10))) }),
		"the answers hold a WeChat-shaped refusal":  slices.ContainsFunc(c.exchanges, func(x auditExchange) bool { return bytes.Contains(x.body, []byte(`"errcode":40001`)) }),
	} {
		if !cond {
			t.Errorf("%s: no; the audit is not looking at real data", what)
		}
	}

	hits := 0
	report := func(kind, secret, where, context string) {
		hits++
		if hits <= 30 {
			t.Errorf("%s %.12s… found in %s: …%s…", kind, secret, where, context)
		}
	}
	around := func(hay []byte, needle string) string {
		i := bytes.Index(hay, []byte(needle))
		from, to := max(0, i-80), min(len(hay), i+len(needle)+80)
		return strings.ReplaceAll(string(hay[from:i])+"<SECRET>"+string(hay[i+len(needle):to]), "\n", `\n`)
	}
	all := secrets.snapshot()
	for _, kv := range all {
		kind, secret := kv[0], kv[1]
		for _, needle := range auditNeedles(secret) {
			for where, hay := range map[string][]byte{"the logs": []byte(logs), "/metrics": metrics, "pg_dump": dump, "the webhook deliveries": delivered.Bytes()} {
				if bytes.Contains(hay, []byte(needle)) {
					report(kind, secret, where, around(hay, needle))
				}
			}
			for _, x := range c.exchanges {
				if slices.Contains(x.allowed, secret) {
					continue
				}
				var hdr bytes.Buffer
				_ = x.header.Write(&hdr)
				for part, hay := range map[string][]byte{"body": x.body, "headers": hdr.Bytes()} {
					if bytes.Contains(hay, []byte(needle)) {
						report(kind, secret, fmt.Sprintf("the answer to %s (%s)", x.what, part), around(hay, needle))
					}
				}
			}
		}
	}
	t.Logf("scanned %d secrets against %d log bytes, %d metric bytes, %d answers and a %d-byte dump: %d hits",
		len(all), len(logs), len(metrics), len(c.exchanges), len(dump), hits)
}
