/* keel — run descriptions: JSON -> keel_account_spec (docs/formats.md,
 * "Run descriptions"). Every value is checked where it is read, and a
 * failure names its JSON path. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backtest/runspec_internal.h"
#include "core/internal.h"
#include "keel/policy.h"
#include "keel/strategy.h"

typedef struct rs_sub {
  char *name;
  size_t *assets;
  double *weights;
  double *defensive;
  keel_dca *dca;
  keel_stop_rule *stops;
  keel_strategy *strategy;
} rs_sub;

struct keel_runspec {
  keeli_heap heap;
  keel_account_spec acct;
  keel_subaccount_spec *specs;
  rs_sub *subs;
  size_t nsubs;
  char *json;
  char *strategy;
};

void keel_runspec_free(keel_runspec *rs) {
  if (!rs) return;
  keeli_heap h = rs->heap;
  for (size_t k = 0; rs->subs && k < rs->nsubs; k++) {
    rs_sub *u = &rs->subs[k];
    keeli_heap_free(&h, u->name);
    keeli_heap_free(&h, u->assets);
    keeli_heap_free(&h, u->weights);
    keeli_heap_free(&h, u->defensive);
    keeli_heap_free(&h, u->dca);
    keeli_heap_free(&h, u->stops);
    keel_strategy_free(u->strategy);
  }
  keeli_heap_free(&h, rs->subs);
  keeli_heap_free(&h, rs->specs);
  keeli_heap_free(&h, rs->json);
  keeli_heap_free(&h, rs->strategy);
  keeli_heap_free(&h, rs);
}

const keel_account_spec *keel_runspec_account(const keel_runspec *rs) { return &rs->acct; }
const char *keel_runspec_json(const keel_runspec *rs) { return rs->json; }
const char *keel_runspec_strategy(const keel_runspec *rs) { return rs->strategy; }

/* ---- the parser and its JSON path ---------------------------------------- */

typedef struct rs_parser {
  keel_ctx *ctx;
  const char *name;
  char path[512];
  size_t plen;
  const keel_panel *panel;
  const keel_strategy_loader *loader;
} rs_parser;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static keel_status perr(rs_parser *P, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (P->plen) return keeli_error(P->ctx, KEEL_EINVAL, "%s: %s: %s", P->name, P->path, msg);
  return keeli_error(P->ctx, KEEL_EINVAL, "%s: %s", P->name, msg);
}

static size_t push_key(rs_parser *P, const char *key) {
  size_t mark = P->plen;
  int n = snprintf(P->path + P->plen, sizeof P->path - P->plen, "%s%s", P->plen ? "." : "", key);
  if (n > 0) P->plen += (size_t)n;
  if (P->plen >= sizeof P->path) P->plen = sizeof P->path - 1;
  return mark;
}

static size_t push_index(rs_parser *P, size_t i) {
  size_t mark = P->plen;
  int n = snprintf(P->path + P->plen, sizeof P->path - P->plen, "[%zu]", i);
  if (n > 0) P->plen += (size_t)n;
  if (P->plen >= sizeof P->path) P->plen = sizeof P->path - 1;
  return mark;
}

static void pop(rs_parser *P, size_t mark) {
  P->plen = mark;
  P->path[mark] = '\0';
}

/* An error at obj[key]: the path gains the key for the message. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static keel_status key_err(rs_parser *P, const char *key, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t m = push_key(P, key);
  keel_status st = perr(P, "%s", msg);
  pop(P, m);
  return st;
}

/* Fails on any key of obj not in allowed (NULL-terminated). */
static keel_status check_keys(rs_parser *P, const json_t *obj, const char *const *allowed) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    size_t k = 0;
    while (allowed[k] && strcmp(allowed[k], key)) k++;
    if (allowed[k]) continue;
    char list[384] = "";
    size_t o = 0;
    for (size_t j = 0; allowed[j] && o < sizeof list - 1; j++) {
      int n = snprintf(list + o, sizeof list - o, "%s%s", j ? ", " : "", allowed[j]);
      if (n > 0) o += (size_t)n;
    }
    keel_status st = key_err(P, key, "unknown key (expected one of %s)", list);
    return st;
  }
  return KEEL_OK;
}

static const char *type_name(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
  }
}

/* Field readers: return KEEL_OK and leave *out alone when the key is
 * absent; *present (may be NULL) says whether it was there. */
static keel_status get_number(rs_parser *P, const json_t *obj, const char *key, double *out, int *present) {
  json_t *v = json_object_get(obj, key);
  if (present) *present = v != NULL;
  if (!v) return KEEL_OK;
  if (!json_is_number(v)) {
    keel_status st = key_err(P, key, "must be a number, not %s", type_name(v));
    return st;
  }
  *out = json_number_value(v);
  return KEEL_OK;
}

/* A number that must satisfy lo <op> x <op> hi; open says which ends are
 * open (bit 0: low, bit 1: high); NAN bounds are no bound. */
static keel_status get_range(rs_parser *P, const json_t *obj, const char *key, double lo, double hi, int open,
                             double *out, int *present) {
  double v = *out;
  int have = 0;
  keel_status st = get_number(P, obj, key, &v, &have);
  if (present) *present = have;
  if (st || !have) return st;
  int bad = !isfinite(v) || (!isnan(lo) && ((open & 1) ? !(v > lo) : !(v >= lo))) ||
            (!isnan(hi) && ((open & 2) ? !(v < hi) : !(v <= hi)));
  if (bad) {
    size_t m = push_key(P, key);
    if (!isnan(lo) && !isnan(hi))
      st = perr(P, "must be in %c%g, %g%c", (open & 1) ? '(' : '[', lo, hi, (open & 2) ? ')' : ']');
    else if (!isnan(lo))
      st = perr(P, "must be %s %g", (open & 1) ? ">" : ">=", lo);
    else
      st = perr(P, "must be %s %g", (open & 2) ? "<" : "<=", hi);
    pop(P, m);
    return st;
  }
  *out = v;
  return KEEL_OK;
}

