/* keel — the Monte Carlo stress runner (keel/stress.h, docs/stress.md).
 *
 * The calling thread builds one panel template (history prefix, start row,
 * simulated rows), then one worker per thread, each with its own context,
 * copy of the panel, account and reusable engine (backtest/
 * engine_internal.h). Workers take blocks of paths; for path p a worker
 * draws the generator's stream (seed, p), writes the prices into its
 * panel in place, runs the engine and keeps the path's statistics at
 * index p only when the caller keeps the paths, and otherwise streams them
 * into its own histograms (integer counts) and exact sums (a long
 * accumulator), whose merge does not depend on who counted what. The
 * calling thread reports progress (every 100 ms: workers wake it only to
 * stop or when they end), then merges. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backtest/engine_internal.h"
#include "core/internal.h"
#include "keel/store.h"
#include "keel/stress.h"

#define BLOCK 8 /* paths a worker takes at a time */

/* ---- log-linear buckets --------------------------------------------------
 *
 * A double's bucket is its sign, exponent and the top SUB bits of its
 * mantissa: 256 buckets an octave, each [a, a (1 + 2^-8)) or narrower
 * relative to its lower end, so any value in a bucket is within 2^-8
 * (0.39%) of any other. No logarithm: the bucket is read from the bits.
 *
 * Statistics: magnitudes from 2^-32 to 2^64 of both signs (|x| < 2^-32
 * counts as 0, |x| >= 2^64 at the top bucket). The fan chart: positive
 * values from 2^-17 to 2^17 times the reference (the first and the last
 * bucket take what lies outside, a value <= 0 the first). */
#define SUB 8
#define SK_EMIN (1023 - 32)
#define SK_EMAX (1023 + 64)
#define SK_M ((size_t)(SK_EMAX - SK_EMIN) << SUB) /* buckets of each sign */
#define SK_NB (2 * SK_M + 1)                      /* negative, zero, positive */
#define FAN_OCT 17
#define NBINS ((size_t)(2 * FAN_OCT) << SUB) /* fan-chart buckets per point: 8,704 */
#define FANQ 32 /* paths whose fan-chart buckets are counted together */

/* The index among the magnitudes' buckets of |x| (exponent and top bits). */
static inline long mag_key(double x) {
  uint64_t u;
  memcpy(&u, &x, sizeof u);
  return (long)((u & 0x7fffffffffffffffULL) >> (52 - SUB));
}

/* The statistics' bucket of x (not NaN). */
static inline size_t sk_bucket(double x) {
  long k = mag_key(x) - ((long)SK_EMIN << SUB);
  if (k < 0) return SK_M;
  if (k >= (long)SK_M) k = (long)SK_M - 1;
  return x < 0 ? SK_M - 1 - (size_t)k : SK_M + 1 + (size_t)k;
}

/* The values [lo, hi) of the magnitudes' bucket key. */
static void mag_bounds(long key, double *lo, double *hi) {
  int e = (int)(key >> SUB) - 1023;
  double m = (double)(key & ((1 << SUB) - 1));
  *lo = ldexp(1 + m / (1 << SUB), e);
  *hi = ldexp(1 + (m + 1) / (1 << SUB), e);
}

/* The values [lo, hi] a statistics bucket holds, in increasing order. */
static void sk_bounds(size_t b, double *lo, double *hi) {
  if (b == SK_M) {
    *lo = *hi = 0;
    return;
  }
  double a, c;
  long k = (long)(b > SK_M ? b - SK_M - 1 : SK_M - 1 - b) + ((long)SK_EMIN << SUB);
  mag_bounds(k, &a, &c);
  if (b > SK_M)
    *lo = a, *hi = c;
  else
    *lo = -c, *hi = -a;
}

/* ---- exact sums ------------------------------------------------------------
 *
 * A long accumulator: the sum of any doubles exactly, as 32-bit limbs
 * from 2^-1074 in 64-bit words (room for 2^29 adds between carries), so
 * sums of the same values in any order and any grouping are the same
 * number, rounded once at the end. */
#define XS_L 70
typedef struct xsum {
  int64_t l[XS_L];
  uint32_t adds;
  uint32_t pinf, ninf, nan;
} xsum;

static void xs_norm(xsum *a) {
  for (size_t i = 0; i + 1 < XS_L; i++) {
    int64_t low = (int64_t)((uint64_t)a->l[i] & 0xffffffffULL);
    a->l[i + 1] += (a->l[i] - low) / 4294967296LL;
    a->l[i] = low;
  }
  a->adds = 0;
}

static void xs_add(xsum *a, double x) {
  if (!isfinite(x)) {
    if (isnan(x))
      a->nan++;
    else if (x > 0)
      a->pinf++;
    else
      a->ninf++;
    return;
  }
  uint64_t u;
  memcpy(&u, &x, sizeof u);
  const unsigned E = (unsigned)(u >> 52) & 0x7ff;
  const uint64_t mant = (u & 0xfffffffffffffULL) | (E ? 1ULL << 52 : 0);
  const unsigned p = E ? E - 1 : 0; /* the bit of mant's lowest, from 2^-1074 */
  const unsigned i = p >> 5, sh = p & 31;
  const uint64_t lo = (mant & 0xffffffffULL) << sh, hi = (mant >> 32) << sh;
  const int64_t c0 = (int64_t)(lo & 0xffffffffULL), c1 = (int64_t)((lo >> 32) + (hi & 0xffffffffULL)),
                c2 = (int64_t)(hi >> 32);
  if (u >> 63) {
    a->l[i] -= c0, a->l[i + 1] -= c1, a->l[i + 2] -= c2;
  } else {
    a->l[i] += c0, a->l[i + 1] += c1, a->l[i + 2] += c2;
  }
  if (++a->adds == 1u << 28) xs_norm(a);
}

static void xs_merge(xsum *a, xsum *b) {
  xs_norm(a);
  xs_norm(b);
  for (size_t i = 0; i < XS_L; i++) a->l[i] += b->l[i];
  a->pinf += b->pinf, a->ninf += b->ninf, a->nan += b->nan;
  xs_norm(a);
}

/* The sum, rounded (a function of the exact sum only). */
static double xs_value(xsum *a) {
  if (a->nan || (a->pinf && a->ninf)) return NAN;
  if (a->pinf) return INFINITY;
  if (a->ninf) return -INFINITY;
  xs_norm(a);
  /* a negative sum carries -1 into the top limb: read its magnitude */
  xsum m = *a;
  const int neg = m.l[XS_L - 1] < 0;
  if (neg) {
    for (size_t i = 0; i < XS_L; i++) m.l[i] = -m.l[i];
    xs_norm(&m);
  }
  double d = 0;
  for (size_t i = XS_L; i-- > 0;)
    if (m.l[i]) d += ldexp((double)m.l[i], 32 * (int)i - 1074);
  return neg ? -d : d;
}

static const double BAND_P[KEEL_STRESS_NBANDS] = {0.05, 0.25, 0.5, 0.75, 0.95};
const double *keel_stress_band_probs(void) { return BAND_P; }

static const char *const STAT_NAMES[KEEL_STRESS_NSTATS] = {
    "wealth", "cagr", "twr", "max_drawdown", "underwater_years", "irr", "loss", "costs", "peak_wealth"};

const char *keel_stress_stat_name(keel_stress_stat s) {
  return (unsigned)s < KEEL_STRESS_NSTATS ? STAT_NAMES[s] : "unknown";
}

