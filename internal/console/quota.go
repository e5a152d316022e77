package console

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/quota"
	"github.com/wxgate/wxgate/internal/wechat"
)

const (
	// lowQuotaShare: an account with less than this share of an API's
	// daily limit left is low (the overview counts them).
	lowQuotaShare = 0.10
	quotaPerPage  = 50
	// maxDailyCap is the largest cap on a binding, as the admin API's.
	maxDailyCap = 100_000_000
)

// quotaRow is one account's quota of one API.
type quotaRow struct {
	AppID, NickName string
	quota.Status
	// Left is the remaining share in percent, rounded down.
	Left int
	Low  bool
}

func newQuotaRow(appid, nick string, s quota.Status) quotaRow {
	r := quotaRow{AppID: appid, NickName: nick, Status: s, Left: 100}
	if s.DailyLimit > 0 {
		r.Left = int(s.Remain * 100 / s.DailyLimit)
		r.Low = float64(s.Remain) < lowQuotaShare*float64(s.DailyLimit)
	}
	return r
}

// capRow is the operator's cap on one binding and the tenant's busiest
// API on the account today.
type capRow struct {
	TenantID, TenantName string
	AppID, NickName      string
	Cap, Used            int64
}

type quotaData struct {
	platformPick
	// Accounts have a known limit; Low rows are below lowQuotaShare.
	Accounts, Low int
	LowOnly       bool
	Q             string
	Rows          []quotaRow
	Pager         pager
	Caps          []capRow
	// CapsTotal counts every cap; Caps is one page of them.
	CapsTotal int
	CapsPager pager
	ResetsAt  time.Time
	Tenants   []tenantRef
}

// quotaPage shows the daily quotas this replica knows (limit, used and
// remaining per account and API, the lowest share first), the operator's
// caps on bindings with a form to set, change or clear one, and when the
// quotas reset (Beijing midnight).
//
// It shows one platform at a time (picked with ?platform=, the default
// otherwise): its accounts' quotas and the caps of its tenants.
func (c *Console) quotaPage(g *gin.Context, p *page) error {
	ctx := g.Request.Context()
	now := c.o.Now()
	pf, err := c.pickedPlatform(g)
	if err != nil {
		return err
	}
	d := quotaData{platformPick: c.pick(pf, basePath+"/quota"), Q: strings.TrimSpace(g.Query("q")), LowOnly: g.Query("low") == "1", ResetsAt: quota.NextReset(now)}
	lq := strings.ToLower(d.Q)
	known := pf.Quotas.Known()
	rows := make([]quotaRow, 0, len(known))
	last := ""
	for _, k := range known {
		if k.AppID != last {
			d.Accounts, last = d.Accounts+1, k.AppID
		}
		a, _ := pf.Authorizers.Get(k.AppID)
		r := newQuotaRow(k.AppID, a.NickName, k.Status)
		if r.Low {
			d.Low++
		}
		switch {
		case d.LowOnly && !r.Low:
		case lq != "" && !strings.Contains(strings.ToLower(k.AppID), lq) && !strings.Contains(strings.ToLower(a.NickName), lq):
		default:
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b quotaRow) int {
		return cmp.Or(cmp.Compare(a.Left, b.Left), cmp.Compare(a.AppID, b.AppID), cmp.Compare(a.API, b.API))
	})
	n, _ := strconv.Atoi(g.Query("page"))
	pg, lo, hi := paginate(len(rows), n, quotaPerPage, func(n int) string {
		q := url.Values{"q": {d.Q}, "page": {strconv.Itoa(n)}}
		if d.LowOnly {
			q.Set("low", "1")
		}
		if !pf.Default {
			q.Set("platform", pf.AppID)
		}
		return basePath + "/quota?" + q.Encode()
	})
	d.Pager, d.Rows = pg, rows[lo:hi]

	tenants, err := c.o.Tenants.ListTenants(ctx)
	if err != nil {
		return err
	}
	for _, t := range tenants {
		if cmp.Or(t.ComponentAppID, c.o.Platforms.DefaultAppID()) != pf.AppID {
			continue
		}
		d.Tenants = append(d.Tenants, tenantRef{ID: t.ID, Name: t.Name})
		for _, appid := range c.o.Directory.BoundAppIDs(t.ID) {
			limit := c.o.Directory.DailyLimit(t.ID, appid)
			if limit <= 0 {
				continue
			}
			r := capRow{TenantID: t.ID, TenantName: t.Name, AppID: appid, Cap: limit}
			if a, ok := pf.Authorizers.Get(appid); ok {
				r.NickName = a.NickName
			}
			for _, api := range proxy.APIs {
				if api.DailyQuota {
					r.Used = max(r.Used, pf.Quotas.TenantCalls(t.ID, appid, api.Name))
				}
			}
			d.Caps = append(d.Caps, r)
		}
	}
	d.CapsTotal = len(d.Caps)
	cn, _ := strconv.Atoi(g.Query("cpage"))
	cpg, clo, chi := paginate(len(d.Caps), cn, quotaPerPage, func(n int) string {
		q := url.Values{"q": {d.Q}, "low": {g.Query("low")}, "page": {strconv.Itoa(pg.Page)}, "cpage": {strconv.Itoa(n)}}
		if !pf.Default {
			q.Set("platform", pf.AppID)
		}
		return basePath + "/quota?" + q.Encode() + "#caps"
	})
	d.CapsPager, d.Caps = cpg, d.Caps[clo:chi]
	p.Data = d
	return nil
}

