package obs

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// countingWriter counts the writes that reach it.
type countingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

func (w *countingWriter) snapshot() (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String(), w.writes
}

func TestLineBuffer(t *testing.T) {
	t.Parallel()
	t.Run("informational lines are written in one batch", func(t *testing.T) {
		out := &countingWriter{}
		b := NewLineBuffer(out, time.Hour) // no periodic flush during the test
		log := NewLogger(b, slog.LevelInfo)
		for i := range 100 {
			log.InfoContext(WithRequestID(context.Background(), "req"), "request", "n", i)
		}
		if s, n := out.snapshot(); n != 0 || s != "" {
			t.Fatalf("%d writes before a flush, want 0", n)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		s, n := out.snapshot()
		if n != 1 || strings.Count(s, "\n") != 100 || !strings.Contains(s, `"request_id":"req"`) {
			t.Fatalf("after Close: %d writes, %d lines", n, strings.Count(s, "\n"))
		}
	})
	t.Run("a warning is written at once, with what came before it", func(t *testing.T) {
		out := &countingWriter{}
		b := NewLineBuffer(out, time.Hour)
		defer b.Close()
		log := NewLogger(b, slog.LevelInfo).With("replica", "r1") // With keeps the flush
		log.Info("first")
		log.Warn("trouble")
		s, n := out.snapshot()
		if n != 1 || !strings.Contains(s, `"msg":"first"`) || !strings.Contains(s, `"msg":"trouble"`) {
			t.Fatalf("after a warning: %d writes: %q", n, s)
		}
	})
	t.Run("the interval flushes", func(t *testing.T) {
		out := &countingWriter{}
		b := NewLineBuffer(out, 5*time.Millisecond)
		defer b.Close()
		NewLogger(b, slog.LevelInfo).Info("listening")
		deadline := time.Now().Add(5 * time.Second)
		for {
			if s, _ := out.snapshot(); strings.Contains(s, "listening") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the line was not flushed within 5 s")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	t.Run("a full buffer is written before the next line, a huge line at once", func(t *testing.T) {
		out := &countingWriter{}
		b := NewLineBuffer(out, time.Hour)
		defer b.Close()
		line := []byte(strings.Repeat("x", lineBufferSize/2) + "\n")
		for range 3 {
			if _, err := b.Write(line); err != nil {
				t.Fatal(err)
			}
		}
		// Each line is just over half the buffer: the second and the
		// third each find it too full and write out the one before.
		if _, n := out.snapshot(); n != 2 {
			t.Fatalf("%d writes after three lines of over half the buffer, want 2", n)
		}
		if _, err := b.Write(make([]byte, 2*lineBufferSize)); err != nil {
			t.Fatal(err)
		}
		if s, n := out.snapshot(); n != 4 || len(s) != 3*len(line)+2*lineBufferSize {
			t.Fatalf("%d writes, %d bytes after a huge line", n, len(s))
		}
	})
}

func TestMetricChildrenAreTheVectorsOwn(t *testing.T) {
	t.Parallel()
	m := NewMetrics()
	for range 3 {
		m.HTTPRequest("/v1/authorizers/:appid/fans", "GET", 200).Inc()
		m.ProxyCall("getFans", "rest", "ok", "t1").Inc()
		m.UpstreamCall("getFans", "0").Inc()
		m.HTTPLatency("/v1/authorizers/:appid/fans").Observe(0.001)
		m.UpstreamLatency("getFans").Observe(0.001)
	}
	for name, got := range map[string]float64{
		"http_requests":  testutil.ToFloat64(m.HTTPRequests.WithLabelValues("/v1/authorizers/:appid/fans", "GET", "200")),
		"proxy_calls":    testutil.ToFloat64(m.ProxyCalls.WithLabelValues("getFans", "rest", "ok", "t1")),
		"upstream_calls": testutil.ToFloat64(m.UpstreamCalls.WithLabelValues("getFans", "0")),
	} {
		if got != 3 {
			t.Errorf("%s = %v, want 3", name, got)
		}
	}
	if n := testutil.CollectAndCount(m.HTTPDuration); n != 1 {
		t.Errorf("%d duration series, want 1", n)
	}
}

// TestPlatformsRecordIntoTheirOwnSeries: two platforms' children are
// labelled with their appid and never add up, and a removed platform's
// series leave /metrics while the other's stay.
func TestPlatformsRecordIntoTheirOwnSeries(t *testing.T) {
	t.Parallel()
	root := NewMetrics()
	a, b := root.ForComponent("wxcA"), root.ForComponent("wxcB")
	a.TokenRefreshes.WithLabelValues("component", "ok").Inc()
	a.TicketAge.Set(5)
	b.TicketAge.Set(9)
	b.UpstreamCall("getFans", "0").Inc()
	b.UpstreamCall("getFans", "0").Inc()
	for name, c := range map[string]struct{ got, want float64 }{
		"A's refreshes":      {testutil.ToFloat64(root.vecs.tokenRefreshes.WithLabelValues("wxcA", "component", "ok")), 1},
		"B's refreshes":      {testutil.ToFloat64(root.vecs.tokenRefreshes.WithLabelValues("wxcB", "component", "ok")), 0},
		"A's ticket age":     {testutil.ToFloat64(root.vecs.ticketAge.WithLabelValues("wxcA")), 5},
		"B's ticket age":     {testutil.ToFloat64(root.vecs.ticketAge.WithLabelValues("wxcB")), 9},
		"B's upstream calls": {testutil.ToFloat64(root.vecs.upstreamCalls.WithLabelValues("wxcB", "getFans", "0")), 2},
		"A's upstream calls": {testutil.ToFloat64(root.vecs.upstreamCalls.WithLabelValues("wxcA", "getFans", "0")), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}
	root.ForgetComponent("wxcB")
	families, err := root.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "component" {
					seen[l.GetValue()] = true
				}
			}
		}
	}
	if !seen["wxcA"] || seen["wxcB"] || seen[""] {
		t.Errorf("component labels exported after forgetting B: %v, want wxcA only", seen)
	}
}
