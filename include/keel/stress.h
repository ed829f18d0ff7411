/* keel — the Monte Carlo stress runner (backtest/): an account played
 * through thousands of simulated futures with the backtest engine.
 *
 * Each path of a generator (keel/mc.h) becomes the prices of a panel: the
 * history's last rows (so strategies see a lookback), then one row per
 * step. The same engine as keel_backtest_run_account runs the account on
 * it: strategies, policies, DCA plans and stop rules behave exactly as in
 * a backtest. Workers (threads, each with its own context, panel and
 * engine) take paths in blocks; path p always draws the stream (seed, p),
 * and every statistic is computed from per-path values in path order, so
 * results are bitwise the same on any number of threads.
 *
 * Memory does not grow with the number of paths: the statistics are
 * streamed into fixed log-linear histograms (256 buckets an octave, so a
 * percentile is within 0.4% of the exact one) and exact sums (means),
 * the fan chart into fixed histograms per point. With keep_paths every
 * path's statistics and values at the band points are kept too, and the
 * percentiles, shortfalls and probabilities are exact. docs/stress.md
 * gives every formula and bound.
 */
#ifndef KEEL_STRESS_H
#define KEEL_STRESS_H

#include <stddef.h>
#include <stdint.h>

#include "keel/backtest.h"
#include "keel/ctx.h"
#include "keel/mc.h"
#include "keel/panel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-path statistics. */
typedef enum keel_stress_stat {
  KEEL_STRESS_WEALTH = 0,   /* terminal value of the account */
  KEEL_STRESS_CAGR,         /* time-weighted annual return: TWR^(1 / years) - 1 */
  KEEL_STRESS_TWR,          /* time-weighted total return (flows taken out) */
  KEEL_STRESS_MAX_DRAWDOWN, /* of the time-weighted index, as a positive fraction */
  KEEL_STRESS_UNDERWATER,   /* longest time below a previous peak of the index, years */
  KEEL_STRESS_IRR,          /* money-weighted annual return (internal rate of return of the flows) */
  KEEL_STRESS_LOSS,         /* 1 - (terminal value + money paid out) / (capital + money paid in) */
  KEEL_STRESS_COSTS,        /* trading costs paid */
  KEEL_STRESS_PEAK_WEALTH,  /* highest value reached on the way */
  KEEL_STRESS_NSTATS
} keel_stress_stat;

KEEL_API const char *keel_stress_stat_name(keel_stress_stat s);

/* Progress: done of total paths (called on the calling thread). */
typedef void (*keel_stress_progress_fn)(void *ud, size_t done, size_t total);
/* Called on a worker thread after each path with the panel it ran on
 * (rows [start, start + npoints) are the run) and the engine's result:
 * for inspection; must be thread-safe when threads > 1. Return non-zero
 * to stop the run with KEEL_EINVAL. */
typedef int (*keel_stress_path_fn)(void *ud, uint64_t path, const keel_panel *panel, size_t start,
                                   const keel_backtest_result *r);
/* Makes the account of one worker (strategies keep state, so each worker
 * needs its own instances), against that worker's panel; *handle is passed
 * to free_account when the worker is done. */
typedef keel_status (*keel_stress_account_fn)(void *ud, keel_ctx *ctx, const keel_panel *panel,
                                              const keel_account_spec **spec, void **handle);
typedef void (*keel_stress_account_free_fn)(void *ud, void *handle);

typedef struct keel_stress_options {
  const keel_mc *gen;                 /* the generator, its scenario set (required) */
  /* The account: a spec shared by all workers (it must not hold strategies
   * when threads > 1), or make_account per worker. start, end, opens and
   * fill are set by the runner (the run is the simulated rows, fills at
   * the close); periods_per_year is the generator's steps per year. */
  const keel_account_spec *account;
  keel_stress_account_fn make_account;
  keel_stress_account_free_fn free_account;
  void *account_ud;
  /* Prices before the paths: the history (its symbols name the assets);
   * the last row of its common window is the start (t = 0) and the
   * history_rows rows before it (at the generator's frequency: month ends
   * for monthly steps) precede it in every panel, for strategies'
   * lookbacks. Without a history: symbols and start_prices (NULL: 100). */
  const keel_panel *history;
  size_t history_rows;                /* (0) */
  const char *const *symbols;
  const double *start_prices;
  keel_date start_date;               /* date of row 0 without a history (KEEL_DATE_NONE: 2000-01-03) */
  size_t npaths;                      /* (1000) */
  uint64_t seed;                      /* stream seed (the context's) */
  int threads;                        /* workers (0: the context's thread count) */
  double goal;                        /* wealth goal for P(goal) (0: none) */
  double loss_threshold;              /* X of P(loss > X) (0.2) */
  double es_level;                    /* tail of the expected shortfall (0.05) */
  size_t band_points;                 /* points of the fan chart (0: min(steps + 1, 401)) */
  int keep_paths;                     /* keep every path's statistics and values at the band points: exact
                                         percentiles (0: histograms, memory independent of npaths) */
  int record_holdings;                /* the engine records holdings (for on_path; 0) */
  keel_stress_progress_fn progress;
  void *progress_ud;
  keel_stress_path_fn on_path;
  void *path_ud;
} keel_stress_options;

