/* keel — the embedded Lua 5.4 layer: sandboxed states and Lua strategies.
 *
 * A keel_lua is one sandboxed lua_State with its limits (docs/lua.md): the
 * whitelisted libraries, text-only chunks, a memory cap enforced by the
 * allocator and an instruction budget enforced by a sticky count hook. A
 * runaway or hostile script ends the call with KEEL_ELIMIT or KEEL_ELUA
 * and a message with script:line and a traceback; the state is rebuilt
 * before its next use and nothing else is affected.
 *
 * A keel_lua is used by one thread at a time; different ones are
 * independent (no shared mutable state).
 */
#ifndef KEEL_LUA_H
#define KEEL_LUA_H

#include <stddef.h>
#include <stdint.h>

#include "keel/ctx.h"
#include "keel/policy.h"
#include "keel/strategy.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct keel_lua_limits {
  size_t mem_bytes;      /* allocator cap for the whole state (64 MiB) */
  uint64_t instructions; /* budget per call into Lua (100 million) */
} keel_lua_limits;

typedef struct keel_lua_config {
  keel_lua_limits limits;
  /* Folders searched by require "name" (name.lua), in order; NULL-terminated
   * array, may be NULL. Copied. */
  const char *const *paths;
  size_t log_max;        /* bytes of log kept per instance (64 KiB) */
} keel_lua_config;

KEEL_API void keel_lua_config_default(keel_lua_config *cfg);

typedef struct keel_lua keel_lua;

/* Makes a sandboxed state. */
KEEL_API keel_status keel_lua_new(keel_ctx *ctx, const keel_lua_config *cfg, keel_lua **out);
KEEL_API void keel_lua_free(keel_lua *L);

/* Runs a text chunk (name is used in messages, e.g. "@strategy.lua") with
 * the state's limits, or tighter ones when lim is non-NULL (0 fields mean
 * "the state's"). The chunk's first result, when it is a number, string or
 * boolean, is written as text to out (out_size bytes, NUL-terminated) when
 * out is non-NULL. For tests and tools. */
KEEL_API keel_status keel_lua_run(keel_ctx *ctx, keel_lua *L, const char *chunk, size_t len, const char *name,
                                  const keel_lua_limits *lim, char *out, size_t out_size);

/* The instance log (print and ctx.log), NUL-terminated; cleared by
 * keel_lua_log_clear. */
KEEL_API const char *keel_lua_log(const keel_lua *L);
KEEL_API void keel_lua_log_clear(keel_lua *L);

/* ---- Lua strategies ---- */

/* Loads a strategy module (a file path, or a module name found in cfg's
 * paths) into a new sandboxed state and validates params_json (a JSON
 * object, may be NULL) against its declared params. The strategy runs
 * wherever a keel_strategy does (backtest, batch, stress). Free with
 * keel_strategy_free. */
KEEL_API keel_status keel_lua_strategy_load(keel_ctx *ctx, const keel_lua_config *cfg, const char *module,
                                            const char *params_json, keel_strategy **out);
/* The same from source text (name used in messages). */
KEEL_API keel_status keel_lua_strategy_from_source(keel_ctx *ctx, const keel_lua_config *cfg, const char *source,
                                                   size_t len, const char *name, const char *params_json,
                                                   keel_strategy **out);

/* Whether s is a Lua strategy; its name, schedule (KEEL_CAL_NEVER with
 * has_schedule 0 when the module gave none) and log. */
KEEL_API int keel_lua_strategy_is(const keel_strategy *s);
KEEL_API const char *keel_lua_strategy_name(const keel_strategy *s);
KEEL_API int keel_lua_strategy_schedule(const keel_strategy *s, keel_schedule *out);
KEEL_API const char *keel_lua_strategy_log(const keel_strategy *s);

/* A loader (keel/strategy.h) that makes {"lua": module, "params": {...}}
 * strategies of run descriptions, batches and stress runs with cfg (which
 * must outlive the loader's use; it is only read, so one loader serves
 * many threads). */
KEEL_API keel_strategy_loader keel_lua_loader(const keel_lua_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
