package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/quota"
	"github.com/wxgate/wxgate/internal/sim"
)

// WeChat's daily quota, shared fairly, end to end: `wxgate serve` against
// the simulator (docs/api.md, "WeChat's daily quota").

var (
	quotaAccount = appid(0x20) // daily quota of 20 per API
	sharedAcct   = appid(0x21) // bound to two tenants
)

type quotaAPI struct {
	API        string  `json:"api"`
	CGIPath    string  `json:"cgi_path"`
	DailyLimit *int64  `json:"daily_limit"`
	Used       int64   `json:"used"`
	Remain     *int64  `json:"remain"`
	ResetsAt   string  `json:"resets_at"`
	CheckedAt  *string `json:"checked_at"`
}

// quotaOf reads GET /v1/authorizers/{appid}/quota on replica r and
// returns the entry of api.
func (st *stack) quotaOf(r *instance, key, appid, api string) quotaAPI {
	st.t.Helper()
	var out struct {
		APIs []quotaAPI `json:"apis"`
	}
	if code, raw := st.callOn(r, http.MethodGet, "/v1/authorizers/"+appid+"/quota", key, nil, &out); code != 200 {
		st.t.Fatalf("GET quota: %d %s", code, raw)
	}
	for _, q := range out.APIs {
		if q.API == api {
			return q
		}
	}
	st.t.Fatalf("GET quota: no entry for %s in %+v", api, out.APIs)
	return quotaAPI{}
}

