-- expect: ELUA
-- message: attempt to index a string value
-- the string metatable is locked
local mt = getmetatable('')
mt.__index = { upper = function() return 'pwned' end }
