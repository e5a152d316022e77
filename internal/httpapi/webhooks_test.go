package httpapi

import (
	"strings"
	"testing"

	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/webhook"
)

// TestWebhookRoutes: the webhook API through the real router on each
// store: answers, statuses and error codes, the secret only on create and
// rotate, and one tenant never reaching another's webhook or deliveries.
func TestWebhookRoutes(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			f := newTenantFixture(t, dialect, func(o *tenantFixtureOptions) {
				o.wire = append(o.wire, func(f *tenantFixture) {
					f.deps.Webhooks = webhook.New(webhook.Options{Store: f.store, ComponentAppID: tfComponent, Now: f.clock.Now})
				})
			})
			acmeID := f.createTenant("acme")
			_, acme := f.issueKey(acmeID, nil)
			_, restricted := f.issueKey(acmeID, map[string]any{"appids": []string{"wxaaaaaaaaaaaaaaa1"}})
			_, globex := f.issueKey(f.createTenant("globex"), nil)
			call := func(method, path, key string, body any) (int, map[string]any) {
				w := f.do(method, path, body, "Authorization", "Bearer "+key)
				if w.Body.Len() == 0 {
					return w.Code, nil
				}
				return w.Code, decodeAs[map[string]any](t, w)
			}
			var testDelivery string
			for _, tc := range []struct {
				name, method, path, key string
				body                    any
				want                    int
				check                   func(t *testing.T, got map[string]any)
			}{
				{name: "no webhook yet", method: "GET", path: "/v1/webhook", key: acme, want: 404},
				{name: "a restricted key cannot set the tenant's webhook", method: "PUT", path: "/v1/webhook", key: restricted, body: map[string]any{"url": "https://attacker.example/x"}, want: 403},
				{name: "a restricted key cannot read it", method: "GET", path: "/v1/webhook", key: restricted, want: 403},
				{name: "a restricted key cannot list deliveries", method: "GET", path: "/v1/webhook/deliveries", key: restricted, want: 403},
				{name: "test without a webhook", method: "POST", path: "/v1/webhook/test", key: acme, want: 404},
				{name: "rotate without a webhook", method: "POST", path: "/v1/webhook/rotate-secret", key: acme, want: 404},
				{name: "http refused", method: "PUT", path: "/v1/webhook", key: acme, body: map[string]any{"url": "http://hooks.example.com/x"}, want: 400,
					check: func(t *testing.T, got map[string]any) {
						if !strings.Contains(got["error"].(map[string]any)["message"].(string), "https") {
							t.Fatalf("got %v, want a message about https", got)
						}
					}},
				{name: "unknown event type refused", method: "PUT", path: "/v1/webhook", key: acme, body: map[string]any{"url": "https://hooks.example.com/x", "events": []string{"authorizer.deleted"}}, want: 400},
				{name: "malformed body refused", method: "PUT", path: "/v1/webhook", key: acme, body: "{", want: 400},
				{name: "create: the secret is shown", method: "PUT", path: "/v1/webhook", key: acme, body: map[string]any{"url": "https://hooks.example.com/x", "events": []string{"authorizer.*"}}, want: 200,
					check: func(t *testing.T, got map[string]any) {
						if s, _ := got["secret"].(string); !strings.HasPrefix(s, "whsec_") || got["url"] != "https://hooks.example.com/x" || got["created_at"] == nil {
							t.Fatalf("got %v, want url, events, a whsec_ secret and created_at", got)
						}
					}},
				{name: "change: no secret", method: "PUT", path: "/v1/webhook", key: acme, body: map[string]any{"url": "https://hooks.example.com/y?a=1&b=2"}, want: 200,
					check: func(t *testing.T, got map[string]any) {
						if _, ok := got["secret"]; ok || got["url"] != "https://hooks.example.com/y?a=1&b=2" {
							t.Fatalf("got %v, want the new url and no secret", got)
						}
					}},
				{name: "get: no secret", method: "GET", path: "/v1/webhook", key: acme, want: 200,
					check: func(t *testing.T, got map[string]any) {
						if _, ok := got["secret"]; ok || got["events"].([]any)[0] != "*" {
							t.Fatalf("got %v, want events [*] and no secret", got)
						}
					}},
				{name: "the other tenant has none", method: "GET", path: "/v1/webhook", key: globex, want: 404},
				{name: "rotate: a new secret", method: "POST", path: "/v1/webhook/rotate-secret", key: acme, want: 200,
					check: func(t *testing.T, got map[string]any) {
						if s, _ := got["secret"].(string); !strings.HasPrefix(s, "whsec_") {
							t.Fatalf("got %v, want a whsec_ secret", got)
						}
					}},
				{name: "test: queued", method: "POST", path: "/v1/webhook/test", key: acme, want: 202,
					check: func(t *testing.T, got map[string]any) {
						testDelivery, _ = got["id"].(string)
						if got["type"] != store.EventWebhookTest || got["status"] != store.DeliveryPending || got["appid"] != nil || !strings.HasPrefix(got["event_id"].(string), "evt_") {
							t.Fatalf("got %v, want a pending webhook.test delivery", got)
						}
					}},
				{name: "deliveries: pending", method: "GET", path: "/v1/webhook/deliveries?status=pending", key: acme, want: 200,
					check: func(t *testing.T, got map[string]any) {
						if list := got["deliveries"].([]any); len(list) != 1 || list[0].(map[string]any)["id"] != testDelivery {
							t.Fatalf("got %v, want the test delivery", got)
						}
					}},
				{name: "deliveries: none delivered", method: "GET", path: "/v1/webhook/deliveries?status=delivered", key: acme, want: 200,
					check: func(t *testing.T, got map[string]any) {
						if list := got["deliveries"].([]any); len(list) != 0 {
							t.Fatalf("got %v, want none", got)
						}
					}},
				{name: "deliveries: bad status", method: "GET", path: "/v1/webhook/deliveries?status=sent", key: acme, want: 400},
				{name: "deliveries: bad limit", method: "GET", path: "/v1/webhook/deliveries?limit=0", key: acme, want: 400},
				{name: "deliveries: limit too large", method: "GET", path: "/v1/webhook/deliveries?limit=501", key: acme, want: 400},
				{name: "the other tenant sees no delivery", method: "GET", path: "/v1/webhook/deliveries", key: globex, want: 200,
					check: func(t *testing.T, got map[string]any) {
						if list := got["deliveries"].([]any); len(list) != 0 {
							t.Fatalf("got %v, want none", got)
						}
					}},
				{name: "the other tenant cannot redeliver it", method: "POST", path: "/v1/webhook/deliveries/{test}/redeliver", key: globex, want: 404},
				{name: "redeliver", method: "POST", path: "/v1/webhook/deliveries/{test}/redeliver", key: acme, want: 202},
				{name: "without a key", method: "GET", path: "/v1/webhook", key: "", want: 401},
				{name: "delete", method: "DELETE", path: "/v1/webhook", key: acme, want: 204},
				{name: "delete again", method: "DELETE", path: "/v1/webhook", key: acme, want: 204},
				{name: "deleted: the pending delivery failed", method: "GET", path: "/v1/webhook/deliveries?status=failed", key: acme, want: 200,
					check: func(t *testing.T, got map[string]any) {
						if list := got["deliveries"].([]any); len(list) != 1 || list[0].(map[string]any)["last_error"] != "webhook deleted" {
							t.Fatalf("got %v, want the test delivery failed as deleted", got)
						}
					}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					code, got := call(tc.method, strings.ReplaceAll(tc.path, "{test}", testDelivery), tc.key, tc.body)
					if code != tc.want {
						t.Fatalf("%s %s = %d %v, want %d", tc.method, tc.path, code, got, tc.want)
					}
					if tc.check != nil {
						tc.check(t, got)
					}
				})
			}
		})
	}
}
