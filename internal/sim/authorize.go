package sim

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// Authorize simulates the account's admin confirming the authorization of
// the platform. preAuthCode is the code the page was opened with, or "" for
// an authorization pushed without a pre-auth session; a given code must be
// valid, unexpired and unused (ErrInvalidPreAuthCode) and is then used up.
//
// The first authorization pushes "authorized", a later one
// "updateauthorized"; both rotate the refresh token (the previous one then
// answers 61023) and carry a fresh one-time authorization code valid for
// AuthCodeLifetime, which is returned. The event is pushed synchronously
// (with retries); if it is not answered "success" the returned code is still
// valid and the error wraps ErrPush.
func (s *Simulator) Authorize(ctx context.Context, appid, preAuthCode string) (string, error) {
	code, ev, err := s.authorize(appid, preAuthCode)
	if err != nil {
		return "", err
	}
	return code, s.push(ctx, ev)
}

// authorize applies an authorization and returns its code and event.
func (s *Simulator) authorize(appid, preAuthCode string) (string, wxcrypt.Event, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.accountLocked(appid)
	if err != nil {
		return "", wxcrypt.Event{}, err
	}
	if preAuthCode != "" {
		p, err := s.preAuthLocked(preAuthCode, now)
		if err != nil {
			return "", wxcrypt.Event{}, err
		}
		if p.bizAppID != "" && p.bizAppID != appid {
			return "", wxcrypt.Event{}, fmt.Errorf("%w: restricted to account %s", ErrInvalidPreAuthCode, p.bizAppID)
		}
		p.used = true
	}
	infoType := wxcrypt.InfoTypeUpdateAuthorized
	if !a.authorized {
		infoType = wxcrypt.InfoTypeAuthorized
		a.authTime = now
	}
	a.authorized, a.everAuth = true, true
	code, ev := s.grantLocked(a, infoType, preAuthCode, now)
	s.log.Info("sim: account authorized the platform", "appid", appid, "info_type", infoType)
	return code, ev, nil
}

// grantLocked rotates the refresh token and mints an authorization code.
func (s *Simulator) grantLocked(a *account, infoType, preAuthCode string, now time.Time) (string, wxcrypt.Event) {
	a.refresh = newRefreshToken()
	s.pruneCodesLocked(now)
	code := newAuthCode()
	expires := now.Add(AuthCodeLifetime)
	s.authCodes[code] = &authCode{appid: a.spec.AppID, expires: expires}
	return code, wxcrypt.Event{
		AppID:                        s.opts.ComponentAppID,
		CreateTime:                   now.Unix(),
		InfoType:                     infoType,
		AuthorizerAppid:              a.spec.AppID,
		AuthorizationCode:            code,
		AuthorizationCodeExpiredTime: expires.Unix(),
		PreAuthCode:                  preAuthCode,
	}
}

// preAuthLocked finds a usable pre-auth code.
func (s *Simulator) preAuthLocked(code string, now time.Time) (*preAuthCode, error) {
	p, ok := s.preAuth[code]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: unknown", ErrInvalidPreAuthCode)
	case p.used:
		return nil, fmt.Errorf("%w: already used", ErrInvalidPreAuthCode)
	case !now.Before(p.expires):
		return nil, fmt.Errorf("%w: expired", ErrInvalidPreAuthCode)
	}
	return p, nil
}

// Unauthorize simulates the account's admin cancelling the authorization:
// every access token of the account answers 40001, the refresh token 61023,
// unexchanged authorization codes 61009, and an "unauthorized" event is
// pushed synchronously (the error wraps ErrPush if it is not answered
// "success"). It answers ErrNotAuthorized if the account is not authorized.
func (s *Simulator) Unauthorize(ctx context.Context, appid string) error {
	now := s.now()
	s.mu.Lock()
	a, err := s.accountLocked(appid)
	if err == nil && !a.authorized {
		err = fmt.Errorf("%w: %s", ErrNotAuthorized, appid)
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	a.authorized = false
	a.authTime = time.Time{}
	a.refresh = ""
	s.authorizers.invalidateAll(appid)
	for k, c := range s.authCodes {
		if c.appid == appid {
			delete(s.authCodes, k)
		}
	}
	s.mu.Unlock()
	s.log.Info("sim: account unauthorized the platform", "appid", appid)
	return s.push(ctx, wxcrypt.Event{
		AppID:           s.opts.ComponentAppID,
		CreateTime:      now.Unix(),
		InfoType:        wxcrypt.InfoTypeUnauthorized,
		AuthorizerAppid: appid,
	})
}

// SetPermissionSets changes the permission sets the account grants. With
// push set and the account authorized, it behaves like a re-authorization:
// the refresh token rotates and an "updateauthorized" event with a fresh
// authorization code is pushed synchronously (the error wraps ErrPush if it
// is not answered "success").
func (s *Simulator) SetPermissionSets(ctx context.Context, appid string, sets []int, push bool) error {
	_, err := s.setPermissionSets(ctx, appid, sets, push)
	return err
}

func (s *Simulator) setPermissionSets(ctx context.Context, appid string, sets []int, push bool) (string, error) {
	for _, id := range sets {
		if id <= 0 {
			return "", fmt.Errorf("%w: permission set id %d must be positive", ErrInvalid, id)
		}
	}
	now := s.now()
	s.mu.Lock()
	a, err := s.accountLocked(appid)
	if err != nil {
		s.mu.Unlock()
		return "", err
	}
	a.spec.PermissionSets = append([]int{}, sets...)
	if !push || !a.authorized {
		s.mu.Unlock()
		return "", nil
	}
	code, ev := s.grantLocked(a, wxcrypt.InfoTypeUpdateAuthorized, "", now)
	s.mu.Unlock()
	s.log.Info("sim: account changed its permission sets", "appid", appid, "sets", slices.Clone(sets))
	return code, s.push(ctx, ev)
}

// ExpireToken makes the account's current authorizer access token answer
// 42001 (access_token expired) from now on.
func (s *Simulator) ExpireToken(appid string) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.accountLocked(appid); err != nil {
		return err
	}
	if !s.authorizers.expireCurrent(appid, now) {
		return fmt.Errorf("%w: account %s", ErrNoToken, appid)
	}
	return nil
}

// InvalidateToken makes the account's current (and every previous)
// authorizer access token answer 40001 from now on.
func (s *Simulator) InvalidateToken(appid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.accountLocked(appid); err != nil {
		return err
	}
	if !s.authorizers.invalidateAll(appid) {
		return fmt.Errorf("%w: account %s", ErrNoToken, appid)
	}
	return nil
}

// ExpireComponentToken makes the current component_access_token answer
// 42001 from now on.
func (s *Simulator) ExpireComponentToken() error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.component.expireCurrent("", now) {
		return fmt.Errorf("%w: component", ErrNoToken)
	}
	return nil
}

// InvalidateComponentToken makes every component_access_token answer 40001.
func (s *Simulator) InvalidateComponentToken() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.component.invalidateAll("") {
		return fmt.Errorf("%w: component", ErrNoToken)
	}
	return nil
}

// CurrentAccessToken returns the newest authorizer access token issued for
// the account, whatever its state ("" if none). For tests only.
func (s *Simulator) CurrentAccessToken(appid string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authorizers.current(appid)
}

// CurrentComponentToken returns the newest component_access_token issued,
// whatever its state ("" if none). For tests only.
func (s *Simulator) CurrentComponentToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.component.current("")
}
