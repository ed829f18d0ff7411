/* Engine half of bench/bench_backtest.py: builds a seeded price panel
 * (weekdays from 2000-01-03, no missing prices) and runs fixed-weight
 * backtests with monthly rebalancing to target plus a daily 5/25 band
 * check (combined band abs 0.05, rel 0.25, back to target), 10 bp buy
 * and sell costs, no fee, no lots, holdings not recorded. Prints one JSON
 * line.
 *
 * The panel and the weights come from the LCG the test fixtures use
 * (state = 1664525 state + 1013904223 mod 2^32, u = state / 2^32 - 0.5),
 * drawn row by row, asset by asset:
 *   row 0:  p = 100 (1 + u)
 *   row t:  p = p_prev (1 + 0.0002 + s_j u), s_j = 0.02 + 0.04 j / (n - 1)
 * Weights: equal (seed 0), or w_j = 1 + u from the LCG seeded with the
 * run's seed, divided by their sum (summed in order). The script
 * reproduces all of it bit for bit.
 *
 * Usage:
 *   bench_backtest single NASSETS NDAYS REPEATS
 *     one backtest with equal weights, best of REPEATS timed around
 *     keel_backtest_run_account only
 *   bench_backtest batch NASSETS NDAYS NRUNS THREADS REPEATS
 *     NRUNS backtests (run r: weights seeded with 1000 + r) over one
 *     shared const panel on THREADS threads, each with its own keel_ctx;
 *     best of REPEATS wall times, final values of every run */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/keel.h"

#define PANEL_SEED 20260601u
#define BATCH_SEED0 1000u

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double lcg(uint32_t *state) {
  *state = 1664525u * *state + 1013904223u;
  return (double)*state / 4294967296.0 - 0.5;
}

static keel_panel *make_panel(keel_ctx *ctx, size_t na, size_t nd) {
  keel_date *dates = malloc(nd * sizeof *dates);
  double *px = malloc(nd * na * sizeof *px), *s = malloc(na * sizeof *s);
  char **sym = malloc(na * sizeof *sym);
  if (!dates || !px || !s || !sym) return NULL;
  keel_date d;
  keel_date_from_ymd(2000, 1, 3, &d); /* a Monday */
  for (size_t i = 0; i < nd; i++) {
    while (keel_date_weekday(d) >= 5) d++;
    dates[i] = d++;
  }
  for (size_t j = 0; j < na; j++) {
    s[j] = na > 1 ? 0.02 + 0.04 * (double)j / (double)(na - 1) : 0.02;
    sym[j] = malloc(24);
    if (!sym[j]) return NULL;
    snprintf(sym[j], 24, "A%zu", j);
  }
  uint32_t st = PANEL_SEED;
  for (size_t i = 0; i < nd; i++)
    for (size_t j = 0; j < na; j++) {
      double u = lcg(&st);
      px[i * na + j] = i == 0 ? 100 * (1 + u) : px[(i - 1) * na + j] * (1 + 0.0002 + s[j] * u);
    }
  keel_panel *p = NULL;
  if (keel_panel_new(ctx, nd, na, dates, (const char *const *)sym, px, &p)) {
    fprintf(stderr, "bench_backtest: %s\n", keel_errmsg(ctx));
    p = NULL;
  }
  for (size_t j = 0; j < na; j++) free(sym[j]);
  free(sym), free(s), free(px), free(dates);
  return p;
}

static void make_weights(uint32_t seed, size_t na, double *w) {
  if (seed == 0) {
    for (size_t j = 0; j < na; j++) w[j] = 1.0 / (double)na;
    return;
  }
  uint32_t st = seed;
  double sum = 0;
  for (size_t j = 0; j < na; j++) {
    w[j] = 1 + lcg(&st);
    sum += w[j];
  }
  for (size_t j = 0; j < na; j++) w[j] /= sum;
}

static void make_spec(keel_subaccount_spec *sub, keel_account_spec *acc, const double *w) {
  keel_subaccount_spec_default(sub);
  sub->weights = w;
  sub->capital = 100000;
  sub->schedule.calendar = KEEL_CAL_MONTHLY;
  sub->rebalance_on_schedule = 1;
  sub->band.kind = KEEL_BAND_COMBINED;
  sub->band.abs = 0.05;
  sub->band.rel = 0.25;
  sub->band.action = KEEL_BAND_TO_TARGET;
  sub->band_check.calendar = KEEL_CAL_DAILY;
  sub->costs.buy_bps = sub->costs.sell_bps = 10;
  sub->costs.fee = 0;
  sub->costs.use_lots = 0;
  keel_account_spec_default(acc);
  acc->nsubs = 1;
  acc->subs = sub;
  acc->record_holdings = 0;
}

static void final_of(const keel_backtest_result *r, double *value, size_t *nreb, size_t *nband) {
  *value = keel_backtest_values(r)[keel_backtest_npoints(r) - 1];
  *nreb = keel_backtest_nrebalances(r);
  const keel_rebalance *rb = keel_backtest_rebalances(r);
  *nband = 0;
  for (size_t i = 0; i < *nreb; i++) *nband += rb[i].reason == KEEL_REASON_BAND;
}

static double last_row_sum(const keel_panel *p) {
  size_t na = keel_panel_nassets(p), nd = keel_panel_ndates(p);
  const double *row = keel_panel_prices(p) + (nd - 1) * na;
  double s = 0;
  for (size_t j = 0; j < na; j++) s += row[j];
  return s;
}

