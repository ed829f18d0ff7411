/* Tests of the fixed-weight backtest engine (backtest/engine.c). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "keel_test.h"

#define D(y, m, d) keel_test_date(y, m, d)
#define bdays keel_test_bdays

static keel_backtest_result *run(const keel_panel *p, const double *w, keel_calendar cal, double bps,
                                 double fee, double capital) {
  keel_backtest_config cfg;
  keel_backtest_config_default(&cfg);
  cfg.weights = w;
  cfg.nweights = keel_panel_nassets(p);
  cfg.rebalance = cal;
  cfg.cost_bps = bps;
  cfg.fee = fee;
  cfg.capital = capital;
  keel_backtest_result *r = NULL;
  if (keel_backtest_run(CTX, p, &cfg, &r) != KEEL_OK) fail_msg("backtest failed: %s", keel_errmsg(CTX));
  return r;
}

/* Two assets, three days, daily rebalancing, 10 bps and a fee of 1. */
static void test_hand_case(void **state) {
  (void)state;
  keel_date dates[3] = {D(2021, 3, 1), D(2021, 3, 2), D(2021, 3, 3)};
  double px[6] = {10, 20, 11, 18, 12, 19};
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_new(CTX, 3, 2, dates, (const char *const[]){"A", "B"}, px, &p));
  double w[2] = {0.5, 0.5};
  keel_backtest_result *r = run(p, w, KEEL_CAL_DAILY, 10, 1, 1000);
  /* day 0: V' + 0.001 V' + 2 = 1000 */
  double v0 = 998 / 1.001, h0 = v0 / 2;
  /* day 1: A is worth 1.1 h0 (sell), B 0.9 h0 (buy): the cost is
   * 0.001 * 0.2 h0 + 2 whatever V' is */
  double V1 = 2 * h0, v1 = V1 - 0.001 * 0.2 * h0 - 2;
  /* day 2: A at 12/11, B at 19/18 of their day-1 targets */
  double xa = v1 / 2 * 12 / 11, xb = v1 / 2 * 19 / 18, V2 = xa + xb, v2 = V2 - 0.001 * (xa - xb) - 2;
  const double *val = keel_backtest_values(r);
  assert_close(val[0], v0, 1e-13, 0);
  assert_close(val[1], v1, 1e-13, 0);
  assert_close(val[2], v2, 1e-13, 0);
  assert_close(keel_backtest_holdings(r, 0)[0], h0 / 10, 1e-13, 0);
  assert_close(keel_backtest_holdings(r, 0)[1], h0 / 20, 1e-13, 0);
  assert_close(keel_backtest_holdings(r, 2)[0], v2 / 2 / 12, 1e-13, 0);
  assert_close(keel_backtest_holdings(r, 2)[1], v2 / 2 / 19, 1e-13, 0);
  assert_close(keel_backtest_cash(r)[2], 0, 0, 1e-9);
  assert_close(keel_backtest_costs(r)[1], 0.001 * 0.2 * h0 + 2, 1e-12, 0);
  assert_int_equal(keel_backtest_nrebalances(r), 3);
  assert_int_equal(keel_backtest_ntrades(r), 6);
  const keel_trade *t = keel_backtest_trades(r);
  assert_int_equal(t[2].asset, 0);
  assert_true(t[2].shares < 0); /* day 1 sells A */
  assert_true(t[3].shares > 0); /* and buys B */
  assert_int_equal(t[0].reason, KEEL_REASON_INITIAL);
  assert_int_equal(t[2].reason, KEEL_REASON_CALENDAR);
  assert_close(t[2].notional, v1 / 2 - 1.1 * h0, 1e-12, 0);
  assert_close(t[2].cost, 0.001 * fabs(t[2].notional) + 1, 1e-12, 0);
  assert_close(keel_backtest_metrics(r)->total_return, v2 / 1000 - 1, 1e-13, 0);
  keel_backtest_result_free(r);
  keel_panel_free(p);
}

