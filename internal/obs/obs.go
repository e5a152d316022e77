// Package obs is wxgate's observability: JSON logs through log/slog that
// carry the request id of the context they are written with, and the
// Prometheus metrics every package records into (on a registry of its own,
// never the global one).
package obs

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	attrsKey
)

// request is what a request's context carries for the logs and metrics:
// its id, and the time it spent waiting for WeChat (so the time the
// gateway itself added can be told apart).
type request struct {
	id       string
	upstream atomic.Int64 // nanoseconds
}

// WithRequestID returns ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, &request{id: id})
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	if r, ok := ctx.Value(requestIDKey).(*request); ok {
		return r.id
	}
	return ""
}

// AddUpstream adds d to the time the request in ctx spent waiting for
// WeChat (one attempt of a call); a context without a request ignores it.
func AddUpstream(ctx context.Context, d time.Duration) {
	if r, ok := ctx.Value(requestIDKey).(*request); ok {
		r.upstream.Add(int64(d))
	}
}

// Upstream is the time the request in ctx spent waiting for WeChat so far.
func Upstream(ctx context.Context) time.Duration {
	if r, ok := ctx.Value(requestIDKey).(*request); ok {
		return time.Duration(r.upstream.Load())
	}
	return 0
}

// WithAttrs returns ctx carrying extra log attributes (tenant, appid, api)
// that every line logged with it will include.
func WithAttrs(ctx context.Context, attrs ...slog.Attr) context.Context {
	prev, _ := ctx.Value(attrsKey).([]slog.Attr)
	all := make([]slog.Attr, 0, len(prev)+len(attrs))
	all = append(append(all, prev...), attrs...)
	return context.WithValue(ctx, attrsKey, all)
}

// NewLogger returns a JSON logger writing to w at level. Lines logged with a
// context include its request id and attributes. When w buffers (a
// LineBuffer), every warning or error is flushed at once.
func NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	h := ctxHandler{Handler: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})}
	if f, ok := w.(interface{ Flush() error }); ok {
		h.flush = f.Flush
	}
	return slog.New(h)
}

type ctxHandler struct {
	slog.Handler
	flush func() error // nil: w does not buffer
}

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if attrs, ok := ctx.Value(attrsKey).([]slog.Attr); ok {
		r.AddAttrs(attrs...)
	}
	err := h.Handler.Handle(ctx, r)
	if h.flush != nil && r.Level >= slog.LevelWarn {
		_ = h.flush()
	}
	return err
}

func (h ctxHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return ctxHandler{h.Handler.WithAttrs(attrs), h.flush}
}

func (h ctxHandler) WithGroup(name string) slog.Handler {
	return ctxHandler{h.Handler.WithGroup(name), h.flush}
}
