/* keel — strategies: the built-ins of keel/strategy.h and equal risk
 * contribution weights. docs/strategies.md gives every rule; in short:
 *
 * - The estimation window of a decision on panel row `row` is the rows
 *   [max(first_row, row - lookback), row]: at most `lookback` returns, none
 *   after `row` (no look-ahead) and none before the run's first row.
 *   Returns are simple, p_t / p_prev - 1, with p_prev the asset's last
 *   price in the window before t (a return after a halt spans the halt);
 *   only the sub-account's columns are read.
 * - An asset is usable when it has a price on `row` and at least 2 returns
 *   in the window; the others get weight 0 and the usable ones share
 *   `invest`. (equal needs no history: it uses every asset with a price on
 *   `row`; fixed returns its weights as given.)
 * - Covariance strategies estimate over the usable assets' common rows
 *   (every one of them has a return). A covariance of m assets needs
 *   m + 1 common rows (sample, EWMA, semi: singular with fewer) or 3
 *   (Ledoit-Wolf: positive definite from 3). While there are fewer, the
 *   usable asset with the fewest returns in the window (the latest listed;
 *   on a tie the last in the sub-account's order) is set aside with weight
 *   0, as long as it has fewer returns than another. If every usable asset
 *   has as many returns and the rows still do not suffice (a run's first
 *   rows), the usable assets get equal weights, invest / m, and no
 *   optimiser is called. One asset always suffices.
 * - inverse_vol: an asset whose returns in the window are all equal
 *   (volatility 0) is the limit of 1 / sigma: the zero-volatility assets
 *   share `invest` equally and the others get 0.
 * - max_sharpe when no usable portfolio's expected return beats the
 *   risk-free rate (the maximum Sharpe ratio is not positive): the
 *   minimum-variance portfolio of the same assets and cap, recorded as that
 *   optimiser call (its objective_ret is then below the risk-free rate),
 *   rather than ending the run.
 * - max_sharpe with costs: the cost-free maximum-Sharpe portfolio gives its
 *   volatility sigma*; then the portfolio of most expected return net of
 *   costs at volatility sigma* (keel_mv_optimize, target_vol, fully
 *   invested, w0 the current weights as given even when they sum below 1).
 *   The record holds the last call, with the solves of both summed.
 *
 * Shapes are checked before LAPACK is called, so its error handler never
 * runs. */
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "keel/strategy.h"

static const char *const BUILTIN_NAMES[] = {"fixed",        "equal",      "inverse_vol",
                                            "min_variance", "max_sharpe", "risk_parity"};
#define NBUILTIN (sizeof BUILTIN_NAMES / sizeof BUILTIN_NAMES[0])

const char *keel_builtin_name(keel_builtin b) { return (unsigned)b < NBUILTIN ? BUILTIN_NAMES[b] : "unknown"; }

int keel_builtin_parse(const char *s, keel_builtin *out) {
  for (size_t i = 0; s && i < NBUILTIN; i++)
    if (strcmp(s, BUILTIN_NAMES[i]) == 0) {
      *out = (keel_builtin)i;
      return 0;
    }
  return -1;
}

void keel_builtin_params_default(keel_builtin_params *p) {
  memset(p, 0, sizeof *p);
  p->invest = 1;
  p->lookback = 252;
  p->cov = KEEL_COV_LW_IDENTITY;
  p->halflife = 63;
  p->max_weight = 1;
  p->risk_free = 0;
  p->use_costs = 1;
}

/* ---- strategies made by keel ---- */

/* The public struct first, so keel_strategy_free can find the heap. */
typedef struct holder {
  keel_strategy s;
  keeli_heap heap;
} holder;

keel_status keeli_strategy_new(keel_ctx *ctx, const keel_strategy_ops *ops, void *state, keel_strategy **out) {
  holder *h = keeli_alloc(ctx, sizeof *h);
  if (!h) return KEEL_ENOMEM;
  h->s.ops = ops;
  h->s.state = state;
  h->heap = *keeli_ctx_heap(ctx);
  *out = &h->s;
  return KEEL_OK;
}

void keel_strategy_free(keel_strategy *s) {
  if (!s) return;
  holder *h = (holder *)s;
  keeli_heap heap = h->heap;
  if (s->ops && s->ops->free) s->ops->free(s->state);
  keeli_heap_free(&heap, h);
}

