package sim

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wxgate/wxgate/internal/journey"
)

func TestControlAPI(t *testing.T) {
	root := newEnv(t)
	ctok := root.componentToken()
	status := func(t *testing.T, r wxResp, want int) {
		t.Helper()
		if r.Status != want {
			t.Fatalf("status: got %d %s, want %d", r.Status, r.Body, want)
		}
	}
	var ans authorizeAnswer
	var auth authInfo

	journey.Step(t, "accounts", func(t *testing.T) {
		e := root.in(t)
		spec := `{"appid":"wxctlz000000000000","nick_name":"Ctl","followers":25000,"tags":[{"id":100,"name":"vip","from":0,"to":20}],"permission_sets":[1,2],"daily_quota":-1}`
		r := e.post("/sim/accounts", spec)
		status(t, r, 201)
		var info AccountInfo
		r.decode(t, &info)
		if info.AppID != "wxctlz000000000000" || info.Followers != 25000 || len(info.Tags) != 1 || info.Authorized {
			t.Fatalf("created: got %+v, want wxctlz000000000000, 25000 followers, one tag, not authorized", info)
		}
		status(t, e.post("/sim/accounts", spec), 409)
		status(t, e.post("/sim/accounts", `{"appid":"wxbadz000000000000","followers":-1}`), 400)
		if w := e.post("/sim/accounts", `{"appid":"wxacct1"}`); w.Status != 400 || !strings.Contains(string(w.Body), "16 letters or digits") {
			t.Fatalf("malformed appid: %d %s, want 400 naming WeChat's appid shape", w.Status, w.Body)
		}
		status(t, e.post("/sim/accounts", `{"appid":"wxbadz000000000000","unknown":1}`), 400)
		status(t, e.get("/sim/accounts/wxnobodyz000000000"), 404)
	})

	journey.Step(t, "authorize", func(t *testing.T) {
		e := root.in(t)
		// With the pre-auth code of a page the admin opened: the answer
		// carries the redirect the browser would follow.
		pre := e.preAuthCode(ctok)
		q := url.Values{"component_appid": {testComponent}, "pre_auth_code": {pre}, "redirect_uri": {"http://gw.example/cb?session=s1"}}
		if st, _ := e.getPage("/cgi-bin/componentloginpage?" + q.Encode()); st != 200 {
			t.Fatalf("authorization page: got %d, want 200", st)
		}
		r := e.post("/sim/accounts/wxctlz000000000000/authorize", map[string]string{"pre_auth_code": pre})
		status(t, r, 200)
		r.decode(t, &ans)
		wantRedirect := RedirectURL("http://gw.example/cb?session=s1", ans.AuthCode)
		if ans.AuthCode == "" || ans.ExpiresIn != 600 || ans.RedirectURL != wantRedirect || !ans.Account.Authorized {
			t.Fatalf("authorize answer: got %s, want an auth code expiring in 600 s, redirect_url %s, an authorized account", r.Body, wantRedirect)
		}
		status(t, e.post("/sim/accounts/wxctlz000000000000/authorize", map[string]string{"pre_auth_code": pre}), 400) // used up
		status(t, e.post("/sim/accounts/wxnobodyz000000000/authorize", nil), 404)
		var qr wxResp
		auth, qr = e.queryAuth(ctok, ans.AuthCode)
		e.mustCode(qr, 0)
	})

	journey.Step(t, "account tokens", func(t *testing.T) {
		e := root.in(t)
		r := e.get("/sim/accounts/wxctlz000000000000/token")
		status(t, r, 200)
		if !strings.Contains(string(r.Body), auth.AccessToken) {
			t.Fatalf("token: got %s, want the access token api_query_auth issued", r.Body)
		}
		status(t, e.post("/sim/accounts/wxctlz000000000000/expire_token", nil), 204)
		if _, r := e.userGet(auth.AccessToken, ""); r.errcode() != 42001 {
			t.Fatalf("after expire_token: got %s, want errcode 42001", r.Body)
		}
		status(t, e.post("/sim/accounts/wxctlz000000000000/invalidate_token", nil), 204)
		if _, r := e.userGet(auth.AccessToken, ""); r.errcode() != 40001 {
			t.Fatalf("after invalidate_token: got %s, want errcode 40001", r.Body)
		}
		status(t, e.post("/sim/accounts/wxnew/expire_token", nil), 404)
	})

	journey.Step(t, "permission sets, followers, quota", func(t *testing.T) {
		e := root.in(t)
		r := e.do("PUT", "/sim/accounts/wxctlz000000000000/permission_sets", `{"permission_sets":[1,100],"push":true}`)
		status(t, r, 200)
		var upd authorizeAnswer
		r.decode(t, &upd)
		if upd.AuthCode == "" || e.rcv.last(t).AuthorizationCode != upd.AuthCode || len(upd.Account.PermissionSets) != 2 {
			t.Fatalf("permission_sets answer: got %s, want a new auth code (the one pushed) and 2 sets", r.Body)
		}
		status(t, e.do("PUT", "/sim/accounts/wxctlz000000000000/permission_sets", `{}`), 400)
		r = e.do("PUT", "/sim/accounts/wxctlz000000000000/followers", `{"followers":7}`)
		status(t, r, 200)
		var info AccountInfo
		r.decode(t, &info)
		if info.Followers != 7 {
			t.Fatalf("followers: got %s, want 7", r.Body)
		}
		status(t, e.post("/sim/accounts/wxctlz000000000000/reset_quota", nil), 204)
	})

	journey.Step(t, "unauthorize", func(t *testing.T) {
		e := root.in(t)
		r := e.post("/sim/accounts/wxctlz000000000000/unauthorize", nil)
		status(t, r, 200)
		if got := e.rcv.last(t).InfoType; got != "unauthorized" {
			t.Fatalf("last event: got %q, want unauthorized", got)
		}
		status(t, e.post("/sim/accounts/wxctlz000000000000/unauthorize", nil), 409)
	})

	journey.Step(t, "tickets", func(t *testing.T) {
		e := root.in(t)
		r := e.post("/sim/ticket", nil)
		status(t, r, 200)
		var tk map[string]string
		r.decode(t, &tk)
		if got := e.rcv.last(t).ComponentVerifyTicket; got != tk["ticket"] {
			t.Fatalf("ticket answer: got %s, want the pushed ticket", r.Body)
		}
		e.rcv.setAnswer(func(int) (int, string) { return 500, "" })
		status(t, e.post("/sim/ticket", nil), 502)
		e.rcv.setAnswer(func(int) (int, string) { return 200, "success" })
	})

	journey.Step(t, "component token controls", func(t *testing.T) {
		e := root.in(t)
		status(t, e.get("/sim/component/token"), 200)
		status(t, e.post("/sim/component/invalidate_token", nil), 204)
	})

	journey.Step(t, "faults", func(t *testing.T) {
		e := root.in(t)
		// One object or a list; validated; listed; cleared.
		status(t, e.post("/sim/faults", `{"endpoint":"user/get","probability":0.5,"kind":"latency","latency":"10ms"}`), 200)
		r := e.post("/sim/faults", `[{"endpoint":"*","kind":"http_status","status":502,"probability":0.01},{"endpoint":"user/tag/get","appid":"wxctlz000000000000","kind":"errcode","errcode":45009}]`)
		status(t, r, 200)
		var fl struct {
			Faults []Fault `json:"faults"`
		}
		r.decode(t, &fl)
		if len(fl.Faults) != 3 || fl.Faults[0].Latency.Milliseconds() != 10 || fl.Faults[2].Errcode != 45009 {
			t.Fatalf("faults: got %s, want 3 faults, the first 10 ms of latency, the last errcode 45009", r.Body)
		}
		status(t, e.post("/sim/faults", `{"endpoint":"*","kind":"boom"}`), 400)
		status(t, e.post("/sim/faults", `{"endpoint":"*","kind":"latency","latency":25}`), 200)
		status(t, e.do("DELETE", "/sim/faults", nil), 204)
		if got := e.sim.Faults(); len(got) != 0 {
			t.Fatalf("faults after DELETE /sim/faults: got %d, want none", len(got))
		}
	})

	journey.Step(t, "counters, then reset", func(t *testing.T) {
		e := root.in(t)
		r := e.get("/sim/counters")
		status(t, r, 200)
		var c Counters
		r.decode(t, &c)
		if c.Calls[EndpointUserGet] == 0 || c.ByErrcode[EndpointUserGet][42001] != 1 || c.ByAccount[EndpointUserGet]["wxctlz000000000000"] == 0 ||
			c.Pushes["component_verify_ticket"].Delivered == 0 || c.Calls[EndpointComponentLoginPage] != 1 {
			t.Fatalf("counters: got %s, want user/get calls (one 42001, some for wxctlz000000000000), delivered tickets, one page view", r.Body)
		}
		status(t, e.post("/sim/counters/reset", nil), 204)
		if c := e.sim.Counters(); len(c.Calls) != 0 {
			t.Fatalf("counters after reset: got %+v, want no calls", c)
		}
	})

	journey.Step(t, "index and account list", func(t *testing.T) {
		e := root.in(t)
		r := e.get("/sim/")
		status(t, r, 200)
		if !strings.Contains(string(r.Body), "POST /sim/accounts/{appid}/authorize") {
			t.Fatalf("index: got %s, want the route list", r.Body)
		}
		r = e.get("/sim/accounts")
		status(t, r, 200)
		var list struct {
			Accounts []AccountInfo `json:"accounts"`
		}
		r.decode(t, &list)
		if len(list.Accounts) != 1 {
			t.Fatalf("accounts: got %s, want one account", r.Body)
		}
	})
}

