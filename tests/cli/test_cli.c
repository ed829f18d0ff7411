/* End-to-end tests of the keel command. */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel_test.h"

typedef struct out {
  int status;
  char *out, *err;
} out_t;

static char *slurp(const char *path) {
  char *b = keel_test_read_file(path, NULL);
  return b ? b : strdup("");
}

/* Runs keel with the given arguments (NULL-terminated), no shell. */
static out_t run(const char *const *args) {
  static int k;
  char o[64], e[64];
  snprintf(o, sizeof o, "out%d.txt", k);
  snprintf(e, sizeof e, "err%d.txt", k++);
  char opath[4200], epath[4200];
  snprintf(opath, sizeof opath, "%s", keel_test_tmp_path(o));
  snprintf(epath, sizeof epath, "%s", keel_test_tmp_path(e));
  const char *argv[64];
  size_t n = 0;
  argv[n++] = KEEL_CLI_PATH;
  for (; args[n - 1] && n < 63; n++) argv[n] = args[n - 1];
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fo = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fi = open("/dev/null", O_RDONLY);
    dup2(fo, 1);
    dup2(fe, 2);
    dup2(fi, 0);
    execv(KEEL_CLI_PATH, (char *const *)argv);
    _exit(127);
  }
  int st;
  waitpid(pid, &st, 0);
  out_t r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(opath), slurp(epath)};
  return r;
}

static void done(out_t *r) {
  free(r->out);
  free(r->err);
}

static int lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

#define SAMPLE keel_test_source_path("data/samples/multi_asset.csv")
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_help_version(void **state) {
  (void)state;
  out_t r = run(ARGS("--version"));
  assert_int_equal(r.status, 0);
  char want[64];
  snprintf(want, sizeof want, "keel %s\n", KEEL_VERSION);
  assert_string_equal(r.out, want);
  done(&r);
  r = run(ARGS("--help"));
  assert_int_equal(r.status, 0);
  assert_non_null(strstr(r.out, "backtest"));
  assert_non_null(strstr(r.out, "import"));
  done(&r);
  const char *opts[] = {"--prices", "--dataset", "--weights", "--rebalance", "--cost-bps", "--fee",
                        "--capital", "--risk-free", "--start", "--end", "--db", "--quiet"};
  r = run(ARGS("backtest", "--help"));
  assert_int_equal(r.status, 0);
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
    if (!strstr(r.out, opts[i])) fail_msg("backtest --help does not explain %s", opts[i]);
  done(&r);
  out_t h = run(ARGS("help", "backtest"));
  r = run(ARGS("backtest", "--help"));
  assert_string_equal(h.out, r.out);
  done(&h);
  done(&r);
  r = run(ARGS("import", "--help"));
  assert_int_equal(r.status, 0);
  assert_non_null(strstr(r.out, "--name"));
  done(&r);
}

static void test_usage_errors(void **state) {
  (void)state;
  const char *const *bad[] = {
      ARGS("frobnicate"),
      ARGS("backtest"),
      ARGS("backtest", "--prices", "x.csv"),
      ARGS("backtest", "--prices", "x.csv", "--weights", "A=1", "--rebalance", "hourly"),
      ARGS("backtest", "--prices", "x.csv", "--weights", "A=1", "--cost-bps", "ten"),
      ARGS("backtest", "--prices", "x.csv", "--weights", "A=1", "--fee", "-1"),
      ARGS("backtest", "--prices", "x.csv", "--weights", "A=1", "--bogus"),
      ARGS("backtest", "--prices"),
      ARGS("backtest", "--prices", "x.csv", "--dataset", "d", "--weights", "A=1"),
      ARGS("backtest", "--dataset", "d", "--weights", "A=1"),
      ARGS("backtest", "--prices", "x.csv", "--weights", "A=1", "--start", "2020-13-01"),
      ARGS("backtest", "--prices", "x.csv", "--weights", "A=1", "extra"),
      ARGS("import"),
      ARGS("import", "x.csv"),
      ARGS("sample"),
      ARGS("sample", "--out", "x.csv", "--seed", "-3"),
      ARGS("help", "nothing"),
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    out_t r = run(bad[i]);
    if (r.status != 2) fail_msg("case %zu (%s ...): exit %d, expected 2; stderr: %s", i, bad[i][0], r.status, r.err);
    if (lines(r.err) != 1 || strncmp(r.err, "keel: ", 6) != 0) fail_msg("case %zu: stderr is not one line: %s", i, r.err);
    assert_string_equal(r.out, "");
    done(&r);
  }
  /* weights that do not fit the prices are usage errors too */
  const char *const *badw[] = {
      ARGS("backtest", "--prices", SAMPLE, "--weights", "NOPE=1"),
      ARGS("backtest", "--prices", SAMPLE, "--weights", "EQUITY=x"),
      ARGS("backtest", "--prices", SAMPLE, "--weights", "EQUITY=0.5,EQUITY=0.2"),
      ARGS("backtest", "--prices", SAMPLE, "--weights", "EQUITY"),
  };
  for (size_t i = 0; i < sizeof badw / sizeof badw[0]; i++) {
    out_t r = run(badw[i]);
    if (r.status != 2 || lines(r.err) != 1) fail_msg("weights case %zu: exit %d: %s", i, r.status, r.err);
    done(&r);
  }
  out_t r = run(ARGS("backtest", "--prices", SAMPLE, "--weights", "NOPE=1"));
  assert_non_null(strstr(r.err, "no asset 'NOPE'"));
  assert_non_null(strstr(r.err, "EQUITY"));
  done(&r);
}

