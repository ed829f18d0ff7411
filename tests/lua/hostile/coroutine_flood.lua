-- expect: ELIMIT
-- message: coroutine limit of 1000 live coroutines reached
local keep = {}
for i = 1, 1e6 do
  keep[i] = coroutine.create(function() coroutine.yield() end)
  coroutine.resume(keep[i])
end
