/* keel's engine (keel_backtest_run_account) against the independent NumPy
 * reference tests/fixtures/engine_reference.py on the shared data: for each
 * case of tests/fixtures/engine_reference.json the same sub-account is built
 * from the fixture's settings and run, and the final value, every metric
 * (account and sub-account), the rebalance, trade and event lists and the
 * sampled values and cash must agree to 1e-9 relative (counts, dates, assets,
 * reasons and kinds exactly; amounts near zero, such as the cash left after
 * a full investment or a band's smallest trades, also pass within 1e-10 of
 * that day's value). Trades, rebalances and events are compared
 * after sorting both sides by (date, reason or kind, asset), so the order in
 * which a row emits them is free. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_test.h"

#define RTOL 1e-9
#define ATOL_SCALE 1e-10 /* absolute tolerance for near-zero amounts (cash, small trades), times the value that day */
#define MAX_REPORTED 25

static const char *FIXTURE = "tests/fixtures/engine_reference.json";

/* ---- mismatches: the first few are printed, the case fails at its end ---- */

static int nbad;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void bad(const char *cname, const char *fmt, ...) {
  if (nbad++ >= MAX_REPORTED) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  print_message("%s: %s\n", cname, msg);
}

static int close_to(double got, double want, double atol) {
  if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
  return fabs(got - want) <= atol + RTOL * fabs(want);
}

/* want may be a JSON number or null (NaN). */
static void check_num(const char *cname, const char *what, double got, json_t *want, double atol) {
  if (!want) {
    bad(cname, "%s: missing in the fixture", what);
    return;
  }
  double w = json_is_null(want) ? NAN : json_number_value(want);
  if (!close_to(got, w, atol)) bad(cname, "%s: keel %.17g, reference %.17g", what, got, w);
}

static keel_date parse_date(const char *s) {
  keel_date d = KEEL_DATE_NONE;
  if (!s || keel_date_parse(s, strlen(s), &d) != 0) fail_msg("fixture: bad date %s", s ? s : "(null)");
  return d;
}

static void fmt_date(keel_date d, char buf[KEEL_DATE_BUFSIZE]) {
  if (d == KEEL_DATE_NONE)
    snprintf(buf, KEEL_DATE_BUFSIZE, "none");
  else
    keel_date_format(d, buf);
}

static void check_date(const char *cname, const char *what, keel_date got, json_t *want) {
  keel_date w = json_is_null(want) ? KEEL_DATE_NONE : parse_date(json_string_value(want));
  if (got != w) {
    char a[KEEL_DATE_BUFSIZE], b[KEEL_DATE_BUFSIZE];
    fmt_date(got, a);
    fmt_date(w, b);
    bad(cname, "%s: keel %s, reference %s", what, a, b);
  }
}

/* ---- fixture access ------------------------------------------------------ */

static json_t *get(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  if (!v) fail_msg("fixture: no field %s", k);
  return v;
}

static double num(json_t *o, const char *k) { return json_number_value(get(o, k)); }
static long long integer(json_t *o, const char *k) { return (long long)json_integer_value(get(o, k)); }
static const char *str(json_t *o, const char *k) {
  const char *s = json_string_value(get(o, k));
  if (!s) fail_msg("fixture: field %s is not a string", k);
  return s;
}

static size_t column(const keel_panel *p, const char *sym) {
  size_t j = 0;
  if (!sym || !keel_panel_find(p, sym, &j)) fail_msg("fixture: no asset %s in the panel", sym ? sym : "(null)");
  return j;
}

static int reason_code(const char *name) {
  for (int r = KEEL_REASON_INITIAL; r <= KEEL_REASON_REENTRY; r++)
    if (strcmp(keel_trade_reason_name((keel_trade_reason)r), name) == 0) return r;
  fail_msg("fixture: unknown trade reason %s", name);
  return -1;
}

