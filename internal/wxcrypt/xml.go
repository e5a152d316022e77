package wxcrypt

import (
	"encoding/xml"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// Envelope is the outer XML of a pushed message:
// <xml><AppId>…</AppId><ToUserName>…</ToUserName><Encrypt>…</Encrypt></xml>.
// Platform events carry AppId; messages for an account carry ToUserName.
type Envelope struct {
	AppID      string
	ToUserName string
	Encrypt    string
}

type xmlEnvelope struct {
	XMLName    xml.Name `xml:"xml"`
	AppID      string   `xml:"AppId"`
	ToUserName string   `xml:"ToUserName"`
	Encrypt    string   `xml:"Encrypt"`
}

// ParseEnvelope parses the outer XML body of a pushed message. It answers an
// error matching ErrMalformed if the body is not an <xml> document or has no
// Encrypt value.
func ParseEnvelope(body []byte) (Envelope, error) {
	var x xmlEnvelope
	if err := xml.Unmarshal(body, &x); err != nil {
		return Envelope{}, fmt.Errorf("%w: envelope: %w", ErrMalformed, err)
	}
	env := Envelope{
		AppID:      strings.TrimSpace(x.AppID),
		ToUserName: strings.TrimSpace(x.ToUserName),
		Encrypt:    strings.TrimSpace(x.Encrypt),
	}
	if env.Encrypt == "" {
		return Envelope{}, fmt.Errorf("%w: envelope has no Encrypt", ErrMalformed)
	}
	return env, nil
}

// InfoType values of the platform events WeChat pushes (docs/wechat.md, "Events").
const (
	InfoTypeVerifyTicket     = "component_verify_ticket"
	InfoTypeAuthorized       = "authorized"
	InfoTypeUpdateAuthorized = "updateauthorized"
	InfoTypeUnauthorized     = "unauthorized"
)

// Event is a decrypted platform event (docs/wechat.md, "Events"). Fields that an
// InfoType does not carry are left empty.
type Event struct {
	AppID                        string `xml:"AppId"`
	CreateTime                   int64  `xml:"CreateTime"`
	InfoType                     string `xml:"InfoType"`
	ComponentVerifyTicket        string `xml:"ComponentVerifyTicket"`
	AuthorizerAppid              string `xml:"AuthorizerAppid"`
	AuthorizationCode            string `xml:"AuthorizationCode"`
	AuthorizationCodeExpiredTime int64  `xml:"AuthorizationCodeExpiredTime"`
	PreAuthCode                  string `xml:"PreAuthCode"`
}

type xmlEvent struct {
	XMLName xml.Name `xml:"xml"`
	Event
}

// ParseEvent parses a decrypted platform event. It answers an error matching
// ErrMalformed on XML that cannot be parsed, a root element other than <xml>,
// or a missing InfoType.
func ParseEvent(plain []byte) (Event, error) {
	var x xmlEvent
	if err := xml.Unmarshal(plain, &x); err != nil {
		return Event{}, fmt.Errorf("%w: event: %w", ErrMalformed, err)
	}
	e := x.Event
	e.AppID = strings.TrimSpace(e.AppID)
	e.InfoType = strings.TrimSpace(e.InfoType)
	e.ComponentVerifyTicket = strings.TrimSpace(e.ComponentVerifyTicket)
	e.AuthorizerAppid = strings.TrimSpace(e.AuthorizerAppid)
	e.AuthorizationCode = strings.TrimSpace(e.AuthorizationCode)
	e.PreAuthCode = strings.TrimSpace(e.PreAuthCode)
	if e.InfoType == "" {
		return Event{}, fmt.Errorf("%w: event has no InfoType", ErrMalformed)
	}
	return e, nil
}

// EncodeEvent renders an event as the plaintext XML WeChat encrypts, with
// strings in CDATA sections. authorized and updateauthorized events always
// carry all four authorization fields (PreAuthCode may be empty); other
// events carry only their non-empty fields.
func EncodeEvent(e Event) []byte {
	var b strings.Builder
	b.Grow(256)
	b.WriteString("<xml>")
	str := func(tag, v string, always bool) {
		if v == "" && !always {
			return
		}
		b.WriteString("<" + tag + ">")
		writeCDATA(&b, v)
		b.WriteString("</" + tag + ">")
	}
	num := func(tag string, v int64, always bool) {
		if v == 0 && !always {
			return
		}
		b.WriteString("<" + tag + ">" + strconv.FormatInt(v, 10) + "</" + tag + ">")
	}
	auth := e.InfoType == InfoTypeAuthorized || e.InfoType == InfoTypeUpdateAuthorized
	str("AppId", e.AppID, true)
	num("CreateTime", e.CreateTime, true)
	str("InfoType", e.InfoType, true)
	str("ComponentVerifyTicket", e.ComponentVerifyTicket, e.InfoType == InfoTypeVerifyTicket)
	str("AuthorizerAppid", e.AuthorizerAppid, auth || e.InfoType == InfoTypeUnauthorized)
	str("AuthorizationCode", e.AuthorizationCode, auth)
	num("AuthorizationCodeExpiredTime", e.AuthorizationCodeExpiredTime, auth)
	str("PreAuthCode", e.PreAuthCode, auth)
	b.WriteString("</xml>")
	return []byte(b.String())
}

// String describes the event without its secrets (the ticket and the
// authorization code are redacted).
func (e Event) String() string {
	return fmt.Sprintf("wxcrypt.Event{InfoType: %s, AppId: %s, CreateTime: %d, AuthorizerAppid: %s, ComponentVerifyTicket: %s, AuthorizationCode: %s, AuthorizationCodeExpiredTime: %d, PreAuthCode: %s}",
		e.InfoType, e.AppID, e.CreateTime, e.AuthorizerAppid, redact(e.ComponentVerifyTicket), redact(e.AuthorizationCode), e.AuthorizationCodeExpiredTime, redact(e.PreAuthCode))
}

// GoString is like String, so that %#v does not reveal the secrets either.
func (e Event) GoString() string { return e.String() }

// LogValue implements slog.LogValuer without the secrets.
func (e Event) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("info_type", e.InfoType), slog.String("appid", e.AppID), slog.Int64("create_time", e.CreateTime)}
	if e.AuthorizerAppid != "" {
		attrs = append(attrs, slog.String("authorizer_appid", e.AuthorizerAppid))
	}
	return slog.GroupValue(attrs...)
}

func redact(s string) string {
	if s == "" {
		return `""`
	}
	return "[redacted]"
}

// writeCDATA writes s as a CDATA section, splitting any "]]>" inside it.
func writeCDATA(b *strings.Builder, s string) {
	b.WriteString("<![CDATA[")
	b.WriteString(strings.ReplaceAll(s, "]]>", "]]]]><![CDATA[>"))
	b.WriteString("]]>")
}
