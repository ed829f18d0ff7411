/* Tests of run descriptions (backtest/runspec.c), the batch runner
 * (backtest/batch.c) and its resume after a SIGKILL of `keel batch`. */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/internal.h"
#include <valgrind/valgrind.h>

#include "keel_test.h"

/* A sample panel (keel_sample, 2 years of business days) written as CSV
 * once; its path. */
static keel_panel *PANEL;
static const char *csv_path(void) {
  static char path[4200];
  if (!path[0]) {
    keel_sample_config cfg;
    keel_sample_config_default(&cfg);
    cfg.ndays = 520;
    cfg.crash_day = 300;
    assert_ok(CTX, keel_sample_generate(CTX, &cfg, &PANEL));
    snprintf(path, sizeof path, "%s", keel_test_tmp_path("prices.csv"));
    assert_ok(CTX, keel_panel_write_csv(CTX, PANEL, path));
    /* read back, so the panel is exactly what the jobs load */
    keel_panel_free(PANEL);
    assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &PANEL));
  }
  return path;
}

static keel_status parse(const char *json, keel_runspec **rs) {
  csv_path();
  return keel_runspec_parse(CTX, "run.json", json, strlen(json), PANEL, NULL, rs);
}

/* ---- run descriptions ------------------------------------------------------ */

