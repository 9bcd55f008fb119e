#!/bin/sh
# Test infrastructure: builds the real apk-tools 3 (what OpenWrt 25.12 uses to
# build and install .apk packages) from the unmodified source snapshot of the
# OpenWrt components, once, into a cache outside the repository, and prints
# the path of its `apk` binary. Later runs only print the path (~0 s; the
# build takes ~15 s).
#
#   APK=$(sh tests/openwrt/apk-tools.sh)
#
# $WEFT_OPENWRT_SRC: the directory holding apk-tools.tar.gz (default
# /work/shared/openwrt-src); $WEFT_TEST_CACHE: the cache (default
# /var/cache/weft-test). Needs meson, ninja, a C compiler, libssl-dev and
# zlib1g-dev (scripts/install-deps.sh installs them).
# shellcheck shell=dash
set -eu

SRC=${WEFT_OPENWRT_SRC:-/work/shared/openwrt-src}/apk-tools.tar.gz
CACHE_ROOT=${WEFT_TEST_CACHE:-/var/cache/weft-test}

die() { echo "apk-tools: $*" >&2; exit 1; }
[ -f "$SRC" ] || die "$SRC is missing (set WEFT_OPENWRT_SRC)"
HASH=$(sha256sum "$SRC" | cut -c1-16)
DEST=$CACHE_ROOT/apk-tools-$HASH

usable() { [ -x "$DEST/apk" ] && "$DEST/apk" --version 2>/dev/null | grep -q '^apk-tools 3\.'; }
if usable; then
	echo "$DEST/apk"
	exit 0
fi
for tool in meson ninja cc; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (run scripts/install-deps.sh)"
done
mkdir -p "$CACHE_ROOT"
# Concurrent test processes: one builds, the others wait for it.
exec 9>"$DEST.lock"
flock 9
if usable; then
	echo "$DEST/apk"
	exit 0
fi
WORK=$(mktemp -d "$CACHE_ROOT/apk-tools-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
tar -xzf "$SRC" -C "$WORK"
cd "$WORK"/apk-tools*
# Only the tool: no Lua, docs, help text, Python binding, tests or zstd.
meson setup build -Dlua=disabled -Ddocs=disabled -Dhelp=disabled -Dpython=disabled \
	-Dtests=disabled -Dzstd=disabled -Ddefault_library=static >"$WORK/setup.log" 2>&1 ||
	{ cat "$WORK/setup.log" >&2; die "meson setup failed"; }
nice ninja -C build src/apk >"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log" >&2; die "build failed"; }
mkdir -p "$WORK/out"
install -m0755 build/src/apk "$WORK/out/apk"
"$WORK/out/apk" --version | grep -q '^apk-tools 3\.' || die "the built apk does not run"
rm -rf "$DEST"
mv "$WORK/out" "$DEST"
echo "$DEST/apk"
