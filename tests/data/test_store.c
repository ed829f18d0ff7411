/* Tests of the SQLite store (data/store.c). */
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keel_test.h"

static void sql(const char *path, const char *text) {
  sqlite3 *db;
  sqlite3_open(path, &db);
  char *err = NULL;
  if (sqlite3_exec(db, text, NULL, NULL, &err) != SQLITE_OK) fail_msg("%s: %s", text, err);
  sqlite3_close(db);
}

static keel_panel *sample_panel(void) {
  keel_date dates[5] = {18000, 18001, 18004, 18005, 18006};
  double px[15] = {NAN, 1.5, 100, 0.1, 1.25, 101, 0.30000000000000004, NAN, 102, 1e-300, 1.75, 103,
                   3.141592653589793, 2, 1e300};
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_new(CTX, 5, 3, dates, (const char *const[]){"A", "B,2", "C"}, px, &p));
  keel_asset_meta m = {"EUR", 10, 250};
  assert_ok(CTX, keel_panel_set_meta(CTX, p, 2, &m));
  return p;
}

static void test_open_migrate(void **state) {
  (void)state;
  const char *path = keel_test_tmp_path("open.db");
  keel_store *s = NULL;
  assert_ok(CTX, keel_store_open(CTX, path, &s));
  assert_int_equal(keel_store_schema_version(s), KEEL_STORE_SCHEMA_VERSION);
  keel_store_close(s);
  assert_int_equal(keel_test_sql_int(path, "PRAGMA user_version"), KEEL_STORE_SCHEMA_VERSION);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM sqlite_schema WHERE name='runs'"), 1);
  {
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  /* reopening keeps everything */
  assert_ok(CTX, keel_store_open(CTX, path, &s));
  keel_store_close(s);
  keel_store_close(NULL);
  /* a newer schema is refused */
  sql(path, "PRAGMA user_version = 99");
  assert_status(CTX, keel_store_open(CTX, path, &s), KEEL_EINVAL);
  assert_null(s);
  assert_errmsg(CTX, "newer keel");
}

static void test_refuse_foreign(void **state) {
  (void)state;
  const char *txt = keel_test_tmp_path("notadb.db");
  const char junk[] = "this is not a database at all, but it is long enough to look like a header......";
  assert_int_equal(keel_test_write_file(txt, junk, sizeof junk), 0);
  keel_store *s = (keel_store *)1;
  assert_status(CTX, keel_store_open(CTX, txt, &s), KEEL_EIO);
  assert_null(s);
  assert_errmsg(CTX, "notadb.db");
  const char *other = keel_test_tmp_path("other.db");
  sql(other, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)");
  assert_status(CTX, keel_store_open(CTX, other, &s), KEEL_EINVAL);
  assert_errmsg(CTX, "not keel's");
  /* and it was not written into */
  assert_int_equal(keel_test_sql_int(other, "SELECT count(*) FROM sqlite_schema"), 1);
  assert_status(CTX, keel_store_open(CTX, "/nonexistent/dir/x.db", &s), KEEL_EIO);
}

static void test_dataset_roundtrip(void **state) {
  (void)state;
  const char *path = keel_test_tmp_path("ds.db");
  keel_store *s = NULL;
  assert_ok(CTX, keel_store_open(CTX, path, &s));
  keel_panel *p = sample_panel(), *q = NULL;
  assert_ok(CTX, keel_store_put_dataset(CTX, s, "sample", p));
  assert_ok(CTX, keel_store_get_dataset(CTX, s, "sample", &q));
  assert_int_equal(keel_panel_ndates(q), 5);
  assert_int_equal(keel_panel_nassets(q), 3);
  assert_string_equal(keel_panel_symbol(q, 1), "B,2");
  assert_memory_equal(keel_panel_dates(q), keel_panel_dates(p), 5 * sizeof(keel_date));
  for (size_t k = 0; k < 15; k++) {
    double a = keel_panel_prices(p)[k], b = keel_panel_prices(q)[k];
    if (isnan(a) != isnan(b) || (!isnan(a) && memcmp(&a, &b, sizeof a))) fail_msg("cell %zu differs", k);
  }
  char h1[17], h2[17];
  keel_panel_hash(p, h1);
  keel_panel_hash(q, h2);
  assert_string_equal(h1, h2);
  assert_string_equal(keel_panel_meta(q, 2)->currency, "EUR");
  assert_close(keel_panel_meta(q, 2)->lot, 10, 0, 0);
  assert_close(keel_panel_meta(q, 2)->min_trade, 250, 0, 0);
  keel_panel_free(q);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM prices"), 13);
  /* replacing: a dataset of the same name is swapped whole */
  keel_date d2[2] = {19000, 19001};
  double px2[2] = {5, 6};
  keel_panel *p2 = NULL;
  assert_ok(CTX, keel_panel_new(CTX, 2, 1, d2, (const char *const[]){"Z"}, px2, &p2));
  assert_ok(CTX, keel_store_put_dataset(CTX, s, "sample", p2));
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM datasets"), 1);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM prices"), 2);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM dataset_assets"), 1);
  assert_ok(CTX, keel_store_get_dataset(CTX, s, "sample", &q));
  assert_string_equal(keel_panel_symbol(q, 0), "Z");
  keel_panel_free(q);
  assert_status(CTX, keel_store_get_dataset(CTX, s, "nope", &q), KEEL_EINVAL);
  assert_null(q);
  assert_errmsg(CTX, "no dataset named 'nope'");
  keel_panel_free(p);
  keel_panel_free(p2);
  keel_store_close(s);
}

