-- keel — the standard recommendation template.
--
-- From a profile (age, horizon, risk score or questionnaire answers, goal,
-- initial amount, monthly contribution, liquidity need) to up to three
-- sub-accounts over six asset classes, each with its rebalance policy,
-- DCA share and stop rules, and a plain-language explanation with the
-- costs of getting there and the yearly fund fees.
--
-- Universe: CASH, BOND, EQUITY, EM_EQUITY, GOLD, CRYPTO (the asset classes
-- of the bundled sample prices). A backend maps its instruments to these
-- names in the quotes it passes.
--
-- The rules (docs/templates.md has them with examples):
--   reserve   = min(liquidity, total), all CASH; topped up first by the
--               monthly contribution while below the liquidity need.
--   equity    = (0.10 + 0.08 (risk - 1)) * g(horizon), risk 1..10,
--               g(h) = clamp((h - 1) / 14, 0, 1): no shares for money needed
--               within a year, the full risk-based share from 15 years.
--               For retirement also at most (110 - age) / 100.
--               Shares split 75 / 25 between EQUITY and EM_EQUITY.
--   defensive = 1 - equity: a tenth in GOLD when the horizon is at least 3
--               years; of the rest the part held as CASH is
--               clamp(1 - (h - 1) / 9, 0, 1) (all cash within a year, all
--               BOND from 10 years).
--   satellite = CRYPTO, 2% of the invested money per risk point above 7
--               (risk 8: 2%, 10: 6%) when the horizon is at least 5
--               years and the goal is not travel; a 30% trailing stop sells
--               it to cash, re-entry when the price is back above its
--               50-day average.
--   core      = 5/25 bands checked monthly, back to target.
-- As the horizon shortens the equity share follows g: the glide path. The
-- explanation gives the equity share the same plan would have in five
-- years' time.

local T = {}

T.name = "standard"
T.universe = { "CASH", "BOND", "EQUITY", "EM_EQUITY", "GOLD", "CRYPTO" }

-- Yearly fund expense ratios assumed when the quotes give none (typical
-- index funds, a physical gold fund and an exchange-traded crypto product).
T.expense = { CASH = 0.0010, BOND = 0.0005, EQUITY = 0.0003, EM_EQUITY = 0.0011, GOLD = 0.0040, CRYPTO = 0.0025 }

local function clamp(x, a, b)
  if x < a then return a elseif x > b then return b else return x end
end

-- The glide factor for money needed in h years.
function T.glide(h) return clamp((h - 1) / 14, 0, 1) end

function T.equity_share(risk, horizon, goal, age)
  local e = (0.10 + 0.08 * (risk - 1)) * T.glide(horizon)
  if goal == "retirement" then e = math.min(e, clamp((110 - age) / 100, 0, 1)) end
  return e
end

-- The core basket for an equity share e and horizon h.
function T.core_weights(e, h)
  local short = clamp(1 - (h - 1) / 9, 0, 1)
  local gold = h >= 3 and 0.1 * (1 - e) or 0
  local rest = 1 - e - gold
  local w = {
    EQUITY = 0.75 * e,
    EM_EQUITY = 0.25 * e,
    GOLD = gold,
    CASH = rest * short,
    BOND = rest * (1 - short),
  }
  for k, v in pairs(w) do
    if v <= 0 then w[k] = nil end
  end
  return w
end

local function risk_of(profile)
  if profile.risk_score then return profile.risk_score end
  if profile.answers then return ((require "questionnaire").score(profile.answers)) end
  error("standard template: the profile needs a risk_score or questionnaire answers")
end

