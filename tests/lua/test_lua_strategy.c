/* Lua strategies behind keel_strategy_ops: the same backtests as the C
 * built-ins (to 1e-12) on the shared stock prices, params validation,
 * on_bar against a C strategy with the same on_bar, ctx views, target
 * validation, modules loaded by name with require, rebuild after a limit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_test.h"
#include "keel/lua.h"

static keel_panel *PANEL;

static keel_panel *panel(void) {
  if (PANEL) return PANEL;
  const char *path = keel_test_shared_data("stock_prices.csv");
  if (!path) return NULL;
  assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &PANEL));
  return PANEL;
}

/* Panel columns of the symbols. */
static void cols_of(const char *const *syms, size_t n, size_t *cols) {
  for (size_t i = 0; i < n; i++) assert_int_equal(keel_panel_find(PANEL, syms[i], &cols[i]), 1);
}

/* Runs one sub-account over the panel with strategy s. */
static keel_status run(keel_strategy *s, const size_t *cols, size_t n, keel_calendar cal, double bps, size_t start,
                       size_t end, keel_backtest_result **out) {
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.nassets = n;
  sub.assets = cols;
  sub.strategy = s;
  sub.capital = 100000;
  sub.schedule.calendar = cal;
  sub.costs.buy_bps = sub.costs.sell_bps = bps;
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 1;
  a.subs = &sub;
  a.start = start;
  a.end = end;
  return keel_backtest_run_account(CTX, PANEL, &a, out);
}

static void assert_same_run(const keel_backtest_result *a, const keel_backtest_result *b, double rtol) {
  const size_t n = keel_backtest_npoints(a);
  assert_int_equal(n, keel_backtest_npoints(b));
  const double *va = keel_backtest_values(a), *vb = keel_backtest_values(b);
  for (size_t i = 0; i < n; i++) assert_close(va[i], vb[i], rtol, 0);
  assert_int_equal(keel_backtest_ntrades(a), keel_backtest_ntrades(b));
  assert_int_equal(keel_backtest_nrebalances(a), keel_backtest_nrebalances(b));
}

static keel_strategy *lua_strategy(const char *src, const char *params) {
  keel_strategy *s = NULL;
  keel_lua_config cfg;
  keel_lua_config_default(&cfg);
  assert_ok(CTX, keel_lua_strategy_from_source(CTX, &cfg, src, strlen(src), "test_strategy.lua", params, &s));
  assert_true(keel_lua_strategy_is(s));
  return s;
}

static keel_status lua_strategy_status(const char *src, const char *params) {
  keel_strategy *s = NULL;
  keel_lua_config cfg;
  keel_lua_config_default(&cfg);
  keel_status st = keel_lua_strategy_from_source(CTX, &cfg, src, strlen(src), "bad.lua", params, &s);
  if (st) assert_null(s);
  keel_strategy_free(s);
  return st;
}

static const char SIXTY_FORTY[] =
    "return {\n"
    "  name = 'sixty_forty',\n"
    "  params = { equity = { type = 'number', default = 0.6, min = 0, max = 1 } },\n"
    "  schedule = 'monthly',\n"
    "  rebalance = function(ctx, p) return { p.equity, 1 - p.equity } end,\n"
    "}\n";

