/* Tests of the context, allocator, errors, dates and the price panel. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "keel_test.h"

static void test_version(void **state) {
  (void)state;
  assert_string_equal(keel_version(), KEEL_VERSION);
  assert_int_equal(keel_version_number(), KEEL_VERSION_NUMBER);
  assert_int_equal(KEEL_VERSION_NUMBER,
                   KEEL_VERSION_MAJOR * 1000000 + KEEL_VERSION_MINOR * 1000 + KEEL_VERSION_PATCH);
}

static void test_strerror(void **state) {
  (void)state;
  for (int s = 0; s >= KEEL_ESTATE; s--) {
    const char *m = keel_strerror((keel_status)s);
    assert_non_null(m);
    assert_string_not_equal(m, "unknown status");
  }
  assert_string_equal(keel_strerror((keel_status)-999), "unknown status");
}

static void test_ctx_errors(void **state) {
  (void)state;
  keel_test_alloc a;
  keel_ctx *ctx = keel_test_ctx(&a);
  assert_int_equal(keel_errcode(ctx), KEEL_OK);
  assert_string_equal(keel_errmsg(ctx), "");
  assert_int_equal(keeli_error(ctx, KEEL_EPARSE, "f.csv:%d:%d: bad", 3, 7), KEEL_EPARSE);
  assert_int_equal(keel_errcode(ctx), KEEL_EPARSE);
  assert_string_equal(keel_errmsg(ctx), "f.csv:3:7: bad");
  /* Over-long messages are truncated, never overflow. */
  char big[3000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  keeli_error(ctx, KEEL_EINVAL, "%s", big);
  assert_true(strlen(keel_errmsg(ctx)) < sizeof big - 1);
  keel_clear_error(ctx);
  assert_int_equal(keel_errcode(ctx), KEEL_OK);
  keel_ctx_free(ctx);
  assert_int_equal(a.live_blocks, 0);
  keel_ctx_free(NULL);
}

static void test_ctx_defaults(void **state) {
  (void)state;
  keel_ctx *ctx = NULL;
  assert_int_equal(keel_ctx_new(NULL, &ctx), KEEL_OK);
  assert_int_equal(keel_ctx_config(ctx)->threads, 1);
  void *p = keeli_alloc(ctx, 100);
  assert_non_null(p);
  p = keeli_realloc_array(ctx, p, 1000, 8);
  assert_non_null(p);
  keeli_free(ctx, p);
  /* Overflowing sizes are refused with a message, not wrapped around. */
  assert_null(keeli_alloc_array(ctx, SIZE_MAX / 2, 4));
  assert_int_equal(keel_errcode(ctx), KEEL_ENOMEM);
  keel_ctx_free(ctx);
}

static void test_ctx_oom(void **state) {
  (void)state;
  keel_test_alloc a;
  memset(&a, 0, sizeof a);
  a.fail_at = 0;
  keel_config cfg;
  keel_config_default(&cfg);
  cfg.alloc = keel_test_alloc_fn;
  cfg.alloc_ud = &a;
  keel_ctx *ctx = (keel_ctx *)1;
  assert_int_equal(keel_ctx_new(&cfg, &ctx), KEEL_ENOMEM);
  assert_null(ctx);
}

static void test_allocator_alignment(void **state) {
  (void)state;
  keel_test_alloc a;
  keel_ctx *ctx = keel_test_ctx(&a);
  for (size_t n = 1; n < 200; n += 7) {
    void *p = keeli_alloc(ctx, n);
    assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
    keeli_free(ctx, p);
  }
  keel_ctx_free(ctx);
  assert_int_equal(a.live_blocks, 0);
  assert_int_equal(a.live_bytes, 0);
}

/* Known days since 1970-01-01 (POSIX time / 86400 of midnight UTC). */
static void test_dates_known(void **state) {
  (void)state;
  struct { int y, m, d; keel_date days; int wd; } k[] = {
      {1970, 1, 1, 0, 3},       {1969, 12, 31, -1, 2},   {2000, 2, 29, 11016, 1},
      {2000, 3, 1, 11017, 2},   {1989, 12, 29, 7302, 4}, {2018, 4, 11, 17632, 2},
      {1900, 3, 1, -25508, 3},  {2024, 12, 31, 20088, 1}, {1, 1, 1, -719162, 0},
      {9999, 12, 31, 2932896, 4},
  };
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
    keel_date d;
    assert_int_equal(keel_date_from_ymd(k[i].y, k[i].m, k[i].d, &d), 0);
    assert_int_equal(d, k[i].days);
    assert_int_equal(keel_date_weekday(d), k[i].wd);
    int y, m, dd;
    keel_date_to_ymd(d, &y, &m, &dd);
    assert_int_equal(y, k[i].y);
    assert_int_equal(m, k[i].m);
    assert_int_equal(dd, k[i].d);
  }
}

