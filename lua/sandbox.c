/* keel — the sandboxed lua_State (docs/lua.md "The sandbox").
 *
 * Defences, each against a fault measured on Debian 12's liblua5.4 5.4.4:
 *
 * - Memory: every block goes through sb_alloc, which refuses growth past
 *   the cap (the script gets "not enough memory") and keeps at most
 *   KEELI_LUA_THREADS coroutines alive (the type hint of a new block tells
 *   a thread; the thread blocks are remembered so their frees are seen).
 * - Instructions: a count hook. The main thread's count is the budget left
 *   (at most INT_MAX), so the hook fires about once per call. A coroutine
 *   keeps its own count, so each resume re-arms it with CO_COUNT and
 *   charges CO_COUNT up front (what it may run before its hook fires).
 *   Once the budget is spent the hook re-arms itself with count 1 on the
 *   running thread and the main thread, so every further instruction
 *   raises again and a pcall in the script cannot swallow the error.
 * - Allocation is charged to the budget (ALLOC_BYTES_PER_INSN), since
 *   copying strings is work the hook never sees.
 * - C functions, which the hook never sees: patterns are refused when
 *   their worst-case work is too large and charged to the budget
 *   otherwise; string.rep of an empty string is answered without the loop
 *   5.4.4 runs n times; table.move charges its count; the table functions
 *   that loop over #t refuse tables with metatables (whose __index or
 *   __len could make C loop without bound).
 * - xpcall's handler is skipped once the budget is spent: for an error
 *   raised by the hook, Lua runs it with hooks off.
 * - No finalisers (setmetatable refuses __gc), no coroutine.close (a chain
 *   of them overflows the C stack in 5.4.4), text-only chunks, no
 *   string.dump, no io/os/debug/package.
 * - Nothing shared can be changed: library tables are read-only proxies,
 *   the string metatable is locked, each chunk gets its own environment
 *   over the read-only globals, and rawset refuses the proxies.
 * - The state is set up inside a protected call; errors are read without
 *   calling __tostring; a state a limit (or memory) broke is rebuilt.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "core/internal.h"
#include "lua/internal.h"

/* Instructions a coroutine runs between two firings of its hook. */
#define CO_COUNT 1000
/* Pattern matching: refuse a call whose worst-case work exceeds this many
 * matcher steps (about 4 ns each here); charge steps / PATTERN_STEPS_PER_INSN
 * instructions otherwise. */
#define PATTERN_WORK_MAX 33554432.0
#define PATTERN_STEPS_PER_INSN 4.0
/* Allocation is work too (copies of strings the hook never sees: `..`,
 * string.rep, upper, gsub results): every this many bytes a call
 * allocates cost one instruction. */
#define ALLOC_BYTES_PER_INSN 64u
/* Chunks a script passes to load, and files require reads. */
#define LOAD_MAX ((size_t)1 << 20)
#define REQUIRE_FILE_MAX ((size_t)4 << 20)
#define MODULE_NAME_MAX 128
/* Thread set: open addressing over twice the cap. */
#define TSET_SIZE (2 * KEELI_LUA_THREADS)

static const char ENV_MT_KEY[] = "keel.sandbox.envmt";
static const char LOADED_KEY[] = "keel.sandbox.loaded";
/* name -> compiled chunk of the modules require has read: forgetting the
 * loaded modules (a pooled state between calls) runs them again without
 * reading and compiling the file again */
static const char COMPILED_KEY[] = "keel.sandbox.compiled";
static const char KEEL_MOD_KEY[] = "keel.sandbox.keel";
static const char RO_FIELD[] = "__keel_readonly";
static const char LOCKED[] = "locked";
static char LOADING_SENTINEL; /* its address marks a module being loaded (never written) */

#define SMALL_MAX 256
#define SMALL_CLASSES (SMALL_MAX / 16)

struct keel_lua {
  keeli_heap heap;
  lua_State *L;
  keel_lua_limits lim;
  char **paths;
  size_t npaths;
  size_t log_max, log_len;
  char *log;
  int log_full;
  unsigned long builds;
  int broken;
  keeli_host host;
  /* allocator */
  size_t used, cap;
  int mem_hit, thread_hit;
  char mem_where[160];
  void **tset;
  size_t nthreads, tset_used, thread_size;
  int ready; /* the main state exists: thread allocations are coroutines */
  /* freed small blocks kept for reuse, one list per 16-byte size class: a
   * script makes and drops many small tables, strings and closures, and
   * the C library's allocator would see every one */
  void *freelist[SMALL_CLASSES + 1];
  /* the running call */
  int in_call;
  lua_State *cur; /* the running thread (set around resumes) */
  uint64_t budget, left;
  size_t alloc_acc; /* bytes allocated not yet charged */
  int exhausted, instr_hit;
};

void keel_lua_config_default(keel_lua_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->limits.mem_bytes = (size_t)64 << 20;
  cfg->limits.instructions = 100000000u;
  cfg->paths = NULL;
  cfg->log_max = 64 << 10;
}

/* ---- the allocator ---- */

static size_t tset_slot(const void *p) {
  uintptr_t h = (uintptr_t)p;
  h ^= h >> 17;
  h *= (uintptr_t)0x9E3779B97F4A7C15ULL;
  return (size_t)(h >> 7) % TSET_SIZE;
}

static void *const TOMB = (void *)&LOADING_SENTINEL; /* never a Lua block */

static void tset_rehash(keel_lua *K) {
  /* drop tombstones in place: reinsert every live entry */
  void *live[KEELI_LUA_THREADS];
  size_t n = 0;
  for (size_t i = 0; i < TSET_SIZE; i++) {
    if (K->tset[i] && K->tset[i] != TOMB && n < KEELI_LUA_THREADS) live[n++] = K->tset[i];
    K->tset[i] = NULL;
  }
  for (size_t j = 0; j < n; j++) {
    size_t i = tset_slot(live[j]);
    while (K->tset[i]) i = (i + 1) % TSET_SIZE;
    K->tset[i] = live[j];
  }
  K->tset_used = n;
}

