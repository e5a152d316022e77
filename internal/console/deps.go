package console

import (
	"context"
	"time"

	"github.com/wxgate/wxgate/internal/authorizer"
	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/quota"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/tenant"
	"github.com/wxgate/wxgate/internal/webhook"
)

// TenantAdmin is the operator's side of tenants (tenant.Admin). Errors:
// not_found for an unknown tenant, key or account; conflict for a taken
// tenant name.
type TenantAdmin interface {
	// CreateTenant creates a tenant on the platform componentAppID (""
	// the default one); invalid_argument for a platform not served.
	CreateTenant(ctx context.Context, componentAppID, name string, with ...func(*store.Tenant)) (store.Tenant, error)
	GetTenant(ctx context.Context, id string) (store.Tenant, error)
	ListTenants(ctx context.Context) ([]store.Tenant, error)
	UpdateTenant(ctx context.Context, id string, fn func(*store.Tenant) error) (store.Tenant, error)
	DeleteTenant(ctx context.Context, id string) error
	// IssueKey returns the key's metadata and the key itself, shown once.
	IssueKey(ctx context.Context, tenantID string, req tenant.KeyRequest) (store.Key, secret.Value, error)
	ListKeys(ctx context.Context, tenantID string) ([]store.Key, error)
	RevokeKey(ctx context.Context, kid string) error
	Bind(ctx context.Context, tenantID, appid string) error
	// ApproveBinding makes a binding an authorization left waiting for
	// approval a bound one; not_found if the tenant has no binding to appid.
	ApproveBinding(ctx context.Context, tenantID, appid string) error
	// Unbind removes a binding, bound or waiting for approval.
	Unbind(ctx context.Context, tenantID, appid string) error
	// SetDailyLimit caps the tenant's calls per proxied API and Beijing day
	// on the account (0 removes the cap); not_found if not bound.
	SetDailyLimit(ctx context.Context, tenantID, appid string, dailyLimit int64) (store.Binding, error)
	// Usage returns the tenant's hourly call counts in [from, to).
	Usage(ctx context.Context, tenantID string, from, to time.Time) ([]store.UsageRow, error)
}

// Webhooks reads tenants' webhooks and their deliveries (webhook.Service).
type Webhooks interface {
	// Get returns the tenant's webhook without its secrets; not_found if
	// it has none.
	Get(ctx context.Context, tenantID string) (store.Webhook, error)
	// Deliveries lists the tenant's deliveries, newest first, at most limit.
	Deliveries(ctx context.Context, tenantID, status string, limit int) ([]store.WebhookDelivery, error)
	// Redeliver queues the event of the tenant's delivery id again (same
	// event id); not_found for an unknown or another tenant's delivery.
	Redeliver(ctx context.Context, tenantID, id string) (store.WebhookDelivery, error)
}

// WebhookQueue reads the state of webhook deliveries across tenants (the
// store): the queue's depth and age, and each webhook's pending and failed
// deliveries.
type WebhookQueue interface {
	WebhookQueueStats(ctx context.Context) (store.WebhookQueue, error)
	WebhookSummaries(ctx context.Context, componentAppID string) ([]store.WebhookSummary, error)
}

// Directory is this replica's in-memory view of tenants and bindings
// (tenant.Directory): the console reads names and bindings from it, not
// from the store, so listing thousands of accounts costs no query.
type Directory interface {
	// BoundAppIDs lists the appids bound to tenantID, sorted.
	BoundAppIDs(tenantID string) []string
	// BoundTenants lists the ids of the platform's tenants its account
	// appid is bound to, sorted.
	BoundTenants(componentAppID, appid string) []string
	// TenantName returns the tenant's name and whether it exists.
	TenantName(tenantID string) (string, bool)
	// DailyLimit is the operator's cap on tenantID's calls per API and
	// day on appid (0: none).
	DailyLimit(tenantID, appid string) int64
	// ComponentOf returns the appid of the platform the tenant belongs to
	// and whether the tenant exists.
	ComponentOf(tenantID string) (string, bool)
}

// PlatformView is one third-party platform of the deployment as the
// console uses it: its appid and its own services on this replica.
type PlatformView struct {
	// AppID is the platform's component appid; Default marks the one
	// configured by WXGATE_COMPONENT_*.
	AppID   string
	Default bool

	Authorizers  Authorizers
	Flow         AuthorizationFlow
	Component    ComponentStatus
	Quotas       Quotas
	QuotaClearer QuotaClearer
}

