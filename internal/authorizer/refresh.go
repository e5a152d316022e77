package authorizer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/lease"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wechat"
)

// mode says why a refresh was asked for.
type mode int

const (
	// modeDue: the background refresher; refresh only if due, skip if
	// another replica holds the lease.
	modeDue mode = iota
	// modeExpired: a caller found the token expired.
	modeExpired
	// modeIfCurrent: WeChat refused a token; refresh only if it is still
	// the current one.
	modeIfCurrent
	// modeForce: the admin asked for a refresh.
	modeForce
)

func (md mode) String() string {
	return [...]string{"due", "expired", "token_error", "forced"}[md]
}

// done reports whether a (the result of some flight) satisfies a request
// of mode md made when the cached version was before.
func (md mode) done(a store.Authorizer, failed secret.Value, before int64) bool {
	switch md {
	case modeIfCurrent:
		return a.AccessToken != failed
	case modeForce:
		return a.Version > before
	}
	return true
}

// refresh runs one refresh flight per account in this process. A caller
// that joined a flight started for a weaker reason (a due check that found
// nothing to do) runs its own flight after it.
func (m *Manager) refresh(ctx context.Context, appid string, md mode, failed secret.Value) (store.Authorizer, error) {
	var before int64
	if a, ok := m.Get(appid); ok {
		before = a.Version
	}
	for attempt := 0; ; attempt++ {
		ch := m.sf.DoChan(appid, func() (any, error) {
			return m.refreshOnce(ctx, appid, md, failed)
		})
		var r singleflightResult
		select {
		case res := <-ch:
			r = singleflightResult{res.Val, res.Err, res.Shared}
		case <-ctx.Done():
			return store.Authorizer{}, errs.Wrap(errs.UpstreamTimeout, "timed out waiting for the account's token refresh", ctx.Err())
		}
		if r.err != nil {
			return store.Authorizer{}, r.err
		}
		a := r.val.(store.Authorizer)
		if !r.shared || attempt > 0 || md.done(a, failed, before) {
			if md != modeDue {
				if err := statusErr(a); err != nil {
					return store.Authorizer{}, err
				}
			}
			return a, nil
		}
	}
}

type singleflightResult struct {
	val    any
	err    error
	shared bool
}

// leaseTTL is how long a refresh of a holds the account's lease (the
// rule of lease.TTL, with LeaseTTL as the ceiling).
func (m *Manager) leaseTTL(a store.Authorizer) time.Duration {
	return lease.TTL(m.o.LeaseTTL, lifetime(a))
}

func (m *Manager) leaseName(appid string) string {
	return "authorizer:" + m.o.ComponentAppID + ":" + appid
}

// current returns the account's cached state, reading it from the store if
// this replica has not seen it.
func (m *Manager) current(ctx context.Context, appid string) (*entry, *state, error) {
	if e := m.entry(appid); e != nil {
		if s := e.cur.Load(); s != nil {
			return e, s, nil
		}
	}
	a, err := m.o.Store.GetAuthorizer(ctx, m.o.ComponentAppID, appid)
	if err != nil {
		return nil, nil, err
	}
	m.Apply(a)
	e := m.entry(appid)
	return e, e.cur.Load(), nil
}

// needed reports whether st calls for a refresh under md.
func needed(st *state, md mode, failed secret.Value, now time.Time) bool {
	a := st.a
	switch md {
	case modeDue:
		return st.unsaved || isDue(a, now)
	case modeExpired:
		return a.AccessToken.IsZero() || !now.Before(a.TokenExpiresAt)
	case modeIfCurrent:
		return a.AccessToken == failed
	}
	return true
}

