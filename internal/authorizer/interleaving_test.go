package authorizer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxgate/wxgate/internal/authorizer"
	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/wechat"
)

// interposingStore is the manager's store with a hook that runs once, when
// armed, right before the manager's next UpdateAuthorizer: after the
// refresh has read the row under its lease and asked WeChat, before its
// compare-and-swap write. What the hook writes goes through the unwrapped
// store, as another replica's or the authorization flow's writes would.
// With fail set, that one write then fails with fail instead of reaching
// the store (the database went away right after the other write landed).
type interposingStore struct {
	authorizer.Store
	armed atomic.Bool
	hook  func(ctx context.Context)
	fail  error
}

func (s *interposingStore) UpdateAuthorizer(ctx context.Context, c, appid string, v int64, fn func(*store.Authorizer) error) (store.Authorizer, error) {
	if s.armed.CompareAndSwap(true, false) {
		s.hook(ctx)
		if s.fail != nil {
			return store.Authorizer{}, s.fail
		}
	}
	return s.Store.UpdateAuthorizer(ctx, c, appid, v, fn)
}

// TestReauthorizationLandingBeforeTheRefreshWriteWins: the merchant
// authorizes again (new refresh token, new access token) between a
// refresh's read and its write. The refresh's write must lose its
// compare-and-swap: writing over the re-authorization would store a refresh
// token WeChat has already rotated away (61023 at the next refresh).
func TestReauthorizationLandingBeforeTheRefreshWriteWins(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			is := &interposingStore{}
			p := setup(t, componenttest.Options{Dialect: d, Authorizers: func(o *authorizer.Options) {
				is.Store = o.Store
				o.Store = is
			}}, appA)
			ctx := p.Ctx()
			old, _ := p.Authorizers.Get(appA)
			var reauthorized string
			is.hook = func(ctx context.Context) {
				if _, err := p.Sim.Authorize(ctx, appA, ""); err != nil {
					t.Errorf("re-authorization: %v", err)
				}
				reauthorized = p.Sim.CurrentAccessToken(appA)
			}
			is.armed.Store(true)

			t.Run("the refresh answers the re-authorization's token", func(t *testing.T) {
				a, err := p.Authorizers.ForceRefresh(ctx, appA)
				if err != nil {
					t.Fatalf("forced refresh: %v", err)
				}
				if is.armed.Load() || reauthorized == "" {
					t.Fatal("the re-authorization did not land before the refresh's write")
				}
				if a.AccessToken.Reveal() != reauthorized || a.AccessToken == old.AccessToken {
					t.Fatal("got the refresh's own token, want the re-authorization's")
				}
				if got := testutil.ToFloat64(p.Metrics.TokenRefreshes.WithLabelValues("authorizer", "superseded")); got != 1 {
					t.Fatalf("superseded refreshes = %v, want 1", got)
				}
			})
			t.Run("the store and the cache keep the re-authorization", func(t *testing.T) {
				stored, err := p.Store.GetAuthorizer(ctx, componenttest.ComponentAppID, appA)
				if err != nil || stored.AccessToken.Reveal() != reauthorized {
					t.Fatalf("stored row does not hold the re-authorization's token (%v)", err)
				}
				if got, _ := p.Authorizers.Get(appA); got.AccessToken.Reveal() != reauthorized {
					t.Fatal("the cache does not serve the re-authorization's token")
				}
			})
			t.Run("the stored refresh token is the live one", func(t *testing.T) {
				lists := p.Calls(sim.EndpointGetAuthorizerList, "")
				a, err := p.Authorizers.ForceRefresh(ctx, appA)
				if err != nil || a.Status != store.StatusAuthorized || a.AccessToken.Reveal() != p.Sim.CurrentAccessToken(appA) {
					t.Fatalf("next refresh: %s, %v", a.Status, err)
				}
				if n := p.Calls(sim.EndpointGetAuthorizerList, ""); n != lists {
					t.Fatalf("the next refresh needed api_get_authorizer_list (%d calls): the stored refresh token was stale", n-lists)
				}
				if got := testutil.ToFloat64(p.Metrics.TokenRefreshes.WithLabelValues("authorizer", "refresh_token_invalid")); got != 0 {
					t.Fatalf("refresh_token_invalid = %v, want 0", got)
				}
			})
		})
	}
}

