/* Tests of the CSV loader and writer (data/csv.c). */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "data/numparse.h"
#include "keel_test.h"

#define D(y, m, d) keel_test_date(y, m, d)

static keel_panel *parse_ok(const char *text) {
  keel_panel *p = NULL;
  keel_status st = keel_panel_parse_csv(CTX, "t.csv", text, strlen(text), NULL, &p);
  if (st != KEEL_OK) fail_msg("parse failed: %s", keel_errmsg(CTX));
  return p;
}

/* Parses text, expects status st and a message starting with prefix and
 * containing needle. */
static void parse_bad(const char *text, keel_status st, const char *prefix, const char *needle) {
  keel_panel *p = (keel_panel *)1;
  keel_status got = keel_panel_parse_csv(CTX, "t.csv", text, strlen(text), NULL, &p);
  if (got != st) fail_msg("input %s: status %d, expected %d (%s)", text, got, st, keel_errmsg(CTX));
  assert_null(p);
  const char *m = keel_errmsg(CTX);
  if (strncmp(m, prefix, strlen(prefix)) != 0)
    fail_msg("message \"%s\" does not start with \"%s\"", m, prefix);
  if (needle && !strstr(m, needle)) fail_msg("message \"%s\" does not contain \"%s\"", m, needle);
}

static void test_wide_basic(void **state) {
  (void)state;
  keel_panel *p = parse_ok("date,AAA,BBB\n2020-01-02,1.5,\n2020-01-03,2,3.25\n2020-01-06,NA,4e1\n");
  assert_int_equal(keel_panel_ndates(p), 3);
  assert_int_equal(keel_panel_nassets(p), 2);
  assert_string_equal(keel_panel_symbol(p, 0), "AAA");
  assert_string_equal(keel_panel_symbol(p, 1), "BBB");
  assert_int_equal(keel_panel_dates(p)[0], D(2020, 1, 2));
  assert_int_equal(keel_panel_dates(p)[2], D(2020, 1, 6));
  assert_close(keel_panel_price(p, 0, 0), 1.5, 0, 0);
  assert_true(isnan(keel_panel_price(p, 0, 1)));
  assert_close(keel_panel_price(p, 1, 1), 3.25, 0, 0);
  assert_true(isnan(keel_panel_price(p, 2, 0)));
  assert_close(keel_panel_price(p, 2, 1), 40, 0, 0);
  assert_int_equal(keel_panel_first_valid(p, 1), 1);
  keel_panel_free(p);
}

static void test_variants(void **state) {
  (void)state;
  const char *same[] = {
      "date,A,B\n2020-01-02,1,2\n2020-01-03,3,4\n",
      "date;A;B\r\n2020-01-02;1;2\r\n2020-01-03;3;4\r\n",
      "date\tA\tB\n2020/01/02\t1\t2\n20200103\t3\t4",
      "\xEF\xBB\xBF\"date\",\"A\",\"B\"\n\"2020-01-02\",\"1\",\"2\"\n2020-01-03,3.0,+4\n",
      "Date, A , B\n2020-01-02, 1 ,2\n\n2020-01-03,3,4\n\n",
      "date,A,B\r2020-01-02,1,2\r2020-01-03,3,4\r",
      "date,symbol,price\n2020-01-02,A,1\n2020-01-02,B,2\n2020-01-03,A,3\n2020-01-03,B,4\n",
      "Date,Ticker,Close\n2020-01-02,B,2\n2020-01-03,B,4\n2020-01-02,A,1\n2020-01-03,A,3\n",
  };
  for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
    keel_panel *p = parse_ok(same[i]);
    assert_int_equal(keel_panel_ndates(p), 2);
    assert_int_equal(keel_panel_nassets(p), 2);
    size_t a, b;
    assert_true(keel_panel_find(p, "A", &a));
    assert_true(keel_panel_find(p, "B", &b));
    assert_int_equal(keel_panel_dates(p)[0], D(2020, 1, 2));
    assert_int_equal(keel_panel_dates(p)[1], D(2020, 1, 3));
    assert_close(keel_panel_price(p, 0, a), 1, 0, 0);
    assert_close(keel_panel_price(p, 0, b), 2, 0, 0);
    assert_close(keel_panel_price(p, 1, a), 3, 0, 0);
    assert_close(keel_panel_price(p, 1, b), 4, 0, 0);
    keel_panel_free(p);
  }
}

