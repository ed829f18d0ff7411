/* Advice half of bench/bench_advice.py: the standard template
 * (strategies/templates/standard.lua, six assets) for a stream of
 * profiles, each from its own holdings, with 10 bp costs and a fee of 1
 * per trade (fractional shares, no minimum, so the peer can solve the
 * same cost equation exactly). Profile i of the stream:
 *   age 25 + i % 40, risk score 1 + i % 10, horizon 1 + i % 30 years,
 *   goal general / travel / education / retirement by i % 4,
 *   initial 1000 (i % 50), monthly 100 (i % 7), liquidity 500 (i % 11),
 *   holdings: EQUITY 10 (i % 13) shares, BOND 5 (i % 17), cash 100 (i % 5) + 100.
 * Prints one JSON line: calls per second on 1 and on THREADS threads (each
 * thread its own keel_ctx, all on one template), and the advice of the
 * first NCHECK profiles (total, cost, cash after, number of trades) so the
 * script can check its peer computed the same.
 *
 * Usage: bench_advice TEMPLATE NCALLS THREADS REPEATS NCHECK */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/advice.h"
#include "keel/keel.h"

static const char *const SYM[6] = {"CASH", "BOND", "EQUITY", "EM_EQUITY", "GOLD", "CRYPTO"};
static const double PRICE[6] = {127.5099, 141.7317, 216.9675, 179.8098, 1829.5233, 8614.107};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct call_in {
  keel_profile p;
  keel_position pos[2];
  keel_quote q[6];
  keel_advice_input in;
} call_in;

static void make_input(size_t i, call_in *c) {
  keel_profile_default(&c->p);
  c->p.age = 25 + (int)(i % 40);
  c->p.risk_score = 1 + (int)(i % 10);
  c->p.horizon = 1 + (double)(i % 30);
  c->p.goal = (keel_goal)(i % 4);
  c->p.initial = 1000.0 * (double)(i % 50);
  c->p.monthly = 100.0 * (double)(i % 7);
  c->p.liquidity = 500.0 * (double)(i % 11);
  c->pos[0] = (keel_position){"EQUITY", 10.0 * (double)(i % 13)};
  c->pos[1] = (keel_position){"BOND", 5.0 * (double)(i % 17)};
  for (size_t j = 0; j < 6; j++) c->q[j] = (keel_quote){SYM[j], PRICE[j], 0, 0, NAN};
  keel_advice_input_default(&c->in);
  c->in.profile = &c->p;
  c->in.holdings = c->pos;
  c->in.nholdings = 2;
  c->in.cash = 100.0 * (double)(i % 5) + 100;
  c->in.quotes = c->q;
  c->in.nquotes = 6;
  c->in.costs.buy_bps = c->in.costs.sell_bps = 10;
  c->in.costs.fee = 1;
}

typedef struct worker {
  keel_template *t;
  size_t from, to;
  int failed;
  char msg[256];
} worker;

static void *work(void *arg) {
  worker *w = arg;
  keel_ctx *ctx = NULL;
  if (keel_ctx_new(NULL, &ctx)) {
    w->failed = 1;
    return NULL;
  }
  call_in c;
  for (size_t i = w->from; i < w->to && !w->failed; i++) {
    make_input(i, &c);
    keel_advice *a = NULL;
    if (keel_advise(ctx, w->t, &c.in, &a)) {
      w->failed = 1;
      snprintf(w->msg, sizeof w->msg, "%s", keel_errmsg(ctx));
    }
    keel_advice_free(a);
  }
  keel_ctx_free(ctx);
  return NULL;
}

static double run(keel_template *t, size_t ncalls, int threads) {
  worker w[64];
  pthread_t th[64];
  double t0 = now();
  for (int k = 0; k < threads; k++) {
    w[k] = (worker){t, ncalls * (size_t)k / (size_t)threads, ncalls * (size_t)(k + 1) / (size_t)threads, 0, ""};
    pthread_create(&th[k], NULL, work, &w[k]);
  }
  for (int k = 0; k < threads; k++) pthread_join(th[k], NULL);
  double dt = now() - t0;
  for (int k = 0; k < threads; k++)
    if (w[k].failed) {
      fprintf(stderr, "bench_advice: %s\n", w[k].msg);
      exit(1);
    }
  return dt;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: bench_advice TEMPLATE NCALLS THREADS REPEATS NCHECK\n");
    return 2;
  }
  size_t ncalls = (size_t)atol(argv[2]), ncheck = (size_t)atol(argv[5]);
  int threads = atoi(argv[3]), reps = atoi(argv[4]);
  if (threads < 1 || threads > 64 || reps < 1) return 2;
  keel_ctx *ctx = NULL;
  keel_ctx_new(NULL, &ctx);
  keel_lua_config cfg;
  keel_lua_config_default(&cfg);
  keel_template *t = NULL;
  if (keel_template_load(ctx, &cfg, argv[1], &t)) {
    fprintf(stderr, "bench_advice: %s\n", keel_errmsg(ctx));
    return 1;
  }
  run(t, ncalls / 10 + 1, 1); /* warm the pool */
  double best1 = INFINITY, bestn = INFINITY;
  for (int r = 0; r < reps; r++) {
    double d = run(t, ncalls, 1);
    if (d < best1) best1 = d;
    if (threads > 1) {
      d = run(t, ncalls, threads);
      if (d < bestn) bestn = d;
    }
  }
  printf("{\"calls\": %zu, \"threads\": %d, \"per_second_1\": %.1f, \"per_second_n\": %.1f, \"check\": [", ncalls,
         threads, (double)ncalls / best1, threads > 1 ? (double)ncalls / bestn : (double)ncalls / best1);
  call_in c;
  for (size_t i = 0; i < ncheck; i++) {
    make_input(i, &c);
    keel_advice *a = NULL;
    if (keel_advise(ctx, t, &c.in, &a)) {
      fprintf(stderr, "bench_advice: %s\n", keel_errmsg(ctx));
      return 1;
    }
    printf("%s{\"total\": %.17g, \"cost\": %.17g, \"cash\": %.17g, \"ntrades\": %zu, \"risk\": %d}", i ? ", " : "",
           keel_advice_total(a), keel_advice_trade_costs(a), keel_advice_cash_after(a), keel_advice_ntrades(a),
           keel_advice_risk_score(a));
    keel_advice_free(a);
  }
  printf("]}\n");
  keel_template_free(t);
  keel_ctx_free(ctx);
  return 0;
}
