/* The stress runner (backtest/stress.c): closed forms, determinism across
 * thread counts, money conservation on the paths, overlays seen through
 * the engine, statistics recomputed independently, bad input. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <valgrind/valgrind.h>

#include "keel_test.h"
#include "backtest/engine_internal.h"
#include "core/internal.h"

static const char *const SYM1[1] = {"X"};

/* Phi^-1 by bisection on erfc (independent of keel). */
static double norm_ppf(double q) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 200; i++) {
    double m = 0.5 * (lo + hi);
    if (0.5 * erfc(-m / sqrt(2)) < q)
      lo = m;
    else
      hi = m;
  }
  return 0.5 * (lo + hi);
}

static keel_mc *gbm(double mu, double sigma, double years, keel_mc_freq f) {
  keel_mc_params p;
  keel_mc_params_default(&p);
  p.nassets = 1;
  p.freq = f;
  p.years = years;
  double cov = sigma * sigma;
  p.mu = &mu;
  p.cov = &cov;
  keel_mc *g = NULL;
  assert_ok(CTX, keel_mc_new(CTX, &p, &g));
  return g;
}

/* One sub-account holding everything in the first asset, never rebalanced. */
static void hold_spec(keel_account_spec *a, keel_subaccount_spec *s, const double *w) {
  keel_subaccount_spec_default(s);
  s->weights = w;
  s->capital = 1000;
  s->schedule.calendar = KEEL_CAL_NEVER;
  s->costs.use_lots = 0;
  keel_account_spec_default(a);
  a->nsubs = 1;
  a->subs = s;
}

/* Single-asset GBM buy-and-hold: W_T = C exp(N(mu T, sigma^2 T)); the
 * quantiles within 4 Monte Carlo standard errors, the mean within 4. */
static void test_gbm_lognormal(void **state) {
  (void)state;
  const double mu = 0.05, sigma = 0.2, T = 10, C = 1000;
  keel_mc *g = gbm(mu, sigma, T, KEEL_MC_MONTHLY);
  keel_account_spec a;
  keel_subaccount_spec s;
  const double w[1] = {1};
  hold_spec(&a, &s, w);
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = g;
  o.account = &a;
  o.symbols = SYM1;
  o.npaths = getenv("KEEL_TEST_SMALL") || RUNNING_ON_VALGRIND ? 4000 : 20000;
  o.seed = 2024;
  o.threads = 2;
  o.keep_paths = 1;
  o.band_points = 121;
  keel_stress_result *r = NULL;
  assert_ok(CTX, keel_stress_run(CTX, &o, &r));
  const double N = (double)o.npaths, sT = sigma * sqrt(T);
  const double qs[] = {0.05, 0.25, 0.5, 0.75, 0.95};
  for (int i = 0; i < 5; i++) {
    double z = norm_ppf(qs[i]), want = C * exp(mu * T + sT * z);
    double se_log = sqrt(qs[i] * (1 - qs[i]) / N) * sT / (exp(-0.5 * z * z) / sqrt(2 * M_PI));
    double got = keel_stress_quantile(r, KEEL_STRESS_WEALTH, qs[i]);
    if (fabs(log(got / want)) > 4 * se_log) fail_msg("q%.2f: %.6g vs %.6g (4 SE %.3g in log)", qs[i], got, want, 4 * se_log);
    /* the fan chart's last point: the histogram within one bin of the exact quantile */
    double band = keel_stress_bands(r)[120 * KEEL_STRESS_NBANDS + (size_t)i];
    assert_close(band, got, 0.0045, 0);
  }
  double m = keel_stress_mean(r, KEEL_STRESS_WEALTH), want = C * exp(mu * T + 0.5 * sT * sT);
  double sd = want * sqrt(exp(sT * sT) - 1);
  assert_close(m, want, 0, 4 * sd / sqrt(N));
  /* CAGR is log-return mean over T: median exp(mu) - 1 */
  double cagr50 = keel_stress_quantile(r, KEEL_STRESS_CAGR, 0.5);
  assert_close(log1p(cagr50), mu, 0, 4 * sqrt(0.25 / N) * sigma / sqrt(T) / (1 / sqrt(2 * M_PI)));
  /* P(loss > 20%): P(W < 0.8 C) = Phi((ln 0.8 - mu T) / (sigma sqrt T)) */
  double pl = 0.5 * erfc(-((log(0.8) - mu * T) / sT) / sqrt(2));
  assert_close(keel_stress_prob_loss(r, 0.2), pl, 0, 4 * sqrt(pl * (1 - pl) / N));
  /* P(goal) for a goal of 2000 */
  double pg = 0.5 * erfc(((log(2.0) - mu * T) / sT) / sqrt(2));
  assert_close(keel_stress_prob_goal(r, 2000, 0), pg, 0, 4 * sqrt(pg * (1 - pg) / N));
  keel_stress_result_free(r);
  keel_mc_free(g);
}

/* ---- a policy with bands, costs and DCA over bootstrapped history ---- */

typedef struct policy_fix {
  keel_panel *hist;
  keel_mc *g;
  double w[6];
  keel_subaccount_spec s;
  keel_dca dca;
  keel_account_spec a;
} policy_fix;

static void policy_setup(policy_fix *f, keel_mc_kind kind, const char *scenario, double years) {
  assert_ok(CTX, keel_panel_read_csv(CTX, keel_test_source_path("data/samples/multi_asset.csv"), NULL, &f->hist));
  keel_mc_calibration c;
  keel_mc_calibration_default(&c);
  c.kind = kind;
  c.freq = KEEL_MC_MONTHLY;
  c.years = years;
  assert_ok(CTX, keel_mc_calibrate(CTX, f->hist, &c, &f->g));
  if (scenario) {
    const char *syms[6];
    for (size_t j = 0; j < 6; j++) syms[j] = keel_panel_symbol(f->hist, j);
    keel_scenario *sc = NULL;
    assert_ok(CTX, keel_scenario_new(CTX, 6, syms, &sc));
    assert_ok(CTX, keel_scenario_parse(CTX, sc, scenario));
    assert_ok(CTX, keel_mc_set_scenario(CTX, f->g, sc));
    keel_scenario_free(sc);
  }
  const double w[6] = {0.35, 0.15, 0.3, 0.1, 0.05, 0.05};
  memcpy(f->w, w, sizeof w);
  keel_subaccount_spec_default(&f->s);
  f->s.weights = f->w;
  f->s.capital = 10000;
  f->s.band.kind = KEEL_BAND_COMBINED;
  f->s.band.abs = 0.05;
  f->s.band.rel = 0.25;
  f->s.costs.buy_bps = f->s.costs.sell_bps = 10;
  f->s.costs.spread_bps = 4;
  f->s.costs.use_lots = 0;
  keel_dca_default(&f->dca);
  f->dca.amount = 200;
  f->dca.schedule.calendar = KEEL_CAL_MONTHLY;
  f->s.dca = &f->dca;
  f->s.ndca = 1;
  keel_account_spec_default(&f->a);
  f->a.nsubs = 1;
  f->a.subs = &f->s;
}