// refreshOnce is one flight of the lease protocol (package lease): under
// the account's lease it re-reads the row, calls WeChat and writes with
// compare-and-swap; without the lease it waits for the holder's refresh.
func (m *Manager) refreshOnce(ctx context.Context, appid string, md mode, failed secret.Value) (store.Authorizer, error) {
	ctx, cancel := m.leases.Detach(ctx, m.o.LeaseTTL)
	defer cancel()
	e, st, err := m.current(ctx, appid)
	if err != nil {
		return store.Authorizer{}, err
	}
	// The flight ends before the lease it takes runs out.
	ttl := m.leaseTTL(st.a)
	ctx, cancelLease := context.WithTimeout(ctx, ttl)
	defer cancelLease()
	if st.a.Status == store.StatusUnauthorized {
		return snapshot(st.a), nil
	}
	if !needed(st, md, failed, m.o.Now()) {
		return snapshot(st.a), nil
	}
	if md == modeDue && st.a.Status == store.StatusAuthorized {
		e.mu.Lock()
		wait := m.o.Now().Before(e.retryAt)
		e.mu.Unlock()
		if wait {
			return snapshot(st.a), nil
		}
	}
	held, err := m.leases.Take(ctx, m.leaseName(appid), ttl)
	if err != nil {
		return snapshot(st.a), err
	}
	if held == nil {
		if md == modeDue {
			return snapshot(st.a), nil // another replica is on it
		}
		return m.waitForOther(ctx, appid, st, md, failed)
	}
	defer held.Release(ctx)
	// Under the lease, the store is the truth: another replica may have
	// refreshed a moment ago.
	stored, err := m.o.Store.GetAuthorizer(ctx, m.o.ComponentAppID, appid)
	if err != nil {
		return snapshot(st.a), err
	}
	m.Apply(stored)
	st = e.cur.Load()
	if st.unsaved && stored.Version == st.a.Version {
		// Our last token was never stored: store it now instead of asking
		// WeChat for another one.
		return m.store(ctx, e, stored, st.a, "retry_write")
	}
	switch stored.Status {
	case store.StatusUnauthorized:
		return snapshot(stored), nil
	case store.StatusNeedsReauthorization:
		if md == modeDue {
			return snapshot(stored), nil // Tick schedules recovery separately
		}
		return m.recover(ctx, e, stored, stored.RefreshToken)
	}
	if !needed(&state{a: stored}, md, failed, m.o.Now()) {
		return snapshot(stored), nil
	}
	return m.renew(ctx, e, stored, md)
}

// renew calls api_authorizer_token with the stored refresh token and
// stores the answer; the caller holds the lease.
func (m *Manager) renew(ctx context.Context, e *entry, base store.Authorizer, md mode) (store.Authorizer, error) {
	var tok wechat.AuthorizerToken
	// The new token's life starts no later than when WeChat was asked: its
	// expiry counts from there, never later than WeChat's own.
	asked := m.o.Now().UTC()
	err := m.o.Component.WithToken(ctx, func(ct secret.Value) error {
		var err error
		tok, err = m.o.WeChat.RefreshAuthorizerToken(ctx, ct, base.AppID, base.RefreshToken)
		return err
	})
	switch code := wechat.ErrcodeOf(err); {
	case err == nil:
	case code == wechat.ErrRefreshTokenInvalid:
		m.count("refresh_token_invalid")
		m.log.WarnContext(ctx, "authorizer: WeChat refused the refresh token (61023); trying to recover it", "appid", base.AppID)
		return m.recover(ctx, e, base, base.RefreshToken)
	case code == wechat.ErrComponentUnauthorized:
		m.count("unauthorized")
		return m.markUnauthorized(ctx, base)
	default:
		m.count("error")
		life := lifetime(base)
		e.mu.Lock()
		e.failures++
		n := e.failures
		e.retryAt = m.o.Now().Add(retryDelay(life, n))
		e.mu.Unlock()
		m.log.WarnContext(ctx, "authorizer: refresh failed; the current token keeps serving", "appid", base.AppID,
			"reason", md.String(), "failures", n, "expires_in_s", int(base.TokenExpiresAt.Sub(m.o.Now()).Seconds()), "err", err.Error())
		return snapshot(base), err
	}
	next := base
	next.Status = store.StatusAuthorized
	next.AccessToken, next.RefreshToken = tok.AccessToken, tok.RefreshToken
	next.TokenRefreshedAt, next.TokenExpiresAt = asked, asked.Add(tok.ExpiresIn)
	return m.store(ctx, e, base, next, md.String())
}

