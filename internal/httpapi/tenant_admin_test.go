package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

func TestAdminAPIHappyPaths(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			f := newTenantFixture(t, dialect)
			now := f.clock.Now().UTC().Format(time.RFC3339)
			ctx := context.Background()
			var acme tenantJSON
			var globex string

			journey.Step(t, "tenants", func(t *testing.T) {
				w := f.admin(http.MethodPost, "/admin/tenants", map[string]any{"name": "  Acme Corp  "})
				if w.Code != http.StatusCreated {
					t.Fatalf("create: got %d %s, want 201", w.Code, w.Body)
				}
				acme = decodeAs[tenantJSON](t, w)
				if !strings.HasPrefix(acme.ID, "tn_") || acme.Name != "Acme Corp" || acme.CreatedAt != now || acme.RateLimit != nil ||
					acme.ComponentAppID != tfComponent {
					t.Fatalf("created: got %+v, want id tn_…, name %q, created_at %s, no rate_limit, the default platform %s",
						acme, "Acme Corp", now, tfComponent)
				}
				f.clock.Advance(time.Millisecond)
				globex = f.createTenant("Globex")
				w = f.admin(http.MethodGet, "/admin/tenants", nil)
				list := decodeAs[struct{ Tenants []tenantJSON }](t, w)
				if w.Code != http.StatusOK || len(list.Tenants) != 2 || list.Tenants[0].ID != acme.ID || list.Tenants[1].ID != globex {
					t.Fatalf("list: got %d %s, want 200 with [%s %s]", w.Code, w.Body, acme.ID, globex)
				}
				w = f.admin(http.MethodPatch, "/admin/tenants/"+acme.ID, map[string]any{"rate_limit": 2.5, "rate_burst": 7})
				upd := decodeAs[tenantJSON](t, w)
				if w.Code != http.StatusOK || upd.RateLimit == nil || *upd.RateLimit != 2.5 || *upd.RateBurst != 7 || upd.Name != "Acme Corp" {
					t.Fatalf("patch rates: got %d %s, want 200 with rate_limit 2.5, rate_burst 7, name unchanged", w.Code, w.Body)
				}
				if r, b, _ := f.svc.Directory.TenantRate(acme.ID); r != 2.5 || b != 7 {
					t.Fatalf("the writing replica's directory: got rate %v burst %v, want 2.5 and 7 at once", r, b)
				}
				w = f.admin(http.MethodPatch, "/admin/tenants/"+acme.ID, map[string]any{"name": "Acme", "rate_limit": 0})
				upd = decodeAs[tenantJSON](t, w)
				if w.Code != http.StatusOK || upd.Name != "Acme" || upd.RateLimit != nil || upd.RateBurst == nil {
					t.Fatalf("patch name, reset rate: got %d %s, want 200, name Acme, rate_limit null, rate_burst kept", w.Code, w.Body)
				}
				if w := f.admin(http.MethodPatch, "/admin/tenants/"+acme.ID, map[string]any{}); w.Code != http.StatusOK {
					t.Fatalf("empty patch: got %d %s, want 200", w.Code, w.Body)
				}
			})

			journey.Step(t, "keys", func(t *testing.T) {
				w := f.admin(http.MethodPost, "/admin/tenants/"+acme.ID+"/keys", nil)
				if w.Code != http.StatusCreated || w.Header().Get("Cache-Control") != "no-store" {
					t.Fatalf("issue with no body: got %d %v %s, want 201 with Cache-Control: no-store", w.Code, w.Header(), w.Body)
				}
				plain := decodeAs[map[string]any](t, w)
				if plain["expires_at"] != nil || !strings.HasPrefix(plain["kid"].(string), "k_") || strings.Count(plain["key"].(string), ".") != 2 {
					t.Fatalf("issued: got %s, want no expiry, kid k_…, a three-part key", w.Body)
				}
				f.clock.Advance(time.Second)
				w = f.admin(http.MethodPost, "/admin/tenants/"+acme.ID+"/keys",
					map[string]any{"name": "ci", "ttl_seconds": 3600, "appids": []string{"wxaaaaaaaaaaaaaaa1"}})
				ci := decodeAs[issueKeyResponse](t, w)
				wantExp := f.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
				if w.Code != http.StatusCreated || ci.ExpiresAt == nil || *ci.ExpiresAt != wantExp || ci.Name != "ci" || len(ci.AppIDs) != 1 {
					t.Fatalf("issue with ttl: got %d %s, want 201 expiring %s, name ci, one appid", w.Code, w.Body, wantExp)
				}
				if w := f.tenantCall(http.MethodGet, "/v1/_probe/whoami", ci.Key); w.Code != http.StatusOK {
					t.Fatalf("the issued key on the issuing replica: got %d %s, want 200", w.Code, w.Body)
				}
				if err := f.svc.LastUsed.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				w = f.admin(http.MethodGet, "/admin/tenants/"+acme.ID+"/keys", nil)
				if strings.Contains(w.Body.String(), ci.Key) || strings.Contains(w.Body.String(), plain["key"].(string)) {
					t.Fatal("key list: got a key shown again, want metadata only")
				}
				keys := decodeAs[struct{ Keys []keyJSON }](t, w).Keys
				if w.Code != http.StatusOK || len(keys) != 2 || keys[0].KID != ci.KID || keys[0].LastUsedAt == nil ||
					keys[1].LastUsedAt != nil || keys[0].RevokedAt != nil || keys[0].Name != "ci" {
					t.Fatalf("keys: got %d %s, want 200 with ci (used, not revoked) first, then the unused key", w.Code, w.Body)
				}
				for _, field := range []string{`"kid"`, `"name"`, `"created_at"`, `"expires_at"`, `"revoked_at"`, `"last_used_at"`} {
					if !strings.Contains(w.Body.String(), field) {
						t.Fatalf("keys: got %s, want the field %s", w.Body, field)
					}
				}
				for range 2 { // revoking is idempotent
					if w := f.admin(http.MethodDelete, "/admin/keys/"+ci.KID, nil); w.Code != http.StatusNoContent || w.Body.Len() != 0 {
						t.Fatalf("revoke: got %d %s, want 204 with no body", w.Code, w.Body)
					}
				}
				if w := f.tenantCall(http.MethodGet, "/v1/_probe/whoami", ci.Key); w.Code != http.StatusUnauthorized {
					t.Fatalf("a revoked key on the revoking replica: got %d, want 401", w.Code)
				}
				keys = decodeAs[struct{ Keys []keyJSON }](t, f.admin(http.MethodGet, "/admin/tenants/"+acme.ID+"/keys", nil)).Keys
				if keys[0].RevokedAt == nil {
					t.Fatalf("revoked key: got %+v, want revoked_at set", keys[0])
				}
			})

			journey.Step(t, "bindings", func(t *testing.T) {
				if _, err := f.store.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: tfComponent, AppID: "wxaaaaaaaaaaaaaaa1",
					AccessToken: "a", RefreshToken: "r"}, ""); err != nil {
					t.Fatal(err)
				}
				for range 2 { // binding twice is a no-op
					if w := f.admin(http.MethodPut, "/admin/tenants/"+acme.ID+"/authorizers/wxaaaaaaaaaaaaaaa1", nil); w.Code != http.StatusNoContent {
						t.Fatalf("bind: got %d %s, want 204", w.Code, w.Body)
					}
				}
				if !f.svc.Directory.Bound(acme.ID, "wxaaaaaaaaaaaaaaa1") {
					t.Fatal("directory after bind: got unbound, want bound")
				}
				if w := f.admin(http.MethodDelete, "/admin/tenants/"+acme.ID+"/authorizers/wxaaaaaaaaaaaaaaa1", nil); w.Code != http.StatusNoContent {
					t.Fatalf("unbind: got %d %s, want 204", w.Code, w.Body)
				}
				if f.svc.Directory.Bound(acme.ID, "wxaaaaaaaaaaaaaaa1") {
					t.Fatal("directory after unbind: got bound, want unbound")
				}
			})

			journey.Step(t, "usage", func(t *testing.T) {
				w := f.admin(http.MethodGet, "/admin/tenants/"+acme.ID+"/usage", nil)
				u := decodeAs[usageResponse](t, w)
				wantTo := f.clock.Now().UTC().Truncate(time.Hour).Add(time.Hour).Format(time.RFC3339)
				if w.Code != http.StatusOK || u.TenantID != acme.ID || u.Usage == nil || u.To != wantTo {
					t.Fatalf("usage: got %d %s, want 200 for %s with a usage list, to %s", w.Code, w.Body, acme.ID, wantTo)
				}
			})

			journey.Step(t, "deleting a tenant", func(t *testing.T) {
				_, key := f.issueKey(globex, nil)
				if w := f.admin(http.MethodDelete, "/admin/tenants/"+globex, nil); w.Code != http.StatusNoContent {
					t.Fatalf("delete: got %d %s, want 204", w.Code, w.Body)
				}
				if w := f.tenantCall(http.MethodGet, "/v1/_probe/whoami", key); w.Code != http.StatusUnauthorized {
					t.Fatalf("a deleted tenant's key: got %d, want 401", w.Code)
				}
				if w := f.admin(http.MethodDelete, "/admin/tenants/"+globex, nil); w.Code != http.StatusNotFound {
					t.Fatalf("delete twice: got %d %s, want 404", w.Code, w.Body)
				}
			})
		})
	}
}

