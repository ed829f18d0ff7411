-- expect: ELIMIT
-- message: instruction limit
-- each call is allowed, their work is charged
local s = ('a'):rep(2000)
while true do s:find('a*b') end
