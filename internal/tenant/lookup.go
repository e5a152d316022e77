package tenant

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
)

// Read your writes on every replica (docs/architecture.md, "Tenant
// directory"): a validly signed key, or a binding, that this replica's
// snapshot does not know may have been written through another replica a
// moment ago. Before refusing it the directory catches up with the store
// once; what is still missing afterwards is remembered as a miss, so the
// same garbage costs no further query.

// DefaultLookupSpacing is the least time between two catch-ups, however
// many unknown keys arrive: a flood of validly signed unknown keys costs at
// most one revision read per spacing, and a real new key waits at most that
// long before its lookup starts.
const DefaultLookupSpacing = 25 * time.Millisecond

// missTTL is how long a miss is remembered; a reload of the snapshot
// forgets every miss at once (the poller reloads within DefaultPollInterval
// of any change).
const missTTL = time.Second

// maxMisses bounds the remembered misses; when full the memory starts over.
const maxMisses = 10_000

// The results of a lookup, for the OnLookup hook (the
// wxgate_directory_lookups_total metric).
const (
	// LookupFound: the catch-up found what the snapshot did not know.
	LookupFound = "found"
	// LookupMissing: the catch-up confirmed it does not exist.
	LookupMissing = "missing"
	// LookupRemembered: a remembered miss answered without the store.
	LookupRemembered = "remembered"
	// LookupUnavailable: the store could not be reached to catch up.
	LookupUnavailable = "unavailable"
)

// lookups coalesces catch-ups: whoever needs one waits for the first
// revision read that starts after it asked, so concurrent misses share a
// read, and reads are at least spacing apart.
type lookups struct {
	spacing time.Duration

	mu        sync.Mutex
	started   uint64 // catch-ups started
	finished  uint64 // catch-ups finished (in order: one runs at a time)
	err       error  // the result of the last finished catch-up
	running   bool
	done      chan struct{} // closed when the running catch-up ends
	lastStart time.Time     // monotonic, for the spacing

	misses map[string]miss
}

// miss is a remembered "no such thing": valid for the snapshot revision it
// was confirmed against, until missTTL after it was.
type miss struct {
	rev int64
	at  time.Time
}

// catchUp returns once a catch-up that began after the call has finished:
// whatever was committed in the store before catchUp was called is then in
// the snapshot. The error is the store's if it could not be read.
func (d *Directory) catchUp(ctx context.Context) error {
	l := &d.lookups
	l.mu.Lock()
	want := l.started + 1
	for {
		if l.finished >= want {
			err := l.err
			l.mu.Unlock()
			return err
		}
		if !l.running {
			l.running = true
			l.started++
			l.done = make(chan struct{})
			wait := l.spacing - time.Since(l.lastStart)
			go d.runCatchUp(wait, l.done)
		}
		done := l.done
		l.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		l.mu.Lock()
	}
}

// runCatchUp waits out the spacing, reads the revision (reloading if it
// moved) on its own context, so a caller that leaves does not fail the
// others, and publishes the result.
func (d *Directory) runCatchUp(wait time.Duration, done chan struct{}) {
	if wait > 0 {
		t := time.NewTimer(wait)
		<-t.C
	}
	l := &d.lookups
	l.mu.Lock()
	l.lastStart = time.Now()
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	err := d.refresh(ctx)
	cancel()
	l.mu.Lock()
	l.finished++
	l.err = err
	l.running = false
	l.mu.Unlock()
	close(done)
}

// lookupTimeout bounds one catch-up: a store that does not answer by then
// is unavailable for this request.
const lookupTimeout = 2 * time.Second

// remembered reports whether name was confirmed missing against the
// snapshot in use less than missTTL ago.
func (d *Directory) remembered(name string) bool {
	rev := d.Rev()
	l := &d.lookups
	l.mu.Lock()
	m, ok := l.misses[name]
	l.mu.Unlock()
	return ok && m.rev == rev && time.Since(m.at) < missTTL
}

// remember records that name is missing from the snapshot at rev.
func (d *Directory) remember(name string, rev int64) {
	l := &d.lookups
	l.mu.Lock()
	if len(l.misses) >= maxMisses {
		clear(l.misses)
	}
	l.misses[name] = miss{rev: rev, at: time.Now()}
	l.mu.Unlock()
}

