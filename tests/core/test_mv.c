/* Tests of the mean-variance optimiser (core/mv.c). */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keel_test.h"

static const keel_cmat NOMAT = {NULL, 0, 0, 0};

/* The fixture scripts' generator (keel_test_lcg), on one state. */
static uint32_t LCG_X;
static double lcg(void) { return keel_test_lcg(&LCG_X); }

static double max_diff_json(const double *w, json_t *arr, size_t n) {
  assert_int_equal(json_array_size(arr), n);
  double d = 0;
  for (size_t i = 0; i < n; i++) d = fmax(d, fabs(w[i] - json_number_value(json_array_get(arr, i))));
  return d;
}

static json_t *load_fixture(const char *name) {
  json_error_t je;
  json_t *j = json_load_file(keel_test_source_path(name), 0, &je);
  if (!j) fail_msg("%s: %s", name, je.text);
  return j;
}

static void check_both(const char *what, const double *w, json_t *cv, json_t *qp, size_t n, double tol) {
  double dc = max_diff_json(w, json_object_get(cv, "w"), n), dq = max_diff_json(w, json_object_get(qp, "w"), n);
  print_message("%s: |w - CVXOPT| = %.3g, |w - quadprog| = %.3g\n", what, dc, dq);
  if (dc > tol) fail_msg("%s: weights differ from CVXOPT by %.3g", what, dc);
  if (dq > tol) fail_msg("%s: weights differ from quadprog by %.3g", what, dq);
}

static void test_stock_fixtures(void **state) {
  (void)state;
  double *mu = NULL, *S = NULL;
  size_t n = keel_test_stock_moments(&mu, &S);
  if (!n) skip();
  json_t *cv = load_fixture("tests/fixtures/mv_reference.json"), *qp = load_fixture("tests/fixtures/mv_quadprog.json");
  double w[64], w0[64], cb[64], cs[64], ub[64];
  keel_mv_spec s;
  keel_mv_result r;
  /* maximum Sharpe ratio, long only */
  keel_mv_spec_default(&s);
  s.objective = KEEL_OBJ_MAX_SHARPE, s.risk_free = 0.02;
  assert_ok(CTX, keel_mv_optimize(CTX, n, mu, keel_cmat_view(S, n, n), NULL, &s, w, &r));
  check_both("max Sharpe", w, json_object_get(cv, "max_sharpe"), json_object_get(qp, "max_sharpe"), n, 1e-6);
  assert_close(r.cash, 0, 0, 1e-12);
  /* no long-only portfolio has a higher Sharpe ratio: perturb along pairs */
  for (size_t i = 0; i + 1 < n; i++) {
    double v[64];
    memcpy(v, w, sizeof v);
    double e = fmin(1e-4, v[i]);
    v[i] -= e, v[i + 1] += e;
    double ret = 0, var = 0;
    for (size_t a = 0; a < n; a++) {
      ret += mu[a] * v[a];
      for (size_t b = 0; b < n; b++) var += v[a] * S[a * n + b] * v[b];
    }
    assert_true((ret - 0.02) / sqrt(var) <= r.sharpe + 1e-12);
  }
  /* utility with buy and sell costs, a cap per asset and a group */
  size_t tech[5] = {0, 1, 2, 3, 4};
  keel_group g = {"tech", tech, 5, -INFINITY, 0.4};
  for (size_t i = 0; i < n; i++) w0[i] = 1.0 / (double)n, cb[i] = 0.002, cs[i] = 0.003, ub[i] = 0.25;
  keel_mv_spec_default(&s);
  s.objective = KEEL_OBJ_UTILITY, s.gamma = 4, s.w0 = w0, s.cost_buy = cb, s.cost_sell = cs, s.ub = ub;
  s.groups = &g, s.ngroups = 1;
  assert_ok(CTX, keel_mv_optimize(CTX, n, mu, keel_cmat_view(S, n, n), NULL, &s, w, &r));
  check_both("utility with costs", w, json_object_get(cv, "utility_l1"), json_object_get(qp, "utility_l1"), n, 1e-6);
  assert_true(r.polished);
  double cost = 0, gsum = 0;
  size_t held = 0;
  for (size_t i = 0; i < n; i++) {
    cost += w[i] > w0[i] ? 0.002 * (w[i] - w0[i]) : 0.003 * (w0[i] - w[i]);
    held += w[i] == w0[i];
  }
  for (size_t i = 0; i < 5; i++) gsum += w[i];
  assert_close(r.cost, cost, 1e-14, 0);
  assert_true(held >= 1); /* an asset whose gain does not pay its costs stays where it is */
  assert_true(gsum <= 0.4 + 1e-12);
  /* minimum variance with the same bounds and group */
  keel_mv_spec_default(&s);
  s.ub = ub, s.groups = &g, s.ngroups = 1;
  assert_ok(CTX, keel_mv_optimize(CTX, n, mu, keel_cmat_view(S, n, n), NULL, &s, w, &r));
  check_both("capped min variance", w, json_object_get(cv, "min_variance_capped"),
             json_object_get(qp, "min_variance_capped"), n, 1e-6);
  json_decref(cv), json_decref(qp);
  free(mu), free(S);
}

