/* Advice: the standard template against its documented rules (computed
 * here in C), the trade list (money conserved, lots, minimums, no negative
 * cash), profile and plan checks, pooled-state isolation, a hostile
 * template, JSON in and out, and 8 threads on one template (the suite's
 * ThreadSanitizer build runs this file too). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/advice.h"
#include "keel_test.h"

static const char *const UNIVERSE[] = {"CASH", "BOND", "EQUITY", "EM_EQUITY", "GOLD", "CRYPTO"};
static const double PRICES[] = {127.5099, 141.7317, 216.9675, 179.8098, 1829.5233, 8614.107};

static keel_template *load_standard(void) {
  keel_lua_config cfg;
  keel_lua_config_default(&cfg);
  keel_template *t = NULL;
  assert_ok(CTX, keel_template_load(CTX, &cfg, keel_test_source_path("strategies/templates/standard.lua"), &t));
  return t;
}

static void quotes(keel_quote *q, double lot, double min_trade) {
  for (size_t i = 0; i < 6; i++)
    q[i] = (keel_quote){UNIVERSE[i], PRICES[i], lot, min_trade, NAN};
}

/* An input for profile p over the six quotes q. */
static keel_advice_input six_assets(const keel_profile *p, const keel_quote *q) {
  keel_advice_input in;
  keel_advice_input_default(&in);
  in.profile = p;
  in.quotes = q;
  in.nquotes = 6;
  return in;
}

static double clampd(double x, double a, double b) { return x < a ? a : x > b ? b : x; }

/* The documented rules of docs/templates.md, written out again in C. */
typedef struct expect {
  double reserve, core, satellite;
  double w[6]; /* core weights in UNIVERSE order */
} expect;

static expect standard_rules(const keel_profile *p, double total) {
  expect e;
  memset(&e, 0, sizeof e);
  int r = p->risk_score;
  double h = p->horizon;
  e.reserve = fmin(p->liquidity, total);
  double invest = total - e.reserve;
  double eq = (0.10 + 0.08 * (r - 1)) * clampd((h - 1) / 14, 0, 1);
  if (p->goal == KEEL_GOAL_RETIREMENT) eq = fmin(eq, clampd((110.0 - p->age) / 100, 0, 1));
  double sat = (r >= 8 && h >= 5 && p->goal != KEEL_GOAL_TRAVEL) ? 0.02 * (r - 7) : 0;
  e.satellite = invest * sat;
  e.core = invest - e.satellite;
  double shortp = clampd(1 - (h - 1) / 9, 0, 1), gold = h >= 3 ? 0.1 * (1 - eq) : 0, rest = 1 - eq - gold;
  e.w[0] = rest * shortp;
  e.w[1] = rest * (1 - shortp);
  e.w[2] = 0.75 * eq;
  e.w[3] = 0.25 * eq;
  e.w[4] = gold;
  return e;
}

static long sub_index(const keel_advice *a, const char *name) {
  for (size_t s = 0; s < keel_advice_nsubs(a); s++)
    if (!strcmp(keel_advice_sub_name(a, s), name)) return (long)s;
  return -1;
}

static double sub_weight(const keel_advice *a, size_t s, const char *sym) {
  for (size_t k = 0; k < keel_advice_sub_nweights(a, s); k++)
    if (!strcmp(keel_advice_sub_symbol(a, s, k), sym)) return keel_advice_sub_weight(a, s, k);
  return 0;
}

