package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxgate/wxgate/internal/errs"
)

// Webhook event types (docs/api.md, "Webhooks").
const (
	EventAuthorized           = "authorizer.authorized"
	EventUpdated              = "authorizer.updated"
	EventUnauthorized         = "authorizer.unauthorized"
	EventNeedsReauthorization = "authorizer.needs_reauthorization"
	// EventBindingRequested tells the tenants holding an account that
	// another tenant authorized it and waits for the operator's approval.
	EventBindingRequested = "authorizer.binding_requested"
	EventMessageReceived  = "message.received"
	EventWebhookTest      = "webhook.test"
)

// EventTypes lists every webhook event type.
var EventTypes = []string{EventAuthorized, EventUpdated, EventUnauthorized, EventNeedsReauthorization, EventBindingRequested, EventMessageReceived, EventWebhookTest}

// WebhookEvent is one event of the outbox, for one tenant. Body is the
// exact JSON every attempt sends.
type WebhookEvent struct {
	ID        string
	TenantID  string
	Type      string
	AppID     string
	Body      []byte
	CreatedAt time.Time
}

type webhookEventRow struct {
	ID        string `gorm:"primaryKey"`
	TenantID  string
	Type      string
	AppID     string `gorm:"column:appid"`
	Body      string
	CreatedAt int64 `gorm:"autoCreateTime:false"`
}

func (webhookEventRow) TableName() string { return "webhook_events" }

// eventBody is the JSON a receiver gets.
type eventBody struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	CreatedAt string `json:"created_at"`
	AppID     string `json:"appid,omitempty"`
	Data      any    `json:"data"`
}

// AccountState is the AUTHORIZER object of docs/api.md: the account as the
// tenant API shows it and as the authorizer.* webhook events carry it (the
// state as of the event). It never carries a token.
type AccountState struct {
	AppID          string  `json:"appid"`
	Status         string  `json:"status"`
	PermissionSets []int   `json:"permission_sets"`
	TokenExpiresAt *string `json:"token_expires_at"`
	AuthorizedAt   string  `json:"authorized_at"`
	NickName       *string `json:"nick_name"`
}

// StateOf is the account's state as events carry it.
func StateOf(a Authorizer) AccountState {
	st := AccountState{AppID: a.AppID, Status: a.Status, PermissionSets: a.PermissionSets,
		AuthorizedAt: a.AuthorizedAt.UTC().Format(time.RFC3339)}
	if st.PermissionSets == nil {
		st.PermissionSets = []int{}
	}
	if a.Status != StatusUnauthorized && !a.TokenExpiresAt.IsZero() {
		v := a.TokenExpiresAt.UTC().Format(time.RFC3339)
		st.TokenExpiresAt = &v
	}
	if a.NickName != "" {
		n := a.NickName
		st.NickName = &n
	}
	return st
}

func newEventID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "evt_" + hex.EncodeToString(b)
}

func newDeliveryID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "dlv_" + hex.EncodeToString(b)
}

// insertEventTx writes one event and its first delivery, due at once. An
// event whose id exists already is skipped (inserted false): that is how
// a deduplication key makes a retried message one event.
func insertEventTx(tx *gorm.DB, id, tenantID, typ, appid string, data any, now time.Time) (inserted bool, err error) {
	if data == nil {
		data = struct{}{}
	}
	body, err := json.Marshal(eventBody{ID: id, Type: typ, CreatedAt: now.UTC().Format(time.RFC3339), AppID: appid, Data: data})
	if err != nil {
		return false, errs.Wrap(errs.Internal, "internal error", err)
	}
	ev := webhookEventRow{ID: id, TenantID: tenantID, Type: typ, AppID: appid, Body: string(body), CreatedAt: ms(now)}
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&ev)
	if res.Error != nil {
		return false, translate(res.Error, "webhook event")
	}
	if res.RowsAffected == 0 {
		return false, nil
	}
	d := webhookDeliveryRow{ID: newDeliveryID(), EventID: id, TenantID: tenantID, Status: DeliveryPending,
		NextAttemptAt: ms(now), CreatedAt: ms(now)}
	if err := tx.Create(&d).Error; err != nil {
		return false, translate(err, "webhook delivery")
	}
	return true, nil
}