static void test_sixty_forty(void **state) {
  (void)state;
  if (!panel()) skip();
  const char *syms[] = {"AAPL", "XOM"};
  size_t cols[2];
  cols_of(syms, 2, cols);
  keel_strategy *ls = lua_strategy(SIXTY_FORTY, "{\"equity\": 0.6}");
  assert_string_equal(keel_lua_strategy_name(ls), "sixty_forty");
  keel_schedule sc;
  assert_int_equal(keel_lua_strategy_schedule(ls, &sc), 1);
  assert_int_equal(sc.calendar, KEEL_CAL_MONTHLY);
  const double w[2] = {0.6, 0.4};
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  bp.weights = w;
  bp.nweights = 2;
  keel_strategy *cs;
  assert_ok(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_FIXED, &bp, &cs));
  keel_backtest_result *rl, *rc;
  assert_ok(CTX, run(ls, cols, 2, KEEL_CAL_MONTHLY, 10, 0, 0, &rl));
  assert_ok(CTX, run(cs, cols, 2, KEEL_CAL_MONTHLY, 10, 0, 0, &rc));
  assert_true(keel_backtest_npoints(rl) > 7000);
  assert_same_run(rl, rc, 1e-12);
  /* the same instance runs again (a second run re-inits it) */
  keel_backtest_result *r2;
  assert_ok(CTX, run(ls, cols, 2, KEEL_CAL_MONTHLY, 10, 0, 0, &r2));
  assert_same_run(r2, rc, 0);
  keel_backtest_result_free(r2);
  keel_backtest_result_free(rl);
  keel_backtest_result_free(rc);
  keel_strategy_free(ls);
  keel_strategy_free(cs);
}

/* inverse_vol, as docs/strategies.md states it, over ctx:returns. */
static const char INVERSE_VOL[] =
    "local M = { name = 'inverse_vol', schedule = 'monthly',\n"
    "  params = { lookback = { type = 'integer', default = 252, min = 2 },\n"
    "             invest = { type = 'number', default = 1, min = 0, max = 1 } } }\n"
    "function M.rebalance(ctx, p)\n"
    "  local n, R = ctx.n, ctx:returns(p.lookback)\n"
    "  local w, sig, use, nzero, sum = {}, {}, {}, 0, 0\n"
    "  for j = 1, n do\n"
    "    w[j] = 0\n"
    "    local px = ctx:price(j)\n"
    "    if px == px and #R > 0 then\n"
    "      local c = R:col(j):totable()\n"
    "      local cnt, mean = 0, 0\n"
    "      for t = 1, #c do local x = c[t] if x == x then cnt = cnt + 1; mean = mean + x end end\n"
    "      if cnt >= 2 then\n"
    "        mean = mean / cnt\n"
    "        local ss = 0\n"
    "        for t = 1, #c do local x = c[t] if x == x then ss = ss + (x - mean) * (x - mean) end end\n"
    "        local s = math.sqrt(ss / (cnt - 1))\n"
    "        use[#use + 1] = j; sig[j] = s\n"
    "        if s == 0 then nzero = nzero + 1 else sum = sum + 1 / s end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  for _, j in ipairs(use) do\n"
    "    local s = sig[j]\n"
    "    local v\n"
    "    if nzero > 0 then v = (s == 0) and 1 / nzero or 0 else v = 1 / s / sum end\n"
    "    w[j] = p.invest * v\n"
    "  end\n"
    "  return w\n"
    "end\n"
    "return M\n";

static void test_inverse_vol(void **state) {
  (void)state;
  if (!panel()) skip();
  /* GOOG, FB and BABA list late: the window rules for late listings */
  const char *syms[] = {"AAPL", "GOOG", "FB", "GE", "XOM", "PFE", "BABA", "JPM"};
  size_t cols[8];
  cols_of(syms, 8, cols);
  keel_strategy *ls = lua_strategy(INVERSE_VOL, "{\"lookback\": 126, \"invest\": 0.9}");
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  bp.lookback = 126;
  bp.invest = 0.9;
  keel_strategy *cs;
  assert_ok(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_INVERSE_VOL, &bp, &cs));
  keel_backtest_result *rl, *rc;
  assert_ok(CTX, run(ls, cols, 8, KEEL_CAL_MONTHLY, 5, 0, 0, &rl));
  assert_ok(CTX, run(cs, cols, 8, KEEL_CAL_MONTHLY, 5, 0, 0, &rc));
  assert_same_run(rl, rc, 1e-12);
  keel_backtest_result_free(rl);
  keel_backtest_result_free(rc);
  keel_strategy_free(ls);
  keel_strategy_free(cs);
}

/* min_variance with Ledoit-Wolf through keel.estimate / keel.optimize, on
 * assets listed throughout (the built-in's first rows: nothing usable
 * with fewer than 2 returns, equal weights with 2). */
