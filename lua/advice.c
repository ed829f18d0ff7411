/* keel — advice: a recommendation template run for a profile and holdings.
 *
 * A call goes: validate the inputs in C; take a sandboxed state from the
 * template's pool; in one protected call run the template's module chunk
 * afresh (its upvalues and the modules it requires are new each call),
 * build the profile and market tables, call advise and read the plan with
 * raw access into C; compute the trades from the holdings to the combined
 * baskets with the backtest engine (one row at the quotes); in a second
 * protected call run explain; give the state back. Everything the plan
 * leaves in C is attached to the advice as soon as it is allocated, so an
 * error part-way loses nothing and leaks nothing.
 */
#include "keel/advice.h"

#include <jansson.h>
#include <lauxlib.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "keel/backtest.h"
#include "keel/panel.h"
#include "keel/mc.h"
#include "keel/stress.h"
#include "lua/internal.h"

#define MAX_SUBS 16
#define MAX_WEIGHTS 64
#define MAX_NAME 64
#define MAX_TEXT 16384 /* explanation and purpose bytes */
#define MAX_STOPS 16
#define MAX_WORD 16
#define POOL_MAX 64

/* ---- names ---- */

static const char *const GOALS[] = {"general", "travel", "education", "retirement"};

const char *keel_goal_name(keel_goal g) { return (unsigned)g < 4 ? GOALS[g] : "?"; }

int keel_goal_parse(const char *s, keel_goal *out) {
  for (int i = 0; s && i < 4; i++)
    if (strcmp(s, GOALS[i]) == 0) {
      *out = (keel_goal)i;
      return 0;
    }
  return -1;
}

void keel_profile_default(keel_profile *p) {
  memset(p, 0, sizeof *p);
  p->age = 40;
  p->horizon = 10;
  p->risk_score = 5;
  p->goal = KEEL_GOAL_GENERAL;
}

void keel_advice_input_default(keel_advice_input *in) {
  memset(in, 0, sizeof *in);
  keel_cost_model_default(&in->costs);
}

/* ---- the template and its pool ---- */

struct keel_template {
  keeli_heap heap;
  char *name;        /* the module's name field */
  char *source;      /* the chunk */
  size_t len;
  char *chunkname;   /* "@path" */
  char **paths;      /* NULL-terminated copy of the search folders */
  keel_lua_config cfg;
  char **universe;
  size_t nuniverse;
  pthread_mutex_t mu;
  keel_lua *pool[POOL_MAX];
  int chunk_ref[POOL_MAX]; /* registry reference of the compiled chunk in each pooled state */
  size_t npool;
};

typedef struct pooled {
  keel_lua *K;
  int ref;
} pooled;

static void template_free_strings(keel_template *t) {
  const keeli_heap *h = &t->heap;
  keeli_heap_free(h, t->name);
  keeli_heap_free(h, t->source);
  keeli_heap_free(h, t->chunkname);
  if (t->paths)
    for (char **p = t->paths; *p; p++) keeli_heap_free(h, *p);
  keeli_heap_free(h, t->paths);
  for (size_t i = 0; i < t->nuniverse; i++) keeli_heap_free(h, t->universe[i]);
  keeli_heap_free(h, t->universe);
}

void keel_template_free(keel_template *t) {
  if (!t) return;
  for (size_t i = 0; i < t->npool; i++) keel_lua_free(t->pool[i]);
  pthread_mutex_destroy(&t->mu);
  template_free_strings(t);
  keeli_heap_free(&t->heap, t);
}

const char *keel_template_name(const keel_template *t) { return t->name; }
size_t keel_template_nuniverse(const keel_template *t) { return t->nuniverse; }
const char *keel_template_symbol(const keel_template *t, size_t i) {
  return i < t->nuniverse ? t->universe[i] : NULL;
}