static void test_dates_roundtrip(void **state) {
  (void)state;
  keel_date lo, hi;
  assert_int_equal(keel_date_from_ymd(1, 1, 1, &lo), 0);
  assert_int_equal(keel_date_from_ymd(9999, 12, 31, &hi), 0);
  int py = 1, pm = 1, pd = 0;
  for (keel_date d = lo; d <= hi; d++) {
    int y, m, dd;
    keel_date_to_ymd(d, &y, &m, &dd);
    keel_date back;
    assert_int_equal(keel_date_from_ymd(y, m, dd, &back), 0);
    if (back != d) fail_msg("round trip of %d gave %d", d, back);
    /* Consecutive days are consecutive calendar days. */
    int next = (y == py && m == pm && dd == pd + 1) || (y == py && m == pm + 1 && dd == 1) ||
               (y == py + 1 && m == 1 && dd == 1 && pm == 12);
    if (d != lo && !next) fail_msg("day %d (%d-%d-%d) does not follow %d-%d-%d", d, y, m, dd, py, pm, pd);
    py = y, pm = m, pd = dd;
  }
}

static void test_dates_parse(void **state) {
  (void)state;
  keel_date d, e;
  assert_int_equal(keel_date_from_ymd(2018, 4, 11, &e), 0);
  assert_int_equal(keel_date_parse("2018-04-11", 10, &d), 0);
  assert_int_equal(d, e);
  assert_int_equal(keel_date_parse("2018/04/11", 10, &d), 0);
  assert_int_equal(d, e);
  assert_int_equal(keel_date_parse("20180411", 8, &d), 0);
  assert_int_equal(d, e);
  const char *bad[] = {"2018-04-31", "2019-02-29", "2018-13-01", "2018-00-10", "2018-04-1",
                       "2018/04-11", "18-04-11",   "2018-4-11",  "x018-04-11", "0000-01-01",
                       "2018-04-11 ", "201804110", "20181301",   ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (keel_date_parse(bad[i], strlen(bad[i]), &d) == 0) fail_msg("accepted bad date '%s'", bad[i]);
  char buf[KEEL_DATE_BUFSIZE];
  keel_date_format(e, buf);
  assert_string_equal(buf, "2018-04-11");
  assert_int_equal(keel_date_parse("2000-02-29", 10, &d), 0);
  assert_int_equal(keel_date_parse("1900-02-29", 10, &d), -1);
}

static const char *const SYMS[] = {"AAA", "BBB", "CCC"};

static void test_panel_basic(void **state) {
  (void)state;
  keel_test_alloc a;
  keel_ctx *ctx = keel_test_ctx(&a);
  keel_date dates[4] = {10, 11, 14, 15};
  double px[12] = {NAN, 1, 2, NAN, 1.5, 2.5, 3, 2, NAN, 4, 2.5, 3.5};
  keel_panel *p = NULL;
  assert_ok(ctx, keel_panel_new(ctx, 4, 3, dates, SYMS, px, &p));
  assert_int_equal(keel_panel_ndates(p), 4);
  assert_int_equal(keel_panel_nassets(p), 3);
  assert_int_equal(keel_panel_first_valid(p, 0), 2);
  assert_int_equal(keel_panel_first_valid(p, 1), 0);
  /* priced on every row from: 2 (listed late), 0 (always), 3 (halted on row 2) */
  assert_int_equal(keel_panel_complete_from(p, 0), 2);
  assert_int_equal(keel_panel_complete_from(p, 1), 0);
  assert_int_equal(keel_panel_complete_from(p, 2), 3);
  assert_true(isnan(keel_panel_price(p, 3 - 1, 2)));
  assert_close(keel_panel_price(p, 3, 2), 3.5, 0, 0);
  size_t j = 99;
  assert_true(keel_panel_find(p, "CCC", &j));
  assert_int_equal(j, 2);
  assert_false(keel_panel_find(p, "DDD", &j));
  assert_string_equal(keel_panel_symbol(p, 1), "BBB");
  assert_string_equal(keel_panel_meta(p, 0)->currency, "");
  keel_asset_meta m = {"USD", 1, 100};
  assert_ok(ctx, keel_panel_set_meta(ctx, p, 0, &m));
  assert_string_equal(keel_panel_meta(p, 0)->currency, "USD");
  m.lot = -1;
  assert_status(ctx, keel_panel_set_meta(ctx, p, 0, &m), KEEL_EINVAL);

  char h1[KEEL_PANEL_HASH_BUFSIZE], h2[KEEL_PANEL_HASH_BUFSIZE];
  keel_panel_hash(p, h1);
  assert_int_equal(strlen(h1), 16);
  keel_panel *q = NULL;
  assert_ok(ctx, keel_panel_new(ctx, 4, 3, dates, SYMS, px, &q));
  keel_panel_hash(q, h2);
  assert_string_equal(h1, h2);
  keel_panel_free(q);
  px[5] = nextafter(px[5], 10); /* one ulp changes the hash */
  assert_ok(ctx, keel_panel_new(ctx, 4, 3, dates, SYMS, px, &q));
  keel_panel_hash(q, h2);
  assert_string_not_equal(h1, h2);
  keel_panel_free(q);
  keel_panel_free(p);
  keel_panel_free(NULL);
  keel_ctx_free(ctx);
  assert_int_equal(a.live_blocks, 0);
}

static void test_panel_rejects(void **state) {
  (void)state;
  keel_ctx *ctx = NULL;
  assert_int_equal(keel_ctx_new(NULL, &ctx), KEEL_OK);
  keel_panel *p = (keel_panel *)1;
  keel_date dates[2] = {5, 5};
  double px[2] = {1, 2};
  const char *one[] = {"A"};
  assert_status(ctx, keel_panel_new(ctx, 2, 1, dates, one, px, &p), KEEL_EINVAL);
  assert_null(p);
  assert_errmsg(ctx, "strictly increasing");
  dates[1] = 6;
  px[1] = -2;
  assert_status(ctx, keel_panel_new(ctx, 2, 1, dates, one, px, &p), KEEL_EINVAL);
  assert_errmsg(ctx, "finite and > 0");
  px[1] = 0;
  assert_status(ctx, keel_panel_new(ctx, 2, 1, dates, one, px, &p), KEEL_EINVAL);
  px[1] = INFINITY;
  assert_status(ctx, keel_panel_new(ctx, 2, 1, dates, one, px, &p), KEEL_EINVAL);
  const char *dup[] = {"A", "A"};
  double px2[2] = {1, 1};
  assert_status(ctx, keel_panel_new(ctx, 1, 2, dates, dup, px2, &p), KEEL_EINVAL);
  assert_errmsg(ctx, "appears twice");
  /* many symbols: a duplicate far apart is found (sorted check) */
  enum { NS = 5000 };
  static char names[NS][8];
  const char *many[NS];
  for (int k = 0; k < NS; k++) snprintf(names[k], sizeof names[k], "S%d", k), many[k] = names[k];
  static double pxm[NS];
  for (int k = 0; k < NS; k++) pxm[k] = 1;
  assert_ok(ctx, keel_panel_new(ctx, 1, NS, dates, many, pxm, &p));
  keel_panel_free(p);
  many[4321] = "S17";
  assert_status(ctx, keel_panel_new(ctx, 1, NS, dates, many, pxm, &p), KEEL_EINVAL);
  assert_errmsg(ctx, "symbol 'S17' appears twice (assets 17 and 4321)");
  const char *empty[] = {""};
  assert_status(ctx, keel_panel_new(ctx, 1, 1, dates, empty, px2, &p), KEEL_EINVAL);
  assert_status(ctx, keel_panel_new(ctx, 0, 1, dates, one, px2, &p), KEEL_EINVAL);
  keel_ctx_free(ctx);
}

static keel_status panel_body(keel_ctx *ctx, void *arg) {
  (void)arg;
  keel_date dates[3] = {1, 2, 3};
  double px[6] = {1, 2, 3, 4, 5, 6};
  keel_panel *p = NULL;
  keel_status st = keel_panel_new(ctx, 3, 2, dates, (const char *const[]){"X", "Y"}, px, &p);
  if (st != KEEL_OK) {
    assert_null(p);
    return st;
  }
  keel_panel_free(p);
  return KEEL_OK;
}

static void test_panel_oom(void **state) {
  (void)state;
  long n = keel_test_oom_loop(panel_body, NULL);
  assert_true(n >= 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_version),         cmocka_unit_test(test_strerror),
      cmocka_unit_test(test_ctx_errors),      cmocka_unit_test(test_ctx_defaults),
      cmocka_unit_test(test_ctx_oom),         cmocka_unit_test(test_allocator_alignment),
      cmocka_unit_test(test_dates_known),     cmocka_unit_test(test_dates_roundtrip),
      cmocka_unit_test(test_dates_parse),     cmocka_unit_test(test_panel_basic),
      cmocka_unit_test(test_panel_rejects),   cmocka_unit_test(test_panel_oom),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
