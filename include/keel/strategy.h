/** @file
 * @brief keel — strategies: where a sub-account's target weights come from.
 *
 * A strategy is a vtable and an instance state, so C strategies (the
 * built-ins below) and Lua strategies are interchangeable wherever targets
 * are needed: backtests, batches, stress runs and advice. The engine calls
 * `rebalance` on each date the sub-account's schedule is due (and once at
 * the start); the strategy sees prices up to and including that date's
 * close and nothing later.
 *
 * An instance belongs to one run at a time (its state changes); batch
 * runners make one per job.
 */
#ifndef KEEL_STRATEGY_H
#define KEEL_STRATEGY_H

#include <stddef.h>

#include "keel/ctx.h"
#include "keel/date.h"
#include "keel/estimate.h"
#include "keel/mv.h"
#include "keel/panel.h"
#include "keel/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief What a strategy sees on a decision date. Arrays over the
 * sub-account's assets (nassets, in its order). */
typedef struct keel_strategy_input {
  const keel_panel *panel; /**< the whole panel; only rows <= row may be read */
  size_t row;              /**< panel row of the decision (its close) */
  size_t first_row;        /**< the run's first row */
  keel_date date;          /**< the decision's date */
  size_t nassets;          /**< the sub-account's number of assets */
  const size_t *assets;    /**< panel columns */
  const double *weights;   /**< current weights (holding value / sub-account value) */
  const double *shares;    /**< shares held */
  double cash;             /**< the sub-account's cash */
  double value;            /**< the sub-account's value */
  const double *cost_buy;  /**< proportional cost rates per unit bought */
  const double *cost_sell; /**< proportional cost rates per unit sold */
  double periods_per_year; /**< of the panel's rows */
} keel_strategy_input;

/** @brief An optimiser call a strategy made, kept with the run (the audit trail). */
typedef struct keel_opt_record {
  int used;              /**< set to 1 by a strategy that called the optimiser */
  keel_qp_status status; /**< the solver's outcome */
  int iterations;        /**< interior-point iterations */
  int solves;            /**< QP solves */
  int polished;          /**< 1: the solution was polished on its active set */
  double res_prim;       /**< primal residual */
  double res_dual;       /**< dual residual */
  double objective_ret;  /**< the optimum's expected return */
  double objective_vol;  /**< the optimum's volatility */
} keel_opt_record;

/** @brief The vtable of a strategy. */
typedef struct keel_strategy_ops {
  const char *name; /**< the strategy's name */
  /** @brief Called once before the first decision (may be NULL).
   * @param state the instance state
   * @param ctx the run's context
   * @param in what the strategy sees at the first decision
   * @return KEEL_OK, or a status that ends the run */
  keel_status (*init)(void *state, keel_ctx *ctx, const keel_strategy_input *in);
  /** @brief Writes nassets target weights (>= 0, sum <= 1; the rest is cash).
   *
   * A failure ends the run with its status and message.
   * @param state the instance state
   * @param ctx the run's context
   * @param in what the strategy sees on the decision date
   * @param[out] target nassets target weights
   * @param[out] rec filled when it ran the optimiser (may be left alone)
   * @return KEEL_OK, or a status that ends the run */
  keel_status (*rebalance)(void *state, keel_ctx *ctx, const keel_strategy_input *in, double *target,
                           keel_opt_record *rec);
  /** @brief Frees the state (may be NULL).
   * @param state the instance state */
  void (*free)(void *state);
  /** @brief Called after every close the sub-account sees, once its own
   * decisions (DCA, rebalancing) of that close are made (may be NULL).
   *
   * Setting *go to 1 with nassets weights in target rebalances to them at
   * once (reason "strategy"; at the next open when fills are at the open),
   * and they become the sub-account's base weights until the next decision.
   * @param state the instance state
   * @param ctx the run's context
   * @param in what the strategy sees at this close
   * @param[out] target nassets weights, read when *go is set
   * @param[out] go set to 1 to trade to target
   * @param[out] rec filled when it ran the optimiser
   * @return KEEL_OK, or a status that ends the run */
  keel_status (*on_bar)(void *state, keel_ctx *ctx, const keel_strategy_input *in, double *target, int *go,
                        keel_opt_record *rec);
} keel_strategy_ops;

/** @brief A strategy instance: its vtable and its state. */
typedef struct keel_strategy {
  const keel_strategy_ops *ops; /**< the vtable */
  void *state;                  /**< the instance state, passed to every call */
} keel_strategy;

/* ---- strategies from elsewhere ---- */

