package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

type controlRoute struct {
	pattern string
	handler http.HandlerFunc
}

// controlRoutes lists the /sim/ control API; each mirrors a Go method.
func (s *Simulator) controlRoutes() []controlRoute {
	routes := []controlRoute{
		{"POST /sim/components", s.ctlAddPlatform},
		{"GET /sim/components", s.ctlListPlatforms},
		{"POST /sim/accounts", s.scoped(s.ctlCreateAccount)},
		{"GET /sim/accounts", s.scoped(s.ctlListAccounts)},
		{"GET /sim/accounts/{appid}", s.scoped(s.ctlGetAccount)},
		{"PUT /sim/accounts/{appid}/followers", s.scoped(s.ctlSetFollowers)},
		{"POST /sim/accounts/{appid}/authorize", s.scoped(s.ctlAuthorize)},
		{"POST /sim/accounts/{appid}/unauthorize", s.scoped(s.ctlUnauthorize)},
		{"PUT /sim/accounts/{appid}/permission_sets", s.scoped(s.ctlSetPermissionSets)},
		{"POST /sim/accounts/{appid}/expire_token", s.scoped(ctlAccountAction((*Platform).ExpireToken))},
		{"POST /sim/accounts/{appid}/invalidate_token", s.scoped(ctlAccountAction((*Platform).InvalidateToken))},
		{"POST /sim/accounts/{appid}/reset_quota", s.ctlResetQuota},
		{"GET /sim/accounts/{appid}/token", s.scoped(s.ctlAccountToken)},
		{"POST /sim/component/expire_token", s.scoped(ctlAction((*Platform).ExpireComponentToken))},
		{"POST /sim/component/invalidate_token", s.scoped(ctlAction((*Platform).InvalidateComponentToken))},
		{"GET /sim/component/token", s.scoped(s.ctlComponentToken)},
		{"POST /sim/ticket", s.scoped(s.ctlPushTicket)},
		{"GET /sim/faults", s.ctlListFaults},
		{"POST /sim/faults", s.ctlSetFaults},
		{"DELETE /sim/faults", s.ctlClearFaults},
		{"POST /sim/accounts/{appid}/messages", s.scoped(s.ctlPushMessage)},
		{"GET /sim/messages", s.ctlDeliveries},
		{"GET /sim/custom_messages", s.ctlCustomMessages},
		{"POST /sim/release_test", s.scoped(s.ctlReleaseTest)},
		{"GET /sim/counters", s.ctlCounters},
		{"POST /sim/counters/reset", s.ctlResetCounters},
	}
	patterns := make([]string, 0, len(routes)+1)
	for _, rt := range routes {
		patterns = append(patterns, rt.pattern)
	}
	patterns = append(patterns, "POST /sim/authpage/confirm (form target of the authorization pages)")
	return append(routes, controlRoute{"GET /sim/{$}", func(w http.ResponseWriter, r *http.Request) {
		writeControl(w, http.StatusOK, map[string]any{"routes": patterns})
	}})
}

// writeControl answers a control call with JSON.
func writeControl(w http.ResponseWriter, status int, v any) {
	body, err := marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// controlStatus maps the package's errors to HTTP statuses, in one place.
func controlStatus(err error) int {
	switch {
	case errors.Is(err, ErrUnknownAccount), errors.Is(err, ErrUnknownPlatform):
		return http.StatusNotFound
	case errors.Is(err, ErrAccountExists), errors.Is(err, ErrPlatformExists), errors.Is(err, ErrNotAuthorized), errors.Is(err, ErrNoToken), errors.Is(err, ErrNoMessageURL):
		return http.StatusConflict
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrInvalidPreAuthCode):
		return http.StatusBadRequest
	case errors.Is(err, ErrPush):
		return http.StatusBadGateway
	default:
		return http.StatusInternalServerError
	}
}

func writeControlError(w http.ResponseWriter, err error) {
	writeControl(w, controlStatus(err), map[string]string{"error": err.Error()})
}

// decodeControl decodes a JSON body strictly; an empty body leaves v as is.
func decodeControl(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return fmt.Errorf("%w: read body: %w", ErrInvalid, err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %w", ErrInvalid, err)
	}
	return nil
}

// scoped resolves the platform a call names with its optional
// component_appid query parameter (default: the primary; unknown: 404).
func (s *Simulator) scoped(h func(*Platform, http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.platformOf(r.URL.Query())
		if err != nil {
			writeControlError(w, err)
			return
		}
		h(p, w, r)
	}
}

// platformRequest is the body of POST /sim/components.
type platformRequest struct {
	AppID      string `json:"appid"`
	Secret     string `json:"secret"`
	Token      string `json:"token"`
	AESKey     string `json:"aes_key"`
	EventURL   string `json:"event_url"`
	MessageURL string `json:"message_url"`
}

// platformListing is one platform as GET /sim/components lists it (never
// its secret, token or key).
type platformListing struct {
	AppID      string `json:"appid"`
	Primary    bool   `json:"primary"`
	EventURL   string `json:"event_url,omitempty"`
	MessageURL string `json:"message_url,omitempty"`
}

