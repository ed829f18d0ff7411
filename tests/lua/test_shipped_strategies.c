/* The shipped Lua strategies (strategies/) over the shared price data.
 *
 * Each one runs a whole backtest through keel_lua_strategy_load and
 * keel_backtest_run_account and is checked against an independent
 * reference:
 *   - 60/40, equal weight, inverse vol, min variance, max Sharpe (with
 *     costs) and risk parity against the C built-ins (keel_strategy_builtin)
 *     run on the same account: every day's value and holdings to 1e-9
 *     relative, and the same rebalances;
 *   - dual momentum, vol target, all-weather and glide path against
 *     expectations recomputed here from the panel on every decision date
 *     (the momentum ranking, the basket's volatility through
 *     keel_voltarget_scale, the class weights, the closed-form equity share),
 *     compared with the weights the holdings have after that close.
 * Every run also conserves money: value_before = value_after + costs for
 * every rebalance record. Bad params are refused before the run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valgrind/valgrind.h>

#include "keel_test.h"
#include "keel/lua.h"

#define STRATEGY_DIR KEEL_SOURCE_DIR "/strategies"

/* ---- helpers ---- */

static keel_panel *load_panel(const char *name) {
  const char *path = keel_test_shared_data(name);
  if (!path) return NULL;
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &p));
  return p;
}

#define NEED_PANEL(var, name)                 \
  keel_panel *var = load_panel(name);         \
  if (!var) {                                 \
    skip();                                   \
    return;                                   \
  }

static void lua_config(keel_lua_config *cfg) {
  static const char *const paths[] = {STRATEGY_DIR, NULL};
  keel_lua_config_default(cfg);
  cfg->paths = paths;
}

static keel_strategy *lua_strategy(const char *module, const char *params) {
  keel_lua_config cfg;
  lua_config(&cfg);
  keel_strategy *s = NULL;
  assert_ok(CTX, keel_lua_strategy_load(CTX, &cfg, module, params, &s));
  assert_non_null(s);
  assert_true(keel_lua_strategy_is(s));
  return s;
}

static size_t col(const keel_panel *p, const char *sym) {
  size_t j = 0;
  if (!keel_panel_find(p, sym, &j)) fail_msg("no column %s", sym);
  return j;
}

/* Every rebalance record conserves money. */
static void check_conservation(const keel_backtest_result *r) {
  const keel_rebalance *rb = keel_backtest_rebalances(r);
  size_t n = keel_backtest_nrebalances(r);
  assert_true(n > 0);
  for (size_t i = 0; i < n; i++) {
    double d = rb[i].value_before - (rb[i].value_after + rb[i].costs);
    if (!(fabs(d) <= 1e-9))
      fail_msg("rebalance %zu (%s): value_before %.17g != value_after %.17g + costs %.17g", i,
               keel_trade_reason_name(rb[i].reason), rb[i].value_before, rb[i].value_after, rb[i].costs);
    assert_true(rb[i].costs >= 0);
  }
}

typedef struct run_opts {
  const size_t *assets; /* NULL: every column */
  size_t nassets;
  double cost_bps;      /* buy and sell */
  keel_schedule schedule;
  size_t start, end;    /* panel rows [start, end); end 0: all */
} run_opts;

/* The first panel row dated y-m-d or later. */
static size_t row_from(const keel_panel *p, int y, int m, int d) {
  const keel_date want = keel_test_date(y, m, d), *dates = keel_panel_dates(p);
  size_t t = 0;
  while (t < keel_panel_ndates(p) && dates[t] < want) t++;
  return t;
}

/* One sub-account of 100,000 driven by strategy s on opts' assets. */
static keel_backtest_result *run(const keel_panel *p, keel_strategy *s, const run_opts *o) {
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.name = "main";
  sub.assets = o->assets;
  sub.nassets = o->assets ? o->nassets : 0;
  sub.strategy = s;
  sub.capital = 100000;
  sub.schedule = o->schedule;
  sub.costs.buy_bps = sub.costs.sell_bps = o->cost_bps;
  keel_account_spec acc;
  keel_account_spec_default(&acc);
  acc.nsubs = 1;
  acc.subs = &sub;
  acc.start = o->start, acc.end = o->end;
  keel_backtest_result *r = NULL;
  assert_ok(CTX, keel_backtest_run_account(CTX, p, &acc, &r));
  assert_non_null(r);
  check_conservation(r);
  return r;
}

/* The Lua strategy's own schedule; the test fails when it has none or it
 * is not `want`. */
static keel_schedule lua_schedule(const keel_strategy *s, keel_calendar want) {
  keel_schedule sc;
  memset(&sc, 0, sizeof sc);
  assert_int_equal(keel_lua_strategy_schedule(s, &sc), 1);
  assert_int_equal(sc.calendar, want);
  return sc;
}

/* The two runs agree: same points, values and holdings to rtol, same
 * rebalances (dates, reasons, values). */
