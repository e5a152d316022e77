package component

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/lease"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wechat"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// FlowStore is the persistence the authorization flow needs.
type FlowStore interface {
	CreateSession(ctx context.Context, sess store.AuthSession, preAuthCode secret.Value) (store.AuthSession, error)
	GetSession(ctx context.Context, id string) (store.AuthSession, error)
	SessionByPreAuthCode(ctx context.Context, preAuthCode secret.Value) (store.AuthSession, error)
	SessionByAuthCode(ctx context.Context, code secret.Value) (store.AuthSession, error)
	RecordSessionCode(ctx context.Context, id string, code secret.Value) (bool, error)
	BoundTenants(ctx context.Context, componentAppID, appid string) ([]string, error)
	RequestBinding(ctx context.Context, componentAppID, tenantID, appid string) error
	CompleteSession(ctx context.Context, id, appid string) (bool, error)
	SaveAuthorization(ctx context.Context, a store.Authorizer, tenantID string) (store.Authorizer, error)
	GetAuthorizer(ctx context.Context, componentAppID, appid string) (store.Authorizer, error)
	UpdateAuthorizer(ctx context.Context, componentAppID, appid string, expectVersion int64, fn func(*store.Authorizer) error) (store.Authorizer, error)
	lease.Store
}

var _ FlowStore = (*store.Store)(nil)

// FlowAPI is the WeChat calls the authorization flow needs.
type FlowAPI interface {
	CreatePreAuthCode(ctx context.Context, componentToken secret.Value) (wechat.PreAuthCode, error)
	QueryAuth(ctx context.Context, componentToken, authCode secret.Value) (wechat.Authorization, error)
	GetAuthorizerInfo(ctx context.Context, componentToken secret.Value, appid string) (wechat.AuthorizerInfo, error)
	FindRefreshToken(ctx context.Context, componentToken secret.Value, appid string) (secret.Value, error)
	RefreshAuthorizerToken(ctx context.Context, componentToken secret.Value, appid string, refreshToken secret.Value) (wechat.AuthorizerToken, error)
}

var _ FlowAPI = (*wechat.Client)(nil)

// FlowOptions configure a Flow.
type FlowOptions struct {
	AppID       string
	Store       FlowStore
	WeChat      FlowAPI
	Credentials *Credentials
	// Owner identifies this replica in leases.
	Owner string
	// PublicURL, MPURL and OpenURL are WXGATE_PUBLIC_URL,
	// WXGATE_WECHAT_MP_URL and WXGATE_WECHAT_OPEN_URL.
	PublicURL, MPURL, OpenURL string
	// CallbackPath is the path of the platform's authorization callback
	// under PublicURL (default /wechat/callback; another platform of the
	// deployment has its own).
	CallbackPath string
	Now          func() time.Time
	Logger       *slog.Logger
	Metrics      *obs.Metrics
	// OnAuthorizerChanged, when set, sees every authorizer the flow
	// writes, so this replica's token cache is current at once (other
	// replicas catch up by polling).
	OnAuthorizerChanged func(store.Authorizer)
	// OnBound, when set, is called after an authorization bound an account
	// to a tenant, so this replica's tenant directory knows the binding
	// before the browser is redirected back to the tenant.
	OnBound func(ctx context.Context, tenantID, appid string)
	// Tenants, when set, gives each tenant's allowed return_url hosts;
	// nil allows any host.
	Tenants ReturnHosts
	// AutoBindSharedAccounts binds an account that another tenant already
	// holds to the authorizing tenant at once. By default (false) such a
	// binding waits as pending until the operator approves it.
	AutoBindSharedAccounts bool
	// OnPendingBinding, when set, is told of each binding left waiting for
	// approval: tenantID authorized appid, which boundTo already hold. It
	// is where the tenants holding the account are told.
	OnPendingBinding func(ctx context.Context, tenantID, appid string, boundTo []string)
	// CallbackWait is how long the browser's callback waits for WeChat's
	// authorized event, which ties its code to the session (default
	// DefaultCallbackWait).
	CallbackWait time.Duration
}

