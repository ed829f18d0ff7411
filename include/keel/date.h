/** @file
 * @brief keel — calendar dates as days since 1970-01-01 (proleptic Gregorian).
 */
#ifndef KEEL_DATE_H
#define KEEL_DATE_H

#include <stddef.h>
#include <stdint.h>

#include "keel/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A calendar date: days since 1970-01-01 (proleptic Gregorian). */
typedef int32_t keel_date;

/** @brief "No date" (e.g. a drawdown that has not recovered). */
#define KEEL_DATE_NONE INT32_MIN
/** @brief Buffer size for keel_date_format(): "yyyy-mm-dd" plus NUL. */
#define KEEL_DATE_BUFSIZE 11

/** @brief Days since 1970-01-01 of y-m-d.
 * @param y year, 1..9999
 * @param m month, 1..12
 * @param d day within the month
 * @param[out] out the date, set only when it is valid
 * @return 0 when the date is valid, else -1 (*out untouched) */
KEEL_API int keel_date_from_ymd(int y, int m, int d, keel_date *out);
/** @brief Splits a date into year, month (1..12) and day (1..31).
 * @param date the date
 * @param[out] y year, or NULL
 * @param[out] m month, or NULL
 * @param[out] d day, or NULL */
KEEL_API void keel_date_to_ymd(keel_date date, int *y, int *m, int *d);
/** @brief Day of week (ISO 8601).
 * @param date the date
 * @return 0 = Monday .. 6 = Sunday */
KEEL_API int keel_date_weekday(keel_date date);
/** @brief Writes "yyyy-mm-dd" into buf.
 * @param date the date
 * @param[out] buf at least KEEL_DATE_BUFSIZE bytes */
KEEL_API void keel_date_format(keel_date date, char buf[KEEL_DATE_BUFSIZE]);
/** @brief Parses "yyyy-mm-dd", "yyyy/mm/dd" or "yyyymmdd".
 * @param s the text: exactly len bytes, no spaces
 * @param len its length
 * @param[out] out the date, on success
 * @return 0 on success, -1 if malformed or invalid */
KEEL_API int keel_date_parse(const char *s, size_t len, keel_date *out);

#ifdef __cplusplus
}
#endif
#endif
