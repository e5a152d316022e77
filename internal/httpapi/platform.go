package httpapi

import (
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/component"
	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/store"
)

// authorizerJSON is AUTHORIZER (docs/api.md, "The AUTHORIZER object"): the
// same shape webhook events carry as the account's state. It never carries
// a token.
type authorizerJSON = store.AccountState

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := rfc3339(t)
	return &s
}

func toAuthorizerJSON(a store.Authorizer) authorizerJSON { return store.StateOf(a) }

type createAuthorizationRequest struct {
	ReturnURL string `json:"return_url"`
	AuthType  int    `json:"auth_type"`
	BizAppID  string `json:"biz_appid"`
}

type authorizationJSON struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	MobileURL string `json:"mobile_url"`
	ExpiresAt string `json:"expires_at"`
}

// handleCreateAuthorization is POST /v1/authorizations (docs/api.md, "POST /v1/authorizations");
// forbidden for a key restricted to some accounts.
func handleCreateAuthorization(pick pickPlatform, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		d, ok := platformFor(c, pick, log, hasFlow)
		if !ok {
			return
		}
		p, err := mustPrincipal(c)
		if err != nil {
			writeError(c, log, err)
			return
		}
		if !p.MayAuthorize() {
			writeError(c, log, errs.E(errs.Forbidden, "a key restricted to some accounts cannot start an authorization; use an unrestricted key"))
			return
		}
		var req createAuthorizationRequest
		if err := decodeJSONBody(c, &req, false); err != nil {
			writeError(c, log, err)
			return
		}
		a, err := d.Flow.CreateAuthorization(c.Request.Context(), p.TenantID, component.AuthorizationRequest{
			ReturnURL: req.ReturnURL, AuthType: req.AuthType, BizAppID: req.BizAppID,
		})
		if err != nil {
			writeError(c, log, err)
			return
		}
		c.PureJSON(http.StatusCreated, authorizationJSON{ID: a.ID, URL: a.URL, MobileURL: a.MobileURL, ExpiresAt: rfc3339(a.ExpiresAt)})
	}
}

// handleListAuthorizers is GET /v1/authorizers: the accounts bound to the
// caller's tenant (those its key may call), from the tenant directory and
// the token manager's memory: no store query in the steady state.
func handleListAuthorizers(pick pickPlatform, bindings BindingChecker, log *slog.Logger) gin.HandlerFunc {
	if bindings == nil {
		return notWired(log)
	}
	return func(c *gin.Context) {
		d, ok := platformFor(c, pick, log, hasDirectory)
		if !ok {
			return
		}
		p, err := mustPrincipal(c)
		if err != nil {
			writeError(c, log, err)
			return
		}
		// Read your writes: an account bound or authorized through another
		// replica a moment ago is listed (one coalesced revision read).
		if err := bindings.CatchUp(c.Request.Context()); err != nil {
			writeError(c, log, err)
			return
		}
		out := []authorizerJSON{}
		for _, appid := range bindings.BoundAppIDs(p.TenantID) {
			if p.Restricts(appid) {
				continue
			}
			a, err := d.account(c, p.TenantID, appid)
			if errs.Is(err, errs.NotFound) {
				continue // unbound since the directory snapshot
			}
			if err != nil {
				writeError(c, log, err)
				return
			}
			out = append(out, toAuthorizerJSON(a))
		}
		c.PureJSON(http.StatusOK, gin.H{"authorizers": out})
	}
}

// handleGetAuthorizer is GET /v1/authorizers/{appid}: not_found unless the
// account is bound to the caller's tenant; forbidden if the key is
// restricted to other accounts. Both are decided in memory, as on the
// proxied routes.
func handleGetAuthorizer(pick pickPlatform, bindings BindingChecker, log *slog.Logger) gin.HandlerFunc {
	if bindings == nil {
		return notWired(log)
	}
	return func(c *gin.Context) {
		d, ok := platformFor(c, pick, log, hasDirectory)
		if !ok {
			return
		}
		appid := c.Param("appid")
		if err := authorizeAppID(c, bindings, appid); err != nil {
			writeError(c, log, err)
			return
		}
		p, _ := principalFrom(c)
		a, err := d.account(c, p.TenantID, appid)
		if err != nil {
			writeError(c, log, err)
			return
		}
		c.PureJSON(http.StatusOK, toAuthorizerJSON(a))
	}
}

