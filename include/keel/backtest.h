/** @file
 * @brief keel — the backtest engine (backtest/).
 *
 * An account is a list of sub-accounts over one price panel (e.g. "core"
 * 50% cash / 30% bonds / 20% BTC, a travel fund, an education fund). Each
 * has its own assets, capital, cash, positions and policy: where its
 * targets come from (a fixed basket or a keel_strategy), its schedule,
 * threshold bands, volatility target, cost model, DCA plans and stop rules.
 * Sub-accounts do not lend each other cash; the account is also read as
 * their sum. docs/backtest.md states every rule exactly; in short:
 *   - Trading happens at the close (or, with opens, at the next open). On
 *     the first row each sub-account's capital is invested to its targets;
 *     afterwards it trades on its schedule, on a band breach, a vol-target
 *     move, a DCA date, a stop or a re-entry. Between trades weights drift
 *     with prices.
 *   - Every row the holdings are marked to market at the close; a halted
 *     asset (NaN after its first price) is valued at its last price and
 *     cannot trade; an asset not listed yet holds nothing and its target
 *     waits in cash.
 *   - Costs (keel/policy.h keel_cost_model) are paid from the sub-account.
 *     Without lots the post-trade value V' solves
 *     `V' = V - sum_i c_i |h_i(V') - x_i| - fee * ntrades`
 *     exactly, so holdings sit exactly at target after paying; with lots or
 *     minimum trades the trades are rounded and cash absorbs the rest.
 *     Cash never goes negative and nothing is sold short unless allowed.
 * Money is conserved: at every trade date value_before + flow =
 * value_after + costs for each sub-account (each keel_rebalance records
 * them), and between trades the value changes only with prices.
 *
 * keel_backtest_run keeps the first slice's interface: one sub-account,
 * fixed weights, a calendar and one proportional rate.
 */
#ifndef KEEL_BACKTEST_H
#define KEEL_BACKTEST_H

#include <stddef.h>

#include "keel/ctx.h"
#include "keel/metrics.h"
#include "keel/panel.h"
#include "keel/policy.h"
#include "keel/strategy.h"
#include "keel/trade.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief The simple backtest of keel_backtest_run(): fixed weights, a
 * calendar and one proportional rate (defaults in parentheses). */
typedef struct keel_backtest_config {
  const double *weights;   /**< nassets target weights (>= 0, sum <= 1) */
  size_t nweights;         /**< must equal the panel's nassets */
  keel_calendar rebalance; /**< KEEL_CAL_MONTHLY */
  double cost_bps;         /**< proportional cost, basis points of notional (0) */
  double fee;              /**< fixed fee per trade (0) */
  double capital;          /**< starting cash (100000) */
  double periods_per_year; /**< for the metrics (252) */
  double risk_free;        /**< annual, for Sharpe and Sortino (0) */
  size_t start;            /**< first panel row to use (0) */
  size_t end;              /**< one past the last row; 0 = all */
} keel_backtest_config;

/** @brief Fills cfg with the defaults given in keel_backtest_config.
 * @param[out] cfg the configuration */
KEEL_API void keel_backtest_config_default(keel_backtest_config *cfg);

/** @brief A finished backtest (opaque): series, trades, rebalances, events, metrics. */
typedef struct keel_backtest_result keel_backtest_result;

/* ---- accounts made of sub-accounts ---- */

/** @brief One sub-account of an account: its assets, basket or strategy and
 * policy (defaults, from @ref keel_subaccount_spec_default, in parentheses). */