/* Checks an advice against the rules and the trade-list invariants. */
static void check_advice(const keel_advice *a, const keel_advice_input *in) {
  const keel_profile *p = in->profile;
  double total = in->cash + p->initial;
  for (size_t i = 0; i < in->nholdings; i++)
    for (size_t j = 0; j < in->nquotes; j++)
      if (!strcmp(in->holdings[i].symbol, in->quotes[j].symbol)) total += in->holdings[i].shares * in->quotes[j].price;
  assert_close(keel_advice_total(a), total, 1e-15, 0);
  assert_int_equal(keel_advice_risk_score(a), p->risk_score);
  expect e = standard_rules(p, total);
  long rs = sub_index(a, "reserve"), cs = sub_index(a, "core"), ss = sub_index(a, "satellite");
  assert_close(rs >= 0 ? keel_advice_sub_amount(a, (size_t)rs) : 0, e.reserve, 1e-12, 1e-9);
  assert_close(ss >= 0 ? keel_advice_sub_amount(a, (size_t)ss) : 0, e.satellite, 1e-12, 1e-9);
  assert_true(cs >= 0 || e.core == 0);
  if (cs >= 0) {
    assert_close(keel_advice_sub_amount(a, (size_t)cs), e.core, 1e-12, 1e-9);
    for (size_t k = 0; k < 6; k++) assert_close(sub_weight(a, (size_t)cs, UNIVERSE[k]), e.w[k], 1e-12, 1e-15);
  }
  /* trades: money conserved, lots, minimums, cash >= 0 */
  double held[6] = {0}, cost = 0, cash = in->cash + p->initial;
  for (size_t i = 0; i < in->nholdings; i++)
    for (size_t j = 0; j < 6; j++)
      if (!strcmp(in->holdings[i].symbol, UNIVERSE[j])) held[j] = in->holdings[i].shares;
  for (size_t i = 0; i < keel_advice_ntrades(a); i++) {
    const keel_advice_trade *t = &keel_advice_trades(a)[i];
    size_t j = 0;
    while (strcmp(UNIVERSE[j], t->symbol)) j++;
    assert_close(t->notional, t->shares * t->price, 1e-15, 0);
    assert_close(t->price, PRICES[j], 0, 0);
    if (in->quotes[j].lot > 0) {
      double lots = t->shares / in->quotes[j].lot;
      assert_close(lots, round(lots), 0, 1e-9);
    }
    assert_true(fabs(t->notional) >= in->quotes[j].min_trade);
    held[j] += t->shares;
    cash -= t->notional + t->cost;
    cost += t->cost;
  }
  assert_close(keel_advice_trade_costs(a), cost, 1e-12, 1e-12);
  assert_close(keel_advice_cash_after(a), cash, 1e-12, 1e-9);
  assert_true(keel_advice_cash_after(a) >= -1e-9);
  double after = keel_advice_cash_after(a);
  for (size_t j = 0; j < 6; j++) {
    assert_true(held[j] >= -1e-12);
    after += held[j] * PRICES[j];
  }
  assert_close(total, after + cost, 1e-9, 0);
}

static void test_standard_rules(void **state) {
  (void)state;
  keel_template *t = load_standard();
  assert_string_equal(keel_template_name(t), "standard");
  assert_int_equal(keel_template_nuniverse(t), 6);
  keel_quote q[6];
  quotes(q, 0, 0);
  static const struct {
    int age, risk;
    double horizon, initial, monthly, liquidity;
    keel_goal goal;
  } cases[] = {
      {35, 8, 25, 100000, 500, 5000, KEEL_GOAL_RETIREMENT}, {62, 6, 4, 250000, 0, 20000, KEEL_GOAL_RETIREMENT},
      {20, 9, 2, 3000, 100, 0, KEEL_GOAL_TRAVEL},           {40, 10, 18, 50000, 300, 0, KEEL_GOAL_EDUCATION},
      {30, 1, 0.5, 10000, 0, 20000, KEEL_GOAL_GENERAL},     {50, 5, 9, 75000, 1000, 2000, KEEL_GOAL_GENERAL},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    keel_profile p;
    keel_profile_default(&p);
    p.age = cases[c].age;
    p.risk_score = cases[c].risk;
    p.horizon = cases[c].horizon;
    p.initial = cases[c].initial;
    p.monthly = cases[c].monthly;
    p.liquidity = cases[c].liquidity;
    p.goal = cases[c].goal;
    keel_advice_input in = six_assets(&p, q);
    in.costs.buy_bps = in.costs.sell_bps = 10;
    in.costs.fee = 1;
    keel_advice *a = NULL;
    assert_ok(CTX, keel_advise(CTX, t, &in, &a));
    check_advice(a, &in);
    const char *x = keel_advice_explanation(a);
    char want[64];
    snprintf(want, sizeof want, "risk score is %d out of 10", p.risk_score);
    assert_non_null(strstr(x, want));
    assert_non_null(strstr(x, "Fund fees come to about"));
    keel_advice_free(a);
  }
  keel_template_free(t);
}