/* ---- the built-ins ---- */

typedef struct bstate {
  keeli_heap heap;
  keel_builtin kind;
  keel_builtin_params p; /* p.weights points to `weights` */
  double *weights;
} bstate;

static void builtin_free(void *state) {
  bstate *b = state;
  if (!b) return;
  keeli_heap heap = b->heap;
  keeli_heap_free(&heap, b->weights);
  keeli_heap_free(&heap, b);
}

static int estimates(keel_builtin k) { return k != KEEL_STRAT_FIXED && k != KEEL_STRAT_EQUAL; }

/* Checks a decision's input against the strategy. */
static keel_status check_input(keel_ctx *ctx, const bstate *b, const keel_strategy_input *in, const char *who) {
  const char *nm = keel_builtin_name(b->kind);
  if (!in || !in->panel) return keeli_error(ctx, KEEL_EINVAL, "strategy %s: %s: no input or no panel", nm, who);
  const size_t nd = keel_panel_ndates(in->panel), np = keel_panel_nassets(in->panel);
  if (in->row >= nd || in->first_row > in->row)
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: %s: row %zu (first row %zu) outside the panel's %zu rows", nm,
                       who, in->row, in->first_row, nd);
  if (in->nassets && !in->assets)
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: %s: %zu assets but no columns", nm, who, in->nassets);
  for (size_t k = 0; k < in->nassets; k++)
    if (in->assets[k] >= np)
      return keeli_error(ctx, KEEL_EINVAL, "strategy %s: %s: asset %zu is panel column %zu of %zu", nm, who, k,
                         in->assets[k], np);
  if (b->kind == KEEL_STRAT_FIXED && b->p.nweights != in->nassets)
    return keeli_error(ctx, KEEL_EINVAL, "strategy fixed: %s: %zu weights for a sub-account of %zu assets", who,
                       b->p.nweights, in->nassets);
  if (estimates(b->kind) && !(in->periods_per_year > 0 && in->periods_per_year < INFINITY))
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: %s: periods_per_year must be > 0 (it is %g)", nm, who,
                       in->periods_per_year);
  return KEEL_OK;
}

static keel_status builtin_init(void *state, keel_ctx *ctx, const keel_strategy_input *in) {
  return check_input(ctx, state, in, "init");
}

/* The work of one decision: the window's returns of the sub-account's
 * assets and the usable set. */
typedef struct window {
  size_t na, T;   /* assets, returns in the window */
  double *R;      /* T x na, NaN where missing */
  size_t *cnt;    /* returns per asset */
  size_t *use, m; /* usable assets (sub-account indices) */
} window;

static keel_status window_make(keel_ctx *ctx, const bstate *b, const keel_strategy_input *in, window *W) {
  memset(W, 0, sizeof *W);
  const size_t na = in->nassets, np = keel_panel_nassets(in->panel), row = in->row;
  size_t lo = row >= b->p.lookback ? row - b->p.lookback : 0;
  if (lo < in->first_row) lo = in->first_row;
  const size_t T = row - lo;
  W->na = na, W->T = T;
  W->R = keeli_alloc_array(ctx, T ? T : 1, na * sizeof *W->R);
  W->cnt = keeli_calloc(ctx, na, sizeof *W->cnt);
  W->use = keeli_alloc_array(ctx, na, sizeof *W->use);
  if (!W->R || !W->cnt || !W->use) return KEEL_ENOMEM;
  keeli_window_returns(in->panel, in->assets, na, lo, row, W->R, W->cnt);
  const double *px = keel_panel_prices(in->panel);
  for (size_t k = 0; k < na; k++)
    if (!isnan(px[row * np + in->assets[k]]) && W->cnt[k] >= 2) W->use[W->m++] = k;
  return KEEL_OK;
}

static void window_free(keel_ctx *ctx, window *W) {
  keeli_free(ctx, W->R);
  keeli_free(ctx, W->cnt);
  keeli_free(ctx, W->use);
}

/* Rows where every usable asset has a return; fills rows (T) when given. */
static size_t common_rows(const window *W, size_t *rows) {
  size_t c = 0;
  for (size_t t = 0; t < W->T; t++) {
    size_t i = 0;
    while (i < W->m && !isnan(W->R[t * W->na + W->use[i]])) i++;
    if (i == W->m) {
      if (rows) rows[c] = t;
      c++;
    }
  }
  return c;
}

