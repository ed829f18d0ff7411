/* keel — from holdings to an executable trade list: a continuous
 * optimum, the convex relaxation of fixed fees and its reweighted-l1
 * heuristic (Lobo, Fazel and Boyd, "Portfolio optimization with linear
 * and fixed transaction costs", Annals of Operations Research 152, 2007),
 * then whole lots by a coordinate search on the exact merit. Contract in
 * keel/mv.h; docs/optimize.md. */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "keel/estimate.h"
#include "keel/mv.h"

#define REWEIGHTINGS 4    /* reweighted-l1 solves after the relaxation */
#define REWEIGHT_EPS 1e-3 /* trade size (weight) below which a fee counts in full */
#define MAX_PASSES 200    /* coordinate-search sweeps */
#define NCAND 24
#define PAIR_LIMIT 60     /* assets tried in pair moves */

typedef struct tl {
  keel_ctx *ctx;
  size_t n, k;
  keel_cmat cov; /* dense (data NULL for a factor model) */
  const keel_factor_model *fm;
  const keel_mv_spec *sp;
  const keel_holdings *h;
  double V, gamma, nu;
  double *mu;                               /* merit returns mu_m */
  double *w0, *lb, *ub, *cb, *cs, *fee, *lot, *minn, *sdiag;
  size_t *gstart, *glist;                   /* groups of each asset (CSR) */
  /* search state */
  double *q, *w, *g, *gsum, *col, *fv; /* trades, weights, S w, group sums, a column of S, F B_i' */
  double cash, turnover;
} tl;

/* ---- the covariance ---- */

/* T->col = column i of S */
static void cov_col(tl *T, size_t i) {
  const size_t n = T->n;
  if (T->cov.data) {
    for (size_t j = 0; j < n; j++) T->col[j] = T->cov.data[i * T->cov.ld + j];
    return;
  }
  const keel_factor_model *f = T->fm;
  const double *bi = f->B.data + i * f->B.ld;
  for (size_t a = 0; a < f->k; a++) T->fv[a] = keeli_dot(f->F.data + a * f->F.ld, bi, f->k);
  for (size_t j = 0; j < n; j++) T->col[j] = keeli_dot(f->B.data + j * f->B.ld, T->fv, f->k);
  T->col[i] += f->d[i];
}

/* ---- the merit ---- */

static double cost_w(const tl *T, size_t i, double dw) { return dw > 0 ? T->cb[i] * dw : -T->cs[i] * dw; }

/* The merit of weights w with trades q (fees where q != 0; none when q
 * is NULL), proportional costs at rates cb, cs. */
static double merit(const tl *T, const double *w, const double *q, const double *cb, const double *cs) {
  double m = T->nu;
  for (size_t i = 0; i < T->n; i++) {
    double dw = w[i] - T->w0[i];
    m += (T->mu[i] - T->nu) * w[i] - (dw > 0 ? cb[i] * dw : -cs[i] * dw);
    if (q && q[i] != 0) m -= T->fee[i] / T->V;
  }
  return m - 0.5 * T->gamma * keeli_cov_quad(T->cov, T->fm, T->n, w);
}

/* Cash the trade of q shares of asset i brings (negative for a buy). */
static double cash_of(const tl *T, size_t i, double q) {
  if (q == 0) return 0;
  double p = T->h->prices[i], notional = q * p;
  return -notional - (q > 0 ? T->cb[i] : T->cs[i]) * fabs(notional) - T->fee[i];
}

/* How far v is outside [lo, hi]. */
static double outside(double v, double lo, double hi) { return v < lo ? lo - v : v > hi ? v - hi : 0; }

#define FEAS_TOL 1e-12

/* A move keeps a constraint if it ends inside it or no further outside. */
static int keeps(double before, double after, double lo, double hi) {
  double oa = outside(after, lo, hi);
  return oa <= FEAS_TOL || oa <= outside(before, lo, hi);
}

/* ---- the search ---- */

