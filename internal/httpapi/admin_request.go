package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/tenant"
)

// maxJSONBody caps /v1 and /admin request bodies.
const maxJSONBody = 64 << 10

// decodeJSONBody reads the request body of a /v1 or /admin route into dst: one JSON object, at
// most 64 KiB, valid UTF-8, no unknown fields. An empty body is {} when allowEmpty.
// Errors are invalid_argument, naming the offending field when there is one.
func decodeJSONBody(c *gin.Context, dst any, allowEmpty bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxJSONBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errs.E(errs.InvalidArgument, "request body is larger than 64 KiB")
		}
		return errs.Wrap(errs.InvalidArgument, "cannot read the request body", err)
	}
	if !utf8.Valid(body) {
		// encoding/json would silently turn the bad bytes into U+FFFD and
		// store a name the client never sent.
		return errs.E(errs.InvalidArgument, "request body is not valid UTF-8")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return errs.E(errs.InvalidArgument, "request body is required: a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errs.E(errs.InvalidArgument, "request body must be a single JSON object")
	}
	return nil
}

// jsonError turns a decoding error into invalid_argument with field details.
func jsonError(err error) error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return errs.E(errs.InvalidArgument, "request body must be a JSON object")
		}
		return fieldErrors{te.Field: "must be " + jsonKind(te.Type)}.err()
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fieldErrors{strings.Trim(name, `"`): "is not a known field"}.err()
	}
	return errs.Wrap(errs.InvalidArgument, "request body is not valid JSON", err)
}

// jsonKind names a Go type the way a JSON client thinks of it.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// fieldErrors collects field-level validation messages.
type fieldErrors map[string]string

// add records msg for field unless the field already has one.
func (f fieldErrors) add(field, msg string) {
	if _, ok := f[field]; !ok {
		f[field] = msg
	}
}

// err is invalid_argument with details.fields, or nil without problems.
func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return errs.E(errs.InvalidArgument, "request has invalid fields").
		WithDetails(map[string]any{"fields": map[string]string(f)})
}

// checkName validates a tenant or key name (already trimmed).
func checkName(f fieldErrors, field, name string, required bool) {
	if p := tenant.NameProblem(name, required); p != "" {
		f.add(field, p)
	}
}

// adminTime renders a time as RFC 3339 in UTC.
func adminTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// adminTimePtr renders an optional time; nil is JSON null.
func adminTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := adminTime(*t)
	return &s
}
