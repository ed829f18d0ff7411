/** @file
 * @brief keel — trades and rebalance events, shared by the engine and the store.
 */
#ifndef KEEL_TRADE_H
#define KEEL_TRADE_H

#include <stddef.h>
#include <stdint.h>

#include "keel/date.h"
#include "keel/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Why a trade or a rebalance happened. */
typedef enum keel_trade_reason {
  KEEL_REASON_INITIAL = 0, /**< first allocation of the capital */
  KEEL_REASON_CALENDAR,    /**< calendar rebalance */
  KEEL_REASON_BAND,        /**< threshold band breached */
  KEEL_REASON_VOLTARGET,   /**< volatility target */
  KEEL_REASON_DCA,         /**< a DCA installment (contribution, withdrawal or cash put to work) */
  KEEL_REASON_STOP,        /**< a stop rule fired */
  KEEL_REASON_REENTRY,     /**< a stopped asset or sub-account re-entered */
  KEEL_REASON_STRATEGY     /**< a strategy's on_bar asked for new weights */
} keel_trade_reason;

/** @brief One executed trade. shares > 0 buys, < 0 sells; notional = shares * price
 * (signed); cost = proportional cost + fixed fee charged for this trade. */
typedef struct keel_trade {
  keel_date date;           /**< the trading date */
  uint32_t asset;           /**< column in the panel */
  uint32_t sub;             /**< sub-account index */
  keel_trade_reason reason; /**< why it was made */
  double shares;            /**< shares traded: > 0 buys, < 0 sells */
  double price;             /**< the price it filled at */
  double notional;          /**< shares * price (signed) */
  double cost;              /**< proportional cost + fixed fee charged for this trade */
} keel_trade;

/** @brief One rebalance: the sub-account's value just before and just after trading, at
 * the same prices. Money is conserved: value_before == value_after + costs. */
typedef struct keel_rebalance {
  keel_date date;           /**< the trading date */
  uint32_t sub;             /**< sub-account index */
  keel_trade_reason reason; /**< why it was made */
  double value_before;      /**< the sub-account's value just before trading */
  double value_after;       /**< its value just after, at the same prices */
  double costs;             /**< costs paid by its trades */
  double traded;            /**< gross traded notional, sum of |notional| */
  uint32_t ntrades;         /**< number of trades */
} keel_rebalance;

/** @brief Name of a reason.
 * @param r the reason
 * @return a static string ("calendar"; "unknown" for a value out of range) */
KEEL_API const char *keel_trade_reason_name(keel_trade_reason r);

#ifdef __cplusplus
}
#endif
#endif
