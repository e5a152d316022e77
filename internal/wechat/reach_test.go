package wechat_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/wechat"
)

// TestReachabilityIsReportedWithAHint follows one client from "never
// called" through "refused" to "answering", and checks the default host's
// resolution failure hints at the simulator.
func TestReachabilityIsReportedWithAHint(t *testing.T) {
	f := newFixture(t, nil)
	if r := f.client.Reachability(); r.Known {
		t.Fatalf("before any call: %+v, want unknown", r)
	}

	t.Run("nothing listens at the configured URL", func(t *testing.T) {
		c := newClient(t, "http://127.0.0.1:1", nil)
		_, _ = c.GetComponentToken(shortCtx(t), secret.Value("ticket"))
		r := c.Reachability()
		if !r.Known || r.Reachable || !strings.Contains(r.Cause, "refused") || !strings.Contains(r.Hint, "WXGATE_WECHAT_API_URL") {
			t.Fatalf("got %+v, want unreachable, the refusal, a hint naming WXGATE_WECHAT_API_URL", r)
		}
		if strings.Contains(r.Cause, "component_appid") || strings.Contains(r.Cause, "ticket") {
			t.Fatalf("cause %q carries the request", r.Cause)
		}
	})

	t.Run("WeChat's host cannot be resolved", func(t *testing.T) {
		// The machine's resolver answering "no such host", as it does offline.
		noDNS := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return nil, &net.DNSError{Err: "no such host", Name: strings.Split(addr, ":")[0], IsNotFound: true}
		}}}
		c := newClient(t, "https://"+wechat.DefaultAPIHost, noDNS)
		_, _ = c.GetComponentToken(shortCtx(t), secret.Value("ticket"))
		r := c.Reachability()
		if r.Reachable || !strings.Contains(r.Cause, "no such host") || !strings.Contains(r.Hint, "wxgate sim") {
			t.Fatalf("got %+v, want unreachable with a hint at `wxgate sim`", r)
		}
	})

	t.Run("an answer, even an errcode, is reachable", func(t *testing.T) {
		_, err := f.client.GetComponentToken(shortCtx(t), secret.Value("not-the-ticket"))
		if err == nil {
			t.Fatal("a wrong ticket was accepted")
		}
		if r := f.client.Reachability(); !r.Known || !r.Reachable || r.Cause != "" {
			t.Fatalf("got %+v, want reachable", r)
		}
	})
}

func newClient(t *testing.T, base string, hc *http.Client) *wechat.Client {
	t.Helper()
	c, err := wechat.New(wechat.Options{BaseURL: base, ComponentAppID: compAppID, ComponentSecret: secret.Value(compSecret),
		HTTPClient: hc, MaxAttempts: 1, AttemptTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func shortCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	t.Cleanup(cancel)
	return c
}
