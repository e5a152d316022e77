package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The proxies `wxgate bench` compares the gateway with, on the same
// upstream (the simulator): a bare Go reverse proxy and, when installed,
// nginx. Each runs as a child process, so the CPU time read from /proc for
// its pid is its own and none of the load generator's or the simulator's.

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports (proc(5)).
const clockTicks = 100

// procCPU is the user plus system CPU time process pid has used so far.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it start
	// at the state (field 3), so utime and stime (14, 15) are [11], [12].
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: /proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("bench: /proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// upstreamTransport is the bare proxy's transport: the keep-alive pool of
// the gateway's own WeChat client (wechat.NewHTTPClient), so both hold as
// many idle connections to the simulator and neither pays for new ones.
func upstreamTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment, MaxIdleConns: 512, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second,
	}
}

// serveBareProxy runs the comparison proxy: httputil.ReverseProxy to
// upstream on a loopback port, with no authentication, logs or metrics. It
// logs its address as `wxgate serve` does, so startReplica can run it.
func serveBareProxy(ctx context.Context, upstream string, stderr *slog.Logger) error {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: --bare-proxy needs an absolute upstream URL", ErrUsage)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = upstreamTransport()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	stderr.Info("listening", "addr", ln.Addr().String())
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// nginx is an nginx child process proxying to the simulator with a
// keep-alive upstream pool, in one process (master_process off) so its CPU
// is one pid's.
type nginx struct {
	cmd  *exec.Cmd
	dir  string
	Addr string
}

// nginxBinary finds nginx on PATH or in /usr/sbin (where Debian installs it).
func nginxBinary() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return ""
}

const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
	access_log %[1]s/access.log combined buffer=64k flush=1s;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream simulator { server %[2]s; keepalive 256; }
	server {
		listen %[3]s;
		location / {
			proxy_pass http://simulator;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`

// startNginx runs nginx in front of upstream (host:port), with an access
// log buffered as the gateway's is. It answers (nil, nil) when nginx is not
// installed.
func startNginx(ctx context.Context, upstream string) (*nginx, error) {
	bin := nginxBinary()
	if bin == "" {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "wxgate-bench-nginx-")
	if err != nil {
		return nil, err
	}
	// A free port: nginx takes it a moment after this listener lets go.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, upstream, addr), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	n := &nginx{dir: dir, Addr: addr}
	n.cmd = exec.Command(bin, "-p", dir, "-c", conf, "-e", "stderr")
	var stderr strings.Builder
	n.cmd.Stderr = &stderr
	if err := n.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: start nginx: %w", err)
	}
	err = waitFor(ctx, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		n.Stop()
		return nil, fmt.Errorf("bench: nginx did not listen on %s: %w\n%s", addr, err, stderr.String())
	}
	return n, nil
}

// Version is nginx's version ("1.22.1"), or "" if it does not say.
func (n *nginx) Version() string {
	out, _ := exec.Command(n.cmd.Path, "-v").CombinedOutput()
	_, v, _ := strings.Cut(strings.TrimSpace(string(out)), "nginx/")
	return v
}

// Pid is the nginx process (its only process: master_process off).
func (n *nginx) Pid() int { return n.cmd.Process.Pid }

// Stop ends nginx and removes its directory.
func (n *nginx) Stop() {
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	os.RemoveAll(n.dir)
}

// cpuTarget is one process the CPU comparison loads.
type cpuTarget struct {
	name string
	pid  int
	url  func() string // what each request GETs
	auth string        // bearer key ("" for none)
}

// cpuRounds is how many turns the proxies take in the CPU comparison.
const cpuRounds = 4

// cpuResult is the CPU a target's process used for a fixed number of requests.
type cpuResult struct {
	name      string
	cpu       time.Duration // used while serving load.n requests, idle work subtracted
	idle      time.Duration // the idle work subtracted
	load      loadResult
	installed bool
	// paced is the latency at the moderate rate; direct marks the calls
	// straight to the upstream, which the proxies' are compared with.
	paced  loadResult
	direct bool
}

// perReq is the CPU per request.
func (r cpuResult) perReq() time.Duration { return r.cpu / time.Duration(max(r.load.n, 1)) }

// merge adds another round of the same target.
func (r cpuResult) merge(o cpuResult) cpuResult {
	return cpuResult{name: o.name, cpu: r.cpu + o.cpu, idle: r.idle + o.idle, installed: o.installed, load: r.load.merge(o.load), paced: r.paced}
}

// merge adds another run's latencies to l.
func (l loadResult) merge(o loadResult) loadResult {
	lat := append(slices.Clone(l.lat), o.lat...)
	slices.Sort(lat)
	return loadResult{n: l.n + o.n, failed: l.failed + o.failed, elapsed: l.elapsed + o.elapsed, lat: lat}
}

// measureCPU sends n requests at concurrency c to t and reads the CPU its
// process used meanwhile. The process's idle CPU (the gateway's background
// workers: pollers, the token refresher) is read over a quiet second first
// and subtracted at that rate, so that each proxy is charged for proxying
// only; the note under the table gives the amount.
func (b *bench) measureCPU(ctx context.Context, t cpuTarget, n, c int) (cpuResult, error) {
	do := func(ctx context.Context) error {
		_, err := b.get(ctx, t.url(), t.auth)
		return err
	}
	loadN(ctx, c, min(n/10, 2000), do) // warm the connection pools
	i0, err := procCPU(t.pid)
	if err != nil {
		return cpuResult{}, err
	}
	const quiet = time.Second
	select {
	case <-time.After(quiet):
	case <-ctx.Done():
		return cpuResult{}, ctx.Err()
	}
	c0, err := procCPU(t.pid)
	if err != nil {
		return cpuResult{}, err
	}
	res := loadN(ctx, c, n, do)
	c1, err := procCPU(t.pid)
	if err != nil {
		return cpuResult{}, err
	}
	if res.failed > 0 {
		return cpuResult{}, fmt.Errorf("bench: %s: %d of %d requests failed", t.name, res.failed, n)
	}
	idle := time.Duration(float64(c0-i0) * res.elapsed.Seconds() / quiet.Seconds())
	return cpuResult{name: t.name, cpu: c1 - c0 - idle, idle: idle, load: res, installed: true}, nil
}
