package wechat

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/secret"
)

// Defaults of Options.
const (
	// DefaultMaxAttempts is a ceiling per call, not the retry policy:
	// retries are granted by RetryPolicy's budgets and the call's
	// deadline; eight attempts in a row fail by chance with probability
	// under 10⁻⁶ even when a sixth of WeChat's answers are failures.
	DefaultMaxAttempts    = 8
	DefaultBaseBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff     = 2 * time.Second
	DefaultAttemptTimeout = 10 * time.Second
	DefaultMaxBodyBytes   = 32 << 20
	// DefaultMaxConnsPerHost sizes the keep-alive pool: the gateway talks
	// to one host (api.weixin.qq.com) from many goroutines at once.
	DefaultMaxConnsPerHost = 256
)

// Options configure a Client. Zero fields take the defaults above.
type Options struct {
	// BaseURL is WXGATE_WECHAT_API_URL, e.g. https://api.weixin.qq.com.
	BaseURL string
	// ComponentAppID and ComponentSecret identify the platform on the
	// component APIs.
	ComponentAppID  string
	ComponentSecret secret.Value
	// MaxAttempts is the ceiling of attempts of one call (first try +
	// retries); the retry budgets and the deadline usually end a failing
	// call first.
	MaxAttempts int
	// BaseBackoff caps the first retry's pause; each later cap doubles, up
	// to MaxBackoff, and the pause is drawn below it (full jitter).
	BaseBackoff, MaxBackoff time.Duration
	// Retry is the retry policy (default: NewRetryPolicy with
	// MaxAttempts, BaseBackoff and MaxBackoff and the default budgets).
	// Tests inject one with their own clock and random source.
	Retry *RetryPolicy
	// AttemptTimeout bounds one attempt; the caller's context bounds the
	// whole call including retries.
	AttemptTimeout time.Duration
	// MaxBodyBytes caps a response body.
	MaxBodyBytes int64
	// HTTPClient overrides the tuned client (tests).
	HTTPClient *http.Client
	// Metrics receives UpstreamCalls, UpstreamDuration and UpstreamRetries
	// (nil: not recorded).
	Metrics *obs.Metrics
	// Logger receives retry and failure logs, never a token or a query
	// string (default: discard).
	Logger *slog.Logger
}

// Client calls WeChat. It is safe for concurrent use; build one per process
// and share it, so every call reuses the same keep-alive pool and the
// replica's retry budget.
type Client struct {
	base    *url.URL
	opts    Options
	http    *http.Client
	rt      http.RoundTripper
	retry   *RetryPolicy
	log     *slog.Logger
	metrics *obs.Metrics
	reach   *reach
}

// New builds a Client. It fails only on a malformed BaseURL.
func New(opts Options) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(opts.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("wechat: base URL %q is not an absolute http(s) URL", opts.BaseURL)
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = DefaultAttemptTimeout
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = NewHTTPClient()
	}
	// Calls go to the transport itself: the client's redirect and header
	// copying machinery has nothing to do here (WeChat APIs never
	// redirect; a 3xx is an unexpected status, as with CheckRedirect
	// answering ErrUseLastResponse).
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	retry := opts.Retry
	if retry == nil { // NewRetryPolicy fills in the defaults of the three
		retry = NewRetryPolicy(RetryOptions{MaxAttempts: opts.MaxAttempts, BaseBackoff: opts.BaseBackoff, MaxBackoff: opts.MaxBackoff})
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{base: base, opts: opts, http: hc, rt: rt, retry: retry, log: log, metrics: opts.Metrics, reach: &reach{}}, nil
}

// ForComponent returns a client for another third-party platform of the
// deployment: its own component appid, secret and metrics, and this
// client's keep-alive pool, retry budgets and reachability, which are the
// replica's whatever the platform.
func (c *Client) ForComponent(appid string, secret secret.Value, metrics *obs.Metrics) *Client {
	o := c.opts
	o.ComponentAppID, o.ComponentSecret, o.Metrics = appid, secret, metrics
	return &Client{base: c.base, opts: o, http: c.http, rt: c.rt, retry: c.retry, log: c.log, metrics: metrics, reach: c.reach}
}

