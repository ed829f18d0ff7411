/* keel — charts on cairo's SVG surface (data/chart.h). cairo turns the
 * text into glyph outlines inside the SVG, so an image looks the same on
 * any machine, with or without the font. docs/reports.md says why cairo. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cairo-svg.h>

#include "core/internal.h"
#include "data/chart.h"
#include "keel/date.h"

struct keeli_chart {
  keeli_heap heap;
  cairo_surface_t *surf;
  cairo_t *cr;
  char *buf;
  size_t len, cap;
  int oom;
  double w, h;
};

/* A font every Debian system with fonts-dejavu-core has; fontconfig
 * substitutes its best match when it is missing. */
#define FONT "DejaVu Sans"

static const unsigned PALETTE[] = {0x3b6fb6, 0xe0833a, 0x4c9a5a, 0xc8474b, 0x7d5ba6,
                                   0x2c9c9c, 0xd4a72c, 0x8c6d52, 0xd16fa8, 0x7f7f7f};

keeli_rgb keeli_rgb_hex(unsigned hex) {
  return (keeli_rgb){((hex >> 16) & 255) / 255.0, ((hex >> 8) & 255) / 255.0, (hex & 255) / 255.0};
}

keeli_rgb keeli_palette(size_t k) { return keeli_rgb_hex(PALETTE[k % (sizeof PALETTE / sizeof PALETTE[0])]); }

static cairo_status_t write_fn(void *closure, const unsigned char *data, unsigned int n) {
  keeli_chart *c = closure;
  if (c->oom) return CAIRO_STATUS_WRITE_ERROR;
  if (keeli_heap_reserve(&c->heap, (void **)&c->buf, &c->cap, c->len + n + 1, 1)) {
    c->oom = 1;
    return CAIRO_STATUS_WRITE_ERROR;
  }
  memcpy(c->buf + c->len, data, n);
  c->len += n;
  c->buf[c->len] = '\0';
  return CAIRO_STATUS_SUCCESS;
}

keel_status keeli_chart_new(keel_ctx *ctx, double width, double height, keeli_chart **out) {
  *out = NULL;
  keeli_chart *c = keeli_calloc(ctx, 1, sizeof *c);
  if (!c) return KEEL_ENOMEM;
  c->heap = *keeli_ctx_heap(ctx);
  c->w = width;
  c->h = height;
  c->surf = cairo_svg_surface_create_for_stream(write_fn, c, width, height);
  if (cairo_surface_status(c->surf) != CAIRO_STATUS_SUCCESS) {
    keeli_chart_free(c);
    return keeli_error(ctx, KEEL_ENOMEM, "chart: cannot make an SVG surface");
  }
  cairo_svg_surface_restrict_to_version(c->surf, CAIRO_SVG_VERSION_1_1);
  c->cr = cairo_create(c->surf);
  if (cairo_status(c->cr) != CAIRO_STATUS_SUCCESS) {
    keeli_chart_free(c);
    return keeli_error(ctx, KEEL_ENOMEM, "chart: cannot draw on the SVG surface");
  }
  cairo_set_source_rgb(c->cr, 1, 1, 1);
  cairo_paint(c->cr);
  *out = c;
  return KEEL_OK;
}

cairo_t *keeli_chart_cr(keeli_chart *c) { return c->cr; }
double keeli_chart_width(const keeli_chart *c) { return c->w; }
double keeli_chart_height(const keeli_chart *c) { return c->h; }

void keeli_chart_free(keeli_chart *c) {
  if (!c) return;
  keeli_heap h = c->heap;
  if (c->cr) cairo_destroy(c->cr);
  if (c->surf) cairo_surface_destroy(c->surf);
  keeli_heap_free(&h, c->buf);
  keeli_heap_free(&h, c);
}

