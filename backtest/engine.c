/* keel — the backtest engine: accounts of sub-accounts, each with its own
 * basket or strategy, schedule, bands, volatility target, costs, DCA plans
 * and stop rules. The rules are in docs/backtest.md; this file follows
 * its "one row, in order". */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "backtest/engine_internal.h"
#include "keel/backtest.h"

/* An asset trades when its target differs from its holding by more than
 * this fraction of the sub-account's value. */
#define TRADE_TOL 1e-12

typedef struct sub_result {
  char *name;
  size_t na;
  size_t *assets;
  double *values, *cash, *flows, *traded, *costs;
  keel_metrics metrics;
} sub_result;

struct keel_backtest_result {
  keeli_heap heap;
  size_t n, na, nsubs;
  double capital;
  uint64_t seed;
  keel_date *dates;
  double *values, *cash, *traded, *costs, *flows;
  double *holdings; /* n x na shares, or NULL */
  keel_trade *trades;
  size_t ntrades, tradecap;
  keel_rebalance *rebal;
  size_t nrebal, rebalcap;
  keel_event *events;
  size_t nevents, eventcap;
  keel_opt_call *opt;
  size_t nopt, optcap;
  keel_metrics metrics;
  sub_result *subs;
};

/* ---- defaults and names ---- */

void keel_backtest_config_default(keel_backtest_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->rebalance = KEEL_CAL_MONTHLY;
  cfg->capital = 100000;
  cfg->periods_per_year = 252;
}

void keel_subaccount_spec_default(keel_subaccount_spec *s) {
  memset(s, 0, sizeof *s);
  s->name = "main";
  s->capital = 100000;
  s->schedule.calendar = KEEL_CAL_MONTHLY;
  s->band_check.calendar = KEEL_CAL_DAILY;
  s->vol.estimator = KEEL_VOL_ROLLING;
  s->vol.window = 63;
  s->vol.halflife = 21;
  s->vol.leverage_cap = 1;
  s->vol.rebalance_band = 0.1;
  keel_cost_model_default(&s->costs);
  s->skip_lookback = 252;
  s->invest_at_start = 1;
}

void keel_account_spec_default(keel_account_spec *a) {
  memset(a, 0, sizeof *a);
  a->benchmark = -1;
  a->periods_per_year = 252;
  a->record_holdings = 1;
}

const char *keel_event_kind_name(keel_event_kind k) {
  switch (k) {
    case KEEL_EVENT_STOP: return "stop";
    case KEEL_EVENT_STOP_FILL: return "stop_fill";
    case KEEL_EVENT_REENTRY: return "reentry";
  }
  return "unknown";
}

void keel_backtest_result_free(keel_backtest_result *r) {
  if (!r) return;
  keeli_heap h = r->heap;
  if (r->subs)
    for (size_t s = 0; s < r->nsubs; s++) {
      sub_result *u = &r->subs[s];
      void *b[] = {u->name, u->assets, u->values, u->cash, u->flows, u->traded, u->costs};
      for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) keeli_heap_free(&h, b[i]);
    }
  void *blocks[] = {r->dates, r->values, r->cash,  r->traded, r->costs,  r->flows,
                    r->holdings, r->trades, r->rebal, r->events, r->opt, r->subs};
  for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) keeli_heap_free(&h, blocks[i]);
  keeli_heap_free(&h, r);
}

/* ---- the run's state ---- */

typedef struct sub_run {
  const keel_subaccount_spec *sp;
  int base_same; /* the last refresh_targets left the base weights as they were */
  double start_value; /* capital plus the initial holdings at the first close */
  sub_result *res;
  uint32_t idx;
  size_t na;
  const size_t *col;
  double cb, cs, fee;
  double *minn, *lot; /* per asset; lot 0 = any fraction */
  int rounding;       /* lots or minimums in play */
  int borrow;         /* cash may go negative (leverage_cap > 1) */
  double cash;
  double *shares, *base, *tau, *x, *h, *w, *bp, *tmp, *cbv, *csv;
  /* this row's closes (NaN: none) and the last close per asset (NaN
   * before the first): the buffers, or straight the panel's row when the
   * assets are consecutive columns with a price on every row of the run */
  const double *px, *lastp;
  double *pxbuf, *lpbuf;
  int direct;
  /* fills at the next open: the open's prices (NaN: none) and values (the
   * open, else the last close), and what the last close decided: a
   * rebalance to order_tau and each DCA plan's installment (0: none) */
  double *opx, *olp, *order_tau, *dca_order;
  int order;
  keel_trade_reason order_why;
  double *bw;         /* band half-width per asset around tau */
  double *bwm;        /* bw less BAND_MARGIN (band_inside) */
  int bw_margin_ok;   /* band_inside may be used */
  double vmark;       /* the value at the last prices, valid while `marked` */
  int marked;         /* cleared by every change of prices, shares or cash */
  double *entry, *avg, *peak;
  unsigned char *tradable, *in_s, *locked, *pending;
  int *lock_rule, *pend_rule;
  size_t *fill_row;
  int sub_locked, sub_pending, sub_rule;
  size_t sub_fill_row;
  double twr, twr_peak, vprev;
  int twr_on; /* the index is tracked (stop rules read it) */
  double shadow, *ring; /* the shadow index and its last `ringn` values */
  size_t ringn, ringpos, ringcnt;
  double volk, volk_traded;
  double *R, *cov; /* window returns (rows x na), skip covariance (na x na) */
  keel_date *dca_first;
  double flow_row, traded_row, costs_row;
  size_t ntrades, nstops; /* made and triggered so far */
  int reentered;
  double bps_buy, bps_sell, bps_half_spread; /* the cost model's parts, for liquidity multipliers */
  /* per row of the run: the schedule, and the band check, are due (both
   * depend on the dates only, so they are found once at set-up) */
  unsigned char *due_row, *band_row;
  int quiet; /* no DCA, stops, volatility target or on_bar: see quiet_row */
  int avx2;  /* quiet_row may use mark_inside_avx2 */
  int avx512; /* the quiet stretch may use quiet_stretch_avx512 */
} sub_run;

typedef struct run {
  keel_ctx *ctx;
  const keel_panel *panel;
  const keel_account_spec *spec;
  keel_backtest_result *r;
  const keel_date *dates;
  const double *px; /* panel closes */
  const double *op; /* panel opens, when trades fill at the next open; else NULL */
  size_t na_panel, start;
  sub_run *subs;
  /* per row of the run, or NULL: multipliers of the commission and
   * slippage (cost) and of the spread (keeli_engine_set_liquidity) */
  const double *cost_mult, *spread_mult;
  int general; /* every row through step_row (keeli_engine_set_quiet) */
  size_t nquiet; /* rows of the last run done by quiet_row */
} run;

static const char *date_str(keel_date d, char *buf) {
  keel_date_format(d, buf);
  return buf;
}

/* ---- recording ---- */

static keel_status add_trade(run *E, sub_run *S, size_t t, size_t k, keel_trade_reason why, double dshares,
                             double price, double cost) {
  keel_backtest_result *r = E->r;
  if (r->ntrades == r->tradecap &&
      keeli_reserve(E->ctx, (void **)&r->trades, &r->tradecap, r->ntrades + S->na, sizeof *r->trades))
    return KEEL_ENOMEM;
  keel_trade *tr = &r->trades[r->ntrades++];
  tr->date = E->dates[E->start + t];
  tr->asset = (uint32_t)S->col[k];
  tr->sub = S->idx;
  tr->reason = why;
  tr->shares = dshares;
  tr->price = price;
  tr->notional = dshares * price;
  tr->cost = cost;
  S->ntrades++;
  S->traded_row += fabs(tr->notional);
  S->costs_row += cost;
  return KEEL_OK;
}

static keel_status add_rebalance(run *E, sub_run *S, size_t t, keel_trade_reason why, double before, double costs,
                                 double traded, uint32_t ntr) {
  keel_backtest_result *r = E->r;
  if (keeli_reserve(E->ctx, (void **)&r->rebal, &r->rebalcap, r->nrebal + 1, sizeof *r->rebal)) return KEEL_ENOMEM;
  keel_rebalance *rb = &r->rebal[r->nrebal++];
  rb->date = E->dates[E->start + t];
  rb->sub = S->idx;
  rb->reason = why;
  rb->value_before = before;
  rb->value_after = before - costs;
  rb->costs = costs;
  rb->traded = traded;
  rb->ntrades = ntr;
  return KEEL_OK;
}

static keel_status add_event(run *E, sub_run *S, size_t t, keel_event_kind kind, long k, keel_stop_kind stop,
                             double price, double level) {
  keel_backtest_result *r = E->r;
  if (keeli_reserve(E->ctx, (void **)&r->events, &r->eventcap, r->nevents + 1, sizeof *r->events))
    return KEEL_ENOMEM;
  keel_event *ev = &r->events[r->nevents++];
  ev->date = E->dates[E->start + t];
  ev->kind = kind;
  ev->sub = S->idx;
  ev->asset = k < 0 ? -1 : (int32_t)S->col[k];
  ev->stop = stop;
  ev->price = price;
  ev->level = level;
  S->nstops += kind == KEEL_EVENT_STOP;
  return KEEL_OK;
}

/* ---- marking ---- */

/* The hot loops are built for the host's widest vectors where the
 * compiler and the C library can pick at load time (ifunc); the results
 * do not depend on the choice (no reassociation beyond the fixed partial
 * sums). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(KEEL_NO_CLONES)
/* hand-written AVX2 code, taken where the CPU has it (sub_run.avx2) */
#include <immintrin.h>
#define KEEL_ENGINE_AVX2 1
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(KEEL_NO_CLONES)
#define KEEL_HOT __attribute__((target_clones("avx2", "default")))
#else
#define KEEL_HOT
#endif

/* Whether any asset lies outside its band: |x_k / V - tau_k| > bw_k (an
 * or over the assets, so the loop vectorises). */
KEEL_HOT static int band_outside(size_t na, const double *restrict x, const double *restrict tau,
                                 const double *restrict bw, double V) {
  const double iv = 1 / V;
  if (na < 16) {
    /* x was just stored element by element: read it so (an early exit
     * keeps the loop scalar; a vector load of scalar stores would stall) */
    for (size_t k = 0; k < na; k++)
      if (fabs(x[k] * iv - tau[k]) > bw[k]) return 1;
    return 0;
  }
  int o = 0;
  for (size_t k = 0; k < na; k++) o |= fabs(x[k] * iv - tau[k]) > bw[k];
  return o;
}

/* Whether every asset is certainly inside its band, without a division:
 * |x_k - tau_k V| < (bw_k - m) V, m = 1e-9. Then |x_k / V - tau_k| is
 * below bw_k - m plus a few rounding units of 1 + |tau_k| + bw_k, so
 * band_outside's rounded |x_k (1 / V) - tau_k| is below bw_k too (the
 * rounding is below 1e-12 for |tau_k|, bw_k <= 1000, which band_widths
 * checks). 0 says nothing: band_outside decides. */
#define BAND_MARGIN 1e-9
#define PAD4(n) (((n) + 3) & ~(size_t)3)
/* The arrays are padded to a multiple of 4 (x and tau with 0, bwm with 1:
 * always inside), so the loop runs whole vectors. */
KEEL_HOT static int band_inside(size_t na, const double *restrict x, const double *restrict tau,
                                const double *restrict bwm, double V) {
  /* counts of the assets not certainly inside, in sixteen lanes of doubles
   * (a compare and an add per element, which vectorise well; an int mask
   * or-ed across the loop did not) */
  const size_t n4 = PAD4(na);
  double o[16] = {0};
  size_t k = 0;
  for (; k + 16 <= n4; k += 16)
    for (size_t j = 0; j < 16; j++) o[j] += fabs(x[k + j] - tau[k + j] * V) < bwm[k + j] * V ? 0.0 : 1.0;
  for (; k < n4; k++) o[k & 15] += fabs(x[k] - tau[k] * V) < bwm[k] * V ? 0.0 : 1.0;
  double n = 0;
  for (size_t j = 0; j < 16; j++) n += o[j];
  return n == 0;
}

/* x = sh * lp when every asset has a price, and sum(x) in sixteen
 * interleaved partial sums (a fixed order: element k goes to lane k mod
 * 16, the lanes are added as a tree), so the adds of a vector unit do not
 * wait on each other. Fewer than 16 assets take the same sums in named
 * registers (an array indexed by k % 16 would go through memory and stall
 * its reload). */
KEEL_HOT static double mark_priced(size_t na, const double *restrict sh, const double *restrict lp,
                                   double *restrict x) {
  if (na < 16) {
#define LANE(j) const double l##j = (j) < na ? 0.0 + (x[j] = sh[j] * lp[j]) : 0.0
    LANE(0); LANE(1); LANE(2); LANE(3); LANE(4); LANE(5); LANE(6); LANE(7);
    LANE(8); LANE(9); LANE(10); LANE(11); LANE(12); LANE(13); LANE(14); LANE(15);
#undef LANE
    const double b0 = l0 + l8, b1 = l1 + l9, b2 = l2 + l10, b3 = l3 + l11, b4 = l4 + l12, b5 = l5 + l13,
                 b6 = l6 + l14, b7 = l7 + l15;
    const double c0 = b0 + b4, c1 = b1 + b5, c2 = b2 + b6, c3 = b3 + b7;
    return (c0 + c2) + (c1 + c3);
  }
  double a[16] = {0};
  size_t k = 0;
  for (; k + 16 <= na; k += 16)
    for (size_t j = 0; j < 16; j++) {
      x[k + j] = sh[k + j] * lp[k + j];
      a[j] += x[k + j];
    }
  for (; k < na; k++) {
    x[k] = sh[k] * lp[k];
    a[k & 15] += x[k];
  }
  for (size_t h = 8; h > 0; h /= 2)
    for (size_t j = 0; j < h; j++) a[j] += a[j + h];
  return a[0];
}

/* The holdings' values at the last prices into S->x, and the value. It
 * is kept until prices, shares or cash change (each such change clears
 * S->marked), so the steps of a row that only look share one marking. The
 * sum runs in four interleaved partial sums (a fixed order), so the adds
 * need not wait for each other. */
static double sub_value(sub_run *S) {
  if (S->marked) return S->vmark;
  const double *restrict sh = S->shares, *restrict lp = S->lastp;
  double *restrict x = S->x;
  const size_t na = S->na;
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  size_t k = 0;
  if (S->direct) {
    S->vmark = S->cash + mark_priced(na, sh, lp, x);
    S->marked = 1;
    return S->vmark;
  }
  for (; k + 4 <= na; k += 4) {
    /* nothing is held of an asset with no price yet (lp NaN) */
    for (size_t j = 0; j < 4; j++) x[k + j] = sh[k + j] != 0 ? sh[k + j] * lp[k + j] : 0;
    a0 += x[k], a1 += x[k + 1], a2 += x[k + 2], a3 += x[k + 3];
  }
  for (; k < na; k++) {
    x[k] = sh[k] != 0 ? sh[k] * lp[k] : 0;
    a0 += x[k];
  }
  S->vmark = S->cash + ((a0 + a1) + (a2 + a3));
  S->marked = 1;
  return S->vmark;
}

/* A change of holding by d shares at price p: entry, peak and average
 * cost follow purchases; a position sold out forgets them. */
static void position_update(sub_run *S, size_t k, double d, double p) {
  if (!S->sp->nstops) return; /* only the stop rules read them */
  double s0 = S->shares[k], s1 = s0 + d;
  if (d > 0) {
    if (!(s0 > 0)) {
      S->entry[k] = S->avg[k] = S->peak[k] = p;
    } else {
      S->avg[k] = (S->avg[k] * s0 + p * d) / s1;
    }
  }
  if (!(s1 > 0)) S->entry[k] = S->avg[k] = S->peak[k] = NAN;
}

