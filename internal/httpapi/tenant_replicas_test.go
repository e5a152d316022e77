package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// propagationBudget is the contract: a change made through one replica's
// admin API is in force on every replica within 2 seconds.
const propagationBudget = 2 * time.Second

// within polls cond until it holds, failing after budget; it returns how
// long it took.
func within(t *testing.T, budget time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > budget {
			t.Fatalf("%s: got nothing after %s, want it within %s", what, time.Since(start).Round(time.Millisecond), budget)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func TestChangesReachASecondReplicaWithinTwoSeconds(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			// Two replicas on one database, each with its own directory and
			// poller (the default interval), sharing a clock.
			clock := storetest.NewClock()
			url := storetest.NewURL(t, dialect)
			a := newTenantFixtureOn(t, storetest.OpenURL(t, url, clock.Now), clock)
			b := newTenantFixtureOn(t, storetest.OpenURL(t, url, clock.Now), clock)
			a.runWorkers()
			b.runWorkers()

			tn := a.createTenant("acme")
			a.authorize("wxaaaaaaaaaaaaaaa1", tn)
			kid, key := a.issueKey(tn, nil)
			probe := func(f *tenantFixture, path, key string) int { return f.tenantCall(http.MethodGet, path, key).Code }

			journey.Step(t, "a new key", func(t *testing.T) {
				d := within(t, propagationBudget, "new key accepted by replica b", func() bool {
					return probe(b, "/v1/_probe/authorizers/wxaaaaaaaaaaaaaaa1", key) == http.StatusOK
				})
				t.Logf("issue → b: %s", d)
			})

			journey.Step(t, "a revoked key", func(t *testing.T) {
				if w := a.admin(http.MethodDelete, "/admin/keys/"+kid, nil); w.Code != http.StatusNoContent {
					t.Fatalf("revoke: got %d %s, want 204", w.Code, w.Body)
				}
				if got := probe(a, "/v1/_probe/whoami", key); got != http.StatusUnauthorized {
					t.Fatalf("the revoking replica: got %d, want 401", got)
				}
				d := within(t, propagationBudget, "revocation seen by replica b", func() bool {
					return probe(b, "/v1/_probe/whoami", key) == http.StatusUnauthorized
				})
				t.Logf("revoke → b: %s", d)
			})

			var key2 string
			journey.Step(t, "an unbinding", func(t *testing.T) {
				_, key2 = a.issueKey(tn, nil)
				within(t, propagationBudget, "second key accepted by replica b", func() bool {
					return probe(b, "/v1/_probe/whoami", key2) == http.StatusOK
				})
				if w := a.admin(http.MethodDelete, "/admin/tenants/"+tn+"/authorizers/wxaaaaaaaaaaaaaaa1", nil); w.Code != http.StatusNoContent {
					t.Fatalf("unbind: got %d %s, want 204", w.Code, w.Body)
				}
				d := within(t, propagationBudget, "unbinding seen by replica b", func() bool {
					return probe(b, "/v1/_probe/authorizers/wxaaaaaaaaaaaaaaa1", key2) == http.StatusNotFound
				})
				t.Logf("unbind → b: %s", d)
			})

			journey.Step(t, "a rate override", func(t *testing.T) {
				if w := a.admin(http.MethodPatch, "/admin/tenants/"+tn, map[string]any{"rate_limit": 0.001, "rate_burst": 1}); w.Code != http.StatusOK {
					t.Fatalf("patch: got %d %s, want 200", w.Code, w.Body)
				}
				within(t, propagationBudget, "rate override seen by replica b", func() bool {
					return probe(b, "/v1/_probe/whoami", key2) == http.StatusTooManyRequests
				})
			})

			journey.Step(t, "a deleted tenant", func(t *testing.T) {
				if w := a.admin(http.MethodDelete, "/admin/tenants/"+tn, nil); w.Code != http.StatusNoContent {
					t.Fatalf("delete tenant: got %d %s, want 204", w.Code, w.Body)
				}
				d := within(t, propagationBudget, "tenant deletion seen by replica b", func() bool {
					return probe(b, "/v1/_probe/whoami", key2) == http.StatusUnauthorized
				})
				t.Logf("delete tenant → b: %s", d)
			})
		})
	}
}