static void test_runtime_errors(void **state) {
  (void)state;
  const char *bad = keel_test_tmp_path("bad.csv");
  const char *t = "date,A,B\n2020-01-02,1,2\n2020-01-03,1,oops\n";
  assert_int_equal(keel_test_write_file(bad, t, strlen(t)), 0);
  out_t r = run(ARGS("backtest", "--prices", bad, "--weights", "A=1"));
  assert_int_equal(r.status, 1);
  char want[4200];
  snprintf(want, sizeof want, "keel: %s:3:14: column 'B': 'oops' is not a number\n", bad);
  assert_string_equal(r.err, want);
  done(&r);
  r = run(ARGS("backtest", "--prices", "/nonexistent/p.csv", "--weights", "A=1"));
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.err, "/nonexistent/p.csv: cannot open"));
  done(&r);
  /* weights summing above one are refused by the engine */
  r = run(ARGS("backtest", "--prices", SAMPLE, "--weights", "EQUITY=0.7,BOND=0.4"));
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.err, "sum to"));
  done(&r);
  /* fees larger than the account */
  r = run(ARGS("backtest", "--prices", SAMPLE, "--weights", "EQUITY=0.5,BOND=0.5", "--fee", "60000"));
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.err, "exceed the account's value"));
  done(&r);
}

static double db_metric(const char *db, long long run, const char *name) {
  char q[256];
  snprintf(q, sizeof q, "SELECT value FROM metrics WHERE run_id = %lld AND name = '%s'", run, name);
  return keel_test_sql_double(db, q);
}

#define db_int keel_test_sql_int

/* The number printed after a label, e.g. "Sharpe   0.743". */
static double printed(const char *out, const char *label) {
  const char *p = strstr(out, label);
  if (!p) fail_msg("no '%s' in output", label);
  return strtod(p + strlen(label), NULL);
}

static void test_backtest_and_store(void **state) {
  (void)state;
  const char *db = keel_test_tmp_path("results.db");
  const char *w = "EQUITY=0.35,EM_EQUITY=0.1,BOND=0.3,GOLD=0.1,CRYPTO=0.05,CASH=0.1";
  out_t r = run(ARGS("backtest", "--prices", SAMPLE, "--weights", w, "--rebalance", "monthly", "--cost-bps", "10",
                     "--fee", "1", "--capital", "100000", "--db", db));
  if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err);
  assert_non_null(strstr(r.out, "stored as run 1 in"));
  assert_int_equal(db_int(db, "SELECT count(*) FROM runs"), 1);
  /* printed figures are the stored ones, at the printed precision */
  assert_close(printed(r.out, "Sharpe"), db_metric(db, 1, "sharpe"), 0, 0.0005);
  assert_close(printed(r.out, "CAGR"), 100 * db_metric(db, 1, "cagr"), 0, 0.005);
  assert_close(printed(r.out, "max drawdown"), 100 * db_metric(db, 1, "max_drawdown"), 0, 0.005);
  assert_close(printed(r.out, "costs paid"), db_metric(db, 1, "costs_total"), 0, 0.005);
  assert_close(printed(r.out, "rebalances"), 144, 0, 0);
  assert_int_equal(db_int(db, "SELECT count(*) FROM equity WHERE run_id = 1"), 3130);
  assert_int_equal(db_int(db, "SELECT count(*) FROM trades WHERE run_id = 1"), (long long)printed(r.out, "trades"));
  assert_int_equal(db_int(db, "SELECT json_extract(params, '$.weights.BOND') = 0.3 FROM runs"), 1);
  assert_int_equal(db_int(db, "SELECT json_extract(params, '$.rebalance') = 'monthly' FROM runs"), 1);
  /* money: final equity = capital + sum of price moves - costs; checked
   * from the stored rows: last value over the printed final value */
  double fin = printed(r.out, "final value");
  sqlite3 *h;
  sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL);
  sqlite3_stmt *st;
  sqlite3_prepare_v2(h, "SELECT value FROM equity WHERE run_id = 1 ORDER BY date DESC LIMIT 1", -1, &st, NULL);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_close(sqlite3_column_double(st, 0), fin, 0, 0.005);
  sqlite3_finalize(st);
  sqlite3_close(h);
  done(&r);

  /* import, then the same backtest from the database gives the same numbers */
  out_t im = run(ARGS("import", SAMPLE, "--db", db));
  if (im.status != 0) fail_msg("import: %s", im.err);
  assert_non_null(strstr(im.out, "as dataset 'multi_asset'"));
  assert_non_null(strstr(im.out, "3130 dates x 6 assets"));
  done(&im);
  out_t r2 = run(ARGS("backtest", "--db", db, "--dataset", "multi_asset", "--weights", w, "--rebalance", "monthly",
                      "--cost-bps", "10", "--fee", "1", "--capital", "100000"));
  if (r2.status != 0) fail_msg("exit %d: %s", r2.status, r2.err);
  assert_non_null(strstr(r2.out, "stored as run 2"));
  for (size_t k = 0; k < KEEL_METRICS_COUNT; k++) {
    double a = db_metric(db, 1, keel_metrics_name(k)), b = db_metric(db, 2, keel_metrics_name(k));
    if (!(a == b || (isnan(a) && isnan(b)))) fail_msg("%s: %.17g vs %.17g", keel_metrics_name(k), a, b);
  }
  assert_int_equal(db_int(db, "SELECT count(DISTINCT dataset_hash) FROM runs"), 1);
  done(&r2);

  /* --start/--end select the rows; --quiet prints nothing */
  out_t r3 = run(ARGS("backtest", "--prices", SAMPLE, "--weights", "EQUITY=1", "--start", "2015-01-01", "--end",
                      "2015-12-31", "--quiet"));
  assert_int_equal(r3.status, 0);
  assert_string_equal(r3.out, "");
  done(&r3);
  out_t r4 = run(ARGS("backtest", "--prices", SAMPLE, "--weights", "EQUITY=1", "--start", "2015-01-01", "--end",
                      "2015-12-31"));
  assert_non_null(strstr(r4.out, "2015-01-01 .. 2015-12-31 (261 days)"));
  done(&r4);
}

