/** @file
 * @brief keel — estimators (core/): returns, expected returns, covariances.
 *
 * Returns matrices are periods x assets (row-major keel_cmat); NaN marks a
 * missing return (the asset had no price). Results are per period unless
 * periods_per_year is set, which annualises them (means and covariances
 * times periods_per_year; the geometric mean compounds to a year).
 * docs/estimators.md gives every formula.
 */
#ifndef KEEL_ESTIMATE_H
#define KEEL_ESTIMATE_H

#include <stddef.h>

#include "keel/ctx.h"
#include "keel/matrix.h"
#include "keel/panel.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Simple or log returns. */
typedef enum keel_returns_kind {
  KEEL_RETURNS_SIMPLE = 0, /**< p_t / p_prev - 1 */
  KEEL_RETURNS_LOG         /**< log(p_t / p_prev) */
} keel_returns_kind;

/** @brief Returns of panel rows [start, end).
 *
 * p_prev is the asset's last price before row t (so a return after a halt
 * spans the halt and compounding is preserved); NaN where the asset has no
 * price on row t or none before it.
 * @param ctx the context
 * @param p the panel
 * @param start first row
 * @param end one past the last row; 0 means all rows
 * @param kind simple or log
 * @param out (end - start - 1) x nassets
 * @return KEEL_OK; KEEL_EINVAL for rows that give no return, an unknown
 *         kind or an output of the wrong shape */
KEEL_API keel_status keel_returns(keel_ctx *ctx, const keel_panel *p, size_t start, size_t end,
                                  keel_returns_kind kind, keel_mat out);

/** @brief How missing returns are treated by means and covariances. */
typedef enum keel_missing {
  KEEL_MISSING_COMMON = 0, /**< use only periods where every asset has a return */
  KEEL_MISSING_PAIRWISE    /**< per asset (means) or per pair (covariances) */
} keel_missing;

/** @brief The estimator of expected returns. */
typedef enum keel_mean_kind {
  KEEL_MEAN_ARITHMETIC = 0, /**< the sample mean */
  KEEL_MEAN_GEOMETRIC, /**< (prod(1 + r))^(1/T) - 1 of simple returns */
  KEEL_MEAN_EWMA       /**< exponentially weighted, weight halving every halflife periods */
} keel_mean_kind;

/** @brief Options of @ref keel_mean (defaults in parentheses). */
typedef struct keel_mean_options {
  keel_mean_kind kind;     /**< arithmetic */
  double halflife;         /**< EWMA half-life in periods (> 0) (60) */
  double periods_per_year; /**< 0 or 1: per period; else annualised */
  keel_missing missing;    /**< common */
} keel_mean_options;

/** @brief Fills o with the defaults given in keel_mean_options.
 * @param[out] o the options */
KEEL_API void keel_mean_options_default(keel_mean_options *o);
/** @brief Expected returns.
 * @param ctx the context
 * @param returns periods x assets, NaN for missing
 * @param o the options, or NULL for the defaults
 * @param[out] mu returns.cols values
 * @return KEEL_OK; KEEL_EINVAL if an asset has no usable return, an input
 *         is infinite, or an option is bad */
KEEL_API keel_status keel_mean(keel_ctx *ctx, keel_cmat returns, const keel_mean_options *o, double *mu);

/** @brief The covariance estimator. */
typedef enum keel_cov_kind {
  KEEL_COV_SAMPLE = 0,   /**< unbiased sample covariance (T - 1) */
  KEEL_COV_EWMA,         /**< exponentially weighted (half-life), weighted mean removed */
  KEEL_COV_LW_IDENTITY,  /**< Ledoit-Wolf shrinkage towards a scaled identity */
  KEEL_COV_LW_CONSTCORR, /**< Ledoit-Wolf shrinkage towards constant correlation */
  KEEL_COV_SEMI          /**< semicovariance below a benchmark return */
} keel_cov_kind;

/** @brief Options of @ref keel_cov (defaults in parentheses). */
typedef struct keel_cov_options {
  keel_cov_kind kind;      /**< sample */
  double halflife;         /**< EWMA half-life in periods (60) */
  double benchmark;        /**< semicovariance: per-period benchmark return (0) */
  double periods_per_year; /**< 0 or 1: per period; else annualised */
  keel_missing missing;    /**< common; pairwise only for sample and semi */
} keel_cov_options;

