package app_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/wxgate/wxgate/internal/app"
	"github.com/wxgate/wxgate/internal/journey"
)

// TestLocalExposure: the simulator's unauthenticated control API answers
// live tokens, so it listens on loopback unless told otherwise, and the
// compose file publishes every port on loopback only and carries no fixed
// gateway secret.
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
	journey.Step(t, "docker-compose.yml", func(t *testing.T) {
		raw, err := os.ReadFile("../../docker-compose.yml")
		if err != nil {
			t.Fatal(err)
		}
		var compose struct {
			Services map[string]struct {
				Ports       []string          `yaml:"ports"`
				Environment map[string]string `yaml:"environment"`
			} `yaml:"services"`
		}
		if err := yaml.Unmarshal(raw, &compose); err != nil {
			t.Fatal(err)
		}
		required := regexp.MustCompile(`^\$\{[A-Z_]+:\?[^$]+\}$`)
		published, secrets := 0, 0
		for name, svc := range compose.Services {
			for _, p := range svc.Ports {
				published++
				if !strings.HasPrefix(p, "127.0.0.1:") {
					t.Errorf("service %s publishes %q: want 127.0.0.1:HOST:CONTAINER", name, p)
				}
			}
			for _, v := range []string{"WXGATE_SECRET_KEY", "WXGATE_ADMIN_TOKEN"} {
				if val, ok := svc.Environment[v]; ok {
					secrets++
					if !required.MatchString(val) {
						t.Errorf("service %s sets %s to %q: want ${%s:?how to make one}, never a fixed value", name, v, val, v)
					}
				}
			}
		}
		if published < 3 || secrets < 2 {
			t.Fatalf("got %d published ports and %d gateway secrets, want the three services and the gateway's two secrets", published, secrets)
		}
	})
}