static void tset_add(keel_lua *K, void *p) {
  if (K->tset_used + 1 > TSET_SIZE * 3 / 4) tset_rehash(K);
  size_t i = tset_slot(p);
  while (K->tset[i] && K->tset[i] != TOMB) i = (i + 1) % TSET_SIZE;
  if (!K->tset[i]) K->tset_used++;
  K->tset[i] = p;
  K->nthreads++;
}

static void tset_remove(keel_lua *K, void *p) {
  for (size_t i = tset_slot(p), n = 0; K->tset[i] && n < TSET_SIZE; i = (i + 1) % TSET_SIZE, n++)
    if (K->tset[i] == p) {
      K->tset[i] = TOMB;
      K->nthreads--;
      return;
    }
}

/* Where the running thread is, "src:line", for the memory-limit message.
 * Called only on a refused allocation during a call: lua_getstack and
 * lua_getinfo("Sl") read the call chain and allocate nothing. */
static void note_where(keel_lua *K) {
  if (K->mem_where[0] || !K->cur) return;
  lua_Debug ar;
  for (int lvl = 0; lvl < 32 && lua_getstack(K->cur, lvl, &ar); lvl++)
    if (lua_getinfo(K->cur, "Sl", &ar) && ar.currentline > 0) {
      snprintf(K->mem_where, sizeof K->mem_where, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
}

static size_t small_class(size_t n) { return (n + 15) / 16; }

/* A block of class c (n <= SMALL_MAX bytes) from the free list or the heap. */
static void *small_get(keel_lua *K, size_t c) {
  void *p = K->freelist[c];
  if (p) {
    K->freelist[c] = *(void **)p;
    return p;
  }
  return K->heap.fn(K->heap.ud, NULL, 0, c * 16);
}

static void small_put(keel_lua *K, void *p, size_t c) {
  *(void **)p = K->freelist[c];
  K->freelist[c] = p;
}

/* Gives the kept blocks back to the heap. */
static void small_drain(keel_lua *K) {
  for (size_t c = 1; c <= SMALL_CLASSES; c++)
    while (K->freelist[c]) {
      void *p = K->freelist[c];
      K->freelist[c] = *(void **)p;
      K->heap.fn(K->heap.ud, p, c * 16, 0);
    }
}

/* Frees or (re)allocates with the heap, small blocks through the lists. */
static void *block_realloc(keel_lua *K, void *ptr, size_t old, size_t nsize) {
  const size_t co = ptr && old <= SMALL_MAX ? small_class(old) : 0;
  if (nsize == 0) {
    if (co) small_put(K, ptr, co);
    else K->heap.fn(K->heap.ud, ptr, old, 0);
    return NULL;
  }
  const size_t cn = nsize <= SMALL_MAX ? small_class(nsize) : 0;
  if (!ptr) return cn ? small_get(K, cn) : K->heap.fn(K->heap.ud, NULL, 0, nsize);
  if (co && co == cn) return ptr;
  if (!co && !cn) return K->heap.fn(K->heap.ud, ptr, old, nsize);
  void *p = cn ? small_get(K, cn) : K->heap.fn(K->heap.ud, NULL, 0, nsize);
  if (!p) return NULL;
  memcpy(p, ptr, old < nsize ? old : nsize);
  if (co) small_put(K, ptr, co);
  else K->heap.fn(K->heap.ud, ptr, old, 0);
  return p;
}

static void sb_hook(lua_State *L, lua_Debug *ar);

static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  keel_lua *K = ud;
  if (nsize == 0) {
    if (ptr) {
      K->used -= osize;
      if (K->nthreads && osize == K->thread_size) tset_remove(K, ptr);
      block_realloc(K, ptr, osize, 0);
    }
    return NULL;
  }
  const size_t old = ptr ? osize : 0;
  const int thread = !ptr && osize == LUA_TTHREAD && K->ready;
  if (nsize > old && (K->used > K->cap || nsize - old > K->cap - K->used)) {
    K->mem_hit = 1;
    if (K->in_call) note_where(K);
    return NULL;
  }
  if (thread && K->nthreads >= KEELI_LUA_THREADS) {
    K->thread_hit = 1;
    if (K->in_call) note_where(K);
    return NULL;
  }
  void *p = block_realloc(K, ptr, old, nsize);
  if (!p) return NULL;
  K->used = K->used - old + nsize;
  if (K->in_call && nsize > old && (K->alloc_acc += nsize - old) >= 1024 * ALLOC_BYTES_PER_INSN) {
    const uint64_t c = K->alloc_acc / ALLOC_BYTES_PER_INSN;
    K->alloc_acc %= ALLOC_BYTES_PER_INSN;
    if (c < K->left) {
      K->left -= c;
    } else if (!K->exhausted) {
      /* spent: the next instruction of the running thread (or the main
       * thread) raises; lua_sethook only sets fields (it is safe even
       * from a signal handler, so from here too) */
      K->left = 0;
      K->exhausted = K->instr_hit = 1;
      lua_sethook(K->L, sb_hook, LUA_MASKCOUNT, 1);
      if (K->cur && K->cur != K->L) lua_sethook(K->cur, sb_hook, LUA_MASKCOUNT, 1);
    }
  }
  if (thread) {
    K->thread_size = nsize;
    tset_add(K, p);
  }
  return p;
}

keel_lua *keeli_lua_of(lua_State *L) {
  void *ud = NULL;
  lua_Alloc f = lua_getallocf(L, &ud);
  return f == sb_alloc ? ud : NULL;
}

/* ---- the instruction budget ---- */

static int main_count(uint64_t left) { return left > (uint64_t)INT_MAX ? INT_MAX : (int)(left ? left : 1); }

static void sb_hook(lua_State *L, lua_Debug *ar);

/* Spends the budget: every thread that runs from now on raises at once. */
static void exhaust(keel_lua *K, lua_State *L) {
  K->left = 0;
  K->exhausted = 1;
  K->instr_hit = 1;
  lua_sethook(K->L, sb_hook, LUA_MASKCOUNT, 1);
  if (L != K->L) lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
}

static int raise_limit(lua_State *L, keel_lua *K) {
  lua_Debug a;
  char where[160] = "";
  for (int lvl = 0; lvl < 8 && lua_getstack(L, lvl, &a); lvl++)
    if (lua_getinfo(L, "Sl", &a) && a.currentline > 0) {
      snprintf(where, sizeof where, "%s:%d: ", a.short_src, a.currentline);
      break;
    }
  lua_pushfstring(L, "%sinstruction limit of %I reached", where, (LUAI_UACINT)K->budget);
  return lua_error(L);
}

static void sb_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  keel_lua *K = keeli_lua_of(L);
  if (!K || !K->in_call) return;
  if (!K->exhausted) {
    const uint64_t armed = (uint64_t)lua_gethookcount(L);
    if (armed < K->left) {
      K->left -= armed;
      if (L == K->L) lua_sethook(L, sb_hook, LUA_MASKCOUNT, main_count(K->left));
      return;
    }
    exhaust(K, L);
  } else if (lua_gethookcount(L) != 1) {
    lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
  }
  raise_limit(L, K);
}

