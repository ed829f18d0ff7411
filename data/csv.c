/* keel — CSV price files in and out (libcsv).
 *
 * libcsv tokenises; keel tracks positions. libcsv reports neither lines nor
 * columns and grows a field's buffer without limit, so input is fed to it in
 * pieces that end at the first CR or LF or after 64 KiB, whichever comes
 * first. Every row therefore ends exactly at the end of a piece, the bytes of
 * the current row are kept (bounded by max_line), and when something is
 * wrong the row is re-scanned to find the line and column where the
 * offending field starts. Between pieces the size of libcsv's field buffer
 * is checked against max_field. Parsing stops at the first error and nothing
 * half-loaded is returned. See docs/formats.md. */
#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "data/numparse.h"
#include "keel/panel.h"

#define PIECE_MAX 65536
#define READ_CHUNK (1u << 20)

void keel_csv_options_default(keel_csv_options *opt) {
  opt->layout = KEEL_CSV_AUTO;
  opt->delimiter = 0;
  opt->max_field = 4096;
  opt->max_line = 16u << 20;
  opt->max_columns = 100000;
  opt->max_cells = (size_t)1 << 28;
}

/* ---- a string -> id table (symbols) ----------------------------------- */

typedef struct strtab {
  char **names; /* id -> name */
  size_t n, cap;
  uint32_t *slots; /* open addressing: id + 1, 0 = empty */
  size_t nslots;
} strtab;

static uint64_t strhash(const char *s, size_t n) { return keeli_fnv1a(KEEL_FNV_OFFSET, s, n); }

static void strtab_free(keel_ctx *ctx, strtab *t) {
  for (size_t i = 0; i < t->n; i++) keeli_free(ctx, t->names[i]);
  keeli_free(ctx, t->names);
  keeli_free(ctx, t->slots);
  memset(t, 0, sizeof *t);
}

/* Looks s up; if absent and add, inserts it. Returns the id, -1 if absent
 * (and !add), -2 on allocation failure. *added tells whether it was new. */
static long strtab_get(keel_ctx *ctx, strtab *t, const char *s, size_t n, int add, int *added) {
  *added = 0;
  if (t->nslots) {
    size_t mask = t->nslots - 1;
    for (size_t h = strhash(s, n) & mask;; h = (h + 1) & mask) {
      uint32_t v = t->slots[h];
      if (!v) break;
      const char *k = t->names[v - 1];
      if (strlen(k) == n && memcmp(k, s, n) == 0) return (long)(v - 1);
    }
  }
  if (!add) return -1;
  if ((t->n + 1) * 2 > t->nslots) {
    size_t ns = t->nslots ? t->nslots * 2 : 64;
    uint32_t *sl = keeli_calloc(ctx, ns, sizeof *sl);
    if (!sl) return -2;
    for (size_t i = 0; i < t->n; i++) {
      size_t h = strhash(t->names[i], strlen(t->names[i])) & (ns - 1);
      while (sl[h]) h = (h + 1) & (ns - 1);
      sl[h] = (uint32_t)(i + 1);
    }
    keeli_free(ctx, t->slots);
    t->slots = sl;
    t->nslots = ns;
  }
  if (keeli_reserve(ctx, (void **)&t->names, &t->cap, t->n + 1, sizeof *t->names)) return -2;
  char *c = keeli_alloc(ctx, n + 1);
  if (!c) return -2;
  memcpy(c, s, n);
  c[n] = '\0';
  size_t h = strhash(s, n) & (t->nslots - 1);
  while (t->slots[h]) h = (h + 1) & (t->nslots - 1);
  t->slots[h] = (uint32_t)(t->n + 1);
  t->names[t->n] = c;
  *added = 1;
  return (long)t->n++;
}

/* ---- parser state ------------------------------------------------------ */

typedef struct parser {
  keel_ctx *ctx;
  const char *name;
  keel_csv_options opt;
  keel_csv_layout layout;
  unsigned char delim;
  locale_t cloc;
  struct csv_parser csv;
  keel_status err;

  /* positions */
  unsigned long line;     /* line of the next byte to feed */
  unsigned long row_line; /* line where the current row starts */
  int last_cr;
  int started; /* a byte has been fed (for the BOM) */
  char *row;   /* bytes of the current row */
  size_t rowlen, rowcap;
  int row_ended;

  /* rows */
  size_t fi;         /* index of the next field in the row */
  int in_header;
  strtab header;     /* column names (wide: asset symbols from column 1 on) */
  size_t ncols;      /* header fields */
  size_t nrows;      /* data rows */

  /* wide */
  keel_date *dates;
  size_t datecap;
  double *prices;
  size_t pricecap;

  /* long */
  strtab syms;
  keel_date *ldate;
  uint32_t *lsym;
  double *lpx;
  size_t lcap_d, lcap_s, lcap_p;
  keel_date *symlast; /* last date seen per symbol */
  size_t symlastcap;
  keel_date cur_date;
  uint32_t cur_sym;
} parser;

