package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// BenchmarkQuotaCountsRead is the read every quota sync makes (once a
// second per replica): the whole day's counts of the deployment, one row
// per account, API and tenant called today (docs/performance.md, "Quota
// sync").
func BenchmarkQuotaCountsRead(b *testing.B) {
	apis := []string{"getFans", "getTagFans", "getTags"}
	for _, d := range storetest.Dialects {
		for _, accounts := range []int{100, 10000} {
			b.Run(fmt.Sprintf("%s/rows=%d", d, accounts*len(apis)), func(b *testing.B) {
				clock := storetest.NewClock()
				s := storetest.Open(b, d, clock.Now)
				ctx := context.Background()
				const day = 20000
				var rows []store.QuotaCount
				for i := range accounts {
					for _, api := range apis {
						rows = append(rows, store.QuotaCount{AppID: fmt.Sprintf("wx%016x", i), API: api, TenantID: "t1", Day: day, Calls: int64(i%500 + 1)})
					}
				}
				if err := s.AddQuotaCounts(ctx, comp, rows); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for b.Loop() {
					got, err := s.QuotaCounts(ctx, comp, day)
					if err != nil || len(got) != len(rows) {
						b.Fatalf("QuotaCounts: %d rows, %v; want %d", len(got), err, len(rows))
					}
				}
			})
		}
	}
}
