package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wxgate/wxgate/internal/sim"
)

// simHost runs the simulator on a loopback listener for the benchmark and
// the multi-process tests. Its pushes go to /relay/… on its own listener and
// on to the gateway named with Relay, whose address is only known once that
// gateway listens.
type simHost struct {
	Sim *sim.Simulator
	// URL is the simulator's base URL ("http://127.0.0.1:port").
	URL    string
	srv    *http.Server
	gw     atomic.Pointer[url.URL]
	cancel context.CancelFunc
}

// startSimHost starts a simulator with o (its EventURL is set to the relay)
// and its periodic work.
func startSimHost(o sim.Options) (*simHost, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sim host: %w", err)
	}
	h := &simHost{URL: "http://" + ln.Addr().String()}
	o.EventURL = h.URL + "/relay/wechat/events"
	o.MessageURL = h.URL + "/relay/wechat/accounts/$APPID$/callback"
	if h.Sim, err = sim.New(o); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", h.Sim.Handler())
	mux.HandleFunc("/relay/", func(w http.ResponseWriter, r *http.Request) {
		u := h.gw.Load()
		if u == nil {
			http.Error(w, "no gateway yet", http.StatusServiceUnavailable)
			return
		}
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/relay")
		httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
	})
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = h.srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { _ = h.Sim.Run(ctx) }()
	return h, nil
}

// Relay sends the simulator's pushes to the gateway listening on addr.
func (h *simHost) Relay(addr string) {
	h.gw.Store(&url.URL{Scheme: "http", Host: addr})
}

// Addr is the simulator's host:port.
func (h *simHost) Addr() string { return strings.TrimPrefix(h.URL, "http://") }

// Close stops the simulator and its listener.
func (h *simHost) Close() {
	h.cancel()
	_ = h.srv.Close()
}
