/** @file
 * @brief keel — Monte Carlo path generators and stress scenarios (core/, no I/O).
 *
 * A generator (keel_mc) makes paths of log returns, nsteps x nassets, one
 * row per step (daily: 252 steps a year; monthly: 12). Four kinds:
 *
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
 *
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

/** @brief A random number generator: xoshiro256** (Blackman and Vigna); 2^256 - 1 period. */
typedef struct keel_rng {
  uint64_t s[4]; /**< the state */
} keel_rng;

/** @brief Starts the stream of (seed, stream): see the header comment.
 * @param[out] r the generator
 * @param seed the seed
 * @param stream the stream number (a path's index) */
KEEL_API void keel_rng_seed(keel_rng *r, uint64_t seed, uint64_t stream);
/** @brief The next 64 random bits.
 * @param r the generator
 * @return the next output */
KEEL_API uint64_t keel_rng_next(keel_rng *r);
/** @brief Uniform on [0, 1) with 53 random bits.
 * @param r the generator
 * @return the draw */
KEEL_API double keel_rng_uniform(keel_rng *r);
/** @brief Standard normal (256-layer ziggurat, exact tail).
 * @param r the generator
 * @return the draw */
KEEL_API double keel_rng_normal(keel_rng *r);
/** @brief Gamma(shape, 1) (Marsaglia and Tsang).
 * @param r the generator
 * @param shape > 0
 * @return the draw */
KEEL_API double keel_rng_gamma(keel_rng *r, double shape);

/* ---- generators ---- */

/** @brief The kind of a generator (see the header comment). */
typedef enum keel_mc_kind {
  KEEL_MC_NORMAL = 0, /**< multivariate normal */
  KEEL_MC_STUDENT_T,  /**< multivariate Student-t */
  KEEL_MC_BOOTSTRAP,  /**< stationary block bootstrap of history */
  KEEL_MC_REGIME,     /**< regime switching */
  KEEL_MC_CONSTANT    /**< r_t = m every step */
} keel_mc_kind;

/** @brief The step of a generator. */
typedef enum keel_mc_freq {
  KEEL_MC_DAILY = 0, /**< 252 steps a year */
  KEEL_MC_MONTHLY    /**< 12 steps a year */
} keel_mc_freq;

/** @brief Name of a generator kind.
 * @param k the kind
 * @return a static string: "normal", "student_t", "bootstrap", "regime",
 *         "constant" ("unknown" out of range) */
KEEL_API const char *keel_mc_kind_name(keel_mc_kind k);
/** @brief Parses a generator kind: its name, or "mvn", "gbm" (normal), "t",
 * "student-t", "scenario" (constant).
 * @param s the name
 * @param[out] out the kind, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_mc_kind_parse(const char *s, keel_mc_kind *out);

/** @brief A generator given directly (@ref keel_mc_new). Arrays are copied.
 * Defaults (@ref keel_mc_params_default) in parentheses. */
typedef struct keel_mc_params {
  keel_mc_kind kind;    /**< the kind (normal) */
  keel_mc_freq freq;    /**< daily */
  double years;         /**< horizon (> 0); nsteps = round(years * steps per year) (30) */
  size_t nassets;       /**< number of assets */
  const double *mu;     /**< NORMAL, STUDENT_T, CONSTANT: nassets annual means of log returns */
  const double *cov;    /**< NORMAL, STUDENT_T: nassets x nassets annual covariance (PSD) */
  double dof;           /**< STUDENT_T: degrees of freedom (> 2) (5) */
  /** BOOTSTRAP: nhistory rows of step log returns (nhistory x nassets,
   * finite), at the generator's frequency */
  const double *history;
  size_t nhistory;      /**< BOOTSTRAP: rows of history */
  double block_mean;    /**< BOOTSTRAP: mean block length in steps (>= 1; 1 = iid rows) (21) */
  size_t nstates;           /**< REGIME: nstates >= 1 states (1) */
  const double *state_mu;   /**< REGIME: nstates x nassets, annual */
  const double *state_cov;  /**< REGIME: nstates x nassets x nassets, annual */
  const double *transition; /**< REGIME: nstates x nstates per step, rows summing to 1 */
  const double *initial;    /**< REGIME: nstates probabilities, or NULL: the stationary distribution */
} keel_mc_params;

