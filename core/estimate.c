/* keel — estimators: returns, expected returns, covariances, PSD repair.
 * Formulas: keel/estimate.h and docs/estimators.md. Shapes are checked
 * before any BLAS or LAPACK call, so their error handlers never run. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "keel/estimate.h"

#define AT(m, i, j) ((m).data[(i) * (m).ld + (j)])

keel_status keel_returns(keel_ctx *ctx, const keel_panel *p, size_t start, size_t end, keel_returns_kind kind,
                         keel_mat out) {
  if (!p) return keeli_error(ctx, KEEL_EINVAL, "returns: panel is NULL");
  const size_t nd = keel_panel_ndates(p), na = keel_panel_nassets(p);
  if (end == 0) end = nd;
  if (end > nd || start + 2 > end)
    return keeli_error(ctx, KEEL_EINVAL, "returns: rows [%zu, %zu) of %zu give no return", start, end, nd);
  if (kind != KEEL_RETURNS_SIMPLE && kind != KEEL_RETURNS_LOG)
    return keeli_error(ctx, KEEL_EINVAL, "returns: unknown kind %d", (int)kind);
  if (!out.data || out.rows != end - start - 1 || out.cols != na || out.ld < na)
    return keeli_error(ctx, KEEL_EINVAL, "returns: output must be %zu x %zu (got %zu x %zu, ld %zu)",
                       end - start - 1, na, out.rows, out.cols, out.ld);
  const double *px = keel_panel_prices(p);
  for (size_t j = 0; j < na; j++) {
    double prev = NAN;
    for (size_t i = 0; i < start; i++)
      if (!isnan(px[i * na + j])) prev = px[i * na + j];
    if (!isnan(px[start * na + j])) prev = px[start * na + j];
    for (size_t i = start + 1; i < end; i++) {
      double v = px[i * na + j], r = NAN;
      if (!isnan(v) && !isnan(prev)) r = kind == KEEL_RETURNS_LOG ? log(v / prev) : v / prev - 1;
      AT(out, i - start - 1, j) = r;
      if (!isnan(v)) prev = v;
    }
  }
  return KEEL_OK;
}

/* Checks a returns matrix: shape, no infinities. */
static keel_status check_returns(keel_ctx *ctx, keel_cmat r, const char *who) {
  if (!r.data || r.rows == 0 || r.cols == 0 || r.ld < r.cols)
    return keeli_error(ctx, KEEL_EINVAL, "%s: returns must be a non-empty matrix (got %zu x %zu, ld %zu)", who,
                       r.rows, r.cols, r.ld);
  for (size_t i = 0; i < r.rows; i++)
    for (size_t j = 0; j < r.cols; j++)
      if (isinf(AT(r, i, j)))
        return keeli_error(ctx, KEEL_EINVAL, "%s: return (%zu, %zu) is infinite", who, i, j);
  return KEEL_OK;
}

/* Rows where every column has a value; returns their number, fills idx. */
static size_t complete_rows(keel_cmat r, size_t *idx) {
  size_t m = 0;
  for (size_t i = 0; i < r.rows; i++) {
    size_t j = 0;
    while (j < r.cols && !isnan(AT(r, i, j))) j++;
    if (j == r.cols) idx[m++] = i;
  }
  return m;
}

static double decay_of(double halflife) { return exp(-log(2.0) / halflife); }

void keel_mean_options_default(keel_mean_options *o) {
  memset(o, 0, sizeof *o);
  o->kind = KEEL_MEAN_ARITHMETIC;
  o->halflife = 60;
}

