package component

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// EventHandler applies a verified, decrypted platform event (Flow). An
// error means the event must be handled again when WeChat retries it.
type EventHandler interface {
	HandleEvent(ctx context.Context, ev wxcrypt.Event) error
}

var _ EventHandler = (*Flow)(nil)

// EventReceipts remembers handled events by digest (the store).
type EventReceipts interface {
	// EventSeen reports whether digest was recorded as handled.
	EventSeen(ctx context.Context, digest string) (bool, error)
	// RecordEvent records digest as handled (idempotent).
	RecordEvent(ctx context.Context, digest string) error
}

var _ EventReceipts = (*store.Store)(nil)

// Freshness of pushed events (docs/architecture.md, "Platform events").
const (
	// FutureWindow is how far ahead of this replica's clock a push's URL
	// timestamp or its event's CreateTime may be. WeChat stamps a push when
	// it sends it, so a later time means clocks out of sync by more than
	// NTP allows, or a forged timestamp: msg_signature hashes the sorted
	// concatenation of token, timestamp, nonce and Encrypt, so digits can
	// move from the nonce into the timestamp without changing it, and
	// moving digits always makes the timestamp later.
	FutureWindow = 5 * time.Minute
	// lateWindow: a push whose URL timestamp is older than this is logged
	// (a late retry, or clock skew); it is still handled.
	lateWindow = 5 * time.Minute
)

// The result label of the events metric, one per way a push ends.
const (
	resultOK           = "ok"      // applied
	resultReplay       = "replay"  // handled before: acknowledged, not applied
	resultStale        = "stale"   // older than the replay window: acknowledged, not applied
	resultIgnored      = "ignored" // an authenticated message that is no platform event
	resultFailed       = "failed"  // applying failed for good: acknowledged
	resultRetry        = "retry"   // applying failed transiently: WeChat retries
	resultError        = "error"   // the receipts could not be read: WeChat retries
	resultTooLarge     = "too_large"
	resultUnreadable   = "unreadable"
	resultMalformed    = "malformed"
	resultBadSignature = "bad_signature"
	resultWrongAppID   = "wrong_appid"
	resultUndecrypt    = "undecryptable"
	resultBadTimestamp = "bad_timestamp"
	resultFuture       = "future"
)

// knownInfoTypes bounds the info_type metric label.
var knownInfoTypes = map[string]bool{
	wxcrypt.InfoTypeVerifyTicket: true, wxcrypt.InfoTypeAuthorized: true,
	wxcrypt.InfoTypeUpdateAuthorized: true, wxcrypt.InfoTypeUnauthorized: true,
}

// EventOptions configure Events.
type EventOptions struct {
	// AppID is the component appid: events of another platform are refused.
	AppID string
	// Crypter verifies and decrypts the pushes.
	Crypter *wxcrypt.Crypter
	// Handler applies the events (Flow).
	Handler EventHandler
	// Receipts makes replayed events harmless (the store).
	Receipts EventReceipts
	// ReplayWindow, if set, is how long receipts are kept: an event created
	// longer ago than that is acknowledged and not applied.
	ReplayWindow time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
	Metrics      *obs.Metrics
}

// Events is the policy of the authorization event URL: which pushes are
// refused, which are applied, which are acknowledged without effect, and
// which WeChat is asked to retry.
type Events struct {
	o   EventOptions
	log *slog.Logger
}

// NewEvents builds Events.
func NewEvents(o EventOptions) *Events {
	withDefaults(&o.Now, &o.Logger)
	return &Events{o: o, log: o.Logger}
}

// Push is one POST to the event URL as received: its body and the URL's
// signature fields.
type Push struct {
	Body         []byte
	MsgSignature string
	Timestamp    string
	Nonce        string
}

// Answer says how to answer a push.
type Answer int

// The answers.
const (
	// AnswerSuccess: 200 "success"; WeChat does not push it again.
	AnswerSuccess Answer = iota
	// AnswerRetry: handling failed transiently; a 5xx makes WeChat retry.
	AnswerRetry
	// AnswerMalformed: the push is refused as malformed (400).
	AnswerMalformed
	// AnswerBadSignature: msg_signature does not match (401).
	AnswerBadSignature
	// AnswerTooLarge: the body is over the size cap (413).
	AnswerTooLarge
)

// Outcome is what Events decided about one push.
type Outcome struct {
	Answer Answer
	// Result is the label the events metric counts it under.
	Result string
	// Reason is a short text for a refusal's body (never a secret).
	Reason string
}

