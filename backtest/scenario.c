/* keel — stress scenarios as text (the command line's syntax) and as JSON
 * files; both build a keel_scenario (core/mc.c). docs/stress.md has the
 * syntax. Numbers are read by keel's locale-independent parser. */
#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/internal.h"
#include "data/numparse.h"
#include "keel/mc.h"
#include "keel/stress.h"

/* A number of n bytes, optionally ending in '%' (hundredths). */
static int parse_num(const char *s, size_t n, double *out) {
  int pct = n > 0 && s[n - 1] == '%';
  if (pct) n--;
  if (n == 0 || n > KEEL_NUM_MAXLEN) return -1;
  locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  if (!c) return -1;
  int rc = keeli_parse_double(s, n, c, out);
  freelocale(c);
  if (rc == 0 && pct) *out /= 100;
  return rc == 0 && isfinite(*out) ? 0 : -1;
}

static int parse_time_n(const char *s, size_t n, double *years) {
  if (n == 0) return -1;
  if (n == 1 && s[0] == '0') return (*years = 0), 0;
  double per;
  switch (s[n - 1]) {
    case 'y': per = 1; break;
    case 'm': per = 1.0 / 12; break;
    case 'w': per = 5.0 / 252; break;
    case 'd': per = 1.0 / 252; break;
    default: return -1;
  }
  double v;
  if (parse_num(s, n - 1, &v) || !(v >= 0)) return -1;
  *years = v * per;
  return 0;
}

int keel_scenario_parse_time(const char *s, double *years) { return s ? parse_time_n(s, strlen(s), years) : -1; }

