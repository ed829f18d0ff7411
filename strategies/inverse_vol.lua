-- inverse_vol: weights proportional to the inverse of each asset's
-- volatility, so that calmer assets get more.
--
-- Idea: the "naive risk parity" of e.g. Maillard, Roncalli and Teiletche,
-- "The Properties of Equally Weighted Risk Contribution Portfolios"
-- (Journal of Portfolio Management, 2010): with equal correlations the
-- equal-risk-contribution weights are exactly w_i proportional to 1/sigma_i.
--
-- Params:
--   lookback integer  rows of history, >= 2 (252)
--   invest   number   share of the value invested, (0, 1] (1)
--
-- On each decision: the window of the last min(lookback, t - 1) returns
-- (lib/window.lua); sigma_i is the sample standard deviation (divisor
-- T_i - 1) of asset i's own returns in the window; over the usable assets
-- (a price today, at least 2 returns) w_i = invest (1/sigma_i) / sum_j
-- (1/sigma_j), the others 0. Assets whose returns are all equal
-- (sigma = 0) are the limit of 1/sigma: they share invest equally and the
-- others get 0. No usable asset: all cash.
-- Schedule: monthly. C counterpart: the inverse_vol built-in.
local window = require "lib.window"

return {
  name = "inverse_vol",
  description = "weights proportional to 1 / volatility, rebalanced monthly",
  params = {
    lookback = { type = "integer", default = 252, min = 2 },
    invest = { type = "number", default = 1, min = 0, max = 1 },
  },
  schedule = "monthly",
  init = function(ctx, p)
    if not (p.invest > 0) then error("inverse_vol: invest must be in (0, 1]", 0) end
  end,
  rebalance = function(ctx, p)
    local W = window.returns(ctx, p.lookback)
    local use = window.usable(ctx, W)
    local w = window.zeros(ctx.n)
    local sig, nzero, sum = {}, 0, 0
    for i = 1, #use do
      local j = use[i]
      local mean, ss = 0, 0
      for t = 1, W.T do
        local r = W.R[t][j]
        if r == r then mean = mean + r end
      end
      mean = mean / W.cnt[j]
      for t = 1, W.T do
        local r = W.R[t][j]
        if r == r then ss = ss + (r - mean) * (r - mean) end
      end
      local s = math.sqrt(ss / (W.cnt[j] - 1))
      sig[i] = s
      if s == 0 then nzero = nzero + 1 else sum = sum + 1 / s end
    end
    for i = 1, #use do
      local v
      if nzero > 0 then
        v = sig[i] == 0 and 1 / nzero or 0
      else
        v = 1 / sig[i] / sum
      end
      w[use[i]] = p.invest * v
    end
    return w
  end,
}
