-- expect: ELIMIT
-- message: instruction limit
-- catches every error and tries again
for i = 1, math.huge do
  local ok = pcall(function() for j = 1, 1e9 do end end)
end
