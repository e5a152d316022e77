// Package tenant is who may call what: tenant API keys (JWT), the in-memory
// directory of tenants, keys and bindings that authenticates a request
// without a database query, per-tenant rate limits and usage counting.
package tenant

import "slices"

// Principal is an authenticated tenant key.
type Principal struct {
	TenantID string
	KID      string
	// AppIDs restricts the key to these accounts; empty means every account
	// bound to the tenant.
	AppIDs []string
}

// Restricts reports whether the key may NOT call appid because of its own
// appid restriction (binding is checked separately).
func (p Principal) Restricts(appid string) bool {
	return len(p.AppIDs) > 0 && !slices.Contains(p.AppIDs, appid)
}
