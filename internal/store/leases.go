package store

import (
	"context"
	"time"

	"gorm.io/gorm/clause"
)

type leaseRow struct {
	Name  string `gorm:"primaryKey"`
	Owner string
	Until int64
}

func (leaseRow) TableName() string { return "leases" }

// TryLease takes the named lease for owner until now+ttl if it is free,
// expired, or already owner's. It reports whether owner holds it now. A
// holder that crashes loses it when ttl runs out.
func (s *Store) TryLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	now := s.now()
	r := leaseRow{Name: name, Owner: owner, Until: ms(now.Add(ttl))}
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "name"}},
		DoUpdates: clause.AssignmentColumns([]string{"owner", "until"}),
		Where: clause.Where{Exprs: []clause.Expression{clause.Or(
			clause.Lt{Column: "leases.until", Value: ms(now)},
			clause.Eq{Column: "leases.owner", Value: owner},
		)}},
	}).Create(&r)
	if res.Error != nil {
		return false, translate(res.Error, "lease")
	}
	return res.RowsAffected == 1, nil
}

// ReleaseLease gives the lease up if owner holds it.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Where("name = ? AND owner = ?", name, owner).Delete(&leaseRow{}).Error
	return translate(err, "lease")
}