func TestAdminAPIErrors(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			f := newTenantFixture(t, dialect)
			tn := f.createTenant("acme")
			f.clock.Advance(time.Millisecond)
			f.createTenant("globex")
			if _, err := f.store.SaveAuthorization(context.Background(), store.Authorizer{ComponentAppID: tfComponent,
				AppID: "wxaaaaaaaaaaaaaaa1", AccessToken: "a", RefreshToken: "r"}, ""); err != nil {
				t.Fatal(err)
			}
			long := strings.Repeat("é", 101)
			manyAppIDs := make([]string, 101)
			for i := range manyAppIDs {
				manyAppIDs[i] = fmt.Sprintf("wx%016d", i)
			}
			const missing = "tn_doesnotexist"
			cases := []struct {
				name, method, path string
				body               any
				status             int
				code               string
				// field, when set, must be named in details.fields with msg in its message.
				field, msg string
			}{
				{"create: no body", "POST", "/admin/tenants", nil, 400, "invalid_argument", "", ""},
				{"create: name missing", "POST", "/admin/tenants", `{}`, 400, "invalid_argument", "name", "is required"},
				{"create: name null", "POST", "/admin/tenants", `{"name":null}`, 400, "invalid_argument", "name", "is required"},
				{"create: name blank", "POST", "/admin/tenants", `{"name":"   "}`, 400, "invalid_argument", "name", "is required"},
				{"create: name too long", "POST", "/admin/tenants", map[string]any{"name": long}, 400, "invalid_argument", "name", "at most 100"},
				{"create: control characters", "POST", "/admin/tenants", `{"name":"a\u0000b"}`, 400, "invalid_argument", "name", "control"},
				{"create: name not a string", "POST", "/admin/tenants", `{"name":42}`, 400, "invalid_argument", "name", "a string"},
				{"create: unknown field", "POST", "/admin/tenants", `{"name":"x","rate":1}`, 400, "invalid_argument", "rate", "not a known field"},
				{"create: not an object", "POST", "/admin/tenants", `["x"]`, 400, "invalid_argument", "", ""},
				{"create: two objects", "POST", "/admin/tenants", `{"name":"x"}{"name":"y"}`, 400, "invalid_argument", "", ""},
				{"create: broken JSON", "POST", "/admin/tenants", `{"name":`, 400, "invalid_argument", "", ""},
				{"create: body over 64 KiB", "POST", "/admin/tenants", `{"name":"` + strings.Repeat("x", 65<<10) + `"}`, 400, "invalid_argument", "", ""},
				{"create: duplicate name", "POST", "/admin/tenants", `{"name":"acme"}`, 409, "conflict", "", ""},
				{"create: duplicate after trimming", "POST", "/admin/tenants", `{"name":" acme "}`, 409, "conflict", "", ""},
				{"create: malformed component_appid", "POST", "/admin/tenants", `{"name":"x","component_appid":"wx1"}`, 400, "invalid_argument", "component_appid", "followed by 16 letters or digits"},
				{"create: component_appid not a string", "POST", "/admin/tenants", `{"name":"x","component_appid":7}`, 400, "invalid_argument", "component_appid", "a string"},
				{"create: a platform the gateway does not serve", "POST", "/admin/tenants", `{"name":"x","component_appid":"wx00000000000000c9"}`, 400, "invalid_argument", "component_appid", "not a platform"},

				{"patch: unknown tenant", "PATCH", "/admin/tenants/" + missing, `{"rate_limit":1}`, 404, "not_found", "", ""},
				{"patch: no body", "PATCH", "/admin/tenants/" + tn, nil, 400, "invalid_argument", "", ""},
				{"patch: negative rate", "PATCH", "/admin/tenants/" + tn, `{"rate_limit":-1}`, 400, "invalid_argument", "rate_limit", "between"},
				{"patch: huge rate", "PATCH", "/admin/tenants/" + tn, `{"rate_limit":1e9}`, 400, "invalid_argument", "rate_limit", "between"},
				{"patch: negative burst", "PATCH", "/admin/tenants/" + tn, `{"rate_burst":-5}`, 400, "invalid_argument", "rate_burst", "between"},
				{"patch: fractional burst", "PATCH", "/admin/tenants/" + tn, `{"rate_burst":1.5}`, 400, "invalid_argument", "rate_burst", "an integer"},
				{"patch: rate as a string", "PATCH", "/admin/tenants/" + tn, `{"rate_limit":"5"}`, 400, "invalid_argument", "rate_limit", "a number"},
				{"patch: empty name", "PATCH", "/admin/tenants/" + tn, `{"name":""}`, 400, "invalid_argument", "name", "is required"},
				{"patch: taken name", "PATCH", "/admin/tenants/" + tn, `{"name":"globex"}`, 409, "conflict", "", ""},
				{"patch: unknown field", "PATCH", "/admin/tenants/" + tn, `{"id":"tn_x"}`, 400, "invalid_argument", "id", "not a known field"},

				{"delete: unknown tenant", "DELETE", "/admin/tenants/" + missing, nil, 404, "not_found", "", ""},

				{"issue: unknown tenant", "POST", "/admin/tenants/" + missing + "/keys", `{}`, 404, "not_found", "", ""},
				{"issue: negative ttl", "POST", "/admin/tenants/" + tn + "/keys", `{"ttl_seconds":-1}`, 400, "invalid_argument", "ttl_seconds", "between"},
				{"issue: ttl too long", "POST", "/admin/tenants/" + tn + "/keys", `{"ttl_seconds":999999999999}`, 400, "invalid_argument", "ttl_seconds", "between"},
				{"issue: fractional ttl", "POST", "/admin/tenants/" + tn + "/keys", `{"ttl_seconds":1.5}`, 400, "invalid_argument", "ttl_seconds", "an integer"},
				{"issue: ttl as a string", "POST", "/admin/tenants/" + tn + "/keys", `{"ttl_seconds":"60"}`, 400, "invalid_argument", "ttl_seconds", "an integer"},
				{"issue: malformed appid", "POST", "/admin/tenants/" + tn + "/keys", `{"appids":["wxaaaaaaaaaaaaaaa1","nope"]}`, 400, "invalid_argument", "appids[1]", "WeChat appid"},
				{"issue: appids not a list", "POST", "/admin/tenants/" + tn + "/keys", `{"appids":"wxaaaaaaaaaaaaaaa1"}`, 400, "invalid_argument", "appids", "an array"},
				{"issue: too many appids", "POST", "/admin/tenants/" + tn + "/keys", map[string]any{"appids": manyAppIDs}, 400, "invalid_argument", "appids", "at most 100"},
				{"issue: name too long", "POST", "/admin/tenants/" + tn + "/keys", map[string]any{"name": long}, 400, "invalid_argument", "name", "at most 100"},
				{"issue: unknown field", "POST", "/admin/tenants/" + tn + "/keys", `{"scopes":["all"]}`, 400, "invalid_argument", "scopes", "not a known field"},

				{"list keys: unknown tenant", "GET", "/admin/tenants/" + missing + "/keys", nil, 404, "not_found", "", ""},
				{"revoke: unknown kid", "DELETE", "/admin/keys/k_doesnotexist", nil, 404, "not_found", "", ""},

				{"bind: unknown tenant", "PUT", "/admin/tenants/" + missing + "/authorizers/wxaaaaaaaaaaaaaaa1", nil, 404, "not_found", "", ""},
				{"bind: unknown authorizer", "PUT", "/admin/tenants/" + tn + "/authorizers/wxffffffffffffffff", nil, 404, "not_found", "", ""},
				{"bind: malformed appid names the rule", "PUT", "/admin/tenants/" + tn + "/authorizers/not-an-appid", nil, 400, "invalid_argument", "appid", "followed by 16 letters or digits"},
				{"unbind: malformed appid names the rule", "DELETE", "/admin/tenants/" + tn + "/authorizers/wx1", nil, 400, "invalid_argument", "appid", "followed by 16 letters or digits"},
				{"binding cap: malformed appid names the rule", "PATCH", "/admin/tenants/" + tn + "/authorizers/wx1", map[string]any{"daily_limit": 5}, 400, "invalid_argument", "appid", "followed by 16 letters or digits"},
				{"quota clear: malformed appid names the rule", "POST", "/admin/authorizers/wx1/quota/clear", nil, 400, "invalid_argument", "appid", "followed by 16 letters or digits"},
				{"refresh: malformed appid names the rule", "POST", "/admin/authorizers/wx1/refresh", nil, 400, "invalid_argument", "appid", "followed by 16 letters or digits"},
				{"bind: unknown tenant says so", "PUT", "/admin/tenants/tn_nosuchtenant0000/authorizers/wxaaaaaaaaaaaaaaa1", nil, 404, "not_found", "", ""},
				{"unbind: unknown tenant", "DELETE", "/admin/tenants/" + missing + "/authorizers/wxaaaaaaaaaaaaaaa1", nil, 404, "not_found", "", ""},

				{"usage: unknown tenant", "GET", "/admin/tenants/" + missing + "/usage", nil, 404, "not_found", "", ""},
				{"usage: bad from", "GET", "/admin/tenants/" + tn + "/usage?from=yesterday", nil, 400, "invalid_argument", "from", "RFC 3339"},
				{"usage: empty to", "GET", "/admin/tenants/" + tn + "/usage?to=", nil, 400, "invalid_argument", "to", "RFC 3339"},
				{"usage: from after to", "GET", "/admin/tenants/" + tn + "/usage?from=2026-11-21T10:00:00Z&to=2026-11-21T09:00:00Z", nil, 400, "invalid_argument", "from", "before to"},
				{"usage: range too long", "GET", "/admin/tenants/" + tn + "/usage?from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", nil, 400, "invalid_argument", "from", "366 days"},

				{"unknown admin route", "GET", "/admin/nothing", nil, 404, "not_found", "", ""},
				{"a trailing slash is a JSON 404, not a redirect", "GET", "/admin/tenants/", nil, 404, "not_found", "", ""},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					w := f.admin(tc.method, tc.path, tc.body)
					var b struct {
						Error struct {
							Code    string
							Message string
							Details struct {
								Fields map[string]string
							}
						}
					}
					if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
						t.Fatalf("%d %q: %v", w.Code, w.Body, err)
					}
					if w.Code != tc.status || b.Error.Code != tc.code || b.Error.Message == "" {
						t.Fatalf("%d %s, want %d %s", w.Code, w.Body, tc.status, tc.code)
					}
					if tc.field != "" && !strings.Contains(b.Error.Details.Fields[tc.field], tc.msg) {
						t.Fatalf("details %s, want fields.%s ~ %q", w.Body, tc.field, tc.msg)
					}
				})
			}
			if w := f.admin(http.MethodPost, "/admin/tenants/", map[string]any{"name": "x"}); w.Code != 404 ||
				!strings.Contains(w.Body.String(), "no trailing slash (try /admin/tenants)") {
				t.Fatalf("trailing slash: %d %s, want 404 with a hint", w.Code, w.Body)
			}
			// DELETE of a binding is idempotent: nothing bound is still 204.
			for _, appid := range []string{"wxaaaaaaaaaaaaaaa1"} {
				if w := f.admin(http.MethodDelete, "/admin/tenants/"+tn+"/authorizers/"+appid, nil); w.Code != http.StatusNoContent {
					t.Fatalf("unbinding %s that was never bound: %d %s, want 204", appid, w.Code, w.Body)
				}
			}
			// Nothing above changed the tenants.
			list := decodeAs[struct{ Tenants []tenantJSON }](t, f.admin(http.MethodGet, "/admin/tenants", nil)).Tenants
			if len(list) != 2 || list[0].Name != "acme" || list[0].RateLimit != nil {
				t.Fatalf("tenants changed: %+v", list)
			}
		})
	}
}

