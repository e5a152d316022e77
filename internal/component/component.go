// Package component is the third-party platform itself: the
// component_verify_ticket WeChat pushes, the component_access_token obtained
// from it (kept in the store and refreshed once across all replicas), and
// the authorization flow that turns a tenant's request into a bound
// authorizer (pre_auth_code, the browser callback and the authorized /
// updateauthorized / unauthorized events).
package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/lease"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wechat"
)

// TokenStore is the persistence the component token needs.
type TokenStore interface {
	GetComponentState(ctx context.Context, appid string) (store.ComponentState, error)
	SaveTicket(ctx context.Context, appid string, ticket secret.Value, createdAt, receivedAt time.Time) (bool, error)
	SwapComponentToken(ctx context.Context, appid string, expectVersion int64, token secret.Value, refreshedAt, expiresAt time.Time) (store.ComponentState, error)
	lease.Store
}

var _ TokenStore = (*store.Store)(nil)

// TokenAPI is the WeChat call the component token needs.
type TokenAPI interface {
	GetComponentToken(ctx context.Context, ticket secret.Value) (wechat.ComponentToken, error)
}

var _ TokenAPI = (*wechat.Client)(nil)

// Tuning of the component token.
const (
	// refreshAt is the fraction of the token's lifetime after which it is
	// renewed (7200 s tokens: after 90 minutes, 30 minutes before expiry).
	refreshAt = 0.75
	// defaultLifetime is assumed when a stored token's lifetime is unknown.
	defaultLifetime = 7200 * time.Second
	// fetchOnTicketTimeout bounds the token fetch a new ticket triggers
	// inside the event handler (WeChat wants its answer within 5 s).
	fetchOnTicketTimeout = 3 * time.Second
)

// CredentialOptions configure Credentials.
type CredentialOptions struct {
	AppID   string
	Store   TokenStore
	WeChat  TokenAPI
	Owner   string // this replica's lease owner id
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *obs.Metrics
	// PollInterval is how often Run reloads the stored state and renews a
	// due token (default 2 s).
	PollInterval time.Duration
}

// Credentials keeps the component_access_token: in memory for the hot path, in
// the store for every replica, renewed at 75% of its lifetime by whichever
// replica takes the "component-token" lease first.
type Credentials struct {
	o      CredentialOptions
	log    *slog.Logger
	sf     singleflight.Group
	leases *lease.Leases

	mu  sync.Mutex
	cur store.ComponentState // last state seen (token may be empty)
	// refused remembers WeChat refusing the ticket received at
	// refusedTicket (61005/61006): it is not tried again; the next ticket is.
	refused       error
	refusedTicket time.Time

	// started is when this replica began waiting for tickets: with none
	// stored yet, the ticket-age metric counts from here.
	started time.Time
	// warnedNoTicket: the missing first ticket was logged (once).
	warnedNoTicket bool
}

// NewCredentials builds Credentials; call Load or Tick before the first Token.
func NewCredentials(o CredentialOptions) *Credentials {
	withDefaults(&o.Now, &o.Logger)
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	return &Credentials{o: o, log: o.Logger, started: o.Now(),
		leases: lease.New(o.Store, o.Owner, o.Now, o.Logger)}
}

// withDefaults fills in the clock (time.Now) and the logger (discarding)
// of options that left them unset.
func withDefaults(now *func() time.Time, log **slog.Logger) {
	if *now == nil {
		*now = time.Now
	}
	if *log == nil {
		*log = slog.New(slog.DiscardHandler)
	}
}

// Status is what GET /admin/component shows.
type Status struct {
	ComponentAppID   string
	TicketReceivedAt *time.Time
	TokenExpiresAt   *time.Time
}

// ErrNoTicket is the component_not_ready error before the first ticket.
var ErrNoTicket = errs.E(errs.ComponentNotReady, "no component_verify_ticket received yet; WeChat pushes one every 10 minutes")

func (t *Credentials) leaseName() string { return "component-token:" + t.o.AppID }

// Load reads the stored state into memory (nothing is stored before the
// first ticket: that is not an error).
func (t *Credentials) Load(ctx context.Context) error {
	if _, err := t.load(ctx); err != nil && !errs.Is(err, errs.NotFound) {
		return fmt.Errorf("component: load: %w", err)
	}
	return nil
}

// load reads the stored state into memory.
func (t *Credentials) load(ctx context.Context) (store.ComponentState, error) {
	st, err := t.o.Store.GetComponentState(ctx, t.o.AppID)
	if err != nil {
		return store.ComponentState{}, err
	}
	t.mu.Lock()
	if st.Version >= t.cur.Version {
		t.cur = st
	}
	st = t.cur
	t.mu.Unlock()
	return st, nil
}

