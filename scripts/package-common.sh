# Sourced by build-ipk.sh and build-apk.sh: what goes into weft's OpenWrt
# package, read from openwrt-package/Makefile the way the OpenWrt SDK reads
# it. GNU make evaluates the feed Makefile with a minimal stand-in for the
# build system (the INSTALL_* commands and an empty BuildPackage), so that
# the feed, the .ipk and the .apk carry the same files (Package/weft/install
# is the one file list), conffiles, dependencies and description.
#
# The caller sets ROOT (the checkout), BIN (the weft binary to package) and
# WORK (an empty scratch directory), then calls pkg_read and pkg_stage.
# shellcheck shell=dash

PKG_DIR=$ROOT/openwrt-package
SDK=$WORK/sdk

pkg_die() { echo "package: $*" >&2; exit 1; }

# pkg_make TARGET...: runs the stand-in driver on the feed Makefile.
pkg_make() {
	make -s -f "$SDK/driver.mk" -C "$PKG_DIR" TOPDIR="$SDK" PKG_MAKEFILE="$PKG_DIR/Makefile" \
		PKG_BUILD_DIR="$ROOT" PKG_INSTALL_DIR="$SDK/install" OUT="$SDK/out" "$@"
}

# Sets NAME, VERSION (PKG_VERSION-rPKG_RELEASE, as OpenWrt's
# package-defaults.mk makes it for both package managers), LICENSE,
# MAINTAINER, SECTION, DEPENDS (package names, libc first), CONFFILES (one
# path a line) and DESCRIPTION (the define's lines), for the caller.
# shellcheck disable=SC2034
pkg_read() {
	local deps dep
	command -v make >/dev/null 2>&1 || pkg_die "GNU make is needed"
	mkdir -p "$SDK/include" "$SDK/feeds/packages/lang/rust" "$SDK/install/bin" "$SDK/out"
	cat >"$SDK/rules.mk" <<'EOF'
INCLUDE_DIR:=$(TOPDIR)/include
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
CP:=cp -fpR
LN:=ln -sf
EOF
	printf 'define BuildPackage\nendef\n' >"$SDK/include/package.mk"
	# Build-time only: the SDK turns it into @-conditions, never a dependency.
	printf 'RUST_ARCH_DEPENDS:=@(aarch64||arm||mips||mipsel||x86_64)\n' \
		>"$SDK/feeds/packages/lang/rust/rust-package.mk"
	cat >"$SDK/driver.mk" <<'EOF'
include $(PKG_MAKEFILE)
$(eval $(Package/$(PKG_NAME)))
.PHONY: info install
info:
	$(file >$(OUT)/name,$(PKG_NAME))
	$(file >$(OUT)/version,$(PKG_VERSION))
	$(file >$(OUT)/release,$(PKG_RELEASE))
	$(file >$(OUT)/license,$(PKG_LICENSE))
	$(file >$(OUT)/maintainer,$(PKG_MAINTAINER))
	$(file >$(OUT)/section,$(SECTION))
	$(file >$(OUT)/depends,$(DEPENDS))
	$(file >$(OUT)/conffiles,$(Package/$(PKG_NAME)/conffiles))
	$(file >$(OUT)/description,$(Package/$(PKG_NAME)/description))
	@:
install:
	$(call Package/$(PKG_NAME)/install,$(STAGE))
EOF
	pkg_make info || pkg_die "cannot evaluate $PKG_DIR/Makefile"
	NAME=$(cat "$SDK/out/name")
	VERSION="$(cat "$SDK/out/version")-r$(cat "$SDK/out/release")"
	LICENSE=$(cat "$SDK/out/license")
	MAINTAINER=$(cat "$SDK/out/maintainer")
	SECTION=$(cat "$SDK/out/section")
	CONFFILES=$(sed '/^[[:space:]]*$/d' "$SDK/out/conffiles")
	DESCRIPTION=$(cat "$SDK/out/description")
	# "+pkg" entries of DEPENDS; "@..." are build-time conditions. OpenWrt
	# adds libc to every package that is not a kernel module.
	DEPENDS="libc"
	read -r deps <"$SDK/out/depends" || true
	for dep in $deps; do
		case "$dep" in
		+*:*) pkg_die "conditional dependency $dep is not supported here" ;;
		+*) DEPENDS="$DEPENDS ${dep#+}" ;;
		esac
	done
	if [ -z "$NAME" ] || [ -z "$SECTION" ] || [ -z "$LICENSE" ]; then
		pkg_die "could not read $PKG_DIR/Makefile"
	fi
}

# pkg_stage DATA: the package's files in DATA, as Package/NAME/install puts
# them, plus /lib/upgrade/keep.d/NAME for conffiles that are not files of
# the package (such as /etc/weft/, where the key lives), which sysupgrade
# then keeps, as package-pack.mk does.
pkg_stage() {
	local data=$1 f
	[ -f "$BIN" ] || pkg_die "$BIN is missing"
	install -m0755 "$BIN" "$SDK/install/bin/$NAME"
	mkdir -p "$data"
	pkg_make install STAGE="$data" || pkg_die "the install rule of $PKG_DIR/Makefile failed"
	for f in $CONFFILES; do
		if [ ! -f "$data$f" ]; then
			install -d -m0755 "$data/lib/upgrade/keep.d"
			echo "$f" >>"$data/lib/upgrade/keep.d/$NAME"
		fi
	done
	[ ! -f "$data/lib/upgrade/keep.d/$NAME" ] || chmod 0644 "$data/lib/upgrade/keep.d/$NAME"
}

# pkg_epoch: $SOURCE_DATE_EPOCH, default the last commit's time.
pkg_epoch() {
	local e=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
	case "$e" in '' | *[!0-9]*) pkg_die "bad SOURCE_DATE_EPOCH '$e'" ;; esac
	echo "$e"
}