// wantQuota checks a quota entry's limit, use and remainder.
func wantQuota(t *testing.T, q quotaAPI, limit, used, remain int64) {
	t.Helper()
	if q.DailyLimit == nil || *q.DailyLimit != limit || q.Used != used || q.Remain == nil || *q.Remain != remain {
		t.Fatalf("quota of %s: got limit %v used %d remain %v, want %d/%d/%d", q.API, deref(q.DailyLimit), q.Used, deref(q.Remain), limit, used, remain)
	}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// secondsToBeijingMidnight is the Retry-After a daily-quota refusal must carry now.
func secondsToBeijingMidnight() float64 {
	now := time.Now()
	return quota.NextReset(now).Sub(now).Seconds()
}

// wantDailyRefusal checks a local refusal: 429 rate_limited with the scope
// and a Retry-After until Beijing midnight.
func wantDailyRefusal(t *testing.T, code int, hdr http.Header, body []byte, scope string) {
	t.Helper()
	e := decodeAPIError(body)
	if code != 429 || e.Code != "rate_limited" || e.Details["scope"] != scope {
		t.Fatalf("got %d %s, want 429 rate_limited with details.scope %s", code, body, scope)
	}
	ra, err := strconv.Atoi(hdr.Get("Retry-After"))
	if want := secondsToBeijingMidnight(); err != nil || math.Abs(float64(ra)-want) > 3 {
		t.Fatalf("Retry-After %q, want about %.0f s (until midnight Beijing time)", hdr.Get("Retry-After"), want)
	}
}

func TestDailyQuotaRefusedLocallyAndCleared(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{Accounts: []sim.AccountSpec{
		{AppID: quotaAccount, Followers: 30, DailyQuota: 20, Tags: []sim.TagSpec{{ID: 134, From: 0, To: 10}}},
	}})
	r := st.Replicas[0]
	fans := "/v1/authorizers/" + quotaAccount + "/fans"
	userGets := func() int64 { return st.Sim.Counters().ByAccount[sim.EndpointUserGet][quotaAccount] }

	journey.Step(t, "the quota is learned from quota/get for every API with one", func(t *testing.T) {
		st := st.in(t)
		for _, api := range []string{"getFans", "getTagFans", "getTags"} {
			q := st.quotaOf(r, st.Key, quotaAccount, api)
			wantQuota(t, q, 20, 0, 20)
			if q.CheckedAt == nil || q.ResetsAt != quota.NextReset(time.Now()).UTC().Format(time.RFC3339) {
				t.Fatalf("%s: checked_at %v, resets_at %s, want set and the next Beijing midnight", api, q.CheckedAt, q.ResetsAt)
			}
		}
		if n := st.Sim.Counters().ByAccount[sim.EndpointQuotaGet][quotaAccount]; n != 3 {
			t.Fatalf("quota/get calls: got %d, want 3 (one per API)", n)
		}
	})

	journey.Step(t, "twenty calls go to WeChat", func(t *testing.T) {
		st := st.in(t)
		for i := range 20 {
			if code, _, body := st.get(fans, st.Key); code != 200 {
				t.Fatalf("call %d: %d %s", i+1, code, body)
			}
		}
		if n := userGets(); n != 20 {
			t.Fatalf("WeChat calls: got %d, want 20", n)
		}
		wantQuota(t, st.quotaOf(r, st.Key, quotaAccount, "getFans"), 20, 20, 0)
		// The gauges follow at the next sync: nothing left, one account low.
		eventually(t, 5*time.Second, "the quota gauges of getFans at 0 left, 1 account low", func() bool {
			m := metricsOf(t, r)
			return strings.Contains(m, "\nwxgate_wechat_quota_remaining{api=\"getFans\",component=\""+testComponentAppID+"\"} 0\n") &&
				strings.Contains(m, "\nwxgate_wechat_quota_low_accounts{api=\"getFans\",component=\""+testComponentAppID+"\"} 1\n")
		})
		if m := metricsOf(t, r); !strings.Contains(m, "\nwxgate_wechat_quota_remaining{api=\"getTags\",component=\""+testComponentAppID+"\"} 20\n") ||
			!strings.Contains(m, "\nwxgate_wechat_quota_low_accounts{api=\"getTags\",component=\""+testComponentAppID+"\"} 0\n") {
			t.Fatal("getTags, not called, should still show 20 left and no account low")
		}
	})

	journey.Step(t, "the 21st is refused locally on every surface, without calling WeChat", func(t *testing.T) {
		st := st.in(t)
		code, hdr, body := st.get(fans, st.Key)
		wantDailyRefusal(t, code, hdr, body, quota.ScopeWeChat)
		if code := st.compatErrcode(http.MethodGet, "/wx/"+quotaAccount+"/cgi-bin/user/get", ""); code != 45009 {
			t.Fatalf("compatible: errcode %d, want 45009", code)
		}
		code, body = st.call(http.MethodPost, "/v1/openapi/officialAccount.user.getList", st.Key, map[string]any{"appid": quotaAccount}, nil)
		if e := decodeAPIError(body); code != 429 || e.Details["scope"] != quota.ScopeWeChat {
			t.Fatalf("cloud name: %d %s, want 429 wechat_daily_quota", code, body)
		}
		if n := userGets(); n != 20 {
			t.Fatalf("WeChat calls: got %d, want still 20", n)
		}
		if code, _, body := st.get("/v1/authorizers/"+quotaAccount+"/tags/134/fans", st.Key); code != 200 {
			t.Fatalf("getTagFans has its own quota: %d %s", code, body)
		}
		if !strings.Contains(metricsOf(t, r), `wxgate_quota_refusals_total{api="getFans",component="`+testComponentAppID+`",scope="wechat_daily_quota"} 3`) {
			t.Fatal("the refusals are not in wxgate_quota_refusals_total")
		}
	})

	journey.Step(t, "clear_quota resets every API's use", func(t *testing.T) {
		st := st.in(t)
		var out struct {
			APIs []quotaAPI `json:"apis"`
		}
		code, raw := st.call(http.MethodPost, "/admin/authorizers/"+quotaAccount+"/quota/clear", testAdminToken, nil, &out)
		if code != 200 || len(out.APIs) != 3 {
			t.Fatalf("clear: %d %s", code, raw)
		}
		for _, q := range out.APIs {
			wantQuota(t, q, 20, 0, 20)
		}
		if code, _, body := st.get(fans, st.Key); code != 200 {
			t.Fatalf("after the clear: %d %s", code, body)
		}
		if n := userGets(); n != 21 {
			t.Fatalf("WeChat calls: got %d, want 21", n)
		}
	})

	journey.Step(t, "the eleventh clear of the month is rate_limited with WeChat's 48006", func(t *testing.T) {
		st := st.in(t)
		for i := 2; i <= sim.ClearQuotaMonthlyLimit; i++ {
			st.must(http.MethodPost, "/admin/authorizers/"+quotaAccount+"/quota/clear", testAdminToken, nil, nil, 200)
		}
		code, body := st.call(http.MethodPost, "/admin/authorizers/"+quotaAccount+"/quota/clear", testAdminToken, nil, nil)
		e := decodeAPIError(body)
		if code != 429 || e.Code != "rate_limited" || e.Details["wechat_errcode"] != float64(48006) || !strings.Contains(e.Message, "10 times a month") {
			t.Fatalf("got %d %s, want 429 rate_limited saying the month's 10 clears are used", code, body)
		}
	})
}

