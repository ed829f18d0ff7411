/* keel — convex QP by a primal-dual interior-point method with Mehrotra's
 * predictor-corrector (Mehrotra 1992; Nocedal & Wright, "Numerical
 * Optimization", 2nd ed., section 16.6), followed by an active-set solve
 * of the optimality conditions ("polish"), which is also the warm start.
 * Notation, the eliminations and the stopping rules: docs/qp.md. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "keel/qp.h"

#define AT(M, i, j) ((M).data[(i) * (M).ld + (j)])
#define STEP_FRACTION 0.99
#define REFINE_STEPS 3
#define POLISH_AFTER_IPM 4 /* active-set corrections tried after the interior point */
#define POLISH_WARM 40     /* ... and from a warm start */
#define PDAS_FULL 8        /* active-set steps that change every violated state */
#define BEST_ITERATE_SLACK 1000

/* Variable states of the active-set solve. */
enum { V_FREE = 0, V_UP, V_DOWN, V_LB, V_UB, V_X0 };

struct keel_qp {
  keeli_heap heap;
  size_t n, p, m, k;
  int l1, gs; /* gs: G rows go into the Schur block (factor model) */
  size_t rall; /* p + m + 1: most rows of the Schur block */
  /* iterates */
  double *x, *y, *z, *s, *zl, *sl, *zu, *su;
  double *bb, *zb, *ss, *zs, *lam; /* buys, sells, their multipliers, x - bb + ss = x0 */
  double sig, zeta;                /* slack and multiplier of the cap */
  /* directions */
  double *dx, *dnu, *dz, *ds, *dzl, *dsl, *dzu, *dsu, *dbb, *dzb, *dss, *dzs, *dlam;
  double dsig, dzeta;
  /* complementarity targets */
  double *cs, *cl, *cu, *cb, *cc;
  double ct;
  /* residuals */
  double *rd, *rp, *rg, *rl, *ru, *rdb, *rds, *re;
  double rt;
  /* split elimination: E, E g, c (docs/qp.md) */
  double *Ee, *Eg, *Ec, *rhob, *rhos;
  /* the reduced system on nn variables and r rows */
  size_t nn, r;
  double *Kc, *K;            /* dense: exact and factored nn x nn */
  double *dl0, *dl;          /* factor model: exact and regularised diagonal */
  double *V, *Vc, *W;        /* factor model: V = B Q L^1/2, its rows in use, I + Vc' D^-1 Vc */
  double *R, *th, *KR, *S;   /* rows (r x nn), theta, K^-1 R' (r x nn), Schur r x r */
  double *FQ, *Fl;           /* eigenvectors and values of F */
  double *Ukr, *uk, *ew;     /* factor model scratch: k x rall, k, eigen-solver work */
  /* work */
  double *r1, *r2, *t, *e1, *e2, *wm, *wn, *wn2, *ddx, *ddnu, *ef;
  double *px; /* P x of the current iterate (residuals() sets it) */
  /* active set */
  unsigned char *hasl, *hasu, *vst, *gact;
  unsigned char *nvst; /* proposed states of a polish step */
  double *cmag;        /* how far each proposed change's condition is violated (n + m + 1) */
  int capact, have_warm;
  size_t *fidx;
  double *g;
  double *xp, *yp, *zp, *zlp, *zup, *lamp; /* the active-set candidate */
  double zetap;
  /* the best iterate so far (by its worst residual relative to its tolerance) */
  double *bx, *by, *bz, *bzl, *bzu, *bl1, best_zeta, best_merit, best_gap, best_rp, best_rd, best_obj;
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
  s->eps_gap = 1e-10;
  s->eps_infeas = 1e-9;
  s->max_iter = 100;
  s->polish = 1;
  s->warm_start = 0;
}

#define QP_BUFFERS(X)                                                                                                  \
  X(x) X(y) X(z) X(s) X(zl) X(sl) X(zu) X(su) X(bb) X(zb) X(ss) X(zs) X(lam) X(dx) X(dnu) X(dz) X(ds) X(dzl) X(dsl)  \
  X(dzu) X(dsu) X(dbb) X(dzb) X(dss) X(dzs) X(dlam) X(cs) X(cl) X(cu) X(cb) X(cc) X(rd) X(rp) X(rg) X(rl) X(ru)      \
  X(rdb) X(rds) X(re) X(Ee) X(Eg) X(Ec) X(rhob) X(rhos) X(Kc) X(K) X(dl0) X(dl) X(V) X(Vc) X(W) X(R) X(th) X(KR) X(S) \
  X(FQ) X(Fl) X(Ukr) X(uk) X(ew) X(px) X(r1) X(r2) X(t) X(e1) X(e2) X(wm) X(wn) X(wn2) X(ddx) X(ddnu) X(ef) X(hasl) X(hasu) X(vst) X(gact)     \
  X(fidx) X(nvst) X(cmag) X(g) X(xp) X(yp) X(zp) X(zlp) X(zup) X(lamp) X(bx) X(by) X(bz) X(bzl) X(bzu) X(bl1)

void keel_qp_free(keel_qp *qp) {
  if (!qp) return;
  keeli_heap h = qp->heap;
#define FREE_ONE(f) keeli_heap_free(&h, qp->f);
  QP_BUFFERS(FREE_ONE)
#undef FREE_ONE
  keeli_heap_free(&h, qp);
}

keel_status keel_qp_new(keel_ctx *ctx, const keel_qp_dims *dm, keel_qp **out) {
  if (!out || !dm) return keeli_error(ctx, KEEL_EINVAL, "keel_qp_new: NULL argument");
  *out = NULL;
  const size_t n = dm->n, p = dm->p, m = dm->m, k = dm->k;
  if (n == 0 || n > 46340 || p > n || m > 46340 || k > 4096 || (k && k > n) || (dm->l1 != 0 && dm->l1 != 1))
    return keeli_error(ctx, KEEL_EINVAL,
                       "qp: sizes n %zu, p %zu, m %zu, k %zu are out of range (1 <= n <= 46340, p <= n, m <= 46340, "
                       "k <= n)",
                       n, p, m, k);
  keel_qp *qp = keeli_calloc(ctx, 1, sizeof *qp);
  if (!qp) return KEEL_ENOMEM;
  qp->heap = *keeli_ctx_heap(ctx);
  qp->n = n, qp->p = p, qp->m = m, qp->k = k, qp->l1 = dm->l1, qp->gs = k > 0;
  const size_t M1 = m ? m : 1, N1 = dm->l1 ? n : 1, K1 = k ? k : 1, rall = p + m + 1;
  const size_t nsq = k ? 1 : n * n, nk = k ? n * k : 1;
  qp->rall = rall;
  int ok = 1;
#define VEC(f, len) ok &= (qp->f = keeli_calloc(ctx, (len), sizeof(double))) != NULL;
  VEC(x, n) VEC(y, p + 1) VEC(z, M1) VEC(s, M1) VEC(zl, n) VEC(sl, n) VEC(zu, n) VEC(su, n);
  VEC(bb, N1) VEC(zb, N1) VEC(ss, N1) VEC(zs, N1) VEC(lam, n);
  VEC(dx, n) VEC(dnu, rall) VEC(dz, M1) VEC(ds, M1) VEC(dzl, n) VEC(dsl, n) VEC(dzu, n) VEC(dsu, n);
  VEC(dbb, N1) VEC(dzb, N1) VEC(dss, N1) VEC(dzs, N1) VEC(dlam, n);
  VEC(cs, M1) VEC(cl, n) VEC(cu, n) VEC(cb, N1) VEC(cc, N1);
  VEC(rd, n) VEC(rp, p + 1) VEC(rg, M1) VEC(rl, n) VEC(ru, n) VEC(rdb, N1) VEC(rds, N1) VEC(re, N1);
  VEC(Ee, N1) VEC(Eg, N1) VEC(Ec, N1) VEC(rhob, N1) VEC(rhos, N1);
  VEC(Kc, nsq) VEC(K, nsq) VEC(dl0, k ? n : 1) VEC(dl, k ? n : 1) VEC(V, nk) VEC(Vc, nk) VEC(W, K1 * K1);
  VEC(R, rall * n) VEC(th, rall) VEC(KR, rall * n) VEC(S, rall * rall) VEC(FQ, K1 * K1) VEC(Fl, K1);
  VEC(Ukr, K1 * rall) VEC(uk, K1) VEC(ew, 40 * K1);
  VEC(px, n) VEC(r1, n) VEC(r2, rall) VEC(t, n) VEC(e1, n) VEC(e2, rall) VEC(wm, M1) VEC(wn, n) VEC(wn2, n);
  VEC(ddx, n) VEC(ddnu, rall) VEC(ef, n) VEC(g, n);
  VEC(xp, n) VEC(yp, p + 1) VEC(zp, M1) VEC(zlp, n) VEC(zup, n) VEC(lamp, n);
  VEC(bx, n) VEC(by, p + 1) VEC(bz, M1) VEC(bzl, n) VEC(bzu, n) VEC(bl1, n);
#undef VEC
  ok &= (qp->hasl = keeli_calloc(ctx, n, 1)) != NULL;
  ok &= (qp->hasu = keeli_calloc(ctx, n, 1)) != NULL;
  ok &= (qp->vst = keeli_calloc(ctx, n, 1)) != NULL;
  ok &= (qp->nvst = keeli_calloc(ctx, n, 1)) != NULL;
  ok &= (qp->cmag = keeli_calloc(ctx, n + M1 + 1, sizeof(double))) != NULL;
  ok &= (qp->gact = keeli_calloc(ctx, M1, 1)) != NULL;
  ok &= (qp->fidx = keeli_alloc_array(ctx, n, sizeof(size_t))) != NULL;
  if (!ok) {
    keel_qp_free(qp);
    return KEEL_ENOMEM;
  }
  *out = qp;
  return KEEL_OK;
}

