package store

import (
	"context"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// QuotaCount is the gateway's calls of one API on one account by one
// tenant in one Beijing day (days since 1970-01-01 in UTC+8).
type QuotaCount struct {
	AppID    string
	API      string
	TenantID string
	Day      int64
	Calls    int64
	// Reserved is quota a replica reserved ahead of its calls and has not
	// used yet (a row's change may be negative as reservations are used).
	Reserved int64
}

type quotaCountRow struct {
	ComponentAppID string `gorm:"column:component_appid;primaryKey"`
	Day            int64  `gorm:"primaryKey"`
	AppID          string `gorm:"column:appid;primaryKey"`
	API            string `gorm:"column:api;primaryKey"`
	TenantID       string `gorm:"primaryKey"`
	Calls          int64
	Reserved       int64
}

func (quotaCountRow) TableName() string { return "quota_counts" }

// AddQuotaCounts adds a replica's batched counts in one transaction
// (upsert + increment), so every replica's calls add up.
func (s *Store) AddQuotaCounts(ctx context.Context, componentAppID string, rows []QuotaCount) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if len(rows) == 0 {
		return nil
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, q := range rows {
			r := quotaCountRow{ComponentAppID: componentAppID, Day: q.Day, AppID: q.AppID, API: q.API, TenantID: q.TenantID, Calls: q.Calls, Reserved: q.Reserved}
			err := tx.Clauses(clause.OnConflict{
				Columns: []clause.Column{{Name: "component_appid"}, {Name: "day"}, {Name: "appid"}, {Name: "api"}, {Name: "tenant_id"}},
				DoUpdates: clause.Assignments(map[string]any{
					"calls":    gorm.Expr("quota_counts.calls + ?", q.Calls),
					"reserved": gorm.Expr("quota_counts.reserved + ?", q.Reserved),
				}),
			}).Create(&r).Error
			if err != nil {
				return translate(err, "quota counts")
			}
		}
		return nil
	})
	return translate(err, "quota counts")
}

// QuotaCounts returns the deployment's counts of one Beijing day.
func (s *Store) QuotaCounts(ctx context.Context, componentAppID string, day int64) ([]QuotaCount, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var rows []quotaCountRow
	if err := s.db.WithContext(ctx).Where("component_appid = ? AND day = ?", componentAppID, day).Find(&rows).Error; err != nil {
		return nil, translate(err, "quota counts")
	}
	out := make([]QuotaCount, len(rows))
	for i, r := range rows {
		out[i] = QuotaCount{AppID: r.AppID, API: r.API, TenantID: r.TenantID, Day: r.Day, Calls: r.Calls, Reserved: r.Reserved}
	}
	return out, nil
}

// DeleteQuotaCountsBefore deletes the counts of days before day (every
// component's) and returns how many rows went.
func (s *Store) DeleteQuotaCountsBefore(ctx context.Context, day int64) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("day < ?", day).Delete(&quotaCountRow{})
	return res.RowsAffected, translate(res.Error, "quota counts")
}