/* Common rows a covariance estimate of m assets needs: the sample, EWMA
 * and semicovariance are singular with fewer than m + 1; Ledoit-Wolf is
 * positive definite from 3 (with 2 its intensity is 0). */
static size_t rows_needed(keel_cov_kind k, size_t m) {
  return k == KEEL_COV_LW_IDENTITY || k == KEEL_COV_LW_CONSTCORR ? 3 : m + 1;
}

/* While the usable assets have too few common rows, sets aside the one
 * with the fewest returns (the last on a tie) if it has fewer than the
 * most. Returns 1 if the rows now suffice (or one asset is left). */
static int reduce_to_common(window *W, keel_cov_kind kind) {
  for (;;) {
    if (W->m <= 1 || common_rows(W, NULL) >= rows_needed(kind, W->m)) return 1;
    size_t drop = 0, most = 0;
    for (size_t i = 0; i < W->m; i++) {
      if (W->cnt[W->use[i]] <= W->cnt[W->use[drop]]) drop = i;
      if (W->cnt[W->use[i]] > most) most = W->cnt[W->use[i]];
    }
    if (W->cnt[W->use[drop]] == most) return 0;
    memmove(W->use + drop, W->use + drop + 1, (W->m - drop - 1) * sizeof *W->use);
    W->m--;
  }
}

void keeli_opt_record_fill(keel_opt_record *rec, const keel_mv_result *r, int solves) {
  if (!rec) return;
  rec->used = 1;
  rec->status = r->qp_status;
  rec->iterations = r->qp_iterations;
  rec->solves = solves;
  rec->polished = r->polished;
  rec->res_prim = r->res_prim;
  rec->res_dual = r->res_dual;
  rec->objective_ret = r->ret;
  rec->objective_vol = r->vol;
}

static keel_status cap_feasible(keel_ctx *ctx, const bstate *b, size_t m) {
  if ((double)m * b->p.max_weight < 1 - 1e-12)
    return keeli_error(ctx, KEEL_EINFEASIBLE,
                       "strategy %s: %zu asset(s) with enough history cannot be fully invested at a cap of %g each "
                       "(need at least %.0f)",
                       keel_builtin_name(b->kind), m, b->p.max_weight, ceil(1 / b->p.max_weight - 1e-12));
  return KEEL_OK;
}

/* The covariance strategies on the m usable assets: X (T x m, common rows
 * only), S (m x m), mu (m), w (m) out. */
