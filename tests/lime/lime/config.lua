-- Stand-in for LibreMesh's lime.config: options come from the merged
-- 'lime-autogen' package through one shared uci cursor.
local config = {}

config.uci = nil
config.UCI_CONFIG_NAME = "lime-autogen"

function config.get_uci_cursor()
	if config.uci == nil then config.uci = require("uci").cursor() end
	return config.uci
end

function config.set_uci_cursor(cursor)
	config.uci = cursor
end

function config.get(section, option, fallback)
	local v = config.get_uci_cursor():get(config.UCI_CONFIG_NAME, section, option)
	if v ~= nil then return v end
	return fallback
end

function config.get_bool(section, option, default)
	local v = config.get(section, option, default)
	return v == true or v == "1" or v == "on" or v == "true" or v == "enabled"
end

return config
