package httpapi

import (
	"log/slog"
	"math"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/tenant"
)

// tenantJSON is a tenant in admin responses. rate_limit (requests per
// second) and rate_burst are the tenant's override, null when it uses the
// configured default.
type tenantJSON struct {
	ID string `json:"id"`
	// ComponentAppID is the platform the tenant belongs to.
	ComponentAppID string   `json:"component_appid"`
	Name           string   `json:"name"`
	CreatedAt      string   `json:"created_at"`
	RateLimit      *float64 `json:"rate_limit"`
	RateBurst      *int     `json:"rate_burst"`
	// ReturnURLHosts are the hosts the tenant's return_url may name; empty:
	// any host.
	ReturnURLHosts []string `json:"return_url_hosts"`
}

func newTenantJSON(t store.Tenant) tenantJSON {
	j := tenantJSON{ID: t.ID, ComponentAppID: t.ComponentAppID, Name: t.Name, CreatedAt: adminTime(t.CreatedAt), ReturnURLHosts: t.ReturnURLHosts}
	if j.ReturnURLHosts == nil {
		j.ReturnURLHosts = []string{}
	}
	if t.RateLimit > 0 {
		j.RateLimit = &t.RateLimit
	}
	if t.RateBurst > 0 {
		j.RateBurst = &t.RateBurst
	}
	return j
}

// createTenantRequest creates a tenant on the platform component_appid;
// absent, the default platform (WXGATE_COMPONENT_APPID).
type createTenantRequest struct {
	ComponentAppID string   `json:"component_appid,omitempty"`
	Name           string   `json:"name"`
	ReturnURLHosts []string `json:"return_url_hosts"`
}

// checkReturnURLHosts validates and normalises a return_url_hosts field.
func checkReturnURLHosts(f fieldErrors, hosts []string) []string {
	out, problem := tenant.ReturnURLHostsProblem(hosts)
	if problem != "" {
		f.add("return_url_hosts", problem)
	}
	return out
}

// handleCreateTenant creates a tenant: 201 {"id","component_appid","name",
// "created_at",…}; a taken name (on that platform) is conflict, a platform
// the gateway does not serve invalid_argument.
func handleCreateTenant(reg TenantRegistry, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req createTenantRequest
		if err := decodeJSONBody(c, &req, false); err != nil {
			writeError(c, log, err)
			return
		}
		f := fieldErrors{}
		req.Name = strings.TrimSpace(req.Name)
		checkName(f, "name", req.Name, true)
		hosts := checkReturnURLHosts(f, req.ReturnURLHosts)
		if req.ComponentAppID != "" && !config.ValidAppID(req.ComponentAppID) {
			f.add("component_appid", "must be a platform's appid: "+config.AppIDRule)
		}
		if err := f.err(); err != nil {
			writeError(c, log, err)
			return
		}
		t, err := reg.CreateTenant(c.Request.Context(), req.ComponentAppID, req.Name, func(t *store.Tenant) { t.ReturnURLHosts = hosts })
		if err != nil {
			writeError(c, log, err)
			return
		}
		c.PureJSON(http.StatusCreated, newTenantJSON(t))
	}
}

// handleListTenants answers {"tenants": […]} by creation time.
func handleListTenants(reg TenantRegistry, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		list, err := reg.ListTenants(c.Request.Context())
		if err != nil {
			writeError(c, log, err)
			return
		}
		out := make([]tenantJSON, len(list))
		for i, t := range list {
			out[i] = newTenantJSON(t)
		}
		c.PureJSON(http.StatusOK, gin.H{"tenants": out})
	}
}

// updateTenantRequest is a partial update: absent (or null) fields keep
// their value; a rate of 0 returns to the configured default.
type updateTenantRequest struct {
	Name      *string  `json:"name"`
	RateLimit *float64 `json:"rate_limit"`
	RateBurst *int     `json:"rate_burst"`
	// ReturnURLHosts replaces the list when present; [] allows any host again.
	ReturnURLHosts *[]string `json:"return_url_hosts"`
}