void keel_stress_options_default(keel_stress_options *o) {
  memset(o, 0, sizeof *o);
  o->start_date = KEEL_DATE_NONE;
  o->npaths = 1000;
  o->loss_threshold = 0.2;
  o->es_level = 0.05;
}

struct keel_stress_result {
  keeli_heap heap;
  size_t npaths, nsteps, npoints;
  double years, spy, capital, ref, mean_in, mean_out;
  int has_flows;
  /* with keep_paths: every path's values, and sorted copies */
  double *vals;   /* KEEL_STRESS_NSTATS x npaths, or NULL */
  double *sorted; /* the same, each row sorted with NaNs left out */
  size_t nvalid[KEEL_STRESS_NSTATS];
  double mean[KEEL_STRESS_NSTATS];
  /* otherwise: each statistic's bucket counts, sk[s * SK_NB + b] (fewer
   * than 2^32 paths), and the occupied buckets [sk_lo[s], sk_hi[s]) */
  uint32_t *sk;
  size_t sk_lo[KEEL_STRESS_NSTATS], sk_hi[KEEL_STRESS_NSTATS];
  size_t n_goal, n_goal_any, n_loss; /* paths counted at the run's goal and loss threshold */
  size_t *band_rows;
  keel_date *band_dates;
  double *bands; /* npoints x 5 */
  double *paths; /* npaths x npoints, or NULL */
  uint64_t seed;
  double goal, loss_x, es_level;
};

void keel_stress_result_free(keel_stress_result *r) {
  if (!r) return;
  keeli_heap h = r->heap;
  void *b[] = {r->vals, r->sorted, r->band_rows, r->band_dates, r->bands, r->paths, r->sk};
  for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) keeli_heap_free(&h, b[i]);
  keeli_heap_free(&h, r);
}

/* ---- the run's shared state --------------------------------------------- */

typedef struct stress stress;

typedef struct worker {
  stress *S;
  pthread_t tid;
  keel_ctx *ctx;
  keel_panel *panel;
  keeli_engine *eng;
  keel_account_spec local;
  void *handle;
  int has_handle;
  double *block, *work, *level; /* block: the generator's rows of one block of steps */
  uint16_t *hist;   /* npoints x NBINS: the counts since the last spill (16 bits halve the table's cache misses) */
  uint32_t *hist32; /* npoints x NBINS: the counts spilled, or NULL when the worker cannot count 2^16 paths */
  size_t hist_paths; /* paths counted into hist since the last spill */
  uint32_t *fanb; /* FANQ x npoints: the buckets of the paths not counted yet */
  size_t nfan;    /* paths in fanb */
  uint32_t *fanlo, *fanhi; /* npoints: the buckets counted lie in [lo, hi] */
  uint32_t *fanbmin, *fanbmax; /* npoints: the least and greatest bucket in fanb */
  uint32_t *sk;   /* KEEL_STRESS_NSTATS x SK_NB, or NULL with keep_paths */
  uint32_t sklo[KEEL_STRESS_NSTATS], skhi[KEEL_STRESS_NSTATS]; /* sk's counts lie in [lo, hi] */
  xsum sum[KEEL_STRESS_NSTATS + 2]; /* the statistics, then money in and out */
  size_t nvalid[KEEL_STRESS_NSTATS], n_goal, n_goal_any, n_loss;
  keel_status st;
  uint64_t fail_path;
  char msg[1024];
} worker;

struct stress {
  const keel_stress_options *o;
  const keel_mc *g;
  keel_stress_result *res;
  size_t n, T, P, start, nrows;
  const unsigned char *halted;
  double *cost_run, *spread_run; /* per run row (T + 1) */
  double *p0;                    /* start prices */
  long fan_base;                 /* the magnitudes' bucket of the fan chart's first */
  int every_row;                 /* the fan chart's points are rows 0 .. T */
  /* the pool */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t next, done;
  int stop, alive;
};

/* ---- one path's statistics -------------------------------------------------- */

/* The money-weighted annual return: the rate r whose discount factor
 * q = (1 + r)^(-1 / spy) per step makes sum_t CF_t q^t = 0 (a polynomial,
 * evaluated by Horner). Safeguarded Newton inside q in [e^(-10/spy),
 * e^(10/spy)] (r from -99.995% to e^10 - 1); NaN without a sign change. */
static double irr_of(const double *cf, size_t n, double spy, double guess) {
  double lo = exp(-10 / spy), hi = exp(10 / spy);
  double flo = 0, fhi = 0;
  for (size_t t = n; t-- > 0;) flo = flo * lo + cf[t];
  for (size_t t = n; t-- > 0;) fhi = fhi * hi + cf[t];
  if (!(flo * fhi < 0)) return NAN;
  double q = isfinite(guess) && guess > -1 ? pow(1 + guess, -1 / spy) : 1;
  if (!(q > lo && q < hi)) q = 0.5 * (lo + hi);
  for (int it = 0; it < 100; it++) {
    double f = 0, d = 0;
    for (size_t t = n; t-- > 0;) {
      d = d * q + f;
      f = f * q + cf[t];
    }
    if (f == 0) break;
    if ((f < 0) == (flo < 0))
      lo = q, flo = f;
    else
      hi = q, fhi = f;
    double q1 = d != 0 ? q - f / d : NAN;
    if (!(q1 > lo && q1 < hi)) q1 = 0.5 * (lo + hi);
    if (fabs(q1 - q) <= 1e-15 * q) {
      q = q1;
      break;
    }
    q = q1;
  }
  return pow(q, -spy) - 1;
}

/* ---- counts zeroed where they are used ------------------------------------
 *
 * The tables of counts (fan chart and statistics) are allocated without
 * clearing: clearing them (or the page faults of fresh memory) costs more
 * than the counting of a run of a thousand paths, and a run touches only
 * the buckets around its values. A row's counts are valid in [lo, hi]
 * (none while lo > hi); widening the range to [a, b] zeroes the buckets it
 * adds. Anything reading a row reads only its range. */
typedef struct gaps {
  uint32_t a0, a1, b0, b1; /* [a0, a1) and [b0, b1): the buckets to zero */
} gaps;

static inline gaps widen(uint32_t *lo, uint32_t *hi, uint32_t a, uint32_t b) {
  gaps g = {0, 0, 0, 0};
  if (*lo > *hi) {
    g.a0 = a, g.a1 = b + 1;
    *lo = a, *hi = b;
    return g;
  }
  if (a < *lo) g.a0 = a, g.a1 = *lo, *lo = a;
  if (b > *hi) g.b0 = *hi + 1, g.b1 = b + 1, *hi = b;
  return g;
}
#define ZERO_GAPS(row, g)                                                                   \
  do {                                                                                      \
    memset((row) + (g).a0, 0, ((g).a1 - (g).a0) * sizeof *(row));                          \
    memset((row) + (g).b0, 0, ((g).b1 - (g).b0) * sizeof *(row));                          \
  } while (0)

/* The buckets of the paths in fanb into the counts, point by point: a
 * point's buckets of FANQ paths lie close together in its row of counts,
 * so they share cache lines (counting each path's points as it ends would
 * touch a new line of a 12 MB table for each point). */
static void fan_spill(stress *S, worker *w) {
  for (size_t i = 0; i < S->P; i++) {
    uint16_t *h = w->hist + i * NBINS;
    uint32_t *g = w->hist32 + i * NBINS;
    for (size_t b = w->fanlo[i]; b <= w->fanhi[i]; b++) {
      g[b] += h[b];
      h[b] = 0;
    }
  }
  w->hist_paths = 0;
}

