package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/proxy"
)

// OpenAPI builds the OpenAPI 3 document of /v1, /wx and /admin. The proxied
// routes are generated from the API table; docs/openapi.json is this
// document, kept in the repository (a test fails when they differ, and when
// a route of routes.go is missing from it or the other way round).
func OpenAPI() []byte {
	paths := map[string]map[string]any{}
	add := func(method, path string, op map[string]any) {
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = op
	}
	for _, r := range staticRoutes {
		add(r.method, r.path, r.op())
	}
	for _, api := range proxy.APIs {
		addCompat(add, api)
		if api.RESTPath == "" {
			continue
		}
		restPath := "/v1" + ginToOpenAPI(api.RESTPath)
		add(http.MethodGet, restPath, proxyOp(api, api.Name, api.Summary+" Answers WeChat's JSON unchanged.", "WeChat's answer, unchanged"))
		if api.Cursor == "" {
			continue
		}
		exp := proxyOp(api, api.Name+"Export", "Every page of "+api.Name+", fetched by the gateway and streamed as it arrives (NDJSON {\"openid\"} per line, or CSV). Local refusals are ordinary error answers; once WeChat was asked, a failure (even of the first page) ends the 200 stream with {\"error\": ERROR, \"next_openid\": CURSOR} (CSV: #error,CODE,CURSOR) to resume from.", "the stream")
		exp["parameters"] = append(exp["parameters"].([]any), map[string]any{
			"name": "format", "in": "query", "schema": map[string]any{"type": "string", "enum": []string{"ndjson", "csv"}, "default": "ndjson"},
		})
		add(http.MethodGet, restPath+"/export", exp)
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "wxgate",
			"version":     "1",
			"description": "Multi-tenant gateway for WeChat third-party platforms. Errors on /v1 and /admin are {\"error\": {\"code\", \"message\", \"details\"}}.",
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"tenantKey":   map[string]any{"type": "http", "scheme": "bearer", "description": "tenant API key (JWT) issued by POST /admin/tenants/{id}/keys"},
				"adminToken":  map[string]any{"type": "http", "scheme": "bearer", "description": "WXGATE_ADMIN_TOKEN"},
				"accessToken": map[string]any{"type": "apiKey", "in": "query", "name": "access_token", "description": "the tenant key, where WeChat expects access_token"},
			},
			"schemas": map[string]any{
				"Error": map[string]any{"type": "object", "properties": map[string]any{"error": map[string]any{"type": "object", "properties": map[string]any{
					"code":    map[string]any{"type": "string", "enum": []string{"invalid_argument", "unauthenticated", "forbidden", "permission_set_missing", "authorizer_unauthorized", "not_found", "method_not_allowed", "conflict", "rate_limited", "upstream_error", "upstream_unavailable", "upstream_timeout", "component_not_ready", "store_unavailable", "internal"}},
					"message": map[string]any{"type": "string"},
					"details": map[string]any{"type": "object"},
				}}}},
				"Authorizer": map[string]any{"type": "object", "properties": map[string]any{
					"appid":            map[string]any{"type": "string"},
					"status":           map[string]any{"type": "string", "enum": []string{"authorized", "unauthorized", "needs_reauthorization"}},
					"permission_sets":  map[string]any{"type": "array", "items": map[string]any{"type": "integer"}},
					"token_expires_at": map[string]any{"type": "string", "format": "date-time", "nullable": true},
					"authorized_at":    map[string]any{"type": "string", "format": "date-time"},
					"nick_name":        map[string]any{"type": "string", "nullable": true},
				}},
			},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("httpapi: openapi: %v", err)) // static data: cannot fail
	}
	return append(b, '\n')
}

// addCompat documents api's compatible route.
func addCompat(add func(method, path string, op map[string]any), api *proxy.API) {
	add(api.Method, "/wx/{appid}"+api.Path, map[string]any{
		"operationId": api.Name + "Compatible",
		"summary":     "WeChat-compatible " + api.Name + ": the same path, query and body as WeChat, the tenant key as access_token; every answer WeChat-shaped with HTTP 200.",
		"tags":        []string{"compatible"},
		"security":    []any{map[string]any{"accessToken": []string{}}},
		"parameters":  []any{appidParam()},
		"responses":   map[string]any{"200": map[string]any{"description": "WeChat's body, or {\"errcode\", \"errmsg\"}"}},
	})
}

