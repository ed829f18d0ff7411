/* keel — private helpers shared by the library's parts. Not installed. */
#ifndef KEEL_INTERNAL_H
#define KEEL_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "keel/ctx.h"
#include "keel/date.h"
#include "keel/matrix.h"

/* An allocator as kept by objects that outlive their context. */
typedef struct keeli_heap {
  keel_alloc_fn fn;
  void *ud;
} keeli_heap;

/* Blocks from a heap carry their size in a header, so frees need no size. */
void *keeli_heap_alloc(const keeli_heap *h, size_t n);
void *keeli_heap_realloc(const keeli_heap *h, void *p, size_t n);
void keeli_heap_free(const keeli_heap *h, void *p);

/* The context's heap (copy it into objects that must free later). */
const keeli_heap *keeli_ctx_heap(const keel_ctx *ctx);

/* Allocation through the context: on failure the error is set to
 * KEEL_ENOMEM and NULL returned. keeli_alloc_array checks n * size for
 * overflow; keeli_calloc also zeroes. */
void *keeli_alloc(keel_ctx *ctx, size_t n);
void *keeli_alloc_array(keel_ctx *ctx, size_t n, size_t size);
void *keeli_calloc(keel_ctx *ctx, size_t n, size_t size);
void *keeli_realloc_array(keel_ctx *ctx, void *p, size_t n, size_t size);
void keeli_free(keel_ctx *ctx, void *p);
char *keeli_strdup(keel_ctx *ctx, const char *s);

/* Sets the context's error and returns code. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
keel_status keeli_error(keel_ctx *ctx, keel_status code, const char *fmt, ...);
#if defined(__GNUC__)
__attribute__((format(printf, 3, 0)))
#endif
keel_status keeli_verror(keel_ctx *ctx, keel_status code, const char *fmt, va_list ap);

/* Growable arrays: *cap is in elements; grows geometrically. Returns 0, or
 * -1 with KEEL_ENOMEM set on ctx. */
int keeli_reserve(keel_ctx *ctx, void **p, size_t *cap, size_t need, size_t elem);
/* keeli_reserve on a heap without a context (objects that outlive the
 * call that made them): -1 on failure, with nothing reported. */
int keeli_heap_reserve(const keeli_heap *h, void **p, size_t *cap, size_t need, size_t elem);

/* Sum of a[i] b[i] in index order (deterministic, unlike a threaded BLAS). */
static inline double keeli_dot(const double *a, const double *b, size_t n) {
  double r = 0;
  for (size_t i = 0; i < n; i++) r += a[i] * b[i];
  return r;
}

/* Products with a covariance given dense (cov.data set) or as a factor
 * model B F B' + diag(d) (fm, k <= 256; cov.data NULL), never formed:
 * w'Sw, and out = S x. In core/mv.c. */
struct keel_factor_model;
double keeli_cov_quad(keel_cmat cov, const struct keel_factor_model *fm, size_t n, const double *w);
void keeli_cov_mul(keel_cmat cov, const struct keel_factor_model *fm, size_t n, const double *x, double *out);

/* A keel_strategy over ops and state, freed by keel_strategy_free
 * (ops->free(state), then the strategy itself, with the context's heap).
 * On failure (KEEL_ENOMEM) the caller still owns state. In
 * core/strategy.c. */
struct keel_strategy;
struct keel_strategy_ops;
keel_status keeli_strategy_new(keel_ctx *ctx, const struct keel_strategy_ops *ops, void *state,
                               struct keel_strategy **out);

/* Fills an audit-trail record from an optimiser result (solves: the solves
 * it counts in all); rec may be NULL. In core/strategy.c. */
struct keel_opt_record;
struct keel_mv_result;
void keeli_opt_record_fill(struct keel_opt_record *rec, const struct keel_mv_result *r, int solves);

/* Simple returns of panel columns cols (m of them) over rows (lo, hi]:
 * R gets (hi - lo) x m, row-major, each return against the column's last
 * price in [lo, t) (so one spanning a halt compounds), NaN where it has no
 * price on t or none before it in the window. cnt (m, may be NULL) gets
 * the number of returns per column. In core/estimate.c. */
