package tenant

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Store is everything the tenant package needs of the store.
type Store interface {
	SnapshotStore
	AdminStore
	UsageStore
	TouchStore
}

// Options configures New.
type Options struct {
	Store Store
	// ComponentAppID is the default platform: tenants created without
	// naming one belong to it.
	ComponentAppID string
	// Platforms tells which other platforms tenants may be created on
	// (nil: only the default one).
	Platforms Platforms
	// MasterKey is the decoded WXGATE_SECRET_KEY; keys are signed with a
	// sub-key derived from it.
	MasterKey []byte
	// DefaultRate (requests per second) and DefaultBurst are the per-tenant
	// rate limit unless a tenant has an override.
	DefaultRate  float64
	DefaultBurst int
	Now          func() time.Time
	Logger       *slog.Logger
	// Poll, UsageFlush and TouchFlush override the default intervals.
	Poll, UsageFlush, TouchFlush time.Duration
	// MaxStaleness bounds how long the directory trusts its last snapshot
	// while the store cannot be reached (0: DefaultMaxStaleness; negative:
	// no bound).
	MaxStaleness time.Duration
	// OnLookup, if set, is told the result of each directory lookup.
	OnLookup func(result string)
}

// Service bundles the tenant services of one replica, for the tenants of
// every platform the deployment serves.
type Service struct {
	Directory *Directory
	Verifier  *Verifier
	Issuer    *Issuer
	Limiter   *Limiter
	Usage     *Usage
	LastUsed  *LastUsed
	Admin     *Admin
}

// New builds the services and loads the directory once, so the replica can
// authenticate as soon as it serves.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.Store == nil || o.ComponentAppID == "" {
		return nil, errors.New("tenant: store and component appid are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	dir := NewDirectory(o.Store, o.Logger, DirectoryOptions{
		Poll: o.Poll, MaxStaleness: o.MaxStaleness, Now: o.Now, OnLookup: o.OnLookup,
	})
	if err := dir.Reload(ctx); err != nil {
		return nil, err
	}
	issuer, err := NewIssuer(o.MasterKey)
	if err != nil {
		return nil, err
	}
	used := NewLastUsed(o.Store, o.Logger, o.TouchFlush)
	verifier, err := NewVerifier(o.MasterKey, dir, used, o.Now)
	if err != nil {
		return nil, err
	}
	usage := NewUsage(o.Store, o.ComponentAppID, dir, o.Now, o.Logger, o.UsageFlush)
	return &Service{
		Directory: dir,
		Verifier:  verifier,
		Issuer:    issuer,
		Limiter:   NewLimiter(dir, o.DefaultRate, o.DefaultBurst, o.Now),
		Usage:     usage,
		LastUsed:  used,
		Admin:     NewAdmin(o.Store, o.ComponentAppID, o.Platforms, issuer, dir, usage, o.Now, o.Logger),
	}, nil
}

// Workers returns the background loops of the services: the directory
// poller, the usage and last-use flushers, and the pruning of rate buckets
// of deleted tenants. Each returns nil when ctx ends, after a last flush.
func (s *Service) Workers() []func(ctx context.Context) error {
	return []func(ctx context.Context) error{
		s.Directory.Run,
		s.Usage.Run,
		s.LastUsed.Run,
		func(ctx context.Context) error {
			t := time.NewTicker(time.Minute)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
					s.Limiter.Forget(s.Directory.TenantExists)
				}
			}
		},
	}
}
