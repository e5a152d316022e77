package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
)

// TestEmptyAppIDsListIsRefused: an empty restriction is not read as "no
// restriction" (an admin tool sending an empty filter must not hand out
// every account); leaving the field out still issues an unrestricted key.
func TestEmptyAppIDsListIsRefused(t *testing.T) {
	t.Parallel()
	f := newTenantFixture(t, store.SQLite)
	tn := f.createTenant("acme")
	w := f.admin(http.MethodPost, "/admin/tenants/"+tn+"/keys", `{"name":"filtered","appids":[]}`)
	if w.Code != http.StatusBadRequest || errorCodeOf(t, w) != "invalid_argument" || !strings.Contains(w.Body.String(), `"appids"`) {
		t.Fatalf(`appids []: got %d %s, want 400 invalid_argument naming appids`, w.Code, w.Body)
	}
	if keys := decodeAs[struct{ Keys []keyJSON }](t, f.admin(http.MethodGet, "/admin/tenants/"+tn+"/keys", nil)).Keys; len(keys) != 0 {
		t.Fatalf("keys after the refusal: got %d, want none issued", len(keys))
	}
	for _, body := range []string{`{"name":"all"}`, `{"name":"all","appids":null}`} {
		w := f.admin(http.MethodPost, "/admin/tenants/"+tn+"/keys", body)
		if w.Code != http.StatusCreated || !strings.Contains(w.Body.String(), `"appids":null`) {
			t.Fatalf("%s: got %d %s, want 201 with an unrestricted key (appids null)", body, w.Code, w.Body)
		}
	}
	// What a listing answers can be sent back as is: null is no restriction.
	listed := f.admin(http.MethodGet, "/admin/tenants/"+tn+"/keys", nil)
	if !strings.Contains(listed.Body.String(), `"appids":null`) || strings.Contains(listed.Body.String(), `"appids":[]`) {
		t.Fatalf("listing: %s, want unrestricted keys' appids as null", listed.Body)
	}
}

// TestRestrictedKeyCannotStartAnAuthorization: the account an
// authorization brings in is bound to the whole tenant, so only an
// unrestricted key may start one, whatever biz_appid it names.
func TestRestrictedKeyCannotStartAnAuthorization(t *testing.T) {
	t.Parallel()
	pf := newPlatformFixture(t, store.SQLite)
	pf.p.PushTicket()
	acme := pf.createTenant("acme")
	_, restricted := pf.issueKey(acme, map[string]any{"appids": []string{appA1}})
	_, whole := pf.issueKey(acme, nil)
	for _, body := range []map[string]any{
		{"return_url": "https://acme.example/back"},
		{"return_url": "https://acme.example/back", "biz_appid": appA1},
		{"return_url": "https://acme.example/back", "biz_appid": "wx00000000000000a9"},
	} {
		w := pf.do(http.MethodPost, "/v1/authorizations", body, "Authorization", "Bearer "+restricted)
		if w.Code != http.StatusForbidden || errorCodeOf(t, w) != "forbidden" {
			t.Fatalf("restricted key, %v: got %d %s, want 403 forbidden", body, w.Code, w.Body)
		}
	}
	if w := pf.do(http.MethodPost, "/v1/authorizations", map[string]any{"return_url": "https://acme.example/back"},
		"Authorization", "Bearer "+whole); w.Code != http.StatusCreated {
		t.Fatalf("unrestricted key: got %d %s, want 201", w.Code, w.Body)
	}
}

