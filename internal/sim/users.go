package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// cgi paths that carry a daily quota (and that quota/get knows).
const (
	cgiUserGet    = "/cgi-bin/user/get"
	cgiUserTagGet = "/cgi-bin/user/tag/get"
	cgiTagsGet    = "/cgi-bin/tags/get"
)

// unlimitedQuotaReport is the daily_limit quota/get reports for an unlimited quota.
const unlimitedQuotaReport = 100_000_000

// tokenOwner answers the platform and the authorizer appid a token was
// issued to (nil, "" if none), so that faults restricted to an account can
// match before any check and the call is counted for that platform.
func (s *Simulator) tokenOwner(token string) (*Platform, string) {
	if token == "" {
		return nil, ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	owner := s.authorizers.owner(token)
	if owner == "" {
		return nil, ""
	}
	component, appid := splitAuthorizerKey(owner)
	return s.platforms[component], appid
}

// tokenAccountLocked checks an authorizer_access_token as WeChat does
// first on every account API (41001, 40001, 42001) and answers the account
// it belongs to and the platform that obtained it, whose authorization
// must still be in force (40001 otherwise).
func (s *Simulator) tokenAccountLocked(token string, now time.Time) (*Platform, *account, int) {
	if token == "" {
		return nil, nil, errTokenMissing
	}
	owner, code := s.authorizers.check(token, now)
	if code != 0 {
		return nil, nil, code
	}
	component, appid := splitAuthorizerKey(owner)
	p := s.platforms[component]
	a, ok := s.accounts[appid]
	if !ok || p == nil || p.authorizedLocked(appid) == nil {
		return nil, nil, errInvalidCredential
	}
	return p, a, 0
}

// userCallLocked runs the checks WeChat applies to an account API called
// with an authorizer_access_token, in WeChat's order: token (41001, 40001,
// 42001), the permission sets 2 or 100 granted to the token's platform
// (61007), the account's own access to the API (48001), then the daily
// quota (45009, the account's, shared by every platform) when spend is set.
func (s *Simulator) userCallLocked(token, cgiPath string, now time.Time, spend bool) (*account, int) {
	p, a, code := s.tokenAccountLocked(token, now)
	if code != 0 {
		return nil, code
	}
	if !p.grantsAnyLocked(a, 2, 100) {
		return nil, errAPINotGranted
	}
	if a.spec.LacksAPI {
		return nil, errAPIUnauthorized
	}
	if spend && !s.spendQuotaLocked(a, cgiPath, now) {
		return nil, errDailyQuota
	}
	return a, 0
}

// handleUserGet serves GET /cgi-bin/user/get?access_token=&next_openid= (getFans).
func (s *Simulator) handleUserGet(w http.ResponseWriter, r *http.Request) {
	const ep = EndpointUserGet
	q := r.URL.Query()
	token := q.Get("access_token")
	p, appid := s.tokenOwner(token)
	if s.inject(w, r, p, ep, appid) {
		return
	}
	now := s.now()
	s.mu.Lock()
	a, code := s.userCallLocked(token, cgiUserGet, now, true)
	var followers int
	var codec *openidCodec
	if a != nil {
		followers, codec = a.spec.Followers, a.codec
	}
	s.mu.Unlock()
	if code != 0 {
		s.fail(w, p, ep, appid, code)
		return
	}
	start := 0
	if next := q.Get("next_openid"); next != "" {
		idx, ok := codec.index(next)
		if !ok || idx >= uint64(followers) {
			s.fail(w, p, ep, appid, errInvalidOpenID)
			return
		}
		start = int(idx) + 1
	}
	s.writePage(w, p, ep, appid, codec, followers, start, followers, false)
}

// handleTagGet serves POST /cgi-bin/user/tag/get?access_token= with
// {"tagid": N, "next_openid": ""} (getTagFans).
func (s *Simulator) handleTagGet(w http.ResponseWriter, r *http.Request) {
	const ep = EndpointUserTagGet
	var req struct {
		TagID      flexInt `json:"tagid"`
		NextOpenID string  `json:"next_openid"`
	}
	token, p, appid, bad, ok := s.authorizerPOST(w, r, ep, &req)
	if !ok {
		return
	}
	now := s.now()
	s.mu.Lock()
	a, code := s.userCallLocked(token, cgiUserTagGet, now, true)
	var followers int
	var codec *openidCodec
	var tag TagSpec
	var found bool
	if a != nil {
		followers, codec = a.spec.Followers, a.codec
		tag, found = a.tags[int(req.TagID)]
	}
	s.mu.Unlock()
	switch {
	case code != 0:
	case bad:
		code = errDataFormat
	case !found:
		code = errInvalidTag
	}
	if code != 0 {
		s.fail(w, p, ep, appid, code)
		return
	}
	to := min(tag.To, followers)
	from := min(tag.From, to)
	start := from
	if req.NextOpenID != "" {
		idx, ok := codec.index(req.NextOpenID)
		if !ok || idx < uint64(from) || idx >= uint64(to) {
			s.fail(w, p, ep, appid, errInvalidOpenID)
			return
		}
		start = int(idx) + 1
	}
	s.writePage(w, p, ep, appid, codec, -1, start, to, true)
}

// writePage writes one page of the followers [start, end) straight into a
// reused buffer: {"total":T,"count":N,"data":{"openid":[…]},"next_openid":"…"}
// (no total when total < 0; no data key when N is 0).
//
// next_openid is the last openid of the page, except that user/get answers
// "" on a last page that is not full (the getFans page: 10000/10000/3000
// with "" on the 3000), while user/tag/get always names the last openid (the
// getTagFans page's example); a page with no openid answers "".
func (s *Simulator) writePage(w http.ResponseWriter, p *Platform, ep, appid string, codec *openidCodec, total, start, end int, tag bool) {
	count := max(0, min(PageSize, end-start))
	var buf []byte
	select {
	case buf = <-s.bufs:
	default:
	}
	if need := count*(OpenIDLength+3) + 128; cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	buf = append(buf, '{')
	if total >= 0 {
		buf = append(buf, `"total":`...)
		buf = strconv.AppendInt(buf, int64(total), 10)
		buf = append(buf, ',')
	}
	buf = append(buf, `"count":`...)
	buf = strconv.AppendInt(buf, int64(count), 10)
	if count > 0 {
		buf = append(buf, `,"data":{"openid":[`...)
		for i := range count {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, '"')
			buf = codec.appendOpenID(buf, uint64(start+i))
			buf = append(buf, '"')
		}
		buf = append(buf, "]}"...)
	}
	buf = append(buf, `,"next_openid":"`...)
	if count > 0 && (tag || count == PageSize || start+count < end) {
		buf = codec.appendOpenID(buf, uint64(start+count-1))
	}
	buf = append(buf, `"}`...)
	s.record(p, ep, appid, 0)
	writeRaw(w, http.StatusOK, buf)
	if cap(buf) <= 1<<20 {
		select {
		case s.bufs <- buf[:0]:
		default: // enough buffers pooled
		}
	}
}

