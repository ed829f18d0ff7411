/* keel tests — shared helpers. */
#include "keel_test.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void keel_test_assert_close(double a, double b, double rtol, double atol, const char *ea,
                            const char *eb, const char *file, int line) {
  if (isnan(a) && isnan(b)) return;
  if (isnan(a) || isnan(b) || fabs(a - b) > atol + rtol * fabs(b) ||
      (isinf(a) && a != b)) {
    print_error("%s:%d: assert_close(%s, %s): %.17g vs %.17g (diff %.3g, rtol %g, atol %g)\n",
                   file, line, ea, eb, a, b, fabs(a - b), rtol, atol);
    _fail(file, line);
  }
}

void keel_test_assert_errmsg(const keel_ctx *ctx, const char *needle, const char *file, int line) {
  const char *m = keel_errmsg(ctx);
  if (!strstr(m, needle)) {
    print_error("%s:%d: error message \"%s\" does not contain \"%s\"\n", file, line, m, needle);
    _fail(file, line);
  }
}

void *keel_test_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize) {
  keel_test_alloc *a = ud;
  if (nsize == 0) {
    if (ptr) {
      a->live_blocks--;
      a->live_bytes -= (long long)osize;
    }
    free(ptr);
    return NULL;
  }
  long n = a->calls++;
  if (a->fail_at >= 0 && (n == a->fail_at || (a->persistent && n > a->fail_at))) {
    a->failures++;
    return NULL;
  }
  void *q = realloc(ptr, nsize);
  if (!q) return NULL;
  if (ptr) {
    a->live_bytes += (long long)nsize - (long long)osize;
  } else {
    a->live_blocks++;
    a->live_bytes += (long long)nsize;
  }
  if (a->live_bytes > a->peak_bytes) a->peak_bytes = a->live_bytes;
  return q;
}

keel_ctx *keel_test_ctx(keel_test_alloc *a) {
  memset(a, 0, sizeof *a);
  a->fail_at = -1;
  keel_config cfg;
  keel_config_default(&cfg);
  cfg.alloc = keel_test_alloc_fn;
  cfg.alloc_ud = a;
  keel_ctx *ctx = NULL;
  if (keel_ctx_new(&cfg, &ctx) != KEEL_OK) fail_msg("cannot make a test context");
  return ctx;
}

long keel_test_oom_loop(keel_test_oom_body body, void *arg) {
  for (long n = 0; n < 10000000; n++) {
    keel_test_alloc a;
    keel_ctx *ctx = keel_test_ctx(&a);
    long base_blocks = a.live_blocks;
    a.calls = 0;
    a.fail_at = n;
    keel_status st = body(ctx, arg);
    if (a.live_blocks != base_blocks)
      fail_msg("allocation %ld failing: %ld block(s) leaked (status %d: %s)", n, a.live_blocks - base_blocks,
               (int)st, keel_errmsg(ctx));
    if (a.failures == 0) {
      if (st != KEEL_OK) fail_msg("OOM loop: run without failure returned %d: %s", (int)st, keel_errmsg(ctx));
      keel_ctx_free(ctx);
      return a.calls;
    }
    if (st != KEEL_ENOMEM)
      fail_msg("allocation %ld failing: expected KEEL_ENOMEM, got %d (%s)", n, (int)st, keel_errmsg(ctx));
    keel_ctx_free(ctx);
  }
  fail_msg("OOM loop did not finish");
  return -1;
}

const char *keel_test_shared_data(const char *name) {
  static char buf[4096];
  if (snprintf(buf, sizeof buf, "%s/%s", KEEL_SHARED_DATA, name) >= (int)sizeof buf) return NULL;
  struct stat st;
  if (stat(buf, &st) != 0) return NULL;
  return buf;
}

const char *keel_test_source_path(const char *rel) {
  static char buf[4096];
  if (snprintf(buf, sizeof buf, "%s/%s", KEEL_SOURCE_DIR, rel) >= (int)sizeof buf) fail_msg("path too long");
  return buf;
}

