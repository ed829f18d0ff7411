/* Tests of the keel.view userdata (lua/view.c), the keel module table
 * (lua/api.c) on a plain lua_State, and the loadable module keel.so run by
 * the lua5.4 interpreter (bindings/lua). Numbers from Lua are compared with
 * the C functions' own results on the same inputs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "keel_test.h"
#include "lua/internal.h"

/* ---- a state with the keel module and a host ---- */

typedef struct tstate {
  lua_State *L;
  keeli_host host;
  keel_opt_record rec;
  size_t bytes; /* the state's live bytes (counting allocator) */
} tstate;

#define TSTATE_CAP ((size_t)256 << 20) /* the test states' memory cap */

static void *count_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  tstate *t = ud;
  if (ptr) t->bytes -= osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (t->bytes + nsize > TSTATE_CAP) {
    if (ptr) t->bytes += osize;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p)
    t->bytes += nsize;
  else if (ptr)
    t->bytes += osize;
  return p;
}

static int open_all(lua_State *L) {
  luaL_openlibs(L);
  luaL_requiref(L, "keel", keeli_open_keel, 1);
  return 0;
}

static tstate *ts_new(void) {
  tstate *t = calloc(1, sizeof *t);
  assert_non_null(t);
  t->L = lua_newstate(count_alloc, t);
  assert_non_null(t->L);
  t->host.ctx = CTX;
  t->host.opt = &t->rec;
  lua_pushlightuserdata(t->L, &t->host);
  lua_setfield(t->L, LUA_REGISTRYINDEX, KEELI_HOST_KEY);
  lua_pushcfunction(t->L, open_all);
  assert_int_equal(lua_pcall(t->L, 0, 0, 0), LUA_OK);
  return t;
}

static void ts_free(tstate *t) {
  lua_close(t->L);
  free(t);
}

/* Runs code; returns NULL on success or the error message (valid until the
 * next call). */
static char ERRBUF[2048];
static const char *run(tstate *t, const char *code) {
  lua_State *L = t->L;
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 0, 0) != LUA_OK) {
    snprintf(ERRBUF, sizeof ERRBUF, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "(non-string error)");
    lua_pop(L, 1);
    return ERRBUF;
  }
  return NULL;
}

#define RUN_OK(t, code)                                            \
  do {                                                             \
    const char *e_ = run((t), (code));                             \
    if (e_) fail_msg("Lua failed: %s\n  code: %s", e_, (code));   \
  } while (0)

/* Runs code that must fail with a message containing needle. */
#define RUN_ERR(t, code, needle)                                                                 \
  do {                                                                                           \
    const char *e_ = run((t), (code));                                                           \
    if (!e_) fail_msg("Lua did not fail: %s", (code));                                           \
    if (!strstr(e_, (needle))) fail_msg("error '%s' lacks '%s'\n  code: %s", e_, (needle), (code)); \
  } while (0)

static double num(tstate *t, const char *expr) {
  char code[512];
  snprintf(code, sizeof code, "return %s", expr);
  lua_State *L = t->L;
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
    fail_msg("Lua failed: %s (%s)", lua_tostring(L, -1), expr);
  if (lua_type(L, -1) != LUA_TNUMBER) fail_msg("%s is a %s, not a number", expr, luaL_typename(L, -1));
  double x = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return x;
}

static const char *str(tstate *t, const char *expr) {
  static char buf[1024];
  char code[512];
  snprintf(code, sizeof code, "return tostring(%s)", expr);
  lua_State *L = t->L;
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
    fail_msg("Lua failed: %s (%s)", lua_tostring(L, -1), expr);
  snprintf(buf, sizeof buf, "%s", lua_tostring(L, -1));
  lua_pop(L, 1);
  return buf;
}

/* Reads n numbers of the vector expression into out (protected). */
static int read_cb(lua_State *L) {
  double *out = lua_touserdata(L, 2);
  size_t n = (size_t)lua_tointeger(L, 3);
  keeli_view_read(L, 1, n, out, "test");
  return 0;
}

static void vec(tstate *t, const char *expr, double *out, size_t n) {
  char code[512];
  snprintf(code, sizeof code, "return %s", expr);
  lua_State *L = t->L;
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
    fail_msg("Lua failed: %s (%s)", lua_tostring(L, -1), expr);
  lua_pushcfunction(L, read_cb);
  lua_insert(L, -2);
  lua_pushlightuserdata(L, out);
  lua_pushinteger(L, (lua_Integer)n);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) fail_msg("reading %s: %s", expr, lua_tostring(L, -1));
}

/* Reads a rows x cols matrix expression into out row by row. */
static void mat(tstate *t, const char *expr, double *out, size_t rows, size_t cols) {
  char e[512];
  for (size_t i = 0; i < rows; i++) {
    snprintf(e, sizeof e, "(%s)[%zu]", expr, i + 1);
    vec(t, e, out + i * cols, cols);
  }
}

/* Sets global name to a new owned matrix (or vector when rows == 0). */
static int setmat_cb(lua_State *L) {
  const double *x = lua_touserdata(L, 1);
  size_t rows = (size_t)lua_tointeger(L, 2), cols = (size_t)lua_tointeger(L, 3);
  keeli_view *v = rows ? keeli_view_new(L, rows, cols, 1) : keeli_view_new(L, 1, cols, 0);
  memcpy(v->data, x, (rows ? rows : 1) * cols * sizeof(double));
  lua_setglobal(L, lua_tostring(L, 4));
  return 0;
}

static void setmat(tstate *t, const char *name, const double *x, size_t rows, size_t cols) {
  lua_State *L = t->L;
  lua_pushcfunction(L, setmat_cb);
  lua_pushlightuserdata(L, (void *)x);
  lua_pushinteger(L, (lua_Integer)rows);
  lua_pushinteger(L, (lua_Integer)cols);
  lua_pushstring(L, name);
  if (lua_pcall(L, 4, 0, 0) != LUA_OK) fail_msg("setmat: %s", lua_tostring(L, -1));
}

/* Sets global name to a borrowed view of x guarded by *gen. */
typedef struct borrow_args {
  const double *x;
  size_t rows, cols, ld;
  int matrix;
  const unsigned long *gen;
  const char *name;
} borrow_args;

static int borrow_cb(lua_State *L) {
  const borrow_args *a = lua_touserdata(L, 1);
  keeli_view_borrow(L, a->x, a->rows, a->cols, a->ld, a->matrix, a->gen);
  lua_setglobal(L, a->name);
  return 0;
}

static void borrow(tstate *t, const borrow_args *a) {
  lua_pushcfunction(t->L, borrow_cb);
  lua_pushlightuserdata(t->L, (void *)a);
  if (lua_pcall(t->L, 1, 0, 0) != LUA_OK) fail_msg("borrow: %s", lua_tostring(t->L, -1));
}

static void assert_vec_close(const double *a, const double *b, size_t n, double rtol, const char *what) {
  for (size_t i = 0; i < n; i++) {
    if (isnan(a[i]) && isnan(b[i])) continue;
    if (!(fabs(a[i] - b[i]) <= rtol * fmax(1e-300, fabs(b[i])) + 1e-15))
      fail_msg("%s[%zu]: Lua %.17g, C %.17g", what, i, a[i], b[i]);
  }
}

/* ---- keel.view ---- */

