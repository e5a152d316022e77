package httpapi

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/quota"
	"github.com/wxgate/wxgate/internal/tenant"
	"github.com/wxgate/wxgate/internal/wechat"
)

// TestEveryCodeHasOneAnswerOnEachSurface: each error code has its HTTP
// status and its compatible rule, in the one table of each.
func TestEveryCodeHasOneAnswerOnEachSurface(t *testing.T) {
	for code := range statusOf {
		if _, ok := compatRules[code]; !ok {
			t.Errorf("%s has an HTTP status but no compatible rule", code)
		}
	}
	for code := range compatRules {
		if _, ok := statusOf[code]; !ok {
			t.Errorf("%s has a compatible rule but no HTTP status", code)
		}
	}
}

// TestCompatAnswer is the compatible surface's answer to every error code,
// for errors raised locally, errors WeChat answered (passed through), and
// errors WeChat answered that are still answered locally.
func TestCompatAnswer(t *testing.T) {
	api := func(name string) *proxy.API {
		for _, a := range proxy.APIs {
			if a.Name == name {
				return a
			}
		}
		t.Fatalf("no API %s", name)
		return nil
	}
	_, badOpenID := api("getFans").CompatArgs(url.Values{"next_openid": {"not an openid!"}}, nil)
	_, badTagID := api("getTagFans").CompatArgs(nil, []byte(`{"tagid":"x"}`))
	_, noTagID := api("getTagFans").CompatArgs(nil, []byte(`{}`))
	_, notJSON := api("getTagFans").CompatArgs(nil, []byte(`{`))
	local := func(code errs.Code) *errs.Error { return errs.E(code, "local") }
	fromWeChat := func(errcode int, errmsg string) *errs.Error { return wechat.AsError(errcode, errmsg) }

	tests := []struct {
		name    string
		err     error
		errcode int
		errmsg  string
	}{
		// Raised locally: the code's errcode, or the more precise one the
		// error names.
		{"invalid_argument", local(errs.InvalidArgument), 47001, "data format error"},
		{"invalid_argument: an openid refused", badOpenID, 40003, "invalid openid"},
		{"invalid_argument: a tag id refused", badTagID, 45159, "invalid tag id"},
		{"invalid_argument: a tag id missing", noTagID, 45159, "invalid tag id"},
		{"invalid_argument: a body that is not JSON", notJSON, 47001, "data format error"},
		{"unauthenticated: no key", tenant.Refuse(tenant.ReasonMissing), 41001, "access_token missing"},
		{"unauthenticated: an expired key", tenant.Refuse(tenant.ReasonExpired), 40001, "invalid credential, access_token is invalid or not latest"},
		{"unauthenticated: no reason", local(errs.Unauthenticated), 40001, "invalid credential, access_token is invalid or not latest"},
		{"forbidden", local(errs.Forbidden), 40013, "invalid appid"},
		{"permission_set_missing", local(errs.PermissionSetMissing), 61007, "api is unauthorized to component"},
		{"authorizer_unauthorized", local(errs.AuthorizerUnauthorized), 61003, "component is not authorized by this account"},
		{"not_found: an account", errAuthorizerNotFound(), 40013, "invalid appid"},
		{"not_found: no route", errs.E(errs.NotFound, "no such route").WithCause(errNoRoute), 40066, "invalid url"},
		{"method_not_allowed: GET required", local(errs.MethodNotAllowed).WithCause(&wrongMethod{want: "GET"}), 43002, "require GET method"},
		{"method_not_allowed: POST required", local(errs.MethodNotAllowed).WithCause(&wrongMethod{want: "POST"}), 43002, "require POST method"},
		{"method_not_allowed: no method named", local(errs.MethodNotAllowed), 43002, "require POST method"},
		{"conflict", local(errs.Conflict), -1, "system error"},
		{"rate_limited", local(errs.RateLimited), 45011, "api minute-quota reach limit, must slower, retry next minute"},
		{"rate_limited: the account's daily quota spent", quota.Refusal(quota.ScopeWeChat, time.Now()), 45009, "reach max api daily quota limit"},
		{"rate_limited: the tenant's daily cap reached", quota.Refusal(quota.ScopeTenant, time.Now()), 45009, "reach max api daily quota limit"},
		{"upstream_error: an unexpected HTTP status", local(errs.UpstreamError), -1, "system error"},
		{"upstream_unavailable", local(errs.UpstreamUnavailable), -1, "system error"},
		{"upstream_timeout", local(errs.UpstreamTimeout), -1, "system error"},
		{"component_not_ready", local(errs.ComponentNotReady), -1, "system error"},
		{"internal", local(errs.Internal), -1, "system error"},
		{"wrapped", fmt.Errorf("outer: %w", local(errs.Forbidden)), 40013, "invalid appid"},

		// Answered by WeChat: its errcode and errmsg pass through.
		{"WeChat 48001", fromWeChat(48001, "api unauthorized rid: 1"), 48001, "api unauthorized rid: 1"},
		{"WeChat 40003", fromWeChat(40003, "invalid openid rid: 2"), 40003, "invalid openid rid: 2"},
		{"WeChat 45159", fromWeChat(45159, "invalid tag id rid: 3"), 45159, "invalid tag id rid: 3"},
		{"WeChat 45009", fromWeChat(45009, "reach max api daily quota limit rid: 4"), 45009, "reach max api daily quota limit rid: 4"},
		{"WeChat 45011", fromWeChat(45011, "api minute-quota reach limit rid: 5"), 45011, "api minute-quota reach limit rid: 5"},
		{"WeChat 61007", fromWeChat(61007, "api is unauthorized to component rid: 6"), 61007, "api is unauthorized to component rid: 6"},
		{"WeChat errcode without errmsg", local(errs.UpstreamError).WithWeChat(48001, ""), 48001, "api unauthorized"},
		{"WeChat 40066 on a conflict", local(errs.Conflict).WithWeChat(40066, "invalid url rid: 7"), 40066, "invalid url rid: 7"},

		// Answered by WeChat, still answered locally.
		{"WeChat 61003", fromWeChat(61003, "component is not authorized by this account rid: 8"), 61003, "component is not authorized by this account"},
		{"WeChat 61023", fromWeChat(61023, "refresh_token is invalid rid: 9"), 61003, "component is not authorized by this account"},
		{"WeChat 61005", fromWeChat(61005, "component ticket is expired"), -1, "system error"},
		{"WeChat 61006", fromWeChat(61006, "component ticket is invalid"), -1, "system error"},
		{"WeChat -1", fromWeChat(-1, "system error rid: 10"), -1, "system error"},
		{"WeChat 40001 after the refresh", fromWeChat(40001, "invalid credential rid: 11"), -1, "system error"},
		{"WeChat 40014 after the refresh", fromWeChat(40014, "invalid access_token rid: 12"), -1, "system error"},
		{"WeChat 42001 after the refresh", fromWeChat(42001, "access_token expired rid: 13"), -1, "system error"},
		{"WeChat's errcode on an internal error", local(errs.Internal).WithWeChat(48001, "api unauthorized"), -1, "system error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := errs.As(tc.err)
			if e == nil {
				t.Fatalf("%v is not an *errs.Error", tc.err)
			}
			before := *e
			code, msg := compatAnswer(e)
			if code != tc.errcode || msg != tc.errmsg {
				t.Fatalf("compatAnswer(%v) = %d %q, want %d %q", tc.err, code, msg, tc.errcode, tc.errmsg)
			}
			if e.Code != before.Code || e.WeChatErrcode != before.WeChatErrcode || e.WeChatErrmsg != before.WeChatErrmsg || e.Message != before.Message {
				t.Fatalf("compatAnswer changed the error: %+v, was %+v", *e, before)
			}
		})
	}
}
