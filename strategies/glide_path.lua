-- glide_path: a target-date portfolio whose equity share falls linearly
-- from start_share to end_share over the glide_years before the target
-- date, and stays at end_share after it.
--
-- Idea: the glide paths of target-date (lifecycle) funds, e.g. Vanguard,
-- "Vanguard's approach to target-date funds" (2019); Bodie, Merton and
-- Samuelson, "Labor supply flexibility and portfolio choice in a life
-- cycle model" (J. Economic Dynamics and Control, 1992) for why the equity
-- share should fall as human capital runs down.
--
-- Params (symbols are comma-separated lists; a sleeve of several symbols is
-- split equally among them):
--   equity       string  equity sleeve ("" = the first asset)
--   bonds        string  bond sleeve ("" = the second asset)
--   target_year  integer the target date is 1 January of this year,
--                        [1900, 3000] (2040)
--   start_share  number  equity share while the target is glide_years or
--                        more away, [0, 1] (0.9)
--   end_share    number  equity share from the target date on, [0, 1] (0.3)
--   glide_years  number  length of the glide, (0, 100] (40)
--
-- On a decision date d, with h = (target - d) in days / 365.25 the years
-- left (negative after the target):
--   equity share s = end_share + (start_share - end_share) * min(1, max(0, h) / glide_years)
-- equities get s, bonds 1 - s (each split equally within its sleeve). So
-- with the defaults the share is 90% until 40 years before the target,
-- falls by 1.5 points a year, and is 30% from the target date on. The last
-- share is in ctx.state.equity_share.
-- Schedule: monthly (the share steps once a month along the line).
local assets = require "lib.assets"

-- Days since 1970-01-01 of a proleptic Gregorian date (after Howard
-- Hinnant's days_from_civil).
local function days(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function share(p, date)
  local y, m, d = string.match(date, "^(%d+)-(%d+)-(%d+)$")
  local h = (days(p.target_year, 1, 1) - days(tonumber(y), tonumber(m), tonumber(d))) / 365.25
  if h < 0 then h = 0 end
  local f = h / p.glide_years
  if f > 1 then f = 1 end
  return p.end_share + (p.start_share - p.end_share) * f
end

return {
  name = "glide_path",
  description = "a target-date glide path: the equity share falls linearly as the target date nears",
  params = {
    equity = { type = "string", default = "" },
    bonds = { type = "string", default = "" },
    target_year = { type = "integer", default = 2040, min = 1900, max = 3000 },
    start_share = { type = "number", default = 0.9, min = 0, max = 1 },
    end_share = { type = "number", default = 0.3, min = 0, max = 1 },
    glide_years = { type = "number", default = 40, min = 0, max = 100 },
  },
  schedule = "monthly",
  init = function(ctx, p)
    if not (p.glide_years > 0) then error("glide_path: glide_years must be in (0, 100]", 0) end
    local eq = assets.list(ctx, p.equity, "equity", "glide_path")
    local bd = assets.list(ctx, p.bonds, "bonds", "glide_path")
    if p.equity == "" then eq = { 1 } end
    if p.bonds == "" then bd = { 2 } end
    if #eq == 0 or #bd == 0 or eq[1] > ctx.n or bd[1] > ctx.n then
      error("glide_path: name an equity and a bond sleeve (equity =, bonds =)", 0)
    end
    for _, j in ipairs(bd) do
      for _, k in ipairs(eq) do
        if j == k then error(string.format("glide_path: %s is in both sleeves", ctx.assets[j]), 0) end
      end
    end
    ctx.state.equity, ctx.state.bonds = eq, bd
  end,
  rebalance = function(ctx, p)
    local s = share(p, ctx.date)
    local w = {}
    for j = 1, ctx.n do w[j] = 0 end
    local eq, bd = ctx.state.equity, ctx.state.bonds
    for _, j in ipairs(eq) do w[j] = s / #eq end
    for _, j in ipairs(bd) do w[j] = (1 - s) / #bd end
    ctx.state.equity_share = s
    return w
  end,
}
