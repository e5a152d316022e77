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

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
)

// Webhook health thresholds: a pending delivery older than these is late
// (the dispatcher retries for 24 h with growing pauses, so age alone is
// not a failure, but a queue that does not drain is).
const (
	webhookLagWarn = 5 * time.Minute
	webhookLagBad  = time.Hour
	// webhookDeliveriesShown is how many of a tenant's newest deliveries
	// the webhooks page lists.
	webhookDeliveriesShown = 100
	webhooksPerPage        = 50
)

// webhookHealth is "ok", "warn" or "bad" for a queue whose oldest pending
// delivery was created at oldest (zero: nothing pending).
func webhookHealth(now, oldest time.Time) string {
	switch {
	case oldest.IsZero() || now.Sub(oldest) < webhookLagWarn:
		return "ok"
	case now.Sub(oldest) < webhookLagBad:
		return "warn"
	}
	return "bad"
}

type webhookRow struct {
	store.WebhookSummary
	TenantName string
	// State is "ok", "backlog" (deliveries pending for a while) or
	// "failing" (deliveries ended failed).
	State string
}

type webhooksData struct {
	Queue       store.WebhookQueue
	QueueHealth string
	Hooks       int
	Failed      int64
	Q           string
	Rows        []webhookRow
	Pager       pager

	// Tenant is the tenant whose deliveries are shown (empty: none).
	Tenant, TenantName, Status string
	Statuses                   []string
	Webhook                    *store.Webhook
	Deliveries                 []store.WebhookDelivery
}

// webhooksPage shows the delivery queue, every tenant's webhook with what
// is pending and failed (those needing attention first), and one tenant's
// newest deliveries with a redeliver button on the failed ones.
func (c *Console) webhooksPage(g *gin.Context, p *page) error {
	ctx := g.Request.Context()
	now := c.o.Now()
	d := webhooksData{Q: strings.TrimSpace(g.Query("q")), Statuses: deliveryStatuses}
	var err error
	if d.Queue, err = c.o.WebhookQueue.WebhookQueueStats(ctx); err != nil {
		return err
	}
	d.QueueHealth = webhookHealth(now, d.Queue.OldestPending)
	// Every platform's tenants' webhooks, the default platform's first.
	var list []store.WebhookSummary
	for _, pf := range c.o.Platforms.List() {
		some, err := c.o.WebhookQueue.WebhookSummaries(ctx, pf.AppID)
		if err != nil {
			return err
		}
		list = append(list, some...)
	}
	d.Hooks = len(list)
	lq := strings.ToLower(d.Q)
	rows := make([]webhookRow, 0, len(list))
	for _, w := range list {
		d.Failed += w.Failed
		name, _ := c.o.Directory.TenantName(w.TenantID)
		if lq != "" && !strings.Contains(strings.ToLower(name), lq) && !strings.Contains(strings.ToLower(w.URL), lq) && !strings.Contains(w.TenantID, lq) {
			continue
		}
		r := webhookRow{WebhookSummary: w, TenantName: name, State: "ok"}
		switch {
		case w.Failed > 0:
			r.State = "failing"
		case webhookHealth(now, w.OldestPending) != "ok":
			r.State = "backlog"
		}
		rows = append(rows, r)
	}
	rank := map[string]int{"failing": 0, "backlog": 1, "ok": 2}
	slices.SortFunc(rows, func(a, b webhookRow) int {
		return cmp.Or(cmp.Compare(rank[a.State], rank[b.State]), cmp.Compare(b.Pending, a.Pending), cmp.Compare(a.TenantName, b.TenantName), cmp.Compare(a.TenantID, b.TenantID))
	})
	n, _ := strconv.Atoi(g.Query("page"))
	pg, lo, hi := paginate(len(rows), n, webhooksPerPage, func(n int) string {
		return basePath + "/webhooks?" + url.Values{"q": {d.Q}, "page": {strconv.Itoa(n)}}.Encode()
	})
	d.Pager, d.Rows = pg, rows[lo:hi]

	if id := g.Query("tenant"); id != "" {
		name, ok := c.o.Directory.TenantName(id)
		if !ok {
			return errTenantNotFound
		}
		d.Tenant, d.TenantName = id, name
		if d.Status = g.Query("status"); !slices.Contains(deliveryStatuses, d.Status) {
			d.Status = ""
		}
		w, err := c.o.Webhooks.Get(ctx, id)
		switch {
		case err == nil:
			d.Webhook = &w
		case !errs.Is(err, errs.NotFound):
			return err
		}
		if d.Deliveries, err = c.o.Webhooks.Deliveries(ctx, id, d.Status, webhookDeliveriesShown); err != nil {
			return err
		}
	}
	p.Data = d
	return nil
}

// handleRedeliver queues a delivery's event again (the same event id), as
// the tenant's POST /v1/webhook/deliveries/{id}/redeliver would.
func (c *Console) handleRedeliver() gin.HandlerFunc {
	return func(g *gin.Context) {
		tenantID := g.Param("id")
		if _, err := c.o.Webhooks.Redeliver(g.Request.Context(), tenantID, g.Param("delivery")); err != nil {
			c.showError(g, "webhooks", c.webhooksPage, err)
			return
		}
		g.Redirect(http.StatusSeeOther, basePath+"/webhooks?"+url.Values{"tenant": {tenantID}, "flash": {"redelivered"}}.Encode()+"#deliveries")
	}
}
