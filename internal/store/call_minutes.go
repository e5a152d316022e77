package store

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// CallMinute counts one component's proxied calls, and the failed ones,
// in one minute, across replicas.
type CallMinute struct {
	Minute time.Time
	Calls  int64
	Errors int64
}

type callMinuteRow struct {
	ComponentAppID string `gorm:"column:component_appid;primaryKey"`
	Minute         int64  `gorm:"primaryKey"`
	Calls          int64
	Errors         int64
}

func (callMinuteRow) TableName() string { return "call_minutes" }

// AddCallMinutes adds counts to their minutes in one transaction (upsert +
// increment), so every replica's flush adds up.
func (s *Store) AddCallMinutes(ctx context.Context, componentAppID string, rows []CallMinute) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if len(rows) == 0 {
		return nil
	}
	// One lock order for every replica (see AddUsage).
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b CallMinute) int { return a.Minute.Compare(b.Minute) })
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, m := range rows {
			r := callMinuteRow{ComponentAppID: componentAppID, Minute: ms(m.Minute.Truncate(time.Minute)), Calls: m.Calls, Errors: m.Errors}
			err := tx.Clauses(clause.OnConflict{
				Columns: []clause.Column{{Name: "component_appid"}, {Name: "minute"}},
				DoUpdates: clause.Assignments(map[string]any{
					"calls":  gorm.Expr("call_minutes.calls + ?", m.Calls),
					"errors": gorm.Expr("call_minutes.errors + ?", m.Errors),
				}),
			}).Create(&r).Error
			if err != nil {
				return translate(err, "call counts")
			}
		}
		return nil
	})
	return translate(err, "call counts")
}

// CallMinutes returns the component's counts for the minutes in [from,
// to), oldest first; minutes without calls have no row.
func (s *Store) CallMinutes(ctx context.Context, componentAppID string, from, to time.Time) ([]CallMinute, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var rows []callMinuteRow
	err := s.db.WithContext(ctx).Where("component_appid = ? AND minute >= ? AND minute < ?", componentAppID, ms(from), ms(to)).
		Order("minute").Find(&rows).Error
	if err != nil {
		return nil, translate(err, "call counts")
	}
	out := make([]CallMinute, len(rows))
	for i, r := range rows {
		out[i] = CallMinute{Minute: fromMS(r.Minute), Calls: r.Calls, Errors: r.Errors}
	}
	return out, nil
}

// DeleteCallMinutesBefore deletes the counts of minutes before cutoff
// (every component's).
func (s *Store) DeleteCallMinutesBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("minute < ?", ms(cutoff)).Delete(&callMinuteRow{})
	return res.RowsAffected, translate(res.Error, "call counts")
}
