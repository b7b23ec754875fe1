# wprelay — make targets. `make run` and `make test` work on a fresh Debian machine with Go.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BIN       := bin/wprelay
FUZZTIME  ?= 5s

.PHONY: run build test unit integration fuzz lint bench clean

## run: the sidecar on its embedded default (data in ./data, a wordpress source)
run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/wprelay serve --data-dir ./data

## build: a static binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/wprelay

## test: lint, unit tests, brief fuzzing, then the end-to-end suite against the real binary
test: lint unit fuzz integration

unit:
	$(GO) test -count=1 ./...

# Each fuzz target runs briefly; run them for minutes by hand with FUZZTIME=5m.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for name in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/wprelay-fuzz.log 2>&1 || { cat /tmp/wprelay-fuzz.log; exit 1; }; \
		done; \
	done

integration:
	$(GO) test -count=1 -tags integration -timeout 15m ./cmd/wprelay/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: run gofmt -w on the files above"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./cmd/wprelay/

## bench: Go benchmarks of the hot paths
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
