/* keel — HTML reports of stored runs (keel/report.h, docs/reports.md).
 *
 * Every figure is read from the store with SQL; the series the pages
 * derive (the growth index, drawdowns, rolling and yearly figures) come
 * from the library's metric functions (keel/metrics.h), so a page shows
 * what the metrics mean. Charts are drawn by data/chart.c and embedded as
 * base64 data URIs: cairo's SVG names its glyphs and clips with ids
 * ("glyph0-1", "clip1") that would collide between several SVGs inlined
 * in one page, and an <img> keeps each chart's ids to itself. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "data/chart.h"
#include "data/store_internal.h"
#include "keel/metrics.h"
#include "keel/report.h"
#include "keel/version.h"

/* ---- a growing string ----------------------------------------------------- */

typedef struct sb {
  keeli_heap heap;
  char *s;
  size_t len, cap;
  int oom;
} sb;

static void sb_put(sb *b, const char *s, size_t n) {
  if (b->oom) return;
  if (keeli_heap_reserve(&b->heap, (void **)&b->s, &b->cap, b->len + n + 1, 1)) {
    b->oom = 1;
    return;
  }
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

static void sb_puts(sb *b, const char *s) { sb_put(b, s, strlen(s)); }

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void sb_printf(sb *b, const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    sb_put(b, tmp, (size_t)n);
    return;
  }
  char *big = keeli_heap_alloc(&b->heap, (size_t)n + 1);
  if (!big) {
    b->oom = 1;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb_put(b, big, (size_t)n);
  keeli_heap_free(&b->heap, big);
}

static void sb_esc(sb *b, const char *s) {
  for (const char *p = s ? s : ""; *p; p++) {
    switch (*p) {
      case '&': sb_puts(b, "&amp;"); break;
      case '<': sb_puts(b, "&lt;"); break;
      case '>': sb_puts(b, "&gt;"); break;
      case '"': sb_puts(b, "&quot;"); break;
      case '\'': sb_puts(b, "&#39;"); break;
      default: sb_put(b, p, 1);
    }
  }
}

static void sb_b64(sb *b, const char *data, size_t n) {
  static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char out[4096];
  size_t o = 0;
  const unsigned char *d = (const unsigned char *)data;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
    out[o++] = T[v >> 18 & 63];
    out[o++] = T[v >> 12 & 63];
    out[o++] = i + 1 < n ? T[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? T[v & 63] : '=';
    if (o + 4 > sizeof out) {
      sb_put(b, out, o);
      o = 0;
    }
  }
  sb_put(b, out, o);
}

/* ---- the page being made -------------------------------------------------- */

typedef struct page {
  keel_ctx *ctx;
  keel_store *store;
  sqlite3 *db;
  const keel_report_options *o;
  sb out;
  size_t ncharts;
  keel_status st;
  void **allocs;
  size_t nallocs, capallocs;
} page;

/* Allocations that live until the page is done. */
static void *pg_alloc(page *pg, size_t n, size_t size) {
  if (pg->st) return NULL;
  if (pg->nallocs == pg->capallocs &&
      keeli_reserve(pg->ctx, (void **)&pg->allocs, &pg->capallocs, pg->nallocs + 1, sizeof *pg->allocs)) {
    pg->st = KEEL_ENOMEM;
    return NULL;
  }
  void *p = keeli_calloc(pg->ctx, n ? n : 1, size);
  if (!p) {
    pg->st = KEEL_ENOMEM;
    return NULL;
  }
  pg->allocs[pg->nallocs++] = p;
  return p;
}

static char *pg_strdup(page *pg, const char *s) {
  size_t n = strlen(s ? s : "");
  char *d = pg_alloc(pg, n + 1, 1);
  if (d) memcpy(d, s ? s : "", n);
  return d;
}

static sqlite3_stmt *pg_prep(page *pg, const char *sql, int64_t id) {
  if (pg->st) return NULL;
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(pg->db, sql, -1, &q, NULL) != SQLITE_OK) {
    pg->st = keeli_error(pg->ctx, KEEL_EIO, "%s: reading the run: %s", keeli_store_path(pg->store),
                         sqlite3_errmsg(pg->db));
    return NULL;
  }
  sqlite3_bind_int64(q, 1, id);
  return q;
}

/* Steps q; SQLITE_ROW or SQLITE_DONE, else records the error. */
static int pg_step(page *pg, sqlite3_stmt *q) {
  int rc = sqlite3_step(q);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE && !pg->st)
    pg->st = keeli_error(pg->ctx, KEEL_EIO, "%s: reading the run: %s", keeli_store_path(pg->store),
                         sqlite3_errmsg(pg->db));
  return rc;
}

static double col_real(sqlite3_stmt *q, int c) {
  return sqlite3_column_type(q, c) == SQLITE_NULL ? NAN : sqlite3_column_double(q, c);
}

static const char *col_text(sqlite3_stmt *q, int c) {
  const char *t = (const char *)sqlite3_column_text(q, c);
  return t ? t : "";
}

static keel_date col_date(sqlite3_stmt *q, int c) {
  const char *t = col_text(q, c);
  keel_date d;
  return keel_date_parse(t, strlen(t), &d) ? KEEL_DATE_NONE : d;
}

/* Counts the rows of a query with one parameter. */
static size_t pg_count(page *pg, const char *sql, int64_t id) {
  sqlite3_stmt *q = pg_prep(pg, sql, id);
  size_t n = 0;
  if (q && pg_step(pg, q) == SQLITE_ROW) n = (size_t)sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  return n;
}

/* Embeds a finished chart as an image. */
static void embed(page *pg, keeli_chart *c, const char *id, const char *alt, int half) {
  if (pg->st) {
    keeli_chart_free(c);
    return;
  }
  const double w = keeli_chart_width(c), h = keeli_chart_height(c);
  char *svg = NULL;
  size_t len = 0;
  keel_status st = keeli_chart_finish(pg->ctx, c, &svg, &len);
  if (st) {
    pg->st = st;
    return;
  }
  sb_printf(&pg->out, "<figure class=\"chart%s\" id=\"chart-%s\" data-chart=\"%s\"><img alt=\"", half ? " half" : "",
            id, id);
  sb_esc(&pg->out, alt);
  sb_printf(&pg->out, "\" width=\"%.0f\" height=\"%.0f\" src=\"data:image/svg+xml;base64,", w, h);
  sb_b64(&pg->out, svg, len);
  sb_puts(&pg->out, "\"></figure>\n");
  keeli_free(pg->ctx, svg);
  pg->ncharts++;
}

static keeli_chart *new_chart(page *pg, double w, double h) {
  keeli_chart *c = NULL;
  if (pg->st) return NULL;
  keel_status st = keeli_chart_new(pg->ctx, w, h, &c);
  if (st) pg->st = st;
  return c;
}

/* ---- formatting ------------------------------------------------------------ */

static void fmt_pct(char *b, size_t n, double v, int dec) {
  if (isfinite(v))
    snprintf(b, n, "%.*f%%", dec, 100 * v);
  else
    snprintf(b, n, "n/a");
}

static void fmt_num(char *b, size_t n, double v, int dec) {
  if (isfinite(v))
    snprintf(b, n, "%.*f", dec, v);
  else
    snprintf(b, n, "n/a");
}

static void fmt_date(char *b, size_t n, double v) {
  if (isfinite(v) && v > -1e7 && v < 1e7) {
    char d[KEEL_DATE_BUFSIZE];
    keel_date_format((keel_date)v, d);
    snprintf(b, n, "%s", d);
  } else {
    snprintf(b, n, "—");
  }
}

/* How a stored metric is shown: its label and format. */
typedef struct metric_fmt {
  const char *name, *label;
  char kind; /* p percent, n number (3 dp), m money, d date, i integer, y years */
} metric_fmt;

static const metric_fmt METRICS[] = {
    {"total_return", "Total return", 'p'},    {"cagr", "CAGR", 'p'},
    {"volatility", "Volatility (annual)", 'p'}, {"sharpe", "Sharpe ratio", 'n'},
    {"sortino", "Sortino ratio", 'n'},        {"max_drawdown", "Max drawdown", 'p'},
    {"dd_peak", "Drawdown peak", 'd'},        {"dd_trough", "Drawdown trough", 'd'},
    {"dd_recovery", "Recovered on", 'd'},     {"calmar", "Calmar ratio", 'n'},
    {"turnover", "Turnover (annual, one-way)", 'p'}, {"costs_total", "Costs paid", 'm'},
    {"cost_ratio", "Costs / average value", 'p'}, {"years", "Years", 'y'},
    {"ntrades", "Trades", 'i'},               {"nstops", "Stops triggered", 'i'},
    {"time_in_market", "Time in market", 'p'}, {"tracking_error", "Tracking error", 'p'},
    {"info_ratio", "Information ratio", 'n'},
};
#define NMETRICS (sizeof METRICS / sizeof METRICS[0])

static void fmt_metric(char *b, size_t n, char kind, double v) {
  switch (kind) {
    case 'p': fmt_pct(b, n, v, 2); break;
    case 'm': keeli_fmt_money(b, n, v); break;
    case 'd': fmt_date(b, n, v); break;
    case 'i': fmt_num(b, n, v, 0); break;
    case 'y': fmt_num(b, n, v, 2); break;
    default: fmt_num(b, n, v, 3);
  }
}

/* ---- the run ----------------------------------------------------------------- */

typedef struct run_info {
  int64_t id;
  char kind[32], strategy[160], dataset[256], status[16], created[40], version[40], benchmark[80];
  keel_date start, end;
  char *params, *error;
  size_t npoints;
} run_info;

static keel_status load_run(page *pg, int64_t id, run_info *ri) {
  memset(ri, 0, sizeof *ri);
  ri->id = id;
  sqlite3_stmt *q = pg_prep(pg,
                            "SELECT kind, strategy, params, dataset, status, created_at, keel_version, start_date, "
                            "end_date, npoints, error, benchmark FROM runs WHERE id = ?1",
                            id);
  if (!q) return pg->st;
  int rc = pg_step(pg, q);
  if (rc == SQLITE_ROW) {
    snprintf(ri->kind, sizeof ri->kind, "%s", col_text(q, 0));
    snprintf(ri->strategy, sizeof ri->strategy, "%s", col_text(q, 1));
    ri->params = pg_strdup(pg, col_text(q, 2));
    snprintf(ri->dataset, sizeof ri->dataset, "%s", col_text(q, 3));
    snprintf(ri->status, sizeof ri->status, "%s", col_text(q, 4));
    snprintf(ri->created, sizeof ri->created, "%s", col_text(q, 5));
    snprintf(ri->version, sizeof ri->version, "%s", col_text(q, 6));
    ri->start = col_date(q, 7);
    ri->end = col_date(q, 8);
    ri->npoints = (size_t)sqlite3_column_int64(q, 9);
    ri->error = pg_strdup(pg, col_text(q, 10));
    snprintf(ri->benchmark, sizeof ri->benchmark, "%s", col_text(q, 11));
  } else if (rc == SQLITE_DONE && !pg->st) {
    pg->st = keeli_error(pg->ctx, KEEL_EINVAL, "%s: no run %lld", keeli_store_path(pg->store), (long long)id);
  }
  sqlite3_finalize(q);
  if (!pg->st && strcmp(ri->status, "ok"))
    pg->st = keeli_error(pg->ctx, KEEL_EINVAL, "run %lld failed, there is nothing to report: %s", (long long)id,
                         ri->error && *ri->error ? ri->error : ri->status);
  return pg->st;
}

/* ---- the page's frame ----------------------------------------------------------- */

static const char CSS[] =
    ":root{--ink:#1f2328;--muted:#656d76;--line:#d8dee4;--soft:#f6f8fa;--accent:#3b6fb6}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:#eef1f4;color:var(--ink);font:14px/1.45 'DejaVu Sans',system-ui,sans-serif}"
    "main{max-width:1160px;margin:0 auto;padding:24px 20px 40px}"
    "header.top{background:#fff;border:1px solid var(--line);border-radius:8px;padding:18px 22px;margin-bottom:16px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:0 0 10px}"
    ".sub{color:var(--muted);margin:0}"
    "section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 18px;margin:0 0 16px}"
    ".cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:14px}"
    ".card{flex:1 1 150px;background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 12px}"
    ".card b{display:block;font-size:19px}.card span{color:var(--muted);font-size:12px}"
    ".pos{color:#1a7f37}.neg{color:#cf222e}"
    "table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}"
    "th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left}"
    "thead th{background:var(--soft);font-weight:600;border-bottom:2px solid var(--line)}"
    "tbody tr:nth-child(even){background:#fafbfc}"
    ".cols{display:grid;grid-template-columns:1fr 1fr;gap:16px}"
    ".grid{display:flex;flex-wrap:wrap;gap:0 16px}"
    "figure.chart{margin:0 0 12px}figure.chart img{display:block;max-width:100%;height:auto}"
    "table.text th,table.text td{text-align:left}"
    ".note{color:var(--muted);font-size:12px;margin:6px 0 0}"
    "code{background:var(--soft);padding:1px 4px;border-radius:4px;font-size:12px;word-break:break-all}"
    ".scroll{overflow-x:auto}.scroll table{font-size:13px}"
    "footer{color:var(--muted);font-size:12px;text-align:center;margin-top:8px}";