static void state_reset(tl *T) {
  const size_t n = T->n;
  memset(T->q, 0, n * sizeof(double));
  memcpy(T->w, T->w0, n * sizeof(double));
  keeli_cov_mul(T->cov, T->fm, T->n, T->w, T->g);
  for (size_t gi = 0; gi < T->sp->ngroups; gi++) {
    const keel_group *gr = &T->sp->groups[gi];
    T->gsum[gi] = 0;
    for (size_t j = 0; j < gr->count; j++) T->gsum[gi] += T->w0[gr->assets[j]];
  }
  T->cash = T->h->cash;
  T->turnover = 0;
}

/* The cash after the current trades, summed afresh in index order. */
static double cash_now(const tl *T) {
  double c = T->h->cash;
  for (size_t i = 0; i < T->n; i++) c += cash_of(T, i, T->q[i]);
  return c;
}

/* A trade of asset i moved onto the lot grid, rounding the number of lots
 * down (mode < 0), to the nearest (0) or up (> 0), then raised to the
 * minimum notional if it falls below. */
static double on_grid(const tl *T, size_t i, double x, int mode) {
  double L = T->lot[i], p = T->h->prices[i];
  if (!isfinite(x)) return 0;
  if (L > 0) {
    double m = x / L;
    x = (mode < 0 ? floor(m) : mode > 0 ? ceil(m) : nearbyint(m)) * L;
  }
  if (x != 0 && fabs(x) * p < T->minn[i]) {
    double need = T->minn[i] / p;
    if (L > 0) need = ceil(need / L) * L;
    x = x > 0 ? need : -need;
  }
  return x;
}

/* The change of merit when asset i's trade goes from T->q[i] to x, or
 * -INFINITY when the move is not allowed. */
static double move_gain(const tl *T, size_t i, double x) {
  const double qi = T->q[i];
  if (x == qi) return -INFINITY;
  const double p = T->h->prices[i], s = T->h->shares[i];
  /* sizes: x = 0, selling the whole holding, or the lot grid; every
   * trade at least the minimum notional */
  if (x != 0) {
    if (fabs(x) * p < T->minn[i] * (1 - 1e-12)) return -INFINITY;
    if (T->lot[i] > 0 && x != -s) {
      double m = x / T->lot[i];
      if (fabs(m - nearbyint(m)) > 1e-9 * fmax(1, fabs(m))) return -INFINITY;
    }
  }
  const double wa = T->w[i], wb = (s + x) * p / T->V, dw = wb - wa;
  if (!keeps(wa, wb, T->lb[i], T->ub[i])) return -INFINITY;
  for (size_t a = T->gstart[i]; a < T->gstart[i + 1]; a++) {
    const keel_group *gr = &T->sp->groups[T->glist[a]];
    double before = T->gsum[T->glist[a]];
    if (!keeps(before, before + dw, gr->lo, gr->hi)) return -INFINITY;
  }
  const double w0 = T->w0[i];
  if (T->sp->turnover_cap < INFINITY) {
    double to = T->turnover - fabs(wa - w0) + fabs(wb - w0);
    if (!keeps(T->turnover, to, 0, T->sp->turnover_cap)) return -INFINITY;
  }
  if (T->cash - cash_of(T, i, qi) + cash_of(T, i, x) < 0) return -INFINITY;
  double gain = (T->mu[i] - T->nu) * dw - T->gamma * (T->g[i] * dw + 0.5 * T->sdiag[i] * dw * dw);
  gain -= cost_w(T, i, wb - w0) - cost_w(T, i, wa - w0);
  gain -= ((x != 0) - (qi != 0)) * T->fee[i] / T->V;
  return gain;
}

static void apply_move(tl *T, size_t i, double x) {
  const double p = T->h->prices[i], s = T->h->shares[i];
  const double wa = T->w[i], wb = (s + x) * p / T->V, dw = wb - wa, w0 = T->w0[i];
  cov_col(T, i);
  for (size_t j = 0; j < T->n; j++) T->g[j] += T->col[j] * dw;
  for (size_t a = T->gstart[i]; a < T->gstart[i + 1]; a++) T->gsum[T->glist[a]] += dw;
  T->turnover += fabs(wb - w0) - fabs(wa - w0);
  T->q[i] = x;
  T->w[i] = wb;
  T->cash = cash_now(T);
}

/* Candidate trades of asset i: none, selling out, and the lot-grid
 * neighbours of the target, of the one-asset optima on the buy and the
 * sell side, of one lot more or less, and of the bound and cash limits. */
