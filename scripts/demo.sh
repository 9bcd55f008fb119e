#!/bin/sh
# make demo: a live weft mesh in network namespaces, narrated.
#
# Four routers in a ring with one chord, each a network namespace joined by
# veth "cables", run weft. A network CA issues each router a credential; on
# every cable the routers find each other, check credentials and build a
# WireGuard tunnel, and Babel runs inside the tunnels. The demo waits for
# the routes, shows what one router knows, pings across the mesh, shows a
# fifth router without a credential getting nothing, cuts a cable and shows
# the reroute. Everything it creates is removed on every exit path (Ctrl-C
# included).
#
# Needs root on Linux. On a fresh Debian machine it installs what it needs
# (scripts/install-deps.sh, wireguard-go among it: the tunnels run in
# userspace when the kernel has no WireGuard) and builds weft with cargo.
#
# Environment:
#   WEFT=/path/to/weft   use this binary instead of building one
#   DEMO_SKIP_DEPS=1     do not run scripts/install-deps.sh
#   DEMO_PAUSE=SECONDS   pause between steps (default 0), for presenting
#
# Each step is a function: see main() at the bottom.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG="wd$$"                  # unique per run: namespace names, temp dir
WORK=""                     # temp dir with configs, sockets, logs
NODES="a b c d"
ROGUE=e                     # a router without a credential, cabled to A
ALL="$NODES $ROGUE"
# Cables: ring a-b-c-d-a plus the chord a-c, and the rogue's cable to A.
LINKS="a:b b:c c:d d:a a:c"
ROGUE_LINK="a:e"
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
num() { case $1 in a) echo 1 ;; b) echo 2 ;; c) echo 3 ;; d) echo 4 ;; e) echo 5 ;; esac; }
in_ns() { n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
v6() { echo "fd77::$(num "$1")"; }           # the address node $1 announces
v4() { echo "10.77.0.$(num "$1")"; }
# The transport address of node $1 (end to end: what relays route hop by hop).
taddr() { "$WEFT" status --json -s "$(sock "$1")" | sed -n 's/.*"transport_address": *"\([^"]*\)".*/\1/p' | head -n 1; }
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
	for n in $ALL; do
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
	if ! ip link add "$TAG-wgt" type wireguard 2>/dev/null; then
		command -v wireguard-go >/dev/null 2>&1 ||
			die "the kernel has no WireGuard and wireguard-go is missing (apt-get install wireguard-go)"
	fi
	ip link del "$TAG-wgt" 2>/dev/null || true
	# wireguard-go's sockets live here; each router mounts its own over it.
	mkdir -p /run/wireguard
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-demo-$TAG.XXXXXX")
}

step_topology() {
	step "Building a mesh of four routers: A, B, C, D"
	say "Each router is a Linux network namespace; each cable a veth pair."
	say ""
	say "  E - A ------- B"
	say "      | \\       |"
	say "      |   \\     |"
	say "      |     \\   |"
	say "      D ------- C"
	say ""
	say "Every router owns two addresses on its loopback, fd77::N and 10.77.0.N,"
	say "and nobody has told any router how to reach the others. That is weft's job."
	say "E is an intruder: it has plugged a cable into A but holds no credential."
	for n in $ALL; do
		ip netns add "$(ns "$n")"
		in_ns "$n" ip link set lo up
		in_ns "$n" ip addr add "$(v6 "$n")/128" dev lo
		in_ns "$n" ip addr add "$(v4 "$n")/32" dev lo
		mkdir -p "$WORK/$n"
	done
	for l in $LINKS $ROGUE_LINK; do
		cable "${l%:*}" "${l#*:}"
	done
}

# First three bytes of node $1's public key in hex: weft names a tunnel
# weft<these>-<ifindex of the cable>. Worked out once, with the key.
keyhex() { cat "$WORK/$1/keyhex"; }

