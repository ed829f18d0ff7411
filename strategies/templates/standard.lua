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

local Q = require "questionnaire"

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
  if profile.answers then return (Q.score(profile.answers)) end
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
      rebalance = { schedule = "monthly", band = { abs = 0.05, rel = 0.25 }, action = "to_target" },
      dca = to_core > 0 and { amount = to_core, schedule = "monthly", dest = "to_underweight" } or nil,
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
      stops = { { asset = "CRYPTO", kind = "trailing", level = 0.30, action = "to_cash", reentry = "above_ma", days = 50 } },
    }
  end
  -- yearly fund fees: the quotes' expense ratios, else the defaults above
  local fees = 0
  local er = market.expense or {}
  for _, sub in ipairs(subs) do
    for sym, w in pairs(sub.weights) do fees = fees + sub.amount * w * (er[sym] or T.expense[sym]) end
  end
  return { risk_score = risk, equity_share = e, subaccounts = subs, fees = fees }
end

-- Money with thousands separators and two decimals: 12345.6 -> "12,345.60".
local function money(x)
  local neg = x < 0
  local s = string.format("%.2f", math.abs(x))
  local int, frac = s:match("^(%d+)%.(%d+)$")
  local out = int:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  if out:sub(1, 1) == "," then out = out:sub(2) end
  return (neg and "-" or "") .. out .. "." .. frac
end
T.money = money

local function pct(x)
  local s = string.format("%.1f", 100 * x)
  s = s:gsub("%.0$", "")
  return s .. "%"
end

local function pct2(x) return string.format("%.2f%%", 100 * x) end

local function describe(sub)
  local w = sub.weights
  if sub.name == "reserve" then
    return string.format("a cash reserve of %s for %s", money(sub.amount), sub.purpose)
  elseif sub.name == "core" then
    local mix = {}
    local classes = { { (w.EQUITY or 0) + (w.EM_EQUITY or 0), "shares" }, { w.BOND or 0, "bonds" },
                      { w.GOLD or 0, "gold" }, { w.CASH or 0, "cash" } }
    for _, c in ipairs(classes) do
      if c[1] > 0.0005 then mix[#mix + 1] = pct(c[1]) .. " " .. c[2] end
    end
    return string.format("a core portfolio of %s (%s), checked monthly and rebalanced when a holding drifts more "
      .. "than 5 points or a quarter of its target away", money(sub.amount), table.concat(mix, ", "))
  else
    return string.format("a satellite of %s in crypto-assets, sold to cash if it falls 30%% from its peak and bought "
      .. "back once its price is above its 50-day average", money(sub.amount))
  end
end

-- explain(profile, plan, summary) -> text. summary: total, trade_costs,
-- ntrades, buys, sells (money), cash_after.
function T.explain(profile, plan, s)
  local parts = {}
  local src = profile.risk_score and "Your risk score is" or "Your answers give a risk score of"
  parts[#parts + 1] = string.format("%s %d out of 10.", src, plan.risk_score)
  local goal = profile.goal == "general" and "general investing"
    or ((profile.goal == "education" and "an " or "a ") .. profile.goal .. " goal")
  local when = profile.horizon == 1 and "a year" or (string.format("%g", profile.horizon) .. " years")
  local list = {}
  for i, sub in ipairs(plan.subaccounts) do list[i] = describe(sub) end
  local joined
  if #list == 1 then joined = list[1]
  else joined = table.concat(list, "; ", 1, #list - 1) .. "; and " .. list[#list] end
  parts[#parts + 1] = string.format("For %s %s away we suggest %s: %s.", goal, when,
    #list == 1 and "one pot" or (#list == 2 and "two pots" or "three pots"), joined)
  if (profile.monthly or 0) > 0 then
    local bits = {}
    for _, sub in ipairs(plan.subaccounts) do
      if sub.dca then bits[#bits + 1] = string.format("%s to the %s", money(sub.dca.amount), sub.name) end
    end
    parts[#parts + 1] = string.format("Each month %s goes in: %s.", money(profile.monthly), table.concat(bits, ", "))
  end
  if s.ntrades == 0 then
    parts[#parts + 1] = "Your holdings already match: nothing needs to trade today."
  else
    parts[#parts + 1] = string.format("Getting there takes %d trade%s (%s of purchases, %s of sales) costing %s now "
      .. "(%s of %s).", s.ntrades, s.ntrades == 1 and "" or "s", money(s.buys), money(s.sells), money(s.trade_costs),
      pct2(s.total > 0 and s.trade_costs / s.total or 0), money(s.total))
  end
  parts[#parts + 1] = string.format("Fund fees come to about %s a year (%s).", money(plan.fees),
    pct2(s.total > 0 and plan.fees / s.total or 0))
  if profile.horizon > 5 then
    local e5 = T.equity_share(plan.risk_score, profile.horizon - 5, profile.goal, profile.age + 5)
    parts[#parts + 1] = string.format("As the goal gets closer the core moves from shares to bonds: five years from "
      .. "now it would hold about %s shares.", pct(e5))
  elseif profile.horizon > 1 then
    parts[#parts + 1] = "As the goal gets closer the core moves from shares to bonds: a year before you need the "
      .. "money it would hold none."
  end
  return table.concat(parts, " ")
end

return T