static const char *MNAMES[3] = {"total_return", "sharpe", "calmar"};

static void make_record(keel_run_record *r, size_t npoints, size_t ntrades, keel_date *dates, double *values,
                        keel_trade *trades) {
  static const char *syms[2] = {"AAA", "BBB"};
  static double mvals[3];
  mvals[0] = 0.25;
  mvals[1] = 1.5;
  mvals[2] = NAN;
  for (size_t i = 0; i < npoints; i++) dates[i] = 10000 + (keel_date)i, values[i] = 1000 + (double)i;
  for (size_t t = 0; t < ntrades; t++)
    trades[t] = (keel_trade){.date = 10000 + (keel_date)t, .asset = (uint32_t)(t % 2), .reason = KEEL_REASON_CALENDAR,
                             .shares = 1.5, .price = 10, .notional = 15, .cost = 0.1};
  memset(r, 0, sizeof *r);
  r->kind = "backtest";
  r->strategy = "fixed_weights";
  r->params_json = "{\"weights\": {\"AAA\": 0.5, \"BBB\": 0.5}, \"rebalance\": \"monthly\"}";
  r->dataset = "sample.csv";
  r->dataset_hash = "0123456789abcdef";
  r->status = "ok";
  r->seed = 42;
  r->start = dates[0];
  r->end = dates[npoints - 1];
  r->nmetrics = 3;
  r->metric_names = MNAMES;
  r->metric_values = mvals;
  r->npoints = npoints;
  r->dates = dates;
  r->values = values;
  r->ntrades = ntrades;
  r->trades = trades;
  r->asset_symbols = syms;
  r->nassets = 2;
}

