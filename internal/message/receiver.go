package message

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/lease"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// Inbox receives every message that is not WeChat's release test, for the
// tenants bound to the account (a message.received webhook event each).
type Inbox interface {
	// MessageReceived queues msg for the tenants bound to appid. It must be
	// durable when it returns nil, and a retry of the same message
	// (msg.DedupeKey) must not be delivered twice. It answers ErrDuplicate
	// for such a retry and ErrNoTenant when the account is bound to no
	// tenant; any other error makes WeChat push the message again.
	MessageReceived(ctx context.Context, appid string, msg Message) error
}

// QueryAuthExchanger exchanges the release test's authorization code
// (component.Flow).
type QueryAuthExchanger interface {
	// ExchangeQueryAuthCode answers the account and its access token.
	ExchangeQueryAuthCode(ctx context.Context, code secret.Value) (string, secret.Value, error)
}

// CustomSender sends a customer-service text message (wechat.Client).
type CustomSender interface {
	SendCustomText(ctx context.Context, accessToken secret.Value, appid, toOpenID, content string) error
}

// Receipts remembers finished jobs by key (the store's event receipts).
type Receipts interface {
	EventSeen(ctx context.Context, digest string) (bool, error)
	RecordEvent(ctx context.Context, digest string) error
}

var _ QueryAuthExchanger = (*component.Flow)(nil)

// Budget is WeChat's: a push not answered within it is retried, and the
// follower may be told the account cannot serve.
const Budget = 5 * time.Second

// answerWithin bounds the work done before answering, leaving room for the
// network under Budget.
const answerWithin = 4 * time.Second

// The outcome label of the messages metric.
const (
	outcomeQueued       = "queued"    // queued for the bound tenants
	outcomeDuplicate    = "duplicate" // a retry of a message already queued
	outcomeNoTenant     = "no_tenant" // an account bound to no tenant: nobody to queue it for
	outcomeReleaseText  = "release_text"
	outcomeReleaseAPI   = "release_api"
	outcomeReleaseEvent = "release_event"
	outcomeRetry        = "retry" // queueing failed: WeChat pushes it again
	outcomeStale        = "stale" // created before the replay window: acknowledged, not queued
	outcomeFuture       = "future"
	outcomeBadSignature = "bad_signature"
	outcomeMalformed    = "malformed"
	outcomeWrongAppID   = "wrong_appid"
	outcomeTooLarge     = "too_large"
	outcomeUnreadable   = "unreadable"
)

// Options configure a Receiver.
type Options struct {
	// Crypter verifies and decrypts pushes with the platform's Token and
	// key; the plaintext's trailing appid is the component's.
	Crypter *wxcrypt.Crypter
	// Inbox queues ordinary messages for the account's tenants; an event
	// for an account bound to none is answered as the release test
	// expects.
	Inbox Inbox
	// Exchanger and Sender answer the release test's QUERY_AUTH_CODE.
	Exchanger QueryAuthExchanger
	Sender    CustomSender
	// Receipts and Leases make the QUERY_AUTH_CODE answer happen once
	// across WeChat's retries and the replicas.
	Receipts Receipts
	Leases   lease.Store
	// Owner identifies this replica in leases.
	Owner string
	// ReplayWindow, if set, is how long platform event receipts are kept:
	// a message created longer ago than that is acknowledged and not
	// queued (component.JudgeTimes), as on the authorization event URL.
	ReplayWindow time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
	Metrics      *obs.Metrics
}

// Receiver is the policy of the message and event receive URL.
type Receiver struct {
	o      Options
	log    *slog.Logger
	leases *lease.Leases
	jobs   sync.WaitGroup
}

// New builds a Receiver.
func New(o Options) *Receiver {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Receiver{o: o, log: o.Logger, leases: lease.New(o.Leases, o.Owner, o.Now, o.Logger)}
}

// Run binds the release test's background answers to ctx and, when ctx
// ends, waits for those still running.
func (r *Receiver) Run(ctx context.Context) error {
	r.leases.Bind(ctx)
	<-ctx.Done()
	r.jobs.Wait()
	return nil
}

// Outcome is what the Receiver decided about one push.
type Outcome struct {
	Answer component.Answer
	// Reply is the body of a success: a passive reply envelope, or nil
	// for the plain "success".
	Reply []byte
	// Result is the label the messages metric counts it under.
	Result string
	// Reason is a short text for a refusal's body (never a secret).
	Reason string
}

// Unread refuses a push whose body could not be read: over the size cap
// (tooLarge) or cut off.
func (r *Receiver) Unread(ctx context.Context, tooLarge bool) Outcome {
	if tooLarge {
		return r.refuse(ctx, component.AnswerTooLarge, outcomeTooLarge, "request body too large")
	}
	return r.refuse(ctx, component.AnswerMalformed, outcomeUnreadable, "unreadable body")
}