/* ---- trading to targets: the exact cost equation ---- */

/* k(V'): the scale of the tradable targets that keeps cash >= 0 next to
 * frozen holdings XF. */
typedef struct rebal_problem {
  size_t na;
  const double *tau, *x;
  const unsigned char *in_s;
  double cb, cs, fee, V, XF, WT;
  size_t ns;
  int borrow;
  int avx2; /* g_slope may use g_lanes_avx2 */
} rebal_problem;

static double scale_k(const rebal_problem *q, double vp) {
  if (q->borrow || q->WT <= 0) return vp;
  double k2 = (vp - q->XF) / q->WT;
  return vp < k2 ? vp : k2;
}

static double g_of(const rebal_problem *q, double vp) {
  double k = scale_k(q, vp), c = 0;
  for (size_t j = 0; j < q->na; j++)
    if (q->in_s[j]) {
      double d = q->tau[j] * k - q->x[j];
      c += d > 0 ? q->cb * d : -q->cs * d;
    }
  return vp + c + q->fee * (double)q->ns - q->V;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* g(vp) and its slope on the side dir (+1 right, -1 left) of vp. */
#ifdef KEEL_ENGINE_AVX2
/* g_slope's sums over the whole groups of eight assets into its lanes
 * (lane l of cl, sl, tl in lane l mod 4 of the low or high vector):
 * returns the first asset left. */
__attribute__((target("avx2"))) static size_t g_lanes_avx2(const rebal_problem *q, double k, double dk,
                                                           double *cl, double *sl, double *tl) {
  const double *restrict tau = q->tau, *restrict x = q->x;
  const unsigned char *restrict in = q->in_s;
  const size_t na = q->na;
  const __m256d kv = _mm256_set1_pd(k), dkv = _mm256_set1_pd(dk), cb = _mm256_set1_pd(q->cb),
                cs = _mm256_set1_pd(-q->cs), zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1);
  __m256d c0 = zero, c1 = zero, s0 = zero, s1 = zero, t0 = zero, t1 = zero;
  size_t j = 0;
  for (; j + 8 <= na; j += 8) {
    int32_t b0, b1;
    memcpy(&b0, in + j, 4);
    memcpy(&b1, in + j + 4, 4);
    const __m256d m0 = _mm256_castsi256_pd(_mm256_cmpgt_epi64(_mm256_cvtepu8_epi64(_mm_cvtsi32_si128(b0)), _mm256_setzero_si256()));
    const __m256d m1 = _mm256_castsi256_pd(_mm256_cmpgt_epi64(_mm256_cvtepu8_epi64(_mm_cvtsi32_si128(b1)), _mm256_setzero_si256()));
    const __m256d u0 = _mm256_loadu_pd(tau + j), u1 = _mm256_loadu_pd(tau + j + 4);
    const __m256d d0 = _mm256_sub_pd(_mm256_mul_pd(u0, kv), _mm256_loadu_pd(x + j));
    const __m256d d1 = _mm256_sub_pd(_mm256_mul_pd(u1, kv), _mm256_loadu_pd(x + j + 4));
    const __m256d r0 = _mm256_blendv_pd(cs, cb, _mm256_cmp_pd(d0, zero, _CMP_GT_OQ));
    const __m256d r1 = _mm256_blendv_pd(cs, cb, _mm256_cmp_pd(d1, zero, _CMP_GT_OQ));
    c0 = _mm256_add_pd(c0, _mm256_and_pd(m0, _mm256_mul_pd(d0, r0)));
    c1 = _mm256_add_pd(c1, _mm256_and_pd(m1, _mm256_mul_pd(d1, r1)));
    s0 = _mm256_add_pd(s0, _mm256_and_pd(m0, _mm256_mul_pd(_mm256_mul_pd(u0, dkv), r0)));
    s1 = _mm256_add_pd(s1, _mm256_and_pd(m1, _mm256_mul_pd(_mm256_mul_pd(u1, dkv), r1)));
    t0 = _mm256_add_pd(t0, _mm256_and_pd(_mm256_and_pd(m0, _mm256_cmp_pd(d0, zero, _CMP_EQ_OQ)), one));
    t1 = _mm256_add_pd(t1, _mm256_and_pd(_mm256_and_pd(m1, _mm256_cmp_pd(d1, zero, _CMP_EQ_OQ)), one));
  }
  _mm256_storeu_pd(cl, c0);
  _mm256_storeu_pd(cl + 4, c1);
  _mm256_storeu_pd(sl, s0);
  _mm256_storeu_pd(sl + 4, s1);
  _mm256_storeu_pd(tl, t0);
  _mm256_storeu_pd(tl + 4, t1);
  return j;
}
#endif

static double g_slope(const rebal_problem *q, double vp, int dir, double *slope) {
  double k = vp, dk = 1;
  if (!q->borrow && q->WT > 0) {
    double k2 = (vp - q->XF) / q->WT;
    if (k2 < vp || (k2 == vp && dir < 0)) k = k2, dk = 1 / q->WT;
  }
  /* The side of each trade picks its rate by an index, not a branch: the
   * signs are as good as random. An exact tie (d == 0, an iterate on a
   * breakpoint) takes the side dir looks to, in a second pass. */
  const double *restrict tau = q->tau, *restrict x = q->x;
  const unsigned char *restrict in = q->in_s;
  const double rates[2] = {-q->cs, q->cb}, cb = q->cb, cs = -q->cs;
  const size_t na = q->na;
  /* the sums in eight interleaved lanes (element j in lane j mod 8, the
   * lanes added as a tree): a fixed order whose adds do not wait on each
   * other; an asset out of the sale set adds +0, which leaves a sum's bits
   * as they are. Whole groups of eight in AVX2 where the machine has it
   * (the same operations lane by lane), the rest one by one. */
  double cl[8] = {0}, sll[8] = {0}, tl[8] = {0};
  size_t j = 0;
#ifdef KEEL_ENGINE_AVX2
  if (q->avx2) j = g_lanes_avx2(q, k, dk, cl, sll, tl);
#endif
  for (; j < na; j++) {
    const double d = tau[j] * k - x[j], dd = tau[j] * dk, rate = d > 0 ? cb : cs;
    cl[j & 7] += in[j] ? d * rate : 0.0;
    sll[j & 7] += in[j] ? dd * rate : 0.0;
    tl[j & 7] += in[j] && d == 0 ? 1.0 : 0.0;
  }
  double c = ((cl[0] + cl[4]) + (cl[2] + cl[6])) + ((cl[1] + cl[5]) + (cl[3] + cl[7]));
  double sl = ((sll[0] + sll[4]) + (sll[2] + sll[6])) + ((sll[1] + sll[5]) + (sll[3] + sll[7]));
  const double ties = ((tl[0] + tl[4]) + (tl[2] + tl[6])) + ((tl[1] + tl[5]) + (tl[3] + tl[7]));
  if (ties > 0) {
    sl = 0;
    for (size_t i = 0; i < na; i++) {
      if (!in[i]) continue;
      double d = tau[i] * k - x[i], dd = tau[i] * dk;
      sl += dd * (d != 0 ? rates[d > 0] : rates[(dir > 0) == (dd > 0)]);
    }
  }
  *slope = 1 + sl;
  return vp + c + q->fee * (double)q->ns - q->V;
}

/* g is continuous, piecewise linear and strictly increasing (slope >= 1 -
 * max rate), so its root is found exactly. Newton's method from V with
 * the slope of the segment towards the root: once an iterate lands on the
 * root's segment the next step solves the linear equation there, and since
 * the costs move V' by a small fraction of themselves (the rate) it lands
 * there in two or three steps. Iterates are kept inside the bracket
 * [lo, hi]; should Newton not settle within a few steps, a binary search
 * over the sorted breakpoints finds the segment and the linear equation is
 * solved on it. Returns 0 and sets *vp, or -1 if no V' > XF exists (costs
 * exceed value). bp is scratch for na + 3 doubles. */
static int solve_vp(const rebal_problem *q, double *bp, double *vp) {
  if (q->ns == 0) {
    *vp = q->V;
    return 0;
  }
  double lo = q->borrow ? 0 : q->XF, hi = q->V;
  if (!(hi > lo)) return -1;
  {
    /* no root can lie at or below lo: Newton only ever reaches one above it */
    double a = lo, b = hi, v = hi, sl, gv = g_slope(q, v, -1, &sl);
    if (gv < 0) return -1;
    for (int it = 0; it < 8; it++) {
      if (gv == 0) {
        *vp = v;
        return 0;
      }
      if (gv < 0)
        a = v;
      else
        b = v;
      double v1 = v - gv / sl;
      if (!(v1 > a && v1 < b)) break; /* left the bracket: the sorted search */
      /* a step at the level of rounding: v1 is the root of v's segment */
      if (fabs(v1 - v) <= 4 * DBL_EPSILON * fabs(v) || fabs(gv) <= 4 * DBL_EPSILON * q->V) {
        *vp = v1;
        return 0;
      }
      v = v1;
      gv = g_slope(q, v, gv > 0 ? -1 : 1, &sl);
    }
  }
  double glo = g_of(q, lo);
  if (glo >= 0) return -1;
  size_t m = 0;
  bp[m++] = lo;
  bp[m++] = hi;
  if (!q->borrow && q->WT > 0 && q->WT < 1) {
    double kink = q->XF / (1 - q->WT);
    if (kink > lo && kink < hi) bp[m++] = kink;
  }
  for (size_t j = 0; j < q->na; j++) {
    if (!q->in_s[j] || q->tau[j] == 0) continue;
    double K = q->x[j] / q->tau[j]; /* k at which target j equals holding j */
    double v = !q->borrow && q->WT > 0 ? fmax(K, q->WT * K + q->XF) : K;
    if (v > lo && v < hi) bp[m++] = v;
  }
  qsort(bp, m, sizeof *bp, cmp_double);
  size_t a = 0, b = m - 1;
  double ga = glo, gb = g_of(q, hi);
  if (gb < 0) return -1;
  while (b - a > 1) {
    size_t mid = a + (b - a) / 2;
    double gm = g_of(q, bp[mid]);
    if (gm < 0)
      a = mid, ga = gm;
    else
      b = mid, gb = gm;
  }
  double x0 = bp[a], x1 = bp[b];
  double r = gb > ga ? x0 - ga * (x1 - x0) / (gb - ga) : x1;
  if (r <= lo) r = nextafter(lo, hi);
  if (r > hi) r = hi;
  *vp = r;
  return 0;
}

static double trade_cost(const sub_run *S, double notional) {
  const double rates[2] = {-S->cs, S->cb}; /* the side by an index, not a branch */
  return rates[notional > 0] * notional + S->fee;
}

/* Rounds the trades d (shares) to lots and minimums so cash stays >= 0:
 * nearest lot first, then buys rounded down, then the smallest buys
 * cancelled. Returns the cash after trading. */
static double round_trades(const sub_run *S, double *d, double cash0) {
  const size_t na = S->na;
  for (int pass = 0; pass < 2; pass++) {
    double cash = cash0;
    for (size_t k = 0; k < na; k++) {
      if (!S->in_s[k] || d[k] == 0) continue;
      double L = S->lot[k];
      if (L > 0 && d[k] != -S->shares[k]) {
        double m = d[k] / L;
        d[k] = (pass == 1 && d[k] > 0 ? floor(m + 1e-9) : nearbyint(m)) * L;
      }
      double p = S->px[k];
      if (d[k] != 0 && fabs(d[k] * p) < S->minn[k]) d[k] = 0;
      if (d[k] != 0) cash -= d[k] * p + trade_cost(S, d[k] * p);
    }
    if (cash >= 0 || S->borrow) return cash;
  }
  /* cancel buys, smallest notional first */
  double cash = cash0;
  for (size_t k = 0; k < na; k++)
    if (S->in_s[k] && d[k] != 0) cash -= d[k] * S->px[k] + trade_cost(S, d[k] * S->px[k]);
  while (cash < 0) {
    size_t best = na;
    for (size_t k = 0; k < na; k++)
      if (S->in_s[k] && d[k] > 0 && (best == na || d[k] * S->px[k] < d[best] * S->px[best])) best = k;
    if (best == na) break;
    double nb = d[best] * S->px[best];
    cash += nb + trade_cost(S, nb);
    d[best] = 0;
  }
  return cash;
}

/* Applies trades d (shares, over the sub-account's assets) at prices
 * S->px: records them and a rebalance, updates positions and cash. */
static keel_status apply_trades(run *E, sub_run *S, size_t t, const double *d, keel_trade_reason why, double V,
                                int always) {
  double costs = 0, traded = 0;
  uint32_t ntr = 0;
  keel_status st;
  for (size_t k = 0; k < S->na; k++) {
    if (d[k] == 0) continue;
    double p = S->px[k], notional = d[k] * p, cost = trade_cost(S, notional);
    if ((st = add_trade(E, S, t, k, why, d[k], p, cost))) return st;
    position_update(S, k, d[k], p);
    S->shares[k] += d[k];
    S->cash -= notional + cost;
    S->marked = 0;
    costs += cost;
    traded += fabs(notional);
    ntr++;
  }
  return ntr || always ? add_rebalance(E, S, t, why, V, costs, traded, ntr) : KEEL_OK;
}

/* Trades the sub-account to targets tau at prices S->px (NaN: no price).
 * Assets without a price or with a pending stop keep their holdings. */
#ifdef KEEL_ENGINE_AVX2
/* trade_to's set of assets that trade, four at a time (the same test,
 * tradable and |tau k - x| > tol, as 0/1 bytes): whole groups of four;
 * returns the first asset left. */
__attribute__((target("avx2"))) static size_t trade_set_avx2(size_t na, const unsigned char *restrict tradable,
                                                             const double *restrict tau, const double *restrict x,
                                                             double k, double tol, unsigned char *restrict in,
                                                             int *changed, size_t *ns) {
  /* byte l of SPREAD[m] is bit l of m */
  static const uint32_t SPREAD[16] = {0x00000000, 0x00000001, 0x00000100, 0x00000101, 0x00010000, 0x00010001,
                                      0x00010100, 0x00010101, 0x01000000, 0x01000001, 0x01000100, 0x01000101,
                                      0x01010000, 0x01010001, 0x01010100, 0x01010101};
  const __m256d kv = _mm256_set1_pd(k), tv = _mm256_set1_pd(tol), sign = _mm256_set1_pd(-0.0);
  uint32_t ch = 0;
  size_t n = 0, j = 0;
  for (; j + 4 <= na; j += 4) {
    const __m256d d = _mm256_sub_pd(_mm256_mul_pd(_mm256_loadu_pd(tau + j), kv), _mm256_loadu_pd(x + j));
    const int m = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_andnot_pd(sign, d), tv, _CMP_GT_OQ));
    uint32_t t, old;
    memcpy(&t, tradable + j, 4);
    memcpy(&old, in + j, 4);
    const uint32_t sb = SPREAD[m] & t;
    ch |= sb ^ old;
    memcpy(in + j, &sb, 4);
    n += (size_t)__builtin_popcount(sb);
  }
  *changed |= ch != 0;
  *ns += n;
  return j;
}
#endif

