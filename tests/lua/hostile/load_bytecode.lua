-- expect: ELUA
-- message: attempt to load a binary chunk
-- a binary chunk header; load is text-only
local bin = '\27Lua\84\0\25\147\r\n\26\n\4\8\8'
assert(load(bin))
