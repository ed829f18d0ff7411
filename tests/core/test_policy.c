/* Tests of the policy helpers (core/policy.c): schedules, threshold bands,
 * cost rates, the volatility-target scale, cash-flow water-filling and the
 * name parsers. Every expectation is derived here on its own terms: dates
 * and band results worked out by hand, the volatility by a two-pass sample
 * variance and the EWMA recursion written out, and the water-filling level
 * by bisection. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keel_test.h"

#define D(y, m, d) keel_test_date(y, m, d)
#include "keel/policy.h"

/* ---- schedules ------------------------------------------------------------ */

static int due(keel_calendar c, keel_date prev, keel_date d, size_t t) {
  keel_schedule s = {c, 1};
  return keel_schedule_due(&s, prev, d, t);
}

/* Hand table: prev, date, and whether daily / weekly / monthly / quarterly /
 * yearly are due. Weekdays: 2020-12-31 Thu, 2021-01-01 Fri, 2021-01-03 Sun,
 * 2021-01-04 Mon, 2021-12-31 Fri, 2022-01-03 Mon. */
static void test_schedule_table(void **state) {
  (void)state;
  struct {
    int py, pm, pd, y, m, d;
    int e[5]; /* daily, weekly, monthly, quarterly, yearly */
  } cases[] = {
      {2020, 12, 31, 2021, 1, 1, {1, 0, 1, 1, 1}},   /* Thu -> Fri, same ISO week, new year */
      {2021, 1, 3, 2021, 1, 4, {1, 1, 0, 0, 0}},     /* Sun -> Mon */
      {2021, 1, 1, 2021, 1, 4, {1, 1, 0, 0, 0}},     /* Fri -> Mon over a weekend */
      {2021, 1, 5, 2021, 1, 6, {1, 0, 0, 0, 0}},     /* Tue -> Wed */
      {2021, 1, 4, 2021, 1, 10, {1, 0, 0, 0, 0}},    /* Mon -> Sun of the same week */
      {2021, 1, 4, 2021, 1, 11, {1, 1, 0, 0, 0}},    /* Mon -> next Mon */
      {2021, 1, 8, 2021, 1, 15, {1, 1, 0, 0, 0}},    /* Fri -> next Fri */
      {2021, 1, 29, 2021, 2, 1, {1, 1, 1, 0, 0}},    /* Fri -> Mon, new month */
      {2021, 2, 26, 2021, 3, 1, {1, 1, 1, 0, 0}},    /* new month inside Q1 */
      {2021, 3, 31, 2021, 4, 1, {1, 0, 1, 1, 0}},    /* Wed -> Thu, Q1 -> Q2 */
      {2021, 6, 30, 2021, 7, 1, {1, 0, 1, 1, 0}},    /* Q2 -> Q3 */
      {2021, 9, 30, 2021, 10, 1, {1, 0, 1, 1, 0}},   /* Q3 -> Q4 */
      {2021, 4, 1, 2021, 6, 30, {1, 1, 1, 0, 0}},    /* months apart, same quarter */
      {2021, 1, 4, 2021, 1, 29, {1, 1, 0, 0, 0}},    /* weeks apart, same month */
      {2021, 1, 1, 2021, 12, 31, {1, 1, 1, 1, 0}},   /* same year */
      {2021, 12, 31, 2022, 1, 3, {1, 1, 1, 1, 1}},   /* Fri -> Mon, new year */
      {2020, 1, 15, 2021, 1, 15, {1, 1, 1, 1, 1}},   /* same month number, next year */
      {2020, 2, 14, 2021, 2, 19, {1, 1, 1, 1, 1}},   /* same quarter number, next year */
  };
  const keel_calendar cals[5] = {KEEL_CAL_DAILY, KEEL_CAL_WEEKLY, KEEL_CAL_MONTHLY, KEEL_CAL_QUARTERLY,
                                 KEEL_CAL_YEARLY};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    keel_date p = D(cases[i].py, cases[i].pm, cases[i].pd), d = D(cases[i].y, cases[i].m, cases[i].d);
    for (size_t c = 0; c < 5; c++) {
      int got = due(cals[c], p, d, 7);
      if (got != cases[i].e[c])
        fail_msg("%04d-%02d-%02d -> %04d-%02d-%02d, %s: due %d, expected %d", cases[i].py, cases[i].pm,
                 cases[i].pd, cases[i].y, cases[i].m, cases[i].d, keel_calendar_name(cals[c]), got, cases[i].e[c]);
      /* row 0 is the initial allocation, never "due" */
      assert_int_equal(due(cals[c], p, d, 0), 0);
    }
    assert_int_equal(due(KEEL_CAL_NEVER, p, d, 7), 0);
    assert_int_equal(due(KEEL_CAL_NEVER, p, d, 0), 0);
  }
}

/* A walk over 2020-11 .. 2022-03 with uneven steps (1 to 9 days), each
 * consecutive pair checked against the calendar's definition: ISO weeks
 * from a known Monday (2021-01-04), months and quarters from y-m-d. */
static void test_schedule_walk(void **state) {
  (void)state;
  const keel_date monday = D(2021, 1, 4);
  uint32_t s = 17;
  keel_date prev = D(2020, 11, 2), end = D(2022, 3, 31);
  size_t t = 1;
  int seen[5] = {0, 0, 0, 0, 0};
  while (prev < end) {
    keel_date d = prev + 1 + (keel_date)((keel_test_lcg(&s) + 0.5) * 9);
    int py, pm, y, m;
    keel_date_to_ymd(prev, &py, &pm, NULL);
    keel_date_to_ymd(d, &y, &m, NULL);
    /* Monday of each date's week, independently of keel_date_weekday */
    long wp = (long)prev - (((long)prev - monday) % 7 + 7) % 7;
    long wd = (long)d - (((long)d - monday) % 7 + 7) % 7;
    int e[5] = {1, wp != wd, py != y || pm != m, py != y || (pm - 1) / 3 != (m - 1) / 3, py != y};
    const keel_calendar cals[5] = {KEEL_CAL_DAILY, KEEL_CAL_WEEKLY, KEEL_CAL_MONTHLY, KEEL_CAL_QUARTERLY,
                                   KEEL_CAL_YEARLY};
    for (size_t c = 0; c < 5; c++) {
      assert_int_equal(due(cals[c], prev, d, t), e[c]);
      seen[c] += e[c];
    }
    assert_int_equal(due(KEEL_CAL_NEVER, prev, d, t), 0);
    prev = d;
    t++;
  }
  /* the walk crossed every kind of boundary */
  for (size_t c = 1; c < 5; c++) assert_true(seen[c] > 0);
  assert_true(seen[4] >= 2);
}

