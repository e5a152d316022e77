package httpapi

import (
	"context"
	"time"

	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/message"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/store"
)

// PlatformDeps are one third-party platform's backend services (events,
// component token, authorization flow, authorizer tokens, proxied calls).
// A zero PlatformDeps answers every platform route with an internal error.
type PlatformDeps struct {
	// ComponentAppID is WXGATE_COMPONENT_APPID: every query is scoped to it.
	ComponentAppID string
	// Events decides about each push to the event URL (component.Events).
	Events EventReceiver
	// Messages decides about each push to an account's message URL
	// (message.Receiver).
	Messages MessageReceiver
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
	// Tickets says whether the platform's first ticket arrived (/readyz).
	Tickets TicketWaiter
	// Proxy calls the platform's accounts' proxied APIs (proxy.Service);
	// nil uses Deps.Proxy.Service.
	Proxy   Proxy
	Metrics *obs.Metrics
	Now     func() time.Time
}

// EventReceiver is the platform's event policy.
type EventReceiver interface {
	// Receive decides about a push: refuse it, apply it, acknowledge it
	// without effect, or ask WeChat to retry.
	Receive(ctx context.Context, p component.Push) component.Outcome
	// Unread refuses a push whose body could not be read (tooLarge: over
	// the size cap).
	Unread(ctx context.Context, tooLarge bool) component.Outcome
}

// MessageReceiver is the platform's policy for the accounts' message URL.
type MessageReceiver interface {
	// Receive decides about a push for the account appid: refuse it,
	// answer it (a passive reply or "success"), or ask WeChat to retry.
	Receive(ctx context.Context, appid string, p component.Push) message.Outcome
	// Unread refuses a push whose body could not be read (tooLarge: over
	// the size cap).
	Unread(ctx context.Context, tooLarge bool) message.Outcome
	// VerifyURL answers WeChat's URL verification: echostr, and whether
	// the signature is the platform's.
	VerifyURL(signature, timestamp, nonce, echostr string) (string, bool)
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
	_ EventReceiver       = (*component.Events)(nil)
	_ MessageReceiver     = (*message.Receiver)(nil)
	_ ComponentStatus     = (*component.Credentials)(nil)
	_ AuthorizerDirectory = (*store.Store)(nil)
)

func (d PlatformDeps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}