static void compare_runs(const keel_backtest_result *a, const keel_backtest_result *b, double rtol) {
  size_t n = keel_backtest_npoints(a), na = keel_backtest_nassets(a);
  assert_int_equal(n, keel_backtest_npoints(b));
  assert_int_equal(na, keel_backtest_nassets(b));
  const double *va = keel_backtest_values(a), *vb = keel_backtest_values(b);
  const double *ca = keel_backtest_costs(a), *cb = keel_backtest_costs(b);
  for (size_t i = 0; i < n; i++) {
    if (!(fabs(va[i] - vb[i]) <= rtol * fabs(vb[i])))
      fail_msg("point %zu: value %.17g (Lua) against %.17g (C)", i, va[i], vb[i]);
    assert_close(ca[i], cb[i], rtol, 1e-9);
    const double *ha = keel_backtest_holdings(a, i), *hb = keel_backtest_holdings(b, i);
    assert_non_null(ha);
    assert_non_null(hb);
    for (size_t j = 0; j < na; j++)
      if (!(fabs(ha[j] - hb[j]) <= rtol * fabs(hb[j]) + 1e-9))
        fail_msg("point %zu asset %zu: %.17g shares (Lua) against %.17g (C)", i, j, ha[j], hb[j]);
  }
  size_t nr = keel_backtest_nrebalances(a);
  assert_int_equal(nr, keel_backtest_nrebalances(b));
  const keel_rebalance *ra = keel_backtest_rebalances(a), *rb = keel_backtest_rebalances(b);
  for (size_t i = 0; i < nr; i++) {
    assert_int_equal(ra[i].date, rb[i].date);
    assert_int_equal(ra[i].reason, rb[i].reason);
    assert_int_equal(ra[i].ntrades, rb[i].ntrades);
    assert_close(ra[i].value_after, rb[i].value_after, rtol, 0);
  }
}

/* Runs the Lua module and the built-in on the same account, rows [start,
 * end), and compares; the built-in's result goes to *c_out when given. */
static void against_builtin_range(const keel_panel *p, const char *module, const char *params, keel_builtin kind,
                                  const keel_builtin_params *bp, const size_t *assets, size_t nassets, double cost_bps,
                                  size_t start, size_t end, keel_backtest_result **c_out) {
  keel_strategy *ls = lua_strategy(module, params);
  keel_strategy *cs = NULL;
  assert_ok(CTX, keel_strategy_builtin(CTX, kind, bp, &cs));
  /* under valgrind (or with KEEL_TEST_SMALL set) the first 1,500 rows of
   * the range only: the same comparisons over six years instead of up to
   * twenty, so the optimising strategies' valgrind run stays short */
  const size_t stop = end ? end : keel_panel_ndates(p);
  if ((RUNNING_ON_VALGRIND || getenv("KEEL_TEST_SMALL")) && stop > start + 1500) end = start + 1500;
  run_opts o = {assets, nassets, cost_bps, lua_schedule(ls, KEEL_CAL_MONTHLY), start, end};
  keel_backtest_result *rl = run(p, ls, &o);
  keel_backtest_result *rc = run(p, cs, &o);
  compare_runs(rl, rc, 1e-9);
  /* the strategies traded: more than the initial allocation */
  assert_true(keel_backtest_nrebalances(rl) > 3);
  /* the same optimiser calls in the audit trail (the solve counts may
   * differ: a refused maximum-Sharpe solve is not recorded from Lua; and
   * keel.optimize.min_variance takes no expected returns, so its record's
   * return is NaN where the built-in's has one) */
  size_t nc = keel_backtest_nopt_calls(rc);
  assert_int_equal(keel_backtest_nopt_calls(rl), nc);
  const keel_opt_call *ol = keel_backtest_opt_calls(rl), *oc = keel_backtest_opt_calls(rc);
  for (size_t i = 0; i < nc; i++) {
    assert_int_equal(ol[i].date, oc[i].date);
    assert_int_equal(ol[i].rec.used, oc[i].rec.used);
    assert_int_equal(ol[i].rec.status, oc[i].rec.status);
    if (!isnan(ol[i].rec.objective_ret)) assert_close(ol[i].rec.objective_ret, oc[i].rec.objective_ret, 1e-9, 1e-12);
    assert_close(ol[i].rec.objective_vol, oc[i].rec.objective_vol, 1e-9, 1e-12);
  }
  if (c_out) {
    *c_out = rc;
    rc = NULL;
  }
  keel_backtest_result_free(rl);
  keel_backtest_result_free(rc);
  keel_strategy_free(ls);
  keel_strategy_free(cs);
}

static void against_builtin(const keel_panel *p, const char *module, const char *params, keel_builtin kind,
                            const keel_builtin_params *bp, const size_t *assets, size_t nassets, double cost_bps) {
  against_builtin_range(p, module, params, kind, bp, assets, nassets, cost_bps, 0, 0, NULL);
}

/* The sub-account's weights after the close of point i (holding value over
 * the sub-account's value), over the panel's columns cols (n). */
