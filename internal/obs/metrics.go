package obs

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector wxgate exports. Labels are bounded: route
// templates, API names, status codes, errcodes and results, never an openid,
// a key or a token.
type Metrics struct {
	Shared
	Platform

	// vecs are the per-platform vectors with their component label, from
	// which ForComponent curries a platform's Platform.
	vecs *platformVecs

	// Children of the vectors the request path records into, each label
	// set resolved once (WithLabelValues hashes the labels on every call).
	httpRequests     children[httpKey, prometheus.Counter]
	httpDuration     children[string, prometheus.Observer]
	proxyCalls       children[[4]string, prometheus.Counter]
	upstreamCalls    children[[2]string, prometheus.Counter]
	upstreamDuration children[string, prometheus.Observer]
}

// Shared holds the collectors of the whole replica: HTTP, credentials, the
// store, webhooks and the tenant directory.
type Shared struct {
	Registry *prometheus.Registry

	// HTTPRequests counts requests by route template, method and status.
	HTTPRequests *prometheus.CounterVec
	// HTTPDuration observes request latency by route template.
	HTTPDuration *prometheus.HistogramVec
	// GatewayOverhead observes, for each request that called WeChat, the
	// time the gateway itself took: the request's time minus the time its
	// WeChat calls took.
	GatewayOverhead prometheus.Histogram
	// ExportsInProgress is the number of export streams running.
	ExportsInProgress prometheus.Gauge
	// AuthFailures counts rejected tenant keys by reason.
	AuthFailures *prometheus.CounterVec
	// StoreQueries counts database statements by origin: "request" (made
	// while serving a request; the proxy's hot path adds none) or "background".
	StoreQueries *prometheus.CounterVec
	// WebhookDeliveries counts webhook delivery attempts by outcome:
	// delivered, retry (failed, tried again later) or failed (given up).
	WebhookDeliveries *prometheus.CounterVec
	// WebhookQueueDepth is the number of pending webhook deliveries (all
	// replicas, as this replica last counted them).
	WebhookQueueDepth prometheus.Gauge
	// WebhookOldestPending is the age in seconds of the oldest pending
	// webhook delivery (0 when none is pending).
	WebhookOldestPending prometheus.Gauge
	// WebhookAttemptDuration observes how long one POST to a receiver took.
	WebhookAttemptDuration prometheus.Histogram
	// WebhookLatency observes the time from an event to its receiver's 2xx.
	WebhookLatency prometheus.Histogram
	// StoreUp is 1 while the store answers and 0 once a statement failed
	// because it could not be reached (docs/api.md, store_unavailable).
	StoreUp prometheus.Gauge
	// StoreUnavailable counts statements that failed because the store
	// could not be reached (refused, timed out, pool exhausted).
	StoreUnavailable prometheus.Counter
	// DirectoryLookups counts the tenant directory's store lookups for a
	// key or binding it did not know, by result (found, missing,
	// remembered, unavailable).
	DirectoryLookups *prometheus.CounterVec
}