func appidParam() map[string]any {
	return map[string]any{"name": "appid", "in": "path", "required": true, "schema": map[string]any{"type": "string", "pattern": "^wx[0-9A-Za-z]{16}$"}}
}

func proxyOp(api *proxy.API, id, summary, okDesc string) map[string]any {
	params := []any{appidParam()}
	for _, p := range api.Params {
		in := "query"
		if p.InPath {
			in = "path"
		}
		schema := map[string]any{"type": "string", "maxLength": 64, "pattern": "^[A-Za-z0-9_-]*$"}
		switch p.Kind {
		case proxy.KindPositiveInt:
			schema = map[string]any{"type": "integer", "minimum": 1}
		case proxy.KindCGIPath:
			schema = map[string]any{"type": "string", "maxLength": 128, "pattern": "^/[A-Za-z0-9_/.-]*$"}
		}
		params = append(params, map[string]any{"name": p.Name, "in": in, "required": p.Required || p.InPath, "schema": schema})
	}
	return map[string]any{
		"operationId": id,
		"summary":     summary,
		"description": fmt.Sprintf("WeChat %s %s. Requires the account to have granted any of the permission sets %v; refused locally with permission_set_missing otherwise. Counted against the account's WeChat daily quota: refused locally with rate_limited (details.scope wechat_daily_quota or tenant_daily_limit) when it is spent.", api.Method, api.Path, api.RequiredSets),
		"tags":        []string{"proxy"},
		"security":    []any{map[string]any{"tenantKey": []string{}}},
		"parameters":  params,
		"responses": map[string]any{
			"200":     map[string]any{"description": okDesc},
			"default": map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}},
		},
	}
}