static void test_runspec_fixed(void **state) {
  (void)state;
  keel_runspec *rs = NULL;
  const char *j =
      "{\"start\": \"2012-03-01\", \"end\": \"2013-06-28\", \"benchmark\": \"EQUITY\", \"seed\": 42,\n"
      " \"periods_per_year\": 260, \"risk_free\": 0.01,\n"
      " \"subaccounts\": [\n"
      "  {\"name\": \"core\", \"capital\": 100000, \"weights\": {\"BOND\": 0.4, \"EQUITY\": 0.6},\n"
      "   \"schedule\": \"monthly\", \"rebalance_on_schedule\": true,\n"
      "   \"band\": {\"kind\": \"combined\", \"abs\": 0.05, \"rel\": 0.25, \"action\": \"inner\", \"inner\": 0.5,\n"
      "            \"check\": {\"every\": 5}},\n"
      "   \"vol_target\": {\"target\": 0.1, \"estimator\": \"ewma\", \"halflife\": 30, \"rebalance_band\": null},\n"
      "   \"costs\": {\"buy_bps\": 10, \"sell_bps\": 12, \"spread_bps\": 4, \"slippage_bps\": 1, \"fee\": 1,\n"
      "             \"min_notional\": 50, \"lots\": false},\n"
      "   \"skip\": {\"gamma\": 2, \"lookback\": 120},\n"
      "   \"stops\": [{\"kind\": \"trailing\", \"level\": 0.2, \"asset\": \"CRYPTO\", \"action\": \"defensive\",\n"
      "              \"reentry\": \"after_days\", \"days\": 20}],\n"
      "   \"defensive\": {\"CASH\": 1.0}},\n"
      "  {\"name\": \"travel\", \"capital\": 0, \"weights\": {\"BOND\": 1},\n"
      "   \"dca\": [{\"amount\": 500, \"schedule\": \"monthly\", \"start\": \"2012-01-02\", \"end\": \"2013-01-31\",\n"
      "            \"step_up\": 0.03, \"source\": \"external\", \"dest\": \"underweight\"}]}]}";
  assert_ok(CTX, parse(j, &rs));
  const keel_account_spec *a = keel_runspec_account(rs);
  const keel_date *dates = keel_panel_dates(PANEL);
  keel_date d0, d1;
  keel_date_parse("2012-03-01", 10, &d0);
  keel_date_parse("2013-06-28", 10, &d1);
  assert_true(dates[a->start] >= d0 && dates[a->start - 1] < d0);
  assert_true(dates[a->end - 1] <= d1 && dates[a->end] > d1);
  size_t eq, bond, crypto, cash;
  assert_true(keel_panel_find(PANEL, "EQUITY", &eq) && keel_panel_find(PANEL, "BOND", &bond) &&
              keel_panel_find(PANEL, "CRYPTO", &crypto) && keel_panel_find(PANEL, "CASH", &cash));
  assert_int_equal(a->benchmark, (long)eq);
  assert_int_equal(a->seed, 42);
  assert_close(a->periods_per_year, 260, 0, 0);
  assert_close(a->risk_free, 0.01, 0, 0);
  assert_int_equal(a->nsubs, 2);
  const keel_subaccount_spec *s = &a->subs[0];
  assert_string_equal(s->name, "core");
  /* the assets the sub-account names, in panel order */
  assert_int_equal(s->nassets, 4);
  size_t want[4] = {eq, bond, crypto, cash}, sorted[4];
  memcpy(sorted, want, sizeof want);
  for (size_t i = 0; i < 4; i++)
    for (size_t k = i + 1; k < 4; k++)
      if (sorted[k] < sorted[i]) {
        size_t t = sorted[i];
        sorted[i] = sorted[k], sorted[k] = t;
      }
  assert_memory_equal(s->assets, sorted, sizeof sorted);
  for (size_t k = 0; k < 4; k++) {
    double w = s->assets[k] == eq ? 0.6 : s->assets[k] == bond ? 0.4 : 0;
    assert_close(s->weights[k], w, 0, 0);
    assert_close(s->defensive[k], s->assets[k] == cash ? 1 : 0, 0, 0);
  }
  assert_close(s->capital, 100000, 0, 0);
  assert_int_equal(s->schedule.calendar, KEEL_CAL_MONTHLY);
  assert_int_equal(s->rebalance_on_schedule, 1);
  assert_int_equal(s->band.kind, KEEL_BAND_COMBINED);
  assert_int_equal(s->band.action, KEEL_BAND_TO_INNER);
  assert_close(s->band.abs, 0.05, 0, 0);
  assert_close(s->band.rel, 0.25, 0, 0);
  assert_close(s->band.inner, 0.5, 0, 0);
  assert_int_equal(s->band_check.calendar, KEEL_CAL_EVERY_N);
  assert_int_equal(s->band_check.every, 5);
  assert_close(s->vol.target, 0.1, 0, 0);
  assert_int_equal(s->vol.estimator, KEEL_VOL_EWMA);
  assert_close(s->vol.halflife, 30, 0, 0);
  assert_int_equal(s->vol.window, 63);
  assert_true(isinf(s->vol.rebalance_band));
  assert_close(s->costs.buy_bps, 10, 0, 0);
  assert_close(s->costs.sell_bps, 12, 0, 0);
  assert_close(s->costs.spread_bps, 4, 0, 0);
  assert_close(s->costs.slippage_bps, 1, 0, 0);
  assert_close(s->costs.fee, 1, 0, 0);
  assert_close(s->costs.min_notional, 50, 0, 0);
  assert_int_equal(s->costs.use_lots, 0);
  assert_close(s->skip_gamma, 2, 0, 0);
  assert_int_equal(s->skip_lookback, 120);
  assert_int_equal(s->nstops, 1);
  assert_int_equal(s->stops[0].kind, KEEL_STOP_TRAILING);
  assert_close(s->stops[0].level, 0.2, 0, 0);
  assert_int_equal(s->assets[s->stops[0].asset], crypto);
  assert_int_equal(s->stops[0].action, KEEL_STOP_TO_DEFENSIVE);
  assert_int_equal(s->stops[0].reentry, KEEL_REENTRY_AFTER_DAYS);
  assert_int_equal(s->stops[0].days, 20);
  assert_null(s->strategy);
  const keel_subaccount_spec *t = &a->subs[1];
  assert_string_equal(t->name, "travel");
  assert_int_equal(t->nassets, 1);
  assert_close(t->capital, 0, 0, 0);
  assert_int_equal(t->ndca, 1);
  assert_close(t->dca[0].amount, 500, 0, 0);
  assert_close(t->dca[0].step_up, 0.03, 0, 0);
  assert_int_equal(t->dca[0].dest, KEEL_DCA_TO_UNDERWEIGHT);
  assert_int_equal(t->dca[0].source, KEEL_DCA_EXTERNAL);
  keel_date ds;
  keel_date_parse("2012-01-02", 10, &ds);
  assert_int_equal(t->dca[0].start, ds);
  assert_string_equal(keel_runspec_strategy(rs), "core:fixed_weights,travel:fixed_weights");
  /* the canonical text has sorted keys and no spaces */
  const char *canon = keel_runspec_json(rs);
  assert_non_null(strstr(canon, "{\"benchmark\":\"EQUITY\",\"end\":\"2013-06-28\""));
  /* and it runs */
  keel_backtest_result *r = NULL;
  assert_ok(CTX, keel_backtest_run_account(CTX, PANEL, a, &r));
  assert_int_equal(keel_backtest_nsubs(r), 2);
  assert_int_equal(keel_backtest_npoints(r), a->end - a->start);
  keel_backtest_result_free(r);
  keel_runspec_free(rs);
  keel_runspec_free(NULL);

  /* the smallest description: one basket; defaults elsewhere */
  assert_ok(CTX, parse("{\"subaccounts\": [{\"capital\": 1000, \"weights\": {\"GOLD\": 1}}]}", &rs));
  a = keel_runspec_account(rs);
  assert_int_equal(a->start, 0);
  assert_int_equal(a->end, keel_panel_ndates(PANEL));
  assert_int_equal(a->benchmark, -1);
  assert_string_equal(a->subs[0].name, "main");
  assert_string_equal(keel_runspec_strategy(rs), "fixed_weights");
  keel_runspec_free(rs);
}