static keel_status trade_to(run *E, sub_run *S, size_t t, const double *tau, keel_trade_reason why) {
  const size_t na = S->na;
  double V = sub_value(S), XF = 0, WT = 0;
  unsigned char *restrict tradable = S->tradable, *restrict in = S->in_s;
  const double *restrict px = S->px, *restrict x = S->x;
  const unsigned char *restrict pend = S->pending;
  const double tol = TRADE_TOL * fabs(V);
  /* Which assets can trade, and (as a first guess, for the usual k(V) = V)
   * which would at V, in one branch-free pass */
  size_t ns = 0;
  for (size_t k = 0; k < na; k++) {
    unsigned char ok = (px[k] == px[k]) & !pend[k];
    tradable[k] = ok;
    WT += ok ? tau[k] : 0;
    XF += ok ? 0 : x[k];
    unsigned char sj = ok & (fabs(tau[k] * V - x[k]) > tol);
    in[k] = sj;
    ns += sj;
  }
  rebal_problem q = {.na = na, .tau = tau, .x = S->x, .in_s = S->in_s, .cb = S->cb, .cs = S->cs, .fee = S->fee,
                     .V = V, .XF = XF, .WT = WT, .borrow = S->borrow, .ns = ns, .avx2 = S->avx2};
  /* Which assets trade is decided at the solution, re-solved until the set
   * is stable (it changes only when a target lands within the tolerance
   * of its holding). */
  double vp = V;
  for (int iter = 0;; iter++) {
    if (iter > 0 || scale_k(&q, V) != V) {
      double k = scale_k(&q, vp);
      int changed = 0;
      ns = 0;
      size_t j = 0;
#ifdef KEEL_ENGINE_AVX2
      if (S->avx2) j = trade_set_avx2(na, tradable, tau, x, k, tol, in, &changed, &ns);
#endif
      for (; j < na; j++) {
        unsigned char sj = tradable[j] & (fabs(tau[j] * k - x[j]) > tol);
        changed |= sj != in[j];
        in[j] = sj;
        ns += sj;
      }
      q.ns = ns;
      if (iter > 0 && !changed) break;
    }
    if (solve_vp(&q, S->bp, &vp) != 0) {
      char db[KEEL_DATE_BUFSIZE];
      return keeli_error(E->ctx, KEEL_EINFEASIBLE,
                         "backtest: on %s trading costs (%zu trades x fee %g) exceed the account's value %.2f "
                         "(sub-account %s)",
                         date_str(E->dates[E->start + t], db), ns, S->fee, V, S->sp->name);
    }
    if (iter == 7) break; /* keep the set the last solve used */
  }
  const double k = scale_k(&q, vp);
  double *d = S->tmp;
  if (!S->rounding) {
    /* exact: holdings at target after costs; cash is what is left. The
     * trades are written straight into the result (room for all at once). */
    keel_backtest_result *r = E->r;
    if (r->ntrades + q.ns > r->tradecap &&
        keeli_reserve(E->ctx, (void **)&r->trades, &r->tradecap, r->ntrades + q.ns, sizeof *r->trades))
      return KEEL_ENOMEM;
    keel_trade *tr = r->trades + r->ntrades;
    const keel_date day = E->dates[E->start + t];
    double costs = 0, traded = 0, held = 0;
    for (size_t j = 0; j < na; j++) {
      if (!S->in_s[j]) {
        held += S->x[j];
        continue;
      }
      double hj = tau[j] * k, p = S->px[j], sh = hj / p, ds = sh - S->shares[j], notional = ds * p;
      double cost = trade_cost(S, notional);
      *tr++ = (keel_trade){.date = day, .asset = (uint32_t)S->col[j], .sub = S->idx, .reason = why, .shares = ds,
                           .price = p, .notional = notional, .cost = cost};
      position_update(S, j, ds, p);
      S->shares[j] = sh;
      costs += cost;
      traded += fabs(notional);
      held += hj;
    }
    const uint32_t ntr = (uint32_t)(tr - (r->trades + r->ntrades));
    r->ntrades += ntr;
    S->ntrades += ntr;
    S->traded_row += traded;
    S->costs_row += costs;
    S->cash = V - costs - held;
    S->marked = 0;
    return add_rebalance(E, S, t, why, V, costs, traded, ntr);
  }
  for (size_t j = 0; j < na; j++) d[j] = S->in_s[j] ? tau[j] * k / S->px[j] - S->shares[j] : 0;
  round_trades(S, d, S->cash);
  return apply_trades(E, S, t, d, why, V, 1);
}

/* Buys (amount > 0) of the assets in proportion to weights tau, paid from
 * cash: b_j = tau_j K with sum b_j (1 + cb) + fee n = amount sum tau
 * over the tradable, unlocked assets. */
static keel_status buy_pro_rata(run *E, sub_run *S, size_t t, const double *tau, double amount,
                                keel_trade_reason why) {
  const size_t na = S->na;
  double T = 0;
  size_t nb = 0;
  for (size_t k = 0; k < na; k++) {
    S->in_s[k] = !isnan(S->px[k]) && !S->pending[k] && !S->locked[k] && tau[k] > 0;
    if (S->in_s[k]) T += tau[k], nb++;
  }
  if (!(T > 0) || !(amount > 0)) return KEEL_OK;
  double spend = fmin(amount * T, S->borrow ? INFINITY : S->cash);
  double K = (spend - S->fee * (double)nb) / (T * (1 + S->cb));
  if (!(K > 0)) return KEEL_OK; /* the fees would eat the installment */
  double V = sub_value(S), *d = S->tmp;
  for (size_t k = 0; k < na; k++) d[k] = S->in_s[k] ? tau[k] * K / S->px[k] : 0;
  if (S->rounding) round_trades(S, d, S->cash);
  return apply_trades(E, S, t, d, why, V, 0);
}

/* Sales in proportion to the holdings' values raising `need` net of costs. */
static keel_status sell_pro_rata(run *E, sub_run *S, size_t t, double need, keel_trade_reason why) {
  const size_t na = S->na;
  double V = sub_value(S), X = 0;
  size_t ns = 0;
  for (size_t k = 0; k < na; k++) {
    S->in_s[k] = !isnan(S->px[k]) && !S->pending[k] && S->shares[k] > 0;
    if (S->in_s[k]) X += S->x[k], ns++;
  }
  if (!(X > 0) || !(need > 0)) return KEEL_OK;
  double M = fmin((need + S->fee * (double)ns) / (X * (1 - S->cs)), 1), *d = S->tmp;
  for (size_t k = 0; k < na; k++) d[k] = S->in_s[k] ? (M >= 1 ? -S->shares[k] : -S->shares[k] * M) : 0;
  if (S->rounding) round_trades(S, d, S->cash);
  return apply_trades(E, S, t, d, why, V, 0);
}

/* ---- targets ---- */

/* The band's half-widths around the current targets. */
static void band_widths(sub_run *S) {
  if (S->sp->band.kind == KEEL_BAND_NONE) return;
  keeli_band_widths(&S->sp->band, S->na, S->tau, S->bw);
  /* for band_inside: the widths less a margin, when the targets and
   * widths are of a size the margin covers the rounding of */
  int ok = 1;
  for (size_t k = 0; k < S->na; k++) {
    S->bwm[k] = S->bw[k] - BAND_MARGIN;
    ok &= fabs(S->tau[k]) <= 1000 && S->bw[k] <= 1000 && S->bw[k] > 2 * BAND_MARGIN;
  }
  S->bw_margin_ok = ok;
}

/* Moves the weight of locked assets in tau to cash or to the defensive
 * basket (everything, when the whole sub-account is locked). */
static void redirect_locked(const sub_run *S, double *tau) {
  const keel_subaccount_spec *sp = S->sp;
  const size_t na = S->na;
  if (S->sub_locked) {
    int def = sp->stops[S->sub_rule].action == KEEL_STOP_TO_DEFENSIVE;
    for (size_t k = 0; k < na; k++) tau[k] = def ? sp->defensive[k] : 0;
    return;
  }
  double moved = 0;
  for (size_t k = 0; k < na; k++) {
    if (!S->locked[k]) continue;
    if (sp->stops[S->lock_rule[k]].action == KEEL_STOP_TO_DEFENSIVE) moved += tau[k];
    tau[k] = 0;
  }
  if (moved > 0) {
    double ds = 0;
    for (size_t k = 0; k < na; k++)
      if (!S->locked[k]) ds += sp->defensive[k];
    for (size_t k = 0; k < na; k++)
      if (!S->locked[k] && ds > 0) tau[k] += moved * sp->defensive[k] / ds;
  }
}

/* The effective targets: base times the vol scale, with locked assets'
 * weight moved to cash or to the defensive basket. */
static void effective_targets(sub_run *S) {
  for (size_t k = 0; k < S->na; k++) S->tau[k] = S->base[k] * S->volk;
  if (S->sp->nstops) redirect_locked(S, S->tau);
  band_widths(S);
}

/* Returns of the sub-account's assets over the `rows` rows ending at row
 * t (from the prices of panel rows start+t-rows .. start+t; history before
 * the run counts) into S->R. Returns the number of rows filled. */
static size_t window_returns(const run *E, sub_run *S, size_t t, size_t rows) {
  const size_t i1 = E->start + t, lo = i1 >= rows ? i1 - rows : 0;
  keeli_window_returns(E->panel, S->col, S->na, lo, i1, S->R, NULL);
  return i1 - lo;
}

static keel_status update_volk(run *E, sub_run *S, size_t t) {
  const keel_voltarget *v = &S->sp->vol;
  size_t m = window_returns(E, S, t, v->window);
  double k, sg;
  keel_status st = keel_voltarget_scale(E->ctx, v, S->na, S->base, S->R, m, E->spec->periods_per_year, &k, &sg);
  if (st == KEEL_EINVAL) {
    /* fewer than two usable returns (too little history yet, or its assets
     * not priced): hold the basket unscaled */
    keel_clear_error(E->ctx);
    k = fmin(1, v->leverage_cap);
    st = KEEL_OK;
  }
  if (st) return st;
  S->volk = k;
  return KEEL_OK;
}

static keel_status accept_targets(run *E, sub_run *S, size_t t, const double *target, const keel_opt_record *rec);

/* What a strategy sees at row t (S->w set to the current weights). */
static keel_strategy_input strategy_input(run *E, sub_run *S, size_t t) {
  const size_t na = S->na;
  double V = sub_value(S);
  for (size_t k = 0; k < na; k++) S->w[k] = V != 0 ? S->x[k] / V : 0;
  return (keel_strategy_input){.panel = E->panel, .row = E->start + t, .first_row = E->start,
                               .date = E->dates[E->start + t], .nassets = na, .assets = S->col, .weights = S->w,
                               .shares = S->shares, .cash = S->cash, .value = V, .cost_buy = S->cbv,
                               .cost_sell = S->csv, .periods_per_year = E->spec->periods_per_year};
}

static keel_status refresh_targets(run *E, sub_run *S, size_t t) {
  const keel_subaccount_spec *sp = S->sp;
  S->base_same = 0;
  if (sp->weights) {
    /* a fixed basket: the same base weights at every decision after the
     * first, so the targets and band widths need not be made again */
    if (t > 0 && memcmp(S->base, sp->weights, S->na * sizeof(double)) == 0) {
      S->base_same = 1;
      return KEEL_OK;
    }
    memcpy(S->base, sp->weights, S->na * sizeof(double));
    return KEEL_OK;
  }
  keel_strategy_input in = strategy_input(E, S, t);
  keel_status st;
  const keel_strategy *sg = sp->strategy;
  if (t == 0 && sg->ops->init && (st = sg->ops->init(sg->state, E->ctx, &in))) return st;
  keel_opt_record rec;
  memset(&rec, 0, sizeof rec);
  if ((st = sg->ops->rebalance(sg->state, E->ctx, &in, S->base, &rec))) return st;
  return accept_targets(E, S, t, S->base, &rec);
}

/* Checks the weights a strategy gave and keeps its optimiser call. */
static keel_status accept_targets(run *E, sub_run *S, size_t t, const double *target, const keel_opt_record *rec) {
  const keel_subaccount_spec *sp = S->sp;
  const keel_strategy *sg = sp->strategy;
  const size_t na = S->na;
  double sum = 0;
  for (size_t k = 0; k < na; k++) {
    double w = target[k];
    if (!isfinite(w) || (w < 0 && !sp->allow_short))
      return keeli_error(E->ctx, KEEL_EINVAL, "backtest: strategy %s gave %s the weight %g in sub-account %s",
                         sg->ops->name ? sg->ops->name : "?", keel_panel_symbol(E->panel, S->col[k]), w, sp->name);
    sum += w;
  }
  if (sum > 1 + 1e-9)
    return keeli_error(E->ctx, KEEL_EINVAL, "backtest: strategy %s gave weights summing to %.15g in sub-account %s",
                       sg->ops->name ? sg->ops->name : "?", sum, sp->name);
  if (rec->used) {
    keel_backtest_result *r = E->r;
    if (keeli_reserve(E->ctx, (void **)&r->opt, &r->optcap, r->nopt + 1, sizeof *r->opt)) return KEEL_ENOMEM;
    r->opt[r->nopt++] = (keel_opt_call){E->dates[E->start + t], S->idx, *rec};
  }
  return KEEL_OK;
}

/* ---- the steps of a row ---- */

static keel_status step_fills(run *E, sub_run *S, size_t t) {
  const keel_subaccount_spec *sp = S->sp;
  keel_status st;
  if (S->sub_pending) {
    /* a drawdown stop: everything to cash or to the defensive basket */
    int def = sp->stops[S->sub_rule].action == KEEL_STOP_TO_DEFENSIVE;
    for (size_t k = 0; k < S->na; k++) S->pending[k] = 0;
    for (size_t k = 0; k < S->na; k++) S->tau[k] = def ? sp->defensive[k] : 0;
    if ((st = trade_to(E, S, t, S->tau, KEEL_REASON_STOP))) return st;
    int left = 0;
    for (size_t k = 0; k < S->na; k++)
      if (isnan(S->px[k]) && S->shares[k] != 0 && !(def && sp->defensive[k] > 0)) left = 1;
    if ((st = add_event(E, S, t, KEEL_EVENT_STOP_FILL, -1, KEEL_STOP_DRAWDOWN, sub_value(S), NAN))) return st;
    if (!left) {
      S->sub_pending = 0;
      S->sub_locked = 1;
      S->sub_fill_row = t;
    }
    return KEEL_OK;
  }
  /* the fills of a row are one trade group; defensive purchases follow */
  double *d = S->tmp, V = sub_value(S), net = 0;
  int any = 0, defensive = 0;
  for (size_t k = 0; k < S->na; k++) {
    d[k] = 0;
    if (!S->pending[k] || isnan(S->px[k])) continue;
    d[k] = -S->shares[k];
    any = 1;
  }
  if (!any) return KEEL_OK;
  if ((st = apply_trades(E, S, t, d, KEEL_REASON_STOP, V, 0))) return st;
  for (size_t k = 0; k < S->na; k++) {
    if (!S->pending[k] || isnan(S->px[k])) continue;
    const keel_stop_rule *rule = &sp->stops[S->pend_rule[k]];
    if ((st = add_event(E, S, t, KEEL_EVENT_STOP_FILL, (long)k, rule->kind, S->px[k], NAN))) return st;
    S->pending[k] = 0;
    S->locked[k] = 1;
    S->lock_rule[k] = S->pend_rule[k];
    S->fill_row[k] = t;
    if (rule->action == KEEL_STOP_TO_DEFENSIVE) {
      net += -d[k] * S->px[k] * (1 - S->cs) - S->fee;
      defensive = 1;
    }
  }
  if (defensive && net > 0 && (st = buy_pro_rata(E, S, t, sp->defensive, net, KEEL_REASON_STOP))) return st;
  return KEEL_OK;
}

/* Mean of the last `days` closes with a price of panel column c up to
 * panel row i (NaN if there are fewer). */
static double moving_average(const run *E, size_t c, size_t i, unsigned days) {
  double s = 0;
  unsigned m = 0;
  for (size_t r = i + 1; r-- > 0 && m < days;) {
    double p = E->px[r * E->na_panel + c];
    if (!isnan(p)) s += p, m++;
  }
  return m == days ? s / days : NAN;
}

