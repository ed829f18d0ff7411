-- vol_target: a volatility-targeting overlay. A base basket is scaled by
-- k = min(leverage_cap, target / sigma), sigma the basket's estimated
-- volatility; the rest, 1 - k, is cash.
--
-- Idea: Moreira and Muir, "Volatility-Managed Portfolios" (J. Finance,
-- 2017); Harvey, Hoyle, Korgaonkar, Rattray, Sargaison and Van Hemert, "The
-- Impact of Volatility Targeting" (J. Portfolio Management, 2018).
--
-- Params:
--   base         string  the base basket: "equal" (1/n over the assets with a
--                        price, default) or "inverse_vol" (w_i proportional to
--                        1/sigma_i over the last `window` returns)
--   assets       string  symbols of the basket ("" = every asset)
--   target       number  annualised volatility target, (0, 2] (0.10)
--   leverage_cap number  largest scale k, (0, 1] (1). A strategy's weights
--                        sum to at most 1 (docs/lua.md), so the overlay
--                        never borrows: the cap is the largest share invested.
--   estimator    string  "rolling" (sample standard deviation, default) or
--                        "ewma" (zero-mean RiskMetrics, half-life `halflife`)
--   window       integer returns in the estimate, >= 2 (63)
--   halflife     number  EWMA half-life in rows, > 0 (21)
--   min_returns  integer returns needed before investing, >= 2 (20)
--   band         number  relative move of k that trades between monthly
--                        decisions, >= 0 (0.1)
--   daily        boolean check k after every close (on_bar) (true)
--
-- Returns are of consecutive closes, r_t = p_t / p_{t-1} - 1 (NaN when
-- either is missing), over the last min(window, t - 1) rows. The basket's
-- return on a row is sum_j b_j r_tj over the assets with b_j > 0; rows
-- where one of them is NaN are skipped. sigma = sqrt(P var), P =
-- ctx.periods_per_year, var the sample variance of those returns (rolling)
-- or the recursion e_1 = r_1^2, e_t = l e_{t-1} + (1 - l) r_t^2 with
-- l = 2^(-1/halflife) (ewma); this is keel_voltarget_scale's estimate.
-- With fewer than min_returns usable returns the targets are 0 (cash):
-- no estimate, no risk. sigma = 0 gives k = leverage_cap.
--
-- Schedule: monthly. On a schedule date the base basket is recomputed and
-- the targets are k b. With daily = true, on_bar then recomputes k after
-- every close with the base basket of the last decision and rebalances
-- (trade reason "strategy") when |k - k_last| > band * k_last, k_last the
-- scale last traded to (any k > 0 when k_last = 0). ctx.state.k, .sigma and
-- .base keep the last scale, estimate and basket.
local assets = require "lib.assets"

local function isnan(x) return x ~= x end

-- Consecutive-close returns of the last min(window, t - 1) rows: R[t][j].
local function returns(ctx, window)
  local k = ctx.t - 1
  if window < k then k = window end
  local P = ctx:prices(k + 1):totable()
  local R = {}
  for t = 1, #P - 1 do
    local row, a, b = {}, P[t], P[t + 1]
    for j = 1, ctx.n do row[j] = b[j] / a[j] - 1 end
    R[t] = row
  end
  return R
end

-- The basket's volatility estimate and its number of usable returns.
local function sigma(R, b, p, ppy)
  local lambda = p.estimator == "ewma" and 2 ^ (-1 / p.halflife) or 0
  local m, mean, m2, ew = 0, 0, 0, 0
  for t = 1, #R do
    local row, rb, ok = R[t], 0, true
    for j = 1, #b do
      if b[j] ~= 0 then
        if isnan(row[j]) then ok = false; break end
        rb = rb + b[j] * row[j]
      end
    end
    if ok then
      m = m + 1
      local d = rb - mean
      mean = mean + d / m
      m2 = m2 + d * (rb - mean)
      if m == 1 then ew = rb * rb else ew = lambda * ew + (1 - lambda) * rb * rb end
    end
  end
  if m < 2 then return nil, m end
  local var = p.estimator == "ewma" and ew or m2 / (m - 1)
  return math.sqrt(var * ppy), m