/* From holdings, with lots and minimum trades: sales and purchases, whole
 * lots, nothing below the minimum; holdings already on target trade
 * nothing. */
static void test_holdings_lots(void **state) {
  (void)state;
  keel_template *t = load_standard();
  keel_quote q[6];
  quotes(q, 1, 200);
  q[5].lot = 0.001; /* crypto trades in thousandths */
  keel_profile p;
  keel_profile_default(&p);
  p.age = 45;
  p.risk_score = 9;
  p.horizon = 20;
  p.goal = KEEL_GOAL_RETIREMENT;
  p.initial = 5000;
  keel_position pos[] = {{"EQUITY", 300}, {"BOND", 10}, {"CRYPTO", 1.5}};
  keel_advice_input in;
  keel_advice_input_default(&in);
  in.profile = &p;
  in.holdings = pos;
  in.nholdings = 3;
  in.cash = 1234.5;
  in.quotes = q;
  in.nquotes = 6;
  in.costs.buy_bps = 5;
  in.costs.sell_bps = 15;
  in.costs.fee = 2.5;
  keel_advice *a = NULL;
  assert_ok(CTX, keel_advise(CTX, t, &in, &a));
  check_advice(a, &in);
  int sold = 0, bought = 0;
  for (size_t i = 0; i < keel_advice_ntrades(a); i++) {
    sold |= keel_advice_trades(a)[i].shares < 0;
    bought |= keel_advice_trades(a)[i].shares > 0;
  }
  assert_true(sold && bought);
  assert_non_null(strstr(keel_advice_explanation(a), "of sales"));
  /* now hold what was advised: what trades then is only what lot
   * rounding and the minimum left over */
  keel_position after[6];
  size_t na = 0;
  double hu[6] = {0, 10, 300, 0, 0, 1.5}; /* the holdings above, in UNIVERSE order */
  for (size_t i = 0; i < keel_advice_ntrades(a); i++) {
    const keel_advice_trade *tr = &keel_advice_trades(a)[i];
    for (size_t j = 0; j < 6; j++)
      if (!strcmp(tr->symbol, UNIVERSE[j])) hu[j] += tr->shares;
  }
  for (size_t j = 0; j < 6; j++)
    if (hu[j] > 0) after[na++] = (keel_position){UNIVERSE[j], hu[j]};
  keel_advice_input in2 = in;
  in2.holdings = after;
  in2.nholdings = na;
  in2.cash = keel_advice_cash_after(a);
  p.initial = 0;
  keel_advice *b = NULL;
  assert_ok(CTX, keel_advise(CTX, t, &in2, &b));
  check_advice(b, &in2);
  for (size_t i = 0; i < keel_advice_ntrades(b); i++) assert_true(fabs(keel_advice_trades(b)[i].notional) < 2 * 1829.53);
  keel_advice_free(a);
  keel_advice_free(b);
  keel_template_free(t);
}