static void policy_teardown(policy_fix *f) {
  keel_mc_free(f->g);
  keel_panel_free(f->hist);
}

/* Money is conserved on every row of every path: value after trading plus
 * costs minus flows equals the cash and holdings of the row before at this
 * row's prices. */
typedef struct conserve {
  double worst;
  size_t paths, rows_checked, costly_rows;
  size_t crunch0, crunch1;
  double cost_in, cost_out, traded_in, traded_out;
} conserve;

static int check_conservation(void *ud, uint64_t path, const keel_panel *p, size_t start, const keel_backtest_result *r) {
  (void)path;
  conserve *c = ud;
  const size_t n = keel_backtest_npoints(r), na = keel_panel_nassets(p);
  const double *v = keel_backtest_values(r), *cash = keel_backtest_cash(r), *fl = keel_backtest_flows(r),
               *co = keel_backtest_costs(r), *tr = keel_backtest_traded(r);
  double last[16];
  for (size_t j = 0; j < na; j++) last[j] = keel_panel_price(p, start, j);
  for (size_t t = 1; t < n; t++) {
    const double *h = keel_backtest_holdings(r, t - 1);
    double before = cash[t - 1];
    for (size_t j = 0; j < na; j++) {
      double px = keel_panel_price(p, start + t, j);
      if (!isnan(px)) last[j] = px;
      before += h[j] * last[j];
    }
    double after = v[t] + co[t] - fl[t];
    double rel = fabs(after - before) / fabs(before);
    if (rel > c->worst) c->worst = rel;
    c->rows_checked++;
    c->costly_rows += co[t] > 0;
    int in = t >= c->crunch0 && t < c->crunch1;
    if (tr[t] > 0) {
      if (in)
        c->cost_in += co[t], c->traded_in += tr[t];
      else
        c->cost_out += co[t], c->traded_out += tr[t];
    }
  }
  c->paths++;
  return 0;
}

static void test_conservation(void **state) {
  (void)state;
  policy_fix f;
  /* a liquidity crunch (costs x3, spread x5, trading halted 1 month) and a crash inside it */
  policy_setup(&f, KEEL_MC_BOOTSTRAP, "liquidity:all:cost=3,spread=5,halt=1m@5y/2y; crash:*EQUITY*:-0.35@5y", 15);
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = f.g;
  o.account = &f.a;
  o.history = f.hist;
  o.npaths = 200;
  o.seed = 7;
  o.threads = 1;
  o.record_holdings = 1;
  conserve c = {.crunch0 = 60, .crunch1 = 60 + 24};
  o.on_path = check_conservation;
  o.path_ud = &c;
  keel_stress_result *r = NULL;
  assert_ok(CTX, keel_stress_run(CTX, &o, &r));
  assert_int_equal(c.paths, 200);
  assert_true(c.rows_checked == 200 * 180);
  assert_true(c.costly_rows > 1000);
  if (c.worst > 1e-9) fail_msg("money not conserved: %.3g relative", c.worst);
  /* inside the crunch a unit traded costs (10 x 3 + 2 x 5) / (10 + 2) = 3.33 times as much */
  double rate_in = c.cost_in / c.traded_in, rate_out = c.cost_out / c.traded_out;
  assert_close(rate_out, 12e-4, 1e-9, 0);
  assert_close(rate_in, 40e-4, 1e-9, 0);
  assert_true(keel_stress_has_flows(r));
  assert_close(keel_stress_mean_in(r), 10000 + 200 * 181, 1e-12, 0);
  keel_stress_result_free(r);
  policy_teardown(&f);
}

/* ---- quiet rows: the engine's short path gives the general path's bits ---- */

typedef struct quiet_check {
  const keel_account_spec *spec;
  int holdings; /* the runs record holdings */
  size_t paths, quiet_rows, rebalances, trades;
} quiet_check;

static void same_doubles(const double *a, const double *b, size_t n, const char *what) {
  if (memcmp(a, b, n * sizeof *a)) fail_msg("%s differs", what);
}

/* r (from the stress runner's engine, quiet rows on) against the same
 * account run on the same panel by keel_backtest_run_account (quiet rows
 * on) and by an engine with quiet rows off: every value bitwise. */
