/* keel — performance metrics of a value series (core/, no I/O).
 *
 * Definitions (docs/metrics.md has them with formulas):
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

typedef struct keel_metrics_input {
  size_t n;                /* number of points (>= 1) */
  const keel_date *dates;  /* n dates, strictly increasing */
  const double *values;    /* n values, finite, > 0 */
  double initial;          /* value before the first point, > 0 */
  const double *traded;    /* n gross traded notionals, or NULL (= 0) */
  const double *costs;     /* n costs paid, or NULL (= 0) */
  double periods_per_year; /* 252 for daily data */
  double risk_free;        /* annual rate, simple, 0 by default */
  const double *flows;     /* n external flows (in at t before the value is taken), or NULL */
  const double *exposure;  /* n fractions of value invested, or NULL */
  const double *benchmark; /* n benchmark prices (> 0), or NULL */
  size_t ntrades, nstops;  /* copied into the metrics */
} keel_metrics_input;

typedef struct keel_metrics {
  double total_return;
  double cagr;
  double volatility;
  double sharpe;
  double sortino;
  double max_drawdown;
  keel_date dd_peak;     /* date of the peak before the deepest drawdown */
  keel_date dd_trough;   /* date of its trough */
  keel_date dd_recovery; /* first date back at the peak, or KEEL_DATE_NONE */
  double calmar;
  double turnover;
  double costs_total;
  double cost_ratio;
  double years;
  size_t nobs;           /* number of returns */
  size_t ntrades;
  size_t nstops;
  double time_in_market;
  double tracking_error;
  double info_ratio;
} keel_metrics;

/* Number of named metrics, and the name / value of the k-th one (the set the
 * CLI prints and the store keeps; dates are given as days since 1970). */
#define KEEL_METRICS_COUNT 20
KEEL_API const char *keel_metrics_name(size_t k);
KEEL_API double keel_metrics_value(const keel_metrics *m, size_t k);

KEEL_API keel_status keel_metrics_compute(keel_ctx *ctx, const keel_metrics_input *in,
                                          keel_metrics *out);

/* The index I_t of the input (n values; 1 before the first point): the
 * product of the time-weighted returns above, v_t / initial without
 * flows; the same returns keel_metrics_compute reads. KEEL_EINVAL for an
 * input it would refuse. */
KEEL_API keel_status keel_metrics_index(keel_ctx *ctx, const keel_metrics_input *in, double *index);

#ifdef __cplusplus
}
#endif
#endif