// TestExportCapsRefuseBeyondTheLimits holds WeChat's first page so exports
// stay running, and checks the per-tenant and per-replica caps: one more
// export is refused at once with 429 rate_limited (before WeChat is asked),
// and every slot is given back when the exports end.
func TestExportCapsRefuseBeyondTheLimits(t *testing.T) {
	t.Parallel()
	const appid = "wx00000000000000e1"
	var hold atomic.Bool
	gate, entered := make(chan struct{}), make(chan struct{}, 16)
	f := newExportFixture(t, func(o *componenttest.Options) {
		o.SimMiddleware = func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if hold.Load() && r.URL.Path == "/cgi-bin/user/get" {
					entered <- struct{}{}
					<-gate
				}
				next.ServeHTTP(w, r)
			})
		}
	})
	f.account(sim.AccountSpec{AppID: appid, Followers: 23000, PermissionSets: []int{2}})
	rival := f.createTenant("rival")
	if w := f.admin(http.MethodPut, "/admin/tenants/"+rival+"/authorizers/"+appid, nil); w.Code != http.StatusNoContent {
		t.Fatalf("bind to rival: %d %s", w.Code, w.Body)
	}
	_, rivalKey := f.issueKey(rival, nil)
	deps := f.deps
	deps.Proxy.Exports = proxy.NewExports(proxy.ExportLimits{PerTenant: 2, PerReplica: 3, Deadline: time.Hour})
	capped := NewServer(deps)
	export := func(key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v1/authorizers/"+appid+"/fans/export", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		capped.ServeHTTP(w, req)
		return w
	}
	refused := func(t *testing.T, w *httptest.ResponseRecorder, scope string) {
		t.Helper()
		var b struct {
			Error struct {
				Code    string
				Details map[string]any
			}
		}
		_ = json.Unmarshal(w.Body.Bytes(), &b)
		if w.Code != http.StatusTooManyRequests || b.Error.Code != "rate_limited" || b.Error.Details["scope"] != scope ||
			w.Header().Get("Retry-After") != "60" || w.Header().Get("Connection") != "close" {
			t.Fatalf("got %d %v %s, want 429 rate_limited, details.scope %s, Retry-After 60, Connection: close", w.Code, w.Header(), w.Body, scope)
		}
	}
	hold.Store(true)
	var wg sync.WaitGroup
	running := make(chan *httptest.ResponseRecorder, 3)
	start := func(key string) {
		wg.Add(1)
		go func() { defer wg.Done(); running <- export(key) }()
		<-entered // the export holds its slot, waiting for WeChat's first page
	}
	before := f.p.Calls(sim.EndpointUserGet, appid)
	journey.Step(t, "per tenant", func(t *testing.T) {
		start(f.key)
		start(f.key)
		refused(t, export(f.key), "tenant_exports")
	})
	journey.Step(t, "per replica", func(t *testing.T) {
		start(rivalKey)
		refused(t, export(rivalKey), "replica_exports")
	})
	journey.Step(t, "refusals never reached WeChat", func(t *testing.T) {
		if n := f.p.Calls(sim.EndpointUserGet, appid); n != before {
			t.Fatalf("user/get answered %d times while held, want %d", n, before)
		}
		if len(entered) != 0 {
			t.Fatalf("%d refused exports reached WeChat, want none", len(entered))
		}
	})
	hold.Store(false)
	close(gate)
	wg.Wait()
	close(running)
	journey.Step(t, "the running exports finish and give their slots back", func(t *testing.T) {
		for w := range running {
			openids, errLine := exportLines(t, "ndjson", w.Body.String())
			if w.Code != http.StatusOK || errLine != "" || len(openids) != 23000 {
				t.Fatalf("held export: got %d, %d openids, error line %q, want 200 with 23000", w.Code, len(openids), errLine)
			}
		}
		for range 3 {
			if w := export(f.key); w.Code != http.StatusOK {
				t.Fatalf("export after the others ended: got %d %s, want 200", w.Code, w.Body)
			}
		}
	})
	journey.Step(t, "the write deadline is absolute", func(t *testing.T) {
		now := time.Now()
		end := now.Add(90 * time.Second)
		if got := exportWriteDeadline(now, end); !got.Equal(now.Add(exportWriteWindow)) {
			t.Fatalf("first page: got %v, want the one-minute page window", got.Sub(now))
		}
		later := now.Add(80 * time.Second)
		if got := exportWriteDeadline(later, end); !got.Equal(end) {
			t.Fatalf("a page 80 s in: got %v after it, want the export's deadline 10 s after it", got.Sub(later))
		}
	})
}

