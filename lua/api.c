/* keel — the keel module table for Lua (docs/lua.md): constructors of
 * views, estimators, the mean-variance optimiser, policy helpers and weight
 * utilities. Shared by the sandbox and the loadable module (bindings/lua).
 *
 * Every binding is thin: it checks its arguments (types, shapes, NaN,
 * signs) and raises a Lua error naming the function before any keel call,
 * calls the C counterpart with the state's keel_ctx (keeli_host_get), and
 * raises "keel.<area>.<name>: <keel_errmsg>" when that fails. Scratch
 * arrays are Lua userdata left on the stack until the function returns, so
 * an error anywhere frees them with the rest of the state's garbage; keel
 * calls free their own blocks before they return. Options tables are read
 * with raw access and unknown options are refused (a misspelt option is
 * an error, not a silent default). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "keel/estimate.h"
#include "keel/mv.h"
#include "keel/policy.h"
#include "keel/strategy.h"
#include "core/internal.h"
#include "keel/version.h"
#include "lua/internal.h"

/* Bounds on work done in C where the instruction budget cannot see it. */
#define KEELI_FRONTIER_MAX 1000 /* frontier points (one QP solve each) */
#define KEELI_QP_MAX_ITER 10000 /* solver iterations per solve */

/* ---- the host ---- */

keeli_host *keeli_host_get(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, KEELI_HOST_KEY);
  keeli_host *h = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!h || !h->ctx) luaL_error(L, "keel: this Lua state has no keel host");
  return h;
}

/* Raises "who: <the context's message>". */
static int raise_keel(lua_State *L, keeli_host *h, const char *who) {
  return luaL_error(L, "%s: %s", who, keel_errmsg(h->ctx));
}

/* ---- scratch memory and arguments ---- */

/* A scratch block of n doubles (at least one), left on the stack. */
static double *scratch(lua_State *L, size_t n) {
  if (n > (SIZE_MAX / sizeof(double)) - 1) luaL_error(L, "keel: %I elements is too many", (LUAI_UACINT)n);
  luaL_checkstack(L, 2, "keel: scratch");
  return lua_newuserdatauv(L, (n ? n : 1) * sizeof(double), 0);
}

/* n numbers from a vector view or an array at idx into a scratch block. */
static double *arg_vec(lua_State *L, int idx, size_t n, const char *what) {
  idx = lua_absindex(L, idx);
  double *x = scratch(L, n);
  keeli_view_read(L, idx, n, x, what);
  return x;
}

/* (x - x is 0 for a finite x and NaN otherwise: the scans below have no
 * branch per element, and look for the culprit only when there is one) */
static void check_finite(lua_State *L, const double *x, size_t n, const char *what) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) bad |= !(x[i] - x[i] == 0);
  if (!bad) return;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) luaL_error(L, "%s[%I] is not finite (%f)", what, (LUAI_UACINT)(i + 1), x[i]);
}

static void check_nonneg(lua_State *L, const double *x, size_t n, const char *what) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) bad |= !(x[i] >= 0) | !(x[i] - x[i] == 0);
  if (!bad) return;
  for (size_t i = 0; i < n; i++)
    if (!(x[i] >= 0) || !isfinite(x[i]))
      luaL_error(L, "%s[%I] must be finite and >= 0 (it is %f)", what, (LUAI_UACINT)(i + 1), x[i]);
}

/* The length of the vector view or array at idx. */
static size_t vec_len(lua_State *L, int idx, const char *what) {
  if (lua_type(L, idx) == LUA_TTABLE) return (size_t)lua_rawlen(L, idx);
  if (keeli_view_test(L, idx)) {
    const keeli_view *v = keeli_view_check(L, idx);
    if (v->matrix)
      luaL_error(L, "%s: expected a vector, got a %I x %I matrix", what, (LUAI_UACINT)v->rows, (LUAI_UACINT)v->cols);
    return v->cols;
  }
  return (size_t)luaL_error(L, "%s: expected a keel.view or an array of numbers, got %s", what, luaL_typename(L, idx));
}

/* The matrix at idx: a matrix view, or an array of rows (each an array or
 * a vector view, all of one length), which is replaced at idx by an owned
 * copy so it stays anchored. */
static keel_cmat arg_mat(lua_State *L, int idx, const char *what) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TTABLE) {
    const size_t rows = (size_t)lua_rawlen(L, idx);
    if (rows == 0) luaL_error(L, "%s: an empty table is not a matrix", what);
    luaL_checkstack(L, 3, what);
    lua_rawgeti(L, idx, 1);
    const size_t cols = vec_len(L, -1, what);
    lua_pop(L, 1);
    keeli_view *m = keeli_view_new(L, rows, cols, 1);
    char rowwhat[96];
    for (size_t i = 0; i < rows; i++) {
      lua_rawgeti(L, idx, (lua_Integer)i + 1);
      snprintf(rowwhat, sizeof rowwhat, "%s row %zu", what, i + 1);
      keeli_view_read(L, -1, cols, m->data + i * m->ld, rowwhat);
      lua_pop(L, 1);
    }
    lua_replace(L, idx);
    keel_cmat c = {m->data, m->rows, m->cols, m->ld};
    return c;
  }
  if (!keeli_view_test(L, idx))
    luaL_error(L, "%s: expected a matrix (keel.view or a table of rows), got %s", what, luaL_typename(L, idx));
  const keeli_view *v = keeli_view_check(L, idx);
  if (!v->matrix) luaL_error(L, "%s: expected a matrix, got a vector of %I", what, (LUAI_UACINT)v->cols);
  keel_cmat c = {v->data, v->rows, v->cols, v->ld};
  return c;
}

static void check_mat_finite(lua_State *L, keel_cmat m, const char *what) {
  for (size_t i = 0; i < m.rows; i++)
    for (size_t j = 0; j < m.cols; j++)
      if (!isfinite(m.data[i * m.ld + j]))
        luaL_error(L, "%s(%I, %I) is not finite (%f)", what, (LUAI_UACINT)(i + 1), (LUAI_UACINT)(j + 1),
                   m.data[i * m.ld + j]);
}

/* A new owned vector view holding x (n). */
static keeli_view *push_vec(lua_State *L, const double *x, size_t n) {
  keeli_view *v = keeli_view_new(L, 1, n, 0);
  if (n) memcpy(v->data, x, n * sizeof(double));
  return v;
}

/* ---- options tables ---- */

/* Checks that the value at opts (0: none) is nil or a table whose keys are
 * all names in `known` (NULL-terminated). */
static void opts_check(lua_State *L, int opts, const char *who, const char *const *known) {
  if (opts == 0 || lua_isnoneornil(L, opts)) return;
  if (lua_type(L, opts) != LUA_TTABLE) luaL_error(L, "%s: options must be a table, got %s", who, luaL_typename(L, opts));
  opts = lua_absindex(L, opts);
  luaL_checkstack(L, 3, who);
  lua_pushnil(L);
  while (lua_next(L, opts)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      for (size_t i = 0; known[i] && !ok; i++) ok = strcmp(k, known[i]) == 0;
      if (!ok) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t i = 0; known[i]; i++) {
          if (i) luaL_addstring(&b, ", ");
          luaL_addstring(&b, known[i]);
        }
        luaL_pushresult(&b);
        luaL_error(L, "%s: unknown option '%s' (options: %s)", who, k, lua_tostring(L, -1));
      }
    } else {
      luaL_error(L, "%s: option keys must be names, got a %s key", who, luaL_typename(L, -1));
    }
  }
}

