/* keel — dense convex QP by a primal-dual interior-point method with
 * Mehrotra's predictor-corrector (Mehrotra 1992; Nocedal & Wright,
 * "Numerical Optimization", 2nd ed., section 16.6). Notation and the
 * reduced Newton system: docs/qp.md. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "keel/qp.h"

#define AT(M, i, j) ((M).data[(i) * (M).ld + (j)])
#define STEP_FRACTION 0.99
#define REFINE_STEPS 3

struct keel_qp {
  keeli_heap heap;
  size_t n, p, m;
  /* iterates */
  double *x, *y, *z, *s, *zl, *sl, *zu, *su;
  /* directions and affine products */
  double *dx, *dy, *dz, *ds, *dzl, *dsl, *dzu, *dsu;
  double *cs, *cl, *cu;
  /* residuals and work vectors */
  double *rd, *rp, *rg, *rl, *ru, *r1, *r2, *t, *e1, *e2, *wm, *wn, *ddx, *ddy, *ef;
  unsigned char *hasl, *hasu;
  double *K, *Kc, *KA, *S, *Gs;
};

const char *keel_qp_status_name(keel_qp_status s) {
  switch (s) {
    case KEEL_QP_OPTIMAL: return "optimal";
    case KEEL_QP_PRIMAL_INFEASIBLE: return "primal infeasible";
    case KEEL_QP_DUAL_INFEASIBLE: return "dual infeasible (unbounded)";
    case KEEL_QP_MAX_ITER: return "iteration limit";
    case KEEL_QP_NUMERICAL: return "numerical failure";
  }
  return "unknown";
}

void keel_qp_settings_default(keel_qp_settings *s) {
  s->eps_abs = 1e-9;
  s->eps_rel = 1e-9;
  s->eps_gap = 1e-13;
  s->eps_infeas = 1e-9;
  s->max_iter = 100;
}

void keel_qp_free(keel_qp *qp) {
  if (!qp) return;
  keeli_heap h = qp->heap;
  void *b[] = {qp->x,  qp->y,  qp->z,  qp->s,  qp->zl, qp->sl, qp->zu, qp->su, qp->dx, qp->dy, qp->dz, qp->ds,
               qp->dzl, qp->dsl, qp->dzu, qp->dsu, qp->cs, qp->cl, qp->cu, qp->rd, qp->rp, qp->rg, qp->rl, qp->ru,
               qp->r1, qp->r2, qp->t,  qp->e1, qp->e2, qp->wm, qp->wn, qp->ddx, qp->ddy, qp->ef, qp->hasl, qp->hasu, qp->K, qp->Kc, qp->KA,
               qp->S, qp->Gs};
  for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) keeli_heap_free(&h, b[i]);
  keeli_heap_free(&h, qp);
}

