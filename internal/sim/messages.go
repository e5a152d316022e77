package sim

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// appIDPlaceholder is what WeChat replaces with the account's appid in the
// message and event receive URL.
const appIDPlaceholder = "$APPID$"

// MessageBudget is how long WeChat waits for the answer to a pushed message
// before it retries (docs/wechat.md, "Messages and events for authorized
// accounts").
const MessageBudget = 5 * time.Second

// maxRecorded bounds the deliveries and customer-service messages kept.
const maxRecorded = 4096

// ErrNoMessageURL: a message was to be pushed but no MessageURL is set and
// the call named no target (HTTP 409).
var ErrNoMessageURL = errors.New("sim: no message URL configured")

// FollowerMessage is a message a follower sends to an account, or an event
// of the account, as WeChat pushes it to the platform's message URL.
type FollowerMessage struct {
	// FromOpenID is the follower (default: the account's first follower).
	FromOpenID string `json:"from_openid,omitempty"`
	// MsgType is text, image, voice, video, shortvideo, location, link or
	// event (default text).
	MsgType string `json:"msg_type,omitempty"`
	// Content is a text message's content.
	Content string `json:"content,omitempty"`
	// MsgID is the message's MsgId (default: a fresh one; events carry none).
	MsgID int64 `json:"msg_id,omitempty"`
	// Event and EventKey are an event's.
	Event    string `json:"event,omitempty"`
	EventKey string `json:"event_key,omitempty"`
	// Fields are further elements, e.g. {"PicUrl": "…", "MediaId": "…"} or
	// {"Latitude": "23.1", "Longitude": "113.3", "Precision": "30"}.
	Fields map[string]string `json:"fields,omitempty"`
	// CreateTime is the message's Unix time (default now).
	CreateTime int64 `json:"create_time,omitempty"`
	// Copies pushes the same message this many times, as WeChat does when
	// an answer is late (default 1).
	Copies int `json:"copies,omitempty"`
	// Targets, when set, are message URLs (with $APPID$) used in turn by
	// the copies instead of MessageURL: copies reach different replicas.
	Targets []string `json:"targets,omitempty"`
}

// Delivery is one HTTP push of a message and what the platform answered.
type Delivery struct {
	AppID   string    `json:"appid"`
	MsgType string    `json:"msg_type"`
	MsgID   int64     `json:"msg_id,omitempty"`
	Event   string    `json:"event,omitempty"`
	URL     string    `json:"url"`
	At      time.Time `json:"at"`
	// Status and Body are the platform's answer (Status 0: no answer).
	Status int    `json:"status"`
	Body   string `json:"body"`
	// Elapsed is how long the answer took.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Reply is the decrypted passive reply, when the answer was one.
	Reply *PassiveReply `json:"reply,omitempty"`
	// Problem says what is wrong with the answer, as WeChat would judge
	// it ("" when it is "success", empty, or a valid passive reply within
	// MessageBudget).
	Problem string `json:"problem,omitempty"`
}

// PassiveReply is a decrypted passive reply.
type PassiveReply struct {
	ToUserName   string `json:"to_user_name" xml:"ToUserName"`
	FromUserName string `json:"from_user_name" xml:"FromUserName"`
	CreateTime   int64  `json:"create_time" xml:"CreateTime"`
	MsgType      string `json:"msg_type" xml:"MsgType"`
	Content      string `json:"content" xml:"Content"`
}

// CustomMessage is a customer-service message the platform sent through
// POST /cgi-bin/message/custom/send.
type CustomMessage struct {
	AppID   string    `json:"appid"`
	ToUser  string    `json:"touser"`
	MsgType string    `json:"msgtype"`
	Content string    `json:"content"`
	At      time.Time `json:"at"`
}

// FollowerOpenID is the openid of the account's follower at index.
func (s *Simulator) FollowerOpenID(appid string, index int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.accountLocked(appid)
	if err != nil {
		return "", err
	}
	return string(a.codec.appendOpenID(nil, uint64(index))), nil
}