static size_t candidates(const tl *T, size_t i, double target, double *c) {
  const double p = T->h->prices[i], s = T->h->shares[i], V = T->V, qi = T->q[i];
  double x[8];
  size_t nx = 0, nc = 0;
  x[nx++] = target;
  const double a = T->mu[i] - T->nu - T->gamma * (T->g[i] - T->sdiag[i] * T->w[i]), gs = T->gamma * T->sdiag[i];
  if (gs > 0) {
    double wbuy = (a - T->cb[i]) / gs, wsell = (a + T->cs[i]) / gs;
    if (wbuy > T->w0[i]) x[nx++] = wbuy * V / p - s;
    if (wsell < T->w0[i]) x[nx++] = wsell * V / p - s;
  }
  double step = T->lot[i] > 0 ? T->lot[i] : fmax(fabs(qi) * 0.01, T->minn[i] / p);
  x[nx++] = qi + step, x[nx++] = qi - step;
  if (isfinite(T->ub[i])) x[nx++] = T->ub[i] * V / p - s;
  if (isfinite(T->lb[i])) x[nx++] = T->lb[i] * V / p - s;
  /* the largest buy the cash allows with this asset's trade undone */
  double avail = T->cash - cash_of(T, i, qi) - T->fee[i];
  if (avail > 0) x[nx++] = avail / (p * (1 + T->cb[i]));
  c[nc++] = 0;
  if (s > 0) c[nc++] = -s;
  for (size_t k = 0; k < nx; k++) {
    if (!isfinite(x[k])) continue;
    c[nc++] = on_grid(T, i, x[k], -1);
    if (T->lot[i] > 0) c[nc++] = on_grid(T, i, x[k], 1);
  }
  return nc;
}

/* The best single move of asset i over its candidates (gain > min_gain),
 * or 0 when there is none. */
static int best_move(const tl *T, size_t i, double target, double min_gain, double *gain, double *x) {
  double c[NCAND];
  size_t nc = candidates(T, i, target, c);
  int found = 0;
  for (size_t k = 0; k < nc; k++) {
    double gn = move_gain(T, i, c[k]);
    if (gn > min_gain) min_gain = gn, *x = c[k], found = 1;
  }
  *gain = min_gain;
  return found;
}

/* Applies a move unless the fresh cash sum comes out below zero (by
 * rounding); returns whether it stays. */
static int try_move(tl *T, size_t i, double x) {
  double prev = T->q[i];
  apply_move(T, i, x);
  if (T->cash >= 0) return 1;
  apply_move(T, i, prev);
  return 0;
}

/* Every trade at once, rounded to the lot grid (dir 0: nearest; -1: buys
 * down and sells up in size, which leaves the most cash): kept when every
 * rule holds and the merit is no lower than holding. */
static void jump(tl *T, const double *tq, int dir) {
  const size_t n = T->n;
  double hold = merit(T, T->w0, NULL, T->cb, T->cs);
  for (size_t i = 0; i < n; i++) {
    double x = on_grid(T, i, tq[i], dir);
    if (x < -T->h->shares[i] && T->lb[i] >= 0) x = -T->h->shares[i];
    T->q[i] = x;
    T->w[i] = (T->h->shares[i] + x) * T->h->prices[i] / T->V;
  }
  /* a target that spends all the cash overdraws by rounding; a fractional
   * buy takes the shortfall (the largest, so it stays above its minimum) */
  double cash = cash_now(T);
  if (cash < 0 && cash > -1e-9 * T->V) {
    size_t b = n;
    for (size_t i = 0; i < n; i++)
      if (T->lot[i] == 0 && T->q[i] > 0 && (b == n || T->q[i] * T->h->prices[i] > T->q[b] * T->h->prices[b])) b = i;
    if (b < n) {
      const double p = T->h->prices[b];
      T->q[b] = fmax(T->q[b] + cash / (p * (1 + T->cb[b])), 0);
      for (int k = 0; k < 4 && cash_now(T) < 0; k++) T->q[b] = nextafter(T->q[b], 0);
      T->w[b] = (T->h->shares[b] + T->q[b]) * p / T->V;
    }
  }
  /* the rules, against the holdings */
  int ok = cash_now(T) >= 0;
  double to = 0;
  for (size_t i = 0; ok && i < n; i++) {
    double x = T->q[i], p = T->h->prices[i];
    ok = keeps(T->w0[i], T->w[i], T->lb[i], T->ub[i]) && (x == 0 || fabs(x) * p >= T->minn[i] * (1 - 1e-12));
    to += fabs(T->w[i] - T->w0[i]);
  }
  for (size_t gi = 0; ok && gi < T->sp->ngroups; gi++) {
    const keel_group *gr = &T->sp->groups[gi];
    double a = 0, b = 0;
    for (size_t j = 0; j < gr->count; j++) a += T->w0[gr->assets[j]], b += T->w[gr->assets[j]];
    ok = keeps(a, b, gr->lo, gr->hi);
  }
  if (ok && T->sp->turnover_cap < INFINITY) ok = keeps(0, to, 0, T->sp->turnover_cap);
  if (ok && merit(T, T->w, T->q, T->cb, T->cs) >= hold) {
    keeli_cov_mul(T->cov, T->fm, T->n, T->w, T->g);
    for (size_t gi = 0; gi < T->sp->ngroups; gi++) {
      const keel_group *gr = &T->sp->groups[gi];
      T->gsum[gi] = 0;
      for (size_t j = 0; j < gr->count; j++) T->gsum[gi] += T->w[gr->assets[j]];
    }
    T->turnover = to;
    T->cash = cash_now(T);
  } else {
    state_reset(T);
  }
}

