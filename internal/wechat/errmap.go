package wechat

import (
	"time"

	"github.com/wxgate/wxgate/internal/errs"
)

// MinuteQuotaRetryAfter is the Retry-After given for 45011 (WeChat says
// "retry next minute").
const MinuteQuotaRetryAfter = time.Minute

// ScopeDailyQuota is the details.scope of 45009's rate_limited: the same
// scope as the gateway's own refusal once it knows the quota is spent, so
// a client tells the two causes of 429 apart by one field either way.
const ScopeDailyQuota = "wechat_daily_quota"

// beijing is WeChat's day boundary for daily quotas (UTC+8, no DST).
var beijing = time.FixedZone("CST", 8*60*60)

// AsError maps a WeChat errcode answer to the domain error of docs/api.md, "Errors",
// with WeChatErrcode and WeChatErrmsg set:
//
//	40003, 45159          invalid_argument
//	76021, 76003          invalid_argument
//	45009, 45011          rate_limited (RetryAfter: next Beijing midnight / one minute;
//	                      45009 with details.scope wechat_daily_quota)
//	61007                 permission_set_missing
//	61003, 61023          authorizer_unauthorized
//	61005, 61006          component_not_ready
//	-1                    upstream_unavailable
//	anything else         upstream_error
//
// It answers nil for errcode 0.
func AsError(errcode int, errmsg string) *errs.Error {
	return AsErrorAt(errcode, errmsg, time.Now())
}

// AsErrorAt is AsError with the clock used for the 45009 Retry-After.
func AsErrorAt(errcode int, errmsg string, now time.Time) *errs.Error {
	if errcode == 0 {
		return nil
	}
	if errmsg == "" {
		errmsg = Errmsg(errcode)
	}
	var e *errs.Error
	switch errcode {
	case ErrInvalidOpenID:
		e = errs.E(errs.InvalidArgument, "WeChat rejected the openid (next_openid)")
	case ErrInvalidTagID:
		e = errs.E(errs.InvalidArgument, "WeChat rejected the tag id")
	case ErrCGIPathNotFound, ErrCGIPathMalformed:
		e = errs.E(errs.InvalidArgument, "WeChat knows no quota for this cgi_path")
	case ErrDailyQuota:
		y, m, d := now.In(beijing).Date()
		e = errs.E(errs.RateLimited, "the account's daily WeChat quota for this API is spent").
			WithDetails(map[string]any{"scope": ScopeDailyQuota}).
			WithRetryAfter(time.Date(y, m, d+1, 0, 0, 0, 0, beijing).Sub(now))
	case ErrMinuteQuota:
		e = errs.E(errs.RateLimited, "WeChat's per-minute quota for this API is reached").WithRetryAfter(MinuteQuotaRetryAfter)
	case ErrAPIUnauthorizedToComp:
		e = errs.E(errs.PermissionSetMissing, "the account has not granted the platform a permission set this API needs")
	case ErrComponentUnauthorized:
		e = errs.E(errs.AuthorizerUnauthorized, "the account has unauthorized the platform")
	case ErrRefreshTokenInvalid:
		e = errs.E(errs.AuthorizerUnauthorized, "the account's authorization is no longer valid; it must authorize the platform again")
	case ErrTicketExpired, ErrTicketInvalid:
		e = errs.E(errs.ComponentNotReady, "the platform's component_verify_ticket is missing or expired; waiting for WeChat to push a new one")
	case ErrSystemBusy:
		e = errs.E(errs.UpstreamUnavailable, "WeChat is busy")
	default:
		e = errs.E(errs.UpstreamError, "WeChat answered an error")
	}
	return e.WithWeChat(errcode, errmsg)
}

// ErrcodeOf returns the WeChat errcode an error carries (0 if none).
func ErrcodeOf(err error) int {
	if err == nil {
		return 0 // the common case, without errors.As's allocation
	}
	if e := errs.As(err); e != nil {
		return e.WeChatErrcode
	}
	return 0
}
