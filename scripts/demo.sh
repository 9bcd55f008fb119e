#!/bin/sh
# make demo: a live weft mesh in network namespaces, narrated.
#
# Four routers in a ring with one chord, each a network namespace joined by
# veth "cables", run weft. The demo waits for the routes, shows what one
# router knows, pings across the mesh, cuts a cable and shows the reroute.
# Everything it creates is removed on every exit path (Ctrl-C included).
#
# Needs root on Linux. On a fresh Debian machine it installs what it needs
# (scripts/install-deps.sh) and builds weft with cargo.
#
# Environment:
#   WEFT=/path/to/weft   use this binary instead of building one
#   DEMO_SKIP_DEPS=1     do not run scripts/install-deps.sh
#   DEMO_PAUSE=SECONDS   pause between steps (default 0), for presenting
#
# Each step is a function, so that later steps (credentials, WireGuard
# tunnels, a refused rogue node) slot in between the existing ones: see
# main() at the bottom.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG="wd$$"                  # unique per run: namespace names, temp dir
WORK=""                     # temp dir with configs, sockets, logs
NODES="a b c d"
# Cables: ring a-b-c-d-a plus the chord a-c.
LINKS="a:b b:c c:d d:a a:c"
PIDS=""                     # "node:pid" of every weft we started
HELLO=1                     # seconds; short, so the demo is quick

# ---------------------------------------------------------------- output --

if [ -t 1 ]; then
	BOLD=$(printf '\033[1m'); DIM=$(printf '\033[2m'); OFF=$(printf '\033[0m')
else
	BOLD=""; DIM=""; OFF=""
fi

step() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$OFF"; }
say() { printf '    %s\n' "$*"; }
# Runs a command in node $1, showing it first as one would type it there.
show() {
	n=$1; shift
	printf '%s    %s# %s%s\n' "$DIM" "$(upper "$n")" "$*" "$OFF"
	in_ns "$n" "$@" 2>&1 | sed 's/^/      /'
}
# The same for the weft CLI (the demo adds -s: one control socket per node).
show_weft() {
	printf '%s    %s# weft %s%s\n' "$DIM" "$(upper "$1")" "$2" "$OFF"
	"$WEFT" "$2" -s "$(sock "$1")" 2>&1 | sed 's/^/      /'
}
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
pause() { [ "${DEMO_PAUSE:-0}" = 0 ] || sleep "$DEMO_PAUSE"; }

# Seconds since the epoch, with decimals (for timings).
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# ----------------------------------------------------------- the nodes --

