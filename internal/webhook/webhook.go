// Package webhook tells tenants' systems what happens to their accounts
// (docs/api.md, "Webhooks"): the tenant's webhook and its secrets, the
// durable outbox the store writes events into in the same transaction as
// the change that causes them, and the dispatcher that sends them, signed,
// at least once, from one replica at a time.
package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/secret"
	"github.com/wxgate/wxgate/internal/store"
)

// Store is the persistence of webhooks (the store).
type Store interface {
	PutWebhook(ctx context.Context, tenantID, url string, events []string, newSecret secret.Value) (store.Webhook, bool, error)
	GetWebhook(ctx context.Context, tenantID string) (store.Webhook, error)
	DeleteWebhook(ctx context.Context, tenantID string) error
	RotateWebhookSecret(ctx context.Context, tenantID string, newSecret secret.Value, prevUntil time.Time) (store.Webhook, error)
	ListWebhookDeliveries(ctx context.Context, tenantID, status string, limit int) ([]store.WebhookDelivery, error)
	RedeliverWebhook(ctx context.Context, tenantID, id string) (store.WebhookDelivery, error)
	EnqueueTenantEvent(ctx context.Context, tenantID, typ, appid string, data any) (store.WebhookDelivery, error)
	EnqueueAccountEvent(ctx context.Context, componentAppID, appid, typ, dedupKey string, data any) (int, error)
}

var _ Store = (*store.Store)(nil)

// RotationGrace is how long the old secret keeps signing after a rotation.
const RotationGrace = 24 * time.Hour

// Options configure a Service.
type Options struct {
	Store Store
	// ComponentAppID is the platform whose accounts' events are enqueued.
	ComponentAppID string
	// AllowPrivate is WXGATE_WEBHOOK_ALLOW_PRIVATE: http:// and private,
	// loopback and link-local receivers are allowed.
	AllowPrivate bool
	Now          func() time.Time
	Logger       *slog.Logger
	// Wake, when set, is told that an event was enqueued here, so this
	// replica's dispatcher sends it without waiting for its next poll.
	Wake func()
}

// Service is the tenant's webhook API and the outbox entry points.
type Service struct {
	o Options
}

// New builds a Service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Wake == nil {
		o.Wake = func() {}
	}
	return &Service{o: o}
}

// ForComponent returns the service for another platform of the
// deployment: the events it queues for accounts are that platform's
// accounts' (the tenant-facing methods are the same for every platform).
func (s *Service) ForComponent(componentAppID string) *Service {
	o := s.o
	o.ComponentAppID = componentAppID
	return &Service{o: o}
}

// Config is what PUT /v1/webhook sets.
type Config struct {
	URL    string
	Events []string
}

// maxURL bounds a webhook URL.
const maxURL = 2048

// Put creates or changes the tenant's webhook. The secret is returned
// (Secret not zero) only when the webhook is created. Errors:
// invalid_argument (URL or events), internal for an empty tenant id.
func (s *Service) Put(ctx context.Context, tenantID string, c Config) (store.Webhook, bool, error) {
	if tenantID == "" {
		return store.Webhook{}, false, errs.E(errs.Internal, "internal error")
	}
	if err := s.ValidateURL(c.URL); err != nil {
		return store.Webhook{}, false, err
	}
	events, err := validateEvents(c.Events)
	if err != nil {
		return store.Webhook{}, false, err
	}
	w, created, err := s.o.Store.PutWebhook(ctx, tenantID, c.URL, events, newSecret())
	if err != nil {
		return store.Webhook{}, false, err
	}
	if !created {
		w.Secret, w.PrevSecret = "", ""
	}
	return w, created, nil
}

// Get returns the tenant's webhook without its secrets; not_found if none.
func (s *Service) Get(ctx context.Context, tenantID string) (store.Webhook, error) {
	w, err := s.o.Store.GetWebhook(ctx, tenantID)
	w.Secret, w.PrevSecret = "", ""
	return w, err
}

// Delete removes the tenant's webhook (a no-op without one).
func (s *Service) Delete(ctx context.Context, tenantID string) error {
	return s.o.Store.DeleteWebhook(ctx, tenantID)
}

// RotateSecret gives the webhook a new secret, returned in Secret; the old
// one keeps signing beside it for RotationGrace. not_found if none.
func (s *Service) RotateSecret(ctx context.Context, tenantID string) (store.Webhook, error) {
	w, err := s.o.Store.RotateWebhookSecret(ctx, tenantID, newSecret(), s.o.Now().Add(RotationGrace))
	w.PrevSecret = ""
	return w, err
}

// Delivery statuses a listing may filter on, and its limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// Deliveries lists the tenant's deliveries, newest first. status is ""
// or one of pending, delivered, failed; limit 0 means DefaultListLimit.
func (s *Service) Deliveries(ctx context.Context, tenantID, status string, limit int) ([]store.WebhookDelivery, error) {
	switch status {
	case "", store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed:
	default:
		return nil, errs.Invalid("status", "status must be pending, delivered or failed")
	}
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 0 || limit > MaxListLimit {
		return nil, errs.Invalid("limit", "limit must be between 1 and 500")
	}
	return s.o.Store.ListWebhookDeliveries(ctx, tenantID, status, limit)
}

