/* keel — charts drawn with cairo onto its SVG surface (data/chart.c), for
 * the report pages (data/report.c). Private to the library.
 *
 * A keeli_chart is one SVG image being drawn; a keeli_plot is a plot area
 * inside it with an x and a y axis (linear, log, dates, percentages,
 * money). Drawing calls never fail one by one: cairo keeps the first
 * error in its context, and keeli_chart_finish reports it. */
#ifndef KEEL_DATA_CHART_H
#define KEEL_DATA_CHART_H

#include <cairo.h>
#include <stddef.h>

#include "keel/ctx.h"

typedef struct keeli_chart keeli_chart;

typedef struct keeli_rgb {
  double r, g, b;
} keeli_rgb;

/* The series palette: colour k (cycles). */
keeli_rgb keeli_palette(size_t k);
keeli_rgb keeli_rgb_hex(unsigned hex);

keel_status keeli_chart_new(keel_ctx *ctx, double width, double height, keeli_chart **out);
cairo_t *keeli_chart_cr(keeli_chart *c);
double keeli_chart_width(const keeli_chart *c);
double keeli_chart_height(const keeli_chart *c);
/* Ends the drawing: *svg (allocated through ctx, NUL-terminated) gets the
 * SVG document. The chart is freed either way. */
keel_status keeli_chart_finish(keel_ctx *ctx, keeli_chart *c, char **svg, size_t *len);
void keeli_chart_free(keeli_chart *c);

/* Text in the chart's font (DejaVu Sans, or what fontconfig offers
 * instead): align 0 left, 0.5 centred, 1 right of x; y is the baseline. */
void keeli_text(cairo_t *cr, double x, double y, double size, int bold, double align, keeli_rgb col,
                const char *s);
double keeli_text_width(cairo_t *cr, double size, int bold, const char *s);

typedef enum keeli_axis_kind {
  KEELI_AX_NUMBER = 0, /* plain numbers */
  KEELI_AX_PERCENT,    /* fractions shown as percentages */
  KEELI_AX_MONEY,      /* amounts: 1.2M, 350k */
  KEELI_AX_DATE,       /* days since 1970 (keel_date) */
  KEELI_AX_RATIO       /* growth multiples: 1.5x */
} keeli_axis_kind;

typedef struct keeli_axis {
  double lo, hi;
  int log;              /* logarithmic (lo > 0) */
  keeli_axis_kind kind;
  const char *label;    /* axis title, or NULL */
} keeli_axis;

typedef struct keeli_plot {
  cairo_t *cr;
  double x0, y0, x1, y1; /* the plot area in pixels (y0 top) */
  keeli_axis x, y;
} keeli_plot;

/* Widens [*lo, *hi] to include v (NaN ignored). */
void keeli_range_add(double *lo, double *hi, double v);
/* Pads a range by frac of its width on both sides (a zero width gets a
 * small one); with log, in log space. */
void keeli_range_pad(double *lo, double *hi, double frac, int log);

/* A plot filling the rectangle (x, y, w, h) of the chart, with room for
 * the title above and the tick labels: draws the title, the grid, the
 * ticks and their labels. */
void keeli_plot_init(keeli_plot *p, cairo_t *cr, double x, double y, double w, double h, const char *title,
                     const char *subtitle, keeli_axis xa, keeli_axis ya);
double keeli_px(const keeli_plot *p, double x);
double keeli_py(const keeli_plot *p, double y);
/* Clips drawing to the plot area (cairo_save); keeli_plot_unclip restores. */
void keeli_plot_clip(const keeli_plot *p);
void keeli_plot_unclip(const keeli_plot *p);

/* A polyline over the finite points (a NaN breaks the line). */
void keeli_plot_line(const keeli_plot *p, size_t n, const double *xs, const double *ys, keeli_rgb col, double width,
                     int dashed);
/* The area between ylo and yhi (ylo NULL: the axis at base). */
void keeli_plot_area(const keeli_plot *p, size_t n, const double *xs, const double *ylo, const double *yhi,
                     double base, keeli_rgb col, double alpha);
/* A horizontal / vertical rule across the plot, with an optional label. */
void keeli_plot_hline(const keeli_plot *p, double y, keeli_rgb col, double width, int dashed, const char *label);
void keeli_plot_vline(const keeli_plot *p, double x, keeli_rgb col, double width, int dashed, const char *label);
/* A filled circle (marker) of radius r; outline in white. */
void keeli_plot_dot(const keeli_plot *p, double x, double y, double r, keeli_rgb col);
/* A legend box in a corner of the plot area: 0 top left, 1 top right, 2
 * bottom left, 3 bottom right. */
void keeli_plot_legend(const keeli_plot *p, size_t n, const char *const *names, const keeli_rgb *cols, int corner);

/* Number formatting for labels (the C locale must be in use). */
void keeli_fmt_axis(char *buf, size_t n, keeli_axis_kind kind, double v, double step);
void keeli_fmt_money(char *buf, size_t n, double v);

#endif