keel_status keeli_chart_finish(keel_ctx *ctx, keeli_chart *c, char **svg, size_t *len) {
  *svg = NULL;
  *len = 0;
  cairo_status_t cs = cairo_status(c->cr);
  cairo_destroy(c->cr);
  c->cr = NULL;
  cairo_surface_finish(c->surf);
  if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(c->surf);
  keel_status st = KEEL_OK;
  if (c->oom || cs == CAIRO_STATUS_NO_MEMORY)
    st = keeli_error(ctx, KEEL_ENOMEM, "chart: out of memory");
  else if (cs != CAIRO_STATUS_SUCCESS || !c->buf)
    st = keeli_error(ctx, KEEL_EIO, "chart: cairo failed: %s", cairo_status_to_string(cs));
  if (st == KEEL_OK) {
    *svg = c->buf;
    *len = c->len;
    c->buf = NULL;
  }
  keeli_chart_free(c);
  return st;
}

/* ---- text --------------------------------------------------------------- */

static void set_font(cairo_t *cr, double size, int bold) {
  cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

double keeli_text_width(cairo_t *cr, double size, int bold, const char *s) {
  cairo_text_extents_t e;
  set_font(cr, size, bold);
  cairo_text_extents(cr, s, &e);
  return e.x_advance;
}

void keeli_text(cairo_t *cr, double x, double y, double size, int bold, double align, keeli_rgb col,
                const char *s) {
  if (!s || !*s) return;
  double w = align != 0 ? keeli_text_width(cr, size, bold, s) : 0;
  set_font(cr, size, bold);
  cairo_set_source_rgb(cr, col.r, col.g, col.b);
  cairo_move_to(cr, x - align * w, y);
  cairo_show_text(cr, s);
  cairo_new_path(cr);
}

/* ---- numbers ------------------------------------------------------------ */

static int decimals_for(double step) {
  if (!(step > 0)) return 2;
  int d = (int)ceil(-log10(step) - 1e-9);
  return d < 0 ? 0 : d > 6 ? 6 : d;
}

void keeli_fmt_money(char *buf, size_t n, double v) {
  /* whole units with thousands separators: 1,234,567 */
  if (!isfinite(v)) {
    snprintf(buf, n, "n/a");
    return;
  }
  char digits[64];
  snprintf(digits, sizeof digits, "%.0f", fabs(v));
  size_t nd = strlen(digits), o = 0;
  if (v < 0 && nd && strcmp(digits, "0") && o + 1 < n) buf[o++] = '-';
  for (size_t i = 0; i < nd && o + 2 < n; i++) {
    buf[o++] = digits[i];
    if ((nd - i - 1) % 3 == 0 && i + 1 < nd) buf[o++] = ',';
  }
  buf[o] = '\0';
}

void keeli_fmt_axis(char *buf, size_t n, keeli_axis_kind kind, double v, double step) {
  if (fabs(v) < fabs(step) * 1e-9) v = 0;
  switch (kind) {
    case KEELI_AX_PERCENT: snprintf(buf, n, "%.*f%%", decimals_for(step * 100), v * 100); return;
    case KEELI_AX_RATIO: snprintf(buf, n, "%.*fx", decimals_for(step), v); return;
    case KEELI_AX_MONEY: {
      const double a = fabs(v) > fabs(step) ? fabs(v) : fabs(step);
      const char *suf = "";
      double div = 1;
      if (a >= 1e9) suf = "B", div = 1e9;
      else if (a >= 1e6) suf = "M", div = 1e6;
      else if (a >= 1e4) suf = "k", div = 1e3;
      if (div == 1 || v == 0) {
        keeli_fmt_money(buf, n, v);
        return;
      }
      snprintf(buf, n, "%.*f%s", decimals_for(step / div), v / div, suf);
      return;
    }
    case KEELI_AX_DATE: {
      char d[KEEL_DATE_BUFSIZE];
      keel_date_format((keel_date)lround(v), d);
      snprintf(buf, n, "%s", d);
      return;
    }
    default: snprintf(buf, n, "%.*f", decimals_for(step), v); return;
  }
}

/* ---- ranges and ticks ------------------------------------------------------ */

void keeli_range_add(double *lo, double *hi, double v) {
  if (!isfinite(v)) return;
  if (!(v >= *lo)) *lo = v;
  if (!(v <= *hi)) *hi = v;
}

void keeli_range_pad(double *lo, double *hi, double frac, int log) {
  if (!isfinite(*lo) || !isfinite(*hi)) {
    *lo = log ? 1 : 0;
    *hi = log ? 10 : 1;
    return;
  }
  if (log) {
    double a = log10(*lo), b = log10(*hi);
    if (b - a < 1e-9) a -= 0.05, b += 0.05;
    double d = (b - a) * frac;
    *lo = pow(10, a - d);
    *hi = pow(10, b + d);
    return;
  }
  if (*hi - *lo < 1e-12 * (fabs(*lo) + fabs(*hi)) + 1e-300) {
    double h = fabs(*lo) > 0 ? fabs(*lo) * 0.05 : 1;
    *lo -= h, *hi += h;
  }
  double d = (*hi - *lo) * frac;
  *lo -= d, *hi += d;
}

#define MAXTICKS 64

static double nice_step(double span, int target) {
  double raw = span / target, mag = pow(10, floor(log10(raw))), norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

/* Tick values of an axis and the step their labels are formatted with. */
static size_t ticks(const keeli_axis *a, int target, double *t, double *step, int *years) {
  size_t n = 0;
  *years = 0;
  if (a->kind == KEELI_AX_DATE) {
    int y0, y1, m0;
    keel_date_to_ymd((keel_date)floor(a->lo), &y0, &m0, NULL);
    keel_date_to_ymd((keel_date)ceil(a->hi), &y1, NULL, NULL);
    double span = (a->hi - a->lo) / 365.25;
    if (span >= 2.5) {
      static const int ks[] = {1, 2, 5, 10, 20, 50, 100};
      int k = 100;
      for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        if (span / ks[i] <= target + 2) {
          k = ks[i];
          break;
        }
      for (int y = (y0 / k) * k; y <= y1 && n < MAXTICKS; y += k) {
        keel_date d;
        if (y >= 1 && !keel_date_from_ymd(y, 1, 1, &d) && d >= a->lo && d <= a->hi) t[n++] = d;
      }
      *years = 1;
    } else {
      static const int ms[] = {1, 2, 3, 6, 12};
      int k = 12;
      for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (span * 12 / ms[i] <= target) {
          k = ms[i];
          break;
        }
      for (int y = y0; y <= y1; y++)
        for (int m = 1; m <= 12 && n < MAXTICKS; m += k) {
          keel_date d;
          if (!keel_date_from_ymd(y, m, 1, &d) && d >= a->lo && d <= a->hi) t[n++] = d;
        }
      *years = 2;
    }
    *step = 1;
    return n;
  }
  if (a->log && a->lo > 0 && a->hi / a->lo > 12) {
    int e0 = (int)floor(log10(a->lo)), e1 = (int)ceil(log10(a->hi));
    int decades = e1 - e0;
    static const double sub3[] = {1, 2, 5}, sub1[] = {1};
    const double *sub = decades <= 3 ? sub3 : sub1;
    size_t ns = decades <= 3 ? 3 : 1;
    int every = decades > 8 ? 2 : 1;
    for (int e = e0; e <= e1; e += every)
      for (size_t k = 0; k < ns && n < MAXTICKS; k++) {
        double v = sub[k] * pow(10, e);
        if (v >= a->lo * (1 - 1e-9) && v <= a->hi * (1 + 1e-9)) t[n++] = v;
      }
    *step = n ? t[0] : 1;
    return n;
  }
  double s = nice_step(a->hi - a->lo, target);
  for (double v = ceil(a->lo / s - 1e-9) * s; v <= a->hi + s * 1e-9 && n < MAXTICKS; v += s) t[n++] = v;
  *step = s;
  return n;
}

static void tick_label(const keeli_axis *a, double v, double step, int years, char *buf, size_t n) {
  if (a->kind == KEELI_AX_DATE) {
    int y, m;
    keel_date_to_ymd((keel_date)lround(v), &y, &m, NULL);
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (years == 1)
      snprintf(buf, n, "%d", y);
    else
      snprintf(buf, n, "%s %d", mon[(m - 1) % 12], y);
    return;
  }
  if (a->log && a->lo > 0 && a->hi / a->lo > 12) step = v; /* each label at its own magnitude */
  keeli_fmt_axis(buf, n, a->kind, v, a->log ? fmin(step, v) : step);
}

/* ---- plots ---------------------------------------------------------------- */

static const unsigned INK = 0x222222, MUTED = 0x6b6b6b, GRID = 0xe6e6e6;

double keeli_px(const keeli_plot *p, double x) {
  double a = p->x.lo, b = p->x.hi;
  if (p->x.log) x = log(x), a = log(a), b = log(b);
  return p->x0 + (x - a) / (b - a) * (p->x1 - p->x0);
}

double keeli_py(const keeli_plot *p, double y) {
  double a = p->y.lo, b = p->y.hi;
  if (p->y.log) y = log(y), a = log(a), b = log(b);
  return p->y1 - (y - a) / (b - a) * (p->y1 - p->y0);
}

void keeli_plot_init(keeli_plot *p, cairo_t *cr, double x, double y, double w, double h, const char *title,
                     const char *subtitle, keeli_axis xa, keeli_axis ya) {
  p->cr = cr;
  p->x = xa;
  p->y = ya;
  if (p->x.log && !(p->x.lo > 0)) p->x.log = 0;
  if (p->y.log && !(p->y.lo > 0)) p->y.log = 0;
  double top = y + 6;
  if (title) {
    keeli_text(cr, x + 4, top + 14, 14, 1, 0, keeli_rgb_hex(INK), title);
    top += 20;
  }
  if (subtitle) {
    keeli_text(cr, x + 4, top + 12, 11, 0, 0, keeli_rgb_hex(MUTED), subtitle);
    top += 16;
  }
  top += 10;
  double yt[MAXTICKS], xt[MAXTICKS], ys, xs;
  int yyears, xyears;
  size_t nyt = ticks(&p->y, 6, yt, &ys, &yyears);
  char lab[64];
  double lw = 0;
  for (size_t k = 0; k < nyt; k++) {
    tick_label(&p->y, yt[k], ys, yyears, lab, sizeof lab);
    double tw = keeli_text_width(cr, 11, 0, lab);
    if (tw > lw) lw = tw;
  }
  p->x0 = x + lw + 14 + (ya.label ? 18 : 0);
  p->x1 = x + w - 14;
  p->y0 = top;
  p->y1 = y + h - 24 - (xa.label ? 16 : 0);
  int target = (int)((p->x1 - p->x0) / 90);
  size_t nxt = ticks(&p->x, target < 2 ? 2 : target > 12 ? 12 : target, xt, &xs, &xyears);
  /* grid */
  cairo_set_line_width(cr, 1);
  keeli_rgb g = keeli_rgb_hex(GRID);
  cairo_set_source_rgb(cr, g.r, g.g, g.b);
  for (size_t k = 0; k < nyt; k++) {
    double py = floor(keeli_py(p, yt[k])) + 0.5;
    cairo_move_to(cr, p->x0, py);
    cairo_line_to(cr, p->x1, py);
  }
  for (size_t k = 0; k < nxt; k++) {
    double px = floor(keeli_px(p, xt[k])) + 0.5;
    cairo_move_to(cr, px, p->y0);
    cairo_line_to(cr, px, p->y1);
  }
  cairo_stroke(cr);
  /* the x axis line */
  keeli_rgb ax = keeli_rgb_hex(0xb0b0b0);
  cairo_set_source_rgb(cr, ax.r, ax.g, ax.b);
  cairo_move_to(cr, p->x0, floor(p->y1) + 0.5);
  cairo_line_to(cr, p->x1, floor(p->y1) + 0.5);
  cairo_stroke(cr);
  keeli_rgb mc = keeli_rgb_hex(MUTED);
  for (size_t k = 0; k < nyt; k++) {
    tick_label(&p->y, yt[k], ys, yyears, lab, sizeof lab);
    keeli_text(cr, p->x0 - 6, keeli_py(p, yt[k]) + 4, 11, 0, 1, mc, lab);
  }
  double lastr = -1e9;
  for (size_t k = 0; k < nxt; k++) {
    tick_label(&p->x, xt[k], xs, xyears, lab, sizeof lab);
    double tw = keeli_text_width(cr, 11, 0, lab), cx = keeli_px(p, xt[k]);
    if (cx - tw / 2 < lastr + 6) continue; /* never overlap two labels */
    if (cx + tw / 2 > x + w) cx = x + w - tw / 2;
    keeli_text(cr, cx, p->y1 + 16, 11, 0, 0.5, mc, lab);
    lastr = cx + tw / 2;
  }
  if (xa.label) keeli_text(cr, (p->x0 + p->x1) / 2, p->y1 + 34, 11, 0, 0.5, mc, xa.label);
  if (ya.label) {
    cairo_save(cr);
    cairo_translate(cr, x + 12, (p->y0 + p->y1) / 2);
    cairo_rotate(cr, -M_PI / 2);
    keeli_text(cr, 0, 0, 11, 0, 0.5, mc, ya.label);
    cairo_restore(cr);
  }
}

void keeli_plot_clip(const keeli_plot *p) {
  cairo_save(p->cr);
  cairo_rectangle(p->cr, p->x0, p->y0 - 1, p->x1 - p->x0, p->y1 - p->y0 + 2);
  cairo_clip(p->cr);
}

void keeli_plot_unclip(const keeli_plot *p) { cairo_restore(p->cr); }

void keeli_plot_line(const keeli_plot *p, size_t n, const double *xs, const double *ys, keeli_rgb col, double width,
                     int dashed) {
  cairo_t *cr = p->cr;
  keeli_plot_clip(p);
  cairo_set_line_width(cr, width);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  if (dashed) {
    const double d[] = {5, 4};
    cairo_set_dash(cr, d, 2, 0);
  }
  cairo_set_source_rgb(cr, col.r, col.g, col.b);
  int pen = 0;
  double lastx = -1e300;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(xs[i]) || !isfinite(ys[i]) || (p->y.log && !(ys[i] > 0))) {
      pen = 0;
      continue;
    }
    double px = keeli_px(p, xs[i]), py = keeli_py(p, ys[i]);
    if (pen && fabs(px - lastx) < 0.25 && i + 1 < n) continue; /* sub-pixel steps add nothing */
    if (pen)
      cairo_line_to(cr, px, py);
    else
      cairo_move_to(cr, px, py);
    pen = 1;
    lastx = px;
  }
  cairo_stroke(cr);
  keeli_plot_unclip(p);
}

