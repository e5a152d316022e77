package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/store"
)

// Queue is the outbox as the dispatcher uses it (the store).
type Queue interface {
	ClaimWebhookDeliveries(ctx context.Context, r store.ClaimRequest) ([]store.ClaimedDelivery, error)
	FinishWebhookAttempt(ctx context.Context, id, owner string, r store.AttemptResult) (bool, error)
	ReleaseWebhookDeliveries(ctx context.Context, owner string) error
	WebhookQueueStats(ctx context.Context) (store.WebhookQueue, error)
}

var _ Queue = (*store.Store)(nil)

// Backoff is the delay before the attempt after the n-th failed one
// (n from 1): about 5 s, 30 s, 2 min, 10 min, 1 h, then hourly.
func Backoff(n int) time.Duration {
	steps := []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour}
	if n < 1 {
		n = 1
	}
	if n > len(steps) {
		return time.Hour
	}
	return steps[n-1]
}

// RetryFor is how long a delivery is retried before it ends failed,
// counted from when it was queued (a redelivery starts a new period).
const RetryFor = 24 * time.Hour

// DispatcherOptions configure a Dispatcher.
type DispatcherOptions struct {
	Queue Queue
	// Owner names this replica in the deliveries' leases.
	Owner string
	// Client sends the deliveries (NewClient).
	Client *http.Client
	// AllowPrivate also allows http:// receivers.
	AllowPrivate bool
	// Timeout bounds one attempt (default Timeout); a delivery's lease
	// lasts Timeout + leaseMargin, after which another replica sends it.
	Timeout time.Duration
	// Concurrency caps the attempts in flight on this replica (default
	// 32); PerTenant caps one tenant's (default 4), so a slow receiver
	// holds at most that many while the others' deliveries go on.
	Concurrency int
	PerTenant   int
	// Poll is how often the queue is looked at when idle (default 1 s);
	// Wake brings a look forward.
	Poll    time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *obs.Metrics
}

// leaseMargin is how much longer than an attempt's timeout its lease lasts.
const leaseMargin = 5 * time.Second

// statsEvery is how often the queue metrics are refreshed.
const statsEvery = 5 * time.Second

// Dispatcher sends this replica's share of due deliveries.
type Dispatcher struct {
	o    DispatcherOptions
	log  *slog.Logger
	wake chan struct{}

	mu       sync.Mutex
	inFlight map[string]int // by tenant
	total    int
	idle     chan struct{} // signalled when an attempt ends
}

// NewDispatcher builds a Dispatcher.
func NewDispatcher(o DispatcherOptions) *Dispatcher {
	if o.Timeout <= 0 {
		o.Timeout = Timeout
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.PerTenant <= 0 {
		o.PerTenant = 4
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Client == nil {
		o.Client = NewClient(o.AllowPrivate, o.Timeout)
	}
	return &Dispatcher{o: o, log: o.Logger, wake: make(chan struct{}, 1), inFlight: map[string]int{}, idle: make(chan struct{}, 1)}
}

// Wake makes the dispatcher look at the queue now (an event was enqueued
// on this replica).
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run sends deliveries until ctx ends, then waits for the attempts in
// flight and gives up the leases of any it could not finish.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := d.o.Queue.ReleaseWebhookDeliveries(rctx, d.o.Owner); err != nil {
			d.log.WarnContext(rctx, "webhook: releasing leases at shutdown failed; they run out", "err", err.Error())
		}
	}()
	// Attempts outlive a cancelled ctx by up to their timeout: a shutdown
	// lets them finish and record their outcome.
	sendCtx := context.WithoutCancel(ctx)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var lastStats time.Time
	for {
		if time.Since(lastStats) >= statsEvery {
			d.refreshStats(ctx)
			lastStats = time.Now()
		}
		n := d.ClaimAndSend(ctx, sendCtx, &wg)
		wait := d.o.Poll
		if n > 0 && d.room() > 0 {
			wait = 0 // more may be due
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-d.idle:
		case <-timer.C:
		}
	}
}

func (d *Dispatcher) room() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.o.Concurrency - d.total
}

// ClaimAndSend is one round of Run: it claims what this replica has room
// for and starts sending it, and returns how many it claimed. wg tracks
// the attempts, which run under sendCtx.
func (d *Dispatcher) ClaimAndSend(ctx, sendCtx context.Context, wg *sync.WaitGroup) int {
	d.mu.Lock()
	free := d.o.Concurrency - d.total
	inFlight := make(map[string]int, len(d.inFlight))
	for k, v := range d.inFlight {
		inFlight[k] = v
	}
	d.mu.Unlock()
	if free <= 0 || ctx.Err() != nil {
		return 0
	}
	now := d.o.Now()
	claimed, err := d.o.Queue.ClaimWebhookDeliveries(ctx, store.ClaimRequest{
		Owner: d.o.Owner, Now: now, LeaseUntil: now.Add(d.o.Timeout + leaseMargin),
		Limit: free, PerTenant: d.o.PerTenant, InFlight: inFlight,
	})
	if err != nil {
		if ctx.Err() == nil {
			d.log.WarnContext(ctx, "webhook: claiming deliveries failed", "err", err.Error())
		}
		return 0
	}
	d.mu.Lock()
	for _, c := range claimed {
		d.inFlight[c.TenantID]++
		d.total++
	}
	d.mu.Unlock()
	for _, c := range claimed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer d.done(c.TenantID)
			d.attempt(sendCtx, c)
		}()
	}
	return len(claimed)
}

