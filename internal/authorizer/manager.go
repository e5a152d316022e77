// Package authorizer is the authorizer token manager: an in-memory cache of
// every authorizer of the component (status, permission sets, access token,
// expiry) that answers the proxy's hot path without a database query, and
// the background refresher that renews each access token well before it
// expires, once per account across all replicas.
//
// How replicas stay consistent:
//
//   - Every write to an authorizer (a refresh, an authorization event, a
//     permission change) bumps the deployment-wide "authorizers" revision
//     in the same transaction. Each replica polls AuthorizersChangedSince
//     its last revision every PollInterval (default 300 ms) and applies the
//     rows it gets, so a token refreshed by one replica is served by every
//     other replica within a second. The same poll works unchanged on the
//     single-node SQLite store.
//   - A refresh is single-flight inside a process (singleflight per appid)
//     and exclusive across replicas: the refresher takes the expiring lease
//     "authorizer:<component>:<appid>", re-reads the row under it (another
//     replica may just have refreshed: then there is nothing to do), calls
//     api_authorizer_token and writes with compare-and-swap on the row's
//     version. A failed swap means someone else wrote first; their row wins
//     unless only non-token fields changed.
//   - Tokens are renewed at 50-75% of their lifetime, the fraction fixed
//     per appid by a hash so thousands of accounts authorized together do
//     not renew in the same second, and proportional so a short simulated
//     lifetime behaves like WeChat's 7200 s.
package authorizer

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/lease"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wechat"
)

// Store is the persistence the manager needs.
type Store interface {
	Revision(ctx context.Context, name string) (int64, error)
	ListAuthorizers(ctx context.Context, componentAppID string) ([]store.Authorizer, error)
	AuthorizersChangedSince(ctx context.Context, componentAppID string, rev int64) ([]store.Authorizer, error)
	GetAuthorizer(ctx context.Context, componentAppID, appid string) (store.Authorizer, error)
	UpdateAuthorizer(ctx context.Context, componentAppID, appid string, expectVersion int64, fn func(*store.Authorizer) error) (store.Authorizer, error)
	lease.Store
}

var _ Store = (*store.Store)(nil)

// API is the WeChat calls the manager makes.
type API interface {
	RefreshAuthorizerToken(ctx context.Context, componentToken secret.Value, appid string, refreshToken secret.Value) (wechat.AuthorizerToken, error)
	GetAuthorizerInfo(ctx context.Context, componentToken secret.Value, appid string) (wechat.AuthorizerInfo, error)
	FindRefreshToken(ctx context.Context, componentToken secret.Value, appid string) (secret.Value, error)
}

var _ API = (*wechat.Client)(nil)

// ComponentToken runs a component API call with a valid
// component_access_token (retrying once with a new one when WeChat refuses
// it). component.Credentials implements it.
type ComponentToken interface {
	WithToken(ctx context.Context, fn func(secret.Value) error) error
}

// Defaults of Options.
const (
	DefaultPollInterval = 300 * time.Millisecond
	DefaultTickInterval = time.Second
	DefaultConcurrency  = 16
	DefaultLeaseTTL     = lease.DefaultTTL
	// DefaultInfoInterval is the least time between two re-reads of an
	// account's permission sets (RefreshInfo).
	DefaultInfoInterval = 30 * time.Second
	// defaultLifetime is assumed when a token's lifetime is unknown.
	defaultLifetime = 7200 * time.Second
	// refreshFrom and refreshSpan place each account's renewal in
	// [50%, 75%) of its token's lifetime.
	refreshFrom = 0.50
	refreshSpan = 0.25
)

// Options configure a Manager.
type Options struct {
	ComponentAppID string
	Store          Store
	WeChat         API
	Component      ComponentToken
	// Owner identifies this replica in leases; unique per process.
	Owner   string
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *obs.Metrics
	// PollInterval is how often Run reads other replicas' changes.
	PollInterval time.Duration
	// TickInterval is how often Run looks for due tokens.
	TickInterval time.Duration
	// Concurrency bounds the refreshes one tick runs at once.
	Concurrency int
	// LeaseTTL is how long a refresh lease lasts if its holder dies (at
	// most an eighth of the token's lifetime, see lease.TTL).
	LeaseTTL time.Duration
	// InfoInterval is the least time between two RefreshInfo of one account.
	InfoInterval time.Duration
}

