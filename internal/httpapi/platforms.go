package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/platform"
)

// Platforms finds the deployment's third-party platforms (docs/api.md, "Several platforms"):
// the default one and those registered through the admin API.
type Platforms interface {
	// Platform returns a platform's services; not_found when the
	// deployment has no such platform, store_unavailable when a platform
	// this replica does not know yet could not be looked up.
	Platform(ctx context.Context, componentAppID string) (PlatformDeps, error)
	// DefaultPlatform is WXGATE_COMPONENT_*'s platform.
	DefaultPlatform() PlatformDeps
	// RunningPlatforms are the platforms this replica serves, the default
	// first (/readyz reports each one's ticket).
	RunningPlatforms() []PlatformDeps
	// ListPlatforms, AddPlatform and RemovePlatform are the admin API's
	// (platform.Registry: invalid_argument, conflict, not_found).
	ListPlatforms(ctx context.Context) ([]platform.Info, error)
	AddPlatform(ctx context.Context, s platform.Settings) (platform.Info, error)
	UpdatePlatform(ctx context.Context, componentAppID string, s platform.Settings) (platform.Info, error)
	RemovePlatform(ctx context.Context, componentAppID string) error
}

// onePlatform serves a router built without Platforms: Deps.Platform and
// Deps.Proxy.Service are the only platform.
type onePlatform struct{ p PlatformDeps }

func (o onePlatform) Platform(_ context.Context, appid string) (PlatformDeps, error) {
	if appid == "" || o.p.ComponentAppID == "" || appid == o.p.ComponentAppID {
		return o.p, nil
	}
	return PlatformDeps{}, errs.E(errs.NotFound, "no such platform")
}
func (o onePlatform) DefaultPlatform() PlatformDeps    { return o.p }
func (o onePlatform) RunningPlatforms() []PlatformDeps { return []PlatformDeps{o.p} }
func (o onePlatform) ListPlatforms(context.Context) ([]platform.Info, error) {
	return []platform.Info{{AppID: o.p.ComponentAppID, Default: true}}, nil
}
func (o onePlatform) AddPlatform(context.Context, platform.Settings) (platform.Info, error) {
	return platform.Info{}, errs.E(errs.Internal, "this router serves one platform")
}
func (o onePlatform) UpdatePlatform(context.Context, string, platform.Settings) (platform.Info, error) {
	return platform.Info{}, errs.E(errs.Internal, "this router serves one platform")
}
func (o onePlatform) RemovePlatform(context.Context, string) error {
	return errs.E(errs.Internal, "this router serves one platform")
}

// pickPlatform decides which platform a request is for.
type pickPlatform func(c *gin.Context) (PlatformDeps, error)

// defaultPlatform picks the default platform (the short WeChat URLs).
func defaultPlatform(ps Platforms) pickPlatform {
	return func(*gin.Context) (PlatformDeps, error) { return ps.DefaultPlatform(), nil }
}

// pathPlatform picks the platform the URL names
// (/wechat/components/{component_appid}/…).
func pathPlatform(ps Platforms) pickPlatform {
	return func(c *gin.Context) (PlatformDeps, error) {
		return ps.Platform(c.Request.Context(), c.Param("component"))
	}
}

// queryPlatform picks the platform of the admin query's component_appid,
// the default one without it.
func queryPlatform(ps Platforms) pickPlatform {
	return func(c *gin.Context) (PlatformDeps, error) {
		appid, ok := c.GetQuery("component_appid")
		if !ok {
			return ps.DefaultPlatform(), nil
		}
		p, err := ps.Platform(c.Request.Context(), appid)
		if errs.Is(err, errs.NotFound) {
			return PlatformDeps{}, errs.E(errs.NotFound, "no platform has this component_appid").
				WithDetails(map[string]any{"component_appid": appid})
		}
		return p, err
	}
}

// tenantPlatform picks the platform of the calling tenant, set on the
// request by withTenantPlatform.
func tenantPlatform(ps Platforms) pickPlatform {
	return func(c *gin.Context) (PlatformDeps, error) {
		if d, ok := platformFrom(c); ok {
			return d, nil
		}
		return ps.DefaultPlatform(), nil
	}
}

// withTenantPlatform resolves the authenticated tenant's platform once per
// request: every /v1 and /wx route then works on that platform's accounts
// and tokens only. A platform removed under a tenant (which removal
// refuses) would answer not_found.
func withTenantPlatform(ps Platforms, log *slog.Logger, write func(*gin.Context, *slog.Logger, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, ok := principalFrom(c)
		if !ok {
			c.Next()
			return
		}
		d, err := ps.Platform(c.Request.Context(), p.ComponentAppID)
		if err != nil {
			write(c, log, err)
			c.Abort()
			return
		}
		c.Set(ctxPlatform, d)
		c.Next()
	}
}

// platformFrom returns the platform set on the request.
func platformFrom(c *gin.Context) (PlatformDeps, bool) {
	v, ok := c.Get(ctxPlatform)
	if !ok {
		return PlatformDeps{}, false
	}
	d, ok := v.(PlatformDeps)
	return d, ok
}

// usePlatform sets the platform pick chooses on the request, for the
// handlers that read it from there (the proxied ones).
func usePlatform(pick pickPlatform, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		d, ok := pickForAPI(c, pick, log)
		if !ok {
			c.Abort()
			return
		}
		c.Set(ctxPlatform, d)
		c.Next()
	}
}

// pickForWeChat resolves a WeChat-facing request's platform; WeChat gets a
// plain 404 for a platform the deployment does not have, 503 (try again)
// when it could not be looked up.
func pickForWeChat(c *gin.Context, pick pickPlatform) (PlatformDeps, bool) {
	d, err := pick(c)
	switch {
	case err == nil:
		return d, true
	case errs.Is(err, errs.NotFound):
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("unknown platform"))
	default:
		c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("try again"))
	}
	return PlatformDeps{}, false
}

// pickForAPI resolves an API request's platform, answering the error in
// the API's shape.
func pickForAPI(c *gin.Context, pick pickPlatform, log *slog.Logger) (PlatformDeps, bool) {
	d, err := pick(c)
	if err != nil {
		writeError(c, log, err)
		return PlatformDeps{}, false
	}
	return d, true
}
