/* Tests of the built-in strategies and risk parity (core/strategy.c). */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keel_test.h"

static uint32_t LCG_X;
static double lcg(void) { return keel_test_lcg(&LCG_X); }

static json_t *load_fixture(const char *name) {
  json_error_t je;
  json_t *j = json_load_file(keel_test_source_path(name), 0, &je);
  if (!j) fail_msg("%s: %s", name, je.text);
  return j;
}

/* max_i |w_i (Sw)_i - mean| / mean */
static double rc_spread(size_t n, const double *S, const double *w) {
  double rc[64], mean = 0, d = 0;
  for (size_t i = 0; i < n; i++) {
    double v = 0;
    for (size_t j = 0; j < n; j++) v += S[i * n + j] * w[j];
    rc[i] = w[i] * v, mean += rc[i];
  }
  mean /= (double)n;
  for (size_t i = 0; i < n; i++) d = fmax(d, fabs(rc[i] - mean));
  return d / mean;
}

static double max_abs_diff(size_t n, const double *a, const double *b) {
  double d = 0;
  for (size_t i = 0; i < n; i++) d = fmax(d, fabs(a[i] - b[i]));
  return d;
}

/* ---- risk parity ---- */

static void test_rp_two_assets(void **state) {
  (void)state;
  /* two assets: w_i proportional to 1 / sigma_i for every correlation */
  const double rhos[] = {-0.95, -0.5, 0, 0.3, 0.9, 0.999}, s1 = 0.12, s2 = 0.45;
  double worst = 0, wspread = 0;
  for (size_t k = 0; k < sizeof rhos / sizeof rhos[0]; k++) {
    double S[4] = {s1 * s1, rhos[k] * s1 * s2, rhos[k] * s1 * s2, s2 * s2}, w[2];
    assert_ok(CTX, keel_risk_parity(CTX, 2, keel_cmat_view(S, 2, 2), w));
    double ref[2] = {(1 / s1) / (1 / s1 + 1 / s2), (1 / s2) / (1 / s1 + 1 / s2)};
    worst = fmax(worst, max_abs_diff(2, w, ref));
    wspread = fmax(wspread, rc_spread(2, S, w));
  }
  print_message("risk parity, 2 assets: |w - closed form| <= %.3g, spread <= %.3g\n", worst, wspread);
  assert_true(worst <= 1e-14);
  assert_true(wspread <= 1e-12);
  /* one asset */
  double S1 = 0.04, w1;
  assert_ok(CTX, keel_risk_parity(CTX, 1, keel_cmat_view(&S1, 1, 1), &w1));
  assert_close(w1, 1, 0, 0);
}

static void test_rp_equal_correlation(void **state) {
  (void)state;
  /* n assets with one correlation rho: w_i proportional to 1 / sigma_i */
  enum { N = 7 };
  const double rhos[] = {-0.16, 0, 0.4, 0.95}; /* rho > -1/(N-1) */
  const double sig[N] = {0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8};
  double worst = 0, wspread = 0;
  for (size_t k = 0; k < sizeof rhos / sizeof rhos[0]; k++) {
    double S[N * N], w[N], ref[N], sum = 0;
    for (size_t i = 0; i < N; i++)
      for (size_t j = 0; j < N; j++) S[i * N + j] = (i == j ? 1 : rhos[k]) * sig[i] * sig[j];
    assert_ok(CTX, keel_risk_parity(CTX, N, keel_cmat_view(S, N, N), w));
    for (size_t i = 0; i < N; i++) sum += 1 / sig[i];
    for (size_t i = 0; i < N; i++) ref[i] = 1 / sig[i] / sum;
    worst = fmax(worst, max_abs_diff(N, w, ref));
    wspread = fmax(wspread, rc_spread(N, S, w));
  }
  print_message("risk parity, equal correlation: |w - closed form| <= %.3g, spread <= %.3g\n", worst, wspread);
  assert_true(worst <= 1e-14);
  assert_true(wspread <= 1e-12);
}

static void test_rp_fixtures(void **state) {
  (void)state;
  json_t *j = load_fixture("tests/fixtures/strategy_reference.json"), *cases = json_object_get(j, "cases");
  assert_true(json_array_size(cases) >= 4);
  for (size_t c = 0; c < json_array_size(cases); c++) {
    json_t *cs = json_array_get(cases, c);
    const char *name = json_string_value(json_object_get(cs, "name"));
    size_t n = (size_t)json_integer_value(json_object_get(cs, "n"));
    assert_true(n <= 64);
    double S[64 * 64], ref[64], w[64];
    json_t *jS = json_object_get(cs, "S"), *jw = json_object_get(cs, "w");
    assert_int_equal(json_array_size(jS), n * n);
    for (size_t i = 0; i < n * n; i++) S[i] = json_number_value(json_array_get(jS, i));
    for (size_t i = 0; i < n; i++) ref[i] = json_number_value(json_array_get(jw, i));
    if (strcmp(name, "stock") == 0) {
      /* keel's own covariance of the same returns */
      double *K = NULL, big = 0, d = 0;
      if (keel_test_stock_moments(NULL, &K) == n) {
        for (size_t i = 0; i < n * n; i++) big = fmax(big, fabs(S[i])), d = fmax(d, fabs(K[i] - S[i]));
        print_message("stock covariance: keel vs NumPy %.3g of the largest entry\n", d / big);
        assert_true(d <= 1e-12 * big);
        memcpy(S, K, n * n * sizeof *S);
      }
      free(K);
    }
    assert_ok(CTX, keel_risk_parity(CTX, n, keel_cmat_view(S, n, n), w));
    double dw = max_abs_diff(n, w, ref), sp = rc_spread(n, S, w), sum = 0;
    for (size_t i = 0; i < n; i++) sum += w[i], assert_true(w[i] > 0);
    print_message("risk parity %s (n %zu): |w - coordinate descent| = %.3g, spread %.3g\n", name, n, dw, sp);
    assert_close(sum, 1, 0, 1e-15);
    assert_true(sp <= 1e-12);
    assert_true(dw <= 1e-12);
  }
  json_decref(j);
}

