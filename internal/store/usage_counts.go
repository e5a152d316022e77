package store

import (
	"cmp"
	"context"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxgate/wxgate/internal/errs"
)

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
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if len(rows) == 0 {
		return nil
	}
	// One lock order for every replica: upserts in different orders from two
	// replicas' flushes would deadlock each other on PostgreSQL.
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b UsageRow) int {
		return cmp.Or(cmp.Compare(a.TenantID, b.TenantID), a.Hour.Compare(b.Hour), cmp.Compare(a.AppID, b.AppID),
			cmp.Compare(a.API, b.API), cmp.Compare(a.Outcome, b.Outcome))
	})
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
	ctx, cancel := s.bound(ctx)
	defer cancel()
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
