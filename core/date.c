/* keel — civil dates <-> days since 1970-01-01.
 * The conversions are the days_from_civil / civil_from_days algorithms of
 * H. Hinnant, "chrono-Compatible Low-Level Date Algorithms" (2013). */
#include <stdio.h>

#include "core/internal.h"
#include "keel/date.h"

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(int y, int m) {
  static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

int keel_date_from_ymd(int y, int m, int d, keel_date *out) {
  if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return -1;
  y -= m <= 2;
  const int era = y / 400; /* y >= 0 here */
  const int yoe = y - era * 400;
  const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  *out = (keel_date)(era * 146097 + doe - 719468);
  return 0;
}

void keel_date_to_ymd(keel_date date, int *y, int *m, int *d) {
  long z = (long)date + 719468;
  const long era = (z >= 0 ? z : z - 146096) / 146097;
  const long doe = z - era * 146097;
  const long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const long mp = (5 * doy + 2) / 153;
  const long dd = doy - (153 * mp + 2) / 5 + 1;
  const long mm = mp < 10 ? mp + 3 : mp - 9;
  const long yy = yoe + era * 400 + (mm <= 2);
  if (y) *y = (int)yy;
  if (m) *m = (int)mm;
  if (d) *d = (int)dd;
}

int keel_date_weekday(keel_date date) {
  /* 1970-01-01 was a Thursday (3 with Monday = 0). */
  long w = ((long)date + 3) % 7;
  return (int)(w < 0 ? w + 7 : w);
}

void keel_date_format(keel_date date, char buf[KEEL_DATE_BUFSIZE]) {
  int y, m, d;
  keel_date_to_ymd(date, &y, &m, &d);
  if (y < 0 || y > 9999) {
    snprintf(buf, KEEL_DATE_BUFSIZE, "%s", "invalid");
    return;
  }
  snprintf(buf, KEEL_DATE_BUFSIZE, "%04d-%02d-%02d", y, m, d);
}

static int digits(const char *s, size_t n, int *v) {
  int x = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    x = x * 10 + (s[i] - '0');
  }
  *v = x;
  return 0;
}

int keel_date_parse(const char *s, size_t len, keel_date *out) {
  int y, m, d;
  if (len == 10 && (s[4] == '-' || s[4] == '/') && s[7] == s[4]) {
    if (digits(s, 4, &y) || digits(s + 5, 2, &m) || digits(s + 8, 2, &d)) return -1;
  } else if (len == 8) {
    if (digits(s, 4, &y) || digits(s + 4, 2, &m) || digits(s + 6, 2, &d)) return -1;
  } else {
    return -1;
  }
  return keel_date_from_ymd(y, m, d, out);
}

size_t keeli_date_lower_bound(const keel_date *d, size_t n, keel_date x) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (d[mid] < x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}
