-- Stand-in for LibreMesh's lime.network: the uci sections createVlanIface
-- writes (names as LibreMesh makes them), and a record of the run-time
-- VLANs createVlan would create through netifd and ip.
local config = require("lime.config")

local network = {}

network.MTU_ETH = 1500
network.MTU_ETH_WITH_VLAN = network.MTU_ETH - 4
network.limeIfNamePrefix = "lm_net_"
network.created_vlans = {}

function network.sanitizeIfaceName(name)
	return network.limeIfNamePrefix .. name:gsub("[^%w_]", "_")
end

function network.createVlanIface(linuxBaseIfname, vid, suffix, vlanProtocol)
	vid = tonumber(vid)
	suffix = suffix or ""
	local uci = config.get_uci_cursor()
	local ifaceName = network.sanitizeIfaceName(linuxBaseIfname) .. suffix .. "_if"
	local devName = network.sanitizeIfaceName(linuxBaseIfname)
	local linuxName = linuxBaseIfname
	if vid ~= 0 then
		devName = network.sanitizeIfaceName(linuxBaseIfname) .. suffix .. "_dev"
		linuxName = linuxBaseIfname:gsub("[^%w-]", "-") .. "_" .. vid
		uci:set("network", devName, "device")
		uci:set("network", devName, "type", vlanProtocol or "8021ad")
		uci:set("network", devName, "name", linuxName)
		uci:set("network", devName, "ifname", linuxBaseIfname)
		uci:set("network", devName, "vid", tostring(vid))
	end
	uci:set("network", ifaceName, "interface")
	uci:set("network", ifaceName, "proto", vid == 0 and "static" or "none")
	uci:set("network", ifaceName, "auto", "1")
	uci:set("network", ifaceName, "device", linuxName)
	uci:save("network")
	return ifaceName, linuxName, devName
end

function network.createVlan(linuxBaseIfname, vid, vlanProtocol)
	local name = linuxBaseIfname .. "_" .. vid
	table.insert(network.created_vlans, name)
	return name
end

return network
