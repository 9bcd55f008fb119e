#!/bin/sh
# Installs the Debian packages and Rust components the tests need, only if
# something is missing, so that `make test` works on a fresh machine and costs
# nothing on a prepared one.
set -eu

# Every program the tests run, with the package that has it: checked before
# installing and again after, since a test that cannot find its program
# fails under CI=true (tests/common/require.rs) and a package that installs
# without the program would otherwise show only there.
need=""
check() { command -v "$1" >/dev/null 2>&1 || need="$need $2"; }
# check_pkg PACKAGE: a Debian package without a command of its own (libraries).
check_pkg() { dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q 'ok installed' || need="$need $1"; }
all_checks() {
	check babeld babeld
	check bird bird2
	check tshark tshark
	check socat socat
	check wireguard-go wireguard-go
	check wg wireguard-tools
	check nft nftables
	check shellcheck shellcheck
	check ip iproute2
	check ping iputils-ping
	check busybox busybox-static
	check file file
	check tcpdump tcpdump
	# Throughput per hop against end to end (make bench, tests/e2e_netns.rs).
	check iperf3 iperf3
	check dumpcap tshark
	check birdc bird2
	check sysctl procps
	check nsenter util-linux
	# A daemon with a wrong wall clock (trust_netns: a router at 1970).
	check faketime faketime
	# The qemu VM tests (real kernel WireGuard): qemu, and what builds the initramfs.
	check qemu-system-x86_64 qemu-system-x86
	check cpio cpio
	check depmod kmod
	check objdump binutils
	check python3 python3
	# The radio VM test (tests/radio_vm.rs) copies these into the VM.
	check iw iw
	check batctl batctl
	# OpenWrt's ubusd/rpcd/uhttpd/uci built from source (scripts/openwrt-components.sh),
	# LuCI in a real browser, lime-proto-weft under Lua 5.1.
	check cmake cmake
	check pkg-config pkg-config
	check curl curl
	check lua5.1 lua5.1
	check chromium chromium
	# Driven through chromedriver so a test waits for what the page renders.
	check chromedriver chromium-driver
	check_pkg python3-selenium
	[ -f /usr/include/json-c/json.h ] || need="$need libjson-c-dev"
	[ -f /usr/include/lua5.1/lua.h ] || need="$need liblua5.1-0-dev"
	# Names for dnsmasq (tests/dnsmasq_names.rs): dnsmasq-base has no service.
	check dnsmasq dnsmasq-base
	check dig bind9-dnsutils
	# Metrics parsed by the real Prometheus client (tests/prometheus_metrics.rs).
	check_pkg python3-prometheus-client
	# apk-tools 3, built from source by tests/openwrt/apk-tools.sh.
	check meson meson
	check ninja ninja-build
	check cc gcc
	check_pkg libssl-dev
	check_pkg zlib1g-dev
}
all_checks

if [ -n "$need" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: missing packages:$need (run as root to install them)" >&2
		exit 1
	fi
	echo "install-deps: installing$need"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	# Without recommends: chromium alone would pull in a desktop.
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $need >/dev/null
	wanted=$need
	need=""
	all_checks
	if [ -n "$need" ]; then
		echo "install-deps: still missing after installing$wanted:$need" >&2
		exit 1
	fi
fi

rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
# The .ipk test builds a static x86_64 binary: scripts/cross.sh installs
# what that needs (nightly with rust-src, zig) when it first runs.
exit 0
