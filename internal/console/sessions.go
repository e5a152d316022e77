package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
)

// Names of the console's cookies and form fields.
const (
	basePath = "/console"
	// sessionCookie carries the session token over http; under https the
	// cookie is named with the __Host- prefix, which browsers accept only
	// Secure, host-only and for path /.
	sessionCookie       = "wxgate_console"
	secureSessionCookie = "__Host-wxgate_console"
	// signinCookie pairs the sign-in form with its browser (login CSRF).
	signinCookie = "wxgate_console_signin"
	// langCookie remembers the chosen language.
	langCookie = "wxgate_console_lang"
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
	// touchEvery bounds how often a session's seen_at is written: at most
	// one write per session per minute, whatever the request rate.
	touchEvery = time.Minute
	// maxTokenLength bounds what is looked up at all.
	maxTokenLength = 64
)

// errNoSession means the request carries no valid session: never signed
// in, signed out, or expired.
var errNoSession = errs.E(errs.Unauthenticated, "sign in to use the console")

// sessions creates, checks and ends console sessions. Only the SHA-256
// digest of a token is stored; the token itself lives in the browser's
// cookie.
type sessions struct {
	st             SessionStore
	now            func() time.Time
	idle, lifetime time.Duration
	codeTTL        time.Duration
	secure         bool
}

// newToken returns 256 random bits, base64url without padding (43 chars).
func newToken() secret.Value {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return secret.Value(base64.RawURLEncoding.EncodeToString(b))
}

// digest is the stored form of a token.
func digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// wellFormed reports whether s can be a token at all, so garbage costs no
// store query.
func wellFormed(s string) bool {
	if s == "" || len(s) > maxTokenLength {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// create starts a session and returns its token.
func (s *sessions) create(ctx context.Context) (secret.Value, error) {
	return s.issue(ctx, store.ConsoleSession, s.lifetime)
}

// issueCode stores a one-time sign-in code and returns it.
func (s *sessions) issueCode(ctx context.Context) (secret.Value, error) {
	return s.issue(ctx, store.ConsoleSignInCode, s.codeTTL)
}

// issue stores the digest of a fresh token of kind, valid for ttl.
func (s *sessions) issue(ctx context.Context, kind string, ttl time.Duration) (secret.Value, error) {
	tok, now := newToken(), s.now().UTC()
	err := s.st.CreateConsoleToken(ctx, store.ConsoleToken{TokenHash: digest(tok.Reveal()), Kind: kind,
		CreatedAt: now, SeenAt: now, ExpiresAt: now.Add(ttl)})
	if err != nil {
		return "", err
	}
	return tok, nil
}

// redeemCode consumes a sign-in code (once, on one replica) and starts a
// session for it. An unknown, used or expired code is errNoSession.
func (s *sessions) redeemCode(ctx context.Context, code string) (secret.Value, error) {
	if !wellFormed(code) {
		return "", errNoSession
	}
	if _, err := s.st.ConsumeConsoleToken(ctx, store.ConsoleSignInCode, digest(code), s.now().UTC()); err != nil {
		if errs.Is(err, errs.NotFound) {
			return "", errNoSession
		}
		return "", err
	}
	return s.create(ctx)
}

// check returns nil if token is a live session, moving its idle expiry
// forward; errNoSession if it is unknown or expired (an expired one is
// deleted); another error if the store failed.
func (s *sessions) check(ctx context.Context, token string) error {
	if !wellFormed(token) {
		return errNoSession
	}
	h := digest(token)
	row, err := s.st.GetConsoleToken(ctx, store.ConsoleSession, h)
	if errs.Is(err, errs.NotFound) {
		return errNoSession
	}
	if err != nil {
		return err
	}
	now := s.now().UTC()
	if !now.Before(row.ExpiresAt) || now.Sub(row.SeenAt) >= s.idle {
		_ = s.st.DeleteConsoleToken(ctx, h)
		return errNoSession
	}
	if now.Sub(row.SeenAt) >= touchEvery {
		if err := s.st.TouchConsoleToken(ctx, h, now); err != nil {
			return err
		}
	}
	return nil
}

// end deletes the session (sign-out).
func (s *sessions) end(ctx context.Context, token string) error {
	if !wellFormed(token) {
		return nil
	}
	return s.st.DeleteConsoleToken(ctx, digest(token))
}

// csrfToken is the CSRF token bound to a session: an HMAC of a fixed label
// keyed with the session token. Every replica derives the same one, it
// changes with every session, and it reveals nothing about the token.
func csrfToken(sessionToken string) string {
	m := hmac.New(sha256.New, []byte(sessionToken))
	m.Write([]byte("wxgate/console/csrf/v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfValid compares a submitted CSRF token with the session's in constant
// time.
func csrfValid(sessionToken, submitted string) bool {
	return submitted != "" && hmac.Equal([]byte(csrfToken(sessionToken)), []byte(submitted))
}

// cookieName is the session cookie's name.
func (s *sessions) cookieName() string {
	if s.secure {
		return secureSessionCookie
	}
	return sessionCookie
}

// setCookie gives the browser its session token: HttpOnly (no script reads
// it), SameSite=Strict (no other site's page sends it), Secure under https,
// and without Max-Age, so it ends with the browser session at the latest.
func (s *sessions) setCookie(w http.ResponseWriter, token secret.Value) {
	http.SetCookie(w, s.cookie(token.Reveal(), 0))
}

// clearCookie removes the session cookie.
func (s *sessions) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, s.cookie("", -1))
}

func (s *sessions) cookie(value string, maxAge int) *http.Cookie {
	path := basePath
	if s.secure {
		path = "/" // required by the __Host- prefix
	}
	return &http.Cookie{Name: s.cookieName(), Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode}
}

// token reads the session token from the request's cookie ("" if none).
func (s *sessions) token(r *http.Request) string {
	ck, err := r.Cookie(s.cookieName())
	if err != nil {
		return ""
	}
	return ck.Value
}
