package tenant

import (
	"fmt"
	"net/netip"
	"slices"
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
	// MaxReturnURLHosts caps the return_url hosts of a tenant.
	MaxReturnURLHosts = 50
)

// ReturnURLHostsProblem checks a tenant's return_url hosts and returns them
// normalised (lowercase, sorted, without duplicates) with what is wrong, or
// "" if nothing is. A host is a DNS name or an IP address, without scheme,
// port, path, user or wildcard.
func ReturnURLHostsProblem(hosts []string) ([]string, string) {
	if len(hosts) > MaxReturnURLHosts {
		return nil, "must list at most 50 hosts"
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if !validHost(h) {
			return nil, fmt.Sprintf("%q is not a host name: give names such as app.example.com, without scheme, port or path", h)
		}
		out = append(out, h)
	}
	slices.Sort(out)
	return slices.Compact(out), ""
}

// validHost accepts a DNS name (letters, digits, hyphens, dots; labels of
// 1 to 63 characters, 253 in all) or an IP address.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

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
