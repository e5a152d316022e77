package store

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxgate/wxgate/internal/errs"
)

// Tenant is a customer of the SaaS operator.
type Tenant struct {
	ID             string
	ComponentAppID string
	Name           string
	// RateLimit and RateBurst override the configured default when > 0.
	RateLimit float64
	RateBurst int
	CreatedAt time.Time
}

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

// Binding says a tenant may see and call an authorizer.
type Binding struct {
	TenantID string
	AppID    string
}

type tenantRow struct {
	ID             string `gorm:"primaryKey"`
	ComponentAppID string `gorm:"column:component_appid"`
	Name           string
	RateLimit      float64
	RateBurst      int
	CreatedAt      int64 `gorm:"autoCreateTime:false"`
}

func (tenantRow) TableName() string { return "tenants" }

func (r tenantRow) domain() Tenant {
	return Tenant{ID: r.ID, ComponentAppID: r.ComponentAppID, Name: r.Name, RateLimit: r.RateLimit, RateBurst: r.RateBurst, CreatedAt: fromMS(r.CreatedAt)}
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

type bindingRow struct {
	TenantID       string `gorm:"primaryKey"`
	ComponentAppID string `gorm:"column:component_appid"`
	AppID          string `gorm:"column:appid;primaryKey"`
	CreatedAt      int64  `gorm:"autoCreateTime:false"`
}

func (bindingRow) TableName() string { return "tenant_authorizers" }

// CreateTenant creates a tenant; a duplicate name answers conflict.
func (s *Store) CreateTenant(ctx context.Context, componentAppID, name string) (Tenant, error) {
	r := tenantRow{ID: "tn_" + strings.ReplaceAll(uuid.NewString(), "-", ""), ComponentAppID: componentAppID, Name: name, CreatedAt: ms(s.now())}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&r).Error; err != nil {
			return translate(err, "tenant")
		}
		_, err := bumpRevision(tx, "tenants")
		return err
	})
	if err != nil {
		return Tenant{}, translate(err, "tenant")
	}
	return r.domain(), nil
}

// GetTenant returns one tenant.
func (s *Store) GetTenant(ctx context.Context, componentAppID, id string) (Tenant, error) {
	var r tenantRow
	err := s.db.WithContext(ctx).Where("component_appid = ? AND id = ?", componentAppID, id).Take(&r).Error
	if err != nil {
		return Tenant{}, translate(err, "tenant")
	}
	return r.domain(), nil
}

// ListTenants returns the component's tenants by creation time.
func (s *Store) ListTenants(ctx context.Context, componentAppID string) ([]Tenant, error) {
	var rows []tenantRow
	if err := s.db.WithContext(ctx).Where("component_appid = ?", componentAppID).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, translate(err, "tenants")
	}
	out := make([]Tenant, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, nil
}

// UpdateTenant applies fn to the tenant in a transaction (rename, rate limits).
func (s *Store) UpdateTenant(ctx context.Context, componentAppID, id string, fn func(*Tenant) error) (Tenant, error) {
	var out Tenant
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r tenantRow
		if err := tx.Where("component_appid = ? AND id = ?", componentAppID, id).Take(&r).Error; err != nil {
			return translate(err, "tenant")
		}
		t := r.domain()
		if err := fn(&t); err != nil {
			return err
		}
		r.Name, r.RateLimit, r.RateBurst = t.Name, t.RateLimit, t.RateBurst
		if err := tx.Select("name", "rate_limit", "rate_burst").Updates(&r).Error; err != nil {
			return translate(err, "tenant")
		}
		if _, err := bumpRevision(tx, "tenants"); err != nil {
			return err
		}
		out = t
		return nil
	})
	return out, translate(err, "tenant")
}

// DeleteTenant deletes a tenant with its keys, bindings and sessions.
func (s *Store) DeleteTenant(ctx context.Context, componentAppID, id string) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Where("component_appid = ? AND id = ?", componentAppID, id).Delete(&tenantRow{})
		if res.Error != nil {
			return translate(res.Error, "tenant")
		}
		if res.RowsAffected == 0 {
			return errs.E(errs.NotFound, "tenant not found")
		}
		_, err := bumpRevision(tx, "tenants")
		return err
	})
	return translate(err, "tenant")
}

// CreateKey records a new key's metadata for an existing tenant.
func (s *Store) CreateKey(ctx context.Context, k Key) (Key, error) {
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

func bindTx(tx *gorm.DB, tenantID, componentAppID, appid string, now time.Time) error {
	r := bindingRow{TenantID: tenantID, ComponentAppID: componentAppID, AppID: appid, CreatedAt: ms(now)}
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&r)
	if res.Error != nil {
		return translate(res.Error, "binding")
	}
	if res.RowsAffected > 0 {
		if _, err := bumpRevision(tx, "tenants"); err != nil {
			return err
		}
	}
	return nil
}

