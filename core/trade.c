/* keel — names of trade reasons and calendars. */
#include "keel/trade.h"

const char *keel_trade_reason_name(keel_trade_reason r) {
  switch (r) {
    case KEEL_REASON_INITIAL: return "initial";
    case KEEL_REASON_CALENDAR: return "calendar";
    case KEEL_REASON_BAND: return "band";
    case KEEL_REASON_VOLTARGET: return "vol_target";
    case KEEL_REASON_DCA: return "dca";
    case KEEL_REASON_STOP: return "stop";
    case KEEL_REASON_REENTRY: return "reentry";
    case KEEL_REASON_STRATEGY: return "strategy";
  }
  return "unknown";
}
