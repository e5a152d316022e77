// Package config loads and validates wxgate's configuration: one typed
// struct from the environment, optionally layered over a YAML file, with
// every problem reported at once.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/wxgate/wxgate/internal/secret"
)

// Config is wxgate's whole configuration. Secret fields are secret.Value so
// they never print.
type Config struct {
	Listen      string
	DatabaseURL string
	// DatabaseMaxConns caps each replica's PostgreSQL connection pool.
	DatabaseMaxConns int
	PublicURL        string
	SecretKey        []byte // decoded WXGATE_SECRET_KEY, 32 bytes
	AdminToken       secret.Value
	ComponentAppID   string
	ComponentSecret  secret.Value
	ComponentToken   secret.Value
	ComponentAESKey  secret.Value
	WeChatAPIURL     string
	WeChatMPURL      string
	WeChatOpenURL    string
	LogLevel         slog.Level

	// TenantRateLimit is the default per-tenant request rate (requests per
	// second, per replica); TenantRateBurst its bucket size.
	TenantRateLimit float64
	TenantRateBurst int
	// UpstreamTimeout bounds one proxied call including its retries.
	UpstreamTimeout time.Duration
	// ShutdownTimeout bounds how long in-flight requests may take to finish.
	ShutdownTimeout time.Duration
	// DirectoryMaxStaleness is how long a replica cut off from the store
	// keeps serving tenant calls from its last tenant directory; past it
	// they are refused with store_unavailable.
	DirectoryMaxStaleness time.Duration
	// ExportMaxPerTenant and ExportMaxPerReplica cap the exports running
	// at once on a replica, per tenant and in all; ExportDeadline is how
	// long one export may take to reach its client.
	ExportMaxPerTenant  int
	ExportMaxPerReplica int
	ExportDeadline      time.Duration
	// AutoBindSharedAccounts binds an account another tenant already holds
	// to an authorizing tenant at once (WXGATE_SHARED_ACCOUNTS=bind); by
	// default such a binding waits for the operator's approval.
	AutoBindSharedAccounts bool
	// TrustedProxies are the addresses (IPs or CIDRs) of the reverse proxies
	// whose X-Forwarded-For names the client; empty: trust none, the client
	// is the connection's peer.
	TrustedProxies []string
	// WebhookAllowPrivate is WXGATE_WEBHOOK_ALLOW_PRIVATE: webhooks may use
	// http:// and reach private, loopback and link-local addresses (tests,
	// the demo, private networks).
	WebhookAllowPrivate bool
	// WebhookTimeout bounds one webhook delivery attempt (default 10 s).
	WebhookTimeout time.Duration
}

// String prints the configuration with every secret redacted.
func (c Config) String() string {
	return fmt.Sprintf("Config{Listen:%s DatabaseURL:%s PublicURL:%s ComponentAppID:%s WeChatAPIURL:%s LogLevel:%s}",
		c.Listen, RedactURL(c.DatabaseURL), c.PublicURL, c.ComponentAppID, c.WeChatAPIURL, c.LogLevel)
}

// Need says which groups of settings a command requires.
type Need int

// The groups of required settings.
const (
	// NeedComponent requires the component appid, secret, token and AES key (wxgate sim).
	NeedComponent Need = 1
	// needKeys marks the settings only the gateway needs.
	needKeys Need = 2
	// NeedGateway requires the secret key and admin token as well (wxgate serve).
	NeedGateway = NeedComponent | needKeys
)

// key describes one setting: its environment variable, its YAML key, its
// default and how to apply it.
type key struct {
	env, yaml, def string
	need           Need
	secret         bool
	apply          func(c *Config, v string) error
}