static void fan_flush(stress *S, worker *w) {
  const size_t P = S->P, m = w->nfan;
  /* the 16-bit counts never hold more than UINT16_MAX paths: spilled into
   * the 32-bit ones first (a worker that may count that many has them) */
  if (w->hist32 && w->hist_paths + m > UINT16_MAX) fan_spill(S, w);
  const uint32_t *restrict fb = w->fanb;
  for (size_t i = 0; i < P; i++) {
    uint16_t *restrict h = w->hist + i * NBINS;
    const uint32_t a = w->fanbmin[i], b = w->fanbmax[i];
    w->fanbmin[i] = (uint32_t)NBINS - 1, w->fanbmax[i] = 0;
    if (m && (a < w->fanlo[i] || b > w->fanhi[i])) {
      const gaps g = widen(&w->fanlo[i], &w->fanhi[i], a, b);
      ZERO_GAPS(h, g);
      if (w->hist32) ZERO_GAPS(w->hist32 + i * NBINS, g);
    }
    for (size_t k = 0; k < m; k++) h[fb[k * P + i]]++;
  }
  w->hist_paths += m;
  w->nfan = 0;
}

/* The fan chart's bucket of each point's value v[rows[i]] (v[i] when rows
 * is NULL, a loop that vectorises): its magnitude's bucket less base,
 * within [0, NBINS), 0 for a value not above 0; bmin and bmax keep each
 * point's least and greatest bucket since the last count. */
static inline uint32_t fan_bucket(double x, long base) {
  long b = x > 0 ? mag_key(x) - base : 0;
  return (uint32_t)(b < 0 ? 0 : b >= (long)NBINS ? (long)NBINS - 1 : b);
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(KEEL_NO_CLONES)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void fan_buckets(size_t P, const double *restrict v, const size_t *restrict rows, long base,
                        uint32_t *restrict out, uint32_t *restrict bmin, uint32_t *restrict bmax) {
#define PUT(i, b) (out[i] = (b), bmin[i] = (b) < bmin[i] ? (b) : bmin[i], bmax[i] = (b) > bmax[i] ? (b) : bmax[i])
  if (!rows)
    for (size_t i = 0; i < P; i++) {
      const uint32_t b = fan_bucket(v[i], base);
      PUT(i, b);
    }
  else
    for (size_t i = 0; i < P; i++) {
      const uint32_t b = fan_bucket(v[rows[i]], base);
      PUT(i, b);
    }
#undef PUT
}

/* q[t] = (v[t] - f[t]) / v[t - 1] where v[t - 1] > 0, else 1, t = 1 .. T,
 * and whether any f[t], t = 1 .. T, is not 0: loops the compiler
 * vectorises. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(KEEL_NO_CLONES)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static int step_ratios(size_t T, const double *restrict v, const double *restrict f, double *restrict q) {
  for (size_t t = 1; t <= T; t++) {
    const double d = (v[t] - f[t]) / v[t - 1];
    q[t] = v[t - 1] > 0 ? d : 1.0;
  }
  int any = 0;
  for (size_t t = 1; t <= T; t++) any |= f[t] != 0;
  return any;
}

static void path_stats(stress *S, worker *w, uint64_t p, const keel_backtest_result *r) {
  keel_stress_result *R = S->res;
  const size_t T = S->T, N = R->npaths;
  const double *v = keel_backtest_values(r), *f = keel_backtest_flows(r), *c = keel_backtest_costs(r);
  double idx = 1, peak = 1, mdd = 0, costs = c[0], vmax = v[0];
  double in = R->capital + (f[0] > 0 ? f[0] : 0), out = f[0] < 0 ? -f[0] : 0;
  size_t uw = 0, uwmax = 0;
  int flows = f[0] != 0;
  /* the steps' ratios first, in a loop of their own (vectorised; times
   * exactly 1 where the value before is not above 0): the loop below then
   * waits on no division when it mispredicts a new peak */
  double *restrict q = w->work; /* T + 1 doubles, free until cf below */
  const int later_flows = step_ratios(T, v, f, q);
  /* money in and out in their own loop, where there are flows (each sum in
   * the order of the rows, as before) */
  if (later_flows) {
    flows = 1;
    for (size_t t = 1; t <= T; t++) {
      if (f[t] > 0) in += f[t];
      if (f[t] < 0) out -= f[t];
    }
  }
  for (size_t t = 1; t <= T; t++) {
    idx *= q[t];
    if (idx >= peak) {
      peak = idx;
      uw = 0;
    } else {
      if (++uw > uwmax) uwmax = uw;
      /* the drawdown 1 - idx / peak only where it may be a new maximum:
       * with mdd < 1, idx >= peak (1 - mdd) (1 + 2^-40) puts idx / peak
       * above 1 - mdd by far more than the roundings, so 1 - idx / peak
       * rounds to at most mdd (the division skipped is most rows' second) */
      if (peak > 0 && !(mdd < 1 && idx >= peak * (1 - mdd) * (1 + 0x1p-40))) {
        const double dd = 1 - idx / peak;
        if (dd > mdd) mdd = dd;
      }
    }
    costs += c[t];
    vmax = v[t] > vmax ? v[t] : vmax; /* (a select: new maxima come at random steps) */
  }
  const double W = v[T], years = R->years;
  double cagr = idx > 0 ? pow(idx, 1 / years) - 1 : -1, irr;
  if (!flows) {
    irr = R->capital > 0 && W > 0 ? pow(W / R->capital, 1 / years) - 1 : W <= 0 && R->capital > 0 ? -1 : NAN;
  } else {
    /* the investor's cash flows: money in is negative, the end value positive */
    double *cf = w->work; /* T + 1 doubles */
    cf[0] = -(R->capital + f[0]);
    for (size_t t = 1; t <= T; t++) cf[t] = -f[t];
    cf[T] += W;
    irr = irr_of(cf, T + 1, S->res->spy, cagr);
  }
  double st[KEEL_STRESS_NSTATS];
  st[KEEL_STRESS_WEALTH] = W;
  st[KEEL_STRESS_CAGR] = cagr;
  st[KEEL_STRESS_TWR] = idx - 1;
  st[KEEL_STRESS_MAX_DRAWDOWN] = mdd;
  st[KEEL_STRESS_UNDERWATER] = (double)uwmax / R->spy;
  st[KEEL_STRESS_IRR] = irr;
  st[KEEL_STRESS_LOSS] = in > 0 ? 1 - (W + out) / in : NAN;
  st[KEEL_STRESS_COSTS] = costs;
  st[KEEL_STRESS_PEAK_WEALTH] = vmax;
  for (int s = 0; s < KEEL_STRESS_NSTATS; s++) {
    const double x = st[s];
    if (R->vals) R->vals[(size_t)s * N + p] = x;
    if (isnan(x)) continue;
    w->nvalid[s]++;
    xs_add(&w->sum[s], x);
    if (w->sk) {
      uint32_t *row = w->sk + (size_t)s * SK_NB;
      const uint32_t b = (uint32_t)sk_bucket(x);
      if (b < w->sklo[s] || b > w->skhi[s]) {
        const gaps g = widen(&w->sklo[s], &w->skhi[s], b, b);
        ZERO_GAPS(row, g);
      }
      row[b]++;
    }
  }
  xs_add(&w->sum[KEEL_STRESS_NSTATS], in);
  xs_add(&w->sum[KEEL_STRESS_NSTATS + 1], out);
  w->n_goal += W >= R->goal;
  w->n_goal_any += vmax >= R->goal;
  w->n_loss += st[KEEL_STRESS_LOSS] > R->loss_x;
  /* the fan chart: every point's bucket now, the counts every FANQ paths
   * (fan_flush) */
  const size_t P = S->P;
  fan_buckets(P, v, S->every_row ? NULL : R->band_rows, S->fan_base, w->fanb + w->nfan * P, w->fanbmin, w->fanbmax);
  if (++w->nfan == FANQ) fan_flush(S, w);
  if (R->paths)
    for (size_t i = 0; i < P; i++) R->paths[p * P + i] = v[R->band_rows[i]];
}

