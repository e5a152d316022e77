package authorizer_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/sim"
)

// TestTokenExpiryCountsFromWhenWeChatWasAsked: WeChat's answer (or the
// calls after it) may take a while to come back; the token's life started
// when WeChat issued it, so the stored expiry must count from when WeChat
// was asked, never from later. Otherwise a replica believes a token valid
// after WeChat expired it and sends it (42001).
func TestTokenExpiryCountsFromWhenWeChatWasAsked(t *testing.T) {
	t.Parallel()
	const (
		life = 7200 * time.Second
		slow = 5 * time.Second
	)
	var p *componenttest.Platform
	var slowPath atomic.Value // the WeChat path whose answer takes slow to arrive
	slowPath.Store("")
	p = setup(t, componenttest.Options{
		TokenLifetime: life,
		SimMiddleware: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(w, r)
				if r.URL.Path == slowPath.Load().(string) {
					p.Clock.Advance(slow) // issued; the answer is slow to come back
				}
			})
		},
	})
	ctx := p.Ctx()
	tenant := p.NewTenant("expiry")

	// Authorization: api_query_auth issues the first token; the flow then
	// calls api_get_authorizer_info before storing the account.
	slowPath.Store("/cgi-bin/component/api_get_authorizer_info")
	p.NewAccount(appA)
	asked := p.Clock.Now()
	p.Authorize(tenant, appA)
	a, err := p.Store.GetAuthorizer(ctx, p.AppID, appA)
	if err != nil {
		t.Fatal(err)
	}
	if want := asked.Add(life); a.TokenExpiresAt.After(want) {
		t.Errorf("after authorization the token expires at %v, %v after WeChat's expiry", a.TokenExpiresAt, a.TokenExpiresAt.Sub(want))
	}

	// A refresh whose answer is slow to arrive.
	slowPath.Store("/cgi-bin/component/" + sim.EndpointAuthorizerToken)
	asked = p.Clock.Now()
	if _, err := p.Authorizers.ForceRefresh(ctx, appA); err != nil {
		t.Fatal(err)
	}
	a, err = p.Store.GetAuthorizer(ctx, p.AppID, appA)
	if err != nil {
		t.Fatal(err)
	}
	if want := asked.Add(life); a.TokenExpiresAt.After(want) {
		t.Errorf("after a refresh the token expires at %v, %v after WeChat's expiry", a.TokenExpiresAt, a.TokenExpiresAt.Sub(want))
	}
	if a.AccessToken.Reveal() != p.Sim.CurrentAccessToken(appA) {
		t.Fatal("the refresh did not store WeChat's token")
	}
}
