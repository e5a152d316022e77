package sim

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

func TestNewValidatesOptions(t *testing.T) {
	good := Options{ComponentAppID: testComponent, ComponentSecret: testSecret, Token: testToken, EncodingAESKey: testAESKey}
	tests := []struct {
		name   string
		mutate func(*Options)
	}{
		{"no appid", func(o *Options) { o.ComponentAppID = "" }},
		{"no secret", func(o *Options) { o.ComponentSecret = "" }},
		{"no token", func(o *Options) { o.Token = "" }},
		{"short key", func(o *Options) { o.EncodingAESKey = "abc" }},
		{"relative event url", func(o *Options) { o.EventURL = "/wechat/events" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.mutate(&o)
			if _, err := New(o); err == nil || !strings.HasPrefix(err.Error(), "sim: ") {
				t.Fatalf("New = %v, want a sim: error", err)
			}
		})
	}
	s, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	if s.opts.TokenLifetime != 7200*time.Second || s.opts.TokenOverlap != 5*time.Minute || s.opts.TicketInterval != 600*time.Second ||
		s.opts.DailyQuota != 500 || s.opts.PushRetries != 3 || s.opts.PushRetryDelay != time.Second {
		t.Fatalf("defaults not applied: %+v", s.opts)
	}
}

func TestWireFormat(t *testing.T) {
	e := newEnv(t)
	r := e.get("/cgi-bin/user/get")
	if r.Status != 200 {
		t.Fatalf("status %d", r.Status)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json; encoding=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if bytes.HasSuffix(r.Body, []byte("\n")) || bytes.Contains(r.Body, []byte(" \"")) {
		t.Errorf("body not compact or ends in a newline: %q", r.Body)
	}
	if !regexp.MustCompile(`^\{"errcode":41001,"errmsg":"access_token missing rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}"\}$`).Match(r.Body) {
		t.Errorf("error body = %s", r.Body)
	}
	// Success bodies are compact too.
	ctok := e.componentToken()
	r = e.component("api_create_preauthcode", ctok, map[string]string{"component_appid": testComponent})
	if !regexp.MustCompile(`^\{"pre_auth_code":"preauthcode@@@[A-Za-z0-9_-]+","expires_in":600\}$`).Match(r.Body) {
		t.Errorf("success body = %s", r.Body)
	}
	// Every errmsg of docs/wechat.md, "Error codes", exactly.
	for code, msg := range map[int]string{
		-1: "system error", 40001: "invalid credential, access_token is invalid or not latest", 40014: "invalid access_token",
		42001: "access_token expired", 41001: "access_token missing", 40003: "invalid openid", 40013: "invalid appid",
		45159: "invalid tag id", 45009: "reach max api daily quota limit", 45011: "api minute-quota reach limit, must slower, retry next minute",
		48001: "api unauthorized", 61003: "component is not authorized by this account", 61004: "access clientip is not registered",
		61005: "component ticket is expired", 61006: "component ticket is invalid", 61007: "api is unauthorized to component",
		61023: "refresh_token is invalid",
	} {
		if got := Errmsg(code); got != msg {
			t.Errorf("Errmsg(%d) = %q, want %q", code, got, msg)
		}
	}
}

func TestComponentTokenChecks(t *testing.T) {
	e := newEnv(t)
	ticket, err := e.sim.PushTicket(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ok := map[string]string{"component_appid": testComponent, "component_appsecret": testSecret, "component_verify_ticket": ticket}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range ok {
			m[a] = b
		}
		if v == "-" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name string
		body any
		want int
	}{
		{"ok", ok, 0},
		{"missing appid", with("component_appid", "-"), 41002},
		{"wrong appid", with("component_appid", "wxotherz0000000000"), 40013},
		{"missing secret", with("component_appsecret", "-"), 41004},
		{"wrong secret", with("component_appsecret", "nope"), 40125},
		{"missing ticket", with("component_verify_ticket", "-"), 61006},
		{"ticket never pushed", with("component_verify_ticket", "ticket@@@made-up"), 61006},
		{"not json", "{", 47001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.mustCode(e.post("/cgi-bin/component/api_component_token", tt.body), tt.want)
		})
	}
	e.mustCode(e.get("/cgi-bin/component/api_component_token"), 43002)

	// A ticket is valid 12 h: the last second works, then 61005.
	e.clock.Advance(12*time.Hour - time.Second)
	e.mustCode(e.post("/cgi-bin/component/api_component_token", ok), 0)
	e.clock.Advance(time.Second)
	e.mustCode(e.post("/cgi-bin/component/api_component_token", ok), 61005)
	// A ticket pushed even though the push failed is valid.
	e.rcv.setAnswer(func(int) (int, string) { return 200, "fail" })
	ticket2, err := e.sim.PushTicket(context.Background())
	if !errors.Is(err, ErrPush) {
		t.Fatalf("PushTicket to a failing receiver = %v, want ErrPush", err)
	}
	e.mustCode(e.post("/cgi-bin/component/api_component_token", with("component_verify_ticket", ticket2)), 0)
}