static void test_schedule_every_n(void **state) {
  (void)state;
  keel_date p = D(2021, 3, 1);
  for (unsigned n = 1; n <= 5; n++) {
    keel_schedule s = {KEEL_CAL_EVERY_N, n};
    for (size_t t = 0; t <= 30; t++) {
      /* due on t = n, 2n, 3n, ... (t > 0), whatever the dates */
      int e = t > 0 && t % n == 0;
      assert_int_equal(keel_schedule_due(&s, p + (keel_date)t - 1, p + (keel_date)t, t), e);
    }
  }
  keel_schedule s3 = {KEEL_CAL_EVERY_N, 3};
  size_t hits[4], k = 0;
  for (size_t t = 0; t < 12; t++)
    if (keel_schedule_due(&s3, D(2020, 12, 31), D(2021, 1, 1), t)) hits[k++] = t;
  assert_int_equal(k, 3);
  assert_int_equal(hits[0], 3);
  assert_int_equal(hits[1], 6);
  assert_int_equal(hits[2], 9);
}

/* ---- bands ---------------------------------------------------------------- */

static keel_band band(keel_band_kind k, double a, double r, keel_band_action act, double inner) {
  keel_band b = {k, a, r, act, inner};
  return b;
}

static void test_band_width(void **state) {
  (void)state;
  keel_band ab = band(KEEL_BAND_ABSOLUTE, 0.05, 0.25, KEEL_BAND_TO_TARGET, 0);
  keel_band rl = band(KEEL_BAND_RELATIVE, 0.05, 0.25, KEEL_BAND_TO_TARGET, 0);
  keel_band cb = band(KEEL_BAND_COMBINED, 0.05, 0.25, KEEL_BAND_TO_TARGET, 0);
  keel_band no = band(KEEL_BAND_NONE, 0.05, 0.25, KEEL_BAND_TO_TARGET, 0);
  const double ts[] = {0, 0.1, 0.2, 0.4, 0.6};
  for (size_t i = 0; i < 5; i++) {
    assert_close(keel_band_width(&ab, ts[i]), 0.05, 0, 1e-15);
    assert_close(keel_band_width(&rl, ts[i]), 0.25 * ts[i], 0, 1e-15);
    assert_true(isinf(keel_band_width(&no, ts[i])) && keel_band_width(&no, ts[i]) > 0);
  }
  /* 5/25: 0.25 * 0.1 = 0.025 < 0.05; 0.25 * 0.4 = 0.1 > 0.05; 0.2 is the crossover */
  assert_close(keel_band_width(&cb, 0.1), 0.025, 0, 1e-15);
  assert_close(keel_band_width(&cb, 0.4), 0.05, 0, 1e-15);
  assert_close(keel_band_width(&cb, 0.2), 0.05, 0, 1e-15);
  assert_close(keel_band_width(&cb, 0.6), 0.05, 0, 1e-15);
  assert_close(keel_band_width(&cb, 0), 0, 0, 1e-15);
}

static void test_band_breached(void **state) {
  (void)state;
  /* binary fractions, so the edges are exact: half-width 1/16 */
  keel_band ab = band(KEEL_BAND_ABSOLUTE, 0.0625, 0, KEEL_BAND_TO_TARGET, 0);
  const double t[3] = {0.5, 0.25, 0.25};
  const double on_edge[3] = {0.5625, 0.1875, 0.25}; /* |w - t| = width: inside */
  assert_int_equal(keel_band_breached(&ab, 3, on_edge, t), 3);
  const double w1[3] = {0.5, 0.25, 0.3125 + 0x1p-20};
  assert_int_equal(keel_band_breached(&ab, 3, w1, t), 2);
  const double w2[3] = {0.5, 0.1875 - 0x1p-20, 0.3125 + 0x1p-20};
  assert_int_equal(keel_band_breached(&ab, 3, w2, t), 1); /* the first one outside */
  assert_int_equal(keel_band_breached(&ab, 0, w2, t), 0);

  /* relative 1/4: widths 1/8, 1/16, 1/16 */
  keel_band rl = band(KEEL_BAND_RELATIVE, 0, 0.25, KEEL_BAND_TO_TARGET, 0);
  const double w3[3] = {0.625, 0.3125, 0.1875};
  assert_int_equal(keel_band_breached(&rl, 3, w3, t), 3);
  const double w4[3] = {0.625 + 0x1p-20, 0.25, 0.25};
  assert_int_equal(keel_band_breached(&rl, 3, w4, t), 0);
  /* a zero target has a zero relative band: any holding breaches it */
  const double tz[2] = {1, 0}, wz[2] = {0.99, 0.01};
  assert_int_equal(keel_band_breached(&rl, 2, wz, tz), 1);

  /* 5/25 on targets 0.1 (width 0.025) and 0.4 (width 0.05) */
  keel_band cb = band(KEEL_BAND_COMBINED, 0.05, 0.25, KEEL_BAND_TO_TARGET, 0);
  const double tc[2] = {0.1, 0.4};
  const double wc1[2] = {0.12, 0.44}; /* 0.02 < 0.025, 0.04 < 0.05 */
  assert_int_equal(keel_band_breached(&cb, 2, wc1, tc), 2);
  const double wc2[2] = {0.13, 0.40}; /* 0.03 > 0.025 (but < 0.05) */
  assert_int_equal(keel_band_breached(&cb, 2, wc2, tc), 0);
  const double wc3[2] = {0.1, 0.34}; /* 0.06 > 0.05 (but < 0.1) */
  assert_int_equal(keel_band_breached(&cb, 2, wc3, tc), 1);

  keel_band no = band(KEEL_BAND_NONE, 0.05, 0.25, KEEL_BAND_TO_TARGET, 0);
  const double far[2] = {1, 0};
  assert_int_equal(keel_band_breached(&no, 2, far, tc), 2);
}

static double sum(size_t n, const double *v) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += v[i];
  return s;
}

