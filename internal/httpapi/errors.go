package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/quota"
	"github.com/wxgate/wxgate/internal/tenant"
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
	errs.StoreUnavailable:       http.StatusServiceUnavailable,
	errs.Internal:               http.StatusInternalServerError,
}

// compatRule is how the compatible surface answers the errors of one code.
type compatRule struct {
	// errcode is the answer to an error WeChat did not answer itself.
	errcode int
	// local, if set, says when even an error WeChat answered gets errcode
	// instead of WeChat's own errcode.
	local func(e *errs.Error) bool
	// refine, if set, gives the more precise answer WeChat has for what a
	// local error names (errcode 0: none, errmsg "": WeChat's for errcode).
	refine func(e *errs.Error) (errcode int, errmsg string)
}

// compatRules is the one table from error code to the compatible surface's
// answer (docs/api.md, "Errors"). An error WeChat answered passes through
// with WeChat's errcode and errmsg unless its rule is local: an account
// that unauthorized the platform is 61003 whether the token chain saw 61003
// or 61023; a component or upstream outage is -1, not a component API's
// errcode; and a token WeChat refused even after the refresh is -1, because
// on this surface 40001/40014/42001 mean "your key is bad" and SDKs drop
// their key on them.
var compatRules = map[errs.Code]compatRule{
	errs.InvalidArgument:        {errcode: wechat.ErrDataFormat, refine: paramErrcode},
	errs.Unauthenticated:        {errcode: wechat.ErrInvalidCredential, refine: missingKey},
	errs.Forbidden:              {errcode: wechat.ErrInvalidAppID},
	errs.PermissionSetMissing:   {errcode: wechat.ErrAPIUnauthorizedToComp},
	errs.AuthorizerUnauthorized: {errcode: wechat.ErrComponentUnauthorized, local: always},
	errs.NotFound:               {errcode: wechat.ErrInvalidAppID, refine: noRoute},
	errs.MethodNotAllowed:       {errcode: wechat.ErrRequireMethod, refine: requiredMethod},
	errs.Conflict:               {errcode: wechat.ErrSystemBusy},
	errs.RateLimited:            {errcode: wechat.ErrMinuteQuota, refine: dailyQuota},
	errs.UpstreamError:          {errcode: wechat.ErrSystemBusy, local: tokenRefused},
	errs.UpstreamUnavailable:    {errcode: wechat.ErrSystemBusy, local: always},
	errs.UpstreamTimeout:        {errcode: wechat.ErrSystemBusy, local: always},
	errs.ComponentNotReady:      {errcode: wechat.ErrSystemBusy, local: always},
	errs.StoreUnavailable:       {errcode: wechat.ErrSystemBusy, local: always},
	errs.Internal:               {errcode: wechat.ErrSystemBusy, local: always},
}

// compatAnswer is what a client of the compatible surface sees for e: the
// errcode and errmsg of WeChat's {"errcode","errmsg"} answer. Every
// compatible answer is decided here, by compatRules.
func compatAnswer(e *errs.Error) (errcode int, errmsg string) {
	rule, ok := compatRules[e.Code]
	if !ok {
		rule = compatRule{errcode: wechat.ErrSystemBusy}
	}
	switch {
	case e.WeChatErrcode != 0 && (rule.local == nil || !rule.local(e)):
		errcode, errmsg = e.WeChatErrcode, e.WeChatErrmsg
	case rule.refine != nil:
		if errcode, errmsg = rule.refine(e); errcode == 0 {
			errcode, errmsg = rule.errcode, ""
		}
	default:
		errcode = rule.errcode
	}
	if errmsg == "" {
		errmsg = wechat.Errmsg(errcode)
	}
	return errcode, errmsg
}

func always(*errs.Error) bool { return true }

// tokenRefused: WeChat refused the account's token even after the refresh.
func tokenRefused(e *errs.Error) bool { return wechat.IsTokenError(e.WeChatErrcode) }

// paramErrcode is WeChat's errcode for a refused parameter value (40003 for
// an openid, 45159 for a tag id), named by the proxy's ParamError.
func paramErrcode(e *errs.Error) (int, string) {
	var pe *proxy.ParamError
	if errors.As(e, &pe) {
		return pe.WeChatErrcode, ""
	}
	return 0, ""
}

// dailyQuota is WeChat's 45009 for a call refused locally for a daily
// quota (the account's, or the tenant's cap on it): both end at midnight
// Beijing time, as WeChat's own 45009 does.
func dailyQuota(e *errs.Error) (int, string) {
	var r *quota.Refused
	if errors.As(e, &r) {
		return wechat.ErrDailyQuota, ""
	}
	return 0, ""
}

// missingKey is WeChat's 41001 for a request without access_token; any
// other refused key is 40001.
func missingKey(e *errs.Error) (int, string) {
	if tenant.FailureReason(e) == tenant.ReasonMissing {
		return wechat.ErrAccessTokenMissing, ""
	}
	return 0, ""
}

// errNoRoute is the cause of the answer to a path no route serves.
var errNoRoute = errors.New("httpapi: no route serves this path")

// noRoute is WeChat's 40066 for a path it does not serve, rather than the
// 40013 of an account the caller may not see.
func noRoute(e *errs.Error) (int, string) {
	if errors.Is(e, errNoRoute) {
		return wechat.ErrInvalidURL, ""
	}
	return 0, ""
}

// wrongMethod is the cause of a compatible route's method_not_allowed: the
// method WeChat requires there.
type wrongMethod struct{ want string }

func (m *wrongMethod) Error() string { return "httpapi: this path requires " + m.want }

// requiredMethod is WeChat's 43002 naming the method the path requires.
func requiredMethod(e *errs.Error) (int, string) {
	var m *wrongMethod
	if errors.As(e, &m) {
		return wechat.ErrRequireMethod, "require " + m.want + " method"
	}
	return 0, ""
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
	c.Abort()
	c.PureJSON(status, errorBody{Error: errorPayload{Code: e.Code, Message: e.Message, Details: payloadDetails(e)}})
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
// HTTP 200 and the {"errcode","errmsg"} of compatAnswer.
func writeWeChatError(c *gin.Context, log *slog.Logger, err error) {
	e := normalize(c, log, err)
	code, msg := compatAnswer(e)
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

// defaultStoreRetryAfter is the Retry-After of a store_unavailable error
// that carries none.
const defaultStoreRetryAfter = 2 * time.Second

func setRetryAfter(c *gin.Context, e *errs.Error) {
	if e.Code == errs.StoreUnavailable && e.RetryAfter <= 0 {
		e = e.WithRetryAfter(defaultStoreRetryAfter)
	}
	if e.Code == errs.RateLimited || e.Code == errs.StoreUnavailable {
		secs := int(math.Ceil(e.RetryAfter.Seconds()))
		if secs < 1 {
			secs = 1
		}
		c.Header("Retry-After", strconv.Itoa(secs))
	}
}
