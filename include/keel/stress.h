/** @file
 * @brief keel — the Monte Carlo stress runner (backtest/): an account played
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

/** @brief Per-path statistics. */
typedef enum keel_stress_stat {
  KEEL_STRESS_WEALTH = 0,   /**< terminal value of the account */
  KEEL_STRESS_CAGR,         /**< time-weighted annual return: TWR^(1 / years) - 1 */
  KEEL_STRESS_TWR,          /**< time-weighted total return (flows taken out) */
  KEEL_STRESS_MAX_DRAWDOWN, /**< of the time-weighted index, as a positive fraction */
  KEEL_STRESS_UNDERWATER,   /**< longest time below a previous peak of the index, years */
  KEEL_STRESS_IRR,          /**< money-weighted annual return (internal rate of return of the flows) */
  KEEL_STRESS_LOSS,         /**< 1 - (terminal value + money paid out) / (capital + money paid in) */
  KEEL_STRESS_COSTS,        /**< trading costs paid */
  KEEL_STRESS_PEAK_WEALTH,  /**< highest value reached on the way */
  KEEL_STRESS_NSTATS        /**< the number of statistics */
} keel_stress_stat;

/** @brief Name of a statistic.
 * @param s the statistic
 * @return a static string: "wealth", "cagr", "twr", "max_drawdown",
 *         "underwater_years", "irr", "loss", "costs", "peak_wealth"
 *         ("unknown" out of range) */
KEEL_API const char *keel_stress_stat_name(keel_stress_stat s);

/** @brief Progress of a stress run (called on the calling thread).
 * @param ud the options' progress_ud
 * @param done paths finished
 * @param total paths in the run */
typedef void (*keel_stress_progress_fn)(void *ud, size_t done, size_t total);
/** @brief Called on a worker thread after each path, for inspection; must be
 * thread-safe when threads > 1.
 * @param ud the options' path_ud
 * @param path the path's index
 * @param panel the panel it ran on
 * @param start rows [start, start + npoints) of panel are the run
 * @param r the engine's result
 * @return 0 to go on; non-zero stops the run with KEEL_EINVAL */
typedef int (*keel_stress_path_fn)(void *ud, uint64_t path, const keel_panel *panel, size_t start,
                                   const keel_backtest_result *r);
/** @brief Makes the account of one worker (strategies keep state, so each
 * worker needs its own instances), against that worker's panel.
 * @param ud the options' account_ud
 * @param ctx the worker's context
 * @param panel the worker's panel
 * @param[out] spec the account
 * @param[out] handle passed to free_account when the worker is done
 * @return KEEL_OK, or a status that ends the run */
typedef keel_status (*keel_stress_account_fn)(void *ud, keel_ctx *ctx, const keel_panel *panel,
                                              const keel_account_spec **spec, void **handle);
/** @brief Frees what a keel_stress_account_fn made.
 * @param ud the options' account_ud
 * @param handle its *handle */
typedef void (*keel_stress_account_free_fn)(void *ud, void *handle);

/** @brief What a stress run plays and how (defaults, from
 * @ref keel_stress_options_default, in parentheses). */
typedef struct keel_stress_options {
  const keel_mc *gen;                 /**< the generator, its scenario set (required) */
  /** The account: a spec shared by all workers (it must not hold strategies
   * when threads > 1), or make_account per worker. start, end, opens and
   * fill are set by the runner (the run is the simulated rows, fills at
   * the close); periods_per_year is the generator's steps per year. */
  const keel_account_spec *account;
  keel_stress_account_fn make_account;     /**< makes each worker's account (instead of account) */
  keel_stress_account_free_fn free_account; /**< frees it, or NULL */
  void *account_ud;                   /**< passed to make_account and free_account */
  /** Prices before the paths: the history (its symbols name the assets);
   * the last row of its common window is the start (t = 0) and the
   * history_rows rows before it (at the generator's frequency: month ends
   * for monthly steps) precede it in every panel, for strategies'
   * lookbacks. Without a history: symbols and start_prices (NULL: 100). */
  const keel_panel *history;
  size_t history_rows;                /**< rows of history before the start (0) */
  const char *const *symbols;         /**< without a history: the assets' symbols */
  const double *start_prices;         /**< without a history: prices at the start (NULL: 100) */
  keel_date start_date;               /**< date of row 0 without a history (KEEL_DATE_NONE: 2000-01-03) */
  size_t npaths;                      /**< (1000) */
  uint64_t seed;                      /**< stream seed (the context's) */
  int threads;                        /**< workers (0: the context's thread count) */
  double goal;                        /**< wealth goal for P(goal) (0: none) */
  double loss_threshold;              /**< X of P(loss > X) (0.2) */
  double es_level;                    /**< tail of the expected shortfall (0.05) */
  size_t band_points;                 /**< points of the fan chart (0: min(steps + 1, 401)) */
  int keep_paths;                     /**< keep every path's statistics and values at the band points: exact
                                           percentiles (0: histograms, memory independent of npaths) */
  int record_holdings;                /**< the engine records holdings (for on_path; 0) */
  keel_stress_progress_fn progress;   /**< progress callback, or NULL */
  void *progress_ud;                  /**< passed to progress */
  keel_stress_path_fn on_path;        /**< per-path callback, or NULL */
  void *path_ud;                      /**< passed to on_path */
} keel_stress_options;

