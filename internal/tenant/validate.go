package tenant

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The bounds of what an operator may set on tenants and keys, shared by the
// admin API and the console so both refuse the same input with the same
// words.
const (
	// MaxNameLength caps tenant and key names, in characters.
	MaxNameLength = 100
	// MaxRateLimit caps a tenant's rate-limit override (requests per second).
	MaxRateLimit = 100_000
	// MaxRateBurst caps a tenant's burst override.
	MaxRateBurst = 1_000_000
	// MaxKeyTTL caps a key's lifetime (about ten years).
	MaxKeyTTL = 10 * 366 * 24 * time.Hour
	// MaxKeyAppIDs caps the accounts a key may be restricted to.
	MaxKeyAppIDs = 100
)

// NameProblem checks a tenant or key name (already trimmed) and returns
// what is wrong with it, or "" if nothing is.
func NameProblem(name string, required bool) string {
	switch {
	case name == "" && required:
		return "is required"
	case utf8.RuneCountInString(name) > MaxNameLength:
		return "must be at most 100 characters"
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		return "must not contain control characters"
	}
	return ""
}