static void test_save_run(void **state) {
  (void)state;
  const char *path = keel_test_tmp_path("runs.db");
  keel_store *s = NULL;
  assert_ok(CTX, keel_store_open(CTX, path, &s));
  keel_date dates[50];
  double values[50];
  keel_trade trades[7];
  keel_run_record r;
  make_record(&r, 50, 7, dates, values, trades);
  int64_t id = 0;
  assert_ok(CTX, keel_store_save_run(CTX, s, &r, &id));
  assert_int_equal(id, 1);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM equity WHERE run_id = 1"), 50);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM trades WHERE run_id = 1"), 7);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM trades WHERE symbol = 'BBB' AND reason = 'calendar'"), 3);
  assert_close(keel_test_sql_double(path, "SELECT value FROM metrics WHERE run_id = 1 AND name = 'sharpe'"), 1.5, 0, 0);
  assert_true(isnan(keel_test_sql_double(path, "SELECT value FROM metrics WHERE name = 'calmar'")));
  assert_int_equal(keel_test_sql_int(path, "SELECT value IS NULL FROM metrics WHERE name = 'calmar'"), 1);
  assert_int_equal(keel_test_sql_int(path, "SELECT json_extract(params, '$.weights.AAA') = 0.5 FROM runs"), 1);
  assert_int_equal(keel_test_sql_int(path, "SELECT seed FROM runs"), 42);
  assert_close(keel_test_sql_double(path, "SELECT value FROM equity WHERE date = '1997-05-19'"), 1000, 0, 0);

  /* bad params and bad trades are refused and nothing is written */
  r.params_json = "{\"weights\": ";
  assert_status(CTX, keel_store_save_run(CTX, s, &r, &id), KEEL_EINVAL);
  assert_errmsg(CTX, "params_json");
  r.params_json = "[1, 2]";
  assert_status(CTX, keel_store_save_run(CTX, s, &r, &id), KEEL_EINVAL);
  r.params_json = "{}";
  trades[3].asset = 9;
  assert_status(CTX, keel_store_save_run(CTX, s, &r, &id), KEEL_EINVAL);
  assert_errmsg(CTX, "trade 3");
  trades[3].asset = 0;
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM runs"), 1);

  /* a failure in the middle of the transaction leaves no trace of the run */
  sql(path, "CREATE TRIGGER boom BEFORE INSERT ON equity WHEN NEW.value = 1030 "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  assert_status(CTX, keel_store_save_run(CTX, s, &r, &id), KEEL_EIO);
  assert_errmsg(CTX, "injected failure");
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM runs"), 1);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM equity"), 50);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM metrics"), 3);
  sql(path, "DROP TRIGGER boom");
  /* and the store keeps working */
  assert_ok(CTX, keel_store_save_run(CTX, s, &r, &id));
  assert_int_equal(id, 2);
  keel_store_close(s);
}

/* A child saves runs in a loop and is killed with SIGKILL at a random
 * moment; every run in the database is whole and writing goes on. */
static void test_kill_mid_write(void **state) {
  (void)state;
  const char *path = keel_test_tmp_path("kill.db");
  {
    keel_store *s = NULL;
    assert_ok(CTX, keel_store_open(CTX, path, &s));
    keel_store_close(s);
  }
  enum { NP = 20000, NT = 500 };
  srand((unsigned)time(NULL));
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    keel_ctx *c = NULL;
    keel_store *s = NULL;
    if (keel_ctx_new(NULL, &c) || keel_store_open(c, path, &s)) _exit(3);
    keel_date *dates = malloc(NP * sizeof *dates);
    double *values = malloc(NP * sizeof *values);
    keel_trade *trades = malloc(NT * sizeof *trades);
    keel_run_record r;
    make_record(&r, NP, NT, dates, values, trades);
    for (;;)
      if (keel_store_save_run(c, s, &r, NULL)) _exit(4);
  }
  /* wait for two finished runs, then kill at a random moment */
  for (int i = 0; i < 3000 && keel_test_sql_int(path, "SELECT count(*) FROM runs") < 2; i++) usleep(10000);
  usleep((useconds_t)(rand() % 200000));
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  assert_true(WIFSIGNALED(status));
  long long runs = keel_test_sql_int(path, "SELECT count(*) FROM runs");
  assert_true(runs >= 2);
  sqlite3 *db;
  sqlite3_open(path, &db);
  sqlite3_stmt *st;
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
  sqlite3_finalize(st);
  sqlite3_close(db);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM runs r WHERE npoints != "
                            "(SELECT count(*) FROM equity e WHERE e.run_id = r.id) OR ntrades != "
                            "(SELECT count(*) FROM trades t WHERE t.run_id = r.id) OR 3 != "
                            "(SELECT count(*) FROM metrics m WHERE m.run_id = r.id)"),
                   0);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM equity"), runs * NP);
  /* the killed writer left no lock behind: a new run goes in */
  keel_store *s = NULL;
  assert_ok(CTX, keel_store_open(CTX, path, &s));
  keel_date dates[3];
  double values[3];
  keel_trade trades[1];
  keel_run_record r;
  make_record(&r, 3, 1, dates, values, trades);
  assert_ok(CTX, keel_store_save_run(CTX, s, &r, NULL));
  keel_store_close(s);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM runs"), runs + 1);
}

