package config_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/config"
)

const goodKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // 32 bytes

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func valid() map[string]string {
	return map[string]string{
		"WXGATE_SECRET_KEY":        goodKey,
		"WXGATE_ADMIN_TOKEN":       strings.Repeat("a", 32),
		"WXGATE_COMPONENT_APPID":   "wx2c2769f8efd9abc2",
		"WXGATE_COMPONENT_SECRET":  "component-secret-value",
		"WXGATE_COMPONENT_TOKEN":   "spamtest",
		"WXGATE_COMPONENT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
	}
}

func TestEmptyEnvironmentNamesEveryRequiredVariable(t *testing.T) {
	_, err := config.Load(env(nil), "", config.NeedGateway)
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *config.Error", err)
	}
	for _, name := range []string{"WXGATE_SECRET_KEY", "WXGATE_ADMIN_TOKEN", "WXGATE_COMPONENT_APPID",
		"WXGATE_COMPONENT_SECRET", "WXGATE_COMPONENT_TOKEN", "WXGATE_COMPONENT_AES_KEY"} {
		if !strings.Contains(err.Error(), name+" is required") {
			t.Errorf("message does not name %s: %v", name, err)
		}
	}
	if len(ce.Problems) != 6 {
		t.Errorf("got %d problems, want 6: %v", len(ce.Problems), ce.Problems)
	}
}

func TestSimNeedsOnlyComponentSettings(t *testing.T) {
	m := valid()
	delete(m, "WXGATE_SECRET_KEY")
	delete(m, "WXGATE_ADMIN_TOKEN")
	if _, err := config.Load(env(m), "", config.NeedComponent); err != nil {
		t.Fatalf("sim config: %v", err)
	}
}

func TestEveryInvalidValueIsNamedWithoutEchoingSecrets(t *testing.T) {
	m := valid()
	m["WXGATE_SECRET_KEY"] = "not-base64-SECRETVALUE!"
	m["WXGATE_ADMIN_TOKEN"] = "shortADMINSECRET"
	m["WXGATE_COMPONENT_APPID"] = "nope"
	m["WXGATE_COMPONENT_AES_KEY"] = "tooshortAESSECRET"
	m["WXGATE_DATABASE_URL"] = "mysql://x"
	m["WXGATE_PUBLIC_URL"] = "not a url"
	m["WXGATE_LOG_LEVEL"] = "loud"
	m["WXGATE_TENANT_RATE_LIMIT"] = "-1"
	m["WXGATE_DATABASE_MAX_CONNS"] = "1"
	_, err := config.Load(env(m), "", config.NeedGateway)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, name := range []string{"WXGATE_SECRET_KEY", "WXGATE_ADMIN_TOKEN", "WXGATE_COMPONENT_APPID", "WXGATE_COMPONENT_AES_KEY",
		"WXGATE_DATABASE_URL", "WXGATE_PUBLIC_URL", "WXGATE_LOG_LEVEL", "WXGATE_TENANT_RATE_LIMIT", "WXGATE_DATABASE_MAX_CONNS"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("message does not name %s", name)
		}
	}
	for _, s := range []string{"SECRETVALUE", "ADMINSECRET", "AESSECRET", "mysql://x"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("message echoes secret value %q: %v", s, err)
		}
	}
}

func TestDefaultsAndValues(t *testing.T) {
	c, err := config.Load(env(valid()), "", config.NeedGateway)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8080" || c.DatabaseURL != "sqlite:wxgate.db" || c.PublicURL != "http://localhost:8080" ||
		c.WeChatAPIURL != "https://api.weixin.qq.com" || c.WeChatMPURL != "https://mp.weixin.qq.com" ||
		c.WeChatOpenURL != "https://open.weixin.qq.com" || c.LogLevel != slog.LevelInfo || len(c.SecretKey) != 32 ||
		c.DatabaseMaxConns != 20 {
		t.Fatalf("defaults: %+v", c)
	}
	if strings.Contains(c.String(), "component-secret-value") || strings.Contains(c.String(), "aaaaaaaa") {
		t.Fatalf("String() leaks a secret: %s", c)
	}
}

func TestFileAndEnvironmentPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wxgate.yaml")
	yaml := "listen: \":9999\"\nlog_level: debug\npublic_url: https://gw.example.com\ncomponent_token: from-file\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	m := valid()
	delete(m, "WXGATE_COMPONENT_TOKEN")
	m["WXGATE_LISTEN"] = ":7777"
	c, err := config.Load(env(m), path, config.NeedGateway)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":7777" {
		t.Errorf("environment must win: listen %q", c.Listen)
	}
	if c.LogLevel != slog.LevelDebug || c.PublicURL != "https://gw.example.com" || c.ComponentToken.Reveal() != "from-file" {
		t.Errorf("file values not applied: %+v", c)
	}
	if err := os.WriteFile(path, []byte("listn: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(env(valid()), path, config.NeedGateway); err == nil || !strings.Contains(err.Error(), `unknown key "listn"`) {
		t.Errorf("unknown file key not reported: %v", err)
	}
	if _, err := config.Load(env(valid()), filepath.Join(dir, "missing.yaml"), config.NeedGateway); err == nil {
		t.Error("missing file accepted")
	}
}