var keys = []key{
	{env: "WXGATE_LISTEN", yaml: "listen", def: ":8080", apply: applyListen},
	{env: "WXGATE_DATABASE_URL", yaml: "database_url", def: "sqlite:wxgate.db", secret: true, apply: applyDatabaseURL},
	{env: "WXGATE_DATABASE_MAX_CONNS", yaml: "database_max_conns", def: "20", apply: func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 || n > 1000 {
			return errors.New("must be an integer from 2 to 1000 (connections per replica)")
		}
		c.DatabaseMaxConns = n
		return nil
	}},
	{env: "WXGATE_PUBLIC_URL", yaml: "public_url", def: "http://localhost:8080", apply: func(c *Config, v string) error { return setURL(&c.PublicURL, v) }},
	{env: "WXGATE_SECRET_KEY", yaml: "secret_key", need: needKeys, secret: true, apply: applySecretKey},
	{env: "WXGATE_ADMIN_TOKEN", yaml: "admin_token", need: needKeys, secret: true, apply: func(c *Config, v string) error {
		if len(v) < 32 {
			return fmt.Errorf("must be at least 32 characters (got %d)", len(v))
		}
		c.AdminToken = secret.Value(v)
		return nil
	}},
	{env: "WXGATE_COMPONENT_APPID", yaml: "component_appid", need: NeedComponent, apply: func(c *Config, v string) error {
		if !ValidAppID(v) {
			return errors.New("must be a WeChat appid: " + AppIDRule)
		}
		c.ComponentAppID = v
		return nil
	}},
	{env: "WXGATE_COMPONENT_SECRET", yaml: "component_secret", need: NeedComponent, secret: true, apply: func(c *Config, v string) error { c.ComponentSecret = secret.Value(v); return nil }},
	{env: "WXGATE_COMPONENT_TOKEN", yaml: "component_token", need: NeedComponent, secret: true, apply: func(c *Config, v string) error { c.ComponentToken = secret.Value(v); return nil }},
	{env: "WXGATE_COMPONENT_AES_KEY", yaml: "component_aes_key", need: NeedComponent, secret: true, apply: applyAESKey},
	{env: "WXGATE_WECHAT_API_URL", yaml: "wechat_api_url", def: "https://api.weixin.qq.com", apply: func(c *Config, v string) error { return setURL(&c.WeChatAPIURL, v) }},
	{env: "WXGATE_WECHAT_MP_URL", yaml: "wechat_mp_url", def: "https://mp.weixin.qq.com", apply: func(c *Config, v string) error { return setURL(&c.WeChatMPURL, v) }},
	{env: "WXGATE_WECHAT_OPEN_URL", yaml: "wechat_open_url", def: "https://open.weixin.qq.com", apply: func(c *Config, v string) error { return setURL(&c.WeChatOpenURL, v) }},
	{env: "WXGATE_LOG_LEVEL", yaml: "log_level", def: "info", apply: func(c *Config, v string) error {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return errors.New("must be one of debug, info, warn, error")
		}
		return nil
	}},
	{env: "WXGATE_TENANT_RATE_LIMIT", yaml: "tenant_rate_limit", def: "50", apply: func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return errors.New("must be a positive number of requests per second")
		}
		c.TenantRateLimit = f
		return nil
	}},
	{env: "WXGATE_TENANT_RATE_BURST", yaml: "tenant_rate_burst", def: "100", apply: func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return errors.New("must be a positive integer")
		}
		c.TenantRateBurst = n
		return nil
	}},
	{env: "WXGATE_UPSTREAM_TIMEOUT", yaml: "upstream_timeout", def: "10s", apply: func(c *Config, v string) error { return setDuration(&c.UpstreamTimeout, v) }},
	{env: "WXGATE_SHUTDOWN_TIMEOUT", yaml: "shutdown_timeout", def: "15s", apply: func(c *Config, v string) error { return setDuration(&c.ShutdownTimeout, v) }},
	{env: "WXGATE_EXPORT_MAX_PER_TENANT", yaml: "export_max_per_tenant", def: "4", apply: func(c *Config, v string) error {
		return setCount(&c.ExportMaxPerTenant, v)
	}},
	{env: "WXGATE_EXPORT_MAX_PER_REPLICA", yaml: "export_max_per_replica", def: "64", apply: func(c *Config, v string) error {
		return setCount(&c.ExportMaxPerReplica, v)
	}},
	{env: "WXGATE_EXPORT_DEADLINE", yaml: "export_deadline", def: "30m", apply: func(c *Config, v string) error { return setDuration(&c.ExportDeadline, v) }},
	{env: "WXGATE_SHARED_ACCOUNTS", yaml: "shared_accounts", def: "approve", apply: func(c *Config, v string) error {
		switch v {
		case "approve", "bind":
			c.AutoBindSharedAccounts = v == "bind"
			return nil
		}
		return errors.New(`must be "approve" (an account another tenant holds waits for the operator's approval) or "bind"`)
	}},
	{env: "WXGATE_TRUSTED_PROXIES", yaml: "trusted_proxies", apply: applyTrustedProxies},
	{env: "WXGATE_WEBHOOK_ALLOW_PRIVATE", yaml: "webhook_allow_private", def: "false", apply: func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		c.WebhookAllowPrivate = b
		return nil
	}},
	{env: "WXGATE_WEBHOOK_TIMEOUT", yaml: "webhook_timeout", def: "10s", apply: func(c *Config, v string) error { return setDuration(&c.WebhookTimeout, v) }},
	{env: "WXGATE_DIRECTORY_MAX_STALENESS", yaml: "directory_max_staleness", def: "30s", apply: func(c *Config, v string) error {
		if err := setDuration(&c.DirectoryMaxStaleness, v); err != nil {
			return err
		}
		if c.DirectoryMaxStaleness < time.Second {
			return errors.New("must be at least 1s (the directory is refreshed every 0.5 s)")
		}
		return nil
	}},
}

// setCount parses a cap: an integer from 1 to 100000.
func setCount(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 100000 {
		return errors.New("must be an integer from 1 to 100000")
	}
	*dst = n
	return nil
}

// applyTrustedProxies parses a comma-separated list of IPs and CIDRs.
func applyTrustedProxies(c *Config, v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if _, err := netip.ParsePrefix(f); err != nil {
			if _, err := netip.ParseAddr(f); err != nil {
				return fmt.Errorf("%q is neither an IP address nor a CIDR prefix", f)
			}
		}
		c.TrustedProxies = append(c.TrustedProxies, f)
	}
	return nil
}

