-- lib/window.lua: estimation windows for the shipped strategies.
--
-- The rules are those of keel's built-in strategies (docs/strategies.md,
-- "The window and the usable assets"), so a Lua strategy and its C
-- counterpart decide alike on the same data:
--
--   * A decision on the run's t-th row reads the last min(lookback, t - 1)
--     returns: never a row after today, never one before the run's first.
--   * Returns are simple, p_t / p_prev - 1, with p_prev the asset's last
--     price in the window before t (a return after a halt spans the halt);
--     NaN where the asset has no price on t or none earlier in the window.
--   * An asset is usable when it has a price today and at least 2 returns
--     in the window.
--   * Covariance estimates use the usable assets' common rows (where every
--     one has a return). Too few of them (m + 1 for the sample and EWMA
--     estimators, 3 for Ledoit-Wolf): the usable asset with the fewest
--     returns (the last on a tie) is set aside while it has fewer than
--     another; if all have as many, the caller falls back to equal weights.
--
-- Needs the strategies folder on the require path (it is `require
-- "lib.window"`).
local keel = require "keel"

local M = {}

local NAN = 0.0 / 0.0
M.NAN = NAN

local function isnan(x) return x ~= x end
M.isnan = isnan

-- The window of a decision: W.T returns of W.n assets, W.R[t][j] (NaN
-- where missing), W.cnt[j] returns per asset.
function M.returns(ctx, lookback)
  local n = ctx.n
  local k = ctx.t - 1
  if lookback < k then k = lookback end
  local P = ctx:prices(k + 1):totable()
  local T = #P - 1
  local R, cnt = {}, {}
  for t = 1, T do R[t] = {} end
  for j = 1, n do
    local prev = P[1][j]
    local got = 0
    for t = 1, T do
      local v = P[t + 1][j]
      local r = NAN
      if v == v and prev == prev then
        r = v / prev - 1
        got = got + 1
      end
      R[t][j] = r
      if v == v then prev = v end
    end
    cnt[j] = got
  end
  return { T = T, n = n, R = R, cnt = cnt }
end

-- The usable assets (indices 1..n, in order).
function M.usable(ctx, W)
  local use = {}
  for j = 1, W.n do
    if not isnan(ctx:price(j)) and W.cnt[j] >= 2 then use[#use + 1] = j end
  end
  return use
end

-- Rows where every asset of `use` has a return.
function M.common_rows(W, use)
  local rows = {}
  for t = 1, W.T do
    local row, ok = W.R[t], true
    for i = 1, #use do
      if isnan(row[use[i]]) then ok = false; break end
    end
    if ok then rows[#rows + 1] = t end
  end
  return rows
end

local function rows_needed(method, m)
  if method == "ledoit_wolf" or method == "ledoit_wolf_cc" then return 3 end
  return m + 1
end

-- Sets aside assets of `use` (in place) until the common rows suffice for
-- the estimator; returns false when they cannot (all have as many returns).
function M.reduce_to_common(W, use, method)
  while true do
    local m = #use
    if m <= 1 or #M.common_rows(W, use) >= rows_needed(method, m) then return true end
    local drop, most = 1, 0
    for i = 1, m do
      if W.cnt[use[i]] <= W.cnt[use[drop]] then drop = i end
      if W.cnt[use[i]] > most then most = W.cnt[use[i]] end
    end
    if W.cnt[use[drop]] == most then return false end
    table.remove(use, drop)
  end
end

-- The common rows of `use` as a keel.matrix (rows x #use).
function M.matrix(W, use)
  local rows = M.common_rows(W, use)
  local X = {}
  for r = 1, #rows do
    local row, x = W.R[rows[r]], {}
    for i = 1, #use do x[i] = row[use[i]] end
    X[r] = x
  end
  return keel.matrix(X)
end

-- The inputs of a covariance strategy (min_variance, max_sharpe,
-- risk_parity): the usable assets `use` after setting aside those the
-- estimator cannot take, and X, their common rows as a matrix. X is nil
-- when no estimate can be made (no usable asset: cash; or too few common
-- rows while every usable asset has as many returns: equal weights).
function M.cov_inputs(ctx, lookback, method)
  local W = M.returns(ctx, lookback)
  local use = M.usable(ctx, W)
  if #use == 0 then return use, nil end
  if not M.reduce_to_common(W, use, method) then return use, nil end
  return use, M.matrix(W, use)
end

-- The targets of a covariance strategy: invest * max(w_i, 0) on use[i]
-- (w a view or array over use), or invest / #use on each when w is nil.
function M.spread(n, use, w, invest)
  local out = M.zeros(n)
  for i = 1, #use do
    if w then
      local x = w[i]
      if x < 0 then x = 0 end
      out[use[i]] = invest * x
    else
      out[use[i]] = invest / #use
    end
  end
  return out
end

-- Checks that m assets can be fully invested at a cap of max_weight each.
function M.cap_feasible(who, m, max_weight)
  if m * max_weight < 1 - 1e-12 then
    error(string.format("%s: %d asset(s) with enough history cannot be fully invested at a cap of %g each " ..
                        "(need at least %.0f)", who, m, max_weight, math.ceil(1 / max_weight - 1e-12)), 0)
  end
end

-- The covariance estimators a strategy may name.
M.COV_METHODS = { "sample", "ewma", "ledoit_wolf", "ledoit_wolf_cc" }

-- n zeros.
function M.zeros(n)
  local w = {}
  for j = 1, n do w[j] = 0 end
  return w
end

return M