keel_status keel_qp_new(keel_ctx *ctx, size_t n, size_t p, size_t m, keel_qp **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_qp_new: out is NULL");
  *out = NULL;
  if (n == 0 || n > 46340 || p > n || m > (size_t)1 << 24)
    return keeli_error(ctx, KEEL_EINVAL, "qp: sizes n %zu, p %zu, m %zu are out of range (n >= 1, p <= n)", n, p, m);
  keel_qp *qp = keeli_calloc(ctx, 1, sizeof *qp);
  if (!qp) return KEEL_ENOMEM;
  qp->heap = *keeli_ctx_heap(ctx);
  qp->n = n, qp->p = p, qp->m = m;
  size_t P1 = p ? p : 1, M1 = m ? m : 1;
  int ok = 1;
#define VEC(f, len) ok &= (qp->f = keeli_calloc(ctx, (len), sizeof(double))) != NULL
  VEC(x, n); VEC(y, P1); VEC(z, M1); VEC(s, M1); VEC(zl, n); VEC(sl, n); VEC(zu, n); VEC(su, n);
  VEC(dx, n); VEC(dy, P1); VEC(dz, M1); VEC(ds, M1); VEC(dzl, n); VEC(dsl, n); VEC(dzu, n); VEC(dsu, n);
  VEC(cs, M1); VEC(cl, n); VEC(cu, n);
  VEC(rd, n); VEC(rp, P1); VEC(rg, M1); VEC(rl, n); VEC(ru, n); VEC(r1, n); VEC(r2, P1); VEC(t, n);
  VEC(e1, n); VEC(e2, P1); VEC(wm, M1); VEC(wn, n); VEC(ddx, n); VEC(ddy, P1); VEC(ef, n);
  VEC(K, n * n); VEC(Kc, n * n); VEC(KA, n * P1); VEC(S, P1 * P1); VEC(Gs, M1 * n);
#undef VEC
  ok &= (qp->hasl = keeli_calloc(ctx, n, 1)) != NULL;
  ok &= (qp->hasu = keeli_calloc(ctx, n, 1)) != NULL;
  if (!ok) {
    keel_qp_free(qp);
    return KEEL_ENOMEM;
  }
  *out = qp;
  return KEEL_OK;
}

static double norm_inf(const double *v, size_t n) {
  double r = 0;
  for (size_t i = 0; i < n; i++) r = fmax(r, fabs(v[i]));
  return r;
}

static double dot(const double *a, const double *b, size_t n) {
  double r = 0;
  for (size_t i = 0; i < n; i++) r += a[i] * b[i];
  return r;
}

/* y = M v (M rows x cols, row-major view); or, with trans, y = M' v. */
static void matvec(keel_cmat M, int trans, const double *v, double *y, double beta) {
  if (M.rows == 0 || M.cols == 0) {
    size_t len = trans ? M.cols : M.rows;
    for (size_t i = 0; i < len; i++) y[i] *= beta;
    return;
  }
  cblas_dgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, (int)M.rows, (int)M.cols, 1.0, M.data, (int)M.ld, v,
              1, beta, y, 1);
}

static keel_status check_data(keel_ctx *ctx, const keel_qp *qp, const keel_qp_data *d) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  if (d->n != n || d->p != p || d->m != m)
    return keeli_error(ctx, KEEL_EINVAL, "qp: problem is %zu/%zu/%zu (n/p/m), solver was made for %zu/%zu/%zu", d->n,
                       d->p, d->m, n, p, m);
  if (!d->P.data || d->P.rows != n || d->P.cols != n || d->P.ld < n || !d->q)
    return keeli_error(ctx, KEEL_EINVAL, "qp: P must be %zu x %zu and q given", n, n);
  if (p && (!d->A.data || d->A.rows != p || d->A.cols != n || d->A.ld < n || !d->b))
    return keeli_error(ctx, KEEL_EINVAL, "qp: A must be %zu x %zu and b given", p, n);
  if (m && (!d->G.data || d->G.rows != m || d->G.cols != n || d->G.ld < n || !d->h))
    return keeli_error(ctx, KEEL_EINVAL, "qp: G must be %zu x %zu and h given", m, n);
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(d->q[i])) return keeli_error(ctx, KEEL_EINVAL, "qp: q[%zu] is not finite", i);
    for (size_t j = 0; j < n; j++) {
      double v = AT(d->P, i, j);
      if (!isfinite(v)) return keeli_error(ctx, KEEL_EINVAL, "qp: P(%zu, %zu) is not finite", i, j);
      if (j < i && fabs(v - AT(d->P, j, i)) > 1e-12 * (fabs(v) + fabs(AT(d->P, j, i))) + 1e-300)
        return keeli_error(ctx, KEEL_EINVAL, "qp: P is not symmetric at (%zu, %zu)", i, j);
    }
    double l = d->lb ? d->lb[i] : -INFINITY, u = d->ub ? d->ub[i] : INFINITY;
    if (isnan(l) || isnan(u) || l == INFINITY || u == -INFINITY || l > u)
      return keeli_error(ctx, KEEL_EINVAL, "qp: bounds of x[%zu] are [%g, %g]", i, l, u);
  }
  for (size_t k = 0; k < p; k++) {
    if (!isfinite(d->b[k])) return keeli_error(ctx, KEEL_EINVAL, "qp: b[%zu] is not finite", k);
    for (size_t j = 0; j < n; j++)
      if (!isfinite(AT(d->A, k, j))) return keeli_error(ctx, KEEL_EINVAL, "qp: A(%zu, %zu) is not finite", k, j);
  }
  for (size_t k = 0; k < m; k++) {
    if (!isfinite(d->h[k])) return keeli_error(ctx, KEEL_EINVAL, "qp: h[%zu] is not finite", k);
    for (size_t j = 0; j < n; j++)
      if (!isfinite(AT(d->G, k, j))) return keeli_error(ctx, KEEL_EINVAL, "qp: G(%zu, %zu) is not finite", k, j);
  }
  return KEEL_OK;
}

