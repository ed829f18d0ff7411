/* keel — performance metrics of a value series. Definitions: keel/metrics.h
 * and docs/metrics.md. */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "keel/metrics.h"

static const char *const NAMES[KEEL_METRICS_COUNT] = {
    "total_return", "cagr",       "volatility",  "sharpe",   "sortino",
    "max_drawdown", "dd_peak",    "dd_trough",   "dd_recovery", "calmar",
    "turnover",     "costs_total", "cost_ratio", "years",    "nobs",
    "ntrades",      "nstops",     "time_in_market", "tracking_error", "info_ratio"};

const char *keel_metrics_name(size_t k) { return k < KEEL_METRICS_COUNT ? NAMES[k] : NULL; }

static double date_value(keel_date d) { return d == KEEL_DATE_NONE ? NAN : (double)d; }

double keel_metrics_value(const keel_metrics *m, size_t k) {
  switch (k) {
    case 0: return m->total_return;
    case 1: return m->cagr;
    case 2: return m->volatility;
    case 3: return m->sharpe;
    case 4: return m->sortino;
    case 5: return m->max_drawdown;
    case 6: return date_value(m->dd_peak);
    case 7: return date_value(m->dd_trough);
    case 8: return date_value(m->dd_recovery);
    case 9: return m->calmar;
    case 10: return m->turnover;
    case 11: return m->costs_total;
    case 12: return m->cost_ratio;
    case 13: return m->years;
    case 14: return (double)m->nobs;
    case 15: return (double)m->ntrades;
    case 16: return (double)m->nstops;
    case 17: return m->time_in_market;
    case 18: return m->tracking_error;
    case 19: return m->info_ratio;
    default: return NAN;
  }
}

/* The time-weighted return of point t: the flow f_t arrives before the
 * value v_t is taken. With no initial value the first return is that of
 * the first payment. */
static double period_return(const keel_metrics_input *in, size_t t) {
  const double f = in->flows ? in->flows[t] : 0;
  if (t == 0) return in->initial > 0 ? (in->values[0] - f) / in->initial - 1 : in->values[0] / f - 1;
  return (in->values[t] - f) / in->values[t - 1] - 1;
}

