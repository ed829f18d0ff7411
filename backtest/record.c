/* keel — a backtest result as a keel_run_record (keel/record.h). */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "keel/qp.h"
#include "keel/record.h"

typedef struct rec_owner {
  keeli_heap heap;
  const char **names; /* KEEL_METRICS_COUNT, static strings */
  double *mvals;      /* KEEL_METRICS_COUNT * (1 + nsubs) */
  const char **syms;  /* panel symbols, borrowed */
  keel_run_sub *subs;
  keel_run_event *events;
  keel_run_opt_call *opt;
  keel_run_weight *weights;
  double *bench;
  char hash[KEEL_PANEL_HASH_BUFSIZE];
} rec_owner;

void keel_backtest_record_free(keel_run_record *rec) {
  if (!rec) return;
  rec_owner *o = rec->owner;
  if (o) {
    keeli_heap h = o->heap;
    keeli_heap_free(&h, o->names);
    keeli_heap_free(&h, o->mvals);
    keeli_heap_free(&h, o->syms);
    keeli_heap_free(&h, o->subs);
    keeli_heap_free(&h, o->events);
    keeli_heap_free(&h, o->opt);
    keeli_heap_free(&h, o->weights);
    keeli_heap_free(&h, o->bench);
    keeli_heap_free(&h, o);
  }
  memset(rec, 0, sizeof *rec);
}

static void metric_values(const keel_metrics *m, double *out) {
  for (size_t k = 0; k < KEEL_METRICS_COUNT; k++) out[k] = keel_metrics_value(m, k);
}

/* The panel row of the run's first point. */
static int first_row(const keel_panel *panel, keel_date d0, size_t *row) {
  const keel_date *pd = keel_panel_dates(panel);
  const size_t lo = keeli_date_lower_bound(pd, keel_panel_ndates(panel), d0);
  if (lo == keel_panel_ndates(panel) || pd[lo] != d0) return -1;
  *row = lo;
  return 0;
}

/* The sub-accounts' weights at up to KEEL_RECORD_WEIGHT_POINTS points:
 * shares from the initial holdings plus the trades up to each point,
 * valued at the point's close (the last price over a gap). */
static keel_status fill_weights(keel_ctx *ctx, rec_owner *o, const keel_backtest_result *r, const keel_panel *panel,
                                const keel_account_spec *spec, size_t row0, size_t *nout) {
  const size_t n = keel_backtest_npoints(r), ns = keel_backtest_nsubs(r), na = keel_panel_nassets(panel);
  const keel_date *dates = keel_backtest_dates(r);
  const size_t stride = n <= KEEL_RECORD_WEIGHT_POINTS ? 1 : (n - 1 + KEEL_RECORD_WEIGHT_POINTS - 2) / (KEEL_RECORD_WEIGHT_POINTS - 1);
  size_t npts = (n - 1) / stride + 1 + ((n - 1) % stride != 0), cap = 0;
  for (size_t s = 0; s < ns; s++) cap += keel_backtest_sub_nassets(r, s);
  double *sh = keeli_calloc(ctx, ns * na > 0 ? ns * na : 1, sizeof *sh), *last = keeli_alloc_array(ctx, na ? na : 1, sizeof *last);
  o->weights = keeli_alloc_array(ctx, cap * npts > 0 ? cap * npts : 1, sizeof *o->weights);
  if (!sh || !last || !o->weights) {
    keeli_free(ctx, sh);
    keeli_free(ctx, last);
    return KEEL_ENOMEM;
  }
  for (size_t j = 0; j < na; j++) last[j] = NAN;
  for (size_t i = 0; i < row0; i++)
    for (size_t j = 0; j < na; j++) {
      double p = keel_panel_price(panel, i, j);
      if (!isnan(p)) last[j] = p;
    }
  for (size_t s = 0; spec && s < ns; s++) {
    const double *q = spec->subs[s].initial_shares;
    const size_t *cols = keel_backtest_sub_assets(r, s);
    for (size_t k = 0; q && k < keel_backtest_sub_nassets(r, s); k++) sh[s * na + cols[k]] += q[k];
  }
  const keel_trade *tr = keel_backtest_trades(r);
  const size_t nt = keel_backtest_ntrades(r);
  size_t t = 0, m = 0;
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < na; j++) {
      double p = keel_panel_price(panel, row0 + i, j);
      if (!isnan(p)) last[j] = p;
    }
    for (; t < nt && tr[t].date <= dates[i]; t++)
      if (tr[t].sub < ns && tr[t].asset < na) sh[tr[t].sub * na + tr[t].asset] += tr[t].shares;
    if (i % stride != 0 && i != n - 1) continue;
    for (size_t s = 0; s < ns; s++) {
      const double v = keel_backtest_sub_values(r, s)[i];
      const size_t *cols = keel_backtest_sub_assets(r, s);
      if (!(v > 0)) continue;
      for (size_t k = 0; k < keel_backtest_sub_nassets(r, s); k++) {
        const size_t j = cols[k];
        double w = sh[s * na + j] * last[j] / v;
        if (!isfinite(w) || fabs(w) < 1e-12) continue;
        o->weights[m++] = (keel_run_weight){.date = dates[i], .sub = (uint32_t)s, .symbol = keel_panel_symbol(panel, j),
                                            .weight = w};
      }
    }
  }
  keeli_free(ctx, sh);
  keeli_free(ctx, last);
  *nout = m;
  return KEEL_OK;
}