/* ---- one path ------------------------------------------------------------ */

/* Rows k < T of px: lv *= gr row k (lv ends at the last prices). Eight
 * columns at a time in registers, then four, then one: each column's
 * products are the same sequence either way (the same bits), but a
 * column's running level no longer goes through memory and the columns'
 * multiply chains overlap. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(KEEL_NO_CLONES)
__attribute__((target_clones("avx2", "default")))
#endif
static void grow_prices(size_t T, size_t n, const double *restrict gr, double *restrict lv, double *restrict px) {
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    double a[8];
    memcpy(a, lv + j, sizeof a);
    for (size_t k = 0; k < T; k++) {
      const double *restrict g = gr + k * n + j;
      double *restrict row = px + k * n + j;
      for (int c = 0; c < 8; c++) row[c] = a[c] *= g[c];
    }
    memcpy(lv + j, a, sizeof a);
  }
  for (; j + 4 <= n; j += 4) {
    double a[4];
    memcpy(a, lv + j, sizeof a);
    for (size_t k = 0; k < T; k++)
      for (int c = 0; c < 4; c++) px[k * n + j + (size_t)c] = a[c] *= gr[k * n + j + (size_t)c];
    memcpy(lv + j, a, sizeof a);
  }
  for (; j + 2 <= n; j += 2) {
    double a0 = lv[j], a1 = lv[j + 1];
    for (size_t k = 0; k < T; k++) {
      px[k * n + j] = a0 *= gr[k * n + j];
      px[k * n + j + 1] = a1 *= gr[k * n + j + 1];
    }
    lv[j] = a0, lv[j + 1] = a1;
  }
  for (; j < n; j++) {
    double a0 = lv[j];
    for (size_t k = 0; k < T; k++) px[k * n + j] = a0 *= gr[k * n + j];
    lv[j] = a0;
  }
}

/* One block of the generator's steps into the panel: the growth factors
 * exp(log return), then the prices (the running level times each row's
 * factors; NaN where trading is halted). */
typedef struct grow_ud {
  const stress *S;
  double *px, *lv;
} grow_ud;

static void grow_block(void *ud, size_t t0, size_t nb, double *rows) {
  const grow_ud *u = ud;
  const size_t n = u->S->n;
  keeli_exp_array(nb * n, rows, rows);
  double *px = u->px + t0 * n, *lv = u->lv;
  if (u->S->halted) {
    const unsigned char *h = u->S->halted + t0 * n;
    for (size_t k = 0; k < nb; k++)
      for (size_t j = 0; j < n; j++) {
        lv[j] *= rows[k * n + j];
        px[k * n + j] = h[k * n + j] ? NAN : lv[j];
      }
  } else {
    grow_prices(nb, n, rows, lv, px);
  }
}

static keel_status run_path(stress *S, worker *w, uint64_t p) {
  const size_t n = S->n;
  double *px = keeli_panel_prices_mut(w->panel) + (S->start + 1) * n, *lv = w->level;
  memcpy(lv, S->p0, n * sizeof *lv);
  /* the generator's blocks of steps go straight into the panel, so the
   * path's log returns are never all in memory at once */
  grow_ud u = {S, px, lv};
  keel_status st = keeli_mc_path_blocks(w->ctx, S->g, S->o->seed, p, NULL, w->block, w->work, NULL,
                                        KEELI_SIMD_BEST, grow_block, &u);
  if (st) return st;
  for (size_t j = 0; j < n; j++)
    if (!(isfinite(lv[j]) && lv[j] > 0))
      return keeli_error(w->ctx, KEEL_ENUMERIC, "stress: path %llu: the price of %s left the range of doubles",
                         (unsigned long long)p, keel_panel_symbol(w->panel, j));
  if ((st = keeli_engine_run(w->eng, w->ctx))) {
    char msg[768];
    snprintf(msg, sizeof msg, "%s", keel_errmsg(w->ctx));
    return keeli_error(w->ctx, st, "stress: path %llu: %s", (unsigned long long)p, msg);
  }
  const keel_backtest_result *r = keeli_engine_result(w->eng);
  path_stats(S, w, p, r);
  if (S->o->on_path && S->o->on_path(S->o->path_ud, p, w->panel, S->start, r))
    return keeli_error(w->ctx, KEEL_EINVAL, "stress: stopped by the path callback at path %llu", (unsigned long long)p);
  return KEEL_OK;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  stress *S = w->S;
  const size_t N = S->res->npaths;
  for (;;) {
    pthread_mutex_lock(&S->mu);
    if (S->stop || S->next >= N) {
      pthread_mutex_unlock(&S->mu);
      break;
    }
    size_t a = S->next, b = a + BLOCK < N ? a + BLOCK : N;
    S->next = b;
    pthread_mutex_unlock(&S->mu);
    keel_status st = KEEL_OK;
    size_t p = a;
    for (; p < b && !st; p++) st = run_path(S, w, p);
    pthread_mutex_lock(&S->mu);
    S->done += (p - a) - (st != KEEL_OK);
    if (st) {
      w->st = st;
      w->fail_path = p - 1;
      snprintf(w->msg, sizeof w->msg, "%s", keel_errmsg(w->ctx));
      S->stop = 1;
      pthread_cond_broadcast(&S->cv);
    }
    /* no wake-up per block: the calling thread reads done on its own
     * clock, and a broadcast here would wake it (a context switch on a
     * busy core) every few hundred microseconds */
    pthread_mutex_unlock(&S->mu);
    if (st) break;
  }
  fan_flush(S, w);
  pthread_mutex_lock(&S->mu);
  S->alive--;
  pthread_cond_broadcast(&S->cv);
  pthread_mutex_unlock(&S->mu);
  return NULL;
}

/* ---- set-up -------------------------------------------------------------- */

/* The dates after d0 of T steps: weekdays (daily) or month ends (monthly). */
static void step_dates(keel_mc_freq freq, keel_date d0, size_t T, keel_date *out) {
  keel_date d = d0;
  for (size_t k = 0; k < T; k++) {
    if (freq == KEEL_MC_DAILY) {
      do d++;
      while (keel_date_weekday(d) >= 5);
    } else {
      int y, m, dd;
      keel_date_to_ymd(d, &y, &m, &dd);
      /* the last day of the month after d's (d is a month end, or the start) */
      int ny = m == 12 ? y + 1 : y, nm = m == 12 ? 1 : m + 1;
      int ay = nm == 12 ? ny + 1 : ny, am = nm == 12 ? 1 : nm + 1;
      keel_date first;
      keel_date_from_ymd(ay, am, 1, &first);
      d = first - 1;
    }
    out[k] = d;
  }
}

static void worker_free(stress *S, worker *w) {
  keeli_engine_free(w->eng);
  if (w->has_handle && S->o->free_account) S->o->free_account(S->o->account_ud, w->handle);
  keel_panel_free(w->panel);
  if (w->ctx) {
    keeli_free(w->ctx, w->block);
    keeli_free(w->ctx, w->work);
    keeli_free(w->ctx, w->level);
    keeli_free(w->ctx, w->hist);
    keeli_free(w->ctx, w->hist32);
    keeli_free(w->ctx, w->fanb);
    keeli_free(w->ctx, w->fanlo);
    keeli_free(w->ctx, w->fanhi);
    keeli_free(w->ctx, w->fanbmin);
    keeli_free(w->ctx, w->fanbmax);
    keeli_free(w->ctx, w->sk);
  }
  keel_ctx_free(w->ctx);
}