/* Schema 2: sub-accounts, their metrics and series, events, optimiser
 * calls, trades' sub-account, flows and the job hash. */
static void test_save_run_v2(void **state) {
  (void)state;
  const char *path = keel_test_tmp_path("runs2.db");
  keel_store *s = NULL;
  assert_ok(CTX, keel_store_open(CTX, path, &s));
  keel_date dates[10];
  double values[10], flows[10], sv[2][10], sc[10];
  keel_trade trades[4];
  keel_run_record r;
  make_record(&r, 10, 4, dates, values, trades);
  for (size_t i = 0; i < 10; i++) {
    flows[i] = i == 5 ? 500 : 0;
    sv[0][i] = 600 + (double)i, sv[1][i] = 400, sc[i] = 1;
  }
  trades[1].sub = 1;
  const char *sm[2] = {"cagr", "sharpe"};
  double smv[2][2] = {{0.1, NAN}, {0.2, 0.7}};
  keel_run_sub subs[2] = {
      {.name = "core", .capital = 600, .nmetrics = 2, .metric_names = sm, .metric_values = smv[0], .values = sv[0],
       .cash = sc, .flows = flows},
      {.name = "travel", .capital = 400, .nmetrics = 2, .metric_names = sm, .metric_values = smv[1], .values = sv[1]},
  };
  keel_run_event ev[2] = {{.date = dates[3], .sub = 0, .symbol = "AAA", .kind = "stop", .stop = "trailing",
                           .price = 9.5, .level = 9.6},
                          {.date = dates[4], .sub = 1, .symbol = NULL, .kind = "stop_fill", .stop = "drawdown",
                           .price = 390, .level = NAN}};
  keel_run_opt_call oc[1] = {{.date = dates[0], .sub = 1, .status = "optimal", .iterations = 12, .solves = 2,
                              .polished = 1, .res_prim = 1e-9, .res_dual = 2e-9, .ret = 0.05, .vol = 0.1}};
  r.flows = flows;
  r.nsubs = 2, r.subs = subs;
  r.nevents = 2, r.events = ev;
  r.nopt_calls = 1, r.opt_calls = oc;
  r.job_hash = "00000000deadbeef";
  int found = -1;
  assert_ok(CTX, keel_store_has_job(CTX, s, "00000000deadbeef", &found));
  assert_int_equal(found, 0);
  int64_t id = 0;
  assert_ok(CTX, keel_store_save_run(CTX, s, &r, &id));
  assert_ok(CTX, keel_store_has_job(CTX, s, "00000000deadbeef", &found));
  assert_int_equal(found, 1);
  assert_ok(CTX, keel_store_has_job(CTX, s, "00000000deadbeee", &found));
  assert_int_equal(found, 0);
  assert_int_equal(keel_test_sql_int(path, "SELECT nsubs * 100 + nevents * 10 + nopt_calls FROM runs"), 221);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM subaccounts WHERE run_id = 1"), 2);
  assert_close(keel_test_sql_double(path, "SELECT capital FROM subaccounts WHERE name = 'travel'"), 400, 0, 0);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM sub_equity WHERE run_id = 1"), 20);
  assert_close(keel_test_sql_double(path, "SELECT value FROM sub_equity WHERE sub = 0 ORDER BY date DESC"), 609, 0, 0);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM sub_equity WHERE sub = 1 AND cash IS NULL"), 10);
  assert_close(keel_test_sql_double(path, "SELECT flow FROM sub_equity WHERE sub = 0 AND flow > 0"), 500, 0, 0);
  assert_close(keel_test_sql_double(path, "SELECT sum(flow) FROM equity WHERE run_id = 1"), 500, 0, 0);
  assert_int_equal(keel_test_sql_int(path, "SELECT value IS NULL FROM sub_metrics WHERE sub = 0 AND name = 'sharpe'"),
                   1);
  assert_close(keel_test_sql_double(path, "SELECT value FROM sub_metrics WHERE sub = 1 AND name = 'sharpe'"), 0.7, 0,
               0);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM trades WHERE sub = 1"), 1);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM events WHERE symbol = 'AAA' AND kind = 'stop' "
                                           "AND stop = 'trailing' AND price = 9.5"),
                   1);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM events WHERE symbol IS NULL AND level IS NULL"), 1);
  assert_int_equal(keel_test_sql_int(path, "SELECT iterations * 100 + solves * 10 + polished FROM optimizer_calls "
                                           "WHERE status = 'optimal' AND sub = 1"),
                   1221);
  /* the job hash is unique: a second run of the same job is refused whole */
  assert_status(CTX, keel_store_save_run(CTX, s, &r, &id), KEEL_EIO);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM runs"), 1);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM sub_equity"), 20);
  /* an error row carries its message and no series */
  keel_run_record e;
  memset(&e, 0, sizeof e);
  e.kind = "backtest", e.strategy = "", e.params_json = "{}", e.dataset = "x.csv", e.dataset_hash = "";
  e.status = "error", e.error = "x.csv: no such file", e.job_hash = "0000000000000001";
  assert_ok(CTX, keel_store_save_run(CTX, s, &e, &id));
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM runs WHERE status = 'error' AND error LIKE "
                                           "'%no such file' AND npoints = 0"),
                   1);
  /* bad v2 parts are refused */
  r.job_hash = NULL;
  trades[1].sub = 2;
  assert_status(CTX, keel_store_save_run(CTX, s, &r, &id), KEEL_EINVAL);
  assert_errmsg(CTX, "sub-account 2");
  trades[1].sub = 0;
  subs[1].name = "";
  assert_status(CTX, keel_store_save_run(CTX, s, &r, &id), KEEL_EINVAL);
  subs[1].name = "travel";
  /* a record without job hash may be saved any number of times */
  assert_ok(CTX, keel_store_save_run(CTX, s, &r, &id));
  assert_ok(CTX, keel_store_save_run(CTX, s, &r, &id));
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM runs"), 4);
  /* deleting a run deletes everything under it */
  sql(path, "PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id = 1");
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM sub_equity WHERE run_id = 1") +
                       keel_test_sql_int(path, "SELECT count(*) FROM events WHERE run_id = 1") +
                       keel_test_sql_int(path, "SELECT count(*) FROM optimizer_calls WHERE run_id = 1") +
                       keel_test_sql_int(path, "SELECT count(*) FROM subaccounts WHERE run_id = 1"),
                   0);
  keel_store_close(s);
}

