/* The sandbox: each rule of docs/lua.md, the limits, error messages with
 * script:line, rebuild after a limit with other instances unaffected, and
 * the hostile corpus (tests/lua/hostile), after each script of
 * which a Lua strategy in the same process must still give the C
 * built-in's backtest. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <valgrind/valgrind.h>

#include "keel_test.h"
#include "keel/lua.h"

static keel_lua *mk(size_t mem, uint64_t insn) {
  keel_lua_config cfg;
  keel_lua_config_default(&cfg);
  if (mem) cfg.limits.mem_bytes = mem;
  if (insn) cfg.limits.instructions = insn;
  keel_lua *K = NULL;
  assert_ok(CTX, keel_lua_new(CTX, &cfg, &K));
  return K;
}

static char OUT[512];

static keel_status run(keel_lua *K, const char *src) {
  return keel_lua_run(CTX, K, src, strlen(src), "@t.lua", NULL, OUT, sizeof OUT);
}

#define assert_run(K, src, expect)                  \
  do {                                              \
    assert_ok(CTX, run((K), (src)));                \
    assert_string_equal(OUT, (expect));             \
  } while (0)

#define assert_fails(K, src, st, msg)               \
  do {                                              \
    assert_status(CTX, run((K), (src)), (st));      \
    assert_errmsg(CTX, (msg));                      \
  } while (0)

static void test_libraries(void **state) {
  (void)state;
  keel_lua *K = mk(0, 0);
  /* what is there */
  assert_run(K, "return type(string.format) .. type(table.sort) .. type(math.floor) .. type(utf8.char) .. "
                "type(coroutine.wrap) .. type(os.time) .. type(os.date) .. type(os.clock)",
             "functionfunctionfunctionfunctionfunctionfunctionfunctionfunction");
  assert_run(K, "return select('#', assert, error, ipairs, next, pairs, pcall, select, tonumber, tostring, type, "
                "xpcall, rawequal, rawlen, rawget, rawset, getmetatable, setmetatable, load, print, require)",
             "20");
  assert_run(K, "return _VERSION", "Lua 5.4");
  /* what is not */
  const char *absent[] = {"io", "debug", "package", "dofile", "loadfile", "string.dump", "os.execute", "os.getenv",
                          "os.remove", "os.exit", "coroutine.close", "loadstring", "module", "os.tmpname",
                          "string.dump"};
  for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
    char src[128];
    snprintf(src, sizeof src, "return %s == nil", absent[i]);
    assert_run(K, src, "true");
  }
  /* _G is the chunk's own environment */
  assert_run(K, "x = 1; return _G.x + _ENV.x", "2");
  assert_run(K, "return x == nil", "true"); /* not left for the next chunk */
  assert_fails(K, "collectgarbage()", KEEL_ELUA, "t.lua:1: collectgarbage: only \"count\" is allowed");
  assert_run(K, "return collectgarbage('count') > 1", "true");
  assert_run(K, "return pairs(math) ~= nil and (function() local n = 0 for k in pairs(math) do n = n + 1 end "
                "return n end)() > 20",
             "true");
  assert_run(K, "return #string", "0");
  keel_lua_free(K);
}

static void test_load(void **state) {
  (void)state;
  keel_lua *K = mk(0, 0);
  assert_run(K, "return load('return 1 + 1')()", "2");
  assert_run(K, "y = 5; return load('return y')() == nil", "true"); /* a new environment by default */
  assert_run(K, "return load('return z', 'c', 't', { z = 7 })()", "7");
  assert_run(K, "local f, e = load('\\27Lua\\84\\0\\25\\147\\r\\n\\26\\n'); return e",
             "attempt to load a binary chunk (mode is 't')");
  assert_fails(K, "load('return 1', 'c', 'b')", KEEL_ELUA, "only text chunks");
  assert_fails(K, "load('return 1', 'c', 'bt')", KEEL_ELUA, "only text chunks");
  assert_fails(K, "load(function() return nil end)", KEEL_ELUA, "the chunk must be a string");
  assert_run(K, "local f, e = load('return +', '=c'); return e", "c:1: unexpected symbol near '+'");
  assert_fails(K, "load(('x'):rep(2000000))", KEEL_ELUA, "over the 1048576 allowed");
  /* the host loads text only too */
  assert_status(CTX, keel_lua_run(CTX, K, "\x1bLua\x54", 5, "@bin.lua", NULL, NULL, 0), KEEL_ELUA);
  assert_errmsg(CTX, "binary chunk");
  keel_lua_free(K);
}