static void test_view_owned(void **state) {
  (void)state;
  tstate *t = ts_new();
  RUN_OK(t, "v = keel.vector{1, 2, 4}; m = keel.matrix{{1, 2}, {3, 5}, {8, 13}}");
  assert_true(num(t, "#v") == 3);
  assert_true(num(t, "v.rows") == 1 && num(t, "v.cols") == 3);
  assert_true(num(t, "v[3]") == 4 && num(t, "v:get(2)") == 2);
  RUN_OK(t, "v[1] = 0.5; v:set(2, -1)");
  assert_true(num(t, "v[1]") == 0.5 && num(t, "v[2]") == -1);
  assert_close(num(t, "v:sum()"), 3.5, 0, 0);
  assert_close(num(t, "v:mean()"), 3.5 / 3, 1e-15, 0);
  /* sample standard deviation of {0.5, -1, 4}: mean 7/6 */
  double m = 3.5 / 3, sd = sqrt(((0.5 - m) * (0.5 - m) + (-1 - m) * (-1 - m) + (4 - m) * (4 - m)) / 2);
  assert_close(num(t, "v:std()"), sd, 1e-15, 0);
  assert_true(num(t, "#m") == 3 && num(t, "m.rows") == 3 && num(t, "m.cols") == 2);
  assert_true(num(t, "m:get(3, 2)") == 13 && num(t, "m[2][2]") == 5 && num(t, "#m[1]") == 2);
  double x[3];
  vec(t, "m:col(2)", x, 3);
  assert_true(x[0] == 2 && x[1] == 5 && x[2] == 13);
  vec(t, "m:mean()", x, 2);
  assert_close(x[0], 4, 1e-15, 0);
  assert_close(x[1], 20.0 / 3, 1e-15, 0);
  vec(t, "m:sum()", x, 2);
  assert_true(x[0] == 12 && x[1] == 20);
  vec(t, "m:std()", x, 2);
  assert_close(x[0], sqrt((9 + 1 + 16) / 2.0), 1e-15, 0);
  /* a row view writes through to its matrix; a copy does not */
  RUN_OK(t, "local r = m[2]; r[1] = 30; c = m:copy(); c:set(1, 1, 100); m[3] = {0, 1}");
  assert_true(num(t, "m:get(2, 1)") == 30 && num(t, "m:get(1, 1)") == 1 && num(t, "c:get(1, 1)") == 100);
  assert_true(num(t, "m:get(3, 1)") == 0 && num(t, "m:get(3, 2)") == 1);
  RUN_OK(t, "tt = m:totable(); tv = v:totable()");
  assert_true(num(t, "tt[2][1]") == 30 && num(t, "#tt") == 3 && num(t, "tv[3]") == 4);
  assert_string_equal(str(t, "v"), "keel.vector(3) {0.5, -1, 4}");
  assert_string_equal(str(t, "m"), "keel.matrix(3x2)");
  assert_string_equal(str(t, "keel.vector(10)"), "keel.vector(10) {0, 0, 0, 0, 0, 0, 0, 0, ...}");
  assert_string_equal(str(t, "getmetatable(v)"), "keel.view");
  assert_true(num(t, "#keel.vector(0)") == 0 && num(t, "keel.matrix(2, 3).cols") == 3);
  assert_true(num(t, "keel.matrix(m):get(2, 1)") == 30);
  ts_free(t);
}

static void test_view_errors(void **state) {
  (void)state;
  tstate *t = ts_new();
  RUN_OK(t, "v = keel.vector{1, 2, 3}; m = keel.matrix(2, 2)");
  RUN_ERR(t, "return v[4]", "element index 4 out of range 1..3");
  RUN_ERR(t, "return v[0]", "out of range");
  RUN_ERR(t, "return m[3]", "row index 3 out of range 1..2");
  RUN_ERR(t, "return m:get(1, 3)", "column index 3 out of range 1..2");
  RUN_ERR(t, "return v[1.5]", "index must be an integer");
  RUN_ERR(t, "return v[true]", "index must be an integer, got boolean");
  RUN_ERR(t, "v[1] = 'x'", "cannot store a string");
  RUN_ERR(t, "m:set(1, 1, {})", "cannot store a table");
  RUN_ERR(t, "m[1] = {1, 2, 3}", "expected 2 numbers, got 3");
  RUN_ERR(t, "m[1] = {1, 'a'}", "row[2] is not a number");
  RUN_ERR(t, "return v.nope", "keel.view has no field 'nope'");
  RUN_ERR(t, "v.rows = 3", "cannot set field 'rows'");
  RUN_ERR(t, "return v:col(1)", "col needs a matrix");
  RUN_ERR(t, "return keel.vector(-1)", "length must be >= 0");
  RUN_ERR(t, "return keel.vector{1, 'x'}", "keel.vector[2] is not a number");
  RUN_ERR(t, "return keel.matrix{{1, 2}, {3}}", "row 2: expected 2 numbers, got 1");
  RUN_ERR(t, "return v.sum(42)", "keel.view expected, got number");
  RUN_ERR(t, "return keel.matrix(1e12, 1e12)", "1000000000000 x 1000000000000 is too large");
  RUN_ERR(t, "return keel.matrix(100000, 1000)", "not enough memory"); /* 800 MB, over the test state's cap */
  /* the state still works */
  assert_true(num(t, "v[2]") == 2);
  ts_free(t);
}

static void test_view_borrowed(void **state) {
  (void)state;
  tstate *t = ts_new();
  double data[6] = {1, 2, 3, 4, 5, 6};
  unsigned long gen = 7;
  borrow_args bm = {data, 2, 2, 3, 1, &gen, "B"};  /* 2 x 2 with leading dimension 3 */
  borrow(t, &bm);
  borrow_args bv = {data + 3, 1, 3, 3, 0, &gen, "V"};
  borrow(t, &bv);
  assert_true(num(t, "B:get(2, 2)") == 5 && num(t, "B[2][1]") == 4 && num(t, "V[3]") == 6 && num(t, "#V") == 3);
  double x[2];
  vec(t, "B:mean()", x, 2);
  assert_true(x[0] == 2.5 && x[1] == 3.5);
  RUN_ERR(t, "V[1] = 0", "read-only");
  RUN_ERR(t, "B:set(1, 1, 0)", "read-only");
  RUN_ERR(t, "local r = B[1]; r[1] = 0", "read-only");
  RUN_OK(t, "row = B[2]; saved = B:copy(); saved:set(1, 1, -1)");
  assert_true(data[0] == 1); /* the copy is the script's own */
  gen++;                    /* the call that lent the memory returned */
  RUN_ERR(t, "return V[1]", "view used after its call returned");
  RUN_ERR(t, "return #B", "view used after its call returned");
  RUN_ERR(t, "return row[1]", "view used after its call returned");
  RUN_ERR(t, "return B:totable()", "view used after its call returned");
  RUN_ERR(t, "return tostring(V)", "view used after its call returned");
  RUN_ERR(t, "return keel.weights.normalize(V)", "view used after its call returned");
  assert_true(num(t, "saved:get(1, 1)") == -1 && num(t, "saved:get(2, 2)") == 5);
  /* a view borrowed without a generation never goes stale */
  borrow_args bf = {data, 1, 2, 2, 0, NULL, "F"};
  borrow(t, &bf);
  gen++;
  assert_true(num(t, "F[2]") == 2);
  ts_free(t);
}