static void test_synthetic_fixtures(void **state) {
  (void)state;
  json_t *cv = load_fixture("tests/fixtures/mv_reference.json"), *qp = load_fixture("tests/fixtures/mv_quadprog.json");
  json_t *cc = json_object_get(cv, "synthetic_utility_l1"), *qc = json_object_get(qp, "synthetic_utility_l1");
  for (size_t c = 0; c < json_array_size(cc); c++) {
    json_t *a = json_array_get(cc, c);
    size_t n = (size_t)json_integer_value(json_object_get(a, "n"));
    LCG_X = (uint32_t)json_integer_value(json_object_get(a, "seed"));
    double *M = malloc(n * n * sizeof *M), *S = calloc(n * n, sizeof *S), *mu = malloc(n * sizeof *mu);
    double *w0 = malloc(n * sizeof *w0), *cb = malloc(n * sizeof *cb), *cs = malloc(n * sizeof *cs);
    double *w = malloc(n * sizeof *w), sum = 0;
    for (size_t i = 0; i < n * n; i++) M[i] = lcg();
    for (size_t i = 0; i < n; i++) mu[i] = 0.1 * lcg();
    for (size_t i = 0; i < n; i++) w0[i] = lcg() + 0.5, sum += w0[i];
    for (size_t i = 0; i < n; i++) w0[i] /= sum;
    for (size_t i = 0; i < n; i++) cb[i] = 0.002 * (lcg() + 0.5);
    for (size_t i = 0; i < n; i++) cs[i] = 0.003 * (lcg() + 0.5);
    for (size_t k = 0; k < n; k++)
      for (size_t i = 0; i < n; i++) {
        double mk = M[k * n + i] / (double)n;
        for (size_t j = 0; j < n; j++) S[i * n + j] += mk * M[k * n + j];
      }
    for (size_t i = 0; i < n; i++) S[i * n + i] += 0.01;
    keel_mv_spec s;
    keel_mv_spec_default(&s);
    s.objective = KEEL_OBJ_UTILITY, s.w0 = w0, s.cost_buy = cb, s.cost_sell = cs;
    keel_mv_result r;
    assert_ok(CTX, keel_mv_optimize(CTX, n, mu, keel_cmat_view(S, n, n), NULL, &s, w, &r));
    char what[64];
    snprintf(what, sizeof what, "utility with costs, n = %zu", n);
    check_both(what, w, a, json_array_get(qc, c), n, 1e-6);
    free(M), free(S), free(mu), free(w0), free(cb), free(cs), free(w);
  }
  json_decref(cv), json_decref(qp);
}

/* A seeded covariance (PD, n x n) and expected returns. */
static void seeded(size_t n, uint32_t seed, double *S, double *mu) {
  LCG_X = seed;
  double *M = malloc(n * n * sizeof *M);
  for (size_t i = 0; i < n * n; i++) M[i] = lcg();
  for (size_t i = 0; i < n; i++) {
    mu[i] = 0.05 + 0.1 * lcg();
    for (size_t j = 0; j < n; j++) {
      double v = i == j ? 0.002 : 0;
      for (size_t k = 0; k < n; k++) v += 0.04 * M[k * n + i] * M[k * n + j] / (double)n;
      S[i * n + j] = v;
    }
  }
  free(M);
}

