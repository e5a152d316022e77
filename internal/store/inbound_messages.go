package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

// InboundMessage is the receipt of a message or event received for an
// authorized account: only what tells a retry apart. The message itself
// reaches the tenants as a webhook event; nothing reads it back from here,
// so its content is not kept (the payload column holds "{}").
type InboundMessage struct {
	// DedupeKey identifies the message across WeChat's retries.
	DedupeKey string
	MsgType   string
}

// Queued says what QueueInboundMessage did.
type Queued struct {
	// Added is the number of rows added, one per tenant.
	Added int64
	// Tenants is the number of tenants the account is bound to; it is
	// only counted when nothing was added (a retry, or no tenant).
	Tenants int64
}

// QueueInboundMessage queues m once for every tenant bound to the account
// appid of componentAppID (a pending binding, waiting for the operator's
// approval, receives nothing), in one statement: the bindings are read inside
// the insert, so the tenants are those bound when it runs. A message
// already queued for a tenant (a retry with the same DedupeKey) is not
// queued again. When nothing was added it counts the account's tenants,
// which tells a retry from an account bound to no tenant.
func (s *Store) QueueInboundMessage(ctx context.Context, componentAppID, appid string, m InboundMessage) (Queued, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	// The row id is per tenant; a random prefix and the tenant id keep it
	// unique without a round trip.
	prefix := "msg_" + randomHex(12) + "_"
	res := s.db.WithContext(ctx).Exec(`INSERT INTO inbound_messages
  (id, component_appid, appid, tenant_id, dedupe_key, msg_type, payload, received_at)
SELECT ? || tenant_id, component_appid, appid, tenant_id, ?, ?, '{}', ?
FROM tenant_authorizers WHERE component_appid = ? AND appid = ? AND status = ?
ON CONFLICT (component_appid, appid, tenant_id, dedupe_key) DO NOTHING`,
		prefix, m.DedupeKey, m.MsgType, ms(s.now()), componentAppID, appid, BindingBound)
	if res.Error != nil {
		return Queued{}, translate(res.Error, "inbound message")
	}
	q := Queued{Added: res.RowsAffected}
	if q.Added == 0 {
		err := s.db.WithContext(ctx).Model(&bindingRow{}).Where("component_appid = ? AND appid = ? AND status = ?", componentAppID, appid, BindingBound).Count(&q.Tenants).Error
		if err != nil {
			return Queued{}, translate(err, "bindings")
		}
	}
	return q, nil
}

// DeleteInboundMessagesBefore prunes the receipts of messages received
// before t: past WeChat's retries (minutes), a receipt only answers "seen";
// the tenants' copies live on as webhook events.
func (s *Store) DeleteInboundMessagesBefore(ctx context.Context, t time.Time) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Exec(`DELETE FROM inbound_messages WHERE received_at < ?`, ms(t))
	return res.RowsAffected, translate(res.Error, "inbound messages")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