step_credentials() {
	step "Making the network's CA and a credential for each router"
	say "A router's identity is its WireGuard key pair. The network's CA (an Ed25519"
	say "key kept offline) signs a credential for each router: its public key, its"
	say "name, the prefixes it may announce, and how long all that is valid."
	(umask 077 && "$WEFT" ca init --out "$WORK/ca" >/dev/null)
	for n in $ALL; do
		(umask 077 && "$WEFT" genkey >"$WORK/$n/private.key")
		"$WEFT" pubkey <"$WORK/$n/private.key" >"$WORK/$n/public.key"
		"$WEFT" pubkey --signing <"$WORK/$n/private.key" >"$WORK/$n/signing.key"
		base64 -d <"$WORK/$n/public.key" | od -An -tx1 -N3 | tr -d ' \n' >"$WORK/$n/keyhex"
	done
	for n in $NODES; do
		"$WEFT" ca sign --ca "$WORK/ca" --name "router-$n" --public-key "$(cat "$WORK/$n/public.key")" \
			--signing-key "$(cat "$WORK/$n/signing.key")" --group "$(group_of "$n")" \
			--prefix "$(v6 "$n")/128" --prefix "$(v4 "$n")/32" --valid-for 1d \
			--out "$WORK/$n/node.cred" >/dev/null
	done
	printf '%s    # weft ca init --out ca; weft ca sign --ca ca --name router-a ... --out node.cred%s\n' "$DIM" "$OFF"
	printf '%s    # weft cert show node.cred --ca ca --mesh-prefix fd77:77::/48%s\n' "$DIM" "$OFF"
	"$WEFT" cert show "$WORK/a/node.cred" --ca "$WORK/ca" --mesh-prefix fd77:77::/48 2>&1 | sed 's/^/      /'
	say "E made itself a key too, but no CA signed it."
	pause
}

# The group in router $1's credential (group policy, step_policy).
group_of() {
	case $1 in
	a) echo admins ;;
	b) echo guests ;;
	c) echo members ;;
	d) echo servers ;;
	esac
}

