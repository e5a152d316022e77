package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/tenant"
	"github.com/wxgate/wxgate/internal/wechat"
)

// BenchmarkProxyGetFans measures one proxied getFans call through the real
// router with every real part of a replica's hot path: request id, access
// log (JSON-formatted, written to io.Discard so no syscall is counted),
// metrics, tenant key, rate limit, binding check, the authorizer cache, the
// proxy service and the WeChat client, against the simulator on loopback.
//
// "upstream" is the WeChat client's call alone (the same request, the same
// simulator), so gateway minus upstream is what the gateway adds on top of
// the upstream hop. Both include the simulator's own work, which runs in
// this process.
//
//	go test -run '^$' -bench BenchmarkProxyGetFans -benchmem ./internal/httpapi/
func BenchmarkProxyGetFans(b *testing.B) {
	var dir atomic.Pointer[tenant.Directory]
	p := componenttest.New(b, componenttest.Options{ComponentAppID: tfComponent, Dialect: store.SQLite,
		OnBound: func(ctx context.Context, _, _ string) {
			if d := dir.Load(); d != nil {
				_ = d.Reload(ctx)
			}
		}})
	log := obs.NewLogger(io.Discard, slog.LevelInfo)
	f := newTenantFixtureOn(b, p.Store, p.Clock, func(o *tenantFixtureOptions) {
		o.rate, o.burst = 1e9, 1<<30
		o.wire = append(o.wire, func(f *tenantFixture) {
			f.deps.Logger = log
			f.deps.Platform = platformDepsOf(p)
			f.deps.Proxy = ProxyDeps{
				Service:  proxy.NewService(proxy.Options{Authorizers: p.Authorizers, Upstream: p.WeChat, Metrics: p.Metrics, Logger: log, Timeout: 10 * time.Second}),
				Bindings: f.svc.Directory, Usage: f.svc.Usage, Metrics: f.metrics, Log: log,
			}
		})
	})
	dir.Store(f.svc.Directory)
	p.Events.Set(f.router)
	p.PushTicket()
	p.NewAccount(appA1, 2)
	tn := f.createTenant("bench")
	_, key := f.issueKey(tn, nil)
	if _, err := p.Sim.Authorize(p.Ctx(), appA1, ""); err != nil {
		b.Fatal(err)
	}
	if w := f.admin(http.MethodPut, "/admin/tenants/"+tn+"/authorizers/"+appA1, nil); w.Code != http.StatusOK && w.Code != http.StatusNoContent {
		b.Fatalf("bind: %d %s", w.Code, w.Body)
	}
	a, ok := p.Authorizers.Get(appA1)
	if !ok {
		b.Fatal("the account is not in the authorizer cache")
	}

	b.Run("gateway", func(b *testing.B) {
		req := httptest.NewRequest(http.MethodGet, "/v1/authorizers/"+appA1+"/fans", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			w.code = 0
			f.router.ServeHTTP(w, req)
		}
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	})
	b.Run("upstream", func(b *testing.B) {
		api := proxy.APIs[0] // getFans
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			resp, err := p.WeChat.Call(ctx, wechat.Request{API: api.Name, Method: api.Method, Path: api.Path, AccessToken: a.AccessToken})
			if err != nil || resp.Errcode != 0 {
				b.Fatalf("%v %d", err, resp.Errcode)
			}
		}
	})
}