void keeli_lua_charge(lua_State *L, double n) {
  keel_lua *K = keeli_lua_of(L);
  if (!K || !K->in_call) return;
  if (!K->exhausted && n < (double)K->left) {
    K->left -= (uint64_t)n;
    return;
  }
  exhaust(K, L);
  raise_limit(L, K);
}

/* ---- the log ---- */

void keeli_lua_log_write(keel_lua *K, const char *s, size_t n) {
  if (K->log_full) return;
  const char *const MARK = "[log truncated]\n";
  const size_t mark = strlen(MARK);
  if (K->log_len + n + mark > K->log_max) {
    size_t room = K->log_max > K->log_len + mark ? K->log_max - K->log_len - mark : 0;
    if (room > n) room = n;
    memcpy(K->log + K->log_len, s, room);
    K->log_len += room;
    if (K->log_len + mark <= K->log_max) {
      memcpy(K->log + K->log_len, MARK, mark);
      K->log_len += mark;
    }
    K->log[K->log_len] = 0;
    K->log_full = 1;
    return;
  }
  memcpy(K->log + K->log_len, s, n);
  K->log_len += n;
  K->log[K->log_len] = 0;
}

const char *keel_lua_log(const keel_lua *K) { return K && K->log ? K->log : ""; }

void keel_lua_log_clear(keel_lua *K) {
  if (!K || !K->log) return;
  K->log_len = 0;
  K->log[0] = 0;
  K->log_full = 0;
}

/* Writes the arguments from `first` on, tab-separated, and a newline. */
int keeli_lua_log_args(lua_State *L, int first) {
  keel_lua *K = keeli_lua_of(L);
  const int n = lua_gettop(L);
  for (int i = first; i <= n; i++) {
    size_t len;
    const char *s = luaL_tolstring(L, i, &len);
    if (K) {
      if (i > first) keeli_lua_log_write(K, "\t", 1);
      keeli_lua_log_write(K, s, len);
    }
    lua_pop(L, 1);
  }
  if (K) keeli_lua_log_write(K, "\n", 1);
  return 0;
}

static int sb_print(lua_State *L) { return keeli_lua_log_args(L, 1); }

/* ---- environments and read-only tables ---- */

void keeli_lua_push_env(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_getfield(L, LUA_REGISTRYINDEX, ENV_MT_KEY);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "_G");
}

static int ro_newindex(lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING)
    return luaL_error(L, "cannot set '%s': this table is read-only", lua_tostring(L, 2));
  return luaL_error(L, "cannot set a field: this table is read-only");
}

static int ro_next(lua_State *L) {
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

static int ro_pairs(lua_State *L) {
  lua_pushcfunction(L, ro_next);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushnil(L);
  return 3;
}

static int ro_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, lua_upvalueindex(1)));
  return 1;
}

static int is_readonly(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  lua_pushstring(L, RO_FIELD);
  int ro = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return ro;
}

/* Replaces the table at the top by a read-only proxy of it; tables in its
 * fields are proxied too, down to `depth` levels. */
void keeli_lua_readonly(lua_State *L, int depth) {
  luaL_checkstack(L, 6, NULL);
  if (depth > 1) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -1) == LUA_TTABLE && !is_readonly(L, -1)) {
        keeli_lua_readonly(L, depth - 1);
        lua_pushvalue(L, -2); /* key */
        lua_insert(L, -2);
        lua_rawset(L, -4); /* same key: no rehash during traversal */
      } else {
        lua_pop(L, 1);
      }
    }
  }
  const int real = lua_gettop(L);
  lua_newtable(L); /* the proxy */
  lua_createtable(L, 0, 6);
  lua_pushvalue(L, real);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ro_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushvalue(L, real);
  lua_pushcclosure(L, ro_pairs, 1);
  lua_setfield(L, -2, "__pairs");
  lua_pushvalue(L, real);
  lua_pushcclosure(L, ro_len, 1);
  lua_setfield(L, -2, "__len");
  lua_pushstring(L, LOCKED);
  lua_setfield(L, -2, "__metatable");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, RO_FIELD);
  lua_setmetatable(L, -2);
  lua_replace(L, real);
}

/* ---- base functions ---- */


/* The wrapped library function (upvalue 1) called with this call's
 * arguments; its first result returned. */
static int call_wrapped(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int sb_setmetatable(lua_State *L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return luaL_error(L, "setmetatable: a metatable with __gc is not allowed in the sandbox");
    lua_pop(L, 1);
  }
  return call_wrapped(L);
}