/* Solves S x = b by Gauss-Jordan (small n, test only). */
static void gauss_solve(size_t n, const double *S, const double *b, double *x) {
  double *A = malloc(n * (n + 1) * sizeof *A);
  for (size_t i = 0; i < n; i++) {
    memcpy(A + i * (n + 1), S + i * n, n * sizeof *A);
    A[i * (n + 1) + n] = b[i];
  }
  for (size_t c = 0; c < n; c++) {
    size_t piv = c;
    for (size_t i = c + 1; i < n; i++)
      if (fabs(A[i * (n + 1) + c]) > fabs(A[piv * (n + 1) + c])) piv = i;
    for (size_t j = 0; j <= n; j++) {
      double t = A[c * (n + 1) + j];
      A[c * (n + 1) + j] = A[piv * (n + 1) + j], A[piv * (n + 1) + j] = t;
    }
    for (size_t i = 0; i < n; i++) {
      if (i == c) continue;
      double f = A[i * (n + 1) + c] / A[c * (n + 1) + c];
      for (size_t j = c; j <= n; j++) A[i * (n + 1) + j] -= f * A[c * (n + 1) + j];
    }
  }
  for (size_t i = 0; i < n; i++) x[i] = A[i * (n + 1) + n] / A[i * (n + 1) + i];
  free(A);
}

/* Without bounds the answers are closed forms: min variance S^-1 1 / 1'S^-1 1,
 * tangency S^-1 (mu - rf) / 1'S^-1 (mu - rf), and the two-fund frontier. */
static void test_closed_forms(void **state) {
  (void)state;
  enum { N = 12 };
  double S[N * N], mu[N], lb[N], ub[N], ones[N], a[N], b[N], w[N], ex[N];
  seeded(N, 3, S, mu);
  for (size_t i = 0; i < N; i++) lb[i] = -INFINITY, ub[i] = INFINITY, ones[i] = 1, ex[i] = mu[i] - 0.01;
  gauss_solve(N, S, ones, a);
  gauss_solve(N, S, ex, b);
  double sa = 0, sb = 0;
  for (size_t i = 0; i < N; i++) sa += a[i], sb += b[i];
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  s.lb = lb, s.ub = ub;
  keel_mv_result r;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  for (size_t i = 0; i < N; i++) assert_close(w[i], a[i] / sa, 1e-10, 1e-12);
  s.objective = KEEL_OBJ_MAX_SHARPE, s.risk_free = 0.01;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  for (size_t i = 0; i < N; i++) assert_close(w[i], b[i] / sb, 1e-9, 1e-12);
  /* target return r: w = S^-1 (l1 1 + l2 mu) with the two multipliers
   * from 1'w = 1 and mu'w = r (Merton 1972) */
  double A = 0, B = 0, C = 0, m[N];
  gauss_solve(N, S, mu, m);
  for (size_t i = 0; i < N; i++) A += a[i], B += m[i] * 1.0, C += mu[i] * m[i];
  double D = A * C - B * B, tr = 0.08;
  s.objective = KEEL_OBJ_TARGET_RETURN, s.target_return = tr;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  for (size_t i = 0; i < N; i++) assert_close(w[i], ((C - tr * B) * a[i] + (tr * A - B) * m[i]) / D, 1e-9, 1e-12);
  assert_close(r.ret, tr, 1e-12, 0);
  assert_close(r.vol * r.vol, (A * tr * tr - 2 * B * tr + C) / D, 1e-10, 0);
  /* utility: w = (1/gamma) S^-1 (mu - eta 1) with eta from 1'w = 1 */
  s.objective = KEEL_OBJ_UTILITY, s.gamma = 3;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  double eta = (B - 3) / A;
  for (size_t i = 0; i < N; i++) assert_close(w[i], (m[i] - eta * a[i]) / 3, 1e-9, 1e-12);
}

