package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/wxgate/wxgate/internal/errs"
)

// Kinds of console_sessions rows.
const (
	// ConsoleSession is a signed-in operator's session.
	ConsoleSession = "session"
	// ConsoleSignInCode is a one-time sign-in code (wxgate demo's link).
	ConsoleSignInCode = "signin_code"
)

// ConsoleToken is a console session or one-time sign-in code, known by the
// SHA-256 digest of its token (the token itself is never stored).
type ConsoleToken struct {
	TokenHash string
	Kind      string
	CreatedAt time.Time
	// SeenAt is the last request made with it (idle expiry).
	SeenAt time.Time
	// ExpiresAt is its absolute expiry.
	ExpiresAt time.Time
}

type consoleSessionRow struct {
	TokenHash string `gorm:"primaryKey"`
	Kind      string
	CreatedAt int64 `gorm:"autoCreateTime:false"`
	SeenAt    int64
	ExpiresAt int64
}

func (consoleSessionRow) TableName() string { return "console_sessions" }

func (r consoleSessionRow) domain() ConsoleToken {
	return ConsoleToken{TokenHash: r.TokenHash, Kind: r.Kind, CreatedAt: fromMS(r.CreatedAt), SeenAt: fromMS(r.SeenAt), ExpiresAt: fromMS(r.ExpiresAt)}
}

// CreateConsoleToken stores a new session or sign-in code.
func (s *Store) CreateConsoleToken(ctx context.Context, t ConsoleToken) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	r := consoleSessionRow{TokenHash: t.TokenHash, Kind: t.Kind, CreatedAt: ms(t.CreatedAt), SeenAt: ms(t.SeenAt), ExpiresAt: ms(t.ExpiresAt)}
	return translate(s.db.WithContext(ctx).Create(&r).Error, "console session")
}

// GetConsoleToken returns the session or code with this digest and kind;
// not_found if there is none (expired ones too: the caller decides).
func (s *Store) GetConsoleToken(ctx context.Context, kind, tokenHash string) (ConsoleToken, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var r consoleSessionRow
	if err := s.db.WithContext(ctx).Where("token_hash = ? AND kind = ?", tokenHash, kind).Take(&r).Error; err != nil {
		return ConsoleToken{}, translate(err, "console session")
	}
	return r.domain(), nil
}

// TouchConsoleToken moves a session's seen_at forward to at.
func (s *Store) TouchConsoleToken(ctx context.Context, tokenHash string, at time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Model(&consoleSessionRow{}).Where("token_hash = ? AND seen_at < ?", tokenHash, ms(at)).
		Update("seen_at", ms(at)).Error
	return translate(err, "console session")
}

// ConsumeConsoleToken deletes the row with this digest and kind if it has
// not expired at now, and returns it. Of several replicas consuming the
// same code at once exactly one gets it; the others get not_found.
func (s *Store) ConsumeConsoleToken(ctx context.Context, kind, tokenHash string, now time.Time) (ConsoleToken, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var out ConsoleToken
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r consoleSessionRow
		if err := tx.Where("token_hash = ? AND kind = ? AND expires_at > ?", tokenHash, kind, ms(now)).Take(&r).Error; err != nil {
			return translate(err, "console session")
		}
		res := tx.Where("token_hash = ? AND kind = ?", tokenHash, kind).Delete(&consoleSessionRow{})
		if res.Error != nil {
			return translate(res.Error, "console session")
		}
		if res.RowsAffected == 0 {
			return errs.E(errs.NotFound, "console session not found")
		}
		out = r.domain()
		return nil
	})
	return out, translate(err, "console session")
}

// DeleteConsoleToken deletes a session (sign-out); deleting one that is
// gone is a no-op.
func (s *Store) DeleteConsoleToken(ctx context.Context, tokenHash string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return translate(s.db.WithContext(ctx).Where("token_hash = ?", tokenHash).Delete(&consoleSessionRow{}).Error, "console session")
}

// DeleteExpiredConsoleTokens deletes every row past its absolute expiry at
// now, and the sessions not seen since idleCutoff.
func (s *Store) DeleteExpiredConsoleTokens(ctx context.Context, now, idleCutoff time.Time) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("expires_at <= ? OR (kind = ? AND seen_at < ?)", ms(now), ConsoleSession, ms(idleCutoff)).
		Delete(&consoleSessionRow{})
	return res.RowsAffected, translate(res.Error, "console sessions")
}