func TestComponentTokenLifetimeAndOverlap(t *testing.T) {
	root := newEnv(t)
	call := func(e *env, tok string) int {
		return e.component("api_create_preauthcode", tok, map[string]string{"component_appid": testComponent}).errcode()
	}
	var t1 string

	journey.Step(t, "every component call checks token, appid, body and method", func(t *testing.T) {
		e := root.in(t)
		t1 = e.componentToken()
		// Both query parameter names are accepted.
		e.mustCode(e.post("/cgi-bin/component/api_create_preauthcode?access_token="+t1, map[string]string{"component_appid": testComponent}), 0)
		e.mustCode(e.post("/cgi-bin/component/api_create_preauthcode", map[string]string{"component_appid": testComponent}), 41001)
		e.mustCode(e.component("api_create_preauthcode", "bogus", map[string]string{"component_appid": testComponent}), 40001)
		e.mustCode(e.component("api_create_preauthcode", t1, map[string]string{}), 41002)
		e.mustCode(e.component("api_create_preauthcode", t1, map[string]string{"component_appid": "wxotherz0000000000"}), 40013)
		e.mustCode(e.component("api_create_preauthcode", t1, "{not json"), 47001)
		e.mustCode(e.post("/cgi-bin/component/api_create_preauthcode", "{not json"), 41001) // the token is checked first
		e.mustCode(e.get("/cgi-bin/component/api_create_preauthcode?component_access_token="+t1), 43002)
	})

	journey.Step(t, "the old token overlaps the new one for 5 minutes", func(t *testing.T) {
		e := root.in(t)
		e.clock.Advance(time.Hour)
		t2 := e.componentToken()
		steps := []struct {
			advance time.Duration
			old     int
			new     int
		}{
			{0, 0, 0},
			{5*time.Minute - time.Second, 0, 0}, // still inside the overlap
			{time.Second, 40001, 0},             // overlap over: the old token is "not latest"
			{2*time.Hour - 5*time.Minute - time.Second, 40001, 0},
			{time.Second, 40001, 42001}, // t2's 7200 s are over
		}
		for i, st := range steps {
			e.clock.Advance(st.advance)
			if got := call(e, t1); got != st.old {
				t.Errorf("step %d: old token: got errcode %d, want %d", i, got, st.old)
			}
			if got := call(e, t2); got != st.new {
				t.Errorf("step %d: new token: got errcode %d, want %d", i, got, st.new)
			}
		}
	})

	journey.Step(t, "the overlap never extends a token past its own expiry", func(t *testing.T) {
		e := root.in(t)
		t3 := e.componentToken()
		e.clock.Advance(7200*time.Second - time.Minute)
		e.componentToken()
		if got := call(e, t3); got != 0 {
			t.Fatalf("old token inside overlap and lifetime: got errcode %d, want 0", got)
		}
		e.clock.Advance(time.Minute)
		if got := call(e, t3); got != 42001 {
			t.Fatalf("old token past its own expiry: got errcode %d, want 42001", got)
		}
	})

	journey.Step(t, "expire and invalidate controls", func(t *testing.T) {
		e := root.in(t)
		t4 := e.componentToken()
		if err := e.sim.ExpireComponentToken(); err != nil {
			t.Fatal(err)
		}
		if got := call(e, t4); got != 42001 {
			t.Fatalf("expired component token: got errcode %d, want 42001", got)
		}
		t5 := e.componentToken()
		if err := e.sim.InvalidateComponentToken(); err != nil {
			t.Fatal(err)
		}
		if got := call(e, t5); got != 40001 {
			t.Fatalf("invalidated component token: got errcode %d, want 40001", got)
		}
	})
}

