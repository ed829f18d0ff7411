/* keel — a Lua strategy behind keel_strategy_ops (docs/lua.md
 * "Strategies" and "ctx").
 *
 * The module runs in its own sandboxed state. Its params are validated
 * against the JSON object given at load time before any run. Each
 * callback (init, rebalance, on_bar) is one protected call with the
 * instance's limits: a C function that refreshes the one ctx table of the
 * instance in place, calls the Lua function, and reads the weights it
 * returned with raw access. ctx's views borrow the engine's arrays (and
 * the panel's prices, when the sub-account's columns are contiguous) and
 * the instance's buffers; generation counters are bumped after each call
 * so a view kept past its call raises instead of reading freed memory.
 *
 * When a limit broke the state, the sandbox rebuilds it and the module is
 * loaded again (its ctx.state starts empty) before the next callback. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>

#include "core/internal.h"
#include "keel/lua.h"
#include "keel/panel.h"
#include "keel/policy.h"
#include "lua/internal.h"

#define STRATEGY_FILE_MAX ((size_t)4 << 20)

typedef enum which { CALL_LOAD = 0, CALL_INIT, CALL_REBALANCE, CALL_ON_BAR } which;
static const char *const WHICH[] = {"load", "init", "rebalance", "on_bar"};

static int call_main(lua_State *L);

/* ctx's fields set on every call, in the order of their slots in
 * ref_keys: made into Lua strings once, so a call sets them without making
 * (hashing, comparing) a string from C each time. */
enum { K_T = 1, K_N, K_CASH, K_VALUE, K_PPY, K_DATE };
/* call_main's upvalues: a call reads them directly instead of looking
 * each up in the registry */
enum { UV_S = 1, UV_CTX, UV_P, UV_KEYS, UV_FN }; /* UV_FN + which: the callback (or nil) */
static const char *const KEYS[] = {"t", "n", "cash", "value", "periods_per_year", "date"};

typedef struct lstrat {
  keeli_heap heap;
  keel_strategy_ops ops; /* per instance: ops.name is the strategy's name */
  keel_lua *K;
  char *source;
  size_t len;
  char *chunkname; /* "@file.lua" */
  char *params_json;
  char name[128];
  unsigned long builds; /* of K when the module was loaded */
  int ref_mod, ref_p, ref_ctx, ref_fn[4], ref_sym;
  int ref_keys; /* the names of ctx's per-call fields as Lua strings (KEYS) */
  int ref_main; /* call_main as a closure over S, ctx, p, keys and the callbacks (UV_*) */
  keel_schedule sched;
  int has_sched;
  /* the call in progress */
  which call;
  const keel_strategy_input *in;
  double *target;
  int go;
  char fault[256];
  int einval;
  json_t *json;
  /* ctx */
  unsigned long gen, pgen, rgen; /* persistent views; ctx:prices; ctx:returns */
  keeli_view *vw, *vsh, *vcb, *vcs;
  size_t nviews;
  const keel_panel *panel; /* ctx.assets was built for this panel and these columns */
  size_t *cols;
  size_t ncols, colcap;
  const size_t *colsp; /* the caller's array they were copied from */
  double *zeros, *pbuf, *rbuf;
  size_t zcap, pcap, rcap;
  size_t *cnt;
  size_t cntcap;
  keel_date now;  /* the date of the current (or last) call */
  const size_t *ok_assets; /* the columns check_in last found valid, of ok_panel */
  const keel_panel *ok_panel;
  size_t ok_n;
  keel_date date; /* datestr holds this date */
  int date_set;
  char datestr[16];
  size_t datelen;
} lstrat;

static keel_status lua_init(void *state, keel_ctx *ctx, const keel_strategy_input *in);
static keel_status lua_rebalance(void *state, keel_ctx *ctx, const keel_strategy_input *in, double *target,
                                 keel_opt_record *rec);
static keel_status lua_on_bar(void *state, keel_ctx *ctx, const keel_strategy_input *in, double *target, int *go,
                              keel_opt_record *rec);
static void lua_free(void *state);

static const keel_strategy_ops LUA_OPS = {"lua", lua_init, lua_rebalance, lua_free, lua_on_bar};
static const keel_strategy_ops LUA_OPS_NO_BAR = {"lua", lua_init, lua_rebalance, lua_free, NULL};

/* ---- errors raised inside the protected calls ---- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fault(lua_State *L, lstrat *S, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(S->fault, sizeof S->fault, fmt, ap);
  va_end(ap);
  return luaL_error(L, "%s", S->fault);
}

/* A params error: KEEL_EINVAL once the call returns. */
#define param_error(L, S, ...) ((S)->einval = 1, fault((L), (S), __VA_ARGS__))

/* ---- growing C buffers (the instance's; no Lua error can leak them) ---- */

static void *grow(lua_State *L, lstrat *S, void *p, size_t *cap, size_t n, size_t elem) {
  if (n <= *cap) return p;
  if (n > ((size_t)-1 >> 1) / elem) luaL_error(L, "strategy %s: buffer too large", S->name);
  void *q = keeli_heap_realloc(&S->heap, p, n * elem);
  if (!q) luaL_error(L, "strategy %s: out of memory", S->name);
  *cap = n;
  return q;
}

/* ---- the module ---- */

static int raw_field(lua_State *L, int tbl, const char *key) {
  lua_pushstring(L, key);
  return lua_rawget(L, tbl < 0 ? tbl - 1 : tbl);
}

