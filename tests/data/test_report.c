/* The HTML reports (keel/report.h): every chart section of each page is
 * there and is a well-formed, non-empty SVG; the metrics shown are the
 * store's; bad input fails clearly and leaves no file; a schema-3 database
 * is migrated and reported. Kept small: it runs under valgrind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cairo.h>
#include <dirent.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keel/keel.h"
#include "keel_test.h"

/* ---- a small history: three assets, 400 weekdays ---- */

#define ND 400
static keel_panel *history(void) {
  static keel_date d[ND];
  static double px[ND * 3];
  keel_test_bdays(d, ND, 2020, 1, 1);
  uint32_t s = 7;
  double p[3] = {100, 50, 20};
  for (size_t i = 0; i < ND; i++) {
    p[0] *= 1 + 0.0004 + 0.012 * keel_test_lcg(&s);
    p[1] *= 1 + 0.0001 + 0.004 * keel_test_lcg(&s);
    p[2] *= 1 + 0.0008 + 0.03 * keel_test_lcg(&s) - (i == 250 ? 0.3 : 0); /* a fall that trips a stop */
    for (int j = 0; j < 3; j++) px[i * 3 + j] = p[j];
  }
  keel_panel *pn = NULL;
  assert_ok(CTX, keel_panel_new(CTX, ND, 3, d, (const char *const[]){"EQ", "BD", "CR"}, px, &pn));
  return pn;
}

/* A backtest of two sub-accounts (one with a trailing stop), stored with
 * EQ as its benchmark. */
static int64_t store_backtest(keel_store *st, const keel_panel *p, double cost_bps) {
  keel_subaccount_spec sub[2];
  keel_subaccount_spec_default(&sub[0]);
  keel_subaccount_spec_default(&sub[1]);
  static const double w0[] = {0.6, 0.4, 0}, w1[] = {0.5, 0, 0.5};
  sub[0].name = "core", sub[0].weights = w0, sub[0].capital = 60000;
  sub[1].name = "growth", sub[1].weights = w1, sub[1].capital = 40000;
  sub[0].costs.buy_bps = sub[0].costs.sell_bps = sub[1].costs.buy_bps = sub[1].costs.sell_bps = cost_bps;
  sub[0].costs.fee = 1;
  keel_stop_rule stop;
  keel_stop_rule_default(&stop);
  stop.kind = KEEL_STOP_TRAILING;
  stop.level = 0.15;
  sub[1].stops = &stop, sub[1].nstops = 1;
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 2, a.subs = sub;
  keel_backtest_result *r = NULL;
  assert_ok(CTX, keel_backtest_run_account(CTX, p, &a, &r));
  keel_record_meta meta = {.dataset = "test.csv", .strategy = "two_baskets", .spec = &a, .benchmark = "EQ"};
  keel_run_record rec;
  assert_ok(CTX, keel_backtest_record_fill(CTX, r, p, &meta, &rec));
  assert_true(rec.nweights > 0);
  assert_non_null(rec.benchmark);
  int64_t id = 0;
  assert_ok(CTX, keel_store_save_run(CTX, st, &rec, &id));
  keel_backtest_record_free(&rec);
  keel_backtest_result_free(r);
  return id;
}

/* ---- checks on a page ---- */

static int b64val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes the base64 of src up to the closing quote. */
static char *b64dec(const char *src, size_t *len) {
  const char *end = strchr(src, '"');
  assert_non_null(end);
  char *out = malloc((size_t)(end - src) / 4 * 3 + 4);
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (const char *p = src; p < end; p++) {
    if (*p == '=') break;
    int v = b64val(*p);
    assert_true(v >= 0);
    acc = acc << 6 | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)(acc >> bits & 255);
    }
  }
  out[o] = '\0';
  *len = o;
  return out;
}

/* Well-formed XML, as far as elements go: every start tag is closed in
 * order, attribute values are quoted; counts the drawn paths. */