static void test_profile_checks(void **state) {
  (void)state;
  keel_template *t = load_standard();
  keel_quote q[6];
  quotes(q, 0, 0);
  keel_profile p;
  keel_advice_input in;
  keel_advice *a = NULL;
#define BAD(field_set, needle)                                        \
  do {                                                                \
    keel_profile_default(&p);                                         \
    p.initial = 1000;                                                 \
    keel_advice_input_default(&in);                                   \
    in.profile = &p;                                                  \
    in.quotes = q;                                                    \
    in.nquotes = 6;                                                   \
    field_set;                                                        \
    assert_status(CTX, keel_advise(CTX, t, &in, &a), KEEL_EINVAL);    \
    assert_null(a);                                                   \
    assert_errmsg(CTX, needle);                                       \
  } while (0)
  BAD(p.age = 12, "age 12 must be from 18 to 120");
  BAD(p.horizon = 0, "horizon 0 must be more than 0");
  BAD(p.horizon = NAN, "horizon nan");
  BAD(p.risk_score = 11, "risk_score 11 must be from 1 to 10");
  BAD(p.risk_score = 0, "give a risk_score or the questionnaire answers");
  BAD(p.initial = -5, "initial -5 must be a finite amount");
  BAD(p.monthly = INFINITY, "monthly inf");
  BAD(p.initial = 0, "nothing to place");
  BAD((in.cash = 0, q[2].price = -1), "EQUITY price -1 must be finite and > 0");
  q[2].price = PRICES[2];
  BAD(in.nquotes = 5, "no quote for CRYPTO, which template standard uses");
  keel_position pos[] = {{"EQUITY", 1}, {"EQUITY", 2}};
  BAD((in.holdings = pos, in.nholdings = 2), "EQUITY is listed twice");
  pos[1] = (keel_position){"BOND", -3};
  BAD((in.holdings = pos, in.nholdings = 2), "BOND shares -3 must be finite and >= 0");
  BAD(in.cash = NAN, "cash nan must be a finite amount");
  /* a questionnaire answer out of range is the template's error */
  keel_profile_default(&p);
  p.risk_score = 0;
  keel_answer ans[] = {{"horizon", 9}};
  p.answers = ans;
  p.nanswers = 1;
  p.initial = 100;
  keel_advice_input_default(&in);
  in.profile = &p;
  in.quotes = q;
  in.nquotes = 6;
  assert_status(CTX, keel_advise(CTX, t, &in, &a), KEEL_ELUA);
  assert_errmsg(CTX, "question 'horizon' needs an answer from 1 to 5");
#undef BAD
  keel_template_free(t);
}

static void test_questionnaire(void **state) {
  (void)state;
  keel_template *t = load_standard();
  keel_quote q[6];
  quotes(q, 0, 0);
  /* all cautious: 6 points -> 1; all tolerant: 26 -> 10; a middle case:
   * 5+3+3+3+4+3 = 21 -> 1 + round(9 * 15 / 20) = 1 + round(6.75) = 8 */
  static const int answers[3][6] = {{1, 1, 1, 1, 1, 1}, {5, 4, 4, 4, 5, 4}, {5, 3, 3, 3, 4, 3}};
  static const int want[3] = {1, 10, 8};
  static const char *const ids[6] = {"horizon", "drop", "income", "experience", "tradeoff", "loss_capacity"};
  for (int c = 0; c < 3; c++) {
    keel_answer ans[6];
    for (int i = 0; i < 6; i++) ans[i] = (keel_answer){ids[i], answers[c][i]};
    keel_profile p;
    keel_profile_default(&p);
    p.risk_score = 0;
    p.answers = ans;
    p.nanswers = 6;
    p.initial = 10000;
    keel_advice_input in = six_assets(&p, q);
    keel_advice *a = NULL;
    assert_ok(CTX, keel_advise(CTX, t, &in, &a));
    assert_int_equal(keel_advice_risk_score(a), want[c]);
    assert_non_null(strstr(keel_advice_explanation(a), "Your answers give a risk score of"));
    keel_advice_free(a);
  }
  keel_template_free(t);
}

/* Templates written here: one that counts its calls in a global and in a
 * module upvalue (each call must see a fresh module), one that loops, and
 * plans that break the rules. */
