package sim

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/wxcrypt"
)

func TestTicketPushIsSignedAndEncrypted(t *testing.T) {
	e := newEnv(t)
	ticket, err := e.sim.PushTicket(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pushes := e.rcv.all()
	if len(pushes) != 1 {
		t.Fatalf("%d pushes", len(pushes))
	}
	p := pushes[0]
	if p.Err != nil {
		t.Fatalf("push does not verify: %v", p.Err)
	}
	for _, k := range []string{"signature", "timestamp", "nonce", "encrypt_type", "msg_signature"} {
		if p.Query.Get(k) == "" {
			t.Errorf("push query lacks %s: %v", k, p.Query)
		}
	}
	if p.Query.Get("timestamp") != "1740823200" { // the injected clock
		t.Errorf("timestamp %s", p.Query.Get("timestamp"))
	}
	env, err := wxcrypt.ParseEnvelope(p.Body)
	if err != nil || env.AppID != testComponent || !strings.HasPrefix(string(p.Body), "<xml><AppId><![CDATA["+testComponent+"]]></AppId><Encrypt><![CDATA[") {
		t.Fatalf("envelope %s: %v", p.Body, err)
	}
	want := wxcrypt.Event{AppID: testComponent, CreateTime: 1740823200, InfoType: "component_verify_ticket", ComponentVerifyTicket: ticket}
	if p.Event != want {
		t.Fatalf("event %+v, want %+v", p.Event, want)
	}
	if !strings.HasPrefix(ticket, "ticket@@@") || len(ticket) < 40 {
		t.Fatalf("ticket %q", ticket)
	}
	// A receiver with another token rejects it: the signature covers the token.
	other, _ := wxcrypt.New("othertoken", testAESKey, testComponent)
	if _, err := other.Open(p.Body, p.Query.Get("msg_signature"), p.Query.Get("timestamp"), p.Query.Get("nonce")); !errors.Is(err, wxcrypt.ErrSignature) {
		t.Fatalf("other token: %v", err)
	}
}

func TestPushRetries(t *testing.T) {
	tests := []struct {
		name     string
		answer   func(n int) (int, string)
		attempts int
		wantErr  bool
	}{
		{"success first", func(int) (int, string) { return 200, "success" }, 1, false},
		{"fail then success", func(n int) (int, string) {
			if n == 1 {
				return 200, "fail"
			}
			return 200, "success"
		}, 2, false},
		{"500 twice", func(n int) (int, string) {
			if n <= 2 {
				return 500, "success"
			}
			return 200, "success"
		}, 3, false},
		{"success with newline is not success", func(int) (int, string) { return 200, "success\n" }, 4, true},
		{"never", func(int) (int, string) { return 200, "" }, 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.rcv.setAnswer(tt.answer)
			_, err := e.sim.PushTicket(context.Background())
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrPush)) {
				t.Fatalf("PushTicket err = %v", err)
			}
			if n := len(e.rcv.all()); n != tt.attempts {
				t.Fatalf("%d attempts, want %d", n, tt.attempts)
			}
			e.rcv.events(t) // every attempt verifies
			pc := e.sim.Counters().Pushes["component_verify_ticket"]
			delivered, failed := int64(1), int64(0)
			if tt.wantErr {
				delivered, failed = 0, 1
			}
			if pc.Attempts != int64(tt.attempts) || pc.Delivered != delivered || pc.Failed != failed {
				t.Fatalf("push counters %+v", pc)
			}
		})
	}
	// Authorization events are retried too, and a failed push is reported
	// while the authorization stands.
	e := newEnv(t, func(o *Options) { o.PushRetries = -1 })
	_ = e.sim.CreateAccount(AccountSpec{AppID: "wxacct1z0000000000"})
	e.rcv.setAnswer(func(int) (int, string) { return 200, "nope" })
	code, err := e.sim.Authorize(context.Background(), "wxacct1z0000000000", "")
	if !errors.Is(err, ErrPush) || code == "" {
		t.Fatalf("Authorize with a failing receiver = %q, %v", code, err)
	}
	if n := len(e.rcv.all()); n != 1 {
		t.Fatalf("PushRetries -1 made %d attempts", n)
	}
	if info, _ := e.sim.Account("wxacct1z0000000000"); !info.Authorized {
		t.Fatal("authorization lost after a failed push")
	}
}

func TestPushRespectsContext(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.PushRetryDelay = time.Hour })
	e.rcv.setAnswer(func(int) (int, string) { return 503, "" })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := e.sim.PushTicket(ctx); !errors.Is(err, ErrPush) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("push ignored the context")
	}
}

func TestRunPushesTicketsPeriodically(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.TicketInterval = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.sim.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(e.rcv.all()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	evs := e.rcv.events(t)
	if len(evs) < 3 {
		t.Fatalf("%d tickets pushed", len(evs))
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		if ev.InfoType != "component_verify_ticket" || seen[ev.ComponentVerifyTicket] {
			t.Fatalf("event %+v", ev)
		}
		seen[ev.ComponentVerifyTicket] = true
	}
	// Every pushed ticket is accepted.
	r := e.post("/cgi-bin/component/api_component_token", map[string]string{
		"component_appid": testComponent, "component_appsecret": testSecret, "component_verify_ticket": evs[0].ComponentVerifyTicket})
	e.mustCode(r, 0)

	// Disabled periodic pushes: Run just waits.
	e2 := newEnv(t, func(o *Options) { o.TicketInterval = -1 })
	ctx2, cancel2 := context.WithCancel(context.Background())
	var returned atomic.Bool
	go func() { _ = e2.sim.Run(ctx2); returned.Store(true) }()
	time.Sleep(30 * time.Millisecond)
	if len(e2.rcv.all()) != 0 || returned.Load() {
		t.Fatal("Run pushed or returned with TicketInterval < 0")
	}
	cancel2()
}

func TestRunCatchesUpAfterAFailedPush(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.TicketInterval = time.Hour; o.PushRetries = -1 })
	e.sim.catchUp = 10 * time.Millisecond
	e.rcv.setAnswer(func(n int) (int, string) {
		if n == 1 {
			return 502, "" // the gateway is not up yet
		}
		return 200, "success"
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = e.sim.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(e.rcv.all()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(e.rcv.all()); n != 2 {
		t.Fatalf("%d pushes, want the failed one and a catch-up", n)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(e.rcv.all()); n != 2 {
		t.Fatalf("%d pushes after a delivered ticket, want the interval to apply", n)
	}
}

func TestNoEventURL(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.EventURL = "" })
	if _, err := e.sim.PushTicket(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = e.sim.CreateAccount(AccountSpec{AppID: "wxacct1z0000000000"})
	if _, err := e.sim.Authorize(context.Background(), "wxacct1z0000000000", ""); err != nil {
		t.Fatal(err)
	}
	if len(e.rcv.all()) != 0 {
		t.Fatal("pushed without an EventURL")
	}
}
