package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/webhook"
)

// BenchmarkDrain measures the dispatcher against a receiver on loopback
// (docs/performance.md, "Webhooks"), on each store:
//
//   - drain: 10,000 events already queued (10 tenants, 1,000 each) are
//     sent by one dispatcher: deliveries per second, and the heap sampled
//     every 50 ms while the queue drains (it stays flat: a claim holds at
//     most Concurrency deliveries);
//   - live: 2,000 events enqueued by 8 producers while the dispatcher runs:
//     event-to-receipt latency p50/p99, from the enqueue call to the
//     receiver's handler.
//
// Run it once: go test -run '^$' -bench Drain -benchtime 1x ./internal/webhook/
func BenchmarkDrain(b *testing.B) {
	for _, d := range storetest.Dialects {
		b.Run(string(d)+"/drain", func(b *testing.B) {
			for range b.N {
				drain(b, d, 10, 1000, false)
			}
		})
		b.Run(string(d)+"/live", func(b *testing.B) {
			for range b.N {
				drain(b, d, 10, 200, true)
			}
		})
	}
}

// drain queues tenants*perTenant test events and sends them; live starts
// the dispatcher before the events are queued rather than after.
func drain(b *testing.B, dialect store.Dialect, tenants, perTenant int, live bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := storetest.Open(b, dialect, time.Now)
	total := tenants * perTenant
	var mu sync.Mutex
	received := make(map[string]time.Time, total)
	done := make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		id := r.Header.Get(webhook.EventIDHeader)
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		if _, dup := received[id]; !dup {
			received[id] = at
			if len(received) == total {
				close(done)
			}
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	disp := webhook.NewDispatcher(webhook.DispatcherOptions{Queue: st, Owner: "bench", AllowPrivate: true, Poll: 50 * time.Millisecond})
	svc := webhook.New(webhook.Options{Store: st, ComponentAppID: comp, AllowPrivate: true, Wake: disp.Wake})
	var ids []string
	for i := range tenants {
		tn, err := st.CreateTenant(ctx, comp, fmt.Sprintf("t%d", i))
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := svc.Put(ctx, tn.ID, webhook.Config{URL: recv.URL}); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, tn.ID)
	}
	var run sync.WaitGroup
	startDispatcher := func() { run.Go(func() { _ = disp.Run(ctx) }) }
	b.ResetTimer()
	if live {
		startDispatcher()
	}
	enqueued := make(map[string]time.Time, total)
	var prod sync.WaitGroup
	next := make(chan string)
	start := time.Now()
	for range 8 {
		prod.Go(func() {
			for tenantID := range next {
				at := time.Now()
				d, err := svc.Test(ctx, tenantID)
				if err != nil {
					b.Error(err)
					continue
				}
				mu.Lock()
				enqueued[d.EventID] = at
				mu.Unlock()
			}
		})
	}
	for i := range total {
		next <- ids[i%tenants]
	}
	close(next)
	prod.Wait()
	queued := time.Since(start)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapStart, heapMax := ms.HeapInuse, ms.HeapInuse
	stopSampling := make(chan struct{})
	var sampled sync.WaitGroup
	sampled.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				heapMax = max(heapMax, m.HeapInuse)
			}
		}
	})
	sendStart := time.Now()
	if !live {
		startDispatcher()
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d events arrived", len(received), total)
	}
	sent := time.Since(sendStart)
	b.StopTimer()
	cancel()
	run.Wait()
	close(stopSampling)
	sampled.Wait()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if live {
		lat := make([]time.Duration, 0, total)
		for id, at := range received {
			lat = append(lat, at.Sub(enqueued[id]))
		}
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
		b.ReportMetric(float64(total)/queued.Seconds(), "enqueued/s")
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
		return
	}
	b.ReportMetric(float64(total)/sent.Seconds(), "deliveries/s")
	b.ReportMetric(float64(heapStart)/(1<<20), "heap-start-MiB")
	b.ReportMetric(float64(heapMax)/(1<<20), "heap-max-MiB")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-end-MiB")
}