-- advise(profile, market) -> plan. market.total is the money to place
-- (holdings at today's prices, cash and the initial amount);
-- market.expense the quotes' yearly expense ratios by symbol (may be
-- missing). plan.fees is the yearly fund fees in money.
function T.advise(profile, market)
  local total = market.total
  local risk = risk_of(profile)
  local h, goal = profile.horizon, profile.goal
  local reserve = math.min(profile.liquidity or 0, total)
  local invest = total - reserve
  local e = T.equity_share(risk, h, goal, profile.age)
  local sat_share = 0
  if risk >= 8 and h >= 5 and goal ~= "travel" then sat_share = 0.02 * (risk - 7) end
  local satellite = invest * sat_share
  local core = invest - satellite

  local monthly = profile.monthly or 0
  local to_reserve = 0
  if monthly > 0 and reserve < (profile.liquidity or 0) then to_reserve = monthly / 2 end
  local rest = monthly - to_reserve
  local to_sat = rest * sat_share
  local to_core = rest - to_sat

  local subs = {}
  if reserve > 0 or to_reserve > 0 then
    subs[#subs + 1] = {
      name = "reserve",
      purpose = "money you may need soon",
      amount = reserve,
      weights = { CASH = 1 },
      rebalance = { schedule = "never" },
      dca = to_reserve > 0 and { amount = to_reserve, schedule = "monthly" } or nil,
    }
  end
  if core > 0 or to_core > 0 then
    subs[#subs + 1] = {
      name = "core",
      purpose = "the main portfolio for your " .. goal .. " goal",
      amount = core,
      weights = T.core_weights(e, h),
      rebalance = { schedule = "monthly", band = { abs = 0.05, rel = 0.25 }, action = "target" },
      dca = to_core > 0 and { amount = to_core, schedule = "monthly", dest = "underweight" } or nil,
    }
  end
  if satellite > 0 then
    subs[#subs + 1] = {
      name = "satellite",
      purpose = "a small, volatile holding for extra growth",
      amount = satellite,
      weights = { CRYPTO = 1 },
      rebalance = { schedule = "quarterly" },
      dca = to_sat > 0 and { amount = to_sat, schedule = "monthly" } or nil,
      stops = { { asset = "CRYPTO", kind = "trailing", level = 0.30, action = "cash", reentry = "above_ma", days = 50 } },
    }
  end
  -- yearly fund fees: the quotes' expense ratios, else the defaults above;
  -- summed in the universe's order, not pairs' (which differs from one
  -- Lua state to the next), so the same request gives the same bits
  local fees = 0
  local er = market.expense or {}
  for _, sub in ipairs(subs) do
    for _, sym in ipairs(T.universe) do
      local w = sub.weights[sym]
      if w then fees = fees + sub.amount * w * (er[sym] or T.expense[sym]) end
    end
  end
  return { risk_score = risk, equity_share = e, subaccounts = subs, fees = fees }
end

