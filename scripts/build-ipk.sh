#!/bin/sh
# Builds dist/weft_<version>_<arch>.ipk from a cross-built binary, without the
# OpenWrt SDK, laid out as OpenWrt's own package-pack.mk and ipkg-build make
# it: a gzipped tar of ./debian-binary ("2.0"), ./data.tar.gz and
# ./control.tar.gz (control, conffiles, postinst, prerm), GNU tar format,
# entries sorted by name, owner 0:0, one fixed mtime, gzip without name or
# time stamp, so the same inputs give the same bytes.
#
#   scripts/build-ipk.sh ARCH
#
# The binary is $WEFT_BIN, default dist/ARCH/weft (make cross ARCH=...).
# Files, name, version, release, licence, section, dependencies, conffiles
# and description come from openwrt-package/Makefile, as in an SDK build
# (scripts/package-common.sh).
# The time stamp is $SOURCE_DATE_EPOCH, default the last commit's time.
# Output goes to $DIST (default dist/).
# shellcheck shell=dash
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARCH=${1:-}
[ -n "$ARCH" ] || { echo "usage: $0 ARCH" >&2; exit 2; }
DIST=${DIST:-$ROOT/dist}
BIN=${WEFT_BIN:-$ROOT/dist/$ARCH/weft}

die() { echo "build-ipk: $*" >&2; exit 1; }
[ -f "$BIN" ] || die "$BIN is missing: run 'make cross ARCH=$ARCH' first"
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is needed"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-ipk.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
umask 022
# shellcheck source-path=SCRIPTDIR source=package-common.sh
. "$ROOT/scripts/package-common.sh"
pkg_read
EPOCH=$(pkg_epoch)
DATA=$WORK/data CONTROL=$WORK/control
mkdir -p "$CONTROL"

# --- data: Package/weft/install, and keep.d for the key directory -----------
pkg_stage "$DATA"
# Conffiles that are files of the package go to control/conffiles.
for f in $CONFFILES; do
	if [ -f "$DATA$f" ]; then echo "$f" >>"$CONTROL/conffiles"; fi
done
if [ -f "$CONTROL/conffiles" ]; then LC_ALL=C sort -o "$CONTROL/conffiles" "$CONTROL/conffiles"; fi

pack() { # DIR [MEMBER...]: a reproducible GNU tar of DIR on stdout
	dir=$1
	shift
	[ $# -gt 0 ] || set -- .
	tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		--mtime="@$EPOCH" -C "$dir" -cf - "$@"
}

pack "$DATA" | gzip -9n >"$WORK/data.tar.gz"
# Installed-Size as ipkg-build computes it: the size of the uncompressed data tar.
INSTALLED_SIZE=$(gzip -dc "$WORK/data.tar.gz" | wc -c)

# --- control ----------------------------------------------------------------
{
	echo "Package: $NAME"
	echo "Version: $VERSION"
	echo "Depends: $(echo "$DEPENDS" | sed 's/ /, /g')"
	echo "Source: feeds/weft/$NAME"
	echo "SourceName: $NAME"
	echo "License: $LICENSE"
	echo "Section: $SECTION"
	echo "SourceDateEpoch: $EPOCH"
	[ -n "$MAINTAINER" ] && echo "Maintainer: $MAINTAINER"
	echo "Architecture: $ARCH"
	echo "Installed-Size: $INSTALLED_SIZE"
	printf 'Description: '
	echo "$DESCRIPTION" | sed -e 's/^[[:space:]]*/ /' -e '1s/^ //'
} >"$CONTROL/control"

# The maintainer scripts every OpenWrt package gets: default_postinst runs the
# package's uci-defaults, then enables and starts its init script;
# default_prerm stops and disables it.
cat >"$CONTROL/postinst" <<'SCRIPT'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
default_postinst "$0" "$@"
SCRIPT
cat >"$CONTROL/prerm" <<'SCRIPT'
#!/bin/sh
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
default_prerm "$0" "$@"
SCRIPT
chmod 0644 "$CONTROL/control" "$CONTROL/conffiles"
chmod 0755 "$CONTROL/postinst" "$CONTROL/prerm"
pack "$CONTROL" | gzip -9n >"$WORK/control.tar.gz"

# --- the package --------------------------------------------------------------
echo "2.0" >"$WORK/debian-binary"
chmod 0644 "$WORK/debian-binary" "$WORK/data.tar.gz" "$WORK/control.tar.gz"
mkdir -p "$DIST"
OUT=$DIST/${NAME}_${VERSION}_${ARCH}.ipk
pack "$WORK" ./debian-binary ./data.tar.gz ./control.tar.gz | gzip -9n >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "build-ipk: $OUT ($(wc -c <"$OUT") bytes, installed $INSTALLED_SIZE bytes)"
