/** @file
 * @brief keel — mean-variance portfolio optimisation (core/).
 *
 * Weights w over n assets from expected returns mu and a covariance given
 * dense or as a factor model B F B' + diag(d). Objectives: minimum
 * variance, minimum variance for a target return, maximum return for a
 * target volatility, maximum Sharpe ratio, maximum utility
 * mu'w - (gamma/2) w'Sw - costs; and the efficient frontier. Constraints:
 * fully invested or with cash (earning the risk-free rate), per-asset
 * bounds, group bounds, a turnover cap ||w - w0||_1 <= t, proportional buy
 * and sell costs relative to current weights w0. All on core/qp.c.
 *
 * Errors: KEEL_EINVAL for bad input (NaN, shapes, unknown options);
 * KEEL_EINFEASIBLE when no portfolio satisfies the constraints, with a
 * message naming the constraint group at fault (and for a maximum Sharpe
 * ratio when no feasible portfolio beats the risk-free rate);
 * KEEL_ENUMERIC for a covariance that is not PSD when repair was not
 * asked for. docs/optimize.md.
 */
#ifndef KEEL_MV_H
#define KEEL_MV_H

#include <stddef.h>

#include "keel/ctx.h"
#include "keel/matrix.h"
#include "keel/qp.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief What the optimiser maximises or minimises. */
typedef enum keel_objective {
  KEEL_OBJ_MIN_VARIANCE = 0, /**< minimum variance */
  KEEL_OBJ_TARGET_RETURN, /**< minimum variance with mu'w (+ cash) = target_return */
  KEEL_OBJ_TARGET_VOL,    /**< maximum return with volatility = target_vol */
  KEEL_OBJ_MAX_SHARPE,    /**< maximum (mu'w - risk_free) / vol, fully invested */
  KEEL_OBJ_UTILITY        /**< maximum mu'w - gamma/2 w'Sw - costs */
} keel_objective;

/** @brief Name of an objective.
 * @param o the objective
 * @return a static string: "min_variance", "target_return", "target_vol",
 *         "max_sharpe", "utility" ("unknown" out of range) */
KEEL_API const char *keel_objective_name(keel_objective o);
/** @brief Parses the name of an objective (@ref keel_objective_name).
 * @param name the name
 * @return the objective, or -1 for an unknown name */
KEEL_API int keel_objective_parse(const char *name);

/** @brief What to do with a covariance that is not positive semidefinite. */
typedef enum keel_psd_policy {
  KEEL_PSD_REJECT = 0, /**< a covariance with a negative eigenvalue (beyond rounding) is an error */
  KEEL_PSD_REPAIR      /**< ... is replaced by its nearest PSD matrix (eigenvalue clipping) */
} keel_psd_policy;

/** @brief Covariance B F B' + diag(d). */
typedef struct keel_factor_model {
  size_t k;        /**< number of factors */
  keel_cmat B;     /**< n x k loadings */
  keel_cmat F;     /**< k x k factor covariance (PSD) */
  const double *d; /**< n specific variances (>= 0) */
} keel_factor_model;

/** @brief A group constraint lo <= sum of w over the listed assets <= hi. */
typedef struct keel_group {
  const char *name;     /**< named in messages */
  const size_t *assets; /**< count asset indices */
  size_t count;         /**< number of assets */
  double lo;            /**< lower bound of the group's weight */
  double hi;            /**< upper bound of the group's weight */
} keel_group;

/** @brief An optimisation: objective and constraints (defaults, from
 * @ref keel_mv_spec_default, in parentheses). */
typedef struct keel_mv_spec {
  keel_objective objective;         /**< the objective (min_variance) */
  double target_return;             /**< for TARGET_RETURN, in the units of mu */
  double target_vol;                /**< for TARGET_VOL, in the units of the covariance */
  double risk_free;                 /**< the return of cash (0) */
  double gamma;                     /**< risk aversion of the utility (> 0; 1) */
  const double *lb;                 /**< per-asset lower bounds; NULL: 0 (long only) */
  const double *ub;                 /**< per-asset upper bounds; NULL: 1 */
  int cash;                         /**< 0: sum w = 1; 1: sum w <= 1, cash the rest */
  const keel_group *groups;         /**< group constraints */
  size_t ngroups;                   /**< number of groups */
  const double *w0;                       /**< current weights (NULL: none held) */
  const double *cost_buy;                 /**< per unit of weight bought (NULL: 0) */
  const double *cost_sell;                /**< per unit of weight sold (NULL: 0) */
  double turnover_cap;                    /**< sum |w - w0| <= cap; INFINITY: none */
  keel_psd_policy psd;                    /**< reject */
  double cond_warn;                       /**< warn above this condition number (1e10) */
  keel_qp_settings qp;                    /**< solver settings (defaults) */
} keel_mv_spec;