static void test_errors(void **state) {
  (void)state;
  keel_lua *K = mk(0, 0);
  assert_fails(K, "local x = 1\nlocal y = nil + x", KEEL_ELUA, "t.lua:2: attempt to perform arithmetic on a nil");
  assert_errmsg(CTX, "stack traceback:");
  assert_fails(K, "local function f() error('deep') end\nlocal function g() f() end\ng()", KEEL_ELUA,
               "t.lua:1: deep");
  assert_errmsg(CTX, "in local 'g'");
  /* non-string error objects: the type, never __tostring */
  assert_fails(K, "error(setmetatable({}, { __tostring = function() while true do end end }))", KEEL_ELUA,
               "(error object is a table value)");
  assert_fails(K, "error(setmetatable({}, { __tostring = function() error('x') end }))", KEEL_ELUA,
               "(error object is a table value)");
  assert_fails(K, "error(nil)", KEEL_ELUA, "(error object is a nil value)");
  assert_fails(K, "error(42)", KEEL_ELUA, "42");
  assert_fails(K, "local t = {} + 1", KEEL_ELUA, "t.lua:1:");
  assert_status(CTX, keel_lua_run(CTX, K, "return +", 8, "@syntax.lua", NULL, NULL, 0), KEEL_ELUA);
  assert_errmsg(CTX, "syntax.lua:1: unexpected symbol");
  /* library errors carry the script's position */
  assert_fails(K, "\nstring.rep()", KEEL_ELUA, "t.lua:2: bad argument #1 to 'rep'");
  assert_fails(K, "\n\ntable.concat({ {} })", KEEL_ELUA, "t.lua:3: invalid value (table) at index 1 in table for 'concat'");
  keel_lua_free(K);
}

static void test_readonly(void **state) {
  (void)state;
  keel_lua *K = mk(0, 0);
  /* script A tries to poison the pooled state; script B sees nothing */
  assert_fails(K, "string.upper = nil", KEEL_ELUA, "cannot set 'upper': this table is read-only");
  assert_fails(K, "math.floor = function() return 0 end", KEEL_ELUA, "cannot set 'floor'");
  assert_fails(K, "rawset(table, 'insert', print)", KEEL_ELUA, "rawset: this table is read-only");
  assert_fails(K, "setmetatable(os, nil)", KEEL_ELUA, "cannot change a protected metatable");
  assert_fails(K, "getmetatable('').__index = {}", KEEL_ELUA, "attempt to index a string value");
  assert_fails(K, "getmetatable('').__index.upper = nil", KEEL_ELUA, "t.lua:1:");
  assert_fails(K, "local k = require 'keel'; k.optimize.min_variance = nil", KEEL_ELUA, "read-only");
  assert_fails(K, "local k = require 'keel'; k.vector = nil", KEEL_ELUA, "read-only");
  assert_run(K, "string = { upper = function() return 'evil' end }; tostring = nil; return 1", "1");
  assert_run(K, "return string.upper('a') .. ('b'):upper() .. math.floor(2.5) .. tostring(3)", "AB23");
  assert_run(K, "return getmetatable('')", "locked");
  assert_run(K, "return getmetatable(string)", "locked");
  keel_lua_free(K);
}

