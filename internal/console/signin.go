package console

import (
	"crypto/hmac"
	"errors"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/errs"
)

var (
	errPageNotFound     = errs.E(errs.NotFound, "no such page")
	errAccountNotFound  = errs.E(errs.NotFound, "authorizer not found")
	errTenantNotFound   = errs.E(errs.NotFound, "tenant not found")
	errNoPendingBinding = errs.E(errs.NotFound, "no authorization of this account by this tenant waits for approval")
	errWrongToken       = errs.E(errs.Unauthenticated, "wrong admin token")
	errStaleSignIn      = errs.E(errs.Forbidden, "the sign-in form expired; try again")
	errCodeRefused      = errs.E(errs.Unauthenticated, "this sign-in link is unknown, used or expired")
	errThrottled        = errs.E(errs.RateLimited, "too many sign-in attempts; wait a little")
	errUnknownAsset     = errs.E(errs.NotFound, "no such file")
	errSignInMessage    = map[*errs.Error]string{errWrongToken: "signin.wrong", errStaleSignIn: "signin.stale", errCodeRefused: "signin.code_refused", errThrottled: "signin.throttled"}
)

// handleStatic serves the embedded assets. A request for the current
// version (?v= the content hash) may be cached for a year.
func (c *Console) handleStatic() gin.HandlerFunc {
	return func(g *gin.Context) {
		p := strings.TrimPrefix(g.Param("path"), "/")
		ver, ok := c.views.assets[p]
		if !ok {
			c.problem(g, errUnknownAsset)
			return
		}
		b, err := staticFS.ReadFile("static/" + p)
		if err != nil {
			c.problem(g, errUnknownAsset)
			return
		}
		if g.Query("v") == ver {
			g.Header("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			g.Header("Cache-Control", "no-cache")
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "text/plain; charset=utf-8"
		}
		g.Data(http.StatusOK, ct, b)
	}
}

// handleLang switches the language (a cookie) and goes back.
func (c *Console) handleLang() gin.HandlerFunc {
	return func(g *gin.Context) {
		lang := g.Param("lang")
		if lang != langEN && lang != langZH {
			c.problem(g, errPageNotFound)
			return
		}
		http.SetCookie(g.Writer, &http.Cookie{Name: langCookie, Value: lang, Path: basePath, MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
		g.Redirect(http.StatusSeeOther, safeNext(g.Query("back")))
	}
}

// signinData is the sign-in page's data.
type signinData struct {
	// Form pairs the form with the browser's sign-in cookie.
	Form string
	Next string
}

// renderSignIn shows the sign-in form with a fresh pairing token.
func (c *Console) renderSignIn(g *gin.Context, status int, failure error) {
	p := c.newPage(g, "signin.title", "")
	form := newToken().Reveal()
	http.SetCookie(g.Writer, &http.Cookie{Name: signinCookie, Value: form, Path: basePath, MaxAge: 3600,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode})
	next := g.Query("next")
	if n := g.PostForm("next"); n != "" {
		next = n
	}
	p.Data = signinData{Form: form, Next: safeNext(next)}
	if failure != nil {
		var e *errs.Error
		if errors.As(failure, &e) && errSignInMessage[e] != "" {
			p.Error = p.T(errSignInMessage[e])
		} else {
			p.Error = c.message(g, p, failure)
		}
	}
	c.render(g, status, "signin", p)
}

func (c *Console) handleSignInForm() gin.HandlerFunc {
	return func(g *gin.Context) {
		if c.sessions.check(g.Request.Context(), c.sessions.token(g.Request)) == nil {
			g.Redirect(http.StatusSeeOther, safeNext(g.Query("next")))
			return
		}
		c.renderSignIn(g, http.StatusOK, nil)
	}
}

// throttled takes a sign-in attempt for the client; false (with the 429
// page written) when it must wait.
func (c *Console) throttled(g *gin.Context) bool {
	ok, wait := c.throttle.allow(g.ClientIP())
	if ok {
		return false
	}
	c.o.Logger.WarnContext(g.Request.Context(), "console: sign-in throttled", "client", g.ClientIP())
	g.Header("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
	c.renderSignIn(g, http.StatusTooManyRequests, errThrottled)
	return true
}

// handleSignIn checks the admin token (constant time, throttled) and
// starts a session.
func (c *Console) handleSignIn() gin.HandlerFunc {
	return func(g *gin.Context) {
		if c.throttled(g) {
			return
		}
		ck, err := g.Request.Cookie(signinCookie)
		if err != nil || ck.Value == "" || !hmac.Equal([]byte(ck.Value), []byte(g.PostForm("form"))) {
			c.renderSignIn(g, http.StatusForbidden, errStaleSignIn)
			return
		}
		if !c.o.AdminToken.Matches(g.PostForm("token")) {
			c.o.Logger.InfoContext(g.Request.Context(), "console: sign-in refused", "client", g.ClientIP())
			c.renderSignIn(g, http.StatusUnauthorized, errWrongToken)
			return
		}
		c.startSession(g, g.PostForm("next"))
	}
}

// handleSignInCode signs in with a one-time code (wxgate demo's link).
func (c *Console) handleSignInCode() gin.HandlerFunc {
	return func(g *gin.Context) {
		if c.throttled(g) {
			return
		}
		tok, err := c.sessions.redeemCode(g.Request.Context(), g.Query("code"))
		if err == errNoSession {
			c.renderSignIn(g, http.StatusUnauthorized, errCodeRefused)
			return
		}
		if err != nil {
			c.problem(g, err)
			return
		}
		c.sessions.setCookie(g.Writer, tok)
		c.o.Logger.InfoContext(g.Request.Context(), "console: signed in with a one-time code", "client", g.ClientIP())
		g.Redirect(http.StatusSeeOther, basePath+"/")
	}
}

// startSession creates the session, sets its cookie and goes to next.
func (c *Console) startSession(g *gin.Context, next string) {
	tok, err := c.sessions.create(g.Request.Context())
	if err != nil {
		c.problem(g, err)
		return
	}
	c.sessions.setCookie(g.Writer, tok)
	http.SetCookie(g.Writer, &http.Cookie{Name: signinCookie, Path: basePath, MaxAge: -1, HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode})
	c.o.Logger.InfoContext(g.Request.Context(), "console: signed in", "client", g.ClientIP())
	g.Redirect(http.StatusSeeOther, safeNext(next))
}

// handleSignOut deletes the session everywhere and clears the cookie.
func (c *Console) handleSignOut() gin.HandlerFunc {
	return func(g *gin.Context) {
		if err := c.sessions.end(g.Request.Context(), g.GetString(ctxSession)); err != nil {
			c.problem(g, err)
			return
		}
		c.sessions.clearCookie(g.Writer)
		g.Redirect(http.StatusSeeOther, basePath+"/signin?flash=signed_out")
	}
}

// doneData is the page an authorization link returns to.
type doneData struct {
	AppID string
	OK    bool
	// Pending: authorized, but the account is bound to another tenant and
	// this tenant's access waits for the operator's approval.
	Pending bool
	Code    string
}

// handleAuthorizeDone is where an authorization link made in the console
// returns (through /wechat/callback). It needs no session: the merchant's
// browser lands here, and after WeChat's cross-site redirect the
// SameSite=Strict cookie is not sent anyway. It shows only what the query
// says, after checking its shape.
func (c *Console) handleAuthorizeDone() gin.HandlerFunc {
	return func(g *gin.Context) {
		p := c.newPage(g, "done.title", "")
		d := doneData{}
		if a := g.Query("appid"); config.ValidAppID(a) {
			d.AppID = a
		}
		result := g.Query("result")
		d.OK = (result == "authorized" || result == "pending") && d.AppID != ""
		d.Pending = d.OK && result == "pending"
		if code := errs.Code(g.Query("error")); !d.OK && code != "" {
			if _, known := c.views.cat[langEN]["error."+string(code)]; known {
				d.Code = string(code)
			}
		}
		p.Data = d
		c.render(g, http.StatusOK, "done", p)
	}
}
