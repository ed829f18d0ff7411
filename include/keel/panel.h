/** @file
 * @brief keel — a price panel: dates x assets, row-major doubles.
 *
 * NaN means "no price" (the asset is not listed yet, or is halted that day).
 * Every other price is finite and > 0. Dates are strictly increasing and
 * symbols unique. A panel is immutable once made except for asset metadata,
 * so a const panel may be read from many threads at once.
 */
#ifndef KEEL_PANEL_H
#define KEEL_PANEL_H

#include <stddef.h>
#include <stdint.h>

#include "keel/ctx.h"
#include "keel/date.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A price panel (opaque): dates x assets, NaN for no price. */
typedef struct keel_panel keel_panel;

/** @brief Per-asset metadata. Defaults: currency "", lot 0 (any fraction), min_trade 0. */
typedef struct keel_asset_meta {
  char currency[8]; /**< ISO 4217 code or "" */
  double lot;       /**< trade in whole multiples of this many units; 0 = any */
  double min_trade; /**< smallest trade notional; 0 = none */
} keel_asset_meta;

/** @brief Makes a panel from copies of the caller's arrays.
 *
 * Checks: ndates >= 1, nassets >= 1, dates strictly increasing, symbols
 * non-empty and unique, prices NaN or finite > 0.
 * @param ctx the context
 * @param ndates number of dates (rows)
 * @param nassets number of assets (columns)
 * @param dates ndates dates
 * @param symbols nassets symbols
 * @param prices row-major ndates x nassets (leading dimension nassets);
 *        NULL means all missing
 * @param[out] out the panel; NULL on failure
 * @return KEEL_OK; KEEL_EINVAL naming the first offending date/asset;
 *         KEEL_ENOMEM */
KEEL_API keel_status keel_panel_new(keel_ctx *ctx, size_t ndates, size_t nassets,
                                    const keel_date *dates,
                                    const char *const *symbols,
                                    const double *prices, keel_panel **out);
/** @brief Frees a panel; NULL is a no-op.
 * @param p the panel */
KEEL_API void keel_panel_free(keel_panel *p);

/** @brief Number of dates (rows).
 * @param p the panel
 * @return ndates */
KEEL_API size_t keel_panel_ndates(const keel_panel *p);
/** @brief Number of assets (columns).
 * @param p the panel
 * @return nassets */
KEEL_API size_t keel_panel_nassets(const keel_panel *p);
/** @brief The dates.
 * @param p the panel
 * @return ndates dates, borrowed, valid while p lives */
KEEL_API const keel_date *keel_panel_dates(const keel_panel *p);
/** @brief The prices.
 * @param p the panel
 * @return ndates x nassets prices, row-major, borrowed, valid while p lives */
KEEL_API const double *keel_panel_prices(const keel_panel *p);
/** @brief Price of asset j on date i.
 * @param p the panel
 * @param i row, in range
 * @param j column, in range
 * @return the price (NaN if missing) */
KEEL_API double keel_panel_price(const keel_panel *p, size_t i, size_t j);
/** @brief Symbol of asset j.
 * @param p the panel
 * @param j column, in range
 * @return the symbol, borrowed, valid while p lives */
KEEL_API const char *keel_panel_symbol(const keel_panel *p, size_t j);
/** @brief Index of the asset named sym.
 * @param p the panel
 * @param sym the symbol
 * @param[out] j its column, set when found
 * @return 1 if found, else 0 */
KEEL_API int keel_panel_find(const keel_panel *p, const char *sym, size_t *j);
/** @brief First row where asset j has a price.
 * @param p the panel
 * @param j column, in range
 * @return the row, or ndates if it never has one */
KEEL_API size_t keel_panel_first_valid(const keel_panel *p, size_t j);
/** @brief The first row from which asset j has a price on every later row.
 *
 * Rows [start, end) of asset j are complete when
 * keel_panel_complete_from(p, j) <= start.
 * @param p the panel
 * @param j column, in range
 * @return the row (ndates if the last row has none) */
KEEL_API size_t keel_panel_complete_from(const keel_panel *p, size_t j);

/** @brief Metadata of asset j.
 * @param p the panel
 * @param j column, in range
 * @return the metadata, borrowed, valid while p lives
 * @see keel_panel_set_meta */
KEEL_API const keel_asset_meta *keel_panel_meta(const keel_panel *p, size_t j);
/** @brief Sets the metadata of asset j (the one thing of a panel that changes).
 * @param ctx the context
 * @param p the panel
 * @param j column
 * @param meta the metadata (copied)
 * @return KEEL_OK; KEEL_EINVAL for j out of range, a lot or min_trade that
 *         is negative or not finite, a currency that is not NUL-terminated */
KEEL_API keel_status keel_panel_set_meta(keel_ctx *ctx, keel_panel *p, size_t j,
                                         const keel_asset_meta *meta);

