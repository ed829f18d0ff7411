-- min_variance: the long-only minimum-variance portfolio on a Ledoit-Wolf
-- shrunk covariance.
--
-- Idea: minimum-variance investing needs no expected returns, the least
-- reliable input (Clarke, de Silva and Thorley, "Minimum-Variance
-- Portfolios in the U.S. Equity Market", JPM 2006); the sample covariance
-- is shrunk towards a scaled identity as in Ledoit and Wolf, "A
-- well-conditioned estimator for large-dimensional covariance matrices"
-- (J. Multivariate Analysis, 2004), which keeps it invertible when assets
-- are many and rows few.
--
-- Params:
--   lookback   integer rows of history, >= 2 (252)
--   cov        string  estimator: "ledoit_wolf" (identity target, default),
--                      "ledoit_wolf_cc" (constant correlation), "sample", "ewma"
--   halflife   number  EWMA half-life in rows, > 0 (63)
--   max_weight number  per-asset cap before invest, (0, 1] (1)
--   invest     number  share of the value invested, (0, 1] (1)
--
-- On each decision: the window and usable assets of lib/window.lua; the
-- covariance of their common rows, annualised (keel.estimate.cov); then
-- keel.optimize.min_variance, fully invested, 0 <= w_i <= max_weight,
-- times invest. Too short a common history (the run's first rows): equal
-- weights over the usable assets. If the usable assets cannot be fully
-- invested under the cap (m * max_weight < 1) the decision is an error.
-- Schedule: monthly. C counterpart: the min_variance built-in.
local keel = require "keel"
local window = require "lib.window"

return {
  name = "min_variance",
  description = "long-only minimum variance on a Ledoit-Wolf covariance, rebalanced monthly",
  params = {
    lookback = { type = "integer", default = 252, min = 2 },
    cov = { type = "string", default = "ledoit_wolf", values = window.COV_METHODS },
    halflife = { type = "number", default = 63, min = 0 },
    max_weight = { type = "number", default = 1, min = 0, max = 1 },
    invest = { type = "number", default = 1, min = 0, max = 1 },
  },
  schedule = "monthly",
  init = function(ctx, p)
    if not (p.invest > 0) then error("min_variance: invest must be in (0, 1]", 0) end
    if not (p.max_weight > 0) then error("min_variance: max_weight must be in (0, 1]", 0) end
    if not (p.halflife > 0) then error("min_variance: halflife must be > 0", 0) end
  end,
  rebalance = function(ctx, p)
    local use, X = window.cov_inputs(ctx, p.lookback, p.cov)
    if not X then return window.spread(ctx.n, use, nil, p.invest) end
    local S = keel.estimate.cov(X, { method = p.cov, halflife = p.halflife,
                                     periods_per_year = ctx.periods_per_year })
    window.cap_feasible("min_variance", #use, p.max_weight)
    local r = keel.optimize.min_variance(S, { max_weight = p.max_weight })
    return window.spread(ctx.n, use, r.weights, p.invest)
  end,
}