/* Residuals of the current iterate. */
static void residuals(keel_qp *qp, const keel_qp_data *d) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  const double *lb = d->lb, *ub = d->ub;
  memcpy(qp->rd, d->q, n * sizeof(double));
  matvec(d->P, 0, qp->x, qp->rd, 1.0);
  if (p) matvec(d->A, 1, qp->y, qp->rd, 1.0);
  if (m) matvec(d->G, 1, qp->z, qp->rd, 1.0);
  for (size_t i = 0; i < n; i++) {
    qp->rd[i] += -qp->zl[i] + qp->zu[i];
    qp->rl[i] = qp->hasl[i] ? qp->x[i] - lb[i] - qp->sl[i] : 0;
    qp->ru[i] = qp->hasu[i] ? qp->x[i] + qp->su[i] - ub[i] : 0;
  }
  if (p) {
    memcpy(qp->rp, d->b, p * sizeof(double));
    matvec(d->A, 0, qp->x, qp->rp, -1.0); /* rp = Ax - b */
  }
  if (m) {
    for (size_t k = 0; k < m; k++) qp->rg[k] = qp->s[k] - d->h[k];
    matvec(d->G, 0, qp->x, qp->rg, 1.0);
  }
}

/* Builds and factors K = P + G'WG + diag(zl/sl + zu/su) (+ delta I), and the
 * Schur complement S = A K^-1 A'. Returns 0, or -1 if a factorisation
 * failed even with regularisation. */
static int factor(keel_qp *qp, const keel_qp_data *d, double *delta_out) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  for (size_t i = 0; i < n; i++) memcpy(qp->Kc + i * n, d->P.data + i * d->P.ld, n * sizeof(double));
  if (m) {
    for (size_t k = 0; k < m; k++) {
      double w = sqrt(qp->z[k] / qp->s[k]);
      for (size_t j = 0; j < n; j++) qp->Gs[k * n + j] = w * AT(d->G, k, j);
    }
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)n, (int)m, 1.0, qp->Gs, (int)n, 1.0, qp->Kc, (int)n);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < i; j++) qp->Kc[j * n + i] = qp->Kc[i * n + j];
  }
  double dmax = 0;
  for (size_t i = 0; i < n; i++) {
    if (qp->hasl[i]) qp->Kc[i * n + i] += qp->zl[i] / qp->sl[i];
    if (qp->hasu[i]) qp->Kc[i * n + i] += qp->zu[i] / qp->su[i];
    dmax = fmax(dmax, fabs(qp->Kc[i * n + i]));
  }
  double delta = 1e-13 * fmax(dmax, 1e-300);
  for (int attempt = 0; attempt < 6; attempt++, delta *= 100) {
    memcpy(qp->K, qp->Kc, n * n * sizeof(double));
    for (size_t i = 0; i < n; i++) qp->K[i * n + i] += delta;
    if (LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', (lapack_int)n, qp->K, (lapack_int)n) != 0) continue;
    if (p) {
      /* KA = K^-1 A' (A' is n x p column-major = A row-major) */
      for (size_t k = 0; k < p; k++) memcpy(qp->KA + k * n, d->A.data + k * d->A.ld, n * sizeof(double));
      LAPACKE_dpotrs_work(LAPACK_COL_MAJOR, 'L', (lapack_int)n, (lapack_int)p, qp->K, (lapack_int)n, qp->KA,
                          (lapack_int)n);
      /* S = A KA: S(k, l) = A_k . KA_l */
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)p, (int)p, (int)n, 1.0, d->A.data, (int)d->A.ld,
                  qp->KA, (int)n, 0.0, qp->S, (int)p);
      double smax = 0;
      for (size_t k = 0; k < p; k++) smax = fmax(smax, fabs(qp->S[k * p + k]));
      for (size_t k = 0; k < p; k++) qp->S[k * p + k] += 1e-14 * smax;
      if (LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', (lapack_int)p, qp->S, (lapack_int)p) != 0) return -1;
    }
    *delta_out = delta;
    return 0;
  }
  return -1;
}