/* Max norm; NaN if any entry is NaN (fmax would hide it). */
static double norm_inf(const double *v, size_t n) {
  double r = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(v[i])) return NAN;
    r = fmax(r, fabs(v[i]));
  }
  return r;
}


/* y = M v + beta y (M rows x cols, row-major view); or, with trans, M' v. */
static void matvec(keel_cmat M, int trans, const double *v, double *y, double beta) {
  if (M.rows == 0 || M.cols == 0) {
    size_t len = trans ? M.cols : M.rows;
    for (size_t i = 0; i < len; i++) y[i] *= beta;
    return;
  }
  cblas_dgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, (int)M.rows, (int)M.cols, 1.0, M.data, (int)M.ld, v,
              1, beta, y, 1);
}

/* out = P v. With a factor model: d.v + B (F (B'v)) via V = B Q L^1/2. */
static void pmul(keel_qp *qp, const keel_qp_data *d, const double *v, double *out) {
  const size_t n = qp->n, k = qp->k;
  if (!k) {
    cblas_dsymv(CblasRowMajor, CblasLower, (int)n, 1.0, d->P.data, (int)d->P.ld, v, 1, 0.0, out, 1);
    return;
  }
  double *u = qp->uk;
  cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)k, 1.0, qp->V, (int)k, v, 1, 0.0, u, 1);
  for (size_t i = 0; i < n; i++) out[i] = d->d[i] * v[i];
  cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, 1.0, qp->V, (int)k, u, 1, 1.0, out, 1);
}

static int has_l1_kink(const keel_qp *qp, const keel_qp_data *d, size_t i) {
  return qp->l1 && (d->has_cap || (d->cu && d->cu[i] > 0) || (d->cd && d->cd[i] > 0));
}

static keel_status check_data(keel_ctx *ctx, keel_qp *qp, const keel_qp_data *d) {
  const size_t n = qp->n, p = qp->p, m = qp->m, k = qp->k;
  if (d->n != n || d->p != p || d->m != m)
    return keeli_error(ctx, KEEL_EINVAL, "qp: problem is %zu/%zu/%zu (n/p/m), solver was made for %zu/%zu/%zu", d->n,
                       d->p, d->m, n, p, m);
  if (!d->q) return keeli_error(ctx, KEEL_EINVAL, "qp: q is NULL");
  if (!k && (!d->P.data || d->P.rows != n || d->P.cols != n || d->P.ld < n))
    return keeli_error(ctx, KEEL_EINVAL, "qp: P must be %zu x %zu", n, n);
  if (k && (!d->B.data || d->B.rows != n || d->B.cols != k || d->B.ld < k || !d->F.data || d->F.rows != k ||
            d->F.cols != k || d->F.ld < k || !d->d))
    return keeli_error(ctx, KEEL_EINVAL, "qp: the factor model needs B %zu x %zu, F %zu x %zu and d", n, k, k, k);
  if (p && (!d->A.data || d->A.rows != p || d->A.cols != n || d->A.ld < n || !d->b))
    return keeli_error(ctx, KEEL_EINVAL, "qp: A must be %zu x %zu and b given", p, n);
  if (m && (!d->G.data || d->G.rows != m || d->G.cols != n || d->G.ld < n || !d->h))
    return keeli_error(ctx, KEEL_EINVAL, "qp: G must be %zu x %zu and h given", m, n);
  if (qp->l1 && !d->x0) return keeli_error(ctx, KEEL_EINVAL, "qp: the cost term needs x0");
  if (!qp->l1 && (d->x0 || d->cu || d->cd || d->has_cap))
    return keeli_error(ctx, KEEL_EINVAL, "qp: costs or a cap given to a solver made without l1");
  if (qp->l1 && d->has_cap && !(d->cap >= 0 && d->cap < INFINITY))
    return keeli_error(ctx, KEEL_EINVAL, "qp: the cap must be finite and >= 0 (it is %g)", d->cap);
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(d->q[i])) return keeli_error(ctx, KEEL_EINVAL, "qp: q[%zu] is not finite", i);
    if (!k) {
      for (size_t j = 0; j < n; j++) {
        double v = AT(d->P, i, j);
        if (!isfinite(v)) return keeli_error(ctx, KEEL_EINVAL, "qp: P(%zu, %zu) is not finite", i, j);
        double sc = fabs(v) + fabs(AT(d->P, j, i)) + sqrt(fabs(AT(d->P, i, i) * AT(d->P, j, j)));
        if (j < i && fabs(v - AT(d->P, j, i)) > 1e-12 * sc + 1e-300)
          return keeli_error(ctx, KEEL_EINVAL, "qp: P is not symmetric at (%zu, %zu)", i, j);
      }
    } else {
      if (!(d->d[i] >= 0 && d->d[i] < INFINITY))
        return keeli_error(ctx, KEEL_EINVAL, "qp: d[%zu] = %g (must be finite and >= 0)", i, d->d[i]);
      for (size_t j = 0; j < k; j++)
        if (!isfinite(AT(d->B, i, j))) return keeli_error(ctx, KEEL_EINVAL, "qp: B(%zu, %zu) is not finite", i, j);
    }
    double l = d->lb ? d->lb[i] : -INFINITY, u = d->ub ? d->ub[i] : INFINITY;
    if (isnan(l) || isnan(u) || l == INFINITY || u == -INFINITY || l > u)
      return keeli_error(ctx, KEEL_EINVAL, "qp: bounds of x[%zu] are [%g, %g]", i, l, u);
    if (qp->l1) {
      if (!isfinite(d->x0[i])) return keeli_error(ctx, KEEL_EINVAL, "qp: x0[%zu] is not finite", i);
      double cu = d->cu ? d->cu[i] : 0, cd = d->cd ? d->cd[i] : 0;
      if (!(cu >= 0 && cu < INFINITY && cd >= 0 && cd < INFINITY))
        return keeli_error(ctx, KEEL_EINVAL, "qp: costs of x[%zu] are %g, %g (must be finite and >= 0)", i, cu, cd);
    }
  }
  for (size_t a = 0; a < p; a++) {
    if (!isfinite(d->b[a])) return keeli_error(ctx, KEEL_EINVAL, "qp: b[%zu] is not finite", a);
    for (size_t j = 0; j < n; j++)
      if (!isfinite(AT(d->A, a, j))) return keeli_error(ctx, KEEL_EINVAL, "qp: A(%zu, %zu) is not finite", a, j);
  }
  for (size_t a = 0; a < m; a++) {
    if (!isfinite(d->h[a])) return keeli_error(ctx, KEEL_EINVAL, "qp: h[%zu] is not finite", a);
    for (size_t j = 0; j < n; j++)
      if (!isfinite(AT(d->G, a, j))) return keeli_error(ctx, KEEL_EINVAL, "qp: G(%zu, %zu) is not finite", a, j);
  }
  return KEEL_OK;
}

/* A factor model's F = Q L Q' (dsyevr) and V = B Q L^1/2, so that
 * P = V V' + diag(d); F is checked to be symmetric PSD on the way. */
static keel_status prepare_factor(keel_ctx *ctx, keel_qp *qp, const keel_qp_data *d) {
  const size_t n = qp->n, k = qp->k;
  /* F = Q L Q' (dsyevr); V = B Q L^1/2 */
  double fmaxv = 0;
  for (size_t i = 0; i < k; i++)
    for (size_t j = 0; j < k; j++) {
      double v = AT(d->F, i, j);
      if (!isfinite(v)) return keeli_error(ctx, KEEL_EINVAL, "qp: F(%zu, %zu) is not finite", i, j);
      if (fabs(v - AT(d->F, j, i)) > 1e-12 * (fabs(v) + fabs(AT(d->F, j, i))) + 1e-300)
        return keeli_error(ctx, KEEL_EINVAL, "qp: F is not symmetric at (%zu, %zu)", i, j);
      qp->W[i * k + j] = v;
      fmaxv = fmax(fmaxv, fabs(v));
    }
  /* ew holds 40 k doubles: 26 k of work, 10 k ints, 2 k ints */
  lapack_int found = 0, *iwork = (lapack_int *)(qp->ew + 26 * k), *isuppz = iwork + 10 * k;
  lapack_int info = LAPACKE_dsyevr_work(LAPACK_ROW_MAJOR, 'V', 'A', 'L', (lapack_int)k, qp->W, (lapack_int)k, 0, 0,
                                        0, 0, 0, &found, qp->Fl, qp->FQ, (lapack_int)k, isuppz, qp->ew,
                                        26 * (lapack_int)k, iwork, 10 * (lapack_int)k);
  if (info != 0) return keeli_error(ctx, KEEL_ENUMERIC, "qp: eigen-decomposition of F failed (%d)", (int)info);
  for (size_t j = 0; j < k; j++) {
    if (qp->Fl[j] < -1e-10 * fmax(fmaxv, 1e-300))
      return keeli_error(ctx, KEEL_EINVAL, "qp: F is not positive semidefinite (eigenvalue %g)", qp->Fl[j]);
    qp->Fl[j] = sqrt(fmax(qp->Fl[j], 0));
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)k, (int)k, 1.0, d->B.data, (int)d->B.ld,
              qp->FQ, (int)k, 0.0, qp->V, (int)k);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < k; j++) qp->V[i * k + j] *= qp->Fl[j];
  return KEEL_OK;
}