typedef struct keel_subaccount_spec {
  const char *name;        /**< "core"; unique within the account ("main") */
  size_t nassets;          /**< 0: every column of the panel */
  const size_t *assets;    /**< nassets panel columns (distinct), or NULL with nassets 0 */
  const double *weights;   /**< fixed basket over the assets (>= 0 unless allow_short, sum <= 1), or NULL */
  keel_strategy *strategy; /**< borrowed; gives the targets when weights is NULL */
  double capital;          /**< starting cash (> 0, or 0 when a DCA plan brings the money) (100000) */
  keel_schedule schedule;  /**< when targets are recomputed; also a rebalance unless a band is set (monthly) */
  int rebalance_on_schedule; /**< with a band: rebalance on schedule dates too (0) */
  keel_band band;          /**< threshold band (none) */
  keel_schedule band_check;/**< when the band is checked (daily) */
  keel_voltarget vol;      /**< volatility target (off) */
  keel_cost_model costs;   /**< the cost model (@ref keel_cost_model_default) */
  double skip_gamma;       /**< cost-aware skip: trade only when gamma/2 TE^2 * horizon > costs / V; 0: off */
  unsigned skip_lookback;  /**< rows of returns for the skip's covariance (252) */
  const keel_dca *dca;     /**< DCA plans (a negative amount withdraws) */
  size_t ndca;             /**< number of DCA plans */
  const keel_stop_rule *stops; /**< stop rules */
  size_t nstops;           /**< number of stop rules */
  const double *defensive; /**< nassets weights for KEEL_STOP_TO_DEFENSIVE, or NULL */
  int allow_short;         /**< targets may be negative (0) */
  int invest_at_start;     /**< 1: the first close invests the capital to target (1); 0: it waits in
                                cash for a DCA plan or the first rebalance */
  const double *initial_shares; /**< nassets shares held before the first close (NULL: none); each held
                                     asset needs a price on the first row. The starting value is capital
                                     plus their value there; the first close rebalances from them. */
} keel_subaccount_spec;

/** @brief Fills a sub-account spec with the defaults given in
 * keel_subaccount_spec (name "main").
 * @param[out] s the spec */
KEEL_API void keel_subaccount_spec_default(keel_subaccount_spec *s);

/** @brief When decisions trade. */
typedef enum keel_fill {
  KEEL_FILL_CLOSE = 0, /**< decisions on a close trade at that close */
  KEEL_FILL_NEXT_OPEN  /**< ... at the next row's open, at open prices (needs opens; docs/backtest.md) */
} keel_fill;

/** @brief An account: its sub-accounts and the run's settings (defaults,
 * from @ref keel_account_spec_default, in parentheses). */
typedef struct keel_account_spec {
  size_t nsubs;              /**< number of sub-accounts (>= 1) */
  const keel_subaccount_spec *subs; /**< the sub-accounts */
  const keel_panel *opens;   /**< open prices, same dates and symbols as the closes, or NULL */
  keel_fill fill;            /**< KEEL_FILL_CLOSE */
  long benchmark;            /**< panel column for tracking error and information ratio, -1: none */
  double periods_per_year;   /**< 252 */
  double risk_free;          /**< annual, for Sharpe and Sortino (0) */
  size_t start;              /**< first panel row (0) */
  size_t end;                /**< one past the last row; 0 = all */
  int record_holdings;       /**< keep the shares held after every row (1) */
  uint64_t seed;             /**< recorded with the run (the engine draws nothing) */
} keel_account_spec;

/** @brief Fills a with the defaults given in keel_account_spec (no sub-accounts).
 * @param[out] a the spec */
KEEL_API void keel_account_spec_default(keel_account_spec *a);

/** @brief Runs an account.
 * @param ctx the context
 * @param panel the closing prices
 * @param spec the account
 * @param[out] out the result; NULL on failure
 * @return KEEL_OK; KEEL_EINVAL for bad settings (the message names the
 *         sub-account and field); KEEL_EINFEASIBLE if costs exceed a
 *         sub-account's value at a trade date; a strategy's failure
 *         status; KEEL_ENOMEM */
KEEL_API keel_status keel_backtest_run_account(keel_ctx *ctx, const keel_panel *panel, const keel_account_spec *spec,
                                               keel_backtest_result **out);

/** @brief Lump sum against DCA for the same money, as measured by
 * @ref keel_backtest_compare_dca. */
typedef struct keel_dca_comparison {
  double total;             /**< the money invested */
  size_t installments;      /**< made: fewer when the run ends first */
  double lump_final;        /**< the lump sum's final value */
  double dca_final;         /**< the DCA arm's final value */
  double lump_costs;        /**< the lump sum's costs */
  double dca_costs;         /**< the DCA arm's costs */
  keel_metrics lump;        /**< the lump sum's metrics */
  keel_metrics dca;         /**< the DCA arm's metrics (its money is all there from the start) */
} keel_dca_comparison;

/** @brief Lump sum against DCA for the same money.
 *
 * `total` invested at the first close, or held in cash and moved into the
 * basket in `installments` equal parts on the dates plan->schedule is due
 * (the first at the first close; plan->dest says where each part goes;
 * amount, source, start, end and step_up are ignored). Both arms use the
 * account's one sub-account's assets, targets and costs and then hold what
 * they bought: no calendar or band rebalancing, vol target, DCA plans or
 * stops of its own.
 * @param ctx the context
 * @param panel the closing prices
 * @param spec an account of exactly one sub-account
 * @param total the money (finite, > 0)
 * @param plan the DCA schedule and destination
 * @param installments number of parts (>= 1)
 * @param[out] out both arms' outcome
 * @return KEEL_OK; KEEL_EINVAL for an account that is not one sub-account,
 *         a bad total or no installment; any status of
 *         @ref keel_backtest_run_account */
