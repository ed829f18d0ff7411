/* keel — the context: allocator, error state, seed.
 *
 * Every call that can fail takes a keel_ctx and returns a keel_status; on
 * failure keel_errmsg(ctx) tells what went wrong. A context is used by one
 * thread at a time; give each thread its own. Objects made through a context
 * (panels, results, stores) keep a copy of its allocator, not a pointer to the
 * context, so they may outlive it and const objects may be read from many
 * threads at once. The library has no mutable global state.
 */
#ifndef KEEL_CTX_H
#define KEEL_CTX_H

#include <stddef.h>
#include <stdint.h>

#include "keel/export.h"
#include "keel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Allocator with the contract of lua_Alloc: nsize == 0 frees ptr (osize is
 * its size) and returns NULL; otherwise (re)allocates to nsize bytes and
 * returns NULL on failure, leaving ptr untouched. ptr == NULL means a new
 * block. Blocks must be aligned for any object type. */
typedef void *(*keel_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);

typedef struct keel_config {
  keel_alloc_fn alloc; /* NULL: the C library's malloc/realloc/free */
  void *alloc_ud;      /* passed to alloc */
  uint64_t seed;       /* default seed for anything random */
  int threads;         /* worker threads for runners that use them (>= 1) */
} keel_config;

typedef struct keel_ctx keel_ctx;

/* Fills cfg with defaults: libc allocator, seed 0x6b65656c, 1 thread. */
KEEL_API void keel_config_default(keel_config *cfg);

/* Creates a context. cfg may be NULL (defaults). On KEEL_ENOMEM *out is NULL. */
KEEL_API keel_status keel_ctx_new(const keel_config *cfg, keel_ctx **out);
/* Frees a context; NULL is a no-op. */
KEEL_API void keel_ctx_free(keel_ctx *ctx);

/* The configuration the context was made with. */
KEEL_API const keel_config *keel_ctx_config(const keel_ctx *ctx);

/* Message of the last failing call on ctx ("" if none). Owned by ctx, valid
 * until the next failing call on it. Input errors read "file:line:col: what". */
KEEL_API const char *keel_errmsg(const keel_ctx *ctx);
/* Status of the last failing call on ctx (KEEL_OK if none). */
KEEL_API keel_status keel_errcode(const keel_ctx *ctx);
/* Forgets the last error. */
KEEL_API void keel_clear_error(keel_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
