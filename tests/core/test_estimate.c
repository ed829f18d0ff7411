/* Tests of the estimators (core/estimate.c). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "keel_test.h"

/* ---- small hand-computed cases ------------------------------------------ */

static void test_returns_hand(void **state) {
  (void)state;
  keel_date dates[5] = {1, 2, 3, 4, 5};
  /* B is halted on day 3: its day-4 return spans the halt */
  double px[10] = {100, NAN, 110, 50, 99, NAN, 99, 60, 121, 66};
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_new(CTX, 5, 2, dates, (const char *const[]){"A", "B"}, px, &p));
  double r[8];
  assert_ok(CTX, keel_returns(CTX, p, 0, 0, KEEL_RETURNS_SIMPLE, keel_mat_view(r, 4, 2)));
  assert_close(r[0], 0.1, 1e-15, 0);
  assert_true(isnan(r[1])); /* B has no price before day 2 */
  assert_close(r[2], 99.0 / 110 - 1, 1e-15, 0);
  assert_true(isnan(r[3]));  /* B halted */
  assert_close(r[5], 0.2, 1e-15, 0); /* 60 / 50 across the halt */
  assert_close(r[7], 0.1, 1e-15, 0);
  assert_ok(CTX, keel_returns(CTX, p, 1, 4, KEEL_RETURNS_LOG, keel_mat_view(r, 2, 2)));
  assert_close(r[0], log(99.0 / 110), 1e-15, 0);
  assert_true(isnan(r[1]));
  assert_close(r[3], log(60.0 / 50), 1e-15, 0); /* B's last price before the window's row 3 is 50 */
  assert_status(CTX, keel_returns(CTX, p, 0, 0, KEEL_RETURNS_SIMPLE, keel_mat_view(r, 3, 2)), KEEL_EINVAL);
  assert_status(CTX, keel_returns(CTX, p, 4, 5, KEEL_RETURNS_SIMPLE, keel_mat_view(r, 0, 2)), KEEL_EINVAL);
  keel_panel_free(p);
}

static void test_mean_cov_hand(void **state) {
  (void)state;
  /* three periods, two assets: x = (1, 2, 6)%, y = (-1, 0, 4)% */
  double r[6] = {0.01, -0.01, 0.02, 0.0, 0.06, 0.04};
  keel_cmat R = keel_cmat_view(r, 3, 2);
  double mu[2];
  keel_mean_options mo;
  keel_mean_options_default(&mo);
  assert_ok(CTX, keel_mean(CTX, R, &mo, mu));
  assert_close(mu[0], 0.03, 1e-15, 0);
  assert_close(mu[1], 0.01, 1e-14, 0);
  mo.kind = KEEL_MEAN_GEOMETRIC;
  assert_ok(CTX, keel_mean(CTX, R, &mo, mu));
  assert_close(mu[0], cbrt(1.01 * 1.02 * 1.06) - 1, 1e-14, 0);
  mo.kind = KEEL_MEAN_EWMA;
  mo.halflife = 1; /* weights 1/4, 1/2, 1 */
  assert_ok(CTX, keel_mean(CTX, R, &mo, mu));
  assert_close(mu[0], (0.25 * 0.01 + 0.5 * 0.02 + 0.06) / 1.75, 1e-14, 0);
  mo.kind = KEEL_MEAN_ARITHMETIC;
  mo.periods_per_year = 12;
  assert_ok(CTX, keel_mean(CTX, R, &mo, mu));
  assert_close(mu[0], 0.36, 1e-14, 0);

  double c[4];
  keel_cov_options co;
  keel_cov_options_default(&co);
  keel_cov_info info;
  assert_ok(CTX, keel_cov(CTX, R, &co, keel_mat_view(c, 2, 2), &info));
  /* deviations x: -2, -1, 3 (%); y: -2, -1, 3 (%): var = 14/2 = 7e-4 */
  assert_close(c[0], 7e-4, 1e-13, 0);
  assert_close(c[1], 7e-4, 1e-13, 0);
  assert_close(c[3], 7e-4, 1e-13, 0);
  assert_int_equal(info.nobs, 3);
  assert_true(isnan(info.shrinkage));
  co.kind = KEEL_COV_SEMI; /* below 0: only y's -1% counts */
  assert_ok(CTX, keel_cov(CTX, R, &co, keel_mat_view(c, 2, 2), NULL));
  assert_close(c[0], 0, 0, 0);
  assert_close(c[3], 1e-4 / 3, 1e-13, 0);
  co.kind = KEEL_COV_EWMA;
  co.halflife = 1;
  assert_ok(CTX, keel_cov(CTX, R, &co, keel_mat_view(c, 2, 2), NULL));
  double m = (0.25 * 0.01 + 0.5 * 0.02 + 0.06) / 1.75;
  double v = (0.25 * pow(0.01 - m, 2) + 0.5 * pow(0.02 - m, 2) + pow(0.06 - m, 2)) / 1.75;
  assert_close(c[0], v, 1e-13, 0);

  /* rejections */
  double bad[6] = {0.01, INFINITY, 0.02, 0, 0.06, 0.04};
  assert_status(CTX, keel_cov(CTX, keel_cmat_view(bad, 3, 2), NULL, keel_mat_view(c, 2, 2), NULL), KEEL_EINVAL);
  assert_errmsg(CTX, "infinite");
  assert_status(CTX, keel_cov(CTX, R, NULL, keel_mat_view(c, 1, 2), NULL), KEEL_EINVAL);
  co.kind = KEEL_COV_LW_IDENTITY;
  co.missing = KEEL_MISSING_PAIRWISE;
  assert_status(CTX, keel_cov(CTX, R, &co, keel_mat_view(c, 2, 2), NULL), KEEL_EINVAL);
  double minus[2] = {-1.5, 0.1};
  mo.kind = KEEL_MEAN_GEOMETRIC;
  assert_status(CTX, keel_mean(CTX, keel_cmat_view(minus, 1, 2), &mo, mu), KEEL_EINVAL);
  double nan1[4] = {NAN, 0.1, NAN, 0.2};
  mo.kind = KEEL_MEAN_ARITHMETIC;
  mo.missing = KEEL_MISSING_PAIRWISE;
  assert_status(CTX, keel_mean(CTX, keel_cmat_view(nan1, 2, 2), &mo, mu), KEEL_EINVAL);
  assert_errmsg(CTX, "asset 0 has no return");
}

