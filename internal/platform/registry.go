// Package platform keeps the deployment's third-party platforms
// (docs/api.md, "Several platforms"): the default one from WXGATE_COMPONENT_*, and those
// registered through the admin API, whose settings are sealed in the store.
// Every replica runs the same set: it builds a platform's services when it
// first learns of it (at start-up, when it registers one itself, when its
// poll of the store or a request for an unknown platform finds one) and
// stops them when the platform is removed.
package platform

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// Settings are one platform's credentials, as WeChat's platform page shows
// them: appid, appsecret, the message-check Token and the EncodingAESKey.
type Settings struct {
	AppID  string
	Secret secret.Value
	Token  secret.Value
	AESKey secret.Value
	// Default marks the platform configured by WXGATE_COMPONENT_*.
	Default bool
	// CreatedAt is when it was registered and UpdatedAt when its settings
	// last changed (zero for the default).
	CreatedAt, UpdatedAt time.Time
}

// Problems lists what is wrong with s by field (appid, secret, token,
// aes_key), empty when the platform can be served.
func (s Settings) Problems() map[string]string {
	p := map[string]string{}
	if !config.ValidAppID(s.AppID) {
		p["appid"] = config.AppIDRule
	}
	if s.Secret.IsZero() || len(s.Secret) > 128 {
		p["secret"] = "the platform's appsecret is required (at most 128 characters)"
	}
	if n := len(s.Token); n < 3 || n > 32 || !alnum(string(s.Token)) {
		p["token"] = "the message-check Token is 3 to 32 letters or digits"
	}
	if _, err := wxcrypt.New("t", s.AESKey.Reveal(), "wx"); err != nil {
		p["aes_key"] = "the EncodingAESKey is 43 characters of base64 (letters and digits), as WeChat's platform page shows it"
	}
	return p
}

