/** @file
 * @brief keel — rebalancing policies, cost models, DCA plans and stop rules
 * (core/, no I/O).
 *
 * These are the settings a sub-account's policy is made of, plus the pure
 * functions the backtest engine applies (and that Lua strategies and
 * backends can call on their own): when a schedule is due, whether a
 * threshold band is breached and where a band rebalance goes, how a cash
 * flow is spread over the underweight assets, and the volatility-target
 * scale. docs/backtest.md states the semantics the engine gives them.
 */
#ifndef KEEL_POLICY_H
#define KEEL_POLICY_H

#include <stddef.h>

#include "keel/ctx.h"
#include "keel/date.h"
#include "keel/panel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- schedules ----------------------------------------------------------- */

/** @brief The calendar of a schedule. */
typedef enum keel_calendar {
  KEEL_CAL_DAILY = 0, /**< every trading day */
  KEEL_CAL_WEEKLY,    /**< the first trading day of each ISO week (Monday-based) */
  KEEL_CAL_MONTHLY,   /**< the first trading day of each month */
  KEEL_CAL_QUARTERLY, /**< the first trading day of each quarter */
  KEEL_CAL_YEARLY,    /**< the first trading day of each year */
  KEEL_CAL_NEVER,     /**< never (after the initial allocation) */
  KEEL_CAL_EVERY_N    /**< every `every` trading days (rows) */
} keel_calendar;

/** @brief Name of a calendar.
 * @param c the calendar
 * @return a static string ("monthly", "every_n"; "unknown" out of range)
 * @see keel_calendar_parse */
KEEL_API const char *keel_calendar_name(keel_calendar c);
/** @brief The inverse of @ref keel_calendar_name.
 * @param name daily/weekly/monthly/quarterly/yearly/never/every_n
 * @param[out] out the calendar, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_calendar_parse(const char *name, keel_calendar *out);

/** @brief When something happens: a calendar, or every so many rows.
 *
 * A schedule is due on the first trading day of each new calendar period
 * (day; ISO week, Monday-based; month; quarter; year), or every `every`
 * rows counted from the first row of the run. */
typedef struct keel_schedule {
  keel_calendar calendar; /**< the calendar */
  unsigned every;         /**< rows, for KEEL_CAL_EVERY_N (>= 1) */
} keel_schedule;

/** @brief Whether a schedule is due on date d.
 *
 * Row 0 is never "due": it is the initial allocation.
 * @param s the schedule
 * @param prev the previous row's date
 * @param d the date
 * @param t row offset of d: rows since the run's first row (t >= 1)
 * @return 1 when due, else 0 */
KEEL_API int keel_schedule_due(const keel_schedule *s, keel_date prev, keel_date d, size_t t);

/* ---- threshold bands ----------------------------------------------------- */

/** @brief The shape of a threshold band around a target weight t. */
typedef enum keel_band_kind {
  KEEL_BAND_NONE = 0, /**< no band: trade on the schedule */
  KEEL_BAND_ABSOLUTE, /**< |w - t| > abs                                      */
  KEEL_BAND_RELATIVE, /**< |w - t| > rel * t                                  */
  KEEL_BAND_COMBINED  /**< |w - t| > min(abs, rel * t): the 5/25 rule is abs 0.05, rel 0.25 */
} keel_band_kind;

/** @brief Where a band rebalance trades to. */
typedef enum keel_band_action {
  KEEL_BAND_TO_TARGET = 0, /**< trade every asset back to its target */
  KEEL_BAND_TO_EDGE,       /**< breached assets to their band's edge, the rest absorbs (@ref keel_band_adjust) */
  KEEL_BAND_TO_INNER       /**< ... to an inner band of `inner` times the band's width */
} keel_band_action;

/** @brief A threshold band: its kind, half-widths and action. */
typedef struct keel_band {
  keel_band_kind kind;     /**< the shape */
  double abs;              /**< absolute half-width, in weight (0.05 = 5 points) */
  double rel;              /**< relative half-width, a fraction of the target weight */
  keel_band_action action; /**< where a breach trades to */
  double inner;            /**< for KEEL_BAND_TO_INNER: 0 <= inner < 1 (0 = to target) */
} keel_band;

/** @brief The half-width of an asset's band around its target.
 * @param b the band
 * @param t the target weight
 * @return the half-width (INFINITY for KEEL_BAND_NONE) */
KEEL_API double keel_band_width(const keel_band *b, double t);

