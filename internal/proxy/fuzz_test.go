package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"testing"

	"github.com/wxgate/wxgate/internal/errs"
)

// validOpenID is what an accepted openid may be (docs/api.md, "Proxied account APIs";
// apis.go: KindOpenID). It is the independent oracle of the fuzz target, not
// the validator's own code.
var validOpenID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// FuzzCompatArgs feeds hostile queries, bodies and path values to every API
// of the table through CompatArgs (the /wx routes) and RESTArgs (the /v1
// routes). Neither may panic; whatever they accept must be valid (declared
// parameters only, openids of [A-Za-z0-9_-]{1,64}, integers in 1..2^31-1 in
// canonical form, required ones present) and must re-encode into WeChat's
// request (a query, or a JSON object that parses back to the same values);
// whatever they refuse must be invalid_argument, and a refused value must
// name its parameter with the WeChat errcode the compatible surface answers. A well-formed openid in the query is never
// refused. Seeds: testdata/fuzz/FuzzCompatArgs (run by plain `go test`).
func FuzzCompatArgs(f *testing.F) {
	f.Add("next_openid=oABCDE_x-1", []byte(`{"tagid":134,"next_openid":"oABCDE_x-1"}`), "134")
	f.Fuzz(func(t *testing.T, rawQuery string, body []byte, pathValue string) {
		query, _ := url.ParseQuery(rawQuery) // a partly bad query still yields the good pairs, as net/http does
		for _, api := range APIs {
			args, err := api.CompatArgs(query, body)
			checkOutcome(t, api, "CompatArgs", args, err)
			checkParamRefusal(t, api, err)
			if api.Method == "GET" {
				for _, p := range api.Params {
					if p.Kind != KindOpenID {
						continue
					}
					if vs := query[p.Name]; len(vs) > 0 && validOpenID.MatchString(vs[0]) && (err != nil || args[p.Name] != vs[0]) {
						t.Fatalf("%s: valid %s %q refused or altered: %v %q", api.Name, p.Name, vs[0], err, args[p.Name])
					}
				}
			}

			rest, err := api.RESTArgs(func(string) string { return pathValue }, query)
			checkOutcome(t, api, "RESTArgs", rest, err)
		}
	})
}

// checkParamRefusal asserts that a refusal naming a field (details.fields)
// carries a ParamError for that declared parameter with its WeChat errcode;
// one naming no field (a body that is not JSON) carries none.
func checkParamRefusal(t *testing.T, api *API, err error) {
	t.Helper()
	e := errs.As(err)
	if e == nil {
		return
	}
	fields, _ := e.Details["fields"].(map[string]string)
	var pe *ParamError
	if !errors.As(err, &pe) {
		if len(fields) != 0 {
			t.Fatalf("%s: refusal of %v carries no ParamError: %v", api.Name, fields, err)
		}
		return
	}
	if _, ok := fields[pe.Param]; !ok || len(fields) != 1 {
		t.Fatalf("%s: ParamError names %q, details.fields %v", api.Name, pe.Param, fields)
	}
	for _, p := range api.Params {
		if p.Name == pe.Param {
			if pe.WeChatErrcode == 0 || pe.WeChatErrcode != p.WeChatErrcode {
				t.Fatalf("%s: refusal of %s carries errcode %d, want the declared %d", api.Name, p.Name, pe.WeChatErrcode, p.WeChatErrcode)
			}
			return
		}
	}
	t.Fatalf("%s: refusal names undeclared parameter %q", api.Name, pe.Param)
}

// checkOutcome asserts that accepted args are valid and re-encode, and that
// a refusal is a clean invalid_argument.
func checkOutcome(t *testing.T, api *API, fn string, args Args, err error) {
	t.Helper()
	if err != nil {
		if e := errs.As(err); e == nil || e.Code != errs.InvalidArgument {
			t.Fatalf("%s %s: refusal is not invalid_argument: %#v", api.Name, fn, err)
		}
		if args != nil {
			t.Fatalf("%s %s: args %v returned with an error", api.Name, fn, args)
		}
		return
	}
	declared := map[string]Param{}
	for _, p := range api.Params {
		declared[p.Name] = p
		if _, ok := args[p.Name]; p.Required && !ok {
			t.Fatalf("%s %s: required %s missing from accepted args %v", api.Name, fn, p.Name, args)
		}
	}
	for name, v := range args {
		p, ok := declared[name]
		if !ok {
			t.Fatalf("%s %s: undeclared parameter %q accepted", api.Name, fn, name)
		}
		switch p.Kind {
		case KindOpenID:
			if !validOpenID.MatchString(v) {
				t.Fatalf("%s %s: %s %q accepted", api.Name, fn, name, v)
			}
		case KindPositiveInt:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || n > 1<<31-1 || strconv.FormatInt(n, 10) != v {
				t.Fatalf("%s %s: %s %q accepted", api.Name, fn, name, v)
			}
		default:
			t.Fatalf("%s %s: parameter %s of unknown kind %d", api.Name, fn, name, p.Kind)
		}
	}

	q, b := api.upstream(args)
	if api.Method == "GET" {
		if b != nil {
			t.Fatalf("%s: a GET API built a body %q", api.Name, b)
		}
		if len(q) != len(args) {
			t.Fatalf("%s: upstream query %v does not carry exactly %v", api.Name, q, args)
		}
		for name, v := range args {
			if q.Get(name) != v {
				t.Fatalf("%s: upstream %s = %q, want %q", api.Name, name, q.Get(name), v)
			}
		}
		// The query must survive the wire.
		back, err := url.ParseQuery(q.Encode())
		if err != nil || len(back) != len(q) {
			t.Fatalf("%s: upstream query %q does not parse back: %v", api.Name, q.Encode(), err)
		}
		return
	}
	if q != nil {
		t.Fatalf("%s: a POST API built a query %v", api.Name, q)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || dec.More() {
		t.Fatalf("%s: upstream body %q is not one JSON object: %v", api.Name, b, err)
	}
	for name, v := range obj {
		p, ok := declared[name]
		if !ok {
			t.Fatalf("%s: upstream body has undeclared %q", api.Name, name)
		}
		switch p.Kind {
		case KindPositiveInt:
			n, ok := v.(json.Number)
			if !ok || n.String() != args[name] {
				t.Fatalf("%s: upstream %s = %#v, want the number %s", api.Name, name, v, args[name])
			}
		case KindOpenID:
			s, ok := v.(string)
			if !ok || s != args[name] {
				t.Fatalf("%s: upstream %s = %#v, want the string %q", api.Name, name, v, args[name])
			}
		}
	}
	for name := range args {
		if _, ok := obj[name]; !ok {
			t.Fatalf("%s: upstream body %s lost %s", api.Name, b, name)
		}
	}
	if api.Cursor != "" {
		if _, ok := obj[api.Cursor]; !ok {
			t.Fatalf("%s: upstream body %s has no cursor %s", api.Name, b, api.Cursor)
		}
	}
}