static void page_begin(page *pg, const char *title) {
  sb *b = &pg->out;
  sb_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
             "style-src 'unsafe-inline'\">\n<meta name=\"generator\" content=\"keel ");
  sb_esc(b, KEEL_VERSION);
  sb_puts(b, "\">\n<title>");
  sb_esc(b, pg->o->title ? pg->o->title : title);
  sb_puts(b, "</title>\n<style>");
  sb_puts(b, CSS);
  sb_puts(b, "</style>\n</head>\n<body>\n<main>\n");
}

static void page_end(page *pg) {
  sb_puts(&pg->out, "<footer>Made by keel ");
  sb_esc(&pg->out, KEEL_VERSION);
  sb_puts(&pg->out, " from ");
  const char *sp = keeli_store_path(pg->store), *slash = strrchr(sp, '/');
  sb_esc(&pg->out, slash ? slash + 1 : sp); /* the file's name: a page may travel */
  sb_puts(&pg->out, ". The metrics are defined in keel's docs/metrics.md; the pages in docs/reports.md.</footer>\n"
                    "</main>\n</body>\n</html>\n");
}

static void card(page *pg, const char *label, const char *value, int sign) {
  sb_printf(&pg->out, "<div class=\"card\"><span>");
  sb_esc(&pg->out, label);
  sb_printf(&pg->out, "</span><b%s>", sign > 0 ? " class=\"pos\"" : sign < 0 ? " class=\"neg\"" : "");
  sb_esc(&pg->out, value);
  sb_puts(&pg->out, "</b></div>");
}

static void header(page *pg, const char *h1, const run_info *ri, const char *extra) {
  sb *b = &pg->out;
  sb_puts(b, "<header class=\"top\"><h1>");
  sb_esc(b, pg->o->title ? pg->o->title : h1);
  sb_puts(b, "</h1><p class=\"sub\">");
  if (ri) {
    char d0[KEEL_DATE_BUFSIZE] = "", d1[KEEL_DATE_BUFSIZE] = "";
    if (ri->start != KEEL_DATE_NONE) keel_date_format(ri->start, d0);
    if (ri->end != KEEL_DATE_NONE) keel_date_format(ri->end, d1);
    sb_printf(b, "Run %lld · ", (long long)ri->id);
    sb_esc(b, ri->dataset);
    char when[40];
    snprintf(when, sizeof when, "%s", ri->created);
    if (strlen(when) >= 16 && when[10] == 'T') when[10] = ' ', when[16] = '\0'; /* 2024-05-01 12:30 */
    sb_printf(b, " · %s to %s · stored %s UTC by keel ", d0, d1, when);
    sb_esc(b, ri->version);
  }
  if (extra) sb_esc(b, extra);
  sb_puts(b, "</p>");
}

/* ---- backtests: the data --------------------------------------------------------- */

typedef struct bt_sub {
  char name[80];
  double capital;
  double *value;       /* n, NaN where not stored */
  size_t nmetrics;
} bt_sub;

typedef struct bt {
  run_info ri;
  size_t n;
  keel_date *dates;
  double *dx, *value, *cash, *flow, *bench, *index, *bindex, *dd, *bdd;
  int has_flow, has_bench;
  double initial, capital, rf;
  size_t nm;
  const char **mnames;
  double *mvals;
  size_t nsubs;
  bt_sub *subs;
  double *traded, *costs; /* per point */
  keel_metrics bm;        /* the benchmark's metrics */
  int bm_ok;
} bt;

/* The stored metric called name (NaN when missing). */
static double metric(const bt *b, const char *name) {
  for (size_t k = 0; k < b->nm; k++)
    if (!strcmp(b->mnames[k], name)) return b->mvals[k];
  return NAN;
}

static size_t point_of(const bt *b, keel_date d) {
  const size_t lo = keeli_date_lower_bound(b->dates, b->n, d);
  return lo < b->n ? lo : b->n - 1;
}

static double param_number(const char *json, const char *key) {
  /* a number at the top level of the stored parameters, e.g. "risk_free" */
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = json ? strstr(json, pat) : NULL;
  if (!p) return NAN;
  char *end;
  double v = strtod(p + strlen(pat), &end);
  return end == p + strlen(pat) ? NAN : v;
}

static keel_status load_backtest(page *pg, int64_t id, bt *b) {
  memset(b, 0, sizeof *b);
  if (load_run(pg, id, &b->ri)) return pg->st;
  if (strcmp(b->ri.kind, "backtest"))
    return pg->st = keeli_error(pg->ctx, KEEL_EINVAL, "run %lld is a %s run, not a backtest", (long long)id,
                                b->ri.kind);
  size_t n = pg_count(pg, "SELECT count(*) FROM equity WHERE run_id = ?1", id);
  if (!pg->st && n < 2)
    return pg->st = keeli_error(pg->ctx, KEEL_EINVAL, "run %lld has %zu equity points: nothing to chart",
                                (long long)id, n);
  b->n = n;
  b->dates = pg_alloc(pg, n, sizeof *b->dates);
  double **arrs[] = {&b->dx, &b->value, &b->cash, &b->flow, &b->bench, &b->index, &b->bindex, &b->dd, &b->bdd,
                     &b->traded, &b->costs};
  for (size_t k = 0; k < sizeof arrs / sizeof arrs[0]; k++) *arrs[k] = pg_alloc(pg, n, sizeof(double));
  sqlite3_stmt *q = pg_prep(pg, "SELECT date, value, cash, flow, benchmark FROM equity WHERE run_id = ?1 ORDER BY date",
                            id);
  for (size_t i = 0; q && i < n && pg_step(pg, q) == SQLITE_ROW; i++) {
    b->dates[i] = col_date(q, 0);
    b->dx[i] = b->dates[i];
    b->value[i] = col_real(q, 1);
    b->cash[i] = col_real(q, 2);
    b->flow[i] = col_real(q, 3);
    b->bench[i] = col_real(q, 4);
    if (isfinite(b->flow[i]) && b->flow[i] != 0) b->has_flow = 1;
    if (!isfinite(b->flow[i])) b->flow[i] = 0;
    if (isfinite(b->bench[i])) b->has_bench = 1;
  }
  sqlite3_finalize(q);
  b->nm = pg_count(pg, "SELECT count(*) FROM metrics WHERE run_id = ?1", id);
  b->mnames = pg_alloc(pg, b->nm, sizeof *b->mnames);
  b->mvals = pg_alloc(pg, b->nm, sizeof *b->mvals);
  q = pg_prep(pg, "SELECT name, value FROM metrics WHERE run_id = ?1", id);
  for (size_t k = 0; q && k < b->nm && pg_step(pg, q) == SQLITE_ROW; k++) {
    b->mnames[k] = pg_strdup(pg, col_text(q, 0));
    b->mvals[k] = col_real(q, 1);
  }
  sqlite3_finalize(q);
  b->nsubs = pg_count(pg, "SELECT count(*) FROM subaccounts WHERE run_id = ?1", id);
  b->subs = pg_alloc(pg, b->nsubs, sizeof *b->subs);
  q = pg_prep(pg, "SELECT name, capital FROM subaccounts WHERE run_id = ?1 ORDER BY idx", id);
  for (size_t k = 0; q && k < b->nsubs && pg_step(pg, q) == SQLITE_ROW; k++) {
    snprintf(b->subs[k].name, sizeof b->subs[k].name, "%s", col_text(q, 0));
    b->subs[k].capital = col_real(q, 1);
    b->capital += b->subs[k].capital;
  }
  sqlite3_finalize(q);
  q = pg_prep(pg, "SELECT date, sum(abs(notional)), sum(cost) FROM trades WHERE run_id = ?1 GROUP BY date", id);
  while (q && pg_step(pg, q) == SQLITE_ROW) {
    size_t i = point_of(b, col_date(q, 0));
    b->traded[i] += col_real(q, 1);
    b->costs[i] += col_real(q, 2);
  }
  sqlite3_finalize(q);
  if (pg->st) return pg->st;
  for (size_t i = 0; i < n; i++)
    if (!(b->value[i] > 0))
      return pg->st = keeli_error(pg->ctx, KEEL_EINVAL, "run %lld: equity value %zu is not positive", (long long)id, i);
  /* The initial value the metrics used: from the stored total return (the
   * capital plus any initial holdings), else the capital. */
  double tr = metric(b, "total_return"), rest = 1;
  for (size_t t = 1; t < n; t++) rest *= (b->value[t] - b->flow[t]) / b->value[t - 1];
  double init = b->has_flow ? (b->value[0] - b->flow[0]) / ((1 + tr) / rest) : b->value[n - 1] / (1 + tr);
  b->initial = isfinite(init) && init > 0 ? init : b->capital > 0 ? b->capital : b->value[0];
  b->rf = param_number(b->ri.params, "risk_free");
  if (!isfinite(b->rf)) b->rf = 0;
  keel_metrics_input in = {.n = n, .dates = b->dates, .values = b->value, .initial = b->initial,
                           .periods_per_year = pg->o->periods_per_year, .flows = b->has_flow ? b->flow : NULL};
  if (in.initial == 0 && !(b->flow[0] > 0)) in.initial = b->value[0];
  keel_status st = keel_metrics_index(pg->ctx, &in, b->index);
  if (st) return pg->st = st;
  double peak = 1;
  for (size_t t = 0; t < n; t++) {
    if (b->index[t] > peak) peak = b->index[t];
    b->dd[t] = b->index[t] / peak - 1;
  }
  if (b->has_bench) {
    int all = 1;
    for (size_t t = 0; t < n; t++) all &= isfinite(b->bench[t]) && b->bench[t] > 0;
    double bpeak = 0, b0 = NAN;
    for (size_t t = 0; t < n; t++) {
      if (isfinite(b->bench[t]) && isnan(b0)) b0 = b->bench[t];
      b->bindex[t] = isfinite(b->bench[t]) ? b->bench[t] / b0 : NAN;
      if (b->bindex[t] > bpeak) bpeak = b->bindex[t];
      b->bdd[t] = isfinite(b->bindex[t]) ? b->bindex[t] / bpeak - 1 : NAN;
    }
    if (all) {
      keel_metrics_input bi = {.n = n, .dates = b->dates, .values = b->bench, .initial = b->bench[0],
                               .periods_per_year = pg->o->periods_per_year, .risk_free = b->rf};
      b->bm_ok = keel_metrics_compute(pg->ctx, &bi, &b->bm) == KEEL_OK;
    }
  }
  return pg->st;
}

/* ---- backtests: the charts ---------------------------------------------------------- */

static const unsigned C_STRAT = 0x3b6fb6, C_BENCH = 0x9a9a9a, C_NEG = 0xc8474b;

