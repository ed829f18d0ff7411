/* Stress-runner benchmark driver: N paths x S monthly steps x A assets of
 * a multivariate normal (annual log means 0.03 + 0.01 i, volatilities
 * 0.10 + 0.02 i, all correlations 0.3), an equally weighted basket with an
 * absolute 5-point threshold band checked every step, 10 bp costs on both
 * sides. Times keel_stress_run (generation, the engine on every path and
 * the statistics) best of R runs on 1 and 2 threads and prints one line per
 * thread count plus the distribution for the script to compare:
 *   threads T seconds S median M p05 A p95 B mdd50 D
 * Usage: bench_stress [PATHS] [STEPS] [ASSETS] [REPEATS] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "keel/keel.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  size_t N = argc > 1 ? (size_t)atol(argv[1]) : 10000, S = argc > 2 ? (size_t)atol(argv[2]) : 360;
  size_t A = argc > 3 ? (size_t)atol(argv[3]) : 10;
  int R = argc > 4 ? atoi(argv[4]) : 5;
  keel_ctx *ctx = NULL;
  if (keel_ctx_new(NULL, &ctx)) return 1;
  double *mu = malloc(A * sizeof *mu), *cov = malloc(A * A * sizeof *cov), *w = malloc(A * sizeof *w);
  char **sym = malloc(A * sizeof *sym);
  for (size_t i = 0; i < A; i++) {
    mu[i] = 0.03 + 0.01 * (double)i;
    w[i] = 1.0 / (double)A;
    sym[i] = malloc(24);
    snprintf(sym[i], 24, "A%zu", i);
  }
  for (size_t i = 0; i < A; i++)
    for (size_t j = 0; j < A; j++) {
      double si = 0.10 + 0.02 * (double)i, sj = 0.10 + 0.02 * (double)j;
      cov[i * A + j] = (i == j ? 1 : 0.3) * si * sj;
    }
  keel_mc_params p;
  keel_mc_params_default(&p);
  p.kind = KEEL_MC_NORMAL;
  p.freq = KEEL_MC_MONTHLY;
  p.years = (double)S / 12;
  p.nassets = A;
  p.mu = mu;
  p.cov = cov;
  keel_mc *g = NULL;
  if (keel_mc_new(ctx, &p, &g)) {
    fprintf(stderr, "%s\n", keel_errmsg(ctx));
    return 1;
  }
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.weights = w;
  sub.capital = 100000;
  sub.schedule.calendar = KEEL_CAL_NEVER;
  sub.band.kind = KEEL_BAND_ABSOLUTE;
  sub.band.abs = 0.05;
  sub.costs.buy_bps = sub.costs.sell_bps = 10;
  sub.costs.use_lots = 0;
  keel_account_spec acct;
  keel_account_spec_default(&acct);
  acct.nsubs = 1;
  acct.subs = &sub;
  for (int threads = 1; threads <= 2; threads++) {
    double best = INFINITY;
    keel_stress_result *keep = NULL;
    for (int k = 0; k < R; k++) {
      keel_stress_options o;
      keel_stress_options_default(&o);
      o.gen = g;
      o.account = &acct;
      o.symbols = (const char *const *)sym;
      o.npaths = N;
      o.seed = 1;
      o.threads = threads;
      keel_stress_result *r = NULL;
      double t0 = now();
      if (keel_stress_run(ctx, &o, &r)) {
        fprintf(stderr, "%s\n", keel_errmsg(ctx));
        return 1;
      }
      double t = now() - t0;
      if (t < best) best = t;
      keel_stress_result_free(keep);
      keep = r;
    }
    printf("threads %d seconds %.6f median %.6f p05 %.6f p95 %.6f mdd50 %.6f\n", threads, best,
           keel_stress_quantile(keep, KEEL_STRESS_WEALTH, 0.5), keel_stress_quantile(keep, KEEL_STRESS_WEALTH, 0.05),
           keel_stress_quantile(keep, KEEL_STRESS_WEALTH, 0.95), keel_stress_quantile(keep, KEEL_STRESS_MAX_DRAWDOWN, 0.5));
    fflush(stdout);
    keel_stress_result_free(keep);
  }
  keel_mc_free(g);
  for (size_t i = 0; i < A; i++) free(sym[i]);
  free(sym);
  free(mu);
  free(cov);
  free(w);
  keel_ctx_free(ctx);
  return 0;
}
