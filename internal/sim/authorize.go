package sim

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// Authorize simulates the account's admin confirming the authorization of
// the primary platform (see Platform.Authorize).
func (s *Simulator) Authorize(ctx context.Context, appid, preAuthCode string) (string, error) {
	return s.primary.Authorize(ctx, appid, preAuthCode)
}

// Authorize simulates the account's admin confirming the authorization of
// the platform. preAuthCode is the code the page was opened with, or "" for
// an authorization pushed without a pre-auth session; a given code must be
// one of this platform's, valid, unexpired and unused
// (ErrInvalidPreAuthCode) and is then used up.
//
// The first authorization pushes "authorized", a later one
// "updateauthorized"; both rotate the refresh token (the previous one then
// answers 61023) and carry a fresh one-time authorization code valid for
// AuthCodeLifetime, which is returned. The event is pushed synchronously
// (with retries) to this platform's EventURL; if it is not answered
// "success" the returned code is still valid and the error wraps ErrPush.
// The account's authorizations of other platforms are not touched.
func (p *Platform) Authorize(ctx context.Context, appid, preAuthCode string) (string, error) {
	code, ev, err := p.authorize(appid, preAuthCode)
	if err != nil {
		return "", err
	}
	return code, p.push(ctx, ev)
}

// authorize applies an authorization and returns its code and event.
func (p *Platform) authorize(appid, preAuthCode string) (string, wxcrypt.Event, error) {
	s := p.s
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.accountLocked(appid)
	if err != nil {
		return "", wxcrypt.Event{}, err
	}
	if preAuthCode != "" {
		pre, err := p.preAuthLocked(preAuthCode, now)
		if err != nil {
			return "", wxcrypt.Event{}, err
		}
		if pre.bizAppID != "" && pre.bizAppID != appid {
			return "", wxcrypt.Event{}, fmt.Errorf("%w: restricted to account %s", ErrInvalidPreAuthCode, pre.bizAppID)
		}
		pre.used = true
	}
	g := p.grantLocked(appid)
	infoType := wxcrypt.InfoTypeUpdateAuthorized
	if !g.authorized {
		infoType = wxcrypt.InfoTypeAuthorized
		g.authTime = now
	}
	g.authorized, g.everAuth = true, true
	code, ev := p.mintLocked(a, g, infoType, preAuthCode, now)
	s.log.Info("sim: account authorized the platform", "component_appid", p.appid, "appid", appid, "info_type", infoType)
	return code, ev, nil
}

// mintLocked rotates the refresh token of the account's authorization of
// p and mints an authorization code.
func (p *Platform) mintLocked(a *account, g *grant, infoType, preAuthCode string, now time.Time) (string, wxcrypt.Event) {
	g.refresh = newRefreshToken()
	p.pruneCodesLocked(now)
	code := newAuthCode()
	expires := now.Add(AuthCodeLifetime)
	p.authCodes[code] = &authCode{appid: a.spec.AppID, expires: expires}
	return code, wxcrypt.Event{
		AppID:                        p.appid,
		CreateTime:                   now.Unix(),
		InfoType:                     infoType,
		AuthorizerAppid:              a.spec.AppID,
		AuthorizationCode:            code,
		AuthorizationCodeExpiredTime: expires.Unix(),
		PreAuthCode:                  preAuthCode,
	}
}

// preAuthLocked finds a usable pre-auth code of p.
func (p *Platform) preAuthLocked(code string, now time.Time) (*preAuthCode, error) {
	pre, ok := p.preAuth[code]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: unknown", ErrInvalidPreAuthCode)
	case pre.used:
		return nil, fmt.Errorf("%w: already used", ErrInvalidPreAuthCode)
	case !now.Before(pre.expires):
		return nil, fmt.Errorf("%w: expired", ErrInvalidPreAuthCode)
	}
	return pre, nil
}

// Unauthorize simulates the account's admin cancelling the authorization
// of the primary platform (see Platform.Unauthorize).
func (s *Simulator) Unauthorize(ctx context.Context, appid string) error {
	return s.primary.Unauthorize(ctx, appid)
}