/* ---- the reduced system [K R'; R -diag(th)] on nn variables and r rows ----
 * K is dense (Kc) or a diagonal plus low rank (dl0 + Vc Vc'). */

/* Factors K with a small diagonal regularisation (raised if needed) and
 * the Schur complement S = R K^-1 R' + diag(th). 0, or -1 on failure. */
static int kfactor(keel_qp *qp) {
  const size_t nn = qp->nn, r = qp->r, k = qp->k;
  double dmax = 0;
  if (!k)
    for (size_t i = 0; i < nn; i++) dmax = fmax(dmax, fabs(qp->Kc[i * nn + i]));
  else
    for (size_t i = 0; i < nn; i++) dmax = fmax(dmax, qp->dl0[i] + keeli_dot(qp->Vc + i * k, qp->Vc + i * k, k));
  /* a zero K (a linear program's free block) gets an absolute shift; the
   * refinement in kkt_solve removes its effect when the system is regular */
  double delta = dmax > 0 ? 1e-13 * dmax : 1e-10;
  int ok = 0;
  for (int attempt = 0; attempt < 6 && !ok; attempt++, delta *= 100) {
    if (!k) {
      memcpy(qp->K, qp->Kc, nn * nn * sizeof(double));
      for (size_t i = 0; i < nn; i++) qp->K[i * nn + i] += delta;
      ok = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', (lapack_int)nn, qp->K, (lapack_int)nn) == 0;
    } else {
      /* Woodbury: K^-1 = D^-1 - D^-1 Vc W^-1 Vc' D^-1 with W = I + Vc' D^-1 Vc */
      int pos = 1;
      for (size_t i = 0; i < nn; i++) pos &= (qp->dl[i] = qp->dl0[i] + delta) > 0;
      if (!pos) continue;
      memset(qp->W, 0, k * k * sizeof(double));
      for (size_t j = 0; j < k; j++) qp->W[j * k + j] = 1;
      for (size_t i = 0; i < nn; i++)
        cblas_dsyr(CblasRowMajor, CblasLower, (int)k, 1 / qp->dl[i], qp->Vc + i * k, 1, qp->W, (int)k);
      ok = LAPACKE_dpotrf_work(LAPACK_ROW_MAJOR, 'L', (lapack_int)k, qp->W, (lapack_int)k) == 0;
    }
  }
  if (!ok) return -1;
  if (!r) return 0;
  memcpy(qp->KR, qp->R, r * nn * sizeof(double));
  if (!k) {
    LAPACKE_dpotrs_work(LAPACK_COL_MAJOR, 'L', (lapack_int)nn, (lapack_int)r, qp->K, (lapack_int)nn, qp->KR,
                        (lapack_int)nn);
  } else {
    for (size_t a = 0; a < r; a++)
      for (size_t i = 0; i < nn; i++) qp->KR[a * nn + i] /= qp->dl[i];
    /* U = Vc' (D^-1 R') (k x r), U := W^-1 U, KR -= (D^-1 Vc U)' */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)k, (int)r, (int)nn, 1.0, qp->Vc, (int)k, qp->KR, (int)nn,
                0.0, qp->Ukr, (int)r);
    LAPACKE_dpotrs_work(LAPACK_ROW_MAJOR, 'L', (lapack_int)k, (lapack_int)r, qp->W, (lapack_int)k, qp->Ukr,
                        (lapack_int)r);
    for (size_t a = 0; a < r; a++) {
      cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)nn, (int)k, 1.0, qp->Vc, (int)k, qp->Ukr + a, (int)r, 0.0, qp->wn2,
                  1);
      for (size_t i = 0; i < nn; i++) qp->KR[a * nn + i] -= qp->wn2[i] / qp->dl[i];
    }
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)r, (int)nn, 1.0, qp->R, (int)nn, qp->KR, (int)nn,
              0.0, qp->S, (int)r);
  double smax = 0;
  for (size_t a = 0; a < r; a++) qp->S[a * r + a] += qp->th[a], smax = fmax(smax, fabs(qp->S[a * r + a]));
  for (size_t a = 0; a < r; a++) qp->S[a * r + a] += 1e-14 * smax;
  return LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', (lapack_int)r, qp->S, (lapack_int)r) == 0 ? 0 : -1;
}

/* v := K^-1 v (the factored, regularised K). */
static void ksolve(keel_qp *qp, double *v) {
  const size_t nn = qp->nn, k = qp->k;
  if (!k) {
    LAPACKE_dpotrs_work(LAPACK_COL_MAJOR, 'L', (lapack_int)nn, 1, qp->K, (lapack_int)nn, v, (lapack_int)nn);
    return;
  }
  for (size_t i = 0; i < nn; i++) v[i] /= qp->dl[i];
  cblas_dgemv(CblasRowMajor, CblasTrans, (int)nn, (int)k, 1.0, qp->Vc, (int)k, v, 1, 0.0, qp->uk, 1);
  LAPACKE_dpotrs_work(LAPACK_ROW_MAJOR, 'L', (lapack_int)k, 1, qp->W, (lapack_int)k, qp->uk, 1);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)nn, (int)k, 1.0, qp->Vc, (int)k, qp->uk, 1, 0.0, qp->wn2, 1);
  for (size_t i = 0; i < nn; i++) v[i] -= qp->wn2[i] / qp->dl[i];
}

/* out = alpha K v + out (the exact, unregularised K). */
static void kmul(keel_qp *qp, double alpha, const double *v, double *out) {
  const size_t nn = qp->nn, k = qp->k;
  if (!k) {
    cblas_dsymv(CblasRowMajor, CblasLower, (int)nn, alpha, qp->Kc, (int)nn, v, 1, 1.0, out, 1);
    return;
  }
  cblas_dgemv(CblasRowMajor, CblasTrans, (int)nn, (int)k, 1.0, qp->Vc, (int)k, v, 1, 0.0, qp->uk, 1);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)nn, (int)k, alpha, qp->Vc, (int)k, qp->uk, 1, 1.0, out, 1);
  for (size_t i = 0; i < nn; i++) out[i] += alpha * qp->dl0[i] * v[i];
}

/* Solves K dx + R'dv = r1, R dx - diag(th) dv = r2 with the factors,
 * refining against the exact K. */
static void kkt_solve(keel_qp *qp, const double *r1, const double *r2, double *dx, double *dv) {
  const size_t nn = qp->nn, r = qp->r;
  memset(dx, 0, nn * sizeof(double));
  if (r) memset(dv, 0, r * sizeof(double));
  for (int it = 0; it <= REFINE_STEPS; it++) {
    memcpy(qp->e1, r1, nn * sizeof(double));
    if (r) memcpy(qp->e2, r2, r * sizeof(double));
    if (it) {
      kmul(qp, -1.0, dx, qp->e1);
      if (r) {
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)r, (int)nn, -1.0, qp->R, (int)nn, dv, 1, 1.0, qp->e1, 1);
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)r, (int)nn, -1.0, qp->R, (int)nn, dx, 1, 1.0, qp->e2, 1);
        for (size_t a = 0; a < r; a++) qp->e2[a] += qp->th[a] * dv[a];
      }
      /* stop once the residual is at rounding level */
      double en = fmax(norm_inf(qp->e1, nn), r ? norm_inf(qp->e2, r) : 0);
      double rn = fmax(norm_inf(r1, nn), r ? norm_inf(r2, r) : 0);
      if (en <= 1e-15 * rn) break;
    }
    /* t = K^-1 e1; c = S^-1 (R t - e2); dx += t - KR'c; dv += c */
    memcpy(qp->t, qp->e1, nn * sizeof(double));
    ksolve(qp, qp->t);
    if (r) {
      double *c = qp->e2;
      cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)r, (int)nn, 1.0, qp->R, (int)nn, qp->t, 1, -1.0, c, 1);
      LAPACKE_dpotrs_work(LAPACK_COL_MAJOR, 'L', (lapack_int)r, 1, qp->S, (lapack_int)r, c, (lapack_int)r);
      cblas_dgemv(CblasRowMajor, CblasTrans, (int)r, (int)nn, -1.0, qp->KR, (int)nn, c, 1, 1.0, qp->t, 1);
      cblas_daxpy((int)r, 1.0, c, 1, dv, 1);
    }
    cblas_daxpy((int)nn, 1.0, qp->t, 1, dx, 1);
  }
}

/* ---- the interior point ---- */

static size_t cap_row(const keel_qp *qp) { return qp->p + (qp->gs ? qp->m : 0); }