// ReturnHosts says where a tenant's authorizations may send the browser
// back: the hosts allowed in return_url (empty: any) and whether the
// tenant exists.
type ReturnHosts interface {
	ReturnURLHosts(tenantID string) ([]string, bool)
	// CatchUp brings the hosts up to what the store holds, so a change made
	// through another replica a moment ago applies here too.
	CatchUp(ctx context.Context) error
}

// DefaultCallbackWait is how long a callback that arrives before WeChat's
// authorized event waits for it. WeChat pushes the event as it redirects the
// browser, so it is normally there first or within a second.
const DefaultCallbackWait = 10 * time.Second

// callbackPoll is how often a waiting callback looks for the event.
const callbackPoll = 100 * time.Millisecond

// Flow is the authorization flow (docs/api.md, "WeChat-facing endpoints" and "POST /v1/authorizations").
type Flow struct {
	o      FlowOptions
	log    *slog.Logger
	sf     singleflight.Group
	leases *lease.Leases
}

// NewFlow builds a Flow.
func NewFlow(o FlowOptions) *Flow {
	withDefaults(&o.Now, &o.Logger)
	if o.CallbackWait <= 0 {
		o.CallbackWait = DefaultCallbackWait
	}
	if o.CallbackPath == "" {
		o.CallbackPath = "/wechat/callback"
	}
	return &Flow{o: o, log: o.Logger,
		leases: lease.New(o.Store, o.Owner, o.Now, o.Logger)}
}

// AuthorizationRequest is the body of POST /v1/authorizations.
type AuthorizationRequest struct {
	ReturnURL string
	AuthType  int    // 1 Official Accounts, 2 Mini Programs, 3 both (default)
	BizAppID  string // optional: restrict to one account
}

// Authorization is a started authorization session: where to send the
// merchant's admin.
type Authorization struct {
	ID        string
	URL       string
	MobileURL string
	ExpiresAt time.Time
}

const (
	defaultAuthType = 3
	maxReturnURL    = 2048
)

// CreateAuthorization starts an authorization for tenantID: it validates
// the request, gets a pre_auth_code and stores a session owning it.
// Errors: invalid_argument (return_url not an absolute http(s) URL, bad
// auth_type or biz_appid), component_not_ready, upstream_*; internal when
// tenantID is empty (fail closed).
func (f *Flow) CreateAuthorization(ctx context.Context, tenantID string, req AuthorizationRequest) (Authorization, error) {
	if tenantID == "" {
		return Authorization{}, errs.E(errs.Internal, "internal error")
	}
	if err := f.validateReturnURL(ctx, tenantID, req.ReturnURL); err != nil {
		return Authorization{}, err
	}
	if req.AuthType == 0 {
		req.AuthType = defaultAuthType
	}
	if req.AuthType < 1 || req.AuthType > 3 {
		return Authorization{}, errs.Invalid("auth_type", "auth_type must be 1 (Official Accounts), 2 (Mini Programs) or 3 (both)")
	}
	if req.BizAppID != "" && !config.ValidAppID(req.BizAppID) {
		return Authorization{}, errs.Invalid("biz_appid", "biz_appid must be a WeChat appid")
	}
	var code wechat.PreAuthCode
	err := f.o.Credentials.withToken(ctx, func(tok secret.Value) error {
		var err error
		code, err = f.o.WeChat.CreatePreAuthCode(ctx, tok)
		return err
	})
	if err != nil {
		return Authorization{}, err
	}
	now := f.o.Now().UTC()
	sess, err := f.o.Store.CreateSession(ctx, store.AuthSession{
		ID: newSessionID(), TenantID: tenantID, ComponentAppID: f.o.AppID, ReturnURL: req.ReturnURL,
		AuthType: req.AuthType, BizAppID: req.BizAppID, CreatedAt: now, ExpiresAt: now.Add(code.ExpiresIn),
	}, code.Code)
	if err != nil {
		return Authorization{}, err
	}
	pc, mobile := f.authURLs(sess, code.Code)
	return Authorization{ID: sess.ID, URL: pc, MobileURL: mobile, ExpiresAt: sess.ExpiresAt}, nil
}

