/** @file
 * @brief keel — advice for backends: a user profile and holdings in; target
 * sub-account baskets, a trade list, a plain-language explanation with
 * fees out.
 *
 * A keel_template is a recommendation template (a Lua module, see
 * docs/templates.md) compiled once, with a pool of prepared sandboxed
 * states. keel_advise may be called on one template from many threads at
 * once: each call takes a state from the pool (or prepares a new one),
 * runs the template's module chunk afresh in it, so nothing a previous call
 * left behind is visible, and gives the state back. Each thread passes its
 * own keel_ctx.
 */
#ifndef KEEL_ADVICE_H
#define KEEL_ADVICE_H

#include <stddef.h>

#include "keel/ctx.h"
#include "keel/lua.h"
#include "keel/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- inputs ---- */

/** @brief What the money is for. */
typedef enum keel_goal {
  KEEL_GOAL_GENERAL = 0, /**< "general" */
  KEEL_GOAL_TRAVEL,      /**< "travel" */
  KEEL_GOAL_EDUCATION,   /**< "education" */
  KEEL_GOAL_RETIREMENT   /**< "retirement" */
} keel_goal;

/** @brief Name of a goal.
 * @param g the goal
 * @return a static string: "general", "travel", "education", "retirement"
 *         ("?" out of range) */
KEEL_API const char *keel_goal_name(keel_goal g);
/** @brief Parses a goal.
 * @param s general/travel/education/retirement
 * @param[out] out the goal, on success
 * @return 0 on success, else -1 */
KEEL_API int keel_goal_parse(const char *s, keel_goal *out);

/** @brief One answer of the risk questionnaire. */
typedef struct keel_answer {
  const char *question; /**< a questionnaire id (docs/templates.md) */
  int answer;           /**< 1-based */
} keel_answer;

/** @brief The client (defaults, from @ref keel_profile_default, in parentheses). */
typedef struct keel_profile {
  int age;              /**< 18 .. 120 (40) */
  double horizon;       /**< years until the money is needed, (0, 100] (10) */
  int risk_score;       /**< 1 .. 10, or 0 to score the answers (5) */
  const keel_answer *answers; /**< questionnaire answers (when risk_score is 0) */
  size_t nanswers;      /**< number of answers */
  keel_goal goal;       /**< what the money is for (general) */
  double initial;       /**< new money paid in now, >= 0 */
  double monthly;       /**< monthly contribution, >= 0 */
  double liquidity;     /**< money that must stay available in cash, >= 0 */
  double goal_amount;   /**< the wealth the goal needs by the horizon (0: none given) */
} keel_profile;

/** @brief Fills p with the defaults given in keel_profile.
 * @param[out] p the profile */
KEEL_API void keel_profile_default(keel_profile *p);

/** @brief What the client holds now. */
typedef struct keel_position {
  const char *symbol; /**< the symbol */
  double shares;      /**< finite, >= 0 */
} keel_position;

/** @brief Today's market for a symbol. */
typedef struct keel_quote {
  const char *symbol;   /**< the symbol */
  double price;         /**< > 0 */
  double lot;           /**< shares per lot (0: any fraction) */
  double min_trade;     /**< smallest trade in money (0) */
  double expense_ratio; /**< yearly fund fee as a fraction, or NaN for the template's default */
} keel_quote;

/** @brief Everything an advice is made from (@ref keel_advice_input_default). */
typedef struct keel_advice_input {
  const keel_profile *profile;   /**< the client */
  const keel_position *holdings; /**< what the client holds */
  size_t nholdings;           /**< number of holdings */
  double cash;                /**< cash held now, >= 0 */
  const keel_quote *quotes;   /**< every symbol of the template's universe and of the holdings */
  size_t nquotes;             /**< number of quotes */
  keel_cost_model costs;      /**< trading costs (keel_cost_model_default(): none) */
  /** The odds of reaching the goal (with goal_amount > 0): the plan's
   * sub-accounts (baskets, rebalance schedules and bands, monthly DCA)
   * played through goal_paths monthly paths bootstrapped from this price
   * history over the horizon (docs/stress.md). NULL: not computed. */
  const keel_panel *history;
  size_t goal_paths;          /**< (0: 1000) */
  uint64_t goal_seed;         /**< stream seed of the paths (0: the context's) */
} keel_advice_input;

/** @brief Fills in with the defaults: nothing given, no costs.
 * @param[out] in the input */
KEEL_API void keel_advice_input_default(keel_advice_input *in);

/* ---- templates ---- */

