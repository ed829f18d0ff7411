-- expect: ELUA
-- message: too many results to unpack
local t = {}
for i = 1, 100 do t[i] = i end
return table.unpack(t, 1, 1e8)
