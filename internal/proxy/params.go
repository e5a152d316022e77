package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/wxgate/wxgate/internal/errs"
)

// Args are an API call's validated inputs, by parameter name.
type Args map[string]string

// MaxBodyBytes caps a compatible route's request body.
const MaxBodyBytes = 16 << 10

// ParamError is the cause inside every refusal of a parameter's value:
// which parameter, and what WeChat itself answers for such a value, so the
// compatible surface can answer the same. It is for the HTTP layer and the
// logs; clients see the error's message and details.fields.
type ParamError struct {
	Param         string
	WeChatErrcode int
}

// Error names the parameter.
func (e *ParamError) Error() string { return "proxy: invalid " + e.Param }

// invalid builds the error for a refused parameter: invalid_argument with
// details.fields naming it, and a ParamError cause.
func invalid(p Param, reason string) *errs.Error {
	return errs.Invalid(p.Name, p.Name+" "+reason).WithCause(&ParamError{Param: p.Name, WeChatErrcode: p.WeChatErrcode})
}

// maxPositiveInt is the largest KindPositiveInt: WeChat's ids are 32-bit.
const maxPositiveInt = 1<<31 - 1

func validate(p Param, v string) (string, error) {
	switch p.Kind {
	case KindOpenID:
		if len(v) > 64 {
			return "", invalid(p, "must be at most 64 characters")
		}
		for i := 0; i < len(v); i++ {
			c := v[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return "", invalid(p, "must be an openid (letters, digits, '_' and '-')")
			}
		}
		return v, nil
	case KindPositiveInt:
		n, err := strconv.ParseInt(v, 10, 64)
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange || err == nil && n > maxPositiveInt {
			return "", invalid(p, fmt.Sprintf("is out of range: at most %d", maxPositiveInt))
		}
		if err != nil || n < 1 {
			return "", invalid(p, "must be a positive integer")
		}
		return strconv.FormatInt(n, 10), nil
	case KindCGIPath:
		if len(v) > 128 || !strings.HasPrefix(v, "/") {
			return "", invalid(p, "must be an API path such as /cgi-bin/user/get")
		}
		for i := 0; i < len(v); i++ {
			c := v[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '/' || c == '.') {
				return "", invalid(p, "must be an API path such as /cgi-bin/user/get")
			}
		}
		return v, nil
	}
	return "", invalid(p, "is not supported")
}

// check validates every value and the required ones.
func (api *API) check(raw func(Param) (string, bool)) (Args, error) {
	args := Args{}
	for _, p := range api.Params {
		v, ok := raw(p)
		if !ok || v == "" {
			if p.Required {
				return nil, invalid(p, "is required")
			}
			continue
		}
		clean, err := validate(p, v)
		if err != nil {
			return nil, err
		}
		args[p.Name] = clean
	}
	return args, nil
}

// RESTArgs reads the inputs of a REST call: path parameters through
// pathParam, the others from the query.
func (api *API) RESTArgs(pathParam func(string) string, query url.Values) (Args, error) {
	return api.check(func(p Param) (string, bool) {
		if p.InPath {
			return pathParam(p.Name), true
		}
		vs, ok := query[p.Name]
		if !ok || len(vs) == 0 {
			return "", false
		}
		return vs[0], true
	})
}

// CompatArgs reads the inputs of a compatible call as WeChat does: the
// query for GET APIs, the JSON body for POST APIs. Unknown JSON fields are
// ignored, numbers may also be sent as strings.
func (api *API) CompatArgs(query url.Values, body []byte) (Args, error) {
	if api.Method == "GET" {
		return api.check(func(p Param) (string, bool) {
			vs, ok := query[p.Name]
			if !ok || len(vs) == 0 {
				return "", false
			}
			return vs[0], true
		})
	}
	fields, err := jsonFields(body)
	if err != nil {
		return nil, err
	}
	return api.bodyArgs(fields)
}

// CloudArgs reads the inputs of a cloud-call alias: the JSON body the
// cloud call takes plus "appid", which it returns apart.
func (api *API) CloudArgs(body []byte) (string, Args, error) {
	fields, err := jsonFields(body)
	if err != nil {
		return "", nil, err
	}
	var appid string
	if raw, ok := fields["appid"]; !ok || json.Unmarshal(raw, &appid) != nil || appid == "" {
		return "", nil, errs.Invalid("appid", "appid is required")
	}
	args, err := api.bodyArgs(fields)
	return appid, args, err
}

func jsonFields(body []byte) (map[string]json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&fields); err != nil {
			return nil, errs.E(errs.InvalidArgument, "the body is not a JSON object").
				WithDetails(map[string]any{"reason": "malformed JSON"})
		}
	}
	return fields, nil
}

// bodyArgs reads the inputs from a JSON object's fields.
func (api *API) bodyArgs(fields map[string]json.RawMessage) (Args, error) {
	return api.check(func(p Param) (string, bool) {
		raw, ok := fields[p.Name]
		if !ok || string(raw) == "null" {
			return "", false
		}
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			return s, true
		}
		return strings.TrimSpace(string(raw)), true
	})
}

// upstream builds WeChat's request for args: the query of a GET API, the
// JSON body of a POST API (numbers as numbers, the cursor always present as
// WeChat's own examples send it).
func (api *API) upstream(args Args) (url.Values, []byte) {
	if api.Method == "GET" {
		q := url.Values{}
		for _, p := range api.Params {
			if v, ok := args[p.Name]; ok {
				q.Set(p.Name, v)
			}
		}
		return q, nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for _, p := range api.Params {
		v, ok := args[p.Name]
		if !ok && p.Name != api.Cursor {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		name, _ := json.Marshal(p.Name)
		b.Write(name)
		b.WriteByte(':')
		if p.Kind == KindPositiveInt {
			b.WriteString(v)
		} else {
			s, _ := json.Marshal(v)
			b.Write(s)
		}
	}
	b.WriteByte('}')
	return nil, b.Bytes()
}
