/* keel — the loadable Lua module: require "keel" from a stand-alone lua5.4
 * (docs/lua.md, "require \"keel\" from lua5.4").
 *
 * luaopen_keel gives the keel module table of lua/api.c plus
 * keel.load_prices and keel.backtest, on a host of its own: a keel_ctx
 * kept in a full userdata whose __gc frees it (this state is the user's
 * own interpreter, not the sandbox, so finalisers are fine here). Panels,
 * run descriptions and backtest results are likewise held by userdata
 * with __gc, made before the C call that fills them, so a Lua error at any
 * point (an allocation while the results are copied out, say) leaks
 * nothing.
 *
 * keel.backtest turns its table into a run description (docs/formats.md)
 * and runs it with keel_runspec_parse and keel_backtest_run_account: the
 * same path, checks and messages as `keel backtest --spec`. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "keel/backtest.h"
#include "keel/date.h"
#include "keel/estimate.h"
#include "keel/metrics.h"
#include "keel/panel.h"
#include "keel/runspec.h"
#include "lua/internal.h"

#define HOST_MT "keel.host.mt" /* not KEELI_HOST_KEY, which holds the host pointer */
#define PANEL_MT "keel.panel"
#define RUN_MT "keel.run"
#define HOST_ANCHOR "keel.host.box"

#if defined(__GNUC__)
#define KEEL_LUA_EXPORT __attribute__((visibility("default")))
#else
#define KEEL_LUA_EXPORT
#endif

KEEL_LUA_EXPORT int luaopen_keel(lua_State *L);

/* ---- the host ---- */

static int host_gc(lua_State *L) {
  keeli_host *h = luaL_checkudata(L, 1, HOST_MT);
  keel_ctx_free(h->ctx);
  h->ctx = NULL;
  return 0;
}

