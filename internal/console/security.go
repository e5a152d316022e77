package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
)

// contentSecurityPolicy allows only the console's own scripts, styles and
// images (plus data: images: the QR codes), no inline script or style, no
// framing, no <base>, and forms posting only to the console's origin.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// ctxSession is where requireSession leaves the session token for the
// handlers (the CSRF token and sign-out need it).
const ctxSession = "wxgate.console_session"

// maxFormBytes caps a console form.
const maxFormBytes = 64 << 10

// securityHeaders sets the headers every console answer carries. Pages
// are not cached: they show live state and, once, a new key.
func securityHeaders() gin.HandlerFunc {
	return func(g *gin.Context) {
		setSecurityHeaders(g)
		g.Next()
	}
}

func setSecurityHeaders(g *gin.Context) {
	{
		h := g.Writer.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if g.Request.Body != nil {
			g.Request.Body = http.MaxBytesReader(g.Writer, g.Request.Body, maxFormBytes)
		}
	}
}

// requireSession lets signed-in requests through. Others are sent to the
// sign-in page (htmx requests get 401 with HX-Redirect), and come back to
// the page they asked for after signing in.
func (c *Console) requireSession() gin.HandlerFunc {
	return func(g *gin.Context) {
		tok := c.sessions.token(g.Request)
		err := c.sessions.check(g.Request.Context(), tok)
		if err == nil {
			g.Set(ctxSession, tok)
			g.Next()
			return
		}
		if err != errNoSession {
			c.problem(g, err)
			g.Abort()
			return
		}
		if tok != "" {
			c.sessions.clearCookie(g.Writer)
		}
		target := basePath + "/signin"
		if g.Request.Method == http.MethodGet {
			target += "?next=" + url.QueryEscape(g.Request.URL.RequestURI())
		}
		if g.GetHeader("HX-Request") != "" {
			g.Header("HX-Redirect", target)
			g.AbortWithStatus(http.StatusUnauthorized)
			return
		}
		g.Redirect(http.StatusSeeOther, target)
		g.Abort()
	}
}

// errBadForm refuses a state-changing request without the session's CSRF
// token (a forged cross-site post, or a form older than the session).
var errBadForm = errs.E(errs.Forbidden, "the form is missing its security token or is older than your session")

// requireCSRF checks the session's CSRF token on every request that may
// change state: in the form field csrf, or the X-CSRF-Token header (htmx
// sends it from the body's hx-headers). A request a browser marks as
// cross-site is refused whatever it carries.
func (c *Console) requireCSRF() gin.HandlerFunc {
	return func(g *gin.Context) {
		switch g.Request.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			g.Next()
			return
		}
		got := g.GetHeader(csrfHeader)
		if got == "" {
			got = g.PostForm(csrfField)
		}
		if g.GetHeader("Sec-Fetch-Site") == "cross-site" || !csrfValid(g.GetString(ctxSession), got) {
			c.o.Logger.InfoContext(g.Request.Context(), "console: form refused without a valid CSRF token", "route", g.FullPath())
			c.problem(g, errBadForm)
			g.Abort()
			return
		}
		g.Next()
	}
}

// safeNext returns next if it is a path inside the console, else the
// overview: the sign-in and language redirects go nowhere else.
func safeNext(next string) string {
	if next == basePath || strings.HasPrefix(next, basePath+"/") {
		if !strings.Contains(next, "//") && !strings.ContainsAny(next, "\\\r\n\t") {
			return next
		}
	}
	return basePath + "/"
}