func TestEveryAdminRouteRequiresTheToken(t *testing.T) {
	f := newTenantFixture(t, store.SQLite)
	n := 0
	for _, r := range f.router.Routes() {
		if !strings.HasPrefix(r.Path, "/admin/") {
			continue
		}
		n++
		path := strings.NewReplacer(":id", "tn_x", ":kid", "k_x", ":appid", "wxaaaaaaaaaaaaaaa1").Replace(r.Path)
		for _, h := range []string{"", "Bearer wrong-token-wrong-token-wrong-token"} {
			w := f.do(r.Method, path, `{}`, "Authorization", h)
			if w.Code != http.StatusUnauthorized || errorCodeOf(t, w) != "unauthenticated" {
				t.Errorf("%s %s with %q: %d %s", r.Method, r.Path, h, w.Code, w.Body)
			}
		}
	}
	if n < 13 {
		t.Fatalf("only %d admin routes", n)
	}
}

// platformSet is a registry of platforms for the fixture: the appids it
// holds are served besides the default one.
type platformSet map[string]bool

func (p platformSet) HasPlatform(_ context.Context, componentAppID string) (bool, error) {
	return p[componentAppID], nil
}

// TestAdminTenantsOfSeveralPlatforms: POST /admin/tenants creates a tenant
// on the platform its component_appid names (absent: the default one), and
// every admin answer about a tenant says which platform it belongs to.
func TestAdminTenantsOfSeveralPlatforms(t *testing.T) {
	const other = "wx00000000000000c2"
	f := newTenantFixture(t, store.SQLite, func(o *tenantFixtureOptions) { o.platforms = platformSet{other: true} })
	// Registered as the admin API does: tenants of a platform are written
	// only while its row is there.
	if _, err := f.store.CreatePlatform(context.Background(), store.Platform{AppID: other, Secret: "s", Token: "token",
		AESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}); err != nil {
		t.Fatal(err)
	}
	// platformOf decodes one tenant answer, insisting the field is present.
	platformOf := func(t *testing.T, raw map[string]any) string {
		t.Helper()
		v, ok := raw["component_appid"].(string)
		if !ok {
			t.Fatalf("tenant %v has no component_appid string", raw)
		}
		return v
	}
	var onDefault, onOther string
	journey.Step(t, "create on each platform", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body map[string]any
			want string
			id   *string
		}{
			{"acme", map[string]any{"name": "acme"}, tfComponent, &onDefault},
			{"acme on the other platform", map[string]any{"name": "acme", "component_appid": other}, other, &onOther},
		} {
			w := f.admin(http.MethodPost, "/admin/tenants", tc.body)
			if w.Code != http.StatusCreated {
				t.Fatalf("create %s: got %d %s, want 201", tc.name, w.Code, w.Body)
			}
			raw := decodeAs[map[string]any](t, w)
			if got := platformOf(t, raw); got != tc.want {
				t.Fatalf("create %s: component_appid %q, want %q", tc.name, got, tc.want)
			}
			*tc.id = raw["id"].(string)
			f.clock.Advance(time.Millisecond)
		}
		if w := f.admin(http.MethodPost, "/admin/tenants", map[string]any{"name": "acme", "component_appid": other}); w.Code != http.StatusConflict {
			t.Fatalf("a name taken on the same platform: got %d %s, want 409", w.Code, w.Body)
		}
	})
	journey.Step(t, "list and patch answer the platform", func(t *testing.T) {
		w := f.admin(http.MethodGet, "/admin/tenants", nil)
		list := decodeAs[struct{ Tenants []map[string]any }](t, w).Tenants
		if w.Code != http.StatusOK || len(list) != 2 || platformOf(t, list[0]) != tfComponent || platformOf(t, list[1]) != other {
			t.Fatalf("list: got %d %s, want both tenants with their platforms", w.Code, w.Body)
		}
		w = f.admin(http.MethodPatch, "/admin/tenants/"+onOther, map[string]any{"rate_limit": 3})
		if got := platformOf(t, decodeAs[map[string]any](t, w)); w.Code != http.StatusOK || got != other {
			t.Fatalf("patch: got %d %s, want 200 on %s", w.Code, w.Body, other)
		}
	})
	journey.Step(t, "the key's principal is on the tenant's platform", func(t *testing.T) {
		_, key := f.issueKey(onOther, nil)
		p, err := f.svc.Verifier.Authenticate(context.Background(), key)
		if err != nil || p.ComponentAppID != other {
			t.Fatalf("principal = %+v, %v; want platform %s", p, err, other)
		}
		if w := f.admin(http.MethodDelete, "/admin/tenants/"+onOther, nil); w.Code != http.StatusNoContent {
			t.Fatalf("delete the other platform's tenant: got %d %s, want 204", w.Code, w.Body)
		}
		if _, ok := f.svc.Directory.ComponentOf(onDefault); !ok {
			t.Fatalf("the default platform's tenant went with it")
		}
	})
}
