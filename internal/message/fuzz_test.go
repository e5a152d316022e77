package message

import (
	"encoding/json"
	"testing"
)

// FuzzParse: whatever decrypted bytes arrive, Parse answers an error or a
// message with its required fields, never panics, and the message's
// webhook data always encodes as JSON.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>1</MsgId></xml>`,
		`<xml><FromUserName>o</FromUserName><MsgType>event</MsgType><Event>scancode_push</Event><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo></xml>`,
		`<xml><FromUserName>o</FromUserName><MsgType>event</MsgType><SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum>a</PicMd5Sum></item><item><PicMd5Sum>b</PicMd5Sum></item></PicList></SendPicsInfo></xml>`,
		`<!DOCTYPE x [<!ENTITY a "a">]><xml>&a;</xml>`,
		`<xml><FromUserName>o</FromUserName><MsgType>text</MsgType><Content>]]&gt;</Content></xml>`,
		"<xml><FromUserName>\xff</FromUserName><MsgType>text</MsgType></xml>",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, plain []byte) {
		m, err := Parse(plain)
		if err != nil {
			return
		}
		if m.MsgType == "" || m.FromUserName == "" || len(m.Fields) > maxFields {
			t.Fatalf("Parse accepted %q as %+v", plain, m)
		}
		if _, err := json.Marshal(m.Data()); err != nil {
			t.Fatalf("Data of %q does not encode: %v", plain, err)
		}
		if m.DedupeKey() == "" {
			t.Fatalf("empty dedupe key for %q", plain)
		}
	})
}