static int check_quiet(void *ud, uint64_t path, const keel_panel *p, size_t start, const keel_backtest_result *r) {
  (void)path;
  quiet_check *q = ud;
  keel_account_spec spec = *q->spec;
  spec.start = start;
  spec.end = 0;
  spec.fill = KEEL_FILL_CLOSE;
  spec.periods_per_year = 12;
  spec.record_holdings = q->holdings;
  keeli_engine *e = NULL;
  keel_backtest_result *pub = NULL;
  assert_ok(CTX, keeli_engine_new(CTX, p, &spec, 0, &e));
  keeli_engine_set_quiet(e, 0);
  assert_ok(CTX, keeli_engine_run(e, CTX));
  assert_int_equal(keeli_engine_quiet_rows(e), 0);
  assert_ok(CTX, keel_backtest_run_account(CTX, p, &spec, &pub));
  const keel_backtest_result *gen = keeli_engine_result(e);
  const keel_backtest_result *rs[2] = {gen, pub};
  const size_t n = keel_backtest_npoints(r), na = keel_panel_nassets(p);
  for (int k = 0; k < 2; k++) {
    const keel_backtest_result *o = rs[k];
    assert_int_equal(keel_backtest_npoints(o), n);
    same_doubles(keel_backtest_values(r), keel_backtest_values(o), n, "values");
    same_doubles(keel_backtest_cash(r), keel_backtest_cash(o), n, "cash");
    same_doubles(keel_backtest_flows(r), keel_backtest_flows(o), n, "flows");
    same_doubles(keel_backtest_traded(r), keel_backtest_traded(o), n, "traded");
    same_doubles(keel_backtest_costs(r), keel_backtest_costs(o), n, "costs");
    if (q->holdings)
      for (size_t t = 0; t < n; t++) same_doubles(keel_backtest_holdings(r, t), keel_backtest_holdings(o, t), na, "holdings");
    for (size_t s = 0; s < spec.nsubs; s++) {
      same_doubles(keel_backtest_sub_values(r, s), keel_backtest_sub_values(o, s), n, "sub-account values");
      same_doubles(keel_backtest_sub_cash(r, s), keel_backtest_sub_cash(o, s), n, "sub-account cash");
    }
    assert_int_equal(keel_backtest_ntrades(r), keel_backtest_ntrades(o));
    const keel_trade *ta = keel_backtest_trades(r), *tb = keel_backtest_trades(o);
    for (size_t i = 0; i < keel_backtest_ntrades(r); i++) {
      assert_true(ta[i].date == tb[i].date && ta[i].asset == tb[i].asset && ta[i].sub == tb[i].sub &&
                  ta[i].reason == tb[i].reason);
      assert_memory_equal(&ta[i].shares, &tb[i].shares, sizeof(double));
      assert_memory_equal(&ta[i].cost, &tb[i].cost, sizeof(double));
    }
    assert_int_equal(keel_backtest_nrebalances(r), keel_backtest_nrebalances(o));
    const keel_rebalance *ra = keel_backtest_rebalances(r), *rb = keel_backtest_rebalances(o);
    for (size_t i = 0; i < keel_backtest_nrebalances(r); i++) {
      assert_true(ra[i].date == rb[i].date && ra[i].sub == rb[i].sub && ra[i].reason == rb[i].reason);
      assert_memory_equal(&ra[i].value_before, &rb[i].value_before, sizeof(double));
      assert_memory_equal(&ra[i].costs, &rb[i].costs, sizeof(double));
    }
  }
  /* quiet rows by the portable code and by AVX2 only (r's engine took
   * the machine's widest): the same bits */
  keeli_engine_set_quiet(e, 1);
  for (int cap = KEELI_SIMD_PORTABLE; cap < KEELI_SIMD_BEST; cap++) {
    keeli_engine_set_simd(e, cap);
    assert_ok(CTX, keeli_engine_run(e, CTX));
    char what[48];
    snprintf(what, sizeof what, "values (vector level %d)", cap);
    same_doubles(keel_backtest_values(r), keel_backtest_values(keeli_engine_result(e)), n, what);
    snprintf(what, sizeof what, "cash (vector level %d)", cap);
    same_doubles(keel_backtest_cash(r), keel_backtest_cash(keeli_engine_result(e)), n, what);
    snprintf(what, sizeof what, "costs (vector level %d)", cap);
    same_doubles(keel_backtest_costs(r), keel_backtest_costs(keeli_engine_result(e)), n, what);
  }
  /* the public run took quiet rows too: run it through an engine to count them */
  keeli_engine_set_simd(e, KEELI_SIMD_BEST);
  assert_ok(CTX, keeli_engine_run(e, CTX));
  q->quiet_rows += keeli_engine_quiet_rows(e);
  same_doubles(keel_backtest_values(r), keel_backtest_values(keeli_engine_result(e)), n, "values (quiet)");
  q->rebalances += keel_backtest_nrebalances(r);
  q->trades += keel_backtest_ntrades(r);
  q->paths++;
  keel_backtest_result_free(pub);
  keeli_engine_free(e);
  return 0;
}

static void test_quiet_rows_bitwise(void **state) {
  (void)state;
  enum { A = 10 };
  double mu[A], cov[A * A], w1[A], w2[4] = {0.4, 0.3, 0.2, 0.1};
  const char *sym[A] = {"A0", "A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9"};
  for (size_t i = 0; i < A; i++) {
    mu[i] = 0.03 + 0.01 * (double)i;
    w1[i] = 1.0 / A;
    for (size_t j = 0; j < A; j++) cov[i * A + j] = (i == j ? 1 : 0.3) * (0.1 + 0.02 * (double)i) * (0.1 + 0.02 * (double)j);
  }
  keel_mc_params mp;
  keel_mc_params_default(&mp);
  mp.freq = KEEL_MC_MONTHLY;
  mp.years = 30;
  mp.nassets = A;
  mp.mu = mu;
  mp.cov = cov;
  keel_mc *g = NULL;
  assert_ok(CTX, keel_mc_new(CTX, &mp, &g));
  /* sub-account 0: the benchmark's basket (an absolute band, costs, quiet
   * on every row without a breach); 1: four assets, a relative band
   * checked monthly and a yearly schedule too; 2: a monthly DCA plan (never
   * quiet) */
  keel_subaccount_spec s[3];
  static const size_t cols1[4] = {2, 3, 4, 5}, cols2[3] = {7, 8, 9};
  const double w3[3] = {0.5, 0.3, 0.2};
  for (int k = 0; k < 3; k++) {
    keel_subaccount_spec_default(&s[k]);
    s[k].costs.buy_bps = s[k].costs.sell_bps = 10;
    s[k].costs.use_lots = 0;
  }
  s[0].name = "basket";
  s[0].weights = w1;
  s[0].schedule.calendar = KEEL_CAL_NEVER;
  s[0].band.kind = KEEL_BAND_ABSOLUTE;
  s[0].band.abs = 0.05;
  s[1].name = "four";
  s[1].nassets = 4;
  s[1].assets = cols1;
  s[1].weights = w2;
  s[1].capital = 50000;
  s[1].schedule.calendar = KEEL_CAL_YEARLY;
  s[1].rebalance_on_schedule = 1;
  s[1].band.kind = KEEL_BAND_RELATIVE;
  s[1].band.rel = 0.2;
  s[1].band_check.calendar = KEEL_CAL_MONTHLY;
  s[1].costs.spread_bps = 6;
  keel_dca d;
  keel_dca_default(&d);
  d.amount = 300;
  d.schedule.calendar = KEEL_CAL_MONTHLY;
  s[2].name = "dca";
  s[2].nassets = 3;
  s[2].assets = cols2;
  s[2].weights = w3;
  s[2].capital = 20000;
  s[2].band.kind = KEEL_BAND_ABSOLUTE;
  s[2].band.abs = 0.1;
  s[2].dca = &d;
  s[2].ndca = 1;
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 3;
  a.subs = s;
  quiet_check q = {.spec = &a, .holdings = 1};
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = g;
  o.account = &a;
  o.symbols = sym;
  o.npaths = RUNNING_ON_VALGRIND ? 6 : 40;
  o.seed = 99;
  o.threads = 1;
  o.record_holdings = 1;
  o.on_path = check_quiet;
  o.path_ud = &q;
  keel_stress_result *r = NULL;
  assert_ok(CTX, keel_stress_run(CTX, &o, &r));
  assert_int_equal(q.paths, o.npaths);
  /* the quiet path ran most rows of the first two sub-accounts, and the
   * band breaches (rebalances past the first row) went the general way */
  if (q.quiet_rows < o.npaths * 2 * 300) fail_msg("only %zu quiet rows", q.quiet_rows);
  if (q.rebalances < o.npaths * 5) fail_msg("only %zu rebalances", q.rebalances);
  keel_stress_result_free(r);
  /* the first sub-account alone, no holdings recorded: the engine's loop
   * for one sub-account and its runs of quiet rows (the public run, with
   * metrics, takes the general one), for baskets of 3, 8, 9 and 10 assets
   * (the vector code's whole and partial vectors) */
  a.nsubs = 1;
  o.record_holdings = 0;
  static const size_t cols0[A] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const size_t sizes[] = {A, 3, 8, 9};
  for (size_t c = 0; c < sizeof sizes / sizeof *sizes; c++) {
    const size_t k = sizes[c];
    double wk[A];
    for (size_t i = 0; i < k; i++) wk[i] = 1.0 / (double)k;
    s[0].weights = k == A ? w1 : wk;
    s[0].nassets = k == A ? 0 : k;
    s[0].assets = k == A ? NULL : cols0;
    quiet_check q1 = {.spec = &a, .holdings = 0};
    o.path_ud = &q1;
    assert_ok(CTX, keel_stress_run(CTX, &o, &r));
    assert_int_equal(q1.paths, o.npaths);
    if (q1.quiet_rows < o.npaths * 250) fail_msg("%zu assets: only %zu quiet rows", k, q1.quiet_rows);
    if (q1.rebalances < o.npaths * 2) fail_msg("%zu assets: only %zu rebalances", k, q1.rebalances);
    keel_stress_result_free(r);
  }
  keel_mc_free(g);
}

