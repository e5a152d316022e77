package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// pendingTypes lists the types of the tenant's pending deliveries, oldest first.
func pendingTypes(t *testing.T, s *store.Store, tenantID string) []string {
	t.Helper()
	list, err := s.ListWebhookDeliveries(context.Background(), tenantID, store.DeliveryPending, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(list) - 1; i >= 0; i-- {
		out = append(out, list[i].Type)
	}
	return out
}

// TestWebhookOutbox: every change of an account writes, in its own
// transaction, the events its tenants' webhooks want, and nothing for a
// tenant not bound to it; a failed change writes none.
func TestWebhookOutbox(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		acme, _ := s.CreateTenant(ctx, comp, "acme")
		globex, _ := s.CreateTenant(ctx, comp, "globex")
		quiet, _ := s.CreateTenant(ctx, comp, "quiet")
		const appid = "wxaaaaaaaaaaaaaaa1"
		step(t, "webhooks: acme wants everything, globex only messages, quiet is not bound", func(t *testing.T) {
			w, created, err := s.PutWebhook(ctx, acme.ID, "https://acme.example/hook", []string{"*"}, "whsec_a")
			if err != nil || !created || w.Secret.Reveal() != "whsec_a" {
				t.Fatalf("PutWebhook = %+v, %v, %v", w, created, err)
			}
			if _, _, err := s.PutWebhook(ctx, globex.ID, "https://globex.example/hook", []string{"message.received"}, "whsec_g"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.PutWebhook(ctx, quiet.ID, "https://quiet.example/hook", []string{"*"}, "whsec_q"); err != nil {
				t.Fatal(err)
			}
		})
		step(t, "authorized through acme's session: acme gets authorized", func(t *testing.T) {
			if _, err := s.SaveAuthorization(ctx, newAuthorizer(appid), acme.ID); err != nil {
				t.Fatal(err)
			}
			if got := pendingTypes(t, s, acme.ID); !slices.Equal(got, []string{store.EventAuthorized}) {
				t.Fatalf("acme's events = %v, want [authorized]", got)
			}
			if err := s.Bind(ctx, globex.ID, appid); err != nil {
				t.Fatal(err)
			}
		})
		step(t, "sets change: acme gets updated, globex (messages only) nothing", func(t *testing.T) {
			clock.Advance(time.Second)
			_, err := s.UpdateAuthorizer(ctx, comp, appid, 0, func(a *store.Authorizer) error { a.PermissionSets = []int{1}; return nil })
			if err != nil {
				t.Fatal(err)
			}
			if got := pendingTypes(t, s, acme.ID); !slices.Equal(got, []string{store.EventAuthorized, store.EventUpdated}) {
				t.Fatalf("acme's events = %v, want [authorized updated]", got)
			}
		})
		step(t, "a token refresh changes nothing a tenant sees: no event", func(t *testing.T) {
			clock.Advance(time.Second)
			_, err := s.UpdateAuthorizer(ctx, comp, appid, 0, func(a *store.Authorizer) error { a.AccessToken = "AT-2"; return nil })
			if err != nil {
				t.Fatal(err)
			}
			if got := pendingTypes(t, s, acme.ID); len(got) != 2 {
				t.Fatalf("acme's events = %v, want still 2", got)
			}
		})
		step(t, "a change that fails writes no event", func(t *testing.T) {
			boom := errors.New("boom")
			_, err := s.UpdateAuthorizer(ctx, comp, appid, 0, func(a *store.Authorizer) error {
				a.Status = store.StatusNeedsReauthorization
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v", err)
			}
			if got := pendingTypes(t, s, acme.ID); len(got) != 2 {
				t.Fatalf("acme's events = %v, want still 2", got)
			}
		})
		step(t, "needs_reauthorization, then unauthorized; the data is the state, never a token", func(t *testing.T) {
			for _, st := range []string{store.StatusNeedsReauthorization, store.StatusUnauthorized} {
				clock.Advance(time.Second)
				if _, err := s.UpdateAuthorizer(ctx, comp, appid, 0, func(a *store.Authorizer) error { a.Status = st; return nil }); err != nil {
					t.Fatal(err)
				}
			}
			want := []string{store.EventAuthorized, store.EventUpdated, store.EventNeedsReauthorization, store.EventUnauthorized}
			if got := pendingTypes(t, s, acme.ID); !slices.Equal(got, want) {
				t.Fatalf("acme's events = %v, want %v", got, want)
			}
			claimed, err := s.ClaimWebhookDeliveries(ctx, store.ClaimRequest{Owner: "r1", Now: clock.Now(), LeaseUntil: clock.Now().Add(time.Minute), Limit: 10, PerTenant: 10})
			if err != nil || len(claimed) != 4 {
				t.Fatalf("claimed %d, %v; want 4", len(claimed), err)
			}
			for _, c := range claimed {
				var body struct {
					ID, Type, AppID string
					Data            map[string]any
				}
				if err := json.Unmarshal(c.Body, &body); err != nil || body.ID != c.EventID || body.Type != c.Type || body.Data["appid"] != appid {
					t.Fatalf("body %s of %+v", c.Body, c.WebhookDelivery)
				}
				if c.Type == store.EventUnauthorized && body.Data["status"] != store.StatusUnauthorized {
					t.Fatalf("unauthorized event's data = %v", body.Data)
				}
				for _, tok := range []string{"AT-" + appid, "AT-2", "refreshtoken@@@" + appid} {
					if strings.Contains(string(c.Body), tok) {
						t.Fatalf("a token is in the event: %s", c.Body)
					}
				}
				if c.Webhook.Secret.Reveal() != "whsec_a" || c.Webhook.URL != "https://acme.example/hook" {
					t.Fatalf("claimed webhook = %+v", c.Webhook)
				}
			}
		})
		step(t, "a pending binding gets nothing until approved, then authorized", func(t *testing.T) {
			late, _ := s.CreateTenant(ctx, comp, "late")
			if _, _, err := s.PutWebhook(ctx, late.ID, "https://late.example/hook", []string{"authorizer.*"}, "whsec_l"); err != nil {
				t.Fatal(err)
			}
			if err := s.RequestBinding(ctx, comp, late.ID, appid); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Second)
			if _, err := s.UpdateAuthorizer(ctx, comp, appid, 0, func(a *store.Authorizer) error { a.PermissionSets = []int{1, 2, 3}; return nil }); err != nil {
				t.Fatal(err)
			}
			if got := pendingTypes(t, s, late.ID); len(got) != 0 {
				t.Fatalf("a tenant whose binding waits got %v", got)
			}
			if err := s.ApproveBinding(ctx, late.ID, appid); err != nil {
				t.Fatal(err)
			}
			if got := pendingTypes(t, s, late.ID); !slices.Equal(got, []string{store.EventAuthorized}) {
				t.Fatalf("after approval: %v, want [authorized]", got)
			}
			if err := s.ApproveBinding(ctx, late.ID, appid); err != nil { // approving again changes nothing
				t.Fatal(err)
			}
			if got := pendingTypes(t, s, late.ID); len(got) != 1 {
				t.Fatalf("a second approval: %v", got)
			}
		})
		step(t, "a message reaches every bound tenant that wants it, once per key", func(t *testing.T) {
			for range 2 { // WeChat's retry of the same message
				if _, err := s.EnqueueAccountEvent(ctx, comp, appid, store.EventMessageReceived, "msg:1", map[string]any{"msg_id": "1"}); err != nil {
					t.Fatal(err)
				}
			}
			if got := pendingTypes(t, s, globex.ID); !slices.Equal(got, []string{store.EventMessageReceived}) {
				t.Fatalf("globex's events = %v, want one message", got)
			}
			if got := pendingTypes(t, s, quiet.ID); len(got) != 0 {
				t.Fatalf("quiet (not bound) got %v", got)
			}
		})
	})
}

