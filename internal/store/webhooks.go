package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
)

// Webhook is a tenant's webhook (docs/api.md, "Webhooks"): where its events
// are sent, which ones, and the secrets that sign them, in clear (they are
// sealed in the database).
type Webhook struct {
	TenantID string
	URL      string
	// Events are the subscribed patterns: an event type, "authorizer.*"
	// or "*".
	Events []string
	Secret secret.Value
	// PrevSecret keeps signing beside Secret until PrevUntil after a
	// rotation; zero when there is none.
	PrevSecret secret.Value
	PrevUntil  time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Wants reports whether the webhook subscribes to events of type typ. A
// webhook.test event is always wanted: it is asked for explicitly.
func (w Webhook) Wants(typ string) bool {
	return wants(w.Events, typ)
}

func wants(patterns []string, typ string) bool {
	if typ == EventWebhookTest {
		return true
	}
	for _, p := range patterns {
		if p == "*" || p == typ || strings.HasSuffix(p, ".*") && strings.HasPrefix(typ, strings.TrimSuffix(p, "*")) {
			return true
		}
	}
	return false
}

// Secrets returns the secrets that sign a delivery at now: the current one,
// and the previous one while its rotation grace lasts.
func (w Webhook) Secrets(now time.Time) []secret.Value {
	out := []secret.Value{w.Secret}
	if !w.PrevSecret.IsZero() && now.Before(w.PrevUntil) {
		out = append(out, w.PrevSecret)
	}
	return out
}

type webhookRow struct {
	TenantID      string `gorm:"primaryKey"`
	URL           string `gorm:"column:url"`
	Events        string
	SecretEnc     string
	PrevSecretEnc string
	PrevUntil     int64
	CreatedAt     int64 `gorm:"autoCreateTime:false"`
	UpdatedAt     int64 `gorm:"autoUpdateTime:false"`
}

func (webhookRow) TableName() string { return "webhooks" }

func webhookAAD(tenantID, what string) string { return "webhook/" + tenantID + "/" + what }

func (s *Store) webhookFromRow(r webhookRow) (Webhook, error) {
	cur, err := s.box.Open(r.SecretEnc, webhookAAD(r.TenantID, "secret"))
	if err != nil {
		return Webhook{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	prev, err := s.box.Open(r.PrevSecretEnc, webhookAAD(r.TenantID, "prev_secret"))
	if err != nil {
		return Webhook{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	return Webhook{TenantID: r.TenantID, URL: r.URL, Events: splitList(r.Events), Secret: cur, PrevSecret: prev,
		PrevUntil: fromMS(r.PrevUntil), CreatedAt: fromMS(r.CreatedAt), UpdatedAt: fromMS(r.UpdatedAt)}, nil
}

func splitList(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

// PutWebhook creates the tenant's webhook with secret, or changes the URL
// and events of the existing one (its secrets stay). created says which.
// not_found for an unknown tenant.
func (s *Store) PutWebhook(ctx context.Context, tenantID, url string, events []string, newSecret secret.Value) (w Webhook, created bool, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if tenantID == "" {
		return Webhook{}, false, errs.E(errs.Internal, "internal error")
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := ms(s.now())
		var r webhookRow
		err := tx.Where("tenant_id = ?", tenantID).Take(&r).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			created = true
			enc, err := s.box.Seal(newSecret, webhookAAD(tenantID, "secret"))
			if err != nil {
				return errs.Wrap(errs.Internal, "internal error", err)
			}
			r = webhookRow{TenantID: tenantID, URL: url, Events: strings.Join(events, ","), SecretEnc: enc, CreatedAt: now, UpdatedAt: now}
			if err := tx.Create(&r).Error; err != nil {
				return translate(err, "tenant")
			}
		case err != nil:
			return translate(err, "webhook")
		default:
			r.URL, r.Events, r.UpdatedAt = url, strings.Join(events, ","), now
			if err := tx.Model(&webhookRow{}).Where("tenant_id = ?", tenantID).
				Updates(map[string]any{"url": r.URL, "events": r.Events, "updated_at": now}).Error; err != nil {
				return translate(err, "webhook")
			}
		}
		w, err = s.webhookFromRow(r)
		return err
	})
	return w, created, err
}

// GetWebhook returns the tenant's webhook; not_found if it has none.
func (s *Store) GetWebhook(ctx context.Context, tenantID string) (Webhook, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var r webhookRow
	if err := s.db.WithContext(ctx).Where("tenant_id = ?", tenantID).Take(&r).Error; err != nil {
		return Webhook{}, translate(err, "webhook")
	}
	return s.webhookFromRow(r)
}

// DeleteWebhook removes the tenant's webhook; its pending deliveries end
// as failed. Deleting none is a no-op.
func (s *Store) DeleteWebhook(ctx context.Context, tenantID string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("tenant_id = ?", tenantID).Delete(&webhookRow{}).Error; err != nil {
			return translate(err, "webhook")
		}
		return tx.Model(&webhookDeliveryRow{}).Where("tenant_id = ? AND status = ?", tenantID, DeliveryPending).
			Updates(map[string]any{"status": DeliveryFailed, "last_error": "webhook deleted", "lease_owner": "", "lease_until": 0}).Error
	})
	return translate(err, "webhook")
}

// RotateWebhookSecret makes newSecret the signing secret; the current one
// keeps signing beside it until prevUntil. not_found without a webhook;
// conflict while a previous rotation's old secret still signs: replacing
// it would break a receiver not yet moved off it.
func (s *Store) RotateWebhookSecret(ctx context.Context, tenantID string, newSecret secret.Value, prevUntil time.Time) (Webhook, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var w Webhook
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r webhookRow
		if err := tx.Where("tenant_id = ?", tenantID).Take(&r).Error; err != nil {
			return translate(err, "webhook")
		}
		cur, err := s.webhookFromRow(r)
		if err != nil {
			return err
		}
		if !cur.PrevSecret.IsZero() && s.now().Before(cur.PrevUntil) {
			until := cur.PrevUntil.UTC().Format(time.RFC3339)
			return errs.E(errs.Conflict, "a rotation is in progress until "+until+"; try after it").
				WithDetails(map[string]any{"prev_until": until})
		}
		if r.PrevSecretEnc, err = s.box.Seal(cur.Secret, webhookAAD(tenantID, "prev_secret")); err != nil {
			return errs.Wrap(errs.Internal, "internal error", err)
		}
		if r.SecretEnc, err = s.box.Seal(newSecret, webhookAAD(tenantID, "secret")); err != nil {
			return errs.Wrap(errs.Internal, "internal error", err)
		}
		r.PrevUntil, r.UpdatedAt = ms(prevUntil), ms(s.now())
		if err := tx.Model(&webhookRow{}).Where("tenant_id = ?", tenantID).Updates(map[string]any{
			"secret_enc": r.SecretEnc, "prev_secret_enc": r.PrevSecretEnc, "prev_until": r.PrevUntil, "updated_at": r.UpdatedAt,
		}).Error; err != nil {
			return translate(err, "webhook")
		}
		w, err = s.webhookFromRow(r)
		return err
	})
	return w, err
}