KEEL_API keel_status keel_backtest_compare_dca(keel_ctx *ctx, const keel_panel *panel, const keel_account_spec *spec,
                                               double total, const keel_dca *plan, unsigned installments,
                                               keel_dca_comparison *out);

/** @brief Runs the simple backtest: one sub-account, fixed weights.
 * @param ctx the context
 * @param panel the closing prices
 * @param cfg the configuration
 * @param[out] out the result; NULL on failure
 * @return KEEL_OK; KEEL_EINVAL for bad weights or settings (the message
 *         names the asset or field); KEEL_EINFEASIBLE if fees exceed the
 *         account's value at a rebalance; KEEL_ENOMEM */
KEEL_API keel_status keel_backtest_run(keel_ctx *ctx, const keel_panel *panel,
                                       const keel_backtest_config *cfg,
                                       keel_backtest_result **out);
/** @brief Frees a result; NULL is a no-op.
 * @param r the result */
KEEL_API void keel_backtest_result_free(keel_backtest_result *r);

/* Daily series, one point per panel row used: borrowed, valid while r lives. */

/** @brief Number of points: one per panel row used.
 * @param r the result
 * @return the number of points */
KEEL_API size_t keel_backtest_npoints(const keel_backtest_result *r);
/** @brief The points' dates.
 * @param r the result
 * @return npoints dates, borrowed, valid while r lives */
KEEL_API const keel_date *keel_backtest_dates(const keel_backtest_result *r);
/** @brief The account's value at each close, after trading; all sub-accounts.
 * @param r the result
 * @return npoints values, borrowed */
KEEL_API const double *keel_backtest_values(const keel_backtest_result *r);
/** @brief The account's cash at each close, after trading.
 * @param r the result
 * @return npoints values, borrowed */
KEEL_API const double *keel_backtest_cash(const keel_backtest_result *r);
/** @brief Gross notional traded each day.
 * @param r the result
 * @return npoints values, borrowed */
KEEL_API const double *keel_backtest_traded(const keel_backtest_result *r);
/** @brief Costs paid each day.
 * @param r the result
 * @return npoints values, borrowed */
KEEL_API const double *keel_backtest_costs(const keel_backtest_result *r);
/** @brief Holdings in shares after the close of point i, summed over the sub-accounts.
 * @param r the result
 * @param i the point
 * @return nassets (panel) values, borrowed; NULL when not recorded */
KEEL_API const double *keel_backtest_holdings(const keel_backtest_result *r, size_t i);
/** @brief Number of assets of the holdings: the panel's.
 * @param r the result
 * @return nassets */
KEEL_API size_t keel_backtest_nassets(const keel_backtest_result *r);

/** @brief Number of trades made.
 * @param r the result
 * @return ntrades */
KEEL_API size_t keel_backtest_ntrades(const keel_backtest_result *r);
/** @brief The trades, in the order made.
 * @param r the result
 * @return ntrades trades, borrowed */
KEEL_API const keel_trade *keel_backtest_trades(const keel_backtest_result *r);
/** @brief Number of rebalances.
 * @param r the result
 * @return nrebalances */
KEEL_API size_t keel_backtest_nrebalances(const keel_backtest_result *r);
/** @brief The rebalances, in the order made.
 * @param r the result
 * @return nrebalances records, borrowed */
KEEL_API const keel_rebalance *keel_backtest_rebalances(const keel_backtest_result *r);

/** @brief The account's metrics.
 * @param r the result
 * @return the metrics, borrowed */
KEEL_API const keel_metrics *keel_backtest_metrics(const keel_backtest_result *r);
/** @brief The account's starting capital.
 * @param r the result
 * @return the sum of the sub-accounts' capital */
KEEL_API double keel_backtest_capital(const keel_backtest_result *r);
/** @brief External money paid in (> 0) or out (< 0) at each point, before trading.
 * @param r the result
 * @return npoints values, borrowed */
KEEL_API const double *keel_backtest_flows(const keel_backtest_result *r);