// validateReturnURL checks return_url: an absolute http(s) URL without
// user information, on one of the tenant's allowed hosts when it has any,
// or on the gateway's own host (the console's page that ends an
// authorization it started).
func (f *Flow) validateReturnURL(ctx context.Context, tenantID, raw string) error {
	bad := errs.Invalid("return_url", "return_url must be an absolute http or https URL")
	if raw == "" || len(raw) > maxReturnURL {
		return bad
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return bad
	}
	if u.User != nil {
		return errs.Invalid("return_url", "return_url must not carry a user name or password")
	}
	if f.o.Tenants == nil {
		return nil
	}
	// Read your writes: hosts just allowed (or a first restriction just
	// set) through another replica apply at once (one coalesced read; an
	// authorization is not the hot path).
	if err := f.o.Tenants.CatchUp(ctx); err != nil {
		return err
	}
	hosts, _ := f.o.Tenants.ReturnURLHosts(tenantID)
	host := strings.ToLower(u.Hostname())
	if len(hosts) > 0 && !slices.Contains(hosts, host) && host != f.publicHost() {
		return errs.Invalid("return_url", "return_url must be on one of the hosts the operator allowed for this tenant")
	}
	return nil
}

// publicHost is the host of WXGATE_PUBLIC_URL, lowercase ("" if unset).
func (f *Flow) publicHost() string {
	u, err := url.Parse(f.o.PublicURL)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "as_" + hex.EncodeToString(b)
}

// CallbackURL is the redirect_uri of a session.
func (f *Flow) CallbackURL(sessionID string) string {
	return f.o.PublicURL + f.o.CallbackPath + "?session=" + url.QueryEscape(sessionID)
}

// authURLs builds the PC and mobile authorization page URLs (docs/wechat.md, "The authorization pages").
func (f *Flow) authURLs(sess store.AuthSession, code secret.Value) (pc, mobile string) {
	params := func() string {
		// Order as WeChat documents it; url.Values would sort the keys.
		s := "component_appid=" + url.QueryEscape(f.o.AppID) +
			"&pre_auth_code=" + url.QueryEscape(code.Reveal()) +
			"&redirect_uri=" + url.QueryEscape(f.CallbackURL(sess.ID)) +
			"&auth_type=" + strconv.Itoa(sess.AuthType)
		if sess.BizAppID != "" {
			s += "&biz_appid=" + url.QueryEscape(sess.BizAppID)
		}
		return s
	}
	pc = f.o.MPURL + "/cgi-bin/componentloginpage?" + params()
	mobile = f.o.OpenURL + "/wxaopen/safe/bindcomponent?action=bindcomponent&no_scan=1&" + params() + "#wechat_redirect"
	return pc, mobile
}

// ErrBadSession is answered by Callback for a missing, unknown or expired
// session, or a callback without an authorization code (the page shows it;
// there is nowhere to redirect).
var ErrBadSession = errs.E(errs.InvalidArgument, "this authorization link is unknown or has expired; start the authorization again")

// ErrForeignCode is answered by Callback for an authorization code that
// WeChat delivered for another session's pre_auth_code: it is never
// exchanged for this session, and the browser is not redirected.
var ErrForeignCode = errs.E(errs.InvalidArgument, "this authorization code does not belong to this authorization link; start the authorization again")

// ErrNotConfirmed is answered by Callback when WeChat's authorized event,
// which ties the code to the session, did not arrive in time. The
// authorization completes when the event arrives.
var ErrNotConfirmed = errs.E(errs.UpstreamUnavailable, "WeChat has not confirmed this authorization yet; it completes when WeChat's notification arrives")

// CallbackResult says where to send the browser after the callback.
type CallbackResult struct {
	ReturnURL string
	AppID     string
	// Pending: the account was authorized but waits for the operator's
	// approval before the tenant may use it (another tenant holds it).
	Pending bool
}