static void test_calendars(void **state) {
  (void)state;
  /* business days 2019-12-30 (Mon) .. 2020-04-03 */
  keel_date dates[70];
  bdays(dates, 70, 2019, 12, 30);
  assert_int_equal(dates[69], D(2020, 4, 3));
  double px[70];
  for (int i = 0; i < 70; i++) px[i] = 100 + i;
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_new(CTX, 70, 1, dates, (const char *const[]){"X"}, px, &p));
  double w[1] = {1};
  struct { keel_calendar c; size_t n; keel_date first_after; } k[] = {
      {KEEL_CAL_DAILY, 70, D(2019, 12, 31)},   {KEEL_CAL_WEEKLY, 14, D(2020, 1, 6)},
      {KEEL_CAL_MONTHLY, 5, D(2020, 1, 1)},    {KEEL_CAL_QUARTERLY, 3, D(2020, 1, 1)},
      {KEEL_CAL_YEARLY, 2, D(2020, 1, 1)},     {KEEL_CAL_NEVER, 1, 0},
  };
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
    keel_backtest_result *r = run(p, w, k[i].c, 0, 0, 1000);
    const keel_rebalance *rb = keel_backtest_rebalances(r);
    if (keel_backtest_nrebalances(r) != k[i].n)
      fail_msg("%s: %zu rebalances, expected %zu", keel_calendar_name(k[i].c), keel_backtest_nrebalances(r), k[i].n);
    assert_int_equal(rb[0].date, dates[0]);
    if (k[i].n > 1) assert_int_equal(rb[1].date, k[i].first_after);
    keel_backtest_result_free(r);
  }
  keel_backtest_result *r = run(p, w, KEEL_CAL_MONTHLY, 0, 0, 1000);
  const keel_rebalance *rb = keel_backtest_rebalances(r);
  assert_int_equal(rb[2].date, D(2020, 2, 3)); /* Feb 1 2020 is a Saturday */
  assert_int_equal(rb[3].date, D(2020, 3, 2));
  assert_int_equal(rb[4].date, D(2020, 4, 1));
  keel_backtest_result_free(r);
  keel_calendar c;
  assert_int_equal(keel_calendar_parse("quarterly", &c), 0);
  assert_int_equal(c, KEEL_CAL_QUARTERLY);
  assert_int_equal(keel_calendar_parse("fortnightly", &c), -1);
  keel_panel_free(p);
}

/* B is listed on the 4th day: its weight waits in cash until the next
 * rebalance with a price. */
static void test_late_listing(void **state) {
  (void)state;
  keel_date dates[30];
  bdays(dates, 30, 2021, 1, 25); /* month changes on 2021-02-01, index 5 */
  double px[60];
  for (int i = 0; i < 30; i++) {
    px[2 * i] = 50 + i;
    px[2 * i + 1] = i < 3 ? NAN : 10 + 0.5 * i;
  }
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_new(CTX, 30, 2, dates, (const char *const[]){"A", "B"}, px, &p));
  double w[2] = {0.6, 0.4};
  keel_backtest_result *r = run(p, w, KEEL_CAL_MONTHLY, 0, 0, 1000);
  for (int i = 0; i < 5; i++) {
    assert_close(keel_backtest_holdings(r, (size_t)i)[1], 0, 0, 0);
    assert_close(keel_backtest_cash(r)[i], 400, 1e-14, 0);
  }
  assert_int_equal(keel_backtest_dates(r)[5], D(2021, 2, 1));
  const double *h5 = keel_backtest_holdings(r, 5);
  double v5 = keel_backtest_values(r)[5];
  assert_close(h5[1] * px[11] / v5, 0.4, 1e-12, 0);
  assert_close(h5[0] * px[10] / v5, 0.6, 1e-12, 0);
  assert_close(keel_backtest_cash(r)[5], 0, 0, 1e-9);
  keel_backtest_result_free(r);
  keel_panel_free(p);
}

/* A is halted (no price) on a rebalance day after growing to most of the
 * account: it keeps its holding, valued at its last price, and B's target
 * is scaled down so cash stays >= 0. */