/* Each kind of bad input: its status and the path in the message. */
static void test_runspec_errors(void **state) {
  (void)state;
  static const struct {
    const char *json;
    keel_status st;
    const char *msg;
  } bad[] = {
      {"{\"subaccounts\": [", KEEL_EPARSE, "run.json:1:"},
      {"{\"a\": 1, \"a\": 2}", KEEL_EPARSE, "duplicate"},
      {"[1, 2]", KEEL_EINVAL, "run.json: a run description must be a JSON object"},
      {"{\"subacounts\": []}", KEEL_EINVAL, "run.json: subacounts: unknown key"},
      {"{\"subaccounts\": []}", KEEL_EINVAL, "needs \"subaccounts\""},
      {"{\"subaccounts\": {}}", KEEL_EINVAL, "subaccounts: must be an array"},
      {"{\"start\": \"2012-13-01\", \"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}}]}", KEEL_EINVAL,
       "run.json: start: '2012-13-01' is not a date"},
      {"{\"start\": \"2030-01-01\", \"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}}]}", KEEL_EINVAL,
       "no prices between start and end"},
      {"{\"fill\": \"open\", \"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}}]}", KEEL_EINVAL,
       "fill: 'open' is not one of close, next_open"},
      {"{\"fill\": \"next_open\", \"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}}]}", KEEL_EINVAL,
       "fill: next_open needs open prices"},
      {"{\"benchmark\": \"SPX\", \"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}}]}", KEEL_EINVAL,
       "benchmark: no asset 'SPX'"},
      {"{\"seed\": -1, \"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}}]}", KEEL_EINVAL,
       "seed: must be a whole number"},
      {"{\"periods_per_year\": \"252\", \"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}}]}",
       KEEL_EINVAL, "periods_per_year: must be a number, not a string"},
      {"{\"subaccounts\": [1]}", KEEL_EINVAL, "subaccounts[0]: must be an object"},
      {"{\"subaccounts\": [{\"capital\": 1}]}", KEEL_EINVAL, "subaccounts[0]: give either \"weights\""},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"strategy\": {\"name\": \"equal\"}}]}",
       KEEL_EINVAL, "subaccounts[0]: give either"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"colour\": 1}]}", KEEL_EINVAL,
       "subaccounts[0].colour: unknown key"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"XAU\": 1}}]}", KEEL_EINVAL,
       "subaccounts[0].weights.XAU: no asset 'XAU' in the prices"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": -0.5}}]}", KEEL_EINVAL,
       "subaccounts[0].weights.GOLD: must be >= 0"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 0.7, \"BOND\": 0.7}}]}", KEEL_EINVAL,
       "subaccounts[0].weights: the weights sum to 1.3"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": true}}]}", KEEL_EINVAL,
       "subaccounts[0].weights.GOLD: must be a number, not a boolean"},
      {"{\"subaccounts\": [{\"capital\": -5, \"weights\": {\"GOLD\": 1}}]}", KEEL_EINVAL,
       "subaccounts[0].capital: must be >= 0"},
      {"{\"subaccounts\": [{\"capital\": 0, \"weights\": {\"GOLD\": 1}}]}", KEEL_EINVAL,
       "subaccounts[0].capital: must be > 0 unless an external DCA plan"},
      {"{\"subaccounts\": [{\"weights\": {\"GOLD\": 1}}]}", KEEL_EINVAL, "subaccounts[0]: needs \"capital\""},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}}, {\"capital\": 1, \"weights\": "
       "{\"GOLD\": 1}}]}",
       KEEL_EINVAL, "subaccounts[1].name: 'main' is used by subaccounts[0] too"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"schedule\": \"hourly\"}]}", KEEL_EINVAL,
       "subaccounts[0].schedule: 'hourly' is not one of"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"schedule\": {\"every\": 0}}]}",
       KEEL_EINVAL, "subaccounts[0].schedule.every: must be from 1"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"schedule\": {\"every\": 2.5}}]}",
       KEEL_EINVAL, "subaccounts[0].schedule.every: must be a whole number, not a fraction"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}}, {\"name\": \"x\", \"capital\": 1, "
       "\"weights\": {\"GOLD\": 1}, \"band\": {\"kind\": \"combined\", \"abs\": 1.5, \"rel\": 0.25}}]}",
       KEEL_EINVAL, "run.json: subaccounts[1].band.abs: must be in (0, 1)"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"band\": {\"kind\": \"wide\"}}]}",
       KEEL_EINVAL, "subaccounts[0].band.kind: 'wide' is not one of"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"band\": {\"kind\": \"relative\"}}]}",
       KEEL_EINVAL, "subaccounts[0].band: a relative band needs \"rel\""},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"band\": {\"kind\": \"absolute\", "
       "\"abs\": 0.1, \"action\": \"inner\", \"inner\": 1}}]}",
       KEEL_EINVAL, "subaccounts[0].band.inner: must be in [0, 1)"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"vol_target\": {\"window\": 20}}]}",
       KEEL_EINVAL, "subaccounts[0].vol_target: needs \"target\""},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"vol_target\": {\"target\": 0.1, "
       "\"estimator\": \"garch\"}}]}",
       KEEL_EINVAL, "subaccounts[0].vol_target.estimator: 'garch'"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"costs\": {\"buy_bps\": 10000}}]}",
       KEEL_EINVAL, "subaccounts[0].costs.buy_bps: must be in [0, 10000)"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"costs\": {\"lots\": 1}}]}", KEEL_EINVAL,
       "subaccounts[0].costs.lots: must be true or false"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"costs\": {\"bps\": 1}}]}", KEEL_EINVAL,
       "subaccounts[0].costs.bps: unknown key"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"skip\": {\"lookback\": 1}}]}",
       KEEL_EINVAL, "subaccounts[0].skip.lookback: must be from 2"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"dca\": [{\"amount\": 0}]}]}",
       KEEL_EINVAL, "subaccounts[0].dca[0].amount: must be a non-zero number"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"dca\": [{\"amount\": 5, \"start\": "
       "\"2013-01-01\", \"end\": \"2012-01-01\"}]}]}",
       KEEL_EINVAL, "subaccounts[0].dca[0].end: is before start"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"dca\": [{\"amount\": 5, \"dest\": "
       "\"sideways\"}]}]}",
       KEEL_EINVAL, "subaccounts[0].dca[0].dest: 'sideways' is not one of target, underweight"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"stops\": [{\"kind\": \"trailing\", "
       "\"level\": 1.2}]}]}",
       KEEL_EINVAL, "subaccounts[0].stops[0].level: must be in (0, 1)"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"stops\": [{\"kind\": \"trailing\", "
       "\"level\": 0.2, \"asset\": \"EQUITY\"}]}], \"x\": 1}",
       KEEL_EINVAL, "run.json: x: unknown key"},
      {"{\"subaccounts\": [{\"capital\": 1, \"assets\": [\"GOLD\"], \"weights\": {\"GOLD\": 1}, \"stops\": "
       "[{\"kind\": \"trailing\", \"level\": 0.2, \"asset\": \"EQUITY\"}]}]}",
       KEEL_EINVAL, "subaccounts[0].stops[0].asset: 'EQUITY' is not one of the sub-account's assets"},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"stops\": [{\"kind\": \"trailing\", "
       "\"level\": 0.2, \"reentry\": \"after_days\"}]}]}",
       KEEL_EINVAL, "subaccounts[0].stops[0]: the re-entry rule needs \"days\""},
      {"{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"GOLD\": 1}, \"stops\": [{\"kind\": \"drawdown\", "
       "\"level\": 0.2, \"action\": \"defensive\"}]}]}",
       KEEL_EINVAL, "subaccounts[0].stops[0]: the action \"defensive\" needs"},
      {"{\"subaccounts\": [{\"capital\": 1, \"assets\": [\"GOLD\", \"GOLD\"], \"weights\": {\"GOLD\": 1}}]}",
       KEEL_EINVAL, "subaccounts[0].assets[1]: 'GOLD' is listed twice"},
      {"{\"subaccounts\": [{\"capital\": 1, \"strategy\": {\"name\": \"momentum\"}}]}", KEEL_EINVAL,
       "subaccounts[0].strategy"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    keel_runspec *rs = (keel_runspec *)1;
    keel_status st = parse(bad[k].json, &rs);
    if (st != bad[k].st) fail_msg("case %zu: status %d, expected %d (%s)", k, st, bad[k].st, keel_errmsg(CTX));
    assert_null(rs);
    if (!strstr(keel_errmsg(CTX), bad[k].msg))
      fail_msg("case %zu: message '%s' does not contain '%s'", k, keel_errmsg(CTX), bad[k].msg);
  }
}

