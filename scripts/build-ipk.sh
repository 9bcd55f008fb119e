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
# Name, version, release, licence, section, dependencies, conffiles and
# description come from openwrt-package/Makefile, as in an SDK build.
# The time stamp is $SOURCE_DATE_EPOCH, default the last commit's time.
# Output goes to $DIST (default dist/).
# shellcheck shell=dash
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARCH=${1:-}
[ -n "$ARCH" ] || { echo "usage: $0 ARCH" >&2; exit 2; }
DIST=${DIST:-$ROOT/dist}
BIN=${WEFT_BIN:-$ROOT/dist/$ARCH/weft}
PKGMK=$ROOT/openwrt-package/Makefile

die() { echo "build-ipk: $*" >&2; exit 1; }
[ -f "$BIN" ] || die "$BIN is missing: run 'make cross ARCH=$ARCH' first"
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is needed"

# mk_var NAME: the value of "NAME:=value" in the package Makefile.
mk_var() { sed -n "s/^[[:space:]]*$1:=[[:space:]]*//p" "$PKGMK" | head -n 1; }
# mk_define NAME: the lines of "define NAME" ... "endef".
mk_define() { sed -n "\\|^define $1\$|,/^endef\$/p" "$PKGMK" | sed '1d;$d'; }

NAME=$(mk_var PKG_NAME)
VERSION="$(mk_var PKG_VERSION)-r$(mk_var PKG_RELEASE)"
LICENSE=$(mk_var PKG_LICENSE)
MAINTAINER=$(mk_var PKG_MAINTAINER)
SECTION=$(mk_define "Package/$NAME" | sed -n 's/^[[:space:]]*SECTION:=//p')
# "+pkg" entries of DEPENDS (conditions and @-symbols are build-time only);
# OpenWrt adds libc to every package that is not a kernel module.
DEPENDS="libc"
for dep in $(mk_define "Package/$NAME" | sed -n 's/^[[:space:]]*DEPENDS:=//p'); do
	case "$dep" in
	+*) DEPENDS="$DEPENDS, ${dep#+}" ;;
	esac
done
if [ -z "$NAME" ] || [ -z "$SECTION" ] || [ -z "$LICENSE" ]; then die "could not read $PKGMK"; fi

EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
case "$EPOCH" in '' | *[!0-9]*) die "bad SOURCE_DATE_EPOCH '$EPOCH'" ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-ipk.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
umask 022
DATA=$WORK/data CONTROL=$WORK/control
mkdir -p "$CONTROL"

# --- data: the same files and modes as Package/weft/install -----------------
install -d -m0755 "$DATA/usr/sbin" "$DATA/etc/init.d" "$DATA/etc/config" "$DATA/etc/uci-defaults"
install -m0755 "$BIN" "$DATA/usr/sbin/weft"
install -m0755 "$ROOT/init.d/weft" "$DATA/etc/init.d/weft"
install -m0600 "$ROOT/openwrt-package/files/weft.config" "$DATA/etc/config/weft"
install -m0755 "$ROOT/uci-defaults/90-weft" "$DATA/etc/uci-defaults/90-weft"
# rpcd's exec plugin (ubus object "weft"): the binary under this name.
install -d -m0755 "$DATA/usr/libexec/rpcd"
ln -s ../../sbin/weft "$DATA/usr/libexec/rpcd/weft"

# Conffiles that are files of the package go to control/conffiles; the others
# (such as /etc/weft/, where the key lives) to /lib/upgrade/keep.d/ so that
# sysupgrade keeps them, as package-pack.mk does.
for f in $(mk_define "Package/$NAME/conffiles"); do
	if [ -f "$DATA$f" ]; then
		echo "$f" >>"$CONTROL/conffiles"
	else
		install -d -m0755 "$DATA/lib/upgrade/keep.d"
		echo "$f" >>"$DATA/lib/upgrade/keep.d/$NAME"
	fi
done
[ -f "$DATA/lib/upgrade/keep.d/$NAME" ] && chmod 0644 "$DATA/lib/upgrade/keep.d/$NAME"
[ -f "$CONTROL/conffiles" ] && LC_ALL=C sort -o "$CONTROL/conffiles" "$CONTROL/conffiles"

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
	echo "Depends: $DEPENDS"
	echo "Source: feeds/weft/$NAME"
	echo "SourceName: $NAME"
	echo "License: $LICENSE"
	echo "Section: $SECTION"
	echo "SourceDateEpoch: $EPOCH"
	[ -n "$MAINTAINER" ] && echo "Maintainer: $MAINTAINER"
	echo "Architecture: $ARCH"
	echo "Installed-Size: $INSTALLED_SIZE"
	printf 'Description: '
	mk_define "Package/$NAME/description" | sed -e 's/^[[:space:]]*/ /' -e '1s/^ //'
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