/* Per sub-account: its name, assets (panel columns), and series over the
 * same points. Metrics per sub-account use its own value and flows. */

/** @brief Number of sub-accounts.
 * @param r the result
 * @return nsubs */
KEEL_API size_t keel_backtest_nsubs(const keel_backtest_result *r);
/** @brief Name of sub-account s.
 * @param r the result
 * @param s the sub-account, < nsubs
 * @return its name, borrowed */
KEEL_API const char *keel_backtest_sub_name(const keel_backtest_result *r, size_t s);
/** @brief Number of assets of sub-account s.
 * @param r the result
 * @param s the sub-account, < nsubs
 * @return its nassets */
KEEL_API size_t keel_backtest_sub_nassets(const keel_backtest_result *r, size_t s);
/** @brief Assets of sub-account s.
 * @param r the result
 * @param s the sub-account, < nsubs
 * @return its nassets panel columns, borrowed */
KEEL_API const size_t *keel_backtest_sub_assets(const keel_backtest_result *r, size_t s);
/** @brief Value of sub-account s at each close.
 * @param r the result
 * @param s the sub-account, < nsubs
 * @return npoints values, borrowed */
KEEL_API const double *keel_backtest_sub_values(const keel_backtest_result *r, size_t s);
/** @brief Cash of sub-account s at each close.
 * @param r the result
 * @param s the sub-account, < nsubs
 * @return npoints values, borrowed */
KEEL_API const double *keel_backtest_sub_cash(const keel_backtest_result *r, size_t s);
/** @brief External flows of sub-account s at each point.
 * @param r the result
 * @param s the sub-account, < nsubs
 * @return npoints values, borrowed */
KEEL_API const double *keel_backtest_sub_flows(const keel_backtest_result *r, size_t s);
/** @brief Metrics of sub-account s, from its own value and flows.
 * @param r the result
 * @param s the sub-account, < nsubs
 * @return the metrics, borrowed */
KEEL_API const keel_metrics *keel_backtest_sub_metrics(const keel_backtest_result *r, size_t s);

/** @brief Events: stop triggers, their fills, re-entries. */
typedef enum keel_event_kind {
  KEEL_EVENT_STOP = 0, /**< a stop rule triggered on this close */
  KEEL_EVENT_STOP_FILL,/**< the stop's sale filled (the next price) */
  KEEL_EVENT_REENTRY   /**< the re-entry rule let the asset / sub-account back */
} keel_event_kind;

/** @brief One event of a run. */
typedef struct keel_event {
  keel_date date;       /**< when it happened */
  keel_event_kind kind; /**< what happened */
  uint32_t sub;         /**< sub-account index */
  int32_t asset;        /**< panel column, or -1 for the whole sub-account */
  keel_stop_kind stop;  /**< the rule's kind */
  double price;         /**< the close that triggered (or the fill price; the sub-account value for drawdown) */
  double level;         /**< the threshold it crossed (price, or value for drawdown) */
} keel_event;

/** @brief Number of events.
 * @param r the result
 * @return nevents */
KEEL_API size_t keel_backtest_nevents(const keel_backtest_result *r);
/** @brief The events, in date order.
 * @param r the result
 * @return nevents events, borrowed */
KEEL_API const keel_event *keel_backtest_events(const keel_backtest_result *r);
/** @brief Name of an event kind.
 * @param k the kind
 * @return a static string: "stop", "stop_fill", "reentry" ("unknown" out of range) */
KEEL_API const char *keel_event_kind_name(keel_event_kind k);

/** @brief One entry of the audit trail: an optimiser call a strategy made during the run. */
typedef struct keel_opt_call {
  keel_date date;      /**< the decision's date */
  uint32_t sub;        /**< sub-account index */
  keel_opt_record rec; /**< what the strategy recorded */
} keel_opt_call;

/** @brief Number of optimiser calls in the audit trail.
 * @param r the result
 * @return nopt_calls */
KEEL_API size_t keel_backtest_nopt_calls(const keel_backtest_result *r);
/** @brief The audit trail: every optimiser call a strategy made during the run.
 * @param r the result
 * @return nopt_calls records, borrowed */
KEEL_API const keel_opt_call *keel_backtest_opt_calls(const keel_backtest_result *r);
/** @brief The seed recorded with the run (keel_account_spec.seed).
 * @param r the result
 * @return the seed */
KEEL_API uint64_t keel_backtest_seed(const keel_backtest_result *r);

#ifdef __cplusplus
}
#endif
#endif
