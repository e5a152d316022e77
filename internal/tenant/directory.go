package tenant

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
)

// SnapshotStore is what the directory reads: one consistent snapshot of the
// tenants, keys and bindings of every platform, and the change counter that
// tells it a new one is due.
type SnapshotStore interface {
	// LoadTenantSnapshot reads tenants, keys and bindings with the tenants
	// revision read first, so a newer revision always means a reload.
	LoadTenantSnapshot(ctx context.Context) (store.TenantSnapshot, error)
	// Revision returns a change counter ("tenants").
	Revision(ctx context.Context, name string) (int64, error)
}

// DefaultPollInterval is how often a directory checks the tenants revision.
// With one reload taking a few milliseconds, a change made on any replica is
// seen by every other one well within 2 seconds.
const DefaultPollInterval = 500 * time.Millisecond

// DefaultMaxStaleness is how long a directory that cannot reach the store
// keeps trusting its last snapshot (docs/architecture.md, "Tenant
// directory"): past it, tenant calls are refused with store_unavailable
// rather than served from a directory that may miss revocations.
const DefaultMaxStaleness = 30 * time.Second

// DirectoryOptions configures NewDirectory. Zero values take the defaults.
type DirectoryOptions struct {
	// Poll is how often the tenants revision is read (DefaultPollInterval).
	Poll time.Duration
	// MaxStaleness bounds how old the last confirmation that the snapshot
	// is current may be before tenant calls are refused
	// (DefaultMaxStaleness; negative: no bound).
	MaxStaleness time.Duration
	// LookupSpacing is the least time between two store lookups made for
	// something the snapshot does not know (DefaultLookupSpacing).
	LookupSpacing time.Duration
	// Now is the clock the staleness is judged by (time.Now).
	Now func() time.Time
	// OnLookup, if set, is told the result of each lookup (LookupFound,
	// LookupMissing, LookupRemembered or LookupUnavailable).
	OnLookup func(result string)
}

// Directory is the in-memory view of the deployment's tenants (of every
// platform, each tenant belonging to one), keys and bindings that
// authenticates and authorizes requests without a database query. It holds an immutable snapshot behind an atomic pointer: readers
// never lock, and a reload swaps in a whole new snapshot.
//
// Changes reach every replica through the store's "tenants" revision, which
// every tenant, key and binding write bumps in its own transaction: Run
// polls that one-row counter every PollInterval and reloads when it moved.
// This is wxgate's equivalent of LISTEN/NOTIFY, and it works the same on
// PostgreSQL and on the embedded store. The replica that made a change
// reloads at once (Reload after its own write); the others, asked about a
// key or binding they do not know yet, catch up before refusing (lookup.go).
// A directory cut off from the store keeps its last snapshot until the
// staleness limit, then refuses tenant calls (CheckFresh).
type Directory struct {
	st       SnapshotStore
	log      *slog.Logger
	interval time.Duration
	maxStale time.Duration
	now      func() time.Time
	onLookup func(string)

	mu  sync.Mutex // serialises reloads, so snapshots only move forward
	cur atomic.Pointer[snapshot]
	// verified is when (Unix ns, by now) the last store read that found the
	// snapshot current began: a reload, or a revision read that matched.
	verified atomic.Int64
	// cutOff is set while reading the store fails (the last reload or
	// revision read failed) and cleared by the next that succeeds.
	cutOff atomic.Bool

	lookups lookups
}

type snapshot struct {
	rev     int64
	tenants map[string]tenantEntry
	keys    map[string]keyEntry
	// bound lists each tenant's appids, sorted (never modified once in a
	// snapshot): Bound searches it, BoundAppIDs hands it out.
	bound map[string][]string
	// tenantsOf is bound inverted: each platform account's tenant ids,
	// sorted.
	tenantsOf map[platformAccount][]string
	// limits holds the bindings' daily caps (only those set).
	limits map[bindingKey]int64
}

type bindingKey struct{ tenantID, appid string }

// platformAccount names an account on one platform: the same appid may be
// authorized to several platforms, each with its own tenants.
type platformAccount struct{ componentAppID, appid string }