func (d *Directory) noteLookup(result string) {
	if d.onLookup != nil {
		d.onLookup(result)
	}
}

// errLookupUnavailable answers a lookup the store could not serve.
func errLookupUnavailable(cause error) error {
	return errs.Wrap(errs.StoreUnavailable, "the gateway cannot reach its store; retry later", cause).WithRetryAfter(storeRetryAfter)
}

// lookup decides whether something the snapshot does not know exists after
// all: known(s) is asked of the snapshot after a catch-up. With useMisses,
// misses are remembered and a remembered one answers false without the
// store; without it (bindings: one asked about before it was made through
// another replica must be found at once when asked again) every miss
// catches up. A store that cannot be reached answers store_unavailable.
func (d *Directory) lookup(ctx context.Context, name string, useMisses bool, known func(*snapshot) bool) (bool, error) {
	if useMisses && d.remembered(name) {
		d.noteLookup(LookupRemembered)
		return false, nil
	}
	if err := d.catchUp(ctx); err != nil {
		d.noteLookup(LookupUnavailable)
		return false, errLookupUnavailable(err)
	}
	s := d.current()
	if known(s) {
		d.noteLookup(LookupFound)
		return true, nil
	}
	if useMisses {
		d.remember(name, s.rev)
	}
	d.noteLookup(LookupMissing)
	return false, nil
}

// Authorize reports whether tenantID may see and call appid, like Bound,
// but a binding the snapshot does not know is looked up in the store
// before the answer is no (it may have been made through another replica
// a moment ago). Errors: store_unavailable when the store is needed and
// cannot be reached, or the directory is past its staleness limit.
func (d *Directory) Authorize(ctx context.Context, tenantID, appid string) (bool, error) {
	if err := d.CheckFresh(); err != nil {
		return false, err
	}
	if d.Bound(tenantID, appid) {
		return true, nil
	}
	// Binding misses are not remembered: "call, not found, the operator
	// binds on another replica, call again" is an ordinary sequence, and
	// the coalesced, spaced catch-ups already bound what unknown appids
	// cost (one revision read per LookupSpacing).
	return d.lookup(ctx, "b\x00"+tenantID+"\x00"+appid, false, func(s *snapshot) bool {
		_, ok := slices.BinarySearch(s.bound[tenantID], appid)
		return ok
	})
}

// Recheck answers, from memory, whether a principal authenticated earlier
// may still call appid: a running export asks before each page, so a key
// revoked, a tenant deleted or an account unbound on any replica ends it
// within the poll interval. Errors: unauthenticated (the key was revoked,
// expired or deleted, or its tenant was), not_found (the account is no
// longer bound), store_unavailable (the directory is past its staleness
// limit).
func (d *Directory) Recheck(p Principal, appid string) error {
	if err := d.CheckFresh(); err != nil {
		return err
	}
	s := d.current()
	k, ok := s.keys[p.KID]
	switch {
	case !ok:
		return Refuse(ReasonUnknownKey)
	case k.revoked:
		return Refuse(ReasonRevoked)
	case k.tenantID != p.TenantID:
		return Refuse(ReasonClaimsMismatch)
	}
	if _, ok := s.tenants[p.TenantID]; !ok {
		return Refuse(ReasonUnknownTenant)
	}
	if !k.expiresAt.IsZero() && d.now().After(k.expiresAt.Add(Leeway)) {
		return Refuse(ReasonExpired)
	}
	if _, ok := slices.BinarySearch(s.bound[p.TenantID], appid); !ok {
		return errs.E(errs.NotFound, "authorizer not found")
	}
	return nil
}

// CatchUp brings the snapshot up to what the store held when it was called
// (one coalesced revision read): for the reads that must see writes made
// through another replica a moment ago but are not on the hot path, such
// as a tenant's account listing. Errors: store_unavailable.
func (d *Directory) CatchUp(ctx context.Context) error {
	if err := d.CheckFresh(); err != nil {
		return err
	}
	if err := d.catchUp(ctx); err != nil {
		return errLookupUnavailable(err)
	}
	return nil
}
