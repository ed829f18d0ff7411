/* keel — the keel.view userdata (docs/lua.md, lua/internal.h).
 *
 * A view is a full userdata whose block starts with a keeli_view. An owned
 * view keeps its doubles in the same block, right after the header, so the
 * memory is counted by the state's allocator (the sandbox's cap) and goes
 * with the userdata when it is collected, error or not; nothing here needs
 * a __gc. A borrowed view points at the caller's memory and is valid while
 * *genp == gen; every access through it checks that first.
 *
 * A matrix row v[i] is a vector view into the parent's memory (no copy):
 * it carries the parent's ownership and generation, and keeps the parent
 * alive through its user value. Columns are strided, so v:col(j) copies.
 *
 * Every function here either succeeds or raises a Lua error; none holds
 * anything that an error would leak. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua/internal.h"

/* The doubles of an owned view start here within its block. */
#define VIEW_DATA_OFFSET ((sizeof(keeli_view) + 15u) & ~(size_t)15u)
/* Most elements shown by tostring. */
#define VIEW_SHOW_MAX 8

static const char STALE_MSG[] = "keel.view: view used after its call returned";

static int view_stale(const keeli_view *v) { return !v->owned && v->genp && *v->genp != v->gen; }

/* The metatable is also kept under this address in the registry: a
 * pointer key needs no string to be made and compared on every check. */
static const char VIEW_MT_KEY = 0;

keeli_view *keeli_view_test(lua_State *L, int idx) {
  void *p = lua_touserdata(L, idx);
  if (!p || lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &VIEW_MT_KEY);
  const int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? p : NULL;
}

keeli_view *keeli_view_check(lua_State *L, int idx) {
  keeli_view *v = keeli_view_test(L, idx);
  if (!v) {
    const char *tn = luaL_typename(L, idx);
    luaL_error(L, "keel.view expected, got %s", tn);
    return NULL;
  }
  if (view_stale(v)) luaL_error(L, "%s", STALE_MSG);
  return v;
}

/* The length a view reports: #v. */
static size_t view_len(const keeli_view *v) { return v->matrix ? v->rows : v->cols; }

static void check_writable(lua_State *L, const keeli_view *v) {
  if (!v->owned) luaL_error(L, "keel.view: this view is read-only (it borrows the engine's memory; use v:copy())");
}

/* A 1-based index at idx within 1..n, as a 0-based size_t. */
static size_t check_index(lua_State *L, int idx, size_t n, const char *what) {
  int isint = 0;
  lua_Integer i = lua_tointegerx(L, idx, &isint);
  if (!isint) {
    if (lua_type(L, idx) == LUA_TNUMBER)
      luaL_error(L, "keel.view: %s index must be an integer, got %f", what, lua_tonumber(L, idx));
    luaL_error(L, "keel.view: %s index must be an integer, got %s", what, luaL_typename(L, idx));
  }
  if (i < 1 || (lua_Unsigned)i > (lua_Unsigned)n)
    luaL_error(L, "keel.view: %s index %I out of range 1..%I", what, (LUAI_UACINT)i, (LUAI_UACINT)n);
  return (size_t)(i - 1);
}

static double check_value(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "keel.view: cannot store a %s (a number is needed)", luaL_typename(L, idx));
  return lua_tonumber(L, idx);
}

/* ---- construction ---- */

static void set_metatable(lua_State *L) {
  if (luaL_getmetatable(L, KEELI_VIEW_MT) != LUA_TTABLE) {
    lua_pop(L, 1);
    keeli_view_open(L);
    luaL_getmetatable(L, KEELI_VIEW_MT);
  }
  lua_setmetatable(L, -2);
}

