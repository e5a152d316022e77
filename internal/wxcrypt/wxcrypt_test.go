package wxcrypt

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Official WXBizMsgCrypt sample (docs/wechat.md, "Message crypto").
const (
	vecToken     = "spamtest"
	vecKey       = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	vecAppID     = "wx2c2769f8efd9abc2"
	vecTimestamp = "1409735669"
	vecNonce     = "1320562132"
	vecMsgSig    = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
	vecURLSig    = "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
	vecEncrypt   = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)

func mustNew(t testing.TB, appid string) *Crypter {
	t.Helper()
	c, err := New(vecToken, vecKey, appid)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestDecryptOfficialVector(t *testing.T) {
	c := mustNew(t, vecAppID)
	if got := Signature(vecToken, vecTimestamp, vecNonce); got != vecURLSig {
		t.Errorf("URL signature = %s, want %s", got, vecURLSig)
	}
	if got := c.SignURL(vecTimestamp, vecNonce); got != vecURLSig {
		t.Errorf("SignURL = %s, want %s", got, vecURLSig)
	}
	if got := c.Sign(vecTimestamp, vecNonce, vecEncrypt); got != vecMsgSig {
		t.Errorf("msg_signature = %s, want %s", got, vecMsgSig)
	}
	if !c.Verify(vecMsgSig, vecTimestamp, vecNonce, vecEncrypt) {
		t.Error("Verify(official vector) = false")
	}
	msg, err := c.Decrypt(vecEncrypt)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if len(msg) != 280 {
		t.Errorf("len(msg) = %d, want 280", len(msg))
	}
	if !bytes.HasPrefix(msg, []byte("<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>")) {
		t.Errorf("msg prefix: %q", msg[:60])
	}
	if !bytes.Contains(msg, []byte("<Content><![CDATA[abcdteT]]></Content>")) {
		t.Errorf("msg lacks the content: %q", msg)
	}
}

func TestEncryptOfficialVector(t *testing.T) {
	c := mustNew(t, "wxb11529c136998cb6")
	got, err := c.EncryptWithRandom([]byte("aaaabbbbccccdddd"), []byte("我是中文abcd123"))
	if err != nil {
		t.Fatal(err)
	}
	const want = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
	if got != want {
		t.Errorf("Encrypt = %s\nwant      %s", got, want)
	}
	back, err := c.Decrypt(got)
	if err != nil || string(back) != "我是中文abcd123" {
		t.Errorf("Decrypt(vector) = %q, %v", back, err)
	}
}

func TestNewValidatesKey(t *testing.T) {
	tests := []struct {
		name, token, key, appid string
	}{
		{"short key", "t", vecKey[:42], "wx1"},
		{"long key", "t", vecKey + "A", "wx1"},
		{"not base64", "t", strings.Repeat("!", 43), "wx1"},
		{"empty token", "", vecKey, "wx1"},
		{"empty appid", "t", vecKey, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.token, tt.key, tt.appid); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestRoundTripAllPadLengths(t *testing.T) {
	c := mustNew(t, "wx1234567890abcdef")
	for n := 0; n <= 70; n++ { // crosses several 32-byte pad boundaries, incl. pad == 32
		msg := bytes.Repeat([]byte{'x'}, n)
		enc, err := c.Encrypt(msg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decrypt(enc)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("n=%d: Decrypt = %q, %v", n, got, err)
		}
	}
	a, _ := c.Encrypt([]byte("same"))
	b, _ := c.Encrypt([]byte("same"))
	if a == b {
		t.Error("two encryptions of the same message are equal: random prefix not random")
	}
}

// encryptRaw encrypts an arbitrary plaintext block sequence with c's key, to
// build hostile ciphertexts that decrypt to chosen bytes.
func encryptRaw(t *testing.T, c *Crypter, plain []byte) string {
	t.Helper()
	if len(plain)%16 != 0 {
		t.Fatalf("encryptRaw: %d bytes is not whole blocks", len(plain))
	}
	buf := append([]byte(nil), plain...)
	cbcEncrypt(c, buf)
	return base64.StdEncoding.EncodeToString(buf)
}

func TestDecryptErrors(t *testing.T) {
	c := mustNew(t, vecAppID)
	other := mustNew(t, "wxotherappid000000")
	good, _ := c.Encrypt([]byte("<xml><InfoType>x</InfoType></xml>"))
	raw, _ := base64.StdEncoding.DecodeString(good)

	// framed builds random(16) ‖ length ‖ rest ‖ pad×pad.
	framed := func(msgLen uint32, rest string, pad int) []byte {
		p := make([]byte, 16, 96)
		p = append(p, byte(msgLen>>24), byte(msgLen>>16), byte(msgLen>>8), byte(msgLen))
		p = append(p, rest...)
		for i := 0; i < pad; i++ {
			p = append(p, byte(pad))
		}
		return p
	}
	// 16 bytes then 16 bytes of pad 16: content is shorter than the 20-byte header.
	short := append(make([]byte, 16), bytes.Repeat([]byte{16}, 16)...)
	tests := []struct {
		name    string
		encrypt string
		want    error
	}{
		{"bad base64", "not*base64", ErrBadBase64},
		{"empty", "", ErrBlockSize},
		{"not whole blocks", base64.StdEncoding.EncodeToString(raw[:len(raw)-3]), ErrBlockSize},
		{"truncated by a block", base64.StdEncoding.EncodeToString(raw[:len(raw)-16]), ErrMalformed},
		{"pad byte zero", encryptRaw(t, c, append(make([]byte, 31), 0)), ErrBadPadding},
		{"pad byte 33", encryptRaw(t, c, append(make([]byte, 63), 33)), ErrBadPadding},
		{"inconsistent pad", encryptRaw(t, c, append(make([]byte, 29), 9, 3, 3)), ErrBadPadding},
		{"too short for header", encryptRaw(t, c, short), ErrBadLength},
		{"length past end", encryptRaw(t, c, framed(1000, vecAppID[:12], 32)), ErrBadLength},
		{"length one past end", encryptRaw(t, c, framed(13, vecAppID[:12], 32)), ErrBadLength},
		{"length with wrong appid", encryptRaw(t, c, framed(4, "abcd"+vecAppID[:8], 32)), ErrAppIDMismatch},
		{"wrong appid", func() string { e, _ := other.Encrypt([]byte("hi")); return e }(), ErrAppIDMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := c.Decrypt(tt.encrypt)
			if err == nil {
				t.Fatalf("Decrypt succeeded: %q", msg)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "wxcrypt: ") {
				t.Errorf("error without package prefix: %v", err)
			}
		})
	}
	// The specific malformed errors are distinct from each other and from the appid error.
	distinct := []error{ErrBadBase64, ErrBlockSize, ErrBadPadding, ErrBadLength, ErrAppIDMismatch, ErrSignature}
	for i, a := range distinct {
		for j, b := range distinct {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v matches %v", a, b)
			}
		}
	}
	if errors.Is(ErrAppIDMismatch, ErrMalformed) {
		t.Error("ErrAppIDMismatch must not match ErrMalformed")
	}
}

// TestPadOutsideOneTo32IsRefused decrypts frames that are well formed in
// every other way (random, length prefix, message, the Crypter's appid)
// and whose pad bytes are all equal to the pad length: only the bound on
// the pad length (WeChat pads to 32-byte blocks, so 1..32) can refuse them.
func TestPadOutsideOneTo32IsRefused(t *testing.T) {
	c := mustNew(t, vecAppID)
	// frame is random(16) ‖ length ‖ msg ‖ appid ‖ pad×pad, with msg sized
	// so that the whole is a number of AES blocks.
	frame := func(pad int) []byte {
		n := headerSize + len(c.appid) + pad
		msg := bytes.Repeat([]byte{'m'}, 16+(16-n%16)%16)
		p := make([]byte, RandomSize, n+len(msg))
		p = append(p, byte(len(msg)>>24), byte(len(msg)>>16), byte(len(msg)>>8), byte(len(msg)))
		p = append(p, msg...)
		p = append(p, c.appid...)
		return append(p, bytes.Repeat([]byte{byte(pad)}, pad)...)
	}
	// The frame builder is right: with a pad of 1..32 the same frames open.
	for _, pad := range []int{1, 16, 31, 32} {
		if got, err := c.Decrypt(encryptRaw(t, c, frame(pad))); err != nil || len(got) < 16 {
			t.Fatalf("pad %d: a well-formed frame does not open: %v", pad, err)
		}
	}
	for pad := 33; pad <= 48; pad++ {
		t.Run(fmt.Sprintf("pad %d", pad), func(t *testing.T) {
			msg, err := c.Decrypt(encryptRaw(t, c, frame(pad)))
			if !errors.Is(err, ErrBadPadding) {
				t.Fatalf("Decrypt = %q, %v; want ErrBadPadding", msg, err)
			}
		})
	}
	t.Run("pad 0", func(t *testing.T) {
		// Nothing but the appid after the message, whose last byte is 0.
		zero := mustNew(t, "wxzeroterminated\x00")
		n := headerSize + len(zero.appid)
		msg := bytes.Repeat([]byte{'m'}, 16+(16-n%16)%16)
		p := make([]byte, RandomSize, n+len(msg))
		p = append(p, byte(len(msg)>>24), byte(len(msg)>>16), byte(len(msg)>>8), byte(len(msg)))
		p = append(append(p, msg...), zero.appid...)
		if got, err := zero.Decrypt(encryptRaw(t, zero, p)); !errors.Is(err, ErrBadPadding) {
			t.Fatalf("Decrypt = %q, %v; want ErrBadPadding", got, err)
		}
	})
}

func TestTamperNeverPanicsAndFailsVerify(t *testing.T) {
	c := mustNew(t, vecAppID)
	raw, _ := base64.StdEncoding.DecodeString(vecEncrypt)
	for i := range raw {
		mut := append([]byte(nil), raw...)
		mut[i] ^= 0x01
		enc := base64.StdEncoding.EncodeToString(mut)
		if c.Verify(vecMsgSig, vecTimestamp, vecNonce, enc) {
			t.Fatalf("byte %d: tampered message verifies", i)
		}
		msg, err := c.Decrypt(enc)
		// CBC without a MAC: flipping a bit in block k garbles block k and
		// flips the same bit in block k+1, so some flips still decrypt; the
		// signature is what authenticates. Those that decrypt must differ.
		if err == nil && bytes.Equal(msg, mustDecrypt(t, c, vecEncrypt)) && i < len(raw)-16 {
			t.Fatalf("byte %d: tampered message decrypts to the original", i)
		}
	}
	body := []byte("<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[" + vecEncrypt + "]]></Encrypt></xml>")
	if _, err := c.Open(body, vecMsgSig, vecTimestamp, vecNonce); err != nil {
		t.Fatalf("Open(official): %v", err)
	}
	if _, err := c.Open(body, vecMsgSig, vecTimestamp, "1320562133"); !errors.Is(err, ErrSignature) {
		t.Fatalf("Open(bad nonce) = %v, want ErrSignature", err)
	}
	if _, err := c.Open([]byte("garbage"), vecMsgSig, vecTimestamp, vecNonce); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Open(garbage) = %v, want ErrMalformed", err)
	}
}

