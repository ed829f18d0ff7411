/* The same strategy in Lua and in C over a seeded 20-year daily panel
 * (5,040 weekdays from 2000-01-03, no missing prices, the fixtures' LCG
 * as in bench_backtest.c), timed around keel_backtest_run_account, best of
 * REPEATS; prints both times and the ratio, and refuses a ratio when the
 * two runs' values differ by more than 1e-12 relative.
 *
 *   1. monthly rebalancing, 10 assets: inverse volatility over 252 days
 *      (the Lua module computes it in Lua from ctx:returns) against the
 *      built-in; and Ledoit-Wolf minimum variance (the Lua module calls
 *      R:cov and keel.optimize.min_variance) against the built-in;
 *   2. an on_bar over 100 assets every day: equal weights, back to them
 *      when one drifted more than 2 points (the Lua on_bar reads
 *      ctx.weights; the C one the input's weights).
 *
 * Usage: bench_lua [REPEATS [CASE]] (5; CASE: a word of the case's line,
 * e.g. "empty", to run only the cases whose line holds it) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/keel.h"
#include "keel/lua.h"

#define PANEL_SEED 20260601u
#define NDAYS 5040

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double lcg(uint32_t *state) {
  *state = 1664525u * *state + 1013904223u;
  return (double)*state / 4294967296.0 - 0.5;
}

static keel_panel *make_panel(keel_ctx *ctx, size_t na, size_t nd) {
  keel_date *dates = malloc(nd * sizeof *dates);
  double *px = malloc(nd * na * sizeof *px), *s = malloc(na * sizeof *s);
  char **sym = malloc(na * sizeof *sym);
  keel_panel *p = NULL;
  if (!dates || !px || !s || !sym) goto done;
  keel_date d;
  keel_date_from_ymd(2000, 1, 3, &d);
  for (size_t i = 0; i < nd; i++) {
    while (keel_date_weekday(d) >= 5) d++;
    dates[i] = d++;
  }
  for (size_t j = 0; j < na; j++) {
    s[j] = 0.02 + 0.04 * (double)j / (double)(na > 1 ? na - 1 : 1);
    sym[j] = malloc(16);
    snprintf(sym[j], 16, "A%03zu", j);
  }
  uint32_t st = PANEL_SEED;
  for (size_t j = 0; j < na; j++) px[j] = 100 * (1 + lcg(&st));
  for (size_t i = 1; i < nd; i++)
    for (size_t j = 0; j < na; j++) px[i * na + j] = px[(i - 1) * na + j] * (1 + 0.0002 + s[j] * lcg(&st));
  if (keel_panel_new(ctx, nd, na, dates, (const char *const *)sym, px, &p)) p = NULL;
  for (size_t j = 0; j < na; j++) free(sym[j]);
done:
  free(dates), free(px), free(s), free(sym);
  return p;
}

/* The same rule as the built-in, with the per-asset volatility from the
 * returns view's std() (no missing prices here, so no NaN to skip). */
static const char INVERSE_VOL[] =
    "return { name = 'inverse_vol', schedule = 'monthly',\n"
    "  params = { lookback = { type = 'integer', default = 252, min = 2 } },\n"
    "  rebalance = function(ctx, p)\n"
    "    local n, R, w = ctx.n, ctx:returns(p.lookback), {}\n"
    "    for j = 1, n do w[j] = 0 end\n"
    "    if #R < 2 then return w end\n"
    "    local sd, sum, nzero = R:std(), 0, 0\n"
    "    for j = 1, n do local s = sd[j] if s == 0 then nzero = nzero + 1 else sum = sum + 1 / s end end\n"
    "    for j = 1, n do\n"
    "      local s = sd[j]\n"
    "      if nzero > 0 then w[j] = (s == 0) and 1 / nzero or 0 else w[j] = 1 / s / sum end\n"
    "    end\n"
    "    return w\n"
    "  end }\n";

static const char MIN_VARIANCE[] =
    "local keel = require 'keel'\n"
    "return { name = 'min_variance', schedule = 'monthly',\n"
    "  rebalance = function(ctx, p)\n"
    "    local R, n, w = ctx:returns(252), ctx.n, {}\n"
    "    for j = 1, n do w[j] = 0 end\n"
    "    if #R < 2 then return w end\n"
    "    if #R == 2 then for j = 1, n do w[j] = 1 / n end return w end\n"
    "    local S = R:cov('ledoit_wolf', { periods_per_year = ctx.periods_per_year })\n"
    "    local r = keel.optimize.min_variance(S)\n"
    "    for j = 1, n do w[j] = math.max(r.weights[j], 0) end\n"
    "    return w\n"
    "  end }\n";

