/* keel — mean-variance optimisation on the QP solver. docs/optimize.md. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "keel/estimate.h"
#include "keel/mv.h"

static const char *const OBJ_NAMES[] = {"min_variance", "target_return", "target_vol", "max_sharpe", "utility"};

const char *keel_objective_name(keel_objective o) {
  return (unsigned)o < sizeof OBJ_NAMES / sizeof OBJ_NAMES[0] ? OBJ_NAMES[o] : "unknown";
}

int keel_objective_parse(const char *name) {
  for (size_t i = 0; name && i < sizeof OBJ_NAMES / sizeof OBJ_NAMES[0]; i++)
    if (strcmp(name, OBJ_NAMES[i]) == 0) return (int)i;
  return -1;
}

void keel_mv_spec_default(keel_mv_spec *s) {
  memset(s, 0, sizeof *s);
  s->objective = KEEL_OBJ_MIN_VARIANCE;
  s->gamma = 1;
  s->turnover_cap = INFINITY;
  s->psd = KEEL_PSD_REJECT;
  s->cond_warn = 1e10;
  keel_qp_settings_default(&s->qp);
}

/* An assembled problem: the covariance as the solver sees it, bounds, and
 * the linear rows of the current formulation. */
typedef struct mvp {
  keel_ctx *ctx;
  size_t n;
  const double *mu;
  const keel_mv_spec *sp;
  keel_cmat cov;               /* dense (possibly a repaired copy), or data NULL */
  const keel_factor_model *fm; /* or NULL */
  double *covbuf;              /* n x n: a repaired or zero copy */
  double *lb, *ub, *q, *x0, *cu, *cd;
  double *A, *b, *G, *h; /* up to 2 equality rows, mmax inequality rows */
  size_t p, m, mmax;
  const char **gname; /* the constraint each inequality row comes from */
  double *zeroF, *zerod, *ones, *row;
  keel_mv_result *res;
} mvp;


double keeli_cov_quad(keel_cmat cov, const keel_factor_model *f, size_t n, const double *w) {
  double v = 0;
  if (cov.data) {
    for (size_t i = 0; i < n; i++) v += w[i] * keeli_dot(cov.data + i * cov.ld, w, n);
    return v;
  }
  double u[256]; /* k <= 256, checked on input */
  const size_t k = f->k;
  for (size_t a = 0; a < k; a++) {
    u[a] = 0;
    for (size_t i = 0; i < n; i++) u[a] += f->B.data[i * f->B.ld + a] * w[i];
  }
  for (size_t a = 0; a < k; a++) v += u[a] * keeli_dot(f->F.data + a * f->F.ld, u, k);
  for (size_t i = 0; i < n; i++) v += f->d[i] * w[i] * w[i];
  return v;
}

void keeli_cov_mul(keel_cmat cov, const keel_factor_model *f, size_t n, const double *x, double *out) {
  if (cov.data) {
    for (size_t i = 0; i < n; i++) out[i] = keeli_dot(cov.data + i * cov.ld, x, n);
    return;
  }
  double u[256], v[256];
  for (size_t a = 0; a < f->k; a++) {
    u[a] = 0;
    for (size_t i = 0; i < n; i++) u[a] += f->B.data[i * f->B.ld + a] * x[i];
  }
  for (size_t a = 0; a < f->k; a++) v[a] = keeli_dot(f->F.data + a * f->F.ld, u, f->k);
  for (size_t i = 0; i < n; i++) out[i] = keeli_dot(f->B.data + i * f->B.ld, v, f->k) + f->d[i] * x[i];
}

/* w'Sw for the problem's covariance. */
static double quad(const mvp *P, const double *w) { return keeli_cov_quad(P->cov, P->fm, P->n, w); }

static void fill_metrics(const mvp *P, const double *w, keel_mv_result *r) {
  const keel_mv_spec *s = P->sp;
  double sum = 0, ret = 0, to = 0, cost = 0;
  for (size_t i = 0; i < P->n; i++) {
    sum += w[i];
    if (P->mu) ret += P->mu[i] * w[i];
    double w0 = s->w0 ? s->w0[i] : 0, dw = w[i] - w0;
    to += fabs(dw);
    cost += dw > 0 ? (s->cost_buy ? s->cost_buy[i] : 0) * dw : (s->cost_sell ? s->cost_sell[i] : 0) * -dw;
  }
  r->cash = 1 - sum;
  r->ret = P->mu ? ret + s->risk_free * r->cash : NAN;
  r->vol = sqrt(fmax(quad(P, w), 0));
  r->sharpe = r->vol > 0 && P->mu ? (r->ret - s->risk_free) / r->vol : NAN;
  r->turnover = to;
  r->cost = cost;
}

/* ---- input checks ---- */