/* A row view keeps its matrix alive after every other reference is gone
 * (valgrind and ASan check the memory is still valid). */
static void test_view_row_keeps_parent(void **state) {
  (void)state;
  tstate *t = ts_new();
  RUN_OK(t, "local m = keel.matrix{{1, 2, 3}, {4, 5, 6}}; r = m[2]; m = nil; "
            "collectgarbage(); collectgarbage(); local junk = {} for i = 1, 1000 do junk[i] = keel.vector(8) end "
            "collectgarbage()");
  assert_true(num(t, "r[1]") == 4 && num(t, "r[3]") == 6 && num(t, "r:sum()") == 15);
  RUN_OK(t, "r[2] = 50");
  assert_true(num(t, "r[2]") == 50);
  ts_free(t);
}

/* Owned views live in their userdata: counted by the state's allocator and
 * freed with it, after an error too. */
static void test_view_memory(void **state) {
  (void)state;
  tstate *t = ts_new();
  RUN_OK(t, "collectgarbage(); collectgarbage()");
  size_t base = t->bytes;
  RUN_OK(t, "big = keel.matrix(1000, 100)");
  assert_true(t->bytes >= base + 800000);
  RUN_OK(t, "big = nil; collectgarbage(); collectgarbage()");
  assert_true(t->bytes < base + 4096);
  RUN_ERR(t, "local v = keel.vector(200000); local w = v:copy(); error('boom')", "boom");
  RUN_OK(t, "collectgarbage(); collectgarbage()");
  assert_true(t->bytes < base + 4096);
  ts_free(t);
}

static void test_view_read(void **state) {
  (void)state;
  tstate *t = ts_new();
  double x[3];
  vec(t, "{1, 2.5, 3}", x, 3);
  assert_true(x[0] == 1 && x[1] == 2.5 && x[2] == 3);
  vec(t, "keel.vector{4, 5, 6}", x, 3);
  assert_true(x[2] == 6);
  vec(t, "keel.matrix{{1, 2, 3}, {7, 8, 9}}[2]", x, 3);
  assert_true(x[0] == 7);
  /* raw access: metamethods of the table are not used */
  RUN_ERR(t, "keel.weights.blend({1, 2}, setmetatable({}, {__index = function() error('ran') end, "
            "__len = function() return 2 end}), 0.5)",
          "a has 2 weights and b 0");
  RUN_ERR(t, "keel.weights.blend({1, 2}, {1, nil}, 0.5)", "a has 2 weights and b 1");
  RUN_ERR(t, "keel.weights.blend({1, 2}, {1, 2, 3}, 0.5)", "a has 2 weights and b 3");
  RUN_ERR(t, "keel.weights.normalize({1, '2'})", "weights[2] is not a number (got string)");
  RUN_ERR(t, "keel.weights.normalize(keel.matrix(2, 2))", "expected a vector, got a 2 x 2 matrix");
  RUN_ERR(t, "keel.weights.normalize('abc')", "expected a keel.view or an array of numbers, got string");
  ts_free(t);
}

/* ---- estimators against the C functions on the shared stock prices ---- */

typedef struct stocks {
  keel_panel *p;
  size_t T, n;
  double *R; /* T x n simple returns (keel_returns) */
} stocks;

static int load_stocks(stocks *s) {
  const char *path = keel_test_shared_data("stock_prices.csv");
  if (!path) return 0;
  assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &s->p));
  s->T = keel_panel_ndates(s->p) - 1;
  s->n = keel_panel_nassets(s->p);
  s->R = malloc(s->T * s->n * sizeof *s->R);
  assert_ok(CTX, keel_returns(CTX, s->p, 0, 0, KEEL_RETURNS_SIMPLE, keel_mat_view(s->R, s->T, s->n)));
  return 1;
}

static void free_stocks(stocks *s) {
  free(s->R);
  keel_panel_free(s->p);
}

static void test_estimate_returns(void **state) {
  (void)state;
  stocks s;
  if (!load_stocks(&s)) skip();
  tstate *t = ts_new();
  unsigned long gen = 0;
  const size_t nd = keel_panel_ndates(s.p);
  borrow_args b = {keel_panel_prices(s.p), nd, s.n, s.n, 1, &gen, "P"};
  borrow(t, &b);
  RUN_OK(t, "R = keel.estimate.returns(P); L = keel.estimate.returns(P, 'log')");
  assert_true(num(t, "R.rows") == (double)s.T && num(t, "R.cols") == (double)s.n);
  double *got = malloc(s.T * s.n * sizeof *got), *want = malloc(s.T * s.n * sizeof *want);
  mat(t, "R", got, s.T, s.n);
  for (size_t i = 0; i < s.T * s.n; i++)
    if (!(got[i] == s.R[i] || (isnan(got[i]) && isnan(s.R[i])))) fail_msg("return %zu: %g vs %g", i, got[i], s.R[i]);
  assert_ok(CTX, keel_returns(CTX, s.p, 0, 0, KEEL_RETURNS_LOG, keel_mat_view(want, s.T, s.n)));
  mat(t, "L", got, s.T, s.n);
  for (size_t i = 0; i < s.T * s.n; i++)
    if (!(got[i] == want[i] || (isnan(got[i]) && isnan(want[i])))) fail_msg("log return %zu", i);
  /* a vector of one asset's prices */
  RUN_OK(t, "r1 = keel.estimate.returns(keel.vector{100, 110, 99})");
  assert_close(num(t, "r1[1]"), 0.1, 1e-15, 0);
  assert_close(num(t, "r1[2]"), 99.0 / 110 - 1, 1e-15, 0);
  RUN_ERR(t, "keel.estimate.returns(keel.matrix{{1, 2}, {0, 3}})", "price (2, 1) is 0");
  RUN_ERR(t, "keel.estimate.returns(keel.matrix{{1, 2}})", "1 rows of prices give no return");
  RUN_ERR(t, "keel.estimate.returns(P, 'cubic')", "invalid option 'cubic'");
  free(got);
  free(want);
  free_stocks(&s);
  ts_free(t);
}