// VerifyURL answers WeChat's URL verification (a GET with signature,
// timestamp, nonce and echostr): echostr and true when the URL signature
// is the platform's.
func (r *Receiver) VerifyURL(signature, timestamp, nonce, echostr string) (string, bool) {
	if signature == "" || echostr == "" {
		return "", false
	}
	want := r.o.Crypter.SignURL(timestamp, nonce)
	if len(want) != len(signature) || !constantEqual(want, signature) {
		return "", false
	}
	return echostr, true
}

// Receive decides about one push for the account appid (from the URL).
// Refusals (malformed, bad signature, wrong appid, a time in the future)
// change nothing; a message created before the replay window is
// acknowledged and not queued. The
// release test's messages are recognised by their content on an account
// bound to no tenant; everything else is queued in the Inbox before
// "success".
func (r *Receiver) Receive(ctx context.Context, appid string, p component.Push) Outcome {
	start := time.Now()
	env, err := wxcrypt.ParseEnvelope(p.Body)
	if err != nil {
		return r.refuse(ctx, component.AnswerMalformed, outcomeMalformed, "malformed body")
	}
	if p.MsgSignature == "" || !r.o.Crypter.Verify(p.MsgSignature, p.Timestamp, p.Nonce, env.Encrypt) {
		return r.refuse(ctx, component.AnswerBadSignature, outcomeBadSignature, "bad signature")
	}
	sent, err := strconv.ParseInt(p.Timestamp, 10, 64)
	if err != nil {
		return r.refuse(ctx, component.AnswerMalformed, outcomeMalformed, "bad timestamp")
	}
	plain, err := r.o.Crypter.Decrypt(env.Encrypt)
	if errors.Is(err, wxcrypt.ErrAppIDMismatch) {
		return r.refuse(ctx, component.AnswerMalformed, outcomeWrongAppID, "wrong appid")
	}
	if err != nil {
		return r.refuse(ctx, component.AnswerMalformed, outcomeMalformed, "undecryptable body")
	}
	msg, err := Parse(plain)
	if err != nil {
		return r.refuse(ctx, component.AnswerMalformed, outcomeMalformed, "malformed message")
	}
	// The same freshness policy as the authorization event URL: a time
	// ahead of the clock is forged or out of sync; a message older than
	// the replay window may be a replay whose receipt is gone.
	switch component.JudgeTimes(r.o.Now(), sent, msg.CreateTime, r.o.ReplayWindow) {
	case component.TimingFuture:
		r.log.WarnContext(ctx, "message: timestamp in the future; forged or clocks out of sync", "appid", appid,
			"timestamp", p.Timestamp, "create_time", msg.CreateTime)
		return r.refuse(ctx, component.AnswerMalformed, outcomeFuture, "timestamp in the future")
	case component.TimingStale:
		r.log.WarnContext(ctx, "message: created before the replay window; acknowledged, not queued", "appid", appid,
			"msg_type", msg.TypeLabel(), "create_time", msg.CreateTime)
		r.count(msg.TypeLabel(), outcomeStale, time.Since(start))
		return Outcome{Answer: component.AnswerSuccess, Result: outcomeStale}
	}
	out := r.handle(ctx, appid, msg)
	r.count(msg.TypeLabel(), out.Result, time.Since(start))
	return out
}

// The release test's markers (docs/wechat.md, "The full-network release test").
const (
	releaseText       = "TESTCOMPONENT_MSG_TYPE_TEXT"
	releaseTextReply  = "TESTCOMPONENT_MSG_TYPE_TEXT_callback"
	releaseQueryAuth  = "QUERY_AUTH_CODE:"
	releaseAPISuffix  = "_from_api"
	releaseEventReply = "from_callback"
)

// handle answers an authenticated message: everything goes through the
// Inbox first; for an account bound to no tenant (the release test's), the
// release test's texts and events are answered as the test expects.
func (r *Receiver) handle(ctx context.Context, appid string, msg Message) Outcome {
	// The release test's account is bound to no tenant, so its texts are
	// answered only when the Inbox says so: a follower of a merchant's
	// account who types them is an ordinary message, and cannot make the
	// platform call api_query_auth at will.
	code, queryAuth := strings.CutPrefix(msg.Content, releaseQueryAuth)
	qctx, cancel := context.WithTimeout(ctx, answerWithin)
	defer cancel()
	err := r.o.Inbox.MessageReceived(qctx, appid, msg)
	noTenant := errors.Is(err, ErrNoTenant)
	switch {
	case noTenant && msg.MsgType == TypeText && msg.Content == releaseText:
		return r.reply(ctx, msg, releaseTextReply, outcomeReleaseText)
	case noTenant && msg.MsgType == TypeText && queryAuth && code != "":
		r.answerQueryAuth(ctx, appid, msg.FromUserName, code)
		return Outcome{Answer: component.AnswerSuccess, Result: outcomeReleaseAPI}
	}
	switch {
	case err == nil:
		return Outcome{Answer: component.AnswerSuccess, Result: outcomeQueued}
	case errors.Is(err, ErrDuplicate):
		return Outcome{Answer: component.AnswerSuccess, Result: outcomeDuplicate}
	case errors.Is(err, ErrNoTenant) && msg.MsgType == TypeEvent:
		// An account bound to no tenant has nobody its events could go
		// to; the release test's account is one, and its event expects
		// this reply. The store, not a replica's cache, says so.
		return r.reply(ctx, msg, msg.Event+releaseEventReply, outcomeReleaseEvent)
	case errors.Is(err, ErrNoTenant):
		return Outcome{Answer: component.AnswerSuccess, Result: outcomeNoTenant}
	}
	r.log.ErrorContext(ctx, "message: queueing failed; WeChat will push it again", "appid", appid, "msg_type", msg.TypeLabel(), "err", err.Error())
	return Outcome{Answer: component.AnswerRetry, Result: outcomeRetry}
}