static keel_status check_inputs(keel_ctx *ctx, size_t n, const double *mu, keel_cmat cov, const keel_factor_model *fm,
                                const keel_mv_spec *s) {
  if (n == 0) return keeli_error(ctx, KEEL_EINVAL, "optimize: no assets");
  if ((cov.data != NULL) == (fm != NULL))
    return keeli_error(ctx, KEEL_EINVAL, "optimize: give either a covariance matrix or a factor model");
  if (cov.data && (cov.rows != n || cov.cols != n || cov.ld < n))
    return keeli_error(ctx, KEEL_EINVAL, "optimize: the covariance is %zu x %zu, expected %zu x %zu", cov.rows,
                       cov.cols, n, n);
  if (fm && (fm->k == 0 || fm->k > 256 || fm->B.rows != n || fm->B.cols != fm->k || fm->F.rows != fm->k ||
             fm->F.cols != fm->k || !fm->d || !fm->B.data || !fm->F.data))
    return keeli_error(ctx, KEEL_EINVAL, "optimize: the factor model must have B n x k, F k x k, d n, 1 <= k <= 256");
  if ((unsigned)s->objective > KEEL_OBJ_UTILITY) return keeli_error(ctx, KEEL_EINVAL, "optimize: unknown objective");
  if (s->objective != KEEL_OBJ_MIN_VARIANCE && !mu)
    return keeli_error(ctx, KEEL_EINVAL, "optimize: %s needs expected returns", keel_objective_name(s->objective));
  for (size_t i = 0; mu && i < n; i++)
    if (!isfinite(mu[i])) return keeli_error(ctx, KEEL_EINVAL, "optimize: expected return %zu is not finite", i);
  if (cov.data)
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) {
        double v = cov.data[i * cov.ld + j];
        if (!isfinite(v)) return keeli_error(ctx, KEEL_EINVAL, "optimize: covariance (%zu, %zu) is not finite", i, j);
        /* asymmetry relative to the entry and to sqrt(S_ii S_jj), so rounding
         * in a near-zero covariance is not taken for asymmetry */
        double sc = fabs(v) + fabs(cov.data[j * cov.ld + i]) + sqrt(fabs(cov.data[i * cov.ld + i] * cov.data[j * cov.ld + j]));
        if (j < i && fabs(v - cov.data[j * cov.ld + i]) > 1e-12 * sc)
          return keeli_error(ctx, KEEL_EINVAL, "optimize: the covariance is not symmetric at (%zu, %zu)", i, j);
      }
  if (!isfinite(s->risk_free)) return keeli_error(ctx, KEEL_EINVAL, "optimize: the risk-free rate is not finite");
  if (s->objective == KEEL_OBJ_UTILITY && !(s->gamma > 0 && s->gamma < INFINITY))
    return keeli_error(ctx, KEEL_EINVAL, "optimize: risk aversion gamma must be > 0 (it is %g)", s->gamma);
  if (s->objective == KEEL_OBJ_TARGET_RETURN && !isfinite(s->target_return))
    return keeli_error(ctx, KEEL_EINVAL, "optimize: the target return is not finite");
  if (s->objective == KEEL_OBJ_TARGET_VOL && !(s->target_vol > 0 && s->target_vol < INFINITY))
    return keeli_error(ctx, KEEL_EINVAL, "optimize: the target volatility must be > 0 (it is %g)", s->target_vol);
  if ((s->cost_buy || s->cost_sell) && s->objective != KEEL_OBJ_UTILITY && s->objective != KEEL_OBJ_TARGET_VOL)
    return keeli_error(ctx, KEEL_EINVAL,
                       "optimize: transaction costs are part of the utility and target_vol objectives, not %s",
                       keel_objective_name(s->objective));
  if (s->objective == KEEL_OBJ_MAX_SHARPE && (s->cash || s->turnover_cap < INFINITY))
    return keeli_error(ctx, KEEL_EINVAL,
                       "optimize: max_sharpe is fully invested and takes no turnover cap (with cash the ratio does not "
                       "depend on how much is held; use target_vol or utility)");
  if (!(s->turnover_cap >= 0)) return keeli_error(ctx, KEEL_EINVAL, "optimize: the turnover cap must be >= 0");
  if (!(s->cond_warn > 0)) return keeli_error(ctx, KEEL_EINVAL, "optimize: cond_warn must be > 0");
  if (s->psd != KEEL_PSD_REJECT && s->psd != KEEL_PSD_REPAIR)
    return keeli_error(ctx, KEEL_EINVAL, "optimize: unknown PSD policy");
  for (size_t i = 0; i < n; i++) {
    const double *v[3] = {s->w0, s->cost_buy, s->cost_sell};
    const char *nm[3] = {"current weight", "buy cost", "sell cost"};
    for (int k = 0; k < 3; k++)
      if (v[k] && (!isfinite(v[k][i]) || (k > 0 && v[k][i] < 0)))
        return keeli_error(ctx, KEEL_EINVAL, "optimize: %s of asset %zu is %g", nm[k], i, v[k][i]);
    double l = s->lb ? s->lb[i] : 0, u = s->ub ? s->ub[i] : 1;
    if (isnan(l) || isnan(u) || l == INFINITY || u == -INFINITY)
      return keeli_error(ctx, KEEL_EINVAL, "optimize: bounds of asset %zu are [%g, %g]", i, l, u);
  }
  for (size_t g = 0; g < s->ngroups; g++) {
    const keel_group *gr = &s->groups[g];
    if (!gr->assets || gr->count == 0 || isnan(gr->lo) || isnan(gr->hi))
      return keeli_error(ctx, KEEL_EINVAL, "optimize: group %s is empty or has NaN bounds", gr->name ? gr->name : "?");
    for (size_t j = 0; j < gr->count; j++)
      if (gr->assets[j] >= n)
        return keeli_error(ctx, KEEL_EINVAL, "optimize: group %s lists asset %zu of %zu", gr->name ? gr->name : "?",
                           gr->assets[j], n);
  }
  return KEEL_OK;
}

/* ---- the covariance: PSD and condition ---- */