// metricsOf returns replica r's /metrics text.
func metricsOf(t *testing.T, r *instance) string {
	t.Helper()
	code, body := get(t, "http://"+r.Addr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	return body
}

func TestTenantDailyCapRefusesThatTenantOnly(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{Accounts: []sim.AccountSpec{{AppID: sharedAcct, Followers: 5}}})
	var other struct{ ID string }
	st.must(http.MethodPost, "/admin/tenants", testAdminToken, map[string]any{"name": "globex"}, &other, 201)
	var k struct{ Key string }
	st.must(http.MethodPost, "/admin/tenants/"+other.ID+"/keys", testAdminToken, map[string]any{"name": "g"}, &k, 201)
	st.must(http.MethodPut, "/admin/tenants/"+other.ID+"/authorizers/"+sharedAcct, testAdminToken, nil, nil, 204)
	binding := "/admin/tenants/" + st.TenantID + "/authorizers/" + sharedAcct
	fans := "/v1/authorizers/" + sharedAcct + "/fans"

	journey.Step(t, "the operator caps the tenant on the shared account", func(t *testing.T) {
		st := st.in(t)
		var b struct {
			TenantID   string `json:"tenant_id"`
			AppID      string `json:"appid"`
			DailyLimit *int64 `json:"daily_limit"`
		}
		if code, raw := st.call(http.MethodPatch, binding, testAdminToken, map[string]any{"daily_limit": 3}, &b); code != 200 || b.DailyLimit == nil || *b.DailyLimit != 3 || b.AppID != sharedAcct {
			t.Fatalf("PATCH: %d %s", code, raw)
		}
		for _, c := range []struct {
			path string
			body any
			want int
		}{
			{binding, map[string]any{"daily_limit": -1}, 400},
			{binding, map[string]any{}, 400},
			{"/admin/tenants/" + st.TenantID + "/authorizers/" + quotaAccount, map[string]any{"daily_limit": 1}, 404},
			{"/admin/tenants/nope/authorizers/" + sharedAcct, map[string]any{"daily_limit": 1}, 404},
		} {
			if code, raw := st.call(http.MethodPatch, c.path, testAdminToken, c.body, nil); code != c.want {
				t.Errorf("PATCH %s %v: %d %s, want %d", c.path, c.body, code, raw, c.want)
			}
		}
	})

	journey.Step(t, "beyond the cap that tenant alone is refused", func(t *testing.T) {
		st := st.in(t)
		for i := range 3 {
			if code, _, body := st.get(fans, st.Key); code != 200 {
				t.Fatalf("call %d: %d %s", i+1, code, body)
			}
		}
		before := st.Sim.Counters().ByAccount[sim.EndpointUserGet][sharedAcct]
		code, hdr, body := st.get(fans, st.Key)
		wantDailyRefusal(t, code, hdr, body, quota.ScopeTenant)
		if code := st.compatErrcode(http.MethodGet, "/wx/"+sharedAcct+"/cgi-bin/user/get", ""); code != 45009 {
			t.Fatalf("compatible: errcode %d, want 45009", code)
		}
		if after := st.Sim.Counters().ByAccount[sim.EndpointUserGet][sharedAcct]; after != before {
			t.Fatalf("refused calls reached WeChat: %d calls, want 0", after-before)
		}
		for i := range 5 {
			if code, _, body := st.get(fans, k.Key); code != 200 {
				t.Fatalf("the other tenant's call %d: %d %s", i+1, code, body)
			}
		}
	})

	journey.Step(t, "removing the cap lets the tenant call again", func(t *testing.T) {
		st := st.in(t)
		st.must(http.MethodPatch, binding, testAdminToken, map[string]any{"daily_limit": 0}, nil, 200)
		if code, _, body := st.get(fans, st.Key); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	})
}