/* The schema of version 1, as keel 0.x wrote it (data/store.c's first
 * migration), to check that a v1 file is migrated in place. */
static const char V1_SCHEMA[] =
    "CREATE TABLE keel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
    "CREATE TABLE datasets (\n"
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, hash TEXT NOT NULL,\n"
    "  nrows INTEGER NOT NULL, ncols INTEGER NOT NULL,\n"
    "  first_date TEXT NOT NULL, last_date TEXT NOT NULL,\n"
    "  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')));\n"
    "CREATE TABLE dataset_assets (\n"
    "  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,\n"
    "  idx INTEGER NOT NULL, symbol TEXT NOT NULL, currency TEXT NOT NULL DEFAULT '',\n"
    "  lot REAL NOT NULL DEFAULT 0, min_trade REAL NOT NULL DEFAULT 0,\n"
    "  PRIMARY KEY (dataset_id, idx), UNIQUE (dataset_id, symbol)) WITHOUT ROWID;\n"
    "CREATE TABLE prices (\n"
    "  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,\n"
    "  asset_idx INTEGER NOT NULL, date TEXT NOT NULL, price REAL NOT NULL,\n"
    "  PRIMARY KEY (dataset_id, asset_idx, date)) WITHOUT ROWID;\n"
    "CREATE TABLE runs (\n"
    "  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, strategy TEXT NOT NULL,\n"
    "  params TEXT NOT NULL CHECK (json_valid(params)), dataset TEXT NOT NULL,\n"
    "  dataset_hash TEXT NOT NULL, seed INTEGER NOT NULL, keel_version TEXT NOT NULL,\n"
    "  start_date TEXT NOT NULL, end_date TEXT NOT NULL, status TEXT NOT NULL,\n"
    "  npoints INTEGER NOT NULL, ntrades INTEGER NOT NULL,\n"
    "  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')));\n"
    "CREATE TABLE metrics (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  name TEXT NOT NULL, value REAL, PRIMARY KEY (run_id, name)) WITHOUT ROWID;\n"
    "CREATE TABLE equity (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  date TEXT NOT NULL, value REAL NOT NULL, cash REAL,\n"
    "  PRIMARY KEY (run_id, date)) WITHOUT ROWID;\n"
    "CREATE TABLE trades (\n"
    "  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  date TEXT NOT NULL, symbol TEXT NOT NULL, reason TEXT NOT NULL,\n"
    "  shares REAL NOT NULL, price REAL NOT NULL, notional REAL NOT NULL, cost REAL NOT NULL);\n"
    "CREATE INDEX trades_run ON trades(run_id, date);\n"
    "INSERT INTO keel_meta VALUES ('created_by', 'keel 0.1.0');\n"
    "INSERT INTO datasets(id, name, hash, nrows, ncols, first_date, last_date) "
    "VALUES (1, 'old', 'feedfacefeedface', 2, 1, '2020-01-01', '2020-01-02');\n"
    "INSERT INTO dataset_assets VALUES (1, 0, 'OLD', 'CHF', 0, 0);\n"
    "INSERT INTO prices VALUES (1, 0, '2020-01-01', 10.5), (1, 0, '2020-01-02', 11.25);\n"
    "INSERT INTO runs(id, kind, strategy, params, dataset, dataset_hash, seed, keel_version, start_date, end_date, "
    "status, npoints, ntrades) VALUES (1, 'backtest', 'fixed_weights', '{\"weights\":{\"OLD\":1}}', 'old', "
    "'feedfacefeedface', 7, '0.1.0', '2020-01-01', '2020-01-02', 'ok', 2, 1);\n"
    "INSERT INTO metrics VALUES (1, 'sharpe', 0.5);\n"
    "INSERT INTO equity VALUES (1, '2020-01-01', 1000, 0), (1, '2020-01-02', 1071.43, 0);\n"
    "INSERT INTO trades(run_id, date, symbol, reason, shares, price, notional, cost) "
    "VALUES (1, '2020-01-01', 'OLD', 'initial', 95.238, 10.5, 1000, 0);\n"
    "PRAGMA user_version = 1;\n";

