/* keel — the backtest engine: one account, one fixed-weight basket.
 * Semantics in keel/backtest.h and docs/backtest.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "keel/backtest.h"

/* An asset trades when its target differs from its holding by more than
 * this fraction of the account's value. */
#define TRADE_TOL 1e-12

struct keel_backtest_result {
  keeli_heap heap;
  size_t n, na;
  double capital;
  keel_date *dates;
  double *values, *cash, *traded, *costs;
  double *holdings; /* n x na shares */
  keel_trade *trades;
  size_t ntrades, tradecap;
  keel_rebalance *rebal;
  size_t nrebal, rebalcap;
  keel_metrics metrics;
};

static const char *const CAL_NAMES[] = {"daily", "weekly", "monthly", "quarterly", "yearly", "never", "every_n"};

const char *keel_calendar_name(keel_calendar c) {
  return (unsigned)c < sizeof CAL_NAMES / sizeof CAL_NAMES[0] ? CAL_NAMES[c] : "unknown";
}

int keel_calendar_parse(const char *name, keel_calendar *out) {
  for (size_t i = 0; i < sizeof CAL_NAMES / sizeof CAL_NAMES[0]; i++)
    if (name && strcmp(name, CAL_NAMES[i]) == 0) {
      *out = (keel_calendar)i;
      return 0;
    }
  return -1;
}

void keel_backtest_config_default(keel_backtest_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->rebalance = KEEL_CAL_MONTHLY;
  cfg->capital = 100000;
  cfg->periods_per_year = 252;
}

void keel_backtest_result_free(keel_backtest_result *r) {
  if (!r) return;
  keeli_heap h = r->heap;
  void *blocks[] = {r->dates, r->values, r->cash, r->traded, r->costs, r->holdings, r->trades, r->rebal};
  for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) keeli_heap_free(&h, blocks[i]);
  keeli_heap_free(&h, r);
}

/* Calendar period of a date; a rebalance happens when it changes. */
static long period_key(keel_calendar c, keel_date d) {
  int y, m;
  switch (c) {
    case KEEL_CAL_DAILY: return d;
    case KEEL_CAL_WEEKLY: return d - keel_date_weekday(d);
    case KEEL_CAL_MONTHLY: keel_date_to_ymd(d, &y, &m, NULL); return y * 12L + m;
    case KEEL_CAL_QUARTERLY: keel_date_to_ymd(d, &y, &m, NULL); return y * 4L + (m - 1) / 3;
    case KEEL_CAL_YEARLY: keel_date_to_ymd(d, &y, NULL, NULL); return y;
    case KEEL_CAL_NEVER:
    case KEEL_CAL_EVERY_N: return 0;
  }
  return 0;
}

/* The rebalance problem of one day: find the post-trade value V' with
 *   g(V') = V' + c sum_{j in S} |w_j k(V') - x_j| + fee |S| - V = 0,
 * k(V') = min(V', (V' - XF) / WT), the scale of the tradable targets that
 * keeps cash >= 0 next to frozen holdings XF. g is continuous, piecewise
 * linear and strictly increasing (slope >= 1 - c), so the root is found
 * exactly: binary search over the breakpoints, then a linear solve on the
 * bracketing segment. */
typedef struct rebal_problem {
  size_t na;
  const double *w, *x;   /* weights, current holding values */
  const unsigned char *tradable, *in_s;
  double c, fee, V, XF, WT;
  size_t ns;
} rebal_problem;

static double scale_k(const rebal_problem *q, double vp) {
  if (q->WT <= 0) return vp;
  double k2 = (vp - q->XF) / q->WT;
  return vp < k2 ? vp : k2;
}