/* More assets than observations: the sample covariance is singular, the
 * shrunk one is positive definite. */
static void test_more_assets_than_periods(void **state) {
  (void)state;
  enum { T = 10, N = 30 };
  double r[T * N], c[N * N];
  unsigned s = 99;
  for (int k = 0; k < T * N; k++) {
    s = s * 1103515245u + 12345u;
    r[k] = ((double)(s >> 8 & 0xffff) / 65536.0 - 0.5) * 0.04;
  }
  keel_cov_options co;
  keel_cov_options_default(&co);
  keel_psd_report rep;
  assert_ok(CTX, keel_cov(CTX, keel_cmat_view(r, T, N), &co, keel_mat_view(c, N, N), NULL));
  assert_ok(CTX, keel_cov_nearest_psd(CTX, keel_mat_view(c, N, N), 0, &rep));
  assert_true(rep.min_eigenvalue < 1e-15); /* rank T - 1 < N */
  for (int kind = KEEL_COV_LW_IDENTITY; kind <= KEEL_COV_LW_CONSTCORR; kind++) {
    keel_cov_info info;
    co.kind = (keel_cov_kind)kind;
    assert_ok(CTX, keel_cov(CTX, keel_cmat_view(r, T, N), &co, keel_mat_view(c, N, N), &info));
    assert_true(info.shrinkage > 0 && info.shrinkage <= 1);
    assert_ok(CTX, keel_cov_nearest_psd(CTX, keel_mat_view(c, N, N), 0, &rep));
    if (!(rep.min_eigenvalue > 0)) fail_msg("kind %d: min eigenvalue %g", kind, rep.min_eigenvalue);
    assert_int_equal(rep.nclipped, 0);
  }
}

static void test_nearest_psd_closed_form(void **state) {
  (void)state;
  /* [[1, 2], [2, 1]]: eigenvalues 3 and -1, eigenvectors (1, +-1)/sqrt 2;
   * the nearest PSD matrix keeps 3 v v' = 1.5 everywhere */
  double a[4] = {1, 2, 2, 1};
  keel_psd_report rep;
  assert_ok(CTX, keel_cov_nearest_psd(CTX, keel_mat_view(a, 2, 2), 0, &rep));
  for (int k = 0; k < 4; k++) assert_close(a[k], 1.5, 1e-14, 0);
  assert_int_equal(rep.nclipped, 1);
  assert_close(rep.min_eigenvalue, -1, 1e-14, 0);
  assert_close(rep.max_eigenvalue, 3, 1e-14, 0);
  assert_close(rep.change, 1 / sqrt(10), 1e-14, 0);
  /* a floor keeps the smallest eigenvalue at floor * 3 */
  double b[4] = {1, 2, 2, 1};
  assert_ok(CTX, keel_cov_nearest_psd(CTX, keel_mat_view(b, 2, 2), 1e-3, &rep));
  assert_close(rep.condition, 1000, 1e-10, 0);
  double ns[4] = {1, 2, 2.5, 1};
  assert_status(CTX, keel_cov_nearest_psd(CTX, keel_mat_view(ns, 2, 2), 0, NULL), KEEL_EINVAL);
  assert_errmsg(CTX, "not symmetric");
  double nf[4] = {1, NAN, NAN, 1};
  assert_status(CTX, keel_cov_nearest_psd(CTX, keel_mat_view(nf, 2, 2), 0, NULL), KEEL_EINVAL);
}

