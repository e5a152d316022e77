// Package journey runs long sequential tests as a sequence of named steps,
// so that a failure says which step broke.
package journey

import "testing"

// Step runs fn as the subtest name of t, keeping the semantics of the flat
// test it replaces: a step that stops (t.Fatal, t.FailNow) ends the whole
// journey, since the steps after it build on its state; a step that only
// records errors (t.Error) lets the journey go on, as t.Error always did.
// A skipped step skips the rest of the journey.
func Step(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	finished, skipped := false, false
	t.Run(name, func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		fn(t)
		finished = true
	})
	switch {
	case skipped:
		t.SkipNow()
	case !finished:
		t.FailNow()
	}
}
