#!/usr/bin/lua
--! LibreMesh protocol module for weft: zero-trust Babel mesh routing with a
--! WireGuard tunnel on every link (docs/OPENWRT.md in weft's sources).
--!
--! In /etc/config/lime-node or lime-community:
--!   config lime 'network'
--!     list protocols 'weft'            -- or 'weft:VLAN_ID:VLAN_PROTO:SUFFIX'
--!     option weft_mesh_prefix 'fd42:77:1::/48'
--!     list weft_ca_public_key 'BASE64'  -- or list weft_trusted_key 'BASE64'
--!     option weft_credential_file '/etc/weft/node.cred'
--!     option weft_hello_interval '4'
--!     list weft_announce '10.13.0.0/24'
--!
--! Like lime-proto-babeld: configure() is idempotent and writes the main
--! section, setup_interface() puts weft on a VLAN of each mesh device (802.1ad
--! id 20 and suffix "_weft" unless the protocol arguments say otherwise), and
--! both only uci:save(); lime-config commits. Sections this module writes
--! are named lm_net_* (LibreMesh's prefix) and replaced on every run;
--! everything else in /etc/config/weft, such as the key file path, is kept.

local config = require("lime.config")
local network = require("lime.network")
local utils = require("lime.utils")

local weft = {}

weft.configured = false
weft.DEFAULT_VLAN = 20
--! What runOnDevice runs after committing a new interface.
weft.RELOAD_CMD = "/etc/init.d/weft reload >/dev/null 2>&1"

local GENERATED = "^lm_net_"

--! The option 'weft_NAME' of lime's network section, for the main option NAME.
local MAIN_OPTIONS = { "mesh_prefix", "credential_file", "revocation_file", "private_key_file",
	"hello_interval", "update_interval", "log_level", "wireguard_backend" }
local MAIN_LISTS = { "ca_public_key", "trusted_key" }

local function vlan_args(args)
	return tonumber(args[2]) or weft.DEFAULT_VLAN, args[3] or "8021ad", args[4] or "_weft"
end

--! uci cannot set options in a package whose file does not exist.
local function ensure_package(uci)
	local path = uci:get_confdir() .. "/weft"
	local f = io.open(path, "a")
	if f then f:close() end
end

function weft.configure(args)
	if weft.configured then return end
	weft.configured = true

	utils.log("lime.proto.weft.configure(...)")

	local uci = config.get_uci_cursor()
	ensure_package(uci)

	--! What an earlier run generated goes; the interfaces come back through
	--! setup_interface.
	for _, t in ipairs({ "interface", "announce" }) do
		uci:foreach("weft", t, function(s)
			if s[".name"]:match(GENERATED) then uci:delete("weft", s[".name"]) end
		end)
	end

	uci:set("weft", "main", "weft")
	for _, name in ipairs(MAIN_OPTIONS) do
		local v = config.get("network", "weft_" .. name, false)
		if v then uci:set("weft", "main", name, v) end
	end
	for _, name in ipairs(MAIN_LISTS) do
		local v = config.get("network", "weft_" .. name, false)
		if v then uci:set("weft", "main", name, type(v) == "table" and v or { v }) end
	end
	if not uci:get("weft", "main", "private_key_file") then
		uci:set("weft", "main", "private_key_file", "/etc/weft/private.key")
	end

	local announces = config.get("network", "weft_announce", false)
	if type(announces) == "string" then announces = { announces } end
	for i, prefix in ipairs(announces or {}) do
		local name = "lm_net_announce_" .. i
		uci:set("weft", name, "announce")
		uci:set("weft", name, "prefix", prefix)
	end

	uci:save("weft")
end

--! The weft interface section for a VLAN device of `ifname`.
local function add_interface(uci, section, linux_dev, ifname)
	uci:set("weft", section, "interface")
	uci:set("weft", section, "ifname", linux_dev)
	--! Radios lose frames: wireless links get ETX link quality.
	uci:set("weft", section, "type", ifname:match("^wlan") and "wireless" or "auto")
	uci:set("weft", section, "wireguard", "1")
end

function weft.setup_interface(ifname, args)
	if not args["specific"] and ifname:match("^wlan%d+.ap") then
		utils.log("lime.proto.weft.setup_interface(%s, ...) ignored", ifname)
		return
	end

	utils.log("lime.proto.weft.setup_interface(%s, ...)", ifname)

	local vlanId, vlanProto, nameSuffix = vlan_args(args)
	local owrtInterfaceName, linuxVlanIfName, owrtDeviceName =
		network.createVlanIface(ifname, vlanId, nameSuffix, vlanProto)

	local uci = config.get_uci_cursor()

	if vlanId ~= 0 and (ifname:match("^eth") or ifname:match("^lan")) then
		uci:set("network", owrtDeviceName, "mtu", tostring(network.MTU_ETH_WITH_VLAN))
		uci:save("network")
	end

	ensure_package(uci)
	add_interface(uci, owrtInterfaceName, linuxVlanIfName, ifname)
	uci:save("weft")
end

--! At run time (a device that appeared after lime-config): the VLAN now,
--! its interface section committed, and weft reloaded to pick it up.
function weft.runOnDevice(linuxDev, args)
	utils.log("lime.proto.weft.runOnDevice(%s, ...)", linuxDev)

	local vlanId, vlanProto, nameSuffix = vlan_args(args)
	local vlanDev = linuxDev
	if vlanId ~= 0 then
		vlanDev = network.createVlan(linuxDev, vlanId, vlanProto)
	end

	local uci = config.get_uci_cursor()
	ensure_package(uci)
	add_interface(uci, network.sanitizeIfaceName(linuxDev) .. nameSuffix .. "_if", vlanDev, linuxDev)
	uci:commit("weft")
	os.execute(weft.RELOAD_CMD)
end

return weft