static const char MIN_VARIANCE[] =
    "local keel = require 'keel'\n"
    "return { name = 'minvar', schedule = 'monthly',\n"
    "  params = { lookback = { type = 'integer', default = 252, min = 3 },\n"
    "             max_weight = { type = 'number', default = 1, min = 0 } },\n"
    "  rebalance = function(ctx, p)\n"
    "    local R, n = ctx:returns(p.lookback), ctx.n\n"
    "    local w = {}\n"
    "    for j = 1, n do w[j] = 0 end\n"
    "    if #R < 2 then return w end\n"
    "    if #R == 2 then for j = 1, n do w[j] = 1 / n end return w end\n"
    "    local S = R:cov('ledoit_wolf', { periods_per_year = ctx.periods_per_year })\n"
    "    local r = keel.optimize.min_variance(S, { max_weight = p.max_weight })\n"
    "    for j = 1, n do w[j] = math.max(r.weights[j], 0) end\n"
    "    return w\n"
    "  end }\n";

static void test_min_variance(void **state) {
  (void)state;
  if (!panel()) skip();
  const char *syms[] = {"AAPL", "GE", "XOM", "PFE", "JPM", "WMT"};
  size_t cols[6];
  cols_of(syms, 6, cols);
  keel_strategy *ls = lua_strategy(MIN_VARIANCE, "{\"lookback\": 252, \"max_weight\": 0.35}");
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  bp.max_weight = 0.35;
  keel_strategy *cs;
  assert_ok(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_MIN_VARIANCE, &bp, &cs));
  keel_backtest_result *rl, *rc;
  assert_ok(CTX, run(ls, cols, 6, KEEL_CAL_MONTHLY, 10, 0, 0, &rl));
  assert_ok(CTX, run(cs, cols, 6, KEEL_CAL_MONTHLY, 10, 0, 0, &rc));
  assert_same_run(rl, rc, 1e-12);
  /* the optimiser calls are in the audit trail, as the built-in's */
  assert_true(keel_backtest_nopt_calls(rl) > 300);
  assert_int_equal(keel_backtest_nopt_calls(rl), keel_backtest_nopt_calls(rc));
  const keel_opt_call *ol = keel_backtest_opt_calls(rl), *oc = keel_backtest_opt_calls(rc);
  assert_int_equal(ol[10].date, oc[10].date);
  assert_close(ol[10].rec.objective_vol, oc[10].rec.objective_vol, 1e-12, 0);
  keel_backtest_result_free(rl);
  keel_backtest_result_free(rc);
  keel_strategy_free(ls);
  keel_strategy_free(cs);
}