static keel_status get_uint(rs_parser *P, const json_t *obj, const char *key, unsigned lo, unsigned hi, unsigned *out,
                            int *present) {
  json_t *v = json_object_get(obj, key);
  if (present) *present = v != NULL;
  if (!v) return KEEL_OK;
  size_t m = push_key(P, key);
  keel_status st = KEEL_OK;
  if (!json_is_integer(v))
    st = perr(P, "must be a whole number, not %s", json_is_real(v) ? "a fraction" : type_name(v));
  else if (json_integer_value(v) < (json_int_t)lo || json_integer_value(v) > (json_int_t)hi)
    st = perr(P, "must be from %u to %u", lo, hi);
  else
    *out = (unsigned)json_integer_value(v);
  pop(P, m);
  return st;
}

static keel_status get_bool(rs_parser *P, const json_t *obj, const char *key, int *out) {
  json_t *v = json_object_get(obj, key);
  if (!v) return KEEL_OK;
  if (!json_is_boolean(v)) {
    keel_status st = key_err(P, key, "must be true or false, not %s", type_name(v));
    return st;
  }
  *out = json_is_true(v);
  return KEEL_OK;
}

static keel_status get_string(rs_parser *P, const json_t *obj, const char *key, const char **out) {
  json_t *v = json_object_get(obj, key);
  if (!v) return KEEL_OK;
  if (!json_is_string(v)) {
    keel_status st = key_err(P, key, "must be a string, not %s", type_name(v));
    return st;
  }
  *out = json_string_value(v);
  return KEEL_OK;
}

/* An enumerated string through one of policy.h's parsers. */
static keel_status get_enum(rs_parser *P, const json_t *obj, const char *key, int (*parse)(const char *, int *),
                            const char *choices, int *out) {
  const char *s = NULL;
  keel_status st = get_string(P, obj, key, &s);
  if (st || !s) return st;
  if (parse(s, out) != 0) {
    st = key_err(P, key, "'%s' is not one of %s", s, choices);
  }
  return st;
}

/* Adapters from the typed parsers to int (the enums are ints). */
#define ENUM_ADAPTER(fn, type)                             \
  static int fn##_int(const char *s, int *out) {           \
    type v;                                                \
    if (fn(s, &v) != 0) return -1;                         \
    *out = (int)v;                                         \
    return 0;                                              \
  }
ENUM_ADAPTER(keel_band_kind_parse, keel_band_kind)
ENUM_ADAPTER(keel_band_action_parse, keel_band_action)
ENUM_ADAPTER(keel_stop_kind_parse, keel_stop_kind)
ENUM_ADAPTER(keel_stop_ref_parse, keel_stop_ref)
ENUM_ADAPTER(keel_stop_action_parse, keel_stop_action)
ENUM_ADAPTER(keel_reentry_parse, keel_reentry)
ENUM_ADAPTER(keel_vol_estimator_parse, keel_vol_estimator)
ENUM_ADAPTER(keel_dca_source_parse, keel_dca_source)
ENUM_ADAPTER(keel_dca_dest_parse, keel_dca_dest)
ENUM_ADAPTER(keel_builtin_parse, keel_builtin)

static keel_status get_date(rs_parser *P, const json_t *obj, const char *key, keel_date *out) {
  const char *s = NULL;
  keel_status st = get_string(P, obj, key, &s);
  if (st || !s) return st;
  keel_date d;
  if (keel_date_parse(s, strlen(s), &d) != 0) {
    st = key_err(P, key, "'%s' is not a date yyyy-mm-dd", s);
    return st;
  }
  *out = d;
  return KEEL_OK;
}

/* A schedule: a calendar name, or {"every": N}. */
static keel_status get_schedule(rs_parser *P, const json_t *obj, const char *key, keel_schedule *out) {
  json_t *v = json_object_get(obj, key);
  if (!v) return KEEL_OK;
  size_t m = push_key(P, key);
  keel_status st = KEEL_OK;
  if (json_is_string(v)) {
    keel_calendar c;
    const char *s = json_string_value(v);
    if (keel_calendar_parse(s, &c) != 0 || c == KEEL_CAL_EVERY_N)
      st = perr(P, "'%s' is not one of daily, weekly, monthly, quarterly, yearly, never (or {\"every\": N})", s);
    else
      out->calendar = c, out->every = 0;
  } else if (json_is_object(v)) {
    static const char *const keys[] = {"every", NULL};
    unsigned every = 0;
    int have = 0;
    if (!(st = check_keys(P, v, keys)) && !(st = get_uint(P, v, "every", 1, 1000000, &every, &have))) {
      if (!have)
        st = perr(P, "needs \"every\": a number of rows");
      else
        out->calendar = KEEL_CAL_EVERY_N, out->every = every;
    }
  } else {
    st = perr(P, "must be a calendar name or {\"every\": N}, not %s", type_name(v));
  }
  pop(P, m);
  return st;
}

/* obj[key] when it is an object (want_array 0) or an array (1); NULL
 * when absent; an error naming the path when of another type. */