static void test_missing_tokens(void **state) {
  (void)state;
  keel_panel *p = parse_ok("date,A\n2020-01-01,\n2020-01-02,NA\n2020-01-03,n/a\n2020-01-04,NaN\n"
                           "2020-01-05,null\n2020-01-06,\"\"\n2020-01-07,#N/A\n2020-01-08,5\n");
  for (size_t i = 0; i < 7; i++) assert_true(isnan(keel_panel_price(p, i, 0)));
  assert_close(keel_panel_price(p, 7, 0), 5, 0, 0);
  assert_int_equal(keel_panel_first_valid(p, 0), 7);
  keel_panel_free(p);
}

static void test_long_layout(void **state) {
  (void)state;
  /* C starts later; the panel's dates are the union. */
  keel_panel *p = parse_ok("date,symbol,price\n2020-01-02,A,1\n2020-01-03,A,2\n2020-01-06,C,9\n"
                           "2020-01-07,A,3\n2020-01-07,C,8\n");
  assert_int_equal(keel_panel_ndates(p), 4);
  assert_int_equal(keel_panel_nassets(p), 2);
  assert_string_equal(keel_panel_symbol(p, 1), "C");
  assert_true(isnan(keel_panel_price(p, 2, 0)));
  assert_close(keel_panel_price(p, 2, 1), 9, 0, 0);
  assert_true(isnan(keel_panel_price(p, 0, 1)));
  keel_panel_free(p);
  /* forced layouts */
  keel_csv_options o;
  keel_csv_options_default(&o);
  o.layout = KEEL_CSV_LONG;
  const char *t = "when,what,how much\n2020-01-02,A,1\n";
  assert_ok(CTX, keel_panel_parse_csv(CTX, "t.csv", t, strlen(t), &o, &p));
  assert_string_equal(keel_panel_symbol(p, 0), "A");
  keel_panel_free(p);
  o.layout = KEEL_CSV_WIDE;
  t = "when,X\n2020-01-02,1\n";
  assert_ok(CTX, keel_panel_parse_csv(CTX, "t.csv", t, strlen(t), &o, &p));
  assert_string_equal(keel_panel_symbol(p, 0), "X");
  keel_panel_free(p);
  /* a wide file whose three columns are named like a long header is long */
  o.layout = KEEL_CSV_WIDE;
  t = "date,symbol,price\n2020-01-02,1,2\n";
  assert_ok(CTX, keel_panel_parse_csv(CTX, "t.csv", t, strlen(t), &o, &p));
  assert_int_equal(keel_panel_nassets(p), 2);
  keel_panel_free(p);
}