/* A built-in strategy instead of a basket. */
static void test_runspec_strategy(void **state) {
  (void)state;
  keel_runspec *rs = NULL;
  keel_status st = parse("{\"subaccounts\": [{\"capital\": 1000, \"assets\": [\"EQUITY\", \"BOND\", \"GOLD\"], "
                         "\"strategy\": {\"name\": \"inverse_vol\", \"lookback\": 60}, \"schedule\": \"quarterly\"}]}",
                         &rs);
  assert_ok(CTX, st);
  const keel_subaccount_spec *s = &keel_runspec_account(rs)->subs[0];
  assert_non_null(s->strategy);
  assert_null(s->weights);
  assert_int_equal(s->nassets, 3);
  assert_string_equal(keel_runspec_strategy(rs), "inverse_vol");
  keel_backtest_result *r = NULL;
  assert_ok(CTX, keel_backtest_run_account(CTX, PANEL, keel_runspec_account(rs), &r));
  keel_backtest_result_free(r);
  keel_runspec_free(rs);
  /* an optimising strategy next to a basket: its audit trail is stored */
  assert_ok(CTX, parse("{\"subaccounts\": [{\"name\": \"mv\", \"capital\": 1000, \"assets\": [\"EQUITY\", "
                       "\"BOND\", \"GOLD\"], \"strategy\": {\"name\": \"min_variance\", \"lookback\": 60, "
                       "\"cov\": \"sample\"}, \"schedule\": \"monthly\"}, {\"name\": \"b\", \"capital\": 500, "
                       "\"weights\": {\"BOND\": 1}}]}",
                       &rs));
  assert_string_equal(keel_runspec_strategy(rs), "mv:min_variance,b:fixed_weights");
  assert_ok(CTX, keel_backtest_run_account(CTX, PANEL, keel_runspec_account(rs), &r));
  assert_true(keel_backtest_nopt_calls(r) > 10);
  keel_record_meta meta = {.dataset = "prices.csv",
                           .params_json = keel_runspec_json(rs),
                           .strategy = keel_runspec_strategy(rs),
                           .spec = keel_runspec_account(rs)};
  keel_run_record rec;
  assert_ok(CTX, keel_backtest_record_fill(CTX, r, PANEL, &meta, &rec));
  const char *db = keel_test_tmp_path("strategy.db");
  keel_store *s2 = NULL;
  assert_ok(CTX, keel_store_open(CTX, db, &s2));
  assert_ok(CTX, keel_store_save_run(CTX, s2, &rec, NULL));
  keel_store_close(s2);
  assert_int_equal(keel_test_sql_int(db, "SELECT count(*) FROM optimizer_calls WHERE sub = 0"),
                   (long long)keel_backtest_nopt_calls(r));
  assert_int_equal(keel_test_sql_int(db, "SELECT nopt_calls FROM runs"), (long long)keel_backtest_nopt_calls(r));
  assert_close(keel_test_sql_double(db, "SELECT capital FROM subaccounts WHERE name = 'b'"), 500, 0, 0);
  assert_int_equal(keel_test_sql_int(db, "SELECT count(*) FROM sub_metrics"), 2 * KEEL_METRICS_COUNT);
  keel_backtest_record_free(&rec);
  keel_backtest_record_free(&rec);
  keel_backtest_result_free(r);
  keel_runspec_free(rs);
}