// Platform holds one third-party platform's collectors: each is a child of
// a vector labelled component (its appid), so every platform's WeChat
// calls, tokens, events, messages and quotas are told apart.
type Platform struct {
	// ProxyCalls counts proxied API calls by API and outcome code.
	ProxyCalls *prometheus.CounterVec
	// UpstreamCalls counts WeChat calls by API and errcode ("0" success,
	// "http_5xx", "network", "timeout").
	UpstreamCalls *prometheus.CounterVec
	// UpstreamDuration observes WeChat call latency by API.
	UpstreamDuration prometheus.ObserverVec
	// UpstreamRetries counts retries by API and reason.
	UpstreamRetries *prometheus.CounterVec
	// UpstreamGiveUps counts failed WeChat calls that were not retried
	// although their failure was transient, by API and reason
	// (account_budget, replica_budget, deadline, max_attempts): in an
	// outage the budgets' refusals climb while retries stay bounded.
	UpstreamGiveUps *prometheus.CounterVec
	// TokenRefreshes counts authorizer/component token refreshes by kind and result.
	TokenRefreshes *prometheus.CounterVec
	// SoonestTokenExpiry is the seconds until the soonest authorizer token expiry.
	SoonestTokenExpiry prometheus.Gauge
	// TicketAge is the age in seconds of the newest component_verify_ticket.
	TicketAge prometheus.Gauge
	// EventsReceived counts platform events by InfoType and result.
	EventsReceived *prometheus.CounterVec
	// MessagesReceived counts pushes to the accounts' message URL by
	// msg_type and outcome.
	MessagesReceived *prometheus.CounterVec
	// MessageReplySeconds observes how long answering such a push took, by
	// outcome (WeChat's budget is 5 s).
	MessageReplySeconds prometheus.ObserverVec
	// QuotaRemaining is, per proxied API, the WeChat daily quota left
	// today summed over the accounts this replica knows the limit of (no
	// appid label: thousands of accounts would explode the series).
	QuotaRemaining *prometheus.GaugeVec
	// QuotaLowAccounts is, per proxied API, how many accounts have less
	// than 10% of their daily quota left.
	QuotaLowAccounts *prometheus.GaugeVec
	// QuotaRefusals counts calls refused locally for a daily quota, by API
	// and scope (wechat_daily_quota, tenant_daily_limit).
	QuotaRefusals *prometheus.CounterVec
}

// HTTPRequest is the HTTPRequests child for route, method and status.
func (m *Metrics) HTTPRequest(route, method string, status int) prometheus.Counter {
	return m.httpRequests.get(httpKey{route, method, status}, func(k httpKey) prometheus.Counter {
		return m.HTTPRequests.WithLabelValues(k.route, k.method, strconv.Itoa(k.status))
	})
}

// HTTPLatency is the HTTPDuration child for route.
func (m *Metrics) HTTPLatency(route string) prometheus.Observer {
	return m.httpDuration.get(route, func(r string) prometheus.Observer { return m.HTTPDuration.WithLabelValues(r) })
}

// ProxyCall is the ProxyCalls child for api, surface, outcome code and tenant.
func (m *Metrics) ProxyCall(api, surface, code, tenant string) prometheus.Counter {
	return m.proxyCalls.get([4]string{api, surface, code, tenant}, func(k [4]string) prometheus.Counter {
		return m.ProxyCalls.WithLabelValues(k[0], k[1], k[2], k[3])
	})
}

// UpstreamCall is the UpstreamCalls child for api and errcode label.
func (m *Metrics) UpstreamCall(api, errcode string) prometheus.Counter {
	return m.upstreamCalls.get([2]string{api, errcode}, func(k [2]string) prometheus.Counter {
		return m.UpstreamCalls.WithLabelValues(k[0], k[1])
	})
}

// UpstreamLatency is the UpstreamDuration child for api.
func (m *Metrics) UpstreamLatency(api string) prometheus.Observer {
	return m.upstreamDuration.get(api, func(a string) prometheus.Observer { return m.UpstreamDuration.WithLabelValues(a) })
}

type httpKey struct {
	route, method string
	status        int
}

// children caches a vector's children by their label values. The label
// sets are bounded (that is a rule of every metric here), so the cache is.
type children[K comparable, M any] struct {
	mu sync.RWMutex
	m  map[K]M
}

func (c *children[K, M]) get(k K, resolve func(K) M) M {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = resolve(k)
	c.mu.Lock()
	if c.m == nil {
		c.m = map[K]M{}
	}
	c.m[k] = v
	c.mu.Unlock()
	return v
}

