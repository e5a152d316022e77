package tenant

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
)

// AdminStore is the part of the store the admin operations write through.
// Every method answers not_found for an unknown tenant, key or authorizer
// and conflict for a duplicate tenant name (names are unique per
// platform). Tenants are found by id whatever their platform; the binding
// methods use the tenant's own platform, so an account of another platform
// is not_found.
type AdminStore interface {
	CreateTenant(ctx context.Context, componentAppID, name string, with ...func(*store.Tenant)) (store.Tenant, error)
	GetTenant(ctx context.Context, id string) (store.Tenant, error)
	// ListTenants lists the platform's tenants, every platform's for "".
	ListTenants(ctx context.Context, componentAppID string) ([]store.Tenant, error)
	UpdateTenant(ctx context.Context, id string, fn func(*store.Tenant) error) (store.Tenant, error)
	DeleteTenant(ctx context.Context, id string) error
	CreateKey(ctx context.Context, k store.Key) (store.Key, error)
	ListKeys(ctx context.Context, tenantID string) ([]store.Key, error)
	RevokeKey(ctx context.Context, kid string) error
	Bind(ctx context.Context, tenantID, appid string) error
	Unbind(ctx context.Context, tenantID, appid string) error
	ApproveBinding(ctx context.Context, tenantID, appid string) error
	SetBindingLimit(ctx context.Context, tenantID, appid string, dailyLimit int64) (store.Binding, error)
	Usage(ctx context.Context, tenantID string, from, to time.Time) ([]store.UsageRow, error)
}

// Platforms tells which third-party platforms the deployment serves besides
// the default one.
type Platforms interface {
	// HasPlatform reports whether componentAppID is a registered platform.
	HasPlatform(ctx context.Context, componentAppID string) (bool, error)
}

// Admin is the operator's side of tenants: tenants, keys, bindings and
// usage, across the deployment's platforms. A tenant is created on one
// platform and stays there; every other operation finds it by id, and
// binds it to its own platform's accounts only. Each write is followed by
// a reload of this replica's directory, so the change applies here at once
// and on the other replicas at their next poll.
type Admin struct {
	st             AdminStore
	componentAppID string // the default platform
	platforms      Platforms
	issuer         *Issuer
	dir            *Directory
	usage          *Usage
	now            func() time.Time
	log            *slog.Logger
}

// NewAdmin returns the admin operations; componentAppID is the default
// platform. platforms may be nil (only the default platform exists), and
// so may usage.
func NewAdmin(st AdminStore, componentAppID string, platforms Platforms, issuer *Issuer, dir *Directory, usage *Usage, now func() time.Time, log *slog.Logger) *Admin {
	return &Admin{st: st, componentAppID: componentAppID, platforms: platforms, issuer: issuer, dir: dir, usage: usage, now: now, log: log}
}

// reload refreshes this replica's directory after a write. The write has
// succeeded either way: if the reload fails the poller catches up.
func (a *Admin) reload(ctx context.Context) {
	if err := a.dir.Reload(ctx); err != nil {
		a.log.WarnContext(ctx, "tenant: reload after write failed; the poller will catch up", "err", err.Error())
	}
}

// errUnknownPlatform answers a tenant created on a platform the deployment
// does not serve.
var errUnknownPlatform = errs.Invalid("component_appid", "is not a platform this gateway serves")

// platform resolves the platform a new tenant is created on: "" is the
// default one; any other must be registered (invalid_argument otherwise).
func (a *Admin) platform(ctx context.Context, componentAppID string) (string, error) {
	if componentAppID == "" || componentAppID == a.componentAppID {
		return a.componentAppID, nil
	}
	if a.platforms == nil {
		return "", errUnknownPlatform
	}
	ok, err := a.platforms.HasPlatform(ctx, componentAppID)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errUnknownPlatform
	}
	return componentAppID, nil
}

// CreateTenant creates a tenant on the platform componentAppID ("": the
// default platform); invalid_argument (field component_appid) if the
// deployment does not serve that platform, conflict if the name is taken
// on it. Each of with sets more of its fields (as UpdateTenant's fn
// would).
func (a *Admin) CreateTenant(ctx context.Context, componentAppID, name string, with ...func(*store.Tenant)) (store.Tenant, error) {
	platform, err := a.platform(ctx, componentAppID)
	if err != nil {
		return store.Tenant{}, err
	}
	if platform != a.componentAppID {
		with = append(with, store.OnRegisteredPlatform)
	}
	t, err := a.st.CreateTenant(ctx, platform, name, with...)
	if err != nil {
		return store.Tenant{}, err
	}
	a.reload(ctx)
	return t, nil
}

// GetTenant returns one tenant, of any platform; not_found if unknown.
func (a *Admin) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	return a.st.GetTenant(ctx, id)
}

// ListTenants returns every tenant of every platform by creation time.
func (a *Admin) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	return a.st.ListTenants(ctx, "")
}

// UpdateTenant applies fn to the tenant (name, rate-limit override);
// not_found if unknown, conflict if renamed to a taken name.
func (a *Admin) UpdateTenant(ctx context.Context, id string, fn func(*store.Tenant) error) (store.Tenant, error) {
	t, err := a.st.UpdateTenant(ctx, id, fn)
	if err != nil {
		return store.Tenant{}, err
	}
	a.reload(ctx)
	return t, nil
}

// DeleteTenant deletes the tenant with its keys and bindings; its keys are
// refused from the next poll on every replica. not_found if unknown.
func (a *Admin) DeleteTenant(ctx context.Context, id string) error {
	if err := a.st.DeleteTenant(ctx, id); err != nil {
		return err
	}
	a.reload(ctx)
	return nil
}