static void test_migrate_v1(void **state) {
  (void)state;
  const char *path = keel_test_tmp_path("v1.db");
  sql(path, V1_SCHEMA);
  assert_int_equal(keel_test_sql_int(path, "PRAGMA user_version"), 1);
  keel_store *s = NULL;
  assert_ok(CTX, keel_store_open(CTX, path, &s));
  assert_int_equal(keel_store_schema_version(s), KEEL_STORE_SCHEMA_VERSION);
  assert_int_equal(keel_test_sql_int(path, "PRAGMA user_version"), KEEL_STORE_SCHEMA_VERSION);
  /* every migration ran: version 3's stress tables are there */
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name IN "
                                           "('stress_runs', 'stress_stats', 'stress_bands')"),
                   3);
  /* the old data survived, with the new columns' defaults */
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM runs WHERE seed = 7 AND job_hash IS NULL AND "
                                           "nsubs = 0 AND status = 'ok'"),
                   1);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM trades WHERE sub = 0 AND symbol = 'OLD'"), 1);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM equity WHERE flow IS NULL"), 2);
  assert_close(keel_test_sql_double(path, "SELECT value FROM metrics WHERE run_id = 1"), 0.5, 0, 0);
  assert_int_equal(keel_test_sql_int(path, "SELECT value = 'keel 0.1.0' FROM keel_meta"), 1);
  keel_panel *p = NULL;
  assert_ok(CTX, keel_store_get_dataset(CTX, s, "old", &p));
  assert_close(keel_panel_price(p, 1, 0), 11.25, 0, 0);
  assert_string_equal(keel_panel_meta(p, 0)->currency, "CHF");
  keel_panel_free(p);
  /* new runs go in next to the old one */
  keel_date dates[3];
  double values[3];
  keel_trade trades[1];
  keel_run_record r;
  make_record(&r, 3, 1, dates, values, trades);
  r.job_hash = "0123456789abcdef";
  int64_t id = 0;
  assert_ok(CTX, keel_store_save_run(CTX, s, &r, &id));
  assert_int_equal(id, 2);
  int found = 0;
  assert_ok(CTX, keel_store_has_job(CTX, s, "0123456789abcdef", &found));
  assert_int_equal(found, 1);
  keel_store_close(s);
  /* and reopening does not migrate again */
  assert_ok(CTX, keel_store_open(CTX, path, &s));
  keel_store_close(s);
  assert_int_equal(keel_test_sql_int(path, "SELECT count(*) FROM runs"), 2);
  /* an interrupted upgrade leaves version 1 whole: make the migration fail */
  const char *path2 = keel_test_tmp_path("v1b.db");
  sql(path2, V1_SCHEMA);
  sql(path2, "CREATE TABLE events (x)");
  assert_status(CTX, keel_store_open(CTX, path2, &s), KEEL_EIO);
  assert_null(s);
  assert_int_equal(keel_test_sql_int(path2, "PRAGMA user_version"), 1);
  assert_int_equal(keel_test_sql_int(path2, "SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'job_hash'"),
                   0);
  assert_int_equal(keel_test_sql_int(path2, "SELECT count(*) FROM runs"), 1);
}

