# Developer commands. `make test` is the whole test suite (CI runs it).
GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.buildVersion=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build run test test-quick e2e cover lint fmt bench tidy clean

all: lint test build

## build: the static hermes binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/hermes ./cmd/hermes

## run: Hermes on its embedded defaults (SQLite in ./data, port 3000)
run:
	$(GO) run ./cmd/hermes serve

## test: every test, with the race detector, with the services some tests
## need (mailpit; installed pinned on first use) started and stopped around it
test:
	bash -c '. .ci/services.sh && HERMES_TEST_REQUIRE_EMULATORS=1 $(GO) test -race -count=1 ./...'

## test-quick: the tests without starting services (those needing one skip)
test-quick:
	$(GO) test -race -count=1 ./...

## e2e: the end-to-end tests only (the real serve command, the built binary)
e2e:
	bash -c '. .ci/services.sh && HERMES_TEST_REQUIRE_EMULATORS=1 $(GO) test -race -count=1 -run "EndToEnd|Binary" -v ./cmd/...'

## cover: tests with a coverage report (coverage.out, coverage.html)
cover:
	$(GO) test -race -count=1 -covermode=atomic -coverpkg=./... -coverprofile=coverage.out ./...
	$(GO) tool cover -func=coverage.out | tail -n 1
	$(GO) tool cover -html=coverage.out -o coverage.html

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## fmt: format the code
fmt:
	gofmt -w $$(git ls-files '*.go')

## bench: benchmarks and the load driver; writes docs/BENCHMARKS.md
bench:
	$(GO) run ./cmd/hermesbench -out docs/BENCHMARKS.md

tidy:
	$(GO) mod tidy

clean:
	rm -rf bin coverage.out coverage.html