// ginToOpenAPI turns "/a/:b/c" into "/a/{b}/c".
func ginToOpenAPI(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// staticRoute documents one route that is not generated from the API table.
type staticRoute struct {
	method, path, id, summary, security string
	body                                map[string]any // request body schema properties, nil for none
	status                              string
}

func (r staticRoute) op() map[string]any {
	op := map[string]any{
		"operationId": r.id,
		"summary":     r.summary,
		"tags":        []string{strings.Split(strings.TrimPrefix(r.path, "/"), "/")[0]},
		"security":    []any{map[string]any{r.security: []string{}}},
		"responses": map[string]any{
			r.status:  map[string]any{"description": "success"},
			"default": map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}},
		},
	}
	var params []any
	for _, seg := range strings.Split(r.path, "/") {
		if strings.HasPrefix(seg, "{") {
			params = append(params, map[string]any{"name": strings.Trim(seg, "{}"), "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
	}
	if r.path == "/admin/tenants/{id}/usage" {
		for _, q := range []string{"from", "to"} {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string", "format": "date-time"}})
		}
	}
	if params != nil {
		op["parameters"] = params
	}
	if r.body != nil {
		op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object", "properties": r.body}}}}
	}
	return op
}

var (
	str  = map[string]any{"type": "string"}
	num  = map[string]any{"type": "integer"}
	strs = map[string]any{"type": "array", "items": str}
)

// staticRoutes are the /v1 and /admin routes of routes.go that are not proxied APIs.
var staticRoutes = []staticRoute{
	{method: "POST", path: "/v1/authorizations", id: "createAuthorization", security: "tenantKey", status: "201",
		summary: "Start an authorization: returns the PC and mobile authorization URLs for a merchant's admin.",
		body:    map[string]any{"return_url": str, "auth_type": num, "biz_appid": str}},
	{method: "GET", path: "/v1/authorizers", id: "listAuthorizers", security: "tenantKey", status: "200", summary: "The accounts bound to the caller's tenant."},
	{method: "GET", path: "/v1/authorizers/{appid}", id: "getAuthorizer", security: "tenantKey", status: "200", summary: "One account bound to the caller's tenant."},
	{method: "GET", path: "/v1/authorizers/{appid}/quota", id: "getQuota", security: "tenantKey", status: "200",
		summary: "The account's WeChat daily quota of every proxied API: daily_limit (from WeChat's quota/get), used (WeChat's count when learned plus the gateway's calls since), remain, resets_at (midnight Beijing time), checked_at."},
	{method: "POST", path: "/v1/openapi/{name}", id: "cloudCall", security: "tenantKey", status: "200",
		summary: "A proxied API under its WeChat cloud-call name (officialAccount.user.getList, officialAccount.tags.getUsers): the JSON body the cloud call takes plus \"appid\"; WeChat's body unchanged.",
		body:    map[string]any{"appid": str, "next_openid": str, "tagid": num}},
	{method: "POST", path: "/admin/tenants", id: "createTenant", security: "adminToken", status: "201", summary: "Create a tenant.", body: map[string]any{"name": str, "return_url_hosts": strs}},
	{method: "GET", path: "/admin/tenants", id: "listTenants", security: "adminToken", status: "200", summary: "List tenants."},
	{method: "PATCH", path: "/admin/tenants/{id}", id: "updateTenant", security: "adminToken", status: "200", summary: "Rename a tenant, set its rate limit (per replica) or its allowed return_url hosts.",
		body: map[string]any{"name": str, "rate_limit": map[string]any{"type": "number"}, "rate_burst": num, "return_url_hosts": strs}},
	{method: "DELETE", path: "/admin/tenants/{id}", id: "deleteTenant", security: "adminToken", status: "204", summary: "Delete a tenant with its keys and bindings."},
	{method: "POST", path: "/admin/tenants/{id}/keys", id: "issueKey", security: "adminToken", status: "201", summary: "Issue a tenant key (shown once).",
		body: map[string]any{"name": str, "ttl_seconds": num, "appids": strs}},
	{method: "GET", path: "/admin/tenants/{id}/keys", id: "listKeys", security: "adminToken", status: "200", summary: "List a tenant's keys (never the keys themselves)."},
	{method: "GET", path: "/admin/tenants/{id}/usage", id: "tenantUsage", security: "adminToken", status: "200", summary: "Call counts per account, API, outcome and hour."},
	{method: "DELETE", path: "/admin/keys/{kid}", id: "revokeKey", security: "adminToken", status: "204", summary: "Revoke a key; every replica refuses it within 2 seconds."},
	{method: "PUT", path: "/admin/tenants/{id}/authorizers/{appid}", id: "bindAuthorizer", security: "adminToken", status: "204", summary: "Bind an authorized account to a tenant."},
	{method: "DELETE", path: "/admin/tenants/{id}/authorizers/{appid}", id: "unbindAuthorizer", security: "adminToken", status: "204", summary: "Unbind an account from a tenant."},
	{method: "PATCH", path: "/admin/tenants/{id}/authorizers/{appid}", id: "setBindingLimit", security: "adminToken", status: "200",
		summary: "Cap the tenant's calls per proxied API and Beijing day on the account (0 removes the cap); beyond it that tenant alone is refused with rate_limited, details.scope tenant_daily_limit.",
		body:    map[string]any{"daily_limit": num}},
	{method: "POST", path: "/admin/tenants/{id}/authorizers/{appid}/approve", id: "approveBinding", security: "adminToken", status: "204", summary: "Approve a binding an authorization left pending (the account was bound to another tenant)."},
	{method: "GET", path: "/admin/authorizers", id: "adminListAuthorizers", security: "adminToken", status: "200", summary: "Every authorized account with its tenants and the tenants waiting for approval."},
	{method: "POST", path: "/admin/authorizers/{appid}/refresh", id: "refreshAuthorizer", security: "adminToken", status: "200", summary: "Force a token refresh."},
	{method: "POST", path: "/admin/authorizers/{appid}/quota/clear", id: "clearQuota", security: "adminToken", status: "200",
		summary: "Call WeChat's clear_quota for the account (10 times a month) and answer its fresh quotas; rate_limited once the month's clears are used (WeChat 48006)."},
	{method: "GET", path: "/admin/component", id: "component", security: "adminToken", status: "200", summary: "Component ticket age and token expiry."},
}

// handleOpenAPI serves the document.
func handleOpenAPI() gin.HandlerFunc {
	doc := OpenAPI()
	return func(c *gin.Context) { c.Data(http.StatusOK, "application/json", doc) }
}
