/* keel — mean-variance portfolio optimisation (core/).
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
 * asked for. docs/optimize.md. */
#ifndef KEEL_MV_H
#define KEEL_MV_H

#include <stddef.h>

#include "keel/ctx.h"
#include "keel/matrix.h"
#include "keel/qp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum keel_objective {
  KEEL_OBJ_MIN_VARIANCE = 0,
  KEEL_OBJ_TARGET_RETURN, /* minimum variance with mu'w (+ cash) = target_return */
  KEEL_OBJ_TARGET_VOL,    /* maximum return with volatility = target_vol */
  KEEL_OBJ_MAX_SHARPE,    /* maximum (mu'w - risk_free) / vol, fully invested */
  KEEL_OBJ_UTILITY        /* maximum mu'w - gamma/2 w'Sw - costs */
} keel_objective;

/* Name <-> objective ("min_variance", "target_return", "target_vol",
 * "max_sharpe", "utility"). Parse returns -1 for an unknown name. */
KEEL_API const char *keel_objective_name(keel_objective o);
KEEL_API int keel_objective_parse(const char *name);

typedef enum keel_psd_policy {
  KEEL_PSD_REJECT = 0, /* a covariance with a negative eigenvalue (beyond rounding) is an error */
  KEEL_PSD_REPAIR      /* ... is replaced by its nearest PSD matrix (eigenvalue clipping) */
} keel_psd_policy;

/* Covariance B F B' + diag(d): B n x k loadings, F k x k factor covariance
 * (PSD), d n specific variances (>= 0). */
typedef struct keel_factor_model {
  size_t k;
  keel_cmat B, F;
  const double *d;
} keel_factor_model;

/* A group constraint lo <= sum of w over the listed assets <= hi. */
typedef struct keel_group {
  const char *name;
  const size_t *assets;
  size_t count;
  double lo, hi;
} keel_group;

typedef struct keel_mv_spec {
  keel_objective objective;
  double target_return, target_vol; /* per the units of mu and the covariance */
  double risk_free;                 /* the return of cash (0) */
  double gamma;                     /* risk aversion of the utility (> 0; 1) */
  const double *lb, *ub;            /* per-asset bounds; NULL: 0 and 1 (long only) */
  int cash;                         /* 0: sum w = 1; 1: sum w <= 1, cash the rest */
  const keel_group *groups;
  size_t ngroups;
  const double *w0;                       /* current weights (NULL: none held) */
  const double *cost_buy, *cost_sell;     /* per unit of weight traded (NULL: 0) */
  double turnover_cap;                    /* sum |w - w0| <= cap; INFINITY: none */
  keel_psd_policy psd;                    /* reject */
  double cond_warn;                       /* warn above this condition number (1e10) */
  keel_qp_settings qp;                    /* solver settings (defaults) */
} keel_mv_spec;

KEEL_API void keel_mv_spec_default(keel_mv_spec *s);

typedef struct keel_mv_result {
  double ret;      /* expected return mu'w + risk_free * cash */
  double vol;      /* sqrt(w'Sw) */
  double sharpe;   /* (ret - risk_free) / vol (NaN when vol is 0) */
  double turnover; /* sum |w - w0| */
  double cost;     /* sum cost_buy (w - w0)^+ + cost_sell (w0 - w)^+ */
  double cash;     /* 1 - sum w */
  double condition;    /* condition number of the covariance (estimate; NaN for a factor model) */
  int ill_conditioned; /* condition > cond_warn */
  int psd_repaired;    /* the covariance was repaired (eigenvalues clipped) */
  double min_eigenvalue; /* before repair (NaN when not computed: the covariance was PD) */
  double psd_change;     /* relative Frobenius change of the repair */
  /* utility objective: the marginal utility of wealth dU/db for the budget
   * sum w = b (fully invested) or sum w <= b (with cash: the risk-free rate
   * when the budget does not bind), at b = 1 (NaN for other objectives) */
  double budget_price;
  /* the last QP solve */
  keel_qp_status qp_status;
  int qp_iterations, polished, solves;
  double res_prim, res_dual;
} keel_mv_result;

