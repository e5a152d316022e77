package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/webhook"
)

// Webhooks is the tenant's webhook service (webhook.Service). Every method
// is scoped to tenantID; another tenant's delivery is not_found.
type Webhooks interface {
	// Put creates or changes the webhook; invalid_argument for a bad URL
	// or event list. The secret is set only when created.
	Put(ctx context.Context, tenantID string, c webhook.Config) (store.Webhook, bool, error)
	// Get returns the webhook without secrets; not_found if none.
	Get(ctx context.Context, tenantID string) (store.Webhook, error)
	Delete(ctx context.Context, tenantID string) error
	// RotateSecret returns the webhook with its new secret; not_found if none.
	RotateSecret(ctx context.Context, tenantID string) (store.Webhook, error)
	// Deliveries lists deliveries newest first; invalid_argument for a bad filter.
	Deliveries(ctx context.Context, tenantID, status string, limit int) ([]store.WebhookDelivery, error)
	Redeliver(ctx context.Context, tenantID, id string) (store.WebhookDelivery, error)
	// Test queues a webhook.test event; not_found without a webhook.
	Test(ctx context.Context, tenantID string) (store.WebhookDelivery, error)
}

var _ Webhooks = (*webhook.Service)(nil)

type putWebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

// webhookJSON is the webhook as the API shows it; Secret only when it was
// just created or rotated.
type webhookJSON struct {
	URL       string   `json:"url"`
	Events    []string `json:"events"`
	Secret    string   `json:"secret,omitempty"`
	CreatedAt string   `json:"created_at"`
}

func toWebhookJSON(w store.Webhook, withSecret bool) webhookJSON {
	j := webhookJSON{URL: w.URL, Events: w.Events, CreatedAt: rfc3339(w.CreatedAt)}
	if withSecret {
		j.Secret = w.Secret.Reveal() // the one place a webhook secret leaves the gateway
	}
	return j
}

type deliveryJSON struct {
	ID            string  `json:"id"`
	EventID       string  `json:"event_id"`
	Type          string  `json:"type"`
	AppID         *string `json:"appid"`
	Status        string  `json:"status"`
	Attempts      int     `json:"attempts"`
	LastStatus    *int    `json:"last_status"`
	LastError     *string `json:"last_error"`
	NextAttemptAt *string `json:"next_attempt_at"`
	CreatedAt     string  `json:"created_at"`
	DeliveredAt   *string `json:"delivered_at"`
}

func toDeliveryJSON(d store.WebhookDelivery) deliveryJSON {
	j := deliveryJSON{ID: d.ID, EventID: d.EventID, Type: d.Type, Status: d.Status, Attempts: d.Attempts, CreatedAt: rfc3339(d.CreatedAt)}
	if d.AppID != "" {
		j.AppID = &d.AppID
	}
	if d.LastStatus != 0 {
		j.LastStatus = &d.LastStatus
	}
	if d.LastError != "" {
		j.LastError = &d.LastError
	}
	if d.Status == store.DeliveryPending {
		j.NextAttemptAt = optTime(d.NextAttemptAt)
	}
	if d.DeliveredAt != nil {
		j.DeliveredAt = optTime(*d.DeliveredAt)
	}
	return j
}

// tenantHandler wraps a webhook handler: no service wired answers
// internal, a request without a principal fails closed.
func tenantHandler(w Webhooks, log *slog.Logger, fn func(c *gin.Context, tenantID string) error) gin.HandlerFunc {
	if w == nil {
		return notWired(log)
	}
	return func(c *gin.Context) {
		p, err := mustPrincipal(c)
		if err == nil && !p.MayAuthorize() {
			// The webhook receives every account's events and messages: a key
			// restricted to some accounts must not redirect or read them.
			err = errs.E(errs.Forbidden, "a key restricted to some accounts cannot manage the tenant's webhook; use an unrestricted key")
		}
		if err == nil {
			err = fn(c, p.TenantID)
		}
		if err != nil {
			writeError(c, log, err)
		}
	}
}

// handlePutWebhook is PUT /v1/webhook.
func handlePutWebhook(w Webhooks, log *slog.Logger) gin.HandlerFunc {
	return tenantHandler(w, log, func(c *gin.Context, tenantID string) error {
		var req putWebhookRequest
		if err := decodeJSONBody(c, &req, false); err != nil {
			return err
		}
		hook, created, err := w.Put(c.Request.Context(), tenantID, webhook.Config{URL: req.URL, Events: req.Events})
		if err != nil {
			return err
		}
		c.PureJSON(http.StatusOK, toWebhookJSON(hook, created))
		return nil
	})
}

// handleGetWebhook is GET /v1/webhook.
func handleGetWebhook(w Webhooks, log *slog.Logger) gin.HandlerFunc {
	return tenantHandler(w, log, func(c *gin.Context, tenantID string) error {
		hook, err := w.Get(c.Request.Context(), tenantID)
		if err != nil {
			return err
		}
		c.PureJSON(http.StatusOK, toWebhookJSON(hook, false))
		return nil
	})
}

// handleDeleteWebhook is DELETE /v1/webhook.
func handleDeleteWebhook(w Webhooks, log *slog.Logger) gin.HandlerFunc {
	return tenantHandler(w, log, func(c *gin.Context, tenantID string) error {
		if err := w.Delete(c.Request.Context(), tenantID); err != nil {
			return err
		}
		c.Status(http.StatusNoContent)
		return nil
	})
}

// handleRotateWebhookSecret is POST /v1/webhook/rotate-secret.
func handleRotateWebhookSecret(w Webhooks, log *slog.Logger) gin.HandlerFunc {
	return tenantHandler(w, log, func(c *gin.Context, tenantID string) error {
		hook, err := w.RotateSecret(c.Request.Context(), tenantID)
		if err != nil {
			return err
		}
		c.PureJSON(http.StatusOK, toWebhookJSON(hook, true))
		return nil
	})
}

// handleListDeliveries is GET /v1/webhook/deliveries?status=…&limit=N.
func handleListDeliveries(w Webhooks, log *slog.Logger) gin.HandlerFunc {
	return tenantHandler(w, log, func(c *gin.Context, tenantID string) error {
		limit := 0
		if v := c.Query("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return errs.Invalid("limit", "limit must be between 1 and 500")
			}
			limit = n
		}
		list, err := w.Deliveries(c.Request.Context(), tenantID, c.Query("status"), limit)
		if err != nil {
			return err
		}
		out := make([]deliveryJSON, len(list))
		for i, d := range list {
			out[i] = toDeliveryJSON(d)
		}
		c.PureJSON(http.StatusOK, deliveryList{Deliveries: out})
		return nil
	})
}

// handleRedeliver is POST /v1/webhook/deliveries/{id}/redeliver.
func handleRedeliver(w Webhooks, log *slog.Logger) gin.HandlerFunc {
	return tenantHandler(w, log, func(c *gin.Context, tenantID string) error {
		d, err := w.Redeliver(c.Request.Context(), tenantID, c.Param("id"))
		if err != nil {
			return err
		}
		c.PureJSON(http.StatusAccepted, toDeliveryJSON(d))
		return nil
	})
}

// handleTestWebhook is POST /v1/webhook/test.
func handleTestWebhook(w Webhooks, log *slog.Logger) gin.HandlerFunc {
	return tenantHandler(w, log, func(c *gin.Context, tenantID string) error {
		d, err := w.Test(c.Request.Context(), tenantID)
		if err != nil {
			return err
		}
		c.PureJSON(http.StatusAccepted, toDeliveryJSON(d))
		return nil
	})
}