static keel_status get_container(rs_parser *P, const json_t *obj, const char *key, int want_array,
                                 const json_t **out) {
  json_t *v = json_object_get(obj, key);
  *out = v;
  if (v && (want_array ? !json_is_array(v) : !json_is_object(v))) {
    keel_status st = key_err(P, key, "must be an %s, not %s", want_array ? "array" : "object", type_name(v));
    *out = NULL;
    return st;
  }
  return KEEL_OK;
}

static keel_status get_object(rs_parser *P, const json_t *obj, const char *key, const json_t **out) {
  return get_container(P, obj, key, 0, out);
}

static keel_status get_array(rs_parser *P, const json_t *obj, const char *key, const json_t **out) {
  return get_container(P, obj, key, 1, out);
}

/* Panel column of a symbol, or an error naming the path. */
static keel_status find_symbol(rs_parser *P, const char *sym, size_t *col) {
  if (keel_panel_find(P->panel, sym, col)) return KEEL_OK;
  char avail[200] = "";
  size_t o = 0, na = keel_panel_nassets(P->panel);
  for (size_t k = 0; k < na && k < 8 && o < sizeof avail - 1; k++) {
    int n = snprintf(avail + o, sizeof avail - o, "%s%s", k ? ", " : "", keel_panel_symbol(P->panel, k));
    if (n > 0) o += (size_t)n;
  }
  return perr(P, "no asset '%s' in the prices (they have %s%s)", sym, avail, na > 8 ? ", ..." : "");
}

/* Index of a panel column in the sub-account's asset list, or n. */
static size_t sub_index(const size_t *assets, size_t n, size_t col) {
  size_t k = 0;
  while (k < n && assets[k] != col) k++;
  return k;
}

/* A {SYM: weight} object over the sub-account's assets into w (zeroed). */
static keel_status get_basket(rs_parser *P, const json_t *obj, const char *key, const size_t *assets, size_t n,
                              int allow_short, double *w) {
  const json_t *b = json_object_get(obj, key);
  size_t m = push_key(P, key);
  keel_status st = KEEL_OK;
  double sum = 0;
  const char *sym;
  json_t *v;
  json_object_foreach((json_t *)b, sym, v) {
    size_t m2 = push_key(P, sym), col = 0;
    if ((st = find_symbol(P, sym, &col))) break;
    size_t k = sub_index(assets, n, col);
    if (k == n) {
      st = perr(P, "'%s' is not one of the sub-account's assets", sym);
      break;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
      st = perr(P, "must be a number, not %s", type_name(v));
      break;
    }
    double x = json_number_value(v);
    if (x < 0 && !allow_short) {
      st = perr(P, "must be >= 0 (set allow_short to sell short)");
      break;
    }
    w[k] = x;
    sum += x;
    pop(P, m2);
  }
  if (!st && sum > 1 + 1e-12) st = perr(P, "the weights sum to %.17g, more than 1", sum);
  pop(P, m);
  return st;
}

/* ---- one sub-account ------------------------------------------------------ */

/* {"lua": module, "params": {...}}: through the caller's loader. */
static keel_status parse_loaded(rs_parser *P, const json_t *o, keel_subaccount_spec *spec, rs_sub *u, int has_sched) {
  static const char *const keys[] = {"lua", "params", NULL};
  keel_status st = check_keys(P, o, keys);
  if (st) return st;
  const char *module = NULL;
  const json_t *params = NULL;
  if ((st = get_string(P, o, "lua", &module)) || (st = get_object(P, o, "params", &params))) return st;
  if (!P->loader || !P->loader->fn) {
    size_t m = push_key(P, "lua");
    st = perr(P, "Lua strategies need a host that loads them (the keel command and keel_lua_loader do)");
    pop(P, m);
    return st;
  }
  char *pj = params ? json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  if (params && !pj) return keeli_error(P->ctx, KEEL_ENOMEM, "out of memory");
  int own = 0;
  keel_schedule sched = spec->schedule;
  st = P->loader->fn(P->loader->ud, P->ctx, module, pj, &u->strategy, &own, &sched);
  free(pj);
  if (st && st != KEEL_ENOMEM) {
    char why[640];
    snprintf(why, sizeof why, "%s", keel_errmsg(P->ctx));
    size_t m = push_key(P, "lua");
    st = perr(P, "%s", why);
    pop(P, m);
    return st;
  }
  if (!st && own && !has_sched) spec->schedule = sched;
  return st;
}

