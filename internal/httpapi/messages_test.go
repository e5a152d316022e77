package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// TestAccountMessagesThroughTheRouter drives the message URL through the
// real router, the real message policy and the embedded store: each kind
// of push gets its status, body and content type, and is counted under its
// outcome; the refusals are counted as refusals and nothing else.
func TestAccountMessagesThroughTheRouter(t *testing.T) {
	t.Parallel()
	pf := newPlatformFixture(t, store.SQLite)
	p := pf.p
	const bound, unbound = "wx00000000000000m1", "wx00000000000000m2"
	pf.authorize(bound, pf.createTenant("acme"))
	pf.authorize(unbound, "")
	other, err := wxcrypt.New("another-token", componenttest.AESKey, tfComponent)
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(p.Clock.Now().Unix(), 10)
	msg := func(msgType, extra string) []byte {
		return []byte("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oFollower1]]></FromUserName><CreateTime>" + ts +
			"</CreateTime><MsgType><![CDATA[" + msgType + "]]></MsgType>" + extra + "</xml>")
	}
	sealWith := func(c *wxcrypt.Crypter, plain []byte) ([]byte, url.Values) {
		body, sig, err := c.SealMessage(plain, "gh_1", ts, "777")
		if err != nil {
			t.Fatal(err)
		}
		return body, url.Values{"timestamp": {ts}, "nonce": {"777"}, "encrypt_type": {"aes"}, "msg_signature": {sig}, "openid": {"oFollower1"}}
	}
	counted := func(msgType, outcome string) float64 {
		return testutil.ToFloat64(p.Metrics.MessagesReceived.WithLabelValues(msgType, outcome))
	}
	text, textQ := sealWith(p.Crypter, msg("text", "<Content><![CDATA[hi]]></Content><MsgId>42</MsgId>"))
	release, releaseQ := sealWith(p.Crypter, msg("text", "<Content><![CDATA[TESTCOMPONENT_MSG_TYPE_TEXT]]></Content><MsgId>43</MsgId>"))
	queryAuth, queryAuthQ := sealWith(p.Crypter, msg("text", "<Content><![CDATA[QUERY_AUTH_CODE:queryauthcode@@@forged]]></Content><MsgId>45</MsgId>"))
	event, eventQ := sealWith(p.Crypter, msg("event", "<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[K]]></EventKey>"))
	forged, forgedQ := sealWith(other, msg("text", "<Content><![CDATA[hi]]></Content><MsgId>44</MsgId>"))
	noType, noTypeQ := sealWith(p.Crypter, []byte("<xml><FromUserName>o</FromUserName></xml>"))
	for _, tc := range []struct {
		name      string
		appid     string
		body      []byte
		q         url.Values
		status    int
		wantBody  string // exact, or "" for a passive reply
		wantReply string // the passive reply's content
		msgType   string
		outcome   string
	}{
		{"a follower's text is queued", bound, text, textQ, 200, "success", "", "text", "queued"},
		{"its retry is acknowledged, not queued again", bound, text, textQ, 200, "success", "", "text", "duplicate"},
		{"an event of a tenant's account is queued", bound, event, eventQ, 200, "success", "", "event", "queued"},
		{"an event of an account bound to no tenant gets the release test's reply", unbound, event, eventQ, 200, "", "CLICKfrom_callback", "event", "release_event"},
		{"TESTCOMPONENT_MSG_TYPE_TEXT gets its passive reply on an account bound to no tenant", unbound, release, releaseQ, 200, "", "TESTCOMPONENT_MSG_TYPE_TEXT_callback", "text", "release_text"},
		{"typed by a follower of a tenant's account it is an ordinary message", bound, release, releaseQ, 200, "success", "", "text", "queued"},
		{"so is QUERY_AUTH_CODE: queued, no api_query_auth", bound, queryAuth, queryAuthQ, 200, "success", "", "text", "queued"},
		{"a text of an account bound to no tenant is acknowledged", unbound, text, textQ, 200, "success", "", "text", "no_tenant"},
		{"a forged signature", bound, forged, forgedQ, 401, "bad signature", "", "none", "bad_signature"},
		{"no signature", bound, text, url.Values{"timestamp": {ts}, "nonce": {"777"}}, 401, "bad signature", "", "none", "bad_signature"},
		{"a body that is no envelope", bound, []byte("<xml>"), textQ, 400, "malformed body", "", "none", "malformed"},
		{"a message without MsgType", bound, noType, noTypeQ, 400, "malformed message", "", "none", "malformed"},
		{"an oversize body", bound, append(bytes.Repeat([]byte(" "), maxMessageBody), text...), textQ, 413, "request body too large", "", "none", "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counted(tc.msgType, tc.outcome)
			req := httptest.NewRequest(http.MethodPost, "/wechat/accounts/"+tc.appid+"/callback?"+tc.q.Encode(), bytes.NewReader(tc.body))
			w := httptest.NewRecorder()
			pf.router.ServeHTTP(w, req)
			if w.Code != tc.status {
				t.Fatalf("status: got %d %q, want %d", w.Code, w.Body, tc.status)
			}
			if tc.wantBody != "" && w.Body.String() != tc.wantBody {
				t.Fatalf("body: got %q, want %q", w.Body, tc.wantBody)
			}
			if tc.wantReply != "" {
				if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/xml") {
					t.Fatalf("content type: got %q, want application/xml", ct)
				}
				plain, err := p.Crypter.OpenReply(w.Body.Bytes())
				if err != nil {
					t.Fatalf("OpenReply: got %v for %q", err, w.Body)
				}
				if !bytes.Contains(plain, []byte("<Content><![CDATA["+tc.wantReply+"]]></Content>")) || !bytes.Contains(plain, []byte("<ToUserName><![CDATA[oFollower1]]></ToUserName>")) {
					t.Fatalf("reply: got %s, want %q to oFollower1", plain, tc.wantReply)
				}
			}
			if got := counted(tc.msgType, tc.outcome) - before; got != 1 {
				t.Fatalf("wxgate_messages_total{%s,%s}: got +%v, want +1", tc.msgType, tc.outcome, got)
			}
		})
	}
	t.Run("URL verification", func(t *testing.T) {
		for _, tc := range []struct {
			sig    string
			status int
			body   string
		}{
			{p.Crypter.SignURL(ts, "9"), 200, "echo-1"},
			{other.SignURL(ts, "9"), 401, "bad signature"},
			{"", 401, "bad signature"},
		} {
			w := httptest.NewRecorder()
			pf.router.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/wechat/accounts/"+bound+"/callback?"+
				url.Values{"signature": {tc.sig}, "timestamp": {ts}, "nonce": {"9"}, "echostr": {"echo-1"}}.Encode(), nil))
			if w.Code != tc.status || w.Body.String() != tc.body {
				t.Fatalf("GET: got %d %q, want %d %q", w.Code, w.Body, tc.status, tc.body)
			}
		}
	})
}