static void test_estimate_mean_cov(void **state) {
  (void)state;
  stocks s;
  if (!load_stocks(&s)) skip();
  tstate *t = ts_new();
  unsigned long gen = 0;
  borrow_args b = {s.R, s.T, s.n, s.n, 1, &gen, "R"};
  borrow(t, &b);
  const size_t n = s.n;
  keel_cmat Rm = keel_cmat_view(s.R, s.T, n);
  double got[400], want[400];

  static const struct {
    const char *opts;
    keel_mean_kind kind;
    double halflife, ppy;
    keel_missing missing;
  } means[] = {{"nil", KEEL_MEAN_ARITHMETIC, 63, 0, KEEL_MISSING_COMMON},
               {"{method = 'geometric', periods_per_year = 252}", KEEL_MEAN_GEOMETRIC, 63, 252, KEEL_MISSING_COMMON},
               {"{method = 'ewma', halflife = 30}", KEEL_MEAN_EWMA, 30, 0, KEEL_MISSING_COMMON},
               {"{missing = 'pairwise', periods_per_year = 252}", KEEL_MEAN_ARITHMETIC, 63, 252, KEEL_MISSING_PAIRWISE}};
  for (size_t k = 0; k < sizeof means / sizeof means[0]; k++) {
    keel_mean_options o;
    keel_mean_options_default(&o);
    o.kind = means[k].kind, o.halflife = means[k].halflife, o.periods_per_year = means[k].ppy;
    o.missing = means[k].missing;
    assert_ok(CTX, keel_mean(CTX, Rm, &o, want));
    char e[256];
    snprintf(e, sizeof e, "keel.estimate.mean(R, %s)", means[k].opts);
    vec(t, e, got, n);
    assert_vec_close(got, want, n, 1e-12, e);
  }

  static const struct {
    const char *call;
    keel_cov_kind kind;
    double halflife, bench, ppy;
    keel_missing missing;
  } covs[] = {{"keel.estimate.cov(R)", KEEL_COV_SAMPLE, 63, 0, 0, KEEL_MISSING_COMMON},
              {"R:cov('sample', {periods_per_year = 252})", KEEL_COV_SAMPLE, 63, 0, 252, KEEL_MISSING_COMMON},
              {"keel.estimate.cov(R, {method = 'ewma', halflife = 40})", KEEL_COV_EWMA, 40, 0, 0, KEEL_MISSING_COMMON},
              {"R:cov('ledoit_wolf')", KEEL_COV_LW_IDENTITY, 63, 0, 0, KEEL_MISSING_COMMON},
              {"keel.estimate.cov(R, 'ledoit_wolf_cc', {periods_per_year = 12})", KEEL_COV_LW_CONSTCORR, 63, 0, 12,
               KEEL_MISSING_COMMON},
              {"R:cov('semi', {benchmark = 0.0002})", KEEL_COV_SEMI, 63, 0.0002, 0, KEEL_MISSING_COMMON},
              {"keel.estimate.cov(R, {missing = 'pairwise'})", KEEL_COV_SAMPLE, 63, 0, 0, KEEL_MISSING_PAIRWISE}};
  for (size_t k = 0; k < sizeof covs / sizeof covs[0]; k++) {
    keel_cov_options o;
    keel_cov_options_default(&o);
    o.kind = covs[k].kind, o.halflife = covs[k].halflife, o.benchmark = covs[k].bench;
    o.periods_per_year = covs[k].ppy, o.missing = covs[k].missing;
    keel_cov_info info;
    assert_ok(CTX, keel_cov(CTX, Rm, &o, keel_mat_view(want, n, n), &info));
    char e[300];
    snprintf(e, sizeof e, "C = %s; _, INFO = %s", covs[k].call, covs[k].call);
    RUN_OK(t, e);
    mat(t, "C", got, n, n);
    assert_vec_close(got, want, n * n, 1e-12, covs[k].call);
    assert_true(num(t, "INFO.nobs") == (double)info.nobs);
    if (isnan(info.shrinkage))
      assert_true(isnan(num(t, "INFO.shrinkage")));
    else
      assert_close(num(t, "INFO.shrinkage"), info.shrinkage, 1e-12, 0);
  }
  RUN_ERR(t, "keel.estimate.cov(R, {method = 'ewma', missing = 'pairwise'})", "keel.estimate.cov: ");
  RUN_ERR(t, "keel.estimate.cov(R, {method = 'median'})", "unknown method 'median'");
  RUN_ERR(t, "keel.estimate.cov(R, {halflif = 3})", "unknown option 'halflif'");
  RUN_ERR(t, "keel.estimate.cov(R, 'ewma', {method = 'ewma'})", "the method is given twice");
  RUN_ERR(t, "keel.estimate.cov(R, {method = 'ewma', halflife = -1})", "halflife must be > 0");
  RUN_ERR(t, "keel.estimate.mean(R, {periods_per_year = -1})", "periods_per_year must be >= 0");
  RUN_ERR(t, "keel.estimate.mean(keel.matrix{{1, 1/0}})", "return (1, 2) is infinite");

  /* nearest PSD of an indefinite matrix, and the PCA factor model */
  double A[9] = {1, 0.9, 0.7, 0.9, 1, -0.9, 0.7, -0.9, 1};
  setmat(t, "A", A, 3, 3);
  keel_psd_report rep;
  memcpy(want, A, sizeof A);
  assert_ok(CTX, keel_cov_nearest_psd(CTX, keel_mat_view(want, 3, 3), 1e-8, &rep));
  RUN_OK(t, "Q, REP = keel.estimate.nearest_psd(A, 1e-8)");
  mat(t, "Q", got, 3, 3);
  assert_vec_close(got, want, 9, 1e-12, "nearest_psd");
  assert_true(num(t, "REP.nclipped") == (double)rep.nclipped && rep.nclipped >= 1);
  assert_close(num(t, "REP.min_eigenvalue"), rep.min_eigenvalue, 1e-12, 0);
  assert_close(num(t, "REP.change"), rep.change, 1e-12, 0);
  assert_true(num(t, "A:get(2, 3)") == -0.9); /* the argument is left alone */
  RUN_ERR(t, "keel.estimate.nearest_psd(keel.matrix(2, 3))", "needs a square matrix");

  double B[60], F[9], d[20];
  keel_pca_info pi;
  assert_ok(CTX, keel_factor_pca(CTX, Rm, 3, 252, keel_mat_view(B, n, 3), keel_mat_view(F, 3, 3), d, &pi));
  RUN_OK(t, "FM = keel.estimate.factor_pca(R, 3, 252)");
  mat(t, "FM.B", got, n, 3);
  assert_vec_close(got, B, n * 3, 1e-12, "pca B");
  mat(t, "FM.F", got, 3, 3);
  assert_vec_close(got, F, 9, 1e-12, "pca F");
  vec(t, "FM.d", got, n);
  assert_vec_close(got, d, n, 1e-12, "pca d");
  assert_close(num(t, "FM.explained"), pi.explained, 1e-12, 0);
  free_stocks(&s);
  ts_free(t);
}

/* ---- the optimiser against keel_mv_optimize ---- */

typedef struct mvcase {
  const char *lua;     /* the call, giving a result table */
  keel_objective obj;
  double target;       /* target return / vol / gamma */
  const char *setup;   /* how the C spec is set up (a tag) */
} mvcase;

