package proxy

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/quota"
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

// Quota is the daily-quota keeper (quota.Keeper) as the proxy uses it.
type Quota interface {
	// Admit counts a tenant's call or refuses it locally (rate_limited,
	// details.scope wechat_daily_quota or tenant_daily_limit).
	Admit(ctx context.Context, tenantID, appid, api, cgiPath string) error
	// Spend counts a WeChat call or refuses it locally (wechat_daily_quota).
	Spend(ctx context.Context, appid, api, cgiPath string) error
	// Answered records that WeChat answered a call Spend counted.
	Answered(appid, api, cgiPath string)
	// SpentByWeChat records a 45009 answer and learns the quota again.
	SpentByWeChat(ctx context.Context, appid, api, cgiPath string)
	// Cleared records a successful clear_quota.
	Cleared(appid string)
	// Status is what the replica knows of one API's quota, and whether it is due to be learned.
	Status(appid, api, cgiPath string) (quota.Status, bool)
	// Learn asks WeChat (through the proxy's LearnQuota) and applies the answer.
	Learn(ctx context.Context, appid, api, cgiPath string) (quota.Status, error)
}

// Service runs proxied calls.
type Service struct {
	authorizers Authorizers
	upstream    Upstream
	quota       Quota
	metrics     *obs.Metrics
	log         *slog.Logger
	now         func() time.Time
	timeout     time.Duration
	// inflight coalesces identical calls (same account, API and
	// arguments) in flight at once into one WeChat call.
	inflight singleflight.Group
}

// Options configure NewService.
type Options struct {
	Authorizers Authorizers
	Upstream    Upstream
	// Quota may be nil: no quota is counted or enforced.
	Quota   Quota
	Metrics *obs.Metrics
	Logger  *slog.Logger
	Now     func() time.Time
	// Timeout bounds one call, retries included.
	Timeout time.Duration
}

// NewService builds the proxy.
func NewService(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{authorizers: o.Authorizers, upstream: o.Upstream, quota: o.Quota, metrics: o.Metrics, log: o.Logger, now: o.Now, timeout: o.Timeout}
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
	a, err := s.authorized(ctx, appid)
	if err != nil {
		return a, err
	}
	if api.RequiredSets == nil && len(a.PermissionSets) > 0 {
		return a, nil
	}
	if !a.HasAnySet(api.RequiredSets) {
		return a, permissionMissing(api, a)
	}
	return a, nil
}

// authorized returns the account if it authorizes the platform.
func (s *Service) authorized(ctx context.Context, appid string) (store.Authorizer, error) {
	a, ok, err := s.authorizers.Lookup(ctx, appid)
	if err != nil {
		return a, err
	}
	if !ok {
		return a, errs.E(errs.NotFound, "authorizer not found")
	}
	switch a.Status {
	case store.StatusAuthorized:
		return a, nil
	case store.StatusNeedsReauthorization:
		return a, errs.E(errs.AuthorizerUnauthorized, "the account must authorize the platform again (its refresh token is no longer valid)")
	default:
		return a, errs.E(errs.AuthorizerUnauthorized, "the account has unauthorized the platform")
	}
}

func permissionMissing(api *API, a store.Authorizer) *errs.Error {
	var required any = api.RequiredSets
	if api.RequiredSets == nil {
		required = "any"
	}
	return errs.E(errs.PermissionSetMissing, "the account has not granted any permission set this API needs").
		WithDetails(map[string]any{"required_any": required, "granted": a.PermissionSets})
}

// result is one WeChat answer shared by coalesced calls.
type result struct {
	body []byte
}

