package console

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
)

type accountRow struct {
	AppID, NickName, Status string
	Sets                    []permissionSet
	TokenExpiresAt          time.Time
	Tenants                 []tenantRef
	// Pending are the tenants whose authorization of the account waits
	// for the operator's approval.
	Pending []tenantRef
}

type tenantRef struct{ ID, Name string }

type accountsData struct {
	platformPick
	Q, Status, Tenant, TenantName, Sort string
	// OnlyPending lists only the accounts waiting for an approval;
	// PendingAccounts counts those.
	OnlyPending     bool
	PendingAccounts int
	Statuses        []string
	Rows            []accountRow
	Pager           pager
}

var accountStatuses = []string{store.StatusAuthorized, store.StatusNeedsReauthorization, store.StatusUnauthorized}

// accountsPage lists one platform's accounts (picked with ?platform=, the
// default platform otherwise; filtered by a tenant, the tenant's platform)
// from its authorizer manager's memory, filtered (text in the appid or nick
// name, status, tenant, waiting for an approval), sorted and paged on the
// server: thousands of accounts cost one small store query (the pending
// bindings) and render one page of rows.
func (c *Console) accountsPage(g *gin.Context, p *page) error {
	d := accountsData{Q: strings.TrimSpace(g.Query("q")), Status: g.Query("status"), Tenant: g.Query("tenant"),
		Sort: g.DefaultQuery("sort", "appid"), Statuses: accountStatuses, OnlyPending: g.Query("pending") == "1"}
	named := platformParam(g)
	if named == "" && d.Tenant != "" {
		named, _ = c.o.Directory.ComponentOf(d.Tenant)
	}
	pf, err := c.platformByAppID(named)
	if err != nil {
		return err
	}
	d.platformPick = c.pick(pf, basePath+"/accounts")
	pending, err := c.pendingTenants(g.Request.Context(), pf)
	if err != nil {
		return err
	}
	d.PendingAccounts = len(pending)
	if !slices.Contains(accountStatuses, d.Status) {
		d.Status = ""
	}
	var inTenant []string
	if d.Tenant != "" {
		name, ok := c.o.Directory.TenantName(d.Tenant)
		if !ok {
			d.Tenant = ""
		} else {
			d.TenantName, inTenant = name, c.o.Directory.BoundAppIDs(d.Tenant)
		}
	}
	lq := strings.ToLower(d.Q)
	all := pf.Authorizers.List()
	// Sort pointers: swapping 10,000 whole accounts costs more than the rest of the page.
	match := make([]*store.Authorizer, 0, len(all))
	for i := range all {
		a := &all[i]
		switch {
		case d.Status != "" && a.Status != d.Status:
		case d.Tenant != "" && !containsSorted(inTenant, a.AppID):
		case d.OnlyPending && pending[a.AppID] == nil:
		case lq != "" && !strings.Contains(strings.ToLower(a.AppID), lq) && !strings.Contains(strings.ToLower(a.NickName), lq):
		default:
			match = append(match, a)
		}
	}
	switch d.Sort {
	case "expiry":
		slices.SortFunc(match, func(a, b *store.Authorizer) int {
			return cmp.Or(a.TokenExpiresAt.Compare(b.TokenExpiresAt), cmp.Compare(a.AppID, b.AppID))
		})
	case "name":
		slices.SortFunc(match, func(a, b *store.Authorizer) int {
			return cmp.Or(cmp.Compare(a.NickName, b.NickName), cmp.Compare(a.AppID, b.AppID))
		})
	default:
		d.Sort = "appid"
		slices.SortFunc(match, func(a, b *store.Authorizer) int { return cmp.Compare(a.AppID, b.AppID) })
	}
	n, _ := strconv.Atoi(g.Query("page"))
	pg, lo, hi := paginate(len(match), n, accountsPerPage, func(n int) string {
		q := url.Values{"q": {d.Q}, "status": {d.Status}, "tenant": {d.Tenant}, "sort": {d.Sort}, "page": {strconv.Itoa(n)}}
		if d.OnlyPending {
			q.Set("pending", "1")
		}
		if !pf.Default {
			q.Set("platform", pf.AppID)
		}
		return basePath + "/accounts?" + q.Encode()
	})
	d.Pager = pg
	for _, a := range match[lo:hi] {
		r := c.accountRow(*a)
		r.Pending = pending[a.AppID]
		d.Rows = append(d.Rows, r)
	}
	p.Data = d
	return nil
}