/* Makes the state's host once (a later require finds it). */
static void host_open(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, HOST_ANCHOR) == LUA_TUSERDATA) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  keeli_host *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->ctx = NULL;
  h->opt = NULL;
  if (luaL_newmetatable(L, HOST_MT)) {
    lua_pushcfunction(L, host_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (keel_ctx_new(NULL, &h->ctx) != KEEL_OK) luaL_error(L, "keel: out of memory making a context");
  lua_pushlightuserdata(L, h);
  lua_setfield(L, LUA_REGISTRYINDEX, KEELI_HOST_KEY);
  lua_setfield(L, LUA_REGISTRYINDEX, HOST_ANCHOR);
}

static int raise_keel(lua_State *L, const char *who) {
  return luaL_error(L, "%s: %s", who, keel_errmsg(keeli_host_get(L)->ctx));
}

/* ---- panels ---- */

typedef struct panel_box {
  keel_panel *p;
} panel_box;

static int panel_gc(lua_State *L) {
  panel_box *b = luaL_checkudata(L, 1, PANEL_MT);
  keel_panel_free(b->p);
  b->p = NULL;
  return 0;
}

static keel_panel *check_panel(lua_State *L, int idx) {
  panel_box *b = luaL_checkudata(L, idx, PANEL_MT);
  if (!b->p) luaL_error(L, "keel: the panel was freed");
  return b->p;
}

/* Pushes an empty panel box (user values: 1 dates, 2 symbols). */
static panel_box *panel_push(lua_State *L) {
  panel_box *b = lua_newuserdatauv(L, sizeof *b, 2);
  b->p = NULL;
  luaL_setmetatable(L, PANEL_MT);
  return b;
}

/* Builds the box's dates and symbols tables once its panel is set. */
static void panel_fill(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  const keel_panel *p = check_panel(L, idx);
  const size_t nd = keel_panel_ndates(p), na = keel_panel_nassets(p);
  const keel_date *d = keel_panel_dates(p);
  lua_createtable(L, nd > INT32_MAX ? INT32_MAX : (int)nd, 0);
  for (size_t i = 0; i < nd; i++) {
    char s[KEEL_DATE_BUFSIZE];
    keel_date_format(d[i], s);
    lua_pushstring(L, s);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setiuservalue(L, idx, 1);
  lua_createtable(L, na > INT32_MAX ? INT32_MAX : (int)na, 0);
  for (size_t j = 0; j < na; j++) {
    lua_pushstring(L, keel_panel_symbol(p, j));
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  lua_setiuservalue(L, idx, 2);
}

/* keel.load_prices(path) -> a panel */
static int l_load_prices(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  keeli_host *h = keeli_host_get(L);
  panel_box *b = panel_push(L);
  if (keel_panel_read_csv(h->ctx, path, NULL, &b->p) != KEEL_OK) return raise_keel(L, "keel.load_prices");
  panel_fill(L, -1);
  return 1;
}

/* panel:prices(): the ndates x nassets closes as a read-only view into the
 * panel (zero-copy; it keeps the panel alive). */
static int panel_prices(lua_State *L) {
  const keel_panel *p = check_panel(L, 1);
  const size_t na = keel_panel_nassets(p);
  keeli_view_borrow(L, keel_panel_prices(p), keel_panel_ndates(p), na, na, 1, NULL);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* panel:returns(["simple"|"log"]): keel_returns over every row. */
static int panel_returns(lua_State *L) {
  static const char *const kinds[] = {"simple", "log", NULL};
  const keel_panel *p = check_panel(L, 1);
  const int kind = luaL_checkoption(L, 2, "simple", kinds);
  keeli_host *h = keeli_host_get(L);
  const size_t nd = keel_panel_ndates(p), na = keel_panel_nassets(p);
  if (nd < 2) return luaL_error(L, "panel:returns: %I dates give no return", (LUAI_UACINT)nd);
  keeli_view *v = keeli_view_new(L, nd - 1, na, 1);
  keel_mat out = {v->data, v->rows, v->cols, v->ld};
  if (keel_returns(h->ctx, p, 0, 0, (keel_returns_kind)kind, out) != KEEL_OK) return raise_keel(L, "panel:returns");
  return 1;
}

/* panel:find(symbol) -> its column (1-based) or nil */
static int panel_find(lua_State *L) {
  const keel_panel *p = check_panel(L, 1);
  size_t j;
  if (keel_panel_find(p, luaL_checkstring(L, 2), &j))
    lua_pushinteger(L, (lua_Integer)j + 1);
  else
    lua_pushnil(L);
  return 1;
}

static int panel_index(lua_State *L) {
  const keel_panel *p = check_panel(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "dates") == 0) {
    lua_getiuservalue(L, 1, 1);
  } else if (strcmp(k, "symbols") == 0) {
    lua_getiuservalue(L, 1, 2);
  } else if (strcmp(k, "ndates") == 0) {
    lua_pushinteger(L, (lua_Integer)keel_panel_ndates(p));
  } else if (strcmp(k, "nassets") == 0) {
    lua_pushinteger(L, (lua_Integer)keel_panel_nassets(p));
  } else {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) == LUA_TNIL) return luaL_error(L, "keel.panel has no field '%s'", k);
  }
  return 1;
}

static int panel_tostring(lua_State *L) {
  const keel_panel *p = check_panel(L, 1);
  const size_t nd = keel_panel_ndates(p);
  char a[KEEL_DATE_BUFSIZE], b[KEEL_DATE_BUFSIZE];
  keel_date_format(keel_panel_dates(p)[0], a);
  keel_date_format(keel_panel_dates(p)[nd - 1], b);
  lua_pushfstring(L, "keel.panel(%I dates %s .. %s, %I assets)", (LUAI_UACINT)nd, a, b,
                  (LUAI_UACINT)keel_panel_nassets(p));
  return 1;
}

static void panel_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"prices", panel_prices}, {"returns", panel_returns}, {"find", panel_find}, {NULL, NULL}};
  if (!luaL_newmetatable(L, PANEL_MT)) {
    lua_pop(L, 1);
    return;
  }
  lua_pushcfunction(L, panel_gc);
  lua_setfield(L, -2, "__gc");
  luaL_newlib(L, methods);
  lua_pushcclosure(L, panel_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, panel_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

/* ---- JSON text of a Lua value, in a growing userdata ---- */

typedef struct jbuf {
  lua_State *L;
  int slot; /* stack index of the current block */
  char *p;
  size_t n, cap;
} jbuf;

static void jb_init(lua_State *L, jbuf *b) {
  b->L = L;
  b->cap = 1024;
  b->n = 0;
  b->p = lua_newuserdatauv(L, b->cap, 0);
  b->slot = lua_gettop(L);
}

static void jb_add(jbuf *b, const char *s, size_t len) {
  if (b->n + len + 1 > b->cap) {
    size_t cap = b->cap;
    while (b->n + len + 1 > cap) {
      if (cap > SIZE_MAX / 2) luaL_error(b->L, "keel.backtest: the run description is too large");
      cap *= 2;
    }
    char *np = lua_newuserdatauv(b->L, cap, 0);
    memcpy(np, b->p, b->n);
    lua_replace(b->L, b->slot);
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, len);
  b->n += len;
  b->p[b->n] = '\0';
}

static void jb_str(jbuf *b, const char *s) { jb_add(b, s, strlen(s)); }

static void jb_quote(jbuf *b, const char *s, size_t len) {
  jb_add(b, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    const unsigned char c = (unsigned char)s[i];
    char e[8];
    if (c == '"' || c == '\\') {
      e[0] = '\\', e[1] = (char)c;
      jb_add(b, e, 2);
    } else if (c < 0x20) {
      snprintf(e, sizeof e, "\\u%04x", c);
      jb_add(b, e, 6);
    } else {
      jb_add(b, (const char *)&c, 1);
    }
  }
  jb_add(b, "\"", 1);
}

/* Appends the value at idx as JSON: a table with only keys 1..n is an
 * array, one with only string keys an object; numbers must be finite. */
static void jb_value(jbuf *b, int idx, const char *path, int depth) {
  lua_State *L = b->L;
  idx = lua_absindex(L, idx);
  if (depth > 32) luaL_error(L, "keel.backtest: %s: nested too deeply", path);
  luaL_checkstack(L, 4, path);
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: jb_str(b, lua_toboolean(L, idx) ? "true" : "false"); return;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      jb_quote(b, s, len);
      return;
    }
    case LUA_TNUMBER: {
      char s[48];
      if (lua_isinteger(L, idx)) {
        snprintf(s, sizeof s, "%lld", (long long)lua_tointeger(L, idx));
      } else {
        const double x = lua_tonumber(L, idx);
        if (!isfinite(x)) luaL_error(L, "keel.backtest: %s: %f is not a finite number", path, x);
        snprintf(s, sizeof s, "%.17g", x);
        if (!strpbrk(s, ".eE")) strcat(s, ".0");
      }
      jb_str(b, s);
      return;
    }
    case LUA_TUSERDATA:
      if (luaL_testudata(L, idx, KEELI_VIEW_MT)) {
        const keeli_view *v = keeli_view_check(L, idx);
        if (v->matrix) luaL_error(L, "keel.backtest: %s: a matrix is not a list of numbers", path);
        jb_add(b, "[", 1);
        for (size_t j = 0; j < v->cols; j++) {
          lua_pushnumber(L, v->data[j]);
          if (j) jb_add(b, ",", 1);
          jb_value(b, -1, path, depth + 1);
          lua_pop(L, 1);
        }
        jb_add(b, "]", 1);
        return;
      }
      break;
    case LUA_TTABLE: {
      const lua_Unsigned len = lua_rawlen(L, idx);
      size_t nkeys = 0;
      int strkeys = 0;
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        lua_pop(L, 1);
        nkeys++;
        if (lua_type(L, -1) == LUA_TSTRING) strkeys = 1;
      }
      char sub[160];
      if (nkeys == 0) {
        jb_str(b, "{}");
        return;
      }
      if (!strkeys) {
        if (nkeys != len) luaL_error(L, "keel.backtest: %s: a table is either an array or has names as keys", path);
        jb_add(b, "[", 1);
        for (lua_Unsigned i = 1; i <= len; i++) {
          if (i > 1) jb_add(b, ",", 1);
          lua_rawgeti(L, idx, (lua_Integer)i);
          snprintf(sub, sizeof sub, "%s[%llu]", path, (unsigned long long)(i - 1));
          jb_value(b, -1, sub, depth + 1);
          lua_pop(L, 1);
        }
        jb_add(b, "]", 1);
        return;
      }
      jb_add(b, "{", 1);
      size_t k = 0;
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
          luaL_error(L, "keel.backtest: %s: a table is either an array or has names as keys", path);
        if (k++) jb_add(b, ",", 1);
        size_t kl;
        const char *ks = lua_tolstring(L, -2, &kl);
        jb_quote(b, ks, kl);
        jb_add(b, ":", 1);
        snprintf(sub, sizeof sub, "%s.%s", path, ks);
        jb_value(b, -1, sub, depth + 1);
        lua_pop(L, 1);
      }
      jb_add(b, "}", 1);
      return;
    }
    default: break;
  }
  luaL_error(L, "keel.backtest: %s: a %s cannot be part of a run description", path, luaL_typename(L, idx));
}

