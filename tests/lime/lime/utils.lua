-- Stand-in for LibreMesh's lime.utils: logging and splitting.
local utils = {}

function utils.log(fmt, ...)
	io.stderr:write(string.format(fmt, ...) .. "\n")
end

function utils.split(s, sep)
	local out = {}
	for part in (s .. sep):gmatch("(.-)" .. sep:gsub("%p", "%%%0")) do table.insert(out, part) end
	return out
end

return utils