keel_status keel_metrics_compute(keel_ctx *ctx, const keel_metrics_input *in, keel_metrics *out) {
  if (!in || !out) return keeli_error(ctx, KEEL_EINVAL, "keel_metrics_compute: NULL argument");
  const size_t n = in->n;
  if (n < 1 || !in->dates || !in->values) return keeli_error(ctx, KEEL_EINVAL, "metrics: need at least one value");
  const double *f = in->flows;
  if (!isfinite(in->initial) || in->initial < 0 || (in->initial == 0 && !(f && f[0] > 0)))
    return keeli_error(ctx, KEEL_EINVAL,
                       "metrics: initial value %g must be finite and > 0 (or 0 with money paid in at the first point)",
                       in->initial);
  if (!(in->periods_per_year > 0) || !isfinite(in->periods_per_year))
    return keeli_error(ctx, KEEL_EINVAL, "metrics: periods_per_year %g must be finite and > 0",
                       in->periods_per_year);
  if (!isfinite(in->risk_free)) return keeli_error(ctx, KEEL_EINVAL, "metrics: risk_free must be finite");
  for (size_t t = 0; t < n; t++) {
    if (!(in->values[t] > 0) || !isfinite(in->values[t]))
      return keeli_error(ctx, KEEL_EINVAL, "metrics: value %zu is %g; values must be finite and > 0", t,
                         in->values[t]);
    if (t && in->dates[t] <= in->dates[t - 1])
      return keeli_error(ctx, KEEL_EINVAL, "metrics: dates must increase (index %zu)", t);
    if (in->traded && (!(in->traded[t] >= 0) || !isfinite(in->traded[t])))
      return keeli_error(ctx, KEEL_EINVAL, "metrics: traded[%zu] must be finite and >= 0", t);
    if (in->costs && (!(in->costs[t] >= 0) || !isfinite(in->costs[t])))
      return keeli_error(ctx, KEEL_EINVAL, "metrics: costs[%zu] must be finite and >= 0", t);
    if (f && !isfinite(f[t])) return keeli_error(ctx, KEEL_EINVAL, "metrics: flows[%zu] must be finite", t);
    if (in->benchmark && (!(in->benchmark[t] > 0) || !isfinite(in->benchmark[t])))
      return keeli_error(ctx, KEEL_EINVAL, "metrics: benchmark[%zu] is %g; it must be finite and > 0", t,
                         in->benchmark[t]);
  }

  keel_metrics m;
  memset(&m, 0, sizeof m);
  const double P = in->periods_per_year, rfp = in->risk_free / P;
  const double *v = in->values;
  m.nobs = n;
  m.ntrades = in->ntrades;
  m.nstops = in->nstops;
  /* The level L_t the drawdown and total return are read from: the value
   * itself without flows, else the time-weighted index times the initial
   * value (or the first payment). */
  double growth = 1;
  for (size_t t = 0; t < n; t++) growth *= 1 + period_return(in, t);
  m.total_return = f ? growth - 1 : v[n - 1] / in->initial - 1;
  m.years = (double)(in->dates[n - 1] - in->dates[0]) / 365.25;
  m.cagr = m.years > 0 ? pow(1 + m.total_return, 1 / m.years) - 1 : NAN;

  /* Two passes over the excess returns: mean, then centred sums. */
  double mean = 0, mean_raw = 0;
  for (size_t t = 0; t < n; t++) {
    double r = period_return(in, t);
    mean_raw += (r - mean_raw) / (double)(t + 1);
  }
  mean = mean_raw - rfp;
  double ss = 0, down = 0;
  for (size_t t = 0; t < n; t++) {
    double r = period_return(in, t);
    double d = r - mean_raw;
    ss += d * d;
    double e = r - rfp;
    if (e < 0) down += e * e;
  }
  double sd = n > 1 ? sqrt(ss / (double)(n - 1)) : NAN;
  m.volatility = sd * sqrt(P);
  m.sharpe = n > 1 && sd > 0 ? mean / sd * sqrt(P) : NAN;
  double dd = sqrt(down / (double)n);
  m.sortino = dd > 0 ? mean / dd * sqrt(P) : NAN;

  /* Drawdown: the peak starts at the initial level, dated dates[0]. */
  const double base = in->initial > 0 ? in->initial : f[0];
  double peak = base, worst = 0, wpv = peak, lev = base;
  size_t ipeak = 0, wpeak = 0, wtrough = 0;
  for (size_t t = 0; t < n; t++) {
    lev = f ? lev * (1 + period_return(in, t)) : v[t];
    if (lev > peak) {
      peak = lev;
      ipeak = t;
    }
    double ddt = 1 - lev / peak;
    if (ddt > worst) {
      worst = ddt;
      wpv = peak;
      wpeak = ipeak;
      wtrough = t;
    }
  }
  m.max_drawdown = worst;
  if (worst > 0) {
    m.dd_peak = in->dates[wpeak];
    m.dd_trough = in->dates[wtrough];
    m.dd_recovery = KEEL_DATE_NONE;
    lev = base;
    for (size_t t = 0; t < n; t++) {
      lev = f ? lev * (1 + period_return(in, t)) : v[t];
      if (t > wtrough && lev >= wpv) {
        m.dd_recovery = in->dates[t];
        break;
      }
    }
    m.calmar = m.cagr / worst;
  } else {
    m.dd_peak = m.dd_trough = m.dd_recovery = KEEL_DATE_NONE;
    m.calmar = NAN;
  }

  double turn = 0, costs = 0, vsum = 0;
  for (size_t t = 0; t < n; t++) {
    double c = in->costs ? in->costs[t] : 0;
    costs += c;
    vsum += v[t];
    if (t > 0 && in->traded) turn += in->traded[t] / (2 * (v[t] + c));
  }
  m.turnover = m.years > 0 ? turn / m.years : NAN;
  m.costs_total = costs;
  m.cost_ratio = costs / (vsum / (double)n);

  size_t inmkt = 0;
  if (in->exposure)
    for (size_t t = 0; t < n; t++) inmkt += in->exposure[t] > 1e-12;
  m.time_in_market = in->exposure ? (double)inmkt / (double)n : NAN;

  /* Active returns against the benchmark, from the second point on (the
   * first return carries the initial allocation's costs). */
  m.tracking_error = m.info_ratio = NAN;
  if (in->benchmark && n > 2) {
    double am = 0, as = 0;
    for (size_t t = 1; t < n; t++) {
      double a = period_return(in, t) - (in->benchmark[t] / in->benchmark[t - 1] - 1);
      am += (a - am) / (double)t;
    }
    for (size_t t = 1; t < n; t++) {
      double a = period_return(in, t) - (in->benchmark[t] / in->benchmark[t - 1] - 1) - am;
      as += a * a;
    }
    double asd = sqrt(as / (double)(n - 2));
    m.tracking_error = asd * sqrt(P);
    m.info_ratio = asd > 0 ? am * P / m.tracking_error : NAN;
  }
  *out = m;
  return KEEL_OK;
}

keel_status keel_metrics_index(keel_ctx *ctx, const keel_metrics_input *in, double *index) {
  if (!in || !index || in->n < 1 || !in->values)
    return keeli_error(ctx, KEEL_EINVAL, "keel_metrics_index: need at least one value");
  const double *f = in->flows;
  if (!isfinite(in->initial) || in->initial < 0 || (in->initial == 0 && !(f && f[0] > 0)))
    return keeli_error(ctx, KEEL_EINVAL, "keel_metrics_index: initial value %g must be finite and > 0 (or 0 with "
                                         "money paid in at the first point)", in->initial);
  double lev = 1;
  for (size_t t = 0; t < in->n; t++) {
    if (!(in->values[t] > 0) || !isfinite(in->values[t]))
      return keeli_error(ctx, KEEL_EINVAL, "keel_metrics_index: value %zu is %g; values must be finite and > 0", t,
                         in->values[t]);
    lev = f ? lev * (1 + period_return(in, t)) : in->values[t] / in->initial;
    index[t] = lev;
  }
  return KEEL_OK;
}
