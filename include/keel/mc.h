/* keel — Monte Carlo path generators and stress scenarios (core/, no I/O).
 *
 * A generator (keel_mc) makes paths of log returns, nsteps x nassets, one
 * row per step (daily: 252 steps a year; monthly: 12). Four kinds:
 *   - multivariate normal: r_t = m + L z_t, L L' = S (Cholesky, or an
 *     eigen-factor when S is only semidefinite);
 *   - multivariate Student-t with nu > 2 degrees of freedom, scaled so
 *     its covariance is S: r_t = m + sqrt((nu - 2) / W) L z_t, W ~ chi2(nu);
 *   - stationary block bootstrap (Politis and Romano 1994) of historical
 *     step returns: whole cross-sections (rows) are drawn, a new block
 *     starting with probability 1 / block_mean at each step at a uniform
 *     row, otherwise the next row (circularly);
 *   - regime switching: K states with their own m_k, S_k and a Markov
 *     transition matrix P (per step); the first state is drawn from
 *     `initial` or P's stationary distribution;
 *   - constant: r_t = m every step (a stand-alone scenario's base).
 * Means and covariances are given per year (of log returns) and scaled by
 * the step (dt = 1 / steps per year), or calibrated from a price history
 * with any of the estimators of keel/estimate.h.
 *
 * Random streams. Path p of seed s draws from its own xoshiro256**
 * generator whose state is four SplitMix64 outputs started at
 * splitmix(s) ^ splitmix(p + golden) (the normal generator: eight such
 * lanes and a spare from the same SplitMix64 sequence, eight normals at a
 * time): the numbers of a path depend only
 * on (s, p), never on which thread makes it or in which order, so runs are
 * identical on any thread count. docs/stress.md has the details.
 *
 * Scenarios (keel_scenario) are overlays applied to every path: crashes and
 * rallies, volatility times k, correlations towards one, a replay of the
 * worst N-step window of the history, and liquidity crunches (cost and
 * spread multipliers, no-trade steps). A generator and a scenario are
 * joined once (keel_mc_set_scenario); the generator is then immutable and
 * may be shared by many threads.
 */
#ifndef KEEL_MC_H
#define KEEL_MC_H

#include <stddef.h>
#include <stdint.h>

#include "keel/ctx.h"
#include "keel/estimate.h"
#include "keel/panel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- random numbers ---- */

/* xoshiro256** (Blackman and Vigna); 2^256 - 1 period. */
typedef struct keel_rng {
  uint64_t s[4];
} keel_rng;

/* The stream of (seed, stream): see the header comment. */
KEEL_API void keel_rng_seed(keel_rng *r, uint64_t seed, uint64_t stream);
KEEL_API uint64_t keel_rng_next(keel_rng *r);
/* Uniform on [0, 1) with 53 random bits. */
KEEL_API double keel_rng_uniform(keel_rng *r);
/* Standard normal (256-layer ziggurat, exact tail). */
KEEL_API double keel_rng_normal(keel_rng *r);
/* Gamma(shape, 1), shape > 0 (Marsaglia and Tsang). */
KEEL_API double keel_rng_gamma(keel_rng *r, double shape);

/* ---- generators ---- */

typedef enum keel_mc_kind {
  KEEL_MC_NORMAL = 0,
  KEEL_MC_STUDENT_T,
  KEEL_MC_BOOTSTRAP,
  KEEL_MC_REGIME,
  KEEL_MC_CONSTANT
} keel_mc_kind;

typedef enum keel_mc_freq {
  KEEL_MC_DAILY = 0, /* 252 steps a year */
  KEEL_MC_MONTHLY    /* 12 steps a year */
} keel_mc_freq;

KEEL_API const char *keel_mc_kind_name(keel_mc_kind k);
KEEL_API int keel_mc_kind_parse(const char *s, keel_mc_kind *out);