static keel_status optimise(keel_ctx *ctx, const bstate *b, const keel_strategy_input *in, const window *W,
                            const double *X, size_t T, double *S, double *mu, double *w, double *aux,
                            keel_opt_record *rec) {
  const size_t m = W->m;
  const keel_cmat Xv = keel_cmat_view(X, T, m);
  keel_cov_options co;
  keel_cov_options_default(&co);
  co.kind = b->p.cov, co.halflife = b->p.halflife, co.periods_per_year = in->periods_per_year;
  co.missing = KEEL_MISSING_COMMON;
  keel_status st = keel_cov(ctx, Xv, &co, keel_mat_view(S, m, m), NULL);
  if (st) return st;
  const keel_cmat Sv = keel_cmat_view(S, m, m);
  if (b->kind == KEEL_STRAT_RISK_PARITY) return keel_risk_parity(ctx, m, Sv, w);

  keel_mean_options mo;
  keel_mean_options_default(&mo);
  mo.periods_per_year = in->periods_per_year, mo.missing = KEEL_MISSING_COMMON;
  if ((st = keel_mean(ctx, Xv, &mo, mu))) return st;
  if ((st = cap_feasible(ctx, b, m))) return st;
  double *ub = aux, *w0 = aux + m, *cb = aux + 2 * m, *cs = aux + 3 * m;
  for (size_t i = 0; i < m; i++) ub[i] = b->p.max_weight;
  keel_mv_spec sp;
  keel_mv_spec_default(&sp);
  sp.ub = ub, sp.risk_free = b->p.risk_free;
  keel_mv_result r;
  int solves = 0;
  if (b->kind == KEEL_STRAT_MAX_SHARPE) {
    sp.objective = KEEL_OBJ_MAX_SHARPE;
    st = keel_mv_optimize(ctx, m, mu, Sv, NULL, &sp, w, &r);
    if (st == KEEL_EINFEASIBLE) {
      /* the bounds are feasible (checked above): no portfolio beats the
       * risk-free rate; fall back to minimum variance */
      keel_clear_error(ctx);
      solves = r.solves;
      sp.objective = KEEL_OBJ_MIN_VARIANCE;
      st = keel_mv_optimize(ctx, m, mu, Sv, NULL, &sp, w, &r);
      if (!st) keeli_opt_record_fill(rec, &r, solves + r.solves);
      return st;
    }
    if (st) return st;
    solves = r.solves;
    int costs = 0;
    for (size_t i = 0; i < m && b->p.use_costs; i++) {
      const size_t k = W->use[i];
      w0[i] = in->weights ? in->weights[k] : 0;
      cb[i] = in->cost_buy ? in->cost_buy[k] : 0;
      cs[i] = in->cost_sell ? in->cost_sell[k] : 0;
      costs |= cb[i] > 0 || cs[i] > 0;
    }
    if (costs && r.vol > 0) {
      sp.objective = KEEL_OBJ_TARGET_VOL, sp.target_vol = r.vol;
      sp.w0 = w0, sp.cost_buy = cb, sp.cost_sell = cs;
      if ((st = keel_mv_optimize(ctx, m, mu, Sv, NULL, &sp, w, &r))) return st;
      solves += r.solves;
    }
  } else {
    sp.objective = KEEL_OBJ_MIN_VARIANCE;
    if ((st = keel_mv_optimize(ctx, m, mu, Sv, NULL, &sp, w, &r))) return st;
    solves = r.solves;
  }
  keeli_opt_record_fill(rec, &r, solves);
  return KEEL_OK;
}

static keel_status check_current(keel_ctx *ctx, const keel_strategy_input *in) {
  for (size_t k = 0; k < in->nassets; k++) {
    double v[3] = {in->weights ? in->weights[k] : 0, in->cost_buy ? in->cost_buy[k] : 0,
                   in->cost_sell ? in->cost_sell[k] : 0};
    if (!isfinite(v[0]))
      return keeli_error(ctx, KEEL_EINVAL, "strategy max_sharpe: the current weight of asset %zu is not finite", k);
    if (!(v[1] >= 0 && v[1] < INFINITY && v[2] >= 0 && v[2] < INFINITY))
      return keeli_error(ctx, KEEL_EINVAL, "strategy max_sharpe: the cost rates of asset %zu are %g and %g", k, v[1],
                         v[2]);
  }
  return KEEL_OK;
}

