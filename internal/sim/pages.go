package sim

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxgate/wxgate/internal/wxcrypt"
)

const pageTemplate = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:42em;margin:2em auto;padding:0 1em}ul{padding:0}li{list-style:none;margin:.5em 0}.muted{color:#666}button{padding:.5em 1.5em;font-size:1em}#error{color:#b00}</style>
</head><body>
<h1>{{.Title}}</h1>
{{if .Error}}<p id="error">{{.Error}}</p>
{{else}}<p>The third-party platform <code>{{.ComponentAppID}}</code> asks to manage one of your Official Accounts. Pick the account and confirm.</p>
{{if .Accounts}}<form method="post" action="{{.Action}}">
<input type="hidden" name="component_appid" value="{{.ComponentAppID}}">
<input type="hidden" name="pre_auth_code" value="{{.PreAuthCode}}">
<input type="hidden" name="redirect_uri" value="{{.RedirectURI}}">
<input type="hidden" name="auth_type" value="{{.AuthType}}">
<input type="hidden" name="biz_appid" value="{{.BizAppID}}">
<ul>
{{range .Accounts}}<li><label><input type="radio" name="appid" value="{{.AppID}}"{{if .Checked}} checked{{end}}> {{.NickName}} <span class="muted">({{.AppID}}, {{.Followers}} followers{{if .Authorized}}, already authorized{{end}})</span></label></li>
{{end}}</ul>
<button type="submit" id="confirm">Confirm authorization</button>
</form>
{{else}}<p id="error">No account can authorize this platform here.</p>
{{end}}{{end}}<p class="muted">wxgate WeChat simulator</p>
</body></html>
`

func parsePages() (*template.Template, error) {
	return template.New("page").Parse(pageTemplate)
}

type pageAccount struct {
	AppID, NickName string
	Followers       int
	Authorized      bool
	Checked         bool
}

type pageData struct {
	Title, Error                                                 string
	ComponentAppID, PreAuthCode, RedirectURI, AuthType, BizAppID string
	Action                                                       string
	Accounts                                                     []pageAccount
}

// authPageParams are the query parameters of the authorization pages (and
// the hidden fields of their form).
type authPageParams struct {
	componentAppID, preAuthCode, redirectURI, authType, bizAppID string
}

func authParams(v url.Values) authPageParams {
	return authPageParams{
		componentAppID: v.Get("component_appid"),
		preAuthCode:    v.Get("pre_auth_code"),
		redirectURI:    v.Get("redirect_uri"),
		authType:       v.Get("auth_type"),
		bizAppID:       v.Get("biz_appid"),
	}
}

// checkAuthPage validates the page parameters like WeChat and answers the
// platform their component_appid names and the accounts the admin may pick.
// It remembers redirect_uri and biz_appid with the pre-auth code, which must
// be one of that platform's.
func (s *Simulator) checkAuthPage(p authPageParams, now time.Time) (*Platform, []pageAccount, error) {
	plat, err := s.Platform(p.componentAppID)
	switch {
	case err != nil:
		return nil, nil, errors.New("invalid component_appid")
	case p.redirectURI == "":
		return plat, nil, errors.New("redirect_uri is required")
	}
	u, err := url.Parse(p.redirectURI)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return plat, nil, errors.New("redirect_uri must be an absolute http(s) URL")
	}
	if p.authType != "" && p.authType != "1" && p.authType != "2" && p.authType != "3" {
		return plat, nil, errors.New("invalid auth_type")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pre, err := plat.preAuthLocked(p.preAuthCode, now)
	if err != nil {
		return plat, nil, errors.New("pre_auth_code is invalid, expired or already used: ask the platform for a new authorization link")
	}
	if p.bizAppID != "" {
		if _, ok := s.accounts[p.bizAppID]; !ok {
			return plat, nil, errors.New("biz_appid is not an account of this simulator")
		}
	}
	pre.redirectURI, pre.bizAppID = p.redirectURI, p.bizAppID
	var out []pageAccount
	if p.authType == "2" { // Mini Programs only: every simulated account is an Official Account
		return plat, out, nil
	}
	for _, a := range s.order {
		if p.bizAppID != "" && a.spec.AppID != p.bizAppID {
			continue
		}
		out = append(out, pageAccount{AppID: a.spec.AppID, NickName: a.spec.NickName, Followers: a.spec.Followers,
			Authorized: plat.authorizedLocked(a.spec.AppID) != nil, Checked: len(out) == 0})
	}
	return plat, out, nil
}

// handleAuthPage serves the PC page GET /cgi-bin/componentloginpage and the
// mobile page GET /wxaopen/safe/bindcomponent?action=bindcomponent, for the
// platform named by component_appid.
func (s *Simulator) handleAuthPage(ep string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p := authParams(q)
		var plat *Platform
		var accounts []pageAccount
		var err error
		if ep == EndpointBindComponent && q.Get("action") != "bindcomponent" {
			err = errors.New("invalid action: want action=bindcomponent")
		} else {
			plat, accounts, err = s.checkAuthPage(p, s.now())
		}
		if err != nil {
			s.renderPage(w, plat, ep, http.StatusBadRequest, pageData{Title: "Authorization failed", Error: err.Error()})
			return
		}
		s.renderPage(w, plat, ep, http.StatusOK, pageData{
			Title:          "Authorize a third-party platform",
			ComponentAppID: p.componentAppID, PreAuthCode: p.preAuthCode, RedirectURI: p.redirectURI,
			AuthType: p.authType, BizAppID: p.bizAppID,
			Action:   strings.TrimSuffix(s.opts.PublicURL, "/") + "/sim/authpage/confirm",
			Accounts: accounts,
		})
	}
}

// handleAuthConfirm serves the page's form POST: it authorizes the picked
// account for the form's platform, pushes the authorized/updateauthorized
// event (with PreAuthCode) to that platform and redirects to redirect_uri
// with auth_code and expires_in appended.
func (s *Simulator) handleAuthConfirm(w http.ResponseWriter, r *http.Request) {
	const ep = EndpointAuthConfirm
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.renderPage(w, nil, ep, http.StatusBadRequest, pageData{Title: "Authorization failed", Error: "bad form"})
		return
	}
	p := authParams(r.PostForm)
	appid := r.PostForm.Get("appid")
	plat, accounts, err := s.checkAuthPage(p, s.now())
	if err == nil && !containsAccount(accounts, appid) {
		err = errors.New("pick one of the listed accounts")
	}
	if err == nil {
		var code string
		var ev wxcrypt.Event
		if code, ev, err = plat.authorize(appid, p.preAuthCode); err == nil {
			// WeChat redirects whether or not the platform acknowledged the event.
			if perr := plat.push(r.Context(), ev); perr != nil {
				s.log.Warn("sim: authorization event not delivered", "component_appid", plat.appid, "appid", appid, "err", perr)
			}
			s.record(plat, ep, appid, 0)
			http.Redirect(w, r, redirectWithCode(p.redirectURI, code), http.StatusFound)
			return
		}
	}
	s.renderPage(w, plat, ep, http.StatusBadRequest, pageData{Title: "Authorization failed", Error: err.Error()})
}

func containsAccount(list []pageAccount, appid string) bool {
	for _, a := range list {
		if a.AppID == appid {
			return true
		}
	}
	return false
}

// redirectWithCode appends auth_code and expires_in to redirect_uri,
// keeping its own query string (e.g. ?session=ID) and fragment.
func redirectWithCode(redirectURI, code string) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return redirectURI
	}
	extra := "auth_code=" + url.QueryEscape(code) + "&expires_in=" + strconv.Itoa(int(AuthCodeLifetime/time.Second))
	if u.RawQuery == "" {
		u.RawQuery = extra
	} else {
		u.RawQuery += "&" + extra
	}
	return u.String()
}

// RedirectURL returns redirect_uri with auth_code and expires_in appended,
// as the authorization page redirects the browser.
func RedirectURL(redirectURI, authCode string) string { return redirectWithCode(redirectURI, authCode) }

func (s *Simulator) renderPage(w http.ResponseWriter, p *Platform, ep string, status int, d pageData) {
	var buf bytes.Buffer
	if err := s.pages.Execute(&buf, d); err != nil {
		s.log.Error("sim: render page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	code := 0
	if status != http.StatusOK {
		code = noErrcode
	}
	s.record(p, ep, "", code)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
