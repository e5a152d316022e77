package httpapi

import (
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/component"
)

// maxEventBody bounds a pushed event; real ones are under 2 KiB.
const maxEventBody = 64 << 10

// eventStatus is the HTTP status of each answer to a push.
var eventStatus = map[component.Answer]int{
	component.AnswerSuccess:      http.StatusOK,
	component.AnswerRetry:        http.StatusServiceUnavailable,
	component.AnswerMalformed:    http.StatusBadRequest,
	component.AnswerBadSignature: http.StatusUnauthorized,
	component.AnswerTooLarge:     http.StatusRequestEntityTooLarge,
}

// handleEvents is POST /wechat/events, the authorization event receive URL
// (docs/api.md, "POST /wechat/events"). It reads the body under the size cap and hands it, with
// the URL's signature fields, to the platform's event policy
// (component.Events), whose outcome it writes: "success", "try again" or
// the reason of a refusal.
func handleEvents(pick pickPlatform, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		d, ok := platformForWeChat(c, pick, log, hasEvents)
		if !ok {
			return
		}
		events := d.Events
		ctx := c.Request.Context()
		var out component.Outcome
		if p, read, tooBig := readPush(c, maxEventBody); !read {
			out = events.Unread(ctx, tooBig)
		} else {
			out = events.Receive(ctx, p)
		}
		writePushAnswer(c, out.Answer, out.Reason, nil)
	}
}

// writePushAnswer answers a WeChat push as the platform's policy decided:
// an encrypted passive reply, "success", "try again" (WeChat pushes again)
// or the reason of a refusal, with eventStatus's status.
func writePushAnswer(c *gin.Context, a component.Answer, reason string, reply []byte) {
	switch {
	case a == component.AnswerSuccess && reply != nil:
		c.Data(http.StatusOK, "application/xml; charset=utf-8", reply)
		return
	case a == component.AnswerSuccess:
		reason = "success"
	case a == component.AnswerRetry:
		reason = "try again"
	}
	c.Data(eventStatus[a], "text/plain; charset=utf-8", []byte(reason))
}

// readPush reads a WeChat push: the body, at most limit bytes, and the
// URL's signature fields. read is false when the body could not be read,
// tooBig when it was over limit.
func readPush(c *gin.Context, limit int64) (p component.Push, read, tooBig bool) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var over *http.MaxBytesError
		return component.Push{}, false, errors.As(err, &over)
	}
	q := c.Request.URL.Query()
	return component.Push{Body: body, MsgSignature: q.Get("msg_signature"), Timestamp: q.Get("timestamp"), Nonce: q.Get("nonce")}, true, false
}
