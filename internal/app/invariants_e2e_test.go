package app_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// TestRevokedKeyIsRefusedOnEveryReplica: a key revoked through the admin
// API stops authenticating on both replicas within the directory poll.
func TestRevokedKeyIsRefusedOnEveryReplica(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{Replicas: 2, Accounts: []sim.AccountSpec{{AppID: appid(0x7a0), Followers: 3, PermissionSets: []int{2}}}})
	var k struct{ KID, Key string }
	st.must(http.MethodPost, "/admin/tenants/"+st.TenantID+"/keys", testAdminToken, map[string]any{"name": "leaving"}, &k, 201)
	for i, r := range st.Replicas {
		eventually(t, 10*time.Second, fmt.Sprintf("the new key works on replica %d", i), func() bool {
			code, _ := st.callOn(r, http.MethodGet, "/v1/authorizers/"+appid(0x7a0)+"/fans", k.Key, nil, nil)
			return code == 200
		})
	}
	st.must(http.MethodDelete, "/admin/keys/"+k.KID, testAdminToken, nil, nil, 204)
	for i, r := range st.Replicas {
		eventually(t, 5*time.Second, fmt.Sprintf("the revoked key refused on replica %d", i), func() bool {
			code, body := st.callOn(r, http.MethodGet, "/v1/authorizers/"+appid(0x7a0)+"/fans", k.Key, nil, nil)
			return code == 401 && decodeAPIError(body).Code == "unauthenticated"
		})
	}
	// The tenant's other key is untouched.
	if code, body := st.callOn(st.Replicas[1], http.MethodGet, "/v1/authorizers/"+appid(0x7a0)+"/fans", st.Key, nil, nil); code != 200 {
		t.Fatalf("the other key: %d %s", code, body)
	}
}

// TestLostReauthorizationIsRecoveredThrough61023: the merchant authorizes
// again while the gateway misses the event, so its stored refresh token
// is stale; the next refresh meets 61023, finds the new refresh token with
// api_get_authorizer_list, and the account keeps working.
func TestLostReauthorizationIsRecoveredThrough61023(t *testing.T) {
	t.Parallel()
	acct := appid(0x7b0)
	st := newStack(t, stackOptions{Accounts: []sim.AccountSpec{{AppID: acct, Followers: 3, PermissionSets: []int{2}}}})
	st.Host.Relay("127.0.0.1:1") // nothing listens there: the push is lost
	if _, err := st.Sim.Authorize(context.Background(), acct, ""); err == nil {
		t.Fatal("the re-authorization event was delivered; the test needs it lost")
	}
	st.Host.Relay(st.Replicas[0].Addr)
	before := st.Sim.Counters()
	var a struct{ Status string }
	st.must(http.MethodPost, "/admin/authorizers/"+acct+"/refresh", testAdminToken, nil, &a, 200)
	after := st.Sim.Counters()
	if a.Status != "authorized" {
		t.Fatalf("status after the refresh = %q, want authorized", a.Status)
	}
	if n := after.ByErrcode[sim.EndpointAuthorizerToken][61023] - before.ByErrcode[sim.EndpointAuthorizerToken][61023]; n != 1 {
		t.Fatalf("%d refreshes met 61023, want 1 (the stale refresh token)", n)
	}
	if n := after.Calls[sim.EndpointGetAuthorizerList] - before.Calls[sim.EndpointGetAuthorizerList]; n < 1 {
		t.Fatal("api_get_authorizer_list was not asked")
	}
	if code, _, body := st.get("/v1/authorizers/"+acct+"/fans", st.Key); code != 200 {
		t.Fatalf("after recovery: %d %s", code, body)
	}
}

