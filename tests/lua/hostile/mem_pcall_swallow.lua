-- expect: ELIMIT
-- message: memory limit
-- catches the memory error and keeps allocating
local keep = {}
while true do
  local ok, s = pcall(string.rep, 'x', 1 << 20)
  keep[#keep + 1] = ok and s or ('z'):rep(1 << 16)
end