/* With a TAB delimiter only ' ' is padding; otherwise libcsv's built-in
 * test (space or TAB, inlined) is used. */
static int is_space(unsigned char c) { return c == ' '; }

static void set_delim(parser *P, unsigned char d) {
  P->delim = d;
  csv_set_delim(&P->csv, d);
  if (d == '\t') csv_set_space_func(&P->csv, is_space);
}

/* Line and column (1-based) in the current row of byte offset off, or, if
 * off is SIZE_MAX, of the start of field k (k == the number of fields: the
 * end of the row). A doubled quote toggles the quoted state twice. */
static void row_pos(const parser *P, size_t off, size_t k, unsigned long *line, unsigned long *col) {
  unsigned long l = P->row_line, c = 1;
  size_t field = 0;
  int inq = 0, lastcr = 0;
  for (size_t i = 0; i < P->rowlen; i++) {
    if (off == SIZE_MAX ? field == k : i == off) break;
    unsigned char b = (unsigned char)P->row[i];
    if (off == SIZE_MAX && !inq && (b == '\r' || b == '\n')) break;
    if (b == '"')
      inq = !inq;
    else if (!inq && b == P->delim)
      field++;
    if (b == '\n') {
      if (!lastcr) l++;
      c = 1;
      lastcr = 0;
    } else if (b == '\r') {
      l++;
      c = 1;
      lastcr = 1;
    } else {
      lastcr = 0;
      c++;
    }
  }
  *line = l;
  *col = c;
}

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static void fail_at(parser *P, keel_status code, unsigned long line, unsigned long col, const char *fmt, ...) {
  if (P->err) return;
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  P->err = keeli_error(P->ctx, code, "%s:%lu:%lu: %s", P->name, line, col, msg);
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static void fail_field(parser *P, keel_status code, size_t k, const char *fmt, ...) {
  if (P->err) return;
  unsigned long line, col;
  row_pos(P, SIZE_MAX, k, &line, &col);
  char msg[640];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fail_at(P, code, line, col, "%s", msg);
}

/* Quotes a value for a message: at most 40 bytes, unprintables escaped. */
static const char *show(const char *s, size_t n, char buf[200]) {
  size_t o = 0;
  buf[o++] = '\'';
  for (size_t i = 0; i < n && i < 40; i++) {
    unsigned char b = (unsigned char)s[i];
    if (b >= 32 && b < 127 && b != '\\')
      buf[o++] = (char)b;
    else
      o += (size_t)snprintf(buf + o, 5, "\\x%02x", b);
  }
  if (n > 40) memcpy(buf + o, "...", 3), o += 3;
  buf[o++] = '\'';
  buf[o] = '\0';
  return buf;
}

static int is_missing(const char *s, size_t n) {
  if (n == 0) return 1;
  static const char *const tok[] = {"NA", "N/A", "NaN", "null", "#N/A"};
  for (size_t i = 0; i < sizeof tok / sizeof tok[0]; i++)
    if (strlen(tok[i]) == n && strncasecmp(s, tok[i], n) == 0) return 1;
  return 0;
}

static void trim(const char **s, size_t *n) {
  while (*n && ((*s)[0] == ' ' || (*s)[0] == '\t')) (*s)++, (*n)--;
  while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

/* A price cell: NaN if missing; else a finite number > 0. sym names the
 * asset in messages. */
static int parse_price(parser *P, const char *s, size_t n, const char *sym, double *out) {
  char b[200], what[300];
  trim(&s, &n);
  double v;
  int rc = keeli_parse_double(s, n, P->cloc, &v);
  if (rc == 0 && v > 0 && v < HUGE_VAL) {
    *out = v;
    return 0;
  }
  if (rc != 0 && is_missing(s, n)) {
    *out = NAN;
    return 0;
  }
  snprintf(what, sizeof what, "%s '%s'", P->layout == KEEL_CSV_WIDE ? "column" : "price of", sym);
  if (rc == -2) {
    fail_field(P, KEEL_EPARSE, P->fi, "%s: number %s is longer than %d characters", what, show(s, n, b),
               KEEL_NUM_MAXLEN);
    return -1;
  }
  if (rc != 0 && P->opt.layout == KEEL_CSV_AUTO && P->layout == KEEL_CSV_WIDE && P->ncols == 3 &&
      P->nrows == 0 && P->fi == 1) {
    /* date,X,Y whose first row has text under X: a long file with an
     * unrecognised header rather than two assets */
    fail_field(P, KEEL_EPARSE, P->fi,
               "unknown layout: 3 columns whose second holds text (%s), but the header is not "
               "date,symbol,price (second column symbol, ticker, asset or id; third price, close, "
               "adj_close, adjclose, adj close or value)",
               show(s, n, b));
    return -1;
  }
  if (rc != 0) {
    fail_field(P, KEEL_EPARSE, P->fi, "%s: %s is not a number", what, show(s, n, b));
    return -1;
  }
  if (!isfinite(v)) {
    fail_field(P, KEEL_EPARSE, P->fi, "%s: %s is out of range", what, show(s, n, b));
    return -1;
  }
  if (v <= 0) {
    fail_field(P, KEEL_EPARSE, P->fi, "%s: price %s must be > 0", what, show(s, n, b));
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_date_cell(parser *P, const char *s, size_t n, keel_date *out) {
  char b[200];
  trim(&s, &n);
  if (keel_date_parse(s, n, out) != 0) {
    fail_field(P, KEEL_EPARSE, P->fi, "%s is not a date (expected yyyy-mm-dd, yyyy/mm/dd or yyyymmdd)",
               show(s, n, b));
    return -1;
  }
  return 0;
}

static int is_date_name(const char *s) {
  static const char *const names[] = {"", "date", "time", "timestamp", "day", "datetime"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcasecmp(s, names[i]) == 0) return 1;
  return 0;
}

static int name_in(const char *s, const char *const *names, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcasecmp(s, names[i]) == 0) return 1;
  return 0;
}

static const char *const SYMBOL_NAMES[] = {"symbol", "ticker", "asset", "id"};
static const char *const PRICE_NAMES[] = {"price", "close", "adj_close", "adjclose", "adj close", "value"};

/* The header row is complete: decide the layout and check the names. */
static void end_header(parser *P) {
  char b[200];
  strtab *h = &P->header;
  P->ncols = h->n;
  const char *c0 = h->names[0];
  int long_hdr = h->n == 3 && is_date_name(c0) && name_in(h->names[1], SYMBOL_NAMES, 4) &&
                 name_in(h->names[2], PRICE_NAMES, 6);
  keel_date d;
  if (P->layout == KEEL_CSV_AUTO) {
    if (keel_date_parse(c0, strlen(c0), &d) == 0) {
      fail_field(P, KEEL_EPARSE, 0, "no header: the first line starts with a date %s", show(c0, strlen(c0), b));
      return;
    }
    if (long_hdr)
      P->layout = KEEL_CSV_LONG;
    else if (is_date_name(c0))
      P->layout = KEEL_CSV_WIDE;
    else {
      fail_field(P, KEEL_EPARSE, 0,
                 "unknown layout: the first column is named %s; expected a date column (date, time, "
                 "timestamp, day) followed by one column per asset, or date,symbol,price",
                 show(c0, strlen(c0), b));
      return;
    }
  }
  if (P->layout == KEEL_CSV_LONG && h->n != 3) {
    fail_field(P, KEEL_EPARSE, h->n < 3 ? h->n : 3, "long layout needs exactly 3 columns (date,symbol,price), header has %zu",
               h->n);
    return;
  }
  if (P->layout == KEEL_CSV_WIDE) {
    if (h->n < 2) {
      fail_field(P, KEEL_EPARSE, 1, "the header has no asset columns after the date column");
      return;
    }
    for (size_t k = 1; k < h->n; k++)
      if (!h->names[k][0]) {
        fail_field(P, KEEL_EPARSE, k, "column %zu has an empty name (every asset column needs a symbol)", k + 1);
        return;
      }
  }
  P->in_header = 0;
}

static void on_field(void *f, size_t n, void *data) {
  parser *P = data;
  if (P->err) return;
  const char *s = f ? f : "";
  char b[200];
  if (n > P->opt.max_field) {
    fail_field(P, KEEL_ELIMIT, P->fi, "field longer than the limit of %zu bytes", P->opt.max_field);
    return;
  }
  if (P->in_header) {
    if (P->fi >= P->opt.max_columns) {
      fail_field(P, KEEL_ELIMIT, P->fi, "more than %zu columns", P->opt.max_columns);
      return;
    }
    trim(&s, &n);
    int added;
    long id = strtab_get(P->ctx, &P->header, s, n, 1, &added);
    if (id == -2) {
      P->err = KEEL_ENOMEM;
      return;
    }
    if (!added) {
      if (n)
        fail_field(P, KEEL_EPARSE, P->fi, "column name %s appears twice in the header", show(s, n, b));
      else
        fail_field(P, KEEL_EPARSE, P->fi, "column %zu has an empty name (every asset column needs a symbol)",
                   P->fi + 1);
      return;
    }
    P->fi++;
    return;
  }

  if (P->layout == KEEL_CSV_WIDE) {
    size_t na = P->ncols - 1;
    if (P->fi == 0) {
      keel_date d;
      if (parse_date_cell(P, s, n, &d)) return;
      if (P->nrows > 0) {
        keel_date prev = P->dates[P->nrows - 1];
        if (d == prev) {
          fail_field(P, KEEL_EPARSE, 0, "duplicate date %s", show(s, n, b));
          return;
        }
        if (d < prev) {
          char pb[KEEL_DATE_BUFSIZE];
          keel_date_format(prev, pb);
          fail_field(P, KEEL_EPARSE, 0, "date %s follows %s: dates must be in increasing order",
                     show(s, n, b), pb);
          return;
        }
      }
      if (P->nrows + 1 > P->opt.max_cells / na) {
        fail_field(P, KEEL_ELIMIT, 0, "more than %zu price cells", P->opt.max_cells);
        return;
      }
      if (keeli_reserve(P->ctx, (void **)&P->dates, &P->datecap, P->nrows + 1, sizeof *P->dates) ||
          keeli_reserve(P->ctx, (void **)&P->prices, &P->pricecap, (P->nrows + 1) * na, sizeof *P->prices)) {
        P->err = KEEL_ENOMEM;
        return;
      }
      P->dates[P->nrows] = d;
    } else if (P->fi < P->ncols) {
      if (parse_price(P, s, n, P->header.names[P->fi], &P->prices[P->nrows * na + P->fi - 1])) return;
    } else {
      fail_field(P, KEEL_EPARSE, P->fi, "too many fields: the header has %zu columns", P->ncols);
      return;
    }
    P->fi++;
    return;
  }

  /* long layout */
  if (P->fi == 0) {
    if (parse_date_cell(P, s, n, &P->cur_date)) return;
  } else if (P->fi == 1) {
    trim(&s, &n);
    if (n == 0) {
      fail_field(P, KEEL_EPARSE, 1, "empty symbol");
      return;
    }
    int added;
    long id = strtab_get(P->ctx, &P->syms, s, n, 1, &added);
    if (id < 0 ||
        keeli_reserve(P->ctx, (void **)&P->symlast, &P->symlastcap, P->syms.n, sizeof *P->symlast)) {
      P->err = KEEL_ENOMEM;
      return;
    }
    if (added) {
      if (P->syms.n > P->opt.max_columns) {
        fail_field(P, KEEL_ELIMIT, 1, "more than %zu symbols", P->opt.max_columns);
        return;
      }
      P->symlast[id] = INT32_MIN;
    }
    keel_date last = P->symlast[id];
    if (P->cur_date <= last) {
      char db[KEEL_DATE_BUFSIZE], lb[KEEL_DATE_BUFSIZE];
      keel_date_format(P->cur_date, db);
      keel_date_format(last, lb);
      P->fi = 0; /* report at the date */
      fail_field(P, KEEL_EPARSE, 0,
                 P->cur_date == last ? "duplicate date %s for symbol %s"
                                     : "date %s for symbol %s follows %s: each symbol's dates must increase",
                 db, P->syms.names[id], lb);
      return;
    }
    P->cur_sym = (uint32_t)id;
  } else if (P->fi == 2) {
    double v;
    if (parse_price(P, s, n, P->syms.names[P->cur_sym], &v)) return;
    size_t k = P->nrows;
    if (k + 1 > P->opt.max_cells) {
      fail_field(P, KEEL_ELIMIT, 2, "more than %zu price cells", P->opt.max_cells);
      return;
    }
    if (keeli_reserve(P->ctx, (void **)&P->ldate, &P->lcap_d, k + 1, sizeof *P->ldate) ||
        keeli_reserve(P->ctx, (void **)&P->lsym, &P->lcap_s, k + 1, sizeof *P->lsym) ||
        keeli_reserve(P->ctx, (void **)&P->lpx, &P->lcap_p, k + 1, sizeof *P->lpx)) {
      P->err = KEEL_ENOMEM;
      return;
    }
    P->ldate[k] = P->cur_date;
    P->lsym[k] = P->cur_sym;
    P->lpx[k] = v;
    P->symlast[P->cur_sym] = P->cur_date;
  } else {
    fail_field(P, KEEL_EPARSE, P->fi, "too many fields: the long layout has 3 columns (date,symbol,price)");
    return;
  }
  P->fi++;
}

static void on_row(int c, void *data) {
  parser *P = data;
  (void)c;
  P->row_ended = 1;
  if (P->err) return;
  if (P->in_header) {
    end_header(P);
  } else {
    if (P->fi < P->ncols) {
      fail_field(P, KEEL_EPARSE, P->fi, "too few fields: %zu, the header has %zu", P->fi, P->ncols);
      return;
    }
    P->nrows++;
  }
  P->fi = 0;
}

static int only_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\r' && s[i] != '\n') return 0;
  return 1;
}

/* Feeds len bytes to libcsv, piece by piece. */
static void feed(parser *P, const char *data, size_t len) {
  if (!P->started && len) {
    P->started = 1;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) data += 3, len -= 3;
  }
  while (len && !P->err) {
    size_t lim = len < PIECE_MAX ? len : PIECE_MAX;
    const char *nl = memchr(data, '\n', lim);
    size_t span = nl ? (size_t)(nl - data) + 1 : lim;
    const char *cr = memchr(data, '\r', span);
    size_t n = cr ? (size_t)(cr - data) + 1 : span;

    const char *nul = memchr(data, '\0', n);
    /* keep the row's bytes for positions */
    if (P->rowlen + n > P->opt.max_line) {
      unsigned long l = P->row_line;
      P->err = keeli_error(P->ctx, KEEL_ELIMIT, "%s:%lu:1: line longer than the limit of %zu bytes", P->name, l,
                           P->opt.max_line);
      return;
    }
    if (keeli_reserve(P->ctx, (void **)&P->row, &P->rowcap, P->rowlen + n, 1)) {
      P->err = KEEL_ENOMEM;
      return;
    }
    memcpy(P->row + P->rowlen, data, n);
    size_t piece_off = P->rowlen;
    P->rowlen += n;
    if (nul) {
      unsigned long l, c;
      row_pos(P, piece_off + (size_t)(nul - data), 0, &l, &c);
      fail_at(P, KEEL_EPARSE, l, c, "NUL byte in the input (not a text file?)");
      return;
    }

    P->row_ended = 0;
    size_t used = csv_parse(&P->csv, data, n, on_field, on_row, P);
    if (P->err) return;
    if (used < n) {
      unsigned long l, c;
      row_pos(P, piece_off + used, 0, &l, &c);
      if (csv_error(&P->csv) == CSV_ENOMEM || csv_error(&P->csv) == CSV_ETOOBIG)
        P->err = keeli_error(P->ctx, KEEL_ENOMEM, "%s:%lu:%lu: out of memory", P->name, l, c);
      else
        fail_at(P, KEEL_EPARSE, l, c, "malformed quoting (a quote inside an unquoted field, or text after a closing quote)");
      return;
    }
    if (csv_get_buffer_size(&P->csv) > P->opt.max_field + 4096) {
      fail_field(P, KEEL_ELIMIT, P->fi, "field longer than the limit of %zu bytes", P->opt.max_field);
      return;
    }
    /* line accounting: terminators only ever end a piece */
    char last = data[n - 1];
    if (last == '\r') {
      P->line++;
      P->last_cr = 1;
    } else if (last == '\n') {
      if (!P->last_cr) P->line++;
      P->last_cr = 0;
    } else {
      P->last_cr = 0;
    }
    if (P->row_ended || (P->fi == 0 && (last == '\n' || last == '\r') && only_blank(P->row, P->rowlen))) {
      P->rowlen = 0;
      P->row_line = P->line;
    }
    data += n;
    len -= n;
  }
}

static unsigned char detect_delim(const char *s, size_t n) {
  size_t cnt[3] = {0, 0, 0};
  const unsigned char cand[3] = {',', ';', '\t'};
  int inq = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '"') inq = !inq;
    if (inq) continue;
    if (c == '\n' || c == '\r') break;
    for (int k = 0; k < 3; k++)
      if ((unsigned char)c == cand[k]) cnt[k]++;
  }
  int best = 0;
  for (int k = 1; k < 3; k++)
    if (cnt[k] > cnt[best]) best = k;
  return cand[best];
}