const char *keel_test_tmp_path(const char *name) {
  static char dir[4096];
  static char ring[8][8192]; /* several paths may be alive at once */
  static unsigned next;
  char *buf = ring[next++ % 8];
  if (!dir[0]) {
    const char *t = getenv("TMPDIR");
    if (snprintf(dir, sizeof dir, "%s/keel-test-XXXXXX", t && *t ? t : "/tmp") >= (int)sizeof dir)
      fail_msg("TMPDIR too long");
    if (!mkdtemp(dir)) fail_msg("mkdtemp failed");
  }
  if (snprintf(buf, sizeof ring[0], "%s/%s", dir, name) >= (int)sizeof ring[0]) fail_msg("path too long");
  return buf;
}

int keel_test_write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(data, 1, len, f);
  int rc = fclose(f);
  return w == len && rc == 0 ? 0 : -1;
}

char *keel_test_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap + 1);
  for (size_t k; b && (k = fread(b + n, 1, cap - n, f)) > 0;) {
    n += k;
    if (n == cap) {
      char *nb = realloc(b, 2 * cap + 1);
      if (!nb) free(b);
      b = nb;
      cap *= 2;
    }
  }
  fclose(f);
  if (!b) return NULL;
  b[n] = '\0';
  if (len) *len = n;
  return b;
}

keel_ctx *CTX;

int keel_test_setup(void **state) {
  (void)state;
  return keel_ctx_new(NULL, &CTX) == KEEL_OK ? 0 : -1;
}

int keel_test_teardown(void **state) {
  (void)state;
  keel_ctx_free(CTX);
  CTX = NULL;
  return 0;
}

static sqlite3_stmt *sql_first_row(const char *path, const char *sql, sqlite3 **db) {
  if (sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) fail_msg("cannot open %s", path);
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(*db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(*db));
  if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_type(st, 0) == SQLITE_NULL) {
    sqlite3_finalize(st);
    return NULL;
  }
  return st;
}

long long keel_test_sql_int(const char *path, const char *sql) {
  sqlite3 *db;
  sqlite3_stmt *st = sql_first_row(path, sql, &db);
  long long v = st ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

double keel_test_sql_double(const char *path, const char *sql) {
  sqlite3 *db;
  sqlite3_stmt *st = sql_first_row(path, sql, &db);
  double v = st ? sqlite3_column_double(st, 0) : NAN;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

double keel_test_lcg(uint32_t *state) {
  *state = 1664525u * *state + 1013904223u;
  return (double)*state / 4294967296.0 - 0.5;
}

keel_date keel_test_date(int y, int m, int d) {
  keel_date x = 0;
  assert_int_equal(keel_date_from_ymd(y, m, d, &x), 0);
  return x;
}

void keel_test_bdays(keel_date *out, size_t n, int y, int m, int d) {
  keel_date x = keel_test_date(y, m, d);
  for (size_t i = 0; i < n; x++)
    if (keel_date_weekday(x) < 5) out[i++] = x;
}

size_t keel_test_stock_moments(double **mu, double **S) {
  const char *path = keel_test_shared_data("stock_prices.csv");
  if (!path) return 0;
  keel_panel *p = NULL;
  assert_ok(CTX, keel_panel_read_csv(CTX, path, NULL, &p));
  size_t T = keel_panel_ndates(p) - 1, n = keel_panel_nassets(p);
  double *R = malloc(T * n * sizeof *R);
  *S = malloc(n * n * sizeof **S);
  assert_ok(CTX, keel_returns(CTX, p, 0, 0, KEEL_RETURNS_SIMPLE, keel_mat_view(R, T, n)));
  if (mu) {
    *mu = malloc(n * sizeof **mu);
    keel_mean_options mo;
    keel_mean_options_default(&mo);
    mo.periods_per_year = 252;
    assert_ok(CTX, keel_mean(CTX, keel_cmat_view(R, T, n), &mo, *mu));
  }
  keel_cov_options co;
  keel_cov_options_default(&co);
  co.periods_per_year = 252;
  assert_ok(CTX, keel_cov(CTX, keel_cmat_view(R, T, n), &co, keel_mat_view(*S, n, n), NULL));
  free(R);
  keel_panel_free(p);
  return n;
}
