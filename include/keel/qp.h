/* keel — a dense convex QP solver (core/).
 *
 *   minimise    1/2 x'Px + q'x
 *   subject to  Ax = b,  Gx <= h,  lb <= x <= ub
 *
 * A primal-dual interior-point method with Mehrotra's predictor-corrector.
 * Bounds and inequalities are eliminated from the Newton system, so each
 * iteration factors one n x n matrix (P + G'WG + diagonal) and one p x p
 * Schur complement for the equalities (LAPACK dpotrf). Setup allocates;
 * solving does not. The solver's outcome is a status in the result, not an
 * error: keel_qp_solve returns KEEL_OK whenever it could run, and an error
 * only for bad input (shapes, NaN). docs/qp.md. */
#ifndef KEEL_QP_H
#define KEEL_QP_H

#include <stddef.h>

#include "keel/ctx.h"
#include "keel/matrix.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum keel_qp_status {
  KEEL_QP_OPTIMAL = 0,
  KEEL_QP_PRIMAL_INFEASIBLE, /* no x satisfies the constraints; y, z hold a certificate */
  KEEL_QP_DUAL_INFEASIBLE,   /* the objective is unbounded below; x holds a direction */
  KEEL_QP_MAX_ITER,          /* iteration limit reached before convergence */
  KEEL_QP_NUMERICAL          /* the Newton system could not be solved reliably */
} keel_qp_status;

KEEL_API const char *keel_qp_status_name(keel_qp_status s);

typedef struct keel_qp_settings {
  double eps_abs;    /* absolute tolerance on the residuals (1e-9) */
  double eps_rel;    /* relative tolerance on the residuals (1e-9) */
  double eps_gap;    /* complementarity gap <= eps_gap (1 + |objective|) (1e-13) */
  double eps_infeas; /* tolerance of infeasibility certificates (1e-9) */
  int max_iter;      /* iteration limit (100) */
} keel_qp_settings;

KEEL_API void keel_qp_settings_default(keel_qp_settings *s);

/* The problem. P is n x n symmetric positive semidefinite (both triangles
 * are read and must agree). A (p x n) and G (m x n) may be empty (p or m 0,
 * data NULL). lb/ub may be NULL (no bounds) or hold -INFINITY / INFINITY
 * for absent bounds. Equality rows should be linearly independent. */
typedef struct keel_qp_data {
  size_t n, p, m;
  keel_cmat P;
  const double *q;
  keel_cmat A;
  const double *b;
  keel_cmat G;
  const double *h;
  const double *lb, *ub;
} keel_qp_data;

typedef struct keel_qp_result {
  keel_qp_status status;
  int iterations;
  double obj;      /* 1/2 x'Px + q'x */
  double res_prim; /* max-norm primal residual (equalities, inequalities, bounds) */
  double res_dual; /* max-norm dual residual Px + q + A'y + G'z - zl + zu */
  double gap;      /* complementarity s'z + sl'zl + su'zu */
  /* borrowed from the solver, valid until its next solve or free */
  const double *x;  /* n */
  const double *y;  /* p: multipliers of Ax = b */
  const double *z;  /* m: multipliers of Gx <= h (>= 0) */
  const double *zl; /* n: multipliers of x >= lb (>= 0, 0 where no bound) */
  const double *zu; /* n: multipliers of x <= ub */
} keel_qp_result;

typedef struct keel_qp keel_qp;

/* A solver for problems of n variables, p equalities and m inequalities. */
KEEL_API keel_status keel_qp_new(keel_ctx *ctx, size_t n, size_t p, size_t m, keel_qp **out);
KEEL_API void keel_qp_free(keel_qp *qp);
/* Solves; settings may be NULL. KEEL_EINVAL for shapes that do not match the
 * solver, NaN or infinite data, lb > ub. */
KEEL_API keel_status keel_qp_solve(keel_ctx *ctx, keel_qp *qp, const keel_qp_data *d, const keel_qp_settings *s,
                                   keel_qp_result *res);

#ifdef __cplusplus
}
#endif
#endif
