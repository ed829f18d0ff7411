/* Tests of accounts of sub-accounts (backtest/engine.c): hand cases for
 * stops, DCA, lots and strategies, and properties over random policies. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "keel_test.h"

#define D(y, m, d) keel_test_date(y, m, d)
#define bdays keel_test_bdays

static keel_panel *panel_of(size_t nd, size_t na, const double *px, int y, int m, int d) {
  keel_date *dates = malloc(nd * sizeof *dates);
  bdays(dates, nd, y, m, d);
  const char *names[] = {"A", "B", "C", "D", "E", "F", "G", "H"};
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_new(CTX, nd, na, dates, names, px, &p));
  free(dates);
  return p;
}

/* A seeded random walk: asset j starts at p0 + dp j and moves by
 * vol * u each row (u uniform in [-0.5, 0.5) from keel_test_lcg, drawn row
 * by row); *px_out (caller frees) gets the prices. */
static keel_panel *random_walk(size_t nd, size_t na, uint32_t seed, double p0, double dp, double vol, int y, int m,
                               int d, double **px_out) {
  double *px = malloc(nd * na * sizeof *px);
  for (size_t j = 0; j < na; j++) px[j] = p0 + dp * (double)j;
  for (size_t i = 1; i < nd; i++)
    for (size_t j = 0; j < na; j++) px[i * na + j] = px[(i - 1) * na + j] * (1 + vol * keel_test_lcg(&seed));
  *px_out = px;
  return panel_of(nd, na, px, y, m, d);
}

static keel_backtest_result *run1(const keel_panel *p, const keel_subaccount_spec *sub) {
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 1;
  a.subs = sub;
  keel_backtest_result *r = NULL;
  assert_ok(CTX, keel_backtest_run_account(CTX, p, &a, &r));
  return r;
}

/* A trailing stop trails the peak since entry, fills at the next close,
 * and the position is not bought back until the re-entry rule allows. */
static void test_trailing_stop(void **state) {
  (void)state;
  /* A rises to 120, falls to 90 (25% below the peak: the stop at 20%
   * triggers on that close), the next close is 95: the sale fills there */
  double px[] = {100, 110, 120, 90, 95, 97, 99, 101, 103, 105};
  keel_panel *p = panel_of(10, 1, px, 2021, 3, 1);
  double w[] = {1};
  keel_stop_rule rule;
  keel_stop_rule_default(&rule);
  rule.kind = KEEL_STOP_TRAILING;
  rule.level = 0.2;
  rule.reentry = KEEL_REENTRY_AFTER_DAYS;
  rule.days = 3;
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.weights = w;
  sub.capital = 1000;
  sub.schedule.calendar = KEEL_CAL_DAILY; /* a rebalance every day must not buy it back */
  sub.stops = &rule;
  sub.nstops = 1;
  keel_backtest_result *r = run1(p, &sub);
  const keel_event *ev = keel_backtest_events(r);
  assert_int_equal(keel_backtest_nevents(r), 3);
  assert_int_equal(ev[0].kind, KEEL_EVENT_STOP);
  assert_int_equal(ev[0].date, keel_panel_dates(p)[3]);
  assert_close(ev[0].price, 90, 0, 0);
  assert_close(ev[0].level, 120 * 0.8, 1e-15, 0); /* the peak, not the entry price 100 */
  assert_int_equal(ev[1].kind, KEEL_EVENT_STOP_FILL);
  assert_int_equal(ev[1].date, keel_panel_dates(p)[4]);
  assert_int_equal(ev[2].kind, KEEL_EVENT_REENTRY);
  assert_int_equal(ev[2].date, keel_panel_dates(p)[7]); /* 3 rows after the fill */
  const keel_trade *tr = keel_backtest_trades(r);
  size_t nt = keel_backtest_ntrades(r);
  assert_int_equal(nt, 3);
  assert_int_equal(tr[0].reason, KEEL_REASON_INITIAL);
  assert_int_equal(tr[1].reason, KEEL_REASON_STOP);
  assert_close(tr[1].price, 95, 0, 0);
  assert_close(tr[1].shares, -10, 1e-14, 0);
  assert_int_equal(tr[2].reason, KEEL_REASON_REENTRY);
  assert_int_equal(tr[2].date, keel_panel_dates(p)[7]);
  assert_close(tr[2].notional, 950, 1e-14, 0);
  /* locked rows hold cash only */
  for (size_t t = 4; t < 7; t++) assert_close(keel_backtest_cash(r)[t], 950, 1e-14, 0);
  assert_close(keel_backtest_values(r)[9], 950.0 / 101 * 105, 1e-13, 0);
  assert_int_equal(keel_backtest_metrics(r)->nstops, 1);
  keel_backtest_result_free(r);
  keel_panel_free(p);
}

/* Stop-loss from the entry price vs from the average cost; take-profit;
 * a stop with no re-entry stays out for good. */
static void test_stop_refs(void **state) {
  (void)state;
  /* day 0 buys at 100; DCA on day 2 buys more at 80 (avg cost below 100) */
  double px[] = {100, 90, 80, 82, 78, 76, 75, 74, 73, 130};
  keel_panel *p = panel_of(10, 1, px, 2021, 3, 1);
  double w[] = {1};
  keel_stop_rule rule;
  keel_stop_rule_default(&rule);
  rule.kind = KEEL_STOP_LOSS;
  rule.level = 0.2; /* entry 100: triggers at <= 80, on day 2 */
  rule.ref = KEEL_STOP_REF_ENTRY;
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.weights = w;
  sub.capital = 1000;
  sub.schedule.calendar = KEEL_CAL_NEVER;
  sub.stops = &rule;
  sub.nstops = 1;
  keel_backtest_result *r = run1(p, &sub);
  assert_int_equal(keel_backtest_events(r)[0].date, keel_panel_dates(p)[2]);
  assert_close(keel_backtest_trades(r)[1].price, 82, 0, 0);
  assert_int_equal(keel_backtest_nevents(r), 2); /* never re-enters: 130 is never bought */
  assert_close(keel_backtest_values(r)[9], keel_backtest_cash(r)[9], 0, 0);
  keel_backtest_result_free(r);

  /* with the average cost: a second purchase at 80 lowers it to
   * 2000 / (10 + 12.5) = 88.9, so the stop waits for 71.1 */
  keel_dca plan;
  keel_dca_default(&plan);
  plan.amount = 1000;
  plan.schedule.calendar = KEEL_CAL_EVERY_N;
  plan.schedule.every = 2;
  plan.start = keel_panel_dates(p)[2];
  plan.end = keel_panel_dates(p)[2];
  rule.ref = KEEL_STOP_REF_AVG_COST;
  sub.dca = &plan;
  sub.ndca = 1;
  r = run1(p, &sub);
  assert_int_equal(keel_backtest_nevents(r), 0);
  assert_close(keel_backtest_flows(r)[2], 1000, 0, 0);
  assert_close(keel_backtest_holdings(r, 2)[0], 10 + 12.5, 1e-14, 0);
  keel_backtest_result_free(r);

  /* take-profit 25% from entry: triggers at 130 on the last day, fills never (no next row) */
  rule.kind = KEEL_STOP_TAKE_PROFIT;
  rule.level = 0.25;
  rule.ref = KEEL_STOP_REF_ENTRY;
  sub.dca = NULL;
  sub.ndca = 0;
  r = run1(p, &sub);
  assert_int_equal(keel_backtest_nevents(r), 1);
  assert_int_equal(keel_backtest_events(r)[0].kind, KEEL_EVENT_STOP);
  assert_int_equal(keel_backtest_ntrades(r), 1);
  keel_backtest_result_free(r);
  keel_panel_free(p);
}