// Bind lets tenantID see and call the authorizer; not_found if either is
// unknown; binding twice is a no-op.
func (s *Store) Bind(ctx context.Context, componentAppID, tenantID, appid string) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&tenantRow{}).Where("component_appid = ? AND id = ?", componentAppID, tenantID).Count(&n).Error; err != nil {
			return translate(err, "tenant")
		}
		if n == 0 {
			return errs.E(errs.NotFound, "tenant not found")
		}
		if err := tx.Model(&authorizerRow{}).Where("component_appid = ? AND appid = ?", componentAppID, appid).Count(&n).Error; err != nil {
			return translate(err, "authorizer")
		}
		if n == 0 {
			return errs.E(errs.NotFound, "authorizer not found")
		}
		return bindTx(tx, tenantID, componentAppID, appid, s.now())
	})
	return translate(err, "binding")
}

// Unbind removes a binding; removing one that does not exist is a no-op.
func (s *Store) Unbind(ctx context.Context, componentAppID, tenantID, appid string) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Where("tenant_id = ? AND component_appid = ? AND appid = ?", tenantID, componentAppID, appid).Delete(&bindingRow{})
		if res.Error != nil {
			return translate(res.Error, "binding")
		}
		if res.RowsAffected == 0 {
			return nil
		}
		_, err := bumpRevision(tx, "tenants")
		return err
	})
	return translate(err, "binding")
}

// ListBindings returns every binding of the component's tenants.
func (s *Store) ListBindings(ctx context.Context, componentAppID string) ([]Binding, error) {
	var rows []bindingRow
	if err := s.db.WithContext(ctx).Where("component_appid = ?", componentAppID).Order("tenant_id, appid").Find(&rows).Error; err != nil {
		return nil, translate(err, "bindings")
	}
	out := make([]Binding, len(rows))
	for i, r := range rows {
		out[i] = Binding{TenantID: r.TenantID, AppID: r.AppID}
	}
	return out, nil
}

// TenantSnapshot is everything the authentication cache needs, read at one revision.
type TenantSnapshot struct {
	Rev      int64
	Tenants  []Tenant
	Keys     []Key
	Bindings []Binding
}

// LoadTenantSnapshot reads tenants, keys and bindings in one transaction.
func (s *Store) LoadTenantSnapshot(ctx context.Context, componentAppID string) (TenantSnapshot, error) {
	var snap TenantSnapshot
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Raw("SELECT rev FROM revisions WHERE name = 'tenants'").Scan(&snap.Rev).Error; err != nil {
			return translate(err, "revision")
		}
		var trs []tenantRow
		if err := tx.Where("component_appid = ?", componentAppID).Find(&trs).Error; err != nil {
			return translate(err, "tenants")
		}
		var krs []keyRow
		if err := tx.Joins("JOIN tenants ON tenants.id = tenant_keys.tenant_id").
			Where("tenants.component_appid = ?", componentAppID).Find(&krs).Error; err != nil {
			return translate(err, "keys")
		}
		var brs []bindingRow
		if err := tx.Where("component_appid = ?", componentAppID).Find(&brs).Error; err != nil {
			return translate(err, "bindings")
		}
		for _, r := range trs {
			snap.Tenants = append(snap.Tenants, r.domain())
		}
		for _, r := range krs {
			snap.Keys = append(snap.Keys, r.domain())
		}
		for _, r := range brs {
			snap.Bindings = append(snap.Bindings, Binding{TenantID: r.TenantID, AppID: r.AppID})
		}
		return nil
	})
	return snap, err
}

// TenantAuthorizers returns the authorizers bound to tenantID. It fails
// closed: an empty tenant id is an error, never "all accounts".
func (s *Store) TenantAuthorizers(ctx context.Context, componentAppID, tenantID string) ([]Authorizer, error) {
	if tenantID == "" {
		return nil, errs.E(errs.Internal, "internal error")
	}
	return s.listAuthorizers(s.db.WithContext(ctx).
		Joins("JOIN tenant_authorizers b ON b.component_appid = authorizers.component_appid AND b.appid = authorizers.appid").
		Where("authorizers.component_appid = ? AND b.tenant_id = ?", componentAppID, tenantID).
		Order("authorizers.appid"))
}

// TenantAuthorizer returns one authorizer if it is bound to tenantID, and
// not_found otherwise, the same answer whether the account is unknown or
// belongs to another tenant.
func (s *Store) TenantAuthorizer(ctx context.Context, componentAppID, tenantID, appid string) (Authorizer, error) {
	if tenantID == "" {
		return Authorizer{}, errs.E(errs.Internal, "internal error")
	}
	list, err := s.listAuthorizers(s.db.WithContext(ctx).
		Joins("JOIN tenant_authorizers b ON b.component_appid = authorizers.component_appid AND b.appid = authorizers.appid").
		Where("authorizers.component_appid = ? AND b.tenant_id = ? AND authorizers.appid = ?", componentAppID, tenantID, appid))
	if err != nil {
		return Authorizer{}, err
	}
	if len(list) == 0 {
		return Authorizer{}, errs.E(errs.NotFound, "authorizer not found")
	}
	return list[0], nil
}