func TestIdenticalCallsInFlightShareOneWeChatCall(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{Accounts: []sim.AccountSpec{{AppID: sharedAcct, Followers: 25}}, Env: func(e map[string]string) {
		e["WXGATE_TENANT_RATE_BURST"] = "1000" // the bursts are the tenant's own
	}})
	// Hold every WeChat answer long enough for the burst to overlap.
	if err := st.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointUserGet, AppID: sharedAcct, Kind: sim.FaultLatency, Latency: 700 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	burst := func(t *testing.T, n int) []string {
		var wg sync.WaitGroup
		out := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := st.base() + "/v1/authorizers/" + sharedAcct + "/fans"
				if i%2 == 1 {
					u = st.base() + "/wx/" + sharedAcct + "/cgi-bin/user/get?access_token=" + url.QueryEscape(st.Key)
				}
				req, _ := http.NewRequest(http.MethodGet, u, nil)
				req.Header.Set("Authorization", "Bearer "+st.Key)
				resp, err := st.client.Do(req)
				if err != nil {
					out[i] = err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				out[i] = fmt.Sprintf("%d %s", resp.StatusCode, b)
			}()
		}
		wg.Wait()
		return out
	}

	journey.Step(t, "100 identical getFans: one WeChat call, 100 identical answers", func(t *testing.T) {
		before := st.Sim.Counters().ByAccount[sim.EndpointUserGet][sharedAcct]
		answers := burst(t, 100)
		if n := st.Sim.Counters().ByAccount[sim.EndpointUserGet][sharedAcct] - before; n != 1 {
			t.Fatalf("WeChat calls: got %d, want 1", n)
		}
		for i, a := range answers {
			if a != answers[0] || !strings.HasPrefix(a, `200 {"total":25,"count":25,`) {
				t.Fatalf("answer %d: %.80s, want the same 200 page as answer 0 (%.80s)", i, a, answers[0])
			}
		}
	})

	journey.Step(t, "an error is shared too", func(t *testing.T) {
		if err := st.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointUserGet, AppID: sharedAcct, Kind: sim.FaultErrcode, Errcode: 40013}); err != nil {
			t.Fatal(err)
		}
		before := st.Sim.Counters().ByAccount[sim.EndpointUserGet][sharedAcct]
		answers := burst(t, 40)
		if n := st.Sim.Counters().ByAccount[sim.EndpointUserGet][sharedAcct] - before; n != 1 {
			t.Fatalf("WeChat calls: got %d, want 1", n)
		}
		for i, a := range answers {
			rest, compat := strings.HasPrefix(a, "502 ") && strings.Contains(a, `"wechat_errcode":40013`), strings.HasPrefix(a, `200 {"errcode":40013,`)
			if i%2 == 0 && !rest || i%2 == 1 && !compat {
				t.Fatalf("answer %d: %.120s, want WeChat's 40013", i, a)
			}
		}
	})

	journey.Step(t, "calls that differ are not merged", func(t *testing.T) {
		st.Sim.ClearFaults()
		before := st.Sim.Counters().ByAccount[sim.EndpointUserGet][sharedAcct]
		for i := range 3 {
			if code, _, body := st.get("/v1/authorizers/"+sharedAcct+"/fans?next_openid="+sim.OpenID(sharedAcct, i), st.Key); code != 200 {
				t.Fatalf("%d %s", code, body)
			}
		}
		if n := st.Sim.Counters().ByAccount[sim.EndpointUserGet][sharedAcct] - before; n != 3 {
			t.Fatalf("WeChat calls: got %d, want 3", n)
		}
	})
}