// Platforms are the third-party platforms this replica runs (the platform
// registry), read from memory: a platform registered on another replica a
// moment ago appears once this replica has learned of it.
type Platforms interface {
	// List returns every running platform, the default first, then by
	// registration.
	List() []PlatformView
	// Get returns one running platform; false if this replica does not
	// run it.
	Get(appid string) (PlatformView, bool)
	// DefaultAppID is the default platform's appid.
	DefaultAppID() string
}

// Authorizers is the authorizer manager (authorizer.Manager): its
// in-memory copy of every account and forced token refreshes.
type Authorizers interface {
	// List returns every account (order unspecified).
	List() []store.Authorizer
	// Get returns one account from memory; false if unknown here.
	Get(appid string) (store.Authorizer, bool)
	// ForceRefresh renews the account's token now. Errors: not_found,
	// authorizer_unauthorized, upstream_*, component_not_ready.
	ForceRefresh(ctx context.Context, appid string) (store.Authorizer, error)
}

// AuthorizationFlow starts authorizations (component.Flow).
type AuthorizationFlow interface {
	// CreateAuthorization starts a session for tenantID. Errors:
	// invalid_argument, component_not_ready, upstream_*.
	CreateAuthorization(ctx context.Context, tenantID string, req component.AuthorizationRequest) (component.Authorization, error)
}

// ComponentStatus reports the component's ticket and token
// (component.Credentials).
type ComponentStatus interface {
	Status(ctx context.Context) (component.Status, error)
}

// CallCounts reads the deployment's proxied calls per minute (the store).
type CallCounts interface {
	CallMinutes(ctx context.Context, componentAppID string, from, to time.Time) ([]store.CallMinute, error)
}

// Quotas is this replica's view of WeChat's daily quotas (quota.Keeper),
// read from memory.
type Quotas interface {
	// Known lists every account and API whose daily limit is known, with
	// today's use.
	Known() []quota.AccountQuota
	// Status is one account's quota of one API (DailyLimit 0: not learned).
	Status(appid, api, cgiPath string) (quota.Status, bool)
	// TenantCalls is tenantID's calls of api on appid today.
	TenantCalls(tenantID, appid, api string) int64
}

// QuotaClearer clears an account's daily quotas with WeChat (proxy.Service).
type QuotaClearer interface {
	// ClearQuota calls clear_quota and returns the fresh quotas.
	// rate_limited (WeChat's 48006) once the month's 10 clears are used;
	// not_found, authorizer_unauthorized, upstream_* otherwise.
	ClearQuota(ctx context.Context, appid string) ([]quota.Status, error)
}

// PendingBindings reads the bindings that wait for the operator's approval
// (the store): an account authorized by a tenant while bound to another.
// The directory holds only bound ones, and there are few pending ones.
type PendingBindings interface {
	PendingBindings(ctx context.Context, componentAppID string) ([]store.Binding, error)
}

// SessionStore keeps console sessions and one-time sign-in codes by the
// digest of their token (the store), so every replica knows them.
type SessionStore interface {
	CreateConsoleToken(ctx context.Context, t store.ConsoleToken) error
	// GetConsoleToken answers not_found for an unknown digest.
	GetConsoleToken(ctx context.Context, kind, tokenHash string) (store.ConsoleToken, error)
	TouchConsoleToken(ctx context.Context, tokenHash string, at time.Time) error
	// ConsumeConsoleToken deletes and returns an unexpired row; of several
	// callers exactly one gets it, the others not_found.
	ConsumeConsoleToken(ctx context.Context, kind, tokenHash string, now time.Time) (store.ConsoleToken, error)
	DeleteConsoleToken(ctx context.Context, tokenHash string) error
}

var (
	_ TenantAdmin       = (*tenant.Admin)(nil)
	_ Directory         = (*tenant.Directory)(nil)
	_ Authorizers       = (*authorizer.Manager)(nil)
	_ AuthorizationFlow = (*component.Flow)(nil)
	_ ComponentStatus   = (*component.Credentials)(nil)
	_ CallCounts        = (*store.Store)(nil)
	_ PendingBindings   = (*store.Store)(nil)
	_ WebhookQueue      = (*store.Store)(nil)
	_ Quotas            = (*quota.Keeper)(nil)
	_ QuotaClearer      = (*proxy.Service)(nil)
	_ Webhooks          = (*webhook.Service)(nil)
	_ SessionStore      = (*store.Store)(nil)
)
