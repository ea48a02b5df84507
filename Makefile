# Vulcan Backup. `make run` runs everything on a laptop; `make test` runs the suite.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test test-unit test-e2e lint bench clean tools

# Linters and the S3 server of the off-site tests (versitygw), built from the
# Go module proxy at pinned versions into .tools/ (outside go.mod) where
# missing.
TOOLS       := $(CURDIR)/.tools
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOSEC       := github.com/securego/gosec/v2/cmd/gosec@v2.30.0
VERSITYGW   := github.com/versity/versitygw/cmd/versitygw@v1.8.0

all: build

## build: bin/worker and bin/starter
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/worker ./worker
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/starter ./starter

## run: embedded Temporal (SQLite in .vulcan/) + Web UI on :8233 + worker + nightly schedule
run: build
	mkdir -p storage backups
	./bin/worker --dev

## test: gofmt, go vet, unit tests with -race, then the integration and end-to-end
## suites against a real PostgreSQL (started here) and the embedded Temporal server
test: build tools
	scripts/test.sh

## tools: the linters make test runs and the S3 server its off-site tests start
tools: $(TOOLS)/staticcheck $(TOOLS)/gosec $(TOOLS)/versitygw

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install $(STATICCHECK)

$(TOOLS)/gosec:
	GOBIN=$(TOOLS) $(GO) install $(GOSEC)

$(TOOLS)/versitygw:
	GOBIN=$(TOOLS) $(GO) install $(VERSITYGW)

## bench: ours against tar -czf + pg_dump and tar -xzf + psql on the reference data, then Go benchmarks
bench:
	scripts/bench.sh

## lint: gofmt, go vet, staticcheck and gosec
lint: tools
	scripts/test.sh lint

clean:
	rm -rf bin