static void test_target_vol_and_frontier(void **state) {
  (void)state;
  enum { N = 15, K = 12 };
  double S[N * N], mu[N], w[N], w2[N], ret[K], vol[K], W[K * N];
  seeded(N, 8, S, mu);
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  keel_mv_result r, r2;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  double vmin = r.vol;
  assert_ok(CTX, keel_mv_frontier(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, K, ret, vol, keel_mat_view(W, K, N)));
  assert_close(vol[0], vmin, 1e-10, 0);
  for (size_t k = 1; k < K; k++) {
    assert_true(ret[k] > ret[k - 1]);
    /* the last point is a degenerate vertex (the highest return is
     * reached by one portfolio only): checked below instead */
    if (k == K - 1) break;
    assert_true(vol[k] >= vol[k - 1] - 1e-15);
    /* each point is the minimum-variance portfolio for its return */
    s.objective = KEEL_OBJ_TARGET_RETURN, s.target_return = ret[k];
    assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w2, &r2));
    for (size_t i = 0; i < N; i++) assert_close(W[k * N + i], w2[i], 0, 1e-9);
  }
  /* the last point is the highest-return portfolio: all in the best asset */
  size_t best = 0;
  for (size_t i = 1; i < N; i++)
    if (mu[i] > mu[best]) best = i;
  assert_close(W[(K - 1) * N + best], 1, 0, 1e-9);
  /* maximum return at a volatility between the ends of the frontier */
  double tv = 0.5 * (vol[3] + vol[4]);
  s.objective = KEEL_OBJ_TARGET_VOL, s.target_vol = tv;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  assert_close(r.vol, tv, 1e-12, 0);
  assert_true(r.ret > ret[3] && r.ret < ret[4]);
  /* it lies on the frontier: min variance at its return has its volatility */
  s.objective = KEEL_OBJ_TARGET_RETURN, s.target_return = r.ret;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w2, &r2));
  assert_close(r2.vol, tv, 1e-9, 0);
  /* below the lowest volatility: infeasible, named */
  s.objective = KEEL_OBJ_TARGET_VOL, s.target_vol = 0.9 * vmin;
  assert_status(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r), KEEL_EINFEASIBLE);
  assert_errmsg(CTX, "below the lowest achievable");
  /* above the highest: the highest-return portfolio */
  s.target_vol = 10 * vol[K - 1];
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  assert_close(w[best], 1, 0, 1e-9);
  /* a target return above the highest feasible one */
  s.objective = KEEL_OBJ_TARGET_RETURN, s.target_return = mu[best] + 0.01;
  assert_status(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r), KEEL_EINFEASIBLE);
  assert_errmsg(CTX, "expected return");
}

/* The same problem with the covariance as B F B' + D and formed densely. */
static void test_factor_model(void **state) {
  (void)state;
  enum { N = 40, K = 3 };
  double B[N * K], F[K * K] = {0.04, 0.01, 0, 0.01, 0.02, 0.005, 0, 0.005, 0.01}, d[N], S[N * N], mu[N];
  double w[N], wd[N], w0[N], cb[N];
  LCG_X = 77;
  for (size_t i = 0; i < N * K; i++) B[i] = lcg() + (i % K == 0 ? 1 : 0);
  for (size_t i = 0; i < N; i++) d[i] = 0.01 + 0.01 * (lcg() + 0.5), mu[i] = 0.06 + 0.05 * lcg(), w0[i] = 1.0 / N;
  for (size_t i = 0; i < N; i++) cb[i] = 0.001;
  for (size_t i = 0; i < N; i++)
    for (size_t j = 0; j < N; j++) {
      double v = i == j ? d[i] : 0;
      for (size_t a = 0; a < K; a++)
        for (size_t b = 0; b < K; b++) v += B[i * K + a] * F[a * K + b] * B[j * K + b];
      S[i * N + j] = v;
    }
  keel_factor_model fm = {K, keel_cmat_view(B, N, K), keel_cmat_view(F, K, K), d};
  keel_objective objs[] = {KEEL_OBJ_MIN_VARIANCE, KEEL_OBJ_MAX_SHARPE, KEEL_OBJ_UTILITY, KEEL_OBJ_TARGET_VOL};
  for (size_t o = 0; o < 4; o++) {
    keel_mv_spec s;
    keel_mv_spec_default(&s);
    s.objective = objs[o], s.risk_free = 0.01, s.gamma = 2, s.target_vol = 0.15;
    if (objs[o] == KEEL_OBJ_UTILITY) s.w0 = w0, s.cost_buy = s.cost_sell = cb, s.turnover_cap = 0.5;
    keel_mv_result rf, rd;
    assert_ok(CTX, keel_mv_optimize(CTX, N, mu, NOMAT, &fm, &s, w, &rf));
    assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, wd, &rd));
    double diff = 0;
    for (size_t i = 0; i < N; i++) diff = fmax(diff, fabs(w[i] - wd[i]));
    print_message("%s: factor vs dense %.3g\n", keel_objective_name(objs[o]), diff);
    if (diff > 1e-9) fail_msg("%s: factor and dense weights differ by %.3g", keel_objective_name(objs[o]), diff);
    assert_close(rf.vol, rd.vol, 1e-12, 0);
    assert_true(isnan(rf.condition));
  }
}

