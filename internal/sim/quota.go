package sim

import (
	"net/http"
	"time"
)

// ClearQuotaMonthlyLimit is how many times a month an account may clear its
// quotas with clear_quota; the next call answers 48006.
const ClearQuotaMonthlyLimit = 10

// quotaMonth is t's Beijing month as year*12+month (clear_quota's limit is
// monthly, on the same clock as the daily quotas).
func quotaMonth(t time.Time) int64 {
	b := t.UTC().Add(beijingOffset * time.Second)
	return int64(b.Year())*12 + int64(b.Month())
}

// handleClearQuota serves POST /cgi-bin/clear_quota?access_token= with
// {"appid": "wx…"}: resets every daily quota of the account the token
// belongs to, at most ClearQuotaMonthlyLimit times a Beijing month (then
// 48006). The appid must be the token's own account (40013 otherwise).
func (s *Simulator) handleClearQuota(w http.ResponseWriter, r *http.Request) {
	const ep = EndpointClearQuota
	var req struct {
		AppID string `json:"appid"`
	}
	token, p, appid, bad, ok := s.authorizerPOST(w, r, ep, &req)
	if !ok {
		return
	}
	now := s.now()
	s.mu.Lock()
	_, a, code := s.tokenAccountLocked(token, now)
	switch {
	case code != 0:
	case bad:
		code = errDataFormat
	case req.AppID != a.spec.AppID:
		code = errInvalidAppID
	default:
		if m := quotaMonth(now); a.clearMonth != m {
			a.clearMonth, a.clearsUsed = m, 0
		}
		if a.clearsUsed >= ClearQuotaMonthlyLimit {
			code = errAPIForbidden
		} else {
			a.clearsUsed++
			a.quotaUsedLocked(cgiUserGet, now) // roll the day over first
			clear(a.quotaUsed)
		}
	}
	s.mu.Unlock()
	if code != 0 {
		s.fail(w, p, ep, appid, code)
		return
	}
	s.ok(w, p, ep, appid, struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
	}{0, "ok"})
}

// tagJSON is one tag of tags/get.
type tagJSON struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// handleTagsGet serves GET /cgi-bin/tags/get?access_token= (getTags): the
// account's tags with their member counts: the reserved system tag 2
// ("星标组", unless the account defines it) first as WeChat lists it, then
// the account's own in the order they were created.
func (s *Simulator) handleTagsGet(w http.ResponseWriter, r *http.Request) {
	const ep = EndpointTagsGet
	token := r.URL.Query().Get("access_token")
	p, appid := s.tokenOwner(token)
	if s.inject(w, r, p, ep, appid) {
		return
	}
	now := s.now()
	s.mu.Lock()
	a, code := s.userCallLocked(token, cgiTagsGet, now, true)
	var tags []tagJSON
	if a != nil {
		if _, own := a.tags[2]; !own {
			tags = append(tags, tagJSON{ID: 2, Name: "星标组", Count: 0})
		}
		for _, t := range a.spec.Tags {
			to := min(t.To, a.spec.Followers)
			tags = append(tags, tagJSON{ID: t.ID, Name: t.Name, Count: max(0, to-min(t.From, to))})
		}
	}
	s.mu.Unlock()
	if code != 0 {
		s.fail(w, p, ep, appid, code)
		return
	}
	s.ok(w, p, ep, appid, struct {
		Tags []tagJSON `json:"tags"`
	}{tags})
}
