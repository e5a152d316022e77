package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wxgate/wxgate/internal/authorizer"
	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/console"
	"github.com/wxgate/wxgate/internal/httpapi"
	"github.com/wxgate/wxgate/internal/message"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/platform"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/quota"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/tenant"
	"github.com/wxgate/wxgate/internal/webhook"
	"github.com/wxgate/wxgate/internal/wechat"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// platformStack is one third-party platform's services on this replica:
// its WeChat client and crypto, component credentials (ticket and
// component token), authorizer manager (every account's tokens),
// authorization flow, event and message receivers, daily quotas and
// proxy. Nothing in it is shared with another platform but the replica's
// connection pool, retry budgets, store, tenants and webhook queue.
type platformStack struct {
	appid       string
	credentials *component.Credentials
	authorizers *authorizer.Manager
	flow        *component.Flow
	quotas      *quota.Keeper
	proxied     *proxy.Service
	// api is the platform as the router uses it.
	api httpapi.PlatformDeps
}

// replicaServices are what every platform of a replica is built over.
type replicaServices struct {
	cfg      config.Config
	store    *store.Store
	log      *slog.Logger
	now      func() time.Time
	metrics  *obs.Metrics
	owner    string
	wx       *wechat.Client
	tenants  *tenant.Service
	webhooks *webhook.Service
	// wake tells the webhook dispatcher that events may be queued.
	wake func()
}

// buildPlatform wires one platform's services over the replica's, in the
// order they depend on each other, loads its state from the store, and
// returns them with their background work (token refreshers, quota and
// message workers).
func buildPlatform(ctx context.Context, r replicaServices, s platform.Settings) (*platformStack, func(context.Context) error, error) {
	cfg, st, now := r.cfg, r.store, r.now
	log := r.log.With("component_appid", s.AppID)
	metrics := r.metrics.ForComponent(s.AppID)
	wx := r.wx.ForComponent(s.AppID, s.Secret, metrics)
	crypter, err := wxcrypt.New(s.Token.Reveal(), s.AESKey.Reveal(), s.AppID)
	if err != nil {
		return nil, nil, fmt.Errorf("platform %s: %w", s.AppID, err)
	}
	// The default platform keeps the short WeChat URLs; every other one
	// has its own under /wechat/components/{appid} (routes.go).
	callbackPath := "/wechat/callback"
	if !s.Default {
		callbackPath = "/wechat/components/" + s.AppID + "/callback"
	}
	webhooks := r.webhooks.ForComponent(s.AppID)

	credentials := component.NewCredentials(component.CredentialOptions{
		AppID: s.AppID, Store: st, WeChat: wx, Owner: r.owner,
		Now: now, Logger: log, Metrics: metrics,
	})
	authorizers := authorizer.New(authorizer.Options{
		ComponentAppID: s.AppID, Store: st, WeChat: wx, Component: credentials, Owner: r.owner,
		Now: now, Logger: log, Metrics: metrics,
	})
	flow := component.NewFlow(component.FlowOptions{
		AppID: s.AppID, Store: st, WeChat: wx, Credentials: credentials, Owner: r.owner,
		PublicURL: cfg.PublicURL, MPURL: cfg.WeChatMPURL, OpenURL: cfg.WeChatOpenURL, CallbackPath: callbackPath,
		Now: now, Logger: log, Metrics: metrics,
		OnAuthorizerChanged: func(a store.Authorizer) {
			authorizers.Apply(a)
			r.wake() // the change may have queued events: send them now, not at the next poll
		},
		OnBound: func(ctx context.Context, _, _ string) {
			// Serve the new binding on this replica at once; the poller
			// brings it to the others.
			if err := r.tenants.Directory.Reload(ctx); err != nil {
				log.WarnContext(ctx, "platform: reloading the tenant directory after a binding failed; the poller will catch up", "err", err.Error())
			}
		},
		Tenants:                r.tenants.Directory,
		AutoBindSharedAccounts: cfg.AutoBindSharedAccounts,
		OnPendingBinding: func(ctx context.Context, tenantID, appid string, _ []string) {
			if err := webhooks.BindingRequested(ctx, tenantID, appid); err != nil {
				log.WarnContext(ctx, "platform: telling the account's tenants of a pending binding failed", "appid", appid, "err", err.Error())
			}
		},
	})
	// The event URL's policy: which pushes are refused, applied, or
	// acknowledged without effect.
	events := component.NewEvents(component.EventOptions{
		AppID: s.AppID, Crypter: crypter, Handler: flow, Receipts: st,
		ReplayWindow: eventReceiptRetention, Now: now, Logger: log, Metrics: metrics,
	})
	// The accounts' message URL: the release test answered by the
	// platform, everything else a message.received webhook event for the
	// account's tenants (with its receipt in inbound_messages).
	messages := message.New(message.Options{
		Crypter: crypter, Inbox: &message.WebhookInbox{Webhooks: webhooks, Receipts: &message.StoreInbox{ComponentAppID: s.AppID, Store: st}},
		Exchanger: flow, Sender: wx, Receipts: st, Leases: st, Owner: r.owner, ReplayWindow: eventReceiptRetention,
		Now: now, Logger: log, Metrics: metrics,
	})
	if err := credentials.Load(ctx); err != nil {
		return nil, nil, err
	}
	if err := authorizers.Load(ctx); err != nil {
		return nil, nil, err
	}

	// The daily quotas: limits learned from WeChat's quota/get (asked by a
	// proxy without quota of its own), calls counted across replicas, the
	// operator's per-tenant caps from the tenant directory.
	quotaLearner := proxy.NewService(proxy.Options{
		Authorizers: authorizers, Upstream: wx, Metrics: metrics, Logger: log, Now: now, Timeout: cfg.UpstreamTimeout,
	})
	quotas := quota.New(quota.Options{
		ComponentAppID: s.AppID, Store: st, Caps: r.tenants.Directory, Learner: quotaLearner,
		Now: now, Logger: log, Metrics: metrics,
	})
	// The proxy: the proxied WeChat APIs over the authorizers' tokens,
	// spending the daily quotas.
	proxied := proxy.NewService(proxy.Options{
		Authorizers: authorizers, Upstream: wx, Quota: quotas, Metrics: metrics, Logger: log, Now: now, Timeout: cfg.UpstreamTimeout,
	})

	p := &platformStack{
		appid: s.AppID, credentials: credentials, authorizers: authorizers, flow: flow, quotas: quotas, proxied: proxied,
		api: httpapi.PlatformDeps{
			ComponentAppID: s.AppID, Events: events, Messages: messages, Flow: flow, Directory: st,
			Authorizers: authorizers, Component: credentials, Tickets: credentials, Proxy: proxied, Metrics: metrics, Now: now,
		},
	}
	work := func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		for _, w := range []func(context.Context) error{credentials.Run, authorizers.Run, quotas.Run, messages.Run} {
			g.Go(func() error { return w(ctx) })
		}
		return g.Wait()
	}
	return p, work, nil
}

