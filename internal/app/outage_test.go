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

	"github.com/wxgate/wxgate/internal/faultnet"
	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store/storetest"
	"github.com/wxgate/wxgate/internal/tenant"
)

// TestStoreOutageIsStoreUnavailable puts a forwarder between a replica and
// PostgreSQL, with a directory staleness limit of 8 s, and cuts it. It
// proves that, while the store is away:
//
//   - /readyz answers 503 and wxgate_store_up says 0;
//
//   - calls served from memory keep working: getFans for a bound account
//     with a known key, on the REST and the compatible surface;
//
//   - calls that need the store answer 503 store_unavailable with
//     Retry-After: the admin API (read and write), the authorization flow
//     (a new session, and the callback of one made before the cut, as an
//     HTML page), a proxied call with a key or a binding this replica does
//     not know yet (the compatible surface answers -1);
//
//   - the event endpoint answers non-200 to a ticket push, so WeChat keeps
//     retrying, and never a false "success";
//
//   - past the staleness limit even known keys are refused with
//     store_unavailable (the replica may have missed revocations);
//
//   - once the link is back everything answers again without a restart.
//
//     go test -race -count=1 -run TestStoreOutageIsStoreUnavailable -v ./internal/app/
func TestStoreOutageIsStoreUnavailable(t *testing.T) {
	t.Parallel()
	const limit = 8 * time.Second
	var link *faultnet.Forwarder
	const appid, unbound = "wx0d00000000000001", "wx0d00000000000002"
	st := newStack(t, stackOptions{
		Accounts: []sim.AccountSpec{{AppID: appid, Followers: 5, PermissionSets: []int{2}}},
		Sim:      func(o *sim.Options) { o.PushRetries, o.PushRetryDelay = 2, 100*time.Millisecond },
		Env: func(e map[string]string) {
			e["WXGATE_DATABASE_URL"], link = storetest.Behind(t, e["WXGATE_DATABASE_URL"])
			e["WXGATE_DIRECTORY_MAX_STALENESS"] = limit.String()
			e["WXGATE_LOG_LEVEL"] = "info"
		},
	})
	st.addAccount(sim.AccountSpec{AppID: unbound, Followers: 5, PermissionSets: []int{2}}, false)
	gw := st.Replicas[0]
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	type answer struct {
		status     int
		retryAfter string
		code       string // the error code, or the compatible errcode
		body       string
	}
	send := func(t *testing.T, method, path, bearer string, body any) answer {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, "http://"+gw.Addr+path, rd)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(raw)}
		var e struct {
			Error   struct{ Code string } `json:"error"`
			Errcode *int                  `json:"errcode"`
		}
		if json.Unmarshal(raw, &e) == nil {
			a.code = e.Error.Code
			if e.Errcode != nil {
				a.code = fmt.Sprint(*e.Errcode)
			}
		}
		return a
	}
	wantUnavailable := func(t *testing.T, what string, a answer) {
		t.Helper()
		if a.status != 503 || a.code != "store_unavailable" || a.retryAfter == "" {
			t.Errorf("%s: got %d %q Retry-After %q (%.200s), want 503 store_unavailable with Retry-After", what, a.status, a.code, a.retryAfter, a.body)
		}
	}
	fans := "/v1/authorizers/" + appid + "/fans"
	compat := "/wx/" + appid + "/cgi-bin/user/get?access_token=" + url.QueryEscape(st.Key)
	metric := func(name string) float64 {
		v, err := metricAt(client, gw.Addr, name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	authFailures := func() float64 {
		v, err := metricAt(client, gw.Addr, "wxgate_auth_failures_total")
		if err != nil {
			return 0 // none yet
		}
		return v
	}
	var sessionID, newKey string

	journey.Step(t, "before the cut", func(t *testing.T) {
		if a := send(t, http.MethodGet, fans, st.Key, nil); a.status != 200 {
			t.Fatalf("getFans: got %d %.200s, want 200", a.status, a.body)
		}
		var s struct{ ID string }
		st.in(t).must(http.MethodPost, "/v1/authorizations", st.Key, map[string]any{"return_url": "https://tenant.example.com/back"}, &s, 201)
		sessionID = s.ID
		newKey = st.in(t).newKey(map[string]any{"name": "made before the cut"})
		if v := metric("wxgate_store_up"); v != 1 {
			t.Fatalf("wxgate_store_up: got %v, want 1", v)
		}
	})

	var cutAt time.Time
	journey.Step(t, "the store goes away: not ready, and the metric says so", func(t *testing.T) {
		link.Cut()
		cutAt = time.Now()
		eventually(t, 5*time.Second, "/readyz 503 and wxgate_store_up 0", func() bool {
			code, _ := get(t, "http://"+gw.Addr+"/readyz")
			return code == 503 && metric("wxgate_store_up") == 0
		})
	})

	journey.Step(t, "calls served from memory keep working", func(t *testing.T) {
		if a := send(t, http.MethodGet, fans, st.Key, nil); a.status != 200 {
			t.Errorf("getFans: got %d %.200s, want 200", a.status, a.body)
		}
		if a := send(t, http.MethodGet, fans, newKey, nil); a.status != 200 {
			t.Errorf("getFans with the key this replica issued before the cut: got %d %.200s, want 200", a.status, a.body)
		}
		if a := send(t, http.MethodGet, compat, "", nil); a.status != 200 || a.code != "" {
			t.Errorf("compatible getFans: got %d %q %.200s, want 200 without errcode", a.status, a.code, a.body)
		}
	})

	journey.Step(t, "calls that need the store are store_unavailable", func(t *testing.T) {
		authFailures0 := authFailures()
		wantUnavailable(t, "admin: create a tenant", send(t, http.MethodPost, "/admin/tenants", testAdminToken, map[string]any{"name": "initech"}))
		wantUnavailable(t, "admin: list tenants", send(t, http.MethodGet, "/admin/tenants", testAdminToken, nil))
		wantUnavailable(t, "admin: revoke a key", send(t, http.MethodDelete, "/admin/keys/k_nosuchkey", testAdminToken, nil))
		wantUnavailable(t, "a new authorization session", send(t, http.MethodPost, "/v1/authorizations", st.Key, map[string]any{"return_url": "https://tenant.example.com/back"}))
		if a := send(t, http.MethodGet, "/wechat/callback?session="+url.QueryEscape(sessionID)+"&auth_code=code-during-the-outage&expires_in=3600", "", nil); a.status != 503 || a.retryAfter == "" {
			t.Errorf("the callback of a session made before the cut: got %d Retry-After %q (%.200s), want 503 with Retry-After", a.status, a.retryAfter, a.body)
		}
		wantUnavailable(t, "getFans for an account not bound (needs a lookup)", send(t, http.MethodGet, "/v1/authorizers/"+unbound+"/fans", st.Key, nil))
		// A key this replica never saw: signed by the deployment, so it is
		// looked up in the store, which cannot answer.
		unknown := signedKey(t, st.TenantID)
		wantUnavailable(t, "getFans with a key this replica does not know", send(t, http.MethodGet, fans, unknown, nil))
		if a := send(t, http.MethodGet, "/wx/"+appid+"/cgi-bin/user/get?access_token="+url.QueryEscape(unknown), "", nil); a.status != 200 || a.code != "-1" {
			t.Errorf("compatible getFans with an unknown key: got %d %q %.200s, want 200 errcode -1", a.status, a.code, a.body)
		}
		if a := send(t, http.MethodGet, fans, st.Key+"x", nil); a.status != 401 {
			t.Errorf("a forged key: got %d %.200s, want 401 (the signature is checked before the store is needed)", a.status, a.body)
		}
		if v := authFailures(); v != authFailures0+1 {
			t.Errorf("wxgate_auth_failures_total: got %v more, want 1 (the forged key; a key the store could not check was not refused)", v-authFailures0)
		}
		if v := metric("wxgate_store_unavailable_total"); v == 0 {
			t.Errorf("wxgate_store_unavailable_total: got 0, want the failed statements counted")
		}
	})

	journey.Step(t, "a ticket push is never acknowledged", func(t *testing.T) {
		before := st.Sim.Counters().Pushes["component_verify_ticket"]
		if _, err := st.Sim.PushTicket(context.Background()); err == nil {
			t.Fatal("the ticket push: got delivered, want refused while the store is away")
		}
		after := st.Sim.Counters().Pushes["component_verify_ticket"]
		if after.Delivered != before.Delivered || after.Attempts < before.Attempts+3 {
			t.Errorf("ticket pushes: got %+v after %+v, want 3 more attempts and none delivered", after, before)
		}
	})

	journey.Step(t, "past the staleness limit known keys are refused too", func(t *testing.T) {
		// The limit runs from the last poll that reached the store, up to
		// one poll interval before the cut.
		earliest := limit - tenant.DefaultPollInterval
		if time.Since(cutAt) < earliest-500*time.Millisecond {
			if a := send(t, http.MethodGet, fans, st.Key, nil); a.status != 200 {
				t.Errorf("getFans %v into the outage (limit %v): got %d %.200s, want 200", time.Since(cutAt).Round(time.Millisecond), limit, a.status, a.body)
			}
		}
		var last answer
		eventually(t, limit+5*time.Second, "store_unavailable for a known key", func() bool {
			last = send(t, http.MethodGet, fans, st.Key, nil)
			return last.status != 200
		})
		if elapsed := time.Since(cutAt); elapsed < earliest {
			t.Errorf("a known key refused %v after the cut, before the %v limit (less one poll interval)", elapsed, limit)
		}
		wantUnavailable(t, "getFans past the limit", last)
		if a := send(t, http.MethodGet, compat, "", nil); a.status != 200 || a.code != "-1" {
			t.Errorf("compatible getFans past the limit: got %d %q %.200s, want 200 errcode -1", a.status, a.code, a.body)
		}
		if age := metric("wxgate_directory_age_seconds"); age < limit.Seconds() {
			t.Errorf("wxgate_directory_age_seconds: got %v, want past the %v limit", age, limit)
		}
	})

	journey.Step(t, "back without a restart", func(t *testing.T) {
		if err := link.Restore(); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "getFans answering 200 again", func() bool {
			return send(t, http.MethodGet, fans, st.Key, nil).status == 200
		})
		eventually(t, 5*time.Second, "/readyz 200 and wxgate_store_up 1", func() bool {
			code, _ := get(t, "http://"+gw.Addr+"/readyz")
			return code == 200 && metric("wxgate_store_up") == 1
		})
		if a := send(t, http.MethodPost, "/admin/tenants", testAdminToken, map[string]any{"name": "initech"}); a.status != 201 {
			t.Errorf("admin after the outage: got %d %.200s, want 201", a.status, a.body)
		}
		if a := send(t, http.MethodGet, "/v1/authorizers/"+unbound+"/fans", st.Key, nil); a.status != 404 {
			t.Errorf("an account not bound after the outage: got %d %.200s, want 404", a.status, a.body)
		}
	})
}