static void test_metatables(void **state) {
  (void)state;
  keel_lua *K = mk(0, 0);
  assert_fails(K, "setmetatable({}, { __gc = function() while true do end end })", KEEL_ELUA,
               "a metatable with __gc is not allowed");
  assert_fails(K, "setmetatable({}, { __gc = true })", KEEL_ELUA, "__gc is not allowed");
  /* a __gc added after setmetatable marks nothing (Lua manual 2.5.3): state closes fine */
  assert_run(K, "local mt = {}; local t = setmetatable({}, mt); mt.__gc = function() while true do end end; "
                "t = nil; return 1",
             "1");
  assert_run(K, "return getmetatable(setmetatable({}, { __index = { a = 1 } })).__index.a", "1");
  keel_lua_free(K); /* must not hang */
}

static void test_patterns(void **state) {
  (void)state;
  keel_lua *K = mk(0, 0);
  assert_run(K, "return ('2024-05-06'):match('^(%d+)%-(%d+)%-(%d+)$')", "2024");
  assert_run(K, "return select(2, ('a=b c=d '):rep(100):gsub('(%w+)=(%w+)', '%2=%1'))", "200");
  assert_run(K, "return select(2, (' x '):rep(20000):gsub('%s+', ' '))", "20001");
  assert_run(K, "local n = 0 for w in ('one two three'):gmatch('%a+') do n = n + 1 end return n", "3");
  assert_run(K, "return ('x'):rep(1000000):find('needle', 1, true) == nil", "true");
  assert_run(K, "return ('(a(b)c)'):find('%b()')", "1");
  assert_fails(K, "return ('a'):rep(40):find(('a*'):rep(12) .. 'b')", KEEL_ELUA, "pattern too costly");
  assert_fails(K, "return ('a'):rep(20000):find('a*b')", KEEL_ELUA, "pattern too costly");
  assert_fails(K, "return ('a'):rep(5000):match('.-.-b')", KEEL_ELUA, "pattern too costly");
  assert_fails(K, "return ('('):rep(30000):gsub('%b()', '')", KEEL_ELUA, "pattern too costly");
  /* many cheap calls still spend the budget (charged), so they end */
  keel_lua *K2 = mk(0, 5000000);
  assert_fails(K2, "local s = ('a'):rep(2000) while true do s:find('a*b') end", KEEL_ELIMIT, "instruction limit");
  keel_lua_free(K2);
  /* string.rep of nothing is answered at once (5.4.4 loops n times) */
  assert_run(K, "return #string.rep('', 1e18) .. #('').rep('', 1e18, '')", "00");
  keel_lua_free(K);
}

static void test_instruction_limit(void **state) {
  (void)state;
  keel_lua *K = mk(0, 2000000);
  assert_fails(K, "\nwhile true do end", KEEL_ELIMIT, "t.lua:2: instruction limit of 2000000 reached");
  /* pcall cannot swallow it */
  assert_fails(K, "local n = 0\nwhile true do pcall(function() while true do n = n + 1 end end) end", KEEL_ELIMIT,
               "instruction limit of 2000000 reached");
  assert_fails(K, "for i = 1, 100 do pcall(function() while true do end end) end return 'escaped'", KEEL_ELIMIT,
               "instruction limit");
  assert_fails(K, "xpcall(function() while true do end end, function() while true do end end)", KEEL_ELIMIT,
               "instruction limit");
  /* allocation is charged: copying a big string in a loop ends too */
  assert_fails(K, "local s = ('x'):rep(4e6) while true do local t = s .. 'y' end", KEEL_ELIMIT, "instruction limit");
  assert_fails(K, "local s = ('x'):rep(4e6) while true do local t = s:upper() end", KEEL_ELIMIT,
               "instruction limit");
  /* the budget is per call: a call under it succeeds after one over it */
  assert_run(K, "local s = 0 for i = 1, 100000 do s = s + i end return s", "5000050000");
  assert_run(K, "local s = 0 for i = 1, 100000 do s = s + i end return s", "5000050000");
  /* tighter per call */
  keel_lua_limits lim = {0, 1000};
  assert_status(CTX, keel_lua_run(CTX, K, "for i = 1, 1e6 do end", 21, "@t.lua", &lim, NULL, 0), KEEL_ELIMIT);
  assert_errmsg(CTX, "instruction limit of 1000 reached");
  lim.instructions = 1u << 30; /* looser than the instance: the instance's holds */
  assert_status(CTX, keel_lua_run(CTX, K, "while true do end", 17, "@t.lua", &lim, NULL, 0), KEEL_ELIMIT);
  assert_errmsg(CTX, "instruction limit of 2000000 reached");
  /* coroutines: their instructions count too, however many of them */
  assert_fails(K, "while true do coroutine.wrap(function() for i = 1, 998 do end end)() end", KEEL_ELIMIT,
               "instruction limit");
  assert_fails(K, "local co = coroutine.wrap(function() while true do pcall(coroutine.yield) end end)\n"
                  "while true do co() end",
               KEEL_ELIMIT, "instruction limit");
  keel_lua_free(K);
}