/* Pushes opts[name] (raw; nil when there are no options); returns its type. */
static int opt_push(lua_State *L, int opts, const char *name) {
  luaL_checkstack(L, 2, name);
  if (opts == 0 || lua_type(L, opts) != LUA_TTABLE) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  opts = lua_absindex(L, opts);
  lua_pushstring(L, name);
  return lua_rawget(L, opts);
}

static double opt_number(lua_State *L, int opts, const char *name, double def, const char *who) {
  const int t = opt_push(L, opts, name);
  double x = def;
  if (t == LUA_TNUMBER)
    x = lua_tonumber(L, -1);
  else if (t != LUA_TNIL)
    luaL_error(L, "%s: option %s must be a number, got %s", who, name, lua_typename(L, t));
  lua_pop(L, 1);
  return x;
}

static int opt_bool(lua_State *L, int opts, const char *name, int def, const char *who) {
  const int t = opt_push(L, opts, name);
  int x = def;
  if (t == LUA_TBOOLEAN)
    x = lua_toboolean(L, -1);
  else if (t != LUA_TNIL)
    luaL_error(L, "%s: option %s must be a boolean, got %s", who, name, lua_typename(L, t));
  lua_pop(L, 1);
  return x;
}

/* The index of opts[name] among names (NULL-terminated), def when absent. */
static int opt_enum(lua_State *L, int opts, const char *name, const char *const *names, int def, const char *who) {
  const int t = opt_push(L, opts, name);
  int x = def;
  if (t == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    x = -1;
    for (int i = 0; names[i] && x < 0; i++)
      if (strcmp(s, names[i]) == 0) x = i;
    if (x < 0) luaL_error(L, "%s: unknown %s '%s'", who, name, s);
  } else if (t != LUA_TNIL) {
    luaL_error(L, "%s: option %s must be a string, got %s", who, name, lua_typename(L, t));
  }
  lua_pop(L, 1);
  return x;
}

/* opts[name] as n numbers: a number (for every asset) or a vector; NULL
 * when absent. The block stays on the stack. */
static double *opt_vec(lua_State *L, int opts, const char *name, size_t n, const char *who) {
  opts = opts ? lua_absindex(L, opts) : 0;
  const int t = opt_push(L, opts, name);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  char what[96];
  snprintf(what, sizeof what, "%s: %s", who, name);
  double *x = scratch(L, n);
  if (t == LUA_TNUMBER) {
    const double v = lua_tonumber(L, -2);
    for (size_t i = 0; i < n; i++) x[i] = v;
  } else {
    keeli_view_read(L, -2, n, x, what);
  }
  lua_remove(L, -2);
  return x;
}

/* ---- keel.vector, keel.matrix ---- */

static int l_vector(lua_State *L) {
  if (lua_type(L, 1) == LUA_TNUMBER) {
    const lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 0) return luaL_error(L, "keel.vector: length must be >= 0 (it is %I)", (LUAI_UACINT)n);
    keeli_view_new(L, 1, (size_t)n, 0);
    return 1;
  }
  const size_t n = vec_len(L, 1, "keel.vector");
  keeli_view *v = keeli_view_new(L, 1, n, 0);
  keeli_view_read(L, 1, n, v->data, "keel.vector");
  return 1;
}

static int l_matrix(lua_State *L) {
  if (lua_type(L, 1) == LUA_TNUMBER) {
    const lua_Integer r = luaL_checkinteger(L, 1), c = luaL_checkinteger(L, 2);
    if (r < 0 || c < 0)
      return luaL_error(L, "keel.matrix: size must be >= 0 (it is %I x %I)", (LUAI_UACINT)r, (LUAI_UACINT)c);
    keeli_view_new(L, (size_t)r, (size_t)c, 1);
    return 1;
  }
  lua_settop(L, 1);
  const int given_view = keeli_view_test(L, 1) != NULL;
  keel_cmat m = arg_mat(L, 1, "keel.matrix"); /* a table is replaced by an owned copy */
  if (given_view) {
    keeli_view *c = keeli_view_new(L, m.rows, m.cols, 1);
    for (size_t i = 0; i < m.rows; i++)
      if (m.cols) memcpy(c->data + i * c->ld, m.data + i * m.ld, m.cols * sizeof(double));
  }
  return 1;
}

/* ---- keel.estimate ---- */

static const char *const COV_METHODS[] = {"sample", "ewma", "ledoit_wolf", "ledoit_wolf_cc", "semi", NULL};
static const char *const MEAN_METHODS[] = {"arithmetic", "geometric", "ewma", NULL};
static const char *const MISSING[] = {"common", "pairwise", NULL};

/* keel.estimate.returns(prices [, "simple"|"log"]): a T x n prices matrix
 * (or a vector of one asset's prices) -> (T-1) x n returns, each against
 * the asset's last price (keel_returns' rule: a return after a gap spans
 * it; NaN where either end has no price). */
static int l_returns(lua_State *L) {
  static const char *const kinds[] = {"simple", "log", NULL};
  const char *who = "keel.estimate.returns";
  const int kind = luaL_checkoption(L, 2, "simple", kinds);
  int vector = 0;
  keel_cmat p;
  if (keeli_view_test(L, 1) && !keeli_view_check(L, 1)->matrix) {
    const keeli_view *v = keeli_view_check(L, 1);
    p.data = v->data, p.rows = v->cols, p.cols = 1, p.ld = 1;
    vector = 1;
  } else {
    p = arg_mat(L, 1, who);
  }
  if (p.rows < 2) return luaL_error(L, "%s: %I rows of prices give no return", who, (LUAI_UACINT)p.rows);
  for (size_t i = 0; i < p.rows; i++)
    for (size_t j = 0; j < p.cols; j++) {
      const double x = p.data[i * p.ld + j];
      if (!isnan(x) && !(x > 0 && x < INFINITY))
        return luaL_error(L, "%s: price (%I, %I) is %f (prices are > 0, or NaN for none)", who, (LUAI_UACINT)(i + 1),
                          (LUAI_UACINT)(j + 1), x);
    }
  keeli_view *out = vector ? keeli_view_new(L, 1, p.rows - 1, 0) : keeli_view_new(L, p.rows - 1, p.cols, 1);
  const size_t old = vector ? 1 : out->ld;
  for (size_t j = 0; j < p.cols; j++) {
    double prev = p.data[j];
    for (size_t i = 1; i < p.rows; i++) {
      const double x = p.data[i * p.ld + j];
      double r = NAN;
      if (!isnan(x) && !isnan(prev)) r = kind == 1 ? log(x / prev) : x / prev - 1;
      out->data[(i - 1) * old + j] = r;
      if (!isnan(x)) prev = x;
    }
  }
  return 1;
}

static void check_returns_matrix(lua_State *L, keel_cmat r, const char *who) {
  if (r.rows == 0 || r.cols == 0) luaL_error(L, "%s: the returns matrix is empty", who);
  for (size_t i = 0; i < r.rows; i++)
    for (size_t j = 0; j < r.cols; j++)
      if (isinf(r.data[i * r.ld + j]))
        luaL_error(L, "%s: return (%I, %I) is infinite", who, (LUAI_UACINT)(i + 1), (LUAI_UACINT)(j + 1));
}