static void test_optimize_against_c(void **state) {
  (void)state;
  double *mu = NULL, *S = NULL;
  size_t n = keel_test_stock_moments(&mu, &S);
  if (!n) skip();
  assert_true(n == 20);
  tstate *t = ts_new();
  setmat(t, "MU", mu, 0, n);
  setmat(t, "S", S, n, n);
  double w0[20], ub[20], lb[20], cb[20], cs[20];
  for (size_t i = 0; i < n; i++) {
    w0[i] = 1.0 / (double)n;
    ub[i] = i % 2 ? 0.25 : 0.15;
    lb[i] = i < 3 ? 0.01 : 0;
    cb[i] = 0.001 * (double)(1 + i % 3);
    cs[i] = 0.002;
  }
  setmat(t, "W0", w0, 0, n);
  setmat(t, "UB", ub, 0, n);
  setmat(t, "LB", lb, 0, n);
  setmat(t, "CB", cb, 0, n);
  size_t g1[3] = {0, 1, 2}, g2[2] = {18, 19};
  keel_group groups[2] = {{"1", g1, 3, 0.1, 0.3}, {"tech", g2, 2, -INFINITY, 0.05}};
  RUN_OK(t, "G = {{assets = {1, 2, 3}, min = 0.1, max = 0.3}, {assets = {19, 20}, max = 0.05, name = 'tech'}}");

  for (int c = 0; c < 11; c++) {
    keel_mv_spec sp;
    keel_mv_spec_default(&sp);
    const char *call = NULL;
    switch (c) {
      case 0: call = "keel.optimize.min_variance(S)"; break;
      case 1:
        call = "keel.optimize.min_variance(S, {max_weight = 0.1})";
        for (size_t i = 0; i < n; i++) ub[i] = 0.1;
        sp.ub = ub;
        break;
      case 2:
        call = "keel.optimize.target_return(MU, S, 0.25, {max_weight = UB, min_weight = LB, groups = G})";
        for (size_t i = 0; i < n; i++) ub[i] = i % 2 ? 0.25 : 0.15;
        sp.objective = KEEL_OBJ_TARGET_RETURN, sp.target_return = 0.25, sp.lb = lb, sp.ub = ub;
        sp.groups = groups, sp.ngroups = 2;
        break;
      case 3:
        call = "keel.optimize.target_vol(MU, S, 0.2, {current = W0, cost_buy = CB, cost_sell = 0.002, turnover = 0.8})";
        sp.objective = KEEL_OBJ_TARGET_VOL, sp.target_vol = 0.2, sp.w0 = w0, sp.cost_buy = cb, sp.cost_sell = cs;
        sp.turnover_cap = 0.8;
        break;
      case 4:
        call = "keel.optimize.max_sharpe(MU, S, {risk_free = 0.02, max_weight = 0.3})";
        sp.objective = KEEL_OBJ_MAX_SHARPE, sp.risk_free = 0.02;
        for (size_t i = 0; i < n; i++) ub[i] = 0.3;
        sp.ub = ub;
        break;
      case 5:
        call = "keel.optimize.utility(MU, S, 4, {allow_cash = true, risk_free = 0.03})";
        sp.objective = KEEL_OBJ_UTILITY, sp.gamma = 4, sp.cash = 1, sp.risk_free = 0.03;
        break;
      case 6:
        call = "keel.optimize.utility(MU, S, 2, {long_only = false, min_weight = -0.2, max_weight = 0.5})";
        sp.objective = KEEL_OBJ_UTILITY, sp.gamma = 2;
        for (size_t i = 0; i < n; i++) lb[i] = -0.2, ub[i] = 0.5;
        sp.lb = lb, sp.ub = ub;
        break;
      case 7:
        call = "keel.optimize.min_variance(S, {long_only = false})";
        for (size_t i = 0; i < n; i++) lb[i] = -INFINITY, ub[i] = INFINITY;
        sp.lb = lb, sp.ub = ub;
        break;
      case 8:
        call = "keel.optimize.utility(MU, S, 3, {current = W0, turnover = 0.3, qp = {max_iter = 200, eps_abs = 1e-10}})";
        sp.objective = KEEL_OBJ_UTILITY, sp.gamma = 3, sp.w0 = w0, sp.turnover_cap = 0.3;
        sp.qp.max_iter = 200, sp.qp.eps_abs = 1e-10;
        break;
      case 9:
        call = "keel.optimize.target_return(MU, S, 0.2, {allow_cash = true, psd = 'repair', cond_warn = 1e3})";
        sp.objective = KEEL_OBJ_TARGET_RETURN, sp.target_return = 0.2, sp.cash = 1, sp.psd = KEEL_PSD_REPAIR;
        sp.cond_warn = 1e3;
        break;
      case 10:
        call = "keel.optimize.utility(MU, S, 5, {current = W0, cost_buy = 0.01, cost_sell = 0.01})";
        sp.objective = KEEL_OBJ_UTILITY, sp.gamma = 5, sp.w0 = w0;
        for (size_t i = 0; i < n; i++) cb[i] = 0.01, cs[i] = 0.01;
        sp.cost_buy = cb, sp.cost_sell = cs;
        break;
    }
    double w[20], got[20];
    keel_mv_result r;
    assert_ok(CTX, keel_mv_optimize(CTX, n, sp.objective == KEEL_OBJ_MIN_VARIANCE ? NULL : mu,
                                    keel_cmat_view(S, n, n), NULL, &sp, w, &r));
    memset(&t->rec, 0, sizeof t->rec);
    char code[512];
    snprintf(code, sizeof code, "RES = %s", call);
    RUN_OK(t, code);
    vec(t, "RES.weights", got, n);
    assert_vec_close(got, w, n, 1e-12, call);
    assert_close(num(t, "RES.ret"), r.ret, 1e-12, 1e-15);
    assert_close(num(t, "RES.vol"), r.vol, 1e-12, 0);
    assert_close(num(t, "RES.cost"), r.cost, 1e-12, 1e-15);
    assert_close(num(t, "RES.turnover"), r.turnover, 1e-12, 1e-15);
    assert_close(num(t, "RES.cash"), r.cash, 1e-12, 1e-15);
    assert_true(num(t, "RES.iterations") == r.qp_iterations);
    assert_string_equal(str(t, "RES.status"), keel_qp_status_name(r.qp_status));
    /* the audit trail */
    assert_int_equal(t->rec.used, 1);
    assert_int_equal(t->rec.iterations, r.qp_iterations);
    assert_int_equal(t->rec.solves, r.solves);
    assert_close(t->rec.objective_vol, r.vol, 1e-12, 0);
    assert_close(t->rec.res_prim, r.res_prim, 1e-12, 1e-300);
    /* constraints hold */
    double sum = 0, to = 0;
    for (size_t i = 0; i < n; i++) sum += got[i], to += fabs(got[i] - w0[i]);
    if (c == 1) for (size_t i = 0; i < n; i++) assert_true(got[i] <= 0.1 + 1e-9 && got[i] >= -1e-9);
    if (c == 2) {
      double a = got[0] + got[1] + got[2], b = got[18] + got[19], ret = 0;
      for (size_t i = 0; i < n; i++) ret += mu[i] * got[i];
      assert_true(a >= 0.1 - 1e-9 && a <= 0.3 + 1e-9 && b <= 0.05 + 1e-9);
      assert_close(ret, 0.25, 1e-8, 1e-9);
      for (size_t i = 0; i < n; i++) assert_true(got[i] >= lb[i] - 1e-9 && got[i] <= ub[i] + 1e-9);
    }
    if (c == 3 || c == 8) assert_true(to <= (c == 3 ? 0.8 : 0.3) + 1e-9);
    if (c == 5 || c == 9) assert_true(sum <= 1 + 1e-9);
    else assert_close(sum, 1, 0, 1e-9);
    if (c == 6) {
      int shorts = 0;
      for (size_t i = 0; i < n; i++) shorts += got[i] < -1e-6, assert_true(got[i] >= -0.2 - 1e-9);
      assert_true(shorts > 0);
    }
  }
  /* the audit trail adds the solves of calls made since it was cleared */
  memset(&t->rec, 0, sizeof t->rec);
  RUN_OK(t, "a = keel.optimize.min_variance(S); b = keel.optimize.max_sharpe(MU, S)");
  assert_true(t->rec.solves == num(t, "a.solves") + num(t, "b.solves"));
  assert_close(t->rec.objective_ret, num(t, "b.ret"), 0, 0);

  /* the frontier, risk parity and a factor model */
  double fr[5], fv[5], W[100], got[100];
  keel_mv_spec sp;
  keel_mv_spec_default(&sp);
  for (size_t i = 0; i < n; i++) ub[i] = 0.4;
  sp.ub = ub;
  assert_ok(CTX, keel_mv_frontier(CTX, n, mu, keel_cmat_view(S, n, n), NULL, &sp, 5, fr, fv, keel_mat_view(W, 5, n)));
  RUN_OK(t, "FR = keel.optimize.frontier(MU, S, 5, {max_weight = 0.4})");
  vec(t, "FR.ret", got, 5);
  assert_vec_close(got, fr, 5, 1e-12, "frontier ret");
  vec(t, "FR.vol", got, 5);
  assert_vec_close(got, fv, 5, 1e-12, "frontier vol");
  mat(t, "FR.weights", got, 5, n);
  assert_vec_close(got, W, 5 * n, 1e-12, "frontier weights");

  double rp[20];
  assert_ok(CTX, keel_risk_parity(CTX, n, keel_cmat_view(S, n, n), rp));
  vec(t, "keel.optimize.risk_parity(S).weights", got, n);
  assert_vec_close(got, rp, n, 1e-12, "risk_parity");

  double B[40], F[4] = {0.04, 0.01, 0.01, 0.02}, d[20];
  for (size_t i = 0; i < n; i++) B[2 * i] = 1, B[2 * i + 1] = (double)i / (double)n - 0.5, d[i] = 0.01 + 0.001 * (double)i;
  keel_factor_model fm = {2, keel_cmat_view(B, n, 2), keel_cmat_view(F, 2, 2), d};
  keel_mv_spec_default(&sp);
  sp.objective = KEEL_OBJ_UTILITY, sp.gamma = 3;
  double w[20];
  keel_cmat none = {NULL, 0, 0, 0};
  assert_ok(CTX, keel_mv_optimize(CTX, n, mu, none, &fm, &sp, w, NULL));
  setmat(t, "FB", B, n, 2);
  setmat(t, "FF", F, 2, 2);
  setmat(t, "FD", d, 0, n);
  vec(t, "keel.optimize.utility(MU, nil, 3, {factor = {B = FB, F = FF, d = FD}}).weights", got, n);
  assert_vec_close(got, w, n, 1e-12, "factor model");
  free(mu);
  free(S);
  ts_free(t);
}