func mustDecrypt(t *testing.T, c *Crypter, enc string) []byte {
	t.Helper()
	m, err := c.Decrypt(enc)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestVerify(t *testing.T) {
	c := mustNew(t, vecAppID)
	tests := []struct {
		name, sig, ts, nonce, enc string
		want                      bool
	}{
		{"ok", vecMsgSig, vecTimestamp, vecNonce, vecEncrypt, true},
		{"upper-case hex", strings.ToUpper(vecMsgSig), vecTimestamp, vecNonce, vecEncrypt, false},
		{"url signature", vecURLSig, vecTimestamp, vecNonce, vecEncrypt, false},
		{"empty", "", vecTimestamp, vecNonce, vecEncrypt, false},
		{"other timestamp", vecMsgSig, "1409735670", vecNonce, vecEncrypt, false},
		{"other encrypt", vecMsgSig, vecTimestamp, vecNonce, vecEncrypt[1:], false},
	}
	for _, tt := range tests {
		if got := c.Verify(tt.sig, tt.ts, tt.nonce, tt.enc); got != tt.want {
			t.Errorf("%s: Verify = %v, want %v", tt.name, got, tt.want)
		}
	}
	// Signature sorts its parts: order does not matter.
	if Signature("b", "a", "c") != Signature("c", "b", "a") {
		t.Error("Signature depends on argument order")
	}
}

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    Envelope
		wantErr bool
	}{
		{"AppId form", "<xml><AppId><![CDATA[wxcomp]]></AppId><Encrypt><![CDATA[abc=]]></Encrypt></xml>", Envelope{AppID: "wxcomp", Encrypt: "abc="}, false},
		{"ToUserName form", "<xml>\n  <ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n  <Encrypt><![CDATA[abc=]]></Encrypt>\n</xml>", Envelope{ToUserName: "gh_10f6c3c3ac5a", Encrypt: "abc="}, false},
		{"plain text values", "<xml><AppId>wxcomp</AppId><Encrypt>abc=</Encrypt></xml>", Envelope{AppID: "wxcomp", Encrypt: "abc="}, false},
		{"no Encrypt", "<xml><AppId>wxcomp</AppId></xml>", Envelope{}, true},
		{"empty Encrypt", "<xml><AppId>wxcomp</AppId><Encrypt><![CDATA[]]></Encrypt></xml>", Envelope{}, true},
		{"not xml", `{"Encrypt":"abc"}`, Envelope{}, true},
		{"other root", "<root><Encrypt>abc</Encrypt></root>", Envelope{}, true},
		{"empty", "", Envelope{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnvelope([]byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseEnvelope = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestSealEventOpens(t *testing.T) {
	c := mustNew(t, "wxcomponent0000001")
	ev := Event{AppID: "wxcomponent0000001", CreateTime: 1413192605, InfoType: InfoTypeVerifyTicket, ComponentVerifyTicket: "ticket@@@abc"}
	body, sig, err := c.SealEvent(EncodeEvent(ev), "1413192605", "nonce1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(body, []byte("<xml><AppId><![CDATA[wxcomponent0000001]]></AppId><Encrypt><![CDATA[")) || !bytes.HasSuffix(body, []byte("]]></Encrypt></xml>")) {
		t.Fatalf("body = %s", body)
	}
	env, err := ParseEnvelope(body)
	if err != nil || env.AppID != "wxcomponent0000001" {
		t.Fatalf("ParseEnvelope = %+v, %v", env, err)
	}
	if sig != c.Sign("1413192605", "nonce1", env.Encrypt) {
		t.Fatal("SealEvent signature differs from Sign")
	}
	plain, err := c.Open(body, sig, "1413192605", "nonce1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseEvent(plain)
	if err != nil || got != ev {
		t.Fatalf("ParseEvent = %+v, %v; want %+v", got, err, ev)
	}
}

func TestEventEncodeParse(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"ticket", Event{AppID: "wxc", CreateTime: 1, InfoType: InfoTypeVerifyTicket, ComponentVerifyTicket: "ticket@@@x"},
			"<xml><AppId><![CDATA[wxc]]></AppId><CreateTime>1</CreateTime><InfoType><![CDATA[component_verify_ticket]]></InfoType><ComponentVerifyTicket><![CDATA[ticket@@@x]]></ComponentVerifyTicket></xml>"},
		{"authorized", Event{AppID: "wxc", CreateTime: 2, InfoType: InfoTypeAuthorized, AuthorizerAppid: "wxa", AuthorizationCode: "code", AuthorizationCodeExpiredTime: 602, PreAuthCode: "pre"},
			"<xml><AppId><![CDATA[wxc]]></AppId><CreateTime>2</CreateTime><InfoType><![CDATA[authorized]]></InfoType><AuthorizerAppid><![CDATA[wxa]]></AuthorizerAppid><AuthorizationCode><![CDATA[code]]></AuthorizationCode><AuthorizationCodeExpiredTime>602</AuthorizationCodeExpiredTime><PreAuthCode><![CDATA[pre]]></PreAuthCode></xml>"},
		{"updateauthorized without pre-auth code", Event{AppID: "wxc", CreateTime: 3, InfoType: InfoTypeUpdateAuthorized, AuthorizerAppid: "wxa", AuthorizationCode: "code", AuthorizationCodeExpiredTime: 603},
			"<xml><AppId><![CDATA[wxc]]></AppId><CreateTime>3</CreateTime><InfoType><![CDATA[updateauthorized]]></InfoType><AuthorizerAppid><![CDATA[wxa]]></AuthorizerAppid><AuthorizationCode><![CDATA[code]]></AuthorizationCode><AuthorizationCodeExpiredTime>603</AuthorizationCodeExpiredTime><PreAuthCode><![CDATA[]]></PreAuthCode></xml>"},
		{"unauthorized", Event{AppID: "wxc", CreateTime: 4, InfoType: InfoTypeUnauthorized, AuthorizerAppid: "wxa"},
			"<xml><AppId><![CDATA[wxc]]></AppId><CreateTime>4</CreateTime><InfoType><![CDATA[unauthorized]]></InfoType><AuthorizerAppid><![CDATA[wxa]]></AuthorizerAppid></xml>"},
		{"zeros and empties where WeChat always sends the field", Event{AppID: "wxc", InfoType: InfoTypeAuthorized},
			"<xml><AppId><![CDATA[wxc]]></AppId><CreateTime>0</CreateTime><InfoType><![CDATA[authorized]]></InfoType><AuthorizerAppid><![CDATA[]]></AuthorizerAppid><AuthorizationCode><![CDATA[]]></AuthorizationCode><AuthorizationCodeExpiredTime>0</AuthorizationCodeExpiredTime><PreAuthCode><![CDATA[]]></PreAuthCode></xml>"},
		{"unauthorized without its appid", Event{AppID: "wxc", CreateTime: 6, InfoType: InfoTypeUnauthorized},
			"<xml><AppId><![CDATA[wxc]]></AppId><CreateTime>6</CreateTime><InfoType><![CDATA[unauthorized]]></InfoType><AuthorizerAppid><![CDATA[]]></AuthorizerAppid></xml>"},
		{"cdata breaker", Event{AppID: "wxc", CreateTime: 5, InfoType: "notify_x", AuthorizerAppid: "a]]>b"},
			"<xml><AppId><![CDATA[wxc]]></AppId><CreateTime>5</CreateTime><InfoType><![CDATA[notify_x]]></InfoType><AuthorizerAppid><![CDATA[a]]]]><![CDATA[>b]]></AuthorizerAppid></xml>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EncodeEvent(tt.ev)
			if string(got) != tt.want {
				t.Fatalf("EncodeEvent =\n%s\nwant\n%s", got, tt.want)
			}
			back, err := ParseEvent(got)
			if err != nil || back != tt.ev {
				t.Fatalf("ParseEvent = %+v, %v", back, err)
			}
		})
	}
}

func TestParseEventWeChatDocSample(t *testing.T) {
	// As printed in WeChat's docs: plain values, whitespace, no CDATA.
	doc := `<xml>
<AppId>some_appid</AppId>
<CreateTime>1413192605 </CreateTime>
<InfoType>component_verify_ticket</InfoType>
<ComponentVerifyTicket>some_verify_ticket</ComponentVerifyTicket>
</xml>`
	ev, err := ParseEvent([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := Event{AppID: "some_appid", CreateTime: 1413192605, InfoType: InfoTypeVerifyTicket, ComponentVerifyTicket: "some_verify_ticket"}
	if ev != want {
		t.Fatalf("got %+v", ev)
	}
	bad := []string{"", "<xml></xml>", "<xml><InfoType>x</InfoType>", "<xml><CreateTime>abc</CreateTime><InfoType>x</InfoType></xml>", "<foo><InfoType>x</InfoType></foo>"}
	for _, b := range bad {
		if _, err := ParseEvent([]byte(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseEvent(%q) err = %v, want ErrMalformed", b, err)
		}
	}
}

func TestSecretsRedacted(t *testing.T) {
	c := mustNew(t, vecAppID)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "crypter", c)
	ev := Event{InfoType: InfoTypeVerifyTicket, ComponentVerifyTicket: "ticket@@@SECRET", AuthorizationCode: "SECRETCODE"}
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "event", ev)
	out := fmt.Sprintf("%v %+v %#v %s %v %+v %#v", c, c, c, c, ev, ev, ev) + buf.String()
	for _, secret := range []string{vecToken, vecKey, "SECRET"} {
		if strings.Contains(out, secret) {
			t.Errorf("output reveals %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, vecAppID) {
		t.Errorf("output lacks the appid: %s", out)
	}
	t.Run("a nil Crypter prints as nil", func(t *testing.T) {
		var nilc *Crypter
		if got := nilc.String(); got != "wxcrypt.Crypter(nil)" {
			t.Errorf("String = %q", got)
		}
		if got := nilc.LogValue().String(); got != "nil" {
			t.Errorf("LogValue = %q", got)
		}
	})
	t.Run("an event shows which secrets it carries, not their values", func(t *testing.T) {
		s := Event{InfoType: InfoTypeVerifyTicket, ComponentVerifyTicket: "t"}.String()
		if !strings.Contains(s, "ComponentVerifyTicket: [redacted]") || !strings.Contains(s, `AuthorizationCode: ""`) {
			t.Errorf("String = %s", s)
		}
		with := Event{InfoType: InfoTypeUnauthorized, AuthorizerAppid: "wxa"}.LogValue().String()
		without := Event{InfoType: InfoTypeUnauthorized}.LogValue().String()
		if !strings.Contains(with, "authorizer_appid=wxa") || strings.Contains(without, "authorizer_appid") {
			t.Errorf("LogValue = %s / %s", with, without)
		}
	})
}

func BenchmarkDecrypt(b *testing.B) {
	c := mustNew(b, vecAppID)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decrypt(vecEncrypt); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSealMessageOpens: an account message's envelope names the account
// (ToUserName), not the component, and opens with the platform's Crypter.
func TestSealMessageOpens(t *testing.T) {
	c := mustNew(t, "wxcomponent0000001")
	plain := []byte("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><MsgType><![CDATA[text]]></MsgType></xml>")
	body, sig, err := c.SealMessage(plain, "gh_1", "1700000000", "n1")
	if err != nil {
		t.Fatal(err)
	}
	env, err := ParseEnvelope(body)
	if err != nil || env.ToUserName != "gh_1" || env.AppID != "" {
		t.Fatalf("ParseEnvelope: got %+v, %v; want ToUserName gh_1 and no AppId", env, err)
	}
	got, err := c.Open(body, sig, "1700000000", "n1")
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open: got %q, %v; want the plaintext", got, err)
	}
}

// TestReplyEnvelope: a passive reply carries its own timestamp, nonce and
// signature; WeChat's side opens it, and refuses one whose signature does
// not cover what it carries.
func TestReplyEnvelope(t *testing.T) {
	c := mustNew(t, "wxcomponent0000001")
	plain := []byte("<xml><Content><![CDATA[TESTCOMPONENT_MSG_TYPE_TEXT_callback]]></Content></xml>")
	body, err := c.SealReply(plain, "1700000001", "n2")
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"<xml><Encrypt><![CDATA[", "</Encrypt><MsgSignature><![CDATA[", "<TimeStamp>1700000001</TimeStamp><Nonce><![CDATA[n2]]></Nonce></xml>"} {
		if !bytes.Contains(body, []byte(part)) {
			t.Fatalf("reply %s: want it to contain %s", body, part)
		}
	}
	got, err := c.OpenReply(body)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("OpenReply: got %q, %v; want the plaintext", got, err)
	}
	for _, tc := range []struct {
		name string
		body []byte
		want error
	}{
		{"another timestamp", bytes.Replace(body, []byte("1700000001"), []byte("1700000002"), 1), ErrSignature},
		{"another nonce", bytes.Replace(body, []byte("[n2]"), []byte("[n3]"), 1), ErrSignature},
		{"signed with another token", mustReply(t, "othertoken", plain), ErrSignature},
		{"not XML", []byte("success"), ErrMalformed},
		{"no Encrypt", []byte("<xml><TimeStamp>1</TimeStamp><Nonce>2</Nonce></xml>"), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.OpenReply(tc.body); !errors.Is(err, tc.want) {
				t.Fatalf("OpenReply: got %v, want %v", err, tc.want)
			}
		})
	}
}

func mustReply(t *testing.T, token string, plain []byte) []byte {
	t.Helper()
	o, err := New(token, vecKey, "wxcomponent0000001")
	if err != nil {
		t.Fatal(err)
	}
	b, err := o.SealReply(plain, "1700000001", "n2")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