static keel_status worker_setup(keel_ctx *ctx, stress *S, worker *w, const keel_date *dates, const char *const *syms,
                                const double *px0) {
  const keel_stress_options *o = S->o;
  keel_config cfg = *keel_ctx_config(ctx);
  cfg.threads = 1;
  w->S = S;
  if (keel_ctx_new(&cfg, &w->ctx)) return keeli_error(ctx, KEEL_ENOMEM, "stress: out of memory");
  keel_status st = keel_panel_new(w->ctx, S->nrows, S->n, dates, syms, px0, &w->panel);
  if (!st) keeli_panel_refresh(w->panel);
  const keel_account_spec *spec = o->account;
  if (!st && o->make_account) {
    st = o->make_account(o->account_ud, w->ctx, w->panel, &spec, &w->handle);
    if (!st) w->has_handle = 1;
    if (!st && !spec) st = keeli_error(w->ctx, KEEL_EINVAL, "stress: make_account gave no account");
  }
  if (!st) {
    w->local = *spec;
    w->local.start = S->start;
    w->local.end = 0;
    w->local.opens = NULL;
    w->local.fill = KEEL_FILL_CLOSE;
    w->local.periods_per_year = keel_mc_steps_per_year(S->g);
    w->local.record_holdings = o->record_holdings;
    w->local.seed = o->seed;
    st = keeli_engine_new(w->ctx, w->panel, &w->local, 0, &w->eng);
  }
  if (!st && S->cost_run) keeli_engine_set_liquidity(w->eng, S->cost_run, S->spread_run);
  if (!st && (!(w->block = keeli_alloc_array(w->ctx, KEELI_MC_BLOCK * S->n, sizeof(double))) ||
              !(w->work = keeli_alloc_array(w->ctx, keel_mc_work_size(S->g) + S->T + 2, sizeof(double))) ||
              !(w->level = keeli_alloc_array(w->ctx, S->n, sizeof(double))) ||
              !(w->hist = keeli_alloc_array(w->ctx, S->P * NBINS, sizeof(uint16_t))) ||
              (S->res->npaths > UINT16_MAX && !(w->hist32 = keeli_alloc_array(w->ctx, S->P * NBINS, sizeof(uint32_t)))) ||
              !(w->fanb = keeli_alloc_array(w->ctx, FANQ * S->P, sizeof(uint32_t))) ||
              !(w->fanlo = keeli_alloc_array(w->ctx, S->P, sizeof(uint32_t))) ||
              !(w->fanhi = keeli_alloc_array(w->ctx, S->P, sizeof(uint32_t))) ||
              !(w->fanbmin = keeli_alloc_array(w->ctx, S->P, sizeof(uint32_t))) ||
              !(w->fanbmax = keeli_alloc_array(w->ctx, S->P, sizeof(uint32_t))) ||
              (!o->keep_paths && !(w->sk = keeli_alloc_array(w->ctx, (size_t)KEEL_STRESS_NSTATS * SK_NB, sizeof(uint32_t))))))
    st = KEEL_ENOMEM;
  if (st) return keeli_error(ctx, st, "%s", keel_errmsg(w->ctx));
  /* every range of counts empty (lo > hi) */
  for (size_t i = 0; i < S->P; i++) w->fanlo[i] = 1, w->fanhi[i] = 0, w->fanbmin[i] = (uint32_t)NBINS - 1, w->fanbmax[i] = 0;
  for (size_t k = 0; k < KEEL_STRESS_NSTATS; k++) w->sklo[k] = 1, w->skhi[k] = 0;
  return KEEL_OK;
}

/* Quantile q (type 7) of m sorted values. */
static double q7(const double *s, size_t m, double q) {
  if (m == 0) return NAN;
  if (q <= 0) return s[0];
  if (q >= 1) return s[m - 1];
  double h = (double)(m - 1) * q;
  size_t lo = (size_t)h;
  if (lo + 1 >= m) return s[m - 1];
  return s[lo] + (h - (double)lo) * (s[lo + 1] - s[lo]);
}

/* The fan chart's bucket b: values [lo, hi). */
static void fan_bounds(const stress *S, size_t b, double *lo, double *hi) { mag_bounds(S->fan_base + (long)b, lo, hi); }

static keel_status finish(keel_ctx *ctx, stress *S, worker *ws, int nw) {
  keel_stress_result *R = S->res;
  const size_t N = R->npaths, P = S->P;
  keel_status st = KEEL_OK;
  /* each percentile of the fan chart by linear interpolation inside its
   * bucket: the workers' counts summed into h over the union of their
   * ranges (each adding only its own), then one sweep up h taking each
   * percentile at the first bucket whose cumulative count reaches its
   * rank (or at the last). The counts are integers, so "cum + h < rank" is
   * "cum + h < ceil(rank)" in integers. */
  uint32_t *h = keeli_alloc_array(ctx, NBINS, sizeof *h);
  if (!h) return KEEL_ENOMEM;
  double rank[KEEL_STRESS_NBANDS];
  uint64_t need[KEEL_STRESS_NBANDS];
  for (size_t j = 0; j < KEEL_STRESS_NBANDS; j++) {
    rank[j] = BAND_P[j] * (double)N;
    need[j] = (uint64_t)ceil(rank[j]);
  }
  for (size_t i = 0; i < P; i++) {
    uint32_t b0 = 1, b1 = 0;
    for (int k = 0; k < nw; k++)
      if (ws[k].fanlo[i] <= ws[k].fanhi[i]) {
        const gaps g = widen(&b0, &b1, ws[k].fanlo[i], ws[k].fanhi[i]);
        ZERO_GAPS(h, g);
      }
    if (b0 > b1) b0 = b1 = 0, h[0] = 0; /* (no paths: cannot happen with N >= 1) */
    for (int k = 0; k < nw; k++) {
      const uint16_t *restrict a = ws[k].hist + i * NBINS;
      const uint32_t *restrict a32 = ws[k].hist32 ? ws[k].hist32 + i * NBINS : NULL;
      uint32_t *restrict hh = h;
      const size_t lo = ws[k].fanlo[i], hi = ws[k].fanhi[i];
      for (size_t b = lo; b <= hi; b++) hh[b] += a[b];
      if (a32)
        for (size_t b = lo; b <= hi; b++) hh[b] += a32[b];
    }
    size_t j = 0;
    uint64_t cum = 0;
    for (size_t b = b0; b <= b1 && j < KEEL_STRESS_NBANDS; b++) {
      const uint64_t c = h[b];
      for (; j < KEEL_STRESS_NBANDS && (b == b1 || cum + c >= need[j]); j++) {
        double lo, hi;
        fan_bounds(S, b, &lo, &hi);
        R->bands[i * KEEL_STRESS_NBANDS + j] = lo + (c ? (rank[j] - (double)cum) / (double)c : 0.5) * (hi - lo);
      }
      cum += c;
    }
  }
  keeli_free(ctx, h);
  /* sums, counts and buckets of the workers */
  xsum tot[KEEL_STRESS_NSTATS + 2];
  memset(tot, 0, sizeof tot);
  for (int k = 0; k < nw; k++) {
    for (size_t s = 0; s < KEEL_STRESS_NSTATS + 2; s++) xs_merge(&tot[s], &ws[k].sum[s]);
    for (size_t s = 0; s < KEEL_STRESS_NSTATS; s++) R->nvalid[s] += ws[k].nvalid[s];
    R->n_goal += ws[k].n_goal;
    R->n_goal_any += ws[k].n_goal_any;
    R->n_loss += ws[k].n_loss;
  }
  for (size_t s = 0; s < KEEL_STRESS_NSTATS; s++) R->mean[s] = R->nvalid[s] ? xs_value(&tot[s]) / (double)R->nvalid[s] : NAN;
  R->mean_in = xs_value(&tot[KEEL_STRESS_NSTATS]) / (double)N;
  R->mean_out = xs_value(&tot[KEEL_STRESS_NSTATS + 1]) / (double)N;
  if (R->vals) {
    for (int s = 0; s < KEEL_STRESS_NSTATS; s++) {
      size_t m = 0;
      for (size_t p = 0; p < N; p++) {
        double v = R->vals[(size_t)s * N + p];
        if (!isnan(v)) R->sorted[(size_t)s * N + m++] = v;
      }
      qsort(R->sorted + (size_t)s * N, m, sizeof(double), keeli_cmp_double);
    }
    goto out;
  }
  /* the first worker's counts become the result's: its ranges widened to
   * the union of the workers', the others' counts added over theirs */
  R->sk = ws[0].sk;
  ws[0].sk = NULL;
  for (int s = 0; s < KEEL_STRESS_NSTATS; s++) {
    uint32_t *t = R->sk + (size_t)s * SK_NB, lo = ws[0].sklo[s], hi = ws[0].skhi[s];
    for (int k = 1; k < nw; k++)
      if (ws[k].sklo[s] <= ws[k].skhi[s]) {
        const gaps g = widen(&lo, &hi, ws[k].sklo[s], ws[k].skhi[s]);
        ZERO_GAPS(t, g);
        for (size_t b = ws[k].sklo[s]; b <= ws[k].skhi[s]; b++) t[b] += ws[k].sk[(size_t)s * SK_NB + b];
      }
    /* [sk_lo, sk_hi): the occupied buckets (SK_NB twice when none) */
    size_t a = SK_NB, e = SK_NB;
    if (lo <= hi) {
      a = lo, e = (size_t)hi + 1;
      while (a < e && !t[a]) a++;
      while (e > a && !t[e - 1]) e--;
      if (a == e) a = e = SK_NB;
    }
    R->sk_lo[s] = a;
    R->sk_hi[s] = e;
  }
out:
  return st;
}