static const char *const PTYPES[] = {"number", "integer", "boolean", "string"};

static int ptype_of(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, PTYPES[i]) == 0) return i;
  return -1;
}

/* Whether the value at the top fits type ty. */
static int fits(lua_State *L, int ty) {
  switch (ty) {
    case 0: return lua_type(L, -1) == LUA_TNUMBER;
    case 1: return lua_isinteger(L, -1);
    case 2: return lua_type(L, -1) == LUA_TBOOLEAN;
    default: return lua_type(L, -1) == LUA_TSTRING;
  }
}

/* Pushes the JSON value as the Lua value of type ty, or raises a params
 * error naming the param. */
static void push_json(lua_State *L, lstrat *S, const char *key, json_t *v, int ty) {
  switch (ty) {
    case 0:
      if (!json_is_number(v)) param_error(L, S, "strategy %s: param '%s' must be a number", S->name, key);
      lua_pushnumber(L, json_number_value(v));
      return;
    case 1:
      if (json_is_integer(v)) {
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        return;
      }
      if (json_is_real(v)) {
        const double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9007199254740992.0) {
          lua_pushinteger(L, (lua_Integer)d);
          return;
        }
      }
      param_error(L, S, "strategy %s: param '%s' must be an integer", S->name, key);
      return;
    case 2:
      if (!json_is_boolean(v)) param_error(L, S, "strategy %s: param '%s' must be a boolean", S->name, key);
      lua_pushboolean(L, json_is_true(v));
      return;
    default:
      if (!json_is_string(v)) param_error(L, S, "strategy %s: param '%s' must be a string", S->name, key);
      lua_pushlstring(L, json_string_value(v), json_string_length(v));
      return;
  }
}

/* Builds the validated params table p from the declared params (at decl,
 * may be nil) and the JSON object; pushes p. */
static void build_params(lua_State *L, lstrat *S, int decl) {
  json_t *J = S->json;
  if (J) {
    const char *key;
    json_t *v;
    json_object_foreach(J, key, v) {
      if (lua_type(L, decl) != LUA_TTABLE || raw_field(L, decl, key) != LUA_TTABLE)
        param_error(L, S, "strategy %s: unknown param '%s'", S->name, key);
      lua_pop(L, 1);
    }
  }
  lua_newtable(L);
  const int p = lua_gettop(L);
  if (lua_type(L, decl) != LUA_TTABLE) return;
  lua_pushnil(L);
  while (lua_next(L, decl)) {
    if (lua_type(L, -2) != LUA_TSTRING) fault(L, S, "strategy %s: params must be keyed by name", S->name);
    const char *key = lua_tostring(L, -2);
    const int spec = lua_gettop(L);
    if (lua_type(L, spec) != LUA_TTABLE)
      fault(L, S, "strategy %s: param '%s' must be declared by a table {type =, default =, ...}", S->name, key);
    const int tt = raw_field(L, spec, "type");
    const int ty = tt == LUA_TSTRING ? ptype_of(lua_tostring(L, -1)) : -1;
    if (ty < 0)
      fault(L, S, "strategy %s: param '%s' has type %s (number, integer, boolean or string expected)", S->name, key,
            tt == LUA_TSTRING ? lua_tostring(L, -1) : lua_typename(L, tt));
    lua_pop(L, 1);
    json_t *jv = J ? json_object_get(J, key) : NULL;
    if (jv) {
      push_json(L, S, key, jv, ty);
    } else if (raw_field(L, spec, "default") == LUA_TNIL) {
      param_error(L, S, "strategy %s: param '%s' has no default and was not given", S->name, key);
    } else if (!fits(L, ty)) {
      fault(L, S, "strategy %s: the default of param '%s' is not a%s %s", S->name, key, ty == 1 ? "n" : "",
            PTYPES[ty]);
    }
    const int val = lua_gettop(L);
    const char *src = jv ? "" : " (its default)";
    if (ty <= 1) {
      const double x = lua_tonumber(L, val);
      if (!isfinite(x)) param_error(L, S, "strategy %s: param '%s' is not finite", S->name, key);
      if (raw_field(L, spec, "min") == LUA_TNUMBER && x < lua_tonumber(L, -1))
        param_error(L, S, "strategy %s: param '%s' is %.17g%s, below its min %.17g", S->name, key, x, src,
                    lua_tonumber(L, -1));
      lua_pop(L, 1);
      if (raw_field(L, spec, "max") == LUA_TNUMBER && x > lua_tonumber(L, -1))
        param_error(L, S, "strategy %s: param '%s' is %.17g%s, above its max %.17g", S->name, key, x, src,
                    lua_tonumber(L, -1));
      lua_pop(L, 1);
    }
    if (raw_field(L, spec, "values") == LUA_TTABLE) {
      const lua_Unsigned nv = lua_rawlen(L, -1);
      int found = 0;
      for (lua_Unsigned i = 1; i <= nv && !found; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i);
        found = lua_rawequal(L, -1, val);
        lua_pop(L, 1);
      }
      if (!found) {
        const int vt = lua_gettop(L);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (lua_Unsigned i = 1; i <= nv && i <= 16; i++) {
          lua_rawgeti(L, vt, (lua_Integer)i);
          if (i > 1) luaL_addstring(&b, ", ");
          if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
            luaL_addvalue(&b);
          } else {
            lua_pop(L, 1);
            luaL_addstring(&b, "?");
          }
        }
        luaL_pushresult(&b);
        const char *v = lua_type(L, val) == LUA_TSTRING ? lua_tostring(L, val) : "the value";
        param_error(L, S, "strategy %s: param '%s' is '%s'%s, not one of: %s", S->name, key, v, src,
                    lua_tostring(L, -1));
      }
    }
    lua_pop(L, 1);
    lua_pushvalue(L, -3); /* key */
    lua_pushvalue(L, val);
    lua_rawset(L, p);
    lua_settop(L, spec - 1); /* the key, for lua_next */
  }
}