/** @brief Fills o with the defaults given in keel_stress_options.
 * @param[out] o the options */
KEEL_API void keel_stress_options_default(keel_stress_options *o);

/** @brief A finished stress run (opaque): statistics, probabilities, fan chart. */
typedef struct keel_stress_result keel_stress_result;

/** @brief Runs the paths.
 *
 * With threads > 1 the context's allocator must be thread-safe.
 * @param ctx the context
 * @param o the options
 * @param[out] out the result; NULL on failure
 * @return KEEL_OK; KEEL_EINVAL for bad options (or an account the engine
 *         refuses, with its message); KEEL_ENUMERIC when a path's prices
 *         overflow; the first failing path's engine status otherwise (the
 *         lowest path number among failures); KEEL_ENOMEM */
KEEL_API keel_status keel_stress_run(keel_ctx *ctx, const keel_stress_options *o, keel_stress_result **out);
/** @brief Frees a result; NULL is a no-op.
 * @param r the result */
KEEL_API void keel_stress_result_free(keel_stress_result *r);

/** @brief Number of paths run.
 * @param r the result
 * @return npaths */
KEEL_API size_t keel_stress_npaths(const keel_stress_result *r);
/** @brief Steps per path.
 * @param r the result
 * @return nsteps */
KEEL_API size_t keel_stress_nsteps(const keel_stress_result *r);
/** @brief The horizon.
 * @param r the result
 * @return years */
KEEL_API double keel_stress_years(const keel_stress_result *r);
/** @brief The account's starting capital.
 * @param r the result
 * @return the capital */
KEEL_API double keel_stress_capital(const keel_stress_result *r);
/** @brief Whether any path had external flows (then IRR differs from the TWR).
 * @param r the result
 * @return 1 or 0 */
KEEL_API int keel_stress_has_flows(const keel_stress_result *r);
/** @brief Money paid in on average per path.
 * @param r the result
 * @return the mean */
KEEL_API double keel_stress_mean_in(const keel_stress_result *r);
/** @brief Money paid out on average per path.
 * @param r the result
 * @return the mean */
KEEL_API double keel_stress_mean_out(const keel_stress_result *r);

/** @brief With keep_paths: the statistic's value on each path.
 * @param r the result
 * @param s the statistic
 * @return npaths values, path order (NaN where undefined, e.g. an IRR with
 *         no sign change), borrowed; NULL without keep_paths */
KEEL_API const double *keel_stress_values(const keel_stress_result *r, keel_stress_stat s);
/** @brief Whether the paths' statistics were kept (keep_paths), so that the
 * quantiles, shortfalls and probabilities below are exact.
 * @param r the result
 * @return 1 or 0 */
KEEL_API int keel_stress_exact(const keel_stress_result *r);
/** @brief Quantile q over the paths where the statistic is defined (linear
 * interpolation between order statistics, "type 7").
 *
 * Exact with keep_paths; otherwise the order statistics are estimated from
 * their histogram buckets, within 2^-8 (0.39%) of their value (2^-32
 * absolute near 0), so the quantile is within 0.39% of the larger in
 * magnitude of the two it interpolates between.
 * @param r the result
 * @param s the statistic
 * @param q in [0, 1]
 * @return the quantile; NaN if no path defines it */
KEEL_API double keel_stress_quantile(const keel_stress_result *r, keel_stress_stat s, double q);
/** @brief The mean over the paths where the statistic is defined: the exact sum, rounded.
 * @param r the result
 * @param s the statistic
 * @return the mean */
KEEL_API double keel_stress_mean(const keel_stress_result *r, keel_stress_stat s);
/** @brief Share of paths with terminal wealth >= goal; with any_time, whose
 * value reached goal at some point.
 *
 * Exact with keep_paths or for the run's goal; otherwise from the
 * histogram (the share of goal's bucket, values within 0.39% of goal, is
 * split linearly).
 * @param r the result
 * @param goal the wealth
 * @param any_time 0: at the horizon; 1: at any point
 * @return the share, in [0, 1] */
