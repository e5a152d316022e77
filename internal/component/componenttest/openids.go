package componenttest

import (
	"testing"

	"github.com/wxgate/wxgate/internal/sim"
)

// WantFollowers checks that got is exactly the simulated account's
// followers from..to-1 in WeChat's paging order: the count, the first, the
// last, no duplicate, and each one (what an export or a page walk must
// yield).
func WantFollowers(t testing.TB, appid string, got []string, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("%d openids, want %d", len(got), to-from)
	}
	if to == from {
		return
	}
	if got[0] != sim.OpenID(appid, from) || got[len(got)-1] != sim.OpenID(appid, to-1) {
		t.Fatalf("first %s last %s, want %s and %s", got[0], got[len(got)-1], sim.OpenID(appid, from), sim.OpenID(appid, to-1))
	}
	seen := make(map[string]bool, len(got))
	for i, id := range got {
		if seen[id] {
			t.Fatalf("openid %s twice", id)
		}
		seen[id] = true
		if want := sim.OpenID(appid, from+i); id != want {
			t.Fatalf("openid %d = %s, want %s", i, id, want)
		}
	}
}
