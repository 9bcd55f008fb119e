#!/bin/sh
# Tests weft's OpenWrt shell parts: the procd init script (init.d/weft), the
# first-boot script (uci-defaults/90-weft), the default configuration and the
# SDK feed Makefile.
#
# The scripts run unchanged, with BusyBox's ash (the shell OpenWrt has),
# chrooted into throw-away roots under one temporary directory that holds
# everything they write. Each root has stand-ins for OpenWrt's shell API
# (fakes/: rc.common, /lib/functions.sh, procd.sh, uci, weft, nft, the
# firewall init script) that record what they are asked to do, and BusyBox's
# own syslogd as the logd that `logger` talks to.
#
# Needs root (chroot), busybox (static: busybox-static), GNU make; shellcheck
# is used when installed and skipped with a message otherwise.
# Prints one "ok"/"not ok" line per check and, last, "N passed, N failed".
# shellcheck shell=dash
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
FAKES=$HERE/fakes
INIT=$REPO/init.d/weft
DEFAULTS=$REPO/uci-defaults/90-weft
SHIPPED=$REPO/openwrt-package/files/weft.config
KEY_TEXT=c2VjcmV0LWtleS1vZi10aGUtdGVzdC1ub2RlLTAwMDAwMDA=

PASSED=0 FAILED=0 SKIPPED=0
SYSLOG_PIDS=

ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
skip() { SKIPPED=$((SKIPPED + 1)); echo "ok - SKIP $1"; }
not_ok() {
	FAILED=$((FAILED + 1))
	echo "not ok - $1"
	[ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/#   /'
	return 0
}
# check DESCRIPTION COMMAND...: passes if COMMAND succeeds.
check() {
	local desc="$1"
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected: $2
actual:   $3"; fi
}

die() { echo "openwrt tests: $*" >&2; exit 1; }

BUSYBOX=${BUSYBOX:-$(command -v busybox || true)}
CHROOT=$(command -v chroot || true)
[ -n "$BUSYBOX" ] || die "busybox is missing (apt-get install busybox-static)"
[ -n "$CHROOT" ] || die "chroot is missing (coreutils)"
[ "$(id -u)" = 0 ] || die "must run as root (the scripts run chrooted)"
# The roots have no shared libraries: the shell must be a static busybox.
if file -b "$(readlink -f "$BUSYBOX")" 2>/dev/null | grep -q dynamically; then
	die "$BUSYBOX is dynamically linked (apt-get install busybox-static)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-openwrt-tests.XXXXXX") || die "mktemp failed"
