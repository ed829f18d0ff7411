-- expect: ELUA
-- message: stack overflow
-- closing an errored wrapped coroutine runs its handlers; nested 20,000 deep
local function chain(n)
  if n == 0 then return end
  coroutine.wrap(function()
    local x <close> = setmetatable({}, { __close = function() chain(n - 1) end })
    error('e')
  end)()
end
chain(20000)
