package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/store"
)

// discardWriter is a reusable ResponseWriter, so the benchmark measures the
// middleware and not the recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkAuthenticate measures authenticating a tenant key: the
// middleware alone on a bare engine (no access log, no request id), the
// /v1 chain (key + rate limit), the verifier without HTTP, a refused key,
// and the admin token check.
//
//	go test -run '^$' -bench BenchmarkAuthenticate -benchmem ./internal/httpapi/
func BenchmarkAuthenticate(b *testing.B) {
	f := newTenantFixture(b, store.SQLite, func(o *tenantFixtureOptions) { o.rate, o.burst = 1e9, 1<<30 })
	tn := f.createTenant("acme")
	_, key := f.issueKey(tn, map[string]any{"appids": []string{"wxaaaaaaaaaaaaaaa1"}})
	log := f.deps.Logger
	d := f.deps.Tenant
	ok := func(c *gin.Context) { c.Status(http.StatusNoContent) }

	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	engine.GET("/middleware", requireTenant(d.Keys, f.metrics, log), ok)
	engine.GET("/chain", requireTenant(d.Keys, f.metrics, log), rateLimit(d.Limiter, log, writeError, nil), ok)
	engine.GET("/admin", requireAdmin(d.AdminToken, f.metrics, log), ok)

	serve := func(b *testing.B, path, auth string, want int) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", auth)
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			engine.ServeHTTP(w, req)
		}
		if w.code != want {
			b.Fatalf("status %d, want %d", w.code, want)
		}
	}
	b.Run("middleware", func(b *testing.B) { serve(b, "/middleware", "Bearer "+key, http.StatusNoContent) })
	b.Run("middleware+ratelimit", func(b *testing.B) { serve(b, "/chain", "Bearer "+key, http.StatusNoContent) })
	b.Run("refused-bad-signature", func(b *testing.B) {
		serve(b, "/middleware", "Bearer "+key[:len(key)-4]+"AAAA", http.StatusUnauthorized)
	})
	b.Run("admin-token", func(b *testing.B) { serve(b, "/admin", "Bearer "+tfAdminToken, http.StatusNoContent) })
	b.Run("verifier", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.svc.Verifier.Authenticate(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verifier-parallel", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := f.svc.Verifier.Authenticate(ctx, key); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