func (d *Dispatcher) done(tenantID string) {
	d.mu.Lock()
	d.inFlight[tenantID]--
	if d.inFlight[tenantID] <= 0 {
		delete(d.inFlight, tenantID)
	}
	d.total--
	d.mu.Unlock()
	select {
	case d.idle <- struct{}{}:
	default:
	}
}

// attempt sends one claimed delivery and records the outcome.
func (d *Dispatcher) attempt(ctx context.Context, c store.ClaimedDelivery) {
	start := time.Now()
	status, err := d.post(ctx, c)
	if d.o.Metrics != nil {
		d.o.Metrics.WebhookAttemptDuration.Observe(time.Since(start).Seconds())
	}
	now := d.o.Now()
	r := store.AttemptResult{Status: status, At: now, Outcome: store.DeliveryDelivered}
	outcome := "delivered"
	if err != nil {
		r.Error = err.Error()
		next := now.Add(Backoff(c.Attempts + 1))
		if next.Sub(c.CreatedAt) > RetryFor {
			r.Outcome, outcome = store.DeliveryFailed, "failed"
		} else {
			r.Outcome, r.NextAttemptAt, outcome = store.DeliveryPending, next, "retry"
		}
	}
	ok, ferr := d.o.Queue.FinishWebhookAttempt(ctx, c.ID, d.o.Owner, r)
	switch {
	case ferr != nil:
		// The lease runs out and another replica sends it again.
		d.log.WarnContext(ctx, "webhook: recording an attempt failed", "delivery", c.ID, "err", ferr.Error())
		return
	case !ok:
		d.log.InfoContext(ctx, "webhook: a delivery's lease ran out during its attempt; another replica holds it", "delivery", c.ID)
		return
	}
	if d.o.Metrics != nil {
		d.o.Metrics.WebhookDeliveries.WithLabelValues(outcome).Inc()
		if outcome == "delivered" {
			d.o.Metrics.WebhookLatency.Observe(now.Sub(c.EventCreatedAt).Seconds())
		}
	}
	if err != nil {
		d.log.InfoContext(ctx, "webhook: delivery attempt failed", "delivery", c.ID, "event", c.EventID,
			"tenant", c.TenantID, "attempts", c.Attempts+1, "outcome", outcome, "err", r.Error)
	}
}

// post sends the delivery once: a 2xx answer within the timeout is
// success; anything else is an error saying what happened.
func (d *Dispatcher) post(ctx context.Context, c store.ClaimedDelivery) (int, error) {
	u, err := url.Parse(c.Webhook.URL)
	if err != nil || !(u.Scheme == "https" || u.Scheme == "http" && d.o.AllowPrivate) {
		return 0, errors.New("the webhook URL must use https")
	}
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Webhook.URL, bytes.NewReader(c.Body))
	if err != nil {
		return 0, errors.New("the webhook URL is not valid")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wxgate-webhook/1")
	req.Header.Set(EventIDHeader, c.EventID)
	req.Header.Set(SignatureHeader, Sign(c.Webhook.Secrets(d.o.Now()), d.o.Now(), c.Body))
	resp, err := d.o.Client.Do(req)
	if err != nil {
		return 0, describe(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("the receiver answered HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// describe turns a transport error into a short text for last_error that
// names the cause but not internal detail.
func describe(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, ErrPrivateAddress):
		return errors.New("refused: the receiver's address is not public")
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errors.New("timeout: no answer within the time limit")
	default:
		var oe *net.OpError
		if errors.As(err, &oe) {
			return fmt.Errorf("connection failed: %s", oe.Err)
		}
		var de *net.DNSError
		if errors.As(err, &de) {
			return errors.New("the receiver's host name did not resolve")
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which is the tenant's to see, not the logs'
		}
		return errors.New("the request failed: " + err.Error())
	}
}

func (d *Dispatcher) refreshStats(ctx context.Context) {
	if d.o.Metrics == nil {
		return
	}
	q, err := d.o.Queue.WebhookQueueStats(ctx)
	if err != nil {
		return
	}
	d.o.Metrics.WebhookQueueDepth.Set(float64(q.Pending))
	age := 0.0
	if !q.OldestPending.IsZero() {
		age = d.o.Now().Sub(q.OldestPending).Seconds()
	}
	d.o.Metrics.WebhookOldestPending.Set(age)
}
