package httpapi

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/proxy"
	"github.com/wxgate/wxgate/internal/quota"
	"github.com/wxgate/wxgate/internal/tenant"
	"github.com/wxgate/wxgate/internal/wechat"
)

// Proxy runs proxied WeChat calls (internal/proxy.Service).
type Proxy interface {
	// Check refuses a call locally (not_found, authorizer_unauthorized,
	// permission_set_missing) before anything is sent to WeChat;
	// store_unavailable if an account this replica has not loaded yet
	// cannot be read.
	Check(ctx context.Context, api *proxy.API, appid string) error
	// Call returns WeChat's body unchanged, or an error carrying WeChat's
	// errcode, on tenantID's behalf (rate_limited with details.scope when
	// a daily quota refuses it locally).
	Call(ctx context.Context, api *proxy.API, appid, tenantID string, args proxy.Args) ([]byte, error)
	// Walk pages through a list, handing each page's openids to emit; on
	// failure it returns the cursor to resume from.
	// before (if not nil) is asked before each page is fetched.
	Walk(ctx context.Context, api *proxy.API, appid, tenantID string, args proxy.Args, before func() error, emit func([]string) error) (string, int, error)
	// Quotas returns the account's daily quota of every API with one
	// (not_found, authorizer_unauthorized as Check).
	Quotas(ctx context.Context, appid string) ([]quota.Status, error)
	// ClearQuota calls clear_quota and returns the fresh quotas;
	// rate_limited once the month's clears are used.
	ClearQuota(ctx context.Context, appid string) ([]quota.Status, error)
}

// ProxyDeps are what the proxied routes need.
type ProxyDeps struct {
	Service  Proxy
	Bindings BindingChecker
	// Access re-checks a running export's caller before each page; nil
	// checks only at the start.
	Access  AccessRechecker
	Usage   UsageRecorder
	Metrics *obs.Metrics
	Log     *slog.Logger
	// ExportProgressEvery is how often a long export logs its progress.
	ExportProgressEvery time.Duration
	// Exports caps the exports running at once and gives each its
	// deadline; nil refuses none and sets no deadline beyond the page window.
	Exports *proxy.Exports
}

// AccessRechecker decides again, from memory, whether an authenticated
// caller may still call an account (tenant.Directory.Recheck).
type AccessRechecker interface {
	// Recheck answers nil while p's key, its tenant and the binding to
	// appid stand: unauthenticated once the key or tenant is gone, not_found
	// once the account is unbound, store_unavailable past the directory's
	// staleness limit.
	Recheck(p tenant.Principal, appid string) error
}

// outcome is the usage/metrics label of a call's result.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return string(errs.CodeOf(err))
}

// account authorizes the route's appid for the caller and tags the request
// for the access log.
func (d ProxyDeps) account(c *gin.Context, api *proxy.API) (string, error) {
	c.Set(ctxAPI, api.Name)
	appid := c.Param("appid")
	return appid, authorizeAppID(c, d.Bindings, appid)
}

// countCall counts a proxied call in the metrics, by tenant (bounded by
// the operator's tenants; the account is left to the access log and the
// usage report, as thousands of appids would explode the series).
func (d ProxyDeps) countCall(c *gin.Context, api *proxy.API, surface, outcome string) {
	m := d.Metrics
	if p := platformFrom(c); p != nil && p.Metrics != nil {
		m = p.Metrics
	}
	m.ProxyCall(api.Name, surface, outcome, principalTenant(c)).Inc()
}

// service is the proxy of the request's platform (set by
// usePlatform), Service without one.
func (d ProxyDeps) service(c *gin.Context) Proxy {
	if p := platformFrom(c); p != nil && p.Proxy != nil {
		return p.Proxy
	}
	return d.Service
}

