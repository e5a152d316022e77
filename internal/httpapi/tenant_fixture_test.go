package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	dto "github.com/prometheus/client_model/go"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/tenant"
)

// Fixed values of the tenant fixtures.
const (
	tfComponent  = "wx00000000000000c1"
	tfAdminToken = "admin-token-for-tests-0123456789abcdef"
)

// tenantFixture is one gateway replica's tenant side over a real store,
// served by the real router (NewServer) with real services. Probe routes
// stand in for the handlers behind the tenant middleware: they echo the
// principal and count how often they ran, so a test can prove a refused
// request never reached a handler.
type tenantFixture struct {
	t       testing.TB
	store   *store.Store
	clock   *storetest.Clock
	svc     *tenant.Service
	deps    Deps
	metrics *obs.Metrics
	router  *gin.Engine
	// probes counts calls that reached a probe handler.
	probes atomic.Int64
}

// tenantFixtureOptions tunes a fixture.
type tenantFixtureOptions struct {
	rate  float64
	burst int
	poll  time.Duration
	// platforms are the platforms tenants may be created on besides the
	// default one (nil: none).
	platforms tenant.Platforms
	// wire adds dependencies (platform, proxy) before the router is built.
	wire []func(f *tenantFixture)
}

// newTenantFixture opens a fresh database of dialect and wires a replica on it.
func newTenantFixture(t testing.TB, dialect store.Dialect, opts ...func(*tenantFixtureOptions)) *tenantFixture {
	t.Helper()
	clock := storetest.NewClock()
	return newTenantFixtureOn(t, storetest.Open(t, dialect, clock.Now), clock, opts...)
}

// newTenantFixtureOn wires a replica over an open store (a second replica
// shares the first one's database and clock).
func newTenantFixtureOn(t testing.TB, st *store.Store, clock *storetest.Clock, opts ...func(*tenantFixtureOptions)) *tenantFixture {
	t.Helper()
	o := tenantFixtureOptions{rate: 1000, burst: 1000}
	for _, fn := range opts {
		fn(&o)
	}
	log := slog.New(slog.DiscardHandler)
	svc, err := tenant.New(context.Background(), tenant.Options{
		Store: st, ComponentAppID: tfComponent, Platforms: o.platforms, MasterKey: storetest.Key(),
		DefaultRate: o.rate, DefaultBurst: o.burst, Now: clock.Now, Logger: log, Poll: o.poll,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &tenantFixture{t: t, store: st, clock: clock, svc: svc, metrics: obs.NewMetrics()}
	f.deps = Deps{
		Logger: log, Metrics: f.metrics, Store: st,
		Tenant: TenantDeps{
			AdminToken: secret.Value(tfAdminToken), Now: clock.Now,
			Keys: svc.Verifier, Bindings: svc.Directory, Limiter: svc.Limiter, Usage: svc.Usage,
			Tenants: svc.Admin, KeyAdmin: svc.Admin, BindingAdmin: svc.Admin, UsageReport: svc.Admin,
		},
	}
	for _, w := range o.wire {
		w(f)
	}
	f.router = NewServer(f.deps).(*gin.Engine)
	d := f.deps.Tenant
	// The /v1 and /wx probes get exactly the middleware routes.go gives the
	// tenant routes (and the proxy the compatible ones).
	f.router.GET("/v1/_probe/whoami", requireTenant(d.Keys, f.metrics, log), rateLimit(d.Limiter, log, writeError, nil), f.probeWhoami)
	f.router.GET("/v1/_probe/authorizers/:appid", requireTenant(d.Keys, f.metrics, log), rateLimit(d.Limiter, log, writeError, nil), f.probeAccount(false))
	f.router.GET("/wx/:appid/_probe", requireTenantCompat(d.Keys, f.metrics, log), rateLimit(d.Limiter, log, writeWeChatError, nil), f.probeAccount(true))
	return f
}

func (f *tenantFixture) probeWhoami(c *gin.Context) {
	f.probes.Add(1)
	p, ok := principalFrom(c)
	if !ok {
		writeError(c, f.deps.Logger, errTenantAuthNotWired)
		return
	}
	c.JSON(http.StatusOK, gin.H{"tenant_id": p.TenantID, "kid": p.KID, "appids": p.AppIDs})
}

// probeAccount is what a route naming an account does first: authorize
// the appid from memory, then (here) count the call as usage.
func (f *tenantFixture) probeAccount(compat bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		f.probes.Add(1)
		appid := c.Param("appid")
		err := authorizeAppID(c, f.deps.Tenant.Bindings, appid)
		if p, ok := principalFrom(c); ok {
			outcome := "ok"
			if err != nil {
				outcome = string(errs.CodeOf(err))
			}
			f.deps.Tenant.Usage.Record(p.TenantID, appid, "probe", outcome)
		}
		switch {
		case err != nil && compat:
			writeWeChatError(c, f.deps.Logger, err)
		case err != nil:
			writeError(c, f.deps.Logger, err)
		default:
			c.JSON(http.StatusOK, gin.H{"appid": appid})
		}
	}
}

// do sends a request through the router. header values of "" are skipped.
func (f *tenantFixture) do(method, path string, body any, headers ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			f.t.Fatal(err)
		}
		r = bytes.NewReader(buf)
	}
	req := httptest.NewRequest(method, path, r)
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	w := httptest.NewRecorder()
	f.router.ServeHTTP(w, req)
	return w
}

