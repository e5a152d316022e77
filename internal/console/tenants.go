package console

import (
	"cmp"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/tenant"
)

// Rows per page of the long lists.
const (
	tenantsPerPage  = 50
	accountsPerPage = 50
	// tenantListCap bounds the accounts and keys listed on one tenant's
	// page; the accounts page filtered by tenant shows them all.
	tenantListCap = 100
)

type tenantRow struct {
	store.Tenant
	Accounts int
	// Platform is the platform the tenant belongs to.
	Platform platformRef
}

type tenantsData struct {
	Q     string
	Rows  []tenantRow
	Pager pager
	// Platforms are those a new tenant may belong to, the default first
	// (the form offers a choice when there are several); Platform is the
	// one chosen.
	Platforms []platformRef
	Platform  string
}

// Several reports whether the deployment has more than one platform.
func (d tenantsData) Several() bool { return len(d.Platforms) > 1 }

// tenantPlatformRef names the platform of a tenant ("" is the default).
func (c *Console) tenantPlatformRef(componentAppID string) platformRef {
	def := c.o.Platforms.DefaultAppID()
	appid := cmp.Or(componentAppID, def)
	return platformRef{AppID: appid, Default: appid == def}
}

// tenantsPage lists tenants, searched by name or id and paged on the server.
func (c *Console) tenantsPage(g *gin.Context, p *page) error {
	list, err := c.o.Tenants.ListTenants(g.Request.Context())
	if err != nil {
		return err
	}
	q := strings.TrimSpace(g.Query("q"))
	lq := strings.ToLower(q)
	var match []store.Tenant
	for _, t := range list {
		if lq == "" || strings.Contains(strings.ToLower(t.Name), lq) || strings.Contains(t.ID, lq) {
			match = append(match, t)
		}
	}
	n, _ := strconv.Atoi(g.Query("page"))
	pg, lo, hi := paginate(len(match), n, tenantsPerPage, func(n int) string {
		return basePath + "/tenants?" + url.Values{"q": {q}, "page": {strconv.Itoa(n)}}.Encode()
	})
	d := tenantsData{Q: q, Pager: pg, Platforms: c.platformRefs(), Platform: c.o.Platforms.DefaultAppID()}
	if named := g.PostForm("platform"); named != "" {
		d.Platform = named
	}
	for _, t := range match[lo:hi] {
		d.Rows = append(d.Rows, tenantRow{Tenant: t, Accounts: len(c.o.Directory.BoundAppIDs(t.ID)), Platform: c.tenantPlatformRef(t.ComponentAppID)})
	}
	p.Data = d
	return nil
}

type tenantData struct {
	platformPick
	Tenant       store.Tenant
	Keys         []store.Key
	KeysTotal    int
	Accounts     []accountRef
	AccountCount int
	// Pending are the accounts the tenant authorized that wait for the
	// operator's approval (bound to another tenant).
	Pending []accountRef
	// ReturnHosts is the return_url hosts field as the operator edits it.
	ReturnHosts string
	// Webhook is the tenant's webhook (nil: none, or webhooks not wired);
	// Deliveries its newest deliveries.
	Webhook    *store.Webhook
	Deliveries []store.WebhookDelivery
}

// deliveryStatuses are the statuses a webhook delivery shows with.
var deliveryStatuses = []string{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed}

// accountRef names an account (nick name from memory when known).
type accountRef struct {
	AppID, NickName, Status string
}

// tenantDeliveriesShown is how many of a webhook's newest deliveries the
// tenant's page lists.
const tenantDeliveriesShown = 20

