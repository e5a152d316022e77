package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/errs"
)

// handleCallback is GET /wechat/callback, where WeChat sends the merchant's
// browser after authorization (docs/api.md, "GET /wechat/callback"): it completes the session
// and redirects to the session's return_url with appid and result appended
// (result=pending when the binding waits for the operator's approval,
// result=error&error=CODE on failure). Only a callback carrying the code
// WeChat's event delivered for an unexpired session is redirected; a
// missing, unknown or expired session, a missing or foreign code get a 400
// HTML page, and a code WeChat has not confirmed yet a 503 one.
func handleCallback(pick pickPlatform, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		var res component.CallbackResult
		d, err := pick(c)
		switch {
		case err == nil && d.Flow == nil:
			notWired(log)(c)
			return
		case err == nil:
			res, err = d.Flow.Callback(ctx, c.Query("session"), c.Query("auth_code"))
		case errs.Is(err, errs.NotFound):
			// A link of a platform the deployment does not have (removed
			// since): the merchant's browser gets the expired-link page.
			err = component.ErrBadSession
		}
		if res.ReturnURL == "" {
			status, page := http.StatusBadRequest, badSessionPage
			switch code := errs.CodeOf(err); {
			case errors.Is(err, component.ErrNotConfirmed):
				status, page = http.StatusServiceUnavailable, notConfirmedPage
			case err == nil, code == errs.InvalidArgument:
			case code == errs.StoreUnavailable:
				// The session cannot be read now; the browser may retry
				// the same link once the store is back.
				log.WarnContext(ctx, "callback: store unavailable", "err", err.Error())
				status, page = http.StatusServiceUnavailable, callbackErrorPage
				c.Header("Retry-After", strconv.Itoa(int(defaultStoreRetryAfter.Seconds())))
			default:
				log.ErrorContext(ctx, "callback failed", "err", err.Error())
				status, page = http.StatusInternalServerError, callbackErrorPage
			}
			c.Set(ctxErrCode, string(errs.CodeOf(err)))
			c.Header("Cache-Control", "no-store")
			c.Data(status, "text/html; charset=utf-8", []byte(page))
			return
		}
		// In the order docs/api.md, "GET /wechat/callback" writes them: appid, result, error.
		var extra []string
		if res.AppID != "" {
			extra = append(extra, "appid="+url.QueryEscape(res.AppID))
			c.Set(ctxAppID, res.AppID)
		}
		switch {
		case err == nil && res.Pending:
			extra = append(extra, "result=pending")
		case err == nil:
			extra = append(extra, "result=authorized")
		default:
			e := normalize(c, log, err)
			c.Set(ctxErrCode, string(e.Code))
			extra = append(extra, "result=error", "error="+url.QueryEscape(string(e.Code)))
		}
		c.Header("Cache-Control", "no-store")
		c.Redirect(http.StatusFound, appendQuery(res.ReturnURL, extra))
	}
}

// appendQuery adds the encoded pairs to u's query, keeping what is there
// (and the fragment) intact.
func appendQuery(u string, pairs []string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := strings.Join(pairs, "&")
	if parsed.RawQuery != "" {
		parsed.RawQuery += "&" + q
	} else {
		parsed.RawQuery = q
	}
	return parsed.String()
}

const badSessionPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorization link expired</title></head>
<body><h1>This authorization link is unknown or has expired</h1>
<p>The authorization session was not found or is no longer valid, or this is not the authorization WeChat confirmed for it. Go back to the application that sent you here and start the authorization again.</p>
</body></html>
`

const notConfirmedPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorization not confirmed yet</title></head>
<body><h1>WeChat has not confirmed this authorization yet</h1>
<p>The authorization completes as soon as WeChat's confirmation arrives. Go back to the application that sent you here; it will see the account once it is ready.</p>
</body></html>
`

const callbackErrorPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorization failed</title></head>
<body><h1>Something went wrong</h1>
<p>The authorization could not be completed. Please try again in a moment.</p>
</body></html>
`
