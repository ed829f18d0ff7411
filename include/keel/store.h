/* keel — the SQLite store (data/): imported price series and run results.
 *
 * The schema is versioned with PRAGMA user_version and migrated forward on
 * open; the database runs in WAL mode. Each run is written in one
 * transaction, so a killed process leaves every finished run whole and no
 * partial run. docs/store.md describes the tables.
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
#define KEEL_STORE_SCHEMA_VERSION 1

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

/* A finished run, as plain arrays, so the store needs no engine types. */
typedef struct keel_run_record {
  const char *kind;         /* "backtest" */
  const char *strategy;     /* "fixed_weights" */
  const char *params_json;  /* parameters, a JSON object */
  const char *dataset;      /* dataset name or file name */
  const char *dataset_hash; /* keel_panel_hash of the prices used */
  const char *status;       /* "ok" */
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
  const keel_trade *trades;
  const char *const *asset_symbols; /* names for keel_trade.asset */
  size_t nassets;
} keel_run_record;

/* Writes one run and everything under it in one transaction; *run_id gets
 * its id. On failure nothing of the run is left in the database. */
KEEL_API keel_status keel_store_save_run(keel_ctx *ctx, keel_store *s,
                                         const keel_run_record *rec, int64_t *run_id);

#ifdef __cplusplus
}
#endif
#endif