static char *heap_strdup(const keeli_heap *h, const char *s, size_t n) {
  char *d = keeli_heap_alloc(h, n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

/* Prepares a state: a new sandbox with the template's chunk compiled and
 * kept in the registry. */
static keel_status pool_prepare(keel_ctx *ctx, keel_template *t, pooled *out) {
  keel_lua *K = NULL;
  keel_status st = keel_lua_new(ctx, &t->cfg, &K);
  if (st) return st;
  lua_State *L = keeli_lua_state(ctx, K);
  if (!L) {
    keel_lua_free(K);
    return keel_errcode(ctx) ? keel_errcode(ctx) : KEEL_ENOMEM;
  }
  if ((st = keeli_lua_load(ctx, K, t->source, t->len, t->chunkname))) {
    keel_lua_free(K);
    return st;
  }
  if (!lua_checkstack(L, 4)) {
    lua_pop(L, 1);
    keel_lua_free(K);
    return keeli_error(ctx, KEEL_ENOMEM, "template %s: out of memory", t->chunkname + 1);
  }
  out->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (out->ref == LUA_REFNIL || out->ref == LUA_NOREF) {
    keel_lua_free(K);
    return keeli_error(ctx, KEEL_ENOMEM, "template %s: out of memory", t->chunkname + 1);
  }
  out->K = K;
  return KEEL_OK;
}

static keel_status pool_take(keel_ctx *ctx, keel_template *t, pooled *out) {
  pthread_mutex_lock(&t->mu);
  if (t->npool) {
    t->npool--;
    out->K = t->pool[t->npool];
    out->ref = t->chunk_ref[t->npool];
    pthread_mutex_unlock(&t->mu);
    return KEEL_OK;
  }
  pthread_mutex_unlock(&t->mu);
  return pool_prepare(ctx, t, out);
}

/* Gives a state back (or frees it when the pool is full). A state a limit
 * broke is rebuilt by the sandbox, which loses the chunk: it is freed. */
static void pool_give(keel_template *t, pooled *p, int broken) {
  if (broken) {
    keel_lua_free(p->K);
    return;
  }
  keeli_lua_forget_modules(p->K);
  pthread_mutex_lock(&t->mu);
  if (t->npool < POOL_MAX) {
    t->pool[t->npool] = p->K;
    t->chunk_ref[t->npool] = p->ref;
    t->npool++;
    p->K = NULL;
  }
  pthread_mutex_unlock(&t->mu);
  if (p->K) keel_lua_free(p->K);
}

/* ---- reading Lua values with raw access ---- */

static int raw_field(lua_State *L, int tbl, const char *key) {
  lua_pushstring(L, key);
  return lua_rawget(L, tbl < 0 ? tbl - 1 : tbl);
}

static double field_number(lua_State *L, int tbl, const char *key, const char *where, int required, double dflt) {
  int ty = raw_field(L, tbl, key);
  double v = dflt;
  if (ty == LUA_TNUMBER) {
    v = lua_tonumber(L, -1);
    if (!isfinite(v)) luaL_error(L, "%s: %s is not finite", where, key);
  } else if (ty != LUA_TNIL || required) {
    luaL_error(L, "%s: %s must be a number", where, key);
  }
  lua_pop(L, 1);
  return v;
}

/* The string at the top (copied to out, at most size - 1 bytes). */
static const char *field_string(lua_State *L, int tbl, const char *key, const char *where, int required, char *out,
                                size_t size) {
  int ty = raw_field(L, tbl, key);
  const char *r = NULL;
  if (ty == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (n >= size) luaL_error(L, "%s: %s is longer than %d bytes", where, key, (int)size - 1);
    memcpy(out, s, n);
    out[n] = 0;
    r = out;
  } else if (ty != LUA_TNIL || required) {
    luaL_error(L, "%s: %s must be a string", where, key);
  }
  lua_pop(L, 1);
  return r;
}

/* ---- the advice ---- */

typedef struct adv_stop {
  char kind[MAX_WORD], action[MAX_WORD], reentry[MAX_WORD];
  long asset; /* index into the symbols, -1: the whole sub-account */
  double level, days;
} adv_stop;

/* A sub-account of the plan, its policy as the template gave it (names
 * checked against docs/formats.md; empty: not given). */
typedef struct adv_sub {
  char name[MAX_NAME + 1];
  char *purpose;
  double amount;
  size_t nw;
  size_t col[MAX_WEIGHTS]; /* index into the symbols */
  double w[MAX_WEIGHTS];
  int has_rebalance, has_band, has_dca;
  char schedule[MAX_WORD], action[MAX_WORD];
  double band_abs, band_rel;
  double dca_amount;
  char dca_schedule[MAX_WORD], dca_dest[MAX_WORD];
  size_t nstops;
  adv_stop stops[MAX_STOPS];
} adv_sub;

struct keel_advice {
  keeli_heap heap;
  int risk_score;
  double total, trade_costs, fees, cash_after, value_after;
  double goal_p, goal_q[3]; /* the goal odds and wealth quantiles (NaN: not computed) */
  char *explanation;
  size_t nsubs;
  adv_sub subs[MAX_SUBS];
  size_t nsym;
  char **sym;          /* the symbols traded or held (quotes order) */
  keel_advice_trade *trades;
  size_t ntrades;
  char template_name[MAX_NAME + 1];
};

void keel_advice_free(keel_advice *a) {
  if (!a) return;
  const keeli_heap *h = &a->heap;
  keeli_heap_free(h, a->explanation);
  for (size_t s = 0; s < a->nsubs; s++) keeli_heap_free(h, a->subs[s].purpose);
  for (size_t i = 0; i < a->nsym; i++) keeli_heap_free(h, a->sym[i]);
  keeli_heap_free(h, a->sym);
  keeli_heap_free(h, a->trades);
  keeli_heap hh = a->heap;
  keeli_heap_free(&hh, a);
}

int keel_advice_risk_score(const keel_advice *a) { return a->risk_score; }
double keel_advice_total(const keel_advice *a) { return a->total; }
double keel_advice_trade_costs(const keel_advice *a) { return a->trade_costs; }
double keel_advice_yearly_fees(const keel_advice *a) { return a->fees; }
double keel_advice_cash_after(const keel_advice *a) { return a->cash_after; }
double keel_advice_goal_probability(const keel_advice *a) { return a->goal_p; }
double keel_advice_goal_wealth(const keel_advice *a, double q) {
  return q == 0.05 ? a->goal_q[0] : q == 0.5 ? a->goal_q[1] : q == 0.95 ? a->goal_q[2] : NAN;
}
const char *keel_advice_explanation(const keel_advice *a) { return a->explanation ? a->explanation : ""; }
size_t keel_advice_ntrades(const keel_advice *a) { return a->ntrades; }
const keel_advice_trade *keel_advice_trades(const keel_advice *a) { return a->trades; }
size_t keel_advice_nsubs(const keel_advice *a) { return a->nsubs; }
const char *keel_advice_sub_name(const keel_advice *a, size_t s) { return s < a->nsubs ? a->subs[s].name : NULL; }
const char *keel_advice_sub_purpose(const keel_advice *a, size_t s) {
  return s < a->nsubs ? (a->subs[s].purpose ? a->subs[s].purpose : "") : NULL;
}
double keel_advice_sub_amount(const keel_advice *a, size_t s) { return s < a->nsubs ? a->subs[s].amount : NAN; }
size_t keel_advice_sub_nweights(const keel_advice *a, size_t s) { return s < a->nsubs ? a->subs[s].nw : 0; }
const char *keel_advice_sub_symbol(const keel_advice *a, size_t s, size_t k) {
  return s < a->nsubs && k < a->subs[s].nw ? a->sym[a->subs[s].col[k]] : NULL;
}
double keel_advice_sub_weight(const keel_advice *a, size_t s, size_t k) {
  return s < a->nsubs && k < a->subs[s].nw ? a->subs[s].w[k] : NAN;
}

/* ---- input checks ---- */

static keel_status check_profile(keel_ctx *ctx, const keel_profile *p) {
  if (!p) return keeli_error(ctx, KEEL_EINVAL, "advice: no profile");
  if (p->age < 18 || p->age > 120)
    return keeli_error(ctx, KEEL_EINVAL, "profile: age %d must be from 18 to 120", p->age);
  if (!(p->horizon > 0 && p->horizon <= 100))
    return keeli_error(ctx, KEEL_EINVAL, "profile: horizon %g must be more than 0 and at most 100 years", p->horizon);
  if (p->risk_score < 0 || p->risk_score > 10)
    return keeli_error(ctx, KEEL_EINVAL, "profile: risk_score %d must be from 1 to 10", p->risk_score);
  if (p->risk_score == 0 && !p->nanswers)
    return keeli_error(ctx, KEEL_EINVAL, "profile: give a risk_score or the questionnaire answers");
  if (p->risk_score != 0 && p->nanswers)
    return keeli_error(ctx, KEEL_EINVAL, "profile: give a risk_score or the questionnaire answers, not both");
  if (p->nanswers > 64) return keeli_error(ctx, KEEL_EINVAL, "profile: %zu answers (at most 64)", p->nanswers);
  for (size_t i = 0; i < p->nanswers; i++) {
    const char *q = p->answers[i].question;
    if (!q || !*q || strlen(q) > MAX_NAME)
      return keeli_error(ctx, KEEL_EINVAL, "profile: answer %zu has no question id (or one over %d bytes)", i, MAX_NAME);
    for (size_t j = 0; j < i; j++)
      if (strcmp(p->answers[j].question, q) == 0)
        return keeli_error(ctx, KEEL_EINVAL, "profile: question '%s' is answered twice", q);
  }
  if ((unsigned)p->goal > KEEL_GOAL_RETIREMENT) return keeli_error(ctx, KEEL_EINVAL, "profile: unknown goal %d", (int)p->goal);
  const double v[] = {p->initial, p->monthly, p->liquidity, p->goal_amount};
  const char *nm[] = {"initial", "monthly", "liquidity", "goal_amount"};
  for (int i = 0; i < 4; i++)
    if (!(isfinite(v[i]) && v[i] >= 0))
      return keeli_error(ctx, KEEL_EINVAL, "profile: %s %g must be a finite amount >= 0", nm[i], v[i]);
  return KEEL_OK;
}

static long find_quote(const keel_advice_input *in, const char *sym) {
  for (size_t i = 0; i < in->nquotes; i++)
    if (strcmp(in->quotes[i].symbol, sym) == 0) return (long)i;
  return -1;
}

static keel_status check_input(keel_ctx *ctx, const keel_template *t, const keel_advice_input *in) {
  keel_status st = check_profile(ctx, in->profile);
  if (st) return st;
  if (!(isfinite(in->cash) && in->cash >= 0))
    return keeli_error(ctx, KEEL_EINVAL, "holdings: cash %g must be a finite amount >= 0", in->cash);
  if (!in->nquotes || !in->quotes) return keeli_error(ctx, KEEL_EINVAL, "quotes: none given");
  if (in->nquotes > 4096) return keeli_error(ctx, KEEL_EINVAL, "quotes: %zu symbols (at most 4096)", in->nquotes);
  for (size_t i = 0; i < in->nquotes; i++) {
    const keel_quote *q = &in->quotes[i];
    if (!q->symbol || !*q->symbol || strlen(q->symbol) > MAX_NAME)
      return keeli_error(ctx, KEEL_EINVAL, "quotes: entry %zu has no symbol (or one over %d bytes)", i, MAX_NAME);
    if (!(isfinite(q->price) && q->price > 0))
      return keeli_error(ctx, KEEL_EINVAL, "quotes: %s price %g must be finite and > 0", q->symbol, q->price);
    if (!(isfinite(q->lot) && q->lot >= 0) || !(isfinite(q->min_trade) && q->min_trade >= 0))
      return keeli_error(ctx, KEEL_EINVAL, "quotes: %s lot and min_trade must be finite and >= 0", q->symbol);
    if (!isnan(q->expense_ratio) && !(q->expense_ratio >= 0 && q->expense_ratio < 1))
      return keeli_error(ctx, KEEL_EINVAL, "quotes: %s expense_ratio %g must be in [0, 1)", q->symbol,
                         q->expense_ratio);
    for (size_t j = 0; j < i; j++)
      if (strcmp(in->quotes[j].symbol, q->symbol) == 0)
        return keeli_error(ctx, KEEL_EINVAL, "quotes: %s is quoted twice", q->symbol);
  }
  for (size_t i = 0; i < t->nuniverse; i++)
    if (find_quote(in, t->universe[i]) < 0)
      return keeli_error(ctx, KEEL_EINVAL, "quotes: no quote for %s, which template %s uses", t->universe[i], t->name);
  if (in->nholdings && !in->holdings) return keeli_error(ctx, KEEL_EINVAL, "holdings: %zu positions but no array", in->nholdings);
  for (size_t i = 0; i < in->nholdings; i++) {
    const keel_position *h = &in->holdings[i];
    if (!h->symbol || !*h->symbol) return keeli_error(ctx, KEEL_EINVAL, "holdings: position %zu has no symbol", i);
    if (!(isfinite(h->shares) && h->shares >= 0))
      return keeli_error(ctx, KEEL_EINVAL, "holdings: %s shares %g must be finite and >= 0", h->symbol, h->shares);
    if (find_quote(in, h->symbol) < 0)
      return keeli_error(ctx, KEEL_EINVAL, "holdings: %s is held but has no quote", h->symbol);
    for (size_t j = 0; j < i; j++)
      if (strcmp(in->holdings[j].symbol, h->symbol) == 0)
        return keeli_error(ctx, KEEL_EINVAL, "holdings: %s is listed twice", h->symbol);
  }
  return KEEL_OK;
}

/* ---- the protected calls ---- */

typedef struct advise_job {
  keel_advice *a;
  const keel_advice_input *in;
  const keel_template *t;
} advise_job;

static void read_policies(lua_State *L, int sub, const char *where, adv_sub *S, const keel_advice_input *in) {
  char w2[MAX_NAME + 48];
  if (raw_field(L, sub, "rebalance") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_error(L, "%s: rebalance must be a table", where);
    snprintf(w2, sizeof w2, "%s.rebalance", where);
    S->has_rebalance = 1;
    keel_calendar c;
    if (field_string(L, -1, "schedule", w2, 0, S->schedule, sizeof S->schedule) && keel_calendar_parse(S->schedule, &c) < 0)
      luaL_error(L, "%s: unknown schedule '%s'", w2, S->schedule);
    keel_band_action a;
    if (field_string(L, -1, "action", w2, 0, S->action, sizeof S->action) && keel_band_action_parse(S->action, &a) < 0)
      luaL_error(L, "%s: unknown band action '%s'", w2, S->action);
    if (raw_field(L, -1, "band") != LUA_TNIL) {
      if (!lua_istable(L, -1)) luaL_error(L, "%s: band must be a table", w2);
      S->has_band = 1;
      S->band_abs = field_number(L, -1, "abs", w2, 0, 0);
      S->band_rel = field_number(L, -1, "rel", w2, 0, 0);
      if (S->band_abs < 0 || S->band_abs >= 1 || S->band_rel < 0 || (S->band_abs == 0 && S->band_rel == 0))
        luaL_error(L, "%s: band needs abs in (0, 1) and/or rel > 0", w2);
    }
    lua_pop(L, 2);
  } else {
    lua_pop(L, 1);
  }
  if (raw_field(L, sub, "dca") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_error(L, "%s: dca must be a table", where);
    snprintf(w2, sizeof w2, "%s.dca", where);
    S->has_dca = 1;
    S->dca_amount = field_number(L, -1, "amount", w2, 1, 0);
    if (!(S->dca_amount > 0)) luaL_error(L, "%s: amount %f must be > 0", w2, S->dca_amount);
    keel_calendar c;
    field_string(L, -1, "schedule", w2, 1, S->dca_schedule, sizeof S->dca_schedule);
    if (keel_calendar_parse(S->dca_schedule, &c) < 0) luaL_error(L, "%s: unknown schedule '%s'", w2, S->dca_schedule);
    keel_dca_dest d;
    if (field_string(L, -1, "dest", w2, 0, S->dca_dest, sizeof S->dca_dest) && keel_dca_dest_parse(S->dca_dest, &d) < 0)
      luaL_error(L, "%s: unknown destination '%s'", w2, S->dca_dest);
  }
  lua_pop(L, 1);
  if (raw_field(L, sub, "stops") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_error(L, "%s: stops must be an array", where);
    size_t n = lua_rawlen(L, -1);
    if (n > MAX_STOPS) luaL_error(L, "%s: more than %d stop rules", where, MAX_STOPS);
    for (size_t i = 1; i <= n; i++) {
      adv_stop *R = &S->stops[S->nstops++];
      memset(R, 0, sizeof *R);
      R->asset = -1;
      snprintf(w2, sizeof w2, "%s.stops[%zu]", where, i);
      if (lua_rawgeti(L, -1, (lua_Integer)i) != LUA_TTABLE) luaL_error(L, "%s must be a table", w2);
      keel_stop_kind k;
      field_string(L, -1, "kind", w2, 1, R->kind, sizeof R->kind);
      if (keel_stop_kind_parse(R->kind, &k) < 0) luaL_error(L, "%s: unknown kind '%s'", w2, R->kind);
      R->level = field_number(L, -1, "level", w2, 1, 0);
      if (!(R->level > 0 && (k == KEEL_STOP_TAKE_PROFIT || R->level < 1)))
        luaL_error(L, "%s: level %f is out of range", w2, R->level);
      char sym[MAX_NAME + 1];
      if (field_string(L, -1, "asset", w2, k != KEEL_STOP_DRAWDOWN, sym, sizeof sym)) {
        long q = find_quote(in, sym);
        int inb = 0;
        for (size_t j = 0; q >= 0 && j < S->nw; j++) inb |= S->col[j] == (size_t)q;
        if (!inb) luaL_error(L, "%s: asset %s is not in the basket", w2, sym);
        R->asset = q;
      }
      keel_stop_action ac;
      if (field_string(L, -1, "action", w2, 0, R->action, sizeof R->action) && keel_stop_action_parse(R->action, &ac) < 0)
        luaL_error(L, "%s: unknown action '%s'", w2, R->action);
      keel_reentry re;
      if (field_string(L, -1, "reentry", w2, 0, R->reentry, sizeof R->reentry) && keel_reentry_parse(R->reentry, &re) < 0)
        luaL_error(L, "%s: unknown reentry '%s'", w2, R->reentry);
      R->days = field_number(L, -1, "days", w2, 0, 0);
      if (R->days < 0 || R->days > 10000 || R->days != floor(R->days))
        luaL_error(L, "%s: days must be a whole number >= 0", w2);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/* Reads the plan at idx into the advice. */
static void read_plan(lua_State *L, int plan, advise_job *J) {
  keel_advice *a = J->a;
  const keel_advice_input *in = J->in;
  plan = lua_absindex(L, plan);
  if (!lua_istable(L, plan)) luaL_error(L, "template %s: advise must return a table (the plan)", J->t->name);
  luaL_checkstack(L, 8, "plan");
  double rs = field_number(L, plan, "risk_score", "plan", 1, 0);
  if (rs != floor(rs) || rs < 1 || rs > 10) luaL_error(L, "plan: risk_score %f must be a whole number from 1 to 10", rs);
  a->risk_score = (int)rs;
  a->fees = field_number(L, plan, "fees", "plan", 1, 0);
  if (a->fees < 0) luaL_error(L, "plan: fees %f must be >= 0", a->fees);
  if (raw_field(L, plan, "subaccounts") != LUA_TTABLE) luaL_error(L, "plan: subaccounts must be an array");
  int subs = lua_gettop(L);
  size_t n = lua_rawlen(L, subs);
  if (n < 1 || n > MAX_SUBS) luaL_error(L, "plan: %d sub-accounts (1 to %d)", (int)n, MAX_SUBS);
  double sum_amount = 0;
  char where[MAX_NAME + 32];
  for (size_t s = 1; s <= n; s++) {
    if (lua_rawgeti(L, subs, (lua_Integer)s) != LUA_TTABLE) luaL_error(L, "plan: subaccounts[%d] must be a table", (int)s);
    int sub = lua_gettop(L);
    adv_sub *S = &a->subs[a->nsubs];
    memset(S, 0, sizeof *S);
    a->nsubs++;
    snprintf(where, sizeof where, "plan: subaccounts[%d]", (int)s);
    field_string(L, sub, "name", where, 1, S->name, sizeof S->name);
    if (!S->name[0]) luaL_error(L, "%s: name is empty", where);
    for (size_t j = 0; j + 1 < a->nsubs; j++)
      if (strcmp(a->subs[j].name, S->name) == 0) luaL_error(L, "plan: two sub-accounts are named %s", S->name);
    snprintf(where, sizeof where, "plan: sub-account %s", S->name);
    if (raw_field(L, sub, "purpose") == LUA_TSTRING) {
      size_t len;
      const char *p = lua_tolstring(L, -1, &len);
      if (len > MAX_TEXT) luaL_error(L, "%s: purpose is longer than %d bytes", where, MAX_TEXT);
      if (!(S->purpose = heap_strdup(&a->heap, p, len))) luaL_error(L, "not enough memory");
    } else if (!lua_isnil(L, -1)) {
      luaL_error(L, "%s: purpose must be a string", where);
    }
    lua_pop(L, 1);
    S->amount = field_number(L, sub, "amount", where, 1, 0);
    if (S->amount < 0) luaL_error(L, "%s: amount %f must be >= 0", where, S->amount);
    sum_amount += S->amount;
    if (raw_field(L, sub, "weights") != LUA_TTABLE) luaL_error(L, "%s: weights must be a table of symbol = weight", where);
    int wt = lua_gettop(L);
    double wsum = 0;
    lua_pushnil(L);
    while (lua_next(L, wt)) {
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "%s: weights must be keyed by symbol", where);
      const char *sym = lua_tostring(L, -2);
      long q = find_quote(in, sym);
      if (q < 0) luaL_error(L, "%s: %s has no quote", where, sym);
      if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s: the weight of %s must be a number", where, sym);
      double w = lua_tonumber(L, -1);
      if (!(isfinite(w) && w >= 0)) luaL_error(L, "%s: the weight of %s is %f; it must be finite and >= 0", where, sym, w);
      if (S->nw == MAX_WEIGHTS) luaL_error(L, "%s: more than %d weights", where, MAX_WEIGHTS);
      S->col[S->nw] = (size_t)q;
      S->w[S->nw++] = w;
      wsum += w;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (wsum > 1 + 1e-9) luaL_error(L, "%s: the weights add up to %f, more than 1", where, wsum);
    /* a stable order: the quotes' */
    for (size_t i = 1; i < S->nw; i++)
      for (size_t j = i; j > 0 && S->col[j - 1] > S->col[j]; j--) {
        size_t c = S->col[j];
        S->col[j] = S->col[j - 1];
        S->col[j - 1] = c;
        double w = S->w[j];
        S->w[j] = S->w[j - 1];
        S->w[j - 1] = w;
      }
    read_policies(L, sub, where, S, in);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (fabs(sum_amount - a->total) > 1e-9 * fmax(1, a->total))
    luaL_error(L, "plan: the sub-accounts' amounts add up to %f, not the %f to place", sum_amount, a->total);
}

/* advise_main(job, chunk) -> module, profile, plan */
static int advise_main(lua_State *L) {
  advise_job *J = lua_touserdata(L, 1);
  const keel_profile *p = J->in->profile;
  const keel_advice_input *in = J->in;
  lua_settop(L, 2);
  /* the module, afresh, with its own globals (a new sandbox environment),
   * so what one call sets is gone by the next */
  keeli_lua_push_env(L);
  if (lua_setupvalue(L, 2, 1) == NULL) luaL_error(L, "template %s: the chunk has no environment", J->t->name);
  lua_call(L, 0, 1);
  if (!lua_istable(L, 2)) luaL_error(L, "template %s: the module must return a table", J->t->name);
  lua_createtable(L, 0, 9); /* 3: profile */
  lua_pushinteger(L, p->age);
  lua_setfield(L, 3, "age");
  lua_pushnumber(L, p->horizon);
  lua_setfield(L, 3, "horizon");
  if (p->risk_score) {
    lua_pushinteger(L, p->risk_score);
    lua_setfield(L, 3, "risk_score");
  } else {
    lua_createtable(L, 0, (int)p->nanswers);
    for (size_t i = 0; i < p->nanswers; i++) {
      lua_pushinteger(L, p->answers[i].answer);
      lua_setfield(L, -2, p->answers[i].question);
    }
    lua_setfield(L, 3, "answers");
  }
  lua_pushstring(L, keel_goal_name(p->goal));
  lua_setfield(L, 3, "goal");
  lua_pushnumber(L, p->initial);
  lua_setfield(L, 3, "initial");
  lua_pushnumber(L, p->monthly);
  lua_setfield(L, 3, "monthly");
  lua_pushnumber(L, p->liquidity);
  lua_setfield(L, 3, "liquidity");
  if (p->goal_amount > 0) {
    lua_pushnumber(L, p->goal_amount);
    lua_setfield(L, 3, "goal_amount");
  }
  lua_createtable(L, 0, 3); /* 4: market */
  lua_pushnumber(L, J->a->total);
  lua_setfield(L, 4, "total");
  lua_createtable(L, 0, (int)in->nquotes);
  lua_createtable(L, 0, 0);
  for (size_t i = 0; i < in->nquotes; i++) {
    lua_pushnumber(L, in->quotes[i].price);
    lua_setfield(L, -3, in->quotes[i].symbol);
    if (!isnan(in->quotes[i].expense_ratio)) {
      lua_pushnumber(L, in->quotes[i].expense_ratio);
      lua_setfield(L, -2, in->quotes[i].symbol);
    }
  }
  lua_setfield(L, 4, "expense");
  lua_setfield(L, 4, "prices");
  if (raw_field(L, 2, "advise") != LUA_TFUNCTION) luaL_error(L, "template %s: advise is not a function", J->t->name);
  lua_pushvalue(L, 3);
  lua_pushvalue(L, 4);
  lua_call(L, 2, 1); /* 5: the plan */
  read_plan(L, 5, J);
  lua_remove(L, 4);
  return 3;
}

/* summary.trades, built on first use (most explanations only need the
 * totals): __index(summary, key) with the advice as upvalue. */
static int summary_index(lua_State *L) {
  const keel_advice *a = lua_touserdata(L, lua_upvalueindex(1));
  if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "trades") != 0) return 0;
  luaL_checkstack(L, 4, "explain");
  lua_createtable(L, (int)a->ntrades, 0);
  for (size_t i = 0; i < a->ntrades; i++) {
    const keel_advice_trade *t = &a->trades[i];
    lua_createtable(L, 0, 6);
    lua_pushstring(L, t->symbol);
    lua_setfield(L, -2, "symbol");
    lua_pushstring(L, t->shares > 0 ? "buy" : "sell");
    lua_setfield(L, -2, "side");
    lua_pushnumber(L, fabs(t->shares));
    lua_setfield(L, -2, "shares");
    lua_pushnumber(L, t->price);
    lua_setfield(L, -2, "price");
    lua_pushnumber(L, fabs(t->notional));
    lua_setfield(L, -2, "notional");
    lua_pushnumber(L, t->cost);
    lua_setfield(L, -2, "cost");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

/* explain_main(job, module, profile, plan) */
static int explain_main(lua_State *L) {
  advise_job *J = lua_touserdata(L, 1);
  keel_advice *a = J->a;
  luaL_checkstack(L, 10, "explain");
  if (raw_field(L, 2, "explain") != LUA_TFUNCTION) luaL_error(L, "template %s: explain is not a function", J->t->name);
  lua_pushvalue(L, 3);
  lua_pushvalue(L, 4);
  double buys = 0, sells = 0;
  for (size_t i = 0; i < a->ntrades; i++) {
    if (a->trades[i].shares > 0) buys += a->trades[i].notional;
    else sells -= a->trades[i].notional;
  }
  lua_createtable(L, 0, 7);
  const struct { const char *k; double v; } f[] = {{"total", a->total}, {"trade_costs", a->trade_costs},
                                                  {"buys", buys}, {"sells", sells}, {"cash_after", a->cash_after}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    lua_pushnumber(L, f[i].v);
    lua_setfield(L, -2, f[i].k);
  }
  lua_pushinteger(L, (lua_Integer)a->ntrades);
  lua_setfield(L, -2, "ntrades");
  if (!isnan(a->goal_p)) {
    const struct { const char *k; double v; } g[] = {{"goal_probability", a->goal_p}, {"goal_p05", a->goal_q[0]},
                                                    {"goal_p50", a->goal_q[1]}, {"goal_p95", a->goal_q[2]}};
    for (size_t i = 0; i < 4; i++) {
      lua_pushnumber(L, g[i].v);
      lua_setfield(L, -2, g[i].k);
    }
  }
  lua_createtable(L, 0, 1);
  lua_pushlightuserdata(L, a);
  lua_pushcclosure(L, summary_index, 1);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_call(L, 3, 1);
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "template %s: explain must return a string", J->t->name);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (len > MAX_TEXT) luaL_error(L, "template %s: the explanation is longer than %d bytes", J->t->name, MAX_TEXT);
  if (!(a->explanation = heap_strdup(&a->heap, s, len))) luaL_error(L, "not enough memory");
  return 0;
}

/* check_main(template, chunk): the module's name and universe. */
static int check_main(lua_State *L) {
  keel_template *t = lua_touserdata(L, 1);
  lua_settop(L, 2);
  lua_call(L, 0, 1);
  const char *src = t->chunkname + 1;
  if (!lua_istable(L, 2)) luaL_error(L, "template %s: the module must return a table", src);
  char buf[MAX_NAME + 1];
  field_string(L, 2, "name", "template", 1, buf, sizeof buf);
  if (!(t->name = heap_strdup(&t->heap, buf, strlen(buf)))) luaL_error(L, "not enough memory");
  if (raw_field(L, 2, "advise") != LUA_TFUNCTION) luaL_error(L, "template %s: advise is not a function", t->name);
  if (raw_field(L, 2, "explain") != LUA_TFUNCTION) luaL_error(L, "template %s: explain is not a function", t->name);
  lua_pop(L, 2);
  if (raw_field(L, 2, "universe") != LUA_TTABLE) luaL_error(L, "template %s: universe must be an array of symbols", t->name);
  size_t n = lua_rawlen(L, -1);
  if (n < 1 || n > 256) luaL_error(L, "template %s: universe has %d symbols (1 to 256)", t->name, (int)n);
  if (!(t->universe = keeli_heap_alloc(&t->heap, n * sizeof *t->universe))) luaL_error(L, "not enough memory");
  for (size_t i = 1; i <= n; i++) {
    if (lua_rawgeti(L, -1, (lua_Integer)i) != LUA_TSTRING) luaL_error(L, "template %s: universe[%d] is not a string", t->name, (int)i);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (!len || len > MAX_NAME) luaL_error(L, "template %s: universe[%d] must have 1 to %d bytes", t->name, (int)i, MAX_NAME);
    if (!(t->universe[t->nuniverse] = heap_strdup(&t->heap, s, len))) luaL_error(L, "not enough memory");
    t->nuniverse++;
    lua_pop(L, 1);
  }
  return 0;
}

/* ---- loading ---- */

keel_status keel_template_load(keel_ctx *ctx, const keel_lua_config *cfg, const char *template_name,
                               keel_template **out) {
  *out = NULL;
  char path[KEELI_PATH_MAX];
  char *source;
  size_t len;
  keel_status st = keeli_lua_read_module(ctx, cfg, "template", template_name, path, &source, &len);
  if (st) return st;
  keel_template *t = keeli_calloc(ctx, 1, sizeof *t);
  if (!t) {
    keeli_free(ctx, source);
    return KEEL_ENOMEM;
  }
  t->heap = *keeli_ctx_heap(ctx);
  t->source = source;
  t->len = len;
  if (pthread_mutex_init(&t->mu, NULL)) {
    template_free_strings(t);
    keeli_heap_free(&t->heap, t);
    return keeli_error(ctx, KEEL_ENOMEM, "template: cannot make a mutex");
  }
  /* the search folders: the template's own first, then the configured */
  size_t np = 0;
  while (cfg && cfg->paths && cfg->paths[np]) np++;
  if (!(t->paths = keeli_heap_alloc(&t->heap, (np + 2) * sizeof *t->paths))) goto nomem;
  memset(t->paths, 0, (np + 2) * sizeof *t->paths);
  const char *slash = strrchr(path, '/');
  if (!(t->paths[0] = slash ? heap_strdup(&t->heap, path, (size_t)(slash - path)) : heap_strdup(&t->heap, ".", 1)))
    goto nomem;
  for (size_t i = 0; i < np; i++)
    if (!(t->paths[i + 1] = heap_strdup(&t->heap, cfg->paths[i], strlen(cfg->paths[i])))) goto nomem;
  if (cfg) t->cfg = *cfg;
  else keel_lua_config_default(&t->cfg);
  t->cfg.paths = (const char *const *)t->paths;
  size_t pl = strlen(path);
  if (!(t->chunkname = keeli_heap_alloc(&t->heap, pl + 2))) goto nomem;
  t->chunkname[0] = '@';
  memcpy(t->chunkname + 1, path, pl + 1);
  pooled P;
  if ((st = pool_prepare(ctx, t, &P))) goto fail;
  lua_State *L = keeli_lua_state(ctx, P.K);
  lua_pushcfunction(L, check_main);
  lua_pushlightuserdata(L, t);
  lua_rawgeti(L, LUA_REGISTRYINDEX, P.ref);
  st = keeli_lua_pcall(ctx, P.K, 2, 0, NULL);
  if (st) {
    keel_lua_free(P.K);
    goto fail;
  }
  pool_give(t, &P, 0);
  *out = t;
  return KEEL_OK;
nomem:
  st = keeli_error(ctx, KEEL_ENOMEM, "template %s: out of memory", template_name);
fail:
  keel_template_free(t);
  return st;
}

/* ---- advice ---- */

/* The trades from the holdings to the combined baskets: one row of the
 * engine at the quotes. */
static keel_status plan_trades(keel_ctx *ctx, const keel_advice_input *in, keel_advice *a) {
  const size_t n = in->nquotes;
  keel_status st = KEEL_OK;
  double *buf = keeli_calloc(ctx, 3 * n, sizeof(double));
  size_t *cols = keeli_alloc_array(ctx, n, sizeof *cols);
  keel_panel *p = NULL;
  keel_backtest_result *r = NULL;
  if (!buf || !cols) {
    st = KEEL_ENOMEM;
    goto done;
  }
  double *px = buf, *w = buf + n, *held = buf + 2 * n;
  for (size_t j = 0; j < n; j++) {
    px[j] = in->quotes[j].price;
    cols[j] = j;
  }
  for (size_t s = 0; s < a->nsubs; s++)
    for (size_t k = 0; k < a->subs[s].nw; k++) w[a->subs[s].col[k]] += a->subs[s].amount * a->subs[s].w[k] / a->total;
  double wsum = 0;
  for (size_t j = 0; j < n; j++) wsum += w[j];
  if (wsum > 1) /* rounding in the amounts */
    for (size_t j = 0; j < n; j++) w[j] /= wsum;
  for (size_t i = 0; i < in->nholdings; i++) held[find_quote(in, in->holdings[i].symbol)] = in->holdings[i].shares;
  keel_date d;
  keel_date_from_ymd(2000, 1, 3, &d); /* the engine needs a date; nothing depends on it */
  if ((st = keel_panel_new(ctx, 1, n, &d, (const char *const *)a->sym, px, &p))) goto done;
  for (size_t j = 0; j < n; j++) {
    keel_asset_meta m = *keel_panel_meta(p, j);
    m.lot = in->quotes[j].lot;
    m.min_trade = in->quotes[j].min_trade;
    if ((st = keel_panel_set_meta(ctx, p, j, &m))) goto done;
  }
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.name = "advice";
  sub.nassets = n;
  sub.assets = cols;
  sub.weights = w;
  sub.initial_shares = held;
  sub.capital = in->cash + in->profile->initial;
  sub.costs = in->costs;
  keel_account_spec acc;
  keel_account_spec_default(&acc);
  acc.nsubs = 1;
  acc.subs = &sub;
  if ((st = keel_backtest_run_account(ctx, p, &acc, &r))) goto done;
  size_t nt = keel_backtest_ntrades(r);
  const keel_trade *tr = keel_backtest_trades(r);
  if (nt && !(a->trades = keeli_alloc_array(ctx, nt, sizeof *a->trades))) {
    st = KEEL_ENOMEM;
    goto done;
  }
  a->trade_costs = 0;
  for (size_t i = 0; i < nt; i++) {
    a->trades[i] = (keel_advice_trade){a->sym[tr[i].asset], tr[i].shares, tr[i].price, tr[i].notional, tr[i].cost};
    a->trade_costs += tr[i].cost;
  }
  a->ntrades = nt;
  a->cash_after = keel_backtest_cash(r)[0];
  a->value_after = keel_backtest_values(r)[0];
  /* money is conserved: what was there is what is held plus what was paid */
  if (fabs(a->total - (a->value_after + a->trade_costs)) > 1e-9 * a->total)
    st = keeli_error(ctx, KEEL_ENUMERIC, "advice: value before %.17g != value after %.17g + costs %.17g", a->total,
                     a->value_after, a->trade_costs);
done:
  keel_backtest_result_free(r);
  keel_panel_free(p);
  keeli_free(ctx, buf);
  keeli_free(ctx, cols);
  return st;
}

/* The goal odds: the plan's sub-accounts (capital their amounts after the
 * trades' costs, their baskets, rebalance schedules and bands, monthly DCA
 * external contributions) through monthly paths bootstrapped from the
 * history over the horizon. Stop rules are left out: their day counts are
 * in trading days. */
static keel_status goal_odds(keel_ctx *ctx, const keel_advice_input *in, keel_advice *a) {
  const keel_panel *h = in->history;
  const size_t ns = a->nsubs;
  keel_status st = KEEL_OK;
  keel_subaccount_spec *subs = keeli_calloc(ctx, ns, sizeof *subs);
  keel_dca *dca = keeli_calloc(ctx, ns, sizeof *dca);
  size_t *cols = keeli_calloc(ctx, ns * MAX_WEIGHTS, sizeof *cols);
  double *w = keeli_calloc(ctx, ns * MAX_WEIGHTS, sizeof *w);
  keel_mc *g = NULL;
  keel_stress_result *r = NULL;
  if (!subs || !dca || !cols || !w) {
    st = KEEL_ENOMEM;
    goto done;
  }
  const double scale = a->total > 0 ? a->value_after / a->total : 1; /* the costs come out of every pot */
  size_t used = 0;
  for (size_t s = 0; s < ns; s++) {
    const adv_sub *S = &a->subs[s];
    keel_subaccount_spec *u = &subs[used];
    keel_subaccount_spec_default(u);
    u->name = S->name;
    size_t n = 0;
    for (size_t k = 0; k < S->nw; k++) {
      size_t col;
      if (!keel_panel_find(h, a->sym[S->col[k]], &col)) {
        st = keeli_error(ctx, KEEL_EINVAL, "advice: goal odds: %s is not in the price history", a->sym[S->col[k]]);
        goto done;
      }
      cols[used * MAX_WEIGHTS + n] = col;
      w[used * MAX_WEIGHTS + n++] = S->w[k];
    }
    if (!n || !(S->amount > 0 || (S->has_dca && S->dca_amount > 0))) continue; /* nothing invested: no pot */
    u->nassets = n;
    u->assets = cols + used * MAX_WEIGHTS;
    u->weights = w + used * MAX_WEIGHTS;
    u->capital = S->amount * scale;
    u->costs = in->costs;
    u->costs.use_lots = 0;
    u->schedule.calendar = KEEL_CAL_MONTHLY;
    if (S->schedule[0]) keel_calendar_parse(S->schedule, &u->schedule.calendar);
    if (u->schedule.calendar == KEEL_CAL_EVERY_N || u->schedule.calendar == KEEL_CAL_DAILY ||
        u->schedule.calendar == KEEL_CAL_WEEKLY)
      u->schedule.calendar = KEEL_CAL_MONTHLY; /* monthly steps */
    if (S->has_band) {
      u->band.kind = S->band_abs > 0 && S->band_rel > 0 ? KEEL_BAND_COMBINED
                     : S->band_abs > 0                  ? KEEL_BAND_ABSOLUTE
                                                        : KEEL_BAND_RELATIVE;
      u->band.abs = S->band_abs;
      u->band.rel = S->band_rel;
      if (S->action[0]) keel_band_action_parse(S->action, &u->band.action);
    }
    if (S->has_dca) {
      keel_dca_default(&dca[used]);
      dca[used].amount = S->dca_amount;
      dca[used].schedule.calendar = KEEL_CAL_MONTHLY;
      if (S->dca_dest[0]) keel_dca_dest_parse(S->dca_dest, &dca[used].dest);
      u->dca = &dca[used];
      u->ndca = 1;
    }
    if (u->capital == 0) u->invest_at_start = 0;
    used++;
  }
  if (!used) goto done;
  keel_account_spec acct;
  keel_account_spec_default(&acct);
  acct.nsubs = used;
  acct.subs = subs;
  acct.periods_per_year = 12;
  acct.record_holdings = 0;
  keel_mc_calibration cal;
  keel_mc_calibration_default(&cal);
  cal.kind = KEEL_MC_BOOTSTRAP;
  cal.freq = KEEL_MC_MONTHLY;
  cal.years = in->profile->horizon;
  if ((st = keel_mc_calibrate(ctx, h, &cal, &g))) goto done;
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = g;
  o.history = h;
  o.account = &acct;
  o.npaths = in->goal_paths ? in->goal_paths : 1000;
  if (in->goal_seed) o.seed = in->goal_seed;
  o.threads = 1;
  o.goal = in->profile->goal_amount;
  o.band_points = 2;
  o.keep_paths = 1; /* exact quantiles: a few thousand paths at most */
  if ((st = keel_stress_run(ctx, &o, &r))) goto done;
  a->goal_p = keel_stress_prob_goal(r, in->profile->goal_amount, 0);
  a->goal_q[0] = keel_stress_quantile(r, KEEL_STRESS_WEALTH, 0.05);
  a->goal_q[1] = keel_stress_quantile(r, KEEL_STRESS_WEALTH, 0.5);
  a->goal_q[2] = keel_stress_quantile(r, KEEL_STRESS_WEALTH, 0.95);
done:
  keel_stress_result_free(r);
  keel_mc_free(g);
  keeli_free(ctx, subs);
  keeli_free(ctx, dca);
  keeli_free(ctx, cols);
  keeli_free(ctx, w);
  return st;
}

keel_status keel_advise(keel_ctx *ctx, keel_template *t, const keel_advice_input *in, keel_advice **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "advice: no output pointer");
  *out = NULL;
  if (!t || !in) return keeli_error(ctx, KEEL_EINVAL, "advice: no template or input");
  keel_status st = check_input(ctx, t, in);
  if (st) return st;
  keel_advice *a = keeli_calloc(ctx, 1, sizeof *a);
  if (!a) return KEEL_ENOMEM;
  a->heap = *keeli_ctx_heap(ctx);
  a->goal_p = a->goal_q[0] = a->goal_q[1] = a->goal_q[2] = NAN;
  snprintf(a->template_name, sizeof a->template_name, "%s", t->name);
  if (!(a->sym = keeli_calloc(ctx, in->nquotes, sizeof *a->sym))) {
    keel_advice_free(a);
    return KEEL_ENOMEM;
  }
  for (size_t i = 0; i < in->nquotes; i++) {
    if (!(a->sym[i] = keeli_strdup(ctx, in->quotes[i].symbol))) {
      keel_advice_free(a);
      return KEEL_ENOMEM;
    }
    a->nsym++;
  }
  double total = in->cash + in->profile->initial;
  for (size_t i = 0; i < in->nholdings; i++)
    total += in->holdings[i].shares * in->quotes[find_quote(in, in->holdings[i].symbol)].price;
  a->total = total;
  if (!(total > 0) || !isfinite(total)) {
    keel_advice_free(a);
    return keeli_error(ctx, KEEL_EINVAL, "advice: nothing to place (holdings, cash and the initial amount are 0)");
  }
  advise_job J = {a, in, t};
  pooled P;
  if ((st = pool_take(ctx, t, &P))) {
    keel_advice_free(a);
    return st;
  }
  lua_State *L = keeli_lua_state(ctx, P.K);
  int base = lua_gettop(L), broken = 0;
  if (!lua_checkstack(L, 8)) {
    st = keeli_error(ctx, KEEL_ENOMEM, "advice: out of memory");
    goto done;
  }
  lua_pushcfunction(L, advise_main);
  lua_pushlightuserdata(L, &J);
  lua_rawgeti(L, LUA_REGISTRYINDEX, P.ref);
  if ((st = keeli_lua_pcall(ctx, P.K, 2, 3, NULL))) goto done;
  if ((st = plan_trades(ctx, in, a))) goto done;
  if (in->history && in->profile->goal_amount > 0 && (st = goal_odds(ctx, in, a))) goto done;
  lua_pushcfunction(L, explain_main);
  lua_pushlightuserdata(L, &J);
  lua_rotate(L, -5, 2); /* explain_main, job, module, profile, plan */
  st = keeli_lua_pcall(ctx, P.K, 4, 0, NULL);
done:
  if (st == KEEL_ELIMIT) broken = 1;
  else lua_settop(L, base);
  pool_give(t, &P, broken);
  if (st) {
    keel_advice_free(a);
    return st;
  }
  *out = a;
  return KEEL_OK;
}

/* ---- JSON ---- */

keel_status keel_advice_to_json(keel_ctx *ctx, const keel_advice *a, char **json) {
  *json = NULL;
  json_t *o = json_object(), *tr = json_array(), *subs = json_array();
  if (!o || !tr || !subs) goto nomem;
  json_object_set_new(o, "template", json_string(a->template_name));
  json_object_set_new(o, "risk_score", json_integer(a->risk_score));
  json_object_set_new(o, "total", json_real(a->total));
  for (size_t s = 0; s < a->nsubs; s++) {
    const adv_sub *S = &a->subs[s];
    json_t *so = json_object(), *w = json_object();
    if (!so || !w) {
      json_decref(so);
      json_decref(w);
      goto nomem;
    }
    json_array_append_new(subs, so);
    for (size_t k = 0; k < S->nw; k++) json_object_set_new(w, a->sym[S->col[k]], json_real(S->w[k]));
    json_object_set_new(so, "name", json_string(S->name));
    if (S->purpose) json_object_set_new(so, "purpose", json_string(S->purpose));
    json_object_set_new(so, "amount", json_real(S->amount));
    json_object_set_new(so, "weights", w);
    if (S->has_rebalance) {
      json_t *rb = json_object();
      if (!rb) goto nomem;
      json_object_set_new(so, "rebalance", rb);
      if (S->schedule[0]) json_object_set_new(rb, "schedule", json_string(S->schedule));
      if (S->action[0]) json_object_set_new(rb, "action", json_string(S->action));
      if (S->has_band) json_object_set_new(rb, "band", json_pack("{s:f, s:f}", "abs", S->band_abs, "rel", S->band_rel));
    }
    if (S->has_dca) {
      json_t *d = json_pack("{s:f, s:s}", "amount", S->dca_amount, "schedule", S->dca_schedule);
      if (!d) goto nomem;
      json_object_set_new(so, "dca", d);
      if (S->dca_dest[0]) json_object_set_new(d, "dest", json_string(S->dca_dest));
    }
    if (S->nstops) {
      json_t *st = json_array();
      if (!st) goto nomem;
      json_object_set_new(so, "stops", st);
      for (size_t i = 0; i < S->nstops; i++) {
        const adv_stop *R = &S->stops[i];
        json_t *r = json_pack("{s:s, s:f}", "kind", R->kind, "level", R->level);
        if (!r) goto nomem;
        json_array_append_new(st, r);
        if (R->asset >= 0) json_object_set_new(r, "asset", json_string(a->sym[R->asset]));
        if (R->action[0]) json_object_set_new(r, "action", json_string(R->action));
        if (R->reentry[0]) json_object_set_new(r, "reentry", json_string(R->reentry));
        if (R->days > 0) json_object_set_new(r, "days", json_integer((json_int_t)R->days));
      }
    }
  }
  json_object_set_new(o, "subaccounts", subs);
  subs = NULL;
  for (size_t i = 0; i < a->ntrades; i++) {
    const keel_advice_trade *t = &a->trades[i];
    json_t *to = json_pack("{s:s, s:s, s:f, s:f, s:f, s:f}", "symbol", t->symbol, "side", t->shares > 0 ? "buy" : "sell",
                           "shares", fabs(t->shares), "price", t->price, "notional", fabs(t->notional), "cost", t->cost);
    if (!to) goto nomem;
    json_array_append_new(tr, to);
  }
  json_object_set_new(o, "trades", tr);
  tr = NULL;
  json_object_set_new(o, "trade_costs", json_real(a->trade_costs));
  json_object_set_new(o, "cash_after", json_real(a->cash_after));
  json_object_set_new(o, "yearly_fees", json_real(a->fees));
  if (!isnan(a->goal_p))
    json_object_set_new(o, "goal", json_pack("{s:f, s:f, s:f, s:f}", "probability", a->goal_p, "wealth_p05",
                                             a->goal_q[0], "wealth_p50", a->goal_q[1], "wealth_p95", a->goal_q[2]));
  json_object_set_new(o, "explanation", json_string(keel_advice_explanation(a)));
  char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(17) | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!s) return keeli_error(ctx, KEEL_ENOMEM, "advice: out of memory writing JSON");
  *json = s;
  return KEEL_OK;
nomem:
  json_decref(o);
  json_decref(tr);
  json_decref(subs);
  return keeli_error(ctx, KEEL_ENOMEM, "advice: out of memory writing JSON");
}

static keel_status json_in(keel_ctx *ctx, const char *what, const char *text, json_t **out) {
  json_error_t e;
  *out = json_loads(text, JSON_REJECT_DUPLICATES, &e);
  if (!*out) return keeli_error(ctx, KEEL_EPARSE, "%s:%d:%d: %s", what, e.line, e.column, e.text);
  if (!json_is_object(*out)) {
    json_decref(*out);
    *out = NULL;
    return keeli_error(ctx, KEEL_EPARSE, "%s: must be a JSON object", what);
  }
  return KEEL_OK;
}

static keel_status num_field(keel_ctx *ctx, const char *what, const char *key, json_t *v, double *out) {
  if (!json_is_number(v)) return keeli_error(ctx, KEEL_EINVAL, "%s: %s must be a number", what, key);
  *out = json_number_value(v);
  return KEEL_OK;
}

static keel_status int_field(keel_ctx *ctx, const char *what, const char *key, json_t *v, int lo, int hi, int *out) {
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
    return keeli_error(ctx, KEEL_EINVAL, "%s: %s must be a whole number from %d to %d", what, key, lo, hi);
  *out = (int)json_integer_value(v);
  return KEEL_OK;
}

typedef struct json_inputs {
  json_t *profile, *holdings, *quotes;
  keel_answer *answers;
  keel_position *pos;
  keel_quote *q;
} json_inputs;

static keel_status parse_profile(keel_ctx *ctx, json_inputs *J, keel_profile *p) {
  keel_profile_default(p);
  p->risk_score = 0;
  int have_age = 0, have_h = 0, have_goal = 0;
  const char *key;
  json_t *v;
  keel_status st = KEEL_OK;
  json_object_foreach(J->profile, key, v) {
    if (strcmp(key, "age") == 0) st = int_field(ctx, "profile", key, v, 18, 120, &p->age), have_age = 1;
    else if (strcmp(key, "horizon") == 0) st = num_field(ctx, "profile", key, v, &p->horizon), have_h = 1;
    else if (strcmp(key, "risk_score") == 0) st = int_field(ctx, "profile", key, v, 1, 10, &p->risk_score);
    else if (strcmp(key, "initial") == 0) st = num_field(ctx, "profile", key, v, &p->initial);
    else if (strcmp(key, "monthly") == 0) st = num_field(ctx, "profile", key, v, &p->monthly);
    else if (strcmp(key, "liquidity") == 0) st = num_field(ctx, "profile", key, v, &p->liquidity);
    else if (strcmp(key, "goal_amount") == 0) st = num_field(ctx, "profile", key, v, &p->goal_amount);
    else if (strcmp(key, "goal") == 0) {
      have_goal = 1;
      if (!json_is_string(v) || keel_goal_parse(json_string_value(v), &p->goal) < 0)
        st = keeli_error(ctx, KEEL_EINVAL, "profile: goal must be one of general, travel, education, retirement");
    } else if (strcmp(key, "answers") == 0) {
      if (!json_is_object(v)) return keeli_error(ctx, KEEL_EINVAL, "profile: answers must be an object of question: answer");
      size_t n = json_object_size(v), i = 0;
      if (n > 64) return keeli_error(ctx, KEEL_EINVAL, "profile: %zu answers (at most 64)", n);
      if (n && !(J->answers = keeli_calloc(ctx, n, sizeof *J->answers))) return KEEL_ENOMEM;
      const char *qk;
      json_t *qv;
      json_object_foreach(v, qk, qv) {
        J->answers[i].question = qk;
        if (!json_is_integer(qv) || json_integer_value(qv) < 1 || json_integer_value(qv) > 100)
          return keeli_error(ctx, KEEL_EINVAL, "profile: the answer to '%s' must be a whole number >= 1", qk);
        J->answers[i++].answer = (int)json_integer_value(qv);
      }
      p->answers = J->answers;
      p->nanswers = n;
    } else {
      return keeli_error(ctx, KEEL_EINVAL, "profile: unknown field '%s' (known: age, horizon, risk_score, answers, "
                         "goal, initial, monthly, liquidity, goal_amount)", key);
    }
    if (st) return st;
  }
  if (!have_age) return keeli_error(ctx, KEEL_EINVAL, "profile: age is missing");
  if (!have_h) return keeli_error(ctx, KEEL_EINVAL, "profile: horizon is missing");
  if (!have_goal) return keeli_error(ctx, KEEL_EINVAL, "profile: goal is missing");
  return KEEL_OK;
}

static keel_status parse_holdings(keel_ctx *ctx, json_inputs *J, keel_advice_input *in) {
  const char *key;
  json_t *v;
  keel_status st;
  json_object_foreach(J->holdings, key, v) {
    if (strcmp(key, "cash") == 0) {
      if ((st = num_field(ctx, "holdings", key, v, &in->cash))) return st;
    } else if (strcmp(key, "positions") == 0) {
      if (!json_is_object(v)) return keeli_error(ctx, KEEL_EINVAL, "holdings: positions must be an object of symbol: shares");
      size_t n = json_object_size(v), i = 0;
      if (n && !(J->pos = keeli_calloc(ctx, n, sizeof *J->pos))) return KEEL_ENOMEM;
      const char *sk;
      json_t *sv;
      json_object_foreach(v, sk, sv) {
        J->pos[i].symbol = sk;
        if ((st = num_field(ctx, "holdings", sk, sv, &J->pos[i].shares))) return st;
        i++;
      }
      in->holdings = J->pos;
      in->nholdings = n;
    } else {
      return keeli_error(ctx, KEEL_EINVAL, "holdings: unknown field '%s' (known: cash, positions)", key);
    }
  }
  return KEEL_OK;
}

static keel_status parse_quotes(keel_ctx *ctx, json_inputs *J, keel_advice_input *in) {
  size_t n = json_object_size(J->quotes), i = 0;
  if (!n) return keeli_error(ctx, KEEL_EINVAL, "quotes: none given");
  if (!(J->q = keeli_calloc(ctx, n, sizeof *J->q))) return KEEL_ENOMEM;
  const char *key;
  json_t *v;
  keel_status st;
  json_object_foreach(J->quotes, key, v) {
    keel_quote *q = &J->q[i++];
    q->symbol = key;
    q->expense_ratio = NAN;
    if (json_is_number(v)) {
      q->price = json_number_value(v);
      continue;
    }
    if (!json_is_object(v)) return keeli_error(ctx, KEEL_EINVAL, "quotes: %s must be a price or an object", key);
    const char *f;
    json_t *fv;
    int have_price = 0;
    json_object_foreach(v, f, fv) {
      double *dst = strcmp(f, "price") == 0 ? &q->price : strcmp(f, "lot") == 0 ? &q->lot
                  : strcmp(f, "min_trade") == 0 ? &q->min_trade : strcmp(f, "expense_ratio") == 0 ? &q->expense_ratio
                  : NULL;
      if (!dst)
        return keeli_error(ctx, KEEL_EINVAL, "quotes: %s: unknown field '%s' (known: price, lot, min_trade, "
                           "expense_ratio)", key, f);
      char where[MAX_NAME + 16];
      snprintf(where, sizeof where, "quotes: %s", key);
      if ((st = num_field(ctx, where, f, fv, dst))) return st;
      have_price |= dst == &q->price;
    }
    if (!have_price) return keeli_error(ctx, KEEL_EINVAL, "quotes: %s has no price", key);
  }
  in->quotes = J->q;
  in->nquotes = n;
  return KEEL_OK;
}

keel_status keel_advise_json(keel_ctx *ctx, keel_template *t, const char *profile_json, const char *holdings_json,
                             const char *quotes_json, const keel_advice_input *opts, keel_advice **out) {
  *out = NULL;
  json_inputs J;
  memset(&J, 0, sizeof J);
  keel_profile prof;
  keel_advice_input in;
  keel_advice_input_default(&in);
  if (opts) in = *opts;
  in.holdings = NULL;
  in.nholdings = 0;
  in.cash = 0;
  in.quotes = NULL;
  in.nquotes = 0;
  in.profile = &prof;
  keel_status st;
  if (!profile_json || !quotes_json) return keeli_error(ctx, KEEL_EINVAL, "advice: the profile and quotes are needed");
  if ((st = json_in(ctx, "profile", profile_json, &J.profile))) goto done;
  if (holdings_json && (st = json_in(ctx, "holdings", holdings_json, &J.holdings))) goto done;
  if ((st = json_in(ctx, "quotes", quotes_json, &J.quotes))) goto done;
  if ((st = parse_profile(ctx, &J, &prof))) goto done;
  if (J.holdings && (st = parse_holdings(ctx, &J, &in))) goto done;
  if ((st = parse_quotes(ctx, &J, &in))) goto done;
  st = keel_advise(ctx, t, &in, out);
done:
  keeli_free(ctx, J.answers);
  keeli_free(ctx, J.pos);
  keeli_free(ctx, J.q);
  if (J.profile) json_decref(J.profile);
  if (J.holdings) json_decref(J.holdings);
  if (J.quotes) json_decref(J.quotes);
  return st;
}
