/** @file
 * @brief keel — performance metrics of a value series (core/, no I/O).
 *
 * Definitions (docs/metrics.md has them with formulas):
 * @verbatim
 *   returns        r_0 = (v_0 - f_0)/initial - 1, r_t = (v_t - f_t)/v_{t-1} - 1
 *                  (n time-weighted returns; f_t the external flow at t, 0 without flows)
 *   index          I_t = prod_{s<=t} (1 + r_s)  (= v_t/initial without flows)
 *   total_return   I_{n-1} - 1
 *   years          (dates[n-1] - dates[0]) / 365.25
 *   cagr           I_{n-1}^(1/years) - 1                    (NaN if years == 0)
 *   volatility     stdev(r, ddof 1) * sqrt(P)               P = periods_per_year
 *   sharpe         mean(r - rf/P) / stdev(r - rf/P) * sqrt(P)
 *   sortino        mean(r - rf/P) / sqrt(mean(min(r - rf/P, 0)^2)) * sqrt(P)
 *   max_drawdown   max_t (1 - I_t / max(1, I_0..I_t)), >= 0
 *   calmar         cagr / max_drawdown                      (NaN if no drawdown)
 *   turnover       sum_{t>=1} traded_t / (2 (v_t + costs_t)) / years
 *                  (one-way, annualised, the initial allocation excluded)
 *   cost_ratio     sum_t costs_t / mean_t v_t
 *   ntrades, nstops  counts given by the caller
 *   time_in_market fraction of points with exposure_t > 0 (NaN without exposure)
 *   tracking_error stdev(r - b, ddof 1) * sqrt(P), b the benchmark's returns (NaN without one)
 *   info_ratio     mean(r - b) * P / tracking_error
 * @endverbatim
 * A metric that is undefined for the input (e.g. a zero standard deviation)
 * is NaN; the store writes it as NULL.
 */
#ifndef KEEL_METRICS_H
#define KEEL_METRICS_H

#include <stddef.h>

#include "keel/ctx.h"
#include "keel/date.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A value series and what is needed to measure it (@ref keel_metrics_compute). */
typedef struct keel_metrics_input {
  size_t n;                /**< number of points (>= 1) */
  const keel_date *dates;  /**< n dates, strictly increasing */
  const double *values;    /**< n values, finite, > 0 */
  double initial;          /**< value before the first point, > 0 (or 0 when flows[0] > 0 pays the money in) */
  const double *traded;    /**< n gross traded notionals, or NULL (= 0) */
  const double *costs;     /**< n costs paid, or NULL (= 0) */
  double periods_per_year; /**< 252 for daily data */
  double risk_free;        /**< annual rate, simple, 0 by default */
  const double *flows;     /**< n external flows (in at t before the value is taken), or NULL */
  const double *exposure;  /**< n fractions of value invested, or NULL */
  const double *benchmark; /**< n benchmark prices (> 0), or NULL */
  size_t ntrades;          /**< copied into the metrics */
  size_t nstops;           /**< copied into the metrics */
} keel_metrics_input;

/** @brief The metrics of a series; the header's definitions give each formula. */
typedef struct keel_metrics {
  double total_return;   /**< I_{n-1} - 1 */
  double cagr;           /**< compound annual growth rate (NaN if years == 0) */
  double volatility;     /**< annualised standard deviation of the returns */
  double sharpe;         /**< annualised Sharpe ratio over the risk-free rate */
  double sortino;        /**< annualised Sortino ratio (downside deviation below the risk-free rate) */
  double max_drawdown;   /**< deepest fall of the index from a previous peak, >= 0 */
  keel_date dd_peak;     /**< date of the peak before the deepest drawdown */
  keel_date dd_trough;   /**< date of its trough */
  keel_date dd_recovery; /**< first date back at the peak, or KEEL_DATE_NONE */
  double calmar;         /**< cagr / max_drawdown (NaN if no drawdown) */
  double turnover;       /**< one-way turnover a year, the initial allocation excluded */
  double costs_total;    /**< sum of the costs paid */
  double cost_ratio;     /**< costs_total / mean value */
  double years;          /**< (last date - first date) / 365.25 */
  size_t nobs;           /**< number of returns */
  size_t ntrades;        /**< trades made (given by the caller) */
  size_t nstops;         /**< stops triggered (given by the caller) */
  double time_in_market; /**< fraction of points with exposure > 0 (NaN without exposure) */
  double tracking_error; /**< annualised standard deviation of the returns over the benchmark's (NaN without one) */
  double info_ratio;     /**< annualised mean excess return over the benchmark / tracking_error */
} keel_metrics;

/** @brief Number of named metrics: the set the CLI prints and the store keeps
 * (@ref keel_metrics_name, @ref keel_metrics_value). */
#define KEEL_METRICS_COUNT 20
/** @brief Name of the k-th metric ("total_return", ..., "info_ratio").
 * @param k 0 .. KEEL_METRICS_COUNT - 1
 * @return a static string, or NULL for k out of range */
KEEL_API const char *keel_metrics_name(size_t k);
/** @brief Value of the k-th metric; dates are given as days since 1970.
 * @param m the metrics
 * @param k 0 .. KEEL_METRICS_COUNT - 1
 * @return the value (NaN when undefined, for KEEL_DATE_NONE, or for k out
 *         of range) */
KEEL_API double keel_metrics_value(const keel_metrics *m, size_t k);

/** @brief Computes the metrics of a series (definitions above).
 * @param ctx the context
 * @param in the series
 * @param[out] out the metrics
 * @return KEEL_OK; KEEL_EINVAL for no point, a bad initial value, values that are not finite and
 *         > 0, dates that do not increase, negative or infinite traded or
 *         costs, infinite flows, a benchmark price that is not finite and
 *         > 0, periods_per_year not finite and > 0, an infinite risk_free */
KEEL_API keel_status keel_metrics_compute(keel_ctx *ctx, const keel_metrics_input *in,
                                          keel_metrics *out);

/** @brief The index I_t of the input (definitions above): the product of
 * the time-weighted returns, v_t / initial without flows.
 *
 * It is 1 before the first point, and it is made of the same returns
 * @ref keel_metrics_compute reads.
 * @param ctx the context
 * @param in the series (its n, values, initial and flows are read)
 * @param[out] index n values, I_0 .. I_{n-1}
 * @return KEEL_OK; KEEL_EINVAL, as @ref keel_metrics_compute would refuse
 *         the input, for no point, a bad initial value (not finite and
 *         > 0, or 0 without money paid in at the first point) or values
 *         that are not finite and > 0 */
KEEL_API keel_status keel_metrics_index(keel_ctx *ctx, const keel_metrics_input *in, double *index);

#ifdef __cplusplus
}
#endif
#endif