// snapshot is what callers see of an account: the stored row without its
// refresh token (only the manager uses it). PermissionSets is shared: never
// modify it.
func snapshot(a store.Authorizer) store.Authorizer {
	a.RefreshToken = ""
	return a
}

// entry is one account in the cache. cur is read lock-free by Get; the
// other fields are guarded by mu.
type entry struct {
	cur atomic.Pointer[state]

	mu       sync.Mutex
	failures int
	retryAt  time.Time // after a failed refresh: not before
	infoAt   time.Time // last RefreshInfo
	errAt    time.Time // last refresh caused by a token error
}

// state is an immutable version of an account. unsaved is set when WeChat
// issued the token in a but storing it failed: a is served from memory
// and the write is retried (base is then the stored version it replaces).
type state struct {
	a       store.Authorizer
	unsaved bool
}

// Manager is the authorizer token manager. Build it with New, call Load,
// then run Run as a worker.
type Manager struct {
	o      Options
	log    *slog.Logger
	sf     singleflight.Group
	leases *lease.Leases

	mu      sync.RWMutex
	entries map[string]*entry

	pollMu sync.Mutex
	rev    int64
}

// New builds a Manager.
func New(o Options) *Manager {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.TickInterval <= 0 {
		o.TickInterval = DefaultTickInterval
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.InfoInterval <= 0 {
		o.InfoInterval = DefaultInfoInterval
	}
	return &Manager{o: o, log: o.Logger, entries: make(map[string]*entry),
		leases: lease.New(o.Store, o.Owner, o.Now, o.Logger)}
}

// Load reads every authorizer of the component into the cache. Call it
// once before serving.
func (m *Manager) Load(ctx context.Context) error {
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	rev, err := m.o.Store.Revision(ctx, "authorizers")
	if err != nil {
		return fmt.Errorf("authorizer: load: %w", err)
	}
	all, err := m.o.Store.ListAuthorizers(ctx, m.o.ComponentAppID)
	if err != nil {
		return fmt.Errorf("authorizer: load: %w", err)
	}
	for _, a := range all {
		m.Apply(a)
	}
	m.rev = rev
	m.log.InfoContext(ctx, "authorizer: loaded authorizers", "count", len(all), "rev", rev)
	return nil
}

// Sync applies the changes other replicas (and this one) made since the
// last Sync. Run calls it every PollInterval.
func (m *Manager) Sync(ctx context.Context) error {
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	changed, err := m.o.Store.AuthorizersChangedSince(ctx, m.o.ComponentAppID, m.rev)
	if err != nil {
		return fmt.Errorf("authorizer: sync: %w", err)
	}
	for _, a := range changed {
		m.Apply(a)
		if a.Rev > m.rev {
			m.rev = a.Rev
		}
	}
	return nil
}

func (m *Manager) entry(appid string) *entry {
	m.mu.RLock()
	e := m.entries[appid]
	m.mu.RUnlock()
	return e
}

// Apply puts a stored authorizer into the cache unless the cache already
// holds that version or a newer one. The authorization flow calls it after
// each write so this replica sees the change at once.
func (m *Manager) Apply(a store.Authorizer) {
	if a.ComponentAppID != "" && a.ComponentAppID != m.o.ComponentAppID {
		return
	}
	m.mu.RLock()
	e := m.entries[a.AppID]
	m.mu.RUnlock()
	if e == nil {
		m.mu.Lock()
		if e = m.entries[a.AppID]; e == nil {
			e = &entry{}
			m.entries[a.AppID] = e
		}
		m.mu.Unlock()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur := e.cur.Load(); cur != nil && cur.a.Version >= a.Version {
		return
	}
	e.cur.Store(&state{a: a})
	e.failures, e.retryAt = 0, time.Time{}
}

// Get returns the cached snapshot of an account without touching the
// database. ok is false for an account this replica does not know.
func (m *Manager) Get(appid string) (store.Authorizer, bool) {
	e := m.entry(appid)
	if e == nil {
		return store.Authorizer{}, false
	}
	s := e.cur.Load()
	if s == nil {
		return store.Authorizer{}, false
	}
	return snapshot(s.a), true
}

// Lookup returns the account from memory or, for one this replica has not
// seen yet (authorized through another replica a moment ago, before this
// one's poll), reads it from the store once and keeps it. ok is false for
// an account the component does not have. Errors: the store's
// (store_unavailable when it cannot be reached).
func (m *Manager) Lookup(ctx context.Context, appid string) (a store.Authorizer, ok bool, err error) {
	if a, ok := m.Get(appid); ok {
		return a, true, nil
	}
	sa, err := m.o.Store.GetAuthorizer(ctx, m.o.ComponentAppID, appid)
	switch {
	case errs.Is(err, errs.NotFound):
		return store.Authorizer{}, false, nil
	case err != nil:
		return store.Authorizer{}, false, err
	}
	m.Apply(sa)
	a, ok = m.Get(appid)
	return a, ok, nil
}

// List returns snapshots of every cached account (order unspecified).
func (m *Manager) List() []store.Authorizer {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]store.Authorizer, 0, len(m.entries))
	for _, e := range m.entries {
		if s := e.cur.Load(); s != nil {
			out = append(out, snapshot(s.a))
		}
	}
	return out
}