// Keys lists the environment variables wxgate reads, in documentation order.
func Keys() []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.env
	}
	return out
}

// Load builds the configuration from the optional YAML file at path ("" for
// none) and the environment read through getenv; the environment wins.
// Every missing or invalid value is reported in one error, values of secret
// settings are never echoed.
func Load(getenv func(string) string, path string, need Need) (Config, error) {
	fileVals := map[string]string{}
	var problems []string
	if path != "" {
		vals, err := readFile(path)
		if err != nil {
			return Config{}, err
		}
		fileVals = vals
		known := map[string]bool{}
		for _, k := range keys {
			known[k.yaml] = true
		}
		for name := range vals {
			if !known[name] {
				problems = append(problems, fmt.Sprintf("%s: unknown key %q in the configuration file", path, name))
			}
		}
	}
	var c Config
	for _, k := range keys {
		v, from := getenv(k.env), k.env
		if v == "" {
			if fv, ok := fileVals[k.yaml]; ok && fv != "" {
				v, from = fv, path+": "+k.yaml
			}
		}
		if v == "" {
			if need&k.need != 0 {
				problems = append(problems, fmt.Sprintf("%s is required", k.env))
				continue
			}
			if k.def == "" {
				continue
			}
			v, from = k.def, k.env
		}
		if err := k.apply(&c, v); err != nil {
			if k.secret {
				problems = append(problems, fmt.Sprintf("%s is invalid: %v", from, err))
			} else {
				problems = append(problems, fmt.Sprintf("%s is invalid (%q): %v", from, v, err))
			}
		}
	}
	if len(problems) > 0 {
		return Config{}, &Error{Problems: problems}
	}
	return c, nil
}

// Error lists every configuration problem found.
type Error struct{ Problems []string }

// Error renders one paragraph naming each problem.
func (e *Error) Error() string {
	noun := "problems"
	if len(e.Problems) == 1 {
		noun = "problem"
	}
	return fmt.Sprintf("invalid configuration (%d %s): %s", len(e.Problems), noun, strings.Join(e.Problems, "; "))
}

func readFile(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("config: parse %s: %w", path, err)
	}
	out := make(map[string]string, len(doc))
	for k, v := range doc {
		if v == nil {
			continue
		}
		out[k] = fmt.Sprint(v)
	}
	return out, nil
}

// applyListen accepts host:port or :port with a numeric port, so a typo is
// reported with every other problem instead of after the migrations ran.
func applyListen(c *Config, v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("must be host:port or :port, for example :8080 or 127.0.0.1:8080")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("the port must be a number from 0 to 65535")
	}
	c.Listen = v
	return nil
}

func applyDatabaseURL(c *Config, v string) error {
	switch {
	case strings.HasPrefix(v, "sqlite:"):
		if strings.TrimPrefix(v, "sqlite:") == "" {
			return errors.New("sqlite: needs a file path, e.g. sqlite:wxgate.db")
		}
	case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"):
		if _, err := url.Parse(v); err != nil {
			return errors.New("not a valid postgres:// URL")
		}
	default:
		return errors.New("must start with postgres:// or sqlite:")
	}
	c.DatabaseURL = v
	return nil
}

func applySecretKey(c *Config, v string) error {
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(v)
	}
	if err != nil {
		return errors.New("must be base64 (generate one with: openssl rand -base64 32)")
	}
	if len(raw) != secret.MasterKeySize {
		return fmt.Errorf("must decode to %d bytes, got %d (generate one with: openssl rand -base64 32)", secret.MasterKeySize, len(raw))
	}
	c.SecretKey = raw
	return nil
}

func applyAESKey(c *Config, v string) error {
	if len(v) != 43 {
		return fmt.Errorf("must be the 43-character EncodingAESKey (got %d characters)", len(v))
	}
	if raw, err := base64.StdEncoding.DecodeString(v + "="); err != nil || len(raw) != 32 {
		return errors.New("must be base64 that decodes to 32 bytes once \"=\" is appended")
	}
	c.ComponentAESKey = secret.Value(v)
	return nil
}

func setURL(dst *string, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http(s) URL")
	}
	*dst = strings.TrimRight(v, "/")
	return nil
}

func setDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return errors.New("must be a positive duration such as 10s")
	}
	*dst = d
	return nil
}

// AppIDRule is how every refusal of a malformed appid words the rule.
const AppIDRule = "a WeChat appid is \"wx\" followed by 16 letters or digits (18 characters)"

// ValidAppID reports whether s looks like a WeChat appid: "wx" and 16
// alphanumeric characters (AppIDRule).
func ValidAppID(s string) bool {
	if len(s) != 18 || !strings.HasPrefix(s, "wx") {
		return false
	}
	for _, r := range s[2:] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// RedactURL hides the password of a database URL.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