/* A DCA plan into one asset without costs: the time-weighted return is
 * the asset's return whatever the flows, the installments step up
 * yearly, and the shares are the sum of installment / price. */
static void test_dca_time_weighted(void **state) {
  (void)state;
  const size_t nd = 600;
  double *px;
  keel_panel *p = random_walk(nd, 1, 5, 50, 0, 0.02, 2019, 1, 1, &px);
  double w[] = {1};
  keel_dca plan;
  keel_dca_default(&plan);
  plan.amount = 1000;
  plan.step_up = 0.1;
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.weights = w;
  sub.capital = 0; /* all the money comes from the plan */
  sub.schedule.calendar = KEEL_CAL_NEVER;
  sub.dca = &plan;
  sub.ndca = 1;
  keel_backtest_result *r = run1(p, &sub);
  const keel_date *dt = keel_panel_dates(p);
  double shares = 0, paid = 0;
  int y0, m0, yy, mm;
  keel_date_to_ymd(dt[0], &y0, &m0, NULL);
  for (size_t t = 0; t < nd; t++) {
    keel_date_to_ymd(dt[t], &yy, &mm, NULL);
    int prev_m = -1, prev_y = -1;
    if (t) keel_date_to_ymd(dt[t - 1], &prev_y, &prev_m, NULL);
    if (t == 0 || mm != prev_m) {
      double a = 1000 * pow(1.1, floor((double)(dt[t] - dt[0]) / 365.25));
      shares += a / px[t];
      paid += a;
      assert_close(keel_backtest_flows(r)[t], a, 1e-14, 0);
    }
  }
  assert_close(keel_backtest_holdings(r, nd - 1)[0], shares, 1e-12, 0);
  const keel_metrics *m = keel_backtest_metrics(r);
  assert_close(m->total_return, px[nd - 1] / px[0] - 1, 1e-12, 0);
  assert_close(keel_backtest_values(r)[nd - 1], shares * px[nd - 1], 1e-12, 0);
  assert_true(paid > 20 * 1000);
  keel_backtest_result_free(r);
  keel_panel_free(p);
  free(px);
}

/* Whole lots and a minimum trade: shares are multiples of the lot, no
 * trade is below the minimum, cash never negative. */
static void test_lots(void **state) {
  (void)state;
  double px[] = {10, 20, 11, 19, 12, 18, 13, 17, 14, 16};
  keel_panel *p = panel_of(5, 2, px, 2021, 3, 1);
  keel_asset_meta meta = {"", 10, 0};
  assert_ok(CTX, keel_panel_set_meta(CTX, p, 0, &meta));
  meta.lot = 5;
  meta.min_trade = 150;
  assert_ok(CTX, keel_panel_set_meta(CTX, p, 1, &meta));
  double w[] = {0.5, 0.5};
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.weights = w;
  sub.capital = 10000;
  sub.schedule.calendar = KEEL_CAL_DAILY;
  sub.costs.buy_bps = sub.costs.sell_bps = 20;
  sub.costs.fee = 2;
  keel_backtest_result *r = run1(p, &sub);
  const keel_trade *tr = keel_backtest_trades(r);
  for (size_t i = 0; i < keel_backtest_ntrades(r); i++) {
    double lot = tr[i].asset == 0 ? 10 : 5;
    assert_close(tr[i].shares / lot, nearbyint(tr[i].shares / lot), 0, 1e-9);
    if (tr[i].asset == 1) assert_true(fabs(tr[i].notional) >= 150);
  }
  for (size_t t = 0; t < 5; t++) {
    assert_true(keel_backtest_cash(r)[t] >= 0);
    const double *h = keel_backtest_holdings(r, t);
    assert_close(h[0] / 10, nearbyint(h[0] / 10), 0, 1e-9);
    assert_close(h[1] / 5, nearbyint(h[1] / 5), 0, 1e-9);
  }
  /* day 0: 500 shares of A and 250 of B would cost 10000 + costs: the buys round down */
  assert_true(keel_backtest_holdings(r, 0)[0] <= 500 && keel_backtest_holdings(r, 0)[1] <= 250);
  keel_backtest_result_free(r);
  keel_panel_free(p);
}

/* A strategy through the vtable: it sees no row after the decision, its
 * optimiser record joins the audit trail. */
typedef struct flip_state {
  int calls;
  size_t last_row;
} flip_state;

static keel_status flip_rebalance(void *st, keel_ctx *ctx, const keel_strategy_input *in, double *target,
                                  keel_opt_record *rec) {
  (void)ctx;
  flip_state *f = st;
  f->calls++;
  f->last_row = in->row;
  int odd = f->calls % 2;
  target[0] = odd ? 0.7 : 0.3;
  target[1] = odd ? 0.3 : 0.7;
  rec->used = 1;
  rec->iterations = f->calls;
  rec->res_prim = 1e-12;
  return KEEL_OK;
}

static const keel_strategy_ops FLIP_OPS = {"flip", NULL, flip_rebalance, NULL, NULL};