static void test_numbers(void **state) {
  (void)state;
  locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  struct { const char *s; double v; } ok[] = {
      {"12", 12},          {"12.5", 12.5},   {".5", 0.5},     {"5.", 5},
      {"1e3", 1000},       {"1.5E-3", 1.5e-3}, {"+3", 3},     {"-2.25", -2.25},
      {"0.1", 0.1},        {"123.456789", 123.456789},        {"000123", 123},
      {"9007199254740993", 9007199254740993.0}, /* beyond 2^53: slow path, rounded */
      {"1.7976931348623157e308", 1.7976931348623157e308},
      {"4.9406564584124654e-324", 4.9406564584124654e-324},
      {"0.30000000000000004", 0.30000000000000004},
      {"123456789012345678901234567890", 123456789012345678901234567890.0},
      {"1e22", 1e22},      {"1e23", 1e23},   {"0.000000000000000000000000001", 1e-27},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    double v = -1;
    if (keeli_parse_double(ok[i].s, strlen(ok[i].s), c, &v) != 0) fail_msg("rejected %s", ok[i].s);
    if (v != ok[i].v) fail_msg("%s parsed as %.17g, expected %.17g", ok[i].s, v, ok[i].v);
    /* and it agrees with strtod to the bit */
    if (v != strtod_l(ok[i].s, NULL, c)) fail_msg("%s differs from strtod", ok[i].s);
  }
  const char *bad[] = {"", "+", "-", ".", "e5", "1e", "1e+", "12abc", "1,5", "0x10", "inf", "nan",
                       "1..2", "1.2.3", " 1", "1 ", "--1", "1e5.5"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    double v;
    if (keeli_parse_double(bad[i], strlen(bad[i]), c, &v) == 0) fail_msg("accepted '%s'", bad[i]);
  }
  /* at most KEEL_NUM_MAXLEN bytes, on the fast path too */
  {
    char lz[KEEL_NUM_MAXLEN + 2];
    memset(lz, '0', sizeof lz);
    lz[KEEL_NUM_MAXLEN] = '5';
    double v = 0;
    assert_int_equal(keeli_parse_double(lz + 1, KEEL_NUM_MAXLEN, c, &v), 0);
    assert_close(v, 5, 0, 0);
    assert_int_equal(keeli_parse_double(lz, KEEL_NUM_MAXLEN + 1, c, &v), -2);
  }
  /* random decimal strings agree with strtod to the bit */
  srand(7);
  for (int k = 0; k < 200000; k++) {
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%d.%0*d", rand() % 100000, 1 + rand() % 9, rand() % 1000000000);
    if (k % 3 == 0) n += snprintf(buf + n, sizeof buf - (size_t)n, "e%d", rand() % 40 - 20);
    double v;
    assert_int_equal(keeli_parse_double(buf, (size_t)n, c, &v), 0);
    if (v != strtod_l(buf, NULL, c)) fail_msg("%s: %.17g vs strtod %.17g", buf, v, strtod_l(buf, NULL, c));
  }
  freelocale(c);
}