// Callback completes the session sessionID with the authorization code
// WeChat appended to the redirect. The code is honoured only if WeChat's
// authorized event delivered it for this session's own pre_auth_code
// (docs/architecture.md, "Authorization codes and sessions"): the callback
// waits up to CallbackWait for that event. It answers, with an empty
// ReturnURL (an HTML page, no redirect): ErrBadSession when the session is
// missing, unknown or expired or the code is missing; ErrForeignCode for a
// code another session's event delivered; ErrNotConfirmed when no event
// came in time. Any other error comes with the session's ReturnURL so the
// browser can be sent back with result=error.
func (f *Flow) Callback(ctx context.Context, sessionID, authCode string) (CallbackResult, error) {
	if sessionID == "" || authCode == "" {
		return CallbackResult{}, ErrBadSession
	}
	sess, err := f.o.Store.GetSession(ctx, sessionID)
	if errs.Is(err, errs.NotFound) {
		return CallbackResult{}, ErrBadSession
	}
	if err != nil {
		return CallbackResult{}, err
	}
	if sess.ComponentAppID != f.o.AppID {
		return CallbackResult{}, ErrBadSession
	}
	// The admin may confirm just before the pre_auth_code expires; the
	// auth_code WeChat then issues lives another 600 s.
	if !f.o.Now().Before(sess.ExpiresAt.Add(authCodeLifetime)) {
		return CallbackResult{}, ErrBadSession
	}
	code := secret.Value(authCode)
	sess, err = f.awaitEvent(ctx, sess, code)
	if err != nil {
		return CallbackResult{}, err
	}
	res := CallbackResult{ReturnURL: sess.ReturnURL}
	switch {
	case sess.AuthCodeHash == "":
		return CallbackResult{}, ErrNotConfirmed
	case !sess.MatchesAuthCode(code):
		f.log.WarnContext(ctx, "component: callback with an authorization code that is not its session's; refused", "session", sess.ID)
		return CallbackResult{}, ErrForeignCode
	case sess.CompletedAt != nil && sess.AppID != "":
		res.AppID = sess.AppID // the event completed it
	default:
		// The event named this code for this session but has not completed
		// it (its exchange failed, or is running): complete it here.
		if res.AppID, err = f.complete(ctx, &sess, code, ""); err != nil {
			return res, err
		}
	}
	bound, err := f.o.Store.BoundTenants(ctx, f.o.AppID, res.AppID)
	if err != nil {
		return res, err
	}
	res.Pending = !slices.Contains(bound, sess.TenantID)
	return res, nil
}

// awaitEvent waits, up to CallbackWait, until WeChat's authorized event has
// named an authorization code for sess, and returns sess as it then is. It
// returns at once with ErrForeignCode when another session's event named
// code.
func (f *Flow) awaitEvent(ctx context.Context, sess store.AuthSession, code secret.Value) (store.AuthSession, error) {
	polls := int(f.o.CallbackWait / callbackPoll)
	t := time.NewTicker(callbackPoll)
	defer t.Stop()
	for i := 0; ; i++ {
		if sess.AuthCodeHash != "" {
			return sess, nil
		}
		if sess.CompletedAt != nil {
			// Completed without a recorded code (before codes were
			// recorded): no event will name one now.
			return sess, ErrBadSession
		}
		other, err := f.o.Store.SessionByAuthCode(ctx, code)
		switch {
		case err == nil && other.ID != sess.ID:
			f.log.WarnContext(ctx, "component: callback with another session's authorization code; refused", "session", sess.ID)
			return sess, ErrForeignCode
		case err != nil && !errs.Is(err, errs.NotFound):
			return sess, err
		}
		if i >= polls {
			return sess, nil
		}
		select {
		case <-ctx.Done():
			return sess, errs.Wrap(errs.UpstreamTimeout, "timed out waiting for WeChat's authorized event", ctx.Err())
		case <-t.C:
		}
		if sess, err = f.o.Store.GetSession(ctx, sess.ID); err != nil {
			return sess, err
		}
	}
}

