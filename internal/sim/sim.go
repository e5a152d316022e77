// Package sim is a faithful, self-contained stand-in for the WeChat Open
// Platform endpoints wxgate uses (docs/simulator.md): the component token chain
// and authorization APIs with WeChat's real checks, user/get and
// user/tag/get with WeChat's paging, the PC and mobile authorization pages,
// encrypted and signed event pushes, and a JSON control API under /sim/ for
// tests (accounts, authorization, tokens, faults, counters). It can serve
// several third-party platforms at once, each with what WeChat keeps per
// platform, over one set of Official Accounts.
//
// It is built from docs/wechat.md and WeChat's getFans/getTagFans pages, not
// from the gateway, so that the gateway is tested against WeChat's behaviour
// rather than against its own expectations. Followers are never stored: an
// openid is derived from (appid, index) and decoded back, so an account of
// ten million followers costs no memory per follower.
//
// Every method is safe for concurrent use. Expiry is computed from the
// injected clock (Options.Now), so tests never sleep.
package sim

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultTicketInterval      = 600 * time.Second
	DefaultTokenLifetime       = 7200 * time.Second
	DefaultTokenOverlap        = 5 * time.Minute
	DefaultDailyQuota          = 500
	DefaultPushRetries         = 3
	DefaultPushRetryDelay      = time.Second
	DefaultPreAuthCodeLifetime = 600 * time.Second
	// AuthCodeLifetime is how long an authorization code can be exchanged
	// with api_query_auth (the expires_in=600 appended to redirect_uri).
	AuthCodeLifetime = 600 * time.Second
	// TicketLifetime is how long a pushed component_verify_ticket is
	// accepted by api_component_token before it answers 61005.
	TicketLifetime = 12 * time.Hour
	// PageSize is the maximum number of openids in one user/get or
	// user/tag/get page.
	PageSize = 10000
	// MaxFollowers bounds AccountSpec.Followers.
	MaxFollowers = 2_000_000_000
	// MaxAuthorizerListCount is the largest count api_get_authorizer_list accepts.
	MaxAuthorizerListCount = 500
	// maxTicketsKept bounds the remembered tickets (oldest forgotten first).
	maxTicketsKept = 256
	// runCatchUp bounds the wait for the next ticket after a failed push.
	runCatchUp = 15 * time.Second
	// maxPooledBuffers bounds the page buffers kept for reuse (about 320 KB
	// each for a full page).
	maxPooledBuffers = 16
	// maxBody bounds every request body the simulator reads.
	maxBody = 1 << 20
)

// Errors returned by the control methods (and mapped to HTTP statuses by the
// /sim/ API). Match them with errors.Is.
var (
	// ErrUnknownAccount: no simulated account has this appid (HTTP 404).
	ErrUnknownAccount = errors.New("sim: unknown account")
	// ErrAccountExists: CreateAccount with an appid already in use (HTTP 409).
	ErrAccountExists = errors.New("sim: account already exists")
	// ErrInvalid: a spec, fault or argument failed validation (HTTP 400).
	ErrInvalid = errors.New("sim: invalid argument")
	// ErrInvalidPreAuthCode: the pre_auth_code is unknown, expired, already
	// used, or restricted to another account (HTTP 400).
	ErrInvalidPreAuthCode = errors.New("sim: invalid pre_auth_code")
	// ErrNotAuthorized: the account has not authorized the platform (HTTP 409).
	ErrNotAuthorized = errors.New("sim: account has not authorized the platform")
	// ErrNoToken: no access token has been issued yet (HTTP 409).
	ErrNoToken = errors.New("sim: no access token issued")
	// ErrPush: an event push was not answered "success" after all retries
	// (HTTP 502). The state change that caused the push stands.
	ErrPush = errors.New("sim: event push not answered success")
)

