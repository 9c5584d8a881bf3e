# authzd — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO            ?= go
# Debian's python3, which sees the packages scripts/setup-python.sh installs (a pyenv or virtualenv
# python3 earlier on PATH does not).
PYTHON        := /usr/bin/python3
# SpiceDB v1.57.1 needs a newer Go than many machines ship; the go command fetches this toolchain from the
# module proxy by itself (seconds) when the local one is older. go.mod's toolchain line says the same.
export GOTOOLCHAIN ?= go1.27.3
# Local development defaults; override on the command line or in the environment.
LOCAL_DATABASE_URL := postgres://postgres@127.0.0.1:5432/authz?sslmode=disable
export AUTHZ_DATABASE_URL ?= $(LOCAL_DATABASE_URL)
export AUTHZ_ADMIN_TOKEN  ?= dev-admin-token
export AUTHZ_LOG_FORMAT   ?= text

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: setup
setup: ## Install (Debian packages) and start the local PostgreSQL, the Docker-side tools and python3 packages, Chromium (the browser test) and wrk (the load-fault test); idempotent, silent when all is in place. make run and make test do it themselves.
	@./scripts/setup-postgres.sh
	@./scripts/setup-docker.sh
	@./scripts/setup-python.sh
	@./scripts/setup-chromium.sh
	@./scripts/setup-wrk.sh
	@echo "make setup: ready"

# make run and make test set up what they need first (silent when it is in place), unless pointed at a
# Postgres of the user's own (AUTHZ_DATABASE_URL for run, AUTHZ_TEST_DATABASE_URL for test).
.PHONY: local-postgres test-tools
local-postgres:
	@./scripts/setup-postgres.sh
test-tools:
	@if [ "$${AUTHZ_TEST_DOCKER:-}" != 0 ]; then ./scripts/setup-docker.sh; fi
	@./scripts/setup-python.sh
	@./scripts/setup-chromium.sh
	@./scripts/setup-wrk.sh

.PHONY: run
run: $(if $(filter $(LOCAL_DATABASE_URL),$(AUTHZ_DATABASE_URL)),local-postgres) ## Run authzd on :8080 against the local Postgres (set up first if needed) with embedded SpiceDB (admin token: $AUTHZ_ADMIN_TOKEN).
	$(GO) run ./cmd/authzd

.PHONY: test
test: $(if $(AUTHZ_TEST_DATABASE_URL),,local-postgres) test-tools lint fuzz-smoke ## Run every test (set-up, lint, fuzz smoke, unit, schema validation, contract, integration); with a Docker engine, build the images first and run the Docker world.
	@if [ "$${AUTHZ_TEST_DOCKER:-}" != 0 ] && docker version >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory images; \
	else \
		echo "make test: no Docker engine (or AUTHZ_TEST_DOCKER=0): the integration suite runs in the local world"; \
	fi
	mkdir -p artifacts
	$(GO) test -count=1 -timeout 30m -artifacts -outputdir $(CURDIR)/artifacts ./...
	$(GO) test -count=1 -race ./internal/cache/
	cd client && $(GO) test -count=1 ./...
	cd clients/python && $(PYTHON) -m pytest
	cd examples/scaibunker_fastapi && $(PYTHON) -m pytest -p no:cacheprovider

.PHONY: lint
lint: ## Run go vet and staticcheck (pinned in go.mod's tool directive, configured in staticcheck.conf) on both modules; both must find nothing.
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	cd client && $(GO) vet ./... && $$(cd .. && $(GO) tool -n staticcheck) ./...

# Each fuzz target as package:Target; go test -fuzz takes one target of one package at a time.
FUZZ_TARGETS := ./internal/authz:FuzzParseKey ./internal/authz:FuzzParseSubject \
	./internal/http:FuzzDecode ./internal/http:FuzzCheckBody ./internal/http:FuzzCursor \
	./internal/authz:FuzzValidateKey
FUZZTIME ?= 3s

.PHONY: fuzz-smoke
fuzz-smoke: ## Run each fuzz target for $(FUZZTIME) (FUZZTIME=5m to fuzz for real); a crasher lands in testdata/fuzz, commit it with the fix.
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($${t%%:*}, $(FUZZTIME))"; \
		out=$$($(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -parallel 2 "$${t%%:*}" 2>&1) || \
			{ echo "$$out"; exit 1; }; \
	done

.PHONY: images
images: ## Build the authzd, SpiceDB and Postgres images the Docker world and compose use, pulling nothing (docker/images.sh).
	GO="$(GO)" ./docker/images.sh

.PHONY: compose-test
compose-test: images ## Run docker-compose.yml for real: up (healthy), provision, check, audit, restart authzd, down -v.
	AUTHZ_REQUIRE_INTEGRATION=1 $(GO) test -count=1 -run '^TestCompose$$' -v ./integration/

.PHONY: faults
faults: ## Drive authzd with wrk through a 20 s SpiceDB outage and a 20 s audit-database outage (TestLoadFaults, about a minute of load) and print each fault's figures.
	@set -o pipefail; AUTHZ_TEST_FAULT_CUT=20s $(GO) test -count=1 -run '^TestLoadFaults$$' -v ./integration/ 2>&1 | \
		grep -E 'wrk:|cut off|audit rows|--- (PASS|FAIL|SKIP)|^(ok|FAIL)'

.PHONY: bench
bench: local-postgres ## Run the benchmark suite and print the results table (sets up the local Postgres first, like run and test).
	$(GO) run ./cmd/authzbench $(BENCHFLAGS)

.PHONY: schema
schema: ## Regenerate schema/authzd.zed from schema/core.zed and schema/modules/*.yaml.
	$(GO) generate ./schema/...

.PHONY: build
build: ## Build authzd and authzctl into ./bin.
	$(GO) build -o bin/authzd ./cmd/authzd
	$(GO) build -o bin/authzctl ./cmd/authzctl

.PHONY: migrate
migrate: ## Apply the audit database migrations.
	$(GO) run ./cmd/authzd migrate

.PHONY: fmt
fmt: ## Format the code.
	gofmt -w $$(git ls-files '*.go')
