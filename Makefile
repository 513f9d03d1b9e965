# The two set-up commands: `make dev` runs the system, `make test` passes the tests. Each installs
# what is missing first (the PostgreSQL server binaries) and is quick when everything is there.

GO ?= go
# Where the PostgreSQL server binaries are; empty means: search PATH, pg_config and
# /usr/lib/postgresql/*/bin (what `backfill` itself does).
BACKFILL_PG_BIN ?=
export BACKFILL_PG_BIN

.PHONY: dev test build postgres fmt-check vet help

help:
	@echo "make dev    run the system locally (PostgreSQL on 127.0.0.1:54322, API on 127.0.0.1:54321)"
	@echo "make test   check formatting, vet, and run every test with the race detector"
	@echo "make build  build bin/backfill"

dev: postgres
	$(GO) run ./cmd/backfill dev

test: postgres fmt-check vet
	$(GO) test -race -count=1 ./...

build:
	$(GO) build -o bin/backfill ./cmd/backfill

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './gen/*' -not -path './.backfill/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Installs Debian's postgresql package when no server binaries are found. The package also
# registers a default cluster on port 5432 where a service manager runs; backfill never uses it.
postgres:
	@if [ -n "$$BACKFILL_PG_BIN" ] && [ -x "$$BACKFILL_PG_BIN/initdb" ]; then exit 0; fi; \
	if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then exit 0; fi; \
	if [ -x "$$(pg_config --bindir 2>/dev/null)/initdb" ]; then exit 0; fi; \
	for d in /usr/lib/postgresql/*/bin; do [ -x "$$d/initdb" ] && [ -x "$$d/postgres" ] && exit 0; done; \
	echo "PostgreSQL server binaries not found: installing Debian's postgresql package"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends postgresql
