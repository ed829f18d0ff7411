/* keel — locale-independent number parsing/formatting (private). */
#ifndef KEEL_NUMPARSE_H
#define KEEL_NUMPARSE_H

#include <locale.h>
#include <stddef.h>

/* Longest numeric literal accepted, in bytes. */
#define KEEL_NUM_MAXLEN 100

/* Parses exactly n bytes of s as a decimal number, correctly rounded.
 * cloc is a "C" locale for the rare slow path. Returns 0 on success, -1 if
 * the text is not a decimal number, -2 if it is longer than
 * KEEL_NUM_MAXLEN. */
int keeli_parse_double(const char *s, size_t n, locale_t cloc, double *out);

/* Shortest of %.15g/%.16g/%.17g that reads back as v; returns its length. */
size_t keeli_format_double(double v, locale_t cloc, char buf[32]);

#endif