func (t *Credentials) cached() store.ComponentState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur
}

func lifetime(st store.ComponentState) time.Duration {
	if !st.TokenRefreshedAt.IsZero() && st.TokenExpiresAt.After(st.TokenRefreshedAt) {
		return st.TokenExpiresAt.Sub(st.TokenRefreshedAt)
	}
	return defaultLifetime
}

// usable reports whether st holds a token that has not expired; a small
// margin keeps a token that expires during the call from being sent.
func usable(st store.ComponentState, now time.Time) bool {
	margin := lifetime(st) / 100
	return !st.Token.IsZero() && now.Add(margin).Before(st.TokenExpiresAt)
}

// due reports whether st's token should be renewed now.
func due(st store.ComponentState, now time.Time) bool {
	if st.Token.IsZero() {
		return true
	}
	at := st.TokenExpiresAt.Add(-time.Duration(float64(lifetime(st)) * (1 - refreshAt)))
	return !now.Before(at)
}

// Token returns a valid component_access_token. In the steady state it
// answers from memory; without a usable token it fetches one (once across
// replicas). Errors: component_not_ready (no ticket yet, or WeChat answered
// 61005/61006 for it), upstream_* when WeChat cannot be reached.
func (t *Credentials) Token(ctx context.Context) (secret.Value, error) {
	if st := t.cached(); usable(st, t.o.Now()) {
		return st.Token, nil
	}
	st, err := t.refresh(ctx, "")
	if err != nil {
		return "", err
	}
	return st.Token, nil
}

// Invalidate is called when WeChat refused failed (40001/40014/42001): it
// fetches a new token unless failed is no longer the current one, and
// returns the token to retry with.
func (t *Credentials) Invalidate(ctx context.Context, failed secret.Value) (secret.Value, error) {
	st, err := t.refresh(ctx, failed)
	if err != nil {
		return "", err
	}
	return st.Token, nil
}

// HandleTicket stores a component_verify_ticket that WeChat created at
// createdAt (its push's CreateTime) unless a ticket created later is
// stored already (a late or replayed push never replaces a newer ticket),
// and, when there is no usable token (first start, or WeChat refused the
// previous ticket), fetches one with it. A failed fetch is logged, not
// returned: the ticket is stored and the next call or ticket retries.
func (t *Credentials) HandleTicket(ctx context.Context, ticket secret.Value, createdAt time.Time) error {
	if ticket.IsZero() {
		return errs.E(errs.InvalidArgument, "empty component_verify_ticket")
	}
	receivedAt := t.o.Now()
	stored, err := t.o.Store.SaveTicket(ctx, t.o.AppID, ticket, createdAt, receivedAt)
	if err != nil {
		return fmt.Errorf("component: save ticket: %w", err)
	}
	if !stored {
		t.log.InfoContext(ctx, "component: a ticket created before the stored one; kept the stored one", "created_at", createdAt)
	}
	if t.o.Metrics != nil && stored {
		t.o.Metrics.TicketAge.Set(t.o.Now().Sub(receivedAt).Seconds())
	}
	st, err := t.load(ctx)
	if err != nil {
		return fmt.Errorf("component: load state: %w", err)
	}
	if stored && !usable(st, t.o.Now()) {
		fctx, cancel := context.WithTimeout(ctx, fetchOnTicketTimeout)
		defer cancel()
		if _, err := t.refresh(fctx, ""); err != nil {
			t.log.WarnContext(ctx, "component: token fetch after a new ticket failed; will retry", "err", err.Error())
		}
	}
	return nil
}

// refresh brings the token up to date: it returns the stored token when it
// is usable, not due and not failed, and otherwise fetches a new one under
// the cross-replica lease. Concurrent callers in this process share one
// flight.
func (t *Credentials) refresh(ctx context.Context, failed secret.Value) (store.ComponentState, error) {
	ch := t.sf.DoChan("token", func() (any, error) {
		return t.refreshOnce(ctx, failed)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return store.ComponentState{}, r.Err
		}
		st := r.Val.(store.ComponentState)
		if !failed.IsZero() && st.Token == failed && r.Shared {
			// We joined a flight that did not know our token failed.
			v, err := t.refreshOnce(ctx, failed)
			if err != nil {
				return store.ComponentState{}, err
			}
			return v, nil
		}
		return st, nil
	case <-ctx.Done():
		return store.ComponentState{}, errs.Wrap(errs.UpstreamTimeout, "timed out waiting for the component token", ctx.Err())
	}
}

// good reports whether st can be used as is.
func good(st store.ComponentState, failed secret.Value, now time.Time) bool {
	return usable(st, now) && !due(st, now) && (failed.IsZero() || st.Token != failed)
}