func TestTwoReplicasStayWithinTheOvershootBound(t *testing.T) {
	t.Parallel()
	const limit, calls = 20, 80
	st := newStack(t, stackOptions{Replicas: 2, Accounts: []sim.AccountSpec{{AppID: quotaAccount, Followers: 200, DailyQuota: limit}}})
	for _, r := range st.Replicas {
		// The key, the binding and the account reach the second replica by its pollers.
		eventually(t, 5*time.Second, "the account served on "+r.Addr, func() bool {
			code, _ := st.callOn(r, http.MethodGet, "/v1/authorizers/"+quotaAccount+"/quota", st.Key, nil, nil)
			return code == 200
		})
		wantQuota(t, st.quotaOf(r, st.Key, quotaAccount, "getFans"), limit, 0, limit)
	}
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		ok, local, other int
	)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Distinct cursors: no two calls are coalesced.
			r := st.Replicas[i%2]
			code, raw := st.callOn(r, http.MethodGet, "/v1/authorizers/"+quotaAccount+"/fans?next_openid="+sim.OpenID(quotaAccount, i), st.Key, nil, nil)
			e := decodeAPIError(raw)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case code == 200:
				ok++
			case code == 429 && e.Details["scope"] == quota.ScopeWeChat:
				local++
			default:
				other++
			}
		}()
	}
	wg.Wait()
	upstream := st.Sim.Counters().ByAccount[sim.EndpointUserGet][quotaAccount]
	bound := int64(limit + (len(st.Replicas)-1)*quota.DefaultBatch)
	t.Logf("%d calls over 2 replicas: %d answered, %d refused locally, %d WeChat's 45009; WeChat saw %d (bound %d)", calls, ok, local, other, upstream, bound)
	if ok != limit {
		t.Errorf("answered calls: got %d, want the limit %d", ok, limit)
	}
	if upstream > bound {
		t.Errorf("WeChat calls: got %d, want at most limit + (replicas-1) x batch = %d", upstream, bound)
	}
	if local+other != calls-limit || local < calls-int(bound) {
		t.Errorf("refusals: %d local, %d from WeChat, want %d in all, at least %d local", local, other, calls-limit, calls-int(bound))
	}
}

