package app_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// TestComposeFileAsPeopleRunIt validates docker-compose.yml with the compose
// specification's own Go library (no Docker engine runs on the test
// machines) and checks what an operator relies on: nothing published beyond
// 127.0.0.1, no secret baked in, one image for both wxgate services, health
// checks and restart policies everywhere, PostgreSQL on a named volume.
func TestComposeFileAsPeopleRunIt(t *testing.T) {
	t.Parallel()
	path, err := filepath.Abs("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	load := func(env map[string]string) (*types.Project, error) {
		var kv []string
		for k, v := range env {
			kv = append(kv, k+"="+v)
		}
		opts, err := cli.NewProjectOptions([]string{path}, cli.WithEnv(kv), cli.WithWorkingDirectory(filepath.Dir(path)), cli.WithName("wxgate"))
		if err != nil {
			return nil, err
		}
		return opts.LoadProject(context.Background())
	}

	secrets := map[string]string{"WXGATE_SECRET_KEY": "secret-from-env", "WXGATE_ADMIN_TOKEN": "admin-from-env", "POSTGRES_PASSWORD": "pg-from-env"}
	t.Run("the secrets are required, not baked in", func(t *testing.T) {
		for missing := range secrets {
			env := map[string]string{}
			for k, v := range secrets {
				if k != missing {
					env[k] = v
				}
			}
			if _, err := load(env); err == nil || !strings.Contains(err.Error(), missing) {
				t.Errorf("loading without %s: %v, want a refusal naming it", missing, err)
			}
		}
	})

	env := map[string]string{"VERSION": "v9.9.9"}
	for k, v := range secrets {
		env[k] = v
	}
	p, err := load(env)
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	gw, gwErr := p.GetService("gateway")
	sim, simErr := p.GetService("sim")
	pg, pgErr := p.GetService("postgres")
	if gwErr != nil || simErr != nil || pgErr != nil {
		t.Fatalf("services: %v %v %v", gwErr, simErr, pgErr)
	}

	t.Run("published on 127.0.0.1 only", func(t *testing.T) {
		for _, s := range p.Services {
			for _, port := range s.Ports {
				if port.HostIP != "127.0.0.1" {
					t.Errorf("%s publishes %s on %q, want 127.0.0.1", s.Name, port.Published, port.HostIP)
				}
			}
		}
	})
	t.Run("secrets come from the environment", func(t *testing.T) {
		if v := gw.Environment["WXGATE_SECRET_KEY"]; v == nil || *v != "secret-from-env" {
			t.Errorf("gateway WXGATE_SECRET_KEY = %v", v)
		}
		if v := gw.Environment["WXGATE_ADMIN_TOKEN"]; v == nil || *v != "admin-from-env" {
			t.Errorf("gateway WXGATE_ADMIN_TOKEN = %v", v)
		}
	})
	t.Run("one image, built once, with the version", func(t *testing.T) {
		if gw.Build == nil || sim.Build != nil || gw.Image != "wxgate:v9.9.9" || sim.Image != gw.Image {
			t.Fatalf("gateway build %v image %q, sim build %v image %q: want one build, one image for both", gw.Build, gw.Image, sim.Build, sim.Image)
		}
		if v := gw.Build.Args["VERSION"]; v == nil || *v != "v9.9.9" {
			t.Errorf("build arg VERSION = %v, want the VERSION variable", v)
		}
		if sim.PullPolicy != types.PullPolicyNever {
			t.Errorf("sim pull_policy %q: it must use the image the gateway's service builds", sim.PullPolicy)
		}
	})
	t.Run("health checks and restart policies", func(t *testing.T) {
		for _, s := range p.Services {
			if s.Restart == "" || s.Restart == "no" {
				t.Errorf("%s has no restart policy", s.Name)
			}
			if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
				t.Errorf("%s has no health check", s.Name)
			}
		}
		if d, ok := gw.DependsOn["sim"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("gateway depends on sim %+v, want service_healthy", d)
		}
	})
	t.Run("PostgreSQL keeps its data on a named volume", func(t *testing.T) {
		if !slices.ContainsFunc(pg.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Type == types.VolumeTypeVolume && v.Target == "/var/lib/postgresql/data" && p.Volumes[v.Source].Name != ""
		}) {
			t.Errorf("postgres volumes %+v, want a named volume at /var/lib/postgresql/data", pg.Volumes)
		}
	})
	t.Run("the simulator pushes events and messages to the gateway's service", func(t *testing.T) {
		cmd := strings.Join(sim.Command, " ")
		for _, want := range []string{"--event-url http://gateway:8080/wechat/events", "--message-url http://gateway:8080/wechat/accounts/$APPID$/callback"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("sim command %q lacks %q", cmd, want)
			}
		}
		if v := gw.Environment["WXGATE_DATABASE_URL"]; v == nil || !strings.Contains(*v, ":pg-from-env@postgres:5432/") {
			t.Errorf("gateway database URL %v does not use POSTGRES_PASSWORD", v)
		}
	})
	t.Run("the simulator's seed is the shipped one", func(t *testing.T) {
		for _, v := range sim.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("sim mounts %s: %v", v.Source, err)
				}
			}
		}
	})
}
