/** @file
 * @brief keel — the SQLite store (data/): imported price series and run results.
 *
 * The schema is versioned with PRAGMA user_version and migrated forward on
 * open; the database runs in WAL mode. Each run is written in one
 * transaction, so a killed process leaves every finished run whole and no
 * partial run; a run may carry a batch job's hash, unique in the store,
 * so an interrupted batch resumes where it stopped. docs/store.md describes the tables.
 */
#ifndef KEEL_STORE_H
#define KEEL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "keel/ctx.h"
#include "keel/date.h"
#include "keel/panel.h"
#include "keel/trade.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Schema version written by this library. */
#define KEEL_STORE_SCHEMA_VERSION 4

/** @brief An open results database (opaque): one SQLite connection. */
typedef struct keel_store keel_store;

/** @brief Opens (creating if needed) the database at path and migrates its schema.
 * @param ctx the context
 * @param path the database file
 * @param[out] out the store; NULL on failure
 * @return KEEL_OK; KEEL_EIO for a file that cannot be opened or is not an
 *         SQLite file; KEEL_EINVAL for a database from a newer keel
 *         (user_version above ours) or an SQLite database that is not
 *         keel's; KEEL_ENOMEM */
KEEL_API keel_status keel_store_open(keel_ctx *ctx, const char *path, keel_store **out);
/** @brief Closes the store; NULL is a no-op.
 * @param s the store */
KEEL_API void keel_store_close(keel_store *s);
/** @brief The schema version of the open database (after migration).
 * @param s the store
 * @return its PRAGMA user_version */
KEEL_API int keel_store_schema_version(const keel_store *s);

/** @brief Stores panel p as dataset `name`, replacing any dataset of that
 * name, in one transaction.
 * @param ctx the context
 * @param s the store
 * @param name the dataset's name (non-empty)
 * @param p the prices
 * @return KEEL_OK; KEEL_EINVAL for a missing argument; KEEL_EIO for a
 *         database error (nothing of the dataset is written) */
KEEL_API keel_status keel_store_put_dataset(keel_ctx *ctx, keel_store *s, const char *name,
                                            const keel_panel *p);
/** @brief Reads dataset `name` back into a new panel (bit-exact prices and dates).
 * @param ctx the context
 * @param s the store
 * @param name the dataset's name
 * @param[out] out the panel; NULL on failure
 * @return KEEL_OK; KEEL_EINVAL if there is no such dataset; KEEL_EIO for a
 *         database error; KEEL_ENOMEM */
KEEL_API keel_status keel_store_get_dataset(keel_ctx *ctx, keel_store *s, const char *name,
                                            keel_panel **out);

/** @brief A sub-account of a run: its name, capital and, optionally, its metrics
 * and series over the run's points (values NULL: no series stored). */
typedef struct keel_run_sub {
  const char *name;                /**< the sub-account's name */
  double capital;                  /**< its starting capital */
  size_t nmetrics;                 /**< number of metrics */
  const char *const *metric_names; /**< nmetrics names */
  const double *metric_values;     /**< nmetrics values; NaN stored as NULL */
  const double *values;            /**< npoints of the run, or NULL */
  const double *cash;              /**< may be NULL */
  const double *flows;             /**< may be NULL */
} keel_run_sub;

/** @brief An event of a run (a stop trigger, its fill, a re-entry), as text. */
typedef struct keel_run_event {
  keel_date date;     /**< when it happened */
  uint32_t sub;       /**< sub-account index */
  const char *symbol; /**< the asset, or NULL for the whole sub-account */
  const char *kind;   /**< "stop", "stop_fill", "reentry" */
  const char *stop;   /**< the rule's kind, "trailing" */
  double price;       /**< keel_event.price */
  double level;       /**< keel_event.level */
} keel_run_event;

/** @brief An optimiser call made by a strategy during the run (the audit trail). */
typedef struct keel_run_opt_call {
  keel_date date;     /**< the decision's date */
  uint32_t sub;       /**< sub-account index */
  const char *status; /**< keel_qp_status_name() */
  int iterations;     /**< interior-point iterations */
  int solves;         /**< QP solves */
  int polished;       /**< 1: polished on the active set */
  double res_prim;    /**< primal residual */
  double res_dual;    /**< dual residual */
  double ret;         /**< the optimum's expected return */
  double vol;         /**< the optimum's volatility */
} keel_run_opt_call;

/** @brief A sub-account's weight in one asset at one point (schema version 4):
 * the asset's value over the sub-account's value, after trading. */
typedef struct keel_run_weight {
  keel_date date;     /**< the point's date */
  uint32_t sub;       /**< sub-account index */
  const char *symbol; /**< the asset */
  double weight;      /**< its value over the sub-account's value */
} keel_run_weight;