static keel_status parse_strategy(rs_parser *P, const json_t *o, keel_subaccount_spec *spec, rs_sub *u,
                                  int has_sched) {
  static const char *const keys[] = {"name",     "invest",     "lookback",  "cov",       "halflife",
                                     "max_weight", "risk_free", "use_costs", NULL};
  if (json_object_get(o, "lua")) return parse_loaded(P, o, spec, u, has_sched);
  keel_status st = check_keys(P, o, keys);
  if (st) return st;
  int kind = -1;
  if ((st = get_enum(P, o, "name", keel_builtin_parse_int,
                     "equal, inverse_vol, min_variance, max_sharpe, risk_parity", &kind)))
    return st;
  if (kind < 0) return perr(P, "needs \"name\": the built-in strategy");
  if (kind == KEEL_STRAT_FIXED) {
    size_t m = push_key(P, "name");
    st = perr(P, "a fixed basket is given by the sub-account's \"weights\"");
    pop(P, m);
    return st;
  }
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  if ((st = get_range(P, o, "invest", 0, 1, 0, &bp.invest, NULL))) return st;
  if ((st = get_uint(P, o, "lookback", 2, 100000, &bp.lookback, NULL))) return st;
  if ((st = get_range(P, o, "halflife", 0, NAN, 1, &bp.halflife, NULL))) return st;
  if ((st = get_range(P, o, "max_weight", 0, 1, 1, &bp.max_weight, NULL))) return st;
  if ((st = get_range(P, o, "risk_free", -1, 1, 1, &bp.risk_free, NULL))) return st;
  if ((st = get_bool(P, o, "use_costs", &bp.use_costs))) return st;
  const char *cov = NULL;
  if ((st = get_string(P, o, "cov", &cov))) return st;
  if (cov) {
    static const struct {
      const char *name;
      keel_cov_kind kind;
    } covs[] = {{"sample", KEEL_COV_SAMPLE},
                {"ewma", KEEL_COV_EWMA},
                {"ledoit_wolf", KEEL_COV_LW_IDENTITY},
                {"ledoit_wolf_cc", KEEL_COV_LW_CONSTCORR}};
    size_t k = 0, nc = sizeof covs / sizeof covs[0];
    while (k < nc && strcmp(covs[k].name, cov)) k++;
    if (k == nc) {
      size_t m = push_key(P, "cov");
      st = perr(P, "'%s' is not one of sample, ewma, ledoit_wolf, ledoit_wolf_cc", cov);
      pop(P, m);
      return st;
    }
    bp.cov = covs[k].kind;
  }
  (void)spec;
  st = keel_strategy_builtin(P->ctx, (keel_builtin)kind, &bp, &u->strategy);
  if (st && st != KEEL_ENOMEM) {
    char why[512];
    snprintf(why, sizeof why, "%s", keel_errmsg(P->ctx));
    return perr(P, "%s", why);
  }
  return st;
}

static keel_status parse_band(rs_parser *P, const json_t *o, keel_band *b, keel_schedule *check) {
  static const char *const keys[] = {"kind", "abs", "rel", "action", "inner", "check", NULL};
  keel_status st = check_keys(P, o, keys);
  if (st) return st;
  int kind = -1, action = (int)KEEL_BAND_TO_TARGET, has_abs = 0, has_rel = 0, has_inner = 0;
  if ((st = get_enum(P, o, "kind", keel_band_kind_parse_int, "absolute, relative, combined, none", &kind))) return st;
  if (kind < 0) return perr(P, "needs \"kind\": absolute, relative, combined or none");
  b->kind = (keel_band_kind)kind;
  if ((st = get_range(P, o, "abs", 0, 1, 3, &b->abs, &has_abs))) return st;
  if ((st = get_range(P, o, "rel", 0, NAN, 1, &b->rel, &has_rel))) return st;
  if ((st = get_enum(P, o, "action", keel_band_action_parse_int, "target, edge, inner", &action))) return st;
  b->action = (keel_band_action)action;
  if ((st = get_range(P, o, "inner", 0, 1, 2, &b->inner, &has_inner))) return st;
  if ((st = get_schedule(P, o, "check", check))) return st;
  if ((b->kind == KEEL_BAND_ABSOLUTE || b->kind == KEEL_BAND_COMBINED) && !has_abs)
    return perr(P, "a%s band needs \"abs\"", b->kind == KEEL_BAND_COMBINED ? " combined" : "n absolute");
  if ((b->kind == KEEL_BAND_RELATIVE || b->kind == KEEL_BAND_COMBINED) && !has_rel)
    return perr(P, "a %s band needs \"rel\"", b->kind == KEEL_BAND_COMBINED ? "combined" : "relative");
  if (has_inner && b->action != KEEL_BAND_TO_INNER) {
    size_t m = push_key(P, "inner");
    st = perr(P, "only for the action \"inner\"");
    pop(P, m);
    return st;
  }
  return KEEL_OK;
}

static keel_status parse_voltarget(rs_parser *P, const json_t *o, keel_voltarget *v) {
  static const char *const keys[] = {"target",       "estimator",      "window", "halflife",
                                     "leverage_cap", "rebalance_band", NULL};
  keel_status st = check_keys(P, o, keys);
  if (st) return st;
  /* defaults of keel/policy.h */
  v->estimator = KEEL_VOL_ROLLING, v->window = 63, v->halflife = 21, v->leverage_cap = 1, v->rebalance_band = 0.1;
  int have = 0, est = (int)KEEL_VOL_ROLLING;
  if ((st = get_range(P, o, "target", 0, NAN, 1, &v->target, &have))) return st;
  if (!have) return perr(P, "needs \"target\": the annualised volatility, e.g. 0.1");
  if ((st = get_enum(P, o, "estimator", keel_vol_estimator_parse_int, "rolling, ewma", &est))) return st;
  v->estimator = (keel_vol_estimator)est;
  if ((st = get_uint(P, o, "window", 2, 100000, &v->window, NULL))) return st;
  if ((st = get_range(P, o, "halflife", 0, NAN, 1, &v->halflife, NULL))) return st;
  if ((st = get_range(P, o, "leverage_cap", 0, NAN, 1, &v->leverage_cap, NULL))) return st;
  json_t *rb = json_object_get(o, "rebalance_band");
  if (json_is_null(rb))
    v->rebalance_band = INFINITY; /* schedule dates only */
  else if ((st = get_range(P, o, "rebalance_band", 0, NAN, 0, &v->rebalance_band, NULL)))
    return st;
  return KEEL_OK;
}