/* ---- keel.backtest ---- */

typedef struct run_box {
  keel_runspec *rs;
  keel_backtest_result *r;
} run_box;

static int run_gc(lua_State *L) {
  run_box *b = luaL_checkudata(L, 1, RUN_MT);
  keel_backtest_result_free(b->r);
  keel_runspec_free(b->rs);
  b->r = NULL;
  b->rs = NULL;
  return 0;
}

static const char *const TOP_KEYS[] = {"start", "end", "fill", "benchmark", "periods_per_year",
                                       "risk_free", "seed", "record_holdings", NULL};
static const char *const SUB_KEYS[] = {"name",   "capital", "weights", "assets",  "schedule", "rebalance_on_schedule",
                                       "band",   "vol_target", "costs", "skip",   "dca",      "stops",
                                       "defensive", "allow_short", "invest_at_start", "strategy", NULL};

static int in_list(const char *k, const char *const *list) {
  for (size_t i = 0; list[i]; i++)
    if (strcmp(k, list[i]) == 0) return 1;
  return 0;
}

/* Replaces the array weights (or view) in the sub-account table at sub by
 * a {symbol = w} table over the sub-account's assets (its `assets` list,
 * or the panel's columns). */
static void weights_by_symbol(lua_State *L, int sub, const char *field, const keel_panel *p) {
  lua_getfield(L, sub, field);
  const int w = lua_gettop(L);
  const int isview = luaL_testudata(L, w, KEELI_VIEW_MT) != NULL;
  if (!isview && !(lua_type(L, w) == LUA_TTABLE && lua_rawlen(L, w) > 0)) {
    lua_pop(L, 1);
    return;
  }
  /* the symbols the positions refer to */
  lua_getfield(L, sub, "assets");
  const int as = lua_gettop(L);
  size_t n;
  if (lua_type(L, as) == LUA_TTABLE)
    n = (size_t)lua_rawlen(L, as);
  else
    n = keel_panel_nassets(p);
  double *x = lua_newuserdatauv(L, (n ? n : 1) * sizeof(double), 0);
  char what[64];
  snprintf(what, sizeof what, "keel.backtest: %s", field);
  keeli_view_read(L, w, n, x, what);
  lua_createtable(L, 0, (int)(n > 64 ? 64 : n));
  for (size_t j = 0; j < n; j++) {
    if (lua_type(L, as) == LUA_TTABLE) {
      if (lua_rawgeti(L, as, (lua_Integer)j + 1) != LUA_TSTRING)
        luaL_error(L, "keel.backtest: assets[%I] must be a symbol", (LUAI_UACINT)(j + 1));
    } else {
      lua_pushstring(L, keel_panel_symbol(p, j));
    }
    lua_pushnumber(L, x[j]);
    lua_rawset(L, -3);
  }
  lua_setfield(L, sub, field);
  lua_settop(L, w - 1);
}

