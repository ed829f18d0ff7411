/* keel — the backtest engine as a reusable object (private to the
 * library): set up once for a panel and an account, then run again and
 * again while the panel's prices change in place (the stress runner plays
 * each simulated path through it). keel_backtest_run_account is one
 * keeli_engine_new + keeli_engine_run. */
#ifndef KEEL_ENGINE_INTERNAL_H
#define KEEL_ENGINE_INTERNAL_H

#include "keel/backtest.h"

typedef struct keeli_engine keeli_engine;

/* Checks spec against panel and allocates everything a run needs. The
 * panel and the spec are borrowed and must outlive the engine; the
 * panel's shape, dates and symbols must not change. metrics = 0 skips the
 * metrics after each run. */
keel_status keeli_engine_new(keel_ctx *ctx, const keel_panel *panel, const keel_account_spec *spec, int metrics,
                             keeli_engine **out);
/* Liquidity per row of the run (n = end - start values each, borrowed):
 * the commission and slippage rates times cost_mult[t], the half spread
 * times spread_mult[t]. NULL: the cost model as given. */
void keeli_engine_set_liquidity(keeli_engine *e, const double *cost_mult, const double *spread_mult);
/* Quiet rows (on by default): a row on which only the band test can act
 * (no schedule due, no DCA plan, stop rule, volatility target or on_bar,
 * fills at the close, prices straight from the panel, no liquidity
 * multipliers) runs a short path that leaves out the steps that cannot
 * act; it gives the same bits as the general steps, which off forces (the
 * tests compare the two). */
void keeli_engine_set_quiet(keeli_engine *e, int on);
/* The hand-written vector code up to level cap (a KEELI_SIMD_ level of
 * core/internal.h; the machine's widest by default): AVX2 for the quiet
 * rows' marking and band test, runs of quiet rows, the cost equation's
 * sums, and AVX-512 for runs of quiet rows; or the portable code
 * everywhere (KEELI_SIMD_PORTABLE). The same bits at every level (the
 * tests compare them). */
void keeli_engine_set_simd(keeli_engine *e, int cap);
/* The sub-account rows of the last run that took the quiet path. */
size_t keeli_engine_quiet_rows(const keeli_engine *e);
/* Runs the account on the panel's current prices, from a fresh state.
 * The result (keeli_engine_result) is overwritten by each run. */
keel_status keeli_engine_run(keeli_engine *e, keel_ctx *ctx);
const keel_backtest_result *keeli_engine_result(const keeli_engine *e);
void keeli_engine_free(keeli_engine *e);

#endif
