package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/config"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/tenant"
)

// Bounds of a key request.
const (
	maxKeyTTLSeconds = int64(tenant.MaxKeyTTL / time.Second)
	maxKeyAppIDs     = tenant.MaxKeyAppIDs
)

type issueKeyRequest struct {
	Name       string   `json:"name"`
	TTLSeconds *int64   `json:"ttl_seconds"`
	AppIDs     []string `json:"appids"`
}

// issueKeyResponse carries the key itself: the one time it is ever shown.
type issueKeyResponse struct {
	KID       string   `json:"kid"`
	Key       string   `json:"key"`
	ExpiresAt *string  `json:"expires_at"`
	TenantID  string   `json:"tenant_id"`
	Name      string   `json:"name"`
	AppIDs    []string `json:"appids"`
	CreatedAt string   `json:"created_at"`
}

// keyJSON is a key's metadata; the key itself is never stored.
type keyJSON struct {
	KID        string   `json:"kid"`
	Name       string   `json:"name"`
	AppIDs     []string `json:"appids"`
	CreatedAt  string   `json:"created_at"`
	ExpiresAt  *string  `json:"expires_at"`
	RevokedAt  *string  `json:"revoked_at"`
	LastUsedAt *string  `json:"last_used_at"`
}

// newKeyJSON answers an unrestricted key's appids as null, never []: an
// admin tool that sends back what it read must not meet the refusal of an
// empty restriction.
func newKeyJSON(k store.Key) keyJSON {
	var appids []string
	if len(k.AppIDs) > 0 {
		appids = k.AppIDs
	}
	return keyJSON{KID: k.KID, Name: k.Name, AppIDs: appids, CreatedAt: adminTime(k.CreatedAt),
		ExpiresAt: adminTimePtr(k.ExpiresAt), RevokedAt: adminTimePtr(k.RevokedAt), LastUsedAt: adminTimePtr(k.LastUsedAt)}
}

// handleIssueKey issues a key for a tenant: 201 {"kid","key","expires_at",…}.
// Every field is optional: ttl_seconds 0 or absent means no expiry; appids
// restricts the key to those accounts (an empty list is invalid_argument,
// an absent one an unrestricted key). The response is not cacheable.
func handleIssueKey(keys KeyManager, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req issueKeyRequest
		if err := decodeJSONBody(c, &req, true); err != nil {
			writeError(c, log, err)
			return
		}
		f := fieldErrors{}
		req.Name = strings.TrimSpace(req.Name)
		checkName(f, "name", req.Name, false)
		var ttl time.Duration
		if req.TTLSeconds != nil {
			if *req.TTLSeconds < 0 || *req.TTLSeconds > maxKeyTTLSeconds {
				f.add("ttl_seconds", fmt.Sprintf("must be between 0 (no expiry) and %d", maxKeyTTLSeconds))
			} else {
				ttl = time.Duration(*req.TTLSeconds) * time.Second
			}
		}
		// An empty list is refused rather than read as "no restriction": an
		// admin tool that sends an empty filter must not hand out every account.
		// An unrestricted key omits the field.
		if req.AppIDs != nil && len(req.AppIDs) == 0 {
			f.add("appids", "must list at least one account; omit the field for a key that may call every account")
		} else if len(req.AppIDs) > maxKeyAppIDs {
			f.add("appids", fmt.Sprintf("must list at most %d accounts", maxKeyAppIDs))
		}
		for i, a := range req.AppIDs {
			if !config.ValidAppID(a) {
				f.add(fmt.Sprintf("appids[%d]", i), "must be a WeChat appid (wx followed by 16 letters or digits)")
			}
		}
		if err := f.err(); err != nil {
			writeError(c, log, err)
			return
		}
		k, raw, err := keys.IssueKey(c.Request.Context(), c.Param("id"), tenant.KeyRequest{Name: req.Name, TTL: ttl, AppIDs: req.AppIDs})
		if err != nil {
			writeError(c, log, err)
			return
		}
		j := newKeyJSON(k)
		c.Header("Cache-Control", "no-store")
		c.PureJSON(http.StatusCreated, issueKeyResponse{KID: k.KID, Key: raw.Reveal(), ExpiresAt: j.ExpiresAt,
			TenantID: k.TenantID, Name: k.Name, AppIDs: j.AppIDs, CreatedAt: j.CreatedAt})
	}
}

// handleListKeys answers {"keys": […]} for a tenant, newest first.
func handleListKeys(keys KeyManager, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		list, err := keys.ListKeys(c.Request.Context(), c.Param("id"))
		if err != nil {
			writeError(c, log, err)
			return
		}
		out := make([]keyJSON, len(list))
		for i, k := range list {
			out[i] = newKeyJSON(k)
		}
		c.PureJSON(http.StatusOK, gin.H{"keys": out})
	}
}

// handleRevokeKey revokes a key: 204 (again: 204); not_found if unknown.
// Every replica refuses it within 2 s.
func handleRevokeKey(keys KeyManager, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := keys.RevokeKey(c.Request.Context(), c.Param("kid")); err != nil {
			writeError(c, log, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}
