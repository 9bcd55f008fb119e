#!/bin/bash
# tests/vm/run.sh -- boot Debian's own kernel under qemu (TCG, no KVM needed)
# with a busybox initramfs and run a payload in it. Used to test weft against
# real kernel WireGuard (the host may not have the module); reusable for
# anything else that needs a kernel of its own (the whole daemon, say).
#
# Usage: tests/vm/run.sh [--build-only] PAYLOAD
#   PAYLOAD is a directory holding an executable `run` (and whatever it
#   needs), or a single script (becomes `run`). It is unpacked at /payload and
#   `./run` is started there as root, after the modules are loaded. Dynamically
#   linked executables in it get their shared libraries copied in too.
#
# Environment:
#   WEFT_VM_CACHE    cache directory (default: <repo>/target/vm); holds the
#                    kernel package, the unpacked kernel and base initramfs
#   WEFT_VM_KPKG     kernel package (default: newest linux-image-6.1.0-N-amd64)
#   WEFT_VM_MODULES  modules loaded at boot, deps first (default: "veth wireguard")
#   WEFT_VM_EXTRA_MODULES  modules put into the image with their dependencies
#                    but not loaded: the payload loads them itself, with
#                    parameters (e.g. mac80211_hwsim radios=5)
#   WEFT_VM_BINS     host programs copied in with their libraries
#                    (default: /usr/sbin/ip /usr/bin/ping, and /usr/bin/wg if present)
#   WEFT_VM_TIMEOUT  seconds before the in-VM watchdog powers off (default 240)
#   WEFT_VM_MEM      guest memory in MiB (default 512)
#
# Output: the serial console, on stdout and in $WEFT_VM_CACHE/last-console.log.
# Exit status: the payload's (from the "WEFT-VM-EXIT N" line the VM prints),
# 125 when the VM never reported one (crash, hang, qemu failure).
#
# Needs root on first use (apt-get installs qemu-system-x86, busybox-static,
# cpio, kmod, iproute2, iputils-ping and downloads the kernel package, ~70 MB).
# Measured here (2 shared cores): first build about 1 min plus the download,
# then a boot + WireGuard probe + power-off in about 20-30 s.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${WEFT_VM_CACHE:-$REPO/target/vm}
MODULES=${WEFT_VM_MODULES:-veth wireguard}
EXTRA_MODULES=${WEFT_VM_EXTRA_MODULES:-}
TIMEOUT=${WEFT_VM_TIMEOUT:-240}
MEM=${WEFT_VM_MEM:-512}