static int sb_rawset(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (is_readonly(L, 1)) return luaL_error(L, "rawset: this table is read-only");
  return call_wrapped(L);
}

/* xpcall's message handler runs before the error unwinds; for an error the
 * count hook raised, it runs with hooks off (the hook never returned), so
 * a looping handler would never stop. Once the budget is spent the
 * script's handler is skipped and the error passes unchanged. */
static int sb_xpcall_handler(lua_State *L) {
  keel_lua *K = keeli_lua_of(L);
  if (K && K->exhausted) return 1;
  return call_wrapped(L);
}

static int sb_xpcall(lua_State *L) {
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, sb_xpcall_handler, 1);
  lua_replace(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static int sb_collectgarbage(lua_State *L) {
  const char *opt = luaL_optstring(L, 1, "collect");
  if (strcmp(opt, "count") != 0)
    return luaL_error(L, "collectgarbage: only \"count\" is allowed in the sandbox (got \"%s\")", opt);
  const int kb = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);
  lua_pushnumber(L, (lua_Number)kb + (lua_Number)b / 1024);
  return 1;
}

/* load(chunk [, name [, mode [, env]]]): text only, strings only. */
static int sb_load(lua_State *L) {
  size_t len;
  if (lua_type(L, 1) != LUA_TSTRING)
    return luaL_error(L, "load: the chunk must be a string (reader functions are not allowed in the sandbox)");
  const char *s = lua_tolstring(L, 1, &len);
  const char *name = luaL_optstring(L, 2, "=(load)");
  const char *mode = luaL_optstring(L, 3, "t");
  if (strcmp(mode, "t") != 0) return luaL_error(L, "load: only text chunks (mode \"t\") are allowed in the sandbox");
  if (len > LOAD_MAX) return luaL_error(L, "load: chunk of %I bytes is over the %I allowed", (LUAI_UACINT)len,
                                        (LUAI_UACINT)LOAD_MAX);
  const int has_env = lua_gettop(L) >= 4;
  if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  if (has_env) lua_pushvalue(L, 4);
  else keeli_lua_push_env(L);
  if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
  return 1;
}

/* require "keel" | require "name": name.lua from the configured folders. */
static int sb_require(lua_State *L) {
  size_t n;
  const char *name = luaL_checklstring(L, 1, &n);
  if (strcmp(name, "keel") == 0) {
    lua_getfield(L, LUA_REGISTRYINDEX, KEEL_MOD_KEY);
    return 1;
  }
  int ok = n > 0 && n <= MODULE_NAME_MAX && name[0] != '.' && name[n - 1] != '.';
  for (size_t i = 0; ok && i < n; i++) {
    const char c = name[i];
    ok = c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c == '.' && name[i + 1] != '.');
  }
  if (!ok) return luaL_error(L, "require: bad module name '%s' (letters, digits, '_' and single inner '.' only)", name);
  keel_lua *K = keeli_lua_of(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LOADED_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
  }
  const int loaded = lua_gettop(L);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, loaded) != LUA_TNIL) {
    if (lua_touserdata(L, -1) == &LOADING_SENTINEL)
      return luaL_error(L, "require: module '%s' requires itself while loading", name);
    return 1;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, LUA_REGISTRYINDEX, COMPILED_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, COMPILED_KEY);
  }
  const int compiled = lua_gettop(L);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, compiled) == LUA_TFUNCTION) {
    lua_pushvalue(L, 1);
    lua_pushlightuserdata(L, &LOADING_SENTINEL);
    lua_rawset(L, loaded);
    goto run;
  }
  lua_pop(L, 1);
  char rel[MODULE_NAME_MAX + 8];
  for (size_t i = 0; i < n; i++) rel[i] = name[i] == '.' ? '/' : name[i];
  memcpy(rel + n, ".lua", 5);
  const char *path = NULL;
  struct stat sb;
  for (size_t i = 0; K && i < K->npaths && !path; i++) {
    const char *p = lua_pushfstring(L, "%s/%s", K->paths[i], rel);
    if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) path = p;
    else lua_pop(L, 1);
  }
  if (!path) return luaL_error(L, "require: module '%s' not found in the strategy folders", name);
  if ((size_t)sb.st_size > REQUIRE_FILE_MAX)
    return luaL_error(L, "require: %s is over %I bytes", rel, (LUAI_UACINT)REQUIRE_FILE_MAX);
  const size_t size = (size_t)sb.st_size;
  char *buf = lua_newuserdatauv(L, size ? size : 1, 0);
  FILE *f = fopen(path, "rb");
  if (!f) return luaL_error(L, "require: cannot open %s: %s", rel, strerror(errno));
  const size_t got = fread(buf, 1, size, f);
  fclose(f);
  if (got != size) return luaL_error(L, "require: cannot read %s", rel);
  lua_pushvalue(L, 1);
  lua_pushlightuserdata(L, &LOADING_SENTINEL);
  lua_rawset(L, loaded);
  lua_pushfstring(L, "@%s", rel);
  if (luaL_loadbufferx(L, buf, size, lua_tostring(L, -1), "t") != LUA_OK) goto fail;
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -2);
  lua_rawset(L, compiled);
run:
  /* a new environment on every run */
  keeli_lua_push_env(L);
  lua_setupvalue(L, -2, 1);
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) goto fail;
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -2);
  lua_rawset(L, loaded);
  return 1;
fail:
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  lua_rawset(L, loaded);
  return lua_error(L);
}

/* ---- string ---- */

/* End (one past) of the set starting at p[i] == '['. */
static size_t set_end(const char *p, size_t m, size_t i) {
  i++;
  if (i < m && p[i] == '^') i++;
  do {
    if (i >= m) return m;
    if (p[i++] == '%') i++;
  } while (i < m && p[i] != ']');
  return i + 1;
}

