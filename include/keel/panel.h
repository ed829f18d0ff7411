/* keel — a price panel: dates x assets, row-major doubles.
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

typedef struct keel_panel keel_panel;

/* Per-asset metadata. Defaults: currency "", lot 0 (any fraction), min_trade 0. */
typedef struct keel_asset_meta {
  char currency[8]; /* ISO 4217 code or "" */
  double lot;       /* trade in whole multiples of this many units; 0 = any */
  double min_trade; /* smallest trade notional; 0 = none */
} keel_asset_meta;

/* Makes a panel from copies of the caller's arrays. prices is row-major
 * ndates x nassets (leading dimension nassets); NULL means all missing.
 * Checks: ndates >= 1, nassets >= 1, dates strictly increasing, symbols
 * non-empty and unique, prices NaN or finite > 0. KEEL_EINVAL names the
 * first offending date/asset. */
KEEL_API keel_status keel_panel_new(keel_ctx *ctx, size_t ndates, size_t nassets,
                                    const keel_date *dates,
                                    const char *const *symbols,
                                    const double *prices, keel_panel **out);
/* Frees a panel; NULL is a no-op. */
KEEL_API void keel_panel_free(keel_panel *p);

KEEL_API size_t keel_panel_ndates(const keel_panel *p);
KEEL_API size_t keel_panel_nassets(const keel_panel *p);
/* Borrowed arrays, valid while p lives. */
KEEL_API const keel_date *keel_panel_dates(const keel_panel *p);
KEEL_API const double *keel_panel_prices(const keel_panel *p);
/* Price of asset j on date i (NaN if missing); i, j must be in range. */
KEEL_API double keel_panel_price(const keel_panel *p, size_t i, size_t j);
KEEL_API const char *keel_panel_symbol(const keel_panel *p, size_t j);
/* Index of the asset named sym: returns 1 and sets *j if found, else 0. */
KEEL_API int keel_panel_find(const keel_panel *p, const char *sym, size_t *j);
/* First row where asset j has a price, or ndates if it never has one. */
KEEL_API size_t keel_panel_first_valid(const keel_panel *p, size_t j);
/* The first row from which asset j has a price on every later row (ndates
 * if the last row has none): rows [start, end) of asset j are complete
 * when keel_panel_complete_from(p, j) <= start. */
KEEL_API size_t keel_panel_complete_from(const keel_panel *p, size_t j);

KEEL_API const keel_asset_meta *keel_panel_meta(const keel_panel *p, size_t j);
KEEL_API keel_status keel_panel_set_meta(keel_ctx *ctx, keel_panel *p, size_t j,
                                         const keel_asset_meta *meta);

/* Content hash of dates, symbols and prices (bit-exact), as 16 lowercase hex
 * digits plus NUL: identifies the dataset a run used. */
#define KEEL_PANEL_HASH_BUFSIZE 17
KEEL_API void keel_panel_hash(const keel_panel *p, char out[KEEL_PANEL_HASH_BUFSIZE]);

/* ---- CSV (data/) ------------------------------------------------------- */

typedef enum keel_csv_layout {
  KEEL_CSV_AUTO = 0, /* detect from the header */
  KEEL_CSV_WIDE,     /* date, A, B, ...: one column per asset */
  KEEL_CSV_LONG      /* date, symbol, price: one row per observation */
} keel_csv_layout;

typedef struct keel_csv_options {
  keel_csv_layout layout; /* KEEL_CSV_AUTO */
  char delimiter;         /* 0 = detect among ',' ';' '\t' */
  size_t max_field;       /* longest field in bytes (default 4096) */
  size_t max_line;        /* longest line in bytes (default 16 MiB) */
  size_t max_columns;     /* most columns (default 100000) */
  size_t max_cells;       /* most price cells in the panel (default 2^28) */
} keel_csv_options;

KEEL_API void keel_csv_options_default(keel_csv_options *opt);

/* Reads a price CSV. Wide: a header "date,A,B,..." then one row per date.
 * Long: a header "date,symbol,price" (the second column may be named
 * symbol/ticker/asset/id, the third price/close/adj_close/value) then one row
 * per observation; symbols may interleave, but each symbol's dates must be
 * strictly increasing. The panel's dates are the union of all dates.
 * Dates: yyyy-mm-dd, yyyy/mm/dd or yyyymmdd (see docs/formats.md).
 * Cells "", NA, N/A, NaN, null (any case) are missing. Quoted fields, CRLF
 * and a UTF-8 BOM are accepted. Any error gives KEEL_EPARSE (KEEL_EIO for a
 * file that cannot be read, KEEL_ELIMIT for a size limit) with
 * "name:line:col: what is wrong" and *out == NULL: nothing half-loaded.
 * opt may be NULL (defaults). */
KEEL_API keel_status keel_panel_read_csv(keel_ctx *ctx, const char *path,
                                         const keel_csv_options *opt,
                                         keel_panel **out);
/* The same from memory; name is used in messages. */
KEEL_API keel_status keel_panel_parse_csv(keel_ctx *ctx, const char *name,
                                          const char *buf, size_t len,
                                          const keel_csv_options *opt,
                                          keel_panel **out);
/* Writes p as a wide CSV (ISO dates, empty cell for NaN, shortest
 * round-trip decimal). The file is written to a temporary name and renamed,
 * so a failure leaves no half-written file. */
KEEL_API keel_status keel_panel_write_csv(keel_ctx *ctx, const keel_panel *p,
                                          const char *path);
/* Writes a table of numbers as CSV: a header of ncols names (quoted when
 * needed), then nrows rows of values (row-major nrows x ncols) in shortest
 * round-trip decimals, an empty cell for NaN. Temporary name and rename,
 * as above. */
KEEL_API keel_status keel_table_write_csv(keel_ctx *ctx, const char *path, size_t ncols, const char *const *names,
                                          size_t nrows, const double *values);

#ifdef __cplusplus
}
#endif
#endif