static keel_status check_cov(mvp *P, keel_mv_result *r) {
  const size_t n = P->n;
  r->condition = NAN, r->min_eigenvalue = NAN, r->psd_change = 0, r->psd_repaired = 0, r->ill_conditioned = 0;
  if (!P->cov.data) return KEEL_OK;
  double *C = P->covbuf, anorm = 0;
  for (size_t i = 0; i < n; i++) memcpy(C + i * n, P->cov.data + i * P->cov.ld, n * sizeof(double));
  for (size_t j = 0; j < n; j++) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs(C[i * n + j]);
    anorm = fmax(anorm, s);
  }
  if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, C, (lapack_int)n) == 0) {
    double rcond = 0;
    if (LAPACKE_dpocon(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, C, (lapack_int)n, anorm, &rcond) == 0)
      r->condition = rcond > 0 ? 1 / rcond : INFINITY;
    r->ill_conditioned = !(r->condition <= P->sp->cond_warn);
    return KEEL_OK; /* the solver reads the caller's matrix */
  }
  /* not positive definite: look at the eigenvalues */
  for (size_t i = 0; i < n; i++) memcpy(C + i * n, P->cov.data + i * P->cov.ld, n * sizeof(double));
  keel_psd_report rep;
  keel_status st = keel_cov_nearest_psd(P->ctx, keel_mat_view(C, n, n), 0, &rep);
  if (st) return st;
  r->min_eigenvalue = rep.min_eigenvalue;
  double tiny = -1e-10 * fmax(fabs(rep.max_eigenvalue), 1e-300);
  if (rep.min_eigenvalue < tiny && P->sp->psd == KEEL_PSD_REJECT)
    return keeli_error(P->ctx, KEEL_ENUMERIC,
                       "optimize: the covariance is not positive semidefinite (smallest eigenvalue %.6g, largest "
                       "%.6g); ask for repair or fix the estimate",
                       rep.min_eigenvalue, rep.max_eigenvalue);
  /* a negative eigenvalue at rounding level, or repair asked for: clip */
  r->psd_repaired = rep.nclipped > 0;
  r->psd_change = rep.change;
  r->condition = INFINITY; /* clipped at zero: singular */
  r->ill_conditioned = 1;
  P->cov = keel_cmat_view(C, n, n);
  return KEEL_OK;
}

/* ---- rows ---- */

static void add_ineq(mvp *P, const double *row, double rhs, const char *name) {
  memcpy(P->G + P->m * P->n, row, P->n * sizeof(double));
  P->h[P->m] = rhs;
  P->gname[P->m++] = name;
}

/* The group bounds as rows. Over weights (homog 0): sum_g w <= hi and
 * -sum_g w <= -lo. Over the homogeneous y = kappa w with kappa = 1'y
 * (homog 1): sum_g y - hi 1'y <= 0 and lo 1'y - sum_g y <= 0. */
static void group_rows(mvp *P, double *row, int homog) {
  const size_t n = P->n;
  const keel_mv_spec *s = P->sp;
  for (size_t g = 0; g < s->ngroups; g++) {
    const keel_group *gr = &s->groups[g];
    const double bound[2] = {gr->hi, gr->lo}, sign[2] = {1, -1};
    for (int side = 0; side < 2; side++) {
      if (!isfinite(bound[side])) continue;
      for (size_t j = 0; j < n; j++) row[j] = homog ? -sign[side] * bound[side] : 0;
      for (size_t j = 0; j < gr->count; j++) row[gr->assets[j]] += sign[side];
      add_ineq(P, row, homog ? 0 : sign[side] * bound[side], gr->name);
    }
  }
}

/* Budget and group rows in the weights (not for max Sharpe). */
static void weight_rows(mvp *P, double *row) {
  const size_t n = P->n;
  const keel_mv_spec *s = P->sp;
  P->p = 0, P->m = 0;
  for (size_t i = 0; i < n; i++) row[i] = 1;
  if (s->cash)
    add_ineq(P, row, 1, "budget");
  else
    memcpy(P->A, row, n * sizeof(double)), P->b[P->p++] = 1;
  group_rows(P, row, 0);
}

/* The row of the portfolio's excess return: (mu - rf)'w with cash, mu'w
 * fully invested. Sets P->A row p and returns the constant to subtract
 * from a target return. */
static double return_row(const mvp *P, double *row) {
  const keel_mv_spec *s = P->sp;
  for (size_t i = 0; i < P->n; i++) row[i] = P->mu[i] - (s->cash ? s->risk_free : 0);
  return s->cash ? s->risk_free : 0;
}

/* ---- one QP ---- */

typedef struct run {
  keel_qp *qp;
  keel_qp_data d;
  keel_qp_result r;
  int l1;
} run;

static void run_free(run *R) {
  keel_qp_free(R->qp);
  R->qp = NULL;
}

/* Sets up a solver for the current rows. zero_p: P = 0 (a linear program,
 * to find extreme returns), ident: P = I (feasibility). */
