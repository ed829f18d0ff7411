/* keel — the C contracts between the files of the Lua layer (not installed).
 *
 * sandbox.c makes states; view.c the keel.view userdata; api.c the keel
 * module table; strategy.c a Lua strategy behind keel_strategy_ops. The
 * loadable module (bindings/lua) uses view.c and api.c on an ordinary state.
 *
 * Rule for every C function called from Lua here: scratch memory is Lua
 * userdata (counted against the memory cap, collected after an error),
 * never malloc, since any Lua error unwinds with longjmp past C frames.
 */
#ifndef KEEL_LUA_INTERNAL_H
#define KEEL_LUA_INTERNAL_H

#include <stddef.h>

#include <lua.h>

#include "keel/ctx.h"
#include "keel/lua.h"
#include "keel/strategy.h"

/* ---- keel.view (view.c) ---- */

#define KEELI_VIEW_MT "keel.view"

typedef struct keeli_view {
  double *data;               /* element (i, j) at data[i * ld + j]; a vector is one row */
  size_t rows, cols, ld;
  int matrix;                 /* 0: vector of length cols (rows == 1) */
  int owned;                  /* 1: writable; data is in this userdata's own block, or (a matrix
                                 row) in its parent's, which its user value keeps alive */
  const unsigned long *genp;  /* borrowed views: valid while *genp == gen */
  unsigned long gen;
} keeli_view;

/* Registers the metatable (idempotent). */
void keeli_view_open(lua_State *L);
/* Pushes a new owned, zeroed view: a vector (matrix = 0, rows must be 1)
 * or a rows x cols matrix. Raises a Lua error on overflow or no memory. */
keeli_view *keeli_view_new(lua_State *L, size_t rows, size_t cols, int matrix);
/* Pushes a read-only view of caller memory, valid while *genp == gen; the
 * caller bumps *genp when the memory goes away or changes meaning. */
keeli_view *keeli_view_borrow(lua_State *L, const double *data, size_t rows, size_t cols, size_t ld, int matrix,
                              const unsigned long *genp);
/* The view at idx, or NULL when it is not a view (no error; a stale view
 * is still returned). */
keeli_view *keeli_view_test(lua_State *L, int idx);
/* The view at idx; raises a Lua error when it is not a view or is stale. */
keeli_view *keeli_view_check(lua_State *L, int idx);
/* Reads n numbers from a vector view or an array table (raw access) at idx
 * into out; raises a Lua error naming `what` on a wrong length or a
 * non-number. */
void keeli_view_read(lua_State *L, int idx, size_t n, double *out, const char *what);

/* ---- the keel module (api.c) ---- */

/* Pushes the covariance (cols x cols matrix view) of the returns view at
 * idx: method NULL means "sample", opts is the index of an options table
 * {halflife=, periods_per_year=, benchmark=, missing=} or 0. The estimator
 * of keel.estimate.cov and of v:cov(). Raises a Lua error on failure. */
int keeli_push_cov(lua_State *L, int idx, const char *method, int opts);

/* lua_CFunction: pushes the keel module table (for luaL_requiref). */
int keeli_open_keel(lua_State *L);

/* Per-state host data, kept as a light userdata in the registry under
 * KEELI_HOST_KEY. The sandbox and the loadable module each set one. */
#define KEELI_HOST_KEY "keel.host"
typedef struct keeli_host {
  keel_ctx *ctx;          /* for keel calls made from Lua */
  keel_opt_record *opt;   /* when non-NULL, optimiser calls are recorded here */
} keeli_host;

keeli_host *keeli_host_get(lua_State *L); /* raises a Lua error when absent */

/* ---- what other parts of the layer (advice.c) need from sandbox.c ---- */

/* The sandboxed state (rebuilt first when a limit broke it); NULL when it
 * could not be rebuilt (the error is on ctx). */
lua_State *keeli_lua_state(keel_ctx *ctx, keel_lua *K);
/* Loads a text chunk as a function with the sandbox's environment and
 * pushes it (KEEL_ELUA with the syntax error otherwise, nothing pushed). */
keel_status keeli_lua_load(keel_ctx *ctx, keel_lua *K, const char *src, size_t len, const char *name);
/* lua_pcall of the function below nargs arguments on the stack, with the
 * state's limits (tighter ones from lim when non-NULL), keeli_host set to
 * ctx for the call, the sticky count hook armed, errors turned into
 * KEEL_ELUA / KEEL_ELIMIT with script:line and traceback on ctx. On success
 * nres results are on the stack; on failure nothing is. */
keel_status keeli_lua_pcall(keel_ctx *ctx, keel_lua *K, int nargs, int nres, const keel_lua_limits *lim);
/* Reads a Lua module: a file path (with a '/' or ending in ".lua"), or a
 * module name (dots become '/') found as name.lua in cfg's folders. path
 * gets the file read; *src (freed with keeli_free) and *len its text.
 * Messages start with what ("strategy", "template"). In strategy.c. */
#define KEELI_PATH_MAX 4096
keel_status keeli_lua_read_module(keel_ctx *ctx, const keel_lua_config *cfg, const char *what, const char *module,
                                  char path[KEELI_PATH_MAX], char **src, size_t *len);
/* Forgets the modules `require` has loaded, so the next require runs
 * them again (a pooled state starts each call with fresh modules). */
void keeli_lua_forget_modules(keel_lua *K);

/* ---- what strategy.c needs from sandbox.c ---- */

/* Most coroutines alive at once in a sandboxed state (the allocator
 * refuses the next; docs/lua.md). */
#define KEELI_LUA_THREADS 1000

/* The keel_lua of a sandboxed state (NULL for any other state). */
keel_lua *keeli_lua_of(lua_State *L);
/* The state's host data; keeli_lua_pcall sets its ctx, the caller its opt. */
keeli_host *keeli_lua_host(keel_lua *K);
/* How many times the state was built: a caller keeping things in it (a
 * loaded module) loads them again when this changed (after a limit). */
unsigned long keeli_lua_builds(const keel_lua *K);
/* Bytes the state holds now. */
size_t keeli_lua_mem_used(const keel_lua *K);
/* Charges n instructions to the running call's budget (for C functions
 * whose work the count hook cannot see); raises the limit error when it
 * runs out. No effect outside a call or on other states. */
void keeli_lua_charge(lua_State *L, double n);
/* Appends n bytes to the instance log (bounded by log_max). */
void keeli_lua_log_write(keel_lua *K, const char *s, size_t n);
/* Logs the values from stack index `first` on (luaL_tolstring, tabs, a
 * newline), as print does; returns 0. */
int keeli_lua_log_args(lua_State *L, int first);
/* Pushes a new environment table over the sandbox's read-only globals
 * (its _G is itself). */
void keeli_lua_push_env(lua_State *L);
/* Replaces the table at the top by a read-only proxy (tables in its
 * fields too, down to depth levels). */
void keeli_lua_readonly(lua_State *L, int depth);

#endif