/* out must match e, cash (1 - sum out) must match ecash, and every asset
 * that was not breached must be inside its band. */
static void check_adjust(const keel_band *b, size_t n, const double *w, const double *t, const double *e,
                         double ecash) {
  double out[8];
  keel_band_adjust(b, n, w, t, out);
  for (size_t i = 0; i < n; i++) assert_close(out[i], e[i], 0, 1e-12);
  assert_close(1 - sum(n, out), ecash, 0, 1e-12);
  assert_close(sum(n, out) + ecash, 1, 0, 1e-12);
  for (size_t i = 0; i < n; i++) {
    double wd = keel_band_width(b, t[i]);
    if (fabs(w[i] - t[i]) <= wd) assert_true(fabs(out[i] - t[i]) <= wd + 1e-12);
  }
}

static void test_band_adjust_target(void **state) {
  (void)state;
  keel_band b = band(KEEL_BAND_ABSOLUTE, 0.05, 0, KEEL_BAND_TO_TARGET, 0);
  const double t[3] = {0.5, 0.3, 0.1}, w[3] = {0.7, 0.1, 0.15};
  double out[3] = {-1, -1, -1};
  keel_band_adjust(&b, 3, w, t, out);
  for (size_t i = 0; i < 3; i++) assert_true(out[i] == t[i]);
}

static void test_band_adjust_edge(void **state) {
  (void)state;
  keel_band b = band(KEEL_BAND_ABSOLUTE, 0.05, 0, KEEL_BAND_TO_EDGE, 0);
  {
    /* 60/40 drifted to 0.67/0.33: 0.67 -> 0.65 frees 0.02, which the other
     * asset takes (it is 0.07 under, so it goes to its edge 0.35 too) */
    const double t[2] = {0.6, 0.4}, w[2] = {0.67, 0.33}, e[2] = {0.65, 0.35};
    check_adjust(&b, 2, w, t, e, 0);
  }
  {
    /* nothing breached: nothing moves */
    const double t[3] = {0.5, 0.3, 0.2}, w[3] = {0.53, 0.28, 0.17}, e[3] = {0.53, 0.28, 0.17};
    check_adjust(&b, 3, w, t, e, 0.02);
  }
  {
    /* fully invested, one breach: 0.58 -> 0.55 frees 0.03, spread 3:2 over
     * the others: +0.018 and +0.012 */
    const double t[3] = {0.5, 0.3, 0.2}, w[3] = {0.58, 0.26, 0.16}, e[3] = {0.55, 0.278, 0.172};
    check_adjust(&b, 3, w, t, e, 0);
  }
  {
    /* a 10% cash sleeve: 0.48 -> 0.45 frees 0.03, spread 3:2:1 over the two
     * other assets and cash: +0.015, +0.01, +0.005 */
    const double t[3] = {0.4, 0.3, 0.2}, w[3] = {0.48, 0.27, 0.18}, e[3] = {0.45, 0.285, 0.19};
    check_adjust(&b, 3, w, t, e, 0.075);
  }
  {
    /* an absorber hits its edge: 0.48 -> 0.45 frees 0.03; asset 1 (0.345)
     * would get 0.015 but stops at 0.35 (takes 0.005); the other 0.025 goes
     * 2:1 to asset 2 and cash (0.02): 0.155 + 0.025 * 2/3, cash
     * 0.02 + 0.025/3 */
    const double t[3] = {0.4, 0.3, 0.2}, w[3] = {0.48, 0.345, 0.155};
    const double e[3] = {0.45, 0.35, 0.155 + 0.05 / 3};
    check_adjust(&b, 3, w, t, e, 0.02 + 0.025 / 3);
  }
  {
    /* the other way: 0.30 -> 0.35 needs 0.05; assets 1 and 2 would give
     * 0.025 each but stop at their lower edge 0.25 (0.01 each), and the 0.03
     * nothing can give comes out of cash: 0.18 -> 0.15 */
    const double t[3] = {0.4, 0.3, 0.3}, w[3] = {0.30, 0.26, 0.26}, e[3] = {0.35, 0.25, 0.25};
    check_adjust(&b, 3, w, t, e, 0.15);
  }
  {
    /* 5/25 combined: the 0.1 asset's band is 0.025: 0.14 -> 0.125 frees
     * 0.015, spread 5:4: +0.015*5/9, +0.015*4/9 */
    keel_band c = band(KEEL_BAND_COMBINED, 0.05, 0.25, KEEL_BAND_TO_EDGE, 0);
    const double t[3] = {0.1, 0.5, 0.4}, w[3] = {0.14, 0.47, 0.39};
    const double e[3] = {0.125, 0.47 + 0.015 * 5 / 9, 0.39 + 0.015 * 4 / 9};
    check_adjust(&c, 3, w, t, e, 0);
  }
  {
    /* relative 0.25: an asset with no target is sold (its band is zero) and
     * the proceeds spread 3:1 over the others: 0.05 * 0.75, 0.05 * 0.25 */
    keel_band r = band(KEEL_BAND_RELATIVE, 0, 0.25, KEEL_BAND_TO_EDGE, 0);
    const double t[3] = {0.75, 0.25, 0}, w[3] = {0.7, 0.25, 0.05}, e[3] = {0.7375, 0.2625, 0};
    check_adjust(&r, 3, w, t, e, 0);
  }
}

static void test_band_adjust_inner(void **state) {
  (void)state;
  keel_band b = band(KEEL_BAND_ABSOLUTE, 0.05, 0, KEEL_BAND_TO_INNER, 0.5);
  {
    /* inner band 0.025: 0.67 -> 0.625, 0.33 -> 0.375 */
    const double t[2] = {0.6, 0.4}, w[2] = {0.67, 0.33}, e[2] = {0.625, 0.375};
    check_adjust(&b, 2, w, t, e, 0);
  }
  {
    /* 0.48 -> 0.425 frees 0.055, spread 3:2:1 over assets 1, 2 and cash
     * (the absorbers stay inside their full bands, not the inner ones) */
    const double t[3] = {0.4, 0.3, 0.2}, w[3] = {0.48, 0.27, 0.18};
    const double e[3] = {0.425, 0.27 + 0.0275, 0.18 + 0.055 / 3};
    check_adjust(&b, 3, w, t, e, 0.07 + 0.055 / 6);
  }
  {
    /* inner 0: back to target for the breached asset */
    keel_band z = band(KEEL_BAND_ABSOLUTE, 0.05, 0, KEEL_BAND_TO_INNER, 0);
    const double t[3] = {0.5, 0.3, 0.2}, w[3] = {0.58, 0.26, 0.16}, e[3] = {0.5, 0.26 + 0.048, 0.16 + 0.032};
    check_adjust(&z, 3, w, t, e, 0);
  }
}

