-- sixty_forty: the classic balanced portfolio, a fixed share in equities and
-- the rest in bonds, rebalanced back to it every month.
--
-- Idea: the "balanced fund" benchmark of institutional investing (e.g.
-- Ilmanen, "Expected Returns", 2011, ch. 4; Vanguard's research on the
-- 60/40 portfolio). Nothing is estimated.
--
-- Assets are chosen by symbol (lib/assets.lua: a comma-separated list; an
-- asset class of several symbols is split equally among them):
--   equity        string   symbols of the equity sleeve ("" = the first asset)
--   bonds         string   symbols of the bond sleeve ("" = the second asset)
--   equity_weight number   share of the value in equities, [0, 1] (0.6);
--                          bonds get 1 - equity_weight
-- Assets named by neither get 0. A symbol outside the universe, an asset in
-- both sleeves, or a universe of one asset with the defaults is an error at
-- init. Weights are returned as given, so an asset without a price today
-- keeps its holding (the engine's rule for fixed baskets).
--
-- Schedule: monthly (the first trading day of each month).
-- C counterpart: the fixed built-in with the same weights.
local assets = require "lib.assets"

local function sleeves(ctx, p)
  local eq = assets.list(ctx, p.equity, "equity", "sixty_forty")
  local bd = assets.list(ctx, p.bonds, "bonds", "sixty_forty")
  if p.equity == "" then eq = { 1 } end
  if p.bonds == "" then bd = { 2 } end
  if #eq == 0 or #bd == 0 then error("sixty_forty: a sleeve names no asset", 0) end
  for _, j in ipairs(eq) do
    if j > ctx.n then error("sixty_forty: the universe has no first asset", 0) end
  end
  for _, j in ipairs(bd) do
    if j > ctx.n then
      error("sixty_forty: the universe has one asset; name the bond sleeve (bonds =) or add an asset", 0)
    end
    for _, k in ipairs(eq) do
      if j == k then error(string.format("sixty_forty: %s is in both sleeves", ctx.assets[j]), 0) end
    end
  end
  return eq, bd
end

return {
  name = "sixty_forty",
  description = "a fixed equity share (60%) and the rest in bonds, rebalanced monthly",
  params = {
    equity = { type = "string", default = "" },
    bonds = { type = "string", default = "" },
    equity_weight = { type = "number", default = 0.6, min = 0, max = 1 },
  },
  schedule = "monthly",
  init = function(ctx, p)
    local eq, bd = sleeves(ctx, p)
    local w = {}
    for j = 1, ctx.n do w[j] = 0 end
    for _, j in ipairs(eq) do w[j] = p.equity_weight / #eq end
    for _, j in ipairs(bd) do w[j] = (1 - p.equity_weight) / #bd end
    ctx.state.weights = w
  end,
  rebalance = function(ctx, p)
    return ctx.state.weights
  end,
}
