package store

import (
	"context"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Key is a tenant API key's metadata. The key itself is never stored.
type Key struct {
	KID        string
	TenantID   string
	Name       string
	AppIDs     []string // empty: every account bound to the tenant
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
}

type keyRow struct {
	KID        string `gorm:"column:kid;primaryKey"`
	TenantID   string
	Name       string
	AppIDs     string `gorm:"column:appids"`
	CreatedAt  int64  `gorm:"autoCreateTime:false"`
	ExpiresAt  *int64
	RevokedAt  *int64
	LastUsedAt *int64
}

func (keyRow) TableName() string { return "tenant_keys" }

func (r keyRow) domain() Key {
	k := Key{KID: r.KID, TenantID: r.TenantID, Name: r.Name, CreatedAt: fromMS(r.CreatedAt),
		ExpiresAt: fromMSPtr(r.ExpiresAt), RevokedAt: fromMSPtr(r.RevokedAt), LastUsedAt: fromMSPtr(r.LastUsedAt), AppIDs: []string{}}
	if r.AppIDs != "" {
		k.AppIDs = strings.Split(r.AppIDs, ",")
	}
	return k
}

// CreateKey records a new key's metadata for an existing tenant.
func (s *Store) CreateKey(ctx context.Context, k Key) (Key, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	r := keyRow{KID: k.KID, TenantID: k.TenantID, Name: k.Name, AppIDs: strings.Join(k.AppIDs, ","),
		CreatedAt: ms(k.CreatedAt), ExpiresAt: msPtr(k.ExpiresAt)}
	if r.CreatedAt == 0 {
		r.CreatedAt = ms(s.now())
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&r).Error; err != nil {
			return translate(err, "key")
		}
		_, err := bumpRevision(tx, "tenants")
		return err
	})
	if err != nil {
		return Key{}, translate(err, "tenant")
	}
	return r.domain(), nil
}

// ListKeys returns a tenant's keys, newest first.
func (s *Store) ListKeys(ctx context.Context, tenantID string) ([]Key, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var rows []keyRow
	if err := s.db.WithContext(ctx).Where("tenant_id = ?", tenantID).Order("created_at DESC, kid").Find(&rows).Error; err != nil {
		return nil, translate(err, "keys")
	}
	out := make([]Key, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, nil
}

// RevokeKey marks a key revoked (idempotent); not_found if unknown.
func (s *Store) RevokeKey(ctx context.Context, kid string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r keyRow
		if err := tx.Where("kid = ?", kid).Take(&r).Error; err != nil {
			return translate(err, "key")
		}
		if r.RevokedAt != nil {
			return nil
		}
		if err := tx.Model(&r).Update("revoked_at", ms(s.now())).Error; err != nil {
			return translate(err, "key")
		}
		_, err := bumpRevision(tx, "tenants")
		return err
	})
	return translate(err, "key")
}

// TouchKeys records last-used times in one batch. It does not bump the
// tenants revision: usage is not a change other replicas must react to.
func (s *Store) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if len(used) == 0 {
		return nil
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for kid, at := range used {
			err := tx.Model(&keyRow{}).Where("kid = ? AND (last_used_at IS NULL OR last_used_at < ?)", kid, ms(at)).
				Update("last_used_at", ms(at)).Error
			if err != nil {
				return translate(err, "key")
			}
		}
		return nil
	})
	return translate(err, "keys")
}