static void held_weights(const keel_panel *p, const keel_backtest_result *r, size_t i, const size_t *cols, size_t n,
                         double *w) {
  const double *h = keel_backtest_holdings(r, i);
  assert_non_null(h);
  double V = keel_backtest_values(r)[i];
  for (size_t k = 0; k < n; k++) {
    double px = keel_panel_price(p, i, cols[k]);
    w[k] = h[cols[k]] == 0 ? 0 : h[cols[k]] * px / V;
  }
}

/* Whether the schedule is due on panel row t of a run from row 0 (row 0:
 * the initial decision). */
static int decision_row(const keel_panel *p, const keel_schedule *sc, size_t t) {
  if (t == 0) return 1;
  const keel_date *d = keel_panel_dates(p);
  return keel_schedule_due(sc, d[t - 1], d[t], t);
}

/* Every trade of the run is on a row where want[row] is set, and every
 * such row after the first has a trade unless the weights did not need
 * one (not checked). */
static void trades_only_on(const keel_panel *p, const keel_backtest_result *r, const unsigned char *want) {
  const keel_trade *tr = keel_backtest_trades(r);
  const keel_date *d = keel_panel_dates(p);
  size_t nd = keel_panel_ndates(p), row = 0;
  for (size_t i = 0; i < keel_backtest_ntrades(r); i++) {
    while (row < nd && d[row] < tr[i].date) row++;
    assert_true(row < nd && d[row] == tr[i].date);
    if (!want[row]) {
      char buf[KEEL_DATE_BUFSIZE];
      keel_date_format(tr[i].date, buf);
      fail_msg("a trade on %s, which is not a decision date", buf);
    }
  }
}

/* ---- against the C built-ins ---- */

static void test_sixty_forty_vs_fixed(void **state) {
  (void)state;
  NEED_PANEL(p, "swx.csv");
  /* the whole universe, the sleeves chosen by symbol */
  const size_t n = keel_panel_nassets(p);
  double w[16] = {0};
  w[col(p, "SPI")] = 0.6;
  w[col(p, "SBI")] = 1 - 0.6;
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  bp.weights = w, bp.nweights = n;
  against_builtin(p, "sixty_forty", "{\"equity\": \"SPI\", \"bonds\": \"SBI\"}", KEEL_STRAT_FIXED, &bp, NULL, 0, 10);
  /* a two-asset sub-account with the defaults (the first asset is equity) and 70/30 */
  size_t two[2] = {col(p, "SPI"), col(p, "LP60")};
  double w2[2] = {0.7, 1 - 0.7};
  bp.weights = w2, bp.nweights = 2;
  against_builtin(p, "sixty_forty", "{\"equity_weight\": 0.7}", KEEL_STRAT_FIXED, &bp, two, 2, 0);
  keel_panel_free(p);
}

static void test_equal_weight_vs_builtin(void **state) {
  (void)state;
  NEED_PANEL(p, "stock_prices.csv"); /* stocks listed later: NaN before */
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  bp.invest = 0.9;
  against_builtin(p, "equal_weight", "{\"invest\": 0.9}", KEEL_STRAT_EQUAL, &bp, NULL, 0, 5);
  keel_panel_free(p);
}

static void test_inverse_vol_vs_builtin(void **state) {
  (void)state;
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  {
    NEED_PANEL(p, "spisector.csv"); /* halts: returns span them */
    against_builtin(p, "inverse_vol", NULL, KEEL_STRAT_INVERSE_VOL, &bp, NULL, 0, 10);
    keel_panel_free(p);
  }
  NEED_PANEL(p, "stock_prices.csv");
  bp.lookback = 126;
  /* 2010 to mid-2015: GM, FB and BABA list during the run */
  against_builtin_range(p, "inverse_vol", "{\"lookback\": 126}", KEEL_STRAT_INVERSE_VOL, &bp, NULL, 0, 0,
                        row_from(p, 2010, 1, 1), row_from(p, 2015, 7, 1), NULL);
  keel_panel_free(p);
}

static void test_min_variance_vs_builtin(void **state) {
  (void)state;
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  {
    NEED_PANEL(p, "dowjones30.csv"); /* 30 assets, capped */
    bp.max_weight = 0.1;
    against_builtin_range(p, "min_variance", "{\"max_weight\": 0.1}", KEEL_STRAT_MIN_VARIANCE, &bp, NULL, 0, 10,
                          row_from(p, 1999, 1, 1), 0, NULL);
    keel_panel_free(p);
  }
  {
    NEED_PANEL(p, "stock_prices.csv"); /* FB and BABA list mid-run: set aside while their history is short */
    keel_builtin_params_default(&bp);
    bp.lookback = 126;
    bp.cov = KEEL_COV_LW_CONSTCORR;
    against_builtin_range(p, "min_variance", "{\"lookback\": 126, \"cov\": \"ledoit_wolf_cc\"}",
                          KEEL_STRAT_MIN_VARIANCE, &bp, NULL, 0, 0, row_from(p, 2012, 1, 1), row_from(p, 2015, 7, 1), NULL);
    keel_panel_free(p);
  }
  NEED_PANEL(p, "swx.csv");
  keel_builtin_params_default(&bp);
  bp.cov = KEEL_COV_SAMPLE;
  bp.invest = 0.95;
  against_builtin(p, "min_variance", "{\"cov\": \"sample\", \"invest\": 0.95}", KEEL_STRAT_MIN_VARIANCE, &bp, NULL,
                  0, 0);
  keel_panel_free(p);
}