static void check_halflife(lua_State *L, double hl, const char *who) {
  if (!(hl > 0 && hl < INFINITY)) luaL_error(L, "%s: halflife must be > 0 (it is %f)", who, hl);
}

static void check_ppy(lua_State *L, double ppy, const char *who) {
  if (!(ppy >= 0 && ppy < INFINITY)) luaL_error(L, "%s: periods_per_year must be >= 0 (it is %f)", who, ppy);
}

/* keel.estimate.mean(returns [, {method=, halflife=, periods_per_year=, missing=}]) */
static int l_mean(lua_State *L) {
  static const char *const known[] = {"method", "halflife", "periods_per_year", "missing", NULL};
  const char *who = "keel.estimate.mean";
  lua_settop(L, 2);
  keeli_host *h = keeli_host_get(L);
  keel_cmat r = arg_mat(L, 1, who);
  check_returns_matrix(L, r, who);
  opts_check(L, 2, who, known);
  keel_mean_options o;
  keel_mean_options_default(&o);
  o.kind = (keel_mean_kind)opt_enum(L, 2, "method", MEAN_METHODS, KEEL_MEAN_ARITHMETIC, who);
  o.halflife = opt_number(L, 2, "halflife", 63, who);
  o.periods_per_year = opt_number(L, 2, "periods_per_year", 0, who);
  o.missing = (keel_missing)opt_enum(L, 2, "missing", MISSING, KEEL_MISSING_COMMON, who);
  if (o.kind == KEEL_MEAN_EWMA) check_halflife(L, o.halflife, who);
  check_ppy(L, o.periods_per_year, who);
  keeli_view *mu = keeli_view_new(L, 1, r.cols, 0);
  if (keel_mean(h->ctx, r, &o, mu->data) != KEEL_OK) return raise_keel(L, h, who);
  return 1;
}

int keeli_push_cov(lua_State *L, int idx, const char *method, int opts) {
  static const char *const known[] = {"method", "halflife", "periods_per_year", "benchmark", "missing", NULL};
  const char *who = "keel.estimate.cov";
  idx = lua_absindex(L, idx);
  if (opts) opts = lua_absindex(L, opts);
  keeli_host *h = keeli_host_get(L);
  keel_cmat r = arg_mat(L, idx, who);
  check_returns_matrix(L, r, who);
  opts_check(L, opts, who, known);
  keel_cov_options o;
  keel_cov_options_default(&o);
  if (method) {
    int k = -1;
    for (int i = 0; COV_METHODS[i] && k < 0; i++)
      if (strcmp(method, COV_METHODS[i]) == 0) k = i;
    if (k < 0) return luaL_error(L, "%s: unknown method '%s'", who, method);
    o.kind = (keel_cov_kind)k;
    if (opt_push(L, opts, "method") != LUA_TNIL) luaL_error(L, "%s: the method is given twice", who);
    lua_pop(L, 1);
  } else {
    o.kind = (keel_cov_kind)opt_enum(L, opts, "method", COV_METHODS, KEEL_COV_SAMPLE, who);
  }
  o.halflife = opt_number(L, opts, "halflife", 63, who);
  o.benchmark = opt_number(L, opts, "benchmark", 0, who);
  o.periods_per_year = opt_number(L, opts, "periods_per_year", 0, who);
  o.missing = (keel_missing)opt_enum(L, opts, "missing", MISSING, KEEL_MISSING_COMMON, who);
  if (o.kind == KEEL_COV_EWMA) check_halflife(L, o.halflife, who);
  if (!isfinite(o.benchmark)) luaL_error(L, "%s: benchmark must be finite", who);
  check_ppy(L, o.periods_per_year, who);
  keeli_view *c = keeli_view_new(L, r.cols, r.cols, 1);
  keel_mat cm = {c->data, c->rows, c->cols, c->ld};
  keel_cov_info info;
  if (keel_cov(h->ctx, r, &o, cm, &info) != KEEL_OK) return raise_keel(L, h, who);
  lua_createtable(L, 0, 2);
  lua_pushnumber(L, info.shrinkage);
  lua_setfield(L, -2, "shrinkage");
  lua_pushinteger(L, (lua_Integer)info.nobs);
  lua_setfield(L, -2, "nobs");
  return 2;
}

/* keel.estimate.cov(returns [, opts]) or (returns, method [, opts]) */
static int l_cov(lua_State *L) {
  lua_settop(L, 3);
  if (lua_type(L, 2) == LUA_TSTRING) return keeli_push_cov(L, 1, lua_tostring(L, 2), lua_isnil(L, 3) ? 0 : 3);
  if (!lua_isnil(L, 3)) return luaL_error(L, "keel.estimate.cov: (returns [, opts]) or (returns, method [, opts])");
  return keeli_push_cov(L, 1, NULL, lua_isnil(L, 2) ? 0 : 2);
}

/* keel.estimate.nearest_psd(cov [, floor]): a repaired copy and a report. */
static int l_nearest_psd(lua_State *L) {
  const char *who = "keel.estimate.nearest_psd";
  lua_settop(L, 2);
  keeli_host *h = keeli_host_get(L);
  keel_cmat a = arg_mat(L, 1, who);
  const double floor = luaL_optnumber(L, 2, 0);
  if (a.rows != a.cols || a.rows == 0)
    return luaL_error(L, "%s: needs a square matrix (got %I x %I)", who, (LUAI_UACINT)a.rows, (LUAI_UACINT)a.cols);
  if (!(floor >= 0 && floor < 1)) return luaL_error(L, "%s: floor must be in [0, 1) (it is %f)", who, floor);
  check_mat_finite(L, a, who);
  keeli_view *c = keeli_view_new(L, a.rows, a.cols, 1);
  for (size_t i = 0; i < a.rows; i++) memcpy(c->data + i * c->ld, a.data + i * a.ld, a.cols * sizeof(double));
  keel_mat cm = {c->data, c->rows, c->cols, c->ld};
  keel_psd_report rep;
  if (keel_cov_nearest_psd(h->ctx, cm, floor, &rep) != KEEL_OK) return raise_keel(L, h, who);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)rep.nclipped);
  lua_setfield(L, -2, "nclipped");
  lua_pushnumber(L, rep.min_eigenvalue);
  lua_setfield(L, -2, "min_eigenvalue");
  lua_pushnumber(L, rep.max_eigenvalue);
  lua_setfield(L, -2, "max_eigenvalue");
  lua_pushnumber(L, rep.condition);
  lua_setfield(L, -2, "condition");
  lua_pushnumber(L, rep.change);
  lua_setfield(L, -2, "change");
  return 2;
}

/* keel.estimate.factor_pca(returns, k [, periods_per_year]) ->
 * {B =, F =, d =, explained =, nobs =}, usable as opts.factor. */