// account reads a bound authorizer from the token manager's memory, or,
// when this replica has not loaded it yet (authorized a moment ago on
// another replica) or has no such memory, with the tenant-scoped query.
func (d PlatformDeps) account(c *gin.Context, tenantID, appid string) (store.Authorizer, error) {
	if d.Authorizers != nil {
		if a, ok := d.Authorizers.Get(appid); ok {
			return a, nil
		}
	}
	return d.Directory.TenantAuthorizer(c.Request.Context(), d.ComponentAppID, tenantID, appid)
}

// sortedOrEmpty sorts ids in place; nil becomes an empty list (JSON []).
func sortedOrEmpty(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	slices.Sort(ids)
	return ids
}

// handleAdminListAuthorizers is GET /admin/authorizers: every account of
// the component with the tenants it is bound to and those waiting for the
// operator's approval.
func handleAdminListAuthorizers(pick pickPlatform, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		d, ok := platformFor(c, pick, log, hasDirectory)
		if !ok {
			return
		}
		ctx := c.Request.Context()
		list, err := d.Directory.ListAuthorizers(ctx, d.ComponentAppID)
		if err != nil {
			writeError(c, log, err)
			return
		}
		bindings, err := d.Directory.ListBindings(ctx, d.ComponentAppID)
		if err != nil {
			writeError(c, log, err)
			return
		}
		tenants, pending := map[string][]string{}, map[string][]string{}
		for _, b := range bindings {
			if b.Pending {
				pending[b.AppID] = append(pending[b.AppID], b.TenantID)
			} else {
				tenants[b.AppID] = append(tenants[b.AppID], b.TenantID)
			}
		}
		out := make([]adminAuthorizerJSON, 0, len(list))
		for _, a := range list {
			j := adminAuthorizerJSON{authorizerJSON: toAuthorizerJSON(a),
				Tenants: sortedOrEmpty(tenants[a.AppID]), PendingTenants: sortedOrEmpty(pending[a.AppID])}
			out = append(out, j)
		}
		c.PureJSON(http.StatusOK, gin.H{"authorizers": out})
	}
}

// adminAuthorizerJSON always carries "tenants", even when empty.
type adminAuthorizerJSON struct {
	authorizerJSON
	Tenants []string `json:"tenants"`
	// PendingTenants authorized the account while it was bound to another
	// tenant and wait for the operator's approval.
	PendingTenants []string `json:"pending_tenants"`
}

// handleAdminRefresh is POST /admin/authorizers/{appid}/refresh: a forced
// token refresh, answered with the account's AUTHORIZER.
func handleAdminRefresh(pick pickPlatform, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		d, ok := platformFor(c, pick, log, hasAuthorizers)
		if !ok {
			return
		}
		appid := c.Param("appid")
		c.Set(ctxAppID, appid)
		a, err := d.Authorizers.ForceRefresh(c.Request.Context(), appid)
		if err != nil {
			writeError(c, log, err)
			return
		}
		c.PureJSON(http.StatusOK, toAuthorizerJSON(a))
	}
}

type componentJSON struct {
	ComponentAppID   string   `json:"component_appid"`
	TicketReceivedAt *string  `json:"ticket_received_at"`
	TicketAgeSeconds *float64 `json:"ticket_age_seconds"`
	TokenExpiresAt   *string  `json:"token_expires_at"`
}

// handleAdminComponent is GET /admin/component: when the newest ticket
// arrived (and its age) and when the component token expires.
func handleAdminComponent(pick pickPlatform, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		d, ok := platformFor(c, pick, log, hasComponent)
		if !ok {
			return
		}
		st, err := d.Component.Status(c.Request.Context())
		if err != nil {
			writeError(c, log, err)
			return
		}
		out := componentJSON{ComponentAppID: st.ComponentAppID}
		if st.TicketReceivedAt != nil {
			out.TicketReceivedAt = optTime(*st.TicketReceivedAt)
			age := d.now().Sub(*st.TicketReceivedAt).Seconds()
			out.TicketAgeSeconds = &age
		}
		if st.TokenExpiresAt != nil {
			out.TokenExpiresAt = optTime(*st.TokenExpiresAt)
		}
		c.PureJSON(http.StatusOK, out)
	}
}