/* Cash, turnover cap and costs. */
static void test_cash_cap_costs(void **state) {
  (void)state;
  enum { N = 10 };
  double S[N * N], mu[N], w[N], w0[N], cb[N];
  seeded(N, 12, S, mu);
  for (size_t i = 0; i < N; i++) w0[i] = i < 2 ? 0.5 : 0, cb[i] = 0.002;
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  keel_mv_result r;
  s.objective = KEEL_OBJ_UTILITY, s.cash = 1, s.risk_free = 0.03, s.gamma = 500;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  double sum = 0;
  for (size_t i = 0; i < N; i++) sum += w[i], assert_true(w[i] >= -1e-15);
  assert_close(r.cash, 1 - sum, 0, 1e-15);
  assert_true(r.cash > 0.1); /* a cautious investor holds cash */
  double cash_hi = r.cash;
  s.gamma = 100;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  assert_true(r.cash < cash_hi);
  /* the turnover cap binds exactly */
  s.cash = 0, s.w0 = w0, s.turnover_cap = 0.3;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  assert_close(r.turnover, 0.3, 0, 1e-12);
  /* costs make it trade less than without */
  s.turnover_cap = INFINITY;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  double to_free = r.turnover;
  s.cost_buy = s.cost_sell = cb;
  for (size_t i = 0; i < N; i++) cb[i] = 0.02;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  assert_true(r.turnover < to_free);
  assert_close(r.cost, 0.02 * r.turnover, 1e-12, 0);
}

/* The budget price is the marginal utility of wealth: every asset strictly
 * inside its bounds has mu_i - gamma (S w)_i equal to it (the optimality
 * condition), fully invested and with a binding cash budget; with slack
 * cash it is the risk-free rate. */
static void test_budget_price(void **state) {
  (void)state;
  enum { N = 10 };
  double S[N * N], mu[N], w[N], ub[N];
  seeded(N, 21, S, mu);
  for (size_t i = 0; i < N; i++) ub[i] = 0.35;
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  keel_mv_result r;
  s.objective = KEEL_OBJ_UTILITY, s.ub = ub, s.risk_free = 0.01;
  const double gammas[3] = {20, 20, 400};
  for (int c = 0; c < 3; c++) {
    s.cash = c > 0, s.gamma = gammas[c];
    assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
    int interior = 0;
    for (size_t i = 0; i < N; i++) {
      if (!(w[i] > 1e-6 && w[i] < ub[i] - 1e-6)) continue;
      double sw = 0;
      for (size_t j = 0; j < N; j++) sw += S[i * N + j] * w[j];
      assert_close(mu[i] - s.gamma * sw, r.budget_price, 0, 1e-9);
      interior++;
    }
    if (interior < 2) fail_msg("case %d: %d assets inside their bounds", c, interior);
    if (c == 2) assert_close(r.budget_price, s.risk_free, 0, 1e-12), assert_true(r.cash > 0.01);
    if (c == 1) assert_true(r.cash < 1e-9 && r.budget_price > s.risk_free);
  }
  s.objective = KEEL_OBJ_MIN_VARIANCE;
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  assert_true(isnan(r.budget_price));
}