/** @brief A compiled recommendation template (opaque) with its pool of
 * sandboxed states; may be used from many threads at once. */
typedef struct keel_template keel_template;

/** @brief Compiles a template and checks it once in a fresh sandbox: it must
 * return a table with name, universe, advise and explain.
 * @param ctx the context
 * @param cfg the sandboxes' configuration (copied), or NULL for the
 *        defaults; require looks in the template's own folder first, then
 *        in cfg->paths
 * @param template_name a file path, or a module name found in cfg->paths
 * @param[out] out the template; NULL on failure
 * @return KEEL_OK; KEEL_EIO for a path that cannot be opened or read;
 *         KEEL_EINVAL for a module name not found; KEEL_ELUA / KEEL_ELIMIT
 *         for a script that fails, breaks a limit or is not a template;
 *         KEEL_ENOMEM */
KEEL_API keel_status keel_template_load(keel_ctx *ctx, const keel_lua_config *cfg, const char *template_name,
                                        keel_template **out);
/** @brief Frees a template and its pool; NULL is a no-op. No keel_advise()
 * on it may be running.
 * @param t the template */
KEEL_API void keel_template_free(keel_template *t);
/** @brief The template's name field.
 * @param t the template
 * @return the name, borrowed */
KEEL_API const char *keel_template_name(const keel_template *t);
/** @brief Number of symbols in the template's universe.
 * @param t the template
 * @return nuniverse */
KEEL_API size_t keel_template_nuniverse(const keel_template *t);
/** @brief Symbol i of the template's universe.
 * @param t the template
 * @param i < nuniverse
 * @return the symbol, borrowed; NULL for i out of range */
KEEL_API const char *keel_template_symbol(const keel_template *t, size_t i);

/* ---- advice ---- */

/** @brief An advice (opaque): the plan, its trades, costs, fees and explanation. */
typedef struct keel_advice keel_advice;

/** @brief One trade of an advice. */
typedef struct keel_advice_trade {
  const char *symbol; /**< the symbol */
  double shares;   /**< > 0 buys */
  double price;    /**< the quote's price */
  double notional; /**< shares * price */
  double cost;     /**< proportional costs and the fee */
} keel_advice_trade;

/** @brief Runs the template for a profile and holdings.
 *
 * Validates the profile, runs advise and explain in a pooled sandbox,
 * checks the plan (baskets over the quotes' symbols, weights >= 0 summing
 * to at most 1, amounts >= 0 adding up to the money to place), and
 * computes the trades from the holdings to the combined baskets with the
 * costs, lots and minimums of the quotes, through the backtest engine
 * (value before = value after + costs). Thread-safe on one template, each
 * thread with its own ctx.
 * @param ctx the calling thread's context
 * @param t the template
 * @param in the profile, holdings, quotes and options
 * @param[out] out the advice; NULL on failure
 * @return KEEL_OK; KEEL_EINVAL naming the field for a bad profile, holding
 *         or quote (a symbol without a quote too); KEEL_ELUA for a script
 *         error or a plan that fails the checks; KEEL_ELIMIT for a script
 *         that breaks a sandbox limit; KEEL_ENOMEM */
KEEL_API keel_status keel_advise(keel_ctx *ctx, keel_template *t, const keel_advice_input *in, keel_advice **out);
/** @brief Frees an advice; NULL is a no-op.
 * @param a the advice */
KEEL_API void keel_advice_free(keel_advice *a);

/** @brief The risk score used: the profile's, or the one scored from its answers.
 * @param a the advice
 * @return 1 .. 10 */
KEEL_API int keel_advice_risk_score(const keel_advice *a);
/** @brief The money advised on.
 * @param a the advice
 * @return holdings + cash + initial, at the quotes */
KEEL_API double keel_advice_total(const keel_advice *a);
/** @brief Costs of the trades.
 * @param a the advice
 * @return proportional costs and fees */
KEEL_API double keel_advice_trade_costs(const keel_advice *a);
/** @brief Fund fees a year, from the plan (the fees the template's advise
 * returns, docs/templates.md).
 * @param a the advice
 * @return the fees, >= 0 */
KEEL_API double keel_advice_yearly_fees(const keel_advice *a);
/** @brief Cash left after the trades.
 * @param a the advice
 * @return the cash */
KEEL_API double keel_advice_cash_after(const keel_advice *a);
/** @brief With a history and a goal amount: the share of paths whose wealth
 * at the horizon reaches the goal.
 * @param a the advice
 * @return the share, or NaN when not computed */