keel_status keel_stress_run(keel_ctx *ctx, const keel_stress_options *o, keel_stress_result **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_stress_run: out is NULL");
  *out = NULL;
  if (!o || !o->gen) return keeli_error(ctx, KEEL_EINVAL, "stress: no generator");
  if (!o->account && !o->make_account) return keeli_error(ctx, KEEL_EINVAL, "stress: no account (account or make_account)");
  const keel_mc *g = o->gen;
  const size_t n = keel_mc_nassets(g), T = keel_mc_nsteps(g);
  int threads = o->threads ? o->threads : keel_ctx_config(ctx)->threads;
  if (threads < 1 || threads > 1024) return keeli_error(ctx, KEEL_EINVAL, "stress: threads must be from 1 to 1024, not %d", threads);
  if (o->npaths < 1 || o->npaths >= (size_t)1 << 32)
    return keeli_error(ctx, KEEL_EINVAL, "stress: npaths %zu must be from 1 to 2^32 - 1", o->npaths);
  if (!(o->goal >= 0) || !isfinite(o->goal)) return keeli_error(ctx, KEEL_EINVAL, "stress: goal %g must be >= 0", o->goal);
  if (!(o->loss_threshold >= 0 && o->loss_threshold <= 1))
    return keeli_error(ctx, KEEL_EINVAL, "stress: loss threshold %g must be in [0, 1]", o->loss_threshold);
  if (!(o->es_level > 0 && o->es_level <= 1))
    return keeli_error(ctx, KEEL_EINVAL, "stress: expected-shortfall level %g must be in (0, 1]", o->es_level);
  if (o->band_points > T + 1)
    return keeli_error(ctx, KEEL_EINVAL, "stress: %zu band points for %zu steps (at most steps + 1)", o->band_points, T);
  if (!o->make_account && threads > 1)
    for (size_t s = 0; s < o->account->nsubs; s++)
      if (o->account->subs && o->account->subs[s].strategy)
        return keeli_error(ctx, KEEL_EINVAL,
                           "stress: sub-account %s has a strategy, whose state cannot be shared by %d threads: "
                           "give make_account (one account per worker) or use 1 thread",
                           o->account->subs[s].name ? o->account->subs[s].name : "?", threads);
  if ((size_t)threads > o->npaths) threads = (int)o->npaths;

  stress S;
  memset(&S, 0, sizeof S);
  S.o = o;
  S.g = g;
  S.n = n;
  S.T = T;
  S.P = o->band_points ? o->band_points : (T + 1 < 401 ? T + 1 : 401);
  keel_status st = KEEL_OK;
  size_t *hrows = NULL, nh = 0, pre = 0;
  keel_date *dates = NULL;
  double *px0 = NULL;
  const char **syms = NULL;
  worker *ws = NULL;
  int nw = 0, started = 0, sync_ready = 0;
  keel_stress_result *R = keeli_calloc(ctx, 1, sizeof *R);
  if (!R) return KEEL_ENOMEM;
  R->heap = *keeli_ctx_heap(ctx);
  S.res = R;

  /* the rows before the paths */
  if (o->history) {
    const keel_panel *h = o->history;
    if (keel_panel_nassets(h) != n) {
      st = keeli_error(ctx, KEEL_EINVAL, "stress: the history has %zu assets, the generator %zu", keel_panel_nassets(h), n);
      goto done;
    }
    if ((st = keeli_mc_step_rows(ctx, h, 0, keel_panel_ndates(h), keel_mc_get_freq(g), &hrows, &nh))) goto done;
    pre = o->history_rows < nh - 1 ? o->history_rows : nh - 1;
  } else if (!o->symbols) {
    st = keeli_error(ctx, KEEL_EINVAL, "stress: without a history, give the assets' symbols");
    goto done;
  }
  S.start = pre;
  S.nrows = pre + 1 + T;
  if (!(dates = keeli_alloc_array(ctx, S.nrows, sizeof *dates)) || !(px0 = keeli_alloc_array(ctx, S.nrows * n, sizeof(double))) ||
      !(syms = keeli_alloc_array(ctx, n, sizeof *syms)) || !(S.p0 = keeli_alloc_array(ctx, n, sizeof(double)))) {
    st = KEEL_ENOMEM;
    goto done;
  }
  if (o->history) {
    const keel_panel *h = o->history;
    for (size_t i = 0; i <= pre; i++) {
      size_t row = hrows[nh - 1 - pre + i];
      dates[i] = keel_panel_dates(h)[row];
      for (size_t j = 0; j < n; j++) px0[i * n + j] = keel_panel_price(h, row, j);
    }
    for (size_t j = 0; j < n; j++) syms[j] = keel_panel_symbol(h, j);
  } else {
    keel_date d0 = o->start_date;
    if (d0 == KEEL_DATE_NONE) keel_date_from_ymd(2000, 1, 3, &d0);
    dates[0] = d0;
    for (size_t j = 0; j < n; j++) {
      double p = o->start_prices ? o->start_prices[j] : 100;
      if (!(p > 0) || !isfinite(p)) {
        st = keeli_error(ctx, KEEL_EINVAL, "stress: start price %zu is %g; it must be finite and > 0", j, p);
        goto done;
      }
      px0[j] = p;
      syms[j] = o->symbols[j];
    }
  }
  memcpy(S.p0, px0 + pre * n, n * sizeof(double));
  step_dates(keel_mc_get_freq(g), dates[pre], T, dates + pre + 1);
  const double *cm, *sm;
  keel_mc_liquidity(g, &cm, &sm, &S.halted);
  for (size_t k = 0; k < T; k++)
    for (size_t j = 0; j < n; j++) px0[(pre + 1 + k) * n + j] = S.halted && S.halted[k * n + j] ? NAN : S.p0[j];
  if (cm) {
    if (!(S.cost_run = keeli_alloc_array(ctx, T + 1, sizeof(double))) ||
        !(S.spread_run = keeli_alloc_array(ctx, T + 1, sizeof(double)))) {
      st = KEEL_ENOMEM;
      goto done;
    }
    S.cost_run[0] = S.spread_run[0] = 1;
    for (size_t k = 0; k < T; k++) S.cost_run[k + 1] = cm[k], S.spread_run[k + 1] = sm[k];
    /* the rates must stay below 100% */
    const keel_account_spec *a = o->account;
    for (size_t s = 0; a && s < a->nsubs; s++) {
      const keel_cost_model *c = &a->subs[s].costs;
      for (size_t k = 0; k <= T; k++) {
        double rb = ((c->buy_bps + c->slippage_bps) * S.cost_run[k] + c->spread_bps / 2 * S.spread_run[k]) / 1e4;
        double rs = ((c->sell_bps + c->slippage_bps) * S.cost_run[k] + c->spread_bps / 2 * S.spread_run[k]) / 1e4;
        if (!(rb < 1 && rs < 1)) {
          st = keeli_error(ctx, KEEL_EINVAL,
                           "stress: the liquidity scenario raises sub-account %s's cost rate to %g%% or more", a->subs[s].name,
                           100 * fmax(rb, rs));
          goto done;
        }
      }
    }
  }

  /* the result's arrays */
  const size_t N = o->npaths, P = S.P;
  R->npaths = N;
  R->nsteps = T;
  R->npoints = P;
  R->spy = keel_mc_steps_per_year(g);
  R->years = (double)T / R->spy;
  R->seed = o->seed;
  R->goal = o->goal;
  R->loss_x = o->loss_threshold;
  R->es_level = o->es_level;
  if ((o->keep_paths && (!(R->vals = keeli_alloc_array(ctx, (size_t)KEEL_STRESS_NSTATS * N, sizeof(double))) ||
                         !(R->sorted = keeli_alloc_array(ctx, (size_t)KEEL_STRESS_NSTATS * N, sizeof(double))))) ||
      !(R->band_rows = keeli_alloc_array(ctx, P, sizeof(size_t))) ||
      !(R->band_dates = keeli_alloc_array(ctx, P, sizeof(keel_date))) ||
      !(R->bands = keeli_alloc_array(ctx, P * KEEL_STRESS_NBANDS, sizeof(double))) ||
      (o->keep_paths && !(R->paths = keeli_alloc_array(ctx, N * P, sizeof(double))))) {
    st = KEEL_ENOMEM;
    goto done;
  }
  S.every_row = P == T + 1;
  for (size_t i = 0; i < P; i++) {
    R->band_rows[i] = P == 1 ? T : (size_t)nearbyint((double)i * (double)T / (double)(P - 1));
    R->band_dates[i] = dates[pre + R->band_rows[i]];
    S.every_row &= R->band_rows[i] == i;
  }

  /* the workers, set up here so a bad account fails before any thread */
  if (!(ws = keeli_calloc(ctx, (size_t)threads, sizeof *ws))) {
    st = KEEL_ENOMEM;
    goto done;
  }
  for (; nw < threads; nw++)
    if ((st = worker_setup(ctx, &S, &ws[nw], dates, syms, px0))) {
      nw++;
      goto done;
    }
  R->capital = keel_backtest_capital(keeli_engine_result(ws[0].eng));
  R->ref = R->capital > 0 ? R->capital : 1;
  {
    /* the flows of the first row decide the reference when there is no capital */
    const keel_account_spec *a = &ws[0].local;
    double first = 0;
    for (size_t s = 0; a->subs && s < a->nsubs; s++)
      for (size_t d = 0; d < a->subs[s].ndca; d++)
        if (a->subs[s].dca[d].amount > 0) first += a->subs[s].dca[d].amount;
    if (!(R->capital > 0) && first > 0) R->ref = first;
  }
  S.fan_base = ((mag_key(R->ref) >> SUB) - FAN_OCT) << SUB;
  for (size_t s = 0; s < ws[0].local.nsubs; s++) R->has_flows |= ws[0].local.subs[s].ndca > 0;

  pthread_mutex_init(&S.mu, NULL);
  pthread_cond_init(&S.cv, NULL);
  sync_ready = 1;
  S.alive = nw;
  for (; started < nw; started++)
    if (pthread_create(&ws[started].tid, NULL, worker_main, &ws[started])) break;
  pthread_mutex_lock(&S.mu);
  S.alive -= nw - started;
  if (started == 0) {
    pthread_mutex_unlock(&S.mu);
    st = keeli_error(ctx, KEEL_ENOMEM, "stress: cannot start a worker thread");
    goto done;
  }
  size_t reported = (size_t)-1;
  while (S.alive > 0) {
    if (o->progress && S.done != reported) {
      reported = S.done;
      size_t d = S.done;
      pthread_mutex_unlock(&S.mu);
      o->progress(o->progress_ud, d, N);
      pthread_mutex_lock(&S.mu);
      continue;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&S.cv, &S.mu, &ts);
  }
  pthread_mutex_unlock(&S.mu);
  for (int k = 0; k < started; k++) pthread_join(ws[k].tid, NULL);
  started = 0;
  {
    int bad = -1;
    for (int k = 0; k < nw; k++)
      if (ws[k].st && (bad < 0 || ws[k].fail_path < ws[bad].fail_path)) bad = k;
    if (bad >= 0) {
      st = keeli_error(ctx, ws[bad].st, "%s", ws[bad].msg);
      goto done;
    }
  }
  if (S.done != N) {
    st = keeli_error(ctx, KEEL_ENOMEM, "stress: %zu of %zu paths ran", S.done, N);
    goto done;
  }
  if (o->progress && reported != N) o->progress(o->progress_ud, N, N);
  st = finish(ctx, &S, ws, nw);

done:
  if (started) {
    pthread_mutex_lock(&S.mu);
    S.stop = 1;
    pthread_mutex_unlock(&S.mu);
    for (int k = 0; k < started; k++) pthread_join(ws[k].tid, NULL);
  }
  if (sync_ready) {
    pthread_mutex_destroy(&S.mu);
    pthread_cond_destroy(&S.cv);
  }
  for (int k = 0; ws && k < nw; k++) worker_free(&S, &ws[k]);
  keeli_free(ctx, ws);
  keeli_free(ctx, hrows);
  keeli_free(ctx, dates);
  keeli_free(ctx, px0);
  keeli_free(ctx, syms);
  keeli_free(ctx, S.p0);
  keeli_free(ctx, S.cost_run);
  keeli_free(ctx, S.spread_run);
  if (st) {
    keel_stress_result_free(R);
    return st;
  }
  *out = R;
  return KEEL_OK;
}

