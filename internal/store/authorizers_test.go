package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

func TestAuthorizerCRUDAndCompareAndSwap(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		a, err := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa1"), "")
		if err != nil {
			t.Fatal(err)
		}
		if a.Version != 1 || a.Rev == 0 {
			t.Fatalf("first save: version %d rev %d", a.Version, a.Rev)
		}
		got, err := s.GetAuthorizer(ctx, comp, a.AppID)
		if err != nil {
			t.Fatal(err)
		}
		if got.AccessToken != "AT-wxaaaaaaaaaaaaaaa1" || got.RefreshToken != "refreshtoken@@@wxaaaaaaaaaaaaaaa1" ||
			fmt.Sprint(got.PermissionSets) != "[1 2 11]" || got.NickName != "Shop wxaaaaaaaaaaaaaaa1" || got.Status != store.StatusAuthorized {
			t.Fatalf("GetAuthorizer = %+v", got)
		}
		clock.Advance(time.Minute)
		upd, err := s.UpdateAuthorizer(ctx, comp, a.AppID, a.Version, func(x *store.Authorizer) error {
			x.AccessToken = "AT-2"
			return nil
		})
		if err != nil || upd.Version != 2 || upd.Rev <= a.Rev {
			t.Fatalf("UpdateAuthorizer = %+v, %v", upd, err)
		}
		// Compare-and-swap: the old version is refused and fn is not called.
		called := false
		_, err = s.UpdateAuthorizer(ctx, comp, a.AppID, a.Version, func(*store.Authorizer) error { called = true; return nil })
		if !errs.Is(err, errs.Conflict) || called {
			t.Fatalf("stale UpdateAuthorizer: err %v called %v", err, called)
		}
		// An error from fn rolls back.
		boom := errors.New("boom")
		if _, err := s.UpdateAuthorizer(ctx, comp, a.AppID, 0, func(x *store.Authorizer) error { x.AccessToken = "X"; return boom }); !errors.Is(err, boom) {
			t.Fatalf("fn error not returned: %v", err)
		}
		if got, _ := s.GetAuthorizer(ctx, comp, a.AppID); got.AccessToken != "AT-2" {
			t.Fatalf("rolled-back write visible: %v", got.AccessToken)
		}
		// Re-authorization bumps the version and keeps the nick name.
		again := newAuthorizer(a.AppID)
		again.NickName = ""
		again.PermissionSets = []int{100}
		re, err := s.SaveAuthorization(ctx, again, "")
		if err != nil || re.Version != 3 || re.NickName != "Shop wxaaaaaaaaaaaaaaa1" {
			t.Fatalf("re-authorization = %+v, %v", re, err)
		}
		changed, err := s.AuthorizersChangedSince(ctx, comp, upd.Rev)
		if err != nil || len(changed) != 1 || changed[0].Version != 3 {
			t.Fatalf("AuthorizersChangedSince = %+v, %v", changed, err)
		}
		if _, err := s.GetAuthorizer(ctx, comp, "wxffffffffffffffff"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("unknown authorizer: %v", err)
		}
	})
}

// TestSaveAuthorizationNeverRestoresAnOlderToken: a save of tokens read
// before a refresh committed (a re-sync of an account's sets) keeps the newer
// tokens and still applies the rest.
func TestSaveAuthorizationNeverRestoresAnOlderToken(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		old := newAuthorizer("wxaaaaaaaaaaaaaaa7")
		old.TokenRefreshedAt = clock.Now()
		if _, err := s.SaveAuthorization(ctx, old, ""); err != nil {
			t.Fatal(err)
		}
		// A refresh commits a newer token.
		clock.Advance(time.Hour)
		if _, err := s.UpdateAuthorizer(ctx, comp, old.AppID, 0, func(a *store.Authorizer) error {
			a.AccessToken, a.RefreshToken = "AT-new", "refreshtoken@@@new"
			a.TokenRefreshedAt, a.TokenExpiresAt = clock.Now(), clock.Now().Add(2*time.Hour)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// The save of what was read before the refresh, with new sets.
		stale := old
		stale.PermissionSets = []int{100}
		got, err := s.SaveAuthorization(ctx, stale, "")
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := s.GetAuthorizer(ctx, comp, old.AppID)
		for _, a := range []store.Authorizer{got, stored} {
			if a.AccessToken != "AT-new" || a.RefreshToken != "refreshtoken@@@new" || !a.TokenRefreshedAt.Equal(clock.Now()) ||
				fmt.Sprint(a.PermissionSets) != "[100]" {
				t.Fatalf("after the stale save: %+v", a)
			}
		}
		// A newer authorization replaces the tokens as before.
		clock.Advance(time.Minute)
		fresh := old
		fresh.AccessToken, fresh.TokenRefreshedAt = "AT-reauthorized", clock.Now()
		if got, _ := s.SaveAuthorization(ctx, fresh, ""); got.AccessToken != "AT-reauthorized" {
			t.Fatalf("a newer authorization did not replace the token: %+v", got)
		}
	})
}

func TestConcurrentCompareAndSwapHasOneWinner(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, _ *storetest.Clock) {
		ctx := context.Background()
		a, err := s.SaveAuthorization(ctx, newAuthorizer("wxaaaaaaaaaaaaaaa2"), "")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range 8 {
			wg.Go(func() {
				_, err := s.UpdateAuthorizer(ctx, comp, a.AppID, a.Version, func(x *store.Authorizer) error {
					x.AccessToken = secret.Value(fmt.Sprintf("AT-%d", i))
					return nil
				})
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errs.Is(err, errs.Conflict) {
					t.Errorf("unexpected error: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d writers won the compare-and-swap, want 1", wins)
		}
	})
}