static keel_status builtin_rebalance(void *state, keel_ctx *ctx, const keel_strategy_input *in, double *target,
                                     keel_opt_record *rec) {
  const bstate *b = state;
  keel_status st = check_input(ctx, b, in, "rebalance");
  if (st) return st;
  if (!target)
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: rebalance: target is NULL", keel_builtin_name(b->kind));
  if (rec) memset(rec, 0, sizeof *rec);
  const size_t na = in->nassets;
  for (size_t k = 0; k < na; k++) target[k] = 0;
  const double inv = b->p.invest;

  if (b->kind == KEEL_STRAT_FIXED) {
    memcpy(target, b->weights, na * sizeof *target);
    return KEEL_OK;
  }
  if (b->kind == KEEL_STRAT_EQUAL) {
    size_t m = 0;
    for (size_t k = 0; k < na; k++) m += !isnan(keel_panel_price(in->panel, in->row, in->assets[k]));
    for (size_t k = 0; k < na; k++)
      if (!isnan(keel_panel_price(in->panel, in->row, in->assets[k]))) target[k] = inv / (double)m;
    return KEEL_OK;
  }
  if (b->kind == KEEL_STRAT_MAX_SHARPE && b->p.use_costs && (st = check_current(ctx, in))) return st;

  window W;
  st = window_make(ctx, b, in, &W);
  double *buf = NULL;
  size_t *rows = NULL;
  if (st || W.m == 0) goto done;

  if (b->kind == KEEL_STRAT_INVERSE_VOL) {
    double *sig = keeli_alloc_array(ctx, W.m, sizeof *sig);
    if (!sig) {
      st = KEEL_ENOMEM;
      goto done;
    }
    size_t nzero = 0;
    double sum = 0;
    for (size_t i = 0; i < W.m; i++) {
      const size_t k = W.use[i];
      double mean = 0, ss = 0;
      for (size_t t = 0; t < W.T; t++)
        if (!isnan(W.R[t * na + k])) mean += W.R[t * na + k];
      mean /= (double)W.cnt[k];
      for (size_t t = 0; t < W.T; t++)
        if (!isnan(W.R[t * na + k])) ss += (W.R[t * na + k] - mean) * (W.R[t * na + k] - mean);
      sig[i] = sqrt(ss / (double)(W.cnt[k] - 1));
      nzero += sig[i] == 0;
      if (sig[i] > 0) sum += 1 / sig[i];
    }
    for (size_t i = 0; i < W.m; i++) {
      double v = nzero ? (sig[i] == 0 ? 1.0 / (double)nzero : 0) : 1 / sig[i] / sum;
      target[W.use[i]] = inv * v;
    }
    keeli_free(ctx, sig);
    goto done;
  }

  /* covariance strategies; with too short a common history, equal weights */
  if (!reduce_to_common(&W, b->p.cov)) {
    for (size_t i = 0; i < W.m; i++) target[W.use[i]] = inv / (double)W.m;
    goto done;
  }
  const size_t m = W.m;
  rows = keeli_alloc_array(ctx, W.T, sizeof *rows);
  if (!rows) {
    st = KEEL_ENOMEM;
    goto done;
  }
  const size_t T = common_rows(&W, rows);
  /* X (T x m), S (m x m), mu, w, and ub, w0, cost_buy, cost_sell */
  buf = keeli_alloc_array(ctx, T * m + m * m + 6 * m, sizeof *buf);
  if (!buf) {
    st = KEEL_ENOMEM;
    goto done;
  }
  double *X = buf, *S = X + T * m, *mu = S + m * m, *w = mu + m, *aux = w + m;
  for (size_t t = 0; t < T; t++)
    for (size_t i = 0; i < m; i++) X[t * m + i] = W.R[rows[t] * na + W.use[i]];
  st = optimise(ctx, b, in, &W, X, T, S, mu, w, aux, rec);
  if (!st)
    for (size_t i = 0; i < m; i++) target[W.use[i]] = inv * fmax(w[i], 0);

done:
  if (st)
    for (size_t k = 0; k < na; k++) target[k] = 0;
  keeli_free(ctx, buf);
  keeli_free(ctx, rows);
  window_free(ctx, &W);
  return st;
}

static const keel_strategy_ops BUILTIN_OPS[] = {
    {"fixed", builtin_init, builtin_rebalance, builtin_free, NULL},
    {"equal", builtin_init, builtin_rebalance, builtin_free, NULL},
    {"inverse_vol", builtin_init, builtin_rebalance, builtin_free, NULL},
    {"min_variance", builtin_init, builtin_rebalance, builtin_free, NULL},
    {"max_sharpe", builtin_init, builtin_rebalance, builtin_free, NULL},
    {"risk_parity", builtin_init, builtin_rebalance, builtin_free, NULL},
};

static keel_status check_params(keel_ctx *ctx, keel_builtin kind, const keel_builtin_params *p) {
  const char *nm = keel_builtin_name(kind);
  if (isnan(p->invest) || !(p->invest > 0 && p->invest <= 1))
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: invest must be in (0, 1] (it is %g)", nm, p->invest);
  if (p->lookback < 2)
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: lookback must be at least 2 rows (it is %u)", nm, p->lookback);
  if ((unsigned)p->cov > KEEL_COV_SEMI)
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: unknown covariance estimator %d", nm, (int)p->cov);
  if (!(p->halflife > 0 && p->halflife < INFINITY))
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: halflife must be > 0 (it is %g)", nm, p->halflife);
  if (!(p->max_weight > 0))
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: max_weight must be > 0 (it is %g)", nm, p->max_weight);
  if (!isfinite(p->risk_free))
    return keeli_error(ctx, KEEL_EINVAL, "strategy %s: the risk-free rate is not finite (%g)", nm, p->risk_free);
  if (kind != KEEL_STRAT_FIXED) return KEEL_OK;
  if (!p->weights || p->nweights == 0) return keeli_error(ctx, KEEL_EINVAL, "strategy fixed: no weights given");
  double sum = 0;
  for (size_t i = 0; i < p->nweights; i++) {
    if (!(p->weights[i] >= 0 && p->weights[i] < INFINITY))
      return keeli_error(ctx, KEEL_EINVAL, "strategy fixed: weight %zu is %g; weights must be finite and >= 0", i,
                         p->weights[i]);
    sum += p->weights[i];
  }
  if (sum > 1 + 1e-12)
    return keeli_error(ctx, KEEL_EINVAL, "strategy fixed: the weights sum to %.17g, above 1 (the rest is cash)", sum);
  return KEEL_OK;
}

