-- Drives protocol modules as lime-config does: configure(args) for every
-- entry of the lime 'network' section's protocols, then configure(args)
-- and setup_interface(dev, args) for every mesh device, then (unless told
-- not to) commits every package with saved changes, as `uci commit` does.
--   lua5.1 lime_config.lua CONFDIR SAVEDIR COMMIT(0|1) DEV...
local confdir, savedir, commit = arg[1], arg[2], arg[3] == "1"
local config = require("lime.config")
local utils = require("lime.utils")
local uci = require("uci").cursor(confdir, savedir)
config.set_uci_cursor(uci)

local protocols = config.get("network", "protocols", {})
for _, p in ipairs(protocols) do
	local args = utils.split(p, ":")
	local ok, proto = pcall(require, "lime.proto." .. args[1])
	if ok then proto.configure(args) end
end
for i = 4, #arg do
	local dev = arg[i]
	for _, p in ipairs(protocols) do
		local args = utils.split(p, ":")
		local ok, proto = pcall(require, "lime.proto." .. args[1])
		if ok then
			proto.configure(args)
			proto.setup_interface(dev, args)
		end
	end
end
if commit then
	-- A fresh cursor sees what the modules saved (the delta files).
	local c = require("uci").cursor(confdir, savedir)
	for k, _ in pairs(c:changes()) do assert(c:commit(k)) end
end
