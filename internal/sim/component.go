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

// handleComponent serves POST /cgi-bin/component/<ep>.
func (s *Simulator) handleComponent(ep string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			s.fail(w, ep, "", errRequirePOST)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		var req componentRequest
		bad := err != nil || json.Unmarshal(body, &req) != nil
		appid := req.AuthorizerAppID
		if ep == EndpointQueryAuth && req.AuthorizationCode != "" {
			s.mu.Lock()
			if c, ok := s.authCodes[req.AuthorizationCode]; ok {
				appid = c.appid
			}
			s.mu.Unlock()
		}
		if s.inject(w, r, ep, appid) {
			return
		}
		q := r.URL.Query()
		token := q.Get("component_access_token")
		if token == "" {
			token = q.Get("access_token")
		}
		now := s.now()
		s.mu.Lock()
		v, code := s.componentLocked(ep, token, &req, bad, now)
		s.mu.Unlock()
		if code != 0 {
			s.fail(w, ep, appid, code)
			return
		}
		s.ok(w, ep, appid, v)
	}
}

// componentLocked runs one component API with s.mu held: the token first,
// then the body (bad: not JSON), then the API's own checks.
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
	if _, code := s.component.check(token, now); code != 0 {
		return nil, code
	}
	switch {
	case bad:
		return nil, errDataFormat
	case req.ComponentAppID == "":
		return nil, errAppIDMissing
	case req.ComponentAppID != s.opts.ComponentAppID:
		return nil, errInvalidAppID
	}
	switch ep {
	case EndpointCreatePreAuthCode:
		s.pruneCodesLocked(now)
		code := newPreAuthCode()
		s.preAuth[code] = &preAuthCode{expires: now.Add(s.opts.PreAuthCodeLifetime)}
		s.preAuthIssued++
		return struct {
			PreAuthCode string `json:"pre_auth_code"`
			ExpiresIn   int64  `json:"expires_in"`
		}{code, int64(s.opts.PreAuthCodeLifetime / time.Second)}, 0
	case EndpointQueryAuth:
		return s.queryAuthLocked(req, now)
	case EndpointAuthorizerToken:
		return s.authorizerTokenLocked(req, now)
	case EndpointGetAuthorizerInfo:
		return s.authorizerInfoLocked(req)
	case EndpointGetAuthorizerList:
		return s.authorizerListLocked(req)
	}
	return nil, errInvalidURL
}

func (s *Simulator) componentTokenLocked(req *componentRequest, now time.Time) (any, int) {
	switch {
	case req.ComponentAppID == "":
		return nil, errAppIDMissing
	case req.ComponentAppID != s.opts.ComponentAppID:
		return nil, errInvalidAppID
	case req.ComponentAppSecret == "":
		return nil, errSecretMissing
	case subtle.ConstantTimeCompare([]byte(req.ComponentAppSecret), []byte(s.opts.ComponentSecret)) != 1:
		return nil, errInvalidSecret
	}
	pushed, ok := s.tickets[req.ComponentVerifyTicket]
	if !ok || req.ComponentVerifyTicket == "" {
		return nil, errTicketInvalid
	}
	if now.Sub(pushed) >= TicketLifetime {
		return nil, errTicketExpired
	}
	token := newAccessToken()
	s.component.issue("", token, now, s.opts.TokenLifetime, s.opts.TokenOverlap)
	return struct {
		ComponentAccessToken string `json:"component_access_token"`
		ExpiresIn            int64  `json:"expires_in"`
	}{token, int64(s.opts.TokenLifetime / time.Second)}, 0
}

func (s *Simulator) queryAuthLocked(req *componentRequest, now time.Time) (any, int) {
	c, ok := s.authCodes[req.AuthorizationCode]
	if !ok {
		return nil, errCodeInvalid
	}
	delete(s.authCodes, req.AuthorizationCode) // one-time, even when expired
	if !now.Before(c.expires) {
		return nil, errCodeExpired
	}
	a, ok := s.accounts[c.appid]
	if !ok || !a.authorized {
		return nil, errCodeInvalid
	}
	token := newAccessToken()
	if age, ok := s.authorizers.currentAge(a.spec.AppID, now); ok {
		s.recordRefresh(a.spec.AppID, age)
	}
	s.authorizers.issue(a.spec.AppID, token, now, s.opts.TokenLifetime, s.opts.TokenOverlap)
	return struct {
		AuthorizationInfo authorizationInfo `json:"authorization_info"`
	}{authorizationInfo{
		AuthorizerAppID:        a.spec.AppID,
		AuthorizerAccessToken:  token,
		ExpiresIn:              int64(s.opts.TokenLifetime / time.Second),
		AuthorizerRefreshToken: a.refresh,
		FuncInfo:               funcInfos(a.spec.PermissionSets),
	}}, 0
}

func (s *Simulator) authorizerTokenLocked(req *componentRequest, now time.Time) (any, int) {
	if req.AuthorizerAppID == "" {
		return nil, errAppIDMissing
	}
	a, ok := s.accounts[req.AuthorizerAppID]
	if !ok || !a.everAuth {
		return nil, errNotAuthorizedBy
	}
	if !a.authorized || req.AuthorizerRefreshToken == "" ||
		subtle.ConstantTimeCompare([]byte(req.AuthorizerRefreshToken), []byte(a.refresh)) != 1 {
		return nil, errRefreshInvalid
	}
	token := newAccessToken()
	if age, ok := s.authorizers.currentAge(a.spec.AppID, now); ok {
		s.recordRefresh(a.spec.AppID, age)
	}
	s.authorizers.issue(a.spec.AppID, token, now, s.opts.TokenLifetime, s.opts.TokenOverlap)
	return struct {
		AuthorizerAccessToken  string `json:"authorizer_access_token"`
		ExpiresIn              int64  `json:"expires_in"`
		AuthorizerRefreshToken string `json:"authorizer_refresh_token"`
	}{token, int64(s.opts.TokenLifetime / time.Second), a.refresh}, 0
}

func (s *Simulator) authorizerInfoLocked(req *componentRequest) (any, int) {
	if req.AuthorizerAppID == "" {
		return nil, errAppIDMissing
	}
	a, ok := s.accounts[req.AuthorizerAppID]
	if !ok || !a.everAuth {
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
	if a.authorized { // an account that unauthorized has no authorization_info
		out.AuthorizationInfo = &authorizationInfo{
			AuthorizerAppID:        a.spec.AppID,
			AuthorizerRefreshToken: a.refresh,
			FuncInfo:               funcInfos(a.spec.PermissionSets),
		}
	}
	return out, 0
}

func (s *Simulator) authorizerListLocked(req *componentRequest) (any, int) {
	if req.Count < 1 || req.Count > MaxAuthorizerListCount || req.Offset < 0 {
		return nil, errInvalidArgs
	}
	var all []listedAuthorizer
	for _, a := range s.order {
		if a.authorized {
			all = append(all, listedAuthorizer{AuthorizerAppID: a.spec.AppID, RefreshToken: a.refresh, AuthTime: a.authTime.Unix()})
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
func (s *Simulator) pruneCodesLocked(now time.Time) {
	if len(s.preAuth) > 1024 {
		for k, p := range s.preAuth {
			if !now.Before(p.expires) {
				delete(s.preAuth, k)
			}
		}
	}
	if len(s.authCodes) > 1024 {
		for k, c := range s.authCodes {
			if !now.Before(c.expires) {
				delete(s.authCodes, k)
			}
		}
	}
}