static keel_template *load_source(const char *name, const char *src) {
  const char *path = keel_test_tmp_path(name);
  assert_int_equal(keel_test_write_file(path, src, strlen(src)), 0);
  keel_lua_config cfg;
  keel_lua_config_default(&cfg);
  cfg.limits.instructions = 2000000;
  cfg.limits.mem_bytes = 8u << 20;
  keel_template *t = NULL;
  keel_status st = keel_template_load(CTX, &cfg, path, &t);
  if (st) return NULL;
  return t;
}

#define TEMPLATE_HEAD                                                                  \
  "local T = { name = 'x', universe = { 'CASH', 'EQUITY' } }\n"                       \
  "local calls = 0\n"                                                                  \
  "function T.explain(p, plan, s) return 'calls ' .. calls .. ' global ' .. tostring(G) end\n"

static const char COUNTING[] = TEMPLATE_HEAD
    "function T.advise(p, m)\n"
    "  calls = calls + 1; G = (G or 0) + 1\n"
    "  return { risk_score = 3, fees = 0, subaccounts = { { name = 'core', amount = m.total,\n"
    "           weights = { CASH = 0.5, EQUITY = 0.5 } } } }\n"
    "end\nreturn T\n";

static keel_advice_input simple_input(keel_profile *p, keel_quote *q) {
  keel_profile_default(p);
  p->initial = 1000;
  q[0] = (keel_quote){"CASH", 1, 0, 0, NAN};
  q[1] = (keel_quote){"EQUITY", 50, 0, 0, NAN};
  keel_advice_input in;
  keel_advice_input_default(&in);
  in.profile = p;
  in.quotes = q;
  in.nquotes = 2;
  return in;
}

static void test_fresh_each_call(void **state) {
  (void)state;
  keel_template *t = load_source("counting.lua", COUNTING);
  assert_non_null(t);
  keel_profile p;
  keel_quote q[2];
  keel_advice_input in = simple_input(&p, q);
  for (int i = 0; i < 3; i++) {
    keel_advice *a = NULL;
    assert_ok(CTX, keel_advise(CTX, t, &in, &a));
    assert_string_equal(keel_advice_explanation(a), "calls 1 global 1");
    keel_advice_free(a);
  }
  keel_template_free(t);
}