/* ---- the independent reference on shared data ------------------------------ */

static json_t *REF;
static double *R;
static size_t RT, RN;

static void check_vec(const char *what, const double *got, json_t *want, size_t n, double rtol) {
  assert_int_equal(json_array_size(want), n);
  for (size_t i = 0; i < n; i++) {
    double x = json_number_value(json_array_get(want, i));
    if (!(fabs(got[i] - x) <= rtol * fabs(x) + 1e-300)) fail_msg("%s[%zu]: keel %.17g, reference %.17g", what, i, got[i], x);
  }
}

static void check_mat(const char *what, const double *got, json_t *want, size_t n, double rtol) {
  /* relative to the matrix's largest entry, so tiny off-diagonals do not
   * dominate the tolerance */
  double big = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) big = fmax(big, fabs(json_number_value(json_array_get(json_array_get(want, i), j))));
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      double x = json_number_value(json_array_get(json_array_get(want, i), j));
      if (!(fabs(got[i * n + j] - x) <= rtol * big))
        fail_msg("%s[%zu][%zu]: keel %.17g, reference %.17g", what, i, j, got[i * n + j], x);
    }
}

static int load_reference(void **state) {
  (void)state;
  keel_test_setup(state);
  const char *path = keel_test_shared_data("stock_prices.csv");
  if (!path) return 0;
  json_error_t je;
  REF = json_load_file(keel_test_source_path("tests/fixtures/estimators_reference.json"), 0, &je);
  if (!REF) return -1;
  keel_panel *p = NULL;
  if (keel_panel_read_csv(CTX, path, NULL, &p)) return -1;
  RT = keel_panel_ndates(p) - 1;
  RN = keel_panel_nassets(p);
  R = malloc(RT * RN * sizeof *R);
  keel_status st = keel_returns(CTX, p, 0, 0, KEEL_RETURNS_SIMPLE, keel_mat_view(R, RT, RN));
  keel_panel_free(p);
  return st == KEEL_OK ? 0 : -1;
}

static int free_reference(void **state) {
  json_decref(REF);
  free(R);
  return keel_test_teardown(state);
}

static void test_reference_returns(void **state) {
  (void)state;
  if (!REF) skip();
  const char *path = keel_test_shared_data("stock_prices.csv");
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &p));
  double *L = malloc(RT * RN * sizeof *L), sum[64], lsum[64], cnt[64];
  assert_ok(CTX, keel_returns(CTX, p, 0, 0, KEEL_RETURNS_LOG, keel_mat_view(L, RT, RN)));
  for (size_t j = 0; j < RN; j++) {
    sum[j] = lsum[j] = cnt[j] = 0;
    for (size_t i = 0; i < RT; i++)
      if (!isnan(R[i * RN + j])) sum[j] += R[i * RN + j], lsum[j] += L[i * RN + j], cnt[j]++;
  }
  check_vec("returns_simple_sum", sum, json_object_get(REF, "returns_simple_sum"), RN, 1e-12);
  check_vec("returns_log_sum", lsum, json_object_get(REF, "returns_log_sum"), RN, 1e-11);
  check_vec("returns_count", cnt, json_object_get(REF, "returns_count"), RN, 0);
  free(L);
  keel_panel_free(p);
}