static int event_code(const char *name) {
  for (int k = KEEL_EVENT_STOP; k <= KEEL_EVENT_REENTRY; k++)
    if (strcmp(keel_event_kind_name((keel_event_kind)k), name) == 0) return k;
  fail_msg("fixture: unknown event kind %s", name);
  return -1;
}

static void read_schedule(json_t *j, keel_schedule *s) {
  assert_int_equal(keel_calendar_parse(str(j, "calendar"), &s->calendar), 0);
  s->every = (unsigned)integer(j, "every");
}

static void read_costs(json_t *j, keel_cost_model *c) {
  keel_cost_model_default(c);
  c->buy_bps = num(j, "buy_bps");
  c->sell_bps = num(j, "sell_bps");
  c->spread_bps = num(j, "spread_bps");
  c->slippage_bps = num(j, "slippage_bps");
  c->fee = num(j, "fee");
  c->min_notional = num(j, "min_notional");
  c->use_lots = (int)integer(j, "use_lots");
}

static void read_band(json_t *j, keel_band *b) {
  if (json_is_null(j)) {
    b->kind = KEEL_BAND_NONE;
    return;
  }
  assert_int_equal(keel_band_kind_parse(str(j, "kind"), &b->kind), 0);
  b->abs = num(j, "abs");
  b->rel = num(j, "rel");
  assert_int_equal(keel_band_action_parse(str(j, "action"), &b->action), 0);
  b->inner = num(j, "inner");
}

static void read_dca(json_t *j, keel_dca *d) {
  keel_dca_default(d);
  d->amount = num(j, "amount");
  read_schedule(get(j, "schedule"), &d->schedule);
  json_t *s = get(j, "start"), *e = get(j, "end");
  d->start = json_is_null(s) ? KEEL_DATE_NONE : parse_date(json_string_value(s));
  d->end = json_is_null(e) ? KEEL_DATE_NONE : parse_date(json_string_value(e));
  d->step_up = num(j, "step_up");
  assert_int_equal(keel_dca_source_parse(str(j, "source"), &d->source), 0);
  assert_int_equal(keel_dca_dest_parse(str(j, "dest"), &d->dest), 0);
}

static void read_stop(json_t *j, keel_stop_rule *r) {
  keel_stop_rule_default(r);
  assert_int_equal(keel_stop_kind_parse(str(j, "kind"), &r->kind), 0);
  r->level = num(j, "level");
  assert_int_equal(keel_stop_ref_parse(str(j, "ref"), &r->ref), 0);
  r->asset = (long)integer(j, "asset");
  assert_int_equal(keel_stop_action_parse(str(j, "action"), &r->action), 0);
  assert_int_equal(keel_reentry_parse(str(j, "reentry"), &r->reentry), 0);
  r->days = (unsigned)integer(j, "days");
}

/* ---- sorted views of trades, rebalances and events ---------------------- */

typedef struct row {
  keel_date date;
  int code;  /* reason or event kind */
  long asset;/* panel column (-1: none) */
  size_t at; /* index in the source list */
} row;

static int row_cmp(const void *a, const void *b) {
  const row *x = a, *y = b;
  if (x->date != y->date) return x->date < y->date ? -1 : 1;
  if (x->code != y->code) return x->code < y->code ? -1 : 1;
  if (x->asset != y->asset) return x->asset < y->asset ? -1 : 1;
  return x->at < y->at ? -1 : x->at > y->at;
}

/* The value of the account at date d (the keel series), for absolute
 * tolerances; 0 if the date is not a point of the run. */
static double value_on(const keel_backtest_result *r, keel_date d) {
  const keel_date *dates = keel_backtest_dates(r);
  size_t lo = 0, hi = keel_backtest_npoints(r);
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (dates[mid] < d)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < keel_backtest_npoints(r) && dates[lo] == d ? keel_backtest_values(r)[lo] : 0;
}