static void chart_growth(page *pg, const bt *b, int log) {
  keeli_chart *c = new_chart(pg, 1080, log ? 330 : 400);
  if (!c) return;
  const double scale = b->capital > 0 ? b->capital : b->initial;
  double *g = pg_alloc(pg, b->n, sizeof *g), *gb = pg_alloc(pg, b->n, sizeof *gb);
  if (!g || !gb) {
    keeli_chart_free(c);
    return;
  }
  double lo = INFINITY, hi = -INFINITY;
  for (size_t t = 0; t < b->n; t++) {
    g[t] = scale * b->index[t];
    gb[t] = b->has_bench ? scale * b->bindex[t] : NAN;
    keeli_range_add(&lo, &hi, g[t]);
    keeli_range_add(&lo, &hi, gb[t]);
    if (b->has_flow && !log) keeli_range_add(&lo, &hi, b->value[t]);
  }
  keeli_range_pad(&lo, &hi, 0.04, log);
  char sub[200], s1[40];
  keeli_fmt_money(s1, sizeof s1, scale);
  snprintf(sub, sizeof sub, "Growth of %s by the time-weighted returns%s%s", s1,
           log ? ", logarithmic scale: equal slopes are equal rates of return" : "",
           b->has_flow && !log ? "; dashed: the account's value with its flows" : "");
  keeli_plot p;
  keeli_plot_init(&p, keeli_chart_cr(c), 0, 0, 1080, log ? 330 : 400, log ? "Growth (log scale)" : "Growth",
                  sub, (keeli_axis){b->dx[0], b->dx[b->n - 1], 0, KEELI_AX_DATE, NULL},
                  (keeli_axis){lo, hi, log, KEELI_AX_MONEY, NULL});
  if (!log) keeli_plot_hline(&p, scale, keeli_rgb_hex(0xbdbdbd), 1, 1, NULL);
  if (b->has_bench) keeli_plot_line(&p, b->n, b->dx, gb, keeli_rgb_hex(C_BENCH), 1.6, 0);
  if (b->has_flow && !log) keeli_plot_line(&p, b->n, b->dx, b->value, keeli_rgb_hex(0x7d5ba6), 1.3, 1);
  keeli_plot_line(&p, b->n, b->dx, g, keeli_rgb_hex(C_STRAT), 2, 0);
  char bname[120];
  snprintf(bname, sizeof bname, "Benchmark: %s", b->ri.benchmark);
  const char *names[3] = {b->ri.strategy, bname, "Account value"};
  keeli_rgb cols[3] = {keeli_rgb_hex(C_STRAT), keeli_rgb_hex(C_BENCH), keeli_rgb_hex(0x7d5ba6)};
  size_t nl = 1;
  if (b->has_bench) nl = 2;
  if (b->has_flow && !log) {
    names[nl] = names[2];
    cols[nl] = cols[2];
    nl++;
  }
  keeli_plot_legend(&p, nl, names, cols, 0);
  embed(pg, c, log ? "growth-log" : "growth", log ? "Growth on a logarithmic scale" : "Growth of the account", 0);
}

static void chart_drawdown(page *pg, const bt *b) {
  keeli_chart *c = new_chart(pg, 1080, 260);
  if (!c) return;
  double lo = 0, hi = 0;
  for (size_t t = 0; t < b->n; t++) {
    keeli_range_add(&lo, &hi, b->dd[t]);
    if (b->has_bench) keeli_range_add(&lo, &hi, b->bdd[t]);
  }
  lo *= 1.08;
  if (lo > -0.01) lo = -0.01;
  char sub[200], a[32];
  fmt_pct(a, sizeof a, metric(b, "max_drawdown"), 1);
  snprintf(sub, sizeof sub, "Below the previous peak of the growth index; the deepest: %s", a);
  keeli_plot p;
  keeli_plot_init(&p, keeli_chart_cr(c), 0, 0, 1080, 260, "Drawdown (underwater)", sub,
                  (keeli_axis){b->dx[0], b->dx[b->n - 1], 0, KEELI_AX_DATE, NULL},
                  (keeli_axis){lo, 0.002, 0, KEELI_AX_PERCENT, NULL});
  keeli_plot_area(&p, b->n, b->dx, NULL, b->dd, 0, keeli_rgb_hex(C_NEG), 0.28);
  if (b->has_bench) keeli_plot_line(&p, b->n, b->dx, b->bdd, keeli_rgb_hex(C_BENCH), 1.2, 0);
  keeli_plot_line(&p, b->n, b->dx, b->dd, keeli_rgb_hex(C_NEG), 1.4, 0);
  double pk = metric(b, "dd_peak"), tr = metric(b, "dd_trough");
  if (isfinite(pk) && isfinite(tr)) {
    keeli_plot_vline(&p, tr, keeli_rgb_hex(0x8a2c2f), 1, 1, "deepest");
  }
  const char *names[2] = {b->ri.strategy, "Benchmark"};
  keeli_rgb cols[2] = {keeli_rgb_hex(C_NEG), keeli_rgb_hex(C_BENCH)};
  keeli_plot_legend(&p, b->has_bench ? 2 : 1, names, cols, 1);
  embed(pg, c, "drawdown", "Drawdown below the previous peak", 0);
}

/* Rolling volatility and Sharpe ratio: keel_metrics_compute over each
 * window of w returns. */
static void chart_rolling(page *pg, const bt *b) {
  size_t w = pg->o->rolling_window ? pg->o->rolling_window : 126;
  if (w > b->n / 3) w = b->n / 3;
  if (w < 10) return;
  size_t stride = b->n / 700 + 1, m = 0;
  double *x = pg_alloc(pg, b->n, sizeof *x), *vol = pg_alloc(pg, b->n, sizeof *vol),
         *sh = pg_alloc(pg, b->n, sizeof *sh);
  if (!x || !vol || !sh) return;
  double vlo = 0, vhi = 0, slo = 0, shi = 0;
  for (size_t t = w; t < b->n; t += stride) {
    keel_metrics_input in = {.n = w, .dates = b->dates + t - w + 1, .values = b->value + t - w + 1,
                             .initial = b->value[t - w], .periods_per_year = pg->o->periods_per_year,
                             .risk_free = b->rf, .flows = b->has_flow ? b->flow + t - w + 1 : NULL};
    keel_metrics mm;
    if (keel_metrics_compute(pg->ctx, &in, &mm)) continue;
    x[m] = b->dx[t];
    vol[m] = mm.volatility;
    sh[m] = mm.sharpe;
    keeli_range_add(&vlo, &vhi, vol[m]);
    keeli_range_add(&slo, &shi, sh[m]);
    m++;
  }
  if (m < 2) return;
  char sub[160];
  snprintf(sub, sizeof sub, "Over the last %zu points (about %.0f months), annualised", w,
           (double)w / pg->o->periods_per_year * 12);
  keeli_chart *c = new_chart(pg, 532, 280);
  if (!c) return;
  keeli_plot p;
  keeli_range_pad(&vlo, &vhi, 0.05, 0);
  keeli_plot_init(&p, keeli_chart_cr(c), 0, 0, 532, 280, "Rolling volatility", sub,
                  (keeli_axis){b->dx[0], b->dx[b->n - 1], 0, KEELI_AX_DATE, NULL},
                  (keeli_axis){0, vhi, 0, KEELI_AX_PERCENT, NULL});
  keeli_plot_hline(&p, metric(b, "volatility"), keeli_rgb_hex(0x9a9a9a), 1, 1, "whole run");
  keeli_plot_line(&p, m, x, vol, keeli_rgb_hex(0xe0833a), 1.6, 0);
  embed(pg, c, "rolling-vol", "Rolling volatility", 1);
  c = new_chart(pg, 532, 280);
  if (!c) return;
  keeli_range_pad(&slo, &shi, 0.05, 0);
  keeli_plot_init(&p, keeli_chart_cr(c), 0, 0, 532, 280, "Rolling Sharpe ratio", sub,
                  (keeli_axis){b->dx[0], b->dx[b->n - 1], 0, KEELI_AX_DATE, NULL},
                  (keeli_axis){slo, shi, 0, KEELI_AX_NUMBER, NULL});
  keeli_plot_hline(&p, 0, keeli_rgb_hex(0x888888), 1, 0, NULL);
  keeli_plot_hline(&p, metric(b, "sharpe"), keeli_rgb_hex(0x9a9a9a), 1, 1, "whole run");
  keeli_plot_line(&p, m, x, sh, keeli_rgb_hex(0x2c9c9c), 1.6, 0);
  embed(pg, c, "rolling-sharpe", "Rolling Sharpe ratio", 1);
}

/* Monthly returns of the growth index, a year a row, and the year's. */
static void chart_monthly(page *pg, const bt *b) {
  int y0, y1;
  keel_date_to_ymd(b->dates[0], &y0, NULL, NULL);
  keel_date_to_ymd(b->dates[b->n - 1], &y1, NULL, NULL);
  const int ny = y1 - y0 + 1;
  double *mr = pg_alloc(pg, (size_t)ny * 13, sizeof *mr);
  if (!mr) return;
  for (int k = 0; k < ny * 13; k++) mr[k] = NAN;
  double prev = 1, yprev = 1;
  for (size_t t = 0; t < b->n; t++) {
    int y, m, y2 = 0, m2 = 0;
    keel_date_to_ymd(b->dates[t], &y, &m, NULL);
    if (t + 1 < b->n) keel_date_to_ymd(b->dates[t + 1], &y2, &m2, NULL);
    if (t + 1 == b->n || m2 != m || y2 != y) { /* the month's last point */
      mr[(y - y0) * 13 + (m - 1)] = b->index[t] / prev - 1;
      prev = b->index[t];
      if (t + 1 == b->n || y2 != y) {
        mr[(y - y0) * 13 + 12] = b->index[t] / yprev - 1;
        yprev = b->index[t];
      }
    }
  }
  double big = 0;
  for (int k = 0; k < ny * 13; k++)
    if (k % 13 != 12 && isfinite(mr[k]) && fabs(mr[k]) > big) big = fabs(mr[k]);
  if (big < 0.01) big = 0.01;
  const double cw = 72, ch = 24, left = 64, top = 56, W = 1080, H = top + ch * ny + 30;
  keeli_chart *c = new_chart(pg, W, H);
  if (!c) return;
  cairo_t *cr = keeli_chart_cr(c);
  keeli_text(cr, 4, 20, 14, 1, 0, keeli_rgb_hex(0x222222), "Monthly returns");
  keeli_text(cr, 4, 36, 11, 0, 0, keeli_rgb_hex(0x6b6b6b),
             "Of the growth index (flows taken out), in percent; the last column is the calendar year's");
  static const char *const MON[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
                                    "Aug", "Sep", "Oct", "Nov", "Dec", "Year"};
  for (int m = 0; m < 13; m++)
    keeli_text(cr, left + cw * (m + 0.5) + (m == 12 ? 14 : 0), top - 6, 11, m == 12, 0.5, keeli_rgb_hex(0x6b6b6b),
               MON[m]);
  for (int y = 0; y < ny; y++) {
    char lab[16];
    snprintf(lab, sizeof lab, "%d", y0 + y);
    keeli_text(cr, left - 10, top + ch * y + 16, 11, 0, 1, keeli_rgb_hex(0x444444), lab);
    for (int m = 0; m < 13; m++) {
      double v = mr[y * 13 + m], x = left + cw * m + (m == 12 ? 14 : 0), yy = top + ch * y;
      if (!isfinite(v)) continue;
      double s = fmin(fabs(v) / (m == 12 ? big * 3 : big), 1);
      keeli_rgb base = keeli_rgb_hex(v >= 0 ? 0x2f8f4e : 0xc8474b);
      cairo_rectangle(cr, x + 1, yy + 1, cw - 2, ch - 2);
      cairo_set_source_rgb(cr, 1 - (1 - base.r) * s * 0.85, 1 - (1 - base.g) * s * 0.85, 1 - (1 - base.b) * s * 0.85);
      cairo_fill(cr);
      char t[16];
      snprintf(t, sizeof t, "%.1f", 100 * v);
      keeli_text(cr, x + cw / 2, yy + 16, 11, m == 12, 0.5, s > 0.6 ? keeli_rgb_hex(0xffffff) : keeli_rgb_hex(0x222222), t);
    }
  }
  embed(pg, c, "monthly", "Monthly returns heat map", 0);
}

/* Costs paid and one-way turnover in each calendar year (keel_metrics_compute
 * over the year's points, from the last point of the year before). */
static void chart_yearly(page *pg, const bt *b) {
  int y0, y1;
  keel_date_to_ymd(b->dates[0], &y0, NULL, NULL);
  keel_date_to_ymd(b->dates[b->n - 1], &y1, NULL, NULL);
  const int ny = y1 - y0 + 1;
  double *cost = pg_alloc(pg, (size_t)ny, sizeof *cost), *turn = pg_alloc(pg, (size_t)ny, sizeof *turn);
  if (!cost || !turn) return;
  size_t from = 0;
  for (int y = 0; y < ny; y++) {
    size_t to = from;
    int yy = 0;
    while (to + 1 < b->n && (keel_date_to_ymd(b->dates[to + 1], &yy, NULL, NULL), yy <= y0 + y)) to++;
    cost[y] = 0;
    for (size_t t = y == 0 ? 0 : from + 1; t <= to; t++) cost[y] += b->costs[t];
    turn[y] = 0;
    if (to > from) {
      keel_metrics_input in = {.n = to - from + 1, .dates = b->dates + from, .values = b->value + from,
                               .initial = b->value[from], .traded = b->traded + from, .costs = b->costs + from,
                               .periods_per_year = pg->o->periods_per_year};
      keel_metrics mm;
      if (!keel_metrics_compute(pg->ctx, &in, &mm)) turn[y] = mm.turnover * mm.years;
    }
    from = to;
  }
  for (int pass = 0; pass < 2; pass++) {
    const double *v = pass ? turn : cost;
    double hi = 0;
    for (int y = 0; y < ny; y++) hi = fmax(hi, v[y]);
    if (!(hi > 0)) hi = pass ? 0.01 : 1;
    keeli_chart *c = new_chart(pg, 532, 280);
    if (!c) return;
    keeli_plot p;
    keeli_plot_init(&p, keeli_chart_cr(c), 0, 0, 532, 280, pass ? "Turnover by year" : "Costs by year",
                    pass ? "One-way: traded / (2 x value) summed over the year's trades"
                         : "Proportional costs and fees paid, the initial allocation included",
                    (keeli_axis){y0 - 0.6, y1 + 0.6, 0, KEELI_AX_NUMBER, NULL},
                    (keeli_axis){0, hi * 1.12, 0, pass ? KEELI_AX_PERCENT : KEELI_AX_MONEY, NULL});
    cairo_t *cr = keeli_chart_cr(c);
    keeli_rgb col = keeli_rgb_hex(pass ? 0x7d5ba6 : 0xe0833a);
    const double bw = fmin(40, (p.x1 - p.x0) / ny * 0.7);
    for (int y = 0; y < ny; y++) {
      double x = keeli_px(&p, y0 + y), top = keeli_py(&p, v[y]);
      cairo_rectangle(cr, x - bw / 2, top, bw, p.y1 - top);
      cairo_set_source_rgb(cr, col.r, col.g, col.b);
      cairo_fill(cr);
    }
    embed(pg, c, pass ? "turnover" : "costs", pass ? "Turnover by year" : "Costs by year", 1);
  }
}