static void test_sample_command(void **state) {
  (void)state;
  const char *path = keel_test_tmp_path("s.csv");
  out_t r = run(ARGS("sample", "--out", path));
  assert_int_equal(r.status, 0);
  done(&r);
  char *a = slurp(path), *b = slurp(SAMPLE);
  assert_string_equal(a, b);
  free(a);
  free(b);
  r = run(ARGS("sample", "--out", path, "--seed", "9", "--years", "3", "--start", "2001-01-01"));
  assert_int_equal(r.status, 0);
  done(&r);
  keel_ctx *ctx = NULL;
  keel_ctx_new(NULL, &ctx);
  keel_panel *p = NULL;
  assert_ok(ctx, keel_panel_read_csv(ctx, path, NULL, &p));
  assert_int_equal(keel_panel_ndates(p), 780);
  char d[KEEL_DATE_BUFSIZE];
  keel_date_format(keel_panel_dates(p)[0], d);
  assert_string_equal(d, "2001-01-01");
  keel_panel_free(p);
  keel_ctx_free(ctx);
}

static void test_optimize_and_frontier(void **state) {
  (void)state;
  out_t r = run(ARGS("optimize", "--prices", SAMPLE, "--objective", "max_sharpe", "--risk-free", "0.02", "--group",
                     "crypto=CRYPTO:0:0.05", "--max-weight", "0.6"));
  if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err);
  assert_non_null(strstr(r.out, "objective          max_sharpe"));
  const char *c = strstr(r.out, "CRYPTO");
  if (c) assert_true(strtod(c + 6, NULL) <= 5.00005);
  assert_true(printed(r.out, "Sharpe ratio") > 0);
  done(&r);
  /* utility from current weights with costs: the turnover cap binds */
  r = run(ARGS("optimize", "--prices", SAMPLE, "--objective", "utility", "--gamma", "3", "--current",
               "BOND=0.5,CASH=0.5", "--cost-bps", "10", "--turnover", "0.2"));
  if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err);
  assert_close(printed(r.out, "turnover"), 20, 0, 1e-4);
  assert_close(printed(r.out, "costs"), 0.02, 0, 1e-4);
  done(&r);
  /* frontier: N points as CSV, returns increasing */
  const char *csv = keel_test_tmp_path("frontier.csv");
  r = run(ARGS("frontier", "--prices", SAMPLE, "--points", "10", "--csv", csv, "--cov", "ledoit_wolf"));
  if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err);
  done(&r);
  char *text = slurp(csv);
  assert_int_equal(lines(text), 11);
  assert_true(strncmp(text, "point,return,volatility,sharpe,", 31) == 0);
  double prev = -INFINITY;
  for (const char *l = strchr(text, '\n') + 1; *l; l = strchr(l, '\n') + 1) {
    const char *f = strchr(l, ',') + 1;
    double ret = strtod(f, NULL);
    assert_true(ret > prev);
    prev = ret;
  }
  free(text);
  /* errors: a usage error (2) and an infeasible group (1, named) */
  r = run(ARGS("optimize", "--prices", SAMPLE, "--objective", "sharpest"));
  assert_int_equal(r.status, 2);
  assert_non_null(strstr(r.err, "--objective: 'sharpest' is not one of"));
  done(&r);
  r = run(ARGS("optimize", "--prices", SAMPLE, "--group", "risky=EQUITY,CRYPTO:0.5:0.4"));
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.err, "group risky has lower bound 0.5 above its upper bound 0.4"));
  done(&r);
  r = run(ARGS("frontier", "--prices", SAMPLE));
  assert_int_equal(r.status, 2);
  assert_non_null(strstr(r.err, "--csv FILE is required"));
  done(&r);
  /* a principal-component factor model instead of the dense covariance */
  r = run(ARGS("optimize", "--prices", SAMPLE, "--cov", "pca", "--factors", "2"));
  if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err);
  double explained = printed(r.out, "factors            2, explaining");
  assert_true(explained > 0 && explained <= 100);
  done(&r);
  r = run(ARGS("optimize", "--prices", SAMPLE, "--cov", "pca", "--factors", "9"));
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.err, "9 factors for"));
  done(&r);
}

/* backtest --spec: a run description, the same metrics as --weights for
 * the same basket, and stored with its sub-accounts. */