/** @brief A finished run, as plain arrays, so the store needs no engine types.
 *
 * Everything after nassets is optional (NULL / 0 = none), so a record
 * filled as for schema version 1 is still valid. */
typedef struct keel_run_record {
  const char *kind;         /**< "backtest" */
  const char *strategy;     /**< "fixed_weights" */
  const char *params_json;  /**< parameters, a JSON object */
  const char *dataset;      /**< dataset name or file name */
  const char *dataset_hash; /**< keel_panel_hash() of the prices used ("" when unknown) */
  const char *status;       /**< "ok", or "error" with error set */
  uint64_t seed;            /**< the run's seed */
  keel_date start;          /**< first date */
  keel_date end;            /**< last date */
  size_t nmetrics;          /**< number of metrics */
  const char *const *metric_names; /**< nmetrics names */
  const double *metric_values; /**< nmetrics values; NaN stored as NULL */
  size_t npoints;              /**< points of the equity curve */
  const keel_date *dates;      /**< npoints dates */
  const double *values;        /**< npoints values */
  const double *cash;          /**< npoints cash values; may be NULL */
  size_t ntrades;              /**< number of trades */
  const keel_trade *trades;    /**< ntrades trades; keel_trade.sub is stored too */
  const char *const *asset_symbols; /**< names for keel_trade.asset */
  size_t nassets;              /**< number of asset_symbols */
  /* schema version 2 */
  const char *job_hash;        /**< batch job identity (unique in the store), or NULL */
  const char *error;           /**< what went wrong, for status "error"; or NULL */
  const double *flows;         /**< npoints external flows, or NULL */
  size_t nsubs;                /**< number of sub-accounts */
  const keel_run_sub *subs;    /**< nsubs sub-accounts */
  size_t nevents;              /**< number of events */
  const keel_run_event *events; /**< nevents events */
  size_t nopt_calls;           /**< number of optimiser calls */
  const keel_run_opt_call *opt_calls; /**< nopt_calls optimiser calls */
  void *owner;                 /**< private to whoever filled the record (keel_backtest_record_fill()) */
  /* schema version 4 */
  const char *benchmark_symbol; /**< the benchmark's symbol, or NULL */
  const double *benchmark;      /**< npoints: its prices scaled to the run's starting value, or NULL */
  size_t nweights;              /**< number of weights */
  const keel_run_weight *weights; /**< nweights: the sub-accounts' weights at some points (docs/store.md) */
} keel_run_record;

/** @brief Writes one run and everything under it in one transaction.
 * @param ctx the context
 * @param s the store
 * @param rec the run
 * @param[out] run_id its id in the runs table
 * @return KEEL_OK; KEEL_EINVAL for a record that is not valid; KEEL_EIO
 *         for a database error. On failure nothing of the run is left in
 *         the database. */
KEEL_API keel_status keel_store_save_run(keel_ctx *ctx, keel_store *s,
                                         const keel_run_record *rec, int64_t *run_id);

/** @brief A Monte Carlo stress run (keel/stress.h), as plain arrays.
 *
 * Stored as a run of kind "stress" with its summary, per-statistic
 * measures and fan chart (schema version 3; docs/store.md). */
typedef struct keel_stress_record {
  const char *strategy;     /**< as for keel_run_record */
  const char *params_json;  /**< as for keel_run_record */
  const char *dataset;      /**< as for keel_run_record */
  const char *dataset_hash; /**< as for keel_run_record */
  const char *generator; /**< "bootstrap" */
  const char *scenario;  /**< the scenario as given ("" for none) */
  uint64_t seed;         /**< the stream seed */
  keel_date start;       /**< the start (row 0) */
  keel_date end;         /**< the horizon's date */
  size_t npaths;         /**< number of paths */
  size_t nsteps;         /**< steps per path */
  double steps_per_year; /**< steps a year */
  double years;          /**< the horizon */
  double capital;        /**< the starting capital */
  double goal;           /**< the wealth goal; 0: none (stored as NULL) */
  double p_goal;         /**< share of paths ending at or above the goal */
  double p_goal_any;     /**< share of paths reaching the goal at some point */
  double loss_threshold; /**< X of P(loss > X) */
  double p_loss;         /**< P(loss > X) */
  double es_level;       /**< the expected shortfall's tail */
  double mean_in;        /**< money paid in on average per path */
  double mean_out;       /**< money paid out on average per path */
  size_t nstats;         /**< number of statistics */
  size_t nmeasures;      /**< number of measures of each */
  const char *const *stat_names;    /**< nstats: "wealth", "cagr", ... */
  const char *const *measure_names; /**< nmeasures: "p05", ..., "mean", "es" */
  const double *stat_values;        /**< nstats x nmeasures; NaN stored as NULL */
  size_t npoints;                   /**< points of the fan chart */
  const size_t *band_steps;         /**< npoints steps (0 = start) */
  const keel_date *band_dates;      /**< npoints dates */
  const double *bands;              /**< npoints x 5: p05, p25, p50, p75, p95 */
  /* schema version 4: the terminal wealth's histogram */
  size_t nhist;                     /**< number of bins of the terminal wealth's histogram (0: none) */
  const double *hist_lo;            /**< nhist: each bin's lower edge (bins are [lo, hi)); NaN: from
                                         -infinity (the lower tail), stored as NULL */
  const double *hist_hi;            /**< nhist: each bin's upper edge; NaN: to +infinity (the upper
                                         tail), stored as NULL */
  const double *hist_share;         /**< nhist: the share of paths in each bin */
} keel_stress_record;

