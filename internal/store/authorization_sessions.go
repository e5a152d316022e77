package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/wxgate/wxgate/internal/secret"
)

// AuthSession is an authorization started by a tenant with
// POST /v1/authorizations.
type AuthSession struct {
	ID             string
	TenantID       string
	ComponentAppID string
	ReturnURL      string
	AuthType       int
	BizAppID       string
	CreatedAt      time.Time
	ExpiresAt      time.Time
	CompletedAt    *time.Time
	AppID          string // set once completed
	// AuthCodeHash is the digest of the authorization code WeChat's
	// authorized event delivered for this session's pre_auth_code; empty
	// until that event arrives. Compare codes with MatchesAuthCode.
	AuthCodeHash string
}

// MatchesAuthCode reports whether code is the authorization code WeChat's
// event delivered for this session (false while no event has arrived).
func (s AuthSession) MatchesAuthCode(code secret.Value) bool {
	return s.AuthCodeHash != "" && !code.IsZero() && s.AuthCodeHash == codeHash(code)
}

type sessionRow struct {
	ID              string `gorm:"primaryKey"`
	TenantID        string
	ComponentAppID  string `gorm:"column:component_appid"`
	PreAuthCodeHash string
	ReturnURL       string
	AuthType        int
	BizAppID        string `gorm:"column:biz_appid"`
	CreatedAt       int64  `gorm:"autoCreateTime:false"`
	ExpiresAt       int64
	CompletedAt     *int64
	AppID           string `gorm:"column:appid"`
	AuthCodeHash    string
}

func (sessionRow) TableName() string { return "authorization_sessions" }

func (r sessionRow) domain() AuthSession {
	return AuthSession{ID: r.ID, TenantID: r.TenantID, ComponentAppID: r.ComponentAppID, ReturnURL: r.ReturnURL,
		AuthType: r.AuthType, BizAppID: r.BizAppID, CreatedAt: fromMS(r.CreatedAt), ExpiresAt: fromMS(r.ExpiresAt),
		CompletedAt: fromMSPtr(r.CompletedAt), AppID: r.AppID, AuthCodeHash: r.AuthCodeHash}
}

// codeHash keeps pre_auth_codes and authorization codes out of the
// database: sessions are matched to events and callbacks by this digest.
func codeHash(code secret.Value) string {
	sum := sha256.Sum256([]byte(code.Reveal()))
	return hex.EncodeToString(sum[:])
}

// CreateSession stores a new authorization session for its pre_auth_code.
func (s *Store) CreateSession(ctx context.Context, sess AuthSession, preAuthCode secret.Value) (AuthSession, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	r := sessionRow{ID: sess.ID, TenantID: sess.TenantID, ComponentAppID: sess.ComponentAppID,
		PreAuthCodeHash: codeHash(preAuthCode), ReturnURL: sess.ReturnURL, AuthType: sess.AuthType,
		BizAppID: sess.BizAppID, CreatedAt: ms(sess.CreatedAt), ExpiresAt: ms(sess.ExpiresAt)}
	if r.CreatedAt == 0 {
		r.CreatedAt = ms(s.now())
	}
	if err := s.db.WithContext(ctx).Create(&r).Error; err != nil {
		return AuthSession{}, translate(err, "authorization session")
	}
	return r.domain(), nil
}

// GetSession returns a session by id (expired ones too: the caller decides).
func (s *Store) GetSession(ctx context.Context, id string) (AuthSession, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var r sessionRow
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&r).Error; err != nil {
		return AuthSession{}, translate(err, "authorization session")
	}
	return r.domain(), nil
}

// SessionByPreAuthCode finds the session that owns a pre_auth_code.
func (s *Store) SessionByPreAuthCode(ctx context.Context, preAuthCode secret.Value) (AuthSession, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var r sessionRow
	if err := s.db.WithContext(ctx).Where("pre_auth_code_hash = ?", codeHash(preAuthCode)).Take(&r).Error; err != nil {
		return AuthSession{}, translate(err, "authorization session")
	}
	return r.domain(), nil
}

// RecordSessionCode stores the digest of the authorization code WeChat's
// authorized event delivered for the session's pre_auth_code. The first
// code stays: a later one for the same session is ignored, and it reports
// whether the stored code is code.
func (s *Store) RecordSessionCode(ctx context.Context, id string, code secret.Value) (bool, error) {
	h := codeHash(code)
	res := s.db.WithContext(ctx).Model(&sessionRow{}).Where("id = ? AND auth_code_hash = ''", id).Update("auth_code_hash", h)
	if res.Error != nil {
		return false, translate(res.Error, "authorization session")
	}
	if res.RowsAffected == 1 {
		return true, nil
	}
	var r sessionRow
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&r).Error; err != nil {
		return false, translate(err, "authorization session")
	}
	return r.AuthCodeHash == h, nil
}

// SessionByAuthCode finds the session whose authorized event delivered
// code; not_found if none did (yet).
func (s *Store) SessionByAuthCode(ctx context.Context, code secret.Value) (AuthSession, error) {
	var r sessionRow
	if err := s.db.WithContext(ctx).Where("auth_code_hash = ?", codeHash(code)).Take(&r).Error; err != nil {
		return AuthSession{}, translate(err, "authorization session")
	}
	return r.domain(), nil
}

// CompleteSession marks the session completed for appid. The first
// completion wins; completing again for the same appid is a no-op, and it
// reports whether this call was the one that completed it.
func (s *Store) CompleteSession(ctx context.Context, id, appid string) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Model(&sessionRow{}).Where("id = ? AND completed_at IS NULL", id).
		Updates(map[string]any{"completed_at": ms(s.now()), "appid": appid})
	if res.Error != nil {
		return false, translate(res.Error, "authorization session")
	}
	return res.RowsAffected == 1, nil
}

// DeleteExpiredSessions removes sessions that expired before cutoff.
func (s *Store) DeleteExpiredSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("expires_at < ?", ms(cutoff)).Delete(&sessionRow{})
	return res.RowsAffected, translate(res.Error, "authorization sessions")
}
