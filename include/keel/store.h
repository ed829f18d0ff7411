/* keel — the SQLite store (data/): imported price series and run results.
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

/* Schema version written by this library. */
#define KEEL_STORE_SCHEMA_VERSION 4

typedef struct keel_store keel_store;

/* Opens (creating if needed) the database at path and migrates its schema.
 * A database from a newer keel (user_version above ours) or a file that is
 * not a keel database is refused with KEEL_EIO / KEEL_EINVAL. */
KEEL_API keel_status keel_store_open(keel_ctx *ctx, const char *path, keel_store **out);
/* Closes the store; NULL is a no-op. */
KEEL_API void keel_store_close(keel_store *s);
KEEL_API int keel_store_schema_version(const keel_store *s);

/* Stores panel p as dataset `name`, replacing any dataset of that name, in
 * one transaction. */
KEEL_API keel_status keel_store_put_dataset(keel_ctx *ctx, keel_store *s, const char *name,
                                            const keel_panel *p);
/* Reads dataset `name` back into a new panel (bit-exact prices and dates).
 * KEEL_EINVAL if there is no such dataset. */
KEEL_API keel_status keel_store_get_dataset(keel_ctx *ctx, keel_store *s, const char *name,
                                            keel_panel **out);

/* A sub-account of a run: its name, capital and, optionally, its metrics
 * and series over the run's points (values NULL: no series stored). */
typedef struct keel_run_sub {
  const char *name;
  double capital;
  size_t nmetrics;
  const char *const *metric_names;
  const double *metric_values; /* NaN stored as NULL */
  const double *values;        /* npoints of the run, or NULL */
  const double *cash;          /* may be NULL */
  const double *flows;         /* may be NULL */
} keel_run_sub;

/* An event of a run (a stop trigger, its fill, a re-entry), as text. */
typedef struct keel_run_event {
  keel_date date;
  uint32_t sub;
  const char *symbol; /* the asset, or NULL for the whole sub-account */
  const char *kind;   /* "stop", "stop_fill", "reentry" */
  const char *stop;   /* the rule's kind, "trailing" */
  double price, level;
} keel_run_event;

/* An optimiser call made by a strategy during the run (the audit trail). */
typedef struct keel_run_opt_call {
  keel_date date;
  uint32_t sub;
  const char *status; /* keel_qp_status_name */
  int iterations, solves, polished;
  double res_prim, res_dual;
  double ret, vol;
} keel_run_opt_call;

/* A sub-account's weight in one asset at one point (schema version 4):
 * the asset's value over the sub-account's value, after trading. */
typedef struct keel_run_weight {
  keel_date date;
  uint32_t sub;
  const char *symbol;
  double weight;
} keel_run_weight;

/* A finished run, as plain arrays, so the store needs no engine types.
 * Everything after nassets is optional (NULL / 0 = none), so a record
 * filled as for schema version 1 is still valid. */
typedef struct keel_run_record {
  const char *kind;         /* "backtest" */
  const char *strategy;     /* "fixed_weights" */
  const char *params_json;  /* parameters, a JSON object */
  const char *dataset;      /* dataset name or file name */
  const char *dataset_hash; /* keel_panel_hash of the prices used ("" when unknown) */
  const char *status;       /* "ok", or "error" with error set */
  uint64_t seed;
  keel_date start, end;
  size_t nmetrics;
  const char *const *metric_names;
  const double *metric_values; /* NaN stored as NULL */
  size_t npoints;              /* equity curve */
  const keel_date *dates;
  const double *values;
  const double *cash;          /* may be NULL */
  size_t ntrades;
  const keel_trade *trades;    /* keel_trade.sub is stored too */
  const char *const *asset_symbols; /* names for keel_trade.asset */
  size_t nassets;
  /* schema version 2 */
  const char *job_hash;        /* batch job identity (unique in the store), or NULL */
  const char *error;           /* what went wrong, for status "error"; or NULL */
  const double *flows;         /* npoints external flows, or NULL */
  size_t nsubs;
  const keel_run_sub *subs;
  size_t nevents;
  const keel_run_event *events;
  size_t nopt_calls;
  const keel_run_opt_call *opt_calls;
  void *owner;                 /* private to whoever filled the record (keel_backtest_record_fill) */
  /* schema version 4 */
  const char *benchmark_symbol; /* the benchmark's symbol, or NULL */
  const double *benchmark;      /* npoints: its prices scaled to the run's starting value, or NULL */
  size_t nweights;
  const keel_run_weight *weights; /* the sub-accounts' weights at some points (docs/store.md) */
} keel_run_record;