// The errors an Inbox answers for a message it did not queue; both are
// acknowledged to WeChat and counted apart.
var (
	// ErrDuplicate: the message was queued before (a retry).
	ErrDuplicate = errors.New("message: already queued")
	// ErrNoTenant: the account is bound to no tenant.
	ErrNoTenant = errors.New("message: account bound to no tenant")
)

// reply answers msg with an encrypted passive text reply.
func (r *Receiver) reply(ctx context.Context, msg Message, content, result string) Outcome {
	now := r.o.Now().Unix()
	body, err := r.o.Crypter.SealReply(TextReply(msg, now, content), strconv.FormatInt(now, 10), nonce())
	if err != nil {
		r.log.ErrorContext(ctx, "message: sealing a passive reply failed", "err", err.Error())
		return Outcome{Answer: component.AnswerRetry, Result: outcomeRetry}
	}
	return Outcome{Answer: component.AnswerSuccess, Reply: body, Result: result}
}

// queryAuthTTL bounds one answer to a QUERY_AUTH_CODE message: the
// exchange and the custom message, each with its retries.
var queryAuthTTL = lease.DefaultTTL

// answerQueryAuth answers the release test's QUERY_AUTH_CODE in the
// background, after "success" was written: api_query_auth with the code,
// then a customer-service message "<code>_from_api" to the follower with
// the token it returned. It happens once per code across WeChat's retries
// and the replicas: the holder of the code's lease does it and records a
// receipt; a copy arriving meanwhile finds the lease taken, one arriving
// later finds the receipt. If the holder fails before the receipt, a later
// retry does it again (api_query_auth then refuses a used code, and the
// failure is logged).
func (r *Receiver) answerQueryAuth(ctx context.Context, appid, openid, code string) {
	key := "query_auth_code:" + digest(code)
	jctx, cancel := r.leases.Detach(ctx, queryAuthTTL)
	r.jobs.Add(1)
	go func() {
		defer r.jobs.Done()
		defer cancel()
		// Held per answer, not per replica: two copies on one replica
		// must not both hold it.
		held, err := r.leases.Attempt().Take(jctx, key, queryAuthTTL)
		if err != nil || held == nil {
			if err != nil {
				r.log.WarnContext(jctx, "message: release test: taking the lease failed", "appid", appid, "err", err.Error())
			}
			return
		}
		defer held.Release(jctx)
		if seen, err := r.o.Receipts.EventSeen(jctx, key); err != nil || seen {
			return
		}
		account, token, err := r.o.Exchanger.ExchangeQueryAuthCode(jctx, secret.Value(code))
		if err != nil {
			r.log.WarnContext(jctx, "message: release test: api_query_auth failed", "appid", appid, "err", err.Error())
			return
		}
		if err := r.o.Sender.SendCustomText(jctx, token, account, openid, code+releaseAPISuffix); err != nil {
			r.log.WarnContext(jctx, "message: release test: custom/send failed", "appid", account, "err", err.Error())
			return
		}
		if err := r.o.Receipts.RecordEvent(jctx, key); err != nil {
			r.log.WarnContext(jctx, "message: release test: recording the answer failed", "appid", account, "err", err.Error())
		}
		r.log.InfoContext(jctx, "message: answered the release test's QUERY_AUTH_CODE", "appid", account)
	}()
}

// refuse counts and logs a refused push.
func (r *Receiver) refuse(ctx context.Context, a component.Answer, result, reason string) Outcome {
	r.count("none", result, 0)
	component.LogRefusal(ctx, r.log, "message push refused", result)
	return Outcome{Answer: a, Result: result, Reason: reason}
}

func (r *Receiver) count(msgType, result string, took time.Duration) {
	if r.o.Metrics == nil {
		return
	}
	r.o.Metrics.MessagesReceived.WithLabelValues(msgType, result).Inc()
	if took > 0 {
		r.o.Metrics.MessageReplySeconds.WithLabelValues(result).Observe(took.Seconds())
	}
}

// nonce is a random decimal nonce like WeChat's.
func nonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatUint(binary.BigEndian.Uint64(b[:])%9_000_000_000+1_000_000_000, 10)
}
