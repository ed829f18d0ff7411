-- expect: ELIMIT
-- message: memory limit
local t = {}
for i = 1, 1e9 do t[#t + 1] = ('yyyyyyyyyy'):rep(100) .. i end
return table.concat(t)