// authorizeThroughPages starts an authorization with key, has the simulated
// admin confirm appid on WeChat's page (the simulator pushes the event) and
// sends the browser to the gateway's callback; it returns the callback's
// answer and the callback URL's query.
func authorizeThroughPages(t *testing.T, pf *platformFixture, key, returnURL, appid string) (*httptest.ResponseRecorder, string) {
	t.Helper()
	w := pf.do(http.MethodPost, "/v1/authorizations", map[string]any{"return_url": returnURL}, "Authorization", "Bearer "+key)
	if w.Code != http.StatusCreated {
		t.Fatalf("create: got %d %s, want 201", w.Code, w.Body)
	}
	created := decodeAs[authorizationJSON](t, w)
	u, err := url.Parse(pf.p.FollowPage(created.URL, appid))
	if err != nil {
		t.Fatal(err)
	}
	return pf.do(http.MethodGet, "/wechat/callback?"+u.RawQuery, nil), u.RawQuery
}

// TestReturnURLHostsAndNoOpenRedirect: the operator limits where a
// tenant's authorizations may send the browser; return_url never carries
// user information; and the callback redirects only with the code WeChat
// issued for the session, never on the session id alone.
func TestReturnURLHostsAndNoOpenRedirect(t *testing.T) {
	t.Parallel()
	pf := newPlatformFixture(t, store.SQLite)
	pf.p.PushTicket()
	pf.p.NewAccount(appA1, 2)
	var acme tenantJSON
	journey.Step(t, "admin API", func(t *testing.T) {
		w := pf.admin(http.MethodPost, "/admin/tenants", map[string]any{"name": "acme", "return_url_hosts": []string{"App.Acme.example", "app.acme.example", "10.0.0.7"}})
		acme = decodeAs[tenantJSON](t, w)
		if w.Code != http.StatusCreated || strings.Join(acme.ReturnURLHosts, ",") != "10.0.0.7,app.acme.example" {
			t.Fatalf("create: got %d %s, want 201 with return_url_hosts [10.0.0.7 app.acme.example]", w.Code, w.Body)
		}
		for _, bad := range []string{"https://app.acme.example/", "*.acme.example", "app.acme.example:8443", "user@app.acme.example", ""} {
			w := pf.admin(http.MethodPatch, "/admin/tenants/"+acme.ID, map[string]any{"return_url_hosts": []string{bad}})
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"return_url_hosts"`) {
				t.Fatalf("PATCH with host %q: got %d %s, want 400 naming return_url_hosts", bad, w.Code, w.Body)
			}
		}
		if got := decodeAs[tenantJSON](t, pf.admin(http.MethodPatch, "/admin/tenants/"+acme.ID, map[string]any{"rate_limit": 5})); len(got.ReturnURLHosts) != 2 {
			t.Fatalf("a PATCH without the field: got hosts %v, want them kept", got.ReturnURLHosts)
		}
	})
	_, key := pf.issueKey(acme.ID, nil)
	create := func(returnURL string) *httptest.ResponseRecorder {
		return pf.do(http.MethodPost, "/v1/authorizations", map[string]any{"return_url": returnURL}, "Authorization", "Bearer "+key)
	}
	journey.Step(t, "return_url", func(t *testing.T) {
		for _, bad := range []string{"https://evil.example/", "https://app.acme.example.evil.example/", "https://user:pw@app.acme.example/", "https://user@app.acme.example/"} {
			w := create(bad)
			var b struct {
				Error struct {
					Code    string
					Details struct{ Fields map[string]string }
				}
			}
			_ = json.Unmarshal(w.Body.Bytes(), &b)
			if w.Code != http.StatusBadRequest || b.Error.Code != "invalid_argument" || b.Error.Details.Fields["return_url"] == "" {
				t.Fatalf("return_url %s: got %d %s, want 400 invalid_argument on return_url", bad, w.Code, w.Body)
			}
		}
		for _, good := range []string{"https://APP.acme.example/done", "http://app.acme.example:8443/x?y=1", "https://10.0.0.7/", componenttest.PublicURL + "/console/authorize/done"} {
			if w := create(good); w.Code != http.StatusCreated {
				t.Fatalf("return_url %s: got %d %s, want 201", good, w.Code, w.Body)
			}
		}
		pf.admin(http.MethodPatch, "/admin/tenants/"+acme.ID, map[string]any{"return_url_hosts": []string{}})
		if w := create("https://anywhere.example/"); w.Code != http.StatusCreated {
			t.Fatalf("no hosts set: got %d %s, want any host allowed", w.Code, w.Body)
		}
		if w := create("https://u:p@anywhere.example/"); w.Code != http.StatusBadRequest {
			t.Fatalf("no hosts set, user information: got %d %s, want 400", w.Code, w.Body)
		}
	})
	journey.Step(t, "the callback redirects only with the session's code", func(t *testing.T) {
		w, query := authorizeThroughPages(t, pf, key, "https://app.acme.example/back", appA1)
		want := "https://app.acme.example/back?appid=" + appA1 + "&result=authorized"
		if w.Code != http.StatusFound || w.Header().Get("Location") != want {
			t.Fatalf("callback: got %d %s, want 302 to %s", w.Code, w.Header().Get("Location"), want)
		}
		q, _ := url.ParseQuery(query)
		session := q.Get("session")
		// The session is completed: the session id alone, or with a code of
		// the attacker's choice, redirects nowhere.
		for _, rest := range []string{"", "&auth_code=queryauthcode@@@guess"} {
			w := pf.do(http.MethodGet, "/wechat/callback?session="+session+rest, nil)
			if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
				t.Fatalf("completed session%s: got %d Location %q, want the 400 HTML page", rest, w.Code, w.Header().Get("Location"))
			}
		}
		// The browser reloading its own callback is sent back again.
		if w := pf.do(http.MethodGet, "/wechat/callback?"+query, nil); w.Code != http.StatusFound || w.Header().Get("Location") != want {
			t.Fatalf("reload: got %d %s, want 302 to %s", w.Code, w.Header().Get("Location"), want)
		}
	})
}

// TestSecondTenantBindingWaitsForApproval: an account bound to tenant A
// that tenant B's authorization brings in again is not B's until the
// operator approves: B's callback says pending, B cannot see or call it,
// the admin list shows B as pending, and the approval makes it B's.
func TestSecondTenantBindingWaitsForApproval(t *testing.T) {
	t.Parallel()
	pf := newPlatformFixture(t, store.SQLite)
	pf.p.PushTicket()
	pf.p.NewAccount(appA1, 2)
	first, second := pf.createTenant("first"), pf.createTenant("second")
	_, firstKey := pf.issueKey(first, nil)
	_, secondKey := pf.issueKey(second, nil)
	journey.Step(t, "the first tenant's authorization binds", func(t *testing.T) {
		w, _ := authorizeThroughPages(t, pf, firstKey, "https://first.example/", appA1)
		if w.Code != http.StatusFound || !strings.HasSuffix(w.Header().Get("Location"), "result=authorized") {
			t.Fatalf("callback: got %d %s, want 302 …result=authorized", w.Code, w.Header().Get("Location"))
		}
	})
	journey.Step(t, "the second tenant's authorization waits", func(t *testing.T) {
		w, _ := authorizeThroughPages(t, pf, secondKey, "https://second.example/", appA1)
		if want := "https://second.example/?appid=" + appA1 + "&result=pending"; w.Code != http.StatusFound || w.Header().Get("Location") != want {
			t.Fatalf("callback: got %d %s, want 302 to %s", w.Code, w.Header().Get("Location"), want)
		}
		for _, path := range []string{"/v1/authorizers/" + appA1, "/v1/authorizers/" + appA1 + "/fans"} {
			if w := pf.tenantCall(http.MethodGet, path, secondKey); w.Code != http.StatusNotFound {
				t.Fatalf("second tenant %s: got %d %s, want 404 while pending", path, w.Code, w.Body)
			}
		}
		if w := pf.tenantCall(http.MethodGet, "/v1/authorizers", secondKey); !strings.Contains(w.Body.String(), `"authorizers":[]`) {
			t.Fatalf("second tenant's list: got %s, want empty while pending", w.Body)
		}
		if w := pf.tenantCall(http.MethodGet, "/v1/authorizers/"+appA1, firstKey); w.Code != http.StatusOK {
			t.Fatalf("first tenant: got %d %s, want 200", w.Code, w.Body)
		}
		w = pf.admin(http.MethodGet, "/admin/authorizers", nil)
		if !strings.Contains(w.Body.String(), `"tenants":["`+first+`"],"pending_tenants":["`+second+`"]`) {
			t.Fatalf("admin list: got %s, want tenants [%s] and pending_tenants [%s]", w.Body, first, second)
		}
	})
	journey.Step(t, "the operator approves", func(t *testing.T) {
		third := pf.createTenant("third")
		if w := pf.admin(http.MethodPost, "/admin/tenants/"+third+"/authorizers/"+appA1+"/approve", nil); w.Code != http.StatusNotFound {
			t.Fatalf("approving a binding nobody asked for: got %d %s, want 404", w.Code, w.Body)
		}
		if w := pf.admin(http.MethodPost, "/admin/tenants/"+second+"/authorizers/"+appA1+"/approve", nil); w.Code != http.StatusNoContent {
			t.Fatalf("approve: got %d %s, want 204", w.Code, w.Body)
		}
		if w := pf.tenantCall(http.MethodGet, "/v1/authorizers/"+appA1, secondKey); w.Code != http.StatusOK {
			t.Fatalf("second tenant after approval: got %d %s, want 200", w.Code, w.Body)
		}
		if w := pf.admin(http.MethodGet, "/admin/authorizers", nil); !strings.Contains(w.Body.String(), `"pending_tenants":[]`) {
			t.Fatalf("admin list after approval: got %s, want no pending tenant", w.Body)
		}
	})
}

// TestExportDeadlineCutsAStalledReader: a client that stops reading is cut
// off once the export's absolute deadline passes, although each page's own
// write window (a minute) is far from over. With the deadline not applied,
// the stalled stream would resume and complete when the client reads again.
func TestExportDeadlineCutsAStalledReader(t *testing.T) {
	t.Parallel()
	const appid, followers = "wx00000000000000e2", 1_000_000
	f := newExportFixture(t)
	f.account(sim.AccountSpec{AppID: appid, Followers: followers, PermissionSets: []int{2}, DailyQuota: -1})
	for _, tc := range []struct {
		name     string
		deadline time.Duration
		complete bool
	}{
		{"past the deadline the stream is cut", time.Second, false},
		{"within it the same stall completes", time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deps := f.deps
			deps.Proxy.Exports = proxy.NewExports(proxy.ExportLimits{PerTenant: 2, PerReplica: 3, Deadline: tc.deadline})
			srv := httptest.NewServer(NewServer(deps))
			defer srv.Close()
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET /v1/authorizers/%s/fans/export?format=csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", appid, f.key)
			time.Sleep(3 * time.Second) // the reader stalls; the gateway's writes block
			_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			body, _ := io.ReadAll(conn)
			lines := strings.Count(string(body), "\n")
			complete := strings.HasSuffix(string(body), "0\r\n\r\n") && lines > followers
			if complete != tc.complete {
				t.Fatalf("read %d bytes, %d lines, complete %v; want complete %v", len(body), lines, complete, tc.complete)
			}
		})
	}
}