static int cmp_date(const void *a, const void *b) {
  keel_date x = *(const keel_date *)a, y = *(const keel_date *)b;
  return (x > y) - (x < y);
}

static keel_status build_long(parser *P, keel_panel **out) {
  keel_ctx *ctx = P->ctx;
  size_t n = P->nrows, na = P->syms.n;
  keel_date *u = keeli_alloc_array(ctx, n, sizeof *u);
  if (!u) return KEEL_ENOMEM;
  memcpy(u, P->ldate, n * sizeof *u);
  qsort(u, n, sizeof *u, cmp_date);
  size_t nd = 0;
  for (size_t i = 0; i < n; i++)
    if (nd == 0 || u[i] != u[nd - 1]) u[nd++] = u[i];
  if (nd > SIZE_MAX / na || nd * na > P->opt.max_cells) {
    keeli_free(ctx, u);
    return keeli_error(ctx, KEEL_ELIMIT, "%s: %zu dates x %zu symbols is more than %zu price cells", P->name, nd,
                       na, P->opt.max_cells);
  }
  double *px = keeli_alloc_array(ctx, nd * na, sizeof *px);
  if (!px) {
    keeli_free(ctx, u);
    return KEEL_ENOMEM;
  }
  for (size_t k = 0; k < nd * na; k++) px[k] = NAN;
  for (size_t i = 0; i < n; i++) {
    const keel_date *r = bsearch(&P->ldate[i], u, nd, sizeof *u, cmp_date);
    px[(size_t)(r - u) * na + P->lsym[i]] = P->lpx[i];
  }
  keel_status st = keel_panel_new(ctx, nd, na, u, (const char *const *)P->syms.names, px, out);
  keeli_free(ctx, px);
  keeli_free(ctx, u);
  return st;
}

