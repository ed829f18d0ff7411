-- expect: ELIMIT
-- message: instruction limit
-- catches the memory error and keeps allocating: each failed 1 MiB string.rep copied
-- 1 MiB first (2.9 s of C work before allocation was charged to the budget)
local keep = {}
while true do
  local ok, s = pcall(string.rep, 'x', 1 << 20)
  keep[#keep + 1] = ok and s or ('z'):rep(1000)
end
