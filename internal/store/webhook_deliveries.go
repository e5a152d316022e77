package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxgate/wxgate/internal/errs"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// WebhookDelivery is the sending of one event to the tenant's webhook: its
// attempts so far and what happens next.
type WebhookDelivery struct {
	ID            string
	EventID       string
	TenantID      string
	Type          string
	AppID         string
	Status        string
	Attempts      int
	LastStatus    int
	LastError     string
	NextAttemptAt time.Time
	CreatedAt     time.Time
	DeliveredAt   *time.Time
	// EventCreatedAt is when the event happened (latency is counted from it).
	EventCreatedAt time.Time
}

type webhookDeliveryRow struct {
	ID            string `gorm:"primaryKey"`
	EventID       string
	TenantID      string
	Status        string
	Attempts      int
	LastStatus    int
	LastError     string
	NextAttemptAt int64
	LeaseOwner    string
	LeaseUntil    int64
	CreatedAt     int64 `gorm:"autoCreateTime:false"`
	DeliveredAt   *int64
}

func (webhookDeliveryRow) TableName() string { return "webhook_deliveries" }

// deliveryView is a delivery row joined with its event.
type deliveryView struct {
	Row            webhookDeliveryRow `gorm:"embedded"`
	Type           string
	AppID          string `gorm:"column:appid"`
	Body           string
	EventCreatedAt int64
}

func (v deliveryView) domain() WebhookDelivery {
	r := v.Row
	return WebhookDelivery{ID: r.ID, EventID: r.EventID, TenantID: r.TenantID, Type: v.Type, AppID: v.AppID,
		Status: r.Status, Attempts: r.Attempts, LastStatus: r.LastStatus, LastError: r.LastError,
		NextAttemptAt: fromMS(r.NextAttemptAt), CreatedAt: fromMS(r.CreatedAt), DeliveredAt: fromMSPtr(r.DeliveredAt),
		EventCreatedAt: fromMS(v.EventCreatedAt)}
}

const deliveryViewColumns = "webhook_deliveries.*, e.type, e.appid, e.body, e.created_at AS event_created_at"

func deliveryViews(tx *gorm.DB) *gorm.DB {
	return tx.Table("webhook_deliveries").Select(deliveryViewColumns).
		Joins("JOIN webhook_events e ON e.id = webhook_deliveries.event_id")
}

func deliveryByEventTx(tx *gorm.DB, tenantID, eventID string) (WebhookDelivery, error) {
	var v deliveryView
	err := deliveryViews(tx).Where("webhook_deliveries.tenant_id = ? AND webhook_deliveries.event_id = ?", tenantID, eventID).
		Order("webhook_deliveries.created_at DESC").Take(&v).Error
	if err != nil {
		return WebhookDelivery{}, translate(err, "webhook delivery")
	}
	return v.domain(), nil
}

// ListWebhookDeliveries returns the tenant's deliveries, newest first,
// only those with status if it is not empty, at most limit.
func (s *Store) ListWebhookDeliveries(ctx context.Context, tenantID, status string, limit int) ([]WebhookDelivery, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if tenantID == "" {
		return nil, errs.E(errs.Internal, "internal error")
	}
	q := deliveryViews(s.db.WithContext(ctx)).Where("webhook_deliveries.tenant_id = ?", tenantID)
	if status != "" {
		q = q.Where("webhook_deliveries.status = ?", status)
	}
	var rows []deliveryView
	if err := q.Order("webhook_deliveries.created_at DESC, webhook_deliveries.id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, translate(err, "webhook deliveries")
	}
	out := make([]WebhookDelivery, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, nil
}

// RedeliverWebhook queues the event of the tenant's delivery id again: a
// pending delivery becomes due at once, a finished one gets a new delivery
// of the same event (same event id). not_found for another tenant's
// delivery, as for an unknown one.
func (s *Store) RedeliverWebhook(ctx context.Context, tenantID, id string) (WebhookDelivery, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var out WebhookDelivery
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var d webhookDeliveryRow
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, id).Take(&d).Error; err != nil {
			return translate(err, "webhook delivery")
		}
		now := ms(s.now())
		if d.Status == DeliveryPending {
			if err := tx.Model(&webhookDeliveryRow{}).Where("id = ?", id).Update("next_attempt_at", now).Error; err != nil {
				return translate(err, "webhook delivery")
			}
		} else {
			nd := webhookDeliveryRow{ID: newDeliveryID(), EventID: d.EventID, TenantID: tenantID, Status: DeliveryPending,
				NextAttemptAt: now, CreatedAt: now}
			if err := tx.Create(&nd).Error; err != nil {
				return translate(err, "webhook delivery")
			}
		}
		var err error
		out, err = deliveryByEventTx(tx, tenantID, d.EventID)
		return err
	})
	return out, translate(err, "webhook delivery")
}