static void test_strategy_and_two_subs(void **state) {
  (void)state;
  const size_t nd = 80;
  double *px;
  keel_panel *p = random_walk(nd, 3, 9, 100, 0, 0.03, 2021, 1, 4, &px);
  flip_state fs = {0, 0};
  keel_strategy strat = {&FLIP_OPS, &fs};
  size_t cols_a[] = {0, 1}, cols_b[] = {2, 1};
  double wb[] = {0.5, 0.25};
  keel_subaccount_spec subs[2];
  keel_subaccount_spec_default(&subs[0]);
  keel_subaccount_spec_default(&subs[1]);
  subs[0].name = "core";
  subs[0].nassets = 2;
  subs[0].assets = cols_a;
  subs[0].strategy = &strat;
  subs[0].capital = 5000;
  subs[1].name = "travel";
  subs[1].nassets = 2;
  subs[1].assets = cols_b;
  subs[1].weights = wb;
  subs[1].capital = 2000;
  subs[1].schedule.calendar = KEEL_CAL_WEEKLY;
  subs[1].costs.sell_bps = 30;
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 2;
  a.subs = subs;
  a.benchmark = 2;
  keel_backtest_result *r = NULL;
  assert_ok(CTX, keel_backtest_run_account(CTX, p, &a, &r));
  /* monthly: January 4 (initial), February 1, March 1, April 1 */
  assert_int_equal(fs.calls, 4);
  assert_int_equal(keel_backtest_nopt_calls(r), 4);
  assert_int_equal(keel_backtest_opt_calls(r)[3].rec.iterations, 4);
  assert_int_equal(keel_backtest_opt_calls(r)[1].date, D(2021, 2, 1));
  assert_int_equal(keel_backtest_nsubs(r), 2);
  assert_string_equal(keel_backtest_sub_name(r, 1), "travel");
  for (size_t t = 0; t < nd; t++)
    assert_close(keel_backtest_values(r)[t], keel_backtest_sub_values(r, 0)[t] + keel_backtest_sub_values(r, 1)[t],
                 1e-14, 0);
  /* the travel fund keeps a quarter in cash after each weekly rebalance
   * (Mondays; January 4 is one) */
  for (size_t t = 0; t < nd; t++)
    if (keel_date_weekday(keel_backtest_dates(r)[t]) == 0)
      assert_close(keel_backtest_sub_cash(r, 1)[t] / keel_backtest_sub_values(r, 1)[t], 0.25, 1e-12, 0);
  /* the core sub-account holds 0.7 / 0.3 after the first decision */
  const double *h0 = keel_backtest_holdings(r, 0);
  double v0 = keel_backtest_sub_values(r, 0)[0];
  assert_close(h0[0] * 100 / v0, 0.7, 1e-12, 0);
  assert_true(isfinite(keel_backtest_metrics(r)->tracking_error));
  assert_true(isfinite(keel_backtest_sub_metrics(r, 1)->info_ratio));
  assert_close(keel_backtest_sub_metrics(r, 1)->time_in_market, 1, 0, 0);
  keel_backtest_result_free(r);
  keel_panel_free(p);
  free(px);
}

/* on_bar: a strategy that leaves asset 0 the first close it falls 5% below
 * its price at the last decision; the rebalance is one "strategy" trade
 * group, conserves money, and the new weights hold until the next
 * decision. */
typedef struct exit_state {
  size_t bars, exits;
  double ref;
} exit_state;

static keel_status exit_rebalance(void *st, keel_ctx *ctx, const keel_strategy_input *in, double *target,
                                  keel_opt_record *rec) {
  (void)ctx, (void)rec;
  exit_state *e = st;
  e->ref = keel_panel_price(in->panel, in->row, in->assets[0]);
  target[0] = target[1] = 0.5;
  return KEEL_OK;
}

static keel_status exit_on_bar(void *st, keel_ctx *ctx, const keel_strategy_input *in, double *target, int *go,
                               keel_opt_record *rec) {
  (void)ctx, (void)rec;
  exit_state *e = st;
  e->bars++;
  double p = keel_panel_price(in->panel, in->row, in->assets[0]);
  if (in->weights[0] > 0 && p < 0.95 * e->ref) {
    target[0] = 0;
    target[1] = 0.5;
    *go = 1;
    e->exits++;
  }
  return KEEL_OK;
}

static const keel_strategy_ops EXIT_OPS = {"exit", NULL, exit_rebalance, NULL, exit_on_bar};

static void test_on_bar(void **state) {
  (void)state;
  const size_t nd = 250;
  double *px;
  keel_panel *p = random_walk(nd, 2, 77, 100, 0, 0.08, 2021, 1, 4, &px);
  exit_state es = {0, 0, 0};
  keel_strategy strat = {&EXIT_OPS, &es};
  size_t cols[] = {0, 1};
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.nassets = 2;
  sub.assets = cols;
  sub.strategy = &strat;
  sub.capital = 10000;
  sub.costs.buy_bps = sub.costs.sell_bps = 10;
  keel_backtest_result *r = run1(p, &sub);
  assert_int_equal(es.bars, nd);
  assert_true(es.exits >= 2);
  size_t nstrat = 0;
  const keel_rebalance *rb = keel_backtest_rebalances(r);
  for (size_t g = 0; g < keel_backtest_nrebalances(r); g++) {
    assert_close(rb[g].value_before, rb[g].value_after + rb[g].costs, 1e-9, 0);
    if (rb[g].reason != KEEL_REASON_STRATEGY) continue;
    nstrat++;
  }
  assert_int_equal(nstrat, es.exits);
  /* after an exit asset 0 stays out until the next monthly decision */
  const keel_trade *tr = keel_backtest_trades(r);
  const keel_date *dates = keel_backtest_dates(r);
  for (size_t i = 0; i < keel_backtest_ntrades(r); i++) {
    /* (asset 1 goes back to its half on the same row) */
    if (tr[i].reason != KEEL_REASON_STRATEGY || tr[i].asset != 0) continue;
    assert_true(tr[i].shares < 0);
    size_t t = 0;
    while (dates[t] != tr[i].date) t++;
    int y, m0, m, d;
    keel_date_to_ymd(dates[t], &y, &m0, &d);
    for (size_t u = t; u < nd; u++) {
      keel_date_to_ymd(dates[u], &y, &m, &d);
      if (m != m0) break;
      assert_true(keel_backtest_holdings(r, u)[0] == 0);
    }
  }
  keel_backtest_result_free(r);
  keel_panel_free(p);
  free(px);
}

