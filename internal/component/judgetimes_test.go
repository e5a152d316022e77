package component_test

import (
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/component"
)

// TestJudgeTimes: the freshness policy both receive URLs share, at the
// edges of each window.
func TestJudgeTimes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	n := now.Unix()
	future := int64(component.FutureWindow / time.Second)
	week := 7 * 24 * time.Hour
	for _, tc := range []struct {
		name          string
		sent, created int64
		window        time.Duration
		want          component.Timing
	}{
		{"now", n, n, week, component.TimingFresh},
		{"URL timestamp at the future edge", n + future, n, week, component.TimingFresh},
		{"URL timestamp past the future edge", n + future + 1, n, week, component.TimingFuture},
		{"CreateTime past the future edge", n, n + future + 1, week, component.TimingFuture},
		{"sent ten minutes ago", n - 600, n - 600, week, component.TimingLate},
		{"created at the replay window's edge", n, n - int64(week/time.Second), week, component.TimingFresh},
		{"created before the replay window", n, n - int64(week/time.Second) - 1, week, component.TimingStale},
		{"no CreateTime: the URL timestamp's age", n - int64(week/time.Second) - 1, 0, week, component.TimingStale},
		{"no replay window judges no age", n - 600, n - int64(week/time.Second) - 1, 0, component.TimingLate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := component.JudgeTimes(now, tc.sent, tc.created, tc.window); got != tc.want {
				t.Fatalf("JudgeTimes(sent %+d, created %+d) = %d, want %d", tc.sent-n, tc.created-n, got, tc.want)
			}
		})
	}
}