// Unauthorize simulates the account's admin cancelling the authorization
// of the platform: every access token this platform obtained for the
// account answers 40001, the refresh token 61023, unexchanged authorization
// codes 61009, and an "unauthorized" event is pushed synchronously to this
// platform (the error wraps ErrPush if it is not answered "success"). The
// account's authorizations of other platforms stand. It answers
// ErrNotAuthorized if the account has not authorized this platform.
func (p *Platform) Unauthorize(ctx context.Context, appid string) error {
	s := p.s
	now := s.now()
	s.mu.Lock()
	_, err := s.accountLocked(appid)
	g := p.authorizedLocked(appid)
	if err == nil && g == nil {
		err = fmt.Errorf("%w: %s", ErrNotAuthorized, appid)
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	g.authorized = false
	g.authTime = time.Time{}
	g.refresh = ""
	s.authorizers.invalidateAll(p.key(appid))
	for k, c := range p.authCodes {
		if c.appid == appid {
			delete(p.authCodes, k)
		}
	}
	s.mu.Unlock()
	s.log.Info("sim: account unauthorized the platform", "component_appid", p.appid, "appid", appid)
	return p.push(ctx, wxcrypt.Event{
		AppID:           p.appid,
		CreateTime:      now.Unix(),
		InfoType:        wxcrypt.InfoTypeUnauthorized,
		AuthorizerAppid: appid,
	})
}

// SetPermissionSets changes the permission sets the account grants the
// primary platform (see Platform.SetPermissionSets).
func (s *Simulator) SetPermissionSets(ctx context.Context, appid string, sets []int, push bool) error {
	return s.primary.SetPermissionSets(ctx, appid, sets, push)
}

// SetPermissionSets changes the permission sets the account grants the
// platform (other platforms keep theirs). With push set and the account
// authorized, it behaves like a re-authorization: the refresh token rotates
// and an "updateauthorized" event with a fresh authorization code is pushed
// synchronously (the error wraps ErrPush if it is not answered "success").
func (p *Platform) SetPermissionSets(ctx context.Context, appid string, sets []int, push bool) error {
	_, err := p.setPermissionSets(ctx, appid, sets, push)
	return err
}

func (p *Platform) setPermissionSets(ctx context.Context, appid string, sets []int, push bool) (string, error) {
	for _, id := range sets {
		if id <= 0 {
			return "", fmt.Errorf("%w: permission set id %d must be positive", ErrInvalid, id)
		}
	}
	s := p.s
	now := s.now()
	s.mu.Lock()
	a, err := s.accountLocked(appid)
	if err != nil {
		s.mu.Unlock()
		return "", err
	}
	g := p.grantLocked(appid)
	g.sets = append([]int{}, sets...)
	if !push || !g.authorized {
		s.mu.Unlock()
		return "", nil
	}
	code, ev := p.mintLocked(a, g, wxcrypt.InfoTypeUpdateAuthorized, "", now)
	s.mu.Unlock()
	s.log.Info("sim: account changed its permission sets", "component_appid", p.appid, "appid", appid, "sets", slices.Clone(sets))
	return code, p.push(ctx, ev)
}

// ExpireToken makes the account's current authorizer access token of the
// primary platform answer 42001 (see Platform.ExpireToken).
func (s *Simulator) ExpireToken(appid string) error { return s.primary.ExpireToken(appid) }

// ExpireToken makes the account's current authorizer access token obtained
// by this platform answer 42001 (access_token expired) from now on.
func (p *Platform) ExpireToken(appid string) error {
	s := p.s
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.accountLocked(appid); err != nil {
		return err
	}
	if !s.authorizers.expireCurrent(p.key(appid), now) {
		return fmt.Errorf("%w: account %s", ErrNoToken, appid)
	}
	return nil
}

// InvalidateToken makes the account's authorizer access tokens of the
// primary platform answer 40001 (see Platform.InvalidateToken).
func (s *Simulator) InvalidateToken(appid string) error { return s.primary.InvalidateToken(appid) }

// InvalidateToken makes the account's current (and every previous)
// authorizer access token obtained by this platform answer 40001 from now on.
func (p *Platform) InvalidateToken(appid string) error {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.accountLocked(appid); err != nil {
		return err
	}
	if !s.authorizers.invalidateAll(p.key(appid)) {
		return fmt.Errorf("%w: account %s", ErrNoToken, appid)
	}
	return nil
}

// ExpireComponentToken makes the primary platform's current
// component_access_token answer 42001 from now on.
func (s *Simulator) ExpireComponentToken() error { return s.primary.ExpireComponentToken() }

// ExpireComponentToken makes the platform's current component_access_token
// answer 42001 from now on.
func (p *Platform) ExpireComponentToken() error {
	s := p.s
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.components.expireCurrent(p.appid, now) {
		return fmt.Errorf("%w: component %s", ErrNoToken, p.appid)
	}
	return nil
}

// InvalidateComponentToken makes every component_access_token of the
// primary platform answer 40001.
func (s *Simulator) InvalidateComponentToken() error { return s.primary.InvalidateComponentToken() }

// InvalidateComponentToken makes every component_access_token of the
// platform answer 40001.
func (p *Platform) InvalidateComponentToken() error {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.components.invalidateAll(p.appid) {
		return fmt.Errorf("%w: component %s", ErrNoToken, p.appid)
	}
	return nil
}

// CurrentAccessToken returns the newest authorizer access token the
// primary platform obtained for the account (see Platform.CurrentAccessToken).
func (s *Simulator) CurrentAccessToken(appid string) string {
	return s.primary.CurrentAccessToken(appid)
}

// CurrentAccessToken returns the newest authorizer access token issued to
// this platform for the account, whatever its state ("" if none). For
// tests only.
func (p *Platform) CurrentAccessToken(appid string) string {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.s.authorizers.current(p.key(appid))
}

// CurrentComponentToken returns the primary platform's newest
// component_access_token (see Platform.CurrentComponentToken).
func (s *Simulator) CurrentComponentToken() string { return s.primary.CurrentComponentToken() }

// CurrentComponentToken returns the platform's newest
// component_access_token, whatever its state ("" if none). For tests only.
func (p *Platform) CurrentComponentToken() string {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.s.components.current(p.appid)
}
