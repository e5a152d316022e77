package sim

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// TestCustomSendChecks: custom/send checks the token, the body and the
// follower as WeChat does, and records only what it accepted.
func TestCustomSendChecks(t *testing.T) {
	e := newEnv(t)
	ctok := e.componentToken()
	info := e.authorize(ctok, AccountSpec{AppID: "wxcustom0000000001", Followers: 3})
	e.authorize(ctok, AccountSpec{AppID: "wxcustom0000000002", Followers: 3})
	mine, _ := e.sim.FollowerOpenID("wxcustom0000000001", 2)
	outOfRange, _ := e.sim.FollowerOpenID("wxcustom0000000001", 3)
	theirs, _ := e.sim.FollowerOpenID("wxcustom0000000002", 0)
	body := func(to string) string {
		return `{"touser":"` + to + `","msgtype":"text","text":{"content":"hi"}}`
	}
	for _, tc := range []struct {
		name, method, token, body string
		want                      int
	}{
		{"GET", http.MethodGet, info.AccessToken, body(mine), errRequirePOST},
		{"no token", http.MethodPost, "", body(mine), errTokenMissing},
		{"unknown token", http.MethodPost, "90_forged", body(mine), errInvalidCredential},
		{"not JSON", http.MethodPost, info.AccessToken, "hi", errDataFormat},
		{"another account's follower", http.MethodPost, info.AccessToken, body(theirs), errInvalidOpenID},
		{"no such follower", http.MethodPost, info.AccessToken, body(outOfRange), errInvalidOpenID},
		{"accepted", http.MethodPost, info.AccessToken, body(mine), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			e.mustCode(e.do(tc.method, "/cgi-bin/message/custom/send?access_token="+tc.token, tc.body), tc.want)
		})
	}
	got := e.sim.CustomMessages()
	if len(got) != 1 || got[0].AppID != "wxcustom0000000001" || got[0].ToUser != mine || got[0].Content != "hi" {
		t.Fatalf("recorded: got %+v, want only the accepted message", got)
	}
}