keel_status keel_mean(keel_ctx *ctx, keel_cmat r, const keel_mean_options *o, double *mu) {
  keel_mean_options d;
  if (!o) keel_mean_options_default(&d), o = &d;
  keel_status st = check_returns(ctx, r, "mean");
  if (st) return st;
  if (!mu) return keeli_error(ctx, KEEL_EINVAL, "mean: mu is NULL");
  if (o->kind == KEEL_MEAN_EWMA && !(o->halflife > 0 && isfinite(o->halflife)))
    return keeli_error(ctx, KEEL_EINVAL, "mean: EWMA half-life %g must be > 0", o->halflife);
  if ((unsigned)o->kind > KEEL_MEAN_EWMA) return keeli_error(ctx, KEEL_EINVAL, "mean: unknown kind");
  if (!isfinite(o->periods_per_year) || o->periods_per_year < 0)
    return keeli_error(ctx, KEEL_EINVAL, "mean: periods_per_year must be >= 0");
  size_t *rows = keeli_alloc_array(ctx, r.rows, sizeof *rows);
  if (!rows) return KEEL_ENOMEM;
  size_t nrows = r.rows;
  int common = o->missing == KEEL_MISSING_COMMON;
  if (common) nrows = complete_rows(r, rows);
  const double P = o->periods_per_year > 0 ? o->periods_per_year : 1, q = decay_of(o->halflife);
  for (size_t j = 0; j < r.cols && !st; j++) {
    double s = 0, ws = 0, w = 1;
    size_t n = 0;
    /* newest first, so EWMA weights are 1, q, q^2, ... */
    for (size_t k = nrows; k-- > 0;) {
      size_t i = common ? rows[k] : k;
      double x = AT(r, i, j);
      if (isnan(x)) continue;
      if (o->kind == KEEL_MEAN_GEOMETRIC) {
        if (!(x > -1)) {
          st = keeli_error(ctx, KEEL_EINVAL, "mean: return %g of asset %zu at row %zu is <= -1 (geometric mean)",
                           x, j, i);
          break;
        }
        s += log1p(x);
      } else if (o->kind == KEEL_MEAN_EWMA) {
        s += w * x;
        ws += w;
        w *= q;
      } else {
        s += x;
      }
      n++;
    }
    if (st) break;
    if (n == 0) {
      st = keeli_error(ctx, KEEL_EINVAL, "mean: asset %zu has no return%s", j, common ? " in the common window" : "");
      break;
    }
    double m;
    if (o->kind == KEEL_MEAN_GEOMETRIC)
      m = expm1(s / (double)n * P); /* compounded over P periods */
    else if (o->kind == KEEL_MEAN_EWMA)
      m = s / ws * P;
    else
      m = s / (double)n * P;
    mu[j] = m;
  }
  keeli_free(ctx, rows);
  return st;
}

void keel_cov_options_default(keel_cov_options *o) {
  memset(o, 0, sizeof *o);
  o->kind = KEEL_COV_SAMPLE;
  o->halflife = 60;
}

/* Pairwise sample covariance or semicovariance over rows where both
 * columns have values. */
static keel_status cov_pairwise(keel_ctx *ctx, keel_cmat r, const keel_cov_options *o, keel_mat c, size_t *minobs) {
  const size_t n = r.cols;
  *minobs = SIZE_MAX;
  for (size_t a = 0; a < n; a++)
    for (size_t b = 0; b <= a; b++) {
      double ma = 0, mb = 0;
      size_t m = 0;
      if (o->kind == KEEL_COV_SAMPLE) {
        for (size_t i = 0; i < r.rows; i++) {
          double x = AT(r, i, a), y = AT(r, i, b);
          if (isnan(x) || isnan(y)) continue;
          m++;
          ma += (x - ma) / (double)m;
          mb += (y - mb) / (double)m;
        }
      }
      double s = 0;
      size_t m2 = 0;
      for (size_t i = 0; i < r.rows; i++) {
        double x = AT(r, i, a), y = AT(r, i, b);
        if (isnan(x) || isnan(y)) continue;
        m2++;
        if (o->kind == KEEL_COV_SAMPLE)
          s += (x - ma) * (y - mb);
        else
          s += fmin(x - o->benchmark, 0) * fmin(y - o->benchmark, 0);
      }
      size_t need = o->kind == KEEL_COV_SAMPLE ? 2 : 1;
      if (m2 < need)
        return keeli_error(ctx, KEEL_EINVAL, "cov: assets %zu and %zu have %zu common return(s); need %zu", b, a, m2,
                           need);
      if (m2 < *minobs) *minobs = m2;
      double v = s / (double)(o->kind == KEEL_COV_SAMPLE ? m2 - 1 : m2);
      AT(c, a, b) = AT(c, b, a) = v;
    }
  return KEEL_OK;
}

/* Ledoit-Wolf intensity towards scaled identity (Ledoit & Wolf 2004,
 * J. Multivariate Analysis 88) on centred X (T x n), S = X'X/T. */