// PushMessage pushes a follower's message (or an account event) to the
// primary platform (see Platform.PushMessage).
func (s *Simulator) PushMessage(ctx context.Context, appid string, m FollowerMessage) ([]Delivery, error) {
	return s.primary.PushMessage(ctx, appid, m)
}

// PushMessage pushes a follower's message (or an account event) to this
// platform's message URL for the account, encrypted and signed with this
// platform's Token and key as WeChat does, once per copy, and returns each
// delivery. Copies are pushed one after the other. It answers
// ErrUnknownAccount, ErrInvalid or ErrNoMessageURL; a bad answer is not
// an error but a Delivery with a Problem.
func (p *Platform) PushMessage(ctx context.Context, appid string, m FollowerMessage) ([]Delivery, error) {
	s := p.s
	now := s.now()
	s.mu.Lock()
	a, err := s.accountLocked(appid)
	var user string
	if err == nil {
		user = a.userName()
		if m.FromOpenID == "" {
			m.FromOpenID = string(a.codec.appendOpenID(nil, 0))
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if m.MsgType == "" {
		m.MsgType = "text"
	}
	if m.MsgType == "event" && m.Event == "" {
		return nil, fmt.Errorf("%w: an event needs its Event", ErrInvalid)
	}
	if m.CreateTime == 0 {
		m.CreateTime = now.Unix()
	}
	if m.MsgID == 0 && m.MsgType != "event" {
		m.MsgID = now.UnixNano()/1000 + int64(s.ridSeq.Add(1))
	}
	targets := m.Targets
	if len(targets) == 0 {
		if p.messageURL == "" {
			return nil, ErrNoMessageURL
		}
		targets = []string{p.messageURL}
	}
	plain := encodeMessage(user, m)
	copies := max(m.Copies, 1)
	out := make([]Delivery, 0, copies)
	for i := range copies {
		d := p.deliver(ctx, appid, user, strings.ReplaceAll(targets[i%len(targets)], appIDPlaceholder, appid), plain, m)
		out = append(out, d)
	}
	return out, nil
}

// encodeMessage renders the plaintext XML of a pushed message.
func encodeMessage(user string, m FollowerMessage) []byte {
	var b strings.Builder
	str := func(tag, v string) {
		b.WriteString("<" + tag + "><![CDATA[")
		b.WriteString(strings.ReplaceAll(v, "]]>", "]]]]><![CDATA[>"))
		b.WriteString("]]></" + tag + ">")
	}
	b.WriteString("<xml>")
	str("ToUserName", user)
	str("FromUserName", m.FromOpenID)
	b.WriteString("<CreateTime>" + strconv.FormatInt(m.CreateTime, 10) + "</CreateTime>")
	str("MsgType", m.MsgType)
	if m.MsgType == "event" {
		str("Event", m.Event)
		if m.EventKey != "" {
			str("EventKey", m.EventKey)
		}
	}
	if m.MsgType == "text" {
		str("Content", m.Content)
	}
	keys := make([]string, 0, len(m.Fields))
	for k := range m.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		str(k, m.Fields[k])
	}
	if m.MsgID != 0 {
		b.WriteString("<MsgId>" + strconv.FormatInt(m.MsgID, 10) + "</MsgId>")
	}
	b.WriteString("</xml>")
	return []byte(b.String())
}

// deliver makes one push and judges the answer.
func (p *Platform) deliver(ctx context.Context, appid, user, target string, plain []byte, m FollowerMessage) Delivery {
	s := p.s
	at := s.now()
	d := Delivery{AppID: appid, MsgType: m.MsgType, MsgID: m.MsgID, Event: m.Event, URL: target, At: at}
	defer s.recordDelivery(&d)
	timestamp := strconv.FormatInt(at.Unix(), 10)
	nonce := newNonce()
	body, msgSig, err := p.crypter.SealMessage(plain, user, timestamp, nonce)
	if err != nil {
		d.Problem = "seal: " + err.Error()
		return d
	}
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	u := target + sep + "signature=" + p.crypter.SignURL(timestamp, nonce) + "&timestamp=" + timestamp + "&nonce=" + nonce +
		"&openid=" + m.FromOpenID + "&encrypt_type=aes&msg_signature=" + msgSig
	rctx, cancel := context.WithTimeout(ctx, MessageBudget)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		d.Problem = "build request: " + err.Error()
		return d
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("User-Agent", "Mozilla/4.0 (wxgate-sim)")
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		d.Elapsed = time.Since(start)
		d.Problem = "no answer within 5 s: " + err.Error()
		return d
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	d.Elapsed, d.Status, d.Body = time.Since(start), resp.StatusCode, string(answer)
	switch {
	case err != nil:
		d.Problem = "reading the answer: " + err.Error()
	case resp.StatusCode != http.StatusOK:
		d.Problem = fmt.Sprintf("answered HTTP %d", resp.StatusCode)
	case d.Elapsed > MessageBudget:
		d.Problem = fmt.Sprintf("answered after %v, over WeChat's 5 s", d.Elapsed.Round(time.Millisecond))
	case len(bytes.TrimSpace(answer)) == 0 || string(answer) == "success":
	default:
		plainReply, err := p.crypter.OpenReply(answer)
		if err != nil {
			d.Problem = "the answer is neither success nor a valid encrypted reply: " + err.Error()
			return d
		}
		var r PassiveReply
		if err := xml.Unmarshal(plainReply, &r); err != nil {
			d.Problem = "the reply's plaintext is not XML: " + err.Error()
			return d
		}
		r.ToUserName, r.FromUserName, r.MsgType = strings.TrimSpace(r.ToUserName), strings.TrimSpace(r.FromUserName), strings.TrimSpace(r.MsgType)
		d.Reply = &r
		if r.ToUserName != m.FromOpenID || r.FromUserName != user {
			d.Problem = fmt.Sprintf("the reply goes from %q to %q, want from %q to %q", r.FromUserName, r.ToUserName, user, m.FromOpenID)
		}
	}
	return d
}

func (s *Simulator) recordDelivery(d *Delivery) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.deliveries = appendBounded(s.deliveries, *d)
}