/* One event of the text syntax, n bytes at s. */
static keel_status parse_one(keel_ctx *ctx, keel_scenario *sc, const char *s, size_t n) {
  char buf[512];
  if (n >= sizeof buf) return keeli_error(ctx, KEEL_EINVAL, "scenario '%.40s...': too long", s);
  memcpy(buf, s, n);
  buf[n] = '\0';
  keel_scenario_event ev = {.target = "all", .cost_mult = 1, .spread_mult = 1};
  /* the times: "@AT[/DUR]" at the end, or "/DUR" after the last ':' */
  char *at = strchr(buf, '@'), *dur = NULL;
  if (at) {
    *at++ = '\0';
    dur = strchr(at, '/');
  } else {
    char *lastc = strrchr(buf, ':');
    dur = strchr(lastc ? lastc : buf, '/');
  }
  if (dur) *dur++ = '\0';
  char *f[4] = {0};
  size_t nf = 0;
  for (char *p = buf;;) {
    char *q = strchr(p, ':');
    if (nf == 4) return keeli_error(ctx, KEEL_EINVAL, "scenario '%.*s': too many ':' fields", (int)n, s);
    f[nf++] = p;
    if (!q) break;
    *q = '\0';
    p = q + 1;
  }
  const char *kind = f[0];
  int default_to_end = 0;
#define BAD(...) return keeli_error(ctx, KEEL_EINVAL, __VA_ARGS__)
  if (!strcasecmp(kind, "crash") || !strcasecmp(kind, "rally")) {
    int crash = !strcasecmp(kind, "crash");
    if (nf != 3) BAD("scenario '%.*s': write %s:TARGET:SIZE[@TIME][/DURATION]", (int)n, s, kind);
    ev.kind = KEEL_SCN_SHOCK;
    ev.target = f[1];
    if (parse_num(f[2], strlen(f[2]), &ev.size)) BAD("scenario '%.*s': '%s' is not a number", (int)n, s, f[2]);
    if (crash && !(ev.size < 0 && ev.size > -1))
      BAD("scenario '%.*s': a crash is a fall between 0 and -1 (e.g. -0.4 or -40%%)", (int)n, s);
    if (!crash && !(ev.size > 0)) BAD("scenario '%.*s': a rally is a rise > 0 (e.g. 0.3 or 30%%)", (int)n, s);
  } else if (!strcasecmp(kind, "vol") || !strcasecmp(kind, "corr")) {
    if (nf != 3) BAD("scenario '%.*s': write %s:TARGET:VALUE[@TIME][/DURATION]", (int)n, s, kind);
    ev.kind = !strcasecmp(kind, "vol") ? KEEL_SCN_VOL : KEEL_SCN_CORR;
    ev.target = f[1];
    size_t l = strlen(f[2]);
    if (ev.kind == KEEL_SCN_VOL && l > 1 && (f[2][l - 1] == 'x' || f[2][l - 1] == 'X')) l--;
    if (parse_num(f[2], l, &ev.size)) BAD("scenario '%.*s': '%s' is not a number", (int)n, s, f[2]);
    default_to_end = 1;
  } else if (!strcasecmp(kind, "worst")) {
    if (nf < 2 || nf > 3) BAD("scenario '%.*s': write worst:LENGTH[:TARGET][@TIME]", (int)n, s);
    ev.kind = KEEL_SCN_WORST;
    if (parse_time_n(f[1], strlen(f[1]), &ev.duration) || !(ev.duration > 0))
      BAD("scenario '%.*s': '%s' is not a length like 20d, 3m or 1y", (int)n, s, f[1]);
    if (nf == 3) ev.target = f[2];
    if (dur) BAD("scenario '%.*s': a worst window's length is its duration (no /DURATION)", (int)n, s);
  } else if (!strcasecmp(kind, "liquidity")) {
    if (nf != 3) BAD("scenario '%.*s': write liquidity:TARGET:cost=K,spread=K,halt=TIME[@TIME][/DURATION]", (int)n, s);
    ev.kind = KEEL_SCN_LIQUIDITY;
    ev.target = f[1];
    for (char *p = f[2]; *p;) {
      char *c = strchr(p, ','), *eq = strchr(p, '=');
      size_t l = c ? (size_t)(c - p) : strlen(p);
      if (!eq || eq > p + l) BAD("scenario '%.*s': '%.*s' is not key=value", (int)n, s, (int)l, p);
      size_t kl = (size_t)(eq - p), vl = l - kl - 1;
      const char *v = eq + 1;
      int bad;
      if (kl == 4 && !strncmp(p, "cost", 4))
        bad = parse_num(v, vl, &ev.cost_mult);
      else if (kl == 6 && !strncmp(p, "spread", 6))
        bad = parse_num(v, vl, &ev.spread_mult);
      else if (kl == 4 && !strncmp(p, "halt", 4))
        bad = parse_time_n(v, vl, &ev.halt);
      else
        BAD("scenario '%.*s': unknown liquidity setting '%.*s' (cost, spread, halt)", (int)n, s, (int)kl, p);
      if (bad) BAD("scenario '%.*s': bad value '%.*s'", (int)n, s, (int)vl, v);
      p += l + (c != NULL);
    }
    default_to_end = 1;
  } else {
    BAD("scenario '%.*s': unknown kind '%s' (crash, rally, vol, corr, worst, liquidity)", (int)n, s, kind);
  }
  if (at && parse_time_n(at, strlen(at), &ev.at))
    BAD("scenario '%.*s': '%s' is not a time like 5y, 6m, 3w or 20d", (int)n, s, at);
  if (ev.kind != KEEL_SCN_WORST) {
    if (dur) {
      if (parse_time_n(dur, strlen(dur), &ev.duration))
        BAD("scenario '%.*s': '%s' is not a duration like 1y, 6m, 3w or 20d", (int)n, s, dur);
    } else {
      ev.duration = default_to_end ? -1 : 0;
    }
  }
#undef BAD
  return keel_scenario_add_event(ctx, sc, &ev);
}

keel_status keel_scenario_parse(keel_ctx *ctx, keel_scenario *sc, const char *text) {
  if (!sc || !text) return keeli_error(ctx, KEEL_EINVAL, "keel_scenario_parse: NULL argument");
  const char *p = text;
  int any = 0;
  for (;;) {
    while (*p == ' ' || *p == ';') p++;
    if (!*p) break;
    const char *q = strchr(p, ';');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    while (n && p[n - 1] == ' ') n--;
    keel_status st = parse_one(ctx, sc, p, n);
    if (st) return st;
    any = 1;
    if (!q) break;
    p = q + 1;
  }
  if (!any) return keeli_error(ctx, KEEL_EINVAL, "scenario: '%s' has no event", text);
  return KEEL_OK;
}