static void parser_free(parser *P) {
  keel_ctx *ctx = P->ctx;
  csv_free(&P->csv);
  if (P->cloc) freelocale(P->cloc);
  keeli_free(ctx, P->row);
  strtab_free(ctx, &P->header);
  strtab_free(ctx, &P->syms);
  keeli_free(ctx, P->dates);
  keeli_free(ctx, P->prices);
  keeli_free(ctx, P->ldate);
  keeli_free(ctx, P->lsym);
  keeli_free(ctx, P->lpx);
  keeli_free(ctx, P->symlast);
}

static keel_status parser_init(parser *P, keel_ctx *ctx, const char *name, const keel_csv_options *opt) {
  memset(P, 0, sizeof *P);
  P->ctx = ctx;
  P->name = name ? name : "<csv>";
  if (opt)
    P->opt = *opt;
  else
    keel_csv_options_default(&P->opt);
  if (P->opt.layout != KEEL_CSV_AUTO && P->opt.layout != KEEL_CSV_WIDE && P->opt.layout != KEEL_CSV_LONG)
    return keeli_error(ctx, KEEL_EINVAL, "csv options: unknown layout %d", (int)P->opt.layout);
  if (P->opt.delimiter && P->opt.delimiter != ',' && P->opt.delimiter != ';' && P->opt.delimiter != '\t')
    return keeli_error(ctx, KEEL_EINVAL, "csv options: delimiter must be ',', ';' or TAB");
  if (!P->opt.max_field || !P->opt.max_line || !P->opt.max_columns || !P->opt.max_cells)
    return keeli_error(ctx, KEEL_EINVAL, "csv options: limits must be > 0");
  P->layout = P->opt.layout;
  P->line = P->row_line = 1;
  P->in_header = 1;
  if (csv_init(&P->csv, CSV_STRICT | CSV_STRICT_FINI) != 0)
    return keeli_error(ctx, KEEL_ENOMEM, "out of memory (csv parser)");
  P->cloc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  if (!P->cloc) {
    csv_free(&P->csv);
    return keeli_error(ctx, KEEL_ENOMEM, "out of memory (C locale)");
  }
  return KEEL_OK;
}