/* Writes one run and everything under it in one transaction; *run_id gets
 * its id. On failure nothing of the run is left in the database. */
KEEL_API keel_status keel_store_save_run(keel_ctx *ctx, keel_store *s,
                                         const keel_run_record *rec, int64_t *run_id);

/* A Monte Carlo stress run (keel/stress.h), as plain arrays: stored as a
 * run of kind "stress" with its summary, per-statistic measures and fan
 * chart (schema version 3; docs/store.md). */
typedef struct keel_stress_record {
  const char *strategy, *params_json, *dataset, *dataset_hash; /* as for keel_run_record */
  const char *generator; /* "bootstrap" */
  const char *scenario;  /* the scenario as given ("" for none) */
  uint64_t seed;
  keel_date start, end;  /* the start (row 0) and the horizon's date */
  size_t npaths, nsteps;
  double steps_per_year, years, capital;
  double goal, p_goal, p_goal_any; /* goal 0: none (stored as NULL) */
  double loss_threshold, p_loss, es_level, mean_in, mean_out;
  size_t nstats, nmeasures;
  const char *const *stat_names;    /* nstats: "wealth", "cagr", ... */
  const char *const *measure_names; /* nmeasures: "p05", ..., "mean", "es" */
  const double *stat_values;        /* nstats x nmeasures; NaN stored as NULL */
  size_t npoints;                   /* the fan chart */
  const size_t *band_steps;
  const keel_date *band_dates;
  const double *bands;              /* npoints x 5: p05, p25, p50, p75, p95 */
  /* schema version 4: the terminal wealth's histogram, nhist bins
   * [lo, hi) with the share of paths in each; lo NaN: from -infinity, hi
   * NaN: to +infinity (the tails), stored as NULL */
  size_t nhist;
  const double *hist_lo, *hist_hi, *hist_share;
} keel_stress_record;

/* Writes a stress run in one transaction; *run_id gets its id in runs. */
KEEL_API keel_status keel_store_save_stress(keel_ctx *ctx, keel_store *s, const keel_stress_record *rec,
                                            int64_t *run_id);

/* A mean-variance optimisation (keel optimize, keel frontier), as plain
 * arrays: stored as a run of kind "optimize" or "frontier" with its
 * portfolio, its assets and its frontier (schema version 4). */
typedef struct keel_optimization_record {
  const char *kind;          /* "optimize" or "frontier" */
  const char *objective;     /* keel_objective_name */
  const char *cov;           /* the covariance estimator ("sample") */
  const char *params_json, *dataset, *dataset_hash; /* as for keel_run_record */
  keel_date start, end;      /* the estimation window */
  double risk_free;
  size_t nassets;
  const char *const *symbols;
  const double *mu, *vol;    /* each asset's expected return and volatility (annual) */
  const double *weights;     /* the chosen portfolio, or NULL */
  const double *current;     /* the current weights, or NULL */
  const double *risk_contrib;/* each asset's share of the portfolio's volatility, or NULL */
  double ret, vol_p, sharpe, turnover, cost, cash; /* the portfolio's (NaN: none, stored as NULL) */
  double current_ret, current_vol;                 /* the current portfolio's (NaN: none) */
  size_t npoints;            /* the frontier */
  const double *frontier_ret, *frontier_vol;
  const double *frontier_weights; /* npoints x nassets, or NULL */
} keel_optimization_record;

/* Writes an optimisation in one transaction; *run_id gets its id in runs. */
KEEL_API keel_status keel_store_save_optimization(keel_ctx *ctx, keel_store *s, const keel_optimization_record *rec,
                                                  int64_t *run_id);

/* Sets *found to 1 if a run with this job hash is in the store (whatever
 * its status), else 0. */
KEEL_API keel_status keel_store_has_job(keel_ctx *ctx, keel_store *s, const char *job_hash, int *found);

#ifdef __cplusplus
}
#endif
#endif
