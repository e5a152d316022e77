package errs_test

import (
	"errors"
	"io"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
)

// TestDerivingLeavesTheOriginal: every With… method returns a new error
// with the change and leaves its receiver exactly as it was, details
// included.
func TestDerivingLeavesTheOriginal(t *testing.T) {
	tests := []struct {
		name   string
		derive func(*errs.Error) *errs.Error
		want   func(t *testing.T, got *errs.Error)
	}{
		{"WithDetails adds a key", func(e *errs.Error) *errs.Error { return e.WithDetails(map[string]any{"b": 2}) },
			func(t *testing.T, got *errs.Error) {
				if !maps.Equal(got.Details, map[string]any{"a": 1, "b": 2}) {
					t.Fatalf("derived details = %v, want a=1 b=2", got.Details)
				}
			}},
		{"WithDetails replaces a key", func(e *errs.Error) *errs.Error { return e.WithDetails(map[string]any{"a": 3}) },
			func(t *testing.T, got *errs.Error) {
				if !maps.Equal(got.Details, map[string]any{"a": 3}) {
					t.Fatalf("derived details = %v, want a=3", got.Details)
				}
			}},
		{"WithWeChat", func(e *errs.Error) *errs.Error { return e.WithWeChat(45011, "api minute-quota reach limit") },
			func(t *testing.T, got *errs.Error) {
				if got.WeChatErrcode != 45011 || got.WeChatErrmsg != "api minute-quota reach limit" {
					t.Fatalf("derived WeChat answer = %d %q, want 45011", got.WeChatErrcode, got.WeChatErrmsg)
				}
			}},
		{"WithCause", func(e *errs.Error) *errs.Error { return e.WithCause(io.ErrUnexpectedEOF) },
			func(t *testing.T, got *errs.Error) {
				if got.Cause != io.ErrUnexpectedEOF {
					t.Fatalf("derived cause = %v, want io.ErrUnexpectedEOF", got.Cause)
				}
			}},
		{"WithRetryAfter", func(e *errs.Error) *errs.Error { return e.WithRetryAfter(time.Minute) },
			func(t *testing.T, got *errs.Error) {
				if got.RetryAfter != time.Minute {
					t.Fatalf("derived RetryAfter = %s, want 1m", got.RetryAfter)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := errs.Wrap(errs.RateLimited, "slow down", io.EOF).WithDetails(map[string]any{"a": 1})
			before, details := *orig, maps.Clone(orig.Details)
			got := tc.derive(orig)
			if got == orig {
				t.Fatal("the derived error is its receiver")
			}
			if got.Code != errs.RateLimited || got.Message != "slow down" || tc.name != "WithCause" && !errors.Is(got, io.EOF) {
				t.Fatalf("derived %v lost the code, message or cause", got)
			}
			tc.want(t, got)
			if !maps.Equal(orig.Details, details) || orig.WeChatErrcode != before.WeChatErrcode || orig.WeChatErrmsg != before.WeChatErrmsg ||
				orig.RetryAfter != before.RetryAfter || orig.Code != before.Code || orig.Message != before.Message || orig.Cause != before.Cause {
				t.Fatalf("deriving changed the original: got %+v (details %v), want %+v (details %v)", *orig, orig.Details, before, details)
			}
		})
	}
}

// errShared stands for the package-level errors several requests answer at
// once (component.ErrNoTicket, component.ErrBadSession).
var errShared = errs.E(errs.ComponentNotReady, "no ticket yet")

// TestSharedErrorsCanBeDerivedConcurrently: requests deriving from one
// shared error at the same time neither see each other's details nor race
// (run with -race).
func TestSharedErrorsCanBeDerivedConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				got := errShared.WithDetails(map[string]any{"request": i})
				if len(got.Details) != 1 || got.Details["request"] != i {
					t.Errorf("request %d derived details %v", i, got.Details)
					return
				}
			}
		})
	}
	wg.Wait()
	if errShared.Details != nil {
		t.Fatalf("the shared error gained details %v", errShared.Details)
	}
}