static void test_reference_means(void **state) {
  (void)state;
  if (!REF) skip();
  double mu[64];
  keel_mean_options mo;
  keel_mean_options_default(&mo);
  mo.periods_per_year = 252;
  keel_cmat X = keel_cmat_view(R, RT, RN);
  struct { keel_mean_kind k; keel_missing m; const char *name; } cases[] = {
      {KEEL_MEAN_ARITHMETIC, KEEL_MISSING_COMMON, "mean_arith_common"},
      {KEEL_MEAN_ARITHMETIC, KEEL_MISSING_PAIRWISE, "mean_arith_pairwise"},
      {KEEL_MEAN_GEOMETRIC, KEEL_MISSING_COMMON, "mean_geometric_common"},
      {KEEL_MEAN_EWMA, KEEL_MISSING_COMMON, "mean_ewma_common"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    mo.kind = cases[c].k;
    mo.missing = cases[c].m;
    mo.halflife = 60;
    assert_ok(CTX, keel_mean(CTX, X, &mo, mu));
    check_vec(cases[c].name, mu, json_object_get(REF, cases[c].name), RN, 1e-11);
  }
}

static void test_reference_covariances(void **state) {
  (void)state;
  if (!REF) skip();
  double *c = malloc(RN * RN * sizeof *c);
  keel_cov_options co;
  keel_cov_options_default(&co);
  co.periods_per_year = 252;
  co.halflife = 60;
  keel_cmat X = keel_cmat_view(R, RT, RN);
  struct { keel_cov_kind k; keel_missing m; const char *name, *shrink; } cases[] = {
      {KEEL_COV_SAMPLE, KEEL_MISSING_COMMON, "cov_sample_common", NULL},
      {KEEL_COV_SAMPLE, KEEL_MISSING_PAIRWISE, "cov_sample_pairwise", NULL},
      {KEEL_COV_EWMA, KEEL_MISSING_COMMON, "cov_ewma_common", NULL},
      {KEEL_COV_SEMI, KEEL_MISSING_COMMON, "cov_semi_common", NULL},
      {KEEL_COV_LW_IDENTITY, KEEL_MISSING_COMMON, "cov_lw_identity", "lw_identity_shrinkage"},
      {KEEL_COV_LW_CONSTCORR, KEEL_MISSING_COMMON, "cov_lw_constcorr", "lw_constcorr_shrinkage"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    keel_cov_info info;
    co.kind = cases[k].k;
    co.missing = cases[k].m;
    assert_ok(CTX, keel_cov(CTX, X, &co, keel_mat_view(c, RN, RN), &info));
    check_mat(cases[k].name, c, json_object_get(REF, cases[k].name), RN, 1e-10);
    if (cases[k].shrink) assert_close(info.shrinkage, json_number_value(json_object_get(REF, cases[k].shrink)), 1e-9, 0);
    if (cases[k].m == KEEL_MISSING_COMMON)
      assert_int_equal(info.nobs, json_integer_value(json_object_get(REF, "common_rows")));
  }
  /* nearest PSD of an indefinite 20 x 20 matrix against NumPy's eigh */
  json_t *A = json_object_get(REF, "indefinite");
  for (size_t i = 0; i < RN; i++)
    for (size_t j = 0; j < RN; j++) c[i * RN + j] = json_number_value(json_array_get(json_array_get(A, i), j));
  keel_psd_report rep;
  assert_ok(CTX, keel_cov_nearest_psd(CTX, keel_mat_view(c, RN, RN), 0, &rep));
  check_mat("indefinite_nearest_psd", c, json_object_get(REF, "indefinite_nearest_psd"), RN, 1e-12);
  assert_int_equal(rep.nclipped, json_integer_value(json_object_get(REF, "indefinite_nclipped")));
  assert_close(rep.min_eigenvalue, json_number_value(json_object_get(REF, "indefinite_min_eigenvalue")), 1e-10, 0);
  assert_close(rep.change, json_number_value(json_object_get(REF, "indefinite_change")), 1e-9, 0);
  free(c);
}

static keel_status oom_body(keel_ctx *ctx, void *arg) {
  (void)arg;
  double r[40], c[16];
  for (int k = 0; k < 40; k++) r[k] = sin(k * 1.3) * 0.01 + (k % 4) * 0.001;
  keel_cov_options co;
  keel_cov_options_default(&co);
  keel_status st = KEEL_OK;
  for (int kind = 0; kind <= KEEL_COV_SEMI && !st; kind++) {
    co.kind = (keel_cov_kind)kind;
    st = keel_cov(ctx, keel_cmat_view(r, 10, 4), &co, keel_mat_view(c, 4, 4), NULL);
  }
  if (!st) st = keel_cov_nearest_psd(ctx, keel_mat_view(c, 4, 4), 0, NULL);
  double mu[4];
  if (!st) st = keel_mean(ctx, keel_cmat_view(r, 10, 4), NULL, mu);
  return st;
}

static void test_oom(void **state) {
  (void)state;
  keel_test_oom_loop(oom_body, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_returns_hand),
      cmocka_unit_test(test_mean_cov_hand),
      cmocka_unit_test(test_more_assets_than_periods),
      cmocka_unit_test(test_nearest_psd_closed_form),
      cmocka_unit_test(test_reference_returns),
      cmocka_unit_test(test_reference_means),
      cmocka_unit_test(test_reference_covariances),
      cmocka_unit_test(test_oom),
  };
  return cmocka_run_group_tests(tests, load_reference, free_reference);
}