/* on_bar: the band check through keel.policy.band_breached (C over the
 * 100 weights). */
#define BAND_SOURCE(MAKE_BAND)                                                                        \
  "local keel = require 'keel'\n"                                                                     \
  "local target, band\n"                                                                              \
  "return { name = 'band',\n"                                                                         \
  "  rebalance = function(ctx, p) local w = {} for j = 1, ctx.n do w[j] = 1 / ctx.n end return w end,\n" \
  "  on_bar = function(ctx, p)\n"                                                                     \
  "    if not target then\n"                                                                          \
  "      target = keel.vector(ctx.n)\n"                                                               \
  "      for j = 1, ctx.n do target[j] = 1 / ctx.n end\n"                                             \
  "      band = " MAKE_BAND "\n"                                                                      \
  "    end\n"                                                                                         \
  "    if keel.policy.band_breached(ctx.weights, target, band) then return target end\n"              \
  "  end }\n"
static const char BAND[] = BAND_SOURCE("keel.policy.band { abs = 0.02 }");
/* The same with the band given as a table on every call (read and
 * checked each time). */
static const char BAND_TABLE[] = BAND_SOURCE("{ abs = 0.02 }");

/* on_bar: an empty one (the cost of a call). */
static const char EMPTY[] =
    "return { rebalance = function(ctx, p) local w = {} for j = 1, ctx.n do w[j] = 1 / ctx.n end return w end,\n"
    "  on_bar = function(ctx, p) end }\n";

/* on_bar: the same check as a Lua loop over ctx.weights. */
static const char DRIFT[] =
    "return { name = 'drift',\n"
    "  rebalance = function(ctx, p) local w = {} for j = 1, ctx.n do w[j] = 1 / ctx.n end return w end,\n"
    "  on_bar = function(ctx, p)\n"
    "    local n, w = ctx.n, ctx.weights\n"
    "    local e = 1 / n\n"
    "    for j = 1, n do\n"
    "      local d = w[j] - e\n"
    "      if d > 0.02 or d < -0.02 then\n"
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
  const double e = 1.0 / (double)in->nassets;
  for (size_t j = 0; j < in->nassets; j++) {
    const double d = in->weights[j] - e;
    if (d > 0.02 || d < -0.02) {
      for (size_t k = 0; k < in->nassets; k++) target[k] = e;
      *go = 1;
      return KEEL_OK;
    }
  }
  return KEEL_OK;
}

static keel_status c_band(void *st, keel_ctx *ctx, const keel_strategy_input *in, double *target, int *go,
                          keel_opt_record *rec) {
  (void)st, (void)ctx, (void)rec;
  double t[100];
  const keel_band b = {KEEL_BAND_ABSOLUTE, 0.02, 0, KEEL_BAND_TO_TARGET, 0};
  for (size_t k = 0; k < in->nassets; k++) t[k] = 1.0 / (double)in->nassets;
  if (keel_band_breached(&b, in->nassets, in->weights, t) < in->nassets) {
    memcpy(target, t, in->nassets * sizeof *t);
    *go = 1;
  }
  return KEEL_OK;
}

static keel_status c_empty(void *st, keel_ctx *ctx, const keel_strategy_input *in, double *target, int *go,
                           keel_opt_record *rec) {
  (void)st, (void)ctx, (void)in, (void)target, (void)go, (void)rec;
  return KEEL_OK;
}

static const keel_strategy_ops C_DRIFT = {"drift", NULL, c_rebalance, NULL, c_on_bar};
static const keel_strategy_ops C_BAND = {"band", NULL, c_rebalance, NULL, c_band};
static const keel_strategy_ops C_EMPTY = {"empty", NULL, c_rebalance, NULL, c_empty};

/* Best time of `repeats` runs; the last result in *out. */
static double timed(keel_ctx *ctx, const keel_panel *P, keel_strategy *s, size_t na, keel_calendar cal, int repeats,
                    keel_backtest_result **out) {
  size_t *cols = malloc(na * sizeof *cols);
  for (size_t j = 0; j < na; j++) cols[j] = j;
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.nassets = na;
  sub.assets = cols;
  sub.strategy = s;
  sub.schedule.calendar = cal;
  sub.costs.buy_bps = sub.costs.sell_bps = 10;
  sub.costs.use_lots = 0;
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 1;
  a.subs = &sub;
  a.record_holdings = 0;
  double best = INFINITY;
  *out = NULL;
  for (int r = 0; r < repeats; r++) {
    keel_backtest_result *res = NULL;
    const double t0 = now();
    keel_status st = keel_backtest_run_account(ctx, P, &a, &res);
    const double t = now() - t0;
    if (st) {
      fprintf(stderr, "bench_lua: %s\n", keel_errmsg(ctx));
      exit(1);
    }
    if (t < best) best = t;
    keel_backtest_result_free(*out);
    *out = res;
  }
  free(cols);
  return best;
}

