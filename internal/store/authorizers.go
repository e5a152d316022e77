package store

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
)

// Authorizer statuses (docs/api.md, "The AUTHORIZER object").
const (
	StatusAuthorized           = "authorized"
	StatusUnauthorized         = "unauthorized"
	StatusNeedsReauthorization = "needs_reauthorization"
)

// Authorizer is an Official Account that authorized the platform, with its
// tokens in clear (they are sealed in the database).
type Authorizer struct {
	ComponentAppID   string
	AppID            string
	Status           string
	AccessToken      secret.Value
	RefreshToken     secret.Value
	TokenExpiresAt   time.Time
	TokenRefreshedAt time.Time
	PermissionSets   []int
	NickName         string
	AuthorizedAt     time.Time
	UpdatedAt        time.Time
	// Version increments on every change; writers compare-and-swap on it.
	Version int64
	// Rev is the deployment-wide change sequence of the last change.
	Rev int64
}

// HasAnySet reports whether the account granted at least one of sets.
func (a Authorizer) HasAnySet(sets []int) bool {
	for _, s := range sets {
		if slices.Contains(a.PermissionSets, s) {
			return true
		}
	}
	return false
}

type authorizerRow struct {
	ComponentAppID   string `gorm:"column:component_appid;primaryKey"`
	AppID            string `gorm:"column:appid;primaryKey"`
	Status           string
	AccessTokenEnc   string
	RefreshTokenEnc  string
	TokenExpiresAt   int64
	TokenRefreshedAt int64
	PermissionSets   string
	NickName         *string
	AuthorizedAt     int64
	UpdatedAt        int64 `gorm:"autoUpdateTime:false"`
	Version          int64
	Rev              int64
}

func (authorizerRow) TableName() string { return "authorizers" }

func aad(a *authorizerRow, what string) string {
	return "authorizer/" + a.ComponentAppID + "/" + a.AppID + "/" + what
}