/* A run may start from holdings: the first close rebalances from them, and
 * the starting value counts them. 10 A at 100 plus 1000 cash to 50/50 with
 * 10 bps each way: V' = 2000 - 0.001 (V'/2) - 0.001 (1000 - V'/2) = 1999. */
static void test_initial_shares(void **state) {
  (void)state;
  double px[] = {100, 50, 100, 50, 110, 50};
  keel_panel *p = panel_of(3, 2, px, 2022, 3, 1);
  double w[] = {0.5, 0.5}, held[] = {10, 0};
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.weights = w;
  sub.initial_shares = held;
  sub.capital = 1000;
  sub.costs.buy_bps = sub.costs.sell_bps = 10;
  keel_backtest_result *r = run1(p, &sub);
  assert_close(keel_backtest_capital(r), 2000, 1e-15, 0);
  assert_close(keel_backtest_values(r)[0], 1999, 1e-12, 0);
  assert_close(keel_backtest_costs(r)[0], 1, 1e-12, 0);
  assert_close(keel_backtest_holdings(r, 0)[0], 9.995, 1e-12, 0);
  assert_close(keel_backtest_holdings(r, 0)[1], 19.99, 1e-12, 0);
  assert_int_equal(keel_backtest_ntrades(r), 2);
  assert_true(keel_backtest_trades(r)[0].shares < 0 || keel_backtest_trades(r)[1].shares < 0);
  /* the return counts from the 2000 held before the first close */
  assert_close(keel_backtest_metrics(r)->total_return, keel_backtest_values(r)[2] / 2000 - 1, 1e-12, 0);
  keel_backtest_result_free(r);
  /* nothing else: holdings alone fund the run */
  sub.capital = 0;
  r = run1(p, &sub);
  assert_close(keel_backtest_capital(r), 1000, 1e-15, 0);
  keel_backtest_result_free(r);
  keel_panel_free(p);
  /* a held asset needs a first price */
  double px2[] = {NAN, 50, 100, 50};
  p = panel_of(2, 2, px2, 2022, 3, 1);
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 1;
  a.subs = &sub;
  keel_backtest_result *bad = NULL;
  assert_int_equal(keel_backtest_run_account(CTX, p, &a, &bad), KEEL_EINVAL);
  assert_null(bad);
  assert_non_null(strstr(keel_errmsg(CTX), "A is held at the start but has no price"));
  held[0] = -1;
  held[1] = 1;
  assert_int_equal(keel_backtest_run_account(CTX, p, &a, &bad), KEEL_EINVAL);
  assert_non_null(strstr(keel_errmsg(CTX), "initial shares of A are -1"));
  keel_panel_free(p);
}

/* The engine reads a panel row in place when a sub-account's assets are
 * consecutive columns priced on every row; listing the same assets in
 * another order takes the general path. Both give the same run. */
static void test_direct_rows_match(void **state) {
  (void)state;
  const size_t nd = 300, na = 5;
  double *px;
  keel_panel *p = random_walk(nd, na, 21, 50, 10, 0.04, 2020, 1, 6, &px);
  size_t fwd[] = {0, 1, 2, 3, 4}, rev[] = {4, 3, 2, 1, 0};
  double wf[] = {0.3, 0.25, 0.2, 0.15, 0.05}, wr[5];
  for (size_t k = 0; k < na; k++) wr[k] = wf[na - 1 - k];
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.capital = 50000;
  sub.band.kind = KEEL_BAND_COMBINED;
  sub.band.abs = 0.05;
  sub.band.rel = 0.25;
  sub.rebalance_on_schedule = 1;
  sub.costs.buy_bps = 12, sub.costs.sell_bps = 7, sub.costs.fee = 1;
  sub.nassets = na;
  sub.assets = fwd;
  sub.weights = wf;
  keel_backtest_result *a = run1(p, &sub);
  sub.assets = rev;
  sub.weights = wr;
  keel_backtest_result *b = run1(p, &sub);
  assert_int_equal(keel_backtest_nrebalances(a), keel_backtest_nrebalances(b));
  assert_int_equal(keel_backtest_ntrades(a), keel_backtest_ntrades(b));
  assert_true(keel_backtest_nrebalances(a) > 12);
  for (size_t t = 0; t < nd; t++) assert_close(keel_backtest_values(a)[t], keel_backtest_values(b)[t], 1e-12, 0);
  for (size_t j = 0; j < na; j++)
    assert_close(keel_backtest_holdings(a, nd - 1)[j], keel_backtest_holdings(b, nd - 1)[j], 1e-12, 0);
  keel_backtest_result_free(a);
  keel_backtest_result_free(b);
  keel_panel_free(p);
  free(px);
}

/* Fills at the next open: what a close decides trades at the next row's
 * open, at the open's price; money paid in arrives on its own row; a
 * stop triggered on a close sells at the next open. */
