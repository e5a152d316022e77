package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/proxy"
)

// addRoutes is the whole HTTP surface (docs/api.md) and the middleware each
// group gets.
func addRoutes(r *gin.Engine, d Deps) {
	// Operations (docs/api.md, "Operations"): no authentication.
	r.GET("/healthz", handleHealthz())
	r.GET("/readyz", handleReadyz(d.Store, d.WeChat, d.Tickets, d.Platforms, d.Logger))
	r.GET("/metrics", handleMetrics(d.Metrics))
	r.GET("/openapi.json", handleOpenAPI())

	// WeChat-facing (docs/api.md, "WeChat-facing endpoints"): authenticated by msg_signature, or by the
	// authorization session in the query.
	// The default platform's short URLs, and every platform's own
	// (docs/api.md, "Several platforms").
	ps := d.Platforms
	for prefix, pick := range map[string]pickPlatform{"/wechat": defaultPlatform(ps), "/wechat/components/:component": pathPlatform(ps)} {
		r.POST(prefix+"/events", handleEvents(pick, d.Logger))
		r.GET(prefix+"/callback", handleCallback(pick, d.Logger))
		r.POST(prefix+"/accounts/:appid/callback", handleAccountMessages(pick, d.Logger))
		r.GET(prefix+"/accounts/:appid/callback", handleAccountMessagesVerify(pick, d.Logger))
	}

	// Tenant API (docs/api.md, "Tenant API"), behind a tenant key and the tenant's rate limit.
	proxied := proxiedRoutes{}
	v1 := r.Group("/v1", requireTenant(d.Tenant.Keys, d.Metrics, d.Logger), usePlatform(principalPlatform(ps), d.Logger, writeError),
		rateLimit(d.Tenant.Limiter, d.Logger, writeError, proxied.refused(d.Proxy)))
	ofTenant := requestPlatform(ps)
	// Every /v1 route names the query parameters it takes; others are refused.
	noQuery := acceptQuery(d.Logger, nil)
	v1.POST("/authorizations", noQuery, handleCreateAuthorization(ofTenant, d.Logger))
	v1.GET("/authorizers", noQuery, handleListAuthorizers(ofTenant, d.Tenant.Bindings, d.Logger))
	v1.GET("/authorizers/:appid", noQuery, handleGetAuthorizer(ofTenant, d.Tenant.Bindings, d.Logger))
	// Webhooks (docs/api.md, "Webhooks"): the tenant's one webhook and its deliveries.
	v1.PUT("/webhook", noQuery, handlePutWebhook(d.Webhooks, d.Logger))
	v1.GET("/webhook", noQuery, handleGetWebhook(d.Webhooks, d.Logger))
	v1.DELETE("/webhook", noQuery, handleDeleteWebhook(d.Webhooks, d.Logger))
	v1.POST("/webhook/rotate-secret", noQuery, handleRotateWebhookSecret(d.Webhooks, d.Logger))
	v1.GET("/webhook/deliveries", acceptQuery(d.Logger, nil, "status", "limit"), handleListDeliveries(d.Webhooks, d.Logger))
	v1.POST("/webhook/deliveries/:id/redeliver", noQuery, handleRedeliver(d.Webhooks, d.Logger))
	v1.POST("/webhook/test", noQuery, handleTestWebhook(d.Webhooks, d.Logger))
	// The proxied APIs from the API table: a REST route each, an export
	// route for the paged ones, and the cloud-call names.
	for _, api := range proxy.APIs {
		if api.RESTPath == "" {
			continue
		}
		proxied.handle(v1, http.MethodGet, api.RESTPath, api, "rest",
			acceptQuery(d.Logger, proxied.refused(d.Proxy), restQuery(api)...), handleProxyREST(api, d.Proxy))
		if api.Cursor != "" {
			proxied.handle(v1, http.MethodGet, api.RESTPath+"/export", api, "export",
				acceptQuery(d.Logger, proxied.refused(d.Proxy), append(restQuery(api), "format")...), handleExport(api, d.Proxy))
		}
	}
	v1.POST("/openapi/:name", noQuery, handleCloudCall(d.Proxy))
	v1.GET("/authorizers/:appid/quota", noQuery, handleQuota(d.Proxy))

	// WeChat-compatible API (docs/api.md, "WeChat-compatible API"): WeChat's paths under /wx/{appid}, the
	// tenant key in access_token, every answer in WeChat's shape.
	wx := r.Group("/wx/:appid", requireTenantCompat(d.Tenant.Keys, d.Metrics, d.Logger), usePlatform(principalPlatform(ps), d.Logger, writeWeChatError), rateLimit(d.Tenant.Limiter, d.Logger, writeWeChatError, proxied.refused(d.Proxy)))
	for _, api := range proxy.APIs {
		proxied.handle(wx, api.Method, api.Path, api, "compat", handleCompat(api, d.Proxy))
	}

	// Admin API (docs/api.md, "Admin API"), behind WXGATE_ADMIN_TOKEN.
	admin := r.Group("/admin", requireAdmin(d.Tenant.AdminToken, d.Metrics, d.Logger), validAppIDParam(d.Logger))
	admin.POST("/tenants", handleCreateTenant(d.Tenant.Tenants, d.Logger))
	admin.GET("/tenants", handleListTenants(d.Tenant.Tenants, d.Logger))
	admin.PATCH("/tenants/:id", handleUpdateTenant(d.Tenant.Tenants, d.Logger))
	admin.DELETE("/tenants/:id", handleDeleteTenant(d.Tenant.Tenants, d.Logger))
	admin.POST("/tenants/:id/keys", handleIssueKey(d.Tenant.KeyAdmin, d.Logger))
	admin.GET("/tenants/:id/keys", handleListKeys(d.Tenant.KeyAdmin, d.Logger))
	admin.GET("/tenants/:id/usage", handleTenantUsage(d.Tenant.UsageReport, d.Tenant.Now, d.Logger))
	admin.DELETE("/keys/:kid", handleRevokeKey(d.Tenant.KeyAdmin, d.Logger))
	admin.PUT("/tenants/:id/authorizers/:appid", handleBind(d.Tenant.BindingAdmin, d.Logger))
	admin.DELETE("/tenants/:id/authorizers/:appid", handleUnbind(d.Tenant.BindingAdmin, d.Logger))
	admin.PATCH("/tenants/:id/authorizers/:appid", handleSetBindingLimit(d.Tenant.BindingAdmin, d.Logger))
	admin.POST("/tenants/:id/authorizers/:appid/approve", handleApproveBinding(d.Tenant.BindingAdmin, d.Logger))
	// The accounts and the component of one platform: the query's
	// component_appid, the default platform without it.
	ofQuery := queryPlatform(ps)
	admin.GET("/authorizers", handleAdminListAuthorizers(ofQuery, d.Logger))
	admin.POST("/authorizers/:appid/refresh", handleAdminRefresh(ofQuery, d.Logger))
	admin.POST("/authorizers/:appid/quota/clear", usePlatform(ofQuery, d.Logger, writeError), handleClearQuota(d.Proxy))
	admin.GET("/component", handleAdminComponent(ofQuery, d.Logger))
	// The deployment's platforms (docs/api.md, "Several platforms").
	admin.POST("/components", handleCreateComponent(ps, d.PublicURL, d.Logger))
	admin.GET("/components", handleListComponents(ps, d.PublicURL, d.Logger))
	admin.PUT("/components/:component", handleUpdateComponent(ps, d.PublicURL, d.Logger))
	admin.DELETE("/components/:component", handleDeleteComponent(ps, d.Logger))

	// Operator console (docs/console.md): HTML pages behind a session
	// cookie, registered by the console itself (console/routes.go).
	if d.Console != nil {
		d.Console.Register(r.Group("/console"))
	}
}