/** @brief The first asset whose weight lies strictly outside its band.
 *
 * Weights are fractions of the sub-account's value (cash included), so
 * they need not sum to one.
 * @param b the band
 * @param n number of assets
 * @param w n current weights
 * @param t n target weights
 * @return the index of the first asset with w[i] outside its band around
 *         t[i], or n when none is */
KEEL_API size_t keel_band_breached(const keel_band *b, size_t n, const double *w, const double *t);

/** @brief Where a band rebalance goes.
 *
 * TO_TARGET: out = t. TO_EDGE / TO_INNER: each breached asset moves to the
 * nearest edge of its (inner) band; the weight this frees or needs is
 * spread over the other assets and the cash sleeve (weight 1 - sum t, when
 * positive) in proportion to their targets, each kept within its own band
 * (an asset that would leave it is held at its edge and the remainder
 * spread again over the rest). If no asset can absorb the remainder it goes
 * to cash. sum(out) + cash = 1 as for w.
 * @param b the band
 * @param n number of assets
 * @param w n current weights
 * @param t n target weights
 * @param[out] out n post-trade weights */
KEEL_API void keel_band_adjust(const keel_band *b, size_t n, const double *w, const double *t, double *out);

/* ---- cost model ---------------------------------------------------------- */

/** @brief Costs of a trade.
 *
 * A trade of notional |N| (money) on the buy or the sell side costs
 *   (rate_bps + spread_bps / 2 + slippage_bps) / 1e4 * |N| + fee
 * where rate is buy_bps or sell_bps. Trades below min_notional are not
 * made; with lots (the panel's asset metadata, when `use_lots` is set) the number of
 * shares traded is a whole multiple of the lot. Defaults in parentheses. */
typedef struct keel_cost_model {
  double buy_bps;      /**< proportional commission on buys, basis points (0) */
  double sell_bps;     /**< proportional commission on sales, basis points (0) */
  double spread_bps;   /**< full bid-ask spread; half is paid per trade (0) */
  double slippage_bps; /**< extra price impact per trade (0) */
  double fee;          /**< fixed fee per trade, in money (0) */
  double min_notional; /**< smallest trade, in money (0); overrides the panel's min_trade when larger */
  int use_lots;        /**< 1: round shares to the panel's lot sizes (keel_asset_meta.lot) (1) */
} keel_cost_model;

/** @brief Fills c with the defaults given in keel_cost_model (no costs, lots used).
 * @param[out] c the cost model */
KEEL_API void keel_cost_model_default(keel_cost_model *c);
/** @brief The proportional rate per unit of notional on the buy side.
 * @param c the cost model
 * @return (buy_bps + spread_bps / 2 + slippage_bps) / 1e4 */
KEEL_API double keel_cost_rate_buy(const keel_cost_model *c);
/** @brief The proportional rate per unit of notional on the sell side.
 * @param c the cost model
 * @return (sell_bps + spread_bps / 2 + slippage_bps) / 1e4 */
KEEL_API double keel_cost_rate_sell(const keel_cost_model *c);

/* ---- volatility targeting ------------------------------------------------ */

/** @brief How a volatility target estimates the basket's volatility. */
typedef enum keel_vol_estimator {
  KEEL_VOL_ROLLING = 0, /**< sample standard deviation of the last `window` daily returns */
  KEEL_VOL_EWMA         /**< exponentially weighted, half-life `halflife` days, zero mean (RiskMetrics) */
} keel_vol_estimator;

/** @brief A volatility target.
 *
 * The risky sleeve (the basket's weights) is scaled by
 *   k = min(leverage_cap, target / sigma)
 * where sigma is the annualised volatility (sqrt(periods_per_year)) of the
 * basket held at its target weights over the trailing window; 1 - k sum(t)
 * is cash (negative: borrowed, only with leverage_cap > 1). target <= 0
 * switches vol targeting off. A rebalance for the target happens on the
 * schedule, and between schedule dates when k moves by more than
 * `rebalance_band` (relative) from the scale last traded to. */
typedef struct keel_voltarget {
  double target;                /**< annualised volatility, e.g. 0.10; <= 0: off */
  keel_vol_estimator estimator; /**< the estimator */
  unsigned window;              /**< rolling window in days (63) */
  double halflife;              /**< EWMA half-life in days (21) */
  double leverage_cap;          /**< largest scale (1: never borrow) */
  double rebalance_band;        /**< relative move of k that triggers a trade (0.1); INFINITY: schedule only */
} keel_voltarget;