func appendBounded[T any](list []T, v T) []T {
	if len(list) == maxRecorded {
		list = append(list[:0], list[1:]...)
	}
	return append(list, v)
}

// Deliveries returns the message pushes made so far (oldest first).
func (s *Simulator) Deliveries() []Delivery {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// CustomMessages returns the customer-service messages received so far
// (oldest first).
func (s *Simulator) CustomMessages() []CustomMessage {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return append([]CustomMessage(nil), s.customs...)
}

// handleCustomSend serves POST /cgi-bin/message/custom/send?access_token=
// with {"touser", "msgtype": "text", "text": {"content"}}: it checks the
// authorizer token and the follower, and records the message.
func (s *Simulator) handleCustomSend(w http.ResponseWriter, r *http.Request) {
	const ep = EndpointCustomSend
	var req struct {
		ToUser  string `json:"touser"`
		MsgType string `json:"msgtype"`
		Text    struct {
			Content string `json:"content"`
		} `json:"text"`
	}
	token, p, appid, bad, ok := s.authorizerPOST(w, r, ep, &req)
	if !ok {
		return
	}
	bad = bad || req.MsgType == ""
	now := s.now()
	s.mu.Lock()
	_, a, code := s.tokenAccountLocked(token, now)
	switch {
	case code != 0:
	case bad:
		code = errDataFormat
	case !a.follows(req.ToUser):
		code = errInvalidOpenID
	}
	s.mu.Unlock()
	if code != 0 {
		s.fail(w, p, ep, appid, code)
		return
	}
	s.cmu.Lock()
	s.customs = appendBounded(s.customs, CustomMessage{AppID: appid, ToUser: req.ToUser, MsgType: req.MsgType, Content: req.Text.Content, At: now})
	s.cmu.Unlock()
	s.fail(w, p, ep, appid, 0) // {"errcode":0,"errmsg":"ok"}
}

// follows reports whether openid is one of the account's followers (an
// account without followers still has index 0, as WeChat's test follower).
func (a *account) follows(openid string) bool {
	idx, ok := a.codec.index(openid)
	return ok && idx < uint64(max(a.spec.Followers, 1))
}
