package tenant_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/tenant"
)

// otherPlatform is a second platform registered next to the default one.
const otherPlatform = "wx00000000000000c2"

// registerPlatform writes appid to the platforms table, as the admin API
// does: a tenant of a registered platform is written only while its row is
// there.
func registerPlatform(t *testing.T, st *store.Store, appid string) {
	t.Helper()
	if _, err := st.CreatePlatform(context.Background(), store.Platform{AppID: appid, Secret: "s", Token: "token", AESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}); err != nil {
		t.Fatal(err)
	}
}

// platformSet is a registry of platforms: the appids it holds exist.
type platformSet map[string]bool

func (p platformSet) HasPlatform(_ context.Context, componentAppID string) (bool, error) {
	return p[componentAppID], nil
}

// brokenRegistry cannot say which platforms exist.
type brokenRegistry struct{}

func (brokenRegistry) HasPlatform(context.Context, string) (bool, error) {
	return false, errs.E(errs.StoreUnavailable, "the gateway cannot reach its store; retry later")
}

// TestCreateTenantOnAPlatform: a tenant is created on the default platform
// or on a registered one; any other platform is invalid_argument naming
// the component_appid field.
func TestCreateTenantOnAPlatform(t *testing.T) {
	for _, tc := range []struct {
		name      string
		platforms tenant.Platforms
		component string
		want      string // the tenant's platform, or "" for a refusal
		code      errs.Code
	}{
		{"the default platform by default", nil, "", component, ""},
		{"the default platform by name", nil, component, component, ""},
		{"another platform without a registry", nil, otherPlatform, "", errs.InvalidArgument},
		{"a registered platform", platformSet{otherPlatform: true}, otherPlatform, otherPlatform, ""},
		{"an unknown platform", platformSet{otherPlatform: true}, "wx00000000000000c9", "", errs.InvalidArgument},
		{"the registry fails", brokenRegistry{}, otherPlatform, "", errs.StoreUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := storetest.NewClock()
			st := storetest.Open(t, store.SQLite, clock.Now)
			registerPlatform(t, st, otherPlatform)
			svc, err := tenant.New(context.Background(), tenant.Options{Store: st, ComponentAppID: component, Platforms: tc.platforms,
				MasterKey: storetest.Key(), Now: clock.Now, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			tn, err := svc.Admin.CreateTenant(context.Background(), tc.component, "acme")
			if tc.want == "" {
				if !errs.Is(err, tc.code) {
					t.Fatalf("CreateTenant(%q): got %v, want %s", tc.component, err, tc.code)
				}
				if tc.code == errs.InvalidArgument {
					fields, _ := errs.As(err).Details["fields"].(map[string]string)
					if _, ok := fields["component_appid"]; !ok {
						t.Fatalf("details = %v, want a component_appid field", errs.As(err).Details)
					}
				}
				if list, _ := svc.Admin.ListTenants(context.Background()); len(list) != 0 {
					t.Fatalf("tenants after a refusal = %+v, want none", list)
				}
				return
			}
			if err != nil || tn.ComponentAppID != tc.want {
				t.Fatalf("CreateTenant(%q) = %+v, %v; want a tenant of %s", tc.component, tn, err, tc.want)
			}
			if got, ok := svc.Directory.ComponentOf(tn.ID); !ok || got != tc.want {
				t.Fatalf("ComponentOf = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

// TestTenantsOfTwoPlatforms: one directory holds the tenants of both
// platforms; the bindings, the principal and the per-minute counts each
// follow the tenant's platform, even for an appid authorized to both.
func TestTenantsOfTwoPlatforms(t *testing.T) {
	const shared, onlyDefault = "wxaaaaaaaaaaaaaaa1", "wxaaaaaaaaaaaaaaa2"
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		clock := storetest.NewClock()
		st := storetest.Open(t, d, clock.Now)
		registerPlatform(t, st, otherPlatform)
		ctx := context.Background()
		svc, err := tenant.New(ctx, tenant.Options{Store: st, ComponentAppID: component, Platforms: platformSet{otherPlatform: true},
			MasterKey: storetest.Key(), DefaultRate: 10, DefaultBurst: 10, Now: clock.Now, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		var ta, tb store.Tenant
		step(t, "a tenant on each platform, with the same name", func(t *testing.T) {
			if ta, err = svc.Admin.CreateTenant(ctx, "", "acme"); err != nil {
				t.Fatal(err)
			}
			if tb, err = svc.Admin.CreateTenant(ctx, otherPlatform, "acme"); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				id, want string
				ok       bool
			}{{ta.ID, component, true}, {tb.ID, otherPlatform, true}, {"tn_unknown", "", false}} {
				if got, ok := svc.Directory.ComponentOf(tc.id); got != tc.want || ok != tc.ok {
					t.Fatalf("ComponentOf(%s) = %q, %v; want %q, %v", tc.id, got, ok, tc.want, tc.ok)
				}
			}
			if list, err := svc.Admin.ListTenants(ctx); err != nil || len(list) != 2 {
				t.Fatalf("ListTenants = %+v, %v; want both platforms' tenants", list, err)
			}
		})
		step(t, "each tenant is bound on its own platform", func(t *testing.T) {
			for _, a := range []struct{ platform, appid string }{{component, shared}, {component, onlyDefault}, {otherPlatform, shared}} {
				if _, err := st.SaveAuthorization(ctx, store.Authorizer{ComponentAppID: a.platform, AppID: a.appid, Status: store.StatusAuthorized,
					TokenExpiresAt: clock.Now().Add(time.Hour)}, ""); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range []string{ta.ID, tb.ID} {
				if err := svc.Admin.Bind(ctx, id, shared); err != nil {
					t.Fatal(err)
				}
			}
			if err := svc.Admin.Bind(ctx, tb.ID, onlyDefault); !errs.Is(err, errs.NotFound) {
				t.Fatalf("binding another platform's account: got %v, want not_found", err)
			}
			for _, tc := range []struct{ platform, appid, want string }{
				{component, shared, ta.ID}, {otherPlatform, shared, tb.ID}, {otherPlatform, onlyDefault, ""},
			} {
				var want []string
				if tc.want != "" {
					want = []string{tc.want}
				}
				if got := svc.Directory.BoundTenants(tc.platform, tc.appid); !slices.Equal(got, want) {
					t.Fatalf("BoundTenants(%s, %s) = %v, want %v", tc.platform, tc.appid, got, want)
				}
			}
			if b, err := svc.Admin.SetDailyLimit(ctx, tb.ID, shared, 9); err != nil || b.ComponentAppID != otherPlatform {
				t.Fatalf("SetDailyLimit = %+v, %v; want the binding on %s", b, err, otherPlatform)
			}
		})
		step(t, "the principal carries the tenant's platform", func(t *testing.T) {
			for _, tc := range []struct {
				tenant store.Tenant
				want   string
			}{{ta, component}, {tb, otherPlatform}} {
				_, raw, err := svc.Admin.IssueKey(ctx, tc.tenant.ID, tenant.KeyRequest{Name: "ci"})
				if err != nil {
					t.Fatal(err)
				}
				p, err := svc.Verifier.Authenticate(ctx, raw.Reveal())
				if err != nil || p.TenantID != tc.tenant.ID || p.ComponentAppID != tc.want {
					t.Fatalf("principal = %+v, %v; want tenant %s of %s", p, err, tc.tenant.ID, tc.want)
				}
			}
		})
		step(t, "calls count for the tenant's platform", func(t *testing.T) {
			m0 := clock.Now().Truncate(time.Minute)
			svc.Usage.Record(ta.ID, shared, "getFans", tenant.OutcomeOK)
			svc.Usage.Record(tb.ID, shared, "getFans", "rate_limited")
			svc.Usage.Record(tb.ID, shared, "getFans", tenant.OutcomeOK)
			if err := svc.Usage.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				platform       string
				calls, errored int64
			}{{component, 1, 0}, {otherPlatform, 2, 1}} {
				got, err := st.CallMinutes(ctx, tc.platform, m0, m0.Add(time.Minute))
				if err != nil || len(got) != 1 || got[0].Calls != tc.calls || got[0].Errors != tc.errored {
					t.Fatalf("CallMinutes(%s) = %+v, %v; want %d calls, %d errors", tc.platform, got, err, tc.calls, tc.errored)
				}
			}
		})
		step(t, "deleting one platform's tenant leaves the other's", func(t *testing.T) {
			if err := svc.Admin.DeleteTenant(ctx, tb.ID); err != nil {
				t.Fatal(err)
			}
			if got := svc.Directory.BoundTenants(otherPlatform, shared); len(got) != 0 {
				t.Fatalf("BoundTenants(%s) after the delete = %v, want none", otherPlatform, got)
			}
			if got := svc.Directory.BoundTenants(component, shared); !slices.Equal(got, []string{ta.ID}) {
				t.Fatalf("BoundTenants(%s) = %v, want [%s]", component, got, ta.ID)
			}
		})
	})
}

// step runs one named step of a longer test and stops it if the step fails.
func step(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, fn) {
		t.FailNow()
	}
}
