-- dual_momentum: relative momentum picks the strongest risky assets;
-- absolute momentum sends a pick that has not beaten the cash hurdle (or
-- the safe asset) to the safe asset or to cash.
--
-- Idea: Antonacci, "Dual Momentum Investing" (McGraw-Hill, 2014) and
-- "Risk Premia Harvesting Through Dual Momentum" (2012): his Global
-- Equities Momentum holds whichever of US and non-US equities had the
-- higher return over the last 12 months, but only while that return beats
-- Treasury bills; otherwise it holds aggregate bonds.
--
-- Params:
--   lookback integer rows over which momentum is measured, >= 1 (252,
--                    about 12 months of daily data)
--   skip     integer most recent rows left out of the measure, >= 0 (0;
--                    21 gives the "12-1" variant)
--   top_k    integer how many risky assets are held, >= 1 (1)
--   risky    string  symbols of the risky assets ("" = every asset but
--                    the safe one)
--   safe     string  symbol of the safe asset ("" = none: cash)
--   absolute string  the absolute-momentum test: "cash" (a pick's momentum
--                    must beat the hurdle compounded over the lookback,
--                    default), "safe" (it must beat the safe asset's own
--                    momentum; needs `safe`), "none" (relative momentum only)
--   hurdle   number  annual cash return for the "cash" test, [-1, 1] (0)
--
-- Momentum of asset j on a decision: m_j = P[t - skip] / P[t - skip -
-- lookback] - 1 (closes; t today). An asset has momentum only when both
-- closes exist and it has a price today. The risky assets with momentum
-- are ranked by m_j, highest first (a tie goes to the earlier asset); the
-- first top_k are the picks. Each of the top_k slots holds 1/top_k: a pick
-- that passes the absolute test (m_j > threshold, strictly) fills its slot;
-- a pick that fails it, and a slot with no pick (fewer risky assets with
-- momentum than top_k, e.g. in the first lookback + skip rows), goes to the
-- safe asset, or stays in cash without one (or while the safe asset has no
-- price today). Threshold: "cash": (1 + hurdle)^(lookback / P) - 1, P =
-- ctx.periods_per_year; "safe": the safe asset's momentum (no momentum:
-- every pick fails); "none": -infinity.
-- The picks and their momentum are kept in ctx.state.picks / ctx.state.momentum.
-- Schedule: monthly.
local assets = require "lib.assets"

local function isnan(x) return x ~= x end

return {
  name = "dual_momentum",
  description = "Antonacci's dual momentum: the top risky assets by momentum, else the safe asset",
  params = {
    lookback = { type = "integer", default = 252, min = 1 },
    skip = { type = "integer", default = 0, min = 0 },
    top_k = { type = "integer", default = 1, min = 1 },
    risky = { type = "string", default = "" },
    safe = { type = "string", default = "" },
    absolute = { type = "string", default = "cash", values = { "cash", "safe", "none" } },
    hurdle = { type = "number", default = 0, min = -1, max = 1 },
  },
  schedule = "monthly",
  init = function(ctx, p)
    local safe = assets.list(ctx, p.safe, "safe", "dual_momentum")
    if #safe > 1 then error("dual_momentum: safe names more than one asset", 0) end
    local s = safe[1]
    if p.absolute == "safe" and not s then
      error("dual_momentum: absolute = \"safe\" needs a safe asset (safe =)", 0)
    end
    local risky = assets.list(ctx, p.risky, "risky", "dual_momentum")
    if p.risky == "" then
      for j = 1, ctx.n do
        if j ~= s then risky[#risky + 1] = j end
      end
    end
    for _, j in ipairs(risky) do
      if j == s then error(string.format("dual_momentum: %s is both risky and safe", ctx.assets[j]), 0) end
    end
    if #risky == 0 then error("dual_momentum: no risky asset", 0) end
    if p.top_k > #risky then
      error(string.format("dual_momentum: top_k is %d but there are %d risky assets", p.top_k, #risky), 0)
    end
    ctx.state.risky, ctx.state.safe = risky, s
  end,
  rebalance = function(ctx, p)
    local risky, s = ctx.state.risky, ctx.state.safe
    local L, skip = p.lookback, p.skip
    local P = ctx:prices(L + skip + 1)
    local full = #P == L + skip + 1
    local function momentum(j)
      if not full or isnan(ctx:price(j)) then return nil end
      local a, b = P:get(1, j), P:get(#P - skip, j)
      if isnan(a) or isnan(b) then return nil end
      return b / a - 1
    end
    local ranked, mom = {}, {}
    for _, j in ipairs(risky) do
      local m = momentum(j)
      if m then
        mom[j] = m
        ranked[#ranked + 1] = j
      end
    end
    table.sort(ranked, function(a, b)
      if mom[a] ~= mom[b] then return mom[a] > mom[b] end
      return a < b
    end)
    local threshold
    if p.absolute == "cash" then
      threshold = (1 + p.hurdle) ^ (L / ctx.periods_per_year) - 1
    elseif p.absolute == "safe" then
      threshold = momentum(s) or math.huge
    else
      threshold = -math.huge
    end
    local w = {}
    for j = 1, ctx.n do w[j] = 0 end
    local slot = 1 / p.top_k
    local picks = {}
    for k = 1, p.top_k do
      local j = ranked[k]
      if j and mom[j] > threshold then
        w[j] = w[j] + slot
        picks[#picks + 1] = ctx.assets[j]
      elseif s and not isnan(ctx:price(s)) then
        w[s] = w[s] + slot
      end
    end
    ctx.state.picks, ctx.state.momentum = picks, mom
    return w
  end,
}
