package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/app"
	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// startAuthorization has the tenant start one authorization, as any
// platform does before WeChat's release test ("pre-auth code created").
func (st *stack) startAuthorization() {
	st.t.Helper()
	st.must(http.MethodPost, "/v1/authorizations", st.Key, map[string]any{"return_url": "https://merchant.example/done"}, nil, 201)
}

// messageURL is replica r's message URL template.
func messageURL(r *instance) string { return "http://" + r.Addr + "/wechat/accounts/$APPID$/callback" }

// inboundRows counts the queued messages of an account, per tenant.
func inboundRows(t testing.TB, dbURL, appid string) map[string]int {
	t.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT tenant_id, count(*) FROM inbound_messages WHERE appid = $1 GROUP BY tenant_id", appid)
	if err != nil {
		t.Fatalf("read inbound_messages: %v", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var tenant string
		var n int
		if err := rows.Scan(&tenant, &n); err != nil {
			t.Fatal(err)
		}
		out[tenant] = n
	}
	return out
}

// customSends counts custom/send calls the simulator answered.
func customSends(s *sim.Simulator) int64 { return s.Counters().Calls[sim.EndpointCustomSend] }

// queryAuths counts api_query_auth calls (a used code names no account,
// so they are counted in total; nothing else authorizes meanwhile).
func queryAuths(s *sim.Simulator, _ string) int64 {
	return s.Counters().Calls[sim.EndpointQueryAuth]
}

// releaseAnswered waits until want QUERY_AUTH_CODE answers are finished:
// their receipts are in event_receipts and no answer's lease is held. The
// receipt is written only after custom/send succeeded and the lease given
// back after the receipt, so this cannot hold before the one answer is
// sent; from then on a copy that takes the lease finds the receipt, and a
// send it made anyway would be a second custom/send the caller counts.
func releaseAnswered(t testing.TB, dbURL string, want int) {
	t.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eventually(t, 10*time.Second, "the QUERY_AUTH_CODE answer recorded and its lease released", func() bool {
		var receipts, held int
		if err := db.QueryRow(`SELECT (SELECT count(*) FROM event_receipts WHERE digest LIKE 'query_auth_code:%'),
  (SELECT count(*) FROM leases WHERE name LIKE 'query_auth_code:%')`).Scan(&receipts, &held); err != nil {
			t.Fatal(err)
		}
		return receipts >= want && held == 0
	})
}

// wantPassed fails t with the report unless every item passed.
func wantPassed(t *testing.T, rep sim.ReleaseReport) {
	t.Helper()
	if !rep.Passed || len(rep.Items) != 8 {
		t.Fatalf("release test: got\n%s\nwant all 8 items passed", rep)
	}
}

// TestReleaseTestThroughServe plays WeChat's full-network release test
// against `wxgate serve` on PostgreSQL, once per test account group (the
// gateway must recognise the test by content, never by appid), with the
// QUERY_AUTH_CODE message retried: each run must pass every item of the
// result page, cost exactly one custom/send, and leave the test account
// stored but bound to no tenant.
func TestReleaseTestThroughServe(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{})
	st.startAuthorization()
	sendsBefore := customSends(st.Sim)
	for group := 1; group <= len(sim.ReleaseGroups); group++ {
		appid := sim.ReleaseGroups[group-1].AppID
		journey.Step(t, "group "+strconv.Itoa(group)+": every item passes, one custom/send across three copies", func(t *testing.T) {
			before, exchanges := customSends(st.Sim), queryAuths(st.Sim, appid)
			rep, err := st.Sim.RunReleaseTest(t.Context(), sim.ReleaseTestOptions{Group: group, Copies: 3})
			if err != nil {
				t.Fatal(err)
			}
			wantPassed(t, rep)
			releaseAnswered(t, st.DBURL, group)
			if n := customSends(st.Sim) - before; n != 1 {
				t.Fatalf("custom/send calls: got %d, want exactly 1", n)
			}
			// One for the authorized event's code, one for QUERY_AUTH_CODE's.
			if n := queryAuths(st.Sim, appid) - exchanges; n != 2 {
				t.Fatalf("api_query_auth calls: got %d, want 2 (the copies of QUERY_AUTH_CODE exchange once)", n)
			}
		})
		journey.Step(t, "group "+strconv.Itoa(group)+": the test account is stored, bound to no tenant", func(t *testing.T) {
			st := st.in(t)
			var all struct {
				Authorizers []struct {
					AppID   string   `json:"appid"`
					Status  string   `json:"status"`
					Tenants []string `json:"tenants"`
				} `json:"authorizers"`
			}
			st.must(http.MethodGet, "/admin/authorizers", testAdminToken, nil, &all, 200)
			found := false
			for _, a := range all.Authorizers {
				if a.AppID == appid {
					found = true
					if len(a.Tenants) != 0 {
						t.Fatalf("test account tenants: got %v, want none", a.Tenants)
					}
				}
			}
			if !found {
				t.Fatalf("test account %s not stored; got %+v", appid, all.Authorizers)
			}
			if n := inboundRows(t, st.DBURL, appid); len(n) != 0 {
				t.Fatalf("inbound messages for the test account: got %v, want none", n)
			}
		})
	}
	journey.Step(t, "once the replica stopped, its background answers finished: one custom/send per group", func(t *testing.T) {
		if err := st.Replicas[0].Stop(t); err != nil {
			t.Fatal(err)
		}
		if n := customSends(st.Sim) - sendsBefore; n != int64(len(sim.ReleaseGroups)) {
			t.Fatalf("custom/send calls: got %d, want %d", n, len(sim.ReleaseGroups))
		}
	})
}

