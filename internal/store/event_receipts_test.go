package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

func TestEventReceipts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		step(t, "a recorded digest is seen, another is not", func(t *testing.T) {
			if seen, err := s.EventSeen(ctx, "d1"); seen || err != nil {
				t.Fatalf("unrecorded receipt seen: %v, %v", seen, err)
			}
			for range 2 { // recording twice is harmless
				if err := s.RecordEvent(ctx, "d1"); err != nil {
					t.Fatal(err)
				}
			}
			if seen, err := s.EventSeen(ctx, "d1"); !seen || err != nil {
				t.Fatalf("recorded receipt not seen: %v, %v", seen, err)
			}
			if seen, _ := s.EventSeen(ctx, "d2"); seen {
				t.Fatal("another digest seen")
			}
		})
		step(t, "receipts older than the cutoff are pruned", func(t *testing.T) {
			clock.Advance(time.Hour)
			if err := s.RecordEvent(ctx, "d2"); err != nil {
				t.Fatal(err)
			}
			n, err := s.DeleteEventsBefore(ctx, clock.Now().Add(-time.Minute))
			if err != nil || n != 1 {
				t.Fatalf("DeleteEventsBefore = %d, %v; want 1", n, err)
			}
			if seen, _ := s.EventSeen(ctx, "d1"); seen {
				t.Fatal("pruned receipt still seen")
			}
			if seen, _ := s.EventSeen(ctx, "d2"); !seen {
				t.Fatal("recent receipt pruned")
			}
		})
	})
}
