package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/message"
)

// maxMessageBody bounds a pushed message; real ones are under 4 KiB.
const maxMessageBody = 64 << 10

// handleAccountMessages is POST /wechat/accounts/{appid}/callback, the
// message and event receive URL (docs/api.md, "WeChat-facing endpoints").
// It reads the body under the size cap and hands it, with the URL's
// signature fields, to the platform's message policy (message.Receiver),
// whose outcome it writes: a passive reply, "success", "try again" or the
// reason of a refusal.
func handleAccountMessages(pick pickPlatform, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		d, ok := platformForWeChat(c, pick, log, hasMessages)
		if !ok {
			return
		}
		messages := d.Messages
		ctx := c.Request.Context()
		var out message.Outcome
		if p, read, tooBig := readPush(c, maxMessageBody); !read {
			out = messages.Unread(ctx, tooBig)
		} else {
			out = messages.Receive(ctx, c.Param("appid"), p)
		}
		writePushAnswer(c, out.Answer, out.Reason, out.Reply)
	}
}

// handleAccountMessagesVerify is GET /wechat/accounts/{appid}/callback:
// WeChat's URL verification echoes echostr when signature is the
// platform's; anything else is 401.
func handleAccountMessagesVerify(pick pickPlatform, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		d, ok := platformForWeChat(c, pick, log, hasMessages)
		if !ok {
			return
		}
		messages := d.Messages
		q := c.Request.URL.Query()
		echo, ok := messages.VerifyURL(q.Get("signature"), q.Get("timestamp"), q.Get("nonce"), q.Get("echostr"))
		if !ok {
			c.Data(http.StatusUnauthorized, "text/plain; charset=utf-8", []byte("bad signature"))
			return
		}
		c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(echo))
	}
}
