// Package console is wxgate's operator console: server-rendered pages
// (html/template) under /console/ that show the platform at a glance and
// do every operator task of the admin API in a browser, in Chinese or
// English. Templates, styles, scripts and the vendored front-end libraries
// (htmx, uPlot) are embedded, so the console works offline.
//
// The console calls the domain services directly through the small
// interfaces of deps.go. Its security model (docs/console.md, "Security"):
// sign-in with the admin token compared in constant time and throttled per
// client and overall; a session kept in the store by the digest of its
// token (so it works on every replica) in an HttpOnly, SameSite=Strict
// cookie, Secure under https, with idle and absolute expiry; a CSRF token
// bound to the session on every state-changing request; a strict
// Content-Security-Policy without inline script or style.
package console

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/wxgate/wxgate/internal/secret"
)

// Defaults of Options.
const (
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultSessionLifetime = 12 * time.Hour
	DefaultSignInCodeTTL   = 10 * time.Minute
)

// Options configure the console. Every service is required.
type Options struct {
	// AdminToken is WXGATE_ADMIN_TOKEN: the operator signs in with it.
	AdminToken secret.Value
	// PublicURL is WXGATE_PUBLIC_URL: https there makes the cookie Secure,
	// and authorization links return to its /console/authorize/done.
	PublicURL string
	// Platforms are the deployment's third-party platforms, each with its
	// accounts, authorization flow, component status and quotas.
	Platforms Platforms

	Tenants   TenantAdmin
	Directory Directory
	Calls     CallCounts
	Pending   PendingBindings
	Sessions  SessionStore
	// Webhooks shows each tenant's webhook and deliveries and redelivers;
	// WebhookQueue the queue across tenants.
	Webhooks     Webhooks
	WebhookQueue WebhookQueue

	// IdleTimeout ends a session not used for that long; SessionLifetime
	// ends any session that long after sign-in; SignInCodeTTL bounds a
	// one-time sign-in code. Zero means the default.
	IdleTimeout, SessionLifetime, SignInCodeTTL time.Duration
	// StatusOf is the HTTP status of an error: the HTTP layer's one table.
	StatusOf func(error) int
	// Now is the clock (expiry, throttling, "ago").
	Now    func() time.Time
	Logger *slog.Logger
}

// Console is the operator console of one replica. Mount it with Register.
type Console struct {
	o        Options
	secure   bool
	views    *views
	throttle *throttle
	sessions *sessions
}

// New checks the options and parses the embedded templates.
func New(o Options) (*Console, error) {
	if o.Platforms == nil || o.Tenants == nil || o.Directory == nil || o.Calls == nil || o.Pending == nil ||
		o.Sessions == nil || o.Webhooks == nil || o.WebhookQueue == nil {
		return nil, errors.New("console: every service is required")
	}
	u, err := url.Parse(o.PublicURL)
	if err != nil || u.Host == "" {
		return nil, errors.New("console: the public URL must be absolute")
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.SessionLifetime <= 0 {
		o.SessionLifetime = DefaultSessionLifetime
	}
	if o.SignInCodeTTL <= 0 {
		o.SignInCodeTTL = DefaultSignInCodeTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.PublicURL = strings.TrimSuffix(o.PublicURL, "/")
	v, err := parseViews()
	if err != nil {
		return nil, err
	}
	secure := u.Scheme == "https"
	return &Console{
		o:        o,
		secure:   secure,
		views:    v,
		throttle: newThrottle(o.Now),
		sessions: &sessions{st: o.Sessions, now: o.Now, idle: o.IdleTimeout, lifetime: o.SessionLifetime, codeTTL: o.SignInCodeTTL, secure: secure},
	}, nil
}

// URL is the console's address under the public URL.
func (c *Console) URL() string { return c.o.PublicURL + basePath + "/" }

// SignInLink issues a one-time sign-in code and returns the link that
// consumes it: opening it signs the browser in once, within the code's
// lifetime (wxgate demo prints it). The admin token never appears in it.
func (c *Console) SignInLink(ctx context.Context) (string, error) {
	code, err := c.sessions.issueCode(ctx)
	if err != nil {
		return "", err
	}
	return c.o.PublicURL + basePath + "/signin/code?code=" + url.QueryEscape(code.Reveal()), nil
}
