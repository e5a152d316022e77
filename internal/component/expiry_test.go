package component_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/component/componenttest"
)

// TestComponentTokenExpiryCountsFromWhenWeChatWasAsked: WeChat's answer
// may take a while to come back; the token's life started when WeChat
// issued it, so its stored expiry must count from when WeChat was asked,
// never from later (or a replica sends it after WeChat expired it).
func TestComponentTokenExpiryCountsFromWhenWeChatWasAsked(t *testing.T) {
	t.Parallel()
	const (
		life = 7200 * time.Second
		slow = 5 * time.Second
	)
	var p *componenttest.Platform
	p = componenttest.New(t, componenttest.Options{
		TokenLifetime: life,
		SimMiddleware: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(w, r)
				if r.URL.Path == "/cgi-bin/component/api_component_token" {
					p.Clock.Advance(slow) // issued; the answer is slow to come back
				}
			})
		},
	})
	asked := p.Clock.Now()
	p.PushTicket() // fetches the first token
	st, err := p.Credentials.Status(p.Ctx())
	if err != nil || st.TokenExpiresAt == nil {
		t.Fatalf("status %+v, %v", st, err)
	}
	if want := asked.Add(life); st.TokenExpiresAt.After(want) {
		t.Errorf("the component token expires at %v, %v after WeChat's expiry", *st.TokenExpiresAt, st.TokenExpiresAt.Sub(want))
	}
}
