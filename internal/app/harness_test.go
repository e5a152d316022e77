package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/app"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// logSink collects a process's JSON log lines and reports the address of
// its "listening" line.
type logSink struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	addrs chan string
}

func newLogSink() *logSink { return &logSink{addrs: make(chan string, 4)} }

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for _, line := range bytes.Split(p, []byte("\n")) {
		var m struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &m) == nil && (m.Msg == "listening" || m.Msg == "simulator listening") && m.Addr != "" {
			l.addrs <- m.Addr
		}
	}
	return len(p), nil
}

// String returns everything logged so far.
func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// instance is one `wxgate` command running in-process through app.Run.
type instance struct {
	Addr   string
	Logs   *logSink
	Stdout *logSink
	cancel context.CancelFunc
	done   chan struct{} // closed when run returned
	err    error         // run's result, set before done closes
}

// Stop sends the equivalent of SIGTERM and returns run's error.
func (i *instance) Stop(t testing.TB) error {
	t.Helper()
	i.cancel()
	select {
	case <-i.done:
		return i.err
	case <-time.After(30 * time.Second):
		t.Fatalf("instance did not stop within 30 s; logs:\n%s", i.Logs)
		return nil
	}
}

// start runs `wxgate args...` with env and waits for its listening line.
func start(t testing.TB, env map[string]string, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	i := &instance{Logs: newLogSink(), Stdout: newLogSink(), cancel: cancel, done: make(chan struct{})}
	getenv := func(k string) string { return env[k] }
	go func() {
		i.err = app.Run(ctx, args, getenv, app.IO{Stdout: i.Stdout, Stderr: i.Logs})
		close(i.done)
	}()
	select {
	case i.Addr = <-i.Logs.addrs:
	case <-i.done:
		cancel()
		t.Fatalf("wxgate %s exited before listening: %v\nlogs:\n%s", strings.Join(args, " "), i.err, i.Logs)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("wxgate %s did not listen within 60 s; logs:\n%s", strings.Join(args, " "), i.Logs)
	}
	t.Cleanup(func() { _ = i.Stop(t) })
	return i
}

// gatewayEnv is a complete, valid configuration for `serve` on databaseURL.
func gatewayEnv(databaseURL, wechatURL string) map[string]string {
	return map[string]string{
		"WXGATE_LISTEN":       "127.0.0.1:0",
		"WXGATE_DATABASE_URL": databaseURL,
		// The whole suite shares one server's max_connections with other
		// packages running at the same time: keep each replica's pool small.
		"WXGATE_DATABASE_MAX_CONNS": "6",
		"WXGATE_SECRET_KEY":         base64.StdEncoding.EncodeToString(storetest.Key()),
		"WXGATE_ADMIN_TOKEN":        testAdminToken,
		"WXGATE_COMPONENT_APPID":    testComponentAppID,
		"WXGATE_COMPONENT_SECRET":   "test-component-secret",
		"WXGATE_COMPONENT_TOKEN":    "test-component-token",
		"WXGATE_COMPONENT_AES_KEY":  testAESKey,
		"WXGATE_WECHAT_API_URL":     wechatURL,
		"WXGATE_WECHAT_MP_URL":      wechatURL,
		"WXGATE_WECHAT_OPEN_URL":    wechatURL,
		"WXGATE_LOG_LEVEL":          "debug",
		"WXGATE_SHUTDOWN_TIMEOUT":   "5s",
	}
}

const (
	testAdminToken     = "test-admin-token-0123456789abcdef0123"
	testComponentAppID = "wx1234567890abcdef"
	testAESKey         = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)