/* A generator given directly. Arrays are copied. */
typedef struct keel_mc_params {
  keel_mc_kind kind;
  keel_mc_freq freq;    /* daily */
  double years;         /* horizon (> 0); nsteps = round(years * steps per year) */
  size_t nassets;
  const double *mu;     /* NORMAL, STUDENT_T, CONSTANT: nassets annual means of log returns */
  const double *cov;    /* NORMAL, STUDENT_T: nassets x nassets annual covariance (PSD) */
  double dof;           /* STUDENT_T: degrees of freedom (> 2) */
  /* BOOTSTRAP: nhistory rows of step log returns (nhistory x nassets,
   * finite), at the generator's frequency */
  const double *history;
  size_t nhistory;
  double block_mean;    /* BOOTSTRAP: mean block length in steps (>= 1; 1 = iid rows) */
  /* REGIME: nstates >= 1 states */
  size_t nstates;
  const double *state_mu;   /* nstates x nassets, annual */
  const double *state_cov;  /* nstates x nassets x nassets, annual */
  const double *transition; /* nstates x nstates per step, rows summing to 1 */
  const double *initial;    /* nstates probabilities, or NULL: the stationary distribution */
} keel_mc_params;

KEEL_API void keel_mc_params_default(keel_mc_params *p);

typedef struct keel_mc keel_mc;

/* Makes a generator. KEEL_EINVAL names the bad field: a covariance that
 * is not symmetric or not positive semidefinite (an eigenvalue below
 * -1e-10 times the largest), dof <= 2, a transition matrix with a negative
 * entry or a row not summing to 1 (1e-9), too short a history. */
KEEL_API keel_status keel_mc_new(keel_ctx *ctx, const keel_mc_params *p, keel_mc **out);
KEEL_API void keel_mc_free(keel_mc *g);

/* Calibration from a price history. */
typedef struct keel_mc_calibration {
  keel_mc_kind kind;
  keel_mc_freq freq;        /* daily */
  double years;             /* horizon (30) */
  size_t start, end;        /* panel rows [start, end) to learn from (end 0: all) */
  double periods_per_year;  /* of the history's rows (252) */
  keel_mean_options mean;   /* estimator of the mean of log returns (arithmetic) */
  keel_cov_options cov;     /* estimator of their covariance (sample) */
  double dof;               /* STUDENT_T (5) */
  double block_mean;        /* BOOTSTRAP: mean block length in steps (21 daily, 6 monthly) ; 0 = that default */
  size_t nstates;           /* REGIME: states (2), split by the trailing volatility, below */
  unsigned regime_window;   /* REGIME: rows of the trailing volatility (21 daily, 3 monthly; 0 = that) */
} keel_mc_calibration;

KEEL_API void keel_mc_calibration_default(keel_mc_calibration *c);

/* Learns a generator from the log returns of the panel rows [start, end)
 * where every asset has a price (the common window; a halt inside it
 * ends it: KEEL_EINVAL). Daily steps use the rows' returns; monthly steps
 * the returns between the last rows of calendar months. NORMAL and
 * STUDENT_T: m and S from the estimators, annualised; BOOTSTRAP: the step
 * returns themselves; REGIME: each step is put in one of nstates states by
 * the quantiles of the trailing volatility (regime_window steps) of the
 * equally weighted basket, each state's m and S are its steps' sample
 * moments and P counts the transitions (plus one in each cell, so no
 * probability is 0). The history is kept for worst-window scenarios and as
 * the prefix of simulated panels (keel_mc_history). */
KEEL_API keel_status keel_mc_calibrate(keel_ctx *ctx, const keel_panel *history, const keel_mc_calibration *c,
                                       keel_mc **out);

KEEL_API keel_mc_kind keel_mc_get_kind(const keel_mc *g);
KEEL_API size_t keel_mc_nassets(const keel_mc *g);
KEEL_API size_t keel_mc_nsteps(const keel_mc *g);
KEEL_API double keel_mc_steps_per_year(const keel_mc *g);
KEEL_API keel_mc_freq keel_mc_get_freq(const keel_mc *g);
/* Per-step mean (nassets) and covariance (nassets x nassets) of the log
 * returns (for REGIME: of state `state`; for BOOTSTRAP: the history's
 * sample moments). Borrowed. */
KEEL_API const double *keel_mc_step_mean(const keel_mc *g, size_t state);
KEEL_API const double *keel_mc_step_cov(const keel_mc *g, size_t state);
/* REGIME: the per-step transition matrix (nstates x nstates); else NULL. */
KEEL_API const double *keel_mc_transition(const keel_mc *g, size_t *nstates);
/* The history's step log returns (rows x nassets) when there is one
 * (calibrated, or BOOTSTRAP), else NULL with *rows 0. */
KEEL_API const double *keel_mc_history(const keel_mc *g, size_t *rows);

/* Doubles of scratch keel_mc_path needs. */
KEEL_API size_t keel_mc_work_size(const keel_mc *g);

