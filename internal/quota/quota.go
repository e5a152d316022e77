// Package quota spends WeChat's daily per-account, per-API quota well
// (docs/api.md, "WeChat's daily quota"; docs/architecture.md, "Daily
// quota"): it learns each API's daily limit from WeChat's quota/get, counts
// the gateway's own calls per account, API and Beijing day across
// replicas, refuses locally once the quota is spent, and enforces the
// operator's per-tenant daily caps.
//
// The request path never queries the store: counts are kept in memory and
// a background sync adds this replica's new counts to the store and reads
// the deployment's totals back. What a replica has not synced yet, the
// others cannot see; a replica never holds more than Batch such calls per
// account and API (past that, a call waits for the sync it kicks), so with
// R replicas the deployment overshoots a limit by at most ×Batch
// calls, plus the calls in flight when a limit was learned. Far from a
// limit a replica instead writes a reservation of FarBatch calls before
// making them: the others count it at once, so the bound is unchanged and
// a hot account costs one sync per FarBatch/2 calls, none waited for.
package quota

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wechat"
)

// Scopes of a quota refusal (details.scope of rate_limited).
const (
	// ScopeWeChat: the account's WeChat daily quota of the API is spent
	// (the scope WeChat's own 45009 carries too).
	ScopeWeChat = wechat.ScopeDailyQuota
	// ScopeTenant: the tenant reached the operator's daily cap on the account.
	ScopeTenant = "tenant_daily_limit"
)

// Defaults of Options' zero fields.
const (
	DefaultSyncInterval = time.Second
	DefaultBatch        = 5
	DefaultRelearn      = 10 * time.Minute
	// refusedRelearn is how stale a limit may be before a local refusal
	// asks WeChat again (a clear_quota made on another replica, or by the
	// account's owner, is seen within it).
	refusedRelearn = time.Minute
	// syncTimeout bounds one sync: a call waiting for one learns within it
	// whether the store answered (then the bound holds) or not (then it goes
	// on with what it knows).
	syncTimeout = 5 * time.Second
	// syncWait is the waiting call's own safety net, should no sync run at
	// all (a replica without its workers).
	syncWait = 2 * syncTimeout
	// lowShare is the share of the daily limit under which an account
	// counts as low in the metrics.
	lowShare = 0.1
	// idleRead is how often a replica with nothing to write still reads
	// the deployment's totals (for GET …/quota and the metrics; the bound
	// does not need it: a replica reads before its Batch+1th unseen call).
	idleRead = 10 * time.Second
	// FarBatch is the reservation a replica writes, far from a limit,
	// before making the calls it covers: the others count them at once, so
	// no sync per Batch calls is needed and no call waits for one.
	FarBatch = 200
	// NearMargin: with fewer calls left than this under a counter's limit
	// (as the replica last read it), a replica reserves no more and gives
	// back what it holds, so reservations never make the others refuse
	// while the quota still has room for them. Far or near changes only
	// how the quota is shared, never the overshoot bound.
	NearMargin = 16 * FarBatch
)

// beijing is WeChat's day boundary for daily quotas (UTC+8, no DST).
var beijing = time.FixedZone("CST", 8*60*60)

// Day returns t's Beijing day: days since 1970-01-01 in UTC+8.
func Day(t time.Time) int64 {
	sec := t.Unix() + 8*3600
	if sec < 0 {
		return (sec+1)/86400 - 1
	}
	return sec / 86400
}

// NextReset returns the Beijing midnight after t, when daily quotas reset.
func NextReset(t time.Time) time.Time {
	y, m, d := t.In(beijing).Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, beijing)
}

// Quota is what WeChat's quota/get answers for one API of one account.
type Quota struct {
	DailyLimit int64 `json:"daily_limit"`
	Used       int64 `json:"used"`
	Remain     int64 `json:"remain"`
}

// Learner asks WeChat for an account's quota of one API (quota/get).
type Learner interface {
	// LearnQuota calls quota/get for appid's cgiPath.
	LearnQuota(ctx context.Context, appid, cgiPath string) (Quota, error)
}

// Store is where the replicas add up their counts.
type Store interface {
	AddQuotaCounts(ctx context.Context, componentAppID string, rows []store.QuotaCount) error
	QuotaCounts(ctx context.Context, componentAppID string, day int64) ([]store.QuotaCount, error)
}

// Caps answers the operator's per-tenant daily caps from memory (the
// tenant directory).
type Caps interface {
	// DailyLimit is tenantID's cap on appid per API and day (0: none).
	DailyLimit(tenantID, appid string) int64
}