static void test_next_open(void **state) {
  (void)state;
  double cl[] = {100, 110, 120, 90, 95, 97}, op[] = {99, 104, 112, 118, 93, 96};
  keel_panel *p = panel_of(6, 1, cl, 2021, 3, 1), *o = panel_of(6, 1, op, 2021, 3, 1);
  double w[] = {0.5};
  keel_dca plan;
  keel_dca_default(&plan);
  plan.amount = 100;
  plan.schedule.calendar = KEEL_CAL_NEVER; /* row 0 only */
  keel_stop_rule rule;
  keel_stop_rule_default(&rule);
  rule.kind = KEEL_STOP_TRAILING;
  rule.level = 0.2;
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.weights = w;
  sub.capital = 1000;
  sub.schedule.calendar = KEEL_CAL_NEVER;
  sub.dca = &plan;
  sub.ndca = 1;
  sub.stops = &rule;
  sub.nstops = 1;
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 1;
  a.subs = &sub;
  a.opens = o;
  a.fill = KEEL_FILL_NEXT_OPEN;
  keel_backtest_result *r = NULL;
  assert_ok(CTX, keel_backtest_run_account(CTX, p, &a, &r));
  const keel_date *dt = keel_panel_dates(p);
  /* row 0: 1,100 in cash (the installment arrives on row 0), nothing traded */
  assert_close(keel_backtest_values(r)[0], 1100, 0, 0);
  assert_close(keel_backtest_flows(r)[0], 100, 0, 0);
  assert_close(keel_backtest_cash(r)[0], 1100, 0, 0);
  /* row 1's open: the installment buys 50 of A (half, its target), then
   * the initial allocation takes A to half of the value: 1,100 / 2 / 104
   * shares in all */
  const keel_trade *tr = keel_backtest_trades(r);
  assert_int_equal(tr[0].date, dt[1]);
  assert_close(tr[0].price, 104, 0, 0);
  assert_int_equal(tr[0].reason, KEEL_REASON_DCA);
  assert_close(tr[0].notional, 50, 1e-14, 0);
  assert_int_equal(tr[1].reason, KEEL_REASON_INITIAL);
  double sh = 1100.0 / 2 / 104;
  assert_close(keel_backtest_holdings(r, 1)[0], sh, 1e-14, 0);
  /* the peak since entry is the close of 120 on row 2; 90 on row 3
   * triggers (<= 96); the sale fills at row 4's open, 93 */
  const keel_event *ev = keel_backtest_events(r);
  assert_int_equal(keel_backtest_nevents(r), 2);
  assert_int_equal(ev[0].date, dt[3]);
  assert_int_equal(ev[1].kind, KEEL_EVENT_STOP_FILL);
  assert_int_equal(ev[1].date, dt[4]);
  assert_close(tr[2].price, 93, 0, 0);
  assert_close(tr[2].shares, -sh, 1e-14, 0);
  assert_close(keel_backtest_values(r)[5], 550 + sh * 93, 1e-13, 0);
  keel_backtest_result_free(r);

  /* the opens must match the closes' shape */
  keel_panel *o2 = panel_of(5, 1, op, 2021, 3, 1);
  a.opens = o2;
  assert_status(CTX, keel_backtest_run_account(CTX, p, &a, &r), KEEL_EINVAL);
  assert_errmsg(CTX, "the opens are 5 dates");
  keel_panel_free(o2);
  keel_panel_free(o);
  keel_panel_free(p);
}

/* Lump sum against DCA for the same money, one asset and no costs: the
 * lump buys total / p_0 shares; the DCA arm total / n / p_i on each of
 * its n dates (the first close and each new month). */
static void test_lump_vs_dca(void **state) {
  (void)state;
  const size_t nd = 260;
  double *px;
  keel_panel *p = random_walk(nd, 1, 33, 40, 0, 0.03, 2021, 1, 4, &px);
  double w[] = {1};
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.weights = w;
  sub.schedule.calendar = KEEL_CAL_WEEKLY; /* ignored: both arms hold */
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 1;
  a.subs = &sub;
  keel_dca plan;
  keel_dca_default(&plan); /* monthly */
  keel_dca_comparison c;
  assert_ok(CTX, keel_backtest_compare_dca(CTX, p, &a, 12000, &plan, 6, &c));
  const keel_date *dt = keel_panel_dates(p);
  double shares = 0;
  size_t made = 0;
  for (size_t t = 0; t < nd && made < 6; t++) {
    int m, pm;
    keel_date_to_ymd(dt[t], NULL, &m, NULL);
    if (t) keel_date_to_ymd(dt[t - 1], NULL, &pm, NULL);
    if (t == 0 || m != pm) shares += 2000 / px[t], made++;
  }
  assert_int_equal(c.installments, 6);
  assert_close(c.lump_final, 12000 / px[0] * px[nd - 1], 1e-12, 0);
  assert_close(c.dca_final, shares * px[nd - 1], 1e-12, 0);
  assert_close(c.lump_costs, 0, 0, 0);
  /* with costs both arms pay: the DCA arm its six purchases */
  sub.costs.buy_bps = 20;
  sub.costs.fee = 1;
  assert_ok(CTX, keel_backtest_compare_dca(CTX, p, &a, 12000, &plan, 6, &c));
  assert_close(c.dca_costs, 6 + 0.002 * 12000 / 1.002 - 6 * 0.002 / 1.002, 1e-9, 0);
  assert_status(CTX, keel_backtest_compare_dca(CTX, p, &a, -1, &plan, 6, &c), KEEL_EINVAL);
  keel_panel_free(p);
  free(px);
}

/* Volatility targeting: on each rebalance the risky sleeve is k times the
 * basket with k = min(cap, target / sigma), sigma the rolling volatility
 * of the basket's returns, recomputed here from the prices. */
static void test_vol_target(void **state) {
  (void)state;
  const size_t nd = 200, na = 2;
  double *px = malloc(nd * na * sizeof *px);
  uint32_t seed = 4;
  px[0] = 100, px[1] = 50;
  for (size_t i = 1; i < nd; i++) {
    px[i * 2] = px[(i - 1) * 2] * (1 + 0.04 * keel_test_lcg(&seed));
    px[i * 2 + 1] = px[(i - 1) * 2 + 1] * (1 + 0.01 * keel_test_lcg(&seed));
  }
  keel_panel *p = panel_of(nd, na, px, 2021, 1, 4);
  double w[] = {0.6, 0.4};
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.weights = w;
  sub.capital = 10000;
  sub.vol.target = 0.05;
  sub.vol.window = 20;
  sub.vol.rebalance_band = INFINITY; /* monthly only */
  keel_backtest_result *r = run1(p, &sub);
  const keel_rebalance *rb = keel_backtest_rebalances(r);
  size_t checked = 0;
  for (size_t q = 0; q < keel_backtest_nrebalances(r); q++) {
    size_t t = 0;
    while (keel_backtest_dates(r)[t] != rb[q].date) t++;
    if (t < 20) continue;
    double m = 0, ss = 0, rs[20];
    for (size_t i = 0; i < 20; i++) {
      size_t u = t - 19 + i;
      rs[i] = 0.6 * (px[u * 2] / px[(u - 1) * 2] - 1) + 0.4 * (px[u * 2 + 1] / px[(u - 1) * 2 + 1] - 1);
      m += rs[i] / 20;
    }
    for (size_t i = 0; i < 20; i++) ss += (rs[i] - m) * (rs[i] - m);
    double k = fmin(1, 0.05 / sqrt(ss / 19 * 252));
    double V = keel_backtest_values(r)[t], invested = V - keel_backtest_cash(r)[t];
    assert_close(invested / V, k, 1e-12, 0);
    checked++;
  }
  assert_true(checked >= 6);
  keel_backtest_result_free(r);
  keel_panel_free(p);
  free(px);
}

