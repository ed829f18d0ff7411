-- equal_weight: 1/n over the assets that have a price today.
--
-- Idea: the naive diversification rule that DeMiguel, Garlappi and Uppal,
-- "Optimal Versus Naive Diversification: How Inefficient is the 1/N
-- Portfolio Strategy?" (Review of Financial Studies, 2009), found hard to
-- beat out of sample. Nothing is estimated, so no history is needed: an
-- asset listed later shares from its first price on.
--
-- Params:
--   invest   number   share of the value invested, (0, 1] (1); the rest is cash
--
-- Each of the m assets with a price today gets invest / m; the others 0.
-- Schedule: monthly. C counterpart: the equal built-in.
local function isnan(x) return x ~= x end

return {
  name = "equal_weight",
  description = "equal weights over the assets with a price, rebalanced monthly",
  params = {
    invest = { type = "number", default = 1, min = 0, max = 1 },
  },
  schedule = "monthly",
  init = function(ctx, p)
    if not (p.invest > 0) then error("equal_weight: invest must be in (0, 1]", 0) end
  end,
  rebalance = function(ctx, p)
    local n, m = ctx.n, 0
    for j = 1, n do
      if not isnan(ctx:price(j)) then m = m + 1 end
    end
    local w = {}
    for j = 1, n do
      w[j] = isnan(ctx:price(j)) and 0 or p.invest / m
    end
    return w
  end,
}