/** @brief Writes a stress run in one transaction.
 * @param ctx the context
 * @param s the store
 * @param rec the run
 * @param[out] run_id its id in runs
 * @return KEEL_OK; KEEL_EINVAL for a record that is not valid (a required
 *         field NULL, params_json not a JSON object); KEEL_EIO for a
 *         database error (nothing is written) */
KEEL_API keel_status keel_store_save_stress(keel_ctx *ctx, keel_store *s, const keel_stress_record *rec,
                                            int64_t *run_id);

/** @brief A mean-variance optimisation (keel optimize, keel frontier), as plain arrays.
 *
 * Stored as a run of kind "optimize" or "frontier" with its portfolio, its
 * assets and its frontier (schema version 4; docs/store.md). */
typedef struct keel_optimization_record {
  const char *kind;          /**< "optimize" or "frontier" */
  const char *objective;     /**< keel_objective_name() */
  const char *cov;           /**< the covariance estimator ("sample") */
  const char *params_json;   /**< as for keel_run_record */
  const char *dataset;       /**< as for keel_run_record */
  const char *dataset_hash;  /**< as for keel_run_record */
  keel_date start;           /**< the estimation window's first date */
  keel_date end;             /**< the estimation window's last date */
  double risk_free;          /**< the risk-free rate (annual; not finite: stored as 0) */
  size_t nassets;            /**< number of assets (at least 1) */
  const char *const *symbols; /**< nassets symbols */
  const double *mu;          /**< nassets: each asset's expected return (annual, finite) */
  const double *vol;         /**< nassets: each asset's volatility (annual, finite) */
  const double *weights;     /**< nassets: the chosen portfolio, or NULL */
  const double *current;     /**< nassets: the current weights, or NULL */
  const double *risk_contrib; /**< nassets: each asset's share of the portfolio's volatility, or NULL */
  double ret;                /**< the portfolio's expected return (NaN: none, stored as NULL; so are
                                  this and the next five without weights) */
  double vol_p;              /**< the portfolio's volatility (NaN: none) */
  double sharpe;             /**< the portfolio's Sharpe ratio (NaN: none) */
  double turnover;           /**< the portfolio's turnover, sum |w - w0| over the current weights w0 (NaN: none) */
  double cost;               /**< the portfolio's trading cost, as keel_mv_result::cost (NaN: none) */
  double cash;               /**< the portfolio's cash weight, 1 - sum w (NaN: none) */
  double current_ret;        /**< the current portfolio's expected return (NaN: none) */
  double current_vol;        /**< the current portfolio's volatility (NaN: none) */
  size_t npoints;            /**< points of the frontier (0: none) */
  const double *frontier_ret; /**< npoints expected returns (finite) */
  const double *frontier_vol; /**< npoints volatilities (finite) */
  const double *frontier_weights; /**< npoints x nassets, or NULL; a weight that is not finite is not stored */
} keel_optimization_record;

/** @brief Writes an optimisation in one transaction.
 * @param ctx the context
 * @param s the store
 * @param rec the optimisation
 * @param[out] run_id its id in runs (may be NULL)
 * @return KEEL_OK; KEEL_EINVAL for a record that is not valid (a required
 *         field NULL, no assets, a kind other than "optimize" or
 *         "frontier", an asset without a symbol or with a return or
 *         volatility that is not finite, a frontier point that is not
 *         finite, params_json not a JSON object); KEEL_EIO for a database
 *         error (nothing is written)
 * @see keel_store_save_run */
KEEL_API keel_status keel_store_save_optimization(keel_ctx *ctx, keel_store *s, const keel_optimization_record *rec,
                                                  int64_t *run_id);

/** @brief Whether a run with this job hash is in the store (whatever its status).
 * @param ctx the context
 * @param s the store
 * @param job_hash the hash (keel_batch_job_hash())
 * @param[out] found 1 if there is one, else 0
 * @return KEEL_OK; KEEL_EINVAL for a missing argument; KEEL_EIO for a
 *         database error */
KEEL_API keel_status keel_store_has_job(keel_ctx *ctx, keel_store *s, const char *job_hash, int *found);

#ifdef __cplusplus
}
#endif
#endif
