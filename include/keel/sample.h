/** @file
 * @brief keel — a seeded generator of realistic multi-asset daily prices (core/).
 *
 * Business days (Monday to Friday) for six assets: EQUITY (a developed
 * stock index), EM_EQUITY (emerging markets, listed one year in), BOND (an
 * aggregate bond index), GOLD, CRYPTO (a crypto-like asset, listed three
 * years in) and CASH (a money-market fund). Daily log returns share one
 * GARCH(1,1) volatility factor and a multivariate Student-t shock (fat
 * tails on the same days across assets), with a fixed correlation matrix;
 * one market crash is laid over them. docs/sample-data.md gives the model
 * and its parameters. The same seed gives the same panel, bit for bit.
 */
#ifndef KEEL_SAMPLE_H
#define KEEL_SAMPLE_H

#include <stdint.h>

#include "keel/ctx.h"
#include "keel/date.h"
#include "keel/panel.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Settings of the sample generator; the defaults (@ref keel_sample_config_default)
 * make data/samples/multi_asset.csv. */
typedef struct keel_sample_config {
  uint64_t seed;    /**< 2 */
  keel_date start;  /**< first day (moved to the next business day): 2012-01-02 */
  int ndays;        /**< business days (>= 260): 3130, about 12 years */
  int crash_day;    /**< first day of the crash, 0 = none: day 2110 (about year 8) */
  int crash_days;   /**< length of the crash: 25 */
} keel_sample_config;

/** @brief Fills cfg with the defaults given in keel_sample_config.
 * @param[out] cfg the settings */
KEEL_API void keel_sample_config_default(keel_sample_config *cfg);

/** @brief Makes the panel; prices are rounded to 4 decimals.
 * @param ctx the context
 * @param cfg the settings, or NULL for the defaults
 * @param[out] out the panel
 * @return KEEL_OK; KEEL_EINVAL for ndays outside [260, 100000] or a crash
 *         outside the days; KEEL_ENOMEM */
KEEL_API keel_status keel_sample_generate(keel_ctx *ctx, const keel_sample_config *cfg, keel_panel **out);

#ifdef __cplusplus
}
#endif
#endif