/* Every kind of bad file, with the exact line and column. */
static void test_rejects(void **state) {
  (void)state;
  parse_bad("date,A,B\n2020-01-02,1,x2\n", KEEL_EPARSE, "t.csv:2:14: ", "column 'B': 'x2' is not a number");
  parse_bad("date,A,B\n2020-01-02,1,2\n2020-01-03,0,2\n", KEEL_EPARSE, "t.csv:3:12: ", "must be > 0");
  parse_bad("date,A,B\n2020-01-02,1,-2\n", KEEL_EPARSE, "t.csv:2:14: ", "must be > 0");
  parse_bad("date,A\n2020-01-02,1e999\n", KEEL_EPARSE, "t.csv:2:12: ", "out of range");
  parse_bad("date,A\n2020-01-02,1,5\n", KEEL_EPARSE, "t.csv:2:14: ", "too many fields");
  parse_bad("date,A,B\n2020-01-02,1\n", KEEL_EPARSE, "t.csv:2:13: ", "too few fields");
  parse_bad("date,A\n2020-01-03,1\n2020-01-02,1\n", KEEL_EPARSE, "t.csv:3:1: ", "increasing order");
  parse_bad("date,A\n2020-01-03,1\n2020-01-03,1\n", KEEL_EPARSE, "t.csv:3:1: ", "duplicate date");
  parse_bad("date,A\n2020-02-30,1\n", KEEL_EPARSE, "t.csv:2:1: ", "not a date");
  parse_bad("date,A\n01/02/2020,1\n", KEEL_EPARSE, "t.csv:2:1: ", "not a date");
  parse_bad("2020-01-02,1,2\n2020-01-03,1,2\n", KEEL_EPARSE, "t.csv:1:1: ", "no header");
  parse_bad("", KEEL_EPARSE, "t.csv:1:1: ", "empty file");
  parse_bad("\n\n", KEEL_EPARSE, "t.csv:1:1: ", "empty file");
  parse_bad("date,A,B\n", KEEL_EPARSE, "t.csv:2:1: ", "no data rows");
  parse_bad("date,A,B", KEEL_EPARSE, "t.csv:1:1: ", "no data rows");
  parse_bad("date\n2020-01-02\n", KEEL_EPARSE, "t.csv:1:5: ", "no asset columns");
  parse_bad("date,A,A\n2020-01-02,1,2\n", KEEL_EPARSE, "t.csv:1:8: ", "appears twice");
  parse_bad("date,A,,B\n2020-01-02,1,2,3\n", KEEL_EPARSE, "t.csv:1:8: ", "empty name");
  parse_bad("price,A,B\n2020-01-02,1,2\n", KEEL_EPARSE, "t.csv:1:1: ", "unknown layout");
  parse_bad("date,name,amount\n2020-01-02,A,1\n", KEEL_EPARSE, "t.csv:2:12: ", "unknown layout: 3 columns");
  parse_bad("date;A\n2020-01-02;1,5\n", KEEL_EPARSE, "t.csv:2:12: ", "column 'A': '1,5' is not a number");
  parse_bad("date,A,B\n2020-01-02,1,inf\n", KEEL_EPARSE, "t.csv:2:14: ", "'inf' is not a number");
  parse_bad("date,A,B\n2020-01-02,1,0x1A\n", KEEL_EPARSE, "t.csv:2:14: ", "'0x1A' is not a number");
  {
    char t[300];
    int n = snprintf(t, sizeof t, "date,A\n2020-01-02,1\n2020-01-03,");
    memset(t + n, '7', 101);
    t[n + 101] = '\0';
    parse_bad(t, KEEL_EPARSE, "t.csv:3:12: ", "is longer than 100 characters");
  }
  parse_bad("date,A\n2020-01-02,\"1\"x\n", KEEL_EPARSE, "t.csv:2:15: ", "malformed quoting");
  parse_bad("date,A\n2020-01-02,1\"2\n", KEEL_EPARSE, "t.csv:2:13: ", "malformed quoting");
  parse_bad("date,A\n2020-01-02,\"12\n", KEEL_EPARSE, "t.csv:2:12: ", "unterminated");
  parse_bad("date,A\n2020-01-02,1\n2020-01-03,\"2\n\n\n", KEEL_EPARSE, "t.csv:3:12: ", "unterminated");
  {
    const char t[] = "date,A\n2020-01-02,1\0\n";
    keel_panel *p = NULL;
    assert_status(CTX, keel_panel_parse_csv(CTX, "t.csv", t, sizeof t - 1, NULL, &p), KEEL_EPARSE);
    assert_null(p);
    assert_errmsg(CTX, "t.csv:2:13: NUL byte");
  }
  /* long layout errors */
  parse_bad("date,symbol,price\n2020-01-02,A,1\n2020-01-02,A,2\n", KEEL_EPARSE, "t.csv:3:1: ",
            "duplicate date 2020-01-02 for symbol A");
  parse_bad("date,symbol,price\n2020-01-03,A,1\n2020-01-02,A,2\n", KEEL_EPARSE, "t.csv:3:1: ", "must increase");
  parse_bad("date,symbol,price\n2020-01-02,A,abc\n", KEEL_EPARSE, "t.csv:2:14: ", "price of 'A'");
  parse_bad("date,symbol,price\n2020-01-02,,1\n", KEEL_EPARSE, "t.csv:2:12: ", "empty symbol");
  parse_bad("date,symbol,price\n2020-01-02,A,1,2\n", KEEL_EPARSE, "t.csv:2:16: ", "too many fields");
  /* a quoted field spanning lines moves the positions of what follows */
  parse_bad("date,\"A\nB\",C\n2020-01-02,1,zz\n", KEEL_EPARSE, "t.csv:3:14: ", "column 'C'");
  parse_bad("date,A\r\n2020-01-02,1\r\n2020-01-03,bad\r\n", KEEL_EPARSE, "t.csv:3:12: ", "'bad'");
}