func TestTokenLifetimeOptions(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.TokenLifetime = 10 * time.Second; o.TokenOverlap = 2 * time.Second })
	ctok := e.componentToken()
	info := e.authorize(ctok, AccountSpec{AppID: "wxacct1z0000000000", Followers: 3})
	if info.ExpiresIn != 10 {
		t.Fatalf("expires_in = %d, want 10", info.ExpiresIn)
	}
	refresh := func() authInfo {
		r := e.component("api_authorizer_token", ctok, map[string]string{"component_appid": testComponent, "authorizer_appid": "wxacct1z0000000000", "authorizer_refresh_token": info.RefreshToken})
		e.mustCode(r, 0)
		var v authInfo
		r.decode(t, &v)
		return v
	}
	e.clock.Advance(5 * time.Second)
	second := refresh()
	if second.RefreshToken != info.RefreshToken {
		t.Fatal("api_authorizer_token changed the refresh token")
	}
	if second.AccessToken == info.AccessToken || second.ExpiresIn != 10 {
		t.Fatalf("api_authorizer_token = %+v", second)
	}
	e.clock.Advance(2*time.Second - time.Millisecond)
	if _, r := e.userGet(info.AccessToken, ""); r.errcode() != 0 {
		t.Fatalf("old authorizer token inside overlap: %s", r.Body)
	}
	e.clock.Advance(time.Millisecond)
	if _, r := e.userGet(info.AccessToken, ""); r.errcode() != 40001 {
		t.Fatalf("old authorizer token after overlap: %s", r.Body)
	}
	e.clock.Advance(8 * time.Second)
	if _, r := e.userGet(second.AccessToken, ""); r.errcode() != 42001 {
		t.Fatalf("authorizer token after lifetime: %s", r.Body)
	}
	if e.sim.CurrentAccessToken("wxacct1z0000000000") != second.AccessToken {
		t.Fatal("CurrentAccessToken is not the newest token")
	}
}