static int l_factor_pca(lua_State *L) {
  const char *who = "keel.estimate.factor_pca";
  lua_settop(L, 3);
  keeli_host *h = keeli_host_get(L);
  keel_cmat r = arg_mat(L, 1, who);
  check_returns_matrix(L, r, who);
  const lua_Integer k = luaL_checkinteger(L, 2);
  const double ppy = luaL_optnumber(L, 3, 0);
  check_ppy(L, ppy, who);
  if (k < 1 || (lua_Unsigned)k > r.cols)
    return luaL_error(L, "%s: k must be in 1..%I (it is %I)", who, (LUAI_UACINT)r.cols, (LUAI_UACINT)k);
  lua_createtable(L, 0, 5);
  keeli_view *B = keeli_view_new(L, r.cols, (size_t)k, 1);
  lua_setfield(L, -2, "B");
  keeli_view *F = keeli_view_new(L, (size_t)k, (size_t)k, 1);
  lua_setfield(L, -2, "F");
  keeli_view *d = keeli_view_new(L, 1, r.cols, 0);
  lua_setfield(L, -2, "d");
  keel_mat Bm = {B->data, B->rows, B->cols, B->ld}, Fm = {F->data, F->rows, F->cols, F->ld};
  keel_pca_info info;
  if (keel_factor_pca(h->ctx, r, (size_t)k, ppy, Bm, Fm, d->data, &info) != KEEL_OK) return raise_keel(L, h, who);
  lua_pushnumber(L, info.explained);
  lua_setfield(L, -2, "explained");
  lua_pushinteger(L, (lua_Integer)info.nobs);
  lua_setfield(L, -2, "nobs");
  return 1;
}

/* ---- keel.optimize ---- */

static const char *const MV_OPTIONS[] = {"long_only", "min_weight", "max_weight", "groups",   "current",
                                         "cost_buy",  "cost_sell",  "turnover",   "risk_free", "allow_cash",
                                         "psd",       "factor",     "cond_warn",  "qp",        NULL};

/* Everything a keel_mv_spec points to, kept on the Lua stack. */
typedef struct mv_args {
  size_t n;
  const double *mu;
  keel_cmat cov;
  keel_factor_model fm;
  int has_fm;
  keel_mv_spec spec;
} mv_args;

