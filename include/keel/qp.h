/** @file
 * @brief keel — a convex QP solver (core/).
 *
 * @verbatim
     minimise    1/2 x'Px + q'x + sum_i cu_i (x_i - x0_i)^+ + cd_i (x0_i - x_i)^+
     subject to  Ax = b,  Gx <= h,  lb <= x <= ub,  sum_i |x_i - x0_i| <= cap
   @endverbatim
 *
 * P is dense, or a factor model B F B' + diag(d) that is never formed. The
 * piecewise-linear term (proportional buy and sell costs around current
 * weights x0) and the cap (a turnover limit) are optional.
 *
 * A primal-dual interior-point method with Mehrotra's predictor-corrector.
 * Bounds, inequalities and the split of x - x0 into buys and sells are
 * eliminated from the Newton system, so each iteration factors one n x n
 * matrix (or, for a factor model, one k x k matrix) and a small Schur
 * complement. An active-set step then solves the optimality conditions on
 * the active set the interior point identified, exactly up to rounding
 * ("polish"); the same step, started from the previous solution's active
 * set, is the warm start. Setup allocates; solving does not. The solver's
 * outcome is a status in the result, not an error: keel_qp_solve returns
 * KEEL_OK whenever it could run, and an error only for bad input (shapes,
 * NaN). docs/qp.md.
 */
#ifndef KEEL_QP_H
#define KEEL_QP_H

#include <stddef.h>

#include "keel/ctx.h"
#include "keel/matrix.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief The outcome of a solve (not an error). */
typedef enum keel_qp_status {
  KEEL_QP_OPTIMAL = 0,       /**< solved to the tolerances */
  KEEL_QP_PRIMAL_INFEASIBLE, /**< no x satisfies the constraints; y, z hold a certificate */
  KEEL_QP_DUAL_INFEASIBLE,   /**< the objective is unbounded below; x holds a direction */
  KEEL_QP_MAX_ITER,          /**< iteration limit reached before convergence */
  KEEL_QP_NUMERICAL          /**< the Newton system could not be solved reliably */
} keel_qp_status;

/** @brief Name of a solver outcome.
 * @param s the outcome
 * @return a static string ("optimal", "primal infeasible", "dual
 *         infeasible (unbounded)", "iteration limit", "numerical failure";
 *         "unknown" out of range) */
KEEL_API const char *keel_qp_status_name(keel_qp_status s);

/** @brief Tolerances and switches of the solver (defaults in parentheses). */
typedef struct keel_qp_settings {
  double eps_abs;    /**< absolute tolerance on the residuals (1e-9) */
  double eps_rel;    /**< relative tolerance on the residuals (1e-9) */
  double eps_gap;    /**< complementarity gap <= eps_gap (1 + |objective|) (1e-10) */
  double eps_infeas; /**< tolerance of infeasibility certificates (1e-9) */
  int max_iter;      /**< iteration limit (100) */
  int polish;        /**< solve exactly on the identified active set (1) */
  int warm_start;    /**< try the previous optimal solution's active set first (0) */
} keel_qp_settings;

/** @brief Fills s with the defaults given in keel_qp_settings.
 * @param[out] s the settings */
KEEL_API void keel_qp_settings_default(keel_qp_settings *s);

/** @brief The shape a solver is made for. */
typedef struct keel_qp_dims {
  size_t n;  /**< variables (1 .. 46340) */
  size_t p;  /**< equality rows (<= n) */
  size_t m;  /**< inequality rows (<= 46340) */
  size_t k;  /**< k > 0: P is a factor model with k factors (k <= n) */
  int l1;    /**< 1: the problem has the buy/sell cost term or the cap */
} keel_qp_dims;

/** @brief The problem.
 *
 * P is n x n symmetric positive semidefinite (both triangles
 * are read and must agree); with a factor model, P is B F B' + diag(d)
 * instead (B n x k, F k x k symmetric PSD, d >= 0) and P.data is not read.
 * A (p x n) and G (m x n) may be empty (p or m 0, data NULL). lb/ub may be
 * NULL (no bounds) or hold -INFINITY / INFINITY for absent bounds. Equality
 * rows should be linearly independent. With l1: x0 (n) is required, cu/cd
 * (n, >= 0) may be NULL for no cost, and has_cap says whether the cap
 * applies. */