/* Random bands against the definition: breached assets at their (inner)
 * edge; the others inside their bands; the weight moved by the absorbers
 * that did not stop at an edge is mu * target, one mu for all of them and
 * the cash sleeve; and absorbers that stopped are at their edge having
 * taken no more than mu * target. */
static void test_band_adjust_random(void **state) {
  (void)state;
  uint32_t s = 2024;
  for (int it = 0; it < 3000; it++) {
    size_t n = 2 + (size_t)((keel_test_lcg(&s) + 0.5) * 6);
    double t[8], w[8], out[8], tsum = 0;
    for (size_t i = 0; i < n; i++) t[i] = keel_test_lcg(&s) + 0.5, tsum += t[i];
    double invest = 0.7 + 0.3 * (keel_test_lcg(&s) + 0.5);
    if (it % 3 == 0) invest = 1;
    for (size_t i = 0; i < n; i++) t[i] *= invest / tsum;
    double wsum = 0;
    for (size_t i = 0; i < n; i++) {
      w[i] = fmax(0, t[i] + 0.12 * keel_test_lcg(&s));
      wsum += w[i];
    }
    if (wsum > 1)
      for (size_t i = 0; i < n; i++) w[i] /= wsum;
    keel_band b = band(it % 3 == 0 ? KEEL_BAND_ABSOLUTE : it % 3 == 1 ? KEEL_BAND_RELATIVE : KEEL_BAND_COMBINED,
                       0.04, 0.3, it % 2 ? KEEL_BAND_TO_EDGE : KEEL_BAND_TO_INNER, 0.4);
    keel_band_adjust(&b, n, w, t, out);
    const double f = b.action == KEEL_BAND_TO_INNER ? b.inner : 1;
    double R = 0, tc = 1 - sum(n, t);
    int brk[8];
    for (size_t i = 0; i < n; i++) {
      double wd = keel_band_width(&b, t[i]);
      brk[i] = fabs(w[i] - t[i]) > wd;
      if (brk[i]) {
        double edge = w[i] > t[i] ? t[i] + f * wd : t[i] - f * wd;
        assert_close(out[i], edge, 0, 1e-12);
        R += w[i] - edge;
      } else {
        assert_true(out[i] >= fmax(t[i] - wd, 0) - 1e-12 && out[i] <= t[i] + wd + 1e-12);
      }
    }
    /* mu from the absorbers that did not stop at an edge (cash included) */
    double mu = NAN;
    const double cash0 = 1 - sum(n, w), cash1 = 1 - sum(n, out);
    for (size_t i = 0; i <= n; i++) {
      double ti = i < n ? t[i] : tc;
      if (!(ti > 1e-12) || (i < n && brk[i])) continue;
      double wd = i < n ? keel_band_width(&b, ti) : INFINITY;
      double lo = fmax(ti - wd, 0), hi = ti + wd;
      double cur = i < n ? out[i] : cash1, was = i < n ? w[i] : cash0;
      int at_edge = R > 0 ? cur >= hi - 1e-12 : cur <= lo + 1e-12;
      if (!at_edge) {
        double m = (cur - was) / ti;
        if (isnan(mu)) mu = m;
        else assert_close(m, mu, 1e-9, 1e-9);
      }
    }
    if (!isnan(mu)) {
      /* mu has R's sign, and the absorbers that stopped took no more */
      assert_true(R > 0 ? mu >= -1e-9 : mu <= 1e-9);
      for (size_t i = 0; i < n; i++) {
        if (brk[i] || !(t[i] > 1e-12)) continue;
        double d = (out[i] - w[i]) / t[i];
        assert_true(R > 0 ? d <= mu + 1e-9 : d >= mu - 1e-9);
      }
    }
    /* what no asset took is in cash; with a cash sleeve, the cash sleeve
     * takes a positive remainder, so it never goes unabsorbed */
    assert_close(sum(n, out) + cash1, 1, 0, 1e-15);
    if (R > 0 && tc > 1e-12) assert_false(isnan(mu));
  }
}

/* ---- costs ---------------------------------------------------------------- */

static void test_cost_rates(void **state) {
  (void)state;
  keel_cost_model c;
  keel_cost_model_default(&c);
  assert_close(keel_cost_rate_buy(&c), 0, 0, 0);
  assert_close(keel_cost_rate_sell(&c), 0, 0, 0);
  assert_int_equal(c.use_lots, 1);
  c.buy_bps = 10, c.sell_bps = 15, c.spread_bps = 4, c.slippage_bps = 3, c.fee = 7;
  /* (10 + 4/2 + 3) / 1e4 and (15 + 4/2 + 3) / 1e4; the fixed fee is not a rate */
  assert_close(keel_cost_rate_buy(&c), 0.0015, 1e-14, 0);
  assert_close(keel_cost_rate_sell(&c), 0.0020, 1e-14, 0);
  c.buy_bps = 0, c.sell_bps = 0, c.spread_bps = 25, c.slippage_bps = 0;
  assert_close(keel_cost_rate_buy(&c), 0.00125, 1e-14, 0);
  assert_close(keel_cost_rate_sell(&c), 0.00125, 1e-14, 0);
}

/* ---- volatility target ---------------------------------------------------- */

static keel_voltarget vt(double target, keel_vol_estimator e, double halflife, double cap) {
  keel_voltarget v = {target, e, 63, halflife, cap, 0.1};
  return v;
}

