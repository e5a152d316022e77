package component_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/component/componenttest"
)

// TestDeadRefresherBlocksTheComponentTokenForAnEighthOfItsLifetime: a
// replica that dies while renewing the component token leaves its lease
// behind. With a short token lifetime that lease must run out long before
// the token does (an eighth of the lifetime, as the 30 s lease is next to
// WeChat's 7200 s), or the component token expires while no replica may
// renew it, and with it every authorizer refresh.
func TestDeadRefresherBlocksTheComponentTokenForAnEighthOfItsLifetime(t *testing.T) {
	t.Parallel()
	const life = 40 * time.Second
	var armed atomic.Bool
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	p := componenttest.New(t, componenttest.Options{
		TokenLifetime: life,
		SimMiddleware: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/cgi-bin/component/api_component_token" && armed.CompareAndSwap(true, false) {
					arrived <- struct{}{}
					<-release // the refresher "dies" here while holding its lease
				}
				next.ServeHTTP(w, r)
			})
		},
	})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the simulator's server closes
	ctx := p.Ctx()
	p.PushTicket() // the first token
	armed.Store(true)
	p.Clock.Advance(life * 3 / 4) // due
	done := make(chan error, 1)
	go func() { done <- p.Credentials.Tick(ctx) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the renewal never reached WeChat")
	}
	lease := "component-token:" + p.AppID
	if got, err := p.Store.TryLease(ctx, lease, "another-replica", time.Second); err != nil || got {
		t.Fatalf("another replica took the lease during the renewal: %v %v", got, err)
	}
	p.Clock.Advance(life/8 - time.Second)
	if got, err := p.Store.TryLease(ctx, lease, "another-replica", time.Second); err != nil || got {
		t.Fatalf("the lease ran out before an eighth of the lifetime: %v %v", got, err)
	}
	p.Clock.Advance(time.Second + time.Millisecond)
	if got, err := p.Store.TryLease(ctx, lease, "another-replica", time.Second); err != nil || !got {
		t.Fatalf("a dead holder's lease still blocks the component token after an eighth of its %v lifetime: %v %v", life, got, err)
	}
	free()
	<-done
}