static void test_halt_and_scaling(void **state) {
  (void)state;
  keel_date dates[4] = {D(2021, 1, 29), D(2021, 2, 1), D(2021, 2, 26), D(2021, 3, 1)};
  double px[8] = {10, 10, 10, 10, 40, 10, NAN, 10};
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_new(CTX, 4, 2, dates, (const char *const[]){"A", "B"}, px, &p));
  double w[2] = {0.5, 0.5};
  keel_backtest_result *r = run(p, w, KEEL_CAL_MONTHLY, 10, 0, 1000);
  /* 2021-03-01: A cannot trade; its value stays at last price 40 */
  const double *h2 = keel_backtest_holdings(r, 2), *h3 = keel_backtest_holdings(r, 3);
  assert_close(h3[0], h2[0], 0, 0);
  double v3 = keel_backtest_values(r)[3];
  double xa = h3[0] * 40;
  /* A's value is 80% of the account: B is scaled so that cash is zero */
  assert_true(xa / v3 > 0.5);
  assert_close(keel_backtest_cash(r)[3], 0, 0, 1e-9 * v3);
  assert_close(h3[1] * 10 + xa, v3, 1e-12, 0);
  const keel_rebalance *rb = &keel_backtest_rebalances(r)[2];
  assert_int_equal(rb->date, dates[3]);
  assert_close(rb->value_before, rb->value_after + rb->costs, 1e-15, 0);
  keel_backtest_result_free(r);
  keel_panel_free(p);
}

static void test_partial_weights_and_never(void **state) {
  (void)state;
  keel_date dates[40];
  bdays(dates, 40, 2022, 1, 3);
  double px[80];
  for (int i = 0; i < 40; i++) px[2 * i] = 100 * exp(0.01 * i), px[2 * i + 1] = 50 * exp(-0.005 * i);
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_new(CTX, 40, 2, dates, (const char *const[]){"A", "B"}, px, &p));
  double w[2] = {0.3, 0.2};
  keel_backtest_result *r = run(p, w, KEEL_CAL_NEVER, 0, 0, 1000);
  /* half stays in cash, untouched; buy and hold the rest */
  for (int i = 0; i < 40; i++) assert_close(keel_backtest_cash(r)[i], 500, 1e-14, 0);
  double expect = 500 + 300 * exp(0.01 * 39) + 200 * exp(-0.005 * 39);
  assert_close(keel_backtest_values(r)[39], expect, 1e-12, 0);
  assert_int_equal(keel_backtest_nrebalances(r), 1);
  keel_backtest_result_free(r);
  keel_panel_free(p);
}

static void test_rejects(void **state) {
  (void)state;
  keel_date dates[2] = {1, 2};
  double px[4] = {1, 1, 1, 1};
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_new(CTX, 2, 2, dates, (const char *const[]){"A", "B"}, px, &p));
  double w[2] = {0.6, 0.5};
  keel_backtest_config cfg;
  keel_backtest_config_default(&cfg);
  cfg.weights = w;
  cfg.nweights = 2;
  keel_backtest_result *r = (keel_backtest_result *)1;
  assert_status(CTX, keel_backtest_run(CTX, p, &cfg, &r), KEEL_EINVAL);
  assert_null(r);
  assert_errmsg(CTX, "sum to");
  w[0] = -0.1;
  assert_status(CTX, keel_backtest_run(CTX, p, &cfg, &r), KEEL_EINVAL);
  assert_errmsg(CTX, "weight of A");
  w[0] = NAN;
  assert_status(CTX, keel_backtest_run(CTX, p, &cfg, &r), KEEL_EINVAL);
  w[0] = 0.5;
  cfg.nweights = 1;
  assert_status(CTX, keel_backtest_run(CTX, p, &cfg, &r), KEEL_EINVAL);
  cfg.nweights = 2;
  cfg.capital = 0;
  assert_status(CTX, keel_backtest_run(CTX, p, &cfg, &r), KEEL_EINVAL);
  cfg.capital = 1000;
  cfg.cost_bps = -1;
  assert_status(CTX, keel_backtest_run(CTX, p, &cfg, &r), KEEL_EINVAL);
  cfg.cost_bps = 10;
  cfg.fee = INFINITY;
  assert_status(CTX, keel_backtest_run(CTX, p, &cfg, &r), KEEL_EINVAL);
  cfg.fee = 0;
  cfg.start = 2;
  assert_status(CTX, keel_backtest_run(CTX, p, &cfg, &r), KEEL_EINVAL);
  cfg.start = 0;
  cfg.rebalance = (keel_calendar)42;
  assert_status(CTX, keel_backtest_run(CTX, p, &cfg, &r), KEEL_EINVAL);
  cfg.rebalance = KEEL_CAL_DAILY;
  /* fees larger than the account */
  cfg.fee = 600;
  assert_status(CTX, keel_backtest_run(CTX, p, &cfg, &r), KEEL_EINFEASIBLE);
  assert_null(r);
  assert_errmsg(CTX, "exceed the account's value");
  keel_panel_free(p);
}