// finish records a finished call in usage and metrics and leaves WeChat's
// errcode for the access log.
func (d ProxyDeps) finish(c *gin.Context, api *proxy.API, surface, appid string, err error) {
	d.countCall(c, api, surface, outcome(err))
	if code := wechat.ErrcodeOf(err); code != 0 {
		c.Set(ctxWeChat, code)
	}
	if p, ok := principalFrom(c); ok && appid != "" {
		d.Usage.Record(p.TenantID, appid, api.Name, outcome(err))
	}
}

// proxiedRoutes remembers which API and surface each proxied route serves,
// so a call the group's middleware refuses (the tenant's rate limit) is
// counted in usage and metrics like the handlers' own outcomes.
type proxiedRoutes map[string]proxiedRoute

type proxiedRoute struct {
	api     *proxy.API
	surface string
}

func (p proxiedRoutes) handle(g *gin.RouterGroup, method, path string, api *proxy.API, surface string, h ...gin.HandlerFunc) {
	p[g.BasePath()+path] = proxiedRoute{api: api, surface: surface}
	g.Handle(method, path, h...)
}

// refused records a proxied call refused before its handler ran.
func (p proxiedRoutes) refused(d ProxyDeps) func(*gin.Context, error) {
	return func(c *gin.Context, err error) {
		if r, ok := p[c.FullPath()]; ok {
			c.Set(ctxAPI, r.api.Name)
			d.finish(c, r.api, r.surface, c.Param("appid"), err)
		}
	}
}

// handleProxyREST serves GET /v1/authorizers/{appid}/… for api: WeChat's
// body as WeChat returned it, or the contract's error.
func handleProxyREST(api *proxy.API, d ProxyDeps) gin.HandlerFunc {
	return func(c *gin.Context) {
		appid, err := d.account(c, api)
		var args proxy.Args
		if err == nil {
			args, err = api.RESTArgs(c.Param, c.Request.URL.Query())
		}
		var body []byte
		if err == nil {
			body, err = d.service(c).Call(c.Request.Context(), api, appid, principalTenant(c), args)
		}
		d.finish(c, api, "rest", appid, err)
		if err != nil {
			writeError(c, d.Log, err)
			return
		}
		c.Data(http.StatusOK, "application/json; charset=utf-8", body)
	}
}

// handleCompat serves /wx/{appid}{api.Path}: WeChat's own request and
// answer shapes, errors as {"errcode","errmsg"} with HTTP 200.
func handleCompat(api *proxy.API, d ProxyDeps) gin.HandlerFunc {
	return func(c *gin.Context) {
		appid, err := d.account(c, api)
		if err != nil {
			d.finish(c, api, "compat", appid, err)
			writeWeChatError(c, d.Log, err)
			return
		}
		var body []byte
		if api.Method == http.MethodPost {
			body, err = io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, proxy.MaxBodyBytes))
			if err != nil {
				err = errs.Wrap(errs.InvalidArgument, "the body is too large or unreadable", err)
			}
		}
		var args proxy.Args
		if err == nil {
			args, err = api.CompatArgs(c.Request.URL.Query(), body)
		}
		if err != nil {
			d.finish(c, api, "compat", appid, err)
			writeWeChatError(c, d.Log, err)
			return
		}
		out, err := d.service(c).Call(c.Request.Context(), api, appid, principalTenant(c), args)
		d.finish(c, api, "compat", appid, err)
		if err != nil {
			writeWeChatError(c, d.Log, err)
			return
		}
		writeWeChatJSON(c, out)
	}
}

