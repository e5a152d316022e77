package store

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

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
	// ReturnURLHosts are the hosts an authorization's return_url may name
	// (lowercase); empty allows any host.
	ReturnURLHosts []string
	CreatedAt      time.Time

	// onRegistered asks CreateTenant to check, in its transaction, that
	// the platform is still registered (OnRegisteredPlatform).
	onRegistered bool
}

// OnRegisteredPlatform is an option of CreateTenant for a tenant of a
// platform registered through the admin API (not the default one): the
// tenant is written only if the platforms table still holds its platform,
// checked in the transaction that writes it, which DeletePlatform's orders
// against (both bump the tenants revision first). A platform removed on
// another replica a moment ago is invalid_argument.
func OnRegisteredPlatform(t *Tenant) { t.onRegistered = true }

type tenantRow struct {
	ID             string `gorm:"primaryKey"`
	ComponentAppID string `gorm:"column:component_appid"`
	Name           string
	RateLimit      float64
	RateBurst      int
	ReturnURLHosts string // space-separated
	CreatedAt      int64  `gorm:"autoCreateTime:false"`
}

func (tenantRow) TableName() string { return "tenants" }

func (r tenantRow) domain() Tenant {
	return Tenant{ID: r.ID, ComponentAppID: r.ComponentAppID, Name: r.Name, RateLimit: r.RateLimit, RateBurst: r.RateBurst,
		ReturnURLHosts: strings.Fields(r.ReturnURLHosts), CreatedAt: fromMS(r.CreatedAt)}
}

// setFields copies what an update may change from t.
func (r *tenantRow) setFields(t Tenant) {
	r.Name, r.RateLimit, r.RateBurst, r.ReturnURLHosts = t.Name, t.RateLimit, t.RateBurst, strings.Join(t.ReturnURLHosts, " ")
}

// CreateTenant creates a tenant; a duplicate name answers conflict. Each
// of with sets more of the new tenant's fields (rate limits, return_url
// hosts) before it is written.
func (s *Store) CreateTenant(ctx context.Context, componentAppID, name string, with ...func(*Tenant)) (Tenant, error) {
	t := Tenant{Name: name}
	for _, fn := range with {
		fn(&t)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	r := tenantRow{ID: "tn_" + strings.ReplaceAll(uuid.NewString(), "-", ""), ComponentAppID: componentAppID, CreatedAt: ms(s.now())}
	r.setFields(t)
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := bumpRevision(tx, "tenants"); err != nil {
			return err
		}
		if t.onRegistered {
			var n int64
			if err := tx.Model(&platformRow{}).Where("appid = ?", componentAppID).Count(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				return errs.Invalid("component_appid", "is not a platform this gateway serves")
			}
		}
		if err := tx.Create(&r).Error; err != nil {
			return translate(err, "tenant")
		}
		return nil
	})
	if err != nil {
		return Tenant{}, translate(err, "tenant")
	}
	return r.domain(), nil
}

// GetTenant returns one tenant, whichever platform it belongs to.
func (s *Store) GetTenant(ctx context.Context, id string) (Tenant, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var r tenantRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&r).Error
	if err != nil {
		return Tenant{}, translate(err, "tenant")
	}
	return r.domain(), nil
}

// ListTenants returns the tenants of the platform componentAppID, or of
// every platform when it is "", by creation time.
func (s *Store) ListTenants(ctx context.Context, componentAppID string) ([]Tenant, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	q := s.db.WithContext(ctx)
	if componentAppID != "" {
		q = q.Where("component_appid = ?", componentAppID)
	}
	var rows []tenantRow
	if err := q.Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, translate(err, "tenants")
	}
	out := make([]Tenant, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, nil
}

// UpdateTenant applies fn to the tenant in a transaction (rename, rate
// limits); the tenant's platform cannot change.
func (s *Store) UpdateTenant(ctx context.Context, id string, fn func(*Tenant) error) (Tenant, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var out Tenant
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r tenantRow
		if err := tx.Where("id = ?", id).Take(&r).Error; err != nil {
			return translate(err, "tenant")
		}
		t := r.domain()
		if err := fn(&t); err != nil {
			return err
		}
		t.ID, t.ComponentAppID, t.CreatedAt = r.ID, r.ComponentAppID, fromMS(r.CreatedAt)
		r.setFields(t)
		if err := tx.Select("name", "rate_limit", "rate_burst", "return_url_hosts").Updates(&r).Error; err != nil {
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
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Where("id = ?", id).Delete(&tenantRow{})
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

// TenantSnapshot is everything the authentication cache needs, read at one
// revision: the tenants of every platform (each with its ComponentAppID),
// their keys and their bound accounts.
type TenantSnapshot struct {
	Rev      int64
	Tenants  []Tenant
	Keys     []Key
	Bindings []Binding
}

// LoadTenantSnapshot reads every platform's tenants, keys and bindings in
// one transaction.
func (s *Store) LoadTenantSnapshot(ctx context.Context) (TenantSnapshot, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var snap TenantSnapshot
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Raw("SELECT rev FROM revisions WHERE name = 'tenants'").Scan(&snap.Rev).Error; err != nil {
			return translate(err, "revision")
		}
		var trs []tenantRow
		if err := tx.Find(&trs).Error; err != nil {
			return translate(err, "tenants")
		}
		var krs []keyRow
		if err := tx.Find(&krs).Error; err != nil {
			return translate(err, "keys")
		}
		// Only bound accounts: a pending binding gives its tenant nothing.
		var brs []bindingRow
		if err := tx.Where("status = ?", BindingBound).Find(&brs).Error; err != nil {
			return translate(err, "bindings")
		}
		for _, r := range trs {
			snap.Tenants = append(snap.Tenants, r.domain())
		}
		for _, r := range krs {
			snap.Keys = append(snap.Keys, r.domain())
		}
		for _, r := range brs {
			snap.Bindings = append(snap.Bindings, r.domain())
		}
		return nil
	})
	return snap, err
}