func (p *Platform) listing() platformListing {
	l := platformListing{AppID: p.appid, Primary: p == p.s.primary, MessageURL: p.messageURL}
	if p.eventURL != nil {
		l.EventURL = p.eventURL.String()
	}
	return l
}

func (s *Simulator) ctlAddPlatform(w http.ResponseWriter, r *http.Request) {
	var req platformRequest
	if err := decodeControl(r, &req); err != nil {
		writeControlError(w, err)
		return
	}
	err := s.AddPlatform(PlatformOptions{AppID: req.AppID, Secret: req.Secret, Token: req.Token,
		EncodingAESKey: req.AESKey, EventURL: req.EventURL, MessageURL: req.MessageURL})
	if err != nil {
		writeControlError(w, err)
		return
	}
	p, _ := s.Platform(req.AppID)
	writeControl(w, http.StatusCreated, p.listing())
}

func (s *Simulator) ctlListPlatforms(w http.ResponseWriter, r *http.Request) {
	ps := s.platformList()
	out := make([]platformListing, len(ps))
	for i, p := range ps {
		out[i] = p.listing()
	}
	writeControl(w, http.StatusOK, map[string]any{"components": out})
}

func (s *Simulator) ctlCreateAccount(p *Platform, w http.ResponseWriter, r *http.Request) {
	var spec AccountSpec
	if err := decodeControl(r, &spec); err != nil {
		writeControlError(w, err)
		return
	}
	if err := s.CreateAccount(spec); err != nil {
		writeControlError(w, err)
		return
	}
	info, _ := p.Account(spec.AppID)
	writeControl(w, http.StatusCreated, info)
}

func (s *Simulator) ctlListAccounts(p *Platform, w http.ResponseWriter, r *http.Request) {
	writeControl(w, http.StatusOK, map[string]any{"accounts": p.Accounts()})
}

func (s *Simulator) ctlGetAccount(p *Platform, w http.ResponseWriter, r *http.Request) {
	info, err := p.Account(r.PathValue("appid"))
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeControl(w, http.StatusOK, info)
}

func (s *Simulator) ctlSetFollowers(p *Platform, w http.ResponseWriter, r *http.Request) {
	var req struct {
		Followers *int `json:"followers"`
	}
	err := decodeControl(r, &req)
	if err == nil && req.Followers == nil {
		err = fmt.Errorf("%w: followers is required", ErrInvalid)
	}
	if err == nil {
		err = s.SetFollowers(r.PathValue("appid"), *req.Followers)
	}
	if err != nil {
		writeControlError(w, err)
		return
	}
	s.ctlGetAccount(p, w, r)
}

// authorizeAnswer is the body of POST /sim/accounts/{appid}/authorize.
type authorizeAnswer struct {
	AuthCode    string      `json:"auth_code"`
	ExpiresIn   int         `json:"expires_in"`
	RedirectURL string      `json:"redirect_url,omitempty"`
	Error       string      `json:"error,omitempty"`
	Account     AccountInfo `json:"account"`
}

func (s *Simulator) ctlAuthorize(p *Platform, w http.ResponseWriter, r *http.Request) {
	var req struct {
		PreAuthCode string `json:"pre_auth_code"`
		RedirectURI string `json:"redirect_uri"`
	}
	if err := decodeControl(r, &req); err != nil {
		writeControlError(w, err)
		return
	}
	appid := r.PathValue("appid")
	redirectURI := req.RedirectURI
	if redirectURI == "" && req.PreAuthCode != "" {
		s.mu.Lock()
		if pre, ok := p.preAuth[req.PreAuthCode]; ok {
			redirectURI = pre.redirectURI // remembered from the authorization page
		}
		s.mu.Unlock()
	}
	code, err := p.Authorize(r.Context(), appid, req.PreAuthCode)
	if code == "" {
		writeControlError(w, err)
		return
	}
	ans := authorizeAnswer{AuthCode: code, ExpiresIn: int(AuthCodeLifetime / time.Second)}
	if redirectURI != "" {
		ans.RedirectURL = redirectWithCode(redirectURI, code)
	}
	ans.Account, _ = p.Account(appid)
	status := http.StatusOK
	if err != nil {
		status, ans.Error = controlStatus(err), err.Error()
	}
	writeControl(w, status, ans)
}

func (s *Simulator) ctlUnauthorize(p *Platform, w http.ResponseWriter, r *http.Request) {
	if err := p.Unauthorize(r.Context(), r.PathValue("appid")); err != nil {
		writeControlError(w, err)
		return
	}
	s.ctlGetAccount(p, w, r)
}

func (s *Simulator) ctlSetPermissionSets(p *Platform, w http.ResponseWriter, r *http.Request) {
	var req struct {
		PermissionSets []int `json:"permission_sets"`
		Push           bool  `json:"push"`
	}
	err := decodeControl(r, &req)
	if err == nil && req.PermissionSets == nil {
		err = fmt.Errorf("%w: permission_sets is required", ErrInvalid)
	}
	if err != nil {
		writeControlError(w, err)
		return
	}
	appid := r.PathValue("appid")
	code, err := p.setPermissionSets(r.Context(), appid, req.PermissionSets, req.Push)
	if err != nil && code == "" {
		writeControlError(w, err)
		return
	}
	ans := authorizeAnswer{AuthCode: code}
	if code != "" {
		ans.ExpiresIn = int(AuthCodeLifetime / time.Second)
	}
	ans.Account, _ = p.Account(appid)
	status := http.StatusOK
	if err != nil {
		status, ans.Error = controlStatus(err), err.Error()
	}
	writeControl(w, status, ans)
}