/* Solves K dx + A'dy = r1, A dx = r2 with the factors, refining against
 * the unregularised K. */
static void kkt_solve(keel_qp *qp, const keel_qp_data *d, const double *r1, const double *r2, double *dx,
                      double *dy) {
  const size_t n = qp->n, p = qp->p;
  memset(dx, 0, n * sizeof(double));
  if (p) memset(dy, 0, p * sizeof(double));
  for (int it = 0; it <= REFINE_STEPS; it++) {
    /* e = r - KKT [dx; dy] (on the first pass dx = dy = 0) */
    memcpy(qp->e1, r1, n * sizeof(double));
    if (p) memcpy(qp->e2, r2, p * sizeof(double));
    if (it) {
      cblas_dsymv(CblasRowMajor, CblasLower, (int)n, -1.0, qp->Kc, (int)n, dx, 1, 1.0, qp->e1, 1);
      if (p) {
        matvec(d->A, 1, dy, qp->wn, 0.0);
        cblas_daxpy((int)n, -1.0, qp->wn, 1, qp->e1, 1);
        matvec(d->A, 0, dx, qp->t, 0.0); /* t = A dx (t is free here) */
        cblas_daxpy((int)p, -1.0, qp->t, 1, qp->e2, 1);
      }
    }
    /* correction: t = K^-1 e1; c_y = S^-1 (A t - e2); c_x = t - KA c_y */
    memcpy(qp->t, qp->e1, n * sizeof(double));
    LAPACKE_dpotrs_work(LAPACK_COL_MAJOR, 'L', (lapack_int)n, 1, qp->K, (lapack_int)n, qp->t, (lapack_int)n);
    if (p) {
      double *c = qp->e2;
      /* c = A t - e2 */
      cblas_dscal((int)p, -1.0, c, 1);
      matvec(d->A, 0, qp->t, c, 1.0);
      LAPACKE_dpotrs_work(LAPACK_COL_MAJOR, 'L', (lapack_int)p, 1, qp->S, (lapack_int)p, c, (lapack_int)p);
      cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)p, -1.0, qp->KA, (int)n, c, 1, 1.0, qp->t, 1);
      cblas_daxpy((int)p, 1.0, c, 1, dy, 1);
    }
    cblas_daxpy((int)n, 1.0, qp->t, 1, dx, 1);
  }
}