static void test_file_errors(void **state) {
  (void)state;
  keel_panel *p = (keel_panel *)1;
  assert_status(CTX, keel_panel_read_csv(CTX, "/nonexistent/dir/prices.csv", NULL, &p), KEEL_EIO);
  assert_null(p);
  assert_errmsg(CTX, "/nonexistent/dir/prices.csv: cannot open");
  /* a directory cannot be read as a file */
  assert_status(CTX, keel_panel_read_csv(CTX, keel_test_source_path("tests"), NULL, &p), KEEL_EIO);
  assert_null(p);
  /* an error in a file names the file */
  const char *path = keel_test_tmp_path("bad.csv");
  const char *t = "date,A\n2020-01-02,1\n2020-01-03,oops\n";
  assert_int_equal(keel_test_write_file(path, t, strlen(t)), 0);
  assert_status(CTX, keel_panel_read_csv(CTX, path, NULL, &p), KEEL_EPARSE);
  char want[4200];
  snprintf(want, sizeof want, "%s:3:12: ", path);
  assert_errmsg(CTX, want);
}

static void test_limits(void **state) {
  (void)state;
  keel_csv_options o;
  keel_csv_options_default(&o);
  keel_panel *p = (keel_panel *)1;
  /* a 50 MB quoted field: refused early, memory stays bounded */
  size_t big = 50u << 20;
  char *t = malloc(big + 64);
  assert_non_null(t);
  size_t n = (size_t)sprintf(t, "date,A\n2020-01-02,\"");
  memset(t + n, 'x', big);
  n += big;
  n += (size_t)sprintf(t + n, "\"\n");
  keel_test_alloc a;
  keel_ctx *c2 = keel_test_ctx(&a);
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  keel_status st = keel_panel_parse_csv(c2, "t.csv", t, n, &o, &p);
  getrusage(RUSAGE_SELF, &r1);
  if (st != KEEL_ELIMIT || !strstr(keel_errmsg(c2), "t.csv:2:12: field longer than the limit of 4096 bytes"))
    fail_msg("status %d: %s", st, keel_errmsg(c2));
  assert_null(p);
  /* keel's own peak: the row kept for positions, at most max_line */
  assert_true(a.peak_bytes < (long long)o.max_line + (1 << 20));
  keel_ctx_free(c2);
#if !defined(__SANITIZE_ADDRESS__)
  /* and the process (libcsv's field buffer included) grew by < 24 MB */
  assert_true(r1.ru_maxrss - r0.ru_maxrss < 24 * 1024);
#endif
  /* an unquoted giant line */
  n = (size_t)sprintf(t, "date,A\n2020-01-02,");
  memset(t + n, '1', big);
  n += big;
  assert_status(CTX, keel_panel_parse_csv(CTX, "t.csv", t, n, &o, &p), KEEL_ELIMIT);
  assert_errmsg(CTX, "t.csv:2:12: field longer");
  /* a line made of many short fields */
  o.max_line = 1000;
  n = (size_t)sprintf(t, "date");
  for (int i = 0; i < 400; i++) n += (size_t)sprintf(t + n, ",S%d", i);
  assert_status(CTX, keel_panel_parse_csv(CTX, "t.csv", t, n, &o, &p), KEEL_ELIMIT);
  assert_errmsg(CTX, "t.csv:1:1: line longer than the limit of 1000 bytes");
  free(t);
  keel_csv_options_default(&o);
  o.max_columns = 3;
  const char *s = "date,A,B,C,D\n2020-01-02,1,2,3,4\n";
  assert_status(CTX, keel_panel_parse_csv(CTX, "t.csv", s, strlen(s), &o, &p), KEEL_ELIMIT);
  assert_errmsg(CTX, "t.csv:1:10: more than 3 columns");
  keel_csv_options_default(&o);
  o.max_cells = 5;
  s = "date,A,B\n2020-01-02,1,2\n2020-01-03,1,2\n2020-01-06,1,2\n";
  assert_status(CTX, keel_panel_parse_csv(CTX, "t.csv", s, strlen(s), &o, &p), KEEL_ELIMIT);
  assert_errmsg(CTX, "t.csv:4:1: more than 5 price cells");
  o.delimiter = '|';
  assert_status(CTX, keel_panel_parse_csv(CTX, "t.csv", s, strlen(s), &o, &p), KEEL_EINVAL);
}