static void test_voltarget_rolling(void **state) {
  (void)state;
  /* 50/50 basket returns 0.01, -0.01, 0.02, 0: mean 0.005, squared
   * deviations 2.5e-5 + 2.25e-4 + 2.25e-4 + 2.5e-5 = 5e-4, sample variance
   * 5e-4 / 3, sigma = sqrt(5e-4 / 3 * 252) = sqrt(0.042) */
  const double t[2] = {0.5, 0.5};
  const double R[8] = {0.03, -0.01, -0.02, 0.0, 0.05, -0.01, 0.01, -0.01};
  double k = 0, sg = 0;
  keel_voltarget v = vt(0.1, KEEL_VOL_ROLLING, 21, 1);
  assert_ok(CTX, keel_voltarget_scale(CTX, &v, 2, t, R, 4, 252, &k, &sg));
  assert_close(sg, sqrt(0.042), 1e-12, 0);
  assert_close(k, 0.1 / sqrt(0.042), 1e-12, 0);
  /* the cap binds: 0.5 / 0.205 = 2.44 > 1.5 */
  v = vt(0.5, KEEL_VOL_ROLLING, 21, 1.5);
  assert_ok(CTX, keel_voltarget_scale(CTX, &v, 2, t, R, 4, 252, &k, &sg));
  assert_close(k, 1.5, 0, 0);
  assert_close(sg, sqrt(0.042), 1e-12, 0);
  /* and with no leverage: 0.3 / 0.205 > 1 */
  v = vt(0.3, KEEL_VOL_ROLLING, 21, 1);
  assert_ok(CTX, keel_voltarget_scale(CTX, &v, 2, t, R, 4, 252, &k, NULL));
  assert_close(k, 1, 0, 0);
  /* monthly annualisation: sqrt(5e-4 / 3 * 12) = sqrt(0.002) */
  v = vt(0.1, KEEL_VOL_ROLLING, 21, 1);
  assert_ok(CTX, keel_voltarget_scale(CTX, &v, 2, t, R, 4, 12, &k, &sg));
  assert_close(sg, sqrt(0.002), 1e-12, 0);
  /* a constant basket return has no volatility: the cap */
  const double C[6] = {0.01, 0.01, 0.01, 0.01, 0.01, 0.01};
  v = vt(0.1, KEEL_VOL_ROLLING, 21, 2);
  assert_ok(CTX, keel_voltarget_scale(CTX, &v, 2, t, C, 3, 252, &k, &sg));
  assert_close(sg, 0, 0, 1e-15);
  assert_close(k, 2, 0, 0);
}

/* NaN rows of an asset with a weight are skipped; NaN in an asset with no
 * weight does not matter. */
static void test_voltarget_nan(void **state) {
  (void)state;
  const double t[3] = {0.5, 0, 0.5};
  const double R[18] = {0.03, NAN, -0.01,  /* 0.01 */
                        NAN, 0.2, 0.04,    /* skipped */
                        -0.02, NAN, 0.0,   /* -0.01 */
                        0.05, 0.3, -0.01,  /* 0.02 */
                        0.01, 0.1, NAN,    /* skipped */
                        0.01, NAN, -0.01}; /* 0 */
  double k = 0, sg = 0;
  keel_voltarget v = vt(0.1, KEEL_VOL_ROLLING, 21, 1);
  assert_ok(CTX, keel_voltarget_scale(CTX, &v, 3, t, R, 6, 252, &k, &sg));
  assert_close(sg, sqrt(0.042), 1e-12, 0);
  assert_close(k, 0.1 / sqrt(0.042), 1e-12, 0);
}

static void test_voltarget_ewma(void **state) {
  (void)state;
  uint32_t s = 99;
  const size_t n = 3, rows = 40;
  const double t[3] = {0.5, 0.3, 0.2};
  double R[120];
  for (size_t i = 0; i < rows * n; i++) R[i] = 0.04 * keel_test_lcg(&s);
  for (int h = 0; h < 3; h++) {
    const double halflife = h == 0 ? 5 : h == 1 ? 21 : 0.7;
    const double lambda = pow(2, -1 / halflife);
    /* sigma2_0 = r_0^2, sigma2_t = lambda sigma2_{t-1} + (1 - lambda) r_t^2 */
    double s2 = 0;
    for (size_t r = 0; r < rows; r++) {
      double rb = t[0] * R[r * n] + t[1] * R[r * n + 1] + t[2] * R[r * n + 2];
      s2 = r == 0 ? rb * rb : lambda * s2 + (1 - lambda) * rb * rb;
    }
    double k = 0, sg = 0;
    keel_voltarget v = vt(0.08, KEEL_VOL_EWMA, halflife, 10);
    assert_ok(CTX, keel_voltarget_scale(CTX, &v, n, t, R, rows, 252, &k, &sg));
    assert_close(sg, sqrt(252 * s2), 1e-12, 0);
    assert_close(k, fmin(10, 0.08 / sqrt(252 * s2)), 1e-12, 0);
  }
  /* two returns by hand, half-life 1 (lambda 1/2): basket returns 0.02 and
   * -0.04: sigma2 = 0.5 * 4e-4 + 0.5 * 1.6e-3 = 1e-3 */
  const double t1[1] = {1};
  const double R2[2] = {0.02, -0.04};
  double k = 0, sg = 0;
  keel_voltarget v = vt(0.1, KEEL_VOL_EWMA, 1, 1);
  assert_ok(CTX, keel_voltarget_scale(CTX, &v, 1, t1, R2, 2, 252, &k, &sg));
  assert_close(sg, sqrt(0.252), 1e-12, 0);
  assert_close(k, 0.1 / sqrt(0.252), 1e-12, 0);
}

/* The rolling estimator against a two-pass sample variance on random
 * returns. */
static void test_voltarget_rolling_random(void **state) {
  (void)state;
  uint32_t s = 5;
  for (int it = 0; it < 50; it++) {
    const size_t n = 4, rows = 2 + (size_t)((keel_test_lcg(&s) + 0.5) * 100);
    double t[4], R[4 * 102], rb[102];
    for (size_t j = 0; j < n; j++) t[j] = keel_test_lcg(&s) + 0.5;
    t[it % 4] = 0;
    for (size_t r = 0; r < rows; r++) {
      rb[r] = 0;
      for (size_t j = 0; j < n; j++) {
        R[r * n + j] = 0.001 + 0.03 * keel_test_lcg(&s);
        rb[r] += t[j] * R[r * n + j];
      }
    }
    double mean = 0, ss = 0;
    for (size_t r = 0; r < rows; r++) mean += rb[r];
    mean /= (double)rows;
    for (size_t r = 0; r < rows; r++) ss += (rb[r] - mean) * (rb[r] - mean);
    double sigma = sqrt(ss / (double)(rows - 1) * 252);
    double k = 0, sg = 0;
    keel_voltarget v = vt(0.12, KEEL_VOL_ROLLING, 63, 3);
    assert_ok(CTX, keel_voltarget_scale(CTX, &v, n, t, R, rows, 252, &k, &sg));
    assert_close(sg, sigma, 1e-10, 0);
    assert_close(k, fmin(3, 0.12 / sigma), 1e-10, 0);
  }
}

