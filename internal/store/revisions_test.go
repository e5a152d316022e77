package store_test

import (
	"context"
	"testing"

	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// TestRevisions: every write of authorizers or tenants moves its counter,
// which is what replicas poll to see each other's changes.
func TestRevisions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, _ *storetest.Clock) {
		ctx := context.Background()
		for _, name := range []string{"authorizers", "tenants"} {
			if rev, err := s.Revision(ctx, name); err != nil || rev != 0 {
				t.Fatalf("Revision(%s) on a fresh store = %d, %v; want 0", name, rev, err)
			}
		}
		a, err := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa1"), "")
		if err != nil {
			t.Fatal(err)
		}
		if rev, _ := s.Revision(ctx, "authorizers"); rev != a.Rev || rev == 0 {
			t.Fatalf("authorizers revision %d after a save stamped %d", rev, a.Rev)
		}
		mustTenant(t, s)
		if rev, _ := s.Revision(ctx, "tenants"); rev != 1 {
			t.Fatalf("tenants revision %d after creating one tenant, want 1", rev)
		}
	})
}
