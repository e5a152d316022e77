package app_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/wxgate/wxgate/internal/app"
	"github.com/wxgate/wxgate/internal/journey"
)

// TestLocalExposure: the simulator's unauthenticated control API answers
// live tokens, so it listens on loopback unless told otherwise.
func TestLocalExposure(t *testing.T) {
	t.Parallel()
	journey.Step(t, "wxgate sim defaults to loopback", func(t *testing.T) {
		var out bytes.Buffer
		if err := app.Run(context.Background(), []string{"sim", "--help"}, func(string) string { return "" }, app.IO{Stdout: &out, Stderr: io.Discard}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), `(default "127.0.0.1:9090")`) {
			t.Fatalf("sim --help: got %q, want --listen defaulting to 127.0.0.1:9090", out.String())
		}
	})
	// docker-compose.yml (loopback only, no fixed secret) is checked with
	// the compose specification's library in TestComposeFileAsPeopleRunIt.
}