// TestReplayedEventsAreNotAppliedAgain posts signed ticket events to a real
// gateway: a fresh push is applied once; the same push again is a replay,
// answered "success" and not applied; a genuine push older than the replay
// window is acknowledged and ignored.
func TestReplayedEventsAreNotAppliedAgain(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{})
	c, err := wxcrypt.New("test-component-token", testAESKey, testComponentAppID)
	if err != nil {
		t.Fatal(err)
	}
	seal := func(ticket string, at time.Time) ([]byte, url.Values) {
		plain := wxcrypt.EncodeEvent(wxcrypt.Event{AppID: testComponentAppID, CreateTime: at.Unix(), InfoType: wxcrypt.InfoTypeVerifyTicket, ComponentVerifyTicket: ticket})
		ts := strconv.FormatInt(at.Unix(), 10)
		body, sig, err := c.SealEvent(plain, ts, "9")
		if err != nil {
			t.Fatal(err)
		}
		return body, url.Values{"timestamp": {ts}, "nonce": {"9"}, "encrypt_type": {"aes"}, "msg_signature": {sig}}
	}
	// results reads the ticket events counted with result ("ok" = applied).
	results := func(result string) float64 {
		n, _ := metricAt(st.client, st.Replicas[0].Addr, `wxgate_events_total{component="`+testComponentAppID+`",info_type="component_verify_ticket",result="`+result+`"}`)
		return n
	}
	body, q := seal("ticket@@@replay-fresh", time.Now())
	t.Run("a fresh push is applied once", func(t *testing.T) {
		applied := results("ok")
		if got := postSealed(t, st, body, q); string(got) != "success" {
			t.Fatalf("answered %q", got)
		}
		if n := results("ok"); n != applied+1 {
			t.Fatalf("applied %v times, want 1", n-applied)
		}
	})
	t.Run("the same push again is answered and not applied", func(t *testing.T) {
		applied, replays := results("ok"), results("replay")
		if got := postSealed(t, st, body, q); string(got) != "success" {
			t.Fatalf("answered %q", got)
		}
		if results("ok") != applied || results("replay") != replays+1 {
			t.Fatalf("ok %v→%v, replay %v→%v; want the push counted as a replay only", applied, results("ok"), replays, results("replay"))
		}
	})
	t.Run("a genuine push older than the replay window is ignored", func(t *testing.T) {
		applied, stale := results("ok"), results("stale")
		old, oq := seal("ticket@@@replay-old", time.Now().Add(-8*24*time.Hour))
		if got := postSealed(t, st, old, oq); string(got) != "success" {
			t.Fatalf("answered %q", got)
		}
		if results("ok") != applied || results("stale") != stale+1 {
			t.Fatalf("ok %v→%v, stale %v→%v; want the push counted as stale only", applied, results("ok"), stale, results("stale"))
		}
	})
}

// postSealed posts an encrypted event body with its query to the gateway's
// event URL and returns the answer.
func postSealed(t *testing.T, st *stack, body []byte, q url.Values) []byte {
	t.Helper()
	resp, err := st.client.Post(st.base()+"/wechat/events?"+q.Encode(), "text/xml", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("event answered %d %s", resp.StatusCode, b)
	}
	return b
}

// TestTokenErrorSeenByTwoReplicasInTurnRefreshesOnce: WeChat invalidates an
// account's token; a call on replica A meets 40001, refreshes and retries;
// right after, a call on replica B, which polls A's writes only every few
// hundred milliseconds, meets the same 40001 with the token it still holds.
// Each round must cost exactly one api_authorizer_token, and at least one
// round must have caught B stale (four user/get calls: A refused, A
// retried, B refused, B retried), or the interleaving was not exercised.
func TestTokenErrorSeenByTwoReplicasInTurnRefreshesOnce(t *testing.T) {
	t.Parallel()
	var accounts []sim.AccountSpec
	for i := range 5 {
		accounts = append(accounts, sim.AccountSpec{AppID: appid(0x700 + i), Followers: 3, PermissionSets: []int{2}})
	}
	st := newStack(t, stackOptions{Replicas: 2, Accounts: accounts})
	for _, a := range accounts {
		eventually(t, 10*time.Second, a.AppID+" served by the second replica", func() bool {
			code, _ := st.callOn(st.Replicas[1], http.MethodGet, "/v1/authorizers/"+a.AppID+"/fans", st.Key, nil, nil)
			return code == 200
		})
	}
	stale := 0
	for _, a := range accounts {
		t.Run(a.AppID, func(t *testing.T) {
			before := st.Sim.Counters()
			if err := st.Sim.InvalidateToken(a.AppID); err != nil {
				t.Fatal(err)
			}
			for i, r := range st.Replicas {
				if code, body := st.callOn(r, http.MethodGet, "/v1/authorizers/"+a.AppID+"/fans", st.Key, nil, nil); code != 200 {
					t.Fatalf("replica %d: %d %s", i, code, body)
				}
			}
			after := st.Sim.Counters()
			refreshes := after.ByAccount[sim.EndpointAuthorizerToken][a.AppID] - before.ByAccount[sim.EndpointAuthorizerToken][a.AppID]
			calls := after.ByAccount[sim.EndpointUserGet][a.AppID] - before.ByAccount[sim.EndpointUserGet][a.AppID]
			if refreshes != 1 {
				t.Fatalf("api_authorizer_token calls = %d, want exactly 1 (user/get calls %d)", refreshes, calls)
			}
			if calls == 4 {
				stale++
			}
		})
	}
	if stale == 0 {
		t.Fatal("replica B had always synced before its call: the stale 40001 was never exercised")
	}
	t.Logf("%d of %d rounds caught replica B stale", stale, len(accounts))
}