keeli_view *keeli_view_new(lua_State *L, size_t rows, size_t cols, int matrix) {
  if (!matrix && rows != 1) luaL_error(L, "keel.view: a vector has one row (got %I)", (LUAI_UACINT)rows);
  const size_t maxel = (SIZE_MAX - VIEW_DATA_OFFSET) / sizeof(double);
  if (cols != 0 && rows > maxel / cols)
    luaL_error(L, "keel.view: %I x %I is too large", (LUAI_UACINT)rows, (LUAI_UACINT)cols);
  const size_t nel = rows * cols;
  keeli_view *v = lua_newuserdatauv(L, VIEW_DATA_OFFSET + nel * sizeof(double), 1);
  v->data = (double *)(void *)((char *)v + VIEW_DATA_OFFSET);
  v->rows = rows;
  v->cols = cols;
  v->ld = cols;
  v->matrix = matrix ? 1 : 0;
  v->owned = 1;
  v->genp = NULL;
  v->gen = 0;
  if (nel) memset(v->data, 0, nel * sizeof(double));
  set_metatable(L);
  return v;
}

keeli_view *keeli_view_borrow(lua_State *L, const double *data, size_t rows, size_t cols, size_t ld, int matrix,
                              const unsigned long *genp) {
  if (!matrix && rows != 1) luaL_error(L, "keel.view: a vector has one row (got %I)", (LUAI_UACINT)rows);
  if (ld < cols) luaL_error(L, "keel.view: leading dimension %I below %I columns", (LUAI_UACINT)ld, (LUAI_UACINT)cols);
  keeli_view *v = lua_newuserdatauv(L, sizeof(keeli_view), 1);
  v->data = (double *)(uintptr_t)data; /* never written through: owned is 0 */
  v->rows = rows;
  v->cols = cols;
  v->ld = ld;
  v->matrix = matrix ? 1 : 0;
  v->owned = 0;
  v->genp = genp;
  v->gen = genp ? *genp : 0;
  set_metatable(L);
  return v;
}

/* Pushes row i of matrix m (at idx) as a vector view into m's memory that
 * keeps m alive. */
static void push_row(lua_State *L, int idx, const keeli_view *m, size_t i) {
  idx = lua_absindex(L, idx);
  keeli_view *r = lua_newuserdatauv(L, sizeof(keeli_view), 1);
  r->data = m->data + i * m->ld;
  r->rows = 1;
  r->cols = m->cols;
  r->ld = m->cols;
  r->matrix = 0;
  r->owned = m->owned;
  r->genp = m->genp;
  r->gen = m->gen;
  set_metatable(L);
  lua_pushvalue(L, idx);
  lua_setiuservalue(L, -2, 1);
}

/* An owned copy of v (contiguous). */
static keeli_view *push_copy(lua_State *L, const keeli_view *v) {
  keeli_view *c = keeli_view_new(L, v->rows, v->cols, v->matrix);
  for (size_t i = 0; i < v->rows; i++)
    if (v->cols) memcpy(c->data + i * c->ld, v->data + i * v->ld, v->cols * sizeof(double));
  return c;
}

/* ---- reading numbers from Lua ---- */

void keeli_view_read(lua_State *L, int idx, size_t n, double *out, const char *what) {
  const int t = lua_type(L, idx);
  if (t == LUA_TUSERDATA && keeli_view_test(L, idx)) {
    const keeli_view *v = keeli_view_check(L, idx);
    if (v->matrix)
      luaL_error(L, "%s: expected a vector of %I numbers, got a %I x %I matrix", what, (LUAI_UACINT)n,
                 (LUAI_UACINT)v->rows, (LUAI_UACINT)v->cols);
    if (v->cols != n)
      luaL_error(L, "%s: expected %I numbers, got a vector of %I", what, (LUAI_UACINT)n, (LUAI_UACINT)v->cols);
    if (n) memmove(out, v->data, n * sizeof(double));
    return;
  }
  if (t != LUA_TTABLE) luaL_error(L, "%s: expected a keel.view or an array of numbers, got %s", what, lua_typename(L, t));
  const lua_Unsigned len = lua_rawlen(L, idx);
  if (len != (lua_Unsigned)n)
    luaL_error(L, "%s: expected %I numbers, got %I", what, (LUAI_UACINT)n, (LUAI_UACINT)len);
  luaL_checkstack(L, 1, what);
  idx = lua_absindex(L, idx);
  for (size_t i = 0; i < n; i++) {
    if (lua_rawgeti(L, idx, (lua_Integer)i + 1) != LUA_TNUMBER)
      luaL_error(L, "%s[%I] is not a number (got %s)", what, (LUAI_UACINT)(i + 1), luaL_typename(L, -1));
    out[i] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
}

/* ---- metamethods ---- */

static int view_methods_index(lua_State *L);

static int mt_index(lua_State *L) {
  keeli_view *v = keeli_view_check(L, 1);
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *k = lua_tostring(L, 2);
    if (strcmp(k, "rows") == 0) {
      lua_pushinteger(L, (lua_Integer)v->rows);
      return 1;
    }
    if (strcmp(k, "cols") == 0) {
      lua_pushinteger(L, (lua_Integer)v->cols);
      return 1;
    }
    return view_methods_index(L);
  }
  const size_t i = check_index(L, 2, view_len(v), v->matrix ? "row" : "element");
  if (v->matrix)
    push_row(L, 1, v, i);
  else
    lua_pushnumber(L, v->data[i]);
  return 1;
}