static void test_params(void **state) {
  (void)state;
  const char *src =
      "return { name = 'p', params = {\n"
      "  equity = { type = 'number', default = 0.6, min = 0, max = 1 },\n"
      "  lookback = { type = 'integer', default = 252, min = 2 },\n"
      "  use_costs = { type = 'boolean', default = true },\n"
      "  cov = { type = 'string', default = 'ledoit_wolf', values = { 'sample', 'ewma', 'ledoit_wolf' } } },\n"
      "  rebalance = function(ctx, p) return { p.equity, 1 - p.equity } end }\n";
  keel_strategy *s = lua_strategy(src, "{\"equity\": 0.5, \"lookback\": 20, \"use_costs\": false, \"cov\": \"ewma\"}");
  keel_strategy_free(s);
  s = lua_strategy(src, NULL);
  keel_strategy_free(s);
  s = lua_strategy(src, "{\"lookback\": 20.0}"); /* an integral real is an integer */
  keel_strategy_free(s);
  struct {
    const char *json, *msg;
  } bad[] = {
      {"{\"equty\": 0.5}", "unknown param 'equty'"},
      {"{\"equity\": \"high\"}", "param 'equity' must be a number"},
      {"{\"equity\": 1.5}", "param 'equity' is 1.5, above its max 1"},
      {"{\"equity\": -0.1}", "below its min 0"},
      {"{\"lookback\": 2.5}", "param 'lookback' must be an integer"},
      {"{\"lookback\": 1}", "param 'lookback' is 1, below its min 2"},
      {"{\"use_costs\": 1}", "param 'use_costs' must be a boolean"},
      {"{\"cov\": \"semi\"}", "param 'cov' is 'semi', not one of: sample, ewma, ledoit_wolf"},
      {"[1, 2]", "params must be a JSON object"},
      {"{\"equity\": ", "params must be a JSON object"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(lua_strategy_status(src, bad[i].json), KEEL_EINVAL);
    assert_errmsg(CTX, bad[i].msg);
    assert_errmsg(CTX, i < 8 ? "strategy p: " : "strategy bad: "); /* named by the module once it ran */
  }
  /* faults of the module itself */
  struct {
    const char *src, *msg;
    keel_status st;
  } mods[] = {
      {"return 42", "the module returned a number", KEEL_ELUA},
      {"return { }", "rebalance must be a function", KEEL_ELUA},
      {"return { rebalance = function() end, on_bar = 1 }", "on_bar must be a function or nil", KEEL_ELUA},
      {"return { rebalance = function() end, schedule = 'hourly' }", "unknown schedule 'hourly'", KEEL_ELUA},
      {"return { rebalance = function() end, schedule = { every = 0 } }", "every = n", KEEL_ELUA},
      {"return { rebalance = function() end, params = { x = { type = 'float', default = 1 } } }", "has type float",
       KEEL_ELUA},
      {"return { rebalance = function() end, params = { x = { type = 'integer', default = 1.5 } } }",
       "the default of param 'x' is not an integer", KEEL_ELUA},
      {"return { rebalance = function() end, params = { x = { type = 'number' } } }",
       "param 'x' has no default and was not given", KEEL_EINVAL},
      {"return { rebalance = function() end, params = { x = { type = 'number', default = 5, max = 1 } } }",
       "param 'x' is 5 (its default), above its max 1", KEEL_EINVAL},
      {"return {", "bad.lua:1:", KEEL_ELUA},
      {"error('boom')", "bad.lua:1: boom", KEEL_ELUA},
  };
  for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
    assert_int_equal(lua_strategy_status(mods[i].src, NULL), mods[i].st);
    assert_errmsg(CTX, mods[i].msg);
  }
  /* schedules */
  s = lua_strategy("return { rebalance = function() end, schedule = { every = 21 } }", NULL);
  keel_schedule sc;
  assert_int_equal(keel_lua_strategy_schedule(s, &sc), 1);
  assert_int_equal(sc.calendar, KEEL_CAL_EVERY_N);
  assert_int_equal(sc.every, 21);
  keel_strategy_free(s);
  s = lua_strategy("return { rebalance = function() end }", NULL);
  assert_int_equal(keel_lua_strategy_schedule(s, &sc), 0);
  assert_int_equal(sc.calendar, KEEL_CAL_NEVER);
  assert_string_equal(keel_lua_strategy_name(s), "test_strategy");
  keel_strategy_free(s);
}

/* ---- on_bar against a C strategy with the same on_bar ---- */

/* Equal weights; on every bar, back to equal weights when any weight
 * drifted more than `band` from 1/n. */
static const char ON_BAR_LUA[] =
    "return { name = 'drift', params = { band = { type = 'number', default = 0.02 } },\n"
    "  rebalance = function(ctx, p) local w = {} for j = 1, ctx.n do w[j] = 1 / ctx.n end return w end,\n"
    "  on_bar = function(ctx, p)\n"
    "    local n, w = ctx.n, ctx.weights\n"
    "    local e = 1 / n\n"
    "    for j = 1, n do\n"
    "      local d = w[j] - e\n"
    "      if d > p.band or d < -p.band then\n"
    "        local t = {} for k = 1, n do t[k] = e end return t\n"
    "      end\n"
    "    end\n"
    "  end }\n";

