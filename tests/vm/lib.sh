# shellcheck shell=dash
# shellcheck disable=SC2034 # WAITED and TRIES are read by the scripts
# Helpers shared by the VM guest scripts (tests/vm/wg_daemon/run,
# tests/vm/wg_relay/run), sourced from the payload directory. They expect
# IP, PING, WEFT, fails and (for stamp) start to be set by the script.

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

# Centiseconds since boot (/proc/uptime always has two decimals).
now_cs() {
	local u
	read -r u _ </proc/uptime
	echo "${u%.*}${u#*.}"
}
# Seconds, two decimals, since a now_cs value.
since() {
	local d=$(($(now_cs) - $1))
	printf '%d.%02d' $((d / 100)) $((d % 100))
}
# wait_until SECONDS CMD...: runs CMD every 0.2 s until it succeeds or the
# time is up; WAITED is the time it took (or gave up after).
wait_until() {
	local limit=$1 start
	shift
	start=$(now_cs)
	while :; do
		if "$@"; then
			WAITED=$(since "$start")
			return 0
		fi
		if [ $(($(now_cs) - start)) -ge $((limit * 100)) ]; then
			WAITED=$(since "$start")
			return 1
		fi
		sleep 0.2
	done
}

# Per-node values from ./vars: val a PUB -> $A_PUB.
val() {
	local n
	n=$(echo "$1" | tr "[:lower:]" "[:upper:]")
	eval "echo \"\${${n}_$2}\""
}

ns() { echo "weft-vm-$1"; }
sock() { echo "/tmp/$1/weft.sock"; }
wctl() { "$WEFT" "$2" --json -s "$(sock "$1")"; }

# ping_until NODE TARGET TRIES: one echo a second until a reply; TRIES is
# set to the attempt that got one.
ping_until() {
	local i=1
	while [ $i -le "$3" ]; do
		if $IP netns exec "$(ns "$1")" "$PING" -c 1 -W 1 "$2" >/dev/null 2>&1; then
			TRIES=$i
			return 0
		fi
		i=$((i + 1))
	done
	TRIES=$3
	return 1
}

# Each log line gets the seconds since the daemons started, through a FIFO
# so that $! stays the daemon's PID (ip netns exec execs it).
stamp() {
	local l
	while IFS= read -r l; do echo "$(since "$start") $l"; done
}
start_daemon() {
	[ -p "/tmp/$1/pipe" ] || mkfifo "/tmp/$1/pipe"
	stamp <"/tmp/$1/pipe" >>"/tmp/$1/log" &
	$IP netns exec "$(ns "$1")" "$WEFT" daemon -c "$PWD/$1/weft.config" >"/tmp/$1/pipe" 2>&1 &
	eval "PID_$1=\$!"
}
