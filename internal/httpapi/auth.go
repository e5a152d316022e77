package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/tenant"
	"github.com/wxgate/wxgate/internal/wechat"
)

// Surfaces label the auth-failure metric.
const (
	surfaceREST   = "rest"
	surfaceCompat = "compat"
	surfaceAdmin  = "admin"
)

// authenticateHeader is the challenge sent with a 401 on /v1 and /admin.
const authenticateHeader = `Bearer realm="wxgate"`

var errTenantAuthNotWired = errs.Wrap(errs.Internal, "internal error", errors.New("httpapi: tenant authentication is not wired"))

// requireTenant authenticates the tenant key in "Authorization: Bearer" on
// /v1 and records its principal. Every failure is the same 401
// unauthenticated; the reason goes to the log and the auth-failure metric,
// never to the caller. It costs no store query.
func requireTenant(keys KeyAuthenticator, m *obs.Metrics, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if keys == nil {
			writeError(c, log, errTenantAuthNotWired)
			return
		}
		raw, reason := bearerToken(c.GetHeader("Authorization"))
		var (
			p   tenant.Principal
			err error
		)
		if reason != "" {
			err = tenant.Refuse(reason)
		} else {
			p, err = keys.Authenticate(c.Request.Context(), raw)
		}
		if err != nil {
			// Only a refused key is an auth failure; a key that could not
			// be checked (store_unavailable) is not the caller's fault.
			if errs.Is(err, errs.Unauthenticated) {
				noteAuthFailure(c, m, log, surfaceREST, err)
				c.Header("WWW-Authenticate", authenticateHeader)
			}
			writeError(c, log, err)
			return
		}
		setPrincipal(c, p)
		c.Next()
	}
}

// requireTenantCompat authenticates the tenant key the compatible surface
// (/wx/{appid}/…) receives where WeChat expects access_token, in the query.
// Failures answer in WeChat's shape with HTTP 200 (compatAnswer: a missing
// key 41001, an invalid, expired or revoked one 40001; docs/api.md,
// "Compatible errcodes").
//
// The router mounts it (with rateLimit answering writeWeChatError) on the
// /wx/:appid group; the handlers then call authorizeAppID for the path's
// appid.
func requireTenantCompat(keys KeyAuthenticator, m *obs.Metrics, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if keys == nil {
			writeWeChatError(c, log, errTenantAuthNotWired)
			return
		}
		raw := c.Query("access_token")
		var (
			p   tenant.Principal
			err error
		)
		if raw == "" {
			err = tenant.Refuse(tenant.ReasonMissing)
		} else {
			p, err = keys.Authenticate(c.Request.Context(), raw)
		}
		if err != nil {
			if errs.Is(err, errs.Unauthenticated) {
				noteAuthFailure(c, m, log, surfaceCompat, err)
			}
			writeWeChatError(c, log, err)
			return
		}
		setPrincipal(c, p)
		c.Next()
	}
}

