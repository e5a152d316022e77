package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/wechat"
)

// handleHealthz answers 200 while the process runs.
func handleHealthz() gin.HandlerFunc {
	return func(c *gin.Context) { c.String(http.StatusOK, "ok") }
}

// Reacher reports what the WeChat client last learned about reaching WeChat.
type Reacher interface {
	Reachability() wechat.Reachability
}

// handleReadyz answers 200 when the store answers within a second, else 503.
// WeChat's reachability is reported in the body but does not make the
// replica unready: every replica shares WeChat, and taking them all out of
// the balancer during a WeChat outage would also stop the admin API, the
// tenant API's answers from memory and WeChat's own event pushes.
// TicketWaiter says how long the replica has waited for its first
// component_verify_ticket (component.Credentials).
type TicketWaiter interface {
	TicketWait() (waited time.Duration, ok bool)
}

func handleReadyz(store Pinger, wx Reacher, tickets TicketWaiter, ps Platforms, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			log.WarnContext(ctx, "not ready: store unreachable", "err", err.Error())
			c.String(http.StatusServiceUnavailable, "store unreachable")
			return
		}
		c.String(http.StatusOK, "ready\nstore: ok\n"+wechatLine(wx)+ticketLine(tickets)+otherTicketLines(ps))
	}
}

// ticketLine says when no component_verify_ticket has arrived yet: without
// one the gateway never calls WeChat, so the wechat line alone would read
// "not called yet" forever.
func ticketLine(tickets TicketWaiter) string {
	if tickets == nil {
		return ""
	}
	waited, ok := tickets.TicketWait()
	if !ok {
		return "component: ticket received\n"
	}
	line := fmt.Sprintf("component: no component_verify_ticket yet (waited %s)\n", waited.Round(time.Second))
	if waited >= component.NoTicketWarning {
		line += "hint: WeChat pushes tickets to the authorization event URL (PUBLIC_URL/wechat/events) set on the Open Platform; outside production, start `wxgate sim` with --event-url pointing here\n"
	}
	return line
}

// otherTicketLines gives each registered platform's ticket line after the
// default's: "component wx…: …", with its own event URL in the hint.
func otherTicketLines(ps Platforms) string {
	if ps == nil {
		return ""
	}
	var b strings.Builder
	def := ps.DefaultPlatform().ComponentAppID
	for _, p := range ps.RunningPlatforms() {
		if p.ComponentAppID == def || p.Tickets == nil {
			continue
		}
		waited, ok := p.Tickets.TicketWait()
		if !ok {
			fmt.Fprintf(&b, "component %s: ticket received\n", p.ComponentAppID)
			continue
		}
		fmt.Fprintf(&b, "component %s: no component_verify_ticket yet (waited %s)\n", p.ComponentAppID, waited.Round(time.Second))
		if waited >= component.NoTicketWarning {
			fmt.Fprintf(&b, "hint: WeChat pushes this platform's tickets to PUBLIC_URL/wechat/components/%s/events, its authorization event URL on the Open Platform\n", p.ComponentAppID)
		}
	}
	return b.String()
}

// wechatLine is /readyz's plain statement of WeChat's reachability.
func wechatLine(wx Reacher) string {
	if wx == nil {
		return ""
	}
	r := wx.Reachability()
	switch {
	case !r.Known:
		return "wechat: not called yet\n"
	case r.Reachable:
		return "wechat: reachable\n"
	}
	line := fmt.Sprintf("wechat: UNREACHABLE since %s: %s\n", r.Since.UTC().Format(time.RFC3339), r.Cause)
	if r.Hint != "" {
		line += "hint: " + r.Hint + "\n"
	}
	return line
}

// handleMetrics serves the Prometheus text format.
func handleMetrics(m *obs.Metrics) gin.HandlerFunc {
	h := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
	return gin.WrapH(h)
}

// errNotWired answers the routes of a router built without the service they
// need (tests build routers with partial dependencies).
var errNotWired = errs.E(errs.Internal, "route not wired")