// Unread refuses a push whose body could not be read: over the size cap
// (tooLarge) or cut off.
func (e *Events) Unread(ctx context.Context, tooLarge bool) Outcome {
	if tooLarge {
		return e.refuse(ctx, AnswerTooLarge, resultTooLarge, "request body too large")
	}
	return e.refuse(ctx, AnswerMalformed, resultUnreadable, "unreadable body")
}

// Receive decides about one push. Refusals (malformed, wrong appid, bad
// signature, a timestamp in the future) happen before anything is stored.
// An event is remembered by the digest of its ciphertext only after it was
// applied, so a replay is acknowledged without effect, while a push whose
// handling failed transiently (or whose replica died half-way) is handled
// again when WeChat retries it. Once receipts are pruned, ReplayWindow
// turns a replayed push away by its event's CreateTime, which is inside
// the ciphertext and cannot be changed. Two copies handled at the same
// moment are harmless: an older ticket never replaces a newer one,
// authorization codes are one-time, and an unauthorized event older than
// the account's authorization is ignored.
func (e *Events) Receive(ctx context.Context, p Push) Outcome {
	env, err := wxcrypt.ParseEnvelope(p.Body)
	if err != nil {
		return e.refuse(ctx, AnswerMalformed, resultMalformed, "malformed body")
	}
	if p.MsgSignature == "" || !e.o.Crypter.Verify(p.MsgSignature, p.Timestamp, p.Nonce, env.Encrypt) {
		return e.refuse(ctx, AnswerBadSignature, resultBadSignature, "bad signature")
	}
	plain, err := e.o.Crypter.Decrypt(env.Encrypt)
	if errors.Is(err, wxcrypt.ErrAppIDMismatch) {
		return e.refuse(ctx, AnswerMalformed, resultWrongAppID, "wrong appid")
	}
	if err != nil {
		return e.refuse(ctx, AnswerMalformed, resultUndecrypt, "undecryptable body")
	}
	ev, err := wxcrypt.ParseEvent(plain)
	if err != nil {
		if !isMessage(plain) {
			return e.refuse(ctx, AnswerMalformed, resultMalformed, "malformed event")
		}
		// An authenticated message that is not a platform event (an
		// account's message in the ToUserName form): acknowledged.
		e.count("other", resultIgnored)
		return Outcome{Answer: AnswerSuccess, Result: resultIgnored}
	}
	if ev.AppID != "" && ev.AppID != e.o.AppID || env.AppID != "" && env.AppID != e.o.AppID {
		return e.refuse(ctx, AnswerMalformed, resultWrongAppID, "wrong appid")
	}
	if out, ok := e.fresh(ctx, p.Timestamp, ev); !ok {
		return out
	}
	sum := sha256.Sum256([]byte(env.Encrypt))
	digest := hex.EncodeToString(sum[:])
	seen, err := e.o.Receipts.EventSeen(ctx, digest)
	if err != nil {
		e.count(ev.InfoType, resultError)
		e.log.ErrorContext(ctx, "event: reading the receipt failed; WeChat will retry", "err", err.Error())
		return Outcome{Answer: AnswerRetry, Result: resultError}
	}
	if seen {
		e.count(ev.InfoType, resultReplay)
		return Outcome{Answer: AnswerSuccess, Result: resultReplay}
	}
	result := resultOK
	if err := e.o.Handler.HandleEvent(ctx, ev); err != nil {
		if transient(err) {
			e.count(ev.InfoType, resultRetry)
			e.log.WarnContext(ctx, "event: handling failed; WeChat will retry", "info_type", ev.InfoType, "err", err.Error())
			return Outcome{Answer: AnswerRetry, Result: resultRetry}
		}
		result = resultFailed
		e.log.WarnContext(ctx, "event: handling failed for good", "info_type", ev.InfoType, "err", err.Error())
	}
	e.count(ev.InfoType, result)
	// The event is applied (or can never be); remember it so a replay does
	// nothing. If this write fails, a replay is applied again, which the
	// handlers tolerate.
	if err := e.o.Receipts.RecordEvent(ctx, digest); err != nil {
		e.log.WarnContext(ctx, "event: recording the receipt failed", "info_type", ev.InfoType, "err", err.Error())
	}
	return Outcome{Answer: AnswerSuccess, Result: result}
}

// Timing is what JudgeTimes says about a verified push's times.
type Timing int

const (
	// TimingFresh: handle the push.
	TimingFresh Timing = iota
	// TimingLate: handle it, but its URL timestamp is more than lateWindow
	// behind the clock (a late retry, or clock skew): worth a log line.
	TimingLate
	// TimingFuture: refuse it (400): the URL timestamp or the CreateTime
	// is more than FutureWindow ahead of the clock.
	TimingFuture
	// TimingStale: acknowledge it and do nothing: it was created before
	// the replay window, so its receipt may have been pruned.
	TimingStale
)