func TestLoadSeed(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	yamlObj := write("seed.yaml", `
accounts:
  - appid: wxseed1z0000000000
    nick_name: Seed One
    followers: 23000
    tags:
      - {id: 134, name: vip, from: 0, to: 100}
    permission_sets: [1, 2]
  - appid: wxseed2z0000000000
    followers: 10000000
    lacks_api: true
    daily_quota: -1
    permission_sets: []
`)
	yamlList := write("list.yml", "- appid: wxlistz00000000000\n  followers: 3\n")
	jsonObj := write("seed.json", "{\n\t\"accounts\": [{\"appid\": \"wxjsonz00000000000\", \"followers\": 5, \"tags\": [{\"id\": 1, \"from\": 0, \"to\": 5}]}]\n}")
	jsonList := write("list.json", `[{"appid":"wxj1z0000000000000"},{"appid":"wxj2z0000000000000","permission_sets":[100]}]`)

	specs, err := LoadSeed(yamlObj)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 2 || specs[0].NickName != "Seed One" || specs[0].Tags[0].ID != 134 || specs[1].Followers != 10_000_000 ||
		!specs[1].LacksAPI || specs[1].DailyQuota != -1 || specs[1].PermissionSets == nil || len(specs[1].PermissionSets) != 0 {
		t.Fatalf("yaml specs %+v", specs)
	}
	for path, n := range map[string]int{yamlList: 1, jsonObj: 1, jsonList: 2} {
		specs, err := LoadSeed(path)
		if err != nil || len(specs) != n {
			t.Fatalf("%s: %d specs, %v", filepath.Base(path), len(specs), err)
		}
	}
	s, _ := New(Options{ComponentAppID: testComponent, ComponentSecret: testSecret, Token: testToken, EncodingAESKey: testAESKey})
	specs, _ = LoadSeed(yamlObj)
	for _, spec := range specs {
		if err := s.CreateAccount(spec); err != nil {
			t.Fatal(err)
		}
	}
	if info, _ := s.Account("wxseed2z0000000000"); len(info.PermissionSets) != 0 {
		t.Fatal("an explicit empty permission_sets got the default")
	}
	if info, _ := s.Account("wxseed1z0000000000"); len(info.PermissionSets) != 2 {
		t.Fatal("permission sets lost")
	}

	for name, text := range map[string]string{
		"unknown.yaml":  "accounts:\n  - appid: wx1\n    folowers: 3\n",
		"dup.yaml":      "- appid: wx1\n- appid: wx1\n",
		"range.yaml":    "- appid: wx1\n  followers: 3\n  tags: [{id: 1, from: 0, to: 4}]\n",
		"noappid.json":  `[{"followers":3}]`,
		"broken.json":   `[{"appid":`,
		"unknown.json":  `{"accounts":[],"extra":1}`,
		"negative.yaml": "- appid: wx1\n  followers: -5\n",
	} {
		if _, err := LoadSeed(write(name, text)); err == nil || !strings.HasPrefix(err.Error(), "sim: load seed") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := LoadSeed(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.DailyQuota = -1; o.EventURL = "" })
	ctok := e.componentToken()
	info := e.authorize(ctok, AccountSpec{AppID: "wxconcz00000000000", Followers: 25000, Tags: []TagSpec{{ID: 1, From: 0, To: 25000}}})
	_ = e.sim.SetFault(Fault{Endpoint: EndpointUserTagGet, Probability: 0.2, Kind: FaultErrcode})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				switch (g + i) % 4 {
				case 0:
					e.userGet(e.sim.CurrentAccessToken("wxconcz00000000000"), "")
				case 1:
					e.tagGet(e.sim.CurrentAccessToken("wxconcz00000000000"), 1, OpenID("wxconcz00000000000", 10000))
				case 2:
					e.component("api_authorizer_token", ctok, map[string]string{"component_appid": testComponent, "authorizer_appid": "wxconcz00000000000", "authorizer_refresh_token": info.RefreshToken})
				case 3:
					_ = e.sim.Counters()
					_ = e.sim.Accounts()
					_ = e.sim.SetFollowers("wxconcz00000000000", 25000+i)
				}
			}
		}(g)
	}
	wg.Wait()
	b, _ := json.Marshal(e.sim.Counters())
	if !strings.Contains(string(b), `"user/get"`) {
		t.Fatalf("counters %s", b)
	}
}