/* The sub-accounts' weights (stacked, cash on top) with their trades and
 * stops marked. */
typedef struct symtab {
  size_t n;
  char **sym;
} symtab;

static size_t sym_index(page *pg, symtab *t, const char *s) {
  for (size_t k = 0; k < t->n; k++)
    if (!strcmp(t->sym[k], s)) return k;
  if (t->n % 16 == 0) {
    char **ns = pg_alloc(pg, t->n + 16, sizeof *ns);
    if (!ns) return 0;
    if (t->n) memcpy(ns, t->sym, t->n * sizeof *ns);
    t->sym = ns;
  }
  t->sym[t->n] = pg_strdup(pg, s);
  return t->n++;
}

static void chart_weights(page *pg, const bt *b, size_t s, symtab *syms) {
  const int64_t id = b->ri.id;
  sqlite3_stmt *q = pg_prep(pg, "SELECT count(DISTINCT date) FROM sub_weights WHERE run_id = ?1 AND sub = ?2", id);
  if (!q) return;
  sqlite3_bind_int64(q, 2, (sqlite3_int64)s);
  size_t nd = pg_step(pg, q) == SQLITE_ROW ? (size_t)sqlite3_column_int64(q, 0) : 0;
  sqlite3_finalize(q);
  if (nd < 2) return;
  enum { MAXS = 64 };
  double *x = pg_alloc(pg, nd, sizeof *x), *W = pg_alloc(pg, nd * MAXS, sizeof *W);
  size_t local[MAXS], nl = 0;
  if (!x || !W) return;
  q = pg_prep(pg, "SELECT date, symbol, weight FROM sub_weights WHERE run_id = ?1 AND sub = ?2 ORDER BY date", id);
  if (!q) return;
  sqlite3_bind_int64(q, 2, (sqlite3_int64)s);
  size_t i = (size_t)-1;
  keel_date last = KEEL_DATE_NONE;
  while (pg_step(pg, q) == SQLITE_ROW) {
    keel_date d = col_date(q, 0);
    if (d != last) i++, last = d;
    if (i >= nd) break;
    x[i] = d;
    size_t g = sym_index(pg, syms, col_text(q, 1)), k = 0;
    while (k < nl && local[k] != g) k++;
    if (k == nl) {
      if (nl == MAXS) continue; /* more assets than colours: the rest shows as unallocated */
      local[nl++] = g;
    }
    W[i * MAXS + k] = col_real(q, 2);
  }
  sqlite3_finalize(q);
  if (pg->st) return;
  /* stack from 0: each layer's bottom and top; cash the rest up to 1 */
  double *lo = pg_alloc(pg, nd, sizeof *lo), *hi = pg_alloc(pg, nd, sizeof *hi), *cum = pg_alloc(pg, nd, sizeof *cum);
  if (!lo || !hi || !cum) return;
  keeli_chart *c = new_chart(pg, 1080, 300);
  if (!c) return;
  char title[160];
  snprintf(title, sizeof title, "Weights: %s", b->subs && s < b->nsubs ? b->subs[s].name : "account");
  keeli_plot p;
  keeli_plot_init(&p, keeli_chart_cr(c), 0, 0, 1080 - 150, 300, title,
                  "Each asset's share of the sub-account's value after trading; ticks above: trades, triangles: stops",
                  (keeli_axis){b->dx[0], b->dx[b->n - 1], 0, KEELI_AX_DATE, NULL},
                  (keeli_axis){0, 1.0001, 0, KEELI_AX_PERCENT, NULL});
  const char *names[MAXS + 3];
  keeli_rgb cols[MAXS + 3];
  for (size_t k = 0; k < nl; k++) {
    for (size_t t = 0; t < nd; t++) {
      double v = fmax(W[t * MAXS + k], 0);
      lo[t] = cum[t];
      hi[t] = cum[t] + v;
      cum[t] = hi[t];
    }
    keeli_plot_area(&p, nd, x, lo, hi, 0, keeli_palette(local[k]), 0.9);
    names[k] = syms->sym[local[k]];
    cols[k] = keeli_palette(local[k]);
  }
  for (size_t t = 0; t < nd; t++) lo[t] = fmin(cum[t], 1), hi[t] = 1;
  keeli_plot_area(&p, nd, x, lo, hi, 0, keeli_rgb_hex(0xd9dde2), 1);
  size_t nn = nl;
  names[nn] = "cash";
  cols[nn++] = keeli_rgb_hex(0xd9dde2);
  /* trades: a tick per trade date, above the plot */
  cairo_t *cr = keeli_chart_cr(c);
  q = pg_prep(pg, "SELECT DISTINCT date FROM trades WHERE run_id = ?1 AND sub = ?2 ORDER BY date", id);
  if (q) sqlite3_bind_int64(q, 2, (sqlite3_int64)s);
  double lastx = -1e9;
  keeli_rgb tc = keeli_rgb_hex(0x555555);
  cairo_set_source_rgb(cr, tc.r, tc.g, tc.b);
  cairo_set_line_width(cr, 1);
  while (q && pg_step(pg, q) == SQLITE_ROW) {
    double px = keeli_px(&p, col_date(q, 0));
    if (px - lastx < 1.5) continue;
    cairo_move_to(cr, floor(px) + 0.5, p.y0 - 7);
    cairo_line_to(cr, floor(px) + 0.5, p.y0 - 1);
    lastx = px;
  }
  cairo_stroke(cr);
  sqlite3_finalize(q);
  q = pg_prep(pg, "SELECT date, kind FROM events WHERE run_id = ?1 AND sub = ?2 AND kind IN ('stop', 'reentry')", id);
  if (q) sqlite3_bind_int64(q, 2, (sqlite3_int64)s);
  int any_stop = 0, any_re = 0;
  while (q && pg_step(pg, q) == SQLITE_ROW) {
    int stop = !strcmp(col_text(q, 1), "stop");
    double px = keeli_px(&p, col_date(q, 0)), py = p.y0 + 8;
    keeli_rgb ec = keeli_rgb_hex(stop ? 0xc8474b : 0x2f8f4e);
    cairo_move_to(cr, px - 5, stop ? py - 5 : py + 4);
    cairo_line_to(cr, px + 5, stop ? py - 5 : py + 4);
    cairo_line_to(cr, px, stop ? py + 4 : py - 5);
    cairo_close_path(cr);
    cairo_set_source_rgb(cr, ec.r, ec.g, ec.b);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_stroke(cr);
    any_stop |= stop;
    any_re |= !stop;
  }
  sqlite3_finalize(q);
  if (any_stop) names[nn] = "stop", cols[nn++] = keeli_rgb_hex(0xc8474b);
  if (any_re) names[nn] = "re-entry", cols[nn++] = keeli_rgb_hex(0x2f8f4e);
  /* the legend, right of the plot */
  for (size_t k = 0; k < nn; k++) {
    double ly = p.y0 + 8 + 17 * (double)k;
    cairo_rectangle(cr, p.x1 + 22, ly, 14, 10);
    cairo_set_source_rgb(cr, cols[k].r, cols[k].g, cols[k].b);
    cairo_fill(cr);
    keeli_text(cr, p.x1 + 42, ly + 9, 11, 0, 0, keeli_rgb_hex(0x222222), names[k]);
  }
  char id_[32];
  snprintf(id_, sizeof id_, "weights-%zu", s);
  embed(pg, c, id_, title, 0);
}

static void metrics_table(page *pg, const bt *b) {
  sb *o = &pg->out;
  sb_puts(o, "<section id=\"metrics\"><h2>Key metrics</h2><table class=\"metrics\"><thead><tr><th>Metric</th><th>");
  sb_esc(o, b->ri.strategy);
  sb_puts(o, "</th>");
  if (b->bm_ok) {
    sb_puts(o, "<th>Benchmark: ");
    sb_esc(o, b->ri.benchmark);
    sb_puts(o, "</th>");
  }
  sb_puts(o, "</tr></thead><tbody>\n");
  char v[64];
  keeli_fmt_money(v, sizeof v, b->capital > 0 ? b->capital : b->initial);
  sb_printf(o, "<tr><td>Starting capital</td><td data-metric=\"capital\">%s</td>%s</tr>\n", v, b->bm_ok ? "<td></td>" : "");
  keeli_fmt_money(v, sizeof v, b->value[b->n - 1]);
  sb_printf(o, "<tr><td>Final value</td><td data-metric=\"final_value\">%s</td>%s</tr>\n", v, b->bm_ok ? "<td></td>" : "");
  for (size_t k = 0; k < NMETRICS; k++) {
    const metric_fmt *f = &METRICS[k];
    double mv = metric(b, f->name);
    if (!strcmp(f->name, "tracking_error") || !strcmp(f->name, "info_ratio") || !strcmp(f->name, "nstops") ||
        !strcmp(f->name, "time_in_market"))
      if (!isfinite(mv) || (mv == 0 && !strcmp(f->name, "nstops"))) continue;
    fmt_metric(v, sizeof v, f->kind, mv);
    sb_printf(o, "<tr><td>%s</td><td data-metric=\"%s\">%s</td>", f->label, f->name, v);
    if (b->bm_ok) {
      /* the benchmark's price has no trades, costs or benchmark of its own */
      static const char *const none[] = {"turnover", "costs_total", "cost_ratio", "ntrades", "nstops",
                                         "time_in_market", "tracking_error", "info_ratio"};
      double bv = NAN;
      int skip = 0;
      for (size_t j = 0; j < sizeof none / sizeof none[0]; j++) skip |= !strcmp(none[j], f->name);
      for (size_t j = 0; !skip && j < KEEL_METRICS_COUNT; j++)
        if (!strcmp(keel_metrics_name(j), f->name)) bv = keel_metrics_value(&b->bm, j);
      char bs[64] = "";
      if (isfinite(bv)) fmt_metric(bs, sizeof bs, f->kind, bv);
      sb_printf(o, "<td>%s</td>", bs);
    }
    sb_puts(o, "</tr>\n");
  }
  sb_puts(o, "</tbody></table>");
  if (b->bm_ok)
    sb_puts(o, "<p class=\"note\">The benchmark's figures are its price's, computed with the same definitions.</p>");
  else if (!b->has_bench)
    sb_puts(o, "<p class=\"note\">No benchmark stored with this run (keel backtest --benchmark SYMBOL, or "
               "\"benchmark\" in the run description).</p>");
  sb_puts(o, "</section>\n");
}

