package httpapi

import (
	"net/http"
	"strings"
	"testing"

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