static double lw_identity(const double *X, size_t T, size_t n, const double *S, double *mu_out) {
  double tr = 0, fro2 = 0, b = 0;
  for (size_t i = 0; i < n; i++) tr += S[i * n + i];
  for (size_t k = 0; k < n * n; k++) fro2 += S[k] * S[k];
  for (size_t t = 0; t < T; t++) {
    double q = 0;
    for (size_t i = 0; i < n; i++) q += X[t * n + i] * X[t * n + i];
    b += q * q;
  }
  double mu = tr / (double)n;
  double d2 = (fro2 - 2 * mu * tr + (double)n * mu * mu) / (double)n; /* ||S - mu I||^2 / n */
  double b2 = (b / (double)T - fro2) / ((double)n * (double)T);         /* (1/T^2) sum ||x x' - S||^2 / n */
  if (b2 > d2) b2 = d2;
  *mu_out = mu;
  return d2 > 0 ? b2 / d2 : 0;
}

/* Ledoit-Wolf intensity towards constant correlation (Ledoit & Wolf,
 * "Honey, I shrunk the sample covariance matrix", J. Portfolio Management
 * 30(4), 2004) on centred X, S = X'X/T; fills the target F. */
static keel_status lw_constcorr(keel_ctx *ctx, const double *X, size_t T, size_t n, const double *S, double *F,
                                double *delta) {
  double *Y = keeli_alloc_array(ctx, T, n * sizeof *Y);   /* X^2 */
  double *Z = keeli_alloc_array(ctx, T, n * sizeof *Z);   /* X^3 */
  double *Pm = keeli_alloc_array(ctx, n, n * sizeof *Pm); /* Y'Y / T */
  double *Q = keeli_alloc_array(ctx, n, n * sizeof *Q);   /* Z'X / T */
  keel_status st = KEEL_OK;
  if (!Y || !Z || !Pm || !Q) {
    st = KEEL_ENOMEM;
    goto done;
  }
  for (size_t k = 0; k < T * n; k++) {
    Y[k] = X[k] * X[k];
    Z[k] = Y[k] * X[k];
  }
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n, (int)T, 1.0 / (double)T, Y, (int)n, Y,
              (int)n, 0, Pm, (int)n);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n, (int)T, 1.0 / (double)T, Z, (int)n, X,
              (int)n, 0, Q, (int)n);
  double rsum = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++)
      if (i != j) rsum += S[i * n + j] / sqrt(S[i * n + i] * S[j * n + j]);
  double rbar = n > 1 ? rsum / ((double)n * (double)(n - 1)) : 0;
  double pi = 0, rho = 0, gamma = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      double sij = S[i * n + j], sii = S[i * n + i], sjj = S[j * n + j];
      double pij = Pm[i * n + j] - sij * sij; /* pi_ij */
      pi += pij;
      F[i * n + j] = i == j ? sii : rbar * sqrt(sii * sjj);
      if (i == j) {
        rho += pij;
      } else {
        double th_ii = Q[i * n + j] - sii * sij; /* theta_ii,ij */
        double th_jj = Q[j * n + i] - sjj * sij; /* theta_jj,ij */
        rho += rbar / 2 * (sqrt(sjj / sii) * th_ii + sqrt(sii / sjj) * th_jj);
      }
      double g = F[i * n + j] - sij;
      gamma += g * g;
    }
  double kappa = gamma > 0 ? (pi - rho) / gamma : 0;
  double d = kappa / (double)T;
  *delta = d < 0 ? 0 : d > 1 ? 1 : d;
done:
  keeli_free(ctx, Y);
  keeli_free(ctx, Z);
  keeli_free(ctx, Pm);
  keeli_free(ctx, Q);
  return st;
}