// TestReleaseTestOnThreeReplicas: three replicas on one database, the
// release test's pushes spread over them and the QUERY_AUTH_CODE message
// delivered to each replica: still exactly one custom/send.
func TestReleaseTestOnThreeReplicas(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{Replicas: 3})
	st.startAuthorization()
	targets := []string{messageURL(st.Replicas[0]), messageURL(st.Replicas[1]), messageURL(st.Replicas[2])}
	appid := sim.ReleaseGroups[1].AppID
	before, exchanges := customSends(st.Sim), queryAuths(st.Sim, appid)
	rep, err := st.Sim.RunReleaseTest(t.Context(), sim.ReleaseTestOptions{Group: 2, Copies: 3, Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	wantPassed(t, rep)
	releaseAnswered(t, st.DBURL, 1)
	// Stopping waits for each replica's background answers, so a late
	// duplicate is counted below.
	for _, r := range st.Replicas {
		if err := r.Stop(t); err != nil {
			t.Fatal(err)
		}
	}
	if n := customSends(st.Sim) - before; n != 1 {
		t.Fatalf("custom/send calls across three replicas: got %d, want exactly 1", n)
	}
	if n := queryAuths(st.Sim, appid) - exchanges; n != 2 {
		t.Fatalf("api_query_auth calls: got %d, want 2 (the copies of QUERY_AUTH_CODE exchange once)", n)
	}
	var queried int64
	for _, d := range st.Sim.Deliveries() {
		if strings.Contains(d.URL, "/wechat/accounts/") {
			queried++
		}
	}
	if queried < 5 {
		t.Fatalf("deliveries: got %d, want at least 5 (3 copies and 2 replies)", queried)
	}
}

// TestFollowerMessagesAreQueuedOnce pushes every documented message type
// and a few events for an account bound to two tenants, each twice (WeChat's
// retry): each is answered "success" at once and queued exactly once per
// tenant. An event for an account bound to no tenant gets the passive
// reply the release test expects, and nothing is queued.
func TestFollowerMessagesAreQueuedOnce(t *testing.T) {
	t.Parallel()
	const bound, unbound = "wxe2e0000000000m01", "wxe2e0000000000m02"
	st := newStack(t, stackOptions{Accounts: []sim.AccountSpec{{AppID: bound, Followers: 5}}})
	var other struct{ ID string }
	st.must(http.MethodPost, "/admin/tenants", testAdminToken, map[string]any{"name": "globex"}, &other, 201)
	st.must(http.MethodPut, "/admin/tenants/"+other.ID+"/authorizers/"+bound, testAdminToken, nil, nil, 204)
	st.addAccount(sim.AccountSpec{AppID: unbound, Followers: 5}, false)
	// The replica's tenant directory learns bindings by polling.
	eventually(t, 5*time.Second, "bindings visible", func() bool {
		code, _ := st.call(http.MethodGet, "/v1/authorizers/"+bound, st.Key, nil, nil)
		return code == 200
	})

	msgs := []sim.FollowerMessage{
		{Content: "hello"},
		{MsgType: "image", Fields: map[string]string{"PicUrl": "http://mmbiz.example/p.jpg", "MediaId": "m1"}},
		{MsgType: "voice", Fields: map[string]string{"MediaId": "m2", "Format": "amr", "Recognition": "你好"}},
		{MsgType: "video", Fields: map[string]string{"MediaId": "m3", "ThumbMediaId": "t3"}},
		{MsgType: "shortvideo", Fields: map[string]string{"MediaId": "m4", "ThumbMediaId": "t4"}},
		{MsgType: "location", Fields: map[string]string{"Location_X": "23.134521", "Location_Y": "113.358803", "Scale": "20", "Label": "somewhere"}},
		{MsgType: "link", Fields: map[string]string{"Title": "t", "Description": "d", "Url": "http://example.com/"}},
		{MsgType: "event", Event: "subscribe", EventKey: "qrscene_123", Fields: map[string]string{"Ticket": "tk"}, CreateTime: time.Now().Unix() - 10},
		{MsgType: "event", Event: "CLICK", EventKey: "MENU_1", CreateTime: time.Now().Unix() - 9},
		{MsgType: "event", Event: "TEMPLATESENDJOBFINISH", Fields: map[string]string{"MsgID": "200163836", "Status": "success"}, CreateTime: time.Now().Unix() - 8},
	}
	for _, m := range msgs {
		name := m.MsgType
		if name == "" {
			name = "text"
		}
		if m.Event != "" {
			name += " " + m.Event
		}
		journey.Step(t, name+" pushed twice is answered success and queued once per tenant", func(t *testing.T) {
			m.Copies = 2
			ds, err := st.Sim.PushMessage(t.Context(), bound, m)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				if d.Problem != "" || d.Body != "success" {
					t.Fatalf("answer: got %d %q (%s), want 200 success", d.Status, d.Body, d.Problem)
				}
			}
		})
	}
	journey.Step(t, "each message queued exactly once for each bound tenant", func(t *testing.T) {
		rows := inboundRows(t, st.DBURL, bound)
		if rows[st.TenantID] != len(msgs) || rows[other.ID] != len(msgs) || len(rows) != 2 {
			t.Fatalf("queued rows per tenant: got %v, want %d for each of %s and %s", rows, len(msgs), st.TenantID, other.ID)
		}
	})
	journey.Step(t, "the receipts keep no message content", func(t *testing.T) {
		db, err := sql.Open("pgx", st.DBURL)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n, empty int
		if err := db.QueryRow("SELECT count(*), count(*) FILTER (WHERE payload = '{}') FROM inbound_messages WHERE appid = $1", bound).Scan(&n, &empty); err != nil {
			t.Fatal(err)
		}
		if n != 2*len(msgs) || empty != n {
			t.Fatalf("receipts: %d of %d have the payload {}, want all %d", empty, n, 2*len(msgs))
		}
	})
	journey.Step(t, "an event for an account bound to no tenant gets the passive reply, nothing is queued", func(t *testing.T) {
		ds, err := st.Sim.PushMessage(t.Context(), unbound, sim.FollowerMessage{MsgType: "event", Event: "subscribe"})
		if err != nil {
			t.Fatal(err)
		}
		if d := ds[0]; d.Problem != "" || d.Reply == nil || d.Reply.Content != "subscribefrom_callback" {
			t.Fatalf("answer: got %q %+v (%s), want the passive reply subscribefrom_callback", d.Body, d.Reply, d.Problem)
		}
		if rows := inboundRows(t, st.DBURL, unbound); len(rows) != 0 {
			t.Fatalf("queued for an unbound account: %v", rows)
		}
	})
}

