package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Fault kinds.
const (
	// FaultErrcode answers {"errcode":Errcode,...} (default -1) with HTTP 200.
	FaultErrcode = "errcode"
	// FaultHTTPStatus answers HTTP Status (default 500) with an HTML body.
	FaultHTTPStatus = "http_status"
	// FaultDrop closes the connection without an answer.
	FaultDrop = "drop"
	// FaultLatency delays the call by Latency, then answers it normally.
	FaultLatency = "latency"
)

// Fault injects a failure into a fraction of the calls of an endpoint.
// Faults apply to the WeChat APIs, not to the pages or the /sim/ API.
type Fault struct {
	// Endpoint is an Endpoint* name (e.g. "user/get") or "*" for every API.
	Endpoint string `json:"endpoint"`
	// AppID restricts the fault to calls for one authorizer ("" = any call).
	AppID string `json:"appid,omitempty"`
	// Probability in [0,1] that a matching call is faulted; 0 means always.
	Probability float64 `json:"probability"`
	// Kind is FaultErrcode, FaultHTTPStatus, FaultDrop or FaultLatency.
	Kind string `json:"kind"`
	// Errcode answered by FaultErrcode (0 = -1, "system error"); 45009,
	// 45011, 61004, … work too.
	Errcode int `json:"errcode,omitempty"`
	// Status answered by FaultHTTPStatus (0 = 500).
	Status int `json:"status,omitempty"`
	// Latency added by FaultLatency. In JSON it is a Go duration string
	// ("250ms") or a number of milliseconds.
	Latency time.Duration `json:"-"`
}

type faultJSON struct {
	Endpoint    string          `json:"endpoint"`
	AppID       string          `json:"appid,omitempty"`
	Probability float64         `json:"probability"`
	Kind        string          `json:"kind"`
	Errcode     int             `json:"errcode,omitempty"`
	Status      int             `json:"status,omitempty"`
	Latency     json.RawMessage `json:"latency,omitempty"`
}

// MarshalJSON encodes Latency as a duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Endpoint: f.Endpoint, AppID: f.AppID, Probability: f.Probability, Kind: f.Kind, Errcode: f.Errcode, Status: f.Status}
	if f.Latency != 0 {
		j.Latency = json.RawMessage(strconv.Quote(f.Latency.String()))
	}
	return json.Marshal(j)
}

// UnmarshalJSON accepts Latency as a duration string or milliseconds.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*f = Fault{Endpoint: j.Endpoint, AppID: j.AppID, Probability: j.Probability, Kind: j.Kind, Errcode: j.Errcode, Status: j.Status}
	if len(j.Latency) > 0 && string(j.Latency) != "null" {
		var str string
		if err := json.Unmarshal(j.Latency, &str); err == nil {
			d, err := time.ParseDuration(str)
			if err != nil {
				return fmt.Errorf("latency: %w", err)
			}
			f.Latency = d
		} else {
			var ms float64
			if err := json.Unmarshal(j.Latency, &ms); err != nil {
				return fmt.Errorf("latency must be a duration string or milliseconds")
			}
			f.Latency = time.Duration(ms * float64(time.Millisecond))
		}
	}
	return nil
}

// Validate checks a fault's fields.
func (f Fault) Validate() error {
	switch {
	case f.Endpoint == "":
		return fmt.Errorf("%w: fault endpoint is required", ErrInvalid)
	case f.Probability < 0 || f.Probability > 1 || f.Probability != f.Probability:
		return fmt.Errorf("%w: fault probability %v is outside [0,1]", ErrInvalid, f.Probability)
	}
	switch f.Kind {
	case FaultErrcode, FaultDrop:
	case FaultHTTPStatus:
		if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
			return fmt.Errorf("%w: fault status %d is not a 4xx/5xx", ErrInvalid, f.Status)
		}
	case FaultLatency:
		if f.Latency <= 0 || f.Latency > 10*time.Minute {
			return fmt.Errorf("%w: fault latency %v must be in (0, 10m]", ErrInvalid, f.Latency)
		}
	default:
		return fmt.Errorf("%w: fault kind %q (want errcode, http_status, drop or latency)", ErrInvalid, f.Kind)
	}
	return nil
}

// SetFault adds a fault, replacing one with the same Endpoint, AppID and
// Kind. It answers ErrInvalid for a bad fault (and then changes nothing).
// Faults stay until ClearFaults.
func (s *Simulator) SetFault(f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, g := range s.faults {
		if g.Endpoint == f.Endpoint && g.AppID == f.AppID && g.Kind == f.Kind {
			s.faults[i] = f
			return nil
		}
	}
	s.faults = append(s.faults, f)
	return nil
}

// ClearFaults removes every fault.
func (s *Simulator) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// Faults returns the faults in force.
func (s *Simulator) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Fault{}, s.faults...)
}

// inject applies the faults matching a call. It answers true when the call
// was answered (or dropped) by a fault; latency faults delay and return false.
func (s *Simulator) inject(w http.ResponseWriter, r *http.Request, p *Platform, ep, appid string) bool {
	s.mu.Lock()
	if len(s.faults) == 0 {
		s.mu.Unlock()
		return false
	}
	var latency time.Duration
	var fire *Fault
	for i := range s.faults {
		f := &s.faults[i]
		if (f.Endpoint != "*" && f.Endpoint != ep) || (f.AppID != "" && f.AppID != appid) {
			continue
		}
		if f.Kind != FaultLatency && fire != nil {
			continue
		}
		if f.Probability != 0 && s.rng.Float64() >= f.Probability {
			continue
		}
		if f.Kind == FaultLatency {
			latency += f.Latency
			continue
		}
		g := *f
		fire = &g
	}
	s.mu.Unlock()

	if latency > 0 {
		s.recordFault(p, ep, FaultLatency)
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	if fire == nil {
		return false
	}
	s.recordFault(p, ep, fire.Kind)
	switch fire.Kind {
	case FaultErrcode:
		code := fire.Errcode
		if code == 0 {
			code = errSystem
		}
		s.fail(w, p, ep, appid, code)
	case FaultHTTPStatus:
		status := fire.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		s.record(p, ep, appid, noErrcode)
		text := strconv.Itoa(status) + " " + http.StatusText(status)
		body := "<html>\r\n<head><title>" + text + "</title></head>\r\n<body>\r\n<center><h1>" + text + "</h1></center>\r\n</body>\r\n</html>\r\n"
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	case FaultDrop:
		s.record(p, ep, appid, noErrcode)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler) // net/http closes the connection (HTTP/2: resets the stream)
	}
	return true
}