static void test_backtest_spec(void **state) {
  (void)state;
  const char *spec = keel_test_tmp_path("run.json");
  const char *j = "{\"start\": \"2015-01-01\", \"subaccounts\": [{\"name\": \"core\", \"capital\": 100000,\n"
                  "  \"weights\": {\"EQUITY\": 0.6, \"BOND\": 0.4}, \"schedule\": \"monthly\",\n"
                  "  \"costs\": {\"buy_bps\": 10, \"sell_bps\": 10, \"lots\": false}}]}";
  assert_int_equal(keel_test_write_file(spec, j, strlen(j)), 0);
  const char *db = keel_test_tmp_path("spec.db");
  out_t a = run(ARGS("backtest", "--prices", SAMPLE, "--spec", spec, "--db", db));
  assert_int_equal(a.status, 0);
  assert_non_null(strstr(a.out, "1 sub-account (fixed_weights)"));
  assert_non_null(strstr(a.out, "stored as run 1"));
  out_t b = run(ARGS("backtest", "--prices", SAMPLE, "--weights", "EQUITY=0.6,BOND=0.4", "--cost-bps", "10",
                     "--start", "2015-01-01", "--db", db));
  assert_int_equal(b.status, 0);
  /* the same final value and Sharpe ratio as the fixed-weight options */
  const char *lines_of[] = {"final value", "Sharpe", "max drawdown"};
  for (size_t k = 0; k < 3; k++) {
    const char *x = strstr(a.out, lines_of[k]), *y = strstr(b.out, lines_of[k]);
    assert_non_null(x);
    assert_non_null(y);
    assert_memory_equal(x, y, strcspn(x, "\n"));
  }
  done(&a);
  done(&b);
  assert_close(db_metric(db, 1, "sharpe"), db_metric(db, 2, "sharpe"), 1e-12, 0);
  assert_int_equal(db_int(db, "SELECT count(*) FROM subaccounts WHERE run_id = 1 AND name = 'core'"), 1);
  assert_int_equal(db_int(db, "SELECT json_extract(params, '$.subaccounts[0].costs.buy_bps') FROM runs WHERE id = 1"),
                   10);
  assert_int_equal(db_int(db, "SELECT npoints = (SELECT count(*) FROM sub_equity WHERE run_id = 1) FROM runs "
                              "WHERE id = 1"),
                   1);
  /* a bad description names the file and the path; options it sets are refused */
  const char *bad = keel_test_tmp_path("bad_run.json");
  const char *bj = "{\"subaccounts\": [{\"capital\": 1, \"weights\": {\"EQUITY\": 1},\n"
                   "  \"band\": {\"kind\": \"absolute\", \"abs\": 2}}]}";
  assert_int_equal(keel_test_write_file(bad, bj, strlen(bj)), 0);
  out_t r = run(ARGS("backtest", "--prices", SAMPLE, "--spec", bad));
  assert_int_equal(r.status, 1);
  char want[4400];
  snprintf(want, sizeof want, "keel: %s: subaccounts[0].band.abs: must be in (0, 1)\n", bad);
  assert_string_equal(r.err, want);
  done(&r);
  r = run(ARGS("backtest", "--prices", SAMPLE, "--spec", spec, "--rebalance", "daily"));
  assert_int_equal(r.status, 2);
  assert_non_null(strstr(r.err, "--rebalance cannot be used with --spec"));
  done(&r);
  r = run(ARGS("backtest", "--prices", SAMPLE, "--spec", "/nonexistent/run.json"));
  assert_int_equal(r.status, 1);
  done(&r);
  /* fills at the next open (here the sample's closes serve as opens): the
   * first trades come a day after the start */
  const char *nx = keel_test_tmp_path("next_open.json");
  const char *nj = "{\"start\": \"2015-01-01\", \"fill\": \"next_open\", \"subaccounts\": [{\"capital\": 1000,\n"
                   "  \"weights\": {\"EQUITY\": 0.6, \"BOND\": 0.4}}]}";
  assert_int_equal(keel_test_write_file(nx, nj, strlen(nj)), 0);
  char dbp[4096]; /* a copy: each run takes the rotating path buffers */
  snprintf(dbp, sizeof dbp, "%s", keel_test_tmp_path("spec.db"));
  r = run(ARGS("backtest", "--prices", SAMPLE, "--opens", SAMPLE, "--spec", nx, "--db", dbp));
  assert_int_equal(r.status, 0);
  done(&r);
  assert_int_equal(db_int(dbp, "SELECT count(*) FROM trades WHERE run_id = 3 AND date = "
                               "(SELECT start_date FROM runs WHERE id = 3)"),
                   0);
  assert_true(db_int(dbp, "SELECT count(*) FROM trades WHERE run_id = 3") > 0);
  r = run(ARGS("backtest", "--prices", SAMPLE, "--spec", nx));
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.err, "next_open needs open prices"));
  done(&r);
  r = run(ARGS("backtest", "--prices", SAMPLE, "--opens", SAMPLE, "--weights", "EQUITY=1"));
  assert_int_equal(r.status, 2);
  done(&r);
}

/* keel batch --jsonl: one line per job on stdout, failures as rows, exit 1
 * when a job failed; a second run skips everything and exits 0. */
