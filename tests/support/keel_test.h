/* keel tests — shared helpers for the cmocka suites.
 *
 * cmocka 1.1.5 (Debian 12) compares doubles as floats in assert_float_equal,
 * so use assert_close, which compares in double precision:
 *   |a - b| <= atol + rtol * |b|, and NaN only equals NaN.
 */
#ifndef KEEL_TEST_H
#define KEEL_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "keel/keel.h"

void keel_test_assert_close(double a, double b, double rtol, double atol, const char *ea,
                            const char *eb, const char *file, int line);
#define assert_close(a, b, rtol, atol) \
  keel_test_assert_close((a), (b), (rtol), (atol), #a, #b, __FILE__, __LINE__)

/* Asserts that a call returned st; on mismatch prints keel_errmsg(ctx). */
#define assert_status(ctx, call, st)                                                   \
  do {                                                                                 \
    keel_status st_got_ = (call);                                                      \
    if (st_got_ != (st))                                                               \
      fail_msg("%s returned %d (%s), expected %d; errmsg: %s", #call, (int)st_got_,    \
               keel_strerror(st_got_), (int)(st), keel_errmsg(ctx));                   \
  } while (0)
#define assert_ok(ctx, call) assert_status(ctx, call, KEEL_OK)

/* Asserts that the context's message contains needle. */
void keel_test_assert_errmsg(const keel_ctx *ctx, const char *needle, const char *file, int line);
#define assert_errmsg(ctx, needle) keel_test_assert_errmsg((ctx), (needle), __FILE__, __LINE__)

/* A counting allocator that can be told to fail: the allocation numbered
 * fail_at (0-based, counting every non-free call) and, if persistent, every
 * one after it. Tracks live bytes so tests can check nothing leaks. */
typedef struct keel_test_alloc {
  long calls;
  long fail_at; /* -1: never fail */
  int persistent;
  long live_blocks;
  long long live_bytes;
  long long peak_bytes; /* highest live_bytes seen */
  long failures;
} keel_test_alloc;

void *keel_test_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize);
/* Makes a context on a fresh counting allocator (fail_at = -1). */
keel_ctx *keel_test_ctx(keel_test_alloc *a);

/* Runs body(ctx, arg) with allocation N failing, N = 0, 1, 2, ... until body
 * returns KEEL_OK without any failure. Each failing run must return
 * KEEL_ENOMEM (or, if allowed_other is not KEEL_OK, that status) and leave no
 * live allocation once body's own cleanup ran. Returns the number of
 * allocations the successful run made. */
typedef keel_status (*keel_test_oom_body)(keel_ctx *ctx, void *arg);
long keel_test_oom_loop(keel_test_oom_body body, void *arg);

/* Path of a file in the shared data folder (KEEL_SHARED_DATA, set by CMake
 * from ../shared/data next to the source tree), or NULL if it does not
 * exist; tests that need it call skip() then. Static buffer. */
const char *keel_test_shared_data(const char *name);

/* The 32-bit linear congruential generator of the fixture scripts
 * (the reference and quadprog scripts in tests/fixtures): state <- 1664525 state +
 * 1013904223 mod 2^32, returning state / 2^32 - 0.5, exact in doubles, so
 * C, Python and R draw the same problems. */
double keel_test_lcg(uint32_t *state);
/* The mean (mu, may be NULL) and sample covariance S of the shared
 * stock_prices.csv simple returns over their common window, annualised by
 * 252, in new malloc'd arrays (caller frees); returns the number of
 * assets, or 0 (nothing allocated) when the data are absent. */
size_t keel_test_stock_moments(double **mu, double **S);

/* The date y-m-d (asserting it is valid), and the n weekdays from y-m-d
 * on into out. */
keel_date keel_test_date(int y, int m, int d);
void keel_test_bdays(keel_date *out, size_t n, int y, int m, int d);

/* Path of a file in the source tree (KEEL_SOURCE_DIR). Static buffer. */
const char *keel_test_source_path(const char *rel);
/* A path in a per-process temporary directory; the last eight returned
 * stay valid. */
const char *keel_test_tmp_path(const char *name);
/* Writes len bytes to path; returns 0 on success. */
int keel_test_write_file(const char *path, const char *data, size_t len);
/* Reads a whole file, NUL-terminated (caller frees); NULL if unreadable.
 * len may be NULL. */
char *keel_test_read_file(const char *path, size_t *len);

/* A context shared by the tests of a group: pass keel_test_setup and
 * keel_test_teardown to cmocka_run_group_tests and use CTX. */
extern keel_ctx *CTX;
int keel_test_setup(void **state);
int keel_test_teardown(void **state);

/* The first column of the first row of a query on the SQLite file at path,
 * opened read-only (-1 / NaN when there is no row or it is NULL). */
long long keel_test_sql_int(const char *path, const char *sql);
double keel_test_sql_double(const char *path, const char *sql);

#endif
