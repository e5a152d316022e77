package proxy_test

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/wechat"
)

// TestArgsAtTheEdges pins the validation of both surfaces at the edges of
// each rule: the openid alphabet and length, the tag id range, required
// and absent values, and the compatible route's JSON forms.
func TestArgsAtTheEdges(t *testing.T) {
	t.Parallel()
	max := strings.Repeat("o", 64)
	rest := []struct {
		name  string
		api   *proxy.API
		tagid string
		query string
		want  proxy.Args // nil: refused with invalid_argument
	}{
		{"no cursor", getFans, "", "", proxy.Args{}},
		{"empty cursor", getFans, "", "next_openid=", proxy.Args{}},
		{"cursor of every allowed character", getFans, "", "next_openid=azAZ09_-", proxy.Args{"next_openid": "azAZ09_-"}},
		{"cursor of 64 characters", getFans, "", "next_openid=" + max, proxy.Args{"next_openid": max}},
		{"cursor of 65 characters", getFans, "", "next_openid=" + max + "o", nil},
		{"cursor with a dot", getFans, "", "next_openid=o.x", nil},
		{"cursor with a slash", getFans, "", "next_openid=o/x", nil},
		{"cursor with a colon", getFans, "", "next_openid=o:x", nil},
		{"cursor with an at sign", getFans, "", "next_openid=o@x", nil},
		{"cursor with a bracket", getFans, "", "next_openid=o[x", nil},
		{"cursor with a backquote", getFans, "", "next_openid=o`x", nil},
		{"cursor with a brace", getFans, "", "next_openid=o{x", nil},
		{"tag 1", getTagFans, "1", "", proxy.Args{"tagid": "1"}},
		{"tag 2147483647", getTagFans, "2147483647", "", proxy.Args{"tagid": "2147483647"}},
		{"tag with leading zeros", getTagFans, "007", "next_openid=o1", proxy.Args{"tagid": "7", "next_openid": "o1"}},
		{"tag 0", getTagFans, "0", "", nil},
		{"tag 2147483648", getTagFans, "2147483648", "", nil},
		{"tag -1", getTagFans, "-1", "", nil},
		{"tag not a number", getTagFans, "x", "", nil},
		{"no tag", getTagFans, "", "", nil},
	}
	for _, tt := range rest {
		t.Run("REST "+tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			got, err := tt.api.RESTArgs(func(string) string { return tt.tagid }, q)
			check(t, tt.api, got, err, tt.want)
		})
	}
	compat := []struct {
		name  string
		api   *proxy.API
		query string
		body  string
		want  proxy.Args
	}{
		{"GET without a cursor", getFans, "", "", proxy.Args{}},
		{"GET with a cursor", getFans, "next_openid=o1", "", proxy.Args{"next_openid": "o1"}},
		{"GET with a bad cursor", getFans, "next_openid=o.1", "", nil},
		{"POST number", getTagFans, "", `{"tagid":134}`, proxy.Args{"tagid": "134"}},
		{"POST string number", getTagFans, "", `{"tagid":"134","next_openid":"o1"}`, proxy.Args{"tagid": "134", "next_openid": "o1"}},
		{"POST null cursor", getTagFans, "", `{"tagid":134,"next_openid":null}`, proxy.Args{"tagid": "134"}},
		{"POST null tag", getTagFans, "", `{"tagid":null}`, nil},
		{"POST empty body", getTagFans, "", "  ", nil},
		{"POST not JSON", getTagFans, "", `{"tagid":`, nil},
		{"POST tag 0", getTagFans, "", `{"tagid":0}`, nil},
		{"POST tag as a fraction", getTagFans, "", `{"tagid":1.5}`, nil},
	}
	for _, tt := range compat {
		t.Run("compatible "+tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			got, err := tt.api.CompatArgs(q, []byte(tt.body))
			check(t, tt.api, got, err, tt.want)
			if err != nil && paramErrcode(err) == 0 && errs.As(err).Details["reason"] != "malformed JSON" {
				t.Fatalf("refusal %v names no parameter and is not a malformed body", err)
			}
		})
	}
	t.Run("refusals say why", func(t *testing.T) {
		for _, tc := range []struct{ tagid, want string }{
			{"99999999999999999999", "out of range: at most 2147483647"},
			{"2147483648", "out of range: at most 2147483647"},
			{"0", "must be a positive integer"},
			{"-3", "must be a positive integer"},
			{"x", "must be a positive integer"},
		} {
			_, err := getTagFans.RESTArgs(func(string) string { return tc.tagid }, nil)
			if e := errs.As(err); e == nil || !strings.Contains(e.Message, tc.want) {
				t.Errorf("tagid %s: got %v, want a message saying %q", tc.tagid, err, tc.want)
			}
		}
	})
	t.Run("refusals carry the parameter's WeChat errcode", func(t *testing.T) {
		_, err := getTagFans.CompatArgs(nil, []byte(`{"tagid":0}`))
		if code := paramErrcode(err); code != wechat.ErrInvalidTagID {
			t.Fatalf("tag refusal errcode: got %d want %d", code, wechat.ErrInvalidTagID)
		}
		_, err = getFans.CompatArgs(url.Values{"next_openid": {"o.1"}}, nil)
		if code := paramErrcode(err); code != wechat.ErrInvalidOpenID {
			t.Fatalf("openid refusal errcode: got %d want %d", code, wechat.ErrInvalidOpenID)
		}
		_, err = getTagFans.CompatArgs(nil, []byte(`[`))
		if code := paramErrcode(err); code != 0 {
			t.Fatalf("malformed body: got a parameter errcode %d, want none (the HTTP layer answers data format)", code)
		}
	})
}

func check(t *testing.T, api *proxy.API, got proxy.Args, err error, want proxy.Args) {
	t.Helper()
	if want == nil {
		if errs.CodeOf(err) != errs.InvalidArgument || got != nil {
			t.Fatalf("%s: got %v, %v; want invalid_argument", api.Name, got, err)
		}
		return
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %v, %v; want %v", api.Name, got, err, want)
	}
}

// paramErrcode is the WeChat errcode a refusal's ParamError names, or 0.
func paramErrcode(err error) int {
	var pe *proxy.ParamError
	if errors.As(err, &pe) {
		return pe.WeChatErrcode
	}
	return 0
}