static void read_factor(lua_State *L, int opts, mv_args *a, const char *who) {
  static const char *const known[] = {"B", "F", "d", "explained", "nobs", NULL};
  if (opt_push(L, opts, "factor") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  const int f = lua_gettop(L);
  char what[96];
  snprintf(what, sizeof what, "%s: factor", who);
  if (lua_type(L, f) != LUA_TTABLE) luaL_error(L, "%s must be a table {B =, F =, d =}", what);
  opts_check(L, f, what, known);
  lua_pushliteral(L, "B");
  lua_rawget(L, f);
  snprintf(what, sizeof what, "%s: factor.B", who);
  keel_cmat B = arg_mat(L, -1, what);
  lua_pushliteral(L, "F");
  lua_rawget(L, f);
  snprintf(what, sizeof what, "%s: factor.F", who);
  keel_cmat F = arg_mat(L, -1, what);
  check_mat_finite(L, B, "factor.B");
  check_mat_finite(L, F, "factor.F");
  if (F.rows != B.cols || F.cols != B.cols)
    luaL_error(L, "%s: factor.F must be %I x %I (B has %I factors), got %I x %I", who, (LUAI_UACINT)B.cols,
               (LUAI_UACINT)B.cols, (LUAI_UACINT)B.cols, (LUAI_UACINT)F.rows, (LUAI_UACINT)F.cols);
  if (B.cols == 0 || B.cols > 256) luaL_error(L, "%s: a factor model has 1..256 factors (got %I)", who, (LUAI_UACINT)B.cols);
  if (a->n && B.rows != a->n)
    luaL_error(L, "%s: factor.B has %I rows for %I assets", who, (LUAI_UACINT)B.rows, (LUAI_UACINT)a->n);
  a->n = B.rows;
  lua_pushliteral(L, "d");
  lua_rawget(L, f);
  double *d = arg_vec(L, -1, a->n, "factor.d");
  check_nonneg(L, d, a->n, "factor.d");
  a->fm.k = B.cols;
  a->fm.B = B;
  a->fm.F = F;
  a->fm.d = d;
  a->has_fm = 1;
}

/* Reads the groups option: {{assets = {1, 2}, min =, max =, name =}, ...}.
 * Everything read stays on the stack (anchored) until the call returns. */
static void read_groups(lua_State *L, int opts, mv_args *a, const char *who) {
  static const char *const known[] = {"assets", "min", "max", "name", NULL};
  if (opt_push(L, opts, "groups") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  const int gi = lua_gettop(L);
  if (lua_type(L, gi) != LUA_TTABLE) luaL_error(L, "%s: groups must be an array of tables", who);
  const size_t ng = (size_t)lua_rawlen(L, gi);
  if (ng == 0) return;
  if (ng > 4096) luaL_error(L, "%s: %I groups is too many", who, (LUAI_UACINT)ng);
  keel_group *gs = (keel_group *)(void *)scratch(L, (ng * sizeof(keel_group) + sizeof(double) - 1) / sizeof(double));
  char *names = (char *)scratch(L, ng * 4); /* 32 bytes per generated name */
  for (size_t g = 0; g < ng; g++) {
    char what[96];
    snprintf(what, sizeof what, "%s: groups[%zu]", who, g + 1);
    luaL_checkstack(L, 8, what);
    if (lua_rawgeti(L, gi, (lua_Integer)g + 1) != LUA_TTABLE) luaL_error(L, "%s must be a table", what);
    const int t = lua_gettop(L);
    opts_check(L, t, what, known);
    keel_group *gr = &gs[g];
    gr->lo = opt_number(L, t, "min", -INFINITY, what);
    gr->hi = opt_number(L, t, "max", INFINITY, what);
    if (isnan(gr->lo) || isnan(gr->hi) || gr->lo > gr->hi)
      luaL_error(L, "%s: min %f and max %f do not make a range", what, gr->lo, gr->hi);
    const int nt = opt_push(L, t, "name");
    if (nt == LUA_TSTRING) {
      gr->name = lua_tostring(L, -1); /* anchored: the string stays on the stack */
    } else {
      if (nt != LUA_TNIL) luaL_error(L, "%s: name must be a string", what);
      snprintf(names + 32 * g, 32, "%zu", g + 1);
      gr->name = names + 32 * g;
    }
    if (opt_push(L, t, "assets") != LUA_TTABLE) luaL_error(L, "%s: assets must be an array of asset numbers", what);
    const int ai = lua_gettop(L);
    const size_t cnt = (size_t)lua_rawlen(L, ai);
    if (cnt == 0) luaL_error(L, "%s: assets is empty", what);
    if (cnt > a->n) luaL_error(L, "%s: %I assets listed, there are %I", what, (LUAI_UACINT)cnt, (LUAI_UACINT)a->n);
    size_t *as = (size_t *)(void *)scratch(L, (cnt * sizeof(size_t) + sizeof(double) - 1) / sizeof(double));
    for (size_t j = 0; j < cnt; j++) {
      int isint = 0;
      lua_rawgeti(L, ai, (lua_Integer)j + 1);
      const lua_Integer k = lua_tointegerx(L, -1, &isint);
      if (!isint || k < 1 || (lua_Unsigned)k > a->n)
        luaL_error(L, "%s: assets[%I] must be an asset number in 1..%I", what, (LUAI_UACINT)(j + 1), (LUAI_UACINT)a->n);
      lua_pop(L, 1);
      as[j] = (size_t)k - 1;
    }
    gr->assets = as;
    gr->count = cnt;
  }
  a->spec.groups = gs;
  a->spec.ngroups = ng;
}

/* Fills a->spec from the options at opts; a->n must be known. */
static void read_mv_opts(lua_State *L, int opts, mv_args *a, const char *who) {
  static const char *const psd_names[] = {"reject", "repair", NULL};
  const size_t n = a->n;
  keel_mv_spec *s = &a->spec;
  const int long_only = opt_bool(L, opts, "long_only", 1, who);
  double *lb = opt_vec(L, opts, "min_weight", n, who);
  double *ub = opt_vec(L, opts, "max_weight", n, who);
  if (!long_only || lb || ub) {
    if (!lb) {
      lb = scratch(L, n);
      for (size_t i = 0; i < n; i++) lb[i] = long_only ? 0 : -INFINITY;
    }
    if (!ub) {
      ub = scratch(L, n);
      for (size_t i = 0; i < n; i++) ub[i] = long_only ? 1 : INFINITY;
    }
    for (size_t i = 0; i < n; i++) {
      if (isnan(lb[i]) || isnan(ub[i]) || lb[i] > ub[i] || lb[i] == INFINITY || ub[i] == -INFINITY)
        luaL_error(L, "%s: the bounds of asset %I are [%f, %f]", who, (LUAI_UACINT)(i + 1), lb[i], ub[i]);
      if (long_only && lb[i] < 0)
        luaL_error(L, "%s: min_weight of asset %I is %f with long_only (set long_only = false to short)", who,
                   (LUAI_UACINT)(i + 1), lb[i]);
    }
    s->lb = lb;
    s->ub = ub;
  }
  read_groups(L, opts, a, who);
  double *w0 = opt_vec(L, opts, "current", n, who);
  if (w0) check_finite(L, w0, n, "current");
  s->w0 = w0;
  double *cb = opt_vec(L, opts, "cost_buy", n, who), *cs = opt_vec(L, opts, "cost_sell", n, who);
  if (cb) check_nonneg(L, cb, n, "cost_buy");
  if (cs) check_nonneg(L, cs, n, "cost_sell");
  if ((cb || cs) && !w0) luaL_error(L, "%s: cost_buy and cost_sell are charged on trades from current weights (give current)", who);
  s->cost_buy = cb;
  s->cost_sell = cs;
  s->turnover_cap = opt_number(L, opts, "turnover", INFINITY, who);
  if (!(s->turnover_cap >= 0)) luaL_error(L, "%s: turnover must be >= 0 (it is %f)", who, s->turnover_cap);
  if (s->turnover_cap < INFINITY && !w0) luaL_error(L, "%s: a turnover cap needs current weights (give current)", who);
  s->risk_free = opt_number(L, opts, "risk_free", 0, who);
  if (!isfinite(s->risk_free)) luaL_error(L, "%s: risk_free must be finite", who);
  s->cash = opt_bool(L, opts, "allow_cash", 0, who);
  s->psd = (keel_psd_policy)opt_enum(L, opts, "psd", psd_names, KEEL_PSD_REJECT, who);
  s->cond_warn = opt_number(L, opts, "cond_warn", s->cond_warn, who);
  if (!(s->cond_warn > 0)) luaL_error(L, "%s: cond_warn must be > 0", who);
  if (opt_push(L, opts, "qp") != LUA_TNIL) {
    static const char *const known[] = {"eps_abs", "eps_rel", "eps_gap", "eps_infeas", "max_iter", "polish", NULL};
    const int q = lua_gettop(L);
    char what[96];
    snprintf(what, sizeof what, "%s: qp", who);
    if (lua_type(L, q) != LUA_TTABLE) luaL_error(L, "%s must be a table", what);
    opts_check(L, q, what, known);
    double *eps[4] = {&s->qp.eps_abs, &s->qp.eps_rel, &s->qp.eps_gap, &s->qp.eps_infeas};
    for (int k = 0; k < 4; k++) {
      *eps[k] = opt_number(L, q, known[k], *eps[k], what);
      if (!(*eps[k] > 0 && *eps[k] < 1)) luaL_error(L, "%s.%s must be in (0, 1)", what, known[k]);
    }
    const double mi = opt_number(L, q, "max_iter", s->qp.max_iter, what);
    if (!(mi >= 1 && mi <= KEELI_QP_MAX_ITER) || mi != floor(mi))
      luaL_error(L, "%s.max_iter must be an integer in 1..%d", what, KEELI_QP_MAX_ITER);
    s->qp.max_iter = (int)mi;
    s->qp.polish = opt_bool(L, q, "polish", s->qp.polish, what);
  }
  lua_pop(L, 1);
}

/* Reads (mu, cov) at imu (0: none) and icov, and the options at iopts. */
static void read_problem(lua_State *L, int imu, int icov, int iopts, mv_args *a, const char *who) {
  memset(a, 0, sizeof *a);
  keel_mv_spec_default(&a->spec);
  opts_check(L, iopts, who, MV_OPTIONS);
  char what[96];
  if (!lua_isnil(L, icov)) {
    snprintf(what, sizeof what, "%s: cov", who);
    a->cov = arg_mat(L, icov, what);
    if (a->cov.rows != a->cov.cols || a->cov.rows == 0)
      luaL_error(L, "%s: the covariance must be square (got %I x %I)", who, (LUAI_UACINT)a->cov.rows,
                 (LUAI_UACINT)a->cov.cols);
    check_mat_finite(L, a->cov, "cov");
    a->n = a->cov.rows;
  }
  read_factor(L, iopts, a, who);
  if (a->has_fm && a->cov.data) luaL_error(L, "%s: give a covariance or opts.factor, not both", who);
  if (!a->has_fm && !a->cov.data) luaL_error(L, "%s: no covariance (give a matrix, or opts.factor)", who);
  if (imu) {
    snprintf(what, sizeof what, "%s: mu", who);
    double *mu = arg_vec(L, imu, a->n, what);
    check_finite(L, mu, a->n, "mu");
    a->mu = mu;
  }
  read_mv_opts(L, iopts, a, who);
}

/* The result table of one optimisation; records it in the host's trail. */
static void push_result(lua_State *L, keeli_host *h, const double *w, size_t n, const keel_mv_result *r) {
  lua_createtable(L, 0, 20);
  push_vec(L, w, n);
  lua_setfield(L, -2, "weights");
  const struct {
    const char *k;
    double v;
  } nums[] = {{"ret", r->ret},
              {"vol", r->vol},
              {"sharpe", r->sharpe},
              {"turnover", r->turnover},
              {"cost", r->cost},
              {"cash", r->cash},
              {"condition", r->condition},
              {"min_eigenvalue", r->min_eigenvalue},
              {"psd_change", r->psd_change},
              {"budget_price", r->budget_price},
              {"res_prim", r->res_prim},
              {"res_dual", r->res_dual}};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    lua_pushnumber(L, nums[i].v);
    lua_setfield(L, -2, nums[i].k);
  }
  lua_pushstring(L, keel_qp_status_name(r->qp_status));
  lua_setfield(L, -2, "status");
  lua_pushinteger(L, r->qp_iterations);
  lua_setfield(L, -2, "iterations");
  lua_pushinteger(L, r->solves);
  lua_setfield(L, -2, "solves");
  lua_pushboolean(L, r->polished);
  lua_setfield(L, -2, "polished");
  lua_pushboolean(L, r->ill_conditioned);
  lua_setfield(L, -2, "ill_conditioned");
  lua_pushboolean(L, r->psd_repaired);
  lua_setfield(L, -2, "psd_repaired");
  if (h->opt) keeli_opt_record_fill(h->opt, r, (h->opt->used ? h->opt->solves : 0) + r->solves);
}

static int run_mv(lua_State *L, const char *who, keel_objective obj, int imu, int icov, int itarget, int iopts) {
  keeli_host *h = keeli_host_get(L);
  mv_args a;
  read_problem(L, imu, icov, iopts, &a, who);
  a.spec.objective = obj;
  if (obj == KEEL_OBJ_TARGET_RETURN) {
    a.spec.target_return = luaL_checknumber(L, itarget);
    if (!isfinite(a.spec.target_return)) return luaL_error(L, "%s: the target return must be finite", who);
  } else if (obj == KEEL_OBJ_TARGET_VOL) {
    a.spec.target_vol = luaL_checknumber(L, itarget);
    if (!(a.spec.target_vol > 0 && a.spec.target_vol < INFINITY))
      return luaL_error(L, "%s: the target volatility must be > 0 (it is %f)", who, a.spec.target_vol);
  } else if (obj == KEEL_OBJ_UTILITY) {
    a.spec.gamma = luaL_checknumber(L, itarget);
    if (!(a.spec.gamma > 0 && a.spec.gamma < INFINITY))
      return luaL_error(L, "%s: risk aversion gamma must be > 0 (it is %f)", who, a.spec.gamma);
  }
  double *w = scratch(L, a.n);
  keel_mv_result r;
  if (keel_mv_optimize(h->ctx, a.n, a.mu, a.cov, a.has_fm ? &a.fm : NULL, &a.spec, w, &r) != KEEL_OK)
    return raise_keel(L, h, who);
  push_result(L, h, w, a.n, &r);
  return 1;
}

/* The arguments are settop'd so optional ones are nil, not none. */
static int l_min_variance(lua_State *L) {
  lua_settop(L, 2);
  return run_mv(L, "keel.optimize.min_variance", KEEL_OBJ_MIN_VARIANCE, 0, 1, 0, 2);
}
static int l_target_return(lua_State *L) {
  lua_settop(L, 4);
  return run_mv(L, "keel.optimize.target_return", KEEL_OBJ_TARGET_RETURN, 1, 2, 3, 4);
}
static int l_target_vol(lua_State *L) {
  lua_settop(L, 4);
  return run_mv(L, "keel.optimize.target_vol", KEEL_OBJ_TARGET_VOL, 1, 2, 3, 4);
}
static int l_max_sharpe(lua_State *L) {
  lua_settop(L, 3);
  return run_mv(L, "keel.optimize.max_sharpe", KEEL_OBJ_MAX_SHARPE, 1, 2, 0, 3);
}
static int l_utility(lua_State *L) {
  lua_settop(L, 4);
  return run_mv(L, "keel.optimize.utility", KEEL_OBJ_UTILITY, 1, 2, 3, 4);
}

/* keel.optimize.frontier(mu, cov, points, opts) -> {ret =, vol =, weights = points x n} */
static int l_frontier(lua_State *L) {
  const char *who = "keel.optimize.frontier";
  lua_settop(L, 4);
  keeli_host *h = keeli_host_get(L);
  mv_args a;
  read_problem(L, 1, 2, 4, &a, who);
  const lua_Integer np = luaL_checkinteger(L, 3);
  /* each point is a QP solve in C, out of the instruction budget's sight */
  if (np < 2 || np > KEELI_FRONTIER_MAX)
    return luaL_error(L, "%s: points must be in 2..%d (it is %I)", who, KEELI_FRONTIER_MAX, (LUAI_UACINT)np);
  lua_createtable(L, 0, 3);
  keeli_view *ret = keeli_view_new(L, 1, (size_t)np, 0);
  lua_setfield(L, -2, "ret");
  keeli_view *vol = keeli_view_new(L, 1, (size_t)np, 0);
  lua_setfield(L, -2, "vol");
  keeli_view *W = keeli_view_new(L, (size_t)np, a.n, 1);
  lua_setfield(L, -2, "weights");
  keel_mat Wm = {W->data, W->rows, W->cols, W->ld};
  if (keel_mv_frontier(h->ctx, a.n, a.mu, a.cov, a.has_fm ? &a.fm : NULL, &a.spec, (size_t)np, ret->data, vol->data,
                       Wm) != KEEL_OK)
    return raise_keel(L, h, who);
  return 1;
}

/* keel.optimize.risk_parity(cov) -> {weights =, vol =, status = "optimal"} */
static int l_risk_parity(lua_State *L) {
  const char *who = "keel.optimize.risk_parity";
  lua_settop(L, 1);
  keeli_host *h = keeli_host_get(L);
  keel_cmat S = arg_mat(L, 1, who);
  if (S.rows != S.cols || S.rows == 0)
    return luaL_error(L, "%s: the covariance must be square (got %I x %I)", who, (LUAI_UACINT)S.rows,
                      (LUAI_UACINT)S.cols);
  check_mat_finite(L, S, "cov");
  lua_createtable(L, 0, 3);
  keeli_view *w = keeli_view_new(L, 1, S.rows, 0);
  lua_setfield(L, -2, "weights");
  if (keel_risk_parity(h->ctx, S.rows, S, w->data) != KEEL_OK) return raise_keel(L, h, who);
  double q = 0;
  for (size_t i = 0; i < S.rows; i++)
    for (size_t j = 0; j < S.rows; j++) q += w->data[i] * S.data[i * S.ld + j] * w->data[j];
  lua_pushnumber(L, sqrt(q));
  lua_setfield(L, -2, "vol");
  lua_pushliteral(L, "optimal");
  lua_setfield(L, -2, "status");
  return 1;
}

/* ---- keel.policy ---- */

/* A band table {kind =, abs =, rel =, action =, inner =}; kind defaults to
 * what the widths given make: both "combined", abs "absolute", rel
 * "relative". */
static void read_band(lua_State *L, int idx, keel_band *b, const char *who) {
  static const char *const known[] = {"kind", "abs", "rel", "action", "inner", NULL};
  static const char *const kinds[] = {"none", "absolute", "relative", "combined", NULL};
  static const char *const actions[] = {"target", "edge", "inner", NULL};
  if (lua_type(L, idx) != LUA_TTABLE) luaL_error(L, "%s: band must be a table {abs =, rel =, ...}", who);
  idx = lua_absindex(L, idx);
  opts_check(L, idx, who, known);
  memset(b, 0, sizeof *b);
  b->abs = opt_number(L, idx, "abs", NAN, who);
  b->rel = opt_number(L, idx, "rel", NAN, who);
  const int has_abs = !isnan(b->abs), has_rel = !isnan(b->rel);
  const int def = has_abs && has_rel ? KEEL_BAND_COMBINED : has_abs ? KEEL_BAND_ABSOLUTE : has_rel ? KEEL_BAND_RELATIVE : -1;
  const int kind = opt_enum(L, idx, "kind", kinds, def, who);
  if (kind < 0) luaL_error(L, "%s: the band needs abs, rel or a kind", who);
  b->kind = (keel_band_kind)kind;
  if ((b->kind == KEEL_BAND_ABSOLUTE || b->kind == KEEL_BAND_COMBINED) && !(has_abs && b->abs >= 0 && b->abs < INFINITY))
    luaL_error(L, "%s: the band's abs must be a number >= 0", who);
  if ((b->kind == KEEL_BAND_RELATIVE || b->kind == KEEL_BAND_COMBINED) && !(has_rel && b->rel >= 0 && b->rel < INFINITY))
    luaL_error(L, "%s: the band's rel must be a number >= 0", who);
  if (!has_abs) b->abs = 0;
  if (!has_rel) b->rel = 0;
  b->action = (keel_band_action)opt_enum(L, idx, "action", actions, KEEL_BAND_TO_TARGET, who);
  b->inner = opt_number(L, idx, "inner", 0, who);
  if (!(b->inner >= 0 && b->inner < 1)) luaL_error(L, "%s: the band's inner must be in [0, 1)", who);
}

/* The n numbers of the vector view or array at idx: a vector view's own
 * memory (read only; nothing copied), or a scratch copy of an array. */
static const double *vec_ref(lua_State *L, int idx, size_t n, const char *what) {
  keeli_view *v = keeli_view_test(L, idx);
  if (v) {
    v = keeli_view_check(L, idx); /* stale views are errors */
    if (!v->matrix && v->cols == n) return v->data;
  }
  return arg_vec(L, idx, n, what);
}

/* A band made once by keel.policy.band{...}: checked when made, so the
 * calls that take it read no table (a prepared band for an on_bar that
 * runs every day). Its metatable is kept under this address. */
static const char BAND_MT_KEY = 0;

static const keel_band *band_test(lua_State *L, int idx) {
  void *p = lua_touserdata(L, idx);
  if (!p || lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &BAND_MT_KEY);
  const int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? p : NULL;
}

/* The band at idx: a prepared band or a band table. */
static void get_band(lua_State *L, int idx, keel_band *b, const char *who) {
  const keel_band *pb = band_test(L, idx);
  if (pb) *b = *pb;
  else read_band(L, idx, b, who);
}

static int band_tostring(lua_State *L) {
  const keel_band *b = band_test(L, 1);
  static const char *const kinds[] = {"none", "absolute", "relative", "combined"};
  lua_pushfstring(L, "keel.band(%s, abs %f, rel %f)", b ? kinds[b->kind] : "?", b ? b->abs : 0.0, b ? b->rel : 0.0);
  return 1;
}

/* keel.policy.band{kind =, abs =, rel =, action =, inner =} -> a prepared band */
static int l_band(lua_State *L) {
  keel_band b;
  read_band(L, 1, &b, "keel.policy.band");
  keel_band *u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = b;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &BAND_MT_KEY);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, band_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "keel.band");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "keel.band");
    lua_setfield(L, -2, "__metatable"); /* scripts cannot read or change it */
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &BAND_MT_KEY);
  }
  lua_setmetatable(L, -2);
  return 1;
}

