/* Tests of the estimators (core/estimate.c). */
#include <jansson.h>
#include <lapacke.h>
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

/* ---- principal-component factor model ----------------------------------- */

/* Seeded returns with three planted factors plus noise, T x N (N <= 400). */
static void planted_returns(double *r, size_t T, size_t N, uint32_t seed) {
  uint32_t s = seed;
  double load[3 * 400];
  for (size_t k = 0; k < 3 * N; k++) load[k] = keel_test_lcg(&s) * 2;
  for (size_t t = 0; t < T; t++) {
    double f[3] = {keel_test_lcg(&s) * 0.04, keel_test_lcg(&s) * 0.02, keel_test_lcg(&s) * 0.01};
    for (size_t i = 0; i < N; i++)
      r[t * N + i] = 0.0005 + load[i] * f[0] + load[N + i] * f[1] + load[2 * N + i] * f[2] +
                     keel_test_lcg(&s) * 0.005;
  }
}

/* The model against an eigendecomposition of the sample covariance by a
 * different LAPACK driver (dsyev, QR iteration on the whole matrix):
 * eigenvalues to 1e-9 relative, eigenvectors (up to sign) to 1e-9, and
 * every variance kept to 1e-12 of the largest. */
static void check_pca_against_dsyev(size_t T, size_t N, size_t K) {
  double *r = malloc(T * N * sizeof *r), *S = malloc(N * N * sizeof *S), *ev = malloc(N * sizeof *ev);
  double *B = malloc(N * K * sizeof *B), F[16 * 16], *d = malloc(N * sizeof *d), *Sd = malloc(N * N * sizeof *Sd);
  assert_true(K <= 16);
  planted_returns(r, T, N, 7 + (uint32_t)T);
  keel_cov_options co;
  keel_cov_options_default(&co);
  co.periods_per_year = 252;
  assert_ok(CTX, keel_cov(CTX, keel_cmat_view(r, T, N), &co, keel_mat_view(S, N, N), NULL));
  double vmax = 0;
  for (size_t i = 0; i < N; i++) vmax = fmax(vmax, S[i * N + i]);
  keel_pca_info info;
  assert_ok(CTX, keel_factor_pca(CTX, keel_cmat_view(r, T, N), K, 252, keel_mat_view(B, N, K),
                                 keel_mat_view(F, K, K), d, &info));
  assert_int_equal(info.nobs, T);
  memcpy(Sd, S, N * N * sizeof *S);
  assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)N, S, (lapack_int)N, ev), 0);
  double trace = 0, topk = 0;
  for (size_t i = 0; i < N; i++) trace += Sd[i * N + i];
  for (size_t c = 0; c < K; c++) {
    size_t e = N - 1 - c; /* dsyev: ascending; column e of S holds the vector */
    topk += ev[e];
    assert_close(F[c * K + c], ev[e], 1e-9, 0);
    for (size_t c2 = 0; c2 < K; c2++)
      if (c2 != c) assert_true(F[c * K + c2] == 0);
    double dot = 0, sum = 0;
    for (size_t i = 0; i < N; i++) dot += B[i * K + c] * S[i * N + e], sum += B[i * K + c];
    assert_true(sum >= 0);
    double sg = dot < 0 ? -1 : 1;
    for (size_t i = 0; i < N; i++) assert_close(B[i * K + c], sg * S[i * N + e], 0, 1e-9);
  }
  assert_close(info.explained, topk / trace, 1e-9, 0);
  /* the model keeps every variance: (B F B')_ii + d_i = S_ii */
  for (size_t i = 0; i < N; i++) {
    double v = d[i];
    assert_true(d[i] >= 0);
    for (size_t c = 0; c < K; c++) v += B[i * K + c] * B[i * K + c] * F[c * K + c];
    assert_close(v, Sd[i * N + i], 0, 1e-12 * vmax);
  }
  free(r), free(S), free(ev), free(B), free(d), free(Sd);
}

static void test_pca_more_periods_than_assets(void **state) {
  (void)state;
  check_pca_against_dsyev(300, 40, 5);
}

/* Fewer periods than assets: the Gram-matrix route, S never formed. */
static void test_pca_more_assets_than_periods(void **state) {
  (void)state;
  check_pca_against_dsyev(60, 400, 4);
}