# One cable between $1 and $2: device "to-$2" in $1 and "to-$1" in $2, each
# with one short link-local address (fe80::N), which is all Babel needs.
cable() {
	ip link add "to-$2" netns "$(ns "$1")" type veth peer name "to-$1" netns "$(ns "$2")"
	for end in "$1:$2" "$2:$1"; do
		here=${end%:*}; there=${end#*:}
		in_ns "$here" sysctl -qw "net.ipv6.conf.to-$there.addr_gen_mode=1"
		in_ns "$here" ip addr add "fe80::$(num "$here")/64" dev "to-$there"
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
	option metrics_file '$WORK/$1/weft.prom'
	option hosts_file '0'
	option private_key_file '$WORK/$1/private.key'
	option credential_file '$WORK/$1/node.cred'
	list ca_public_key '$(cat "$WORK/ca/ca.pub")'
	option mesh_prefix 'fd77:77::/48'
EOF
	for l in $LINKS $ROGUE_LINK; do
		a=${l%:*}; b=${l#*:}
		if [ "$a" = "$1" ]; then peer=$b; elif [ "$b" = "$1" ]; then peer=$a; else continue; fi
		printf "\nconfig interface 'to_%s'\n\toption ifname 'to-%s'\n\toption type 'wired'\n\toption wireguard '1'\n" \
			"$peer" "$peer"
	done
	printf "\nconfig announce\n\toption prefix '%s/128'\n" "$(v6 "$1")"
	printf "\nconfig announce\n\toption prefix '%s/32'\n" "$(v4 "$1")"
	# The same policy on every router; only the servers' enforce it.
	printf "\nconfig policy 'guests_no_ssh'\n\toption src_group 'guests'\n\toption dest_group 'servers'\n"
	printf "\toption proto 'tcp'\n\tlist dest_port '22'\n\toption action 'drop'\n"
}

step_start() {
	step "Starting weft on every router"
	say "Router A's configuration (UCI, as in /etc/config/weft on OpenWrt):"
	for n in $ALL; do
		node_config "$n" >"$WORK/$n/weft.conf"
	done
	sed 's/^/      /' "$WORK/a/weft.conf"
	for n in $ALL; do
		# Not through in_ns: a function run in the background is a subshell,
		# and $! would be its pid, not weft's (ip netns exec, sh and weft
		# exec one another). ip netns exec gives each router its own mount
		# namespace, so each mounts its own wireguard-go socket directory.
		# shellcheck disable=SC2016 # $0 and $1 are the inner shell's
		ip netns exec "$(ns "$n")" sh -c 'mount -t tmpfs tmpfs /run/wireguard && exec "$0" daemon -c "$1"' \
			"$WEFT" "$WORK/$n/weft.conf" >"$WORK/$n/weft.log" 2>&1 &
		PIDS="$PIDS $n:$!"
	done
	say "On each cable weft sends beacons with the router's key and credential."
	say "Two routers that accept each other's credentials agree on ports and build"
	say "a WireGuard tunnel just for that cable; Babel (RFC 8966) then runs inside"
	say "the tunnel: Hellos find neighbours, Updates carry the routes, and weft"
	say "installs them in the kernel (protocol 119) if the origin's credential"
	say "grants the prefix."
	T0=$(now)
}

# Number of weft's forwarding routes in node $1 (both families; not the
# unreachable routes that hold a withdrawn prefix for a while).
route_count() {
	{
		in_ns "$1" ip -6 route show proto 119 type unicast
		in_ns "$1" ip -4 route show proto 119 type unicast
	} | grep -c . || true
}

# Waits until every router has a route to the 3 others' 4 addresses (the two
# it announces, and the mesh and transport addresses weft derives from its key).
wait_converged() {
	want=12
	deadline=$(($(date +%s) + 60))
	while :; do
		done_=1
		for n in $NODES; do
			[ "$(route_count "$n")" -ge $want ] || done_=0
		done
		[ $done_ = 1 ] && return 0
		[ "$(date +%s)" -lt $deadline ] || {
			for n in $NODES; do echo "--- $n: $(route_count "$n") routes" >&2; tail -5 "$WORK/$n/weft.log" >&2; done
			die "no convergence within 60 s"
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
		until [ "$(via "$a" "$(taddr "$b")")" = "$b" ] && [ "$(via "$b" "$(taddr "$a")")" = "$a" ]; do
			[ "$(date +%s)" -lt $deadline ] || die "routes did not settle within 30 s"
			sleep 0.2
		done
	done
}

step_converge() {
	step "Waiting for the routers to learn the mesh"
	wait_converged
	say "After $(since "$T0") s every router has a route to every other router's"
	say "addresses (3 routers x 4 addresses = 12 routes each)."
	wait_settled
	say "After $(since "$T0") s all of them use the shortest paths."
	pause
}

step_show() {
	step "What router A knows"
	say "Its neighbours, one per tunnel, with the name and expiry of their"
	say "credentials (cost 96: a healthy link):"
	show_weft a neighbours
	say "One WireGuard interface per neighbour, weft<key>-<cable> (without kernel"
	say "WireGuard, wireguard-go runs each one on a TUN device); E has none:"
	show a sh -c "ip -br link show | grep '^weft'"
	say "Every router it knows of, with what its credential grants (the inventory):"
	show_weft a nodes
	say "Its routes. METRIC adds up link costs; INSTALLED marks the one in use, the"
	say "others are kept for a quick switch (FEASIBLE: usable without risk of a loop);"
	say "'local' ones are A's own addresses, which it announces:"
	show_weft a routes
	say "And what weft put in the kernel's routing table:"
	show a ip -6 route show proto 119
	show a ip -4 route show proto 119
	say "IPv4 routes point at IPv6 link-local next hops (RFC 9229) inside the"
	say "tunnels: no IPv4 addresses are needed anywhere."
	pause
}

step_rogue() {
	step "What E, the router without a credential, got"
	say "E's beacons reached A, and A said no:"
	grep 'refused a tunnel' "$WORK/a/weft.log" | head -n 1 | sed 's/^/      /'
	say "E has no tunnel, no neighbour and no route:"
	show_weft e neighbours
	show e ip route show proto 119
	show e ping -c 1 -W 1 "$(v6 c)"
	[ "$(route_count e)" = 0 ] || die "E got routes"
	if in_ns a ip -br link show | grep -q "^weft$(keyhex e)"; then die "A built a tunnel to E"; fi
	say "Nothing: no tunnel, so no Babel, so no routes either way."
	pause
}

step_ping() {
	step "Pinging across the mesh"
	say "B and D share no cable, so traffic between them crosses A or C. End to"
	say "end, it goes into weft-e2e, encrypted to D's key, inside packets to D's"
	say "transport address, which Babel routes hop by hop through the tunnels:"
	show b ip route get "$(v6 d)"
	show b ip route get "$(taddr d)"
	say "The relay forwards ciphertext it cannot read (ttl=64: to the ping, B and"
	say "D are neighbours):"
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
# The neighbour (a b c d) whose tunnel node $1 uses to reach address $2.
via() {
	d=$(out_dev "$1" "$2")
	for n in $NODES; do
		case $d in "weft$(keyhex "$n")-"*) echo "$n"; return ;; esac
	done
	echo "${d:-none}"
}

# Lines of a capture file that hold 16 bytes of 0xe2 (the marked pings).
marked_lines() { tcpdump -r "$1" -X 2>/dev/null | grep -c 'e2e2 e2e2 e2e2 e2e2 e2e2 e2e2 e2e2 e2e2' || true; }

# capture NODE FILE DEV: tcpdump in the background until it listens.
capture() {
	# Not through in_ns: $! must be tcpdump itself (ip netns exec execs it).
	ip netns exec "$(ns "$1")" tcpdump -i "$3" -U -w "$2" >"$2.log" 2>&1 &
	CAPS="$CAPS $!"
	deadline=$(($(date +%s) + 10))
	until grep -q 'listening on' "$2.log" 2>/dev/null; do
		[ "$(date +%s)" -lt $deadline ] || die "tcpdump did not start in $1"
		sleep 0.1
	done
}

step_relay() {
	step "What a relay sees"
	say "B pings D with a payload of 0xe2 bytes. A and C, the routers on the way,"
	say "capture on every interface they have, their tunnels included: that is what"
	say "they decrypt with their own keys. B captures on weft-e2e, for comparison."
	CAPS=""
	capture a "$WORK/relay-a.pcap" any
	capture c "$WORK/relay-c.pcap" any
	capture b "$WORK/sender-b.pcap" weft-e2e
	show b ping -c 5 -i 0.2 -p e2 "$(v6 d)"
	# tcpdump -U writes each packet as it gets it: stop once B's capture holds
	# the last reply (the relays forwarded it before B got it).
	deadline=$(($(date +%s) + 10))
	until [ "$(marked_lines "$WORK/sender-b.pcap")" -ge 20 ] || [ "$(date +%s)" -ge $deadline ]; do
		sleep 0.1
	done
	for p in $CAPS; do kill -INT "$p" 2>/dev/null || true; done
	for p in $CAPS; do wait "$p" 2>/dev/null || true; done
	relays=$(($(marked_lines "$WORK/relay-a.pcap") + $(marked_lines "$WORK/relay-c.pcap")))
	sender=$(marked_lines "$WORK/sender-b.pcap")
	say "Lines of 0xe2 payload in the captures: B's weft-e2e $sender, the relays A and C"
	say "$relays: they forwarded only ciphertext (and B's own capture shows the"
	say "payload was there to be seen)."
	[ "$sender" -gt 0 ] || die "B's capture saw no payload: the check proves nothing"
	[ "$relays" = 0 ] || die "a relay saw the payload in clear"
	pause
}

# Opens a TCP connection from router $1 to $2 port $3 (2 s at most).
tcp_open() { in_ns "$1" timeout 5 socat /dev/null "TCP6:[$2]:$3,connect-timeout=2" >/dev/null 2>&1; }

step_policy() {
	step "Group policy: who may open what"
	say "Credentials carry groups: A is in admins, B in guests, D in servers. Every"
	say "router has the same policy section; D, in dest_group servers, enforces it:"
	sed -n '/^config policy/,$p' "$WORK/d/weft.conf" | sed 's/^/      /'
	say "D listens on TCP 22. The sender is known by the end-to-end tunnel its"
	say "packets come through (its key), not by a source address it could forge."
	in_ns d socat TCP6-LISTEN:22,fork,reuseaddr SYSTEM:true >/dev/null 2>&1 &
	LISTENER=$!
	deadline=$(($(date +%s) + 10))
	until tcp_open a "$(v6 d)" 22; do
		[ "$(date +%s)" -lt $deadline ] || die "admin A cannot open D's port 22"
		sleep 0.2
	done
	say "  A (admins) -> D:22   opened"
	if tcp_open b "$(v6 d)" 22; then
		die "guest B opened D's port 22 against the policy"
	fi
	say "  B (guests) -> D:22   dropped by D"
	kill "$LISTENER" 2>/dev/null || true
	wait "$LISTENER" 2>/dev/null || true
	st=$("$WEFT" status --json -s "$(sock d)" | tr -d '\n ')
	matched=$(echo "$st" | sed -n 's/.*"name":"guests_no_ssh"[^}]*"packets":\([0-9]*\).*/\1/p')
	say "D's status counts ${matched:-?} packets matched by guests_no_ssh (weft status: policy)."
	pause
}

step_insider() {
	step "An insider that lies (in the simulator)"
	if ! "$WEFT" simulate --help >/dev/null 2>&1; then
		say "(this weft was built without the simulator: skipped)"
		return 0
	fi
	say "A member with a valid credential announces another node's prefixes under"
	say "that node's router-id with a newer seqno. Routers refuse it: the origin signs"
	say "what it announces, and no set signed by n0 covers that seqno. A ring of 8"
	say "simulated routers, n4 lying about n0:"
	f="$WORK/insider.json"
	links=""
	for i in 0 1 2 3 4 5 6 7; do
		links="$links{\"source\":\"n$i\",\"target\":\"n$(((i + 1) % 8))\"},"
	done
	for sig in true false; do
		printf '{"links":[%s],"credentials":true,"signatures":%s,"adversaries":[{"node":"n4","kind":"spoof_origin","victim":"n0","start_s":30}]}\n' \
			"${links%,}" "$sig" >"$f"
		out=$("$WEFT" simulate "$f" --json | tr -d '\n ')
		hij=$(echo "$out" | sed -n 's/.*"hijacked_pairs":\([0-9]*\).*/\1/p')
		held=$(echo "$out" | sed -n 's/.*"held_announcements":\([0-9]*\).*/\1/p')
		if [ $sig = true ]; then
			say "  with origin signatures:    $hij (node, destination) pairs hijacked; $held spoofed Updates held back"
			[ "$hij" = 0 ] || die "the spoof got through signatures"
		else
			say "  without them (control):    $hij pairs hijacked: their traffic would go to the liar"
		fi
	done
	pause
}

step_cut() {
	step "Cutting the A-C cable"
	say "A reaches C (its transport address) over the chord, through its tunnel to C:"
	show a ip route get "$(taddr c)"
	T1=$(now)
	in_ns a ip link set to-c down
	in_ns c ip link set to-a down
	say "Cable pulled (both ends lose carrier). weft sees the link go, drops the"
	say "tunnel on it and reroutes..."
	deadline=$(($(date +%s) + 20))
	while :; do
		d=$(via a "$(taddr c)")
		if [ "$d" != none ] && [ "$d" != c ] && in_ns a ping -c 1 -W 1 "$(v6 c)" >/dev/null 2>&1; then
			break
		fi
		[ "$(date +%s)" -lt $deadline ] || die "no reroute within 20 s"
		sleep 0.1
	done
	say "A reaches C again after $(since "$T1") s, now through $(upper "$d") (two hops):"
	show a ip route get "$(taddr c)"
	show a ping -c 1 -W 1 "$(v6 c)"
	say "A's routes now: none goes through a tunnel to C any more."
	show_weft a routes
	pause
}

step_restore() {
	step "Plugging the A-C cable back in"
	say "Linux dropped the cable's IPv6 addresses with the carrier; like OpenWrt's"
	say "netifd would, the demo puts the link-local address back. weft notices the"
	say "interface, A and C find each other again, build a new tunnel, and Babel"
	say "resumes inside it."
	T2=$(now)
	for end in a:c c:a; do
		here=${end%:*}; there=${end#*:}
		in_ns "$here" ip link set "to-$there" up
		in_ns "$here" ip addr replace "fe80::$(num "$here")/64" dev "to-$there"
	done
	deadline=$(($(date +%s) + 45))
	until [ "$(via a "$(taddr c)")" = c ]; do
		[ "$(date +%s)" -lt $deadline ] || die "the direct route did not come back within 45 s"
		sleep 0.2
	done
	say "After $(since "$T2") s A uses the direct cable again:"
	show a ip route get "$(taddr c)"
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
	for n in $ALL; do
		left=$((left + $(route_count "$n")))
	done
	say "On a clean stop weft retracts its routes, removes them from the kernel and"
	say "deletes its tunnels:"
	say "$left of weft's routes left behind."
	step "Done. Removing the namespaces."
}

main() {
	trap cleanup EXIT
	trap 'exit 130' INT TERM HUP
	step_prepare
	step_topology
	step_credentials
	step_start
	step_converge
	step_show
	step_ping
	step_relay
	step_policy
	step_rogue
	step_cut
	step_restore
	step_insider
	step_stop
}

main "$@"