// KeyRequest describes a key to issue.
type KeyRequest struct {
	Name string
	// TTL is the key's lifetime; 0 means it does not expire.
	TTL time.Duration
	// AppIDs restricts the key to these accounts; empty means every account
	// bound to the tenant.
	AppIDs []string
}

// IssueKey creates a key for the tenant and returns its metadata and the
// key itself, which is not stored anywhere and cannot be shown again.
// not_found if the tenant is unknown.
func (a *Admin) IssueKey(ctx context.Context, tenantID string, req KeyRequest) (store.Key, secret.Value, error) {
	if req.TTL < 0 {
		return store.Key{}, "", errs.E(errs.InvalidArgument, "ttl must not be negative")
	}
	if _, err := a.st.GetTenant(ctx, tenantID); err != nil {
		return store.Key{}, "", err
	}
	appids := slices.Clone(req.AppIDs)
	slices.Sort(appids)
	appids = slices.Compact(appids)
	// JWT times have whole seconds; keep the metadata identical to the claims.
	now := a.now().UTC().Truncate(time.Second)
	k := store.Key{KID: newKID(), TenantID: tenantID, Name: req.Name, AppIDs: appids, CreatedAt: now}
	if req.TTL > 0 {
		exp := now.Add(req.TTL).Truncate(time.Second)
		k.ExpiresAt = &exp
	}
	stored, err := a.st.CreateKey(ctx, k)
	if err != nil {
		return store.Key{}, "", err
	}
	raw, err := a.issuer.Sign(stored)
	if err != nil {
		return store.Key{}, "", err
	}
	a.reload(ctx)
	return stored, raw, nil
}

// ListKeys returns the tenant's keys, newest first; not_found if the tenant
// is unknown.
func (a *Admin) ListKeys(ctx context.Context, tenantID string) ([]store.Key, error) {
	if _, err := a.st.GetTenant(ctx, tenantID); err != nil {
		return nil, err
	}
	return a.st.ListKeys(ctx, tenantID)
}

// RevokeKey revokes a key (idempotently); every replica refuses it from its
// next poll. not_found if the kid is unknown.
func (a *Admin) RevokeKey(ctx context.Context, kid string) error {
	if err := a.st.RevokeKey(ctx, kid); err != nil {
		return err
	}
	a.reload(ctx)
	return nil
}

// Bind lets the tenant see and call its platform's authorizer appid;
// not_found if either is unknown (an account of another platform is
// unknown to the tenant). Binding twice is a no-op.
func (a *Admin) Bind(ctx context.Context, tenantID, appid string) error {
	if err := a.st.Bind(ctx, tenantID, appid); err != nil {
		return err
	}
	a.reload(ctx)
	return nil
}

// ApproveBinding lets the tenant see and call an account its authorization
// left waiting for approval (the account was bound to another tenant);
// not_found if the tenant has no binding to appid. Approving a bound
// account changes nothing.
func (a *Admin) ApproveBinding(ctx context.Context, tenantID, appid string) error {
	if _, err := a.st.GetTenant(ctx, tenantID); err != nil {
		return err
	}
	if err := a.st.ApproveBinding(ctx, tenantID, appid); err != nil {
		return err
	}
	a.reload(ctx)
	return nil
}

// Unbind removes the binding (a no-op if there was none); not_found if the
// tenant is unknown.
func (a *Admin) Unbind(ctx context.Context, tenantID, appid string) error {
	if _, err := a.st.GetTenant(ctx, tenantID); err != nil {
		return err
	}
	if err := a.st.Unbind(ctx, tenantID, appid); err != nil {
		return err
	}
	a.reload(ctx)
	return nil
}

// SetDailyLimit caps the tenant's calls per proxied API and Beijing day on
// the account (0 removes the cap) and returns the binding; not_found if the
// tenant is unknown or the account is not bound to it. Every replica
// applies the cap from its next directory poll.
func (a *Admin) SetDailyLimit(ctx context.Context, tenantID, appid string, dailyLimit int64) (store.Binding, error) {
	if dailyLimit < 0 {
		return store.Binding{}, errs.Invalid("daily_limit", "daily_limit must be 0 (no cap) or positive")
	}
	if _, err := a.st.GetTenant(ctx, tenantID); err != nil {
		return store.Binding{}, err
	}
	b, err := a.st.SetBindingLimit(ctx, tenantID, appid, dailyLimit)
	if err != nil {
		return store.Binding{}, err
	}
	a.reload(ctx)
	return b, nil
}

// Usage returns the tenant's call counts for the hours in [from, to), after
// writing this replica's unflushed counts (other replicas' appear at their
// next flush). not_found if the tenant is unknown.
func (a *Admin) Usage(ctx context.Context, tenantID string, from, to time.Time) ([]store.UsageRow, error) {
	if _, err := a.st.GetTenant(ctx, tenantID); err != nil {
		return nil, err
	}
	if a.usage != nil {
		if err := a.usage.Flush(ctx); err != nil {
			a.log.WarnContext(ctx, "tenant: usage flush before read failed", "err", err.Error())
		}
	}
	return a.st.Usage(ctx, tenantID, from, to)
}

// kidEncoding spells kids in lowercase base32 without padding.
var kidEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newKID returns a fresh key id: "k_" and 128 random bits.
func newKID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "k_" + strings.ToLower(kidEncoding.EncodeToString(b))
}