static keel_status c_rebalance(void *st, keel_ctx *ctx, const keel_strategy_input *in, double *target,
                               keel_opt_record *rec) {
  (void)st, (void)ctx, (void)rec;
  for (size_t j = 0; j < in->nassets; j++) target[j] = 1.0 / (double)in->nassets;
  return KEEL_OK;
}

static keel_status c_on_bar(void *st, keel_ctx *ctx, const keel_strategy_input *in, double *target, int *go,
                            keel_opt_record *rec) {
  (void)st, (void)ctx, (void)rec;
  const double e = 1.0 / (double)in->nassets, band = 0.02;
  for (size_t j = 0; j < in->nassets; j++) {
    const double d = in->weights[j] - e;
    if (d > band || d < -band) {
      for (size_t k = 0; k < in->nassets; k++) target[k] = e;
      *go = 1;
      return KEEL_OK;
    }
  }
  return KEEL_OK;
}

static const keel_strategy_ops C_DRIFT = {"drift", NULL, c_rebalance, NULL, c_on_bar};

static void test_on_bar(void **state) {
  (void)state;
  if (!panel()) skip();
  const char *syms[] = {"AAPL", "GE", "XOM", "PFE", "JPM"};
  size_t cols[5];
  cols_of(syms, 5, cols);
  keel_strategy *ls = lua_strategy(ON_BAR_LUA, NULL);
  keel_strategy cs = {&C_DRIFT, NULL};
  keel_backtest_result *rl, *rc;
  assert_ok(CTX, run(ls, cols, 5, KEEL_CAL_NEVER, 10, 0, 3000, &rl));
  assert_ok(CTX, run(&cs, cols, 5, KEEL_CAL_NEVER, 10, 0, 3000, &rc));
  assert_same_run(rl, rc, 1e-12);
  assert_true(keel_backtest_nrebalances(rl) > 20);
  keel_backtest_result_free(rl);
  keel_backtest_result_free(rc);
  keel_strategy_free(ls);
}

/* ---- ctx ---- */

static void test_ctx_fields(void **state) {
  (void)state;
  if (!panel()) skip();
  const char *syms[] = {"XOM", "AAPL", "GE"}; /* not contiguous: ctx:prices copies */
  size_t cols[3];
  cols_of(syms, 3, cols);
  const char *src =
      "return { schedule = 'never',\n"
      "  init = function(ctx, p) ctx.state.inits = (ctx.state.inits or 0) + 1 end,\n"
      "  rebalance = function(ctx, p)\n"
      "    assert(ctx.n == 3 and #ctx.assets == 3 and ctx.assets[1] == 'XOM' and ctx.assets[3] == 'GE')\n"
      "    assert(not pcall(function() ctx.assets[1] = 'X' end))\n"
      "    local P = ctx:prices(5)\n"
      "    assert(#P == ctx.t or #P == 5)\n"
      "    assert(P:get(#P, 2) == ctx:price(2))\n"
      "    local R = ctx:returns(3)\n"
      "    if #R > 0 then assert(math.abs(R:get(#R, 1) - (P:get(#P, 1) / P:get(#P - 1, 1) - 1)) < 1e-15) end\n"
      "    local L = ctx:returns(3, 'log')\n"
      "    if #L > 0 then assert(math.abs(L:get(#L, 1) - math.log(P:get(#P, 1) / P:get(#P - 1, 1))) < 1e-15) end\n"
      "    assert(#ctx.weights == 3 and math.abs(ctx.cost_buy[1] - 0.001) < 1e-15 and ctx.value > 0 and ctx.cash >= 0)\n"
      "    assert(ctx.periods_per_year == 252 and type(ctx.date) == 'string' and #ctx.date == 10)\n"
      "    ctx.log('rebalance', ctx.date, ctx.t, ctx.state.inits)\n"
      "    print('print works')\n"
      "    return { XOM = 0.5, GE = 0.25 }\n"
      "  end }\n";
  keel_strategy *ls = lua_strategy(src, NULL);
  keel_backtest_result *r;
  assert_ok(CTX, run(ls, cols, 3, KEEL_CAL_MONTHLY, 10, 100, 200, &r));
  const char *log = keel_lua_strategy_log(ls);
  assert_non_null(strstr(log, "rebalance\t1990-"));
  assert_non_null(strstr(log, "\t1\n"));
  assert_non_null(strstr(log, "print works\n"));
  /* the symbol-keyed targets: 50% XOM, 0 AAPL, 25% GE */
  const double *h = keel_backtest_holdings(r, 0);
  assert_true(h[cols[0]] > 0 && h[cols[1]] == 0 && h[cols[2]] > 0);
  const double v0 = keel_backtest_values(r)[0];
  assert_close(h[cols[0]] * keel_panel_price(PANEL, 100, cols[0]) / v0, 0.5, 2e-3, 0);
  keel_backtest_result_free(r);
  keel_strategy_free(ls);
}