/* ---- streamed statistics: the histograms' estimates against the exact values ---- */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static keel_stress_result *run_policy(policy_fix *f, size_t npaths, int threads, int keep, keel_ctx *ctx) {
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = f->g;
  o.account = &f->a;
  o.history = f->hist;
  o.npaths = npaths;
  o.seed = 5;
  o.threads = threads;
  o.keep_paths = keep;
  o.goal = 40000;
  o.loss_threshold = 0.1;
  keel_stress_result *r = NULL;
  assert_ok(ctx, keel_stress_run(ctx, &o, &r));
  return r;
}

/* The fan chart's counts past 2^16 paths on one worker (its 16-bit counts
 * spill into 32-bit ones): 70,000 paths of a constant generator put every
 * path in one bucket per point, so every band must lie in that bucket,
 * around the one value (a lost or wrapped count moves the interpolated
 * band out of it). */
static void test_fan_counts_past_16_bits(void **state) {
  (void)state;
  const double mu[1] = {0.06};
  keel_mc_params mp;
  keel_mc_params_default(&mp);
  mp.kind = KEEL_MC_CONSTANT;
  mp.freq = KEEL_MC_MONTHLY;
  mp.years = 1;
  mp.nassets = 1;
  mp.mu = mu;
  keel_mc *g = NULL;
  assert_ok(CTX, keel_mc_new(CTX, &mp, &g));
  const char *sym[1] = {"A"};
  const double w[1] = {1};
  keel_subaccount_spec sub;
  keel_account_spec a;
  hold_spec(&a, &sub, w);
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = g;
  o.account = &a;
  o.symbols = sym;
  o.npaths = 70000;
  o.threads = 1;
  keel_stress_result *r = NULL;
  assert_ok(CTX, keel_stress_run(CTX, &o, &r));
  /* the one path's values, from a run that keeps its paths */
  keel_stress_result *one = NULL;
  o.npaths = 1;
  o.keep_paths = 1;
  assert_ok(CTX, keel_stress_run(CTX, &o, &one));
  const double *pv = keel_stress_path_values(one, 0);
  assert_non_null(pv);
  const size_t P = keel_stress_band_npoints(r);
  assert_int_equal(keel_stress_band_npoints(one), P);
  const double *b = keel_stress_bands(r);
  for (size_t i = 0; i < P; i++) {
    const double v = pv[i];
    for (size_t j = 0; j < KEEL_STRESS_NBANDS; j++)
      if (!(fabs(b[i * KEEL_STRESS_NBANDS + j] - v) <= v / 128))
        fail_msg("point %zu band %zu: %.10g, the paths' value %.10g", i, j, b[i * KEEL_STRESS_NBANDS + j], v);
  }
  keel_stress_result_free(one);
  keel_stress_result_free(r);
  keel_mc_free(g);
}