static int mt_newindex(lua_State *L) {
  keeli_view *v = keeli_view_check(L, 1);
  check_writable(L, v);
  if (lua_type(L, 2) == LUA_TSTRING) return luaL_error(L, "keel.view: cannot set field '%s'", lua_tostring(L, 2));
  const size_t i = check_index(L, 2, view_len(v), v->matrix ? "row" : "element");
  if (v->matrix) {
    /* v[i] = a vector or an array of cols numbers: copies it into row i */
    keeli_view_read(L, 3, v->cols, v->data + i * v->ld, "keel.view row");
    return 0;
  }
  v->data[i] = check_value(L, 3);
  return 0;
}

static int mt_len(lua_State *L) {
  keeli_view *v = keeli_view_check(L, 1);
  lua_pushinteger(L, (lua_Integer)view_len(v));
  return 1;
}

static int mt_tostring(lua_State *L) {
  keeli_view *v = keeli_view_check(L, 1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char num[64];
  if (v->matrix) {
    snprintf(num, sizeof num, "keel.matrix(%zux%zu)", v->rows, v->cols);
    luaL_addstring(&b, num);
  } else {
    snprintf(num, sizeof num, "keel.vector(%zu) {", v->cols);
    luaL_addstring(&b, num);
    for (size_t j = 0; j < v->cols && j < VIEW_SHOW_MAX; j++) {
      snprintf(num, sizeof num, "%s%.17g", j ? ", " : "", v->data[j]);
      luaL_addstring(&b, num);
    }
    luaL_addstring(&b, v->cols > VIEW_SHOW_MAX ? ", ...}" : "}");
  }
  luaL_pushresult(&b);
  return 1;
}

/* ---- methods ---- */

static int m_get(lua_State *L) {
  keeli_view *v = keeli_view_check(L, 1);
  if (v->matrix) {
    const size_t i = check_index(L, 2, v->rows, "row");
    const size_t j = check_index(L, 3, v->cols, "column");
    lua_pushnumber(L, v->data[i * v->ld + j]);
  } else {
    lua_pushnumber(L, v->data[check_index(L, 2, v->cols, "element")]);
  }
  return 1;
}

static int m_set(lua_State *L) {
  keeli_view *v = keeli_view_check(L, 1);
  check_writable(L, v);
  if (v->matrix) {
    const size_t i = check_index(L, 2, v->rows, "row");
    const size_t j = check_index(L, 3, v->cols, "column");
    v->data[i * v->ld + j] = check_value(L, 4);
  } else {
    const size_t i = check_index(L, 2, v->cols, "element");
    v->data[i] = check_value(L, 3);
  }
  return 0;
}

static int m_col(lua_State *L) {
  keeli_view *v = keeli_view_check(L, 1);
  if (!v->matrix) return luaL_error(L, "keel.view: col needs a matrix (this is a vector)");
  const size_t j = check_index(L, 2, v->cols, "column");
  keeli_view *c = keeli_view_new(L, 1, v->rows, 0);
  for (size_t i = 0; i < v->rows; i++) c->data[i] = v->data[i * v->ld + j];
  return 1;
}

/* Column sums (a matrix) or the sum (a vector); NaN propagates. */
static int m_sum(lua_State *L) {
  keeli_view *v = keeli_view_check(L, 1);
  if (!v->matrix) {
    double s = 0;
    for (size_t j = 0; j < v->cols; j++) s += v->data[j];
    lua_pushnumber(L, s);
    return 1;
  }
  keeli_view *out = keeli_view_new(L, 1, v->cols, 0);
  for (size_t i = 0; i < v->rows; i++)
    for (size_t j = 0; j < v->cols; j++) out->data[j] += v->data[i * v->ld + j];
  return 1;
}

/* Mean and sample standard deviation (n - 1) of n values at stride s:
 * two passes, NaN propagates; n = 0 gives NaN (and n < 2 a NaN std). */
static void moments(const double *x, size_t n, size_t s, double *mean, double *sd) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m += x[i * s];
  m = n ? m / (double)n : NAN;
  *mean = m;
  if (!sd) return;
  double q = 0;
  for (size_t i = 0; i < n; i++) {
    const double d = x[i * s] - m;
    q += d * d;
  }
  *sd = n >= 2 ? sqrt(q / (double)(n - 1)) : NAN;
}