static void test_memory_limit(void **state) {
  (void)state;
  keel_lua *K = mk(8u << 20, 0);
  assert_fails(K, "local s = ('x'):rep(1e9)", KEEL_ELIMIT, "t.lua:1: memory limit of 8388608 bytes reached");
  assert_fails(K, "local t = {}\nfor i = 1, 1e9 do t[i] = i end", KEEL_ELIMIT, "t.lua:2: memory limit");
  /* caught by pcall: the script goes on within the cap */
  assert_run(K, "local ok, e = pcall(string.rep, 'x', 1e9); return tostring(ok) .. ' ' .. e",
             "false not enough memory");
  /* tighter per call */
  keel_lua_limits lim = {1u << 20, 0};
  const char *src = "local t = {} for i = 1, 1e6 do t[i] = i end";
  assert_status(CTX, keel_lua_run(CTX, K, src, strlen(src), "@t.lua", &lim, NULL, 0), KEEL_ELIMIT);
  assert_errmsg(CTX, "memory limit of 1048576 bytes reached");
  const char *small = "local t = {} for i = 1, 1e5 do t[i] = i end return #t";
  assert_ok(CTX, keel_lua_run(CTX, K, small, strlen(small), "@t.lua", NULL, OUT, sizeof OUT));
  assert_string_equal(OUT, "100000");
  keel_lua_free(K);
  /* the state counts against the cap from the start: a tiny cap fails cleanly */
  keel_lua_config cfg;
  keel_lua_config_default(&cfg);
  cfg.limits.mem_bytes = 70000;
  keel_lua *T = NULL;
  keel_status st = keel_lua_new(CTX, &cfg, &T);
  assert_true(st == KEEL_ELIMIT || st == KEEL_OK);
  if (st) assert_errmsg(CTX, "memory");
  keel_lua_free(T);
  cfg.limits.mem_bytes = 100;
  assert_status(CTX, keel_lua_new(CTX, &cfg, &T), KEEL_EINVAL);
}

static void test_coroutines(void **state) {
  (void)state;
  keel_lua *K = mk(0, 0);
  assert_run(K, "local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 end)\n"
                "local _, x = coroutine.resume(co, 1); local _, y = coroutine.resume(co, 10)\n"
                "return x .. ' ' .. y .. ' ' .. coroutine.status(co) .. ' ' .. tostring(coroutine.resume(co))",
             "2 20 dead false");
  assert_run(K, "local g = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)\n"
                "return g() + g() + g()",
             "6");
  assert_fails(K, "coroutine.wrap(function() error('in co') end)()", KEEL_ELUA, "t.lua:1: in co");
  /* live coroutines are capped through the allocator */
  assert_fails(K, "local t = {} for i = 1, 5000 do t[i] = coroutine.create(print) end", KEEL_ELIMIT,
               "coroutine limit of 1000 live coroutines reached");
  /* dead ones are collected: many in a row are fine */
  assert_run(K, "for i = 1, 5000 do coroutine.wrap(function() end)() end return 1", "1");
  /* the 5.4.4 crash: a chain of closes from to-be-closed handlers; coroutine.close is not there, and the
     same chain through wrap's closing of an errored coroutine ends with a C stack overflow */
  assert_fails(K, "local function chain(n) if n == 0 then return end\n"
                  "  coroutine.wrap(function() local x <close> = setmetatable({}, { __close = function() "
                  "chain(n - 1) end }); error('e') end)() end\n"
                  "chain(20000)",
               KEEL_ELUA, "stack overflow");
  keel_lua_free(K);
}

