package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// TestBindingsAndIsolation: a tenant sees exactly the accounts bound to it;
// another tenant's account is not found, like an unknown one.
func TestBindingsAndIsolation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, _ *storetest.Clock) {
		ctx := context.Background()
		t1, err := s.CreateTenant(ctx, comp, "acme")
		if err != nil {
			t.Fatal(err)
		}
		t2, err := s.CreateTenant(ctx, comp, "globex")
		if err != nil {
			t.Fatal(err)
		}
		var a1, a2 store.Authorizer
		step(t, "bind at authorization and afterwards", func(t *testing.T) {
			if a1, err = s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa1"), t1.ID); err != nil {
				t.Fatal(err)
			}
			if a2, err = s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa2"), ""); err != nil {
				t.Fatal(err)
			}
			if err := s.Bind(ctx, comp, t2.ID, a2.AppID); err != nil {
				t.Fatal(err)
			}
			if err := s.Bind(ctx, comp, t2.ID, a2.AppID); err != nil {
				t.Fatalf("binding twice: %v", err)
			}
			if err := s.Bind(ctx, comp, t2.ID, "wxffffffffffffffff"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("bind unknown authorizer: got %v, want not_found", err)
			}
			if err := s.Bind(ctx, comp, "tn_missing", a2.AppID); !errs.Is(err, errs.NotFound) {
				t.Fatalf("bind unknown tenant: got %v, want not_found", err)
			}
			b, err := s.ListBindings(ctx, comp)
			if err != nil || len(b) != 2 {
				t.Fatalf("ListBindings = %+v, %v; want 2", b, err)
			}
		})
		step(t, "each tenant reads its own accounts only", func(t *testing.T) {
			for _, tc := range []struct{ tenant, appid string }{{t1.ID, a1.AppID}, {t2.ID, a2.AppID}} {
				if got, err := s.TenantAuthorizer(ctx, comp, tc.tenant, tc.appid); err != nil || got.AppID != tc.appid {
					t.Fatalf("TenantAuthorizer(%s, %s) = %+v, %v", tc.tenant, tc.appid, got, err)
				}
			}
			// Another tenant's account is simply not found, like an unknown one.
			if _, err := s.TenantAuthorizer(ctx, comp, t1.ID, a2.AppID); !errs.Is(err, errs.NotFound) {
				t.Fatalf("foreign authorizer: got %v, want not_found", err)
			}
			if _, err := s.TenantAuthorizer(ctx, comp, t1.ID, "wxffffffffffffffff"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("unknown authorizer: got %v, want not_found", err)
			}
			// No principal: fail closed.
			if _, err := s.TenantAuthorizer(ctx, comp, "", a1.AppID); !errs.Is(err, errs.Internal) {
				t.Fatalf("TenantAuthorizer without a tenant: got %v, want internal", err)
			}
		})
		step(t, "unbind, idempotently, bumping the tenants revision", func(t *testing.T) {
			before, _ := s.Revision(ctx, "tenants")
			if err := s.Unbind(ctx, comp, t2.ID, a2.AppID); err != nil {
				t.Fatal(err)
			}
			if rev, _ := s.Revision(ctx, "tenants"); rev <= before {
				t.Fatalf("unbind did not bump the tenants revision: %d <= %d", rev, before)
			}
			if err := s.Unbind(ctx, comp, t2.ID, a2.AppID); err != nil {
				t.Fatalf("unbind twice must be a no-op: %v", err)
			}
			if _, err := s.TenantAuthorizer(ctx, comp, t2.ID, a2.AppID); !errs.Is(err, errs.NotFound) {
				t.Fatalf("unbound authorizer: got %v, want not_found", err)
			}
		})
	})
}

// TestPendingBindings: a pending binding gives its tenant nothing (not in
// the snapshot, not found by the tenant-scoped read, not among the bound
// tenants) until it is approved, by ApproveBinding or by Bind; a request
// never downgrades a bound binding.
func TestPendingBindings(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, _ *storetest.Clock) {
		ctx := context.Background()
		holder, _ := s.CreateTenant(ctx, comp, "holder")
		asker, _ := s.CreateTenant(ctx, comp, "asker")
		other, _ := s.CreateTenant(ctx, comp, "other", func(t *store.Tenant) { t.ReturnURLHosts = []string{"a.example", "b.example"} })
		if got, _ := s.GetTenant(ctx, comp, other.ID); len(got.ReturnURLHosts) != 2 || got.ReturnURLHosts[1] != "b.example" {
			t.Fatalf("return_url hosts: got %v, want [a.example b.example]", got.ReturnURLHosts)
		}
		a, err := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa1"), holder.ID)
		if err != nil {
			t.Fatal(err)
		}
		bound := func(t *testing.T, want ...string) {
			t.Helper()
			slices.Sort(want)
			got, err := s.BoundTenants(ctx, comp, a.AppID)
			if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("BoundTenants = %v, %v; want %v", got, err, want)
			}
		}
		step(t, "pending", func(t *testing.T) {
			if err := s.RequestBinding(ctx, comp, asker.ID, a.AppID); err != nil {
				t.Fatal(err)
			}
			bound(t, holder.ID)
			if _, err := s.TenantAuthorizer(ctx, comp, asker.ID, a.AppID); !errs.Is(err, errs.NotFound) {
				t.Fatalf("pending tenant's read: got %v, want not_found", err)
			}
			snap, err := s.LoadTenantSnapshot(ctx, comp)
			if err != nil || len(snap.Bindings) != 1 || snap.Bindings[0].TenantID != holder.ID {
				t.Fatalf("snapshot bindings = %+v, %v; want the holder's only", snap.Bindings, err)
			}
			list, _ := s.ListBindings(ctx, comp)
			if len(list) != 2 {
				t.Fatalf("ListBindings = %+v, want the bound and the pending one", list)
			}
			pending, err := s.PendingBindings(ctx, comp)
			if err != nil || len(pending) != 1 || pending[0] != (store.Binding{TenantID: asker.ID, AppID: a.AppID, Pending: true}) {
				t.Fatalf("PendingBindings = %+v, %v; want the asker's only", pending, err)
			}
			if err := s.ApproveBinding(ctx, comp, other.ID, a.AppID); !errs.Is(err, errs.NotFound) {
				t.Fatalf("approving a binding nobody asked for: got %v, want not_found", err)
			}
		})
		step(t, "approved", func(t *testing.T) {
			if err := s.ApproveBinding(ctx, comp, asker.ID, a.AppID); err != nil {
				t.Fatal(err)
			}
			bound(t, asker.ID, holder.ID)
			if pending, err := s.PendingBindings(ctx, comp); err != nil || len(pending) != 0 {
				t.Fatalf("PendingBindings after approval = %+v, %v; want none", pending, err)
			}
			if err := s.RequestBinding(ctx, comp, asker.ID, a.AppID); err != nil {
				t.Fatal(err)
			}
			bound(t, asker.ID, holder.ID)
		})
		step(t, "a pending binding is approved by Bind too", func(t *testing.T) {
			if err := s.RequestBinding(ctx, comp, other.ID, a.AppID); err != nil {
				t.Fatal(err)
			}
			if err := s.Bind(ctx, comp, other.ID, a.AppID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.TenantAuthorizer(ctx, comp, other.ID, a.AppID); err != nil {
				t.Fatalf("after Bind: %v", err)
			}
		})
	})
}
