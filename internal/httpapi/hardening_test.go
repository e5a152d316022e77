package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
		if w.Code != http.StatusCreated || decodeAs[issueKeyResponse](t, w).AppIDs == nil || len(decodeAs[issueKeyResponse](t, w).AppIDs) != 0 {
			t.Fatalf("%s: got %d %s, want 201 with an unrestricted key (appids [])", body, w.Code, w.Body)
		}
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
		if w.Code != http.StatusTooManyRequests || b.Error.Code != "rate_limited" || b.Error.Details["scope"] != scope || w.Header().Get("Retry-After") != "60" {
			t.Fatalf("got %d %v %s, want 429 rate_limited, details.scope %s, Retry-After 60", w.Code, w.Header(), w.Body, scope)
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