struct keel_panel;
void keeli_window_returns(const struct keel_panel *p, const size_t *cols, size_t m, size_t lo, size_t hi, double *R,
                          size_t *cnt);

/* keel_band_width of each of n targets t into w. In core/policy.c. */
struct keel_band;
void keeli_band_widths(const struct keel_band *b, size_t n, const double *t, double *w);

/* 64-bit FNV-1a, chainable: h = keeli_fnv1a(h, data, n), start with
 * KEEL_FNV_OFFSET. */
#define KEEL_FNV_OFFSET 0xcbf29ce484222325ULL
unsigned long long keeli_fnv1a(unsigned long long h, const void *data, size_t n);

/* The first index of the ascending dates d[0 .. n) whose date is not
 * before x (n when none). In core/date.c. */
size_t keeli_date_lower_bound(const keel_date *d, size_t n, keel_date x);

/* qsort comparator of doubles, ascending (NaN-free input). In core/mc.c. */
int keeli_cmp_double(const void *a, const void *b);

/* out[i] = exp(x[i]) for |x[i]| <= 700 (clamped beyond), within 2 ulp,
 * vectorised; the same bits on every machine. In core/mc.c. */
void keeli_exp_array(size_t n, const double *x, double *out);
/* The vector code a kernel may use: the portable loops, AVX2, AVX-512F.
 * Every level gives the same bits (the tests compare them);
 * keeli_simd_level(cap) is the machine's best level up to cap. */
enum { KEELI_SIMD_PORTABLE = 0, KEELI_SIMD_AVX2 = 1, KEELI_SIMD_AVX512 = 2, KEELI_SIMD_BEST = 2 };
int keeli_simd_level(int cap);
/* keeli_exp_array through the code of level keeli_simd_level(cap). */
void keeli_exp_array_with(size_t n, const double *x, double *out, int cap);
/* The normal generator's lane normals (core/mc.c): m (a multiple of 8)
 * of stream (seed, stream), by the code of level keeli_simd_level(cap)
 * (the tests compare the levels). */
void keeli_mc_lane_normals(uint64_t seed, uint64_t stream, double *out, size_t m, int cap);
/* keel_mc_path by the code of level keeli_simd_level(cap). */
struct keel_mc;
keel_status keeli_mc_path_with(keel_ctx *ctx, const struct keel_mc *g, uint64_t seed, uint64_t path, double *logret,
                               double *work, unsigned *states, int cap);
/* keel_mc_path a block of KEELI_MC_BLOCK steps at a time (the last may be
 * shorter; a block's values are a multiple of 32, keeli_exp_array's
 * blocks, whatever the number of assets): fn(ud, t0, nb, rows) after the nb x n log returns of steps
 * t0 .. t0 + nb - 1 are in rows, which fn may overwrite. The rows are in
 * out (T x n, the whole path, as keel_mc_path writes it) or, when out is
 * NULL, in block (KEELI_MC_BLOCK x n, reused), so a caller that consumes
 * each block keeps the path out of its cache. The same numbers as
 * keel_mc_path; fn may be NULL. g, and out or block, must not be NULL. */
#define KEELI_MC_BLOCK 32
typedef void (*keeli_mc_block_fn)(void *ud, size_t t0, size_t nb, double *rows);
keel_status keeli_mc_path_blocks(keel_ctx *ctx, const struct keel_mc *g, uint64_t seed, uint64_t path, double *out,
                                 double *block, double *work, unsigned *states, int cap, keeli_mc_block_fn fn,
                                 void *ud);

/* The rows of panel h's common window inside [start, end) that are steps
 * of frequency freq (a keel_mc_freq: every row, or the last row of each
 * calendar month), in a new array; KEEL_EINVAL if the window has fewer
 * than 2 rows or a price missing inside it. In core/mc.c. */
keel_status keeli_mc_step_rows(keel_ctx *ctx, const struct keel_panel *h, size_t start, size_t end, int freq,
                               size_t **rows, size_t *nrows);

/* A panel's prices, writable by the library part that made the panel
 * (the stress runner's own panels), and the recount of each asset's first
 * and complete rows after a change of NaNs. In core/panel.c. */
double *keeli_panel_prices_mut(struct keel_panel *p);
void keeli_panel_refresh(struct keel_panel *p);

#endif