static keel_status parser_finish(parser *P, keel_panel **out) {
  keel_ctx *ctx = P->ctx;
  if (!P->err) {
    /* libcsv calls the row callback at csv_fini for a last line without
     * a terminator */
    if (csv_fini(&P->csv, on_field, on_row, P) != 0 && !P->err) {
      unsigned long l, c;
      row_pos(P, SIZE_MAX, P->fi, &l, &c);
      fail_at(P, KEEL_EPARSE, l, c, "unterminated quoted field at the end of the input");
    }
  }
  if (!P->err) {
    if (P->in_header && P->header.n == 0)
      P->err = keeli_error(ctx, KEEL_EPARSE, "%s:1:1: empty file: no header", P->name);
    else if (P->in_header)
      P->err = keeli_error(ctx, KEEL_EPARSE, "%s:%lu:1: no data rows after the header", P->name, P->line);
    else if (P->nrows == 0)
      P->err = keeli_error(ctx, KEEL_EPARSE, "%s:%lu:1: no data rows after the header", P->name, P->line);
  }
  if (!P->err) {
    if (P->layout == KEEL_CSV_WIDE)
      P->err = keel_panel_new(ctx, P->nrows, P->ncols - 1, P->dates, (const char *const *)P->header.names + 1,
                              P->prices, out);
    else
      P->err = build_long(P, out);
  }
  keel_status st = P->err;
  if (st == KEEL_ENOMEM && keel_errcode(ctx) != KEEL_ENOMEM) keeli_error(ctx, KEEL_ENOMEM, "out of memory");
  parser_free(P);
  return st;
}