/* Hard cases. */
static void test_hard_cases(void **state) {
  (void)state;
  /* more assets than observations: the sample covariance is singular;
   * it still gives an answer (flagged), and Ledoit-Wolf a regular one */
  enum { N = 30, T = 12 };
  double R[T * N], S[N * N], w[N];
  LCG_X = 5;
  for (size_t i = 0; i < T * N; i++) R[i] = 0.02 * lcg();
  keel_cov_options co;
  keel_cov_options_default(&co);
  assert_ok(CTX, keel_cov(CTX, keel_cmat_view(R, T, N), &co, keel_mat_view(S, N, N), NULL));
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  keel_mv_result r;
  assert_ok(CTX, keel_mv_optimize(CTX, N, NULL, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  assert_true(r.ill_conditioned);
  double sum = 0;
  for (size_t i = 0; i < N; i++) sum += w[i], assert_true(w[i] >= -1e-12 && isfinite(w[i]));
  assert_close(sum, 1, 0, 1e-12);
  co.kind = KEEL_COV_LW_IDENTITY;
  keel_cov_info ci;
  assert_ok(CTX, keel_cov(CTX, keel_cmat_view(R, T, N), &co, keel_mat_view(S, N, N), &ci));
  assert_true(ci.shrinkage > 0 && ci.shrinkage < 1);
  assert_ok(CTX, keel_mv_optimize(CTX, N, NULL, keel_cmat_view(S, N, N), NULL, &s, w, &r));
  assert_false(r.ill_conditioned);
  assert_true(isfinite(r.condition) && r.condition > 1);
  assert_true(r.polished);

  /* all expected returns below the risk-free rate: max Sharpe says so */
  enum { M = 8 };
  double S2[M * M], mu2[M], w2[M];
  seeded(M, 9, S2, mu2);
  for (size_t i = 0; i < M; i++) mu2[i] = -0.01 - 0.01 * (double)i;
  s.objective = KEEL_OBJ_MAX_SHARPE, s.risk_free = 0;
  assert_status(CTX, keel_mv_optimize(CTX, M, mu2, keel_cmat_view(S2, M, M), NULL, &s, w2, &r), KEEL_EINFEASIBLE);
  assert_errmsg(CTX, "no feasible portfolio has an expected return above the risk-free rate");
  assert_errmsg(CTX, "the highest is -0.01");

  /* a tiny negative eigenvalue (rounding): accepted and clipped; a real
   * one: rejected, or repaired when asked */
  double Q[M * M], lam[M], A[M * M];
  seeded(M, 10, S2, mu2);
  for (size_t i = 0; i < M; i++) lam[i] = 0.01 * (double)(i + 1);
  /* Q: an orthogonal matrix from Householder I - 2 v v'/v'v */
  double v[M], vv = 0;
  for (size_t i = 0; i < M; i++) v[i] = lcg(), vv += v[i] * v[i];
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < M; j++) Q[i * M + j] = (i == j) - 2 * v[i] * v[j] / vv;
  for (int c = 0; c < 3; c++) {
    lam[0] = c == 0 ? -1e-15 : -0.002;
    for (size_t i = 0; i < M; i++)
      for (size_t j = 0; j < M; j++) {
        double t = 0;
        for (size_t k = 0; k < M; k++) t += Q[i * M + k] * lam[k] * Q[j * M + k];
        A[i * M + j] = t;
      }
    for (size_t i = 0; i < M; i++)
      for (size_t j = 0; j < i; j++) A[i * M + j] = A[j * M + i];
    keel_mv_spec_default(&s);
    s.psd = c == 2 ? KEEL_PSD_REPAIR : KEEL_PSD_REJECT;
    keel_status st = keel_mv_optimize(CTX, M, mu2, keel_cmat_view(A, M, M), NULL, &s, w2, &r);
    if (c == 1) {
      assert_int_equal(st, KEEL_ENUMERIC);
      assert_errmsg(CTX, "not positive semidefinite (smallest eigenvalue -0.002");
      continue;
    }
    assert_ok(CTX, st);
    assert_true(r.psd_repaired);
    assert_true(r.min_eigenvalue < 0);
    if (c == 2) assert_true(r.psd_change > 1e-3);
    for (size_t i = 0; i < M; i++) assert_true(isfinite(w2[i]) && w2[i] >= -1e-12);
  }

  /* ill-conditioned: eigenvalues 1 .. 1e-12, condition reported, warning */
  for (size_t i = 0; i < M; i++) lam[i] = pow(10, -12.0 * (double)i / (M - 1));
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < M; j++) {
      double t = 0;
      for (size_t k = 0; k < M; k++) t += Q[i * M + k] * lam[k] * Q[j * M + k];
      A[i * M + j] = t;
    }
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < i; j++) A[i * M + j] = A[j * M + i];
  keel_mv_spec_default(&s);
  keel_status st = keel_mv_optimize(CTX, M, NULL, keel_cmat_view(A, M, M), NULL, &s, w2, &r);
  if (st == KEEL_OK) {
    assert_true(r.ill_conditioned);
    /* dpocon estimates the 1-norm condition: within a factor M of 1e12 */
    assert_true(r.condition > 1e11 && r.condition < 1e14);
  } else {
    fail_msg("ill-conditioned covariance: %s", keel_errmsg(CTX));
  }
}