static void test_require(void **state) {
  (void)state;
  const char *dir = keel_test_tmp_path("req");
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s/pkg'", dir);
  assert_int_equal(system(cmd), 0);
  char p[600];
  snprintf(p, sizeof p, "%s/pkg/util.lua", dir);
  const char util[] = "local name = ...\nreturn { name = name, twice = function(x) return 2 * x end }\n";
  assert_int_equal(keel_test_write_file(p, util, strlen(util)), 0);
  snprintf(p, sizeof p, "%s/loop.lua", dir);
  assert_int_equal(keel_test_write_file(p, "return require 'loop'", 21), 0);
  snprintf(p, sizeof p, "%s/broken.lua", dir);
  assert_int_equal(keel_test_write_file(p, "\nerror('broken module')", 23), 0);
  keel_lua_config cfg;
  keel_lua_config_default(&cfg);
  const char *paths[] = {dir, NULL};
  cfg.paths = paths;
  keel_lua *K = NULL;
  assert_ok(CTX, keel_lua_new(CTX, &cfg, &K));
  assert_run(K, "local u = require 'pkg.util'; return u.name .. u.twice(21) .. tostring(require('pkg.util') == u)",
             "pkg.util42true");
  assert_run(K, "return require('keel').version ~= nil", "true");
  assert_fails(K, "require 'loop'", KEEL_ELUA, "requires itself");
  assert_fails(K, "require 'broken'", KEEL_ELUA, "broken.lua:2: broken module");
  assert_fails(K, "require 'broken'", KEEL_ELUA, "broken.lua:2: broken module"); /* not cached */
  const char *bad[] = {"'../etc/passwd'", "'/etc/passwd'", "'pkg..util'", "'.pkg'", "'pkg/util'", "''",
                       "'socket.core'", "'lfs'"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char src[128];
    snprintf(src, sizeof src, "require(%s)", bad[i]);
    assert_status(CTX, run(K, src), KEEL_ELUA);
    assert_true(strstr(keel_errmsg(CTX), "bad module name") || strstr(keel_errmsg(CTX), "not found"));
  }
  keel_lua_free(K);
}

static void test_rebuild_and_isolation(void **state) {
  (void)state;
  keel_lua *A = mk(8u << 20, 2000000), *B = mk(8u << 20, 2000000);
  assert_run(B, "return 1", "1");
  assert_fails(A, "while true do end", KEEL_ELIMIT, "instruction limit");
  assert_fails(A, "local s = 'x' while true do s = s .. s end", KEEL_ELIMIT, "memory limit");
  assert_run(A, "return string.upper('ok')", "OK");
  assert_run(B, "return string.upper('still')", "STILL");
  /* print goes to the instance's log, bounded */
  assert_run(A, "print('a', 1, true, nil) return 1", "1");
  assert_string_equal(keel_lua_log(A), "a\t1\ttrue\tnil\n");
  assert_string_equal(keel_lua_log(B), "");
  keel_lua_log_clear(A);
  assert_string_equal(keel_lua_log(A), "");
  assert_run(A, "for i = 1, 20000 do print(('x'):rep(100)) end return 1", "1");
  assert_true(strlen(keel_lua_log(A)) <= 64 << 10);
  assert_non_null(strstr(keel_lua_log(A), "[log truncated]"));
  keel_lua_free(A);
  keel_lua_free(B);
}

/* A state through a failing allocator: allocation N of making a state
 * and running a chunk fails, for N = 0, 1, ... until nothing fails. Lua
 * absorbs some failures (a string table that could not grow); the others
 * give KEEL_ENOMEM. Nothing leaks either way. */
