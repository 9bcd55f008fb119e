#!/bin/sh
# Cross-compiles weft for OpenWrt targets and proves the result runs.
#
#   scripts/cross.sh setup ARCH...   install what building ARCH needs (idempotent)
#   scripts/cross.sh build ARCH...   static musl release binary -> dist/ARCH/weft
#   scripts/cross.sh check ARCH...   run dist/ARCH/weft --version under qemu-user
#   scripts/cross.sh test  ARCH [TEST...]
#                                    run the library tests (and the named
#                                    integration test binaries) under qemu-user
#   scripts/cross.sh list            print the supported OpenWrt arch names
#   scripts/cross.sh target ARCH     print the Rust target triple of ARCH
#
# ARCH is an OpenWrt package architecture (the name in a .ipk file name);
# "all" means every supported one. The recipes are the ones checked by hand
# in TESTBED.md ("Cross-compiling for routers"), now for every target:
# nightly with -Zbuild-std (a std without unwinding and backtraces) plus zig
# (through cargo-zigbuild) as linker and C runtime.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIST=${DIST:-$ROOT/dist}
# Separate from target/ so that a cross build started from inside `cargo test`
# (tests/openwrt_ipk.rs) never waits on the lock of the outer build.
export CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-$ROOT/target/cross}"
VENV=$ROOT/.venv
NICE=${NICE-nice}
# The toolchain for the -Zbuild-std targets; set e.g. nightly-2026-05-20 to pin.
NIGHTLY=${CROSS_NIGHTLY:-nightly}
ALL_ARCHES="x86_64 aarch64_cortex-a53 mipsel_24kc mips_24kc arm_cortex-a7_neon-vfpv4"

die() { echo "cross: $*" >&2; exit 1; }

# Sets TRIPLE, TOOLCHAIN (stable|nightly), LINKER (cc|zig), QEMU and
# ARCH_RUSTFLAGS for one OpenWrt arch.
arch_vars() {
	case "$1" in
	# Every target builds its own std (nightly, -Zbuild-std): rustup's
	# prebuilt one carries unwinding and the backtrace symboliser, ~300 KB
	# that a panic=abort router binary never uses.
	x86_64)
		TRIPLE=x86_64-unknown-linux-musl TOOLCHAIN=nightly LINKER=zig
		QEMU=qemu-x86_64-static ARCH_RUSTFLAGS="-C link-self-contained=no" ;;
	aarch64_cortex-a53)
		TRIPLE=aarch64-unknown-linux-musl TOOLCHAIN=nightly LINKER=zig
		QEMU=qemu-aarch64-static ARCH_RUSTFLAGS="-C link-self-contained=no" ;;
	mipsel_24kc)
		# Without a static relocation model the binary is static-pie and
		# crashes at start under qemu 7.2; rust's self-contained crt objects
		# do not exist for build-std targets, zig provides them.
		TRIPLE=mipsel-unknown-linux-musl TOOLCHAIN=nightly LINKER=zig
		QEMU=qemu-mipsel-static
		ARCH_RUSTFLAGS="-C relocation-model=static -C link-self-contained=no" ;;
	mips_24kc)
		TRIPLE=mips-unknown-linux-musl TOOLCHAIN=nightly LINKER=zig
		QEMU=qemu-mips-static
		ARCH_RUSTFLAGS="-C relocation-model=static -C link-self-contained=no" ;;
	arm_cortex-a7_neon-vfpv4)
		TRIPLE=armv7-unknown-linux-musleabihf TOOLCHAIN=nightly LINKER=zig
		QEMU=qemu-arm-static ARCH_RUSTFLAGS="-C link-self-contained=no" ;;
	*)
		die "unknown OpenWrt arch '$1' (supported: $ALL_ARCHES)" ;;
	esac
	# CARGO_TARGET_<TRIPLE>_RUSTFLAGS / _RUNNER: the variable-name form of TRIPLE.
	TRIPLE_VAR=$(echo "$TRIPLE" | tr 'a-z-' 'A-Z_')
}

