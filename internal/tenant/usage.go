package tenant

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/wxgate/wxgate/internal/store"
)

// Flush intervals of the in-memory counters.
const (
	DefaultUsageFlushInterval = 10 * time.Second
	DefaultTouchFlushInterval = 10 * time.Second
	// shutdownFlushTimeout bounds the last flush when a replica stops.
	shutdownFlushTimeout = 5 * time.Second
)

// UsageStore persists call counts.
type UsageStore interface {
	// AddUsage adds counts (per tenant, account, API, outcome and hour).
	AddUsage(ctx context.Context, rows []store.UsageRow) error
	// AddCallMinutes adds the component's calls and failed calls per minute.
	AddCallMinutes(ctx context.Context, componentAppID string, rows []store.CallMinute) error
}

// Usage counts calls per tenant, account, API and outcome (per hour, for
// the usage report) and each platform's calls and failed calls (per
// minute, for the console's chart; a call counts for its tenant's
// platform) in memory, and flushes both to the store
// every interval (and when the replica stops). Each replica adds its own
// counts, so the stored figures are the deployment's. A failed flush keeps
// its counts for the next one.
type Usage struct {
	st             UsageStore
	componentAppID string
	now            func() time.Time
	log            *slog.Logger
	interval       time.Duration
	tenants        UsageTenants

	mu      sync.Mutex
	counts  map[usageKey]int64
	minutes map[minuteKey]store.CallMinute
}

// UsageTenants is what Usage asks of the directory about a call's tenant
// (Directory).
type UsageTenants interface {
	// Bound reports whether tenantID may see and call appid.
	Bound(tenantID, appid string) bool
	// ComponentOf returns the tenant's platform and whether it exists.
	ComponentOf(tenantID string) (string, bool)
}

// minuteKey is one platform's minute (Unix millisecond of its start).
type minuteKey struct {
	componentAppID string
	minute         int64
}

type usageKey struct {
	tenantID, appid, api, outcome string
	hour                          int64
}

// NewUsage returns a usage counter. tenants, when not nil, tells each
// call's platform and filters its appid: an account the tenant is not
// bound to is counted under "" so that made-up appids in URLs cannot grow
// the usage table. A call whose tenant it does not know (or every call,
// when it is nil) counts for the default platform componentAppID.
// interval <= 0 means DefaultUsageFlushInterval.
func NewUsage(st UsageStore, componentAppID string, tenants UsageTenants, now func() time.Time, log *slog.Logger, interval time.Duration) *Usage {
	if interval <= 0 {
		interval = DefaultUsageFlushInterval
	}
	return &Usage{st: st, componentAppID: componentAppID, tenants: tenants, now: now, log: log, interval: interval,
		counts: map[usageKey]int64{}, minutes: map[minuteKey]store.CallMinute{}}
}

// Record counts one call of api by tenantID on appid with outcome ("ok" or
// an error code slug). api and outcome must come from bounded sets (the API
// table, the error codes), never from the request.
func (u *Usage) Record(tenantID, appid, api, outcome string) {
	if tenantID == "" {
		return
	}
	platform := u.componentAppID
	if u.tenants != nil {
		if appid != "" && !u.tenants.Bound(tenantID, appid) {
			appid = ""
		}
		if c, ok := u.tenants.ComponentOf(tenantID); ok {
			platform = c
		}
	}
	now := u.now()
	k := usageKey{tenantID: tenantID, appid: appid, api: api, outcome: outcome, hour: now.Truncate(time.Hour).UnixMilli()}
	minute := now.Truncate(time.Minute)
	mk := minuteKey{componentAppID: platform, minute: minute.UnixMilli()}
	u.mu.Lock()
	u.counts[k]++
	m := u.minutes[mk]
	m.Minute = minute
	m.Calls++
	if outcome != OutcomeOK {
		m.Errors++
	}
	u.minutes[mk] = m
	u.mu.Unlock()
}

// OutcomeOK is the outcome of a successful call; every other outcome (an
// error code slug) counts as an error in the per-minute figures.
const OutcomeOK = "ok"

// Flush writes the counts gathered so far: the hourly usage and the
// per-minute figures, each on its own, so a failure of one neither loses
// nor doubles the other. On failure the counts are kept for the next flush.
func (u *Usage) Flush(ctx context.Context) error {
	return errors.Join(u.flushHours(ctx), u.flushMinutes(ctx))
}

