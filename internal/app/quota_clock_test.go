package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// A replica built by the composition root, with its workers, against the
// simulator, both on one injected clock: the daily quota's reset at
// midnight Beijing time is shown without waiting for it.
func TestDailyQuotaResetsAtBeijingMidnight(t *testing.T) {
	t.Parallel()
	const (
		admin   = "clock-admin-token-0123456789abcdef0123"
		compApp = "wx1234567890abcdef"
		aesKey  = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
		account = "wx00000000000000c1"
	)
	clock := storetest.NewClock()
	// 15:50 UTC is 23:50 in Beijing: ten minutes before the quotas reset.
	clock.Advance(7*time.Hour + 50*time.Minute)

	// The gateway's address must exist before the simulator that pushes to it.
	var gwHandler atomic.Pointer[http.Handler]
	gwSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*gwHandler.Load()).ServeHTTP(w, r) }))
	t.Cleanup(gwSrv.Close)
	s, err := sim.New(sim.Options{
		ComponentAppID: compApp, ComponentSecret: "clock-secret", Token: "clock-token", EncodingAESKey: aesKey,
		EventURL: gwSrv.URL + "/wechat/events", TicketInterval: -1, TokenLifetime: 48 * time.Hour,
		PushRetryDelay: 10 * time.Millisecond, Now: clock.Now, Seed: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(s.Handler())
	t.Cleanup(simSrv.Close)

	env := map[string]string{
		"WXGATE_PUBLIC_URL": gwSrv.URL, "WXGATE_SECRET_KEY": base64.StdEncoding.EncodeToString(storetest.Key()),
		"WXGATE_ADMIN_TOKEN": admin, "WXGATE_COMPONENT_APPID": compApp, "WXGATE_COMPONENT_SECRET": "clock-secret",
		"WXGATE_COMPONENT_TOKEN": "clock-token", "WXGATE_COMPONENT_AES_KEY": aesKey, "WXGATE_WECHAT_API_URL": simSrv.URL,
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, "", config.NeedGateway)
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.Open(t, store.Postgres, clock.Now)
	gw, err := newGateway(context.Background(), cfg, st, slog.New(slog.DiscardHandler), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	gwHandler.Store(&gw.handler)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, w := range gw.workers {
		go func() { _ = w(ctx) }()
	}

	call := func(t *testing.T, method, path, bearer string, in, out any) (int, http.Header, []byte) {
		t.Helper()
		var body io.Reader
		if in != nil {
			b, _ := json.Marshal(in)
			body = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, gwSrv.URL+path, body)
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if out != nil {
			_ = json.Unmarshal(raw, out)
		}
		return resp.StatusCode, resp.Header, raw
	}
	type quotaEntry struct {
		API        string `json:"api"`
		DailyLimit int64  `json:"daily_limit"`
		Used       int64  `json:"used"`
		Remain     int64  `json:"remain"`
		ResetsAt   string `json:"resets_at"`
	}
	var key string
	fansQuota := func(t *testing.T) quotaEntry {
		t.Helper()
		var out struct {
			APIs []quotaEntry `json:"apis"`
		}
		if code, _, raw := call(t, http.MethodGet, "/v1/authorizers/"+account+"/quota", key, nil, &out); code != 200 || len(out.APIs) == 0 || out.APIs[0].API != "getFans" {
			t.Fatalf("GET quota: %d %s", code, raw)
		}
		return out.APIs[0]
	}
	fans := "/v1/authorizers/" + account + "/fans"

	journey.Step(t, "a platform with one account of quota 20", func(t *testing.T) {
		if _, err := s.PushTicket(ctx); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			var c struct {
				TokenExpiresAt *string `json:"token_expires_at"`
			}
			if code, _, _ := call(t, http.MethodGet, "/admin/component", admin, nil, &c); code == 200 && c.TokenExpiresAt != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no component token within 15 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := s.CreateAccount(sim.AccountSpec{AppID: account, Followers: 3, DailyQuota: 20}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authorize(ctx, account, ""); err != nil {
			t.Fatal(err)
		}
		var tn struct{ ID string }
		if code, _, raw := call(t, http.MethodPost, "/admin/tenants", admin, map[string]any{"name": "acme"}, &tn); code != 201 {
			t.Fatalf("tenant: %d %s", code, raw)
		}
		var k struct{ Key string }
		if code, _, raw := call(t, http.MethodPost, "/admin/tenants/"+tn.ID+"/keys", admin, map[string]any{}, &k); code != 201 {
			t.Fatalf("key: %d %s", code, raw)
		}
		key = k.Key
		if code, _, raw := call(t, http.MethodPut, "/admin/tenants/"+tn.ID+"/authorizers/"+account, admin, nil, nil); code != 204 {
			t.Fatalf("bind: %d %s", code, raw)
		}
	})

	journey.Step(t, "spent at 23:50 Beijing time: refused with Retry-After 600", func(t *testing.T) {
		if q := fansQuota(t); q.DailyLimit != 20 || q.Remain != 20 || q.ResetsAt != "2026-11-21T16:00:00Z" {
			t.Fatalf("quota: got %+v, want limit 20, remain 20, resets at 16:00 UTC", q)
		}
		for i := range 20 {
			if code, _, raw := call(t, http.MethodGet, fans, key, nil, nil); code != 200 {
				t.Fatalf("call %d: %d %s", i+1, code, raw)
			}
		}
		before := s.Counters().ByAccount[sim.EndpointUserGet][account]
		code, hdr, raw := call(t, http.MethodGet, fans, key, nil, nil)
		if code != 429 || hdr.Get("Retry-After") != "600" {
			t.Fatalf("21st call: %d Retry-After %q %s, want 429 with Retry-After 600", code, hdr.Get("Retry-After"), raw)
		}
		if after := s.Counters().ByAccount[sim.EndpointUserGet][account]; after != before {
			t.Fatalf("the refused call reached WeChat")
		}
	})

	journey.Step(t, "a second before midnight it is still refused", func(t *testing.T) {
		clock.Advance(10*time.Minute - time.Second)
		if code, hdr, raw := call(t, http.MethodGet, fans, key, nil, nil); code != 429 || hdr.Get("Retry-After") != "1" {
			t.Fatalf("23:59:59: %d Retry-After %q %s, want 429 with Retry-After 1", code, hdr.Get("Retry-After"), raw)
		}
	})

	journey.Step(t, "at midnight Beijing time the quota is whole again", func(t *testing.T) {
		clock.Advance(time.Second)
		if q := fansQuota(t); q.DailyLimit != 20 || q.Used != 0 || q.Remain != 20 {
			t.Fatalf("quota at midnight: got %+v, want limit 20, used 0, remain 20", q)
		}
		before := s.Counters().ByAccount[sim.EndpointUserGet][account]
		if code, _, raw := call(t, http.MethodGet, fans, key, nil, nil); code != 200 {
			t.Fatalf("00:00:00: %d %s, want 200", code, raw)
		}
		if after := s.Counters().ByAccount[sim.EndpointUserGet][account]; after != before+1 {
			t.Fatalf("WeChat calls: got %d, want 1", after-before)
		}
		if q := fansQuota(t); q.DailyLimit != 20 || q.Used != 1 || q.Remain != 19 || q.ResetsAt != "2026-11-22T16:00:00Z" {
			t.Fatalf("quota: got %+v, want limit 20, used 1, remain 19, resets at the next midnight", q)
		}
	})
}