// NewMetrics creates the collectors on a fresh registry, with the Go and
// process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Shared: Shared{
		Registry: reg,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_http_requests_total", Help: "HTTP requests by route template, method and status.",
		}, []string{"route", "method", "status"}),
		GatewayOverhead: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wxgate_gateway_overhead_seconds",
			Help:    "Time a request that called WeChat spent in the gateway itself (its duration minus its WeChat calls').",
			Buckets: []float64{.00005, .0001, .00025, .0005, .00075, .001, .0015, .0025, .005, .01, .025, .05, .1},
		}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wxgate_http_request_duration_seconds", Help: "HTTP request latency by route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		ExportsInProgress: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wxgate_exports_in_progress", Help: "Export streams currently running.",
		}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_auth_failures_total", Help: "Rejected credentials by surface and reason.",
		}, []string{"surface", "reason"}),
		StoreQueries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_store_queries_total", Help: "Database statements by origin: request (while serving a request) or background (pollers, refreshers).",
		}, []string{"origin"}),
		WebhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_webhook_deliveries_total", Help: "Webhook delivery attempts by outcome: delivered, retry (failed, tried again later) or failed (given up after 24 h).",
		}, []string{"outcome"}),
		WebhookQueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wxgate_webhook_queue_depth", Help: "Pending webhook deliveries across replicas.",
		}),
		WebhookOldestPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wxgate_webhook_oldest_pending_seconds", Help: "Age of the oldest pending webhook delivery (0 when none is pending).",
		}),
		WebhookAttemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wxgate_webhook_attempt_duration_seconds", Help: "Duration of one POST to a webhook receiver.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		WebhookLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wxgate_webhook_delivery_latency_seconds", Help: "Time from a webhook event to its receiver's 2xx answer, retries included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400},
		}),
		StoreUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wxgate_store_up", Help: "1 while the store answers; 0 after a statement failed because the store could not be reached.",
		}),
		StoreUnavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wxgate_store_unavailable_total", Help: "Database statements that failed because the store could not be reached (refused, timed out, pool exhausted).",
		}),
		DirectoryLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_directory_lookups_total", Help: "Tenant directory lookups of a key or binding it did not know, by result: found, missing (confirmed in the store), remembered (a recent miss, no query), unavailable.",
		}, []string{"result"}),
	}}
	m.vecs = &platformVecs{
		proxyCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_proxy_calls_total", Help: "Proxied API calls by API, surface (rest, compat, export, cloud), outcome code and tenant id.",
		}, []string{"component", "api", "surface", "code", "tenant"}),
		upstreamCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_upstream_calls_total", Help: "WeChat API calls by API and errcode (0 = success; http_5xx, network, timeout).",
		}, []string{"component", "api", "errcode"}),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wxgate_upstream_call_duration_seconds", Help: "WeChat API call latency by API.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"component", "api"}),
		upstreamRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_upstream_retries_total", Help: "Retries of WeChat calls by API and reason.",
		}, []string{"component", "api", "reason"}),
		upstreamGiveUps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_upstream_give_ups_total", Help: "Transient WeChat failures not retried, by API and reason (account_budget, replica_budget, deadline, max_attempts).",
		}, []string{"component", "api", "reason"}),
		tokenRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_token_refreshes_total", Help: "Token refreshes by kind (authorizer, component) and result.",
		}, []string{"component", "kind", "result"}),
		soonestTokenExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wxgate_authorizer_token_soonest_expiry_seconds", Help: "Seconds until the soonest authorizer access token expires.",
		}, []string{"component"}),
		ticketAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wxgate_component_ticket_age_seconds", Help: "Age of the newest component_verify_ticket, or the time this replica has waited for one when none arrived yet (alert when it passes ~20 minutes).",
		}, []string{"component"}),
		eventsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_events_total", Help: "Platform events received by InfoType and result.",
		}, []string{"component", "info_type", "result"}),
		messagesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_messages_total", Help: "Messages and events pushed to the accounts' message URL, by msg_type and outcome.",
		}, []string{"component", "msg_type", "outcome"}),
		messageReplySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wxgate_message_reply_seconds", Help: "Time to answer a push to the accounts' message URL, by outcome (WeChat retries after 5 s).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"component", "outcome"}),
		quotaRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wxgate_wechat_quota_remaining", Help: "WeChat daily quota left today per proxied API, summed over the accounts whose limit is known.",
		}, []string{"component", "api"}),
		quotaLowAccounts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wxgate_wechat_quota_low_accounts", Help: "Accounts with less than 10% of an API's WeChat daily quota left, per API.",
		}, []string{"component", "api"}),
		quotaRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxgate_quota_refusals_total", Help: "Calls refused locally for a daily quota, by API and scope (wechat_daily_quota, tenant_daily_limit).",
		}, []string{"component", "api", "scope"}),
	}
	m.Platform = m.vecs.curry("")
	// The platform-less gauges above stay usable but are not exported: a
	// replica reports only the platforms it serves.
	m.vecs.soonestTokenExpiry.DeleteLabelValues("")
	m.vecs.ticketAge.DeleteLabelValues("")
	m.StoreUp.Set(1)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.HTTPRequests, m.HTTPDuration, m.GatewayOverhead, m.ExportsInProgress, m.AuthFailures, m.StoreQueries,
		m.WebhookDeliveries, m.WebhookQueueDepth, m.WebhookOldestPending, m.WebhookAttemptDuration, m.WebhookLatency,
		m.StoreUp, m.StoreUnavailable, m.DirectoryLookups,
	)
	reg.MustRegister(m.vecs.collectors()...)
	return m
}

