package sim

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/journey"
)

func TestTagsGet(t *testing.T) {
	root := newEnv(t, func(o *Options) { o.DailyQuota = 2 })
	ctok := root.componentToken()
	info := root.authorize(ctok, AccountSpec{AppID: "wxtags000000000000", Followers: 50, Tags: []TagSpec{{ID: 134, Name: "vip", From: 10, To: 13}, {ID: 7, From: 0, To: 50}}})
	bare := root.authorize(ctok, AccountSpec{AppID: "wxbare000000000000", Followers: 5, PermissionSets: []int{1}})

	journey.Step(t, "the reserved tag first, then the account's with member counts", func(t *testing.T) {
		e := root.in(t)
		r := e.get("/cgi-bin/tags/get?access_token=" + url.QueryEscape(info.AccessToken))
		const want = `{"tags":[{"id":2,"name":"星标组","count":0},{"id":134,"name":"vip","count":3},{"id":7,"name":"tag7","count":50}]}`
		if string(r.Body) != want {
			t.Fatalf("got %s, want %s", r.Body, want)
		}
	})
	journey.Step(t, "the permission set is checked", func(t *testing.T) {
		e := root.in(t)
		if r := e.get("/cgi-bin/tags/get?access_token=" + url.QueryEscape(bare.AccessToken)); r.errcode() != 61007 {
			t.Fatalf("got %s, want errcode 61007", r.Body)
		}
	})
	journey.Step(t, "tags/get has its own daily quota, known to quota/get", func(t *testing.T) {
		e := root.in(t)
		e.get("/cgi-bin/tags/get?access_token=" + url.QueryEscape(info.AccessToken))
		if r := e.get("/cgi-bin/tags/get?access_token=" + url.QueryEscape(info.AccessToken)); r.errcode() != 45009 {
			t.Fatalf("third call: got %s, want errcode 45009", r.Body)
		}
		r := e.post("/cgi-bin/openapi/quota/get?access_token="+url.QueryEscape(info.AccessToken), map[string]string{"cgi_path": "/cgi-bin/tags/get"})
		if want := `"quota":{"daily_limit":2,"used":2,"remain":0}`; !strings.Contains(string(r.Body), want) {
			t.Fatalf("quota/get: got %s, want %s", r.Body, want)
		}
		if _, r := e.userGet(info.AccessToken, ""); r.errcode() != 0 {
			t.Fatalf("user/get with tags/get spent: got %s, want errcode 0", r.Body)
		}
	})
}

func TestClearQuotaMonthlyLimit(t *testing.T) {
	root := newEnv(t, func(o *Options) { o.DailyQuota = 1; o.TokenLifetime = 90 * 24 * time.Hour })
	ctok := root.componentToken()
	info := root.authorize(ctok, AccountSpec{AppID: "wxclear00000000000", Followers: 5})
	other := root.authorize(ctok, AccountSpec{AppID: "wxother00000000000", Followers: 5})
	clearQuota := func(e *env, tok, appid string) wxResp {
		return e.post("/cgi-bin/clear_quota?access_token="+url.QueryEscape(tok), map[string]string{"appid": appid})
	}

	journey.Step(t, "another account's appid is refused", func(t *testing.T) {
		e := root.in(t)
		if r := clearQuota(e, other.AccessToken, "wxclear00000000000"); r.errcode() != 40013 {
			t.Fatalf("got %s, want errcode 40013", r.Body)
		}
	})
	journey.Step(t, "ten clears a month reset the quota, the eleventh is 48006", func(t *testing.T) {
		e := root.in(t)
		for i := 1; i <= ClearQuotaMonthlyLimit; i++ {
			e.userGet(info.AccessToken, "")
			if _, r := e.userGet(info.AccessToken, ""); r.errcode() != 45009 {
				t.Fatalf("round %d: got %s, want the quota spent (45009)", i, r.Body)
			}
			if r := clearQuota(e, info.AccessToken, "wxclear00000000000"); string(r.Body) != `{"errcode":0,"errmsg":"ok"}` {
				t.Fatalf("clear %d: got %s", i, r.Body)
			}
			if _, r := e.userGet(info.AccessToken, ""); r.errcode() != 0 {
				t.Fatalf("after clear %d: got %s, want errcode 0", i, r.Body)
			}
		}
		r := clearQuota(e, info.AccessToken, "wxclear00000000000")
		if r.errcode() != 48006 || !strings.HasPrefix(string(r.Body), `{"errcode":48006,"errmsg":"api forbidden for irregularities, view detail on mp.weixin.qq.com rid: `) {
			t.Fatalf("eleventh clear: got %s, want errcode 48006", r.Body)
		}
		if got, _ := e.sim.Account("wxclear00000000000"); got.ClearsUsed != ClearQuotaMonthlyLimit {
			t.Fatalf("clears used: got %d, want %d", got.ClearsUsed, ClearQuotaMonthlyLimit)
		}
	})
	journey.Step(t, "a new Beijing month allows clears again", func(t *testing.T) {
		e := root.in(t)
		// The clock starts on 1 March 18:00 Beijing; 1 April 00:00 Beijing is 31 days minus 18 h later.
		e.clock.Advance(31*24*time.Hour - 18*time.Hour - time.Second)
		if r := clearQuota(e, info.AccessToken, "wxclear00000000000"); r.errcode() != 48006 {
			t.Fatalf("a second before April in Beijing: got %s, want errcode 48006", r.Body)
		}
		e.clock.Advance(time.Second)
		if r := clearQuota(e, info.AccessToken, "wxclear00000000000"); r.errcode() != 0 {
			t.Fatalf("in April: got %s, want errcode 0", r.Body)
		}
	})
}
