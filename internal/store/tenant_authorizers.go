package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxgate/wxgate/internal/errs"
)

// Binding says a tenant may see and call an authorizer, or, when Pending,
// that an authorization by the tenant waits for the operator's approval.
type Binding struct {
	TenantID string
	// ComponentAppID is the platform of the tenant and of the account: a
	// tenant is only ever bound to its own platform's accounts.
	ComponentAppID string
	AppID          string
	Pending        bool
	// DailyLimit caps the tenant's calls per proxied API and Beijing day on
	// the account (0: no cap).
	DailyLimit int64
}

// Binding statuses (tenant_authorizers.status).
const (
	BindingBound   = "bound"
	BindingPending = "pending"
)

type bindingRow struct {
	TenantID       string `gorm:"primaryKey"`
	ComponentAppID string `gorm:"column:component_appid"`
	AppID          string `gorm:"column:appid;primaryKey"`
	Status         string
	CreatedAt      int64 `gorm:"autoCreateTime:false"`
	DailyLimit     int64
}

func (bindingRow) TableName() string { return "tenant_authorizers" }

func (r bindingRow) domain() Binding {
	return Binding{TenantID: r.TenantID, ComponentAppID: r.ComponentAppID, AppID: r.AppID, Pending: r.Status == BindingPending, DailyLimit: r.DailyLimit}
}

// tenantComponentTx returns the platform tenantID belongs to; not_found if
// the tenant is unknown.
func tenantComponentTx(tx *gorm.DB, tenantID string) (string, error) {
	var r tenantRow
	if err := tx.Select("id", "component_appid").Where("id = ?", tenantID).Take(&r).Error; err != nil {
		return "", translate(err, "tenant")
	}
	return r.ComponentAppID, nil
}

// errOtherPlatform answers a binding of a tenant to an account of a
// platform the tenant does not belong to: to that platform the tenant does
// not exist.
var errOtherPlatform = errs.E(errs.NotFound, "tenant not found")

// bindTx writes the binding with status: a new one is created; an existing
// pending one becomes bound when status is bound (the operator's word
// approves it: approved says so); a bound one stays bound. The tenant must
// belong to componentAppID (not_found otherwise): no binding ever crosses
// platforms.
func bindTx(tx *gorm.DB, tenantID, componentAppID, appid, status string, now time.Time) (approved bool, err error) {
	owner, err := tenantComponentTx(tx, tenantID)
	if err != nil {
		return false, err
	}
	if owner != componentAppID {
		return false, errOtherPlatform
	}
	r := bindingRow{TenantID: tenantID, ComponentAppID: componentAppID, AppID: appid, Status: status, CreatedAt: ms(now)}
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&r)
	if res.Error != nil {
		return false, translate(res.Error, "binding")
	}
	changed := res.RowsAffected > 0
	if !changed && status == BindingBound {
		res = tx.Model(&bindingRow{}).Where("tenant_id = ? AND component_appid = ? AND appid = ? AND status = ?",
			tenantID, componentAppID, appid, BindingPending).Update("status", BindingBound)
		if res.Error != nil {
			return false, translate(res.Error, "binding")
		}
		approved = res.RowsAffected > 0
		changed = approved
	}
	if changed {
		if _, err := bumpRevision(tx, "tenants"); err != nil {
			return false, err
		}
	}
	return approved, nil
}

// approveTx binds tenantID to the account, approving a pending binding; an
// approval completes the tenant's authorization, so its webhook learns of
// it (authorizer.authorized) in the same transaction.
func (s *Store) approveTx(tx *gorm.DB, tenantID, componentAppID, appid string) error {
	approved, err := bindTx(tx, tenantID, componentAppID, appid, BindingBound, s.now())
	if err != nil || !approved {
		return err
	}
	return s.approvalEventTx(tx, tenantID, componentAppID, appid)
}

// RequestBinding records that tenantID authorized appid while the account
// is bound elsewhere: a pending binding that gives the tenant nothing until
// the operator approves it (Bind or ApproveBinding). A binding that exists
// already, pending or bound, is left as it is.
func (s *Store) RequestBinding(ctx context.Context, componentAppID, tenantID, appid string) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		_, err := bindTx(tx, tenantID, componentAppID, appid, BindingPending, s.now())
		return err
	})
	return translate(err, "binding")
}