// Options configure a Simulator. Zero fields take the documented defaults.
type Options struct {
	// ComponentAppID, ComponentSecret, Token and EncodingAESKey are the
	// primary third-party platform's settings (required); the gateway must
	// be configured with the same values.
	ComponentAppID, ComponentSecret, Token, EncodingAESKey string
	// EventURL is where the primary platform's events are pushed ("" = do
	// not push).
	EventURL string
	// MessageURL is the primary platform's message and event receive URL, with
	// $APPID$ where the account's appid goes, as configured on WeChat
	// ("" = followers' messages have nowhere to go).
	MessageURL string
	// Platforms are more third-party platforms served besides the primary
	// one above, each with its own settings (docs/simulator.md, "Several
	// platforms"); their appids must be distinct.
	Platforms []PlatformOptions
	// PublicURL is the simulator's own base URL, used for the form action of
	// the authorization page ("" = root-relative links).
	PublicURL string
	// TicketInterval is the period of component_verify_ticket pushes made by
	// Run (default 600s; negative disables periodic pushes).
	TicketInterval time.Duration
	// TokenLifetime is the lifetime of component AND authorizer access
	// tokens (default 7200s).
	TokenLifetime time.Duration
	// TokenOverlap is how long the previous token keeps working after a
	// refresh, never past its own expiry (default 5m; negative = none).
	TokenOverlap time.Duration
	// DailyQuota is the per-account, per-API daily call limit of user/get
	// and user/tag/get (0 = 500; -1 = unlimited). AccountSpec.DailyQuota
	// overrides it per account.
	DailyQuota int
	// PushRetries is how many times a push not answered "success" is
	// retried (default 3; negative = no retries).
	PushRetries int
	// PushRetryDelay is the pause before each retry (default 1s).
	PushRetryDelay time.Duration
	// PreAuthCodeLifetime is the lifetime of pre_auth_codes, returned as
	// expires_in by api_create_preauthcode (default 600s).
	PreAuthCodeLifetime time.Duration
	// Now is the clock every expiry and quota day is computed from
	// (default time.Now).
	Now func() time.Time
	// Rand drives fault injection; when nil, Seed seeds one (a zero Seed
	// picks a random seed). Tokens and codes always come from crypto/rand.
	Rand *mrand.Rand
	// Seed seeds the fault-injection generator when Rand is nil.
	Seed int64
	// HTTPClient sends the event pushes (default: a client with a 10s timeout).
	HTTPClient *http.Client
	// Logger receives push and control logs; never secrets (default: discard).
	Logger *slog.Logger
}

// Simulator is a simulated WeChat Open Platform serving one or more
// third-party platforms (the primary one from Options.ComponentAppID, more
// from Options.Platforms and AddPlatform). Create it with New, serve
// Handler, and call Run to push tickets periodically. Its platform-scoped
// methods act on the primary platform; Platform gives the others'.
type Simulator struct {
	opts    Options
	primary *Platform
	log     *slog.Logger
	client  *http.Client
	pages   *template.Template
	bufs    chan []byte // free list of page buffers (bounded, deterministic)
	mux     *http.ServeMux
	ridSeq  atomic.Uint64
	catchUp time.Duration // wait after a failed periodic push (runCatchUp)
	added   chan struct{} // AddPlatform wakes Run

	mu            sync.Mutex
	rng           *mrand.Rand
	platforms     map[string]*Platform
	platformOrder []*Platform // the primary first
	components    tokenSet    // owner = component appid
	authorizers   tokenSet    // owner = authorizerKey(component appid, account appid)
	accounts      map[string]*account
	order         []*account
	faults        []Fault
	// deliveries and customs record the message pushes and the
	// customer-service messages received (newest last, bounded).
	deliveries []Delivery
	customs    []CustomMessage

	cmu      sync.Mutex
	counters counterSet
}

type preAuthCode struct {
	expires     time.Time
	used        bool
	redirectURI string // remembered when the page is shown
	bizAppID    string
}

type authCode struct {
	appid   string
	expires time.Time
}

