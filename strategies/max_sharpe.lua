-- max_sharpe: the long-only maximum-Sharpe (tangency) portfolio, net of
-- trading costs.
--
-- Idea: Markowitz, "Portfolio Selection" (J. Finance, 1952) and Sharpe's
-- tangency portfolio (Sharpe, "Mutual Fund Performance", J. Business,
-- 1966); with costs, the idea of optimising net of the cost of getting
-- there from the current holdings, as in Lobo, Fazel and Boyd, "Portfolio
-- optimization with linear and fixed transaction costs" (Annals of
-- Operations Research, 2007).
--
-- Params:
--   lookback   integer rows of history, >= 2 (252)
--   cov        string  estimator: "ledoit_wolf" (default), "ledoit_wolf_cc",
--                      "sample", "ewma"
--   halflife   number  EWMA half-life in rows, > 0 (63)
--   max_weight number  per-asset cap before invest, (0, 1] (1)
--   risk_free  number  annual risk-free rate, [-1, 1] (0)
--   use_costs  boolean charge the sub-account's cost rates (true)
--   invest     number  share of the value invested, (0, 1] (1)
--
-- On each decision: the window and usable assets of lib/window.lua; mu the
-- annualised arithmetic means and S the covariance of their common rows.
-- keel.optimize.max_sharpe, fully invested, 0 <= w_i <= max_weight, gives
-- the cost-free optimum w* and its volatility sigma*. With costs (use_costs
-- and a usable asset with a buy or sell rate above 0) the targets are then
-- the portfolio of most expected return net of the costs of trading from
-- the current weights at that volatility: keel.optimize.target_vol(mu, S,
-- sigma*, {current = ctx.weights, cost_buy = ctx.cost_buy, cost_sell =
-- ctx.cost_sell, ...}) over the usable assets (keel's maximum-Sharpe solve
-- takes no costs: with them the ratio is not a convex problem). The result
-- has w*'s risk and at least w*'s return net of costs.
-- When no portfolio beats the risk-free rate (the maximum Sharpe ratio is
-- not positive) the strategy holds the minimum-variance portfolio of the
-- same assets and cap instead. Too short a common history: equal weights.
-- Times invest.
-- Schedule: monthly. C counterpart: the max_sharpe built-in.
local keel = require "keel"
local window = require "lib.window"

local function not_positive(err)
  return type(err) == "string" and string.find(err, "maximum Sharpe ratio is not positive", 1, true) ~= nil
end

return {
  name = "max_sharpe",
  description = "long-only maximum Sharpe ratio net of costs, rebalanced monthly",
  params = {
    lookback = { type = "integer", default = 252, min = 2 },
    cov = { type = "string", default = "ledoit_wolf", values = window.COV_METHODS },
    halflife = { type = "number", default = 63, min = 0 },
    max_weight = { type = "number", default = 1, min = 0, max = 1 },
    risk_free = { type = "number", default = 0, min = -1, max = 1 },
    use_costs = { type = "boolean", default = true },
    invest = { type = "number", default = 1, min = 0, max = 1 },
  },
  schedule = "monthly",
  init = function(ctx, p)
    if not (p.invest > 0) then error("max_sharpe: invest must be in (0, 1]", 0) end
    if not (p.max_weight > 0) then error("max_sharpe: max_weight must be in (0, 1]", 0) end
    if not (p.halflife > 0) then error("max_sharpe: halflife must be > 0", 0) end
  end,
  rebalance = function(ctx, p)
    local use, X = window.cov_inputs(ctx, p.lookback, p.cov)
    if not X then return window.spread(ctx.n, use, nil, p.invest) end
    local ppy = ctx.periods_per_year
    local S = keel.estimate.cov(X, { method = p.cov, halflife = p.halflife, periods_per_year = ppy })
    local mu = keel.estimate.mean(X, { periods_per_year = ppy })
    window.cap_feasible("max_sharpe", #use, p.max_weight)
    local opts = { max_weight = p.max_weight, risk_free = p.risk_free }
    local ok, r = pcall(keel.optimize.max_sharpe, mu, S, opts)
    if not ok then
      if not not_positive(r) then error(r, 0) end
      r = keel.optimize.min_variance(S, { max_weight = p.max_weight })
      return window.spread(ctx.n, use, r.weights, p.invest)
    end
    if p.use_costs and r.vol > 0 then
      local w0, cb, cs, any = {}, {}, {}, false
      local cw, cbuy, csell = ctx.weights, ctx.cost_buy, ctx.cost_sell
      for i = 1, #use do
        local j = use[i]
        w0[i], cb[i], cs[i] = cw[j], cbuy[j], csell[j]
        any = any or cb[i] > 0 or cs[i] > 0
      end
      if any then
        r = keel.optimize.target_vol(mu, S, r.vol, { max_weight = p.max_weight, risk_free = p.risk_free,
                                                     current = w0, cost_buy = cb, cost_sell = cs })
      end
    end
    return window.spread(ctx.n, use, r.weights, p.invest)
  end,
}