/* Residuals of the current iterate (docs/qp.md). */
static void residuals(keel_qp *qp, const keel_qp_data *d) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  const double *lb = d->lb, *ub = d->ub;
  pmul(qp, d, qp->x, qp->px);
  memcpy(qp->rd, qp->px, n * sizeof(double));
  cblas_daxpy((int)n, 1.0, d->q, 1, qp->rd, 1);
  if (p) matvec(d->A, 1, qp->y, qp->rd, 1.0);
  if (m) matvec(d->G, 1, qp->z, qp->rd, 1.0);
  for (size_t i = 0; i < n; i++) {
    qp->rd[i] += -qp->zl[i] + qp->zu[i] + (qp->l1 ? qp->lam[i] : 0);
    qp->rl[i] = qp->hasl[i] ? qp->x[i] - lb[i] - qp->sl[i] : 0;
    qp->ru[i] = qp->hasu[i] ? qp->x[i] + qp->su[i] - ub[i] : 0;
  }
  if (p) {
    memcpy(qp->rp, d->b, p * sizeof(double));
    matvec(d->A, 0, qp->x, qp->rp, -1.0);
  }
  if (m) {
    for (size_t a = 0; a < m; a++) qp->rg[a] = qp->s[a] - d->h[a];
    matvec(d->G, 0, qp->x, qp->rg, 1.0);
  }
  if (qp->l1) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
      qp->rdb[i] = (d->cu ? d->cu[i] : 0) - qp->lam[i] - qp->zb[i] + qp->zeta;
      qp->rds[i] = (d->cd ? d->cd[i] : 0) + qp->lam[i] - qp->zs[i] + qp->zeta;
      qp->re[i] = qp->x[i] - qp->bb[i] + qp->ss[i] - d->x0[i];
      sum += qp->bb[i] + qp->ss[i];
    }
    qp->rt = d->has_cap ? sum + qp->sig - d->cap : 0;
  }
}

/* Builds the reduced system of the current iterate: K, the rows R and th. */
static void build_system(keel_qp *qp, const keel_qp_data *d) {
  const size_t n = qp->n, p = qp->p, m = qp->m, k = qp->k;
  qp->nn = n;
  if (!k) {
    for (size_t i = 0; i < n; i++) memcpy(qp->Kc + i * n, d->P.data + i * d->P.ld, n * sizeof(double));
    if (m) {
      for (size_t a = 0; a < m; a++) {
        double w = sqrt(qp->z[a] / qp->s[a]);
        for (size_t j = 0; j < n; j++) qp->KR[a * n + j] = w * AT(d->G, a, j); /* scratch */
      }
      cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)n, (int)m, 1.0, qp->KR, (int)n, 1.0, qp->Kc, (int)n);
      for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) qp->Kc[j * n + i] = qp->Kc[i * n + j];
    }
  } else {
    memcpy(qp->dl0, d->d, n * sizeof(double));
    memcpy(qp->Vc, qp->V, n * k * sizeof(double));
  }
  double *diag = k ? qp->dl0 : NULL;
  double th_cap = 0;
  for (size_t i = 0; i < n; i++) {
    double v = 0;
    if (qp->hasl[i]) v += qp->zl[i] / qp->sl[i];
    if (qp->hasu[i]) v += qp->zu[i] / qp->su[i];
    if (qp->l1) {
      double Db = qp->zb[i] / qp->bb[i], Ds = qp->zs[i] / qp->ss[i];
      qp->Ee[i] = Db * Ds / (Db + Ds);
      qp->Eg[i] = (Ds - Db) / (Db + Ds);
      v += qp->Ee[i];
      th_cap += 4 / (Db + Ds);
    }
    if (k)
      diag[i] += v;
    else
      qp->Kc[i * n + i] += v;
  }
  size_t r = 0;
  for (size_t a = 0; a < p; a++, r++) {
    memcpy(qp->R + r * n, d->A.data + a * d->A.ld, n * sizeof(double));
    qp->th[r] = 0;
  }
  if (qp->gs)
    for (size_t a = 0; a < m; a++, r++) {
      memcpy(qp->R + r * n, d->G.data + a * d->G.ld, n * sizeof(double));
      qp->th[r] = qp->s[a] / qp->z[a];
    }
  if (qp->l1 && d->has_cap) {
    memcpy(qp->R + r * n, qp->Eg, n * sizeof(double));
    qp->th[r++] = th_cap + qp->sig / qp->zeta;
  }
  qp->r = r;
}

