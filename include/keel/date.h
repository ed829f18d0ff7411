/* keel — calendar dates as days since 1970-01-01 (proleptic Gregorian). */
#ifndef KEEL_DATE_H
#define KEEL_DATE_H

#include <stddef.h>
#include <stdint.h>

#include "keel/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t keel_date;

/* "No date" (e.g. a drawdown that has not recovered). */
#define KEEL_DATE_NONE INT32_MIN
/* Buffer size for keel_date_format: "yyyy-mm-dd" plus NUL. */
#define KEEL_DATE_BUFSIZE 11

/* Days since 1970-01-01 of y-m-d; returns 0 and sets *out only when the date
 * is valid (year 1..9999, month 1..12, day within the month). */
KEEL_API int keel_date_from_ymd(int y, int m, int d, keel_date *out);
/* Splits a date into year, month (1..12), day (1..31); any pointer may be NULL. */
KEEL_API void keel_date_to_ymd(keel_date date, int *y, int *m, int *d);
/* Day of week, 0 = Monday .. 6 = Sunday (ISO 8601). */
KEEL_API int keel_date_weekday(keel_date date);
/* Writes "yyyy-mm-dd" into buf (at least KEEL_DATE_BUFSIZE bytes). */
KEEL_API void keel_date_format(keel_date date, char buf[KEEL_DATE_BUFSIZE]);
/* Parses "yyyy-mm-dd", "yyyy/mm/dd" or "yyyymmdd" (exactly len bytes, no
 * spaces). Returns 0 and sets *out on success, -1 if malformed or invalid. */
KEEL_API int keel_date_parse(const char *s, size_t len, keel_date *out);

#ifdef __cplusplus
}
#endif
#endif