KEEL_API double keel_stress_prob_goal(const keel_stress_result *r, double goal, int any_time);
/** @brief Share of paths that lost more than x (KEEL_STRESS_LOSS > x).
 *
 * Exact with keep_paths or for the run's loss threshold, else as
 * @ref keel_stress_prob_goal.
 * @param r the result
 * @param x the loss, a fraction
 * @return the share, in [0, 1] */
KEEL_API double keel_stress_prob_loss(const keel_stress_result *r, double x);
/** @brief Expected shortfall at tail `level`: the mean of the worst
 * ceil(level N) values of the statistic (the highest for LOSS,
 * MAX_DRAWDOWN, UNDERWATER, COSTS; the lowest for the others).
 *
 * Exact with keep_paths; otherwise the mean of those order statistics'
 * estimates (each within 0.39%).
 * @param r the result
 * @param s the statistic
 * @param level the tail, in (0, 1]
 * @return the shortfall */
KEEL_API double keel_stress_shortfall(const keel_stress_result *r, keel_stress_stat s, double level);

/* The fan chart: npoints points at run rows (keel_stress_band_rows), the
 * 5/25/50/75/95 percentiles of the account's value there, from log-linear
 * histograms (256 buckets an octave) from 2^-17 to 2^17 times the capital
 * (relative error below 0.4%; values outside are counted at the ends). */

/** @brief Number of percentiles of the fan chart (5/25/50/75/95). */
#define KEEL_STRESS_NBANDS 5
/** @brief The fan chart's probabilities.
 * @return KEEL_STRESS_NBANDS values, static: 0.05, 0.25, 0.5, 0.75, 0.95 */
KEEL_API const double *keel_stress_band_probs(void);
/** @brief Number of points of the fan chart.
 * @param r the result
 * @return npoints */
KEEL_API size_t keel_stress_band_npoints(const keel_stress_result *r);
/** @brief The step of each point of the fan chart (0 = start).
 * @param r the result
 * @return npoints steps, borrowed */
KEEL_API const size_t *keel_stress_band_rows(const keel_stress_result *r);
/** @brief The date of each point of the fan chart.
 * @param r the result
 * @return npoints dates, borrowed */
KEEL_API const keel_date *keel_stress_band_dates(const keel_stress_result *r);
/** @brief The fan chart: the 5/25/50/75/95 percentiles of the account's value
 * at each point, from log-linear histograms (256 buckets an octave) from
 * 2^-17 to 2^17 times the capital (relative error below 0.4%; values
 * outside are counted at the ends).
 * @param r the result
 * @return npoints x KEEL_STRESS_NBANDS values, row-major, borrowed */
KEEL_API const double *keel_stress_bands(const keel_stress_result *r);
/** @brief With keep_paths: path p's values at the band points.
 * @param r the result
 * @param p the path
 * @return npoints values, borrowed; NULL without keep_paths */
KEEL_API const double *keel_stress_path_values(const keel_stress_result *r, size_t p);

/* Options the run was made with, as recorded. */

/** @brief The stream seed the run was made with.
 * @param r the result
 * @return the seed */
KEEL_API uint64_t keel_stress_seed(const keel_stress_result *r);
/** @brief The goal the run was made with.
 * @param r the result
 * @return the goal (0: none) */
KEEL_API double keel_stress_goal(const keel_stress_result *r);
/** @brief The loss threshold the run was made with.
 * @param r the result
 * @return the threshold */
KEEL_API double keel_stress_loss_threshold(const keel_stress_result *r);
/** @brief The expected shortfall's tail the run was made with.
 * @param r the result
 * @return the level */
KEEL_API double keel_stress_es_level(const keel_stress_result *r);

struct keel_store;
/** @brief What a stored stress run needs besides its result (@ref keel_stress_save). */
typedef struct keel_stress_meta {
  const char *strategy;     /**< what the targets come from: "fixed_weights" or a strategy's name ("") */
  const char *params_json;  /**< the run's parameters, a JSON object ("{}") */
  const char *dataset;      /**< the history's name ("") */
  const char *dataset_hash; /**< keel_panel_hash() of the history ("") */
  const char *generator;    /**< keel_mc_kind_name() ("") */
  const char *scenario;     /**< the scenario text ("") */
} keel_stress_meta;

/** @brief Stores a stress run (keel_store_save_stress()): the summary, the
 * 5/25/50/75/95 percentiles, mean and expected shortfall of every
 * statistic, the fan chart and the terminal wealth's histogram (the
 * record of keel_stress_record_fill()).
 * @param ctx the context
 * @param store the store
 * @param r the result
 * @param meta what the run was (may be NULL: the defaults in parentheses)
 * @param[out] run_id its id in runs
 * @return KEEL_OK; KEEL_EINVAL for a missing argument or a result without
 *         a terminal wealth; the store's errors */