// handleCloudCall serves POST /v1/openapi/{name}: a proxied API under
// WeChat's cloud-call name, the body the cloud call takes plus "appid";
// WeChat's body as WeChat returned it, errors as on every /v1 route.
func handleCloudCall(d ProxyDeps) gin.HandlerFunc {
	return func(c *gin.Context) {
		api, ok := proxy.ByCloudName(c.Param("name"))
		if !ok {
			writeError(c, d.Log, errs.E(errs.NotFound, "no proxied API has this cloud-call name"))
			return
		}
		c.Set(ctxAPI, api.Name)
		var appid string
		var args proxy.Args
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, proxy.MaxBodyBytes))
		if err != nil {
			err = errs.Wrap(errs.InvalidArgument, "the body is too large or unreadable", err)
		}
		if err == nil {
			appid, args, err = api.CloudArgs(body)
		}
		if err == nil {
			err = authorizeAppID(c, d.Bindings, appid)
		}
		var out []byte
		if err == nil {
			out, err = d.service(c).Call(c.Request.Context(), api, appid, principalTenant(c), args)
		}
		d.finish(c, api, "cloud", appid, err)
		if err != nil {
			writeError(c, d.Log, err)
			return
		}
		c.Data(http.StatusOK, "application/json; charset=utf-8", out)
	}
}

// quotaJSON is one API's daily quota in GET …/quota and the clear answer.
type quotaJSON struct {
	API        string  `json:"api"`
	CGIPath    string  `json:"cgi_path"`
	DailyLimit *int64  `json:"daily_limit"`
	Used       int64   `json:"used"`
	Remain     *int64  `json:"remain"`
	ResetsAt   string  `json:"resets_at"`
	CheckedAt  *string `json:"checked_at"`
}

// quotaList is the answer of GET …/quota and of the clear.
type quotaList struct {
	APIs []quotaJSON `json:"apis"`
}

func quotasJSON(list []quota.Status) quotaList {
	out := make([]quotaJSON, len(list))
	for i, s := range list {
		q := quotaJSON{API: s.API, CGIPath: s.CGIPath, Used: s.Used, ResetsAt: adminTime(s.ResetsAt)}
		if s.DailyLimit > 0 {
			q.DailyLimit, q.Remain = &s.DailyLimit, &s.Remain
		}
		if !s.CheckedAt.IsZero() {
			q.CheckedAt = adminTimePtr(&s.CheckedAt)
		}
		out[i] = q
	}
	return quotaList{APIs: out}
}

// handleQuota serves GET /v1/authorizers/{appid}/quota: the account's
// daily quota of every proxied API with one.
func handleQuota(d ProxyDeps) gin.HandlerFunc {
	return func(c *gin.Context) {
		appid := c.Param("appid")
		err := authorizeAppID(c, d.Bindings, appid)
		var list []quota.Status
		if err == nil {
			list, err = d.service(c).Quotas(c.Request.Context(), appid)
		}
		if err != nil {
			writeError(c, d.Log, err)
			return
		}
		c.PureJSON(http.StatusOK, quotasJSON(list))
	}
}

// handleClearQuota serves POST /admin/authorizers/{appid}/quota/clear:
// clear_quota, then the fresh quotas; rate_limited once the account's
// clears of the month are used.
func handleClearQuota(d ProxyDeps) gin.HandlerFunc {
	return func(c *gin.Context) {
		appid := c.Param("appid")
		c.Set(ctxAppID, appid)
		list, err := d.service(c).ClearQuota(c.Request.Context(), appid)
		if err != nil {
			writeError(c, d.Log, err)
			return
		}
		c.PureJSON(http.StatusOK, quotasJSON(list))
	}
}

// exportFormat writes one export stream's lines.
type exportFormat struct {
	contentType string
	header      string
	line        func(w *bufio.Writer, openid string)
	fail        func(w *bufio.Writer, e *errs.Error, resume string)
}