keel_status keel_cov(keel_ctx *ctx, keel_cmat r, const keel_cov_options *o, keel_mat c, keel_cov_info *info) {
  keel_cov_options d;
  if (!o) keel_cov_options_default(&d), o = &d;
  keel_status st = check_returns(ctx, r, "cov");
  if (st) return st;
  const size_t n = r.cols;
  if (!c.data || c.rows != n || c.cols != n || c.ld < n)
    return keeli_error(ctx, KEEL_EINVAL, "cov: output must be %zu x %zu", n, n);
  if ((unsigned)o->kind > KEEL_COV_SEMI) return keeli_error(ctx, KEEL_EINVAL, "cov: unknown kind");
  if (o->kind == KEEL_COV_EWMA && !(o->halflife > 0 && isfinite(o->halflife)))
    return keeli_error(ctx, KEEL_EINVAL, "cov: EWMA half-life %g must be > 0", o->halflife);
  if (!isfinite(o->periods_per_year) || o->periods_per_year < 0 || !isfinite(o->benchmark))
    return keeli_error(ctx, KEEL_EINVAL, "cov: periods_per_year must be >= 0 and the benchmark finite");
  if (o->missing == KEEL_MISSING_PAIRWISE && o->kind != KEEL_COV_SAMPLE && o->kind != KEEL_COV_SEMI)
    return keeli_error(ctx, KEEL_EINVAL, "cov: pairwise missing data is for sample and semi covariance only");
  if (n > 46340) return keeli_error(ctx, KEEL_EINVAL, "cov: %zu assets is too many for a dense matrix", n);
  const double P = o->periods_per_year > 0 ? o->periods_per_year : 1;
  keel_cov_info inf = {NAN, 0};

  if (o->missing == KEEL_MISSING_PAIRWISE) {
    st = cov_pairwise(ctx, r, o, c, &inf.nobs);
    if (st) return st;
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) AT(c, i, j) *= P;
    if (info) *info = inf;
    return KEEL_OK;
  }

  size_t *rows = keeli_alloc_array(ctx, r.rows, sizeof *rows);
  if (!rows) return KEEL_ENOMEM;
  const size_t T = complete_rows(r, rows);
  size_t need = o->kind == KEEL_COV_SEMI ? 1 : 2;
  if (T < need || T > (size_t)INT32_MAX) {
    keeli_free(ctx, rows);
    return keeli_error(ctx, KEEL_EINVAL, "cov: %zu periods with every return present; need at least %zu", T, need);
  }
  inf.nobs = T;
  double *X = keeli_alloc_array(ctx, T, n * sizeof *X), *w = NULL, *S = NULL, *F = NULL;
  if (!X) {
    keeli_free(ctx, rows);
    return KEEL_ENOMEM;
  }
  /* weights: equal, or EWMA newest = 1 */
  if (o->kind == KEEL_COV_EWMA) {
    w = keeli_alloc_array(ctx, T, sizeof *w);
    if (!w) {
      st = KEEL_ENOMEM;
      goto done;
    }
    double q = decay_of(o->halflife), v = 1;
    for (size_t k = T; k-- > 0;) w[k] = v, v *= q;
  }
  /* centred (or, for semi, below-benchmark) data in X */
  double wsum = 0;
  for (size_t k = 0; k < T; k++) wsum += w ? w[k] : 1;
  for (size_t j = 0; j < n; j++) {
    double m = 0;
    if (o->kind != KEEL_COV_SEMI) {
      for (size_t k = 0; k < T; k++) m += (w ? w[k] : 1) * AT(r, rows[k], j);
      m /= wsum;
    }
    for (size_t k = 0; k < T; k++) {
      double x = AT(r, rows[k], j);
      X[k * n + j] = o->kind == KEEL_COV_SEMI ? fmin(x - o->benchmark, 0) : x - m;
    }
  }
  if (w)
    for (size_t k = 0; k < T; k++)
      for (size_t j = 0; j < n; j++) X[k * n + j] *= sqrt(w[k]);
  double div = o->kind == KEEL_COV_SAMPLE ? (double)(T - 1)
               : o->kind == KEEL_COV_EWMA ? wsum
                                          : (double)T; /* semi and Ledoit-Wolf: 1/T */
  S = keeli_alloc_array(ctx, n, n * sizeof *S);
  if (!S) {
    st = KEEL_ENOMEM;
    goto done;
  }
  cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)n, (int)T, 1.0 / div, X, (int)n, 0, S, (int)n);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < i; j++) S[j * n + i] = S[i * n + j];

  if (o->kind == KEEL_COV_LW_IDENTITY) {
    double mu, s = lw_identity(X, T, n, S, &mu);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) S[i * n + j] = (1 - s) * S[i * n + j] + (i == j ? s * mu : 0);
    inf.shrinkage = s;
  } else if (o->kind == KEEL_COV_LW_CONSTCORR) {
    for (size_t i = 0; i < n; i++)
      if (!(S[i * n + i] > 0)) {
        st = keeli_error(ctx, KEEL_EINVAL, "cov: asset %zu has zero variance; constant-correlation shrinkage needs "
                                           "every variance > 0", i);
        goto done;
      }
    F = keeli_alloc_array(ctx, n, n * sizeof *F);
    double s;
    if (!F) {
      st = KEEL_ENOMEM;
      goto done;
    }
    if ((st = lw_constcorr(ctx, X, T, n, S, F, &s))) goto done;
    for (size_t k = 0; k < n * n; k++) S[k] = s * F[k] + (1 - s) * S[k];
    inf.shrinkage = s;
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) AT(c, i, j) = S[i * n + j] * P;
  if (info) *info = inf;
