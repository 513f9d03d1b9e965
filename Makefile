# The two set-up commands: `make dev` runs the system, `make test` passes the tests. Each installs
# what is missing first (the PostgreSQL server binaries; for `make test` also buf, Prometheus and
# tmux) and is quick when everything is there.

GO ?= go
# Where the PostgreSQL server binaries are; empty means: search PATH, pg_config and
# /usr/lib/postgresql/*/bin (what `backfill` itself does).
BACKFILL_PG_BIN ?=
export BACKFILL_PG_BIN

# buf, pinned by tools/buf/package-lock.json and installed from the npm registry into
# tools/buf/node_modules (git-ignored). The npm package carries the native binary for the platform.
BUF_DIR := tools/buf
BUF := $(BUF_DIR)/node_modules/.bin/buf
BUF_VERSION := $(shell sed -n 's|.*"@bufbuild/buf": *"\([^"]*\)".*|\1|p' $(BUF_DIR)/package.json)
# What `make breaking` compares proto/ with: a buf input read from the local git repository (no
# network, no Buf Schema Registry). Empty skips the check, e.g. BREAKING_AGAINST= for a deliberate
# breaking change.
BREAKING_AGAINST ?= .git\#branch=main

.PHONY: dev test build postgres prometheus tmux fmt-check vet help buf lint generate generate-check breaking

# generate-check rewrites gen/ while vet and go test read it: never run targets in parallel.
.NOTPARALLEL:

help:
	@echo "make dev    run the system locally (PostgreSQL on 127.0.0.1:54322, API on 127.0.0.1:54321)"
	@echo "make test   check proto/ and gen/ (lint, drift, breaking), formatting, vet, and run every test with the race detector"
	@echo "make build  build bin/backfill"
	@echo "make generate        lint proto/ and regenerate gen/ with buf (installs buf when missing)"
	@echo "make generate-check  regenerate and fail when gen/ differs from what git has"
	@echo "make breaking        buf breaking: proto/ against the main branch of the local repository"

dev: postgres
	$(GO) run ./cmd/backfill dev

test: postgres prometheus tmux generate-check breaking fmt-check vet conformance-deps
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

# Installs Debian's prometheus package (prometheus and promtool) when either is missing: the deploy
# tests check deploy/prometheus with promtool and scrape a live `backfill dev` with a real
# Prometheus. Where a service manager runs, the package also starts a Prometheus on :9090; the
# tests never use it (they start their own on a free port with a throw-away storage folder).
prometheus:
	@if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then exit 0; fi; \
	echo "prometheus or promtool not found: installing Debian's prometheus package"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends prometheus

# Installs Debian's tmux when missing: the `backfill status` tests drive the command on a real
# terminal inside a private tmux server.
tmux:
	@if command -v tmux >/dev/null 2>&1; then exit 0; fi; \
	echo "tmux not found: installing Debian's tmux package"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends tmux

# Installs the pinned buf into tools/buf/node_modules when it is missing or another version; quick
# when it is there. Install scripts are skipped: the package's postinstall only re-checks the version
# (done here) or, without the platform package, fetches it outside the lock.
buf: npm
	@if [ "$$($(BUF) --version 2>/dev/null)" = "$(BUF_VERSION)" ]; then exit 0; fi; \
	echo "installing buf $(BUF_VERSION) into $(BUF_DIR)/node_modules"; \
	npm ci --prefix $(BUF_DIR) --ignore-scripts --include=optional --no-audit --no-fund --loglevel=error || exit 1; \
	got=$$($(BUF) --version) || exit 1; \
	if [ "$$got" != "$(BUF_VERSION)" ]; then echo "buf: want $(BUF_VERSION), installed $$got"; exit 1; fi

# supabase-js for the conformance tests, pinned by server/testdata/supabase-js/package-lock.json and
# installed from the npm registry into its node_modules (git-ignored). Quick when npm's record of
# the install (node_modules/.package-lock.json) is newer than the lock file.
SUPABASE_JS_DIR := server/testdata/supabase-js
.PHONY: conformance-deps npm
# Installs Debian's npm (and with it node) when there is none.
npm:
	@command -v npm >/dev/null 2>&1 && exit 0; \
	echo "npm not found: installing Debian's npm package"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends npm

conformance-deps: npm
	@if [ $(SUPABASE_JS_DIR)/node_modules/.package-lock.json -nt $(SUPABASE_JS_DIR)/package-lock.json ] && \
		command -v node >/dev/null 2>&1; then exit 0; fi; \
	echo "installing supabase-js into $(SUPABASE_JS_DIR)/node_modules"; \
	npm ci --prefix $(SUPABASE_JS_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error

lint: buf
	$(BUF) lint

# buf.gen.yaml runs protoc-gen-go and protoc-gen-connect-go through `go tool` (pinned in go.mod).
# `clean: true` empties gen/ first: everything in it comes from proto/.
generate: lint
	$(BUF) generate

# Fails when regenerating changes gen/ compared with git's index (in a fresh clone: the commit):
# modified or deleted files, and new files git does not know.
generate-check: generate
	@if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		echo "generate-check: not a git work tree, cannot compare gen/; skipped"; exit 0; fi; \
	changed=$$(git diff --name-status -- gen; git ls-files --others --exclude-standard -- gen | sed 's/^/??\t/'); \
	if [ -n "$$changed" ]; then \
		echo "gen/ is out of date: 'make generate' changed these files (M modified, D deleted, ?? new):"; \
		echo "$$changed" | sed 's/^/  /'; \
		echo "Commit them (or 'git add gen') together with the proto/ change."; \
		exit 1; \
	fi

# buf breaking (WIRE_JSON, see buf.yaml) against $(BREAKING_AGAINST). Skipped when the reference
# has no buf.yaml or no .proto files yet (first commit of the contract) or there is no such branch.
breaking: buf
	@if [ -z "$(BREAKING_AGAINST)" ]; then echo "breaking: BREAKING_AGAINST is empty; skipped"; exit 0; fi; \
	ref=$$(echo '$(BREAKING_AGAINST)' | sed -n 's|^\.git#branch=\([^,]*\).*|\1|p'); \
	if [ -n "$$ref" ]; then \
		if ! git rev-parse -q --verify "refs/heads/$$ref" >/dev/null 2>&1; then \
			echo "breaking: no branch $$ref in this repository; skipped"; exit 0; fi; \
		if ! git cat-file -e "$$ref:buf.yaml" 2>/dev/null || \
			! git ls-tree -r --name-only "$$ref" -- proto | grep -q '\.proto$$'; then \
			echo "breaking: $$ref has no buf.yaml or no proto/*.proto yet; skipped"; exit 0; fi; \
	fi; \
	echo "$(BUF) breaking --against '$(BREAKING_AGAINST)'"; \
	$(BUF) breaking --against '$(BREAKING_AGAINST)'