static void test_max_sharpe_vs_builtin(void **state) {
  (void)state;
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  {
    NEED_PANEL(p, "swx.csv"); /* with costs: the net-of-costs step from the current weights */
    const size_t from = row_from(p, 2004, 1, 1);
    against_builtin_range(p, "max_sharpe", NULL, KEEL_STRAT_MAX_SHARPE, &bp, NULL, 0, 25, from, 0, NULL);
    /* a risk-free rate no portfolio beats at times: the minimum-variance
     * fallback, whose expected return is then below the rate (seen in the
     * built-in's trail; the Lua run's values equal the built-in's) */
    bp.risk_free = 0.06;
    bp.max_weight = 0.5;
    keel_backtest_result *r = NULL;
    against_builtin_range(p, "max_sharpe", "{\"risk_free\": 0.06, \"max_weight\": 0.5}", KEEL_STRAT_MAX_SHARPE,
                          &bp, NULL, 0, 25, from, 0, &r);
    int below = 0, above = 0;
    for (size_t i = 0; i < keel_backtest_nopt_calls(r); i++) {
      below += keel_backtest_opt_calls(r)[i].rec.objective_ret < 0.06;
      above += keel_backtest_opt_calls(r)[i].rec.objective_ret > 0.06;
    }
    assert_true(below > 0 && above > 0);
    keel_backtest_result_free(r);
    keel_panel_free(p);
  }
  NEED_PANEL(p, "stock_prices.csv"); /* 2012 to mid-2015: FB and BABA list during the run */
  keel_builtin_params_default(&bp);
  bp.use_costs = 0;
  bp.max_weight = 0.25;
  against_builtin_range(p, "max_sharpe", "{\"use_costs\": false, \"max_weight\": 0.25}", KEEL_STRAT_MAX_SHARPE,
                        &bp, NULL, 0, 10, row_from(p, 2012, 1, 1), row_from(p, 2015, 7, 1), NULL);
  keel_panel_free(p);
}

static void test_risk_parity_vs_builtin(void **state) {
  (void)state;
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  {
    NEED_PANEL(p, "swx.csv");
    against_builtin(p, "risk_parity", NULL, KEEL_STRAT_RISK_PARITY, &bp, NULL, 0, 10);
    keel_panel_free(p);
  }
  NEED_PANEL(p, "spisector.csv");
  bp.cov = KEEL_COV_EWMA;
  bp.halflife = 42;
  bp.lookback = 189;
  against_builtin_range(p, "risk_parity", "{\"cov\": \"ewma\", \"halflife\": 42, \"lookback\": 189}",
                        KEEL_STRAT_RISK_PARITY, &bp, NULL, 0, 0, row_from(p, 2004, 1, 1), 0, NULL);
  keel_panel_free(p);
}

/* ---- dual momentum: the ranking recomputed here ---- */

typedef struct dm_spec {
  size_t lookback, skip, top_k;
  long safe;         /* sub-account index of the safe asset, or -1 */
  int absolute;      /* 0 cash, 1 safe, 2 none */
  double hurdle;
} dm_spec;

/* The expected targets over the sub-account's n assets (cols) at panel
 * row t (a run from row 0). The risky assets are all but the safe one. */
static void dm_expect(const keel_panel *p, const size_t *cols, size_t n, const dm_spec *s, size_t t, double *w,
                      int *npicks) {
  double mom[64] = {0};
  int has[64] = {0};
  const size_t back = s->lookback + s->skip;
  for (size_t k = 0; k < n; k++) {
    has[k] = 0;
    if (t < back || isnan(keel_panel_price(p, t, cols[k]))) continue;
    double a = keel_panel_price(p, t - back, cols[k]), b = keel_panel_price(p, t - s->skip, cols[k]);
    if (isnan(a) || isnan(b)) continue;
    has[k] = 1;
    mom[k] = b / a - 1;
  }
  double thr = -INFINITY;
  if (s->absolute == 0) thr = pow(1 + s->hurdle, (double)s->lookback / 252) - 1;
  if (s->absolute == 1) thr = has[s->safe] ? mom[s->safe] : INFINITY;
  for (size_t k = 0; k < n; k++) w[k] = 0;
  int used[64] = {0};
  *npicks = 0;
  for (size_t slot = 0; slot < s->top_k; slot++) {
    long best = -1; /* the highest momentum not yet picked; ties to the earlier */
    for (size_t k = 0; k < n; k++) {
      if ((long)k == s->safe || !has[k] || used[k]) continue;
      if (best < 0 || mom[k] > mom[best]) best = (long)k;
    }
    if (best >= 0) used[best] = 1;
    if (best >= 0 && mom[best] > thr) {
      w[best] += 1.0 / (double)s->top_k;
      (*npicks)++;
    } else if (s->safe >= 0 && !isnan(keel_panel_price(p, t, cols[s->safe]))) {
      w[s->safe] += 1.0 / (double)s->top_k;
    }
  }
}