// subscribersTx returns the webhooks of the tenants bound to the account
// (not those whose binding waits for approval: they cannot see it),
// ordered by tenant.
func (s *Store) subscribersTx(tx *gorm.DB, componentAppID, appid string) ([]Webhook, error) {
	var rows []webhookRow
	err := tx.Table("webhooks").Select("webhooks.*").
		Joins("JOIN tenant_authorizers b ON b.tenant_id = webhooks.tenant_id").
		Where("b.component_appid = ? AND b.appid = ? AND b.status = ?", componentAppID, appid, BindingBound).
		Order("webhooks.tenant_id").Find(&rows).Error
	if err != nil {
		return nil, translate(err, "webhooks")
	}
	out := make([]Webhook, 0, len(rows))
	for _, r := range rows {
		// Only the routing fields: the secrets are opened when sending.
		out = append(out, Webhook{TenantID: r.TenantID, URL: r.URL, Events: splitList(r.Events)})
	}
	return out, nil
}

// WebhookSummary is one tenant's webhook, without its secrets, with the
// deliveries that need the operator's eye: those still being tried and
// those that ended failed.
type WebhookSummary struct {
	TenantID  string
	URL       string
	Events    []string
	UpdatedAt time.Time
	Pending   int64
	Failed    int64
	// OldestPending is when the oldest pending delivery was created (zero
	// when none is pending).
	OldestPending time.Time
}

// WebhookSummaries returns the webhooks of the component's tenants with
// their pending and failed deliveries counted, by tenant id. It reads two
// small aggregates (the delivered ones are never scanned), so the
// operator console can show a thousand tenants at once.
func (s *Store) WebhookSummaries(ctx context.Context, componentAppID string) ([]WebhookSummary, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var hooks []struct {
		TenantID  string
		URL       string `gorm:"column:url"`
		Events    string
		UpdatedAt int64
	}
	db := s.db.WithContext(ctx)
	if err := db.Table("webhooks").Select("webhooks.tenant_id, webhooks.url, webhooks.events, webhooks.updated_at").
		Joins("JOIN tenants ON tenants.id = webhooks.tenant_id").Where("tenants.component_appid = ?", componentAppID).
		Order("webhooks.tenant_id").Scan(&hooks).Error; err != nil {
		return nil, translate(err, "webhooks")
	}
	var counts []struct {
		TenantID string
		Status   string
		N        int64
		Oldest   int64
	}
	if err := db.Model(&webhookDeliveryRow{}).Select("tenant_id, status, COUNT(*) AS n, MIN(created_at) AS oldest").
		Where("status IN ?", []string{DeliveryPending, DeliveryFailed}).Group("tenant_id, status").Scan(&counts).Error; err != nil {
		return nil, translate(err, "webhook deliveries")
	}
	out := make([]WebhookSummary, len(hooks))
	at := make(map[string]*WebhookSummary, len(hooks))
	for i, h := range hooks {
		out[i] = WebhookSummary{TenantID: h.TenantID, URL: h.URL, Events: splitList(h.Events), UpdatedAt: fromMS(h.UpdatedAt)}
		at[h.TenantID] = &out[i]
	}
	for _, c := range counts {
		w := at[c.TenantID]
		switch {
		case w == nil:
		case c.Status == DeliveryPending:
			w.Pending, w.OldestPending = c.N, fromMS(c.Oldest)
		default:
			w.Failed = c.N
		}
	}
	return out, nil
}
