package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/app"
	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/sim"
)

// webhookEnv lets the replicas deliver to a receiver on loopback.
func webhookEnv(env map[string]string) {
	env["WXGATE_WEBHOOK_ALLOW_PRIVATE"] = "true"
	env["WXGATE_WEBHOOK_TIMEOUT"] = "2s"
}

// TestWebhookSurvivesSIGKILL: the account unauthorizes, the gateway
// commits that and starts delivering authorizer.unauthorized, and is
// killed with SIGKILL while the receiver holds the request. A new gateway
// process on the same database delivers the same event once the dead
// one's lease has run out.
func TestWebhookSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{Replicas: 1, Env: webhookEnv})
	const appid = "wx5e0000000000b001"
	c.addAccounts([]sim.AccountSpec{{AppID: appid, Followers: 3, PermissionSets: []int{2}}})
	recv := newHookReceiver(t)
	inFlight := make(chan string, 1)
	release := make(chan struct{})
	var once sync.Once
	recv.fail = func(ev hookEvent) int {
		held := false
		once.Do(func() { held = true })
		if held {
			inFlight <- ev.ID
			<-release // the gateway dies while this request is open
			return http.StatusServiceUnavailable
		}
		return 0
	}
	defer close(release)
	c.must(http.MethodPut, "/v1/webhook", c.Key, map[string]any{"url": recv.URL, "events": []string{"authorizer.*"}}, nil, 200)

	var eventID string
	journey.Step(t, "unauthorized is committed, its delivery starts, the gateway is killed", func(t *testing.T) {
		if err := c.Sim.Unauthorize(t.Context(), appid); err != nil {
			t.Fatal(err)
		}
		select {
		case eventID = <-inFlight:
		case <-time.After(20 * time.Second):
			t.Fatalf("no delivery started within 20 s\n%s", c.Replicas[0].Logs())
		}
		c.kill(c.Replicas[0])
		if len(recv.Events()) != 0 {
			t.Fatal("the receiver accepted an event before the kill")
		}
	})
	journey.Step(t, "a new gateway process delivers the same event", func(t *testing.T) {
		exe, _ := os.Executable()
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		r, err := app.StartReplica(ctx, exe, []string{"serve"}, c.Env, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.stop(r) })
		// The receiver recorded the killed attempt too (it held that request
		// unanswered), so wait for the store to say delivered, not for the
		// receiver to have seen the id.
		var out struct {
			Deliveries []struct {
				EventID  string `json:"event_id"`
				Status   string
				Attempts int
			}
		}
		var code int
		var raw []byte
		eventually(t, 30*time.Second, "the event delivered after the restart", func() bool {
			code, raw, err = c.do(r, http.MethodGet, "/v1/webhook/deliveries", c.Key, nil, &out)
			return err == nil && code == 200 && len(out.Deliveries) == 1 && out.Deliveries[0].Status == "delivered"
		})
		if out.Deliveries[0].EventID != eventID {
			t.Fatalf("deliveries = %d %s; want the one event, %s", code, raw, eventID)
		}
		n := 0
		for _, ev := range recv.Events() {
			if ev.ID == eventID && ev.Type == "authorizer.unauthorized" && ev.AppID == appid {
				n++
			}
		}
		if n < 1 {
			t.Fatalf("the receiver never got %s", eventID)
		}
	})
}

// TestWebhookTwoReplicasDeliverEachEventOnce: 1,000 events queued through
// two replicas on one PostgreSQL database reach a healthy receiver exactly
// once each, and both replicas take part in sending them.
func TestWebhookTwoReplicasDeliverEachEventOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{Replicas: 2, Env: webhookEnv})
	recv := newHookReceiver(t)
	c.must(http.MethodPut, "/v1/webhook", c.Key, map[string]any{"url": recv.URL}, nil, 200)
	for _, r := range c.Replicas {
		eventually(t, 10*time.Second, "the webhook visible on "+r.Addr, func() bool {
			code, _, _ := c.do(r, http.MethodGet, "/v1/webhook", c.Key, nil, nil)
			return code == 200
		})
	}
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			code, raw, err := c.do(c.Replicas[i%2], http.MethodPost, "/v1/webhook/test", c.Key, nil, nil)
			if err != nil || code != 202 {
				errs <- fmt.Errorf("POST /v1/webhook/test = %d %s %v", code, raw, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "1,000 events received", func() bool { return len(recv.Events()) >= n })
	// Let any duplicate in flight arrive before counting.
	time.Sleep(time.Second)
	seen := map[string]int{}
	for _, ev := range recv.Events() {
		seen[ev.ID]++
	}
	if got := len(recv.Events()); got != n || len(seen) != n {
		t.Fatalf("received %d requests for %d distinct events, want %d each once", got, len(seen), n)
	}
	var total float64
	for i, r := range c.Replicas {
		v, err := c.metric(r, `wxgate_webhook_deliveries_total{outcome="delivered"}`)
		if err != nil || v == 0 {
			t.Fatalf("replica %d delivered %v (%v); want both to take part", i, v, err)
		}
		total += v
	}
	if total != n {
		t.Fatalf("the replicas count %v deliveries, want %d", total, n)
	}
}