KEEL_API double keel_advice_goal_probability(const keel_advice *a);
/** @brief With a history and a goal amount: a quantile of the wealth at the horizon.
 * @param a the advice
 * @param q 0.05, 0.5 or 0.95
 * @return the quantile; NaN when not computed or for another q */
KEEL_API double keel_advice_goal_wealth(const keel_advice *a, double q);
/** @brief The plain-language explanation the template's explain wrote.
 * @param a the advice
 * @return the text ("" if none), borrowed */
KEEL_API const char *keel_advice_explanation(const keel_advice *a);
/** @brief Number of trades.
 * @param a the advice
 * @return ntrades */
KEEL_API size_t keel_advice_ntrades(const keel_advice *a);
/** @brief The trades.
 * @param a the advice
 * @return ntrades trades, borrowed */
KEEL_API const keel_advice_trade *keel_advice_trades(const keel_advice *a);

/* Sub-accounts of the plan: name, purpose, amount and basket. */

/** @brief Number of sub-accounts of the plan.
 * @param a the advice
 * @return nsubs */
KEEL_API size_t keel_advice_nsubs(const keel_advice *a);
/** @brief Name of sub-account s.
 * @param a the advice
 * @param s < nsubs
 * @return the name, borrowed; NULL for s out of range */
KEEL_API const char *keel_advice_sub_name(const keel_advice *a, size_t s);
/** @brief Purpose of sub-account s.
 * @param a the advice
 * @param s < nsubs
 * @return the purpose ("" if none), borrowed; NULL for s out of range */
KEEL_API const char *keel_advice_sub_purpose(const keel_advice *a, size_t s);
/** @brief Money placed in sub-account s.
 * @param a the advice
 * @param s < nsubs
 * @return the amount; NaN for s out of range */
KEEL_API double keel_advice_sub_amount(const keel_advice *a, size_t s);
/** @brief Number of weights in sub-account s's basket.
 * @param a the advice
 * @param s < nsubs
 * @return the count; 0 for s out of range */
KEEL_API size_t keel_advice_sub_nweights(const keel_advice *a, size_t s);
/** @brief Symbol of the k-th weight of sub-account s's basket.
 * @param a the advice
 * @param s < nsubs
 * @param k < keel_advice_sub_nweights(a, s)
 * @return the symbol, borrowed; NULL out of range */
KEEL_API const char *keel_advice_sub_symbol(const keel_advice *a, size_t s, size_t k);
/** @brief The k-th weight of sub-account s's basket.
 * @param a the advice
 * @param s < nsubs
 * @param k < keel_advice_sub_nweights(a, s)
 * @return the weight; NaN out of range */
KEEL_API double keel_advice_sub_weight(const keel_advice *a, size_t s, size_t k);

/** @brief The whole advice as a JSON object (docs/templates.md): the
 * sub-accounts with their baskets, policies, DCA plans and stops, the
 * trades, costs, fees and explanation.
 * @param ctx the context
 * @param a the advice
 * @param[out] json the text, allocated with malloc; free() it
 * @return KEEL_OK; KEEL_ENOMEM */
KEEL_API keel_status keel_advice_to_json(keel_ctx *ctx, const keel_advice *a, char **json);

/** @brief Runs keel_advise() on JSON inputs.
 *
 * A profile object ({"age":.., "horizon":.., "risk_score" or "answers",
 * "goal", "initial", "monthly", "liquidity", "goal_amount"}; unknown
 * fields are errors), holdings ({"cash":.., "positions": {"SYM": shares}})
 * and quotes ({"SYM": {"price":.., "lot":.., "min_trade":..,
 * "expense_ratio":..}} or {"SYM": price}). docs/formats.md gives every
 * field.
 * @param ctx the calling thread's context
 * @param t the template
 * @param profile_json the profile (required)
 * @param holdings_json the holdings, or NULL for none
 * @param quotes_json the quotes (required)
 * @param opts the costs, the history and the goal paths and seed, or NULL;
 *        its profile, holdings and quotes are ignored
 * @param[out] out the advice; NULL on failure
 * @return KEEL_OK; KEEL_EPARSE with line:column for malformed JSON or a
 *         document that is not an object; KEEL_EINVAL naming the field for
 *         a wrong type, an unknown field or a bad value; as keel_advise()
 *         otherwise */
KEEL_API keel_status keel_advise_json(keel_ctx *ctx, keel_template *t, const char *profile_json,
                                      const char *holdings_json, const char *quotes_json,
                                      const keel_advice_input *opts, keel_advice **out);

#ifdef __cplusplus
}
#endif
#endif