static const char *ONLY;

static void compare(const char *what, keel_ctx *ctx, const keel_panel *P, keel_strategy *ls, keel_strategy *cs,
                    size_t na, keel_calendar cal, int repeats, double target) {
  if (ONLY && !strstr(what, ONLY)) return;
  keel_backtest_result *rl, *rc;
  const double tc = timed(ctx, P, cs, na, cal, repeats, &rc);
  const double tl = timed(ctx, P, ls, na, cal, repeats, &rl);
  const size_t n = keel_backtest_npoints(rl);
  double dev = 0;
  for (size_t i = 0; i < n; i++)
    dev = fmax(dev, fabs(keel_backtest_values(rl)[i] / keel_backtest_values(rc)[i] - 1));
  char tgt[32] = "(no target)";
  if (target > 0) snprintf(tgt, sizeof tgt, "(target <= %.1f)", target);
  printf("%-44s C %8.4f s  Lua %8.4f s  ratio %5.2f %-16s rebalances %zu/%zu  max rel diff %.1e\n", what, tc, tl,
         dev <= 1e-12 ? tl / tc : NAN, tgt, keel_backtest_nrebalances(rl), keel_backtest_nrebalances(rc), dev);
  if (dev > 1e-12) printf("  the runs differ: no ratio\n");
  keel_backtest_result_free(rl);
  keel_backtest_result_free(rc);
}

static keel_strategy *lua(keel_ctx *ctx, const char *src) {
  keel_strategy *s = NULL;
  if (keel_lua_strategy_from_source(ctx, NULL, src, strlen(src), "bench.lua", NULL, &s)) {
    fprintf(stderr, "bench_lua: %s\n", keel_errmsg(ctx));
    exit(1);
  }
  return s;
}

int main(int argc, char **argv) {
  const int repeats = argc > 1 ? atoi(argv[1]) : 5;
  ONLY = argc > 2 ? argv[2] : NULL;
  keel_ctx *ctx;
  if (keel_ctx_new(NULL, &ctx)) return 1;
  keel_panel *P10 = make_panel(ctx, 10, NDAYS), *P100 = make_panel(ctx, 100, NDAYS);
  if (!P10 || !P100) return 1;
  printf("bench_lua: %d days, best of %d\n", NDAYS, repeats);

  keel_strategy *ls = lua(ctx, INVERSE_VOL), *cs;
  keel_strategy_builtin(ctx, KEEL_STRAT_INVERSE_VOL, NULL, &cs);
  compare("inverse_vol, 10 assets, monthly", ctx, P10, ls, cs, 10, KEEL_CAL_MONTHLY, repeats, 1.5);
  keel_strategy_free(ls);
  keel_strategy_free(cs);

  ls = lua(ctx, MIN_VARIANCE);
  keel_strategy_builtin(ctx, KEEL_STRAT_MIN_VARIANCE, NULL, &cs);
  compare("min_variance (Ledoit-Wolf), 10 assets, monthly", ctx, P10, ls, cs, 10, KEEL_CAL_MONTHLY, repeats, 1.5);
  keel_strategy_free(ls);
  keel_strategy_free(cs);

  ls = lua(ctx, BAND);
  keel_strategy c = {&C_BAND, NULL};
  compare("on_bar every day, 100 assets: band check", ctx, P100, ls, &c, 100, KEEL_CAL_NEVER, repeats, 3.0);
  keel_strategy_free(ls);
  ls = lua(ctx, BAND_TABLE);
  compare("  the band as a table each call", ctx, P100, ls, &c, 100, KEEL_CAL_NEVER, repeats, 0);
  keel_strategy_free(ls);
  ls = lua(ctx, DRIFT);
  c.ops = &C_DRIFT;
  compare("  the same as a Lua loop over ctx.weights", ctx, P100, ls, &c, 100, KEEL_CAL_NEVER, repeats, 0);
  keel_strategy_free(ls);
  ls = lua(ctx, EMPTY);
  c.ops = &C_EMPTY;
  compare("  an empty on_bar (the cost of a call)", ctx, P100, ls, &c, 100, KEEL_CAL_NEVER, repeats, 0);
  keel_strategy_free(ls);

  keel_panel_free(P10);
  keel_panel_free(P100);
  keel_ctx_free(ctx);
  return 0;
}
