package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// Console scale: every page through the real router of a replica built by
// the composition root, over PostgreSQL holding 10,000 accounts bound to
// 1,000 tenants, a day of usage, six hours of per-minute counts, a webhook
// per tenant, a daily cap on a thousand bindings and accounts waiting for
// approval.
//
//	go test -run '^$' -bench BenchmarkConsolePages -benchtime 50x ./internal/app/
//
// docs/console.md ("Scale") records the figures; each page must render in
// well under 100 ms.
const (
	benchAccounts = 10_000
	benchTenants  = 1_000
)

func BenchmarkConsolePages(b *testing.B) {
	ctx := context.Background()
	clock := storetest.NewClock()
	st := storetest.Open(b, store.Postgres, clock.Now)
	const component = "wx1234567890abcdef"

	start := time.Now()
	tenants := make([]store.Tenant, benchTenants)
	for i := range tenants {
		t, err := st.CreateTenant(ctx, component, fmt.Sprintf("tenant-%04d", i))
		if err != nil {
			b.Fatal(err)
		}
		tenants[i] = t
	}
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < benchAccounts; i += 8 {
				_, err := st.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: component, AppID: fmt.Sprintf("wx%016d", i),
					AccessToken: secret.Value(fmt.Sprintf("access-%d", i)), RefreshToken: secret.Value(fmt.Sprintf("refresh-%d", i)),
					TokenExpiresAt: clock.Now().Add(time.Duration(30+i%90) * time.Minute), TokenRefreshedAt: clock.Now(),
					PermissionSets: []int{1, 2, 7, 11}[:1+i%4], NickName: fmt.Sprintf("Shop %d", i)}, tenants[i%benchTenants].ID)
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	t0 := tenants[7]
	var usage []store.UsageRow
	for h := range 24 {
		for _, api := range []string{"getFans", "getTagFans", "getTags"} {
			usage = append(usage, store.UsageRow{TenantID: t0.ID, AppID: "wx0000000000000007", API: api, Outcome: "ok",
				Hour: clock.Now().Add(-time.Duration(h) * time.Hour), Count: int64(100 + h)})
		}
	}
	if err := st.AddUsage(ctx, usage); err != nil {
		b.Fatal(err)
	}
	var minutes []store.CallMinute
	for m := range 360 {
		minutes = append(minutes, store.CallMinute{Minute: clock.Now().Add(-time.Duration(m) * time.Minute), Calls: 500, Errors: int64(m % 7)})
	}
	if err := st.AddCallMinutes(ctx, component, minutes); err != nil {
		b.Fatal(err)
	}
	// Every tenant has a webhook; tenant 7 has a hundred deliveries queued;
	// fifty accounts wait for a second tenant's approval.
	for i, tn := range tenants {
		if _, _, err := st.PutWebhook(ctx, tn.ID, fmt.Sprintf("https://hooks.example.com/t%d", i), []string{"*"}, "whsec_bench"); err != nil {
			b.Fatal(err)
		}
	}
	for range 100 {
		if _, err := st.EnqueueTenantEvent(ctx, t0.ID, store.EventWebhookTest, "", nil); err != nil {
			b.Fatal(err)
		}
	}
	// A thousand bindings carry a daily cap.
	for i := range benchTenants {
		if _, err := st.SetBindingLimit(ctx, tenants[i].ID, fmt.Sprintf("wx%016d", i), 500); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 50 {
		if err := st.RequestBinding(ctx, component, tenants[(i+1)%benchTenants].ID, fmt.Sprintf("wx%016d", i*benchTenants/50)); err != nil {
			b.Fatal(err)
		}
	}
	gw := consoleReplica(b, st, clock.Now, "http://gw.test")
	b.Logf("seeded %d accounts and %d tenants in %s", benchAccounts, benchTenants, time.Since(start).Round(time.Millisecond))

	br := newBrowser(b, gw)
	if resp := br.signIn(consoleAdminToken); resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("sign-in: got %d", resp.StatusCode)
	}
	pages := []struct{ name, path string }{
		{"overview", "/console/"},
		{"overview_24h", "/console/?window=24h"},
		{"tenants", "/console/tenants"},
		{"tenants_search", "/console/tenants?q=tenant-07"},
		{"tenants_last_page", "/console/tenants?page=20"},
		{"tenant", "/console/tenants/" + t0.ID},
		{"accounts", "/console/accounts"},
		{"accounts_search", "/console/accounts?q=shop+12"},
		{"accounts_by_expiry_page_150", "/console/accounts?sort=expiry&page=150"},
		{"accounts_of_tenant", "/console/accounts?tenant=" + t0.ID},
		{"account", "/console/accounts/wx0000000000000007"},
		{"authorize", "/console/authorize"},
		{"usage_7d", "/console/usage?tenant=" + t0.ID + "&range=7d"},
		{"usage_csv_30d", "/console/usage.csv?tenant=" + t0.ID + "&range=30d"},
		{"accounts_pending", "/console/accounts?pending=1"},
		{"quota", "/console/quota"},
		{"webhooks", "/console/webhooks"},
		{"webhooks_of_tenant", "/console/webhooks?tenant=" + t0.ID},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			var bytes int64
			cpu0 := processCPU()
			for b.Loop() {
				resp := br.do(http.MethodGet, p.path, nil)
				n, _ := io.Copy(io.Discard, resp.Body)
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: got %d", p.path, resp.StatusCode)
				}
				bytes = n
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
			// CPU time is what a page costs; on a machine shared with other
			// work the wall time above also counts waiting for a core.
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/page")
			b.ReportMetric(float64(bytes), "bytes")
		})
	}
}