static void test_rp_errors(void **state) {
  (void)state;
  double w[3];
  double notpd[4] = {1, 2, 2, 1};
  assert_status(CTX, keel_risk_parity(CTX, 2, keel_cmat_view(notpd, 2, 2), w), KEEL_ENUMERIC);
  assert_errmsg(CTX, "not positive definite");
  double asym[4] = {1, 0.2, 0.1, 1};
  assert_status(CTX, keel_risk_parity(CTX, 2, keel_cmat_view(asym, 2, 2), w), KEEL_EINVAL);
  assert_errmsg(CTX, "not symmetric at (1, 0)");
  double nan[4] = {1, NAN, NAN, 1};
  assert_status(CTX, keel_risk_parity(CTX, 2, keel_cmat_view(nan, 2, 2), w), KEEL_EINVAL);
  assert_errmsg(CTX, "(0, 1) is not finite");
  assert_status(CTX, keel_risk_parity(CTX, 3, keel_cmat_view(asym, 2, 2), w), KEEL_EINVAL);
  assert_errmsg(CTX, "n x n covariance");
  assert_status(CTX, keel_risk_parity(CTX, 0, keel_cmat_view(asym, 0, 0), w), KEEL_EINVAL);
  double zero[1] = {0};
  assert_status(CTX, keel_risk_parity(CTX, 1, keel_cmat_view(zero, 1, 1), w), KEEL_ENUMERIC);
}

/* ---- the built-ins on a synthetic panel ---- */

enum { NA = 5, ND = 320 };

static const char *const SYMS[NA] = {"A", "B", "C", "D", "E"};

/* Prices: LCG random walks with different volatilities and drifts; E is
 * listed from row 300 on; B has no price on rows 100-104 (a halt). */
static void make_prices(double *px, uint32_t seed, double drift) {
  LCG_X = seed;
  const double vol[NA] = {0.006, 0.012, 0.02, 0.009, 0.015};
  for (size_t j = 0; j < NA; j++) px[j] = 10 + (double)j;
  for (size_t t = 1; t < ND; t++)
    for (size_t j = 0; j < NA; j++)
      px[t * NA + j] =
          px[(t - 1) * NA + j] * (1 + drift * (double)(j + 1) * 1e-4 + vol[j] * 3.4 * lcg() + 0.002 * lcg());
  for (size_t t = 100; t < 105; t++) px[t * NA + 1] = NAN;
  for (size_t t = 0; t < 300; t++) px[t * NA + 4] = NAN;
}

static keel_panel *panel_of(const double *px) {
  keel_date dates[ND];
  for (size_t t = 0; t < ND; t++) dates[t] = (keel_date)(16000 + t);
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_new(CTX, ND, NA, dates, SYMS, px, &p));
  return p;
}

static const size_t ALL[NA] = {0, 1, 2, 3, 4};

static keel_strategy_input input_at(const keel_panel *p, size_t row, size_t n, const size_t *assets) {
  keel_strategy_input in;
  memset(&in, 0, sizeof in);
  in.panel = p, in.row = row, in.first_row = 0, in.nassets = n, in.assets = assets;
  in.periods_per_year = 252, in.value = 1, in.cash = 1;
  return in;
}

static keel_status run_builtin(keel_builtin kind, const keel_builtin_params *bp, const keel_strategy_input *in,
                               double *target, keel_opt_record *rec) {
  keel_strategy *s = NULL;
  keel_status st = keel_strategy_builtin(CTX, kind, bp, &s);
  if (st) return st;
  assert_string_equal(s->ops->name, keel_builtin_name(kind));
  st = s->ops->init ? s->ops->init(s->state, CTX, in) : KEEL_OK;
  if (!st) st = s->ops->rebalance(s->state, CTX, in, target, rec);
  keel_strategy_free(s);
  return st;
}

/* The window's simple returns of the given columns, written out again:
 * rows lo+1..row, p_prev the last price in the window; only rows where all
 * columns have a return are kept. Returns the number of rows. */
static size_t ref_returns(const double *px, size_t lo, size_t row, size_t n, const size_t *cols, double *X) {
  size_t T = 0;
  for (size_t t = lo + 1; t <= row; t++) {
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
      size_t c = cols[i];
      double prev = NAN;
      for (size_t u = lo; u < t; u++)
        if (!isnan(px[u * NA + c])) prev = px[u * NA + c];
      double v = px[t * NA + c];
      if (isnan(v) || isnan(prev)) ok = 0;
      else X[T * n + i] = v / prev - 1;
    }
    T += ok;
  }
  return T;
}

/* The estimator the references use (the strategies' default unless a
 * test changes it). */
static keel_cov_kind REF_COV = KEEL_COV_LW_IDENTITY;
static double REF_HALFLIFE = 63;

