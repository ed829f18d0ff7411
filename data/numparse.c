/* keel — locale-independent decimal parsing and formatting.
 *
 * keeli_parse_double accepts [+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)?, at
 * most KEEL_NUM_MAXLEN bytes, and nothing else. Numbers whose decimal mantissa fits in 53 bits and whose
 * decimal exponent is at most 22 in magnitude are converted exactly with one
 * multiplication or division by an exactly representable power of ten
 * (W. D. Clinger, "How to read floating point numbers accurately", PLDI
 * 1990); all others go to strtod_l with the "C" locale, which rounds
 * correctly. Either way the result is the correctly rounded double. */
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/numparse.h"

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int is_digit(char c) { return c >= '0' && c <= '9'; }

int keeli_parse_double(const char *s, size_t n, locale_t cloc, double *out) {
  size_t i = 0;
  int neg = 0;
  if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  uint64_t mant = 0;
  int ndig = 0;     /* significant digits accumulated in mant */
  int dropped = 0;  /* digits not accumulated (mant full) */
  int64_t exp10 = 0; /* bounded by n and the 100000 cap below: no overflow */
  int any = 0;
  while (i < n && s[i] == '0') i++, any = 1; /* leading zeros */
  for (; i < n && is_digit(s[i]); i++) {
    any = 1;
    if (ndig < 19) {
      mant = mant * 10 + (uint64_t)(s[i] - '0');
      ndig++;
    } else {
      dropped = 1;
      exp10++;
    }
  }
  if (i < n && s[i] == '.') {
    i++;
    if (ndig == 0)
      while (i < n && s[i] == '0') i++, exp10--, any = 1;
    for (; i < n && is_digit(s[i]); i++) {
      any = 1;
      if (ndig < 19) {
        mant = mant * 10 + (uint64_t)(s[i] - '0');
        ndig++;
        exp10--;
      } else {
        dropped = 1;
      }
    }
  }
  if (!any) return -1;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    int eneg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
    if (i >= n || !is_digit(s[i])) return -1;
    int64_t e = 0;
    for (; i < n && is_digit(s[i]); i++)
      if (e < 100000) e = e * 10 + (s[i] - '0');
    exp10 += eneg ? -e : e;
  }
  if (i != n) return -1;
  if (n > KEEL_NUM_MAXLEN) return -2;

  if (!dropped && mant <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
    double v = (double)mant;
    v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
    *out = neg ? -v : v;
    return 0;
  }
  if (mant == 0 && !dropped) {
    *out = neg ? -0.0 : 0.0;
    return 0;
  }
  /* Slow path: strtod_l on a NUL-terminated copy (the syntax is already
   * checked, so it consumes everything). */
  char buf[KEEL_NUM_MAXLEN + 1];
  memcpy(buf, s, n);
  buf[n] = '\0';
  *out = strtod_l(buf, NULL, cloc);
  return 0;
}

size_t keeli_format_double(double v, locale_t cloc, char buf[32]) {
  locale_t old = uselocale(cloc);
  int n = 0;
  for (int prec = 15; prec <= 17; prec++) {
    n = snprintf(buf, 32, "%.*g", prec, v);
    if (prec == 17 || strtod_l(buf, NULL, cloc) == v) break;
  }
  uselocale(old);
  return n > 0 ? (size_t)n : 0;
}
