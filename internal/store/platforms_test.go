package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// TestPlatformsRegistry is the platforms table's contract: settings sealed
// at rest and read back in clear, one row per appid, and removal refused
// while a tenant still belongs to the platform.
func TestPlatformsRegistry(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := context.Background()
		const other = "wxc0ffee0000000002"
		p := store.Platform{AppID: other, Secret: "second-secret-value", Token: "second-token", AESKey: secret.Value(strings.Repeat("k", 43))}
		step(t, "a registered platform reads back in clear", func(t *testing.T) {
			if _, err := s.CreatePlatform(ctx, p); err != nil {
				t.Fatalf("CreatePlatform: %v", err)
			}
			got, err := s.GetPlatform(ctx, other)
			if err != nil || got.Secret != p.Secret || got.Token != p.Token || got.AESKey != p.AESKey || !got.CreatedAt.Equal(clock.Now().Truncate(1e6)) {
				t.Fatalf("GetPlatform = %+v, %v; want the settings given", got, err)
			}
			list, err := s.ListPlatforms(ctx)
			if err != nil || len(list) != 1 || list[0].AppID != other {
				t.Fatalf("ListPlatforms = %+v, %v; want only %s", list, err, other)
			}
		})
		step(t, "its settings change, with the time they did", func(t *testing.T) {
			before, _ := s.GetPlatform(ctx, other)
			clock.Advance(time.Minute)
			got, err := s.UpdatePlatform(ctx, other, func(p *store.Platform) error { p.Secret = "rotated-secret"; return nil })
			if err != nil || got.Secret != "rotated-secret" || got.Token != p.Token || !got.UpdatedAt.After(before.UpdatedAt) || !got.CreatedAt.Equal(before.CreatedAt) {
				t.Fatalf("UpdatePlatform = %+v, %v; want the new secret, the rest kept, a later update time", got, err)
			}
			if read, _ := s.GetPlatform(ctx, other); read.Secret != "rotated-secret" {
				t.Fatalf("read back %+v", read)
			}
			if _, err := s.UpdatePlatform(ctx, "wxc0ffee00000000ff", func(*store.Platform) error { return nil }); !errs.Is(err, errs.NotFound) {
				t.Fatalf("UpdatePlatform(unknown) = %v, want not_found", err)
			}
			refused := errs.E(errs.InvalidArgument, "no")
			if _, err := s.UpdatePlatform(ctx, other, func(p *store.Platform) error { p.Token = "changed"; return refused }); err != refused {
				t.Fatalf("UpdatePlatform with a refusing fn = %v", err)
			}
			if read, _ := s.GetPlatform(ctx, other); read.Token != p.Token {
				t.Fatalf("a refused update changed the token to %q", read.Token)
			}
		})
		step(t, "an appid registers once", func(t *testing.T) {
			if _, err := s.CreatePlatform(ctx, p); !errs.Is(err, errs.Conflict) {
				t.Fatalf("second CreatePlatform: %v, want conflict", err)
			}
		})
		step(t, "removal is refused while a tenant belongs to it", func(t *testing.T) {
			tn, err := s.CreateTenant(ctx, other, "second-platform-tenant", store.OnRegisteredPlatform)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.DeletePlatform(ctx, other); !errs.Is(err, errs.Conflict) {
				t.Fatalf("DeletePlatform with a tenant: %v, want conflict", err)
			}
			if err := s.DeleteTenant(ctx, tn.ID); err != nil {
				t.Fatal(err)
			}
		})
		step(t, "then it is removed, once", func(t *testing.T) {
			defer func() {
				// A tenant of a removed platform is not written, even by a
				// replica that still believes the platform exists.
				if _, err := s.CreateTenant(ctx, other, "too-late", store.OnRegisteredPlatform); !errs.Is(err, errs.InvalidArgument) {
					t.Errorf("CreateTenant on the removed platform: %v, want invalid_argument", err)
				}
			}()
			if err := s.DeletePlatform(ctx, other); err != nil {
				t.Fatalf("DeletePlatform: %v", err)
			}
			if err := s.DeletePlatform(ctx, other); !errs.Is(err, errs.NotFound) {
				t.Fatalf("second DeletePlatform: %v, want not_found", err)
			}
			if _, err := s.GetPlatform(ctx, other); !errs.Is(err, errs.NotFound) {
				t.Fatalf("GetPlatform after removal: %v, want not_found", err)
			}
		})
	})
}