static void test_streamed_accuracy(void **state) {
  (void)state;
  policy_fix f;
  policy_setup(&f, KEEL_MC_NORMAL, "crash:*EQUITY*:-0.3@2y", 10);
  const size_t N = RUNNING_ON_VALGRIND ? 400 : 3000;
  keel_stress_result *ex = run_policy(&f, N, 1, 1, CTX), *sk = run_policy(&f, N, 2, 0, CTX),
                     *sk1 = run_policy(&f, N, 1, 0, CTX);
  assert_true(keel_stress_exact(ex));
  assert_false(keel_stress_exact(sk));
  assert_null(keel_stress_values(sk, KEEL_STRESS_WEALTH));
  const double d = 1.0 / 256, tiny = 0x1p-32;
  const double qs[] = {0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1};
  double *v = malloc(N * sizeof *v);
  size_t checked = 0, inexact = 0;
  for (int s = 0; s < KEEL_STRESS_NSTATS; s++) {
    size_t m = 0;
    for (size_t p = 0; p < N; p++)
      if (!isnan(keel_stress_values(ex, s)[p])) v[m++] = keel_stress_values(ex, s)[p];
    qsort(v, m, sizeof *v, cmp_d);
    /* the means are exact sums in both modes, on any thread count */
    double me = keel_stress_mean(ex, s), ms = keel_stress_mean(sk, s);
    if (memcmp(&me, &ms, sizeof me)) fail_msg("%s: mean %.17g vs %.17g", keel_stress_stat_name(s), me, ms);
    double naive = 0;
    for (size_t i = 0; i < m; i++) naive += v[i];
    if (m) assert_close(me, naive / (double)m, 1e-12, 1e-15);
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
      double h = (double)(m - 1) * qs[i];
      size_t lo = (size_t)h, hi = lo + 1 < m ? lo + 1 : lo;
      double want = keel_stress_quantile(ex, s, qs[i]), got = keel_stress_quantile(sk, s, qs[i]);
      double bound = d * fmax(fabs(v[lo]), fabs(v[hi])) + tiny;
      if (!(fabs(got - want) <= bound))
        fail_msg("%s q%.2f: %.10g vs exact %.10g (bound %.3g)", keel_stress_stat_name(s), qs[i], got, want, bound);
      checked++;
      inexact += got != want;
      /* the same bits on 1 and 2 threads */
      double g1 = keel_stress_quantile(sk1, s, qs[i]);
      assert_memory_equal(&g1, &got, sizeof got);
    }
    for (double lvl = 0.01; lvl < 0.3; lvl += 0.07) {
      double want = keel_stress_shortfall(ex, s, lvl), got = keel_stress_shortfall(sk, s, lvl);
      int high = s == KEEL_STRESS_LOSS || s == KEEL_STRESS_MAX_DRAWDOWN || s == KEEL_STRESS_UNDERWATER ||
                 s == KEEL_STRESS_COSTS;
      size_t k = (size_t)ceil(lvl * (double)m - 1e-9);
      double mag = 0;
      for (size_t i = 0; i < k; i++) mag += fabs(high ? v[m - 1 - i] : v[i]);
      double bound = d * mag / (double)k + tiny;
      if (!(fabs(got - want) <= bound))
        fail_msg("%s ES %.2f: %.10g vs exact %.10g (bound %.3g)", keel_stress_stat_name(s), lvl, got, want, bound);
      double g1 = keel_stress_shortfall(sk1, s, lvl);
      assert_memory_equal(&g1, &got, sizeof got);
    }
  }
  assert_true(inexact > checked / 2); /* the estimates are estimates: this compares something */
  /* P(goal) and P(loss): exact at the run's thresholds, within the share
   * of the threshold's bucket elsewhere */
  assert_close(keel_stress_prob_goal(sk, 40000, 0), keel_stress_prob_goal(ex, 40000, 0), 0, 0);
  assert_close(keel_stress_prob_goal(sk, 40000, 1), keel_stress_prob_goal(ex, 40000, 1), 0, 0);
  assert_close(keel_stress_prob_loss(sk, 0.1), keel_stress_prob_loss(ex, 0.1), 0, 0);
  const double *W = keel_stress_values(ex, KEEL_STRESS_WEALTH);
  for (double goal = 20000; goal < 80000; goal *= 1.13) {
    size_t near = 0;
    for (size_t p = 0; p < N; p++) near += fabs(W[p] - goal) <= d * goal;
    assert_close(keel_stress_prob_goal(sk, goal, 0), keel_stress_prob_goal(ex, goal, 0), 0, (double)near / (double)N + 1e-12);
  }
  /* the fan chart and the money are the same whether the paths are kept */
  assert_memory_equal(keel_stress_bands(ex), keel_stress_bands(sk),
                      keel_stress_band_npoints(ex) * KEEL_STRESS_NBANDS * sizeof(double));
  assert_memory_equal(keel_stress_bands(sk1), keel_stress_bands(sk),
                      keel_stress_band_npoints(ex) * KEEL_STRESS_NBANDS * sizeof(double));
  assert_true(keel_stress_mean_in(ex) == keel_stress_mean_in(sk) && keel_stress_mean_out(ex) == keel_stress_mean_out(sk));
  free(v);
  keel_stress_result_free(ex);
  keel_stress_result_free(sk);
  keel_stress_result_free(sk1);
  policy_teardown(&f);
}

/* Memory does not grow with the number of paths unless they are kept. */
static void test_memory_bounded(void **state) {
  (void)state;
  policy_fix f;
  policy_setup(&f, KEEL_MC_BOOTSTRAP, NULL, 5);
  long long peak[4];
  const size_t big = RUNNING_ON_VALGRIND ? 1000 : 6000, n[4] = {200, big, 200, 2000};
  for (int k = 0; k < 4; k++) {
    keel_test_alloc a;
    keel_ctx *ctx = keel_test_ctx(&a);
    a.peak_bytes = a.live_bytes;
    long long base = a.live_bytes;
    keel_stress_result *r = run_policy(&f, n[k], 1, k >= 2, ctx);
    peak[k] = a.peak_bytes - base;
    keel_stress_result_free(r);
    keel_ctx_free(ctx);
  }
  /* the same but for the engine's trade buffers, sized by the busiest
   * path so far (about 24 kB more here, whether 2,000 or 6,000 paths) */
  if (peak[1] > peak[0] + 65536) fail_msg("peak %lld bytes for 200 paths, %lld for %zu", peak[0], peak[1], big);
  /* kept, 1,800 more paths cost their 9 statistics twice (values and
   * sorted) and their 61 band points */
  if (peak[3] < peak[2] + 1800 * (18 + 61) * 8)
    fail_msg("peak %lld bytes for 200 kept paths, %lld for 2000", peak[2], peak[3]);
  policy_teardown(&f);
}

/* Same seed, same results, bitwise, on 1 and 2 threads; other seeds differ. */
static keel_stress_result *run_threads(policy_fix *f, int threads, uint64_t seed) {
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = f->g;
  o.account = &f->a;
  o.history = f->hist;
  o.npaths = 301;
  o.seed = seed;
  o.threads = threads;
  o.keep_paths = 1;
  o.goal = 60000;
  keel_stress_result *r = NULL;
  assert_ok(CTX, keel_stress_run(CTX, &o, &r));
  return r;
}

static void same_results(const keel_stress_result *a, const keel_stress_result *b) {
  const size_t N = keel_stress_npaths(a), P = keel_stress_band_npoints(a);
  for (int s = 0; s < KEEL_STRESS_NSTATS; s++)
    if (memcmp(keel_stress_values(a, s), keel_stress_values(b, s), N * sizeof(double)))
      fail_msg("statistic %s differs", keel_stress_stat_name(s));
  assert_memory_equal(keel_stress_bands(a), keel_stress_bands(b), P * KEEL_STRESS_NBANDS * sizeof(double));
  for (size_t p = 0; p < N; p++)
    assert_memory_equal(keel_stress_path_values(a, p), keel_stress_path_values(b, p), P * sizeof(double));
}

