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
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
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
	DefaultMaxAttempts    = 3
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
	// MaxAttempts bounds the attempts of one call (first try + retries).
	MaxAttempts int
	// BaseBackoff is the first retry's pause; each later one doubles, up
	// to MaxBackoff, with jitter.
	BaseBackoff, MaxBackoff time.Duration
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
// and share it, so every call reuses the same keep-alive pool.
type Client struct {
	base    *url.URL
	opts    Options
	http    *http.Client
	log     *slog.Logger
	metrics *obs.Metrics
}

// New builds a Client. It fails only on a malformed BaseURL.
func New(opts Options) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(opts.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("wechat: base URL %q is not an absolute http(s) URL", opts.BaseURL)
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = DefaultBaseBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
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
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{base: base, opts: opts, http: hc, log: log, metrics: opts.Metrics}, nil
}

// NewHTTPClient returns the tuned client every WeChat call goes through: a
// keep-alive pool sized for hundreds of concurrent calls to one host, and
// dial, TLS and response-header timeouts. It has no overall timeout: each
// call is bounded by its context.
func NewHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
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
// attempt timeouts are retried up to MaxAttempts with exponential backoff
// and jitter, as long as the context's deadline leaves room; nothing else
// is retried (never a 4xxxx errcode).
//
// An errcode answer is returned as data in Response with a nil error (also
// -1 once retries are exhausted); map it with Response.Err or AsError. The
// error is an *errs.Error: upstream_unavailable (5xx, unreachable, body too
// large or unreadable), upstream_timeout (the context's deadline passed or
// attempts kept timing out), or upstream_error (an unexpected HTTP status).
func (c *Client) Call(ctx context.Context, req Request) (Response, error) {
	var (
		lastErr  error
		lastResp Response
	)
	for attempt := 1; ; attempt++ {
		resp, outcome, err := c.once(ctx, req)
		resp.Attempts = attempt
		if err == nil && resp.Errcode != ErrSystemBusy {
			return resp, nil
		}
		lastResp, lastErr = resp, err
		reason := outcome
		if err == nil {
			reason = "errcode_-1"
		}
		if !retryable(outcome, err) || attempt >= c.opts.MaxAttempts {
			break
		}
		pause := c.backoff(attempt)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < pause+10*time.Millisecond {
			break // no room left for another attempt
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

// backoff returns the pause before retry n (1-based): base·2^(n-1), capped,
// with ±50% jitter so callers that failed together do not retry together.
func (c *Client) backoff(n int) time.Duration {
	d := c.opts.BaseBackoff << (n - 1)
	if d > c.opts.MaxBackoff || d <= 0 {
		d = c.opts.MaxBackoff
	}
	return d/2 + rand.N(d)
}

// once makes one attempt. outcome is "" on an HTTP 200 answer, else the
// failure's kind.
func (c *Client) once(ctx context.Context, req Request) (Response, string, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, outcomeTimeout, ctxError(ctx, req.API)
	}
	actx, cancel := context.WithTimeout(ctx, c.opts.AttemptTimeout)
	defer cancel()
	start := time.Now()
	resp, outcome, err := c.send(actx, req)
	if c.metrics != nil {
		c.metrics.UpstreamDuration.WithLabelValues(req.API).Observe(time.Since(start).Seconds())
		label := outcome
		if err == nil {
			label = strconv.Itoa(resp.Errcode)
		}
		c.metrics.UpstreamCalls.WithLabelValues(req.API, label).Inc()
	}
	if err != nil && ctx.Err() != nil {
		// The caller's deadline, not the attempt's, ran out.
		return resp, outcomeTimeout, ctxError(ctx, req.API)
	}
	return resp, outcome, err
}

func (c *Client) send(ctx context.Context, req Request) (Response, string, error) {
	u := *c.base
	u.Path = c.base.Path + req.Path
	q := url.Values{}
	for k, vs := range req.Query {
		q[k] = vs
	}
	if !req.AccessToken.IsZero() {
		q.Set("access_token", req.AccessToken.Reveal())
	}
	if !req.ComponentToken.IsZero() {
		q.Set("component_access_token", req.ComponentToken.Reveal())
	}
	u.RawQuery = q.Encode()
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
	hreq, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return Response{}, outcomeNetwork, errs.Wrap(errs.Internal, "internal error", fmt.Errorf("wechat: build %s request: %w", req.API, scrub(err)))
	}
	if req.Body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	hreq.Header.Set("Accept", "application/json")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return Response{}, classify(err), upstreamErr(req.API, classify(err), scrub(err))
	}
	defer hresp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, c.opts.MaxBodyBytes+1))
	if err != nil {
		return Response{}, classify(err), upstreamErr(req.API, classify(err), scrub(err))
	}
	if int64(len(raw)) > c.opts.MaxBodyBytes {
		return Response{}, outcomeHTTP, errs.Wrap(errs.UpstreamUnavailable, "WeChat answered a body larger than the gateway accepts",
			fmt.Errorf("wechat: %s: body over %d bytes", req.API, c.opts.MaxBodyBytes))
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