/* Local search from a target's rounded trades (or the holdings): single
 * moves to the best candidate while one gains, then pairs (one asset's
 * move that frees cash followed by another's best), until neither gains. Pairs are tried
 * among the pair_limit assets with the largest target trades. */
static void search(tl *T, const double *tq, const size_t *order, int dir, size_t pair_limit) {
  state_reset(T);
  jump(T, tq, dir);
  const double eps = 1e-15;
  for (int pass = 0; pass < MAX_PASSES; pass++) {
    int moved = 0;
    for (size_t oi = 0; oi < T->n; oi++) {
      size_t i = order[oi];
      double g, x;
      if (best_move(T, i, tq[i], eps, &g, &x) && try_move(T, i, x)) moved = 1;
    }
    if (moved) continue;
    /* pairs: a move of i that loses alone, then the best move of j */
    double c[NCAND];
    const size_t np = pair_limit < T->n ? pair_limit : T->n;
    for (size_t oi = 0; oi < np && !moved; oi++) {
      size_t i = order[oi];
      size_t nc = candidates(T, i, tq[i], c);
      for (size_t k = 0; k < nc && !moved; k++) {
        double gi = move_gain(T, i, c[k]), prev = T->q[i];
        /* the first move frees cash (a sale, or a smaller purchase): the
         * pairs that single moves miss are a sale that pays for a purchase,
         * or a shift inside a binding group or cap, which has a sale too */
        if (!(gi > -INFINITY) || !(cash_of(T, i, c[k]) > cash_of(T, i, prev)) || !try_move(T, i, c[k])) continue;
        for (size_t oj = 0; oj < np && !moved; oj++) {
          size_t j = order[oj];
          double g, x;
          if (j != i && best_move(T, j, tq[j], eps - gi, &g, &x) && try_move(T, j, x)) moved = 1;
        }
        if (!moved) apply_move(T, i, prev);
      }
    }
    if (!moved) break;
  }
}

/* ---- the call ---- */

static keel_status check_holdings(keel_ctx *ctx, size_t n, const keel_holdings *h, double *V) {
  if (!h || !h->shares || !h->prices)
    return keeli_error(ctx, KEEL_EINVAL, "trade list: holdings need shares and prices");
  if (!(isfinite(h->cash) && h->cash >= 0))
    return keeli_error(ctx, KEEL_EINVAL, "trade list: cash must be finite and >= 0 (it is %g)", h->cash);
  double v = h->cash;
  for (size_t i = 0; i < n; i++) {
    if (!(isfinite(h->prices[i]) && h->prices[i] > 0))
      return keeli_error(ctx, KEEL_EINVAL, "trade list: price of asset %zu is %g; prices must be > 0", i,
                         h->prices[i]);
    if (!isfinite(h->shares[i]))
      return keeli_error(ctx, KEEL_EINVAL, "trade list: shares of asset %zu are not finite", i);
    const double *arr[3] = {h->lot, h->min_notional, h->fee};
    const char *nm[3] = {"lot size", "minimum notional", "fee"};
    for (int k = 0; k < 3; k++)
      if (arr[k] && !(isfinite(arr[k][i]) && arr[k][i] >= 0))
        return keeli_error(ctx, KEEL_EINVAL, "trade list: %s of asset %zu is %g; it must be finite and >= 0", nm[k],
                           i, arr[k][i]);
    v += h->shares[i] * h->prices[i];
  }
  if (!(v > 0 && isfinite(v)))
    return keeli_error(ctx, KEEL_EINVAL, "trade list: the account is worth %g; it must be worth more than 0", v);
  *V = v;
  return KEEL_OK;
}

