/* Tests of the sample-data generator (core/sample.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel_test.h"

/* The shipped sample is exactly what the generator writes for the default
 * seed. */
static void test_shipped_file(void **state) {
  (void)state;
  keel_ctx *ctx = NULL;
  assert_int_equal(keel_ctx_new(NULL, &ctx), KEEL_OK);
  keel_panel *p = NULL;
  assert_ok(ctx, keel_sample_generate(ctx, NULL, &p));
  const char *out = keel_test_tmp_path("sample.csv");
  assert_ok(ctx, keel_panel_write_csv(ctx, p, out));
  size_t la, lb;
  char *a = keel_test_read_file(out, &la), *b = keel_test_read_file(keel_test_source_path("data/samples/multi_asset.csv"), &lb);
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(la, lb);
  assert_memory_equal(a, b, la);
  free(a);
  free(b);
  keel_panel_free(p);
  keel_ctx_free(ctx);
}

static void test_properties(void **state) {
  (void)state;
  keel_ctx *ctx = NULL;
  assert_int_equal(keel_ctx_new(NULL, &ctx), KEEL_OK);
  keel_sample_config cfg;
  keel_sample_config_default(&cfg);
  keel_panel *p = NULL, *q = NULL;
  assert_ok(ctx, keel_sample_generate(ctx, &cfg, &p));
  size_t n = keel_panel_ndates(p), na = keel_panel_nassets(p);
  assert_int_equal(n, 3130);
  assert_int_equal(na, 6);
  for (size_t i = 0; i < n; i++) assert_true(keel_date_weekday(keel_panel_dates(p)[i]) < 5);
  size_t eq, em, cr, bond, cash;
  assert_true(keel_panel_find(p, "EQUITY", &eq));
  assert_true(keel_panel_find(p, "EM_EQUITY", &em));
  assert_true(keel_panel_find(p, "CRYPTO", &cr));
  assert_true(keel_panel_find(p, "BOND", &bond));
  assert_true(keel_panel_find(p, "CASH", &cash));
  /* different start dates */
  assert_int_equal(keel_panel_first_valid(p, eq), 0);
  assert_int_equal(keel_panel_first_valid(p, em), 252);
  assert_int_equal(keel_panel_first_valid(p, cr), 756);
  /* realised annual volatility near the model's levels; fat tails */
  double target[6] = {0.17, 0.22, 0.05, 0.15, 0.75, 0.003};
  for (size_t j = 0; j < na; j++) {
    double s = 0, s2 = 0, s4 = 0;
    size_t m = 0;
    for (size_t i = keel_panel_first_valid(p, j) + 1; i < n; i++) {
      double r = log(keel_panel_price(p, i, j) / keel_panel_price(p, i - 1, j));
      s += r, s2 += r * r, m++;
    }
    double mean = s / (double)m, var = s2 / (double)m - mean * mean;
    for (size_t i = keel_panel_first_valid(p, j) + 1; i < n; i++) {
      double r = log(keel_panel_price(p, i, j) / keel_panel_price(p, i - 1, j)) - mean;
      s4 += r * r * r * r;
    }
    double vol = sqrt(var * 252), kurt = s4 / (double)m / (var * var);
    if (j != cash) {
      if (vol < 0.7 * target[j] || vol > 1.3 * target[j]) fail_msg("asset %zu: vol %.3f vs %.3f", j, vol, target[j]);
      if (kurt < 3.5) fail_msg("asset %zu: kurtosis %.2f is not fat-tailed", j, kurt);
    }
  }
  /* the crash: equity falls by more than a quarter over its 25 days */
  double before = keel_panel_price(p, (size_t)cfg.crash_day - 1, eq);
  double after = keel_panel_price(p, (size_t)(cfg.crash_day + cfg.crash_days - 1), eq);
  assert_true(after / before < 0.75);
  /* the same seed gives the same panel; another seed another one */
  assert_ok(ctx, keel_sample_generate(ctx, &cfg, &q));
  char h1[17], h2[17];
  keel_panel_hash(p, h1);
  keel_panel_hash(q, h2);
  assert_string_equal(h1, h2);
  keel_panel_free(q);
  cfg.seed = 3;
  assert_ok(ctx, keel_sample_generate(ctx, &cfg, &q));
  keel_panel_hash(q, h2);
  assert_string_not_equal(h1, h2);
  keel_panel_free(q);
  cfg.ndays = 10;
  assert_status(ctx, keel_sample_generate(ctx, &cfg, &q), KEEL_EINVAL);
  keel_sample_config_default(&cfg);
  cfg.crash_day = 3120;
  assert_status(ctx, keel_sample_generate(ctx, &cfg, &q), KEEL_EINVAL);
  assert_null(q);
  keel_panel_free(p);
  keel_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shipped_file),
      cmocka_unit_test(test_properties),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
