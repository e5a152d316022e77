package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
)

// ComponentState is the stored state of one third-party platform (the
// components table): its latest component_verify_ticket and its component
// token, both in clear (they are sealed in the database).
type ComponentState struct {
	AppID  string
	Ticket secret.Value
	// TicketCreatedAt is when WeChat created the ticket (its push's
	// CreateTime); tickets are ordered by it.
	TicketCreatedAt  time.Time
	TicketReceivedAt time.Time
	Token            secret.Value
	TokenExpiresAt   time.Time
	// TokenRefreshedAt is when Token was obtained: with TokenExpiresAt it
	// gives the token's lifetime, from which every replica schedules the
	// next refresh, also after a restart. Zero when unknown.
	TokenRefreshedAt time.Time
	// Version increments on every change (a ticket, a token); token
	// writers compare-and-swap on it.
	Version   int64
	UpdatedAt time.Time
}

type componentRow struct {
	AppID            string `gorm:"column:appid;primaryKey"`
	TicketEnc        string
	TicketCreatedAt  int64
	TicketReceivedAt int64
	TokenEnc         string
	TokenExpiresAt   int64
	TokenRefreshedAt int64
	Version          int64
	UpdatedAt        int64 `gorm:"autoUpdateTime:false"`
}

func (componentRow) TableName() string { return "components" }

func ticketAAD(appid string) string { return "component/" + appid + "/ticket" }
func tokenAAD(appid string) string  { return "component/" + appid + "/token" }

func (s *Store) componentFromRow(r componentRow) (ComponentState, error) {
	ticket, err := s.box.Open(r.TicketEnc, ticketAAD(r.AppID))
	if err != nil {
		return ComponentState{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	token, err := s.box.Open(r.TokenEnc, tokenAAD(r.AppID))
	if err != nil {
		return ComponentState{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	return ComponentState{
		AppID: r.AppID, Ticket: ticket, TicketCreatedAt: fromMS(r.TicketCreatedAt), TicketReceivedAt: fromMS(r.TicketReceivedAt),
		Token: token, TokenExpiresAt: fromMS(r.TokenExpiresAt), TokenRefreshedAt: fromMS(r.TokenRefreshedAt),
		Version: r.Version, UpdatedAt: fromMS(r.UpdatedAt),
	}, nil
}

// GetComponentState returns the component's state; not_found before the
// first ticket.
func (s *Store) GetComponentState(ctx context.Context, appid string) (ComponentState, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var r componentRow
	if err := s.db.WithContext(ctx).Where("appid = ?", appid).Take(&r).Error; err != nil {
		return ComponentState{}, translate(err, "component")
	}
	return s.componentFromRow(r)
}

// SaveTicket stores a component_verify_ticket that WeChat created at
// createdAt (its push's CreateTime) and this replica received at
// receivedAt, bumping the version, unless one created later is already
// stored: pushes arrive out of order, late, or replayed, and only WeChat's
// clock orders them. It reports whether it stored it.
func (s *Store) SaveTicket(ctx context.Context, appid string, ticket secret.Value, createdAt, receivedAt time.Time) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	enc, err := s.box.Seal(ticket, ticketAAD(appid))
	if err != nil {
		return false, errs.Wrap(errs.Internal, "internal error", err)
	}
	now := ms(s.now())
	row := componentRow{AppID: appid, TicketEnc: enc, TicketCreatedAt: ms(createdAt), TicketReceivedAt: ms(receivedAt), Version: 1, UpdatedAt: now}
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "appid"}},
		DoUpdates: clause.Assignments(map[string]any{
			"ticket_enc": enc, "ticket_created_at": ms(createdAt), "ticket_received_at": ms(receivedAt), "updated_at": now,
			"version": gorm.Expr("components.version + 1"),
		}),
		Where: clause.Where{Exprs: []clause.Expression{clause.Lte{Column: "components.ticket_created_at", Value: ms(createdAt)}}},
	}).Create(&row)
	if res.Error != nil {
		return false, translate(res.Error, "component")
	}
	return res.RowsAffected == 1, nil
}

// SwapComponentToken stores a new component token obtained at refreshedAt
// if the component's version is still expectVersion, and returns the new
// state; otherwise it answers conflict (a ticket arrived, another replica
// refreshed first, or there is no such component yet).
func (s *Store) SwapComponentToken(ctx context.Context, appid string, expectVersion int64, token secret.Value, refreshedAt, expiresAt time.Time) (ComponentState, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	enc, err := s.box.Seal(token, tokenAAD(appid))
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