// TestEventsOfOneSecondAreQueuedApart: two different events a follower
// causes in the same second (a menu click and a scan) are two messages,
// both for the receipt and for the webhook, while WeChat's retry of one of
// them is still one.
func TestEventsOfOneSecondAreQueuedApart(t *testing.T) {
	t.Parallel()
	const appid = "wxe2e0000000000m03"
	st := newStack(t, stackOptions{Accounts: []sim.AccountSpec{{AppID: appid, Followers: 2}},
		Env: func(env map[string]string) { env["WXGATE_WEBHOOK_ALLOW_PRIVATE"] = "true" }})
	recv := newHookReceiver(t)
	st.putWebhook(st.Key, recv.URL, []string{"message.received"})
	eventually(t, 5*time.Second, "binding visible", func() bool {
		code, _ := st.call(http.MethodGet, "/v1/authorizers/"+appid, st.Key, nil, nil)
		return code == 200
	})
	at := time.Now().Unix() - 5
	for _, m := range []sim.FollowerMessage{
		{MsgType: "event", Event: "CLICK", EventKey: "MENU_1", CreateTime: at, Copies: 2},
		{MsgType: "event", Event: "SCAN", EventKey: "123", CreateTime: at, Copies: 2},
	} {
		journey.Step(t, m.Event+" at the same second, pushed twice, is answered success", func(t *testing.T) {
			ds, err := st.Sim.PushMessage(t.Context(), appid, m)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				if d.Problem != "" || d.Body != "success" {
					t.Fatalf("answer: got %d %q (%s), want 200 success", d.Status, d.Body, d.Problem)
				}
			}
		})
	}
	journey.Step(t, "two receipts and two webhook events, one per event", func(t *testing.T) {
		if rows := inboundRows(t, st.DBURL, appid); rows[st.TenantID] != 2 || len(rows) != 1 {
			t.Fatalf("receipts: got %v, want 2 for %s", rows, st.TenantID)
		}
		db, err := sql.Open("pgx", st.DBURL)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow("SELECT count(*) FROM webhook_events WHERE tenant_id = $1 AND appid = $2 AND type = 'message.received'", st.TenantID, appid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Fatalf("message.received webhook events: got %d, want 2", n)
		}
	})
}