type tenantEntry struct {
	componentAppID string
	name           string
	rateLimit      float64
	rateBurst      int
	returnHosts    []string // never modified once in a snapshot
}

type keyEntry struct {
	tenantID  string
	appids    []string // never modified once in a snapshot
	expiresAt time.Time
	revoked   bool
}

var emptySnapshot = &snapshot{
	tenants:   map[string]tenantEntry{},
	keys:      map[string]keyEntry{},
	bound:     map[string][]string{},
	tenantsOf: map[platformAccount][]string{},
	limits:    map[bindingKey]int64{},
}

// NewDirectory returns an empty directory; call Reload before serving.
func NewDirectory(st SnapshotStore, log *slog.Logger, o DirectoryOptions) *Directory {
	if o.Poll <= 0 {
		o.Poll = DefaultPollInterval
	}
	if o.MaxStaleness == 0 {
		o.MaxStaleness = DefaultMaxStaleness
	}
	if o.LookupSpacing <= 0 {
		o.LookupSpacing = DefaultLookupSpacing
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	d := &Directory{st: st, log: log, interval: o.Poll, maxStale: o.MaxStaleness,
		now: o.Now, onLookup: o.OnLookup}
	d.lookups.spacing = o.LookupSpacing
	d.lookups.misses = map[string]miss{}
	d.cur.Store(emptySnapshot)
	return d
}

func (d *Directory) current() *snapshot { return d.cur.Load() }

// Rev returns the tenants revision of the snapshot in use.
func (d *Directory) Rev() int64 { return d.current().rev }

// verifiedAt records that a store read begun at t found the snapshot
// current; the mark only moves forward.
func (d *Directory) verifiedAt(t time.Time) {
	n := t.UnixNano()
	for {
		old := d.verified.Load()
		if old >= n || d.verified.CompareAndSwap(old, n) {
			return
		}
	}
}

// Age is how long ago the last store read that found the snapshot current
// began: about the poll interval while the store answers, growing while it
// does not.
func (d *Directory) Age() time.Duration {
	return d.now().Sub(time.Unix(0, d.verified.Load()))
}

// Stale reports whether the replica is cut off from the store (its last
// read failed) and the snapshot is older than the staleness limit: it may
// be missing revocations made meanwhile.
func (d *Directory) Stale() bool {
	return d.maxStale > 0 && d.cutOff.Load() && d.Age() > d.maxStale
}

// errStale is the answer to a tenant call on a directory past its
// staleness limit.
var errStale = errs.E(errs.StoreUnavailable, "the gateway cannot reach its store; retry later").WithRetryAfter(storeRetryAfter)

// storeRetryAfter is the Retry-After of store_unavailable answers: about a
// few polls, the time a recovered store takes to be noticed.
const storeRetryAfter = 2 * time.Second

// CheckFresh answers store_unavailable when the directory is past its
// staleness limit, nil otherwise.
func (d *Directory) CheckFresh() error {
	if d.Stale() {
		return errStale
	}
	return nil
}

// Reload reads a fresh snapshot from the store and swaps it in.
func (d *Directory) Reload(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	began := d.now()
	s, err := d.st.LoadTenantSnapshot(ctx)
	if err != nil {
		d.cutOff.Store(true)
		return fmt.Errorf("tenant: reload directory: %w", err)
	}
	next := &snapshot{
		rev:       s.Rev,
		tenants:   make(map[string]tenantEntry, len(s.Tenants)),
		keys:      make(map[string]keyEntry, len(s.Keys)),
		bound:     map[string][]string{},
		tenantsOf: map[platformAccount][]string{},
		limits:    map[bindingKey]int64{},
	}
	for _, t := range s.Tenants {
		next.tenants[t.ID] = tenantEntry{componentAppID: t.ComponentAppID, name: t.Name, rateLimit: t.RateLimit, rateBurst: t.RateBurst, returnHosts: t.ReturnURLHosts}
	}
	for _, k := range s.Keys {
		e := keyEntry{tenantID: k.TenantID, appids: k.AppIDs, revoked: k.RevokedAt != nil}
		if k.ExpiresAt != nil {
			e.expiresAt = *k.ExpiresAt
		}
		next.keys[k.KID] = e
	}
	for _, b := range s.Bindings {
		next.bound[b.TenantID] = append(next.bound[b.TenantID], b.AppID)
		acct := platformAccount{b.ComponentAppID, b.AppID}
		next.tenantsOf[acct] = append(next.tenantsOf[acct], b.TenantID)
		if b.DailyLimit > 0 {
			next.limits[bindingKey{b.TenantID, b.AppID}] = b.DailyLimit
		}
	}
	for _, appids := range next.bound {
		slices.Sort(appids)
	}
	for _, ids := range next.tenantsOf {
		slices.Sort(ids)
	}
	d.cur.Store(next)
	d.verifiedAt(began)
	d.cutOff.Store(false)
	return nil
}

// Run polls the tenants revision every interval and reloads when it
// changed, until ctx ends (then it returns nil). A store that does not
// answer is logged once per outage; the last snapshot stays in use.
func (d *Directory) Run(ctx context.Context) error {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := d.poll(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil && !failing:
			failing = true
			d.log.WarnContext(ctx, "tenant directory: cannot refresh; serving the last snapshot", "err", err.Error(), "rev", d.Rev())
		case err == nil && failing:
			failing = false
			d.log.InfoContext(ctx, "tenant directory: refreshing again", "rev", d.Rev())
		}
	}
}

