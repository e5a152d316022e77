package sim

import (
	"bytes"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/journey"
)

var openidRE = regexp.MustCompile(`^o[A-Za-z0-9_-]{27}$`)

func TestOpenIDs(t *testing.T) {
	seen := map[string]bool{}
	for _, i := range []int{0, 1, 2, 9999, 10000, 22999, 9_999_999, MaxFollowers} {
		id := OpenID("wxacct1z0000000000", i)
		if !openidRE.MatchString(id) {
			t.Errorf("OpenID(%d) = %q", i, id)
		}
		if seen[id] {
			t.Errorf("duplicate openid %q", id)
		}
		seen[id] = true
		if back, ok := OpenIDIndex("wxacct1z0000000000", id); !ok || back != i {
			t.Errorf("OpenIDIndex(OpenID(%d)) = %d, %v", i, back, ok)
		}
		if id != OpenID("wxacct1z0000000000", i) {
			t.Error("OpenID is not deterministic")
		}
		if _, ok := OpenIDIndex("wxacct2z0000000000", id); ok {
			t.Errorf("openid of wxacct1z0000000000 decodes for wxacct2z0000000000")
		}
	}
	// All openids of an account share the first 6 characters, like WeChat's.
	if OpenID("wxacct1z0000000000", 1)[:6] != OpenID("wxacct1z0000000000", 2)[:6] || OpenID("wxacct1z0000000000", 1)[:6] == OpenID("wxacct2z0000000000", 1)[:6] {
		t.Error("openid prefixes")
	}
	id := OpenID("wxacct1z0000000000", 5)
	bad := []string{"", "o", id[:27], id + "A", "x" + id[1:], id[:27] + flip(id[27]), strings.Repeat("o", 28)}
	for _, b := range bad {
		if _, ok := OpenIDIndex("wxacct1z0000000000", b); ok {
			t.Errorf("OpenIDIndex(%q) accepted", b)
		}
	}
}

// flip returns another base64url character differing in the low bits only,
// i.e. a non-canonical or different encoding.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// walk pages through user/get and returns every page.
func (e *env) walk(token string) []page {
	e.t.Helper()
	var pages []page
	next := ""
	for i := 0; i < 100; i++ {
		p, r := e.userGet(token, next)
		if r.errcode() != 0 {
			e.t.Fatalf("page %d: %s", i, r.Body)
		}
		pages = append(pages, p)
		if p.NextOpenID == "" || p.Count == 0 {
			return pages
		}
		next = p.NextOpenID
	}
	e.t.Fatal("paging does not end")
	return nil
}

func TestUserGetPaging(t *testing.T) {
	tests := []struct {
		followers int
		counts    []int
		nexts     []int // index of next_openid per page, -1 for ""
	}{
		{23000, []int{10000, 10000, 3000}, []int{9999, 19999, -1}}, // the getFans page's example
		{20000, []int{10000, 10000, 0}, []int{9999, 19999, -1}},    // a full last page names its last openid
		{10000, []int{10000, 0}, []int{9999, -1}},
		{1, []int{1}, []int{-1}},
		{9999, []int{9999}, []int{-1}},
	}
	e := newEnv(t, func(o *Options) { o.DailyQuota = -1 })
	ctok := e.componentToken()
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.followers), func(t *testing.T) {
			appid := fmt.Sprintf("wxpaging%010d", tt.followers)
			info := e.authorize(ctok, AccountSpec{AppID: appid, Followers: tt.followers})
			pages := e.walk(info.AccessToken)
			if len(pages) != len(tt.counts) {
				t.Fatalf("%d pages, want %d", len(pages), len(tt.counts))
			}
			idx := 0
			for i, p := range pages {
				if p.Total == nil || *p.Total != tt.followers || p.Count != tt.counts[i] {
					t.Errorf("page %d: total %v count %d, want %d/%d", i, p.Total, p.Count, tt.followers, tt.counts[i])
				}
				want := ""
				if tt.nexts[i] >= 0 {
					want = OpenID(appid, tt.nexts[i])
				}
				if p.NextOpenID != want {
					t.Errorf("page %d: next_openid %q, want %q", i, p.NextOpenID, want)
				}
				if p.Count == 0 {
					if p.Data != nil {
						t.Errorf("page %d: empty page has a data key", i)
					}
					continue
				}
				if p.Data == nil || len(p.Data.OpenID) != p.Count {
					t.Fatalf("page %d: data does not match count", i)
				}
				for _, id := range p.Data.OpenID {
					if id != OpenID(appid, idx) {
						t.Fatalf("page %d: openid %d out of order", i, idx)
					}
					idx++
				}
			}
			if idx != tt.followers {
				t.Fatalf("walked %d openids, want %d", idx, tt.followers)
			}
			// Stable order: the same page again is identical.
			_, r1 := e.userGet(info.AccessToken, OpenID(appid, 0))
			_, r2 := e.userGet(info.AccessToken, OpenID(appid, 0))
			if !bytes.Equal(r1.Body, r2.Body) {
				t.Error("the same page differs between calls")
			}
		})
	}
}