/* ---- JSON ------------------------------------------------------------------ */

static keel_status jerr(keel_ctx *ctx, const char *name, const char *path, const char *what) {
  return keeli_error(ctx, KEEL_EINVAL, "%s: %s: %s", name, path, what);
}

/* A time: a number of years or a string "5y". */
static int json_time(const json_t *v, double *years) {
  if (json_is_number(v)) {
    *years = json_number_value(v);
    return isfinite(*years) && *years >= 0 ? 0 : -1;
  }
  return json_is_string(v) ? keel_scenario_parse_time(json_string_value(v), years) : -1;
}

static keel_status json_event(keel_ctx *ctx, keel_scenario *sc, const char *name, size_t i, json_t *e) {
  char path[64];
  snprintf(path, sizeof path, "events[%zu]", i);
  if (json_is_string(e)) return keel_scenario_parse(ctx, sc, json_string_value(e));
  if (!json_is_object(e)) return jerr(ctx, name, path, "must be an object or a string event");
  static const char *const keys[] = {"kind", "target", "size", "at", "duration", "cost", "spread", "halt", NULL};
  const char *key;
  json_t *v;
  json_object_foreach(e, key, v) {
    int ok = 0;
    for (size_t k = 0; keys[k]; k++) ok |= !strcmp(keys[k], key);
    if (!ok) {
      char msg[128];
      snprintf(msg, sizeof msg, "unknown key '%s'", key);
      return jerr(ctx, name, path, msg);
    }
  }
  const char *kind = json_string_value(json_object_get(e, "kind"));
  if (!kind) return jerr(ctx, name, path, "needs \"kind\": crash, rally, vol, corr, worst or liquidity");
  keel_scenario_event ev = {.target = "all", .cost_mult = 1, .spread_mult = 1};
  int to_end = 0;
  if (!strcmp(kind, "crash") || !strcmp(kind, "rally")) {
    ev.kind = KEEL_SCN_SHOCK;
  } else if (!strcmp(kind, "vol")) {
    ev.kind = KEEL_SCN_VOL, to_end = 1;
  } else if (!strcmp(kind, "corr")) {
    ev.kind = KEEL_SCN_CORR, to_end = 1;
  } else if (!strcmp(kind, "worst")) {
    ev.kind = KEEL_SCN_WORST;
  } else if (!strcmp(kind, "liquidity")) {
    ev.kind = KEEL_SCN_LIQUIDITY, to_end = 1;
  } else {
    return jerr(ctx, name, path, "unknown kind (crash, rally, vol, corr, worst, liquidity)");
  }
  json_t *t = json_object_get(e, "target");
  if (t) {
    if (!json_is_string(t)) return jerr(ctx, name, path, "\"target\" must be a string");
    ev.target = json_string_value(t);
  }
  json_t *sz = json_object_get(e, "size");
  if (ev.kind <= KEEL_SCN_CORR) {
    if (!json_is_number(sz)) return jerr(ctx, name, path, "needs a number \"size\"");
    ev.size = json_number_value(sz);
    if (!strcmp(kind, "crash") && !(ev.size < 0)) return jerr(ctx, name, path, "a crash's size is a fall (< 0)");
    if (!strcmp(kind, "rally") && !(ev.size > 0)) return jerr(ctx, name, path, "a rally's size is a rise (> 0)");
  } else if (sz) {
    return jerr(ctx, name, path, "\"size\" is for crash, rally, vol and corr");
  }
  json_t *a = json_object_get(e, "at"), *d = json_object_get(e, "duration");
  if (a && json_time(a, &ev.at)) return jerr(ctx, name, path, "\"at\" must be years or a time like \"5y\"");
  ev.duration = to_end ? -1 : 0;
  if (d && json_time(d, &ev.duration)) return jerr(ctx, name, path, "\"duration\" must be years or a time like \"6m\"");
  if (ev.kind == KEEL_SCN_WORST && !d) return jerr(ctx, name, path, "a worst window needs its \"duration\"");
  static const char *const lk[] = {"cost", "spread", "halt"};
  for (size_t k = 0; k < 3; k++) {
    json_t *x = json_object_get(e, lk[k]);
    if (!x) continue;
    if (ev.kind != KEEL_SCN_LIQUIDITY) return jerr(ctx, name, path, "cost, spread and halt are for liquidity events");
    if (k < 2 && !json_is_number(x)) return jerr(ctx, name, path, "cost and spread are numbers (multipliers)");
    if (k == 0) ev.cost_mult = json_number_value(x);
    if (k == 1) ev.spread_mult = json_number_value(x);
    if (k == 2 && json_time(x, &ev.halt)) return jerr(ctx, name, path, "\"halt\" must be years or a time like \"5d\"");
  }
  keel_status st = keel_scenario_add_event(ctx, sc, &ev);
  if (st == KEEL_EINVAL) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", keel_errmsg(ctx));
    return jerr(ctx, name, path, msg);
  }
  return st;
}

