package httpapi

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/platform"
	"github.com/wxgate/wxgate/internal/secret"
)

// platformJSON is a platform in admin responses: never a secret, and the
// two URLs to enter on WeChat's platform page for it.
type platformJSON struct {
	AppID   string `json:"appid"`
	Default bool   `json:"default"`
	// CreatedAt is when it was registered; null for the default platform.
	CreatedAt *string `json:"created_at"`
	// EventURL is its authorization event receive URL.
	EventURL string `json:"event_url"`
	// MessageURL is its message and event receive URL, $APPID$ standing
	// for the account as WeChat expects.
	MessageURL string `json:"message_url"`
}

func newPlatformJSON(i platform.Info, publicURL string) platformJSON {
	base := strings.TrimRight(publicURL, "/") + "/wechat"
	if !i.Default {
		base += "/components/" + i.AppID
	}
	return platformJSON{AppID: i.AppID, Default: i.Default, CreatedAt: optTime(i.CreatedAt),
		EventURL: base + "/events", MessageURL: base + "/accounts/$APPID$/callback"}
}

type createPlatformRequest struct {
	AppID  string `json:"appid"`
	Secret string `json:"secret"`
	Token  string `json:"token"`
	AESKey string `json:"aes_key"`
}

// handleCreateComponent is POST /admin/components: registers a platform
// with its settings (sealed in the store, never answered back) and serves
// it on every replica.
func handleCreateComponent(ps Platforms, publicURL string, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req createPlatformRequest
		if err := decodeJSONBody(c, &req, false); err != nil {
			writeError(c, log, err)
			return
		}
		info, err := ps.AddPlatform(c.Request.Context(), platform.Settings{
			AppID: strings.TrimSpace(req.AppID), Secret: secret.Value(req.Secret),
			Token: secret.Value(req.Token), AESKey: secret.Value(req.AESKey),
		})
		if err != nil {
			writeError(c, log, err)
			return
		}
		c.PureJSON(http.StatusCreated, newPlatformJSON(info, publicURL))
	}
}

// updatePlatformRequest changes a registered platform's settings: the
// fields given replace the stored ones.
type updatePlatformRequest struct {
	Secret string `json:"secret"`
	Token  string `json:"token"`
	AESKey string `json:"aes_key"`
}

// handleUpdateComponent is PUT /admin/components/{component_appid}: new
// settings for a registered platform (an appsecret reset on WeChat's
// page, a new Token or key), served by every replica within a poll.
func handleUpdateComponent(ps Platforms, publicURL string, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		appid := c.Param("component")
		if err := checkAppID(appid); err != nil {
			writeError(c, log, errs.Invalid("component_appid", "the component appid in the path is malformed"))
			return
		}
		var req updatePlatformRequest
		if err := decodeJSONBody(c, &req, false); err != nil {
			writeError(c, log, err)
			return
		}
		if req.Secret == "" && req.Token == "" && req.AESKey == "" {
			writeError(c, log, errs.E(errs.InvalidArgument, "give at least one of secret, token and aes_key"))
			return
		}
		info, err := ps.UpdatePlatform(c.Request.Context(), appid, platform.Settings{
			Secret: secret.Value(req.Secret), Token: secret.Value(req.Token), AESKey: secret.Value(req.AESKey),
		})
		if err != nil {
			writeError(c, log, err)
			return
		}
		c.PureJSON(http.StatusOK, newPlatformJSON(info, publicURL))
	}
}

// handleListComponents is GET /admin/components: the default platform
// first, then the registered ones.
func handleListComponents(ps Platforms, publicURL string, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		list, err := ps.ListPlatforms(c.Request.Context())
		if err != nil {
			writeError(c, log, err)
			return
		}
		out := make([]platformJSON, 0, len(list))
		for _, i := range list {
			out = append(out, newPlatformJSON(i, publicURL))
		}
		c.PureJSON(http.StatusOK, gin.H{"components": out})
	}
}

// handleDeleteComponent is DELETE /admin/components/{component_appid}:
// 204, or conflict while tenants belong to the platform (and for the
// default one).
func handleDeleteComponent(ps Platforms, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		appid := c.Param("component")
		if err := checkAppID(appid); err != nil {
			writeError(c, log, errs.Invalid("component_appid", "the component appid in the path is malformed"))
			return
		}
		if err := ps.RemovePlatform(c.Request.Context(), appid); err != nil {
			writeError(c, log, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}