/* ctx's __index: "date" as "yyyy-mm-dd" (by hand: snprintf would cost more
 * than the rest of a call), made when read; other missing names are nil. */
static int ctx_index(lua_State *L) {
  lstrat *S = lua_touserdata(L, lua_upvalueindex(1));
  size_t n;
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &n) : NULL;
  if (!k || n != 4 || memcmp(k, "date", 4) != 0) return 0;
  if (!S->date_set || S->date != S->now) {
    int y, m, dd;
    keel_date_to_ymd(S->now, &y, &m, &dd);
    if (y >= 0 && y <= 9999) {
      char *d = S->datestr;
      const int v[3] = {y, m, dd};
      d[0] = (char)('0' + y / 1000), d[1] = (char)('0' + y / 100 % 10), d[2] = (char)('0' + y / 10 % 10),
      d[3] = (char)('0' + y % 10);
      for (int j = 1; j < 3; j++) {
        d[3 * j + 1] = '-';
        d[3 * j + 2] = (char)('0' + v[j] / 10);
        d[3 * j + 3] = (char)('0' + v[j] % 10);
      }
      S->datelen = 10;
    } else {
      memcpy(S->datestr, "invalid", 7);
      S->datelen = 7;
    }
    S->date = S->now;
    S->date_set = 1;
  }
  lua_pushlstring(L, S->datestr, S->datelen);
  return 1;
}

static int ctx_prices(lua_State *L);
static int ctx_returns(lua_State *L);
static int ctx_price(lua_State *L);
static int ctx_log(lua_State *L);

/* Loads the module into the (new) state: runs the chunk, checks the
 * table, validates the params and makes ctx. Arguments: S, the chunk. */
static int load_main(lua_State *L) {
  lstrat *S = lua_touserdata(L, 1);
  lua_call(L, 0, 1);
  if (lua_type(L, 2) != LUA_TTABLE)
    return fault(L, S, "strategy %s: the module returned a %s (a table is expected)", S->name, luaL_typename(L, 2));
  const int mod = 2;
  if (raw_field(L, mod, "name") == LUA_TSTRING) snprintf(S->name, sizeof S->name, "%s", lua_tostring(L, -1));
  else if (!lua_isnil(L, -1)) return fault(L, S, "strategy %s: name must be a string", S->name);
  lua_pop(L, 1);
  static const char *const FN[] = {NULL, "init", "rebalance", "on_bar"};
  for (int i = 1; i < 4; i++) {
    const int t = raw_field(L, mod, FN[i]);
    if (t != LUA_TFUNCTION && (t != LUA_TNIL || i == CALL_REBALANCE))
      return fault(L, S, "strategy %s: %s must be a function%s (it is a %s)", S->name, FN[i],
                   i == CALL_REBALANCE ? "" : " or nil", lua_typename(L, t));
    S->ref_fn[i] = t == LUA_TFUNCTION ? luaL_ref(L, LUA_REGISTRYINDEX) : (lua_pop(L, 1), LUA_NOREF);
  }
  /* schedule */
  S->has_sched = 0;
  const int st = raw_field(L, mod, "schedule");
  if (st == LUA_TSTRING) {
    keel_calendar c;
    if (keel_calendar_parse(lua_tostring(L, -1), &c) || c == KEEL_CAL_EVERY_N)
      return fault(L, S, "strategy %s: unknown schedule '%s' (daily, weekly, monthly, quarterly, yearly, never or "
                   "{ every = n })", S->name, lua_tostring(L, -1));
    S->sched = (keel_schedule){c, 1};
    S->has_sched = 1;
  } else if (st == LUA_TTABLE) {
    if (raw_field(L, -1, "every") != LUA_TNUMBER || !lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
        lua_tointeger(L, -1) > 1000000)
      return fault(L, S, "strategy %s: schedule { every = n } needs an integer n >= 1", S->name);
    S->sched = (keel_schedule){KEEL_CAL_EVERY_N, (unsigned)lua_tointeger(L, -1)};
    S->has_sched = 1;
    lua_pop(L, 1);
  } else if (st != LUA_TNIL) {
    return fault(L, S, "strategy %s: schedule must be a string or { every = n }", S->name);
  }
  lua_pop(L, 1);
  raw_field(L, mod, "params");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TTABLE)
    return fault(L, S, "strategy %s: params must be a table", S->name);
  build_params(L, S, lua_gettop(L));
  S->ref_p = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  /* ctx: methods with S as upvalue; fields filled per call */
  lua_createtable(L, 0, 20);
  const struct {
    const char *name;
    lua_CFunction fn;
  } M[] = {{"prices", ctx_prices}, {"returns", ctx_returns}, {"price", ctx_price}, {"log", ctx_log}};
  for (size_t i = 0; i < sizeof M / sizeof M[0]; i++) {
    lua_pushlightuserdata(L, S);
    lua_pushcclosure(L, M[i].fn, 1);
    lua_setfield(L, -2, M[i].name);
  }
  lua_newtable(L);
  lua_setfield(L, -2, "state");
  /* ctx.date is made only when a callback reads it */
  lua_createtable(L, 0, 2);
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, ctx_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "keel.ctx");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  S->ref_ctx = luaL_ref(L, LUA_REGISTRYINDEX);
  S->ref_mod = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_createtable(L, (int)(sizeof KEYS / sizeof KEYS[0]), 0);
  for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++) {
    lua_pushstring(L, KEYS[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  S->ref_keys = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, S);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_ctx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_p);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_keys);
  for (int i = 0; i < 4; i++) {
    if (S->ref_fn[i] == LUA_NOREF) lua_pushnil(L);
    else lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_fn[i]);
  }
  lua_pushcclosure(L, call_main, UV_FN + 3);
  S->ref_main = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* (Re)loads the module into K's current state. */