// Token returns the account's snapshot with a usable access token: from
// memory in the steady state; an expired token (the refresher could not
// renew it in time) is refreshed before answering. An account this replica
// has not seen yet is read from the store once.
// Errors: not_found (unknown account), authorizer_unauthorized (status
// unauthorized or needs_reauthorization), upstream_* or
// component_not_ready when an expired token cannot be renewed.
func (m *Manager) Token(ctx context.Context, appid string) (store.Authorizer, error) {
	a, ok := m.Get(appid)
	if !ok {
		sa, err := m.o.Store.GetAuthorizer(ctx, m.o.ComponentAppID, appid)
		if err != nil {
			return store.Authorizer{}, err
		}
		m.Apply(sa)
		a, _ = m.Get(appid)
	}
	if err := statusErr(a); err != nil {
		return store.Authorizer{}, err
	}
	if !a.AccessToken.IsZero() && m.o.Now().Before(a.TokenExpiresAt) {
		return a, nil
	}
	return m.refresh(ctx, appid, modeExpired, "")
}

func statusErr(a store.Authorizer) error {
	switch a.Status {
	case store.StatusAuthorized:
		return nil
	case store.StatusNeedsReauthorization:
		return errs.E(errs.AuthorizerUnauthorized, "the account's authorization is no longer valid; it must authorize the platform again")
	default:
		return errs.E(errs.AuthorizerUnauthorized, "the account has unauthorized the platform")
	}
}

// OnTokenError is called after WeChat refused failed with
// 40001/40014/42001. It refreshes the account's token only if failed is
// still the current one (concurrent callers share one refresh, across
// replicas too) and returns the token to retry the call with, once.
func (m *Manager) OnTokenError(ctx context.Context, appid string, failed secret.Value) (secret.Value, error) {
	if a, ok := m.Get(appid); ok && a.AccessToken != failed && !a.AccessToken.IsZero() {
		if err := statusErr(a); err != nil {
			return "", err
		}
		return a.AccessToken, nil
	}
	// A token WeChat keeps refusing right after a refresh it caused is not
	// refreshed again at once: one error-driven refresh per account per
	// errRefreshGap, so a persistent 40001 cannot turn every request into an
	// api_authorizer_token call.
	e := m.entry(appid)
	now := m.o.Now()
	if a, ok := m.Get(appid); ok {
		e.mu.Lock()
		recent := !e.errAt.IsZero() && now.Sub(e.errAt) < errRefreshGap(lifetime(a))
		e.mu.Unlock()
		if recent {
			if err := statusErr(a); err != nil {
				return "", err
			}
			return a.AccessToken, nil
		}
	}
	a, err := m.refresh(ctx, appid, modeIfCurrent, failed)
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	e.errAt = now
	e.mu.Unlock()
	return a.AccessToken, nil
}