static void check_trades(const char *cname, const keel_panel *p, const keel_backtest_result *r, json_t *want) {
  size_t n = keel_backtest_ntrades(r), nw = json_array_size(want);
  if (n != nw) bad(cname, "%zu trades, reference %zu", n, nw);
  const keel_trade *tr = keel_backtest_trades(r);
  row *a = calloc(n + 1, sizeof *a), *b = calloc(nw + 1, sizeof *b);
  assert_non_null(a);
  assert_non_null(b);
  for (size_t i = 0; i < n; i++) a[i] = (row){tr[i].date, (int)tr[i].reason, (long)tr[i].asset, i};
  for (size_t i = 0; i < nw; i++) {
    json_t *t = json_array_get(want, i);
    b[i] = (row){parse_date(json_string_value(json_array_get(t, 0))),
                 reason_code(json_string_value(json_array_get(t, 2))),
                 (long)column(p, json_string_value(json_array_get(t, 1))), i};
  }
  qsort(a, n, sizeof *a, row_cmp);
  qsort(b, nw, sizeof *b, row_cmp);
  size_t m = n < nw ? n : nw;
  char what[160], ds[KEEL_DATE_BUFSIZE];
  for (size_t i = 0; i < m; i++) {
    const keel_trade *k = &tr[a[i].at];
    json_t *t = json_array_get(want, b[i].at);
    keel_date_format(b[i].date, ds);
    if (a[i].date != b[i].date || a[i].code != b[i].code || a[i].asset != b[i].asset) {
      char kd[KEEL_DATE_BUFSIZE];
      keel_date_format(k->date, kd);
      bad(cname, "trade %zu: keel %s %s %s, reference %s %s %s", i, kd, keel_panel_symbol(p, k->asset),
          keel_trade_reason_name(k->reason), ds, json_string_value(json_array_get(t, 1)),
          json_string_value(json_array_get(t, 2)));
      continue;
    }
    if (k->sub != 0) bad(cname, "trade %zu on %s: sub-account %u", i, ds, (unsigned)k->sub);
    double atol = ATOL_SCALE * value_on(r, k->date), price = json_number_value(json_array_get(t, 4));
    const char *sym = keel_panel_symbol(p, k->asset), *rn = keel_trade_reason_name(k->reason);
    snprintf(what, sizeof what, "trade %s %s %s shares", ds, sym, rn);
    check_num(cname, what, k->shares, json_array_get(t, 3), price > 0 ? atol / price : atol);
    snprintf(what, sizeof what, "trade %s %s %s price", ds, sym, rn);
    check_num(cname, what, k->price, json_array_get(t, 4), 0);
    snprintf(what, sizeof what, "trade %s %s %s notional", ds, sym, rn);
    check_num(cname, what, k->notional, json_array_get(t, 5), atol);
    snprintf(what, sizeof what, "trade %s %s %s cost", ds, sym, rn);
    check_num(cname, what, k->cost, json_array_get(t, 6), atol);
  }
  free(a);
  free(b);
}

