package sim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mrand "math/rand/v2"
)

// ReleaseGroups are the test accounts of WeChat's full-network release test
// (docs/wechat.md, "The full-network release test"): WeChat picks one group
// at random. Only the first group's account is published; the others here
// are the simulator's own, so a platform that recognises the test by a
// fixed appid fails four runs in five.
var ReleaseGroups = []AccountSpec{
	{AppID: "wx570bc396a51b8ff8", UserName: "gh_3c884a361561", NickName: "Release test group 1", Followers: 1},
	{AppID: "wxd7e57a000000c002", UserName: "gh_7e57a000c002", NickName: "Release test group 2", Followers: 1},
	{AppID: "wxd7e57a000000c003", UserName: "gh_7e57a000c003", NickName: "Release test group 3", Followers: 1},
	{AppID: "wxd7e57a000000c004", UserName: "gh_7e57a000c004", NickName: "Release test group 4", Followers: 1},
	{AppID: "wxd7e57a000000c005", UserName: "gh_7e57a000c005", NickName: "Release test group 5", Followers: 1},
}

// The items of the release test's result page, in its order.
const (
	ItemTicket       = "ticket received"
	ItemPreAuthCode  = "pre-auth code created"
	ItemAuthCode     = "authorization code obtained"
	ItemAuthorized   = "authorized"
	ItemAPIReply     = "API text reply"
	ItemTextReply    = "plain text reply"
	ItemEventMessage = "event message"
	ItemUnauthorized = "unauthorized"
)

// DefaultReleaseWait is how long the release test waits for the platform's
// asynchronous work (the code exchange, the customer-service message).
const DefaultReleaseWait = 10 * time.Second

// ReleaseTestOptions configure RunReleaseTest.
type ReleaseTestOptions struct {
	// Group picks the test account, 1..5 (0 = at random, as WeChat does).
	Group int `json:"group,omitempty"`
	// Targets, when set, are message URLs (with $APPID$) used in turn by
	// the test's pushes instead of MessageURL: each push may reach another
	// replica.
	Targets []string `json:"targets,omitempty"`
	// Copies pushes the QUERY_AUTH_CODE message this many times (WeChat's
	// retries; default 1): still only one customer-service message may
	// come back.
	Copies int `json:"copies,omitempty"`
	// Wait bounds the waits for the platform's asynchronous work
	// (default DefaultReleaseWait).
	Wait time.Duration `json:"wait_ns,omitempty"`
}

// ReleaseItem is one line of the result page.
type ReleaseItem struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	// Reason explains a failure, or what was checked.
	Reason string `json:"reason"`
}

// ReleaseReport is the release test's result page.
type ReleaseReport struct {
	Group  int           `json:"group"`
	AppID  string        `json:"appid"`
	Passed bool          `json:"passed"`
	Items  []ReleaseItem `json:"items"`
}

// String renders the report as lines "PASS  item  reason".
func (r ReleaseReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "full-network release test, group %d (account %s)\n", r.Group, r.AppID)
	for _, it := range r.Items {
		mark := "PASS"
		if !it.Passed {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  %s  %-28s %s\n", mark, it.Name, it.Reason)
	}
	if r.Passed {
		b.WriteString("result: passed\n")
	} else {
		b.WriteString("result: FAILED\n")
	}
	return b.String()
}

// RunReleaseTest plays WeChat's full-network release test against the
// primary platform: it pushes a ticket, checks that the platform has created a
// pre_auth_code, has one test account authorize the platform (the
// authorized event, no pre-auth session) and waits for its code to be
// exchanged, pushes QUERY_AUTH_CODE with a fresh code and waits for the
// customer-service message "<code>_from_api", pushes
// TESTCOMPONENT_MSG_TYPE_TEXT and an event and checks the passive replies,
// then unauthorizes the account. Every item is judged and reported; an
// error is returned only for a test that could not be run at all
// (ErrNoMessageURL).
func (s *Simulator) RunReleaseTest(ctx context.Context, o ReleaseTestOptions) (ReleaseReport, error) {
	return s.primary.RunReleaseTest(ctx, o)
}

