package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"
	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/proxy"
)

// OpenAPI builds the OpenAPI 3 document of every route (docs/api.md). The
// request and response schemas are generated from the very Go types the
// handlers decode and encode, the proxied routes from the API table, so the
// document cannot drift from the code; docs/openapi.json is this document,
// kept in the repository (tests fail when they differ, when a route of
// routes.go is missing from it, and when a real answer of the end-to-end
// tests does not match it).
func OpenAPI() []byte {
	g := newSchemas()
	paths := map[string]map[string]any{}
	add := func(method, path string, op map[string]any) {
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = op
	}
	for _, r := range staticRoutes {
		add(r.method, r.path, r.op(g))
	}
	for _, api := range proxy.APIs {
		compat := map[string]any{
			"operationId": api.Name + "Compatible",
			"summary":     "WeChat-compatible " + api.Name + ": the same path, query and body as WeChat, the tenant key as access_token; every answer WeChat-shaped with HTTP 200.",
			"tags":        []string{"compatible"},
			"security":    []any{map[string]any{"accessToken": []string{}}},
			"parameters":  []any{appidParam()},
			"responses": map[string]any{"200": map[string]any{
				"description": "WeChat's body unchanged, or {\"errcode\", \"errmsg\"} (docs/api.md, \"Compatible errcodes\")",
				"content":     jsonContent(g.ref("WeChatAnswer", wechatAnswer{}), wechatPageExample),
			}},
		}
		if api.Method == http.MethodPost {
			compat["requestBody"] = map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}}
		}
		add(api.Method, "/wx/{appid}"+api.Path, compat)
		if api.RESTPath == "" {
			continue
		}
		restPath := "/v1" + ginToOpenAPI(api.RESTPath)
		if api.Cursor == "" {
			add(http.MethodGet, restPath, proxyOp(api, api.Name, api.Summary+" Answers WeChat's JSON unchanged.",
				jsonContent(map[string]any{"type": "object", "description": "WeChat's answer, unchanged"}, nil)))
			continue
		}
		add(http.MethodGet, restPath, proxyOp(api, api.Name, api.Summary+" Answers WeChat's JSON unchanged.",
			jsonContent(g.ref("WeChatPage", wechatPage{}), wechatPageExample)))
		exp := proxyOp(api, api.Name+"Export", "Every page of "+api.Name+", fetched by the gateway and streamed as it arrives (NDJSON {\"openid\"} per line, or CSV). Local refusals are ordinary error answers; once WeChat was asked, a failure (even of the first page) ends the 200 stream with {\"error\": ERROR, \"next_openid\": CURSOR, \"resumable\": BOOL} (CSV: one field, #error code=… resumable=… next_openid=… message=…); resume from CURSOR only when resumable.",
			map[string]any{
				"application/x-ndjson":    map[string]any{"schema": strSchema, "example": "{\"openid\":\"oAbc…\"}\n{\"openid\":\"oDef…\"}\n"},
				"text/csv; charset=utf-8": map[string]any{"schema": strSchema, "example": "openid\noAbc…\noDef…\n"},
			})
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
			"description": "Multi-tenant gateway for WeChat third-party platforms (docs/api.md). Errors on /v1 and /admin are {\"error\": {\"code\", \"message\", \"details\"}}; the compatible surface answers WeChat's {\"errcode\", \"errmsg\"}.",
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"tenantKey":   map[string]any{"type": "http", "scheme": "bearer", "description": "tenant API key (JWT) issued by POST /admin/tenants/{id}/keys"},
				"adminToken":  map[string]any{"type": "http", "scheme": "bearer", "description": "WXGATE_ADMIN_TOKEN"},
				"accessToken": map[string]any{"type": "apiKey", "in": "query", "name": "access_token", "description": "the tenant key, where WeChat expects access_token"},
			},
			"schemas":   g.schemas,
			"responses": errorResponses(g),
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("httpapi: openapi: %v", err)) // static data: cannot fail
	}
	return append(b, '\n')
}

// schemas generates component schemas from Go types with kin-openapi's
// generator. Responses list every field the handler always writes as
// required; pointer fields are nullable.
type schemas struct {
	schemas openapi3.Schemas
}

func newSchemas() *schemas { return &schemas{schemas: openapi3.Schemas{}} }