/* Builds the run description table from the options table at 1 and pushes it. */
static void build_description(lua_State *L, const keel_panel *p) {
  lua_newtable(L); /* the description */
  const int desc = lua_gettop(L);
  int has_subs = 0, shorthand = 0;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "keel.backtest: option keys must be names");
    const char *k = lua_tostring(L, -2);
    if (strcmp(k, "prices") == 0) {
      /* the panel: not part of the description */
    } else if (strcmp(k, "subaccounts") == 0) {
      has_subs = 1;
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      lua_rawset(L, desc);
    } else if (in_list(k, TOP_KEYS)) {
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      lua_rawset(L, desc);
    } else if (in_list(k, SUB_KEYS) || strcmp(k, "rebalance") == 0 || strcmp(k, "cost_bps") == 0 ||
               strcmp(k, "fee") == 0 || strcmp(k, "params") == 0) {
      shorthand = 1;
    } else {
      luaL_error(L,
                 "keel.backtest: unknown option '%s' (options: prices, subaccounts, %s, or for one sub-account: "
                 "weights, strategy, params, rebalance, band, cost_bps, fee, capital, costs, vol_target, dca, stops, "
                 "skip, defensive, assets, name, allow_short, invest_at_start, rebalance_on_schedule, schedule)",
                 k, "start, end, fill, benchmark, periods_per_year, risk_free, seed, record_holdings");
    }
    lua_pop(L, 1);
  }
  if (has_subs && shorthand)
    luaL_error(L, "keel.backtest: give either subaccounts or one sub-account's options (weights, strategy, ...)");
  if (has_subs) {
    lua_getfield(L, desc, "subaccounts");
    const int subs = lua_gettop(L);
    if (lua_type(L, subs) != LUA_TTABLE) luaL_error(L, "keel.backtest: subaccounts must be an array of tables");
    for (lua_Unsigned i = 1; i <= lua_rawlen(L, subs); i++) {
      if (lua_rawgeti(L, subs, (lua_Integer)i) == LUA_TTABLE) {
        weights_by_symbol(L, lua_gettop(L), "weights", p);
        weights_by_symbol(L, lua_gettop(L), "defensive", p);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return;
  }
  /* one sub-account from the shorthand */
  lua_newtable(L);
  const int sub = lua_gettop(L);
  for (size_t i = 0; SUB_KEYS[i]; i++) {
    lua_getfield(L, 1, SUB_KEYS[i]);
    lua_setfield(L, sub, SUB_KEYS[i]);
  }
  if (lua_getfield(L, 1, "rebalance") != LUA_TNIL) {
    if (lua_getfield(L, sub, "schedule") != LUA_TNIL) luaL_error(L, "keel.backtest: give rebalance or schedule, not both");
    lua_pop(L, 1);
    lua_setfield(L, sub, "schedule");
  } else {
    lua_pop(L, 1);
  }
  if (lua_getfield(L, sub, "capital") == LUA_TNIL) {
    lua_pushnumber(L, 100000);
    lua_setfield(L, sub, "capital");
  }
  lua_pop(L, 1);
  /* cost_bps and fee go into costs */
  const int cb = lua_getfield(L, 1, "cost_bps"), fe = lua_getfield(L, 1, "fee");
  if (cb != LUA_TNIL || fe != LUA_TNIL) {
    if (lua_getfield(L, sub, "costs") != LUA_TNIL) luaL_error(L, "keel.backtest: give costs or cost_bps/fee, not both");
    lua_pop(L, 1);
    lua_newtable(L);
    if (cb != LUA_TNIL) {
      lua_pushvalue(L, -3);
      lua_setfield(L, -2, "buy_bps");
      lua_pushvalue(L, -3);
      lua_setfield(L, -2, "sell_bps");
    }
    if (fe != LUA_TNIL) {
      lua_pushvalue(L, -2);
      lua_setfield(L, -2, "fee");
    }
    lua_setfield(L, sub, "costs");
  }
  lua_pop(L, 2);
  /* strategy = "name" (+ params) -> {name = ..., params...} */
  const int st = lua_getfield(L, sub, "strategy");
  const int pr = lua_getfield(L, 1, "params");
  if (st == LUA_TSTRING || pr != LUA_TNIL) {
    if (st != LUA_TSTRING) luaL_error(L, "keel.backtest: params need strategy = \"name\"");
    lua_newtable(L);
    if (pr == LUA_TTABLE) {
      lua_pushnil(L);
      while (lua_next(L, -3)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
      }
    } else if (pr != LUA_TNIL) {
      luaL_error(L, "keel.backtest: params must be a table");
    }
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "name");
    lua_setfield(L, sub, "strategy");
  } else if (st == LUA_TTABLE && lua_getfield(L, -2, "rebalance") == LUA_TFUNCTION) {
    luaL_error(L, "keel.backtest: a Lua strategy module cannot run here; give a built-in strategy's name");
  }
  lua_settop(L, sub);
  weights_by_symbol(L, sub, "weights", p);
  weights_by_symbol(L, sub, "defensive", p);
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, sub);
  lua_rawseti(L, -2, 1);
  lua_setfield(L, desc, "subaccounts");
  lua_settop(L, desc);
}