KEEL_API keel_status keel_stress_save(keel_ctx *ctx, struct keel_store *store, const keel_stress_result *r,
                                      const keel_stress_meta *meta, int64_t *run_id);

/** @brief The number of bins between the tails in a stored stress run's
 * terminal-wealth histogram (keel_stress_record_fill() and
 * keel_stress_save() store this many plus the two tails). */
#define KEEL_STRESS_HIST_BINS 40

/** @brief The terminal wealth's histogram.
 *
 * nbins bins of equal width between the 0.5% and 99.5% quantiles of the
 * terminal wealth (in log wealth when both are > 0 and more than 4 apart
 * as a ratio, else in wealth), and a bin for each tail: lo, hi and share
 * get nbins + 2 entries, bin 0 being (-inf, lo[1]) (lo[0] NaN) and bin
 * nbins + 1 [hi[nbins], +inf) (its hi NaN); the others are [lo[k], hi[k]).
 * share is the fraction of paths in the bin: counted exactly with
 * keel_stress_options::keep_paths, else the differences of
 * keel_stress_prob_goal() at the edges (from the streamed histogram,
 * within its 0.39% buckets).
 * @param ctx the context
 * @param r the result
 * @param nbins the bins between the tails, 1 to 100000
 *        (@ref KEEL_STRESS_HIST_BINS for what the store keeps)
 * @param[out] lo nbins + 2 lower edges
 * @param[out] hi nbins + 2 upper edges
 * @param[out] share nbins + 2 fractions of the paths (summing to 1)
 * @return KEEL_OK; KEEL_EINVAL for a missing argument, nbins out of range
 *         or a result without a terminal wealth */
KEEL_API keel_status keel_stress_wealth_histogram(keel_ctx *ctx, const keel_stress_result *r, size_t nbins,
                                                  double *lo, double *hi, double *share);

/** @brief Storage for what keel_stress_record_fill() computes: the
 * statistics and the histogram that the record points into. */
typedef struct keel_stress_record_buf {
  const char *stat_names[KEEL_STRESS_NSTATS];     /**< keel_stress_stat_name() of each statistic */
  double stat_values[KEEL_STRESS_NSTATS * 7];     /**< per statistic: p05, p25, p50, p75, p95, mean, es */
  double hist_lo[KEEL_STRESS_HIST_BINS + 2];      /**< the histogram's lower edges */
  double hist_hi[KEEL_STRESS_HIST_BINS + 2];      /**< the histogram's upper edges */
  double hist_share[KEEL_STRESS_HIST_BINS + 2];   /**< the share of the paths in each bin */
} keel_stress_record_buf;
struct keel_stress_record;
/** @brief A stress run as a store record (keel/store.h).
 *
 * Every field is filled from the result and meta (borrowed, as are the
 * result's fan chart arrays); the statistics and the histogram
 * (@ref KEEL_STRESS_HIST_BINS bins and the two tails, from
 * keel_stress_wealth_histogram()) live in buf, which must outlive rec.
 * keel_stress_save() stores the record this fills.
 * @param ctx the context
 * @param r the result
 * @param meta what the run was (may be NULL: the defaults of
 *        keel_stress_meta)
 * @param[out] rec the record, for keel_store_save_stress()
 * @param buf where the statistics and the histogram are kept
 * @return KEEL_OK; KEEL_EINVAL for a missing argument or a result without
 *         a terminal wealth */
KEEL_API keel_status keel_stress_record_fill(keel_ctx *ctx, const keel_stress_result *r, const keel_stress_meta *meta,
                                             struct keel_stress_record *rec, keel_stress_record_buf *buf);

/** @brief Scenarios from a JSON document (docs/stress.md).
 *
 * For example {"groups": {"equity": ["EQUITY", "EM_EQUITY"]}, "events":
 * [{"kind": "crash", "target": "equity", "size": -0.4, "at": "5y"},
 * "vol:all:2@10y/1y", ...]}.
 * @param ctx the context
 * @param sc the scenario the groups and events are added to
 * @param name used in messages
 * @param json the JSON text
 * @param len its length in bytes
 * @return KEEL_OK; KEEL_EPARSE with name:line:column for malformed JSON;
 *         KEEL_EINVAL with the event's path for a bad event; KEEL_ENOMEM */
KEEL_API keel_status keel_scenario_parse_json(keel_ctx *ctx, keel_scenario *sc, const char *name, const char *json,
                                              size_t len);

#ifdef __cplusplus
}
#endif
#endif
