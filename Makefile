# ATİS Scheduler. `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

GO      ?= go
BIN     := bin
PKG     := github.com/atis-edu/atis-scheduler
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X $(PKG)/internal/cli.Version=$(VERSION)
# Tests use TEST_DATABASE_URL when it is set; otherwise one throwaway cluster
# that atis-devdb starts for the whole run and stops after it.
WITH_TEST_DB = $(if $(TEST_DATABASE_URL),,$(BIN)/atis-devdb -env TEST_DATABASE_URL -database postgres --)

.PHONY: help build run psql test test/race test-chaos test-soak fuzz lint bench screenshot clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z\/_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build atis-scheduler (and the atis-devdb helper) into bin/
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

# The private PostgreSQL of `make run` and `make psql`; its URL is also in $(DEVDB_DIR).url.
DEVDB_DIR := .local/postgres

run: build ## Run the daemon: on DATABASE_URL if set, else on a private PostgreSQL under .local/ (URL printed, and in .local/postgres.url)
	@if [ -n "$$DATABASE_URL" ]; then \
		$(BIN)/atis-scheduler migrate && exec $(BIN)/atis-scheduler run; \
	else \
		exec $(BIN)/atis-devdb -dir $(DEVDB_DIR) -- \
			sh -c '$(BIN)/atis-scheduler migrate && exec $(BIN)/atis-scheduler run'; \
	fi

psql: build ## psql on the database `make run` uses: DATABASE_URL if set, else the private one (joined if running, started if not)
	@if [ -n "$$DATABASE_URL" ]; then \
		exec psql "$$DATABASE_URL"; \
	else \
		exec $(BIN)/atis-devdb -dir $(DEVDB_DIR) -- sh -c 'exec psql "$$DATABASE_URL"'; \
	fi

test: build ## Run the whole test suite on a throwaway PostgreSQL
	$(WITH_TEST_DB) $(GO) test -count=1 -timeout 10m ./...

test/race: build ## Run the whole test suite with the race detector
	$(WITH_TEST_DB) $(GO) test -count=1 -race -timeout 15m ./...

test-chaos: build ## The chaos suite at full length: kill -9, outage, hostile providers and rows, secrets (`make test` runs it short)
	$(WITH_TEST_DB) env ATIS_CHAOS=full $(GO) test -count=1 -v -run Chaos -timeout 30m ./cmd/atis-scheduler/

test-soak: build ## 500 runs/s with River's job cleaner, retention and autovacuum on (durable cluster), 10 minutes' warm-up then 30 measured (~42 min): a per-minute table, and the last 10 minutes within 20 % of the first 10 (not in CI)
	$(DURABLE_DB) env ATIS_SOAK=1 $(GO) test -count=1 -v -run '^TestSoak$$' -timeout 60m ./cmd/atis-scheduler/

FUZZ_TIME ?= 30s
fuzz: build ## Fuzz each target for FUZZ_TIME (30s); a crasher is written under the package's testdata/fuzz
	$(GO) test -run '^$$' -fuzz '^FuzzParseRow$$' -fuzztime $(FUZZ_TIME) ./internal/schedule/
	$(WITH_TEST_DB) $(GO) test -run '^$$' -fuzz '^FuzzScheduleRows$$' -fuzztime $(FUZZ_TIME) ./scheduler/
	$(GO) test -run '^$$' -fuzz '^FuzzURL$$' -fuzztime $(FUZZ_TIME) ./internal/redact/
	$(GO) test -run '^$$' -fuzz '^FuzzLocalPath$$' -fuzztime $(FUZZ_TIME) ./internal/dashboard/
	$(WITH_TEST_DB) $(GO) test -run '^$$' -fuzz '^FuzzQuery$$' -fuzztime $(FUZZ_TIME) ./internal/dashboard/
	$(GO) test -run '^$$' -fuzz '^FuzzValidateParameters$$' -fuzztime $(FUZZ_TIME) ./internal/cli/
	$(GO) test -run '^$$' -fuzz '^FuzzFetchPage$$' -fuzztime $(FUZZ_TIME) ./integrations/httpjson/

lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# `make bench` runs every other package's benchmarks first, then internal/testkit/bench,
# which prints one table: issue 10's scenarios and the rows the others passed
# on through ATIS_BENCH_TABLE. Benchmarks run one package at a time.
BENCH_TABLE := $(abspath $(BIN))/bench-table.jsonl
BENCH_FLAGS := -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m
DURABLE_DB   = $(if $(TEST_DATABASE_URL),,$(BIN)/atis-devdb -durable -env TEST_DATABASE_URL -database postgres --)

bench: build ## Run the benchmarks (on a durable cluster, ~22 min) and print one table of figures, baselines and targets
	@rm -f $(BENCH_TABLE)
	$(DURABLE_DB) env ATIS_BENCH_TABLE=$(BENCH_TABLE) \
		$(GO) test $(BENCH_FLAGS) $$($(GO) list ./... | grep -v '/internal/testkit/bench$$')
	$(DURABLE_DB) env ATIS_BENCH_TABLE=$(BENCH_TABLE) $(GO) test $(BENCH_FLAGS) ./internal/testkit/bench/

screenshot: build ## Regenerate docs/dashboard.png and docs/river-ui.png (README's pictures) with the browser tests
	$(WITH_TEST_DB) env ATIS_DASHBOARD_SCREENSHOT=$(CURDIR)/docs/dashboard.png ATIS_RIVER_UI_SCREENSHOT=$(CURDIR)/docs/river-ui.png \
		$(GO) test -count=1 -run '^(TestBrowser|TestRiverUIBrowser)$$' -v ./internal/dashboard/

clean: ## Remove bin/ (the .local/ database stays; delete it by hand)
	rm -rf $(BIN)