static void test_voltarget_errors(void **state) {
  (void)state;
  const double t[2] = {0.5, 0.5};
  const double R[6] = {0.01, 0.02, NAN, 0.01, 0.03, NAN};
  double k = -1, sg = -1;
  keel_voltarget v = vt(0.1, KEEL_VOL_ROLLING, 63, 1);
  assert_status(CTX, keel_voltarget_scale(CTX, &v, 2, t, R, 1, 252, &k, &sg), KEEL_EINVAL);
  assert_errmsg(CTX, "usable returns");
  /* three rows, two with NaN in a weighted asset: one usable return */
  assert_status(CTX, keel_voltarget_scale(CTX, &v, 2, t, R, 3, 252, &k, &sg), KEEL_EINVAL);
  assert_errmsg(CTX, "usable returns");
  assert_status(CTX, keel_voltarget_scale(CTX, &v, 2, t, NULL, 0, 252, &k, &sg), KEEL_EINVAL);
  v.estimator = KEEL_VOL_EWMA;
  assert_status(CTX, keel_voltarget_scale(CTX, &v, 2, t, R, 3, 252, &k, &sg), KEEL_EINVAL);
  assert_errmsg(CTX, "usable returns");
  const double R2[4] = {0.01, 0.02, -0.01, 0.0};
  assert_status(CTX, keel_voltarget_scale(CTX, &v, 2, t, R2, 2, 0, &k, &sg), KEEL_EINVAL);
  assert_errmsg(CTX, "periods_per_year");
}

/* ---- cash flows ----------------------------------------------------------- */

static void check_flow(size_t n, const double *x, const double *t, double amount, const double *e) {
  double out[8];
  assert_ok(CTX, keel_cashflow_allocate(CTX, n, x, t, amount, out));
  for (size_t i = 0; i < n; i++) assert_close(out[i], e[i], 1e-12, 1e-12);
}

static void test_cashflow_hand(void **state) {
  (void)state;
  const double x[3] = {50, 30, 20}, t[3] = {0.4, 0.4, 0.2};
  /* x / t = 125, 75, 100. Contribution 20: asset 1 alone would need
   * L = (30 + 20) / 0.4 = 125 > 100, so assets 1 and 2 buy with
   * L = (30 + 20 + 20) / 0.6 = 350/3 <= 125: b1 = 140/3 - 30 = 50/3,
   * b2 = 70/3 - 20 = 10/3 */
  const double e1[3] = {0, 50.0 / 3, 10.0 / 3};
  check_flow(3, x, t, 20, e1);
  /* 5 fits in asset 1 alone: L = 35 / 0.4 = 87.5 <= 100 */
  const double e2[3] = {0, 5, 0};
  check_flow(3, x, t, 5, e2);
  /* 100: every asset buys, L = (100 + 100) / 1 = 200: L t - x */
  const double e3[3] = {30, 50, 20};
  check_flow(3, x, t, 100, e3);
  /* targets summing to 0.8: L = (100 + 60) / 0.8 = 200 */
  const double t8[3] = {0.3, 0.3, 0.2}, e4[3] = {10, 30, 20};
  check_flow(3, x, t8, 60, e4);

  /* Withdrawal 10 from the most overweight (asset 0): L = 40 / 0.4 = 100,
   * not below asset 2's ratio, so asset 0 alone sells */
  const double e5[3] = {-10, 0, 0};
  check_flow(3, x, t, -10, e5);
  /* 20: asset 0 alone would go to L = 75 < 100; assets 0 and 2:
   * L = (70 - 20) / 0.6 = 250/3 >= 75: s0 = 50 - 100/3, s2 = 20 - 50/3 */
  const double e6[3] = {-50.0 / 3, 0, -10.0 / 3};
  check_flow(3, x, t, -20, e6);
  /* everything */
  const double e7[3] = {-50, -30, -20};
  check_flow(3, x, t, -100, e7);
  check_flow(3, x, t, 0, (const double[3]){0, 0, 0});
}

static void test_cashflow_zero_targets(void **state) {
  (void)state;
  const double x[5] = {50, 30, 20, 10, 30}, t[5] = {0.4, 0.4, 0.2, 0, 0};
  /* never bought: the contribution goes as without them */
  const double e1[5] = {0, 50.0 / 3, 10.0 / 3, 0, 0};
  check_flow(5, x, t, 20, e1);
  /* sold first, pro rata: 20 of 40 */
  const double e2[5] = {0, 0, 0, -5, -15};
  check_flow(5, x, t, -20, e2);
  /* 60: both sold out (40), then 20 as in the hand case */
  const double e3[5] = {-50.0 / 3, 0, -10.0 / 3, -10, -30};
  check_flow(5, x, t, -60, e3);
  /* no target at all: a contribution stays in cash, a withdrawal is pro rata */
  const double tz[3] = {0, 0, 0}, x3[3] = {10, 30, 60};
  check_flow(3, x3, tz, 50, (const double[3]){0, 0, 0});
  check_flow(3, x3, tz, -50, (const double[3]){-5, -15, -30});
}

static void test_cashflow_errors(void **state) {
  (void)state;
  const double x[3] = {50, 30, 20}, t[3] = {0.4, 0.4, 0.2};
  double out[3];
  assert_status(CTX, keel_cashflow_allocate(CTX, 3, x, t, -101, out), KEEL_EINVAL);
  assert_errmsg(CTX, "exceeds the holdings");
  const double tn[3] = {0.6, -0.1, 0.5};
  assert_status(CTX, keel_cashflow_allocate(CTX, 3, x, tn, 10, out), KEEL_EINVAL);
  assert_errmsg(CTX, "target");
  assert_status(CTX, keel_cashflow_allocate(CTX, 3, x, tn, -10, out), KEEL_EINVAL);
  const double xn[3] = {50, -1, 20};
  assert_status(CTX, keel_cashflow_allocate(CTX, 3, xn, t, 10, out), KEEL_EINVAL);
  assert_errmsg(CTX, "holding");
  assert_status(CTX, keel_cashflow_allocate(CTX, 3, x, t, NAN, out), KEEL_EINVAL);
}