static keel_status load_module(keel_ctx *ctx, lstrat *S) {
  S->vw = S->vsh = S->vcb = S->vcs = NULL;
  S->nviews = 0;
  S->panel = NULL;
  S->ncols = 0;
  S->date_set = 0;
  S->ref_sym = LUA_NOREF;
  S->fault[0] = 0;
  S->einval = 0;
  keel_status st = keeli_lua_load(ctx, S->K, S->source, S->len, S->chunkname);
  if (st) return st;
  lua_State *L = keeli_lua_state(ctx, S->K);
  lua_pushcfunction(L, load_main);
  lua_insert(L, -2);
  lua_pushlightuserdata(L, S);
  lua_insert(L, -2);
  S->json = NULL;
  if (S->params_json) {
    json_error_t je;
    S->json = json_loads(S->params_json, JSON_REJECT_DUPLICATES, &je);
    if (!S->json || !json_is_object(S->json)) {
      json_decref(S->json);
      S->json = NULL;
      lua_pop(L, 2);
      return keeli_error(ctx, KEEL_EINVAL, "strategy %s: params must be a JSON object%s%s", S->name,
                         je.text[0] ? ": " : "", je.text);
    }
  }
  st = keeli_lua_pcall(ctx, S->K, 2, 0, NULL);
  json_decref(S->json);
  S->json = NULL;
  if (st && S->einval) return keeli_error(ctx, KEEL_EINVAL, "%s", S->fault);
  if (st == KEEL_ELUA && S->fault[0]) return keeli_error(ctx, KEEL_ELUA, "%s", S->fault);
  if (st) return st;
  S->builds = keeli_lua_builds(S->K);
  S->ops.name = S->name;
  return KEEL_OK;
}

/* ---- ctx ---- */

static lstrat *upv(lua_State *L) {
  lstrat *S = lua_touserdata(L, lua_upvalueindex(1));
  if (!S->in) luaL_error(L, "ctx: used outside a strategy call");
  return S;
}

/* Rows of history available up to and including today. */
static size_t history(const keel_strategy_input *in) { return in->row - in->first_row + 1; }

static size_t check_k(lua_State *L, int idx) {
  const lua_Integer k = luaL_checkinteger(L, idx);
  if (k < 1) luaL_error(L, "ctx: k must be >= 1 (got %I)", (LUAI_UACINT)k);
  return (size_t)k;
}

static int contiguous(const keel_strategy_input *in) {
  for (size_t j = 1; j < in->nassets; j++)
    if (in->assets[j] != in->assets[0] + j) return 0;
  return in->nassets > 0;
}

static int ctx_prices(lua_State *L) {
  lstrat *S = upv(L);
  const keel_strategy_input *in = S->in;
  size_t k = check_k(L, 2);
  if (k > history(in)) k = history(in);
  const size_t n = in->nassets, np = keel_panel_nassets(in->panel), lo = in->row + 1 - k;
  const double *px = keel_panel_prices(in->panel);
  S->pgen++;
  if (contiguous(in)) {
    keeli_view_borrow(L, px + lo * np + in->assets[0], k, n, np, 1, &S->pgen);
    return 1;
  }
  S->pbuf = grow(L, S, S->pbuf, &S->pcap, (k * n > 0 ? k * n : 1), sizeof *S->pbuf);
  for (size_t t = 0; t < k; t++)
    for (size_t j = 0; j < n; j++) S->pbuf[t * n + j] = px[(lo + t) * np + in->assets[j]];
  keeli_view_borrow(L, S->pbuf, k, n, n, 1, &S->pgen);
  return 1;
}

static int ctx_returns(lua_State *L) {
  lstrat *S = upv(L);
  const keel_strategy_input *in = S->in;
  size_t k = check_k(L, 2);
  static const char *const KINDS[] = {"simple", "log", NULL};
  const int kind = luaL_checkoption(L, 3, "simple", KINDS);
  if (k > history(in) - 1) k = history(in) - 1;
  const size_t n = in->nassets;
  S->rgen++;
  S->rbuf = grow(L, S, S->rbuf, &S->rcap, (k * n > 0 ? k * n : 1), sizeof *S->rbuf);
  S->cnt = grow(L, S, S->cnt, &S->cntcap, n ? n : 1, sizeof *S->cnt);
  if (k) keeli_window_returns(in->panel, in->assets, n, in->row - k, in->row, S->rbuf, S->cnt);
  if (kind == 1)
    for (size_t i = 0; i < k * n; i++) S->rbuf[i] = log1p(S->rbuf[i]);
  keeli_view_borrow(L, S->rbuf, k, n, n, 1, &S->rgen);
  return 1;
}