static void test_stale_view(void **state) {
  (void)state;
  if (!panel()) skip();
  size_t cols[2];
  const char *syms[] = {"AAPL", "XOM"};
  cols_of(syms, 2, cols);
  const char *src =
      "return { schedule = 'monthly', rebalance = function(ctx, p)\n"
      "  if ctx.state.R then local x = ctx.state.R:get(1, 1) end\n"
      "  ctx.state.R = ctx:returns(10)\n"
      "  return { 0.5, 0.5 } end }\n";
  keel_strategy *ls = lua_strategy(src, NULL);
  keel_backtest_result *r = NULL;
  assert_status(CTX, run(ls, cols, 2, KEEL_CAL_MONTHLY, 0, 0, 300, &r), KEEL_ELUA);
  assert_errmsg(CTX, "view used after its call returned");
  assert_errmsg(CTX, "test_strategy.lua:2:");
  assert_errmsg(CTX, "strategy test_strategy: rebalance on 1990-");
  assert_null(r);
  keel_strategy_free(ls);
  /* a second ctx:returns in one call makes the first stale; borrowed views are read-only */
  const char *src2 =
      "return { rebalance = function(ctx, p)\n"
      "  local a = ctx:returns(5); local b = ctx:returns(6)\n"
      "  assert(not pcall(function() return a:get(1, 1) end))\n"
      "  assert(not pcall(function() ctx.weights[1] = 1 end))\n"
      "  if #b > 0 then assert(b:get(1, 1) == b:get(1, 1)) end\n"
      "  return { 0.5, 0.5 } end }\n";
  ls = lua_strategy(src2, NULL);
  assert_ok(CTX, run(ls, cols, 2, KEEL_CAL_MONTHLY, 0, 50, 100, &r));
  keel_backtest_result_free(r);
  keel_strategy_free(ls);
}