/* The level by bisection: sum max(0, L t - x) = A (contribution) or
 * sum max(0, x - L t) = A (withdrawal), over the assets with a target. */
static double level_bisect(size_t n, const double *x, const double *t, double A, int contribution) {
  double lo = 0, hi = 1;
  for (size_t i = 0; i < n; i++)
    if (t[i] > 0) hi = fmax(hi, (x[i] + A) / t[i] * 2);
  for (int it = 0; it < 200; it++) {
    double L = 0.5 * (lo + hi), f = 0;
    for (size_t i = 0; i < n; i++)
      if (t[i] > 0) f += contribution ? fmax(0, L * t[i] - x[i]) : fmax(0, x[i] - L * t[i]);
    /* f rises with L for a contribution, falls for a withdrawal */
    if (contribution ? f < A : f > A) lo = L;
    else hi = L;
  }
  return 0.5 * (lo + hi);
}

static void test_cashflow_random(void **state) {
  (void)state;
  uint32_t s = 7;
  for (int it = 0; it < 5000; it++) {
    size_t n = 1 + (size_t)((keel_test_lcg(&s) + 0.5) * 8);
    double x[8], t[8], out[8], xsum = 0, x0 = 0, T = 0;
    for (size_t i = 0; i < n; i++) {
      x[i] = keel_test_lcg(&s) < -0.35 ? 0 : 1000 * (keel_test_lcg(&s) + 0.5);
      t[i] = keel_test_lcg(&s) < -0.3 ? 0 : keel_test_lcg(&s) + 0.5;
      xsum += x[i], T += t[i];
      if (t[i] == 0) x0 += x[i];
    }
    if (T > 0)
      for (size_t i = 0; i < n; i++) t[i] /= T / 0.95;
    const int contribution = it % 2 == 0;
    double A = (keel_test_lcg(&s) + 0.5) * (contribution ? 3000 : xsum);
    if (it % 7 == 0) A = contribution ? 1e-3 : xsum; /* tiny, and everything */
    if (!(A > 0)) continue;
    assert_ok(CTX, keel_cashflow_allocate(CTX, n, x, t, contribution ? A : -A, out));
    if (contribution && T == 0) {
      for (size_t i = 0; i < n; i++) assert_true(out[i] == 0);
      continue;
    }
    /* the trades add up to the amount, to 1e-12 of it; for the tiny
     * amounts (every seventh draw) L t_i - x_i cancels, so 1e-12 of the
     * holdings */
    double tot = 0;
    for (size_t i = 0; i < n; i++) tot += out[i];
    assert_close(tot, contribution ? A : -A, 1e-12, it % 7 ? 0 : 1e-12 * xsum);
    /* no sale in a contribution, no purchase in a withdrawal; zero targets
     * never bought, and sold first */
    for (size_t i = 0; i < n; i++) {
      assert_true(contribution ? out[i] >= 0 : out[i] <= 0);
      assert_true(x[i] + out[i] >= -1e-9 * (1 + xsum));
      if (t[i] == 0) {
        if (contribution) assert_true(out[i] == 0);
        else if (A <= x0) assert_close(out[i], x0 > 0 ? -A * x[i] / x0 : 0, 1e-12, 1e-12);
        else assert_close(out[i], -x[i], 0, 1e-12);
      }
    }
    if (!contribution && A <= x0) {
      for (size_t i = 0; i < n; i++)
        if (t[i] > 0) assert_true(out[i] == 0);
      continue;
    }
    const double B = contribution ? A : A - x0;
    const double L = level_bisect(n, x, t, B, contribution);
    double Lt = NAN; /* the common post-trade ratio of the assets that traded */
    for (size_t i = 0; i < n; i++) {
      if (!(t[i] > 0)) continue;
      /* brute-force level: the same trade */
      double e = contribution ? fmax(0, L * t[i] - x[i]) : -fmax(0, x[i] - L * t[i]);
      assert_close(out[i], e, 1e-9, 1e-9 * (1 + xsum + A));
      if (out[i] != 0) {
        double r = (x[i] + out[i]) / t[i];
        if (isnan(Lt)) Lt = r;
        else assert_close(r, Lt, 1e-9, 1e-9);
      }
    }
    if (isnan(Lt)) continue;
    for (size_t i = 0; i < n; i++) {
      if (!(t[i] > 0) || out[i] != 0) continue;
      double r = x[i] / t[i];
      /* the untouched are at least as full (contribution) / as light
       * (withdrawal) as the level */
      if (contribution) assert_true(r >= Lt * (1 - 1e-9) - 1e-9);
      else assert_true(r <= Lt * (1 + 1e-9) + 1e-9);
    }
  }
}

static keel_status oom_body(keel_ctx *ctx, void *arg) {
  (void)arg;
  const double x[5] = {50, 30, 20, 10, 30}, t[5] = {0.4, 0.4, 0.2, 0, 0};
  double out[5];
  keel_status st = keel_cashflow_allocate(ctx, 5, x, t, 20, out);
  if (st != KEEL_OK) return st;
  st = keel_cashflow_allocate(ctx, 5, x, t, -60, out);
  if (st != KEEL_OK) return st;
  assert_close(out[0], -50.0 / 3, 1e-12, 0);
  return KEEL_OK;
}

static void test_cashflow_oom(void **state) {
  (void)state;
  long calls = keel_test_oom_loop(oom_body, NULL);
  assert_true(calls >= 1);
}

/* ---- names ---------------------------------------------------------------- */

