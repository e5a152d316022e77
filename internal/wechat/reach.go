package wechat

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
)

// Reachability is what the client last learned about reaching WeChat: any
// HTTP answer counts as reached (even an errcode), a refused, unresolvable
// or silent host as not.
type Reachability struct {
	// Known is false until the first call.
	Known bool
	// Reachable is the outcome of the latest call.
	Reachable bool
	// Since is when the current state began.
	Since time.Time
	// Cause is the latest transport failure, without any URL or token.
	Cause string
	// Hint says what to check, when the cause suggests a configuration
	// problem rather than a WeChat outage.
	Hint string
}

// reach records transitions and logs each one once, so a gateway that
// cannot resolve WeChat says so plainly instead of one line per retry.
type reach struct {
	mu    sync.Mutex
	state Reachability
}

// DefaultAPIHost is WeChat's API host, WXGATE_WECHAT_API_URL's default.
const DefaultAPIHost = "api.weixin.qq.com"

// Reachability reports the latest state (docs/api.md, "/readyz").
func (c *Client) Reachability() Reachability {
	c.reach.mu.Lock()
	defer c.reach.mu.Unlock()
	return c.reach.state
}

// noteReached records an HTTP answer.
func (c *Client) noteReached(now time.Time) {
	c.reach.mu.Lock()
	was := c.reach.state
	if was.Known && was.Reachable {
		c.reach.mu.Unlock()
		return
	}
	c.reach.state = Reachability{Known: true, Reachable: true, Since: now}
	c.reach.mu.Unlock()
	if was.Known {
		c.log.Info("wechat: reachable again", "host", c.base.Host, "unreachable_for", now.Sub(was.Since).Round(time.Second).String())
	}
}

// noteUnreachable records a transport failure (not the caller's own
// cancellation).
func (c *Client) noteUnreachable(now time.Time, err error) {
	hint := c.unreachableHint(err)
	cause := err
	if e := errs.As(err); e != nil && e.Cause != nil {
		cause = e.Cause // "wechat: API: dial tcp: …", never a URL (scrub)
	}
	c.reach.mu.Lock()
	was := c.reach.state
	if was.Known && !was.Reachable {
		c.reach.state.Cause = cause.Error()
		c.reach.mu.Unlock()
		return
	}
	c.reach.state = Reachability{Known: true, Since: now, Cause: cause.Error(), Hint: hint}
	c.reach.mu.Unlock()
	args := []any{"host", c.base.Host, "err", cause.Error()}
	if hint != "" {
		args = append(args, "hint", hint)
	}
	c.log.Warn("wechat: unreachable", args...)
}

// unreachableHint explains the two failures a newcomer meets: the default
// host on a machine that cannot resolve or reach it, and a configured URL
// where nothing listens.
func (c *Client) unreachableHint(cause error) string {
	var dnsErr *net.DNSError
	isDNS := errors.As(cause, &dnsErr)
	if c.base.Host == DefaultAPIHost {
		if isDNS {
			return "this machine cannot resolve WeChat's API host; outside production, run `wxgate sim` and set WXGATE_WECHAT_API_URL (and WXGATE_WECHAT_MP_URL, WXGATE_WECHAT_OPEN_URL) to its URL"
		}
		return "check this machine's route to WeChat (firewall, proxy, the IP allow-list of the platform)"
	}
	return fmt.Sprintf("nothing answers at WXGATE_WECHAT_API_URL (%s://%s): is the simulator or WeChat's API reachable from here?", c.base.Scheme, c.base.Host)
}
