package proxy

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wechat"
)

// Authorizers is the authorizer manager (authorizer.Manager) as the proxy
// uses it. Lookup reads the in-memory cache (no database on the hot path).
type Authorizers interface {
	// Lookup returns the cached authorizer, reading one this replica has not
	// seen yet from the store once; false if the component has no such
	// account. Errors: store_unavailable.
	Lookup(ctx context.Context, appid string) (store.Authorizer, bool, error)
	// OnTokenError is called after WeChat refused failed with 40001/40014/42001:
	// it refreshes only if failed is still the current token and returns the token to retry with.
	OnTokenError(ctx context.Context, appid string, failed secret.Value) (secret.Value, error)
	// RefreshInfo re-reads the account's permission sets from WeChat and stores them.
	RefreshInfo(ctx context.Context, appid string) (store.Authorizer, error)
}

// Upstream sends one WeChat request (with the retry policy for transient failures).
type Upstream interface {
	Call(ctx context.Context, req wechat.Request) (wechat.Response, error)
}

// Service runs proxied calls.
type Service struct {
	authorizers Authorizers
	upstream    Upstream
	metrics     *obs.Metrics
	log         *slog.Logger
	timeout     time.Duration
}

// NewService builds the proxy. timeout bounds one call, retries included.
func NewService(authorizers Authorizers, upstream Upstream, m *obs.Metrics, log *slog.Logger, timeout time.Duration) *Service {
	return &Service{authorizers: authorizers, upstream: upstream, metrics: m, log: log, timeout: timeout}
}

// Check refuses a call locally, before anything is sent to WeChat: unknown
// account → not_found; unauthorized or needing re-authorization →
// authorizer_unauthorized; none of the API's permission sets granted →
// permission_set_missing with details.required_any and details.granted.
// An account this replica has not loaded yet (authorized through another
// replica a moment ago) is read from the store once: store_unavailable if
// it cannot be.
func (s *Service) Check(ctx context.Context, api *API, appid string) error {
	_, err := s.authorize(ctx, api, appid)
	return err
}

func (s *Service) authorize(ctx context.Context, api *API, appid string) (store.Authorizer, error) {
	a, ok, err := s.authorizers.Lookup(ctx, appid)
	if err != nil {
		return a, err
	}
	if !ok {
		return a, errs.E(errs.NotFound, "authorizer not found")
	}
	switch a.Status {
	case store.StatusAuthorized:
	case store.StatusNeedsReauthorization:
		return a, errs.E(errs.AuthorizerUnauthorized, "the account must authorize the platform again (its refresh token is no longer valid)")
	default:
		return a, errs.E(errs.AuthorizerUnauthorized, "the account has unauthorized the platform")
	}
	if !a.HasAnySet(api.RequiredSets) {
		return a, permissionMissing(api, a)
	}
	return a, nil
}

func permissionMissing(api *API, a store.Authorizer) *errs.Error {
	return errs.E(errs.PermissionSetMissing, "the account has not granted any permission set this API needs").
		WithDetails(map[string]any{"required_any": api.RequiredSets, "granted": a.PermissionSets})
}

// Call runs api for appid with args and returns WeChat's body unchanged.
// A WeChat errcode comes back as an *errs.Error carrying WeChatErrcode and
// WeChatErrmsg (the compatible route passes those through). On a token
// error it compare-and-refreshes and retries once; on 48001/61007 it
// re-reads the account's permission sets (61007 is permission_set_missing;
// 48001, the account lacking the API itself, is upstream_error).
func (s *Service) Call(ctx context.Context, api *API, appid string, args Args) ([]byte, error) {
	a, err := s.authorize(ctx, api, appid)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	query, body := api.upstream(args)
	req := wechat.Request{API: api.Name, Method: api.Method, Path: api.Path, Query: query, Body: body, AccessToken: a.AccessToken, Account: appid}
	resp, err := s.upstream.Call(ctx, req)
	if err != nil {
		return nil, err
	}
	if wechat.IsTokenError(resp.Errcode) {
		s.metrics.UpstreamRetries.WithLabelValues(api.Name, "token").Inc()
		tok, terr := s.authorizers.OnTokenError(ctx, appid, req.AccessToken)
		if terr != nil {
			return nil, terr
		}
		req.AccessToken = tok
		if resp, err = s.upstream.Call(ctx, req); err != nil {
			return nil, err
		}
		// A fresh token refused too falls through: docs/api.md, "Errors" makes it
		// upstream_error with WeChat's errcode (the compatible route
		// answers -1, see httpapi.answersLocally).
	}
	switch resp.Errcode {
	case 0:
		return resp.Body, nil
	case wechat.ErrAPIUnauthorized, wechat.ErrAPIUnauthorizedToComp:
		// WeChat refused despite the local grant: re-read the sets so the
		// next call is refused locally if the grant is really gone.
		fresh, rerr := s.authorizers.RefreshInfo(ctx, appid)
		if rerr != nil {
			s.log.WarnContext(ctx, "re-reading permission sets failed", "appid", appid, "err", rerr.Error())
			fresh = a
		}
		e := wechat.AsError(resp.Errcode, resp.Errmsg)
		if e.Code == errs.PermissionSetMissing {
			e = e.WithDetails(map[string]any{"required_any": api.RequiredSets, "granted": fresh.PermissionSets})
		}
		return nil, e
	}
	return nil, wechat.AsError(resp.Errcode, resp.Errmsg)
}

// Page is one page of a cursor-paged list (getFans, getTagFans).
type Page struct {
	Count int `json:"count"`
	Data  struct {
		OpenID []string `json:"openid"`
	} `json:"data"`
	NextOpenID string `json:"next_openid"`
}

// Walk calls api page after page from the cursor in args, handing each
// page's openids to emit, until WeChat answers an empty cursor or an empty
// page. before, if not nil, is asked before each page is fetched (the
// export re-checks the caller's access there). It stops at once when ctx
// ends, before or emit fails. On failure it returns the cursor to resume
// from: every openid before it was emitted, none after.
func (s *Service) Walk(ctx context.Context, api *API, appid string, args Args, before func() error, emit func(openids []string) error) (resume string, pages int, err error) {
	cur := Args{}
	for k, v := range args {
		cur[k] = v
	}
	cursor := cur[api.Cursor]
	for {
		if err := ctx.Err(); err != nil {
			return cursor, pages, errs.Wrap(errs.UpstreamTimeout, "the export was cancelled", err)
		}
		if before != nil {
			if err := before(); err != nil {
				return cursor, pages, err
			}
		}
		if cursor == "" {
			delete(cur, api.Cursor)
		} else {
			cur[api.Cursor] = cursor
		}
		body, err := s.Call(ctx, api, appid, cur)
		if err != nil {
			return cursor, pages, err
		}
		var p Page
		if err := json.Unmarshal(body, &p); err != nil {
			return cursor, pages, errs.Wrap(errs.UpstreamError, "WeChat answered a page that is not JSON", err)
		}
		pages++
		if len(p.Data.OpenID) > 0 {
			if err := emit(p.Data.OpenID); err != nil {
				return p.NextOpenID, pages, err
			}
		}
		if p.NextOpenID == "" || p.Count == 0 || len(p.Data.OpenID) == 0 || p.NextOpenID == cursor {
			return "", pages, nil
		}
		cursor = p.NextOpenID
	}
}
