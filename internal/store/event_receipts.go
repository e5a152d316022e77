package store

import (
	"context"
	"time"

	"gorm.io/gorm/clause"
)

type receiptRow struct {
	Digest     string `gorm:"primaryKey"`
	ReceivedAt int64
}

func (receiptRow) TableName() string { return "event_receipts" }

// EventSeen reports whether an event with this digest was handled before.
func (s *Store) EventSeen(ctx context.Context, digest string) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var n int64
	err := s.db.WithContext(ctx).Model(&receiptRow{}).Where("digest = ?", digest).Count(&n).Error
	return n > 0, translate(err, "event receipt")
}

// RecordEvent remembers that the event with this digest was handled; doing
// so twice is harmless.
func (s *Store) RecordEvent(ctx context.Context, digest string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&receiptRow{Digest: digest, ReceivedAt: ms(s.now())}).Error
	return translate(err, "event receipt")
}

// DeleteEventsBefore prunes receipts older than cutoff.
func (s *Store) DeleteEventsBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("received_at < ?", ms(cutoff)).Delete(&receiptRow{})
	return res.RowsAffected, translate(res.Error, "event receipts")
}