keel_status keel_strategy_builtin(keel_ctx *ctx, keel_builtin kind, const keel_builtin_params *p, keel_strategy **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "strategy: out is NULL");
  *out = NULL;
  if ((unsigned)kind >= NBUILTIN) return keeli_error(ctx, KEEL_EINVAL, "strategy: unknown built-in %d", (int)kind);
  keel_builtin_params d;
  if (!p) keel_builtin_params_default(&d), p = &d;
  keel_status st = check_params(ctx, kind, p);
  if (st) return st;
  bstate *b = keeli_calloc(ctx, 1, sizeof *b);
  if (!b) return KEEL_ENOMEM;
  b->heap = *keeli_ctx_heap(ctx);
  b->kind = kind;
  b->p = *p;
  b->p.weights = NULL;
  if (kind == KEEL_STRAT_FIXED) {
    b->weights = keeli_alloc_array(ctx, p->nweights, sizeof *b->weights);
    if (!b->weights) {
      builtin_free(b);
      return KEEL_ENOMEM;
    }
    memcpy(b->weights, p->weights, p->nweights * sizeof *b->weights);
    b->p.weights = b->weights;
  } else {
    b->p.nweights = 0;
  }
  st = keeli_strategy_new(ctx, &BUILTIN_OPS[kind], b, out);
  if (st) builtin_free(b);
  return st;
}

/* ---- equal risk contribution ---- */

/* Spinu's function f(y) = 1/2 y'Sy - b sum log y_i, b = 1/n (+INFINITY
 * outside y > 0); Sy gets S y. */
static double spinu_f(size_t n, keel_cmat S, const double *y, double b, double *Sy) {
  double q = 0, lg = 0;
  for (size_t i = 0; i < n; i++) {
    if (!(y[i] > 0)) return INFINITY;
    Sy[i] = keeli_dot(S.data + i * S.ld, y, n);
    q += y[i] * Sy[i];
    lg += log(y[i]);
  }
  return 0.5 * q - b * lg;
}

/* max_i |y_i (Sy)_i - mean| / mean: the relative spread of the risk
 * contributions. */
static double rc_spread(size_t n, const double *y, const double *Sy) {
  double mean = 0, d = 0;
  for (size_t i = 0; i < n; i++) mean += y[i] * Sy[i];
  mean /= (double)n;
  for (size_t i = 0; i < n; i++) d = fmax(d, fabs(y[i] * Sy[i] - mean));
  return mean > 0 ? d / mean : INFINITY;
}