static void test_threads_bitwise(void **state) {
  (void)state;
  const keel_mc_kind kinds[] = {KEEL_MC_BOOTSTRAP, KEEL_MC_STUDENT_T, KEEL_MC_REGIME};
  for (size_t k = 0; k < 3; k++) {
    policy_fix f;
    policy_setup(&f, kinds[k], "vol:all:2@3y/1y", 10);
    keel_stress_result *a = run_threads(&f, 1, 11), *b = run_threads(&f, 2, 11), *c = run_threads(&f, 2, 12);
    same_results(a, b);
    assert_true(memcmp(keel_stress_values(a, KEEL_STRESS_WEALTH), keel_stress_values(c, KEEL_STRESS_WEALTH),
                       301 * sizeof(double)) != 0);
    keel_stress_result_free(a);
    keel_stress_result_free(b);
    keel_stress_result_free(c);
    policy_teardown(&f);
  }
}

/* Progress comes on the calling thread, never goes back, starts short of
 * the end and ends at (N, N) (workers no longer wake the caller per block
 * of paths; it looks every 100 ms and when the last worker ends). */
typedef struct progress_log {
  pthread_t caller;
  size_t calls, last, total, partial;
  int wrong_thread, backwards;
} progress_log;

static void on_progress(void *ud, size_t done, size_t total) {
  progress_log *l = ud;
  l->wrong_thread |= !pthread_equal(pthread_self(), l->caller);
  l->backwards |= done < l->last;
  l->partial += done < total;
  l->calls++;
  l->last = done;
  l->total = total;
}

static void test_progress(void **state) {
  (void)state;
  policy_fix f;
  policy_setup(&f, KEEL_MC_BOOTSTRAP, NULL, 30);
  progress_log l = {.caller = pthread_self()};
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = f.g;
  o.account = &f.a;
  o.history = f.hist;
  o.npaths = 1000;
  o.threads = 2;
  o.progress = on_progress;
  o.progress_ud = &l;
  keel_stress_result *r = NULL;
  assert_ok(CTX, keel_stress_run(CTX, &o, &r));
  assert_false(l.wrong_thread);
  assert_false(l.backwards);
  assert_int_equal(l.last, 1000);
  assert_int_equal(l.total, 1000);
  assert_true(l.calls >= 2);
  assert_true(l.partial >= 1);
  keel_stress_result_free(r);
  policy_teardown(&f);
}

/* The statistics recomputed from the paths' values (band points = every
 * step, kept) and from the engine's flows (IRR) in the test. */
typedef struct irr_check {
  pthread_mutex_t mu;
  double *irr;
} irr_check;

static int keep_irr(void *ud, uint64_t path, const keel_panel *p, size_t start, const keel_backtest_result *r) {
  (void)p, (void)start;
  irr_check *c = ud;
  const size_t n = keel_backtest_npoints(r);
  const double *v = keel_backtest_values(r), *f = keel_backtest_flows(r);
  /* bisection on the annual rate; 12 steps a year */
  double lo = -0.99, hi = 5;
  for (int it = 0; it < 200; it++) {
    double m = 0.5 * (lo + hi), npv = -(keel_backtest_capital(r) + f[0]);
    for (size_t t = 1; t < n; t++) npv += -f[t] * pow(1 + m, -(double)t / 12);
    npv += v[n - 1] * pow(1 + m, -(double)(n - 1) / 12);
    if (npv > 0)
      lo = m;
    else
      hi = m;
  }
  pthread_mutex_lock(&c->mu);
  c->irr[path] = 0.5 * (lo + hi);
  pthread_mutex_unlock(&c->mu);
  return 0;
}

static void test_statistics(void **state) {
  (void)state;
  policy_fix f;
  policy_setup(&f, KEEL_MC_NORMAL, NULL, 10);
  irr_check ic;
  pthread_mutex_init(&ic.mu, NULL);
  ic.irr = calloc(500, sizeof(double));
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = f.g;
  o.account = &f.a;
  o.history = f.hist;
  o.npaths = 500;
  o.seed = 3;
  o.threads = 2;
  o.keep_paths = 1;
  o.band_points = 121;
  o.on_path = keep_irr;
  o.path_ud = &ic;
  keel_stress_result *r = NULL;
  assert_ok(CTX, keel_stress_run(CTX, &o, &r));
  const double *W = keel_stress_values(r, KEEL_STRESS_WEALTH), *irr = keel_stress_values(r, KEEL_STRESS_IRR);
  const double *mdd = keel_stress_values(r, KEEL_STRESS_MAX_DRAWDOWN), *loss = keel_stress_values(r, KEEL_STRESS_LOSS);
  for (size_t p = 0; p < 500; p++) {
    const double *v = keel_stress_path_values(r, p);
    assert_close(W[p], v[120], 0, 0);
    assert_close(irr[p], ic.irr[p], 1e-9, 1e-12);
    /* with contributions only at month starts the TWR index's drawdown is
     * at most the value's own largest fall relative to money in; check
     * the loss identity instead: 1 - W / (capital + contributions) */
    assert_close(loss[p], 1 - W[p] / (10000 + 200 * 121), 1e-12, 1e-15);
    assert_true(mdd[p] >= 0 && mdd[p] < 1);
  }
  /* exact quantiles (type 7) and the expected shortfall from a sorted copy */
  double *s = malloc(500 * sizeof *s);
  memcpy(s, W, 500 * sizeof *s);
  for (size_t i = 1; i < 500; i++)
    for (size_t j = i; j > 0 && s[j - 1] > s[j]; j--) {
      double x = s[j];
      s[j] = s[j - 1];
      s[j - 1] = x;
    }
  assert_close(keel_stress_quantile(r, KEEL_STRESS_WEALTH, 0.05), s[24] + 0.95 * (s[25] - s[24]), 1e-15, 0);
  assert_close(keel_stress_quantile(r, KEEL_STRESS_WEALTH, 0.5), 0.5 * (s[249] + s[250]), 1e-15, 0);
  double es = 0;
  for (int i = 0; i < 25; i++) es += s[i];
  assert_close(keel_stress_shortfall(r, KEEL_STRESS_WEALTH, 0.05), es / 25, 1e-14, 0);
  size_t goal = 0;
  for (size_t p = 0; p < 500; p++) goal += W[p] >= s[300];
  assert_close(keel_stress_prob_goal(r, s[300], 0), goal / 500.0, 0, 0);
  free(s);
  free(ic.irr);
  pthread_mutex_destroy(&ic.mu);
  keel_stress_result_free(r);
  policy_teardown(&f);
}