func TestUserGetExactBodies(t *testing.T) {
	e := newEnv(t)
	ctok := e.componentToken()
	empty := e.authorize(ctok, AccountSpec{AppID: "wxemptyz0000000000"})
	if _, r := e.userGet(empty.AccessToken, ""); string(r.Body) != `{"total":0,"count":0,"next_openid":""}` {
		t.Fatalf("empty account = %s", r.Body)
	}
	two := e.authorize(ctok, AccountSpec{AppID: "wxtwoz000000000000", Followers: 2})
	_, r := e.userGet(two.AccessToken, "")
	want := fmt.Sprintf(`{"total":2,"count":2,"data":{"openid":["%s","%s"]},"next_openid":""}`, OpenID("wxtwoz000000000000", 0), OpenID("wxtwoz000000000000", 1))
	if string(r.Body) != want {
		t.Fatalf("two followers = %s\nwant %s", r.Body, want)
	}
	_, r = e.userGet(two.AccessToken, OpenID("wxtwoz000000000000", 1))
	if string(r.Body) != `{"total":2,"count":0,"next_openid":""}` {
		t.Fatalf("after the last openid = %s", r.Body)
	}
	// POST works like GET for user/get.
	if r := e.post("/cgi-bin/user/get?access_token="+url.QueryEscape(two.AccessToken), nil); r.errcode() != 0 {
		t.Fatalf("POST user/get: %s", r.Body)
	}
}

func TestUserGetTotalChangesBetweenPages(t *testing.T) {
	e := newEnv(t)
	ctok := e.componentToken()
	info := e.authorize(ctok, AccountSpec{AppID: "wxgrowz00000000000", Followers: 15000})
	p1, _ := e.userGet(info.AccessToken, "")
	if err := e.sim.SetFollowers("wxgrowz00000000000", 16000); err != nil {
		t.Fatal(err)
	}
	p2, _ := e.userGet(info.AccessToken, p1.NextOpenID)
	if *p2.Total != 16000 || p2.Count != 6000 || p2.NextOpenID != "" {
		t.Fatalf("after growth: total %d count %d next %q", *p2.Total, p2.Count, p2.NextOpenID)
	}
	if err := e.sim.SetFollowers("wxgrowz00000000000", 5000); err != nil {
		t.Fatal(err)
	}
	if _, r := e.userGet(info.AccessToken, p1.NextOpenID); r.errcode() != 40003 {
		t.Fatalf("next_openid of a follower that left: %s", r.Body)
	}
}