// TestPushMessageJudgesAnswers pushes a follower's message to a receiver
// that opens it as the gateway must and answers in each way a platform
// can: the Delivery says what WeChat would make of the answer.
func TestPushMessageJudgesAnswers(t *testing.T) {
	c, err := wxcrypt.New(testToken, testAESKey, testComponent)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := wxcrypt.New("another-token", testAESKey, testComponent)
	var mu sync.Mutex
	var answer func(w http.ResponseWriter, to, from string)
	var seen []pushSeen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		body, _ := io.ReadAll(r.Body)
		plain, err := c.Open(body, q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"))
		if err != nil || q.Get("encrypt_type") != "aes" || q.Get("signature") != c.SignURL(q.Get("timestamp"), q.Get("nonce")) {
			http.Error(w, "bad push", http.StatusUnauthorized)
			return
		}
		var m struct {
			To      string `xml:"ToUserName"`
			From    string `xml:"FromUserName"`
			Content string `xml:"Content"`
		}
		_ = xml.Unmarshal(plain, &m)
		mu.Lock()
		seen = append(seen, pushSeen{path: r.URL.Path, openid: q.Get("openid")})
		a := answer
		mu.Unlock()
		a(w, m.From, m.To)
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, func(o *Options) { o.MessageURL = srv.URL + "/wechat/accounts/$APPID$/callback" })
	if err := e.sim.CreateAccount(AccountSpec{AppID: "wxpush000000000001", UserName: "gh_push", Followers: 1}); err != nil {
		t.Fatal(err)
	}
	reply := func(c *wxcrypt.Crypter, content string) func(w http.ResponseWriter, to, from string) {
		return func(w http.ResponseWriter, to, from string) {
			b, _ := c.SealReply([]byte("<xml><ToUserName><![CDATA["+to+"]]></ToUserName><FromUserName><![CDATA["+from+"]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA["+content+"]]></Content></xml>"), "1", "2")
			_, _ = w.Write(b)
		}
	}
	for _, tc := range []struct {
		name        string
		answer      func(w http.ResponseWriter, to, from string)
		wantProblem string
		wantReply   string
	}{
		{"success", func(w http.ResponseWriter, _, _ string) { _, _ = io.WriteString(w, "success") }, "", ""},
		{"empty", func(w http.ResponseWriter, _, _ string) {}, "", ""},
		{"a passive reply", reply(c, "hello back"), "", "hello back"},
		{"a reply signed with another token", reply(other, "x"), "neither success nor a valid encrypted reply", ""},
		{"plain text", func(w http.ResponseWriter, _, _ string) { _, _ = io.WriteString(w, "hello") }, "neither success nor a valid encrypted reply", ""},
		{"HTTP 500", func(w http.ResponseWriter, _, _ string) { w.WriteHeader(500) }, "answered HTTP 500", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			answer = tc.answer
			mu.Unlock()
			ds, err := e.sim.PushMessage(context.Background(), "wxpush000000000001", FollowerMessage{Content: "hi"})
			if err != nil || len(ds) != 1 {
				t.Fatalf("PushMessage: got %v, %v; want one delivery", ds, err)
			}
			d := ds[0]
			if !strings.Contains(d.Problem, tc.wantProblem) || (tc.wantProblem == "") != (d.Problem == "") {
				t.Fatalf("problem: got %q, want %q", d.Problem, tc.wantProblem)
			}
			if tc.wantReply != "" && (d.Reply == nil || d.Reply.Content != tc.wantReply || d.Reply.FromUserName != "gh_push") {
				t.Fatalf("reply: got %+v, want %q from gh_push", d.Reply, tc.wantReply)
			}
		})
	}
	openid, _ := e.sim.FollowerOpenID("wxpush000000000001", 0)
	if len(seen) == 0 || seen[0].path != "/wechat/accounts/wxpush000000000001/callback" || seen[0].openid != openid {
		t.Fatalf("pushes: got %+v, want the account's URL with openid %s", seen, openid)
	}
	t.Run("copies carry one MsgId", func(t *testing.T) {
		mu.Lock()
		answer = func(w http.ResponseWriter, _, _ string) { _, _ = io.WriteString(w, "success") }
		mu.Unlock()
		ds, err := e.sim.PushMessage(context.Background(), "wxpush000000000001", FollowerMessage{Content: "again", Copies: 3})
		if err != nil || len(ds) != 3 || ds[0].MsgID == 0 || ds[1].MsgID != ds[0].MsgID || ds[2].MsgID != ds[0].MsgID {
			t.Fatalf("copies: got %+v, %v; want 3 with one MsgId", ds, err)
		}
	})
	t.Run("no message URL", func(t *testing.T) {
		e := newEnv(t)
		_ = e.sim.CreateAccount(AccountSpec{AppID: "wxpush000000000001"})
		if _, err := e.sim.PushMessage(context.Background(), "wxpush000000000001", FollowerMessage{}); !errors.Is(err, ErrNoMessageURL) {
			t.Fatalf("got %v, want ErrNoMessageURL", err)
		}
	})
}

type pushSeen struct{ path, openid string }

// TestReleaseTestFailsAPlatformThatOnlyAcknowledges: a platform that
// answers "success" to everything and never calls WeChat passes the
// pushes but fails the items that need its work, each with a reason.
func TestReleaseTestFailsAPlatformThatOnlyAcknowledges(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "success") }))
	t.Cleanup(srv.Close)
	e := newEnv(t, func(o *Options) { o.MessageURL = srv.URL + "/m/$APPID$" })
	rep, err := e.sim.RunReleaseTest(context.Background(), ReleaseTestOptions{Group: 3, Wait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{ItemTicket: true, ItemPreAuthCode: false, ItemAuthCode: false, ItemAuthorized: true,
		ItemAPIReply: false, ItemTextReply: false, ItemEventMessage: false, ItemUnauthorized: true}
	if rep.Passed || len(rep.Items) != len(want) || rep.AppID != ReleaseGroups[2].AppID {
		t.Fatalf("report: got\n%s\nwant failed with %d items for group 3", rep, len(want))
	}
	for _, it := range rep.Items {
		if it.Passed != want[it.Name] || (!it.Passed && it.Reason == "") {
			t.Errorf("%s: got passed=%v (%s), want passed=%v with a reason", it.Name, it.Passed, it.Reason, want[it.Name])
		}
	}
}