/* w and t at 1 and 2 (same length), each finite; t >= 0. The messages name
 * what and twhat (literals: nothing is formatted unless there is an error). */
static size_t read_w_t(lua_State *L, const double **w, const double **t, const char *what, const char *twhat) {
  const size_t n = vec_len(L, 1, what);
  *w = vec_ref(L, 1, n, what);
  check_finite(L, *w, n, what);
  *t = vec_ref(L, 2, n, twhat);
  check_nonneg(L, *t, n, twhat);
  return n;
}

/* keel.policy.band_breached(w, t, band) -> the first breached asset (1-based) or nil */
static int l_band_breached(lua_State *L) {
#define WHO "keel.policy.band_breached"
  const char *who = WHO;
  lua_settop(L, 3);
  const double *w, *t;
  const size_t n = read_w_t(L, &w, &t, WHO ": weights", WHO ": targets");
#undef WHO
  keel_band b;
  get_band(L, 3, &b, who);
  const size_t i = keel_band_breached(&b, n, w, t);
  if (i < n)
    lua_pushinteger(L, (lua_Integer)i + 1);
  else
    lua_pushnil(L);
  return 1;
}

/* keel.policy.band_adjust(w, t, band) -> the post-trade weights */
static int l_band_adjust(lua_State *L) {
#define WHO "keel.policy.band_adjust"
  const char *who = WHO;
  lua_settop(L, 3);
  const double *w, *t;
  const size_t n = read_w_t(L, &w, &t, WHO ": weights", WHO ": targets");
#undef WHO
  keel_band b;
  get_band(L, 3, &b, who);
  keeli_view *out = keeli_view_new(L, 1, n, 0);
  keel_band_adjust(&b, n, w, t, out->data);
  return 1;
}