static void push_metrics(lua_State *L, const keel_metrics *m) {
  lua_createtable(L, 0, KEEL_METRICS_COUNT);
  for (size_t k = 0; k < KEEL_METRICS_COUNT; k++) {
    const char *name = keel_metrics_name(k);
    const double v = keel_metrics_value(m, k);
    if (strncmp(name, "dd_", 3) == 0) {
      /* dates: "yyyy-mm-dd", nil when there is none */
      if (isnan(v)) continue;
      char s[KEEL_DATE_BUFSIZE];
      keel_date_format((keel_date)v, s);
      lua_pushstring(L, s);
    } else if (strcmp(name, "ntrades") == 0 || strcmp(name, "nstops") == 0 || strcmp(name, "nobs") == 0) {
      lua_pushinteger(L, (lua_Integer)v);
    } else {
      lua_pushnumber(L, v);
    }
    lua_setfield(L, -2, name);
  }
}

static void push_series(lua_State *L, const double *x, size_t n) {
  keeli_view *v = keeli_view_new(L, 1, n, 0);
  if (n) memcpy(v->data, x, n * sizeof(double));
}

/* keel.backtest{prices = panel | path, ...} -> results */
static int l_backtest(lua_State *L) {
  const char *who = "keel.backtest";
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  keeli_host *h = keeli_host_get(L);
  /* the prices: a panel, or a CSV path loaded here */
  lua_getfield(L, 1, "prices");
  if (lua_type(L, -1) == LUA_TSTRING) {
    lua_pushcfunction(L, l_load_prices);
    lua_insert(L, -2);
    lua_call(L, 1, 1);
  }
  if (!luaL_testudata(L, -1, PANEL_MT))
    return luaL_error(L, "%s: prices must be a panel (keel.load_prices) or a CSV path", who);
  const keel_panel *p = check_panel(L, -1);
  build_description(L, p);
  jbuf jb;
  jb_init(L, &jb);
  jb_value(&jb, -2, "run", 0);
  run_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->rs = NULL;
  box->r = NULL;
  if (luaL_newmetatable(L, RUN_MT)) {
    lua_pushcfunction(L, run_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (keel_runspec_parse(h->ctx, who, jb.p, jb.n, p, NULL, &box->rs) != KEEL_OK)
    return luaL_error(L, "%s", keel_errmsg(h->ctx)); /* "keel.backtest: <json path>: what" */
  if (keel_backtest_run_account(h->ctx, p, keel_runspec_account(box->rs), &box->r) != KEEL_OK)
    return raise_keel(L, who);
  const keel_backtest_result *r = box->r;
  const size_t n = keel_backtest_npoints(r), ns = keel_backtest_nsubs(r);
  lua_createtable(L, 0, 16);
  push_metrics(L, keel_backtest_metrics(r));
  lua_setfield(L, -2, "metrics");
  push_series(L, keel_backtest_values(r), n);
  lua_setfield(L, -2, "values");
  push_series(L, keel_backtest_cash(r), n);
  lua_setfield(L, -2, "cash");
  push_series(L, keel_backtest_costs(r), n);
  lua_setfield(L, -2, "costs");
  push_series(L, keel_backtest_flows(r), n);
  lua_setfield(L, -2, "flows");
  lua_createtable(L, n > INT32_MAX ? INT32_MAX : (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    char s[KEEL_DATE_BUFSIZE];
    keel_date_format(keel_backtest_dates(r)[i], s);
    lua_pushstring(L, s);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "dates");
  lua_pushnumber(L, keel_backtest_capital(r));
  lua_setfield(L, -2, "capital");
  lua_pushnumber(L, n ? keel_backtest_values(r)[n - 1] : NAN);
  lua_setfield(L, -2, "final_value");
  lua_pushinteger(L, (lua_Integer)keel_backtest_ntrades(r));
  lua_setfield(L, -2, "ntrades");
  lua_pushinteger(L, (lua_Integer)keel_backtest_nrebalances(r));
  lua_setfield(L, -2, "nrebalances");
  lua_pushinteger(L, (lua_Integer)keel_backtest_nevents(r));
  lua_setfield(L, -2, "nevents");
  lua_pushinteger(L, (lua_Integer)keel_backtest_nopt_calls(r));
  lua_setfield(L, -2, "nopt_calls");
  lua_pushstring(L, keel_runspec_strategy(box->rs));
  lua_setfield(L, -2, "strategy");
  lua_pushstring(L, keel_runspec_json(box->rs));
  lua_setfield(L, -2, "description");
  lua_createtable(L, (int)(ns > 1024 ? 1024 : ns), 0);
  for (size_t s = 0; s < ns; s++) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, keel_backtest_sub_name(r, s));
    lua_setfield(L, -2, "name");
    push_series(L, keel_backtest_sub_values(r, s), n);
    lua_setfield(L, -2, "values");
    push_series(L, keel_backtest_sub_cash(r, s), n);
    lua_setfield(L, -2, "cash");
    push_metrics(L, keel_backtest_sub_metrics(r, s));
    lua_setfield(L, -2, "metrics");
    lua_rawseti(L, -2, (lua_Integer)s + 1);
  }
  lua_setfield(L, -2, "subaccounts");
  return 1;
}

int luaopen_keel(lua_State *L) {
  host_open(L);
  panel_open(L);
  keeli_open_keel(L);
  lua_pushcfunction(L, l_load_prices);
  lua_setfield(L, -2, "load_prices");
  lua_pushcfunction(L, l_backtest);
  lua_setfield(L, -2, "backtest");
  return 1;
}
