/** @file
 * @brief keel — run descriptions: an account and its sub-accounts' policies as a
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

/** @brief A parsed run description (opaque): the account spec and everything it points to. */
typedef struct keel_runspec keel_runspec;

/** @brief Parses a run description.
 * @param ctx the context
 * @param name used in messages ("run.json")
 * @param json the JSON text
 * @param len its length in bytes
 * @param closes the closing prices the symbols are resolved against
 * @param opens open prices (same dates and symbols as closes), or NULL;
 *        the "next_open" fill needs them
 * @param[out] out the runspec; NULL on failure
 * @return KEEL_OK; KEEL_EPARSE with name:line:column for malformed JSON;
 *         KEEL_EINVAL with the JSON path of the value for an unknown key, a
 *         wrong type, an unknown symbol or a value out of range
 *         ("run.json: subaccounts[1].band.abs: must be in (0, 1)");
 *         KEEL_ENOMEM
 * @see keel_runspec_parse_with */
KEEL_API keel_status keel_runspec_parse(keel_ctx *ctx, const char *name, const char *json, size_t len,
                                        const keel_panel *closes, const keel_panel *opens, keel_runspec **out);
/** @brief The same as @ref keel_runspec_parse, with a loader for strategies
 * given as {"lua": module, "params": {...}}.
 *
 * A module's own schedule applies when the sub-account gives none.
 * @param ctx the context
 * @param name used in messages
 * @param json the JSON text
 * @param len its length in bytes
 * @param closes the closing prices
 * @param opens open prices, or NULL
 * @param loader the loader (NULL: such a strategy is an error)
 * @param[out] out the runspec; NULL on failure
 * @return as keel_runspec_parse, and the loader's status */
KEEL_API keel_status keel_runspec_parse_with(keel_ctx *ctx, const char *name, const char *json, size_t len,
                                             const keel_panel *closes, const keel_panel *opens,
                                             const keel_strategy_loader *loader, keel_runspec **out);
/** @brief Frees a runspec and the strategies it made; NULL is a no-op.
 * @param rs the runspec */
KEEL_API void keel_runspec_free(keel_runspec *rs);

/** @brief The account to pass to @ref keel_backtest_run_account.
 * @param rs the runspec
 * @return the spec, borrowed, valid while rs lives */
KEEL_API const keel_account_spec *keel_runspec_account(const keel_runspec *rs);
/** @brief The description as canonical JSON (keys sorted, compact): the run's
 * parameters as stored.
 * @param rs the runspec
 * @return the JSON text, borrowed */
KEEL_API const char *keel_runspec_json(const keel_runspec *rs);
/** @brief What the targets come from.
 * @param rs the runspec
 * @return "fixed_weights" or a built-in strategy's name for one
 *         sub-account; "name:what,name:what" for several; borrowed */
KEEL_API const char *keel_runspec_strategy(const keel_runspec *rs);

#ifdef __cplusplus
}
#endif
#endif
