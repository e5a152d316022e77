package httpapi_test

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/httpapi"
	"github.com/wxgate/wxgate/internal/obs"
	"github.com/wxgate/wxgate/internal/proxy"
)

var update = flag.Bool("update", false, "rewrite docs/openapi.json from the code")

func TestOpenAPIFileIsCurrent(t *testing.T) {
	const path = "../../docs/openapi.json"
	doc := httpapi.OpenAPI()
	if *update {
		if err := os.WriteFile(path, doc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(file) != string(doc) {
		t.Fatal("docs/openapi.json is stale: run `go test ./internal/httpapi -run TestOpenAPIFileIsCurrent -update`")
	}
}

// TestOpenAPIDocumentIsValid loads the document with kin-openapi and
// validates it against the OpenAPI 3 specification, examples included.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("the OpenAPI document is invalid: %v", err)
	}
	// Every field of every schema is described.
	var undescribed func(name string, s *openapi3.SchemaRef)
	seen := map[*openapi3.Schema]bool{}
	undescribed = func(name string, s *openapi3.SchemaRef) {
		if s == nil || s.Value == nil || seen[s.Value] {
			return
		}
		seen[s.Value] = true
		for prop, ps := range s.Value.Properties {
			if ps.Value != nil && ps.Value.Description == "" && ps.Ref == "" {
				t.Errorf("schema %s: field %q has no description (internal/httpapi/openapi_fields.go)", name, prop)
			}
			if ps.Value != nil && ps.Value.Example == nil && ps.Ref == "" && len(ps.Value.Properties) == 0 {
				t.Errorf("schema %s: field %q has no example (internal/httpapi/openapi_fields.go)", name, prop)
			}
			undescribed(name+"."+prop, ps)
		}
		undescribed(name, s.Value.Items)
	}
	for name, s := range doc.Components.Schemas {
		undescribed(name, s)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Summary == "" || op.OperationID == "" {
				t.Errorf("%s %s has no summary or operationId", method, path)
			}
			for status, resp := range op.Responses.Map() {
				if status[0] == '2' && status != "204" && (resp.Value == nil || len(resp.Value.Content) == 0) && status != "302" {
					t.Errorf("%s %s: %s has no schema", method, path, status)
				}
			}
			if method != "GET" && method != "DELETE" && op.RequestBody == nil && !strings.HasPrefix(path, "/wechat/") &&
				!strings.HasSuffix(path, "/refresh") && !strings.Contains(path, "/authorizers/{appid}") &&
				!strings.HasPrefix(path, "/v1/webhook/") { // rotate-secret, test and redeliver are actions without a body

				t.Errorf("%s %s has no request body schema", method, path)
			}
		}
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	h := httpapi.NewServer(httpapi.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: obs.NewMetrics()})
	var routes []string
	for _, r := range h.(*gin.Engine).Routes() {
		if !strings.HasPrefix(r.Path, "/console") {
			parts := strings.Split(r.Path, "/")
			for i, s := range parts {
				if strings.HasPrefix(s, ":") {
					parts[i] = "{" + s[1:] + "}"
				}
			}
			routes = append(routes, r.Method+" "+strings.Join(parts, "/"))
		}
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	sort.Strings(routes)
	sort.Strings(documented)
	if strings.Join(routes, "\n") != strings.Join(documented, "\n") {
		t.Fatalf("routes.go and the OpenAPI document differ\nroutes:\n%s\n\ndocumented:\n%s", strings.Join(routes, "\n"), strings.Join(documented, "\n"))
	}
	// Every proxied API of the table has its compatible route, its REST
	// route if it names one, and an export route if it pages.
	have := map[string]bool{}
	for _, r := range routes {
		have[r] = true
	}
	for _, api := range proxy.APIs {
		wants := []string{api.Method + " /wx/{appid}" + api.Path}
		if api.RESTPath != "" {
			rest := "GET /v1" + strings.NewReplacer(":appid", "{appid}", ":tagid", "{tagid}").Replace(api.RESTPath)
			wants = append(wants, rest)
			if api.Cursor != "" {
				wants = append(wants, rest+"/export")
			}
		}
		for _, want := range wants {
			if !have[want] {
				t.Errorf("API %s has no route %q", api.Name, want)
			}
		}
	}
}