/* keel_mv_optimize called directly on the window of cols. */
static void ref_mv(const double *px, size_t lo, size_t row, size_t n, const size_t *cols, keel_objective obj,
                   double max_weight, double rf, double *w, keel_mv_result *res, double *mu, double *S) {
  double *X = malloc((row - lo) * n * sizeof *X);
  size_t T = ref_returns(px, lo, row, n, cols, X);
  keel_cov_options co;
  keel_cov_options_default(&co);
  co.kind = REF_COV, co.halflife = REF_HALFLIFE, co.periods_per_year = 252;
  assert_ok(CTX, keel_cov(CTX, keel_cmat_view(X, T, n), &co, keel_mat_view(S, n, n), NULL));
  keel_mean_options mo;
  keel_mean_options_default(&mo);
  mo.periods_per_year = 252;
  assert_ok(CTX, keel_mean(CTX, keel_cmat_view(X, T, n), &mo, mu));
  double ub[NA];
  for (size_t i = 0; i < n; i++) ub[i] = max_weight;
  keel_mv_spec sp;
  keel_mv_spec_default(&sp);
  sp.objective = obj, sp.ub = ub, sp.risk_free = rf;
  assert_ok(CTX, keel_mv_optimize(CTX, n, mu, keel_cmat_view(S, n, n), NULL, &sp, w, res));
  free(X);
}

static void test_names(void **state) {
  (void)state;
  const char *names[] = {"fixed", "equal", "inverse_vol", "min_variance", "max_sharpe", "risk_parity"};
  for (int k = 0; k < 6; k++) {
    keel_builtin b = KEEL_STRAT_FIXED;
    assert_int_equal(keel_builtin_parse(names[k], &b), 0);
    assert_int_equal(b, k);
    assert_string_equal(keel_builtin_name((keel_builtin)k), names[k]);
  }
  keel_builtin b = KEEL_STRAT_EQUAL;
  assert_int_equal(keel_builtin_parse("sharpest", &b), -1);
  assert_int_equal(keel_builtin_parse(NULL, &b), -1);
  assert_int_equal(b, KEEL_STRAT_EQUAL);
  assert_string_equal(keel_builtin_name((keel_builtin)99), "unknown");
  keel_builtin_params p;
  keel_builtin_params_default(&p);
  assert_close(p.invest, 1, 0, 0);
  assert_int_equal(p.lookback, 252);
  assert_int_equal(p.cov, KEEL_COV_LW_IDENTITY);
  assert_close(p.halflife, 63, 0, 0);
  assert_close(p.max_weight, 1, 0, 0);
  assert_close(p.risk_free, 0, 0, 0);
  assert_int_equal(p.use_costs, 1);
  assert_null(p.weights);
  keel_strategy_free(NULL);
}

static void test_fixed_equal_inverse_vol(void **state) {
  (void)state;
  double px[ND * NA];
  make_prices(px, 7, 1);
  keel_panel *p = panel_of(px);
  double t[NA];
  keel_builtin_params bp;
  /* fixed: the weights as given */
  keel_builtin_params_default(&bp);
  const double fw[NA] = {0.1, 0.2, 0.3, 0.15, 0.05};
  bp.weights = fw, bp.nweights = NA;
  keel_strategy_input in = input_at(p, 200, NA, ALL);
  assert_ok(CTX, run_builtin(KEEL_STRAT_FIXED, &bp, &in, t, NULL));
  for (size_t i = 0; i < NA; i++) assert_close(t[i], fw[i], 0, 0);
  /* equal: invest / m over the assets with a price on the row (E not
   * listed on 200; B halted on 102) */
  keel_builtin_params_default(&bp);
  bp.invest = 0.8;
  assert_ok(CTX, run_builtin(KEEL_STRAT_EQUAL, &bp, &in, t, NULL));
  for (size_t i = 0; i < NA; i++) assert_close(t[i], i < 4 ? 0.2 : 0, 0, 0);
  in.row = 102;
  assert_ok(CTX, run_builtin(KEEL_STRAT_EQUAL, &bp, &in, t, NULL));
  for (size_t i = 0; i < NA; i++) assert_close(t[i], i == 1 || i == 4 ? 0 : 0.8 / 3, 1e-15, 0);
  in.row = 300; /* E's first price: equal needs no history */
  assert_ok(CTX, run_builtin(KEEL_STRAT_EQUAL, &bp, &in, t, NULL));
  for (size_t i = 0; i < NA; i++) assert_close(t[i], 0.16, 1e-15, 0);

  /* inverse volatility by hand: sample stdev over the window, per asset */
  bp.lookback = 60;
  const size_t rows[] = {200, 110, 301, 302, 319};
  double worst = 0;
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    in.row = rows[r];
    assert_ok(CTX, run_builtin(KEEL_STRAT_INVERSE_VOL, &bp, &in, t, NULL));
    size_t lo = in.row - 60;
    double inv[NA] = {0}, sum = 0;
    for (size_t j = 0; j < NA; j++) {
      double X[64];
      size_t T = ref_returns(px, lo, in.row, 1, &j, X);
      if (T < 2 || isnan(px[in.row * NA + j])) continue;
      double m = 0, ss = 0;
      for (size_t k = 0; k < T; k++) m += X[k];
      m /= (double)T;
      for (size_t k = 0; k < T; k++) ss += (X[k] - m) * (X[k] - m);
      inv[j] = 1 / sqrt(ss / (double)(T - 1)), sum += inv[j];
    }
    for (size_t j = 0; j < NA; j++) worst = fmax(worst, fabs(t[j] - 0.8 * inv[j] / sum));
    /* E has 0 returns on 300, 1 on 301 (weight 0), 2 on 302 */
    if (in.row == 301) assert_close(t[4], 0, 0, 0);
    if (in.row == 302) assert_true(t[4] > 0);
  }
  print_message("inverse vol: |w - by hand| <= %.3g\n", worst);
  assert_true(worst <= 1e-15);
  /* a constant price (volatility 0) takes the whole investment */
  double flat[ND * NA];
  memcpy(flat, px, sizeof flat);
  for (size_t t2 = 0; t2 < ND; t2++) flat[t2 * NA + 3] = 50;
  keel_panel *q = panel_of(flat);
  in = input_at(q, 200, NA, ALL);
  assert_ok(CTX, run_builtin(KEEL_STRAT_INVERSE_VOL, &bp, &in, t, NULL));
  for (size_t i = 0; i < NA; i++) assert_close(t[i], i == 3 ? 0.8 : 0, 0, 0);
  keel_panel_free(q);
  keel_panel_free(p);
}

