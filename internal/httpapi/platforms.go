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
	Platform(ctx context.Context, componentAppID string) (*PlatformDeps, error)
	// DefaultPlatform is WXGATE_COMPONENT_*'s platform.
	DefaultPlatform() *PlatformDeps
	// RunningPlatforms are the platforms this replica serves, the default
	// first (/readyz reports each one's ticket).
	RunningPlatforms() []*PlatformDeps
	// ListPlatforms, AddPlatform and RemovePlatform are the admin API's
	// (platform.Registry: invalid_argument, conflict, not_found).
	ListPlatforms(ctx context.Context) ([]platform.Info, error)
	AddPlatform(ctx context.Context, s platform.Settings) (platform.Info, error)
	UpdatePlatform(ctx context.Context, componentAppID string, s platform.Settings) (platform.Info, error)
	RemovePlatform(ctx context.Context, componentAppID string) error
}

// onePlatform serves a router built without Platforms: Deps.Platform and
// Deps.Proxy.Service are the only platform.
type onePlatform struct{ p *PlatformDeps }

func (o onePlatform) Platform(_ context.Context, appid string) (*PlatformDeps, error) {
	if appid == "" || o.p.ComponentAppID == "" || appid == o.p.ComponentAppID {
		return o.p, nil
	}
	return nil, errs.E(errs.NotFound, "no such platform")
}
func (o onePlatform) DefaultPlatform() *PlatformDeps    { return o.p }
func (o onePlatform) RunningPlatforms() []*PlatformDeps { return []*PlatformDeps{o.p} }
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
type pickPlatform func(c *gin.Context) (*PlatformDeps, error)

// defaultPlatform picks the default platform (the short WeChat URLs).
func defaultPlatform(ps Platforms) pickPlatform {
	return func(*gin.Context) (*PlatformDeps, error) { return ps.DefaultPlatform(), nil }
}

// pathPlatform picks the platform the URL names
// (/wechat/components/{component_appid}/…).
func pathPlatform(ps Platforms) pickPlatform {
	return func(c *gin.Context) (*PlatformDeps, error) {
		return ps.Platform(c.Request.Context(), c.Param("component"))
	}
}

// queryPlatform picks the platform of the admin query's component_appid,
// the default one without it.
func queryPlatform(ps Platforms) pickPlatform {
	return func(c *gin.Context) (*PlatformDeps, error) {
		appid, ok := c.GetQuery("component_appid")
		if !ok {
			return ps.DefaultPlatform(), nil
		}
		p, err := ps.Platform(c.Request.Context(), appid)
		if errs.Is(err, errs.NotFound) {
			return nil, errs.E(errs.NotFound, "no platform has this component_appid").
				WithDetails(map[string]any{"component_appid": appid})
		}
		return p, err
	}
}

// principalPlatform picks the platform of the authenticated tenant ("":
// the default one). Every /v1 and /wx route then works on that platform's
// accounts and tokens only; a platform removed under a tenant (which
// removal refuses) would answer not_found.
func principalPlatform(ps Platforms) pickPlatform {
	return func(c *gin.Context) (*PlatformDeps, error) {
		p, _ := principalFrom(c)
		return ps.Platform(c.Request.Context(), p.ComponentAppID)
	}
}

// requestPlatform picks the platform usePlatform set on the request, the
// default one on a route without it.
func requestPlatform(ps Platforms) pickPlatform {
	return func(c *gin.Context) (*PlatformDeps, error) {
		if d := platformFrom(c); d != nil {
			return d, nil
		}
		return ps.DefaultPlatform(), nil
	}
}

// usePlatform resolves the platform pick chooses once per request and sets
// it there, for the handlers and middleware after it (requestPlatform, the
// proxied routes); write answers a failure in the group's shape.
func usePlatform(pick pickPlatform, log *slog.Logger, write func(*gin.Context, *slog.Logger, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		d, err := pick(c)
		if err != nil {
			write(c, log, err)
			c.Abort()
			return
		}
		c.Set(ctxPlatform, d)
		c.Next()
	}
}

// platformFrom returns the platform set on the request, nil without one.
func platformFrom(c *gin.Context) *PlatformDeps {
	v, _ := c.Get(ctxPlatform)
	d, _ := v.(*PlatformDeps)
	return d
}

// The services a handler needs of its platform (platformFor's has).
func hasFlow(d *PlatformDeps) bool        { return d.Flow != nil }
func hasDirectory(d *PlatformDeps) bool   { return d.Directory != nil }
func hasAuthorizers(d *PlatformDeps) bool { return d.Authorizers != nil }
func hasComponent(d *PlatformDeps) bool   { return d.Component != nil }
func hasEvents(d *PlatformDeps) bool      { return d.Events != nil }
func hasMessages(d *PlatformDeps) bool    { return d.Messages != nil }

// platformFor resolves an API request's platform and checks it has the
// service the handler uses; otherwise it answers: the error in the API's
// shape, or internal for a router built without that service.
func platformFor(c *gin.Context, pick pickPlatform, log *slog.Logger, has func(*PlatformDeps) bool) (*PlatformDeps, bool) {
	d, err := pick(c)
	switch {
	case err != nil:
		writeError(c, log, err)
	case !has(d):
		notWired(log)(c)
	default:
		return d, true
	}
	return nil, false
}

// platformForWeChat is platformFor for the WeChat-facing routes: WeChat
// gets a plain 404 for a platform the deployment does not have, 503 (try
// again) when it could not be looked up.
func platformForWeChat(c *gin.Context, pick pickPlatform, log *slog.Logger, has func(*PlatformDeps) bool) (*PlatformDeps, bool) {
	d, err := pick(c)
	switch {
	case errs.Is(err, errs.NotFound):
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("unknown platform"))
	case err != nil:
		c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("try again"))
	case !has(d):
		notWired(log)(c)
	default:
		return d, true
	}
	return nil, false
}