static int reentry_holds(const run *E, const sub_run *S, const keel_stop_rule *rule, size_t t, size_t fill, long k) {
  switch (rule->reentry) {
    case KEEL_REENTRY_NEVER: return 0;
    case KEEL_REENTRY_AFTER_DAYS: return t - fill >= rule->days;
    case KEEL_REENTRY_ABOVE_MA:
      if (k >= 0) {
        double p = S->px[k];
        double ma = moving_average(E, S->col[k], E->start + t, rule->days);
        return !isnan(p) && !isnan(ma) && p > ma;
      } else {
        if (S->ringcnt < rule->days) return 0;
        double s = 0;
        for (size_t j = 0; j < rule->days; j++) s += S->ring[(S->ringpos + S->ringn - 1 - j) % S->ringn];
        return S->shadow > s / rule->days;
      }
  }
  return 0;
}

static keel_status step_reentry(run *E, sub_run *S, size_t t) {
  keel_status st;
  S->reentered = 0;
  if (S->sub_locked && reentry_holds(E, S, &S->sp->stops[S->sub_rule], t, S->sub_fill_row, -1)) {
    S->sub_locked = 0;
    S->twr_peak = S->twr;
    S->reentered = 1;
    if ((st = add_event(E, S, t, KEEL_EVENT_REENTRY, -1, KEEL_STOP_DRAWDOWN, S->shadow, NAN))) return st;
  }
  for (size_t k = 0; k < S->na; k++) {
    if (!S->locked[k]) continue;
    const keel_stop_rule *rule = &S->sp->stops[S->lock_rule[k]];
    if (!reentry_holds(E, S, rule, t, S->fill_row[k], (long)k)) continue;
    S->locked[k] = 0;
    S->reentered = 1;
    if ((st = add_event(E, S, t, KEEL_EVENT_REENTRY, (long)k, rule->kind, S->px[k], NAN))) return st;
  }
  return KEEL_OK;
}

static double installment(const keel_dca *p, keel_date first, keel_date d) {
  double years = floor((double)(d - first) / 365.25);
  return p->amount * pow(1 + p->step_up, years);
}

/* A cash flow through keel_cashflow_allocate, the cash sleeve (1 - sum
 * tau) taking part as one more asset: a contribution (amount > 0, already
 * in cash) buys the most underweight first, a withdrawal (< 0) sells the
 * most overweight first. The costs come out of the flow: the gross amount
 * G allocated solves G + costs(G) = amount (contribution) or G - costs(G)
 * = |amount| (withdrawal), by fixed-point iteration (a contraction by the
 * cost rate). Assets that cannot trade take no part. */
static keel_status flow_underweight(run *E, sub_run *S, size_t t, double amount) {
  const size_t na = S->na;
  double V = sub_value(S), tsum = 0, *xa = S->h, *ta = S->bp, *out = S->w;
  for (size_t k = 0; k < na; k++) {
    int ok = !isnan(S->px[k]) && !S->pending[k] && !S->locked[k];
    xa[k] = ok ? fmax(S->x[k], 0) : 0;
    ta[k] = ok ? fmax(S->tau[k], 0) : 0;
    tsum += fmax(S->tau[k], 0);
  }
  const double A = fabs(amount);
  xa[na] = fmax(amount > 0 ? S->cash - A : S->cash, 0);
  ta[na] = fmax(1 - tsum, 0);
  double cap = 0;
  for (size_t k = 0; k <= na; k++) cap += xa[k];
  double G = amount > 0 ? A / (1 + S->cb) : fmin(A, cap);
  keel_status st;
  for (int it = 0; it < 60; it++) {
    if ((st = keel_cashflow_allocate(E->ctx, na + 1, xa, ta, amount > 0 ? G : -G, out))) return st;
    double traded = 0;
    size_t n = 0;
    for (size_t k = 0; k < na; k++)
      if (out[k] != 0) traded += fabs(out[k]), n++;
    double c = (amount > 0 ? S->cb : S->cs) * traded + S->fee * (double)n;
    double G1 = amount > 0 ? A - c : fmin(A + c, cap);
    if (!(G1 > 0)) return KEEL_OK; /* costs would take it all: nothing trades */
    if (fabs(G1 - G) <= 1e-14 * A) break;
    G = G1;
  }
  double *d = S->tmp;
  for (size_t k = 0; k < na; k++) {
    d[k] = out[k] != 0 ? out[k] / S->px[k] : 0;
    if (amount < 0 && d[k] < -S->shares[k]) d[k] = -S->shares[k];
    S->in_s[k] = d[k] != 0;
  }
  if (S->rounding) round_trades(S, d, S->cash);
  return apply_trades(E, S, t, d, KEEL_REASON_DCA, V, 0);
}

/* The trades of DCA plan i's installment A (money in is already in cash;
 * money out leaves once raised, as a flow of this row). */
static keel_status dca_execute(run *E, sub_run *S, size_t t, size_t i, double A) {
  const keel_dca *p = &S->sp->dca[i];
  keel_status st;
  if (A > 0) {
    if (p->source == KEEL_DCA_FROM_CASH) A = fmin(A, fmax(S->cash, 0));
    if (p->dest == KEEL_DCA_TO_TARGET) return buy_pro_rata(E, S, t, S->tau, A, KEEL_REASON_DCA);
    return flow_underweight(E, S, t, A);
  }
  double W = -A;
  if (p->dest == KEEL_DCA_TO_TARGET) {
    if (S->cash < W && (st = sell_pro_rata(E, S, t, W - S->cash, KEEL_REASON_DCA))) return st;
  } else if ((st = flow_underweight(E, S, t, -W))) {
    return st;
  }
  double out = fmin(W, fmax(S->cash, 0));
  if (p->source == KEEL_DCA_EXTERNAL) {
    S->cash -= out;
    S->marked = 0;
    S->flow_row -= out;
  }
  return KEEL_OK;
}

/* The installments due on this row: money in arrives now; the trades
 * follow at this close, or at the next open. */
static keel_status step_dca(run *E, sub_run *S, size_t t) {
  const keel_subaccount_spec *sp = S->sp;
  const keel_date d = E->dates[E->start + t], prev = t ? E->dates[E->start + t - 1] : KEEL_DATE_NONE;
  keel_status st;
  for (size_t i = 0; i < sp->ndca; i++) {
    const keel_dca *p = &sp->dca[i];
    if (p->start != KEEL_DATE_NONE && d < p->start) continue;
    if (p->end != KEEL_DATE_NONE && d > p->end) continue;
    int first = S->dca_first[i] == KEEL_DATE_NONE;
    if (!first && !keel_schedule_due(&p->schedule, prev, d, t)) continue;
    if (first) S->dca_first[i] = d;
    double A = installment(p, S->dca_first[i], d);
    if (A > 0 && p->source == KEEL_DCA_EXTERNAL) {
      S->cash += A;
      S->marked = 0;
      S->flow_row += A;
    }
    if (E->op)
      S->dca_order[i] += A;
    else if ((st = dca_execute(E, S, t, i, A)))
      return st;
  }
  return KEEL_OK;
}

/* The cost-aware skip: is gamma/2 (w - tau)' S (w - tau) h above the cost
 * of trading straight to tau, per unit of value? */
static int worth_trading(run *E, sub_run *S, size_t t, double V) {
  const keel_subaccount_spec *sp = S->sp;
  const size_t na = S->na;
  size_t m = window_returns(E, S, t, sp->skip_lookback);
  keel_cov_options o;
  keel_cov_options_default(&o);
  o.missing = KEEL_MISSING_PAIRWISE;
  o.periods_per_year = E->spec->periods_per_year;
  if (m < 3 || keel_cov(E->ctx, keel_cmat_view(S->R, m, na), &o, keel_mat_view(S->cov, na, na), NULL) != KEEL_OK) {
    keel_clear_error(E->ctx); /* no estimate yet: trade */
    return 1;
  }
  double cost = 0, te = 0;
  for (size_t k = 0; k < na; k++) {
    double dv = S->tau[k] * V - S->x[k];
    if (!isnan(S->px[k]) && fabs(dv) > TRADE_TOL * fabs(V)) cost += (dv > 0 ? S->cb * dv : -S->cs * dv) + S->fee;
    S->w[k] = S->x[k] / V - S->tau[k];
  }
  for (size_t i = 0; i < na; i++)
    for (size_t j = 0; j < na; j++) {
      double c = S->cov[i * na + j];
      if (!isnan(c)) te += S->w[i] * c * S->w[j];
    }
  static const double period_years[] = {1 / 252.0, 1 / 52.0, 1 / 12.0, 1 / 4.0, 1, 1, 0};
  const keel_schedule *sc = sp->band.kind != KEEL_BAND_NONE ? &sp->band_check : &sp->schedule;
  double h = sc->calendar == KEEL_CAL_EVERY_N ? sc->every / E->spec->periods_per_year : period_years[sc->calendar];
  return sp->skip_gamma / 2 * te * h > cost / V;
}

static keel_status step_rebalance(run *E, sub_run *S, size_t t, int due) {
  const keel_subaccount_spec *sp = S->sp;
  const size_t na = S->na;
  keel_trade_reason why;
  const double *target = S->tau;
  if (t == 0) {
    if (!sp->invest_at_start) return KEEL_OK; /* the capital waits in cash */
    why = KEEL_REASON_INITIAL;
  } else if (S->reentered) {
    why = KEEL_REASON_REENTRY;
  } else if (due && (sp->band.kind == KEEL_BAND_NONE || sp->rebalance_on_schedule)) {
    why = KEEL_REASON_CALENDAR;
  } else {
    why = KEEL_REASON_BAND;
    int breach = 0;
    double V = 0;
    if (S->band_row[t]) {
      /* keel_band_breached with the widths kept since the targets last
       * changed, on the shared marking */
      V = sub_value(S);
      breach = band_outside(na, S->x, S->tau, S->bw, V);
    }
    if (breach) {
      if (sp->band.action != KEEL_BAND_TO_TARGET) {
        for (size_t k = 0; k < na; k++) S->w[k] = S->x[k] / V;
        keel_band_adjust(&sp->band, na, S->w, S->tau, S->h);
        target = S->h;
      }
    } else if (sp->vol.target > 0 && fabs(S->volk - S->volk_traded) > sp->vol.rebalance_band * S->volk_traded) {
      why = KEEL_REASON_VOLTARGET;
    } else {
      return KEEL_OK;
    }
  }
  if (sp->skip_gamma > 0 && (why == KEEL_REASON_CALENDAR || why == KEEL_REASON_BAND || why == KEEL_REASON_VOLTARGET)) {
    double V = sub_value(S);
    if (V > 0 && !worth_trading(E, S, t, V)) return KEEL_OK;
  }
  S->volk_traded = S->volk;
  if (E->op) { /* the next open executes what this close decided */
    if (target != S->order_tau) memcpy(S->order_tau, target, na * sizeof(double));
    S->order = 1;
    S->order_why = why;
    return KEEL_OK;
  }
  return trade_to(E, S, t, target, why);
}

/* A strategy's on_bar: new weights now, when it asks. */
static keel_status step_on_bar(run *E, sub_run *S, size_t t) {
  const keel_strategy *sg = S->sp->strategy;
  keel_strategy_input in = strategy_input(E, S, t);
  keel_opt_record rec;
  memset(&rec, 0, sizeof rec);
  int go = 0;
  double *target = S->h;
  keel_status st = sg->ops->on_bar(sg->state, E->ctx, &in, target, &go, &rec);
  if (st || !go) return st;
  if ((st = accept_targets(E, S, t, target, &rec))) return st;
  memcpy(S->base, target, S->na * sizeof(double));
  effective_targets(S);
  S->volk_traded = S->volk;
  if (E->op) {
    memcpy(S->order_tau, S->tau, S->na * sizeof(double));
    S->order = 1;
    S->order_why = KEEL_REASON_STRATEGY;
    return KEEL_OK;
  }
  return trade_to(E, S, t, S->tau, KEEL_REASON_STRATEGY);
}

static keel_status step_stops(run *E, sub_run *S, size_t t) {
  const keel_subaccount_spec *sp = S->sp;
  keel_status st;
  /* peaks follow every close of a position */
  for (size_t k = 0; k < S->na; k++)
    if (S->shares[k] > 0 && !isnan(S->px[k]) && !(S->peak[k] >= S->px[k])) S->peak[k] = S->px[k];
  for (size_t i = 0; i < sp->nstops; i++) {
    const keel_stop_rule *rule = &sp->stops[i];
    if (rule->kind == KEEL_STOP_DRAWDOWN) {
      if (S->sub_locked || S->sub_pending) continue;
      double lvl = S->twr_peak * (1 - rule->level);
      if (S->twr <= lvl) {
        S->sub_pending = 1;
        S->sub_rule = (int)i;
        if ((st = add_event(E, S, t, KEEL_EVENT_STOP, -1, rule->kind, S->twr, lvl))) return st;
      }
      continue;
    }
    for (size_t k = 0; k < S->na; k++) {
      if (rule->asset >= 0 && (size_t)rule->asset != k) continue;
      if (!(S->shares[k] > 0) || S->locked[k] || S->pending[k] || S->sub_pending || isnan(S->px[k])) continue;
      double c = S->px[k], ref = rule->ref == KEEL_STOP_REF_AVG_COST ? S->avg[k] : S->entry[k], lvl;
      int hit;
      switch (rule->kind) {
        case KEEL_STOP_LOSS: lvl = ref * (1 - rule->level), hit = c <= lvl; break;
        case KEEL_STOP_TAKE_PROFIT: lvl = ref * (1 + rule->level), hit = c >= lvl; break;
        default: lvl = S->peak[k] * (1 - rule->level), hit = c <= lvl; break;
      }
      if (!hit) continue;
      S->pending[k] = 1;
      S->pend_rule[k] = (int)i;
      if ((st = add_event(E, S, t, KEEL_EVENT_STOP, (long)k, rule->kind, c, lvl))) return st;
    }
  }
  return KEEL_OK;
}

/* The open of row t, when trades fill at the next open: stops triggered on
 * the last close, then what that close decided (DCA, a rebalance), at the
 * open's prices; an asset without an open cannot trade, and is valued at
 * its last close. */
static keel_status step_open(run *E, sub_run *S, size_t t) {
  const keel_subaccount_spec *sp = S->sp;
  const double *orow = E->op + (E->start + t) * E->na_panel;
  keel_status st;
  for (size_t k = 0; k < S->na; k++) {
    double o = orow[S->col[k]];
    S->opx[k] = o;
    S->olp[k] = o == o ? o : S->lastp[k];
  }
  S->px = S->opx;
  S->lastp = S->olp;
  S->marked = 0;
  if (sp->nstops && (st = step_fills(E, S, t))) return st;
  for (size_t i = 0; i < sp->ndca; i++) {
    double A = S->dca_order[i];
    S->dca_order[i] = 0;
    if (A != 0 && (st = dca_execute(E, S, t, i, A))) return st;
  }
  if (S->order) {
    /* a stop that filled just now locks its asset out of the order too */
    S->order = 0;
    if (sp->nstops) redirect_locked(S, S->order_tau);
    if ((st = trade_to(E, S, t, S->order_tau, S->order_why))) return st;
  }
  return KEEL_OK;
}

/* The marking, the time-weighted index and the row's results, at the
 * end of every row. */
static inline void end_row(sub_run *S, size_t t, double V) {
  if (S->twr_on) {
    if (t > 0 && S->vprev > 0) S->twr *= (V - S->flow_row) / S->vprev;
    if (S->twr > S->twr_peak) S->twr_peak = S->twr;
  }
  S->vprev = V;
}

static inline void store_row(sub_run *S, size_t t, double V) {
  S->res->values[t] = V;
  S->res->cash[t] = S->cash;
  S->res->flows[t] = S->flow_row;
  S->res->traded[t] = S->traded_row;
  S->res->costs[t] = S->costs_row;
}