func (d *Directory) poll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return d.refresh(ctx)
}

// refresh reads the tenants revision and reloads when it moved; either way
// the snapshot is then known current as of the read's start.
func (d *Directory) refresh(ctx context.Context) error {
	began := d.now()
	rev, err := d.st.Revision(ctx, "tenants")
	if err != nil {
		d.cutOff.Store(true)
		return err
	}
	if rev == d.Rev() {
		d.verifiedAt(began)
		d.cutOff.Store(false)
		return nil
	}
	return d.Reload(ctx)
}

// Bound reports whether tenantID may see and call appid.
func (d *Directory) Bound(tenantID, appid string) bool {
	_, ok := slices.BinarySearch(d.current().bound[tenantID], appid)
	return ok
}

// DailyLimit returns the operator's cap on tenantID's calls per proxied
// API and Beijing day on appid (0: no cap).
func (d *Directory) DailyLimit(tenantID, appid string) int64 {
	return d.current().limits[bindingKey{tenantID, appid}]
}

// BoundAppIDs lists the appids bound to tenantID, sorted (the caller must
// not modify the slice).
func (d *Directory) BoundAppIDs(tenantID string) []string {
	return d.current().bound[tenantID]
}

// BoundTenants lists the ids of the tenants of the platform componentAppID
// that its account appid is bound to, sorted (the caller must not modify
// the slice). Another platform's tenants are never listed, even when the
// same appid is authorized to it too.
func (d *Directory) BoundTenants(componentAppID, appid string) []string {
	return d.current().tenantsOf[platformAccount{componentAppID, appid}]
}

var _ UsageTenants = (*Directory)(nil)

// ComponentOf returns the platform (component appid) the tenant belongs to
// and whether the tenant exists.
func (d *Directory) ComponentOf(tenantID string) (string, bool) {
	t, ok := d.current().tenants[tenantID]
	return t.componentAppID, ok
}

// TenantName returns the tenant's name and whether the tenant exists.
func (d *Directory) TenantName(tenantID string) (string, bool) {
	t, ok := d.current().tenants[tenantID]
	return t.name, ok
}

// TenantExists reports whether the tenant exists.
func (d *Directory) TenantExists(tenantID string) bool {
	_, ok := d.current().tenants[tenantID]
	return ok
}

// ReturnURLHosts returns the hosts the tenant's authorizations may send
// the browser back to (empty: any host) and whether the tenant exists.
// The caller must not modify the slice.
func (d *Directory) ReturnURLHosts(tenantID string) ([]string, bool) {
	t, ok := d.current().tenants[tenantID]
	return t.returnHosts, ok
}

// TenantRate returns the tenant's rate-limit override (0 means the
// configured default) and whether the tenant exists.
func (d *Directory) TenantRate(tenantID string) (limit float64, burst int, ok bool) {
	t, ok := d.current().tenants[tenantID]
	return t.rateLimit, t.rateBurst, ok
}