/* Contradictory constraints: KEEL_EINFEASIBLE naming the group. */
static void test_infeasible(void **state) {
  (void)state;
  enum { N = 6 };
  double S[N * N], mu[N], w[N], lb[N], ub[N], w0[N] = {1, 0, 0, 0, 0, 0};
  seeded(N, 4, S, mu);
  keel_mv_spec s;
  keel_mv_result r;
  keel_cmat C = keel_cmat_view(S, N, N);
  for (size_t i = 0; i < N; i++) lb[i] = 0.2, ub[i] = 1;
  keel_mv_spec_default(&s);
  s.lb = lb;
  assert_status(CTX, keel_mv_optimize(CTX, N, mu, C, NULL, &s, w, &r), KEEL_EINFEASIBLE);
  assert_errmsg(CTX, "lower bounds sum to 1.2");
  for (size_t i = 0; i < N; i++) lb[i] = 0, ub[i] = 0.1;
  s.lb = lb, s.ub = ub;
  assert_status(CTX, keel_mv_optimize(CTX, N, mu, C, NULL, &s, w, &r), KEEL_EINFEASIBLE);
  assert_errmsg(CTX, "upper bounds sum to 0.6");
  s.cash = 1; /* with cash the rest is fine */
  assert_ok(CTX, keel_mv_optimize(CTX, N, mu, C, NULL, &s, w, &r));
  assert_close(r.cash, 1, 0, 1e-9);
  size_t crypto[2] = {4, 5}, a[2] = {0, 1}, b[2] = {2, 3};
  keel_group g1 = {"crypto", crypto, 2, 0.3, 0.2};
  keel_mv_spec_default(&s);
  s.groups = &g1, s.ngroups = 1;
  assert_status(CTX, keel_mv_optimize(CTX, N, mu, C, NULL, &s, w, &r), KEEL_EINFEASIBLE);
  assert_errmsg(CTX, "group crypto has lower bound 0.3 above its upper bound 0.2");
  for (size_t i = 0; i < N; i++) ub[i] = 0.5;
  s.ub = ub;
  g1.lo = 0, g1.hi = 0.2;
  keel_group g0 = {"core", a, 2, 0, 0.3};
  keel_group gs[3] = {g0, g1, {"bonds", b, 2, 0, 0.4}};
  s.groups = gs, s.ngroups = 3; /* 0.3 + 0.2 + 0.4 < 1 */
  assert_status(CTX, keel_mv_optimize(CTX, N, mu, C, NULL, &s, w, &r), KEEL_EINFEASIBLE);
  /* no single group is at fault by its bounds alone; the solver names the
   * first whose removal leaves a feasible rest */
  assert_errmsg(CTX, "group core cannot be met together with the other constraints");
  /* each group alone is feasible, together they are not: named by the solver */
  keel_group ga = {"growth", a, 2, 0.6, 1}, gb = {"income", b, 2, 0.6, 1};
  keel_group two[2] = {ga, gb};
  s.ub = NULL, s.groups = two, s.ngroups = 2;
  assert_status(CTX, keel_mv_optimize(CTX, N, mu, C, NULL, &s, w, &r), KEEL_EINFEASIBLE);
  assert_errmsg(CTX, "group growth cannot be met together with the other constraints");
  /* the turnover cap cannot reach the constraints from w0 */
  keel_group first = {"first", a, 1, 0, 0.2};
  s.groups = &first, s.ngroups = 1, s.w0 = w0, s.turnover_cap = 0.5;
  assert_status(CTX, keel_mv_optimize(CTX, N, mu, C, NULL, &s, w, &r), KEEL_EINFEASIBLE);
  assert_errmsg(CTX, "turnover cap 0.5 is too small");
}