// ComponentAppID is the platform this client calls the component APIs for.
func (c *Client) ComponentAppID() string { return c.opts.ComponentAppID }

// NewHTTPClient returns the tuned client every WeChat call goes through: a
// keep-alive pool sized for hundreds of concurrent calls to one host, and
// dial, TLS and response-header timeouts. It has no overall timeout: each
// call is bounded by its context. The read buffer is larger than the
// default 4 KiB so that a 10,000-openid page (about 300 KB) is read in
// fewer system calls.
func NewHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		ReadBufferSize:        32 << 10,
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          DefaultMaxConnsPerHost * 2,
		MaxIdleConnsPerHost:   DefaultMaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	return &http.Client{
		Transport: tr,
		// WeChat APIs never redirect; following one could leak the token.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CloseIdle closes idle keep-alive connections (shutdown, tests).
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// Request is one WeChat API call.
type Request struct {
	// API names the call in metrics and logs ("user/get",
	// "api_authorizer_token"); it must be a bounded label.
	API string
	// Method is GET or POST (default POST when Body is set, else GET).
	Method string
	// Path is the upstream path, e.g. "/cgi-bin/user/get".
	Path string
	// Query holds the parameters other than the token.
	Query url.Values
	// Body is sent as JSON when not nil.
	Body []byte
	// AccessToken is sent as access_token (an authorizer's token).
	AccessToken secret.Value
	// ComponentToken is sent as component_access_token (component APIs).
	ComponentToken secret.Value
	// Account is the authorizer appid the call is for: it keys the
	// account's retry budget ("" for the platform's own calls, which
	// share one).
	Account string
}

// Response is WeChat's answer. Body is the raw body, unchanged; Errcode and
// Errmsg are read from it when it carries them (0 and "" otherwise).
type Response struct {
	Body    []byte
	Errcode int
	Errmsg  string
	// Attempts is how many attempts the call took.
	Attempts int
}

// OK reports whether WeChat answered without an errcode.
func (r Response) OK() bool { return r.Errcode == 0 }

// Err maps a WeChat errcode answer to the domain error (nil on success).
func (r Response) Err() error {
	if r.Errcode == 0 {
		return nil
	}
	return AsError(r.Errcode, r.Errmsg)
}

// attempt outcomes, also the errcode label of UpstreamCalls for failures
// that carry no errcode.
const (
	outcomeHTTP5xx = "http_5xx"
	outcomeHTTP    = "http_status"
	outcomeNetwork = "network"
	outcomeTimeout = "timeout"
)

// Call sends req and returns WeChat's answer. This is the one place with
// the retry policy: errcode -1, HTTP 5xx, connection resets, EOFs and
// attempt timeouts are retryable, and each is retried when the RetryPolicy
// grants it (room in the account's and the replica's budget, time before
// the context's deadline, an attempt under the ceiling), after a pause
// with exponential backoff and full jitter; nothing else is retried (never
// a 4xxxx errcode).
//
// An errcode answer is returned as data in Response with a nil error (also
// -1 once retries end); map it with Response.Err or AsError. The error is
// an *errs.Error: upstream_unavailable (5xx, unreachable, body too large or
// unreadable), upstream_timeout (the context's deadline passed or attempts
// kept timing out), or upstream_error (an unexpected HTTP status).
func (c *Client) Call(ctx context.Context, req Request) (Response, error) {
	deadline, _ := ctx.Deadline()
	var (
		lastErr  error
		lastResp Response
	)
	for attempt := 1; ; attempt++ {
		c.retry.Attempt(req.Account)
		resp, outcome, err := c.once(ctx, req)
		resp.Attempts = attempt
		if err == nil && resp.Errcode != ErrSystemBusy {
			return resp, nil
		}
		lastResp, lastErr = resp, err
		if !retryable(outcome, err) || ctx.Err() != nil {
			break
		}
		reason := outcome
		if err == nil {
			reason = "errcode_-1"
		}
		pause, why, ok := c.retry.Retry(req.Account, attempt, deadline)
		if !ok {
			if c.metrics != nil {
				c.metrics.UpstreamGiveUps.WithLabelValues(req.API, why).Inc()
			}
			c.log.DebugContext(ctx, "wechat: not retrying", "api", req.API, "attempt", attempt, "reason", reason, "why", why)
			break
		}
		if c.metrics != nil {
			c.metrics.UpstreamRetries.WithLabelValues(req.API, reason).Inc()
		}
		c.log.DebugContext(ctx, "wechat: retrying", "api", req.API, "attempt", attempt, "reason", reason, "pause_ms", pause.Milliseconds())
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return Response{Attempts: attempt}, ctxError(ctx, req.API)
		case <-t.C:
		}
	}
	if lastErr == nil {
		return lastResp, nil // -1 after the last retry: data for the caller
	}
	c.log.WarnContext(ctx, "wechat: call failed", "api", req.API, "path", req.Path, "attempts", lastResp.Attempts, "err", lastErr.Error())
	return lastResp, lastErr
}