/* For fewer than 16 assets with prices straight from the panel:
 * sub_value's marking (mark_priced's sums, the same order) into *V, then
 * band_inside on the values still in registers (reading them back from x
 * right after storing them one by one would stall). */
#if defined(__GNUC__)
#define KEEL_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define KEEL_ALWAYS_INLINE inline
#endif
static KEEL_ALWAYS_INLINE int mark_inside_n(sub_run *S, double *V, const size_t na) {
  const double *restrict sh = S->shares, *restrict lp = S->lastp, *restrict tau = S->tau, *restrict bwm = S->bwm;
  double *restrict x = S->x;
#define LANE(j) const double x##j = (j) < na ? (x[j] = sh[j] * lp[j]) : 0.0, l##j = (j) < na ? 0.0 + x##j : 0.0
  LANE(0); LANE(1); LANE(2); LANE(3); LANE(4); LANE(5); LANE(6); LANE(7);
  LANE(8); LANE(9); LANE(10); LANE(11); LANE(12); LANE(13); LANE(14); LANE(15);
#undef LANE
  const double b0 = l0 + l8, b1 = l1 + l9, b2 = l2 + l10, b3 = l3 + l11, b4 = l4 + l12, b5 = l5 + l13,
               b6 = l6 + l14, b7 = l7 + l15;
  const double c0 = b0 + b4, c1 = b1 + b5, c2 = b2 + b6, c3 = b3 + b7;
  const double v = S->cash + ((c0 + c2) + (c1 + c3));
  S->vmark = *V = v;
  S->marked = 1;
  if (!(v > 0)) return 0;
  /* each lane's test, combined as a tree (not a chain) */
#define IN(j) const int i##j = (j) >= na || fabs(x##j - tau[(j) < na ? (j) : 0] * v) < bwm[(j) < na ? (j) : 0] * v
  IN(0); IN(1); IN(2); IN(3); IN(4); IN(5); IN(6); IN(7);
  IN(8); IN(9); IN(10); IN(11); IN(12); IN(13); IN(14); IN(15);
#undef IN
  return (((i0 & i1) & (i2 & i3)) & ((i4 & i5) & (i6 & i7))) & (((i8 & i9) & (i10 & i11)) & ((i12 & i13) & (i14 & i15)));
}

/* mark_inside_n for each basket size below 16, so each is straight-line
 * code without the lanes it does not have (their +0 terms leave the sums'
 * bits unchanged: a lane 0 + x is never -0). */
/* return F(k) for basket size na = k from 1 to 15, so each case is
 * straight-line code for its size; else return DFLT */
#define SMALL_NA_CASES(na, F, DFLT)                                                                          \
  switch (na) {                                                                                              \
    case 1: return F(1);   case 2: return F(2);   case 3: return F(3);   case 4: return F(4);              \
    case 5: return F(5);   case 6: return F(6);   case 7: return F(7);   case 8: return F(8);              \
    case 9: return F(9);   case 10: return F(10); case 11: return F(11); case 12: return F(12);            \
    case 13: return F(13); case 14: return F(14); case 15: return F(15); default: return DFLT;             \
  }
static int mark_inside_small(sub_run *S, double *V) {
#define F(k) mark_inside_n(S, V, k)
  SMALL_NA_CASES(S->na, F, F(S->na))
#undef F
}

#ifdef KEEL_ENGINE_AVX2
/* mark_inside_small in 4-wide vectors: lanes 4 q .. 4 q + 3 of the sixteen
 * in vector q (the prices' last partial vector read with a mask, so no
 * read goes past the basket; the lanes past it are 0, as there). The sums
 * are the same tree, b_k = l_k + l_(k+8) and c_k = b_k + b_(k+4) lane by
 * lane, then (c0 + c2) + (c1 + c3), and each test the same expression, so
 * the value, x and the answer have the same bits. x, tau and bwm are
 * padded to whole vectors (0, 0 and 1). */
__attribute__((target("avx2"))) static KEEL_ALWAYS_INLINE __m256d mark4(const sub_run *S, size_t k, size_t na) {
  const __m256d z = _mm256_setzero_pd();
  if (k >= na) return z;
  __m256d x;
  if (k + 4 <= na) {
    x = _mm256_mul_pd(_mm256_loadu_pd(S->shares + k), _mm256_loadu_pd(S->lastp + k));
  } else {
    const __m256i m = _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)(na - k)), _mm256_setr_epi64x(0, 1, 2, 3));
    x = _mm256_mul_pd(_mm256_loadu_pd(S->shares + k), _mm256_maskload_pd(S->lastp + k, m));
  }
  _mm256_storeu_pd(S->x + k, x);
  return x;
}
/* cash + the sum of the sixteen lanes x0..x3 by mark_inside_n's tree:
 * b_k = l_k + l_(k+8), c_k = b_k + b_(k+4), then (c0 + c2) + (c1 + c3),
 * each lane l = 0 + x */
__attribute__((target("avx2"))) static KEEL_ALWAYS_INLINE double value4(double cash, __m256d x0, __m256d x1,
                                                                         __m256d x2, __m256d x3) {
  const __m256d zero = _mm256_setzero_pd();
  const __m256d bl = _mm256_add_pd(_mm256_add_pd(zero, x0), _mm256_add_pd(zero, x2));
  const __m256d bh = _mm256_add_pd(_mm256_add_pd(zero, x1), _mm256_add_pd(zero, x3));
  const __m256d c = _mm256_add_pd(bl, bh);
  const __m128d d = _mm_add_pd(_mm256_castpd256_pd128(c), _mm256_extractf128_pd(c, 1));
  return cash + (_mm_cvtsd_f64(d) + _mm_cvtsd_f64(_mm_unpackhi_pd(d, d)));
}
/* band_inside's test on lanes k .. k + 3 (x values, u targets, w band
 * widths less the margin, vv the value): every lane certainly inside;
 * lanes past the basket (k >= na) are */
__attribute__((target("avx2"))) static KEEL_ALWAYS_INLINE int in4(size_t k, size_t na, __m256d x, __m256d u,
                                                                   __m256d w, __m256d vv) {
  if (k >= na) return 1;
  const __m256d dev = _mm256_andnot_pd(_mm256_set1_pd(-0.0), _mm256_sub_pd(x, _mm256_mul_pd(u, vv)));
  return _mm256_movemask_pd(_mm256_cmp_pd(dev, _mm256_mul_pd(w, vv), _CMP_LT_OQ)) == 0xf;
}
__attribute__((target("avx2"))) static KEEL_ALWAYS_INLINE int mark_inside_avx2_n(sub_run *S, double *V,
                                                                                  const size_t na) {
  const __m256d x0 = mark4(S, 0, na), x1 = mark4(S, 4, na), x2 = mark4(S, 8, na), x3 = mark4(S, 12, na);
  const double v = value4(S->cash, x0, x1, x2, x3);
  S->vmark = *V = v;
  S->marked = 1;
  if (!(v > 0)) return 0;
  const __m256d vv = _mm256_set1_pd(v);
  /* targets and widths read only for lanes in the basket (their arrays end
   * at its last whole vector) */
  const __m256d zero = _mm256_setzero_pd();
#define IN(k, x)                                                                                         \
  in4(k, na, x, (k) < na ? _mm256_loadu_pd(S->tau + (k)) : zero, (k) < na ? _mm256_loadu_pd(S->bwm + (k)) : zero, vv)
  return (IN(0, x0) & IN(4, x1)) & (IN(8, x2) & IN(12, x3));
#undef IN
}
__attribute__((target("avx2"))) static int mark_inside_avx2(sub_run *S, double *V) {
#define F(k) mark_inside_avx2_n(S, V, k)
  SMALL_NA_CASES(S->na, F, F(S->na))
#undef F
}
#endif

/* A row on which nothing but the band test can happen: after the first
 * row, with no schedule due, for a sub-account without DCA plans, stop
 * rules, volatility target or on_bar, prices read straight from the panel,
 * fills at the close and the cost model as given. It is step_row below
 * with every step that cannot act left out, so it computes the same
 * values in the same order; a breach of the band returns 0 and the row is
 * done again by step_row (the marking is a function of the prices and
 * holdings only, so it is the same there). */
static inline int quiet_row(run *E, sub_run *S, size_t t) {
  const double *row = E->px + (E->start + t) * E->na_panel + S->col[0];
  S->px = S->lastp = row;
  S->marked = 0;
  S->reentered = 0;
  S->flow_row = S->traded_row = S->costs_row = 0;
  double V;
  if (S->na < 16 && S->band_row[t] && S->bw_margin_ok) {
    /* sub_value and band_inside in one pass, the values in registers */
#ifdef KEEL_ENGINE_AVX2
    const int in = S->avx2 ? mark_inside_avx2(S, &V) : mark_inside_small(S, &V);
#else
    const int in = mark_inside_small(S, &V);
#endif
    if (!in && band_outside(S->na, S->x, S->tau, S->bw, V)) return 0;
  } else {
    V = sub_value(S);
    if (S->band_row[t] && !(S->bw_margin_ok && V > 0 && band_inside(S->na, S->x, S->tau, S->bwm, V)) &&
        band_outside(S->na, S->x, S->tau, S->bw, V))
      return 0;
  }
  end_row(S, t, V);
  store_row(S, t, V);
  E->nquiet++;
  return 1;
}

#ifdef KEEL_ENGINE_AVX2
/* S as quiet_row leaves it after rows t0 .. t - 1 of a run of quiet rows
 * (none when t == t0), the last at prices last and of value V; the rows'
 * cash (unchanged on them) and zero flows, trades and costs are filled in
 * here, once, rather than row by row. */
static inline void stretch_end(run *E, sub_run *S, keel_backtest_result *r, const double *last, size_t t0, size_t t,
                               double V) {
  if (t == t0) return;
  sub_result *u = S->res;
  const double cash = S->cash, rc = 0.0 + S->cash;
  for (size_t k = t0; k < t; k++) u->cash[k] = cash, r->cash[k] = rc;
  memset(u->flows + t0, 0, (t - t0) * sizeof(double));
  memset(u->traded + t0, 0, (t - t0) * sizeof(double));
  memset(u->costs + t0, 0, (t - t0) * sizeof(double));
  S->px = S->lastp = last;
  S->vmark = S->vprev = V;
  S->marked = 1;
  S->reentered = 0;
  S->flow_row = S->traded_row = S->costs_row = 0;
  E->nquiet += t - t0;
}

/* Rows t, t + 1, ... of the one sub-account S of an account whose rows
 * are all quiet_row's kind (see keeli_engine_run's loop for one
 * sub-account), for a basket under 16 assets with band_inside usable:
 * what quiet_row and that loop do for each row, with the holdings, cash,
 * targets and band widths (fixed while no row trades) in registers, so a
 * row waits on nothing of the one before and the rows overlap. The
 * marking and the test are mark_inside_avx2_n's operations (the same
 * bits). Stops before a row with a schedule due, a value not above 0 or
 * an asset not certainly inside its band, which quiet_row and step_row
 * then take from scratch; S is left as quiet_row leaves it after the last
 * row done. Returns the first row not done. */
__attribute__((target("avx2"))) static KEEL_ALWAYS_INLINE size_t quiet_stretch_n(run *E, sub_run *S,
                                                                                   keel_backtest_result *r, size_t t,
                                                                                   size_t n, const size_t na) {
  const size_t stride = E->na_panel, t0 = t;
  const double *base = E->px + E->start * stride + S->col[0];
  const __m256d zero = _mm256_setzero_pd();
  const __m256i tail = _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)(na % 4)), _mm256_setr_epi64x(0, 1, 2, 3));
#define LD(a, q) (4 * (q) < na ? _mm256_loadu_pd((a) + 4 * (q)) : zero)
  const __m256d h0 = LD(S->shares, 0), h1 = LD(S->shares, 1), h2 = LD(S->shares, 2), h3 = LD(S->shares, 3);
  const __m256d u0 = LD(S->tau, 0), u1 = LD(S->tau, 1), u2 = LD(S->tau, 2), u3 = LD(S->tau, 3);
  const __m256d w0 = LD(S->bwm, 0), w1 = LD(S->bwm, 1), w2 = LD(S->bwm, 2), w3 = LD(S->bwm, 3);
#undef LD
  /* prices of vector q of a row: whole, masked (the last, partial one) or none */
#define PX(row, q)                                                                                       \
  (4 * (q) + 4 <= na ? _mm256_loadu_pd((row) + 4 * (q))                                                  \
                     : 4 * (q) < na ? _mm256_maskload_pd((row) + 4 * (q), tail) : zero)
  const double cash = S->cash;
  sub_result *u = S->res;
  double V = 0;
  __m256d l0 = zero, l1 = zero, l2 = zero, l3 = zero; /* the last row's holdings' values, stored at the end */
  for (; t < n && !S->due_row[t]; t++) {
    const double *row = base + t * stride;
    const __m256d x0 = _mm256_mul_pd(h0, PX(row, 0)), x1 = _mm256_mul_pd(h1, PX(row, 1)),
                  x2 = _mm256_mul_pd(h2, PX(row, 2)), x3 = _mm256_mul_pd(h3, PX(row, 3));
    const double v = value4(cash, x0, x1, x2, x3);
    if (S->band_row[t]) {
      if (!(v > 0)) break;
      const __m256d vv = _mm256_set1_pd(v);
      if (!((in4(0, na, x0, u0, w0, vv) & in4(4, na, x1, u1, w1, vv)) &
            (in4(8, na, x2, u2, w2, vv) & in4(12, na, x3, u3, w3, vv))))
        break;
    }
    l0 = x0, l1 = x1, l2 = x2, l3 = x3;
    u->values[t] = v;
    r->values[t] = 0.0 + v;
    V = v;
  }
#undef PX
  if (t > t0) {
    double *x = S->x;
    if (0 < na) _mm256_storeu_pd(x, l0);
    if (4 < na) _mm256_storeu_pd(x + 4, l1);
    if (8 < na) _mm256_storeu_pd(x + 8, l2);
    if (12 < na) _mm256_storeu_pd(x + 12, l3);
  }
  stretch_end(E, S, r, base + (t - 1) * stride, t0, t, V);
  return t;
}

/* quiet_stretch_n in AVX-512 registers: lanes 0..7 and 8..15 of the
 * sixteen in two vectors, the second (and a basket under 8 the first)
 * read and written with a mask for the lanes in the basket. The value's
 * sum is the same tree (b_k = l_k + l_(k+8) is one add of the two
 * vectors, c_k = b_k + b_(k+4) one of b's halves, then (c0 + c2) +
 * (c1 + c3)) and each lane's test the same expression, the lanes past the
 * basket taken as inside: the same bits. */