var exportFormats = map[string]exportFormat{
	"ndjson": {
		contentType: "application/x-ndjson",
		line: func(w *bufio.Writer, openid string) {
			w.WriteString(`{"openid":`)
			writeJSONString(w, openid)
			w.WriteString("}\n")
		},
		fail: func(w *bufio.Writer, e *errs.Error, resume string) {
			line := struct {
				Error      errorPayload `json:"error"`
				NextOpenID string       `json:"next_openid"`
				Resumable  bool         `json:"resumable"`
				RetryAfter int          `json:"retry_after_seconds,omitempty"`
			}{errorPayload{Code: e.Code, Message: e.Message, Details: payloadDetails(e)}, resume, resumable(e), retryAfterSeconds(e)}
			enc := json.NewEncoder(w) // Encode ends the line
			enc.SetEscapeHTML(false)
			_ = enc.Encode(line)
		},
	},
	"csv": {
		contentType: "text/csv; charset=utf-8",
		header:      "openid\n",
		line: func(w *bufio.Writer, openid string) {
			w.WriteString(openid)
			w.WriteByte('\n')
		},
		fail: func(w *bufio.Writer, e *errs.Error, resume string) {
			// One field, so a CSV reader of the one-column file accepts it;
			// quoted by encoding/csv when the message needs it.
			var b strings.Builder
			fmt.Fprintf(&b, "#error code=%s", e.Code)
			if e.WeChatErrcode != 0 {
				fmt.Fprintf(&b, " wechat_errcode=%d", e.WeChatErrcode)
			}
			fmt.Fprintf(&b, " resumable=%t", resumable(e))
			if s := retryAfterSeconds(e); s > 0 {
				fmt.Fprintf(&b, " retry_after_seconds=%d", s)
			}
			fmt.Fprintf(&b, " next_openid=%s message=%s", resume, e.Message)
			cw := csv.NewWriter(w)
			_ = cw.Write([]string{b.String()})
			cw.Flush()
		},
	},
}

// resumable says whether resuming an export from its cursor can help: yes
// after an outage, a timeout, WeChat's -1 or a rate limit (after
// Retry-After); never after a refusal that the same request meets again
// (an invalid cursor 40003 or tag 45159, a missing permission set 61007, an
// account that left, a revoked key), which would otherwise invite an
// endless resume loop.
func resumable(e *errs.Error) bool {
	switch e.Code {
	case errs.RateLimited, errs.UpstreamTimeout, errs.Internal:
		return true
	case errs.UpstreamError:
		return e.WeChatErrcode == wechat.ErrSystemBusy
	}
	// upstream_unavailable, component_not_ready, store_unavailable: a 503
	// says "try again later" by definition.
	return statusOf[e.Code] == http.StatusServiceUnavailable
}

// retryAfterSeconds is e's Retry-After in whole seconds, 0 if none.
func retryAfterSeconds(e *errs.Error) int {
	if e.RetryAfter <= 0 {
		return 0
	}
	return int(math.Ceil(e.RetryAfter.Seconds()))
}

// writeJSONString writes s as a JSON string; openids need no escaping, so
// only unusual input takes the slow path.
func writeJSONString(w *bufio.Writer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			b, _ := json.Marshal(s)
			w.Write(b)
			return
		}
	}
	w.WriteByte('"')
	w.WriteString(s)
	w.WriteByte('"')
}

// exportWriteWindow is how long one page may take to reach the client.
const exportWriteWindow = time.Minute

// exportWriteDeadline is the write deadline of a page sent at now: the page
// window, but never past the export's own deadline (zero: none).
func exportWriteDeadline(now, deadline time.Time) time.Time {
	w := now.Add(exportWriteWindow)
	if !deadline.IsZero() && deadline.Before(w) {
		return deadline
	}
	return w
}