static void check_rebalances(const char *cname, const keel_backtest_result *r, json_t *want, json_t *by_reason) {
  size_t n = keel_backtest_nrebalances(r), nw = json_array_size(want);
  if (n != nw) bad(cname, "%zu rebalances, reference %zu", n, nw);
  const keel_rebalance *rb = keel_backtest_rebalances(r);
  /* per reason */
  for (int c = KEEL_REASON_INITIAL; c <= KEEL_REASON_REENTRY; c++) {
    size_t got = 0;
    for (size_t i = 0; i < n; i++) got += (int)rb[i].reason == c;
    json_t *w = json_object_get(by_reason, keel_trade_reason_name((keel_trade_reason)c));
    size_t ref = w ? (size_t)json_integer_value(w) : 0;
    if (got != ref)
      bad(cname, "%zu rebalances with reason %s, reference %zu", got, keel_trade_reason_name((keel_trade_reason)c),
          ref);
  }
  row *a = calloc(n + 1, sizeof *a), *b = calloc(nw + 1, sizeof *b);
  assert_non_null(a);
  assert_non_null(b);
  for (size_t i = 0; i < n; i++) a[i] = (row){rb[i].date, (int)rb[i].reason, -1, i};
  for (size_t i = 0; i < nw; i++) {
    json_t *t = json_array_get(want, i);
    b[i] = (row){parse_date(json_string_value(json_array_get(t, 0))),
                 reason_code(json_string_value(json_array_get(t, 1))), -1, i};
  }
  qsort(a, n, sizeof *a, row_cmp);
  qsort(b, nw, sizeof *b, row_cmp);
  size_t m = n < nw ? n : nw;
  char what[160], ds[KEEL_DATE_BUFSIZE];
  for (size_t i = 0; i < m; i++) {
    const keel_rebalance *k = &rb[a[i].at];
    json_t *t = json_array_get(want, b[i].at);
    keel_date_format(b[i].date, ds);
    if (a[i].date != b[i].date || a[i].code != b[i].code) {
      char kd[KEEL_DATE_BUFSIZE];
      keel_date_format(k->date, kd);
      bad(cname, "rebalance %zu: keel %s %s, reference %s %s", i, kd, keel_trade_reason_name(k->reason), ds,
          json_string_value(json_array_get(t, 1)));
      continue;
    }
    const char *rn = keel_trade_reason_name(k->reason);
    double atol = ATOL_SCALE * value_on(r, k->date);
    if ((json_int_t)k->ntrades != json_integer_value(json_array_get(t, 7)))
      bad(cname, "rebalance %s %s: %u trades, reference %lld", ds, rn, (unsigned)k->ntrades,
          (long long)json_integer_value(json_array_get(t, 7)));
    /* value_before: the reference's excludes a DCA installment's flow; keel's
     * may include it. Either is accepted, as long as it is one of the two. */
    double vb = json_number_value(json_array_get(t, 2)), flow = json_number_value(json_array_get(t, 3));
    if (!close_to(k->value_before, vb, atol) && !close_to(k->value_before, vb + flow, atol))
      bad(cname, "rebalance %s %s value_before: keel %.17g, reference %.17g (flow %.17g)", ds, rn, k->value_before,
          vb, flow);
    snprintf(what, sizeof what, "rebalance %s %s value_after", ds, rn);
    check_num(cname, what, k->value_after, json_array_get(t, 4), atol);
    snprintf(what, sizeof what, "rebalance %s %s costs", ds, rn);
    check_num(cname, what, k->costs, json_array_get(t, 5), atol);
    snprintf(what, sizeof what, "rebalance %s %s traded", ds, rn);
    check_num(cname, what, k->traded, json_array_get(t, 6), atol);
  }
  free(a);
  free(b);
}

