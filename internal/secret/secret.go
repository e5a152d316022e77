// Package secret holds the types that keep secrets out of logs, errors and
// responses, the key derivation from WXGATE_SECRET_KEY, and the AES-256-GCM
// box that encrypts tokens at rest.
package secret

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
)

// redacted is what every secret prints as.
const redacted = "[REDACTED]"

// Value is a secret string (token, refresh token, ticket, key, password). It
// redacts itself when printed, logged or marshalled; Reveal returns the
// clear text for the one place that must send it.
type Value string

// Reveal returns the secret in clear. Call it only where the value leaves
// the process on purpose (an upstream request, the sealing box).
func (v Value) Reveal() string { return string(v) }

// IsZero reports whether the secret is empty.
func (v Value) IsZero() bool { return v == "" }

// Matches reports whether candidate equals the secret, in constant time:
// both are hashed first, so not even the secret's length leaks. An empty
// secret matches nothing.
func (v Value) Matches(candidate string) bool {
	if v == "" {
		return false
	}
	want := sha256.Sum256([]byte(v))
	got := sha256.Sum256([]byte(candidate))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// String redacts the value so fmt and %v never print it.
func (v Value) String() string {
	if v == "" {
		return ""
	}
	return redacted
}

// GoString redacts the value for %#v.
func (v Value) GoString() string { return v.String() }

// LogValue redacts the value for log/slog.
func (v Value) LogValue() slog.Value { return slog.StringValue(v.String()) }

// MarshalJSON redacts the value so a secret never reaches a JSON body by accident.
func (v Value) MarshalJSON() ([]byte, error) { return json.Marshal(v.String()) }

// MarshalText redacts the value for text encoders (YAML, form encoders).
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }
