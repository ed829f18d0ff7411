/** @file
 * @brief keel — the embedded Lua 5.4 layer: sandboxed states and Lua strategies.
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

/** @brief The limits of a sandboxed state (defaults in parentheses). */
typedef struct keel_lua_limits {
  size_t mem_bytes;      /**< allocator cap for the whole state (64 MiB) */
  uint64_t instructions; /**< budget per call into Lua (100 million) */
} keel_lua_limits;

/** @brief How sandboxed states are made (@ref keel_lua_config_default). */
typedef struct keel_lua_config {
  keel_lua_limits limits; /**< the limits */
  /** Folders searched by require "name" (name.lua), in order; NULL-terminated
   * array, may be NULL. Copied. */
  const char *const *paths;
  size_t log_max;        /**< bytes of log kept per instance (64 KiB) */
} keel_lua_config;

/** @brief Fills cfg with the defaults given in keel_lua_config (no paths).
 * @param[out] cfg the configuration */
KEEL_API void keel_lua_config_default(keel_lua_config *cfg);

/** @brief A sandboxed Lua state (opaque) with its limits and log. */
typedef struct keel_lua keel_lua;

/** @brief Makes a sandboxed state.
 * @param ctx the context
 * @param cfg the configuration, or NULL for the defaults
 * @param[out] out the state; NULL on failure
 * @return KEEL_OK; KEEL_ENOMEM */
KEEL_API keel_status keel_lua_new(keel_ctx *ctx, const keel_lua_config *cfg, keel_lua **out);
/** @brief Frees a state; NULL is a no-op.
 * @param L the state */
KEEL_API void keel_lua_free(keel_lua *L);

/** @brief Runs a text chunk with the state's limits, or tighter ones. For
 * tests and tools.
 *
 * The chunk's first result, when it is a number, string or boolean, is
 * written as text to out.
 * @param ctx the context
 * @param L the state
 * @param chunk the Lua source (text only)
 * @param len its length in bytes
 * @param name used in messages, e.g. "@strategy.lua"
 * @param lim tighter limits, or NULL (0 fields mean "the state's")
 * @param[out] out out_size bytes, NUL-terminated, or NULL
 * @param out_size the size of out
 * @return KEEL_OK; KEEL_ELUA for a script error (script:line and a
 *         traceback in the message); KEEL_ELIMIT for the memory cap or the
 *         instruction budget; KEEL_EINVAL for a missing state or chunk */
KEEL_API keel_status keel_lua_run(keel_ctx *ctx, keel_lua *L, const char *chunk, size_t len, const char *name,
                                  const keel_lua_limits *lim, char *out, size_t out_size);

/** @brief The instance log (print and ctx.log).
 * @param L the state
 * @return the log, NUL-terminated, owned by L; cleared by @ref keel_lua_log_clear */
KEEL_API const char *keel_lua_log(const keel_lua *L);
/** @brief Clears the instance log.
 * @param L the state */
KEEL_API void keel_lua_log_clear(keel_lua *L);

/* ---- Lua strategies ---- */

/** @brief Loads a strategy module into a new sandboxed state.
 *
 * params_json is validated against the module's declared params. The
 * strategy runs wherever a keel_strategy does (backtest, batch, stress).
 * @param ctx the context
 * @param cfg the sandbox's configuration, or NULL for the defaults
 * @param module a file path, or a module name found in cfg's paths
 * @param params_json the parameters, a JSON object, or NULL
 * @param[out] out the strategy; free it with keel_strategy_free()
 * @return KEEL_OK; KEEL_EIO for a path that cannot be opened or read;
 *         KEEL_EINVAL for a module name not found in the folders, a module
 *         that is not a strategy, or parameters that are not a JSON object
 *         or do not match its params; KEEL_ELUA / KEEL_ELIMIT for a script
 *         that fails or breaks a limit while loading; KEEL_ENOMEM */
KEEL_API keel_status keel_lua_strategy_load(keel_ctx *ctx, const keel_lua_config *cfg, const char *module,
                                            const char *params_json, keel_strategy **out);
/** @brief The same as @ref keel_lua_strategy_load from source text.
 * @param ctx the context
 * @param cfg the sandbox's configuration, or NULL for the defaults
 * @param source the module's source
 * @param len its length in bytes
 * @param name used in messages
 * @param params_json the parameters, a JSON object, or NULL
 * @param[out] out the strategy
 * @return as keel_lua_strategy_load */
KEEL_API keel_status keel_lua_strategy_from_source(keel_ctx *ctx, const keel_lua_config *cfg, const char *source,
                                                   size_t len, const char *name, const char *params_json,
                                                   keel_strategy **out);

/** @brief Whether s is a Lua strategy.
 * @param s the strategy
 * @return 1 or 0 */
KEEL_API int keel_lua_strategy_is(const keel_strategy *s);
/** @brief The name a Lua strategy's module gives.
 * @param s the strategy
 * @return its name, borrowed; NULL if s is not a Lua strategy */
KEEL_API const char *keel_lua_strategy_name(const keel_strategy *s);
/** @brief The schedule a Lua strategy's module gives.
 * @param s the strategy
 * @param[out] out the schedule (KEEL_CAL_NEVER when the module gave none), or NULL
 * @return 1 when the module gave one, else 0 (also when s is not a Lua strategy) */
KEEL_API int keel_lua_strategy_schedule(const keel_strategy *s, keel_schedule *out);
/** @brief A Lua strategy's log (print and ctx.log).
 * @param s the strategy
 * @return the log, borrowed; NULL if s is not a Lua strategy */
KEEL_API const char *keel_lua_strategy_log(const keel_strategy *s);

/** @brief A loader (keel/strategy.h) that makes {"lua": module, "params": {...}}
 * strategies of run descriptions, batches and stress runs.
 * @param cfg the sandboxes' configuration; it must outlive the loader's use
 *        (it is only read, so one loader serves many threads)
 * @return the loader */
KEEL_API keel_strategy_loader keel_lua_loader(const keel_lua_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