// refreshOnce is one flight of the lease protocol (package lease): under
// the "component-token" lease it re-reads the state, asks WeChat and
// stores the token with compare-and-swap; without the lease it waits for
// the holder's token.
func (t *Credentials) refreshOnce(ctx context.Context, failed secret.Value) (store.ComponentState, error) {
	// Others may have joined the flight: it outlives this caller.
	ctx, cancel := t.leases.Detach(ctx, lease.DefaultTTL)
	defer cancel()
	st, err := t.load(ctx)
	if errs.Is(err, errs.NotFound) {
		return store.ComponentState{}, ErrNoTicket
	}
	if err != nil {
		return store.ComponentState{}, err
	}
	if good(st, failed, t.o.Now()) {
		return st, nil
	}
	if st.Ticket.IsZero() {
		return store.ComponentState{}, ErrNoTicket
	}
	if err := t.refusedFor(st); err != nil {
		if usable(st, t.o.Now()) && (failed.IsZero() || st.Token != failed) {
			return st, nil
		}
		return store.ComponentState{}, err
	}
	// The flight ends before the lease it takes runs out.
	ttl := lease.TTL(lease.DefaultTTL, lifetime(st))
	ctx, cancelLease := context.WithTimeout(ctx, ttl)
	defer cancelLease()
	held, err := t.leases.Take(ctx, t.leaseName(), ttl)
	if err != nil {
		return store.ComponentState{}, err
	}
	if held == nil {
		return t.waitForOther(ctx, st, failed)
	}
	defer held.Release(ctx)
	// Re-read under the lease: another replica may have just finished.
	if st, err = t.load(ctx); err != nil {
		return store.ComponentState{}, err
	}
	if good(st, failed, t.o.Now()) {
		return st, nil
	}
	// The new token's life starts no later than when WeChat was asked: its
	// expiry counts from there, never later than WeChat's own.
	asked := t.o.Now()
	tok, err := t.o.WeChat.GetComponentToken(ctx, st.Ticket)
	if err != nil {
		t.count("error")
		if errs.Is(err, errs.ComponentNotReady) {
			t.log.ErrorContext(ctx, "component: WeChat refused the stored component_verify_ticket; waiting for the next push",
				"wechat_errcode", wechat.ErrcodeOf(err))
			t.mu.Lock()
			t.refused, t.refusedTicket = err, st.TicketReceivedAt
			t.mu.Unlock()
		}
		if usable(st, t.o.Now()) && (failed.IsZero() || st.Token != failed) {
			return st, nil // the old token still works; Run retries
		}
		return store.ComponentState{}, err
	}
	for range 3 {
		saved, err := t.o.Store.SwapComponentToken(ctx, t.o.AppID, st.Version, tok.Token, asked, asked.Add(tok.ExpiresIn))
		if err == nil {
			t.mu.Lock()
			t.cur = saved
			t.mu.Unlock()
			t.count("ok")
			t.log.InfoContext(ctx, "component: token refreshed", "expires_in_s", int(tok.ExpiresIn.Seconds()))
			return saved, nil
		}
		if !errs.Is(err, errs.Conflict) {
			t.count("error")
			// WeChat issued the token: keep using it from memory.
			t.mu.Lock()
			t.cur.Token, t.cur.TokenRefreshedAt, t.cur.TokenExpiresAt = tok.Token, asked, asked.Add(tok.ExpiresIn)
			mem := t.cur
			t.mu.Unlock()
			t.log.ErrorContext(ctx, "component: storing the new token failed; serving it from memory", "err", err.Error())
			return mem, nil
		}
		prev := st
		if st, err = t.load(ctx); err != nil {
			return store.ComponentState{}, err
		}
		if st.Token != prev.Token {
			return st, nil // another replica stored a newer one
		}
	}
	return st, nil
}

// refusedFor returns WeChat's refusal if st's ticket is the one WeChat
// already refused.
func (t *Credentials) refusedFor(st store.ComponentState) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refused != nil && st.TicketReceivedAt.Equal(t.refusedTicket) {
		return t.refused
	}
	return nil
}

// waitForOther waits for the replica holding the lease to store its token.
// A usable token (not the failed one) is returned at once.
func (t *Credentials) waitForOther(ctx context.Context, st store.ComponentState, failed secret.Value) (store.ComponentState, error) {
	if usable(st, t.o.Now()) && (failed.IsZero() || st.Token != failed) {
		return st, nil
	}
	var cur store.ComponentState
	err := t.leases.Wait(ctx, "the component token", func(ctx context.Context) (bool, error) {
		var err error
		if cur, err = t.load(ctx); err != nil {
			return false, err
		}
		return cur.Version != st.Version && usable(cur, t.o.Now()) && (failed.IsZero() || cur.Token != failed), nil
	})
	if errors.Is(err, lease.ErrStillHeld) {
		return store.ComponentState{}, errs.E(errs.ComponentNotReady, "the component token is being refreshed by another replica; try again")
	}
	if err != nil {
		return store.ComponentState{}, err
	}
	return cur, nil
}