/* Slack and multiplier steps from dx and dv (the eliminated rows). */
static void recover(keel_qp *qp, const keel_qp_data *d) {
  const size_t n = qp->n, m = qp->m;
  if (m) {
    matvec(d->G, 0, qp->dx, qp->wm, 0.0);
    for (size_t a = 0; a < m; a++) {
      qp->ds[a] = -qp->rg[a] - qp->wm[a];
      qp->dz[a] = (-qp->cs[a] - qp->z[a] * qp->ds[a]) / qp->s[a];
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
  if (qp->l1) {
    qp->dzeta = d->has_cap ? qp->dnu[cap_row(qp)] : 0;
    for (size_t i = 0; i < n; i++) {
      qp->dlam[i] = qp->Ee[i] * (qp->dx[i] - qp->Ec[i]) + qp->Eg[i] * qp->dzeta;
      qp->dbb[i] = (qp->rhob[i] + qp->dlam[i] - qp->dzeta) * qp->bb[i] / qp->zb[i];
      qp->dss[i] = (qp->rhos[i] - qp->dlam[i] - qp->dzeta) * qp->ss[i] / qp->zs[i];
      qp->dzb[i] = (-qp->cb[i] - qp->zb[i] * qp->dbb[i]) / qp->bb[i];
      qp->dzs[i] = (-qp->cc[i] - qp->zs[i] * qp->dss[i]) / qp->ss[i];
    }
    qp->dsig = d->has_cap ? (-qp->ct - qp->sig * qp->dzeta) / qp->zeta : 0;
  }
}

/* Newton direction for the complementarity targets in cs/cl/cu/cb/cc/ct. */
static void direction(keel_qp *qp, const keel_qp_data *d) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  for (size_t i = 0; i < n; i++) qp->r1[i] = -qp->rd[i];
  if (m && !qp->gs) {
    /* r1 -= G' S^-1 (-cs + Z rg) */
    for (size_t a = 0; a < m; a++) qp->wm[a] = (-qp->cs[a] + qp->z[a] * qp->rg[a]) / qp->s[a];
    matvec(d->G, 1, qp->wm, qp->wn, 0.0);
    cblas_daxpy((int)n, -1.0, qp->wn, 1, qp->r1, 1);
  }
  for (size_t i = 0; i < n; i++) {
    if (qp->hasl[i]) qp->r1[i] -= (qp->cl[i] + qp->zl[i] * qp->rl[i]) / qp->sl[i];
    if (qp->hasu[i]) qp->r1[i] -= (-qp->cu[i] + qp->zu[i] * qp->ru[i]) / qp->su[i];
  }
  for (size_t a = 0; a < p; a++) qp->r2[a] = -qp->rp[a];
  if (qp->gs)
    for (size_t a = 0; a < m; a++) qp->r2[p + a] = qp->cs[a] / qp->z[a] - qp->rg[a];
  if (qp->l1) {
    double rt2 = d->has_cap ? -qp->rt + qp->ct / qp->zeta : 0;
    for (size_t i = 0; i < n; i++) {
      double ib = qp->bb[i] / qp->zb[i], is = qp->ss[i] / qp->zs[i]; /* 1/Db, 1/Ds */
      qp->rhob[i] = -qp->rdb[i] - qp->cb[i] / qp->bb[i];
      qp->rhos[i] = -qp->rds[i] - qp->cc[i] / qp->ss[i];
      qp->Ec[i] = qp->rhob[i] * ib - qp->rhos[i] * is - qp->re[i];
      qp->r1[i] += qp->Ee[i] * qp->Ec[i];
      rt2 += -qp->rhob[i] * ib - qp->rhos[i] * is + qp->Eg[i] * qp->Ec[i];
    }
    if (d->has_cap) qp->r2[cap_row(qp)] = rt2;
  }
  kkt_solve(qp, qp->r1, qp->r2, qp->dx, qp->dnu);
  recover(qp, d);
  /* Refine against the full dual row e = -rd - (P dx + A'dy + G'dz - dzl +
   * dzu + dlam): its error grows with the barrier weights, which the
   * reduced system's refinement does not see. */
  for (int it = 0; it < 2; it++) {
    pmul(qp, d, qp->dx, qp->ef);
    for (size_t i = 0; i < n; i++)
      qp->ef[i] = -qp->rd[i] - qp->ef[i] + qp->dzl[i] - qp->dzu[i] - (qp->l1 ? qp->dlam[i] : 0);
    if (p) {
      matvec(d->A, 1, qp->dnu, qp->wn, 0.0);
      cblas_daxpy((int)n, -1.0, qp->wn, 1, qp->ef, 1);
    }
    if (m) {
      matvec(d->G, 1, qp->dz, qp->wn, 0.0);
      cblas_daxpy((int)n, -1.0, qp->wn, 1, qp->ef, 1);
    }
    if (norm_inf(qp->ef, n) <= 1e-15 * fmax(norm_inf(qp->rd, n), norm_inf(qp->dx, n))) break;
    for (size_t a = 0; a < qp->r; a++) qp->r2[a] = 0;
    kkt_solve(qp, qp->ef, qp->r2, qp->ddx, qp->ddnu);
    cblas_daxpy((int)n, 1.0, qp->ddx, 1, qp->dx, 1);
    if (qp->r) cblas_daxpy((int)qp->r, 1.0, qp->ddnu, 1, qp->dnu, 1);
    recover(qp, d);
  }
}

static double max_step(const double *v, const double *dv, size_t n, const unsigned char *mask, double a) {
  for (size_t i = 0; i < n; i++)
    if ((!mask || mask[i]) && dv[i] < 0) a = fmin(a, -v[i] / dv[i]);
  return a;
}

/* The largest step keeping every slack and multiplier >= 0 (may exceed 1). */
static double step_length(const keel_qp *qp, const keel_qp_data *d) {
  double a = INFINITY;
  a = max_step(qp->s, qp->ds, qp->m, NULL, a);
  a = max_step(qp->z, qp->dz, qp->m, NULL, a);
  a = max_step(qp->sl, qp->dsl, qp->n, qp->hasl, a);
  a = max_step(qp->zl, qp->dzl, qp->n, qp->hasl, a);
  a = max_step(qp->su, qp->dsu, qp->n, qp->hasu, a);
  a = max_step(qp->zu, qp->dzu, qp->n, qp->hasu, a);
  if (qp->l1) {
    a = max_step(qp->bb, qp->dbb, qp->n, NULL, a);
    a = max_step(qp->zb, qp->dzb, qp->n, NULL, a);
    a = max_step(qp->ss, qp->dss, qp->n, NULL, a);
    a = max_step(qp->zs, qp->dzs, qp->n, NULL, a);
    if (d->has_cap) {
      a = max_step(&qp->sig, &qp->dsig, 1, NULL, a);
      a = max_step(&qp->zeta, &qp->dzeta, 1, NULL, a);
    }
  }
  return a;
}

/* Complementarity after a step a along the direction, and the number of pairs. */
static double complementarity(const keel_qp *qp, const keel_qp_data *d, double a, size_t *count) {
  if (a == 0) {
    /* the current products only: the direction buffers may hold a
     * previous solve's values */
    double g = keeli_dot(qp->s, qp->z, qp->m);
    size_t c = qp->m;
    for (size_t i = 0; i < qp->n; i++) {
      if (qp->hasl[i]) g += qp->sl[i] * qp->zl[i], c++;
      if (qp->hasu[i]) g += qp->su[i] * qp->zu[i], c++;
      if (qp->l1) g += qp->bb[i] * qp->zb[i] + qp->ss[i] * qp->zs[i], c += 2;
    }
    if (qp->l1 && d->has_cap) g += qp->sig * qp->zeta, c++;
    if (count) *count = c;
    return g;
  }
  double g = 0;
  size_t c = qp->m;
  for (size_t k = 0; k < qp->m; k++) g += (qp->s[k] + a * qp->ds[k]) * (qp->z[k] + a * qp->dz[k]);
  for (size_t i = 0; i < qp->n; i++) {
    if (qp->hasl[i]) g += (qp->sl[i] + a * qp->dsl[i]) * (qp->zl[i] + a * qp->dzl[i]), c++;
    if (qp->hasu[i]) g += (qp->su[i] + a * qp->dsu[i]) * (qp->zu[i] + a * qp->dzu[i]), c++;
    if (qp->l1) {
      g += (qp->bb[i] + a * qp->dbb[i]) * (qp->zb[i] + a * qp->dzb[i]);
      g += (qp->ss[i] + a * qp->dss[i]) * (qp->zs[i] + a * qp->dzs[i]);
      c += 2;
    }
  }
  if (qp->l1 && d->has_cap) g += (qp->sig + a * qp->dsig) * (qp->zeta + a * qp->dzeta), c++;
  if (count) *count = c;
  return g;
}

/* A Farkas certificate in the current multipliers (docs/qp.md). */
static int primal_infeasible(keel_qp *qp, const keel_qp_data *d, double eps) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  double ny = fmax(fmax(norm_inf(qp->y, p), norm_inf(qp->z, m)), fmax(norm_inf(qp->zl, n), norm_inf(qp->zu, n)));
  if (qp->l1) ny = fmax(fmax(ny, norm_inf(qp->lam, n)), fmax(fmax(norm_inf(qp->zb, n), norm_inf(qp->zs, n)), qp->zeta));
  if (!(ny > 0)) return 0;
  /* v = A'y + G'z - zl + zu (+ lam), c = b'y + h'z - lb'zl + ub'zu (+ x0'lam + cap zeta) */
  memset(qp->wn, 0, n * sizeof(double));
  if (p) matvec(d->A, 1, qp->y, qp->wn, 0.0);
  if (m) matvec(d->G, 1, qp->z, qp->wn, 1.0);
  double c = (p ? keeli_dot(d->b, qp->y, p) : 0) + (m ? keeli_dot(d->h, qp->z, m) : 0), res = 0;
  for (size_t i = 0; i < n; i++) {
    qp->wn[i] += -qp->zl[i] + qp->zu[i];
    if (qp->hasl[i]) c -= d->lb[i] * qp->zl[i];
    if (qp->hasu[i]) c += d->ub[i] * qp->zu[i];
    if (qp->l1) {
      double zt = d->has_cap ? qp->zeta : 0;
      qp->wn[i] += qp->lam[i];
      c += d->x0[i] * qp->lam[i];
      res = fmax(res, fmax(fabs(-qp->lam[i] - qp->zb[i] + zt), fabs(qp->lam[i] - qp->zs[i] + zt)));
    }
  }
  if (qp->l1 && d->has_cap) c += d->cap * qp->zeta;
  res = fmax(res, norm_inf(qp->wn, n));
  return res <= eps * ny && c < -eps * ny * 1e3;
}

/* A direction of recession with negative cost in the current iterate. */
static int dual_infeasible(keel_qp *qp, const keel_qp_data *d, double eps) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  double nx = norm_inf(qp->x, n);
  if (qp->l1) nx = fmax(nx, fmax(norm_inf(qp->bb, n), norm_inf(qp->ss, n)));
  if (!(nx > 0)) return 0;
  for (size_t i = 0; i < n; i++) qp->t[i] = qp->x[i] / nx;
  double slope = keeli_dot(d->q, qp->t, n), qn = norm_inf(d->q, n);
  if (qp->l1)
    for (size_t i = 0; i < n; i++) {
      double tb = qp->bb[i] / nx, ts = qp->ss[i] / nx;
      slope += (d->cu ? d->cu[i] : 0) * tb + (d->cd ? d->cd[i] : 0) * ts;
      if (fabs(qp->t[i] - tb + ts) > eps * 1e3) return 0;
    }
  if (slope >= -eps * 1e3 * fmax(1, qn)) return 0;
  pmul(qp, d, qp->t, qp->wn);
  if (norm_inf(qp->wn, n) > eps) return 0;
  if (p) {
    matvec(d->A, 0, qp->t, qp->e2, 0.0);
    if (norm_inf(qp->e2, p) > eps) return 0;
  }
  if (m) {
    matvec(d->G, 0, qp->t, qp->wm, 0.0);
    for (size_t a = 0; a < m; a++)
      if (qp->wm[a] > eps) return 0;
  }
  for (size_t i = 0; i < n; i++)
    if ((qp->hasl[i] && qp->t[i] < -eps) || (qp->hasu[i] && qp->t[i] > eps)) return 0;
  return 1;
}

/* ---- the active-set solve ("polish" and warm start) ---- */

static double lo_of(const keel_qp_data *d, size_t i) { return d->lb ? d->lb[i] : -INFINITY; }
static double hi_of(const keel_qp_data *d, size_t i) { return d->ub ? d->ub[i] : INFINITY; }

/* The kink x0 is a state only strictly inside the bounds. */
static unsigned char normal_state(const keel_qp_data *d, size_t i, unsigned char st) {
  if (st == V_X0) {
    if (d->x0[i] <= lo_of(d, i)) return V_LB;
    if (d->x0[i] >= hi_of(d, i)) return V_UB;
  }
  return st;
}

/* The active set the interior point has identified: a constraint is
 * active when its slack is below its multiplier. */
static void classify(keel_qp *qp, const keel_qp_data *d) {
  for (size_t i = 0; i < qp->n; i++) {
    const int kink = has_l1_kink(qp, d, i);
    unsigned char st = V_FREE;
    if (qp->hasl[i] && qp->sl[i] < qp->zl[i])
      st = V_LB;
    else if (qp->hasu[i] && qp->su[i] < qp->zu[i])
      st = V_UB;
    else if (kink)
      st = qp->bb[i] < qp->zb[i] && qp->ss[i] < qp->zs[i] ? V_X0 : qp->bb[i] >= qp->ss[i] ? V_UP : V_DOWN;
    qp->vst[i] = kink ? normal_state(d, i, st) : st;
  }
  for (size_t a = 0; a < qp->m; a++) qp->gact[a] = qp->s[a] < qp->z[a];
  qp->capact = qp->l1 && d->has_cap && qp->sig < qp->zeta;
}