void keeli_plot_area(const keeli_plot *p, size_t n, const double *xs, const double *ylo, const double *yhi,
                     double base, keeli_rgb col, double alpha) {
  cairo_t *cr = p->cr;
  if (n < 2) return;
  keeli_plot_clip(p);
  size_t i = 0;
  while (i < n) {
    while (i < n && (!isfinite(yhi[i]) || (ylo && !isfinite(ylo[i])))) i++;
    size_t j = i;
    while (j < n && isfinite(yhi[j]) && (!ylo || isfinite(ylo[j]))) j++;
    if (j - i >= 2) {
      cairo_move_to(cr, keeli_px(p, xs[i]), keeli_py(p, yhi[i]));
      for (size_t k = i + 1; k < j; k++) cairo_line_to(cr, keeli_px(p, xs[k]), keeli_py(p, yhi[k]));
      for (size_t k = j; k-- > i;) cairo_line_to(cr, keeli_px(p, xs[k]), keeli_py(p, ylo ? ylo[k] : base));
      cairo_close_path(cr);
      cairo_set_source_rgba(cr, col.r, col.g, col.b, alpha);
      cairo_fill(cr);
    }
    i = j;
  }
  keeli_plot_unclip(p);
}

/* One straight line from (x0, y0) to (x1, y1), solid or dashed. */
static void rule(cairo_t *cr, double x0, double y0, double x1, double y1, keeli_rgb col, double width, int dashed) {
  cairo_save(cr);
  cairo_set_line_width(cr, width);
  if (dashed) {
    const double d[] = {6, 4};
    cairo_set_dash(cr, d, 2, 0);
  }
  cairo_set_source_rgb(cr, col.r, col.g, col.b);
  cairo_move_to(cr, x0, y0);
  cairo_line_to(cr, x1, y1);
  cairo_stroke(cr);
  cairo_restore(cr);
}

