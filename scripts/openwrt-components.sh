#!/bin/sh
# Builds OpenWrt's own userspace for the tests that run weft against the
# real thing: libubox, ubus (ubusd, the ubus CLI), uci (with its Lua 5.1
# binding, for lime-proto-weft), rpcd (exec plugins, sessions, ACLs) and
# uhttpd (with its ubus JSON-RPC handler, for LuCI).
#
#   scripts/openwrt-components.sh          build if needed; prints the prefix
#
# The sources are unmodified upstream snapshots, outside this repository:
# $OPENWRT_SRC (default ../shared/openwrt-src next to the checkout). They are
# built once into $WEFT_TEST_CACHE/openwrt-<hash> (default
# /var/cache/weft-test), where <hash> covers the archives and this script,
# so a new snapshot or new flags build anew and an unchanged one costs a
# checksum. The install prefix is that directory itself: rpcd looks for exec
# plugins in PREFIX/libexec/rpcd and ACLs in PREFIX/share/rpcd/acl.d
# (compiled in), which the tests bind-mount their own directories over in a
# private mount namespace. Concurrent callers wait on a lock; a build that
# fails leaves nothing behind.
#
# Needs cmake, pkg-config, gcc, libjson-c-dev, liblua5.1-0-dev (installed
# here if missing and run as root).
# shellcheck shell=dash
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=${OPENWRT_SRC:-$ROOT/../shared/openwrt-src}
CACHE=${WEFT_TEST_CACHE:-/var/cache/weft-test}
COMPONENTS="libubox ubus uci rpcd uhttpd"

die() { echo "openwrt-components: $*" >&2; exit 1; }
log() { echo "openwrt-components: $*" >&2; }

for c in $COMPONENTS; do
	[ -f "$SRC/$c.tar.gz" ] || die "$SRC/$c.tar.gz is missing (set OPENWRT_SRC)"
done

need=""
command -v cmake >/dev/null 2>&1 || need="$need cmake"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
command -v cc >/dev/null 2>&1 || need="$need gcc"
[ -f /usr/include/json-c/json.h ] || need="$need libjson-c-dev"
pkg-config --exists lua5.1 2>/dev/null || need="$need liblua5.1-0-dev"
if [ -n "$need" ]; then
	[ "$(id -u)" = 0 ] || die "missing:$need (run as root to install them)"
	log "installing$need"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086 # one word per package
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq $need >/dev/null ||
		{ apt-get update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq $need >/dev/null; } ||
		die "cannot install$need"
fi

HASH=$(for c in $COMPONENTS; do cat "$SRC/$c.tar.gz"; done | cat - "$ROOT/scripts/openwrt-components.sh" | sha256sum | cut -c1-16)
PREFIX=$CACHE/openwrt-$HASH

mkdir -p "$CACHE"
exec 9>"$CACHE/openwrt.lock"
flock 9

if [ -f "$PREFIX/.complete" ]; then
	echo "$PREFIX"
	exit 0
fi

rm -rf "$PREFIX"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-openwrt-build.XXXXXX")
# On any failure: no half-built prefix that a later run would trust.
trap 'rm -rf "$WORK"; [ -f "$PREFIX/.complete" ] || rm -rf "$PREFIX"' EXIT
start=$(date +%s)
jobs=$(nproc 2>/dev/null || echo 2)

# build NAME CMAKE-OPTION...: unpack, configure against PREFIX, build, install.
build() {
	name=$1
	shift
	mkdir -p "$WORK/$name"
	tar -xzf "$SRC/$name.tar.gz" -C "$WORK/$name"
	# The archives hold one top directory named after the component.
	dir=$(find "$WORK/$name" -mindepth 1 -maxdepth 1 -type d | head -n 1)
	log "building $name"
	CFLAGS="-I$PREFIX/include ${EXTRA_CFLAGS:-}" LDFLAGS="-L$PREFIX/lib -Wl,-rpath,$PREFIX/lib" \
		cmake -S "$dir" -B "$WORK/$name/build" -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_PREFIX_PATH="$PREFIX" \
		-DCMAKE_INSTALL_RPATH="$PREFIX/lib" "$@" >"$WORK/$name.log" 2>&1 ||
		{ tail -n 30 "$WORK/$name.log" >&2; die "cmake of $name failed"; }
	make -C "$WORK/$name/build" -j"$jobs" install >>"$WORK/$name.log" 2>&1 ||
		{ tail -n 30 "$WORK/$name.log" >&2; die "building $name failed"; }
}

mkdir -p "$PREFIX"
build libubox -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF
build ubus -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF
build uci -DBUILD_LUA=ON -DLUAPATH="$PREFIX/lib/lua/5.1"
build rpcd -DFILE_SUPPORT=OFF -DIWINFO_SUPPORT=OFF -DRPCSYS_SUPPORT=OFF -DUCODE_SUPPORT=OFF
# Debian's gcc 12 sees a false stringop-overread in client.c that OpenWrt's
# toolchain does not; uhttpd builds with -Werror.
EXTRA_CFLAGS=-Wno-error=stringop-overread build uhttpd -DTLS_SUPPORT=OFF -DLUA_SUPPORT=OFF -DUCODE_SUPPORT=OFF -DUBUS_SUPPORT=ON

# What OpenWrt's rpcd package installs besides the binary: the ACL that lets
# an unauthenticated client call session.login, and the plugin directories.
mkdir -p "$PREFIX/libexec/rpcd" "$PREFIX/share/rpcd/acl.d"
cp "$(find "$WORK/rpcd" -name unauthenticated.json | head -n 1)" "$PREFIX/share/rpcd/acl.d/"

for bin in sbin/ubusd bin/ubus bin/uci sbin/rpcd bin/uhttpd lib/lua/5.1/uci.so lib/uhttpd_ubus.so; do
	[ -e "$PREFIX/$bin" ] || die "$PREFIX/$bin was not installed"
done
touch "$PREFIX/.complete"
log "built in $(($(date +%s) - start)) s: $PREFIX"
echo "$PREFIX"
