package httpapi

import (
	"context"
	"time"

	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// PlatformDeps are the platform backend services (events, component token,
// authorization flow, authorizer tokens). A zero PlatformDeps answers every
// platform route with an internal error.
type PlatformDeps struct {
	// ComponentAppID is WXGATE_COMPONENT_APPID: every query is scoped to it.
	ComponentAppID string
	// Crypter verifies and decrypts the pushed events.
	Crypter *wxcrypt.Crypter
	// Events applies a decrypted event (component.Flow).
	Events EventHandler
	// Receipts makes replayed events harmless (the store).
	Receipts EventReceipts
	// ReplayWindow, if set, is how long receipts are kept: a push whose
	// signed timestamp is older is acknowledged and not applied.
	ReplayWindow time.Duration
	// Flow starts and completes authorizations (component.Flow).
	Flow AuthorizationFlow
	// Directory lists authorizers, tenant-scoped or not (the store).
	Directory AuthorizerDirectory
	// Authorizers is the authorizer manager (authorizer.Manager): its
	// in-memory copy of every account, which the tenant routes read instead
	// of the store, and forced token refreshes.
	Authorizers Authorizers
	// Component reports the ticket and component token (component.Credentials).
	Component ComponentStatus
	Metrics   *obs.Metrics
	Now       func() time.Time
}

// EventHandler applies a verified, decrypted platform event. An error
// means the event must be handled again when WeChat retries it.
type EventHandler interface {
	HandleEvent(ctx context.Context, ev wxcrypt.Event) error
}

// EventReceipts remembers handled events by digest.
type EventReceipts interface {
	// EventSeen reports whether digest was recorded as handled.
	EventSeen(ctx context.Context, digest string) (bool, error)
	// RecordEvent records digest as handled (idempotent).
	RecordEvent(ctx context.Context, digest string) error
}

// AuthorizationFlow is the authorization flow (docs/api.md, "WeChat-facing endpoints" and "POST /v1/authorizations").
type AuthorizationFlow interface {
	// CreateAuthorization starts a session for tenantID. Errors:
	// invalid_argument, component_not_ready, upstream_*; internal for an
	// empty tenantID.
	CreateAuthorization(ctx context.Context, tenantID string, req component.AuthorizationRequest) (component.Authorization, error)
	// Callback completes a session with WeChat's auth_code. An error with
	// an empty ReturnURL means the session is missing, unknown or expired.
	Callback(ctx context.Context, sessionID, authCode string) (component.CallbackResult, error)
}

// AuthorizerDirectory reads authorizers. TenantAuthorizer is scoped to the
// tenant in the query and fails closed on an empty tenant id; an authorizer
// bound to another tenant is not_found.
type AuthorizerDirectory interface {
	TenantAuthorizer(ctx context.Context, componentAppID, tenantID, appid string) (store.Authorizer, error)
	ListAuthorizers(ctx context.Context, componentAppID string) ([]store.Authorizer, error)
	ListBindings(ctx context.Context, componentAppID string) ([]store.Binding, error)
}

// Authorizers is the authorizer manager as the platform routes use it.
type Authorizers interface {
	// Get reads an authorizer from memory (false when this replica has not
	// loaded it yet).
	Get(appid string) (store.Authorizer, bool)
	// ForceRefresh refreshes the account's token now. Errors: not_found,
	// authorizer_unauthorized, upstream_*, component_not_ready.
	ForceRefresh(ctx context.Context, appid string) (store.Authorizer, error)
}

// ComponentStatus reports the component's ticket and token.
type ComponentStatus interface {
	Status(ctx context.Context) (component.Status, error)
}

var (
	_ AuthorizationFlow   = (*component.Flow)(nil)
	_ EventHandler        = (*component.Flow)(nil)
	_ ComponentStatus     = (*component.Credentials)(nil)
	_ EventReceipts       = (*store.Store)(nil)
	_ AuthorizerDirectory = (*store.Store)(nil)
)

func (d PlatformDeps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}