static int mean_or_std(lua_State *L, int want_sd) {
  keeli_view *v = keeli_view_check(L, 1);
  double m, sd;
  if (!v->matrix) {
    moments(v->data, v->cols, 1, &m, want_sd ? &sd : NULL);
    lua_pushnumber(L, want_sd ? sd : m);
    return 1;
  }
  keeli_view *out = keeli_view_new(L, 1, v->cols, 0);
  for (size_t j = 0; j < v->cols; j++) {
    moments(v->data + j, v->rows, v->ld, &m, want_sd ? &sd : NULL);
    out->data[j] = want_sd ? sd : m;
  }
  return 1;
}

static int m_mean(lua_State *L) { return mean_or_std(L, 0); }
static int m_std(lua_State *L) { return mean_or_std(L, 1); }

/* v:cov([method [, opts]]): the estimator of keel.estimate.cov (api.c). */
static int m_cov(lua_State *L) {
  keeli_view_check(L, 1);
  const char *method = luaL_optstring(L, 2, NULL);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  return keeli_push_cov(L, 1, method, lua_isnoneornil(L, 3) ? 0 : 3);
}

static int m_totable(lua_State *L) {
  keeli_view *v = keeli_view_check(L, 1);
  if (v->rows > INT32_MAX || v->cols > INT32_MAX) return luaL_error(L, "keel.view: too large for a table");
  if (!v->matrix) {
    lua_createtable(L, (int)v->cols, 0);
    for (size_t j = 0; j < v->cols; j++) {
      lua_pushnumber(L, v->data[j]);
      lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
    return 1;
  }
  lua_createtable(L, (int)v->rows, 0);
  for (size_t i = 0; i < v->rows; i++) {
    lua_createtable(L, (int)v->cols, 0);
    for (size_t j = 0; j < v->cols; j++) {
      lua_pushnumber(L, v->data[i * v->ld + j]);
      lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int m_copy(lua_State *L) {
  push_copy(L, keeli_view_check(L, 1));
  return 1;
}

static const luaL_Reg METHODS[] = {
    {"get", m_get},   {"set", m_set},           {"col", m_col},   {"sum", m_sum},   {"mean", m_mean},
    {"std", m_std},   {"cov", m_cov},           {"totable", m_totable}, {"copy", m_copy}, {NULL, NULL},
};

/* v.name for a method: looked up in the methods table (upvalue 1 of
 * __index). Unknown names are an error rather than nil, so a typo in a
 * script shows where it is. */
static int view_methods_index(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) == LUA_TNIL)
    return luaL_error(L, "keel.view has no field '%s'", lua_tostring(L, 2));
  return 1;
}

void keeli_view_open(lua_State *L) {
  if (!luaL_newmetatable(L, KEELI_VIEW_MT)) {
    lua_pop(L, 1);
    return;
  }
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &VIEW_MT_KEY);
  luaL_newlib(L, METHODS);
  lua_pushcclosure(L, mt_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, mt_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, mt_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, mt_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "keel.view");
  lua_setfield(L, -2, "__name");
  lua_pushliteral(L, "keel.view");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}