end

local function base_basket(ctx, p, R)
  local set, b = ctx.state.set, {}
  for j = 1, ctx.n do b[j] = 0 end
  local live = {}
  for _, j in ipairs(set) do
    if not isnan(ctx:price(j)) then live[#live + 1] = j end
  end
  if p.base == "equal" then
    for _, j in ipairs(live) do b[j] = 1 / #live end
    return b
  end
  -- inverse_vol: each asset's own non-NaN returns in R
  local inv, sum, nzero = {}, 0, 0
  local used = {}
  for _, j in ipairs(live) do
    local cnt, mean, ss = 0, 0, 0
    for t = 1, #R do
      local r = R[t][j]
      if r == r then cnt = cnt + 1; mean = mean + r end
    end
    if cnt >= 2 then
      mean = mean / cnt
      for t = 1, #R do
        local r = R[t][j]
        if r == r then ss = ss + (r - mean) * (r - mean) end
      end
      local s = math.sqrt(ss / (cnt - 1))
      used[#used + 1] = j
      inv[j] = s
      if s == 0 then nzero = nzero + 1 else sum = sum + 1 / s end
    end
  end
  for _, j in ipairs(used) do
    if nzero > 0 then
      b[j] = inv[j] == 0 and 1 / nzero or 0
    else
      b[j] = 1 / inv[j] / sum
    end
  end
  return b
end

local function scaled(ctx, p, b, R)
  local sg, m = sigma(R, b, p, ctx.periods_per_year)
  local k = 0
  if sg and m >= p.min_returns then
    k = sg > 0 and p.target / sg or math.huge
    if k > p.leverage_cap then k = p.leverage_cap end
  end
  local w = {}
  for j = 1, ctx.n do w[j] = k * b[j] end
  return w, k, sg
end

return {
  name = "vol_target",
  description = "a base basket scaled to a volatility target, the rest in cash",
  params = {
    base = { type = "string", default = "equal", values = { "equal", "inverse_vol" } },
    assets = { type = "string", default = "" },
    target = { type = "number", default = 0.10, min = 0, max = 2 },
    leverage_cap = { type = "number", default = 1, min = 0, max = 1 },
    estimator = { type = "string", default = "rolling", values = { "rolling", "ewma" } },
    window = { type = "integer", default = 63, min = 2 },
    halflife = { type = "number", default = 21, min = 0 },
    min_returns = { type = "integer", default = 20, min = 2 },
    band = { type = "number", default = 0.1, min = 0 },
    daily = { type = "boolean", default = true },
  },
  schedule = "monthly",
  init = function(ctx, p)
    if not (p.target > 0) then error("vol_target: target must be in (0, 2]", 0) end
    if not (p.leverage_cap > 0) then error("vol_target: leverage_cap must be in (0, 1]", 0) end
    if not (p.halflife > 0) then error("vol_target: halflife must be > 0", 0) end
    local set = assets.list(ctx, p.assets, "assets", "vol_target")
    if p.assets == "" then
      for j = 1, ctx.n do set[j] = j end
    end
    if #set == 0 then error("vol_target: the basket names no asset", 0) end
    ctx.state.set = set
    ctx.state.k = 0
  end,
  rebalance = function(ctx, p)
    local R = returns(ctx, p.window)
    local b = base_basket(ctx, p, R)
    local w, k, sg = scaled(ctx, p, b, R)
    ctx.state.base, ctx.state.k, ctx.state.sigma = b, k, sg
    return w
  end,
  on_bar = function(ctx, p)
    if not p.daily then return nil end
    local b = ctx.state.base
    if not b then return nil end
    local R = returns(ctx, p.window)
    local w, k, sg = scaled(ctx, p, b, R)
    local last = ctx.state.k
    local move = (last == 0) and (k > 0) or (last > 0 and math.abs(k - last) > p.band * last)
    if not move then return nil end
    ctx.state.k, ctx.state.sigma = k, sg
    return w
  end,
}
