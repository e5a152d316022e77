package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

func TestTenantKeys(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		t1 := mustTenant(t, s)
		exp := clock.Now().Add(time.Hour)
		step(t, "create for a tenant, not for an unknown one", func(t *testing.T) {
			k, err := s.CreateKey(ctx, store.Key{KID: "k_1", TenantID: t1, Name: "ci", AppIDs: []string{"wxaaaaaaaaaaaaaaa1"}, ExpiresAt: &exp})
			if err != nil || k.ExpiresAt == nil || !k.ExpiresAt.Equal(exp) || !k.CreatedAt.Equal(clock.Now()) {
				t.Fatalf("CreateKey = %+v, %v", k, err)
			}
			if _, err := s.CreateKey(ctx, store.Key{KID: "k_2", TenantID: "tn_missing"}); !errs.Is(err, errs.NotFound) {
				t.Fatalf("key for unknown tenant: got %v, want not_found", err)
			}
		})
		step(t, "revoke, idempotently; an unknown key is not found", func(t *testing.T) {
			for range 2 {
				if err := s.RevokeKey(ctx, "k_1"); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.RevokeKey(ctx, "k_nope"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("revoke unknown: got %v, want not_found", err)
			}
		})
		step(t, "touch records the latest use only", func(t *testing.T) {
			used := clock.Now().Add(time.Minute)
			if err := s.TouchKeys(ctx, map[string]time.Time{"k_1": used}); err != nil {
				t.Fatal(err)
			}
			if err := s.TouchKeys(ctx, map[string]time.Time{"k_1": used.Add(-time.Second)}); err != nil {
				t.Fatal(err)
			}
			keys, err := s.ListKeys(ctx, t1)
			if err != nil || len(keys) != 1 || keys[0].RevokedAt == nil || keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(used) ||
				fmt.Sprint(keys[0].AppIDs) != "[wxaaaaaaaaaaaaaaa1]" {
				t.Fatalf("ListKeys = %+v, %v; want k_1 revoked, last used %s", keys, err, used)
			}
		})
	})
}
