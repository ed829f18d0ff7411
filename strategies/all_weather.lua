-- all_weather: a fixed mix over five asset classes meant to hold up in
-- every economic season (growth or inflation rising or falling).
--
-- Idea: Bridgewater Associates, "The All Weather Story" (2012) describes
-- balancing risk across assets that do well in each of the four
-- environments; the fixed-weight version below is the "All Seasons" mix
-- Ray Dalio gave for individual investors in T. Robbins, "Money: Master
-- the Game" (2014): 30% equities, 40% long-term bonds, 15% intermediate
-- bonds, 7.5% gold, 7.5% commodities.
--
-- Params (symbols are comma-separated lists; a class of several symbols is
-- split equally among them; "" = the class is missing from the universe):
--   equities, long_bonds, intermediate_bonds, gold, commodities  string ("")
--   w_equities 0.30, w_long_bonds 0.40, w_intermediate_bonds 0.15,
--   w_gold 0.075, w_commodities 0.075   number, [0, 1]; their sum <= 1 (the
--                 rest is cash)
--   fallback     string  where a missing class's weight goes once the
--                        substitutes below are exhausted: "pro_rata" (to the
--                        present classes in proportion to their weights,
--                        default) or "cash"
--
-- A missing class first passes its weight to its substitute, when that is
-- present: intermediate bonds <-> long bonds (duration differs, the role is
-- the same), gold <-> commodities (both inflation hedges). What is still
-- unplaced (equities missing, both bond classes missing, or both inflation
-- hedges missing) follows `fallback`. Every class missing, or a symbol in
-- two classes, is an error at init. Weights are returned as given (an
-- asset without a price today keeps its holding, as for a fixed basket).
-- The final weights per asset are in ctx.state.weights.
-- Schedule: quarterly (the first trading day of each quarter).
local assets = require "lib.assets"

local CLASSES = { "equities", "long_bonds", "intermediate_bonds", "gold", "commodities" }
local SUBSTITUTE = {
  long_bonds = "intermediate_bonds", intermediate_bonds = "long_bonds",
  gold = "commodities", commodities = "gold",
}

local function class_weights(ctx, p)
  local members, owner = {}, {}
  local total = 0
  for _, c in ipairs(CLASSES) do
    members[c] = assets.list(ctx, p[c], c, "all_weather")
    for _, j in ipairs(members[c]) do
      if owner[j] then
        error(string.format("all_weather: %s is in both %s and %s", ctx.assets[j], owner[j], c), 0)
      end
      owner[j] = c
    end
    total = total + p["w_" .. c]
  end
  if total > 1 + 1e-12 then
    error(string.format("all_weather: the class weights sum to %.17g, above 1", total), 0)
  end
  local cw, present, unplaced = {}, 0, 0
  for _, c in ipairs(CLASSES) do cw[c] = 0 end
  for _, c in ipairs(CLASSES) do
    local w = p["w_" .. c]
    if #members[c] > 0 then
      cw[c] = cw[c] + w
    elseif SUBSTITUTE[c] and #members[SUBSTITUTE[c]] > 0 then
      cw[SUBSTITUTE[c]] = cw[SUBSTITUTE[c]] + w
    else
      unplaced = unplaced + w
    end
  end
  for _, c in ipairs(CLASSES) do
    if #members[c] > 0 then present = present + cw[c] end
  end
  local any = false
  for _, c in ipairs(CLASSES) do any = any or #members[c] > 0 end
  if not any then error("all_weather: no asset class is present (name at least one)", 0) end
  if p.fallback == "pro_rata" and unplaced > 0 then
    if present > 0 then
      for _, c in ipairs(CLASSES) do
        if #members[c] > 0 then cw[c] = cw[c] / present * (present + unplaced) end
      end
    end
  end
  return cw, members
end

return {
  name = "all_weather",
  description = "an all-weather-style fixed mix of equities, bonds, gold and commodities, rebalanced quarterly",
  params = {
    equities = { type = "string", default = "" },
    long_bonds = { type = "string", default = "" },
    intermediate_bonds = { type = "string", default = "" },
    gold = { type = "string", default = "" },
    commodities = { type = "string", default = "" },
    w_equities = { type = "number", default = 0.30, min = 0, max = 1 },
    w_long_bonds = { type = "number", default = 0.40, min = 0, max = 1 },
    w_intermediate_bonds = { type = "number", default = 0.15, min = 0, max = 1 },
    w_gold = { type = "number", default = 0.075, min = 0, max = 1 },
    w_commodities = { type = "number", default = 0.075, min = 0, max = 1 },
    fallback = { type = "string", default = "pro_rata", values = { "pro_rata", "cash" } },
  },
  schedule = "quarterly",
  init = function(ctx, p)
    local cw, members = class_weights(ctx, p)
    local w = {}
    for j = 1, ctx.n do w[j] = 0 end
    for _, c in ipairs(CLASSES) do
      local m = members[c]
      for _, j in ipairs(m) do w[j] = cw[c] / #m end
    end
    ctx.state.weights, ctx.state.class_weights = w, cw
  end,
  rebalance = function(ctx, p)
    return ctx.state.weights
  end,
}
