/* Tests of the trade list (core/tradelist.c): from holdings to whole-lot
 * trades. The plan's merit is recomputed here from its definition
 * (keel/mv.h), checked against exhaustive enumeration on small accounts,
 * and money is counted to 1e-9. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keel_test.h"

static const keel_cmat NOMAT = {NULL, 0, 0, 0};

/* A seeded account: covariance B B' + diag(d) (two factors), expected
 * returns, prices, holdings. */
typedef struct acct {
  size_t n;
  double *mu, *S, *B, *F, *d, *price, *shares, *lot, *minn, *fee, *cb, *cs;
  double cash;
} acct;

static acct make_acct(size_t n, uint32_t seed, double value) {
  acct a = {n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  a.mu = calloc(n, sizeof(double)), a.S = calloc(n * n, sizeof(double)), a.B = calloc(n * 2, sizeof(double));
  a.F = calloc(4, sizeof(double)), a.d = calloc(n, sizeof(double)), a.price = calloc(n, sizeof(double));
  a.shares = calloc(n, sizeof(double)), a.lot = calloc(n, sizeof(double)), a.minn = calloc(n, sizeof(double));
  a.fee = calloc(n, sizeof(double)), a.cb = calloc(n, sizeof(double)), a.cs = calloc(n, sizeof(double));
  uint32_t s = seed;
  a.F[0] = 0.03, a.F[3] = 0.01;
  for (size_t i = 0; i < n; i++) {
    a.B[2 * i] = 0.6 + keel_test_lcg(&s), a.B[2 * i + 1] = keel_test_lcg(&s) * 2;
    a.d[i] = 0.01 + 0.04 * (keel_test_lcg(&s) + 0.5);
    a.mu[i] = 0.06 + 0.1 * keel_test_lcg(&s);
    a.price[i] = 20 + 180 * (keel_test_lcg(&s) + 0.5);
    a.lot[i] = 1;
    a.cb[i] = 0.001, a.cs[i] = 0.0012;
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++)
      a.S[i * n + j] = a.B[2 * i] * a.F[0] * a.B[2 * j] + a.B[2 * i + 1] * a.F[3] * a.B[2 * j + 1] + (i == j ? a.d[i] : 0);
  /* holdings: a skewed portfolio worth value, 5% of it in cash */
  double tot = 0;
  for (size_t i = 0; i < n; i++) tot += (i % 3 == 0) ? 3 : 1;
  for (size_t i = 0; i < n; i++) a.shares[i] = floor(0.95 * value * ((i % 3 == 0) ? 3 : 1) / tot / a.price[i]);
  a.cash = 0.05 * value;
  return a;
}

static void free_acct(acct *a) {
  double *p[] = {a->mu, a->S, a->B, a->F, a->d, a->price, a->shares, a->lot, a->minn, a->fee, a->cb, a->cs};
  for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
}

static keel_holdings holdings_of(const acct *a) {
  keel_holdings h = {a->shares, a->price, a->cash, a->lot, a->minn, a->fee};
  return h;
}

static double value_of(const acct *a) {
  double v = a->cash;
  for (size_t i = 0; i < a->n; i++) v += a->shares[i] * a->price[i];
  return v;
}

/* The merit of trades q by its definition in keel/mv.h, with returns mu_m,
 * cash valued at nu. */
static double merit_of(const acct *a, const double *mu_m, double gamma, double nu, const double *q) {
  const size_t n = a->n;
  const double V = value_of(a);
  double m = nu, quad = 0, w[64], w0[64];
  assert_true(n <= 64);
  for (size_t i = 0; i < n; i++) {
    w0[i] = a->shares[i] * a->price[i] / V;
    w[i] = (a->shares[i] + q[i]) * a->price[i] / V;
    double dw = w[i] - w0[i];
    m += (mu_m[i] - nu) * w[i] - (dw > 0 ? a->cb[i] * dw : -a->cs[i] * dw) - (q[i] != 0 ? a->fee[i] / V : 0);
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) quad += w[i] * a->S[i * n + j] * w[j];
  return m - 0.5 * gamma * quad;
}

/* Everything a plan must satisfy: money conserved to 1e-9 of the value,
 * cash never negative, whole lots (or the whole holding sold), no trade
 * below the minimum notional, fees counted per trade, the weights it
 * reports, long-only bounds, the merit as defined and below the bound. */
static void check_plan(const acct *a, const keel_trade_plan *pl, const double *q, const double *w, const double *mu_m,
                       double gamma) {
  const size_t n = a->n;
  const double V = value_of(a);
  double cash = a->cash, after = 0, fees = 0, prop = 0;
  size_t nt = 0;
  for (size_t i = 0; i < n; i++) {
    double notional = q[i] * a->price[i];
    if (q[i] != 0) {
      nt++;
      fees += a->fee[i];
      prop += (q[i] > 0 ? a->cb[i] : a->cs[i]) * fabs(notional);
      if (fabs(notional) < a->minn[i] * (1 - 1e-12)) fail_msg("asset %zu: trade of %g below the minimum", i, notional);
      if (a->lot[i] > 0 && q[i] != -a->shares[i]) {
        double m = q[i] / a->lot[i];
        if (fabs(m - nearbyint(m)) > 1e-9 * fmax(1, fabs(m))) fail_msg("asset %zu: %g shares is not whole lots", i, q[i]);
      }
    }
    cash -= notional;
    after += (a->shares[i] + q[i]) * a->price[i];
    assert_true(a->shares[i] + q[i] >= -1e-9);
    assert_close(w[i], (a->shares[i] + q[i]) * a->price[i] / V, 1e-12, 1e-15);
  }
  cash -= fees + prop;
  assert_int_equal(pl->ntrades, nt);
  assert_close(pl->fees, fees, 1e-12, 1e-12);
  assert_close(pl->prop_costs, prop, 1e-9, 1e-12);
  assert_close(pl->cash_after, cash, 0, 1e-9 * V);
  assert_true(pl->cash_after >= 0);
  assert_close(pl->value_before, V, 1e-12, 0);
  /* money: value before = value after + costs */
  double lhs = pl->value_before, rhs = pl->value_after + pl->prop_costs + pl->fees;
  if (fabs(lhs - rhs) > 1e-9 * lhs) fail_msg("money not conserved: %.12g vs %.12g", lhs, rhs);
  assert_close(pl->value_after, after + pl->cash_after, 1e-12, 0);
  assert_close(pl->merit, merit_of(a, mu_m, gamma, pl->budget_price, q), 0, 1e-12);
  if (!(pl->gap >= -1e-9)) fail_msg("merit %.12g above the bound %.12g", pl->merit, pl->bound);
}

/* Exhaustive search over every admissible plan of a small account: each
 * asset holds, sells everything, or trades whole lots within the bounds and
 * the cash. Returns the best merit, q gets its trades. */
static double brute_force(const acct *a, const double *mu_m, double gamma, double nu, double *qbest) {
  const size_t n = a->n;
  const double V = value_of(a);
  double opts[3][400];
  size_t nopt[3] = {0, 0, 0};
  assert_true(n == 3);
  for (size_t i = 0; i < n; i++) {
    double L = a->lot[i];
    opts[i][nopt[i]++] = 0;
    if (a->shares[i] > 0 && a->shares[i] * a->price[i] >= a->minn[i]) opts[i][nopt[i]++] = -a->shares[i];
    double lo = -floor(a->shares[i] / L), hi = floor(V / (a->price[i] * L));
    for (double m = lo; m <= hi; m++) {
      double x = m * L;
      if (x == 0 || x == -a->shares[i] || fabs(x) * a->price[i] < a->minn[i]) continue;
      assert_true(nopt[i] < 400);
      opts[i][nopt[i]++] = x;
    }
  }
  double best = -INFINITY, q[3];
  for (size_t u = 0; u < nopt[0]; u++)
    for (size_t v = 0; v < nopt[1]; v++)
      for (size_t t = 0; t < nopt[2]; t++) {
        q[0] = opts[0][u], q[1] = opts[1][v], q[2] = opts[2][t];
        double cash = a->cash;
        for (size_t i = 0; i < n; i++) {
          double x = q[i] * a->price[i];
          if (q[i] != 0) cash -= x + (x > 0 ? a->cb[i] : a->cs[i]) * fabs(x) + a->fee[i];
        }
        if (cash < 0) continue;
        double m = merit_of(a, mu_m, gamma, nu, q);
        if (m > best) best = m, memcpy(qbest, q, sizeof q);
      }
  return best;
}

/* Small accounts against exhaustive enumeration: the plan is the best
 * whole-lot plan there is (to 1e-12), and the bound holds for it. */
static void test_small_accounts_exhaustive(void **state) {
  (void)state;
  for (uint32_t seed = 1; seed <= 6; seed++) {
    acct a = make_acct(3, seed, 6000);
    for (size_t i = 0; i < 3; i++) a.fee[i] = 4.95, a.minn[i] = 150, a.lot[i] = seed % 2 ? 1 : 5;
    keel_mv_spec s;
    keel_mv_spec_default(&s);
    s.objective = KEEL_OBJ_UTILITY;
    s.gamma = 2 + (double)seed;
    s.cash = seed % 3 == 0;
    s.cost_buy = a.cb, s.cost_sell = a.cs;
    keel_holdings h = holdings_of(&a);
    double q[3], w[3], qb[3];
    keel_trade_plan pl;
    assert_ok(CTX, keel_mv_trade_list(CTX, 3, a.mu, keel_cmat_view(a.S, 3, 3), NULL, &s, &h, q, w, NULL, &pl));
    check_plan(&a, &pl, q, w, a.mu, s.gamma);
    double bf = brute_force(&a, a.mu, s.gamma, pl.budget_price, qb);
    if (!(bf <= pl.bound + 1e-12)) fail_msg("seed %u: a plan (%.12g) beats the bound %.12g", seed, bf, pl.bound);
    if (fabs(pl.merit - bf) > 1e-12)
      fail_msg("seed %u: plan merit %.12g (%g %g %g), best %.12g (%g %g %g)", seed, pl.merit, q[0], q[1], q[2], bf,
               qb[0], qb[1], qb[2]);
    free_acct(&a);
  }
}

/* Larger accounts, dense and factor covariance, every objective: the
 * rules hold and money is conserved; the factor model gives a plan of the
 * same merit as its dense matrix. */
static void test_rules_and_money(void **state) {
  (void)state;
  const size_t n = 40;
  int naive_plans = 0;
  for (int obj = KEEL_OBJ_MIN_VARIANCE; obj <= KEEL_OBJ_UTILITY; obj++) {
    acct a = make_acct(n, 100 + (uint32_t)obj, 250000);
    for (size_t i = 0; i < n; i++) a.fee[i] = 1 + (double)(i % 4), a.minn[i] = 100, a.lot[i] = i % 5 == 0 ? 10 : 1;
    keel_mv_spec s;
    keel_mv_spec_default(&s);
    s.objective = (keel_objective)obj;
    s.gamma = 4, s.target_return = 0.08, s.target_vol = 0.16, s.risk_free = 0.02;
    double ub[40];
    for (size_t i = 0; i < n; i++) ub[i] = 0.2;
    s.ub = ub;
    s.cost_buy = a.cb, s.cost_sell = a.cs; /* charged by the merit whatever the objective */
    keel_holdings h = holdings_of(&a);
    double q[40], w[40], wt[40], q2[40], w2[40], mu_m[40];
    keel_trade_plan pl, pl2;
    assert_ok(CTX, keel_mv_trade_list(CTX, n, a.mu, keel_cmat_view(a.S, n, n), NULL, &s, &h, q, w, wt, &pl));
    /* the merit's returns: mu, or rf + gamma S w* */
    for (size_t i = 0; i < n; i++) {
      mu_m[i] = a.mu[i];
      if (obj != KEEL_OBJ_UTILITY) {
        mu_m[i] = s.risk_free;
        for (size_t j = 0; j < n; j++) mu_m[i] += s.gamma * a.S[i * n + j] * wt[j];
      }
    }
    check_plan(&a, &pl, q, w, mu_m, s.gamma);
    for (size_t i = 0; i < n; i++) assert_true(w[i] <= 0.2 + 1e-12);
    assert_true(pl.ntrades > 0);
    assert_true(pl.merit >= merit_of(&a, mu_m, s.gamma, pl.budget_price, (double[40]){0}) - 1e-15);
    /* whole shares in an account of 250 000: within a few basis points of
     * the continuous optimum */
    /* better than rounding w* to the nearest lot (when that is a plan) */
    double naive[40], cash = a.cash;
    for (size_t i = 0; i < n; i++) {
      double x = nearbyint((wt[i] * value_of(&a) / a.price[i] - a.shares[i]) / a.lot[i]) * a.lot[i];
      if (fabs(x) * a.price[i] < a.minn[i]) x = 0;
      naive[i] = x;
      if (x != 0) cash -= x * a.price[i] + (x > 0 ? a.cb[i] : a.cs[i]) * fabs(x * a.price[i]) + a.fee[i];
    }
    if (cash >= 0) {
      assert_true(pl.merit >= merit_of(&a, mu_m, s.gamma, pl.budget_price, naive));
      naive_plans++;
    }
    /* the bound is loose by about the fees (the relaxation charges a fee
     * in proportion to the trade's size); the plan is within that */
    if (!(pl.gap <= 2 * pl.fees / value_of(&a) + 1e-5))
      fail_msg("%s: gap %g with fees %g", keel_objective_name(s.objective), pl.gap, pl.fees / value_of(&a));
    keel_factor_model fm = {2, keel_cmat_view(a.B, n, 2), keel_cmat_view(a.F, 2, 2), a.d};
    assert_ok(CTX, keel_mv_trade_list(CTX, n, a.mu, NOMAT, &fm, &s, &h, q2, w2, NULL, &pl2));
    assert_close(pl2.merit, pl.merit, 0, 1e-9);
    free_acct(&a);
  }
  assert_true(naive_plans >= 2); /* fully invested targets overdraw when rounded naively: no comparison */
}

/* Fractional shares, no fees, minimums or costs, cash allowed: the plan
 * is the continuous optimum. */
static void test_continuous_limit(void **state) {
  (void)state;
  const size_t n = 12;
  acct a = make_acct(n, 7, 100000);
  for (size_t i = 0; i < n; i++) a.lot[i] = 0, a.cb[i] = a.cs[i] = 0;
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  s.objective = KEEL_OBJ_UTILITY, s.gamma = 3, s.cash = 1, s.risk_free = 0.03;
  keel_holdings h = holdings_of(&a);
  double q[12], w[12], wt[12];
  keel_trade_plan pl;
  assert_ok(CTX, keel_mv_trade_list(CTX, n, a.mu, keel_cmat_view(a.S, n, n), NULL, &s, &h, q, w, wt, &pl));
  check_plan(&a, &pl, q, w, a.mu, s.gamma);
  for (size_t i = 0; i < n; i++) assert_close(w[i], wt[i], 0, 1e-7);
  assert_close(pl.merit, pl.continuous_merit, 0, 1e-12);
  assert_close(pl.bound, pl.continuous_merit, 0, 1e-12);
  free_acct(&a);
}

/* A fee larger than any trade can earn: nothing trades. */
static void test_prohibitive_fee(void **state) {
  (void)state;
  const size_t n = 8;
  acct a = make_acct(n, 11, 20000);
  for (size_t i = 0; i < n; i++) a.fee[i] = 5000;
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  s.objective = KEEL_OBJ_UTILITY;
  keel_holdings h = holdings_of(&a);
  double q[8], w[8];
  keel_trade_plan pl;
  assert_ok(CTX, keel_mv_trade_list(CTX, n, a.mu, keel_cmat_view(a.S, n, n), NULL, &s, &h, q, w, NULL, &pl));
  assert_int_equal(pl.ntrades, 0);
  assert_true(pl.fees == 0 && pl.cash_after == a.cash);
  check_plan(&a, &pl, q, w, a.mu, s.gamma);
  free_acct(&a);
}

/* All cash, fully invested target, costs: buys never overdraw. */
static void test_all_cash(void **state) {
  (void)state;
  const size_t n = 10;
  acct a = make_acct(n, 5, 50000);
  for (size_t i = 0; i < n; i++) a.shares[i] = 0, a.fee[i] = 2, a.minn[i] = 500;
  a.cash = 50000;
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  s.objective = KEEL_OBJ_MIN_VARIANCE, s.gamma = 50, s.cost_buy = a.cb, s.cost_sell = a.cs;
  keel_holdings h = holdings_of(&a);
  double q[10], w[10], wt[10], mu_m[10];
  keel_trade_plan pl;
  assert_ok(CTX, keel_mv_trade_list(CTX, n, NULL, keel_cmat_view(a.S, n, n), NULL, &s, &h, q, w, wt, &pl));
  for (size_t i = 0; i < n; i++) {
    mu_m[i] = 0;
    for (size_t j = 0; j < n; j++) mu_m[i] += s.gamma * a.S[i * n + j] * wt[j];
  }
  check_plan(&a, &pl, q, w, mu_m, s.gamma);
  assert_true(pl.cash_after < 0.02 * 50000);
  free_acct(&a);
}

static void test_errors(void **state) {
  (void)state;
  acct a = make_acct(3, 1, 10000);
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  keel_holdings h = holdings_of(&a);
  double q[3];
  keel_trade_plan pl;
  keel_cmat S = keel_cmat_view(a.S, 3, 3);
  a.price[1] = -1;
  assert_status(CTX, keel_mv_trade_list(CTX, 3, a.mu, S, NULL, &s, &h, q, NULL, NULL, &pl), KEEL_EINVAL);
  assert_errmsg(CTX, "price of asset 1 is -1; prices must be > 0");
  a.price[1] = NAN;
  assert_status(CTX, keel_mv_trade_list(CTX, 3, a.mu, S, NULL, &s, &h, q, NULL, NULL, &pl), KEEL_EINVAL);
  a.price[1] = 50;
  a.shares[2] = NAN;
  assert_status(CTX, keel_mv_trade_list(CTX, 3, a.mu, S, NULL, &s, &h, q, NULL, NULL, &pl), KEEL_EINVAL);
  assert_errmsg(CTX, "shares of asset 2 are not finite");
  a.shares[2] = 1;
  h.cash = -5;
  assert_status(CTX, keel_mv_trade_list(CTX, 3, a.mu, S, NULL, &s, &h, q, NULL, NULL, &pl), KEEL_EINVAL);
  assert_errmsg(CTX, "cash must be finite and >= 0");
  h.cash = 0;
  a.lot[0] = -1;
  assert_status(CTX, keel_mv_trade_list(CTX, 3, a.mu, S, NULL, &s, &h, q, NULL, NULL, &pl), KEEL_EINVAL);
  assert_errmsg(CTX, "lot size of asset 0 is -1");
  a.lot[0] = 1;
  for (size_t i = 0; i < 3; i++) a.shares[i] = 0;
  assert_status(CTX, keel_mv_trade_list(CTX, 3, a.mu, S, NULL, &s, &h, q, NULL, NULL, &pl), KEEL_EINVAL);
  assert_errmsg(CTX, "the account is worth 0");
  /* contradictory constraints still name the group at fault */
  h.cash = 1000;
  double lb[3] = {0.5, 0.4, 0.3};
  s.lb = lb;
  assert_status(CTX, keel_mv_trade_list(CTX, 3, a.mu, S, NULL, &s, &h, q, NULL, NULL, &pl), KEEL_EINFEASIBLE);
  assert_errmsg(CTX, "lower bounds");
  free_acct(&a);
}

static keel_status oom_body(keel_ctx *ctx, void *arg) {
  const acct *a = arg;
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  s.objective = KEEL_OBJ_UTILITY, s.cost_buy = a->cb, s.cost_sell = a->cs;
  keel_holdings h = holdings_of(a);
  double q[6];
  keel_trade_plan pl;
  return keel_mv_trade_list(ctx, a->n, a->mu, keel_cmat_view(a->S, a->n, a->n), NULL, &s, &h, q, NULL, NULL, &pl);
}

static void test_oom(void **state) {
  (void)state;
  acct a = make_acct(6, 3, 30000);
  for (size_t i = 0; i < 6; i++) a.fee[i] = 1;
  keel_test_oom_loop(oom_body, &a);
  free_acct(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_small_accounts_exhaustive),
      cmocka_unit_test(test_rules_and_money),
      cmocka_unit_test(test_continuous_limit),
      cmocka_unit_test(test_prohibitive_fee),
      cmocka_unit_test(test_all_cash),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_oom),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
