package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Bounds of a usage query.
const (
	defaultUsageRange = 24 * time.Hour
	maxUsageRange     = 366 * 24 * time.Hour
)

type usageRowJSON struct {
	Hour    string `json:"hour"`
	AppID   string `json:"appid"`
	API     string `json:"api"`
	Outcome string `json:"outcome"`
	Count   int64  `json:"count"`
}

type usageResponse struct {
	TenantID string         `json:"tenant_id"`
	From     string         `json:"from"`
	To       string         `json:"to"`
	Total    int64          `json:"total"`
	Usage    []usageRowJSON `json:"usage"`
}

// handleTenantUsage answers a tenant's call counts per hour, account, API
// and outcome for ?from=&to= (RFC 3339; at most 366 days apart). Counts
// are hourly: from is rounded down to its hour, to defaults to the end of
// the current hour and from to 24 hours before to; the answer says which
// range it covers. An appid of "" counts calls that named
// no account the tenant is bound to.
func handleTenantUsage(u UsageReader, now func() time.Time, log *slog.Logger) gin.HandlerFunc {
	if now == nil {
		now = time.Now
	}
	return func(c *gin.Context) {
		f := fieldErrors{}
		to, toSet := parseTimeParam(c, f, "to")
		from, fromSet := parseTimeParam(c, f, "from")
		if err := f.err(); err != nil {
			writeError(c, log, err)
			return
		}
		if !toSet {
			// The end of the current hour, so its calls are included.
			to = now().UTC().Truncate(time.Hour).Add(time.Hour)
		}
		if !fromSet {
			from = to.Add(-defaultUsageRange)
		}
		from = from.Truncate(time.Hour)
		switch {
		case !from.Before(to):
			f.add("from", "must be before to")
		case to.Sub(from) > maxUsageRange:
			f.add("from", "must be at most 366 days before to")
		}
		if err := f.err(); err != nil {
			writeError(c, log, err)
			return
		}
		tenantID := c.Param("id")
		rows, err := u.Usage(c.Request.Context(), tenantID, from, to)
		if err != nil {
			writeError(c, log, err)
			return
		}
		resp := usageResponse{TenantID: tenantID, From: adminTime(from), To: adminTime(to), Usage: make([]usageRowJSON, len(rows))}
		for i, r := range rows {
			resp.Usage[i] = usageRowJSON{Hour: adminTime(r.Hour), AppID: r.AppID, API: r.API, Outcome: r.Outcome, Count: r.Count}
			resp.Total += r.Count
		}
		c.PureJSON(http.StatusOK, resp)
	}
}

// parseTimeParam reads an optional RFC 3339 query parameter.
func parseTimeParam(c *gin.Context, f fieldErrors, name string) (time.Time, bool) {
	v, ok := c.GetQuery(name)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		f.add(name, "must be an RFC 3339 time such as 2026-11-21T08:00:00Z")
		return time.Time{}, false
	}
	return t.UTC(), true
}