done:
  keeli_free(ctx, rows);
  keeli_free(ctx, X);
  keeli_free(ctx, w);
  keeli_free(ctx, S);
  keeli_free(ctx, F);
  return st;
}

/* Eigenpairs il..iu (1-based, ascending) of the symmetric m x m matrix A
 * (lower triangle read, destroyed) by LAPACK dsyevr, with the workspace
 * from the context (no hidden allocation in LAPACKE): ev (iu - il + 1)
 * ascending, Z (m x (iu - il + 1), column-major) the eigenvectors. */
static keel_status sym_eigen(keel_ctx *ctx, double *A, size_t m, size_t il, size_t iu, double *ev, double *Z,
                             const char *who) {
  const lapack_int M = (lapack_int)m;
  const size_t want = iu - il + 1;
  lapack_int *isuppz = keeli_alloc_array(ctx, 2 * want, sizeof *isuppz), *iwork = NULL;
  double *work = NULL, wq;
  lapack_int iwq, got = 0;
  const char range = il == 1 && iu == m ? 'A' : 'I';
  keel_status st = KEEL_OK;
  if (!isuppz) return KEEL_ENOMEM;
  lapack_int info = LAPACKE_dsyevr_work(LAPACK_COL_MAJOR, 'V', range, 'L', M, A, M, 0, 0, (lapack_int)il,
                                        (lapack_int)iu, 0, &got, ev, Z, M, isuppz, &wq, -1, &iwq, -1);
  if (info != 0) {
    st = keeli_error(ctx, KEEL_ENUMERIC, "%s: dsyevr workspace query failed (info %d)", who, (int)info);
    goto done;
  }
  lapack_int lwork = (lapack_int)wq, liwork = iwq;
  work = keeli_alloc_array(ctx, (size_t)lwork, sizeof *work);
  iwork = keeli_alloc_array(ctx, (size_t)liwork, sizeof *iwork);
  if (!work || !iwork) {
    st = KEEL_ENOMEM;
    goto done;
  }
  info = LAPACKE_dsyevr_work(LAPACK_COL_MAJOR, 'V', range, 'L', M, A, M, 0, 0, (lapack_int)il, (lapack_int)iu, 0,
                             &got, ev, Z, M, isuppz, work, lwork, iwork, liwork);
  if (info != 0 || got != (lapack_int)want)
    st = keeli_error(ctx, KEEL_ENUMERIC, "%s: eigendecomposition failed (info %d)", who, (int)info);
done:
  keeli_free(ctx, isuppz);
  keeli_free(ctx, work);
  keeli_free(ctx, iwork);
  return st;
}