/* keel.policy.vol_scale(t, returns, {target =, estimator =, halflife =,
 * leverage_cap =, periods_per_year =}) -> scale, sigma */
static int l_vol_scale(lua_State *L) {
  static const char *const known[] = {"target", "estimator", "halflife", "leverage_cap", "periods_per_year", NULL};
  static const char *const ests[] = {"rolling", "ewma", NULL};
  const char *who = "keel.policy.vol_scale";
  lua_settop(L, 3);
  keeli_host *h = keeli_host_get(L);
  const size_t n = vec_len(L, 1, who);
  double *t = arg_vec(L, 1, n, "targets");
  check_nonneg(L, t, n, "targets");
  keel_cmat R = arg_mat(L, 2, who);
  if (R.cols != n)
    return luaL_error(L, "%s: returns have %I columns for %I targets", who, (LUAI_UACINT)R.cols, (LUAI_UACINT)n);
  luaL_checktype(L, 3, LUA_TTABLE);
  opts_check(L, 3, who, known);
  keel_voltarget v;
  memset(&v, 0, sizeof v);
  v.target = opt_number(L, 3, "target", NAN, who);
  if (!(v.target > 0 && v.target < INFINITY)) return luaL_error(L, "%s: target must be a volatility > 0", who);
  v.estimator = (keel_vol_estimator)opt_enum(L, 3, "estimator", ests, KEEL_VOL_ROLLING, who);
  v.halflife = opt_number(L, 3, "halflife", 21, who);
  if (v.estimator == KEEL_VOL_EWMA) check_halflife(L, v.halflife, who);
  v.leverage_cap = opt_number(L, 3, "leverage_cap", 1, who);
  if (!(v.leverage_cap > 0)) return luaL_error(L, "%s: leverage_cap must be > 0", who);
  v.window = (unsigned)(R.rows > UINT32_MAX ? UINT32_MAX : R.rows);
  v.rebalance_band = INFINITY;
  const double ppy = opt_number(L, 3, "periods_per_year", 252, who);
  if (!(ppy > 0 && ppy < INFINITY)) return luaL_error(L, "%s: periods_per_year must be > 0", who);
  const double *rd = R.data;
  if (R.ld != R.cols) {
    double *c = scratch(L, R.rows * R.cols);
    for (size_t i = 0; i < R.rows; i++) memcpy(c + i * R.cols, R.data + i * R.ld, R.cols * sizeof(double));
    rd = c;
  }
  double scale, sigma;
  if (keel_voltarget_scale(h->ctx, &v, n, t, rd, R.rows, ppy, &scale, &sigma) != KEEL_OK) return raise_keel(L, h, who);
  lua_pushnumber(L, scale);
  lua_pushnumber(L, sigma);
  return 2;
}