static keel_status parse_costs(rs_parser *P, const json_t *o, keel_cost_model *c) {
  static const char *const keys[] = {"buy_bps", "sell_bps",     "spread_bps", "slippage_bps",
                                     "fee",     "min_notional", "lots",       NULL};
  keel_status st = check_keys(P, o, keys);
  if (st) return st;
  if ((st = get_range(P, o, "buy_bps", 0, 10000, 2, &c->buy_bps, NULL))) return st;
  if ((st = get_range(P, o, "sell_bps", 0, 10000, 2, &c->sell_bps, NULL))) return st;
  if ((st = get_range(P, o, "spread_bps", 0, 10000, 2, &c->spread_bps, NULL))) return st;
  if ((st = get_range(P, o, "slippage_bps", 0, 10000, 2, &c->slippage_bps, NULL))) return st;
  if ((st = get_range(P, o, "fee", 0, NAN, 0, &c->fee, NULL))) return st;
  if ((st = get_range(P, o, "min_notional", 0, NAN, 0, &c->min_notional, NULL))) return st;
  return get_bool(P, o, "lots", &c->use_lots);
}

static keel_status parse_dca(rs_parser *P, const json_t *o, keel_dca *d) {
  static const char *const keys[] = {"amount", "schedule", "start", "end", "step_up", "source", "dest", NULL};
  keel_status st;
  if (!json_is_object(o)) return perr(P, "must be an object, not %s", type_name(o));
  if ((st = check_keys(P, o, keys))) return st;
  keel_dca_default(d);
  int have = 0, src = (int)d->source, dest = (int)d->dest;
  if ((st = get_number(P, o, "amount", &d->amount, &have))) return st;
  if (!have) return perr(P, "needs \"amount\" (money per installment; negative withdraws)");
  if (!isfinite(d->amount) || d->amount == 0) {
    size_t m = push_key(P, "amount");
    st = perr(P, "must be a non-zero number");
    pop(P, m);
    return st;
  }
  if ((st = get_schedule(P, o, "schedule", &d->schedule))) return st;
  if ((st = get_date(P, o, "start", &d->start))) return st;
  if ((st = get_date(P, o, "end", &d->end))) return st;
  if (d->start != KEEL_DATE_NONE && d->end != KEEL_DATE_NONE && d->end < d->start) {
    size_t m = push_key(P, "end");
    st = perr(P, "is before start");
    pop(P, m);
    return st;
  }
  if ((st = get_range(P, o, "step_up", -1, NAN, 1, &d->step_up, NULL))) return st;
  if ((st = get_enum(P, o, "source", keel_dca_source_parse_int, "external, cash", &src))) return st;
  if ((st = get_enum(P, o, "dest", keel_dca_dest_parse_int, "target, underweight", &dest))) return st;
  d->source = (keel_dca_source)src, d->dest = (keel_dca_dest)dest;
  return KEEL_OK;
}

static keel_status parse_stop(rs_parser *P, const json_t *o, const size_t *assets, size_t n, keel_stop_rule *r) {
  static const char *const keys[] = {"kind", "level", "ref", "asset", "action", "reentry", "days", NULL};
  keel_status st;
  if (!json_is_object(o)) return perr(P, "must be an object, not %s", type_name(o));
  if ((st = check_keys(P, o, keys))) return st;
  keel_stop_rule_default(r);
  int kind = -1, ref = (int)r->ref, action = (int)r->action, re = (int)r->reentry, have = 0, have_days = 0;
  if ((st = get_enum(P, o, "kind", keel_stop_kind_parse_int, "stop_loss, take_profit, trailing, drawdown", &kind)))
    return st;
  if (kind < 0) return perr(P, "needs \"kind\": stop_loss, take_profit, trailing or drawdown");
  r->kind = (keel_stop_kind)kind;
  if (r->kind == KEEL_STOP_TAKE_PROFIT)
    st = get_range(P, o, "level", 0, NAN, 1, &r->level, &have);
  else
    st = get_range(P, o, "level", 0, 1, 3, &r->level, &have);
  if (st) return st;
  if (!have) return perr(P, "needs \"level\"");
  if ((st = get_enum(P, o, "ref", keel_stop_ref_parse_int, "entry, avg_cost", &ref))) return st;
  if ((st = get_enum(P, o, "action", keel_stop_action_parse_int, "cash, defensive", &action))) return st;
  if ((st = get_enum(P, o, "reentry", keel_reentry_parse_int, "never, after_days, above_ma", &re))) return st;
  r->ref = (keel_stop_ref)ref, r->action = (keel_stop_action)action, r->reentry = (keel_reentry)re;
  if ((st = get_uint(P, o, "days", 1, 100000, &r->days, &have_days))) return st;
  if (r->reentry != KEEL_REENTRY_NEVER && !have_days) return perr(P, "the re-entry rule needs \"days\"");
  const char *sym = NULL;
  if ((st = get_string(P, o, "asset", &sym))) return st;
  r->asset = -1;
  if (sym) {
    size_t m = push_key(P, "asset"), col = 0;
    if (r->kind == KEEL_STOP_DRAWDOWN)
      st = perr(P, "a drawdown stop is for the whole sub-account");
    else if (!(st = find_symbol(P, sym, &col))) {
      size_t k = sub_index(assets, n, col);
      if (k == n)
        st = perr(P, "'%s' is not one of the sub-account's assets", sym);
      else
        r->asset = (long)k;
    }
    pop(P, m);
  }
  return st;
}

