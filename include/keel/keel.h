/** @file
 * @brief keel — portfolio strategy and rebalancing. Includes every public header.
 */
#ifndef KEEL_H
#define KEEL_H

#include "keel/version.h"
#include "keel/status.h"
#include "keel/ctx.h"
#include "keel/date.h"
#include "keel/panel.h"
#include "keel/trade.h"
#include "keel/metrics.h"
#include "keel/policy.h"
#include "keel/strategy.h"
#include "keel/backtest.h"
#include "keel/runspec.h"
#include "keel/record.h"
#include "keel/batch.h"
#include "keel/store.h"
#include "keel/sample.h"
#include "keel/matrix.h"
#include "keel/estimate.h"
#include "keel/qp.h"
#include "keel/mv.h"
#include "keel/mc.h"
#include "keel/stress.h"
#include "keel/report.h"
#include "keel/lua.h"
#include "keel/advice.h"

#endif