static void test_locale(void **state) {
  (void)state;
  /* A host in a locale with a decimal comma still reads "1.5" as 1.5. */
  const char *loc = setlocale(LC_NUMERIC, "de_DE.UTF-8");
  if (!loc) loc = setlocale(LC_NUMERIC, "fr_FR.UTF-8");
  if (!loc) skip();
  keel_panel *p = parse_ok("date,A\n2020-01-02,1.5\n2020-01-03,123456789012345678901.25\n");
  assert_close(keel_panel_price(p, 0, 0), 1.5, 0, 0);
  assert_close(keel_panel_price(p, 1, 0), 123456789012345678901.25, 0, 0);
  const char *path = keel_test_tmp_path("loc.csv");
  assert_ok(CTX, keel_panel_write_csv(CTX, p, path));
  keel_panel *q = NULL;
  assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &q));
  assert_close(keel_panel_price(q, 0, 0), 1.5, 0, 0);
  keel_panel_free(q);
  keel_panel_free(p);
  setlocale(LC_NUMERIC, "C");
}

static void test_roundtrip(void **state) {
  (void)state;
  /* random prices with awkward digits and NaN holes; symbols needing quotes */
  size_t nd = 300, na = 7;
  keel_date *dates = malloc(nd * sizeof *dates);
  double *px = malloc(nd * na * sizeof *px);
  const char *syms[] = {"A", "B,C", "quo\"te", "sp ace", "semi;colon", "tab\there", "Z"};
  srand(11);
  for (size_t i = 0; i < nd; i++) {
    dates[i] = D(2001, 1, 1) + (keel_date)(i * 2);
    for (size_t j = 0; j < na; j++) {
      double u = (double)rand() / RAND_MAX;
      px[i * na + j] = (rand() % 10 == 0) ? NAN : exp(20 * u - 10) * (1 + u / 3);
    }
  }
  keel_panel *p = NULL, *q = NULL;
  assert_ok(CTX, keel_panel_new(CTX, nd, na, dates, syms, px, &p));
  const char *path = keel_test_tmp_path("rt.csv");
  assert_ok(CTX, keel_panel_write_csv(CTX, p, path));
  assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &q));
  assert_int_equal(keel_panel_ndates(q), nd);
  assert_int_equal(keel_panel_nassets(q), na);
  for (size_t j = 0; j < na; j++) assert_string_equal(keel_panel_symbol(q, j), syms[j]);
  assert_memory_equal(keel_panel_dates(q), dates, nd * sizeof *dates);
  for (size_t k = 0; k < nd * na; k++) {
    double a = keel_panel_prices(p)[k], b = keel_panel_prices(q)[k];
    if (!(isnan(a) && isnan(b)) && memcmp(&a, &b, sizeof a) != 0) fail_msg("cell %zu: %.17g vs %.17g", k, a, b);
  }
  char h1[17], h2[17];
  keel_panel_hash(p, h1);
  keel_panel_hash(q, h2);
  assert_string_equal(h1, h2);
  keel_panel_free(q);
  /* a failed write leaves nothing behind */
  assert_status(CTX, keel_panel_write_csv(CTX, p, "/nonexistent/dir/out.csv"), KEEL_EIO);
  keel_panel_free(p);
  free(dates);
  free(px);
}