__attribute__((target("avx512f"))) static KEEL_ALWAYS_INLINE size_t quiet_stretch512_n(run *E, sub_run *S,
                                                                                         keel_backtest_result *r,
                                                                                         size_t t, size_t n,
                                                                                         const size_t na) {
  const size_t stride = E->na_panel, t0 = t;
  const double *base = E->px + E->start * stride + S->col[0];
  const __mmask8 m0 = na >= 8 ? 0xff : (__mmask8)((1u << na) - 1),
                 m1 = na <= 8 ? 0 : (__mmask8)((1u << (na - 8)) - 1);
  const __m512d h0 = _mm512_maskz_loadu_pd(m0, S->shares), h1 = _mm512_maskz_loadu_pd(m1, S->shares + 8);
  const __m512d u0 = _mm512_maskz_loadu_pd(m0, S->tau), u1 = _mm512_maskz_loadu_pd(m1, S->tau + 8);
  const __m512d w0 = _mm512_maskz_loadu_pd(m0, S->bwm), w1 = _mm512_maskz_loadu_pd(m1, S->bwm + 8);
  const __m512d zero = _mm512_setzero_pd();
  const double cash = S->cash;
  sub_result *u = S->res;
  double V = 0;
  __m512d l0 = zero, l1 = zero; /* the last row's holdings' values, stored once at the end */
  for (; t < n && !S->due_row[t]; t++) {
    const double *row = base + t * stride;
    const __m512d x0 = _mm512_mul_pd(h0, _mm512_maskz_loadu_pd(m0, row)),
                  x1 = _mm512_mul_pd(h1, _mm512_maskz_loadu_pd(m1, row + 8));
    const __m512d b = _mm512_add_pd(_mm512_add_pd(zero, x0), _mm512_add_pd(zero, x1));
    const __m256d c = _mm256_add_pd(_mm512_castpd512_pd256(b), _mm512_extractf64x4_pd(b, 1));
    const __m128d d = _mm_add_pd(_mm256_castpd256_pd128(c), _mm256_extractf128_pd(c, 1));
    const double v = cash + (_mm_cvtsd_f64(d) + _mm_cvtsd_f64(_mm_unpackhi_pd(d, d)));
    if (S->band_row[t]) {
      if (!(v > 0)) break;
      const __m512d vv = _mm512_set1_pd(v);
      const __mmask8 in0 = _mm512_mask_cmp_pd_mask(m0, _mm512_abs_pd(_mm512_sub_pd(x0, _mm512_mul_pd(u0, vv))),
                                                   _mm512_mul_pd(w0, vv), _CMP_LT_OQ),
                     in1 = _mm512_mask_cmp_pd_mask(m1, _mm512_abs_pd(_mm512_sub_pd(x1, _mm512_mul_pd(u1, vv))),
                                                   _mm512_mul_pd(w1, vv), _CMP_LT_OQ);
      if ((in0 | (__mmask8)~m0) != 0xff || (in1 | (__mmask8)~m1) != 0xff) break;
    }
    l0 = x0, l1 = x1;
    u->values[t] = v;
    r->values[t] = 0.0 + v;
    V = v;
  }
  if (t > t0) {
    _mm512_mask_storeu_pd(S->x, m0, l0);
    if (m1) _mm512_mask_storeu_pd(S->x + 8, m1, l1);
  }
  stretch_end(E, S, r, base + (t - 1) * stride, t0, t, V);
  return t;
}

__attribute__((target("avx2"))) static size_t quiet_stretch(run *E, sub_run *S, keel_backtest_result *r, size_t t,
                                                            size_t n) {
#define F(k) quiet_stretch_n(E, S, r, t, n, k)
  SMALL_NA_CASES(S->na, F, t)
#undef F
}

__attribute__((target("avx512f"))) static size_t quiet_stretch512(run *E, sub_run *S, keel_backtest_result *r,
                                                                  size_t t, size_t n) {
#define F(k) quiet_stretch512_n(E, S, r, t, n, k)
  SMALL_NA_CASES(S->na, F, t)
#undef F
}
#endif

/* One row of one sub-account. */
static keel_status step_row(run *E, sub_run *S, size_t t) {
  const keel_subaccount_spec *sp = S->sp;
  const size_t i = E->start + t, na = S->na;
  const double *row = E->px + i * E->na_panel;
  keel_status st;
  S->flow_row = S->traded_row = S->costs_row = 0;
  if (E->cost_mult) {
    const double cm = E->cost_mult[t], sm = E->spread_mult[t];
    S->cb = (S->bps_buy * cm + S->bps_half_spread * sm) / 1e4;
    S->cs = (S->bps_sell * cm + S->bps_half_spread * sm) / 1e4;
    for (size_t k = 0; k < na; k++) {
      S->cbv[k] = S->cb;
      S->csv[k] = S->cs;
    }
  }
  if (E->op && t > 0 && (st = step_open(E, S, t))) return st;
  S->marked = 0;
  {
    const size_t *restrict col = S->col;
    if (S->direct) {
      S->px = S->lastp = row + col[0];
    } else {
      S->px = S->pxbuf;
      S->lastp = S->lpbuf;
      double *restrict px = S->pxbuf, *restrict lp = S->lpbuf;
      for (size_t k = 0; k < na; k++) {
        double p = row[col[k]];
        px[k] = p;
        lp[k] = p == p ? p : lp[k];
      }
    }
  }

  /* without stop rules nothing is ever pending or locked; with fills at
   * the next open the stops filled at this row's open */
  if (sp->nstops && !E->op && (st = step_fills(E, S, t))) return st;
  S->reentered = 0;
  if (sp->nstops && (st = step_reentry(E, S, t))) return st;
  int due = S->due_row[t];
  if (t == 0 || due) {
    if ((st = refresh_targets(E, S, t))) return st;
  }
  if (sp->vol.target > 0 && (t == 0 || due || isfinite(sp->vol.rebalance_band))) {
    if ((st = update_volk(E, S, t))) return st;
  }
  /* the targets change only with the base weights, the vol scale or locks */
  if (t == 0 || (due && !S->base_same) || sp->vol.target > 0 || sp->nstops) effective_targets(S);
  if (sp->ndca && (st = step_dca(E, S, t))) return st;
  if ((st = step_rebalance(E, S, t, due))) return st;
  if (sp->strategy && sp->strategy->ops->on_bar && (st = step_on_bar(E, S, t))) return st;

  /* marking, the time-weighted index and the shadow index */
  double V = sub_value(S);
  end_row(S, t, V);
  if (S->ring) {
    if (t > 0) {
      double rb = 0;
      const double *pr = E->px + (i - 1) * E->na_panel;
      for (size_t k = 0; k < na; k++) {
        double p1 = row[S->col[k]], p0 = pr[S->col[k]];
        if (!isnan(p1) && !isnan(p0)) rb += S->base[k] * (p1 / p0 - 1);
      }
      S->shadow *= 1 + rb;
    }
    S->ring[S->ringpos] = S->shadow;
    S->ringpos = (S->ringpos + 1) % S->ringn;
    if (S->ringcnt < S->ringn) S->ringcnt++;
  }
  store_row(S, t, V);
  if (sp->nstops && (st = step_stops(E, S, t))) return st;
  return KEEL_OK;
}

/* ---- set-up and validation ---- */

#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond)) return keeli_error(ctx, KEEL_EINVAL, __VA_ARGS__);   \
  } while (0)

static keel_status check_schedule(keel_ctx *ctx, const char *sub, const char *what, const keel_schedule *s) {
  CHECK((unsigned)s->calendar <= KEEL_CAL_EVERY_N, "backtest: sub-account %s: unknown %s calendar %d", sub, what,
        (int)s->calendar);
  CHECK(s->calendar != KEEL_CAL_EVERY_N || s->every >= 1, "backtest: sub-account %s: %s every_n needs every >= 1",
        sub, what);
  return KEEL_OK;
}

static keel_status check_weights(keel_ctx *ctx, const keel_panel *p, const char *sub, const char *what, size_t na,
                                 const size_t *col, const double *w, int shorts, double cap) {
  double sum = 0;
  for (size_t k = 0; k < na; k++) {
    CHECK(isfinite(w[k]) && (shorts || w[k] >= 0),
          "backtest: sub-account %s: %s weight of %s is %g; weights must be finite and >= 0", sub, what,
          keel_panel_symbol(p, col[k]), w[k]);
    sum += w[k];
  }
  CHECK(sum <= cap + 1e-12, "backtest: sub-account %s: %s weights sum to %.15g; they must sum to at most %g", sub,
        what, sum, cap);
  return KEEL_OK;
}

static keel_status check_sub(keel_ctx *ctx, const keel_panel *p, const keel_subaccount_spec *sp, size_t na,
                             const size_t *col, size_t row0) {
  const keel_date d0 = keel_panel_dates(p)[row0];
  const char *nm = sp->name;
  keel_status st;
  CHECK(nm && *nm, "backtest: a sub-account has no name");
  CHECK(!sp->weights != !sp->strategy, "backtest: sub-account %s: give fixed weights or a strategy (one of them)", nm);
  CHECK(!sp->strategy || (sp->strategy->ops && sp->strategy->ops->rebalance),
        "backtest: sub-account %s: the strategy has no rebalance function", nm);
  if (sp->weights && (st = check_weights(ctx, p, nm, "target", na, col, sp->weights, sp->allow_short, 1))) return st;
  CHECK(isfinite(sp->capital) && sp->capital >= 0, "backtest: sub-account %s: capital %g must be finite and >= 0", nm,
        sp->capital);
  if ((st = check_schedule(ctx, nm, "schedule", &sp->schedule))) return st;
  if ((st = check_schedule(ctx, nm, "band check", &sp->band_check))) return st;
  const keel_band *b = &sp->band;
  CHECK((unsigned)b->kind <= KEEL_BAND_COMBINED, "backtest: sub-account %s: unknown band kind %d", nm, (int)b->kind);
  if (b->kind == KEEL_BAND_ABSOLUTE || b->kind == KEEL_BAND_COMBINED)
    CHECK(b->abs > 0 && b->abs < 1, "backtest: sub-account %s: band abs %g must be in (0, 1)", nm, b->abs);
  if (b->kind == KEEL_BAND_RELATIVE || b->kind == KEEL_BAND_COMBINED)
    CHECK(b->rel > 0 && isfinite(b->rel), "backtest: sub-account %s: band rel %g must be > 0", nm, b->rel);
  CHECK((unsigned)b->action <= KEEL_BAND_TO_INNER, "backtest: sub-account %s: unknown band action %d", nm,
        (int)b->action);
  if (b->action == KEEL_BAND_TO_INNER)
    CHECK(b->inner >= 0 && b->inner < 1, "backtest: sub-account %s: band inner %g must be in [0, 1)", nm, b->inner);
  const keel_voltarget *v = &sp->vol;
  if (v->target > 0) {
    CHECK(isfinite(v->target), "backtest: sub-account %s: vol target must be finite", nm);
    CHECK((unsigned)v->estimator <= KEEL_VOL_EWMA, "backtest: sub-account %s: unknown vol estimator", nm);
    CHECK(v->window >= 2, "backtest: sub-account %s: vol window %u must be >= 2", nm, v->window);
    CHECK(v->estimator != KEEL_VOL_EWMA || (v->halflife > 0 && isfinite(v->halflife)),
          "backtest: sub-account %s: vol halflife %g must be > 0", nm, v->halflife);
    CHECK(v->leverage_cap > 0 && isfinite(v->leverage_cap),
          "backtest: sub-account %s: leverage cap %g must be finite and > 0", nm, v->leverage_cap);
    CHECK(v->rebalance_band > 0, "backtest: sub-account %s: vol rebalance band %g must be > 0", nm,
          v->rebalance_band);
  }
  const keel_cost_model *c = &sp->costs;
  const double rates[] = {c->buy_bps, c->sell_bps, c->spread_bps, c->slippage_bps};
  const char *rn[] = {"buy_bps", "sell_bps", "spread_bps", "slippage_bps"};
  for (size_t i = 0; i < 4; i++)
    CHECK(isfinite(rates[i]) && rates[i] >= 0 && rates[i] < 10000,
          "backtest: sub-account %s: %s %g must be in [0, 10000)", nm, rn[i], rates[i]);
  CHECK(keel_cost_rate_buy(c) < 1 && keel_cost_rate_sell(c) < 1,
        "backtest: sub-account %s: the cost rates add up to 100%% or more", nm);
  CHECK(isfinite(c->fee) && c->fee >= 0, "backtest: sub-account %s: fee %g must be finite and >= 0", nm, c->fee);
  CHECK(isfinite(c->min_notional) && c->min_notional >= 0,
        "backtest: sub-account %s: min_notional %g must be finite and >= 0", nm, c->min_notional);
  CHECK(isfinite(sp->skip_gamma) && sp->skip_gamma >= 0, "backtest: sub-account %s: skip gamma must be >= 0", nm);
  CHECK(sp->skip_gamma == 0 || sp->skip_lookback >= 3, "backtest: sub-account %s: skip lookback must be >= 3", nm);
  CHECK(!sp->ndca || sp->dca, "backtest: sub-account %s: %zu DCA plans but no array", nm, sp->ndca);
  int funded = sp->capital > 0;
  if (sp->initial_shares)
    for (size_t k = 0; k < na; k++) {
      double q = sp->initial_shares[k], px = keel_panel_price(p, row0, col[k]);
      CHECK(isfinite(q) && (q >= 0 || sp->allow_short),
            "backtest: sub-account %s: initial shares of %s are %g; they must be finite and >= 0", nm,
            keel_panel_symbol(p, col[k]), q);
      CHECK(q == 0 || !isnan(px), "backtest: sub-account %s: %s is held at the start but has no price on the first row",
            nm, keel_panel_symbol(p, col[k]));
      funded |= q > 0;
    }
  for (size_t i = 0; i < sp->ndca; i++) {
    const keel_dca *q = &sp->dca[i];
    CHECK(isfinite(q->amount) && q->amount != 0, "backtest: sub-account %s: dca[%zu] amount %g must be finite and != 0",
          nm, i, q->amount);
    CHECK(isfinite(q->step_up) && q->step_up > -1, "backtest: sub-account %s: dca[%zu] step_up %g must be > -1", nm, i,
          q->step_up);
    CHECK(q->start == KEEL_DATE_NONE || q->end == KEEL_DATE_NONE || q->start <= q->end,
          "backtest: sub-account %s: dca[%zu] ends before it starts", nm, i);
    CHECK((unsigned)q->source <= KEEL_DCA_FROM_CASH && (unsigned)q->dest <= KEEL_DCA_TO_UNDERWEIGHT,
          "backtest: sub-account %s: dca[%zu] has an unknown source or destination", nm, i);
    if ((st = check_schedule(ctx, nm, "dca", &q->schedule))) return st;
    if (q->source == KEEL_DCA_EXTERNAL && q->amount > 0 && (q->start == KEEL_DATE_NONE || q->start <= d0)) funded = 1;
  }
  CHECK(funded, "backtest: sub-account %s: no capital, holdings or contribution on the first date: nothing to invest",
        nm);
  CHECK(!sp->nstops || sp->stops, "backtest: sub-account %s: %zu stop rules but no array", nm, sp->nstops);
  for (size_t i = 0; i < sp->nstops; i++) {
    const keel_stop_rule *r = &sp->stops[i];
    CHECK((unsigned)r->kind <= KEEL_STOP_DRAWDOWN, "backtest: sub-account %s: stops[%zu] has an unknown kind", nm, i);
    CHECK(r->level > 0 && isfinite(r->level) && (r->kind == KEEL_STOP_TAKE_PROFIT || r->level < 1),
          "backtest: sub-account %s: stops[%zu] level %g must be in (0, 1)%s", nm, i, r->level,
          r->kind == KEEL_STOP_TAKE_PROFIT ? " or above for take-profit" : "");
    CHECK(r->asset >= -1 && r->asset < (long)na, "backtest: sub-account %s: stops[%zu] asset %ld is not one of its %zu",
          nm, i, r->asset, na);
    CHECK(r->kind != KEEL_STOP_DRAWDOWN || r->asset == -1,
          "backtest: sub-account %s: stops[%zu] a drawdown stop applies to the whole sub-account", nm, i);
    CHECK((unsigned)r->reentry <= KEEL_REENTRY_ABOVE_MA && (unsigned)r->action <= KEEL_STOP_TO_DEFENSIVE &&
              (unsigned)r->ref <= KEEL_STOP_REF_AVG_COST,
          "backtest: sub-account %s: stops[%zu] has an unknown re-entry, action or reference", nm, i);
    CHECK(r->reentry == KEEL_REENTRY_NEVER || r->days >= 1,
          "backtest: sub-account %s: stops[%zu] re-entry needs days >= 1", nm, i);
    CHECK(r->action != KEEL_STOP_TO_DEFENSIVE || sp->defensive,
          "backtest: sub-account %s: stops[%zu] moves to the defensive basket, but none is given", nm, i);
  }
  if (sp->defensive && (st = check_weights(ctx, p, nm, "defensive", na, col, sp->defensive, 0, 1))) return st;
  return KEEL_OK;
}

