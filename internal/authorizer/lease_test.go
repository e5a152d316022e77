package authorizer_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/component/componenttest"
)

// TestDeadRefresherBlocksAnAccountForAnEighthOfItsLifetime: a replica that
// dies while refreshing leaves its lease behind. With a short token lifetime
// that lease must run out long before the token does (an eighth of the
// lifetime, as LeaseTTL is next to WeChat's 7200 s), or the account's token
// expires while nobody may renew it.
func TestDeadRefresherBlocksAnAccountForAnEighthOfItsLifetime(t *testing.T) {
	t.Parallel()
	const life = 40 * time.Second
	arrived, release := make(chan struct{}), make(chan struct{})
	p := setup(t, componenttest.Options{
		TokenLifetime: life,
		SimMiddleware: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/cgi-bin/component/api_authorizer_token" {
					select {
					case arrived <- struct{}{}:
						<-release // the refresher "dies" here while holding its lease
					default:
					}
				}
				next.ServeHTTP(w, r)
			})
		},
	}, appA)
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the simulator's server closes
	ctx := p.Ctx()
	done := make(chan error, 1)
	go func() {
		_, err := p.Authorizers.ForceRefresh(ctx, appA)
		done <- err
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the refresh never reached WeChat")
	}
	lease := "authorizer:" + p.AppID + ":" + appA
	if got, err := p.Store.TryLease(ctx, lease, "another-replica", time.Second); err != nil || got {
		t.Fatalf("another replica took the lease during the refresh: %v %v", got, err)
	}
	p.Clock.Advance(life/8 - time.Second)
	if got, err := p.Store.TryLease(ctx, lease, "another-replica", time.Second); err != nil || got {
		t.Fatalf("the lease ran out before an eighth of the lifetime: %v %v", got, err)
	}
	p.Clock.Advance(time.Second + time.Millisecond)
	if got, err := p.Store.TryLease(ctx, lease, "another-replica", time.Second); err != nil || !got {
		t.Fatalf("a dead holder's lease still blocks the account after an eighth of its %v lifetime: %v %v", life, got, err)
	}
	free()
	<-done
}