static void test_optimize_errors(void **state) {
  (void)state;
  tstate *t = ts_new();
  RUN_OK(t, "S = keel.matrix{{0.04, 0.01}, {0.01, 0.09}}; MU = {0.1, 0.15}");
  RUN_ERR(t, "keel.optimize.target_return(MU, S, 0.5)", "keel.optimize.target_return: infeasible");
  RUN_ERR(t, "keel.optimize.min_variance(S, {max_weight = 0.4})", "keel.optimize.min_variance: ");
  RUN_ERR(t, "keel.optimize.min_variance(keel.matrix{{1, 2}, {2, 1}})", "not positive semidefinite");
  RUN_OK(t, "R = keel.optimize.min_variance(keel.matrix{{1, 2}, {2, 1}}, {psd = 'repair'})");
  assert_true(str(t, "R.psd_repaired")[0] == 't');
  RUN_ERR(t, "keel.optimize.max_sharpe({0.1, 0/0}, S)", "mu[2] is not finite");
  RUN_ERR(t, "keel.optimize.max_sharpe({0.1}, S)", "mu: expected 2 numbers, got 1");
  RUN_ERR(t, "keel.optimize.min_variance(keel.matrix{{1, 0/0}, {0/0, 1}})", "cov(1, 2) is not finite");
  RUN_ERR(t, "keel.optimize.min_variance(keel.matrix(2, 3))", "the covariance must be square (got 2 x 3)");
  RUN_ERR(t, "keel.optimize.min_variance(S, {lon_only = true})", "unknown option 'lon_only'");
  RUN_ERR(t, "keel.optimize.min_variance(S, {long_only = 1})", "option long_only must be a boolean");
  RUN_ERR(t, "keel.optimize.min_variance(S, {min_weight = -0.1})", "with long_only");
  RUN_ERR(t, "keel.optimize.min_variance(S, {min_weight = 0.6, max_weight = 0.5})", "the bounds of asset 1");
  RUN_ERR(t, "keel.optimize.utility(MU, S, 1, {cost_buy = 0.01})", "give current");
  RUN_ERR(t, "keel.optimize.utility(MU, S, 1, {current = {0.5, 0.5}, cost_sell = -1})", "cost_sell[1] must be finite and >= 0");
  RUN_ERR(t, "keel.optimize.utility(MU, S, 1, {turnover = 0.1})", "a turnover cap needs current weights");
  RUN_ERR(t, "keel.optimize.utility(MU, S, -1)", "risk aversion gamma must be > 0");
  RUN_ERR(t, "keel.optimize.target_vol(MU, S, 0)", "the target volatility must be > 0");
  RUN_ERR(t, "keel.optimize.min_variance(S, {groups = {{assets = {3}, max = 0.5}}})", "assets[1] must be an asset number in 1..2");
  RUN_ERR(t, "keel.optimize.min_variance(S, {groups = {{assets = {1}, min = 0.7, max = 0.5}}})", "do not make a range");
  RUN_ERR(t, "keel.optimize.min_variance(S, {groups = {{assets = {1}, mx = 0.5}}})", "unknown option 'mx'");
  RUN_ERR(t, "keel.optimize.min_variance(S, {psd = 'fix'})", "unknown psd 'fix'");
  RUN_ERR(t, "keel.optimize.max_sharpe(MU, S, {allow_cash = true})", "max_sharpe is fully invested");
  RUN_ERR(t, "keel.optimize.min_variance(nil)", "no covariance");
  RUN_ERR(t, "keel.optimize.frontier(MU, S, 1)", "points must be in 2..1000");
  RUN_ERR(t, "keel.optimize.risk_parity(keel.matrix{{1, 2}, {2, 1}})", "not positive definite");
  RUN_ERR(t, "keel.optimize.min_variance(S, {qp = {max_iter = 0}})", "qp.max_iter must be an integer in 1..10000");
  RUN_ERR(t, "keel.optimize.frontier(MU, S, 1001)", "points must be in 2..1000");
  /* a failed call leaves no record */
  memset(&t->rec, 0, sizeof t->rec);
  RUN_ERR(t, "keel.optimize.target_return(MU, S, 0.5)", "infeasible");
  assert_int_equal(t->rec.used, 0);
  /* the groups' bounds hold on a small case by hand: w1 <= 0.5 moves weight to asset 2 */
  RUN_OK(t, "G = keel.optimize.min_variance(S, {groups = {{assets = {1}, max = 0.5}}})");
  assert_close(num(t, "G.weights[1]"), 0.5, 0, 1e-8);
  ts_free(t);
}

/* ---- policy helpers against the C functions ---- */