static keel_status run_setup(mvp *P, run *R, int l1, int zero_p) {
  const size_t n = P->n;
  memset(&R->d, 0, sizeof R->d);
  R->l1 = l1;
  size_t k = P->fm ? P->fm->k : 0;
  if (zero_p && !P->fm) {
    memset(P->covbuf, 0, n * n * sizeof(double));
    R->d.P = keel_cmat_view(P->covbuf, n, n);
  } else if (zero_p) {
    R->d.B = P->fm->B;
    R->d.F = keel_cmat_view(P->zeroF, k, k);
    R->d.d = P->zerod;
  } else if (P->fm) {
    R->d.B = P->fm->B, R->d.F = P->fm->F, R->d.d = P->fm->d;
  } else {
    R->d.P = P->cov;
  }
  R->d.n = n, R->d.p = P->p, R->d.m = P->m;
  R->d.q = P->q;
  R->d.A = keel_cmat_view(P->A, P->p, n), R->d.b = P->b;
  R->d.G = keel_cmat_view(P->G, P->m, n), R->d.h = P->h;
  R->d.lb = P->lb, R->d.ub = P->ub;
  if (l1) {
    R->d.x0 = P->x0, R->d.cu = P->cu, R->d.cd = P->cd;
    R->d.has_cap = P->sp->turnover_cap < INFINITY;
    R->d.cap = R->d.has_cap ? P->sp->turnover_cap : 0;
  }
  return keel_qp_new(P->ctx, &(keel_qp_dims){n, P->p, P->m, k, l1}, &R->qp);
}

static keel_status run_solve(mvp *P, run *R, int warm) {
  keel_qp_settings s = P->sp->qp;
  s.warm_start = warm;
  keel_status st = keel_qp_solve(P->ctx, R->qp, &R->d, &s, &R->r);
  if (st) return st;
  if (P->res) {
    P->res->qp_status = R->r.status;
    P->res->qp_iterations = R->r.iterations;
    P->res->polished = R->r.polished;
    P->res->res_prim = R->r.res_prim;
    P->res->res_dual = R->r.res_dual;
    P->res->solves++;
  }
  if (R->r.status == KEEL_QP_OPTIMAL || R->r.status == KEEL_QP_PRIMAL_INFEASIBLE) return KEEL_OK;
  return keeli_error(P->ctx, KEEL_ENUMERIC, "optimize: the QP solver stopped: %s after %d iterations",
                     keel_qp_status_name(R->r.status), R->r.iterations);
}

/* ---- feasibility and its diagnosis ---- */

static keel_status infeasible(mvp *P, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static keel_status infeasible(mvp *P, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  keel_status st = keeli_verror(P->ctx, KEEL_EINFEASIBLE, fmt, ap);
  va_end(ap);
  return st;
}

/* Contradictions visible from the bounds alone, named. */
static keel_status precheck(mvp *P) {
  const size_t n = P->n;
  const keel_mv_spec *s = P->sp;
  double slb = 0, sub = 0;
  for (size_t i = 0; i < n; i++) {
    if (P->lb[i] > P->ub[i])
      return infeasible(P, "infeasible: asset %zu has lower bound %g above its upper bound %g", i, P->lb[i], P->ub[i]);
    slb += P->lb[i], sub += P->ub[i];
  }
  if (slb > 1 + 1e-12)
    return infeasible(P, "infeasible: the per-asset lower bounds sum to %.6g, above the budget of 1", slb);
  if (!s->cash && sub < 1 - 1e-12)
    return infeasible(P,
                      "infeasible: the per-asset upper bounds sum to %.6g, below the budget of 1 (allow cash or raise "
                      "them)",
                      sub);
  for (size_t g = 0; g < s->ngroups; g++) {
    const keel_group *gr = &s->groups[g];
    const char *nm = gr->name ? gr->name : "?";
    double glb = 0, gub = 0;
    for (size_t j = 0; j < gr->count; j++) glb += P->lb[gr->assets[j]], gub += P->ub[gr->assets[j]];
    if (gr->lo > gr->hi) return infeasible(P, "infeasible: group %s has lower bound %g above its upper bound %g", nm, gr->lo, gr->hi);
    if (gr->lo > gub + 1e-12)
      return infeasible(P, "infeasible: group %s needs at least %g but its assets' upper bounds sum to %.6g", nm,
                        gr->lo, gub);
    if (gr->hi < glb - 1e-12)
      return infeasible(P, "infeasible: group %s allows at most %g but its assets' lower bounds sum to %.6g", nm,
                        gr->hi, glb);
    if (gr->lo > 1 + 1e-12) return infeasible(P, "infeasible: group %s needs at least %g, above the budget of 1", nm, gr->lo);
    if (!s->cash && fmin(gr->hi, gub) + (sub - gub) < 1 - 1e-12)
      return infeasible(P,
                        "infeasible: group %s allows at most %.6g and the other assets at most %.6g: together below "
                        "the budget of 1",
                        nm, fmin(gr->hi, gub), sub - gub);
  }
  return KEEL_OK;
}

/* The QP found no feasible point: find the constraint whose removal makes
 * the rest feasible, by solving min |w|^2 over the constraints without
 * it (the turnover cap, the target-return row, each group). */
static keel_status diagnose(mvp *P, int has_target, double target) {
  const size_t n = P->n;
  const keel_mv_spec *s = P->sp;
  /* |w|^2 as a factor model with one zero loading and d = 1: no n x n
   * matrix (zerod and zeroF are zero, ones is one) */
  keel_factor_model ident = {1, keel_cmat_view(P->zerod, n, 1), keel_cmat_view(P->zeroF, 1, 1), P->ones};
  const keel_factor_model *save_fm = P->fm;
  keel_cmat save_cov = P->cov;
  P->fm = &ident, P->cov.data = NULL;
  memset(P->q, 0, n * sizeof(double));
  /* candidates in order: the turnover cap, the target row, each group */
  enum { CAP = 0, TARGET = 1, GROUP0 = 2 };
  int culprit = -1;
  keel_status st = KEEL_OK;
  keel_group *gs = NULL;
  if (s->ngroups && !(gs = keeli_alloc_array(P->ctx, s->ngroups, sizeof *gs))) st = KEEL_ENOMEM;
  for (int c = CAP; c < GROUP0 + (int)s->ngroups && culprit < 0 && !st; c++) {
    if ((c == CAP && !(s->turnover_cap < INFINITY)) || (c == TARGET && !has_target)) continue;
    keel_mv_spec s2 = *s;
    if (c == CAP) s2.turnover_cap = INFINITY;
    if (c >= GROUP0) {
      memcpy(gs, s->groups, s->ngroups * sizeof *gs);
      gs[c - GROUP0].lo = -INFINITY, gs[c - GROUP0].hi = INFINITY;
      s2.groups = gs;
    }
    P->sp = &s2;
    weight_rows(P, P->row);
    if (has_target && c != TARGET) {
      double c0 = return_row(P, P->row);
      memcpy(P->A + P->p * n, P->row, n * sizeof(double));
      P->b[P->p++] = target - c0;
    }
    run R = {0};
    st = run_setup(P, &R, s2.turnover_cap < INFINITY, 0);
    if (!st) st = run_solve(P, &R, 0);
    if (!st && R.r.status == KEEL_QP_OPTIMAL) culprit = c;
    run_free(&R);
    P->sp = s;
  }
  keeli_free(P->ctx, gs);
  P->fm = save_fm, P->cov = save_cov;
  if (st) return st;
  if (culprit == CAP)
    return infeasible(P, "infeasible: the turnover cap %g is too small to reach the constraints from the current weights",
                      s->turnover_cap);
  if (culprit == TARGET)
    return infeasible(P, "infeasible: no portfolio within the constraints has expected return %g", target);
  if (culprit >= GROUP0)
    return infeasible(P, "infeasible: group %s cannot be met together with the other constraints",
                      s->groups[culprit - GROUP0].name ? s->groups[culprit - GROUP0].name : "?");
  return infeasible(P, "infeasible: the bounds, budget and groups together admit no portfolio");
}

/* ---- set-up ---- */

static void mv_free(mvp *P) {
  keel_ctx *c = P->ctx;
  double *b[] = {P->covbuf, P->lb, P->ub, P->q, P->x0, P->cu, P->cd, P->A, P->b, P->G, P->h, P->zeroF, P->zerod, P->ones, P->row};
  for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) keeli_free(c, b[i]);
  keeli_free(c, (void *)P->gname);
}