static int is_quant(char c) { return c == '*' || c == '+' || c == '-' || c == '?'; }

/* Whether only ')' (and a final '$') follow position e. */
static int trailing(const char *p, size_t m, size_t e) {
  while (e < m && p[e] == ')') e++;
  return e == m || (e + 1 == m && p[e] == '$');
}

/* Items that make the matcher backtrack over the subject: quantified
 * single-character classes (not the pattern's last, which succeeds at
 * once), %b and back-references. */
static int pattern_degree(const char *p, size_t m) {
  int k = 0;
  size_t i = 0;
  if (i < m && p[i] == '^') i++;
  while (i < m) {
    const char c = p[i];
    size_t e;
    if (c == '(' || c == ')') {
      i++;
      continue;
    }
    if (c == '%') {
      if (i + 1 >= m) break;
      const char d = p[i + 1];
      if (d == 'b') {
        k++;
        i += 4;
        continue;
      }
      if (d == 'f') {
        i += 2;
        if (i < m && p[i] == '[') i = set_end(p, m, i);
        continue;
      }
      if (d >= '0' && d <= '9') {
        k++;
        i += 2;
        continue;
      }
      e = i + 2;
    } else if (c == '[') {
      e = set_end(p, m, i);
    } else {
      e = i + 1;
    }
    if (e < m && is_quant(p[e])) {
      e++;
      if (!trailing(p, m, e)) k++;
    }
    i = e;
  }
  return k;
}

static int has_specials(const char *p, size_t m) {
  for (size_t i = 0; i < m; i++)
    if (strchr("^$*+?.([%-", p[i])) return 1;
  return 0;
}

/* Checks pattern `pi` against subject `si` (from byte `init` on when > 0)
 * and charges the work; anchored: whether a leading '^' anchors. */
static void check_pattern(lua_State *L, const char *who, size_t init, int anchorable, int plain) {
  size_t n, m;
  luaL_checklstring(L, 1, &n);
  const char *p = luaL_checklstring(L, 2, &m);
  if (init > 1) n = init - 1 < n ? n - (init - 1) : 0;
  double work;
  if (plain || (!has_specials(p, m) && strcmp(who, "find") == 0)) {
    work = ((double)n + 1) * ((double)m + 1) / 16; /* memchr + memcmp */
  } else {
    const int k = pattern_degree(p, m) + (anchorable && m && p[0] == '^' ? 0 : 1);
    work = pow((double)n + 1, k) * ((double)m + 1);
  }
  if (work > PATTERN_WORK_MAX)
    luaL_error(L,
               "string.%s: pattern too costly for the sandbox (subject of %I bytes, %d backtracking item(s); "
               "use plain find or a shorter subject)",
               who, (LUAI_UACINT)n, plain ? 0 : pattern_degree(p, m));
  keeli_lua_charge(L, work / PATTERN_STEPS_PER_INSN);
}

static size_t opt_init(lua_State *L, int idx) {
  lua_Integer i = luaL_optinteger(L, idx, 1);
  return i > 0 ? (size_t)i : 1;
}

/* Whether a message starts with "source:line:". */
static int has_position(const char *m) {
  const char *c = strchr(m, ':');
  if (!c || c == m || memchr(m, '\n', (size_t)(c - m))) return 0;
  const char *d = c + 1;
  while (*d >= '0' && *d <= '9') d++;
  return d > c + 1 && *d == ':';
}

/* Calls the wrapped library function (upvalue 1) with the arguments. Its
 * own errors name no script position (its caller is this C function), so
 * the script's position is added to them. */
static int call_orig(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  if (lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0) != LUA_OK) {
    if (lua_type(L, -1) == LUA_TSTRING && !has_position(lua_tostring(L, -1))) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return lua_gettop(L);
}

static int sb_find(lua_State *L) {
  check_pattern(L, "find", opt_init(L, 3), 1, lua_toboolean(L, 4));
  return call_orig(L);
}
static int sb_match(lua_State *L) {
  check_pattern(L, "match", opt_init(L, 3), 1, 0);
  return call_orig(L);
}
static int sb_gmatch(lua_State *L) {
  check_pattern(L, "gmatch", opt_init(L, 3), 0, 0);
  return call_orig(L);
}
static int sb_gsub(lua_State *L) {
  check_pattern(L, "gsub", 1, 1, 0);
  return call_orig(L);
}

/* 5.4.4 loops n times even when the result is empty. */
static int sb_rep(lua_State *L) {
  size_t l, lsep;
  luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &lsep);
  if (n <= 0 || l + lsep == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  const int r = call_orig(L); /* the memory limit first, when it applies */
  keeli_lua_charge(L, (double)n / 4); /* a memcpy per copy, about a quarter instruction */
  return r;
}

/* ---- table ---- */

static int sb_table_plain(lua_State *L) {
  if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
    lua_pop(L, 1);
    return luaL_error(L, "table functions take plain tables in the sandbox (this one has a metatable)");
  }
  return call_orig(L);
}

static int sb_move(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
  const int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
  if (lua_getmetatable(L, 1) || (tt == 5 && lua_type(L, 5) == LUA_TTABLE && lua_getmetatable(L, 5))) {
    lua_pop(L, 1);
    return luaL_error(L, "table functions take plain tables in the sandbox (this one has a metatable)");
  }
  if (e >= f) keeli_lua_charge(L, (double)e - (double)f + 1);
  return call_orig(L);
}

/* ---- coroutines: resumes re-arm the coroutine's hook ---- */

/* Resumes co with narg values from L's top; returns lua_resume's status,
 * with the results (or the error) moved to L. */
