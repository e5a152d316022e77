package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/wechat"
)

func appid(n int) string { return fmt.Sprintf("wx%016x", n) }

var (
	fansAccount   = appid(0xf1)  // 23000 followers, tags 134 and 7
	emptyAccount  = appid(0xe0)  // no followers
	set1Account   = appid(0x51)  // granted set 1 only
	set100        = appid(0x100) // granted set 100 only
	noSetsAccount = appid(0x5e0) // granted no permission set at all
	otherAccount  = appid(0x0a)  // authorized, bound to nobody
)

func proxyAccounts() []sim.AccountSpec {
	return []sim.AccountSpec{
		{AppID: fansAccount, Followers: 23000, PermissionSets: []int{1, 2}, Tags: []sim.TagSpec{{ID: 134, From: 0, To: 15000}, {ID: 7, From: 100, To: 110}}},
		{AppID: emptyAccount, Followers: 0, PermissionSets: []int{2}},
		{AppID: set1Account, Followers: 50, PermissionSets: []int{1}},
		{AppID: set100, Followers: 50, PermissionSets: []int{100}},
	}
}

// apiError is the error object of a /v1 or /admin answer.
type apiError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// decodeAPIError reads {"error": {...}} (zero if body is something else).
func decodeAPIError(body []byte) apiError {
	var e struct {
		Error apiError `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error
}

type fansPage struct {
	Total *int `json:"total"`
	Count int  `json:"count"`
	Data  *struct {
		OpenID []string `json:"openid"`
	} `json:"data"`
	NextOpenID string `json:"next_openid"`
}

func TestProxyPagingPermissionsAndCompatibility(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{Accounts: proxyAccounts()})
	st.addAccount(sim.AccountSpec{AppID: otherAccount, Followers: 5}, false)

	t.Run("getFans pages 10000/10000/3000 exactly as WeChat", func(t *testing.T) {
		next, seen := "", map[string]bool{}
		for i, want := range []int{10000, 10000, 3000} {
			path := "/v1/authorizers/" + fansAccount + "/fans"
			q := url.Values{}
			if next != "" {
				q.Set("next_openid", next)
				path += "?" + q.Encode()
			}
			code, hdr, body := st.get(path, st.Key)
			if code != 200 {
				t.Fatalf("page %d: %d %s", i, code, body)
			}
			if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
				t.Errorf("content type %q", hdr.Get("Content-Type"))
			}
			direct := st.simDirect(http.MethodGet, "/cgi-bin/user/get", fansAccount, q, nil)
			if !bytes.Equal(body, direct) {
				t.Fatalf("page %d differs from WeChat's answer", i)
			}
			var p fansPage
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if p.Total == nil || *p.Total != 23000 || p.Count != want || len(p.Data.OpenID) != want {
				t.Fatalf("page %d: total %v count %d", i, p.Total, p.Count)
			}
			for _, id := range p.Data.OpenID {
				if seen[id] {
					t.Fatalf("openid %s twice", id)
				}
				seen[id] = true
			}
			if i < 2 && p.NextOpenID != p.Data.OpenID[len(p.Data.OpenID)-1] {
				t.Fatalf("page %d: next_openid %q is not the last openid", i, p.NextOpenID)
			}
			next = p.NextOpenID
		}
		if next != "" {
			t.Fatalf("last page next_openid = %q, want empty", next)
		}
	})

	t.Run("the empty account passes through without a data key", func(t *testing.T) {
		code, _, body := st.get("/v1/authorizers/"+emptyAccount+"/fans", st.Key)
		if code != 200 || string(body) != `{"total":0,"count":0,"next_openid":""}` {
			t.Fatalf("%d %s", code, body)
		}
	})

	t.Run("getTagFans pages without total", func(t *testing.T) {
		code, _, body := st.get("/v1/authorizers/"+fansAccount+"/tags/134/fans", st.Key)
		var p fansPage
		_ = json.Unmarshal(body, &p)
		if code != 200 || p.Total != nil || p.Count != 10000 || p.NextOpenID == "" {
			t.Fatalf("%d total=%v count=%d", code, p.Total, p.Count)
		}
		code, _, body = st.get("/v1/authorizers/"+fansAccount+"/tags/134/fans?next_openid="+p.NextOpenID, st.Key)
		_ = json.Unmarshal(body, &p)
		if code != 200 || p.Count != 5000 {
			t.Fatalf("second tag page: %d count %d", code, p.Count)
		}
		code, _, body = st.get("/v1/authorizers/"+fansAccount+"/tags/999/fans", st.Key)
		if code != 400 || !strings.Contains(string(body), `"wechat_errcode":45159`) {
			t.Fatalf("unknown tag: %d %s", code, body)
		}
	})

	t.Run("compatible routes are byte-identical to WeChat", func(t *testing.T) {
		resp, err := http.Get(st.base() + "/wx/" + fansAccount + "/cgi-bin/user/get?access_token=" + url.QueryEscape(st.Key))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if direct := st.simDirect(http.MethodGet, "/cgi-bin/user/get", fansAccount, nil, nil); !bytes.Equal(body, direct) {
			t.Fatal("compatible getFans differs from WeChat's answer")
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json; encoding=utf-8" {
			t.Errorf("content type %q", ct)
		}
		reqBody := []byte(`{"tagid":7,"next_openid":"","unknown_field":true}`)
		resp, err = http.Post(st.base()+"/wx/"+fansAccount+"/cgi-bin/user/tag/get?access_token="+url.QueryEscape(st.Key), "application/json", bytes.NewReader(reqBody))
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if direct := st.simDirect(http.MethodPost, "/cgi-bin/user/tag/get", fansAccount, nil, []byte(`{"tagid":7,"next_openid":""}`)); !bytes.Equal(body, direct) {
			t.Fatalf("compatible getTagFans differs: %s vs %s", body, direct)
		}
	})

	t.Run("the compatible surface answers every refusal WeChat-shaped", func(t *testing.T) {
		key := url.QueryEscape(st.Key)
		for _, tc := range []struct{ method, path, want string }{
			{http.MethodGet, "/wx/" + fansAccount + "/cgi-bin/user/info?access_token=" + key, `{"errcode":40066,"errmsg":"invalid url"}`},
			{http.MethodPost, "/wx/" + fansAccount + "/cgi-bin/user/get?access_token=" + key, `{"errcode":43002,"errmsg":"require GET method"}`},
			{http.MethodGet, "/wx/" + fansAccount + "/cgi-bin/user/tag/get?access_token=" + key, `{"errcode":43002,"errmsg":"require POST method"}`},
			{http.MethodGet, "/wx/" + fansAccount + "/cgi-bin/user/get", `{"errcode":41001,"errmsg":"access_token missing"}`},
			{http.MethodGet, "/wx/" + fansAccount + "/cgi-bin/user/get?access_token=nope", `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest"}`},
			{http.MethodGet, "/wx/" + otherAccount + "/cgi-bin/user/get?access_token=" + key, `{"errcode":40013,"errmsg":"invalid appid"}`},
		} {
			req, _ := http.NewRequest(tc.method, st.base()+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != tc.want || resp.Header.Get("Content-Type") != "application/json; encoding=utf-8" {
				t.Errorf("%s %s = %d %s, want 200 %s", tc.method, tc.path, resp.StatusCode, body, tc.want)
			}
		}
		// Elsewhere a wrong method is 405.
		req, _ := http.NewRequest(http.MethodPost, st.base()+"/v1/authorizers/"+fansAccount+"/fans", nil)
		req.Header.Set("Authorization", "Bearer "+st.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST on a GET route = %d, want 405", resp.StatusCode)
		}
	})

	t.Run("permission sets are checked before WeChat is called", func(t *testing.T) {
		before := st.Sim.Counters().ByAccount["user/get"][set1Account]
		code, _, body := st.get("/v1/authorizers/"+set1Account+"/fans", st.Key)
		e := decodeAPIError(body)
		if code != 403 || e.Code != "permission_set_missing" || fmt.Sprint(e.Details["required_any"]) != "[2 100]" || fmt.Sprint(e.Details["granted"]) != "[1]" {
			t.Fatalf("set 1 only: %d %s", code, body)
		}
		resp, _ := http.Get(st.base() + "/wx/" + set1Account + "/cgi-bin/user/get?access_token=" + url.QueryEscape(st.Key))
		cb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(cb) != `{"errcode":61007,"errmsg":"api is unauthorized to component"}` {
			t.Fatalf("compatible refusal: %s", cb)
		}
		if after := st.Sim.Counters().ByAccount["user/get"][set1Account]; after != before {
			t.Fatalf("WeChat was called %d times for a locally refused account", after-before)
		}
		if code, _, body := st.get("/v1/authorizers/"+set100+"/fans", st.Key); code != 200 {
			t.Fatalf("set 100 only must be allowed: %d %s", code, body)
		}
	})

	t.Run("WeChat refusing despite a local grant re-reads the sets", func(t *testing.T) {
		if err := st.Sim.SetPermissionSets(context.Background(), set100, []int{1}, false); err != nil {
			t.Fatal(err)
		}
		code, _, body := st.get("/v1/authorizers/"+set100+"/fans", st.Key)
		if code != 403 || !strings.Contains(string(body), "permission_set_missing") || !strings.Contains(string(body), `"wechat_errcode":61007`) {
			t.Fatalf("%d %s", code, body)
		}
		calls := st.Sim.Counters().ByAccount["user/get"][set100]
		eventually(t, 5*time.Second, "re-read sets refuse locally", func() bool {
			code, _, body := st.get("/v1/authorizers/"+set100+"/fans", st.Key)
			return code == 403 && strings.Contains(string(body), `"granted":[1]`) && !strings.Contains(string(body), "wechat_errcode")
		})
		if after := st.Sim.Counters().ByAccount["user/get"][set100]; after != calls {
			t.Fatalf("WeChat called after the sets were re-read")
		}
	})

	t.Run("isolation: foreign and unknown accounts answer the same", func(t *testing.T) {
		_, _, foreign := st.get("/v1/authorizers/"+otherAccount+"/fans", st.Key)
		_, _, unknown := st.get("/v1/authorizers/"+appid(0xdead)+"/fans", st.Key)
		if string(foreign) != string(unknown) || !strings.Contains(string(foreign), `"not_found"`) {
			t.Fatalf("foreign %s vs unknown %s", foreign, unknown)
		}
		restricted := st.newKey(map[string]any{"appids": []string{emptyAccount}})
		if code, _, body := st.get("/v1/authorizers/"+fansAccount+"/fans", restricted); code != 403 || !strings.Contains(string(body), `"forbidden"`) {
			t.Fatalf("restricted key: %d %s", code, body)
		}
		if code, _, _ := st.get("/v1/authorizers/"+emptyAccount+"/fans", restricted); code != 200 {
			t.Fatalf("restricted key on its own account: %d", code)
		}
	})

	t.Run("inputs are validated before WeChat is called", func(t *testing.T) {
		before := st.Sim.Counters().Calls["user/tag/get"]
		for _, path := range []string{
			"/v1/authorizers/" + fansAccount + "/tags/0/fans",
			"/v1/authorizers/" + fansAccount + "/tags/-3/fans",
			"/v1/authorizers/" + fansAccount + "/tags/abc/fans",
			"/v1/authorizers/" + fansAccount + "/tags/1/fans?next_openid=" + url.QueryEscape("x' OR 1=1 --"),
		} {
			if code, _, body := st.get(path, st.Key); code != 400 || !strings.Contains(string(body), "invalid_argument") {
				t.Errorf("%s: %d %s", path, code, body)
			}
		}
		resp, _ := http.Post(st.base()+"/wx/"+fansAccount+"/cgi-bin/user/tag/get?access_token="+url.QueryEscape(st.Key), "application/json", strings.NewReader(`{"tagid":`))
		cb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(cb) != `{"errcode":47001,"errmsg":"data format error"}` {
			t.Errorf("malformed compatible body: %d %s", resp.StatusCode, cb)
		}
		if after := st.Sim.Counters().Calls["user/tag/get"]; after != before {
			t.Fatalf("WeChat called %d times for refused inputs", after-before)
		}
	})
}