/** @brief Fills s with the defaults given in keel_mv_spec.
 * @param[out] s the spec */
KEEL_API void keel_mv_spec_default(keel_mv_spec *s);

/** @brief The optimum's measures and the solver's diagnostics. */
typedef struct keel_mv_result {
  double ret;      /**< expected return mu'w + risk_free * cash */
  double vol;      /**< sqrt(w'Sw) */
  double sharpe;   /**< (ret - risk_free) / vol (NaN when vol is 0) */
  double turnover; /**< sum |w - w0| */
  double cost;     /**< sum cost_buy (w - w0)^+ + cost_sell (w0 - w)^+ */
  double cash;     /**< 1 - sum w */
  double condition;    /**< condition number of the covariance (estimate; NaN for a factor model) */
  int ill_conditioned; /**< condition > cond_warn */
  int psd_repaired;    /**< the covariance was repaired (eigenvalues clipped) */
  double min_eigenvalue; /**< before repair (NaN when not computed: the covariance was PD) */
  double psd_change;     /**< relative Frobenius change of the repair */
  /** utility objective: the marginal utility of wealth dU/db for the budget
   * sum w = b (fully invested) or sum w <= b (with cash: the risk-free rate
   * when the budget does not bind), at b = 1 (NaN for other objectives) */
  double budget_price;
  /* the last QP solve */
  keel_qp_status qp_status; /**< the last QP solve's outcome */
  int qp_iterations;        /**< its interior-point iterations */
  int polished;             /**< 1: it was polished */
  int solves;               /**< QP solves made */
  double res_prim;          /**< its primal residual */
  double res_dual;          /**< its dual residual */
} keel_mv_result;

/** @brief Optimises.
 *
 * Exactly one of cov and fm describes the covariance.
 * @param ctx the context
 * @param n number of assets
 * @param mu n expected returns; may be NULL only for the minimum variance
 *        objective
 * @param cov n x n covariance, or cov.data NULL with fm
 * @param fm a factor model, or NULL with cov
 * @param spec objective and constraints
 * @param[out] w n weights
 * @param[out] res the optimum's measures, or NULL
 * @return KEEL_OK; KEEL_EINVAL for bad input; KEEL_EINFEASIBLE naming the
 *         constraint group at fault; KEEL_ENUMERIC for a covariance that is
 *         not PSD without repair; KEEL_ENOMEM */
KEEL_API keel_status keel_mv_optimize(keel_ctx *ctx, size_t n, const double *mu, keel_cmat cov,
                                      const keel_factor_model *fm, const keel_mv_spec *spec, double *w,
                                      keel_mv_result *res);

/** @brief The efficient frontier: npoints portfolios of minimum variance for
 * target returns evenly spaced from the minimum-variance portfolio's
 * return to the highest feasible return.
 *
 * Each solve is warm-started from the previous one. The spec's objective
 * and targets are ignored; its constraints apply.
 * @param ctx the context
 * @param n number of assets
 * @param mu n expected returns
 * @param cov n x n covariance, or cov.data NULL with fm
 * @param fm a factor model, or NULL with cov
 * @param spec the constraints
 * @param npoints number of points (>= 2)
 * @param[out] ret npoints expected returns
 * @param[out] vol npoints volatilities
 * @param[out] W npoints x n weights
 * @return as @ref keel_mv_optimize */
KEEL_API keel_status keel_mv_frontier(keel_ctx *ctx, size_t n, const double *mu, keel_cmat cov,
                                      const keel_factor_model *fm, const keel_mv_spec *spec, size_t npoints,
                                      double *ret, double *vol, keel_mat W);

/** @brief Risk contributions of weights w: rc_i = w_i (S w)_i / (w'S w),
 * each asset's share of the variance (they sum to 1).
 *
 * The covariance S is given as for @ref keel_mv_optimize, by exactly one of
 * cov and fm.
 * @param ctx the context
 * @param n number of assets
 * @param cov n x n covariance, or cov.data NULL with fm
 * @param fm a factor model, or NULL with cov
 * @param w n weights
 * @param[out] rc n risk contributions; all NaN when w'S w is 0
 * @param[out] vol sqrt(w'S w) (0 when w'S w is 0), or NULL
 * @return KEEL_OK; KEEL_EINVAL for a missing argument, a covariance or
 *         factor model that is not n assets wide, or weights that are not
 *         finite (NaN); KEEL_ENOMEM */