// RunReleaseTest plays WeChat's full-network release test against this
// platform, with its ticket, events, message URL and crypto (see
// Simulator.RunReleaseTest).
func (p *Platform) RunReleaseTest(ctx context.Context, o ReleaseTestOptions) (rep ReleaseReport, err error) {
	s := p.s
	if p.messageURL == "" && len(o.Targets) == 0 {
		return ReleaseReport{}, ErrNoMessageURL
	}
	if o.Group < 0 || o.Group > len(ReleaseGroups) {
		return ReleaseReport{}, fmt.Errorf("%w: group %d is outside 1..%d", ErrInvalid, o.Group, len(ReleaseGroups))
	}
	if o.Group == 0 {
		o.Group = 1 + mrand.IntN(len(ReleaseGroups))
	}
	if o.Wait <= 0 {
		o.Wait = DefaultReleaseWait
	}
	spec := ReleaseGroups[o.Group-1]
	rep = ReleaseReport{Group: o.Group, AppID: spec.AppID}
	items := map[string]ReleaseItem{}
	judge := func(name string, err error, ok string) {
		if err != nil {
			items[name] = ReleaseItem{Name: name, Reason: err.Error()}
			return
		}
		items[name] = ReleaseItem{Name: name, Passed: true, Reason: ok}
	}
	defer func() {
		if err != nil {
			return
		}
		rep.Passed = true
		for _, name := range []string{ItemTicket, ItemPreAuthCode, ItemAuthCode, ItemAuthorized, ItemAPIReply, ItemTextReply, ItemEventMessage, ItemUnauthorized} {
			it, ok := items[name]
			if !ok {
				it = ReleaseItem{Name: name, Reason: "not reached"}
			}
			rep.Passed = rep.Passed && it.Passed
			rep.Items = append(rep.Items, it)
		}
	}()

	_, err = p.PushTicket(ctx)
	judge(ItemTicket, err, "component_verify_ticket pushed and answered success")

	s.mu.Lock()
	issued := p.preAuthIssued
	s.mu.Unlock()
	if issued == 0 {
		judge(ItemPreAuthCode, fmt.Errorf("the platform never called api_create_preauthcode: start one authorization (POST /v1/authorizations) first"), "")
	} else {
		judge(ItemPreAuthCode, nil, fmt.Sprintf("%d pre_auth_code(s) issued", issued))
	}

	if err := s.CreateAccount(spec); err != nil && !isExists(err) {
		return rep, err
	}
	if info, err := p.Account(spec.AppID); err == nil && info.Authorized {
		// A previous run was cut short: start from an unauthorized account.
		_ = p.Unauthorize(ctx, spec.AppID)
	}
	code, err := p.Authorize(ctx, spec.AppID, "")
	judge(ItemAuthorized, err, "authorized event pushed and answered success")
	if err != nil {
		return rep, nil
	}
	judge(ItemAuthCode, s.waitFor(ctx, o.Wait, func() bool { return p.codeUsed(code) }, "the platform did not exchange the authorized event's code with api_query_auth"),
		"the authorization code was exchanged with api_query_auth")

	openid, _ := s.FollowerOpenID(spec.AppID, 0)
	p.apiReplyItem(ctx, spec.AppID, openid, o, judge)

	ds, err := p.PushMessage(ctx, spec.AppID, FollowerMessage{FromOpenID: openid, Content: "TESTCOMPONENT_MSG_TYPE_TEXT", Targets: o.Targets})
	judge(ItemTextReply, replyIs(ds, err, "TESTCOMPONENT_MSG_TYPE_TEXT_callback"), "passive reply TESTCOMPONENT_MSG_TYPE_TEXT_callback")

	ds, err = p.PushMessage(ctx, spec.AppID, FollowerMessage{FromOpenID: openid, MsgType: "event", Event: "LOCATION",
		Fields: map[string]string{"Latitude": "23.137466", "Longitude": "113.352425", "Precision": "119.385040"}, Targets: o.Targets})
	judge(ItemEventMessage, replyIs(ds, err, "LOCATIONfrom_callback"), "passive reply LOCATIONfrom_callback")

	judge(ItemUnauthorized, p.Unauthorize(ctx, spec.AppID), "unauthorized event pushed and answered success")
	return rep, nil
}

// apiReplyItem pushes QUERY_AUTH_CODE:<fresh code> and waits for the
// customer-service message that must answer it.
func (p *Platform) apiReplyItem(ctx context.Context, appid, openid string, o ReleaseTestOptions, judge func(string, error, string)) {
	s := p.s
	now := s.now()
	s.mu.Lock()
	p.pruneCodesLocked(now)
	code := newAuthCode()
	p.authCodes[code] = &authCode{appid: appid, expires: now.Add(AuthCodeLifetime)}
	s.mu.Unlock()
	before := len(s.customFor(appid, openid, code+"_from_api"))
	ds, err := p.PushMessage(ctx, appid, FollowerMessage{FromOpenID: openid, Content: "QUERY_AUTH_CODE:" + code, Copies: o.Copies, Targets: o.Targets})
	if err == nil {
		for _, d := range ds {
			if d.Problem == "" && d.Reply != nil {
				d.Problem = "answered with a passive reply; want success or an empty body"
			}
			if d.Problem != "" {
				err = fmt.Errorf("the QUERY_AUTH_CODE push to %s: %s", d.URL, d.Problem)
				break
			}
		}
	}
	if err != nil {
		judge(ItemAPIReply, err, "")
		return
	}
	want := code + "_from_api"
	err = s.waitFor(ctx, o.Wait, func() bool { return len(s.customFor(appid, openid, want)) > before },
		"no customer-service message <query_auth_code>_from_api arrived")
	judge(ItemAPIReply, err, "customer-service message <query_auth_code>_from_api received")
}

// customFor lists the customer-service messages to openid with content.
func (s *Simulator) customFor(appid, openid, content string) []CustomMessage {
	var out []CustomMessage
	for _, m := range s.CustomMessages() {
		if m.AppID == appid && m.ToUser == openid && m.Content == content {
			out = append(out, m)
		}
	}
	return out
}

// codeUsed reports whether an authorization code was exchanged (or expired).
func (p *Platform) codeUsed(code string) bool {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	_, ok := p.authCodes[code]
	return !ok
}

// waitFor polls cond until it holds or within passes (real time: the
// platform works on its own clock).
func (s *Simulator) waitFor(ctx context.Context, within time.Duration, cond func() bool, failure string) error {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s within %v", failure, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// replyIs judges a push that must be answered with a passive text reply.
func replyIs(ds []Delivery, err error, content string) error {
	if err != nil {
		return err
	}
	d := ds[0]
	switch {
	case d.Problem != "":
		return fmt.Errorf("%s", d.Problem)
	case d.Reply == nil:
		return fmt.Errorf("answered %q; want an encrypted passive reply %q", truncate([]byte(d.Body), 64), content)
	case d.Reply.MsgType != "text" || d.Reply.Content != content:
		return fmt.Errorf("replied %s %q; want text %q", d.Reply.MsgType, d.Reply.Content, content)
	}
	return nil
}

func isExists(err error) bool { return errors.Is(err, ErrAccountExists) }