func TestTagGetPaging(t *testing.T) {
	e := newEnv(t)
	ctok := e.componentToken()
	info := e.authorize(ctok, AccountSpec{AppID: "wxtagsz00000000000", Followers: 30000, Tags: []TagSpec{
		{ID: 134, Name: "vip", From: 5, To: 15005}, {ID: 2, From: 7, To: 9}, {ID: 3, From: 100, To: 100}}})
	tok := info.AccessToken
	type want struct {
		count int
		first int
		next  int // -1 = ""
	}
	tests := []struct {
		tag   int
		pages []want
	}{
		{134, []want{{10000, 5, 10004}, {5000, 10005, 15004}, {0, 0, -1}}},
		{2, []want{{2, 7, 8}, {0, 0, -1}}}, // like the getTagFans example: next_openid is the last openid
		{3, []want{{0, 0, -1}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.tag), func(t *testing.T) {
			next := ""
			for i, w := range tt.pages {
				p, r := e.tagGet(tok, tt.tag, next)
				if r.errcode() != 0 {
					t.Fatalf("page %d: %s", i, r.Body)
				}
				if bytes.Contains(r.Body, []byte(`"total"`)) {
					t.Errorf("page %d has a total: %.80s", i, r.Body)
				}
				if p.Count != w.count {
					t.Fatalf("page %d: count %d, want %d", i, p.Count, w.count)
				}
				wantNext := ""
				if w.next >= 0 {
					wantNext = OpenID("wxtagsz00000000000", w.next)
				}
				if p.NextOpenID != wantNext {
					t.Errorf("page %d: next_openid %q, want %q", i, p.NextOpenID, wantNext)
				}
				if w.count == 0 {
					if string(r.Body) != `{"count":0,"next_openid":""}` {
						t.Errorf("empty tag page = %s", r.Body)
					}
					break
				}
				if p.Data.OpenID[0] != OpenID("wxtagsz00000000000", w.first) || p.Data.OpenID[w.count-1] != OpenID("wxtagsz00000000000", w.first+w.count-1) {
					t.Errorf("page %d: wrong members", i)
				}
				next = p.NextOpenID
			}
		})
	}
	// tagid given as a string is tolerated, like WeChat.
	if r := e.post("/cgi-bin/user/tag/get?access_token="+url.QueryEscape(tok), `{"tagid":"2"}`); r.errcode() != 0 {
		t.Fatalf("string tagid: %s", r.Body)
	}
}

