package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
)

// Platform is a third-party platform registered at run time (the platforms
// table): its appid and the three settings WeChat's platform page shows, in
// clear (they are sealed in the database). The deployment's default
// platform comes from its configuration and has no row.
type Platform struct {
	AppID     string
	Secret    secret.Value
	Token     secret.Value
	AESKey    secret.Value
	CreatedAt time.Time
	// UpdatedAt is when the settings last changed (registration or
	// update).
	UpdatedAt time.Time
}

type platformRow struct {
	AppID     string `gorm:"column:appid;primaryKey"`
	SecretEnc string
	TokenEnc  string
	AESKeyEnc string `gorm:"column:aes_key_enc"`
	CreatedAt int64  `gorm:"autoCreateTime:false"`
	UpdatedAt int64  `gorm:"autoUpdateTime:false"`
}

func (platformRow) TableName() string { return "platforms" }

// platformAAD binds each sealed setting to its platform and field, so a
// ciphertext copied to another row or column does not open.
func platformAAD(appid, field string) string { return "platform/" + appid + "/" + field }

// CreatePlatform registers a platform; an appid already registered answers
// conflict.
func (s *Store) CreatePlatform(ctx context.Context, p Platform) (Platform, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	now := ms(s.now())
	r := platformRow{AppID: p.AppID, CreatedAt: now, UpdatedAt: now}
	if err := s.sealPlatform(&r, p); err != nil {
		return Platform{}, err
	}
	if err := s.db.WithContext(ctx).Create(&r).Error; err != nil {
		return Platform{}, translate(err, "platform")
	}
	return s.platformFromRow(r)
}

// sealPlatform seals p's settings into r.
func (s *Store) sealPlatform(r *platformRow, p Platform) error {
	for _, f := range platformSettings(r, &p) {
		enc, err := s.box.Seal(*f.clear, platformAAD(r.AppID, f.name))
		if err != nil {
			return errs.Wrap(errs.Internal, "internal error", err)
		}
		*f.sealed = enc
	}
	return nil
}

// platformSetting is one of a platform's settings: in clear, its sealed
// column, and the name its seal is bound to.
type platformSetting struct {
	clear  *secret.Value
	sealed *string
	name   string
}

func platformSettings(r *platformRow, p *Platform) [3]platformSetting {
	return [3]platformSetting{{&p.Secret, &r.SecretEnc, "secret"}, {&p.Token, &r.TokenEnc, "token"}, {&p.AESKey, &r.AESKeyEnc, "aes_key"}}
}

// UpdatePlatform changes a registered platform's settings with fn (its
// appid stays) and returns them; not_found when none has that appid. An
// error from fn is returned as is and nothing changes.
func (s *Store) UpdatePlatform(ctx context.Context, appid string, fn func(*Platform) error) (Platform, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var out Platform
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r platformRow
		q := tx.Where("appid = ?", appid)
		if s.dialect == Postgres { // SQLite has one writer at a time anyway
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&r).Error; err != nil {
			return err
		}
		p, err := s.platformFromRow(r)
		if err != nil {
			return err
		}
		if err := fn(&p); err != nil {
			return err
		}
		if err := s.sealPlatform(&r, p); err != nil {
			return err
		}
		r.UpdatedAt = max(ms(s.now()), r.UpdatedAt+1)
		if err := tx.Save(&r).Error; err != nil {
			return err
		}
		out, err = s.platformFromRow(r)
		return err
	})
	return out, translate(err, "platform")
}

// ListPlatforms returns every registered platform, oldest first. A row
// whose settings no longer open (sealed under a key the replica lacks,
// damaged) is logged and left out rather than failing the others.
func (s *Store) ListPlatforms(ctx context.Context) ([]Platform, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var rows []platformRow
	if err := s.db.WithContext(ctx).Order("created_at, appid").Find(&rows).Error; err != nil {
		return nil, translate(err, "platform")
	}
	out := make([]Platform, 0, len(rows))
	for _, r := range rows {
		p, err := s.platformFromRow(r)
		if err != nil {
			s.log.ErrorContext(ctx, "store: a registered platform's settings do not open; it is not served (register it again)", "component_appid", r.AppID, "err", err.Error())
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// GetPlatform returns one registered platform; not_found when none has
// that appid.
func (s *Store) GetPlatform(ctx context.Context, appid string) (Platform, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var r platformRow
	if err := s.db.WithContext(ctx).Where("appid = ?", appid).Take(&r).Error; err != nil {
		return Platform{}, translate(err, "platform")
	}
	return s.platformFromRow(r)
}

// DeletePlatform removes a registered platform: not_found when there is
// none, conflict while a tenant belongs to it. Its accounts, tokens and
// ticket stay in the store, so registering it again picks them up. The
// check and the delete run after the tenants revision is bumped in the same
// transaction, which orders them after any tenant write in flight.
func (s *Store) DeletePlatform(ctx context.Context, appid string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := bumpRevision(tx, "tenants"); err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&tenantRow{}).Where("component_appid = ?", appid).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return errs.E(errs.Conflict, "the platform still has tenants: delete them or move them first").
				WithDetails(map[string]any{"tenants": n})
		}
		res := tx.Where("appid = ?", appid).Delete(&platformRow{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errs.E(errs.NotFound, "platform not found")
		}
		return nil
	})
	return translate(err, "platform")
}

func (s *Store) platformFromRow(r platformRow) (Platform, error) {
	p := Platform{AppID: r.AppID, CreatedAt: fromMS(r.CreatedAt), UpdatedAt: fromMS(r.UpdatedAt)}
	for _, f := range platformSettings(&r, &p) {
		v, err := s.box.Open(*f.sealed, platformAAD(r.AppID, f.name))
		if err != nil {
			return Platform{}, errs.Wrap(errs.Internal, "internal error", err)
		}
		*f.clear = v
	}
	return p, nil
}
