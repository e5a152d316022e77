package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
)

// AuthSession is an authorization started by a tenant with
// POST /v1/authorizations.
type AuthSession struct {
	ID             string
	TenantID       string
	ComponentAppID string
	ReturnURL      string
	AuthType       int
	BizAppID       string
	CreatedAt      time.Time
	ExpiresAt      time.Time
	CompletedAt    *time.Time
	AppID          string // set once completed
}

type sessionRow struct {
	ID              string `gorm:"primaryKey"`
	TenantID        string
	ComponentAppID  string `gorm:"column:component_appid"`
	PreAuthCodeHash string
	ReturnURL       string
	AuthType        int
	BizAppID        string `gorm:"column:biz_appid"`
	CreatedAt       int64  `gorm:"autoCreateTime:false"`
	ExpiresAt       int64
	CompletedAt     *int64
	AppID           string `gorm:"column:appid"`
}

func (sessionRow) TableName() string { return "authorization_sessions" }

func (r sessionRow) domain() AuthSession {
	return AuthSession{ID: r.ID, TenantID: r.TenantID, ComponentAppID: r.ComponentAppID, ReturnURL: r.ReturnURL,
		AuthType: r.AuthType, BizAppID: r.BizAppID, CreatedAt: fromMS(r.CreatedAt), ExpiresAt: fromMS(r.ExpiresAt),
		CompletedAt: fromMSPtr(r.CompletedAt), AppID: r.AppID}
}

// preAuthCodeHash keeps pre_auth_codes out of the database: sessions are
// matched to events by this digest.
func preAuthCodeHash(code secret.Value) string {
	sum := sha256.Sum256([]byte(code.Reveal()))
	return hex.EncodeToString(sum[:])
}

// CreateSession stores a new authorization session for its pre_auth_code.
func (s *Store) CreateSession(ctx context.Context, sess AuthSession, preAuthCode secret.Value) (AuthSession, error) {
	r := sessionRow{ID: sess.ID, TenantID: sess.TenantID, ComponentAppID: sess.ComponentAppID,
		PreAuthCodeHash: preAuthCodeHash(preAuthCode), ReturnURL: sess.ReturnURL, AuthType: sess.AuthType,
		BizAppID: sess.BizAppID, CreatedAt: ms(sess.CreatedAt), ExpiresAt: ms(sess.ExpiresAt)}
	if r.CreatedAt == 0 {
		r.CreatedAt = ms(s.now())
	}
	if err := s.db.WithContext(ctx).Create(&r).Error; err != nil {
		return AuthSession{}, translate(err, "authorization session")
	}
	return r.domain(), nil
}

// GetSession returns a session by id (expired ones too: the caller decides).
func (s *Store) GetSession(ctx context.Context, id string) (AuthSession, error) {
	var r sessionRow
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&r).Error; err != nil {
		return AuthSession{}, translate(err, "authorization session")
	}
	return r.domain(), nil
}

// SessionByPreAuthCode finds the session that owns a pre_auth_code.
func (s *Store) SessionByPreAuthCode(ctx context.Context, preAuthCode secret.Value) (AuthSession, error) {
	var r sessionRow
	if err := s.db.WithContext(ctx).Where("pre_auth_code_hash = ?", preAuthCodeHash(preAuthCode)).Take(&r).Error; err != nil {
		return AuthSession{}, translate(err, "authorization session")
	}
	return r.domain(), nil
}

// CompleteSession marks the session completed for appid. The first
// completion wins; completing again for the same appid is a no-op, and it
// reports whether this call was the one that completed it.
func (s *Store) CompleteSession(ctx context.Context, id, appid string) (bool, error) {
	res := s.db.WithContext(ctx).Model(&sessionRow{}).Where("id = ? AND completed_at IS NULL", id).
		Updates(map[string]any{"completed_at": ms(s.now()), "appid": appid})
	if res.Error != nil {
		return false, translate(res.Error, "authorization session")
	}
	return res.RowsAffected == 1, nil
}

// DeleteExpiredSessions removes sessions that expired before cutoff.
func (s *Store) DeleteExpiredSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at < ?", ms(cutoff)).Delete(&sessionRow{})
	return res.RowsAffected, translate(res.Error, "authorization sessions")
}

type leaseRow struct {
	Name  string `gorm:"primaryKey"`
	Owner string
	Until int64
}