static void test_batch_command(void **state) {
  (void)state;
  const char *jobs = keel_test_tmp_path("jobs.jsonl");
  char text[4096];
  snprintf(text, sizeof text,
           "{\"id\": \"a\", \"dataset\": \"%s\", \"run\": {\"subaccounts\": [{\"capital\": 1000, "
           "\"weights\": {\"EQUITY\": 1}}]}}\n"
           "{\"id\": \"b\", \"dataset\": \"%s\", \"run\": {\"subaccounts\": [{\"capital\": 1000, "
           "\"weights\": {\"BOND\": 0.5, \"GOLD\": 0.5}, \"schedule\": \"daily\"}]}}\n"
           "{\"id\": \"c\", \"dataset\": \"%s\", \"run\": {\"subaccounts\": [{\"capital\": 1000, "
           "\"weights\": {\"EQUITY\": 2}}]}}\n",
           SAMPLE, SAMPLE, SAMPLE);
  assert_int_equal(keel_test_write_file(jobs, text, strlen(text)), 0);
  const char *db = keel_test_tmp_path("batch.db");
  out_t r = run(ARGS("batch", jobs, "--db", db, "--jsonl", "--threads", "2"));
  assert_int_equal(r.status, 1);
  assert_int_equal(lines(r.out), 3);
  assert_non_null(strstr(r.out, "\"id\":\"a\""));
  assert_non_null(strstr(r.out, "\"status\":\"ok\""));
  assert_non_null(strstr(r.out, "\"sharpe\":"));
  assert_non_null(strstr(r.out, "\"error\":\""));
  assert_non_null(strstr(r.out, "jobs.jsonl:3: run.subaccounts[0].weights: the weights sum to 2"));
  /* not a terminal: no progress bar, only the summary */
  assert_int_equal(lines(r.err), 1);
  assert_non_null(strstr(r.err, "3 jobs: 2 ran, 1 failed, 0 already stored"));
  done(&r);
  assert_int_equal(db_int(db, "SELECT count(*) FROM runs"), 3);
  r = run(ARGS("batch", jobs, "--db", db, "--jsonl", "--quiet"));
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, "");
  assert_string_equal(r.err, "");
  done(&r);
  assert_int_equal(db_int(db, "SELECT count(*) FROM runs"), 3);
  const char *const *bad[] = {ARGS("batch"), ARGS("batch", jobs), ARGS("batch", jobs, "--db", db, "--threads", "0"),
                              ARGS("batch", jobs, "--db", db, "--bogus"), ARGS("batch", jobs, "x", "--db", db)};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    out_t u = run(bad[i]);
    if (u.status != 2 || lines(u.err) != 1) fail_msg("batch usage case %zu: exit %d: %s", i, u.status, u.err);
    done(&u);
  }
  r = run(ARGS("batch", "--help"));
  assert_int_equal(r.status, 0);
  assert_non_null(strstr(r.out, "--threads"));
  assert_non_null(strstr(r.out, "--jsonl"));
  done(&r);
  r = run(ARGS("batch", "/nonexistent/jobs.jsonl", "--db", db));
  assert_int_equal(r.status, 1);
  done(&r);
  /* on a terminal (script(1) gives it one) the bar is drawn, with the
   * jobs done and the time left */
  char cmd[16384], db2[4096], jb[4096];
  snprintf(db2, sizeof db2, "%s", keel_test_tmp_path("batch_tty.db"));
  snprintf(jb, sizeof jb, "%s", keel_test_tmp_path("jobs.jsonl")); /* the runs above took the rotating buffers */
  snprintf(cmd, sizeof cmd, "script -qec '%s batch %s --db %s' /dev/null 2>&1", KEEL_CLI_PATH, jb, db2);
  FILE *f = popen(cmd, "r");
  if (!f) skip();
  char buf[16384];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  int st = pclose(f);
  /* no script(1), or no pseudo-terminal to be had: nothing to test */
  if ((WIFEXITED(st) && WEXITSTATUS(st) == 127) || strncmp(buf, "script:", 7) == 0) skip();
  assert_non_null(strstr(buf, "3/3 jobs"));
  assert_non_null(strstr(buf, " left"));
  assert_non_null(strstr(buf, "[##############################]"));
}

/* keel stress on the bundled data: the command line, its table and
 * goal probability, the same answer on 1 and 2 threads, --db, --fan, a
 * scenario file, usage errors, and the progress bar on a terminal. */
/* keel advise: the standard template from a profile and holdings, quotes
 * from the sample CSV's last row; JSON that jansson reads back with money
 * conserved; the explanation alone with --text; bad profiles exit 1 with
 * the field named, bad usage exits 2. */