// ref generates the schema of v's type as components/schemas/name and
// returns its $ref.
func (s *schemas) ref(name string, v any) map[string]any {
	if _, ok := s.schemas[name]; !ok {
		ref, err := openapi3gen.NewSchemaRefForValue(v, nil, openapi3gen.SchemaCustomizer(describeField))
		if err != nil {
			panic(fmt.Sprintf("httpapi: openapi: schema of %T: %v", v, err)) // static types: cannot fail
		}
		s.schemas[name] = ref
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

// describeField marks the fields a struct always carries (no omitempty) as
// required and times as date-time, and names the error codes.
func describeField(name string, t reflect.Type, tag reflect.StructTag, schema *openapi3.Schema) error {
	if d, ok := fieldDocs[name]; ok && schema.Description == "" {
		schema.Description = d
	}
	if nullableFields[name] {
		schema.Nullable = true
	}
	if ex, ok := fieldExamples[name]; ok && schema.Example == nil {
		// The generator calls this for a slice's items under the field's
		// name too: only the slice itself takes a list example.
		if _, list := ex.([]any); list == schema.Type.Is(openapi3.TypeArray) {
			schema.Example = ex
		}
	}
	if strings.HasSuffix(name, "_at") || name == "hour" || name == "from" || name == "to" {
		schema.Format = "date-time"
	}
	if t == reflect.TypeFor[errs.Code]() {
		for code := range statusOf {
			schema.Enum = append(schema.Enum, string(code))
		}
		slices.SortFunc(schema.Enum, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && schema.Type.Is(openapi3.TypeObject) {
		schema.Required = requiredFields(t)
	}
	return nil
}

func requiredFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		if f.Anonymous {
			out = append(out, requiredFields(f.Type)...)
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
			continue
		}
		out = append(out, name)
	}
	return out
}

// wechatPage documents WeChat's answer to getFans and getTagFans
// (docs/wechat.md, "Paging"); the gateway passes it through unchanged.
type wechatPage struct {
	Total      int    `json:"total,omitempty"`
	Count      int    `json:"count"`
	NextOpenID string `json:"next_openid"`
	Data       struct {
		OpenID []string `json:"openid"`
	} `json:"data,omitzero"`
}

// wechatAnswer is any answer of the compatible surface: WeChat's page, or
// WeChat's error shape.
type wechatAnswer struct {
	Errcode    int    `json:"errcode,omitempty"`
	Errmsg     string `json:"errmsg,omitempty"`
	Total      int    `json:"total,omitempty"`
	Count      int    `json:"count,omitempty"`
	NextOpenID string `json:"next_openid,omitempty"`
	Data       struct {
		OpenID []string `json:"openid"`
	} `json:"data,omitzero"`
}

// cloudCallBody documents the body of POST /v1/openapi/{name}: the cloud
// call's own body plus the account (proxy.API.CloudArgs reads it).
type cloudCallBody struct {
	AppID      string `json:"appid"`
	NextOpenID string `json:"next_openid,omitempty"`
	TagID      int    `json:"tagid,omitempty"`
}

var wechatPageExample = map[string]any{"total": 23000, "count": 2, "data": map[string]any{"openid": []string{"oAbcdEfgh0001", "oAbcdEfgh0002"}}, "next_openid": "oAbcdEfgh0002"}

var strSchema = map[string]any{"type": "string"}

func jsonContent(schema map[string]any, example any) map[string]any {
	c := map[string]any{"schema": schema}
	if example != nil {
		c["example"] = example
	}
	return map[string]any{"application/json": c}
}

// errorResponses are the error answers of /v1 and /admin, one per status.
func errorResponses(g *schemas) map[string]any {
	out := map[string]any{}
	byStatus := map[int][]string{}
	for code, status := range statusOf {
		byStatus[status] = append(byStatus[status], string(code))
	}
	for status, codes := range byStatus {
		slices.Sort(codes)
		out[fmt.Sprint(status)] = map[string]any{
			"description": http.StatusText(status) + ": error code " + strings.Join(codes, ", "),
			"content": jsonContent(g.ref("Error", errorBody{}), map[string]any{"error": map[string]any{
				"code": codes[0], "message": "what went wrong, for people", "details": map[string]any{}}}),
		}
	}
	return out
}

// errorRefs references the error answers a route can give.
func errorRefs(statuses ...int) map[string]any {
	out := map[string]any{}
	for _, s := range statuses {
		out[fmt.Sprint(s)] = map[string]any{"$ref": "#/components/responses/" + fmt.Sprint(s)}
	}
	return out
}

// The error statuses of each surface.
var (
	tenantErrors = []int{400, 401, 403, 404, 429, 500, 502, 503, 504}
	adminErrors  = []int{400, 401, 404, 409, 500, 503}
)

func appidParam() map[string]any {
	return map[string]any{"name": "appid", "in": "path", "required": true, "description": "the account's appid: wx followed by 16 letters or digits",
		"schema": map[string]any{"type": "string", "pattern": "^wx[0-9A-Za-z]{16}$"}, "example": "wxd000000000c0ffee"}
}

func componentParam() map[string]any {
	return map[string]any{"name": "component", "in": "path", "required": true, "description": "the platform's component appid: wx followed by 16 letters or digits",
		"schema": map[string]any{"type": "string", "pattern": "^wx[0-9A-Za-z]{16}$"}, "example": "wxc0ffee0000000002"}
}

// componentQuery is the admin's choice of platform for the account routes.
var componentQuery = query("component_appid", "the platform whose accounts are meant (default: the default platform, WXGATE_COMPONENT_APPID)",
	map[string]any{"type": "string", "pattern": "^wx[0-9A-Za-z]{16}$"})

// platformRoutes are the WeChat-facing routes of every registered platform:
// the default platform's short ones under /wechat/components/{component}.
func platformRoutes(short []staticRoute) []staticRoute {
	var out []staticRoute
	for _, r := range short {
		if !strings.HasPrefix(r.path, "/wechat/") {
			continue
		}
		r.path = "/wechat/components/{component}" + strings.TrimPrefix(r.path, "/wechat")
		r.id += "OfPlatform"
		r.summary = "The same for the platform {component} (docs/api.md, \"Several platforms\"). " + r.summary
		raw := map[string]any{"404": map[string]any{"description": "no platform has this component appid", "content": text("unknown platform")}}
		for k, v := range r.errorsRaw {
			raw[k] = v
		}
		r.errorsRaw = raw
		out = append(out, r)
	}
	return out
}

func proxyOp(api *proxy.API, id, summary string, ok map[string]any) map[string]any {
	params := []any{appidParam()}
	for _, p := range api.Params {
		in := "query"
		if p.InPath {
			in = "path"
		}
		schema := map[string]any{"type": "string", "maxLength": 64, "pattern": "^[A-Za-z0-9_-]*$"}
		switch p.Kind {
		case proxy.KindPositiveInt:
			schema = map[string]any{"type": "integer", "minimum": 1, "maximum": 1<<31 - 1}
		case proxy.KindCGIPath:
			schema = map[string]any{"type": "string", "maxLength": 128, "pattern": "^/[A-Za-z0-9_/.-]*$"}
		}
		params = append(params, map[string]any{"name": p.Name, "in": in, "required": p.Required || p.InPath, "schema": schema})
	}
	responses := errorRefs(tenantErrors...)
	responses["200"] = map[string]any{"description": "success", "content": ok}
	return map[string]any{
		"operationId": id,
		"summary":     summary,
		"description": fmt.Sprintf("WeChat %s %s. Requires the account to have granted any of the permission sets %v; refused locally with permission_set_missing otherwise. Counted against the account's WeChat daily quota: refused locally with rate_limited (details.scope wechat_daily_quota, or tenant_daily_limit past the operator's cap) when it is spent. Query parameters other than those listed are refused.", api.Method, api.Path, api.RequiredSets),
		"tags":        []string{"proxy"},
		"security":    []any{map[string]any{"tenantKey": []string{}}},
		"parameters":  params,
		"responses":   responses,
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
	method, path, id, summary string
	// security is the scheme, "" for none.
	security string
	// status is the success status; resp the Go value the handler encodes
	// (nil: no body), or raw the content of a non-JSON answer.
	status int
	resp   any
	raw    map[string]any
	// req is the Go value the handler decodes (nil: no body).
	req any
	// query lists the query parameters.
	query []map[string]any
	// errors are the error statuses; errorsRaw describes non-JSON ones.
	errors    []int
	errorsRaw map[string]any
}

func (r staticRoute) op(g *schemas) map[string]any {
	responses := errorRefs(r.errors...)
	for k, v := range r.errorsRaw {
		responses[k] = v
	}
	ok := map[string]any{"description": "success"}
	switch {
	case r.raw != nil:
		ok["content"] = r.raw
	case r.resp != nil:
		ok["content"] = jsonContent(g.ref(typeName(r.resp), r.resp), nil)
	}
	responses[fmt.Sprint(r.status)] = ok
	tag := strings.Split(strings.TrimPrefix(r.path, "/"), "/")[0]
	if tag == "healthz" || tag == "readyz" || tag == "metrics" || tag == "openapi.json" {
		tag = "operations"
	}
	op := map[string]any{
		"operationId": r.id,
		"summary":     r.summary,
		"tags":        []string{tag},
		"responses":   responses,
	}
	if r.security != "" {
		op["security"] = []any{map[string]any{r.security: []string{}}}
	}
	var params []any
	for _, seg := range strings.Split(r.path, "/") {
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			name = strings.TrimSuffix(name, "}")
			if name == "appid" {
				params = append(params, appidParam())
				continue
			}
			if name == "component" {
				params = append(params, componentParam())
				continue
			}
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": strSchema})
		}
	}
	for _, q := range r.query {
		params = append(params, q)
	}
	if params != nil {
		op["parameters"] = params
	}
	if r.req != nil {
		op["requestBody"] = map[string]any{"required": true, "content": jsonContent(g.ref(typeName(r.req), r.req), nil)}
	}
	return op
}

// typeName is the public schema name of a handler type: tenantJSON → Tenant.
func typeName(v any) string {
	n := reflect.TypeOf(v).Name()
	n = strings.TrimSuffix(strings.TrimSuffix(n, "JSON"), "Response")
	return strings.ToUpper(n[:1]) + n[1:]
}

// List answers of the admin and tenant APIs.
type (
	tenantList struct {
		Tenants []tenantJSON `json:"tenants"`
	}
	keyList struct {
		Keys []keyJSON `json:"keys"`
	}
	authorizerList struct {
		Authorizers []authorizerJSON `json:"authorizers"`
	}
	adminAuthorizerList struct {
		Authorizers []adminAuthorizerJSON `json:"authorizers"`
	}
	platformList struct {
		Components []platformJSON `json:"components"`
	}
	deliveryList struct {
		Deliveries []deliveryJSON `json:"deliveries"`
	}
	textPlain = map[string]any
)

func text(example string) textPlain {
	return map[string]any{"text/plain; charset=utf-8": map[string]any{"schema": strSchema, "example": example}}
}

func query(name, description string, schema map[string]any) map[string]any {
	return map[string]any{"name": name, "in": "query", "description": description, "schema": schema}
}

// staticRoutes are the routes of routes.go that are not proxied APIs.
var staticRoutes = []staticRoute{
	{method: "GET", path: "/healthz", id: "healthz", summary: "200 while the process runs.", status: 200, raw: text("ok")},
	{method: "GET", path: "/readyz", id: "readyz", summary: "200 when the store answers; the body also states whether WeChat is reachable.", status: 200,
		raw: text("ready\nstore: ok\nwechat: reachable\n"), errorsRaw: map[string]any{"503": map[string]any{"description": "the store does not answer", "content": text("store unreachable")}}},
	{method: "GET", path: "/metrics", id: "metrics", summary: "Prometheus metrics (text exposition format).", status: 200,
		raw: map[string]any{"text/plain; version=0.0.4; charset=utf-8": map[string]any{"schema": strSchema}}},
	{method: "GET", path: "/openapi.json", id: "openapi", summary: "This document.", status: 200,
		raw: map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}},
	{method: "POST", path: "/wechat/events", id: "wechatEvents", summary: "WeChat's authorization event receive URL: encrypted, signed XML pushes (tickets, authorized, updateauthorized, unauthorized).", status: 200,
		query: []map[string]any{
			query("msg_signature", "SHA-1 signature of the push", strSchema), query("timestamp", "Unix seconds", strSchema), query("nonce", "random", strSchema),
			query("signature", "signature without the ciphertext (ignored)", strSchema), query("encrypt_type", "aes", strSchema),
		},
		raw: text("success"),
		errorsRaw: map[string]any{
			"400": map[string]any{"description": "malformed, wrong appid, stale or future timestamp (nothing stored)", "content": text("malformed body")},
			"401": map[string]any{"description": "bad signature (nothing stored)", "content": text("bad signature")},
			"413": map[string]any{"description": "body over the limit", "content": text("body too large")},
			"503": map[string]any{"description": "transient failure: WeChat retries the push", "content": text("retry later")},
		}},
	{method: "POST", path: "/wechat/accounts/{appid}/callback", id: "wechatAccountMessages", summary: "WeChat's message and event receive URL for authorized accounts: answers the full-network release test, queues every other message for the account's tenants.", status: 200,
		query: []map[string]any{
			query("msg_signature", "SHA-1 signature of the push", strSchema), query("timestamp", "Unix seconds", strSchema), query("nonce", "random", strSchema),
			query("openid", "the follower", strSchema), query("signature", "signature without the ciphertext (not needed)", strSchema), query("encrypt_type", "aes", strSchema),
		},
		raw: map[string]any{
			"text/plain; charset=utf-8":      map[string]any{"schema": strSchema, "example": "success"},
			"application/xml; charset=utf-8": map[string]any{"schema": strSchema, "example": "<xml><Encrypt><![CDATA[…]]></Encrypt><MsgSignature><![CDATA[…]]></MsgSignature><TimeStamp>1700000000</TimeStamp><Nonce><![CDATA[…]]></Nonce></xml>"},
		},
		errorsRaw: map[string]any{
			"400": map[string]any{"description": "malformed, wrong appid or bad timestamp (nothing stored, nothing called)", "content": text("malformed body")},
			"401": map[string]any{"description": "bad signature (nothing stored, nothing called)", "content": text("bad signature")},
			"413": map[string]any{"description": "body over the limit", "content": text("request body too large")},
			"503": map[string]any{"description": "the message could not be queued: WeChat retries the push", "content": text("try again")},
		}},
	{method: "GET", path: "/wechat/accounts/{appid}/callback", id: "wechatAccountMessagesVerify", summary: "WeChat's URL verification of the message URL: echoes echostr when signature is the platform's.", status: 200,
		query:     []map[string]any{query("signature", "SHA-1 over Token, timestamp and nonce", strSchema), query("timestamp", "Unix seconds", strSchema), query("nonce", "random", strSchema), query("echostr", "echoed back", strSchema)},
		raw:       text("echostr"),
		errorsRaw: map[string]any{"401": map[string]any{"description": "bad signature", "content": text("bad signature")}}},
	{method: "GET", path: "/wechat/callback", id: "wechatCallback", summary: "Where the merchant's browser returns after authorizing: completes the authorization and redirects to the session's return_url.", status: 302,
		query: []map[string]any{query("session", "the authorization session id (as_…)", strSchema), query("auth_code", "WeChat's authorization code", strSchema), query("expires_in", "seconds", strSchema)},
		errorsRaw: map[string]any{"400": map[string]any{"description": "an HTML error page (unknown or expired session, refused code)",
			"content": map[string]any{"text/html; charset=utf-8": map[string]any{"schema": strSchema}}}}},

	{method: "POST", path: "/v1/authorizations", id: "createAuthorization", security: "tenantKey", status: 201, req: createAuthorizationRequest{}, resp: authorizationJSON{},
		summary: "Start an authorization: returns the PC and mobile authorization URLs for a merchant's admin.", errors: tenantErrors},
	{method: "GET", path: "/v1/authorizers", id: "listAuthorizers", security: "tenantKey", status: 200, resp: authorizerList{},
		summary: "The accounts bound to the caller's tenant.", errors: tenantErrors},
	{method: "GET", path: "/v1/authorizers/{appid}", id: "getAuthorizer", security: "tenantKey", status: 200, resp: authorizerJSON{},
		summary: "One account bound to the caller's tenant.", errors: tenantErrors},
	{method: "GET", path: "/v1/authorizers/{appid}/quota", id: "getQuota", security: "tenantKey", status: 200, resp: quotaList{},
		summary: "The account's WeChat daily quota of every proxied API with one: daily_limit (from WeChat's quota/get), used (WeChat's count when asked plus the gateway's calls since, across replicas), remain, resets_at (midnight Beijing time), checked_at.", errors: tenantErrors},
	{method: "POST", path: "/v1/openapi/{name}", id: "cloudCall", security: "tenantKey", status: 200, req: cloudCallBody{},
		raw: jsonContent(map[string]any{"anyOf": []any{
			map[string]any{"$ref": "#/components/schemas/WeChatPage"},
			map[string]any{"type": "object", "description": "officialAccount.tags.get: WeChat's {\"tags\": [{\"id\", \"name\", \"count\"}]} unchanged"},
		}}, wechatPageExample),
		summary: "A proxied API under its WeChat cloud-call name (officialAccount.user.getList, officialAccount.tags.getUsers, officialAccount.tags.get): the JSON body the cloud call takes plus \"appid\"; WeChat's body unchanged.", errors: tenantErrors},

	{method: "PUT", path: "/v1/webhook", id: "putWebhook", security: "tenantKey", status: 200, req: putWebhookRequest{}, resp: webhookJSON{},
		summary: "Create or change the tenant's webhook; the secret (whsec_…) is in the answer only when the webhook is created.", errors: tenantErrors},
	{method: "GET", path: "/v1/webhook", id: "getWebhook", security: "tenantKey", status: 200, resp: webhookJSON{},
		summary: "The tenant's webhook, without its secret; 404 if it has none.", errors: tenantErrors},
	{method: "DELETE", path: "/v1/webhook", id: "deleteWebhook", security: "tenantKey", status: 204,
		summary: "Remove the webhook; its pending deliveries end failed.", errors: tenantErrors},
	{method: "POST", path: "/v1/webhook/rotate-secret", id: "rotateWebhookSecret", security: "tenantKey", status: 200, resp: webhookJSON{},
		summary: "A new signing secret (in the answer); the old one keeps signing beside it for 24 h. 409 while a previous rotation's grace lasts.",
		errors:  append([]int{409}, tenantErrors...)},
	{method: "GET", path: "/v1/webhook/deliveries", id: "listWebhookDeliveries", security: "tenantKey", status: 200, resp: deliveryList{},
		query: []map[string]any{
			query("status", "only deliveries with this status", map[string]any{"type": "string", "enum": []string{"pending", "delivered", "failed"}}),
			query("limit", "at most this many (default 50)", map[string]any{"type": "integer", "minimum": 1, "maximum": 500}),
		},
		summary: "The webhook's deliveries, newest first.", errors: tenantErrors},
	{method: "POST", path: "/v1/webhook/deliveries/{id}/redeliver", id: "redeliverWebhook", security: "tenantKey", status: 202, resp: deliveryJSON{},
		summary: "Queue a delivery's event again, with the same event id.", errors: tenantErrors},
	{method: "POST", path: "/v1/webhook/test", id: "testWebhook", security: "tenantKey", status: 202, resp: deliveryJSON{},
		summary: "Queue a webhook.test event; 404 without a webhook.", errors: tenantErrors},

	{method: "POST", path: "/admin/tenants", id: "createTenant", security: "adminToken", status: 201, req: createTenantRequest{}, resp: tenantJSON{},
		summary: "Create a tenant.", errors: adminErrors},
	{method: "GET", path: "/admin/tenants", id: "listTenants", security: "adminToken", status: 200, resp: tenantList{}, summary: "List tenants.", errors: adminErrors},
	{method: "PATCH", path: "/admin/tenants/{id}", id: "updateTenant", security: "adminToken", status: 200, req: updateTenantRequest{}, resp: tenantJSON{},
		summary: "Rename a tenant, set its rate limit (per replica) or its allowed return_url hosts.", errors: adminErrors},
	{method: "DELETE", path: "/admin/tenants/{id}", id: "deleteTenant", security: "adminToken", status: 204, summary: "Delete a tenant with its keys and bindings.", errors: adminErrors},
	{method: "POST", path: "/admin/tenants/{id}/keys", id: "issueKey", security: "adminToken", status: 201, req: issueKeyRequest{}, resp: issueKeyResponse{},
		summary: "Issue a tenant key (shown once).", errors: adminErrors},
	{method: "GET", path: "/admin/tenants/{id}/keys", id: "listKeys", security: "adminToken", status: 200, resp: keyList{},
		summary: "List a tenant's keys (never the keys themselves).", errors: adminErrors},
	{method: "GET", path: "/admin/tenants/{id}/usage", id: "tenantUsage", security: "adminToken", status: 200, resp: usageResponse{},
		query:   []map[string]any{query("from", "start (RFC 3339), default 24 h ago", map[string]any{"type": "string", "format": "date-time"}), query("to", "end (RFC 3339), default now", map[string]any{"type": "string", "format": "date-time"})},
		summary: "Call counts per account, API, outcome and hour.", errors: adminErrors},
	{method: "DELETE", path: "/admin/keys/{kid}", id: "revokeKey", security: "adminToken", status: 204, summary: "Revoke a key; every replica refuses it within 2 seconds.", errors: adminErrors},
	{method: "PUT", path: "/admin/tenants/{id}/authorizers/{appid}", id: "bindAuthorizer", security: "adminToken", status: 204, summary: "Bind an authorized account to a tenant.", errors: adminErrors},
	{method: "DELETE", path: "/admin/tenants/{id}/authorizers/{appid}", id: "unbindAuthorizer", security: "adminToken", status: 204, summary: "Unbind an account from a tenant.", errors: adminErrors},
	{method: "PATCH", path: "/admin/tenants/{id}/authorizers/{appid}", id: "setBindingLimit", security: "adminToken", status: 200, req: bindingLimitRequest{}, resp: bindingJSON{},
		summary: "Cap the tenant's calls per proxied API and Beijing day on the account (0 removes the cap); beyond it that tenant alone is refused with rate_limited, details.scope tenant_daily_limit.", errors: adminErrors},
	{method: "POST", path: "/admin/tenants/{id}/authorizers/{appid}/approve", id: "approveBinding", security: "adminToken", status: 204,
		summary: "Approve a binding an authorization left pending (the account was bound to another tenant).", errors: adminErrors},
	{method: "GET", path: "/admin/authorizers", id: "adminListAuthorizers", security: "adminToken", status: 200, resp: adminAuthorizerList{}, query: []map[string]any{componentQuery},
		summary: "Every authorized account with its tenants and the tenants waiting for approval.", errors: adminErrors},
	{method: "POST", path: "/admin/authorizers/{appid}/refresh", id: "refreshAuthorizer", security: "adminToken", status: 200, resp: authorizerJSON{}, query: []map[string]any{componentQuery},
		summary: "Force a token refresh.", errors: append(adminErrors, 403, 502, 503, 504)},
	{method: "POST", path: "/admin/authorizers/{appid}/quota/clear", id: "clearQuota", security: "adminToken", status: 200, resp: quotaList{}, query: []map[string]any{componentQuery},
		summary: "Call WeChat's clear_quota for the account (10 times a month) and answer its fresh quotas; rate_limited once the month's clears are used (WeChat 48006).",
		errors:  []int{400, 401, 403, 404, 429, 500, 502, 503, 504}},
	{method: "GET", path: "/admin/component", id: "component", security: "adminToken", status: 200, resp: componentJSON{}, query: []map[string]any{componentQuery},
		summary: "Component ticket age and token expiry.", errors: adminErrors},
	{method: "POST", path: "/admin/components", id: "createComponent", security: "adminToken", status: 201, req: createPlatformRequest{}, resp: platformJSON{},
		summary: "Register another third-party platform; its settings are sealed in the store and never answered back. Every replica serves it within about a second.", errors: adminErrors},
	{method: "GET", path: "/admin/components", id: "listComponents", security: "adminToken", status: 200, resp: platformList{},
		summary: "The deployment's platforms, the default first, with the URLs to enter on WeChat's platform page for each.", errors: adminErrors},
	{method: "PUT", path: "/admin/components/{component}", id: "updateComponent", security: "adminToken", status: 200, req: updatePlatformRequest{}, resp: platformJSON{},
		summary: "Change a registered platform's settings (the fields given replace the stored ones: an appsecret reset on WeChat's page, a new Token or key); every replica restarts it with them within about a second. Conflict for the default platform.", errors: adminErrors},
	{method: "DELETE", path: "/admin/components/{component}", id: "deleteComponent", security: "adminToken", status: 204,
		summary: "Remove a registered platform; conflict while tenants belong to it, and for the default platform.", errors: adminErrors},
}

func init() { staticRoutes = append(staticRoutes, platformRoutes(staticRoutes)...) }

// handleOpenAPI serves the document.
func handleOpenAPI() gin.HandlerFunc {
	doc := OpenAPI()
	return func(c *gin.Context) { c.Data(http.StatusOK, "application/json", doc) }
}
