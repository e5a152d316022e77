// Package errs defines wxgate's one error type: a stable code slug, a
// message safe to show a client, optional details, and (for errors that
// came from WeChat) the upstream errcode and errmsg as data. The HTTP layer
// maps codes to statuses in exactly one place.
package errs

import (
	"errors"
	"fmt"
	"maps"
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
	StoreUnavailable       Code = "store_unavailable"
	Internal               Code = "internal"
)

// Error is the domain error. Message must be safe for clients: it never
// carries a secret or an internal detail. Cause (optional) is for logs only.
//
// An Error is a value: once built it never changes, so one can be shared
// (package-level errors such as component.ErrNoTicket are). Code that was
// handed an Error derives a changed copy with the With… methods and never
// assigns to its fields.
type Error struct {
	Code    Code
	Message string
	Details map[string]any
	// WeChatErrcode and WeChatErrmsg are set when WeChat answered the error.
	WeChatErrcode int
	WeChatErrmsg  string
	// RetryAfter is set for rate_limited and store_unavailable.
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

// WithDetails returns a copy of e with details added (a new map; the values
// themselves are shared). e is unchanged.
func (e *Error) WithDetails(kv map[string]any) *Error {
	c := *e
	c.Details = make(map[string]any, len(e.Details)+len(kv))
	maps.Copy(c.Details, e.Details)
	maps.Copy(c.Details, kv)
	return &c
}

// WithWeChat returns a copy of e carrying the errcode and errmsg WeChat
// answered. e is unchanged.
func (e *Error) WithWeChat(errcode int, errmsg string) *Error {
	c := *e
	c.WeChatErrcode, c.WeChatErrmsg = errcode, errmsg
	return &c
}

// WithCause returns a copy of e around cause, kept for logs and for
// errors.As (a typed cause can tell the HTTP layer what went wrong). e is
// unchanged.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

// WithRetryAfter returns a copy of e telling the client when to retry (for
// rate_limited). e is unchanged.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	c := *e
	c.RetryAfter = d
	return &c
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