/* ---- hashing ---------------------------------------------------------------- */

static void test_job_hash(void **state) {
  (void)state;
  csv_path();
  const char *a = "{\"id\": \"a\", \"dataset\": \"p.csv\", \"run\": {\"seed\": 1, \"subaccounts\": [{\"capital\": "
                  "1, \"weights\": {\"GOLD\": 0.5, \"BOND\": 0.5}}]}}";
  const char *b = "{\"run\":{\"subaccounts\":[{\"weights\":{\"BOND\":0.5,\"GOLD\":0.5},\"capital\":1}],"
                  "\"seed\":1},\"dataset\":\"p.csv\",\"id\":\"other label\"}";
  const char *c = "{\"dataset\": \"p.csv\", \"run\": {\"seed\": 2, \"subaccounts\": [{\"capital\": 1, \"weights\": "
                  "{\"GOLD\": 0.5, \"BOND\": 0.5}}]}}";
  char ha[17], hb[17], hc[17], hn[17];
  assert_ok(CTX, keel_batch_job_hash(CTX, a, strlen(a), PANEL, ha));
  assert_ok(CTX, keel_batch_job_hash(CTX, b, strlen(b), PANEL, hb));
  assert_ok(CTX, keel_batch_job_hash(CTX, c, strlen(c), PANEL, hc));
  assert_ok(CTX, keel_batch_job_hash(CTX, a, strlen(a), NULL, hn));
  assert_int_equal(strlen(ha), 16);
  assert_string_equal(ha, hb); /* key order, spacing and the id do not matter */
  assert_string_not_equal(ha, hc);
  assert_string_not_equal(ha, hn); /* the prices are part of the identity */
  /* the same value every time and on every machine: FNV-1a of the
   * canonical text then of the panel hash */
  char ph[17];
  keel_panel_hash(PANEL, ph);
  const char *canon = "{\"dataset\":\"p.csv\",\"run\":{\"seed\":1,\"subaccounts\":[{\"capital\":1,\"weights\":"
                      "{\"BOND\":0.5,\"GOLD\":0.5}}]}}";
  unsigned long long h = keeli_fnv1a(KEEL_FNV_OFFSET, canon, strlen(canon));
  h = keeli_fnv1a(h, ph, 16);
  char want[17];
  snprintf(want, sizeof want, "%016llx", h);
  assert_string_equal(ha, want);
  assert_status(CTX, keel_batch_job_hash(CTX, "{\"a\":", 5, NULL, ha), KEEL_EPARSE);
  assert_status(CTX, keel_batch_job_hash(CTX, "[1]", 3, NULL, ha), KEEL_EINVAL);
}

/* ---- batches ---------------------------------------------------------------- */

/* n jobs of daily-rebalanced baskets over the sample, written as JSON lines
 * into a string (free()). Job k differs in capital, costs and weights. */
static char *make_jobs(size_t n, const char *csv, int with_bad) {
  size_t cap = n * 400 + 1000, o = 0;
  char *s = malloc(cap);
  for (size_t k = 0; k < n; k++) {
    double we = 0.2 + 0.01 * (double)(k % 30), wb = 0.3, wg = 0.1 + 0.005 * (double)(k % 7);
    o += (size_t)snprintf(s + o, cap - o,
                          "{\"id\": \"job%zu\", \"dataset\": \"%s\", \"run\": {\"subaccounts\": [{\"capital\": %zu, "
                          "\"weights\": {\"EQUITY\": %g, \"BOND\": %g, \"GOLD\": %g}, \"schedule\": %s, "
                          "\"costs\": {\"buy_bps\": %zu, \"sell_bps\": 5, \"lots\": false}}]}}\n",
                          k, csv, 10000 + 100 * k, we, wb, wg, k % 3 ? "\"daily\"" : "{\"every\": 3}", k % 11);
  }
  if (with_bad) {
    o += (size_t)snprintf(s + o, cap - o,
                          "\n{\"id\": \"bad\", \"dataset\": \"%s\", \"run\": {\"subaccounts\": [{\"capital\": 1, "
                          "\"weights\": {\"NOPE\": 1}}]}}\nnot json at all\n"
                          "{\"id\": \"nodata\", \"dataset\": \"missing.csv\", \"run\": {}}\n",
                          csv);
  }
  return s;
}

