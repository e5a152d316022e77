package app

import (
	"math"
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