cleanup() {
	local pid
	for pid in $SYSLOG_PIDS; do kill "$pid" 2>/dev/null; done
	for pid in $SYSLOG_PIDS; do wait "$pid" 2>/dev/null; done
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the roots --

# A root with BusyBox, the stand-ins and OpenWrt's layout (/var -> /tmp).
make_base() {
	local b=$WORK/base
	mkdir -p "$b/bin" "$b/sbin" "$b/usr/bin" "$b/usr/sbin" "$b/lib/functions" \
		"$b/etc/config" "$b/etc/init.d" "$b/etc/rc.d" "$b/etc/uci-defaults" \
		"$b/dev" "$b/tmp"
	chmod 1777 "$b/tmp"
	ln -s tmp "$b/var"
	cp "$BUSYBOX" "$b/bin/busybox"
	"$CHROOT" "$b" /bin/busybox --install -s /bin || die "busybox --install failed"
	cp "$FAKES/rc.common" "$b/etc/rc.common"
	cp "$FAKES/functions.sh" "$b/lib/functions.sh"
	cp "$FAKES/procd.sh" "$b/lib/functions/procd.sh"
	cp "$FAKES/uci" "$FAKES/apply-uci-defaults" "$b/sbin/"
	cp "$FAKES/weft" "$FAKES/nft" "$b/usr/sbin/"
	cp "$FAKES/firewall.init" "$b/etc/init.d/firewall"
	cp "$HERE/fixtures/firewall" "$b/etc/config/firewall"
	cp "$INIT" "$b/etc/init.d/weft"
	chmod 0755 "$b/etc/rc.common" "$b/sbin/uci" "$b/sbin/apply-uci-defaults" \
		"$b/usr/sbin/weft" "$b/usr/sbin/nft" "$b/etc/init.d/firewall" "$b/etc/init.d/weft"
}

# new_root NAME: a fresh copy of the base root with its own syslogd. Prints its path.
new_root() {
	local r=$WORK/$1 i=0 pid
	cp -a "$WORK/base" "$r"
	"$CHROOT" "$r" /bin/busybox syslogd -n -O /tmp/syslog </dev/null >/dev/null 2>&1 &
	pid=$!
	SYSLOG_PIDS="$SYSLOG_PIDS $pid"
	# Bounded wait for syslogd's socket (50 x 0.1 s).
	while [ ! -S "$r/dev/log" ]; do
		i=$((i + 1))
		[ $i -le 50 ] || die "syslogd did not create $r/dev/log"
		sleep 0.1
	done
	echo "$r"
}

# in_root ROOT COMMAND...: runs COMMAND chrooted, with a clean environment.
in_root() {
	local r=$1
	shift
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/ "$CHROOT" "$r" "$@"
}

# logged ROOT PATTERN: waits (at most 5 s) until the root's syslog has a line
# matching the grep pattern. syslogd writes messages in arrival order, so once
# the last expected line is there, all earlier messages are too.
logged() {
	local i=0
	while ! grep -q -- "$2" "$1/tmp/syslog" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le 50 ] || return 1
		sleep 0.1
	done
}

mode_of() { stat -c %a "$1" 2>/dev/null; }
text_has() { printf '%s\n' "$1" | grep -q -- "$2"; }
text_lacks() { ! text_has "$1" "$2"; }
file_lacks() { ! grep -q -- "$2" "$1"; }

# snapshot ROOT: every file, directory and link under /etc with mode, size and
# content hash, to prove that a second run changes nothing.
snapshot() {
	(cd "$1" && find etc | LC_ALL=C sort | while IFS= read -r p; do
		if [ -f "$p" ]; then
			echo "$p $(stat -c %a "$p") $(md5sum <"$p")"
		elif [ -L "$p" ]; then
			echo "$p -> $(readlink "$p")"
		else
			echo "$p $(stat -c %a "$p")"
		fi
	done)
}

# uci_get ROOT PATH: the fake uci, inside the root.
uci_get() { in_root "$1" uci -q get "$2"; }

# fw_section ROOT TYPE NAME: the @TYPE[i] index of the firewall section named NAME.
fw_section() {
	local i=0 n
	while uci_get "$1" "firewall.@$2[$i]" >/dev/null; do
		n=$(uci_get "$1" "firewall.@$2[$i].name")
		[ "$n" = "$3" ] && { echo "$i"; return 0; }
		i=$((i + 1))
	done
	return 1
}

# fw_count ROOT TYPE NAME: how many firewall sections of TYPE have that name.
fw_count() {
	local i=0 c=0
	while uci_get "$1" "firewall.@$2[$i]" >/dev/null; do
		[ "$(uci_get "$1" "firewall.@$2[$i].name")" = "$3" ] && c=$((c + 1))
		i=$((i + 1))
	done
	echo "$c"
}

install_defaults() { cp "$DEFAULTS" "$1/etc/uci-defaults/90-weft"; }

# ------------------------------------------------------------------- lint --

