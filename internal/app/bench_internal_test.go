package app

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistogramQuantile(t *testing.T) {
	// 100 observations: 50 under 1 ms, 40 more under 2 ms, 10 under 4 ms.
	h := histogram{bounds: []float64{.001, .002, .004, math.Inf(1)}, counts: []float64{50, 90, 100, 100}, count: 100}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.50, time.Millisecond},
		{0.70, 1500 * time.Microsecond},
		{0.99, 3800 * time.Microsecond},
	} {
		if got := h.quantile(tc.q); got.Round(time.Microsecond) != tc.want {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	before := histogram{bounds: h.bounds, counts: []float64{50, 50, 50, 50}, count: 50}
	if d := h.minus(before); d.count != 50 || d.quantile(0.5).Round(time.Microsecond) != 1625*time.Microsecond {
		t.Errorf("minus: %+v, median %v; want 50 observations, median 1.625 ms", d, d.quantile(0.5))
	}
	if (histogram{}).quantile(0.99) != 0 {
		t.Error("an empty histogram has a quantile")
	}
}

// TestLoadPacedKeepsItsSchedule: the paced load sends at its rate however
// fast the calls answer (an unpaced loop would send thousands), and a call
// held up behind a slow one is charged from its scheduled time.
func TestLoadPacedKeepsItsSchedule(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	res := loadPaced(context.Background(), 4, 200, 500*time.Millisecond, func(context.Context) error {
		if calls.Add(1) == 1 {
			time.Sleep(120 * time.Millisecond) // the first call is slow: its worker's next calls are late
		}
		return nil
	})
	if res.n < 50 || res.n > 110 {
		t.Fatalf("%d calls in 0.5 s at 200/s, want about 100", res.n)
	}
	// The slow call's worker owed five calls meanwhile (one per 20 ms):
	// they are charged their wait, so the slowest few exceed 50 ms.
	if got := res.lat[len(res.lat)-3]; got < 50*time.Millisecond {
		t.Fatalf("third slowest latency %s, want the calls scheduled during the slow one charged their wait", got)
	}
}