/* Slack and multiplier steps from dx (the eliminated rows). */
static void recover(keel_qp *qp, const keel_qp_data *d) {
  const size_t n = qp->n, m = qp->m;
  if (m) {
    matvec(d->G, 0, qp->dx, qp->wm, 0.0);
    for (size_t k = 0; k < m; k++) {
      qp->ds[k] = -qp->rg[k] - qp->wm[k];
      qp->dz[k] = (-qp->cs[k] - qp->z[k] * qp->ds[k]) / qp->s[k];
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (qp->hasl[i]) {
      qp->dsl[i] = qp->dx[i] + qp->rl[i];
      qp->dzl[i] = (-qp->cl[i] - qp->zl[i] * qp->dsl[i]) / qp->sl[i];
    }
    if (qp->hasu[i]) {
      qp->dsu[i] = -qp->ru[i] - qp->dx[i];
      qp->dzu[i] = (-qp->cu[i] - qp->zu[i] * qp->dsu[i]) / qp->su[i];
    }
  }
}

/* Newton direction for complementarity targets given in cs/cl/cu
 * (s.z + corr - sigma mu, and likewise for the bounds). */
static void direction(keel_qp *qp, const keel_qp_data *d) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  /* r1 = -rd - G'(S^-1 (-rsz + Z rg)) - Sl^-1 (rszl + Zl rl) - Su^-1 (-rszu + Zu ru) */
  for (size_t k = 0; k < m; k++) qp->wm[k] = (-qp->cs[k] + qp->z[k] * qp->rg[k]) / qp->s[k];
  for (size_t i = 0; i < n; i++) qp->r1[i] = -qp->rd[i];
  if (m) {
    matvec(d->G, 1, qp->wm, qp->wn, 0.0);
    cblas_daxpy((int)n, -1.0, qp->wn, 1, qp->r1, 1);
  }
  for (size_t i = 0; i < n; i++) {
    if (qp->hasl[i]) qp->r1[i] -= (qp->cl[i] + qp->zl[i] * qp->rl[i]) / qp->sl[i];
    if (qp->hasu[i]) qp->r1[i] -= (-qp->cu[i] + qp->zu[i] * qp->ru[i]) / qp->su[i];
  }
  for (size_t k = 0; k < p; k++) qp->r2[k] = -qp->rp[k];
  kkt_solve(qp, d, qp->r1, qp->r2, qp->dx, qp->dy);
  recover(qp, d);
  /* Refine against the full Newton system: the slack and complementarity
   * rows hold by construction, so only the dual row
   *   e = -rd - (P dx + A'dy + G'dz - dzl + dzu)
   * is left; it grows with the barrier weights z/s, which the reduced
   * system's refinement does not see. */
  for (int it = 0; it < 2; it++) {
    for (size_t i = 0; i < n; i++) qp->ef[i] = -qp->rd[i] + qp->dzl[i] - qp->dzu[i];
    cblas_dsymv(CblasRowMajor, CblasLower, (int)n, -1.0, d->P.data, (int)d->P.ld, qp->dx, 1, 1.0, qp->ef, 1);
    if (p) {
      matvec(d->A, 1, qp->dy, qp->wn, 0.0);
      cblas_daxpy((int)n, -1.0, qp->wn, 1, qp->ef, 1);
    }
    if (m) {
      matvec(d->G, 1, qp->dz, qp->wn, 0.0);
      cblas_daxpy((int)n, -1.0, qp->wn, 1, qp->ef, 1);
    }
    if (p) memset(qp->r2, 0, p * sizeof(double));
    kkt_solve(qp, d, qp->ef, qp->r2, qp->ddx, qp->ddy);
    cblas_daxpy((int)n, 1.0, qp->ddx, 1, qp->dx, 1);
    if (p) cblas_daxpy((int)p, 1.0, qp->ddy, 1, qp->dy, 1);
    recover(qp, d);
  }
}

static double max_step(const double *v, const double *dv, size_t n, const unsigned char *mask, double a) {
  for (size_t i = 0; i < n; i++)
    if ((!mask || mask[i]) && dv[i] < 0) a = fmin(a, -v[i] / dv[i]);
  return a;
}

