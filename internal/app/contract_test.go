package app_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/wxgate/wxgate/internal/httpapi"
)

// contract is the OpenAPI document loaded once for every test.
var contract = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		return nil, err
	}
	doc.Servers = nil // match any host: the replicas listen on random ports
	return gorillamux.NewRouter(doc)
})

// contractTransport checks every answer the end-to-end tests receive
// against the OpenAPI document (docs/openapi.json): the status must be
// documented for the route, and a JSON body must match its schema. Streams
// (exports) are checked by status and content type only, and passed on
// unbuffered. Requests to paths the document does not describe (probes of
// unknown routes, the simulator) are not checked.
type contractTransport struct {
	t    testing.TB
	next http.RoundTripper
}

func (c contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	router, lerr := contract()
	if lerr != nil {
		c.t.Errorf("OpenAPI document: %v", lerr)
		return resp, nil
	}
	route, params, ferr := router.FindRoute(req)
	if ferr != nil {
		return resp, nil // not a documented route
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	stream := mediaType != "application/json"
	var body []byte
	if !stream {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return resp, nil // the test sees the read error itself
		}
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: stream, MultiError: true},
	}
	if verr := openapi3filter.ValidateResponse(context.Background(), in); verr != nil {
		c.t.Errorf("%s %s answered %d %s, which docs/openapi.json does not allow: %v\nbody: %.300s",
			req.Method, req.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"), verr, body)
	}
	return resp, nil
}

func checkedByContract(t testing.TB, c *http.Client) *http.Client {
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = contractTransport{t: t, next: next}
	return c
}
