package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

func TestAuthorizationSessions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		tn := mustTenant(t, s)
		step(t, "create, and find by pre_auth_code", func(t *testing.T) {
			sess, err := s.CreateSession(ctx, store.AuthSession{ID: "as_1", TenantID: tn, ComponentAppID: comp,
				ReturnURL: "https://example.com/done", AuthType: 1, ExpiresAt: clock.Now().Add(10 * time.Minute)}, "preauthcode@@@x")
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.SessionByPreAuthCode(ctx, "preauthcode@@@x")
			if err != nil || got.ID != sess.ID || got.ReturnURL != "https://example.com/done" || !got.CreatedAt.Equal(clock.Now()) {
				t.Fatalf("SessionByPreAuthCode = %+v, %v", got, err)
			}
			if _, err := s.SessionByPreAuthCode(ctx, "other"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("unknown pre_auth_code: got %v, want not_found", err)
			}
			if _, err := s.GetSession(ctx, "as_nope"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("unknown session: got %v, want not_found", err)
			}
		})
		step(t, "the first completion wins", func(t *testing.T) {
			if first, err := s.CompleteSession(ctx, "as_1", "wxaaaaaaaaaaaaaaa1"); err != nil || !first {
				t.Fatalf("CompleteSession = %v, %v; want the first", first, err)
			}
			if first, err := s.CompleteSession(ctx, "as_1", "wxaaaaaaaaaaaaaaa1"); err != nil || first {
				t.Fatalf("second CompleteSession = %v, %v; want not the first", first, err)
			}
			if got, _ := s.GetSession(ctx, "as_1"); got.CompletedAt == nil || got.AppID != "wxaaaaaaaaaaaaaaa1" {
				t.Fatalf("completed session = %+v", got)
			}
		})
		step(t, "expired sessions are pruned, live ones kept", func(t *testing.T) {
			if _, err := s.CreateSession(ctx, store.AuthSession{ID: "as_2", TenantID: tn, ComponentAppID: comp,
				ReturnURL: "https://example.com/done", ExpiresAt: clock.Now().Add(time.Hour)}, "preauthcode@@@y"); err != nil {
				t.Fatal(err)
			}
			n, err := s.DeleteExpiredSessions(ctx, clock.Now().Add(30*time.Minute))
			if err != nil || n != 1 {
				t.Fatalf("DeleteExpiredSessions = %d, %v; want 1", n, err)
			}
			if _, err := s.GetSession(ctx, "as_1"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("expired session: got %v, want not_found", err)
			}
			if _, err := s.GetSession(ctx, "as_2"); err != nil {
				t.Fatalf("live session pruned: %v", err)
			}
		})
	})
}