static void test_advise_command(void **state) {
  (void)state;
  char prof[4096], hold[4096], badp[4096];
  snprintf(prof, sizeof prof, "%s", keel_test_tmp_path("profile.json"));
  snprintf(hold, sizeof hold, "%s", keel_test_tmp_path("holdings.json"));
  snprintf(badp, sizeof badp, "%s", keel_test_tmp_path("bad_profile.json"));
  const char *pj = "{\"age\": 35, \"horizon\": 25, \"goal\": \"retirement\", \"initial\": 20000, \"monthly\": 500,"
                   " \"liquidity\": 5000, \"risk_score\": 8}";
  const char *hj = "{\"cash\": 1200, \"positions\": {\"EQUITY\": 40, \"BOND\": 25.5}}";
  const char *bj = "{\"age\": 35, \"horizon\": 25, \"goal\": \"retirement\", \"risk\": 8}";
  assert_int_equal(keel_test_write_file(prof, pj, strlen(pj)), 0);
  assert_int_equal(keel_test_write_file(hold, hj, strlen(hj)), 0);
  assert_int_equal(keel_test_write_file(badp, bj, strlen(bj)), 0);
  const char *tmpl = keel_test_source_path("strategies/templates/standard.lua");
  char tpath[4096];
  snprintf(tpath, sizeof tpath, "%s", tmpl);
  out_t r = run(ARGS("advise", "--template", tpath, "--profile", prof, "--holdings", hold, "--prices", SAMPLE,
                     "--cost-bps", "10", "--fee", "1"));
  if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err);
  json_error_t e;
  json_t *j = json_loads(r.out, 0, &e);
  assert_non_null(j);
  assert_int_equal(json_integer_value(json_object_get(j, "risk_score")), 8);
  double total = json_number_value(json_object_get(j, "total")), costs = 0, value = 0;
  /* 20000 + 1200 + 40 EQUITY + 25.5 BOND at the sample's last closes */
  assert_close(total, 21200 + 40 * 216.9675 + 25.5 * 141.7317, 1e-12, 0);
  json_t *subs = json_object_get(j, "subaccounts");
  assert_int_equal(json_array_size(subs), 3);
  assert_string_equal(json_string_value(json_object_get(json_array_get(subs, 2), "name")), "satellite");
  assert_non_null(json_object_get(json_array_get(subs, 2), "stops"));
  json_t *tr = json_object_get(j, "trades");
  assert_true(json_array_size(tr) >= 5);
  for (size_t i = 0; i < json_array_size(tr); i++) costs += json_number_value(json_object_get(json_array_get(tr, i), "cost"));
  assert_close(costs, json_number_value(json_object_get(j, "trade_costs")), 1e-12, 0);
  /* money conserved: what is held after, at the quotes, plus costs */
  double held[6] = {0, 25.5, 40, 0, 0, 0}, px[6] = {127.5099, 141.7317, 216.9675, 179.8098, 1829.5233, 8614.107};
  const char *sym[6] = {"CASH", "BOND", "EQUITY", "EM_EQUITY", "GOLD", "CRYPTO"};
  for (size_t i = 0; i < json_array_size(tr); i++) {
    json_t *t = json_array_get(tr, i);
    const char *s = json_string_value(json_object_get(t, "symbol"));
    double sh = json_number_value(json_object_get(t, "shares"));
    if (!strcmp(json_string_value(json_object_get(t, "side")), "sell")) sh = -sh;
    for (int k = 0; k < 6; k++)
      if (!strcmp(s, sym[k])) held[k] += sh;
  }
  value = json_number_value(json_object_get(j, "cash_after"));
  for (int k = 0; k < 6; k++) value += held[k] * px[k];
  assert_close(value + costs, total, 1e-9, 0);
  assert_non_null(strstr(json_string_value(json_object_get(j, "explanation")), "risk score is 8 out of 10"));
  json_decref(j);
  done(&r);
  r = run(ARGS("advise", "--template", tpath, "--profile", prof, "--prices", SAMPLE, "--text"));
  assert_int_equal(r.status, 0);
  assert_int_equal(strncmp(r.out, "Your risk score is 8 out of 10.", 31), 0);
  assert_int_equal(lines(r.out), 1);
  done(&r);
  r = run(ARGS("advise", "--template", tpath, "--profile", badp, "--prices", SAMPLE));
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.err, "unknown field 'risk'"));
  done(&r);
  const char *const *bad[] = {ARGS("advise"), ARGS("advise", "--template", tpath),
                              ARGS("advise", "--template", tpath, "--profile", prof),
                              ARGS("advise", "--template", tpath, "--profile", prof, "--prices", SAMPLE, "--fee", "x")};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    out_t u = run(bad[i]);
    if (u.status != 2 || lines(u.err) != 1) fail_msg("advise usage case %zu: exit %d: %s", i, u.status, u.err);
    done(&u);
  }
  r = run(ARGS("advise", "--template", "no_such_template", "--profile", prof, "--prices", SAMPLE));
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.err, "not found"));
  done(&r);
}

/* A Lua strategy in a run description, through keel backtest, keel batch
 * (2 threads) and keel stress (2 threads): the Lua 60/40 gives the same
 * run as the fixed 60/40 basket; a parameter out of its range names the
 * parameter. */