/** @brief Buffer size of keel_panel_hash(): 16 lowercase hex digits plus NUL. */
#define KEEL_PANEL_HASH_BUFSIZE 17
/** @brief Content hash of dates, symbols and prices (bit-exact): identifies
 * the dataset a run used.
 * @param p the panel
 * @param[out] out 16 lowercase hex digits plus NUL */
KEEL_API void keel_panel_hash(const keel_panel *p, char out[KEEL_PANEL_HASH_BUFSIZE]);

/* ---- CSV (data/) ------------------------------------------------------- */

/** @brief Layout of a price CSV. */
typedef enum keel_csv_layout {
  KEEL_CSV_AUTO = 0, /**< detect from the header */
  KEEL_CSV_WIDE,     /**< date, A, B, ...: one column per asset */
  KEEL_CSV_LONG      /**< date, symbol, price: one row per observation */
} keel_csv_layout;

/** @brief Options of the CSV reader (@ref keel_csv_options_default). */
typedef struct keel_csv_options {
  keel_csv_layout layout; /**< KEEL_CSV_AUTO */
  char delimiter;         /**< 0 = detect among ',' ';' and tab */
  size_t max_field;       /**< longest field in bytes (default 4096) */
  size_t max_line;        /**< longest line in bytes (default 16 MiB) */
  size_t max_columns;     /**< most columns (default 100000) */
  size_t max_cells;       /**< most price cells in the panel (default 2^28) */
} keel_csv_options;

/** @brief Fills opt with the defaults given in keel_csv_options.
 * @param[out] opt the options */
KEEL_API void keel_csv_options_default(keel_csv_options *opt);

/** @brief Reads a price CSV.
 *
 * Wide: a header "date,A,B,..." then one row per date.
 * Long: a header "date,symbol,price" (the second column may be named
 * symbol/ticker/asset/id, the third price/close/adj_close/value) then one row
 * per observation; symbols may interleave, but each symbol's dates must be
 * strictly increasing. The panel's dates are the union of all dates.
 * Dates: yyyy-mm-dd, yyyy/mm/dd or yyyymmdd (see docs/formats.md).
 * Cells "", NA, N/A, NaN, null (any case) are missing. Quoted fields, CRLF
 * and a UTF-8 BOM are accepted.
 * @param ctx the context
 * @param path the file
 * @param opt the options, or NULL for the defaults
 * @param[out] out the panel; NULL on any error: nothing half-loaded
 * @return KEEL_OK; KEEL_EPARSE with "name:line:col: what is wrong";
 *         KEEL_EIO for a file that cannot be read; KEEL_ELIMIT for a size
 *         limit; KEEL_ENOMEM
 * @see keel_panel_parse_csv, keel_panel_write_csv */
KEEL_API keel_status keel_panel_read_csv(keel_ctx *ctx, const char *path,
                                         const keel_csv_options *opt,
                                         keel_panel **out);
/** @brief The same as @ref keel_panel_read_csv from memory.
 * @param ctx the context
 * @param name used in messages
 * @param buf the CSV text
 * @param len its length in bytes
 * @param opt the options, or NULL for the defaults
 * @param[out] out the panel; NULL on any error
 * @return as keel_panel_read_csv */
KEEL_API keel_status keel_panel_parse_csv(keel_ctx *ctx, const char *name,
                                          const char *buf, size_t len,
                                          const keel_csv_options *opt,
                                          keel_panel **out);
/** @brief Writes p as a wide CSV (ISO dates, empty cell for NaN, shortest
 * round-trip decimal).
 *
 * The file is written to a temporary name and renamed, so a failure leaves
 * no half-written file.
 * @param ctx the context
 * @param p the panel
 * @param path the file to write
 * @return KEEL_OK; KEEL_EIO when the file cannot be written; KEEL_EINVAL
 *         for a NULL argument */
KEEL_API keel_status keel_panel_write_csv(keel_ctx *ctx, const keel_panel *p,
                                          const char *path);
/** @brief Writes a table of numbers as CSV.
 *
 * A header of ncols names (quoted when needed), then nrows rows of values
 * in shortest round-trip decimals, an empty cell for NaN. Temporary name
 * and rename, as for @ref keel_panel_write_csv.
 * @param ctx the context
 * @param path the file to write
 * @param ncols number of columns (>= 1)
 * @param names ncols column names
 * @param nrows number of rows
 * @param values row-major nrows x ncols
 * @return KEEL_OK; KEEL_EIO when the file cannot be written; KEEL_EINVAL
 *         for a NULL argument, no columns or a column without a name */
KEEL_API keel_status keel_table_write_csv(keel_ctx *ctx, const char *path, size_t ncols, const char *const *names,
                                          size_t nrows, const double *values);

#ifdef __cplusplus
}
#endif
#endif