// admin sends an admin request with the right token.
func (f *tenantFixture) admin(method, path string, body any) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(method, path, body, "Authorization", "Bearer "+tfAdminToken)
}

// tenantCall sends a /v1 request with a tenant key.
func (f *tenantFixture) tenantCall(method, path, key string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(method, path, nil, "Authorization", "Bearer "+key)
}

// createTenant creates a tenant through the admin API and returns its id.
func (f *tenantFixture) createTenant(name string) string {
	f.t.Helper()
	w := f.admin(http.MethodPost, "/admin/tenants", map[string]any{"name": name})
	if w.Code != http.StatusCreated {
		f.t.Fatalf("create tenant %q: %d %s", name, w.Code, w.Body)
	}
	return decodeAs[tenantJSON](f.t, w).ID
}

// issueKey issues a key through the admin API and returns kid and key.
func (f *tenantFixture) issueKey(tenantID string, body map[string]any) (kid, key string) {
	f.t.Helper()
	w := f.admin(http.MethodPost, "/admin/tenants/"+tenantID+"/keys", body)
	if w.Code != http.StatusCreated {
		f.t.Fatalf("issue key: %d %s", w.Code, w.Body)
	}
	r := decodeAs[issueKeyResponse](f.t, w)
	return r.KID, r.Key
}

// authorize stores an authorized account and binds it to tenantID (none if "").
func (f *tenantFixture) authorize(appid, tenantID string) {
	f.t.Helper()
	_, err := f.store.SaveAuthorization(context.Background(), store.Authorizer{
		ComponentAppID: tfComponent, AppID: appid, Status: store.StatusAuthorized,
		AccessToken: "at-" + secret.Value(appid), RefreshToken: "rt-" + secret.Value(appid),
		TokenExpiresAt: f.clock.Now().Add(2 * time.Hour), PermissionSets: []int{1, 2},
	}, tenantID)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.svc.Directory.Reload(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

// authFailures reads the auth-failure counter for surface and reason.
func (f *tenantFixture) authFailures(surface, reason string) float64 {
	var m dto.Metric
	if err := f.metrics.AuthFailures.WithLabelValues(surface, reason).Write(&m); err != nil {
		f.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// runWorkers runs the service workers until the test ends.
func (f *tenantFixture) runWorkers() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ws := f.svc.Workers()
	var n atomic.Int64
	for _, w := range ws {
		go func() {
			_ = w(ctx)
			if n.Add(1) == int64(len(ws)) {
				close(done)
			}
		}()
	}
	f.t.Cleanup(func() { cancel(); <-done })
}

func decodeAs[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
	return v
}

// errorCodeOf returns the "code" of an error body, or "".
func errorCodeOf(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	var b struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &b)
	return b.Error.Code
}

// atomicCounter counts store queries (OnQuery callbacks run concurrently).
type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) inc()        { c.n.Add(1) }
func (c *atomicCounter) reset()      { c.n.Store(0) }
func (c *atomicCounter) load() int64 { return c.n.Load() }