/* Optimises: w (n) gets the weights. Exactly one of cov (n x n) and fm
 * (cov.data NULL) describes the covariance; mu (n) may be NULL only for
 * the minimum variance objective. res may be NULL. */
KEEL_API keel_status keel_mv_optimize(keel_ctx *ctx, size_t n, const double *mu, keel_cmat cov,
                                      const keel_factor_model *fm, const keel_mv_spec *spec, double *w,
                                      keel_mv_result *res);

/* The efficient frontier: npoints portfolios of minimum variance for
 * target returns evenly spaced from the minimum-variance portfolio's
 * return to the highest feasible return, each solve warm-started from the
 * previous one. ret, vol (npoints) and W (npoints x n) get the points. The
 * spec's objective and targets are ignored; its constraints apply. */
KEEL_API keel_status keel_mv_frontier(keel_ctx *ctx, size_t n, const double *mu, keel_cmat cov,
                                      const keel_factor_model *fm, const keel_mv_spec *spec, size_t npoints,
                                      double *ret, double *vol, keel_mat W);

/* Risk contributions of weights w (n): rc_i = w_i (S w)_i / (w'S w),
 * each asset's share of the variance (they sum to 1), and *vol (may be
 * NULL) = sqrt(w'S w). The covariance as for keel_mv_optimize. KEEL_EINVAL
 * for NaN weights; rc is all NaN when w'S w is 0. */
KEEL_API keel_status keel_mv_risk_contributions(keel_ctx *ctx, size_t n, keel_cmat cov, const keel_factor_model *fm,
                                                const double *w, double *rc, double *vol);

/* ---- from holdings to an executable trade list ---- */

/* What the account holds and what the market allows. Arrays have n
 * entries; NULL means the default. */
typedef struct keel_holdings {
  const double *shares;       /* held now (finite) */
  const double *prices;       /* per share (> 0) */
  double cash;                /* >= 0 */
  const double *lot;          /* shares per lot (NULL: 1, whole shares; 0: any fraction) */
  const double *min_notional; /* no trade smaller than this, in money (NULL: 0) */
  const double *fee;          /* fixed fee per trade, in money (NULL: 0) */
} keel_holdings;

typedef struct keel_trade_plan {
  /* the value of the holdings and the cash; value_before = value_after +
   * prop_costs + fees, all at the given prices */
  double value_before, value_after, cash_after, prop_costs, fees;
  size_t ntrades;
  /* the plan's merit (see keel_mv_trade_list), an upper bound on the
   * merit of any plan, their difference, and the merit of the continuous
   * optimum (no lots, minimums or fees) */
  double merit, bound, gap, continuous_merit;
  double tracking_error; /* sqrt((w - w*)'S(w - w*)): the plan's weights w against the continuous optimum w* */
  double budget_price;   /* the value the merit gives a unit of cash */
  int reweightings;      /* fixed-fee reweighted solves run */
  keel_mv_result mv;     /* the continuous optimisation's diagnostics */
} keel_trade_plan;

/* Optimises from holdings to whole-lot trades in one call. The current
 * weights w0 are the holdings' (spec->w0 is ignored); the spec's
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
 * coordinate search. shares (n) gets the trades, > 0 buys; weights (n,
 * may be NULL) the weights after trading over value_before; target (n,
 * may be NULL) w*. docs/optimize.md. */
KEEL_API keel_status keel_mv_trade_list(keel_ctx *ctx, size_t n, const double *mu, keel_cmat cov,
                                        const keel_factor_model *fm, const keel_mv_spec *spec,
                                        const keel_holdings *holdings, double *shares, double *weights,
                                        double *target, keel_trade_plan *plan);

#ifdef __cplusplus
}
#endif
#endif
