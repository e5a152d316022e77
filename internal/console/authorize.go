package console

import (
	"encoding/base64"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
)

// qrSize is the side of the QR code image in pixels.
const qrSize = 280

type authorizeData struct {
	Tenants []store.Tenant
	// Several: the deployment has more than one platform (each tenant
	// option names its platform).
	Several  bool
	Tenant   string
	AuthType int
	BizAppID string
	// ReturnURL defaults to the console's own landing page.
	ReturnURL string
	Result    *authorizeResult
}

type authorizeResult struct {
	TenantName string
	URL        string
	MobileURL  string
	// QR is a PNG of MobileURL as a data: URL: scanned in WeChat, it opens
	// the mobile authorization page.
	QR        template.URL
	ExpiresAt time.Time
}

// doneURL is where the console's authorization links return.
func (c *Console) doneURL() string { return c.o.PublicURL + basePath + "/authorize/done" }

// authorizePage is the form that makes an authorization link.
func (c *Console) authorizePage(g *gin.Context, p *page) error {
	tenants, err := c.o.Tenants.ListTenants(g.Request.Context())
	if err != nil {
		return err
	}
	for i := range tenants {
		tenants[i].ComponentAppID = c.tenantPlatformRef(tenants[i].ComponentAppID).AppID
	}
	d := authorizeData{Tenants: tenants, Several: len(c.o.Platforms.List()) > 1, Tenant: g.Query("tenant"), AuthType: 1, ReturnURL: c.doneURL()}
	if g.Request.Method == http.MethodPost {
		d.Tenant, d.BizAppID, d.ReturnURL = g.PostForm("tenant"), g.PostForm("biz_appid"), g.PostForm("return_url")
		d.AuthType, _ = strconv.Atoi(g.PostForm("auth_type"))
	}
	p.Data = d
	return nil
}

// handleAuthorize starts an authorization for the tenant with its own
// platform's flow and shows its PC and mobile links with a QR code of the
// mobile one.
func (c *Console) handleAuthorize() gin.HandlerFunc {
	return func(g *gin.Context) {
		ctx := g.Request.Context()
		tenantID := g.PostForm("tenant")
		t, err := c.o.Tenants.GetTenant(ctx, tenantID)
		if err != nil {
			if errs.Is(err, errs.NotFound) {
				err = fieldError("tenant", "choose a tenant")
			}
			c.showError(g, "authorize", c.authorizePage, err)
			return
		}
		authType, _ := strconv.Atoi(g.PostForm("auth_type"))
		returnURL := strings.TrimSpace(g.PostForm("return_url"))
		if returnURL == "" {
			returnURL = c.doneURL()
		}
		pf, err := c.tenantPlatform(t)
		if err != nil {
			c.showError(g, "authorize", c.authorizePage, err)
			return
		}
		auth, err := pf.Flow.CreateAuthorization(ctx, t.ID, component.AuthorizationRequest{
			ReturnURL: returnURL, AuthType: authType, BizAppID: strings.TrimSpace(g.PostForm("biz_appid")),
		})
		if err != nil {
			c.showError(g, "authorize", c.authorizePage, err)
			return
		}
		png, err := qrcode.Encode(auth.MobileURL, qrcode.Medium, qrSize)
		if err != nil {
			c.showError(g, "authorize", c.authorizePage, errs.Wrap(errs.Internal, "internal error", err))
			return
		}
		p := c.newPage(g, "authorize.title", "authorize")
		if err := c.authorizePage(g, p); err != nil {
			c.problem(g, err)
			return
		}
		d := p.Data.(authorizeData)
		d.Result = &authorizeResult{TenantName: t.Name, URL: auth.URL, MobileURL: auth.MobileURL, ExpiresAt: auth.ExpiresAt,
			QR: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))}
		p.Data = d
		p.Flash = "flash.link_made"
		c.render(g, http.StatusCreated, "authorize", p)
	}
}