// tenantPage shows one tenant: its settings, keys, accounts (of its own
// platform) and webhook.
func (c *Console) tenantPage(g *gin.Context, p *page) error {
	ctx := g.Request.Context()
	t, err := c.o.Tenants.GetTenant(ctx, g.Param("id"))
	if err != nil {
		return err
	}
	pf, err := c.tenantPlatform(t)
	if err != nil {
		// A platform registered on another replica a moment ago: the
		// tenant's page works without its accounts' names until this
		// replica runs it.
		pf = PlatformView{AppID: t.ComponentAppID}
	}
	keys, err := c.o.Tenants.ListKeys(ctx, t.ID)
	if err != nil {
		return err
	}
	d := tenantData{platformPick: c.pick(pf, basePath+"/accounts"), Tenant: t, KeysTotal: len(keys), Keys: keys[:min(len(keys), tenantListCap)]}
	appids := c.o.Directory.BoundAppIDs(t.ID)
	d.AccountCount = len(appids)
	for _, appid := range appids[:min(len(appids), tenantListCap)] {
		d.Accounts = append(d.Accounts, accountRefOf(pf, appid))
	}
	pending, err := c.o.Pending.PendingBindings(ctx, pf.AppID)
	if err != nil {
		return err
	}
	for _, b := range pending {
		if b.TenantID == t.ID {
			d.Pending = append(d.Pending, accountRefOf(pf, b.AppID))
		}
	}
	d.ReturnHosts = strings.Join(t.ReturnURLHosts, "\n")
	if c.o.Webhooks != nil {
		w, err := c.o.Webhooks.Get(ctx, t.ID)
		switch {
		case err == nil:
			d.Webhook = &w
			if d.Deliveries, err = c.o.Webhooks.Deliveries(ctx, t.ID, "", tenantDeliveriesShown); err != nil {
				return err
			}
		case !errs.Is(err, errs.NotFound):
			return err
		}
	}
	p.Data = d
	return nil
}

// accountRefOf names one of the platform's accounts.
func accountRefOf(pf PlatformView, appid string) accountRef {
	r := accountRef{AppID: appid}
	if pf.Authorizers == nil {
		return r
	}
	if a, ok := pf.Authorizers.Get(appid); ok {
		r.NickName, r.Status = a.NickName, a.Status
	}
	return r
}

// tenantURL is a tenant's page, with a flash message.
func tenantURL(id, flash string) string {
	return basePath + "/tenants/" + url.PathEscape(id) + "?flash=" + flash
}

// fieldError is invalid_argument for one form field, shaped like the
// admin API's validation errors.
func fieldError(field, problem string) error {
	return errs.E(errs.InvalidArgument, "request has invalid fields").
		WithDetails(map[string]any{"fields": map[string]string{field: problem}})
}

func (c *Console) handleCreateTenant() gin.HandlerFunc {
	return func(g *gin.Context) {
		name := strings.TrimSpace(g.PostForm("name"))
		if why := tenant.NameProblem(name, true); why != "" {
			c.showError(g, "tenants", c.tenantsPage, fieldError("name", why))
			return
		}
		pf, err := c.platformByAppID(g.PostForm("platform"))
		if err != nil {
			c.showError(g, "tenants", c.tenantsPage, fieldError("platform", "is not a platform of this deployment"))
			return
		}
		t, err := c.o.Tenants.CreateTenant(g.Request.Context(), pf.AppID, name)
		if err != nil {
			c.showError(g, "tenants", c.tenantsPage, err)
			return
		}
		g.Redirect(http.StatusSeeOther, tenantURL(t.ID, "tenant_created"))
	}
}

func (c *Console) handleRenameTenant() gin.HandlerFunc {
	return func(g *gin.Context) {
		name := strings.TrimSpace(g.PostForm("name"))
		if why := tenant.NameProblem(name, true); why != "" {
			c.showError(g, "tenant", c.tenantPage, fieldError("name", why))
			return
		}
		_, err := c.o.Tenants.UpdateTenant(g.Request.Context(), g.Param("id"), func(t *store.Tenant) error {
			t.Name = name
			return nil
		})
		if err != nil {
			c.showError(g, "tenant", c.tenantPage, err)
			return
		}
		g.Redirect(http.StatusSeeOther, tenantURL(g.Param("id"), "tenant_renamed"))
	}
}

// handleTenantLimits sets the tenant's rate-limit override; empty fields
// (or 0) return to the configured default.
func (c *Console) handleTenantLimits() gin.HandlerFunc {
	return func(g *gin.Context) {
		rateLimit, err := parseNumber(g.PostForm("rate_limit"), "rate_limit", tenant.MaxRateLimit)
		if err != nil {
			c.showError(g, "tenant", c.tenantPage, err)
			return
		}
		burst, err := parseNumber(g.PostForm("rate_burst"), "rate_burst", tenant.MaxRateBurst)
		if err == nil && burst != math.Trunc(burst) {
			err = fieldError("rate_burst", "must be a whole number")
		}
		if err != nil {
			c.showError(g, "tenant", c.tenantPage, err)
			return
		}
		_, err = c.o.Tenants.UpdateTenant(g.Request.Context(), g.Param("id"), func(t *store.Tenant) error {
			t.RateLimit, t.RateBurst = rateLimit, int(burst)
			return nil
		})
		if err != nil {
			c.showError(g, "tenant", c.tenantPage, err)
			return
		}
		g.Redirect(http.StatusSeeOther, tenantURL(g.Param("id"), "limits_saved"))
	}
}