// handleExport serves GET /v1/authorizers/{appid}/…/export: every page,
// fetched by the gateway and streamed as it arrives, in constant memory.
// Local refusals (the key, the binding, the permission sets, bad input) are
// ordinary error answers; once WeChat has been asked, any failure, even of
// the first page, ends a 200 stream with the error line carrying the cursor
// to resume from (docs/api.md, "Proxied account APIs"). A client that goes away stops the walk at
// once.
func handleExport(api *proxy.API, d ProxyDeps) gin.HandlerFunc {
	return func(c *gin.Context) {
		appid, err := d.account(c, api)
		var format exportFormat
		if err == nil {
			var ok bool
			if format, ok = exportFormats[c.DefaultQuery("format", "ndjson")]; !ok {
				err = errs.Invalid("format", "format must be ndjson or csv")
			}
		}
		var args proxy.Args
		if err == nil {
			args, err = api.RESTArgs(c.Param, c.Request.URL.Query())
		}
		if err == nil {
			err = d.service(c).Check(c.Request.Context(), api, appid)
		}
		if err != nil {
			d.finish(c, api, "export", appid, err)
			writeError(c, d.Log, err)
			return
		}
		// deadline is when the whole export must have reached the client,
		// set once: a reader that stalls or trickles cannot renew it page
		// after page.
		var deadline time.Time
		if d.Exports != nil {
			done, err := d.Exports.Start(principalTenant(c))
			if err != nil {
				d.finish(c, api, "export", appid, err)
				// A client refused for too many exports may hold many
				// connections: this one is not kept for another request.
				c.Header("Connection", "close")
				writeError(c, d.Log, err)
				return
			}
			defer done()
			if lim := d.Exports.Limits().Deadline; lim > 0 {
				deadline = time.Now().Add(lim)
			}
		}
		ctx := c.Request.Context()
		d.Metrics.ExportsInProgress.Inc()
		defer d.Metrics.ExportsInProgress.Dec()

		rc := http.NewResponseController(c.Writer)
		w := bufio.NewWriterSize(c.Writer, 64<<10)
		started, followers, start, lastLog := false, 0, time.Now(), time.Now()
		begin := func() {
			if started {
				return
			}
			started = true
			c.Header("Content-Type", format.contentType)
			c.Header("X-Content-Type-Options", "nosniff")
			c.Header("Cache-Control", "no-store")
			c.Status(http.StatusOK)
			w.WriteString(format.header)
		}
		pages := 0
		emit := func(openids []string) error {
			begin()
			_ = rc.SetWriteDeadline(exportWriteDeadline(time.Now(), deadline))
			for _, id := range openids {
				format.line(w, id)
			}
			followers += len(openids)
			pages++
			d.Usage.Record(principalTenant(c), appid, api.Name, "ok")
			if err := w.Flush(); err != nil {
				return err
			}
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return err
			}
			if d.ExportProgressEvery > 0 && time.Since(lastLog) >= d.ExportProgressEvery {
				lastLog = time.Now()
				d.Log.InfoContext(ctx, "export progress", "api", api.Name, "appid", appid, "pages", pages, "followers", followers, "elapsed_ms", time.Since(start).Milliseconds())
			}
			return nil
		}
		// Before each page: is the key, its tenant and the binding still
		// there? A revocation on any replica ends the stream with the error
		// line within the directory's poll interval.
		var before func() error
		if p, ok := principalFrom(c); ok && d.Access != nil {
			before = func() error { return d.Access.Recheck(p, appid) }
		}
		resume, _, err := d.service(c).Walk(ctx, api, appid, principalTenant(c), args, before, emit)
		switch {
		case err != nil && ctx.Err() != nil:
			d.countCall(c, api, "export", outcome(err))
			d.Log.InfoContext(ctx, "export stopped: client went away", "api", api.Name, "appid", appid, "pages", pages, "followers", followers)
			return
		case err != nil:
			// Every page that arrived was counted as it went out; this
			// counts the failed one (usage, metrics, errcode in the log).
			d.finish(c, api, "export", appid, err)
			e := normalize(c, d.Log, err)
			if !started {
				setRetryAfter(c, e)
			}
			begin()
			c.Set(ctxErrCode, string(e.Code))
			format.fail(w, e, resume)
		default:
			d.countCall(c, api, "export", "ok")
			begin()
		}
		_ = w.Flush()
		d.Log.InfoContext(ctx, "export finished", "api", api.Name, "appid", appid, "pages", pages, "followers", followers,
			"elapsed_ms", time.Since(start).Milliseconds(), "complete", err == nil)
	}
}

func principalTenant(c *gin.Context) string {
	p, _ := principalFrom(c)
	return p.TenantID
}
