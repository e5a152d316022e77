package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

const (
	// maxEventBody bounds a pushed event; real ones are under 2 KiB.
	maxEventBody = 64 << 10
	// eventClockWindow: pushes whose timestamp is further than this from
	// our clock are logged (WeChat retries late; they are still handled).
	eventClockWindow = 5 * time.Minute
)

// knownInfoTypes bounds the info_type metric label.
var knownInfoTypes = map[string]bool{
	wxcrypt.InfoTypeVerifyTicket: true, wxcrypt.InfoTypeAuthorized: true,
	wxcrypt.InfoTypeUpdateAuthorized: true, wxcrypt.InfoTypeUnauthorized: true,
}

// handleEvents is POST /wechat/events, the authorization event receive URL
// (docs/api.md, "POST /wechat/events"). Refusals (413 oversize, 400 malformed or wrong appid, 401
// bad signature) happen before anything is stored. An event is remembered by
// the digest of its ciphertext only after it was applied, so a replay answers
// success without doing anything, while a push whose handling failed
// transiently (503) or whose replica died half-way is handled again when
// WeChat retries it. Two copies handled at the same moment are harmless:
// tickets are stored as they are, authorization codes are one-time, and an
// unauthorized event older than the account's authorization is ignored.
func handleEvents(d PlatformDeps, log *slog.Logger) gin.HandlerFunc {
	if d.Crypter == nil || d.Events == nil || d.Receipts == nil {
		return notWired(log)
	}
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		refuse := func(status int, result, msg string) {
			d.countEvent("", result)
			log.WarnContext(ctx, "event refused", "status", status, "reason", result)
			c.Data(status, "text/plain; charset=utf-8", []byte(msg))
			c.Abort()
		}
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxEventBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				refuse(http.StatusRequestEntityTooLarge, "too_large", "request body too large")
				return
			}
			refuse(http.StatusBadRequest, "unreadable", "unreadable body")
			return
		}
		env, err := wxcrypt.ParseEnvelope(body)
		if err != nil {
			refuse(http.StatusBadRequest, "malformed", "malformed body")
			return
		}
		q := c.Request.URL.Query()
		sig, ts, nonce := q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce")
		if sig == "" || !d.Crypter.Verify(sig, ts, nonce, env.Encrypt) {
			refuse(http.StatusUnauthorized, "bad_signature", "bad signature")
			return
		}
		plain, err := d.Crypter.Decrypt(env.Encrypt)
		if errors.Is(err, wxcrypt.ErrAppIDMismatch) {
			refuse(http.StatusBadRequest, "wrong_appid", "wrong appid")
			return
		}
		if err != nil {
			refuse(http.StatusBadRequest, "undecryptable", "undecryptable body")
			return
		}
		ev, err := wxcrypt.ParseEvent(plain)
		if err != nil {
			if !isMessage(plain) {
				refuse(http.StatusBadRequest, "malformed", "malformed event")
				return
			}
			// An authenticated message that is not a platform event (an
			// account's message in the ToUserName form): acknowledged.
			d.countEvent("other", "ignored")
			c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("success"))
			return
		}
		if ev.AppID != "" && ev.AppID != d.ComponentAppID || env.AppID != "" && env.AppID != d.ComponentAppID {
			refuse(http.StatusBadRequest, "wrong_appid", "wrong appid")
			return
		}
		sec, tsErr := strconv.ParseInt(ts, 10, 64)
		age := d.now().Sub(time.Unix(sec, 0))
		if tsErr != nil || absDuration(age) > eventClockWindow {
			log.WarnContext(ctx, "event timestamp far from our clock (late retry, or clock skew)", "info_type", ev.InfoType, "timestamp", ts)
		}
		if tsErr == nil && d.ReplayWindow > 0 && age > d.ReplayWindow {
			// The timestamp is covered by msg_signature, so this is a
			// genuine push replayed after its receipt may have been
			// pruned: acknowledge it and apply nothing.
			d.countEvent(ev.InfoType, "stale")
			log.WarnContext(ctx, "event older than the replay window; ignored", "info_type", ev.InfoType, "timestamp", ts)
			c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("success"))
			return
		}
		sum := sha256.Sum256([]byte(env.Encrypt))
		digest := hex.EncodeToString(sum[:])
		seen, err := d.Receipts.EventSeen(ctx, digest)
		if err != nil {
			d.countEvent(ev.InfoType, "error")
			log.ErrorContext(ctx, "event: reading the receipt failed; WeChat will retry", "err", err.Error())
			c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("try again"))
			return
		}
		if seen {
			d.countEvent(ev.InfoType, "replay")
			c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("success"))
			return
		}
		if err := d.Events.HandleEvent(ctx, ev); err != nil {
			if transient(err) {
				d.countEvent(ev.InfoType, "retry")
				log.WarnContext(ctx, "event: handling failed; WeChat will retry", "info_type", ev.InfoType, "err", err.Error())
				c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("try again"))
				return
			}
			d.countEvent(ev.InfoType, "failed")
			log.WarnContext(ctx, "event: handling failed for good", "info_type", ev.InfoType, "err", err.Error())
		} else {
			d.countEvent(ev.InfoType, "ok")
		}
		// The event is applied (or can never be); remember it so a replay
		// does nothing. If this write fails, a replay is applied again,
		// which the handlers tolerate.
		if err := d.Receipts.RecordEvent(ctx, digest); err != nil {
			log.WarnContext(ctx, "event: recording the receipt failed", "info_type", ev.InfoType, "err", err.Error())
		}
		c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("success"))
	}
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

func (d PlatformDeps) countEvent(infoType, result string) {
	if d.Metrics == nil {
		return
	}
	if infoType != "" && !knownInfoTypes[infoType] {
		infoType = "other"
	}
	if infoType == "" {
		infoType = "none"
	}
	d.Metrics.EventsReceived.WithLabelValues(infoType, result).Inc()
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
