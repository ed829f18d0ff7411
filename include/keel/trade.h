/* keel — trades and rebalance events, shared by the engine and the store. */
#ifndef KEEL_TRADE_H
#define KEEL_TRADE_H

#include <stddef.h>
#include <stdint.h>

#include "keel/date.h"
#include "keel/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum keel_trade_reason {
  KEEL_REASON_INITIAL = 0, /* first allocation of the capital */
  KEEL_REASON_CALENDAR,    /* calendar rebalance */
  KEEL_REASON_BAND,        /* threshold band breached */
  KEEL_REASON_VOLTARGET,   /* volatility target */
  KEEL_REASON_DCA,         /* a DCA installment (contribution, withdrawal or cash put to work) */
  KEEL_REASON_STOP,        /* a stop rule fired */
  KEEL_REASON_REENTRY,     /* a stopped asset or sub-account re-entered */
  KEEL_REASON_STRATEGY     /* a strategy's on_bar asked for new weights */
} keel_trade_reason;

/* One executed trade. shares > 0 buys, < 0 sells; notional = shares * price
 * (signed); cost = proportional cost + fixed fee charged for this trade. */
typedef struct keel_trade {
  keel_date date;
  uint32_t asset; /* column in the panel */
  uint32_t sub;   /* sub-account index */
  keel_trade_reason reason;
  double shares;
  double price;
  double notional;
  double cost;
} keel_trade;

/* One rebalance: the sub-account's value just before and just after trading, at
 * the same prices. Money is conserved: value_before == value_after + costs. */
typedef struct keel_rebalance {
  keel_date date;
  uint32_t sub; /* sub-account index */
  keel_trade_reason reason;
  double value_before;
  double value_after;
  double costs;
  double traded;   /* gross traded notional, sum of |notional| */
  uint32_t ntrades;
} keel_rebalance;

/* Static name of a reason ("calendar"). */
KEEL_API const char *keel_trade_reason_name(keel_trade_reason r);

#ifdef __cplusplus
}
#endif
#endif