// store writes next over base with compare-and-swap. On a conflict where
// only non-token fields changed (permission sets, nick name) it retries on
// the new version; if the tokens or status changed, the stored row wins.
// If the write fails for another reason, next is served from memory and
// the write is retried by the next Tick.
func (m *Manager) store(ctx context.Context, e *entry, base, next store.Authorizer, reason string) (store.Authorizer, error) {
	write := func(a *store.Authorizer) error {
		if a.Status == store.StatusUnauthorized {
			return errUnauthorizedMeanwhile
		}
		a.Status = next.Status
		a.AccessToken, a.RefreshToken = next.AccessToken, next.RefreshToken
		a.TokenRefreshedAt, a.TokenExpiresAt = next.TokenRefreshedAt, next.TokenExpiresAt
		return nil
	}
	expect := base.Version
	for range 3 {
		saved, err := m.o.Store.UpdateAuthorizer(ctx, m.o.ComponentAppID, base.AppID, expect, write)
		switch {
		case err == nil:
			m.Apply(saved)
			e.mu.Lock()
			e.failures, e.retryAt = 0, time.Time{}
			e.mu.Unlock()
			m.count("ok")
			m.log.DebugContext(ctx, "authorizer: token refreshed", "appid", base.AppID, "reason", reason,
				"expires_in_s", int(saved.TokenExpiresAt.Sub(m.o.Now()).Seconds()))
			return snapshot(saved), nil
		case errors.Is(err, errUnauthorizedMeanwhile):
			latest, gerr := m.o.Store.GetAuthorizer(ctx, m.o.ComponentAppID, base.AppID)
			if gerr == nil {
				m.Apply(latest)
				return snapshot(latest), nil
			}
			return snapshot(base), gerr
		case errs.Is(err, errs.Conflict):
			latest, gerr := m.o.Store.GetAuthorizer(ctx, m.o.ComponentAppID, base.AppID)
			if gerr != nil {
				err = gerr
				break
			}
			if latest.AccessToken != base.AccessToken || latest.RefreshToken != base.RefreshToken || latest.Status != base.Status {
				m.Apply(latest) // someone else refreshed or re-authorized: theirs wins
				m.count("superseded")
				return snapshot(latest), nil
			}
			base, expect = latest, latest.Version
			continue
		}
		// The store failed after WeChat issued the token: keep it.
		m.count("unsaved")
		mem := next
		mem.Version = base.Version
		e.mu.Lock()
		if cur := e.cur.Load(); cur == nil || cur.a.Version <= base.Version {
			e.cur.Store(&state{a: mem, unsaved: true})
		}
		e.failures++
		e.retryAt = m.o.Now().Add(retryDelay(lifetime(next), e.failures))
		e.mu.Unlock()
		m.log.ErrorContext(ctx, "authorizer: storing a new token failed; serving it from memory and retrying the write",
			"appid", base.AppID, "err", err.Error())
		return snapshot(mem), nil
	}
	latest, err := m.o.Store.GetAuthorizer(ctx, m.o.ComponentAppID, base.AppID)
	if err != nil {
		return snapshot(base), err
	}
	m.Apply(latest)
	return snapshot(latest), nil
}

var errUnauthorizedMeanwhile = errors.New("authorizer: account unauthorized meanwhile")