/* The benchmark's closes (the last over a gap) scaled to start at base. */
static keel_status fill_benchmark(keel_ctx *ctx, rec_owner *o, const keel_backtest_result *r, const keel_panel *panel,
                                  size_t col, size_t row0, double base) {
  const size_t n = keel_backtest_npoints(r);
  if (!(o->bench = keeli_alloc_array(ctx, n, sizeof *o->bench))) return KEEL_ENOMEM;
  double p0 = NAN, last = NAN;
  for (size_t i = 0; i < n; i++) {
    double p = keel_panel_price(panel, row0 + i, col);
    if (!isnan(p)) last = p;
    if (isnan(p0) && last > 0) p0 = last;
    o->bench[i] = p0 > 0 ? base * last / p0 : NAN;
  }
  return KEEL_OK;
}

keel_status keel_backtest_record_fill(keel_ctx *ctx, const keel_backtest_result *r, const keel_panel *panel,
                                      const keel_record_meta *meta, keel_run_record *rec) {
  if (!rec) return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_record_fill: rec is NULL");
  memset(rec, 0, sizeof *rec);
  if (!r || !panel || !meta || !meta->dataset)
    return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_record_fill: result, panel and dataset name are required");
  const size_t n = keel_backtest_npoints(r), ns = keel_backtest_nsubs(r), na = keel_panel_nassets(panel);
  const size_t nev = keel_backtest_nevents(r), nopt = keel_backtest_nopt_calls(r);
  if (n == 0) return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_record_fill: the result has no points");
  if (meta->spec && meta->spec->nsubs != ns)
    return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_record_fill: the spec has %zu sub-accounts, the result %zu",
                       meta->spec->nsubs, ns);
  if (!meta->spec && ns != 1)
    return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_record_fill: %zu sub-accounts need the spec for their capital",
                       ns);
  rec_owner *o = keeli_calloc(ctx, 1, sizeof *o);
  if (!o) return KEEL_ENOMEM;
  o->heap = *keeli_ctx_heap(ctx);
  rec->owner = o;
  o->names = keeli_alloc_array(ctx, KEEL_METRICS_COUNT, sizeof *o->names);
  o->mvals = keeli_alloc_array(ctx, KEEL_METRICS_COUNT * (1 + ns), sizeof *o->mvals);
  o->syms = keeli_alloc_array(ctx, na ? na : 1, sizeof *o->syms);
  o->subs = keeli_calloc(ctx, ns ? ns : 1, sizeof *o->subs);
  o->events = keeli_calloc(ctx, nev ? nev : 1, sizeof *o->events);
  o->opt = keeli_calloc(ctx, nopt ? nopt : 1, sizeof *o->opt);
  if (!o->names || !o->mvals || !o->syms || !o->subs || !o->events || !o->opt) {
    keel_backtest_record_free(rec);
    return KEEL_ENOMEM;
  }
  for (size_t k = 0; k < KEEL_METRICS_COUNT; k++) o->names[k] = keel_metrics_name(k);
  for (size_t j = 0; j < na; j++) o->syms[j] = keel_panel_symbol(panel, j);
  keel_panel_hash(panel, o->hash);
  metric_values(keel_backtest_metrics(r), o->mvals);
  for (size_t s = 0; s < ns; s++) {
    double *mv = o->mvals + KEEL_METRICS_COUNT * (1 + s);
    metric_values(keel_backtest_sub_metrics(r, s), mv);
    o->subs[s] = (keel_run_sub){.name = keel_backtest_sub_name(r, s),
                                .capital = meta->spec ? meta->spec->subs[s].capital : keel_backtest_capital(r),
                                .nmetrics = KEEL_METRICS_COUNT,
                                .metric_names = o->names,
                                .metric_values = mv,
                                .values = keel_backtest_sub_values(r, s),
                                .cash = keel_backtest_sub_cash(r, s),
                                .flows = keel_backtest_sub_flows(r, s)};
  }
  const keel_event *ev = keel_backtest_events(r);
  for (size_t e = 0; e < nev; e++)
    o->events[e] = (keel_run_event){.date = ev[e].date,
                                    .sub = ev[e].sub,
                                    .symbol = ev[e].asset >= 0 && (size_t)ev[e].asset < na
                                                  ? keel_panel_symbol(panel, (size_t)ev[e].asset)
                                                  : NULL,
                                    .kind = keel_event_kind_name(ev[e].kind),
                                    .stop = keel_stop_kind_name(ev[e].stop),
                                    .price = ev[e].price,
                                    .level = ev[e].level};
  const keel_opt_call *oc = keel_backtest_opt_calls(r);
  for (size_t c = 0; c < nopt; c++)
    o->opt[c] = (keel_run_opt_call){.date = oc[c].date,
                                    .sub = oc[c].sub,
                                    .status = keel_qp_status_name(oc[c].rec.status),
                                    .iterations = oc[c].rec.iterations,
                                    .solves = oc[c].rec.solves,
                                    .polished = oc[c].rec.polished,
                                    .res_prim = oc[c].rec.res_prim,
                                    .res_dual = oc[c].rec.res_dual,
                                    .ret = oc[c].rec.objective_ret,
                                    .vol = oc[c].rec.objective_vol};
  const keel_date *dates = keel_backtest_dates(r);
  size_t row0 = 0, nw = 0;
  if (first_row(panel, dates[0], &row0)) {
    keel_backtest_record_free(rec);
    return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_record_fill: the result's first date is not in the panel");
  }
  long bcol = meta->spec ? meta->spec->benchmark : -1;
  if (meta->benchmark) {
    size_t j;
    if (!keel_panel_find(panel, meta->benchmark, &j)) {
      keel_backtest_record_free(rec);
      return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_record_fill: no benchmark '%s' in the prices", meta->benchmark);
    }
    bcol = (long)j;
  }
  const double base = keel_backtest_capital(r) > 0 ? keel_backtest_capital(r) : keel_backtest_values(r)[0];
  keel_status st = fill_weights(ctx, o, r, panel, meta->spec, row0, &nw);
  if (!st && bcol >= 0 && (size_t)bcol < na) st = fill_benchmark(ctx, o, r, panel, (size_t)bcol, row0, base);
  if (st) {
    keel_backtest_record_free(rec);
    return st;
  }
  rec->benchmark_symbol = o->bench ? keel_panel_symbol(panel, (size_t)bcol) : NULL;
  rec->benchmark = o->bench;
  rec->nweights = nw;
  rec->weights = o->weights;
  rec->kind = "backtest";
  rec->strategy = meta->strategy ? meta->strategy : "fixed_weights";
  rec->params_json = meta->params_json ? meta->params_json : "{}";
  rec->dataset = meta->dataset;
  rec->dataset_hash = o->hash;
  rec->status = "ok";
  rec->seed = keel_backtest_seed(r);
  rec->start = dates[0];
  rec->end = dates[n - 1];
  rec->nmetrics = KEEL_METRICS_COUNT;
  rec->metric_names = o->names;
  rec->metric_values = o->mvals;
  rec->npoints = n;
  rec->dates = dates;
  rec->values = keel_backtest_values(r);
  rec->cash = keel_backtest_cash(r);
  rec->flows = keel_backtest_flows(r);
  rec->ntrades = keel_backtest_ntrades(r);
  rec->trades = keel_backtest_trades(r);
  rec->asset_symbols = o->syms;
  rec->nassets = na;
  rec->job_hash = meta->job_hash;
  rec->nsubs = ns;
  rec->subs = o->subs;
  rec->nevents = nev;
  rec->events = nev ? o->events : NULL;
  rec->nopt_calls = nopt;
  rec->opt_calls = nopt ? o->opt : NULL;
  return KEEL_OK;
}