// TestANewerTokenWrittenBeforeTheWriteWins: a replica whose lease ran out
// stores its refreshed access token (the refresh token unchanged, as WeChat
// answers a refresh) between this refresh's read and its write. This write
// must lose its compare-and-swap and serve the newer row.
func TestANewerTokenWrittenBeforeTheWriteWins(t *testing.T) {
	t.Parallel()
	is := &interposingStore{}
	p := setup(t, componenttest.Options{Dialect: store.SQLite, Authorizers: func(o *authorizer.Options) {
		is.Store = o.Store
		o.Store = is
	}}, appA)
	ctx := p.Ctx()
	const theirs = "access-token-stored-by-a-replica-whose-lease-ran-out"
	is.hook = func(ctx context.Context) {
		if _, err := is.Store.UpdateAuthorizer(ctx, componenttest.ComponentAppID, appA, 0, func(a *store.Authorizer) error {
			a.AccessToken = theirs
			return nil
		}); err != nil {
			t.Errorf("the other write: %v", err)
		}
	}
	is.armed.Store(true)
	a, err := p.Authorizers.ForceRefresh(ctx, appA)
	if err != nil || is.armed.Load() {
		t.Fatalf("forced refresh: %v (hook ran: %v)", err, !is.armed.Load())
	}
	stored, _ := p.Store.GetAuthorizer(ctx, componenttest.ComponentAppID, appA)
	if a.AccessToken.Reveal() != theirs || stored.AccessToken.Reveal() != theirs {
		t.Fatal("this refresh's write replaced the newer token")
	}
}

// TestAFailedWriteKeepsTheNewerVersionTheCacheHolds: the merchant
// authorizes again between a refresh's read and its write, the flow puts the
// re-authorization into this replica's cache, and then the refresh's write
// fails for a reason other than a conflict. The refresh's token may be kept
// in memory only over the version it replaces: over the newer one it would
// serve (and later try to store) a token from before the re-authorization.
func TestAFailedWriteKeepsTheNewerVersionTheCacheHolds(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			is := &interposingStore{fail: errs.Wrap(errs.Internal, "internal error", errors.New("database unreachable"))}
			p := setup(t, componenttest.Options{Dialect: d, Authorizers: func(o *authorizer.Options) {
				is.Store = o.Store
				o.Store = is
			}}, appA)
			ctx := p.Ctx()
			old, _ := p.Authorizers.Get(appA)
			var reauthorized store.Authorizer
			is.hook = func(ctx context.Context) {
				if _, err := p.Sim.Authorize(ctx, appA, ""); err != nil {
					t.Errorf("re-authorization: %v", err)
				}
				reauthorized, _ = p.Authorizers.Get(appA)
			}
			is.armed.Store(true)

			t.Run("the refresh's write fails after the re-authorization reached the cache", func(t *testing.T) {
				if _, err := p.Authorizers.ForceRefresh(ctx, appA); err != nil {
					t.Fatalf("forced refresh: %v", err)
				}
				if is.armed.Load() {
					t.Fatal("the refresh never tried to write")
				}
				if reauthorized.Version <= old.Version || reauthorized.AccessToken.Reveal() != p.Sim.CurrentAccessToken(appA) {
					t.Fatalf("the re-authorization did not reach the cache first (version %d, was %d)", reauthorized.Version, old.Version)
				}
				if got := testutil.ToFloat64(p.Metrics.TokenRefreshes.WithLabelValues("authorizer", "unsaved")); got != 1 {
					t.Fatalf("unsaved refreshes = %v, want 1", got)
				}
			})
			t.Run("the cache still serves the re-authorization", func(t *testing.T) {
				got, _ := p.Authorizers.Get(appA)
				if got.Version != reauthorized.Version || got.AccessToken != reauthorized.AccessToken {
					t.Fatalf("the cache serves version %d with another token, want the re-authorization (version %d)",
						got.Version, reauthorized.Version)
				}
				if getFans(t, p, got.AccessToken) != 0 {
					t.Fatal("WeChat refuses the token the cache serves")
				}
			})
			t.Run("the next tick stores nothing over it", func(t *testing.T) {
				p.Clock.Advance(time.Minute) // past the pause after the failed write
				p.Authorizers.RefreshDue(ctx)
				stored, err := p.Store.GetAuthorizer(ctx, componenttest.ComponentAppID, appA)
				if err != nil || stored.Version != reauthorized.Version || stored.AccessToken != reauthorized.AccessToken {
					t.Fatalf("stored row is not the re-authorization (%v)", err)
				}
			})
		})
	}
}