// noteAuthFailure counts and logs a refused credential with its reason.
// Neither the metric nor the line carries the credential.
func noteAuthFailure(c *gin.Context, m *obs.Metrics, log *slog.Logger, surface string, err error) {
	reason := tenant.FailureReason(err)
	if reason == "" {
		reason = tenant.ReasonInvalid
	}
	if m != nil {
		m.AuthFailures.WithLabelValues(surface, reason).Inc()
	}
	log.InfoContext(c.Request.Context(), "credential refused", "surface", surface, "reason", reason, "route", c.FullPath())
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header, or the reason there is none.
func bearerToken(h string) (token, reason string) {
	if h == "" {
		return "", tenant.ReasonMissing
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", tenant.ReasonBadScheme
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", tenant.ReasonMissing
	}
	return tok, ""
}

// rateLimit applies the tenant's token bucket after requireTenant (or its
// compatible twin): when it is empty, answer writes rate_limited with
// Retry-After (writeError on /v1; writeWeChatError on /wx, WeChat's 45011).
// refused, if not nil, is told of every refusal.
func rateLimit(l TenantRateLimiter, log *slog.Logger, answer func(*gin.Context, *slog.Logger, error), refused func(*gin.Context, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := takeToken(c, l); err != nil {
			if refused != nil {
				refused(c, err)
			}
			answer(c, log, err)
			return
		}
		c.Next()
	}
}

func takeToken(c *gin.Context, l TenantRateLimiter) error {
	p, err := mustPrincipal(c)
	if err != nil {
		return err
	}
	if l == nil {
		return errs.Wrap(errs.Internal, "internal error", errors.New("httpapi: rate limit without a limiter"))
	}
	if allowed, wait := l.Allow(p.TenantID); !allowed {
		return errs.E(errs.RateLimited, "tenant rate limit exceeded; retry later").WithRetryAfter(wait)
	}
	return nil
}

// authorizeAppID decides, from memory, whether the authenticated key may
// call appid: nil if it may; not_found if the account is unknown or bound to
// another tenant (the same error, byte for byte, and the same lookup either
// way: a binding missing from memory is looked up in the store once, and
// the miss remembered); forbidden if it is the tenant's but the key is
// restricted to other accounts; store_unavailable if the store was needed
// and could not be reached; internal if there is no principal (fail
// closed). Every /v1 and /wx route that names an account calls it before
// anything else:
//
//	if err := authorizeAppID(c, d.Tenant.Bindings, c.Param("appid")); err != nil {
//		writeError(c, log, err) // writeWeChatError on /wx: 40013
//		return
//	}
func authorizeAppID(c *gin.Context, b BindingChecker, appid string) error {
	p, err := mustPrincipal(c)
	if err != nil {
		return err
	}
	if b == nil {
		return errs.Wrap(errs.Internal, "internal error", errors.New("httpapi: account check without bindings"))
	}
	if err := checkAppID(appid); err != nil {
		return err
	}
	bound, err := b.Authorize(c.Request.Context(), p.TenantID, appid)
	if err != nil {
		return err
	}
	if !bound {
		return errAuthorizerNotFound()
	}
	if p.Restricts(appid) {
		return errs.E(errs.Forbidden, "this key is not allowed to call this account")
	}
	c.Set(ctxAppID, appid)
	return nil
}

// checkAppID refuses a malformed appid in a path with invalid_argument
// naming the rule (compatible: 40013, WeChat's "invalid appid"): no such
// account can exist, and "not found" would hide a typo.
func checkAppID(appid string) error {
	if config.ValidAppID(appid) {
		return nil
	}
	shown := appid
	if len(shown) > 40 {
		shown = shown[:40] + "…"
	}
	return errs.Invalid("appid", fmt.Sprintf("appid %q is malformed: %s", shown, config.AppIDRule)).
		WithCause(&proxy.ParamError{Param: "appid", WeChatErrcode: wechat.ErrInvalidAppID})
}

// validAppIDParam refuses, for every route of its group with an {appid}
// path parameter, a malformed appid before the handler runs (checkAppID):
// one rule for every admin route that names an account.
func validAppIDParam(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if appid, ok := c.Params.Get("appid"); ok {
			if err := checkAppID(appid); err != nil {
				writeError(c, log, err)
			}
		}
	}
}

// errAuthorizerNotFound is the one answer for an account the caller may not
// see, whether it exists or not.
func errAuthorizerNotFound() error { return errs.E(errs.NotFound, "authorizer not found") }

// requireAdmin checks "Authorization: Bearer WXGATE_ADMIN_TOKEN" in
// constant time (both sides hashed first, so not even the length leaks).
// Missing or wrong: 401 unauthenticated.
func requireAdmin(token secret.Value, m *obs.Metrics, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		raw, reason := bearerToken(c.GetHeader("Authorization"))
		if reason == "" && !token.Matches(raw) {
			reason = tenant.ReasonInvalid
		}
		if reason != "" {
			err := tenant.Refuse(reason)
			noteAuthFailure(c, m, log, surfaceAdmin, err)
			c.Header("WWW-Authenticate", authenticateHeader)
			writeError(c, log, err)
			return
		}
		c.Next()
	}
}