keel_status keel_risk_parity(keel_ctx *ctx, size_t n, keel_cmat S, double *w) {
  if (n == 0 || !S.data || !w || S.rows != n || S.cols != n || S.ld < n)
    return keeli_error(ctx, KEEL_EINVAL, "risk_parity: need an n x n covariance and n weights (n %zu, got %zu x %zu)",
                       n, S.rows, S.cols);
  if (n > 46340) return keeli_error(ctx, KEEL_EINVAL, "risk_parity: %zu assets is too many", n);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++)
      if (!isfinite(S.data[i * S.ld + j]))
        return keeli_error(ctx, KEEL_EINVAL, "risk_parity: covariance (%zu, %zu) is not finite", i, j);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < i; j++) {
      double a = S.data[i * S.ld + j], c = S.data[j * S.ld + i];
      double sc = fabs(a) + fabs(c) + sqrt(fabs(S.data[i * S.ld + i] * S.data[j * S.ld + j]));
      if (fabs(a - c) > 1e-12 * sc)
        return keeli_error(ctx, KEEL_EINVAL, "risk_parity: the covariance is not symmetric at (%zu, %zu)", i, j);
    }
  const lapack_int N = (lapack_int)n;
  double *H = keeli_alloc_array(ctx, n * n + 5 * n, sizeof *H);
  if (!H) return KEEL_ENOMEM;
  double *y = H + n * n, *Sy = y + n, *g = Sy + n, *dy = g + n, *yt = dy + n;
  keel_status st = KEEL_OK;
  /* positive definite? (symmetric: row- and column-major agree) */
  for (size_t i = 0; i < n; i++) memcpy(H + i * n, S.data + i * S.ld, n * sizeof *H);
  lapack_int info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', N, H, N);
  if (info != 0) {
    st = keeli_error(ctx, KEEL_ENUMERIC, "risk_parity: the covariance is not positive definite (leading minor %d)",
                     (int)info);
    goto done;
  }
  const double b = 1 / (double)n;
  /* start on y'Sy = 1 (true of the optimum: y_i (Sy)_i = b sums to 1) */
  double s = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) s += S.data[i * S.ld + j];
  if (!(s > 0)) s = 1; /* PD, so 1'S1 > 0; guard rounding */
  for (size_t i = 0; i < n; i++) y[i] = 1 / sqrt(s);
  double f = spinu_f(n, S, y, b, Sy), spread = rc_spread(n, y, Sy);
  /* converged: the spread is within 1e-12, after which one more Newton
   * step (quadratic convergence) takes it to rounding; or the Newton
   * decrement is at rounding level */
  int converged = 0, polish = spread <= 1e-12;
  for (int it = 0; it < 100 && !converged; it++) {
    /* Newton: (S + diag(b / y^2)) dy = -(Sy - b / y) */
    for (size_t i = 0; i < n; i++) {
      memcpy(H + i * n, S.data + i * S.ld, n * sizeof *H);
      H[i * n + i] += b / (y[i] * y[i]);
      g[i] = Sy[i] - b / y[i];
      dy[i] = -g[i];
    }
    info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', N, H, N);
    if (info != 0) {
      st = keeli_error(ctx, KEEL_ENUMERIC, "risk_parity: the Newton system is not positive definite (iteration %d)",
                       it);
      goto done;
    }
    LAPACKE_dpotrs_work(LAPACK_COL_MAJOR, 'L', N, 1, H, N, dy, N);
    const double gd = keeli_dot(g, dy, n); /* -lambda^2 */
    /* n lambda^2 is the squared Newton decrement of the self-concordant
     * n f; below 1e-24 what is left is rounding */
    if (-gd * (double)n <= 1e-24 && !polish) {
      converged = 1;
      break;
    }
    /* fraction to the boundary, then backtracking (a full step in the
     * region of quadratic convergence, where f no longer resolves the
     * decrease) */
    double a = 1;
    for (size_t i = 0; i < n; i++)
      if (dy[i] < 0) a = fmin(a, -0.995 * y[i] / dy[i]);
    const int search = -gd * (double)n > 1e-2;
    double ft = INFINITY;
    int ok = 0;
    for (int k = 0; k < 60 && !ok; k++, a *= 0.5) {
      for (size_t i = 0; i < n; i++) yt[i] = y[i] + a * dy[i];
      ft = spinu_f(n, S, yt, b, g); /* g: scratch for S yt */
      ok = search ? ft <= f + 1e-4 * a * gd : ft < INFINITY;
    }
    if (!ok) break; /* no decrease representable: stop, judged by the spread */
    const double spread_t = rc_spread(n, yt, g);
    if (polish && spread_t > spread) { /* rounding: keep the better point */
      converged = 1;
      break;
    }
    memcpy(y, yt, n * sizeof *y);
    memcpy(Sy, g, n * sizeof *Sy);
    f = ft;
    spread = spread_t;
    converged = polish && spread <= 1e-12;
    polish = spread <= 1e-12;
  }
  if (!converged) converged = spread <= 1e-12;
  if (!converged) {
    st = keeli_error(ctx, KEEL_ENUMERIC,
                     "risk_parity: Newton's method did not converge in 100 iterations (risk contributions within %.3g "
                     "of their mean)",
                     spread);
    goto done;
  }
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += y[i];
  for (size_t i = 0; i < n; i++) w[i] = y[i] / sum;
done:
  keeli_free(ctx, H);
  return st;
}