/* Adds the panel columns named by the keys of obj (may be NULL) to mark. */
static keel_status mark_keys(rs_parser *P, const json_t *obj, const char *key, unsigned char *mark) {
  const char *sym;
  json_t *v;
  if (!obj) return KEEL_OK;
  size_t m = push_key(P, key);
  json_object_foreach((json_t *)obj, sym, v) {
    size_t col, m2 = push_key(P, sym);
    keel_status st = find_symbol(P, sym, &col);
    if (st) return st;
    mark[col] = 1;
    pop(P, m2);
  }
  pop(P, m);
  return KEEL_OK;
}

static keel_status parse_sub(rs_parser *P, const json_t *o, keel_date first, keel_subaccount_spec *s, rs_sub *u) {
  static const char *const keys[] = {"name",     "capital", "assets",    "weights", "strategy", "schedule",
                                     "rebalance_on_schedule", "band", "vol_target", "costs", "skip", "dca",
                                     "stops",    "defensive", "allow_short", "invest_at_start", NULL};
  keel_ctx *ctx = P->ctx;
  keel_status st;
  if (!json_is_object(o)) return perr(P, "must be an object, not %s", type_name(o));
  if ((st = check_keys(P, o, keys))) return st;
  keel_subaccount_spec_default(s);
  const char *name = "main";
  if ((st = get_string(P, o, "name", &name))) return st;
  if (!*name) {
    size_t m = push_key(P, "name");
    st = perr(P, "must not be empty");
    pop(P, m);
    return st;
  }
  if (!(u->name = keeli_strdup(ctx, name))) return KEEL_ENOMEM;
  s->name = u->name;
  if ((st = get_bool(P, o, "allow_short", &s->allow_short))) return st;
  if ((st = get_bool(P, o, "invest_at_start", &s->invest_at_start))) return st;
  const json_t *weights, *strategy, *defensive, *assets, *stops, *dca, *band, *vol, *costs, *skip;
  if ((st = get_object(P, o, "weights", &weights)) || (st = get_object(P, o, "strategy", &strategy)) ||
      (st = get_object(P, o, "defensive", &defensive)) || (st = get_array(P, o, "assets", &assets)) ||
      (st = get_array(P, o, "stops", &stops)) || (st = get_array(P, o, "dca", &dca)) ||
      (st = get_object(P, o, "band", &band)) || (st = get_object(P, o, "vol_target", &vol)) ||
      (st = get_object(P, o, "costs", &costs)) || (st = get_object(P, o, "skip", &skip)))
    return st;
  if (!weights == !strategy) return perr(P, "give either \"weights\" (a fixed basket) or \"strategy\"");

  /* the asset list: given, or the symbols the sub-account names (in panel
   * order), or with a strategy and no list every column */
  const size_t na = keel_panel_nassets(P->panel);
  size_t n = 0;
  if (!(u->assets = keeli_alloc_array(ctx, na, sizeof *u->assets))) return KEEL_ENOMEM;
  if (assets) {
    size_t m = push_key(P, "assets");
    if (json_array_size(assets) == 0) st = perr(P, "must name at least one asset");
    for (size_t i = 0; !st && i < json_array_size(assets); i++) {
      json_t *a = json_array_get(assets, i);
      size_t m2 = push_index(P, i), col = 0;
      if (!json_is_string(a))
        st = perr(P, "must be a symbol, not %s", type_name(a));
      else if (!(st = find_symbol(P, json_string_value(a), &col))) {
        if (sub_index(u->assets, n, col) < n)
          st = perr(P, "'%s' is listed twice", json_string_value(a));
        else
          u->assets[n++] = col;
      }
      pop(P, m2);
    }
    pop(P, m);
    if (st) return st;
  } else if (weights) {
    unsigned char *mark = keeli_calloc(ctx, na, 1);
    if (!mark) return KEEL_ENOMEM;
    st = mark_keys(P, weights, "weights", mark);
    if (!st) st = mark_keys(P, defensive, "defensive", mark);
    for (size_t i = 0; !st && stops && i < json_array_size(stops); i++) {
      json_t *r = json_array_get(stops, i), *a = json_object_get(r, "asset");
      size_t col;
      if (json_is_string(a) && keel_panel_find(P->panel, json_string_value(a), &col)) mark[col] = 1;
    }
    for (size_t j = 0; j < na; j++)
      if (mark[j]) u->assets[n++] = j;
    keeli_free(ctx, mark);
    if (st) return st;
    if (n == 0) {
      size_t m = push_key(P, "weights");
      st = perr(P, "names no asset");
      pop(P, m);
      return st;
    }
  } else {
    for (size_t j = 0; j < na; j++) u->assets[n++] = j;
  }
  s->nassets = n;
  s->assets = u->assets;

  if (weights) {
    if (!(u->weights = keeli_calloc(ctx, n, sizeof *u->weights))) return KEEL_ENOMEM;
    if ((st = get_basket(P, o, "weights", u->assets, n, s->allow_short, u->weights))) return st;
    s->weights = u->weights;
  }
  if (defensive) {
    if (!(u->defensive = keeli_calloc(ctx, n, sizeof *u->defensive))) return KEEL_ENOMEM;
    if ((st = get_basket(P, o, "defensive", u->assets, n, 0, u->defensive))) return st;
    s->defensive = u->defensive;
  }
  int has_capital = 0;
  if ((st = get_range(P, o, "capital", 0, NAN, 0, &s->capital, &has_capital))) return st;
  if ((st = get_schedule(P, o, "schedule", &s->schedule))) return st;
  if ((st = get_bool(P, o, "rebalance_on_schedule", &s->rebalance_on_schedule))) return st;
  if (band) {
    size_t m = push_key(P, "band");
    st = parse_band(P, band, &s->band, &s->band_check);
    pop(P, m);
    if (st) return st;
  }
  if (vol) {
    size_t m = push_key(P, "vol_target");
    st = parse_voltarget(P, vol, &s->vol);
    pop(P, m);
    if (st) return st;
  }
  if (costs) {
    size_t m = push_key(P, "costs");
    st = parse_costs(P, costs, &s->costs);
    pop(P, m);
    if (st) return st;
  }
  if (skip) {
    static const char *const skeys[] = {"gamma", "lookback", NULL};
    size_t m = push_key(P, "skip");
    if (!(st = check_keys(P, skip, skeys)) && !(st = get_range(P, skip, "gamma", 0, NAN, 0, &s->skip_gamma, NULL)))
      st = get_uint(P, skip, "lookback", 2, 100000, &s->skip_lookback, NULL);
    pop(P, m);
    if (st) return st;
  }
  int external = 0;
  if (dca && json_array_size(dca)) {
    size_t nd = json_array_size(dca), m = push_key(P, "dca");
    if (!(u->dca = keeli_calloc(ctx, nd, sizeof *u->dca))) return KEEL_ENOMEM;
    for (size_t i = 0; !st && i < nd; i++) {
      size_t m2 = push_index(P, i);
      st = parse_dca(P, json_array_get(dca, i), &u->dca[i]);
      /* capital 0 needs money on the first row: an external plan that has started */
      external |= !st && u->dca[i].source == KEEL_DCA_EXTERNAL && u->dca[i].amount > 0 &&
                  (u->dca[i].start == KEEL_DATE_NONE || u->dca[i].start <= first);
      pop(P, m2);
    }
    pop(P, m);
    if (st) return st;
    s->dca = u->dca, s->ndca = nd;
  }
  if (stops && json_array_size(stops)) {
    size_t ns = json_array_size(stops), m = push_key(P, "stops");
    if (!(u->stops = keeli_calloc(ctx, ns, sizeof *u->stops))) return KEEL_ENOMEM;
    for (size_t i = 0; !st && i < ns; i++) {
      size_t m2 = push_index(P, i);
      st = parse_stop(P, json_array_get(stops, i), u->assets, n, &u->stops[i]);
      if (!st && u->stops[i].action == KEEL_STOP_TO_DEFENSIVE && !defensive)
        st = perr(P, "the action \"defensive\" needs the sub-account's \"defensive\" basket");
      pop(P, m2);
    }
    pop(P, m);
    if (st) return st;
    s->stops = u->stops, s->nstops = ns;
  }
  if (!has_capital && !external)
    return perr(P, "needs \"capital\" (or 0 with an external DCA plan paying from the first date)");
  if (s->capital == 0 && !external) {
    size_t m = push_key(P, "capital");
    st = perr(P, "must be > 0 unless an external DCA plan brings the money from the first date");
    pop(P, m);
    return st;
  }
  if (strategy) {
    size_t m = push_key(P, "strategy");
    st = parse_strategy(P, strategy, s, u, json_object_get(o, "schedule") != NULL);
    pop(P, m);
    if (st) return st;
    s->strategy = u->strategy;
  }
  return KEEL_OK;
}