static int ctx_price(lua_State *L) {
  lstrat *S = upv(L);
  const lua_Integer i = luaL_checkinteger(L, 2);
  if (i < 1 || (lua_Unsigned)i > S->in->nassets)
    return luaL_error(L, "ctx:price: asset %I out of range 1..%I", (LUAI_UACINT)i, (LUAI_UACINT)S->in->nassets);
  lua_pushnumber(L, keel_panel_price(S->in->panel, S->in->row, S->in->assets[i - 1]));
  return 1;
}

static int ctx_log(lua_State *L) {
  lstrat *S = upv(L);
  /* ctx.log(...) or ctx:log(...) */
  int first = 1;
  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_ctx);
    first = lua_rawequal(L, 1, -1) ? 2 : 1;
    lua_pop(L, 1);
  }
  return keeli_lua_log_args(L, first);
}

/* ctx.assets and the symbol -> index table, when the panel or columns
 * changed. ctx at idx. */
static void refresh_assets(lua_State *L, lstrat *S, int cidx) {
  const keel_strategy_input *in = S->in;
  /* the columns are compared at init (a new run); between, the same array */
  if (S->panel == in->panel && S->ncols == in->nassets &&
      ((S->call != CALL_INIT && S->colsp == in->assets) || in->nassets == 0 ||
       memcmp(S->cols, in->assets, in->nassets * sizeof *S->cols) == 0)) {
    S->colsp = in->assets;
    return;
  }
  const size_t n = in->nassets;
  S->ncols = 0;
  S->panel = NULL;
  S->cols = grow(L, S, S->cols, &S->colcap, n ? n : 1, sizeof *S->cols);
  lua_createtable(L, (int)n, 0);
  lua_createtable(L, 0, (int)n);
  for (size_t j = 0; j < n; j++) {
    const char *sym = keel_panel_symbol(in->panel, in->assets[j]);
    lua_pushstring(L, sym ? sym : "");
    lua_pushvalue(L, -1);
    lua_rawseti(L, -4, (lua_Integer)j + 1);
    lua_pushinteger(L, (lua_Integer)j + 1);
    lua_rawset(L, -3);
  }
  if (S->ref_sym != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, S->ref_sym);
  S->ref_sym = luaL_ref(L, LUA_REGISTRYINDEX);
  keeli_lua_readonly(L, 1);
  lua_setfield(L, cidx, "assets");
  memcpy(S->cols, in->assets, n * sizeof *S->cols);
  S->ncols = n;
  S->panel = in->panel;
  S->colsp = in->assets;
}

static keeli_view *persistent_view(lua_State *L, lstrat *S, int cidx, const char *field, size_t n) {
  keeli_view *v = keeli_view_borrow(L, S->zeros, 1, n, n, 0, &S->gen);
  lua_setfield(L, cidx, field);
  return v;
}

static void point(keeli_view *v, const double *data, size_t n, unsigned long gen) {
  v->data = (double *)data; /* read-only: borrowed views cannot be written */
  v->cols = v->ld = n;
  v->gen = gen;
}

/* Fills ctx (at cidx) for the call. */
static void refresh(lua_State *L, lstrat *S, int cidx) {
  const keel_strategy_input *in = S->in;
  const size_t n = in->nassets;
  refresh_assets(L, S, cidx);
  if (n >= S->zcap) {
    S->zeros = grow(L, S, S->zeros, &S->zcap, n + 1, sizeof *S->zeros);
    memset(S->zeros, 0, (n + 1) * sizeof *S->zeros);
  }
  if (!S->vw || S->nviews != n) {
    S->vw = persistent_view(L, S, cidx, "weights", n);
    S->vsh = persistent_view(L, S, cidx, "shares", n);
    S->vcb = persistent_view(L, S, cidx, "cost_buy", n);
    S->vcs = persistent_view(L, S, cidx, "cost_sell", n);
    S->nviews = n;
  }
  point(S->vw, in->weights ? in->weights : S->zeros, n, S->gen);
  point(S->vsh, in->shares ? in->shares : S->zeros, n, S->gen);
  point(S->vcb, in->cost_buy ? in->cost_buy : S->zeros, n, S->gen);
  point(S->vcs, in->cost_sell ? in->cost_sell : S->zeros, n, S->gen);
  const int keys = lua_upvalueindex(UV_KEYS);
  S->now = in->date; /* ctx.date is made from it when read (ctx_index) */
  lua_rawgeti(L, keys, K_T);
  lua_pushinteger(L, (lua_Integer)(in->row - in->first_row + 1));
  lua_rawset(L, cidx);
  lua_rawgeti(L, keys, K_N);
  lua_pushinteger(L, (lua_Integer)n);
  lua_rawset(L, cidx);
  lua_rawgeti(L, keys, K_CASH);
  lua_pushnumber(L, in->cash);
  lua_rawset(L, cidx);
  lua_rawgeti(L, keys, K_VALUE);
  lua_pushnumber(L, in->value);
  lua_rawset(L, cidx);
  lua_rawgeti(L, keys, K_PPY);
  lua_pushnumber(L, in->periods_per_year);
  lua_rawset(L, cidx);
}

/* ---- reading the weights ---- */

static const char *sym_of(const lstrat *S, size_t j) {
  const char *s = keel_panel_symbol(S->in->panel, S->in->assets[j]);
  return s ? s : "?";
}