static void test_min_variance_and_risk_parity(void **state) {
  (void)state;
  double px[ND * NA];
  make_prices(px, 11, 1);
  keel_panel *p = panel_of(px);
  double t[NA], w[NA], mu[NA], S[NA * NA];
  keel_mv_result r;
  keel_opt_record rec;
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  bp.invest = 0.9, bp.lookback = 120, bp.max_weight = 0.4;
  /* sub-account of A, C, D, B (in that order) */
  const size_t sub[4] = {0, 2, 3, 1};
  keel_strategy_input in = input_at(p, 250, 4, sub);
  assert_ok(CTX, run_builtin(KEEL_STRAT_MIN_VARIANCE, &bp, &in, t, &rec));
  ref_mv(px, 130, 250, 4, sub, KEEL_OBJ_MIN_VARIANCE, 0.4, 0, w, &r, mu, S);
  double d = 0, sum = 0;
  for (size_t i = 0; i < 4; i++) d = fmax(d, fabs(t[i] - 0.9 * w[i])), sum += t[i];
  print_message("min variance: |w - keel_mv_optimize| = %.3g\n", d);
  assert_true(d <= 1e-15);
  assert_close(sum, 0.9, 1e-14, 0);
  assert_int_equal(rec.used, 1);
  assert_int_equal(rec.status, KEEL_QP_OPTIMAL);
  assert_int_equal(rec.solves, r.solves);
  assert_int_equal(rec.iterations, r.qp_iterations);
  assert_close(rec.objective_vol, r.vol, 1e-15, 0);
  assert_close(rec.objective_ret, r.ret, 1e-15, 0);
  assert_true(rec.res_prim <= 1e-9);
  /* the cap binds somewhere or not, but is kept */
  for (size_t i = 0; i < 4; i++) assert_true(t[i] <= 0.9 * 0.4 + 1e-15);

  /* risk parity: keel_risk_parity on the same covariance, times invest */
  assert_ok(CTX, run_builtin(KEEL_STRAT_RISK_PARITY, &bp, &in, t, &rec));
  assert_int_equal(rec.used, 0);
  assert_ok(CTX, keel_risk_parity(CTX, 4, keel_cmat_view(S, 4, 4), w));
  d = 0;
  for (size_t i = 0; i < 4; i++) d = fmax(d, fabs(t[i] - 0.9 * w[i]));
  assert_true(d <= 1e-15);
  assert_true(rc_spread(4, S, t) <= 1e-12);

  /* every estimator reaches the optimiser as chosen */
  const keel_cov_kind kinds[] = {KEEL_COV_SAMPLE, KEEL_COV_EWMA, KEEL_COV_LW_CONSTCORR, KEEL_COV_SEMI};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    bp.cov = REF_COV = kinds[k], bp.halflife = REF_HALFLIFE = 30;
    assert_ok(CTX, run_builtin(KEEL_STRAT_MIN_VARIANCE, &bp, &in, t, &rec));
    ref_mv(px, 130, 250, 4, sub, KEEL_OBJ_MIN_VARIANCE, 0.4, 0, w, &r, mu, S);
    for (size_t i = 0; i < 4; i++) assert_close(t[i], 0.9 * w[i], 0, 1e-15);
    assert_ok(CTX, run_builtin(KEEL_STRAT_RISK_PARITY, &bp, &in, t, &rec));
    assert_ok(CTX, keel_risk_parity(CTX, 4, keel_cmat_view(S, 4, 4), w));
    for (size_t i = 0; i < 4; i++) assert_close(t[i], 0.9 * w[i], 0, 1e-15);
  }
  bp.cov = REF_COV = KEEL_COV_LW_IDENTITY, bp.halflife = REF_HALFLIFE = 63;

  /* infeasible cap: 2 usable assets at 0.4 */
  bp.max_weight = 0.4;
  const size_t three[3] = {0, 4, 2};
  in = input_at(p, 301, 3, three); /* E has 1 return: usable are A and C */
  assert_status(CTX, run_builtin(KEEL_STRAT_MIN_VARIANCE, &bp, &in, t, &rec), KEEL_EINFEASIBLE);
  assert_errmsg(CTX, "2 asset(s) with enough history cannot be fully invested at a cap of 0.4 each (need at least 3)");
  in.row = 303; /* E has 3 returns: three assets, feasible */
  assert_ok(CTX, run_builtin(KEEL_STRAT_MIN_VARIANCE, &bp, &in, t, &rec));
  assert_true(t[1] > 0);
  keel_panel_free(p);
}

static double net_return(size_t n, const double *mu, const double *w, const double *w0, const double *cb,
                         const double *cs) {
  double v = 0;
  for (size_t i = 0; i < n; i++) {
    double dw = w[i] - w0[i];
    v += mu[i] * w[i] - (dw > 0 ? cb[i] * dw : -cs[i] * dw);
  }
  return v;
}

static double port_vol(size_t n, const double *S, const double *w) {
  double v = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) v += w[i] * S[i * n + j] * w[j];
  return sqrt(v);
}

