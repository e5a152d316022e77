// Package lease is the one way replicas take turns on a job that must run
// once across the deployment: renewing the component token, refreshing an
// account's token, exchanging a one-time authorization code.
//
// The protocol (docs/architecture.md, "Leases"):
//
//  1. Detach: the job runs for every caller that needs its result, so it
//     runs in a context detached from the caller that started it, bounded
//     by the lease and by the owner's Run.
//  2. Take the named lease for a TTL (see TTL). Whoever does not get it
//     waits (Wait) for the holder's result to appear in the store.
//  3. The holder re-reads the store under the lease (another replica may
//     have just finished), calls WeChat and writes with compare-and-swap;
//     those steps are the caller's own.
//  4. Release the lease; a failed release is logged, and the lease then
//     runs out at its TTL.
//
// A lease is exclusive only while the holder's work ends before its TTL:
// callers bound their work by the TTL (the context Detach returns, narrowed
// to the TTL), and replicas' clocks are assumed to agree to well within it,
// because the store compares each replica's own clock with the stored
// expiry.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
)

// Store is the lease table (the store implements it).
type Store interface {
	// TryLease takes the named lease for owner until ttl from now if it is
	// free, expired, or already owner's, and reports whether owner holds it.
	TryLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if owner holds it.
	ReleaseLease(ctx context.Context, name, owner string) error
}

// Timing of every lease.
const (
	// DefaultTTL is the longest a lease is taken for: long enough for one
	// WeChat call with its retries, short enough that the job resumes soon
	// after its holder dies.
	DefaultTTL = 30 * time.Second
	// MinTTL is the shortest lease, whatever the lifetime it protects.
	MinTTL = 5 * time.Second
	// MaxWait bounds how long a caller that did not get a lease waits for
	// the holder's result. A live holder normally finishes within a second
	// (one WeChat call); a dead holder's lease lasts up to DefaultTTL, and
	// waiting that long would hold an API caller past its own timeout.
	// After MaxWait the caller answers "try again": by then either the
	// holder has finished or its lease is nearer to running out, and the
	// next call takes it over.
	MaxWait = 10 * time.Second
	// PollInterval is how often a waiter reads the store.
	PollInterval = 50 * time.Millisecond
)

// TTL is the lease rule: a job that renews something with the given
// lifetime holds its lease for ceiling, but at most an eighth of the
// lifetime, and never less than MinTTL. With WeChat's 7200 s tokens (and
// the 600 s authorization codes) that is ceiling; with a short lifetime (a
// simulator, a test) a dead holder's lease still runs out long before what
// it was renewing expires, as it does with 7200 s. A lifetime of zero or
// less means unknown: ceiling.
func TTL(ceiling, lifetime time.Duration) time.Duration {
	if lifetime <= 0 {
		return ceiling
	}
	return min(ceiling, max(lifetime/8, MinTTL))
}

// ErrStillHeld is answered by Wait when MaxWait passed and the holder's
// result is still not there.
var ErrStillHeld = errors.New("lease: still held by another owner")

// Leases takes and releases named leases for one owner, and runs the
// waits of the callers that did not get one.
type Leases struct {
	store Store
	owner string
	now   func() time.Time
	log   *slog.Logger
	// running is the owner's Run context, once Run started: detached jobs
	// end when the replica stops.
	running atomic.Pointer[context.Context]
}

// New builds Leases for owner (unique per process) over store; now is the
// clock Wait measures MaxWait with, log receives failed releases. All are
// required.
func New(store Store, owner string, now func() time.Time, log *slog.Logger) *Leases {
	return &Leases{store: store, owner: owner, now: now, log: log}
}

// Owner is the name this replica holds leases under.
func (l *Leases) Owner() string { return l.owner }

// Attempt returns Leases owned by one attempt of this owner, for a job two
// callers of the same replica must not run at once either (the browser
// callback and the event that carry one authorization code). Its running
// context is this one's at the time of the call.
func (l *Leases) Attempt() *Leases {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	a := New(l.store, l.owner+"/"+hex.EncodeToString(b), l.now, l.log)
	a.running.Store(l.running.Load())
	return a
}

// Bind ends every context Detach returns, from now on, when run ends. The
// owner's Run calls it with its own context.
func (l *Leases) Bind(run context.Context) { l.running.Store(&run) }

// Detach returns a context for a job several callers share: it keeps ctx's
// values but not its cancellation (one caller giving up must not abort the
// job the others wait for), and ends after d or when the bound Run ends.
func (l *Leases) Detach(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	if run := l.running.Load(); run != nil {
		stop := context.AfterFunc(*run, cancel)
		return ctx, func() { stop(); cancel() }
	}
	return ctx, cancel
}

// Lease is a lease this owner holds.
type Lease struct {
	l    *Leases
	name string
}

// Take tries to take the named lease for ttl. It answers nil (and no
// error) when another owner holds it.
func (l *Leases) Take(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	got, err := l.store.TryLease(ctx, name, l.owner, ttl)
	if err != nil {
		return nil, err
	}
	if !got {
		return nil, nil
	}
	return &Lease{l: l, name: name}, nil
}

// Release gives the lease up, also when ctx has ended (the job is over
// either way). A failure is logged: the lease then runs out at its TTL,
// and until then nobody else does the job.
func (h *Lease) Release(ctx context.Context) {
	if err := h.l.store.ReleaseLease(context.WithoutCancel(ctx), h.name, h.l.owner); err != nil {
		h.l.log.WarnContext(ctx, "lease: release failed; the lease runs out at its TTL", "lease", h.name, "err", err.Error())
	}
}

// Wait polls done every PollInterval until it reports true, for at most
// MaxWait by the clock. It answers nil once done, done's error, an
// upstream_timeout error saying what was awaited if ctx ends first, and
// ErrStillHeld when MaxWait passed.
func (l *Leases) Wait(ctx context.Context, what string, done func(context.Context) (bool, error)) error {
	deadline := l.now().Add(MaxWait)
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for l.now().Before(deadline) {
		select {
		case <-ctx.Done():
			return errs.Wrap(errs.UpstreamTimeout, "timed out waiting for "+what, ctx.Err())
		case <-t.C:
		}
		ok, err := done(ctx)
		if err != nil || ok {
			return err
		}
	}
	return ErrStillHeld
}