/* The cost-aware skip: a tiny risk aversion skips every rebalance after
 * the first (no benefit outweighs 50 bps), a huge one skips none. */
static void test_cost_aware_skip(void **state) {
  (void)state;
  const size_t nd = 300, na = 3;
  double *px;
  keel_panel *p = random_walk(nd, na, 8, 30, 20, 0.03, 2021, 1, 4, &px);
  double w[] = {0.5, 0.3, 0.2};
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.weights = w;
  sub.costs.buy_bps = sub.costs.sell_bps = 50;
  keel_backtest_result *r0 = run1(p, &sub);
  sub.skip_gamma = 1e-9;
  sub.skip_lookback = 60;
  keel_backtest_result *r1 = run1(p, &sub);
  sub.skip_gamma = 1e9;
  keel_backtest_result *r2 = run1(p, &sub);
  assert_true(keel_backtest_nrebalances(r0) > 10);
  assert_int_equal(keel_backtest_nrebalances(r1), 1);
  assert_int_equal(keel_backtest_nrebalances(r2), keel_backtest_nrebalances(r0));
  keel_backtest_result_free(r0);
  keel_backtest_result_free(r1);
  keel_backtest_result_free(r2);
  keel_panel_free(p);
  free(px);
}

/* Shorts when allowed: 130/-30 holds negative shares, the short's value
 * counts against the account, and money is conserved at each rebalance. */
static void test_short(void **state) {
  (void)state;
  double px[] = {10, 20, 11, 19, 12, 21, 11.5, 22};
  keel_panel *p = panel_of(4, 2, px, 2021, 3, 1);
  double w[] = {1.3, -0.3};
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.weights = w;
  sub.capital = 1000;
  sub.schedule.calendar = KEEL_CAL_DAILY;
  sub.costs.buy_bps = sub.costs.sell_bps = 10;
  keel_backtest_result *r = NULL;
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 1;
  a.subs = &sub;
  assert_status(CTX, keel_backtest_run_account(CTX, p, &a, &r), KEEL_EINVAL);
  assert_errmsg(CTX, "weights must be finite and >= 0");
  sub.allow_short = 1;
  r = run1(p, &sub);
  for (size_t t = 0; t < 4; t++) {
    const double *h = keel_backtest_holdings(r, t);
    double V = keel_backtest_cash(r)[t] + h[0] * px[t * 2] + h[1] * px[t * 2 + 1];
    assert_true(h[1] < 0);
    assert_close(keel_backtest_values(r)[t], V, 1e-12, 0);
    assert_close(h[1] * px[t * 2 + 1] / V, -0.3, 1e-12, 0);
  }
  const keel_rebalance *rb = keel_backtest_rebalances(r);
  for (size_t q = 0; q < keel_backtest_nrebalances(r); q++)
    assert_close(rb[q].value_before, rb[q].value_after + rb[q].costs, 1e-14, 0);
  keel_backtest_result_free(r);
  keel_panel_free(p);
}

/* Every bad setting is named. */
static void test_rejects(void **state) {
  (void)state;
  double px[] = {10, 20, 11, 19};
  keel_panel *p = panel_of(2, 2, px, 2021, 3, 1);
  double w[] = {0.5, 0.5}, bad[] = {0.8, 0.8};
  keel_subaccount_spec sub;
  keel_account_spec a;
  keel_backtest_result *r = (keel_backtest_result *)1;
#define REJECT(setup, needle)                                                \
  do {                                                                       \
    keel_subaccount_spec_default(&sub);                                      \
    sub.weights = w;                                                         \
    keel_account_spec_default(&a);                                           \
    a.nsubs = 1;                                                             \
    a.subs = &sub;                                                           \
    setup;                                                                   \
    assert_status(CTX, keel_backtest_run_account(CTX, p, &a, &r), KEEL_EINVAL); \
    assert_null(r);                                                          \
    assert_errmsg(CTX, needle);                                              \
  } while (0)
  REJECT(sub.weights = bad, "sum to 1.6");
  REJECT(sub.band.kind = KEEL_BAND_COMBINED, "band abs 0 must be in (0, 1)");
  REJECT((sub.band.kind = KEEL_BAND_RELATIVE, sub.band.rel = -1), "band rel -1");
  REJECT(sub.capital = 0, "nothing to invest");
  REJECT(sub.costs.fee = NAN, "fee nan");
  REJECT(a.fill = KEEL_FILL_NEXT_OPEN, "next open");
  REJECT(sub.strategy = (keel_strategy *)&sub, "fixed weights or a strategy");
  keel_stop_rule rule;
  keel_stop_rule_default(&rule);
  rule.action = KEEL_STOP_TO_DEFENSIVE;
  REJECT((sub.stops = &rule, sub.nstops = 1), "but none is given");
  REJECT((rule.action = KEEL_STOP_TO_CASH, rule.level = 1.5, sub.stops = &rule, sub.nstops = 1), "level 1.5");
  size_t twice[] = {1, 1};
  REJECT((sub.nassets = 2, sub.assets = twice), "lists B twice");
#undef REJECT
  keel_panel_free(p);
}

/* ---- properties over random policies and panels ---- */

typedef struct prop_case {
  keel_panel *p, *opens; /* opens: NULL, or fills at the next open */
  keel_subaccount_spec subs[3];
  size_t cols[3][6];
  double w[3][6], def[3][6];
  keel_dca dca[3][2];
  keel_stop_rule stops[3][2];
  size_t nsubs;
} prop_case;

static double u01(uint32_t *s) { return keel_test_lcg(s) + 0.5; }