build_only=0
if [ "${1:-}" = "--build-only" ]; then build_only=1; shift; fi
PAYLOAD=${1:-}
if [ -z "$PAYLOAD" ] && [ $build_only = 0 ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
fi

log() { echo "vm: $*" >&2; }

install_host_tools() {
    local need=""
    command -v qemu-system-x86_64 >/dev/null || need="$need qemu-system-x86"
    [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx insmod || need="$need busybox-static"
    command -v cpio >/dev/null || need="$need cpio"
    command -v depmod >/dev/null || need="$need kmod"
    [ -x /usr/sbin/ip ] || need="$need iproute2"
    [ -x /usr/bin/ping ] || need="$need iputils-ping"
    [ -z "$need" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        log "missing packages:$need (run as root to install them)"
        exit 2
    fi
    log "installing$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need >/dev/null
}

fetch_kernel() {
    [ -d "$CACHE/kroot/boot" ] && return 0
    local kpkg=${WEFT_VM_KPKG:-}
    pick() {
        apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null \
            | awk '{print $1}' | sort -V | tail -1
    }
    [ -n "$kpkg" ] || kpkg=$(pick)
    if [ -z "$kpkg" ]; then
        apt-get update -qq
        kpkg=$(pick)
    fi
    [ -n "$kpkg" ] || { log "no linux-image-6.1.0-*-amd64 package found"; exit 2; }
    log "downloading $kpkg"
    mkdir -p "$CACHE/pkg"
    if ! (cd "$CACHE/pkg" && apt-get download -q "$kpkg" >/dev/null 2>&1); then
        # Stale package lists name a kernel the mirror no longer has:
        # refresh them and pick again (unless the package was given).
        apt-get update -qq || true
        [ -n "${WEFT_VM_KPKG:-}" ] || kpkg=$(pick)
        log "downloading $kpkg (after apt-get update)"
        (cd "$CACHE/pkg" && apt-get download "$kpkg")
    fi
    rm -rf "$CACHE/kroot.tmp"
    dpkg -x "$CACHE/pkg/${kpkg}"_*.deb "$CACHE/kroot.tmp"
    mv "$CACHE/kroot.tmp" "$CACHE/kroot"
    # The unpacked tree is the cache from now on (fetch_kernel returns early).
    rm -f "$CACHE/pkg/${kpkg}"_*.deb
}

# Copies executables and the libraries ldd lists for them into $1, at their host paths.
copy_with_libs() {
    local root=$1 b l; shift
    for b in "$@"; do
        [ -e "$root$b" ] || install -D -m 755 "$b" "$root$b"
        add_libs "$root" "$b"
    done
}
add_libs() {
    local root=$1 b=$2 l
    # Static executables make ldd fail: nothing to copy then.
    for l in $(ldd "$b" 2>/dev/null | grep -o '/[^ ]*' || true); do
        [ -e "$root$l" ] || install -D -m 755 "$(readlink -f "$l")" "$root$l"
    done
}

build_base() {
    KV=$(basename "$(find "$CACHE/kroot/lib/modules" -mindepth 1 -maxdepth 1 | head -1)")
    local bins=${WEFT_VM_BINS:-/usr/sbin/ip /usr/bin/ping $(command -v wg || true)}
    local key
    key=$( (echo "$KV|$MODULES|$EXTRA_MODULES|$bins"; cat "$HERE/init" "$0") | sha256sum | cut -c1-16)
    BASE=$CACHE/base-$key.cpio.gz
    VMLINUZ=$CACHE/kroot/boot/vmlinuz-$KV
    [ -f "$BASE" ] && return 0
    log "building base initramfs for $KV"
    local r=$CACHE/base-root.$$
    rm -rf "$r"
    mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,etc,payload}
    cp /bin/busybox "$r/bin/busybox"
    for a in $(/bin/busybox --list); do
        [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"
    done
    ln -sf ../bin/busybox "$r/sbin/modprobe"   # the kernel's request_module() helper
    ln -sf ../bin/busybox "$r/sbin/insmod"
    # shellcheck disable=SC2086
    copy_with_libs "$r" $bins
    cp -a /etc/iproute2 "$r/etc/" 2>/dev/null || true

    # The wanted modules plus, recursively, what modules.dep says they need.
    # Arch-optimised crypto is not a hard dependency of wireguard: add it so the
    # guest does not fall back to the generic C code.
    local k=$CACHE/kroot/lib/modules/$KV dep=$CACHE/kroot/lib/modules/$KV/modules.dep
    depmod -b "$CACHE/kroot" "$KV"
    local -A seen=()
    add_mod() {
        local line path d
        line=$(grep -E "(^|/)$1\.ko(\.[gx]z)?:" "$dep") || { log "no module $1"; return 1; }
        path=${line%%:*}
        [ -n "${seen[$path]:-}" ] && return 0
        seen[$path]=1
        install -D -m 644 "$k/$path" "$r/lib/modules/$KV/$path"
        for d in ${line#*:}; do d=${d##*/}; add_mod "${d%%.ko*}"; done
    }
    local load=""
    for m in chacha-x86_64 poly1305-x86_64 curve25519-x86_64; do
        grep -qE "(^|/)$m\.ko" "$dep" && add_mod "$m" && load="$load $m"
    done
    for m in $MODULES; do add_mod "$m"; load="$load $m"; done
    for m in $EXTRA_MODULES; do add_mod "$m"; done
    cp "$k"/modules.{builtin,builtin.modinfo,order} "$r/lib/modules/$KV/"
    depmod -b "$r" "$KV"
    echo "$load" > "$r/etc/vm-modules"
    install -m 755 "$HERE/init" "$r/init"
    (cd "$r" && find . | cpio -o -H newc --quiet) | gzip -1 > "$BASE.tmp"
    mv "$BASE.tmp" "$BASE"
    rm -rf "$r"
}

build_payload() {
    local p=$CACHE/payload-root.$$
    rm -rf "$p"
    mkdir -p "$p/payload"
    if [ -d "$PAYLOAD" ]; then
        cp -a "$PAYLOAD"/. "$p/payload/"
    else
        install -m 755 "$PAYLOAD" "$p/payload/run"
    fi
    [ -x "$p/payload/run" ] || { log "payload has no executable run"; exit 2; }
    local f
    while IFS= read -r -d '' f; do
        if [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ]; then
            add_libs "$p" "$f"
        fi
    done < <(find "$p/payload" -type f -print0)
    PAYLOAD_CPIO=$CACHE/payload.$$.cpio.gz
    (cd "$p" && find . | cpio -o -H newc --quiet) | gzip -1 > "$PAYLOAD_CPIO"
    rm -rf "$p"
}

mkdir -p "$CACHE"
install_host_tools
# One builder at a time; parallel runs then share the cached base.
exec 9>"$CACHE/.lock"
flock 9
fetch_kernel
build_base
flock -u 9
[ $build_only = 1 ] && { log "base ready: $BASE"; exit 0; }

build_payload
# The kernel unpacks concatenated cpio archives in order: base, then payload.
INITRD=$CACHE/initrd.$$.gz
cat "$BASE" "$PAYLOAD_CPIO" > "$INITRD"
LOG=$CACHE/console.$$.log
trap 'rm -f "$INITRD" "$PAYLOAD_CPIO" "$LOG"' EXIT

start=$(date +%s.%N)
set +e
timeout $((TIMEOUT + 60)) qemu-system-x86_64 -accel tcg -m "$MEM" -smp 1 -nographic \
    -no-reboot -nic none -kernel "$VMLINUZ" -initrd "$INITRD" \
    -append "console=ttyS0 quiet panic=-1 weft_timeout=$TIMEOUT" </dev/null \
    | tr -d '\r' | tee "$LOG"
set -e
end=$(date +%s.%N)
cp "$LOG" "$CACHE/last-console.log"
log "qemu wall time $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}') s"
rc=$(sed -n 's/^WEFT-VM-EXIT \([0-9]*\).*/\1/p' "$LOG" | tail -1)
exit "${rc:-125}"
