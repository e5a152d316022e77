package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

func TestLeases(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		step(t, "one holder at a time, who may renew", func(t *testing.T) {
			if ok, err := s.TryLease(ctx, "authorizer:x", "r1", 30*time.Second); err != nil || !ok {
				t.Fatalf("TryLease r1 = %v, %v", ok, err)
			}
			if ok, _ := s.TryLease(ctx, "authorizer:x", "r2", 30*time.Second); ok {
				t.Fatal("r2 took a held lease")
			}
			if ok, _ := s.TryLease(ctx, "authorizer:y", "r2", 30*time.Second); !ok {
				t.Fatal("r2 could not take another, free lease")
			}
			if ok, _ := s.TryLease(ctx, "authorizer:x", "r1", 30*time.Second); !ok {
				t.Fatal("owner could not renew its lease")
			}
		})
		step(t, "an expired lease is free", func(t *testing.T) {
			clock.Advance(31 * time.Second)
			if ok, _ := s.TryLease(ctx, "authorizer:x", "r2", 30*time.Second); !ok {
				t.Fatal("r2 could not take an expired lease")
			}
		})
		step(t, "only the holder releases", func(t *testing.T) {
			if err := s.ReleaseLease(ctx, "authorizer:x", "r1"); err != nil {
				t.Fatal(err)
			}
			if ok, _ := s.TryLease(ctx, "authorizer:x", "r1", 30*time.Second); ok {
				t.Fatal("a release by a non-holder freed the lease")
			}
			if err := s.ReleaseLease(ctx, "authorizer:x", "r2"); err != nil {
				t.Fatal(err)
			}
			if ok, _ := s.TryLease(ctx, "authorizer:x", "r1", 30*time.Second); !ok {
				t.Fatal("released lease not free")
			}
		})
	})
}
