-- expect: ELIMIT
-- message: instruction limit
-- the handler runs when the budget error unwinds; it loops too
local x <close> = setmetatable({}, { __close = function() while true do end end })
while true do end