// TestWebhookDeliveryLifecycle: leases keep a delivery with one replica
// until it finishes or its lease runs out; a retry, a give-up, a
// redelivery; the per-tenant cap; rotation keeps the old secret.
func TestWebhookDeliveryLifecycle(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		acme, _ := s.CreateTenant(ctx, comp, "acme")
		other, _ := s.CreateTenant(ctx, comp, "other")
		if _, _, err := s.PutWebhook(ctx, acme.ID, "https://acme.example/hook", nil, "whsec_1"); err != nil {
			t.Fatal(err)
		}
		claim := func(owner string, limit, perTenant int) []store.ClaimedDelivery {
			t.Helper()
			c, err := s.ClaimWebhookDeliveries(ctx, store.ClaimRequest{Owner: owner, Now: clock.Now(), LeaseUntil: clock.Now().Add(15 * time.Second),
				Limit: limit, PerTenant: perTenant})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		var first store.WebhookDelivery
		step(t, "a test event is claimed by one replica only", func(t *testing.T) {
			var err error
			if first, err = s.EnqueueTenantEvent(ctx, acme.ID, store.EventWebhookTest, "", map[string]string{"message": "hi"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.EnqueueTenantEvent(ctx, other.ID, store.EventWebhookTest, "", nil); !errs.Is(err, errs.NotFound) {
				t.Fatalf("test without a webhook: %v, want not_found", err)
			}
			if got := claim("r1", 10, 4); len(got) != 1 || got[0].ID != first.ID {
				t.Fatalf("r1 claimed %+v", got)
			}
			if got := claim("r2", 10, 4); len(got) != 0 {
				t.Fatalf("r2 claimed a leased delivery: %+v", got)
			}
		})
		step(t, "the lease runs out (r1 died): r2 takes it, r1's late result is ignored", func(t *testing.T) {
			clock.Advance(16 * time.Second)
			if got := claim("r2", 10, 4); len(got) != 1 {
				t.Fatalf("r2 claimed %d, want the expired one", len(got))
			}
			ok, err := s.FinishWebhookAttempt(ctx, first.ID, "r1", store.AttemptResult{Outcome: store.DeliveryDelivered, Status: 200, At: clock.Now()})
			if err != nil || ok {
				t.Fatalf("r1's finish = %v, %v; want ignored", ok, err)
			}
		})
		step(t, "r2 fails: pending, retried at the time given, then delivered", func(t *testing.T) {
			ok, err := s.FinishWebhookAttempt(ctx, first.ID, "r2", store.AttemptResult{Outcome: store.DeliveryPending, Status: 500,
				Error: "HTTP 500", NextAttemptAt: clock.Now().Add(5 * time.Second), At: clock.Now()})
			if err != nil || !ok {
				t.Fatalf("finish = %v, %v", ok, err)
			}
			if got := claim("r1", 10, 4); len(got) != 0 {
				t.Fatal("claimed before its next attempt")
			}
			clock.Advance(5 * time.Second)
			got := claim("r1", 10, 4)
			if len(got) != 1 || got[0].Attempts != 1 || got[0].LastStatus != 500 {
				t.Fatalf("claimed %+v", got)
			}
			if ok, err := s.FinishWebhookAttempt(ctx, first.ID, "r1", store.AttemptResult{Outcome: store.DeliveryDelivered, Status: 204, At: clock.Now()}); err != nil || !ok {
				t.Fatalf("finish = %v, %v", ok, err)
			}
			list, _ := s.ListWebhookDeliveries(ctx, acme.ID, store.DeliveryDelivered, 10)
			if len(list) != 1 || list[0].Attempts != 2 || list[0].DeliveredAt == nil {
				t.Fatalf("delivered = %+v", list)
			}
		})
		step(t, "redeliver: a new delivery of the same event; another tenant's id is not found", func(t *testing.T) {
			d, err := s.RedeliverWebhook(ctx, acme.ID, first.ID)
			if err != nil || d.EventID != first.EventID || d.ID == first.ID || d.Status != store.DeliveryPending {
				t.Fatalf("redeliver = %+v, %v", d, err)
			}
			if _, err := s.RedeliverWebhook(ctx, other.ID, first.ID); !errs.Is(err, errs.NotFound) {
				t.Fatalf("another tenant's redeliver: %v", err)
			}
			got := claim("r1", 10, 4)
			if len(got) != 1 || got[0].EventID != first.EventID {
				t.Fatalf("claimed %+v", got)
			}
			_, _ = s.FinishWebhookAttempt(ctx, got[0].ID, "r1", store.AttemptResult{Outcome: store.DeliveryFailed, Error: "gave up", At: clock.Now()})
		})
		step(t, "per-tenant cap: a tenant holding its share gets no more", func(t *testing.T) {
			for range 5 {
				if _, err := s.EnqueueTenantEvent(ctx, acme.ID, store.EventWebhookTest, "", nil); err != nil {
					t.Fatal(err)
				}
			}
			if got := claim("r1", 10, 2); len(got) != 2 {
				t.Fatalf("claimed %d with a cap of 2", len(got))
			}
			c, err := s.ClaimWebhookDeliveries(ctx, store.ClaimRequest{Owner: "r1", Now: clock.Now(), LeaseUntil: clock.Now().Add(time.Minute),
				Limit: 10, PerTenant: 2, InFlight: map[string]int{acme.ID: 2}})
			if err != nil || len(c) != 0 {
				t.Fatalf("claimed %d while the tenant is at its cap", len(c))
			}
			q, err := s.WebhookQueueStats(ctx)
			if err != nil || q.Pending != 5 || q.OldestPending.IsZero() {
				t.Fatalf("stats = %+v, %v", q, err)
			}
			if err := s.ReleaseWebhookDeliveries(ctx, "r1"); err != nil {
				t.Fatal(err)
			}
			if got := claim("r2", 10, 10); len(got) != 5 {
				t.Fatalf("after release r2 claimed %d, want 5", len(got))
			}
		})
		step(t, "rotate: the old secret signs beside the new one until the grace ends", func(t *testing.T) {
			w, err := s.RotateWebhookSecret(ctx, acme.ID, "whsec_2", clock.Now().Add(24*time.Hour))
			if err != nil || w.Secret.Reveal() != "whsec_2" {
				t.Fatalf("rotate = %+v, %v", w, err)
			}
			if got := w.Secrets(clock.Now()); !slices.Equal(got, []secret.Value{"whsec_2", "whsec_1"}) {
				t.Fatalf("secrets during grace = %v", len(got))
			}
			if got := w.Secrets(clock.Now().Add(25 * time.Hour)); len(got) != 1 {
				t.Fatalf("secrets after grace = %d", len(got))
			}
		})
		step(t, "rotate again during the grace: conflict, both secrets kept; after it, allowed", func(t *testing.T) {
			clock.Advance(23 * time.Hour)
			_, err := s.RotateWebhookSecret(ctx, acme.ID, "whsec_3", clock.Now().Add(24*time.Hour))
			if !errs.Is(err, errs.Conflict) || !strings.Contains(err.Error(), "in progress until") {
				t.Fatalf("second rotation within the grace: %v, want conflict", err)
			}
			w, err := s.GetWebhook(ctx, acme.ID)
			if err != nil || !slices.Equal(w.Secrets(clock.Now()), []secret.Value{"whsec_2", "whsec_1"}) {
				t.Fatalf("after the refused rotation secrets = %d, %v", len(w.Secrets(clock.Now())), err)
			}
			clock.Advance(time.Hour)
			w, err = s.RotateWebhookSecret(ctx, acme.ID, "whsec_3", clock.Now().Add(24*time.Hour))
			if err != nil || !slices.Equal(w.Secrets(clock.Now()), []secret.Value{"whsec_3", "whsec_2"}) {
				t.Fatalf("rotation after the grace = %d, %v", len(w.Secrets(clock.Now())), err)
			}
		})
		step(t, "delete: pending deliveries end failed", func(t *testing.T) {
			if err := s.DeleteWebhook(ctx, acme.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetWebhook(ctx, acme.ID); !errs.Is(err, errs.NotFound) {
				t.Fatalf("get after delete: %v", err)
			}
			if got := pendingTypes(t, s, acme.ID); len(got) != 0 {
				t.Fatalf("pending after delete: %v", got)
			}
		})
	})
}

// TestWebhookClaimsDoNotOverlap: replicas claiming at once never hold the
// same delivery (PostgreSQL: FOR UPDATE SKIP LOCKED).
func TestWebhookClaimsDoNotOverlap(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock()
	s := storetest.Open(t, store.Postgres, clock.Now)
	ctx := context.Background()
	var tenants []string
	for _, name := range []string{"a", "b", "c", "d"} {
		tn, _ := s.CreateTenant(ctx, comp, name)
		tenants = append(tenants, tn.ID)
		if _, _, err := s.PutWebhook(ctx, tn.ID, "https://x.example/", nil, "whsec"); err != nil {
			t.Fatal(err)
		}
	}
	const n = 400
	for i := range n {
		if _, err := s.EnqueueTenantEvent(ctx, tenants[i%4], store.EventWebhookTest, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for r := range 4 {
		owner := string(rune('p' + r))
		wg.Go(func() {
			for {
				got, err := s.ClaimWebhookDeliveries(ctx, store.ClaimRequest{Owner: owner, Now: clock.Now(), LeaseUntil: clock.Now().Add(time.Minute), Limit: 7, PerTenant: 100})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, c := range got {
					if prev, dup := seen[c.ID]; dup {
						t.Errorf("%s claimed by %s and %s", c.ID, prev, owner)
					}
					seen[c.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d deliveries, want %d", len(seen), n)
	}
}

// TestWebhookSummaries: each of the component's webhooks, without its
// secret, with its pending and failed deliveries counted and the age of the
// oldest pending one; delivered ones are not counted, other components'
// webhooks are not listed.
func TestWebhookSummaries(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		acme, _ := s.CreateTenant(ctx, comp, "acme")
		quiet, _ := s.CreateTenant(ctx, comp, "quiet")
		elsewhere, _ := s.CreateTenant(ctx, "wxfedcba9876543210", "elsewhere")
		for _, tn := range []store.Tenant{acme, quiet, elsewhere} {
			if _, _, err := s.PutWebhook(ctx, tn.ID, "https://"+tn.Name+".example/hook", []string{"authorizer.*", "message.received"}, "whsec_"+secret.Value(tn.Name)); err != nil {
				t.Fatal(err)
			}
		}
		oldest := clock.Now()
		var ids []string
		for range 3 {
			d, err := s.EnqueueTenantEvent(ctx, acme.ID, store.EventWebhookTest, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, d.ID)
			clock.Advance(time.Second)
		}
		claimed, err := s.ClaimWebhookDeliveries(ctx, store.ClaimRequest{Owner: "r1", Now: clock.Now(), LeaseUntil: clock.Now().Add(time.Minute), Limit: 2, PerTenant: 2})
		if err != nil || len(claimed) != 2 {
			t.Fatalf("claimed %d, %v; want 2", len(claimed), err)
		}
		for i, outcome := range []string{store.DeliveryDelivered, store.DeliveryFailed} {
			if ok, err := s.FinishWebhookAttempt(ctx, claimed[i].ID, "r1", store.AttemptResult{Outcome: outcome, Status: 500, Error: "HTTP 500", At: clock.Now()}); err != nil || !ok {
				t.Fatalf("finish = %v, %v", ok, err)
			}
		}
		pendingAt := oldest
		for i, id := range ids {
			if id != claimed[0].ID && id != claimed[1].ID {
				pendingAt = oldest.Add(time.Duration(i) * time.Second)
			}
		}
		got, err := s.WebhookSummaries(ctx, comp)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.WebhookSummary{
			{TenantID: acme.ID, URL: "https://acme.example/hook", Events: []string{"authorizer.*", "message.received"}, Pending: 1, Failed: 1, OldestPending: pendingAt},
			{TenantID: quiet.ID, URL: "https://quiet.example/hook", Events: []string{"authorizer.*", "message.received"}},
		}
		slices.SortFunc(want, func(a, b store.WebhookSummary) int { return strings.Compare(a.TenantID, b.TenantID) })
		if len(got) != len(want) {
			t.Fatalf("summaries = %+v, want %+v", got, want)
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.TenantID != w.TenantID || g.URL != w.URL || !slices.Equal(g.Events, w.Events) || g.Pending != w.Pending || g.Failed != w.Failed ||
				!g.OldestPending.Equal(w.OldestPending) || g.UpdatedAt.IsZero() {
				t.Errorf("summary %d = %+v, want %+v", i, g, w)
			}
		}
	})
}
