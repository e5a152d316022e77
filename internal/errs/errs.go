// Package errs defines wxgate's one error type: a stable code slug, a
// message safe to show a client, optional details, and (for errors that
// came from WeChat) the upstream errcode and errmsg as data. The HTTP layer
// maps codes to statuses in exactly one place.
package errs

import (
	"errors"
	"fmt"
	"time"
)

// Code is a stable, documented error slug (docs/api.md, "Error codes").
type Code string

// The codes of docs/api.md, "Error codes".
const (
	InvalidArgument        Code = "invalid_argument"
	Unauthenticated        Code = "unauthenticated"
	Forbidden              Code = "forbidden"
	PermissionSetMissing   Code = "permission_set_missing"
	AuthorizerUnauthorized Code = "authorizer_unauthorized"
	NotFound               Code = "not_found"
	MethodNotAllowed       Code = "method_not_allowed"
	Conflict               Code = "conflict"
	RateLimited            Code = "rate_limited"
	UpstreamError          Code = "upstream_error"
	UpstreamUnavailable    Code = "upstream_unavailable"
	UpstreamTimeout        Code = "upstream_timeout"
	ComponentNotReady      Code = "component_not_ready"
	Internal               Code = "internal"
)

// Error is the domain error. Message must be safe for clients: it never
// carries a secret or an internal detail. Cause (optional) is for logs only.
type Error struct {
	Code    Code
	Message string
	Details map[string]any
	// WeChatErrcode and WeChatErrmsg are set when WeChat answered the error.
	WeChatErrcode int
	WeChatErrmsg  string
	// RetryAfter is set for rate_limited.
	RetryAfter time.Duration
	Cause      error
}

// Error renders code, message and cause for logs.
func (e *Error) Error() string {
	s := string(e.Code) + ": " + e.Message
	if e.WeChatErrcode != 0 {
		s += fmt.Sprintf(" (wechat errcode %d)", e.WeChatErrcode)
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// E builds an error with a code and a client-safe message.
func E(code Code, message string) *Error { return &Error{Code: code, Message: message} }

// Invalid is invalid_argument for one input field. details.fields maps the
// field to its problem, the shape every validation error has (the admin
// API's name several fields at once).
func Invalid(field, message string) *Error {
	return E(InvalidArgument, message).WithDetails(map[string]any{"fields": map[string]string{field: message}})
}

// Wrap builds an error with a code and message around a cause kept for logs.
func Wrap(code Code, message string, cause error) *Error {
	return &Error{Code: code, Message: message, Cause: cause}
}

// WithDetails returns e with details added.
func (e *Error) WithDetails(kv map[string]any) *Error {
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	for k, v := range kv {
		e.Details[k] = v
	}
	return e
}

// As returns the *Error inside err, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// CodeOf returns the code of err: its *Error's code, or Internal.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	if e := As(err); e != nil {
		return e.Code
	}
	return Internal
}

// Is reports whether err carries code.
func Is(err error, code Code) bool { return err != nil && CodeOf(err) == code }
