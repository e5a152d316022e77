package message

import (
	"reflect"
	"strings"
	"testing"
)

// TestParseEveryDocumentedType reads each message and event type WeChat
// documents, as WeChat sends it, and checks the common fields, the dedupe
// key and the webhook data.
func TestParseEveryDocumentedType(t *testing.T) {
	head := `<xml><ToUserName><![CDATA[gh_3c884a361561]]></ToUserName><FromUserName><![CDATA[oF1]]></FromUserName><CreateTime>1700000000</CreateTime>`
	for _, tc := range []struct {
		name      string
		body      string
		msgType   string
		dedupe    string
		wantData  map[string]any
		wantEvent string
	}{
		{"text", `<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好 <b>]]></Content><MsgId>1234567890123456</MsgId>`, TypeText, "id:1234567890123456",
			map[string]any{"content": "你好 <b>", "msg_id": "1234567890123456"}, ""},
		{"image", `<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://p/1.jpg]]></PicUrl><MediaId><![CDATA[m]]></MediaId><MsgId>2</MsgId>`, TypeImage, "id:2",
			map[string]any{"pic_url": "http://p/1.jpg", "media_id": "m"}, ""},
		{"voice", `<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[]]></Recognition><MsgId>3</MsgId>`, TypeVoice, "id:3",
			map[string]any{"format": "amr", "recognition": ""}, ""},
		{"video", `<MsgType><![CDATA[video]]></MsgType><MediaId><![CDATA[m]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId><MsgId>4</MsgId>`, TypeVideo, "id:4",
			map[string]any{"thumb_media_id": "t"}, ""},
		{"shortvideo", `<MsgType><![CDATA[shortvideo]]></MsgType><MediaId><![CDATA[m]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId><MsgId>5</MsgId>`, TypeShortVideo, "id:5",
			map[string]any{"media_id": "m"}, ""},
		{"location", `<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[位置]]></Label><MsgId>6</MsgId>`, TypeLocation, "id:6",
			map[string]any{"location_x": "23.134521", "location_y": "113.358803", "scale": "20", "label": "位置"}, ""},
		{"link", `<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[t]]></Title><Description><![CDATA[d]]></Description><Url><![CDATA[http://u]]></Url><MsgId>7</MsgId>`, TypeLink, "id:7",
			map[string]any{"title": "t", "url": "http://u"}, ""},
		{"subscribe by QR code", `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>`, TypeEvent, "from:oF1|1700000000|subscribe|qrscene_123",
			map[string]any{"event": "subscribe", "event_key": "qrscene_123", "ticket": "TICKET"}, "subscribe"},
		{"LOCATION", `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event><Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>`, TypeEvent, "from:oF1|1700000000|LOCATION|",
			map[string]any{"latitude": "23.137466", "precision": "119.385040"}, "LOCATION"},
		{"scancode_push (nested)", `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[scancode_push]]></Event><EventKey><![CDATA[6]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>`, TypeEvent, "from:oF1|1700000000|scancode_push|6",
			map[string]any{"scan_type": "qrcode", "scan_result": "1"}, "scancode_push"},
		{"TEMPLATESENDJOBFINISH", `<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID><Status><![CDATA[success]]></Status>`, TypeEvent, "from:oF1|1700000000|TEMPLATESENDJOBFINISH|",
			map[string]any{"msg_id": "200163836", "status": "success"}, "TEMPLATESENDJOBFINISH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(head + tc.body + `</xml>`))
			if err != nil {
				t.Fatalf("Parse: got %v, want no error", err)
			}
			if m.MsgType != tc.msgType || m.FromUserName != "oF1" || m.ToUserName != "gh_3c884a361561" || m.CreateTime != 1700000000 || m.Event != tc.wantEvent {
				t.Fatalf("got %+v, want type %s from oF1 to gh_3c884a361561 at 1700000000, event %q", m, tc.msgType, tc.wantEvent)
			}
			if got := m.DedupeKey(); got != tc.dedupe {
				t.Fatalf("DedupeKey: got %q, want %q", got, tc.dedupe)
			}
			data := m.Data()
			if data["from_openid"] != "oF1" || data["create_time"] != int64(1700000000) || data["msg_type"] != tc.msgType {
				t.Fatalf("Data: got %v, want from_openid, create_time and msg_type", data)
			}
			for k, v := range tc.wantData {
				if !reflect.DeepEqual(data[k], v) {
					t.Fatalf("Data[%q]: got %#v, want %#v (all: %v)", k, data[k], v, data)
				}
			}
		})
	}
}

// TestParseRefuses: what is not a WeChat message is an error, never a panic
// or an expanded entity.
func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"empty", ``},
		{"not XML", `hello`},
		{"another root", `<msg><MsgType>text</MsgType><FromUserName>o</FromUserName></msg>`},
		{"two roots", `<xml><MsgType>text</MsgType><FromUserName>o</FromUserName></xml><xml/>`},
		{"no MsgType", `<xml><FromUserName>o</FromUserName></xml>`},
		{"no FromUserName", `<xml><MsgType>text</MsgType></xml>`},
		{"entity bomb", `<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><xml><MsgType>text</MsgType><FromUserName>&b;</FromUserName></xml>`},
		{"too many fields", `<xml><MsgType>text</MsgType><FromUserName>o</FromUserName>` + strings.Repeat(`<F>1</F>`, maxFields) + `</xml>`},
		{"unclosed", `<xml><MsgType>text</MsgType><FromUserName>o</FromUserName>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := Parse([]byte(tc.body)); err == nil {
				t.Fatalf("Parse: got %+v, want an error", m)
			}
		})
	}
}

// TestTextReplyGoesBackToTheFollower: a passive reply is from the account
// to the follower and reads back as a text message with the content.
func TestTextReplyGoesBackToTheFollower(t *testing.T) {
	in := Message{ToUserName: "gh_acc", FromUserName: "oF]]>1"}
	r, err := Parse(TextReply(in, 1700000001, "TESTCOMPONENT_MSG_TYPE_TEXT_callback"))
	if err != nil {
		t.Fatal(err)
	}
	if r.ToUserName != "oF]]>1" || r.FromUserName != "gh_acc" || r.MsgType != TypeText || r.Content != "TESTCOMPONENT_MSG_TYPE_TEXT_callback" || r.CreateTime != 1700000001 {
		t.Fatalf("got %+v, want a text from gh_acc to oF]]>1", r)
	}
}

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{
		"MsgId": "msg_id", "MsgID": "msg_id", "PicUrl": "pic_url", "Location_X": "location_x", "ToUserName": "to_user_name",
		"EventKey": "event_key", "ThumbMediaId": "thumb_media_id", "Content": "content", "URL": "url",
	} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q): got %q, want %q", in, got, want)
		}
	}
}
