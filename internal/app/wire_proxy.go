package app

import (
	"time"

	"github.com/wxgate/wxgate/internal/authorizer"
	"github.com/wxgate/wxgate/internal/httpapi"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/wechat"
)

// The proxy's dependencies are the platform's token manager and WeChat client.
var (
	_ proxy.Authorizers = (*authorizer.Manager)(nil)
	_ proxy.Upstream    = (*wechat.Client)(nil)
	_ httpapi.Proxy     = (*proxy.Service)(nil)
)

// wireProxy builds the proxy over the token manager and WeChat client that
// wirePlatform made, and the tenant services' binding check and usage.
func wireProxy(g *gateway, tenants httpapi.TenantDeps) httpapi.ProxyDeps {
	return httpapi.ProxyDeps{
		Service:             proxy.NewService(g.tokens, g.wechat, g.metrics, g.log, g.cfg.UpstreamTimeout),
		Bindings:            tenants.Bindings,
		Usage:               tenants.Usage,
		Metrics:             g.metrics,
		Log:                 g.log,
		ExportProgressEvery: 5 * time.Second,
	}
}
