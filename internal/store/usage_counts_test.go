package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
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

// TestUsageFlushesFromTwoReplicasDoNotDeadlock: two replicas flush the same
// counts in opposite orders at once, as map iteration lets them; without
// one lock order PostgreSQL aborts one flush as a deadlock.
func TestUsageFlushesFromTwoReplicasDoNotDeadlock(t *testing.T) {
	t.Parallel()
	dbURL := storetest.NewURL(t, store.Postgres)
	a, b := storetest.OpenURL(t, dbURL, nil), storetest.OpenURL(t, dbURL, nil)
	ctx := context.Background()
	tn := mustTenant(t, a)
	h := time.Now().Truncate(time.Hour)
	var rows []store.UsageRow
	for i := range 300 {
		rows = append(rows, store.UsageRow{TenantID: tn, AppID: fmt.Sprintf("wx%016d", i), API: "getFans", Outcome: "ok", Hour: h, Count: 1})
	}
	reversed := slices.Clone(rows)
	slices.Reverse(reversed)
	minutes := []store.CallMinute{{Minute: h, Calls: 1}, {Minute: h.Add(time.Minute), Calls: 1}, {Minute: h.Add(2 * time.Minute), Calls: 1}}
	reversedMinutes := slices.Clone(minutes)
	slices.Reverse(reversedMinutes)
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		wg.Go(func() { errs[0] = a.AddUsage(ctx, rows) })
		wg.Go(func() { errs[1] = b.AddUsage(ctx, reversed) })
		wg.Go(func() { errs[2] = a.AddCallMinutes(ctx, comp, minutes) })
		wg.Go(func() { errs[3] = b.AddCallMinutes(ctx, comp, reversedMinutes) })
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: a flush failed: %v", round, err)
			}
		}
	}
	u, err := a.Usage(ctx, tn, h, h.Add(time.Hour))
	if err != nil || len(u) != 300 || u[0].Count != 10 {
		t.Fatalf("usage after 5 rounds of two flushes: %d rows (first %+v), %v; want 300 rows of 10", len(u), u[0], err)
	}
}