static void test_lua_strategy_commands(void **state) {
  (void)state;
  char mod[4096], spec[4096], fixed[4096], bad[4096], jobs[4096], db[4096];
  snprintf(mod, sizeof mod, "%s", keel_test_tmp_path("l6040.lua"));
  snprintf(spec, sizeof spec, "%s", keel_test_tmp_path("lua_run.json"));
  snprintf(fixed, sizeof fixed, "%s", keel_test_tmp_path("fixed_run.json"));
  snprintf(bad, sizeof bad, "%s", keel_test_tmp_path("lua_bad.json"));
  snprintf(jobs, sizeof jobs, "%s", keel_test_tmp_path("lua_jobs.jsonl"));
  snprintf(db, sizeof db, "%s", keel_test_tmp_path("lua_batch.db"));
  const char *src = "return { name = 'l6040', schedule = 'monthly',\n"
                    "  params = { equity = { type = 'number', default = 0.6, min = 0, max = 1 } },\n"
                    "  rebalance = function(ctx, p) return { EQUITY = p.equity, BOND = 1 - p.equity } end }\n";
  assert_int_equal(keel_test_write_file(mod, src, strlen(src)), 0);
  char text[8192];
  snprintf(text, sizeof text,
           "{\"subaccounts\": [{\"name\": \"core\", \"capital\": 100000, \"assets\": [\"EQUITY\", \"BOND\"], "
           "\"costs\": {\"buy_bps\": 10, \"sell_bps\": 10}, \"strategy\": {\"lua\": \"%s\", \"params\": {\"equity\": 0.6}}}]}",
           mod);
  assert_int_equal(keel_test_write_file(spec, text, strlen(text)), 0);
  const char *fx = "{\"subaccounts\": [{\"name\": \"core\", \"capital\": 100000, \"schedule\": \"monthly\", "
                   "\"costs\": {\"buy_bps\": 10, \"sell_bps\": 10}, \"weights\": {\"EQUITY\": 0.6, \"BOND\": 0.4}}]}";
  assert_int_equal(keel_test_write_file(fixed, fx, strlen(fx)), 0);
  out_t a = run(ARGS("backtest", "--prices", SAMPLE, "--spec", spec));
  if (a.status != 0) fail_msg("exit %d: %s", a.status, a.err);
  out_t b = run(ARGS("backtest", "--prices", SAMPLE, "--spec", fixed));
  assert_int_equal(b.status, 0);
  const char *ma = strstr(a.out, "  capital"), *mb = strstr(b.out, "  capital");
  assert_true(ma && mb);
  assert_string_equal(ma, mb); /* every metric line the same */
  assert_non_null(strstr(a.out, "l6040"));
  done(&a);
  done(&b);
  snprintf(text, sizeof text,
           "{\"subaccounts\": [{\"name\": \"core\", \"capital\": 100000, \"assets\": [\"EQUITY\", \"BOND\"], "
           "\"strategy\": {\"lua\": \"%s\", \"params\": {\"equity\": 1.5}}}]}", mod);
  assert_int_equal(keel_test_write_file(bad, text, strlen(text)), 0);
  a = run(ARGS("backtest", "--prices", SAMPLE, "--spec", bad));
  assert_int_equal(a.status, 1);
  assert_non_null(strstr(a.err, "subaccounts[0].strategy.lua: strategy l6040: param 'equity' is 1.5, above its max 1"));
  done(&a);
  /* a batch of Lua jobs on 2 threads: each its own sandbox */
  size_t o = 0;
  for (int i = 0; i < 6; i++)
    o += (size_t)snprintf(text + o, sizeof text - o,
                          "{\"id\": \"l%d\", \"dataset\": \"%s\", \"run\": {\"subaccounts\": [{\"capital\": 1000, "
                          "\"assets\": [\"EQUITY\", \"BOND\"], \"strategy\": {\"lua\": \"%s\", \"params\": "
                          "{\"equity\": %.1f}}}]}}\n", i, SAMPLE, mod, 0.1 * i);
  assert_int_equal(keel_test_write_file(jobs, text, strlen(text)), 0);
  a = run(ARGS("batch", jobs, "--db", db, "--jsonl", "--threads", "2"));
  if (a.status != 0) fail_msg("exit %d: %s", a.status, a.err);
  assert_int_equal(lines(a.out), 6);
  assert_null(strstr(a.out, "\"error\""));
  done(&a);
  assert_int_equal(keel_test_sql_int(db, "SELECT count(*) FROM runs WHERE strategy = 'l6040'"), 6);
  /* a stress run of the Lua strategy on 2 threads, the same as on 1 */
  const char *const *sargs[2] = {
      ARGS("stress", "--prices", SAMPLE, "--spec", spec, "--paths", "200", "--years", "5", "--threads", "1"),
      ARGS("stress", "--prices", SAMPLE, "--spec", spec, "--paths", "200", "--years", "5", "--threads", "2")};
  out_t s1 = run(sargs[0]), s2 = run(sargs[1]);
  if (s1.status != 0 || s2.status != 0) fail_msg("stress exit %d/%d: %s %s", s1.status, s2.status, s1.err, s2.err);
  const char *t1 = strstr(s1.out, "percentile"), *t2 = strstr(s2.out, "percentile");
  const char *e1 = strstr(s1.out, "ran in"), *e2 = strstr(s2.out, "ran in");
  assert_true(t1 && t2 && e1 && e2 && e1 - t1 == e2 - t2);
  assert_int_equal(memcmp(t1, t2, (size_t)(e1 - t1)), 0);
  done(&s1);
  done(&s2);
}