func TestAuthorizationLifecycle(t *testing.T) {
	root := newEnv(t)
	ctok := root.componentToken()
	var code, code2 string
	var info authInfo
	refreshWith := func(e *env, tok string) wxResp {
		return e.component("api_authorizer_token", ctok, map[string]string{"component_appid": testComponent, "authorizer_appid": "wxacct1z0000000000", "authorizer_refresh_token": tok})
	}

	journey.Step(t, "the admin authorizes", func(t *testing.T) {
		e := root.in(t)
		if err := e.sim.CreateAccount(AccountSpec{AppID: "wxacct1z0000000000", NickName: "Acme", Followers: 10, PermissionSets: []int{1, 2, 11}}); err != nil {
			t.Fatal(err)
		}
		pre := e.preAuthCode(ctok)
		var err error
		code, err = e.sim.Authorize(context.Background(), "wxacct1z0000000000", pre)
		if err != nil {
			t.Fatal(err)
		}
		ev := e.rcv.last(t)
		want := wxcrypt.Event{AppID: testComponent, CreateTime: e.clock.Now().Unix(), InfoType: "authorized", AuthorizerAppid: "wxacct1z0000000000",
			AuthorizationCode: code, AuthorizationCodeExpiredTime: e.clock.Now().Add(600 * time.Second).Unix(), PreAuthCode: pre}
		if ev != want {
			t.Fatalf("event:\ngot  %+v\nwant %+v", ev, want)
		}
		if !strings.HasPrefix(code, "queryauthcode@@@") {
			t.Errorf("auth code: got %q, want queryauthcode@@@…", code)
		}
		// The pre-auth code is used up.
		if _, err := e.sim.Authorize(context.Background(), "wxacct1z0000000000", pre); !errors.Is(err, ErrInvalidPreAuthCode) {
			t.Fatalf("reused pre-auth code: got %v, want ErrInvalidPreAuthCode", err)
		}
	})

	journey.Step(t, "api_query_auth exchanges a one-time code", func(t *testing.T) {
		e := root.in(t)
		var r wxResp
		info, r = e.queryAuth(ctok, code)
		e.mustCode(r, 0)
		if info.AuthorizerAppID != "wxacct1z0000000000" || info.ExpiresIn != 7200 || !strings.HasPrefix(info.RefreshToken, "refreshtoken@@@") || len(info.FuncInfo) != 3 || info.FuncInfo[2].Category.ID != 11 {
			t.Fatalf("api_query_auth: got %s, want wxacct1z0000000000, 7200 s, a refreshtoken@@@ token and sets 1, 2, 11", r.Body)
		}
		_, r = e.queryAuth(ctok, code)
		e.mustCode(r, 61009)
		_, r = e.queryAuth(ctok, "queryauthcode@@@made-up")
		e.mustCode(r, 61009)
	})

	journey.Step(t, "api_get_authorizer_info", func(t *testing.T) {
		e := root.in(t)
		r := e.component("api_get_authorizer_info", ctok, map[string]string{"component_appid": testComponent, "authorizer_appid": "wxacct1z0000000000"})
		e.mustCode(r, 0)
		var infoResp struct {
			AuthorizerInfo struct {
				NickName        string           `json:"nick_name"`
				ServiceTypeInfo struct{ ID int } `json:"service_type_info"`
				UserName        string           `json:"user_name"`
			} `json:"authorizer_info"`
			AuthorizationInfo *authInfo `json:"authorization_info"`
		}
		r.decode(t, &infoResp)
		if infoResp.AuthorizerInfo.NickName != "Acme" || infoResp.AuthorizerInfo.ServiceTypeInfo.ID != 2 || infoResp.AuthorizationInfo == nil ||
			infoResp.AuthorizationInfo.RefreshToken != info.RefreshToken || len(infoResp.AuthorizationInfo.FuncInfo) != 3 {
			t.Fatalf("api_get_authorizer_info: got %s, want Acme, service type 2, the current refresh token and 3 sets", r.Body)
		}
		e.mustCode(e.component("api_get_authorizer_info", ctok, map[string]string{"component_appid": testComponent, "authorizer_appid": "wxnobodyz000000000"}), 61003)
	})

	journey.Step(t, "re-authorization rotates the refresh token", func(t *testing.T) {
		e := root.in(t)
		var err error
		code2, err = e.sim.Authorize(context.Background(), "wxacct1z0000000000", "")
		if err != nil {
			t.Fatal(err)
		}
		if ev := e.rcv.last(t); ev.InfoType != "updateauthorized" || ev.AuthorizationCode != code2 || ev.PreAuthCode != "" {
			t.Fatalf("re-authorization event: got %+v, want updateauthorized with the new code and no PreAuthCode", ev)
		}
		e.mustCode(refreshWith(e, info.RefreshToken), 61023)
		info2, r := e.queryAuth(ctok, code2)
		e.mustCode(r, 0)
		if info2.RefreshToken == info.RefreshToken {
			t.Fatal("refresh token after re-authorization: got the old one, want a new one")
		}
		e.mustCode(refreshWith(e, info2.RefreshToken), 0)
		e.mustCode(refreshWith(e, ""), 61023)
		e.mustCode(e.component("api_authorizer_token", ctok, map[string]string{"component_appid": testComponent, "authorizer_appid": "wxnobodyz000000000", "authorizer_refresh_token": "x"}), 61003)
	})

	journey.Step(t, "auth codes expire after 600 s", func(t *testing.T) {
		e := root.in(t)
		code3, _ := e.sim.Authorize(context.Background(), "wxacct1z0000000000", "")
		e.clock.Advance(600 * time.Second)
		_, r := e.queryAuth(ctok, code3)
		e.mustCode(r, 61010)
		ctok = e.componentToken() // keep a fresh component token
	})

	journey.Step(t, "unauthorization kills the access and refresh tokens", func(t *testing.T) {
		e := root.in(t)
		access := e.sim.CurrentAccessToken("wxacct1z0000000000")
		latestRefresh := e.refreshTokenOf(ctok, "wxacct1z0000000000")
		if _, r := e.userGet(access, ""); r.errcode() != 0 {
			t.Fatalf("user/get before unauthorize: got %s, want errcode 0", r.Body)
		}
		code4, _ := e.sim.Authorize(context.Background(), "wxacct1z0000000000", "")
		latestRefresh = e.refreshTokenOf(ctok, "wxacct1z0000000000")
		if err := e.sim.Unauthorize(context.Background(), "wxacct1z0000000000"); err != nil {
			t.Fatal(err)
		}
		if ev := e.rcv.last(t); ev.InfoType != "unauthorized" || ev.AuthorizerAppid != "wxacct1z0000000000" || ev.AuthorizationCode != "" {
			t.Fatalf("unauthorized event: got %+v, want unauthorized for wxacct1z0000000000 with no code", ev)
		}
		if _, r := e.userGet(access, ""); r.errcode() != 40001 {
			t.Fatalf("user/get after unauthorize: got %s, want errcode 40001", r.Body)
		}
		e.mustCode(refreshWith(e, latestRefresh), 61023)
		_, r := e.queryAuth(ctok, code4)
		e.mustCode(r, 61009)
		r = e.component("api_get_authorizer_info", ctok, map[string]string{"component_appid": testComponent, "authorizer_appid": "wxacct1z0000000000"})
		e.mustCode(r, 0)
		if bytes.Contains(r.Body, []byte("authorization_info")) {
			t.Fatalf("api_get_authorizer_info of an unauthorized account: got %s, want no authorization_info", r.Body)
		}
		if err := e.sim.Unauthorize(context.Background(), "wxacct1z0000000000"); !errors.Is(err, ErrNotAuthorized) {
			t.Fatalf("second Unauthorize: got %v, want ErrNotAuthorized", err)
		}
	})

	journey.Step(t, "authorizing again is a first authorization", func(t *testing.T) {
		e := root.in(t)
		if _, err := e.sim.Authorize(context.Background(), "wxacct1z0000000000", ""); err != nil {
			t.Fatal(err)
		}
		if ev := e.rcv.last(t); ev.InfoType != "authorized" {
			t.Fatalf("authorization after unauthorize: got %q pushed, want authorized", ev.InfoType)
		}
		if _, err := e.sim.Authorize(context.Background(), "wxnobodyz000000000", ""); !errors.Is(err, ErrUnknownAccount) {
			t.Fatalf("Authorize(unknown): got %v, want ErrUnknownAccount", err)
		}
	})
}