func (t *Credentials) count(result string) {
	if t.o.Metrics != nil {
		t.o.Metrics.TokenRefreshes.WithLabelValues("component", result).Inc()
	}
}

// Status returns the ticket's arrival and the token's expiry.
func (t *Credentials) Status(ctx context.Context) (Status, error) {
	s := Status{ComponentAppID: t.o.AppID}
	st, err := t.load(ctx)
	if errs.Is(err, errs.NotFound) {
		return s, nil
	}
	if err != nil {
		return Status{}, err
	}
	if !st.TicketReceivedAt.IsZero() {
		at := st.TicketReceivedAt
		s.TicketReceivedAt = &at
	}
	if !st.TokenExpiresAt.IsZero() && !st.Token.IsZero() {
		at := st.TokenExpiresAt
		s.TokenExpiresAt = &at
	}
	return s, nil
}

// NoTicketWarning is how long a replica waits for its first
// component_verify_ticket before it logs (once) and /readyz says that none
// arrived: WeChat pushes one every 10 minutes, and right away once the
// authorization event URL is saved on the Open Platform.
const NoTicketWarning = time.Minute

// TicketWait reports how long this replica has waited without any ticket
// stored; ok is false once a ticket exists.
func (t *Credentials) TicketWait() (waited time.Duration, ok bool) {
	if !t.cached().TicketReceivedAt.IsZero() {
		return 0, false
	}
	return t.o.Now().Sub(t.started), true
}

// Tick reloads the stored state, updates the ticket-age metric and renews
// the token when it is due. Run calls it every PollInterval; tests call it
// after moving their clock.
func (t *Credentials) Tick(ctx context.Context) error {
	st, err := t.load(ctx)
	if err != nil && !errs.Is(err, errs.NotFound) {
		// The store is unreachable: the ticket is not getting younger, so
		// keep the age moving from what this replica last saw.
		st = t.cached()
	}
	now := t.o.Now()
	if t.o.Metrics != nil {
		// Without any ticket the age is at least the time this replica has
		// waited, so an alert on the age fires when pushes never start.
		since := t.started
		if !st.TicketReceivedAt.IsZero() {
			since = st.TicketReceivedAt
		}
		t.o.Metrics.TicketAge.Set(now.Sub(since).Seconds())
	}
	if st.TicketReceivedAt.IsZero() && now.Sub(t.started) >= NoTicketWarning && !t.warnedNoTicket {
		t.warnedNoTicket = true
		t.log.WarnContext(ctx, "component: no component_verify_ticket has arrived yet",
			"waited", now.Sub(t.started).Round(time.Second).String(),
			"hint", "WeChat pushes tickets to the authorization event URL (PUBLIC_URL/wechat/events) set on the Open Platform; outside production, start `wxgate sim` with --event-url pointing here")
	}
	if errs.Is(err, errs.NotFound) {
		return nil // no component state yet
	}
	if err != nil {
		return err
	}
	if st.Ticket.IsZero() || !due(st, now) {
		return nil
	}
	_, err = t.refresh(ctx, "")
	return err
}

// Run renews the token in the background until ctx ends; it returns nil on
// cancellation.
func (t *Credentials) Run(ctx context.Context) error {
	t.leases.Bind(ctx)
	tick := time.NewTicker(t.o.PollInterval)
	defer tick.Stop()
	failures := 0
	for {
		if err := t.Tick(ctx); err != nil && ctx.Err() == nil {
			failures++
			if failures == 1 || failures%30 == 0 {
				t.log.WarnContext(ctx, "component: token upkeep failed", "err", err.Error(), "failures", failures)
			}
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// withToken runs fn with the component token and, when WeChat refuses the
// token (40001/40014/42001), once more with a fresh one.
func (t *Credentials) withToken(ctx context.Context, fn func(secret.Value) error) error {
	tok, err := t.Token(ctx)
	if err != nil {
		return err
	}
	err = fn(tok)
	if !wechat.IsTokenError(wechat.ErrcodeOf(err)) {
		return err
	}
	if tok, err = t.Invalidate(ctx, tok); err != nil {
		return err
	}
	return fn(tok)
}

// WithToken is withToken for other packages (the authorizer token manager).
func (t *Credentials) WithToken(ctx context.Context, fn func(secret.Value) error) error {
	return t.withToken(ctx, fn)
}