typedef struct collected {
  char **lines;
  size_t n;
  size_t progress_calls, last_done, total;
} collected;

static void on_line(void *ud, const char *line) {
  collected *c = ud;
  c->lines = realloc(c->lines, (c->n + 1) * sizeof *c->lines);
  c->lines[c->n++] = strdup(line);
}

static void on_progress(void *ud, size_t done, size_t total, double eta) {
  collected *c = ud;
  (void)eta;
  assert_true(done >= c->last_done && done <= total);
  c->progress_calls++;
  c->last_done = done;
  c->total = total;
}

static void free_collected(collected *c) {
  for (size_t k = 0; k < c->n; k++) free(c->lines[k]);
  free(c->lines);
  memset(c, 0, sizeof *c);
}

static keel_status run_batch(const char *jobs, const char *db, int threads, collected *c, keel_batch_summary *sum) {
  c->last_done = 0;
  FILE *in = fmemopen((void *)jobs, strlen(jobs), "r");
  keel_batch_options o;
  keel_batch_options_default(&o);
  o.input = in;
  o.input_name = "jobs.jsonl";
  o.store_path = db;
  o.threads = threads;
  o.on_result = on_line;
  o.result_ud = c;
  o.progress = on_progress;
  o.progress_ud = c;
  keel_status st = keel_batch_run(CTX, &o, sum);
  fclose(in);
  return st;
}

/* The metric `name` of the run of job `id` in the store at db. */
static double stored_metric(const char *db, const char *id_hash, const char *name) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT m.value FROM runs r JOIN metrics m ON m.run_id = r.id WHERE r.job_hash = '%s' AND m.name = '%s'",
           id_hash, name);
  return keel_test_sql_double(db, sql);
}

/* 40 jobs on 2 threads store the same runs as each job run alone on one
 * thread; a second call skips them all; failures are rows, not stops.
 * (12 jobs under valgrind: the same steps, in a quarter of the time.) */
