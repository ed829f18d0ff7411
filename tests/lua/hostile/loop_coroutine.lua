-- expect: ELIMIT
-- message: instruction limit
local co = coroutine.wrap(function() while true do end end)
co()
