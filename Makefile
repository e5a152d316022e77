# wxgate: the two commands a newcomer needs are `go run ./cmd/wxgate demo` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/wxgate/wxgate/internal/app.Version=$(VERSION)
FUZZTIME ?= 30s

.PHONY: test build vet fuzz bench docker screenshots mutation

## test: go vet + every test with the race detector (needs PostgreSQL, see README).
test: vet
	$(GO) test -race -count=1 -timeout 15m ./...

vet:
	$(GO) vet ./...

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/wxgate ./cmd/wxgate

## fuzz: run every fuzz target for FUZZTIME each (seed corpora also run in `make test`).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## mutation: plant small bugs one at a time in the packages that keep the
## invariants and report the ones no test catches (docs/testing.md). Slow
## (tens of minutes on 2 cores) and needs PostgreSQL, so not part of `test`.
MUTATION_WORKERS ?= 2
MUTATION_OUT     ?= mutation.json
mutation:
	$(GO) vet ./.ci/mutate
	$(GO) run ./.ci/mutate -workers $(MUTATION_WORKERS) -out $(MUTATION_OUT) \
	  ./internal/authorizer ./internal/proxy ./internal/wxcrypt ./internal/tenant ./internal/component
	$(GO) run ./.ci/mutate -workers $(MUTATION_WORKERS) -out export-$(MUTATION_OUT) -files '^proxy\.go$$' ./internal/httpapi

## bench: the figures of docs/performance.md.
bench:
	$(GO) run ./cmd/wxgate bench

## screenshots: the console's browser journey, saving its pages to docs/img/console/ (needs Chromium).
screenshots:
	WXGATE_SCREENSHOTS=$(CURDIR)/docs/img/console $(GO) test -count=1 -run '^TestConsoleInBrowser$$' ./internal/app/

docker:
	docker build -t wxgate:$(VERSION) .