// lowQuotaCount counts the platform's account/API pairs below the low
// share, for the overview.
func lowQuotaCount(pf PlatformView) (low, known int) {
	for _, k := range pf.Quotas.Known() {
		known++
		if newQuotaRow(k.AppID, "", k.Status).Low {
			low++
		}
	}
	return low, known
}

// accountQuotas is one account's quota of every API WeChat counts, from
// this replica's memory (DailyLimit 0: not learned yet).
func accountQuotas(pf PlatformView, appid string) []quotaRow {
	var out []quotaRow
	for _, api := range proxy.APIs {
		if !api.DailyQuota {
			continue
		}
		s, _ := pf.Quotas.Status(appid, api.Name, api.Path)
		out = append(out, newQuotaRow(appid, "", s))
	}
	return out
}

// handleClearQuota calls clear_quota for the account, with the token of
// the platform its page shows. WeChat allows ten a month: the refusal says
// when the account may clear again.
func (c *Console) handleClearQuota() gin.HandlerFunc {
	return func(g *gin.Context) {
		appid := g.Param("appid")
		var err error = errAccountNotFound
		var pf PlatformView
		if config.ValidAppID(appid) {
			if pf, _, err = c.accountPlatform(g, appid); err == nil {
				_, err = pf.QuotaClearer.ClearQuota(g.Request.Context(), appid)
			}
		}
		if e := errs.As(err); e != nil && e.Code == errs.RateLimited && e.WeChatErrcode == wechat.ErrAPIForbidden {
			p := c.newPage(g, "account.title", "accounts")
			p.Error = p.T("quota.clear_month_used", p.When(c.o.Now().Add(e.RetryAfter)))
			if berr := c.accountPage(g, p); berr != nil {
				c.problem(g, berr)
				return
			}
			c.render(g, c.status(err), "account", p)
			return
		}
		if err != nil {
			c.showError(g, "account", c.accountPage, err)
			return
		}
		g.Redirect(http.StatusSeeOther, accountURL(pf, appid, "quota_cleared")+"#quota")
	}
}

// handleSetCap sets, changes or (empty or 0) clears a tenant's daily cap
// on a bound account, from the quota page (tenant and appid in the form)
// or the account page (in the path).
func (c *Console) handleSetCap(side bindSide) gin.HandlerFunc {
	return func(g *gin.Context) {
		tenantID, appid := strings.TrimSpace(g.PostForm("tenant")), strings.TrimSpace(g.PostForm("appid"))
		name, build := "quota", builder(c.quotaPage)
		if side == bindFromAccount {
			tenantID, appid, name, build = g.Param("id"), g.Param("appid"), "account", c.accountPage
		}
		var limit int64
		var err error
		if raw := strings.TrimSpace(g.PostForm("daily_limit")); raw != "" {
			limit, err = strconv.ParseInt(raw, 10, 64)
			if err != nil || limit < 0 || limit > maxDailyCap {
				err = fieldError("daily_limit", "must be a whole number between 0 (no cap) and "+strconv.Itoa(maxDailyCap))
			}
		}
		if err == nil && !config.ValidAppID(appid) {
			err = fieldError("appid", "is not a WeChat appid (wx followed by 16 letters or digits)")
		}
		if err == nil {
			_, err = c.o.Tenants.SetDailyLimit(g.Request.Context(), tenantID, appid, limit)
		}
		if err != nil {
			c.showError(g, name, build, err)
			return
		}
		flash := "cap_saved"
		if limit == 0 {
			flash = "cap_cleared"
		}
		pf, _ := c.pickedPlatform(g)
		if side == bindFromAccount {
			g.Redirect(http.StatusSeeOther, accountURL(pf, appid, flash)+"#tenants")
			return
		}
		u := basePath + "/quota?"
		if q := platformQuery(pf); q != "" {
			u += q + "&"
		}
		g.Redirect(http.StatusSeeOther, u+"flash="+flash+"#caps")
	}
}