static int resume_co(lua_State *L, lua_State *co, int narg) {
  keel_lua *K = keeli_lua_of(L);
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  const int st = lua_status(co);
  if (st == LUA_OK && lua_gettop(co) == 0) {
    lua_pushliteral(L, "cannot resume dead coroutine");
    return -1;
  }
  if (st != LUA_OK && st != LUA_YIELD) {
    lua_pushliteral(L, "cannot resume dead coroutine");
    return -1;
  }
  if (K && K->in_call) {
    keeli_lua_charge(L, CO_COUNT);
    lua_sethook(co, sb_hook, LUA_MASKCOUNT, CO_COUNT);
  }
  lua_xmove(L, co, narg);
  lua_State *prev = K ? K->cur : NULL;
  if (K) K->cur = co;
  int nres;
  const int status = lua_resume(co, L, narg, &nres);
  if (K) K->cur = prev;
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1 - (status == LUA_ERRMEM);
}

static int sb_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  const int r = resume_co(L, co, lua_gettop(L) - 1);
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

static int sb_wrap_call(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  const int r = resume_co(L, co, lua_gettop(L));
  if (r < 0) {
    const int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) { /* an error in the coroutine: close its to-be-closed variables */
      keel_lua *K = keeli_lua_of(L);
      lua_State *prev = K ? K->cur : NULL;
      if (K) K->cur = co;
      lua_resetthread(co);
      if (K) K->cur = prev;
      lua_xmove(co, L, 1);
    }
    return lua_error(L);
  }
  return r;
}

static int sb_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, sb_wrap_call, 1);
  return 1;
}

/* ---- building the state ---- */

static void set_orig_wrapper(lua_State *L, int tbl, const char *name, lua_CFunction fn) {
  lua_getfield(L, tbl, name);
  lua_pushcclosure(L, fn, 1);
  lua_setfield(L, tbl, name);
}

static int setup_main(lua_State *L) {
  keel_lua *K = lua_touserdata(L, 1);
  lua_settop(L, 0);
  /* base, in the globals table G */
  luaL_requiref(L, LUA_GNAME, luaopen_base, 0);
  lua_pop(L, 1);
  lua_pushglobaltable(L);
  const int G = lua_gettop(L);
  static const char *const DROP[] = {"dofile", "loadfile", "_G"};
  for (size_t i = 0; i < sizeof DROP / sizeof DROP[0]; i++) {
    lua_pushnil(L);
    lua_setfield(L, G, DROP[i]);
  }
  set_orig_wrapper(L, G, "setmetatable", sb_setmetatable);
  set_orig_wrapper(L, G, "rawset", sb_rawset);
  set_orig_wrapper(L, G, "xpcall", sb_xpcall);
  lua_pushcfunction(L, sb_load);
  lua_setfield(L, G, "load");
  lua_pushcfunction(L, sb_collectgarbage);
  lua_setfield(L, G, "collectgarbage");
  lua_pushcfunction(L, sb_print);
  lua_setfield(L, G, "print");
  lua_pushcfunction(L, sb_require);
  lua_setfield(L, G, "require");

  /* string: the real table is the string metatable's __index */
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
  const int S = lua_gettop(L);
  lua_pushnil(L);
  lua_setfield(L, S, "dump");
  set_orig_wrapper(L, S, "find", sb_find);
  set_orig_wrapper(L, S, "match", sb_match);
  set_orig_wrapper(L, S, "gmatch", sb_gmatch);
  set_orig_wrapper(L, S, "gsub", sb_gsub);
  set_orig_wrapper(L, S, "rep", sb_rep);
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushstring(L, LOCKED);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);
  lua_pushvalue(L, S);
  keeli_lua_readonly(L, 1);
  lua_setfield(L, G, LUA_STRLIBNAME);
  lua_pop(L, 1);

  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 0);
  static const char *const PLAIN[] = {"insert", "remove", "sort", "concat", "unpack"};
  for (size_t i = 0; i < sizeof PLAIN / sizeof PLAIN[0]; i++)
    set_orig_wrapper(L, lua_gettop(L), PLAIN[i], sb_table_plain);
  set_orig_wrapper(L, lua_gettop(L), "move", sb_move);
  keeli_lua_readonly(L, 1);
  lua_setfield(L, G, LUA_TABLIBNAME);

  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);
  keeli_lua_readonly(L, 1);
  lua_setfield(L, G, LUA_MATHLIBNAME);
  luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);
  keeli_lua_readonly(L, 1);
  lua_setfield(L, G, LUA_UTF8LIBNAME);

  luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 0);
  const int C = lua_gettop(L);
  lua_pushnil(L);
  lua_setfield(L, C, "close");
  lua_pushcfunction(L, sb_resume);
  lua_setfield(L, C, "resume");
  lua_pushcfunction(L, sb_wrap);
  lua_setfield(L, C, "wrap");
  keeli_lua_readonly(L, 1);
  lua_setfield(L, G, LUA_COLIBNAME);

  luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
  lua_createtable(L, 0, 3);
  static const char *const OS[] = {"time", "date", "clock"};
  for (size_t i = 0; i < 3; i++) {
    lua_getfield(L, -2, OS[i]);
    lua_setfield(L, -2, OS[i]);
  }
  lua_remove(L, -2);
  keeli_lua_readonly(L, 1);
  lua_setfield(L, G, "os");
  /* the originals stay only in the registry's _LOADED, out of reach */

  /* the keel module, read-only */
  keeli_open_keel(L);
  keeli_lua_readonly(L, 3);
  lua_setfield(L, LUA_REGISTRYINDEX, KEEL_MOD_KEY);

  /* environments: {__index = G} */
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, G);
  lua_setfield(L, -2, "__index");
  lua_pushstring(L, LOCKED);
  lua_setfield(L, -2, "__metatable");
  lua_setfield(L, LUA_REGISTRYINDEX, ENV_MT_KEY);

  lua_pushlightuserdata(L, &K->host);
  lua_setfield(L, LUA_REGISTRYINDEX, KEELI_HOST_KEY);
  return 0;
}