// framed encrypts msg as WeChat frames it (random ‖ length ‖ msg ‖ appid),
// followed by pad bytes of value pad, with the component's key. msg is
// lengthened with spaces inside its last element so the whole is a number
// of AES blocks.
func framed(t *testing.T, msg string, pad int) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(testAESKey + "=")
	if err != nil {
		t.Fatal(err)
	}
	for (16+4+len(msg)+len(testComponentAppID)+pad)%16 != 0 {
		msg = strings.Replace(msg, "</xml>", " </xml>", 1)
	}
	var p bytes.Buffer
	p.Write(make([]byte, 16))
	_ = binary.Write(&p, binary.BigEndian, uint32(len(msg)))
	p.WriteString(msg + testComponentAppID)
	p.Write(bytes.Repeat([]byte{byte(pad)}, pad))
	buf := p.Bytes()
	block, _ := aes.NewCipher(key)
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf)
}

// TestEventURLRefusesForgedSignaturesAndBadPads posts ticket events to a
// real gateway's event URL: a frame padded to WeChat's 32-byte block and
// signed with the component's token is accepted; the same frame signed
// with another token is refused (401), and frames with 33..48 consistent
// pad bytes are refused (400).
func TestEventURLRefusesForgedSignaturesAndBadPads(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{})
	postSigned := func(token, encrypt string) (int, string) {
		ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "4242"
		q := url.Values{"timestamp": {ts}, "nonce": {nonce}, "encrypt_type": {"aes"},
			"msg_signature": {wxcrypt.Signature(token, ts, nonce, encrypt)}}
		body := "<xml><AppId><![CDATA[" + testComponentAppID + "]]></AppId><Encrypt><![CDATA[" + encrypt + "]]></Encrypt></xml>"
		resp, err := st.client.Post(st.base()+"/wechat/events?"+q.Encode(), "text/xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(encrypt string) (int, string) { return postSigned("test-component-token", encrypt) }
	ticket := func(n int) string {
		return string(wxcrypt.EncodeEvent(wxcrypt.Event{AppID: testComponentAppID, CreateTime: time.Now().Unix(),
			InfoType: wxcrypt.InfoTypeVerifyTicket, ComponentVerifyTicket: fmt.Sprintf("ticket@@@pad-test-%d", n)}))
	}
	t.Run("a frame padded to 32 bytes is accepted", func(t *testing.T) {
		msg := ticket(0)
		pad := 32 - (16+4+len(msg)+len(testComponentAppID))%32
		if code, body := post(framed(t, msg, pad)); code != 200 || body != "success" {
			t.Fatalf("%d %q", code, body)
		}
	})
	t.Run("the same frame under a forged signature is refused", func(t *testing.T) {
		msg := ticket(1)
		pad := 32 - (16+4+len(msg)+len(testComponentAppID))%32
		if code, body := postSigned("not-the-component-token", framed(t, msg, pad)); code != 401 || body == "success" {
			t.Fatalf("%d %q, want 401", code, body)
		}
	})
	for pad := 33; pad <= 48; pad++ {
		t.Run(fmt.Sprintf("pad %d", pad), func(t *testing.T) {
			if code, body := post(framed(t, ticket(pad), pad)); code != 400 || body == "success" {
				t.Fatalf("%d %q, want 400", code, body)
			}
		})
	}
}
