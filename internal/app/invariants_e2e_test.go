package app_test

import (
	"bytes"
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

// TestEventWithAPadAbove32IsRefused posts signed ticket events to a real
// gateway's event URL: a frame padded to WeChat's 32-byte block is
// accepted, the same frame with 33..48 consistent pad bytes is refused.
func TestEventWithAPadAbove32IsRefused(t *testing.T) {
	t.Parallel()
	st := newStack(t, stackOptions{})
	post := func(encrypt string) (int, string) {
		ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "4242"
		q := url.Values{"timestamp": {ts}, "nonce": {nonce}, "encrypt_type": {"aes"},
			"msg_signature": {wxcrypt.Signature("test-component-token", ts, nonce, encrypt)}}
		body := "<xml><AppId><![CDATA[" + testComponentAppID + "]]></AppId><Encrypt><![CDATA[" + encrypt + "]]></Encrypt></xml>"
		resp, err := st.client.Post(st.base()+"/wechat/events?"+q.Encode(), "text/xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
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
	for pad := 33; pad <= 48; pad++ {
		t.Run(fmt.Sprintf("pad %d", pad), func(t *testing.T) {
			if code, body := post(framed(t, ticket(pad), pad)); code != 400 || body == "success" {
				t.Fatalf("%d %q, want 400", code, body)
			}
		})
	}
}