keel_status keel_scenario_parse_json(keel_ctx *ctx, keel_scenario *sc, const char *name, const char *json,
                                     size_t len) {
  if (!sc || !json) return keeli_error(ctx, KEEL_EINVAL, "keel_scenario_parse_json: NULL argument");
  if (!name) name = "scenario";
  json_error_t je;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) return keeli_error(ctx, KEEL_EPARSE, "%s:%d:%d: %s", name, je.line, je.column, je.text);
  keel_status st = KEEL_OK;
  json_t *groups = NULL, *events = NULL;
  if (!json_is_object(root)) {
    st = jerr(ctx, name, "(top)", "must be an object with \"events\" (and optional \"groups\")");
    goto done;
  }
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (strcmp(key, "groups") && strcmp(key, "events") && strcmp(key, "name") && strcmp(key, "description")) {
      char msg[128];
      snprintf(msg, sizeof msg, "unknown key '%s' (groups, events, name, description)", key);
      st = jerr(ctx, name, "(top)", msg);
      goto done;
    }
  }
  groups = json_object_get(root, "groups");
  events = json_object_get(root, "events");
  if (groups) {
    if (!json_is_object(groups)) {
      st = jerr(ctx, name, "groups", "must be an object of name: members");
      goto done;
    }
    json_object_foreach(groups, key, v) {
      char members[1024] = "";
      size_t used = 0;
      if (json_is_string(v)) {
        snprintf(members, sizeof members, "%s", json_string_value(v));
      } else if (json_is_array(v) && json_array_size(v) > 0) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) {
          const char *ms = json_string_value(m);
          if (!ms || used + strlen(ms) + 2 > sizeof members) {
            st = jerr(ctx, name, "groups", "members are strings (symbols or patterns)");
            goto done;
          }
          used += (size_t)snprintf(members + used, sizeof members - used, "%s%s", i ? "+" : "", ms);
        }
      } else {
        st = jerr(ctx, name, "groups", "a group is a target string or an array of symbols");
        goto done;
      }
      if ((st = keel_scenario_add_group(ctx, sc, key, members))) {
        if (st == KEEL_EINVAL) {
          char msg[512];
          snprintf(msg, sizeof msg, "%s", keel_errmsg(ctx));
          st = jerr(ctx, name, "groups", msg);
        }
        goto done;
      }
    }
  }
  if (!json_is_array(events) || json_array_size(events) == 0) {
    st = jerr(ctx, name, "events", "must be a non-empty array");
    goto done;
  }
  size_t i;
  json_array_foreach(events, i, v) {
    if ((st = json_event(ctx, sc, name, i, v))) goto done;
  }
done:
  json_decref(root);
  return st;
}