// refreshTokenOf reads the account's refresh token through api_get_authorizer_list.
func (e *env) refreshTokenOf(ctok, appid string) string {
	e.t.Helper()
	r := e.component("api_get_authorizer_list", ctok, map[string]any{"component_appid": testComponent, "offset": 0, "count": 500})
	e.mustCode(r, 0)
	var v struct {
		List []struct {
			AppID        string `json:"authorizer_appid"`
			RefreshToken string `json:"refresh_token"`
		} `json:"list"`
	}
	r.decode(e.t, &v)
	for _, a := range v.List {
		if a.AppID == appid {
			return a.RefreshToken
		}
	}
	e.t.Fatalf("%s not in the authorizer list: %s", appid, r.Body)
	return ""
}

func TestPreAuthCodeExpiry(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.PreAuthCodeLifetime = 1800 * time.Second })
	ctok := e.componentToken()
	r := e.component("api_create_preauthcode", ctok, map[string]string{"component_appid": testComponent})
	if !bytes.Contains(r.Body, []byte(`"expires_in":1800`)) {
		t.Fatalf("expires_in not the configured lifetime: %s", r.Body)
	}
	var v struct {
		Code string `json:"pre_auth_code"`
	}
	r.decode(t, &v)
	_ = e.sim.CreateAccount(AccountSpec{AppID: "wxacct1z0000000000"})
	e.clock.Advance(1800 * time.Second)
	if _, err := e.sim.Authorize(context.Background(), "wxacct1z0000000000", v.Code); !errors.Is(err, ErrInvalidPreAuthCode) {
		t.Fatalf("expired pre-auth code: %v", err)
	}
}