static void subs_table(page *pg, const bt *b) {
  if (b->nsubs < 2) return;
  sb *o = &pg->out;
  sb_puts(o, "<section id=\"subaccounts\"><h2>Sub-accounts</h2><table><thead><tr><th>Sub-account</th><th>Capital</th>"
             "<th>Final value</th><th>CAGR</th><th>Volatility</th><th>Sharpe</th><th>Max drawdown</th><th>Trades</th>"
             "</tr></thead><tbody>\n");
  for (size_t s = 0; s < b->nsubs; s++) {
    sqlite3_stmt *q = pg_prep(pg,
                              "SELECT (SELECT value FROM sub_equity WHERE run_id = ?1 AND sub = ?2 ORDER BY date DESC "
                              "LIMIT 1), (SELECT value FROM sub_metrics WHERE run_id = ?1 AND sub = ?2 AND name = "
                              "'cagr'), (SELECT value FROM sub_metrics WHERE run_id = ?1 AND sub = ?2 AND name = "
                              "'volatility'), (SELECT value FROM sub_metrics WHERE run_id = ?1 AND sub = ?2 AND name = "
                              "'sharpe'), (SELECT value FROM sub_metrics WHERE run_id = ?1 AND sub = ?2 AND name = "
                              "'max_drawdown'), (SELECT count(*) FROM trades WHERE run_id = ?1 AND sub = ?2)",
                              b->ri.id);
    if (!q) return;
    sqlite3_bind_int64(q, 2, (sqlite3_int64)s);
    if (pg_step(pg, q) == SQLITE_ROW) {
      char a[40], f[40], g[40], v[40], h[40], d[40];
      keeli_fmt_money(a, sizeof a, b->subs[s].capital);
      keeli_fmt_money(f, sizeof f, col_real(q, 0));
      fmt_pct(g, sizeof g, col_real(q, 1), 2);
      fmt_pct(v, sizeof v, col_real(q, 2), 2);
      fmt_num(h, sizeof h, col_real(q, 3), 3);
      fmt_pct(d, sizeof d, col_real(q, 4), 2);
      sb_puts(o, "<tr><td>");
      sb_esc(o, b->subs[s].name);
      sb_printf(o, "</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%lld</td></tr>\n", a, f,
                g, v, h, d, (long long)sqlite3_column_int64(q, 5));
    }
    sqlite3_finalize(q);
  }
  sb_puts(o, "</tbody></table></section>\n");
}

static void params_section(page *pg, const run_info *ri) {
  sb_puts(&pg->out, "<section id=\"params\"><h2>Run</h2><p class=\"note\">Strategy <b>");
  sb_esc(&pg->out, ri->strategy);
  sb_puts(&pg->out, "</b>; parameters as stored:</p><p><code>");
  sb_esc(&pg->out, ri->params);
  sb_puts(&pg->out, "</code></p></section>\n");
}

static void page_backtest(page *pg, int64_t id) {
  bt b;
  if (load_backtest(pg, id, &b)) return;
  char h1[256];
  snprintf(h1, sizeof h1, "Backtest: %s", b.ri.strategy);
  page_begin(pg, h1);
  header(pg, h1, &b.ri, NULL);
  sb_puts(&pg->out, "<div class=\"cards\">");
  char v[64];
  fmt_pct(v, sizeof v, metric(&b, "cagr"), 2);
  card(pg, "CAGR", v, metric(&b, "cagr") >= 0 ? 1 : -1);
  fmt_pct(v, sizeof v, metric(&b, "volatility"), 2);
  card(pg, "Volatility", v, 0);
  fmt_num(v, sizeof v, metric(&b, "sharpe"), 2);
  card(pg, "Sharpe ratio", v, 0);
  fmt_pct(v, sizeof v, -metric(&b, "max_drawdown"), 1);
  card(pg, "Max drawdown", v, -1);
  keeli_fmt_money(v, sizeof v, b.value[b.n - 1]);
  card(pg, "Final value", v, 0);
  keeli_fmt_money(v, sizeof v, metric(&b, "costs_total"));
  card(pg, "Costs paid", v, 0);
  sb_puts(&pg->out, "</div></header>\n");
  metrics_table(pg, &b);
  sb_puts(&pg->out, "<section id=\"performance\"><h2>Performance</h2>\n");
  chart_growth(pg, &b, 0);
  chart_growth(pg, &b, 1);
  chart_drawdown(pg, &b);
  sb_puts(&pg->out, "</section>\n<section id=\"allocation\"><h2>Allocation</h2>\n");
  symtab syms = {0};
  size_t ns = b.nsubs ? b.nsubs : 1;
  for (size_t s = 0; s < ns; s++) chart_weights(pg, &b, s, &syms);
  sb_puts(&pg->out, "</section>\n");
  subs_table(pg, &b);
  sb_puts(&pg->out, "<section id=\"risk\"><h2>Rolling risk</h2><div class=\"grid\">\n");
  chart_rolling(pg, &b);
  sb_puts(&pg->out, "</div></section>\n<section id=\"returns\"><h2>Returns by month</h2>\n");
  chart_monthly(pg, &b);
  sb_puts(&pg->out, "</section>\n<section id=\"costs\"><h2>Costs and turnover</h2><div class=\"grid\">\n");
  chart_yearly(pg, &b);
  sb_puts(&pg->out, "</div></section>\n");
  params_section(pg, &b.ri);
  page_end(pg);
}

/* ---- stress tests -------------------------------------------------------------- */

static void page_stress(page *pg, const run_info *ri) {
  const int64_t id = ri->id;
  sqlite3_stmt *q = pg_prep(pg,
                            "SELECT generator, scenario, npaths, nsteps, steps_per_year, years, capital, goal, p_goal, "
                            "p_goal_any, loss_threshold, p_loss, es_level, mean_in, mean_out FROM stress_runs WHERE "
                            "run_id = ?1",
                            id);
  if (!q) return;
  if (pg_step(pg, q) != SQLITE_ROW) {
    sqlite3_finalize(q);
    if (!pg->st) pg->st = keeli_error(pg->ctx, KEEL_EINVAL, "run %lld has no stress summary", (long long)id);
    return;
  }
  char gen[64], *scen = pg_strdup(pg, col_text(q, 1));
  snprintf(gen, sizeof gen, "%s", col_text(q, 0));
  const double npaths = col_real(q, 2), spy = col_real(q, 4), years = col_real(q, 5), capital = col_real(q, 6),
               goal = col_real(q, 7), p_goal = col_real(q, 8), p_any = col_real(q, 9), lossx = col_real(q, 10),
               p_loss = col_real(q, 11), es = col_real(q, 12), mean_in = col_real(q, 13), mean_out = col_real(q, 14);
  sqlite3_finalize(q);
  /* the fan chart */
  size_t nb = pg_count(pg, "SELECT count(*) FROM stress_bands WHERE run_id = ?1", id);
  double *x = pg_alloc(pg, nb, sizeof *x), *bd[5];
  for (int k = 0; k < 5; k++) bd[k] = pg_alloc(pg, nb, sizeof(double));
  q = pg_prep(pg, "SELECT step, p05, p25, p50, p75, p95 FROM stress_bands WHERE run_id = ?1 ORDER BY step", id);
  for (size_t i = 0; q && i < nb && pg_step(pg, q) == SQLITE_ROW; i++) {
    x[i] = col_real(q, 0) / (spy > 0 ? spy : 1);
    for (int k = 0; k < 5; k++) bd[k][i] = col_real(q, 1 + k);
  }
  sqlite3_finalize(q);
  /* statistics */
  static const char *const STATS[] = {"wealth", "cagr", "twr", "max_drawdown", "underwater_years",
                                      "irr", "loss", "costs", "peak_wealth"};
  static const char *const SLAB[] = {"Terminal wealth", "CAGR (time-weighted)", "Total return (time-weighted)",
                                     "Max drawdown", "Years under water", "IRR (money-weighted)", "Loss on the money paid in",
                                     "Costs paid", "Peak wealth"};
  static const char SKIND[] = {'m', 'p', 'p', 'p', 'y', 'p', 'p', 'm', 'm'};
  static const char *const MEAS[] = {"p05", "p25", "p50", "p75", "p95", "mean", "es"};
  double sv[9][7];
  for (int i = 0; i < 9; i++)
    for (int m = 0; m < 7; m++) sv[i][m] = NAN;
  q = pg_prep(pg, "SELECT stat, measure, value FROM stress_stats WHERE run_id = ?1", id);
  while (q && pg_step(pg, q) == SQLITE_ROW)
    for (int i = 0; i < 9; i++)
      if (!strcmp(col_text(q, 0), STATS[i]))
        for (int m = 0; m < 7; m++)
          if (!strcmp(col_text(q, 1), MEAS[m])) sv[i][m] = col_real(q, 2);
  sqlite3_finalize(q);
  size_t nh = pg_count(pg, "SELECT count(*) FROM stress_hist WHERE run_id = ?1", id);
  double *hlo = pg_alloc(pg, nh, sizeof *hlo), *hhi = pg_alloc(pg, nh, sizeof *hhi), *hs = pg_alloc(pg, nh, sizeof *hs);
  q = pg_prep(pg, "SELECT lo, hi, share FROM stress_hist WHERE run_id = ?1 ORDER BY bin", id);
  for (size_t i = 0; q && i < nh && pg_step(pg, q) == SQLITE_ROW; i++)
    hlo[i] = col_real(q, 0), hhi[i] = col_real(q, 1), hs[i] = col_real(q, 2);
  sqlite3_finalize(q);
  if (pg->st) return;

  char h1[256], v[64], extra[256];
  snprintf(h1, sizeof h1, "Stress test: %s", ri->strategy);
  snprintf(extra, sizeof extra, " · %.0f paths × %g years, %s generator", npaths, years, gen);
  page_begin(pg, h1);
  header(pg, h1, ri, extra);
  sb_puts(&pg->out, "<div class=\"cards\">");
  if (goal > 0) {
    fmt_pct(v, sizeof v, p_goal, 1);
    char lab[96], g[40];
    keeli_fmt_money(g, sizeof g, goal);
    snprintf(lab, sizeof lab, "P(wealth ≥ %s at the end)", g);
    card(pg, lab, v, p_goal >= 0.5 ? 1 : -1);
  }
  keeli_fmt_money(v, sizeof v, sv[0][2]);
  card(pg, "Median terminal wealth", v, 0);
  keeli_fmt_money(v, sizeof v, sv[0][0]);
  card(pg, "5th percentile", v, 0);
  fmt_pct(v, sizeof v, sv[1][2], 2);
  card(pg, "Median CAGR", v, sv[1][2] >= 0 ? 1 : -1);
  char lab[96];
  snprintf(lab, sizeof lab, "P(loss > %.0f%%)", 100 * lossx);
  fmt_pct(v, sizeof v, p_loss, 1);
  card(pg, lab, v, p_loss > 0.1 ? -1 : 0);
  sb_puts(&pg->out, "</div></header>\n<section id=\"fan\"><h2>Wealth over time</h2>\n");

  /* the fan chart */
  if (nb >= 2) {
    double lo = 0, hi = 0;
    for (size_t i = 0; i < nb; i++) keeli_range_add(&lo, &hi, bd[4][i]);
    if (goal > 0) keeli_range_add(&lo, &hi, goal * 1.05);
    keeli_chart *c = new_chart(pg, 1080, 420);
    if (c) {
      keeli_plot p;
      char sub[200];
      snprintf(sub, sizeof sub, "Percentiles of the account's value over %.0f simulated paths; shaded: 5-95%% and 25-75%%",
               npaths);
      keeli_plot_init(&p, keeli_chart_cr(c), 0, 0, 1080, 420, "Fan chart of wealth", sub,
                      (keeli_axis){0, x[nb - 1], 0, KEELI_AX_NUMBER, "years from the start"},
                      (keeli_axis){0, hi * 1.04, 0, KEELI_AX_MONEY, NULL});
      keeli_rgb fc = keeli_rgb_hex(C_STRAT);
      keeli_plot_area(&p, nb, x, bd[0], bd[4], 0, fc, 0.16);
      keeli_plot_area(&p, nb, x, bd[1], bd[3], 0, fc, 0.30);
      keeli_plot_line(&p, nb, x, bd[2], fc, 2.2, 0);
      keeli_plot_line(&p, nb, x, bd[0], fc, 0.8, 0);
      keeli_plot_line(&p, nb, x, bd[4], fc, 0.8, 0);
      if (goal > 0) {
        char gl[120], g[40], pv[24];
        keeli_fmt_money(g, sizeof g, goal);
        fmt_pct(pv, sizeof pv, p_goal, 1);
        snprintf(gl, sizeof gl, "goal %s: reached at the end by %s of paths", g, pv);
        keeli_plot_hline(&p, goal, keeli_rgb_hex(0xc8474b), 1.4, 1, gl);
      }
      keeli_plot_hline(&p, capital, keeli_rgb_hex(0x888888), 1, 1, NULL);
      const char *names[] = {"median", "25th-75th percentile", "5th-95th percentile"};
      keeli_rgb cols[] = {fc, {1 - (1 - fc.r) * 0.45, 1 - (1 - fc.g) * 0.45, 1 - (1 - fc.b) * 0.45},
                          {1 - (1 - fc.r) * 0.2, 1 - (1 - fc.g) * 0.2, 1 - (1 - fc.b) * 0.2}};
      keeli_plot_legend(&p, 3, names, cols, 0);
      embed(pg, c, "fan", "Fan chart of the account's value", 0);
    }
  }
  sb_puts(&pg->out, "</section>\n<section id=\"terminal\"><h2>Terminal wealth</h2>\n");
  /* the histogram, tails left out of the axis */
  if (nh >= 3) {
    double a = hlo[1], z = hhi[nh - 2], top = 0;
    int logx = a > 0;
    for (size_t i = 1; i + 1 < nh; i++) {
      double w = logx ? log(hhi[i] / hlo[i]) : hhi[i] - hlo[i];
      if (w > 0 && !logx) w = (hhi[i] - hlo[i]) / (z - a);
      if (w > 0 && hs[i] / w > top) top = hs[i] / w;
    }
    keeli_chart *c = new_chart(pg, 1080, 340);
    if (c) {
      char sub[240], t0[24], t1[24], lo_s[40], hi_s[40];
      fmt_pct(t0, sizeof t0, hs[0], 1);
      fmt_pct(t1, sizeof t1, hs[nh - 1], 1);
      keeli_fmt_money(lo_s, sizeof lo_s, a);
      keeli_fmt_money(hi_s, sizeof hi_s, z);
      snprintf(sub, sizeof sub, "Share of paths in each bin%s; %s of paths end below %s and %s above %s",
               logx ? " (bins of equal width in log wealth)" : "", t0, lo_s, t1, hi_s);
      keeli_plot p;
      /* bar heights are shares per bin; bins are of equal width on the axis drawn */
      double ymax = 0;
      for (size_t i = 1; i + 1 < nh; i++) ymax = fmax(ymax, hs[i]);
      keeli_plot_init(&p, keeli_chart_cr(c), 0, 0, 1080, 340, "Distribution of terminal wealth", sub,
                      (keeli_axis){a, z, logx, KEELI_AX_MONEY, NULL},
                      (keeli_axis){0, ymax * 1.12 + 1e-9, 0, KEELI_AX_PERCENT, "share of paths"});
      cairo_t *cr = keeli_chart_cr(c);
      for (size_t i = 1; i + 1 < nh; i++) {
        double x0 = keeli_px(&p, hlo[i]) + 0.6, x1 = keeli_px(&p, hhi[i]) - 0.6, yt = keeli_py(&p, hs[i]);
        keeli_rgb col = keeli_rgb_hex(goal > 0 && hhi[i] <= goal ? 0xd98c8e : C_STRAT);
        cairo_rectangle(cr, x0, yt, x1 - x0, p.y1 - yt);
        cairo_set_source_rgb(cr, col.r, col.g, col.b);
        cairo_fill(cr);
      }
      (void)top;
      if (goal > 0) {
        char gl[80], g[40];
        keeli_fmt_money(g, sizeof g, goal);
        snprintf(gl, sizeof gl, "goal %s", g);
        keeli_plot_vline(&p, goal, keeli_rgb_hex(0xc8474b), 1.6, 1, gl);
      }
      keeli_plot_vline(&p, sv[0][2], keeli_rgb_hex(0x222222), 1.2, 0, "median");
      embed(pg, c, "histogram", "Histogram of terminal wealth", 0);
    }
  } else {
    sb_puts(&pg->out, "<p class=\"note\">No histogram is stored with this run (stored by an older keel).</p>");
  }
  sb_puts(&pg->out, "</section>\n<section id=\"stats\"><h2>Outcomes over the paths</h2><table><thead><tr>"
                    "<th>Statistic</th><th>5%</th><th>25%</th><th>Median</th><th>75%</th><th>95%</th><th>Mean</th>");
  sb_printf(&pg->out, "<th>Shortfall (worst %.0f%%)</th></tr></thead><tbody>\n", 100 * es);
  for (int i = 0; i < 9; i++) {
    int any = 0;
    for (int m = 0; m < 7; m++) any |= isfinite(sv[i][m]);
    if (!any || (i == 5 && !(mean_in > capital * 1.0000001 || mean_out > 0))) continue;
    sb_printf(&pg->out, "<tr><td>%s</td>", SLAB[i]);
    for (int m = 0; m < 7; m++) {
      fmt_metric(v, sizeof v, SKIND[i], sv[i][m]);
      sb_printf(&pg->out, "<td data-stat=\"%s.%s\">%s</td>", STATS[i], MEAS[m], v);
    }
    sb_puts(&pg->out, "</tr>\n");
  }
  sb_puts(&pg->out, "</tbody></table>");
  char ci[40], co[40], cap[40];
  keeli_fmt_money(cap, sizeof cap, capital);
  keeli_fmt_money(ci, sizeof ci, mean_in);
  keeli_fmt_money(co, sizeof co, mean_out);
  sb_printf(&pg->out, "<p class=\"note\">Capital %s; paid in on average %s per path (capital included), paid out %s.",
            cap, ci, co);
  if (goal > 0) {
    fmt_pct(v, sizeof v, p_any, 1);
    sb_printf(&pg->out, " The goal was reached at some point by %s of paths.", v);
  }
  sb_puts(&pg->out, "</p></section>\n<section id=\"scenario\"><h2>Scenario</h2>");
  if (!scen || !*scen) {
    sb_puts(&pg->out, "<p class=\"note\">No scenario: the paths are the generator's alone.</p>");
  } else {
    sb_puts(&pg->out, "<table class=\"text\"><thead><tr><th>#</th><th>Event</th><th>Kind</th><th>Assets</th><th>Size</th>"
                      "<th>At</th><th>For</th></tr></thead><tbody>\n");
    int k = 0;
    for (char *save = NULL, *e = strtok_r(scen, ";", &save); e; e = strtok_r(NULL, ";", &save)) {
      /* the text syntax: kind:target:size@at/duration (docs/stress.md) */
      char f[4][128] = {"", "", "", ""}, at[64] = "0", dur[64] = "one step";
      const char *a = strchr(e, '@');
      size_t head = a ? (size_t)(a - e) : strlen(e);
      if (a) {
        const char *sl = strchr(a, '/');
        snprintf(at, sizeof at, "%.*s", (int)(sl ? (size_t)(sl - a - 1) : strlen(a + 1)), a + 1);
        if (sl) snprintf(dur, sizeof dur, "%s", sl + 1);
      }
      int nf = 0;
      for (size_t i = 0, st = 0; i <= head && nf < 4; i++)
        if (i == head || e[i] == ':') {
          snprintf(f[nf++], sizeof f[0], "%.*s", (int)(i - st), e + st);
          st = i + 1;
        }
      int worst = !strcmp(f[0], "worst");
      sb_printf(&pg->out, "<tr><td>%d</td><td><code>", ++k);
      sb_esc(&pg->out, e);
      sb_puts(&pg->out, "</code></td><td>");
      sb_esc(&pg->out, f[0]);
      sb_puts(&pg->out, "</td><td>");
      sb_esc(&pg->out, worst ? "the basket" : f[1]);
      sb_puts(&pg->out, "</td><td>");
      sb_esc(&pg->out, worst ? f[1] : f[2]);
      sb_puts(&pg->out, "</td><td>");
      sb_esc(&pg->out, at);
      sb_puts(&pg->out, "</td><td>");
      sb_esc(&pg->out, dur);
      sb_puts(&pg->out, "</td></tr>\n");
    }
    sb_puts(&pg->out, "</tbody></table><p class=\"note\">Times in years (y), months (m), weeks (w) or trading days "
                      "(d) from the start; docs/stress.md gives each kind's meaning.</p>");
  }
  sb_printf(&pg->out, "</section>\n");
  params_section(pg, ri);
  page_end(pg);
}

