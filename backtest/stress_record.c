/* keel — a stress result as a store record, with the terminal wealth's
 * histogram (keel/stress.h). Everything here reads the result through its
 * public accessors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "keel/store.h"
#include "keel/stress.h"

keel_status keel_stress_wealth_histogram(keel_ctx *ctx, const keel_stress_result *r, size_t nbins, double *lo,
                                         double *hi, double *share) {
  if (!r || !lo || !hi || !share || nbins < 1 || nbins > 100000)
    return keeli_error(ctx, KEEL_EINVAL, "keel_stress_wealth_histogram: bad argument");
  double a = keel_stress_quantile(r, KEEL_STRESS_WEALTH, 0.005), b = keel_stress_quantile(r, KEEL_STRESS_WEALTH, 0.995);
  if (!isfinite(a) || !isfinite(b)) return keeli_error(ctx, KEEL_EINVAL, "stress histogram: no terminal wealth");
  if (!(b > a)) { /* every path ends (nearly) at one value */
    double h = fmax(fabs(a) * 0.01, 1e-9);
    a -= h, b += h;
  }
  const int logs = a > 0 && b / a > 4;
  const double la = logs ? log(a) : a, lb = logs ? log(b) : b;
  const size_t nb = nbins + 2;
  for (size_t k = 1; k <= nbins + 1; k++) {
    double t = la + (lb - la) * (double)(k - 1) / (double)nbins;
    double e = k == 1 ? a : k == nbins + 1 ? b : logs ? exp(t) : t;
    lo[k] = e;
    hi[k - 1] = e;
  }
  lo[0] = NAN;
  hi[nb - 1] = NAN;
  const double *v = keel_stress_values(r, KEEL_STRESS_WEALTH);
  const size_t np = keel_stress_npaths(r);
  if (v) {
    for (size_t k = 0; k < nb; k++) share[k] = 0;
    size_t cnt = 0;
    for (size_t p = 0; p < np; p++) {
      if (isnan(v[p])) continue;
      cnt++;
      size_t k;
      if (v[p] < lo[1]) {
        k = 0;
      } else if (v[p] >= hi[nbins]) {
        k = nb - 1;
      } else { /* the bin by bisection of the edges */
        size_t L = 1, H = nbins;
        while (L < H) {
          size_t m = L + (H - L + 1) / 2;
          if (v[p] >= lo[m])
            L = m;
          else
            H = m - 1;
        }
        k = L;
      }
      share[k] += 1;
    }
    for (size_t k = 0; k < nb; k++) share[k] = cnt ? share[k] / (double)cnt : 0;
    return KEEL_OK;
  }
  /* P(W >= edge) from the streamed histogram; differences are the bins */
  double prev = 1;
  for (size_t k = 1; k <= nbins + 1; k++) {
    double ge = keel_stress_prob_goal(r, lo[k], 0);
    if (!(ge <= prev)) ge = prev; /* monotone against rounding */
    share[k - 1] = prev - ge;
    prev = ge;
  }
  share[nb - 1] = prev;
  return KEEL_OK;
}

keel_status keel_stress_record_fill(keel_ctx *ctx, const keel_stress_result *r, const keel_stress_meta *meta,
                                    keel_stress_record *rec, keel_stress_record_buf *buf) {
  if (!r || !rec || !buf) return keeli_error(ctx, KEEL_EINVAL, "keel_stress_record_fill: bad argument");
  static const char *const measures[] = {"p05", "p25", "p50", "p75", "p95", "mean", "es"};
  enum { NM = sizeof measures / sizeof measures[0] };
  const double *bp = keel_stress_band_probs();
  const double es = keel_stress_es_level(r);
  for (int s = 0; s < KEEL_STRESS_NSTATS; s++) {
    buf->stat_names[s] = keel_stress_stat_name(s);
    for (int b = 0; b < KEEL_STRESS_NBANDS; b++) buf->stat_values[s * NM + b] = keel_stress_quantile(r, s, bp[b]);
    buf->stat_values[s * NM + 5] = keel_stress_mean(r, s);
    buf->stat_values[s * NM + 6] = keel_stress_shortfall(r, s, es);
  }
  keel_status st =
      keel_stress_wealth_histogram(ctx, r, KEEL_STRESS_HIST_BINS, buf->hist_lo, buf->hist_hi, buf->hist_share);
  if (st) return st;
  keel_stress_meta m = meta ? *meta : (keel_stress_meta){0};
  const size_t np = keel_stress_band_npoints(r);
  const keel_date *bd = keel_stress_band_dates(r);
  const double goal = keel_stress_goal(r), years = keel_stress_years(r);
  *rec = (keel_stress_record){.strategy = m.strategy ? m.strategy : "",
                              .params_json = m.params_json ? m.params_json : "{}",
                              .dataset = m.dataset ? m.dataset : "",
                              .dataset_hash = m.dataset_hash ? m.dataset_hash : "",
                              .generator = m.generator ? m.generator : "",
                              .scenario = m.scenario ? m.scenario : "",
                              .seed = keel_stress_seed(r),
                              .start = np ? bd[0] : KEEL_DATE_NONE,
                              .end = np ? bd[np - 1] : KEEL_DATE_NONE,
                              .npaths = keel_stress_npaths(r),
                              .nsteps = keel_stress_nsteps(r),
                              .steps_per_year = years > 0 ? (double)keel_stress_nsteps(r) / years : NAN,
                              .years = years,
                              .capital = keel_stress_capital(r),
                              .goal = goal,
                              .p_goal = goal > 0 ? keel_stress_prob_goal(r, goal, 0) : NAN,
                              .p_goal_any = goal > 0 ? keel_stress_prob_goal(r, goal, 1) : NAN,
                              .loss_threshold = keel_stress_loss_threshold(r),
                              .p_loss = keel_stress_prob_loss(r, keel_stress_loss_threshold(r)),
                              .es_level = es,
                              .mean_in = keel_stress_mean_in(r),
                              .mean_out = keel_stress_mean_out(r),
                              .nstats = KEEL_STRESS_NSTATS,
                              .nmeasures = NM,
                              .stat_names = buf->stat_names,
                              .measure_names = measures,
                              .stat_values = buf->stat_values,
                              .npoints = np,
                              .band_steps = keel_stress_band_rows(r),
                              .band_dates = bd,
                              .bands = keel_stress_bands(r),
                              .nhist = KEEL_STRESS_HIST_BINS + 2,
                              .hist_lo = buf->hist_lo,
                              .hist_hi = buf->hist_hi,
                              .hist_share = buf->hist_share};
  return KEEL_OK;
}
