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
	ComponentAppID string
	TicketAt       *time.Time
	// TicketHealth and TokenHealth are "ok", "warn" or "bad".
	TicketHealth   string
	TokenExpiresAt *time.Time
	TokenHealth    string

	Accounts    int
	ByStatus    []statusCount
	Soonest     *store.Authorizer
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

type statusCount struct {
	Status string
	Count  int
}

// overviewPage gathers the platform's health: the component's ticket and
// token, accounts by status and the soonest token expiry (from memory),
// tenants, and the deployment's calls and errors per minute (from the
// store, as every replica's usage flusher wrote them).
func (c *Console) overviewPage(g *gin.Context, p *page) error {
	ctx := g.Request.Context()
	now := c.o.Now().UTC()
	d := overviewData{ComponentAppID: c.o.ComponentAppID, Windows: []string{"1h", "6h", "24h"}}

	st, err := c.o.Component.Status(ctx)
	if err != nil {
		return err
	}
	d.TicketAt, d.TokenExpiresAt = st.TicketReceivedAt, st.TokenExpiresAt
	d.TicketHealth = "bad"
	if t := st.TicketReceivedAt; t != nil {
		switch age := now.Sub(*t); {
		case age < ticketLate:
			d.TicketHealth = "ok"
		case age < ticketStale:
			d.TicketHealth = "warn"
		}
	}
	d.TokenHealth = "bad"
	if t := st.TokenExpiresAt; t != nil && t.After(now) {
		d.TokenHealth = "ok"
		if t.Sub(now) < tokenWarnWithin {
			d.TokenHealth = "warn"
		}
	}

	counts := map[string]int{}
	for _, a := range c.o.Authorizers.List() {
		d.Accounts++
		counts[a.Status]++
		if a.Status == store.StatusAuthorized && !a.TokenExpiresAt.IsZero() &&
			(d.Soonest == nil || a.TokenExpiresAt.Before(d.Soonest.TokenExpiresAt)) {
			s := a
			d.Soonest = &s
		}
	}
	for _, s := range []string{store.StatusAuthorized, store.StatusNeedsReauthorization, store.StatusUnauthorized} {
		d.ByStatus = append(d.ByStatus, statusCount{Status: s, Count: counts[s]})
	}
	if d.Soonest != nil {
		d.SoonestWarn = d.Soonest.TokenExpiresAt.Sub(now) < tokenWarnWithin
	}

	tenants, err := c.o.Tenants.ListTenants(ctx)
	if err != nil {
		return err
	}
	d.Tenants = len(tenants)
	pending, err := c.pendingTenants(ctx)
	if err != nil {
		return err
	}
	d.PendingAccounts = len(pending)
	if d.Webhooks, err = c.o.WebhookQueue.WebhookQueueStats(ctx); err != nil {
		return err
	}
	d.WebhooksHealth = webhookHealth(now, d.Webhooks.OldestPending)
	d.LowQuota, d.KnownQuota = c.lowQuotaCount()

	d.Window = g.DefaultQuery("window", "6h")
	span, ok := overviewWindows[d.Window]
	if !ok {
		d.Window, span = "6h", 6*time.Hour
	}
	end := now.Truncate(time.Minute).Add(time.Minute)
	start := end.Add(-span)
	rows, err := c.o.Calls.CallMinutes(ctx, c.o.ComponentAppID, start, end)
	if err != nil {
		return err
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