expand_arches() {
	[ $# -gt 0 ] || die "no ARCH given (supported: $ALL_ARCHES, or all)"
	for a in "$@"; do
		if [ "$a" = all ]; then echo "$ALL_ARCHES"; else echo "$a"; fi
	done
}

have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
	[ "$(id -u)" = 0 ] || die "missing Debian packages: $* (run as root to install them)"
	echo "cross: installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

setup_venv() {
	if [ -x "$VENV/bin/cargo-zigbuild" ] && "$VENV/bin/python3" -m ziglang version >/dev/null 2>&1; then
		return 0
	fi
	echo "cross: creating $VENV with ziglang and cargo-zigbuild"
	if ! python3 -m venv "$VENV" 2>/dev/null; then
		apt_install python3-venv
		python3 -m venv "$VENV"
	fi
	# Versions checked together here; zig and cargo-zigbuild move in step.
	"$VENV/bin/pip" install -q "ziglang==${ZIGLANG_VERSION:-0.17.1}" "cargo-zigbuild==${CARGO_ZIGBUILD_VERSION:-0.24.0}"
}

# What building ARCH needs (no emulator: packaging needs none).
setup_build() {
	arch_vars "$1"
	if [ "$TOOLCHAIN" = nightly ]; then
		rustup toolchain list | grep -q "^$NIGHTLY" ||
			rustup toolchain install "$NIGHTLY" --profile minimal
		rustup component list --installed --toolchain "$NIGHTLY" 2>/dev/null | grep -q '^rust-src' ||
			rustup component add rust-src --toolchain "$NIGHTLY"
	else
		rustup target list --installed | grep -qx "$TRIPLE" || rustup target add "$TRIPLE"
	fi
	[ "$LINKER" = zig ] && setup_venv
	return 0
}

# Everything for ARCH: the build tools and the qemu-user that runs the result.
setup_one() {
	setup_build "$1"
	have "$QEMU" || apt_install qemu-user-static
	return 0
}

# Runs cargo (or cargo-zigbuild) for ARCH with the recipe's toolchain and flags.
# $1 = arch, $2 = cargo subcommand (build|test), rest = extra cargo args.
cargo_for() {
	arch=$1 sub=$2
	shift 2
	arch_vars "$arch"
	setup_build "$arch"
	export PATH="$VENV/bin:$PATH"
	# Target-specific so that build scripts and proc macros (host code) are
	# built without the target's flags.
	export "CARGO_TARGET_${TRIPLE_VAR}_RUSTFLAGS=$ARCH_RUSTFLAGS ${EXTRA_RUSTFLAGS:-}"
	if [ "$TOOLCHAIN" = nightly ]; then
		# std without its backtrace symboliser (gimli, addr2line, demangler:
		# ~60 KB of flash) and with its smaller algorithms. Panics still print
		# their message to the log, only the backtrace is gone.
		set -- -Zbuild-std=std,panic_abort "-Zbuild-std-features=${CROSS_STD_FEATURES-optimize_for_size}" "$@"
		export RUSTUP_TOOLCHAIN="$NIGHTLY"
		# Run from inside `cargo test` (tests/openwrt_ipk.rs), these name the
		# outer stable cargo and rustc, which cargo-zigbuild would use.
		unset CARGO RUSTC RUSTDOC
	fi
	if [ "$LINKER" = zig ]; then
		$NICE cargo-zigbuild "$sub" --locked --target "$TRIPLE" "$@"
	else
		$NICE cargo "$sub" --locked --target "$TRIPLE" "$@"
	fi
}

rustc_sysroot() { RUSTUP_TOOLCHAIN="$NIGHTLY" rustc --print sysroot; }
host_triple() { RUSTUP_TOOLCHAIN="$NIGHTLY" rustc -vV | sed -n 's/^host: //p'; }

build_one() {
	arch=$1
	echo "cross: building $arch"
	# No unwind tables (.eh_frame, ~120 KB): with panic = "abort" nothing
	# unwinds. Test builds (test_one) keep them: the harness catches panics.
	# Router builds leave the simulator out (a development tool; Cargo.toml).
	EXTRA_RUSTFLAGS="-C force-unwind-tables=no" cargo_for "$arch" build --release --bin weft --no-default-features
	arch_vars "$arch"
	mkdir -p "$DIST/$arch"
	# Sections no router loads: MIPS procedure descriptors (.pdr, ~150 KB,
	# for old ECOFF debuggers) and compiler version notes. The toolchain's
	# own llvm-objcopy (rust-objcopy) knows every target.
	objcopy=$(rustc_sysroot)/lib/rustlib/$(host_triple)/bin/rust-objcopy
	LD_LIBRARY_PATH="$(rustc_sysroot)/lib" "$objcopy" --remove-section=.pdr --remove-section=.comment \
		"$CARGO_TARGET_DIR/$TRIPLE/release/weft" "$DIST/$arch/weft.tmp"
	mv "$DIST/$arch/weft.tmp" "$DIST/$arch/weft"
	echo "cross: $DIST/$arch/weft: $(wc -c <"$DIST/$arch/weft") bytes"
}

check_one() {
	arch=$1
	arch_vars "$arch"
	bin=$DIST/$arch/weft
	[ -x "$bin" ] || die "$bin is missing: run 'make cross ARCH=$arch' first"
	have "$QEMU" || setup_one "$arch"
	want="weft $(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)"
	got=$("$QEMU" "$bin" --version) || die "$arch: '$QEMU $bin --version' failed"
	[ "$got" = "$want" ] || die "$arch: --version printed '$got', expected '$want'"
	# A static, stripped executable is what a router without our libc needs.
	info=$(file -b "$bin" 2>/dev/null || echo "")
	case "$info" in *dynamically*) die "$arch: $bin is dynamically linked: $info" ;; esac
	case "$info" in *"not stripped"*) die "$arch: $bin is not stripped: $info" ;; esac
	echo "cross: $arch ok under $QEMU: $got ($(wc -c <"$bin") bytes)"
}

test_one() {
	arch=$1
	shift
	arch_vars "$arch"
	setup_one "$arch"
	export "CARGO_TARGET_${TRIPLE_VAR}_RUNNER=$QEMU"
	# Test binaries unwind (the harness catches each test's panic) and
	# print backtraces: std's default features.
	CROSS_STD_FEATURES=${CROSS_STD_FEATURES-backtrace,panic-unwind}
	set -- --lib
	for t in ${CROSS_TESTS:-}; do set -- "$@" --test "$t"; done
	echo "cross: testing $arch under $QEMU: $*"
	cargo_for "$arch" test "$@"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
setup) for a in $(expand_arches "$@"); do setup_one "$a"; done ;;
build) for a in $(expand_arches "$@"); do build_one "$a"; done ;;
check) for a in $(expand_arches "$@"); do check_one "$a"; done ;;
test)
	[ $# -ge 1 ] || die "usage: cross.sh test ARCH [TEST...]"
	arch=$1
	shift
	[ $# -gt 0 ] && CROSS_TESTS="${CROSS_TESTS:-} $*"
	test_one "$arch" ;;
list) echo "$ALL_ARCHES" ;;
target) arch_vars "${1:-}"; echo "$TRIPLE" ;;
*) sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2 ;;
esac
