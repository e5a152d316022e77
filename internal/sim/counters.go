package sim

import "time"

// Endpoint names used by counters and faults. The WeChat APIs are named by
// their path below /cgi-bin/ (component APIs by their last segment).
const (
	EndpointComponentToken     = "api_component_token"
	EndpointCreatePreAuthCode  = "api_create_preauthcode"
	EndpointQueryAuth          = "api_query_auth"
	EndpointAuthorizerToken    = "api_authorizer_token"
	EndpointGetAuthorizerInfo  = "api_get_authorizer_info"
	EndpointGetAuthorizerList  = "api_get_authorizer_list"
	EndpointUserGet            = "user/get"
	EndpointUserTagGet         = "user/tag/get"
	EndpointQuotaGet           = "openapi/quota/get"
	EndpointClearQuota         = "clear_quota"
	EndpointTagsGet            = "tags/get"
	EndpointCustomSend         = "message/custom/send"
	EndpointComponentLoginPage = "componentloginpage" // PC authorization page
	EndpointBindComponent      = "bindcomponent"      // mobile authorization page
	EndpointAuthConfirm        = "authpage/confirm"   // the page's confirm button
	EndpointUnknown            = "unknown"            // any other /cgi-bin/ path
)

// Counters is a snapshot of the calls the simulator answered since it
// started or since ResetCounters.
type Counters struct {
	// Calls counts calls per endpoint (faulted ones included).
	Calls map[string]int64 `json:"calls"`
	// ByAccount counts calls per endpoint and authorizer appid, for calls
	// that name or imply an account.
	ByAccount map[string]map[string]int64 `json:"by_account"`
	// ByErrcode counts answers per endpoint and errcode; 0 is success.
	// Injected HTTP errors and dropped connections have no errcode and are
	// counted in Faults only.
	ByErrcode map[string]map[int]int64 `json:"by_errcode"`
	// Faults counts injected faults per endpoint and kind.
	Faults map[string]map[string]int64 `json:"faults"`
	// Pushes counts event pushes per InfoType.
	Pushes map[string]PushCounts `json:"pushes"`
	// Refreshes describes, per authorizer, the api_authorizer_token calls
	// that replaced a token: how many, and the age of the youngest token
	// replaced. Two refreshers racing in one window show as a young age.
	Refreshes map[string]RefreshStats `json:"refreshes"`
}

// RefreshStats summarises an account's token refreshes.
type RefreshStats struct {
	Count int64 `json:"count"`
	// MinReplacedAge is the age of the youngest token a refresh replaced.
	MinReplacedAge time.Duration `json:"min_replaced_age_ns"`
}

// PushCounts counts the pushes of one InfoType: HTTP attempts, events
// answered "success", and events given up on after all retries.
type PushCounts struct {
	Attempts  int64 `json:"attempts"`
	Delivered int64 `json:"delivered"`
	Failed    int64 `json:"failed"`
}

type epAccount struct{ ep, appid string }
type epCode struct {
	ep   string
	code int
}
type epKind struct{ ep, kind string }

// counterSet is guarded by Simulator.cmu (the global one and each platform's).
type counterSet struct {
	calls     map[string]int64
	byAccount map[epAccount]int64
	byErrcode map[epCode]int64
	faults    map[epKind]int64
	pushes    map[string]PushCounts
	refreshes map[string]RefreshStats
}

func newCounterSet() counterSet {
	return counterSet{
		calls:     make(map[string]int64),
		byAccount: make(map[epAccount]int64),
		byErrcode: make(map[epCode]int64),
		faults:    make(map[epKind]int64),
		pushes:    make(map[string]PushCounts),
		refreshes: make(map[string]RefreshStats),
	}
}

// each runs f on the global counters and, when p is set, on p's. Callers
// hold s.cmu.
func (s *Simulator) each(p *Platform, f func(*counterSet)) {
	f(&s.counters)
	if p != nil {
		f(&p.counters)
	}
}

// recordRefresh counts a refresh by p of appid's token that replaced a
// token of age.
func (s *Simulator) recordRefresh(p *Platform, appid string, age time.Duration) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.each(p, func(c *counterSet) {
		r, seen := c.refreshes[appid]
		r.Count++
		if !seen || age < r.MinReplacedAge {
			r.MinReplacedAge = age
		}
		c.refreshes[appid] = r
	})
}

// record counts one answered call, made with p's credentials when p is
// set; code < -1 means "no errcode".
func (s *Simulator) record(p *Platform, ep, appid string, code int) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.each(p, func(c *counterSet) {
		c.calls[ep]++
		if appid != "" {
			c.byAccount[epAccount{ep, appid}]++
		}
		if code >= -1 {
			c.byErrcode[epCode{ep, code}]++
		}
	})
}

// noErrcode marks answers without an errcode for record.
const noErrcode = -1 << 31

func (s *Simulator) recordFault(p *Platform, ep, kind string) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.each(p, func(c *counterSet) { c.faults[epKind{ep, kind}]++ })
}

func (s *Simulator) recordPush(p *Platform, infoType string, f func(*PushCounts)) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.each(p, func(c *counterSet) {
		pc := c.pushes[infoType]
		f(&pc)
		c.pushes[infoType] = pc
	})
}

// Counters returns a snapshot of the call counters of every platform
// together.
func (s *Simulator) Counters() Counters {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.counters.snapshot()
}

// Counters returns a snapshot of the calls made with this platform's
// credentials: component APIs naming its component_appid (or, naming none
// known, called with its component token), and account APIs called with an
// authorizer access token it obtained; and of the pushes made to it.
func (p *Platform) Counters() Counters {
	p.s.cmu.Lock()
	defer p.s.cmu.Unlock()
	return p.counters.snapshot()
}

// snapshot copies the counters; the caller holds Simulator.cmu.
func (cs *counterSet) snapshot() Counters {
	c := Counters{
		Calls:     make(map[string]int64, len(cs.calls)),
		ByAccount: make(map[string]map[string]int64),
		ByErrcode: make(map[string]map[int]int64),
		Faults:    make(map[string]map[string]int64),
		Pushes:    make(map[string]PushCounts, len(cs.pushes)),
	}
	for ep, n := range cs.calls {
		c.Calls[ep] = n
	}
	for k, n := range cs.byAccount {
		if c.ByAccount[k.ep] == nil {
			c.ByAccount[k.ep] = make(map[string]int64)
		}
		c.ByAccount[k.ep][k.appid] = n
	}
	for k, n := range cs.byErrcode {
		if c.ByErrcode[k.ep] == nil {
			c.ByErrcode[k.ep] = make(map[int]int64)
		}
		c.ByErrcode[k.ep][k.code] = n
	}
	for k, n := range cs.faults {
		if c.Faults[k.ep] == nil {
			c.Faults[k.ep] = make(map[string]int64)
		}
		c.Faults[k.ep][k.kind] = n
	}
	for k, v := range cs.pushes {
		c.Pushes[k] = v
	}
	c.Refreshes = make(map[string]RefreshStats, len(cs.refreshes))
	for k, v := range cs.refreshes {
		c.Refreshes[k] = v
	}
	return c
}

// ResetCounters sets every counter back to zero, every platform's too.
func (s *Simulator) ResetCounters() {
	ps := s.platformList()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.counters = newCounterSet()
	for _, p := range ps {
		p.counters = newCounterSet()
	}
}