// recover handles 61023: the account becomes needs_reauthorization, then
// api_get_authorizer_list is searched for a refresh token other than
// failed; if one works, the account resumes. The caller holds the lease.
func (m *Manager) recover(ctx context.Context, e *entry, base store.Authorizer, failed secret.Value) (store.Authorizer, error) {
	if base.Status != store.StatusNeedsReauthorization {
		saved, err := m.o.Store.UpdateAuthorizer(ctx, m.o.ComponentAppID, base.AppID, base.Version, func(a *store.Authorizer) error {
			a.Status = store.StatusNeedsReauthorization
			return nil
		})
		if errs.Is(err, errs.Conflict) {
			latest, gerr := m.o.Store.GetAuthorizer(ctx, m.o.ComponentAppID, base.AppID)
			if gerr != nil {
				return snapshot(base), gerr
			}
			m.Apply(latest) // re-authorized meanwhile (new refresh token): theirs wins
			return snapshot(latest), nil
		}
		if err != nil {
			return snapshot(base), err
		}
		m.Apply(saved)
		base = saved
	}
	refresh, err := m.findRefreshToken(ctx, base.AppID)
	now := m.o.Now()
	life := lifetime(base)
	if err != nil || refresh.IsZero() || refresh == failed {
		e.mu.Lock()
		e.failures++
		e.retryAt = now.Add(max(life/4, retryDelay(life, e.failures)))
		e.mu.Unlock()
		m.count("unrecovered")
		if err != nil {
			m.log.WarnContext(ctx, "authorizer: api_get_authorizer_list failed; the account stays needs_reauthorization", "appid", base.AppID, "err", err.Error())
			return snapshot(base), err
		}
		m.log.WarnContext(ctx, "authorizer: no other refresh token for the account; it must authorize the platform again", "appid", base.AppID)
		return snapshot(base), wechat.AsError(wechat.ErrRefreshTokenInvalid, "")
	}
	var tok wechat.AuthorizerToken
	asked := m.o.Now().UTC() // the token's life starts no later than this
	err = m.o.Component.WithToken(ctx, func(ct secret.Value) error {
		var err error
		tok, err = m.o.WeChat.RefreshAuthorizerToken(ctx, ct, base.AppID, refresh)
		return err
	})
	if err != nil {
		e.mu.Lock()
		e.failures++
		e.retryAt = now.Add(retryDelay(life, e.failures))
		e.mu.Unlock()
		m.count("unrecovered")
		m.log.WarnContext(ctx, "authorizer: the recovered refresh token did not work", "appid", base.AppID, "err", err.Error())
		return snapshot(base), err
	}
	next := base
	next.Status = store.StatusAuthorized
	next.AccessToken, next.RefreshToken = tok.AccessToken, tok.RefreshToken
	next.TokenRefreshedAt, next.TokenExpiresAt = asked, asked.Add(tok.ExpiresIn)
	a, err := m.store(ctx, e, base, next, "recovered")
	if err == nil && a.Status == store.StatusAuthorized {
		m.count("recovered")
		m.log.InfoContext(ctx, "authorizer: refresh token recovered through api_get_authorizer_list; the account resumes", "appid", base.AppID)
	}
	return a, err
}

// findRefreshToken asks api_get_authorizer_list for appid's refresh token.
func (m *Manager) findRefreshToken(ctx context.Context, appid string) (secret.Value, error) {
	var refresh secret.Value
	err := m.o.Component.WithToken(ctx, func(ct secret.Value) error {
		var err error
		refresh, err = m.o.WeChat.FindRefreshToken(ctx, ct, appid)
		return err
	})
	return refresh, err
}

// markUnauthorized records that WeChat says the account no longer
// authorizes the platform (61003), as the unauthorized event would.
func (m *Manager) markUnauthorized(ctx context.Context, base store.Authorizer) (store.Authorizer, error) {
	saved, err := m.o.Store.UpdateAuthorizer(ctx, m.o.ComponentAppID, base.AppID, 0, func(a *store.Authorizer) error {
		a.Status = store.StatusUnauthorized
		a.AccessToken, a.RefreshToken = "", ""
		a.TokenExpiresAt, a.TokenRefreshedAt = time.Time{}, time.Time{}
		return nil
	})
	if err != nil {
		return snapshot(base), err
	}
	m.Apply(saved)
	m.log.WarnContext(ctx, "authorizer: WeChat says the account unauthorized the platform (61003)", "appid", base.AppID)
	return snapshot(saved), nil
}

// waitForOther waits for the replica holding the account's lease to store
// its refresh, and answers the result.
func (m *Manager) waitForOther(ctx context.Context, appid string, st *state, md mode, failed secret.Value) (store.Authorizer, error) {
	var a store.Authorizer
	err := m.leases.Wait(ctx, "the account's token refresh", func(ctx context.Context) (bool, error) {
		var err error
		if a, err = m.o.Store.GetAuthorizer(ctx, m.o.ComponentAppID, appid); err != nil || a.Version == st.a.Version {
			return false, err
		}
		m.Apply(a)
		return !needed(&state{a: a}, md, failed, m.o.Now()) || md == modeForce, nil
	})
	if errors.Is(err, lease.ErrStillHeld) {
		return snapshot(st.a), errs.E(errs.UpstreamUnavailable, "the account's token is being refreshed by another replica; try again")
	}
	if err != nil {
		return snapshot(st.a), err
	}
	return snapshot(a), nil
}

func (m *Manager) count(result string) {
	if m.o.Metrics != nil {
		m.o.Metrics.TokenRefreshes.WithLabelValues("authorizer", result).Inc()
	}
}