static void test_oom(void **state) {
  (void)state;
  long n;
  for (n = 0; n < 100000; n++) {
    keel_test_alloc a;
    keel_ctx *ctx = keel_test_ctx(&a);
    a.calls = 0;
    a.fail_at = n;
    const long base = a.live_blocks;
    keel_lua *K = NULL;
    keel_status st = keel_lua_new(ctx, NULL, &K);
    if (!st) {
      st = keel_lua_run(ctx, K, "local t = {} for i = 1, 100 do t[i] = ('x'):rep(i) end return #t", 62, "=t", NULL,
                        NULL, 0);
      keel_lua_free(K);
    } else {
      assert_null(K);
    }
    if (st != KEEL_OK && st != KEEL_ENOMEM) fail_msg("allocation %ld failing: status %d: %s", n, (int)st,
                                                      keel_errmsg(ctx));
    if (a.live_blocks != base) fail_msg("allocation %ld failing: %ld block(s) leaked", n, a.live_blocks - base);
    const long failures = a.failures;
    keel_ctx_free(ctx);
    if (failures == 0) {
      assert_int_equal(st, KEEL_OK);
      break;
    }
  }
  assert_true(n > 100);
  printf("oom: %ld allocations\n", n);
}

/* ---- the hostile corpus ---- */

static keel_panel *PANEL;
static keel_backtest_result *REF;  /* the built-in 60/40 */
static keel_strategy *LUA6040;     /* the same in Lua, kept across the corpus */
static size_t COLS[2];

static keel_status run6040(keel_strategy *s, keel_backtest_result **out) {
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.nassets = 2;
  sub.assets = COLS;
  sub.strategy = s;
  sub.costs.buy_bps = sub.costs.sell_bps = 10;
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 1;
  a.subs = &sub;
  a.end = 2000;
  return keel_backtest_run_account(CTX, PANEL, &a, out);
}

static void check_6040(void) {
  keel_backtest_result *r = NULL;
  assert_ok(CTX, run6040(LUA6040, &r));
  const size_t n = keel_backtest_npoints(r);
  assert_int_equal(n, keel_backtest_npoints(REF));
  for (size_t i = 0; i < n; i++) assert_close(keel_backtest_values(r)[i], keel_backtest_values(REF)[i], 1e-12, 0);
  keel_backtest_result_free(r);
}