static void check_events(const char *cname, const keel_panel *p, const keel_backtest_result *r, json_t *want) {
  size_t n = keel_backtest_nevents(r), nw = json_array_size(want);
  if (n != nw) bad(cname, "%zu events, reference %zu", n, nw);
  const keel_event *ev = keel_backtest_events(r);
  row *a = calloc(n + 1, sizeof *a), *b = calloc(nw + 1, sizeof *b);
  assert_non_null(a);
  assert_non_null(b);
  for (size_t i = 0; i < n; i++) a[i] = (row){ev[i].date, (int)ev[i].kind, (long)ev[i].asset, i};
  for (size_t i = 0; i < nw; i++) {
    json_t *t = json_array_get(want, i);
    json_t *sym = json_array_get(t, 2);
    b[i] = (row){parse_date(json_string_value(json_array_get(t, 0))),
                 event_code(json_string_value(json_array_get(t, 1))),
                 json_is_null(sym) ? -1 : (long)column(p, json_string_value(sym)), i};
  }
  qsort(a, n, sizeof *a, row_cmp);
  qsort(b, nw, sizeof *b, row_cmp);
  size_t m = n < nw ? n : nw;
  char what[160], ds[KEEL_DATE_BUFSIZE];
  for (size_t i = 0; i < m; i++) {
    const keel_event *k = &ev[a[i].at];
    json_t *t = json_array_get(want, b[i].at);
    keel_date_format(b[i].date, ds);
    const char *kn = keel_event_kind_name(k->kind);
    if (a[i].date != b[i].date || a[i].code != b[i].code || a[i].asset != b[i].asset) {
      char kd[KEEL_DATE_BUFSIZE];
      keel_date_format(k->date, kd);
      bad(cname, "event %zu: keel %s %s %s, reference %s %s %s", i, kd, kn,
          k->asset >= 0 ? keel_panel_symbol(p, (size_t)k->asset) : "-", ds, json_string_value(json_array_get(t, 1)),
          json_is_null(json_array_get(t, 2)) ? "-" : json_string_value(json_array_get(t, 2)));
      continue;
    }
    const char *sym = k->asset >= 0 ? keel_panel_symbol(p, (size_t)k->asset) : "-";
    keel_stop_kind sk;
    assert_int_equal(keel_stop_kind_parse(json_string_value(json_array_get(t, 3)), &sk), 0);
    if (k->sub != 0) bad(cname, "event %s %s %s: sub-account %u", ds, kn, sym, (unsigned)k->sub);
    if (k->stop != sk)
      bad(cname, "event %s %s %s: stop kind %s, reference %s", ds, kn, sym, keel_stop_kind_name(k->stop),
          keel_stop_kind_name(sk));
    /* the trigger's close and threshold, and the fill price; a re-entry's
     * price and level are not pinned down by docs/backtest.md */
    if (k->kind == KEEL_EVENT_STOP || k->kind == KEEL_EVENT_STOP_FILL) {
      snprintf(what, sizeof what, "event %s %s %s price", ds, kn, sym);
      check_num(cname, what, k->price, json_array_get(t, 4), 0);
    }
    if (k->kind == KEEL_EVENT_STOP) {
      snprintf(what, sizeof what, "event %s %s %s level", ds, kn, sym);
      check_num(cname, what, k->level, json_array_get(t, 5), 0);
    }
  }
  free(a);
  free(b);
}

static void check_metrics(const char *cname, const char *who, const keel_metrics *m, json_t *want) {
  char what[160];
  for (size_t k = 0; k < KEEL_METRICS_COUNT; k++) {
    const char *mn = keel_metrics_name(k);
    snprintf(what, sizeof what, "%s metric %s", who, mn);
    json_t *x = json_object_get(want, mn);
    if (!x) {
      bad(cname, "%s: missing in the fixture", what);
      continue;
    }
    if (strcmp(mn, "dd_peak") == 0)
      check_date(cname, what, m->dd_peak, x);
    else if (strcmp(mn, "dd_trough") == 0)
      check_date(cname, what, m->dd_trough, x);
    else if (strcmp(mn, "dd_recovery") == 0)
      check_date(cname, what, m->dd_recovery, x);
    else
      check_num(cname, what, keel_metrics_value(m, k), x, 0);
  }
}

/* The samples [[i, value], ...] of a series, with an absolute tolerance of
 * ATOL_SCALE times the account value at that point (cash is near zero). */
static void check_series(const char *cname, const char *name, const double *got, const double *values, size_t n,
                         json_t *want) {
  size_t i;
  json_t *e;
  char what[160];
  json_array_foreach(want, i, e) {
    size_t t = (size_t)json_integer_value(json_array_get(e, 0));
    if (t >= n) {
      bad(cname, "%s[%zu] beyond the %zu points", name, t, n);
      continue;
    }
    snprintf(what, sizeof what, "%s[%zu]", name, t);
    check_num(cname, what, got[t], json_array_get(e, 1), ATOL_SCALE * values[t]);
  }
}