// RefreshDue renews every token that is due (and retries pending writes
// and recoveries whose pause is over), at most Concurrency at once, and
// updates SoonestTokenExpiry. Run calls it every TickInterval; tests call
// it after moving their clock. It returns how many accounts it looked at
// closely (refreshed or tried).
func (m *Manager) RefreshDue(ctx context.Context) int {
	now := m.o.Now()
	type job struct {
		appid   string
		recover bool
	}
	var jobs []job
	// soonest is +Inf while no account has a token; it goes negative when a
	// token is past its expiry, which is what the gauge must show.
	soonest, seen := time.Duration(0), false
	m.mu.RLock()
	for appid, e := range m.entries {
		st := e.cur.Load()
		if st == nil {
			continue
		}
		a := st.a
		if a.Status == store.StatusAuthorized && !a.AccessToken.IsZero() {
			if left := a.TokenExpiresAt.Sub(now); !seen || left < soonest {
				soonest, seen = left, true
			}
		}
		switch {
		case st.unsaved, isDue(a, now):
			jobs = append(jobs, job{appid: appid})
		case a.Status == store.StatusNeedsReauthorization:
			e.mu.Lock()
			ready := !now.Before(e.retryAt)
			e.mu.Unlock()
			if ready {
				jobs = append(jobs, job{appid: appid, recover: true})
			}
		}
	}
	m.mu.RUnlock()
	if m.o.Metrics != nil {
		v := math.Inf(1)
		if seen {
			v = soonest.Seconds()
		}
		m.o.Metrics.SoonestTokenExpiry.Set(v)
	}
	if len(jobs) == 0 {
		return 0
	}
	sem := make(chan struct{}, m.o.Concurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var err error
			if j.recover {
				_, err = m.tryRecover(ctx, j.appid)
			} else {
				_, err = m.refresh(ctx, j.appid, modeDue, "")
			}
			if err != nil && ctx.Err() == nil {
				m.log.DebugContext(ctx, "authorizer: scheduled refresh failed", "appid", j.appid, "err", err.Error())
			}
		}()
	}
	wg.Wait()
	return len(jobs)
}

// tryRecover retries the recovery of an account that needs
// re-authorization, under its lease.
func (m *Manager) tryRecover(ctx context.Context, appid string) (store.Authorizer, error) {
	v, err, _ := m.sf.Do(appid, func() (any, error) {
		cached, _ := m.Get(appid)
		ttl := m.leaseTTL(cached)
		ctx, cancel := m.leases.Detach(ctx, ttl)
		defer cancel()
		e := m.entry(appid)
		held, err := m.leases.Take(ctx, m.leaseName(appid), ttl)
		if err != nil || held == nil {
			a, _ := m.Get(appid)
			return a, err
		}
		defer held.Release(ctx)
		stored, err := m.o.Store.GetAuthorizer(ctx, m.o.ComponentAppID, appid)
		if err != nil {
			return store.Authorizer{}, err
		}
		m.Apply(stored)
		if stored.Status != store.StatusNeedsReauthorization {
			return snapshot(stored), nil
		}
		return m.recover(ctx, e, stored, stored.RefreshToken)
	})
	if err != nil {
		return store.Authorizer{}, err
	}
	return v.(store.Authorizer), nil
}

// Run keeps the cache current and the tokens fresh until ctx ends: it polls
// the store every PollInterval and refreshes due tokens every TickInterval.
// It returns nil on cancellation.
func (m *Manager) Run(ctx context.Context) error {
	m.leases.Bind(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(m.o.PollInterval)
		defer t.Stop()
		failures := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := m.Sync(ctx); err != nil && ctx.Err() == nil {
				failures++
				if failures == 1 || failures%100 == 0 {
					m.log.WarnContext(ctx, "authorizer: polling for other replicas' changes failed", "err", err.Error(), "failures", failures)
				}
			} else {
				failures = 0
			}
		}
	}()
	t := time.NewTicker(m.o.TickInterval)
	defer t.Stop()
	for {
		m.RefreshDue(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// String describes the manager (never a token).
func (m *Manager) String() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return fmt.Sprintf("authorizer.Manager{component: %s, accounts: %d}", m.o.ComponentAppID, len(m.entries))
}