func (s *Store) authorizerFromRow(r authorizerRow) (Authorizer, error) {
	access, err := s.box.Open(r.AccessTokenEnc, aad(&r, "access"))
	if err != nil {
		return Authorizer{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	refresh, err := s.box.Open(r.RefreshTokenEnc, aad(&r, "refresh"))
	if err != nil {
		return Authorizer{}, errs.Wrap(errs.Internal, "internal error", err)
	}
	a := Authorizer{
		ComponentAppID: r.ComponentAppID, AppID: r.AppID, Status: r.Status,
		AccessToken: access, RefreshToken: refresh,
		TokenExpiresAt: fromMS(r.TokenExpiresAt), TokenRefreshedAt: fromMS(r.TokenRefreshedAt),
		PermissionSets: parseSets(r.PermissionSets), AuthorizedAt: fromMS(r.AuthorizedAt),
		UpdatedAt: fromMS(r.UpdatedAt), Version: r.Version, Rev: r.Rev,
	}
	if r.NickName != nil {
		a.NickName = *r.NickName
	}
	return a, nil
}

func (s *Store) authorizerToRow(a Authorizer) (authorizerRow, error) {
	r := authorizerRow{
		ComponentAppID: a.ComponentAppID, AppID: a.AppID, Status: a.Status,
		TokenExpiresAt: ms(a.TokenExpiresAt), TokenRefreshedAt: ms(a.TokenRefreshedAt),
		PermissionSets: formatSets(a.PermissionSets), AuthorizedAt: ms(a.AuthorizedAt),
		UpdatedAt: ms(a.UpdatedAt), Version: a.Version, Rev: a.Rev,
	}
	if a.NickName != "" {
		r.NickName = &a.NickName
	}
	var err error
	if r.AccessTokenEnc, err = s.box.Seal(a.AccessToken, aad(&r, "access")); err != nil {
		return r, errs.Wrap(errs.Internal, "internal error", err)
	}
	if r.RefreshTokenEnc, err = s.box.Seal(a.RefreshToken, aad(&r, "refresh")); err != nil {
		return r, errs.Wrap(errs.Internal, "internal error", err)
	}
	return r, nil
}

// shape is the part of a stored account its webhook events compare: status
// and permission sets (no token is opened).
func (r authorizerRow) shape() *Authorizer {
	return &Authorizer{ComponentAppID: r.ComponentAppID, AppID: r.AppID, Status: r.Status, PermissionSets: parseSets(r.PermissionSets)}
}

// state is the stored account without its tokens (none is opened): what
// its webhook events carry.
func (r authorizerRow) state() Authorizer {
	a := Authorizer{ComponentAppID: r.ComponentAppID, AppID: r.AppID, Status: r.Status, PermissionSets: parseSets(r.PermissionSets),
		TokenExpiresAt: fromMS(r.TokenExpiresAt), AuthorizedAt: fromMS(r.AuthorizedAt), UpdatedAt: fromMS(r.UpdatedAt)}
	if r.NickName != nil {
		a.NickName = *r.NickName
	}
	return a
}

func parseSets(s string) []int {
	if s == "" {
		return []int{}
	}
	parts := strings.Split(s, ",")
	out := make([]int, 0, len(parts))
	for _, p := range parts {
		if n, err := strconv.Atoi(p); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func formatSets(sets []int) string {
	sorted := slices.Clone(sets)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	parts := make([]string, len(sorted))
	for i, n := range sorted {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

// GetAuthorizer returns one authorizer of the component (not scoped to a
// tenant: for the platform backend and the admin API only).
func (s *Store) GetAuthorizer(ctx context.Context, componentAppID, appid string) (Authorizer, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var r authorizerRow
	err := s.db.WithContext(ctx).Where("component_appid = ? AND appid = ?", componentAppID, appid).Take(&r).Error
	if err != nil {
		return Authorizer{}, translate(err, "authorizer")
	}
	return s.authorizerFromRow(r)
}

// ListAuthorizers returns every authorizer of the component, ordered by appid.
func (s *Store) ListAuthorizers(ctx context.Context, componentAppID string) ([]Authorizer, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.listAuthorizers(s.db.WithContext(ctx).Where("component_appid = ?", componentAppID).Order("appid"))
}

// AuthorizersChangedSince returns the authorizers whose rev is above rev,
// ordered by rev: how a replica catches up with other replicas' writes.
func (s *Store) AuthorizersChangedSince(ctx context.Context, componentAppID string, rev int64) ([]Authorizer, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.listAuthorizers(s.db.WithContext(ctx).Where("component_appid = ? AND rev > ?", componentAppID, rev).Order("rev"))
}

func (s *Store) listAuthorizers(q *gorm.DB) ([]Authorizer, error) {
	var rows []authorizerRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, translate(err, "authorizers")
	}
	out := make([]Authorizer, 0, len(rows))
	for _, r := range rows {
		a, err := s.authorizerFromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// SaveAuthorization records a (re-)authorization: it inserts the authorizer
// or replaces its tokens (unless the stored ones were issued later), sets
// and status, bumping its version. tenantID, when not empty, binds the
// account to that tenant in the same transaction (binding twice is a no-op).
func (s *Store) SaveAuthorization(ctx context.Context, a Authorizer, tenantID string) (Authorizer, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var out Authorizer
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now().UTC()
		var cur authorizerRow
		var before *Authorizer
		err := tx.Where("component_appid = ? AND appid = ?", a.ComponentAppID, a.AppID).Take(&cur).Error
		switch {
		case err == nil:
			before = cur.shape()
			a.Version = cur.Version + 1
			if a.NickName == "" && cur.NickName != nil {
				a.NickName = *cur.NickName
			}
			// authorized_at is when the current authorization began: an
			// update of an authorized account keeps it.
			if a.AuthorizedAt.IsZero() && cur.Status != StatusUnauthorized {
				a.AuthorizedAt = fromMS(cur.AuthorizedAt)
			}
			// Never replace a token with an older one: a save of tokens
			// read earlier must not undo a refresh committed meanwhile.
			if cur.Status == StatusAuthorized && cur.TokenRefreshedAt > ms(a.TokenRefreshedAt) {
				stored, err := s.authorizerFromRow(cur)
				if err != nil {
					return err
				}
				a.AccessToken, a.RefreshToken = stored.AccessToken, stored.RefreshToken
				a.TokenExpiresAt, a.TokenRefreshedAt = stored.TokenExpiresAt, stored.TokenRefreshedAt
			}
		case errors.Is(err, gorm.ErrRecordNotFound):
			a.Version = 1
		default:
			return translate(err, "authorizer")
		}
		if a.AuthorizedAt.IsZero() {
			a.AuthorizedAt = now
		}
		a.UpdatedAt = now
		if a.Status == "" {
			a.Status = StatusAuthorized
		}
		if a.Rev, err = bumpRevision(tx, "authorizers"); err != nil {
			return err
		}
		row, err := s.authorizerToRow(a)
		if err != nil {
			return err
		}
		if err := tx.Save(&row).Error; err != nil {
			return translate(err, "authorizer")
		}
		if tenantID != "" {
			if _, err := bindTx(tx, tenantID, a.ComponentAppID, a.AppID, BindingBound, now); err != nil {
				return err
			}
		}
		// The webhook events of this change commit with it, or not at all.
		if err := s.authorizerEventsTx(tx, before, a, tenantID); err != nil {
			return err
		}
		out = a
		return nil
	})
	return out, translate(err, "authorizer")
}

// UpdateAuthorizer reads the authorizer, applies fn and writes the result in
// one transaction. If expectVersion is not 0 and the stored version differs,
// it answers conflict without calling fn: the compare-and-swap that keeps two
// refreshers from overwriting each other. fn may not change the identity.
func (s *Store) UpdateAuthorizer(ctx context.Context, componentAppID, appid string, expectVersion int64, fn func(*Authorizer) error) (Authorizer, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var out Authorizer
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r authorizerRow
		if err := tx.Where("component_appid = ? AND appid = ?", componentAppID, appid).Take(&r).Error; err != nil {
			return translate(err, "authorizer")
		}
		if expectVersion != 0 && r.Version != expectVersion {
			return errs.E(errs.Conflict, "authorizer changed concurrently")
		}
		a, err := s.authorizerFromRow(r)
		if err != nil {
			return err
		}
		if err := fn(&a); err != nil {
			return err
		}
		a.ComponentAppID, a.AppID = componentAppID, appid
		a.Version = r.Version + 1
		a.UpdatedAt = s.now().UTC()
		if a.Rev, err = bumpRevision(tx, "authorizers"); err != nil {
			return err
		}
		row, err := s.authorizerToRow(a)
		if err != nil {
			return err
		}
		res := tx.Model(&authorizerRow{}).
			Where("component_appid = ? AND appid = ? AND version = ?", componentAppID, appid, r.Version).
			Select("*").Updates(&row)
		if res.Error != nil {
			return translate(res.Error, "authorizer")
		}
		if res.RowsAffected == 0 {
			return errs.E(errs.Conflict, "authorizer changed concurrently")
		}
		// The webhook events of this change commit with it, or not at all.
		if err := s.authorizerEventsTx(tx, r.shape(), a, ""); err != nil {
			return err
		}
		out = a
		return nil
	})
	return out, err
}