// Redeliver queues the event of a delivery again (same event id).
// not_found for an unknown or another tenant's delivery.
func (s *Service) Redeliver(ctx context.Context, tenantID, id string) (store.WebhookDelivery, error) {
	d, err := s.o.Store.RedeliverWebhook(ctx, tenantID, id)
	if err == nil {
		s.o.Wake()
	}
	return d, err
}

// TestData is the data of a webhook.test event.
type TestData struct {
	Message string `json:"message"`
}

// Test queues a webhook.test event; not_found without a webhook.
func (s *Service) Test(ctx context.Context, tenantID string) (store.WebhookDelivery, error) {
	d, err := s.o.Store.EnqueueTenantEvent(ctx, tenantID, store.EventWebhookTest, "", TestData{Message: "This is a test event from wxgate."})
	if err == nil {
		s.o.Wake()
	}
	return d, err
}

// EnqueueForAccount durably queues a message.received event for every
// tenant bound to appid whose webhook wants it, and returns how many were
// queued. msg is the decrypted message's fields in snake_case (msg_type,
// from_openid, create_time, msg_id, content, event, event_key, …). The
// event's id derives from the message (its msg_id, or its from_openid and
// create_time), so a retried message is queued once, whichever replica it
// reaches. The account message callback calls it before answering WeChat.
func (s *Service) EnqueueForAccount(ctx context.Context, appid string, msg map[string]any) (int, error) {
	n, err := s.o.Store.EnqueueAccountEvent(ctx, s.o.ComponentAppID, appid, store.EventMessageReceived, messageKey(msg), msg)
	if err == nil && n > 0 {
		s.o.Wake()
	}
	return n, err
}

// BindingRequestedData is the data of authorizer.binding_requested. It
// never names the requesting tenant: tenants do not learn of each other.
type BindingRequestedData struct {
	AppID   string `json:"appid"`
	Pending bool   `json:"pending"`
	Detail  string `json:"detail"`
}

// BindingRequested queues authorizer.binding_requested for the tenants
// holding appid: another tenant (requestingTenant, not disclosed to them)
// authorized it and its binding waits for the operator's approval. One
// event per request, however often the flow reports it.
func (s *Service) BindingRequested(ctx context.Context, requestingTenant, appid string) error {
	n, err := s.o.Store.EnqueueAccountEvent(ctx, s.o.ComponentAppID, appid, store.EventBindingRequested,
		"binding:"+requestingTenant, BindingRequestedData{AppID: appid, Pending: true,
			Detail: "another tenant of this platform authorized this account; the operator decides whether it is bound to that tenant too"})
	if err == nil && n > 0 {
		s.o.Wake()
	}
	return err
}

// MessageReceived is EnqueueForAccount for a callback that only needs to
// know whether queueing failed.
func (s *Service) MessageReceived(ctx context.Context, appid string, msg map[string]any) error {
	_, err := s.EnqueueForAccount(ctx, appid, msg)
	return err
}

// messageKey is how WeChat's retries of one message are told apart from
// other messages: its MsgId, or for events (which have none) the sender,
// creation time, event and event key.
func messageKey(msg map[string]any) string {
	str := func(k string) string {
		switch v := msg[k].(type) {
		case string:
			return v
		case nil:
			return ""
		default:
			return fmt.Sprint(v)
		}
	}
	if id := str("msg_id"); id != "" {
		return "msg:" + id
	}
	return "evt:" + str("from_openid") + "|" + str("create_time") + "|" + str("event") + "|" + str("event_key")
}

// ValidateURL checks a webhook URL when it is saved: absolute, https (or
// http when private targets are allowed), no credentials, and not a
// literal private address or localhost. The check that matters, on the
// address actually connected to, is made when each delivery connects.
func (s *Service) ValidateURL(raw string) error {
	bad := func(msg string) error { return errs.Invalid("url", msg) }
	if raw == "" || len(raw) > maxURL {
		return bad("url must be an absolute https URL of at most 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return bad("url must be an absolute https URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && s.o.AllowPrivate:
	default:
		return bad("url must use https")
	}
	if u.User != nil {
		return bad("url must not carry credentials")
	}
	if u.Fragment != "" {
		return bad("url must not have a fragment")
	}
	if s.o.AllowPrivate {
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return bad("url must resolve to a public address")
	}
	if ip, err := netip.ParseAddr(host); err == nil && !IsPublic(ip) {
		return bad("url must resolve to a public address")
	}
	if net.ParseIP(host) == nil && !strings.Contains(host, ".") {
		return bad("url must name a public host")
	}
	return nil
}

// validateEvents checks the subscribed patterns: event types, "authorizer.*"
// or "*"; none means every event. The result is sorted without duplicates.
func validateEvents(events []string) ([]string, error) {
	if len(events) == 0 {
		return []string{"*"}, nil
	}
	out := make([]string, 0, len(events))
	for _, e := range events {
		if e != "*" && e != "authorizer.*" && !slices.Contains(store.EventTypes, e) {
			return nil, errs.Invalid("events", "unknown event type "+quote(e)+"; use authorizer.*, message.received, webhook.test, *, or one authorizer.* type")
		}
		out = append(out, e)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' {
			return '?'
		}
		return r
	}, s) + `"`
}

// secretPrefix starts every webhook signing secret.
const secretPrefix = "whsec_"

func newSecret() secret.Value {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return secret.Value(secretPrefix + base64.RawURLEncoding.EncodeToString(b))
}
