# Parley — the two set-up commands are `make run` and `make test`.

GO        ?= go
DATA_DIR  ?= ./data
PKGS      := ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: run test build vet lint bench fuzz test-compose clean

## run: every role in one process on the embedded default (Kafka, history
## store); HTTP and WebSocket on :8080, data under ./data.
run:
	$(GO) run . run -data-dir $(DATA_DIR)

## test: vet and the race-enabled test suite (what CI runs).
test: vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## build: the parley binary.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o parley .

vet:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting" && exit 1)
	$(GO) vet $(PKGS)

## lint: vet and staticcheck (the version pinned here; zero findings).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint: vet
	$(GO) run $(STATICCHECK) $(PKGS)

## bench: every Go benchmark once (see BENCHMARKS.md for the figures).
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## fuzz: each fuzz target for a short while.
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./schemas/
	$(GO) test -run '^$$' -fuzz '^FuzzParseAttributes$$' -fuzztime $(FUZZTIME) ./schemas/
	$(GO) test -run '^$$' -fuzz '^FuzzKeyOrder$$' -fuzztime $(FUZZTIME) ./projections/history/pebblestore/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./projections/history/scyllastore/cqlfake/

## test-compose: the conformance suites against the docker-compose stack's
## Kafka, ScyllaDB and Elasticsearch (needs Docker).
test-compose:
	deploy/test-compose.sh

clean:
	rm -rf parley $(DATA_DIR)