// Options configure a Keeper.
type Options struct {
	ComponentAppID string
	Store          Store
	Caps           Caps
	// Learner asks WeChat's quota/get (nil: limits are never learned).
	Learner Learner
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *obs.Metrics
	// SyncInterval is the period of the background sync (default 1 s).
	SyncInterval time.Duration
	// Batch is how many calls per account and API a replica may make
	// before the others can see them (default 5).
	Batch int64
	// Relearn is how old a learned limit may grow before quota/get is
	// asked again on the next call (default 10 min).
	Relearn time.Duration
}

// Keeper keeps one replica's view of the daily quotas.
type Keeper struct {
	o       Options
	learner Learner
	learns  singleflight.Group
	kick    chan struct{}

	mu       sync.Mutex
	day      int64
	accounts map[apiKey]*account
	counts   map[countKey]*counter
	healthy  bool          // the last sync succeeded (or none failed yet)
	synced   chan struct{} // closed after each sync round
	lastRead time.Time     // when the deployment's totals were last read
}

type apiKey struct{ appid, api string }

// countKey names a counter: tenant "" counts the gateway's WeChat calls,
// any other tenant that tenant's calls.
type countKey struct{ tenant, appid, api string }

// account is what this replica knows of one account's quota of one API.
type account struct {
	cgiPath string
	limit   int64 // 0: not learned yet
	// outside is WeChat's used minus the gateway's own count when the
	// limit was learned: the calls of the account's other callers (it may
	// be negative after a clear_quota).
	outside   int64
	checkedAt time.Time
	// spent: WeChat answered 45009 since the last learn.
	spent bool
	// inflight counts this replica's calls sent and not answered yet.
	inflight int64
	// askedAt is when a background learn was last started.
	askedAt time.Time
}

type counter struct {
	total    int64 // the deployment's calls and reservations at the last read
	calls    int64 // of which calls made
	flushing int64 // this replica's calls beyond its reservation, being written
	unsynced int64 // this replica's calls beyond its reservation, not yet written
	// reserved is this replica's reservation not used yet: written, so in
	// everyone's total already. used counts the calls made from it since
	// the last sync, which moves them from reserved to calls in the store
	// (usedFlushing while that write runs).
	reserved, used, usedFlushing int64
	// idle is a reservation written but not usable (its read failed): the
	// next sync gives it back.
	idle int64
	// far: the last read left more than NearMargin calls under the
	// counter's limit.
	far bool
}

func (c *counter) seen() int64   { return c.total + c.flushing + c.unsynced }
func (c *counter) unseen() int64 { return c.flushing + c.unsynced }

// made is the calls this replica knows were made (WeChat counts those;
// reservations it does not): the deployment's at the last read and this
// replica's own since.
func (c *counter) made() int64 {
	return c.calls + c.flushing + c.unsynced + c.used + c.usedFlushing
}