static void dm_check(const keel_panel *p, const char *params, const dm_spec *s, const size_t *cols, size_t n,
                     int *picked_any, int *safe_any) {
  keel_strategy *ls = lua_strategy("dual_momentum", params);
  int all = cols == NULL;
  size_t allcols[64];
  if (all) {
    n = keel_panel_nassets(p);
    for (size_t k = 0; k < n; k++) allcols[k] = k;
    cols = allcols;
  }
  run_opts o = {all ? NULL : cols, n, 5, lua_schedule(ls, KEEL_CAL_MONTHLY), 0, 0};
  keel_backtest_result *r = run(p, ls, &o);
  const size_t nd = keel_panel_ndates(p);
  unsigned char *dec = calloc(nd, 1);
  assert_non_null(dec);
  size_t ndec = 0;
  for (size_t t = 0; t < nd; t++) {
    if (!decision_row(p, &o.schedule, t)) continue;
    dec[t] = 1, ndec++;
    double want[64], got[64];
    int npicks = 0;
    dm_expect(p, cols, n, s, t, want, &npicks);
    held_weights(p, r, t, cols, n, got);
    *picked_any += npicks > 0;
    *safe_any += s->safe >= 0 && want[s->safe] > 0;
    for (size_t k = 0; k < n; k++)
      if (!(fabs(got[k] - want[k]) <= 1e-9)) {
        char buf[KEEL_DATE_BUFSIZE];
        keel_date_format(keel_panel_dates(p)[t], buf);
        fail_msg("%s: asset %s holds %.12g, expected %.12g", buf, keel_panel_symbol(p, cols[k]), got[k], want[k]);
      }
  }
  assert_true(ndec > 12);
  trades_only_on(p, r, dec);
  free(dec);
  keel_backtest_result_free(r);
  keel_strategy_free(ls);
}

static void test_dual_momentum(void **state) {
  (void)state;
  {
    NEED_PANEL(p, "swx.csv");
    int picked = 0, safe = 0;
    /* the top two of SPI, SII, LP25, LP40, LP60 over 126 rows skipping 21,
     * each against a 2% hurdle, else SBI */
    dm_spec s = {126, 21, 2, (long)col(p, "SBI"), 0, 0.02};
    dm_check(p, "{\"lookback\": 126, \"skip\": 21, \"top_k\": 2, \"safe\": \"SBI\", \"hurdle\": 0.02}", &s, NULL, 0,
             &picked, &safe);
    assert_true(picked > 0 && safe > 0); /* both branches of the absolute test were taken */
    /* GEM-like: SPI against SII, the safe asset's own momentum as the bar */
    size_t cols[3] = {col(p, "SPI"), col(p, "SII"), col(p, "SBI")};
    dm_spec g = {252, 0, 1, 2, 1, 0};
    picked = safe = 0;
    dm_check(p, "{\"safe\": \"SBI\", \"absolute\": \"safe\"}", &g, cols, 3, &picked, &safe);
    assert_true(picked > 0 && safe > 0);
    keel_panel_free(p);
  }
  NEED_PANEL(p, "dowjones30.csv");
  /* relative momentum only, the top five of thirty, no safe asset */
  int picked = 0, safe = 0;
  dm_spec s = {189, 0, 5, -1, 2, 0};
  dm_check(p, "{\"lookback\": 189, \"top_k\": 5, \"absolute\": \"none\"}", &s, NULL, 0, &picked, &safe);
  assert_true(picked > 0);
  keel_panel_free(p);
}

/* ---- vol target: the scale recomputed here ---- */

typedef struct vt_spec {
  const char *params;
  const size_t *cols; /* sub-account */
  size_t n;
  double target, cap, band, halflife;
  keel_vol_estimator est;
  unsigned window, min_returns;
} vt_spec;

/* The scale at panel row t for basket b (n): sigma of the last
 * min(window, t) consecutive-close returns through keel_voltarget_scale,
 * capped; 0 with fewer than min_returns usable returns. */