static keel_status build(keel_ctx *ctx, keel_lua *K) {
  K->ready = 0;
  K->used = 0;
  K->nthreads = 0;
  K->tset_used = 0;
  memset(K->tset, 0, TSET_SIZE * sizeof *K->tset);
  K->cap = K->lim.mem_bytes;
  K->in_call = 0;
  K->L = lua_newstate(sb_alloc, K);
  if (!K->L) return keeli_error(ctx, KEEL_ENOMEM, "lua: cannot make a state (memory limit %zu bytes)", K->cap);
  K->ready = 1;
  lua_State *L = K->L;
  lua_pushcfunction(L, setup_main);
  lua_pushlightuserdata(L, K);
  const int rc = lua_pcall(L, 1, 0, 0);
  if (rc != LUA_OK) {
    const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    keel_status st = rc == LUA_ERRMEM
                         ? keeli_error(ctx, K->mem_hit ? KEEL_ELIMIT : KEEL_ENOMEM,
                                       "lua: setting up the sandbox ran out of memory (limit %zu bytes)", K->cap)
                         : keeli_error(ctx, KEEL_ELUA, "lua: setting up the sandbox failed: %s", m);
    lua_close(L);
    K->L = NULL;
    return st;
  }
  K->builds++;
  K->broken = 0;
  K->mem_hit = 0;
  return KEEL_OK;
}

keel_status keel_lua_new(keel_ctx *ctx, const keel_lua_config *cfg, keel_lua **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "lua: out is NULL");
  *out = NULL;
  keel_lua_config d;
  if (!cfg) keel_lua_config_default(&d), cfg = &d;
  if (cfg->limits.mem_bytes < (64u << 10))
    return keeli_error(ctx, KEEL_EINVAL, "lua: mem_bytes %zu is below the 64 KiB a state needs", cfg->limits.mem_bytes);
  if (cfg->limits.instructions == 0) return keeli_error(ctx, KEEL_EINVAL, "lua: instructions must be > 0");
  keel_lua *K = keeli_calloc(ctx, 1, sizeof *K);
  if (!K) return KEEL_ENOMEM;
  K->heap = *keeli_ctx_heap(ctx);
  K->lim = cfg->limits;
  K->log_max = cfg->log_max ? cfg->log_max : 64 << 10;
  size_t np = 0;
  while (cfg->paths && cfg->paths[np]) np++;
  K->log = keeli_alloc(ctx, K->log_max + 1);
  K->tset = keeli_calloc(ctx, TSET_SIZE, sizeof *K->tset);
  K->paths = np ? keeli_calloc(ctx, np, sizeof *K->paths) : NULL;
  if (!K->log || !K->tset || (np && !K->paths)) goto nomem;
  K->log[0] = 0;
  for (size_t i = 0; i < np; i++) {
    if (!(K->paths[i] = keeli_strdup(ctx, cfg->paths[i]))) goto nomem;
    K->npaths = i + 1;
  }
  keel_status st = build(ctx, K);
  if (st) {
    keel_lua_free(K);
    return st;
  }
  *out = K;
  return KEEL_OK;
nomem:
  keel_lua_free(K);
  return KEEL_ENOMEM;
}

void keel_lua_free(keel_lua *K) {
  if (!K) return;
  keeli_heap heap = K->heap;
  if (K->L) lua_close(K->L);
  small_drain(K);
  for (size_t i = 0; i < K->npaths; i++) keeli_heap_free(&heap, K->paths[i]);
  keeli_heap_free(&heap, K->paths);
  keeli_heap_free(&heap, K->log);
  keeli_heap_free(&heap, K->tset);
  keeli_heap_free(&heap, K);
}

lua_State *keeli_lua_state(keel_ctx *ctx, keel_lua *K) {
  if (!K) return NULL;
  if (K->broken || !K->L) {
    if (K->L) lua_close(K->L);
    K->L = NULL;
    if (build(ctx, K)) return NULL;
  }
  K->host.ctx = ctx;
  return K->L;
}

keeli_host *keeli_lua_host(keel_lua *K) { return &K->host; }
unsigned long keeli_lua_builds(const keel_lua *K) { return K->builds; }
size_t keeli_lua_mem_used(const keel_lua *K) { return K->used; }

void keeli_lua_forget_modules(keel_lua *K) {
  if (!K || !K->L || !lua_checkstack(K->L, 2)) return;
  if (lua_getfield(K->L, LUA_REGISTRYINDEX, LOADED_KEY) == LUA_TTABLE) {
    lua_pushnil(K->L);
    lua_setfield(K->L, LUA_REGISTRYINDEX, LOADED_KEY); /* an existing key: no allocation */
  }
  lua_pop(K->L, 1);
}

/* ---- calls ---- */

/* Reports a failed protected call (the error object at the top). */
static keel_status report(keel_ctx *ctx, keel_lua *K, int rc) {
  lua_State *L = K->L;
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  char tn[64];
  if (!msg) {
    snprintf(tn, sizeof tn, "(error object is a %s value)", luaL_typename(L, -1));
    msg = tn;
  }
  if (K->instr_hit) {
    K->broken = 1;
    if (strstr(msg, "instruction limit of")) return keeli_error(ctx, KEEL_ELIMIT, "%s", msg);
    return keeli_error(ctx, KEEL_ELIMIT, "instruction limit of %llu reached (%s)", (unsigned long long)K->budget,
                       msg);
  }
  const int oom = rc == LUA_ERRMEM || strstr(msg, "not enough memory") != NULL;
  if (oom && K->thread_hit && !K->mem_hit) {
    K->broken = 1;
    return keeli_error(ctx, KEEL_ELIMIT, "%scoroutine limit of %d live coroutines reached", K->mem_where,
                       KEELI_LUA_THREADS);
  }
  if (oom && K->mem_hit) {
    K->broken = 1;
    return keeli_error(ctx, KEEL_ELIMIT, "%smemory limit of %zu bytes reached", K->mem_where, K->cap);
  }
  if (rc == LUA_ERRMEM) {
    K->broken = 1;
    return keeli_error(ctx, KEEL_ENOMEM, "%sout of memory", K->mem_where);
  }
  if (rc == LUA_ERRERR) return keeli_error(ctx, KEEL_ELUA, "error while reporting an error: %s", msg);
  return keeli_error(ctx, KEEL_ELUA, "%s", msg);
}