/* Subgradient of the cost term at a fixed x_i (at a bound) or in the
 * region of a free one: up = cu + zeta, down = -(cd + zeta). */
static double region_slope(const keel_qp_data *d, size_t i, int up, double zeta) {
  return up ? (d->cu ? d->cu[i] : 0) + zeta : -((d->cd ? d->cd[i] : 0) + zeta);
}

/* One equality-constrained solve on the current active set, then its
 * check. Returns 0 when the candidate satisfies every optimality
 * condition (to the tolerances), the number of violated conditions when it
 * does not, -1 when the solve itself failed. The states of all violated
 * conditions change (a primal-dual active-set step), or with one set only
 * the most violated one's. */
static int polish_once(keel_qp *qp, const keel_qp_data *d, int one) {
  const size_t n = qp->n, p = qp->p, m = qp->m, k = qp->k;
  const int capon = qp->l1 && d->has_cap;
  /* At a degenerate vertex (a variable at its bound that the rows would
   * put there anyway) there are more rows than free variables and the
   * multipliers are not determined; free the variables held by the
   * smallest bound multipliers until the rows can be met. */
  {
    size_t nfree = 0, rows = p + (size_t)(capon && qp->capact);
    for (size_t i = 0; i < n; i++) nfree += qp->vst[i] < V_LB;
    for (size_t a = 0; a < m; a++) rows += qp->gact[a];
    while (nfree < rows) {
      size_t pick = n;
      double best = INFINITY;
      for (size_t i = 0; i < n; i++) {
        double mult = qp->vst[i] == V_LB ? qp->zl[i] : qp->vst[i] == V_UB ? qp->zu[i] : INFINITY;
        if (mult < best) best = mult, pick = i;
      }
      if (pick == n) break;
      int kink = has_l1_kink(qp, d, pick);
      double bnd = qp->vst[pick] == V_LB ? d->lb[pick] : d->ub[pick];
      qp->vst[pick] = !kink ? V_FREE : qp->vst[pick] == V_LB ? (bnd >= d->x0[pick] ? V_UP : V_DOWN)
                                                             : (bnd > d->x0[pick] ? V_UP : V_DOWN);
      nfree++;
    }
  }
  size_t nf = 0;
  double fixed_l1 = 0;
  for (size_t i = 0; i < n; i++) {
    switch (qp->vst[i]) {
      case V_LB: qp->xp[i] = d->lb[i]; break;
      case V_UB: qp->xp[i] = d->ub[i]; break;
      case V_X0: qp->xp[i] = d->x0[i]; break;
      default: qp->xp[i] = 0, qp->fidx[nf++] = i;
    }
    if (capon && qp->vst[i] >= V_LB) fixed_l1 += fabs(qp->xp[i] - d->x0[i]);
  }
  size_t r = p;
  for (size_t a = 0; a < m; a++) r += qp->gact[a];
  r += (size_t)(capon && qp->capact);
  /* more rows than free variables happens at degenerate vertices (a
   * target return equal to the highest one): the rows are then dependent,
   * the regularised Schur complement picks multipliers, and the accuracy
   * checks below decide */
  qp->nn = nf, qp->r = r;
  /* r1 = -(q + P x_fixed + cost slope) on the free variables */
  pmul(qp, d, qp->xp, qp->g);
  for (size_t j = 0; j < nf; j++) {
    size_t i = qp->fidx[j];
    double c = qp->vst[i] == V_UP ? region_slope(d, i, 1, 0) : qp->vst[i] == V_DOWN ? region_slope(d, i, 0, 0) : 0;
    qp->r1[j] = -(d->q[i] + qp->g[i] + c);
  }
  /* rows on the free columns, right-hand sides less the fixed part */
  size_t row = 0;
  for (size_t a = 0; a < p + m; a++) {
    int eq = a < p;
    if (!eq && !qp->gact[a - p]) continue;
    const double *src = eq ? d->A.data + a * d->A.ld : d->G.data + (a - p) * d->G.ld;
    double rhs = eq ? d->b[a] : d->h[a - p];
    for (size_t i = 0; i < n; i++)
      if (qp->vst[i] >= V_LB) rhs -= src[i] * qp->xp[i];
    for (size_t j = 0; j < nf; j++) qp->R[row * nf + j] = src[qp->fidx[j]];
    qp->r2[row] = rhs, qp->th[row] = 0, row++;
  }
  if (capon && qp->capact) {
    double rhs = d->cap - fixed_l1;
    for (size_t j = 0; j < nf; j++) {
      size_t i = qp->fidx[j];
      double sg = qp->vst[i] == V_UP ? 1 : qp->vst[i] == V_DOWN ? -1 : 0;
      qp->R[row * nf + j] = sg;
      rhs += sg * d->x0[i];
    }
    qp->r2[row] = rhs, qp->th[row] = 0, row++;
  }
  if (!nf) {
    if (r && !(norm_inf(qp->r2, r) <= 1e-12 * fmax(1, norm_inf(qp->xp, n)))) return -1;
    if (r) memset(qp->dnu, 0, r * sizeof(double));
  } else {
    if (!k) {
      for (size_t j = 0; j < nf; j++)
        for (size_t l = 0; l < nf; l++) qp->Kc[j * nf + l] = AT(d->P, qp->fidx[j], qp->fidx[l]);
    } else {
      for (size_t j = 0; j < nf; j++) {
        qp->dl0[j] = d->d[qp->fidx[j]];
        memcpy(qp->Vc + j * k, qp->V + qp->fidx[j] * k, k * sizeof(double));
      }
    }
    if (kfactor(qp) != 0) return -1;
    kkt_solve(qp, qp->r1, qp->r2, qp->dx, qp->dnu);
    /* the solve must be accurate: P_FF may be singular */
    memcpy(qp->e1, qp->r1, nf * sizeof(double));
    kmul(qp, -1.0, qp->dx, qp->e1);
    if (r) cblas_dgemv(CblasRowMajor, CblasTrans, (int)r, (int)nf, -1.0, qp->R, (int)nf, qp->dnu, 1, 1.0, qp->e1, 1);
    double scale = fmax(1, fmax(norm_inf(qp->r1, nf), norm_inf(qp->dx, nf)));
    if (!(norm_inf(qp->e1, nf) <= 1e-10 * scale)) return -1;
    if (r) {
      memcpy(qp->e2, qp->r2, r * sizeof(double));
      cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)r, (int)nf, -1.0, qp->R, (int)nf, qp->dx, 1, 1.0, qp->e2, 1);
      if (!(norm_inf(qp->e2, r) <= 1e-12 * fmax(1, norm_inf(qp->r2, r)))) return -1;
    }
    for (size_t j = 0; j < nf; j++) qp->xp[qp->fidx[j]] = qp->dx[j];
  }
  /* multipliers */
  row = 0;
  for (size_t a = 0; a < p; a++) qp->yp[a] = qp->dnu[row++];
  for (size_t a = 0; a < m; a++) qp->zp[a] = qp->gact[a] ? qp->dnu[row++] : 0;
  qp->zetap = capon && qp->capact ? qp->dnu[row++] : 0;
  /* g = Px + q + A'y + G'z */
  pmul(qp, d, qp->xp, qp->g);
  cblas_daxpy((int)n, 1.0, d->q, 1, qp->g, 1);
  if (p) matvec(d->A, 1, qp->yp, qp->g, 1.0);
  if (m) matvec(d->G, 1, qp->zp, qp->g, 1.0);
  /* A candidate is accepted only if it is optimal to rounding: a looser
   * test would take a nearby wrong active set for the right one. */
  const double tp = 1e-12 * fmax(1, norm_inf(qp->xp, n));
  const double td = 1e-12 * fmax(1, norm_inf(qp->g, n));
  const double zt = qp->zetap;
  /* proposed changes, each with how far (in tolerances) its condition is
   * violated: cmag[i] for variables, cmag[n + a] for rows, cmag[n + m]
   * for the cap */
  double *mag = qp->cmag;
  int changes = 0;
  double l1sum = 0;
  for (size_t i = 0; i < n; i++) {
    const double x = qp->xp[i], l = lo_of(d, i), u = hi_of(d, i), gi = qp->g[i];
    const double x0 = qp->l1 ? d->x0[i] : 0;
    const int kink = has_l1_kink(qp, d, i);
    unsigned char st = qp->vst[i], nst = st;
    double lam = 0, zl = 0, zu = 0, v = 0;
    if (qp->l1) l1sum += fabs(x - x0);
    switch (st) {
      case V_FREE:
      case V_UP:
      case V_DOWN:
        if (st == V_UP) lam = region_slope(d, i, 1, zt);
        if (st == V_DOWN) lam = region_slope(d, i, 0, zt);
        if (x < l - tp)
          nst = V_LB, v = (l - x) / tp;
        else if (x > u + tp)
          nst = V_UB, v = (x - u) / tp;
        else if ((st == V_UP && x < x0 - tp) || (st == V_DOWN && x > x0 + tp))
          nst = normal_state(d, i, V_X0), v = fabs(x - x0) / tp;
        break;
      case V_LB:
        lam = kink ? region_slope(d, i, l >= x0, zt) : 0;
        zl = gi + lam;
        if (zl < -td) nst = kink ? (l >= x0 ? V_UP : V_DOWN) : V_FREE, v = -zl / td;
        break;
      case V_UB:
        lam = kink ? region_slope(d, i, u > x0, zt) : 0;
        zu = -(gi + lam);
        if (zu < -td) nst = kink ? (u > x0 ? V_UP : V_DOWN) : V_FREE, v = -zu / td;
        break;
      case V_X0: {
        double up = region_slope(d, i, 1, zt), dn = region_slope(d, i, 0, zt);
        lam = fmin(fmax(-gi, dn), up);
        if (gi + up < -td)
          nst = V_UP, v = -(gi + up) / td;
        else if (gi + dn > td)
          nst = V_DOWN, v = (gi + dn) / td;
        break;
      }
    }
    qp->lamp[i] = lam, qp->zlp[i] = fmax(zl, 0), qp->zup[i] = fmax(zu, 0);
    qp->nvst[i] = nst, mag[i] = nst != st ? v : 0;
    changes += nst != st;
  }
  if (m) {
    matvec(d->G, 0, qp->xp, qp->wm, 0.0);
    for (size_t a = 0; a < m; a++) {
      double over = qp->wm[a] - d->h[a], tol = tp * fmax(1, fabs(d->h[a]));
      mag[n + a] = !qp->gact[a] && over > tol ? over / tol : qp->gact[a] && qp->zp[a] < -td ? -qp->zp[a] / td : 0;
      changes += mag[n + a] > 0;
      qp->zp[a] = fmax(qp->zp[a], 0);
    }
  }
  mag[n + m] = 0;
  if (capon) {
    if (!qp->capact && l1sum > d->cap + tp)
      mag[n + m] = (l1sum - d->cap) / tp;
    else if (qp->capact && zt < -td)
      mag[n + m] = -zt / td;
    changes += mag[n + m] > 0;
  }
  /* apply every change, or with one only the most violated (primal and
   * dual violations compared in units of their tolerances) */
  size_t only = n + m + 1;
  if (one && changes > 1) {
    double worst = 0;
    for (size_t j = 0; j < n + m + 1; j++)
      if (mag[j] > worst) worst = mag[j], only = j;
  }
  for (size_t i = 0; i < n; i++)
    if (only > n + m || only == i) qp->vst[i] = qp->nvst[i];
  for (size_t a = 0; a < m; a++)
    if (mag[n + a] > 0 && (only > n + m || only == n + a)) qp->gact[a] = !qp->gact[a];
  if (mag[n + m] > 0 && (only > n + m || only == n + m)) qp->capact = !qp->capact;
  return changes;
}

