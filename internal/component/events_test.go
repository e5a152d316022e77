package component_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// TestAnOlderTicketNeverReplacesTheStoredOne: tickets are ordered by when
// WeChat created them. A ticket event created eight days before the stored
// ticket (a replay that got past the event URL's checks, or a very late
// retry) is acknowledged and does not replace it, however late it arrives;
// so the component token still renews (WeChat refuses the old ticket with
// 61005/61006). A late push created an hour before the stored ticket,
// inside the replay window, does not replace it either.
func TestAnOlderTicketNeverReplacesTheStoredOne(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		p := componenttest.New(t, componenttest.Options{Dialect: d})
		ctx := p.Ctx()
		old := p.PushTicket()
		created := p.Clock.Now()
		p.Clock.Advance(8 * 24 * time.Hour)
		current := p.PushTicket()
		stored := func(t *testing.T) {
			t.Helper()
			st, err := p.Store.GetComponentState(ctx, p.AppID)
			if err != nil || st.Ticket.Reveal() != current {
				t.Fatalf("stored ticket is not the current one (%v)", err)
			}
		}
		t.Run("an eight-day-old ticket event is kept out", func(t *testing.T) {
			ev := wxcrypt.Event{AppID: p.AppID, CreateTime: created.Unix(), InfoType: wxcrypt.InfoTypeVerifyTicket, ComponentVerifyTicket: old}
			if err := p.Flow.HandleEvent(ctx, ev); err != nil {
				t.Fatalf("HandleEvent: %v", err)
			}
			stored(t)
		})
		t.Run("a push created an hour before the stored ticket is acknowledged and kept out", func(t *testing.T) {
			plain := wxcrypt.EncodeEvent(wxcrypt.Event{AppID: p.AppID, CreateTime: p.Clock.Now().Add(-time.Hour).Unix(),
				InfoType: wxcrypt.InfoTypeVerifyTicket, ComponentVerifyTicket: old})
			ts := strconv.FormatInt(p.Clock.Now().Unix(), 10)
			body, sig, err := p.Crypter.SealEvent(plain, ts, "1234567890")
			if err != nil {
				t.Fatal(err)
			}
			out := p.Receiver.Receive(ctx, component.Push{Body: body, MsgSignature: sig, Timestamp: ts, Nonce: "1234567890"})
			if out.Answer != component.AnswerSuccess {
				t.Fatalf("answer %v (%s), want success", out.Answer, out.Result)
			}
			stored(t)
		})
		t.Run("the component token renews with the current ticket", func(t *testing.T) {
			p.RenewComponentToken(t, 7200*time.Second, 3) // the first ticket's, the current one's, the renewal
		})
	})
}