/* ---- optimisations ---------------------------------------------------------------- */

/* Labels placed where they overlap nothing placed before: right of the
 * point, left, above, below, in that order of preference. */
typedef struct labels {
  double r[64][4];
  size_t n;
} labels;

static void label_block(labels *l, double x, double y, double w, double h) {
  if (l->n < 64) l->r[l->n][0] = x, l->r[l->n][1] = y, l->r[l->n][2] = w, l->r[l->n][3] = h, l->n++;
}

static int label_free(const labels *l, double x, double y, double w, double h) {
  for (size_t k = 0; k < l->n; k++)
    if (x < l->r[k][0] + l->r[k][2] && l->r[k][0] < x + w && y < l->r[k][1] + l->r[k][3] && l->r[k][1] < y + h)
      return 0;
  return 1;
}

static void label_place(labels *l, cairo_t *cr, double px, double py, double gap, double size, int bold,
                        keeli_rgb col, const char *s) {
  const double w = keeli_text_width(cr, size, bold, s), h = size + 2;
  const double cand[][2] = {{px + gap, py - h / 2}, {px - gap - w, py - h / 2}, {px - w / 2, py - gap - h},
                            {px - w / 2, py + gap},  {px + gap, py - h - 2},    {px + gap, py + 2}};
  size_t k = 0;
  for (; k < sizeof cand / sizeof cand[0]; k++)
    if (label_free(l, cand[k][0], cand[k][1], w, h)) break;
  if (k == sizeof cand / sizeof cand[0]) k = 0;
  keeli_text(cr, cand[k][0], cand[k][1] + size * 0.85, size, bold, 0, col, s);
  label_block(l, cand[k][0], cand[k][1], w, h);
}