static void test_shared_data(void **state) {
  (void)state;
  const char *path = keel_test_shared_data("stock_prices.csv");
  if (!path) skip();
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &p));
  assert_int_equal(keel_panel_ndates(p), 7126);
  assert_int_equal(keel_panel_nassets(p), 20);
  assert_string_equal(keel_panel_symbol(p, 0), "GOOG");
  assert_string_equal(keel_panel_symbol(p, 19), "SBUX");
  assert_int_equal(keel_panel_dates(p)[0], D(1989, 12, 29));
  assert_int_equal(keel_panel_dates(p)[7125], D(2018, 4, 11));
  size_t aapl, goog;
  assert_true(keel_panel_find(p, "AAPL", &aapl));
  assert_true(keel_panel_find(p, "GOOG", &goog));
  /* values read off the file: first row AAPL, last row AAPL and SBUX */
  assert_close(keel_panel_price(p, 0, aapl), 0.117203, 0, 0);
  assert_close(keel_panel_price(p, 7125, aapl), 172.440002, 0, 0);
  assert_close(keel_panel_price(p, 7125, 19), 59.419998, 0, 0);
  /* GOOG is listed in 2004: its first price is on 2004-08-19 */
  assert_true(isnan(keel_panel_price(p, 0, goog)));
  assert_int_equal(keel_panel_dates(p)[keel_panel_first_valid(p, goog)], D(2004, 8, 19));
  keel_panel_free(p);
  const char *others[] = {"spy_prices.csv", "eustockmarkets.csv", "spisector.csv", "swx.csv",
                          "lpp2005.csv",    "gccindex.csv",       "dowjones30.csv"};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    const char *o = keel_test_shared_data(others[i]);
    if (!o) continue;
    if (keel_panel_read_csv(CTX, o, NULL, &p) != KEEL_OK) fail_msg("%s: %s", others[i], keel_errmsg(CTX));
    assert_true(keel_panel_ndates(p) > 100);
    keel_panel_free(p);
  }
}

static keel_status oom_body(keel_ctx *ctx, void *arg) {
  const char *t = arg;
  keel_panel *p = NULL;
  keel_status st = keel_panel_parse_csv(ctx, "t.csv", t, strlen(t), NULL, &p);
  if (st) assert_null(p);
  keel_panel_free(p);
  return st;
}

static void test_oom(void **state) {
  (void)state;
  keel_test_oom_loop(oom_body, "date,A,B\n2020-01-02,1,2\n2020-01-03,,4\n");
  keel_test_oom_loop(oom_body, "date,symbol,price\n2020-01-02,A,1\n2020-01-02,B,2\n2020-01-03,A,3\n");
}

static void test_table_write(void **state) {
  (void)state;
  const char *path = keel_test_tmp_path("table.csv");
  const char *names[3] = {"point", "a,b", "c"};
  double v[6] = {0, 0.1, 1e-20, 1, NAN, -2.5};
  assert_ok(CTX, keel_table_write_csv(CTX, path, 3, names, 2, v));
  char *text = keel_test_read_file(path, NULL);
  assert_non_null(text);
  /* shortest round-trip decimals, the comma-holding name quoted, NaN empty */
  assert_string_equal(text, "point,\"a,b\",c\n0,0.1,1e-20\n1,,-2.5\n");
  free(text);
  /* a failure leaves nothing behind and says where */
  assert_status(CTX, keel_table_write_csv(CTX, "/nonexistent/dir/t.csv", 3, names, 2, v), KEEL_EIO);
  assert_errmsg(CTX, "/nonexistent/dir/t.csv");
  names[2] = NULL;
  assert_status(CTX, keel_table_write_csv(CTX, path, 3, names, 2, v), KEEL_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wide_basic),   cmocka_unit_test(test_variants),
      cmocka_unit_test(test_missing_tokens), cmocka_unit_test(test_long_layout),
      cmocka_unit_test(test_numbers),      cmocka_unit_test(test_rejects),
      cmocka_unit_test(test_file_errors),  cmocka_unit_test(test_limits),
      cmocka_unit_test(test_locale),       cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_shared_data),  cmocka_unit_test(test_oom),
      cmocka_unit_test(test_table_write),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