static void test_bad_templates(void **state) {
  (void)state;
  keel_profile p;
  keel_quote q[2];
  keel_advice_input in = simple_input(&p, q);
  static const struct {
    const char *advise, *needle;
    keel_status st;
  } cases[] = {
      {"while true do end", "instruction limit", KEEL_ELIMIT},
      {"local t = {} for i = 1, 1e8 do t[i] = i end", "memory", KEEL_ELIMIT},
      {"return { risk_score = 3, fees = 0, subaccounts = { { name = 'core', amount = m.total,"
       " weights = { CASH = 0.7, EQUITY = 0.5 } } } }", "the weights add up to 1.2", KEEL_ELUA},
      {"return { risk_score = 3, fees = 0, subaccounts = { { name = 'core', amount = m.total,"
       " weights = { GOLD = 1 } } } }", "GOLD has no quote", KEEL_ELUA},
      {"return { risk_score = 3, fees = 0, subaccounts = { { name = 'core', amount = m.total / 2,"
       " weights = { CASH = 1 } } } }", "add up to 500", KEEL_ELUA},
      {"return { risk_score = 12, fees = 0, subaccounts = {} }", "risk_score 12", KEEL_ELUA},
      /* read with raw access: the erroring __index never runs, the basket is empty (all cash) */
      {"return { risk_score = 3, fees = 0, subaccounts = { { name = 'core', amount = m.total,"
       " weights = setmetatable({}, { __index = function() error('boom') end }) } } }", "", KEEL_OK},
      {"return { risk_score = 3, fees = 0, subaccounts = { { name = 'core', amount = m.total,"
       " weights = { CASH = 1 }, stops = { { kind = 'sideways', level = 0.1, asset = 'CASH' } } } } }",
       "unknown kind 'sideways'", KEEL_ELUA},
      {"error({})", "", KEEL_ELUA},
  };
  keel_template *good = load_source("good.lua", COUNTING);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    char src[1024], name[32];
    snprintf(src, sizeof src,
             "local T = { name = 'bad', universe = { 'CASH', 'EQUITY' } }\n"
             "function T.explain() return '' end\n"
             "function T.advise(p, m) %s end\nreturn T\n", cases[c].advise);
    snprintf(name, sizeof name, "bad%zu.lua", c);
    keel_template *t = load_source(name, src);
    assert_non_null(t);
    keel_advice *a = NULL;
    for (int rep = 0; rep < 2; rep++) { /* the same template fails the same way twice */
      assert_status(CTX, keel_advise(CTX, t, &in, &a), cases[c].st);
      if (cases[c].st == KEEL_OK) {
        assert_int_equal(keel_advice_sub_nweights(a, 0), 0);
        keel_advice_free(a);
        a = NULL;
        continue;
      }
      assert_null(a);
      assert_errmsg(CTX, cases[c].needle);
    }
    keel_template_free(t);
    /* and a good template still gives the right answer */
    assert_ok(CTX, keel_advise(CTX, good, &in, &a));
    assert_string_equal(keel_advice_explanation(a), "calls 1 global 1");
    assert_close(keel_advice_sub_weight(a, 0, 1), 0.5, 0, 0);
    keel_advice_free(a);
  }
  keel_template_free(good);
  /* templates that do not load */
  keel_lua_config cfg;
  keel_lua_config_default(&cfg);
  keel_template *t = NULL;
  assert_status(CTX, keel_template_load(CTX, &cfg, "no_such_template", &t), KEEL_EINVAL);
  assert_errmsg(CTX, "not found");
  assert_null(load_source("noadvise.lua", "return { name = 'n', universe = { 'CASH' }, explain = print }"));
  assert_errmsg(CTX, "advise is not a function");
  assert_null(load_source("syntax.lua", "return {"));
  assert_int_equal(keel_errcode(CTX), KEEL_ELUA);
}

static void test_json(void **state) {
  (void)state;
  keel_template *t = load_standard();
  const char *quotes_json =
      "{\"CASH\": 127.5099, \"BOND\": {\"price\": 141.7317, \"lot\": 1}, \"EQUITY\": 216.9675, \"EM_EQUITY\": 179.8098,"
      " \"GOLD\": {\"price\": 1829.5233, \"expense_ratio\": 0.001}, \"CRYPTO\": 8614.107}";
  const char *prof = "{\"age\": 35, \"horizon\": 25, \"goal\": \"retirement\", \"initial\": 20000, \"monthly\": 500,"
                     " \"liquidity\": 5000, \"answers\": {\"horizon\": 5, \"drop\": 3, \"income\": 3,"
                     " \"experience\": 3, \"tradeoff\": 4, \"loss_capacity\": 3}}";
  const char *hold = "{\"cash\": 1200, \"positions\": {\"EQUITY\": 40}}";
  keel_advice *a = NULL;
  assert_ok(CTX, keel_advise_json(CTX, t, prof, hold, quotes_json, NULL, &a));
  assert_int_equal(keel_advice_risk_score(a), 8);
  assert_close(keel_advice_total(a), 21200 + 40 * 216.9675, 1e-15, 0);
  char *js = NULL;
  assert_ok(CTX, keel_advice_to_json(CTX, a, &js));
  assert_non_null(strstr(js, "\"explanation\""));
  assert_non_null(strstr(js, "\"trailing\""));
  assert_non_null(strstr(js, "\"risk_score\": 8"));
  free(js);
  keel_advice_free(a);
  static const struct {
    const char *profile, *holdings, *quotes, *needle;
    keel_status st;
  } bad[] = {
      {"{\"age\": 35, \"horizon\": 5, \"goal\": \"travel\", \"risk_score\": 3, \"colour\": 1}", NULL, NULL,
       "unknown field 'colour'", KEEL_EINVAL},
      {"{\"age\": 35, \"horizon\": 5, \"goal\": \"space\", \"risk_score\": 3}", NULL, NULL, "goal must be one of",
       KEEL_EINVAL},
      {"{\"age\": 35.5, \"horizon\": 5, \"goal\": \"travel\", \"risk_score\": 3}", NULL, NULL,
       "age must be a whole number", KEEL_EINVAL},
      {"{\"horizon\": 5, \"goal\": \"travel\", \"risk_score\": 3}", NULL, NULL, "age is missing", KEEL_EINVAL},
      {"{\"age\": 35,\n \"horizon\": 5,,}", NULL, NULL, "profile:2:", KEEL_EPARSE},
      {"{\"age\": 35, \"horizon\": 5, \"goal\": \"travel\", \"risk_score\": 3, \"initial\": 10}",
       "{\"cash\": 1, \"positions\": {\"TSLA\": 3}}", NULL, "TSLA is held but has no quote", KEEL_EINVAL},
      {"{\"age\": 35, \"horizon\": 5, \"goal\": \"travel\", \"risk_score\": 3, \"initial\": 10}", "{\"bank\": 1}",
       NULL, "holdings: unknown field 'bank'", KEEL_EINVAL},
      {"{\"age\": 35, \"horizon\": 5, \"goal\": \"travel\", \"risk_score\": 3, \"initial\": 10}", NULL,
       "{\"CASH\": {\"px\": 1}}", "unknown field 'px'", KEEL_EINVAL},
  };
  for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
    assert_status(CTX, keel_advise_json(CTX, t, bad[c].profile, bad[c].holdings,
                                        bad[c].quotes ? bad[c].quotes : quotes_json, NULL, &a), bad[c].st);
    assert_null(a);
    assert_errmsg(CTX, bad[c].needle);
  }
  keel_template_free(t);
}

