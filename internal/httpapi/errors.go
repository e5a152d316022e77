package httpapi

import (
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/wechat"
)

// statusOf is the one table from error code to HTTP status (docs/api.md, "Error codes").
var statusOf = map[errs.Code]int{
	errs.InvalidArgument:        http.StatusBadRequest,
	errs.Unauthenticated:        http.StatusUnauthorized,
	errs.Forbidden:              http.StatusForbidden,
	errs.PermissionSetMissing:   http.StatusForbidden,
	errs.AuthorizerUnauthorized: http.StatusForbidden,
	errs.NotFound:               http.StatusNotFound,
	errs.MethodNotAllowed:       http.StatusMethodNotAllowed,
	errs.Conflict:               http.StatusConflict,
	errs.RateLimited:            http.StatusTooManyRequests,
	errs.UpstreamError:          http.StatusBadGateway,
	errs.UpstreamUnavailable:    http.StatusServiceUnavailable,
	errs.UpstreamTimeout:        http.StatusGatewayTimeout,
	errs.ComponentNotReady:      http.StatusServiceUnavailable,
	errs.Internal:               http.StatusInternalServerError,
}

// wechatCodeOf is the one table from error code to the WeChat errcode the
// compatible routes answer when the error did not come from WeChat itself
// (docs/api.md, "Compatible errcodes").
var wechatCodeOf = map[errs.Code]int{
	errs.InvalidArgument:        wechat.ErrDataFormat,
	errs.Unauthenticated:        wechat.ErrInvalidCredential,
	errs.Forbidden:              wechat.ErrInvalidAppID,
	errs.NotFound:               wechat.ErrInvalidAppID,
	errs.MethodNotAllowed:       wechat.ErrRequireMethod,
	errs.PermissionSetMissing:   wechat.ErrAPIUnauthorizedToComp,
	errs.AuthorizerUnauthorized: wechat.ErrComponentUnauthorized,
	errs.RateLimited:            wechat.ErrMinuteQuota,
	errs.UpstreamUnavailable:    wechat.ErrSystemBusy,
	errs.UpstreamTimeout:        wechat.ErrSystemBusy,
	errs.ComponentNotReady:      wechat.ErrSystemBusy,
	errs.Internal:               wechat.ErrSystemBusy,
}

// localWeChatCode lists the codes whose compatible answer is always the one
// of wechatCodeOf, even when a WeChat errcode caused them: an account that
// unauthorized the platform is 61003 whether the token chain saw 61003 or
// 61023, and a component or upstream outage is -1, not a component API's
// errcode or a token error the caller would read as "bad tenant key".
var localWeChatCode = map[errs.Code]bool{
	errs.AuthorizerUnauthorized: true,
	errs.ComponentNotReady:      true,
	errs.UpstreamUnavailable:    true,
	errs.UpstreamTimeout:        true,
	errs.Internal:               true,
}

// answersLocally reports whether the compatible answer to e is the code of
// wechatCodeOf rather than WeChat's own errcode: for the codes above, and
// for a token WeChat refused even after the refresh, because on this
// surface 40001/40014/42001 mean "your key is bad" and SDKs drop their key
// on them.
func answersLocally(e *errs.Error) bool {
	return localWeChatCode[e.Code] || e.Code == errs.UpstreamError && wechat.IsTokenError(e.WeChatErrcode)
}

type errorBody struct {
	Error errorPayload `json:"error"`
}

type errorPayload struct {
	Code    errs.Code      `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// normalize turns any error into a client-safe *errs.Error, logging the
// ones that are internal with the request's context.
func normalize(c *gin.Context, log *slog.Logger, err error) *errs.Error {
	e := errs.As(err)
	if e == nil || e.Code == errs.Internal {
		log.ErrorContext(c.Request.Context(), "internal error", "err", err.Error(), "route", c.FullPath())
		return errs.E(errs.Internal, "internal error")
	}
	if e.Cause != nil {
		log.DebugContext(c.Request.Context(), "request failed", "code", string(e.Code), "err", e.Error())
	}
	return e
}

// writeError answers err on the /v1 and /admin surfaces.
func writeError(c *gin.Context, log *slog.Logger, err error) {
	e := normalize(c, log, err)
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	setRetryAfter(c, e)
	c.Set(ctxErrCode, string(e.Code))
	c.AbortWithStatusJSON(status, errorBody{Error: errorPayload{Code: e.Code, Message: e.Message, Details: payloadDetails(e)}})
}

// payloadDetails is e's details plus WeChat's errcode and errmsg when the
// error came from (or stands for) a WeChat answer.
func payloadDetails(e *errs.Error) map[string]any {
	if e.WeChatErrcode == 0 {
		return e.Details
	}
	details := make(map[string]any, len(e.Details)+2)
	for k, v := range e.Details {
		details[k] = v
	}
	details["wechat_errcode"] = e.WeChatErrcode
	if e.WeChatErrmsg != "" {
		details["wechat_errmsg"] = e.WeChatErrmsg
	}
	return details
}

// writeWeChatError answers err on the compatible surface, in WeChat's shape:
// HTTP 200 and {"errcode","errmsg"}. Errors WeChat answered pass through
// unchanged; local ones get the errcode of wechatCodeOf.
func writeWeChatError(c *gin.Context, log *slog.Logger, err error) {
	e := normalize(c, log, err)
	code, msg := e.WeChatErrcode, e.WeChatErrmsg
	if answersLocally(e) {
		code = 0 // the contract's code, not whatever the token chain saw
	}
	if code == 0 {
		var ok bool
		if code, ok = wechatCodeOf[e.Code]; !ok {
			code = wechat.ErrSystemBusy
		}
		msg = wechat.Errmsg(code)
	}
	if msg == "" {
		msg = wechat.Errmsg(code)
	}
	setRetryAfter(c, e)
	c.Set(ctxErrCode, string(e.Code))
	body, _ := json.Marshal(struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
	}{code, msg})
	c.Abort()
	writeWeChatJSON(c, body)
}

// writeWeChatJSON writes a WeChat-shaped body exactly as WeChat does:
// HTTP 200, its content type, no trailing newline.
func writeWeChatJSON(c *gin.Context, body []byte) {
	c.Data(http.StatusOK, wechatContentType, body)
}

// wechatContentType is the Content-Type WeChat answers with (docs/wechat.md, "Wire format").
const wechatContentType = "application/json; encoding=utf-8"

func setRetryAfter(c *gin.Context, e *errs.Error) {
	if e.Code == errs.RateLimited {
		secs := int(math.Ceil(e.RetryAfter.Seconds()))
		if secs < 1 {
			secs = 1
		}
		c.Header("Retry-After", strconv.Itoa(secs))
	}
}
