package httpapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxgate/wxgate/internal/component/componenttest"
	"github.com/wxgate/wxgate/internal/sim"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/wechat"
)

// exportFixture is the real router over the real proxy and platform, with
// one tenant, its key, and accounts bound to it.
type exportFixture struct {
	*platformFixture
	tenantID, key string
}

func newExportFixture(t *testing.T, opts ...func(*componenttest.Options)) *exportFixture {
	t.Helper()
	pf := newPlatformFixture(t, store.SQLite, opts...)
	pf.p.PushTicket()
	f := &exportFixture{platformFixture: pf, tenantID: pf.createTenant("acme")}
	_, f.key = pf.issueKey(f.tenantID, nil)
	return f
}

// account creates a simulated account, has it authorize the platform and
// binds it to the tenant.
func (f *exportFixture) account(spec sim.AccountSpec) string {
	f.t.Helper()
	if err := f.p.Sim.CreateAccount(spec); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.p.Sim.Authorize(f.p.Ctx(), spec.AppID, ""); err != nil {
		f.t.Fatalf("authorize %s: %v", spec.AppID, err)
	}
	if w := f.admin(http.MethodPut, "/admin/tenants/"+f.tenantID+"/authorizers/"+spec.AppID, nil); w.Code != http.StatusNoContent {
		f.t.Fatalf("bind %s: %d %s", spec.AppID, w.Code, w.Body)
	}
	return spec.AppID
}

// exportLines splits an export body into its openids (NDJSON or CSV) and
// its trailing error line, if any.
func exportLines(t *testing.T, format, body string) (openids []string, errLine string) {
	t.Helper()
	lines := strings.Split(body, "\n")
	if lines[len(lines)-1] != "" {
		t.Fatalf("the stream does not end with a newline: %q", lines[len(lines)-1])
	}
	lines = lines[:len(lines)-1]
	if format == "csv" {
		if len(lines) == 0 || lines[0] != "openid" {
			t.Fatalf("no CSV header: %.80q", body)
		}
		lines = lines[1:]
	}
	for i, l := range lines {
		switch {
		case format == "csv" && strings.HasPrefix(l, "#error "), format == "ndjson" && strings.HasPrefix(l, `{"error":`):
			if i != len(lines)-1 {
				t.Fatalf("error line %d is not the last", i)
			}
			return openids, l
		case format == "csv":
			openids = append(openids, l)
		default:
			var v struct {
				OpenID string `json:"openid"`
			}
			if err := json.Unmarshal([]byte(l), &v); err != nil || v.OpenID == "" {
				t.Fatalf("line %d %q: %v", i, l, err)
			}
			openids = append(openids, v.OpenID)
		}
	}
	return openids, ""
}

// TestExportStreamsEveryOpenIDExactlyOnce exports follower counts that are
// not multiples of the 10000-openid page (the last getFans page ends with
// an empty next_openid) and tags, in NDJSON and CSV, through the router.
func TestExportStreamsEveryOpenIDExactlyOnce(t *testing.T) {
	t.Parallel()
	f := newExportFixture(t)
	tags := []sim.TagSpec{{ID: 134, From: 0, To: 15000}, {ID: 7, From: 100, To: 110}, {ID: 9, From: 3000, To: 13000}}
	fans := f.account(sim.AccountSpec{AppID: "wx00000000000000f1", Followers: 23000, PermissionSets: []int{2}, Tags: tags})
	few := f.account(sim.AccountSpec{AppID: "wx00000000000000f2", Followers: 7, PermissionSets: []int{100}})
	none := f.account(sim.AccountSpec{AppID: "wx00000000000000f3", Followers: 0, PermissionSets: []int{2}})
	tests := []struct {
		name, path, appid string
		from, to          int
	}{
		{"23000 followers", "/fans/export", fans, 0, 23000},
		{"7 followers", "/fans/export", few, 0, 7},
		{"no follower", "/fans/export", none, 0, 0},
		{"resumed inside the last page", "/fans/export?next_openid=" + sim.OpenID(fans, 20499), fans, 20500, 23000},
		{"tag of 15000", "/tags/134/fans/export", fans, 0, 15000},
		{"tag of 10", "/tags/7/fans/export", fans, 100, 110},
		{"tag of exactly 10000", "/tags/9/fans/export", fans, 3000, 13000},
	}
	for _, format := range []string{"ndjson", "csv"} {
		for _, tt := range tests {
			t.Run(format+" "+tt.name, func(t *testing.T) {
				path := "/v1/authorizers/" + tt.appid + tt.path
				if strings.Contains(path, "?") {
					path += "&format=" + format
				} else {
					path += "?format=" + format
				}
				w := f.tenantCall(http.MethodGet, path, f.key)
				if w.Code != http.StatusOK {
					t.Fatalf("%d %s", w.Code, w.Body)
				}
				want := map[string]string{"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}[format]
				if ct := w.Header().Get("Content-Type"); ct != want {
					t.Fatalf("Content-Type %q, want %q", ct, want)
				}
				openids, errLine := exportLines(t, format, w.Body.String())
				if errLine != "" {
					t.Fatalf("error line %q", errLine)
				}
				componenttest.WantFollowers(t, tt.appid, openids, tt.from, tt.to)
			})
		}
	}
	t.Run("each export is one ok call in the metrics", func(t *testing.T) {
		for _, a := range []string{"getFans", "getTagFans"} {
			want := map[string]float64{"getFans": 8, "getTagFans": 6}[a]
			if got := testutil.ToFloat64(f.metrics.ProxyCalls.WithLabelValues(a, "export", "ok", f.tenantID)); got != want {
				t.Errorf("%s exports counted ok: %v, want %v", a, got, want)
			}
		}
	})
}

// TestWriteJSONStringEscapes: openids take the fast path; anything that
// needs escaping in JSON takes encoding/json's, so every line stays valid
// JSON whatever WeChat sends.
func TestWriteJSONStringEscapes(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "oABC_x-1", `a"b`, `a\b`, "a\x01b", "tab\tin", "\x1f", "caf\u00e9", "\xff", "last\x7f"} {
		var b strings.Builder
		w := bufio.NewWriter(&b)
		writeJSONString(w, s)
		_ = w.Flush()
		want, _ := json.Marshal(s)
		if b.String() != string(want) {
			t.Errorf("writeJSONString(%q) = %s, want %s", s, b.String(), want)
		}
	}
}

