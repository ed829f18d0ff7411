-- expect: ELIMIT
-- message: instruction limit
local co = coroutine.create(function()
  while true do pcall(function() while true do end end) end
end)
while true do coroutine.resume(co) end