static double vt_scale(const keel_panel *p, const vt_spec *s, const double *b, size_t t) {
  size_t rows = t < s->window ? t : s->window;
  if (rows < 2) return 0;
  double R[64 * 256];
  assert_true(rows * s->n <= sizeof R / sizeof R[0]);
  size_t usable = 0;
  for (size_t i = 0; i < rows; i++) {
    size_t row = t - rows + 1 + i;
    int ok = 1;
    for (size_t k = 0; k < s->n; k++) {
      R[i * s->n + k] = keel_panel_price(p, row, s->cols[k]) / keel_panel_price(p, row - 1, s->cols[k]) - 1;
      if (b[k] != 0 && isnan(R[i * s->n + k])) ok = 0;
    }
    usable += ok;
  }
  if (usable < s->min_returns) return 0;
  keel_voltarget v = {.target = s->target, .estimator = s->est, .window = s->window, .halflife = s->halflife,
                      .leverage_cap = s->cap, .rebalance_band = s->band};
  double k = 0, sigma = 0;
  assert_ok(CTX, keel_voltarget_scale(CTX, &v, s->n, b, R, rows, 252, &k, &sigma));
  assert_true(sigma > 0);
  assert_close(k, fmin(s->cap, s->target / sigma), 1e-15, 0);
  return k;
}

static void vt_check(const keel_panel *p, const vt_spec *s, int *capped, int *scaled, size_t *nbar) {
  keel_strategy *ls = lua_strategy("vol_target", s->params);
  run_opts o = {s->cols, s->n, 10, lua_schedule(ls, KEEL_CAL_MONTHLY), 0, 0};
  keel_backtest_result *r = run(p, ls, &o);
  const size_t nd = keel_panel_ndates(p);
  unsigned char *dec = calloc(nd, 1);
  keel_date *bar_dates = calloc(nd, sizeof *bar_dates);
  assert_non_null(dec);
  assert_non_null(bar_dates);
  double b[64], w[64], got[64], klast = 0;
  size_t nbars = 0;
  for (size_t t = 0; t < nd; t++) {
    int due = decision_row(p, &o.schedule, t), bar = 0;
    if (due) { /* equal basket over the assets with a price */
      size_t m = 0;
      for (size_t k = 0; k < s->n; k++) m += !isnan(keel_panel_price(p, t, s->cols[k]));
      for (size_t k = 0; k < s->n; k++) b[k] = isnan(keel_panel_price(p, t, s->cols[k])) ? 0 : 1.0 / (double)m;
    }
    double k = vt_scale(p, s, b, t);
    if (!due) {
      bar = klast == 0 ? k > 0 : fabs(k - klast) > s->band * klast;
      if (!bar) continue;
      bar_dates[nbars++] = keel_panel_dates(p)[t];
    }
    klast = k;
    dec[t] = 1;
    for (size_t j = 0; j < s->n; j++) w[j] = k * b[j];
    held_weights(p, r, t, s->cols, s->n, got);
    double sum = 0;
    for (size_t j = 0; j < s->n; j++) {
      sum += got[j];
      if (!(fabs(got[j] - w[j]) <= 1e-9)) {
        char buf[KEEL_DATE_BUFSIZE];
        keel_date_format(keel_panel_dates(p)[t], buf);
        fail_msg("%s (%s): asset %zu holds %.12g, expected %.12g (k %.12g)", buf, bar ? "on_bar" : "schedule", j,
                 got[j], w[j], k);
      }
    }
    /* the realised scale is the invested share */
    assert_close(sum, k, 0, 1e-9);
    *capped += k == s->cap;
    *scaled += k > 0 && k < s->cap;
  }
  trades_only_on(p, r, dec);
  /* the engine's "strategy" rebalances are exactly the on_bar dates predicted */
  const keel_rebalance *rb = keel_backtest_rebalances(r);
  size_t seen = 0;
  for (size_t i = 0; i < keel_backtest_nrebalances(r); i++) {
    if (rb[i].reason != KEEL_REASON_STRATEGY) continue;
    assert_true(seen < nbars);
    assert_int_equal(rb[i].date, bar_dates[seen]);
    seen++;
  }
  assert_int_equal(seen, nbars);
  *nbar += nbars;
  free(dec);
  free(bar_dates);
  keel_backtest_result_free(r);
  keel_strategy_free(ls);
}

static void test_vol_target(void **state) {
  (void)state;
  NEED_PANEL(p, "swx.csv");
  size_t cols[3] = {col(p, "SPI"), col(p, "SII"), col(p, "LP60")};
  int capped = 0, scaled = 0;
  size_t nbar = 0;
  /* rolling, a target below the basket's volatility most of the time */
  vt_spec s = {"{\"assets\": \"SPI,SII,LP60\", \"target\": 0.06}", cols, 3, 0.06, 1, 0.1, 21, KEEL_VOL_ROLLING, 63,
               20};
  vt_check(p, &s, &capped, &scaled, &nbar);
  assert_true(scaled > 0 && nbar > 0);
  /* EWMA, a high target against a cap of 0.8, schedule-only changes
   * through a wide band */
  capped = scaled = 0;
  vt_spec e = {"{\"assets\": \"SPI, SII, LP60\", \"target\": 0.12, \"leverage_cap\": 0.8, \"estimator\": \"ewma\", "
               "\"halflife\": 10, \"window\": 42, \"min_returns\": 30, \"band\": 0.25}",
               cols, 3, 0.12, 0.8, 0.25, 10, KEEL_VOL_EWMA, 42, 30};
  vt_check(p, &e, &capped, &scaled, &nbar);
  assert_true(capped > 0 && scaled > 0);
  keel_panel_free(p);
}