// HandleEvent applies a decrypted platform event: tickets, authorized,
// updateauthorized and unauthorized; other InfoTypes are ignored. An error
// means the event should be handled again when WeChat retries it.
func (f *Flow) HandleEvent(ctx context.Context, ev wxcrypt.Event) error {
	switch ev.InfoType {
	case wxcrypt.InfoTypeVerifyTicket:
		// Tickets are ordered by when WeChat created them; a push without
		// a CreateTime is taken as created now.
		created := f.o.Now()
		if ev.CreateTime > 0 {
			created = time.Unix(ev.CreateTime, 0)
		}
		return f.o.Credentials.HandleTicket(ctx, secret.Value(ev.ComponentVerifyTicket), created)
	case wxcrypt.InfoTypeAuthorized, wxcrypt.InfoTypeUpdateAuthorized:
		if ev.AuthorizationCode == "" || ev.AuthorizerAppid == "" {
			return errs.E(errs.InvalidArgument, "authorization event without AuthorizationCode or AuthorizerAppid")
		}
		var sess *store.AuthSession
		if ev.PreAuthCode != "" {
			s, err := f.o.Store.SessionByPreAuthCode(ctx, secret.Value(ev.PreAuthCode))
			switch {
			case err == nil && s.ComponentAppID == f.o.AppID:
				// The code is this session's: the browser's callback is
				// honoured with it alone.
				if ok, err := f.o.Store.RecordSessionCode(ctx, s.ID, secret.Value(ev.AuthorizationCode)); err != nil {
					return err
				} else if !ok {
					f.log.WarnContext(ctx, "component: a second authorization code for one pre_auth_code; the first stays the session's", "session", s.ID)
				}
				sess = &s
			case err == nil, errs.Is(err, errs.NotFound):
				f.log.InfoContext(ctx, "component: authorization event for a pre_auth_code no session owns; stored unbound",
					"authorizer_appid", ev.AuthorizerAppid)
			default:
				return err
			}
		}
		_, err := f.complete(ctx, sess, secret.Value(ev.AuthorizationCode), ev.AuthorizerAppid)
		return err
	case wxcrypt.InfoTypeUnauthorized:
		if ev.AuthorizerAppid == "" {
			return errs.E(errs.InvalidArgument, "unauthorized event without AuthorizerAppid")
		}
		var at time.Time
		if ev.CreateTime > 0 {
			at = time.Unix(ev.CreateTime, 0)
		}
		return f.Unauthorized(ctx, ev.AuthorizerAppid, at)
	}
	return nil
}

