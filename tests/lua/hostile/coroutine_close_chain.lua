-- expect: ELUA
-- message: attempt to call a nil value (field 'close')
-- 20,000 nested coroutine.close crash 5.4.4; more than 1,000 live coroutines hit the
-- coroutine limit first, so the chain here is 900 long and ends at the missing close
local cos = {}
for i = 1, 900 do
  cos[i] = coroutine.create(function()
    local x <close> = setmetatable({}, { __close = function() if cos[i + 1] then coroutine.close(cos[i + 1]) end end })
    coroutine.yield()
  end)
  coroutine.resume(cos[i])
end
coroutine.close(cos[1])
