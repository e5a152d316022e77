package journey_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/wxgate/wxgate/internal/journey"
)

// TestJourneyDemo is the journey TestStepSemantics runs in a child process:
// it fails on purpose, so it only runs there.
func TestJourneyDemo(t *testing.T) {
	if os.Getenv("JOURNEY_DEMO") == "" {
		t.Skip("run by TestStepSemantics in a child process")
	}
	journey.Step(t, "records an error", func(t *testing.T) { t.Error("soft") })
	journey.Step(t, "stops", func(t *testing.T) { t.Fatal("hard"); t.Log("after Fatal") })
	journey.Step(t, "never runs", func(t *testing.T) { t.Log("reached") })
}

// TestStepSemantics checks that a journey keeps the semantics of the flat
// test it replaces: t.Error lets the next step run, t.Fatal ends the journey,
// and each failure is reported under its step's name.
func TestStepSemantics(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestJourneyDemo$", "-test.v")
	cmd.Env = append(os.Environ(), "JOURNEY_DEMO=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the demo journey: got success, want failure:\n%s", out)
	}
	for _, want := range []string{
		"--- FAIL: TestJourneyDemo/records_an_error",
		"--- FAIL: TestJourneyDemo/stops",
		"--- FAIL: TestJourneyDemo ",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output: got\n%s\nwant a line %q", out, want)
		}
	}
	for _, unwanted := range []string{"TestJourneyDemo/never_runs", "after Fatal", "reached"} {
		if strings.Contains(string(out), unwanted) {
			t.Errorf("output: got %q in\n%s\nwant the journey to stop at the step that called Fatal", unwanted, out)
		}
	}
}
