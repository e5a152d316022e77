package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// views holds the parsed pages (each one the layout plus its own
// template), the message catalogs and the version of every static asset.
type views struct {
	pages  map[string]*template.Template
	cat    catalogs
	assets map[string]string // path under static/ -> short content hash
}

func parseViews() (*views, error) {
	cat, err := loadCatalogs()
	if err != nil {
		return nil, err
	}
	v := &views{pages: map[string]*template.Template{}, cat: cat, assets: map[string]string{}}
	err = fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		v.assets[strings.TrimPrefix(p, "static/")] = hex.EncodeToString(sum[:5])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: assets: %w", err)
	}
	funcs := template.FuncMap{
		"asset": v.asset,
		"add":   func(a, b int) int { return a + b },
	}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		t, err := layout.Clone()
		if err == nil {
			t, err = t.ParseFS(templateFS, n)
		}
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		v.pages[name] = t
	}
	return v, nil
}

// asset is the URL of a static file, versioned by its content so it can
// be cached for good.
func (v *views) asset(p string) string {
	return basePath + "/static/" + p + "?v=" + v.assets[p]
}

// navItem is one entry of the navigation bar.
type navItem struct {
	ID, Path, Key string
}

var navItems = []navItem{
	{"overview", basePath + "/", "nav.overview"},
	{"tenants", basePath + "/tenants", "nav.tenants"},
	{"accounts", basePath + "/accounts", "nav.accounts"},
	{"authorize", basePath + "/authorize", "nav.authorize"},
	{"usage", basePath + "/usage", "nav.usage"},
	{"quota", basePath + "/quota", "nav.quota"},
	{"webhooks", basePath + "/webhooks", "nav.webhooks"},
}

// page is what every template gets: the chrome (language, navigation,
// CSRF token, messages) and the page's own Data.
type page struct {
	Lang     string
	Title    string // catalog key
	Nav      string // active navItem ID
	NavItems []navItem
	SignedIn bool
	CSRF     string
	// Path is the request's path and query (the language switch returns there).
	Path string
	// Flash is a catalog key confirming what was just done; Error a
	// message saying what went wrong.
	Flash, Error string
	Data         any

	cat catalogs
	now time.Time
}

// T returns the message key in the page's language.
func (p *page) T(key string, args ...any) string { return p.cat.text(p.Lang, key, args...) }

// OtherLang is the language the switch offers.
func (p *page) OtherLang() string {
	if p.Lang == langZH {
		return langEN
	}
	return langZH
}

// When renders a time in UTC, minute precision; "—" for the zero time.
func (p *page) When(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// WhenPtr is When for an optional time.
func (p *page) WhenPtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return p.When(*t)
}

// Rel renders a time relative to now ("5 min ago", "in 2 h 10 min").
func (p *page) Rel(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := t.Sub(p.now)
	if d < 0 {
		return p.T("time.ago", p.span(-d))
	}
	return p.T("time.in", p.span(d))
}

// RelPtr is Rel for an optional time.
func (p *page) RelPtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return p.Rel(*t)
}

// span renders a duration in the page's language, at most two units.
func (p *page) span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return p.T("time.seconds", int(d/time.Second))
	case d < time.Hour:
		return p.T("time.minutes", int(d/time.Minute))
	case d < 48*time.Hour:
		return p.T("time.hours", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return p.T("time.days", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// newPage starts the page data for the request.
func (c *Console) newPage(g *gin.Context, title, nav string) *page {
	p := &page{Lang: pickLang(g.Request), Title: title, Nav: nav, NavItems: navItems, Path: g.Request.URL.RequestURI(),
		cat: c.views.cat, now: c.o.Now()}
	if tok := g.GetString(ctxSession); tok != "" {
		p.SignedIn, p.CSRF = true, csrfToken(tok)
	}
	if f := g.Query("flash"); f != "" {
		if _, ok := c.views.cat[langEN]["flash."+f]; ok {
			p.Flash = "flash." + f
		}
	}
	return p
}

// render writes the named page with status.
func (c *Console) render(g *gin.Context, status int, name string, p *page) {
	t, ok := c.views.pages[name]
	if !ok {
		c.o.Logger.ErrorContext(g.Request.Context(), "console: no such template", "template", name)
		g.String(http.StatusInternalServerError, "internal error")
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		c.o.Logger.ErrorContext(g.Request.Context(), "console: render failed", "template", name, "err", err.Error())
		g.String(http.StatusInternalServerError, "internal error")
		return
	}
	g.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// problem renders the error page for err (not found, refused form, store
// down, ...).
func (c *Console) problem(g *gin.Context, err error) {
	p := c.newPage(g, "problem.title", "")
	p.Error = c.message(g, p, err)
	c.render(g, c.status(err), "problem", p)
}

// status is the HTTP status of err, from the one table of the HTTP layer.
func (c *Console) status(err error) int {
	if c.o.StatusOf == nil {
		return http.StatusInternalServerError
	}
	return c.o.StatusOf(err)
}

// message is what the operator reads about err, in the page's language:
// the sentence for its code, and for invalid input each field's problem.
// Internal errors are logged here and shown without detail.
func (c *Console) message(g *gin.Context, p *page, err error) string {
	code := errs.CodeOf(err)
	if code == errs.Internal {
		c.o.Logger.ErrorContext(g.Request.Context(), "console: internal error", "route", g.FullPath(), "err", err.Error())
	}
	msg := p.T("error." + string(code))
	if e := errs.As(err); e != nil && code != errs.Internal {
		if fields, ok := e.Details["fields"].(map[string]string); ok {
			for _, f := range slices.Sorted(maps.Keys(fields)) {
				msg += " " + f + ": " + fields[f] + "."
			}
		} else if e.Message != "" && code != errs.Unauthenticated {
			msg += " (" + e.Message + ")"
		}
	}
	return msg
}
