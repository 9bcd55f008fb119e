# Stand-in for OpenWrt's /lib/functions/procd.sh, written for weft's tests.
#
# Instead of building a JSON message for procd over ubus, every call is
# appended to /tmp/procd.log as "name [arg1] [arg2] ...", so that a test sees
# the exact argument vectors. A little state under /tmp/procd/ mimics what
# procd would do with the message: a service closed with at least one
# instance is "running" until procd_kill, and a `set` without instances
# stops it, as procd does.
# shellcheck shell=dash

_procd_log() {
	local line="$1" arg
	shift
	for arg in "$@"; do line="$line [$arg]"; done
	echo "$line" >>/tmp/procd.log
}

procd_lock() { _procd_log procd_lock; }

procd_open_service() {
	_PROCD_SERVICE=$1
	_PROCD_INSTANCES=0
	_procd_log procd_open_service "$@"
}

procd_close_service() {
	local method=${1:-set}
	_procd_log procd_open_trigger
	service_triggers
	_procd_log procd_close_trigger
	_procd_log procd_close_service "$method"
	mkdir -p /tmp/procd
	if [ "$_PROCD_INSTANCES" -gt 0 ]; then
		echo running >"/tmp/procd/$_PROCD_SERVICE"
	elif [ "$method" = set ]; then
		rm -f "/tmp/procd/$_PROCD_SERVICE"
	fi
}

procd_open_instance() {
	_PROCD_INSTANCES=$((_PROCD_INSTANCES + 1))
	_procd_log procd_open_instance "$@"
}
procd_close_instance() { _procd_log procd_close_instance "$@"; }
procd_set_param() { _procd_log procd_set_param "$@"; }
procd_append_param() { _procd_log procd_append_param "$@"; }
procd_add_reload_trigger() { _procd_log procd_add_reload_trigger "$@"; }
procd_add_interface_trigger() { _procd_log procd_add_interface_trigger "$@"; }
procd_add_reload_interface_trigger() { _procd_log procd_add_reload_interface_trigger "$@"; }
procd_add_config_trigger() { _procd_log procd_add_config_trigger "$@"; }
procd_add_raw_trigger() { _procd_log procd_add_raw_trigger "$@"; }
procd_add_validation() { _procd_log procd_add_validation "$@"; }
procd_open_trigger() { _procd_log procd_open_trigger "$@"; }
procd_close_trigger() { _procd_log procd_close_trigger "$@"; }

procd_running() {
	_procd_log procd_running "$@"
	[ -e "/tmp/procd/$1" ]
}

procd_kill() {
	_procd_log procd_kill "$@"
	rm -f "/tmp/procd/$1"
}

procd_send_signal() {
	_procd_log procd_send_signal "$@"
}
