package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

func TestUsageCounts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		tn := mustTenant(t, s)
		h := clock.Now().Truncate(time.Hour)
		rows := []store.UsageRow{{TenantID: tn, AppID: "wxa", API: "getFans", Outcome: "ok", Hour: h.Add(5 * time.Minute), Count: 3}}
		for _, batch := range [][]store.UsageRow{rows, rows, {{TenantID: "tn_other", AppID: "wxa", API: "getFans", Outcome: "ok", Hour: h, Count: 9}}} {
			if err := s.AddUsage(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		u, err := s.Usage(ctx, tn, h, h.Add(time.Hour))
		if err != nil || len(u) != 1 || u[0].Count != 6 || !u[0].Hour.Equal(h) {
			t.Fatalf("Usage = %+v, %v; want one row of 6 calls in the hour %s", u, err, h)
		}
		if u, _ := s.Usage(ctx, tn, h.Add(time.Hour), h.Add(2*time.Hour)); len(u) != 0 {
			t.Fatalf("usage outside range: %+v", u)
		}
		if _, err := s.Usage(ctx, "", h, h.Add(time.Hour)); err == nil {
			t.Fatal("Usage without a tenant must fail")
		}
	})
}