static void check_svg(const char *s, size_t len, const char *id) {
  assert_true(len > 200);
  assert_non_null(strstr(s, "<svg"));
  const char *stack[256];
  size_t sl[256], depth = 0, paths = 0, elems = 0;
  const char *p = s, *end = s + len;
  while ((p = memchr(p, '<', (size_t)(end - p)))) {
    if (!strncmp(p, "<?", 2)) {
      p = strstr(p, "?>");
      assert_non_null(p);
      continue;
    }
    if (!strncmp(p, "<!--", 4)) {
      p = strstr(p, "-->");
      assert_non_null(p);
      continue;
    }
    const char *gt = memchr(p, '>', (size_t)(end - p));
    if (!gt) fail_msg("chart %s: a tag is not closed", id);
    if (p[1] == '/') {
      size_t n = strcspn(p + 2, " >");
      if (!depth || sl[depth - 1] != n || strncmp(stack[depth - 1], p + 2, n))
        fail_msg("chart %s: </%.*s> closes nothing open", id, (int)n, p + 2);
      depth--;
    } else {
      size_t n = strcspn(p + 1, " \t\n/>");
      int quotes = 0;
      for (const char *q = p; q < gt; q++) quotes += *q == '"';
      if (quotes % 2) fail_msg("chart %s: an attribute of <%.*s> is not quoted", id, (int)n, p + 1);
      elems++;
      if (n == 4 && !strncmp(p + 1, "path", 4) && strstr(p, " d=\"") && strstr(p, " d=\"") < gt) paths++;
      if (gt[-1] != '/') {
        assert_true(depth < 256);
        stack[depth] = p + 1, sl[depth++] = n;
      }
    }
    p = gt + 1;
  }
  if (depth) fail_msg("chart %s: <%.*s> is never closed", id, (int)sl[depth - 1], stack[depth - 1]);
  if (paths < 5) fail_msg("chart %s: only %zu drawn paths", id, paths);
  assert_true(elems > 10);
}

/* Every chart of html: its figure with an SVG image that is well-formed
 * and drawn; ids lists those that must be there. */
static void check_charts(const char *html, const char *const *ids, size_t nids, size_t ncharts) {
  size_t seen = 0;
  for (const char *p = html; (p = strstr(p, "<figure class=\"chart")); p++) {
    const char *id = strstr(p, "id=\"chart-");
    const char *src = strstr(p, "src=\"data:image/svg+xml;base64,");
    assert_non_null(id);
    assert_non_null(src);
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(id + 10, "\""), id + 10);
    size_t len;
    char *svg = b64dec(src + strlen("src=\"data:image/svg+xml;base64,"), &len);
    check_svg(svg, len, name);
    free(svg);
    seen++;
  }
  assert_int_equal(seen, ncharts);
  for (size_t k = 0; k < nids; k++) {
    char needle[320];
    snprintf(needle, sizeof needle, "id=\"chart-%s\"", ids[k]);
    if (!strstr(html, needle)) fail_msg("no chart %s on the page", ids[k]);
  }
  /* nothing from elsewhere: no script, no external source */
  assert_null(strstr(html, "<script"));
  assert_null(strstr(html, "http://"));
  assert_null(strstr(html, "https://"));
  assert_null(strstr(html, "<link"));
}

/* The text of the cell data-metric="name". */
static void cell(const char *html, const char *attr, char *out, size_t n) {
  char needle[320];
  snprintf(needle, sizeof needle, "%s\">", attr);
  const char *p = strstr(html, needle);
  if (!p) fail_msg("no cell %s", attr);
  p += strlen(needle);
  snprintf(out, n, "%.*s", (int)strcspn(p, "<"), p);
}

static keel_report *report(keel_store *st, const int64_t *ids, size_t n) {
  keel_report *r = NULL;
  assert_ok(CTX, keel_report_new(CTX, st, ids, n, NULL, &r));
  return r;
}

