package sim

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// flexInt decodes a JSON number or a numeric string, as WeChat tolerates both.
type flexInt int

func (n *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if len(b) == 0 || string(b) == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.Atoi(string(b))
	if err != nil {
		return err
	}
	*n = flexInt(v)
	return nil
}

// componentRequest is the union of the component API request bodies.
type componentRequest struct {
	ComponentAppID         string  `json:"component_appid"`
	ComponentAppSecret     string  `json:"component_appsecret"`
	ComponentVerifyTicket  string  `json:"component_verify_ticket"`
	AuthorizationCode      string  `json:"authorization_code"`
	AuthorizerAppID        string  `json:"authorizer_appid"`
	AuthorizerRefreshToken string  `json:"authorizer_refresh_token"`
	Offset                 flexInt `json:"offset"`
	Count                  flexInt `json:"count"`
}

type funcInfo struct {
	FuncscopeCategory struct {
		ID int `json:"id"`
	} `json:"funcscope_category"`
}

type authorizationInfo struct {
	AuthorizerAppID        string     `json:"authorizer_appid"`
	AuthorizerAccessToken  string     `json:"authorizer_access_token,omitempty"`
	ExpiresIn              int64      `json:"expires_in,omitempty"`
	AuthorizerRefreshToken string     `json:"authorizer_refresh_token"`
	FuncInfo               []funcInfo `json:"func_info"`
}

type idObj struct {
	ID int `json:"id"`
}

type authorizerInfo struct {
	NickName        string `json:"nick_name"`
	HeadImg         string `json:"head_img"`
	ServiceTypeInfo idObj  `json:"service_type_info"`
	VerifyTypeInfo  idObj  `json:"verify_type_info"`
	UserName        string `json:"user_name"`
	PrincipalName   string `json:"principal_name"`
	Alias           string `json:"alias"`
	BusinessInfo    struct {
		OpenStore int `json:"open_store"`
		OpenScan  int `json:"open_scan"`
		OpenPay   int `json:"open_pay"`
		OpenCard  int `json:"open_card"`
		OpenShake int `json:"open_shake"`
	} `json:"business_info"`
	QrcodeURL string `json:"qrcode_url"`
	Signature string `json:"signature"`
}

type listedAuthorizer struct {
	AuthorizerAppID string `json:"authorizer_appid"`
	RefreshToken    string `json:"refresh_token"`
	AuthTime        int64  `json:"auth_time"`
}

// handleComponent serves POST /cgi-bin/component/<ep>. The call is counted
// for the platform its component_appid names (or, naming none known, the
// platform its component token belongs to).
func (s *Simulator) handleComponent(ep string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		token := q.Get("component_access_token")
		if token == "" {
			token = q.Get("access_token")
		}
		if r.Method != http.MethodPost {
			s.fail(w, s.caller("", token), ep, "", errRequirePOST)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		var req componentRequest
		bad := err != nil || json.Unmarshal(body, &req) != nil
		appid := req.AuthorizerAppID
		p := s.caller(req.ComponentAppID, token)
		if ep == EndpointQueryAuth && req.AuthorizationCode != "" && p != nil {
			s.mu.Lock()
			if c, ok := p.authCodes[req.AuthorizationCode]; ok {
				appid = c.appid
			}
			s.mu.Unlock()
		}
		if s.inject(w, r, p, ep, appid) {
			return
		}
		now := s.now()
		s.mu.Lock()
		v, code := s.componentLocked(ep, token, &req, bad, now)
		s.mu.Unlock()
		if code != 0 {
			s.fail(w, p, ep, appid, code)
			return
		}
		s.ok(w, p, ep, appid, v)
	}
}

// caller answers the platform a component API call is counted for: the one
// its component_appid names, else the one its component token belongs to
// (nil if neither is known).
func (s *Simulator) caller(componentAppID, token string) *Platform {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.platforms[componentAppID]; ok {
		return p
	}
	if token != "" {
		return s.platforms[s.components.owner(token)]
	}
	return nil
}

