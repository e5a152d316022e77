package app_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/store/storetest"
)

// TestREADMEWalkthrough pastes the README's "Production-shaped, on one
// machine" commands into bash, as a newcomer would, and checks what they
// print. Only what must differ on a shared test machine is rewritten: the
// ports (free ones instead of 8080 and 9090), the database (a fresh schema
// instead of `createdb wxgate`), and `bin/wxgate` (this test binary running
// as wxgate instead of `make build`'s output).
func TestREADMEWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; the walkthrough needs it", tool)
		}
	}
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "<!-- walkthrough:begin -->")
	section, _, ok2 := strings.Cut(section, "<!-- walkthrough:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no walkthrough:begin/end markers")
	}
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		script.WriteString(block[1])
	}
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "wxgate")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\n"+asWxgate+"=1 exec '"+self+"' \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	seed, err := filepath.Abs("../../configs/sim-accounts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 2)
	gw, sim := addrs[0], addrs[1]
	dbURL := storetest.NewSchema(t)
	text := script.String()
	for _, r := range []struct{ old, new string }{
		{"make build", "true"},
		{"createdb -h 127.0.0.1 -U postgres wxgate", "true"},
		{"'postgres://postgres@127.0.0.1:5432/wxgate?sslmode=disable'", "'" + dbURL + "'"},
		{"bin/wxgate", wrapper},
		{"configs/sim-accounts.yaml", seed},
		{"127.0.0.1:8080", gw},
		{"127.0.0.1:9090", sim},
	} {
		if !strings.Contains(text, r.old) {
			t.Fatalf("the walkthrough no longer contains %q; update this test with it", r.old)
		}
		text = strings.ReplaceAll(text, r.old, r.new)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "-c", text)
	sh.Dir = dir
	sh.Env = append(os.Environ(), "WXGATE_LOG_LEVEL=warn")
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sh.Cancel = func() error { return syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) }
	out, err := sh.CombinedOutput()
	logs := func() string {
		g, _ := os.ReadFile(filepath.Join(dir, "gateway.log"))
		s, _ := os.ReadFile(filepath.Join(dir, "sim.log"))
		return "gateway.log:\n" + string(g) + "\nsim.log:\n" + string(s)
	}
	if err != nil {
		t.Fatalf("the walkthrough failed: %v\n%s\n%s", err, out, logs())
	}
	for _, want := range []string{
		"tenant tn_", // step 5
		"/cgi-bin/componentloginpage?component_appid=",                  // step 6: the link to open
		"callback answered 302, on to https://acme.example/wechat/done", // the merchant lands on return_url
		`"appid":"wx5eed000000000001"`,                                  // step 7: bound, with its sets
		`"permission_sets":[1,2,11]`,
		`"total":23000`, // step 8: a page, REST and compatible
		"23001\n",       // the CSV export: header + every follower
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the walkthrough's output lacks %q:\n%s\n%s", want, out, logs())
		}
	}
	if strings.Contains(string(out), `"error"`) || strings.Contains(string(out), `"errcode"`) {
		t.Errorf("the walkthrough's output has an error:\n%s", out)
	}
}

// freeAddrs are n distinct loopback addresses nothing listens on right now
// (held together while chosen, so the kernel cannot hand out one twice).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}
