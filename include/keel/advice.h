/* keel — advice for backends: a user profile and holdings in; target
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

typedef enum keel_goal {
  KEEL_GOAL_GENERAL = 0,
  KEEL_GOAL_TRAVEL,
  KEEL_GOAL_EDUCATION,
  KEEL_GOAL_RETIREMENT
} keel_goal;

KEEL_API const char *keel_goal_name(keel_goal g);
KEEL_API int keel_goal_parse(const char *s, keel_goal *out);

typedef struct keel_answer {
  const char *question; /* a questionnaire id (docs/templates.md) */
  int answer;           /* 1-based */
} keel_answer;

typedef struct keel_profile {
  int age;              /* 18 .. 120 */
  double horizon;       /* years until the money is needed, (0, 100] */
  int risk_score;       /* 1 .. 10, or 0 to score the answers */
  const keel_answer *answers; /* questionnaire answers (when risk_score is 0) */
  size_t nanswers;
  keel_goal goal;
  double initial;       /* new money paid in now, >= 0 */
  double monthly;       /* monthly contribution, >= 0 */
  double liquidity;     /* money that must stay available in cash, >= 0 */
} keel_profile;

KEEL_API void keel_profile_default(keel_profile *p);

/* What the client holds now. */
typedef struct keel_position {
  const char *symbol;
  double shares; /* finite, >= 0 */
} keel_position;

/* Today's market for a symbol. */
typedef struct keel_quote {
  const char *symbol;
  double price;         /* > 0 */
  double lot;           /* shares per lot (0: any fraction) */
  double min_trade;     /* smallest trade in money (0) */
  double expense_ratio; /* yearly fund fee as a fraction, or NaN for the template's default */
} keel_quote;

typedef struct keel_advice_input {
  const keel_profile *profile;
  const keel_position *holdings;
  size_t nholdings;
  double cash;                /* cash held now, >= 0 */
  const keel_quote *quotes;   /* every symbol of the template's universe and of the holdings */
  size_t nquotes;
  keel_cost_model costs;      /* trading costs (keel_cost_model_default: none) */
} keel_advice_input;

KEEL_API void keel_advice_input_default(keel_advice_input *in);

/* ---- templates ---- */

typedef struct keel_template keel_template;

/* Compiles a template (a file path, or a module name found in cfg->paths)
 * and checks it once in a fresh sandbox: it must return a table with
 * name, universe, advise and explain. */
KEEL_API keel_status keel_template_load(keel_ctx *ctx, const keel_lua_config *cfg, const char *template_name,
                                        keel_template **out);
KEEL_API void keel_template_free(keel_template *t);
KEEL_API const char *keel_template_name(const keel_template *t);
KEEL_API size_t keel_template_nuniverse(const keel_template *t);
KEEL_API const char *keel_template_symbol(const keel_template *t, size_t i);

/* ---- advice ---- */

typedef struct keel_advice keel_advice;

typedef struct keel_advice_trade {
  const char *symbol;
  double shares;   /* > 0 buys */
  double price;
  double notional; /* shares * price */
  double cost;     /* proportional costs and the fee */
} keel_advice_trade;

/* Runs the template for a profile and holdings: validates the profile
 * (KEEL_EINVAL naming the field), runs advise and explain in a pooled
 * sandbox (KEEL_ELUA / KEEL_ELIMIT on a script failure), checks the plan
 * (baskets over the quotes' symbols, weights >= 0 summing to at most 1,
 * amounts >= 0 adding up to the money to place), and computes the trades
 * from the holdings to the combined baskets with the costs, lots and
 * minimums of the quotes, through the backtest engine (value before =
 * value after + costs). */
KEEL_API keel_status keel_advise(keel_ctx *ctx, keel_template *t, const keel_advice_input *in, keel_advice **out);
KEEL_API void keel_advice_free(keel_advice *a);

KEEL_API int keel_advice_risk_score(const keel_advice *a);
KEEL_API double keel_advice_total(const keel_advice *a);        /* holdings + cash + initial, at the quotes */
KEEL_API double keel_advice_trade_costs(const keel_advice *a);  /* costs of the trades */
KEEL_API double keel_advice_yearly_fees(const keel_advice *a);  /* fund fees a year, from the plan */
KEEL_API double keel_advice_cash_after(const keel_advice *a);
KEEL_API const char *keel_advice_explanation(const keel_advice *a);
KEEL_API size_t keel_advice_ntrades(const keel_advice *a);
KEEL_API const keel_advice_trade *keel_advice_trades(const keel_advice *a);

/* Sub-accounts of the plan: name, purpose, amount and basket. */
KEEL_API size_t keel_advice_nsubs(const keel_advice *a);
KEEL_API const char *keel_advice_sub_name(const keel_advice *a, size_t s);
KEEL_API const char *keel_advice_sub_purpose(const keel_advice *a, size_t s);
KEEL_API double keel_advice_sub_amount(const keel_advice *a, size_t s);
KEEL_API size_t keel_advice_sub_nweights(const keel_advice *a, size_t s);
KEEL_API const char *keel_advice_sub_symbol(const keel_advice *a, size_t s, size_t k);
KEEL_API double keel_advice_sub_weight(const keel_advice *a, size_t s, size_t k);

/* The whole advice as a JSON object (docs/templates.md): the plan as the
 * template gave it (policies, DCA, stops included) plus the trades, costs,
 * fees and explanation. *json is allocated with malloc; free() it. */
KEEL_API keel_status keel_advice_to_json(keel_ctx *ctx, const keel_advice *a, char **json);

/* JSON in: a profile object ({"age":.., "horizon":.., "risk_score" or
 * "answers", "goal", "initial", "monthly", "liquidity"}; unknown fields are
 * errors), holdings ({"cash":.., "positions": {"SYM": shares}}) and quotes
 * ({"SYM": {"price":.., "lot":.., "min_trade":.., "expense_ratio":..}} or
 * {"SYM": price}). name is used in messages. Runs keel_advise. */
KEEL_API keel_status keel_advise_json(keel_ctx *ctx, keel_template *t, const char *profile_json,
                                      const char *holdings_json, const char *quotes_json,
                                      const keel_cost_model *costs, keel_advice **out);

#ifdef __cplusplus
}
#endif
#endif