static keel_status oom_body(keel_ctx *ctx, void *arg) {
  (void)arg;
  static int n;
  char name[64];
  snprintf(name, sizeof name, "oom%d.db", n++);
  const char *path = keel_test_tmp_path(name);
  keel_store *s = NULL;
  keel_status st = keel_store_open(ctx, path, &s);
  if (st) return st;
  keel_date dates[3] = {1, 2, 3};
  double px[3] = {1, 2, 3};
  keel_panel *p = NULL, *q = NULL;
  st = keel_panel_new(ctx, 3, 1, dates, (const char *const[]){"A"}, px, &p);
  if (!st) st = keel_store_put_dataset(ctx, s, "d", p);
  if (!st) st = keel_store_get_dataset(ctx, s, "d", &q);
  keel_panel_free(p);
  keel_panel_free(q);
  keel_store_close(s);
  return st;
}

static void test_oom(void **state) {
  (void)state;
  keel_test_oom_loop(oom_body, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_migrate),     cmocka_unit_test(test_refuse_foreign),
      cmocka_unit_test(test_dataset_roundtrip), cmocka_unit_test(test_save_run),
      cmocka_unit_test(test_kill_mid_write),   cmocka_unit_test(test_oom),
      cmocka_unit_test(test_save_run_v2),      cmocka_unit_test(test_migrate_v1),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
