/* keel — rebalancing policies, cost models, cash flows, DCA and stop rules:
 * the pure parts the engine applies. Semantics in keel/policy.h and
 * docs/backtest.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "keel/policy.h"

/* ---- names ---- */

static int parse_name(const char *const *names, size_t n, const char *s, int *out) {
  for (size_t i = 0; s && i < n; i++)
    if (names[i] && strcmp(s, names[i]) == 0) {
      *out = (int)i;
      return 0;
    }
  return -1;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define PARSER(fn, type, names)                   \
  int fn(const char *s, type *out) {              \
    int v;                                        \
    if (parse_name(names, COUNT(names), s, &v)) return -1; \
    *out = (type)v;                               \
    return 0;                                     \
  }

static const char *const CAL_NAMES[] = {"daily", "weekly", "monthly", "quarterly", "yearly", "never", "every_n"};
static const char *const BAND_NAMES[] = {"none", "absolute", "relative", "combined"};
static const char *const BAND_ACTIONS[] = {"target", "edge", "inner"};
static const char *const STOP_NAMES[] = {"stop_loss", "take_profit", "trailing", "drawdown"};
static const char *const STOP_REFS[] = {"entry", "avg_cost"};
static const char *const STOP_ACTIONS[] = {"cash", "defensive"};
static const char *const REENTRIES[] = {"never", "after_days", "above_ma"};
static const char *const VOL_EST[] = {"rolling", "ewma"};
static const char *const DCA_SOURCES[] = {"external", "cash"};
static const char *const DCA_DESTS[] = {"target", "underweight"};

const char *keel_calendar_name(keel_calendar c) {
  return (unsigned)c < COUNT(CAL_NAMES) ? CAL_NAMES[c] : "unknown";
}
const char *keel_band_kind_name(keel_band_kind k) {
  return (unsigned)k < COUNT(BAND_NAMES) ? BAND_NAMES[k] : "unknown";
}
const char *keel_stop_kind_name(keel_stop_kind k) {
  return (unsigned)k < COUNT(STOP_NAMES) ? STOP_NAMES[k] : "unknown";
}
PARSER(keel_calendar_parse, keel_calendar, CAL_NAMES)
PARSER(keel_band_kind_parse, keel_band_kind, BAND_NAMES)
PARSER(keel_band_action_parse, keel_band_action, BAND_ACTIONS)
PARSER(keel_stop_kind_parse, keel_stop_kind, STOP_NAMES)
PARSER(keel_stop_ref_parse, keel_stop_ref, STOP_REFS)
PARSER(keel_stop_action_parse, keel_stop_action, STOP_ACTIONS)
PARSER(keel_reentry_parse, keel_reentry, REENTRIES)
PARSER(keel_vol_estimator_parse, keel_vol_estimator, VOL_EST)
PARSER(keel_dca_source_parse, keel_dca_source, DCA_SOURCES)
PARSER(keel_dca_dest_parse, keel_dca_dest, DCA_DESTS)

/* ---- schedules ---- */

/* Calendar period of a date; a schedule is due when it changes. */
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

int keel_schedule_due(const keel_schedule *s, keel_date prev, keel_date d, size_t t) {
  if (t == 0) return 0;
  if (s->calendar == KEEL_CAL_NEVER) return 0;
  if (s->calendar == KEEL_CAL_EVERY_N) return s->every > 0 && t % s->every == 0;
  return period_key(s->calendar, d) != period_key(s->calendar, prev);
}

/* ---- bands ---- */

double keel_band_width(const keel_band *b, double t) {
  switch (b->kind) {
    case KEEL_BAND_NONE: return INFINITY;
    case KEEL_BAND_ABSOLUTE: return b->abs;
    case KEEL_BAND_RELATIVE: return b->rel * fabs(t);
    case KEEL_BAND_COMBINED: {
      double r = b->rel * fabs(t);
      return r < b->abs ? r : b->abs;
    }
  }
  return INFINITY;
}

void keeli_band_widths(const keel_band *b, size_t n, const double *restrict t, double *restrict w) {
  /* keel_band_width over an array, its switch out of the loop */
  switch (b->kind) {
    case KEEL_BAND_NONE:
      for (size_t k = 0; k < n; k++) w[k] = INFINITY;
      return;
    case KEEL_BAND_ABSOLUTE:
      for (size_t k = 0; k < n; k++) w[k] = b->abs;
      return;
    case KEEL_BAND_RELATIVE:
      for (size_t k = 0; k < n; k++) w[k] = b->rel * fabs(t[k]);
      return;
    case KEEL_BAND_COMBINED:
      for (size_t k = 0; k < n; k++) {
        double r = b->rel * fabs(t[k]);
        w[k] = r < b->abs ? r : b->abs;
      }
      return;
  }
}

size_t keel_band_breached(const keel_band *b, size_t n, const double *w, const double *t) {
  if (b->kind == KEEL_BAND_NONE) return n;
  for (size_t i = 0; i < n; i++)
    if (fabs(w[i] - t[i]) > keel_band_width(b, t[i])) return i;
  return n;
}

void keel_band_adjust(const keel_band *b, size_t n, const double *w, const double *t, double *out) {
  if (b->action == KEEL_BAND_TO_TARGET || b->kind == KEEL_BAND_NONE) {
    memcpy(out, t, n * sizeof *out);
    return;
  }
  const double f = b->action == KEEL_BAND_TO_INNER ? b->inner : 1;
  /* breached assets to their (inner) edge; R is the weight that frees */
  double R = 0, tsum = 0, wsum = 0;
  for (size_t i = 0; i < n; i++) {
    double wd = keel_band_width(b, t[i]);
    out[i] = w[i];
    tsum += t[i];
    wsum += w[i];
    if (fabs(w[i] - t[i]) > wd) {
      out[i] = t[i] + (w[i] > t[i] ? 1 : -1) * f * wd;
      R += w[i] - out[i];
    }
  }
  /* Spread R over the unbreached assets and the cash sleeve (index n, no
   * band but >= 0) in proportion to their targets, each held inside its
   * band. An absorber is open while it can still move in R's direction;
   * one that would cross its edge stops there and the rest is spread
   * again, so at most n + 1 passes. */
  const double tc = 1 - tsum;
  double cashw = 1 - wsum;
  for (size_t pass = 0; pass <= n + 1 && R != 0; pass++) {
    const double R0 = R;
    double tot = 0;
    for (int apply = 0; apply < 2; apply++) {
      for (size_t i = 0; i <= n; i++) {
        double ti = i < n ? t[i] : tc;
        double *cur = i < n ? &out[i] : &cashw;
        if (!(ti > 1e-15)) continue;
        if (i < n && fabs(w[i] - t[i]) > keel_band_width(b, t[i])) continue; /* breached */
        double wd = i < n ? keel_band_width(b, ti) : INFINITY;
        double lo = fmax(ti - wd, 0), hi = ti + wd;
        if (!(R0 > 0 ? *cur < hi : *cur > lo)) continue;
        if (!apply) {
          tot += ti;
          continue;
        }
        double got = fmin(fmax(*cur + R0 * ti / tot, lo), hi);
        R -= got - *cur;
        *cur = got;
      }
      if (!(tot > 0)) break;
    }
    if (!(tot > 0)) break;
    if (fabs(R) <= 1e-15 * (1 + fabs(R0))) R = 0;
  }
  /* what nothing absorbed stays in cash: cash is the residual 1 - sum(out) */
}

/* ---- costs ---- */

void keel_cost_model_default(keel_cost_model *c) {
  memset(c, 0, sizeof *c);
  c->use_lots = 1;
}

double keel_cost_rate_buy(const keel_cost_model *c) {
  return (c->buy_bps + c->spread_bps / 2 + c->slippage_bps) / 1e4;
}
double keel_cost_rate_sell(const keel_cost_model *c) {
  return (c->sell_bps + c->spread_bps / 2 + c->slippage_bps) / 1e4;
}

/* ---- volatility target ---- */

keel_status keel_voltarget_scale(keel_ctx *ctx, const keel_voltarget *v, size_t n, const double *t, const double *R,
                                 size_t rows, double periods_per_year, double *scale, double *sigma) {
  if (!v || !t || (!R && rows) || !scale)
    return keeli_error(ctx, KEEL_EINVAL, "vol target: NULL argument");
  if (!(periods_per_year > 0)) return keeli_error(ctx, KEEL_EINVAL, "vol target: periods_per_year must be > 0");
  const double lambda = v->estimator == KEEL_VOL_EWMA ? exp2(-1 / v->halflife) : 0;
  size_t m = 0;
  double mean = 0, m2 = 0, ew = 0;
  for (size_t r = 0; r < rows; r++) {
    const double *row = R + r * n;
    double rb = 0;
    int ok = 1;
    for (size_t j = 0; j < n; j++) {
      if (t[j] == 0) continue;
      if (isnan(row[j])) {
        ok = 0;
        break;
      }
      rb += t[j] * row[j];
    }
    if (!ok) continue;
    if (!isfinite(rb)) return keeli_error(ctx, KEEL_EINVAL, "vol target: returns must be finite");
    m++;
    double d = rb - mean;
    mean += d / (double)m;
    m2 += d * (rb - mean);
    ew = m == 1 ? rb * rb : lambda * ew + (1 - lambda) * rb * rb;
  }
  if (m < 2)
    return keeli_error(ctx, KEEL_EINVAL, "vol target: %zu usable returns in the window; at least 2 are needed", m);
  double var = v->estimator == KEEL_VOL_EWMA ? ew : m2 / (double)(m - 1);
  double sg = sqrt(var * periods_per_year);
  double k = sg > 0 ? v->target / sg : INFINITY;
  *scale = fmin(k, v->leverage_cap);
  if (sigma) *sigma = sg;
  return KEEL_OK;
}

/* ---- cash flows ---- */

typedef struct flowpt {
  double r, t, x; /* x / t, target, holding */
} flowpt;

static int cmp_flowpt(const void *a, const void *b) {
  double x = ((const flowpt *)a)->r, y = ((const flowpt *)b)->r;
  return (x > y) - (x < y);
}

keel_status keel_cashflow_allocate(keel_ctx *ctx, size_t n, const double *x, const double *t, double amount,
                                   double *out) {
  if (!x || !t || !out) return keeli_error(ctx, KEEL_EINVAL, "cash flow: NULL argument");
  if (!isfinite(amount)) return keeli_error(ctx, KEEL_EINVAL, "cash flow: amount must be finite");
  double xsum = 0, x0 = 0;
  for (size_t i = 0; i < n; i++) {
    if (!(t[i] >= 0) || !isfinite(t[i]))
      return keeli_error(ctx, KEEL_EINVAL, "cash flow: target %zu is %g; targets must be finite and >= 0", i, t[i]);
    if (!(x[i] >= 0) || !isfinite(x[i]))
      return keeli_error(ctx, KEEL_EINVAL, "cash flow: holding %zu is %g; holdings must be finite and >= 0", i,
                         x[i]);
    out[i] = 0;
    xsum += x[i];
    if (t[i] == 0) x0 += x[i];
  }
  if (amount == 0) return KEEL_OK;
  const double A = fabs(amount);
  if (amount < 0 && A > xsum * (1 + 1e-12))
    return keeli_error(ctx, KEEL_EINVAL, "cash flow: withdrawal %g exceeds the holdings %g", A, xsum);
  /* water-filling over the assets with a target, sorted by x_i / t_i */
  flowpt *v = keeli_alloc_array(ctx, n ? n : 1, sizeof *v);
  if (!v) return KEEL_ENOMEM;
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (t[i] > 0) v[m++] = (flowpt){x[i] / t[i], t[i], x[i]};
  qsort(v, m, sizeof *v, cmp_flowpt);
  double L = 0;
  if (amount > 0) {
    /* sum max(0, L t_i - x_i) = A: with the k least-held assets buying,
     * L = (A + X_k) / T_k, valid when it does not pass the next ratio */
    if (m == 0) goto done; /* nothing has a target: the money stays in cash */
    double T = 0, X = 0;
    for (size_t k = 0; k < m; k++) {
      T += v[k].t, X += v[k].x;
      L = (A + X) / T;
      if (k + 1 == m || L <= v[k + 1].r) break;
    }
    for (size_t i = 0; i < n; i++)
      if (t[i] > 0) out[i] = fmax(0, L * t[i] - x[i]);
  } else {
    /* assets with no target are the most overweight: sold first, pro rata */
    if (x0 >= A) {
      for (size_t i = 0; i < n; i++)
        if (t[i] == 0 && x0 > 0) out[i] = -A * x[i] / x0;
      goto done;
    }
    for (size_t i = 0; i < n; i++)
      if (t[i] == 0) out[i] = -x[i];
    /* sum max(0, x_i - L t_i) = B over the k most-held: L = (X_k - B) / T_k */
    const double B = A - x0;
    double T = 0, X = 0;
    for (size_t k = m; k-- > 0;) {
      T += v[k].t, X += v[k].x;
      L = (X - B) / T;
      if (k == 0 || L >= v[k - 1].r) break;
    }
    if (L < 0) L = 0;
    for (size_t i = 0; i < n; i++)
      if (t[i] > 0) out[i] = -fmax(0, x[i] - L * t[i]);
  }
done:
  keeli_free(ctx, v);
  return KEEL_OK;
}

/* ---- DCA and stops ---- */

void keel_dca_default(keel_dca *d) {
  memset(d, 0, sizeof *d);
  d->schedule.calendar = KEEL_CAL_MONTHLY;
  d->start = d->end = KEEL_DATE_NONE;
}

void keel_stop_rule_default(keel_stop_rule *r) {
  memset(r, 0, sizeof *r);
  r->kind = KEEL_STOP_TRAILING;
  r->level = 0.2;
  r->asset = -1;
}
