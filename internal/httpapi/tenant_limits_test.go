package httpapi

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

func TestTenantRateLimit(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			// Default: 1 request per second, bursts of 2.
			f := newTenantFixture(t, dialect, func(o *tenantFixtureOptions) { o.rate, o.burst = 1, 2 })
			tA, tB := f.createTenant("acme"), f.createTenant("globex")
			f.authorize("wxaaaaaaaaaaaaaaa1", tA)
			_, keyA := f.issueKey(tA, nil)
			_, keyB := f.issueKey(tB, nil)

			journey.Step(t, "over the default limit", func(t *testing.T) {
				for i := range 2 {
					if w := f.tenantCall(http.MethodGet, "/v1/_probe/whoami", keyA); w.Code != http.StatusOK {
						t.Fatalf("request %d within the burst: got %d %s, want 200", i, w.Code, w.Body)
					}
				}
				before := f.probes.Load()
				w := f.tenantCall(http.MethodGet, "/v1/_probe/whoami", keyA)
				if w.Code != http.StatusTooManyRequests || errorCodeOf(t, w) != "rate_limited" || w.Header().Get("Retry-After") != "1" {
					t.Fatalf("over the limit: got %d %v %s, want 429 rate_limited with Retry-After 1", w.Code, w.Header(), w.Body)
				}
				// The compatible surface answers WeChat's 45011, with Retry-After too.
				w = f.do(http.MethodGet, "/wx/wxaaaaaaaaaaaaaaa1/_probe?access_token="+url.QueryEscape(keyA), nil)
				const want45011 = `{"errcode":45011,"errmsg":"api minute-quota reach limit, must slower, retry next minute"}`
				if w.Code != http.StatusOK || w.Body.String() != want45011 || w.Header().Get("Retry-After") == "" {
					t.Fatalf("compatible, over the limit: got %d %v %s, want 200 %s with Retry-After", w.Code, w.Header(), w.Body, want45011)
				}
				if got := f.probes.Load(); got != before {
					t.Fatalf("handler calls: got %d more, want none (a limited request reached the handler)", got-before)
				}
			})

			journey.Step(t, "another tenant has its own bucket", func(t *testing.T) {
				if w := f.tenantCall(http.MethodGet, "/v1/_probe/whoami", keyB); w.Code != http.StatusOK {
					t.Fatalf("tenant B while A is limited: got %d, want 200", w.Code)
				}
			})

			journey.Step(t, "the bucket refills with time", func(t *testing.T) {
				f.clock.Advance(time.Second) // the injected clock
				if w := f.tenantCall(http.MethodGet, "/v1/_probe/whoami", keyA); w.Code != http.StatusOK {
					t.Fatalf("after a second: got %d %s, want 200", w.Code, w.Body)
				}
			})

			journey.Step(t, "a per-tenant override", func(t *testing.T) {
				// B gets bursts of 5 at 0.1/s.
				if w := f.admin(http.MethodPatch, "/admin/tenants/"+tB, map[string]any{"rate_limit": 0.1, "rate_burst": 5}); w.Code != http.StatusOK {
					t.Fatalf("patch: got %d %s, want 200", w.Code, w.Body)
				}
				f.tenantCall(http.MethodGet, "/v1/_probe/whoami", keyB) // applies the override to B's bucket
				f.clock.Advance(time.Minute)                            // and refills it
				n := 0
				for f.tenantCall(http.MethodGet, "/v1/_probe/whoami", keyB).Code == http.StatusOK {
					n++
					if n > 10 {
						break
					}
				}
				if n != 5 {
					t.Fatalf("override burst: got %d requests through, want 5", n)
				}
				w := f.tenantCall(http.MethodGet, "/v1/_probe/whoami", keyB)
				if got := w.Header().Get("Retry-After"); got != "10" {
					t.Fatalf("Retry-After at 0.1/s: got %q, want \"10\"", got)
				}
			})
		})
	}
}