static void tl_free(tl *T) {
  double *a[] = {T->mu, T->w0, T->lb, T->ub, T->cb, T->cs, T->fee, T->lot, T->minn, T->sdiag, T->q, T->w, T->g,
                 T->gsum, T->col, T->fv};
  for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) keeli_free(T->ctx, a[i]);
  keeli_free(T->ctx, T->gstart);
  keeli_free(T->ctx, T->glist);
}

static keel_status tl_init(tl *T, keel_ctx *ctx, size_t n, keel_cmat cov, const keel_factor_model *fm,
                           const keel_mv_spec *sp, const keel_holdings *h, double V) {
  memset(T, 0, sizeof *T);
  T->ctx = ctx, T->n = n, T->cov = cov, T->fm = fm, T->sp = sp, T->h = h, T->V = V, T->gamma = sp->gamma;
  T->k = fm ? fm->k : 0;
  size_t nmem = 0;
  for (size_t gi = 0; gi < sp->ngroups; gi++) nmem += sp->groups[gi].count;
  int ok = 1;
#define ARR(f, len) ok &= (T->f = keeli_calloc(ctx, (len), sizeof(double))) != NULL;
  ARR(mu, n) ARR(w0, n) ARR(lb, n) ARR(ub, n) ARR(cb, n) ARR(cs, n) ARR(fee, n) ARR(lot, n) ARR(minn, n);
  ARR(sdiag, n) ARR(q, n) ARR(w, n) ARR(g, n) ARR(gsum, sp->ngroups + 1) ARR(col, n) ARR(fv, T->k + 1);
#undef ARR
  ok &= (T->gstart = keeli_calloc(ctx, n + 1, sizeof(size_t))) != NULL;
  ok &= (T->glist = keeli_calloc(ctx, nmem + 1, sizeof(size_t))) != NULL;
  if (!ok) {
    tl_free(T);
    return KEEL_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    T->w0[i] = h->shares[i] * h->prices[i] / V;
    T->lb[i] = sp->lb ? sp->lb[i] : 0;
    T->ub[i] = sp->ub ? sp->ub[i] : 1;
    T->cb[i] = sp->cost_buy ? sp->cost_buy[i] : 0;
    T->cs[i] = sp->cost_sell ? sp->cost_sell[i] : 0;
    T->fee[i] = h->fee ? h->fee[i] : 0;
    T->lot[i] = h->lot ? h->lot[i] : 1;
    T->minn[i] = h->min_notional ? h->min_notional[i] : 0;
  }
  for (size_t gi = 0; gi < sp->ngroups; gi++)
    for (size_t j = 0; j < sp->groups[gi].count; j++)
      if (sp->groups[gi].assets[j] < n) T->gstart[sp->groups[gi].assets[j] + 1]++;
  for (size_t i = 0; i < n; i++) T->gstart[i + 1] += T->gstart[i];
  for (size_t gi = 0; gi < sp->ngroups; gi++)
    for (size_t j = 0; j < sp->groups[gi].count; j++) {
      size_t a = sp->groups[gi].assets[j];
      if (a >= n) continue;
      /* the next free slot of asset a: gstart[a] counts up while filling */
      T->glist[T->gstart[a]++] = gi;
    }
  for (size_t i = n; i > 0; i--) T->gstart[i] = T->gstart[i - 1];
  T->gstart[0] = 0;
  return KEEL_OK;
}