keel_status keel_panel_parse_csv(keel_ctx *ctx, const char *name, const char *buf, size_t len,
                                 const keel_csv_options *opt, keel_panel **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_panel_parse_csv: out is NULL");
  *out = NULL;
  if (!buf && len) return keeli_error(ctx, KEEL_EINVAL, "keel_panel_parse_csv: buf is NULL");
  parser P;
  keel_status st = parser_init(&P, ctx, name, opt);
  if (st) return st;
  if (!P.opt.delimiter) {
    size_t skip = len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    set_delim(&P, detect_delim(buf + skip, len - skip));
  } else {
    set_delim(&P, (unsigned char)P.opt.delimiter);
  }
  feed(&P, buf ? buf : "", len);
  return parser_finish(&P, out);
}

keel_status keel_panel_read_csv(keel_ctx *ctx, const char *path, const keel_csv_options *opt, keel_panel **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_panel_read_csv: out is NULL");
  *out = NULL;
  if (!path) return keeli_error(ctx, KEEL_EINVAL, "keel_panel_read_csv: path is NULL");
  FILE *f = fopen(path, "rb");
  if (!f) return keeli_error(ctx, KEEL_EIO, "%s: cannot open: %s", path, strerror(errno));
  parser P;
  keel_status st = parser_init(&P, ctx, path, opt);
  if (st) {
    fclose(f);
    return st;
  }
  char *chunk = keeli_alloc(ctx, READ_CHUNK);
  if (!chunk) {
    fclose(f);
    parser_free(&P);
    return KEEL_ENOMEM;
  }
  int first = 1;
  while (!P.err) {
    size_t n = fread(chunk, 1, READ_CHUNK, f);
    if (n == 0) {
      if (ferror(f)) P.err = keeli_error(ctx, KEEL_EIO, "%s: read error: %s", path, strerror(errno));
      break;
    }
    if (first) {
      first = 0;
      if (P.opt.delimiter) {
        set_delim(&P, (unsigned char)P.opt.delimiter);
      } else {
        size_t skip = n >= 3 && memcmp(chunk, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
        set_delim(&P, detect_delim(chunk + skip, n - skip));
      }
    }
    feed(&P, chunk, n);
  }
  keeli_free(ctx, chunk);
  fclose(f);
  if (first && !P.err) {
    set_delim(&P, P.opt.delimiter ? (unsigned char)P.opt.delimiter : ',');
  }
  return parser_finish(&P, out);
}

/* ---- writing ------------------------------------------------------------ */

static int put_field(FILE *f, const char *s) {
  if (strpbrk(s, ",;\t\"\r\n") == NULL && s[0] != ' ') return fputs(s, f) < 0 ? -1 : 0;
  if (fputc('"', f) == EOF) return -1;
  for (; *s; s++) {
    if (*s == '"' && fputc('"', f) == EOF) return -1;
    if (fputc(*s, f) == EOF) return -1;
  }
  return fputc('"', f) == EOF ? -1 : 0;
}

/* Writing a file whole or not at all: a temporary name beside the target,
 * created with O_EXCL and mode 0666 so that the umask applies as for any
 * new file (mkstemp would force 0600), renamed over the target once
 * everything is flushed and synced. */
typedef struct atomic_file {
  FILE *f;
  char *tmp;
  locale_t cloc; /* the C locale for numbers */
} atomic_file;

static keel_status atomic_open(keel_ctx *ctx, const char *path, atomic_file *a) {
  memset(a, 0, sizeof *a);
  size_t plen = strlen(path);
  if (!(a->tmp = keeli_alloc(ctx, plen + 48))) return KEEL_ENOMEM;
  int fd = -1;
  for (unsigned k = 0; k < 100 && fd < 0; k++) {
    snprintf(a->tmp, plen + 48, "%s.tmp.%ld.%u.%lx", path, (long)getpid(), k, (unsigned long)(uintptr_t)a->tmp >> 4);
    fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  keel_status st = KEEL_OK;
  if (fd < 0) {
    st = keeli_error(ctx, KEEL_EIO, "%s: cannot create a temporary file: %s", path, strerror(errno));
  } else if (!(a->f = fdopen(fd, "wb"))) {
    close(fd);
    unlink(a->tmp);
    st = keeli_error(ctx, KEEL_EIO, "%s: %s", path, strerror(errno));
  } else if ((a->cloc = newlocale(LC_ALL_MASK, "C", (locale_t)0)) == (locale_t)0) {
    fclose(a->f);
    unlink(a->tmp);
    st = keeli_error(ctx, KEEL_ENOMEM, "%s: cannot write: no C locale", path);
  }
  if (st) keeli_free(ctx, a->tmp), a->tmp = NULL;
  return st;
}

/* Finishes: bad says a write failed (errno then tells why). On any
 * failure the temporary file is removed and the target left as it was. */
static keel_status atomic_close(keel_ctx *ctx, const char *path, atomic_file *a, int bad) {
  int err = errno;
  freelocale(a->cloc);
  if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0) bad = 1, err = errno;
  if (fclose(a->f) != 0) bad = 1, err = errno;
  if (!bad && rename(a->tmp, path) != 0) bad = 1, err = errno;
  keel_status st = KEEL_OK;
  if (bad) {
    unlink(a->tmp);
    st = keeli_error(ctx, KEEL_EIO, "%s: cannot write: %s", path, strerror(err));
  }
  keeli_free(ctx, a->tmp);
  return st;
}

/* A number in shortest round-trip form; NaN as an empty cell. */
static int put_number(const atomic_file *a, double v) {
  if (isnan(v)) return 0;
  char num[32];
  size_t k = keeli_format_double(v, a->cloc, num);
  return fwrite(num, 1, k, a->f) != k;
}

keel_status keel_panel_write_csv(keel_ctx *ctx, const keel_panel *p, const char *path) {
  if (!p || !path) return keeli_error(ctx, KEEL_EINVAL, "keel_panel_write_csv: panel or path is NULL");
  atomic_file a;
  keel_status st = atomic_open(ctx, path, &a);
  if (st) return st;
  FILE *f = a.f;
  size_t nd = keel_panel_ndates(p), na = keel_panel_nassets(p);
  const double *px = keel_panel_prices(p);
  const keel_date *dates = keel_panel_dates(p);
  int bad = fputs("date", f) < 0;
  for (size_t j = 0; j < na && !bad; j++) bad = fputc(',', f) == EOF || put_field(f, keel_panel_symbol(p, j));
  if (!bad) bad = fputc('\n', f) == EOF;
  char db[KEEL_DATE_BUFSIZE];
  for (size_t i = 0; i < nd && !bad; i++) {
    keel_date_format(dates[i], db);
    bad = fputs(db, f) < 0;
    for (size_t j = 0; j < na && !bad; j++) bad = fputc(',', f) == EOF || put_number(&a, px[i * na + j]);
    if (!bad) bad = fputc('\n', f) == EOF;
  }
  return atomic_close(ctx, path, &a, bad);
}

keel_status keel_table_write_csv(keel_ctx *ctx, const char *path, size_t ncols, const char *const *names,
                                 size_t nrows, const double *values) {
  if (!path || !names || (nrows && !values) || ncols == 0)
    return keeli_error(ctx, KEEL_EINVAL, "keel_table_write_csv: NULL argument or no columns");
  for (size_t j = 0; j < ncols; j++)
    if (!names[j]) return keeli_error(ctx, KEEL_EINVAL, "keel_table_write_csv: column %zu has no name", j);
  atomic_file a;
  keel_status st = atomic_open(ctx, path, &a);
  if (st) return st;
  int bad = 0;
  for (size_t j = 0; j < ncols && !bad; j++) bad = (j && fputc(',', a.f) == EOF) || put_field(a.f, names[j]);
  if (!bad) bad = fputc('\n', a.f) == EOF;
  for (size_t i = 0; i < nrows && !bad; i++) {
    for (size_t j = 0; j < ncols && !bad; j++)
      bad = (j && fputc(',', a.f) == EOF) || put_number(&a, values[i * ncols + j]);
    if (!bad) bad = fputc('\n', a.f) == EOF;
  }
  return atomic_close(ctx, path, &a, bad);
}
