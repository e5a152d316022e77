// Package journey runs long sequential tests as a sequence of named steps,
// so that a failure says which step broke.
package journey

import "testing"

// Step runs fn as the subtest name of t. A journey's steps build on each
// other's state, so a failed step ends the whole journey: the steps after it
// are not run, and the report names the step that broke.
func Step(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, fn) {
		t.FailNow()
	}
}