func TestUsageIsCountedFlushedAndReadByRange(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			f := newTenantFixture(t, dialect)
			tA, tB := f.createTenant("acme"), f.createTenant("globex")
			f.authorize("wxaaaaaaaaaaaaaaa1", tA)
			f.authorize("wxbbbbbbbbbbbbbbb1", tB)
			_, keyA := f.issueKey(tA, nil)
			_, keyB := f.issueKey(tB, nil)
			h0 := f.clock.Now().Truncate(time.Hour)

			for range 3 {
				f.tenantCall(http.MethodGet, "/v1/_probe/authorizers/wxaaaaaaaaaaaaaaa1", keyA)
			}
			f.tenantCall(http.MethodGet, "/v1/_probe/authorizers/wxbbbbbbbbbbbbbbb1", keyA) // foreign: counted without the appid
			f.do(http.MethodGet, "/wx/wxaaaaaaaaaaaaaaa1/_probe?access_token="+url.QueryEscape(keyA), nil)
			f.tenantCall(http.MethodGet, "/v1/_probe/authorizers/wxbbbbbbbbbbbbbbb1", keyB)
			f.clock.Advance(2 * time.Hour)
			f.tenantCall(http.MethodGet, "/v1/_probe/authorizers/wxaaaaaaaaaaaaaaa1", keyA)

			// The usage endpoint flushes this replica's counts before reading.
			w := f.admin(http.MethodGet, "/admin/tenants/"+tA+"/usage?from="+h0.Format(time.RFC3339), nil)
			u := decodeAs[usageResponse](t, w)
			if w.Code != http.StatusOK || u.Total != 6 || len(u.Usage) != 3 {
				t.Fatalf("usage: %d %s", w.Code, w.Body)
			}
			want := []usageRowJSON{
				{Hour: h0.Format(time.RFC3339), AppID: "", API: "probe", Outcome: "not_found", Count: 1},
				{Hour: h0.Format(time.RFC3339), AppID: "wxaaaaaaaaaaaaaaa1", API: "probe", Outcome: "ok", Count: 4},
				{Hour: h0.Add(2 * time.Hour).Format(time.RFC3339), AppID: "wxaaaaaaaaaaaaaaa1", API: "probe", Outcome: "ok", Count: 1},
			}
			for i := range want {
				if u.Usage[i] != want[i] {
					t.Fatalf("row %d = %+v, want %+v", i, u.Usage[i], want[i])
				}
			}
			// A range: only the first hour (from is rounded down to its hour).
			from, to := h0.Add(30*time.Minute).Format(time.RFC3339), h0.Add(time.Hour).Format(time.RFC3339)
			u = decodeAs[usageResponse](t, f.admin(http.MethodGet, "/admin/tenants/"+tA+"/usage?from="+from+"&to="+to, nil))
			if u.Total != 5 || u.From != h0.Format(time.RFC3339) || u.To != to {
				t.Fatalf("first hour: %+v", u)
			}
			// The default is the last 24 hours; B's calls are B's.
			u = decodeAs[usageResponse](t, f.admin(http.MethodGet, "/admin/tenants/"+tB+"/usage", nil))
			if u.Total != 1 || u.Usage[0].AppID != "wxbbbbbbbbbbbbbbb1" {
				t.Fatalf("tenant B: %+v", u)
			}
			// Read again: flushed counts are not counted twice.
			u = decodeAs[usageResponse](t, f.admin(http.MethodGet, "/admin/tenants/"+tA+"/usage?from="+h0.Format(time.RFC3339), nil))
			if u.Total != 6 {
				t.Fatalf("second read: %+v", u)
			}
			if strings.Contains(f.admin(http.MethodGet, "/admin/tenants/"+tA+"/usage", nil).Body.String(), keyA) {
				t.Fatal("a key in the usage report")
			}
		})
	}
}
