package httpapi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// fuzzEventsNow is the handler's clock in FuzzEventsHandler.
var fuzzEventsNow = time.Unix(1700000000, 0)

const (
	fuzzEventsAppID = "wx2c2769f8efd9abc2"
	fuzzEventsToken = "fuzztoken"
	fuzzEventsKey   = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// fuzzEventsSink records the events the handler applies and the receipts
// it keeps, in memory.
type fuzzEventsSink struct {
	mu       sync.Mutex
	events   []wxcrypt.Event
	receipts map[string]bool
}

func (s *fuzzEventsSink) HandleEvent(_ context.Context, ev wxcrypt.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
	return nil
}

func (s *fuzzEventsSink) EventSeen(_ context.Context, digest string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.receipts[digest], nil
}

func (s *fuzzEventsSink) RecordEvent(_ context.Context, digest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.receipts[digest] = true
	return nil
}

// FuzzEventsHandler drives POST /wechat/events with hostile queries and
// bodies, and with arbitrary plaintexts sealed and signed with the
// platform's own key (the part of the path a forger cannot reach). The
// handler never panics and never answers 5xx with healthy dependencies; it
// answers 200 "success" only for a correctly signed body whose plaintext is
// an event of this platform, stamped (URL timestamp and CreateTime) no
// later than component.FutureWindow ahead of its clock, and only then
// applies the event, once per ciphertext; anything else is 400, 401 or 413
// and applies nothing.
// Seeds: testdata/fuzz/FuzzEventsHandler (run by plain `go test`).
func FuzzEventsHandler(f *testing.F) {
	crypter, err := wxcrypt.New(fuzzEventsToken, fuzzEventsKey, fuzzEventsAppID)
	if err != nil {
		f.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	f.Add("timestamp=1&nonce=2&msg_signature=x", []byte("<xml><Encrypt><![CDATA[abc]]></Encrypt></xml>"),
		[]byte("<xml><AppId>"+fuzzEventsAppID+"</AppId><InfoType>component_verify_ticket</InfoType><ComponentVerifyTicket>t</ComponentVerifyTicket></xml>"), true)
	f.Fuzz(func(t *testing.T, rawQuery string, body, plain []byte, seal bool) {
		sink := &fuzzEventsSink{receipts: map[string]bool{}}
		r := gin.New()
		events := component.NewEvents(component.EventOptions{
			AppID: fuzzEventsAppID, Crypter: crypter, Handler: sink, Receipts: sink,
			Metrics: obs.NewMetrics(), Now: func() time.Time { return fuzzEventsNow },
		})
		r.POST("/wechat/events", handleEvents(defaultPlatform(onePlatform{p: &PlatformDeps{Events: events}}), slog.New(slog.DiscardHandler)))

		query := rawQuery
		signedOK := false
		if seal {
			var sig string
			body, sig, err = crypter.SealEvent(plain, "1700000000", "4242")
			if err != nil {
				t.Fatal(err)
			}
			query = url.Values{"timestamp": {"1700000000"}, "nonce": {"4242"}, "encrypt_type": {"aes"}, "msg_signature": {sig}}.Encode()
			signedOK = true
		} else if q, _ := url.ParseQuery(rawQuery); len(body) <= maxEventBody { // as URL.Query: bad pairs dropped
			if env, err := wxcrypt.ParseEnvelope(body); err == nil {
				signedOK = q.Get("msg_signature") != "" && crypter.Verify(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), env.Encrypt)
			}
		}
		post := func() *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, "/wechat/events", bytes.NewReader(body))
			req.URL.RawQuery = query
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			return w
		}
		w := post()

		// What a correct handler must do, from the plaintext alone.
		var want wxcrypt.Event
		accept := false
		q, _ := url.ParseQuery(query)
		ts, tsErr := strconv.ParseInt(q.Get("timestamp"), 10, 64)
		latest := fuzzEventsNow.Add(component.FutureWindow).Unix()
		if signedOK && tsErr == nil && ts <= latest {
			if env, err := wxcrypt.ParseEnvelope(body); err == nil && (env.AppID == "" || env.AppID == fuzzEventsAppID) {
				if msg, err := crypter.Decrypt(env.Encrypt); err == nil {
					if ev, err := wxcrypt.ParseEvent(msg); err == nil && (ev.AppID == "" || ev.AppID == fuzzEventsAppID) && ev.CreateTime <= latest {
						want, accept = ev, true
					}
				} else if !errors.Is(err, wxcrypt.ErrMalformed) && !errors.Is(err, wxcrypt.ErrAppIDMismatch) {
					t.Fatalf("Decrypt: %v", err)
				}
			}
		}
		switch {
		case w.Code >= 500:
			t.Fatalf("answered %d %q", w.Code, w.Body.String())
		case accept && (w.Code != http.StatusOK || w.Body.String() != "success"):
			t.Fatalf("a signed event of this platform was answered %d %q", w.Code, w.Body.String())
		case !accept && w.Code == http.StatusOK:
			t.Fatalf("accepted a body that is not a signed event of this platform: %q", body)
		case !accept && w.Code != 400 && w.Code != 401 && w.Code != 413:
			t.Fatalf("refused with %d, want 400, 401 or 413", w.Code)
		case !signedOK && w.Code == http.StatusBadRequest && len(body) <= maxEventBody:
			// An unsigned body may be refused as malformed only if it does not parse.
			if _, err := wxcrypt.ParseEnvelope(body); err == nil {
				t.Fatalf("a parsable unsigned body was answered 400, want 401")
			}
		}
		if !accept {
			if len(sink.events) != 0 {
				t.Fatalf("a refused push applied %v", sink.events)
			}
			return
		}
		if len(sink.events) != 1 || sink.events[0] != want {
			t.Fatalf("applied %+v, want exactly %+v", sink.events, want)
		}
		// A replay is acknowledged and applies nothing.
		if w := post(); w.Code != http.StatusOK || w.Body.String() != "success" || len(sink.events) != 1 {
			t.Fatalf("replay: %d %q, %d events applied", w.Code, w.Body.String(), len(sink.events))
		}
	})
}