// ctlAccountAction serves a platform-scoped action on an account.
func ctlAccountAction(f func(p *Platform, appid string) error) func(*Platform, http.ResponseWriter, *http.Request) {
	return func(p *Platform, w http.ResponseWriter, r *http.Request) {
		if err := f(p, r.PathValue("appid")); err != nil {
			writeControlError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// ctlAction serves a platform-scoped action.
func ctlAction(f func(p *Platform) error) func(*Platform, http.ResponseWriter, *http.Request) {
	return func(p *Platform, w http.ResponseWriter, r *http.Request) {
		if err := f(p); err != nil {
			writeControlError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// ctlResetQuota resets the account's quota, which is the account's own,
// shared by every platform.
func (s *Simulator) ctlResetQuota(w http.ResponseWriter, r *http.Request) {
	if err := s.ResetQuota(r.PathValue("appid")); err != nil {
		writeControlError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Simulator) ctlAccountToken(p *Platform, w http.ResponseWriter, r *http.Request) {
	appid := r.PathValue("appid")
	if _, err := p.Account(appid); err != nil {
		writeControlError(w, err)
		return
	}
	writeControl(w, http.StatusOK, map[string]string{"access_token": p.CurrentAccessToken(appid)})
}

func (s *Simulator) ctlComponentToken(p *Platform, w http.ResponseWriter, r *http.Request) {
	writeControl(w, http.StatusOK, map[string]string{"component_access_token": p.CurrentComponentToken()})
}

func (s *Simulator) ctlPushTicket(p *Platform, w http.ResponseWriter, r *http.Request) {
	ticket, err := p.PushTicket(r.Context())
	ans := map[string]string{"ticket": ticket}
	status := http.StatusOK
	if err != nil {
		status, ans["error"] = controlStatus(err), err.Error()
	}
	writeControl(w, status, ans)
}

func (s *Simulator) ctlListFaults(w http.ResponseWriter, r *http.Request) {
	writeControl(w, http.StatusOK, map[string]any{"faults": s.Faults()})
}

// ctlSetFaults accepts one fault object or an array of them; all are
// validated before any is applied.
func (s *Simulator) ctlSetFaults(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	var faults []Fault
	if err == nil {
		if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '[' {
			err = json.Unmarshal(trimmed, &faults)
		} else {
			var f Fault
			err = json.Unmarshal(trimmed, &f)
			faults = append(faults, f)
		}
	}
	if err != nil {
		writeControlError(w, fmt.Errorf("%w: body: %w", ErrInvalid, err))
		return
	}
	for _, f := range faults {
		if err := f.Validate(); err != nil {
			writeControlError(w, err)
			return
		}
	}
	for _, f := range faults {
		_ = s.SetFault(f) // validated above
	}
	s.ctlListFaults(w, r)
}

func (s *Simulator) ctlClearFaults(w http.ResponseWriter, r *http.Request) {
	s.ClearFaults()
	w.WriteHeader(http.StatusNoContent)
}

// ctlCounters answers the global counters, or with component_appid the
// counters of that platform's calls.
func (s *Simulator) ctlCounters(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("component_appid") == "" {
		writeControl(w, http.StatusOK, s.Counters())
		return
	}
	p, err := s.platformOf(r.URL.Query())
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeControl(w, http.StatusOK, p.Counters())
}

func (s *Simulator) ctlResetCounters(w http.ResponseWriter, r *http.Request) {
	s.ResetCounters()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Simulator) ctlPushMessage(p *Platform, w http.ResponseWriter, r *http.Request) {
	var m FollowerMessage
	if err := decodeControl(r, &m); err != nil {
		writeControlError(w, err)
		return
	}
	ds, err := p.PushMessage(r.Context(), r.PathValue("appid"), m)
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeControl(w, http.StatusOK, map[string]any{"deliveries": ds})
}

func (s *Simulator) ctlDeliveries(w http.ResponseWriter, r *http.Request) {
	writeControl(w, http.StatusOK, map[string]any{"deliveries": s.Deliveries()})
}

func (s *Simulator) ctlCustomMessages(w http.ResponseWriter, r *http.Request) {
	writeControl(w, http.StatusOK, map[string]any{"custom_messages": s.CustomMessages()})
}

// ctlReleaseTest runs the release test; it answers 200 with the report
// whether the test passed or not.
func (s *Simulator) ctlReleaseTest(p *Platform, w http.ResponseWriter, r *http.Request) {
	var o ReleaseTestOptions
	if err := decodeControl(r, &o); err != nil {
		writeControlError(w, err)
		return
	}
	rep, err := p.RunReleaseTest(r.Context(), o)
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeControl(w, http.StatusOK, rep)
}
