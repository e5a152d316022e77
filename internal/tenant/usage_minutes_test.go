package tenant_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/tenant"
)

// The per-minute figures the console charts: every call counts, every
// outcome but "ok" is an error, two replicas' flushes add up, and a failed
// flush keeps its counts without doubling the hourly usage.
func TestUsageCountsCallsAndErrorsPerMinute(t *testing.T) {
	clock := storetest.NewClock()
	url := storetest.NewURL(t, store.SQLite)
	st := storetest.OpenURL(t, url, clock.Now)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	const comp = "wxcomponent0000001"
	a := tenant.NewUsage(st, comp, nil, clock.Now, log, 0)
	b := tenant.NewUsage(st, comp, nil, clock.Now, log, 0)
	m0 := clock.Now().Truncate(time.Minute)

	a.Record("tn_a", "", "getFans", tenant.OutcomeOK)
	a.Record("tn_a", "", "getFans", "rate_limited")
	b.Record("tn_b", "", "getTagFans", tenant.OutcomeOK)
	clock.Advance(time.Minute)
	b.Record("tn_b", "", "getTagFans", "upstream_error")

	broken := storetest.OpenURL(t, url, clock.Now)
	_ = broken.Close()
	failing := tenant.NewUsage(broken, comp, nil, clock.Now, log, 0)
	failing.Record("tn_a", "", "getFans", tenant.OutcomeOK)
	if err := failing.Flush(ctx); err == nil {
		t.Fatal("a flush to a closed store succeeded")
	}

	for _, u := range []*tenant.Usage{a, b} {
		if err := u.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.CallMinutes(ctx, comp, m0, m0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Calls != 3 || got[0].Errors != 1 || got[1].Calls != 1 || got[1].Errors != 1 {
		t.Fatalf("got %+v want minute 0: 3 calls 1 error, minute 1: 1 call 1 error", got)
	}
	rows, err := st.Usage(ctx, "tn_b", m0.Add(-time.Hour), m0.Add(time.Hour))
	if err != nil || len(rows) != 2 {
		t.Fatalf("hourly usage of tn_b: got %+v, %v want ok and upstream_error rows", rows, err)
	}
}
