package console

import "github.com/gin-gonic/gin"

// Register mounts every console route on g, the router's /console group.
// The sign-in pages, the static assets and the page an authorization
// returns to are public; everything else needs a session, and every
// state-changing request the session's CSRF token as well.
func (c *Console) Register(g *gin.RouterGroup) {
	g.Use(securityHeaders())

	g.GET("/static/*path", c.handleStatic())
	g.GET("/lang/:lang", c.handleLang())
	g.GET("/signin", c.handleSignInForm())
	g.POST("/signin", c.handleSignIn())
	g.GET("/signin/code", c.handleSignInCode())
	g.GET("/authorize/done", c.handleAuthorizeDone())

	s := g.Group("", c.requireSession(), c.requireCSRF())
	s.POST("/signout", c.handleSignOut())
	s.GET("/", c.show("overview", c.overviewPage))

	s.GET("/tenants", c.show("tenants", c.tenantsPage))
	s.POST("/tenants", c.handleCreateTenant())
	s.GET("/tenants/:id", c.show("tenant", c.tenantPage))
	s.POST("/tenants/:id/rename", c.handleRenameTenant())
	s.POST("/tenants/:id/limits", c.handleTenantLimits())
	s.POST("/tenants/:id/return-hosts", c.handleReturnHosts())
	s.POST("/tenants/:id/delete", c.handleDeleteTenant())
	s.POST("/tenants/:id/keys", c.handleIssueKey())
	s.POST("/tenants/:id/keys/:kid/revoke", c.handleRevokeKey())
	s.POST("/tenants/:id/bind", c.handleBind(bindFromTenant))
	s.POST("/tenants/:id/accounts/:appid/unbind", c.handleUnbind(bindFromTenant))
	s.POST("/tenants/:id/accounts/:appid/approve", c.handleApprove(bindFromTenant))
	s.POST("/tenants/:id/accounts/:appid/refuse", c.handleRefuse(bindFromTenant))

	s.GET("/accounts", c.show("accounts", c.accountsPage))
	s.GET("/accounts/:appid", c.show("account", c.accountPage))
	s.POST("/accounts/:appid/refresh", c.handleRefresh())
	s.POST("/accounts/:appid/bind", c.handleBind(bindFromAccount))
	s.POST("/accounts/:appid/tenants/:id/unbind", c.handleUnbind(bindFromAccount))
	s.POST("/accounts/:appid/tenants/:id/approve", c.handleApprove(bindFromAccount))
	s.POST("/accounts/:appid/tenants/:id/refuse", c.handleRefuse(bindFromAccount))

	s.GET("/authorize", c.show("authorize", c.authorizePage))
	s.POST("/authorize", c.handleAuthorize())

	s.GET("/usage", c.show("usage", c.usagePage))
	s.GET("/usage.csv", c.handleUsageCSV())

	s.GET("/quota", c.show("quota", c.quotaPage))
	s.POST("/quota/caps", c.handleSetCap(bindFromTenant))
	s.POST("/accounts/:appid/quota/clear", c.handleClearQuota())
	s.POST("/accounts/:appid/tenants/:id/cap", c.handleSetCap(bindFromAccount))

	s.GET("/webhooks", c.show("webhooks", c.webhooksPage))
	s.POST("/webhooks/:id/deliveries/:delivery/redeliver", c.handleRedeliver())
}

// NotFound answers an unknown /console path with the console's 404 page.
func (c *Console) NotFound(g *gin.Context) {
	setSecurityHeaders(g)
	c.problem(g, errPageNotFound)
}

// builder fills a page's Data; an error is shown instead of the page.
type builder func(g *gin.Context, p *page) error

// show serves a page built by build.
func (c *Console) show(name string, build builder) gin.HandlerFunc {
	return func(g *gin.Context) {
		p := c.newPage(g, name+".title", navOf(name))
		if err := build(g, p); err != nil {
			c.problem(g, err)
			return
		}
		c.render(g, 200, name, p)
	}
}

// showError serves the page a failed form came from, with what went wrong
// and the error's status.
func (c *Console) showError(g *gin.Context, name string, build builder, err error) {
	p := c.newPage(g, name+".title", navOf(name))
	p.Error = c.message(g, p, err)
	if berr := build(g, p); berr != nil {
		c.problem(g, berr)
		return
	}
	c.render(g, c.status(err), name, p)
}

// navOf is the navigation entry a page belongs to.
func navOf(page string) string {
	switch page {
	case "tenant", "key":
		return "tenants"
	case "account":
		return "accounts"
	}
	return page
}
