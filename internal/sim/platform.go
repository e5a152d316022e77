package sim

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// Errors about third-party platforms (docs/simulator.md, "Several platforms").
var (
	// ErrUnknownPlatform: no simulated third-party platform has this
	// component appid (HTTP 404).
	ErrUnknownPlatform = errors.New("sim: unknown platform")
	// ErrPlatformExists: AddPlatform with a component appid already in use
	// (HTTP 409).
	ErrPlatformExists = errors.New("sim: platform already exists")
)

// PlatformOptions are the settings of one third-party platform, as
// registered on WeChat's Open Platform.
type PlatformOptions struct {
	// AppID and Secret are the component_appid and component_appsecret
	// (required).
	AppID, Secret string
	// Token and EncodingAESKey are the message Token and 43-character
	// key every push to this platform is signed and encrypted with.
	Token, EncodingAESKey string
	// EventURL is the platform's authorization event URL ("" = do not push).
	EventURL string
	// MessageURL is the platform's message and event receive URL, with
	// $APPID$ where the account's appid goes ("" = none).
	MessageURL string
}

// Platform is one simulated third-party platform: what WeChat keeps per
// platform (tickets, component tokens, pre-auth and authorization codes,
// each account's authorization of it) and the platform-scoped methods of
// Simulator. Get one with Simulator.Platform; it is safe for concurrent use.
type Platform struct {
	s          *Simulator
	appid      string
	secret     string
	crypter    *wxcrypt.Crypter
	eventURL   *url.URL
	messageURL string

	// Guarded by s.mu.
	tickets     map[string]time.Time // ticket -> pushed at
	ticketOrder []string
	preAuth     map[string]*preAuthCode
	authCodes   map[string]*authCode
	grants      map[string]*grant // account appid -> its authorization of this platform
	// preAuthIssued counts the pre_auth_codes ever issued (the release
	// test's "pre-auth code created").
	preAuthIssued int

	// Guarded by s.cmu: the calls made with this platform's credentials.
	counters counterSet
}

// grant is an account's authorization of one platform, guarded by
// Simulator.mu.
type grant struct {
	authorized bool
	everAuth   bool
	authTime   time.Time
	refresh    string
	// sets are the permission sets granted to this platform (nil: the
	// account's AccountSpec.PermissionSets).
	sets []int
}

// problems validates o; primary names the fields as Options does.
func (o PlatformOptions) problems(primary bool) []error {
	name := func(field, key string) string {
		if primary {
			return field
		}
		return fmt.Sprintf("platform %q: %s", o.AppID, key)
	}
	var problems []error
	if o.AppID == "" {
		problems = append(problems, fmt.Errorf("%s is required", name("ComponentAppID", "appid")))
	}
	if o.Secret == "" {
		problems = append(problems, fmt.Errorf("%s is required", name("ComponentSecret", "secret")))
	}
	if o.AppID != "" {
		if _, err := wxcrypt.New(o.Token, o.EncodingAESKey, o.AppID); err != nil {
			if !primary {
				err = fmt.Errorf("platform %q: %w", o.AppID, err)
			}
			problems = append(problems, err)
		}
	}
	if o.EventURL != "" && !absoluteHTTP(o.EventURL) {
		problems = append(problems, fmt.Errorf("%s %q is not an absolute http(s) URL", name("EventURL", "event_url"), o.EventURL))
	}
	if o.MessageURL != "" && !absoluteHTTP(strings.ReplaceAll(o.MessageURL, appIDPlaceholder, "wx0")) {
		problems = append(problems, fmt.Errorf("%s %q is not an absolute http(s) URL", name("MessageURL", "message_url"), o.MessageURL))
	}
	return problems
}

func absoluteHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// newPlatform builds a platform from options that passed problems.
func (s *Simulator) newPlatform(o PlatformOptions) *Platform {
	crypter, _ := wxcrypt.New(o.Token, o.EncodingAESKey, o.AppID) // validated by problems
	var eventURL *url.URL
	if o.EventURL != "" {
		eventURL, _ = url.Parse(o.EventURL)
	}
	return &Platform{
		s: s, appid: o.AppID, secret: o.Secret, crypter: crypter, eventURL: eventURL, messageURL: o.MessageURL,
		tickets:   make(map[string]time.Time),
		preAuth:   make(map[string]*preAuthCode),
		authCodes: make(map[string]*authCode),
		grants:    make(map[string]*grant),
		counters:  newCounterSet(),
	}
}

// AddPlatform adds a third-party platform at run time. It answers
// ErrInvalid for bad settings and ErrPlatformExists if the component appid
// is taken. A running Run pushes the new platform its first ticket at once.
func (s *Simulator) AddPlatform(o PlatformOptions) error {
	if problems := o.problems(false); len(problems) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(problems...))
	}
	p := s.newPlatform(o)
	s.mu.Lock()
	if _, ok := s.platforms[o.AppID]; ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrPlatformExists, o.AppID)
	}
	s.platforms[o.AppID] = p
	s.platformOrder = append(s.platformOrder, p)
	s.mu.Unlock()
	select {
	case s.added <- struct{}{}:
	default: // Run has a wake-up pending already
	}
	s.log.Info("sim: platform added", "component_appid", o.AppID)
	return nil
}

// Platform returns the handle of the platform with this component appid
// (ErrUnknownPlatform if there is none).
func (s *Simulator) Platform(appid string) (*Platform, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.platformLocked(appid)
}

func (s *Simulator) platformLocked(appid string) (*Platform, error) {
	p, ok := s.platforms[appid]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPlatform, appid)
	}
	return p, nil
}

// Platforms returns the component appids of every platform, the primary
// (Options.ComponentAppID) first, then in the order they were added.
func (s *Simulator) Platforms() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.platformOrder))
	for i, p := range s.platformOrder {
		out[i] = p.appid
	}
	return out
}

func (s *Simulator) platformList() []*Platform {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.platformOrder)
}

// AppID returns the platform's component appid.
func (p *Platform) AppID() string { return p.appid }

// grantLocked returns the account's authorization of p, creating an
// empty one.
func (p *Platform) grantLocked(appid string) *grant {
	g, ok := p.grants[appid]
	if !ok {
		g = &grant{}
		p.grants[appid] = g
	}
	return g
}

// authorizedLocked answers the account's authorization of p when it is
// in force (nil otherwise).
func (p *Platform) authorizedLocked(appid string) *grant {
	if g, ok := p.grants[appid]; ok && g.authorized {
		return g
	}
	return nil
}

// setsLocked answers the permission sets the account grants p.
func (p *Platform) setsLocked(a *account) []int {
	if g, ok := p.grants[a.spec.AppID]; ok && g.sets != nil {
		return g.sets
	}
	return a.spec.PermissionSets
}

// grantsAnyLocked reports whether the account granted p any of the sets.
func (p *Platform) grantsAnyLocked(a *account, sets ...int) bool {
	for _, id := range p.setsLocked(a) {
		if slices.Contains(sets, id) {
			return true
		}
	}
	return false
}

// authorizerKey is the owner of an authorizer access token: one
// (platform, account) authorization.
func authorizerKey(component, appid string) string { return component + "\x00" + appid }

// splitAuthorizerKey reverses authorizerKey.
func splitAuthorizerKey(key string) (component, appid string) {
	component, appid, _ = strings.Cut(key, "\x00")
	return component, appid
}

// key is the owner of p's tokens for the account.
func (p *Platform) key(appid string) string { return authorizerKey(p.appid, appid) }

// platformOf answers the platform a /sim/ call names with its optional
// component_appid query parameter (default: the primary).
func (s *Simulator) platformOf(q url.Values) (*Platform, error) {
	if id := q.Get("component_appid"); id != "" {
		return s.Platform(id)
	}
	return s.primary, nil
}
