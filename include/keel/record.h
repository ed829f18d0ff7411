/** @file
 * @brief keel — a finished backtest as a store record (backtest/).
 *
 * keel_backtest_record_fill turns a keel_backtest_result, its panel and the
 * run's description into a keel_run_record (keel/store.h) for
 * keel_store_save_run, so the command and the batch runner store runs the
 * same way. The record borrows the result's series and the panel's symbols
 * (both must outlive it) and owns the rest, which
 * keel_backtest_record_free releases.
 */
#ifndef KEEL_RECORD_H
#define KEEL_RECORD_H

#include "keel/backtest.h"
#include "keel/panel.h"
#include "keel/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief What a run record needs besides the result and the panel. */
typedef struct keel_record_meta {
  const char *dataset;            /**< dataset name or file name (required) */
  const char *params_json;        /**< the run's parameters, a JSON object ("{}" when NULL) */
  const char *strategy;           /**< what the targets come from ("fixed_weights" when NULL) */
  const char *job_hash;           /**< a batch job's identity, or NULL */
  const keel_account_spec *spec;  /**< the account run, for the sub-accounts' capital; may be NULL
                                       with one sub-account (its capital is the result's) */
  const char *benchmark;          /**< the symbol of the benchmark curve stored with the run; NULL: the
                                       spec's benchmark column, if any */
} keel_record_meta;

/** @brief The sub-accounts' weights are kept at most at this many points,
 * evenly spaced over the run (the first and the last included). */
#define KEEL_RECORD_WEIGHT_POINTS 500

/** @brief Fills *rec (every field; status "ok").
 *
 * The sub-accounts' weights come from their trades (and initial shares) at
 * the panel's closes, the last price carried over a gap, at most
 * @ref KEEL_RECORD_WEIGHT_POINTS of them. The benchmark curve (the closes of
 * keel_record_meta::benchmark, or else of the spec's benchmark column)
 * starts at the run's capital.
 * @param ctx the context
 * @param r the result (its series are borrowed by the record)
 * @param panel the panel it ran on (its symbols are borrowed)
 * @param meta the dataset, parameters, strategy, job hash, spec and benchmark
 * @param[out] rec the record; on failure zeroed, owning nothing
 * @return KEEL_OK; KEEL_ENOMEM; KEEL_EINVAL for a missing dataset name, a
 *         result without points, a spec that does not match the result, a
 *         result whose first date is not in the panel or a benchmark symbol
 *         that is not in the panel
 * @see keel_backtest_record_free, keel_store_save_run */
KEEL_API keel_status keel_backtest_record_fill(keel_ctx *ctx, const keel_backtest_result *r, const keel_panel *panel,
                                               const keel_record_meta *meta, keel_run_record *rec);
/** @brief Frees what @ref keel_backtest_record_fill allocated and zeroes *rec;
 * a zeroed record or NULL is a no-op.
 * @param rec the record */
KEEL_API void keel_backtest_record_free(keel_run_record *rec);

#ifdef __cplusplus
}
#endif
#endif