static void test_rejects(void **state) {
  (void)state;
  enum { N = 4 };
  double S[N * N], mu[N], w[N], cb[N] = {0.01, 0.01, 0.01, 0.01};
  seeded(N, 2, S, mu);
  keel_cmat C = keel_cmat_view(S, N, N);
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  keel_mv_result r;
  mu[2] = NAN;
  s.objective = KEEL_OBJ_UTILITY;
  assert_status(CTX, keel_mv_optimize(CTX, N, mu, C, NULL, &s, w, &r), KEEL_EINVAL);
  assert_errmsg(CTX, "expected return 2 is not finite");
  mu[2] = 0.05;
  S[1] = INFINITY;
  assert_status(CTX, keel_mv_optimize(CTX, N, mu, C, NULL, &s, w, &r), KEEL_EINVAL);
  assert_errmsg(CTX, "not finite");
  S[1] = S[N];
  s.objective = KEEL_OBJ_MIN_VARIANCE, s.cost_buy = cb;
  assert_status(CTX, keel_mv_optimize(CTX, N, mu, C, NULL, &s, w, &r), KEEL_EINVAL);
  assert_errmsg(CTX, "transaction costs are part of the utility");
  keel_mv_spec_default(&s);
  s.objective = KEEL_OBJ_TARGET_RETURN;
  assert_status(CTX, keel_mv_optimize(CTX, N, NULL, C, NULL, &s, w, &r), KEEL_EINVAL);
  assert_errmsg(CTX, "needs expected returns");
  assert_int_equal(keel_objective_parse("max_sharpe"), KEEL_OBJ_MAX_SHARPE);
  assert_int_equal(keel_objective_parse("sharpest"), -1);
  assert_string_equal(keel_objective_name(KEEL_OBJ_TARGET_VOL), "target_vol");
}

static keel_status oom_body(keel_ctx *ctx, void *arg) {
  (void)arg;
  enum { N = 6 };
  double S[N * N], mu[N], w[N], w0[N] = {0.5, 0.5, 0, 0, 0, 0}, cb[N] = {0.001, 0.001, 0.001, 0.001, 0.001, 0.001};
  seeded(N, 6, S, mu);
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  s.objective = KEEL_OBJ_TARGET_VOL, s.target_vol = 0.12, s.w0 = w0, s.cost_buy = cb, s.cost_sell = cb;
  return keel_mv_optimize(ctx, N, mu, keel_cmat_view(S, N, N), NULL, &s, w, NULL);
}

static void test_oom(void **state) {
  (void)state;
  keel_test_oom_loop(oom_body, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stock_fixtures),  cmocka_unit_test(test_synthetic_fixtures),
      cmocka_unit_test(test_closed_forms),    cmocka_unit_test(test_target_vol_and_frontier),
      cmocka_unit_test(test_factor_model),    cmocka_unit_test(test_cash_cap_costs),
      cmocka_unit_test(test_hard_cases),      cmocka_unit_test(test_infeasible),
      cmocka_unit_test(test_rejects),         cmocka_unit_test(test_oom),
      cmocka_unit_test(test_budget_price),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