/* keel.policy.cashflow(x, t, amount) -> signed trade values */
static int l_cashflow(lua_State *L) {
  const char *who = "keel.policy.cashflow";
  lua_settop(L, 3);
  keeli_host *h = keeli_host_get(L);
  const size_t n = vec_len(L, 1, who);
  double *x = arg_vec(L, 1, n, "holdings");
  check_nonneg(L, x, n, "holdings");
  double *t = arg_vec(L, 2, n, "targets");
  check_nonneg(L, t, n, "targets");
  const double amount = luaL_checknumber(L, 3);
  if (!isfinite(amount)) return luaL_error(L, "%s: amount must be finite", who);
  keeli_view *out = keeli_view_new(L, 1, n, 0);
  if (keel_cashflow_allocate(h->ctx, n, x, t, amount, out->data) != KEEL_OK) return raise_keel(L, h, who);
  return 1;
}

/* ---- keel.weights ---- */

static double *read_weights(lua_State *L, int idx, size_t *n, const char *who) {
  char what[96];
  snprintf(what, sizeof what, "%s: weights", who);
  *n = vec_len(L, idx, what);
  double *w = arg_vec(L, idx, *n, what);
  check_finite(L, w, *n, what);
  return w;
}

/* keel.weights.normalize(w): w / sum(w); the sum must be > 0. */
static int l_normalize(lua_State *L) {
  const char *who = "keel.weights.normalize";
  size_t n;
  double *w = read_weights(L, 1, &n, who);
  double s = 0;
  for (size_t i = 0; i < n; i++) s += w[i];
  if (!(s > 0)) return luaL_error(L, "%s: the weights sum to %f (a positive sum is needed)", who, s);
  keeli_view *out = keeli_view_new(L, 1, n, 0);
  for (size_t i = 0; i < n; i++) out->data[i] = w[i] / s;
  return 1;
}

/* keel.weights.clip(w, lo, hi): each weight into [lo, hi] (numbers or vectors). */
static int l_clip(lua_State *L) {
  const char *who = "keel.weights.clip";
  lua_settop(L, 3);
  size_t n;
  double *w = read_weights(L, 1, &n, who);
  double *b[2];
  for (int k = 0; k < 2; k++) {
    const int i = 2 + k;
    b[k] = scratch(L, n);
    if (lua_type(L, i) == LUA_TNUMBER) {
      for (size_t j = 0; j < n; j++) b[k][j] = lua_tonumber(L, i);
    } else {
      keeli_view_read(L, i, n, b[k], k ? "keel.weights.clip: hi" : "keel.weights.clip: lo");
    }
  }
  keeli_view *out = keeli_view_new(L, 1, n, 0);
  for (size_t j = 0; j < n; j++) {
    if (isnan(b[0][j]) || isnan(b[1][j]) || b[0][j] > b[1][j])
      return luaL_error(L, "%s: the range of asset %I is [%f, %f]", who, (LUAI_UACINT)(j + 1), b[0][j], b[1][j]);
    out->data[j] = fmin(fmax(w[j], b[0][j]), b[1][j]);
  }
  return 1;
}

/* keel.weights.blend(a, b, t): (1 - t) a + t b, t in [0, 1]. */
static int l_blend(lua_State *L) {
  const char *who = "keel.weights.blend";
  lua_settop(L, 3);
  size_t n, m;
  double *a = read_weights(L, 1, &n, who);
  double *b = read_weights(L, 2, &m, who);
  if (m != n) return luaL_error(L, "%s: a has %I weights and b %I", who, (LUAI_UACINT)n, (LUAI_UACINT)m);
  const double t = luaL_checknumber(L, 3);
  if (!(t >= 0 && t <= 1)) return luaL_error(L, "%s: t must be in [0, 1] (it is %f)", who, t);
  keeli_view *out = keeli_view_new(L, 1, n, 0);
  for (size_t i = 0; i < n; i++) out->data[i] = (1 - t) * a[i] + t * b[i];
  return 1;
}

/* keel.weights.cap(w, max): no weight above max, the excess spread over
 * the others in proportion to their weights (repeatedly, as spreading may
 * push another over), so the sum is kept. Weights must be >= 0 and
 * n * max >= sum. */
static int l_cap(lua_State *L) {
  const char *who = "keel.weights.cap";
  lua_settop(L, 2);
  size_t n;
  double *w = read_weights(L, 1, &n, who);
  const double cap = luaL_checknumber(L, 2);
  if (!(cap > 0 && cap < INFINITY)) return luaL_error(L, "%s: max must be > 0 (it is %f)", who, cap);
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    if (w[i] < 0) return luaL_error(L, "%s: weight %I is negative (%f)", who, (LUAI_UACINT)(i + 1), w[i]);
    sum += w[i];
  }
  if (sum > cap * (double)n * (1 + 1e-12))
    return luaL_error(L, "%s: %I weights summing to %f cannot all be <= %f", who, (LUAI_UACINT)n, sum, cap);
  keeli_view *out = keeli_view_new(L, 1, n, 0);
  double *x = out->data;
  memcpy(x, w, n * sizeof(double));
  for (size_t pass = 0; pass <= n; pass++) {
    double excess = 0, free_w = 0;
    for (size_t i = 0; i < n; i++) {
      if (x[i] > cap) {
        excess += x[i] - cap;
        x[i] = cap;
      } else if (x[i] < cap) {
        free_w += x[i];
      }
    }
    if (excess <= 0) break;
    if (free_w > 0) {
      const double f = excess / free_w;
      for (size_t i = 0; i < n; i++)
        if (x[i] < cap) x[i] += x[i] * f;
    } else {
      /* nothing below the cap holds weight: share the excess equally among
       * the assets below the cap */
      size_t k = 0;
      for (size_t i = 0; i < n; i++) k += x[i] < cap;
      if (k == 0) break;
      for (size_t i = 0; i < n; i++)
        if (x[i] < cap) x[i] += excess / (double)k;
    }
  }
  return 1;
}

/* ---- the module ---- */

static const luaL_Reg ESTIMATE[] = {{"returns", l_returns},         {"mean", l_mean},
                                    {"cov", l_cov},                 {"nearest_psd", l_nearest_psd},
                                    {"factor_pca", l_factor_pca},   {NULL, NULL}};
static const luaL_Reg OPTIMIZE[] = {{"min_variance", l_min_variance}, {"target_return", l_target_return},
                                    {"target_vol", l_target_vol},     {"max_sharpe", l_max_sharpe},
                                    {"utility", l_utility},           {"frontier", l_frontier},
                                    {"risk_parity", l_risk_parity},   {NULL, NULL}};
static const luaL_Reg POLICY[] = {{"band", l_band}, {"band_breached", l_band_breached}, {"band_adjust", l_band_adjust},
                                  {"vol_scale", l_vol_scale},         {"cashflow", l_cashflow},
                                  {NULL, NULL}};
static const luaL_Reg WEIGHTS[] = {{"normalize", l_normalize}, {"clip", l_clip}, {"blend", l_blend},
                                   {"cap", l_cap},             {NULL, NULL}};

int keeli_open_keel(lua_State *L) {
  keeli_view_open(L);
  lua_createtable(L, 0, 8);
  lua_pushcfunction(L, l_vector);
  lua_setfield(L, -2, "vector");
  lua_pushcfunction(L, l_matrix);
  lua_setfield(L, -2, "matrix");
  const struct {
    const char *name;
    const luaL_Reg *fns;
  } subs[] = {{"estimate", ESTIMATE}, {"optimize", OPTIMIZE}, {"policy", POLICY}, {"weights", WEIGHTS}};
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
    lua_newtable(L);
    luaL_setfuncs(L, subs[i].fns, 0);
    lua_setfield(L, -2, subs[i].name);
  }
  lua_pushliteral(L, KEEL_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