// New returns a Keeper; run Run in the background.
func New(o Options) *Keeper {
	if o.SyncInterval <= 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.Relearn <= 0 {
		o.Relearn = DefaultRelearn
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Keeper{o: o, learner: o.Learner, kick: make(chan struct{}, 1), day: Day(o.Now()), healthy: true, synced: make(chan struct{}),
		accounts: map[apiKey]*account{}, counts: map[countKey]*counter{}}
}

// Refusal builds the rate_limited answer of a quota refusal: details.scope
// and Retry-After until the next Beijing midnight.
func Refusal(scope string, now time.Time) *errs.Error {
	msg := "the account's WeChat daily quota for this API is spent; it resets at midnight Beijing time"
	if scope == ScopeTenant {
		msg = "this tenant reached its daily limit on this account for this API; it resets at midnight Beijing time"
	}
	return errs.E(errs.RateLimited, msg).WithDetails(map[string]any{"scope": scope}).
		WithRetryAfter(NextReset(now).Sub(now)).WithCause(&Refused{Scope: scope})
}

// Refused is the cause of a local quota refusal: the compatible surface
// answers it as WeChat's 45009.
type Refused struct{ Scope string }

// Error names the scope.
func (r *Refused) Error() string { return "quota: refused locally: " + r.Scope }

// rollLocked starts a new Beijing day: counts start from zero and every
// limit is learned again on its next use.
func (k *Keeper) rollLocked(now time.Time) {
	d := Day(now)
	if d == k.day {
		return
	}
	k.day = d
	clear(k.counts)
	for _, a := range k.accounts {
		a.outside, a.spent, a.checkedAt = 0, false, time.Time{}
	}
}

func (k *Keeper) accountLocked(appid, api, cgiPath string) *account {
	a := k.accounts[apiKey{appid, api}]
	if a == nil {
		a = &account{cgiPath: cgiPath}
		k.accounts[apiKey{appid, api}] = a
	}
	return a
}

func (k *Keeper) counterLocked(ck countKey) *counter {
	c := k.counts[ck]
	if c == nil {
		c = &counter{}
		k.counts[ck] = c
	}
	return c
}

// usedLocked is the estimate of today's use of the account's quota.
func (a *account) usedLocked(gateway *counter) int64 {
	used := a.outside + gateway.seen()
	if a.spent && a.limit > used {
		used = a.limit
	}
	return max(used, 0)
}

// exhaustedLocked reports whether the account's quota is spent as far as
// this replica knows.
func (a *account) exhaustedLocked(gateway *counter) bool {
	return a.spent || (a.limit > 0 && a.usedLocked(gateway) >= a.limit)
}

// Admit counts one call of api by tenantID on appid (cgiPath is the API's
// WeChat path, for quota/get), or refuses it locally: rate_limited with
// details.scope wechat_daily_quota when the account's quota is spent,
// tenant_daily_limit when the tenant reached the operator's cap. A call
// that is admitted counts against the tenant's cap even if it shares
// another call's WeChat answer. It fails closed without a tenant.
func (k *Keeper) Admit(ctx context.Context, tenantID, appid, api, cgiPath string) error {
	if tenantID == "" {
		return errs.E(errs.Internal, "internal error")
	}
	limit := int64(0)
	if k.o.Caps != nil {
		limit = k.o.Caps.DailyLimit(tenantID, appid)
	}
	return k.take(ctx, countKey{tenantID, appid, api}, cgiPath, func(a *account, gw, own *counter) string {
		if a.exhaustedLocked(gw) {
			return ScopeWeChat
		}
		if limit > 0 && own.seen() >= limit {
			return ScopeTenant
		}
		return ""
	}, func(_ *account, _, own *counter) int64 {
		if limit <= 0 {
			return -1
		}
		return limit - own.seen()
	})
}

// Spend counts one WeChat call of api on appid, or refuses it locally
// (wechat_daily_quota) when the account's quota is spent.
func (k *Keeper) Spend(ctx context.Context, appid, api, cgiPath string) error {
	return k.take(ctx, countKey{"", appid, api}, cgiPath, func(a *account, gw, _ *counter) string {
		if a.exhaustedLocked(gw) {
			return ScopeWeChat
		}
		return ""
	}, func(a *account, gw, _ *counter) int64 {
		if a.limit <= 0 {
			return -1
		}
		return a.limit - a.usedLocked(gw)
	})
}

// take counts one call on ck unless refuse names a scope. While room says
// a limit applies (the calls left under it, -1 for none), the call uses
// the replica's reservation if it holds one (the others count it
// already); otherwise a replica holding Batch calls the others have not
// seen waits for the sync it kicks first (unless the store is failing:
// then it goes on with what it knows).
func (k *Keeper) take(ctx context.Context, ck countKey, cgiPath string, refuse func(a *account, gw, own *counter) string, room func(a *account, gw, own *counter) int64) error {
	deadline := time.Now().Add(syncWait)
	for {
		now := k.o.Now()
		k.mu.Lock()
		k.rollLocked(now)
		a := k.accountLocked(ck.appid, ck.api, cgiPath)
		gw := k.counterLocked(countKey{"", ck.appid, ck.api})
		own := k.counterLocked(ck)
		if scope := refuse(a, gw, own); scope != "" {
			stale := now.Sub(a.checkedAt) > refusedRelearn
			k.mu.Unlock()
			if scope == ScopeWeChat && stale {
				k.learnLater(ck.appid, ck.api, cgiPath)
			}
			if k.o.Metrics != nil {
				k.o.Metrics.QuotaRefusals.WithLabelValues(ck.api, scope).Inc()
			}
			return Refusal(scope, now)
		}
		bounded := room(a, gw, own) >= 0
		if bounded && own.reserved > 0 {
			own.reserved--
			own.used++
			if ck.tenant == "" {
				a.inflight++
			}
			low := own.reserved < FarBatch/2
			k.mu.Unlock()
			if low {
				k.kickSync() // reserve the next batch before this one runs out
			}
			return nil
		}
		if bounded && own.unseen() >= k.o.Batch && k.healthy && time.Now().Before(deadline) {
			wait := k.synced
			k.mu.Unlock()
			k.kickSync()
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-wait:
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return errs.Wrap(errs.UpstreamTimeout, "the call was cancelled while the quota counts synced", ctx.Err())
			}
			t.Stop()
			continue
		}
		own.unsynced++
		if ck.tenant == "" {
			a.inflight++
		}
		// Only a bounded count needs the others to see it within Batch
		// calls; the periodic sync carries the rest (under load a kick per
		// Batch calls kept the sync loop and the database busy for nothing).
		full := bounded && (own.unseen() >= k.o.Batch || own.far)
		k.mu.Unlock()
		if full {
			k.kickSync()
		}
		return nil
	}
}