static void sub_reset(run *E, sub_run *S);

static keel_status sub_setup(run *E, sub_run *S, const keel_subaccount_spec *sp, size_t idx, size_t n) {
  keel_ctx *ctx = E->ctx;
  keel_backtest_result *r = E->r;
  sub_result *u = &r->subs[idx];
  const size_t na = sp->nassets ? sp->nassets : E->na_panel;
  S->sp = sp;
  S->res = u;
  S->idx = (uint32_t)idx;
  S->na = na;
  u->na = na;
  if (!(u->name = keeli_strdup(ctx, sp->name)) || !(u->assets = keeli_alloc_array(ctx, na, sizeof(size_t))) ||
      !(u->values = keeli_alloc_array(ctx, n, sizeof(double))) ||
      !(u->cash = keeli_alloc_array(ctx, n, sizeof(double))) || !(u->flows = keeli_alloc_array(ctx, n, sizeof(double))) ||
      !(u->traded = keeli_alloc_array(ctx, n, sizeof(double))) || !(u->costs = keeli_alloc_array(ctx, n, sizeof(double))))
    return KEEL_ENOMEM;
  for (size_t k = 0; k < na; k++) u->assets[k] = sp->nassets ? sp->assets[k] : k;
  S->col = u->assets;
  double **arr[] = {&S->shares, &S->base, &S->tau,  &S->x,    &S->h,    &S->w,    &S->pxbuf, &S->tmp, &S->cbv,
                    &S->csv,    &S->entry, &S->avg, &S->peak, &S->minn, &S->lot, &S->lpbuf, &S->bw,
                    &S->opx,    &S->olp,   &S->order_tau, &S->bwm};
  for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++)
    if (!(*arr[i] = keeli_calloc(ctx, PAD4(na + 1), sizeof(double)))) return KEEL_ENOMEM;
  for (size_t k = na; k < PAD4(na + 1); k++) S->bwm[k] = 1; /* band_inside's padding */
  if (!(S->bp = keeli_alloc_array(ctx, na + 3, sizeof(double))) || !(S->tradable = keeli_calloc(ctx, na, 1)) ||
      !(S->in_s = keeli_calloc(ctx, na, 1)) || !(S->locked = keeli_calloc(ctx, na, 1)) ||
      !(S->pending = keeli_calloc(ctx, na, 1)) || !(S->lock_rule = keeli_calloc(ctx, na, sizeof(int))) ||
      !(S->pend_rule = keeli_calloc(ctx, na, sizeof(int))) ||
      !(S->fill_row = keeli_calloc(ctx, na, sizeof(size_t))) ||
      !(S->dca_first = keeli_alloc_array(ctx, sp->ndca + 1, sizeof(keel_date))) ||
      !(S->dca_order = keeli_calloc(ctx, sp->ndca + 1, sizeof(double))) ||
      !(S->due_row = keeli_calloc(ctx, n, 1)) || !(S->band_row = keeli_calloc(ctx, n, 1)))
    return KEEL_ENOMEM;
  for (size_t t = 1; t < n; t++) {
    const keel_date d0 = E->dates[E->start + t - 1], d1 = E->dates[E->start + t];
    S->due_row[t] = (unsigned char)keel_schedule_due(&sp->schedule, d0, d1, t);
    S->band_row[t] = sp->band.kind != KEEL_BAND_NONE && keel_schedule_due(&sp->band_check, d0, d1, t);
  }
  S->twr_on = sp->nstops > 0;
#ifdef KEEL_ENGINE_AVX2
  S->avx2 = __builtin_cpu_supports("avx2");
  S->avx512 = S->avx2 && __builtin_cpu_supports("avx512f");
#endif
  S->quiet = !sp->ndca && !sp->nstops && !(sp->vol.target > 0) && !(sp->strategy && sp->strategy->ops->on_bar) &&
             !E->op;
  for (size_t i = 0; i < sp->ndca; i++) S->dca_first[i] = KEEL_DATE_NONE;
  S->cb = keel_cost_rate_buy(&sp->costs);
  S->cs = keel_cost_rate_sell(&sp->costs);
  S->fee = sp->costs.fee;
  S->borrow = sp->vol.target > 0 && sp->vol.leverage_cap > 1;
  for (size_t k = 0; k < na; k++) {
    const keel_asset_meta *m = keel_panel_meta(E->panel, S->col[k]);
    S->lot[k] = sp->costs.use_lots ? m->lot : 0;
    S->minn[k] = fmax(sp->costs.min_notional, m->min_trade);
    S->rounding |= S->lot[k] > 0 || S->minn[k] > 0;
    S->cbv[k] = S->cb;
    S->csv[k] = S->cs;
    S->entry[k] = S->avg[k] = S->peak[k] = S->lpbuf[k] = NAN;
  }
  size_t rows = 0;
  if (sp->vol.target > 0) rows = sp->vol.window;
  if (sp->skip_gamma > 0 && sp->skip_lookback > rows) rows = sp->skip_lookback;
  if (rows && !(S->R = keeli_alloc_array(ctx, rows, na * sizeof(double)))) return KEEL_ENOMEM;
  if (sp->skip_gamma > 0 && !(S->cov = keeli_alloc_array(ctx, na, na * sizeof(double)))) return KEEL_ENOMEM;
  unsigned ring = 0;
  for (size_t i = 0; i < sp->nstops; i++)
    if (sp->stops[i].kind == KEEL_STOP_DRAWDOWN && sp->stops[i].reentry == KEEL_REENTRY_ABOVE_MA &&
        sp->stops[i].days > ring)
      ring = sp->stops[i].days;
  if (ring) {
    if (!(S->ring = keeli_alloc_array(ctx, ring, sizeof(double)))) return KEEL_ENOMEM;
    S->ringn = ring;
  }
  S->bps_buy = sp->costs.buy_bps + sp->costs.slippage_bps;
  S->bps_sell = sp->costs.sell_bps + sp->costs.slippage_bps;
  S->bps_half_spread = sp->costs.spread_bps / 2;
  sub_reset(E, S);
  return KEEL_OK;
}

/* The state of a sub-account before its first row (set-up made the
 * buffers; a reusable engine resets them before each run). */
static void sub_reset(run *E, sub_run *S) {
  const keel_subaccount_spec *sp = S->sp;
  const size_t na = S->na;
  memset(S->shares, 0, na * sizeof(double));
  memset(S->dca_order, 0, (sp->ndca + 1) * sizeof(double));
  memset(S->locked, 0, na);
  memset(S->pending, 0, na);
  memset(S->lock_rule, 0, na * sizeof(int));
  memset(S->pend_rule, 0, na * sizeof(int));
  memset(S->fill_row, 0, na * sizeof(size_t));
  for (size_t i = 0; i < sp->ndca; i++) S->dca_first[i] = KEEL_DATE_NONE;
  for (size_t k = 0; k < na; k++) S->entry[k] = S->avg[k] = S->peak[k] = S->lpbuf[k] = NAN;
  S->px = S->pxbuf;
  S->lastp = S->lpbuf;
  S->direct = 1;
  for (size_t k = 0; k < na; k++)
    S->direct &= S->col[k] == S->col[0] + k && keel_panel_complete_from(E->panel, S->col[k]) <= E->start;
  S->order = 0;
  S->marked = 0;
  S->sub_locked = S->sub_pending = S->sub_rule = 0;
  S->sub_fill_row = 0;
  S->ringpos = S->ringcnt = 0;
  S->ntrades = S->nstops = 0;
  S->reentered = 0;
  S->vprev = 0;
  S->cash = sp->capital;
  S->start_value = sp->capital;
  if (sp->initial_shares)
    for (size_t k = 0; k < na; k++) {
      double q = sp->initial_shares[k];
      if (q == 0) continue;
      double px = E->px[E->start * E->na_panel + S->col[k]];
      S->shares[k] = q;
      S->entry[k] = S->avg[k] = S->peak[k] = px; /* held from before: the first close is the reference */
      S->start_value += q * px;
    }
  S->twr = S->twr_peak = S->shadow = 1;
  S->volk = S->volk_traded = 1;
  S->cb = keel_cost_rate_buy(&sp->costs);
  S->cs = keel_cost_rate_sell(&sp->costs);
  for (size_t k = 0; k < na; k++) {
    S->cbv[k] = S->cb;
    S->csv[k] = S->cs;
  }
}

static void sub_teardown(keel_ctx *ctx, sub_run *S) {
  void *b[] = {S->shares, S->base, S->tau, S->x, S->h, S->w, S->pxbuf, S->tmp, S->cbv, S->csv, S->entry, S->avg,
               S->lpbuf, S->bw, S->bwm, S->opx, S->olp, S->order_tau, S->dca_order, S->peak, S->minn, S->lot, S->bp, S->tradable, S->in_s, S->locked, S->pending, S->lock_rule,
               S->pend_rule, S->fill_row, S->dca_first, S->R, S->cov, S->ring, S->due_row, S->band_row};
  for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) keeli_free(ctx, b[i]);
}

static keel_status sub_metrics(run *E, size_t n, const double *values, const double *flows, const double *traded,
                               const double *costs, const double *exposure, double initial, size_t ntrades,
                               size_t nstops, keel_metrics *out) {
  const keel_account_spec *a = E->spec;
  int anyflow = 0;
  for (size_t t = 0; t < n; t++) anyflow |= flows[t] != 0;
  double *bench = NULL;
  if (a->benchmark >= 0) {
    if (!(bench = keeli_alloc_array(E->ctx, n, sizeof(double)))) return KEEL_ENOMEM;
    double lastp = NAN;
    for (size_t t = 0; t < n; t++) {
      double p = E->px[(E->start + t) * E->na_panel + (size_t)a->benchmark];
      if (!isnan(p)) lastp = p;
      bench[t] = lastp;
    }
    if (isnan(bench[0])) {
      char db[KEEL_DATE_BUFSIZE];
      keeli_free(E->ctx, bench);
      return keeli_error(E->ctx, KEEL_EINVAL, "backtest: the benchmark %s has no price on the first date %s",
                         keel_panel_symbol(E->panel, (size_t)a->benchmark), date_str(E->dates[E->start], db));
    }
  }
  keel_metrics_input mi = {.n = n, .dates = E->r->dates, .values = values, .initial = initial, .traded = traded,
                           .costs = costs, .periods_per_year = a->periods_per_year, .risk_free = a->risk_free,
                           .flows = anyflow ? flows : NULL, .exposure = exposure, .benchmark = bench,
                           .ntrades = ntrades, .nstops = nstops};
  keel_status st = keel_metrics_compute(E->ctx, &mi, out);
  keeli_free(E->ctx, bench);
  return st;
}

/* Checks an account against a panel before anything is allocated. */
static keel_status check_account(keel_ctx *ctx, const keel_panel *panel, const keel_account_spec *spec) {
  if (!panel || !spec) return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_run_account: panel or spec is NULL");
  const size_t nap = keel_panel_nassets(panel), nd = keel_panel_ndates(panel);
  CHECK(spec->nsubs >= 1 && spec->subs, "backtest: an account needs at least one sub-account");
  CHECK(isfinite(spec->periods_per_year) && spec->periods_per_year > 0, "backtest: periods_per_year %g must be > 0",
        spec->periods_per_year);
  CHECK(isfinite(spec->risk_free), "backtest: risk_free must be finite");
  CHECK(spec->benchmark >= -1 && spec->benchmark < (long)nap, "backtest: benchmark column %ld is not in the panel",
        spec->benchmark);
  CHECK((unsigned)spec->fill <= KEEL_FILL_NEXT_OPEN, "backtest: unknown fill %d", (int)spec->fill);
  CHECK(spec->fill == KEEL_FILL_CLOSE || spec->opens, "backtest: fill at the next open needs the open prices (opens)");
  if (spec->fill == KEEL_FILL_NEXT_OPEN) {
    const keel_panel *o = spec->opens;
    CHECK(keel_panel_ndates(o) == nd && keel_panel_nassets(o) == nap,
          "backtest: the opens are %zu dates x %zu assets; the closes %zu x %zu", keel_panel_ndates(o),
          keel_panel_nassets(o), nd, nap);
    for (size_t i = 0; i < nd; i++)
      CHECK(keel_panel_dates(o)[i] == keel_panel_dates(panel)[i], "backtest: the opens' date %zu differs from the closes'",
            i);
    for (size_t j = 0; j < nap; j++)
      CHECK(strcmp(keel_panel_symbol(o, j), keel_panel_symbol(panel, j)) == 0,
            "backtest: the opens' column %zu is %s, the closes' %s", j, keel_panel_symbol(o, j),
            keel_panel_symbol(panel, j));
  }
  const size_t start = spec->start, end = spec->end ? spec->end : nd;
  CHECK(end <= nd && start < end, "backtest: rows [%zu, %zu) are not a non-empty range of the %zu rows", start, end,
        nd);
  for (size_t s = 0; s < spec->nsubs; s++) {
    const keel_subaccount_spec *sp = &spec->subs[s];
    CHECK(!sp->nassets || sp->assets, "backtest: sub-account %zu: nassets %zu but no asset list", s, sp->nassets);
    for (size_t k = 0; k < sp->nassets; k++) {
      CHECK(sp->assets[k] < nap, "backtest: sub-account %s: asset %zu is column %zu of a %zu-column panel",
            sp->name ? sp->name : "?", k, sp->assets[k], nap);
      for (size_t j = 0; j < k; j++)
        CHECK(sp->assets[j] != sp->assets[k], "backtest: sub-account %s lists %s twice", sp->name ? sp->name : "?",
              keel_panel_symbol(panel, sp->assets[k]));
    }
    size_t na = sp->nassets ? sp->nassets : nap;
    size_t *col = keeli_alloc_array(ctx, na, sizeof *col);
    if (!col) return KEEL_ENOMEM;
    for (size_t k = 0; k < na; k++) col[k] = sp->nassets ? sp->assets[k] : k;
    keel_status st = check_sub(ctx, panel, sp, na, col, start);
    keeli_free(ctx, col);
    if (st) return st;
    for (size_t j = 0; j < s; j++)
      CHECK(strcmp(spec->subs[j].name, sp->name) != 0, "backtest: two sub-accounts are named %s", sp->name);
  }

  return KEEL_OK;
}

/* ---- the engine: set up once, run many times ---- */

struct keeli_engine {
  run E;
  keel_backtest_result *r;
  double *exposure;
  size_t n;
  int metrics;
};

void keeli_engine_free(keeli_engine *e) {
  if (!e) return;
  keel_ctx *ctx = e->E.ctx;
  if (e->E.subs)
    for (size_t s = 0; s < e->E.spec->nsubs; s++) sub_teardown(ctx, &e->E.subs[s]);
  keeli_free(ctx, e->E.subs);
  keeli_free(ctx, e->exposure);
  keel_backtest_result_free(e->r);
  keeli_free(ctx, e);
}