func TestProxyMapsEveryWeChatErrcode(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{Accounts: proxyAccounts(), Env: func(e map[string]string) { e["WXGATE_UPSTREAM_TIMEOUT"] = "3s" }})
	// compat is what the compatible route answers: WeChat's errcode passed
	// through, except where the contract names its own (61003 for an
	// account that unauthorized, -1 for outages and a component without a
	// ticket). A token WeChat refuses even after the refresh is
	// upstream_error on REST, like any errcode docs/api.md does not name, but -1 on
	// the compatible surface, where 40001 would read as "bad tenant key".
	cases := []struct {
		errcode int
		status  int
		code    string
		compat  int
	}{
		{-1, 503, "upstream_unavailable", -1},
		{40001, 502, "upstream_error", -1},
		{40014, 502, "upstream_error", -1},
		{42001, 502, "upstream_error", -1},
		{41001, 502, "upstream_error", 41001},
		{40003, 400, "invalid_argument", 40003},
		{40013, 502, "upstream_error", 40013},
		{45159, 400, "invalid_argument", 45159},
		{45009, 429, "rate_limited", 45009},
		{45011, 429, "rate_limited", 45011},
		{48001, 502, "upstream_error", 48001},
		{61003, 403, "authorizer_unauthorized", 61003},
		{61004, 502, "upstream_error", 61004},
		{61005, 503, "component_not_ready", -1},
		{61006, 503, "component_not_ready", -1},
		{61007, 403, "permission_set_missing", 61007},
		{61023, 403, "authorizer_unauthorized", 61003},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.errcode), func(t *testing.T) {
			st.Sim.ClearFaults()
			if err := st.Sim.SetFault(sim.Fault{Endpoint: "user/get", AppID: emptyAccount, Probability: 1, Kind: sim.FaultErrcode, Errcode: tc.errcode}); err != nil {
				t.Fatal(err)
			}
			defer st.Sim.ClearFaults()
			before := st.Sim.Counters().ByAccount["user/get"][emptyAccount]
			code, hdr, body := st.get("/v1/authorizers/"+emptyAccount+"/fans", st.Key)
			e := decodeAPIError(body)
			msg, _ := e.Details["wechat_errmsg"].(string)
			if code != tc.status || e.Code != tc.code || e.Details["wechat_errcode"] != float64(tc.errcode) ||
				!strings.HasPrefix(msg, sim.Errmsg(tc.errcode)) {
				t.Fatalf("REST: %d %s, want %d %s with wechat_errcode and wechat_errmsg", code, body, tc.status, tc.code)
			}
			if tc.code == "permission_set_missing" && (e.Details["required_any"] == nil || e.Details["granted"] == nil) {
				t.Errorf("permission_set_missing without required_any and granted: %s", body)
			}
			if tc.code == "rate_limited" && hdr.Get("Retry-After") == "" {
				t.Error("rate_limited without Retry-After")
			}
			calls := st.Sim.Counters().ByAccount["user/get"][emptyAccount] - before
			maxCalls := int64(1)
			switch tc.errcode {
			case -1:
				maxCalls = wechat.DefaultMaxAttempts // bounded retries
			case 40001, 40014, 42001:
				maxCalls = 2 // one retry after compare-and-refresh
			}
			if calls < 1 || calls > maxCalls {
				t.Errorf("WeChat called %d times, want 1..%d", calls, maxCalls)
			}
			resp, err := http.Get(st.base() + "/wx/" + emptyAccount + "/cgi-bin/user/get?access_token=" + url.QueryEscape(st.Key))
			if err != nil {
				t.Fatal(err)
			}
			cb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var w struct {
				Errcode int    `json:"errcode"`
				Errmsg  string `json:"errmsg"`
			}
			if resp.StatusCode != 200 || json.Unmarshal(cb, &w) != nil || w.Errcode != tc.compat || w.Errmsg == "" ||
				tc.compat == tc.errcode && !strings.HasPrefix(w.Errmsg, sim.Errmsg(tc.errcode)) {
				t.Fatalf("compatible: %d %s, want errcode %d", resp.StatusCode, cb, tc.compat)
			}
		})
		// A permission refusal re-reads the sets; restore the grant for the next case.
		if tc.errcode == 48001 || tc.errcode == 61007 {
			eventually(t, 5*time.Second, "sets restored", func() bool {
				code, _, _ := st.get("/v1/authorizers/"+emptyAccount+"/fans", st.Key)
				return code == 200
			})
		}
	}

	t.Run("a token WeChat keeps refusing does not cause a refresh per request", func(t *testing.T) {
		st.Sim.ClearFaults()
		_ = st.Sim.SetFault(sim.Fault{Endpoint: "user/get", AppID: emptyAccount, Probability: 1, Kind: sim.FaultErrcode, Errcode: 40001})
		defer st.Sim.ClearFaults()
		before := st.Sim.Counters().ByAccount[sim.EndpointAuthorizerToken][emptyAccount]
		for range 10 {
			if code, _, body := st.get("/v1/authorizers/"+emptyAccount+"/fans", st.Key); code != 502 {
				t.Fatalf("%d %s", code, body)
			}
		}
		if n := st.Sim.Counters().ByAccount[sim.EndpointAuthorizerToken][emptyAccount] - before; n > 1 {
			t.Fatalf("10 requests refused with 40001 caused %d refreshes, want at most 1", n)
		}
	})

	t.Run("the total deadline is honoured", func(t *testing.T) {
		st.Sim.ClearFaults()
		_ = st.Sim.SetFault(sim.Fault{Endpoint: "user/get", AppID: emptyAccount, Probability: 1, Kind: sim.FaultLatency, Latency: 10 * time.Second})
		defer st.Sim.ClearFaults()
		start := time.Now()
		code, _, body := st.get("/v1/authorizers/"+emptyAccount+"/fans", st.Key)
		if took := time.Since(start); code != 504 || took > 6*time.Second {
			t.Fatalf("%d %s after %s, want 504 within the 3 s budget", code, body, took)
		}
	})
}

