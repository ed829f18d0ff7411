-- risk_parity: equal risk contribution weights, each asset contributing
-- the same share of the portfolio's variance, w_i (S w)_i equal for all i.
--
-- Idea: Maillard, Roncalli and Teiletche, "The Properties of Equally
-- Weighted Risk Contribution Portfolios" (Journal of Portfolio Management,
-- 2010); computed by Newton's method on Spinu's convex formulation (Spinu,
-- "An algorithm for computing risk parity weights", 2013) through
-- keel.optimize.risk_parity.
--
-- Params:
--   lookback integer rows of history, >= 2 (252)
--   cov      string  estimator: "ledoit_wolf" (default), "ledoit_wolf_cc",
--                    "sample", "ewma"
--   halflife number  EWMA half-life in rows, > 0 (63)
--   invest   number  share of the value invested, (0, 1] (1)
--
-- On each decision: the window and usable assets of lib/window.lua; the
-- annualised covariance of their common rows; the equal-risk-contribution
-- weights (long only, fully invested by construction), times invest. Too
-- short a common history: equal weights. A covariance that is not positive
-- definite (two identical assets with the sample estimator) is an error.
-- Schedule: monthly. C counterpart: the risk_parity built-in.
local keel = require "keel"
local window = require "lib.window"

return {
  name = "risk_parity",
  description = "equal risk contributions, rebalanced monthly",
  params = {
    lookback = { type = "integer", default = 252, min = 2 },
    cov = { type = "string", default = "ledoit_wolf", values = window.COV_METHODS },
    halflife = { type = "number", default = 63, min = 0 },
    invest = { type = "number", default = 1, min = 0, max = 1 },
  },
  schedule = "monthly",
  init = function(ctx, p)
    if not (p.invest > 0) then error("risk_parity: invest must be in (0, 1]", 0) end
    if not (p.halflife > 0) then error("risk_parity: halflife must be > 0", 0) end
  end,
  rebalance = function(ctx, p)
    local use, X = window.cov_inputs(ctx, p.lookback, p.cov)
    if not X then return window.spread(ctx.n, use, nil, p.invest) end
    local S = keel.estimate.cov(X, { method = p.cov, halflife = p.halflife,
                                     periods_per_year = ctx.periods_per_year })
    local r = keel.optimize.risk_parity(S)
    return window.spread(ctx.n, use, r.weights, p.invest)
  end,
}