/* The largest step keeping every slack and multiplier >= 0 (may exceed 1). */
static double step_length(const keel_qp *qp) {
  double a = INFINITY;
  a = max_step(qp->s, qp->ds, qp->m, NULL, a);
  a = max_step(qp->z, qp->dz, qp->m, NULL, a);
  a = max_step(qp->sl, qp->dsl, qp->n, qp->hasl, a);
  a = max_step(qp->zl, qp->dzl, qp->n, qp->hasl, a);
  a = max_step(qp->su, qp->dsu, qp->n, qp->hasu, a);
  a = max_step(qp->zu, qp->dzu, qp->n, qp->hasu, a);
  return a;
}

static double complementarity(const keel_qp *qp, double a, size_t *count) {
  double g = 0;
  size_t c = qp->m;
  for (size_t k = 0; k < qp->m; k++) g += (qp->s[k] + a * qp->ds[k]) * (qp->z[k] + a * qp->dz[k]);
  for (size_t i = 0; i < qp->n; i++) {
    if (qp->hasl[i]) g += (qp->sl[i] + a * qp->dsl[i]) * (qp->zl[i] + a * qp->dzl[i]), c++;
    if (qp->hasu[i]) g += (qp->su[i] + a * qp->dsu[i]) * (qp->zu[i] + a * qp->dzu[i]), c++;
  }
  if (count) *count = c;
  return g;
}

/* Infeasibility certificates of the current iterate (docs/qp.md). */
static int primal_infeasible(keel_qp *qp, const keel_qp_data *d, double eps) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  double ny = fmax(fmax(norm_inf(qp->y, p), norm_inf(qp->z, m)), fmax(norm_inf(qp->zl, n), norm_inf(qp->zu, n)));
  if (!(ny > 0)) return 0;
  /* v = A'y + G'z - zl + zu, c = b'y + h'z - lb'zl + ub'zu */
  memset(qp->wn, 0, n * sizeof(double));
  if (p) matvec(d->A, 1, qp->y, qp->wn, 0.0);
  if (m) matvec(d->G, 1, qp->z, qp->wn, 1.0);
  double c = (p ? dot(d->b, qp->y, p) : 0) + (m ? dot(d->h, qp->z, m) : 0);
  for (size_t i = 0; i < n; i++) {
    qp->wn[i] += -qp->zl[i] + qp->zu[i];
    if (qp->hasl[i]) c -= d->lb[i] * qp->zl[i];
    if (qp->hasu[i]) c += d->ub[i] * qp->zu[i];
  }
  return norm_inf(qp->wn, n) <= eps * ny && c < -eps * ny * 1e3;
}

static int dual_infeasible(keel_qp *qp, const keel_qp_data *d, double eps) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  double nx = norm_inf(qp->x, n);
  if (!(nx > 0)) return 0;
  for (size_t i = 0; i < n; i++) qp->t[i] = qp->x[i] / nx;
  if (dot(d->q, qp->t, n) >= -eps * 1e3 * fmax(1, norm_inf(d->q, n))) return 0;
  matvec(d->P, 0, qp->t, qp->wn, 0.0);
  if (norm_inf(qp->wn, n) > eps) return 0;
  if (p) {
    matvec(d->A, 0, qp->t, qp->e2, 0.0);
    if (norm_inf(qp->e2, p) > eps) return 0;
  }
  if (m) {
    matvec(d->G, 0, qp->t, qp->wm, 0.0);
    for (size_t k = 0; k < m; k++)
      if (qp->wm[k] > eps) return 0;
  }
  for (size_t i = 0; i < n; i++)
    if ((qp->hasl[i] && qp->t[i] < -eps) || (qp->hasu[i] && qp->t[i] > eps)) return 0;
  return 1;
}