/* Trades (shares) that reach weights wt from the holdings. */
static void trades_to(const tl *T, const double *wt, double *tq) {
  for (size_t i = 0; i < T->n; i++) tq[i] = wt[i] * T->V / T->h->prices[i] - T->h->shares[i];
}

keel_status keel_mv_trade_list(keel_ctx *ctx, size_t n, const double *mu, keel_cmat cov, const keel_factor_model *fm,
                               const keel_mv_spec *spec, const keel_holdings *h, double *shares, double *weights,
                               double *target, keel_trade_plan *plan) {
  if (!spec || !shares || !plan) return keeli_error(ctx, KEEL_EINVAL, "trade list: NULL argument");
  if (n == 0) return keeli_error(ctx, KEEL_EINVAL, "trade list: no assets");
  if (!(spec->gamma > 0 && spec->gamma < INFINITY))
    return keeli_error(ctx, KEEL_EINVAL, "trade list: risk aversion gamma must be > 0 (it is %g)", spec->gamma);
  double V = 0;
  keel_status st = check_holdings(ctx, n, h, &V);
  if (st) return st;
  memset(plan, 0, sizeof *plan);
  tl T;
  if ((st = tl_init(&T, ctx, n, cov, fm, spec, h, V))) return st;
  const size_t nt = 2 + REWEIGHTINGS; /* targets: w*, the relaxation, the reweighted solves */
  double *W = keeli_alloc_array(ctx, nt, n * sizeof(double)), *tq = keeli_alloc_array(ctx, n, sizeof(double));
  double *c2b = keeli_alloc_array(ctx, n, sizeof(double)), *c2s = keeli_alloc_array(ctx, n, sizeof(double));
  double *best = keeli_alloc_array(ctx, n, sizeof(double));
  double *covcopy = NULL;
  size_t *order = keeli_alloc_array(ctx, n, sizeof(size_t));
  if (!W || !tq || !c2b || !c2s || !best || !order) {
    st = KEEL_ENOMEM;
    goto done;
  }

  /* the continuous optimum w* of the spec's objective from the holdings */
  keel_mv_spec s1 = *spec;
  s1.w0 = T.w0;
  if (spec->objective != KEEL_OBJ_UTILITY && spec->objective != KEEL_OBJ_TARGET_VOL)
    s1.cost_buy = s1.cost_sell = NULL; /* those objectives take no costs; the merit does */
  double *wstar = W;
  if ((st = keel_mv_optimize(ctx, n, mu, cov, fm, &s1, wstar, &plan->mv))) goto done;
  if (plan->mv.psd_repaired) { /* use the repaired covariance from here on, as the optimiser did */
    if (!(covcopy = keeli_alloc_array(ctx, n, n * sizeof(double)))) {
      st = KEEL_ENOMEM;
      goto done;
    }
    for (size_t i = 0; i < n; i++) memcpy(covcopy + i * n, cov.data + i * cov.ld, n * sizeof(double));
    if ((st = keel_cov_nearest_psd(ctx, keel_mat_view(covcopy, n, n), 0, NULL))) goto done;
    T.cov = keel_cmat_view(covcopy, n, n);
  }
  for (size_t i = 0; i < n; i++) {
    cov_col(&T, i);
    T.sdiag[i] = T.col[i];
  }
  /* the merit's returns: mu, or those that make w* the utility optimum */
  if (spec->objective == KEEL_OBJ_UTILITY) {
    memcpy(T.mu, mu, n * sizeof(double));
  } else {
    keeli_cov_mul(T.cov, fm, n, wstar, T.mu);
    for (size_t i = 0; i < n; i++) T.mu[i] = spec->risk_free + T.gamma * T.mu[i];
  }

  /* the relaxation: each fee replaced by fee |dw| / u on the largest
   * trade u the bounds and the turnover cap allow */
  keel_mv_spec s2 = *spec;
  s2.objective = KEEL_OBJ_UTILITY;
  s2.w0 = T.w0;
  s2.cost_buy = c2b, s2.cost_sell = c2s;
  for (size_t i = 0; i < n; i++) {
    double ubuy = fmin(T.ub[i] - T.w0[i], spec->turnover_cap), usell = fmin(T.w0[i] - T.lb[i], spec->turnover_cap);
    c2b[i] = T.cb[i] + (ubuy > 0 && ubuy < INFINITY ? T.fee[i] / (V * ubuy) : 0);
    c2s[i] = T.cs[i] + (usell > 0 && usell < INFINITY ? T.fee[i] / (V * usell) : 0);
  }
  keel_mv_result r2;
  double *wrel = W + n;
  if ((st = keel_mv_optimize(ctx, n, T.mu, T.cov, fm, &s2, wrel, &r2))) goto done;
  T.nu = r2.budget_price;
  plan->budget_price = T.nu;
  plan->bound = merit(&T, wrel, NULL, c2b, c2s); /* fees as their envelopes */
  /* the reweighted-l1 heuristic: a fee costs fee / (V (|dw| + eps)) per
   * unit traded, dw from the previous solution, so small trades price
   * themselves out */
  size_t ntargets = 2;
  int anyfee = 0;
  for (size_t i = 0; i < n; i++) anyfee |= T.fee[i] > 0;
  for (int r = 0; anyfee && r < REWEIGHTINGS; r++) {
    const double *prev = W + (ntargets - 1) * n;
    double *next = W + ntargets * n;
    for (size_t i = 0; i < n; i++) {
      double extra = T.fee[i] / (V * (fabs(prev[i] - T.w0[i]) + REWEIGHT_EPS));
      c2b[i] = T.cb[i] + extra, c2s[i] = T.cs[i] + extra;
    }
    if ((st = keel_mv_optimize(ctx, n, T.mu, T.cov, fm, &s2, next, NULL))) goto done;
    ntargets++;
    plan->reweightings++;
  }

  /* whole lots: a coordinate search towards each target; the best plan */
  double bestm = -INFINITY;
  for (size_t t = 0; t < ntargets; t++) {
    trades_to(&T, W + t * n, tq);
    for (size_t i = 0; i < n; i++) order[i] = i;
    /* sells first, largest first, so their cash is there for the buys */
    for (size_t i = 1; i < n; i++)
      for (size_t j = i; j > 0 && tq[order[j]] * h->prices[order[j]] < tq[order[j - 1]] * h->prices[order[j - 1]];
           j--) {
        size_t x = order[j];
        order[j] = order[j - 1], order[j - 1] = x;
      }
    for (int dir = 0; dir >= -1; dir--) {
      search(&T, tq, order, dir, PAIR_LIMIT);
      double m = merit(&T, T.w, T.q, T.cb, T.cs);
      if (m > bestm) bestm = m, memcpy(best, T.q, n * sizeof(double));
    }
  }

  /* the plan */
  double cash = h->cash, prop = 0, fees = 0, after = 0;
  for (size_t i = 0; i < n; i++) {
    double x = best[i], p = h->prices[i];
    shares[i] = x;
    T.q[i] = x;
    T.w[i] = (h->shares[i] + x) * p / V;
    if (x != 0) {
      plan->ntrades++;
      prop += (x > 0 ? T.cb[i] : T.cs[i]) * fabs(x * p);
      fees += T.fee[i];
    }
    cash += cash_of(&T, i, x);
  }
  for (size_t i = 0; i < n; i++) after += (h->shares[i] + best[i]) * h->prices[i];
  plan->value_before = V;
  plan->cash_after = cash;
  plan->value_after = after + cash;
  plan->prop_costs = prop;
  plan->fees = fees;
  plan->merit = merit(&T, T.w, T.q, T.cb, T.cs);
  plan->gap = plan->bound - plan->merit;
  plan->continuous_merit = merit(&T, wstar, NULL, T.cb, T.cs);
  for (size_t i = 0; i < n; i++) best[i] = T.w[i] - wstar[i];
  plan->tracking_error = sqrt(fmax(keeli_cov_quad(T.cov, fm, n, best), 0));
  if (weights) memcpy(weights, T.w, n * sizeof(double));
  if (target) memcpy(target, wstar, n * sizeof(double));
done:
  keeli_free(ctx, W);
  keeli_free(ctx, tq);
  keeli_free(ctx, c2b);
  keeli_free(ctx, c2s);
  keeli_free(ctx, best);
  keeli_free(ctx, covcopy);
  keeli_free(ctx, order);
  tl_free(&T);
  return st;
}