func TestAuthorizerList(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.EventURL = "" })
	ctok := e.componentToken()
	for _, id := range []string{"wxaz00000000000000", "wxbz00000000000000", "wxcz00000000000000", "wxdz00000000000000"} {
		e.authorize(ctok, AccountSpec{AppID: id})
	}
	_ = e.sim.CreateAccount(AccountSpec{AppID: "wxneverz0000000000"})
	type list struct {
		Total int `json:"total_count"`
		List  []struct {
			AppID        string `json:"authorizer_appid"`
			RefreshToken string `json:"refresh_token"`
			AuthTime     int64  `json:"auth_time"`
		} `json:"list"`
	}
	tests := []struct {
		offset, count any
		want          []string
		code          int
	}{
		{0, 500, []string{"wxaz00000000000000", "wxbz00000000000000", "wxcz00000000000000", "wxdz00000000000000"}, 0},
		{1, 2, []string{"wxbz00000000000000", "wxcz00000000000000"}, 0},
		{"3", "10", []string{"wxdz00000000000000"}, 0}, // numeric strings are tolerated
		{4, 10, nil, 0},
		{0, 501, nil, 40097},
		{0, 0, nil, 40097},
		{-1, 10, nil, 40097},
	}
	for _, tt := range tests {
		r := e.component("api_get_authorizer_list", ctok, map[string]any{"component_appid": testComponent, "offset": tt.offset, "count": tt.count})
		e.mustCode(r, tt.code)
		if tt.code != 0 {
			continue
		}
		var l list
		r.decode(t, &l)
		var got []string
		for _, a := range l.List {
			got = append(got, a.AppID)
			if !strings.HasPrefix(a.RefreshToken, "refreshtoken@@@") || a.AuthTime != e.clock.Now().Unix() {
				t.Errorf("list entry %+v", a)
			}
		}
		if l.Total != 4 || strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("offset %v count %v: total %d list %v, want %v (%s)", tt.offset, tt.count, l.Total, got, tt.want, r.Body)
		}
		if l.List == nil {
			t.Errorf("list must be [] not null: %s", r.Body)
		}
	}
}

func TestSetPermissionSets(t *testing.T) {
	e := newEnv(t)
	ctok := e.componentToken()
	info := e.authorize(ctok, AccountSpec{AppID: "wxacct1z0000000000", Followers: 5})
	if _, r := e.userGet(info.AccessToken, ""); r.errcode() != 0 {
		t.Fatal(string(r.Body))
	}
	pushes := len(e.rcv.all())
	if err := e.sim.SetPermissionSets(context.Background(), "wxacct1z0000000000", []int{1}, false); err != nil {
		t.Fatal(err)
	}
	if len(e.rcv.all()) != pushes {
		t.Fatal("push=false pushed an event")
	}
	if _, r := e.userGet(info.AccessToken, ""); r.errcode() != 61007 {
		t.Fatalf("without set 2 or 100: %s", r.Body)
	}
	if err := e.sim.SetPermissionSets(context.Background(), "wxacct1z0000000000", []int{100}, true); err != nil {
		t.Fatal(err)
	}
	ev := e.rcv.last(t)
	if ev.InfoType != "updateauthorized" || ev.AuthorizationCode == "" {
		t.Fatalf("event %+v", ev)
	}
	info2, r := e.queryAuth(ctok, ev.AuthorizationCode)
	e.mustCode(r, 0)
	if len(info2.FuncInfo) != 1 || info2.FuncInfo[0].Category.ID != 100 {
		t.Fatalf("func_info after update: %s", r.Body)
	}
	if _, r := e.userGet(info2.AccessToken, ""); r.errcode() != 0 {
		t.Fatalf("with set 100: %s", r.Body)
	}
	if err := e.sim.SetPermissionSets(context.Background(), "wxacct1z0000000000", []int{0}, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad set id: %v", err)
	}
}

func TestRefreshCountersReportTheYoungestReplacedToken(t *testing.T) {
	e := newEnv(t)
	ctok := e.componentToken()
	info := e.authorize(ctok, AccountSpec{AppID: "wxrefreshz00000000", Followers: 1})
	refresh := func() {
		t.Helper()
		e.mustCode(e.component("api_authorizer_token", ctok, map[string]string{"component_appid": testComponent, "authorizer_appid": "wxrefreshz00000000", "authorizer_refresh_token": info.RefreshToken}), 0)
	}
	e.clock.Advance(time.Hour)
	refresh() // replaces the token api_query_auth issued an hour ago
	e.clock.Advance(3 * time.Second)
	refresh() // a racing second refresh: replaces a 3-second-old token
	got := e.sim.Counters().Refreshes["wxrefreshz00000000"]
	if got.Count != 2 || got.MinReplacedAge != 3*time.Second {
		t.Fatalf("Refreshes = %+v, want 2 refreshes, youngest replaced token 3s old", got)
	}
	e.sim.ResetCounters()
	if len(e.sim.Counters().Refreshes) != 0 {
		t.Fatal("ResetCounters kept refresh stats")
	}
}