// Answered records that WeChat answered (or failed) a call counted by
// Spend, and asks quota/get in the background when the account's limit is
// unknown or stale. Asking after the answer, not alongside the call, keeps
// the call out of the ambiguity of calls in flight while quota/get counts.
func (k *Keeper) Answered(appid, api, cgiPath string) {
	now := k.o.Now()
	k.mu.Lock()
	k.rollLocked(now)
	a := k.accountLocked(appid, api, cgiPath)
	if a.inflight > 0 {
		a.inflight--
	}
	learn := a.checkedAt.IsZero() || now.Sub(a.checkedAt) > k.o.Relearn
	k.mu.Unlock()
	if learn {
		k.learnLater(appid, api, cgiPath)
	}
}

// SpentByWeChat records that WeChat answered 45009 for api on appid and
// asks quota/get at once: the account is refused locally until WeChat
// reports room again (a clear_quota) or the day ends. If quota/get cannot
// be asked, the refusal stands until a later learn.
func (k *Keeper) SpentByWeChat(ctx context.Context, appid, api, cgiPath string) {
	k.mu.Lock()
	k.rollLocked(k.o.Now())
	k.accountLocked(appid, api, cgiPath).spent = true
	k.mu.Unlock()
	if k.learner == nil {
		return
	}
	if _, err := k.Learn(ctx, appid, api, cgiPath); err != nil {
		k.o.Logger.DebugContext(ctx, "quota: learning after 45009 failed", "appid", appid, "api", api, "err", err.Error())
	}
}

func (k *Keeper) kickSync() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// learnLater learns the quota in the background: one learn per account
// and API at a time, and at most one a minute (quota/get has a daily quota
// of its own; a WeChat that keeps failing is not asked on every call).
func (k *Keeper) learnLater(appid, api, cgiPath string) {
	if k.learner == nil {
		return
	}
	now := k.o.Now()
	k.mu.Lock()
	a := k.accountLocked(appid, api, cgiPath)
	if !a.askedAt.IsZero() && now.Sub(a.askedAt) < refusedRelearn {
		k.mu.Unlock()
		return
	}
	a.askedAt = now
	k.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := k.Learn(ctx, appid, api, cgiPath); err != nil {
			k.o.Logger.Debug("quota: learning failed", "appid", appid, "api", api, "err", err.Error())
		}
	}()
}

// Learn asks WeChat for the account's quota of the API now and applies it.
func (k *Keeper) Learn(ctx context.Context, appid, api, cgiPath string) (Status, error) {
	if k.learner == nil {
		st, _ := k.Status(appid, api, cgiPath)
		return st, nil
	}
	v, err, _ := k.learns.Do(appid+"\x00"+api, func() (any, error) {
		// The gateway's calls answered before quota/get is asked are
		// surely in WeChat's used; those in flight may or may not be, and
		// are taken as counted (the estimate errs high by at most them).
		k.mu.Lock()
		k.rollLocked(k.o.Now())
		asked := k.day
		a := k.accountLocked(appid, api, cgiPath)
		answered := k.counterLocked(countKey{"", appid, api}).made() - a.inflight
		k.mu.Unlock()
		q, err := k.learner.LearnQuota(ctx, appid, cgiPath)
		if err != nil {
			return nil, err
		}
		now := k.o.Now()
		k.mu.Lock()
		defer k.mu.Unlock()
		k.rollLocked(now)
		a = k.accountLocked(appid, api, cgiPath)
		gw := k.counterLocked(countKey{"", appid, api})
		if k.day != asked {
			// Asked before midnight, answered after: the use is
			// yesterday's. Keep the limit, ask again on the next call.
			a.limit = q.DailyLimit
			return k.statusLocked(appid, api, a, gw, now), nil
		}
		a.limit = q.DailyLimit
		a.outside = q.Used - answered
		if q.Remain <= 0 && q.DailyLimit > 0 {
			a.outside = max(a.outside, q.DailyLimit-gw.seen())
		}
		a.spent = false
		a.checkedAt = now
		return k.statusLocked(appid, api, a, gw, now), nil
	})
	if err != nil {
		return Status{}, err
	}
	return v.(Status), nil
}

