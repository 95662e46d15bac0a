# Targets match README.md. bench needs root (it multicasts to a connector
# group and subscribes to process events) and takes about five minutes.

GO ?= go
BENCH_OUT ?= bench-results/cnbench.json

.PHONY: build test bench bench-go bench-harness bench-coverage package

# build stamps the version and commit (cnbridged --version, cnbridged_build_info).
GIT_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GIT_COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
build:
	$(GO) build -ldflags "-X main.version=$(GIT_VERSION) -X main.commit=$(GIT_COMMIT)" -o bin/cnbridged ./cmd/cnbridged

# package: dist/cnbridged_VERSION_ARCH.deb and dist/cnbridged-VERSION-1.ARCH.rpm
# (static binary, systemd unit, default config as a conffile, man pages,
# bash/zsh/fish completions), built with nfpm v2.45.2 by deploy/package.sh.
# VERSION defaults to git describe; GOARCH picks the architecture.
VERSION ?=
package:
	sh deploy/package.sh dist $(VERSION)

test:
	$(GO) test -race -count=1 ./...

# bench: the Go per-message benchmarks, then the load harness.
bench: bench-go bench-harness

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/cnmsg ./internal/event ./internal/bridge

bench-harness:
	$(GO) build -o bin/cnbench ./cmd/cnbench
	./bin/cnbench --out $(BENCH_OUT)

# bench-coverage: how many of 400 short-lived execs the daemon names, beside
# forkstat, quiet and with two busy loops, against the build of
# COVERAGE_BASELINE (docs/performance.md, "Naming short-lived execs").
COVERAGE_BASELINE ?= fa67ba7
COVERAGE_ROUNDS ?= 5
bench-coverage:
	$(GO) build -o bin/cnbench ./cmd/cnbench
	./bin/cnbench --only coverage --coverage-rounds $(COVERAGE_ROUNDS) --baseline-ref $(COVERAGE_BASELINE) --out bench-results/coverage.json
