package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/wxgate/wxgate/internal/proxy"
)

// stallRun is one stalled-exports measurement: a replica with the given
// export caps, attempts exports that never read their answer.
type stallRun struct {
	name               string
	perTenant, replica int
	attempts           int
}

// stallResult is what a stallRun measured on the replica.
type stallResult struct {
	run                 stallRun
	before, after, peak int64 // VmRSS before and after, VmHWM after (bytes)
	accepted, refused   int
	other               int
	inProgress          float64
}

// stallTenants is how many tenants share the attempts, round robin, so
// the per-replica cap is reached as well as the per-tenant one.
const stallTenants = 50

// runStalledExports measures the gateway's memory while clients start
// exports and never read them (docs/performance.md, "Stalled exports"):
// with the default caps, first as many attempts as the replica cap, then
// `attempts` (the RSS must not grow beyond the cap), then without caps for
// comparison with a tenth as many (each uncapped stalled export holds its
// memory until its deadline).
func runStalledExports(ctx context.Context, o benchOptions, attempts int, stdout io.Writer, log interface{ Info(string, ...any) }) error {
	runs := []stallRun{
		{name: "default caps, as many attempts as the replica cap", perTenant: proxy.DefaultExportsPerTenant, replica: proxy.DefaultExportsPerReplica, attempts: proxy.DefaultExportsPerReplica},
		{name: "default caps", perTenant: proxy.DefaultExportsPerTenant, replica: proxy.DefaultExportsPerReplica, attempts: attempts},
		{name: "no caps (for comparison)", perTenant: 100000, replica: 100000, attempts: max(attempts/10, 1)},
	}
	var results []stallResult
	for _, r := range runs {
		log.Info("stalled exports", "run", r.name, "attempts", r.attempts)
		res, err := stallOnce(ctx, o, r)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "stalled exports (%d followers each, %d tenants, one replica)\tattempts\tstreaming\trefused 429\tRSS before\tRSS after\tpeak RSS\n", o.exportSize, stallTenants)
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d (gauge %.0f)\t%d\t%.1f MiB\t%.1f MiB\t%.1f MiB\n", r.run.name, r.run.attempts, r.accepted, r.inProgress, r.refused,
			mib(r.before), mib(r.after), mib(r.peak))
	}
	return tw.Flush()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func stallOnce(ctx context.Context, o benchOptions, run stallRun) (stallResult, error) {
	o.replicas, o.accounts = 1, 1
	o.env = map[string]string{
		"WXGATE_EXPORT_MAX_PER_TENANT":  strconv.Itoa(run.perTenant),
		"WXGATE_EXPORT_MAX_PER_REPLICA": strconv.Itoa(run.replica),
	}
	b, err := newBench(ctx, o, slog.New(slog.DiscardHandler))
	if err != nil {
		return stallResult{}, err
	}
	defer b.close()
	if err := b.setUp(ctx); err != nil {
		return stallResult{}, err
	}
	keys := []string{b.key}
	c := b.gw(0)
	for i := 1; i < stallTenants; i++ {
		var tn struct{ ID string }
		if _, err := c.do(ctx, http.MethodPost, "/admin/tenants", b.admin, map[string]any{"name": fmt.Sprintf("stall-%d", i)}, &tn); err != nil {
			return stallResult{}, err
		}
		if _, err := c.do(ctx, http.MethodPatch, "/admin/tenants/"+tn.ID, b.admin, map[string]any{"rate_limit": 100000, "rate_burst": 100000}, nil); err != nil {
			return stallResult{}, err
		}
		if _, err := c.do(ctx, http.MethodPut, "/admin/tenants/"+tn.ID+"/authorizers/"+benchBig, b.admin, nil, nil); err != nil {
			return stallResult{}, err
		}
		var key struct{ Key string }
		if _, err := c.do(ctx, http.MethodPost, "/admin/tenants/"+tn.ID+"/keys", b.admin, map[string]any{"name": "stall"}, &key); err != nil {
			return stallResult{}, err
		}
		keys = append(keys, key.Key)
	}
	// Warm up once (a full export read to the end), then settle.
	if _, err := b.get(ctx, "http://"+b.replicas[0].Addr+"/v1/authorizers/"+benchBig+"/fans/export", b.key); err != nil {
		return stallResult{}, err
	}
	time.Sleep(2 * time.Second)
	res := stallResult{run: run, before: b.replicas[0].RSS()}

	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range run.attempts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			status, cn := stallExport(b.replicas[0].Addr, keys[i%len(keys)])
			mu.Lock()
			defer mu.Unlock()
			if cn != nil {
				conns = append(conns, cn)
			}
			switch status {
			case http.StatusOK:
				res.accepted++
			case http.StatusTooManyRequests:
				res.refused++
			default:
				res.other++
			}
		}()
	}
	wg.Wait()
	// Let the streaming exports fill their sockets and block.
	time.Sleep(3 * time.Second)
	res.after, res.peak = b.replicas[0].RSS(), b.replicas[0].PeakRSS()
	res.inProgress = b.metric(ctx, 0, "wxgate_exports_in_progress")
	if res.other > 0 {
		return res, fmt.Errorf("bench: %d stalled export attempts got neither 200 nor 429", res.other)
	}
	return res, nil
}

// stallExport starts an export on a fresh connection, reads only the status
// line and leaves the connection open without reading more: a client that
// stalled. It returns the status (0 on failure) and the connection.
func stallExport(addr, key string) (int, net.Conn) {
	cn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, nil
	}
	if tc, ok := cn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	req := "GET /v1/authorizers/" + benchBig + "/fans/export HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer " + key + "\r\n\r\n"
	if _, err := io.WriteString(cn, req); err != nil {
		cn.Close()
		return 0, nil
	}
	_ = cn.SetReadDeadline(time.Now().Add(60 * time.Second))
	line, err := bufio.NewReaderSize(cn, 16).ReadString('\n')
	if err != nil {
		cn.Close()
		return 0, nil
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, cn
	}
	status, _ := strconv.Atoi(f[1])
	return status, cn
}

// RSS is the replica's current resident set size in bytes (VmRSS).
func (r *replica) RSS() int64 { return procStatus(r.cmd.Process.Pid, "VmRSS:") }

// procStatus reads one kB figure of /proc/PID/status, in bytes (0 if unknown).
func procStatus(pid int, field string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