/* Active-set iterations from the states in vst/gact/capact. On success
 * the candidate becomes the solution. Returns the number of solves made,
 * negated when no optimal candidate was found. */
static int polish(keel_qp *qp, const keel_qp_data *d, int maxit) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  for (int it = 1; it <= maxit; it++) {
    /* full primal-dual active-set steps converge fast but can cycle;
     * after PDAS_FULL of them, one change per step */
    int rc = polish_once(qp, d, it > PDAS_FULL ? 1 : 0);
    if (rc < 0) return -it;
    if (rc == 0) {
      memcpy(qp->x, qp->xp, n * sizeof(double));
      if (p) memcpy(qp->y, qp->yp, p * sizeof(double));
      if (m) memcpy(qp->z, qp->zp, m * sizeof(double));
      memcpy(qp->zl, qp->zlp, n * sizeof(double));
      memcpy(qp->zu, qp->zup, n * sizeof(double));
      memcpy(qp->lam, qp->lamp, n * sizeof(double));
      qp->zeta = qp->zetap;
      return it;
    }
  }
  return -maxit;
}

/* Objective and residuals of x and its multipliers in the original
 * variables (no split), as reported for a polished solution. */
static void report_x(keel_qp *qp, const keel_qp_data *d, keel_qp_result *res) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  pmul(qp, d, qp->x, qp->g);
  double obj = 0.5 * keeli_dot(qp->x, qp->g, n) + keeli_dot(d->q, qp->x, n), rp = 0, gap = 0, l1sum = 0;
  cblas_daxpy((int)n, 1.0, d->q, 1, qp->g, 1);
  if (p) {
    memcpy(qp->e2, d->b, p * sizeof(double));
    matvec(d->A, 0, qp->x, qp->e2, -1.0);
    rp = norm_inf(qp->e2, p);
    matvec(d->A, 1, qp->y, qp->g, 1.0);
  }
  if (m) {
    matvec(d->G, 0, qp->x, qp->wm, 0.0);
    for (size_t a = 0; a < m; a++) {
      rp = fmax(rp, qp->wm[a] - d->h[a]);
      gap += qp->z[a] * fabs(d->h[a] - qp->wm[a]);
    }
    matvec(d->G, 1, qp->z, qp->g, 1.0);
  }
  double rdn = 0;
  for (size_t i = 0; i < n; i++) {
    double x = qp->x[i], l = lo_of(d, i), u = hi_of(d, i);
    rp = fmax(rp, fmax(l - x, x - u));
    if (qp->hasl[i]) gap += qp->zl[i] * fabs(x - l);
    if (qp->hasu[i]) gap += qp->zu[i] * fabs(u - x);
    double gi = qp->g[i] - qp->zl[i] + qp->zu[i];
    if (qp->l1) {
      double dx = x - d->x0[i];
      obj += dx > 0 ? (d->cu ? d->cu[i] : 0) * dx : (d->cd ? d->cd[i] : 0) * -dx;
      l1sum += fabs(dx);
      gi += qp->lam[i];
    }
    rdn = fmax(rdn, fabs(gi));
  }
  if (qp->l1 && d->has_cap) {
    rp = fmax(rp, l1sum - d->cap);
    gap += qp->zeta * fabs(d->cap - l1sum);
  }
  res->obj = obj, res->res_prim = fmax(rp, 0), res->res_dual = rdn, res->gap = gap;
}

/* ---- the solver ---- */

static void start_point(keel_qp *qp, const keel_qp_data *d) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  for (size_t i = 0; i < n; i++) {
    double l = lo_of(d, i), u = hi_of(d, i), x = 0;
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
    qp->lam[i] = 0;
  }
  if (p) memset(qp->y, 0, p * sizeof(double));
  if (m) {
    matvec(d->G, 0, qp->x, qp->wm, 0.0);
    for (size_t a = 0; a < m; a++) {
      qp->s[a] = fmax(d->h[a] - qp->wm[a], 1);
      qp->z[a] = 1;
    }
  }
  qp->sig = qp->zeta = qp->dsig = qp->dzeta = 0;
  if (qp->l1) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
      qp->bb[i] = fmax(qp->x[i] - d->x0[i], 0) + 1;
      qp->ss[i] = fmax(d->x0[i] - qp->x[i], 0) + 1;
      qp->zb[i] = qp->zs[i] = 1;
      sum += qp->bb[i] + qp->ss[i];
    }
    if (d->has_cap) qp->sig = fmax(d->cap - sum, 1), qp->zeta = 1;
  }
}

/* When the interior point stops without converging (the Newton system
 * loses accuracy as the barrier weights span the range of doubles, or the
 * iteration limit), its best iterate is taken as optimal if every residual
 * is within BEST_ITERATE_SLACK times its tolerance: the polish then makes
 * it exact, or res_prim/res_dual/gap say how accurate it is. */
static void fall_back_to_best(keel_qp *qp, keel_qp_result *res) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  if (res->status == KEEL_QP_OPTIMAL || res->status == KEEL_QP_PRIMAL_INFEASIBLE ||
      res->status == KEEL_QP_DUAL_INFEASIBLE)
    return;
  if (!(qp->best_merit <= BEST_ITERATE_SLACK)) return;
  memcpy(qp->x, qp->bx, n * sizeof(double));
  if (p) memcpy(qp->y, qp->by, p * sizeof(double));
  if (m) memcpy(qp->z, qp->bz, m * sizeof(double));
  memcpy(qp->zl, qp->bzl, n * sizeof(double));
  memcpy(qp->zu, qp->bzu, n * sizeof(double));
  if (qp->l1) memcpy(qp->lam, qp->bl1, n * sizeof(double));
  qp->zeta = qp->best_zeta;
  res->status = KEEL_QP_OPTIMAL;
  res->res_prim = qp->best_rp, res->res_dual = qp->best_rd, res->gap = qp->best_gap, res->obj = qp->best_obj;
}