keel_status keel_cov_nearest_psd(keel_ctx *ctx, keel_mat a, double floor, keel_psd_report *rep) {
  const size_t n = a.rows;
  if (!a.data || n == 0 || a.cols != n || a.ld < n)
    return keeli_error(ctx, KEEL_EINVAL, "nearest_psd: need a square matrix (got %zu x %zu)", a.rows, a.cols);
  if (n > 46340) return keeli_error(ctx, KEEL_EINVAL, "nearest_psd: %zu is too large", n);
  if (!(floor >= 0 && floor < 1)) return keeli_error(ctx, KEEL_EINVAL, "nearest_psd: floor must be in [0, 1)");
  double norm = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      double v = AT(a, i, j);
      if (!isfinite(v)) return keeli_error(ctx, KEEL_EINVAL, "nearest_psd: element (%zu, %zu) is not finite", i, j);
      norm += v * v;
    }
  norm = sqrt(norm);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < i; j++)
      if (fabs(AT(a, i, j) - AT(a, j, i)) > 1e-12 * norm)
        return keeli_error(ctx, KEEL_EINVAL, "nearest_psd: matrix is not symmetric at (%zu, %zu)", i, j);

  /* dsyevr on a copy (the matrix is symmetric, so row- and column-major
   * agree) */
  double *A = keeli_alloc_array(ctx, n, n * sizeof *A), *Zm = keeli_alloc_array(ctx, n, n * sizeof *Zm);
  double *ev = keeli_alloc_array(ctx, n, sizeof *ev);
  keel_status st = KEEL_OK;
  if (!A || !Zm || !ev) {
    st = KEEL_ENOMEM;
    goto done;
  }
  const lapack_int N = (lapack_int)n;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) A[i * n + j] = AT(a, i, j);
  if ((st = sym_eigen(ctx, A, n, 1, n, ev, Zm, "nearest_psd"))) goto done;
  double emax = fmax(fabs(ev[0]), fabs(ev[n - 1])), lo = floor * emax;
  keel_psd_report r = {0, ev[0], ev[n - 1], NAN, 0};
  for (size_t k = 0; k < n; k++)
    if (ev[k] < lo) ev[k] = lo, r.nclipped++;
  if (r.nclipped) {
    /* A' = Z diag(ev) Z' = (Z D^1/2)(Z D^1/2)', Z column-major: column k
     * holds eigenvector k */
    for (size_t k = 0; k < n; k++) {
      double s = sqrt(ev[k]);
      for (size_t i = 0; i < n; i++) Zm[k * n + i] *= s;
    }
    cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, N, N, 1.0, Zm, N, 0, A, N);
    double diff = 0;
    for (size_t j = 0; j < n; j++)
      for (size_t i = j; i < n; i++) {
        double v = A[j * n + i], dv = v - AT(a, i, j);
        diff += (i == j ? 1 : 2) * dv * dv;
        AT(a, i, j) = AT(a, j, i) = v;
      }
    r.change = norm > 0 ? sqrt(diff) / norm : 0;
  }
  r.condition = ev[0] > 0 ? ev[n - 1] / ev[0] : INFINITY;
  if (rep) *rep = r;
done:
  keeli_free(ctx, A);
  keeli_free(ctx, Zm);
  keeli_free(ctx, ev);
  return st;
}

