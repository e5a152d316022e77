package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/wechat"
)

// TestCompatibleRoutesOverTheRealProxy sends WeChat-shaped requests to the
// compatible routes of the real router, over the real proxy service, the
// real token manager and the simulator. What WeChat answers itself (a
// success, or an errcode for a value it refuses) must reach the client
// unchanged; what the gateway refuses locally (a parameter it can check, an
// account the caller may not use, one without the permission set, one that
// unauthorized the platform) must cost no WeChat call and answer the
// errcode WeChat's own client expects for that situation.
func TestCompatibleRoutesOverTheRealProxy(t *testing.T) {
	t.Parallel()
	const (
		appOK     = "wx00000000000000d1" // 23 followers; tag 2 holds followers 5..14
		appNoSets = "wx00000000000000d2" // granted only set 1
		appGone   = "wx00000000000000d3" // unauthorized the platform
		appRival  = "wx00000000000000d4" // bound to another tenant
	)
	f := newExportFixture(t)
	f.account(sim.AccountSpec{AppID: appOK, Followers: 23, PermissionSets: []int{2},
		Tags: []sim.TagSpec{{ID: 2, From: 5, To: 15}}})
	f.account(sim.AccountSpec{AppID: appNoSets, Followers: 23, PermissionSets: []int{1}})
	f.account(sim.AccountSpec{AppID: appGone, Followers: 23})
	if err := f.p.Sim.Unauthorize(f.p.Ctx(), appGone); err != nil {
		t.Fatalf("unauthorize %s: %v", appGone, err)
	}
	if err := f.p.Sim.CreateAccount(sim.AccountSpec{AppID: appRival, Followers: 23}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.Sim.Authorize(f.p.Ctx(), appRival, ""); err != nil {
		t.Fatal(err)
	}
	rival := f.createTenant("rival")
	if w := f.admin(http.MethodPut, "/admin/tenants/"+rival+"/authorizers/"+appRival, nil); w.Code != http.StatusNoContent {
		t.Fatalf("bind %s to rival: %d %s", appRival, w.Code, w.Body)
	}

	// WeChat's calls, as the simulator counts them (refusals included).
	wechatCalls := func() int64 {
		return f.p.Calls(sim.EndpointUserGet, "") + f.p.Calls(sim.EndpointUserTagGet, "")
	}
	// direct sends the same request straight to WeChat with the account's
	// current token: what WeChat itself answers.
	direct := func(t *testing.T, method, path string, query url.Values, body string) []byte {
		t.Helper()
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("access_token", f.p.Sim.CurrentAccessToken(appOK))
		req, err := http.NewRequest(method, f.p.SimServer.URL+path+"?"+q.Encode(), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The followers' openids, in WeChat's order.
	var first struct {
		Data struct{ OpenID []string } `json:"data"`
	}
	if err := json.Unmarshal(direct(t, http.MethodGet, "/cgi-bin/user/get", nil, ""), &first); err != nil || len(first.Data.OpenID) != 23 {
		t.Fatalf("WeChat's first page: %d openids, %v", len(first.Data.OpenID), err)
	}
	openid := first.Data.OpenID
	wellFormedUnknown := "o" + strings.Repeat("Z", 27)

	type page struct {
		Total      *int                      `json:"total"`
		Count      int                       `json:"count"`
		Data       struct{ OpenID []string } `json:"data"`
		NextOpenID string                    `json:"next_openid"`
	}
	const (
		getFans    = "/cgi-bin/user/get"
		getTagFans = "/cgi-bin/user/tag/get"
	)
	for _, tc := range []struct {
		name   string
		method string
		appid  string
		path   string
		query  url.Values // besides access_token
		key    string     // "" = the tenant's key; "-" = none
		body   string
		// local: the gateway answers errcode (errmsg: WeChat's for it, or
		// errmsg if set) without calling WeChat. Otherwise WeChat's answer
		// passes through and want (if set) checks the page.
		local   bool
		errcode int
		errmsg  string
		want    func(t *testing.T, p page)
	}{
		{name: "getFans, the first page", method: "GET", appid: appOK, path: getFans,
			want: func(t *testing.T, p page) {
				if p.Total == nil || *p.Total != 23 || p.Count != 23 || p.Data.OpenID[0] != openid[0] || p.NextOpenID != "" {
					t.Fatalf("page = %+v, want all 23 followers and no next_openid", p)
				}
			}},
		{name: "getFans from a cursor", method: "GET", appid: appOK, path: getFans, query: url.Values{"next_openid": {openid[9]}},
			want: func(t *testing.T, p page) {
				if p.Count != 13 || p.Data.OpenID[0] != openid[10] || p.Data.OpenID[12] != openid[22] {
					t.Fatalf("page = %+v, want followers 10..22", p)
				}
			}},
		{name: "getFans ignores an unknown parameter", method: "GET", appid: appOK, path: getFans,
			query: url.Values{"next_openid": {openid[19]}, "lang": {"zh_CN"}},
			want: func(t *testing.T, p page) {
				if p.Count != 3 || p.Data.OpenID[0] != openid[20] {
					t.Fatalf("page = %+v, want followers 20..22", p)
				}
			}},
		{name: "getFans, a cursor WeChat does not know", method: "GET", appid: appOK, path: getFans,
			query: url.Values{"next_openid": {wellFormedUnknown}}, errcode: wechat.ErrInvalidOpenID},
		{name: "getFans, a cursor that is no openid", method: "GET", appid: appOK, path: getFans,
			query: url.Values{"next_openid": {"o*not-an-openid"}}, local: true, errcode: wechat.ErrInvalidOpenID},
		{name: "getFans, a cursor over 64 characters", method: "GET", appid: appOK, path: getFans,
			query: url.Values{"next_openid": {strings.Repeat("o", 65)}}, local: true, errcode: wechat.ErrInvalidOpenID},
		{name: "getFans with POST", method: "POST", appid: appOK, path: getFans, body: `{}`,
			local: true, errcode: wechat.ErrRequireMethod, errmsg: "require GET method"},

		{name: "getTagFans", method: "POST", appid: appOK, path: getTagFans, body: `{"tagid": 2, "next_openid": ""}`,
			want: func(t *testing.T, p page) {
				if p.Total != nil || p.Count != 10 || p.Data.OpenID[0] != openid[5] || p.NextOpenID != openid[14] {
					t.Fatalf("page = %+v, want followers 5..14", p)
				}
			}},
		{name: "getTagFans, tagid as a string, fields WeChat ignores", method: "POST", appid: appOK, path: getTagFans,
			body: `{"tagid": "2", "next_openid": "` + openid[9] + `", "lang": "en"}`,
			want: func(t *testing.T, p page) {
				if p.Count != 5 || p.Data.OpenID[0] != openid[10] || p.NextOpenID != openid[14] {
					t.Fatalf("page = %+v, want followers 10..14", p)
				}
			}},
		{name: "getTagFans, a tag WeChat does not know", method: "POST", appid: appOK, path: getTagFans,
			body: `{"tagid": 99}`, errcode: wechat.ErrInvalidTagID},
		{name: "getTagFans without tagid", method: "POST", appid: appOK, path: getTagFans,
			body: `{"next_openid": ""}`, local: true, errcode: wechat.ErrInvalidTagID},
		{name: "getTagFans, tagid 0", method: "POST", appid: appOK, path: getTagFans,
			body: `{"tagid": 0}`, local: true, errcode: wechat.ErrInvalidTagID},
		{name: "getTagFans, tagid past 32 bits", method: "POST", appid: appOK, path: getTagFans,
			body: `{"tagid": 2147483648}`, local: true, errcode: wechat.ErrInvalidTagID},
		{name: "getTagFans, a cursor that is no openid", method: "POST", appid: appOK, path: getTagFans,
			body: `{"tagid": 2, "next_openid": "o not an openid"}`, local: true, errcode: wechat.ErrInvalidOpenID},
		{name: "getTagFans, a body that is no JSON object", method: "POST", appid: appOK, path: getTagFans,
			body: `{"tagid": 2`, local: true, errcode: wechat.ErrDataFormat},
		{name: "getTagFans, a body over 16 KiB", method: "POST", appid: appOK, path: getTagFans,
			body: `{"tagid": 2, "pad": "` + strings.Repeat("x", 16<<10) + `"}`, local: true, errcode: wechat.ErrDataFormat},
		{name: "getTagFans with GET", method: "GET", appid: appOK, path: getTagFans,
			local: true, errcode: wechat.ErrRequireMethod, errmsg: "require POST method"},

		{name: "no access_token", method: "GET", appid: appOK, path: getFans, key: "-",
			local: true, errcode: wechat.ErrAccessTokenMissing},
		{name: "a key that is not the tenant's", method: "GET", appid: appOK, path: getFans, key: "not-a-key",
			local: true, errcode: wechat.ErrInvalidCredential},
		{name: "an account bound to another tenant", method: "GET", appid: appRival, path: getFans,
			local: true, errcode: wechat.ErrInvalidAppID},
		{name: "an account without the permission set", method: "GET", appid: appNoSets, path: getFans,
			local: true, errcode: wechat.ErrAPIUnauthorizedToComp},
		{name: "an account without the permission set, getTagFans", method: "POST", appid: appNoSets, path: getTagFans,
			body: `{"tagid": 2}`, local: true, errcode: wechat.ErrAPIUnauthorizedToComp},
		{name: "an account that unauthorized the platform", method: "GET", appid: appGone, path: getFans,
			local: true, errcode: wechat.ErrComponentUnauthorized},
		{name: "a path no route serves", method: "GET", appid: appOK, path: "/cgi-bin/user/info",
			local: true, errcode: wechat.ErrInvalidURL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{}
			for k, v := range tc.query {
				q[k] = v
			}
			switch tc.key {
			case "":
				q.Set("access_token", f.key)
			case "-":
			default:
				q.Set("access_token", tc.key)
			}
			req := httptest.NewRequest(tc.method, "/wx/"+tc.appid+tc.path+"?"+q.Encode(), strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			w := httptest.NewRecorder()
			before := wechatCalls()
			f.router.ServeHTTP(w, req)
			calls := wechatCalls() - before
			got := w.Body.Bytes()
			if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json; encoding=utf-8" || bytes.HasSuffix(got, []byte("\n")) {
				t.Fatalf("got HTTP %d, %q, body %q: want WeChat's HTTP 200, content type and no trailing newline",
					w.Code, w.Header().Get("Content-Type"), got)
			}
			var e struct {
				Errcode int    `json:"errcode"`
				Errmsg  string `json:"errmsg"`
			}
			if err := json.Unmarshal(got, &e); err != nil {
				t.Fatalf("body %q: %v", got, err)
			}
			if tc.local {
				msg := tc.errmsg
				if msg == "" {
					msg = wechat.Errmsg(tc.errcode)
				}
				if e.Errcode != tc.errcode || e.Errmsg != msg {
					t.Fatalf("got %s, want errcode %d %q", got, tc.errcode, msg)
				}
				if calls != 0 {
					t.Fatalf("a local refusal called WeChat %d times", calls)
				}
				return
			}
			if calls != 1 {
				t.Fatalf("WeChat was called %d times, want once", calls)
			}
			wechatSays := direct(t, tc.method, tc.path, tc.query, tc.body)
			if e.Errcode != tc.errcode {
				t.Fatalf("got %s, want errcode %d (WeChat answers %s)", got, tc.errcode, wechatSays)
			}
			if tc.errcode != 0 {
				var we struct {
					Errcode int    `json:"errcode"`
					Errmsg  string `json:"errmsg"`
				}
				// WeChat's errmsg ends with the call's own request id: the
				// client gets WeChat's errmsg, rid included, not one of the
				// gateway's.
				if err := json.Unmarshal(wechatSays, &we); err != nil || we.Errcode != e.Errcode {
					t.Fatalf("got %s, WeChat answers %s", got, wechatSays)
				}
				gotMsg, gotRID, ok1 := strings.Cut(e.Errmsg, " rid: ")
				wantMsg, _, ok2 := strings.Cut(we.Errmsg, " rid: ")
				if !ok1 || !ok2 || gotRID == "" || gotMsg != wantMsg {
					t.Fatalf("got errmsg %q, want WeChat's %q with its rid", e.Errmsg, we.Errmsg)
				}
				return
			}
			if !bytes.Equal(got, wechatSays) {
				t.Fatalf("got %s\nWeChat answers %s", got, wechatSays)
			}
			var p page
			if err := json.Unmarshal(got, &p); err != nil {
				t.Fatal(err)
			}
			tc.want(t, p)
		})
	}
}
