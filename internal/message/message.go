// Package message is the platform's policy for the message and event
// receive URL of authorized accounts (docs/wechat.md, "Messages and events
// for authorized accounts"): which pushes are refused, which are answered
// by the platform itself (WeChat's full-network release test), and which
// are queued for the tenants bound to the account as message.received
// events. The HTTP handler only reads the body and writes the Outcome.
package message

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// The MsgType values WeChat documents for a follower's messages and the
// account's events.
const (
	TypeText       = "text"
	TypeImage      = "image"
	TypeVoice      = "voice"
	TypeVideo      = "video"
	TypeShortVideo = "shortvideo"
	TypeLocation   = "location"
	TypeLink       = "link"
	TypeEvent      = "event"
)

// knownTypes bounds the msg_type metric label.
var knownTypes = map[string]bool{
	TypeText: true, TypeImage: true, TypeVoice: true, TypeVideo: true, TypeShortVideo: true,
	TypeLocation: true, TypeLink: true, TypeEvent: true,
}

// maxFields bounds the fields one message may carry; WeChat's richest
// event (a menu's pic_weixin with its list) has about twenty.
const maxFields = 128

// Field is one decrypted element of a message, in document order. A
// nested element (ScanCodeInfo, SendLocationInfo, …) contributes its
// leaves, each under its own name.
type Field struct {
	Name  string
	Value string
}

// Message is a decrypted message or event pushed for an authorized
// account. The common fields are parsed out; Fields holds every element,
// including those of types this package has no name for.
type Message struct {
	ToUserName   string // the account's original id, gh_…
	FromUserName string // the follower's openid
	CreateTime   int64
	MsgType      string
	MsgID        string // messages: MsgId; events carry none
	Content      string // text
	Event        string // events: subscribe, CLICK, LOCATION, …
	EventKey     string
	Fields       []Field
}

// Parse reads a decrypted message: an <xml> root with a MsgType and a
// FromUserName. It refuses XML it cannot read, another root, directives
// (no DTD, so no entity expansion), and more than maxFields fields.
func Parse(plain []byte) (Message, error) {
	dec := xml.NewDecoder(bytes.NewReader(plain))
	dec.Strict = true
	type open struct {
		name string
		kids bool // it holds elements: a container, not a field
	}
	var (
		m     Message
		stack []open
		text  strings.Builder
		root  bool
	)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Message{}, fmt.Errorf("message: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 {
				if root || t.Name.Local != "xml" {
					return Message{}, fmt.Errorf("message: root element must be one <xml>, got <%s>", t.Name.Local)
				}
				root = true
			}
			if len(stack) > 0 {
				stack[len(stack)-1].kids = true
			}
			stack = append(stack, open{name: t.Name.Local})
			text.Reset()
		case xml.CharData:
			if len(stack) > 1 {
				text.Write(t)
			}
		case xml.EndElement:
			el := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if len(stack) == 0 || el.kids {
				text.Reset()
				continue
			}
			if len(m.Fields) == maxFields {
				return Message{}, fmt.Errorf("message: more than %d fields", maxFields)
			}
			m.Fields = append(m.Fields, Field{Name: el.name, Value: strings.TrimSpace(text.String())})
			text.Reset()
		case xml.Directive:
			return Message{}, fmt.Errorf("message: XML directives are not accepted")
		}
	}
	if !root {
		return Message{}, fmt.Errorf("message: no <xml> element")
	}
	for _, f := range m.Fields {
		switch f.Name {
		case "ToUserName":
			m.ToUserName = f.Value
		case "FromUserName":
			m.FromUserName = f.Value
		case "CreateTime":
			m.CreateTime, _ = strconv.ParseInt(f.Value, 10, 64)
		case "MsgType":
			m.MsgType = f.Value
		case "MsgId":
			m.MsgID = f.Value
		case "Content":
			m.Content = f.Value
		case "Event":
			m.Event = f.Value
		case "EventKey":
			m.EventKey = f.Value
		}
	}
	if m.MsgType == "" || m.FromUserName == "" {
		return Message{}, fmt.Errorf("message: MsgType and FromUserName are required")
	}
	return m, nil
}

// DedupeKey identifies a message across WeChat's retries: its MsgId, or
// for events (which have none) the follower, the CreateTime, the event and
// its key. The follower and CreateTime alone, as WeChat advises, would
// make two different events of one second (a subscribe by QR code and its
// SCAN, two menu clicks) one; the webhook event's id tells them apart the
// same way, so the receipt and the webhook agree.
func (m Message) DedupeKey() string {
	if m.MsgID != "" {
		return "id:" + m.MsgID
	}
	return "from:" + m.FromUserName + "|" + strconv.FormatInt(m.CreateTime, 10) + "|" + m.Event + "|" + m.EventKey
}

// TypeLabel is the message's type as a bounded metric label.
func (m Message) TypeLabel() string {
	if knownTypes[m.MsgType] {
		return m.MsgType
	}
	return "other"
}

// Data is the message as the data of a message.received webhook event
// (docs/api.md, "Webhooks"): every decrypted field in snake_case, with
// FromUserName as from_openid and the numeric fields as numbers.
func (m Message) Data() map[string]any {
	out := make(map[string]any, len(m.Fields))
	for _, f := range m.Fields {
		key := snake(f.Name)
		switch f.Name {
		case "FromUserName":
			key = "from_openid"
		case "ToUserName":
			key = "to_username"
		}
		if _, dup := out[key]; dup {
			continue // a repeated leaf (a list of pictures) keeps its first value
		}
		var v any = f.Value
		switch key {
		case "create_time":
			v = m.CreateTime
		}
		out[key] = v
	}
	return out
}

// snake turns WeChat's element names into snake_case: MsgId → msg_id,
// PicUrl → pic_url, Location_X → location_x, ToUserName → to_user_name.
func snake(name string) string {
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i > 0 && i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1])
			if (prevLower || nextLower) && b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TextReply renders the plaintext of a passive text reply to m: from the
// account to the follower.
func TextReply(m Message, createTime int64, content string) []byte {
	var b strings.Builder
	b.Grow(160 + len(content))
	b.WriteString("<xml><ToUserName>")
	cdata(&b, m.FromUserName)
	b.WriteString("</ToUserName><FromUserName>")
	cdata(&b, m.ToUserName)
	b.WriteString("</FromUserName><CreateTime>")
	b.WriteString(strconv.FormatInt(createTime, 10))
	b.WriteString("</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>")
	cdata(&b, content)
	b.WriteString("</Content></xml>")
	return []byte(b.String())
}

func cdata(b *strings.Builder, s string) {
	b.WriteString("<![CDATA[")
	b.WriteString(strings.ReplaceAll(s, "]]>", "]]]]><![CDATA[>"))
	b.WriteString("]]>")
}