/* ---- fixed mixes: all-weather and the glide path ---- */

/* Runs module on the whole panel and checks the weights after every
 * decision close against want(t) (n entries over the panel's columns). */
typedef void (*expect_fn)(const keel_panel *p, size_t t, double *w, void *arg);

static void mix_check(const keel_panel *p, const char *module, const char *params, keel_calendar cal, expect_fn want,
                      void *arg) {
  keel_strategy *ls = lua_strategy(module, params);
  run_opts o = {NULL, 0, 10, lua_schedule(ls, cal), 0, 0};
  keel_backtest_result *r = run(p, ls, &o);
  const size_t nd = keel_panel_ndates(p), n = keel_panel_nassets(p);
  size_t cols[64];
  for (size_t k = 0; k < n; k++) cols[k] = k;
  unsigned char *dec = calloc(nd, 1);
  assert_non_null(dec);
  size_t ndec = 0;
  for (size_t t = 0; t < nd; t++) {
    if (!decision_row(p, &o.schedule, t)) continue;
    dec[t] = 1, ndec++;
    double w[64], got[64];
    want(p, t, w, arg);
    held_weights(p, r, t, cols, n, got);
    for (size_t k = 0; k < n; k++)
      if (!(fabs(got[k] - w[k]) <= 1e-9)) {
        char buf[KEEL_DATE_BUFSIZE];
        keel_date_format(keel_panel_dates(p)[t], buf);
        fail_msg("%s %s: %s holds %.12g, expected %.12g", module, buf, keel_panel_symbol(p, k), got[k], w[k]);
      }
  }
  assert_true(ndec >= 8);
  trades_only_on(p, r, dec);
  free(dec);
  keel_backtest_result_free(r);
  keel_strategy_free(ls);
}

typedef struct fixed_mix {
  const char *sym[4];
  double w[4];
} fixed_mix;

static void expect_fixed(const keel_panel *p, size_t t, double *w, void *arg) {
  (void)t;
  const fixed_mix *m = arg;
  for (size_t k = 0; k < keel_panel_nassets(p); k++) w[k] = 0;
  for (size_t i = 0; i < 4 && m->sym[i]; i++) w[col(p, m->sym[i])] = m->w[i];
}

static void test_all_weather(void **state) {
  (void)state;
  NEED_PANEL(p, "swx.csv");
  /* no intermediate bonds: their 15% goes to the long bonds; no gold: its
   * 7.5% to commodities (SII standing in) */
  fixed_mix a = {{"SPI", "SBI", "SII", NULL}, {0.30, 0.40 + 0.15, 0.075 + 0.075, 0}};
  mix_check(p, "all_weather", "{\"equities\": \"SPI\", \"long_bonds\": \"SBI\", \"commodities\": \"SII\"}",
            KEEL_CAL_QUARTERLY, expect_fixed, &a);
  /* no inflation hedge at all: their 15% pro rata over equities (0.30)
   * and bonds (0.55) */
  fixed_mix b = {{"SPI", "SBI", NULL, NULL}, {0.30 / 0.85, 0.55 / 0.85, 0, 0}};
  mix_check(p, "all_weather", "{\"equities\": \"SPI\", \"intermediate_bonds\": \"SBI\"}", KEEL_CAL_QUARTERLY,
            expect_fixed, &b);
  /* ... or kept in cash; equities split between two symbols */
  fixed_mix c = {{"SPI", "LP60", "SBI", NULL}, {0.15, 0.15, 0.55, 0}};
  mix_check(p, "all_weather", "{\"equities\": \"SPI,LP60\", \"long_bonds\": \"SBI\", \"fallback\": \"cash\"}",
            KEEL_CAL_QUARTERLY, expect_fixed, &c);
  keel_panel_free(p);
}

typedef struct glide {
  keel_date target;
  double start, end, years;
  size_t eq, bd;
  double lo, hi; /* the range of shares seen */
} glide;

static void expect_glide(const keel_panel *p, size_t t, double *w, void *arg) {
  glide *g = arg;
  double h = (double)(g->target - keel_panel_dates(p)[t]) / 365.25;
  double s = g->end + (g->start - g->end) * fmin(1, fmax(0, h) / g->years);
  for (size_t k = 0; k < keel_panel_nassets(p); k++) w[k] = 0;
  w[g->eq] = s;
  w[g->bd] = 1 - s;
  g->lo = fmin(g->lo, s), g->hi = fmax(g->hi, s);
}