/* Without flows: CAGR, max drawdown and time under water from the values. */
static void test_drawdown_underwater(void **state) {
  (void)state;
  keel_mc *g = gbm(0.02, 0.3, 5, KEEL_MC_MONTHLY);
  keel_account_spec a;
  keel_subaccount_spec s;
  const double w[1] = {0.7};
  hold_spec(&a, &s, w);
  s.schedule.calendar = KEEL_CAL_QUARTERLY;
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = g;
  o.account = &a;
  o.symbols = SYM1;
  o.npaths = 300;
  o.keep_paths = 1;
  o.band_points = 61;
  keel_stress_result *r = NULL;
  assert_ok(CTX, keel_stress_run(CTX, &o, &r));
  for (size_t p = 0; p < 300; p++) {
    const double *v = keel_stress_path_values(r, p);
    double peak = v[0], mdd = 0;
    size_t uw = 0, best = 0;
    for (size_t t = 1; t <= 60; t++) {
      if (v[t] >= peak)
        peak = v[t], uw = 0;
      else if (++uw > best)
        best = uw;
      mdd = fmax(mdd, 1 - v[t] / peak);
    }
    assert_close(keel_stress_values(r, KEEL_STRESS_MAX_DRAWDOWN)[p], mdd, 1e-12, 1e-15);
    assert_close(keel_stress_values(r, KEEL_STRESS_UNDERWATER)[p], best / 12.0, 0, 1e-15);
    assert_close(keel_stress_values(r, KEEL_STRESS_CAGR)[p], pow(v[60] / v[0], 1 / 5.0) - 1, 1e-12, 1e-15);
    assert_close(keel_stress_values(r, KEEL_STRESS_IRR)[p], pow(v[60] / 1000, 1 / 5.0) - 1, 1e-12, 1e-15);
  }
  keel_stress_result_free(r);
  keel_mc_free(g);
}

/* A -30% crash on step k: seen in every path's prices and in the
 * buy-and-hold value, against the same path without the crash. */
typedef struct crash_check {
  keel_mc *plain;
  size_t k, bad, seen;
  pthread_mutex_t mu;
} crash_check;

static int see_crash(void *ud, uint64_t path, const keel_panel *p, size_t start, const keel_backtest_result *r) {
  crash_check *c = ud;
  const size_t T = keel_mc_nsteps(c->plain);
  double *x = malloc(T * sizeof *x);
  keel_ctx *ctx = NULL;
  keel_ctx_new(NULL, &ctx);
  keel_mc_path(ctx, c->plain, 5, path, x, NULL, NULL);
  keel_ctx_free(ctx);
  double ratio = keel_panel_price(p, start + c->k + 1, 0) / keel_panel_price(p, start + c->k, 0);
  double vr = keel_backtest_values(r)[c->k + 1] / keel_backtest_values(r)[c->k];
  int ok = fabs(ratio / exp(x[c->k]) - 0.7) < 1e-12 && fabs(vr - ratio) < 1e-12;
  pthread_mutex_lock(&c->mu);
  c->bad += !ok;
  c->seen++;
  pthread_mutex_unlock(&c->mu);
  free(x);
  return 0;
}

static void test_crash_every_path(void **state) {
  (void)state;
  keel_mc *g = gbm(0.05, 0.2, 3, KEEL_MC_DAILY), *plain = gbm(0.05, 0.2, 3, KEEL_MC_DAILY);
  keel_scenario *sc = NULL;
  assert_ok(CTX, keel_scenario_new(CTX, 1, SYM1, &sc));
  assert_ok(CTX, keel_scenario_parse(CTX, sc, "crash:X:-0.3@100d"));
  assert_ok(CTX, keel_mc_set_scenario(CTX, g, sc));
  keel_scenario_free(sc);
  keel_account_spec a;
  keel_subaccount_spec s;
  const double w[1] = {1};
  hold_spec(&a, &s, w);
  crash_check c = {.plain = plain, .k = 99};
  pthread_mutex_init(&c.mu, NULL);
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = g;
  o.account = &a;
  o.symbols = SYM1;
  o.npaths = 64;
  o.seed = 5;
  o.threads = 2;
  o.on_path = see_crash;
  o.path_ud = &c;
  keel_stress_result *r = NULL;
  assert_ok(CTX, keel_stress_run(CTX, &o, &r));
  assert_int_equal(c.seen, 64);
  assert_int_equal(c.bad, 0);
  keel_stress_result_free(r);
  pthread_mutex_destroy(&c.mu);
  keel_mc_free(g);
  keel_mc_free(plain);
}

/* A strategy on each worker (make_account): equal weights over the history
 * prefix; identical on 1 and 2 threads. Without make_account, 2 threads are
 * refused. */
typedef struct strat_acct {
  keel_strategy *st;
  keel_subaccount_spec s;
  keel_account_spec a;
} strat_acct;

static keel_status make_acct(void *ud, keel_ctx *ctx, const keel_panel *panel, const keel_account_spec **spec,
                             void **handle) {
  (void)ud, (void)panel;
  strat_acct *h = calloc(1, sizeof *h);
  keel_builtin_params bp;
  keel_builtin_params_default(&bp);
  bp.lookback = 24;
  keel_status st = keel_strategy_builtin(ctx, KEEL_STRAT_INVERSE_VOL, &bp, &h->st);
  if (st) {
    free(h);
    return st;
  }
  keel_subaccount_spec_default(&h->s);
  h->s.strategy = h->st;
  h->s.schedule.calendar = KEEL_CAL_QUARTERLY;
  h->s.costs.buy_bps = h->s.costs.sell_bps = 5;
  h->s.costs.use_lots = 0;
  keel_account_spec_default(&h->a);
  h->a.nsubs = 1;
  h->a.subs = &h->s;
  *spec = &h->a;
  *handle = h;
  return KEEL_OK;
}

static void free_acct(void *ud, void *handle) {
  (void)ud;
  strat_acct *h = handle;
  keel_strategy_free(h->st);
  free(h);
}