static void test_names(void **state) {
  (void)state;
  for (int c = KEEL_CAL_DAILY; c <= KEEL_CAL_EVERY_N; c++) {
    keel_calendar got = (keel_calendar)-1;
    assert_int_equal(keel_calendar_parse(keel_calendar_name((keel_calendar)c), &got), 0);
    assert_int_equal(got, c);
  }
  const char *cals[] = {"daily", "weekly", "monthly", "quarterly", "yearly", "never", "every_n"};
  for (int c = 0; c < 7; c++) assert_string_equal(keel_calendar_name((keel_calendar)c), cals[c]);
  for (int k = KEEL_BAND_NONE; k <= KEEL_BAND_COMBINED; k++) {
    keel_band_kind got = (keel_band_kind)-1;
    assert_int_equal(keel_band_kind_parse(keel_band_kind_name((keel_band_kind)k), &got), 0);
    assert_int_equal(got, k);
  }
  const char *bands[] = {"none", "absolute", "relative", "combined"};
  for (int k = 0; k < 4; k++) assert_string_equal(keel_band_kind_name((keel_band_kind)k), bands[k]);
  for (int k = KEEL_STOP_LOSS; k <= KEEL_STOP_DRAWDOWN; k++) {
    keel_stop_kind got = (keel_stop_kind)-1;
    assert_int_equal(keel_stop_kind_parse(keel_stop_kind_name((keel_stop_kind)k), &got), 0);
    assert_int_equal(got, k);
  }
  const char *stops[] = {"stop_loss", "take_profit", "trailing", "drawdown"};
  for (int k = 0; k < 4; k++) assert_string_equal(keel_stop_kind_name((keel_stop_kind)k), stops[k]);

  keel_band_action ba;
  assert_int_equal(keel_band_action_parse("target", &ba), 0), assert_int_equal(ba, KEEL_BAND_TO_TARGET);
  assert_int_equal(keel_band_action_parse("edge", &ba), 0), assert_int_equal(ba, KEEL_BAND_TO_EDGE);
  assert_int_equal(keel_band_action_parse("inner", &ba), 0), assert_int_equal(ba, KEEL_BAND_TO_INNER);
  keel_stop_ref sr;
  assert_int_equal(keel_stop_ref_parse("entry", &sr), 0), assert_int_equal(sr, KEEL_STOP_REF_ENTRY);
  assert_int_equal(keel_stop_ref_parse("avg_cost", &sr), 0), assert_int_equal(sr, KEEL_STOP_REF_AVG_COST);
  keel_stop_action sa;
  assert_int_equal(keel_stop_action_parse("cash", &sa), 0), assert_int_equal(sa, KEEL_STOP_TO_CASH);
  assert_int_equal(keel_stop_action_parse("defensive", &sa), 0), assert_int_equal(sa, KEEL_STOP_TO_DEFENSIVE);
  keel_reentry re;
  assert_int_equal(keel_reentry_parse("never", &re), 0), assert_int_equal(re, KEEL_REENTRY_NEVER);
  assert_int_equal(keel_reentry_parse("after_days", &re), 0), assert_int_equal(re, KEEL_REENTRY_AFTER_DAYS);
  assert_int_equal(keel_reentry_parse("above_ma", &re), 0), assert_int_equal(re, KEEL_REENTRY_ABOVE_MA);
  keel_vol_estimator ve;
  assert_int_equal(keel_vol_estimator_parse("rolling", &ve), 0), assert_int_equal(ve, KEEL_VOL_ROLLING);
  assert_int_equal(keel_vol_estimator_parse("ewma", &ve), 0), assert_int_equal(ve, KEEL_VOL_EWMA);
  keel_dca_source ds;
  assert_int_equal(keel_dca_source_parse("external", &ds), 0), assert_int_equal(ds, KEEL_DCA_EXTERNAL);
  assert_int_equal(keel_dca_source_parse("cash", &ds), 0), assert_int_equal(ds, KEEL_DCA_FROM_CASH);
  keel_dca_dest dd;
  assert_int_equal(keel_dca_dest_parse("target", &dd), 0), assert_int_equal(dd, KEEL_DCA_TO_TARGET);
  assert_int_equal(keel_dca_dest_parse("underweight", &dd), 0), assert_int_equal(dd, KEEL_DCA_TO_UNDERWEIGHT);

  /* unknown names */
  keel_calendar cal;
  keel_band_kind bk;
  keel_stop_kind sk;
  const char *bad[] = {"", "fortnightly", "Monthly", "monthly ", "every", "edge_", NULL};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(keel_calendar_parse(bad[i], &cal), -1);
    assert_int_equal(keel_band_kind_parse(bad[i], &bk), -1);
    assert_int_equal(keel_band_action_parse(bad[i], &ba), -1);
    assert_int_equal(keel_stop_kind_parse(bad[i], &sk), -1);
    assert_int_equal(keel_stop_ref_parse(bad[i], &sr), -1);
    assert_int_equal(keel_stop_action_parse(bad[i], &sa), -1);
    assert_int_equal(keel_reentry_parse(bad[i], &re), -1);
    assert_int_equal(keel_vol_estimator_parse(bad[i], &ve), -1);
    assert_int_equal(keel_dca_source_parse(bad[i], &ds), -1);
    assert_int_equal(keel_dca_dest_parse(bad[i], &dd), -1);
  }
  /* names of one enum are not names of another */
  assert_int_equal(keel_calendar_parse("absolute", &cal), -1);
  assert_int_equal(keel_band_kind_parse("monthly", &bk), -1);
  assert_int_equal(keel_stop_kind_parse("stop", &sk), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schedule_table),
      cmocka_unit_test(test_schedule_walk),
      cmocka_unit_test(test_schedule_every_n),
      cmocka_unit_test(test_band_width),
      cmocka_unit_test(test_band_breached),
      cmocka_unit_test(test_band_adjust_target),
      cmocka_unit_test(test_band_adjust_edge),
      cmocka_unit_test(test_band_adjust_inner),
      cmocka_unit_test(test_band_adjust_random),
      cmocka_unit_test(test_cost_rates),
      cmocka_unit_test(test_voltarget_rolling),
      cmocka_unit_test(test_voltarget_nan),
      cmocka_unit_test(test_voltarget_ewma),
      cmocka_unit_test(test_voltarget_rolling_random),
      cmocka_unit_test(test_voltarget_errors),
      cmocka_unit_test(test_cashflow_hand),
      cmocka_unit_test(test_cashflow_zero_targets),
      cmocka_unit_test(test_cashflow_errors),
      cmocka_unit_test(test_cashflow_random),
      cmocka_unit_test(test_cashflow_oom),
      cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, keel_test_setup, keel_test_teardown);
}