// authorizerEventsTx writes, inside the transaction that changes the
// account, the events the change causes for every tenant bound to it whose
// webhook wants them (docs/api.md, "Webhooks"): before is the account as it
// was (nil if new), after as it is now, sessionTenant the tenant whose
// authorization session this change completes ("" if none). The tenant of
// the session gets authorizer.authorized; the others learn of a status
// change or changed permission sets.
func (s *Store) authorizerEventsTx(tx *gorm.DB, before *Authorizer, after Authorizer, sessionTenant string) error {
	var changed string
	prevStatus := ""
	if before != nil {
		prevStatus = before.Status
	}
	switch {
	case after.Status == prevStatus && after.Status == StatusAuthorized && !slices.Equal(sortedSets(before.PermissionSets), sortedSets(after.PermissionSets)):
		changed = EventUpdated
	case after.Status == prevStatus:
	case after.Status == StatusAuthorized && prevStatus == StatusNeedsReauthorization:
		changed = EventUpdated
	case after.Status == StatusAuthorized:
		changed = EventAuthorized
	case after.Status == StatusUnauthorized:
		changed = EventUnauthorized
	case after.Status == StatusNeedsReauthorization:
		changed = EventNeedsReauthorization
	}
	if changed == "" && sessionTenant == "" {
		return nil
	}
	hooks, err := s.subscribersTx(tx, after.ComponentAppID, after.AppID)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	state := StateOf(after)
	for _, w := range hooks {
		typ := changed
		if w.TenantID == sessionTenant {
			typ = EventAuthorized
		}
		if typ == "" || !w.Wants(typ) {
			continue
		}
		if _, err := insertEventTx(tx, newEventID(), w.TenantID, typ, after.AppID, state, now); err != nil {
			return err
		}
	}
	return nil
}

// approvalEventTx writes authorizer.authorized for tenantID, whose pending
// binding to the account was just approved, if its webhook wants it.
func (s *Store) approvalEventTx(tx *gorm.DB, tenantID, componentAppID, appid string) error {
	var w webhookRow
	err := tx.Where("tenant_id = ?", tenantID).Take(&w).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return translate(err, "webhook")
	}
	if !wants(splitList(w.Events), EventAuthorized) {
		return nil
	}
	var r authorizerRow
	if err := tx.Where("component_appid = ? AND appid = ?", componentAppID, appid).Take(&r).Error; err != nil {
		return translate(err, "authorizer")
	}
	_, err = insertEventTx(tx, newEventID(), tenantID, EventAuthorized, appid, StateOf(r.state()), s.now().UTC())
	return err
}

func sortedSets(sets []int) []int {
	out := slices.Clone(sets)
	slices.Sort(out)
	return slices.Compact(out)
}

// EnqueueAccountEvent writes an event of type typ about the account for
// every tenant bound to it whose webhook wants it, in one transaction, and
// returns how many it wrote. With a dedupKey (say, a message's MsgId) the
// event's id is derived from it, so enqueueing the same key again (a
// retried message, on any replica) writes nothing.
func (s *Store) EnqueueAccountEvent(ctx context.Context, componentAppID, appid, typ, dedupKey string, data any) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	n := 0
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		hooks, err := s.subscribersTx(tx, componentAppID, appid)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		for _, w := range hooks {
			if !w.Wants(typ) {
				continue
			}
			id := newEventID()
			if dedupKey != "" {
				sum := sha256.Sum256([]byte(componentAppID + "\x00" + appid + "\x00" + w.TenantID + "\x00" + typ + "\x00" + dedupKey))
				id = "evt_" + hex.EncodeToString(sum[:16])
			}
			ok, err := insertEventTx(tx, id, w.TenantID, typ, appid, data, now)
			if err != nil {
				return err
			}
			if ok {
				n++
			}
		}
		return nil
	})
	return n, translate(err, "webhook event")
}

// EnqueueTenantEvent writes one event for the tenant (webhook.test) and
// returns its first delivery. not_found if the tenant has no webhook.
func (s *Store) EnqueueTenantEvent(ctx context.Context, tenantID, typ, appid string, data any) (WebhookDelivery, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var out WebhookDelivery
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&webhookRow{}).Where("tenant_id = ?", tenantID).Count(&n).Error; err != nil {
			return translate(err, "webhook")
		}
		if n == 0 {
			return errs.E(errs.NotFound, "webhook not found")
		}
		id := newEventID()
		if _, err := insertEventTx(tx, id, tenantID, typ, appid, data, s.now().UTC()); err != nil {
			return err
		}
		var err error
		out, err = deliveryByEventTx(tx, tenantID, id)
		return err
	})
	return out, translate(err, "webhook event")
}