static void test_max_sharpe(void **state) {
  (void)state;
  double px[ND * NA];
  make_prices(px, 23, 6);
  keel_panel *p = panel_of(px);
  double t[NA], ws[NA], mu[NA], S[NA * NA];
  keel_mv_result r;
  keel_opt_record rec;
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  bp.lookback = 200, bp.risk_free = 0.01, bp.max_weight = 0.6;
  const size_t sub[4] = {0, 1, 2, 3};
  keel_strategy_input in = input_at(p, 260, 4, sub);
  /* without costs: keel_mv_optimize's maximum Sharpe ratio */
  assert_ok(CTX, run_builtin(KEEL_STRAT_MAX_SHARPE, &bp, &in, t, &rec));
  ref_mv(px, 60, 260, 4, sub, KEEL_OBJ_MAX_SHARPE, 0.6, 0.01, ws, &r, mu, S);
  double d = max_abs_diff(4, t, ws);
  print_message("max Sharpe: |w - keel_mv_optimize| = %.3g (Sharpe %.4g)\n", d, r.sharpe);
  assert_true(d <= 1e-15);
  assert_int_equal(rec.used, 1);
  assert_int_equal(rec.solves, r.solves);
  assert_close(rec.objective_vol, r.vol, 1e-15, 0);

  /* with costs: the vol of the cost-free optimum, the most net return */
  const double w0[4] = {0.3, 0.1, 0.1, 0.4}, cb[4] = {0.004, 0.002, 0.01, 0.003}, cs[4] = {0.003, 0.002, 0.01, 0.002};
  in.weights = w0, in.cost_buy = cb, in.cost_sell = cs;
  assert_ok(CTX, run_builtin(KEEL_STRAT_MAX_SHARPE, &bp, &in, t, &rec));
  double vol = port_vol(4, S, t), sum = 0;
  for (size_t i = 0; i < 4; i++) sum += t[i], assert_true(t[i] >= 0 && t[i] <= 0.6 + 1e-12);
  double net = net_return(4, mu, t, w0, cb, cs), net_free = net_return(4, mu, ws, w0, cb, cs);
  print_message("max Sharpe with costs: vol %.10g vs %.10g (diff %.3g), net return %.8g vs cost-free weights %.8g, "
                "|w - w*| %.3g\n",
                vol, r.vol, fabs(vol - r.vol), net, net_free, max_abs_diff(4, t, ws));
  assert_close(sum, 1, 0, 1e-12);
  assert_close(vol, r.vol, 0, 1e-8);
  assert_true(net >= net_free - 1e-12);
  assert_true(max_abs_diff(4, t, ws) > 1e-6); /* the costs moved it */
  assert_int_equal(rec.used, 1);
  assert_true(rec.solves > r.solves);
  assert_close(rec.objective_vol, r.vol, 0, 1e-8);
  /* use_costs 0: the cost-free answer */
  bp.use_costs = 0;
  assert_ok(CTX, run_builtin(KEEL_STRAT_MAX_SHARPE, &bp, &in, t, &rec));
  assert_true(max_abs_diff(4, t, ws) <= 1e-15);
  /* zero rates: cost-free; and the target-vol path with a cost that is the
   * same for every fully invested portfolio (all cash now, equal buy
   * rates) gives it too */
  bp.use_costs = 1;
  const double zero[4] = {0}, tiny[4] = {1e-4, 1e-4, 1e-4, 1e-4};
  in.cost_buy = zero, in.cost_sell = zero;
  assert_ok(CTX, run_builtin(KEEL_STRAT_MAX_SHARPE, &bp, &in, t, &rec));
  assert_true(max_abs_diff(4, t, ws) <= 1e-15);
  in.weights = zero, in.cost_buy = tiny, in.cost_sell = tiny;
  assert_ok(CTX, run_builtin(KEEL_STRAT_MAX_SHARPE, &bp, &in, t, &rec));
  d = max_abs_diff(4, t, ws);
  print_message("max Sharpe, cost equal for all fully invested portfolios: |w - w*| = %.3g\n", d);
  assert_true(d <= 1e-8);
  assert_true(rec.solves > r.solves);
  keel_panel_free(p);

  /* falling prices, a high risk-free rate: no portfolio beats it, so the
   * minimum-variance portfolio */
  make_prices(px, 23, -6);
  p = panel_of(px);
  in = input_at(p, 260, 4, sub);
  bp.risk_free = 2;
  assert_ok(CTX, run_builtin(KEEL_STRAT_MAX_SHARPE, &bp, &in, t, &rec));
  ref_mv(px, 60, 260, 4, sub, KEEL_OBJ_MIN_VARIANCE, 0.6, 2, ws, &r, mu, S);
  assert_true(max_abs_diff(4, t, ws) <= 1e-15);
  assert_true(rec.used && rec.objective_ret < 2);
  assert_string_equal(keel_errmsg(CTX), "");
  keel_panel_free(p);
}

