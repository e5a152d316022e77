package app_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/sim"
)

// getRaw fetches a gateway path with the tenant key and returns status,
// headers and the whole body.
func (st *stack) getRaw(path string) (int, http.Header, string) {
	st.t.Helper()
	code, hdr, body := st.get(path, st.Key)
	return code, hdr, string(body)
}

// compat calls a compatible route and returns WeChat's errcode (0 on success).
func (st *stack) compatErrcode(method, path, body string) int {
	st.t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(method, st.base()+path+sep+"access_token="+url.QueryEscape(st.Key), strings.NewReader(body))
	resp, err := st.client.Do(req)
	if err != nil {
		st.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var w struct {
		Errcode int `json:"errcode"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(raw, &w) != nil {
		st.t.Fatalf("compatible %s: %d %s", path, resp.StatusCode, raw)
	}
	return w.Errcode
}

// TestExportsRefusalsAndUsage covers the tag export, export failures on the
// first page (both formats), accounts that unauthorized the platform, and
// that usage counts every outcome, refusals included.
func TestExportsRefusalsAndUsage(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{Accounts: proxyAccounts()})
	st.addAccount(sim.AccountSpec{AppID: otherAccount, Followers: 5, PermissionSets: []int{2}}, false)

	t.Run("tenant calls cost no database query in the steady state", func(t *testing.T) {
		requestQueries := func() float64 {
			// The admin calls of the set-up made some, so the counter exists.
			n, err := metricAt(st.client, st.Replicas[0].Addr, `wxgate_store_queries_total{origin="request"}`)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		calls := func() {
			for _, path := range []string{"", "/fans", "/tags/7/fans", "/fans/export", "/tags/7/fans/export?format=csv"} {
				if code, _, body := st.getRaw("/v1/authorizers/" + fansAccount + path); code != 200 {
					t.Fatalf("%s: %d %s", path, code, body)
				}
			}
			if code, _, body := st.getRaw("/v1/authorizers"); code != 200 || strings.Count(body, `"appid"`) != 4 {
				t.Fatalf("list: %d %s", code, body)
			}
			if code, _, body := st.getRaw("/v1/authorizers/" + otherAccount); code != 404 {
				t.Fatalf("an account bound to nobody: %d %s", code, body)
			}
			if code := st.compatErrcode(http.MethodGet, "/wx/"+set100+"/cgi-bin/user/get", ""); code != 0 {
				t.Fatalf("compatible getFans: %d", code)
			}
			if code := st.compatErrcode(http.MethodPost, "/wx/"+fansAccount+"/cgi-bin/user/tag/get", `{"tagid":7}`); code != 0 {
				t.Fatalf("compatible getTagFans: %d", code)
			}
		}
		calls() // warm up
		before := requestQueries()
		for range 5 {
			calls()
		}
		if after := requestQueries(); after != before {
			t.Fatalf("45 tenant calls queried the store: %v -> %v", before, after)
		}
	})

	t.Run("the gateway's own time is measured apart from WeChat's", func(t *testing.T) {
		count := func(name string) float64 {
			n, err := metricAt(st.client, st.Replicas[0].Addr, name)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		// WeChat takes 100 ms a call: the requests take longer than that,
		// the gateway's own time is what is left.
		if err := st.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointUserGet, AppID: fansAccount, Probability: 1, Kind: sim.FaultLatency, Latency: 100 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		defer st.Sim.ClearFaults()
		const route = `wxgate_http_request_duration_seconds_sum{route="/v1/authorizers/:appid/fans"}`
		n0, own0, all0 := count("wxgate_gateway_overhead_seconds_count"), count("wxgate_gateway_overhead_seconds_sum"), count(route)
		for range 5 {
			if code, _, body := st.getRaw("/v1/authorizers/" + fansAccount + "/fans"); code != 200 {
				t.Fatalf("getFans: %d %s", code, body)
			}
		}
		n, own, all := count("wxgate_gateway_overhead_seconds_count")-n0, count("wxgate_gateway_overhead_seconds_sum")-own0, count(route)-all0
		if n != 5 || all < 0.5 || own <= 0 || own >= all-0.5 {
			t.Fatalf("5 calls of 100 ms at WeChat: %v observations, own time %.4f s of %.4f s; want 5, and WeChat's 0.5 s taken out", n, own, all)
		}
	})

	t.Run("the tag export streams every member once, in order", func(t *testing.T) {
		before := st.Sim.Counters().ByAccount[sim.EndpointUserTagGet][fansAccount]
		code, _, body := st.getRaw("/v1/authorizers/" + fansAccount + "/tags/134/fans/export?format=csv")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		if lines[0] != "openid" || len(lines) != 15000+1 {
			t.Fatalf("header %q and %d lines, want openid and 15000 members", lines[0], len(lines)-1)
		}
		for i, got := range lines[1:] {
			if want := sim.OpenID(fansAccount, i); got != want {
				t.Fatalf("line %d: %s, want %s", i, got, want)
			}
		}
		// Two full pages, then the empty page that ends tag paging.
		if n := st.Sim.Counters().ByAccount[sim.EndpointUserTagGet][fansAccount] - before; n != 3 {
			t.Fatalf("user/tag/get called %d times, want 3", n)
		}
		// A small tag in NDJSON, resumed from inside it.
		code, _, body = st.getRaw("/v1/authorizers/" + fansAccount + "/tags/7/fans/export?next_openid=" + sim.OpenID(fansAccount, 104))
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
			var line struct{ OpenID string }
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			got = append(got, line.OpenID)
		}
		if code != 200 || len(got) != 5 || got[0] != sim.OpenID(fansAccount, 105) || got[4] != sim.OpenID(fansAccount, 109) {
			t.Fatalf("resumed tag export: %d %v", code, got)
		}
	})

	t.Run("the fans export streams every follower once, in both formats", func(t *testing.T) {
		// 23000 is not a multiple of the 10000-openid page: the last page
		// (3000 openids, empty next_openid) must be streamed too.
		for _, format := range []string{"ndjson", "csv"} {
			code, _, body := st.getRaw("/v1/authorizers/" + fansAccount + "/fans/export?format=" + format)
			if code != 200 {
				t.Fatalf("%s: %d %.200s", format, code, body)
			}
			lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
			if format == "csv" {
				if lines[0] != "openid" {
					t.Fatalf("csv header %q", lines[0])
				}
				lines = lines[1:]
			}
			if len(lines) != 23000 {
				t.Fatalf("%s: %d lines, want 23000 followers", format, len(lines))
			}
			seen := make(map[string]bool, len(lines))
			for i, l := range lines {
				got := l
				if format == "ndjson" {
					var line struct{ OpenID string }
					if err := json.Unmarshal([]byte(l), &line); err != nil {
						t.Fatalf("%s line %d %q: %v", format, i, l, err)
					}
					got = line.OpenID
				}
				if want := sim.OpenID(fansAccount, i); got != want || seen[got] {
					t.Fatalf("%s line %d: %s, want %s once (first %s, last %s)", format, i, got, want, sim.OpenID(fansAccount, 0), sim.OpenID(fansAccount, 22999))
				}
				seen[got] = true
			}
		}
	})

	t.Run("a failure of the first page ends a 200 stream with the error line", func(t *testing.T) {
		defer st.Sim.ClearFaults()
		if err := st.Sim.SetFault(sim.Fault{Endpoint: "user/tag/get", AppID: fansAccount, Probability: 1, Kind: sim.FaultErrcode, Errcode: -1}); err != nil {
			t.Fatal(err)
		}
		code, _, body := st.getRaw("/v1/authorizers/" + fansAccount + "/tags/134/fans/export?format=csv")
		if code != 200 || body != "openid\n#error code=upstream_unavailable wechat_errcode=-1 resumable=true next_openid= message=WeChat is busy\n" {
			t.Fatalf("csv: %d %q", code, body)
		}
		// A CSV reader takes the whole stream: the error is one field.
		if rows, err := csv.NewReader(strings.NewReader(body)).ReadAll(); err != nil || len(rows) != 2 {
			t.Fatalf("csv reader: %v rows, %v", len(rows), err)
		}
		st.Sim.ClearFaults()
		if err := st.Sim.SetFault(sim.Fault{Endpoint: "user/get", AppID: fansAccount, Probability: 1, Kind: sim.FaultErrcode, Errcode: 45009}); err != nil {
			t.Fatal(err)
		}
		cursor := sim.OpenID(fansAccount, 9999)
		code, hdr, body := st.getRaw("/v1/authorizers/" + fansAccount + "/fans/export?next_openid=" + cursor)
		var line struct {
			Error struct {
				Code    string         `json:"code"`
				Details map[string]any `json:"details"`
			} `json:"error"`
			NextOpenID string `json:"next_openid"`
			Resumable  bool   `json:"resumable"`
			RetryAfter int    `json:"retry_after_seconds"`
		}
		if err := json.Unmarshal([]byte(body), &line); err != nil || code != 200 || strings.Count(body, "\n") != 1 {
			t.Fatalf("ndjson: %d %q (%v)", code, body, err)
		}
		if line.Error.Code != "rate_limited" || line.Error.Details["wechat_errcode"] != float64(45009) ||
			line.NextOpenID != cursor || hdr.Get("Retry-After") == "" || !line.Resumable || line.RetryAfter < 1 {
			t.Fatalf("ndjson error line %q, Retry-After %q", body, hdr.Get("Retry-After"))
		}
	})

	t.Run("a permanent failure says resuming cannot help", func(t *testing.T) {
		defer st.Sim.ClearFaults()
		if err := st.Sim.SetFault(sim.Fault{Endpoint: "user/get", AppID: fansAccount, Probability: 1, Kind: sim.FaultErrcode, Errcode: 40003}); err != nil {
			t.Fatal(err)
		}
		for _, format := range []string{"ndjson", "csv"} {
			code, _, body := st.getRaw("/v1/authorizers/" + fansAccount + "/fans/export?format=" + format)
			if code != 200 || !strings.Contains(body, "40003") || !strings.Contains(body, map[string]string{"ndjson": `"resumable":false`, "csv": "resumable=false"}[format]) {
				t.Errorf("%s: %d %q, want the error line with errcode 40003 and resumable false", format, code, body)
			}
		}
	})

	t.Run("an account that unauthorized the platform is refused without calling WeChat", func(t *testing.T) {
		if err := st.Sim.Unauthorize(context.Background(), emptyAccount); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "unauthorized event applied", func() bool {
			code, _, body := st.getRaw("/v1/authorizers/" + emptyAccount + "/fans")
			return code == 403 && strings.Contains(body, `"authorizer_unauthorized"`)
		})
		before := st.Sim.Counters().ByAccount[sim.EndpointUserGet][emptyAccount]
		for _, path := range []string{"/fans", "/fans/export", "/tags/7/fans"} {
			code, _, body := st.getRaw("/v1/authorizers/" + emptyAccount + path)
			if code != 403 || !strings.Contains(body, `"authorizer_unauthorized"`) {
				t.Errorf("%s: %d %s", path, code, body)
			}
		}
		if code := st.compatErrcode(http.MethodGet, "/wx/"+emptyAccount+"/cgi-bin/user/get", ""); code != 61003 {
			t.Errorf("compatible getFans: errcode %d, want 61003", code)
		}
		if code := st.compatErrcode(http.MethodPost, "/wx/"+emptyAccount+"/cgi-bin/user/tag/get", `{"tagid":7}`); code != 61003 {
			t.Errorf("compatible getTagFans: errcode %d, want 61003", code)
		}
		c := st.Sim.Counters()
		if after := c.ByAccount[sim.EndpointUserGet][emptyAccount]; after != before || c.ByAccount[sim.EndpointUserTagGet][emptyAccount] != 0 {
			t.Fatalf("WeChat was called for an unauthorized account")
		}
	})

	t.Run("query parameters a route does not take are refused, naming the accepted ones", func(t *testing.T) {
		before := st.Sim.Counters().ByAccount[sim.EndpointUserGet][fansAccount]
		for _, tc := range []struct{ path, want string }{
			{"/v1/authorizers/" + fansAccount + "/fans?nextopenid=o1", `this route accepts: next_openid`},
			{"/v1/authorizers/" + fansAccount + "/fans?next_openid=a&next_openid=b", `is given 2 times`},
			{"/v1/authorizers/" + fansAccount + "/fans/export?format=csv&limit=5", `this route accepts: next_openid, format`},
			{"/v1/authorizers/" + fansAccount + "/tags/7/fans?tag=7", `this route accepts: next_openid`},
			{"/v1/authorizers?page=2", `this route takes no query parameters`},
			{"/v1/authorizers/" + fansAccount + "?verbose=1", `this route takes no query parameters`},
			{"/v1/authorizers/" + fansAccount + "/tags/99999999999999999999/fans", `out of range`},
		} {
			code, _, body := st.getRaw(tc.path)
			if code != 400 || !strings.Contains(body, `"invalid_argument"`) || !strings.Contains(body, tc.want) {
				t.Errorf("%s: %d %s, want 400 invalid_argument saying %q", tc.path, code, body, tc.want)
			}
		}
		if after := st.Sim.Counters().ByAccount[sim.EndpointUserGet][fansAccount]; after != before {
			t.Errorf("WeChat was called %d times for refused requests", after-before)
		}
	})

	t.Run("usage counts every outcome, refusals included", func(t *testing.T) {
		restricted := st.newKey(map[string]any{"appids": []string{set100}})
		calls := []struct {
			path, key string
			status    int
		}{
			{"/v1/authorizers/" + set100 + "/fans", st.Key, 200},
			{"/v1/authorizers/" + otherAccount + "/fans", st.Key, 404},    // bound to nobody
			{"/v1/authorizers/wx0000000000000404/fans", st.Key, 404},      // unknown
			{"/v1/authorizers/" + fansAccount + "/fans", restricted, 403}, // forbidden
			{"/v1/authorizers/" + set1Account + "/fans", st.Key, 403},     // permission_set_missing
			{"/v1/authorizers/wxacct1/fans", st.Key, 400},                 // malformed: invalid_argument naming the rule
		}
		for _, c := range calls {
			if code, _, body := st.get(c.path, c.key); code != c.status {
				t.Fatalf("%s: %d %s, want %d", c.path, code, body, c.status)
			}
		}
		if code := st.compatErrcode(http.MethodGet, "/wx/wxacct1/cgi-bin/user/get", ""); code != 40013 {
			t.Fatalf("compatible, malformed appid: errcode %d, want 40013", code)
		}
		// The tenant's rate limit: a bucket of one, refilled once an hour.
		st.must(http.MethodPatch, "/admin/tenants/"+st.TenantID, testAdminToken, map[string]any{"rate_limit": 0.0003, "rate_burst": 1}, nil, 200)
		eventually(t, 5*time.Second, "rate limit applied", func() bool {
			code, _, _ := st.get("/v1/authorizers/"+set100+"/fans", st.Key)
			return code == 429
		})
		if code := st.compatErrcode(http.MethodGet, "/wx/"+set100+"/cgi-bin/user/get", ""); code != 45011 {
			t.Fatalf("compatible rate limit: errcode %d", code)
		}

		var u struct {
			Usage []struct {
				AppID, API, Outcome string
				Count               int64
			}
		}
		st.must(http.MethodGet, "/admin/tenants/"+st.TenantID+"/usage", testAdminToken, nil, &u, 200)
		got := map[string]int64{}
		for _, r := range u.Usage {
			got[r.AppID+" "+r.API+" "+r.Outcome] += r.Count
		}
		for _, want := range []string{
			set100 + " getFans ok",
			" getFans not_found", // foreign and unknown appids are counted without the appid
			fansAccount + " getFans forbidden",
			set1Account + " getFans permission_set_missing",
			emptyAccount + " getFans authorizer_unauthorized",
			fansAccount + " getTagFans upstream_unavailable",
			fansAccount + " getFans rate_limited",
			set100 + " getFans rate_limited",
		} {
			if got[want] == 0 {
				t.Errorf("usage has no %q row; rows: %v", want, got)
			}
		}
		if got[" getFans not_found"] != 2 {
			t.Errorf("not_found counted %d times, want 2", got[" getFans not_found"])
		}
		for k := range got {
			if strings.HasPrefix(k, otherAccount) || strings.HasPrefix(k, "wx0000000000000404") {
				t.Errorf("usage names an account the tenant is not bound to: %q", k)
			}
		}
		// The metrics count the same outcomes per tenant.
		_, _, metrics := st.get("/metrics", "")
		for _, want := range []string{
			`wxgate_proxy_calls_total{api="getFans",code="rate_limited",component="` + testComponentAppID + `",surface="compat",tenant="` + st.TenantID + `"} 1`,
			`wxgate_proxy_calls_total{api="getFans",code="not_found",component="` + testComponentAppID + `",surface="rest",tenant="` + st.TenantID + `"} 2`,
			`wxgate_proxy_calls_total{api="getTagFans",code="upstream_unavailable",component="` + testComponentAppID + `",surface="export",tenant="` + st.TenantID + `"} 1`,
		} {
			if !strings.Contains(string(metrics), want+"\n") {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}