// pendingTenants maps each of the platform's accounts waiting for an
// approval to the tenants whose authorization waits, named from the
// directory.
func (c *Console) pendingTenants(ctx context.Context, pf PlatformView) (map[string][]tenantRef, error) {
	list, err := c.o.Pending.PendingBindings(ctx, pf.AppID)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]tenantRef, len(list))
	for _, b := range list {
		name, _ := c.o.Directory.TenantName(b.TenantID)
		out[b.AppID] = append(out[b.AppID], tenantRef{ID: b.TenantID, Name: name})
	}
	return out, nil
}

func containsSorted(list []string, s string) bool {
	_, ok := slices.BinarySearch(list, s)
	return ok
}

func (c *Console) accountRow(a store.Authorizer) accountRow {
	r := accountRow{AppID: a.AppID, NickName: a.NickName, Status: a.Status, Sets: permissionSets(a.PermissionSets), TokenExpiresAt: a.TokenExpiresAt}
	for _, id := range c.o.Directory.BoundTenants(a.ComponentAppID, a.AppID) {
		name, _ := c.o.Directory.TenantName(id)
		r.Tenants = append(r.Tenants, tenantRef{ID: id, Name: name})
	}
	return r
}

type accountData struct {
	platformPick
	Account          accountRow
	AuthorizedAt     time.Time
	TokenRefreshedAt time.Time
	UpdatedAt        time.Time
	// Others are the tenants it can be bound to.
	Others []tenantRef
	// Caps are the operator's daily caps by bound tenant; Quotas the
	// account's quota of each API WeChat counts.
	Caps   map[string]int64
	Quotas []quotaRow
	// AlsoOn are the other platforms the account authorized (each has its
	// own page of the account).
	AlsoOn []platformRef
}

// accountPage shows one account of one platform with its tenants.
func (c *Console) accountPage(g *gin.Context, p *page) error {
	appid := g.Param("appid")
	if !config.ValidAppID(appid) {
		return errAccountNotFound
	}
	pf, a, err := c.accountPlatform(g, appid)
	if err != nil {
		return err
	}
	d := accountData{platformPick: c.pick(pf, basePath+"/accounts"), Account: c.accountRow(a),
		AuthorizedAt: a.AuthorizedAt, TokenRefreshedAt: a.TokenRefreshedAt, UpdatedAt: a.UpdatedAt}
	for _, o := range c.o.Platforms.List() {
		if _, ok := o.Authorizers.Get(appid); ok && o.AppID != pf.AppID {
			d.AlsoOn = append(d.AlsoOn, platformRef{AppID: o.AppID, Default: o.Default})
		}
	}
	pending, err := c.pendingTenants(g.Request.Context(), pf)
	if err != nil {
		return err
	}
	d.Account.Pending = pending[appid]
	d.Caps = map[string]int64{}
	for _, t := range d.Account.Tenants {
		if n := c.o.Directory.DailyLimit(t.ID, appid); n > 0 {
			d.Caps[t.ID] = n
		}
	}
	d.Quotas = accountQuotas(pf, appid)
	tenants, err := c.o.Tenants.ListTenants(g.Request.Context())
	if err != nil {
		return err
	}
	bound := c.o.Directory.BoundTenants(pf.AppID, appid)
	for _, t := range tenants {
		// Only the account's platform's tenants may be bound to it.
		if cmp.Or(t.ComponentAppID, c.o.Platforms.DefaultAppID()) == pf.AppID && !containsSorted(bound, t.ID) && !slices.ContainsFunc(d.Account.Pending, func(r tenantRef) bool { return r.ID == t.ID }) {
			d.Others = append(d.Others, tenantRef{ID: t.ID, Name: t.Name})
		}
	}
	p.Data = d
	return nil
}

// accountURL is an account's page on platform pf, with a flash message.
func accountURL(pf PlatformView, appid, flash string) string {
	u := basePath + "/accounts/" + url.PathEscape(appid) + "?"
	if q := platformQuery(pf); q != "" {
		u += q + "&"
	}
	return u + "flash=" + flash
}