/** @brief Fills p with the defaults given in keel_mc_params.
 * @param[out] p the parameters */
KEEL_API void keel_mc_params_default(keel_mc_params *p);

/** @brief A path generator (opaque), immutable once its scenario is set. */
typedef struct keel_mc keel_mc;

/** @brief Makes a generator.
 * @param ctx the context
 * @param p the parameters
 * @param[out] out the generator; NULL on failure
 * @return KEEL_OK; KEEL_EINVAL naming the bad field: a covariance that is
 *         not symmetric or not positive semidefinite (an eigenvalue below
 *         -1e-10 times the largest), dof <= 2, a transition matrix with a
 *         negative entry or a row not summing to 1 (1e-9), too short a
 *         history; KEEL_ENOMEM */
KEEL_API keel_status keel_mc_new(keel_ctx *ctx, const keel_mc_params *p, keel_mc **out);
/** @brief Frees a generator; NULL is a no-op.
 * @param g the generator */
KEEL_API void keel_mc_free(keel_mc *g);

/** @brief Calibration from a price history (@ref keel_mc_calibrate);
 * defaults (@ref keel_mc_calibration_default) in parentheses. */
typedef struct keel_mc_calibration {
  keel_mc_kind kind;        /**< the kind (normal) */
  keel_mc_freq freq;        /**< daily */
  double years;             /**< horizon (30) */
  size_t start;             /**< first panel row to learn from (0) */
  size_t end;               /**< one past the last row (0: all) */
  double periods_per_year;  /**< of the history's rows (252) */
  keel_mean_options mean;   /**< estimator of the mean of log returns (arithmetic) */
  keel_cov_options cov;     /**< estimator of their covariance (sample) */
  double dof;               /**< STUDENT_T (5) */
  double block_mean;        /**< BOOTSTRAP: mean block length in steps (21 daily, 6 monthly) ; 0 = that default */
  size_t nstates;           /**< REGIME: states (2), split by the trailing volatility, below */
  unsigned regime_window;   /**< REGIME: rows of the trailing volatility (21 daily, 3 monthly; 0 = that) */
} keel_mc_calibration;

/** @brief Fills c with the defaults given in keel_mc_calibration.
 * @param[out] c the calibration */
KEEL_API void keel_mc_calibration_default(keel_mc_calibration *c);

/** @brief Learns a generator from the log returns of the panel rows [start, end)
 * where every asset has a price (the common window; a halt inside it
 * ends it: KEEL_EINVAL). Daily steps use the rows' returns; monthly steps
 * the returns between the last rows of calendar months. NORMAL and
 * STUDENT_T: m and S from the estimators, annualised; BOOTSTRAP: the step
 * returns themselves; REGIME: each step is put in one of nstates states by
 * the quantiles of the trailing volatility (regime_window steps) of the
 * equally weighted basket, each state's m and S are its steps' sample
 * moments and P counts the transitions (plus one in each cell, so no
 * probability is 0). The history is kept for worst-window scenarios and as
 * the prefix of simulated panels (keel_mc_history()).
 * @param ctx the context
 * @param history the prices
 * @param c the calibration
 * @param[out] out the generator; NULL on failure
 * @return KEEL_OK; KEEL_EINVAL for a halt inside the window, too short a
 *         window or bad settings (naming them); the estimators' errors;
 *         KEEL_ENOMEM */
KEEL_API keel_status keel_mc_calibrate(keel_ctx *ctx, const keel_panel *history, const keel_mc_calibration *c,
                                       keel_mc **out);

/** @brief The generator's kind.
 * @param g the generator
 * @return its kind */
KEEL_API keel_mc_kind keel_mc_get_kind(const keel_mc *g);
/** @brief The generator's number of assets.
 * @param g the generator
 * @return nassets */
KEEL_API size_t keel_mc_nassets(const keel_mc *g);
/** @brief Steps per path.
 * @param g the generator
 * @return nsteps */
KEEL_API size_t keel_mc_nsteps(const keel_mc *g);
/** @brief Steps a year.
 * @param g the generator
 * @return 252 (daily) or 12 (monthly) */
