package console

import (
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/store"
)

// Health thresholds of the overview: WeChat pushes a ticket every 10
// minutes and a ticket lasts 12 hours; a token due within the warning
// window is flagged.
const (
	ticketLate      = 30 * time.Minute
	ticketStale     = 12 * time.Hour
	tokenWarnWithin = 15 * time.Minute
)

// Chart windows of the overview (query ?window=).
var overviewWindows = map[string]time.Duration{"1h": time.Hour, "6h": 6 * time.Hour, "24h": 24 * time.Hour}

type overviewData struct {
	// Platforms is the health of each platform, the default first.
	Platforms []platformHealth

	// Accounts, ByStatus and Soonest are over every platform.
	Accounts int
	ByStatus []statusCount
	Soonest  *store.Authorizer
	// SoonestPQ keeps Soonest's platform in the link to it.
	SoonestPQ   string
	SoonestWarn bool
	Tenants     int
	// PendingAccounts wait for the operator to approve a second tenant.
	PendingAccounts int
	// Webhooks is the delivery queue; WebhooksHealth "ok", "warn" or "bad"
	// by the age of its oldest pending delivery.
	Webhooks       store.WebhookQueue
	WebhooksHealth string
	// LowQuota counts the account/API pairs with less than 10% of the daily
	// limit left, of KnownQuota pairs with a known limit.
	LowQuota, KnownQuota int

	Window       string
	Windows      []string
	Calls        int64
	Errors       int64
	Chart        chart
	ChartCaption string
}

// platformHealth is one platform's line of the overview.
type platformHealth struct {
	AppID    string
	Default  bool
	TicketAt *time.Time
	// TicketHealth and TokenHealth are "ok", "warn" or "bad".
	TicketHealth   string
	TokenExpiresAt *time.Time
	TokenHealth    string
	Accounts       int
	ByStatus       []statusCount
	Pending        int
	// soonest is the platform's authorized account whose token expires
	// first.
	soonest *store.Authorizer
}

type statusCount struct {
	Status string
	Count  int
}

// overviewPage gathers the deployment's health: each platform's ticket,
// component token and accounts by status (from memory), the soonest token
// expiry, tenants, pending approvals, webhooks and low quotas over every
// platform, and the deployment's calls and errors per minute summed over
// the platforms (from the store, as every replica's usage flusher wrote
// them).
func (c *Console) overviewPage(g *gin.Context, p *page) error {
	ctx := g.Request.Context()
	now := c.o.Now().UTC()
	d := overviewData{Windows: []string{"1h", "6h", "24h"}}

	total := map[string]int{}
	for _, pf := range c.o.Platforms.List() {
		h, err := c.platformHealth(g, pf, now)
		if err != nil {
			return err
		}
		d.Accounts += h.Accounts
		for _, sc := range h.ByStatus {
			total[sc.Status] += sc.Count
		}
		if s := h.soonest; s != nil && (d.Soonest == nil || s.TokenExpiresAt.Before(d.Soonest.TokenExpiresAt)) {
			d.Soonest, d.SoonestPQ = s, ""
			if q := platformQuery(pf); q != "" {
				d.SoonestPQ = "?" + q
			}
		}
		low, known := lowQuotaCount(pf)
		d.LowQuota, d.KnownQuota = d.LowQuota+low, d.KnownQuota+known
		d.PendingAccounts += h.Pending
		d.Platforms = append(d.Platforms, h)
	}
	d.ByStatus = countsByStatus(total)
	if d.Soonest != nil {
		d.SoonestWarn = d.Soonest.TokenExpiresAt.Sub(now) < tokenWarnWithin
	}

	tenants, err := c.o.Tenants.ListTenants(ctx)
	if err != nil {
		return err
	}
	d.Tenants = len(tenants)
	if d.Webhooks, err = c.o.WebhookQueue.WebhookQueueStats(ctx); err != nil {
		return err
	}
	d.WebhooksHealth = webhookHealth(now, d.Webhooks.OldestPending)

	d.Window = g.DefaultQuery("window", "6h")
	span, ok := overviewWindows[d.Window]
	if !ok {
		d.Window, span = "6h", 6*time.Hour
	}
	end := now.Truncate(time.Minute).Add(time.Minute)
	start := end.Add(-span)
	// Calls are counted per platform: the chart sums them.
	var rows []store.CallMinute
	for _, pf := range c.o.Platforms.List() {
		some, err := c.o.Calls.CallMinutes(ctx, pf.AppID, start, end)
		if err != nil {
			return err
		}
		rows = append(rows, some...)
	}
	n := int(span / time.Minute)
	ch := chart{XLabel: p.T("chart.time"), X: make([]int64, n), Step: 60, Series: []series{
		{Label: p.T("overview.calls"), Values: make([]int64, n), Color: palette[0]},
		{Label: p.T("overview.errors"), Values: make([]int64, n), Color: palette[1]},
	}}
	for i := range n {
		ch.X[i] = start.Add(time.Duration(i) * time.Minute).Unix()
	}
	for _, r := range rows {
		i := int(r.Minute.Sub(start) / time.Minute)
		if i < 0 || i >= n {
			continue
		}
		ch.Series[0].Values[i] += r.Calls
		ch.Series[1].Values[i] += r.Errors
		d.Calls += r.Calls
		d.Errors += r.Errors
	}
	d.Chart = ch
	p.Data = d
	return nil
}

// platformHealth is one platform's ticket, component token, accounts by
// status and accounts waiting for an approval.
func (c *Console) platformHealth(g *gin.Context, pf PlatformView, now time.Time) (platformHealth, error) {
	h := platformHealth{AppID: pf.AppID, Default: pf.Default}
	st, err := pf.Component.Status(g.Request.Context())
	if err != nil {
		return h, err
	}
	h.TicketAt, h.TokenExpiresAt = st.TicketReceivedAt, st.TokenExpiresAt
	h.TicketHealth = "bad"
	if t := st.TicketReceivedAt; t != nil {
		switch age := now.Sub(*t); {
		case age < ticketLate:
			h.TicketHealth = "ok"
		case age < ticketStale:
			h.TicketHealth = "warn"
		}
	}
	h.TokenHealth = "bad"
	if t := st.TokenExpiresAt; t != nil && t.After(now) {
		h.TokenHealth = "ok"
		if t.Sub(now) < tokenWarnWithin {
			h.TokenHealth = "warn"
		}
	}
	counts := map[string]int{}
	for _, a := range pf.Authorizers.List() {
		h.Accounts++
		counts[a.Status]++
		if a.Status == store.StatusAuthorized && !a.TokenExpiresAt.IsZero() &&
			(h.soonest == nil || a.TokenExpiresAt.Before(h.soonest.TokenExpiresAt)) {
			s := a
			h.soonest = &s
		}
	}
	h.ByStatus = countsByStatus(counts)
	pending, err := c.pendingTenants(g.Request.Context(), pf)
	if err != nil {
		return h, err
	}
	h.Pending = len(pending)
	return h, nil
}

// countsByStatus lists the counts of every account status, in order.
func countsByStatus(counts map[string]int) []statusCount {
	out := make([]statusCount, 0, len(accountStatuses))
	for _, s := range accountStatuses {
		out = append(out, statusCount{Status: s, Count: counts[s]})
	}
	return out
}