/* Reads the weights at idx into S->target (raw access only) and checks them. */
static void read_targets(lua_State *L, lstrat *S, int idx) {
  const size_t n = S->in->nassets;
  double *t = S->target;
  const char *what = WHICH[S->call];
  const int ty = lua_type(L, idx);
  if (ty == LUA_TUSERDATA && keeli_view_test(L, idx)) {
    const keeli_view *v = keeli_view_check(L, idx);
    if (v->matrix && !(v->rows == 1 || v->cols == 1))
      fault(L, S, "%s returned a %zu x %zu matrix (weights over %zu assets expected)", what, v->rows, v->cols, n);
    const size_t len = v->matrix ? v->rows * v->cols : v->cols;
    if (len != n) fault(L, S, "%s returned a view of %zu weights for %zu assets", what, len, n);
    for (size_t j = 0; j < n; j++) t[j] = v->matrix && v->cols == 1 ? v->data[j * v->ld] : v->data[j];
  } else if (ty == LUA_TTABLE) {
    const lua_Unsigned len = lua_rawlen(L, idx);
    if (len > 0) {
      if (len != n) fault(L, S, "%s returned %llu weights for %zu assets", what, (unsigned long long)len, n);
      for (size_t j = 0; j < n; j++) {
        if (lua_rawgeti(L, idx, (lua_Integer)j + 1) != LUA_TNUMBER)
          fault(L, S, "%s returned weight %zu (%s) as a %s", what, j + 1, sym_of(S, j), luaL_typename(L, -1));
        t[j] = lua_tonumber(L, -1);
        lua_pop(L, 1);
      }
    } else {
      for (size_t j = 0; j < n; j++) t[j] = 0;
      lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_sym);
      const int sym = lua_gettop(L);
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
          fault(L, S, "%s returned a table with a %s key (symbols or an array expected)", what,
                luaL_typename(L, -2));
        lua_pushvalue(L, -2);
        if (lua_rawget(L, sym) != LUA_TNUMBER)
          fault(L, S, "%s returned a weight for '%s', which is not an asset of the sub-account", what,
                lua_tostring(L, -3));
        const size_t j = (size_t)lua_tointeger(L, -1) - 1;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER)
          fault(L, S, "%s returned the weight of %s as a %s", what, sym_of(S, j), luaL_typename(L, -1));
        t[j] = lua_tonumber(L, -1);
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
  } else {
    fault(L, S, "%s returned a %s (weights expected: an array, a table keyed by symbol, or a keel.view)", what,
          luaL_typename(L, idx));
  }
  double sum = 0;
  for (size_t j = 0; j < n; j++) {
    if (!isfinite(t[j])) fault(L, S, "%s gave %s the weight %g (not finite)", what, sym_of(S, j), t[j]);
    if (t[j] < 0) fault(L, S, "%s gave %s the weight %.17g (below 0)", what, sym_of(S, j), t[j]);
    sum += t[j];
  }
  if (sum > 1 + 1e-9) fault(L, S, "%s gave weights summing to %.17g (above 1; the rest is cash)", what, sum);
}

/* One callback: refresh ctx, call, read. Argument: S. */
static int call_main(lua_State *L) {
  lstrat *S = lua_touserdata(L, lua_upvalueindex(UV_S));
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(UV_CTX));
  refresh(L, S, 1);
  if (lua_isnil(L, lua_upvalueindex(UV_FN + (int)S->call))) return 0;
  lua_pushvalue(L, lua_upvalueindex(UV_FN + (int)S->call));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, lua_upvalueindex(UV_P));
  lua_call(L, 2, 1);
  if (S->call == CALL_INIT) return 0;
  if (S->call == CALL_ON_BAR && lua_isnil(L, -1)) return 0;
  read_targets(L, S, lua_gettop(L));
  S->go = 1;
  return 0;
}

static keel_status check_in(keel_ctx *ctx, lstrat *S, const keel_strategy_input *in, const char *what) {
  if (!in || !in->panel) return keeli_error(ctx, KEEL_EINVAL, "strategy %s: %s: no input or no panel", S->name, what);
  const size_t nd = keel_panel_ndates(in->panel), np = keel_panel_nassets(in->panel);
  if (in->row >= nd || in->first_row > in->row)
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: %s: row %zu (first row %zu) outside the panel's %zu rows",
                       S->name, what, in->row, in->first_row, nd);
  if (in->nassets && !in->assets)
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: %s: %zu assets but no columns", S->name, what, in->nassets);
  /* the engine passes the same column array on every call of a run (and has
   * checked it against the panel itself) */
  if (in->assets == S->ok_assets && in->panel == S->ok_panel && in->nassets == S->ok_n) return KEEL_OK;
  for (size_t k = 0; k < in->nassets; k++)
    if (in->assets[k] >= np)
      return keeli_error(ctx, KEEL_EINVAL, "strategy %s: %s: asset %zu is panel column %zu of %zu", S->name, what, k,
                         in->assets[k], np);
  S->ok_assets = in->assets;
  S->ok_panel = in->panel;
  S->ok_n = in->nassets;
  return KEEL_OK;
}