func (leaseRow) TableName() string { return "leases" }

// TryLease takes the named lease for owner until now+ttl if it is free,
// expired, or already owner's. It reports whether owner holds it now. A
// holder that crashes loses it when ttl runs out.
func (s *Store) TryLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	now := s.now()
	r := leaseRow{Name: name, Owner: owner, Until: ms(now.Add(ttl))}
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "name"}},
		DoUpdates: clause.AssignmentColumns([]string{"owner", "until"}),
		Where: clause.Where{Exprs: []clause.Expression{clause.Or(
			clause.Lt{Column: "leases.until", Value: ms(now)},
			clause.Eq{Column: "leases.owner", Value: owner},
		)}},
	}).Create(&r)
	if res.Error != nil {
		return false, translate(res.Error, "lease")
	}
	return res.RowsAffected == 1, nil
}

// ReleaseLease gives the lease up if owner holds it.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	err := s.db.WithContext(ctx).Where("name = ? AND owner = ?", name, owner).Delete(&leaseRow{}).Error
	return translate(err, "lease")
}

type receiptRow struct {
	Digest     string `gorm:"primaryKey"`
	ReceivedAt int64
}

func (receiptRow) TableName() string { return "event_receipts" }

// EventSeen reports whether an event with this digest was handled before.
func (s *Store) EventSeen(ctx context.Context, digest string) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&receiptRow{}).Where("digest = ?", digest).Count(&n).Error
	return n > 0, translate(err, "event receipt")
}

// RecordEvent remembers that the event with this digest was handled; doing
// so twice is harmless.
func (s *Store) RecordEvent(ctx context.Context, digest string) error {
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&receiptRow{Digest: digest, ReceivedAt: ms(s.now())}).Error
	return translate(err, "event receipt")
}

// DeleteEventsBefore prunes receipts older than cutoff.
func (s *Store) DeleteEventsBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Where("received_at < ?", ms(cutoff)).Delete(&receiptRow{})
	return res.RowsAffected, translate(res.Error, "event receipts")
}

// UsageRow counts calls for one tenant, account, API and outcome in one hour.
type UsageRow struct {
	TenantID string
	AppID    string
	API      string
	Outcome  string
	Hour     time.Time
	Count    int64
}

type usageRow struct {
	TenantID string `gorm:"primaryKey"`
	Hour     int64  `gorm:"primaryKey"`
	AppID    string `gorm:"column:appid;primaryKey"`
	API      string `gorm:"column:api;primaryKey"`
	Outcome  string `gorm:"primaryKey"`
	Count    int64
}

func (usageRow) TableName() string { return "usage_counts" }

// AddUsage adds counts in one transaction (upsert + increment).
func (s *Store) AddUsage(ctx context.Context, rows []UsageRow) error {
	if len(rows) == 0 {
		return nil
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, u := range rows {
			r := usageRow{TenantID: u.TenantID, Hour: ms(u.Hour.Truncate(time.Hour)), AppID: u.AppID, API: u.API, Outcome: u.Outcome, Count: u.Count}
			err := tx.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "tenant_id"}, {Name: "hour"}, {Name: "appid"}, {Name: "api"}, {Name: "outcome"}},
				DoUpdates: clause.Assignments(map[string]any{"count": gorm.Expr("usage_counts.count + ?", u.Count)}),
			}).Create(&r).Error
			if err != nil {
				return translate(err, "usage")
			}
		}
		return nil
	})
	return translate(err, "usage")
}

// Usage returns a tenant's counts for hours in [from, to).
func (s *Store) Usage(ctx context.Context, tenantID string, from, to time.Time) ([]UsageRow, error) {
	if tenantID == "" {
		return nil, errs.E(errs.Internal, "internal error")
	}
	var rows []usageRow
	err := s.db.WithContext(ctx).Where("tenant_id = ? AND hour >= ? AND hour < ?", tenantID, ms(from.Truncate(time.Hour)), ms(to)).
		Order("hour, appid, api, outcome").Find(&rows).Error
	if err != nil {
		return nil, translate(err, "usage")
	}
	out := make([]UsageRow, len(rows))
	for i, r := range rows {
		out[i] = UsageRow{TenantID: r.TenantID, AppID: r.AppID, API: r.API, Outcome: r.Outcome, Hour: fromMS(r.Hour), Count: r.Count}
	}
	return out, nil
}