// componentLocked runs one component API with s.mu held: the token first,
// then the body (bad: not JSON), then the API's own checks. A component
// token works only for its own platform: another platform's component_appid
// answers 40013, as any unknown appid.
func (s *Simulator) componentLocked(ep, token string, req *componentRequest, bad bool, now time.Time) (any, int) {
	if ep == EndpointComponentToken {
		if bad {
			return nil, errDataFormat
		}
		return s.componentTokenLocked(req, now)
	}
	if token == "" {
		return nil, errTokenMissing
	}
	owner, code := s.components.check(token, now)
	if code != 0 {
		return nil, code
	}
	switch {
	case bad:
		return nil, errDataFormat
	case req.ComponentAppID == "":
		return nil, errAppIDMissing
	case req.ComponentAppID != owner:
		return nil, errInvalidAppID
	}
	p := s.platforms[owner]
	switch ep {
	case EndpointCreatePreAuthCode:
		p.pruneCodesLocked(now)
		pre := newPreAuthCode()
		p.preAuth[pre] = &preAuthCode{expires: now.Add(s.opts.PreAuthCodeLifetime)}
		p.preAuthIssued++
		return struct {
			PreAuthCode string `json:"pre_auth_code"`
			ExpiresIn   int64  `json:"expires_in"`
		}{pre, int64(s.opts.PreAuthCodeLifetime / time.Second)}, 0
	case EndpointQueryAuth:
		return p.queryAuthLocked(req, now)
	case EndpointAuthorizerToken:
		return p.authorizerTokenLocked(req, now)
	case EndpointGetAuthorizerInfo:
		return p.authorizerInfoLocked(req)
	case EndpointGetAuthorizerList:
		return p.authorizerListLocked(req)
	}
	return nil, errInvalidURL
}

func (s *Simulator) componentTokenLocked(req *componentRequest, now time.Time) (any, int) {
	if req.ComponentAppID == "" {
		return nil, errAppIDMissing
	}
	p, ok := s.platforms[req.ComponentAppID]
	switch {
	case !ok:
		return nil, errInvalidAppID
	case req.ComponentAppSecret == "":
		return nil, errSecretMissing
	case subtle.ConstantTimeCompare([]byte(req.ComponentAppSecret), []byte(p.secret)) != 1:
		return nil, errInvalidSecret
	}
	pushed, ok := p.tickets[req.ComponentVerifyTicket]
	if !ok || req.ComponentVerifyTicket == "" {
		return nil, errTicketInvalid
	}
	if now.Sub(pushed) >= TicketLifetime {
		return nil, errTicketExpired
	}
	token := newAccessToken()
	s.components.issue(p.appid, token, now, s.opts.TokenLifetime, s.opts.TokenOverlap)
	return struct {
		ComponentAccessToken string `json:"component_access_token"`
		ExpiresIn            int64  `json:"expires_in"`
	}{token, int64(s.opts.TokenLifetime / time.Second)}, 0
}

// issueAuthorizerTokenLocked mints p's new access token for the account,
// counting the refresh when it replaces one.
func (p *Platform) issueAuthorizerTokenLocked(appid string, now time.Time) string {
	s := p.s
	token := newAccessToken()
	if age, ok := s.authorizers.currentAge(p.key(appid), now); ok {
		s.recordRefresh(p, appid, age)
	}
	s.authorizers.issue(p.key(appid), token, now, s.opts.TokenLifetime, s.opts.TokenOverlap)
	return token
}

func (p *Platform) queryAuthLocked(req *componentRequest, now time.Time) (any, int) {
	c, ok := p.authCodes[req.AuthorizationCode]
	if !ok {
		return nil, errCodeInvalid
	}
	delete(p.authCodes, req.AuthorizationCode) // one-time, even when expired
	if !now.Before(c.expires) {
		return nil, errCodeExpired
	}
	a, ok := p.s.accounts[c.appid]
	g := p.authorizedLocked(c.appid)
	if !ok || g == nil {
		return nil, errCodeInvalid
	}
	token := p.issueAuthorizerTokenLocked(a.spec.AppID, now)
	return struct {
		AuthorizationInfo authorizationInfo `json:"authorization_info"`
	}{authorizationInfo{
		AuthorizerAppID:        a.spec.AppID,
		AuthorizerAccessToken:  token,
		ExpiresIn:              int64(p.s.opts.TokenLifetime / time.Second),
		AuthorizerRefreshToken: g.refresh,
		FuncInfo:               funcInfos(p.setsLocked(a)),
	}}, 0
}

