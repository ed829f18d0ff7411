-- expect: ELIMIT
-- message: memory limit of 16777216 bytes reached
local s = string.rep('x', 1e9)