/* Path `path` of the stream `seed`: nsteps x nassets log returns into
 * logret (row-major), the scenario applied. work has keel_mc_work_size
 * doubles (NULL: allocated through ctx). states (nsteps, may be NULL)
 * gets the regime of each step (0 for other kinds). Thread-safe for a
 * const g. */
KEEL_API keel_status keel_mc_path(keel_ctx *ctx, const keel_mc *g, uint64_t seed, uint64_t path, double *logret,
                                  double *work, unsigned *states);

/* ---- scenarios ---- */

typedef enum keel_scenario_kind {
  KEEL_SCN_SHOCK = 0, /* crash or rally: a total move `size` (-0.4 = a 40% fall) spread over the window */
  KEEL_SCN_VOL,       /* deviations from the step mean times `size` over the window */
  KEEL_SCN_CORR,      /* correlations moved towards one: corr' = (1 - size) corr + size, size in [0, 1] */
  KEEL_SCN_WORST,     /* the history's worst window of `duration` (equal-weight basket of the targets), replayed */
  KEEL_SCN_LIQUIDITY  /* cost and spread multipliers over the window; its first `halt` steps without trading */
} keel_scenario_kind;

/* One event. Times are in years from the start; the window is the steps
 * whose end lies in (at, at + duration] (at least one step: the step
 * ending at round(at * steps per year), or the first step for at 0).
 * duration 0 = one step; for VOL, CORR and LIQUIDITY a negative duration
 * means to the horizon. */
typedef struct keel_scenario_event {
  keel_scenario_kind kind;
  const char *target;  /* assets: "all", a group, a symbol, "A+B", or a glob ("*EQUITY*"); case-insensitive */
  double size;         /* SHOCK: total move; VOL: k; CORR: weight; unused otherwise */
  double at, duration; /* years */
  double cost_mult, spread_mult; /* LIQUIDITY (>= 0; 1 = unchanged) */
  double halt;         /* LIQUIDITY: years without trading at the window's start (0) */
} keel_scenario_event;

typedef struct keel_scenario keel_scenario;

/* An empty scenario over the assets named symbols (copied). */
KEEL_API keel_status keel_scenario_new(keel_ctx *ctx, size_t nassets, const char *const *symbols, keel_scenario **out);
KEEL_API void keel_scenario_free(keel_scenario *sc);
/* Defines group `name` as the assets matched by `members` (a target
 * expression as above). */
KEEL_API keel_status keel_scenario_add_group(keel_ctx *ctx, keel_scenario *sc, const char *name, const char *members);
KEEL_API keel_status keel_scenario_add_event(keel_ctx *ctx, keel_scenario *sc, const keel_scenario_event *ev);
/* Parses events in the command-line syntax, separated by ';' (docs/stress.md):
 *   crash:TARGET:-0.4@5y[/DUR]   rally:TARGET:0.3@2y/3m    vol:TARGET:2@10y/1y
 *   corr:TARGET:0.8@5y/1y        worst:20d@5y              liquidity:TARGET:cost=3,spread=5,halt=5d@5y/3m
 * times: a number with y (years), m (months), w (weeks of 5 days), d
 * (trading days, 1/252 year); @ defaults to 0 and /DUR to one step.
 * KEEL_EINVAL with the offending text on any error. */
KEEL_API keel_status keel_scenario_parse(keel_ctx *ctx, keel_scenario *sc, const char *text);
KEEL_API size_t keel_scenario_nevents(const keel_scenario *sc);
/* Parses a time ("5y", "3m", "20d", "2w", "0.5y"); returns 0 and the
 * years, or -1. */
KEEL_API int keel_scenario_parse_time(const char *s, double *years);

/* Joins scenario sc (may be NULL: none) to g, replacing the last one:
 * resolves steps and windows against g's horizon (an event past the
 * horizon is KEEL_EINVAL) and finds worst windows in g's history
 * (KEEL_EINVAL without one). sc may be freed afterwards. */
KEEL_API keel_status keel_mc_set_scenario(keel_ctx *ctx, keel_mc *g, const keel_scenario *sc);

/* The liquidity of each step under the scenario: cost and spread
 * multipliers (nsteps each) and the no-trade flags (nsteps x nassets),
 * all borrowed, NULL when the scenario has no liquidity event. */
KEEL_API void keel_mc_liquidity(const keel_mc *g, const double **cost_mult, const double **spread_mult,
                                const unsigned char **halted);

#ifdef __cplusplus
}
#endif
#endif