-- Money with thousands separators and two decimals: 12345.6 -> "12,345.60".
local fmt, floor, concat = string.format, math.floor, table.concat
local function money(x)
  local sign = ""
  if x < 0 then sign, x = "-", -x end
  if x >= 1e12 then -- beyond the grouped formats below: three digits at a time
    local s = fmt("%.2f", x)
    local n = #s - 3
    local head = (n - 1) % 3 + 1
    local out = s:sub(1, head)
    for i = head + 1, n, 3 do out = out .. "," .. s:sub(i, i + 2) end
    return sign .. out .. s:sub(n + 1)
  end
  local c = floor(x * 100 + 0.5)
  local i, f = c // 100, c % 100
  if i < 1000 then return fmt("%s%d.%02d", sign, i, f) end
  if i < 1000000 then return fmt("%s%d,%03d.%02d", sign, i // 1000, i % 1000, f) end
  if i < 1000000000 then return fmt("%s%d,%03d,%03d.%02d", sign, i // 1000000, i // 1000 % 1000, i % 1000, f) end
  return fmt("%s%d,%03d,%03d,%03d.%02d", sign, i // 1000000000, i // 1000000 % 1000, i // 1000 % 1000, i % 1000, f)
end
T.money = money

local function pct(x)
  local t = floor(1000 * x + 0.5) -- tenths of a percent
  if t % 10 == 0 then return fmt("%d%%", t // 10) end
  return fmt("%d.%d%%", t // 10, t % 10)
end

local function pct2(x)
  local h = floor(10000 * x + 0.5) -- hundredths of a percent
  return fmt("%d.%02d%%", h // 100, h % 100)
end

-- (Text is joined with .. rather than string.format: format copies its
-- literal text one character at a time.)
local function describe(sub)
  local w = sub.weights
  if sub.name == "reserve" then
    return "a cash reserve of " .. money(sub.amount) .. " for " .. sub.purpose
  elseif sub.name == "core" then
    local mix, n = {}, 0
    local shares = (w.EQUITY or 0) + (w.EM_EQUITY or 0)
    if shares > 0.0005 then n = n + 1; mix[n] = pct(shares) .. " shares" end
    if (w.BOND or 0) > 0.0005 then n = n + 1; mix[n] = pct(w.BOND) .. " bonds" end
    if (w.GOLD or 0) > 0.0005 then n = n + 1; mix[n] = pct(w.GOLD) .. " gold" end
    if (w.CASH or 0) > 0.0005 then n = n + 1; mix[n] = pct(w.CASH) .. " cash" end
    return "a core portfolio of " .. money(sub.amount) .. " (" .. concat(mix, ", ")
      .. "), checked monthly and rebalanced when a holding drifts more than 5 points or a quarter of its target away"
  else
    return "a satellite of " .. money(sub.amount) .. " in crypto-assets, sold to cash if it falls 30% from its peak "
      .. "and bought back once its price is above its 50-day average"
  end
end

local POTS = { "one pot", "two pots", "three pots" }

-- explain(profile, plan, summary) -> text. summary: total, trade_costs,
-- ntrades, buys, sells (money), cash_after, trades; with a goal amount and
-- a price history also goal_probability, goal_p05, goal_p50, goal_p95.
function T.explain(profile, plan, s)
  local parts, n = {}, 0
  local subs = plan.subaccounts
  n = n + 1
  parts[n] = (profile.risk_score and "Your risk score is " or "Your answers give a risk score of ")
    .. plan.risk_score .. " out of 10."
  local goal = profile.goal == "general" and "general investing"
    or ((profile.goal == "education" and "an " or "a ") .. profile.goal .. " goal")
  local h = profile.horizon
  local when = h == 1 and "a year" or ((h == floor(h) and fmt("%d", h) or fmt("%g", h)) .. " years")
  local list = {}
  for i = 1, #subs do list[i] = describe(subs[i]) end
  local joined = #list == 1 and list[1] or (concat(list, "; ", 1, #list - 1) .. "; and " .. list[#list])
  n = n + 1
  parts[n] = "For " .. goal .. " " .. when .. " away we suggest " .. (POTS[#list] or (#list .. " pots")) .. ": "
    .. joined .. "."
  if (profile.monthly or 0) > 0 then
    local bits = {}
    for i = 1, #subs do
      local sub = subs[i]
      if sub.dca then bits[#bits + 1] = money(sub.dca.amount) .. " to the " .. sub.name end
    end
    n = n + 1
    parts[n] = "Each month " .. money(profile.monthly) .. " goes in: " .. concat(bits, ", ") .. "."
  end
  n = n + 1
  if s.ntrades == 0 then
    parts[n] = "Your holdings already match: nothing needs to trade today."
  else
    parts[n] = "Getting there takes " .. s.ntrades .. (s.ntrades == 1 and " trade (" or " trades (") .. money(s.buys)
      .. " of purchases, " .. money(s.sells) .. " of sales) costing " .. money(s.trade_costs) .. " now ("
      .. pct2(s.total > 0 and s.trade_costs / s.total or 0) .. " of " .. money(s.total) .. ")."
  end
  n = n + 1
  parts[n] = "Fund fees come to about " .. money(plan.fees) .. " a year ("
    .. pct2(s.total > 0 and plan.fees / s.total or 0) .. ")."
  if s.goal_probability then
    n = n + 1
    parts[n] = "In futures drawn from past prices the plan reaches your goal of " .. money(profile.goal_amount)
      .. " by then in " .. pct(s.goal_probability) .. " of cases; the middle outcome is " .. money(s.goal_p50)
      .. ", and one in twenty ends below " .. money(s.goal_p05) .. "."
  end
  if h > 5 then
    local e5 = T.equity_share(plan.risk_score, h - 5, profile.goal, profile.age + 5)
    n = n + 1
    parts[n] = "As the goal gets closer the core moves from shares to bonds: five years from now it would hold about "
      .. pct(e5) .. " shares."
  elseif h > 1 then
    n = n + 1
    parts[n] = "As the goal gets closer the core moves from shares to bonds: a year before you need the money it "
      .. "would hold none."
  end
  return concat(parts, " ")
end

return T