/* ---- the account ------------------------------------------------------------ */

static keel_status set_label(keel_ctx *ctx, keel_runspec *rs) {
  size_t len = 1;
  for (size_t k = 0; k < rs->nsubs; k++) len += strlen(rs->subs[k].name) + 32;
  if (!(rs->strategy = keeli_alloc(ctx, len))) return KEEL_ENOMEM;
  size_t o = 0;
  rs->strategy[0] = '\0';
  for (size_t k = 0; k < rs->nsubs; k++) {
    const keel_strategy *g = rs->subs[k].strategy;
    const char *what = g ? g->ops->name : "fixed_weights";
    int n = rs->nsubs == 1 ? snprintf(rs->strategy, len, "%s", what)
                           : snprintf(rs->strategy + o, len - o, "%s%s:%s", k ? "," : "", rs->subs[k].name, what);
    if (n > 0) o += (size_t)n;
  }
  return KEEL_OK;
}

keel_status keeli_runspec_from_json(keel_ctx *ctx, const char *name, const char *root, const json_t *run,
                                    const keel_panel *closes, const keel_panel *opens,
                                    const keel_strategy_loader *loader, keel_runspec **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_runspec_parse: out is NULL");
  *out = NULL;
  if (!closes || !run) return keeli_error(ctx, KEEL_EINVAL, "keel_runspec_parse: no prices or no description");
  rs_parser P = {.ctx = ctx, .name = name ? name : "run", .panel = closes, .loader = loader};
  snprintf(P.path, sizeof P.path, "%s", root ? root : "");
  P.plen = strlen(P.path);
  if (!json_is_object(run)) return perr(&P, "a run description must be a JSON object, not %s", type_name(run));
  static const char *const keys[] = {"start", "end",  "fill",        "benchmark",       "periods_per_year",
                                     "risk_free", "seed", "subaccounts", "record_holdings", NULL};
  keel_status st = check_keys(&P, run, keys);
  if (st) return st;
  keel_runspec *rs = keeli_calloc(ctx, 1, sizeof *rs);
  if (!rs) return KEEL_ENOMEM;
  rs->heap = *keeli_ctx_heap(ctx);
  keel_account_spec *a = &rs->acct;
  keel_account_spec_default(a);

  const size_t nd = keel_panel_ndates(closes);
  const keel_date *dates = keel_panel_dates(closes);
  keel_date d0 = KEEL_DATE_NONE, d1 = KEEL_DATE_NONE;
  const char *fill = NULL, *bench = NULL;
  const json_t *subs = NULL;
  if ((st = get_date(&P, run, "start", &d0)) || (st = get_date(&P, run, "end", &d1))) goto fail;
  if (d0 != KEEL_DATE_NONE && d1 != KEEL_DATE_NONE && d1 < d0) {
    size_t m = push_key(&P, "end");
    st = perr(&P, "is before start");
    pop(&P, m);
    goto fail;
  }
  size_t i0 = 0, i1 = nd;
  if (d0 != KEEL_DATE_NONE)
    while (i0 < nd && dates[i0] < d0) i0++;
  if (d1 != KEEL_DATE_NONE)
    while (i1 > 0 && dates[i1 - 1] > d1) i1--;
  if (i0 >= i1) {
    st = perr(&P, "no prices between start and end");
    goto fail;
  }
  a->start = i0, a->end = i1;
  if ((st = get_string(&P, run, "fill", &fill))) goto fail;
  if (fill) {
    size_t m = push_key(&P, "fill");
    if (!strcmp(fill, "close"))
      a->fill = KEEL_FILL_CLOSE;
    else if (!strcmp(fill, "next_open"))
      a->fill = KEEL_FILL_NEXT_OPEN;
    else
      st = perr(&P, "'%s' is not one of close, next_open", fill);
    if (!st && a->fill == KEEL_FILL_NEXT_OPEN && !opens) st = perr(&P, "next_open needs open prices");
    pop(&P, m);
    if (st) goto fail;
  }
  a->opens = opens;
  if ((st = get_string(&P, run, "benchmark", &bench))) goto fail;
  if (bench) {
    size_t m = push_key(&P, "benchmark"), col = 0;
    st = find_symbol(&P, bench, &col);
    pop(&P, m);
    if (st) goto fail;
    a->benchmark = (long)col;
  }
  if ((st = get_range(&P, run, "periods_per_year", 0, 100000, 1, &a->periods_per_year, NULL))) goto fail;
  if ((st = get_range(&P, run, "risk_free", -1, 1, 1, &a->risk_free, NULL))) goto fail;
  if ((st = get_bool(&P, run, "record_holdings", &a->record_holdings))) goto fail;
  json_t *seed = json_object_get(run, "seed");
  if (seed) {
    size_t m = push_key(&P, "seed");
    if (!json_is_integer(seed) || json_integer_value(seed) < 0)
      st = perr(&P, "must be a whole number >= 0");
    else
      a->seed = (uint64_t)json_integer_value(seed);
    pop(&P, m);
    if (st) goto fail;
  }
  if ((st = get_array(&P, run, "subaccounts", &subs))) goto fail;
  if (!subs || json_array_size(subs) == 0) {
    st = perr(&P, "needs \"subaccounts\": a non-empty array");
    goto fail;
  }
  rs->nsubs = json_array_size(subs);
  rs->specs = keeli_calloc(ctx, rs->nsubs, sizeof *rs->specs);
  rs->subs = keeli_calloc(ctx, rs->nsubs, sizeof *rs->subs);
  if (!rs->specs || !rs->subs) {
    if (!rs->subs) rs->nsubs = 0;
    st = KEEL_ENOMEM;
    goto fail;
  }
  {
    size_t m = push_key(&P, "subaccounts");
    for (size_t k = 0; !st && k < rs->nsubs; k++) {
      size_t m2 = push_index(&P, k);
      st = parse_sub(&P, json_array_get(subs, k), dates[i0], &rs->specs[k], &rs->subs[k]);
      for (size_t j = 0; !st && j < k; j++)
        if (!strcmp(rs->subs[j].name, rs->subs[k].name)) {
          size_t m3 = push_key(&P, "name");
          st = perr(&P, "'%s' is used by subaccounts[%zu] too", rs->subs[k].name, j);
          pop(&P, m3);
        }
      pop(&P, m2);
    }
    pop(&P, m);
    if (st) goto fail;
  }
  a->nsubs = rs->nsubs, a->subs = rs->specs;
  if ((st = set_label(ctx, rs))) goto fail;
  char *js = json_dumps(run, JSON_SORT_KEYS | JSON_COMPACT);
  if (!js) {
    st = keeli_error(ctx, KEEL_ENOMEM, "%s: out of memory", P.name);
    goto fail;
  }
  rs->json = keeli_strdup(ctx, js);
  free(js);
  if (!rs->json) {
    st = KEEL_ENOMEM;
    goto fail;
  }
  *out = rs;
  return KEEL_OK;
fail:
  keel_runspec_free(rs);
  return st;
}

keel_status keel_runspec_parse(keel_ctx *ctx, const char *name, const char *json, size_t len, const keel_panel *closes,
                               const keel_panel *opens, keel_runspec **out) {
  return keel_runspec_parse_with(ctx, name, json, len, closes, opens, NULL, out);
}

keel_status keel_runspec_parse_with(keel_ctx *ctx, const char *name, const char *json, size_t len,
                                    const keel_panel *closes, const keel_panel *opens,
                                    const keel_strategy_loader *loader, keel_runspec **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_runspec_parse: out is NULL");
  *out = NULL;
  if (!json) return keeli_error(ctx, KEEL_EINVAL, "keel_runspec_parse: no text");
  if (!name) name = "run";
  json_error_t je;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) return keeli_error(ctx, KEEL_EPARSE, "%s:%d:%d: %s", name, je.line, je.column, je.text);
  keel_status st = keeli_runspec_from_json(ctx, name, "", root, closes, opens, loader, out);
  json_decref(root);
  return st;
}
