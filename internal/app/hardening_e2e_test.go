package app_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/sim"
)

// TestSecurityHardeningEndToEnd runs the hardening of the authorization
// flow and the export caps through the real `serve` with its settings:
// export caps from the environment, restricted keys, return_url hosts, and
// an account authorized by a second tenant waiting for the operator.
func TestSecurityHardeningEndToEnd(t *testing.T) {
	t.Parallel()
	const big = "wx0000000000000b16"
	st := newStack(t, stackOptions{
		Accounts: []sim.AccountSpec{{AppID: big, Followers: 200000, PermissionSets: []int{2}}},
		Env:      func(env map[string]string) { env["WXGATE_EXPORT_MAX_PER_TENANT"] = "1" },
	})
	journey.Step(t, "one stalled export holds the tenant's only slot", func(t *testing.T) {
		cn, err := net.Dial("tcp", st.Replicas[0].Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer cn.Close()
		_ = cn.(*net.TCPConn).SetReadBuffer(4 << 10)
		if _, err := io.WriteString(cn, "GET /v1/authorizers/"+big+"/fans/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+st.Key+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = cn.SetReadDeadline(time.Now().Add(30 * time.Second))
		if line, err := bufio.NewReaderSize(cn, 16).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("stalled export: got %q %v, want 200", line, err)
		}
		code, h, body := st.get("/v1/authorizers/"+big+"/fans/export", st.Key)
		if code != http.StatusTooManyRequests || h.Get("Retry-After") != "60" || !strings.Contains(string(body), `"scope":"tenant_exports"`) {
			t.Fatalf("second export: got %d %v %s, want 429 with Retry-After and scope tenant_exports", code, h, body)
		}
		cn.Close()
		eventually(t, 10*time.Second, "the slot given back once the stalled client went away", func() bool {
			req, _ := http.NewRequest(http.MethodGet, st.base()+"/v1/authorizers/"+big+"/fans/export", nil)
			req.Header.Set("Authorization", "Bearer "+st.Key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			n, _ := io.Copy(io.Discard, resp.Body)
			return resp.StatusCode == 200 && n > 200000*30
		})
	})
	journey.Step(t, "a restricted key cannot start an authorization", func(t *testing.T) {
		restricted := st.newKey(map[string]any{"appids": []string{big}})
		if code, raw := st.call(http.MethodPost, "/v1/authorizations", restricted, map[string]any{"return_url": "https://acme.example/"}, nil); code != http.StatusForbidden {
			t.Fatalf("got %d %s, want 403", code, raw)
		}
	})
	journey.Step(t, "return_url hosts", func(t *testing.T) {
		st.must(http.MethodPatch, "/admin/tenants/"+st.TenantID, testAdminToken, map[string]any{"return_url_hosts": []string{"acme.example"}}, nil, 200)
		if code, raw := st.call(http.MethodPost, "/v1/authorizations", st.Key, map[string]any{"return_url": "https://evil.example/"}, nil); code != http.StatusBadRequest {
			t.Fatalf("another host: got %d %s, want 400", code, raw)
		}
	})
	journey.Step(t, "a second tenant's authorization of a held account waits for approval", func(t *testing.T) {
		var other struct{ ID string }
		st.must(http.MethodPost, "/admin/tenants", testAdminToken, map[string]any{"name": "other"}, &other, 201)
		var key struct{ Key string }
		st.must(http.MethodPost, "/admin/tenants/"+other.ID+"/keys", testAdminToken, map[string]any{}, &key, 201)
		var auth struct{ URL string }
		st.must(http.MethodPost, "/v1/authorizations", key.Key, map[string]any{"return_url": "https://other.example/"}, &auth, 201)
		u, _ := url.Parse(auth.URL)
		code, err := st.Sim.Authorize(context.Background(), big, u.Query().Get("pre_auth_code"))
		if err != nil {
			t.Fatal(err)
		}
		cb := sim.RedirectURL(u.Query().Get("redirect_uri"), code)
		cbURL, _ := url.Parse(cb)
		resp, err := st.client.Get(st.base() + cbURL.RequestURI())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := "https://other.example/?appid=" + big + "&result=pending"; resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
			t.Fatalf("callback: got %d %s, want 302 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
		}
		if code, _, body := st.get("/v1/authorizers/"+big, key.Key); code != http.StatusNotFound {
			t.Fatalf("pending: got %d %s, want 404", code, body)
		}
		st.must(http.MethodPost, "/admin/tenants/"+other.ID+"/authorizers/"+big+"/approve", testAdminToken, nil, nil, 204)
		if code, _, body := st.get("/v1/authorizers/"+big, key.Key); code != http.StatusOK {
			t.Fatalf("approved: got %d %s, want 200", code, body)
		}
	})
}
