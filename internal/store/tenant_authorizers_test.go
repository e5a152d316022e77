package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

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
			if err := s.Bind(ctx, t2.ID, a2.AppID); err != nil {
				t.Fatal(err)
			}
			if err := s.Bind(ctx, t2.ID, a2.AppID); err != nil {
				t.Fatalf("binding twice: %v", err)
			}
			if err := s.Bind(ctx, t2.ID, "wxffffffffffffffff"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("bind unknown authorizer: got %v, want not_found", err)
			}
			if err := s.Bind(ctx, "tn_missing", a2.AppID); !errs.Is(err, errs.NotFound) {
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
			if err := s.Unbind(ctx, t2.ID, a2.AppID); err != nil {
				t.Fatal(err)
			}
			if rev, _ := s.Revision(ctx, "tenants"); rev <= before {
				t.Fatalf("unbind did not bump the tenants revision: %d <= %d", rev, before)
			}
			if err := s.Unbind(ctx, t2.ID, a2.AppID); err != nil {
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
		if got, _ := s.GetTenant(ctx, other.ID); len(got.ReturnURLHosts) != 2 || got.ReturnURLHosts[1] != "b.example" {
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
			snap, err := s.LoadTenantSnapshot(ctx)
			if err != nil || len(snap.Bindings) != 1 || snap.Bindings[0].TenantID != holder.ID {
				t.Fatalf("snapshot bindings = %+v, %v; want the holder's only", snap.Bindings, err)
			}
			list, _ := s.ListBindings(ctx, comp)
			if len(list) != 2 {
				t.Fatalf("ListBindings = %+v, want the bound and the pending one", list)
			}
			pending, err := s.PendingBindings(ctx, comp)
			if err != nil || len(pending) != 1 || pending[0] != (store.Binding{TenantID: asker.ID, ComponentAppID: comp, AppID: a.AppID, Pending: true}) {
				t.Fatalf("PendingBindings = %+v, %v; want the asker's only", pending, err)
			}
			if err := s.ApproveBinding(ctx, other.ID, a.AppID); !errs.Is(err, errs.NotFound) {
				t.Fatalf("approving a binding nobody asked for: got %v, want not_found", err)
			}
		})
		step(t, "approved", func(t *testing.T) {
			if err := s.ApproveBinding(ctx, asker.ID, a.AppID); err != nil {
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
			if err := s.Bind(ctx, other.ID, a.AppID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.TenantAuthorizer(ctx, comp, other.ID, a.AppID); err != nil {
				t.Fatalf("after Bind: %v", err)
			}
		})
	})
}

