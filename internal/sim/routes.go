package sim

import "net/http"

// routes wires every route the simulator serves.
func (s *Simulator) routes() *http.ServeMux {
	mux := http.NewServeMux()

	// WeChat APIs (docs/wechat.md, "The component token chain" and "Paging"). Methods are checked inside, so that a
	// wrong method gets WeChat's errcode rather than a 405.
	for _, ep := range []string{EndpointComponentToken, EndpointCreatePreAuthCode, EndpointQueryAuth,
		EndpointAuthorizerToken, EndpointGetAuthorizerInfo, EndpointGetAuthorizerList} {
		mux.Handle("/cgi-bin/component/"+ep, s.handleComponent(ep))
	}
	mux.HandleFunc("/cgi-bin/user/get", s.handleUserGet)
	mux.HandleFunc("/cgi-bin/user/tag/get", s.handleTagGet)
	mux.HandleFunc("/cgi-bin/openapi/quota/get", s.handleQuotaGet)
	mux.HandleFunc("/cgi-bin/clear_quota", s.handleClearQuota)
	mux.HandleFunc("/cgi-bin/tags/get", s.handleTagsGet)
	mux.HandleFunc("/cgi-bin/message/custom/send", s.handleCustomSend)
	mux.HandleFunc("/cgi-bin/", func(w http.ResponseWriter, r *http.Request) { s.fail(w, nil, EndpointUnknown, "", errInvalidURL) })

	// Authorization pages (docs/wechat.md, "The authorization pages") and their confirm button.
	mux.HandleFunc("GET /cgi-bin/componentloginpage", s.handleAuthPage(EndpointComponentLoginPage))
	mux.HandleFunc("GET /wxaopen/safe/bindcomponent", s.handleAuthPage(EndpointBindComponent))
	mux.HandleFunc("POST /sim/authpage/confirm", s.handleAuthConfirm)

	// Control API (docs/simulator.md).
	for _, rt := range s.controlRoutes() {
		mux.HandleFunc(rt.pattern, rt.handler)
	}
	return mux
}