/* All factors: the model is the sample covariance itself (d = 0). */
static void test_pca_full_rank_and_errors(void **state) {
  (void)state;
  enum { T = 30, N = 6 };
  double r[(T + 1) * N], S[N * N], B[N * N], F[N * N], d[N];
  planted_returns(r, T, N, 3);
  keel_cov_options co;
  keel_cov_options_default(&co);
  assert_ok(CTX, keel_cov(CTX, keel_cmat_view(r, T, N), &co, keel_mat_view(S, N, N), NULL));
  keel_pca_info info;
  assert_ok(CTX, keel_factor_pca(CTX, keel_cmat_view(r, T, N), N, 0, keel_mat_view(B, N, N), keel_mat_view(F, N, N),
                                 d, &info));
  assert_close(info.explained, 1, 1e-12, 0);
  for (size_t i = 0; i < N; i++) {
    assert_close(d[i], 0, 0, 1e-15);
    for (size_t j = 0; j < N; j++) {
      double v = i == j ? d[i] : 0;
      for (size_t c = 0; c < N; c++) v += B[i * N + c] * F[c * N + c] * B[j * N + c];
      assert_close(v, S[i * N + j], 0, 1e-12 * S[0]);
    }
  }
  /* a period with a missing return is left out (common window) */
  double B2[N * 2], F2[2 * 2], d2[N];
  memcpy(r + T * N, r, N * sizeof *r);
  r[T * N + 2] = NAN;
  assert_ok(CTX, keel_factor_pca(CTX, keel_cmat_view(r, T + 1, N), 2, 0, keel_mat_view(B2, N, 2),
                                 keel_mat_view(F2, 2, 2), d2, &info));
  assert_int_equal(info.nobs, T);
  assert_close(F2[0], F[0], 1e-12, 0);

  assert_status(CTX, keel_factor_pca(CTX, keel_cmat_view(r, T, N), 0, 0, keel_mat_view(B, N, 0),
                                     keel_mat_view(F, 0, 0), d, NULL),
                KEEL_EINVAL);
  assert_errmsg(CTX, "0 factors for 6 assets");
  assert_status(CTX, keel_factor_pca(CTX, keel_cmat_view(r, 4, N), 4, 0, keel_mat_view(B, N, 4),
                                     keel_mat_view(F, 4, 4), d, NULL),
                KEEL_EINVAL);
  assert_errmsg(CTX, "4 periods with every return present give at most 3 factors; 4 asked");
  assert_status(CTX, keel_factor_pca(CTX, keel_cmat_view(r, T, N), 2, 0, keel_mat_view(B, N, 3),
                                     keel_mat_view(F, 2, 2), d, NULL),
                KEEL_EINVAL);
  assert_errmsg(CTX, "outputs must be B 6 x 2");
  /* two identical assets: only N - 1 directions */
  for (size_t t = 0; t < T; t++) r[t * N + 5] = r[t * N + 4];
  assert_status(CTX, keel_factor_pca(CTX, keel_cmat_view(r, T, N), N, 0, keel_mat_view(B, N, N),
                                     keel_mat_view(F, N, N), d, NULL),
                KEEL_EINVAL);
  assert_errmsg(CTX, "fewer than 6 independent directions");
  r[3] = INFINITY;
  assert_status(CTX, keel_factor_pca(CTX, keel_cmat_view(r, T, N), 2, 0, keel_mat_view(B, N, 2),
                                     keel_mat_view(F, 2, 2), d, NULL),
                KEEL_EINVAL);
  assert_errmsg(CTX, "is infinite");
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
  double B[8], F[4], d[4];
  const size_t periods[2] = {10, 3}; /* the covariance and the Gram route */
  for (int t = 0; t < 2 && !st; t++)
    st = keel_factor_pca(ctx, keel_cmat_view(r, periods[t], 4), 2, 0, keel_mat_view(B, 4, 2),
                         keel_mat_view(F, 2, 2), d, NULL);
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
      cmocka_unit_test(test_pca_more_periods_than_assets),
      cmocka_unit_test(test_pca_more_assets_than_periods),
      cmocka_unit_test(test_pca_full_rank_and_errors),
      cmocka_unit_test(test_oom),
  };
  return cmocka_run_group_tests(tests, load_reference, free_reference);
}
