# Parley — the two set-up commands are `make run` and `make test`.

GO        ?= go
DATA_DIR  ?= ./data
PKGS      := ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN       ?= ./parley

.PHONY: run test test-short build vet lint bench fuzz fuzz-targets test-compose screenshots web-vendor node-deps clean

## run: builds ./parley, then runs every role in one process on the embedded
## default (Kafka, history store, search index): HTTP and WebSocket on
## 127.0.0.1:8080, data under ./data. Ctrl-C or SIGTERM stops it: make
## execs the server, so the signal reaches it.
run: build
	exec $(BIN) run -data-dir $(DATA_DIR)

## test: vet and the race-enabled test suite (what CI runs), after the
## Node packages the end-to-end encryption tests need.
test: vet node-deps
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## test-short: the quick development loop: `go test -short` over the
## module, without vet and without the race detector, and with Go's test
## cache (unchanged packages are not run again). The slowest system tests
## (internal/systemtest: the README walkthrough, the permission matrix,
## kill -9 and node-kill, several nodes, idle readers, ...) and the load
## generator's smoke test skip themselves under -short, saying why.
## Measured on a 2-core machine, test binaries already built, cache off:
## about 2 min and 27 s of CPU, against 2.5 min and 77 s of CPU with
## -race -short; most of the time is tests waiting, not computing. Run
## `make test` (every test, race detector on) before you push.
test-short:
	$(GO) test -short $(PKGS)

## build: the parley binary ($(BIN)), stamped with the version. The same
## compile flags as `go test`, so the two share the build cache.
build:
	@echo "building $(BIN): the first build on a fresh machine compiles every dependency and takes a minute or two"
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) .

## node-deps: the Node packages of the MLS test client and of the web
## client's vendored MLS library (ts-mls and its peers), exactly as their
## package-lock.json locks them; npm ci runs again only when a lock file
## changes. Needs Node 20 or later and npm.
NODE_DIRS := internal/systemtest/mlsclient web/mlsvendor
node-deps: $(NODE_DIRS:%=%/node_modules/.package-lock.json)

%/node_modules/.package-lock.json: %/package-lock.json
	cd $* && npm ci --no-audit --no-fund

## web-vendor: the web client's MLS library (ts-mls and what it imports,
## as locked in web/mlsvendor/package-lock.json) copied as browser ES
## modules into web/static/vendor, imports made relative; commit the
## result. TestVendoredMLSIsFresh checks it is what this makes.
web-vendor:
	cd web/mlsvendor && npm ci --no-audit --no-fund && node vendor.mjs ../static/vendor

## screenshots: the web client's main screens, taken by its browser tests
## in Chromium, under docs/screenshots/ (shown in the README).
screenshots:
	mkdir -p docs/screenshots
	PARLEY_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestBrowser' ./web/

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

## fuzz: every fuzz target for FUZZTIME each, one after the other (CI:
## FUZZTIME=10s). The targets come from the source (fuzz-targets), so a
## new one is never left out. A failing input fails the run and is
## written to the package's testdata/fuzz/FuzzX/; commit it with the fix,
## and every `go test` replays it from then on. Go 1.26's fuzzer can end
## a run with "context deadline exceeded" and no input when a worker is
## starved at the end of -fuzztime (go.dev/issue/75804, fixed in Go
## 1.27): a target that fails so, writing nothing, runs once more.
FUZZTIME ?= 20s
fuzz:
	@log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	$(FUZZ_LIST) | while read -r pkg name; do \
		for attempt in 1 2; do \
			echo "$(GO) test -run '^$$' -fuzz '^$$name\$$' -fuzztime $(FUZZTIME) $$pkg"; \
			inputs=$$(ls "$${pkg}testdata/fuzz/$$name" 2>/dev/null | wc -l); \
			{ $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg" 2>&1; echo "go test: exit status $$?"; } | tee "$$log"; \
			tail -n 1 "$$log" | grep -q '^go test: exit status 0$$' && break; \
			if [ $$attempt = 1 ] && grep -q '^    context deadline exceeded$$' "$$log" && \
				[ "$$(ls "$${pkg}testdata/fuzz/$$name" 2>/dev/null | wc -l)" = "$$inputs" ]; then \
				echo "$$name: context deadline exceeded without a failing input (go.dev/issue/75804): once more"; \
				continue; \
			fi; \
			exit 1; \
		done; \
	done

## fuzz-targets: every fuzz target as "package target", one a line: each
## `func FuzzX(` at the start of a line of a _test.go file. TestMakeFuzz
## checks the list against the Go parser's.
fuzz-targets:
	@$(FUZZ_LIST)

FUZZ_LIST = grep -rl --include='*_test.go' --exclude-dir=testdata --exclude-dir=data '^func Fuzz' . | sort | \
	while read -r f; do \
		sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f" | while read -r name; do echo "$$(dirname "$$f")/ $$name"; done; \
	done

## test-compose: the test suite against the Kafka, ScyllaDB and
## Elasticsearch of the compose stack that is already running (start it
## first: deploy/README.md); it starts and stops nothing, and fails with a
## message when the stack does not answer.
test-compose:
	deploy/test-compose.sh

clean:
	rm -rf parley $(DATA_DIR)
