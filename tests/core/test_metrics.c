/* Tests of the performance metrics (core/metrics.c). */
#include <math.h>
#include <string.h>

#include "keel_test.h"

#define D(y, m, d) keel_test_date(y, m, d)

/* initial 100, then 110, 99, 121 on 2020-01-01, 2020-07-01, 2021-01-01,
 * two periods a year. Every expected value is the definition in
 * keel/metrics.h evaluated by hand on these numbers. */
static void test_hand_case(void **state) {
  (void)state;
  keel_ctx *ctx = NULL;
  assert_int_equal(keel_ctx_new(NULL, &ctx), KEEL_OK);
  keel_date dates[3] = {D(2020, 1, 1), D(2020, 7, 1), D(2021, 1, 1)};
  double v[3] = {110, 99, 121}, traded[3] = {100, 20, 30}, costs[3] = {1, 0.5, 0.2};
  keel_metrics_input in = {.n = 3, .dates = dates, .values = v, .initial = 100, .traded = traded,
                           .costs = costs, .periods_per_year = 2, .risk_free = 0};
  keel_metrics m;
  assert_ok(ctx, keel_metrics_compute(ctx, &in, &m));
  const double r0 = 0.1, r1 = 99.0 / 110 - 1, r2 = 121.0 / 99 - 1;
  const double mean = (r0 + r1 + r2) / 3;
  const double sd = sqrt(((r0 - mean) * (r0 - mean) + (r1 - mean) * (r1 - mean) + (r2 - mean) * (r2 - mean)) / 2);
  const double years = 366 / 365.25; /* 2020 is a leap year */
  const double cagr = pow(1.21, 1 / years) - 1;
  assert_close(m.total_return, 0.21, 1e-14, 0);
  assert_close(m.years, years, 1e-15, 0);
  assert_close(m.cagr, cagr, 1e-14, 0);
  assert_close(m.volatility, sd * sqrt(2), 1e-14, 0);
  assert_close(m.sharpe, mean / sd * sqrt(2), 1e-14, 0);
  assert_close(m.sortino, mean / sqrt(r1 * r1 / 3) * sqrt(2), 1e-14, 0);
  assert_close(m.max_drawdown, 0.1, 1e-14, 0);
  assert_int_equal(m.dd_peak, dates[0]);
  assert_int_equal(m.dd_trough, dates[1]);
  assert_int_equal(m.dd_recovery, dates[2]);
  assert_close(m.calmar, cagr / 0.1, 1e-13, 0);
  assert_close(m.turnover, (20 / (2 * 99.5) + 30 / (2 * 121.2)) / years, 1e-14, 0);
  assert_close(m.costs_total, 1.7, 1e-15, 0);
  assert_close(m.cost_ratio, 1.7 / 110, 1e-14, 0);
  assert_int_equal(m.nobs, 3);

  /* a risk-free rate of 4% a year is 2% a period here */
  in.risk_free = 0.04;
  assert_ok(ctx, keel_metrics_compute(ctx, &in, &m));
  const double e0 = r0 - 0.02, e1 = r1 - 0.02, e2 = r2 - 0.02;
  assert_close(m.sharpe, (e0 + e1 + e2) / 3 / sd * sqrt(2), 1e-14, 0);
  assert_close(m.sortino, (e0 + e1 + e2) / 3 / sqrt(e1 * e1 / 3) * sqrt(2), 1e-14, 0);
  assert_close(m.volatility, sd * sqrt(2), 1e-14, 0);

  /* the named view */
  assert_string_equal(keel_metrics_name(0), "total_return");
  assert_string_equal(keel_metrics_name(14), "nobs");
  assert_string_equal(keel_metrics_name(KEEL_METRICS_COUNT - 1), "info_ratio");
  assert_null(keel_metrics_name(KEEL_METRICS_COUNT));
  for (size_t k = 0; k < KEEL_METRICS_COUNT; k++) assert_non_null(keel_metrics_name(k));
  assert_close(keel_metrics_value(&m, 5), 0.1, 1e-14, 0);
  assert_close(keel_metrics_value(&m, 8), (double)dates[2], 0, 0);
  keel_ctx_free(ctx);
}

static void test_monotone_and_unrecovered(void **state) {
  (void)state;
  keel_ctx *ctx = NULL;
  assert_int_equal(keel_ctx_new(NULL, &ctx), KEEL_OK);
  keel_date dates[4] = {D(2021, 1, 4), D(2021, 1, 5), D(2021, 1, 6), D(2021, 1, 7)};
  double up[4] = {101, 102, 104, 108};
  keel_metrics_input in = {.n = 4, .dates = dates, .values = up, .initial = 100, .periods_per_year = 252};
  keel_metrics m;
  assert_ok(ctx, keel_metrics_compute(ctx, &in, &m));
  assert_close(m.max_drawdown, 0, 0, 0);
  assert_true(isnan(m.calmar));
  assert_true(isnan(m.sortino)); /* no downside at all */
  assert_int_equal(m.dd_recovery, KEEL_DATE_NONE);
  assert_true(isnan(keel_metrics_value(&m, 8)));
  assert_close(m.costs_total, 0, 0, 0);
  assert_close(m.turnover, 0, 0, 0);

  /* peak at the initial value, never recovered: 100 -> 90 -> 80 -> 95 */
  double down[4] = {90, 80, 85, 95};
  in.values = down;
  assert_ok(ctx, keel_metrics_compute(ctx, &in, &m));
  assert_close(m.max_drawdown, 0.2, 1e-15, 0);
  assert_int_equal(m.dd_peak, dates[0]);
  assert_int_equal(m.dd_trough, dates[1]);
  assert_int_equal(m.dd_recovery, KEEL_DATE_NONE);

  /* one point: no standard deviation, no span */
  in.n = 1;
  assert_ok(ctx, keel_metrics_compute(ctx, &in, &m));
  assert_close(m.total_return, -0.1, 1e-15, 0);
  assert_true(isnan(m.volatility));
  assert_true(isnan(m.sharpe));
  assert_true(isnan(m.cagr));
  assert_true(isnan(m.turnover));
  assert_close(m.years, 0, 0, 0);
  keel_ctx_free(ctx);
}

