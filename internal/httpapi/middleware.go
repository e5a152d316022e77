package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/obs"
)

// Keys of values handlers leave on the gin context for the access log.
const (
	ctxErrCode = "wxgate.err_code"
	ctxTenant  = "wxgate.tenant"
	ctxAppID   = "wxgate.appid"
	ctxAPI     = "wxgate.api"
	ctxWeChat  = "wxgate.wechat_errcode"
)

// requestIDHeader carries the request id in and out.
const requestIDHeader = "X-Request-Id"

// requestContext gives every request an id (kept from a well-formed
// incoming header, else fresh), puts it on the context for the logs and
// echoes it in the response.
func requestContext() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(requestIDHeader)
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Header(requestIDHeader, id)
		c.Request = c.Request.WithContext(obs.WithRequestID(c.Request.Context(), id))
		c.Next()
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// accessLog writes one line per request and records the HTTP metrics. It
// logs the route template, never the raw query (which may carry a key).
func accessLog(log *slog.Logger, m *obs.Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		elapsed := time.Since(start)
		m.HTTPRequests.WithLabelValues(route, methodLabel(c.Request.Method), strconv.Itoa(status)).Inc()
		m.HTTPDuration.WithLabelValues(route).Observe(elapsed.Seconds())
		attrs := []any{"method", c.Request.Method, "route", route, "status", status, "duration_ms", float64(elapsed.Microseconds()) / 1000}
		for _, k := range []string{ctxTenant, ctxAppID, ctxAPI, ctxErrCode} {
			if v := c.GetString(k); v != "" {
				attrs = append(attrs, k[len("wxgate."):], v)
			}
		}
		if v, ok := c.Get(ctxWeChat); ok {
			attrs = append(attrs, "wechat_errcode", v)
		}
		level := slog.LevelInfo
		if status >= http.StatusInternalServerError {
			level = slog.LevelWarn
		}
		if route == "/healthz" || route == "/readyz" || route == "/metrics" {
			level = slog.LevelDebug
		}
		log.Log(c.Request.Context(), level, "request", attrs...)
	}
}

// methodLabel bounds the method label: any client may send any token as
// its method, and each would otherwise become a new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// recovery turns a panic into a 500 internal error, logged with its value.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.ErrorContext(c.Request.Context(), "panic", "panic", p, "route", c.FullPath())
				if !c.Writer.Written() {
					writeError(c, log, errPanic)
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}

var errPanic = errPanicT{}

type errPanicT struct{}

func (errPanicT) Error() string { return "handler panicked" }