ns() { echo "$TAG-$1"; }                      # namespace of node $1
num() { case $1 in a) echo 1 ;; b) echo 2 ;; c) echo 3 ;; d) echo 4 ;; esac; }
in_ns() { n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
v6() { echo "fd77::$(num "$1")"; }           # the address node $1 announces
v4() { echo "10.77.0.$(num "$1")"; }
sock() { echo "$WORK/$1/weft.sock"; }
upper() { echo "$1" | tr '[:lower:]' '[:upper:]'; }

# ------------------------------------------------------------- cleanup --

cleanup() {
	trap - EXIT INT TERM HUP
	for np in $PIDS; do
		kill -TERM "${np#*:}" 2>/dev/null || true
	done
	for np in $PIDS; do
		pid=${np#*:}
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$pid" 2>/dev/null || true
	done
	for n in $NODES; do
		# Anything still running inside would outlive its namespace.
		for pid in $(ip netns pids "$(ns "$n")" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null || true
		done
		ip netns del "$(ns "$n")" 2>/dev/null || true
	done
	[ -n "$WORK" ] && rm -rf "$WORK"
}

# --------------------------------------------------------------- steps --

step_prepare() {
	[ "$(uname -s)" = Linux ] || die "needs Linux (network namespaces)"
	[ "$(id -u)" = 0 ] || die "needs root: network namespaces and routes (try: sudo make demo)"
	if [ "${DEMO_SKIP_DEPS:-0}" != 1 ]; then
		step "Checking the tools the demo needs (scripts/install-deps.sh)"
		sh "$ROOT/scripts/install-deps.sh"
	fi
	if [ -z "${WEFT:-}" ]; then
		command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust from https://rustup.rs first"
		step "Building weft (cargo build)"
		(cd "$ROOT" && nice cargo build --quiet --bin weft)
		WEFT=$ROOT/target/debug/weft
	fi
	[ -x "$WEFT" ] || die "no weft binary at $WEFT"
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-demo-$TAG.XXXXXX")
}

step_topology() {
	step "Building a mesh of four routers: A, B, C, D"
	say "Each router is a Linux network namespace; each cable a veth pair."
	say ""
	say "      A ------- B"
	say "      | \\       |"
	say "      |   \\     |"
	say "      |     \\   |"
	say "      D ------- C"
	say ""
	say "Every router owns two addresses on its loopback, fd77::N and 10.77.0.N,"
	say "and nobody has told any router how to reach the others. That is weft's job."
	for n in $NODES; do
		ip netns add "$(ns "$n")"
		in_ns "$n" ip link set lo up
		in_ns "$n" sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1
		in_ns "$n" ip addr add "$(v6 "$n")/128" dev lo
		in_ns "$n" ip addr add "$(v4 "$n")/32" dev lo
		mkdir -p "$WORK/$n"
	done
	for l in $LINKS; do
		cable "${l%:*}" "${l#*:}"
	done
}

# One cable between $1 and $2: device "to-$2" in $1 and "to-$1" in $2, each
# with one short link-local address (fe80::N), which is all Babel needs.
cable() {
	ip link add "to-$2" netns "$(ns "$1")" type veth peer name "to-$1" netns "$(ns "$2")"
	for end in "$1:$2" "$2:$1"; do
		here=${end%:*}; there=${end#*:}
		in_ns "$here" sysctl -qw "net.ipv6.conf.to-$there.addr_gen_mode=1"
		in_ns "$here" ip addr add "fe80::$(num "$here")/64" dev "to-$there" nodad
		in_ns "$here" ip link set "to-$there" up
	done
}

# The UCI configuration of node $1 (what /etc/config/weft holds on a router).
node_config() {
	cat <<EOF
config weft 'main'
	option hello_interval '$HELLO'
	option state_file '$WORK/$1/state'
	option control_socket '$(sock "$1")'
EOF
	for l in $LINKS; do
		a=${l%:*}; b=${l#*:}
		if [ "$a" = "$1" ]; then peer=$b; elif [ "$b" = "$1" ]; then peer=$a; else continue; fi
		printf "\nconfig interface 'to_%s'\n\toption ifname 'to-%s'\n\toption type 'wired'\n" "$peer" "$peer"
	done
	printf "\nconfig announce\n\toption prefix '%s/128'\n" "$(v6 "$1")"
	printf "\nconfig announce\n\toption prefix '%s/32'\n" "$(v4 "$1")"
}

step_start() {
	step "Starting weft on every router"
	say "Router A's configuration (UCI, as in /etc/config/weft on OpenWrt):"
	for n in $NODES; do
		node_config "$n" >"$WORK/$n/weft.conf"
	done
	sed 's/^/      /' "$WORK/a/weft.conf"
	for n in $NODES; do
		# Not through in_ns: a function run in the background is a subshell,
		# and $! would be its pid, not weft's (ip netns exec execs weft).
		ip netns exec "$(ns "$n")" "$WEFT" daemon -c "$WORK/$n/weft.conf" >"$WORK/$n/weft.log" 2>&1 &
		PIDS="$PIDS $n:$!"
	done
	say "weft runs Babel (RFC 8966) on each cable: Hellos find neighbours, Updates"
	say "carry the routes, and weft installs them in the kernel (protocol 119)."
	T0=$(now)
}

# Number of weft's kernel routes in node $1 (both families).
route_count() {
	{ in_ns "$1" ip -6 route show proto 119; in_ns "$1" ip -4 route show proto 119; } | grep -c . || true
}

# Waits until every router has a route to the 3 others' 2 addresses.
wait_converged() {
	want=6
	deadline=$(($(date +%s) + 30))
	while :; do
		done_=1
		for n in $NODES; do
			[ "$(route_count "$n")" -ge $want ] || done_=0
		done
		[ $done_ = 1 ] && return 0
		[ "$(date +%s)" -lt $deadline ] || {
			for n in $NODES; do echo "--- $n: $(route_count "$n") routes" >&2; tail -5 "$WORK/$n/weft.log" >&2; done
			die "no convergence within 30 s"
		}
		sleep 0.2
	done
}

# Waits until every cable carries the traffic between its two ends: a
# route first learnt the long way round is replaced by the direct one at the
# latest with the next periodic update (4 Hello intervals).
wait_settled() {
	deadline=$(($(date +%s) + 30))
	for l in $LINKS; do
		a=${l%:*}; b=${l#*:}
		until [ "$(out_dev "$a" "$(v6 "$b")")" = "to-$b" ] && [ "$(out_dev "$b" "$(v4 "$a")")" = "to-$a" ]; do
			[ "$(date +%s)" -lt $deadline ] || die "routes did not settle within 30 s"
			sleep 0.2
		done
	done
}

step_converge() {
	step "Waiting for the routers to learn the mesh"
	wait_converged
	say "After $(since "$T0") s every router has a route to every other router's"
	say "addresses (3 routers x 2 addresses = 6 routes each)."
	wait_settled
	say "After $(since "$T0") s all of them use the shortest paths."
	pause
}

step_show() {
	step "What router A knows"
	say "Its neighbours, one per cable (cost 96: a healthy wired link):"
	show_weft a neighbours
	say "Its routes. METRIC adds up link costs; INSTALLED marks the one in use, the"
	say "others are kept for a quick switch (FEASIBLE: usable without risk of a loop);"
	say "'local' ones are A's own addresses, which it announces:"
	show_weft a routes
	say "And what weft put in the kernel's routing table:"
	show a ip -6 route show proto 119
	show a ip -4 route show proto 119
	say "IPv4 routes point at IPv6 link-local next hops (RFC 9229): no IPv4"
	say "addresses are needed on the cables."
	pause
}

step_ping() {
	step "Pinging across the mesh"
	say "B and D share no cable, so traffic between them crosses A or C"
	say "(ttl=63: one router on the way):"
	show b ip route get "$(v6 d)"
	show b ping -c 1 -W 1 "$(v6 d)"
	show b ping -c 1 -W 1 "$(v4 d)"
	failed=""
	for x in $NODES; do
		for y in $NODES; do
			[ "$x" = "$y" ] && continue
			in_ns "$x" ping -6 -c 1 -W 1 "$(v6 "$y")" >/dev/null 2>&1 || failed="$failed $x->$y(v6)"
			in_ns "$x" ping -c 1 -W 1 "$(v4 "$y")" >/dev/null 2>&1 || failed="$failed $x->$y(v4)"
		done
	done
	[ -z "$failed" ] || die "pings failed:$failed"
	say "All 24 pings between all pairs of routers, IPv6 and IPv4, went through."
	pause
}

# Device node $1 uses to reach address $2.
out_dev() { in_ns "$1" ip route get "$2" 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1; }

step_cut() {
	step "Cutting the A-C cable"
	say "A reaches C over the chord:"
	show a ip route get "$(v6 c)"
	T1=$(now)
	in_ns a ip link set to-c down
	in_ns c ip link set to-a down
	say "Cable pulled (both ends lose carrier). weft sees the link go and reroutes..."
	deadline=$(($(date +%s) + 20))
	while :; do
		d=$(out_dev a "$(v6 c)")
		if [ -n "$d" ] && [ "$d" != to-c ] && in_ns a ping -c 1 -W 1 "$(v6 c)" >/dev/null 2>&1; then
			break
		fi
		[ "$(date +%s)" -lt $deadline ] || die "no reroute within 20 s"
		sleep 0.1
	done
	say "A reaches C again after $(since "$T1") s, now through $(upper "${d#to-}") (two hops):"
	show a ip route get "$(v6 c)"
	show a ping -c 1 -W 1 "$(v6 c)"
	say "A's routes now: nothing goes through to-c any more."
	show_weft a routes
	pause
}

step_restore() {
	step "Plugging the A-C cable back in"
	say "Linux dropped the cable's IPv6 addresses with the carrier; like OpenWrt's"
	say "netifd would, the demo puts the link-local address back. weft notices the"
	say "interface and its address, and Babel resumes on it."
	T2=$(now)
	for end in a:c c:a; do
		here=${end%:*}; there=${end#*:}
		in_ns "$here" ip link set "to-$there" up
		in_ns "$here" ip addr replace "fe80::$(num "$here")/64" dev "to-$there" nodad
	done
	deadline=$(($(date +%s) + 30))
	until [ "$(out_dev a "$(v6 c)")" = to-c ]; do
		[ "$(date +%s)" -lt $deadline ] || die "the direct route did not come back within 30 s"
		sleep 0.2
	done
	say "After $(since "$T2") s A uses the direct cable again:"
	show a ip route get "$(v6 c)"
}

step_stop() {
	step "Stopping weft cleanly (SIGTERM)"
	for np in $PIDS; do
		kill -TERM "${np#*:}"
	done
	for np in $PIDS; do
		wait "${np#*:}" || true
	done
	PIDS=""
	left=0
	for n in $NODES; do
		left=$((left + $(route_count "$n")))
	done
	say "On a clean stop weft retracts its routes and removes them from the kernel:"
	say "$left of weft's routes left behind."
	step "Done. Removing the namespaces."
}

main() {
	trap cleanup EXIT
	trap 'exit 130' INT TERM HUP
	step_prepare
	step_topology
	step_start
	step_converge
	step_show
	step_ping
	step_cut
	step_restore
	step_stop
}

main "$@"