static void test_no_lookahead(void **state) {
  (void)state;
  double px[ND * NA], px2[ND * NA];
  make_prices(px, 31, 2);
  memcpy(px2, px, sizeof px);
  const size_t row = 250;
  LCG_X = 99;
  for (size_t t = row + 1; t < ND; t++)
    for (size_t j = 0; j < NA; j++)
      if (!isnan(px2[t * NA + j])) px2[t * NA + j] *= 1.5 + lcg();
  keel_panel *p = panel_of(px), *q = panel_of(px2);
  const double fw[NA] = {0.2, 0.2, 0.2, 0.2, 0.2};
  for (int k = 0; k <= KEEL_STRAT_RISK_PARITY; k++) {
    keel_builtin_params bp;
    keel_builtin_params_default(&bp);
    bp.weights = fw, bp.nweights = NA, bp.lookback = 100;
    double a[NA], b[NA];
    keel_strategy_input in = input_at(p, row, NA, ALL), in2 = input_at(q, row, NA, ALL);
    assert_ok(CTX, run_builtin((keel_builtin)k, &bp, &in, a, NULL));
    assert_ok(CTX, run_builtin((keel_builtin)k, &bp, &in2, b, NULL));
    assert_memory_equal(a, b, sizeof a);
    /* and the future does matter one row later */
    in.row = in2.row = row + 1;
    assert_ok(CTX, run_builtin((keel_builtin)k, &bp, &in, a, NULL));
    assert_ok(CTX, run_builtin((keel_builtin)k, &bp, &in2, b, NULL));
    if (k >= KEEL_STRAT_INVERSE_VOL) assert_true(max_abs_diff(NA, a, b) > 1e-6);
  }
  keel_panel_free(p);
  keel_panel_free(q);
}

static void test_late_listing_and_common_rows(void **state) {
  (void)state;
  double px[ND * NA];
  make_prices(px, 41, 3);
  keel_panel *p = panel_of(px);
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  double t[NA];
  /* E listed at 300: no share on 300 and 301 (fewer than 2 returns), a
   * share from 302 on; B halted on 102: 0 there */
  for (int k = KEEL_STRAT_INVERSE_VOL; k <= KEEL_STRAT_RISK_PARITY; k++) {
    keel_strategy_input in = input_at(p, 301, NA, ALL);
    assert_ok(CTX, run_builtin((keel_builtin)k, &bp, &in, t, NULL));
    assert_close(t[4], 0, 0, 0);
    double sum = 0;
    for (size_t i = 0; i < NA; i++) sum += t[i];
    assert_close(sum, 1, 0, 1e-12);
    /* on 302 E has 2 returns: inverse vol gives it a share; the
     * covariance strategies set it aside (2 common rows are too few for
     * Ledoit-Wolf) until 303 */
    in.row = 302;
    assert_ok(CTX, run_builtin((keel_builtin)k, &bp, &in, t, NULL));
    if (k == KEEL_STRAT_INVERSE_VOL) assert_true(t[4] > 0);
    else assert_close(t[4], 0, 0, 0);
    in.row = 303;
    assert_ok(CTX, run_builtin((keel_builtin)k, &bp, &in, t, NULL));
    if (k == KEEL_STRAT_INVERSE_VOL || k == KEEL_STRAT_RISK_PARITY) assert_true(t[4] > 0);
    in.row = 102;
    assert_ok(CTX, run_builtin((keel_builtin)k, &bp, &in, t, NULL));
    assert_close(t[1], 0, 0, 0);
    assert_close(t[4], 0, 0, 0);
  }
  /* the run's first row bounds the window: on it nothing has a return */
  keel_strategy_input in = input_at(p, 200, NA, ALL);
  in.first_row = 200;
  assert_ok(CTX, run_builtin(KEEL_STRAT_RISK_PARITY, &bp, &in, t, NULL));
  for (size_t i = 0; i < NA; i++) assert_close(t[i], 0, 0, 0);
  in.first_row = 199; /* one return each: still nothing */
  assert_ok(CTX, run_builtin(KEEL_STRAT_MIN_VARIANCE, &bp, &in, t, NULL));
  for (size_t i = 0; i < NA; i++) assert_close(t[i], 0, 0, 0);
  /* two each: too few common rows for any of them, so equal weights */
  in.first_row = 198;
  keel_opt_record rec0;
  for (int k = KEEL_STRAT_MIN_VARIANCE; k <= KEEL_STRAT_RISK_PARITY; k++) {
    assert_ok(CTX, run_builtin((keel_builtin)k, &bp, &in, t, &rec0));
    for (size_t i = 0; i < NA; i++) assert_close(t[i], i < 4 ? 0.25 : 0, 0, 0);
    assert_int_equal(rec0.used, 0);
  }
  /* the sample covariance of 4 assets needs 5 rows */
  in.first_row = 197;
  bp.cov = KEEL_COV_SAMPLE;
  assert_ok(CTX, run_builtin(KEEL_STRAT_RISK_PARITY, &bp, &in, t, NULL));
  for (size_t i = 0; i < NA; i++) assert_close(t[i], i < 4 ? 0.25 : 0, 0, 0);
  in.first_row = 195;
  assert_ok(CTX, run_builtin(KEEL_STRAT_RISK_PARITY, &bp, &in, t, NULL));
  for (size_t i = 0; i < 4; i++) assert_true(t[i] > 0 && fabs(t[i] - 0.25) > 1e-6);
  bp.cov = KEEL_COV_LW_IDENTITY;
  in.first_row = 197; /* three each: Ledoit-Wolf */
  assert_ok(CTX, run_builtin(KEEL_STRAT_RISK_PARITY, &bp, &in, t, NULL));
  for (size_t i = 0; i < 4; i++) assert_true(t[i] > 0 && fabs(t[i] - 0.25) > 1e-6);
  keel_panel_free(p);

  /* no common rows but the last: A trades on even rows, B on odd rows
   * from row 3, both on row 20; B has fewer returns (9 against 10) and is
   * set aside */
  double alt[ND * NA];
  for (size_t t2 = 0; t2 < ND; t2++)
    for (size_t j = 0; j < NA; j++) alt[t2 * NA + j] = 10 + 0.01 * (double)((t2 * 7 + j * 3) % 11);
  for (size_t t2 = 0; t2 <= 20; t2++) {
    if (t2 % 2) alt[t2 * NA + 0] = NAN;
    else if (t2 != 20) alt[t2 * NA + 1] = NAN;
  }
  alt[1 * NA + 1] = NAN;
  p = panel_of(alt);
  const size_t ab[2] = {0, 1};
  in = input_at(p, 20, 2, ab);
  bp.lookback = 20, bp.invest = 0.7;
  for (int k = KEEL_STRAT_MIN_VARIANCE; k <= KEEL_STRAT_RISK_PARITY; k++) {
    keel_opt_record rec;
    assert_ok(CTX, run_builtin((keel_builtin)k, &bp, &in, t, &rec));
    assert_close(t[0], 0.7, 1e-15, 0);
    assert_close(t[1], 0, 0, 0);
  }
  /* inverse vol needs no common rows: both get a share */
  assert_ok(CTX, run_builtin(KEEL_STRAT_INVERSE_VOL, &bp, &in, t, NULL));
  assert_true(t[0] > 0 && t[1] > 0);
  keel_panel_free(p);
  /* B from row 1: 10 returns each, nothing to set aside: equal weights */
  alt[1 * NA + 1] = 10.5;
  p = panel_of(alt);
  in.panel = p;
  for (int k = KEEL_STRAT_MIN_VARIANCE; k <= KEEL_STRAT_RISK_PARITY; k++) {
    assert_ok(CTX, run_builtin((keel_builtin)k, &bp, &in, t, NULL));
    assert_close(t[0], 0.35, 1e-15, 0);
    assert_close(t[1], 0.35, 1e-15, 0);
  }
  keel_panel_free(p);
}