// New validates opts, applies the defaults and returns a Simulator.
func New(opts Options) (*Simulator, error) {
	primary := PlatformOptions{AppID: opts.ComponentAppID, Secret: opts.ComponentSecret, Token: opts.Token,
		EncodingAESKey: opts.EncodingAESKey, EventURL: opts.EventURL, MessageURL: opts.MessageURL}
	problems := primary.problems(true)
	seen := map[string]bool{opts.ComponentAppID: true}
	for _, o := range opts.Platforms {
		problems = append(problems, o.problems(false)...)
		if seen[o.AppID] && o.AppID != "" {
			problems = append(problems, fmt.Errorf("%w: %s appears twice", ErrPlatformExists, o.AppID))
		}
		seen[o.AppID] = true
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("sim: bad options: %w", errors.Join(problems...))
	}
	if opts.TicketInterval == 0 {
		opts.TicketInterval = DefaultTicketInterval
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = DefaultTokenLifetime
	}
	switch {
	case opts.TokenOverlap == 0:
		opts.TokenOverlap = DefaultTokenOverlap
	case opts.TokenOverlap < 0:
		opts.TokenOverlap = 0
	}
	if opts.DailyQuota == 0 {
		opts.DailyQuota = DefaultDailyQuota
	}
	switch {
	case opts.PushRetries == 0:
		opts.PushRetries = DefaultPushRetries
	case opts.PushRetries < 0:
		opts.PushRetries = 0
	}
	if opts.PushRetryDelay <= 0 {
		opts.PushRetryDelay = DefaultPushRetryDelay
	}
	if opts.PreAuthCodeLifetime <= 0 {
		opts.PreAuthCodeLifetime = DefaultPreAuthCodeLifetime
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rng := opts.Rand
	if rng == nil {
		seed := uint64(opts.Seed)
		if seed == 0 {
			seed = mrand.Uint64()
		}
		rng = mrand.New(mrand.NewPCG(seed, 0x5eed5eed))
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("sim: parse page templates: %w", err)
	}
	s := &Simulator{
		opts:        opts,
		log:         logger,
		client:      client,
		pages:       pages,
		rng:         rng,
		platforms:   make(map[string]*Platform),
		components:  newTokenSet(),
		authorizers: newTokenSet(),
		accounts:    make(map[string]*account),
		counters:    newCounterSet(),
		bufs:        make(chan []byte, maxPooledBuffers),
		catchUp:     runCatchUp,
		added:       make(chan struct{}, 1),
	}
	for _, o := range append([]PlatformOptions{primary}, opts.Platforms...) {
		p := s.newPlatform(o)
		s.platforms[o.AppID] = p
		s.platformOrder = append(s.platformOrder, p)
	}
	s.primary = s.platformOrder[0]
	s.mux = s.routes()
	return s, nil
}

// Handler returns the simulator's HTTP handler: every WeChat endpoint, the
// authorization pages and the /sim/ control API.
func (s *Simulator) Handler() http.Handler { return s.mux }

// Run pushes a component_verify_ticket to every platform at once and then
// every TicketInterval until ctx is done, each platform's ticket encrypted
// and signed with its own settings (nothing is pushed to a platform without
// an EventURL, nor at all when TicketInterval is negative). A platform added
// with AddPlatform gets its first ticket as soon as it is added. When a push
// is not answered "success" after its retries it is logged, and the next
// round then comes after at most runCatchUp instead of a whole interval, so
// that a gateway started after the simulator gets a ticket quickly. It
// returns nil when ctx is cancelled.
func (s *Simulator) Run(ctx context.Context) error {
	if s.opts.TicketInterval < 0 {
		<-ctx.Done()
		return nil
	}
	pushed := make(map[*Platform]bool)
	t := time.NewTimer(0)
	defer t.Stop()
	deadline := time.Now()
	reset := func(d time.Duration) { t.Reset(d); deadline = time.Now().Add(d) }
	for {
		round := true
		select {
		case <-ctx.Done():
			return nil
		case <-s.added:
			round = false
		case <-t.C:
		}
		var due []*Platform
		for _, p := range s.platformList() {
			if p.eventURL != nil && (round || !pushed[p]) {
				due = append(due, p)
				pushed[p] = true
			}
		}
		failed := s.pushTickets(ctx, due)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case round && failed:
			reset(min(s.opts.TicketInterval, s.catchUp))
		case round:
			reset(s.opts.TicketInterval)
		case failed && time.Until(deadline) > s.catchUp:
			// A new platform's first ticket failed: the next round comes sooner.
			reset(s.catchUp) // Go ≥ 1.23: Reset discards a pending tick
		}
	}
}

// pushTickets pushes a ticket to each platform concurrently (one dead
// platform does not delay the others) and reports whether any push failed.
func (s *Simulator) pushTickets(ctx context.Context, ps []*Platform) bool {
	var wg sync.WaitGroup
	var failed atomic.Bool
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.PushTicket(ctx); err != nil {
				failed.Store(true)
				if ctx.Err() == nil {
					s.log.Warn("sim: periodic component_verify_ticket push failed", "component_appid", p.appid, "err", err)
				}
			}
		}()
	}
	wg.Wait()
	return failed.Load()
}

func (s *Simulator) now() time.Time { return s.opts.Now() }

// randomString returns n bytes of crypto/rand as unpadded base64url.
func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("sim: crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func newAccessToken() string  { return "90_" + randomString(72) }
func newRefreshToken() string { return "refreshtoken@@@" + randomString(32) }
func newPreAuthCode() string  { return "preauthcode@@@" + randomString(32) }
func newAuthCode() string     { return "queryauthcode@@@" + randomString(32) }
func newTicket() string       { return "ticket@@@" + randomString(64) }