KEEL_API double keel_mc_steps_per_year(const keel_mc *g);
/** @brief The generator's step.
 * @param g the generator
 * @return its frequency */
KEEL_API keel_mc_freq keel_mc_get_freq(const keel_mc *g);
/** @brief Per-step mean of the log returns (for REGIME: of state `state`;
 * for BOOTSTRAP: the history's sample moments).
 * @param g the generator
 * @param state the regime (0 for other kinds)
 * @return nassets values, borrowed; NULL for a state out of range */
KEEL_API const double *keel_mc_step_mean(const keel_mc *g, size_t state);
/** @brief Per-step covariance of the log returns, as @ref keel_mc_step_mean.
 * @param g the generator
 * @param state the regime (0 for other kinds)
 * @return nassets x nassets values, borrowed; NULL for a state out of range */
KEEL_API const double *keel_mc_step_cov(const keel_mc *g, size_t state);
/** @brief REGIME: the per-step transition matrix.
 * @param g the generator
 * @param[out] nstates the number of states, or NULL
 * @return nstates x nstates values, borrowed; NULL for other kinds */
KEEL_API const double *keel_mc_transition(const keel_mc *g, size_t *nstates);
/** @brief The history's step log returns, when there is one (calibrated, or BOOTSTRAP).
 * @param g the generator
 * @param[out] rows the number of rows (0 without a history), or NULL
 * @return rows x nassets values, borrowed; NULL without a history */
KEEL_API const double *keel_mc_history(const keel_mc *g, size_t *rows);

/** @brief Doubles of scratch @ref keel_mc_path needs.
 * @param g the generator
 * @return the number of doubles */
KEEL_API size_t keel_mc_work_size(const keel_mc *g);

/** @brief Path `path` of the stream `seed`, the scenario applied.
 *
 * Thread-safe for a const g.
 * @param ctx the context
 * @param g the generator
 * @param seed the stream seed
 * @param path the path's index
 * @param[out] logret nsteps x nassets log returns (row-major)
 * @param work keel_mc_work_size() doubles of scratch (NULL: allocated
 *        through ctx)
 * @param[out] states nsteps regimes of the steps (0 for other kinds), or NULL
 * @return KEEL_OK; KEEL_EINVAL for a NULL generator or output; KEEL_ENOMEM */
KEEL_API keel_status keel_mc_path(keel_ctx *ctx, const keel_mc *g, uint64_t seed, uint64_t path, double *logret,
                                  double *work, unsigned *states);

/* ---- scenarios ---- */

/** @brief The kind of a scenario event. */
typedef enum keel_scenario_kind {
  KEEL_SCN_SHOCK = 0, /**< crash or rally: a total move `size` (-0.4 = a 40% fall) spread over the window */
  KEEL_SCN_VOL,       /**< deviations from the step mean times `size` over the window */
  KEEL_SCN_CORR,      /**< correlations moved towards one: corr' = (1 - size) corr + size, size in [0, 1] */
  KEEL_SCN_WORST,     /**< the history's worst window of `duration` (equal-weight basket of the targets), replayed */
  KEEL_SCN_LIQUIDITY  /**< cost and spread multipliers over the window; its first `halt` steps without trading */
} keel_scenario_kind;

/** @brief One event.
 *
 * Times are in years from the start; the window is the steps whose end
 * lies in (at, at + duration] (at least one step: the step ending at
 * round(at * steps per year), or the first step for at 0). duration 0 =
 * one step; for VOL, CORR and LIQUIDITY a negative duration
 * means to the horizon. */
typedef struct keel_scenario_event {
  keel_scenario_kind kind; /**< what happens */
  const char *target;  /**< assets: "all", a group, a symbol, "A+B", or a glob (`*EQUITY*`); case-insensitive */
  double size;         /**< SHOCK: total move; VOL: k; CORR: weight; unused otherwise */
  double at;           /**< start, in years */
  double duration;     /**< length, in years */
  double cost_mult;    /**< LIQUIDITY: cost multiplier (>= 0; 1 = unchanged) */
  double spread_mult;  /**< LIQUIDITY: spread multiplier (>= 0; 1 = unchanged) */
  double halt;         /**< LIQUIDITY: years without trading at the window's start (0) */
} keel_scenario_event;