/* The goal odds on a history of constant prices: every path ends with the
 * money paid in (the amount placed plus a contribution each month), so the
 * odds are 1 just below it and 0 just above, and the quantiles agree. */
static void test_goal_odds(void **state) {
  (void)state;
  keel_template *t = load_standard();
  const size_t nd = 600;
  keel_date *dates = malloc(nd * sizeof *dates);
  double *px = malloc(nd * 6 * sizeof *px);
  keel_test_bdays(dates, nd, 2015, 1, 5);
  for (size_t i = 0; i < nd; i++)
    for (size_t j = 0; j < 6; j++) px[i * 6 + j] = PRICES[j];
  keel_panel *hist = NULL;
  assert_ok(CTX, keel_panel_new(CTX, nd, 6, dates, UNIVERSE, px, &hist));
  keel_quote q[6];
  quotes(q, 0, 0);
  keel_profile p;
  keel_profile_default(&p);
  p.age = 40, p.risk_score = 9, p.horizon = 10, p.goal = KEEL_GOAL_EDUCATION, p.initial = 50000, p.monthly = 250;
  p.liquidity = 1000;
  keel_advice_input in = six_assets(&p, q);
  in.history = hist;
  in.goal_paths = 50;
  keel_advice *a = NULL;
  /* no goal amount: no odds */
  assert_ok(CTX, keel_advise(CTX, t, &in, &a));
  assert_true(isnan(keel_advice_goal_probability(a)));
  assert_null(strstr(keel_advice_explanation(a), "reaches your goal"));
  keel_advice_free(a);
  double paid = 50000 + 250.0 * 12 * 10;
  for (int side = -1; side <= 1; side += 2) {
    p.goal_amount = paid + side * 300.0;
    assert_ok(CTX, keel_advise(CTX, t, &in, &a));
    double w5 = keel_advice_goal_wealth(a, 0.05), w50 = keel_advice_goal_wealth(a, 0.5),
           w95 = keel_advice_goal_wealth(a, 0.95);
    assert_close(w5, w50, 1e-12, 0);
    assert_close(w95, w50, 1e-12, 0);
    /* one contribution a month, the first on the first step or not */
    assert_true(fabs(w50 - paid) < 1e-6 || fabs(w50 - (paid + 250)) < 1e-6);
    assert_close(keel_advice_goal_probability(a), side < 0 ? 1 : 0, 0, 0);
    assert_non_null(strstr(keel_advice_explanation(a), "reaches your goal"));
    char *js = NULL;
    assert_ok(CTX, keel_advice_to_json(CTX, a, &js));
    assert_non_null(strstr(js, "\"goal\""));
    free(js);
    keel_advice_free(a);
  }
  /* a symbol of the plan missing from the history */
  keel_panel_free(hist);
  assert_ok(CTX, keel_panel_new(CTX, nd, 5, dates, UNIVERSE, px, &hist));
  in.history = hist;
  assert_status(CTX, keel_advise(CTX, t, &in, &a), KEEL_EINVAL);
  assert_errmsg(CTX, "CRYPTO is not in the price history");
  keel_panel_free(hist);
  free(dates);
  free(px);
  keel_template_free(t);
}