static keel_status run_call(lstrat *S, keel_ctx *ctx, which w, const keel_strategy_input *in, double *target,
                            int *go, keel_opt_record *rec) {
  keel_status st = check_in(ctx, S, in, WHICH[w]);
  if (st) return st;
  if (w != CALL_INIT && !target)
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: %s: target is NULL", S->name, WHICH[w]);
  lua_State *L = keeli_lua_state(ctx, S->K);
  if (!L) return keel_errcode(ctx) ? keel_errcode(ctx) : KEEL_ENOMEM;
  if (keeli_lua_builds(S->K) != S->builds && (st = load_module(ctx, S))) return st;
  if (!lua_checkstack(L, 3)) return keeli_error(ctx, KEEL_ENOMEM, "strategy %s: no Lua stack space", S->name);
  keeli_host *h = keeli_lua_host(S->K);
  h->opt = rec;
  S->call = w;
  S->in = in;
  S->target = target;
  S->go = 0;
  S->fault[0] = 0;
  S->einval = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_main);
  st = keeli_lua_pcall(ctx, S->K, 0, 0, NULL);
  h->opt = NULL;
  S->in = NULL;
  S->target = NULL;
  S->gen++, S->pgen++, S->rgen++; /* every view ctx handed out is stale now */
  if (go) *go = st ? 0 : S->go;
  if (!st) return KEEL_OK;
  char d[KEEL_DATE_BUFSIZE];
  keel_date_format(in->date, d);
  if (S->fault[0] && st == KEEL_ELUA)
    return keeli_error(ctx, KEEL_ELUA, "strategy %s: %s on %s: %s", S->name, WHICH[w], d, S->fault);
  char msg[896];
  snprintf(msg, sizeof msg, "%s", keel_errmsg(ctx));
  return keeli_error(ctx, st, "strategy %s: %s on %s: %s", S->name, WHICH[w], d, msg);
}

static keel_status lua_init(void *state, keel_ctx *ctx, const keel_strategy_input *in) {
  return run_call(state, ctx, CALL_INIT, in, NULL, NULL, NULL);
}

static keel_status lua_rebalance(void *state, keel_ctx *ctx, const keel_strategy_input *in, double *target,
                                 keel_opt_record *rec) {
  if (rec) memset(rec, 0, sizeof *rec);
  keel_status st = run_call(state, ctx, CALL_REBALANCE, in, target, NULL, rec);
  if (st && target && in)
    for (size_t j = 0; j < in->nassets; j++) target[j] = 0;
  return st;
}

static keel_status lua_on_bar(void *state, keel_ctx *ctx, const keel_strategy_input *in, double *target, int *go,
                              keel_opt_record *rec) {
  if (!go) return keeli_error(ctx, KEEL_EINVAL, "strategy %s: on_bar: go is NULL", ((lstrat *)state)->name);
  *go = 0;
  return run_call(state, ctx, CALL_ON_BAR, in, target, go, rec);
}

static void lua_free(void *state) {
  lstrat *S = state;
  if (!S) return;
  keeli_heap heap = S->heap;
  keel_lua_free(S->K);
  keeli_heap_free(&heap, S->source);
  keeli_heap_free(&heap, S->chunkname);
  keeli_heap_free(&heap, S->params_json);
  keeli_heap_free(&heap, S->cols);
  keeli_heap_free(&heap, S->zeros);
  keeli_heap_free(&heap, S->pbuf);
  keeli_heap_free(&heap, S->rbuf);
  keeli_heap_free(&heap, S->cnt);
  keeli_heap_free(&heap, S);
}

/* ---- construction ---- */

