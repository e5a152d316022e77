package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxgate/wxgate/internal/errs"
)

// Binding says a tenant may see and call an authorizer.
type Binding struct {
	TenantID string
	AppID    string
	// DailyLimit caps the tenant's calls per proxied API and Beijing day on
	// the account (0: no cap).
	DailyLimit int64
}

type bindingRow struct {
	TenantID       string `gorm:"primaryKey"`
	ComponentAppID string `gorm:"column:component_appid"`
	AppID          string `gorm:"column:appid;primaryKey"`
	CreatedAt      int64  `gorm:"autoCreateTime:false"`
	DailyLimit     int64
}

func (r bindingRow) domain() Binding {
	return Binding{TenantID: r.TenantID, AppID: r.AppID, DailyLimit: r.DailyLimit}
}

func (bindingRow) TableName() string { return "tenant_authorizers" }

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

// SetBindingLimit sets the tenant's daily cap on the account (0 removes
// it) and returns the binding; not_found if the account is not bound to
// the tenant.
func (s *Store) SetBindingLimit(ctx context.Context, componentAppID, tenantID, appid string, dailyLimit int64) (Binding, error) {
	var out Binding
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&bindingRow{}).Where("tenant_id = ? AND component_appid = ? AND appid = ?", tenantID, componentAppID, appid).
			Update("daily_limit", dailyLimit)
		if res.Error != nil {
			return translate(res.Error, "binding")
		}
		if res.RowsAffected == 0 {
			return errs.E(errs.NotFound, "the account is not bound to the tenant")
		}
		var r bindingRow
		if err := tx.Where("tenant_id = ? AND component_appid = ? AND appid = ?", tenantID, componentAppID, appid).Take(&r).Error; err != nil {
			return translate(err, "binding")
		}
		out = r.domain()
		_, err := bumpRevision(tx, "tenants")
		return err
	})
	return out, translate(err, "binding")
}

// ListBindings returns every binding of the component's tenants.
func (s *Store) ListBindings(ctx context.Context, componentAppID string) ([]Binding, error) {
	var rows []bindingRow
	if err := s.db.WithContext(ctx).Where("component_appid = ?", componentAppID).Order("tenant_id, appid").Find(&rows).Error; err != nil {
		return nil, translate(err, "bindings")
	}
	out := make([]Binding, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, nil
}

// TenantAuthorizer returns one authorizer if it is bound to tenantID, and
// not_found otherwise, the same answer whether the account is unknown or
// belongs to another tenant. It fails closed: an empty tenant id is an
// error, never "any tenant".
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
