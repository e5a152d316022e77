package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"testing"
	"time"
)

// sinkWriter is a reusable in-memory ResponseWriter: after warm-up it
// allocates nothing itself, so benchmarks measure the simulator.
type sinkWriter struct {
	h      http.Header
	status int
	body   []byte
}

func (w *sinkWriter) Header() http.Header         { return w.h }
func (w *sinkWriter) WriteHeader(status int)      { w.status = status }
func (w *sinkWriter) Write(p []byte) (int, error) { w.body = append(w.body, p...); return len(p), nil }
func (w *sinkWriter) reset()                      { w.status, w.body = 200, w.body[:0] }

// benchSim builds a simulator (no HTTP server) with one authorized account
// and returns it with the account's access token.
func benchSim(tb testing.TB, appid string, followers int) (*Simulator, string) {
	tb.Helper()
	clock := &fakeClock{t: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)}
	s, err := New(Options{ComponentAppID: testComponent, ComponentSecret: testSecret, Token: testToken, EncodingAESKey: testAESKey,
		Now: clock.Now, DailyQuota: -1, TicketInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.CreateAccount(AccountSpec{AppID: appid, Followers: followers}); err != nil {
		tb.Fatal(err)
	}
	code, err := s.Authorize(context.Background(), appid, "")
	if err != nil {
		tb.Fatal(err)
	}
	// Exchange the code in-process, as the gateway would over HTTP.
	ticket, _ := s.PushTicket(context.Background())
	h := s.Handler()
	call := func(path string, body any) map[string]any {
		js, _ := json.Marshal(body)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", path, bytesReader(js)))
		var v map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &v)
		return v
	}
	ctok, _ := call("/cgi-bin/component/api_component_token", map[string]string{"component_appid": testComponent, "component_appsecret": testSecret, "component_verify_ticket": ticket})["component_access_token"].(string)
	call("/cgi-bin/component/api_query_auth?component_access_token="+ctok, map[string]string{"component_appid": testComponent, "authorization_code": code})
	tok := s.CurrentAccessToken(appid)
	if tok == "" {
		tb.Fatal("no access token")
	}
	return s, tok
}

func bytesReader(b []byte) io.Reader { return &byteReader{b: b} }

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// servePage runs one user/get through Handler() into w.
func servePage(h http.Handler, w *sinkWriter, token, next string) {
	u := &url.URL{Path: "/cgi-bin/user/get", RawQuery: "access_token=" + url.QueryEscape(token)}
	if next != "" {
		u.RawQuery += "&next_openid=" + next
	}
	w.reset()
	h.ServeHTTP(w, &http.Request{Method: "GET", URL: u, Header: http.Header{}, Body: http.NoBody})
}

func decodePage(tb testing.TB, body []byte) page {
	tb.Helper()
	var p page
	if err := json.Unmarshal(body, &p); err != nil || p.Errcode != 0 {
		tb.Fatalf("page %.200s: %v", body, err)
	}
	return p
}

