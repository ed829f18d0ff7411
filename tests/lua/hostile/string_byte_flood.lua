-- expect: ELUA
-- message: string slice too long
local s = ('x'):rep(2e6)
return s:byte(1, -1)
