package app_test

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDemoBannerCommandsWork pastes every command the demo's banner offers
// into bash, as a newcomer would, with the banner's exports set: each must
// run, the refusals it announces must be refusals, and everything else must
// answer without an error (the paging line once sent the literal
// NEXT_OPENID_FROM_ABOVE and got 40003).
func TestDemoBannerCommandsWork(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed; the banner's commands need it")
	}
	t.Parallel()
	demo := startDemo(t)
	_, try, ok := strings.Cut(demo.Banner, "\nTry:\n")
	if !ok {
		t.Fatalf("the banner has no Try: section:\n%s", demo.Banner)
	}
	type command struct{ comment, line string }
	var cmds []command
	comment := ""
	for _, l := range strings.Split(try, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "# "):
			comment = l
		case strings.HasPrefix(l, "curl ") || strings.HasPrefix(l, "NEXT="):
			cmds = append(cmds, command{comment, l})
		}
	}
	if len(cmds) < 12 {
		t.Fatalf("found %d commands in the banner, want at least 12:\n%s", len(cmds), try)
	}
	// One script, so NEXT= carries over to the line that uses it, with a
	// marker after each command to split the outputs.
	var script strings.Builder
	for i, c := range cmds {
		script.WriteString(c.line + "\necho; echo \"@@cmd " + strconv.Itoa(i) + " exit $?\"\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "-c", script.String())
	key2 := regexp.MustCompile(`export KEY2='([^']+)'`).FindStringSubmatch(demo.Banner)
	if key2 == nil {
		t.Fatalf("the banner has no second platform's key:\n%s", demo.Banner)
	}
	sh.Env = append(sh.Environ(), "KEY="+demo.Key, "KEY2="+key2[1], "ADMIN="+demo.Admin, "TENANT="+demo.Tenant)
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	rest := string(out)
	for i, c := range cmds {
		marker := "@@cmd " + strconv.Itoa(i) + " exit "
		got, after, ok := strings.Cut(rest, marker)
		if !ok {
			t.Fatalf("no output marker for %q", c.line)
		}
		status, tail, _ := strings.Cut(after, "\n")
		rest = tail
		t.Run(strconv.Itoa(i)+" "+strings.TrimPrefix(c.comment, "# "), func(t *testing.T) {
			t.Logf("%s", c.line)
			if status != "0" && !strings.Contains(c.line, "| head") { // head may close the pipe early
				t.Fatalf("exit %s: %s", status, got)
			}
			refusal := strings.Contains(c.comment, "refusal")
			elsewhere := strings.Contains(c.comment, "404 not_found")
			switch {
			case strings.HasPrefix(c.line, "NEXT="):
				// output-free: checked by the line that uses $NEXT
			case elsewhere:
				if !strings.Contains(got, `"not_found"`) {
					t.Fatalf("want not_found, got %s", got)
				}
			case refusal:
				if !strings.Contains(got, "permission_set_missing") && !strings.Contains(got, `"errcode":61007`) {
					t.Fatalf("want the announced refusal, got %s", got)
				}
			case strings.Contains(got, `"error"`) || strings.Contains(got, `"errcode"`) || strings.Contains(got, "#error"):
				t.Fatalf("want an answer without an error, got %.400s", got)
			case strings.Contains(c.line, "$NEXT") && !strings.Contains(got, `"openid":["`):
				t.Fatalf("the next page has no openids: %.300s", got)
			case strings.Contains(c.line, "| wc -l"):
				if n, _ := strconv.Atoi(strings.TrimSpace(got)); n != 23000 {
					t.Fatalf("the export streamed %q lines, want 23000", strings.TrimSpace(got))
				}
			case strings.TrimSpace(got) == "":
				t.Fatal("no output")
			}
		})
	}
}
