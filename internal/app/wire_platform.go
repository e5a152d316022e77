package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/wxgate/wxgate/internal/authorizer"
	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/httpapi"
	"github.com/wxgate/wxgate/internal/wechat"
	"github.com/wxgate/wxgate/internal/wxcrypt"
)

// How long handled-event receipts and finished authorization sessions are
// kept before the janitor deletes them.
const (
	eventReceiptRetention = 7 * 24 * time.Hour
	sessionRetention      = 24 * time.Hour
	janitorInterval       = time.Hour
)

// wirePlatform builds the platform backend (WeChat client, component token,
// authorization flow, authorizer token manager), adds its workers to g and
// returns what the router needs. The token manager and the WeChat client
// are left on g for the proxy.
func wirePlatform(ctx context.Context, g *gateway) (httpapi.PlatformDeps, error) {
	crypter, err := wxcrypt.New(g.cfg.ComponentToken.Reveal(), g.cfg.ComponentAESKey.Reveal(), g.cfg.ComponentAppID)
	if err != nil {
		return httpapi.PlatformDeps{}, fmt.Errorf("platform: %w", err)
	}
	wx, err := wechat.New(wechat.Options{
		BaseURL:         g.cfg.WeChatAPIURL,
		ComponentAppID:  g.cfg.ComponentAppID,
		ComponentSecret: g.cfg.ComponentSecret,
		Metrics:         g.metrics,
		Logger:          g.log,
	})
	if err != nil {
		return httpapi.PlatformDeps{}, fmt.Errorf("platform: %w", err)
	}
	owner := replicaID()
	comp := component.NewCredentials(component.CredentialOptions{
		AppID: g.cfg.ComponentAppID, Store: g.store, WeChat: wx, Owner: owner,
		Now: g.now, Logger: g.log, Metrics: g.metrics,
	})
	mgr := authorizer.New(authorizer.Options{
		ComponentAppID: g.cfg.ComponentAppID, Store: g.store, WeChat: wx, Component: comp, Owner: owner,
		Now: g.now, Logger: g.log, Metrics: g.metrics,
	})
	flow := component.NewFlow(component.FlowOptions{
		AppID: g.cfg.ComponentAppID, Store: g.store, WeChat: wx, Credentials: comp, Owner: owner,
		PublicURL: g.cfg.PublicURL, MPURL: g.cfg.WeChatMPURL, OpenURL: g.cfg.WeChatOpenURL,
		Now: g.now, Logger: g.log, Metrics: g.metrics, OnAuthorizerChanged: mgr.Apply,
		OnBound: func(ctx context.Context, _, _ string) {
			if err := g.reloadTenants(ctx); err != nil {
				g.log.WarnContext(ctx, "platform: reloading the tenant directory after a binding failed; the poller will catch up", "err", err.Error())
			}
		},
	})
	if err := comp.Load(ctx); err != nil {
		return httpapi.PlatformDeps{}, err
	}
	if err := mgr.Load(ctx); err != nil {
		return httpapi.PlatformDeps{}, err
	}
	g.tokens, g.wechat = mgr, wx
	g.workers = append(g.workers, comp.Run, mgr.Run, func(ctx context.Context) error {
		return platformJanitor(ctx, g)
	})
	return httpapi.PlatformDeps{
		ComponentAppID: g.cfg.ComponentAppID,
		Crypter:        crypter,
		Events:         flow,
		Receipts:       g.store,
		ReplayWindow:   eventReceiptRetention,
		Flow:           flow,
		Directory:      g.store,
		Authorizers:    mgr,
		Component:      comp,
		Metrics:        g.metrics,
		Now:            g.now,
	}, nil
}

// platformJanitor prunes old event receipts and finished sessions hourly.
func platformJanitor(ctx context.Context, g *gateway) error {
	t := time.NewTicker(janitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := g.now()
		if _, err := g.store.DeleteEventsBefore(ctx, now.Add(-eventReceiptRetention)); err != nil && ctx.Err() == nil {
			g.log.WarnContext(ctx, "janitor: pruning event receipts failed", "err", err.Error())
		}
		if _, err := g.store.DeleteExpiredSessions(ctx, now.Add(-sessionRetention)); err != nil && ctx.Err() == nil {
			g.log.WarnContext(ctx, "janitor: pruning authorization sessions failed", "err", err.Error())
		}
	}
}

// replicaID names this process in leases: host, pid and a random suffix.
func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}