KEEL_API void keel_stress_options_default(keel_stress_options *o);

typedef struct keel_stress_result keel_stress_result;

/* Runs the paths. KEEL_EINVAL for bad options (or an account the engine
 * refuses, with its message); KEEL_ENUMERIC when a path's prices overflow;
 * the first failing path's engine status otherwise (the lowest path
 * number among failures). With threads > 1 the context's allocator must
 * be thread-safe. On failure *out is NULL. */
KEEL_API keel_status keel_stress_run(keel_ctx *ctx, const keel_stress_options *o, keel_stress_result **out);
KEEL_API void keel_stress_result_free(keel_stress_result *r);

KEEL_API size_t keel_stress_npaths(const keel_stress_result *r);
KEEL_API size_t keel_stress_nsteps(const keel_stress_result *r);
KEEL_API double keel_stress_years(const keel_stress_result *r);
KEEL_API double keel_stress_capital(const keel_stress_result *r);
/* Whether any path had external flows (then IRR differs from the TWR). */
KEEL_API int keel_stress_has_flows(const keel_stress_result *r);
/* Money paid in and out on average per path. */
KEEL_API double keel_stress_mean_in(const keel_stress_result *r);
KEEL_API double keel_stress_mean_out(const keel_stress_result *r);

/* With keep_paths: the statistic's value on each path (npaths values,
 * path order; NaN where undefined, e.g. an IRR with no sign change).
 * Borrowed. Without: NULL. */
KEEL_API const double *keel_stress_values(const keel_stress_result *r, keel_stress_stat s);
/* Whether the paths' statistics were kept (keep_paths), so that the
 * quantiles, shortfalls and probabilities below are exact. */
KEEL_API int keel_stress_exact(const keel_stress_result *r);
/* Quantile q in [0, 1] over the paths where it is defined (linear
 * interpolation between order statistics, "type 7"); NaN if none. Exact
 * with keep_paths; otherwise the order statistics are estimated from
 * their histogram buckets, within 2^-8 (0.39%) of their value (2^-32
 * absolute near 0), so the quantile is within 0.39% of the larger in
 * magnitude of the two it interpolates between. */
KEEL_API double keel_stress_quantile(const keel_stress_result *r, keel_stress_stat s, double q);
/* The mean over the paths where it is defined: the exact sum, rounded. */
KEEL_API double keel_stress_mean(const keel_stress_result *r, keel_stress_stat s);
/* Share of paths with terminal wealth >= goal; with any_time, whose value
 * reached goal at some point. Exact with keep_paths or for the run's goal;
 * otherwise from the histogram (the share of goal's bucket, values within
 * 0.39% of goal, is split linearly). */
KEEL_API double keel_stress_prob_goal(const keel_stress_result *r, double goal, int any_time);
/* Share of paths that lost more than x (KEEL_STRESS_LOSS > x); exact with
 * keep_paths or for the run's loss threshold, else as prob_goal. */
KEEL_API double keel_stress_prob_loss(const keel_stress_result *r, double x);
/* Expected shortfall at tail `level`: the mean of the worst ceil(level N)
 * values of the statistic (the highest for LOSS, MAX_DRAWDOWN,
 * UNDERWATER, COSTS; the lowest for the others). Exact with keep_paths;
 * otherwise the mean of those order statistics' estimates (each within
 * 0.39%). */
KEEL_API double keel_stress_shortfall(const keel_stress_result *r, keel_stress_stat s, double level);

/* The fan chart: npoints points at run rows (keel_stress_band_rows), the
 * 5/25/50/75/95 percentiles of the account's value there, from log-linear
 * histograms (256 buckets an octave) from 2^-17 to 2^17 times the capital
 * (relative error below 0.4%; values outside are counted at the ends). */