/* The message handler: a traceback for string (or number) errors; the
 * type alone for anything else (its __tostring is never called). */
static int sb_msgh(lua_State *L) {
  const char *msg;
  const int t = lua_type(L, 1);
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    msg = lua_tostring(L, 1);
  } else {
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static void begin_call(keel_lua *K, const keel_lua_limits *lim) {
  K->cap = K->lim.mem_bytes;
  K->budget = K->lim.instructions;
  if (lim && lim->mem_bytes && lim->mem_bytes < K->cap) K->cap = lim->mem_bytes;
  if (lim && lim->instructions && lim->instructions < K->budget) K->budget = lim->instructions;
  K->left = K->budget;
  K->alloc_acc = 0;
  K->exhausted = K->instr_hit = 0;
  K->mem_hit = K->thread_hit = 0;
  K->mem_where[0] = 0;
  K->cur = K->L;
  K->in_call = 1;
  lua_sethook(K->L, sb_hook, LUA_MASKCOUNT, main_count(K->left));
}

static void end_call(keel_lua *K) {
  K->in_call = 0;
  K->cur = NULL;
  K->cap = K->lim.mem_bytes;
  lua_sethook(K->L, NULL, 0, 0);
}

keel_status keeli_lua_pcall(keel_ctx *ctx, keel_lua *K, int nargs, int nres, const keel_lua_limits *lim) {
  lua_State *L = K->L;
  const int fidx = lua_gettop(L) - nargs;
  if (!lua_checkstack(L, 2 + (nres > 0 ? nres : 0))) {
    lua_settop(L, fidx - 1);
    return keeli_error(ctx, KEEL_ENOMEM, "lua: no stack space for the call");
  }
  K->host.ctx = ctx;
  lua_pushcfunction(L, sb_msgh);
  lua_insert(L, fidx);
  begin_call(K, lim);
  const int rc = lua_pcall(L, nargs, nres, fidx);
  K->in_call = 0;
  if (rc == LUA_OK) {
    end_call(K);
    lua_remove(L, fidx);
    return KEEL_OK;
  }
  keel_status st = report(ctx, K, rc); /* with the call's limits */
  end_call(K);
  lua_settop(L, fidx - 1);
  return st;
}

typedef struct load_job {
  const char *src;
  size_t len;
  const char *name;
  int rc;
} load_job;

static int load_main(lua_State *L) {
  load_job *j = lua_touserdata(L, 1);
  lua_pop(L, 1);
  j->rc = luaL_loadbufferx(L, j->src, j->len, j->name, "t");
  if (j->rc != LUA_OK) return lua_error(L);
  keeli_lua_push_env(L);
  lua_setupvalue(L, -2, 1);
  return 1;
}

keel_status keeli_lua_load(keel_ctx *ctx, keel_lua *K, const char *src, size_t len, const char *name) {
  lua_State *L = keeli_lua_state(ctx, K);
  if (!L) return keel_errcode(ctx) ? keel_errcode(ctx) : KEEL_ENOMEM;
  if (!lua_checkstack(L, 3)) return keeli_error(ctx, KEEL_ENOMEM, "lua: no stack space");
  load_job j = {src, len, name ? name : "=chunk", LUA_OK};
  lua_pushcfunction(L, load_main);
  lua_pushlightuserdata(L, &j);
  K->mem_hit = 0;
  const int rc = lua_pcall(L, 1, 1, 0);
  if (rc == LUA_OK) return KEEL_OK;
  keel_status st;
  const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
  if (rc == LUA_ERRMEM || j.rc == LUA_ERRMEM) {
    K->broken = 1;
    st = keeli_error(ctx, K->mem_hit ? KEEL_ELIMIT : KEEL_ENOMEM, "%s: memory limit of %zu bytes reached while loading",
                     j.name[0] == '@' || j.name[0] == '=' ? j.name + 1 : j.name, K->cap);
  } else {
    st = keeli_error(ctx, KEEL_ELUA, "%s", m);
  }
  lua_pop(L, 1);
  return st;
}

keel_status keel_lua_run(keel_ctx *ctx, keel_lua *K, const char *chunk, size_t len, const char *name,
                         const keel_lua_limits *lim, char *out, size_t out_size) {
  if (!K || (!chunk && len)) return keeli_error(ctx, KEEL_EINVAL, "lua: run: no state or no chunk");
  if (out && out_size) out[0] = 0;
  keel_status st = keeli_lua_load(ctx, K, chunk ? chunk : "", len, name);
  if (st) return st;
  lua_State *L = K->L;
  const int base = lua_gettop(L) - 1;
  if ((st = keeli_lua_pcall(ctx, K, 0, 1, lim))) return st;
  if (out && out_size) {
    const int t = lua_type(L, -1);
    if (t == LUA_TBOOLEAN) {
      snprintf(out, out_size, "%s", lua_toboolean(L, -1) ? "true" : "false");
    } else if (t == LUA_TNUMBER) { /* formatted here: lua_tostring could allocate outside a protected call */
      if (lua_isinteger(L, -1)) snprintf(out, out_size, "%lld", (long long)lua_tointeger(L, -1));
      else snprintf(out, out_size, "%.14g", lua_tonumber(L, -1));
    } else if (t == LUA_TSTRING) {
      size_t n;
      const char *s = lua_tolstring(L, -1, &n);
      if (n >= out_size) n = out_size - 1;
      memcpy(out, s, n);
      out[n] = 0;
    }
  }
  lua_settop(L, base);
  return KEEL_OK;
}
