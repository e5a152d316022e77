package console

import (
	"cmp"
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/store"
)

// Usage ranges (query ?range=), counted in whole hours.
var usageRanges = map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

type usageData struct {
	Tenants []store.Tenant
	Tenant  string
	Range   string
	Ranges  []string
	// Shown once a tenant is chosen.
	TenantName string
	Totals     []usageTotal
	Total      int64
	Chart      chart
	CSV        string
}

// usageTotal is one API's calls over the range, by outcome.
type usageTotal struct {
	API    string
	OK     int64
	Failed int64
}

// usageRange reads the tenant and range of a usage request: the hours in
// [from, to), to being the end of the current hour.
func (c *Console) usageRange(g *gin.Context) (tenantID, name string, from, to time.Time) {
	name = g.DefaultQuery("range", "24h")
	span, ok := usageRanges[name]
	if !ok {
		name, span = "24h", usageRanges["24h"]
	}
	to = c.o.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	return g.Query("tenant"), name, to.Add(-span), to
}

// usagePage charts a tenant's calls per API and hour, with totals.
func (c *Console) usagePage(g *gin.Context, p *page) error {
	ctx := g.Request.Context()
	tenants, err := c.o.Tenants.ListTenants(ctx)
	if err != nil {
		return err
	}
	tenantID, rng, from, to := c.usageRange(g)
	d := usageData{Tenants: tenants, Tenant: tenantID, Range: rng, Ranges: []string{"24h", "7d", "30d"}}
	p.Data = d
	if tenantID == "" {
		return nil
	}
	t, err := c.o.Tenants.GetTenant(ctx, tenantID)
	if err != nil {
		return err
	}
	rows, err := c.o.Tenants.Usage(ctx, tenantID, from, to)
	if err != nil {
		return err
	}
	d.TenantName = t.Name
	d.CSV = basePath + "/usage.csv?tenant=" + t.ID + "&range=" + rng
	n := int(to.Sub(from) / time.Hour)
	d.Chart = chart{XLabel: p.T("chart.time"), X: make([]int64, n), Step: 3600}
	for i := range n {
		d.Chart.X[i] = from.Add(time.Duration(i) * time.Hour).Unix()
	}
	byAPI := map[string]int{}
	totals := map[string]*usageTotal{}
	for _, r := range rows {
		i, ok := byAPI[r.API]
		if !ok {
			i = len(d.Chart.Series)
			byAPI[r.API] = i
			d.Chart.Series = append(d.Chart.Series, series{Label: r.API, Values: make([]int64, n), Color: palette[i%len(palette)]})
			totals[r.API] = &usageTotal{API: r.API}
		}
		if h := int(r.Hour.Sub(from) / time.Hour); h >= 0 && h < n {
			d.Chart.Series[i].Values[h] += r.Count
		}
		if r.Outcome == "ok" {
			totals[r.API].OK += r.Count
		} else {
			totals[r.API].Failed += r.Count
		}
		d.Total += r.Count
	}
	for _, tt := range totals {
		d.Totals = append(d.Totals, *tt)
	}
	slices.SortFunc(d.Totals, func(a, b usageTotal) int {
		return cmp.Or(cmp.Compare(b.OK+b.Failed, a.OK+a.Failed), cmp.Compare(a.API, b.API))
	})
	p.Data = d
	return nil
}

// handleUsageCSV downloads the tenant's hourly counts for the range:
// hour, appid, api, outcome, count.
func (c *Console) handleUsageCSV() gin.HandlerFunc {
	return func(g *gin.Context) {
		ctx := g.Request.Context()
		tenantID, rng, from, to := c.usageRange(g)
		t, err := c.o.Tenants.GetTenant(ctx, tenantID)
		if err != nil {
			c.problem(g, err)
			return
		}
		rows, err := c.o.Tenants.Usage(ctx, t.ID, from, to)
		if err != nil {
			c.problem(g, err)
			return
		}
		g.Header("Content-Type", "text/csv; charset=utf-8")
		g.Header("Content-Disposition", `attachment; filename="wxgate-usage-`+t.ID+"-"+rng+`.csv"`)
		g.Status(http.StatusOK)
		w := csv.NewWriter(g.Writer)
		_ = w.Write([]string{"hour", "appid", "api", "outcome", "count"})
		for _, r := range rows {
			_ = w.Write([]string{r.Hour.UTC().Format(time.RFC3339), r.AppID, r.API, r.Outcome, strconv.FormatInt(r.Count, 10)})
		}
		w.Flush()
	}
}