/** @brief The volatility-target scale of a basket.
 * @param ctx the context
 * @param v the target
 * @param n number of assets
 * @param t n target weights of the basket
 * @param R rows x n returns (NaN rows skipped for the rolling estimator)
 * @param rows number of rows of R
 * @param periods_per_year to annualise with (> 0)
 * @param[out] scale k = min(leverage_cap, target / sigma)
 * @param[out] sigma the annualised volatility, or NULL
 * @return KEEL_OK; KEEL_EINVAL for fewer than two usable returns, returns
 *         that are not finite, periods_per_year <= 0 */
KEEL_API keel_status keel_voltarget_scale(keel_ctx *ctx, const keel_voltarget *v, size_t n, const double *t,
                                          const double *R, size_t rows, double periods_per_year, double *scale,
                                          double *sigma);

/* ---- cash flows ---------------------------------------------------------- */

/** @brief Spreads a cash flow over the assets so that the most underweight
 * fill first (no sale for a contribution, no purchase for a withdrawal).
 *
 * A contribution buys b_i = max(0, L t_i - x_i), a withdrawal sells
 * s_i = max(0, x_i - L t_i), with the level L solved exactly so that the
 * trades add up to |amount| (water-filling). Assets with no target are
 * never bought and are sold first (pro rata) for a withdrawal; with no
 * target at all a contribution buys nothing (it stays in cash).
 * @param ctx the context
 * @param n number of assets
 * @param x n current holding values
 * @param t n target weights
 * @param amount > 0 money to invest (or < 0 to raise)
 * @param[out] out n signed trade values
 * @return KEEL_OK; KEEL_EINVAL for negative targets or holdings, or a
 *         withdrawal larger than the holdings; KEEL_ENOMEM */
KEEL_API keel_status keel_cashflow_allocate(keel_ctx *ctx, size_t n, const double *x, const double *t, double amount,
                                            double *out);

/* ---- DCA plans ----------------------------------------------------------- */

/** @brief Where a DCA plan's money comes from. */
typedef enum keel_dca_source {
  KEEL_DCA_EXTERNAL = 0, /**< new money paid into the sub-account (a contribution) */
  KEEL_DCA_FROM_CASH     /**< moves the sub-account's own cash into the basket */
} keel_dca_source;

/** @brief What a DCA installment buys. */
typedef enum keel_dca_dest {
  KEEL_DCA_TO_TARGET = 0,   /**< buys in proportion to the target weights */
  KEEL_DCA_TO_UNDERWEIGHT   /**< most underweight assets first (@ref keel_cashflow_allocate) */
} keel_dca_dest;

/** @brief A DCA plan.
 *
 * amount on each due date of the schedule between start and end
 * (inclusive; KEEL_DATE_NONE: no limit), raised by step_up each full year
 * after the first installment: installment k on date d pays
 * amount * (1 + step_up)^floor(years since the first installment).
 * FROM_CASH pays min(installment, cash); a DCA date is a trading date, so
 * the plan's purchases happen at that close. */
typedef struct keel_dca {
  double amount;          /**< money per installment (a negative amount withdraws) */
  keel_schedule schedule; /**< when installments are due (monthly) */
  keel_date start;        /**< first date (KEEL_DATE_NONE: no limit) */
  keel_date end;          /**< last date (KEEL_DATE_NONE: no limit) */
  double step_up;         /**< yearly growth of the installment (0.03 = 3%) */
  keel_dca_source source; /**< where the money comes from */
  keel_dca_dest dest;     /**< what it buys */
} keel_dca;

/** @brief Fills d with the defaults: amount 0, monthly, no start or end, no
 * step-up, external money to target.
 * @param[out] d the plan */
KEEL_API void keel_dca_default(keel_dca *d);

/* ---- stop rules ----------------------------------------------------------- */

/** @brief What a stop rule watches. */
typedef enum keel_stop_kind {
  KEEL_STOP_LOSS = 0,   /**< close <= ref * (1 - level), ref = entry price or average cost */
  KEEL_STOP_TAKE_PROFIT,/**< close >= ref * (1 + level) */
  KEEL_STOP_TRAILING,   /**< close <= peak close since entry * (1 - level) */
  KEEL_STOP_DRAWDOWN    /**< sub-account value <= its peak since inception or re-entry * (1 - level) */
} keel_stop_kind;

/** @brief The reference price of a stop-loss or take-profit. */
typedef enum keel_stop_ref {
  KEEL_STOP_REF_ENTRY = 0, /**< price of the purchase that opened the position */
  KEEL_STOP_REF_AVG_COST   /**< average purchase price of the shares held */
} keel_stop_ref;

