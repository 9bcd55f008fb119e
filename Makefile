# weft — build, test, lint, bench, demo, cross and packaging entry points.
# `make test` is exactly what CI runs (.ci/run calls it).

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all build release test test-unit lint fmt bench deps clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# Installs what the tests need on a fresh Debian machine (idempotent).
deps:
	sh scripts/install-deps.sh

test: deps lint
	$(CARGO) test --all-targets -- --test-threads=2

test-unit:
	$(CARGO) test --lib

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

bench:
	$(CARGO) bench

clean:
	$(CARGO) clean
	rm -rf dist