// handleReturnHosts replaces the hosts the tenant's authorizations may
// return to (one per line, or separated by spaces or commas); an empty
// list lets them return anywhere.
func (c *Console) handleReturnHosts() gin.HandlerFunc {
	return func(g *gin.Context) {
		hosts, why := tenant.ReturnURLHostsProblem(strings.FieldsFunc(g.PostForm("return_url_hosts"), listSeparator))
		if why != "" {
			c.showError(g, "tenant", c.tenantPage, fieldError("return_url_hosts", why))
			return
		}
		_, err := c.o.Tenants.UpdateTenant(g.Request.Context(), g.Param("id"), func(t *store.Tenant) error {
			t.ReturnURLHosts = hosts
			return nil
		})
		if err != nil {
			c.showError(g, "tenant", c.tenantPage, err)
			return
		}
		g.Redirect(http.StatusSeeOther, tenantURL(g.Param("id"), "return_hosts_saved"))
	}
}

// listSeparator splits a list typed in a form: commas and white space.
func listSeparator(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }

// parseNumber reads an optional number in [0, limit]; empty is 0.
func parseNumber(raw, field string, limit float64) (float64, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > limit {
		return 0, fieldError(field, "must be a number between 0 (the default) and "+strconv.FormatFloat(limit, 'f', -1, 64))
	}
	return v, nil
}

func (c *Console) handleDeleteTenant() gin.HandlerFunc {
	return func(g *gin.Context) {
		if err := c.o.Tenants.DeleteTenant(g.Request.Context(), g.Param("id")); err != nil {
			c.showError(g, "tenant", c.tenantPage, err)
			return
		}
		g.Redirect(http.StatusSeeOther, basePath+"/tenants?flash=tenant_deleted")
	}
}

// keyData is the page that shows a new key, once.
type keyData struct {
	Tenant store.Tenant
	Key    store.Key
	Secret string
}

// handleIssueKey issues a key (optionally expiring, optionally restricted
// to some accounts) and shows it once; the page is never cached.
func (c *Console) handleIssueKey() gin.HandlerFunc {
	return func(g *gin.Context) {
		ctx := g.Request.Context()
		req := tenant.KeyRequest{Name: strings.TrimSpace(g.PostForm("name"))}
		if why := tenant.NameProblem(req.Name, false); why != "" {
			c.showError(g, "tenant", c.tenantPage, fieldError("name", why))
			return
		}
		if raw := strings.TrimSpace(g.PostForm("ttl_days")); raw != "" {
			days, err := strconv.Atoi(raw)
			if maxDays := int(tenant.MaxKeyTTL / (24 * time.Hour)); err != nil || days < 0 || days > maxDays {
				c.showError(g, "tenant", c.tenantPage, fieldError("ttl_days", "must be a whole number of days between 0 (no expiry) and "+strconv.Itoa(maxDays)))
				return
			}
			req.TTL = time.Duration(days) * 24 * time.Hour
		}
		for _, a := range strings.FieldsFunc(g.PostForm("appids"), listSeparator) {
			if !config.ValidAppID(a) {
				c.showError(g, "tenant", c.tenantPage, fieldError("appids", a+" is not a WeChat appid (wx followed by 16 letters or digits)"))
				return
			}
			req.AppIDs = append(req.AppIDs, a)
		}
		if len(req.AppIDs) > tenant.MaxKeyAppIDs {
			c.showError(g, "tenant", c.tenantPage, fieldError("appids", "must list at most 100 accounts"))
			return
		}
		k, raw, err := c.o.Tenants.IssueKey(ctx, g.Param("id"), req)
		if err != nil {
			c.showError(g, "tenant", c.tenantPage, err)
			return
		}
		t, err := c.o.Tenants.GetTenant(ctx, k.TenantID)
		if err != nil {
			c.problem(g, err)
			return
		}
		p := c.newPage(g, "key.title", "tenants")
		p.Data = keyData{Tenant: t, Key: k, Secret: raw.Reveal()}
		c.render(g, http.StatusCreated, "key", p)
	}
}

func (c *Console) handleRevokeKey() gin.HandlerFunc {
	return func(g *gin.Context) {
		if err := c.o.Tenants.RevokeKey(g.Request.Context(), g.Param("kid")); err != nil {
			c.showError(g, "tenant", c.tenantPage, err)
			return
		}
		g.Redirect(http.StatusSeeOther, tenantURL(g.Param("id"), "key_revoked"))
	}
}
