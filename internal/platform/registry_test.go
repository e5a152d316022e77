package platform_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/platform"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

const (
	defaultApp = "wxc0ffee0000000001"
	otherApp   = "wxc0ffee0000000002"
	aesKey     = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// countingStore counts the registry's reads of the platforms table, and
// can hold a listing until the test lets it go.
type countingStore struct {
	*store.Store
	lists, gets atomic.Int64
	// listed counts the listings done (read, before any hold).
	listed atomic.Int64
	// hold, when set, is waited on by ListPlatforms after it read.
	hold atomic.Pointer[chan struct{}]
}

func (c *countingStore) ListPlatforms(ctx context.Context) ([]store.Platform, error) {
	c.lists.Add(1)
	list, err := c.Store.ListPlatforms(ctx)
	c.listed.Add(1)
	if h := c.hold.Load(); h != nil {
		<-*h
	}
	return list, err
}

func (c *countingStore) GetPlatform(ctx context.Context, appid string) (store.Platform, error) {
	c.gets.Add(1)
	return c.Store.GetPlatform(ctx, appid)
}

// running records which platforms' background work runs.
type running struct {
	mu      sync.Mutex
	working map[string]bool
	forgot  []string
	// tokens is the Token each platform was last built with.
	tokens map[string]string
}

func (f *fixture) built(appid string) string {
	f.run.mu.Lock()
	defer f.run.mu.Unlock()
	return f.run.tokens[appid]
}

func (r *running) set(appid string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.working[appid] = on
}

func (r *running) is(appid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.working[appid]
}

type fixture struct {
	st    *countingStore
	reg   *platform.Registry[string]
	run   *running
	clock *storetest.Clock
}

func newFixture(t *testing.T, d store.Dialect) *fixture {
	t.Helper()
	clock := storetest.NewClock()
	f := &fixture{st: &countingStore{Store: storetest.Open(t, d, clock.Now)}, run: &running{working: map[string]bool{}, tokens: map[string]string{}}, clock: clock}
	reg, err := platform.New(context.Background(), platform.Options[string]{
		Store:   f.st,
		Default: platform.Settings{AppID: defaultApp, Secret: "s", Token: "token1", AESKey: aesKey},
		Build: func(_ context.Context, s platform.Settings) (string, func(context.Context) error, error) {
			f.run.mu.Lock()
			f.run.tokens[s.AppID] = s.Token.Reveal()
			f.run.mu.Unlock()
			return "services of " + s.AppID, func(ctx context.Context) error {
				f.run.set(s.AppID, true)
				<-ctx.Done()
				f.run.set(s.AppID, false)
				return nil
			}, nil
		},
		Forget: func(appid string) {
			f.run.mu.Lock()
			f.run.forgot = append(f.run.forgot, appid)
			f.run.mu.Unlock()
		},
		Poll: time.Hour, // the tests call Sync themselves
		Now:  clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.reg = reg
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = reg.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within 5 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSettingsProblems(t *testing.T) {
	t.Parallel()
	good := platform.Settings{AppID: otherApp, Secret: "secret", Token: "token2", AESKey: aesKey}
	for _, tc := range []struct {
		name   string
		change func(*platform.Settings)
		field  string
	}{
		{"a malformed appid", func(s *platform.Settings) { s.AppID = "wx1" }, "appid"},
		{"no secret", func(s *platform.Settings) { s.Secret = "" }, "secret"},
		{"a token of two characters", func(s *platform.Settings) { s.Token = "ab" }, "token"},
		{"a token with punctuation", func(s *platform.Settings) { s.Token = "tok-en" }, "token"},
		{"a key of 42 characters", func(s *platform.Settings) { s.AESKey = secret.Value(aesKey[:42]) }, "aes_key"},
		{"a key that is not base64", func(s *platform.Settings) { s.AESKey = secret.Value("!" + aesKey[1:]) }, "aes_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.change(&s)
			p := s.Problems()
			if len(p) != 1 || p[tc.field] == "" {
				t.Fatalf("Problems() = %v, want one about %s", p, tc.field)
			}
		})
	}
	if p := good.Problems(); len(p) != 0 {
		t.Fatalf("good settings: %v", p)
	}
}

// TestRegistryFollowsTheStore: platforms registered here run at once,
// those registered elsewhere at the next sync or when a request names
// them, and removed ones stop; unknown appids cost one store read per
// lookup spacing however many arrive.
func TestRegistryFollowsTheStore(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t, d)
			waitUntil(t, "the default platform's work", func() bool { return f.run.is(defaultApp) })
			if v := f.reg.Default(); v != "services of "+defaultApp {
				t.Fatalf("Default() = %q", v)
			}
			t.Run("the default platform cannot be registered or removed", func(t *testing.T) {
				if _, err := f.reg.Add(ctx, platform.Settings{AppID: defaultApp, Secret: "s", Token: "token1", AESKey: aesKey}); !errs.Is(err, errs.Conflict) {
					t.Errorf("Add(default) = %v, want conflict", err)
				}
				if err := f.reg.Remove(ctx, defaultApp); !errs.Is(err, errs.Conflict) {
					t.Errorf("Remove(default) = %v, want conflict", err)
				}
			})
			t.Run("bad settings are refused with every field named", func(t *testing.T) {
				_, err := f.reg.Add(ctx, platform.Settings{AppID: "wx1", Token: "x"})
				e := errs.As(err)
				if e == nil || e.Code != errs.InvalidArgument || len(e.Details["fields"].(map[string]string)) != 4 {
					t.Fatalf("Add(bad) = %v, want invalid_argument naming appid, secret, token and aes_key", err)
				}
			})
			t.Run("an unknown appid is looked up once per spacing", func(t *testing.T) {
				before := f.st.gets.Load()
				for range 100 {
					if _, err := f.reg.Get(ctx, otherApp); !errs.Is(err, errs.NotFound) {
						t.Fatalf("Get(unknown) = %v, want not_found", err)
					}
				}
				if n := f.st.gets.Load() - before; n != 1 {
					t.Errorf("100 lookups of an unknown platform read the store %d times, want 1", n)
				}
				if _, err := f.reg.Get(ctx, "garbage"); !errs.Is(err, errs.NotFound) {
					t.Errorf("Get(garbage) = %v, want not_found", err)
				}
			})
			t.Run("a platform registered on another replica is served when a request names it", func(t *testing.T) {
				// Another replica's registration: straight into the store.
				if _, err := f.st.CreatePlatform(ctx, store.Platform{AppID: otherApp, Secret: "s2", Token: "token2", AESKey: aesKey}); err != nil {
					t.Fatal(err)
				}
				if _, err := f.reg.Get(ctx, otherApp); !errs.Is(err, errs.NotFound) {
					t.Fatalf("Get within the spacing = %v, want not_found (no second read)", err)
				}
				f.clock.Advance(platform.DefaultLookupSpacing)
				v, err := f.reg.Get(ctx, otherApp)
				if err != nil || v != "services of "+otherApp {
					t.Fatalf("Get after the spacing = %q, %v", v, err)
				}
				waitUntil(t, "the new platform's work", func() bool { return f.run.is(otherApp) })
				if got := f.reg.AppIDs(); len(got) != 2 || got[0] != defaultApp {
					t.Errorf("AppIDs() = %v, want the default first", got)
				}
			})
			t.Run("a platform removed on another replica stops at the next sync", func(t *testing.T) {
				if err := f.st.DeletePlatform(ctx, otherApp); err != nil {
					t.Fatal(err)
				}
				if err := f.reg.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				if _, ok := f.reg.Peek(otherApp); ok {
					t.Error("the removed platform is still served")
				}
				if f.run.is(otherApp) {
					t.Error("the removed platform's work still runs")
				}
				f.run.mu.Lock()
				forgot := append([]string(nil), f.run.forgot...)
				f.run.mu.Unlock()
				if len(forgot) != 1 || forgot[0] != otherApp {
					t.Errorf("forgotten platforms = %v, want %s", forgot, otherApp)
				}
			})
			t.Run("a poll that read before a registration does not undo it", func(t *testing.T) {
				const third = "wxc0ffee0000000003"
				hold := make(chan struct{})
				f.st.hold.Store(&hold)
				read := f.st.listed.Load()
				synced := make(chan error, 1)
				go func() { synced <- f.reg.Sync(ctx) }()
				// The poll has read the table (without the new platform) and
				// waits; the registration comes now.
				waitUntil(t, "the poll's read", func() bool { return f.st.listed.Load() > read })
				added := make(chan error, 1)
				go func() {
					_, err := f.reg.Add(ctx, platform.Settings{AppID: third, Secret: "s3", Token: "token3", AESKey: aesKey})
					added <- err
				}()
				// Give the registration time to happen while the poll holds
				// its stale list (it waits for the poll instead).
				var addErr error
				addDone := false
				select {
				case addErr = <-added:
					addDone = true
				case <-time.After(200 * time.Millisecond):
				}
				f.st.hold.Store(nil)
				close(hold)
				if err := <-synced; err != nil {
					t.Fatal(err)
				}
				if !addDone {
					addErr = <-added
				}
				if addErr != nil {
					t.Fatal(addErr)
				}
				if _, ok := f.reg.Peek(third); !ok {
					t.Fatal("the platform registered during a poll is not served")
				}
				if err := f.reg.Remove(ctx, third); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("a platform registered again with other settings is restarted by the poll", func(t *testing.T) {
				// Another replica removed it and registered it again.
				if _, err := f.st.CreatePlatform(ctx, store.Platform{AppID: otherApp, Secret: "old", Token: "oldtoken", AESKey: aesKey}); err != nil {
					t.Fatal(err)
				}
				if err := f.reg.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				if err := f.st.DeletePlatform(ctx, otherApp); err != nil {
					t.Fatal(err)
				}
				f.clock.Advance(time.Second)
				if _, err := f.st.CreatePlatform(ctx, store.Platform{AppID: otherApp, Secret: "new", Token: "newtoken", AESKey: aesKey}); err != nil {
					t.Fatal(err)
				}
				if err := f.reg.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				if got := f.built(otherApp); got != "newtoken" {
					t.Errorf("the running platform was built with token %q, want the new settings", got)
				}
				if err := f.reg.Remove(ctx, otherApp); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("an update restarts the platform with its new settings here and, at the next poll, elsewhere", func(t *testing.T) {
				if _, err := f.reg.Add(ctx, platform.Settings{AppID: otherApp, Secret: "s", Token: "firsttoken", AESKey: aesKey}); err != nil {
					t.Fatal(err)
				}
				f.clock.Advance(time.Second)
				if _, err := f.reg.Update(ctx, otherApp, platform.Settings{Token: "secondtoken"}); err != nil {
					t.Fatal(err)
				}
				if got := f.built(otherApp); got != "secondtoken" {
					t.Errorf("after Update the platform runs with token %q", got)
				}
				waitUntil(t, "the restarted platform's work", func() bool { return f.run.is(otherApp) })
				// Another replica's update: straight into the store.
				f.clock.Advance(time.Second)
				if _, err := f.st.UpdatePlatform(ctx, otherApp, func(p *store.Platform) error { p.Token = "thirdtoken"; return nil }); err != nil {
					t.Fatal(err)
				}
				if err := f.reg.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				if got := f.built(otherApp); got != "thirdtoken" {
					t.Errorf("after another replica's update and a poll the platform runs with token %q", got)
				}
				if _, err := f.reg.Update(ctx, otherApp, platform.Settings{Token: "no"}); !errs.Is(err, errs.InvalidArgument) {
					t.Errorf("Update with a bad token = %v, want invalid_argument", err)
				}
				if _, err := f.reg.Update(ctx, defaultApp, platform.Settings{Token: "newtoken"}); !errs.Is(err, errs.Conflict) {
					t.Errorf("Update(default) = %v, want conflict", err)
				}
				if _, err := f.reg.Update(ctx, "wxc0ffee00000000ff", platform.Settings{Token: "newtoken"}); !errs.Is(err, errs.NotFound) {
					t.Errorf("Update(unknown) = %v, want not_found", err)
				}
				if err := f.reg.Remove(ctx, otherApp); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("a flood of unknown appids is bounded", func(t *testing.T) {
				before := f.st.gets.Load()
				refused := 0
				for i := range 200 {
					_, err := f.reg.Get(ctx, fmt.Sprintf("wx%016x", 0xf100d+i))
					switch {
					case errs.Is(err, errs.NotFound):
					case errs.Is(err, errs.StoreUnavailable):
						refused++
					default:
						t.Fatalf("Get(unknown) = %v", err)
					}
				}
				if n := f.st.gets.Load() - before; n > platform.DefaultLookupRate || refused < 200-platform.DefaultLookupRate {
					t.Errorf("200 different unknown appids in an instant: %d store reads, %d refused; want at most %d reads", n, refused, platform.DefaultLookupRate)
				}
			})
			t.Run("one registered here runs at once and is removed only without tenants", func(t *testing.T) {
				info, err := f.reg.Add(ctx, platform.Settings{AppID: otherApp, Secret: "s2", Token: "token2", AESKey: aesKey})
				if err != nil || info.AppID != otherApp || info.Default {
					t.Fatalf("Add = %+v, %v", info, err)
				}
				waitUntil(t, "the registered platform's work", func() bool { return f.run.is(otherApp) })
				tn, err := f.st.CreateTenant(ctx, otherApp, "on-the-other")
				if err != nil {
					t.Fatal(err)
				}
				if err := f.reg.Remove(ctx, otherApp); !errs.Is(err, errs.Conflict) {
					t.Fatalf("Remove with a tenant = %v, want conflict", err)
				}
				if !f.run.is(otherApp) {
					t.Fatal("a refused removal stopped the platform")
				}
				if err := f.st.DeleteTenant(ctx, tn.ID); err != nil {
					t.Fatal(err)
				}
				if err := f.reg.Remove(ctx, otherApp); err != nil {
					t.Fatalf("Remove = %v", err)
				}
				if f.run.is(otherApp) {
					t.Error("the removed platform's work still runs")
				}
				list, err := f.reg.List(ctx)
				if err != nil || len(list) != 1 || !list[0].Default {
					t.Errorf("List after removal = %+v, %v; want the default only", list, err)
				}
			})
		})
	}
}