/* Random panels with gaps and late listings: money is conserved at every
 * rebalance, checked from the records and recomputed from holdings and
 * prices; no negative cash or holdings; weights at target after trading. */
static void test_conservation_property(void **state) {
  (void)state;
  unsigned seed = 12345;
#define RND() ((seed = seed * 1103515245u + 12345u) >> 8 & 0xffff) / 65536.0
  for (int trial = 0; trial < 60; trial++) {
    size_t nd = 60 + (size_t)(RND() * 200), na = 1 + (size_t)(RND() * 8);
    keel_date *dates = malloc(nd * sizeof *dates);
    double *px = malloc(nd * na * sizeof *px), *w = malloc(na * sizeof *w);
    bdays(dates, nd, 2010 + trial % 5, 1 + trial % 12, 1 + trial % 27);
    double wsum = 0;
    for (size_t j = 0; j < na; j++) {
      size_t list = RND() < 0.3 ? (size_t)(RND() * (double)nd / 2) : 0;
      double p = 10 + 90 * RND();
      for (size_t i = 0; i < nd; i++) {
        p *= exp(0.03 * (RND() - 0.5));
        px[i * na + j] = i < list || RND() < 0.03 ? NAN : p;
      }
      w[j] = RND();
      wsum += w[j];
    }
    double scale = (RND() < 0.5 ? 1.0 : 0.5 + 0.5 * RND()) / wsum;
    for (size_t j = 0; j < na; j++) w[j] *= scale;
    const char *syms[9] = {"A", "B", "C", "D", "E", "F", "G", "H", "I"};
    keel_panel *p = NULL;
    assert_ok(CTX, keel_panel_new(CTX, nd, na, dates, syms, px, &p));
    keel_calendar cal = (keel_calendar)(trial % 5);
    double bps = trial % 3 ? 25 * RND() : 0, fee = trial % 4 ? 2 * RND() : 0;
    keel_backtest_result *r = run(p, w, cal, bps, fee, 10000 + 1e6 * RND());

    const keel_rebalance *rb = keel_backtest_rebalances(r);
    size_t k = 0;
    double last[9];
    for (size_t j = 0; j < na; j++) last[j] = NAN;
    for (size_t i = 0; i < nd; i++) {
      for (size_t j = 0; j < na; j++)
        if (!isnan(px[i * na + j])) last[j] = px[i * na + j];
      const double *hold = keel_backtest_holdings(r, i);
      double cash = keel_backtest_cash(r)[i], after = cash;
      for (size_t j = 0; j < na; j++) {
        assert_true(hold[j] >= 0);
        if (hold[j] != 0) after += hold[j] * last[j];
      }
      double v = keel_backtest_values(r)[i];
      assert_true(cash >= -1e-9 * v);
      assert_close(after, v, 1e-12, 0);
      if (k < keel_backtest_nrebalances(r) && rb[k].date == dates[i]) {
        /* value before: yesterday's holdings and cash at today's prices */
        double before = i ? keel_backtest_cash(r)[i - 1] : keel_backtest_capital(r);
        if (i)
          for (size_t j = 0; j < na; j++) {
            double hprev = keel_backtest_holdings(r, i - 1)[j];
            if (hprev != 0) before += hprev * last[j];
          }
        assert_close(rb[k].value_before, before, 1e-12, 0);
        assert_close(rb[k].value_before, rb[k].value_after + rb[k].costs, 1e-12, 0);
        assert_close(before, after + rb[k].costs, 1e-9, 0);
        assert_close(keel_backtest_costs(r)[i], rb[k].costs, 0, 0);
        /* all tradable and no frozen holding: weights sit at target */
        int all = 1;
        for (size_t j = 0; j < na; j++) all &= !isnan(px[i * na + j]);
        if (all)
          for (size_t j = 0; j < na; j++) assert_close(hold[j] * last[j] / after, w[j], 0, 1e-9);
        k++;
      } else if (i) {
        /* between rebalances only prices move the value: cash is unchanged */
        assert_close(cash, keel_backtest_cash(r)[i - 1], 0, 0);
        assert_close(keel_backtest_costs(r)[i], 0, 0, 0);
      }
    }
    assert_int_equal(k, keel_backtest_nrebalances(r));
    /* trade costs add up to the rebalance costs */
    double tc = 0, rc = 0;
    for (size_t t = 0; t < keel_backtest_ntrades(r); t++) tc += keel_backtest_trades(r)[t].cost;
    for (size_t t = 0; t < keel_backtest_nrebalances(r); t++) rc += rb[t].costs;
    assert_close(tc, rc, 1e-12, 1e-12);
    assert_close(keel_backtest_metrics(r)->costs_total, rc, 1e-12, 1e-12);
    keel_backtest_result_free(r);
    keel_panel_free(p);
    free(dates);
    free(px);
    free(w);
  }
#undef RND
}