static void test_backtest_page(void **state) {
  (void)state;
  const char *db = keel_test_tmp_path("bt.db");
  keel_panel *p = history();
  keel_store *st = NULL;
  assert_ok(CTX, keel_store_open(CTX, db, &st));
  int64_t id = store_backtest(st, p, 10);
  keel_report *r = report(st, &id, 1);
  size_t len;
  const char *html = keel_report_html(r, &len);
  assert_int_equal(strlen(html), len);
  static const char *const ids[] = {"growth", "growth-log", "drawdown", "weights-0", "weights-1", "rolling-vol",
                                    "rolling-sharpe", "monthly", "costs", "turnover"};
  check_charts(html, ids, 10, keel_report_ncharts(r));
  assert_int_equal(keel_report_ncharts(r), 10);
  /* the metrics shown are the store's */
  char q[256], got[64], want[64];
  static const char *const pct[] = {"total_return", "cagr", "volatility", "max_drawdown", "turnover"};
  for (size_t k = 0; k < 5; k++) {
    snprintf(q, sizeof q, "SELECT value FROM metrics WHERE run_id = %lld AND name = '%s'", (long long)id, pct[k]);
    snprintf(want, sizeof want, "%.2f%%", 100 * keel_test_sql_double(db, q));
    snprintf(q, sizeof q, "data-metric=\"%s", pct[k]);
    cell(html, q, got, sizeof got);
    assert_string_equal(got, want);
  }
  snprintf(q, sizeof q, "SELECT value FROM metrics WHERE run_id = %lld AND name = 'sharpe'", (long long)id);
  snprintf(want, sizeof want, "%.3f", keel_test_sql_double(db, q));
  cell(html, "data-metric=\"sharpe", got, sizeof got);
  assert_string_equal(got, want);
  snprintf(q, sizeof q, "SELECT value FROM metrics WHERE run_id = %lld AND name = 'ntrades'", (long long)id);
  snprintf(want, sizeof want, "%.0f", keel_test_sql_double(db, q));
  cell(html, "data-metric=\"ntrades", got, sizeof got);
  assert_string_equal(got, want);
  /* the stop fired and is marked; the sub-accounts are listed */
  snprintf(q, sizeof q, "SELECT count(*) FROM events WHERE run_id = %lld AND kind = 'stop'", (long long)id);
  assert_true(keel_test_sql_int(db, q) > 0);
  assert_non_null(strstr(html, "growth"));
  assert_non_null(strstr(html, "id=\"subaccounts\""));
  /* saved whole, readable by others, nothing left beside it */
  const char *out = keel_test_tmp_path("bt.html");
  assert_ok(CTX, keel_report_save(CTX, r, out));
  size_t flen;
  char *file = keel_test_read_file(out, &flen);
  assert_non_null(file);
  assert_int_equal(flen, len);
  assert_memory_equal(file, html, len);
  free(file);
  struct stat sb;
  assert_int_equal(stat(out, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0644);
  keel_report_free(r);
  keel_store_close(st);
  keel_panel_free(p);
}

static void test_stress_page(void **state) {
  (void)state;
  const char *db = keel_test_tmp_path("st.db");
  keel_panel *p = history();
  keel_mc_calibration cal;
  keel_mc_calibration_default(&cal);
  cal.kind = KEEL_MC_BOOTSTRAP, cal.freq = KEEL_MC_MONTHLY, cal.years = 3;
  keel_mc *g = NULL;
  assert_ok(CTX, keel_mc_calibrate(CTX, p, &cal, &g));
  keel_scenario *sc = NULL;
  assert_ok(CTX, keel_scenario_new(CTX, 3, (const char *const[]){"EQ", "BD", "CR"}, &sc));
  assert_ok(CTX, keel_scenario_parse(CTX, sc, "crash:EQ:-0.3@1y;vol:all:2@2y/6m"));
  assert_ok(CTX, keel_mc_set_scenario(CTX, g, sc));
  keel_subaccount_spec sub;
  keel_subaccount_spec_default(&sub);
  static const double w[] = {0.5, 0.4, 0.1};
  sub.weights = w;
  keel_account_spec a;
  keel_account_spec_default(&a);
  a.nsubs = 1, a.subs = &sub;
  keel_stress_options o;
  keel_stress_options_default(&o);
  o.gen = g, o.account = &a, o.history = p, o.npaths = 300, o.threads = 1, o.goal = 130000;
  keel_stress_result *r = NULL;
  assert_ok(CTX, keel_stress_run(CTX, &o, &r));
  keel_stress_record rec;
  keel_stress_record_buf buf;
  keel_stress_meta m = {.strategy = "fixed_weights", .generator = "bootstrap",
                        .scenario = "crash:EQ:-0.3@1y;vol:all:2@2y/6m"};
  assert_ok(CTX, keel_stress_record_fill(CTX, r, &m, &rec, &buf));
  /* the histogram holds every path */
  double tot = 0;
  for (size_t k = 0; k < rec.nhist; k++) tot += rec.hist_share[k];
  assert_close(tot, 1, 1e-12, 1e-12);
  keel_store *st = NULL;
  int64_t id = 0;
  assert_ok(CTX, keel_store_open(CTX, db, &st));
  assert_ok(CTX, keel_store_save_stress(CTX, st, &rec, &id));
  keel_report *rep = report(st, &id, 1);
  const char *html = keel_report_html(rep, NULL);
  static const char *const ids[] = {"fan", "histogram"};
  check_charts(html, ids, 2, keel_report_ncharts(rep));
  assert_non_null(strstr(html, "id=\"scenario\""));
  assert_non_null(strstr(html, "vol:all:2@2y/6m"));
  char got[64], want[64];
  snprintf(want, sizeof want, "%.1f%%", 100 * keel_stress_prob_goal(r, 130000, 0));
  assert_non_null(strstr(html, want));
  char qs[160];
  snprintf(qs, sizeof qs, "SELECT value FROM stress_stats WHERE run_id = %lld AND stat = 'cagr' AND measure = 'p50'",
           (long long)id);
  snprintf(want, sizeof want, "%.2f%%", 100 * keel_test_sql_double(db, qs));
  cell(html, "data-stat=\"cagr.p50", got, sizeof got);
  assert_string_equal(got, want);
  keel_report_free(rep);
  keel_store_close(st);
  keel_stress_result_free(r);
  keel_scenario_free(sc);
  keel_mc_free(g);
  keel_panel_free(p);
}

static void test_optimization_page(void **state) {
  (void)state;
  const char *db = keel_test_tmp_path("opt.db");
  static const double mu[] = {0.07, 0.03, 0.15}, S[] = {0.04, 0.002, 0.01, 0.002, 0.0025, 0.001, 0.01, 0.001, 0.25};
  static const char *const syms[] = {"EQ", "BD", "CR"};
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  s.objective = KEEL_OBJ_MAX_SHARPE;
  enum { NP = 12 };
  double w[3], rc[3], vol[3], fr[NP], fv[NP], fw[NP * 3], cur[3] = {0.6, 0.4, 0}, cvol, e[3], tmp[3];
  keel_mv_result r;
  keel_cmat cov = keel_cmat_view(S, 3, 3);
  assert_ok(CTX, keel_mv_optimize(CTX, 3, mu, cov, NULL, &s, w, &r));
  assert_ok(CTX, keel_mv_risk_contributions(CTX, 3, cov, NULL, w, rc, NULL));
  assert_close(rc[0] + rc[1] + rc[2], 1, 1e-12, 1e-12);
  assert_ok(CTX, keel_mv_risk_contributions(CTX, 3, cov, NULL, cur, tmp, &cvol));
  for (int i = 0; i < 3; i++) {
    memset(e, 0, sizeof e);
    e[i] = 1;
    assert_ok(CTX, keel_mv_risk_contributions(CTX, 3, cov, NULL, e, tmp, &vol[i]));
    assert_close(vol[i], sqrt(S[i * 4]), 1e-14, 0);
  }
  assert_ok(CTX, keel_mv_frontier(CTX, 3, mu, cov, NULL, &s, NP, fr, fv, keel_mat_view(fw, NP, 3)));
  keel_optimization_record rec = {.kind = "optimize", .objective = "max_sharpe", .cov = "sample",
                                  .params_json = "{}", .dataset = "test.csv", .dataset_hash = "",
                                  .start = keel_test_date(2020, 1, 1), .end = keel_test_date(2021, 1, 1),
                                  .nassets = 3, .symbols = syms, .mu = mu, .vol = vol, .weights = w,
                                  .current = cur, .risk_contrib = rc, .ret = r.ret, .vol_p = r.vol,
                                  .sharpe = r.sharpe, .turnover = r.turnover, .cost = r.cost, .cash = r.cash,
                                  .current_ret = 0.6 * mu[0] + 0.4 * mu[1], .current_vol = cvol, .npoints = NP,
                                  .frontier_ret = fr, .frontier_vol = fv, .frontier_weights = fw};
  keel_store *st = NULL;
  int64_t id = 0;
  assert_ok(CTX, keel_store_open(CTX, db, &st));
  rec.kind = "sideways";
  assert_status(CTX, keel_store_save_optimization(CTX, st, &rec, &id), KEEL_EINVAL);
  rec.kind = "optimize";
  assert_ok(CTX, keel_store_save_optimization(CTX, st, &rec, &id));
  keel_report *rep = report(st, &id, 1);
  const char *html = keel_report_html(rep, NULL);
  static const char *const ids[] = {"frontier", "transition", "weights", "risk"};
  check_charts(html, ids, 4, keel_report_ncharts(rep));
  char got[64], want[64];
  snprintf(want, sizeof want, "%.2f%%", 100 * w[2]);
  cell(html, "data-weight=\"2", got, sizeof got);
  assert_string_equal(got, want);
  keel_report_free(rep);
  keel_store_close(st);
}

static void test_batch_page(void **state) {
  (void)state;
  keel_panel *p = history();
  keel_store *st = NULL;
  assert_ok(CTX, keel_store_open(CTX, keel_test_tmp_path("batch.db"), &st));
  int64_t ids[3] = {store_backtest(st, p, 0), store_backtest(st, p, 25), store_backtest(st, p, 80)};
  keel_report *rep = report(st, ids, 3);
  const char *html = keel_report_html(rep, NULL);
  static const char *const cids[] = {"overlay", "scatter"};
  check_charts(html, cids, 2, keel_report_ncharts(rep));
  for (int k = 0; k < 3; k++) {
    char needle[64];
    snprintf(needle, sizeof needle, "data-run=\"%lld\"", (long long)ids[k]);
    assert_non_null(strstr(html, needle));
  }
  /* best Sharpe first: the run without costs */
  assert_true(strstr(html, "data-run=\"1\"") < strstr(html, "data-run=\"3\""));
  keel_report_free(rep);
  keel_store_close(st);
  keel_panel_free(p);
}

static size_t files_in(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  size_t n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static void test_bad_input(void **state) {
  (void)state;
  keel_panel *p = history();
  keel_store *st = NULL;
  keel_report *r = NULL;
  assert_ok(CTX, keel_store_open(CTX, keel_test_tmp_path("bad.db"), &st));
  int64_t id = store_backtest(st, p, 10), none = 999;
  assert_status(CTX, keel_report_new(CTX, st, &none, 1, NULL, &r), KEEL_EINVAL);
  assert_null(r);
  assert_errmsg(CTX, "no run 999");
  int64_t two[2] = {id, none};
  assert_status(CTX, keel_report_new(CTX, st, two, 2, NULL, &r), KEEL_EINVAL);
  assert_null(r);
  assert_status(CTX, keel_report_new(CTX, st, &id, 0, NULL, &r), KEEL_EINVAL);
  /* a failed run has nothing to show */
  keel_run_record er = {.kind = "backtest", .strategy = "x", .params_json = "{}", .dataset = "d",
                        .dataset_hash = "", .status = "error", .error = "dataset: no such file",
                        .start = KEEL_DATE_NONE, .end = KEEL_DATE_NONE};
  int64_t eid = 0;
  assert_ok(CTX, keel_store_save_run(CTX, st, &er, &eid));
  assert_status(CTX, keel_report_new(CTX, st, &eid, 1, NULL, &r), KEEL_EINVAL);
  assert_errmsg(CTX, "no such file");
  /* no such database: the store refuses the folder */
  keel_store *s2 = NULL;
  assert_status(CTX, keel_store_open(CTX, "/nonexistent/dir/x.db", &s2), KEEL_EIO);
  /* unwritable outputs: a folder that does not exist, a path that is a folder */
  assert_ok(CTX, keel_report_new(CTX, st, &id, 1, NULL, &r));
  const char *dir = keel_test_tmp_path("out");
  assert_int_equal(mkdir(dir, 0755), 0);
  char path[4200];
  snprintf(path, sizeof path, "%s/missing/r.html", dir);
  assert_status(CTX, keel_report_save(CTX, r, path), KEEL_EIO);
  assert_errmsg(CTX, "missing/r.html");
  snprintf(path, sizeof path, "%s/sub", dir);
  assert_int_equal(mkdir(path, 0755), 0);
  assert_status(CTX, keel_report_save(CTX, r, path), KEEL_EIO);
  assert_errmsg(CTX, "cannot write");
  assert_int_equal(files_in(dir), 1); /* the folder "sub" only: no temporary or partial file */
  keel_report_free(r);
  keel_store_close(st);
  keel_panel_free(p);
}

/* A schema-3 database (the v4 parts dropped again) is migrated on open and
 * its old run reported, without the parts it never had. */
static void test_migration_from_v3(void **state) {
  (void)state;
  const char *db = keel_test_tmp_path("v3.db");
  keel_panel *p = history();
  keel_store *st = NULL;
  assert_ok(CTX, keel_store_open(CTX, db, &st));
  int64_t id = store_backtest(st, p, 10);
  keel_store_close(st);
  sqlite3 *h;
  assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
  assert_int_equal(sqlite3_exec(h,
                                "DROP TABLE sub_weights; DROP TABLE stress_hist; DROP TABLE opt_frontier_weights; "
                                "DROP TABLE opt_frontier; DROP TABLE opt_assets; DROP TABLE opt_runs; "
                                "ALTER TABLE equity DROP COLUMN benchmark; ALTER TABLE runs DROP COLUMN benchmark; "
                                "PRAGMA user_version = 3;",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(h);
  assert_int_equal(keel_test_sql_int(db, "PRAGMA user_version"), 3);
  assert_ok(CTX, keel_store_open(CTX, db, &st));
  assert_int_equal(keel_store_schema_version(st), 4);
  assert_int_equal(keel_test_sql_int(db, "PRAGMA user_version"), 4);
  assert_int_equal(keel_test_sql_int(db, "SELECT count(*) FROM sub_weights"), 0);
  assert_int_equal(keel_test_sql_int(db, "SELECT count(*) FROM equity WHERE benchmark IS NOT NULL"), 0);
  assert_true(keel_test_sql_int(db, "SELECT count(*) FROM equity") > 300);
  keel_report *r = report(st, &id, 1);
  const char *html = keel_report_html(r, NULL);
  static const char *const ids[] = {"growth", "drawdown", "monthly"};
  check_charts(html, ids, 3, keel_report_ncharts(r));
  assert_null(strstr(html, "id=\"chart-weights-0\""));
  assert_non_null(strstr(html, "No benchmark stored"));
  keel_report_free(r);
  /* and new runs go in whole */
  int64_t id2 = store_backtest(st, p, 10);
  assert_true(id2 > id);
  keel_store_close(st);
  keel_panel_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backtest_page),   cmocka_unit_test(test_stress_page),
      cmocka_unit_test(test_optimization_page), cmocka_unit_test(test_batch_page),
      cmocka_unit_test(test_bad_input),       cmocka_unit_test(test_migration_from_v3),
  };
  int rc = cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
  /* cairo and fontconfig keep process-wide caches for the life of the
   * process; a program that is done with them frees them, so valgrind
   * sees nothing left (never in the library: a host may still use them) */
  cairo_debug_reset_static_data();
  FcFini();
  return rc;
}
