// Package tenant is who may call what: tenant API keys (JWT), the in-memory
// directory of tenants, keys and bindings that authenticates a request
// without a database query, per-tenant rate limits and usage counting.
package tenant

import "slices"

// Principal is an authenticated tenant key.
type Principal struct {
	TenantID string
	// ComponentAppID is the platform the tenant belongs to: its calls go
	// to that platform's accounts only.
	ComponentAppID string
	KID            string
	// AppIDs restricts the key to these accounts; empty means every account
	// bound to the tenant.
	AppIDs []string
}

// Restricts reports whether the key may NOT call appid because of its own
// appid restriction (binding is checked separately).
func (p Principal) Restricts(appid string) bool {
	return len(p.AppIDs) > 0 && !slices.Contains(p.AppIDs, appid)
}

// MayAuthorize reports whether the key may start an authorization. Only an
// unrestricted key may: the account it brings in is bound to the whole
// tenant, so a key limited to some accounts would otherwise widen what its
// tenant holds (and could name any biz_appid).
func (p Principal) MayAuthorize() bool { return len(p.AppIDs) == 0 }
