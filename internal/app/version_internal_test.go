package app

import (
	"runtime/debug"
	"testing"
)

func TestVersionLineReadsTheBuildInfo(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-26T17:00:00Z"}}
	for _, tc := range []struct {
		name, version string
		info          *debug.BuildInfo
		want          string
	}{
		{"make build sets the version", "v1.4.0", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs},
			"wxgate v1.4.0 (0123456789ab, 2026-11-26T17:00:00Z, go1.26.8)"},
		{"go install stamps the module version", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.1-0.20261126170000-0123456789ab"}},
			"wxgate v1.4.1-0.20261126170000-0123456789ab (go1.26.8)"},
		{"go build in a checkout with changes", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: append(vcs, debug.BuildSetting{Key: "vcs.modified", Value: "true"})},
			"wxgate dev (0123456789ab+dirty, 2026-11-26T17:00:00Z, go1.26.8)"},
		{"no build info", "dev", nil, "wxgate dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionLine(tc.version, tc.info); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
