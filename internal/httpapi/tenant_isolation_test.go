package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/quota"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/tenant"
)

// stubUpstream stands in for the proxy service so that the isolation matrix
// can reach every route's success path without WeChat. It is not the store:
// bindings and keys come from the real directory over the real database.
type stubUpstream struct{}

func (stubUpstream) Check(context.Context, *proxy.API, string) error { return nil }

func (stubUpstream) Call(context.Context, *proxy.API, string, string, proxy.Args) ([]byte, error) {
	return []byte(`{"total":1,"count":1,"data":{"openid":["o1"]},"next_openid":""}`), nil
}

func (stubUpstream) Quotas(context.Context, string) ([]quota.Status, error) {
	return []quota.Status{}, nil
}

func (stubUpstream) ClearQuota(context.Context, string) ([]quota.Status, error) {
	return []quota.Status{}, nil
}

func (stubUpstream) Walk(_ context.Context, _ *proxy.API, _, _ string, _ proxy.Args, _ func() error, emit func([]string) error) (string, int, error) {
	return "", 1, emit([]string{"o1"})
}

// withPlatformAndProxy wires the real platform authorizer handlers over the
// store and the real proxy handlers over stubUpstream.
func withPlatformAndProxy(o *tenantFixtureOptions) {
	o.wire = append(o.wire, func(f *tenantFixture) {
		f.deps.Platform = PlatformDeps{ComponentAppID: tfComponent, Directory: f.store, Metrics: f.metrics, Now: f.clock.Now}
		f.deps.Proxy = ProxyDeps{Service: stubUpstream{}, Bindings: f.svc.Directory, Usage: f.svc.Usage, Metrics: f.metrics, Log: f.deps.Logger}
	})
}

// accountRoute is a tenant route that names an account.
type accountRoute struct {
	method, path string // path with :appid (and :tagid) in gin syntax
	compat       bool
}

// accountRoutes lists every route of the router whose path names an account
// (so a route added to routes.go joins the matrix by itself), without the
// test probes and the WeChat-facing message URL (signed by WeChat, not
// called with a tenant key).
func accountRoutes(f *tenantFixture) []accountRoute {
	var out []accountRoute
	for _, r := range f.router.Routes() {
		if !strings.Contains(r.Path, ":appid") || strings.Contains(r.Path, "_probe") || strings.HasPrefix(r.Path, "/admin/") || strings.HasPrefix(r.Path, "/wechat/") {
			continue
		}
		out = append(out, accountRoute{method: r.Method, path: r.Path, compat: strings.HasPrefix(r.Path, "/wx/")})
	}
	slices.SortFunc(out, func(a, b accountRoute) int { return strings.Compare(a.method+a.path, b.method+b.path) })
	return out
}

func (f *tenantFixture) callAccountRoute(r accountRoute, appid, key string) *httptest.ResponseRecorder {
	f.t.Helper()
	path := strings.ReplaceAll(strings.ReplaceAll(r.path, ":appid", appid), ":tagid", "2")
	if !r.compat {
		return f.do(r.method, path, nil, "Authorization", "Bearer "+key)
	}
	var body any
	if r.method == http.MethodPost {
		body = `{"tagid":2,"next_openid":""}`
	}
	return f.do(r.method, path+"?access_token="+url.QueryEscape(key), body)
}