keel_status keel_qp_solve(keel_ctx *ctx, keel_qp *qp, const keel_qp_data *d, const keel_qp_settings *set,
                          keel_qp_result *res) {
  if (!qp || !d || !res) return keeli_error(ctx, KEEL_EINVAL, "keel_qp_solve: NULL argument");
  keel_qp_settings sd;
  if (!set) keel_qp_settings_default(&sd), set = &sd;
  if (!(set->eps_abs >= 0) || !(set->eps_rel >= 0) || !(set->eps_gap >= 0) || !(set->eps_infeas > 0) ||
      set->max_iter < 1)
    return keeli_error(ctx, KEEL_EINVAL, "qp: tolerances must be >= 0 and max_iter >= 1");
  keel_status st = check_data(ctx, qp, d);
  if (st) return st;
  const size_t n = qp->n, p = qp->p, m = qp->m;

  /* starting point: x in the box, slacks and multipliers at 1 or more */
  for (size_t i = 0; i < n; i++) {
    double l = d->lb ? d->lb[i] : -INFINITY, u = d->ub ? d->ub[i] : INFINITY;
    qp->hasl[i] = isfinite(l);
    qp->hasu[i] = isfinite(u);
    double x = 0;
    if (qp->hasl[i] && qp->hasu[i])
      x = 0.5 * (l + u);
    else if (qp->hasl[i])
      x = fmax(0, l + 1);
    else if (qp->hasu[i])
      x = fmin(0, u - 1);
    qp->x[i] = x;
    qp->sl[i] = qp->hasl[i] ? fmax(x - l, 1) : 0;
    qp->zl[i] = qp->hasl[i] ? 1 : 0;
    qp->su[i] = qp->hasu[i] ? fmax(u - x, 1) : 0;
    qp->zu[i] = qp->hasu[i] ? 1 : 0;
    qp->dsl[i] = qp->dzl[i] = qp->dsu[i] = qp->dzu[i] = 0;
  }
  if (p) memset(qp->y, 0, p * sizeof(double));
  if (m) {
    matvec(d->G, 0, qp->x, qp->wm, 0.0);
    for (size_t k = 0; k < m; k++) {
      qp->s[k] = fmax(d->h[k] - qp->wm[k], 1);
      qp->z[k] = 1;
    }
  }

  const double nb = p ? norm_inf(d->b, p) : 0, nh = m ? norm_inf(d->h, m) : 0, nq = norm_inf(d->q, n);
  double best_rd = INFINITY;
  int stalled = 0;
  memset(res, 0, sizeof *res);
  res->status = KEEL_QP_MAX_ITER;
  int it;
  for (it = 0; it <= set->max_iter; it++) {
    residuals(qp, d);
    size_t cnt;
    double gap = complementarity(qp, 0, &cnt);
    double rp = fmax(fmax(p ? norm_inf(qp->rp, p) : 0, m ? norm_inf(qp->rg, m) : 0),
                     fmax(norm_inf(qp->rl, n), norm_inf(qp->ru, n)));
    double rdn = norm_inf(qp->rd, n);
    /* scales for the relative tolerances */
    matvec(d->P, 0, qp->x, qp->wn, 0.0);
    double obj = 0.5 * dot(qp->x, qp->wn, n) + dot(d->q, qp->x, n);
    double sp = fmax(fmax(nb, nh), norm_inf(qp->x, n));
    double sdl = fmax(fmax(norm_inf(qp->wn, n), nq), fmax(norm_inf(qp->zl, n), norm_inf(qp->zu, n)));
    if (m) sdl = fmax(sdl, norm_inf(qp->z, m));
    if (p) sdl = fmax(sdl, norm_inf(qp->y, p));
    res->obj = obj, res->res_prim = rp, res->res_dual = rdn, res->gap = gap, res->iterations = it;
    int prim_ok = rp <= set->eps_abs + set->eps_rel * sp, gap_ok = gap <= set->eps_gap * (1 + fabs(obj));
    if (prim_ok && gap_ok && rdn <= set->eps_abs + set->eps_rel * sdl) {
      res->status = KEEL_QP_OPTIMAL;
      break;
    }
    /* Reduced dual accuracy: with the gap closed and the primal feasible,
     * the dual residual can stall at the accuracy of the ill-conditioned
     * Newton system (barrier weights z/s grow without bound). Stop once it
     * has not improved for three iterations and is below sqrt(eps_rel);
     * res_dual reports it. */
    if (rdn < best_rd * 0.5)
      best_rd = rdn, stalled = 0;
    else
      stalled++;
    if (prim_ok && gap_ok && stalled >= 3 && rdn <= sqrt(set->eps_rel) * (1 + sdl)) {
      res->status = KEEL_QP_OPTIMAL;
      break;
    }
    if (it > 0 && primal_infeasible(qp, d, set->eps_infeas)) {
      res->status = KEEL_QP_PRIMAL_INFEASIBLE;
      break;
    }
    if (it > 0 && dual_infeasible(qp, d, set->eps_infeas)) {
      res->status = KEEL_QP_DUAL_INFEASIBLE;
      break;
    }
    if (it == set->max_iter) break;
    double mu = cnt ? gap / (double)cnt : 0, delta;
    if (factor(qp, d, &delta) != 0) {
      res->status = KEEL_QP_NUMERICAL;
      break;
    }
    /* predictor: pure Newton on s.z = 0 */
    for (size_t k = 0; k < m; k++) qp->cs[k] = qp->s[k] * qp->z[k];
    for (size_t i = 0; i < n; i++) {
      qp->cl[i] = qp->hasl[i] ? qp->sl[i] * qp->zl[i] : 0;
      qp->cu[i] = qp->hasu[i] ? qp->su[i] * qp->zu[i] : 0;
    }
    direction(qp, d);
    double a_aff = fmin(1.0, step_length(qp));
    double sigma = 0;
    if (cnt) {
      double mu_aff = complementarity(qp, a_aff, NULL) / (double)cnt;
      sigma = pow(mu_aff / mu, 3);
      if (sigma > 1) sigma = 1;
    }
    /* corrector: s.z + ds_aff.dz_aff - sigma mu */
    for (size_t k = 0; k < m; k++) qp->cs[k] = qp->s[k] * qp->z[k] + qp->ds[k] * qp->dz[k] - sigma * mu;
    for (size_t i = 0; i < n; i++) {
      if (qp->hasl[i]) qp->cl[i] = qp->sl[i] * qp->zl[i] + qp->dsl[i] * qp->dzl[i] - sigma * mu;
      if (qp->hasu[i]) qp->cu[i] = qp->su[i] * qp->zu[i] + qp->dsu[i] * qp->dzu[i] - sigma * mu;
    }
    direction(qp, d);
    double a = fmin(1.0, STEP_FRACTION * step_length(qp));
    if (!(a > 0) || !isfinite(a)) {
      res->status = KEEL_QP_NUMERICAL;
      break;
    }
    cblas_daxpy((int)n, a, qp->dx, 1, qp->x, 1);
    if (p) cblas_daxpy((int)p, a, qp->dy, 1, qp->y, 1);
    for (size_t k = 0; k < m; k++) qp->s[k] += a * qp->ds[k], qp->z[k] += a * qp->dz[k];
    for (size_t i = 0; i < n; i++) {
      if (qp->hasl[i]) qp->sl[i] += a * qp->dsl[i], qp->zl[i] += a * qp->dzl[i];
      if (qp->hasu[i]) qp->su[i] += a * qp->dsu[i], qp->zu[i] += a * qp->dzu[i];
    }
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad |= !isfinite(qp->x[i]);
    if (bad) {
      res->status = KEEL_QP_NUMERICAL;
      break;
    }
  }
  res->x = qp->x;
  res->y = qp->y;
  res->z = qp->z;
  res->zl = qp->zl;
  res->zu = qp->zu;
  return KEEL_OK;
}