static keel_status mv_init(mvp *P, keel_ctx *ctx, size_t n, const double *mu, keel_cmat cov, const keel_factor_model *fm,
                           const keel_mv_spec *s, keel_mv_result *res) {
  memset(P, 0, sizeof *P);
  P->ctx = ctx, P->n = n, P->mu = mu, P->sp = s, P->cov = cov, P->fm = fm, P->res = res;
  P->mmax = 2 * n + 2 * s->ngroups + 2;
  size_t k = fm ? fm->k : 1;
  int ok = 1;
#define ARR(f, len) ok &= (P->f = keeli_calloc(ctx, (len), sizeof(double))) != NULL;
  ARR(lb, n) ARR(ub, n) ARR(q, n) ARR(x0, n) ARR(cu, n) ARR(cd, n) ARR(A, 2 * n) ARR(b, 2) ARR(G, P->mmax * n);
  ARR(h, P->mmax) ARR(zeroF, k * k) ARR(zerod, n) ARR(ones, n) ARR(row, n);
  if (cov.data) ARR(covbuf, n * n);
#undef ARR
  ok &= (P->gname = keeli_calloc(ctx, P->mmax, sizeof(char *))) != NULL;
  if (!ok) {
    mv_free(P);
    return KEEL_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    P->lb[i] = s->lb ? s->lb[i] : 0;
    P->ub[i] = s->ub ? s->ub[i] : 1;
    P->x0[i] = s->w0 ? s->w0[i] : 0;
    P->ones[i] = 1;
  }
  return KEEL_OK;
}

/* Solves the current rows; KEEL_EINFEASIBLE (diagnosed) when the solver
 * finds no feasible point. */
static keel_status solve_rows(mvp *P, run *R, int l1, int has_target, double target) {
  keel_status st = run_setup(P, R, l1, 0);
  if (!st) st = run_solve(P, R, 0);
  if (!st && R->r.status == KEEL_QP_PRIMAL_INFEASIBLE) st = diagnose(P, has_target, target);
  return st;
}

/* Highest (sign = 1) or lowest (-1) excess return over the constraints,
 * by a linear program. */
static keel_status extreme_return(mvp *P, double sign, double *out, double *wout) {
  const size_t n = P->n;
  double *row = P->row;
  weight_rows(P, row);
  double c0 = return_row(P, row);
  for (size_t i = 0; i < n; i++) P->q[i] = -sign * row[i];
  run R = {0};
  int cap = P->sp->turnover_cap < INFINITY;
  memset(P->cu, 0, n * sizeof(double)), memset(P->cd, 0, n * sizeof(double));
  keel_status st = run_setup(P, &R, cap, 1);
  if (!st) st = run_solve(P, &R, 0);
  if (!st && R.r.status != KEEL_QP_OPTIMAL) st = diagnose(P, 0, 0);
  if (!st) *out = c0 + keeli_dot(row, R.r.x, n);
  if (!st && wout) memcpy(wout, R.r.x, n * sizeof(double));
  run_free(&R);
  return st;
}