func alnum(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// Store is what the registry keeps in the store.
type Store interface {
	CreatePlatform(ctx context.Context, p store.Platform) (store.Platform, error)
	ListPlatforms(ctx context.Context) ([]store.Platform, error)
	GetPlatform(ctx context.Context, appid string) (store.Platform, error)
	DeletePlatform(ctx context.Context, appid string) error
	UpdatePlatform(ctx context.Context, appid string, fn func(*store.Platform) error) (store.Platform, error)
}

// Defaults of Options.
const (
	// DefaultPoll is how often a replica reads the platforms table, so a
	// platform registered or removed on another replica is served or
	// stopped here within about a second.
	DefaultPoll = time.Second
	// DefaultLookupSpacing is how long an appid found in no platform is
	// remembered as such: a push to the URL of a platform registered a
	// moment ago on another replica is looked up at once, garbage once per
	// spacing per appid.
	DefaultLookupSpacing = time.Second
	// DefaultLookupRate bounds the store lookups of unknown appids per
	// second on one replica, however many different ones arrive; beyond it
	// a lookup answers store_unavailable (WeChat pushes again).
	DefaultLookupRate = 20
	// maxMisses bounds the remembered unknown appids.
	maxMisses = 4096
)

// Options configures New.
type Options[T any] struct {
	Store Store
	// Default is the configured platform (Settings.Default is set by New).
	Default Settings
	// Build wires one platform's services over its settings and returns
	// them with their background work, which runs while the registry runs
	// and until the platform is removed.
	Build func(ctx context.Context, s Settings) (T, func(ctx context.Context) error, error)
	// Forget, if set, is called once a removed platform's work stopped.
	Forget func(appid string)
	// Poll and LookupSpacing override the defaults.
	Poll, LookupSpacing time.Duration
	// LookupRate overrides DefaultLookupRate.
	LookupRate float64
	Now        func() time.Time
	Logger     *slog.Logger
}

// Registry holds the running platforms of one replica. It is safe for
// concurrent use.
type Registry[T any] struct {
	o Options[T]

	// changes orders every change of the running set with the store read
	// it follows: a poll's read and reconcile, a registration, a removal,
	// the lookup of an unknown appid. Without it a poll that read the table
	// before a registration committed would stop the new platform again.
	changes sync.Mutex

	mu      sync.RWMutex
	running map[string]*instance[T]
	order   []string // appids, the default first, then by registration
	// runCtx is set while Run runs: platforms learned meanwhile start at
	// once; those learned before wait for Run.
	runCtx context.Context
	wg     sync.WaitGroup

	// Lookups of unknown appids: each remembered for LookupSpacing once
	// found in no platform, all together bounded by lookups.
	lookups *rate.Limiter
	missMu  sync.Mutex
	misses  map[string]time.Time
	// pollFailing is set while the poll cannot read the store, so an
	// outage is logged once, and its end.
	pollFailing bool
}

type instance[T any] struct {
	settings Settings
	value    T
	work     func(ctx context.Context) error
	cancel   context.CancelFunc // nil until its work starts
	done     chan struct{}
}

// New builds the default platform and every registered one; a platform
// whose settings no longer build (a corrupt row) is logged and skipped.
func New[T any](ctx context.Context, o Options[T]) (*Registry[T], error) {
	if o.Store == nil || o.Build == nil {
		return nil, errors.New("platform: store and build are required")
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.LookupSpacing <= 0 {
		o.LookupSpacing = DefaultLookupSpacing
	}
	if o.LookupRate <= 0 {
		o.LookupRate = DefaultLookupRate
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Default.Default = true
	r := &Registry[T]{o: o, running: map[string]*instance[T]{}, misses: map[string]time.Time{},
		lookups: rate.NewLimiter(rate.Limit(o.LookupRate), int(o.LookupRate))}
	if err := r.start(ctx, o.Default); err != nil {
		return nil, err
	}
	stored, err := o.Store.ListPlatforms(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range stored {
		if err := r.start(ctx, fromStore(p)); err != nil && !errs.Is(err, errs.Conflict) {
			o.Logger.ErrorContext(ctx, "platform: a registered platform could not be started; it is skipped", "component_appid", p.AppID, "err", err.Error())
		}
	}
	return r, nil
}

func fromStore(p store.Platform) Settings {
	return Settings{AppID: p.AppID, Secret: p.Secret, Token: p.Token, AESKey: p.AESKey, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

// start builds s's services unless they run already (conflict), and starts
// their work when the registry runs.
func (r *Registry[T]) start(ctx context.Context, s Settings) error {
	r.mu.RLock()
	_, ok := r.running[s.AppID]
	r.mu.RUnlock()
	if ok {
		return errs.E(errs.Conflict, "platform already running")
	}
	v, work, err := r.o.Build(ctx, s)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.running[s.AppID]; ok { // built twice at once: keep the first
		return errs.E(errs.Conflict, "platform already running")
	}
	in := &instance[T]{settings: s, value: v, work: work, done: make(chan struct{})}
	r.running[s.AppID] = in
	r.order = append(r.order, s.AppID)
	if r.runCtx != nil {
		r.launch(in)
	}
	r.o.Logger.InfoContext(ctx, "platform: serving", "component_appid", s.AppID, "default", s.Default)
	return nil
}

// launch starts in's work; r.mu is held.
func (r *Registry[T]) launch(in *instance[T]) {
	ctx, cancel := context.WithCancel(r.runCtx)
	in.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(in.done)
		if in.work == nil {
			return
		}
		if err := in.work(ctx); err != nil && ctx.Err() == nil {
			r.o.Logger.Error("platform: background work stopped", "component_appid", in.settings.AppID, "err", err.Error())
		}
	}()
}

// stop stops a removed platform's services and forgets it.
func (r *Registry[T]) stop(appid string) {
	r.mu.Lock()
	in, ok := r.running[appid]
	if !ok || in.settings.Default {
		r.mu.Unlock()
		return
	}
	delete(r.running, appid)
	r.order = slices.DeleteFunc(r.order, func(a string) bool { return a == appid })
	r.mu.Unlock()
	if in.cancel != nil {
		in.cancel()
		<-in.done
	}
	if r.o.Forget != nil {
		r.o.Forget(appid)
	}
	r.o.Logger.Info("platform: stopped serving (removed)", "component_appid", appid)
}

// Run starts every platform's work, then follows the platforms table until
// ctx ends, when it stops all of them.
func (r *Registry[T]) Run(ctx context.Context) error {
	r.mu.Lock()
	r.runCtx = ctx
	for _, in := range r.running {
		r.launch(in)
	}
	r.mu.Unlock()
	defer r.wg.Wait()
	t := time.NewTicker(r.o.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := r.Sync(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && !r.pollFailing:
			r.pollFailing = true
			r.o.Logger.WarnContext(ctx, "platform: reading the registered platforms failed; the running ones keep serving, retrying every poll", "err", err.Error())
		case err == nil && r.pollFailing:
			r.pollFailing = false
			r.o.Logger.InfoContext(ctx, "platform: reading the registered platforms works again")
		}
	}
}

// Sync makes the running platforms those of the store (and the default):
// it starts the new ones and stops the removed ones.
func (r *Registry[T]) Sync(ctx context.Context) error {
	r.changes.Lock()
	defer r.changes.Unlock()
	stored, err := r.o.Store.ListPlatforms(ctx)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, p := range stored {
		want[p.AppID] = true
		r.follow(ctx, p)
	}
	for _, appid := range r.AppIDs() {
		if !want[appid] && appid != r.o.Default.AppID {
			r.stop(appid)
		}
	}
	return nil
}

// follow makes the running platform p.AppID the one the store holds: it
// starts one this replica lacks, and restarts one whose settings changed
// (updated, or removed and registered again) since this replica started
// it. r.changes is held.
func (r *Registry[T]) follow(ctx context.Context, p store.Platform) {
	r.mu.RLock()
	in, ok := r.running[p.AppID]
	r.mu.RUnlock()
	if ok && (in.settings.Default || in.settings.UpdatedAt.Equal(p.UpdatedAt)) {
		return
	}
	if ok {
		r.stop(p.AppID)
	}
	if err := r.start(ctx, fromStore(p)); err != nil && !errs.Is(err, errs.Conflict) {
		r.o.Logger.ErrorContext(ctx, "platform: a registered platform could not be started", "component_appid", p.AppID, "err", err.Error())
	}
}

// Default returns the configured platform's services.
func (r *Registry[T]) Default() T {
	v, _ := r.Peek(r.o.Default.AppID)
	return v
}

// DefaultAppID is WXGATE_COMPONENT_APPID.
func (r *Registry[T]) DefaultAppID() string { return r.o.Default.AppID }

// Peek returns a platform this replica runs, without reading the store.
func (r *Registry[T]) Peek(appid string) (T, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	in, ok := r.running[appid]
	if !ok {
		var zero T
		return zero, false
	}
	return in.value, true
}

// AppIDs lists the running platforms, the default first.
func (r *Registry[T]) AppIDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.order)
}

// All returns the running platforms' services, the default first.
func (r *Registry[T]) All() []T {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]T, 0, len(r.order))
	for _, a := range r.order {
		out = append(out, r.running[a].value)
	}
	return out
}

// Get returns the platform appid's services. One this replica does not
// run yet (registered on another replica a moment ago) is looked up in the
// store first. An appid found in no platform is remembered as such for
// LookupSpacing, and lookups together are bounded by LookupRate, so a
// stream of unknown appids costs a bounded number of queries. Errors:
// not_found, store_unavailable (the lookup failed or was not made now).
func (r *Registry[T]) Get(ctx context.Context, appid string) (T, error) {
	if v, ok := r.Peek(appid); ok {
		return v, nil
	}
	var zero T
	if !config.ValidAppID(appid) || r.missed(appid) {
		return zero, errs.E(errs.NotFound, "no such platform")
	}
	if !r.lookups.AllowN(r.o.Now(), 1) {
		return zero, errs.E(errs.StoreUnavailable, "too many lookups of unknown platforms; try again").WithRetryAfter(time.Second)
	}
	r.changes.Lock()
	defer r.changes.Unlock()
	if v, ok := r.Peek(appid); ok { // started while this lookup waited
		return v, nil
	}
	p, err := r.o.Store.GetPlatform(ctx, appid)
	if errs.Is(err, errs.NotFound) {
		r.miss(appid)
		return zero, errs.E(errs.NotFound, "no such platform")
	}
	if err != nil {
		return zero, err
	}
	if err := r.start(ctx, fromStore(p)); err != nil && !errs.Is(err, errs.Conflict) {
		return zero, errs.Wrap(errs.StoreUnavailable, "the platform could not be started on this replica; try again", err).WithRetryAfter(time.Second)
	}
	v, _ := r.Peek(appid)
	return v, nil
}

// missed reports whether appid was found in no platform within the
// lookup spacing.
func (r *Registry[T]) missed(appid string) bool {
	r.missMu.Lock()
	defer r.missMu.Unlock()
	at, ok := r.misses[appid]
	return ok && r.o.Now().Sub(at) < r.o.LookupSpacing
}

func (r *Registry[T]) miss(appid string) {
	r.missMu.Lock()
	defer r.missMu.Unlock()
	if len(r.misses) >= maxMisses {
		clear(r.misses)
	}
	r.misses[appid] = r.o.Now()
}

// HasPlatform reports whether appid is a platform of the deployment
// (tenants are created on one).
func (r *Registry[T]) HasPlatform(ctx context.Context, appid string) (bool, error) {
	_, err := r.Get(ctx, appid)
	switch {
	case err == nil:
		return true, nil
	case errs.Is(err, errs.NotFound):
		return false, nil
	default:
		return false, err
	}
}

// Info is a platform as the admin API lists it: never a secret.
type Info struct {
	AppID     string
	Default   bool
	CreatedAt time.Time
}

// List returns every platform of the deployment from the store (the
// default first), whether or not this replica serves it yet.
func (r *Registry[T]) List(ctx context.Context) ([]Info, error) {
	stored, err := r.o.Store.ListPlatforms(ctx)
	if err != nil {
		return nil, err
	}
	out := []Info{{AppID: r.o.Default.AppID, Default: true}}
	for _, p := range stored {
		out = append(out, Info{AppID: p.AppID, CreatedAt: p.CreatedAt})
	}
	return out, nil
}

// Add registers a platform and serves it on this replica at once (the
// others start it at their next poll, or when a request names it).
// Errors: invalid_argument (details.fields), conflict (already registered,
// or the default's appid).
func (r *Registry[T]) Add(ctx context.Context, s Settings) (Info, error) {
	if p := s.Problems(); len(p) > 0 {
		return Info{}, errs.E(errs.InvalidArgument, "request has invalid fields").WithDetails(map[string]any{"fields": p})
	}
	if s.AppID == r.o.Default.AppID {
		return Info{}, errs.E(errs.Conflict, "this is the default platform, configured by WXGATE_COMPONENT_*")
	}
	r.changes.Lock()
	defer r.changes.Unlock()
	p, err := r.o.Store.CreatePlatform(ctx, store.Platform{AppID: s.AppID, Secret: s.Secret, Token: s.Token, AESKey: s.AESKey})
	if err != nil {
		return Info{}, err
	}
	r.missMu.Lock()
	delete(r.misses, p.AppID)
	r.missMu.Unlock()
	if err := r.start(ctx, fromStore(p)); err != nil && !errs.Is(err, errs.Conflict) {
		// Registered but not served here yet: the poll retries.
		r.o.Logger.ErrorContext(ctx, "platform: registered but could not be started on this replica", "component_appid", p.AppID, "err", err.Error())
	}
	return Info{AppID: p.AppID, CreatedAt: p.CreatedAt}, nil
}

// Update changes a registered platform's settings: the non-empty ones of
// s replace the stored ones (its appid cannot change). This replica
// restarts the platform with them at once, every other one at its next
// poll. Errors: invalid_argument (details.fields), not_found, conflict
// (the default platform, configured by WXGATE_COMPONENT_*).
func (r *Registry[T]) Update(ctx context.Context, appid string, s Settings) (Info, error) {
	if appid == r.o.Default.AppID {
		return Info{}, errs.E(errs.Conflict, "the default platform is configured by WXGATE_COMPONENT_*: change them and restart")
	}
	r.changes.Lock()
	defer r.changes.Unlock()
	p, err := r.o.Store.UpdatePlatform(ctx, appid, func(p *store.Platform) error {
		for _, f := range []struct{ dst, v *secret.Value }{{&p.Secret, &s.Secret}, {&p.Token, &s.Token}, {&p.AESKey, &s.AESKey}} {
			if !f.v.IsZero() {
				*f.dst = *f.v
			}
		}
		if problems := fromStore(*p).Problems(); len(problems) > 0 {
			return errs.E(errs.InvalidArgument, "request has invalid fields").WithDetails(map[string]any{"fields": problems})
		}
		return nil
	})
	if err != nil {
		return Info{}, err
	}
	r.follow(ctx, p)
	return Info{AppID: p.AppID, CreatedAt: p.CreatedAt}, nil
}

// Remove unregisters a platform and stops it on this replica (the others
// at their next poll). Errors: not_found, conflict (the default platform,
// or tenants still belong to it).
func (r *Registry[T]) Remove(ctx context.Context, appid string) error {
	if appid == r.o.Default.AppID {
		return errs.E(errs.Conflict, "the default platform is configured by WXGATE_COMPONENT_* and cannot be removed")
	}
	r.changes.Lock()
	defer r.changes.Unlock()
	if err := r.o.Store.DeletePlatform(ctx, appid); err != nil {
		return err
	}
	r.stop(appid)
	return nil
}
