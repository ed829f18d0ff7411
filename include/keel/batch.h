/** @file
 * @brief keel — the batch runner (backtest/): many run descriptions over stored
 * or CSV price data, on a pool of threads, into one results database.
 *
 * Jobs are JSON lines: {"id": optional label, "dataset": "prices.csv" or
 * "db:NAME", "run": {a run description, keel/runspec.h}}. A job's hash
 * (keel_batch_job_hash) is its identity: the store keeps it with the run,
 * so a batch that is stopped and started again skips the jobs already
 * stored. docs/formats.md ("Batch jobs") has the rules; in short:
 *
 *   - Each worker thread has its own keel_ctx; every dataset is loaded
 *     once before the workers start and shared read-only (panels are
 *     immutable).
 *   - One writer, the calling thread, owns the only store connection and
 *     commits one run per transaction as workers hand their results over
 *     (a bounded queue), so a killed batch leaves whole runs only.
 *   - A job that fails (bad JSON, a bad description, a missing dataset, an
 *     engine error) is stored as a run with status "error" and its message,
 *     and the batch goes on. Error rows carry a hash too and are not run
 *     again on resume (see docs/formats.md for how to retry them).
 *   - The callbacks run on the calling thread, never on a worker.
 */
#ifndef KEEL_BATCH_H
#define KEEL_BATCH_H

#include <stddef.h>
#include <stdio.h>

#include "keel/ctx.h"
#include "keel/panel.h"
#include "keel/strategy.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Progress of a batch, called on the calling thread.
 * @param ud the options' progress_ud
 * @param done jobs finished (skipped ones count as done)
 * @param total jobs in the input
 * @param eta_seconds the estimated time left, or < 0 while unknown */
typedef void (*keel_batch_progress_fn)(void *ud, size_t done, size_t total, double eta_seconds);
/** @brief One finished job, called on the calling thread.
 * @param ud the options' result_ud
 * @param json_line a compact JSON object (no newline): id, line, hash,
 *        status ("ok" / "error"), run_id, and metrics or error */
typedef void (*keel_batch_result_fn)(void *ud, const char *json_line);

/** @brief What a batch runs and where its results go (defaults, from
 * @ref keel_batch_options_default, in parentheses). */
typedef struct keel_batch_options {
  FILE *input;               /**< the jobs, JSON lines (required) */
  const char *input_name;    /**< for messages ("jobs.jsonl"; "jobs") */
  const char *store_path;    /**< the results database (required; created if needed) */
  const char *datasets_path; /**< the database "db:NAME" datasets come from (NULL: store_path) */
  int threads;               /**< worker threads (>= 1; 0: the context's thread count) (1) */
  int resume;                /**< skip jobs whose hash is in the store (1) */
  keel_batch_progress_fn progress; /**< progress callback, or NULL */
  void *progress_ud;         /**< passed to progress */
  keel_batch_result_fn on_result;  /**< called with each finished job, or NULL */
  void *result_ud;           /**< passed to on_result */
  const keel_strategy_loader *loader; /**< for {"lua": ...} strategies (NULL: none); called from the workers */
} keel_batch_options;

/** @brief Fills o with the defaults given in keel_batch_options (no input, no store).
 * @param[out] o the options */
KEEL_API void keel_batch_options_default(keel_batch_options *o);

/** @brief What a batch did. */
typedef struct keel_batch_summary {
  size_t total;   /**< jobs in the input */
  size_t ok;      /**< run and stored in this call */
  size_t failed;  /**< stored as errors in this call */
  size_t skipped; /**< already in the store, or repeated in the input */
  double seconds; /**< wall time */
} keel_batch_summary;

/** @brief Runs the batch.
 *
 * With threads > 1 the context's allocator must be thread-safe.
 * @param ctx the context
 * @param o the options
 * @param[out] summary what it did, or NULL
 * @return KEEL_OK when every job was run or skipped, even if some failed
 *         (summary->failed); an error status only when the batch itself
 *         could not go on (bad options, the input or the store unreadable
 *         or unwritable, out of memory): runs committed before stay */
KEEL_API keel_status keel_batch_run(keel_ctx *ctx, const keel_batch_options *o, keel_batch_summary *summary);

/** @brief Buffer size of a job hash: 16 hex digits plus NUL. */
#define KEEL_BATCH_HASH_BUFSIZE 17
/** @brief The hash of a job: 64-bit FNV-1a over the job's canonical JSON
 * (keys sorted, compact, without "id") followed by the dataset's
 * keel_panel_hash(), as 16 hex digits.
 * @param ctx the context
 * @param job_json the job, a JSON object
 * @param len its length in bytes
 * @param panel the job's dataset, or NULL to hash the job alone (what is
 *        stored for a job whose dataset could not be loaded)
 * @param[out] out the hash
 * @return KEEL_OK; KEEL_EPARSE for malformed JSON; KEEL_EINVAL if it is
 *         not an object */
KEEL_API keel_status keel_batch_job_hash(keel_ctx *ctx, const char *job_json, size_t len, const keel_panel *panel,
                                         char out[KEEL_BATCH_HASH_BUFSIZE]);

#ifdef __cplusplus
}
#endif
#endif