static void make_case(prop_case *c, uint32_t seed, size_t nd, size_t na, int with_opens) {
  memset(c, 0, sizeof *c);
  double *px = malloc(nd * na * sizeof *px);
  for (size_t j = 0; j < na; j++) {
    size_t first = u01(&seed) < 0.3 ? (size_t)(u01(&seed) * nd / 3) : 0; /* late listings */
    double x = 20 + 80 * u01(&seed);
    for (size_t i = 0; i < nd; i++) {
      x *= 1 + 0.04 * keel_test_lcg(&seed) + (u01(&seed) < 0.01 ? -0.2 : 0);
      px[i * na + j] = i < first || (i > first && u01(&seed) < 0.02) ? NAN : x; /* halts */
    }
  }
  c->p = panel_of(nd, na, px, 2015, 6, 1);
  if (with_opens) {
    /* an open near the last close; none on some days with a close */
    for (size_t i = nd; i-- > 0;)
      for (size_t j = 0; j < na; j++) {
        double prev = i ? px[(i - 1) * na + j] : NAN, cl = px[i * na + j];
        double base = isnan(prev) ? cl : prev;
        px[i * na + j] = isnan(cl) || u01(&seed) < 0.03 ? NAN : base * (1 + 0.02 * keel_test_lcg(&seed));
      }
    c->opens = panel_of(nd, na, px, 2015, 6, 1);
  }
  free(px);
  for (size_t j = 0; j < na; j++) {
    keel_asset_meta m = {"", u01(&seed) < 0.3 ? 1 : 0, u01(&seed) < 0.2 ? 50 : 0};
    assert_ok(CTX, keel_panel_set_meta(CTX, c->p, j, &m));
  }
  c->nsubs = 1 + (size_t)(u01(&seed) * 3) % 3;
  const char *names[] = {"s0", "s1", "s2"};
  for (size_t s = 0; s < c->nsubs; s++) {
    keel_subaccount_spec *sp = &c->subs[s];
    keel_subaccount_spec_default(sp);
    sp->name = names[s];
    size_t m = 2 + (size_t)(u01(&seed) * (double)(na - 1));
    if (m > na) m = na;
    size_t off = (size_t)(u01(&seed) * (double)na);
    double sum = 0;
    for (size_t k = 0; k < m; k++) {
      c->cols[s][k] = (off + k) % na;
      c->w[s][k] = u01(&seed);
      sum += c->w[s][k];
      c->def[s][k] = k == 0 ? 1 : 0;
    }
    double invest = u01(&seed) < 0.5 ? 1 : 0.7 + 0.3 * u01(&seed);
    for (size_t k = 0; k < m; k++) c->w[s][k] *= invest / sum;
    sp->nassets = m;
    sp->assets = c->cols[s];
    sp->weights = c->w[s];
    sp->capital = 1000 + 100000 * u01(&seed);
    sp->schedule.calendar = (keel_calendar)((size_t)(u01(&seed) * 7) % 7);
    sp->schedule.every = 1 + (unsigned)(u01(&seed) * 30);
    if (u01(&seed) < 0.5) {
      sp->band.kind = (keel_band_kind)(1 + (size_t)(u01(&seed) * 3) % 3);
      sp->band.abs = 0.02 + 0.08 * u01(&seed);
      sp->band.rel = 0.1 + 0.4 * u01(&seed);
      sp->band.action = (keel_band_action)((size_t)(u01(&seed) * 3) % 3);
      sp->band.inner = 0.5;
      sp->rebalance_on_schedule = u01(&seed) < 0.3;
    }
    if (u01(&seed) < 0.3) {
      sp->vol.target = 0.05 + 0.15 * u01(&seed);
      sp->vol.estimator = u01(&seed) < 0.5 ? KEEL_VOL_ROLLING : KEEL_VOL_EWMA;
      sp->vol.window = 20;
    }
    sp->costs.buy_bps = 30 * u01(&seed);
    sp->costs.sell_bps = 30 * u01(&seed);
    sp->costs.spread_bps = 10 * u01(&seed);
    sp->costs.fee = u01(&seed) < 0.5 ? 0 : 3 * u01(&seed);
    sp->costs.min_notional = u01(&seed) < 0.3 ? 100 : 0;
    if (u01(&seed) < 0.2) sp->skip_gamma = 5, sp->skip_lookback = 60;
    size_t nd_ = 0;
    if (u01(&seed) < 0.6) {
      keel_dca *q = &c->dca[s][nd_++];
      keel_dca_default(q);
      q->amount = 500 * u01(&seed);
      q->step_up = 0.05;
      q->dest = u01(&seed) < 0.5 ? KEEL_DCA_TO_TARGET : KEEL_DCA_TO_UNDERWEIGHT;
      q->source = u01(&seed) < 0.8 ? KEEL_DCA_EXTERNAL : KEEL_DCA_FROM_CASH;
    }
    if (u01(&seed) < 0.4) {
      keel_dca *q = &c->dca[s][nd_++];
      keel_dca_default(q);
      q->amount = -200 * u01(&seed) - 1;
      q->schedule.calendar = KEEL_CAL_QUARTERLY;
      q->dest = u01(&seed) < 0.5 ? KEEL_DCA_TO_TARGET : KEEL_DCA_TO_UNDERWEIGHT;
    }
    sp->dca = c->dca[s];
    sp->ndca = nd_;
    size_t ns = 0;
    if (u01(&seed) < 0.6) {
      keel_stop_rule *r = &c->stops[s][ns++];
      keel_stop_rule_default(r);
      r->kind = (keel_stop_kind)((size_t)(u01(&seed) * 3) % 3);
      r->level = 0.05 + 0.15 * u01(&seed);
      r->ref = u01(&seed) < 0.5 ? KEEL_STOP_REF_ENTRY : KEEL_STOP_REF_AVG_COST;
      r->action = u01(&seed) < 0.7 ? KEEL_STOP_TO_CASH : KEEL_STOP_TO_DEFENSIVE;
      r->reentry = (keel_reentry)((size_t)(u01(&seed) * 3) % 3);
      r->days = 5 + (unsigned)(u01(&seed) * 20);
    }
    if (u01(&seed) < 0.3) {
      keel_stop_rule *r = &c->stops[s][ns++];
      keel_stop_rule_default(r);
      r->kind = KEEL_STOP_DRAWDOWN;
      r->level = 0.1 + 0.1 * u01(&seed);
      r->action = u01(&seed) < 0.5 ? KEEL_STOP_TO_CASH : KEEL_STOP_TO_DEFENSIVE;
      r->reentry = u01(&seed) < 0.5 ? KEEL_REENTRY_AFTER_DAYS : KEEL_REENTRY_ABOVE_MA;
      r->days = 10;
    }
    sp->stops = c->stops[s];
    sp->nstops = ns;
    sp->defensive = c->def[s];
  }
}