static void test_glide_path(void **state) {
  (void)state;
  NEED_PANEL(p, "swx.csv"); /* 2000-01-03 .. 2007-05-08 */
  /* 90% equities until 2002-01-01, then falling towards 30% at 2010-01-01 */
  glide g = {keel_test_date(2010, 1, 1), 0.9, 0.3, 8, col(p, "SPI"), col(p, "SBI"), 1, 0};
  mix_check(p, "glide_path",
            "{\"equity\": \"SPI\", \"bonds\": \"SBI\", \"target_year\": 2010, \"glide_years\": 8}",
            KEEL_CAL_MONTHLY, expect_glide, &g);
  assert_close(g.hi, 0.9, 0, 1e-15);
  /* the last decision, 2007-05-01, is 976 days before the target: 0.3 + 0.6 * (976 / 365.25) / 8 */
  assert_close(g.lo, 0.3 + 0.6 * (976 / 365.25) / 8, 1e-14, 0);
  /* past the target: the end share throughout */
  glide e = {keel_test_date(1999, 1, 1), 0.8, 0.2, 20, col(p, "LP60"), col(p, "SBI"), 1, 0};
  mix_check(p, "glide_path",
            "{\"equity\": \"LP60\", \"bonds\": \"SBI\", \"target_year\": 1999, \"glide_years\": 20, "
            "\"start_share\": 0.8, \"end_share\": 0.2}",
            KEEL_CAL_MONTHLY, expect_glide, &e);
  assert_close(e.lo, 0.2, 0, 1e-15);
  assert_close(e.hi, 0.2, 0, 1e-15);
  keel_panel_free(p);
}

/* ---- params ---- */

static void refused(const char *module, const char *params, const char *needle) {
  keel_lua_config cfg;
  lua_config(&cfg);
  keel_strategy *s = (keel_strategy *)1;
  keel_status st = keel_lua_strategy_load(CTX, &cfg, module, params, &s);
  if (st == KEEL_OK) fail_msg("%s accepted %s", module, params);
  assert_null(s);
  assert_errmsg(CTX, needle);
}

static void test_params_validated(void **state) {
  (void)state;
  refused("min_variance", "{\"lookbak\": 100}", "lookbak");       /* undeclared */
  refused("min_variance", "{\"lookback\": 1}", "lookback");       /* below min */
  refused("min_variance", "{\"lookback\": 20.5}", "lookback");    /* not an integer */
  refused("risk_parity", "{\"cov\": \"shrunk\"}", "cov");         /* not among values */
  refused("dual_momentum", "{\"top_k\": 0}", "top_k");
  refused("dual_momentum", "{\"absolute\": \"relative\"}", "absolute");
  refused("sixty_forty", "{\"equity_weight\": 1.5}", "equity_weight");
  refused("vol_target", "{\"window\": \"long\"}", "window");      /* wrong type */
  refused("vol_target", "{\"daily\": 1}", "daily");
  refused("glide_path", "{\"target_year\": 10000}", "target_year");
}

/* Checks a strategy's own init makes: the run fails with the message. */
static void init_refused(const char *file, const char *module, const char *params, const char *needle) {
  keel_panel *p = load_panel(file);
  if (!p) return;
  keel_strategy *s = lua_strategy(module, params);
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.strategy = s;
  sub.capital = 100000;
  keel_account_spec acc;
  keel_account_spec_default(&acc);
  acc.nsubs = 1, acc.subs = &sub;
  keel_backtest_result *r = (keel_backtest_result *)1;
  keel_status st = keel_backtest_run_account(CTX, p, &acc, &r);
  if (st == KEEL_OK) fail_msg("%s ran with %s", module, params ? params : "its defaults");
  assert_null(r);
  assert_errmsg(CTX, needle);
  keel_strategy_free(s);
  keel_panel_free(p);
}

static void test_init_checks(void **state) {
  (void)state;
  if (!keel_test_shared_data("swx.csv")) skip();
  init_refused("swx.csv", "sixty_forty", "{\"equity\": \"SPX\"}", "SPX");
  init_refused("swx.csv", "all_weather", "{\"equities\": \"SPI\", \"w_gold\": 0.5}", "above 1");
  init_refused("swx.csv", "all_weather", "{\"equities\": \"SPI\", \"gold\": \"SPI\"}", "SPI");
  init_refused("swx.csv", "dual_momentum", "{\"absolute\": \"safe\"}", "safe asset");
  init_refused("swx.csv", "dual_momentum", "{\"top_k\": 7}", "top_k");
  init_refused("swx.csv", "glide_path", "{\"equity\": \"SBI\", \"bonds\": \"SBI\"}", "both sleeves");
}

int main(int argc, char **argv) {
  if (argc > 1) cmocka_set_test_filter(argv[1]); /* e.g. "test_vol*" */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sixty_forty_vs_fixed),
      cmocka_unit_test(test_equal_weight_vs_builtin),
      cmocka_unit_test(test_inverse_vol_vs_builtin),
      cmocka_unit_test(test_min_variance_vs_builtin),
      cmocka_unit_test(test_max_sharpe_vs_builtin),
      cmocka_unit_test(test_risk_parity_vs_builtin),
      cmocka_unit_test(test_dual_momentum),
      cmocka_unit_test(test_vol_target),
      cmocka_unit_test(test_all_weather),
      cmocka_unit_test(test_glide_path),
      cmocka_unit_test(test_params_validated),
      cmocka_unit_test(test_init_checks),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
