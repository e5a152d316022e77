package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/app"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// stack is a whole deployment on loopback: the simulator, one or more
// gateway replicas (app.Run "serve") on one database, a tenant with a key,
// and accounts authorized and bound to the tenant.
type stack struct {
	t      testing.TB
	Sim    *sim.Simulator
	SimURL string
	// Host relays the simulator's pushes to the first replica (Relay
	// elsewhere to lose them).
	Host     *app.SimHost
	Replicas []*instance
	DBURL    string
	Key      string
	TenantID string
	client   *http.Client
}

type stackOptions struct {
	Replicas int
	Dialect  store.Dialect
	Accounts []sim.AccountSpec
	// Sim adjusts the simulator's options (lifetimes, quota, seed).
	Sim func(*sim.Options)
	// Env adjusts the gateways' environment.
	Env func(map[string]string)
}

func newStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Dialect == "" {
		o.Dialect = store.Postgres
	}
	simOpts := sim.Options{
		ComponentAppID: testComponentAppID, ComponentSecret: "test-component-secret",
		Token: "test-component-token", EncodingAESKey: testAESKey,
		TicketInterval: -1, DailyQuota: -1, PushRetryDelay: 50 * time.Millisecond, Seed: 1,
	}
	if o.Sim != nil {
		o.Sim(&simOpts)
	}
	host, err := app.StartSimHost(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(host.Close)
	s := host.Sim
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	st := &stack{t: t, Sim: s, SimURL: host.URL, Host: host, DBURL: storetest.NewURL(t, o.Dialect), client: checkedByContract(t, &http.Client{
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	})}
	for range o.Replicas {
		env := gatewayEnv(st.DBURL, host.URL)
		if o.Env != nil {
			o.Env(env)
		}
		st.Replicas = append(st.Replicas, start(t, env, "serve"))
	}
	host.Relay(st.Replicas[0].Addr)

	if _, err := s.PushTicket(ctx); err != nil {
		t.Fatalf("push ticket: %v", err)
	}
	eventually(t, 15*time.Second, "component token", func() bool {
		var c struct {
			TokenExpiresAt *string `json:"token_expires_at"`
		}
		code, _ := st.call(http.MethodGet, "/admin/component", testAdminToken, nil, &c)
		return code == 200 && c.TokenExpiresAt != nil
	})
	var tn struct{ ID string }
	st.must(http.MethodPost, "/admin/tenants", testAdminToken, map[string]any{"name": "acme"}, &tn, 201)
	st.TenantID = tn.ID
	st.Key = st.newKey(map[string]any{"name": "test"})
	for _, a := range o.Accounts {
		st.addAccount(a, true)
	}
	return st
}

// addAccount creates a simulated account, has it authorize the platform
// (event only) and, if bind, binds it to the tenant.
func (st *stack) addAccount(a sim.AccountSpec, bind bool) {
	st.t.Helper()
	if err := st.Sim.CreateAccount(a); err != nil {
		st.t.Fatal(err)
	}
	if _, err := st.Sim.Authorize(context.Background(), a.AppID, ""); err != nil {
		st.t.Fatalf("authorize %s: %v", a.AppID, err)
	}
	if bind {
		// The authorized event was handled before the push was answered; bind it.
		st.must(http.MethodPut, "/admin/tenants/"+st.TenantID+"/authorizers/"+a.AppID, testAdminToken, nil, nil, 204)
	}
	// Wait until every replica serves it.
	for _, r := range st.Replicas {
		eventually(st.t, 5*time.Second, "account "+a.AppID+" visible on "+r.Addr, func() bool {
			code, _ := st.callOn(r, http.MethodGet, "/admin/authorizers", testAdminToken, nil, nil)
			return code == 200
		})
	}
}

func (st *stack) newKey(body map[string]any) string {
	st.t.Helper()
	var k struct{ Key string }
	st.must(http.MethodPost, "/admin/tenants/"+st.TenantID+"/keys", testAdminToken, body, &k, 201)
	return k.Key
}

// in returns st reporting to t: the helpers called in a step of a journey
// test fail that step, not the test around it. The deployment is the same.
func (st *stack) in(t testing.TB) *stack {
	c := *st
	c.t = t
	return &c
}

func (st *stack) base() string { return "http://" + st.Replicas[0].Addr }

// call sends a request to the first replica; out (if not nil) receives the JSON answer.
func (st *stack) call(method, path, bearer string, in, out any) (int, []byte) {
	return st.callOn(st.Replicas[0], method, path, bearer, in, out)
}

func (st *stack) callOn(r *instance, method, path, bearer string, in, out any) (int, []byte) {
	st.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+r.Addr+path, body)
	if err != nil {
		st.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := st.client.Do(req)
	if err != nil {
		st.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		_ = json.Unmarshal(raw, out)
	}
	return resp.StatusCode, raw
}

func (st *stack) must(method, path, bearer string, in, out any, want int) {
	st.t.Helper()
	if code, raw := st.call(method, path, bearer, in, out); code != want {
		st.t.Fatalf("%s %s = %d %s, want %d", method, path, code, raw, want)
	}
}

// get fetches a gateway path with the tenant key as bearer and returns status, headers and body.
func (st *stack) get(path, key string) (int, http.Header, []byte) {
	st.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, st.base()+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := st.client.Do(req)
	if err != nil {
		st.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

// simGet calls the simulator directly with the account's current token.
func (st *stack) simDirect(method, path, appid string, q url.Values, body []byte) []byte {
	st.t.Helper()
	if q == nil {
		q = url.Values{}
	}
	q.Set("access_token", st.Sim.CurrentAccessToken(appid))
	req, _ := http.NewRequest(method, st.SimURL+path+"?"+q.Encode(), bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		st.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return raw
}

func (st *stack) String() string { return fmt.Sprintf("stack(%d replicas)", len(st.Replicas)) }
