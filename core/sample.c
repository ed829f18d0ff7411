/* keel — seeded sample prices. Model and parameters: docs/sample-data.md. */
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "keel/sample.h"

enum { NA = 6 };
static const char *const SYMBOLS[NA] = {"EQUITY", "EM_EQUITY", "BOND", "GOLD", "CRYPTO", "CASH"};
/* annual drift and volatility of log returns, first price, listing year */
static const double MU[NA] = {0.07, 0.06, 0.03, 0.05, 0.30, 0.02};
static const double SIGMA[NA] = {0.17, 0.22, 0.05, 0.15, 0.75, 0.003};
static const double P0[NA] = {100, 50, 100, 1200, 400, 100};
static const int LIST_YEAR[NA] = {0, 1, 0, 0, 3, 0};
/* how strongly each asset follows the common volatility factor */
static const double VOL_LOAD[NA] = {1, 1, 0.3, 0.5, 1, 0};
/* extra daily log drift during the crash */
static const double CRASH_DRIFT[NA] = {-0.017, -0.021, 0.001, 0.0015, -0.037, 0};
static const double CORR[NA][NA] = {
    {1.00, 0.75, -0.20, 0.10, 0.30, 0.0},  {0.75, 1.00, -0.10, 0.15, 0.30, 0.0},
    {-0.20, -0.10, 1.00, 0.25, 0.00, 0.0}, {0.10, 0.15, 0.25, 1.00, 0.10, 0.0},
    {0.30, 0.30, 0.00, 0.10, 1.00, 0.0},   {0.0, 0.0, 0.0, 0.0, 0.0, 1.0},
};
#define NU 5.0           /* Student-t degrees of freedom */
#define GARCH_A 0.08     /* h_t = (1-a-b) + a h_{t-1} e_{t-1}^2 + b h_{t-1} */
#define GARCH_B 0.90
#define CRASH_VOL 4.0    /* variance multiplier during the crash */

void keel_sample_config_default(keel_sample_config *cfg) {
  cfg->seed = 2;
  keel_date_from_ymd(2012, 1, 2, &cfg->start);
  cfg->ndays = 3130;
  cfg->crash_day = 2110;
  cfg->crash_days = 25;
}

keel_status keel_sample_generate(keel_ctx *ctx, const keel_sample_config *cfg, keel_panel **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_sample_generate: out is NULL");
  *out = NULL;
  keel_sample_config c;
  if (cfg)
    c = *cfg;
  else
    keel_sample_config_default(&c);
  if (c.ndays < 260 || c.ndays > 100000)
    return keeli_error(ctx, KEEL_EINVAL, "sample: ndays %d must be in [260, 100000]", c.ndays);
  if (c.crash_day < 0 || c.crash_days < 0 || (c.crash_day && c.crash_day + c.crash_days > c.ndays))
    return keeli_error(ctx, KEEL_EINVAL, "sample: the crash must lie within the %d days", c.ndays);

  /* Cholesky factor of the correlation matrix (lower triangular). */
  double L[NA][NA];
  memset(L, 0, sizeof L);
  for (int i = 0; i < NA; i++)
    for (int j = 0; j <= i; j++) {
      double s = CORR[i][j];
      for (int k = 0; k < j; k++) s -= L[i][k] * L[j][k];
      if (i == j) {
        if (s <= 0) return keeli_error(ctx, KEEL_ENUMERIC, "sample: correlation matrix is not positive definite");
        L[i][i] = sqrt(s);
      } else {
        L[i][j] = s / L[j][j];
      }
    }

  size_t n = (size_t)c.ndays;
  keel_date *dates = keeli_alloc_array(ctx, n, sizeof *dates);
  double *px = keeli_alloc_array(ctx, n, NA * sizeof *px);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  keel_status st = KEEL_OK;
  if (!dates || !px || !rng) {
    st = keeli_error(ctx, KEEL_ENOMEM, "out of memory (sample)");
    goto done;
  }
  gsl_rng_set(rng, (unsigned long)(c.seed ^ (c.seed >> 32)));
  keel_date d = c.start;
  for (size_t i = 0; i < n; d++)
    if (keel_date_weekday(d) < 5) dates[i++] = d;

  const double dt = 1.0 / 252, tscale = sqrt((NU - 2) / NU);
  double logp[NA], h = 1, eprev = 0;
  for (int j = 0; j < NA; j++) logp[j] = log(P0[j]);
  for (size_t i = 0; i < n; i++) {
    int crash = c.crash_day && (int)i >= c.crash_day && (int)i < c.crash_day + c.crash_days;
    h = (1 - GARCH_A - GARCH_B) + GARCH_A * eprev * eprev + GARCH_B * h;
    double hv = crash ? h * CRASH_VOL : h;
    /* multivariate t: correlated normals over one chi-square mixing draw */
    double z[NA], e[NA];
    for (int j = 0; j < NA; j++) z[j] = gsl_ran_gaussian_ziggurat(rng, 1.0);
    double mix = sqrt(NU / gsl_ran_chisq(rng, NU)) * tscale;
    for (int j = 0; j < NA; j++) {
      double s = 0;
      for (int k = 0; k <= j; k++) s += L[j][k] * z[k];
      e[j] = s * mix;
    }
    eprev = sqrt(h) * e[0]; /* the equity shock feeds the common variance */
    for (int j = 0; j < NA; j++) {
      double scale = 1 + VOL_LOAD[j] * (sqrt(hv) - 1);
      if (scale < 0.2) scale = 0.2;
      double sig = SIGMA[j] * scale;
      logp[j] += (MU[j] - 0.5 * SIGMA[j] * SIGMA[j]) * dt + sig * sqrt(dt) * e[j] + (crash ? CRASH_DRIFT[j] : 0);
      int listed = (int)i >= LIST_YEAR[j] * 252;
      px[i * NA + j] = listed ? round(exp(logp[j]) * 1e4) / 1e4 : NAN;
      if (listed && !(px[i * NA + j] > 0)) px[i * NA + j] = 1e-4;
    }
  }
  st = keel_panel_new(ctx, n, NA, dates, SYMBOLS, px, out);
done:
  if (rng) gsl_rng_free(rng);
  keeli_free(ctx, dates);
  keeli_free(ctx, px);
  return st;
}