// Call runs api for appid on tenantID's behalf with args and returns
// WeChat's body unchanged. A WeChat errcode comes back as an *errs.Error
// carrying WeChatErrcode and WeChatErrmsg (the compatible route passes
// those through). On a token error it compare-and-refreshes and retries
// once; on 48001/61007 it re-reads the account's permission sets (61007 is
// permission_set_missing; 48001, the account lacking the API itself, is
// upstream_error).
//
// For an API with a daily quota the tenant's call is counted (and refused
// locally beyond the tenant's cap or once the account's quota is spent),
// then identical calls in flight at once share one WeChat call and its
// answer, error included; only that call spends the account's quota.
func (s *Service) Call(ctx context.Context, api *API, appid, tenantID string, args Args) ([]byte, error) {
	a, err := s.authorize(ctx, api, appid)
	if err != nil {
		return nil, err
	}
	if api.DailyQuota && s.quota != nil && tenantID != "" {
		if err := s.quota.Admit(ctx, tenantID, appid, api.Name, api.Path); err != nil {
			return nil, err
		}
	}
	query, body := api.upstream(args)
	key := appid + "\x00" + api.Name + "\x00" + query.Encode() + "\x00" + string(body)
	ch := s.inflight.DoChan(key, func() (any, error) {
		// The shared call outlives any one caller: a client that goes
		// away does not fail the others waiting on the same answer.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		b, err := s.send(cctx, api, a, query, body)
		return result{body: b}, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(result).body, nil
	case <-ctx.Done():
		return nil, errs.Wrap(errs.UpstreamTimeout, "the call was cancelled", ctx.Err())
	}
}

// send makes one WeChat call of api (spending the account's quota).
func (s *Service) send(ctx context.Context, api *API, a store.Authorizer, query url.Values, body []byte) ([]byte, error) {
	appid := a.AppID
	if api.DailyQuota && s.quota != nil {
		if err := s.quota.Spend(ctx, appid, api.Name, api.Path); err != nil {
			return nil, err
		}
	}
	req := wechat.Request{API: api.Name, Method: api.Method, Path: api.Path, Query: query, Body: body, AccessToken: a.AccessToken, Account: appid}
	resp, err := s.do(ctx, req)
	if api.DailyQuota && s.quota != nil {
		s.quota.Answered(appid, api.Name, api.Path)
	}
	if err != nil {
		return nil, err
	}
	switch resp.Errcode {
	case 0:
		return resp.Body, nil
	case wechat.ErrDailyQuota:
		if api.DailyQuota && s.quota != nil {
			s.quota.SpentByWeChat(ctx, appid, api.Name, api.Path)
		}
	case wechat.ErrAPIUnauthorized, wechat.ErrAPIUnauthorizedToComp:
		// WeChat refused despite the local grant: re-read the sets so the
		// next call is refused locally if the grant is really gone.
		fresh, rerr := s.authorizers.RefreshInfo(ctx, appid)
		if rerr != nil {
			s.log.WarnContext(ctx, "re-reading permission sets failed", "appid", appid, "err", rerr.Error())
			fresh = a
		}
		e := wechat.AsErrorAt(resp.Errcode, resp.Errmsg, s.now())
		if e.Code == errs.PermissionSetMissing {
			e = e.WithDetails(map[string]any{"required_any": api.RequiredSets, "granted": fresh.PermissionSets})
		}
		return nil, e
	}
	return nil, wechat.AsErrorAt(resp.Errcode, resp.Errmsg, s.now())
}

// do sends req with the account's token; on a token error it
// compare-and-refreshes and retries once.
func (s *Service) do(ctx context.Context, req wechat.Request) (wechat.Response, error) {
	resp, err := s.upstream.Call(ctx, req)
	if err != nil {
		return resp, err
	}
	if wechat.IsTokenError(resp.Errcode) {
		s.metrics.UpstreamRetries.WithLabelValues(req.API, "token").Inc()
		tok, terr := s.authorizers.OnTokenError(ctx, req.Account, req.AccessToken)
		if terr != nil {
			return resp, terr
		}
		req.AccessToken = tok
		// A fresh token refused too falls through: docs/api.md, "Errors" makes it
		// upstream_error with WeChat's errcode (the compatible route
		// answers -1, see httpapi.answersLocally).
		return s.upstream.Call(ctx, req)
	}
	return resp, nil
}

// LearnQuota asks WeChat's quota/get for the account's daily quota of
// cgiPath (the quota keeper's Learner).
func (s *Service) LearnQuota(ctx context.Context, appid, cgiPath string) (quota.Quota, error) {
	a, err := s.authorized(ctx, appid)
	if err != nil {
		return quota.Quota{}, err
	}
	b, _ := json.Marshal(map[string]string{"cgi_path": cgiPath})
	resp, err := s.do(ctx, wechat.Request{API: "getApiQuota", Method: "POST", Path: quotaGetPath, Body: b, AccessToken: a.AccessToken, Account: appid})
	if err != nil {
		return quota.Quota{}, err
	}
	if resp.Errcode != 0 {
		return quota.Quota{}, wechat.AsErrorAt(resp.Errcode, resp.Errmsg, s.now())
	}
	var out struct {
		Quota quota.Quota `json:"quota"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return quota.Quota{}, errs.Wrap(errs.UpstreamError, "WeChat answered quota/get with a body that is not JSON", err)
	}
	return out.Quota, nil
}

const (
	quotaGetPath   = "/cgi-bin/openapi/quota/get"
	clearQuotaPath = "/cgi-bin/clear_quota"
)

// Quotas returns the account's daily quota of every proxied API with one,
// asking WeChat first for those never learned or stale (if WeChat cannot be
// asked, a stale answer is given with its checked_at; an API never learned
// is the error). not_found or authorizer_unauthorized as Check.
func (s *Service) Quotas(ctx context.Context, appid string) ([]quota.Status, error) {
	if _, err := s.authorized(ctx, appid); err != nil {
		return nil, err
	}
	if s.quota == nil {
		return []quota.Status{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out := []quota.Status{}
	for _, api := range APIs {
		if !api.DailyQuota {
			continue
		}
		st, due := s.quota.Status(appid, api.Name, api.Path)
		if due {
			fresh, err := s.quota.Learn(ctx, appid, api.Name, api.Path)
			switch {
			case err == nil:
				st = fresh
			case st.DailyLimit == 0:
				return nil, err
			default:
				// WeChat cannot be asked now: what is known, with its checked_at.
				s.log.WarnContext(ctx, "quota: quota/get failed; answering the last known quota", "appid", appid, "api", api.Name, "err", err.Error())
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// ClearQuota calls clear_quota for the account and returns its fresh
// quotas. WeChat's 48006 (the account's 10 clears of the month are used)
// is rate_limited with a message saying so and Retry-After until the next
// month in Beijing time.
func (s *Service) ClearQuota(ctx context.Context, appid string) ([]quota.Status, error) {
	a, err := s.authorized(ctx, appid)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	b, _ := json.Marshal(map[string]string{"appid": appid})
	resp, err := s.do(cctx, wechat.Request{API: "clear_quota", Method: "POST", Path: clearQuotaPath, Body: b, AccessToken: a.AccessToken, Account: appid})
	if err != nil {
		return nil, err
	}
	switch resp.Errcode {
	case 0:
	case wechat.ErrAPIForbidden:
		now := s.now()
		return nil, errs.E(errs.RateLimited, "WeChat refused clear_quota: an account may clear its quota 10 times a month, and this month's are used").
			WithWeChat(resp.Errcode, resp.Errmsg).WithRetryAfter(nextMonth(now).Sub(now))
	default:
		return nil, wechat.AsErrorAt(resp.Errcode, resp.Errmsg, s.now())
	}
	if s.quota == nil {
		return []quota.Status{}, nil
	}
	s.quota.Cleared(appid)
	out := []quota.Status{}
	for _, api := range APIs {
		if !api.DailyQuota {
			continue
		}
		st, err := s.quota.Learn(cctx, appid, api.Name, api.Path)
		if err != nil {
			s.log.WarnContext(ctx, "quota: learning after clear_quota failed", "appid", appid, "api", api.Name, "err", err.Error())
			st, _ = s.quota.Status(appid, api.Name, api.Path)
		}
		out = append(out, st)
	}
	return out, nil
}

// nextMonth is the first midnight of the next month in Beijing time.
func nextMonth(t time.Time) time.Time {
	b := t.In(beijing)
	return time.Date(b.Year(), b.Month()+1, 1, 0, 0, 0, 0, beijing)
}

var beijing = time.FixedZone("CST", 8*60*60)

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
// from: every openid before it was emitted, none after. Each page is a call
// of tenantID's.
//
// The next page is fetched while the current one is emitted, so a walk
// takes about as long as its WeChat calls rather than their sum with the
// client's reading; a walk that ends early has made at most that one call
// more.
func (s *Service) Walk(ctx context.Context, api *API, appid, tenantID string, args Args, before func() error, emit func(openids []string) error) (resume string, pages int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // an early end abandons the page fetched ahead
	ahead := func(cursor string) (<-chan fetchedPage, error) {
		if err := ctx.Err(); err != nil {
			return nil, errs.Wrap(errs.UpstreamTimeout, "the export was cancelled", err)
		}
		if before != nil {
			if err := before(); err != nil {
				return nil, err
			}
		}
		cur := Args{}
		for k, v := range args {
			cur[k] = v
		}
		if cursor == "" {
			delete(cur, api.Cursor)
		} else {
			cur[api.Cursor] = cursor
		}
		ch := make(chan fetchedPage, 1)
		go func() { ch <- s.fetchPage(ctx, api, appid, tenantID, cur) }()
		return ch, nil
	}
	cursor := args[api.Cursor]
	next, err := ahead(cursor)
	if err != nil {
		return cursor, pages, err
	}
	for {
		f := <-next
		if f.err != nil {
			return cursor, pages, f.err
		}
		pages++
		p := f.page
		last := p.NextOpenID == "" || p.Count == 0 || len(p.Data.OpenID) == 0 || p.NextOpenID == cursor
		// Ask for the next page before handing this one over; a refusal
		// (access gone, cancelled) ends the walk after this page.
		var aheadErr error
		if !last {
			next, aheadErr = ahead(p.NextOpenID)
		}
		if len(p.Data.OpenID) > 0 {
			if err := emit(p.Data.OpenID); err != nil {
				return p.NextOpenID, pages, err
			}
		}
		if last {
			return "", pages, nil
		}
		if aheadErr != nil {
			return p.NextOpenID, pages, aheadErr
		}
		cursor = p.NextOpenID
	}
}

// fetchedPage is one page of a walk, or why it could not be had.
type fetchedPage struct {
	page Page
	err  error
}

// fetchPage calls one page of a walk and decodes it.
func (s *Service) fetchPage(ctx context.Context, api *API, appid, tenantID string, args Args) fetchedPage {
	body, err := s.Call(ctx, api, appid, tenantID, args)
	if err != nil {
		return fetchedPage{err: err}
	}
	var p Page
	if err := json.Unmarshal(body, &p); err != nil {
		return fetchedPage{err: errs.Wrap(errs.UpstreamError, "WeChat answered a page that is not JSON", err)}
	}
	return fetchedPage{page: p}
}