keel_status keel_factor_pca(keel_ctx *ctx, keel_cmat r, size_t k, double periods_per_year, keel_mat B, keel_mat F,
                            double *d, keel_pca_info *info) {
  keel_status st = check_returns(ctx, r, "factor_pca");
  if (st) return st;
  const size_t n = r.cols;
  if (!isfinite(periods_per_year) || periods_per_year < 0)
    return keeli_error(ctx, KEEL_EINVAL, "factor_pca: periods_per_year must be >= 0");
  if (k == 0 || k > n) return keeli_error(ctx, KEEL_EINVAL, "factor_pca: %zu factors for %zu assets", k, n);
  if (!B.data || B.rows != n || B.cols != k || B.ld < k || !F.data || F.rows != k || F.cols != k || F.ld < k || !d)
    return keeli_error(ctx, KEEL_EINVAL, "factor_pca: outputs must be B %zu x %zu, F %zu x %zu and d %zu", n, k, k,
                       k, n);
  if (n > 46340) return keeli_error(ctx, KEEL_EINVAL, "factor_pca: %zu assets is too many", n);
  const double P = periods_per_year > 0 ? periods_per_year : 1;

  size_t *rows = keeli_alloc_array(ctx, r.rows, sizeof *rows);
  if (!rows) return KEEL_ENOMEM;
  const size_t T = complete_rows(r, rows);
  if (T < 2 || k > T - 1 || T > 46340) {
    keeli_free(ctx, rows);
    return keeli_error(ctx, KEEL_EINVAL,
                       "factor_pca: %zu periods with every return present give at most %zu factors; %zu asked", T,
                       T > 1 ? T - 1 : 0, k);
  }
  /* centred data X (T x n), scaled so that X'X is the sample covariance */
  const size_t m = n <= T ? n : T; /* order of the eigenproblem */
  double *X = keeli_alloc_array(ctx, T, n * sizeof *X), *A = keeli_alloc_array(ctx, m, m * sizeof *A);
  double *Z = keeli_alloc_array(ctx, m, k * sizeof *Z), *ev = keeli_alloc_array(ctx, k, sizeof *ev);
  if (!X || !A || !Z || !ev) {
    st = KEEL_ENOMEM;
    goto done;
  }
  const double sc = 1 / sqrt((double)(T - 1));
  for (size_t j = 0; j < n; j++) {
    double mean = 0;
    for (size_t t = 0; t < T; t++) mean += AT(r, rows[t], j);
    mean /= (double)T;
    for (size_t t = 0; t < T; t++) X[t * n + j] = (AT(r, rows[t], j) - mean) * sc;
  }
  /* S = X'X (n x n) when n <= T, else the Gram matrix X X' (T x T): both
   * have the same non-zero eigenvalues, and an eigenvector u of X X' gives
   * the eigenvector X'u / sqrt(lambda) of S. The row-major upper triangle
   * is the column-major lower one sym_eigen reads. */
  if (n <= T)
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)n, (int)T, 1.0, X, (int)n, 0, A, (int)n);
  else
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)T, (int)n, 1.0, X, (int)n, 0, A, (int)T);
  if ((st = sym_eigen(ctx, A, m, m - k + 1, m, ev, Z, "factor_pca"))) goto done;
  /* ev ascending: the largest is ev[k - 1] */
  double total = 0;
  for (size_t j = 0; j < n; j++) {
    double v = 0;
    for (size_t t = 0; t < T; t++) v += X[t * n + j] * X[t * n + j];
    d[j] = v;
    total += v;
  }
  const double top = ev[k - 1];
  if (!(top > 0) || !(ev[0] > 1e-12 * top)) {
    st = keeli_error(ctx, KEEL_EINVAL,
                     "factor_pca: the returns carry fewer than %zu independent directions (eigenvalue %zu is %g of "
                     "the largest)",
                     k, k, top > 0 ? ev[0] / top : 0.0);
    goto done;
  }
  double explained = 0;
  for (size_t c = 0; c < k; c++) {
    size_t src = k - 1 - c; /* descending order */
    double lam = ev[src], *u = Z + src * m;
    if (n <= T) {
      for (size_t i = 0; i < n; i++) AT(B, i, c) = u[i];
    } else {
      double s = 1 / sqrt(lam);
      for (size_t i = 0; i < n; i++) {
        double v = 0;
        for (size_t t = 0; t < T; t++) v += X[t * n + i] * u[t];
        AT(B, i, c) = v * s;
      }
    }
    explained += lam;
    for (size_t c2 = 0; c2 < k; c2++) AT(F, c, c2) = c == c2 ? lam * P : 0;
  }
  /* sign convention: each column of B sums to >= 0 (its first non-zero
   * entry positive on a tie), so results are deterministic */
  for (size_t c = 0; c < k; c++) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += AT(B, i, c);
    size_t i0 = 0;
    while (s == 0 && i0 < n) s = AT(B, i0++, c);
    if (s < 0)
      for (size_t i = 0; i < n; i++) AT(B, i, c) = -AT(B, i, c);
  }
  /* specific variances: the sample variance the k factors leave */
  for (size_t i = 0; i < n; i++) {
    double f = 0;
    for (size_t c = 0; c < k; c++) f += AT(B, i, c) * AT(B, i, c) * AT(F, c, c) / P;
    d[i] = fmax(d[i] - f, 0) * P;
  }
  if (info) {
    info->explained = total > 0 ? explained / total : NAN;
    info->nobs = T;
  }
done:
  keeli_free(ctx, rows);
  keeli_free(ctx, X);
  keeli_free(ctx, A);
  keeli_free(ctx, Z);
  keeli_free(ctx, ev);
  return st;
}

void keeli_window_returns(const keel_panel *p, const size_t *cols, size_t m, size_t lo, size_t hi, double *R,
                          size_t *cnt) {
  const size_t np = keel_panel_nassets(p);
  const double *px = keel_panel_prices(p);
  for (size_t k = 0; k < m; k++) {
    const size_t c = cols[k];
    double prev = px[lo * np + c];
    size_t got = 0;
    for (size_t t = lo + 1; t <= hi; t++) {
      double v = px[t * np + c], r = NAN;
      if (!isnan(v) && !isnan(prev)) r = v / prev - 1, got++;
      R[(t - lo - 1) * m + k] = r;
      if (!isnan(v)) prev = v;
    }
    if (cnt) cnt[k] = got;
  }
}