// TestExportFailureEndsTheStreamWithTheCursor: WeChat fails the second
// page; the 200 stream carries the first page exactly, then the error line
// with the cursor that resumes the export without a gap or a duplicate.
func TestExportFailureEndsTheStreamWithTheCursor(t *testing.T) {
	t.Parallel()
	const appid = "wx00000000000000f4"
	// Once armed, the simulator answers the first user/get page and fails
	// every later one with 45009 (its own fault injection).
	var armed atomic.Bool
	var pages atomic.Int64
	var f *exportFixture
	f = newExportFixture(t, func(o *componenttest.Options) {
		o.SimMiddleware = func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if armed.Load() && r.URL.Path == "/cgi-bin/user/get" && pages.Add(1) == 2 {
					if err := f.p.Sim.SetFault(sim.Fault{Endpoint: sim.EndpointUserGet, AppID: appid, Kind: sim.FaultErrcode, Errcode: wechat.ErrDailyQuota}); err != nil {
						t.Error(err)
					}
				}
				next.ServeHTTP(w, r)
			})
		}
	})
	f.account(sim.AccountSpec{AppID: appid, Followers: 23000, PermissionSets: []int{2}})
	for _, format := range []string{"ndjson", "csv"} {
		t.Run(format, func(t *testing.T) {
			defer f.p.Sim.ClearFaults()
			pages.Store(0)
			armed.Store(true)
			w := f.tenantCall(http.MethodGet, "/v1/authorizers/"+appid+"/fans/export?format="+format, f.key)
			armed.Store(false)
			f.p.Sim.ClearFaults()
			first, errLine := exportLines(t, format, w.Body.String())
			if w.Code != http.StatusOK {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			cursor := sim.OpenID(appid, 9999)
			if want := "#error code=rate_limited wechat_errcode=45009 resumable=true retry_after_seconds="; format == "csv" &&
				(!strings.HasPrefix(errLine, want) || !strings.Contains(errLine, " next_openid="+cursor+" message=")) {
				t.Fatalf("error line %q, want %s… next_openid=%s message=…", errLine, want, cursor)
			}
			if format == "ndjson" {
				var line struct {
					Error struct {
						Code    string         `json:"code"`
						Details map[string]any `json:"details"`
					} `json:"error"`
					NextOpenID *string `json:"next_openid"`
				}
				if err := json.Unmarshal([]byte(errLine), &line); err != nil || line.Error.Code != "rate_limited" ||
					line.Error.Details["wechat_errcode"] != float64(wechat.ErrDailyQuota) || line.NextOpenID == nil || *line.NextOpenID != cursor {
					t.Fatalf("error line %q, want rate_limited, 45009 and next_openid %s", errLine, cursor)
				}
			}
			componenttest.WantFollowers(t, appid, first, 0, 10000)
			w = f.tenantCall(http.MethodGet, "/v1/authorizers/"+appid+"/fans/export?format="+format+"&next_openid="+cursor, f.key)
			rest, errLine := exportLines(t, format, w.Body.String())
			if w.Code != http.StatusOK || errLine != "" {
				t.Fatalf("resumed: %d, error line %q", w.Code, errLine)
			}
			componenttest.WantFollowers(t, appid, append(first, rest...), 0, 23000)
		})
	}
	if got := testutil.ToFloat64(f.metrics.ProxyCalls.WithLabelValues("getFans", "export", "rate_limited", f.tenantID)); got != 2 {
		t.Fatalf("failed exports counted rate_limited: %v, want 2", got)
	}
}