func TestTagsAndCloudCallNames(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{Accounts: proxyAccounts()})

	compat := func(t *testing.T, method, path, body string) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, st.base()+path+"?access_token="+url.QueryEscape(st.Key), strings.NewReader(body))
		resp, err := st.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}

	journey.Step(t, "getTags on REST and compatible routes is WeChat's answer", func(t *testing.T) {
		st := st.in(t)
		direct := st.simDirect(http.MethodGet, "/cgi-bin/tags/get", fansAccount, nil, nil)
		const want = `{"tags":[{"id":2,"name":"星标组","count":0},{"id":134,"name":"tag134","count":15000},{"id":7,"name":"tag7","count":10}]}`
		if string(direct) != want {
			t.Fatalf("simulator: %s", direct)
		}
		if code, _, body := st.get("/v1/authorizers/"+fansAccount+"/tags", st.Key); code != 200 || string(body) != want {
			t.Fatalf("REST: %d %s", code, body)
		}
		if body := compat(t, http.MethodGet, "/wx/"+fansAccount+"/cgi-bin/tags/get", ""); string(body) != want {
			t.Fatalf("compatible: %s", body)
		}
	})

	journey.Step(t, "the cloud-call names answer as the REST routes", func(t *testing.T) {
		st := st.in(t)
		_, _, restFans := st.get("/v1/authorizers/"+fansAccount+"/fans?next_openid="+sim.OpenID(fansAccount, 9), st.Key)
		code, body := st.call(http.MethodPost, "/v1/openapi/officialAccount.user.getList", st.Key, map[string]any{"appid": fansAccount, "next_openid": sim.OpenID(fansAccount, 9)}, nil)
		if code != 200 || !bytes.Equal(body, restFans) {
			t.Fatalf("officialAccount.user.getList: %d %.100s", code, body)
		}
		_, _, restTag := st.get("/v1/authorizers/"+fansAccount+"/tags/7/fans", st.Key)
		code, body = st.call(http.MethodPost, "/v1/openapi/officialAccount.tags.getUsers", st.Key, map[string]any{"appid": fansAccount, "tagid": 7}, nil)
		if code != 200 || !bytes.Equal(body, restTag) || !strings.Contains(string(body), `"count":10`) {
			t.Fatalf("officialAccount.tags.getUsers: %d %.100s", code, body)
		}
		_, _, restTags := st.get("/v1/authorizers/"+fansAccount+"/tags", st.Key)
		code, body = st.call(http.MethodPost, "/v1/openapi/officialAccount.tags.get", st.Key, map[string]any{"appid": fansAccount}, nil)
		if code != 200 || !bytes.Equal(body, restTags) || !strings.Contains(string(body), `"id":134`) {
			t.Fatalf("officialAccount.tags.get: %d %.100s", code, body)
		}
		for _, c := range []struct {
			name string
			body map[string]any
			want int
			code string
		}{
			{"officialAccount.user.info", map[string]any{"appid": fansAccount}, 404, "not_found"},
			{"officialAccount.user.getList", map[string]any{}, 400, "invalid_argument"},
			{"officialAccount.tags.getUsers", map[string]any{"appid": fansAccount}, 400, "invalid_argument"},
			{"officialAccount.user.getList", map[string]any{"appid": otherAccount}, 404, "not_found"},
		} {
			code, body := st.call(http.MethodPost, "/v1/openapi/"+c.name, st.Key, c.body, nil)
			if e := decodeAPIError(body); code != c.want || e.Code != c.code {
				t.Errorf("%s %v: %d %s, want %d %s", c.name, c.body, code, body, c.want, c.code)
			}
		}
	})

	journey.Step(t, "getApiQuota on the compatible path", func(t *testing.T) {
		body := compat(t, http.MethodPost, "/wx/"+fansAccount+"/cgi-bin/openapi/quota/get", `{"cgi_path":"/cgi-bin/tags/get"}`)
		if !strings.HasPrefix(string(body), `{"errcode":0,"errmsg":"ok","quota":{"daily_limit":`) {
			t.Fatalf("got %s", body)
		}
		var w struct {
			Errcode int `json:"errcode"`
		}
		if body := compat(t, http.MethodPost, "/wx/"+fansAccount+"/cgi-bin/openapi/quota/get", `{"cgi_path":"/cgi-bin/nope"}`); json.Unmarshal(body, &w) != nil || w.Errcode != 76021 {
			t.Fatalf("unknown cgi_path: %s, want WeChat's 76021", body)
		}
	})

	journey.Step(t, "the permission sets are checked before WeChat is called", func(t *testing.T) {
		st := st.in(t)
		before := st.Sim.Counters()
		code, _, body := st.get("/v1/authorizers/"+set1Account+"/tags", st.Key)
		if e := decodeAPIError(body); code != 403 || e.Code != "permission_set_missing" || fmt.Sprint(e.Details["required_any"]) != "[2 100]" {
			t.Fatalf("REST getTags: %d %s", code, body)
		}
		if code := st.compatErrcode(http.MethodGet, "/wx/"+set1Account+"/cgi-bin/tags/get", ""); code != 61007 {
			t.Fatalf("compatible getTags: errcode %d, want 61007", code)
		}
		for _, name := range []string{"officialAccount.user.getList", "officialAccount.tags.getUsers", "officialAccount.tags.get"} {
			code, body := st.call(http.MethodPost, "/v1/openapi/"+name, st.Key, map[string]any{"appid": set1Account, "tagid": 7}, nil)
			if e := decodeAPIError(body); code != 403 || e.Code != "permission_set_missing" {
				t.Fatalf("%s: %d %s", name, code, body)
			}
		}
		after := st.Sim.Counters()
		for _, ep := range []string{sim.EndpointTagsGet, sim.EndpointUserGet, sim.EndpointUserTagGet} {
			if after.ByAccount[ep][set1Account] != before.ByAccount[ep][set1Account] {
				t.Errorf("%s was called for an account without the permission set", ep)
			}
		}
		if code, _, body := st.get("/v1/authorizers/"+set100+"/tags", st.Key); code != 200 {
			t.Fatalf("set 100 alone is enough for getTags: %d %s", code, body)
		}
	})

	journey.Step(t, "getApiQuota needs some permission set, any one", func(t *testing.T) {
		st := st.in(t)
		st.addAccount(sim.AccountSpec{AppID: noSetsAccount, Followers: 5, PermissionSets: []int{}}, true)
		before := st.Sim.Counters().ByAccount[sim.EndpointQuotaGet][noSetsAccount]
		if code := st.compatErrcode(http.MethodPost, "/wx/"+noSetsAccount+"/cgi-bin/openapi/quota/get", `{"cgi_path":"/cgi-bin/user/get"}`); code != 61007 {
			t.Fatalf("no set granted: errcode %d, want 61007", code)
		}
		if n := st.Sim.Counters().ByAccount[sim.EndpointQuotaGet][noSetsAccount]; n != before {
			t.Fatalf("quota/get was called %d times for an account granting no set", n-before)
		}
		// Set 1 alone, which grants none of the follower APIs, is enough.
		if code := st.compatErrcode(http.MethodPost, "/wx/"+set1Account+"/cgi-bin/openapi/quota/get", `{"cgi_path":"/cgi-bin/user/get"}`); code != 0 {
			t.Fatalf("set 1 granted: errcode %d, want 0", code)
		}
	})
}