static char *heap_strndup(const keeli_heap *h, const char *s, size_t n) {
  char *d = keeli_heap_alloc(h, n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

static keel_status make(keel_ctx *ctx, const keel_lua_config *cfg, char *source, size_t len, const char *name,
                        const char *dir, const char *params_json, keel_strategy **out) {
  lstrat *S = keeli_calloc(ctx, 1, sizeof *S);
  if (!S) {
    keeli_free(ctx, source);
    return KEEL_ENOMEM;
  }
  S->heap = *keeli_ctx_heap(ctx);
  S->source = source;
  S->len = len;
  for (int i = 0; i < 4; i++) S->ref_fn[i] = LUA_NOREF;
  S->ref_sym = LUA_NOREF;
  /* the default name: the chunk's file name without folders and .lua */
  const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
  if (*base == '@' || *base == '=') base++;
  size_t bl = strlen(base);
  if (bl > 4 && strcmp(base + bl - 4, ".lua") == 0) bl -= 4;
  snprintf(S->name, sizeof S->name, "%.*s", (int)(bl < 100 ? bl : 100), base);
  const size_t nl = strlen(name);
  S->chunkname = keeli_heap_alloc(&S->heap, nl + 2);
  if (S->chunkname) {
    S->chunkname[0] = '@';
    memcpy(S->chunkname + 1, name[0] == '@' || name[0] == '=' ? name + 1 : name, nl + 1);
  }
  if (params_json) S->params_json = heap_strndup(&S->heap, params_json, strlen(params_json));
  if (!S->chunkname || (params_json && !S->params_json)) {
    lua_free(S);
    return keeli_error(ctx, KEEL_ENOMEM, "strategy: out of memory");
  }
  /* the folders: the module's own first, then the configured ones */
  keel_lua_config c;
  if (cfg) c = *cfg;
  else keel_lua_config_default(&c);
  const char *paths[65];
  size_t np = 0;
  if (dir) paths[np++] = dir;
  for (size_t i = 0; cfg && cfg->paths && cfg->paths[i] && np < 64; i++) paths[np++] = cfg->paths[i];
  paths[np] = NULL;
  c.paths = paths;
  keel_status st = keel_lua_new(ctx, &c, &S->K);
  if (!st) st = load_module(ctx, S);
  if (!st) {
    S->ops = S->ref_fn[CALL_ON_BAR] != LUA_NOREF ? LUA_OPS : LUA_OPS_NO_BAR;
    S->ops.name = S->name;
    st = keeli_strategy_new(ctx, &S->ops, S, out);
  }
  if (st) lua_free(S);
  return st;
}

keel_status keel_lua_strategy_from_source(keel_ctx *ctx, const keel_lua_config *cfg, const char *source, size_t len,
                                          const char *name, const char *params_json, keel_strategy **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "strategy: out is NULL");
  *out = NULL;
  if (!source && len) return keeli_error(ctx, KEEL_EINVAL, "strategy: no source");
  char *src = keeli_alloc(ctx, len ? len : 1);
  if (!src) return KEEL_ENOMEM;
  if (len) memcpy(src, source, len);
  return make(ctx, cfg, src, len, name && *name ? name : "strategy", NULL, params_json, out);
}

keel_status keeli_lua_read_module(keel_ctx *ctx, const keel_lua_config *cfg, const char *what, const char *module,
                                  char path[KEELI_PATH_MAX], char **src_out, size_t *len_out) {
  *src_out = NULL;
  *len_out = 0;
  if (!module || !*module) return keeli_error(ctx, KEEL_EINVAL, "%s: no module given", what);
  const size_t ml = strlen(module);
  const int is_path = strchr(module, '/') || (ml > 4 && strcmp(module + ml - 4, ".lua") == 0);
  FILE *f = NULL;
  if (is_path) {
    if (ml >= KEELI_PATH_MAX) return keeli_error(ctx, KEEL_EINVAL, "%s: path too long", what);
    memcpy(path, module, ml + 1);
    f = fopen(path, "rb");
    if (!f) return keeli_error(ctx, KEEL_EIO, "%s: cannot open %s: %s", what, path, strerror(errno));
  } else {
    for (const char *p = module; *p; p++)
      if (!(*p == '_' || *p == '.' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
            (*p >= 'A' && *p <= 'Z')))
        return keeli_error(ctx, KEEL_EINVAL, "%s: module name '%s' may hold only letters, digits, '_' and '.'",
                           what, module);
    char rel[512];
    if (ml + 5 > sizeof rel) return keeli_error(ctx, KEEL_EINVAL, "%s: module name too long", what);
    for (size_t i = 0; i <= ml; i++) rel[i] = module[i] == '.' ? '/' : module[i];
    memcpy(rel + ml, ".lua", 5);
    for (size_t i = 0; cfg && cfg->paths && cfg->paths[i] && !f; i++)
      if ((size_t)snprintf(path, KEELI_PATH_MAX, "%s/%s", cfg->paths[i], rel) < KEELI_PATH_MAX) f = fopen(path, "rb");
    if (!f) return keeli_error(ctx, KEEL_EINVAL, "%s: module '%s' not found in the strategy folders", what, module);
  }
  char *src = NULL;
  size_t len = 0, cap = 0;
  keel_status st = KEEL_OK;
  for (;;) {
    if (len == cap) {
      if (cap >= STRATEGY_FILE_MAX) {
        st = keeli_error(ctx, KEEL_EINVAL, "%s: %s is over %zu bytes", what, path, STRATEGY_FILE_MAX);
        break;
      }
      cap = cap ? 2 * cap : 8192;
      char *q = keeli_realloc_array(ctx, src, cap, 1);
      if (!q) {
        st = KEEL_ENOMEM;
        break;
      }
      src = q;
    }
    const size_t got = fread(src + len, 1, cap - len, f);
    len += got;
    if (got == 0) {
      if (ferror(f)) st = keeli_error(ctx, KEEL_EIO, "%s: cannot read %s", what, path);
      break;
    }
  }
  fclose(f);
  if (st) {
    keeli_free(ctx, src);
    return st;
  }
  *src_out = src;
  *len_out = len;
  return KEEL_OK;
}

keel_status keel_lua_strategy_load(keel_ctx *ctx, const keel_lua_config *cfg, const char *module,
                                   const char *params_json, keel_strategy **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "strategy: out is NULL");
  *out = NULL;
  char path[KEELI_PATH_MAX];
  char *src;
  size_t len;
  keel_status st = keeli_lua_read_module(ctx, cfg, "strategy", module, path, &src, &len);
  if (st) return st;
  const int is_path = strcmp(path, module) == 0;
  char dir[KEELI_PATH_MAX];
  const char *slash = is_path ? strrchr(path, '/') : NULL;
  if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  return make(ctx, cfg, src, len, is_path ? path : strrchr(path, '/') ? strrchr(path, '/') + 1 : path,
              slash ? dir : NULL, params_json, out);
}

int keel_lua_strategy_is(const keel_strategy *s) { return s && s->ops && s->ops->rebalance == lua_rebalance; }

const char *keel_lua_strategy_name(const keel_strategy *s) {
  return keel_lua_strategy_is(s) ? ((const lstrat *)s->state)->name : NULL;
}

int keel_lua_strategy_schedule(const keel_strategy *s, keel_schedule *out) {
  if (!keel_lua_strategy_is(s)) return 0;
  const lstrat *S = s->state;
  if (out) *out = S->has_sched ? S->sched : (keel_schedule){KEEL_CAL_NEVER, 1};
  return S->has_sched;
}

const char *keel_lua_strategy_log(const keel_strategy *s) {
  return keel_lua_strategy_is(s) ? keel_lua_log(((const lstrat *)s->state)->K) : NULL;
}
