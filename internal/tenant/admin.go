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
// and conflict for a duplicate tenant name.
type AdminStore interface {
	CreateTenant(ctx context.Context, componentAppID, name string, with ...func(*store.Tenant)) (store.Tenant, error)
	GetTenant(ctx context.Context, componentAppID, id string) (store.Tenant, error)
	ListTenants(ctx context.Context, componentAppID string) ([]store.Tenant, error)
	UpdateTenant(ctx context.Context, componentAppID, id string, fn func(*store.Tenant) error) (store.Tenant, error)
	DeleteTenant(ctx context.Context, componentAppID, id string) error
	CreateKey(ctx context.Context, k store.Key) (store.Key, error)
	ListKeys(ctx context.Context, tenantID string) ([]store.Key, error)
	RevokeKey(ctx context.Context, kid string) error
	Bind(ctx context.Context, componentAppID, tenantID, appid string) error
	Unbind(ctx context.Context, componentAppID, tenantID, appid string) error
	ApproveBinding(ctx context.Context, componentAppID, tenantID, appid string) error
	SetBindingLimit(ctx context.Context, componentAppID, tenantID, appid string, dailyLimit int64) (store.Binding, error)
	Usage(ctx context.Context, tenantID string, from, to time.Time) ([]store.UsageRow, error)
}

// Admin is the operator's side of tenants: tenants, keys, bindings and
// usage, scoped to one component. Each write is followed by a reload of
// this replica's directory, so the change applies here at once and on the
// other replicas at their next poll.
type Admin struct {
	st             AdminStore
	componentAppID string
	issuer         *Issuer
	dir            *Directory
	usage          *Usage
	now            func() time.Time
	log            *slog.Logger
}

// NewAdmin returns the admin operations. usage may be nil.
func NewAdmin(st AdminStore, componentAppID string, issuer *Issuer, dir *Directory, usage *Usage, now func() time.Time, log *slog.Logger) *Admin {
	return &Admin{st: st, componentAppID: componentAppID, issuer: issuer, dir: dir, usage: usage, now: now, log: log}
}

// reload refreshes this replica's directory after a write. The write has
// succeeded either way: if the reload fails the poller catches up.
func (a *Admin) reload(ctx context.Context) {
	if err := a.dir.Reload(ctx); err != nil {
		a.log.WarnContext(ctx, "tenant: reload after write failed; the poller will catch up", "err", err.Error())
	}
}

// CreateTenant creates a tenant; conflict if the name is taken. Each of
// with sets more of its fields (as UpdateTenant's fn would).
func (a *Admin) CreateTenant(ctx context.Context, name string, with ...func(*store.Tenant)) (store.Tenant, error) {
	t, err := a.st.CreateTenant(ctx, a.componentAppID, name, with...)
	if err != nil {
		return store.Tenant{}, err
	}
	a.reload(ctx)
	return t, nil
}

// GetTenant returns one tenant; not_found if unknown.
func (a *Admin) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	return a.st.GetTenant(ctx, a.componentAppID, id)
}

// ListTenants returns every tenant by creation time.
func (a *Admin) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	return a.st.ListTenants(ctx, a.componentAppID)
}

// UpdateTenant applies fn to the tenant (name, rate-limit override);
// not_found if unknown, conflict if renamed to a taken name.
func (a *Admin) UpdateTenant(ctx context.Context, id string, fn func(*store.Tenant) error) (store.Tenant, error) {
	t, err := a.st.UpdateTenant(ctx, a.componentAppID, id, fn)
	if err != nil {
		return store.Tenant{}, err
	}
	a.reload(ctx)
	return t, nil
}

// DeleteTenant deletes the tenant with its keys and bindings; its keys are
// refused from the next poll on every replica. not_found if unknown.
func (a *Admin) DeleteTenant(ctx context.Context, id string) error {
	if err := a.st.DeleteTenant(ctx, a.componentAppID, id); err != nil {
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
	if _, err := a.st.GetTenant(ctx, a.componentAppID, tenantID); err != nil {
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
	if _, err := a.st.GetTenant(ctx, a.componentAppID, tenantID); err != nil {
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

// Bind lets the tenant see and call the authorizer; not_found if either is
// unknown. Binding twice is a no-op.
func (a *Admin) Bind(ctx context.Context, tenantID, appid string) error {
	if err := a.st.Bind(ctx, a.componentAppID, tenantID, appid); err != nil {
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
	if _, err := a.st.GetTenant(ctx, a.componentAppID, tenantID); err != nil {
		return err
	}
	if err := a.st.ApproveBinding(ctx, a.componentAppID, tenantID, appid); err != nil {
		return err
	}
	a.reload(ctx)
	return nil
}

// Unbind removes the binding (a no-op if there was none); not_found if the
// tenant is unknown.
func (a *Admin) Unbind(ctx context.Context, tenantID, appid string) error {
	if _, err := a.st.GetTenant(ctx, a.componentAppID, tenantID); err != nil {
		return err
	}
	if err := a.st.Unbind(ctx, a.componentAppID, tenantID, appid); err != nil {
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
	if _, err := a.st.GetTenant(ctx, a.componentAppID, tenantID); err != nil {
		return store.Binding{}, err
	}
	b, err := a.st.SetBindingLimit(ctx, a.componentAppID, tenantID, appid, dailyLimit)
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
	if _, err := a.st.GetTenant(ctx, a.componentAppID, tenantID); err != nil {
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
