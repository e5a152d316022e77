package message

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"

	"github.com/wxgate/wxgate/internal/store"
)

// QueueStore is the durable queue StoreInbox writes to (the store).
type QueueStore interface {
	QueueInboundMessage(ctx context.Context, componentAppID, appid string, m store.InboundMessage) (store.Queued, error)
}

var _ QueueStore = (*store.Store)(nil)

// StoreInbox is the default Inbox: it queues each message in the store's
// inbound_messages table, once per tenant bound to the account, before
// WeChat is answered, so nothing received is lost whatever delivers it
// later.
type StoreInbox struct {
	ComponentAppID string
	Store          QueueStore
}

var _ Inbox = (*StoreInbox)(nil)

// MessageReceived queues msg for the tenants bound to appid. A retry of a
// message already queued answers ErrDuplicate; a message for an account
// bound to no tenant, ErrNoTenant.
func (b *StoreInbox) MessageReceived(ctx context.Context, appid string, msg Message) error {
	q, err := b.Store.QueueInboundMessage(ctx, b.ComponentAppID, appid, store.InboundMessage{
		DedupeKey: msg.DedupeKey(), MsgType: msg.MsgType,
	})
	switch {
	case err != nil:
		return err
	case q.Added > 0:
		return nil
	case q.Tenants == 0:
		return ErrNoTenant
	}
	return ErrDuplicate
}

// digest names a secret (an authorization code) in keys without revealing it.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

func constantEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// Webhooks queues message.received events for the tenants bound to an
// account (webhook.Service); retries of one message are one event.
type Webhooks interface {
	EnqueueForAccount(ctx context.Context, appid string, msg map[string]any) (int, error)
}

// WebhookInbox delivers messages to tenants as message.received webhook
// events. The webhook event is queued first (idempotent: its id derives
// from the message), then the message's receipt in the store, which tells
// a retry from an account bound to no tenant. A failure between the two is
// answered with an error, so WeChat pushes again and the second attempt
// finds the event already queued: nothing is lost and nothing doubled.
type WebhookInbox struct {
	Webhooks Webhooks
	Receipts *StoreInbox
}

var _ Inbox = (*WebhookInbox)(nil)

// MessageReceived queues msg for appid's tenants (Inbox).
func (b *WebhookInbox) MessageReceived(ctx context.Context, appid string, msg Message) error {
	if _, err := b.Webhooks.EnqueueForAccount(ctx, appid, msg.Data()); err != nil {
		return fmt.Errorf("message: queue the webhook event: %w", err)
	}
	return b.Receipts.MessageReceived(ctx, appid, msg)
}