// WatchDirectoryAge exports age (in seconds) as
// wxgate_directory_age_seconds: how long ago the tenant directory last
// confirmed it is current. It grows while the store cannot be reached;
// tenant calls are refused once it passes the staleness limit.
func (m *Metrics) WatchDirectoryAge(age func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wxgate_directory_age_seconds", Help: "Seconds since the tenant directory last confirmed it is current (grows while the store cannot be reached).",
	}, age))
}

// platformVecs are the vectors behind every platform's Platform, each with
// "component" as its first label.
type platformVecs struct {
	proxyCalls, upstreamCalls, upstreamRetries, upstreamGiveUps, tokenRefreshes *prometheus.CounterVec
	eventsReceived, messagesReceived, quotaRefusals                             *prometheus.CounterVec
	upstreamDuration, messageReplySeconds                                       *prometheus.HistogramVec
	soonestTokenExpiry, ticketAge, quotaRemaining, quotaLowAccounts             *prometheus.GaugeVec
}

func (v *platformVecs) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		v.proxyCalls, v.upstreamCalls, v.upstreamRetries, v.upstreamGiveUps, v.tokenRefreshes,
		v.eventsReceived, v.messagesReceived, v.quotaRefusals, v.upstreamDuration, v.messageReplySeconds,
		v.soonestTokenExpiry, v.ticketAge, v.quotaRemaining, v.quotaLowAccounts,
	}
}

// curry returns the children of component's platform.
func (v *platformVecs) curry(component string) Platform {
	l := prometheus.Labels{"component": component}
	return Platform{
		ProxyCalls:          v.proxyCalls.MustCurryWith(l),
		UpstreamCalls:       v.upstreamCalls.MustCurryWith(l),
		UpstreamDuration:    v.upstreamDuration.MustCurryWith(l),
		UpstreamRetries:     v.upstreamRetries.MustCurryWith(l),
		UpstreamGiveUps:     v.upstreamGiveUps.MustCurryWith(l),
		TokenRefreshes:      v.tokenRefreshes.MustCurryWith(l),
		SoonestTokenExpiry:  v.soonestTokenExpiry.WithLabelValues(component),
		TicketAge:           v.ticketAge.WithLabelValues(component),
		EventsReceived:      v.eventsReceived.MustCurryWith(l),
		MessagesReceived:    v.messagesReceived.MustCurryWith(l),
		MessageReplySeconds: v.messageReplySeconds.MustCurryWith(l),
		QuotaRemaining:      v.quotaRemaining.MustCurryWith(l),
		QuotaLowAccounts:    v.quotaLowAccounts.MustCurryWith(l),
		QuotaRefusals:       v.quotaRefusals.MustCurryWith(l),
	}
}

// ForComponent returns the metrics a platform's services record into: the
// replica's shared collectors, and the platform's own children labelled
// component=appid. NewMetrics' own platform children carry component="",
// for the package tests that use one platform.
func (m *Metrics) ForComponent(appid string) *Metrics {
	return &Metrics{Shared: m.Shared, Platform: m.vecs.curry(appid), vecs: m.vecs}
}

// ForgetComponent drops a removed platform's series, so /metrics stops
// reporting a platform this replica no longer serves.
func (m *Metrics) ForgetComponent(appid string) {
	l := prometheus.Labels{"component": appid}
	for _, c := range m.vecs.collectors() {
		if d, ok := c.(interface {
			DeletePartialMatch(prometheus.Labels) int
		}); ok {
			d.DeletePartialMatch(l)
		}
	}
}