/** @brief What a triggered stop does. */
typedef enum keel_stop_action {
  KEEL_STOP_TO_CASH = 0,   /**< sell, keep the proceeds as cash */
  KEEL_STOP_TO_DEFENSIVE   /**< sell, buy the sub-account's defensive basket with the proceeds */
} keel_stop_action;

/** @brief When a stopped asset or sub-account comes back. */
typedef enum keel_reentry {
  KEEL_REENTRY_NEVER = 0,  /**< never */
  KEEL_REENTRY_AFTER_DAYS, /**< after `days` trading days */
  KEEL_REENTRY_ABOVE_MA    /**< when the close is above its `days`-day simple moving average */
} keel_reentry;

/** @brief A stop rule.
 *
 * Per asset (KEEL_STOP_LOSS, TAKE_PROFIT, TRAILING: applied to every asset
 * of the sub-account, or to the one named by `asset`) or per sub-account
 * (KEEL_STOP_DRAWDOWN). Checked on each close; a triggered stop fills at
 * the next price (the next row's open when the run has opens, else its
 * close), never at the close that triggered it. A stopped asset (or
 * sub-account) is locked: rebalances and DCA leave it out (its target
 * weight stays in cash or goes to the defensive basket) until the re-entry
 * rule lets it back, at which point the sub-account rebalances to target. */
typedef struct keel_stop_rule {
  keel_stop_kind kind;     /**< what it watches */
  double level;            /**< 0 < level (< 1 for losses and trailing) */
  keel_stop_ref ref;       /**< for KEEL_STOP_LOSS and TAKE_PROFIT */
  long asset;              /**< column in the sub-account's asset list, or -1 for all */
  keel_stop_action action; /**< what it does */
  keel_reentry reentry;    /**< when it lets the position back */
  unsigned days;           /**< re-entry delay or moving-average length */
} keel_stop_rule;

/** @brief Fills r with the defaults: a 20% trailing stop on every asset, to
 * cash, never re-entered.
 * @param[out] r the rule */
KEEL_API void keel_stop_rule_default(keel_stop_rule *r);

/* Static names, and parsers returning 0 (and *out set) or -1. */

/** @brief Name of a band kind.
 * @param k the kind
 * @return a static string: "none", "absolute", "relative", "combined" ("unknown" out of range) */
KEEL_API const char *keel_band_kind_name(keel_band_kind k);
/** @brief Parses a band kind.
 * @param s "none", "absolute", "relative" or "combined"
 * @param[out] out the kind, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_band_kind_parse(const char *s, keel_band_kind *out);
/** @brief Parses a band action.
 * @param s "target", "edge" or "inner"
 * @param[out] out the action, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_band_action_parse(const char *s, keel_band_action *out);
/** @brief Name of a stop kind.
 * @param k the kind
 * @return a static string: "stop_loss", "take_profit", "trailing", "drawdown" ("unknown" out of range) */
KEEL_API const char *keel_stop_kind_name(keel_stop_kind k);
/** @brief Parses a stop kind.
 * @param s "stop_loss", "take_profit", "trailing" or "drawdown"
 * @param[out] out the kind, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_stop_kind_parse(const char *s, keel_stop_kind *out);
/** @brief Parses a stop's reference price.
 * @param s "entry" or "avg_cost"
 * @param[out] out the reference, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_stop_ref_parse(const char *s, keel_stop_ref *out);
/** @brief Parses a stop action.
 * @param s "cash" or "defensive"
 * @param[out] out the action, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_stop_action_parse(const char *s, keel_stop_action *out);
/** @brief Parses a re-entry rule.
 * @param s "never", "after_days" or "above_ma"
 * @param[out] out the rule, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_reentry_parse(const char *s, keel_reentry *out);
/** @brief Parses a volatility estimator.
 * @param s "rolling" or "ewma"
 * @param[out] out the estimator, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_vol_estimator_parse(const char *s, keel_vol_estimator *out);
/** @brief Parses a DCA source.
 * @param s "external" or "cash"
 * @param[out] out the source, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_dca_source_parse(const char *s, keel_dca_source *out);
/** @brief Parses a DCA destination.
 * @param s "target" or "underweight"
 * @param[out] out the destination, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_dca_dest_parse(const char *s, keel_dca_dest *out);

#ifdef __cplusplus
}
#endif
#endif
