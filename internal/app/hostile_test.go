package app_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/sim"
)

// hostileAccount is the one account of the hostile-input stack, bound to the
// tenant: every refused request names it or a mangled form of it.
var hostileAccount = appid(0x4057)

// sqlPayloads are SQL metacharacters as an attacker sends them: quotes,
// comments, stacked statements, a sleep, LIKE wildcards, an escape, a
// placeholder.
var sqlPayloads = []string{
	`' OR '1'='1' --`,
	`1; DROP TABLE tenants; --`,
	`"; SELECT pg_sleep(5); --`,
	`%' OR appid LIKE '%`,
	`\'); DELETE FROM authorizers; --`,
	`$1 */ /* UNION SELECT * FROM keys`,
}

// requestIDPattern is what an answer's X-Request-Id may be: a hostile
// incoming one is replaced, never echoed.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// hostileWant is the clean answer a hostile request must get.
type hostileWant struct {
	// status is the exact HTTP status; 0 means any 4xx.
	status int
	// code is error.code of a /v1 or /admin answer ("" = not checked).
	code string
	// errcode is the WeChat errcode of a /wx answer, which is then HTTP 200
	// with {"errcode","errmsg"}.
	errcode int
}

func (w hostileWant) check(r rawResponse) error {
	switch {
	case r.status >= 500:
		return fmt.Errorf("server error %d: %.300s", r.status, r.body)
	case w.errcode != 0:
		var e struct {
			Errcode *int   `json:"errcode"`
			Errmsg  string `json:"errmsg"`
		}
		if r.status != http.StatusOK || json.Unmarshal(r.body, &e) != nil || e.Errcode == nil || *e.Errcode != w.errcode || e.Errmsg == "" {
			return fmt.Errorf("got %d %.300s, want WeChat errcode %d with HTTP 200", r.status, r.body, w.errcode)
		}
		return nil
	case w.status == 0 && (r.status < 400 || r.status > 499):
		return fmt.Errorf("got %d %.300s, want a 4xx", r.status, r.body)
	case w.status != 0 && r.status != w.status:
		return fmt.Errorf("got %d %.300s, want %d", r.status, r.body, w.status)
	}
	if w.code != "" {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(r.body, &e) != nil || e.Error.Code != w.code || e.Error.Message == "" {
			return fmt.Errorf("got %d %.300s, want error code %q", r.status, r.body, w.code)
		}
	}
	return nil
}

// hostileCase is one request sent verbatim on its own connection.
type hostileCase struct {
	name   string
	method string
	// target is the request-target exactly as sent (no client cleaning or
	// escaping: raw bytes, "..", "%00" reach the server as written).
	target  string
	headers []string
	body    []byte
	want    hostileWant
}

