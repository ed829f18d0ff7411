/* keel — strategies: where a sub-account's target weights come from.
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

/* What a strategy sees on a decision date. Arrays over the sub-account's
 * assets (nassets, in its order). */
typedef struct keel_strategy_input {
  const keel_panel *panel; /* the whole panel; only rows <= row may be read */
  size_t row;              /* panel row of the decision (its close) */
  size_t first_row;        /* the run's first row */
  keel_date date;
  size_t nassets;
  const size_t *assets;    /* panel columns */
  const double *weights;   /* current weights (holding value / sub-account value) */
  const double *shares;
  double cash, value;      /* the sub-account's cash and value */
  const double *cost_buy, *cost_sell; /* proportional cost rates per unit traded */
  double periods_per_year;
} keel_strategy_input;

/* An optimiser call a strategy made, kept with the run (the audit trail). */
typedef struct keel_opt_record {
  int used;             /* set to 1 by a strategy that called the optimiser */
  keel_qp_status status;
  int iterations, solves, polished;
  double res_prim, res_dual;
  double objective_ret, objective_vol; /* the optimum's expected return and volatility */
} keel_opt_record;

typedef struct keel_strategy_ops {
  const char *name;
  /* Called once before the first decision (may be NULL). */
  keel_status (*init)(void *state, keel_ctx *ctx, const keel_strategy_input *in);
  /* Writes nassets target weights (>= 0, sum <= 1; the rest is cash). May
   * fill *rec when it ran the optimiser. A failure ends the run with its
   * status and message. */
  keel_status (*rebalance)(void *state, keel_ctx *ctx, const keel_strategy_input *in, double *target,
                           keel_opt_record *rec);
  /* Frees the state (may be NULL). */
  void (*free)(void *state);
  /* Called after every close the sub-account sees, once its own decisions
   * (DCA, rebalancing) of that close are made (may be NULL). Setting *go to
   * 1 with nassets weights in target rebalances to them at once (reason
   * "strategy"; at the next open when fills are at the open), and they
   * become the sub-account's base weights until the next decision. */
  keel_status (*on_bar)(void *state, keel_ctx *ctx, const keel_strategy_input *in, double *target, int *go,
                        keel_opt_record *rec);
} keel_strategy_ops;

typedef struct keel_strategy {
  const keel_strategy_ops *ops;
  void *state;
} keel_strategy;

/* ---- strategies from elsewhere ---- */

/* Makes a strategy from a module name or path and its parameters (a JSON
 * object, may be NULL): how run descriptions, batches and stress runs get
 * strategies that core/ and backtest/ cannot make themselves (Lua
 * strategies: keel_lua_loader in keel/lua.h). *has_schedule (and *schedule)
 * tell whether the module names its own rebalance schedule. The loader is
 * called from the threads of a batch or stress run at once: it must be
 * thread-safe. */
typedef keel_status (*keel_strategy_loader_fn)(void *ud, keel_ctx *ctx, const char *module, const char *params_json,
                                               keel_strategy **out, int *has_schedule, keel_schedule *schedule);
typedef struct keel_strategy_loader {
  keel_strategy_loader_fn fn;
  void *ud;
} keel_strategy_loader;

/* ---- built-in strategies ---- */

typedef enum keel_builtin {
  KEEL_STRAT_FIXED = 0,    /* the given weights */
  KEEL_STRAT_EQUAL,        /* 1/n over the assets with a price (times `invest`) */
  KEEL_STRAT_INVERSE_VOL,  /* w_i proportional to 1 / sigma_i over the lookback */
  KEEL_STRAT_MIN_VARIANCE, /* keel_mv_optimize, min variance, long only, max_weight */
  KEEL_STRAT_MAX_SHARPE,   /* max Sharpe; with costs: the most return net of costs at the max-Sharpe volatility */
  KEEL_STRAT_RISK_PARITY   /* equal risk contribution (Spinu's convex form, Newton) */
} keel_builtin;

KEEL_API const char *keel_builtin_name(keel_builtin b);
KEEL_API int keel_builtin_parse(const char *s, keel_builtin *out);

typedef struct keel_builtin_params {
  const double *weights;  /* FIXED: nweights target weights */
  size_t nweights;
  double invest;          /* share of the value invested (1); the rest is cash */
  unsigned lookback;      /* rows of history for estimators (252) */
  keel_cov_kind cov;      /* covariance estimator (Ledoit-Wolf, identity target) */
  double halflife;        /* for EWMA estimators (63) */
  double max_weight;      /* per-asset cap (1) */
  double risk_free;       /* annual (0) */
  int use_costs;          /* MAX_SHARPE: charge the sub-account's cost rates (1) */
} keel_builtin_params;

KEEL_API void keel_builtin_params_default(keel_builtin_params *p);

/* Makes a built-in strategy (copies what p points to). Assets with too
 * little history in the lookback (fewer than 2 returns, or not listed yet)
 * get weight 0 and the others share the investment. */
KEEL_API keel_status keel_strategy_builtin(keel_ctx *ctx, keel_builtin kind, const keel_builtin_params *p,
                                           keel_strategy **out);
/* Frees a strategy made by keel (calls ops->free); NULL is a no-op. */
KEEL_API void keel_strategy_free(keel_strategy *s);

/* Equal risk contribution weights for covariance S (n x n, PD): w > 0,
 * sum w = 1, w_i (S w)_i equal for all i. Newton's method on Spinu's
 * convex function; KEEL_ENUMERIC if it does not converge to 1e-12. */
KEEL_API keel_status keel_risk_parity(keel_ctx *ctx, size_t n, keel_cmat S, double *w);

#ifdef __cplusplus
}
#endif
#endif