static int run_single(size_t na, size_t nd, int reps) {
  keel_ctx *ctx = NULL;
  if (keel_ctx_new(NULL, &ctx)) return 1;
  keel_panel *p = make_panel(ctx, na, nd);
  double *w = malloc(na * sizeof *w);
  if (!p || !w) return 1;
  make_weights(0, na, w);
  keel_subaccount_spec sub;
  keel_account_spec acc;
  make_spec(&sub, &acc, w);
  double best = INFINITY, value = 0;
  size_t nreb = 0, nband = 0, ntrades = 0;
  for (int rep = 0; rep < reps; rep++) {
    keel_backtest_result *r = NULL;
    double t0 = now();
    keel_status st = keel_backtest_run_account(ctx, p, &acc, &r);
    double dt = now() - t0;
    if (st) {
      fprintf(stderr, "bench_backtest: %s\n", keel_errmsg(ctx));
      return 1;
    }
    best = fmin(best, dt);
    final_of(r, &value, &nreb, &nband);
    ntrades = keel_backtest_ntrades(r);
    keel_backtest_result_free(r);
  }
  printf("{\"nassets\": %zu, \"ndays\": %zu, \"seconds\": %.9g, \"final\": %.17g, \"rebalances\": %zu, "
         "\"band\": %zu, \"trades\": %zu, \"last_row_sum\": %.17g}\n",
         na, nd, best, value, nreb, nband, ntrades, last_row_sum(p));
  free(w);
  keel_panel_free(p);
  keel_ctx_free(ctx);
  return 0;
}

typedef struct batch_job {
  const keel_panel *panel;
  size_t na, first, last; /* runs [first, last) */
  double *final;
  size_t *nreb;
  int failed;
} batch_job;

static void *batch_thread(void *arg) {
  batch_job *J = arg;
  keel_ctx *ctx = NULL;
  double *w = malloc(J->na * sizeof *w);
  if (!w || keel_ctx_new(NULL, &ctx)) {
    J->failed = 1;
    free(w);
    return NULL;
  }
  keel_subaccount_spec sub;
  keel_account_spec acc;
  make_spec(&sub, &acc, w);
  for (size_t r = J->first; r < J->last; r++) {
    make_weights(BATCH_SEED0 + (uint32_t)r, J->na, w);
    keel_backtest_result *res = NULL;
    if (keel_backtest_run_account(ctx, J->panel, &acc, &res)) {
      fprintf(stderr, "bench_backtest: run %zu: %s\n", r, keel_errmsg(ctx));
      J->failed = 1;
      break;
    }
    size_t nband;
    final_of(res, &J->final[r], &J->nreb[r], &nband);
    keel_backtest_result_free(res);
  }
  keel_ctx_free(ctx);
  free(w);
  return NULL;
}

static int run_batch(size_t na, size_t nd, size_t nruns, size_t nthreads, int reps) {
  keel_ctx *ctx = NULL;
  if (keel_ctx_new(NULL, &ctx)) return 1;
  const keel_panel *p = make_panel(ctx, na, nd);
  double *final = calloc(nruns, sizeof *final);
  size_t *nreb = calloc(nruns, sizeof *nreb);
  pthread_t *th = calloc(nthreads, sizeof *th);
  batch_job *jobs = calloc(nthreads, sizeof *jobs);
  if (!p || !final || !nreb || !th || !jobs || nthreads < 1) return 1;
  double best = INFINITY;
  for (int rep = 0; rep < reps; rep++) {
    double t0 = now();
    for (size_t k = 0; k < nthreads; k++) {
      jobs[k] = (batch_job){.panel = p, .na = na, .first = nruns * k / nthreads,
                            .last = nruns * (k + 1) / nthreads, .final = final, .nreb = nreb};
      if (pthread_create(&th[k], NULL, batch_thread, &jobs[k])) return 1;
    }
    int failed = 0;
    for (size_t k = 0; k < nthreads; k++) {
      pthread_join(th[k], NULL);
      failed |= jobs[k].failed;
    }
    if (failed) return 1;
    best = fmin(best, now() - t0);
  }
  printf("{\"nassets\": %zu, \"ndays\": %zu, \"runs\": %zu, \"threads\": %zu, \"seconds\": %.9g, "
         "\"last_row_sum\": %.17g, \"final\": [",
         na, nd, nruns, nthreads, best, last_row_sum(p));
  for (size_t r = 0; r < nruns; r++) printf("%s%.17g", r ? ", " : "", final[r]);
  printf("], \"rebalances\": [");
  for (size_t r = 0; r < nruns; r++) printf("%s%zu", r ? ", " : "", nreb[r]);
  printf("]}\n");
  keel_panel_free((keel_panel *)p);
  keel_ctx_free(ctx);
  free(final), free(nreb), free(th), free(jobs);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "single") == 0)
    return run_single((size_t)atol(argv[2]), (size_t)atol(argv[3]), atoi(argv[4]));
  if (argc == 7 && strcmp(argv[1], "batch") == 0)
    return run_batch((size_t)atol(argv[2]), (size_t)atol(argv[3]), (size_t)atol(argv[4]), (size_t)atol(argv[5]),
                     atoi(argv[6]));
  fprintf(stderr,
          "usage: bench_backtest single NASSETS NDAYS REPEATS\n"
          "       bench_backtest batch NASSETS NDAYS NRUNS THREADS REPEATS\n");
  return 2;
}
