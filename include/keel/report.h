/* keel — HTML reports of stored runs (data/).
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

typedef struct keel_report_options {
  const char *title;      /* the page's title (NULL: from the run) */
  size_t rolling_window;  /* points of the rolling volatility and Sharpe ratio (0: 126, or less for a short run) */
  double periods_per_year;/* of the backtests' points, for the rolling figures (252) */
  size_t max_overlay;     /* batch page: growth curves drawn at most (10, the best Sharpe ratios) */
} keel_report_options;

KEEL_API void keel_report_options_default(keel_report_options *o);

typedef struct keel_report keel_report;

/* Makes the report of runs ids[0..n) of store s: with n == 1 the page of
 * that run's kind, with n > 1 the comparison of those backtests.
 * KEEL_EINVAL for a run that is not in the store, has status "error"
 * (with its message), or a kind the page cannot show; KEEL_EIO for a
 * store that cannot be read. On failure *out is NULL. */
KEEL_API keel_status keel_report_new(keel_ctx *ctx, keel_store *s, const int64_t *ids, size_t n,
                                     const keel_report_options *o, keel_report **out);
KEEL_API void keel_report_free(keel_report *r);

/* The page (NUL-terminated, borrowed, valid while r lives). */
KEEL_API const char *keel_report_html(const keel_report *r, size_t *len);
/* The number of charts on the page. */
KEEL_API size_t keel_report_ncharts(const keel_report *r);

/* Writes the page to path through a temporary file in the same folder
 * that is renamed into place: a failure (KEEL_EIO, with the path and the
 * reason) leaves no file and no partial one. */
KEEL_API keel_status keel_report_save(keel_ctx *ctx, const keel_report *r, const char *path);

#ifdef __cplusplus
}
#endif
#endif