void keeli_plot_hline(const keeli_plot *p, double y, keeli_rgb col, double width, int dashed, const char *label) {
  if (!isfinite(y) || y < fmin(p->y.lo, p->y.hi) || y > fmax(p->y.lo, p->y.hi)) return;
  cairo_t *cr = p->cr;
  double py = keeli_py(p, y);
  rule(cr, p->x0, py, p->x1, py, col, width, dashed);
  if (label) keeli_text(cr, p->x1 - 4, py - 5, 11, 1, 1, col, label);
}

void keeli_plot_vline(const keeli_plot *p, double x, keeli_rgb col, double width, int dashed, const char *label) {
  if (!isfinite(x) || x < fmin(p->x.lo, p->x.hi) || x > fmax(p->x.lo, p->x.hi)) return;
  cairo_t *cr = p->cr;
  double px = keeli_px(p, x);
  rule(cr, px, p->y0, px, p->y1, col, width, dashed);
  if (label) {
    double tw = keeli_text_width(cr, 11, 1, label);
    int right = px + 6 + tw < p->x1;
    keeli_text(cr, right ? px + 5 : px - 5, p->y0 + 12, 11, 1, right ? 0 : 1, col, label);
  }
}

void keeli_plot_dot(const keeli_plot *p, double x, double y, double r, keeli_rgb col) {
  if (!isfinite(x) || !isfinite(y)) return;
  cairo_t *cr = p->cr;
  cairo_arc(cr, keeli_px(p, x), keeli_py(p, y), r, 0, 2 * M_PI);
  cairo_set_source_rgb(cr, col.r, col.g, col.b);
  cairo_fill_preserve(cr);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_set_line_width(cr, 1.2);
  cairo_stroke(cr);
}