static void test_policy(void **state) {
  (void)state;
  tstate *t = ts_new();
  double w[4] = {0.30, 0.45, 0.15, 0.05}, tg[4] = {0.25, 0.40, 0.25, 0.10}, got[4], want[4];
  setmat(t, "W", w, 0, 4);
  setmat(t, "T", tg, 0, 4);
  static const struct {
    const char *lua;
    keel_band b;
  } bands[] = {{"{abs = 0.05}", {KEEL_BAND_ABSOLUTE, 0.05, 0, KEEL_BAND_TO_TARGET, 0}},
               {"{abs = 0.04, action = 'edge'}", {KEEL_BAND_ABSOLUTE, 0.04, 0, KEEL_BAND_TO_EDGE, 0}},
               {"{rel = 0.25, action = 'inner', inner = 0.5}", {KEEL_BAND_RELATIVE, 0, 0.25, KEEL_BAND_TO_INNER, 0.5}},
               {"{abs = 0.05, rel = 0.25, action = 'edge'}", {KEEL_BAND_COMBINED, 0.05, 0.25, KEEL_BAND_TO_EDGE, 0}},
               {"{kind = 'none'}", {KEEL_BAND_NONE, 0, 0, KEEL_BAND_TO_TARGET, 0}}};
  for (size_t k = 0; k < sizeof bands / sizeof bands[0]; k++) {
    char e[200];
    size_t i = keel_band_breached(&bands[k].b, 4, w, tg);
    snprintf(e, sizeof e, "keel.policy.band_breached(W, T, %s) or 0", bands[k].lua);
    assert_true(num(t, e) == (i < 4 ? (double)i + 1 : 0));
    keel_band_adjust(&bands[k].b, 4, w, tg, want);
    snprintf(e, sizeof e, "keel.policy.band_adjust(W, T, %s)", bands[k].lua);
    vec(t, e, got, 4);
    assert_vec_close(got, want, 4, 1e-15, e);
  }
  assert_true(num(t, "keel.policy.band_breached(W, T, {abs = 0.2}) or 0") == 0);
  RUN_ERR(t, "keel.policy.band_breached(W, T, {})", "needs abs, rel or a kind");
  RUN_ERR(t, "keel.policy.band_breached(W, T, {abs = -1})", "abs must be a number >= 0");
  RUN_ERR(t, "keel.policy.band_adjust(W, {0.5, 0.5}, {abs = 0.1})", "targets: expected 4 numbers, got 2");
  RUN_ERR(t, "keel.policy.band_adjust(W, {0.5, 0.5, -0.1, 0}, {abs = 0.1})", "targets[3] must be finite and >= 0");

  /* vol targeting over LCG returns */
  uint32_t seed = 11;
  double R[60 * 4];
  for (size_t i = 0; i < 60 * 4; i++) R[i] = 0.02 * keel_test_lcg(&seed);
  R[7] = NAN;
  setmat(t, "RET", R, 60, 4);
  keel_voltarget v = {0.1, KEEL_VOL_ROLLING, 60, 21, 1.5, INFINITY};
  double scale, sigma;
  assert_ok(CTX, keel_voltarget_scale(CTX, &v, 4, tg, R, 60, 252, &scale, &sigma));
  RUN_OK(t, "K, SG = keel.policy.vol_scale(T, RET, {target = 0.1, leverage_cap = 1.5})");
  assert_close(num(t, "K"), scale, 1e-14, 0);
  assert_close(num(t, "SG"), sigma, 1e-14, 0);
  v.estimator = KEEL_VOL_EWMA, v.halflife = 10, v.leverage_cap = 1;
  assert_ok(CTX, keel_voltarget_scale(CTX, &v, 4, tg, R, 60, 12, &scale, &sigma));
  RUN_OK(t, "K, SG = keel.policy.vol_scale(T, RET, {target = 0.1, estimator = 'ewma', halflife = 10, periods_per_year = 12})");
  assert_close(num(t, "K"), scale, 1e-14, 0);
  assert_close(num(t, "SG"), sigma, 1e-14, 0);
  RUN_ERR(t, "keel.policy.vol_scale(T, RET, {})", "target must be a volatility > 0");
  RUN_ERR(t, "keel.policy.vol_scale(T, keel.matrix(1, 4), {target = 0.1})", "at least 2 are needed");

  /* cash flows */
  double x[4] = {30000, 45000, 15000, 5000};
  assert_ok(CTX, keel_cashflow_allocate(CTX, 4, x, tg, 8000, want));
  setmat(t, "X", x, 0, 4);
  vec(t, "keel.policy.cashflow(X, T, 8000)", got, 4);
  assert_vec_close(got, want, 4, 1e-14, "cashflow in");
  assert_ok(CTX, keel_cashflow_allocate(CTX, 4, x, tg, -12000, want));
  vec(t, "keel.policy.cashflow(X, T, -12000)", got, 4);
  assert_vec_close(got, want, 4, 1e-14, "cashflow out");
  RUN_ERR(t, "keel.policy.cashflow(X, T, -1e9)", "keel.policy.cashflow: ");
  RUN_ERR(t, "keel.policy.cashflow(X, T, 0/0)", "amount must be finite");
  ts_free(t);
}

/* ---- weight utilities against hand-computed values ---- */

static void test_weights(void **state) {
  (void)state;
  tstate *t = ts_new();
  double got[4];
  vec(t, "keel.weights.normalize{1, 1, 2}", got, 3);
  assert_true(got[0] == 0.25 && got[1] == 0.25 && got[2] == 0.5);
  vec(t, "keel.weights.clip({0.5, -0.1, 0.6, 0.2}, 0, 0.4)", got, 4);
  assert_true(got[0] == 0.4 && got[1] == 0 && got[2] == 0.4 && got[3] == 0.2);
  vec(t, "keel.weights.clip({0.5, 0.5}, {0, 0.6}, {0.3, 1})", got, 2);
  assert_true(got[0] == 0.3 && got[1] == 0.6);
  vec(t, "keel.weights.blend({1, 0}, keel.vector{0, 1}, 0.25)", got, 2);
  assert_true(got[0] == 0.75 && got[1] == 0.25);
  /* the excess 0.1 over the cap goes 3:2 to the others */
  vec(t, "keel.weights.cap({0.5, 0.3, 0.2}, 0.4)", got, 3);
  assert_close(got[0], 0.4, 0, 1e-15);
  assert_close(got[1], 0.36, 0, 1e-15);
  assert_close(got[2], 0.24, 0, 1e-15);
  /* spreading pushes the second over too: 0.6, 0.3, 0.1 -> 0.35, 0.4875, 0.1625 -> 0.35, 0.35, 0.3 */
  vec(t, "keel.weights.cap({0.6, 0.3, 0.1}, 0.35)", got, 3);
  assert_close(got[0], 0.35, 0, 1e-15);
  assert_close(got[1], 0.35, 0, 1e-15);
  assert_close(got[2], 0.3, 0, 1e-15);
  /* a sum below one is kept (the rest is cash) */
  vec(t, "keel.weights.cap({0.7, 0.1, 0}, 0.5)", got, 3);
  assert_close(got[0], 0.5, 0, 1e-15);
  assert_close(got[1], 0.3, 0, 1e-15);
  assert_close(got[2], 0, 0, 1e-15);
  RUN_ERR(t, "keel.weights.normalize{0, 0}", "a positive sum is needed");
  RUN_ERR(t, "keel.weights.normalize{1, 0/0}", "weights[2] is not finite");
  RUN_ERR(t, "keel.weights.clip({1}, 0.5, 0.2)", "the range of asset 1 is");
  RUN_ERR(t, "keel.weights.blend({1}, {0}, 1.5)", "t must be in [0, 1]");
  RUN_ERR(t, "keel.weights.cap({0.5, 0.5}, 0.4)", "cannot all be <= 0.4");
  RUN_ERR(t, "keel.weights.cap({0.5, -0.1}, 0.8)", "weight 2 is negative");
  ts_free(t);
}