// TestSequentialTokenErrorsOnTwoReplicasRefreshOnce: replica A handles a
// 40001 and refreshes; then replica B, which has not synced yet and still
// serves the refused token, reports the same 40001. B must find A's token
// under the lease instead of asking WeChat again.
func TestSequentialTokenErrorsOnTwoReplicasRefreshOnce(t *testing.T) {
	t.Parallel()
	a := setup(t, componenttest.Options{}, appA)
	b := a.Replica(componenttest.Options{})
	ctx := a.Ctx()
	refused, _ := a.Authorizers.Get(appA)
	if got, ok := b.Authorizers.Get(appA); !ok || got.AccessToken != refused.AccessToken {
		t.Fatal("replica B does not serve the same token as A")
	}
	if err := a.Sim.InvalidateToken(appA); err != nil {
		t.Fatal(err)
	}
	before := a.Calls(sim.EndpointAuthorizerToken, appA)

	var tokA string
	t.Run("replica A refreshes after its 40001", func(t *testing.T) {
		if code := getFans(t, a, refused.AccessToken); code != wechat.ErrInvalidCredential {
			t.Fatalf("user/get answered %d, want 40001", code)
		}
		tok, err := a.Authorizers.OnTokenError(ctx, appA, refused.AccessToken)
		if err != nil || tok == refused.AccessToken || getFans(t, a, tok) != 0 {
			t.Fatalf("on token error: %v", err)
		}
		tokA = tok.Reveal()
		if n := a.Calls(sim.EndpointAuthorizerToken, appA) - before; n != 1 {
			t.Fatalf("api_authorizer_token calls = %d, want 1", n)
		}
	})
	t.Run("replica B, not yet synced, reports the same 40001", func(t *testing.T) {
		if got, _ := b.Authorizers.Get(appA); got.AccessToken != refused.AccessToken {
			t.Fatal("replica B synced already; the test needs it stale")
		}
		if code := getFans(t, b, refused.AccessToken); code != wechat.ErrInvalidCredential {
			t.Fatalf("user/get answered %d, want 40001", code)
		}
		tok, err := b.Authorizers.OnTokenError(ctx, appA, refused.AccessToken)
		if err != nil {
			t.Fatalf("on token error: %v", err)
		}
		if tok.Reveal() != tokA || getFans(t, b, tok) != 0 {
			t.Fatal("replica B does not retry with replica A's token")
		}
	})
	t.Run("exactly one api_authorizer_token in all", func(t *testing.T) {
		if n := a.Calls(sim.EndpointAuthorizerToken, appA) - before; n != 1 {
			t.Fatalf("api_authorizer_token calls = %d, want exactly 1", n)
		}
	})
}

// TestTokenRefusedAgainRightAfterItsRefreshIsKept: WeChat refuses the token
// an error-driven refresh has just brought; within the pause between two
// such refreshes the manager answers that same token (the caller's retry
// then fails upstream) instead of refreshing again or answering nothing;
// and a late report about the replaced token answers the current one.
func TestTokenRefusedAgainRightAfterItsRefreshIsKept(t *testing.T) {
	t.Parallel()
	p := setup(t, componenttest.Options{Dialect: store.SQLite}, appA)
	ctx := p.Ctx()
	old, _ := p.Authorizers.Get(appA)
	fresh, err := p.Authorizers.OnTokenError(ctx, appA, old.AccessToken)
	if err != nil || fresh == old.AccessToken || fresh.IsZero() {
		t.Fatalf("first token error: %v", err)
	}
	again, err := p.Authorizers.OnTokenError(ctx, appA, fresh)
	if err != nil || again != fresh {
		t.Fatalf("second token error right after: %v (same token: %v)", err, again == fresh)
	}
	// A late report about the token replaced before answers the current one.
	late, err := p.Authorizers.OnTokenError(ctx, appA, old.AccessToken)
	if err != nil || late != fresh {
		t.Fatalf("late report of the old token: %v (current token: %v)", err, late == fresh)
	}
	if n := p.Calls(sim.EndpointAuthorizerToken, appA); n != 1 {
		t.Fatalf("api_authorizer_token calls = %d, want 1", n)
	}
}

// TestForcedRefreshOfAnUnauthorizedAccountIsRefused: once the account has
// unauthorized the platform, a forced refresh answers
// authorizer_unauthorized without asking WeChat.
func TestForcedRefreshOfAnUnauthorizedAccountIsRefused(t *testing.T) {
	t.Parallel()
	p := setup(t, componenttest.Options{Dialect: store.SQLite}, appA)
	ctx := p.Ctx()
	if err := p.Sim.Unauthorize(ctx, appA); err != nil {
		t.Fatal(err)
	}
	before := p.Calls(sim.EndpointAuthorizerToken, appA)
	if _, err := p.Authorizers.ForceRefresh(ctx, appA); !errs.Is(err, errs.AuthorizerUnauthorized) {
		t.Fatalf("forced refresh = %v, want authorizer_unauthorized", err)
	}
	if n := p.Calls(sim.EndpointAuthorizerToken, appA) - before; n != 0 {
		t.Fatalf("%d api_authorizer_token calls for an unauthorized account", n)
	}
}
