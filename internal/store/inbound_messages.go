package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// InboundMessage is a message or event received for an authorized account.
type InboundMessage struct {
	// DedupeKey identifies the message across WeChat's retries.
	DedupeKey string
	MsgType   string
	// Payload is the message's fields as a JSON object.
	Payload []byte
}

// QueueInboundMessage queues m once for every tenant bound to the account
// appid of componentAppID, in one statement: the bindings are read inside
// the insert, so the tenants are those bound when it runs. A message
// already queued for a tenant (a retry with the same DedupeKey) is not
// queued again. It reports how many rows were added: zero for a retry, or
// for an account bound to no tenant.
func (s *Store) QueueInboundMessage(ctx context.Context, componentAppID, appid string, m InboundMessage) (int64, error) {
	// The row id is per tenant; a random prefix and the tenant id keep it
	// unique without a round trip.
	prefix := "msg_" + randomHex(12) + "_"
	res := s.db.WithContext(ctx).Exec(`INSERT INTO inbound_messages
  (id, component_appid, appid, tenant_id, dedupe_key, msg_type, payload, received_at)
SELECT ? || tenant_id, component_appid, appid, tenant_id, ?, ?, ?, ?
FROM tenant_authorizers WHERE component_appid = ? AND appid = ?
ON CONFLICT (component_appid, appid, tenant_id, dedupe_key) DO NOTHING`,
		prefix, m.DedupeKey, m.MsgType, string(m.Payload), ms(s.now()), componentAppID, appid)
	return res.RowsAffected, translate(res.Error, "inbound message")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