static void test_stock_prices(void **state) {
  (void)state;
  const char *path = keel_test_shared_data("stock_prices.csv");
  if (!path) skip();
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &p));
  const size_t n = keel_panel_nassets(p), nd = keel_panel_ndates(p);
  size_t cols[64];
  for (size_t j = 0; j < n; j++) cols[j] = j;
  /* rows where some assets are not listed yet, have a short history, and
   * all are listed */
  const size_t rows[] = {nd / 2, nd - 600, nd - 1};
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
    for (int k = KEEL_STRAT_EQUAL; k <= KEEL_STRAT_RISK_PARITY; k++) {
      keel_builtin_params bp;
      keel_builtin_params_default(&bp);
      bp.max_weight = 0.3;
      keel_strategy_input in = input_at(p, rows[r], n, cols);
      double t[64], sum = 0, w0[64], c[64];
      for (size_t j = 0; j < n; j++) w0[j] = 1.0 / (double)n, c[j] = 0.001;
      in.weights = w0, in.cost_buy = c, in.cost_sell = c;
      keel_opt_record rec;
      assert_ok(CTX, run_builtin((keel_builtin)k, &bp, &in, t, &rec));
      size_t held = 0;
      for (size_t j = 0; j < n; j++) {
        assert_true(t[j] >= 0);
        sum += t[j], held += t[j] > 0;
        if (isnan(keel_panel_price(p, rows[r], j))) assert_close(t[j], 0, 0, 0);
      }
      assert_close(sum, 1, 0, 1e-12);
      if (k >= KEEL_STRAT_MIN_VARIANCE && k <= KEEL_STRAT_MAX_SHARPE) {
        assert_int_equal(rec.used, 1);
        assert_int_equal(rec.status, KEEL_QP_OPTIMAL);
      }
      print_message("stock row %zu, %s: %zu assets held\n", rows[r], keel_builtin_name((keel_builtin)k), held);
    }
  keel_panel_free(p);
}