func retryable(outcome string, err error) bool {
	if err == nil {
		return true // errcode -1
	}
	return outcome == outcomeHTTP5xx || outcome == outcomeNetwork || outcome == outcomeTimeout
}

// once makes one attempt. outcome is "" on an HTTP 200 answer, else the
// failure's kind.
func (c *Client) once(ctx context.Context, req Request) (Response, string, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, outcomeTimeout, ctxError(ctx, req.API)
	}
	actx := ctx
	start := time.Now()
	// A timer of its own only when the caller's deadline is later than
	// the attempt's (the proxy's call budget usually ends first).
	if dl, ok := ctx.Deadline(); !ok || dl.Sub(start) > c.opts.AttemptTimeout {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, c.opts.AttemptTimeout)
		defer cancel()
	}
	resp, outcome, err := c.send(actx, req)
	obs.AddUpstream(ctx, time.Since(start))
	if c.metrics != nil {
		c.metrics.UpstreamLatency(req.API).Observe(time.Since(start).Seconds())
		if err == nil {
			c.metrics.UpstreamCall(req.API, errcodeLabel(resp.Errcode)).Inc()
		} else {
			c.metrics.UpstreamCall(req.API, outcome).Inc()
		}
	}
	if err != nil && ctx.Err() != nil {
		// The caller's deadline, not the attempt's, ran out.
		return resp, outcomeTimeout, ctxError(ctx, req.API)
	}
	switch {
	case outcome == "" || outcome == outcomeHTTP5xx || outcome == outcomeHTTP:
		c.noteReached(time.Now())
	case outcome == outcomeNetwork || outcome == outcomeTimeout:
		c.noteUnreachable(time.Now(), err)
	}
	return resp, outcome, err
}

// errcodeLabel is the errcode label of UpstreamCalls; the common answers
// need no formatting.
func errcodeLabel(code int) string {
	switch code {
	case 0:
		return "0"
	case ErrSystemBusy:
		return "-1"
	}
	return strconv.Itoa(code)
}

// acceptJSON is the Accept header of every call (never modified).
var acceptJSON = []string{"application/json"}

// contentTypeJSON is the Content-Type of every call with a body.
var contentTypeJSON = []string{"application/json"}

