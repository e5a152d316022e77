package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
)

// ComponentState is the component's stored state with the time its token
// was obtained (migration 00002), from which its lifetime is known.
type ComponentState struct {
	Component
	TokenRefreshedAt time.Time
}

type componentStateRow struct {
	AppID            string `gorm:"column:appid;primaryKey"`
	TicketEnc        string
	TicketReceivedAt int64
	TokenEnc         string
	TokenExpiresAt   int64
	TokenRefreshedAt int64
	Version          int64
	UpdatedAt        int64 `gorm:"autoUpdateTime:false"`
}

func (componentStateRow) TableName() string { return "components" }

// GetComponentState returns the component's state; not_found before the
// first ticket.
func (s *Store) GetComponentState(ctx context.Context, appid string) (ComponentState, error) {
	var r componentStateRow
	if err := s.db.WithContext(ctx).Where("appid = ?", appid).Take(&r).Error; err != nil {
		return ComponentState{}, translate(err, "component")
	}
	c, err := s.componentFromRow(componentRow{AppID: r.AppID, TicketEnc: r.TicketEnc, TicketReceivedAt: r.TicketReceivedAt,
		TokenEnc: r.TokenEnc, TokenExpiresAt: r.TokenExpiresAt, Version: r.Version, UpdatedAt: r.UpdatedAt})
	if err != nil {
		return ComponentState{}, err
	}
	return ComponentState{Component: c, TokenRefreshedAt: fromMS(r.TokenRefreshedAt)}, nil
}

// SwapComponentToken stores a new component token obtained at refreshedAt
// if the component's version is still expectVersion; otherwise it answers
// conflict (a ticket arrived or another replica refreshed first).
func (s *Store) SwapComponentToken(ctx context.Context, appid string, expectVersion int64, token secret.Value, refreshedAt, expiresAt time.Time) (ComponentState, error) {
	enc, err := s.box.Seal(token, "component/"+appid+"/token")
	if err != nil {
		return ComponentState{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	res := s.db.WithContext(ctx).Model(&componentRow{}).
		Where("appid = ? AND version = ?", appid, expectVersion).
		Updates(map[string]any{
			"token_enc": enc, "token_expires_at": ms(expiresAt), "token_refreshed_at": ms(refreshedAt),
			"version": gorm.Expr("version + 1"), "updated_at": ms(s.now()),
		})
	if res.Error != nil {
		return ComponentState{}, translate(res.Error, "component")
	}
	if res.RowsAffected == 0 {
		return ComponentState{}, errs.E(errs.Conflict, "component changed concurrently")
	}
	return s.GetComponentState(ctx, appid)
}
