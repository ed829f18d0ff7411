/* keel — run descriptions: an account and its sub-accounts' policies as a
 * JSON object (backtest/).
 *
 * keel_runspec_parse reads the JSON text of a run description (the schema
 * is in docs/formats.md, "Run descriptions") against a price panel and
 * builds the keel_account_spec it describes; the runspec owns everything
 * the spec points to: names, asset lists, weights, DCA plans, stop rules
 * and the strategy instances. Symbols are resolved against the panel.
 *
 * A strategy instance belongs to one run at a time and its state changes
 * while it runs, so a runspec is for one run: parse again for another.
 * The panel must outlive the runspec only while the spec is used with it.
 */
#ifndef KEEL_RUNSPEC_H
#define KEEL_RUNSPEC_H

#include <stddef.h>

#include "keel/backtest.h"
#include "keel/ctx.h"
#include "keel/panel.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct keel_runspec keel_runspec;

/* Parses len bytes of JSON (a run description). name is used in messages
 * ("run.json"). opens (same dates and symbols as closes) may be NULL; the
 * "next_open" fill needs it. Malformed JSON is KEEL_EPARSE with
 * name:line:column; an unknown key, a wrong type, an unknown symbol or a
 * value out of range is KEEL_EINVAL with the JSON path of the value
 * ("run.json: subaccounts[1].band.abs: must be in (0, 1)"). On failure
 * *out is NULL. */
KEEL_API keel_status keel_runspec_parse(keel_ctx *ctx, const char *name, const char *json, size_t len,
                                        const keel_panel *closes, const keel_panel *opens, keel_runspec **out);
/* The same, with a loader for strategies given as {"lua": module,
 * "params": {...}} (NULL: such a strategy is an error). A module's own
 * schedule applies when the sub-account gives none. */
KEEL_API keel_status keel_runspec_parse_with(keel_ctx *ctx, const char *name, const char *json, size_t len,
                                             const keel_panel *closes, const keel_panel *opens,
                                             const keel_strategy_loader *loader, keel_runspec **out);
KEEL_API void keel_runspec_free(keel_runspec *rs);

/* The account to pass to keel_backtest_run_account; borrowed. */
KEEL_API const keel_account_spec *keel_runspec_account(const keel_runspec *rs);
/* The description as canonical JSON (keys sorted, compact): the run's
 * parameters as stored. */
KEEL_API const char *keel_runspec_json(const keel_runspec *rs);
/* What the targets come from: "fixed_weights" or a built-in strategy's
 * name for one sub-account; "name:what,name:what" for several. */
KEEL_API const char *keel_runspec_strategy(const keel_runspec *rs);

#ifdef __cplusplus
}
#endif
#endif