/** @brief What a covariance estimate used. */
typedef struct keel_cov_info {
  double shrinkage; /**< Ledoit-Wolf intensity in [0, 1] (NaN otherwise) */
  size_t nobs;      /**< periods used (the smallest pair count when pairwise) */
} keel_cov_info;

/** @brief Fills o with the defaults given in keel_cov_options.
 * @param[out] o the options */
KEEL_API void keel_cov_options_default(keel_cov_options *o);
/** @brief Covariance of the returns' columns.
 * @param ctx the context
 * @param returns periods x assets, NaN for missing
 * @param o the options, or NULL for the defaults
 * @param[out] cov cols x cols
 * @param[out] info what was used, or NULL
 * @return KEEL_OK; KEEL_EINVAL for infinite inputs, too few periods, a
 *         pairwise request for EWMA or Ledoit-Wolf, a wrong shape;
 *         KEEL_ENOMEM */
KEEL_API keel_status keel_cov(keel_ctx *ctx, keel_cmat returns, const keel_cov_options *o, keel_mat cov,
                              keel_cov_info *info);

/** @brief What @ref keel_cov_nearest_psd changed. */
typedef struct keel_psd_report {
  size_t nclipped;         /**< eigenvalues raised to the floor */
  double min_eigenvalue;   /**< before repair */
  double max_eigenvalue;   /**< before repair */
  double condition;        /**< max / min eigenvalue after repair */
  double change;           /**< ||A_repaired - A||_F / ||A||_F */
} keel_psd_report;

/** @brief Nearest positive semidefinite matrix in Frobenius norm (Higham 1988),
 * in place.
 *
 * Eigenvalues below floor * max(|eigenvalue|) are raised to it (floor = 0
 * clips at zero). Uses LAPACK dsyevr.
 * @param ctx the context
 * @param cov the matrix: symmetric (checked to 1e-12 relative) and finite
 * @param floor the relative floor of the eigenvalues, in [0, 1)
 * @param[out] rep what changed, or NULL
 * @return KEEL_OK; KEEL_EINVAL for a matrix that is not square, symmetric
 *         or finite; KEEL_ENUMERIC if the eigen-decomposition fails;
 *         KEEL_ENOMEM */
KEEL_API keel_status keel_cov_nearest_psd(keel_ctx *ctx, keel_mat cov, double floor, keel_psd_report *rep);

/** @brief What a PCA factor model explains. */
typedef struct keel_pca_info {
  double explained; /**< share of the total sample variance the k factors carry */
  size_t nobs;      /**< periods used (every return present) */
} keel_pca_info;

/** @brief A k-factor model B F B' + diag(d) of the returns' covariance by principal
 * components of the sample covariance S (common window).
 *
 * B (n x k) holds
 * the top k eigenvectors (each column summing to >= 0), F (k x k) the
 * diagonal of their eigenvalues, d (n) the variance they leave,
 * d_i = S_ii - sum_c B_ic^2 F_cc (>= 0), so the model reproduces every
 * sample variance. With fewer periods than assets the eigenpairs come from
 * the T x T Gram matrix: S is never formed. Feed the result to
 * keel_mv_optimize() as a keel_factor_model.
 * @param ctx the context
 * @param returns T periods x n assets
 * @param k number of factors
 * @param periods_per_year 0 or 1: per period; else annualised
 * @param[out] B n x k loadings
 * @param[out] F k x k factor covariance
 * @param[out] d n specific variances
 * @param[out] info what the factors explain, or NULL
 * @return KEEL_OK; KEEL_EINVAL when k exceeds the rank the data can carry
 *         (k <= min(n, T - 1) and the k-th eigenvalue above 1e-12 of the
 *         first) or for wrong shapes; KEEL_ENUMERIC; KEEL_ENOMEM */
KEEL_API keel_status keel_factor_pca(keel_ctx *ctx, keel_cmat returns, size_t k, double periods_per_year, keel_mat B,
                                     keel_mat F, double *d, keel_pca_info *info);

#ifdef __cplusplus
}
#endif
#endif