static void test_stress_command(void **state) {
  (void)state;
  char db[4096], fan[4096], sj[4096], spec[4096];
  snprintf(db, sizeof db, "%s", keel_test_tmp_path("stress.db"));
  snprintf(fan, sizeof fan, "%s", keel_test_tmp_path("fan.csv"));
  snprintf(sj, sizeof sj, "%s", keel_test_tmp_path("scen.json"));
  snprintf(spec, sizeof spec, "%s", keel_test_tmp_path("stress_run.json"));
  out_t r = run(ARGS("stress", "--prices", SAMPLE, "--strategy", "equal", "--generator", "bootstrap", "--paths", "2000",
                     "--years", "30", "--goal", "1000000", "--scenario", "crash:equity:-0.4@5y", "--threads", "1",
                     "--db", db, "--fan", fan));
  if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err);
  assert_non_null(strstr(r.out, "2000 paths x 30 years (360 monthly steps)"));
  assert_non_null(strstr(r.out, "terminal wealth"));
  assert_non_null(strstr(r.out, "max drawdown"));
  assert_non_null(strstr(r.out, "P(wealth >= 1000000.00 after 30 years): "));
  assert_non_null(strstr(r.out, "scenario: crash:equity:-0.4@5y"));
  assert_string_equal(r.err, ""); /* no bar off a terminal */
  /* the printed goal probability is the stored one */
  double pg = keel_test_sql_double(db, "SELECT p_goal FROM stress_runs");
  char want[64];
  snprintf(want, sizeof want, "30 years): %.1f%%", 100 * pg);
  assert_non_null(strstr(r.out, want));
  double med = keel_test_sql_double(db, "SELECT value FROM stress_stats WHERE stat = 'wealth' AND measure = 'p50'");
  snprintf(want, sizeof want, "%.2f", med);
  assert_non_null(strstr(r.out, want));
  assert_int_equal(keel_test_sql_int(db, "SELECT count(*) FROM stress_bands"), 361);
  char *csv = keel_test_read_file(fan, NULL);
  assert_non_null(csv);
  assert_int_equal(strncmp(csv, "step,years,p05,p25,p50,p75,p95\n", 31), 0);
  assert_int_equal(lines(csv), 362);
  free(csv);
  /* 2 threads: the same table */
  out_t r2 = run(ARGS("stress", "--prices", SAMPLE, "--strategy", "equal", "--generator", "bootstrap", "--paths", "2000",
                      "--years", "30", "--goal", "1000000", "--scenario", "crash:equity:-0.4@5y", "--threads", "2"));
  assert_int_equal(r2.status, 0);
  const char *t1 = strstr(r.out, "percentile"), *t2 = strstr(r2.out, "percentile");
  const char *e1 = strstr(r.out, "ran in"), *e2 = strstr(r2.out, "ran in");
  assert_true(t1 && t2 && e1 && e2 && e1 - t1 == e2 - t2);
  assert_int_equal(memcmp(t1, t2, (size_t)(e1 - t1)), 0);
  done(&r2);
  done(&r);
  /* a scenario file and a run description with a DCA plan: IRR is shown */
  const char *scen = "{\"groups\": {\"stocks\": \"*EQUITY*\"}, \"events\": [{\"kind\": \"crash\", \"target\": "
                     "\"stocks\", \"size\": -0.3, \"at\": \"2y\"}, \"liquidity:all:cost=3,halt=1m@2y/6m\"]}";
  assert_int_equal(keel_test_write_file(sj, scen, strlen(scen)), 0);
  const char *desc = "{\"subaccounts\": [{\"name\": \"core\", \"capital\": 10000, \"weights\": {\"EQUITY\": 0.6, "
                     "\"BOND\": 0.4}, \"dca\": [{\"amount\": 500, \"schedule\": \"monthly\"}]}]}";
  assert_int_equal(keel_test_write_file(spec, desc, strlen(desc)), 0);
  r = run(ARGS("stress", "--prices", SAMPLE, "--spec", spec, "--generator", "normal", "--paths", "300", "--years", "10",
               "--scenario-file", sj, "--threads", "2"));
  if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err);
  assert_non_null(strstr(r.out, "IRR (money-weighted)"));
  assert_non_null(strstr(r.out, "paid in"));
  done(&r);
  /* usage errors: one line, exit 2; bad scenarios: exit 1 with the text */
  const char *const *bad[] = {ARGS("stress"),
                              ARGS("stress", "--prices", SAMPLE, "--generator", "magic"),
                              ARGS("stress", "--prices", SAMPLE, "--paths", "0"),
                              ARGS("stress", "--prices", SAMPLE, "--steps", "hourly"),
                              ARGS("stress", "--prices", SAMPLE, "--strategy", "equal", "--weights", "EQUITY=1"),
                              ARGS("stress", "--prices", SAMPLE, "--strategy", "astrology")};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    out_t u = run(bad[i]);
    if (u.status != 2 || lines(u.err) != 1) fail_msg("stress usage case %zu: exit %d: %s", i, u.status, u.err);
    done(&u);
  }
  const char *const *fails[] = {
      ARGS("stress", "--prices", SAMPLE, "--paths", "10", "--scenario", "crash:equity:+0.4@5y"),
      ARGS("stress", "--prices", SAMPLE, "--paths", "10", "--scenario", "crash:nosuch:-0.4@5y"),
      ARGS("stress", "--prices", SAMPLE, "--paths", "10", "--years", "2", "--scenario", "crash:all:-0.4@5y")};
  for (size_t i = 0; i < sizeof fails / sizeof fails[0]; i++) {
    out_t u = run(fails[i]);
    if (u.status != 1 || !strstr(u.err, "scenario")) fail_msg("stress failure case %zu: exit %d: %s", i, u.status, u.err);
    done(&u);
  }
  r = run(ARGS("stress", "--help"));
  assert_int_equal(r.status, 0);
  assert_non_null(strstr(r.out, "--scenario"));
  done(&r);
  /* the progress bar on a terminal */
  char cmd[16384];
  snprintf(cmd, sizeof cmd, "script -qec '%s stress --prices %s --paths 500 --years 5' /dev/null 2>&1", KEEL_CLI_PATH,
           SAMPLE);
  FILE *f = popen(cmd, "r");
  if (!f) skip();
  char buf[16384];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  int st = pclose(f);
  if ((WIFEXITED(st) && WEXITSTATUS(st) == 127) || strncmp(buf, "script:", 7) == 0) skip();
  assert_non_null(strstr(buf, "500/500 paths"));
  assert_non_null(strstr(buf, "[##############################]"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_help_version),       cmocka_unit_test(test_usage_errors),
      cmocka_unit_test(test_runtime_errors),     cmocka_unit_test(test_backtest_and_store),
      cmocka_unit_test(test_sample_command),     cmocka_unit_test(test_optimize_and_frontier),
      cmocka_unit_test(test_backtest_spec),      cmocka_unit_test(test_batch_command),
      cmocka_unit_test(test_advise_command), cmocka_unit_test(test_lua_strategy_commands), cmocka_unit_test(test_stress_command),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