/** @brief A scenario (opaque): groups of assets and events over them. */
typedef struct keel_scenario keel_scenario;

/** @brief An empty scenario over the assets named symbols (copied).
 * @param ctx the context
 * @param nassets number of assets (>= 1)
 * @param symbols nassets symbols
 * @param[out] out the scenario; NULL on failure
 * @return KEEL_OK; KEEL_EINVAL for no assets or a missing symbol; KEEL_ENOMEM */
KEEL_API keel_status keel_scenario_new(keel_ctx *ctx, size_t nassets, const char *const *symbols, keel_scenario **out);
/** @brief Frees a scenario; NULL is a no-op.
 * @param sc the scenario */
KEEL_API void keel_scenario_free(keel_scenario *sc);
/** @brief Defines group `name` as the assets matched by `members`.
 * @param ctx the context
 * @param sc the scenario
 * @param name the group's name (none of + * ? [ : \@ / ; , = or space)
 * @param members a target expression, as keel_scenario_event.target
 * @return KEEL_OK; KEEL_EINVAL for a bad name or members that match
 *         nothing; KEEL_ENOMEM */
KEEL_API keel_status keel_scenario_add_group(keel_ctx *ctx, keel_scenario *sc, const char *name, const char *members);
/** @brief Adds an event.
 * @param ctx the context
 * @param sc the scenario
 * @param ev the event (copied)
 * @return KEEL_OK; KEEL_EINVAL for an unknown kind, a bad time, size or
 *         multiplier, a target that matches nothing; KEEL_ENOMEM */
KEEL_API keel_status keel_scenario_add_event(keel_ctx *ctx, keel_scenario *sc, const keel_scenario_event *ev);
/** @brief Parses events in the command-line syntax, separated by ';' (docs/stress.md).
 *
 * @verbatim
     crash:TARGET:-0.4@5y[/DUR]   rally:TARGET:0.3@2y/3m    vol:TARGET:2@10y/1y
     corr:TARGET:0.8@5y/1y        worst:20d@5y              liquidity:TARGET:cost=3,spread=5,halt=5d@5y/3m
   @endverbatim
 * times: a number with y (years), m (months), w (weeks of 5 days), d
 * (trading days, 1/252 year); \@ defaults to 0 and /DUR to one step.
 * @param ctx the context
 * @param sc the scenario the events are added to
 * @param text the events
 * @return KEEL_OK; KEEL_EINVAL with the offending text on any error;
 *         KEEL_ENOMEM */
KEEL_API keel_status keel_scenario_parse(keel_ctx *ctx, keel_scenario *sc, const char *text);
/** @brief Number of events.
 * @param sc the scenario (NULL: 0)
 * @return nevents */
KEEL_API size_t keel_scenario_nevents(const keel_scenario *sc);
/** @brief Parses a time ("5y", "3m", "20d", "2w", "0.5y").
 * @param s the text
 * @param[out] years the time in years, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_scenario_parse_time(const char *s, double *years);

/** @brief Joins scenario sc to g, replacing the last one.
 *
 * Resolves steps and windows against g's horizon and finds worst windows
 * in g's history. sc may be freed afterwards.
 * @param ctx the context
 * @param g the generator
 * @param sc the scenario, or NULL for none
 * @return KEEL_OK; KEEL_EINVAL for an event past the horizon, a worst
 *         window without a history, a scenario made for other assets;
 *         KEEL_ENOMEM */
KEEL_API keel_status keel_mc_set_scenario(keel_ctx *ctx, keel_mc *g, const keel_scenario *sc);

/** @brief The liquidity of each step under the scenario; all borrowed, NULL
 * when the scenario has no liquidity event.
 * @param g the generator
 * @param[out] cost_mult nsteps cost multipliers, or NULL
 * @param[out] spread_mult nsteps spread multipliers, or NULL
 * @param[out] halted nsteps x nassets no-trade flags, or NULL */
KEEL_API void keel_mc_liquidity(const keel_mc *g, const double **cost_mult, const double **spread_mult,
                                const unsigned char **halted);

#ifdef __cplusplus
}
#endif
#endif
