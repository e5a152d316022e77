package httpapi

import (
	"errors"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/tenant"
)

const ctxPrincipal = "wxgate.principal"

// setPrincipal records the authenticated tenant key on the request.
func setPrincipal(c *gin.Context, p tenant.Principal) {
	c.Set(ctxPrincipal, p)
	c.Set(ctxTenant, p.TenantID)
}

// principalFrom returns the authenticated tenant key. Handlers behind
// requireTenant always have one; a missing principal means a wiring bug and
// every tenant-scoped call must then fail closed.
func principalFrom(c *gin.Context) (tenant.Principal, bool) {
	v, ok := c.Get(ctxPrincipal)
	if !ok {
		return tenant.Principal{}, false
	}
	p, ok := v.(tenant.Principal)
	return p, ok && p.TenantID != ""
}

// mustPrincipal returns the authenticated tenant key, or an internal error
// when there is none: every tenant-scoped handler fails closed on it.
func mustPrincipal(c *gin.Context) (tenant.Principal, error) {
	p, ok := principalFrom(c)
	if !ok {
		return p, errs.Wrap(errs.Internal, "internal error", errors.New("httpapi: tenant route without a principal"))
	}
	return p, nil
}