func TestUserAPIErrcodes(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.DailyQuota = -1 })
	ctok := e.componentToken()
	ok := e.authorize(ctok, AccountSpec{AppID: "wxokz0000000000000", Followers: 50, Tags: []TagSpec{{ID: 10, From: 0, To: 10}}})
	noSets := e.authorize(ctok, AccountSpec{AppID: "wxnosetsz000000000", Followers: 5, PermissionSets: []int{1, 3}})
	emptySets := e.authorize(ctok, AccountSpec{AppID: "wxemptysetsz000000", Followers: 5, PermissionSets: []int{}})
	set100 := e.authorize(ctok, AccountSpec{AppID: "wxset100z000000000", Followers: 5, PermissionSets: []int{100}})
	lacks := e.authorize(ctok, AccountSpec{AppID: "wxlacksz0000000000", Followers: 5, LacksAPI: true})
	expired := e.authorize(ctok, AccountSpec{AppID: "wxexpiredz00000000", Followers: 5})
	if err := e.sim.ExpireToken("wxexpiredz00000000"); err != nil {
		t.Fatal(err)
	}
	invalid := e.authorize(ctok, AccountSpec{AppID: "wxinvalidz00000000", Followers: 5})
	if err := e.sim.InvalidateToken("wxinvalidz00000000"); err != nil {
		t.Fatal(err)
	}
	tok := url.QueryEscape(ok.AccessToken)

	tests := []struct {
		name   string
		method string
		path   string
		body   any
		want   int
	}{
		{"user/get ok", "GET", "/cgi-bin/user/get?access_token=" + tok, nil, 0},
		{"user/get missing token", "GET", "/cgi-bin/user/get", nil, 41001},
		{"user/get unknown token", "GET", "/cgi-bin/user/get?access_token=nope", nil, 40001},
		{"user/get component token", "GET", "/cgi-bin/user/get?access_token=" + url.QueryEscape(ctok), nil, 40001},
		{"user/get expired token", "GET", "/cgi-bin/user/get?access_token=" + url.QueryEscape(expired.AccessToken), nil, 42001},
		{"user/get invalidated token", "GET", "/cgi-bin/user/get?access_token=" + url.QueryEscape(invalid.AccessToken), nil, 40001},
		{"user/get made-up next_openid", "GET", "/cgi-bin/user/get?access_token=" + tok + "&next_openid=oNotARealOpenidAtAllxxxxxxxx", nil, 40003},
		{"user/get other account's openid", "GET", "/cgi-bin/user/get?access_token=" + tok + "&next_openid=" + OpenID("wxnosetsz000000000", 1), nil, 40003},
		{"user/get openid past followers", "GET", "/cgi-bin/user/get?access_token=" + tok + "&next_openid=" + OpenID("wxokz0000000000000", 50), nil, 40003},
		{"user/get sets 1,3", "GET", "/cgi-bin/user/get?access_token=" + url.QueryEscape(noSets.AccessToken), nil, 61007},
		{"user/get no sets", "GET", "/cgi-bin/user/get?access_token=" + url.QueryEscape(emptySets.AccessToken), nil, 61007},
		{"user/get set 100", "GET", "/cgi-bin/user/get?access_token=" + url.QueryEscape(set100.AccessToken), nil, 0},
		{"user/get lacks api", "GET", "/cgi-bin/user/get?access_token=" + url.QueryEscape(lacks.AccessToken), nil, 48001},
		{"tag/get ok", "POST", "/cgi-bin/user/tag/get?access_token=" + tok, map[string]any{"tagid": 10}, 0},
		{"tag/get GET", "GET", "/cgi-bin/user/tag/get?access_token=" + tok, nil, 43002},
		{"tag/get missing token", "POST", "/cgi-bin/user/tag/get", map[string]any{"tagid": 10}, 41001},
		{"tag/get unknown tag", "POST", "/cgi-bin/user/tag/get?access_token=" + tok, map[string]any{"tagid": 11}, 45159},
		{"tag/get no tagid", "POST", "/cgi-bin/user/tag/get?access_token=" + tok, map[string]any{}, 45159},
		{"tag/get bad json", "POST", "/cgi-bin/user/tag/get?access_token=" + tok, "{", 47001},
		{"tag/get openid outside tag", "POST", "/cgi-bin/user/tag/get?access_token=" + tok, map[string]any{"tagid": 10, "next_openid": OpenID("wxokz0000000000000", 20)}, 40003},
		{"tag/get sets 1,3", "POST", "/cgi-bin/user/tag/get?access_token=" + url.QueryEscape(noSets.AccessToken), map[string]any{"tagid": 10}, 61007},
		{"tag/get lacks api", "POST", "/cgi-bin/user/tag/get?access_token=" + url.QueryEscape(lacks.AccessToken), map[string]any{"tagid": 10}, 48001},
		{"tag/get expired", "POST", "/cgi-bin/user/tag/get?access_token=" + url.QueryEscape(expired.AccessToken), map[string]any{"tagid": 10}, 42001},
		{"quota/get missing token", "POST", "/cgi-bin/openapi/quota/get", map[string]any{"cgi_path": "/cgi-bin/user/get"}, 41001},
		{"quota/get unknown path", "POST", "/cgi-bin/openapi/quota/get?access_token=" + tok, map[string]any{"cgi_path": "/cgi-bin/nope"}, 76021},
		{"unknown api", "GET", "/cgi-bin/nope?access_token=" + tok, nil, 40066},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.mustCode(e.do(tt.method, tt.path, tt.body), tt.want)
		})
	}
	// A refreshed token after an expiry works again (the gateway's recovery path).
	r := e.component("api_authorizer_token", ctok, map[string]string{"component_appid": testComponent, "authorizer_appid": "wxexpiredz00000000", "authorizer_refresh_token": expired.RefreshToken})
	e.mustCode(r, 0)
	if _, r := e.userGet(e.sim.CurrentAccessToken("wxexpiredz00000000"), ""); r.errcode() != 0 {
		t.Fatalf("refreshed token: %s", r.Body)
	}
}