static void test_targets(void **state) {
  (void)state;
  if (!panel()) skip();
  size_t cols[2];
  const char *syms[] = {"AAPL", "XOM"};
  cols_of(syms, 2, cols);
  struct {
    const char *ret, *msg;
  } bad[] = {
      {"{ -0.1, 0.5 }", "rebalance gave AAPL the weight -0.10000000000000001 (below 0)"},
      {"{ 0/0, 0.5 }", "rebalance gave AAPL the weight -nan (not finite)"},
      {"{ 0.7, 0.5 }", "rebalance gave weights summing to 1.2"},
      {"{ 0.5 }", "rebalance returned 1 weights for 2 assets"},
      {"{ 0.5, 'x' }", "rebalance returned weight 2 (XOM) as a string"},
      {"{ SPY = 0.5 }", "rebalance returned a weight for 'SPY', which is not an asset"},
      {"{ [true] = 1 }", "a boolean key"},
      {"'all in'", "rebalance returned a string"},
      {"nil", "rebalance returned a nil"},
      {"keel.vector(3)", "rebalance returned a view of 3 weights for 2 assets"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char src[512];
    snprintf(src, sizeof src,
             "local keel = require 'keel'\nreturn { name = 'bad', rebalance = function(ctx, p) return %s end }",
             bad[i].ret);
    keel_strategy *ls = lua_strategy(src, NULL);
    keel_backtest_result *r = NULL;
    keel_status st = run(ls, cols, 2, KEEL_CAL_MONTHLY, 0, 50, 100, &r);
    assert_int_equal(st, KEEL_ELUA);
    if (strstr(bad[i].msg, "not finite")) assert_errmsg(CTX, "(not finite)"); /* NaN prints as nan or -nan */
    else assert_errmsg(CTX, bad[i].msg);
    assert_errmsg(CTX, "strategy bad: rebalance on 1990-");
    assert_null(r);
    keel_strategy_free(ls);
  }
  /* a view is accepted, as is a keyed table with missing symbols; the
   * table is read raw (its erroring metamethods are never called) */
  const char *good[] = {"local v = keel.vector(2); v[1] = 0.3; v[2] = 0.3; return v", "return { XOM = 1 }",
                        "return {}",
                        "return setmetatable({ 0.5, 0.5 }, { __index = function() error('no') end, "
                        "__len = function() error('no') end })"};
  for (size_t i = 0; i < 4; i++) {
    char src[512];
    snprintf(src, sizeof src, "local keel = require 'keel'\nreturn { rebalance = function(ctx, p) %s end }", good[i]);
    keel_strategy *ls = lua_strategy(src, NULL);
    keel_backtest_result *r = NULL;
    assert_ok(CTX, run(ls, cols, 2, KEEL_CAL_MONTHLY, 0, 50, 100, &r));
    keel_backtest_result_free(r);
    keel_strategy_free(ls);
  }
}

/* A module found by name in a folder, requiring a helper from it. */
static void test_load_by_name(void **state) {
  (void)state;
  if (!panel()) skip();
  const char *dir = keel_test_tmp_path("strategies");
  char path[512];
  assert_int_equal(system("true"), 0);
  snprintf(path, sizeof path, "mkdir -p '%s/lib'", dir);
  assert_int_equal(system(path), 0);
  snprintf(path, sizeof path, "%s/lib/weights.lua", dir);
  const char helper[] = "local M = {}\nfunction M.equal(n) local w = {} for i = 1, n do w[i] = 1 / n end return w end\n"
                        "return M\n";
  assert_int_equal(keel_test_write_file(path, helper, strlen(helper)), 0);
  snprintf(path, sizeof path, "%s/equal_lua.lua", dir);
  const char mod[] = "local W = require 'lib.weights'\nassert(require 'lib.weights' == W)\n"
                     "return { name = 'equal_lua', schedule = 'quarterly',\n"
                     "  rebalance = function(ctx, p) return W.equal(ctx.n) end }\n";
  assert_int_equal(keel_test_write_file(path, mod, strlen(mod)), 0);
  keel_lua_config cfg;
  keel_lua_config_default(&cfg);
  const char *paths[] = {"/nonexistent", dir, NULL};
  cfg.paths = paths;
  keel_strategy *ls;
  assert_ok(CTX, keel_lua_strategy_load(CTX, &cfg, "equal_lua", NULL, &ls));
  assert_string_equal(keel_lua_strategy_name(ls), "equal_lua");
  const char *syms[] = {"AAPL", "GE", "XOM"};
  size_t cols[3];
  cols_of(syms, 3, cols);
  keel_strategy *cs;
  assert_ok(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_EQUAL, NULL, &cs));
  keel_backtest_result *rl, *rc;
  assert_ok(CTX, run(ls, cols, 3, KEEL_CAL_QUARTERLY, 10, 0, 0, &rl));
  assert_ok(CTX, run(cs, cols, 3, KEEL_CAL_QUARTERLY, 10, 0, 0, &rc));
  assert_same_run(rl, rc, 1e-12);
  keel_backtest_result_free(rl);
  keel_backtest_result_free(rc);
  keel_strategy_free(ls);
  /* by path too (its folder is searched first) */
  assert_ok(CTX, keel_lua_strategy_load(CTX, NULL, path, NULL, &ls));
  keel_strategy_free(ls);
  keel_strategy_free(cs);
  /* not found; bad names; require outside the folders */
  assert_status(CTX, keel_lua_strategy_load(CTX, &cfg, "missing", NULL, &ls), KEEL_EINVAL);
  assert_errmsg(CTX, "module 'missing' not found");
  assert_status(CTX, keel_lua_strategy_load(CTX, &cfg, "a;b", NULL, &ls), KEEL_EINVAL);
  const char *esc = "require('..lib.weights') return { rebalance = function() end }";
  assert_int_equal(lua_strategy_status(esc, NULL), KEEL_ELUA);
  assert_errmsg(CTX, "bad module name");
}