// errRefreshGap is the least time between two refreshes caused by token
// errors for one account: a minute at WeChat's 7200 s, a twentieth of a
// shorter lifetime.
func errRefreshGap(life time.Duration) time.Duration { return min(time.Minute, life/20) }

// ForceRefresh renews the account's token now, whether due or not (POST
// /admin/authorizers/{appid}/refresh). An account that needs
// re-authorization first tries to recover its refresh token.
func (m *Manager) ForceRefresh(ctx context.Context, appid string) (store.Authorizer, error) {
	return m.refresh(ctx, appid, modeForce, "")
}

// RefreshInfo re-reads the account's granted permission sets and nick name
// with api_get_authorizer_info and stores them (the proxy calls it when
// WeChat answers 48001/61007). Within InfoInterval of the previous re-read
// it answers the cached snapshot without calling WeChat.
func (m *Manager) RefreshInfo(ctx context.Context, appid string) (store.Authorizer, error) {
	e := m.entry(appid)
	if e == nil {
		return store.Authorizer{}, errs.E(errs.NotFound, "authorizer not found")
	}
	now := m.o.Now()
	e.mu.Lock()
	recent := !e.infoAt.IsZero() && now.Sub(e.infoAt) < m.o.InfoInterval
	if !recent {
		e.infoAt = now
	}
	e.mu.Unlock()
	if recent {
		a, _ := m.Get(appid)
		return a, nil
	}
	v, err, _ := m.sf.Do("info:"+appid, func() (any, error) {
		ctx, cancel := m.leases.Detach(ctx, m.o.LeaseTTL)
		defer cancel()
		var info wechat.AuthorizerInfo
		err := m.o.Component.WithToken(ctx, func(tok secret.Value) error {
			var err error
			info, err = m.o.WeChat.GetAuthorizerInfo(ctx, tok, appid)
			return err
		})
		if err != nil {
			return nil, err
		}
		if !info.Authorized {
			a, _ := m.Get(appid)
			return a, nil
		}
		saved, err := m.o.Store.UpdateAuthorizer(ctx, m.o.ComponentAppID, appid, 0, func(a *store.Authorizer) error {
			a.PermissionSets = info.PermissionSets
			if info.NickName != "" {
				a.NickName = info.NickName
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		m.Apply(saved)
		m.log.InfoContext(ctx, "authorizer: permission sets re-read", "appid", appid, "permission_sets", saved.PermissionSets)
		return snapshot(saved), nil
	})
	if err != nil {
		return store.Authorizer{}, err
	}
	return v.(store.Authorizer), nil
}

// fraction returns the account's fixed place in [refreshFrom,
// refreshFrom+refreshSpan) of the lifetime.
func fraction(appid string) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(appid))
	return refreshFrom + refreshSpan*float64(h.Sum64()%10007)/10007
}

func lifetime(a store.Authorizer) time.Duration {
	if !a.TokenRefreshedAt.IsZero() && a.TokenExpiresAt.After(a.TokenRefreshedAt) {
		return a.TokenExpiresAt.Sub(a.TokenRefreshedAt)
	}
	return defaultLifetime
}

// DueAt returns when the account's token should be renewed: at its fixed
// fraction (50-75%, by appid) of the token's lifetime.
func DueAt(a store.Authorizer) time.Time {
	life := lifetime(a)
	start := a.TokenRefreshedAt
	if start.IsZero() {
		start = a.TokenExpiresAt.Add(-life)
	}
	return start.Add(time.Duration(float64(life) * fraction(a.AppID)))
}

func isDue(a store.Authorizer, now time.Time) bool {
	if a.Status != store.StatusAuthorized {
		return false
	}
	return a.AccessToken.IsZero() || !now.Before(DueAt(a))
}

// retryDelay is the pause after the n-th failed refresh: 1/720 of the
// lifetime (10 s for 7200 s) doubling up to 1/48 (150 s), so a refresh
// that fails keeps being retried many times before the old token expires.
func retryDelay(life time.Duration, n int) time.Duration {
	d := life / 720
	for i := 1; i < n && d < life/48; i++ {
		d *= 2
	}
	return min(max(d, 10*time.Millisecond), max(life/48, 10*time.Millisecond))
}
