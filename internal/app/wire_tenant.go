package app

import (
	"context"

	"github.com/wxgate/wxgate/internal/httpapi"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/tenant"
)

// The tenant services implement what the router consumes.
var (
	_ tenant.Store              = (*store.Store)(nil)
	_ httpapi.KeyAuthenticator  = (*tenant.Verifier)(nil)
	_ httpapi.BindingChecker    = (*tenant.Directory)(nil)
	_ httpapi.TenantRateLimiter = (*tenant.Limiter)(nil)
	_ httpapi.UsageRecorder     = (*tenant.Usage)(nil)
	_ httpapi.TenantRegistry    = (*tenant.Admin)(nil)
	_ httpapi.KeyManager        = (*tenant.Admin)(nil)
	_ httpapi.BindingManager    = (*tenant.Admin)(nil)
	_ httpapi.UsageReader       = (*tenant.Admin)(nil)
)

// wireTenant builds the tenant directory, key verifier, rate limiter and
// usage recorder, adds their workers to g and returns what the router needs.
func wireTenant(ctx context.Context, g *gateway) (httpapi.TenantDeps, error) {
	svc, err := tenant.New(ctx, tenant.Options{
		Store:          g.store,
		ComponentAppID: g.cfg.ComponentAppID,
		MasterKey:      g.cfg.SecretKey,
		DefaultRate:    g.cfg.TenantRateLimit,
		DefaultBurst:   g.cfg.TenantRateBurst,
		Now:            g.now,
		Logger:         g.log,
	})
	if err != nil {
		return httpapi.TenantDeps{}, err
	}
	g.workers = append(g.workers, svc.Workers()...)
	g.reloadTenants = svc.Directory.Reload
	return httpapi.TenantDeps{
		AdminToken:   g.cfg.AdminToken,
		Now:          g.now,
		Keys:         svc.Verifier,
		Bindings:     svc.Directory,
		Limiter:      svc.Limiter,
		Usage:        svc.Usage,
		Tenants:      svc.Admin,
		KeyAdmin:     svc.Admin,
		BindingAdmin: svc.Admin,
		UsageReport:  svc.Admin,
	}, nil
}