// TestTenantsOfSeveralPlatforms: one deployment holds the tenants of
// several platforms. Reads by tenant id and the snapshot span them all;
// every binding uses the tenant's own platform, so a tenant is never bound
// to another platform's account, even one with the same appid.
func TestTenantsOfSeveralPlatforms(t *testing.T) {
	const other = "wx0000000000000002"
	const shared, onlyA = "wxaaaaaaaaaaaaaaa1", "wxaaaaaaaaaaaaaaa2"
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		var ta, tb store.Tenant
		step(t, "the same name on two platforms", func(t *testing.T) {
			var err error
			if ta, err = s.CreateTenant(ctx, comp, "acme"); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Second)
			if tb, err = s.CreateTenant(ctx, other, "acme"); err != nil {
				t.Fatalf("the same name on another platform: %v", err)
			}
			if got, err := s.GetTenant(ctx, tb.ID); err != nil || got.ComponentAppID != other {
				t.Fatalf("GetTenant(%s) = %+v, %v; want platform %s", tb.ID, got, err, other)
			}
			all, err := s.ListTenants(ctx, "")
			if err != nil || len(all) != 2 || all[0].ID != ta.ID || all[1].ID != tb.ID {
				t.Fatalf("ListTenants(all) = %+v, %v; want %s, %s", all, err, ta.ID, tb.ID)
			}
			if list, err := s.ListTenants(ctx, other); err != nil || len(list) != 1 || list[0].ID != tb.ID {
				t.Fatalf("ListTenants(%s) = %+v, %v; want %s only", other, list, err, tb.ID)
			}
		})
		step(t, "an update cannot move a tenant to another platform", func(t *testing.T) {
			got, err := s.UpdateTenant(ctx, tb.ID, func(x *store.Tenant) error { x.ComponentAppID, x.RateBurst = comp, 3; return nil })
			if err != nil || got.ComponentAppID != other || got.RateBurst != 3 {
				t.Fatalf("UpdateTenant = %+v, %v; want platform %s, burst 3", got, err, other)
			}
			if stored, _ := s.GetTenant(ctx, tb.ID); stored.ComponentAppID != other {
				t.Fatalf("stored platform = %q, want %q", stored.ComponentAppID, other)
			}
		})
		step(t, "accounts of both platforms", func(t *testing.T) {
			for _, a := range []store.Authorizer{newAuthorizer(shared), newAuthorizer(onlyA), onPlatform(other, newAuthorizer(shared))} {
				if _, err := s.SaveAuthorization(ctx, a, ""); err != nil {
					t.Fatalf("SaveAuthorization(%s, %s): %v", a.ComponentAppID, a.AppID, err)
				}
			}
		})
		step(t, "binds use the tenant's platform", func(t *testing.T) {
			if err := s.Bind(ctx, ta.ID, shared); err != nil {
				t.Fatal(err)
			}
			if err := s.Bind(ctx, tb.ID, onlyA); !errs.Is(err, errs.NotFound) {
				t.Fatalf("binding another platform's account: got %v, want not_found", err)
			}
			for _, tc := range []struct {
				platform string
				want     string
			}{{comp, ta.ID}, {other, ""}} {
				got, err := s.BoundTenants(ctx, tc.platform, shared)
				if err != nil || strings.Join(got, ",") != tc.want {
					t.Fatalf("BoundTenants(%s, %s) = %v, %v; want [%s]", tc.platform, shared, got, err, tc.want)
				}
			}
			if _, err := s.TenantAuthorizer(ctx, other, ta.ID, shared); !errs.Is(err, errs.NotFound) {
				t.Fatalf("platform B's account through platform A's tenant: got %v, want not_found", err)
			}
		})
		step(t, "a binding naming another platform is refused", func(t *testing.T) {
			if err := s.RequestBinding(ctx, other, ta.ID, shared); !errs.Is(err, errs.NotFound) {
				t.Fatalf("RequestBinding across platforms: got %v, want not_found", err)
			}
			if _, err := s.SaveAuthorization(ctx, onPlatform(other, newAuthorizer(shared)), ta.ID); !errs.Is(err, errs.NotFound) {
				t.Fatalf("SaveAuthorization binding across platforms: got %v, want not_found", err)
			}
			if list, _ := s.ListBindings(ctx, other); len(list) != 0 {
				t.Fatalf("platform B's bindings = %+v, want none", list)
			}
		})
		step(t, "limits, approvals and unbinds stay on the tenant's platform", func(t *testing.T) {
			if _, err := s.SetBindingLimit(ctx, tb.ID, shared, 5); !errs.Is(err, errs.NotFound) {
				t.Fatalf("limit on an account bound to another platform's tenant: got %v, want not_found", err)
			}
			if err := s.ApproveBinding(ctx, tb.ID, shared); !errs.Is(err, errs.NotFound) {
				t.Fatalf("approving another platform's binding: got %v, want not_found", err)
			}
			if err := s.Bind(ctx, tb.ID, shared); err != nil {
				t.Fatal(err)
			}
			b, err := s.SetBindingLimit(ctx, tb.ID, shared, 5)
			if err != nil || b.ComponentAppID != other || b.DailyLimit != 5 {
				t.Fatalf("SetBindingLimit = %+v, %v; want platform %s, limit 5", b, err, other)
			}
			if err := s.Unbind(ctx, tb.ID, shared); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.BoundTenants(ctx, comp, shared); strings.Join(got, ",") != ta.ID {
				t.Fatalf("platform A's binding after platform B's unbind: %v, want [%s]", got, ta.ID)
			}
			if err := s.Unbind(ctx, "tn_missing", shared); !errs.Is(err, errs.NotFound) {
				t.Fatalf("unbinding an unknown tenant: got %v, want not_found", err)
			}
			if err := s.Bind(ctx, tb.ID, shared); err != nil {
				t.Fatal(err)
			}
		})
		step(t, "the snapshot holds every platform", func(t *testing.T) {
			for _, tn := range []store.Tenant{ta, tb} {
				if _, err := s.CreateKey(ctx, store.Key{KID: "k_" + tn.ID, TenantID: tn.ID}); err != nil {
					t.Fatal(err)
				}
			}
			snap, err := s.LoadTenantSnapshot(ctx)
			if err != nil || len(snap.Tenants) != 2 || len(snap.Keys) != 2 || len(snap.Bindings) != 2 {
				t.Fatalf("snapshot = %+v, %v; want 2 tenants, 2 keys, 2 bindings", snap, err)
			}
			platforms := map[string]string{}
			for _, tn := range snap.Tenants {
				platforms[tn.ID] = tn.ComponentAppID
			}
			if platforms[ta.ID] != comp || platforms[tb.ID] != other {
				t.Fatalf("snapshot platforms = %v; want %s: %s, %s: %s", platforms, ta.ID, comp, tb.ID, other)
			}
			for _, b := range snap.Bindings {
				if b.ComponentAppID != platforms[b.TenantID] {
					t.Fatalf("binding %+v is not on its tenant's platform %s", b, platforms[b.TenantID])
				}
			}
		})
		step(t, "delete by id on any platform", func(t *testing.T) {
			if err := s.DeleteTenant(ctx, tb.ID); err != nil {
				t.Fatal(err)
			}
			if list, _ := s.ListTenants(ctx, ""); len(list) != 1 || list[0].ID != ta.ID {
				t.Fatalf("tenants after the delete = %+v, want %s only", list, ta.ID)
			}
		})
	})
}

// onPlatform returns a on the platform componentAppID.
func onPlatform(componentAppID string, a store.Authorizer) store.Authorizer {
	a.ComponentAppID = componentAppID
	return a
}
