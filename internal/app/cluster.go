package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// replica is a `wxgate serve` child process: what the benchmark and the
// multi-replica tests run several of on one database.
type replica struct {
	cmd  *exec.Cmd
	Addr string
	done chan error

	mu   sync.Mutex
	logs []string // last log lines, for diagnostics
}

// startReplica runs exe with args and exactly env (plus PATH and HOME), and
// waits until its log says where it listens. Every log line is also copied
// to logTo when not nil.
func startReplica(ctx context.Context, exe string, args []string, env map[string]string, logTo io.Writer) (*replica, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", exe, err)
	}
	r := &replica{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if logTo != nil {
				fmt.Fprintln(logTo, line)
			}
			r.mu.Lock()
			if len(r.logs) > 200 {
				r.logs = r.logs[100:]
			}
			r.logs = append(r.logs, line)
			r.mu.Unlock()
			var m struct{ Msg, Addr string }
			if strings.Contains(line, `"msg":"listening"`) && json.Unmarshal([]byte(line), &m) == nil {
				select {
				case addr <- m.Addr:
				default:
				}
			}
		}
		r.done <- cmd.Wait()
	}()
	select {
	case r.Addr = <-addr:
		return r, nil
	case err := <-r.done:
		return nil, fmt.Errorf("%s exited before listening: %v\n%s", exe, err, r.Logs())
	case <-time.After(60 * time.Second):
		r.Kill()
		return nil, fmt.Errorf("%s did not listen within 60 s\n%s", exe, r.Logs())
	case <-ctx.Done():
		r.Kill()
		return nil, ctx.Err()
	}
}

// Logs returns the last lines the replica logged.
func (r *replica) Logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.logs, "\n")
}

// Stop sends SIGTERM and waits for a graceful exit (SIGKILL after 20 s).
func (r *replica) Stop() error {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.done:
		return err
	case <-time.After(20 * time.Second):
		r.Kill()
		return fmt.Errorf("replica %s did not stop within 20 s", r.Addr)
	}
}

// Kill ends the replica with SIGKILL, as a crash would.
func (r *replica) Kill() {
	_ = r.cmd.Process.Kill()
}

// Pid is the child process's id: the middle part of the owner it writes
// into leases ("host-pid-random").
func (r *replica) Pid() int { return r.cmd.Process.Pid }

// PeakRSS is the replica's peak resident set size in bytes (VmHWM).
func (r *replica) PeakRSS() int64 { return procStatus(r.cmd.Process.Pid, "VmHWM:") }
