package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// bumpRevision increments the named change counter inside tx and returns the
// new value. The row lock it takes serialises writers until commit, so
// revisions become visible in order and a poller never skips one.
func bumpRevision(tx *gorm.DB, name string) (int64, error) {
	var rev int64
	err := tx.Raw("UPDATE revisions SET rev = rev + 1 WHERE name = ? RETURNING rev", name).Scan(&rev).Error
	if err != nil {
		return 0, fmt.Errorf("bump revision %s: %w", name, err)
	}
	return rev, nil
}

// Revision returns the current value of a change counter ("authorizers",
// "tenants"). Replicas poll it to learn that something changed.
func (s *Store) Revision(ctx context.Context, name string) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var rev int64
	err := s.db.WithContext(ctx).Raw("SELECT rev FROM revisions WHERE name = ?", name).Scan(&rev).Error
	return rev, translate(err, "revision")
}