typedef struct keel_qp_data {
  size_t n;        /**< variables */
  size_t p;        /**< equality rows */
  size_t m;        /**< inequality rows */
  keel_cmat P;     /**< n x n quadratic term (not read with a factor model) */
  const double *q; /**< n linear term */
  keel_cmat A;     /**< p x n equality rows */
  const double *b; /**< p right-hand sides of Ax = b */
  keel_cmat G;     /**< m x n inequality rows */
  const double *h; /**< m right-hand sides of Gx <= h */
  const double *lb; /**< n lower bounds, or NULL */
  const double *ub; /**< n upper bounds, or NULL */
  keel_cmat B;     /**< factor model: n x k loadings */
  keel_cmat F;     /**< factor model: k x k factor covariance */
  const double *d; /**< factor model: n specific variances */
  const double *x0; /**< l1: n current values the costs are measured from */
  const double *cu; /**< l1: n buy costs (>= 0), or NULL */
  const double *cd; /**< l1: n sell costs (>= 0), or NULL */
  int has_cap;     /**< l1: whether the cap applies */
  double cap;      /**< l1: sum_i |x_i - x0_i| <= cap */
} keel_qp_data;

/** @brief The solution, its outcome and its residuals. The arrays are
 * borrowed from the solver, valid until its next solve or free. */
typedef struct keel_qp_result {
  keel_qp_status status; /**< the outcome */
  int iterations;  /**< interior-point iterations */
  int polish_iter; /**< active-set solves (0: none tried) */
  int polished;    /**< 1: x solves the optimality conditions on its active set exactly */
  int warm;        /**< 1: found from the previous solution's active set, no interior point */
  double obj;      /**< the objective, with the costs */
  double res_prim; /**< max-norm primal residual (equalities, inequalities, bounds) */
  double res_dual; /**< max-norm dual residual Px + q + A'y + G'z - zl + zu */
  double gap;      /**< complementarity s'z + sl'zl + su'zu */
  /* borrowed from the solver, valid until its next solve or free */
  const double *x;  /**< n: the solution (or the certificate's direction) */
  const double *y;  /**< p: multipliers of Ax = b */
  const double *z;  /**< m: multipliers of Gx <= h (>= 0) */
  const double *zl; /**< n: multipliers of x >= lb (>= 0, 0 where no bound) */
  const double *zu; /**< n: multipliers of x <= ub */
  const double *l1; /**< n with l1: the cost term's subgradient, in [-cd - cap_mult, cu + cap_mult] */
  double cap_mult;  /**< multiplier of the cap (>= 0) */
} keel_qp_result;

/** @brief A solver (opaque): the workspace for problems of one shape. */
typedef struct keel_qp keel_qp;

/** @brief A solver for problems of the given shape; setup allocates, solving does not.
 * @param ctx the context
 * @param dims the shape
 * @param[out] out the solver; NULL on failure
 * @return KEEL_OK; KEEL_EINVAL for sizes out of range; KEEL_ENOMEM */
KEEL_API keel_status keel_qp_new(keel_ctx *ctx, const keel_qp_dims *dims, keel_qp **out);
/** @brief Frees a solver; NULL is a no-op.
 * @param qp the solver */
KEEL_API void keel_qp_free(keel_qp *qp);
/** @brief Solves a problem.
 * @param ctx the context
 * @param qp the solver
 * @param d the problem
 * @param s the settings, or NULL for the defaults
 * @param[out] res the outcome and solution (its arrays borrowed from qp)
 * @return KEEL_OK whenever it could run (the outcome is res->status);
 *         KEEL_EINVAL for shapes that do not match the solver, NaN or
 *         infinite data, lb > ub, negative costs or d, a factor covariance
 *         F that is not PSD */
KEEL_API keel_status keel_qp_solve(keel_ctx *ctx, keel_qp *qp, const keel_qp_data *d, const keel_qp_settings *s,
                                   keel_qp_result *res);

#ifdef __cplusplus
}
#endif
#endif