lint() {
	local f sc_args
	# Every shell file this project ships or runs for OpenWrt.
	set -- "$INIT" "$DEFAULTS" "$HERE/run.sh" "$FAKES"/* \
		"$REPO/scripts/cross.sh" "$REPO/scripts/build-ipk.sh" "$REPO/scripts/size-report.sh" \
		"$REPO/scripts/openwrt-components.sh" \
		"$REPO/scripts/build-apk.sh" "$REPO/scripts/package-common.sh" "$HERE/apk-tools.sh"
	for f in "$@"; do
		check "sh -n ${f#"$REPO"/}" sh -n "$f"
		check "busybox ash -n ${f#"$REPO"/}" "$BUSYBOX" sh -n "$f"
	done
	if command -v shellcheck >/dev/null 2>&1; then
		# Each file names its dialect (dash, the closest to BusyBox ash
		# that shellcheck knows) in a directive.
		sc_args="-x"
		for f in "$@"; do
			check "shellcheck ${f#"$REPO"/}" shellcheck $sc_args "$f"
		done
	else
		skip "shellcheck is not installed (apt-get install shellcheck): not linted"
	fi
	check_eq "init script runs through rc.common" "#!/bin/sh /etc/rc.common" "$(head -n 1 "$INIT")"
	check "init script and uci-defaults are executable in the tree" \
		test -x "$INIT" -a -x "$DEFAULTS"
}

# ------------------------------------------------------------ init script --

expect_start_log() {
	cat <<'EOF'
procd_open_service [weft] [/etc/init.d/weft]
procd_open_instance
procd_set_param [command] [/usr/sbin/weft] [daemon] [-c] [/etc/config/weft]
procd_set_param [respawn] [3600] [5] [0]
procd_set_param [stdout] [1]
procd_set_param [stderr] [1]
procd_set_param [term_timeout] [10]
procd_close_instance
procd_open_trigger
procd_add_reload_trigger [weft]
procd_add_interface_trigger [interface.*] [mesh] [/etc/init.d/weft] [reload]
procd_add_interface_trigger [interface.*] [mesh0] [/etc/init.d/weft] [reload]
procd_close_trigger
procd_close_service [set]
EOF
}

# rc ROOT ACTION: runs /etc/init.d/weft ACTION with a fresh procd log;
# sets RC_STATUS and RC_OUT (stdout and stderr).
rc() {
	: >"$1/tmp/procd.log"
	RC_OUT=$(in_root "$1" /etc/init.d/weft "$2" 2>&1)
	RC_STATUS=$?
}

procd_log() { cat "$1/tmp/procd.log"; }

test_init() {
	local r
	r=$(new_root init)
	cp "$SHIPPED" "$r/etc/config/weft"
	mkdir -p "$r/etc/weft"
	(umask 077 && echo "$KEY_TEXT" >"$r/etc/weft/private.key")

	rc "$r" enable
	check_eq "enable: exit status" 0 "$RC_STATUS"
	check_eq "enable: start link S80weft" "../init.d/weft" "$(readlink "$r/etc/rc.d/S80weft")"
	check_eq "enable: stop link K10weft" "../init.d/weft" "$(readlink "$r/etc/rc.d/K10weft")"
	rc "$r" enabled
	check_eq "enabled: reports enabled" 0 "$RC_STATUS"

	rc "$r" start
	check_eq "start: exit status" 0 "$RC_STATUS"
	check_eq "start: procd instance, command line, respawn, logd, triggers" \
		"$(printf 'action [start]\n'; expect_start_log)" "$(procd_log "$r")"
	check "start: configuration checked with weft check-config" \
		grep -qx "check-config -c /etc/config/weft" "$r/tmp/weft.calls"
	check "start: directories for state_file and control_socket" \
		test -d "$r/tmp/lib/weft" -a -d "$r/tmp/run"

	rc "$r" reload
	check_eq "reload (running): exit status" 0 "$RC_STATUS"
	check_eq "reload (running): re-checks, refreshes the instance and triggers, then SIGHUP" \
		"$(printf 'action [reload]\nprocd_lock\nprocd_running [weft]\n'; expect_start_log
		printf 'procd_send_signal [weft] [*] [HUP]')" "$(procd_log "$r")"

	# A second mesh interface, named by device: triggers follow the
	# section name and the ifname.
	printf "\nconfig interface 'wifi'\n\toption ifname 'phy0-mesh0'\n\toption type 'wireless'\n" >>"$r/etc/config/weft"
	rc "$r" start
	check_eq "start: one interface trigger per logical name and ifname" \
		"procd_add_interface_trigger [interface.*] [mesh] [/etc/init.d/weft] [reload]
procd_add_interface_trigger [interface.*] [mesh0] [/etc/init.d/weft] [reload]
procd_add_interface_trigger [interface.*] [wifi] [/etc/init.d/weft] [reload]
procd_add_interface_trigger [interface.*] [phy0-mesh0] [/etc/init.d/weft] [reload]" \
		"$(grep interface_trigger "$r/tmp/procd.log")"

	# An invalid change is refused by reload; the daemon keeps running.
	cp "$r/etc/config/weft" "$r/tmp/weft.good"
	printf "\nconfig weft 'broken'\n\toption log_level 'INVALID'\n" >>"$r/etc/config/weft"
	rc "$r" reload
	check "reload (invalid config): fails" test "$RC_STATUS" -ne 0
	check_eq "reload (invalid config): no new instance, no signal" \
		"$(printf 'action [reload]\nprocd_lock')" "$(procd_log "$r")"
	check "reload (invalid config): log line with tag weft at daemon.err" \
		logged "$r" "daemon.err weft: refusing to reload: weft check-config rejected /etc/config/weft"
	check "reload (invalid config): check-config's message is logged" \
		logged "$r" "daemon.err weft: check-config: weft: /etc/config/weft:[0-9]*: invalid value"
	check "reload (invalid config): the daemon is still registered" test -e "$r/tmp/procd/weft"

	rc "$r" start
	check "start (invalid config): refused on stderr too" \
		text_has "$RC_OUT" "refusing to start: weft check-config rejected"
	check "start (invalid config): no instance opened" \
		file_lacks "$r/tmp/procd.log" procd_open_instance
	check "start (invalid config): log line" logged "$r" "daemon.err weft: refusing to start"
	cp "$r/tmp/weft.good" "$r/etc/config/weft"

	rc "$r" stop
	check_eq "stop: exit status" 0 "$RC_STATUS"
	check_eq "stop: stop_service, then procd stops the instance" \
		"$(printf 'action [stop]\nprocd_lock\nprocd_kill [weft] []')" "$(procd_log "$r")"
	check "stop: logged" logged "$r" "daemon.info weft: stopping"

	rc "$r" reload
	check_eq "reload (stopped): starts the daemon, no SIGHUP to a fresh process" \
		"$(printf 'action [reload]\nprocd_lock\nprocd_running [weft]\n'; expect_start_log)" \
		"$(procd_log "$r" | grep -v 'interface_trigger.*\(wifi\|phy0\)')"
	check "reload (stopped): no signal" file_lacks "$r/tmp/procd.log" procd_send_signal

	rm "$r/etc/weft/private.key"
	rc "$r" start
	check "start (no key): no instance opened" file_lacks "$r/tmp/procd.log" procd_open_instance
	check "start (no key): log line names the key file" \
		logged "$r" "daemon.err weft: refusing to start: private key /etc/weft/private.key is missing"

	# The key file named by the configuration is the one checked.
	sed -i "s|option private_key_file '/etc/weft/private.key'|option private_key_file '/etc/weft/other.key'|" \
		"$r/etc/config/weft"
	(umask 077 && echo "$KEY_TEXT" >"$r/etc/weft/other.key")
	rc "$r" start
	check "start (key from private_key_file): instance opened" \
		grep -q procd_open_instance "$r/tmp/procd.log"

	rm "$r/usr/sbin/weft"
	rc "$r" start
	check "start (no binary): refused with a log line" \
		logged "$r" "daemon.err weft: refusing to start: /usr/sbin/weft is missing"
}

# ------------------------------------------------------------ uci-defaults --

# apply ROOT: runs /etc/uci-defaults as OpenWrt does; sets APPLY_OUT.
apply() {
	APPLY_OUT=$(in_root "$1" apply-uci-defaults 2>&1)
}

# main_options FILE-IN-ROOT PACKAGE ROOT: "option=value" lines of the main
# section, as uci shows them.
main_options() {
	in_root "$3" uci -q show "$2" | sed -n "s/^$2\.main\.//p" | LC_ALL=C sort
}

test_defaults_fresh() {
	local r snap rule zone
	r=$(new_root fresh)
	install_defaults "$r"
	apply "$r"
	check_eq "fresh: uci-defaults returns 0 (and is removed)" "uci-defaults: 90-weft status 0" "$APPLY_OUT"
	check "fresh: script removed after success" test ! -e "$r/etc/uci-defaults/90-weft"

	check "fresh: default /etc/config/weft written" test -s "$r/etc/config/weft"
	check_eq "fresh: /etc/config/weft mode" 600 "$(mode_of "$r/etc/config/weft")"
	cp "$SHIPPED" "$r/etc/config/shipped"
	check_eq "fresh: written defaults equal the main section of the shipped weft.config" \
		"$(main_options /etc/config/shipped shipped "$r")" "$(main_options /etc/config/weft weft "$r")"

	check_eq "fresh: private key generated" "$KEY_TEXT" "$(cat "$r/etc/weft/private.key" 2>/dev/null)"
	check_eq "fresh: private key mode" 600 "$(mode_of "$r/etc/weft/private.key")"
	check_eq "fresh: key directory mode" 700 "$(mode_of "$r/etc/weft")"
	check_eq "fresh: nothing else in the key directory" "private.key" "$(ls -A "$r/etc/weft")"
	check "fresh: key generation logged" logged "$r" "weft: uci-defaults: generated the node's private key"
	check "fresh: the key is never printed (output)" text_lacks "$APPLY_OUT" "$KEY_TEXT"
	check "fresh: the key is never printed (syslog)" file_lacks "$r/tmp/syslog" "$KEY_TEXT"

	zone=$(fw_section "$r" zone mesh)
	check "fresh: firewall zone 'mesh' added" test -n "$zone"
	check_eq "fresh: mesh zone input/output/forward (nothing routed in clear)" "REJECT ACCEPT REJECT" \
		"$(uci_get "$r" "firewall.@zone[$zone].input") $(uci_get "$r" "firewall.@zone[$zone].output") $(uci_get "$r" "firewall.@zone[$zone].forward")"
	check_eq "fresh: mesh zone covers the raw mesh network only" "mesh -" \
		"$(uci_get "$r" "firewall.@zone[$zone].network") $(uci_get "$r" "firewall.@zone[$zone].device" || echo -)"
	zone=$(fw_section "$r" zone weft)
	check "fresh: firewall zone 'weft' added" test -n "$zone"
	check_eq "fresh: weft zone input/output/forward" "REJECT ACCEPT ACCEPT" \
		"$(uci_get "$r" "firewall.@zone[$zone].input") $(uci_get "$r" "firewall.@zone[$zone].output") $(uci_get "$r" "firewall.@zone[$zone].forward")"
	check_eq "fresh: weft zone covers weft's tunnels" "weft+" "$(uci_get "$r" "firewall.@zone[$zone].device")"

	rule=$(fw_section "$r" rule Allow-Weft-Babel)
	check_eq "fresh: Babel rule, tunnels only (src proto dest_port target family)" "weft udp 6696 ACCEPT ipv6" \
		"$(for o in src proto dest_port target family; do uci_get "$r" "firewall.@rule[$rule].$o"; done | xargs)"
	rule=$(fw_section "$r" rule Allow-Weft-Tunnel-ICMPv6)
	check_eq "fresh: ICMPv6 rule inside the tunnels" "weft icmp ACCEPT ipv6 packet-too-big echo-request" \
		"$(for o in src proto target family icmp_type; do uci_get "$r" "firewall.@rule[$rule].$o"; done | xargs)"
	rule=$(fw_section "$r" rule Allow-Weft-E2E)
	check_eq "fresh: end-to-end rule, inside the tunnels (src proto dest_port target family)" "weft udp 6699 ACCEPT ipv6" \
		"$(for o in src proto dest_port target family; do uci_get "$r" "firewall.@rule[$rule].$o"; done | xargs)"
	rule=$(fw_section "$r" rule Allow-Weft-Discovery)
	check_eq "fresh: discovery rule (src proto dest_port target family)" "mesh udp 6698 ACCEPT ipv6" \
		"$(for o in src proto dest_port target family; do uci_get "$r" "firewall.@rule[$rule].$o"; done | xargs)"
	rule=$(fw_section "$r" rule Allow-Weft-WireGuard)
	check_eq "fresh: WireGuard rule (src proto dest_port target family)" "mesh udp 51820-51899 ACCEPT any" \
		"$(for o in src proto dest_port target family; do uci_get "$r" "firewall.@rule[$rule].$o"; done | xargs)"
	rule=$(fw_section "$r" rule Allow-Weft-ICMPv6)
	check_eq "fresh: ICMPv6 rule for neighbour discovery" \
		"mesh icmp ACCEPT ipv6 neighbour-solicitation neighbour-advertisement packet-too-big echo-request" \
		"$(for o in src proto target family icmp_type; do uci_get "$r" "firewall.@rule[$rule].$o"; done | xargs)"
	check_eq "fresh: the stock rules and zones are kept" "Allow-DHCP-Renew Allow-Ping lan wan" \
		"$(uci_get "$r" 'firewall.@rule[0].name') $(uci_get "$r" 'firewall.@rule[1].name') $(uci_get "$r" 'firewall.@zone[0].name') $(uci_get "$r" 'firewall.@zone[1].name')"
	check_eq "fresh: everything committed (nothing left staged)" "" "$(ls -A "$r/tmp/.uci" 2>/dev/null)"
	check "fresh: firewall not running, so not reloaded" test ! -e "$r/tmp/firewall.calls"

	# Idempotent: a second run changes nothing at all.
	snap=$(snapshot "$r")
	install_defaults "$r"
	apply "$r"
	check_eq "fresh, second run: returns 0" "uci-defaults: 90-weft status 0" "$APPLY_OUT"
	check_eq "fresh, second run: /etc unchanged (files, modes, contents)" "$snap" "$(snapshot "$r")"
	check_eq "fresh, second run: no key generated (one genkey in all)" 1 "$(grep -c '^genkey' "$r/tmp/weft.calls")"
}

test_defaults_existing() {
	local r before rule
	r=$(new_root existing)
	cat >"$r/etc/config/weft" <<'EOF'
# my own configuration
config weft 'main'
	option private_key_file '/etc/weft/custom.key'
	option listen_port '52000'
EOF
	chmod 0644 "$r/etc/config/weft"
	before=$(md5sum <"$r/etc/config/weft")
	touch "$r/tmp/fw4-running"
	install_defaults "$r"
	apply "$r"
	check_eq "existing config: returns 0" "uci-defaults: 90-weft status 0" "$APPLY_OUT"
	check_eq "existing config: content untouched" "$before" "$(md5sum <"$r/etc/config/weft")"
	check_eq "existing config: mode untouched" 644 "$(mode_of "$r/etc/config/weft")"
	check_eq "existing config: key made where private_key_file says, mode 600" 600 \
		"$(mode_of "$r/etc/weft/custom.key")"
	check "existing config: no key at the default path" test ! -e "$r/etc/weft/private.key"
	rule=$(fw_section "$r" rule Allow-Weft-WireGuard)
	check_eq "existing config: WireGuard ports follow listen_port" "52000-52079" \
		"$(uci_get "$r" "firewall.@rule[$rule].dest_port")"
	check_eq "existing config: running firewall reloaded once" "reload" "$(cat "$r/tmp/firewall.calls" 2>/dev/null)"

	# An existing key is never replaced.
	(umask 077 && echo "my-own-key" >"$r/etc/weft/custom.key")
	install_defaults "$r"
	apply "$r"
	check_eq "existing key: kept" "my-own-key" "$(cat "$r/etc/weft/custom.key")"
	check_eq "existing key, nothing to add: firewall not reloaded again" "reload" "$(cat "$r/tmp/firewall.calls")"
}

test_defaults_user_rules() {
	local r zone
	r=$(new_root user-rules)
	cat >>"$r/etc/config/firewall" <<'EOF'

config zone
	option name 'mesh'
	option input 'ACCEPT'
	list network 'adhoc'

config rule
	option name 'Allow-Weft-Babel'
	option src 'mesh'
	option proto 'udp'
	option dest_port '6697'
	option target 'ACCEPT'
EOF
	install_defaults "$r"
	apply "$r"
	check_eq "user rules: returns 0" "uci-defaults: 90-weft status 0" "$APPLY_OUT"
	zone=$(fw_section "$r" zone mesh)
	check_eq "user rules: the user's mesh zone is kept as it is" "ACCEPT adhoc" \
		"$(uci_get "$r" "firewall.@zone[$zone].input") $(uci_get "$r" "firewall.@zone[$zone].network")"
	check_eq "user rules: one mesh zone" 1 "$(fw_count "$r" zone mesh)"
	check_eq "user rules: the user's Babel rule is not duplicated" 1 "$(fw_count "$r" rule Allow-Weft-Babel)"
	check_eq "user rules: ... nor changed" 6697 \
		"$(uci_get "$r" "firewall.@rule[$(fw_section "$r" rule Allow-Weft-Babel)].dest_port")"
	check_eq "user rules: the missing rules are added" "1 1 1" \
		"$(fw_count "$r" rule Allow-Weft-WireGuard) $(fw_count "$r" rule Allow-Weft-ICMPv6) $(fw_count "$r" rule Allow-Weft-Discovery)"
}

test_defaults_genkey_fails() {
	local r
	r=$(new_root genkey-fails)
	touch "$r/tmp/weft-genkey-fails"
	install_defaults "$r"
	apply "$r"
	check_eq "genkey fails: non-zero, so the script stays for the next boot" \
		"uci-defaults: 90-weft status 1" "$APPLY_OUT"
	check "genkey fails: script kept" test -e "$r/etc/uci-defaults/90-weft"
	check_eq "genkey fails: no key and no partial key file" "" "$(ls -A "$r/etc/weft")"
	check "genkey fails: logged" logged "$r" "daemon.err weft: uci-defaults: could not generate a private key"
	rm "$r/tmp/weft-genkey-fails"
	apply "$r"
	check_eq "genkey fails, next boot: succeeds" "uci-defaults: 90-weft status 0" "$APPLY_OUT"
	check_eq "genkey fails, next boot: key mode" 600 "$(mode_of "$r/etc/weft/private.key")"
	check_eq "genkey fails, next boot: firewall rules not duplicated" "1 1 1" \
		"$(fw_count "$r" rule Allow-Weft-Babel) $(fw_count "$r" rule Allow-Weft-WireGuard) $(fw_count "$r" rule Allow-Weft-ICMPv6)"
}

test_defaults_no_firewall() {
	local r
	r=$(new_root no-firewall)
	rm "$r/etc/config/firewall"
	install_defaults "$r"
	apply "$r"
	check_eq "no firewall package: returns 0" "uci-defaults: 90-weft status 0" "$APPLY_OUT"
	check "no firewall package: no firewall config created" test ! -e "$r/etc/config/firewall"
	check "no firewall package: says which ports to open" logged "$r" "open UDP 6696, 6698 and the WireGuard ports by hand"
}

# ----------------------------------------------------- feed Makefile (SDK) --

# Evaluates openwrt-package/Makefile with a minimal stand-in for the OpenWrt
# build system and runs its install rule into a staging directory.
test_feed_makefile() {
	local t=$WORK/sdk stage version
	if ! command -v make >/dev/null 2>&1; then
		not_ok "feed Makefile: GNU make is missing"
		return
	fi
	mkdir -p "$t/include" "$t/feeds/packages/lang/rust" "$t/install/bin" "$t/stage"
	cat >"$t/rules.mk" <<'EOF'
INCLUDE_DIR:=$(TOPDIR)/include
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
LN:=ln -sf
EOF
	cat >"$t/include/package.mk" <<'EOF'
define BuildPackage
endef
EOF
	cat >"$t/feeds/packages/lang/rust/rust-package.mk" <<'EOF'
RUST_ARCH_DEPENDS:=@(aarch64||arm||mips||mipsel||x86_64)
define RustBinPackage
endef
EOF
	cat >"$t/driver.mk" <<'EOF'
include $(PKG_MAKEFILE)
$(eval $(Package/weft))
.PHONY: show install
show:
	@echo 'name=$(PKG_NAME)'
	@echo 'version=$(PKG_VERSION)'
	@echo 'build_depends=$(PKG_BUILD_DEPENDS)'
	@echo 'depends=$(DEPENDS)'
	@echo 'section=$(SECTION)'
	@echo 'conffiles=$(strip $(Package/weft/conffiles))'
install:
	$(call Package/weft/install,$(STAGE))
EOF
	printf '#!/bin/sh\necho weft\n' >"$t/install/bin/weft"
	make_feed() {
		make -s -f "$t/driver.mk" -C "$REPO/openwrt-package" TOPDIR="$t" \
			PKG_MAKEFILE="$REPO/openwrt-package/Makefile" \
			PKG_BUILD_DIR="$REPO" PKG_INSTALL_DIR="$t/install" STAGE="$t/stage" "$@"
	}
	stage=$(make_feed show 2>&1) || { not_ok "feed Makefile: evaluates" "$stage"; return; }
	version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n 1)
	check_eq "feed Makefile: PKG_NAME" "name=weft" "$(echo "$stage" | grep '^name=')"
	check_eq "feed Makefile: PKG_VERSION is Cargo.toml's" "version=$version" "$(echo "$stage" | grep '^version=')"
	check_eq "feed Makefile: builds with rust/host" "build_depends=rust/host" "$(echo "$stage" | grep '^build_depends=')"
	check_eq "feed Makefile: DEPENDS (rust arches, kmod-wireguard)" \
		'depends=@(aarch64||arm||mips||mipsel||x86_64) +kmod-wireguard' "$(echo "$stage" | grep '^depends=')"
	check_eq "feed Makefile: section" "section=net" "$(echo "$stage" | grep '^section=')"
	check_eq "feed Makefile: conffiles" "conffiles=/etc/config/weft /etc/weft/" \
		"$(echo "$stage" | grep '^conffiles=')"
	if out=$(make_feed install 2>&1); then ok "feed Makefile: install rule runs"; else not_ok "feed Makefile: install rule runs" "$out"; fi
	check_eq "feed Makefile: installed files and modes" \
		"600 etc/config/weft
755 etc/init.d/weft
755 etc/uci-defaults/90-weft
755 usr/sbin/weft" \
		"$(cd "$t/stage" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | while read -r f; do
			echo "$(stat -c %a "$f") $f"
		done)"
	check_eq "feed Makefile: rpcd plugin is the binary under /usr/libexec/rpcd" "../../sbin/weft" \
		"$(readlink "$t/stage/usr/libexec/rpcd/weft")"
	check "feed Makefile: installs the files of this tree" \
		cmp -s "$t/stage/etc/init.d/weft" "$INIT"
}

# ------------------------------------------------------------------- main --

make_base
lint
test_init
test_defaults_fresh
test_defaults_existing
test_defaults_user_rules
test_defaults_genkey_fails
test_defaults_no_firewall
test_feed_makefile

echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" = 0 ]