// JudgeTimes is the freshness policy of WeChat's pushes, shared by the
// authorization event URL and the accounts' message URL
// (docs/architecture.md, "Platform events"). sent is the URL timestamp
// and created the CreateTime inside the ciphertext (signed, cannot be
// changed; 0 if none), both Unix seconds. The age is judged by created, or
// by sent without it; replayWindow 0 judges no age. Times are compared in
// whole seconds, so no value overflows.
func JudgeTimes(now time.Time, sent, created int64, replayWindow time.Duration) Timing {
	n := now.Unix()
	latest := n + int64(FutureWindow/time.Second)
	if sent > latest || created > latest {
		return TimingFuture
	}
	if created <= 0 {
		created = sent
	}
	if replayWindow > 0 && created < n-int64(replayWindow/time.Second) {
		return TimingStale
	}
	if sent < n-int64(lateWindow/time.Second) {
		return TimingLate
	}
	return TimingFresh
}

// fresh judges a verified push's times (JudgeTimes) and answers false with
// the outcome for a push that is not to be applied.
func (e *Events) fresh(ctx context.Context, timestamp string, ev wxcrypt.Event) (Outcome, bool) {
	sent, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return e.refuse(ctx, AnswerMalformed, resultBadTimestamp, "bad timestamp"), false
	}
	switch JudgeTimes(e.o.Now(), sent, ev.CreateTime, e.o.ReplayWindow) {
	case TimingFuture:
		e.log.WarnContext(ctx, "event: timestamp in the future; forged or clocks out of sync", "info_type", ev.InfoType,
			"timestamp", timestamp, "create_time", ev.CreateTime, "now", e.o.Now().Unix())
		return e.refuse(ctx, AnswerMalformed, resultFuture, "timestamp in the future"), false
	case TimingStale:
		// A genuine push replayed after its receipt may have been pruned:
		// acknowledge it and apply nothing.
		e.count(ev.InfoType, resultStale)
		e.log.WarnContext(ctx, "event: created before the replay window; ignored", "info_type", ev.InfoType,
			"create_time", ev.CreateTime, "timestamp", timestamp)
		return Outcome{Answer: AnswerSuccess, Result: resultStale}, false
	case TimingLate:
		e.log.WarnContext(ctx, "event: timestamp far behind our clock (late retry, or clock skew)", "info_type", ev.InfoType, "timestamp", timestamp)
	}
	return Outcome{}, true
}

// refuse counts and logs a refused push.
func (e *Events) refuse(ctx context.Context, a Answer, result, reason string) Outcome {
	e.count("", result)
	LogRefusal(ctx, e.log, "event refused", result)
	return Outcome{Answer: a, Result: result, Reason: reason}
}

// LogRefusal logs a refused push of WeChat's (an event, or an account's
// message) with its reason and, when the refusal usually means the gateway
// and the platform's settings disagree rather than an attack, what to check.
func LogRefusal(ctx context.Context, log *slog.Logger, msg, result string) {
	if hint := refusalHints[result]; hint != "" {
		log.WarnContext(ctx, msg, "reason", result, "hint", hint)
		return
	}
	log.WarnContext(ctx, msg, "reason", result)
}

// refusalHints are LogRefusal's hints by refusal result.
var refusalHints = map[string]string{
	resultBadSignature: "if every push is refused, WXGATE_COMPONENT_TOKEN must equal the message-check Token set on the Open Platform",
	resultUndecrypt:    "if every push is refused, WXGATE_COMPONENT_AES_KEY must equal the platform's EncodingAESKey",
	resultWrongAppID:   "the push names another platform: check WXGATE_COMPONENT_APPID",
}

// isMessage reports whether plain is a well-formed <xml> message with a
// MsgType (and no InfoType): not an event, but nothing wrong either.
func isMessage(plain []byte) bool {
	var m struct {
		XMLName xml.Name `xml:"xml"`
		MsgType string   `xml:"MsgType"`
	}
	return xml.Unmarshal(plain, &m) == nil && m.MsgType != ""
}

// transient reports whether handling may succeed when WeChat retries.
func transient(err error) bool {
	switch errs.CodeOf(err) {
	case errs.InvalidArgument, errs.NotFound, errs.UpstreamError, errs.AuthorizerUnauthorized, errs.PermissionSetMissing:
		return false
	}
	return true
}

func (e *Events) count(infoType, result string) {
	if e.o.Metrics == nil {
		return
	}
	if infoType != "" && !knownInfoTypes[infoType] {
		infoType = "other"
	}
	if infoType == "" {
		infoType = "none"
	}
	e.o.Metrics.EventsReceived.WithLabelValues(infoType, result).Inc()
}