static void test_batch_threads_resume(void **state) {
  (void)state;
  const char *csv = csv_path();
  const size_t N = RUNNING_ON_VALGRIND ? 12 : 40;
  char *jobs = make_jobs(N, csv, 1);
  const char *db2 = keel_test_tmp_path("batch2.db");
  collected c = {0};
  keel_batch_summary sum;
  assert_ok(CTX, run_batch(jobs, db2, 2, &c, &sum));
  assert_int_equal(sum.total, N + 3);
  assert_int_equal(sum.ok, N);
  assert_int_equal(sum.failed, 3);
  assert_int_equal(sum.skipped, 0);
  assert_int_equal(c.n, N + 3);
  assert_int_equal(c.last_done, N + 3);
  assert_int_equal(c.total, N + 3);
  assert_true(c.progress_calls >= N + 3);
  assert_int_equal(keel_test_sql_int(db2, "SELECT count(*) FROM runs WHERE status = 'ok'"), N);
  assert_int_equal(keel_test_sql_int(db2, "SELECT count(DISTINCT job_hash) FROM runs"), N + 3);
  /* the bad jobs are lines N + 2 to N + 4 (after the N jobs and a blank line) */
  const char *bad[3] = {"run.subaccounts[0].weights.NOPE: no asset%", "%", "dataset: missing.csv%"};
  for (size_t b = 0; b < 3; b++) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM runs WHERE status = 'error' AND error LIKE 'jobs.jsonl:%zu: %s'",
             N + 2 + b, bad[b]);
    assert_int_equal(keel_test_sql_int(db2, sql), 1);
  }
  /* the JSON lines: one per job, parseable, with the hash and the metrics */
  size_t nok = 0;
  for (size_t k = 0; k < c.n; k++) {
    json_error_t je;
    json_t *o = json_loads(c.lines[k], 0, &je);
    assert_non_null(o);
    const char *status = json_string_value(json_object_get(o, "status"));
    const char *hash = json_string_value(json_object_get(o, "hash"));
    assert_non_null(status);
    assert_int_equal(strlen(hash), 16);
    if (!strcmp(status, "ok")) {
      nok++;
      double sharpe = json_real_value(json_object_get(json_object_get(o, "metrics"), "sharpe"));
      assert_close(sharpe, stored_metric(db2, hash, "sharpe"), 0, 0);
    } else {
      assert_non_null(json_string_value(json_object_get(o, "error")));
    }
    json_decref(o);
  }
  assert_int_equal(nok, N);
  free_collected(&c);

  /* each job alone, one thread, its own store: the same metrics */
  const char *db1 = keel_test_tmp_path("batch1.db");
  char *line = jobs;
  for (size_t k = 0; k < N; k++) {
    char *nl = strchr(line, '\n');
    *nl = '\0';
    assert_ok(CTX, run_batch(line, db1, 1, &c, &sum));
    assert_int_equal(sum.ok, 1);
    *nl = '\n';
    line = nl + 1;
  }
  free_collected(&c);
  assert_int_equal(keel_test_sql_int(db1, "SELECT count(*) FROM runs"), N);
  assert_int_equal(keel_test_sql_int(db1, "SELECT count(*) FROM runs a WHERE NOT EXISTS (SELECT 1 FROM runs b "
                                          "WHERE b.job_hash = a.job_hash)"),
                   0);
  {
    sqlite3 *d;
    assert_int_equal(sqlite3_open(db1, &d), SQLITE_OK);
    char att[4400];
    snprintf(att, sizeof att, "ATTACH '%s' AS two", db2);
    assert_int_equal(sqlite3_exec(d, att, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    /* every metric of every run, bit for bit */
    assert_int_equal(sqlite3_prepare_v2(d,
                                        "SELECT count(*), sum(m1.value IS m2.value) FROM runs r1 "
                                        "JOIN metrics m1 ON m1.run_id = r1.id "
                                        "JOIN two.runs r2 ON r2.job_hash = r1.job_hash "
                                        "JOIN two.metrics m2 ON m2.run_id = r2.id AND m2.name = m1.name",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(q, 0), N * KEEL_METRICS_COUNT);
    assert_int_equal(sqlite3_column_int64(q, 1), N * KEEL_METRICS_COUNT);
    sqlite3_finalize(q);
    sqlite3_close(d);
  }

  /* resume: everything is there, nothing runs, nothing is written */
  long long before = keel_test_sql_int(db2, "SELECT count(*) FROM equity");
  assert_ok(CTX, run_batch(jobs, db2, 2, &c, &sum));
  assert_int_equal(sum.skipped, N + 3);
  assert_int_equal(sum.ok + sum.failed, 0);
  assert_int_equal(c.n, 0);
  assert_int_equal(keel_test_sql_int(db2, "SELECT count(*) FROM runs"), N + 3);
  assert_int_equal(keel_test_sql_int(db2, "SELECT count(*) FROM equity"), before);
  /* a deleted run (and an error row deleted to retry it) runs again */
  {
    sqlite3 *d;
    sqlite3_open(db2, &d);
    assert_int_equal(sqlite3_exec(d, "PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id IN (SELECT id FROM runs "
                                     "WHERE status = 'ok' LIMIT 3); DELETE FROM runs WHERE status = 'error'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(d);
  }
  assert_ok(CTX, run_batch(jobs, db2, 2, &c, &sum));
  assert_int_equal(sum.ok, 3);
  assert_int_equal(sum.failed, 3);
  assert_int_equal(sum.skipped, N - 3);
  assert_int_equal(keel_test_sql_int(db2, "SELECT count(*) FROM runs"), N + 3);
  free_collected(&c);
  /* a job repeated in the input runs once */
  char *twice = malloc(2 * strlen(jobs) + 1);
  strcpy(twice, jobs);
  strcat(twice, jobs);
  const char *db3 = keel_test_tmp_path("batch3.db");
  assert_ok(CTX, run_batch(twice, db3, 2, &c, &sum));
  assert_int_equal(sum.total, 2 * (N + 3));
  assert_int_equal(sum.skipped, N + 3);
  assert_int_equal(keel_test_sql_int(db3, "SELECT count(*) FROM runs"), N + 3);
  free_collected(&c);
  free(twice);
  /* bad options */
  keel_batch_options o;
  keel_batch_options_default(&o);
  assert_status(CTX, keel_batch_run(CTX, &o, &sum), KEEL_EINVAL);
  free(jobs);
}

/* ---- the kill test ---------------------------------------------------------- */

/* The number of runs in db, or -1 while it is not there yet. */
static long long count_runs(const char *db) {
  sqlite3 *d = NULL;
  long long n = -1;
  if (access(db, F_OK) == 0 && sqlite3_open_v2(db, &d, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(d, "SELECT count(*) FROM runs", -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
      n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
  }
  sqlite3_close(d);
  return n;
}

static pid_t spawn_batch(const char *jobs_path, const char *db) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fd = open("/dev/null", O_RDWR);
    dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
    execl(KEEL_CLI_PATH, KEEL_CLI_PATH, "batch", jobs_path, "--db", db, "--threads", "2", (char *)NULL);
    _exit(127);
  }
  return pid;
}

static int wait_exit(pid_t pid) {
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `keel batch` on 200 jobs is killed with SIGKILL mid-way and run again:
 * every job is then stored once, whole, with the metrics of a run that was
 * never interrupted. */
static void test_kill_and_resume(void **state) {
  (void)state;
  const char *csv = csv_path();
  enum { N = 200 };
  char *jobs = make_jobs(N, csv, 0);
  char jobs_path[4200];
  snprintf(jobs_path, sizeof jobs_path, "%s", keel_test_tmp_path("kill_jobs.jsonl"));
  assert_int_equal(keel_test_write_file(jobs_path, jobs, strlen(jobs)), 0);
  free(jobs);
  char db[4200];
  long long at_kill = 0;
  int killed = 0;
  /* the kill must land after some runs are committed and before all are;
   * on a machine fast enough to finish first, try again on a new file */
  for (int attempt = 0; attempt < 5 && !killed; attempt++) {
    char name[64];
    snprintf(name, sizeof name, "kill%d.db", attempt);
    snprintf(db, sizeof db, "%s", keel_test_tmp_path(name));
    pid_t pid = spawn_batch(jobs_path, db);
    long long n = 0;
    for (int i = 0; i < 20000; i++) {
      n = count_runs(db);
      if (n >= 30 + attempt * 10) break;
      usleep(2000);
    }
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    at_kill = count_runs(db);
    killed = WIFSIGNALED(st) && at_kill > 0 && at_kill < N;
  }
  if (!killed) fail_msg("could not kill keel batch mid-way in 5 attempts");
  /* the killed batch left whole runs only */
  const char *incomplete = "SELECT count(*) FROM runs r WHERE npoints != "
                           "(SELECT count(*) FROM equity e WHERE e.run_id = r.id) OR ntrades != "
                           "(SELECT count(*) FROM trades t WHERE t.run_id = r.id) OR nsubs != "
                           "(SELECT count(*) FROM subaccounts s WHERE s.run_id = r.id) OR npoints * nsubs != "
                           "(SELECT count(*) FROM sub_equity s WHERE s.run_id = r.id) OR 20 != "
                           "(SELECT count(*) FROM metrics m WHERE m.run_id = r.id)";
  assert_int_equal(keel_test_sql_int(db, incomplete), 0);
  /* run it again to the end */
  pid_t pid = spawn_batch(jobs_path, db);
  assert_int_equal(wait_exit(pid), 0);
  assert_int_equal(keel_test_sql_int(db, "SELECT count(*) FROM runs"), N);
  assert_int_equal(keel_test_sql_int(db, "SELECT count(DISTINCT job_hash) FROM runs"), N);
  assert_int_equal(keel_test_sql_int(db, "SELECT count(*) FROM runs WHERE status != 'ok'"), 0);
  assert_int_equal(keel_test_sql_int(db, incomplete), 0);
  assert_true(keel_test_sql_int(db, "SELECT min(npoints) FROM runs") > 500);
  /* a fresh run that was never interrupted */
  const char *fresh = keel_test_tmp_path("fresh.db");
  pid = spawn_batch(jobs_path, fresh);
  assert_int_equal(wait_exit(pid), 0);
  sqlite3 *d;
  assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
  char att[4400];
  snprintf(att, sizeof att, "ATTACH '%s' AS fresh", fresh);
  assert_int_equal(sqlite3_exec(d, att, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_stmt *q;
  assert_int_equal(sqlite3_prepare_v2(d,
                                      "SELECT count(*), sum(m1.value IS m2.value), "
                                      "sum(r1.npoints = r2.npoints AND r1.ntrades = r2.ntrades) FROM runs r1 "
                                      "JOIN metrics m1 ON m1.run_id = r1.id "
                                      "JOIN fresh.runs r2 ON r2.job_hash = r1.job_hash "
                                      "JOIN fresh.metrics m2 ON m2.run_id = r2.id AND m2.name = m1.name",
                                      -1, &q, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int64(q, 0), N * KEEL_METRICS_COUNT);
  assert_int_equal(sqlite3_column_int64(q, 1), N * KEEL_METRICS_COUNT);
  assert_int_equal(sqlite3_column_int64(q, 2), N * KEEL_METRICS_COUNT);
  sqlite3_finalize(q);
  /* and the final values, bit for bit */
  assert_int_equal(sqlite3_prepare_v2(d,
                                      "SELECT count(*) FROM runs r1 JOIN fresh.runs r2 ON r2.job_hash = r1.job_hash "
                                      "WHERE (SELECT value FROM equity WHERE run_id = r1.id ORDER BY date DESC) IS NOT "
                                      "(SELECT value FROM fresh.equity WHERE run_id = r2.id ORDER BY date DESC)",
                                      -1, &q, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int64(q, 0), 0);
  sqlite3_finalize(q);
  sqlite3_close(d);
  print_message("killed after %lld of %d runs\n", at_kill, N);
}

static int teardown(void **state) {
  keel_panel_free(PANEL);
  PANEL = NULL;
  return keel_test_teardown(state);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_runspec_fixed),        cmocka_unit_test(test_runspec_errors),
      cmocka_unit_test(test_runspec_strategy),     cmocka_unit_test(test_job_hash),
      cmocka_unit_test(test_batch_threads_resume), cmocka_unit_test(test_kill_and_resume),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, teardown);
}
