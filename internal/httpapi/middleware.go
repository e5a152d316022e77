package httpapi

import (
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
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
	// ctxPlatform holds the calling tenant's PlatformDeps.
	ctxPlatform = "wxgate.platform"
	ctxWeChat   = "wxgate.wechat_errcode"
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

// newRequestID returns 24 random hex digits. An id must be unique, not
// secret: the runtime's per-thread generator (ChaCha8, seeded from the
// system) serves it without a system call per request.
func newRequestID() string {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint32(b[8:], rand.Uint32())
	var out [24]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// accessLogKeys are the values handlers leave for the access log, logged
// under their names without the "wxgate." prefix.
var accessLogKeys = [...]string{ctxTenant, ctxAppID, ctxAPI, ctxErrCode}

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
		m.HTTPRequest(route, methodLabel(c.Request.Method), status).Inc()
		m.HTTPLatency(route).Observe(elapsed.Seconds())
		// Exports stream to the client as they walk, so their time is the
		// client's reading too: only single calls are measured.
		if up := obs.Upstream(c.Request.Context()); up > 0 && !strings.HasSuffix(route, "/export") {
			m.GatewayOverhead.Observe((elapsed - up).Seconds())
		}
		level := slog.LevelInfo
		if status >= http.StatusInternalServerError {
			level = slog.LevelWarn
		}
		if route == "/healthz" || route == "/readyz" || route == "/metrics" {
			level = slog.LevelDebug
		}
		ctx := c.Request.Context()
		if !log.Enabled(ctx, level) {
			return
		}
		attrs := make([]slog.Attr, 0, 4+len(accessLogKeys)+1)
		attrs = append(attrs, slog.String("method", c.Request.Method), slog.String("route", route), slog.Int("status", status),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000))
		for _, k := range accessLogKeys {
			if v := c.GetString(k); v != "" {
				attrs = append(attrs, slog.String(k[len("wxgate."):], v))
			}
		}
		if v, ok := c.Get(ctxWeChat); ok {
			attrs = append(attrs, slog.Any("wechat_errcode", v))
		}
		log.LogAttrs(ctx, level, "request", attrs...)
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
