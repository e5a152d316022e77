package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// TestComponentTicketAndToken is the components table's contract as the
// component credentials use it: tickets stored newest-wins, the component
// token swapped in by compare-and-swap on the version with the time it was
// obtained, and any change (a ticket, another replica's token) making a
// refresher that read before it lose.
func TestComponentTicketAndToken(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		t1 := clock.Now()
		var c store.ComponentState
		step(t, "nothing before the first ticket", func(t *testing.T) {
			if _, err := s.GetComponentState(ctx, comp); !errs.Is(err, errs.NotFound) {
				t.Fatalf("GetComponentState before any ticket: got %v, want not_found", err)
			}
			if _, err := s.SwapComponentToken(ctx, comp, 1, "ctoken", t1, t1.Add(2*time.Hour)); !errs.Is(err, errs.Conflict) {
				t.Fatalf("SwapComponentToken before any ticket: got %v, want conflict", err)
			}
		})
		step(t, "a newer ticket is stored, an older one is not", func(t *testing.T) {
			if ok, err := s.SaveTicket(ctx, comp, "ticket@@@one", t1); err != nil || !ok {
				t.Fatalf("SaveTicket: stored=%v err=%v, want stored", ok, err)
			}
			// An older ticket arriving late does not replace the newer one.
			if ok, err := s.SaveTicket(ctx, comp, "ticket@@@old", t1.Add(-time.Minute)); err != nil || ok {
				t.Fatalf("SaveTicket(older): stored=%v err=%v, want not stored", ok, err)
			}
			var err error
			c, err = s.GetComponentState(ctx, comp)
			if err != nil || c.Ticket != "ticket@@@one" || !c.TicketReceivedAt.Equal(t1) || !c.Token.IsZero() || c.Version != 1 {
				t.Fatalf("GetComponentState = %+v, %v; want ticket@@@one received at %s, no token, version 1", c, err, t1)
			}
		})
		refreshed := t1.Add(time.Minute)
		exp := refreshed.Add(2 * time.Hour)
		step(t, "the token is swapped in with the time it was obtained", func(t *testing.T) {
			clock.Advance(2 * time.Minute)
			got, err := s.SwapComponentToken(ctx, comp, c.Version, "ctoken", refreshed, exp)
			if err != nil {
				t.Fatalf("SwapComponentToken: %v", err)
			}
			stored, err := s.GetComponentState(ctx, comp)
			if err != nil {
				t.Fatal(err)
			}
			for name, st := range map[string]store.ComponentState{"returned": got, "stored": stored} {
				if st.Token != "ctoken" || !st.TokenExpiresAt.Equal(exp) || !st.TokenRefreshedAt.Equal(refreshed) ||
					st.Version != c.Version+1 || st.Ticket != "ticket@@@one" || !st.UpdatedAt.Equal(clock.Now()) {
					t.Fatalf("%s state = %+v; want token ctoken refreshed at %s expiring at %s, version %d, the ticket kept, updated at %s",
						name, st, refreshed, exp, c.Version+1, clock.Now())
				}
			}
			c = stored
		})
		step(t, "a writer holding an old version loses", func(t *testing.T) {
			if _, err := s.SwapComponentToken(ctx, comp, c.Version-1, "other", refreshed, exp); !errs.Is(err, errs.Conflict) {
				t.Fatalf("stale SwapComponentToken: got %v, want conflict", err)
			}
			if got, _ := s.GetComponentState(ctx, comp); got.Token != "ctoken" || got.Version != c.Version {
				t.Fatalf("after the stale swap: %+v, want ctoken at version %d", got, c.Version)
			}
		})
		step(t, "a ticket arriving makes a refresher that read before it lose", func(t *testing.T) {
			t2 := clock.Now()
			if ok, err := s.SaveTicket(ctx, comp, "ticket@@@two", t2); err != nil || !ok {
				t.Fatalf("SaveTicket(newer): stored=%v err=%v, want stored", ok, err)
			}
			if _, err := s.SwapComponentToken(ctx, comp, c.Version, "late", t2, t2.Add(2*time.Hour)); !errs.Is(err, errs.Conflict) {
				t.Fatalf("SwapComponentToken over a newer ticket: got %v, want conflict", err)
			}
			got, _ := s.GetComponentState(ctx, comp)
			if got.Ticket != "ticket@@@two" || got.Token != "ctoken" || !got.TokenRefreshedAt.Equal(refreshed) || got.Version != c.Version+1 {
				t.Fatalf("after the new ticket: %+v; want ticket@@@two with ctoken kept, version %d", got, c.Version+1)
			}
		})
	})
}

// TestConcurrentComponentSwapsHaveOneWinner: replicas refreshing the
// component token from the same state store one token between them.
func TestConcurrentComponentSwapsHaveOneWinner(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		if _, err := s.SaveTicket(ctx, comp, "ticket@@@one", clock.Now()); err != nil {
			t.Fatal(err)
		}
		c, err := s.GetComponentState(ctx, comp)
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			winner secret.Value
			wins   int
		)
		for i := range 8 {
			wg.Go(func() {
				tok := secret.Value("ctoken-" + string(rune('a'+i)))
				_, err := s.SwapComponentToken(ctx, comp, c.Version, tok, clock.Now(), clock.Now().Add(2*time.Hour))
				switch {
				case err == nil:
					mu.Lock()
					wins++
					winner = tok
					mu.Unlock()
				case !errs.Is(err, errs.Conflict):
					t.Errorf("SwapComponentToken: %v, want success or conflict", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d writers won the compare-and-swap, want 1", wins)
		}
		if got, _ := s.GetComponentState(ctx, comp); got.Token != winner || got.Version != c.Version+1 {
			t.Fatalf("stored %+v; want the winner's token %q at version %d", got, winner.Reveal(), c.Version+1)
		}
	})
}