// ClaimRequest asks ClaimWebhookDeliveries for due deliveries.
type ClaimRequest struct {
	// Owner names the claiming replica; LeaseUntil is when another may
	// take a delivery it has not finished.
	Owner      string
	Now        time.Time
	LeaseUntil time.Time
	// Limit caps the deliveries claimed.
	Limit int
	// PerTenant caps the deliveries of one tenant the owner holds at once;
	// InFlight is how many it holds already, by tenant.
	PerTenant int
	InFlight  map[string]int
}

// ClaimedDelivery is a delivery to send now: the exact body and the
// webhook (URL and secrets) to send it to.
type ClaimedDelivery struct {
	WebhookDelivery
	Body    []byte
	Webhook Webhook
}

// claimScan is how many due deliveries one claim looks at per delivery it
// may take, so a tenant with a long queue does not hide the others.
const claimScan = 4

// ClaimWebhookDeliveries takes due, pending deliveries no live lease holds
// and leases them to r.Owner: on PostgreSQL the candidates are locked FOR
// UPDATE SKIP LOCKED, so replicas claiming at once take different ones.
// Tenants at r.PerTenant are skipped. A delivery whose tenant no longer has
// a webhook ends failed.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, r ClaimRequest) ([]ClaimedDelivery, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if r.Limit <= 0 {
		return nil, nil
	}
	var out []ClaimedDelivery
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := ms(r.Now)
		q := tx.Model(&webhookDeliveryRow{}).Select("id", "tenant_id").
			Where("status = ? AND next_attempt_at <= ? AND lease_until <= ?", DeliveryPending, now, now)
		var full []string
		for t, n := range r.InFlight {
			if n >= r.PerTenant {
				full = append(full, t)
			}
		}
		if len(full) > 0 {
			q = q.Where("tenant_id NOT IN ?", full)
		}
		q = q.Order("next_attempt_at, id").Limit(r.Limit * claimScan)
		if s.dialect == Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		var cands []webhookDeliveryRow
		if err := q.Find(&cands).Error; err != nil {
			return translate(err, "webhook deliveries")
		}
		taken := map[string]int{}
		var ids []string
		for _, c := range cands {
			if len(ids) == r.Limit {
				break
			}
			if r.InFlight[c.TenantID]+taken[c.TenantID] >= r.PerTenant {
				continue
			}
			taken[c.TenantID]++
			ids = append(ids, c.ID)
		}
		if len(ids) == 0 {
			return nil
		}
		if err := tx.Model(&webhookDeliveryRow{}).Where("id IN ?", ids).
			Updates(map[string]any{"lease_owner": r.Owner, "lease_until": ms(r.LeaseUntil)}).Error; err != nil {
			return translate(err, "webhook deliveries")
		}
		var views []deliveryView
		if err := deliveryViews(tx).Where("webhook_deliveries.id IN ?", ids).Find(&views).Error; err != nil {
			return translate(err, "webhook deliveries")
		}
		var hookRows []webhookRow
		if err := tx.Where("tenant_id IN ?", keys(taken)).Find(&hookRows).Error; err != nil {
			return translate(err, "webhooks")
		}
		hooks := map[string]Webhook{}
		for _, hr := range hookRows {
			w, err := s.webhookFromRow(hr)
			if err != nil {
				return err
			}
			hooks[hr.TenantID] = w
		}
		var orphans []string
		for _, v := range views {
			w, ok := hooks[v.Row.TenantID]
			if !ok {
				orphans = append(orphans, v.Row.ID)
				continue
			}
			out = append(out, ClaimedDelivery{WebhookDelivery: v.domain(), Body: []byte(v.Body), Webhook: w})
		}
		if len(orphans) > 0 {
			return tx.Model(&webhookDeliveryRow{}).Where("id IN ?", orphans).Updates(map[string]any{
				"status": DeliveryFailed, "last_error": "webhook deleted", "lease_owner": "", "lease_until": 0}).Error
		}
		return nil
	})
	if err != nil {
		return nil, translate(err, "webhook deliveries")
	}
	return out, nil
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// AttemptResult is the outcome of one attempt of a delivery.
type AttemptResult struct {
	// Status is the receiver's HTTP status (0: no answer); Error says what
	// went wrong ("" when delivered).
	Status int
	Error  string
	// Outcome is the delivery's status after the attempt: delivered,
	// pending (retried at NextAttemptAt) or failed.
	Outcome       string
	NextAttemptAt time.Time
	At            time.Time
}