func (c *Client) send(ctx context.Context, req Request) (Response, string, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
		if req.Body != nil {
			method = http.MethodPost
		}
	}
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, "", body)
	if err != nil {
		return Response{}, outcomeNetwork, errs.Wrap(errs.Internal, "internal error", fmt.Errorf("wechat: build %s request: %w", req.API, err))
	}
	hreq.URL = &url.URL{Scheme: c.base.Scheme, Host: c.base.Host, Path: c.base.Path + req.Path, RawQuery: encodeQuery(req)}
	hreq.Host = c.base.Host
	hreq.Header["Accept"] = acceptJSON
	if req.Body != nil {
		hreq.Header["Content-Type"] = contentTypeJSON
	}
	hresp, err := c.rt.RoundTrip(hreq)
	if err != nil {
		return Response{}, classify(err), upstreamErr(req.API, classify(err), scrub(err))
	}
	defer hresp.Body.Close()
	raw, err := c.readBody(hresp)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			return Response{}, outcomeHTTP, errs.Wrap(errs.UpstreamUnavailable, "WeChat answered a body larger than the gateway accepts",
				fmt.Errorf("wechat: %s: body over %d bytes", req.API, c.opts.MaxBodyBytes))
		}
		return Response{}, classify(err), upstreamErr(req.API, classify(err), scrub(err))
	}
	switch {
	case hresp.StatusCode >= 500:
		return Response{Body: raw}, outcomeHTTP5xx, errs.Wrap(errs.UpstreamUnavailable, "WeChat is unavailable",
			fmt.Errorf("wechat: %s: HTTP %d", req.API, hresp.StatusCode))
	case hresp.StatusCode != http.StatusOK:
		return Response{Body: raw}, outcomeHTTP, errs.Wrap(errs.UpstreamError, "WeChat answered an unexpected HTTP status",
			fmt.Errorf("wechat: %s: HTTP %d", req.API, hresp.StatusCode)).WithDetails(map[string]any{"http_status": hresp.StatusCode})
	}
	resp := Response{Body: raw}
	resp.Errcode, resp.Errmsg = peekErrcode(raw)
	return resp, "", nil
}

var errBodyTooLarge = errors.New("wechat: body too large")

// readBody reads an answer's body, at most MaxBodyBytes: in one allocation
// of the announced length when WeChat sends Content-Length.
func (c *Client) readBody(hresp *http.Response) ([]byte, error) {
	n := hresp.ContentLength
	if n > c.opts.MaxBodyBytes {
		return nil, errBodyTooLarge
	}
	if n >= 0 {
		raw := make([]byte, n)
		if _, err := io.ReadFull(hresp.Body, raw); err != nil {
			return nil, err
		}
		return raw, nil
	}
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, c.opts.MaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > c.opts.MaxBodyBytes {
		return nil, errBodyTooLarge
	}
	return raw, nil
}

// encodeQuery is the request's query string: its parameters in key order,
// then the token.
func encodeQuery(req Request) string {
	var b strings.Builder
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(v))
	}
	if len(req.Query) > 0 {
		for _, k := range slices.Sorted(maps.Keys(req.Query)) {
			for _, v := range req.Query[k] {
				add(k, v)
			}
		}
	}
	if !req.AccessToken.IsZero() {
		add("access_token", req.AccessToken.Reveal())
	}
	if !req.ComponentToken.IsZero() {
		add("component_access_token", req.ComponentToken.Reveal())
	}
	return b.String()
}

// peekErrcode reads errcode/errmsg from a JSON answer. Bodies without the
// key (most successful answers, e.g. a page of 10000 openids) are not
// decoded at all.
func peekErrcode(body []byte) (int, string) {
	if !bytes.Contains(body, []byte(`"errcode"`)) {
		return 0, ""
	}
	var e struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return 0, ""
	}
	return e.Errcode, e.Errmsg
}

// classify names a transport failure: a timeout or a network error (reset,
// refused, EOF). Both are retried.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return outcomeTimeout
	default:
		return outcomeNetwork
	}
}

// isConnReset reports a reset or closed connection (kept for logs).
func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func upstreamErr(api, outcome string, cause error) *errs.Error {
	if outcome == outcomeTimeout {
		return errs.Wrap(errs.UpstreamTimeout, "WeChat did not answer in time", fmt.Errorf("wechat: %s: %w", api, cause))
	}
	msg := "WeChat is unreachable"
	if isConnReset(cause) {
		msg = "WeChat closed the connection"
	}
	return errs.Wrap(errs.UpstreamUnavailable, msg, fmt.Errorf("wechat: %s: %w", api, cause))
}

func ctxError(ctx context.Context, api string) *errs.Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errs.Wrap(errs.UpstreamTimeout, "WeChat did not answer in time", fmt.Errorf("wechat: %s: %w", api, ctx.Err()))
	}
	return errs.Wrap(errs.UpstreamUnavailable, "the call to WeChat was cancelled", fmt.Errorf("wechat: %s: %w", api, ctx.Err()))
}

// scrub drops the URL (whose query carries a token) from a transport error,
// keeping only the operation and the underlying cause.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
