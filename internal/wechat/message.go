package wechat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
)

// APICustomSend names the customer-service message API in metrics.
const APICustomSend = "message/custom/send"

// SendCustomText sends a text customer-service message to a follower of
// the account appid (POST /cgi-bin/message/custom/send) with the account's
// access token. An errcode answer becomes AsError's *errs.Error.
func (c *Client) SendCustomText(ctx context.Context, accessToken secret.Value, appid, toOpenID, content string) error {
	body, err := json.Marshal(map[string]any{"touser": toOpenID, "msgtype": "text", "text": map[string]string{"content": content}})
	if err != nil {
		return errs.Wrap(errs.Internal, "internal error", fmt.Errorf("wechat: encode %s: %w", APICustomSend, err))
	}
	resp, err := c.Call(ctx, Request{API: APICustomSend, Method: http.MethodPost, Path: "/cgi-bin/message/custom/send",
		Body: body, AccessToken: accessToken, Account: appid})
	if err != nil {
		return err
	}
	return resp.Err()
}