// TestMessageURLRefusalsChangeNothing: a forged signature (401), a
// malformed body (400) and an oversize body (413) of a QUERY_AUTH_CODE or an
// ordinary message call nothing at WeChat and queue nothing; the GET URL
// verification echoes only for the platform's signature.
func TestMessageURLRefusalsChangeNothing(t *testing.T) {
	t.Parallel()
	const appid = "wxe2e0000000000r01"
	st := newStack(t, stackOptions{Accounts: []sim.AccountSpec{{AppID: appid, Followers: 5}}})
	good, err := wxcrypt.New("test-component-token", testAESKey, testComponentAppID)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := wxcrypt.New("not-the-platform-token", testAESKey, testComponentAppID)
	if err != nil {
		t.Fatal(err)
	}
	openid, _ := st.Sim.FollowerOpenID(appid, 0)
	plainAt := func(content string, created int64) []byte {
		return []byte("<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[" + openid +
			"]]></FromUserName><CreateTime>" + strconv.FormatInt(created, 10) +
			"</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[" + content + "]]></Content><MsgId>77</MsgId></xml>")
	}
	plain := func(content string) []byte { return plainAt(content, time.Now().Unix()) }
	post := func(t *testing.T, body []byte, sig, ts string) (int, string) {
		q := url.Values{"timestamp": {ts}, "nonce": {"42"}, "encrypt_type": {"aes"}, "msg_signature": {sig}, "openid": {openid}}
		resp, err := st.client.Post(st.base()+"/wechat/accounts/"+appid+"/callback?"+q.Encode(), "text/xml", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	forgedBody, forgedSig, _ := forger.SealMessage(plain("QUERY_AUTH_CODE:queryauthcode@@@forged"), "gh_x", ts, "42")
	validBody, validSig, _ := good.SealMessage(plain("hello"), "gh_x", ts, "42")
	// Six minutes ahead: past the five-minute window the event URL allows.
	ahead := time.Now().Add(6 * time.Minute).Unix()
	aheadTS := strconv.FormatInt(ahead, 10)
	aheadURLBody, aheadURLSig, _ := good.SealMessage(plain("QUERY_AUTH_CODE:queryauthcode@@@ahead"), "gh_x", aheadTS, "42")
	aheadMsgBody, aheadMsgSig, _ := good.SealMessage(plainAt("hello", ahead), "gh_x", ts, "42")
	for _, tc := range []struct {
		name string
		body []byte
		sig  string
		ts   string
		want int
	}{
		{"forged signature on a QUERY_AUTH_CODE", forgedBody, forgedSig, ts, 401},
		{"valid body, signature of another body", validBody, forgedSig, ts, 401},
		{"no signature", validBody, "", ts, 401},
		{"not XML", []byte("hello"), validSig, ts, 400},
		{"oversize", append(bytes.Repeat([]byte(" "), 70<<10), validBody...), validSig, ts, 413},
		{"a URL timestamp six minutes ahead on a QUERY_AUTH_CODE", aheadURLBody, aheadURLSig, aheadTS, 400},
		{"a CreateTime six minutes ahead", aheadMsgBody, aheadMsgSig, ts, 400},
	} {
		journey.Step(t, tc.name+" is refused and changes nothing", func(t *testing.T) {
			calls := simCalls(st)
			code, body := post(t, tc.body, tc.sig, tc.ts)
			if code != tc.want {
				t.Fatalf("status: got %d %q, want %d", code, body, tc.want)
			}
			// No wait is needed: the account is bound to a tenant, where
			// nothing is answered in the background, and a push that got
			// through would have been queued before its answer.
			if after := simCalls(st); after[sim.EndpointQueryAuth] != calls[sim.EndpointQueryAuth] || after[sim.EndpointCustomSend] != calls[sim.EndpointCustomSend] {
				t.Fatalf("WeChat calls: got %v after, %v before; want none", after, calls)
			}
			if rows := inboundRows(t, st.DBURL, appid); len(rows) != 0 {
				t.Fatalf("queued: got %v, want nothing", rows)
			}
		})
	}
	journey.Step(t, "a message created before the replay window is acknowledged and not queued", func(t *testing.T) {
		old := time.Now().Add(-8 * 24 * time.Hour).Unix()
		body, sig, _ := good.SealMessage(plainAt("hello", old), "gh_x", ts, "42")
		if code, got := post(t, body, sig, ts); code != 200 || got != "success" {
			t.Fatalf("got %d %q, want 200 success", code, got)
		}
		if rows := inboundRows(t, st.DBURL, appid); len(rows) != 0 {
			t.Fatalf("queued: got %v, want nothing", rows)
		}
	})
	journey.Step(t, "the genuine message is queued", func(t *testing.T) {
		if code, body := post(t, validBody, validSig, ts); code != 200 || body != "success" {
			t.Fatalf("got %d %q, want 200 success", code, body)
		}
		if rows := inboundRows(t, st.DBURL, appid); rows[st.TenantID] != 1 {
			t.Fatalf("queued: got %v, want 1 for the tenant", rows)
		}
	})
	journey.Step(t, "URL verification echoes only for the platform's signature", func(t *testing.T) {
		for _, tc := range []struct {
			sig      string
			want     int
			wantBody string
		}{
			{good.SignURL(ts, "7"), 200, "echo123"},
			{forger.SignURL(ts, "7"), 401, "bad signature"},
		} {
			q := url.Values{"signature": {tc.sig}, "timestamp": {ts}, "nonce": {"7"}, "echostr": {"echo123"}}
			code, _, body := st.getRaw("/wechat/accounts/" + appid + "/callback?" + q.Encode())
			if code != tc.want || body != tc.wantBody {
				t.Fatalf("GET verification: got %d %q, want %d %q", code, body, tc.want, tc.wantBody)
			}
		}
	})
}

var _ = context.Background

// TestDemoPassesTheReleaseTest runs `wxgate demo`, then the release test
// command its banner prints: `wxgate sim --release-test` must print every
// item of the result page as passed and exit 0.
func TestDemoPassesTheReleaseTest(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	out := &syncBuffer{}
	addr := strings.TrimPrefix(d.Sim, "http://")
	eventually(t, 10*time.Second, "the banner's release test command", func() bool {
		return strings.Contains(d.Out.String(), "wxgate sim --release-test --listen "+addr+"\n")
	})
	err := app.Run(t.Context(), []string{"sim", "--release-test", "--listen", addr}, func(string) string { return "" }, app.IO{Stdout: out, Stderr: io.Discard})
	if err != nil {
		t.Fatalf("wxgate sim --release-test: got %v, want success; printed:\n%s", err, out)
	}
	for _, item := range []string{sim.ItemTicket, sim.ItemPreAuthCode, sim.ItemAuthCode, sim.ItemAuthorized, sim.ItemAPIReply, sim.ItemTextReply, sim.ItemEventMessage, sim.ItemUnauthorized} {
		if !strings.Contains(out.String(), "PASS  "+item) {
			t.Errorf("result page: want %q passed; got\n%s", item, out)
		}
	}
	if !strings.Contains(out.String(), "result: passed") {
		t.Fatalf("result page: got\n%s\nwant passed", out)
	}
}
