package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/obs"
)

// handleHealthz answers 200 while the process runs.
func handleHealthz() gin.HandlerFunc {
	return func(c *gin.Context) { c.String(http.StatusOK, "ok") }
}

// handleReadyz answers 200 when the store answers within a second, else 503.
func handleReadyz(store Pinger, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			log.WarnContext(ctx, "not ready: store unreachable", "err", err.Error())
			c.String(http.StatusServiceUnavailable, "store unreachable")
			return
		}
		c.String(http.StatusOK, "ready")
	}
}

// handleMetrics serves the Prometheus text format.
func handleMetrics(m *obs.Metrics) gin.HandlerFunc {
	h := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
	return gin.WrapH(h)
}

// errNotWired answers the routes of a router built without the service they
// need (tests build routers with partial dependencies).
var errNotWired = errs.E(errs.Internal, "route not wired")