// handleQuotaGet serves POST /cgi-bin/openapi/quota/get?access_token= with
// {"cgi_path": "/cgi-bin/user/get"}: the account's daily quota of that API.
func (s *Simulator) handleQuotaGet(w http.ResponseWriter, r *http.Request) {
	const ep = EndpointQuotaGet
	var req struct {
		CGIPath string `json:"cgi_path"`
	}
	token, p, appid, bad, ok := s.authorizerPOST(w, r, ep, &req)
	if !ok {
		return
	}
	now := s.now()
	s.mu.Lock()
	var limit, used int
	_, a, code := s.tokenAccountLocked(token, now)
	switch {
	case code != 0:
	case bad:
		code = errDataFormat
	case req.CGIPath == "" || req.CGIPath[0] != '/':
		code = errCGIPathMalformed
	case req.CGIPath != cgiUserGet && req.CGIPath != cgiUserTagGet && req.CGIPath != cgiTagsGet:
		code = errCGIPathNotFound
	default:
		used = a.quotaUsedLocked(req.CGIPath, now)
		limit = s.quotaLimit(a)
	}
	s.mu.Unlock()
	if code != 0 {
		s.fail(w, p, ep, appid, code)
		return
	}
	if limit < 0 {
		limit = unlimitedQuotaReport
	}
	type quota struct {
		DailyLimit int `json:"daily_limit"`
		Used       int `json:"used"`
		Remain     int `json:"remain"`
	}
	s.ok(w, p, ep, appid, struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
		Quota   quota  `json:"quota"`
	}{0, "ok", quota{limit, used, max(0, limit-used)}})
}

// authorizerPOST starts a POST API called with an authorizer token
// (?access_token=), answering the token's platform and account: it answers a wrong method (43002) and an injected
// fault itself (ok false), and decodes the JSON body into req; bad reports
// a body that could not be read or is not JSON.
func (s *Simulator) authorizerPOST(w http.ResponseWriter, r *http.Request, ep string, req any) (token string, p *Platform, appid string, bad, ok bool) {
	token = r.URL.Query().Get("access_token")
	p, appid = s.tokenOwner(token)
	if r.Method != http.MethodPost {
		s.fail(w, p, ep, appid, errRequirePOST)
		return token, p, appid, false, false
	}
	if s.inject(w, r, p, ep, appid) {
		return token, p, appid, false, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	return token, p, appid, err != nil || json.Unmarshal(body, req) != nil, true
}