// rawResponse is one answer read off a raw connection.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// rawRequest builds an HTTP/1.1 request; Content-Length is added for a
// body unless the headers set the framing themselves.
func rawRequest(method, target string, headers []string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n", method, target)
	framed := false
	for _, h := range headers {
		b.WriteString(h)
		b.WriteString("\r\n")
		l := strings.ToLower(h)
		framed = framed || strings.HasPrefix(l, "content-length:") || strings.HasPrefix(l, "transfer-encoding:")
	}
	if body != nil && !framed {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// rawDo sends req on a new connection (writing concurrently, since the
// server may answer before it has read everything) and reads one answer.
func rawDo(addr string, req []byte, within time.Duration) (rawResponse, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return rawResponse{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(within))
	go func() { _, _ = conn.Write(req) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return rawResponse{}, fmt.Errorf("no HTTP answer: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// hostileState is what refused requests must not change: the tenants, the
// tenant's keys (without last use, which a valid call updates) and the
// authorizers with their bindings and token expiry.
func hostileState(t *testing.T, st *stack) string {
	t.Helper()
	var keys struct {
		Keys []struct {
			KID       string   `json:"kid"`
			Name      string   `json:"name"`
			AppIDs    []string `json:"appids"`
			ExpiresAt *string  `json:"expires_at"`
			RevokedAt *string  `json:"revoked_at"`
		} `json:"keys"`
	}
	var parts []string
	for _, path := range []string{"/admin/tenants", "/admin/tenants/" + st.TenantID + "/keys", "/admin/authorizers"} {
		var out any = nil
		if strings.HasSuffix(path, "/keys") {
			out = &keys
		}
		code, raw := st.call(http.MethodGet, path, testAdminToken, nil, out)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, code, raw)
		}
		if out != nil {
			raw, _ = json.Marshal(keys)
		}
		parts = append(parts, string(raw))
	}
	return strings.Join(parts, "\n")
}

// simCalls is every call the simulator answered, by endpoint.
func simCalls(st *stack) map[string]int64 { return maps.Clone(st.Sim.Counters().Calls) }

// TestHostileInput sends a table of hostile requests to a real `serve` on
// loopback, each on a raw connection so nothing is cleaned or escaped on
// the way: oversize headers and bodies, request smuggling framings, invalid
// UTF-8, path traversal and NULs in {appid}, SQL metacharacters in every
// parameter, and slowloris headers and bodies. Each gets a clean 4xx (or a
// WeChat-shaped error on /wx), never a 5xx; the simulator receives no call
// and the tenants, keys and authorizers are unchanged; slow clients are cut
// off within the server's timeouts; names full of SQL are stored verbatim;
// and the gateway is healthy and serving afterwards with no panic logged.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{
		Accounts: []sim.AccountSpec{{AppID: hostileAccount, Followers: 30, PermissionSets: []int{2}, Tags: []sim.TagSpec{{ID: 5, From: 0, To: 10}}}},
		Env: func(e map[string]string) {
			// The table is a burst of requests with one key; the tenant limit is not under test here.
			e["WXGATE_TENANT_RATE_LIMIT"], e["WXGATE_TENANT_RATE_BURST"] = "10000", "10000"
		},
	})
	addr := st.Replicas[0].Addr
	key, admin, app, tid := st.Key, testAdminToken, hostileAccount, st.TenantID
	bearer := func(tok string) []string { return []string{"Authorization: Bearer " + tok} }
	compat := func(path, extraQuery string) string {
		return "/wx/" + app + path + "?access_token=" + url.QueryEscape(key) + extraQuery
	}
	notFound := hostileWant{status: 404, code: "not_found"}
	invalid := hostileWant{status: 400, code: "invalid_argument"}
	unauth := hostileWant{status: 401, code: "unauthenticated"}
	// A malformed appid is refused as such, naming the rule, never looked up.
	malformedAppID := hostileWant{status: 400, code: "invalid_argument"}
	longAppID := "wx" + strings.Repeat("a", 10<<10)
	var cases []hostileCase
	add := func(c ...hostileCase) { cases = append(cases, c...) }

	// Path traversal, NULs and junk in {appid}: never another route, never another account.
	add(
		hostileCase{"traversal escaped", "GET", "/v1/authorizers/..%2F..%2Fadmin/fans", bearer(key), nil, malformedAppID},
		hostileCase{"traversal escaped to admin", "GET", "/v1/authorizers/..%2F..%2Fadmin%2Ftenants", bearer(admin), nil, unauth},
		hostileCase{"traversal literal with the admin token", "GET", "/v1/authorizers/../../admin/tenants", bearer(admin), nil, hostileWant{status: 404}},
		hostileCase{"traversal after the appid", "GET", "/v1/authorizers/" + app + "/..%2F..%2F..%2Fadmin%2Ftenants", bearer(key), nil, hostileWant{status: 404}},
		hostileCase{"dot-dot encoded", "GET", "/v1/authorizers/%2e%2e/fans", bearer(key), nil, malformedAppID},
		hostileCase{"NUL appended to a bound appid", "GET", "/v1/authorizers/" + app + "%00/fans", bearer(key), nil, malformedAppID},
		hostileCase{"NUL appid", "GET", "/v1/authorizers/%00/fans", bearer(key), nil, malformedAppID},
		hostileCase{"raw NUL byte in the path", "GET", "/v1/authorizers/wx\x00/fans", bearer(key), nil, hostileWant{}},
		hostileCase{"10 KiB appid", "GET", "/v1/authorizers/" + longAppID + "/fans", bearer(key), nil, malformedAppID},
		hostileCase{"10 KiB appid, export", "GET", "/v1/authorizers/" + longAppID + "/fans/export", bearer(key), nil, malformedAppID},
		hostileCase{"bound appid with a trailing slash part", "GET", "/v1/authorizers/" + app + "%2F/fans", bearer(key), nil, malformedAppID},
		hostileCase{"compat traversal", "GET", "/wx/..%2F..%2Fadmin/cgi-bin/user/get?access_token=" + url.QueryEscape(key), nil, nil, hostileWant{errcode: 40013}},
		hostileCase{"compat traversal after the appid", "GET", "/wx/" + app + "%2F..%2F/cgi-bin/user/get?access_token=" + url.QueryEscape(key), nil, nil, hostileWant{errcode: 40013}},
		hostileCase{"compat 10 KiB appid", "GET", "/wx/" + longAppID + "/cgi-bin/user/get?access_token=" + url.QueryEscape(key), nil, nil, hostileWant{errcode: 40013}},
		hostileCase{"compat NUL appid", "POST", "/wx/" + app + "%00/cgi-bin/user/tag/get?access_token=" + url.QueryEscape(key), nil, []byte(`{"tagid":5}`), hostileWant{errcode: 40013}},
		hostileCase{"bind a traversal appid", "PUT", "/admin/tenants/" + tid + "/authorizers/..%2F..%2F" + app, bearer(admin), nil, malformedAppID},
		hostileCase{"unbind a NUL appid", "DELETE", "/admin/tenants/" + tid + "/authorizers/" + app + "%00", bearer(admin), nil, invalid},
		hostileCase{"refresh a traversal appid", "POST", "/admin/authorizers/..%2F" + app + "/refresh", bearer(admin), nil, malformedAppID},
		hostileCase{"export format traversal", "GET", "/v1/authorizers/" + app + "/fans/export?format=..%2F..%2Fetc%2Fpasswd", bearer(key), nil, invalid},
		hostileCase{"traversal from an ops route", "GET", "/openapi.json/../admin/tenants", bearer(admin), nil, hostileWant{status: 404}},
	)

	// Invalid UTF-8 in the path, the query, headers and bodies.
	add(
		hostileCase{"invalid UTF-8 appid escaped", "GET", "/v1/authorizers/%ff%fe/fans", bearer(key), nil, malformedAppID},
		hostileCase{"invalid UTF-8 appid raw bytes", "GET", "/v1/authorizers/\xff\xfe/fans", bearer(key), nil, hostileWant{}},
		hostileCase{"invalid UTF-8 next_openid", "GET", "/v1/authorizers/" + app + "/fans?next_openid=%ff%fe", bearer(key), nil, invalid},
		hostileCase{"invalid UTF-8 next_openid on export", "GET", "/v1/authorizers/" + app + "/fans/export?next_openid=%c3%28", bearer(key), nil, invalid},
		hostileCase{"invalid UTF-8 tagid", "GET", "/v1/authorizers/" + app + "/tags/%ff/fans", bearer(key), nil, invalid},
		hostileCase{"compat invalid UTF-8 next_openid", "GET", compat("/cgi-bin/user/get", "&next_openid=%c3%28"), nil, nil, hostileWant{errcode: 40003}},
		hostileCase{"compat invalid UTF-8 in a JSON string", "POST", compat("/cgi-bin/user/tag/get", ""), nil, []byte("{\"tagid\":5,\"next_openid\":\"\xff\xfe\"}"), hostileWant{errcode: 40003}},
		hostileCase{"compat binary body", "POST", compat("/cgi-bin/user/tag/get", ""), nil, []byte("\xff\xfe\x00\x01"), hostileWant{errcode: 47001}},
		hostileCase{"compat invalid UTF-8 key", "GET", "/wx/" + app + "/cgi-bin/user/get?access_token=%ff%fe", nil, nil, hostileWant{errcode: 40001}},
		hostileCase{"invalid UTF-8 bearer", "GET", "/v1/authorizers", []string{"Authorization: Bearer \xff\xfe\xfd"}, nil, unauth},
		hostileCase{"invalid UTF-8 admin bearer", "GET", "/admin/tenants", []string{"Authorization: Bearer \xc3\x28" + admin}, nil, unauth},
		hostileCase{"invalid UTF-8 event body", "POST", "/wechat/events?timestamp=1&nonce=1&encrypt_type=aes&msg_signature=x", []string{"Content-Type: text/xml"}, []byte("<xml>\xff\xfe<Encrypt>\xc3\x28</Encrypt></xml>"), hostileWant{}},
		hostileCase{"invalid UTF-8 return_url", "POST", "/v1/authorizations", bearer(key), []byte("{\"return_url\":\"\xff\xfe\"}"), invalid},
		hostileCase{"invalid UTF-8 tenant name", "POST", "/admin/tenants", bearer(admin), []byte("{\"name\":\"\xff\xfe\"}"), invalid},
		hostileCase{"invalid UTF-8 key name", "POST", "/admin/tenants/" + tid + "/keys", bearer(admin), []byte("{\"name\":\"k\xc3\x28\"}"), invalid},
		hostileCase{"invalid UTF-8 return_url path", "POST", "/v1/authorizations", bearer(key), []byte("{\"return_url\":\"https://shop.example/\xff\"}"), invalid},
		hostileCase{"invalid UTF-8 tenant rename", "PATCH", "/admin/tenants/" + tid, bearer(admin), []byte("{\"name\":\"acme\xff\"}"), invalid},
		hostileCase{"invalid UTF-8 callback session", "GET", "/wechat/callback?session=%ff%fe&auth_code=%c3%28", nil, nil, hostileWant{status: 400}},
		hostileCase{"NUL callback session", "GET", "/wechat/callback?session=as_%00&auth_code=x", nil, nil, hostileWant{status: 400}},
	)

	// SQL metacharacters in every parameter. Names are free text and are
	// covered below (stored verbatim); everything else is refused.
	for i, p := range sqlPayloads {
		q := url.QueryEscape(p)
		seg := url.PathEscape(p)
		js, _ := json.Marshal(p)
		n := fmt.Sprintf("sql%d ", i)
		add(
			hostileCase{n + "appid", "GET", "/v1/authorizers/" + seg, bearer(key), nil, malformedAppID},
			hostileCase{n + "appid fans", "GET", "/v1/authorizers/" + seg + "/fans", bearer(key), nil, malformedAppID},
			hostileCase{n + "appid tag fans", "GET", "/v1/authorizers/" + seg + "/tags/5/fans", bearer(key), nil, malformedAppID},
			hostileCase{n + "appid export", "GET", "/v1/authorizers/" + seg + "/fans/export", bearer(key), nil, malformedAppID},
			hostileCase{n + "tagid", "GET", "/v1/authorizers/" + app + "/tags/" + seg + "/fans", bearer(key), nil, invalid},
			hostileCase{n + "tagid export", "GET", "/v1/authorizers/" + app + "/tags/" + seg + "/fans/export", bearer(key), nil, invalid},
			hostileCase{n + "next_openid", "GET", "/v1/authorizers/" + app + "/fans?next_openid=" + q, bearer(key), nil, invalid},
			hostileCase{n + "next_openid tag", "GET", "/v1/authorizers/" + app + "/tags/5/fans?next_openid=" + q, bearer(key), nil, invalid},
			hostileCase{n + "next_openid export", "GET", "/v1/authorizers/" + app + "/fans/export?format=csv&next_openid=" + q, bearer(key), nil, invalid},
			hostileCase{n + "compat appid", "GET", "/wx/" + seg + "/cgi-bin/user/get?access_token=" + url.QueryEscape(key), nil, nil, hostileWant{errcode: 40013}},
			hostileCase{n + "compat next_openid query", "GET", compat("/cgi-bin/user/get", "&next_openid="+q), nil, nil, hostileWant{errcode: 40003}},
			hostileCase{n + "compat next_openid body", "POST", compat("/cgi-bin/user/tag/get", ""), nil, []byte(`{"tagid":5,"next_openid":` + string(js) + `}`), hostileWant{errcode: 40003}},
			hostileCase{n + "compat tagid body", "POST", compat("/cgi-bin/user/tag/get", ""), nil, []byte(`{"tagid":` + string(js) + `}`), hostileWant{errcode: 45159}},
			hostileCase{n + "compat key", "GET", "/wx/" + app + "/cgi-bin/user/get?access_token=" + q, nil, nil, hostileWant{errcode: 40001}},
			hostileCase{n + "tenant key", "GET", "/v1/authorizers", bearer(p), nil, unauth},
			hostileCase{n + "admin token", "GET", "/admin/tenants", bearer(p), nil, unauth},
			hostileCase{n + "tenant id keys", "GET", "/admin/tenants/" + seg + "/keys", bearer(admin), nil, notFound},
			hostileCase{n + "tenant id issue key", "POST", "/admin/tenants/" + seg + "/keys", bearer(admin), []byte(`{}`), notFound},
			hostileCase{n + "tenant id usage", "GET", "/admin/tenants/" + seg + "/usage", bearer(admin), nil, notFound},
			hostileCase{n + "tenant id rename", "PATCH", "/admin/tenants/" + seg, bearer(admin), []byte(`{"name":"x"}`), notFound},
			hostileCase{n + "tenant id delete", "DELETE", "/admin/tenants/" + seg, bearer(admin), nil, notFound},
			hostileCase{n + "tenant id bind", "PUT", "/admin/tenants/" + seg + "/authorizers/" + app, bearer(admin), nil, notFound},
			hostileCase{n + "tenant id unbind", "DELETE", "/admin/tenants/" + seg + "/authorizers/" + app, bearer(admin), nil, notFound},
			hostileCase{n + "bind appid", "PUT", "/admin/tenants/" + tid + "/authorizers/" + seg, bearer(admin), nil, malformedAppID},
			hostileCase{n + "unbind appid", "DELETE", "/admin/tenants/" + tid + "/authorizers/" + seg, bearer(admin), nil, malformedAppID},
			hostileCase{n + "refresh appid", "POST", "/admin/authorizers/" + seg + "/refresh", bearer(admin), nil, malformedAppID},
			hostileCase{n + "kid", "DELETE", "/admin/keys/" + seg, bearer(admin), nil, notFound},
			hostileCase{n + "usage from", "GET", "/admin/tenants/" + tid + "/usage?from=" + q, bearer(admin), nil, invalid},
			hostileCase{n + "usage to", "GET", "/admin/tenants/" + tid + "/usage?to=" + q, bearer(admin), nil, invalid},
			hostileCase{n + "key appids", "POST", "/admin/tenants/" + tid + "/keys", bearer(admin), []byte(`{"name":"k","appids":[` + string(js) + `]}`), invalid},
			hostileCase{n + "key ttl", "POST", "/admin/tenants/" + tid + "/keys", bearer(admin), []byte(`{"ttl_seconds":` + string(js) + `}`), invalid},
			hostileCase{n + "authorization return_url", "POST", "/v1/authorizations", bearer(key), []byte(`{"return_url":` + string(js) + `}`), invalid},
			hostileCase{n + "authorization biz_appid", "POST", "/v1/authorizations", bearer(key), []byte(`{"return_url":"https://shop.example/done","biz_appid":` + string(js) + `}`), invalid},
			hostileCase{n + "callback session", "GET", "/wechat/callback?session=" + q + "&auth_code=" + q + "&expires_in=" + q, nil, nil, hostileWant{status: 400}},
			hostileCase{n + "event query", "POST", "/wechat/events?timestamp=" + q + "&nonce=" + q + "&encrypt_type=aes&msg_signature=" + q, []string{"Content-Type: text/xml"},
				[]byte("<xml><AppId><![CDATA[" + testComponentAppID + "]]></AppId><Encrypt><![CDATA[" + p + "]]></Encrypt></xml>"), hostileWant{status: 401}},
		)
	}

	// Oversize headers and bodies, and framings a smuggler would use.
	big := strings.Repeat("A", 80<<10)
	manyHeaders := make([]string, 0, 2500)
	for i := range 2500 {
		manyHeaders = append(manyHeaders, fmt.Sprintf("X-H%d: %030d", i, i))
	}
	mib := bytes.Repeat([]byte("A"), 2<<20)
	bigJSON := []byte(`{"tagid":5,"next_openid":"","pad":"` + strings.Repeat("x", 17<<10) + `"}`)
	chunked := func(payload []byte) []byte {
		var b bytes.Buffer
		for len(payload) > 0 {
			n := min(len(payload), 32<<10)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, payload[:n])
			payload = payload[n:]
		}
		b.WriteString("0\r\n\r\n")
		return b.Bytes()
	}
	add(
		hostileCase{"80 KiB header", "GET", "/healthz", []string{"X-Big: " + big}, nil, hostileWant{status: 431}},
		hostileCase{"80 KiB bearer", "GET", "/v1/authorizers", bearer(big), nil, hostileWant{status: 431}},
		hostileCase{"2500 headers", "GET", "/v1/authorizers", append(bearer(key), manyHeaders...), nil, hostileWant{status: 431}},
		hostileCase{"100 KiB query", "GET", "/v1/authorizers/" + app + "/fans?next_openid=" + strings.Repeat("a", 100<<10), bearer(key), nil, hostileWant{status: 431}},
		hostileCase{"10 KiB bearer under the header cap", "GET", "/v1/authorizers", bearer(strings.Repeat("k", 10<<10)), nil, unauth},
		hostileCase{"10 KiB compat key", "GET", "/wx/" + app + "/cgi-bin/user/get?access_token=" + strings.Repeat("k", 10<<10), nil, nil, hostileWant{errcode: 40001}},
		hostileCase{"65-character next_openid", "GET", "/v1/authorizers/" + app + "/fans?next_openid=" + strings.Repeat("o", 65), bearer(key), nil, invalid},
		hostileCase{"2 MiB event", "POST", "/wechat/events?timestamp=1&nonce=1&encrypt_type=aes&msg_signature=x", []string{"Content-Type: text/xml"}, mib, hostileWant{status: 413}},
		hostileCase{"2 MiB chunked event", "POST", "/wechat/events?timestamp=1&nonce=1&encrypt_type=aes&msg_signature=x", []string{"Content-Type: text/xml", "Transfer-Encoding: chunked"}, chunked(mib), hostileWant{status: 413}},
		hostileCase{"2 MiB compat body", "POST", compat("/cgi-bin/user/tag/get", ""), []string{"Content-Type: application/json"}, mib, hostileWant{errcode: 47001}},
		hostileCase{"2 MiB chunked compat body", "POST", compat("/cgi-bin/user/tag/get", ""), []string{"Transfer-Encoding: chunked"}, chunked(mib), hostileWant{errcode: 47001}},
		hostileCase{"17 KiB valid JSON compat body", "POST", compat("/cgi-bin/user/tag/get", ""), nil, bigJSON, hostileWant{errcode: 47001}},
		hostileCase{"2 MiB compat body with a bad key", "POST", "/wx/" + app + "/cgi-bin/user/tag/get?access_token=x", nil, mib, hostileWant{errcode: 40001}},
		hostileCase{"2 MiB authorization body", "POST", "/v1/authorizations", bearer(key), mib, invalid},
		hostileCase{"2 MiB tenant body", "POST", "/admin/tenants", bearer(admin), mib, invalid},
		hostileCase{"2 MiB key body", "POST", "/admin/tenants/" + tid + "/keys", bearer(admin), mib, invalid},
		hostileCase{"2 MiB body on a GET", "GET", "/v1/authorizers/" + app + "/fans?next_openid=" + url.QueryEscape("'"), bearer(key), mib, invalid},
		hostileCase{"two differing Content-Lengths", "POST", "/admin/tenants", append(bearer(admin), "Content-Length: 2", "Content-Length: 40"), []byte(`{}`), hostileWant{status: 400}},
		hostileCase{"negative Content-Length", "POST", "/admin/tenants", append(bearer(admin), "Content-Length: -1"), []byte(`{}`), hostileWant{status: 400}},
		// Chunked wins over Content-Length (RFC 9112); the request after the empty chunked body is never served.
		hostileCase{"Content-Length with chunked, smuggled request", "POST", "/admin/tenants", append(bearer(admin), "Content-Length: 5", "Transfer-Encoding: chunked"),
			[]byte("0\r\n\r\nPOST /admin/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin + "\r\nContent-Length: 17\r\n\r\n{\"name\":\"smugl\"}"), hostileWant{status: 400}},
		// Invented methods: refused, and never a new metric series each.
		hostileCase{"invented method on a route", "RANDOMA1", "/v1/authorizers/" + app + "/fans", bearer(key), nil, hostileWant{status: 405}},
		hostileCase{"invented method, unknown path", "XYZ-6504", "/nowhere", nil, nil, hostileWant{status: 404}},
		hostileCase{"SQL in X-Request-Id is not echoed", "GET", "/v1/authorizers/" + url.PathEscape(sqlPayloads[0]) + "/fans", append(bearer(key), "X-Request-Id: a'b;--"), nil, malformedAppID},
	)

	before, calls := hostileState(t, st), simCalls(st)
	t.Run("refused", func(t *testing.T) {
		t.Run("table", func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				r, err := rawDo(addr, rawRequest(c.method, c.target, c.headers, c.body), 20*time.Second)
				if err != nil {
					t.Errorf("%s: %v", c.name, err)
					continue
				}
				if err := c.want.check(r); err != nil {
					t.Errorf("%s: %s %.120q: %v", c.name, c.method, c.target, err)
				}
				// Answers from net/http itself (431, malformed framing) have no request id.
				if id := r.header.Get("X-Request-Id"); id != "" && !requestIDPattern.MatchString(id) {
					t.Errorf("%s: X-Request-Id %q", c.name, id)
				}
			}
		})
		for _, s := range slowClients(key, app) {
			t.Run(s.name, func(t *testing.T) {
				t.Parallel()
				s.run(t, addr)
			})
		}
	})

	t.Run("nothing changed and WeChat was not called", func(t *testing.T) {
		if after := hostileState(t, st); after != before {
			t.Errorf("state changed by refused requests:\nbefore %s\nafter  %s", before, after)
		}
		if after := simCalls(st); !maps.Equal(after, calls) {
			t.Errorf("the simulator was called for refused requests: before %v, after %v", calls, after)
		}
	})

	t.Run("names with SQL are stored verbatim", func(t *testing.T) {
		var list struct {
			Tenants []struct{ ID, Name string } `json:"tenants"`
		}
		st.must(http.MethodGet, "/admin/tenants", admin, nil, &list, 200)
		tenantsBefore := len(list.Tenants)
		for _, p := range sqlPayloads {
			var tn struct{ ID, Name string }
			st.must(http.MethodPost, "/admin/tenants", admin, map[string]any{"name": p}, &tn, 201)
			if tn.Name != p {
				t.Errorf("tenant name %q came back as %q", p, tn.Name)
			}
			var k struct{ KID string }
			st.must(http.MethodPost, "/admin/tenants/"+tn.ID+"/keys", admin, map[string]any{"name": p}, &k, 201)
			var keys struct {
				Keys []struct{ KID, Name string } `json:"keys"`
			}
			st.must(http.MethodGet, "/admin/tenants/"+tn.ID+"/keys", admin, nil, &keys, 200)
			if len(keys.Keys) != 1 || keys.Keys[0].Name != p || keys.Keys[0].KID != k.KID {
				t.Errorf("keys of tenant %q: %+v", p, keys.Keys)
			}
			var renamed struct{ Name string }
			st.must(http.MethodPatch, "/admin/tenants/"+tn.ID, admin, map[string]any{"name": p + " (renamed)"}, &renamed, 200)
			if renamed.Name != p+" (renamed)" {
				t.Errorf("renamed %q came back as %q", p, renamed.Name)
			}
			if code, raw := st.call(http.MethodPost, "/admin/tenants", admin, map[string]any{"name": p + " (renamed)"}, nil); code != 409 {
				t.Errorf("duplicate name %q: %d %s", p, code, raw)
			}
			st.must(http.MethodDelete, "/admin/tenants/"+tn.ID, admin, nil, nil, 204)
		}
		st.must(http.MethodGet, "/admin/tenants", admin, nil, &list, 200)
		if len(list.Tenants) != tenantsBefore {
			t.Errorf("%d tenants after creating and deleting, want %d", len(list.Tenants), tenantsBefore)
		}
	})

	t.Run("still healthy and serving", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			if code, raw := st.call(http.MethodGet, path, "", nil, nil); code != 200 {
				t.Errorf("%s = %d %s", path, code, raw)
			}
		}
		before := st.Sim.Counters().ByAccount["user/get"][app]
		code, _, body := st.get("/v1/authorizers/"+app+"/fans", key)
		var page fansPage
		if code != 200 || json.Unmarshal(body, &page) != nil || page.Count != 30 {
			t.Fatalf("getFans after the table: %d %.200s", code, body)
		}
		if after := st.Sim.Counters().ByAccount["user/get"][app]; after != before+1 {
			t.Errorf("the simulator counted %d user/get calls for one proxied call", after-before)
		}
		_, _, metrics := st.get("/metrics", "")
		for _, line := range strings.Split(string(metrics), "\n") {
			if strings.HasPrefix(line, "wxgate_http_requests_total{") && strings.Contains(line, `status="5`) {
				t.Errorf("a 5xx was answered: %s", line)
			}
			if strings.Contains(line, "RANDOMA1") || strings.Contains(line, "XYZ-6504") {
				t.Errorf("a client's method became a label value: %s", line)
			}
		}
		if logs := st.Replicas[0].Logs.String(); strings.Contains(logs, `"msg":"panic"`) {
			t.Errorf("a handler panicked:\n%s", grepLines(logs, `"msg":"panic"`))
		}
	})
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// slowClient is a slowloris-style client: it trickles a request and
// reports when the server gave up on it.
type slowClient struct {
	name string
	run  func(t *testing.T, addr string)
}

