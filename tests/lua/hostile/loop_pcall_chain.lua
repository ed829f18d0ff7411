-- expect: ELIMIT
-- message: instruction limit
local n = 0
while true do
  pcall(function()
    pcall(function() while true do n = n + 1 end end)
  end)
end