// complete exchanges a one-time authorization code, stores the authorizer
// and binds it through sess (nil: store it unbound). Callback and event
// carry the same code; whichever comes first exchanges it, the other finds
// the session completed (or WeChat answering that the code is used) and
// succeeds with the same appid. appidHint is the event's AuthorizerAppid.
func (f *Flow) complete(ctx context.Context, sess *store.AuthSession, code secret.Value, appidHint string) (string, error) {
	if sess != nil && sess.CompletedAt != nil && sess.AppID != "" {
		return sess.AppID, nil
	}
	sum := sha256.Sum256([]byte(code.Reveal()))
	digest := hex.EncodeToString(sum[:16])
	// The callback (no appid) and the event (which names the account and so
	// can recover a lost exchange) do not share a flight.
	v, err, _ := f.sf.Do("code:"+digest+":"+appidHint, func() (any, error) {
		ctx, cancel := f.leases.Detach(ctx, codeLeaseTTL)
		defer cancel()
		// The lease is held per call, not per replica: the callback and the
		// event of one replica must not both hold it.
		name, attempt := "authcode:"+digest, f.leases.Attempt()
		held, err := attempt.Take(ctx, name, codeLeaseTTL)
		if err != nil {
			return "", err
		}
		if held == nil {
			// Someone else (the other of callback and event, here or on
			// another replica) is exchanging this code: wait for it.
			return f.waitForExchange(ctx, sess, code, appidHint, attempt, name)
		}
		defer held.Release(ctx)
		if sess != nil {
			if appid, ok := f.completed(ctx, sess); ok {
				return appid, nil
			}
		}
		return f.exchange(ctx, sess, code, appidHint)
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// queryAuth exchanges an authorization code for the account's tokens and
// granted sets (api_query_auth), as the authorization to store.
func (f *Flow) queryAuth(ctx context.Context, code secret.Value) (store.Authorizer, error) {
	var auth wechat.Authorization
	// The account's first token lives from no later than this: its expiry
	// counts from here, not from after api_get_authorizer_info and the write.
	asked := f.o.Now().UTC()
	err := f.o.Credentials.withToken(ctx, func(tok secret.Value) error {
		var err error
		auth, err = f.o.WeChat.QueryAuth(ctx, tok, code)
		return err
	})
	return store.Authorizer{ComponentAppID: f.o.AppID, AppID: auth.AppID, Status: store.StatusAuthorized,
		AccessToken: auth.AccessToken, RefreshToken: auth.RefreshToken,
		TokenExpiresAt: asked.Add(auth.ExpiresIn), TokenRefreshedAt: asked, PermissionSets: auth.PermissionSets}, err
}

func (f *Flow) exchange(ctx context.Context, sess *store.AuthSession, code secret.Value, appidHint string) (string, error) {
	// next is what will be stored: the exchange's answer, or what a
	// recovery found.
	next, err := f.queryAuth(ctx, code)
	recovered, kept := false, false
	if err != nil && wechat.ErrcodeOf(err) == wechat.ErrCodeInvalid {
		// The code is used: by the other of callback and event (the
		// session says so), or by an exchange whose answer was lost.
		if sess != nil {
			if appid, ok := f.completed(ctx, sess); ok {
				return appid, nil
			}
		}
		if appidHint != "" {
			if next, kept, err = f.recoverUsedCode(ctx, appidHint); err == nil {
				recovered = true
			}
		}
	}
	if err != nil {
		f.log.WarnContext(ctx, "component: exchanging the authorization code failed", "err", err.Error(), "authorizer_appid", appidHint)
		return "", err
	}
	if appidHint != "" && next.AppID != appidHint {
		f.log.WarnContext(ctx, "component: the event's AuthorizerAppid differs from api_query_auth's", "event_appid", appidHint, "appid", next.AppID)
	}
	var info wechat.AuthorizerInfo
	err = f.o.Credentials.withToken(ctx, func(tok secret.Value) error {
		var err error
		info, err = f.o.WeChat.GetAuthorizerInfo(ctx, tok, next.AppID)
		return err
	})
	switch {
	case err != nil && recovered:
		// Without api_query_auth's answer the granted sets come only from
		// here: fail, so WeChat's retry of the event tries again.
		return "", err
	case recovered && !info.Authorized:
		return "", errs.E(errs.UpstreamUnavailable, "api_get_authorizer_info answered without the account's authorization; WeChat will retry the event")
	case err != nil:
		// The tokens are what matter; the nick name can wait.
		f.log.WarnContext(ctx, "component: api_get_authorizer_info failed; storing without nick name", "appid", next.AppID, "err", err.Error())
	case kept && sess == nil && slices.Equal(next.PermissionSets, info.PermissionSets):
		return next.AppID, nil // a retry or replay for an account already up to date: nothing to change
	case recovered:
		next.PermissionSets = info.PermissionSets
		f.log.InfoContext(ctx, "component: the authorization code was used by an exchange whose answer was lost; recovered the account", "appid", next.AppID)
	}
	tenantID := ""
	if sess != nil {
		tenantID = sess.TenantID
	}
	// An account another tenant holds is bound to this one only with the
	// operator's approval (unless AutoBindSharedAccounts): WeChat's page
	// names only the platform, so its admin cannot tell which tenant asks.
	var holders []string
	if tenantID != "" && !f.o.AutoBindSharedAccounts {
		bound, err := f.o.Store.BoundTenants(ctx, f.o.AppID, next.AppID)
		if err != nil {
			return "", err
		}
		if len(bound) > 0 && !slices.Contains(bound, tenantID) {
			holders = bound
		}
	}
	bindTo := tenantID
	if holders != nil {
		bindTo = ""
	}
	next.ComponentAppID, next.Status, next.NickName = f.o.AppID, store.StatusAuthorized, info.NickName
	saved, err := f.o.Store.SaveAuthorization(ctx, next, bindTo)
	if err != nil {
		return "", fmt.Errorf("component: store authorization of %s: %w", next.AppID, err)
	}
	if holders != nil {
		if err := f.o.Store.RequestBinding(ctx, f.o.AppID, tenantID, next.AppID); err != nil {
			return "", fmt.Errorf("component: request binding of %s: %w", next.AppID, err)
		}
		f.log.InfoContext(ctx, "component: account held by another tenant; the binding waits for the operator's approval",
			"appid", next.AppID, "tenant", tenantID, "bound_to", holders)
		if f.o.OnPendingBinding != nil {
			f.o.OnPendingBinding(ctx, tenantID, next.AppID, holders)
		}
	}
	if sess != nil {
		if _, err := f.o.Store.CompleteSession(ctx, sess.ID, next.AppID); err != nil {
			return "", fmt.Errorf("component: complete session: %w", err)
		}
	}
	if f.o.OnAuthorizerChanged != nil {
		f.o.OnAuthorizerChanged(saved)
	}
	if bindTo != "" && f.o.OnBound != nil {
		f.o.OnBound(ctx, bindTo, next.AppID)
	}
	f.log.InfoContext(ctx, "component: account authorized the platform", "appid", next.AppID, "tenant", tenantID,
		"permission_sets", saved.PermissionSets)
	return next.AppID, nil
}

// recoverUsedCode finds appid's tokens when WeChat says the event's
// authorization code is used (61009) and no session recorded it: an earlier
// exchange's answer was lost (a timeout after WeChat had used the code), or
// this is an update or a retry for an account already stored. An account
// already authorized here is returned as stored, kept (the token manager
// refreshes its tokens under its lease; only the sets and the binding
// change). Otherwise its refresh token is still listed by
// api_get_authorizer_list, and a refresh with it gives the access token.
func (f *Flow) recoverUsedCode(ctx context.Context, appid string) (a store.Authorizer, kept bool, err error) {
	a, err = f.o.Store.GetAuthorizer(ctx, f.o.AppID, appid)
	switch {
	case err == nil && a.Status == store.StatusAuthorized && !a.AccessToken.IsZero() && a.TokenExpiresAt.After(f.o.Now()):
		return a, true, nil
	case err != nil && !errs.Is(err, errs.NotFound):
		return a, false, err
	}
	since := f.o.Now().UTC()
	err = f.o.Credentials.withToken(ctx, func(tok secret.Value) error {
		refresh, err := f.o.WeChat.FindRefreshToken(ctx, tok, appid)
		if err != nil {
			return err
		}
		if refresh.IsZero() {
			return errs.E(errs.UpstreamError, "the authorization code is used and the account is not among the platform's authorizers")
		}
		t, err := f.o.WeChat.RefreshAuthorizerToken(ctx, tok, appid, refresh)
		if err != nil {
			return err
		}
		a = store.Authorizer{AppID: appid, AccessToken: t.AccessToken, RefreshToken: t.RefreshToken,
			TokenExpiresAt: since.Add(t.ExpiresIn), TokenRefreshedAt: since}
		return nil
	})
	return a, false, err
}

// authCodeLifetime is how long an auth_code stays valid (docs/wechat.md, "The authorization pages").
const authCodeLifetime = 600 * time.Second

// errStaleEvent marks an event that an authorization has since overtaken.
var errStaleEvent = errors.New("component: event older than the last authorization")

// codeLeaseTTL bounds one exchange of an authorization code (the lease
// rule of lease.TTL for what lives authCodeLifetime).
var codeLeaseTTL = lease.TTL(lease.DefaultTTL, authCodeLifetime)

// completed reports whether sess was completed (by the other of callback
// and event, here or on another replica), and with which account.
func (f *Flow) completed(ctx context.Context, sess *store.AuthSession) (string, bool) {
	s, err := f.o.Store.GetSession(ctx, sess.ID)
	if err == nil && s.CompletedAt != nil && s.AppID != "" {
		return s.AppID, true
	}
	return "", false
}

// waitForExchange waits until the replica holding the code's lease has
// recorded the authorization. If it gave the lease up without doing so (a
// callback whose exchange failed), the event, which names the account,
// takes the lease and exchanges (and so recovers) itself.
func (f *Flow) waitForExchange(ctx context.Context, sess *store.AuthSession, code secret.Value, appidHint string, attempt *lease.Leases, name string) (string, error) {
	var appid string
	var exchangeErr error
	err := attempt.Wait(ctx, "the authorization to complete", func(ctx context.Context) (bool, error) {
		if sess != nil {
			var ok bool
			if appid, ok = f.completed(ctx, sess); ok {
				return true, nil
			}
		}
		held, err := attempt.Take(ctx, name, codeLeaseTTL)
		if err != nil || held == nil {
			return false, err
		}
		defer held.Release(ctx)
		if sess != nil {
			var ok bool
			if appid, ok = f.completed(ctx, sess); ok {
				return true, nil
			}
		}
		if appidHint == "" {
			exchangeErr = errs.E(errs.UpstreamError, "the authorization could not be completed; start it again")
			return true, nil
		}
		// An event: exchange (a used code recovers, and a retry for an
		// account already up to date changes nothing).
		appid, exchangeErr = f.exchange(ctx, sess, code, appidHint)
		return true, nil
	})
	if errors.Is(err, lease.ErrStillHeld) {
		return "", errs.E(errs.UpstreamUnavailable, "the authorization is still being completed; try again")
	}
	if err != nil {
		return "", err
	}
	return appid, exchangeErr
}

// Unauthorized marks the account unauthorized and erases its tokens: every
// later call for it is refused at once. at is when WeChat created the event
// (zero if unknown): an event older than the account's last authorization
// is a late retry or out of order, and is ignored.
func (f *Flow) Unauthorized(ctx context.Context, appid string, at time.Time) error {
	a, err := f.o.Store.UpdateAuthorizer(ctx, f.o.AppID, appid, 0, func(a *store.Authorizer) error {
		if !at.IsZero() && at.Before(a.AuthorizedAt.Truncate(time.Second)) {
			return errStaleEvent
		}
		a.Status = store.StatusUnauthorized
		a.AccessToken, a.RefreshToken = "", ""
		a.TokenExpiresAt, a.TokenRefreshedAt = time.Time{}, time.Time{}
		return nil
	})
	if errs.Is(err, errs.NotFound) {
		f.log.InfoContext(ctx, "component: unauthorized event for an unknown account", "appid", appid)
		return nil
	}
	if errors.Is(err, errStaleEvent) {
		f.log.InfoContext(ctx, "component: unauthorized event older than the account's last authorization; ignored", "appid", appid)
		return nil
	}
	if err != nil {
		return fmt.Errorf("component: mark %s unauthorized: %w", appid, err)
	}
	if f.o.OnAuthorizerChanged != nil {
		f.o.OnAuthorizerChanged(a)
	}
	f.log.InfoContext(ctx, "component: account unauthorized the platform", "appid", appid)
	return nil
}

// ExchangeQueryAuthCode exchanges the authorization code WeChat's
// full-network release test sends in a "QUERY_AUTH_CODE:" message
// (docs/wechat.md, "The full-network release test") and returns the
// account and its fresh access token. The account's authorization is
// stored like any other, bound to no tenant (a binding it already has is
// kept), so the token manager knows the new tokens.
func (f *Flow) ExchangeQueryAuthCode(ctx context.Context, code secret.Value) (string, secret.Value, error) {
	auth, err := f.queryAuth(ctx, code)
	if err != nil {
		return "", "", err
	}
	saved, err := f.o.Store.SaveAuthorization(ctx, auth, "")
	if err != nil {
		// The token is good whether or not it was stored: the reply is
		// what the test checks.
		f.log.WarnContext(ctx, "component: storing the release test's authorization failed", "appid", auth.AppID, "err", err.Error())
	} else if f.o.OnAuthorizerChanged != nil {
		f.o.OnAuthorizerChanged(saved)
	}
	return auth.AppID, auth.AccessToken, nil
}