static void page_optimization(page *pg, const run_info *ri) {
  const int64_t id = ri->id;
  sqlite3_stmt *q = pg_prep(pg,
                            "SELECT objective, cov, risk_free, ret, vol, sharpe, turnover, cost, cash, current_ret, "
                            "current_vol FROM opt_runs WHERE run_id = ?1",
                            id);
  if (!q) return;
  if (pg_step(pg, q) != SQLITE_ROW) {
    sqlite3_finalize(q);
    if (!pg->st) pg->st = keeli_error(pg->ctx, KEEL_EINVAL, "run %lld has no optimisation summary", (long long)id);
    return;
  }
  char obj[64], cov[64];
  snprintf(obj, sizeof obj, "%s", col_text(q, 0));
  snprintf(cov, sizeof cov, "%s", col_text(q, 1));
  const double rf = col_real(q, 2), pret = col_real(q, 3), pvol = col_real(q, 4), psh = col_real(q, 5),
               pturn = col_real(q, 6), pcost = col_real(q, 7), pcash = col_real(q, 8), cret = col_real(q, 9),
               cvol = col_real(q, 10);
  sqlite3_finalize(q);
  const size_t na = pg_count(pg, "SELECT count(*) FROM opt_assets WHERE run_id = ?1", id);
  char **sym = pg_alloc(pg, na, sizeof *sym);
  double *mu = pg_alloc(pg, na, sizeof *mu), *vol = pg_alloc(pg, na, sizeof *vol), *w = pg_alloc(pg, na, sizeof *w),
         *cur = pg_alloc(pg, na, sizeof *cur), *rc = pg_alloc(pg, na, sizeof *rc);
  q = pg_prep(pg, "SELECT symbol, mu, vol, weight, current, risk_contrib FROM opt_assets WHERE run_id = ?1 ORDER BY idx",
              id);
  for (size_t i = 0; q && i < na && pg_step(pg, q) == SQLITE_ROW; i++) {
    sym[i] = pg_strdup(pg, col_text(q, 0));
    mu[i] = col_real(q, 1), vol[i] = col_real(q, 2), w[i] = col_real(q, 3), cur[i] = col_real(q, 4),
    rc[i] = col_real(q, 5);
  }
  sqlite3_finalize(q);
  const size_t np = pg_count(pg, "SELECT count(*) FROM opt_frontier WHERE run_id = ?1", id);
  double *fr = pg_alloc(pg, np, sizeof *fr), *fv = pg_alloc(pg, np, sizeof *fv),
         *fw = pg_alloc(pg, np * (na ? na : 1), sizeof *fw);
  q = pg_prep(pg, "SELECT ret, vol FROM opt_frontier WHERE run_id = ?1 ORDER BY point", id);
  for (size_t k = 0; q && k < np && pg_step(pg, q) == SQLITE_ROW; k++) fr[k] = col_real(q, 0), fv[k] = col_real(q, 1);
  sqlite3_finalize(q);
  size_t nfw = pg_count(pg, "SELECT count(*) FROM opt_frontier_weights WHERE run_id = ?1", id);
  q = pg_prep(pg, "SELECT point, idx, weight FROM opt_frontier_weights WHERE run_id = ?1", id);
  while (q && pg_step(pg, q) == SQLITE_ROW) {
    size_t k = (size_t)sqlite3_column_int64(q, 0), i = (size_t)sqlite3_column_int64(q, 1);
    if (k < np && i < na) fw[k * na + i] = col_real(q, 2);
  }
  sqlite3_finalize(q);
  if (pg->st) return;
  const int has_w = na && isfinite(w[0]), has_cur = na && isfinite(cur[0]), has_rc = na && isfinite(rc[0]);

  char h1[256], v[64], extra[200];
  snprintf(h1, sizeof h1, "%s: %s", strcmp(ri->kind, "frontier") ? "Optimisation" : "Efficient frontier", obj);
  snprintf(extra, sizeof extra, " · covariance %s · risk-free rate %.2f%%", cov, 100 * rf);
  page_begin(pg, h1);
  header(pg, h1, ri, extra);
  sb_puts(&pg->out, "<div class=\"cards\">");
  if (has_w) {
    fmt_pct(v, sizeof v, pret, 2);
    card(pg, "Expected return", v, pret >= 0 ? 1 : -1);
    fmt_pct(v, sizeof v, pvol, 2);
    card(pg, "Volatility", v, 0);
    fmt_num(v, sizeof v, psh, 3);
    card(pg, "Sharpe ratio", v, 0);
    if (has_cur) {
      fmt_pct(v, sizeof v, pturn, 1);
      card(pg, "Turnover from current", v, 0);
    }
  }
  snprintf(v, sizeof v, "%zu", np);
  card(pg, "Frontier points", v, 0);
  sb_puts(&pg->out, "</div></header>\n<section id=\"frontier\"><h2>Efficient frontier</h2>\n");
  /* frontier: volatility against return, the assets and portfolios marked */
  {
    double xlo = 0, xhi = 0, ylo = INFINITY, yhi = -INFINITY;
    for (size_t k = 0; k < np; k++) keeli_range_add(&xlo, &xhi, fv[k]), keeli_range_add(&ylo, &yhi, fr[k]);
    for (size_t i = 0; i < na; i++) keeli_range_add(&xlo, &xhi, vol[i]), keeli_range_add(&ylo, &yhi, mu[i]);
    keeli_range_add(&ylo, &yhi, pret);
    keeli_range_add(&ylo, &yhi, cret);
    keeli_range_add(&xlo, &xhi, cvol);
    keeli_range_pad(&ylo, &yhi, 0.08, 0);
    if (ylo > 0) ylo = 0;
    keeli_chart *c = new_chart(pg, 1080, 460);
    if (c) {
      keeli_plot p;
      keeli_plot_init(&p, keeli_chart_cr(c), 0, 0, 1080, 460, "Risk and return",
                      "Expected return against volatility (annual); the line: portfolios of least risk for each return",
                      (keeli_axis){0, xhi * 1.08, 0, KEELI_AX_PERCENT, "volatility"},
                      (keeli_axis){ylo, yhi, 0, KEELI_AX_PERCENT, "expected return"});
      keeli_plot_line(&p, np, fv, fr, keeli_rgb_hex(C_STRAT), 2.4, 0);
      cairo_t *cr = keeli_chart_cr(c);
      labels lb = {0};
      if (has_w) label_block(&lb, keeli_px(&p, pvol) - 12, keeli_py(&p, pret) - 12, 24, 24);
      if (has_cur && isfinite(cvol)) label_block(&lb, keeli_px(&p, cvol) - 8, keeli_py(&p, cret) - 8, 16, 16);
      for (size_t i = 0; i < na; i++) {
        keeli_plot_dot(&p, vol[i], mu[i], 4.5, keeli_palette(i));
        label_block(&lb, keeli_px(&p, vol[i]) - 5, keeli_py(&p, mu[i]) - 5, 10, 10);
      }
      for (size_t i = 0; i < na; i++)
        label_place(&lb, cr, keeli_px(&p, vol[i]), keeli_py(&p, mu[i]), 7, 11, 0, keeli_rgb_hex(0x333333), sym[i]);
      const char *names[4];
      keeli_rgb cols[4];
      size_t nl = 0;
      names[nl] = "efficient frontier", cols[nl++] = keeli_rgb_hex(C_STRAT);
      if (has_cur && isfinite(cvol)) {
        keeli_plot_dot(&p, cvol, cret, 7, keeli_rgb_hex(0x7f7f7f));
        label_place(&lb, cr, keeli_px(&p, cvol), keeli_py(&p, cret), 10, 12, 1, keeli_rgb_hex(0x555555), "current");
        names[nl] = "current portfolio", cols[nl++] = keeli_rgb_hex(0x7f7f7f);
      }
      if (has_w) {
        double px = keeli_px(&p, pvol), py = keeli_py(&p, pret);
        cairo_new_path(cr);
        for (int k = 0; k < 10; k++) { /* a star */
          double r = k % 2 ? 4.5 : 11, a = -M_PI / 2 + k * M_PI / 5;
          if (k)
            cairo_line_to(cr, px + r * cos(a), py + r * sin(a));
          else
            cairo_move_to(cr, px + r * cos(a), py + r * sin(a));
        }
        cairo_close_path(cr);
        keeli_rgb sc = keeli_rgb_hex(0xc8474b);
        cairo_set_source_rgb(cr, sc.r, sc.g, sc.b);
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_set_line_width(cr, 1.2);
        cairo_stroke(cr);
        label_place(&lb, cr, px, py, 13, 12, 1, sc, "chosen");
        names[nl] = "chosen portfolio", cols[nl++] = sc;
      }
      keeli_plot_legend(&p, nl, names, cols, 3);
      embed(pg, c, "frontier", "Efficient frontier with the assets and portfolios", 0);
    }
  }
  /* the transition map: weights along the frontier */
  if (np >= 2 && nfw) {
    keeli_chart *c = new_chart(pg, 1080, 300);
    if (c) {
      keeli_plot p;
      keeli_plot_init(&p, keeli_chart_cr(c), 0, 0, 1080 - 150, 300, "Weights along the frontier",
                      "Each frontier portfolio's weights, from the least risky to the most",
                      (keeli_axis){fv[0], fv[np - 1] > fv[0] ? fv[np - 1] : fv[0] + 1e-6, 0, KEELI_AX_PERCENT,
                                   "volatility"},
                      (keeli_axis){0, 1.0001, 0, KEELI_AX_PERCENT, NULL});
      double *lo = pg_alloc(pg, np, sizeof *lo), *hi = pg_alloc(pg, np, sizeof *hi), *cum = pg_alloc(pg, np, sizeof *cum);
      cairo_t *cr = keeli_chart_cr(c);
      for (size_t i = 0; lo && hi && cum && i < na; i++) {
        for (size_t k = 0; k < np; k++) lo[k] = cum[k], cum[k] += fmax(fw[k * na + i], 0), hi[k] = cum[k];
        keeli_plot_area(&p, np, fv, lo, hi, 0, keeli_palette(i), 0.9);
        double ly = p.y0 + 8 + 17 * (double)i;
        keeli_rgb col = keeli_palette(i);
        cairo_rectangle(cr, p.x1 + 22, ly, 14, 10);
        cairo_set_source_rgb(cr, col.r, col.g, col.b);
        cairo_fill(cr);
        keeli_text(cr, p.x1 + 42, ly + 9, 11, 0, 0, keeli_rgb_hex(0x222222), sym[i]);
      }
      embed(pg, c, "transition", "Weights along the efficient frontier", 0);
    }
  }
  sb_puts(&pg->out, "</section>\n<section id=\"portfolio\"><h2>The portfolio</h2><div class=\"grid\">\n");
  /* weights and risk contributions: horizontal bars */
  for (int pass = 0; pass < 2 && has_w; pass++) {
    if (pass == 1 && !has_rc) break;
    const double rowh = 26, H = 74 + rowh * (double)na + 10;
    keeli_chart *c = new_chart(pg, 532, H);
    if (!c) break;
    double lo = 0, hi = 0;
    for (size_t i = 0; i < na; i++) {
      keeli_range_add(&lo, &hi, w[i]);
      if (pass == 0 && has_cur) keeli_range_add(&lo, &hi, cur[i]);
      if (pass == 1) keeli_range_add(&lo, &hi, rc[i]);
    }
    keeli_plot p;
    keeli_plot_init(&p, keeli_chart_cr(c), 60, 38, 532 - 60, H - 38, NULL, NULL,
                    (keeli_axis){lo, hi * 1.12 + 1e-9, 0, KEELI_AX_PERCENT, NULL},
                    (keeli_axis){0, (double)na, 0, KEELI_AX_NUMBER, NULL});
    cairo_t *cr = keeli_chart_cr(c);
    /* the plot's own y labels are meaningless here: cover them */
    cairo_rectangle(cr, 0, p.y0 - 8, p.x0 - 1, p.y1 - p.y0 + 12);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_fill(cr);
    keeli_text(cr, 4, 20, 14, 1, 0, keeli_rgb_hex(0x222222), pass ? "Risk contributions" : "Weights");
    keeli_text(cr, 4, 36, 11, 0, 0, keeli_rgb_hex(0x6b6b6b),
               pass ? "Each asset's share of the variance, w_i (Sw)_i / w'Sw (orange), and its weight (grey)"
                    : has_cur ? "The chosen portfolio (coloured) and the current one (grey)" : "The chosen portfolio");
    for (size_t i = 0; i < na; i++) {
      double y = p.y0 + (p.y1 - p.y0) * (double)i / (double)na, bh = (p.y1 - p.y0) / (double)na;
      keeli_text(cr, p.x0 - 8, y + bh / 2 + 4, 11, 0, 1, keeli_rgb_hex(0x333333), sym[i]);
      double a = pass ? rc[i] : w[i], bsec = pass ? w[i] : has_cur ? cur[i] : NAN;
      double x0 = keeli_px(&p, 0);
      keeli_rgb c1 = pass ? keeli_rgb_hex(0xe0833a) : keeli_palette(i), c2 = keeli_rgb_hex(0xb9c2cc);
      int two = isfinite(bsec);
      double hb = two ? bh * 0.36 : bh * 0.6;
      cairo_rectangle(cr, fmin(x0, keeli_px(&p, a)), y + bh * 0.14, fabs(keeli_px(&p, a) - x0), hb);
      cairo_set_source_rgb(cr, c1.r, c1.g, c1.b);
      cairo_fill(cr);
      if (two) {
        cairo_rectangle(cr, fmin(x0, keeli_px(&p, bsec)), y + bh * 0.52, fabs(keeli_px(&p, bsec) - x0), hb);
        cairo_set_source_rgb(cr, c2.r, c2.g, c2.b);
        cairo_fill(cr);
      }
      char t[24];
      fmt_pct(t, sizeof t, a, 1);
      keeli_text(cr, keeli_px(&p, fmax(a, 0)) + 4, y + bh * 0.14 + hb - 2, 10, 1, 0, keeli_rgb_hex(0x333333), t);
    }
    embed(pg, c, pass ? "risk" : "weights", pass ? "Risk contributions" : "Portfolio weights", 1);
  }
  sb_puts(&pg->out, "</div>");
  sb_puts(&pg->out, "<table><thead><tr><th>Asset</th><th>Expected return</th><th>Volatility</th><th>Weight</th>"
                    "<th>Current</th><th>Risk contribution</th></tr></thead><tbody>\n");
  for (size_t i = 0; i < na; i++) {
    char a[32], b[32], c2[32], d[32], e[32];
    fmt_pct(a, sizeof a, mu[i], 2), fmt_pct(b, sizeof b, vol[i], 2), fmt_pct(c2, sizeof c2, w[i], 2),
        fmt_pct(d, sizeof d, cur[i], 2), fmt_pct(e, sizeof e, rc[i], 2);
    sb_puts(&pg->out, "<tr><td>");
    sb_esc(&pg->out, sym[i]);
    sb_printf(&pg->out, "</td><td>%s</td><td>%s</td><td data-weight=\"%zu\">%s</td><td>%s</td><td>%s</td></tr>\n", a, b,
              i, c2, d, e);
  }
  sb_puts(&pg->out, "</tbody></table>");
  if (has_w) {
    char a[32], b[32];
    fmt_pct(a, sizeof a, pcash, 2);
    fmt_pct(b, sizeof b, pcost, 3);
    sb_printf(&pg->out, "<p class=\"note\">Cash %s; costs of the trades from the current weights %s of the value.</p>",
              a, b);
  }
  sb_puts(&pg->out, "</section>\n");
  params_section(pg, ri);
  page_end(pg);
}

/* ---- a batch: several backtests compared ------------------------------------------------ */

static int cmp_sharpe_desc(const void *a, const void *b) {
  const double x = ((const double *)a)[1], y = ((const double *)b)[1];
  if (isnan(x)) return isnan(y) ? 0 : 1;
  if (isnan(y)) return -1;
  return (x < y) - (x > y);
}