/* A limit ends the run; the state is rebuilt and the module reloaded for
 * the next run, which gives the right answer. */
static void test_rebuild_after_limit(void **state) {
  (void)state;
  if (!panel()) skip();
  size_t cols[2];
  const char *syms[] = {"AAPL", "XOM"};
  cols_of(syms, 2, cols);
  const char *src =
      "local calls = 0\n"
      "return { schedule = 'monthly', rebalance = function(ctx, p)\n"
      "  calls = calls + 1; ctx.state.calls = calls\n"
      "  if ctx.date == '1991-01-02' then while true do end end\n"
      "  if ctx.date == '1991-02-01' then local t = {} while true do t[#t + 1] = ('xxxxxxxxxx'):rep(100) .. #t end end\n"
      "  return { 0.6, 0.4 } end }\n";
  keel_lua_config cfg;
  keel_lua_config_default(&cfg);
  cfg.limits.instructions = 5000000;
  cfg.limits.mem_bytes = 16u << 20;
  keel_strategy *ls;
  assert_ok(CTX, keel_lua_strategy_from_source(CTX, &cfg, src, strlen(src), "limits.lua", NULL, &ls));
  keel_backtest_result *r = NULL;
  assert_status(CTX, run(ls, cols, 2, KEEL_CAL_MONTHLY, 0, 0, 0, &r), KEEL_ELIMIT);
  assert_errmsg(CTX, "limits.lua:4: instruction limit of 5000000 reached");
  assert_errmsg(CTX, "rebalance on 1991-01-02");
  size_t d;
  keel_date dd;
  assert_int_equal(keel_date_parse("1991-01-03", 10, &dd), 0);
  for (d = 0; keel_panel_dates(PANEL)[d] < dd; d++) {
  }
  assert_status(CTX, run(ls, cols, 2, KEEL_CAL_MONTHLY, 0, d, 0, &r), KEEL_ELIMIT);
  assert_errmsg(CTX, "limits.lua:5: memory limit of 16777216 bytes reached");
  const double w[2] = {0.6, 0.4};
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  bp.weights = w;
  bp.nweights = 2;
  keel_strategy *cs;
  assert_ok(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_FIXED, &bp, &cs));
  keel_backtest_result *rc;
  assert_ok(CTX, run(ls, cols, 2, KEEL_CAL_MONTHLY, 0, 0, d - 1, &r));
  assert_ok(CTX, run(cs, cols, 2, KEEL_CAL_MONTHLY, 0, 0, d - 1, &rc));
  assert_same_run(r, rc, 0);
  keel_backtest_result_free(r);
  keel_backtest_result_free(rc);
  keel_strategy_free(ls);
  keel_strategy_free(cs);
}

static int teardown(void **state) {
  keel_panel_free(PANEL);
  PANEL = NULL;
  return keel_test_teardown(state);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sixty_forty), cmocka_unit_test(test_inverse_vol),
      cmocka_unit_test(test_min_variance), cmocka_unit_test(test_params),
      cmocka_unit_test(test_on_bar), cmocka_unit_test(test_ctx_fields),
      cmocka_unit_test(test_stale_view), cmocka_unit_test(test_targets),
      cmocka_unit_test(test_load_by_name), cmocka_unit_test(test_rebuild_after_limit),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, teardown);
}