static double g_of(const rebal_problem *q, double vp) {
  double k = scale_k(q, vp), s = 0;
  for (size_t j = 0; j < q->na; j++)
    if (q->in_s[j]) s += fabs(q->w[j] * k - q->x[j]);
  return vp + q->c * s + q->fee * (double)q->ns - q->V;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Returns 0 and sets *vp, or -1 if no V' > XF exists (costs exceed value).
 * bp is scratch for na + 3 doubles. */
static int solve_vp(const rebal_problem *q, double *bp, double *vp) {
  if (q->ns == 0) { /* nothing trades, nothing is paid */
    *vp = q->V;
    return 0;
  }
  double lo = q->XF, hi = q->V;
  if (!(hi > lo)) return -1;
  double glo = g_of(q, lo);
  if (glo >= 0) return -1;
  size_t m = 0;
  bp[m++] = lo;
  bp[m++] = hi;
  if (q->WT > 0 && q->WT < 1) {
    double kink = q->XF / (1 - q->WT);
    if (kink > lo && kink < hi) bp[m++] = kink;
  }
  for (size_t j = 0; j < q->na; j++) {
    if (!q->in_s[j] || q->w[j] <= 0) continue;
    double K = q->x[j] / q->w[j]; /* k at which target j equals holding j */
    double v = q->WT > 0 ? fmax(K, q->WT * K + q->XF) : K;
    if (v > lo && v < hi) bp[m++] = v;
  }
  qsort(bp, m, sizeof *bp, cmp_double);
  /* invariant: g(bp[a]) < 0 <= g(bp[b]) */
  size_t a = 0, b = m - 1;
  double ga = glo, gb = g_of(q, hi);
  if (gb < 0) return -1; /* cannot happen: g(V) = costs >= 0 */
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

keel_status keel_backtest_run(keel_ctx *ctx, const keel_panel *panel, const keel_backtest_config *cfg,
                              keel_backtest_result **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_run: out is NULL");
  *out = NULL;
  if (!panel || !cfg) return keeli_error(ctx, KEEL_EINVAL, "keel_backtest_run: panel or config is NULL");
  const size_t na = keel_panel_nassets(panel), nd = keel_panel_ndates(panel);
  if (cfg->nweights != na || !cfg->weights)
    return keeli_error(ctx, KEEL_EINVAL, "backtest: %zu weights given for %zu assets", cfg->nweights, na);
  double wsum = 0;
  for (size_t j = 0; j < na; j++) {
    double w = cfg->weights[j];
    if (!isfinite(w) || w < 0)
      return keeli_error(ctx, KEEL_EINVAL, "backtest: weight of %s is %g; weights must be finite and >= 0",
                         keel_panel_symbol(panel, j), w);
    wsum += w;
  }
  if (wsum > 1 + 1e-12)
    return keeli_error(ctx, KEEL_EINVAL, "backtest: weights sum to %.15g; they must sum to at most 1 (no leverage)",
                       wsum);
  if (!isfinite(cfg->capital) || !(cfg->capital > 0))
    return keeli_error(ctx, KEEL_EINVAL, "backtest: capital %g must be finite and > 0", cfg->capital);
  if (!isfinite(cfg->cost_bps) || cfg->cost_bps < 0 || cfg->cost_bps >= 10000)
    return keeli_error(ctx, KEEL_EINVAL, "backtest: cost_bps %g must be in [0, 10000)", cfg->cost_bps);
  if (!isfinite(cfg->fee) || cfg->fee < 0)
    return keeli_error(ctx, KEEL_EINVAL, "backtest: fee %g must be finite and >= 0", cfg->fee);
  if (!isfinite(cfg->periods_per_year) || !(cfg->periods_per_year > 0))
    return keeli_error(ctx, KEEL_EINVAL, "backtest: periods_per_year %g must be > 0", cfg->periods_per_year);
  if (!isfinite(cfg->risk_free)) return keeli_error(ctx, KEEL_EINVAL, "backtest: risk_free must be finite");
  if ((unsigned)cfg->rebalance > KEEL_CAL_NEVER)
    return keeli_error(ctx, KEEL_EINVAL, "backtest: unknown rebalance calendar %d", (int)cfg->rebalance);
  const size_t start = cfg->start, end = cfg->end ? cfg->end : nd;
  if (end > nd || start >= end)
    return keeli_error(ctx, KEEL_EINVAL, "backtest: rows [%zu, %zu) are not a non-empty range of the %zu rows",
                       start, end, nd);
  const size_t n = end - start;

  keel_backtest_result *r = keeli_calloc(ctx, 1, sizeof *r);
  if (!r) return KEEL_ENOMEM;
  r->heap = *keeli_ctx_heap(ctx);
  r->n = n;
  r->na = na;
  r->capital = cfg->capital;
  r->dates = keeli_alloc_array(ctx, n, sizeof *r->dates);
  r->values = keeli_alloc_array(ctx, n, sizeof(double));
  r->cash = keeli_alloc_array(ctx, n, sizeof(double));
  r->traded = keeli_calloc(ctx, n, sizeof(double));
  r->costs = keeli_calloc(ctx, n, sizeof(double));
  r->holdings = keeli_alloc_array(ctx, n, na * sizeof(double));
  /* scratch: shares, last prices, holding values, targets, flags, breakpoints */
  double *shares = keeli_calloc(ctx, na, sizeof *shares);
  double *last = keeli_alloc_array(ctx, na, sizeof *last);
  double *x = keeli_alloc_array(ctx, na, sizeof *x);
  double *h = keeli_alloc_array(ctx, na, sizeof *h);
  double *bp = keeli_alloc_array(ctx, na + 3, sizeof *bp);
  unsigned char *tradable = keeli_alloc(ctx, na);
  unsigned char *in_s = keeli_calloc(ctx, na, 1);
  keel_status st = KEEL_OK;
  if (!r->dates || !r->values || !r->cash || !r->traded || !r->costs || !r->holdings || !shares || !last || !x ||
      !h || !bp || !tradable || !in_s) {
    st = KEEL_ENOMEM;
    goto done;
  }

  const keel_date *dates = keel_panel_dates(panel);
  const double *px = keel_panel_prices(panel);
  const double c = cfg->cost_bps / 1e4;
  double cash = cfg->capital;
  long prev_key = 0;
  for (size_t j = 0; j < na; j++) last[j] = NAN;

  for (size_t t = 0; t < n; t++) {
    const size_t i = start + t;
    const double *row = px + i * na;
    for (size_t j = 0; j < na; j++)
      if (!isnan(row[j])) last[j] = row[j];
    long key = period_key(cfg->rebalance, dates[i]);
    int rebalance = t == 0 || (cfg->rebalance != KEEL_CAL_NEVER && key != prev_key);
    prev_key = key;

    if (rebalance) {
      rebal_problem q = {.na = na, .w = cfg->weights, .x = x, .tradable = tradable, .in_s = in_s, .c = c,
                         .fee = cfg->fee};
      double V = cash, XF = 0, WT = 0;
      for (size_t j = 0; j < na; j++) {
        x[j] = shares[j] != 0 ? shares[j] * last[j] : 0;
        V += x[j];
        tradable[j] = !isnan(row[j]);
        if (tradable[j])
          WT += cfg->weights[j];
        else
          XF += x[j];
      }
      q.V = V, q.XF = XF, q.WT = WT;
      /* Which assets trade: decided at the solution, re-solved until the
       * set is stable (it changes only when a target lands within the
       * tolerance of its holding). */
      double vp = V;
      for (int iter = 0;; iter++) {
        double k = scale_k(&q, vp);
        size_t ns = 0;
        int changed = 0;
        for (size_t j = 0; j < na; j++) {
          unsigned char s = tradable[j] && fabs(cfg->weights[j] * k - x[j]) > TRADE_TOL * V;
          changed |= s != in_s[j];
          in_s[j] = s;
          ns += s;
        }
        q.ns = ns;
        if (iter > 0 && !changed) break;
        if (solve_vp(&q, bp, &vp) != 0) {
          char db[KEEL_DATE_BUFSIZE];
          keel_date_format(dates[i], db);
          st = keeli_error(ctx, KEEL_EINFEASIBLE,
                           "backtest: on %s trading costs (%zu trades x fee %g) exceed the account's value %.2f",
                           db, ns, cfg->fee, V);
          goto done;
        }
        if (iter == 7) break; /* keep the set the last solve used */
      }
      double k = scale_k(&q, vp), costs = 0, traded = 0, held = 0;
      uint32_t ntr = 0;
      for (size_t j = 0; j < na; j++) {
        h[j] = in_s[j] ? cfg->weights[j] * k : x[j];
        if (!in_s[j]) {
          held += x[j];
          continue;
        }
        double notional = h[j] - x[j];
        double cost = c * fabs(notional) + cfg->fee;
        if (keeli_reserve(ctx, (void **)&r->trades, &r->tradecap, r->ntrades + 1, sizeof *r->trades)) {
          st = KEEL_ENOMEM;
          goto done;
        }
        keel_trade *tr = &r->trades[r->ntrades++];
        tr->date = dates[i];
        tr->asset = (uint32_t)j;
        tr->sub = 0;
        tr->reason = t == 0 ? KEEL_REASON_INITIAL : KEEL_REASON_CALENDAR;
        tr->shares = notional / row[j];
        tr->price = row[j];
        tr->notional = notional;
        tr->cost = cost;
        shares[j] = h[j] / row[j];
        costs += cost;
        traded += fabs(notional);
        held += h[j];
        ntr++;
      }
      cash = V - costs - held;
      if (keeli_reserve(ctx, (void **)&r->rebal, &r->rebalcap, r->nrebal + 1, sizeof *r->rebal)) {
        st = KEEL_ENOMEM;
        goto done;
      }
      keel_rebalance *rb = &r->rebal[r->nrebal++];
      rb->date = dates[i];
      rb->sub = 0;
      rb->reason = t == 0 ? KEEL_REASON_INITIAL : KEEL_REASON_CALENDAR;
      rb->value_before = V;
      rb->value_after = V - costs;
      rb->costs = costs;
      rb->traded = traded;
      rb->ntrades = ntr;
      r->costs[t] = costs;
      r->traded[t] = traded;
    }

    double value = cash;
    double *hold = r->holdings + t * na;
    for (size_t j = 0; j < na; j++) {
      hold[j] = shares[j];
      if (shares[j] != 0) value += shares[j] * last[j];
    }
    r->dates[t] = dates[i];
    r->values[t] = value;
    r->cash[t] = cash;
  }

  keel_metrics_input mi = {.n = n, .dates = r->dates, .values = r->values, .initial = cfg->capital,
                           .traded = r->traded, .costs = r->costs, .periods_per_year = cfg->periods_per_year,
                           .risk_free = cfg->risk_free};
  st = keel_metrics_compute(ctx, &mi, &r->metrics);

done:
  keeli_free(ctx, shares);
  keeli_free(ctx, last);
  keeli_free(ctx, x);
  keeli_free(ctx, h);
  keeli_free(ctx, bp);
  keeli_free(ctx, tradable);
  keeli_free(ctx, in_s);
  if (st != KEEL_OK) {
    keel_backtest_result_free(r);
    return st;
  }
  *out = r;
  return KEEL_OK;
}

size_t keel_backtest_npoints(const keel_backtest_result *r) { return r->n; }
size_t keel_backtest_nassets(const keel_backtest_result *r) { return r->na; }
const keel_date *keel_backtest_dates(const keel_backtest_result *r) { return r->dates; }
const double *keel_backtest_values(const keel_backtest_result *r) { return r->values; }
const double *keel_backtest_cash(const keel_backtest_result *r) { return r->cash; }
const double *keel_backtest_traded(const keel_backtest_result *r) { return r->traded; }
const double *keel_backtest_costs(const keel_backtest_result *r) { return r->costs; }
const double *keel_backtest_holdings(const keel_backtest_result *r, size_t i) { return r->holdings + i * r->na; }
size_t keel_backtest_ntrades(const keel_backtest_result *r) { return r->ntrades; }
const keel_trade *keel_backtest_trades(const keel_backtest_result *r) { return r->trades; }
size_t keel_backtest_nrebalances(const keel_backtest_result *r) { return r->nrebal; }
const keel_rebalance *keel_backtest_rebalances(const keel_backtest_result *r) { return r->rebal; }
const keel_metrics *keel_backtest_metrics(const keel_backtest_result *r) { return &r->metrics; }
double keel_backtest_capital(const keel_backtest_result *r) { return r->capital; }
