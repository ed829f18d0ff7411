-- lib/assets.lua: asset choice by symbol for the shipped strategies.
--
-- A parameter naming assets is a string of symbols separated by commas
-- ("SPI" or "SPI, SII"); spaces around a symbol are ignored. An empty string
-- names no asset. A symbol outside the strategy's universe (ctx.assets) is
-- an error naming the parameter and the symbol.
local M = {}

-- The 1-based index of symbol sym in ctx.assets, or nil.
function M.find(ctx, sym)
  local assets = ctx.assets
  for j = 1, ctx.n do
    if assets[j] == sym then return j end
  end
  return nil
end

-- The indices named by the comma-separated list s (parameter `what`, for
-- messages), in the order given, without repeats.
function M.list(ctx, s, what, who)
  local out, seen = {}, {}
  for item in string.gmatch(s, "[^,]+") do
    local sym = string.match(item, "^%s*(.-)%s*$")
    if sym ~= "" then
      local j = M.find(ctx, sym)
      if not j then
        error(string.format("%s: %s names %q, which is not among the strategy's assets", who, what, sym), 0)
      end
      if not seen[j] then
        seen[j] = true
        out[#out + 1] = j
      end
    end
  end
  return out
end

return M
