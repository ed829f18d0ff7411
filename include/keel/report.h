/** @file
 * @brief keel — HTML reports of stored runs (data/).
 *
 * A report is one self-contained HTML page made from the SQLite store
 * (keel/store.h): charts drawn with cairo as SVG images inlined as data
 * URIs, tables, and no script, font or anything else fetched from
 * elsewhere, so it opens from disk anywhere. One run gives the page of its
 * kind: a backtest (metrics, growth against the benchmark on linear and
 * log scales, drawdown, the sub-accounts' weights with trades and stops,
 * rolling volatility and Sharpe ratio, monthly returns, costs and turnover
 * by year), a stress test (fan chart, terminal wealth histogram, the goal,
 * statistics and scenario), or an optimisation (frontier, weights, risk
 * contributions). Several backtests give one page comparing them.
 * docs/reports.md describes the pages.
 */
#ifndef KEEL_REPORT_H
#define KEEL_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "keel/ctx.h"
#include "keel/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief How a report is made (defaults, from
 * @ref keel_report_options_default, in parentheses). */
typedef struct keel_report_options {
  const char *title;       /**< the page's title (NULL: from the run) */
  size_t rolling_window;   /**< points of the rolling volatility and Sharpe ratio (126; 0: 126); at most a
                                third of the run's points; no rolling chart when that is below 10 */
  double periods_per_year; /**< of the backtests' points, for the rolling figures (252; finite and > 0) */
  size_t max_overlay;      /**< batch page: growth curves drawn at most, the best Sharpe ratios (10; 0: 10) */
} keel_report_options;

/** @brief Fills o with the defaults given in keel_report_options.
 * @param[out] o the options */
KEEL_API void keel_report_options_default(keel_report_options *o);

/** @brief A finished report (opaque): the page in memory. */
typedef struct keel_report keel_report;

/** @brief Makes the report of runs ids[0..n) of store s.
 *
 * With n == 1 the page of that run's kind ("backtest", "stress",
 * "optimize" or "frontier"); with n > 1 the comparison of those backtests.
 * The runs are read in one transaction; numbers are written in the C
 * locale whatever the host's.
 * @param ctx the context
 * @param s the store holding the runs
 * @param ids n run ids (their ids in the runs table)
 * @param n number of runs (at least 1)
 * @param o the options, or NULL for the defaults
 * @param[out] out the report; NULL on failure
 * @return KEEL_OK; KEEL_EINVAL for a missing argument, periods_per_year
 *         not finite and > 0, a run that is not in the store, has status
 *         "error" (with its message), or a kind the page cannot show (with
 *         n > 1 a run that is not a backtest; a backtest with fewer than 2
 *         equity points or a value that is not positive; a stress or
 *         optimisation run without its summary); KEEL_EIO for a store that
 *         cannot be read; KEEL_ENOMEM
 * @see keel_report_html, keel_report_save, keel_report_free */
KEEL_API keel_status keel_report_new(keel_ctx *ctx, keel_store *s, const int64_t *ids, size_t n,
                                     const keel_report_options *o, keel_report **out);
/** @brief Frees the report; NULL is a no-op.
 * @param r the report */
KEEL_API void keel_report_free(keel_report *r);

/** @brief The page.
 * @param r the report (NULL: NULL, *len 0)
 * @param[out] len its length in bytes without the NUL, or NULL
 * @return the HTML, NUL-terminated, borrowed: valid while r lives */
KEEL_API const char *keel_report_html(const keel_report *r, size_t *len);
/** @brief The number of charts on the page.
 * @param r the report
 * @return the count (0 for NULL) */
KEEL_API size_t keel_report_ncharts(const keel_report *r);

/** @brief Writes the page to path.
 *
 * The page goes to a temporary file in the same folder (mode 0644) that
 * is renamed into place, so a failure leaves no file and no partial one
 * (an existing file at path is kept as it was).
 * @param ctx the context
 * @param r the report
 * @param path the file to write
 * @return KEEL_OK; KEEL_EINVAL for no report or an empty path; KEEL_EIO
 *         with the path and the reason; KEEL_ENOMEM */
KEEL_API keel_status keel_report_save(keel_ctx *ctx, const keel_report *r, const char *path);

#ifdef __cplusplus
}
#endif
#endif
