package quota_test

import (
	"context"
	"testing"

	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/quota"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
)

// Known lists only the quotas with a learned limit, with the gateway's
// use; TenantCalls counts one tenant's admitted calls; a new Beijing day
// starts both from zero use, the limit kept but due to be learned again.
func TestKnownQuotasAndTenantCalls(t *testing.T) {
	p := componenttest.New(t, componenttest.Options{Dialect: store.SQLite, Sim: func(o *sim.Options) { o.DailyQuota = 20 }})
	p.PushTicket()
	const learned, unlearned = "wx00000000000000b1", "wx00000000000000b2"
	for _, appid := range []string{learned, unlearned} {
		p.NewAccount(appid, 2)
		if _, err := p.Sim.Authorize(p.Ctx(), appid, ""); err != nil {
			t.Fatal(err)
		}
	}
	k := newKeeper(p, &caps{})
	ctx := context.Background()

	journey.Step(t, "a learned quota is listed with the gateway's calls", func(t *testing.T) {
		if _, err := k.Learn(ctx, learned, "getFans", cgiUserGet); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := k.Spend(ctx, learned, "getFans", cgiUserGet); err != nil {
				t.Fatal(err)
			}
		}
		if _, due := k.Status(unlearned, "getFans", cgiUserGet); !due {
			t.Fatal("an account never learned is not due")
		}
		got := k.Known()
		if len(got) != 1 || got[0].AppID != learned || got[0].API != "getFans" || got[0].DailyLimit != 20 || got[0].Used != 3 || got[0].Remain != 17 {
			t.Fatalf("Known = %+v, want %s getFans 20/3/17 only", got, learned)
		}
	})

	journey.Step(t, "a tenant's admitted calls are counted per API", func(t *testing.T) {
		for range 2 {
			if err := k.Admit(ctx, "tenant-a", learned, "getFans", cgiUserGet); err != nil {
				t.Fatal(err)
			}
		}
		if got := k.TenantCalls("tenant-a", learned, "getFans"); got != 2 {
			t.Fatalf("TenantCalls = %d, want 2", got)
		}
		if got := k.TenantCalls("tenant-a", learned, "getTags"); got != 0 {
			t.Fatalf("calls of another API = %d, want 0", got)
		}
		if got := k.TenantCalls("tenant-b", learned, "getFans"); got != 0 {
			t.Fatalf("another tenant's calls = %d, want 0", got)
		}
		if got := k.TenantCalls("", learned, "getFans"); got != 0 {
			t.Fatalf("the gateway's own count is no tenant's: got %d", got)
		}
	})

	journey.Step(t, "at Beijing midnight both start again", func(t *testing.T) {
		p.Clock.Advance(quota.NextReset(p.Clock.Now()).Sub(p.Clock.Now()))
		if got := k.Known(); len(got) != 1 || got[0].Used != 0 || got[0].Remain != 20 || !got[0].CheckedAt.IsZero() {
			t.Fatalf("Known after midnight = %+v, want the limit with no use, not checked today", got)
		}
		if got := k.TenantCalls("tenant-a", learned, "getFans"); got != 0 {
			t.Fatalf("TenantCalls after midnight = %d, want 0", got)
		}
	})
}
