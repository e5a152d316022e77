package httpapi

import (
	"context"
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/tenant"
)

// TenantDeps are the tenant, key and admin services (issue: tenants and keys).
// The request-path services (Keys, Bindings, Limiter, Usage) answer from
// memory; only the admin services touch the store.
type TenantDeps struct {
	// AdminToken is WXGATE_ADMIN_TOKEN; an empty one refuses every admin call.
	AdminToken secret.Value
	// Now is the clock (usage ranges default to the last 24 hours).
	Now func() time.Time

	Keys     KeyAuthenticator
	Bindings BindingChecker
	Limiter  TenantRateLimiter
	Usage    UsageRecorder

	Tenants      TenantRegistry
	KeyAdmin     KeyManager
	BindingAdmin BindingManager
	UsageReport  UsageReader
}

// KeyAuthenticator verifies tenant keys; a known key costs no store query.
type KeyAuthenticator interface {
	// Authenticate returns the principal of a valid key. Every failure of
	// the key is unauthenticated with the same message;
	// tenant.FailureReason tells why, for logs and metrics only. A validly
	// signed key unknown to this replica is looked up in the store first:
	// store_unavailable if that cannot be done.
	Authenticate(ctx context.Context, raw string) (tenant.Principal, error)
}

// BindingChecker answers whether a tenant may see and call an account:
// from memory, except for a binding this replica does not know yet.
type BindingChecker interface {
	// Authorize reports whether appid is bound to tenantID; false for an
	// unknown account and for another tenant's alike. A binding missing from
	// memory is looked up in the store first (it may have been made through
	// another replica a moment ago); store_unavailable if that cannot be
	// done.
	Authorize(ctx context.Context, tenantID, appid string) (bool, error)
	// BoundAppIDs lists the appids bound to tenantID, sorted.
	BoundAppIDs(tenantID string) []string
	// CatchUp brings the bindings up to what the store holds (one coalesced
	// revision read), so a listing shows what another replica just wrote.
	CatchUp(ctx context.Context) error
}

// TenantRateLimiter is the per-tenant token bucket (per replica).
type TenantRateLimiter interface {
	// Allow takes a token, or answers false and how long until one is free.
	Allow(tenantID string) (bool, time.Duration)
}

// UsageRecorder counts proxied calls for billing and abuse detection.
type UsageRecorder interface {
	// Record counts one call of api (from the API table) by tenantID on
	// appid with outcome ("ok" or an error code slug).
	Record(tenantID, appid, api, outcome string)
}

// TenantRegistry manages the tenants of every platform. Errors: not_found
// for an unknown id, conflict for a name taken on the tenant's platform.
type TenantRegistry interface {
	// CreateTenant creates a tenant on the platform componentAppID (""
	// the default one); invalid_argument (field component_appid) for a
	// platform the gateway does not serve.
	CreateTenant(ctx context.Context, componentAppID, name string, with ...func(*store.Tenant)) (store.Tenant, error)
	// ListTenants lists every platform's tenants by creation time.
	ListTenants(ctx context.Context) ([]store.Tenant, error)
	UpdateTenant(ctx context.Context, id string, fn func(*store.Tenant) error) (store.Tenant, error)
	DeleteTenant(ctx context.Context, id string) error
}

// KeyManager issues, lists and revokes tenant keys. Errors: not_found for
// an unknown tenant or kid.
type KeyManager interface {
	// IssueKey returns the key's metadata and the key itself, shown once.
	IssueKey(ctx context.Context, tenantID string, req tenant.KeyRequest) (store.Key, secret.Value, error)
	ListKeys(ctx context.Context, tenantID string) ([]store.Key, error)
	RevokeKey(ctx context.Context, kid string) error
}

// BindingManager binds accounts to tenants. Errors: not_found if the tenant
// or the account is unknown (or, for Unbind, not bound).
type BindingManager interface {
	Bind(ctx context.Context, tenantID, appid string) error
	Unbind(ctx context.Context, tenantID, appid string) error
	// ApproveBinding makes a pending binding bound; not_found if the
	// tenant is unknown or has no binding to the account.
	ApproveBinding(ctx context.Context, tenantID, appid string) error
	// SetDailyLimit caps the tenant's calls per proxied API and Beijing day
	// on the account (0 removes the cap); not_found if not bound,
	// invalid_argument for a negative limit.
	SetDailyLimit(ctx context.Context, tenantID, appid string, dailyLimit int64) (store.Binding, error)
}

// UsageReader reads a tenant's call counts. Errors: not_found for an
// unknown tenant.
type UsageReader interface {
	Usage(ctx context.Context, tenantID string, from, to time.Time) ([]store.UsageRow, error)
}

func notWired(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) { writeError(c, log, errNotWired) }
}