// ApproveBinding turns a pending binding into a bound one (approving a
// bound one changes nothing); not_found if the tenant is unknown or has no
// binding, pending or bound, to its platform's account appid.
func (s *Store) ApproveBinding(ctx context.Context, tenantID, appid string) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		componentAppID, err := tenantComponentTx(tx, tenantID)
		if err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&bindingRow{}).Where("tenant_id = ? AND component_appid = ? AND appid = ?", tenantID, componentAppID, appid).
			Count(&n).Error; err != nil {
			return translate(err, "binding")
		}
		if n == 0 {
			return errs.E(errs.NotFound, "no binding of this account to this tenant is waiting for approval")
		}
		return s.approveTx(tx, tenantID, componentAppID, appid)
	})
	return translate(err, "binding")
}

// PendingBindings returns the component's bindings that wait for the
// operator's approval, by tenant and appid. There are few of them, so the
// console reads them on every accounts page.
func (s *Store) PendingBindings(ctx context.Context, componentAppID string) ([]Binding, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var rows []bindingRow
	if err := s.db.WithContext(ctx).Where("component_appid = ? AND status = ?", componentAppID, BindingPending).
		Order("tenant_id, appid").Find(&rows).Error; err != nil {
		return nil, translate(err, "bindings")
	}
	out := make([]Binding, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, nil
}

// BoundTenants lists the tenants appid is bound to (not those waiting for
// approval), sorted.
func (s *Store) BoundTenants(ctx context.Context, componentAppID, appid string) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&bindingRow{}).Where("component_appid = ? AND appid = ? AND status = ?", componentAppID, appid, BindingBound).
		Order("tenant_id").Pluck("tenant_id", &ids).Error
	return ids, translate(err, "bindings")
}

// Bind lets tenantID see and call the authorizer appid of the tenant's own
// platform (approving a pending binding); not_found if either is unknown,
// also when appid is only known on another platform; binding twice is a
// no-op.
func (s *Store) Bind(ctx context.Context, tenantID, appid string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		componentAppID, err := tenantComponentTx(tx, tenantID)
		if err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&authorizerRow{}).Where("component_appid = ? AND appid = ?", componentAppID, appid).Count(&n).Error; err != nil {
			return translate(err, "authorizer")
		}
		if n == 0 {
			return errs.E(errs.NotFound, "authorizer not found")
		}
		return s.approveTx(tx, tenantID, componentAppID, appid)
	})
	return translate(err, "binding")
}

// Unbind removes the binding of tenantID to its platform's account appid;
// removing one that does not exist is a no-op; not_found if the tenant is
// unknown.
func (s *Store) Unbind(ctx context.Context, tenantID, appid string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		componentAppID, err := tenantComponentTx(tx, tenantID)
		if err != nil {
			return err
		}
		res := tx.Where("tenant_id = ? AND component_appid = ? AND appid = ?", tenantID, componentAppID, appid).Delete(&bindingRow{})
		if res.Error != nil {
			return translate(res.Error, "binding")
		}
		if res.RowsAffected == 0 {
			return nil
		}
		_, err = bumpRevision(tx, "tenants")
		return err
	})
	return translate(err, "binding")
}

// SetBindingLimit sets the tenant's daily cap on its platform's account
// appid (0 removes it) and returns the binding; not_found if the tenant is
// unknown or the account is not bound to it.
func (s *Store) SetBindingLimit(ctx context.Context, tenantID, appid string, dailyLimit int64) (Binding, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var out Binding
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		componentAppID, err := tenantComponentTx(tx, tenantID)
		if err != nil {
			return err
		}
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
		_, err = bumpRevision(tx, "tenants")
		return err
	})
	return out, translate(err, "binding")
}

// ListBindings returns every binding of the component's tenants, the
// pending ones too.
func (s *Store) ListBindings(ctx context.Context, componentAppID string) ([]Binding, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
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
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if tenantID == "" {
		return Authorizer{}, errs.E(errs.Internal, "internal error")
	}
	list, err := s.listAuthorizers(s.db.WithContext(ctx).
		Joins("JOIN tenant_authorizers b ON b.component_appid = authorizers.component_appid AND b.appid = authorizers.appid").
		Where("authorizers.component_appid = ? AND b.tenant_id = ? AND authorizers.appid = ? AND b.status = ?", componentAppID, tenantID, appid, BindingBound))
	if err != nil {
		return Authorizer{}, err
	}
	if len(list) == 0 {
		return Authorizer{}, errs.E(errs.NotFound, "authorizer not found")
	}
	return list[0], nil
}
