-- expect: ELIMIT
-- message: instruction limit
-- each coroutine stays under its own hook count
while true do
  coroutine.wrap(function() for i = 1, 990 do end end)()
end
