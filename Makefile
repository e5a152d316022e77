# wxgate: the two commands a newcomer needs are `go run ./cmd/wxgate demo` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/wxgate/wxgate/internal/app.Version=$(VERSION)
FUZZTIME ?= 30s

.PHONY: test build vet fuzz bench docker screenshots

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

## bench: the figures of docs/performance.md.
bench:
	$(GO) run ./cmd/wxgate bench

## screenshots: the console's browser journey, saving its pages to docs/img/console/ (needs Chromium).
screenshots:
	WXGATE_SCREENSHOTS=$(CURDIR)/docs/img/console $(GO) test -count=1 -run '^TestConsoleInBrowser$$' ./internal/app/

docker:
	docker build -t wxgate:$(VERSION) .