func TestTenantIsolationMatrix(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			f := newTenantFixture(t, dialect, withPlatformAndProxy)
			const (
				a1, a2  = "wxaaaaaaaaaaaaaaa1", "wxaaaaaaaaaaaaaaa2"
				b1      = "wxbbbbbbbbbbbbbbb1"
				orphan  = "wxcccccccccccccc01" // authorized, bound to nobody
				unknown = "wxffffffffffffffff"
			)
			tA, tB := f.createTenant("acme"), f.createTenant("globex")
			f.authorize(a1, tA)
			f.authorize(a2, tA)
			f.authorize(b1, tB)
			f.authorize(orphan, "")
			_, keyA := f.issueKey(tA, nil)
			_, keyA1 := f.issueKey(tA, map[string]any{"appids": []string{a1}})
			_, keyB := f.issueKey(tB, nil)
			keys := []struct {
				name, key string
				own       []string // accounts the key may call
				tenantOwn []string // accounts of its tenant
			}{
				{"tenant A", keyA, []string{a1, a2}, []string{a1, a2}},
				{"tenant A restricted to a1", keyA1, []string{a1}, []string{a1, a2}},
				{"tenant B", keyB, []string{b1}, []string{b1}},
			}
			routes := accountRoutes(f)
			for _, must := range []string{"GET /v1/authorizers/:appid", "GET /v1/authorizers/:appid/fans", "GET /wx/:appid/cgi-bin/user/get"} {
				if !slices.ContainsFunc(routes, func(r accountRoute) bool { return r.method+" "+r.path == must }) {
					t.Fatalf("%s is not in the matrix: %v", must, routes)
				}
			}
			t.Logf("%d account routes × %d keys × 5 accounts", len(routes), len(keys))
			for _, k := range keys {
				for _, r := range routes {
					// Unknown and foreign accounts must be indistinguishable.
					ref := f.callAccountRoute(r, unknown, k.key)
					wantStatus, wantBody := http.StatusNotFound, `{"error":{"code":"not_found","message":"authorizer not found"}}`
					if r.compat {
						wantStatus, wantBody = http.StatusOK, `{"errcode":40013,"errmsg":"invalid appid"}`
					}
					if ref.Code != wantStatus || strings.TrimSpace(ref.Body.String()) != wantBody {
						t.Fatalf("%s %s %s unknown: %d %s", k.name, r.method, r.path, ref.Code, ref.Body)
					}
					for _, appid := range []string{a1, a2, b1, orphan} {
						w := f.callAccountRoute(r, appid, k.key)
						switch {
						case slices.Contains(k.own, appid):
							if w.Code != http.StatusOK || strings.Contains(w.Body.String(), `"errcode":4`) || strings.Contains(w.Body.String(), `"error"`) {
								t.Errorf("%s %s %s own %s: %d %s", k.name, r.method, r.path, appid, w.Code, w.Body)
							}
						case slices.Contains(k.tenantOwn, appid):
							// The tenant's account, outside the key's restriction.
							if r.compat && w.Body.String() != `{"errcode":40013,"errmsg":"invalid appid"}` ||
								!r.compat && (w.Code != http.StatusForbidden || errorCodeOf(t, w) != "forbidden") {
								t.Errorf("%s %s %s restricted %s: %d %s", k.name, r.method, r.path, appid, w.Code, w.Body)
							}
						default:
							if !sameAnswer(ref, w) {
								t.Errorf("%s %s %s: foreign %s answers differently from unknown:\n%d %v %s\n%d %v %s",
									k.name, r.method, r.path, appid, ref.Code, ref.Header(), ref.Body, w.Code, w.Header(), w.Body)
							}
						}
					}
				}
				// The list shows exactly the key's own accounts.
				w := f.tenantCall(http.MethodGet, "/v1/authorizers", k.key)
				list := decodeAs[struct {
					Authorizers []struct {
						AppID string `json:"appid"`
					} `json:"authorizers"`
				}](t, w)
				var got []string
				for _, a := range list.Authorizers {
					got = append(got, a.AppID)
				}
				if w.Code != http.StatusOK || !slices.Equal(got, k.own) {
					t.Errorf("%s: GET /v1/authorizers = %d %v, want %v", k.name, w.Code, got, k.own)
				}
			}
		})
	}
}

// sameAnswer reports whether two answers are identical apart from the
// request id: status, headers and body bytes.
func sameAnswer(a, b *httptest.ResponseRecorder) bool {
	if a.Code != b.Code || a.Body.String() != b.Body.String() {
		return false
	}
	ha, hb := a.Header().Clone(), b.Header().Clone()
	ha.Del(requestIDHeader)
	hb.Del(requestIDHeader)
	if len(ha) != len(hb) {
		return false
	}
	for k, v := range ha {
		if !slices.Equal(v, hb[k]) {
			return false
		}
	}
	return true
}

func TestAuthorizeAppIDFailsClosedWithoutPrincipal(t *testing.T) {
	f := newTenantFixture(t, store.SQLite)
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	if err := authorizeAppID(c, f.svc.Directory, "wxaaaaaaaaaaaaaaa1"); !errs.Is(err, errs.Internal) {
		t.Fatalf("no principal: %v", err)
	}
	setPrincipal(c, tenant.Principal{TenantID: "tn_x"})
	if err := authorizeAppID(c, nil, "wxaaaaaaaaaaaaaaa1"); !errs.Is(err, errs.Internal) {
		t.Fatalf("no directory: %v", err)
	}
}