#define KEEL_STRESS_NBANDS 5
KEEL_API const double *keel_stress_band_probs(void); /* 0.05, 0.25, 0.5, 0.75, 0.95 */
KEEL_API size_t keel_stress_band_npoints(const keel_stress_result *r);
KEEL_API const size_t *keel_stress_band_rows(const keel_stress_result *r); /* step of each point (0 = start) */
KEEL_API const keel_date *keel_stress_band_dates(const keel_stress_result *r);
/* npoints x KEEL_STRESS_NBANDS values, row-major. */
KEEL_API const double *keel_stress_bands(const keel_stress_result *r);
/* With keep_paths: path p's values at the band points; else NULL. */
KEEL_API const double *keel_stress_path_values(const keel_stress_result *r, size_t p);

/* Options the run was made with, as recorded. */
KEEL_API uint64_t keel_stress_seed(const keel_stress_result *r);
KEEL_API double keel_stress_goal(const keel_stress_result *r);
KEEL_API double keel_stress_loss_threshold(const keel_stress_result *r);
KEEL_API double keel_stress_es_level(const keel_stress_result *r);

/* Stores a stress run (keel_store_save_stress): the summary, the
 * 5/25/50/75/95 percentiles, mean and expected shortfall of every
 * statistic, and the fan chart. */
struct keel_store;
typedef struct keel_stress_meta {
  const char *strategy;     /* what the targets come from ("fixed_weights", a strategy's name) */
  const char *params_json;  /* the run's parameters, a JSON object ("{}") */
  const char *dataset;      /* the history's name ("") */
  const char *dataset_hash; /* keel_panel_hash of the history ("") */
  const char *generator;    /* keel_mc_kind_name */
  const char *scenario;     /* the scenario text ("") */
} keel_stress_meta;

KEEL_API keel_status keel_stress_save(keel_ctx *ctx, struct keel_store *store, const keel_stress_result *r,
                                      const keel_stress_meta *meta, int64_t *run_id);

/* The terminal wealth's histogram: nbins bins of equal width (in log
 * wealth when the 0.5% and 99.5% quantiles are both > 0 and more than 4
 * apart as a ratio, else in wealth) between those quantiles, and a bin
 * for each tail: lo, hi and share get nbins + 2 entries, bin 0 being
 * (-inf, lo[1]) (lo[0] NaN) and bin nbins + 1 [hi[nbins], +inf) (its hi
 * NaN). share is the fraction of paths in the bin: counted exactly with
 * keep_paths, else the differences of keel_stress_prob_goal at the edges
 * (from the streamed histogram, within its 0.39% buckets). */
#define KEEL_STRESS_HIST_BINS 40
KEEL_API keel_status keel_stress_wealth_histogram(keel_ctx *ctx, const keel_stress_result *r, size_t nbins,
                                                  double *lo, double *hi, double *share);

/* A stress run as a store record (keel/store.h), every field filled from
 * the result and meta (borrowed, as are the result's fan chart arrays);
 * the statistics and the histogram (KEEL_STRESS_HIST_BINS bins) live in
 * buf, which must outlive rec. keel_stress_save stores the same without
 * the histogram. */
typedef struct keel_stress_record_buf {
  const char *stat_names[KEEL_STRESS_NSTATS];
  double stat_values[KEEL_STRESS_NSTATS * 7];
  double hist_lo[KEEL_STRESS_HIST_BINS + 2], hist_hi[KEEL_STRESS_HIST_BINS + 2], hist_share[KEEL_STRESS_HIST_BINS + 2];
} keel_stress_record_buf;
struct keel_stress_record;
KEEL_API keel_status keel_stress_record_fill(keel_ctx *ctx, const keel_stress_result *r, const keel_stress_meta *meta,
                                             struct keel_stress_record *rec, keel_stress_record_buf *buf);

/* Scenarios from a JSON document: {"groups": {"equity": ["EQUITY",
 * "EM_EQUITY"]}, "events": [{"kind": "crash", "target": "equity",
 * "size": -0.4, "at": "5y"}, "vol:all:2@10y/1y", ...]} (docs/stress.md).
 * KEEL_EPARSE with name:line:column for malformed JSON, KEEL_EINVAL with
 * the event's path for a bad event. */
KEEL_API keel_status keel_scenario_parse_json(keel_ctx *ctx, keel_scenario *sc, const char *name, const char *json,
                                              size_t len);

#ifdef __cplusplus
}
#endif
#endif