/** @brief Makes a strategy from a module name or path and its parameters.
 *
 * How run descriptions, batches and stress runs get strategies that core/
 * and backtest/ cannot make themselves (Lua strategies: @ref keel_lua_loader
 * in keel/lua.h). The loader is called from the threads of a batch or
 * stress run at once: it must be thread-safe.
 * @param ud the loader's user data
 * @param ctx the calling thread's context
 * @param module the module name or path
 * @param params_json its parameters, a JSON object, or NULL
 * @param[out] out the strategy
 * @param[out] has_schedule whether the module names its own rebalance schedule
 * @param[out] schedule that schedule, when *has_schedule is set
 * @return KEEL_OK, or an error status with its message in ctx */
typedef keel_status (*keel_strategy_loader_fn)(void *ud, keel_ctx *ctx, const char *module, const char *params_json,
                                               keel_strategy **out, int *has_schedule, keel_schedule *schedule);
/** @brief A strategy loader: the function and its user data. */
typedef struct keel_strategy_loader {
  keel_strategy_loader_fn fn; /**< the function */
  void *ud;                   /**< passed to fn */
} keel_strategy_loader;

/* ---- built-in strategies ---- */

/** @brief The built-in strategies (docs/strategies.md). */
typedef enum keel_builtin {
  KEEL_STRAT_FIXED = 0,    /**< the given weights */
  KEEL_STRAT_EQUAL,        /**< 1/n over the assets with a price (times `invest`) */
  KEEL_STRAT_INVERSE_VOL,  /**< w_i proportional to 1 / sigma_i over the lookback */
  KEEL_STRAT_MIN_VARIANCE, /**< keel_mv_optimize, min variance, long only, max_weight */
  KEEL_STRAT_MAX_SHARPE,   /**< max Sharpe; with costs: the most return net of costs at the max-Sharpe volatility */
  KEEL_STRAT_RISK_PARITY   /**< equal risk contribution (Spinu's convex form, Newton) */
} keel_builtin;

/** @brief Name of a built-in strategy.
 * @param b the strategy
 * @return a static string: "fixed", "equal", "inverse_vol", "min_variance",
 *         "max_sharpe", "risk_parity" ("unknown" out of range) */
KEEL_API const char *keel_builtin_name(keel_builtin b);
/** @brief Parses the name of a built-in strategy.
 * @param s one of the names of @ref keel_builtin_name
 * @param[out] out the strategy, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_builtin_parse(const char *s, keel_builtin *out);

/** @brief Parameters of the built-in strategies (defaults in parentheses). */
typedef struct keel_builtin_params {
  const double *weights;  /**< FIXED: nweights target weights */
  size_t nweights;        /**< FIXED: number of weights */
  double invest;          /**< share of the value invested (1); the rest is cash */
  unsigned lookback;      /**< rows of history for estimators (252) */
  keel_cov_kind cov;      /**< covariance estimator (Ledoit-Wolf, identity target) */
  double halflife;        /**< for EWMA estimators (63) */
  double max_weight;      /**< per-asset cap (1) */
  double risk_free;       /**< annual (0) */
  int use_costs;          /**< MAX_SHARPE: charge the sub-account's cost rates (1) */
} keel_builtin_params;

/** @brief Fills p with the defaults given in keel_builtin_params.
 * @param[out] p the parameters */
KEEL_API void keel_builtin_params_default(keel_builtin_params *p);

/** @brief Makes a built-in strategy (copies what p points to).
 *
 * Assets with too little history in the lookback (fewer than 2 returns, or
 * not listed yet) get weight 0 and the others share the investment.
 * @param ctx the context
 * @param kind which strategy
 * @param p its parameters, or NULL for the defaults
 * @param[out] out the strategy; free it with @ref keel_strategy_free
 * @return KEEL_OK; KEEL_EINVAL for an unknown kind or bad parameters;
 *         KEEL_ENOMEM */
KEEL_API keel_status keel_strategy_builtin(keel_ctx *ctx, keel_builtin kind, const keel_builtin_params *p,
                                           keel_strategy **out);
/** @brief Frees a strategy made by keel (calls ops->free); NULL is a no-op.
 * @param s the strategy */
KEEL_API void keel_strategy_free(keel_strategy *s);

/** @brief Equal risk contribution weights.
 *
 * w > 0, sum w = 1, w_i (S w)_i equal for all i. Newton's method on
 * Spinu's convex function.
 * @param ctx the context
 * @param n number of assets
 * @param S n x n covariance (positive definite)
 * @param[out] w n weights
 * @return KEEL_OK; KEEL_EINVAL for a covariance of the wrong shape, not
 *         finite or not symmetric; KEEL_ENUMERIC if it does not converge
 *         to 1e-12; KEEL_ENOMEM */
KEEL_API keel_status keel_risk_parity(keel_ctx *ctx, size_t n, keel_cmat S, double *w);

#ifdef __cplusplus
}
#endif
#endif
