# weft — build, test, lint, bench, demo, cross and packaging entry points.
# `make test` is exactly what CI runs (.ci/run calls it).

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all build release test test-unit test-vm lint fmt bench deps clean demo
.PHONY: cross cross-setup cross-check test-cross ipk apk size need-arch

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

# Long VM runs kept out of `make test` (root; builds and caches the VM in
# target/vm): weft (the release build), babeld and batman-adv on the same
# emulated 802.11s radios (about 12 min; figures in docs/BENCHMARKS.md,
# "Real radios").
test-vm: deps
	$(CARGO) build --release
	WEFT_RADIO_BIN=$(CURDIR)/target/release/weft \
		$(CARGO) test --test radio_vm -- --ignored --nocapture --test-threads=1

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

bench:
	$(CARGO) bench
	$(CARGO) test --release --test e2e_netns -- --ignored --nocapture --test-threads=1

# A narrated live mesh: four namespaces running weft, convergence, a ping
# across, a cable cut and the reroute (root; installs what it needs, builds
# weft, then takes ~10 s). WEFT=path skips the build.
demo:
	sh scripts/demo.sh

clean:
	$(CARGO) clean
	rm -rf dist

# --- OpenWrt: cross builds, packages, flash budget (docs/OPENWRT.md) ---------
# ARCH is one or more OpenWrt package architectures, or "all":
#   x86_64 aarch64_cortex-a53 mipsel_24kc mips_24kc arm_cortex-a7_neon-vfpv4
# Release builds take 50-170 s per arch on two cores: build what you need.
OPENWRT_ARCHES := x86_64 aarch64_cortex-a53 mipsel_24kc mips_24kc arm_cortex-a7_neon-vfpv4
ARCH ?=
ARCHES = $(if $(filter all,$(ARCH)),$(OPENWRT_ARCHES),$(ARCH))
# test-cross: the arch whose tests run under qemu-user (big-endian MIPS catches
# byte-order bugs), and integration test binaries to run besides the lib tests.
CROSS_TEST_ARCH ?= mips_24kc
CROSS_TESTS ?= codec_props

need-arch:
	@test -n "$(ARCH)" || { echo "set ARCH to one or more of: $(OPENWRT_ARCHES), or all" >&2; exit 2; }

# Installs the cross tools (rustup targets, nightly rust-src, zig in .venv, qemu-user).
cross-setup: need-arch
	sh scripts/cross.sh setup $(ARCHES)

# Static, stripped musl release binaries: dist/<arch>/weft.
cross: need-arch
	sh scripts/cross.sh build $(ARCHES)

# Each binary prints `weft --version` under the matching qemu-user.
cross-check: cross
	sh scripts/cross.sh check $(ARCHES)

# Builds CROSS_TEST_ARCH, checks the binary and runs the lib tests (and
# CROSS_TESTS) under qemu-user.
test-cross:
	sh scripts/cross.sh build $(CROSS_TEST_ARCH)
	sh scripts/cross.sh check $(CROSS_TEST_ARCH)
	CROSS_TESTS="$(CROSS_TESTS)" sh scripts/cross.sh test $(CROSS_TEST_ARCH)

# opkg packages without the SDK: dist/weft_<version>_<arch>.ipk.
ipk: cross
	@for a in $(ARCHES); do sh scripts/build-ipk.sh $$a || exit 1; done

# apk packages (OpenWrt 25.12+) without the SDK: dist/<arch>/weft-<version>.apk,
# the same files, conffiles, dependencies and scripts as the .ipk, packed by
# apk-tools 3: APK=/path/to/apk (default: apk in PATH).
APK ?= apk
apk: cross
	@for a in $(ARCHES); do APK="$(APK)" sh scripts/build-apk.sh $$a || exit 1; done

# Sizes of every built binary and .ipk; fails over the flash budget.
size:
	sh scripts/size-report.sh
