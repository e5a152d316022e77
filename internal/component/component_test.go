package component_test

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/wechat"
)

func forEachDialect(t *testing.T, fn func(t *testing.T, d store.Dialect)) {
	t.Helper()
	storetest.ForEachDialect(t, fn)
}

func TestComponentTokenFromTicket(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		root := componenttest.New(t, componenttest.Options{Dialect: d, TokenLifetime: 100 * time.Second})
		ctx := root.Ctx()
		var tok secret.Value

		journey.Step(t, "before any ticket", func(t *testing.T) {
			p := root.In(t)
			if _, err := p.Credentials.Token(ctx); !errs.Is(err, errs.ComponentNotReady) {
				t.Fatalf("token before any ticket: got %v, want component_not_ready", err)
			}
			st, err := p.Credentials.Status(ctx)
			if err != nil || st.TicketReceivedAt != nil || st.TokenExpiresAt != nil || st.ComponentAppID != componenttest.ComponentAppID {
				t.Fatalf("status before any ticket: got %+v, %v, want no ticket, no token, appid %s", st, err, componenttest.ComponentAppID)
			}
			// The age metric counts the wait, so an alert on it fires when
			// pushes never start.
			p.Clock.Advance(25 * time.Minute)
			if err := p.Credentials.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			if age := testutil.ToFloat64(p.Metrics.TicketAge); age != 1500 {
				t.Fatalf("ticket age before any ticket: got %v, want 1500 s", age)
			}
			// /readyz reads the same wait.
			if waited, ok := p.Credentials.TicketWait(); !ok || waited != 25*time.Minute {
				t.Fatalf("TicketWait before any ticket: got %v, %v; want 25m, true", waited, ok)
			}
		})

		journey.Step(t, "the first ticket fetches the token", func(t *testing.T) {
			p := root.In(t)
			p.PushTicket()
			if age := testutil.ToFloat64(p.Metrics.TicketAge); age != 0 {
				t.Fatalf("ticket age after a push: got %v, want 0", age)
			}
			if _, ok := p.Credentials.TicketWait(); ok {
				t.Fatal("TicketWait after a ticket: still waiting")
			}
			if n := p.Calls(sim.EndpointComponentToken, ""); n != 1 {
				t.Fatalf("api_component_token calls after the first ticket: got %d, want 1", n)
			}
			var err error
			tok, err = p.Credentials.Token(ctx)
			if err != nil || tok.Reveal() != p.Sim.CurrentComponentToken() {
				t.Fatalf("token: got %v, %v, want WeChat's current one", tok, err)
			}
			st, _ := p.Credentials.Status(ctx)
			wantExpiry := p.Clock.Now().Add(100 * time.Second)
			if st.TicketReceivedAt == nil || !st.TicketReceivedAt.Equal(p.Clock.Now()) || st.TokenExpiresAt == nil || !st.TokenExpiresAt.Equal(wantExpiry) {
				t.Fatalf("status: got %+v, want the ticket received now and the token expiring at %s", st, wantExpiry)
			}
		})

		journey.Step(t, "a second ticket with a good token changes nothing upstream", func(t *testing.T) {
			p := root.In(t)
			p.PushTicket()
			if n := p.Calls(sim.EndpointComponentToken, ""); n != 1 {
				t.Fatalf("api_component_token calls: got %d, want still 1", n)
			}
		})

		journey.Step(t, "renewed at 75 percent of the lifetime, not at 70", func(t *testing.T) {
			p := root.In(t)
			p.Clock.Advance(70 * time.Second)
			if err := p.Credentials.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			if n := p.Calls(sim.EndpointComponentToken, ""); n != 1 {
				t.Fatalf("api_component_token calls at 70%%: got %d, want 1", n)
			}
			p.Clock.Advance(6 * time.Second)
			if err := p.Credentials.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			if n := p.Calls(sim.EndpointComponentToken, ""); n != 2 {
				t.Fatalf("api_component_token calls at 76%%: got %d, want 2", n)
			}
			if tok2, _ := p.Credentials.Token(ctx); tok2 == tok || tok2.Reveal() != p.Sim.CurrentComponentToken() {
				t.Fatal("token after the refresh: got the old one, want WeChat's new one")
			}
		})

		journey.Step(t, "a restarted replica serves the stored token", func(t *testing.T) {
			p := root.In(t)
			r := p.Replica(componenttest.Options{})
			if tok3, err := r.Credentials.Token(ctx); err != nil || tok3.Reveal() != p.Sim.CurrentComponentToken() {
				t.Fatalf("after restart: got %v, %v, want WeChat's current token", tok3, err)
			}
			if n := p.Calls(sim.EndpointComponentToken, ""); n != 2 {
				t.Fatalf("api_component_token calls after restart: got %d, want still 2", n)
			}
		})
	})
}

func TestComponentTokenRefreshedOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	p := componenttest.New(t, componenttest.Options{TokenLifetime: 100 * time.Second})
	replicas := []*componenttest.Platform{p, p.Replica(componenttest.Options{}), p.Replica(componenttest.Options{})}
	p.PushTicket()
	ctx := p.Ctx()
	for range 3 { // three lifetimes
		p.Clock.Advance(80 * time.Second)
		var wg sync.WaitGroup
		for _, r := range replicas {
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := r.Credentials.Tick(ctx); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
	}
	if n := p.Calls(sim.EndpointComponentToken, ""); n != 4 {
		t.Fatalf("api_component_token calls = %d, want 4 (first + one per lifetime)", n)
	}
	for i, r := range replicas {
		if err := r.Credentials.Tick(ctx); err != nil { // the periodic reload
			t.Fatal(err)
		}
		if tok, err := r.Credentials.Token(ctx); err != nil || tok.Reveal() != p.Sim.CurrentComponentToken() {
			t.Fatalf("replica %d serves %v, %v", i, tok, err)
		}
	}
}

func TestBadTicketIsReportedAndRecoveredByTheNextOne(t *testing.T) {
	t.Parallel()
	p := componenttest.New(t, componenttest.Options{})
	ctx := p.Ctx()
	// A ticket WeChat does not know (e.g. from another platform's config).
	if err := p.Credentials.HandleTicket(ctx, secret.Value("ticket@@@unknown"), p.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	_, err := p.Credentials.Token(ctx)
	e := errs.As(err)
	if e == nil || e.Code != errs.ComponentNotReady || e.WeChatErrcode != wechat.ErrTicketInvalid {
		t.Fatalf("token with a bad ticket: %v", err)
	}
	// The refused ticket is not sent again, on demand or by the upkeep.
	for range 3 {
		if _, err := p.Credentials.Token(ctx); wechat.ErrcodeOf(err) != wechat.ErrTicketInvalid {
			t.Fatalf("token with a bad ticket: %v", err)
		}
		if err := p.Credentials.Tick(ctx); err == nil {
			t.Fatal("tick with a bad ticket succeeded")
		}
	}
	if n := p.Calls(sim.EndpointComponentToken, ""); n != 1 {
		t.Fatalf("the refused ticket was sent %d times", n)
	}
	p.Clock.Advance(time.Second)
	p.PushTicket()
	if tok, err := p.Credentials.Token(ctx); err != nil || tok.Reveal() != p.Sim.CurrentComponentToken() {
		t.Fatalf("after a good ticket: %v, %v", tok, err)
	}
	// An older ticket arriving late does not replace the newer one, nor
	// make the stored ticket look fresh.
	p.Clock.Advance(5 * time.Minute)
	if err := p.Credentials.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Credentials.HandleTicket(ctx, secret.Value("ticket@@@late"), p.Clock.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	st, _ := p.Store.GetComponentState(ctx, componenttest.ComponentAppID)
	if st.Ticket == "ticket@@@late" {
		t.Fatal("an older ticket replaced the newest")
	}
	if age := testutil.ToFloat64(p.Metrics.TicketAge); age != 300 {
		t.Fatalf("ticket age after a late ticket = %v, want 300 (the stored ticket's)", age)
	}
}

func TestComponentTokenRefusedByWeChatIsReplacedOnce(t *testing.T) {
	t.Parallel()
	p := componenttest.New(t, componenttest.Options{})
	p.PushTicket()
	tenant := p.NewTenant("acme")
	if err := p.Sim.InvalidateComponentToken(); err != nil {
		t.Fatal(err)
	}
	// The pre_auth_code call gets 40001, the token is replaced, the call retried.
	if _, err := p.Flow.CreateAuthorization(p.Ctx(), tenant, componentRequest()); err != nil {
		t.Fatalf("create authorization after the component token was invalidated: %v", err)
	}
	if n := p.Calls(sim.EndpointComponentToken, ""); n != 2 {
		t.Fatalf("api_component_token calls = %d, want 2", n)
	}
	if n := p.Calls(sim.EndpointCreatePreAuthCode, ""); n != 2 {
		t.Fatalf("api_create_preauthcode calls = %d, want 2", n)
	}
}

// TestComponentTokenWhenItsRenewalFails: WeChat fails api_component_token
// (system error) while a renewal is asked for. A token that still works is
// kept and served until a renewal succeeds; a token that expired, or that
// WeChat itself refused, is never served: the caller gets the error.
func TestComponentTokenWhenItsRenewalFails(t *testing.T) {
	t.Parallel()
	const life = 100 * time.Second // renewed from 75 s, usable until 99 s
	for _, tc := range []struct {
		name string
		// before runs with WeChat still answering; then api_component_token
		// fails and ask asks for the token; first is the token the replica
		// got from the first ticket.
		before func(t *testing.T, p *componenttest.Platform)
		ask    func(p *componenttest.Platform, first secret.Value) (secret.Value, error)
		// served: the token the replica must answer ("" = an error).
		served func(p *componenttest.Platform, first secret.Value) secret.Value
	}{
		{
			name:   "a due token that still works keeps serving",
			before: func(t *testing.T, p *componenttest.Platform) { p.Clock.Advance(80 * time.Second) },
			ask: func(p *componenttest.Platform, _ secret.Value) (secret.Value, error) {
				_ = p.Credentials.Tick(p.Ctx()) // the renewal fails
				return p.Credentials.Token(p.Ctx())
			},
			served: func(_ *componenttest.Platform, first secret.Value) secret.Value { return first },
		},
		{
			name:   "an expired token is not served",
			before: func(t *testing.T, p *componenttest.Platform) { p.Clock.Advance(life) },
			ask: func(p *componenttest.Platform, _ secret.Value) (secret.Value, error) {
				return p.Credentials.Token(p.Ctx())
			},
			served: func(*componenttest.Platform, secret.Value) secret.Value { return "" },
		},
		{
			name: "a token WeChat refused is not served again",
			before: func(t *testing.T, p *componenttest.Platform) {
				if err := p.Sim.InvalidateComponentToken(); err != nil {
					t.Fatal(err)
				}
			},
			ask: func(p *componenttest.Platform, first secret.Value) (secret.Value, error) {
				return p.Credentials.Invalidate(p.Ctx(), first)
			},
			served: func(*componenttest.Platform, secret.Value) secret.Value { return "" },
		},
		{
			// A late report about the token replaced at the last renewal,
			// while the current one is due and its renewal fails: the
			// current one still works.
			name: "a late refusal of a replaced token answers the current one",
			before: func(t *testing.T, p *componenttest.Platform) {
				p.Clock.Advance(80 * time.Second)
				if err := p.Credentials.Tick(p.Ctx()); err != nil {
					t.Fatal(err)
				}
				p.Clock.Advance(80 * time.Second)
			},
			ask: func(p *componenttest.Platform, first secret.Value) (secret.Value, error) {
				return p.Credentials.Invalidate(p.Ctx(), first)
			},
			served: func(p *componenttest.Platform, _ secret.Value) secret.Value {
				return secret.Value(p.Sim.CurrentComponentToken())
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachDialect(t, func(t *testing.T, d store.Dialect) {
				p := componenttest.New(t, componenttest.Options{Dialect: d, TokenLifetime: life}).In(t)
				p.PushTicket()
				first, err := p.Credentials.Token(p.Ctx())
				if err != nil || first.Reveal() != p.Sim.CurrentComponentToken() {
					t.Fatalf("first token: %v", err)
				}
				tc.before(t, p)
				want := tc.served(p, first)
				if err := p.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointComponentToken, Kind: sim.FaultErrcode}); err != nil {
					t.Fatal(err)
				}
				calls := p.Calls(sim.EndpointComponentToken, "")
				got, err := tc.ask(p, first)
				if p.Calls(sim.EndpointComponentToken, "") == calls {
					t.Fatal("no renewal was tried")
				}
				switch {
				case want.IsZero() && err == nil:
					t.Fatalf("served a token (the first one: %v), want an error", got == first)
				case want.IsZero() && (!errs.Is(err, errs.UpstreamUnavailable) || wechat.ErrcodeOf(err) != wechat.ErrSystemBusy):
					t.Fatalf("got %v, want WeChat's failure (upstream_unavailable, errcode -1)", err)
				case !want.IsZero() && (err != nil || got != want):
					t.Fatalf("got %v (the first token: %v), want the token that still works", err, got == first)
				}
			})
		})
	}
}

// TestTicketAgeKeepsGrowingWhileTheStoreIsDown: the age is what operators
// alert on; an unreachable store must not freeze it at its last value, nor
// make it count from when the replica started instead of from the last
// ticket it saw (the replica here waited 20 minutes for its first ticket).
func TestTicketAgeKeepsGrowingWhileTheStoreIsDown(t *testing.T) {
	t.Parallel()
	p := componenttest.New(t, componenttest.Options{Dialect: store.SQLite})
	ctx := p.Ctx()
	p.Clock.Advance(20 * time.Minute)
	p.PushTicket()
	p.Clock.Advance(5 * time.Minute)
	if err := p.Credentials.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if age := testutil.ToFloat64(p.Metrics.TicketAge); age != 300 {
		t.Fatalf("ticket age = %v, want 300", age)
	}
	_ = p.Store.Close()
	p.Clock.Advance(10 * time.Minute)
	if err := p.Credentials.Tick(ctx); err == nil {
		t.Fatal("Tick with the store closed reported no error")
	}
	if age := testutil.ToFloat64(p.Metrics.TicketAge); age != 900 {
		t.Fatalf("ticket age with the store down = %v, want 900", age)
	}
}