static void page_batch(page *pg, const int64_t *ids, size_t n) {
  bt *runs = pg_alloc(pg, n, sizeof *runs);
  if (!runs) return;
  for (size_t k = 0; k < n; k++)
    if (load_backtest(pg, ids[k], &runs[k])) return;
  char h1[128];
  snprintf(h1, sizeof h1, "Batch of %zu backtests", n);
  page_begin(pg, h1);
  header(pg, h1, NULL, NULL);
  sb_printf(&pg->out, "Runs %lld to %lld of the store", (long long)ids[0], (long long)ids[n - 1]);
  sb_puts(&pg->out, "</p>\n<div class=\"cards\">");
  double best = -INFINITY, worst = INFINITY;
  size_t ib = 0;
  for (size_t k = 0; k < n; k++) {
    double s = metric(&runs[k], "sharpe");
    if (s > best) best = s, ib = k;
    if (s < worst) worst = s;
  }
  char v[64];
  snprintf(v, sizeof v, "%zu", n);
  card(pg, "Runs", v, 0);
  snprintf(v, sizeof v, "run %lld (%.2f)", (long long)runs[ib].ri.id, best);
  card(pg, "Best Sharpe ratio", v, 1);
  fmt_num(v, sizeof v, worst, 2);
  card(pg, "Worst Sharpe ratio", v, -1);
  sb_puts(&pg->out, "</div></header>\n");
  /* rank by Sharpe ratio */
  double *rank = pg_alloc(pg, n * 2, sizeof *rank);
  if (!rank) return;
  for (size_t k = 0; k < n; k++) rank[2 * k] = (double)k, rank[2 * k + 1] = metric(&runs[k], "sharpe");
  qsort(rank, n, 2 * sizeof *rank, cmp_sharpe_desc);
  sb_puts(&pg->out, "<section id=\"runs\"><h2>Runs, best Sharpe ratio first</h2><div class=\"scroll\"><table class=\"metrics\"><thead><tr>"
                    "<th>Run</th><th>Strategy</th><th>Dataset</th><th>Period</th><th>CAGR</th><th>Volatility</th>"
                    "<th>Sharpe</th><th>Sortino</th><th>Max drawdown</th><th>Calmar</th><th>Turnover</th>"
                    "<th>Costs</th><th>Final value</th></tr></thead><tbody>\n");
  for (size_t r = 0; r < n; r++) {
    const bt *b = &runs[(size_t)rank[2 * r]];
    char d0[KEEL_DATE_BUFSIZE], d1[KEEL_DATE_BUFSIZE], c[8][40];
    keel_date_format(b->dates[0], d0);
    keel_date_format(b->dates[b->n - 1], d1);
    fmt_pct(c[0], 40, metric(b, "cagr"), 2);
    fmt_pct(c[1], 40, metric(b, "volatility"), 2);
    fmt_num(c[2], 40, metric(b, "sharpe"), 3);
    fmt_num(c[3], 40, metric(b, "sortino"), 3);
    fmt_pct(c[4], 40, metric(b, "max_drawdown"), 2);
    fmt_num(c[5], 40, metric(b, "calmar"), 3);
    fmt_pct(c[6], 40, metric(b, "turnover"), 1);
    keeli_fmt_money(c[7], 40, metric(b, "costs_total"));
    char fv[40];
    keeli_fmt_money(fv, sizeof fv, b->value[b->n - 1]);
    sb_printf(&pg->out, "<tr data-run=\"%lld\"><td>%lld</td><td>", (long long)b->ri.id, (long long)b->ri.id);
    sb_esc(&pg->out, b->ri.strategy);
    sb_puts(&pg->out, "</td><td>");
    const char *ds = strrchr(b->ri.dataset, '/');
    sb_esc(&pg->out, ds ? ds + 1 : b->ri.dataset);
    sb_printf(&pg->out, "</td><td>%s – %s</td>", d0, d1);
    for (int j = 0; j < 8; j++) sb_printf(&pg->out, "<td>%s</td>", c[j]);
    sb_printf(&pg->out, "<td>%s</td></tr>\n", fv);
  }
  sb_puts(&pg->out, "</tbody></table></div></section>\n<section id=\"compare\"><h2>Compared</h2>\n");
  /* growth curves of the best ones, log scale */
  size_t no = pg->o->max_overlay ? pg->o->max_overlay : 10;
  if (no > n) no = n;
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (size_t r = 0; r < no; r++) {
    const bt *b = &runs[(size_t)rank[2 * r]];
    keeli_range_add(&xlo, &xhi, b->dx[0]);
    keeli_range_add(&xlo, &xhi, b->dx[b->n - 1]);
    for (size_t t = 0; t < b->n; t++) keeli_range_add(&ylo, &yhi, b->index[t]);
  }
  keeli_range_pad(&ylo, &yhi, 0.04, 1);
  keeli_chart *c = new_chart(pg, 1080, 420);
  if (c) {
    keeli_plot p;
    char sub[160];
    snprintf(sub, sizeof sub, "Growth of 1 by the time-weighted returns, log scale; the %zu best Sharpe ratios", no);
    keeli_plot_init(&p, keeli_chart_cr(c), 0, 0, 1080 - 170, 420, "Growth", sub,
                    (keeli_axis){xlo, xhi, 0, KEELI_AX_DATE, NULL}, (keeli_axis){ylo, yhi, 1, KEELI_AX_RATIO, NULL});
    cairo_t *cr = keeli_chart_cr(c);
    for (size_t r = no; r-- > 0;) {
      const bt *b = &runs[(size_t)rank[2 * r]];
      keeli_plot_line(&p, b->n, b->dx, b->index, keeli_palette(r), r == 0 ? 2.4 : 1.4, 0);
    }
    for (size_t r = 0; r < no; r++) {
      const bt *b = &runs[(size_t)rank[2 * r]];
      char lab[64];
      snprintf(lab, sizeof lab, "run %lld", (long long)b->ri.id);
      double ly = p.y0 + 8 + 17 * (double)r;
      keeli_rgb col = keeli_palette(r);
      cairo_rectangle(cr, p.x1 + 22, ly, 14, 10);
      cairo_set_source_rgb(cr, col.r, col.g, col.b);
      cairo_fill(cr);
      keeli_text(cr, p.x1 + 42, ly + 9, 11, r == 0, 0, keeli_rgb_hex(0x222222), lab);
    }
    embed(pg, c, "overlay", "Growth curves of the runs", 0);
  }
  /* risk against return, every run */
  xlo = 0, xhi = 0, ylo = 0, yhi = 0;
  for (size_t k = 0; k < n; k++) {
    keeli_range_add(&xlo, &xhi, metric(&runs[k], "volatility"));
    keeli_range_add(&ylo, &yhi, metric(&runs[k], "cagr"));
  }
  keeli_range_pad(&ylo, &yhi, 0.1, 0);
  c = new_chart(pg, 1080, 420);
  if (c) {
    keeli_plot p;
    keeli_plot_init(&p, keeli_chart_cr(c), 0, 0, 1080, 420, "Risk and return",
                    "CAGR against volatility of every run; the colour follows the rank by Sharpe ratio",
                    (keeli_axis){0, xhi * 1.1 + 1e-9, 0, KEELI_AX_PERCENT, "volatility (annual)"},
                    (keeli_axis){ylo, yhi, 0, KEELI_AX_PERCENT, "CAGR"});
    keeli_plot_hline(&p, 0, keeli_rgb_hex(0x888888), 1, 0, NULL);
    cairo_t *cr = keeli_chart_cr(c);
    for (size_t r = n; r-- > 0;) {
      const bt *b = &runs[(size_t)rank[2 * r]];
      double vx = metric(b, "volatility"), vy = metric(b, "cagr");
      keeli_plot_dot(&p, vx, vy, r < no ? 6 : 4, r < no ? keeli_palette(r) : keeli_rgb_hex(0xa0a7b0));
      if (n <= 40 && isfinite(vx) && isfinite(vy)) {
        char lab[32];
        snprintf(lab, sizeof lab, "%lld", (long long)b->ri.id);
        keeli_text(cr, keeli_px(&p, vx) + 8, keeli_py(&p, vy) + 4, 10, 0, 0, keeli_rgb_hex(0x444444), lab);
      }
    }
    embed(pg, c, "scatter", "Risk and return of the runs", 0);
  }
  sb_puts(&pg->out, "</section>\n");
  page_end(pg);
}

/* ---- the object ---------------------------------------------------------------------- */

struct keel_report {
  keeli_heap heap;
  char *html;
  size_t len, ncharts;
};

void keel_report_options_default(keel_report_options *o) {
  memset(o, 0, sizeof *o);
  o->rolling_window = 126;
  o->periods_per_year = 252;
  o->max_overlay = 10;
}

void keel_report_free(keel_report *r) {
  if (!r) return;
  keeli_heap h = r->heap;
  keeli_heap_free(&h, r->html);
  keeli_heap_free(&h, r);
}

const char *keel_report_html(const keel_report *r, size_t *len) {
  if (len) *len = r ? r->len : 0;
  return r ? r->html : NULL;
}

size_t keel_report_ncharts(const keel_report *r) { return r ? r->ncharts : 0; }

keel_status keel_report_new(keel_ctx *ctx, keel_store *s, const int64_t *ids, size_t n, const keel_report_options *o,
                            keel_report **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_report_new: out is NULL");
  *out = NULL;
  if (!s || !ids || n == 0) return keeli_error(ctx, KEEL_EINVAL, "keel_report_new: no store or no runs");
  keel_report_options def;
  keel_report_options_default(&def);
  if (!o) o = &def;
  if (!(o->periods_per_year > 0) || !isfinite(o->periods_per_year))
    return keeli_error(ctx, KEEL_EINVAL, "keel_report_new: periods_per_year must be > 0");
  page pg = {.ctx = ctx, .store = s, .db = keeli_store_db(s), .o = o};
  pg.out.heap = *keeli_ctx_heap(ctx);
  /* numbers are written in the C locale whatever the host's */
  locale_t cl = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  if (cl == (locale_t)0) return keeli_error(ctx, KEEL_ENOMEM, "keel_report_new: no C locale");
  locale_t old = uselocale(cl);
  if (sqlite3_exec(pg.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
    pg.st = keeli_error(ctx, KEEL_EIO, "%s: %s", keeli_store_path(s), sqlite3_errmsg(pg.db));
  if (n > 1) {
    page_batch(&pg, ids, n);
  } else {
    run_info ri;
    if (!load_run(&pg, ids[0], &ri)) {
      if (!strcmp(ri.kind, "backtest"))
        page_backtest(&pg, ids[0]);
      else if (!strcmp(ri.kind, "stress"))
        page_stress(&pg, &ri);
      else if (!strcmp(ri.kind, "optimize") || !strcmp(ri.kind, "frontier"))
        page_optimization(&pg, &ri);
      else
        pg.st = keeli_error(ctx, KEEL_EINVAL, "run %lld is of kind '%s': no page for it", (long long)ids[0], ri.kind);
    }
  }
  sqlite3_exec(pg.db, "COMMIT", NULL, NULL, NULL);
  uselocale(old);
  freelocale(cl);
  for (size_t k = 0; k < pg.nallocs; k++) keeli_free(ctx, pg.allocs[k]);
  keeli_free(ctx, pg.allocs);
  if (!pg.st && pg.out.oom) pg.st = keeli_error(ctx, KEEL_ENOMEM, "report: out of memory");
  keel_report *r = NULL;
  if (!pg.st && !(r = keeli_calloc(ctx, 1, sizeof *r))) pg.st = KEEL_ENOMEM;
  if (pg.st) {
    keeli_heap_free(&pg.out.heap, pg.out.s);
    return pg.st;
  }
  r->heap = pg.out.heap;
  r->html = pg.out.s;
  r->len = pg.out.len;
  r->ncharts = pg.ncharts;
  *out = r;
  return KEEL_OK;
}

keel_status keel_report_save(keel_ctx *ctx, const keel_report *r, const char *path) {
  if (!r || !path || !*path) return keeli_error(ctx, KEEL_EINVAL, "keel_report_save: no report or no path");
  size_t pl = strlen(path);
  char *tmp = keeli_alloc(ctx, pl + 16);
  if (!tmp) return KEEL_ENOMEM;
  snprintf(tmp, pl + 16, "%s.tmpXXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    keel_status st = keeli_error(ctx, KEEL_EIO, "%s: cannot write: %s", path, strerror(errno));
    keeli_free(ctx, tmp);
    return st;
  }
  fchmod(fd, 0644); /* mkstemp's 0600 would hide the page from a web server or another user */
  FILE *f = fdopen(fd, "wb");
  int ok = f && fwrite(r->html, 1, r->len, f) == r->len;
  int err = errno;
  if (f) {
    ok &= fflush(f) == 0;
    if (!ok) err = errno;
    ok &= fclose(f) == 0;
  } else {
    close(fd);
  }
  if (ok && rename(tmp, path) != 0) ok = 0, err = errno;
  keel_status st = KEEL_OK;
  if (!ok) {
    unlink(tmp);
    st = keeli_error(ctx, KEEL_EIO, "%s: cannot write: %s", path, strerror(err));
  }
  keeli_free(ctx, tmp);
  return st;
}