static void test_bad_input(void **state) {
  (void)state;
  keel_strategy *s = (keel_strategy *)1;
  keel_builtin_params bp;
#define BAD(kind, field, value, msg)                                                  \
  do {                                                                                \
    keel_builtin_params_default(&bp);                                                 \
    bp.field = value;                                                                 \
    assert_status(CTX, keel_strategy_builtin(CTX, kind, &bp, &s), KEEL_EINVAL);       \
    assert_errmsg(CTX, msg);                                                          \
    assert_null(s);                                                                   \
  } while (0)
  BAD(KEEL_STRAT_EQUAL, invest, NAN, "strategy equal: invest must be in (0, 1] (it is nan)");
  BAD(KEEL_STRAT_EQUAL, invest, 0, "invest must be in (0, 1] (it is 0)");
  BAD(KEEL_STRAT_EQUAL, invest, 1.5, "invest must be in (0, 1] (it is 1.5)");
  BAD(KEEL_STRAT_MIN_VARIANCE, max_weight, 0, "strategy min_variance: max_weight must be > 0 (it is 0)");
  BAD(KEEL_STRAT_MIN_VARIANCE, max_weight, NAN, "max_weight must be > 0 (it is nan)");
  BAD(KEEL_STRAT_RISK_PARITY, lookback, 1, "strategy risk_parity: lookback must be at least 2 rows (it is 1)");
  BAD(KEEL_STRAT_RISK_PARITY, halflife, 0, "halflife must be > 0");
  BAD(KEEL_STRAT_RISK_PARITY, cov, (keel_cov_kind)17, "unknown covariance estimator 17");
  BAD(KEEL_STRAT_MAX_SHARPE, risk_free, NAN, "strategy max_sharpe: the risk-free rate is not finite");
  BAD(KEEL_STRAT_FIXED, weights, NULL, "strategy fixed: no weights given");
  const double neg[3] = {0.5, -0.1, 0.2}, big[3] = {0.5, 0.4, 0.2}, nanw[3] = {0.5, NAN, 0.2};
  keel_builtin_params_default(&bp);
  bp.weights = neg, bp.nweights = 3;
  assert_status(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_FIXED, &bp, &s), KEEL_EINVAL);
  assert_errmsg(CTX, "strategy fixed: weight 1 is -0.1; weights must be finite and >= 0");
  bp.weights = nanw;
  assert_status(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_FIXED, &bp, &s), KEEL_EINVAL);
  assert_errmsg(CTX, "weight 1 is nan");
  bp.weights = big;
  assert_status(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_FIXED, &bp, &s), KEEL_EINVAL);
  assert_errmsg(CTX, "strategy fixed: the weights sum to 1.1");
  assert_status(CTX, keel_strategy_builtin(CTX, (keel_builtin)6, NULL, &s), KEEL_EINVAL);
  assert_errmsg(CTX, "unknown built-in 6");
  assert_status(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_EQUAL, NULL, NULL), KEEL_EINVAL);
  /* NULL params: the defaults */
  assert_ok(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_EQUAL, NULL, &s));
  keel_strategy_free(s);

  /* inputs */
  double px[ND * NA], t[NA];
  make_prices(px, 5, 1);
  keel_panel *p = panel_of(px);
  keel_builtin_params_default(&bp);
  const double fw[3] = {0.2, 0.3, 0.1};
  bp.weights = fw, bp.nweights = 3;
  assert_ok(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_FIXED, &bp, &s));
  keel_strategy_input in = input_at(p, 10, NA, ALL);
  assert_status(CTX, s->ops->init(s->state, CTX, &in), KEEL_EINVAL);
  assert_errmsg(CTX, "strategy fixed: init: 3 weights for a sub-account of 5 assets");
  assert_status(CTX, s->ops->rebalance(s->state, CTX, &in, t, NULL), KEEL_EINVAL);
  assert_errmsg(CTX, "strategy fixed: rebalance: 3 weights for a sub-account of 5 assets");
  keel_strategy_free(s);
  assert_ok(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_MIN_VARIANCE, NULL, &s));
  in.row = ND;
  assert_status(CTX, s->ops->rebalance(s->state, CTX, &in, t, NULL), KEEL_EINVAL);
  assert_errmsg(CTX, "strategy min_variance: rebalance: row 320 (first row 0) outside the panel's 320 rows");
  in.row = 10, in.first_row = 11;
  assert_status(CTX, s->ops->rebalance(s->state, CTX, &in, t, NULL), KEEL_EINVAL);
  in.first_row = 0;
  const size_t badcol[2] = {0, 9};
  in.nassets = 2, in.assets = badcol;
  assert_status(CTX, s->ops->init(s->state, CTX, &in), KEEL_EINVAL);
  assert_errmsg(CTX, "asset 1 is panel column 9 of 5");
  in = input_at(p, 10, NA, ALL);
  in.periods_per_year = 0;
  assert_status(CTX, s->ops->rebalance(s->state, CTX, &in, t, NULL), KEEL_EINVAL);
  assert_errmsg(CTX, "periods_per_year must be > 0 (it is 0)");
  in.periods_per_year = 252;
  assert_status(CTX, s->ops->rebalance(s->state, CTX, &in, NULL, NULL), KEEL_EINVAL);
  assert_errmsg(CTX, "target is NULL");
  keel_strategy_free(s);
  assert_ok(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_MAX_SHARPE, NULL, &s));
  const double negc[NA] = {0, 0, -0.01, 0, 0};
  in.cost_buy = negc;
  assert_status(CTX, s->ops->rebalance(s->state, CTX, &in, t, NULL), KEEL_EINVAL);
  assert_errmsg(CTX, "strategy max_sharpe: the cost rates of asset 2 are -0.01 and 0");
  keel_strategy_free(s);
  keel_panel_free(p);
#undef BAD
}

/* ---- allocation failures ---- */

static keel_status oom_body(keel_ctx *ctx, void *arg) {
  const keel_panel *p = arg;
  static const double w0[4] = {0.3, 0.1, 0.1, 0.4}, cb[4] = {0.004, 0.002, 0.01, 0.003};
  const size_t sub[4] = {0, 1, 2, 3};
  keel_strategy_input in = input_at(p, 260, 4, sub);
  in.weights = w0, in.cost_buy = cb, in.cost_sell = cb;
  double t[4];
  keel_status st = KEEL_OK;
  for (int k = 0; k <= KEEL_STRAT_RISK_PARITY && !st; k++) {
    keel_builtin_params bp;
    keel_builtin_params_default(&bp);
    bp.weights = w0, bp.nweights = 4, bp.lookback = 100, bp.max_weight = 0.6;
    keel_strategy *s = NULL;
    st = keel_strategy_builtin(ctx, (keel_builtin)k, &bp, &s);
    if (st) break;
    st = s->ops->init(s->state, ctx, &in);
    keel_opt_record rec;
    if (!st) st = s->ops->rebalance(s->state, ctx, &in, t, &rec);
    keel_strategy_free(s);
  }
  return st;
}

static void test_oom(void **state) {
  (void)state;
  double px[ND * NA];
  make_prices(px, 23, 6);
  keel_panel *p = panel_of(px);
  keel_test_oom_loop(oom_body, p);
  keel_panel_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rp_two_assets),
      cmocka_unit_test(test_rp_equal_correlation),
      cmocka_unit_test(test_rp_fixtures),
      cmocka_unit_test(test_rp_errors),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_fixed_equal_inverse_vol),
      cmocka_unit_test(test_min_variance_and_risk_parity),
      cmocka_unit_test(test_max_sharpe),
      cmocka_unit_test(test_no_lookahead),
      cmocka_unit_test(test_late_listing_and_common_rows),
      cmocka_unit_test(test_stock_prices),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_oom),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