/* ---- objectives ---- */

/* Utility form at t = 1/gamma: min 1/2 w'Sw - t (excess) mu'w + t costs. */
static void set_utility(mvp *P, double t) {
  const keel_mv_spec *s = P->sp;
  return_row(P, P->row);
  for (size_t i = 0; i < P->n; i++) {
    P->q[i] = -t * P->row[i];
    P->cu[i] = s->cost_buy ? t * s->cost_buy[i] : 0;
    P->cd[i] = s->cost_sell ? t * s->cost_sell[i] : 0;
  }
}

static int needs_l1(const keel_mv_spec *s) { return s->turnover_cap < INFINITY || s->cost_buy || s->cost_sell; }

static keel_status solve_min_variance(mvp *P, double *w, int target) {
  const size_t n = P->n;
  weight_rows(P, P->row);
  memset(P->q, 0, n * sizeof(double));
  memset(P->cu, 0, n * sizeof(double)), memset(P->cd, 0, n * sizeof(double));
  double tr = P->sp->target_return;
  if (target) {
    double c0 = return_row(P, P->row);
    memcpy(P->A + P->p * n, P->row, n * sizeof(double));
    P->b[P->p++] = tr - c0;
  }
  run R = {0};
  keel_status st = solve_rows(P, &R, P->sp->turnover_cap < INFINITY, target, tr);
  if (!st) memcpy(w, R.r.x, n * sizeof(double));
  run_free(&R);
  return st;
}

static keel_status solve_utility(mvp *P, double *w) {
  weight_rows(P, P->row);
  set_utility(P, 1 / P->sp->gamma);
  run R = {0};
  keel_status st = solve_rows(P, &R, needs_l1(P->sp), 0, 0);
  if (!st) memcpy(w, R.r.x, P->n * sizeof(double));
  /* the QP minimises -U / gamma (with excess returns when there is cash)
   * and P x + q + A'y + G'z + ... = 0: raising the budget by db changes U
   * by gamma y db fully invested, by (risk_free + gamma z) db with cash
   * (the budget is inequality row 0) */
  if (!st && P->res)
    P->res->budget_price = P->sp->cash ? P->sp->risk_free + P->sp->gamma * R.r.z[0] : P->sp->gamma * R.r.y[0];
  run_free(&R);
  return st;
}

/* Maximum return at a target volatility: along the utility path w(t),
 * t = 1/gamma, the variance grows with t and w is affine in t while the
 * active set holds, so the variance is a quadratic in t on each piece.
 * Bracket, then solve the quadratic on the bracket's chord and re-solve at
 * the root until the volatility matches to 1e-12 (exact once the bracket
 * lies on one piece). */
static keel_status solve_target_vol(mvp *P, double *w) {
  const size_t n = P->n;
  const double target = P->sp->target_vol, v2 = target * target;
  weight_rows(P, P->row);
  run R = {0};
  keel_status st = run_setup(P, &R, needs_l1(P->sp), 0);
  double *wlo = NULL, *whi = NULL;
  if (!st) {
    wlo = keeli_alloc_array(P->ctx, n, sizeof(double));
    whi = keeli_alloc_array(P->ctx, n, sizeof(double));
    if (!wlo || !whi) st = KEEL_ENOMEM;
  }
  double tlo = 0, thi = 1, vlo = 0, vhi = 0;
  int warm = 0;
#define SOLVE_AT(t, dst, var)                                                     \
  do {                                                                            \
    set_utility(P, (t));                                                          \
    if (!st) st = run_solve(P, &R, warm);                                         \
    if (!st && R.r.status == KEEL_QP_PRIMAL_INFEASIBLE) st = diagnose(P, 0, 0);   \
    if (!st) memcpy((dst), R.r.x, n * sizeof(double)), (var) = quad(P, (dst));    \
    warm = 1;                                                                     \
  } while (0)
  SOLVE_AT(0.0, wlo, vlo);
  if (!st && vlo > v2 * (1 + 1e-12))
    st = infeasible(P, "infeasible: the target volatility %g is below the lowest achievable, %.6g", target, sqrt(vlo));
  if (!st && vlo >= v2 * (1 - 1e-12)) {
    memcpy(w, wlo, n * sizeof(double));
    goto out;
  }
  /* the end of the path: the highest return net of costs (a linear
   * program); if its volatility is below the target, the volatility
   * constraint does not bind */
  if (!st) {
    run L = {0};
    set_utility(P, 1);
    st = run_setup(P, &L, needs_l1(P->sp), 1);
    if (!st) st = run_solve(P, &L, 0);
    if (!st && L.r.status != KEEL_QP_OPTIMAL) st = diagnose(P, 0, 0);
    if (!st) memcpy(whi, L.r.x, n * sizeof(double)), vhi = quad(P, whi);
    run_free(&L);
    if (!st && vhi <= v2 * (1 + 1e-12)) {
      memcpy(w, whi, n * sizeof(double));
      goto out;
    }
  }
  /* grow t until the volatility passes the target */
  for (int i = 0; !st; i++) {
    SOLVE_AT(thi, whi, vhi);
    if (st || vhi >= v2) break;
    if (i == 40) {
      st = keeli_error(P->ctx, KEEL_ENUMERIC, "optimize: target_vol: no risk aversion down to %g reaches %g", 1 / thi,
                       target);
      break;
    }
    tlo = thi, vlo = vhi, memcpy(wlo, whi, n * sizeof(double));
    thi *= 4;
  }
  for (int it = 0; !st && it < 200; it++) {
    /* chord: w(s) = wlo + s (whi - wlo); a s^2 + b s + c = v2 */
    for (size_t i = 0; i < n; i++) P->row[i] = whi[i] - wlo[i];
    double *dw = P->row;
    double a = quad(P, dw), c = vlo - v2;
    /* b = 2 wlo'S dw = (var(whi) - var(wlo) - a) */
    double b = vhi - vlo - a, sfrac = 0.5;
    if (a > 0) {
      double disc = b * b - 4 * a * c;
      sfrac = disc >= 0 ? (-b + sqrt(disc)) / (2 * a) : 0.5;
    } else if (b != 0) {
      sfrac = -c / b;
    }
    if (!(sfrac > 0 && sfrac < 1)) sfrac = 0.5;
    double tm = tlo + sfrac * (thi - tlo), vm = 0;
    SOLVE_AT(tm, w, vm);
    if (st) break;
    if (fabs(vm - v2) <= 1e-12 * v2 || thi - tlo <= 1e-15 * thi) break;
    if (vm < v2)
      tlo = tm, vlo = vm, memcpy(wlo, w, n * sizeof(double));
    else
      thi = tm, vhi = vm, memcpy(whi, w, n * sizeof(double));
  }
#undef SOLVE_AT
out:
  keeli_free(P->ctx, wlo);
  keeli_free(P->ctx, whi);
  run_free(&R);
  return st;
}