// Cleared records a successful clear_quota for appid: every API's use
// starts again from zero.
func (k *Keeper) Cleared(appid string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rollLocked(k.o.Now())
	for key, a := range k.accounts {
		if key.appid == appid {
			a.outside = -k.counterLocked(countKey{"", appid, key.api}).made()
			a.spent = false
		}
	}
}

// Status is one API's quota of one account as this replica knows it.
type Status struct {
	API        string
	CGIPath    string
	DailyLimit int64 // 0: not learned
	Used       int64
	Remain     int64
	ResetsAt   time.Time
	CheckedAt  time.Time // zero: never learned
}

func (k *Keeper) statusLocked(appid, api string, a *account, gw *counter, now time.Time) Status {
	// This replica's own reservation not used yet is not a use; the other
	// replicas' (at most FarBatch each, far from the limit) count as used.
	s := Status{API: api, CGIPath: a.cgiPath, DailyLimit: a.limit, Used: max(0, a.usedLocked(gw)-gw.reserved), ResetsAt: NextReset(now), CheckedAt: a.checkedAt}
	if a.limit > 0 {
		s.Remain = max(0, a.limit-s.Used)
	}
	return s
}

// Status returns what this replica knows of the account's quota of api,
// and whether it is due to be learned (never learned, or stale).
func (k *Keeper) Status(appid, api, cgiPath string) (Status, bool) {
	now := k.o.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rollLocked(now)
	a := k.accountLocked(appid, api, cgiPath)
	gw := k.counterLocked(countKey{"", appid, api})
	stale := a.checkedAt.IsZero() || now.Sub(a.checkedAt) > k.o.Relearn
	return k.statusLocked(appid, api, a, gw, now), stale
}

// Run syncs every SyncInterval, and at once when a call kicks it, until
// ctx ends; then it writes the last counts and returns nil.
func (k *Keeper) Run(ctx context.Context) error {
	t := time.NewTicker(k.o.SyncInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			// Give back every reservation not used, then write.
			k.mu.Lock()
			for _, c := range k.counts {
				c.far = false
			}
			k.mu.Unlock()
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), syncTimeout)
			defer cancel()
			if err := k.Sync(fctx); err != nil {
				k.o.Logger.Warn("quota: last sync failed; counts lost", "err", err.Error())
			}
			return nil
		case <-t.C:
		case <-k.kick:
		}
		// A sync is not cut short by the shutdown: a write interrupted
		// at its commit could not tell whether it counted.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), syncTimeout)
		err := k.sync(sctx, false)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			k.o.Logger.Warn("quota: sync failed; counting locally until the store answers", "err", err.Error())
		case err == nil && failing:
			failing = false
			k.o.Logger.Info("quota: syncing again")
		}
	}
}

// Sync writes this replica's new counts and reads the deployment's totals
// of the day back. On failure the counts are kept for the next sync. With
// nothing to write it reads only every idleRead.
func (k *Keeper) Sync(ctx context.Context) error {
	return k.sync(ctx, true)
}

