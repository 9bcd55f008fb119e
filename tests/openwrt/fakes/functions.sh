# Stand-in for OpenWrt's /lib/functions.sh (the UCI part), written for
# weft's tests. config_load reads /etc/config/PACKAGE directly: a UCI file is
# a list of `config`, `option` and `list` calls, which is how OpenWrt's
# uci_load evaluates `uci export` too. Anonymous sections are named cfgN.
# shellcheck shell=dash
# shellcheck disable=SC1090 # the config file is only known at run time

append() {
	# shellcheck disable=SC2034 # value and sep are read inside eval
	local var="$1" value="$2" sep="${3:- }"
	eval "$var=\${$var:+\${$var}\${value:+\$sep}}\$value"
}

list_contains() {
	local var="$1" str="$2" val
	eval "val=\" \${$var} \""
	[ "${val%% "$str" *}" != "$val" ]
}

package() { return 0; }

config() {
	local type="$1" name="$2"
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	name=${name:-cfg$CONFIG_NUM_SECTIONS}
	append CONFIG_SECTIONS "$name"
	CONFIG_SECTION=$name
	config_set "$name" TYPE "$type"
}

option() {
	local varname="$1"
	shift
	config_set "$CONFIG_SECTION" "$varname" "$*"
}

list() {
	local varname="$1" len
	shift
	config_get len "$CONFIG_SECTION" "${varname}_LENGTH" 0
	len=$((len + 1))
	config_set "$CONFIG_SECTION" "${varname}_ITEM$len" "$*"
	config_set "$CONFIG_SECTION" "${varname}_LENGTH" "$len"
	append "CONFIG_${CONFIG_SECTION}_$varname" "$*" " "
}

config_set() {
	eval "CONFIG_$1_$2=\$3"
}

# config_get VAR SECTION OPTION [DEFAULT] | config_get SECTION OPTION
config_get() {
	case "$3" in
	'') eval "echo \"\${CONFIG_$1_$2:-\${3}}\"" ;;
	*) eval "$1=\${CONFIG_$2_$3:-\$4}" ;;
	esac
}

config_get_bool() {
	local _tmp
	config_get _tmp "$2" "$3" "$4"
	case "$_tmp" in
	1 | on | true | yes | enabled) _tmp=1 ;;
	0 | off | false | no | disabled) _tmp=0 ;;
	*) _tmp=$4 ;;
	esac
	eval "$1=\$_tmp"
}

config_foreach() {
	local function="$1" type="$2" section cfgtype
	shift 2
	for section in $CONFIG_SECTIONS; do
		config_get cfgtype "$section" TYPE
		[ -n "$type" ] && [ "$cfgtype" != "$type" ] && continue
		"$function" "$section" "$@"
	done
}

config_load() {
	local s
	for s in $CONFIG_SECTIONS; do unset "CONFIG_${s}_TYPE"; done
	CONFIG_SECTIONS=
	CONFIG_NUM_SECTIONS=0
	CONFIG_SECTION=
	[ -f "/etc/config/$1" ] && . "/etc/config/$1"
	return 0
}