// handleUpdateTenant renames a tenant, sets its rate-limit override or its
// return_url hosts: 200 with the tenant. The new limit applies on every replica within 2 s.
func handleUpdateTenant(reg TenantRegistry, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req updateTenantRequest
		if err := decodeJSONBody(c, &req, false); err != nil {
			writeError(c, log, err)
			return
		}
		f := fieldErrors{}
		if req.Name != nil {
			*req.Name = strings.TrimSpace(*req.Name)
			checkName(f, "name", *req.Name, true)
		}
		if req.RateLimit != nil && (*req.RateLimit < 0 || *req.RateLimit > tenant.MaxRateLimit || math.IsNaN(*req.RateLimit)) {
			f.add("rate_limit", "must be between 0 (the default) and 100000 requests per second")
		}
		if req.RateBurst != nil && (*req.RateBurst < 0 || *req.RateBurst > tenant.MaxRateBurst) {
			f.add("rate_burst", "must be between 0 (the default) and 1000000")
		}
		var hosts []string
		if req.ReturnURLHosts != nil {
			hosts = checkReturnURLHosts(f, *req.ReturnURLHosts)
		}
		if err := f.err(); err != nil {
			writeError(c, log, err)
			return
		}
		t, err := reg.UpdateTenant(c.Request.Context(), c.Param("id"), func(t *store.Tenant) error {
			if req.Name != nil {
				t.Name = *req.Name
			}
			if req.RateLimit != nil {
				t.RateLimit = *req.RateLimit
			}
			if req.RateBurst != nil {
				t.RateBurst = *req.RateBurst
			}
			if req.ReturnURLHosts != nil {
				t.ReturnURLHosts = hosts
			}
			return nil
		})
		if err != nil {
			writeError(c, log, err)
			return
		}
		c.PureJSON(http.StatusOK, newTenantJSON(t))
	}
}

// handleDeleteTenant deletes a tenant with its keys and bindings: 204. Its
// keys are refused on every replica within 2 s.
func handleDeleteTenant(reg TenantRegistry, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := reg.DeleteTenant(c.Request.Context(), c.Param("id")); err != nil {
			writeError(c, log, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

// handleBind binds an existing authorizer to a tenant: 204; not_found if
// either is unknown.
func handleBind(b BindingManager, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := b.Bind(c.Request.Context(), c.Param("id"), c.Param("appid")); err != nil {
			writeError(c, log, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

// handleApproveBinding approves a binding an authorization left pending
// (the account was bound to another tenant): 204; not_found if the tenant
// is unknown or has no binding to the account.
func handleApproveBinding(b BindingManager, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := b.ApproveBinding(c.Request.Context(), c.Param("id"), c.Param("appid")); err != nil {
			writeError(c, log, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

// handleUnbind removes a binding: 204, also when there was none (DELETE is
// idempotent); not_found if the tenant is unknown.
func handleUnbind(b BindingManager, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := b.Unbind(c.Request.Context(), c.Param("id"), c.Param("appid")); err != nil {
			writeError(c, log, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

// bindingJSON is a binding in admin responses; daily_limit is null when the
// tenant has no cap on the account.
type bindingJSON struct {
	TenantID   string `json:"tenant_id"`
	AppID      string `json:"appid"`
	DailyLimit *int64 `json:"daily_limit"`
}

type bindingLimitRequest struct {
	DailyLimit *int64 `json:"daily_limit"`
}

// handleSetBindingLimit serves PATCH /admin/tenants/{id}/authorizers/{appid}
// {"daily_limit": N}: caps the tenant's calls per proxied API and Beijing
// day on the account (0 removes the cap); 200 with the binding, not_found
// if the account is not bound to the tenant.
func handleSetBindingLimit(b BindingManager, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req bindingLimitRequest
		if err := decodeJSONBody(c, &req, false); err != nil {
			writeError(c, log, err)
			return
		}
		f := fieldErrors{}
		switch {
		case req.DailyLimit == nil:
			f.add("daily_limit", "is required (0 removes the cap)")
		case *req.DailyLimit < 0 || *req.DailyLimit > 100_000_000:
			f.add("daily_limit", "must be between 0 (no cap) and 100000000")
		}
		if err := f.err(); err != nil {
			writeError(c, log, err)
			return
		}
		binding, err := b.SetDailyLimit(c.Request.Context(), c.Param("id"), c.Param("appid"), *req.DailyLimit)
		if err != nil {
			writeError(c, log, err)
			return
		}
		out := bindingJSON{TenantID: binding.TenantID, AppID: binding.AppID}
		if binding.DailyLimit > 0 {
			out.DailyLimit = &binding.DailyLimit
		}
		c.PureJSON(http.StatusOK, out)
	}
}