/* ---- accessors ------------------------------------------------------------- */

size_t keel_stress_npaths(const keel_stress_result *r) { return r->npaths; }
size_t keel_stress_nsteps(const keel_stress_result *r) { return r->nsteps; }
double keel_stress_years(const keel_stress_result *r) { return r->years; }
double keel_stress_capital(const keel_stress_result *r) { return r->capital; }
int keel_stress_has_flows(const keel_stress_result *r) { return r->has_flows; }
double keel_stress_mean_in(const keel_stress_result *r) { return r->mean_in; }
double keel_stress_mean_out(const keel_stress_result *r) { return r->mean_out; }
uint64_t keel_stress_seed(const keel_stress_result *r) { return r->seed; }
double keel_stress_goal(const keel_stress_result *r) { return r->goal; }
double keel_stress_loss_threshold(const keel_stress_result *r) { return r->loss_x; }
double keel_stress_es_level(const keel_stress_result *r) { return r->es_level; }

const double *keel_stress_values(const keel_stress_result *r, keel_stress_stat s) {
  return (unsigned)s < KEEL_STRESS_NSTATS && r->vals ? r->vals + (size_t)s * r->npaths : NULL;
}

int keel_stress_exact(const keel_stress_result *r) { return r->vals != NULL; }

/* The estimate of order statistic i (0-based, i < nvalid) from the
 * buckets: linear inside its bucket, rank (i - below + 1/2) of its c. */