static keel_status oom_body(keel_ctx *ctx, void *arg) {
  const keel_panel *p = arg;
  double w[2] = {0.5, 0.4};
  keel_backtest_config cfg;
  keel_backtest_config_default(&cfg);
  cfg.weights = w;
  cfg.nweights = 2;
  cfg.rebalance = KEEL_CAL_DAILY;
  cfg.cost_bps = 5;
  keel_backtest_result *r = NULL;
  keel_status st = keel_backtest_run(ctx, p, &cfg, &r);
  if (st) assert_null(r);
  keel_backtest_result_free(r);
  return st;
}

static void test_oom(void **state) {
  (void)state;
  keel_date dates[40];
  bdays(dates, 40, 2020, 1, 1);
  double px[80];
  for (int i = 0; i < 80; i++) px[i] = 10 + (i % 7);
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_new(CTX, 40, 2, dates, (const char *const[]){"A", "B"}, px, &p));
  keel_test_oom_loop(oom_body, p);
  keel_panel_free(p);
}

/* The independent NumPy reference (tests/fixtures/backtest_reference.py)
 * on the shared stock_prices.csv: everything agrees to 1e-9 relative. */
static void check_num(const char *what, double got, json_t *want) {
  if (json_is_null(want)) {
    if (!isnan(got)) fail_msg("%s: %.17g, reference has null", what, got);
    return;
  }
  double x = json_number_value(want);
  if (!(fabs(got - x) <= 1e-9 * fabs(x) + 1e-12)) fail_msg("%s: keel %.17g, reference %.17g", what, got, x);
}

static void check_date(const char *what, keel_date got, json_t *want) {
  if (json_is_null(want)) {
    if (got != KEEL_DATE_NONE) fail_msg("%s: keel has a date, reference null", what);
    return;
  }
  char b[KEEL_DATE_BUFSIZE];
  keel_date_format(got, b);
  if (strcmp(b, json_string_value(want)) != 0) fail_msg("%s: keel %s, reference %s", what, b, json_string_value(want));
}

