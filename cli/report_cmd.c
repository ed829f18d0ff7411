/* keel — the report command: the HTML page of stored runs
 * (keel/report.h, docs/reports.md). */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report_cmd.h"

const char REPORT_HELP[] =
    "Usage: keel report --db FILE --run ID[,ID...] --out FILE [--title TEXT]\n"
    "\n"
    "Writes one self-contained HTML page (no network, no scripts: it opens from\n"
    "disk) about stored runs. One run gives the page of its kind: a backtest\n"
    "(metrics, growth against its benchmark, drawdown, weights with trades and\n"
    "stops, rolling risk, monthly returns, costs and turnover by year), a stress\n"
    "test (fan chart, terminal wealth histogram, goal, scenario) or an\n"
    "optimisation (frontier, weights, risk contributions). Several backtests\n"
    "give one page comparing them. backtest, batch, stress, optimize and\n"
    "frontier write the same page with --report FILE.\n"
    "\n"
    "  --db FILE       the keel database\n"
    "  --run LIST      run ids, e.g. 3 or 3,4,7 or 10-25 (repeatable)\n"
    "  --out FILE      where to write the page\n"
    "  --title TEXT    the page's title\n"
    "  -h, --help      this help\n";

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int usage(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "keel: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see 'keel report --help')\n");
  return 2;
}

/* "3", "3,4,7", "10-25" appended to *ids. */
static int parse_ids(const char *s, int64_t **ids, size_t *n, size_t *cap) {
  const char *p = s;
  while (*p) {
    char *end;
    errno = 0;
    long long a = strtoll(p, &end, 10), b = a;
    if (end == p || errno || a < 1) return -1;
    p = end;
    if (*p == '-') {
      b = strtoll(p + 1, &end, 10);
      if (end == p + 1 || errno || b < a || b - a > 10000000) return -1;
      p = end;
    }
    for (long long v = a; v <= b; v++) {
      if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        int64_t *ni = realloc(*ids, nc * sizeof *ni);
        if (!ni) return -1;
        *ids = ni, *cap = nc;
      }
      (*ids)[(*n)++] = v;
    }
    if (*p == ',') p++;
    else if (*p) return -1;
  }
  return 0;
}

int cli_write_report(keel_ctx *ctx, const char *db, const int64_t *ids, size_t n, const char *out, int quiet) {
  keel_store *s = NULL;
  keel_report *r = NULL;
  keel_report_options o;
  keel_report_options_default(&o);
  keel_status st = keel_store_open(ctx, db, &s);
  if (!st) st = keel_report_new(ctx, s, ids, n, &o, &r);
  if (!st) st = keel_report_save(ctx, r, out);
  keel_store_close(s);
  size_t nch = keel_report_ncharts(r);
  keel_report_free(r);
  if (st) {
    fprintf(stderr, "keel: report: %s\n", keel_errmsg(ctx));
    return 1;
  }
  if (!quiet) printf("wrote the report (%zu charts) to %s\n", nch, out);
  return 0;
}

int cli_scratch_db(char *buf, size_t n) {
  const char *t = getenv("TMPDIR");
  snprintf(buf, n, "%s/keel-report-XXXXXX", t && *t ? t : "/tmp");
  int fd = mkstemp(buf);
  if (fd < 0) {
    fprintf(stderr, "keel: %s: %s\n", buf, strerror(errno));
    return 1;
  }
  close(fd);
  unlink(buf); /* SQLite makes it anew */
  return 0;
}

void cli_scratch_db_remove(const char *path) {
  char b[4200];
  unlink(path);
  snprintf(b, sizeof b, "%s-wal", path);
  unlink(b);
  snprintf(b, sizeof b, "%s-shm", path);
  unlink(b);
}

int cmd_report(keel_ctx *ctx, int argc, char **argv) {
  const char *db = NULL, *outp = NULL, *title = NULL;
  int64_t *ids = NULL;
  size_t n = 0, cap = 0;
  static const struct option longopts[] = {{"db", required_argument, 0, 'd'},  {"run", required_argument, 0, 'r'},
                                           {"out", required_argument, 0, 'o'}, {"title", required_argument, 0, 't'},
                                           {"help", no_argument, 0, 'h'},      {0, 0, 0, 0}};
  int ch, rc = 0;
  opterr = 0;
  optind = 1;
  while (!rc && (ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    switch (ch) {
      case 'd': db = optarg; break;
      case 'o': outp = optarg; break;
      case 't': title = optarg; break;
      case 'r':
        if (parse_ids(optarg, &ids, &n, &cap)) rc = usage("--run: '%s' is not a list of run ids (3,4 or 3-7)", optarg);
        break;
      case 'h': fputs(REPORT_HELP, stdout); free(ids); return 0;
      case ':': rc = usage("option %s needs a value", argv[optind - 1]); break;
      default: rc = usage("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (!rc && optind < argc) rc = usage("unexpected argument '%s'", argv[optind]);
  if (!rc && !db) rc = usage("%s", "--db FILE is required");
  if (!rc && !n) rc = usage("%s", "--run ID is required");
  if (!rc && !outp) rc = usage("%s", "--out FILE is required");
  if (!rc && access(db, F_OK) != 0) {
    fprintf(stderr, "keel: report: %s: %s\n", db, strerror(errno));
    rc = 1;
  }
  if (!rc) {
    keel_store *s = NULL;
    keel_report *r = NULL;
    keel_report_options o;
    keel_report_options_default(&o);
    o.title = title;
    keel_status st = keel_store_open(ctx, db, &s);
    if (!st) st = keel_report_new(ctx, s, ids, n, &o, &r);
    if (!st) st = keel_report_save(ctx, r, outp);
    keel_store_close(s);
    if (st) {
      fprintf(stderr, "keel: report: %s\n", keel_errmsg(ctx));
      rc = 1;
    } else {
      printf("wrote the report (%zu charts) to %s\n", keel_report_ncharts(r), outp);
    }
    keel_report_free(r);
  }
  free(ids);
  return rc;
}