/* Flows: time-weighted returns, the index for drawdown; a benchmark for
 * tracking error and information ratio; exposure for time in market. All
 * by hand on four points. */
static void test_flows_and_benchmark(void **state) {
  (void)state;
  keel_ctx *ctx = NULL;
  assert_int_equal(keel_ctx_new(NULL, &ctx), KEEL_OK);
  keel_date dates[4] = {D(2020, 1, 1), D(2020, 4, 1), D(2020, 7, 1), D(2020, 10, 1)};
  /* 100 grows to 110, then 50 is paid in (160), it falls to 150, then 50
   * is taken out (120) */
  double v[4] = {110, 160, 150, 120}, f[4] = {0, 50, 0, -50}, b[4] = {10, 10.5, 10, 11},
         ex[4] = {1, 0.5, 0, 0.9};
  keel_metrics_input in = {.n = 4, .dates = dates, .values = v, .initial = 100, .periods_per_year = 4,
                           .flows = f, .benchmark = b, .exposure = ex, .ntrades = 7, .nstops = 2};
  keel_metrics m;
  assert_ok(ctx, keel_metrics_compute(ctx, &in, &m));
  const double r[4] = {0.1, 0, 150.0 / 160 - 1, 170.0 / 150 - 1};
  const double I3 = 1.1 * 1 * (150.0 / 160) * (170.0 / 150);
  assert_close(m.total_return, I3 - 1, 1e-14, 0);
  /* the index peaks at 1.1 (points 0 and 1) and falls to 1.1 * 15/16 */
  assert_close(m.max_drawdown, 1 - 150.0 / 160, 1e-14, 0);
  assert_int_equal(m.dd_trough, dates[2]);
  assert_int_equal(m.dd_recovery, dates[3]); /* 1.1 * 17/16 > 1.1 */
  double a[3], am = 0;
  for (int t = 1; t < 4; t++) am += (a[t - 1] = r[t] - (b[t] / b[t - 1] - 1)) / 3;
  double as = 0;
  for (int t = 0; t < 3; t++) as += (a[t] - am) * (a[t] - am);
  const double te = sqrt(as / 2) * 2;
  assert_close(m.tracking_error, te, 1e-13, 0);
  assert_close(m.info_ratio, am * 4 / te, 1e-13, 0);
  assert_close(m.time_in_market, 0.75, 0, 0);
  assert_int_equal(m.ntrades, 7);
  assert_int_equal(m.nstops, 2);

  /* no initial value: the first return is that of the first payment */
  double v2[2] = {99, 108.9}, f2[2] = {100, 0};
  keel_metrics_input in2 = {.n = 2, .dates = dates, .values = v2, .initial = 0, .periods_per_year = 4, .flows = f2};
  assert_ok(ctx, keel_metrics_compute(ctx, &in2, &m));
  assert_close(m.total_return, 0.99 * 1.1 - 1, 1e-14, 0);
  assert_true(isnan(m.tracking_error) && isnan(m.time_in_market));
  in2.flows = NULL;
  assert_status(ctx, keel_metrics_compute(ctx, &in2, &m), KEEL_EINVAL);
  keel_ctx_free(ctx);
}

static void test_rejects(void **state) {
  (void)state;
  keel_ctx *ctx = NULL;
  assert_int_equal(keel_ctx_new(NULL, &ctx), KEEL_OK);
  keel_date dates[3] = {1, 2, 3};
  double v[3] = {1, 2, 3}, neg[3] = {1, -1, 2}, nan3[3] = {1, NAN, 2};
  keel_metrics m;
  keel_metrics_input in = {.n = 3, .dates = dates, .values = v, .initial = 1, .periods_per_year = 252};
  assert_ok(ctx, keel_metrics_compute(ctx, &in, &m));
  in.values = neg;
  assert_status(ctx, keel_metrics_compute(ctx, &in, &m), KEEL_EINVAL);
  assert_errmsg(ctx, "value 1");
  in.values = nan3;
  assert_status(ctx, keel_metrics_compute(ctx, &in, &m), KEEL_EINVAL);
  in.values = v;
  in.initial = 0;
  assert_status(ctx, keel_metrics_compute(ctx, &in, &m), KEEL_EINVAL);
  in.initial = 1;
  in.periods_per_year = 0;
  assert_status(ctx, keel_metrics_compute(ctx, &in, &m), KEEL_EINVAL);
  in.periods_per_year = 252;
  keel_date bad[3] = {1, 1, 2};
  in.dates = bad;
  assert_status(ctx, keel_metrics_compute(ctx, &in, &m), KEEL_EINVAL);
  in.dates = dates;
  in.n = 0;
  assert_status(ctx, keel_metrics_compute(ctx, &in, &m), KEEL_EINVAL);
  in.n = 3;
  double tr[3] = {0, -1, 0};
  in.traded = tr;
  assert_status(ctx, keel_metrics_compute(ctx, &in, &m), KEEL_EINVAL);
  keel_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_case),
      cmocka_unit_test(test_monotone_and_unrecovered),
      cmocka_unit_test(test_flows_and_benchmark),
      cmocka_unit_test(test_rejects),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