void keeli_plot_legend(const keeli_plot *p, size_t n, const char *const *names, const keeli_rgb *cols, int corner) {
  if (!n) return;
  cairo_t *cr = p->cr;
  double w = 0;
  for (size_t k = 0; k < n; k++) {
    double tw = keeli_text_width(cr, 11, 0, names[k]);
    if (tw > w) w = tw;
  }
  const double bw = w + 34, bh = 8 + 17 * (double)n;
  double bx = corner & 1 ? p->x1 - bw - 8 : p->x0 + 8, by = corner & 2 ? p->y1 - bh - 8 : p->y0 + 6;
  cairo_rectangle(cr, bx, by, bw, bh);
  cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
  cairo_fill_preserve(cr);
  keeli_rgb b = keeli_rgb_hex(0xd8d8d8);
  cairo_set_source_rgb(cr, b.r, b.g, b.b);
  cairo_set_line_width(cr, 1);
  cairo_stroke(cr);
  for (size_t k = 0; k < n; k++) {
    double cy = by + 13 + 17 * (double)k;
    cairo_rectangle(cr, bx + 8, cy - 5, 14, 8);
    cairo_set_source_rgb(cr, cols[k].r, cols[k].g, cols[k].b);
    cairo_fill(cr);
    keeli_text(cr, bx + 27, cy + 3, 11, 0, 0, keeli_rgb_hex(INK), names[k]);
  }
}