/* Replays the trades: per sub-account shares and cash from the trade
 * list, flows and costs; checks values, conservation and the rules. */
static void check_case(const prop_case *c, const keel_backtest_result *r, uint32_t seed) {
  const keel_panel *p = c->p;
  const size_t nd = keel_backtest_npoints(r), na = keel_panel_nassets(p);
  const keel_trade *tr = keel_backtest_trades(r);
  const size_t nt = keel_backtest_ntrades(r);
  size_t q = 0;
  double last[8];
  for (size_t j = 0; j < na; j++) last[j] = NAN;
  double sh[3][8] = {{0}}, cash[3];
  for (size_t s = 0; s < c->nsubs; s++) cash[s] = c->subs[s].capital;
  for (size_t t = 0; t < nd; t++) {
    const keel_date d = keel_backtest_dates(r)[t];
    for (size_t j = 0; j < na; j++) {
      double x = keel_panel_price(p, t, j);
      if (!isnan(x)) last[j] = x;
    }
    for (size_t s = 0; s < c->nsubs; s++) cash[s] += keel_backtest_sub_flows(r, s)[t];
    for (; q < nt && tr[q].date == d; q++) {
      const keel_trade *x = &tr[q];
      const keel_subaccount_spec *sp = &c->subs[x->sub];
      size_t k = 0;
      while (sp->assets[k] != x->asset) k++;
      /* trades only at a price of that day */
      assert_close(x->price, keel_panel_price(c->opens ? c->opens : p, t, x->asset), 0, 0);
      assert_close(x->notional, x->shares * x->price, 1e-15, 1e-12);
      double rate = x->shares > 0 ? keel_cost_rate_buy(&sp->costs) : keel_cost_rate_sell(&sp->costs);
      assert_close(x->cost, rate * fabs(x->notional) + sp->costs.fee, 1e-12, 1e-12);
      const keel_asset_meta *m = keel_panel_meta(p, x->asset);
      double minn = fmax(sp->costs.min_notional, m->min_trade);
      if (minn > 0) assert_true(fabs(x->notional) >= minn * (1 - 1e-12));
      sh[x->sub][k] += x->shares;
      if (m->lot > 0 && fabs(sh[x->sub][k]) > 1e-9)
        assert_close(sh[x->sub][k], nearbyint(sh[x->sub][k]), 0, 1e-6);
      cash[x->sub] -= x->notional + x->cost;
    }
    double total = 0;
    for (size_t s = 0; s < c->nsubs; s++) {
      const keel_subaccount_spec *sp = &c->subs[s];
      double v = cash[s];
      for (size_t k = 0; k < sp->nassets; k++) {
        if (fabs(sh[s][k]) < 1e-9 * fmax(1, fabs(keel_backtest_sub_values(r, s)[t]))) sh[s][k] = 0;
        assert_true(sh[s][k] >= 0); /* no shorts */
        if (sh[s][k] != 0) v += sh[s][k] * last[sp->assets[k]];
      }
      double V = keel_backtest_sub_values(r, s)[t];
      if (fabs(v - V) > 1e-9 * fabs(V))
        fail_msg("seed %u sub %zu row %zu: replayed value %.17g, engine %.17g", seed, s, t, v, V);
      assert_close(keel_backtest_sub_cash(r, s)[t], cash[s], 1e-9, 1e-9 * fabs(V));
      if (!(cash[s] >= -1e-9 * fabs(V))) fail_msg("seed %u sub %zu row %zu: cash %g < 0", seed, s, t, cash[s]);
      total += V;
    }
    assert_close(keel_backtest_values(r)[t], total, 1e-12, 0);
  }
  assert_int_equal(q, nt);
  /* every rebalance conserves money */
  const keel_rebalance *rb = keel_backtest_rebalances(r);
  for (size_t i = 0; i < keel_backtest_nrebalances(r); i++)
    assert_close(rb[i].value_before, rb[i].value_after + rb[i].costs, 1e-12, 0);
}

static void test_properties(void **state) {
  (void)state;
  /* seeds 1-60 fill at the close, 61-90 at the next open */
  for (uint32_t seed = 1; seed <= 90; seed++) {
    prop_case c;
    make_case(&c, seed * 7919u, 400, 6, seed > 60);
    keel_account_spec a;
    keel_account_spec_default(&a);
    a.nsubs = c.nsubs;
    a.subs = c.subs;
    if (c.opens) a.opens = c.opens, a.fill = KEEL_FILL_NEXT_OPEN;
    keel_backtest_result *r = NULL;
    keel_status st = keel_backtest_run_account(CTX, c.p, &a, &r);
    if (st != KEEL_OK) fail_msg("seed %u: %s", seed, keel_errmsg(CTX));
    check_case(&c, r, seed);
    keel_backtest_result_free(r);
    keel_panel_free(c.p);
    keel_panel_free(c.opens);
  }
}

static keel_status oom_body(keel_ctx *ctx, void *arg) {
  prop_case *c = arg;
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = c->nsubs;
  a.subs = c->subs;
  a.benchmark = 0;
  keel_backtest_result *r = NULL;
  keel_status st = keel_backtest_run_account(ctx, c->p, &a, &r);
  keel_backtest_result_free(r);
  return st;
}

static void test_oom(void **state) {
  (void)state;
  prop_case c;
  make_case(&c, 12345u, 60, 4, 0);
  for (size_t s = 0; s < c.nsubs; s++) c.subs[s].skip_gamma = 0; /* keep the loop short */
  long n = keel_test_oom_loop(oom_body, &c);
  assert_true(n > 10);
  keel_panel_free(c.p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_trailing_stop),  cmocka_unit_test(test_stop_refs), cmocka_unit_test(test_dca_time_weighted),
      cmocka_unit_test(test_lots),           cmocka_unit_test(test_strategy_and_two_subs), cmocka_unit_test(test_on_bar), cmocka_unit_test(test_initial_shares), cmocka_unit_test(test_direct_rows_match), cmocka_unit_test(test_next_open), cmocka_unit_test(test_lump_vs_dca),
      cmocka_unit_test(test_vol_target), cmocka_unit_test(test_cost_aware_skip), cmocka_unit_test(test_short),
      cmocka_unit_test(test_rejects),        cmocka_unit_test(test_properties), cmocka_unit_test(test_oom),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