func TestExampleFileDocumentsEveryKey(t *testing.T) {
	raw, err := os.ReadFile("../../configs/wxgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range config.Keys() {
		yamlKey := strings.ToLower(strings.TrimPrefix(k, "WXGATE_"))
		if !strings.Contains(string(raw), yamlKey+":") || !strings.Contains(string(raw), k) {
			t.Errorf("configs/wxgate.example.yaml does not document %s (%s)", k, yamlKey)
		}
	}
}

// TestDirectoryMaxStaleness: the staleness limit of a replica cut off from
// the store defaults to 30 s, takes a duration of at least a second, and
// the example file's value is one Load accepts.
func TestDirectoryMaxStaleness(t *testing.T) {
	tests := []struct {
		name, env, file string
		want            time.Duration
		wantErr         bool
	}{
		{name: "default", want: 30 * time.Second},
		{name: "from the environment", env: "5s", want: 5 * time.Second},
		{name: "from the file", file: "directory_max_staleness: 2m\n", want: 2 * time.Minute},
		{name: "below a second", env: "500ms", wantErr: true},
		{name: "not a duration", env: "soon", wantErr: true},
		{name: "negative", env: "-5s", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			if tc.env != "" {
				m["WXGATE_DIRECTORY_MAX_STALENESS"] = tc.env
			}
			path := ""
			if tc.file != "" {
				path = filepath.Join(t.TempDir(), "wxgate.yaml")
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c, err := config.Load(env(m), path, config.NeedGateway)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "WXGATE_DIRECTORY_MAX_STALENESS") {
					t.Fatalf("got %v, want an error naming WXGATE_DIRECTORY_MAX_STALENESS", err)
				}
				return
			}
			if err != nil || c.DirectoryMaxStaleness != tc.want {
				t.Fatalf("got %v (%v), want %v", c.DirectoryMaxStaleness, err, tc.want)
			}
		})
	}
	t.Run("the example file loads", func(t *testing.T) {
		c, err := config.Load(env(valid()), "../../configs/wxgate.example.yaml", config.NeedGateway)
		if err != nil {
			t.Fatalf("the example file: got %v, want it accepted", err)
		}
		if c.DirectoryMaxStaleness != 30*time.Second {
			t.Fatalf("the example's directory_max_staleness: got %v, want the documented 30s", c.DirectoryMaxStaleness)
		}
	})
}

// TestProblemsAreWordedForPeople checks what an operator reads when one
// setting is wrong: the allowed values, the shape expected, and grammar.
func TestProblemsAreWordedForPeople(t *testing.T) {
	for _, tc := range []struct {
		name, key, value string
		want             []string
	}{
		{"log level lists the levels", "WXGATE_LOG_LEVEL", "verbose", []string{"(1 problem)", "WXGATE_LOG_LEVEL", "debug, info, warn, error"}},
		{"listen without a port", "WXGATE_LISTEN", "8080", []string{"(1 problem)", "WXGATE_LISTEN", "host:port or :port"}},
		{"listen with a named port", "WXGATE_LISTEN", ":http", []string{"WXGATE_LISTEN", "port must be a number"}},
		{"listen port out of range", "WXGATE_LISTEN", "127.0.0.1:70000", []string{"WXGATE_LISTEN", "port must be a number"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			m[tc.key] = tc.value
			_, err := config.Load(env(m), "", config.NeedGateway)
			if err == nil {
				t.Fatalf("%s=%q accepted", tc.key, tc.value)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", err, w)
				}
			}
		})
	}
	m := valid()
	m["WXGATE_LISTEN"] = "127.0.0.1:0"
	if c, err := config.Load(env(m), "", config.NeedGateway); err != nil || c.Listen != "127.0.0.1:0" {
		t.Fatalf("127.0.0.1:0: got %q, %v", c.Listen, err)
	}
}

// TestDescribeKeepsEveryExplanationLine reads the help of the settings
// whose explanation spans lines that look like "key: value" prose.
func TestDescribeKeepsEveryExplanationLine(t *testing.T) {
	raw, err := os.ReadFile("../../configs/wxgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{}
	for _, s := range config.Describe(raw) {
		docs[s.Env] = s.Doc
		if s.Doc == "" {
			t.Errorf("%s has no explanation in the example file", s.Env)
		}
	}
	for env, want := range map[string]string{
		"WXGATE_SHARED_ACCOUNTS": `"approve": the new binding waits as pending`,
		"WXGATE_DATABASE_URL":    "sqlite:PATH for the embedded single node",
	} {
		if !strings.Contains(docs[env], want) {
			t.Errorf("%s help = %q, want it to contain %q", env, docs[env], want)
		}
	}
}
