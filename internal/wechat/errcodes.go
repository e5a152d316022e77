// Package wechat is wxgate's client for WeChat's APIs (component APIs and
// the proxied account APIs) and the table of WeChat error codes.
package wechat

// WeChat errcodes the gateway reacts to (docs/wechat.md, "Error codes").
const (
	ErrSystemBusy            = -1
	ErrInvalidCredential     = 40001
	ErrInvalidOpenID         = 40003
	ErrInvalidAppID          = 40013
	ErrInvalidAccessToken    = 40014
	ErrAccessTokenMissing    = 41001
	ErrAccessTokenExpired    = 42001
	ErrDailyQuota            = 45009
	ErrMinuteQuota           = 45011
	ErrInvalidTagID          = 45159
	ErrDataFormat            = 47001
	ErrAPIUnauthorized       = 48001
	ErrInvalidURL            = 40066
	ErrRequireMethod         = 43002
	ErrComponentUnauthorized = 61003
	ErrClientIPNotRegistered = 61004
	ErrTicketExpired         = 61005
	ErrTicketInvalid         = 61006
	ErrAPIUnauthorizedToComp = 61007
	ErrCodeInvalid           = 61009
	ErrCodeExpired           = 61010
	ErrRefreshTokenInvalid   = 61023
	ErrAPIForbidden          = 48006
	ErrCGIPathNotFound       = 76021
	ErrCGIPathMalformed      = 76003
)

// Errmsg returns WeChat's errmsg for a code, as WeChat writes it.
func Errmsg(code int) string {
	switch code {
	case ErrSystemBusy:
		return "system error"
	case ErrInvalidCredential:
		return "invalid credential, access_token is invalid or not latest"
	case ErrInvalidOpenID:
		return "invalid openid"
	case ErrInvalidAppID:
		return "invalid appid"
	case ErrInvalidAccessToken:
		return "invalid access_token"
	case ErrInvalidURL:
		return "invalid url"
	case ErrRequireMethod:
		return "require POST method"
	case ErrAccessTokenMissing:
		return "access_token missing"
	case ErrAccessTokenExpired:
		return "access_token expired"
	case ErrDailyQuota:
		return "reach max api daily quota limit"
	case ErrMinuteQuota:
		return "api minute-quota reach limit, must slower, retry next minute"
	case ErrInvalidTagID:
		return "invalid tag id"
	case ErrDataFormat:
		return "data format error"
	case ErrAPIUnauthorized:
		return "api unauthorized"
	case ErrComponentUnauthorized:
		return "component is not authorized by this account"
	case ErrClientIPNotRegistered:
		return "access clientip is not registered"
	case ErrTicketExpired:
		return "component ticket is expired"
	case ErrTicketInvalid:
		return "component ticket is invalid"
	case ErrAPIUnauthorizedToComp:
		return "api is unauthorized to component"
	case ErrCodeInvalid:
		return "code is invalid"
	case ErrCodeExpired:
		return "code is expired"
	case ErrRefreshTokenInvalid:
		return "refresh_token is invalid"
	case ErrAPIForbidden:
		return "api forbidden for irregularities, view detail on mp.weixin.qq.com"
	case ErrCGIPathNotFound:
		return "cgi_path not found, please check"
	case ErrCGIPathMalformed:
		return "invalid cgi_path"
	}
	return "unknown error"
}

// IsTokenError reports whether code means the access token is no longer
// good: compare-and-refresh, then retry once.
func IsTokenError(code int) bool {
	return code == ErrInvalidCredential || code == ErrInvalidAccessToken || code == ErrAccessTokenExpired
}