/* Maximum Sharpe ratio by the homogeneous form (Cornuejols and Tutuncu,
 * "Optimization Methods in Finance", section 8.2): y = kappa w with
 * kappa = 1'y > 0 and (mu - rf)'y = 1; minimise y'Sy. Bounds and groups
 * become rows in y scaled by 1'y. */
static keel_status solve_max_sharpe(mvp *P, double *w) {
  const size_t n = P->n;
  const keel_mv_spec *s = P->sp;
  double *row = P->row;
  double *lbw = keeli_alloc_array(P->ctx, n, sizeof(double)), *ubw = keeli_alloc_array(P->ctx, n, sizeof(double));
  if (!lbw || !ubw) {
    keeli_free(P->ctx, lbw), keeli_free(P->ctx, ubw);
    return KEEL_ENOMEM;
  }
  memcpy(lbw, P->lb, n * sizeof(double)), memcpy(ubw, P->ub, n * sizeof(double));
  int neg = 0;
  for (size_t i = 0; i < n; i++) neg |= P->lb[i] < 0;
  P->p = 0, P->m = 0;
  for (size_t i = 0; i < n; i++) row[i] = P->mu[i] - s->risk_free;
  memcpy(P->A, row, n * sizeof(double)), P->b[P->p++] = 1;
  for (size_t i = 0; i < n; i++) {
    if (lbw[i] != 0 && lbw[i] > -INFINITY) { /* lb 1'y - y_i <= 0 */
      for (size_t j = 0; j < n; j++) row[j] = lbw[i];
      row[i] -= 1;
      add_ineq(P, row, 0, "bounds");
    }
    if (ubw[i] < INFINITY && (neg || ubw[i] < 1)) { /* y_i - ub 1'y <= 0 */
      for (size_t j = 0; j < n; j++) row[j] = -ubw[i];
      row[i] += 1;
      add_ineq(P, row, 0, "bounds");
    }
    P->lb[i] = lbw[i] == 0 ? 0 : -INFINITY;
    P->ub[i] = INFINITY;
  }
  group_rows(P, row, 1);
  if (neg) {
    for (size_t j = 0; j < n; j++) row[j] = -1;
    add_ineq(P, row, 0, "budget");
  }
  memset(P->q, 0, n * sizeof(double));
  run R = {0};
  keel_status st = run_setup(P, &R, 0, 0);
  if (!st) st = run_solve(P, &R, 0);
  int infeas = !st && R.r.status == KEEL_QP_PRIMAL_INFEASIBLE;
  double kappa = 0;
  if (!st && !infeas) {
    for (size_t i = 0; i < n; i++) kappa += R.r.x[i];
    if (!(kappa > 0)) infeas = 1;
    for (size_t i = 0; i < n && !infeas; i++) w[i] = R.r.x[i] / kappa;
  }
  run_free(&R);
  memcpy(P->lb, lbw, n * sizeof(double)), memcpy(P->ub, ubw, n * sizeof(double));
  keeli_free(P->ctx, lbw), keeli_free(P->ctx, ubw);
  if (st || !infeas) return st;
  /* no y: either the constraints are contradictory, or no feasible
   * portfolio has a positive excess return */
  double best = 0;
  st = extreme_return(P, 1, &best, NULL);
  if (st) return st;
  return infeasible(P,
                    "max_sharpe: no feasible portfolio has an expected return above the risk-free rate %g (the highest "
                    "is %.6g); the maximum Sharpe ratio is not positive",
                    s->risk_free, best);
}