/* The header lines "-- expect: ELUA|ELIMIT" and "-- message: text". */
static void header(const char *src, keel_status *st, char *msg, size_t msz) {
  const char *e = strstr(src, "-- expect: ");
  const char *m = strstr(src, "-- message: ");
  assert_non_null(e);
  assert_non_null(m);
  e += 11;
  if (strncmp(e, "ELIMIT", 6) == 0) *st = KEEL_ELIMIT;
  else if (strncmp(e, "ELUA", 4) == 0) *st = KEEL_ELUA;
  else fail_msg("bad expect line");
  m += 12;
  size_t n = strcspn(m, "\n");
  if (n >= msz) n = msz - 1;
  memcpy(msg, m, n);
  msg[n] = 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_hostile_corpus(void **state) {
  (void)state;
  const char *path = keel_test_shared_data("stock_prices.csv");
  if (!path) skip();
  assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &PANEL));
  assert_int_equal(keel_panel_find(PANEL, "AAPL", &COLS[0]), 1);
  assert_int_equal(keel_panel_find(PANEL, "XOM", &COLS[1]), 1);
  const double w[2] = {0.6, 0.4};
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  bp.weights = w;
  bp.nweights = 2;
  keel_strategy *cs;
  assert_ok(CTX, keel_strategy_builtin(CTX, KEEL_STRAT_FIXED, &bp, &cs));
  assert_ok(CTX, run6040(cs, &REF));
  keel_strategy_free(cs);
  const char src6040[] = "return { rebalance = function(ctx, p) return { 0.6, 0.4 } end }";
  assert_ok(CTX, keel_lua_strategy_from_source(CTX, NULL, src6040, strlen(src6040), "s.lua", NULL, &LUA6040));

  DIR *d = opendir(KEEL_HOSTILE_DIR);
  assert_non_null(d);
  char *names[256];
  size_t n = 0;
  for (struct dirent *e; (e = readdir(d)) && n < 256;) {
    const size_t l = strlen(e->d_name);
    if (l > 4 && strcmp(e->d_name + l - 4, ".lua") == 0) names[n++] = strdup(e->d_name);
  }
  closedir(d);
  assert_true(n >= 25);
  qsort(names, n, sizeof *names, cmp_str);
  /* one pooled state runs the whole corpus in turn (leftovers must not
   * matter); each script also runs as a strategy's rebalance */
  keel_lua_config cfg;
  keel_lua_config_default(&cfg);
  /* a quarter of both limits under valgrind (the same ratio of bytes to
   * instructions, so each script meets the same limit, in a quarter of the
   * time) */
  const unsigned scale = RUNNING_ON_VALGRIND ? 4 : 1;
  cfg.limits.mem_bytes = (16u << 20) / scale;
  cfg.limits.instructions = 5000000 / scale;
  keel_lua *K = NULL;
  assert_ok(CTX, keel_lua_new(CTX, &cfg, &K));
  for (size_t i = 0; i < n; i++) {
    char file[1024];
    snprintf(file, sizeof file, "%s/%s", KEEL_HOSTILE_DIR, names[i]);
    size_t len;
    char *src = keel_test_read_file(file, &len);
    assert_non_null(src);
    keel_status want;
    char msg[256];
    header(src, &want, msg, sizeof msg);
    if (scale != 1) { /* the messages that name the limits name the scaled ones */
      char lim[64];
      if (strstr(msg, "instruction limit of 5000000"))
        snprintf(lim, sizeof lim, "instruction limit of %llu", (unsigned long long)cfg.limits.instructions);
      else if (strstr(msg, "memory limit of 16777216"))
        snprintf(lim, sizeof lim, "memory limit of %zu", (size_t)cfg.limits.mem_bytes);
      else
        lim[0] = 0;
      if (lim[0]) snprintf(msg, sizeof msg, "%s", lim);
    }
    char chunk[300];
    snprintf(chunk, sizeof chunk, "@%s", names[i]);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    keel_status got = keel_lua_run(CTX, K, src, len, chunk, NULL, NULL, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (got != want || !strstr(keel_errmsg(CTX), msg))
      fail_msg("%s: status %d (want %d), message: %s (want \"%s\")", names[i], (int)got, (int)want,
               keel_errmsg(CTX), msg);
    if (secs > 60) fail_msg("%s took %.1f s", names[i], secs);
    printf("  %-28s %-6s %.3f s\n", names[i], want == KEEL_ELIMIT ? "ELIMIT" : "ELUA", secs);
    /* the pooled state is clean for the next script */
    assert_run(K, "return string.upper('a') .. math.floor(2.5) .. tostring(1) .. type(setmetatable) .. "
                  "tostring(getmetatable('')) .. tostring(x == nil)",
               "A21functionlockedtrue");
    /* as a strategy: the script is the module's body; the run ends with the same kind of error */
    keel_strategy *hs = NULL;
    keel_status lst = keel_lua_strategy_from_source(CTX, &cfg, src, len, names[i], NULL, &hs);
    if (lst != want) fail_msg("%s as a strategy: status %d (want %d): %s", names[i], (int)lst, (int)want,
                              keel_errmsg(CTX));
    assert_null(hs);
    check_6040();
    free(src);
    free(names[i]);
  }
  keel_lua_free(K);
  keel_strategy_free(LUA6040);
  keel_backtest_result_free(REF);
  keel_panel_free(PANEL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_libraries),  cmocka_unit_test(test_load),
      cmocka_unit_test(test_errors),     cmocka_unit_test(test_readonly),
      cmocka_unit_test(test_metatables), cmocka_unit_test(test_patterns),
      cmocka_unit_test(test_instruction_limit), cmocka_unit_test(test_memory_limit),
      cmocka_unit_test(test_coroutines), cmocka_unit_test(test_require),
      cmocka_unit_test(test_rebuild_and_isolation), cmocka_unit_test(test_oom),
      cmocka_unit_test(test_hostile_corpus),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
