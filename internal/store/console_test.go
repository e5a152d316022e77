package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// The console's tables (console_sessions, call_minutes) on every real store.
func TestConsoleTables(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			clock := storetest.NewClock()
			s := storetest.Open(t, d, clock.Now)
			ctx := context.Background()
			now := clock.Now()

			t.Run("a session is found by digest and kind, touched forward only", func(t *testing.T) {
				tok := store.ConsoleToken{TokenHash: "h1", Kind: store.ConsoleSession, CreatedAt: now, SeenAt: now, ExpiresAt: now.Add(time.Hour)}
				if err := s.CreateConsoleToken(ctx, tok); err != nil {
					t.Fatal(err)
				}
				if _, err := s.GetConsoleToken(ctx, store.ConsoleSignInCode, "h1"); !errs.Is(err, errs.NotFound) {
					t.Fatalf("wrong kind: got %v want not_found", err)
				}
				if err := s.TouchConsoleToken(ctx, "h1", now.Add(5*time.Minute)); err != nil {
					t.Fatal(err)
				}
				if err := s.TouchConsoleToken(ctx, "h1", now.Add(time.Minute)); err != nil {
					t.Fatal(err)
				}
				got, err := s.GetConsoleToken(ctx, store.ConsoleSession, "h1")
				if err != nil || !got.SeenAt.Equal(now.Add(5*time.Minute)) || !got.ExpiresAt.Equal(now.Add(time.Hour)) {
					t.Fatalf("got %+v, %v want seen_at +5m", got, err)
				}
				if err := s.DeleteConsoleToken(ctx, "h1"); err != nil {
					t.Fatal(err)
				}
				if _, err := s.GetConsoleToken(ctx, store.ConsoleSession, "h1"); !errs.Is(err, errs.NotFound) {
					t.Fatalf("after delete: got %v want not_found", err)
				}
			})

			t.Run("a sign-in code is consumed exactly once, and not after it expired", func(t *testing.T) {
				code := store.ConsoleToken{TokenHash: "c1", Kind: store.ConsoleSignInCode, CreatedAt: now, SeenAt: now, ExpiresAt: now.Add(10 * time.Minute)}
				if err := s.CreateConsoleToken(ctx, code); err != nil {
					t.Fatal(err)
				}
				var wg sync.WaitGroup
				wins := make(chan error, 8)
				for range 8 {
					wg.Go(func() {
						_, err := s.ConsumeConsoleToken(ctx, store.ConsoleSignInCode, "c1", now)
						wins <- err
					})
				}
				wg.Wait()
				close(wins)
				ok := 0
				for err := range wins {
					switch {
					case err == nil:
						ok++
					case !errs.Is(err, errs.NotFound) && !errs.Is(err, errs.Conflict):
						t.Errorf("a losing consumer: got %v want not_found", err)
					}
				}
				if ok != 1 {
					t.Fatalf("consumed %d times, want once", ok)
				}
				late := store.ConsoleToken{TokenHash: "c2", Kind: store.ConsoleSignInCode, CreatedAt: now, SeenAt: now, ExpiresAt: now.Add(10 * time.Minute)}
				_ = s.CreateConsoleToken(ctx, late)
				if _, err := s.ConsumeConsoleToken(ctx, store.ConsoleSignInCode, "c2", now.Add(10*time.Minute)); !errs.Is(err, errs.NotFound) {
					t.Fatalf("expired code: got %v want not_found", err)
				}
			})

			t.Run("the janitor deletes expired and idle rows only", func(t *testing.T) {
				for _, tok := range []store.ConsoleToken{
					{TokenHash: "live", Kind: store.ConsoleSession, CreatedAt: now, SeenAt: now, ExpiresAt: now.Add(time.Hour)},
					{TokenHash: "idle", Kind: store.ConsoleSession, CreatedAt: now, SeenAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)},
					{TokenHash: "old", Kind: store.ConsoleSession, CreatedAt: now, SeenAt: now, ExpiresAt: now},
				} {
					if err := s.CreateConsoleToken(ctx, tok); err != nil {
						t.Fatal(err)
					}
				}
				n, err := s.DeleteExpiredConsoleTokens(ctx, now, now.Add(-30*time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				if n != 2 {
					t.Errorf("deleted %d rows, want 2 (idle, old)", n)
				}
				if _, err := s.GetConsoleToken(ctx, store.ConsoleSignInCode, "c2"); err != nil {
					t.Fatalf("an unexpired code went: %v", err)
				}
				if _, err := s.GetConsoleToken(ctx, store.ConsoleSession, "live"); err != nil {
					t.Fatalf("the live session went: %v", err)
				}
			})

			t.Run("per-minute counts from several replicas add up", func(t *testing.T) {
				m := now.Truncate(time.Minute)
				if err := s.AddCallMinutes(ctx, comp, []store.CallMinute{{Minute: m, Calls: 3, Errors: 1}, {Minute: m.Add(time.Minute), Calls: 2}}); err != nil {
					t.Fatal(err)
				}
				if err := s.AddCallMinutes(ctx, comp, []store.CallMinute{{Minute: m.Add(20 * time.Second), Calls: 4, Errors: 2}}); err != nil {
					t.Fatal(err)
				}
				if err := s.AddCallMinutes(ctx, "wxother00000000001", []store.CallMinute{{Minute: m, Calls: 100}}); err != nil {
					t.Fatal(err)
				}
				got, err := s.CallMinutes(ctx, comp, m, m.Add(2*time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 2 || got[0].Calls != 7 || got[0].Errors != 3 || got[1].Calls != 2 || !got[0].Minute.Equal(m) {
					t.Fatalf("got %+v want minute 1: 7 calls 3 errors, minute 2: 2 calls", got)
				}
				if n, err := s.DeleteCallMinutesBefore(ctx, m.Add(time.Minute)); err != nil || n != 2 {
					t.Fatalf("pruned %d, %v want 2 rows (both components' first minute)", n, err)
				}
			})
		})
	}
}