keel_status keel_mv_optimize(keel_ctx *ctx, size_t n, const double *mu, keel_cmat cov, const keel_factor_model *fm,
                             const keel_mv_spec *spec, double *w, keel_mv_result *res) {
  if (!spec || !w) return keeli_error(ctx, KEEL_EINVAL, "optimize: NULL argument");
  keel_status st = check_inputs(ctx, n, mu, cov, fm, spec);
  if (st) return st;
  keel_mv_result rr;
  if (!res) res = &rr;
  memset(res, 0, sizeof *res);
  res->budget_price = NAN;
  mvp P;
  st = mv_init(&P, ctx, n, mu, cov, fm, spec, res);
  if (st) return st;
  st = check_cov(&P, res);
  if (!st) st = precheck(&P);
  if (!st) {
    switch (spec->objective) {
      case KEEL_OBJ_MIN_VARIANCE: st = solve_min_variance(&P, w, 0); break;
      case KEEL_OBJ_TARGET_RETURN: st = solve_min_variance(&P, w, 1); break;
      case KEEL_OBJ_TARGET_VOL: st = solve_target_vol(&P, w); break;
      case KEEL_OBJ_MAX_SHARPE: st = solve_max_sharpe(&P, w); break;
      case KEEL_OBJ_UTILITY: st = solve_utility(&P, w); break;
    }
  }
  if (!st) fill_metrics(&P, w, res);
  mv_free(&P);
  return st;
}

keel_status keel_mv_frontier(keel_ctx *ctx, size_t n, const double *mu, keel_cmat cov, const keel_factor_model *fm,
                             const keel_mv_spec *spec, size_t npoints, double *ret, double *vol, keel_mat W) {
  if (!spec || !ret || !vol || !mu) return keeli_error(ctx, KEEL_EINVAL, "frontier: NULL argument");
  if (npoints < 2 || W.rows != npoints || W.cols != n || W.ld < n || !W.data)
    return keeli_error(ctx, KEEL_EINVAL, "frontier: need at least 2 points and W of %zu x %zu", npoints, n);
  keel_mv_spec s = *spec;
  s.objective = KEEL_OBJ_MIN_VARIANCE;
  s.cost_buy = s.cost_sell = NULL;
  keel_status st = check_inputs(ctx, n, mu, cov, fm, &s);
  if (st) return st;
  keel_mv_result res;
  memset(&res, 0, sizeof res);
  mvp P;
  st = mv_init(&P, ctx, n, mu, cov, fm, &s, &res);
  if (st) return st;
  st = check_cov(&P, &res);
  if (!st) st = precheck(&P);
  double rmin = 0, rmax = 0;
  if (!st) st = solve_min_variance(&P, W.data, 0);
  if (!st) {
    fill_metrics(&P, W.data, &res);
    rmin = res.ret;
    /* the last point: the highest-return portfolio itself (a vertex where
     * the target-return problem is degenerate) */
    st = extreme_return(&P, 1, &rmax, W.data + (npoints - 1) * W.ld);
  }
  run R = {0};
  if (!st) {
    weight_rows(&P, P.row);
    memset(P.q, 0, n * sizeof(double));
    double c0 = return_row(&P, P.row);
    memcpy(P.A + P.p * n, P.row, n * sizeof(double));
    size_t tr = P.p++;
    st = run_setup(&P, &R, s.turnover_cap < INFINITY, 0);
    for (size_t k = 0; k < npoints && !st; k++) {
      double r = rmin + (rmax - rmin) * (double)k / (double)(npoints - 1);
      if (k == npoints - 1) {
        fill_metrics(&P, W.data + k * W.ld, &res);
        ret[k] = res.ret, vol[k] = res.vol;
        break;
      }
      P.b[tr] = r - c0;
      st = run_solve(&P, &R, k > 0);
      if (!st && R.r.status != KEEL_QP_OPTIMAL)
        st = keeli_error(ctx, KEEL_ENUMERIC, "frontier: point %zu (return %g) failed: %s", k, r,
                         keel_qp_status_name(R.r.status));
      if (!st) {
        double *wk = W.data + k * W.ld;
        memcpy(wk, R.r.x, n * sizeof(double));
        fill_metrics(&P, wk, &res);
        ret[k] = res.ret, vol[k] = res.vol;
      }
    }
  }
  run_free(&R);
  mv_free(&P);
  return st;
}

keel_status keel_mv_risk_contributions(keel_ctx *ctx, size_t n, keel_cmat cov, const keel_factor_model *fm,
                                       const double *w, double *rc, double *vol) {
  if (!w || !rc || n == 0 || (!fm && (!cov.data || cov.rows != n || cov.cols != n)) ||
      (fm && (!fm->B.data || fm->B.rows != n || !fm->d)))
    return keeli_error(ctx, KEEL_EINVAL, "keel_mv_risk_contributions: bad argument");
  for (size_t i = 0; i < n; i++)
    if (!isfinite(w[i])) return keeli_error(ctx, KEEL_EINVAL, "keel_mv_risk_contributions: weight %zu is not finite", i);
  double *sw = keeli_alloc_array(ctx, n, sizeof *sw);
  if (!sw) return KEEL_ENOMEM;
  keeli_cov_mul(cov, fm, n, w, sw);
  double var = keeli_dot(w, sw, n);
  for (size_t i = 0; i < n; i++) rc[i] = var > 0 ? w[i] * sw[i] / var : NAN;
  if (vol) *vol = var > 0 ? sqrt(var) : 0;
  keeli_free(ctx, sw);
  return KEEL_OK;
}