static void test_strategy_workers(void **state) {
  (void)state;
  policy_fix f;
  policy_setup(&f, KEEL_MC_BOOTSTRAP, NULL, 5);
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = f.g;
  o.history = f.hist;
  o.history_rows = 36;
  o.make_account = make_acct;
  o.free_account = free_acct;
  o.npaths = 64;
  o.keep_paths = 1;
  keel_stress_result *a = NULL, *b = NULL;
  o.threads = 1;
  assert_ok(CTX, keel_stress_run(CTX, &o, &a));
  o.threads = 2;
  assert_ok(CTX, keel_stress_run(CTX, &o, &b));
  same_results(a, b);
  /* the strategy invested (inverse-vol weights over 24 months of history) */
  assert_true(keel_stress_quantile(a, KEEL_STRESS_COSTS, 0) > 0);
  keel_stress_result_free(a);
  keel_stress_result_free(b);
  /* a shared strategy on 2 threads is refused */
  strat_acct *h = NULL;
  const keel_account_spec *spec = NULL;
  assert_ok(CTX, make_acct(NULL, CTX, f.hist, &spec, (void **)&h));
  o.make_account = NULL;
  o.account = spec;
  assert_status(CTX, keel_stress_run(CTX, &o, &a), KEEL_EINVAL);
  assert_errmsg(CTX, "make_account");
  assert_null(a);
  o.threads = 1;
  assert_ok(CTX, keel_stress_run(CTX, &o, &a));
  keel_stress_result_free(a);
  free_acct(NULL, h);
  policy_teardown(&f);
}

static void test_bad_options(void **state) {
  (void)state;
  keel_mc *g = gbm(0.05, 0.2, 1, KEEL_MC_MONTHLY);
  keel_account_spec a;
  keel_subaccount_spec s;
  const double w[1] = {1}, bad_w[1] = {1.5};
  hold_spec(&a, &s, w);
  keel_stress_options o;
  keel_stress_options_default(&o);
  keel_stress_result *r = (keel_stress_result *)1;
  assert_status(CTX, keel_stress_run(CTX, &o, &r), KEEL_EINVAL);
  assert_null(r);
  o.gen = g;
  o.account = &a;
  assert_status(CTX, keel_stress_run(CTX, &o, &r), KEEL_EINVAL); /* no symbols */
  o.symbols = SYM1;
  o.goal = -1;
  assert_status(CTX, keel_stress_run(CTX, &o, &r), KEEL_EINVAL);
  o.goal = 0;
  o.es_level = 0;
  assert_status(CTX, keel_stress_run(CTX, &o, &r), KEEL_EINVAL);
  o.es_level = 0.05;
  o.band_points = 100;
  assert_status(CTX, keel_stress_run(CTX, &o, &r), KEEL_EINVAL);
  o.band_points = 0;
  s.weights = bad_w;
  assert_status(CTX, keel_stress_run(CTX, &o, &r), KEEL_EINVAL);
  assert_errmsg(CTX, "sum to");
  s.weights = w;
  /* prices that overflow: a volatility of 20000% a year */
  keel_mc *wild = gbm(0, 200, 30, KEEL_MC_MONTHLY);
  o.gen = wild;
  o.npaths = 50;
  assert_status(CTX, keel_stress_run(CTX, &o, &r), KEEL_ENUMERIC);
  assert_errmsg(CTX, "path");
  keel_mc_free(wild);
  keel_mc_free(g);
}

/* A stored stress run reads back in SQL: summary, statistics, fan chart. */
static void test_store(void **state) {
  (void)state;
  keel_mc *g = gbm(0.05, 0.2, 2, KEEL_MC_MONTHLY);
  keel_account_spec a;
  keel_subaccount_spec s;
  const double w[1] = {1};
  hold_spec(&a, &s, w);
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = g;
  o.account = &a;
  o.symbols = SYM1;
  o.npaths = 400;
  o.goal = 1100;
  keel_stress_result *r = NULL;
  assert_ok(CTX, keel_stress_run(CTX, &o, &r));
  const char *path = keel_test_tmp_path("stress.db");
  keel_store *st = NULL;
  assert_ok(CTX, keel_store_open(CTX, path, &st));
  keel_stress_meta m = {.strategy = "fixed_weights", .params_json = "{\"paths\": 400}", .generator = "normal",
                        .scenario = "crash:X:-0.1@1y"};
  int64_t id = 0;
  assert_ok(CTX, keel_stress_save(CTX, st, r, &m, &id));
  keel_store_close(st);
  assert_true(id > 0);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM runs WHERE kind = 'stress' AND status = 'ok'"), 1);
  assert_int_equal(keel_test_sql_int(path, "SELECT npaths FROM stress_runs"), 400);
  assert_close(keel_test_sql_double(path, "SELECT p_goal FROM stress_runs"), keel_stress_prob_goal(r, 1100, 0), 0, 0);
  assert_close(keel_test_sql_double(path, "SELECT value FROM stress_stats WHERE stat = 'wealth' AND measure = 'p50'"),
               keel_stress_quantile(r, KEEL_STRESS_WEALTH, 0.5), 0, 0);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM stress_bands"), 25);
  assert_close(keel_test_sql_double(path, "SELECT p95 FROM stress_bands WHERE step = 24"),
               keel_stress_bands(r)[24 * 5 + 4], 0, 0);
  keel_stress_result_free(r);
  keel_mc_free(g);
}

static keel_status oom_body(keel_ctx *ctx, void *arg) {
  (void)arg;
  double mu = 0.05, cov = 0.04;
  keel_mc_params p;
  keel_mc_params_default(&p);
  p.nassets = 1;
  p.freq = KEEL_MC_MONTHLY;
  p.years = 2;
  p.mu = &mu;
  p.cov = &cov;
  keel_mc *g = NULL;
  keel_status st = keel_mc_new(ctx, &p, &g);
  keel_account_spec a;
  keel_subaccount_spec s;
  const double w[1] = {1};
  keel_subaccount_spec_default(&s);
  s.weights = w;
  keel_account_spec_default(&a);
  a.nsubs = 1;
  a.subs = &s;
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = g;
  o.account = &a;
  o.symbols = SYM1;
  o.npaths = 20;
  o.threads = 1;
  keel_stress_result *r = NULL;
  if (!st) st = keel_stress_run(ctx, &o, &r);
  keel_stress_result_free(r);
  keel_mc_free(g);
  return st;
}

static void test_oom(void **state) {
  (void)state;
  keel_test_oom_loop(oom_body, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gbm_lognormal),    cmocka_unit_test(test_conservation),
      cmocka_unit_test(test_threads_bitwise),  cmocka_unit_test(test_statistics), cmocka_unit_test(test_progress),
      cmocka_unit_test(test_drawdown_underwater), cmocka_unit_test(test_crash_every_path),
      cmocka_unit_test(test_strategy_workers), cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_store),            cmocka_unit_test(test_oom),
      cmocka_unit_test(test_quiet_rows_bitwise), cmocka_unit_test(test_streamed_accuracy), cmocka_unit_test(test_fan_counts_past_16_bits),
      cmocka_unit_test(test_memory_bounded),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