keel_status keeli_engine_new(keel_ctx *ctx, const keel_panel *panel, const keel_account_spec *spec, int metrics,
                             keeli_engine **out) {
  *out = NULL;
  keel_status st = check_account(ctx, panel, spec);
  if (st) return st;
  const size_t nap = keel_panel_nassets(panel), nd = keel_panel_ndates(panel);
  const size_t start = spec->start, end = spec->end ? spec->end : nd, n = end - start;
  keeli_engine *e = keeli_calloc(ctx, 1, sizeof *e);
  if (!e) return KEEL_ENOMEM;
  keel_backtest_result *r = keeli_calloc(ctx, 1, sizeof *r);
  e->E = (run){.ctx = ctx, .panel = panel, .spec = spec, .r = r, .dates = keel_panel_dates(panel),
               .px = keel_panel_prices(panel), .na_panel = nap, .start = start,
               .op = spec->fill == KEEL_FILL_NEXT_OPEN ? keel_panel_prices(spec->opens) : NULL};
  e->r = r;
  e->n = n;
  e->metrics = metrics;
  run *E = &e->E;
  if (!r) {
    keeli_engine_free(e);
    return KEEL_ENOMEM;
  }
  r->heap = *keeli_ctx_heap(ctx);
  r->n = n;
  r->na = nap;
  r->nsubs = spec->nsubs;
  r->seed = spec->seed;
  if (!(r->subs = keeli_calloc(ctx, spec->nsubs, sizeof *r->subs)) ||
      !(E->subs = keeli_calloc(ctx, spec->nsubs, sizeof *E->subs)) ||
      !(r->dates = keeli_alloc_array(ctx, n, sizeof *r->dates)) || !(r->values = keeli_calloc(ctx, n, sizeof(double))) ||
      !(r->cash = keeli_calloc(ctx, n, sizeof(double))) || !(r->traded = keeli_calloc(ctx, n, sizeof(double))) ||
      !(r->costs = keeli_calloc(ctx, n, sizeof(double))) || !(r->flows = keeli_calloc(ctx, n, sizeof(double))) ||
      !(e->exposure = keeli_alloc_array(ctx, n * (spec->nsubs + 1), sizeof(double))) ||
      (spec->record_holdings && !(r->holdings = keeli_calloc(ctx, n, nap * sizeof(double))))) {
    keeli_engine_free(e);
    return KEEL_ENOMEM;
  }
  for (size_t t = 0; t < n; t++) r->dates[t] = E->dates[start + t];
  for (size_t s = 0; s < spec->nsubs; s++) {
    if ((st = sub_setup(E, &E->subs[s], &spec->subs[s], s, n))) {
      keeli_engine_free(e);
      return st;
    }
    r->capital += E->subs[s].start_value; /* at the panel's prices now; each run sets it again */
  }
  *out = e;
  return KEEL_OK;
}

void keeli_engine_set_liquidity(keeli_engine *e, const double *cost_mult, const double *spread_mult) {
  e->E.cost_mult = cost_mult && spread_mult ? cost_mult : NULL;
  e->E.spread_mult = cost_mult && spread_mult ? spread_mult : NULL;
}

void keeli_engine_set_quiet(keeli_engine *e, int on) { e->E.general = !on; }
void keeli_engine_set_simd(keeli_engine *e, int cap) {
  for (size_t s = 0; s < e->E.spec->nsubs; s++) {
#ifdef KEEL_ENGINE_AVX2
    e->E.subs[s].avx2 = cap >= KEELI_SIMD_AVX2 && __builtin_cpu_supports("avx2");
    e->E.subs[s].avx512 = cap >= KEELI_SIMD_AVX512 && e->E.subs[s].avx2 && __builtin_cpu_supports("avx512f");
#else
    (void)cap;
    e->E.subs[s].avx2 = e->E.subs[s].avx512 = 0;
#endif
  }
}
size_t keeli_engine_quiet_rows(const keeli_engine *e) { return e->E.nquiet; }

const keel_backtest_result *keeli_engine_result(const keeli_engine *e) { return e->r; }

keel_status keeli_engine_run(keeli_engine *e, keel_ctx *ctx) {
  run *E = &e->E;
  keel_backtest_result *r = e->r;
  const keel_account_spec *spec = E->spec;
  const size_t n = e->n, nap = E->na_panel;
  double *exposure = e->exposure;
  keel_status st;
  E->ctx = ctx;
  memset(r->values, 0, n * sizeof(double));
  memset(r->cash, 0, n * sizeof(double));
  memset(r->traded, 0, n * sizeof(double));
  memset(r->costs, 0, n * sizeof(double));
  memset(r->flows, 0, n * sizeof(double));
  if (r->holdings) memset(r->holdings, 0, n * nap * sizeof(double));
  r->ntrades = r->nrebal = r->nevents = r->nopt = 0;
  r->capital = 0;
  E->nquiet = 0;
  for (size_t s = 0; s < spec->nsubs; s++) {
    sub_reset(E, &E->subs[s]);
    r->capital += E->subs[s].start_value;
  }
  if (spec->nsubs == 1 && !e->metrics && !r->holdings) {
    /* one sub-account, nothing but the series: the loop below without its
     * sums over sub-accounts (r's rows start at 0, so 0 + x is what they
     * would hold) and, on quiet rows, without the flows, trades and costs
     * that are 0 there (r's rows stay as cleared) */
    sub_run *S = &E->subs[0];
    const int q = S->quiet && S->direct && !E->cost_mult && !E->general;
    const sub_result *u = S->res;
    for (size_t t = 0; t < n; t++) {
#ifdef KEEL_ENGINE_AVX2
      if (q && t > 0 && S->avx2 && S->na < 16 && S->bw_margin_ok) {
        const size_t t1 = S->avx512 ? quiet_stretch512(E, S, r, t, n) : quiet_stretch(E, S, r, t, n);
        if (t1 == n) break;
        t = t1; /* a row the stretch left: the way below */
      }
#endif
      if (q && t > 0 && !S->due_row[t] && quiet_row(E, S, t)) {
        r->values[t] = 0.0 + u->values[t];
        r->cash[t] = 0.0 + S->cash;
        continue;
      }
      if ((st = step_row(E, S, t))) return st;
      r->values[t] = 0.0 + u->values[t];
      r->cash[t] = 0.0 + S->cash;
      r->flows[t] = 0.0 + S->flow_row;
      r->traded[t] = 0.0 + S->traded_row;
      r->costs[t] = 0.0 + S->costs_row;
    }
    return KEEL_OK;
  }
  for (size_t t = 0; t < n; t++) {
    double invested_all = 0;
    for (size_t s = 0; s < spec->nsubs; s++) {
      sub_run *S = &E->subs[s];
      if (!(t > 0 && S->quiet && S->direct && !E->cost_mult && !E->general && !S->due_row[t] && quiet_row(E, S, t)) &&
          (st = step_row(E, S, t)))
        return st;
      double V = S->res->values[t];
      r->values[t] += V;
      r->cash[t] += S->cash;
      r->flows[t] += S->flow_row;
      r->traded[t] += S->traded_row;
      r->costs[t] += S->costs_row;
      if (e->metrics) {
        exposure[(s + 1) * n + t] = V != 0 ? (V - S->cash) / V : 0;
        invested_all += V - S->cash;
      }
      if (r->holdings)
        for (size_t k = 0; k < S->na; k++) r->holdings[t * nap + S->col[k]] += S->shares[k];
    }
    if (e->metrics) exposure[t] = r->values[t] != 0 ? invested_all / r->values[t] : 0;
  }
  if (!e->metrics) return KEEL_OK;

  /* metrics: the account, then each sub-account */
  size_t nstops_all = 0;
  for (size_t k = 0; k < r->nevents; k++) nstops_all += r->events[k].kind == KEEL_EVENT_STOP;
  if ((st = sub_metrics(E, n, r->values, r->flows, r->traded, r->costs, exposure, r->capital, r->ntrades, nstops_all,
                        &r->metrics)))
    return st;
  for (size_t s = 0; s < spec->nsubs; s++) {
    sub_result *u = &r->subs[s];
    st = sub_metrics(E, n, u->values, u->flows, u->traded, u->costs, exposure + (s + 1) * n, E->subs[s].start_value,
                     E->subs[s].ntrades, E->subs[s].nstops, &u->metrics);
    if (st) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", keel_errmsg(ctx));
      return keeli_error(ctx, st, "backtest: sub-account %s: %s", spec->subs[s].name, msg);
    }
  }
  return KEEL_OK;
}

keel_status keel_backtest_run_account(keel_ctx *ctx, const keel_panel *panel, const keel_account_spec *spec,
                                      keel_backtest_result **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_run_account: out is NULL");
  *out = NULL;
  keeli_engine *e = NULL;
  keel_status st = keeli_engine_new(ctx, panel, spec, 1, &e);
  if (!st) st = keeli_engine_run(e, ctx);
  if (!st) {
    *out = e->r;
    e->r = NULL;
  }
  keeli_engine_free(e);
  return st;
}

/* The first slice's interface: one sub-account, fixed weights, a calendar
 * and one proportional rate on both sides. */
keel_status keel_backtest_run(keel_ctx *ctx, const keel_panel *panel, const keel_backtest_config *cfg,
                              keel_backtest_result **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_run: out is NULL");
  *out = NULL;
  if (!panel || !cfg) return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_run: panel or config is NULL");
  const size_t na = keel_panel_nassets(panel);
  if (cfg->nweights != na || !cfg->weights)
    return keeli_error(ctx, KEEL_EINVAL, "backtest: %zu weights given for %zu assets", cfg->nweights, na);
  CHECK(isfinite(cfg->capital) && cfg->capital > 0, "backtest: capital %g must be finite and > 0", cfg->capital);
  CHECK(isfinite(cfg->cost_bps) && cfg->cost_bps >= 0 && cfg->cost_bps < 10000,
        "backtest: cost_bps %g must be in [0, 10000)", cfg->cost_bps);
  CHECK((unsigned)cfg->rebalance <= KEEL_CAL_NEVER, "backtest: unknown rebalance calendar %d", (int)cfg->rebalance);
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  sub.weights = cfg->weights;
  sub.capital = cfg->capital;
  sub.schedule.calendar = cfg->rebalance;
  sub.costs.buy_bps = sub.costs.sell_bps = cfg->cost_bps;
  sub.costs.fee = cfg->fee;
  sub.costs.use_lots = 0;
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 1;
  a.subs = &sub;
  a.periods_per_year = cfg->periods_per_year;
  a.risk_free = cfg->risk_free;
  a.start = cfg->start;
  a.end = cfg->end;
  a.seed = keel_ctx_config(ctx)->seed; /* recorded with the run */
  return keel_backtest_run_account(ctx, panel, &a, out);
}

keel_status keel_backtest_compare_dca(keel_ctx *ctx, const keel_panel *panel, const keel_account_spec *spec,
                                      double total, const keel_dca *plan, unsigned installments,
                                      keel_dca_comparison *out) {
  if (!spec || !plan || !out) return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_compare_dca: NULL argument");
  CHECK(spec->nsubs == 1 && spec->subs, "lump sum vs DCA: the account needs exactly one sub-account, not %zu",
        spec->nsubs);
  CHECK(isfinite(total) && total > 0, "lump sum vs DCA: total %g must be finite and > 0", total);
  CHECK(installments >= 1, "lump sum vs DCA: at least one installment");
  memset(out, 0, sizeof *out);
  /* both arms: the sub-account's basket and costs, held as bought */
  keel_subaccount_spec sub = spec->subs[0];
  sub.capital = total;
  sub.schedule.calendar = KEEL_CAL_NEVER;
  sub.rebalance_on_schedule = 0;
  sub.band.kind = KEEL_BAND_NONE;
  sub.vol.target = 0;
  sub.skip_gamma = 0;
  sub.dca = NULL, sub.ndca = 0;
  sub.stops = NULL, sub.nstops = 0;
  keel_account_spec a = *spec;
  a.subs = &sub;
  keel_backtest_result *lump = NULL, *dca = NULL;
  keel_status st = keel_backtest_run_account(ctx, panel, &a, &lump);
  if (st) return st;
  /* the DCA arm: all cash at first (its initial allocation targets
   * nothing), then the installments from that cash */
  keel_dca p = *plan;
  p.amount = total / installments;
  p.source = KEEL_DCA_FROM_CASH;
  p.step_up = 0;
  p.start = p.end = KEEL_DATE_NONE;
  keel_subaccount_spec dsub = sub;
  dsub.invest_at_start = 0;
  dsub.dca = &p, dsub.ndca = 1;
  a.subs = &dsub;
  st = keel_backtest_run_account(ctx, panel, &a, &dca);
  if (!st) {
    const size_t n = keel_backtest_npoints(lump);
    out->total = total;
    out->lump_final = keel_backtest_values(lump)[n - 1];
    out->dca_final = keel_backtest_values(dca)[n - 1];
    out->lump = *keel_backtest_metrics(lump);
    out->dca = *keel_backtest_metrics(dca);
    out->lump_costs = out->lump.costs_total;
    out->dca_costs = out->dca.costs_total;
    for (size_t k = 0; k < keel_backtest_nrebalances(dca); k++)
      out->installments += keel_backtest_rebalances(dca)[k].reason == KEEL_REASON_DCA;
    if (out->installments > installments) out->installments = installments;
  }
  keel_backtest_result_free(lump);
  keel_backtest_result_free(dca);
  return st;
}

/* ---- accessors ---- */

size_t keel_backtest_npoints(const keel_backtest_result *r) { return r->n; }
size_t keel_backtest_nassets(const keel_backtest_result *r) { return r->na; }
const keel_date *keel_backtest_dates(const keel_backtest_result *r) { return r->dates; }
const double *keel_backtest_values(const keel_backtest_result *r) { return r->values; }
const double *keel_backtest_cash(const keel_backtest_result *r) { return r->cash; }
const double *keel_backtest_traded(const keel_backtest_result *r) { return r->traded; }
const double *keel_backtest_costs(const keel_backtest_result *r) { return r->costs; }
const double *keel_backtest_flows(const keel_backtest_result *r) { return r->flows; }
const double *keel_backtest_holdings(const keel_backtest_result *r, size_t i) {
  return r->holdings ? r->holdings + i * r->na : NULL;
}
size_t keel_backtest_ntrades(const keel_backtest_result *r) { return r->ntrades; }
const keel_trade *keel_backtest_trades(const keel_backtest_result *r) { return r->trades; }
size_t keel_backtest_nrebalances(const keel_backtest_result *r) { return r->nrebal; }
const keel_rebalance *keel_backtest_rebalances(const keel_backtest_result *r) { return r->rebal; }
const keel_metrics *keel_backtest_metrics(const keel_backtest_result *r) { return &r->metrics; }
double keel_backtest_capital(const keel_backtest_result *r) { return r->capital; }
uint64_t keel_backtest_seed(const keel_backtest_result *r) { return r->seed; }
size_t keel_backtest_nsubs(const keel_backtest_result *r) { return r->nsubs; }
const char *keel_backtest_sub_name(const keel_backtest_result *r, size_t s) { return r->subs[s].name; }
size_t keel_backtest_sub_nassets(const keel_backtest_result *r, size_t s) { return r->subs[s].na; }
const size_t *keel_backtest_sub_assets(const keel_backtest_result *r, size_t s) { return r->subs[s].assets; }
const double *keel_backtest_sub_values(const keel_backtest_result *r, size_t s) { return r->subs[s].values; }
const double *keel_backtest_sub_cash(const keel_backtest_result *r, size_t s) { return r->subs[s].cash; }
const double *keel_backtest_sub_flows(const keel_backtest_result *r, size_t s) { return r->subs[s].flows; }
const keel_metrics *keel_backtest_sub_metrics(const keel_backtest_result *r, size_t s) { return &r->subs[s].metrics; }
size_t keel_backtest_nevents(const keel_backtest_result *r) { return r->nevents; }
const keel_event *keel_backtest_events(const keel_backtest_result *r) { return r->events; }
size_t keel_backtest_nopt_calls(const keel_backtest_result *r) { return r->nopt; }
const keel_opt_call *keel_backtest_opt_calls(const keel_backtest_result *r) { return r->opt; }