KEEL_API keel_status keel_mv_risk_contributions(keel_ctx *ctx, size_t n, keel_cmat cov, const keel_factor_model *fm,
                                                const double *w, double *rc, double *vol);

/* ---- from holdings to an executable trade list ---- */

/** @brief What the account holds and what the market allows. Arrays have n
 * entries; NULL means the default. */
typedef struct keel_holdings {
  const double *shares;       /**< held now (finite) */
  const double *prices;       /**< per share (> 0) */
  double cash;                /**< >= 0 */
  const double *lot;          /**< shares per lot (NULL: 1, whole shares; 0: any fraction) */
  const double *min_notional; /**< no trade smaller than this, in money (NULL: 0) */
  const double *fee;          /**< fixed fee per trade, in money (NULL: 0) */
} keel_holdings;

/** @brief A trade list's outcome. The values are of the holdings and the
 * cash; value_before = value_after + prop_costs + fees, all at the given
 * prices. */
typedef struct keel_trade_plan {
  double value_before;     /**< value before trading */
  double value_after;      /**< value after trading */
  double cash_after;       /**< cash after trading */
  double prop_costs;       /**< proportional costs of the trades */
  double fees;             /**< fixed fees of the trades */
  size_t ntrades;          /**< trades made */
  double merit;            /**< the plan's merit (see keel_mv_trade_list()) */
  double bound;            /**< an upper bound on the merit of any plan */
  double gap;              /**< bound - merit */
  double continuous_merit; /**< the merit of the continuous optimum (no lots, minimums or fees) */
  double tracking_error; /**< sqrt((w - w*)'S(w - w*)): the plan's weights w against the continuous optimum w* */
  double budget_price;   /**< the value the merit gives a unit of cash */
  int reweightings;      /**< fixed-fee reweighted solves run */
  keel_mv_result mv;     /**< the continuous optimisation's diagnostics */
} keel_trade_plan;

/** @brief Optimises from holdings to whole-lot trades in one call.
 *
 * The current weights w0 are the holdings' (spec->w0 is ignored); the spec's
 * objective gives the continuous optimum w*. The trades then maximise the
 * merit
 *   M(w) = mu_m'w + nu (1 - 1'w) - gamma/2 w'Sw - costs(w - w0) - fees / V
 * over whole lots, trades of at least the minimum notional, cash never
 * negative, the spec's bounds, groups and turnover cap (a constraint the
 * holdings already break may only be approached), where V is the value
 * before trading, costs the spec's proportional rates (charged whatever
 * the objective), fees the fixed fees of the trades made, nu the budget
 * price (keel_mv_result.budget_price of the relaxation: leftover cash is
 * valued at the marginal utility of wealth), and mu_m the expected returns for
 * the utility objective or, for the others, the returns that make w* the
 * utility optimum, risk_free + gamma S w*, so that M is minus
 * gamma/2 (w - w*)'S(w - w*) and the costs (gamma prices tracking error
 * against costs). The bound is the optimum of the convex relaxation of
 * Lobo, Fazel and Boyd (2007): each fixed fee replaced by its convex
 * envelope fee |dw| / u on the largest feasible trade u; the plan comes
 * from their reweighted-l1 heuristic (fees charged as fee / (|dw| + eps)
 * on the previous solution's trades) followed by lot rounding and a
 * coordinate search. docs/optimize.md.
 * @param ctx the context
 * @param n number of assets
 * @param mu n expected returns (may be NULL for the minimum variance objective)
 * @param cov n x n covariance, or cov.data NULL with fm
 * @param fm a factor model, or NULL with cov
 * @param spec objective and constraints (spec->w0 is ignored)
 * @param holdings what is held and what the market allows
 * @param[out] shares n trades in shares, > 0 buys
 * @param[out] weights n weights after trading over value_before, or NULL
 * @param[out] target n continuous optimum w*, or NULL
 * @param[out] plan the plan's outcome
 * @return KEEL_OK; KEEL_EINVAL for bad input (no assets, gamma <= 0, bad
 *         holdings); as @ref keel_mv_optimize otherwise */
KEEL_API keel_status keel_mv_trade_list(keel_ctx *ctx, size_t n, const double *mu, keel_cmat cov,
                                        const keel_factor_model *fm, const keel_mv_spec *spec,
                                        const keel_holdings *holdings, double *shares, double *weights,
                                        double *target, keel_trade_plan *plan);

#ifdef __cplusplus
}
#endif
#endif