/* 8 threads share one template; each has its own context and gets the
 * same advice as a single call. */
typedef struct thread_job {
  keel_template *t;
  double want_cost, want_cash;
  char want_text[4096];
  int ok;
} thread_job;

static void *advise_thread(void *arg) {
  thread_job *j = arg;
  keel_ctx *ctx = NULL;
  if (keel_ctx_new(NULL, &ctx)) return NULL;
  keel_quote q[6];
  quotes(q, 1, 0);
  keel_profile p;
  keel_profile_default(&p);
  p.age = 35, p.risk_score = 8, p.horizon = 25, p.goal = KEEL_GOAL_RETIREMENT, p.initial = 100000, p.monthly = 500;
  keel_advice_input in = six_assets(&p, q);
  in.costs.buy_bps = 10;
  int ok = 1;
  for (int i = 0; i < 40 && ok; i++) {
    keel_advice *a = NULL;
    if (keel_advise(ctx, j->t, &in, &a)) {
      ok = 0;
      break;
    }
    ok = keel_advice_trade_costs(a) == j->want_cost && keel_advice_cash_after(a) == j->want_cash &&
         !strcmp(keel_advice_explanation(a), j->want_text);
    keel_advice_free(a);
  }
  j->ok = ok;
  keel_ctx_free(ctx);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  keel_template *t = load_standard();
  thread_job ref = {t, 0, 0, "", 0};
  /* the reference: one call on the test's context */
  keel_quote q[6];
  quotes(q, 1, 0);
  keel_profile p;
  keel_profile_default(&p);
  p.age = 35, p.risk_score = 8, p.horizon = 25, p.goal = KEEL_GOAL_RETIREMENT, p.initial = 100000, p.monthly = 500;
  keel_advice_input in = six_assets(&p, q);
  in.costs.buy_bps = 10;
  keel_advice *a = NULL;
  assert_ok(CTX, keel_advise(CTX, t, &in, &a));
  ref.want_cost = keel_advice_trade_costs(a);
  ref.want_cash = keel_advice_cash_after(a);
  snprintf(ref.want_text, sizeof ref.want_text, "%s", keel_advice_explanation(a));
  keel_advice_free(a);
  thread_job jobs[8];
  pthread_t th[8];
  for (int i = 0; i < 8; i++) {
    jobs[i] = ref;
    assert_int_equal(pthread_create(&th[i], NULL, advise_thread, &jobs[i]), 0);
  }
  for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 8; i++) assert_true(jobs[i].ok);
  keel_template_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_standard_rules), cmocka_unit_test(test_holdings_lots),
      cmocka_unit_test(test_profile_checks), cmocka_unit_test(test_questionnaire),
      cmocka_unit_test(test_fresh_each_call), cmocka_unit_test(test_bad_templates),
      cmocka_unit_test(test_json), cmocka_unit_test(test_goal_odds),           cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