// FinishWebhookAttempt records an attempt of a delivery owner holds and
// releases it. It answers false, changing nothing, when owner no longer
// holds it (its lease ran out and another replica took it).
func (s *Store) FinishWebhookAttempt(ctx context.Context, id, owner string, r AttemptResult) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	upd := map[string]any{
		"attempts": gorm.Expr("attempts + 1"), "last_status": r.Status, "last_error": r.Error, "status": r.Outcome,
		"lease_owner": "", "lease_until": 0,
	}
	switch r.Outcome {
	case DeliveryDelivered:
		upd["delivered_at"] = ms(r.At)
	case DeliveryPending:
		upd["next_attempt_at"] = ms(r.NextAttemptAt)
	}
	res := s.db.WithContext(ctx).Model(&webhookDeliveryRow{}).
		Where("id = ? AND lease_owner = ? AND status = ?", id, owner, DeliveryPending).Updates(upd)
	if res.Error != nil {
		return false, translate(res.Error, "webhook delivery")
	}
	return res.RowsAffected == 1, nil
}

// ReleaseWebhookDeliveries gives up owner's leases on deliveries it did
// not finish (a replica shutting down), so another replica sends them at
// once rather than when the leases run out.
func (s *Store) ReleaseWebhookDeliveries(ctx context.Context, owner string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Model(&webhookDeliveryRow{}).
		Where("lease_owner = ? AND status = ?", owner, DeliveryPending).
		Updates(map[string]any{"lease_owner": "", "lease_until": 0}).Error
	return translate(err, "webhook deliveries")
}

// WebhookQueue is the state of the delivery queue, for metrics.
type WebhookQueue struct {
	Pending int64
	// OldestPending is when the oldest pending delivery was created (zero
	// when none is pending).
	OldestPending time.Time
}

// WebhookQueueStats counts pending deliveries of every tenant.
func (s *Store) WebhookQueueStats(ctx context.Context) (WebhookQueue, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var r struct {
		N      int64
		Oldest *int64
	}
	err := s.db.WithContext(ctx).Model(&webhookDeliveryRow{}).Select("COUNT(*) AS n, MIN(created_at) AS oldest").
		Where("status = ?", DeliveryPending).Scan(&r).Error
	if err != nil {
		return WebhookQueue{}, translate(err, "webhook deliveries")
	}
	q := WebhookQueue{Pending: r.N}
	if r.Oldest != nil {
		q.OldestPending = fromMS(*r.Oldest)
	}
	return q, nil
}

// DeleteWebhookEventsBefore deletes events created before t whose
// deliveries are all finished (with their deliveries) and returns how many.
func (s *Store) DeleteWebhookEventsBefore(ctx context.Context, t time.Time) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("created_at < ? AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id AND d.status = ?)",
		ms(t), DeliveryPending).Delete(&webhookEventRow{})
	return res.RowsAffected, translate(res.Error, "webhook events")
}
