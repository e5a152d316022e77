package app_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/wxgate/wxgate/internal/app"
)

// asWxgate, set in a child process's environment, makes the test binary
// behave as the wxgate command (cmd/wxgate) instead of running tests.
//
// The multi-process tests (replicas_test.go, faults_test.go) need `wxgate
// serve` as real processes: several on one database, one killed with
// SIGKILL. They re-execute this test binary rather than `go build` the
// command: that needs no Go toolchain, module cache or build time while the
// tests run, it runs exactly the code under test, and under -race the
// children are race-instrumented too (a race in a child makes it exit 66,
// which the tests report when they stop it).
const asWxgate = "WXGATE_TEST_RUN_AS_WXGATE"

func TestMain(m *testing.M) {
	if os.Getenv(asWxgate) == "1" {
		os.Exit(runAsWxgate())
	}
	os.Exit(m.Run())
}

// runAsWxgate is cmd/wxgate's main.
func runAsWxgate() int {
	err := app.Run(context.Background(), os.Args[1:], os.Getenv, app.IO{Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "wxgate: %v\n", err)
		if errors.Is(err, app.ErrUsage) {
			return 2
		}
		return 1
	}
	return 0
}
