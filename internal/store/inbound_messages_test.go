package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// TestQueueInboundMessage: a message is queued once per tenant bound to the
// account when it arrives, a retry (same dedupe key) adds nothing, and an
// account bound to no tenant (or a binding still pending approval) queues
// nothing.
func TestQueueInboundMessage(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		t1, err := s.CreateTenant(ctx, comp, "acme")
		if err != nil {
			t.Fatal(err)
		}
		t2, err := s.CreateTenant(ctx, comp, "globex")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaab1"), t1.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Bind(ctx, t2.ID, "wxaaaaaaaaaaaaaab1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaab2"), ""); err != nil {
			t.Fatal(err)
		}
		// A third tenant asked for the account; the operator has not approved.
		t3, err := s.CreateTenant(ctx, comp, "initech")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RequestBinding(ctx, comp, t3.ID, "wxaaaaaaaaaaaaaab1"); err != nil {
			t.Fatal(err)
		}
		msg := store.InboundMessage{DedupeKey: "id:1001", MsgType: "text"}
		for _, tc := range []struct {
			name  string
			appid string
			msg   store.InboundMessage
			want  store.Queued
		}{
			{"first delivery: one row per bound tenant, none for the pending one", "wxaaaaaaaaaaaaaab1", msg, store.Queued{Added: 2}},
			{"a retry adds nothing, and says the account has tenants", "wxaaaaaaaaaaaaaab1", msg, store.Queued{Tenants: 2}},
			{"another message is queued", "wxaaaaaaaaaaaaaab1", store.InboundMessage{DedupeKey: "id:1002", MsgType: "image"}, store.Queued{Added: 2}},
			{"an account bound to no tenant queues nothing", "wxaaaaaaaaaaaaaab2", msg, store.Queued{}},
			{"another platform's account of that appid queues nothing", "wxaaaaaaaaaaaaaab1", store.InboundMessage{DedupeKey: "id:1003", MsgType: "text"}, store.Queued{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				component := comp
				if tc.name == "another platform's account of that appid queues nothing" {
					component = "wxotherplatform000"
				}
				got, err := s.QueueInboundMessage(ctx, component, tc.appid, tc.msg)
				if err != nil || got != tc.want {
					t.Fatalf("QueueInboundMessage = %+v, %v; want %+v, nil", got, err, tc.want)
				}
			})
		}
		t.Run("receipts are pruned by age, and a pruned message queues again", func(t *testing.T) {
			clock.Advance(time.Hour)
			recent := store.InboundMessage{DedupeKey: "id:2001", MsgType: "text"}
			if got, err := s.QueueInboundMessage(ctx, comp, "wxaaaaaaaaaaaaaab1", recent); err != nil || got.Added != 2 {
				t.Fatalf("recent message: %+v, %v", got, err)
			}
			n, err := s.DeleteInboundMessagesBefore(ctx, clock.Now().Add(-time.Minute))
			if err != nil || n != 4 {
				t.Fatalf("pruned %d (%v), want the 4 receipts older than a minute", n, err)
			}
			if got, err := s.QueueInboundMessage(ctx, comp, "wxaaaaaaaaaaaaaab1", recent); err != nil || got.Added != 0 {
				t.Fatalf("the recent receipt was pruned too: %+v, %v", got, err)
			}
			if got, err := s.QueueInboundMessage(ctx, comp, "wxaaaaaaaaaaaaaab1", msg); err != nil || got.Added != 2 {
				t.Fatalf("an old message after pruning: %+v, %v, want it queued again", got, err)
			}
		})
	})
}