// handleRefresh forces a token refresh of the platform's account.
func (c *Console) handleRefresh() gin.HandlerFunc {
	return func(g *gin.Context) {
		appid := g.Param("appid")
		pf, _, err := c.accountPlatform(g, appid)
		if err == nil {
			_, err = pf.Authorizers.ForceRefresh(g.Request.Context(), appid)
		}
		if err != nil {
			c.showError(g, "account", c.accountPage, err)
			return
		}
		g.Redirect(http.StatusSeeOther, accountURL(pf, appid, "token_refreshed"))
	}
}

// bindSide says which page a binding form was posted from: the tenant's
// (the appid is in the form) or the account's (the tenant is).
type bindSide int

const (
	bindFromTenant bindSide = iota
	bindFromAccount
)

// handleBind binds an account to a tenant.
func (c *Console) handleBind(side bindSide) gin.HandlerFunc {
	return func(g *gin.Context) {
		tenantID, appid := g.Param("id"), strings.TrimSpace(g.PostForm("appid"))
		if side == bindFromAccount {
			tenantID, appid = g.PostForm("tenant"), g.Param("appid")
		}
		var err error = errAccountNotFound
		if config.ValidAppID(appid) {
			err = c.o.Tenants.Bind(g.Request.Context(), tenantID, appid)
		}
		c.bindingDone(g, side, tenantID, appid, "bound", err)
	}
}

// handleApprove approves a binding that waits for the operator: the
// tenant's authorization of an account bound to another tenant.
func (c *Console) handleApprove(side bindSide) gin.HandlerFunc {
	return func(g *gin.Context) {
		tenantID, appid := g.Param("id"), g.Param("appid")
		c.bindingDone(g, side, tenantID, appid, "approved", c.o.Tenants.ApproveBinding(g.Request.Context(), tenantID, appid))
	}
}

// handleUnbind removes a binding.
func (c *Console) handleUnbind(side bindSide) gin.HandlerFunc {
	return func(g *gin.Context) {
		tenantID, appid := g.Param("id"), g.Param("appid")
		c.bindingDone(g, side, tenantID, appid, "unbound", c.o.Tenants.Unbind(g.Request.Context(), tenantID, appid))
	}
}

// handleRefuse removes a binding that waits for approval. A binding that
// is no longer pending (approved meanwhile, perhaps on another page) is
// left alone: refusing is not unbinding.
func (c *Console) handleRefuse(side bindSide) gin.HandlerFunc {
	return func(g *gin.Context) {
		ctx := g.Request.Context()
		tenantID, appid := g.Param("id"), g.Param("appid")
		pf, err := c.bindingPlatform(g, side, tenantID)
		var pending map[string][]tenantRef
		if err == nil {
			pending, err = c.pendingTenants(ctx, pf)
		}
		if err == nil && !slices.ContainsFunc(pending[appid], func(r tenantRef) bool { return r.ID == tenantID }) {
			err = errNoPendingBinding
		}
		if err == nil {
			err = c.o.Tenants.Unbind(ctx, tenantID, appid)
		}
		c.bindingDone(g, side, tenantID, appid, "refused", err)
	}
}

// bindingPlatform is the platform of a binding form: the tenant's own
// from the tenant's page, the one the account's page shows otherwise.
func (c *Console) bindingPlatform(g *gin.Context, side bindSide, tenantID string) (PlatformView, error) {
	if side == bindFromAccount {
		return c.pickedPlatform(g)
	}
	appid, ok := c.o.Directory.ComponentOf(tenantID)
	if !ok {
		return PlatformView{}, errs.E(errs.NotFound, "tenant not found")
	}
	return c.platformByAppID(appid)
}

// bindingDone answers a binding form: back to the page it came from, with
// flash, or that page again with err.
func (c *Console) bindingDone(g *gin.Context, side bindSide, tenantID, appid, flash string, err error) {
	switch {
	case err != nil && side == bindFromAccount:
		c.showError(g, "account", c.accountPage, err)
	case err != nil:
		c.showError(g, "tenant", c.tenantPage, err)
	case side == bindFromAccount:
		pf, _ := c.pickedPlatform(g)
		g.Redirect(http.StatusSeeOther, accountURL(pf, appid, flash))
	default:
		g.Redirect(http.StatusSeeOther, tenantURL(tenantID, flash))
	}
}