func TestDailyQuota(t *testing.T) {
	root := newEnv(t, func(o *Options) { o.DailyQuota = 3 })
	// 10:00 UTC is 18:00 in Beijing; WeChat's day ends at 16:00 UTC.
	ctok := root.componentToken()
	info := root.authorize(ctok, AccountSpec{AppID: "wxquotaz0000000000", Followers: 5, Tags: []TagSpec{{ID: 1, From: 0, To: 5}}})
	big := root.authorize(ctok, AccountSpec{AppID: "wxbigz000000000000", Followers: 5, DailyQuota: -1})
	quota := func(e *env, tok, path string) string {
		r := e.post("/cgi-bin/openapi/quota/get?access_token="+url.QueryEscape(tok), map[string]string{"cgi_path": path})
		e.mustCode(r, 0)
		return string(r.Body)
	}
	var tok string

	journey.Step(t, "the quota is spent", func(t *testing.T) {
		e := root.in(t)
		const fresh = `{"errcode":0,"errmsg":"ok","quota":{"daily_limit":3,"used":0,"remain":3}}`
		if got := quota(e, info.AccessToken, "/cgi-bin/user/get"); got != fresh {
			t.Fatalf("quota/get: got %s, want %s", got, fresh)
		}
		for i := 0; i < 3; i++ {
			if _, r := e.userGet(info.AccessToken, ""); r.errcode() != 0 {
				t.Fatalf("call %d: got %s, want errcode 0", i, r.Body)
			}
		}
		if _, r := e.userGet(info.AccessToken, ""); r.errcode() != 45009 {
			t.Fatalf("4th call: got %s, want errcode 45009", r.Body)
		}
		if got := quota(e, info.AccessToken, "/cgi-bin/user/get"); !strings.Contains(got, `"daily_limit":3,"used":3,"remain":0`) {
			t.Fatalf("quota/get after exhaustion: got %s, want used 3, remain 0", got)
		}
	})

	journey.Step(t, "quotas are per API", func(t *testing.T) {
		e := root.in(t)
		if _, r := e.tagGet(info.AccessToken, 1, ""); r.errcode() != 0 {
			t.Fatalf("tag/get with user/get exhausted: got %s, want errcode 0", r.Body)
		}
	})

	journey.Step(t, "a per-account override: unlimited", func(t *testing.T) {
		e := root.in(t)
		for i := 0; i < 5; i++ {
			if _, r := e.userGet(big.AccessToken, ""); r.errcode() != 0 {
				t.Fatalf("unlimited account call %d: got %s, want errcode 0", i, r.Body)
			}
		}
		if got := quota(e, big.AccessToken, "/cgi-bin/user/get"); !strings.Contains(got, `"used":5`) {
			t.Fatalf("unlimited quota/get: got %s, want used 5", got)
		}
	})

	journey.Step(t, "spent until Beijing midnight, reset at it", func(t *testing.T) {
		e := root.in(t)
		e.clock.Advance(6*time.Hour - time.Second)
		ctok = e.componentToken()
		r := e.component("api_authorizer_token", ctok, map[string]string{"component_appid": testComponent, "authorizer_appid": "wxquotaz0000000000", "authorizer_refresh_token": info.RefreshToken})
		e.mustCode(r, 0)
		tok = e.sim.CurrentAccessToken("wxquotaz0000000000")
		if _, r := e.userGet(tok, ""); r.errcode() != 45009 {
			t.Fatalf("one second before midnight: got %s, want errcode 45009", r.Body)
		}
		e.clock.Advance(time.Second)
		if _, r := e.userGet(tok, ""); r.errcode() != 0 {
			t.Fatalf("at Beijing midnight: got %s, want errcode 0", r.Body)
		}
	})

	journey.Step(t, "ResetQuota clears the day's use", func(t *testing.T) {
		e := root.in(t)
		for i := 0; i < 2; i++ {
			e.userGet(tok, "")
		}
		if _, r := e.userGet(tok, ""); r.errcode() != 45009 {
			t.Fatalf("exhausted again: got %s, want errcode 45009", r.Body)
		}
		if err := e.sim.ResetQuota("wxquotaz0000000000"); err != nil {
			t.Fatal(err)
		}
		if _, r := e.userGet(tok, ""); r.errcode() != 0 {
			t.Fatalf("after ResetQuota: got %s, want errcode 0", r.Body)
		}
	})
}

func TestDefaultQuotaIs500(t *testing.T) {
	e := newEnv(t)
	ctok := e.componentToken()
	info := e.authorize(ctok, AccountSpec{AppID: "wxdefaultz00000000", Followers: 1})
	for i := 0; i < 500; i++ {
		if _, r := e.userGet(info.AccessToken, ""); r.errcode() != 0 {
			t.Fatalf("call %d: %s", i+1, r.Body)
		}
	}
	if _, r := e.userGet(info.AccessToken, ""); r.errcode() != 45009 {
		t.Fatalf("call 501: %s", r.Body)
	}
	c := e.sim.Counters()
	if c.ByErrcode[EndpointUserGet][0] != 500 || c.ByErrcode[EndpointUserGet][45009] != 1 || c.ByAccount[EndpointUserGet]["wxdefaultz00000000"] != 501 {
		t.Fatalf("counters: %+v", c)
	}
}
