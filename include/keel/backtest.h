/* keel — the backtest engine (backtest/).
 *
 * This slice runs one account with one sub-account holding a fixed-weight
 * basket over a price panel:
 *   - All trading happens at the close. On the first date the capital (cash)
 *     is invested to the target weights; afterwards the account is
 *     rebalanced back to target on the first trading date of each new
 *     calendar period (day, ISO week, month, quarter, year). Between
 *     rebalances weights drift with prices.
 *   - Every day the holdings are marked to market at the close; a halted
 *     asset (NaN after its first price) is valued at its last price.
 *   - Costs: cost_bps basis points of each trade's notional plus a fixed fee
 *     per trade (an asset whose holding changes). They are paid from the
 *     account, and the post-trade value V' solves
 *         V' = V - sum_i c |h_i(V') - x_i| - fee * ntrades
 *     exactly, so that after paying costs the holdings sit exactly at target.
 *   - An asset without a price on a rebalance date (not listed yet, or
 *     halted) cannot trade: a not-listed asset holds zero and its target
 *     weight waits in cash until the first rebalance at which it has a price;
 *     a halted holding is kept as it is. If kept holdings leave too little
 *     room, the tradable targets are scaled down together so cash never goes
 *     negative.
 *   - Weights summing to less than one leave the rest in cash; cash earns
 *     nothing. Weights must be >= 0 and sum to <= 1.
 * Money is conserved: at every rebalance value_before == value_after + costs
 * (each keel_rebalance records the three), and between rebalances the value
 * changes only with prices.
 */
#ifndef KEEL_BACKTEST_H
#define KEEL_BACKTEST_H

#include <stddef.h>

#include "keel/ctx.h"
#include "keel/metrics.h"
#include "keel/panel.h"
#include "keel/trade.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum keel_calendar {
  KEEL_CAL_DAILY = 0,
  KEEL_CAL_WEEKLY,
  KEEL_CAL_MONTHLY,
  KEEL_CAL_QUARTERLY,
  KEEL_CAL_YEARLY,
  KEEL_CAL_NEVER /* buy and hold after the initial allocation */
} keel_calendar;

/* Static name ("monthly"), and the inverse: returns 0 and sets *out if name
 * is one of daily/weekly/monthly/quarterly/yearly/never, else -1. */
KEEL_API const char *keel_calendar_name(keel_calendar c);
KEEL_API int keel_calendar_parse(const char *name, keel_calendar *out);

typedef struct keel_backtest_config {
  const double *weights;   /* nassets target weights (>= 0, sum <= 1) */
  size_t nweights;         /* must equal the panel's nassets */
  keel_calendar rebalance; /* KEEL_CAL_MONTHLY */
  double cost_bps;         /* proportional cost, basis points of notional (0) */
  double fee;              /* fixed fee per trade (0) */
  double capital;          /* starting cash (100000) */
  double periods_per_year; /* for the metrics (252) */
  double risk_free;        /* annual, for Sharpe and Sortino (0) */
  size_t start;            /* first panel row to use (0) */
  size_t end;              /* one past the last row; 0 = all */
} keel_backtest_config;

KEEL_API void keel_backtest_config_default(keel_backtest_config *cfg);

typedef struct keel_backtest_result keel_backtest_result;

/* Runs the backtest. KEEL_EINVAL for bad weights or settings (message names
 * the asset or field); KEEL_EINFEASIBLE if fees exceed the account's value at
 * a rebalance. On failure *out is NULL. */
KEEL_API keel_status keel_backtest_run(keel_ctx *ctx, const keel_panel *panel,
                                       const keel_backtest_config *cfg,
                                       keel_backtest_result **out);
KEEL_API void keel_backtest_result_free(keel_backtest_result *r);

/* Daily series, one point per panel row used: borrowed, valid while r lives. */
KEEL_API size_t keel_backtest_npoints(const keel_backtest_result *r);
KEEL_API const keel_date *keel_backtest_dates(const keel_backtest_result *r);
KEEL_API const double *keel_backtest_values(const keel_backtest_result *r); /* at the close, after trading */
KEEL_API const double *keel_backtest_cash(const keel_backtest_result *r);
KEEL_API const double *keel_backtest_traded(const keel_backtest_result *r); /* gross notional that day */
KEEL_API const double *keel_backtest_costs(const keel_backtest_result *r);  /* costs paid that day */
/* Holdings in shares after the close of point i: nassets values. */
KEEL_API const double *keel_backtest_holdings(const keel_backtest_result *r, size_t i);
KEEL_API size_t keel_backtest_nassets(const keel_backtest_result *r);

KEEL_API size_t keel_backtest_ntrades(const keel_backtest_result *r);
KEEL_API const keel_trade *keel_backtest_trades(const keel_backtest_result *r);
KEEL_API size_t keel_backtest_nrebalances(const keel_backtest_result *r);
KEEL_API const keel_rebalance *keel_backtest_rebalances(const keel_backtest_result *r);

KEEL_API const keel_metrics *keel_backtest_metrics(const keel_backtest_result *r);
KEEL_API double keel_backtest_capital(const keel_backtest_result *r);

#ifdef __cplusplus
}
#endif
#endif