// hasPlatform is tenant.Platforms as a function.
type hasPlatform func(ctx context.Context, appid string) (bool, error)

func (f hasPlatform) HasPlatform(ctx context.Context, appid string) (bool, error) {
	return f(ctx, appid)
}

// platforms is the registry as the router uses it.
type platforms struct {
	reg *platform.Registry[*platformStack]
}

var _ httpapi.Platforms = platforms{}

func (p platforms) Platform(ctx context.Context, appid string) (*httpapi.PlatformDeps, error) {
	if appid == "" {
		return p.DefaultPlatform(), nil
	}
	s, err := p.reg.Get(ctx, appid)
	if err != nil {
		return nil, err
	}
	return &s.api, nil
}

func (p platforms) DefaultPlatform() *httpapi.PlatformDeps { return &p.reg.Default().api }

func (p platforms) RunningPlatforms() []*httpapi.PlatformDeps {
	var out []*httpapi.PlatformDeps
	for _, s := range p.reg.All() {
		out = append(out, &s.api)
	}
	return out
}

func (p platforms) ListPlatforms(ctx context.Context) ([]platform.Info, error) {
	return p.reg.List(ctx)
}

func (p platforms) AddPlatform(ctx context.Context, s platform.Settings) (platform.Info, error) {
	return p.reg.Add(ctx, s)
}

func (p platforms) UpdatePlatform(ctx context.Context, appid string, s platform.Settings) (platform.Info, error) {
	return p.reg.Update(ctx, appid, s)
}

func (p platforms) RemovePlatform(ctx context.Context, appid string) error {
	return p.reg.Remove(ctx, appid)
}

// consolePlatforms is the registry as the operator console uses it: the
// platforms this replica runs, from memory.
type consolePlatforms struct {
	reg *platform.Registry[*platformStack]
}

var _ console.Platforms = consolePlatforms{}

func (p consolePlatforms) List() []console.PlatformView {
	all := p.reg.All()
	out := make([]console.PlatformView, 0, len(all))
	for _, s := range all {
		out = append(out, p.view(s))
	}
	return out
}

func (p consolePlatforms) Get(appid string) (console.PlatformView, bool) {
	s, ok := p.reg.Peek(appid)
	if !ok {
		return console.PlatformView{}, false
	}
	return p.view(s), true
}

func (p consolePlatforms) DefaultAppID() string { return p.reg.DefaultAppID() }

func (p consolePlatforms) view(s *platformStack) console.PlatformView {
	return console.PlatformView{
		AppID: s.appid, Default: s.appid == p.reg.DefaultAppID(),
		Authorizers: s.authorizers, Flow: s.flow, Component: s.credentials, Quotas: s.quotas, QuotaClearer: s.proxied,
	}
}
