// Package httpapi is wxgate's HTTP surface: the gin router, every handler,
// the middleware each group of routes gets, and the one mapping from domain
// errors to HTTP answers. Handlers are maker functions that take only the
// dependencies they use; the interfaces they need are declared here.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/proxy"

	"github.com/wxgate/wxgate/internal/obs"
)

// Pinger answers whether the store is reachable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are the concrete services the router wires into handlers.
type Deps struct {
	Logger  *slog.Logger
	Metrics *obs.Metrics
	Store   Pinger
	// WeChat reports WeChat's reachability on /readyz (nil: not reported).
	WeChat Reacher
	// Tickets says on /readyz whether a component_verify_ticket arrived.
	Tickets TicketWaiter
	// Tenant holds the tenant, key and admin services (deps_tenant.go).
	Tenant TenantDeps
	// Platforms finds each request's platform (platforms.go); nil serves
	// Platform (with Proxy.Service) as the only one.
	Platforms Platforms
	// Platform holds the platform backend services (deps_platform.go) of
	// a router without Platforms.
	Platform PlatformDeps
	// PublicURL is WXGATE_PUBLIC_URL: the admin API shows each platform's
	// WeChat URLs under it.
	PublicURL string
	// Proxy holds the proxied API services (proxy.go).
	Proxy ProxyDeps
	// Webhooks is the tenant's webhook service (webhooks.go); nil answers
	// the webhook routes with an internal error.
	Webhooks Webhooks
	// Console is the operator console (console.go); nil leaves /console unrouted.
	Console ConsoleRoutes
	// TrustedProxies (IPs, CIDRs) may name the client in X-Forwarded-For;
	// nil trusts none, so a client cannot choose the address its sign-in
	// throttling and logs see.
	TrustedProxies []string
}

// NewServer builds the router with every route of routes.go.
func NewServer(d Deps) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.ContextWithFallback = true
	r.HandleMethodNotAllowed = true
	r.RemoveExtraSlash = false
	// A trailing slash is an error in the API's JSON shape (with a hint),
	// not an HTML redirect a POST cannot follow.
	r.RedirectTrailingSlash = false
	r.UseRawPath = true
	r.UnescapePathValues = false
	if err := r.SetTrustedProxies(d.TrustedProxies); err != nil {
		// config validated the list; fail closed to the peer address.
		_ = r.SetTrustedProxies(nil)
	}
	r.Use(requestContext(), accessLog(d.Logger, d.Metrics), recovery(d.Logger))
	r.NoRoute(func(c *gin.Context) {
		if d.Console != nil && strings.HasPrefix(c.Request.URL.Path, "/console/") {
			d.Console.NotFound(c)
			return
		}
		path := c.Request.URL.Path
		if d.Console != nil && path == "/console" {
			c.Redirect(http.StatusFound, "/console/")
			return
		}
		msg := "no such route"
		if len(path) > 1 && strings.HasSuffix(path, "/") {
			msg = "no such route: routes have no trailing slash (try " + strings.TrimRight(path, "/") + ")"
		}
		answerError(c, d.Logger, errs.E(errs.NotFound, msg).WithCause(errNoRoute))
	})
	r.NoMethod(func(c *gin.Context) {
		e := errs.E(errs.MethodNotAllowed, "method not allowed on this route")
		if isCompat(c) {
			e = e.WithCause(&wrongMethod{want: compatMethod(c.Request.URL.Path)})
		}
		answerError(c, d.Logger, e)
	})
	if d.Platforms == nil {
		one := d.Platform
		if one.Proxy == nil {
			one.Proxy = d.Proxy.Service
		}
		if d.Proxy.Metrics != nil { // proxied calls are counted where the router counts them
			one.Metrics = d.Proxy.Metrics
		}
		d.Platforms = onePlatform{p: &one}
	}
	addRoutes(r, d)
	return r
}

// answerError answers err in the shape of the request's surface: WeChat's
// on the compatible one, the contract's elsewhere.
func answerError(c *gin.Context, log *slog.Logger, err error) {
	if isCompat(c) {
		writeWeChatError(c, log, err)
		return
	}
	writeError(c, log, err)
}

// isCompat reports whether the request is on the WeChat-compatible surface,
// whose every answer must be WeChat-shaped.
func isCompat(c *gin.Context) bool { return strings.HasPrefix(c.Request.URL.Path, "/wx/") }

// compatMethod is the method WeChat requires on a compatible path.
func compatMethod(path string) string {
	for _, api := range proxy.APIs {
		if strings.HasSuffix(path, api.Path) {
			return api.Method
		}
	}
	return http.MethodGet
}