/* The interior point; res gets the status, iterations and residuals. */
static void interior_point(keel_qp *qp, const keel_qp_data *d, const keel_qp_settings *set, keel_qp_result *res) {
  const size_t n = qp->n, p = qp->p, m = qp->m;
  start_point(qp, d);
  double nb = p ? norm_inf(d->b, p) : 0, nh = m ? norm_inf(d->h, m) : 0, nq = norm_inf(d->q, n);
  if (qp->l1) {
    nb = fmax(nb, norm_inf(d->x0, n));
    if (d->cu) nq = fmax(nq, norm_inf(d->cu, n));
    if (d->cd) nq = fmax(nq, norm_inf(d->cd, n));
    if (d->has_cap) nb = fmax(nb, d->cap);
  }
  double best_rd = INFINITY;
  int stalled = 0;
  res->status = KEEL_QP_MAX_ITER;
  for (int it = 0; it <= set->max_iter; it++) {
    residuals(qp, d);
    size_t cnt;
    double gap = complementarity(qp, d, 0, &cnt);
    double rp = fmax(fmax(p ? norm_inf(qp->rp, p) : 0, m ? norm_inf(qp->rg, m) : 0),
                     fmax(norm_inf(qp->rl, n), norm_inf(qp->ru, n)));
    double rdn = norm_inf(qp->rd, n);
    double sp = fmax(fmax(nb, nh), norm_inf(qp->x, n));
    double sdl = fmax(fmax(norm_inf(qp->px, n), nq), fmax(norm_inf(qp->zl, n), norm_inf(qp->zu, n)));
    double obj = 0.5 * keeli_dot(qp->x, qp->px, n) + keeli_dot(d->q, qp->x, n);
    if (m) sdl = fmax(sdl, norm_inf(qp->z, m));
    if (p) sdl = fmax(sdl, norm_inf(qp->y, p));
    if (qp->l1) {
      rp = fmax(rp, fmax(norm_inf(qp->re, n), fabs(qp->rt)));
      rdn = fmax(rdn, fmax(norm_inf(qp->rdb, n), norm_inf(qp->rds, n)));
      sdl = fmax(sdl, norm_inf(qp->lam, n));
      sp = fmax(sp, fmax(norm_inf(qp->bb, n), norm_inf(qp->ss, n)));
      obj += (d->cu ? keeli_dot(d->cu, qp->bb, n) : 0) + (d->cd ? keeli_dot(d->cd, qp->ss, n) : 0);
    }
    res->obj = obj, res->res_prim = rp, res->res_dual = rdn, res->gap = gap, res->iterations = it;
    int prim_ok = rp <= set->eps_abs + set->eps_rel * sp, gap_ok = gap <= set->eps_gap * (1 + fabs(obj));
    {
      /* remember the best iterate: the worst of the residuals relative to
       * their tolerances */
      double merit = fmax(fmax(rp / (set->eps_abs + set->eps_rel * sp), rdn / (set->eps_abs + set->eps_rel * sdl)),
                          gap / (set->eps_gap * (1 + fabs(obj))));
      if (it == 0 || merit < qp->best_merit) {
        qp->best_merit = merit, qp->best_gap = gap, qp->best_rp = rp, qp->best_rd = rdn;
        qp->best_obj = obj;
        memcpy(qp->bx, qp->x, n * sizeof(double));
        if (p) memcpy(qp->by, qp->y, p * sizeof(double));
        if (m) memcpy(qp->bz, qp->z, m * sizeof(double));
        memcpy(qp->bzl, qp->zl, n * sizeof(double));
        memcpy(qp->bzu, qp->zu, n * sizeof(double));
        if (qp->l1) memcpy(qp->bl1, qp->lam, n * sizeof(double));
        qp->best_zeta = qp->zeta;
      }
    }
    if (prim_ok && gap_ok && rdn <= set->eps_abs + set->eps_rel * sdl) {
      res->status = KEEL_QP_OPTIMAL;
      return;
    }
    /* Reduced dual accuracy: the dual residual can stall at the accuracy
     * of the ill-conditioned Newton system; stop once it has not halved
     * for three iterations and is below sqrt(eps_rel) of its scale. */
    if (rdn < best_rd * 0.5)
      best_rd = rdn, stalled = 0;
    else
      stalled++;
    if (prim_ok && gap_ok && stalled >= 3 && rdn <= sqrt(set->eps_rel) * (1 + sdl)) {
      res->status = KEEL_QP_OPTIMAL;
      return;
    }
    if (it > 0 && primal_infeasible(qp, d, set->eps_infeas)) {
      res->status = KEEL_QP_PRIMAL_INFEASIBLE;
      return;
    }
    if (it > 0 && dual_infeasible(qp, d, set->eps_infeas)) {
      res->status = KEEL_QP_DUAL_INFEASIBLE;
      return;
    }
    if (it == set->max_iter) return;
    double mu = cnt ? gap / (double)cnt : 0;
    build_system(qp, d);
    if (kfactor(qp) != 0) {
      res->status = KEEL_QP_NUMERICAL;
      return;
    }
    /* predictor: pure Newton on the complementarity products = 0 */
    for (size_t a = 0; a < m; a++) qp->cs[a] = qp->s[a] * qp->z[a];
    for (size_t i = 0; i < n; i++) {
      qp->cl[i] = qp->hasl[i] ? qp->sl[i] * qp->zl[i] : 0;
      qp->cu[i] = qp->hasu[i] ? qp->su[i] * qp->zu[i] : 0;
      if (qp->l1) qp->cb[i] = qp->bb[i] * qp->zb[i], qp->cc[i] = qp->ss[i] * qp->zs[i];
    }
    qp->ct = qp->sig * qp->zeta;
    direction(qp, d);
    double a_aff = fmin(1.0, step_length(qp, d)), sigma = 0;
    if (cnt) {
      double mu_aff = complementarity(qp, d, a_aff, NULL) / (double)cnt;
      sigma = fmin(pow(mu_aff / mu, 3), 1);
    }
    /* corrector: product + second-order term - sigma mu */
    for (size_t a = 0; a < m; a++) qp->cs[a] = qp->s[a] * qp->z[a] + qp->ds[a] * qp->dz[a] - sigma * mu;
    for (size_t i = 0; i < n; i++) {
      if (qp->hasl[i]) qp->cl[i] = qp->sl[i] * qp->zl[i] + qp->dsl[i] * qp->dzl[i] - sigma * mu;
      if (qp->hasu[i]) qp->cu[i] = qp->su[i] * qp->zu[i] + qp->dsu[i] * qp->dzu[i] - sigma * mu;
      if (qp->l1) {
        qp->cb[i] = qp->bb[i] * qp->zb[i] + qp->dbb[i] * qp->dzb[i] - sigma * mu;
        qp->cc[i] = qp->ss[i] * qp->zs[i] + qp->dss[i] * qp->dzs[i] - sigma * mu;
      }
    }
    if (qp->l1 && d->has_cap) qp->ct = qp->sig * qp->zeta + qp->dsig * qp->dzeta - sigma * mu;
    direction(qp, d);
    double a = fmin(1.0, STEP_FRACTION * step_length(qp, d));
    if (!(a > 0) || !isfinite(a)) {
      res->status = KEEL_QP_NUMERICAL;
      return;
    }
    cblas_daxpy((int)n, a, qp->dx, 1, qp->x, 1);
    if (p) cblas_daxpy((int)p, a, qp->dnu, 1, qp->y, 1);
    for (size_t c = 0; c < m; c++) qp->s[c] += a * qp->ds[c], qp->z[c] += a * qp->dz[c];
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
      if (qp->hasl[i]) qp->sl[i] += a * qp->dsl[i], qp->zl[i] += a * qp->dzl[i];
      if (qp->hasu[i]) qp->su[i] += a * qp->dsu[i], qp->zu[i] += a * qp->dzu[i];
      if (qp->l1) {
        qp->bb[i] += a * qp->dbb[i], qp->zb[i] += a * qp->dzb[i];
        qp->ss[i] += a * qp->dss[i], qp->zs[i] += a * qp->dzs[i];
        qp->lam[i] += a * qp->dlam[i];
      }
      bad |= !isfinite(qp->x[i]);
    }
    if (qp->l1 && d->has_cap) qp->sig += a * qp->dsig, qp->zeta += a * qp->dzeta;
    if (bad) {
      res->status = KEEL_QP_NUMERICAL;
      return;
    }
  }
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
  if (!st && qp->k) st = prepare_factor(ctx, qp, d);
  if (st) return st;
  for (size_t i = 0; i < qp->n; i++) {
    qp->hasl[i] = d->lb && isfinite(d->lb[i]);
    qp->hasu[i] = d->ub && isfinite(d->ub[i]);
  }
  memset(res, 0, sizeof *res);
  int done = 0;
  if (set->warm_start && qp->have_warm) {
    int it = polish(qp, d, POLISH_WARM);
    res->polish_iter = it < 0 ? -it : it;
    if (it > 0) res->status = KEEL_QP_OPTIMAL, res->warm = res->polished = 1, done = 1;
  }
  if (!done) {
    interior_point(qp, d, set, res);
    fall_back_to_best(qp, res);
    if (res->status == KEEL_QP_OPTIMAL && set->polish) {
      classify(qp, d);
      int it = polish(qp, d, POLISH_AFTER_IPM);
      res->polish_iter += it < 0 ? -it : it;
      res->polished = it > 0;
      if (it < 0) classify(qp, d);
    } else if (res->status == KEEL_QP_OPTIMAL) {
      classify(qp, d);
    }
  }
  qp->have_warm = res->status == KEEL_QP_OPTIMAL;
  if (res->polished) report_x(qp, d, res);
  res->x = qp->x;
  res->y = qp->y;
  res->z = qp->z;
  res->zl = qp->zl;
  res->zu = qp->zu;
  res->l1 = qp->l1 ? qp->lam : NULL;
  res->cap_mult = qp->zeta;
  return KEEL_OK;
}
