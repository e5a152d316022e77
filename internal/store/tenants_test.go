package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

func TestTenants(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		var t1, t2 store.Tenant
		step(t, "create, and a duplicate name conflicts", func(t *testing.T) {
			var err error
			if t1, err = s.CreateTenant(ctx, comp, "acme"); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Second) // listed by creation time
			if t2, err = s.CreateTenant(ctx, comp, "globex"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateTenant(ctx, comp, "acme"); !errs.Is(err, errs.Conflict) {
				t.Fatalf("duplicate tenant: got %v, want conflict", err)
			}
			if list, err := s.ListTenants(ctx, comp); err != nil || len(list) != 2 || list[0].ID != t1.ID || list[1].ID != t2.ID {
				t.Fatalf("ListTenants = %+v, %v; want acme, globex", list, err)
			}
		})
		step(t, "update the rate limits", func(t *testing.T) {
			upd, err := s.UpdateTenant(ctx, t1.ID, func(x *store.Tenant) error { x.RateLimit, x.RateBurst = 5, 10; return nil })
			if err != nil || upd.RateLimit != 5 {
				t.Fatalf("UpdateTenant = %+v, %v", upd, err)
			}
			if got, _ := s.GetTenant(ctx, t1.ID); got.RateBurst != 10 {
				t.Fatalf("rate burst not stored: %+v", got)
			}
			if _, err := s.GetTenant(ctx, "tn_missing"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("unknown tenant: got %v, want not_found", err)
			}
		})
		step(t, "the snapshot holds tenants, keys and bindings at one revision", func(t *testing.T) {
			if _, err := s.CreateKey(ctx, store.Key{KID: "k_1", TenantID: t1.ID}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa1"), t1.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa2"), t2.ID); err != nil {
				t.Fatal(err)
			}
			snap, err := s.LoadTenantSnapshot(ctx)
			rev, _ := s.Revision(ctx, "tenants")
			if err != nil || len(snap.Tenants) != 2 || len(snap.Keys) != 1 || len(snap.Bindings) != 2 || snap.Rev == 0 || snap.Rev != rev {
				t.Fatalf("snapshot = %+v, %v; want 2 tenants, 1 key, 2 bindings at revision %d", snap, err, rev)
			}
		})
		step(t, "delete takes the tenant's keys and bindings with it", func(t *testing.T) {
			if err := s.DeleteTenant(ctx, t1.ID); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteTenant(ctx, t1.ID); !errs.Is(err, errs.NotFound) {
				t.Fatalf("deleting twice: got %v, want not_found", err)
			}
			if keys, _ := s.ListKeys(ctx, t1.ID); len(keys) != 0 {
				t.Fatalf("keys of a deleted tenant survive: %v", keys)
			}
			if b, _ := s.ListBindings(ctx, comp); len(b) != 1 || b[0].TenantID != t2.ID {
				t.Fatalf("bindings after the delete = %+v, want only %s's", b, t2.ID)
			}
		})
	})
}