/* A state without a host gets a clear error, not a crash. */
static void test_no_host(void **state) {
  (void)state;
  lua_State *L = luaL_newstate();
  lua_pushcfunction(L, open_all);
  assert_int_equal(lua_pcall(L, 0, 0, 0), LUA_OK);
  assert_true(luaL_dostring(L, "keel.optimize.min_variance(keel.matrix{{1}})") != LUA_OK);
  assert_non_null(strstr(lua_tostring(L, -1), "this Lua state has no keel host"));
  lua_close(L);
}

/* ---- keel.so in the lua5.4 interpreter ---- */

/* Runs the end-to-end script with lua5.4 and reads its "name value" lines. */
typedef struct e2e_out {
  char names[64][48];
  double values[64];
  int n;
} e2e_out;

static double e2e_get(const e2e_out *o, const char *name) {
  for (int i = 0; i < o->n; i++)
    if (strcmp(o->names[i], name) == 0) return o->values[i];
  fail_msg("the script printed no %s", name);
  return NAN;
}

static void test_lua54_end_to_end(void **state) {
  (void)state;
  const char *prices = keel_test_shared_data("stock_prices.csv");
  if (!prices) skip();
  if (!KEEL_LUA54[0]) fail_msg("lua5.4 was not found when keel was configured (apt-get install lua5.4)");
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "LUA_CPATH='%s/?.so' LUA_PATH='' %s %s '%s' '%s' 2>&1", KEEL_LUA_MODULE_DIR, KEEL_LUA54_ENV,
           KEEL_LUA54, keel_test_source_path("tests/lua/e2e.lua"), prices);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  e2e_out o = {.n = 0};
  char line[1024], all[8192] = "";
  while (fgets(line, sizeof line, f)) {
    strncat(all, line, sizeof all - strlen(all) - 1);
    char name[48];
    double v;
    if (o.n < 64 && sscanf(line, "%47s %lf", name, &v) == 2) {
      snprintf(o.names[o.n], sizeof o.names[o.n], "%s", name);
      o.values[o.n++] = v;
    }
  }
  int rc = pclose(f);
  if (rc != 0) fail_msg("lua5.4 failed (%d):\n%s", rc, all);

  /* the same in C */
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_read_csv(CTX, prices, NULL, &p));
  const size_t nd = keel_panel_ndates(p), n = keel_panel_nassets(p), T = 500;
  assert_true(n <= 20 && nd > T + 1);
  assert_true(e2e_get(&o, "ndates") == (double)nd && e2e_get(&o, "nassets") == (double)n);
  double *R = malloc((nd - 1) * n * sizeof *R);
  assert_ok(CTX, keel_returns(CTX, p, 0, 0, KEEL_RETURNS_SIMPLE, keel_mat_view(R, nd - 1, n)));
  keel_cmat last = keel_cmat_view(R + (nd - 1 - T) * n, T, n);
  double mu[20], S[400], w[20];
  keel_mean_options mo;
  keel_mean_options_default(&mo);
  mo.periods_per_year = 252;
  assert_ok(CTX, keel_mean(CTX, last, &mo, mu));
  keel_cov_options co;
  keel_cov_options_default(&co);
  co.kind = KEEL_COV_LW_IDENTITY, co.periods_per_year = 252;
  assert_ok(CTX, keel_cov(CTX, last, &co, keel_mat_view(S, n, n), NULL));
  keel_mv_spec sp;
  keel_mv_spec_default(&sp);
  double ub[20];
  for (size_t i = 0; i < n; i++) ub[i] = 0.2;
  sp.objective = KEEL_OBJ_MAX_SHARPE, sp.ub = ub, sp.risk_free = 0.01;
  keel_mv_result res;
  assert_ok(CTX, keel_mv_optimize(CTX, n, mu, keel_cmat_view(S, n, n), NULL, &sp, w, &res));
  for (size_t i = 0; i < n; i++) {
    char nm[32];
    snprintf(nm, sizeof nm, "w%zu", i + 1);
    assert_close(e2e_get(&o, nm), w[i], 1e-12, 1e-15);
  }
  assert_close(e2e_get(&o, "sharpe"), res.sharpe, 1e-12, 0);
  assert_close(e2e_get(&o, "mu1"), mu[0], 1e-12, 0);
  assert_close(e2e_get(&o, "s12"), S[1], 1e-12, 0);

  /* the backtest of the optimised basket, as `keel backtest` would run it */
  keel_backtest_config cfg;
  keel_backtest_config_default(&cfg);
  double bw[20];
  for (size_t i = 0; i < n; i++) bw[i] = w[i] < 1e-9 ? 0 : w[i];
  /* the script rounds tiny weights to zero the same way and renormalises */
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += bw[i];
  for (size_t i = 0; i < n; i++) bw[i] /= sum;
  cfg.weights = bw, cfg.nweights = n, cfg.rebalance = KEEL_CAL_QUARTERLY, cfg.cost_bps = 10, cfg.capital = 50000;
  cfg.start = nd - 1 - T;
  keel_backtest_result *r = NULL;
  assert_ok(CTX, keel_backtest_run(CTX, p, &cfg, &r));
  const keel_metrics *m = keel_backtest_metrics(r);
  for (size_t k = 0; k < KEEL_METRICS_COUNT; k++) {
    const char *name = keel_metrics_name(k);
    if (strncmp(name, "dd_", 3) == 0) continue;
    char nm[64];
    snprintf(nm, sizeof nm, "m_%s", name);
    double v = keel_metrics_value(m, k);
    if (isnan(v)) continue;
    assert_close(e2e_get(&o, nm), v, 1e-12, 1e-15);
  }
  assert_close(e2e_get(&o, "final"), keel_backtest_values(r)[keel_backtest_npoints(r) - 1], 1e-12, 0);
  assert_true(e2e_get(&o, "ntrades") == (double)keel_backtest_ntrades(r));
  assert_true(e2e_get(&o, "npoints") == (double)keel_backtest_npoints(r));
  /* the built-in min_variance strategy over the whole history */
  assert_true(e2e_get(&o, "mv_nopt") > 0);
  assert_true(e2e_get(&o, "errors_ok") == 1);
  keel_backtest_result_free(r);
  free(R);
  keel_panel_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_view_owned),
      cmocka_unit_test(test_view_errors),
      cmocka_unit_test(test_view_borrowed),
      cmocka_unit_test(test_view_row_keeps_parent),
      cmocka_unit_test(test_view_memory),
      cmocka_unit_test(test_view_read),
      cmocka_unit_test(test_estimate_returns),
      cmocka_unit_test(test_estimate_mean_cov),
      cmocka_unit_test(test_optimize_against_c),
      cmocka_unit_test(test_optimize_errors),
      cmocka_unit_test(test_policy),
      cmocka_unit_test(test_weights),
      cmocka_unit_test(test_no_host),
      cmocka_unit_test(test_lua54_end_to_end),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