func (k *Keeper) sync(ctx context.Context, force bool) error {
	k.mu.Lock()
	day := k.day
	var rows []store.QuotaCount
	type change struct{ made, used, grant, release, idle int64 }
	changes := map[countKey]change{}
	for ck, c := range k.counts {
		// Far from the limit, after a read that worked, top the
		// reservation up; near it (or with a reservation that is not
		// usable), give back what is held.
		var ch change
		if c.far && k.healthy && c.reserved < FarBatch/2 {
			ch.grant = FarBatch - c.reserved
		}
		if !c.far && c.reserved > 0 {
			ch.release, c.reserved = c.reserved, 0
		}
		ch.idle, c.idle = c.idle, 0
		ch.made, ch.used = c.unsynced, c.used
		if ch == (change{}) {
			continue
		}
		changes[ck] = ch
		rows = append(rows, store.QuotaCount{AppID: ck.appid, API: ck.api, TenantID: ck.tenant, Day: day,
			Calls: ch.made + ch.used, Reserved: ch.grant - ch.used - ch.release - ch.idle})
		c.flushing += c.unsynced
		c.unsynced = 0
		c.usedFlushing += c.used
		c.used = 0
	}
	// One order for every replica: two syncs upserting the same rows in
	// different orders would deadlock each other in the database.
	slices.SortFunc(rows, func(a, b store.QuotaCount) int {
		return cmp.Or(cmp.Compare(a.AppID, b.AppID), cmp.Compare(a.API, b.API), cmp.Compare(a.TenantID, b.TenantID))
	})
	if len(rows) == 0 && !force && time.Since(k.lastRead) < idleRead {
		close(k.synced)
		k.synced = make(chan struct{})
		k.mu.Unlock()
		return nil
	}
	k.mu.Unlock()

	werr := k.o.Store.AddQuotaCounts(ctx, k.o.ComponentAppID, rows)
	var totals []store.QuotaCount
	rerr := werr
	if werr == nil {
		totals, rerr = k.o.Store.QuotaCounts(ctx, k.o.ComponentAppID, day)
	}

	k.mu.Lock()
	defer func() {
		close(k.synced)
		k.synced = make(chan struct{})
		k.mu.Unlock()
	}()
	k.healthy = rerr == nil
	if day != k.day {
		return rerr // the day rolled meanwhile: yesterday's counts are written (or lost)
	}
	for ck, ch := range changes {
		c := k.counterLocked(ck)
		c.flushing -= ch.made
		c.usedFlushing -= ch.used
		switch {
		case werr != nil:
			// Not written, or written with its answer lost: only what is
			// safe to write twice is kept for the next sync. Calls counted
			// twice only refuse early. A give-back or a conversion of
			// calls made from a reservation is dropped: if it was in fact
			// not written, the reservation stays counted (quota unused,
			// never exceeded) and those calls stay counted as reserved.
			c.unsynced += ch.made
		case rerr != nil: // written, but the totals were not read back
			c.total += ch.made + ch.grant - ch.release - ch.idle
			c.calls += ch.made + ch.used
			c.idle += ch.grant // usable only after a read that includes it
		default:
			c.reserved += ch.grant
		}
	}
	if rerr != nil {
		return fmt.Errorf("quota: sync: %w", rerr)
	}
	k.lastRead = time.Now()
	for _, c := range k.counts {
		c.total, c.calls = 0, 0
	}
	for _, r := range totals {
		c := k.counterLocked(countKey{r.TenantID, r.AppID, r.API})
		c.total, c.calls = r.Calls+r.Reserved, r.Calls
	}
	k.judgeLocked()
	k.gaugesLocked()
	return nil
}

// judgeLocked decides, after a read, which counters are far from their
// limit: more than NearMargin calls left under the account's WeChat limit
// (the gateway's counters) or the tenant's cap (a tenant's).
func (k *Keeper) judgeLocked() {
	for ck, c := range k.counts {
		// This replica's own unused reservation is room it holds, not a
		// use: counting it would call a counter near right after its
		// reservation and give it back at once.
		var left int64 = -1
		if ck.tenant == "" {
			if a := k.accounts[apiKey{ck.appid, ck.api}]; a != nil && a.limit > 0 && !a.spent {
				left = a.limit - a.usedLocked(c) + c.reserved
			}
		} else if k.o.Caps != nil {
			if cap := k.o.Caps.DailyLimit(ck.tenant, ck.appid); cap > 0 {
				left = cap - c.seen() + c.reserved
			}
		}
		c.far = left > NearMargin
	}
}

// gaugesLocked sets the remaining-quota metrics per API.
func (k *Keeper) gaugesLocked() {
	if k.o.Metrics == nil {
		return
	}
	remain, low := map[string]float64{}, map[string]float64{}
	for key, a := range k.accounts {
		if a.limit <= 0 {
			continue
		}
		gw := k.counterLocked(countKey{"", key.appid, key.api})
		r := max(0, a.limit-a.usedLocked(gw))
		remain[key.api] += float64(r)
		low[key.api] += 0 // every API with a known limit gets its series
		if float64(r) < lowShare*float64(a.limit) {
			low[key.api]++
		}
	}
	for api, v := range remain {
		k.o.Metrics.QuotaRemaining.WithLabelValues(api).Set(v)
		k.o.Metrics.QuotaLowAccounts.WithLabelValues(api).Set(low[api])
	}
}
