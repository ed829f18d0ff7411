/** @file
 * @brief keel — the context: allocator, error state, seed.
 *
 * Every call that can fail takes a keel_ctx and returns a keel_status; on
 * failure keel_errmsg(ctx) tells what went wrong. A context is used by
 * one thread at a time; give each thread its own. Objects made through a
 * context (panels, results, stores) keep a copy of its allocator, not a
 * pointer to the context, so they may outlive it and const objects may be
 * read from many threads at once. The library has no mutable global state.
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

/** @brief Allocator with the contract of lua_Alloc.
 *
 * nsize == 0 frees ptr (osize is its size) and returns NULL; otherwise
 * (re)allocates to nsize bytes and returns NULL on failure, leaving ptr
 * untouched. ptr == NULL means a new block. Blocks must be aligned for any
 * object type.
 * @param ud the keel_config's alloc_ud
 * @param ptr the block to resize or free, or NULL for a new one
 * @param osize the block's size (0 for a new block)
 * @param nsize the size wanted, 0 to free
 * @return the block, or NULL (freed, or the allocation failed) */
typedef void *(*keel_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);

/** @brief What a context is made with (@ref keel_config_default fills it). */
typedef struct keel_config {
  keel_alloc_fn alloc; /**< NULL: the C library's malloc/realloc/free */
  void *alloc_ud;      /**< passed to alloc */
  uint64_t seed;       /**< default seed for anything random */
  int threads;         /**< worker threads for runners that use them (>= 1) */
} keel_config;

/** @brief A context (opaque): allocator, configuration and the last error. */
typedef struct keel_ctx keel_ctx;

/** @brief Fills cfg with defaults: libc allocator, seed 0x6b65656c, 1 thread.
 * @param[out] cfg the configuration to fill */
KEEL_API void keel_config_default(keel_config *cfg);

/** @brief Creates a context.
 * @param cfg the configuration, or NULL for the defaults; threads below 1
 *        are taken as 1
 * @param[out] out the new context; NULL on failure
 * @return KEEL_OK; KEEL_ENOMEM (*out is NULL), or KEEL_EINVAL when out is NULL */
KEEL_API keel_status keel_ctx_new(const keel_config *cfg, keel_ctx **out);
/** @brief Frees a context; NULL is a no-op.
 * @param ctx the context */
KEEL_API void keel_ctx_free(keel_ctx *ctx);

/** @brief The configuration the context was made with.
 * @param ctx the context
 * @return its configuration, owned by ctx */
KEEL_API const keel_config *keel_ctx_config(const keel_ctx *ctx);

/** @brief Message of the last failing call on ctx.
 * @param ctx the context
 * @return the message ("" if none), owned by ctx and valid until the next
 *         failing call on it. Input errors read "file:line:col: what".
 * @see keel_errcode, keel_clear_error */
KEEL_API const char *keel_errmsg(const keel_ctx *ctx);
/** @brief Status of the last failing call on ctx.
 * @param ctx the context
 * @return that status (KEEL_OK if none)
 * @see keel_errmsg */
KEEL_API keel_status keel_errcode(const keel_ctx *ctx);
/** @brief Forgets the last error.
 * @param ctx the context */
KEEL_API void keel_clear_error(keel_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