static void test_numpy_reference(void **state) {
  (void)state;
  const char *path = keel_test_shared_data("stock_prices.csv");
  if (!path) skip();
  json_error_t je;
  json_t *ref = json_load_file(keel_test_source_path("tests/fixtures/backtest_reference.json"), 0, &je);
  if (!ref) fail_msg("fixture: %s at line %d", je.text, je.line);
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &p));
  assert_int_equal(keel_panel_ndates(p), json_integer_value(json_object_get(ref, "rows")));
  size_t na = keel_panel_nassets(p), ci;
  json_t *c;
  json_array_foreach(json_object_get(ref, "cases"), ci, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    double *w = calloc(na, sizeof *w);
    const char *sym;
    json_t *wv;
    json_object_foreach(json_object_get(c, "weights"), sym, wv) {
      size_t j;
      assert_true(keel_panel_find(p, sym, &j));
      w[j] = json_number_value(wv);
    }
    keel_backtest_config cfg;
    keel_backtest_config_default(&cfg);
    cfg.weights = w;
    cfg.nweights = na;
    assert_int_equal(keel_calendar_parse(json_string_value(json_object_get(c, "rebalance")), &cfg.rebalance), 0);
    cfg.cost_bps = json_number_value(json_object_get(c, "cost_bps"));
    cfg.fee = json_number_value(json_object_get(c, "fee"));
    cfg.capital = json_number_value(json_object_get(c, "capital"));
    cfg.risk_free = json_number_value(json_object_get(c, "risk_free"));
    keel_backtest_result *r = NULL;
    assert_ok(CTX, keel_backtest_run(CTX, p, &cfg, &r));
    char what[128];
    size_t n = keel_backtest_npoints(r);
    snprintf(what, sizeof what, "%s final value", name);
    check_num(what, keel_backtest_values(r)[n - 1], json_object_get(c, "final_value"));
    if ((json_int_t)keel_backtest_nrebalances(r) != json_integer_value(json_object_get(c, "rebalances")))
      fail_msg("%s: %zu rebalances, reference %lld", name, keel_backtest_nrebalances(r),
               (long long)json_integer_value(json_object_get(c, "rebalances")));
    if ((json_int_t)keel_backtest_ntrades(r) != json_integer_value(json_object_get(c, "trades")))
      fail_msg("%s: %zu trades, reference %lld", name, keel_backtest_ntrades(r),
               (long long)json_integer_value(json_object_get(c, "trades")));
    const keel_metrics *m = keel_backtest_metrics(r);
    json_t *jm = json_object_get(c, "metrics");
    /* the fixture has the first slice's 15 metrics; the later ones are
     * checked against tests/fixtures/engine_reference.py */
    for (size_t k = 0; k < 15; k++) {
      const char *mn = keel_metrics_name(k);
      snprintf(what, sizeof what, "%s %s", name, mn);
      json_t *x = json_object_get(jm, mn);
      if (!x) fail_msg("fixture lacks %s", what);
      if (strncmp(mn, "dd_", 3) == 0)
        check_date(what, k == 6 ? m->dd_peak : k == 7 ? m->dd_trough : m->dd_recovery, x);
      else
        check_num(what, keel_metrics_value(m, k), x);
    }
    size_t ei;
    json_t *e;
    json_array_foreach(json_object_get(c, "equity"), ei, e) {
      size_t i = (size_t)json_integer_value(json_array_get(e, 0));
      snprintf(what, sizeof what, "%s equity[%zu]", name, i);
      assert_true(i < n);
      check_num(what, keel_backtest_values(r)[i], json_array_get(e, 1));
    }
    keel_backtest_result_free(r);
    free(w);
  }
  keel_panel_free(p);
  json_decref(ref);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_case),
      cmocka_unit_test(test_calendars),
      cmocka_unit_test(test_late_listing),
      cmocka_unit_test(test_halt_and_scaling),
      cmocka_unit_test(test_partial_weights_and_never),
      cmocka_unit_test(test_rejects),
      cmocka_unit_test(test_conservation_property),
      cmocka_unit_test(test_oom),
      cmocka_unit_test(test_numpy_reference),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