func (p *Platform) authorizerTokenLocked(req *componentRequest, now time.Time) (any, int) {
	if req.AuthorizerAppID == "" {
		return nil, errAppIDMissing
	}
	a, ok := p.s.accounts[req.AuthorizerAppID]
	g := p.grants[req.AuthorizerAppID]
	if !ok || g == nil || !g.everAuth {
		return nil, errNotAuthorizedBy
	}
	if !g.authorized || req.AuthorizerRefreshToken == "" ||
		subtle.ConstantTimeCompare([]byte(req.AuthorizerRefreshToken), []byte(g.refresh)) != 1 {
		return nil, errRefreshInvalid
	}
	token := p.issueAuthorizerTokenLocked(a.spec.AppID, now)
	return struct {
		AuthorizerAccessToken  string `json:"authorizer_access_token"`
		ExpiresIn              int64  `json:"expires_in"`
		AuthorizerRefreshToken string `json:"authorizer_refresh_token"`
	}{token, int64(p.s.opts.TokenLifetime / time.Second), g.refresh}, 0
}

func (p *Platform) authorizerInfoLocked(req *componentRequest) (any, int) {
	if req.AuthorizerAppID == "" {
		return nil, errAppIDMissing
	}
	a, ok := p.s.accounts[req.AuthorizerAppID]
	g := p.grants[req.AuthorizerAppID]
	if !ok || g == nil || !g.everAuth {
		return nil, errNotAuthorizedBy
	}
	info := authorizerInfo{
		NickName:        a.spec.NickName,
		HeadImg:         "http://wx.qlogo.cn/mmopen/sim/" + a.spec.AppID + "/0",
		ServiceTypeInfo: idObj{ID: 2}, // service account
		VerifyTypeInfo:  idObj{ID: 0}, // WeChat-verified
		UserName:        a.userName(),
		PrincipalName:   "Simulated Co., Ltd.",
		QrcodeURL:       "http://mmbiz.qpic.cn/mmbiz/sim/" + a.spec.AppID + "/0",
		Signature:       "A simulated Official Account.",
	}
	if a.spec.LacksAPI {
		info.VerifyTypeInfo.ID = -1 // not verified: lacks the user APIs
	}
	out := struct {
		AuthorizerInfo    authorizerInfo     `json:"authorizer_info"`
		AuthorizationInfo *authorizationInfo `json:"authorization_info,omitempty"`
	}{AuthorizerInfo: info}
	if g.authorized { // an account that unauthorized has no authorization_info
		out.AuthorizationInfo = &authorizationInfo{
			AuthorizerAppID:        a.spec.AppID,
			AuthorizerRefreshToken: g.refresh,
			FuncInfo:               funcInfos(p.setsLocked(a)),
		}
	}
	return out, 0
}

func (p *Platform) authorizerListLocked(req *componentRequest) (any, int) {
	if req.Count < 1 || req.Count > MaxAuthorizerListCount || req.Offset < 0 {
		return nil, errInvalidArgs
	}
	var all []listedAuthorizer
	for _, a := range p.s.order {
		if g := p.authorizedLocked(a.spec.AppID); g != nil {
			all = append(all, listedAuthorizer{AuthorizerAppID: a.spec.AppID, RefreshToken: g.refresh, AuthTime: g.authTime.Unix()})
		}
	}
	list := []listedAuthorizer{}
	if off := int(req.Offset); off < len(all) {
		list = all[off:min(len(all), off+int(req.Count))]
	}
	return struct {
		TotalCount int                `json:"total_count"`
		List       []listedAuthorizer `json:"list"`
	}{len(all), list}, 0
}

func funcInfos(sets []int) []funcInfo {
	out := make([]funcInfo, len(sets))
	for i, id := range sets {
		out[i].FuncscopeCategory.ID = id
	}
	return out
}

// pruneCodesLocked forgets expired pre-auth and auth codes once the maps grow.
func (p *Platform) pruneCodesLocked(now time.Time) {
	if len(p.preAuth) > 1024 {
		for k, c := range p.preAuth {
			if !now.Before(c.expires) {
				delete(p.preAuth, k)
			}
		}
	}
	if len(p.authCodes) > 1024 {
		for k, c := range p.authCodes {
			if !now.Before(c.expires) {
				delete(p.authCodes, k)
			}
		}
	}
}
