#!/bin/sh
# Builds dist/ARCH/weft-<version>.apk, the package OpenWrt 25.12 and later
# install (apk-tools 3; 24.10 and older take the .ipk of build-ipk.sh), from
# a cross-built binary, without the SDK but as its package-pack.mk does:
# the same files, conffiles, dependencies and scripts as the .ipk (both come
# from openwrt-package/Makefile through scripts/package-common.sh), plus
# apk's own metadata under /lib/apk/packages/ (NAME.list, NAME.conffiles,
# NAME.conffiles_static), packed by the real `apk mkpkg`. The name is
# OpenWrt's (no arch in it: each arch has its own directory).
#
#   scripts/build-apk.sh ARCH
#
# The binary is $WEFT_BIN, default dist/ARCH/weft (make cross ARCH=...).
# apk-tools 3 is $APK, default `apk` from PATH (the SDK has it as
# staging_dir/host/bin/apk). Files must be owned by root in the package:
# run as root, or have fakeroot installed. The time stamp is
# $SOURCE_DATE_EPOCH, default the last commit's time. Output goes to
# $DIST/ARCH/ (default dist/ARCH/).
# shellcheck shell=dash
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARCH=${1:-}
[ -n "$ARCH" ] || { echo "usage: $0 ARCH" >&2; exit 2; }
DIST=${DIST:-$ROOT/dist}
BIN=${WEFT_BIN:-$ROOT/dist/$ARCH/weft}
APK=${APK:-apk}

die() { echo "build-apk: $*" >&2; exit 1; }
[ -f "$BIN" ] || die "$BIN is missing: run 'make cross ARCH=$ARCH' first"
"$APK" --version 2>/dev/null | grep -q '^apk-tools 3\.' ||
	die "apk-tools 3 is needed: set APK=/path/to/apk (an OpenWrt SDK has staging_dir/host/bin/apk)"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum is needed"
AS_ROOT=
if [ "$(id -u)" != 0 ]; then
	command -v fakeroot >/dev/null 2>&1 || die "run as root or install fakeroot (files must be owned by root)"
	AS_ROOT=fakeroot
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-apk.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
umask 022
# shellcheck source-path=SCRIPTDIR source=package-common.sh
. "$ROOT/scripts/package-common.sh"
pkg_read
SOURCE_DATE_EPOCH=$(pkg_epoch)
export SOURCE_DATE_EPOCH
DATA=$WORK/data SCRIPTS=$WORK/scripts
META=lib/apk/packages

# --- data: Package/weft/install, keep.d, and apk's file list and conffiles ---
pkg_stage "$DATA"
install -d -m0755 "$DATA/$META"
# Every file and link of the package (not the metadata written after it).
(cd "$DATA" && find . -type f,l -printf "/%P\n" | LC_ALL=C sort) >"$WORK/list"
install -m0644 "$WORK/list" "$DATA/$META/$NAME.list"
# All conffiles lines, as the Makefile gives them; with a checksum for
# those that are files of the package (apk keeps a changed one on upgrade).
printf '%s\n' "$CONFFILES" >"$WORK/conffiles"
install -m0644 "$WORK/conffiles" "$DATA/$META/$NAME.conffiles"
: >"$WORK/conffiles_static"
for f in $CONFFILES; do
	if [ -f "$DATA$f" ]; then
		echo "$f $(sha256sum "$DATA$f" | cut -d' ' -f1)" >>"$WORK/conffiles_static"
	fi
done
if [ -s "$WORK/conffiles_static" ]; then
	install -m0644 "$WORK/conffiles_static" "$DATA/$META/$NAME.conffiles_static"
fi

# --- scripts: package-pack.mk's, for a package without its own ---------------
# post-install runs the package's uci-defaults, then enables and starts its
# init script (default_postinst); pre-deinstall stops and disables it.
mkdir -p "$SCRIPTS"
cat >"$SCRIPTS/post-install" <<SCRIPT
#!/bin/sh
[ "\${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s \${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. \${IPKG_INSTROOT}/lib/functions.sh
export root="\${IPKG_INSTROOT}"
export pkgname="$NAME"
add_group_and_user
default_postinst
SCRIPT
{
	echo "#!/bin/sh"
	echo "export PKG_UPGRADE=1"
	sed '/^\s*#!/d' "$SCRIPTS/post-install"
} >"$SCRIPTS/post-upgrade"
cat >"$SCRIPTS/pre-deinstall" <<SCRIPT
#!/bin/sh
[ -s \${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. \${IPKG_INSTROOT}/lib/functions.sh
export root="\${IPKG_INSTROOT}"
export pkgname="$NAME"
default_prerm
SCRIPT

# --- the package ----------------------------------------------------------------
# One line, as package-pack.mk's $(strip ...) makes it.
DESCRIPTION_LINE=$(echo "$DESCRIPTION" | tr '\n' ' ' | sed -e 's/[[:space:]]\{1,\}/ /g' -e 's/^ //' -e 's/ $//')
OUT_DIR=$DIST/$ARCH
OUT=$OUT_DIR/$NAME-$VERSION.apk
mkdir -p "$OUT_DIR"
# shellcheck disable=SC2016 # the inner shell expands them
$AS_ROOT sh -c 'chown -R 0:0 "$1" && shift && exec "$@"' - "$DATA" \
	"$APK" mkpkg \
	--info "name:$NAME" \
	--info "version:$VERSION" \
	--info "description:$DESCRIPTION_LINE" \
	--info "arch:$ARCH" \
	--info "license:$LICENSE" \
	--info "origin:feeds/weft/$NAME" \
	--info "url:" \
	--info "maintainer:$MAINTAINER" \
	--info "provides:$NAME-any" \
	--script "post-install:$SCRIPTS/post-install" \
	--script "post-upgrade:$SCRIPTS/post-upgrade" \
	--script "pre-deinstall:$SCRIPTS/pre-deinstall" \
	--info "depends:$DEPENDS" \
	--files "$DATA" \
	--output "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "build-apk: $OUT ($(wc -c <"$OUT") bytes)"