// Server timeouts of newHTTPServer (serve.go) the slow clients must hit.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	timeoutSlack      = 8 * time.Second
)

func slowClients(key, app string) []slowClient {
	return []slowClient{
		{"slow headers are cut off by ReadHeaderTimeout", func(t *testing.T, addr string) {
			elapsed, resp := trickle(t, addr, []byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"), []byte("X-Slow: a\r\n"), readHeaderTimeout+timeoutSlack)
			if resp != nil {
				t.Errorf("the server answered %d to unfinished headers", resp.status)
			}
			if elapsed < readHeaderTimeout-time.Second {
				t.Errorf("closed after %s, before the header timeout", elapsed)
			}
			t.Logf("connection closed after %s", elapsed.Round(10*time.Millisecond))
		}},
		{"slow event body is cut off by ReadTimeout", func(t *testing.T, addr string) {
			head := rawRequest("POST", "/wechat/events?timestamp=1&nonce=1&encrypt_type=aes&msg_signature=x", []string{"Content-Type: text/xml", "Content-Length: 4096"}, nil)
			elapsed, resp := trickle(t, addr, append(head, "<xml><Encrypt>"...), []byte("A"), readTimeout+timeoutSlack)
			if resp != nil && (resp.status < 400 || resp.status >= 500) {
				t.Errorf("answer to a cut-off body: %d %s", resp.status, resp.body)
			}
			if elapsed < readTimeout-2*time.Second {
				t.Errorf("closed after %s, before the read timeout", elapsed)
			}
			t.Logf("connection closed after %s (answer: %v)", elapsed.Round(10*time.Millisecond), resp != nil)
		}},
		{"slow compatible body is cut off by ReadTimeout", func(t *testing.T, addr string) {
			head := rawRequest("POST", "/wx/"+app+"/cgi-bin/user/tag/get?access_token="+url.QueryEscape(key), []string{"Content-Length: 4096"}, nil)
			elapsed, resp := trickle(t, addr, append(head, `{"tagid":5,"next_openid":"`...), []byte("o"), readTimeout+timeoutSlack)
			if resp != nil {
				if err := (hostileWant{errcode: 47001}).check(*resp); err != nil {
					t.Errorf("answer to a cut-off body: %v", err)
				}
			}
			if elapsed < readTimeout-2*time.Second {
				t.Errorf("closed after %s, before the read timeout", elapsed)
			}
			t.Logf("connection closed after %s (answer: %v)", elapsed.Round(10*time.Millisecond), resp != nil)
		}},
	}
}

// trickle writes head, then drip every 250 ms, until the server closes the
// connection; it fails the test if that takes longer than within. It
// returns when the connection was closed (from the first byte sent) and the
// answer read before the close, if any.
func trickle(t *testing.T, addr string, head, drip []byte, within time.Duration) (time.Duration, *rawResponse) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(within))
	if _, err := conn.Write(head); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := conn.Write(drip); err != nil {
					return
				}
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	br := bufio.NewReader(conn)
	var answer *rawResponse
	if _, err := br.Peek(1); err == nil {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("unreadable answer: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer = &rawResponse{status: resp.StatusCode, header: resp.Header, body: body}
	}
	// Whatever was answered, the connection itself must be closed.
	_, err = br.ReadByte()
	for err == nil {
		_, err = br.ReadByte()
	}
	elapsed := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %s", within)
	}
	return elapsed, answer
}
