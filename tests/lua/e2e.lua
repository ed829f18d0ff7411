-- The end-to-end script of test_lua_api: lua5.4 loads keel.so, reads the
-- prices given as arg[1], estimates, optimises and backtests, and prints
-- "name value" lines that the test compares with the C API's results.
local keel = require "keel"
local function out(k, v) io.write(string.format("%s %.17g\n", k, v)) end

local p = keel.load_prices(arg[1])
out("ndates", p.ndates)
out("nassets", p.nassets)

-- the last 500 returns as a matrix (rows copied from the panel's returns)
local R = p:returns()
local T = 500
local last = keel.matrix(T, R.cols)
for i = 1, T do last[i] = R[R.rows - T + i] end

local mu = keel.estimate.mean(last, { periods_per_year = 252 })
local S = last:cov("ledoit_wolf", { periods_per_year = 252 })
local res = keel.optimize.max_sharpe(mu, S, { max_weight = 0.2, risk_free = 0.01 })
assert(res.status == "optimal", res.status)
for i = 1, #res.weights do out("w" .. i, res.weights[i]) end
out("sharpe", res.sharpe)
out("mu1", mu[1])
out("s12", S:get(1, 2))

-- backtest the basket (weights below 1e-9 dropped) from the window's start
local w = {}
for i = 1, #res.weights do
  local x = res.weights[i]
  w[i] = x < 1e-9 and 0 or x
end
w = keel.weights.normalize(w)
local bt = keel.backtest {
  prices = p, weights = w, rebalance = "quarterly", cost_bps = 10, capital = 50000,
  start = p.dates[p.ndates - T],
}
for k, v in pairs(bt.metrics) do
  if type(v) == "number" then out("m_" .. k, v) end
end
out("final", bt.final_value)
out("ntrades", bt.ntrades)
out("npoints", #bt.values)
assert(#bt.dates == #bt.values and bt.dates[1] == p.dates[p.ndates - T])

-- a built-in strategy, the prices given as a path
local mv = keel.backtest {
  prices = arg[1], strategy = "min_variance", params = { lookback = 126, max_weight = 0.3 },
  rebalance = "quarterly", start = p.dates[p.ndates - T],
}
out("mv_nopt", mv.nopt_calls)

-- errors are Lua errors with keel's messages
local ok1, e1 = pcall(keel.load_prices, "/nonexistent/prices.csv")
local ok2, e2 = pcall(keel.backtest, { prices = p, weights = { NOPE = 1 } })
local ok3, e3 = pcall(keel.optimize.min_variance, S, { max_weight = 0.01 })
local good = not ok1 and e1:find("keel.load_prices", 1, true)
  and not ok2 and e2:find("no asset 'NOPE'", 1, true)
  and not ok3 and e3:find("keel.optimize.min_variance", 1, true)
out("errors_ok", good and 1 or 0)