/* ---- one case -------------------------------------------------------------- */

static json_t *load_fixture(void) {
  json_error_t je;
  json_t *ref = json_load_file(keel_test_source_path(FIXTURE), 0, &je);
  if (!ref) fail_msg("%s: %s at line %d", FIXTURE, je.text, je.line);
  return ref;
}

static json_t *find_case(json_t *ref, const char *name) {
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(ref, "cases"), i, c) {
    if (strcmp(str(c, "name"), name) == 0) return c;
  }
  fail_msg("%s has no case %s", FIXTURE, name);
  return NULL;
}

static void test_case(void **state) {
  const char *cname = *state;
  json_t *ref = load_fixture();
  json_t *c = find_case(ref, cname);
  const char *path = keel_test_shared_data(str(c, "data"));
  if (!path) {
    json_decref(ref);
    skip();
  }
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &p));
  nbad = 0;

  /* the sub-account */
  json_t *jassets = get(c, "assets"), *jw = get(c, "weights");
  size_t na = json_array_size(jassets);
  assert_int_equal(json_array_size(jw), na);
  size_t *assets = calloc(na, sizeof *assets);
  double *w = calloc(na, sizeof *w);
  assert_non_null(assets);
  assert_non_null(w);
  for (size_t j = 0; j < na; j++) {
    assets[j] = column(p, json_string_value(json_array_get(jassets, j)));
    w[j] = json_number_value(json_array_get(jw, j));
  }
  json_t *jdca = get(c, "dca"), *jstops = get(c, "stops");
  size_t ndca = json_array_size(jdca), nstops = json_array_size(jstops);
  keel_dca *dca = calloc(ndca + 1, sizeof *dca);
  keel_stop_rule *stops = calloc(nstops + 1, sizeof *stops);
  assert_non_null(dca);
  assert_non_null(stops);
  for (size_t k = 0; k < ndca; k++) read_dca(json_array_get(jdca, k), &dca[k]);
  for (size_t k = 0; k < nstops; k++) read_stop(json_array_get(jstops, k), &stops[k]);

  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.nassets = na;
  sub.assets = assets;
  sub.weights = w;
  sub.strategy = NULL;
  sub.capital = num(c, "capital");
  read_schedule(get(c, "schedule"), &sub.schedule);
  sub.rebalance_on_schedule = (int)integer(c, "rebalance_on_schedule");
  read_band(get(c, "band"), &sub.band);
  read_schedule(get(c, "band_check"), &sub.band_check);
  read_costs(get(c, "costs"), &sub.costs);
  sub.skip_gamma = 0;
  sub.dca = ndca ? dca : NULL;
  sub.ndca = ndca;
  sub.stops = nstops ? stops : NULL;
  sub.nstops = nstops;

  keel_account_spec acc;
  keel_account_spec_default(&acc);
  acc.nsubs = 1;
  acc.subs = &sub;
  acc.opens = NULL;
  acc.fill = KEEL_FILL_CLOSE;
  acc.benchmark = -1;
  acc.periods_per_year = num(c, "periods_per_year");
  acc.risk_free = num(c, "risk_free");
  acc.start = (size_t)integer(c, "start");
  acc.end = (size_t)integer(c, "end");

  keel_backtest_result *r = NULL;
  assert_ok(CTX, keel_backtest_run_account(CTX, p, &acc, &r));
  assert_non_null(r);

  /* the points */
  size_t n = keel_backtest_npoints(r);
  if ((long long)n != integer(c, "npoints")) fail_msg("%s: %zu points, reference %lld", cname, n, integer(c, "npoints"));
  const keel_date *dates = keel_backtest_dates(r);
  check_date(cname, "first date", dates[0], get(c, "first_date"));
  check_date(cname, "last date", dates[n - 1], get(c, "last_date"));
  assert_int_equal(keel_backtest_nsubs(r), 1);
  assert_int_equal(keel_backtest_sub_nassets(r, 0), na);
  for (size_t j = 0; j < na; j++) assert_int_equal(keel_backtest_sub_assets(r, 0)[j], assets[j]);

  const double *values = keel_backtest_values(r);
  check_num(cname, "final value", values[n - 1], get(c, "final_value"), 0);
  check_num(cname, "sub-account final value", keel_backtest_sub_values(r, 0)[n - 1], get(c, "final_value"), 0);
  check_num(cname, "capital", keel_backtest_capital(r), get(c, "capital"), 0);
  if ((long long)keel_backtest_ntrades(r) != integer(c, "ntrades"))
    bad(cname, "%zu trades, reference %lld", keel_backtest_ntrades(r), integer(c, "ntrades"));
  if ((long long)keel_backtest_nrebalances(r) != integer(c, "rebalances"))
    bad(cname, "%zu rebalances, reference %lld", keel_backtest_nrebalances(r), integer(c, "rebalances"));
  if ((long long)keel_backtest_nevents(r) != integer(c, "nevents"))
    bad(cname, "%zu events, reference %lld", keel_backtest_nevents(r), integer(c, "nevents"));

  /* external flows */
  double flows = 0, sflows = 0;
  for (size_t t = 0; t < n; t++) {
    flows += keel_backtest_flows(r)[t];
    sflows += keel_backtest_sub_flows(r, 0)[t];
  }
  check_num(cname, "flows total", flows, get(c, "flows_total"), 1e-9);
  check_num(cname, "sub-account flows total", sflows, get(c, "flows_total"), 1e-9);

  check_metrics(cname, "account", keel_backtest_metrics(r), get(c, "metrics"));
  check_metrics(cname, "sub-account", keel_backtest_sub_metrics(r, 0), get(c, "metrics"));
  check_rebalances(cname, r, get(c, "rebalance_list"), get(c, "rebalances_by_reason"));
  check_trades(cname, p, r, get(c, "trades"));
  check_events(cname, p, r, get(c, "events"));
  check_series(cname, "value", values, values, n, get(c, "values"));
  check_series(cname, "sub-account value", keel_backtest_sub_values(r, 0), values, n, get(c, "values"));
  check_series(cname, "cash", keel_backtest_cash(r), values, n, get(c, "cash"));
  check_series(cname, "sub-account cash", keel_backtest_sub_cash(r, 0), values, n, get(c, "cash"));

  int failures = nbad;
  keel_backtest_result_free(r);
  free(stops);
  free(dca);
  free(w);
  free(assets);
  keel_panel_free(p);
  json_decref(ref);
  if (failures) fail_msg("%s: %d mismatches with the NumPy reference", cname, failures);
}

/* Every case of the fixture has a test below, and the reverse. */
static char CASES[][32] = {"sixty_forty_monthly", "band_5_25_target", "band_5_25_edge",
                           "dca_stepup",          "dca_underweight",  "trailing_stop"};

static void test_fixture_cases(void **state) {
  (void)state;
  json_t *ref = load_fixture();
  json_t *cases = json_object_get(ref, "cases");
  size_t ncases = sizeof CASES / sizeof CASES[0];
  assert_int_equal(json_array_size(cases), ncases);
  for (size_t i = 0; i < ncases; i++) assert_non_null(find_case(ref, CASES[i]));
  json_decref(ref);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixture_cases),
      cmocka_unit_test_prestate(test_case, CASES[0]),
      cmocka_unit_test_prestate(test_case, CASES[1]),
      cmocka_unit_test_prestate(test_case, CASES[2]),
      cmocka_unit_test_prestate(test_case, CASES[3]),
      cmocka_unit_test_prestate(test_case, CASES[4]),
      cmocka_unit_test_prestate(test_case, CASES[5]),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
