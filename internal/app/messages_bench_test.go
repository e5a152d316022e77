package app_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/sim"
)

// BenchmarkFollowerMessages pushes 200 follower messages at once (each
// a different follower and MsgId) through the simulator to one `wxgate
// serve` on PostgreSQL, every message queued for the account's tenant
// before it is answered, and reports the reply time WeChat sees: p50 and
// p99 per burst, and the slowest. Every answer must be "success"; the
// times are reported, not asserted (docs/performance.md).
//
//	go test -run '^$' -bench BenchmarkFollowerMessages -benchtime 5x ./internal/app/
func BenchmarkFollowerMessages(b *testing.B) {
	const burst = 200
	const appid = "wxbench00000000m01"
	st := newStack(b, stackOptions{Accounts: []sim.AccountSpec{{AppID: appid, Followers: burst}}})
	openids := make([]string, burst)
	for i := range openids {
		openids[i], _ = st.Sim.FollowerOpenID(appid, i)
	}
	var all []time.Duration
	b.ResetTimer()
	for n := range b.N {
		times := make([]time.Duration, burst)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var problems []string
		for i := range burst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ds, err := st.Sim.PushMessage(b.Context(), appid, sim.FollowerMessage{FromOpenID: openids[i], Content: fmt.Sprintf("burst %d message %d", n, i)})
				if err != nil || ds[0].Problem != "" || ds[0].Body != "success" {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("%v %+v", err, ds))
					mu.Unlock()
					return
				}
				times[i] = ds[0].Elapsed
			}()
		}
		wg.Wait()
		if len(problems) > 0 {
			b.Fatalf("%d of %d messages not answered success; first: %s", len(problems), burst, problems[0])
		}
		all = append(all, times...)
	}
	b.StopTimer()
	slices.Sort(all)
	at := func(p float64) time.Duration { return all[min(len(all)-1, int(float64(len(all))*p))] }
	b.ReportMetric(float64(at(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(at(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(all[len(all)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
}