// followerAt is the simulator's i-th follower of an account, the order user/get pages in.
func followerAt(appid string) func() (string, bool) {
	i := 0
	return func() (string, bool) {
		if i >= 1_000_000 {
			return "", false
		}
		i++
		return sim.OpenID(appid, i-1), true
	}
}

func TestExportMillionFollowers(t *testing.T) {
	t.Parallel()
	big := appid(0xb16)
	st := newStack(t, stackOptions{Accounts: []sim.AccountSpec{{AppID: big, Followers: 1_000_000, PermissionSets: []int{2}}}})

	t.Run("every openid exactly once, in order, with a resume after a failure", func(t *testing.T) {
		want := followerAt(big)
		req, _ := http.NewRequest(http.MethodGet, st.base()+"/v1/authorizers/"+big+"/fans/export", nil)
		req.Header.Set("Authorization", "Bearer "+st.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		n, resumeFrom := 0, ""
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var line struct {
				OpenID     string          `json:"openid"`
				Error      json.RawMessage `json:"error"`
				NextOpenID string          `json:"next_openid"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("line %d: %v: %s", n, err, sc.Bytes())
			}
			if line.Error != nil {
				resumeFrom = line.NextOpenID
				if !strings.Contains(string(line.Error), "upstream_unavailable") {
					t.Fatalf("error line %s", sc.Bytes())
				}
				break
			}
			w, _ := want()
			if line.OpenID != w {
				t.Fatalf("line %d: %s, want %s", n, line.OpenID, w)
			}
			n++
			// Inject a failure once some pages went through.
			if n == 250_000 {
				_ = st.Sim.SetFault(sim.Fault{Endpoint: "user/get", AppID: big, Probability: 1, Kind: sim.FaultErrcode, Errcode: -1})
			}
		}
		resp.Body.Close()
		st.Sim.ClearFaults()
		if resumeFrom == "" || n < 250_000 || n >= 1_000_000 {
			t.Fatalf("stream ended after %d openids without a resumable error (resume %q)", n, resumeFrom)
		}
		// Resume from the cursor, as CSV this time.
		req, _ = http.NewRequest(http.MethodGet, st.base()+"/v1/authorizers/"+big+"/fans/export?format=csv&next_openid="+resumeFrom, nil)
		req.Header.Set("Authorization", "Bearer "+st.Key)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
			t.Fatalf("csv content type %q", resp.Header.Get("Content-Type"))
		}
		sc = bufio.NewScanner(resp.Body)
		if !sc.Scan() || sc.Text() != "openid" {
			t.Fatalf("csv header %q", sc.Text())
		}
		for sc.Scan() {
			w, ok := want()
			if !ok || sc.Text() != w {
				t.Fatalf("resumed line %d: %q, want %q", n, sc.Text(), w)
			}
			n++
		}
		if _, more := want(); more || n != 1_000_000 {
			t.Fatalf("exported %d openids, want 1000000 (more expected: %v)", n, more)
		}
	})

	t.Run("a client that goes away stops the walk", func(t *testing.T) {
		_ = st.Sim.SetFault(sim.Fault{Endpoint: "user/get", AppID: big, Probability: 1, Kind: sim.FaultLatency, Latency: 100 * time.Millisecond})
		defer st.Sim.ClearFaults()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, st.base()+"/v1/authorizers/"+big+"/fans/export", nil)
		req.Header.Set("Authorization", "Bearer "+st.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadFull(resp.Body, make([]byte, 1000))
		cancel()
		resp.Body.Close()
		time.Sleep(500 * time.Millisecond)
		calls := st.Sim.Counters().ByAccount["user/get"][big]
		time.Sleep(time.Second)
		if after := st.Sim.Counters().ByAccount["user/get"][big]; after > calls+1 {
			t.Fatalf("the walk went on after the client left: %d more pages", after-calls)
		}
	})
}