// flushMinutes writes each platform's minutes on their own; the minutes of
// a platform whose write failed are kept, the others are not written twice.
func (u *Usage) flushMinutes(ctx context.Context) error {
	return flushPending(&u.mu, &u.minutes, func(pending map[minuteKey]store.CallMinute) (map[minuteKey]store.CallMinute, error) {
		rows := map[string][]store.CallMinute{}
		for k, m := range pending {
			rows[k.componentAppID] = append(rows[k.componentAppID], m)
		}
		var failed map[minuteKey]store.CallMinute
		var errList []error
		for platform, list := range rows {
			if err := u.st.AddCallMinutes(ctx, platform, list); err != nil {
				errList = append(errList, err)
				if failed == nil {
					failed = map[minuteKey]store.CallMinute{}
				}
				for k, m := range pending {
					if k.componentAppID == platform {
						failed[k] = m
					}
				}
			}
		}
		return failed, errors.Join(errList...)
	}, func(cur, old store.CallMinute) store.CallMinute {
		return store.CallMinute{Minute: old.Minute, Calls: cur.Calls + old.Calls, Errors: cur.Errors + old.Errors}
	})
}

func (u *Usage) flushHours(ctx context.Context) error {
	return flushPending(&u.mu, &u.counts, func(pending map[usageKey]int64) (map[usageKey]int64, error) {
		rows := make([]store.UsageRow, 0, len(pending))
		for k, n := range pending {
			rows = append(rows, store.UsageRow{TenantID: k.tenantID, AppID: k.appid, API: k.api, Outcome: k.outcome,
				Hour: time.UnixMilli(k.hour).UTC(), Count: n})
		}
		return pending, u.st.AddUsage(ctx, rows)
	}, func(cur, old int64) int64 { return cur + old })
}

// flushPending takes the pending map out from under mu and writes it; if the
// write fails, the entries it reports unwritten are merged back into what
// gathered meanwhile (merge(current, failed); current is the zero value
// when absent), so nothing is lost and nothing counted twice.
func flushPending[K comparable, V any](mu *sync.Mutex, pending *map[K]V, write func(map[K]V) (unwritten map[K]V, err error), merge func(cur, old V) V) error {
	mu.Lock()
	batch := *pending
	*pending = make(map[K]V, len(batch))
	mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if unwritten, err := write(batch); err != nil {
		mu.Lock()
		for k, v := range unwritten {
			(*pending)[k] = merge((*pending)[k], v)
		}
		mu.Unlock()
		return err
	}
	return nil
}

// Run flushes every interval until ctx ends, then flushes once more.
func (u *Usage) Run(ctx context.Context) error {
	return runFlusher(ctx, u.interval, u.Flush, u.log, "usage")
}

// TouchStore records when keys were last used.
type TouchStore interface {
	// TouchKeys sets last_used_at where it moves it forward.
	TouchKeys(ctx context.Context, used map[string]time.Time) error
}

// LastUsed gathers key last-use times in memory and writes them in one
// batch every interval: authenticating a request never waits on the store.
type LastUsed struct {
	st       TouchStore
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	pending map[string]time.Time
}

// NewLastUsed returns a batcher; interval <= 0 means DefaultTouchFlushInterval.
func NewLastUsed(st TouchStore, log *slog.Logger, interval time.Duration) *LastUsed {
	if interval <= 0 {
		interval = DefaultTouchFlushInterval
	}
	return &LastUsed{st: st, log: log, interval: interval, pending: map[string]time.Time{}}
}

// Mark notes that kid was used at at.
func (l *LastUsed) Mark(kid string, at time.Time) {
	l.mu.Lock()
	if prev, ok := l.pending[kid]; !ok || at.After(prev) {
		l.pending[kid] = at
	}
	l.mu.Unlock()
}

// Flush writes the pending last-use times; on failure they are kept.
func (l *LastUsed) Flush(ctx context.Context) error {
	return flushPending(&l.mu, &l.pending, func(batch map[string]time.Time) (map[string]time.Time, error) {
		return batch, l.st.TouchKeys(ctx, batch)
	}, func(cur, old time.Time) time.Time {
		if old.After(cur) {
			return old
		}
		return cur
	})
}

// Pending returns a copy of the times not yet written (for tests).
func (l *LastUsed) Pending() map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.pending)
}

// Run flushes every interval until ctx ends, then flushes once more.
func (l *LastUsed) Run(ctx context.Context) error {
	return runFlusher(ctx, l.interval, l.Flush, l.log, "key last use")
}

// runFlusher calls flush every interval and once more, with a bounded
// detached context, when ctx ends. Failures are logged and retried.
func runFlusher(ctx context.Context, interval time.Duration, flush func(context.Context) error, log *slog.Logger, what string) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownFlushTimeout)
			defer cancel()
			if err := flush(fctx); err != nil {
				log.Warn("tenant: last flush failed; counts lost", "what", what, "err", err.Error())
			}
			return nil
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, shutdownFlushTimeout)
			err := flush(fctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				log.Warn("tenant: flush failed; will retry", "what", what, "err", err.Error())
			}
		}
	}
}