static double sk_order(const keel_stress_result *r, int s, size_t i) {
  const uint32_t *c = r->sk + (size_t)s * SK_NB;
  size_t cum = 0, b = r->sk_lo[s];
  while (b + 1 < r->sk_hi[s] && cum + c[b] <= i) cum += c[b++];
  double lo, hi;
  sk_bounds(b, &lo, &hi);
  return lo + ((double)(i - cum) + 0.5) / (double)c[b] * (hi - lo);
}

double keel_stress_quantile(const keel_stress_result *r, keel_stress_stat s, double q) {
  if ((unsigned)s >= KEEL_STRESS_NSTATS || !(q >= 0 && q <= 1)) return NAN;
  const size_t m = r->nvalid[s];
  if (r->vals) return q7(r->sorted + (size_t)s * r->npaths, m, q);
  if (m == 0) return NAN;
  /* type 7 over the order statistics' estimates */
  double h = (double)(m - 1) * q;
  size_t lo = (size_t)h;
  if (lo + 1 >= m) return sk_order(r, s, m - 1);
  double a = sk_order(r, s, lo), b = sk_order(r, s, lo + 1);
  return a + (h - (double)lo) * (b - a);
}

double keel_stress_mean(const keel_stress_result *r, keel_stress_stat s) {
  if ((unsigned)s >= KEEL_STRESS_NSTATS) return NAN;
  return r->mean[s];
}

/* The share of the statistic's values >= x (strict: > x) from the
 * buckets: whole buckets above x, and the part of x's bucket above it. */
static double sk_share_above(const keel_stress_result *r, int s, double x, int strict) {
  double k = 0;
  for (size_t j = r->sk_lo[s]; j < r->sk_hi[s]; j++) {
    const uint32_t c = r->sk[(size_t)s * SK_NB + j];
    if (!c) continue;
    double lo, hi;
    sk_bounds(j, &lo, &hi);
    if (lo > x || (lo == x && !strict))
      k += (double)c;
    else if (hi > x)
      k += (double)c * (hi - x) / (hi - lo);
  }
  return k / (double)r->npaths;
}

double keel_stress_prob_goal(const keel_stress_result *r, double goal, int any_time) {
  const int s = any_time ? KEEL_STRESS_PEAK_WEALTH : KEEL_STRESS_WEALTH;
  if (r->vals) {
    const double *v = r->vals + (size_t)s * r->npaths;
    size_t k = 0;
    for (size_t p = 0; p < r->npaths; p++) k += v[p] >= goal;
    return (double)k / (double)r->npaths;
  }
  if (goal == r->goal) return (double)(any_time ? r->n_goal_any : r->n_goal) / (double)r->npaths;
  return sk_share_above(r, s, goal, 0);
}

double keel_stress_prob_loss(const keel_stress_result *r, double x) {
  if (r->vals) {
    const double *v = r->vals + (size_t)KEEL_STRESS_LOSS * r->npaths;
    size_t k = 0;
    for (size_t p = 0; p < r->npaths; p++) k += v[p] > x;
    return (double)k / (double)r->npaths;
  }
  if (x == r->loss_x) return (double)r->n_loss / (double)r->npaths;
  return sk_share_above(r, KEEL_STRESS_LOSS, x, 1);
}

double keel_stress_shortfall(const keel_stress_result *r, keel_stress_stat s, double level) {
  if ((unsigned)s >= KEEL_STRESS_NSTATS || !(level > 0 && level <= 1)) return NAN;
  const size_t m = r->nvalid[s];
  if (!m) return NAN;
  size_t k = (size_t)ceil(level * (double)m - 1e-9);
  if (k < 1) k = 1;
  int high = s == KEEL_STRESS_LOSS || s == KEEL_STRESS_MAX_DRAWDOWN || s == KEEL_STRESS_UNDERWATER || s == KEEL_STRESS_COSTS;
  double a = 0;
  if (r->vals) {
    const double *x = r->sorted + (size_t)s * r->npaths;
    for (size_t i = 0; i < k; i++) a += high ? x[m - 1 - i] : x[i];
    return a / (double)k;
  }
  /* the sum of the k extreme order statistics' estimates, a bucket at a
   * time: ranks [r0, r1) of a bucket of c sum to (r1 - r0) lo + (hi - lo)
   * (r1^2 - r0^2) / (2 c) */
  size_t left = k;
  const size_t nb = r->sk_hi[s] - r->sk_lo[s];
  for (size_t jj = 0; jj < nb && left; jj++) {
    const size_t j = high ? r->sk_hi[s] - 1 - jj : r->sk_lo[s] + jj;
    const uint32_t c = r->sk[(size_t)s * SK_NB + j];
    if (!c) continue;
    const size_t take = c < left ? (size_t)c : left;
    const double r1 = high ? (double)c : (double)take, r0 = high ? (double)(c - take) : 0;
    double lo, hi;
    sk_bounds(j, &lo, &hi);
    a += (r1 - r0) * lo + (hi - lo) * (r1 * r1 - r0 * r0) / (2 * (double)c);
    left -= take;
  }
  return a / (double)k;
}

size_t keel_stress_band_npoints(const keel_stress_result *r) { return r->npoints; }
const size_t *keel_stress_band_rows(const keel_stress_result *r) { return r->band_rows; }
const keel_date *keel_stress_band_dates(const keel_stress_result *r) { return r->band_dates; }
const double *keel_stress_bands(const keel_stress_result *r) { return r->bands; }
const double *keel_stress_path_values(const keel_stress_result *r, size_t p) {
  return r->paths && p < r->npaths ? r->paths + p * r->npoints : NULL;
}

/* ---- storing -------------------------------------------------------------- */

keel_status keel_stress_save(keel_ctx *ctx, struct keel_store *store, const keel_stress_result *r,
                             const keel_stress_meta *meta, int64_t *run_id) {
  if (!store || !r) return keeli_error(ctx, KEEL_EINVAL, "keel_stress_save: bad argument");
  keel_stress_record rec;
  keel_stress_record_buf buf;
  keel_status st = keel_stress_record_fill(ctx, r, meta, &rec, &buf);
  return st ? st : keel_store_save_stress(ctx, store, &rec, run_id);
}
