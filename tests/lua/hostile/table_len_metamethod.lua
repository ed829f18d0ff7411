-- expect: ELUA
-- message: plain tables
local t = setmetatable({}, { __len = function() return math.maxinteger end, __index = {} })
table.insert(t, 1, 'x')
