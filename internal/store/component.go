package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
)

// Component is the stored state of one third-party platform.
type Component struct {
	AppID            string
	Ticket           secret.Value
	TicketReceivedAt time.Time
	Token            secret.Value
	TokenExpiresAt   time.Time
	Version          int64
	UpdatedAt        time.Time
}

type componentRow struct {
	AppID            string `gorm:"column:appid;primaryKey"`
	TicketEnc        string
	TicketReceivedAt int64
	TokenEnc         string
	TokenExpiresAt   int64
	Version          int64
	UpdatedAt        int64 `gorm:"autoUpdateTime:false"`
}

func (componentRow) TableName() string { return "components" }

func (s *Store) componentFromRow(r componentRow) (Component, error) {
	ticket, err := s.box.Open(r.TicketEnc, "component/"+r.AppID+"/ticket")
	if err != nil {
		return Component{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	token, err := s.box.Open(r.TokenEnc, "component/"+r.AppID+"/token")
	if err != nil {
		return Component{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	return Component{
		AppID: r.AppID, Ticket: ticket, TicketReceivedAt: fromMS(r.TicketReceivedAt),
		Token: token, TokenExpiresAt: fromMS(r.TokenExpiresAt), Version: r.Version, UpdatedAt: fromMS(r.UpdatedAt),
	}, nil
}

// GetComponent returns the component's state; not_found before the first ticket.
func (s *Store) GetComponent(ctx context.Context, appid string) (Component, error) {
	var r componentRow
	if err := s.db.WithContext(ctx).Where("appid = ?", appid).Take(&r).Error; err != nil {
		return Component{}, translate(err, "component")
	}
	return s.componentFromRow(r)
}

// SaveTicket stores a component_verify_ticket unless a newer one is already
// stored (pushes can arrive out of order). It reports whether it stored it.
func (s *Store) SaveTicket(ctx context.Context, appid string, ticket secret.Value, receivedAt time.Time) (bool, error) {
	enc, err := s.box.Seal(ticket, "component/"+appid+"/ticket")
	if err != nil {
		return false, errs.Wrap(errs.Internal, "internal error", err)
	}
	now := ms(s.now())
	row := componentRow{AppID: appid, TicketEnc: enc, TicketReceivedAt: ms(receivedAt), Version: 1, UpdatedAt: now}
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "appid"}},
		DoUpdates: clause.Assignments(map[string]any{
			"ticket_enc": enc, "ticket_received_at": ms(receivedAt), "updated_at": now,
			"version": gorm.Expr("components.version + 1"),
		}),
		Where: clause.Where{Exprs: []clause.Expression{clause.Lte{Column: "components.ticket_received_at", Value: ms(receivedAt)}}},
	}).Create(&row)
	if res.Error != nil {
		return false, translate(res.Error, "component")
	}
	return res.RowsAffected == 1, nil
}

// SaveComponentToken stores a new component token if the component's version
// is still expectVersion; otherwise it answers conflict (someone else
// refreshed first).
func (s *Store) SaveComponentToken(ctx context.Context, appid string, expectVersion int64, token secret.Value, expiresAt time.Time) (Component, error) {
	enc, err := s.box.Seal(token, "component/"+appid+"/token")
	if err != nil {
		return Component{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	res := s.db.WithContext(ctx).Model(&componentRow{}).
		Where("appid = ? AND version = ?", appid, expectVersion).
		Updates(map[string]any{"token_enc": enc, "token_expires_at": ms(expiresAt), "version": gorm.Expr("version + 1"), "updated_at": ms(s.now())})
	if res.Error != nil {
		return Component{}, translate(res.Error, "component")
	}
	if res.RowsAffected == 0 {
		return Component{}, errs.E(errs.Conflict, "component changed concurrently")
	}
	return s.GetComponent(ctx, appid)
}