// TestTenMillionFollowers serves pages across a 10,000,000-follower account
// and checks that memory does not grow with the follower count: creating
// the account costs no per-follower memory, and a page of it allocates
// about as much as a page of a 20,000-follower account.
func TestTenMillionFollowers(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, tok := benchSim(t, "wx10mz000000000000", 10_000_000)
	small, smallTok := benchSim(t, "wx20kz000000000000", 20_000)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 2<<20 {
		t.Fatalf("a 10M-follower account grew the heap by %d bytes", grown)
	}

	h := s.Handler()
	w := &sinkWriter{h: http.Header{}}
	// First page, a page in the middle, and the end of the list.
	servePage(h, w, tok, "")
	if p := decodePage(t, w.body); *p.Total != 10_000_000 || p.Count != 10000 || p.NextOpenID != OpenID("wx10mz000000000000", 9999) {
		t.Fatalf("first page: total %d count %d", *p.Total, p.Count)
	}
	servePage(h, w, tok, OpenID("wx10mz000000000000", 4_999_999))
	if p := decodePage(t, w.body); p.Count != 10000 || p.Data.OpenID[0] != OpenID("wx10mz000000000000", 5_000_000) || p.NextOpenID != OpenID("wx10mz000000000000", 5_009_999) {
		t.Fatal("middle page")
	}
	servePage(h, w, tok, OpenID("wx10mz000000000000", 9_989_999))
	p := decodePage(t, w.body)
	if p.Count != 10000 || p.NextOpenID != OpenID("wx10mz000000000000", 9_999_999) {
		t.Fatalf("last full page: count %d next %q", p.Count, p.NextOpenID)
	}
	servePage(h, w, tok, p.NextOpenID)
	if string(w.body) != `{"total":10000000,"count":0,"next_openid":""}` {
		t.Fatalf("after the end: %s", w.body)
	}

	perPage := func(h http.Handler, tok, appid string, starts []int) float64 {
		w := &sinkWriter{h: http.Header{}}
		servePage(h, w, tok, "") // warm the pools
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for _, i := range starts {
			servePage(h, w, tok, OpenID(appid, i))
		}
		runtime.ReadMemStats(&m1)
		return float64(m1.TotalAlloc-m0.TotalAlloc) / float64(len(starts))
	}
	big := perPage(h, tok, "wx10mz000000000000", []int{0, 1_000_000, 3_333_333, 7_654_321, 9_000_000, 9_979_999, 123_456, 8_888_888})
	little := perPage(small.Handler(), smallTok, "wx20kz000000000000", []int{0, 5, 9_999, 1_000, 2_000, 3_000, 4_000, 7_000})
	t.Logf("bytes allocated per 10000-openid page: %.0f (10M followers), %.0f (20k followers)", big, little)
	if big > 1.5*little+4096 || big > 64<<10 {
		t.Fatalf("a page of the 10M account allocates %.0f bytes, the 20k one %.0f", big, little)
	}
}

// BenchmarkUserGetPage10000 measures a full 10000-openid getFans page:
// "handler" calls Handler() in-process (the simulator's own cost),
// "loopback" goes through a real HTTP server on 127.0.0.1.
func BenchmarkUserGetPage10000(b *testing.B) {
	benchUserGet(b, 30_000)
}

// BenchmarkUserGetTinyPage measures a getFans page of 3 openids.
func BenchmarkUserGetTinyPage(b *testing.B) {
	benchUserGet(b, 3)
}

func benchUserGet(b *testing.B, followers int) {
	s, tok := benchSim(b, "wxbenchz0000000000", followers)
	b.Run("handler", func(b *testing.B) {
		h := s.Handler()
		w := &sinkWriter{h: http.Header{}}
		servePage(h, w, tok, "")
		b.SetBytes(int64(len(w.body)))
		b.ReportAllocs()
		for b.Loop() {
			servePage(h, w, tok, "")
		}
	})
	b.Run("loopback", func(b *testing.B) {
		srv := httptest.NewServer(s.Handler())
		defer srv.Close()
		client := srv.Client()
		u := srv.URL + "/cgi-bin/user/get?access_token=" + url.QueryEscape(tok)
		buf := make([]byte, 512<<10)
		b.ReportAllocs()
		var n int64
		for b.Loop() {
			resp, err := client.Get(u)
			if err != nil {
				b.Fatal(err)
			}
			m, _ := io.ReadFull(resp.Body, buf)
			resp.Body.Close()
			n = int64(m)
		}
		b.SetBytes(n)
	})
}

// BenchmarkUserGet10MFollowers walks a 10,000,000-follower account page by
// page (one op = one 10000-openid page, wrapping around at the end); its
// B/op stays that of any full page.
func BenchmarkUserGet10MFollowers(b *testing.B) {
	s, tok := benchSim(b, "wx10mz000000000000", 10_000_000)
	h := s.Handler()
	w := &sinkWriter{h: http.Header{}}
	next := ""
	b.ReportAllocs()
	pages := 0
	for b.Loop() {
		servePage(h, w, tok, next)
		// The next page starts after the page's last openid: it sits just
		// before the closing `"}` of the body.
		body := w.body
		if !bytes.HasPrefix(body, []byte(`{"total":10000000,"count":`)) {
			b.Fatalf("page after %q: %.100s", next, body)
		}
		if bytes.HasSuffix(body, []byte(`:""}`)) {
			next = ""
		} else {
			next = string(body[len(body)-2-OpenIDLength : len(body)-2])
		}
		pages++
	}
	b.ReportMetric(float64(pages*PageSize)/b.Elapsed().Seconds(), "openids/s")
}
