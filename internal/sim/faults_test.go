package sim

import (
	"math"
	"net/url"
	"testing"
	"time"
)

func TestFaultInjectionRates(t *testing.T) {
	const calls = 2000
	tests := []struct {
		name  string
		fault Fault
		check func(t *testing.T, e *env, r wxResp) bool // reports whether the call was faulted
	}{
		{"errcode -1", Fault{Endpoint: EndpointUserGet, Probability: 0.3, Kind: FaultErrcode},
			func(t *testing.T, e *env, r wxResp) bool { return r.errcode() == -1 }},
		{"quota error", Fault{Endpoint: "*", Probability: 0.1, Kind: FaultErrcode, Errcode: 45009},
			func(t *testing.T, e *env, r wxResp) bool { return r.errcode() == 45009 }},
		{"http 502", Fault{Endpoint: EndpointUserGet, Probability: 0.5, Kind: FaultHTTPStatus, Status: 502},
			func(t *testing.T, e *env, r wxResp) bool { return r.Status == 502 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.DailyQuota = -1 })
			ctok := e.componentToken()
			info := e.authorize(ctok, AccountSpec{AppID: "wxfaultz0000000000", Followers: 3})
			if err := e.sim.SetFault(tt.fault); err != nil {
				t.Fatal(err)
			}
			faulted := 0
			for i := 0; i < calls; i++ {
				_, r := e.userGet(info.AccessToken, "")
				if tt.check(t, e, r) {
					faulted++
				} else if r.errcode() != 0 || r.Status != 200 {
					t.Fatalf("unfaulted call failed: %d %s", r.Status, r.Body)
				}
			}
			rate := float64(faulted) / calls
			// 2000 Bernoulli draws: 4 standard deviations is at most 0.045.
			tol := 4 * math.Sqrt(tt.fault.Probability*(1-tt.fault.Probability)/calls)
			if math.Abs(rate-tt.fault.Probability) > tol {
				t.Fatalf("fault rate %.3f, want %.2f ± %.3f", rate, tt.fault.Probability, tol)
			}
			c := e.sim.Counters()
			if c.Faults[EndpointUserGet][tt.fault.Kind] != int64(faulted) || c.Calls[EndpointUserGet] != calls {
				t.Fatalf("counters: faults %v calls %d, want %d/%d", c.Faults[EndpointUserGet], c.Calls[EndpointUserGet], faulted, calls)
			}
		})
	}
}

func TestFaultInjectionIsDeterministicWithASeed(t *testing.T) {
	run := func() []int {
		e := newEnv(t, func(o *Options) { o.Seed = 7; o.DailyQuota = -1 })
		ctok := e.componentToken()
		info := e.authorize(ctok, AccountSpec{AppID: "wxseedz00000000000", Followers: 1})
		_ = e.sim.SetFault(Fault{Endpoint: EndpointUserGet, Probability: 0.5, Kind: FaultErrcode})
		var codes []int
		for i := 0; i < 50; i++ {
			_, r := e.userGet(info.AccessToken, "")
			codes = append(codes, r.errcode())
		}
		return codes
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("call %d differs between two runs with the same seed", i)
		}
	}
}

func TestFaultKinds(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.DailyQuota = -1 })
	ctok := e.componentToken()
	a := e.authorize(ctok, AccountSpec{AppID: "wxaz00000000000000", Followers: 1})
	b := e.authorize(ctok, AccountSpec{AppID: "wxbz00000000000000", Followers: 1})

	// Probability 0 means always; AppID restricts the fault to one account.
	if err := e.sim.SetFault(Fault{Endpoint: EndpointUserGet, AppID: "wxaz00000000000000", Kind: FaultErrcode, Errcode: 45011}); err != nil {
		t.Fatal(err)
	}
	if _, r := e.userGet(a.AccessToken, ""); r.errcode() != 45011 {
		t.Fatalf("account fault: %s", r.Body)
	}
	if _, r := e.userGet(b.AccessToken, ""); r.errcode() != 0 {
		t.Fatalf("other account faulted: %s", r.Body)
	}
	e.sim.ClearFaults()

	// A dropped connection is a transport error for the client.
	_ = e.sim.SetFault(Fault{Endpoint: EndpointUserGet, Kind: FaultDrop})
	resp, err := e.srv.Client().Get(e.srv.URL + "/cgi-bin/user/get?access_token=" + url.QueryEscape(a.AccessToken))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("dropped call answered %d", resp.StatusCode)
	}
	e.sim.ClearFaults()

	// Latency delays, then answers normally.
	_ = e.sim.SetFault(Fault{Endpoint: EndpointUserGet, Kind: FaultLatency, Latency: 30 * time.Millisecond})
	start := time.Now()
	if _, r := e.userGet(a.AccessToken, ""); r.errcode() != 0 {
		t.Fatalf("latency fault answer: %s", r.Body)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("latency fault took %v", d)
	}
	// Faults hit component APIs too; the same key replaces a fault.
	_ = e.sim.SetFault(Fault{Endpoint: EndpointAuthorizerToken, Kind: FaultErrcode})
	_ = e.sim.SetFault(Fault{Endpoint: EndpointAuthorizerToken, Kind: FaultErrcode, Errcode: 61004})
	if n := len(e.sim.Faults()); n != 2 {
		t.Fatalf("%d faults, want 2 (latency + replaced errcode)", n)
	}
	r := e.component("api_authorizer_token", ctok, map[string]string{"component_appid": testComponent, "authorizer_appid": "wxaz00000000000000", "authorizer_refresh_token": a.RefreshToken})
	e.mustCode(r, 61004)
	e.sim.ClearFaults()
	if len(e.sim.Faults()) != 0 {
		t.Fatal("ClearFaults left faults")
	}

	for _, bad := range []Fault{
		{Endpoint: "", Kind: FaultDrop},
		{Endpoint: "*", Kind: "explode"},
		{Endpoint: "*", Kind: FaultDrop, Probability: 1.5},
		{Endpoint: "*", Kind: FaultHTTPStatus, Status: 200},
		{Endpoint: "*", Kind: FaultLatency},
	} {
		if err := e.sim.SetFault(bad); err == nil {
			t.Errorf("SetFault(%+v) accepted", bad)
		}
	}
}
