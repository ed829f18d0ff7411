/* keel — price panel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "keel/panel.h"

struct keel_panel {
  keeli_heap heap;
  size_t ndates, nassets;
  keel_date *dates;
  double *prices;  /* ndates x nassets, row-major */
  char **symbols;  /* nassets strings, in one block after the pointers */
  keel_asset_meta *meta;
  size_t *first_valid;
  size_t *complete_from;
};

static int cmp_sym(const void *a, const void *b, void *arg) {
  const char *const *syms = arg;
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  int c = strcmp(syms[i], syms[j]);
  return c ? c : (i > j) - (i < j);
}

/* Symbols must be unique: sort their indices (O(n log n), a header of many
 * thousands of columns stays fast) and compare neighbours. */
static keel_status check_unique(keel_ctx *ctx, size_t n, const char *const *symbols) {
  if (n < 2) return KEEL_OK;
  if (n <= 16) {
    for (size_t j = 1; j < n; j++)
      for (size_t k = 0; k < j; k++)
        if (strcmp(symbols[j], symbols[k]) == 0)
          return keeli_error(ctx, KEEL_EINVAL, "symbol '%s' appears twice (assets %zu and %zu)", symbols[j], k, j);
    return KEEL_OK;
  }
  size_t *idx = keeli_alloc_array(ctx, n, sizeof *idx);
  if (!idx) return KEEL_ENOMEM;
  for (size_t j = 0; j < n; j++) idx[j] = j;
  qsort_r(idx, n, sizeof *idx, cmp_sym, (void *)symbols);
  keel_status st = KEEL_OK;
  for (size_t j = 1; j < n && !st; j++)
    if (strcmp(symbols[idx[j]], symbols[idx[j - 1]]) == 0)
      st = keeli_error(ctx, KEEL_EINVAL, "symbol '%s' appears twice (assets %zu and %zu)", symbols[idx[j]],
                       idx[j - 1], idx[j]);
  keeli_free(ctx, idx);
  return st;
}

void keel_panel_free(keel_panel *p) {
  if (!p) return;
  keeli_heap h = p->heap;
  keeli_heap_free(&h, p->dates);
  keeli_heap_free(&h, p->prices);
  keeli_heap_free(&h, p->symbols);
  keeli_heap_free(&h, p->meta);
  keeli_heap_free(&h, p->first_valid);
  keeli_heap_free(&h, p->complete_from);
  keeli_heap_free(&h, p);
}

keel_status keel_panel_new(keel_ctx *ctx, size_t ndates, size_t nassets, const keel_date *dates,
                           const char *const *symbols, const double *prices, keel_panel **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_panel_new: out is NULL");
  *out = NULL;
  if (ndates == 0 || nassets == 0)
    return keeli_error(ctx, KEEL_EINVAL, "panel needs at least one date and one asset (got %zu x %zu)",
                       ndates, nassets);
  if (!dates || !symbols) return keeli_error(ctx, KEEL_EINVAL, "keel_panel_new: dates or symbols is NULL");
  if (nassets > SIZE_MAX / ndates / sizeof(double))
    return keeli_error(ctx, KEEL_ENOMEM, "panel of %zu x %zu is too large", ndates, nassets);
  for (size_t i = 1; i < ndates; i++) {
    if (dates[i] <= dates[i - 1]) {
      char a[KEEL_DATE_BUFSIZE], b[KEEL_DATE_BUFSIZE];
      keel_date_format(dates[i - 1], a);
      keel_date_format(dates[i], b);
      return keeli_error(ctx, KEEL_EINVAL, "dates must be strictly increasing: row %zu (%s) follows %s", i, b,
                         a);
    }
  }
  size_t symbytes = 0;
  for (size_t j = 0; j < nassets; j++) {
    if (!symbols[j] || !symbols[j][0])
      return keeli_error(ctx, KEEL_EINVAL, "asset %zu has an empty symbol", j);
    symbytes += strlen(symbols[j]) + 1;
  }
  keel_status st = check_unique(ctx, nassets, symbols);
  if (st) return st;
  if (prices) {
    for (size_t i = 0; i < ndates; i++)
      for (size_t j = 0; j < nassets; j++) {
        double v = prices[i * nassets + j];
        if (isnan(v)) continue;
        if (!isfinite(v) || v <= 0) {
          char a[KEEL_DATE_BUFSIZE];
          keel_date_format(dates[i], a);
          return keeli_error(ctx, KEEL_EINVAL, "price of %s on %s is %g: prices must be finite and > 0",
                             symbols[j], a, v);
        }
      }
  }

  keel_panel *p = keeli_calloc(ctx, 1, sizeof *p);
  if (!p) return KEEL_ENOMEM;
  p->heap = *keeli_ctx_heap(ctx);
  p->ndates = ndates;
  p->nassets = nassets;
  p->dates = keeli_alloc_array(ctx, ndates, sizeof *p->dates);
  p->prices = keeli_alloc_array(ctx, ndates * nassets, sizeof *p->prices);
  p->symbols = keeli_alloc(ctx, nassets * sizeof(char *) + symbytes);
  p->meta = keeli_calloc(ctx, nassets, sizeof *p->meta);
  p->first_valid = keeli_alloc_array(ctx, nassets, sizeof *p->first_valid);
  p->complete_from = keeli_alloc_array(ctx, nassets, sizeof *p->complete_from);
  if (!p->dates || !p->prices || !p->symbols || !p->meta || !p->first_valid || !p->complete_from) {
    keel_panel_free(p);
    return KEEL_ENOMEM;
  }
  memcpy(p->dates, dates, ndates * sizeof *dates);
  if (prices) {
    memcpy(p->prices, prices, ndates * nassets * sizeof *prices);
  } else {
    for (size_t k = 0; k < ndates * nassets; k++) p->prices[k] = NAN;
  }
  char *s = (char *)(p->symbols + nassets);
  for (size_t j = 0; j < nassets; j++) {
    size_t n = strlen(symbols[j]) + 1;
    memcpy(s, symbols[j], n);
    p->symbols[j] = s;
    s += n;
  }
  keeli_panel_refresh(p);
  *out = p;
  return KEEL_OK;
}

void keeli_panel_refresh(keel_panel *p) {
  const size_t ndates = p->ndates, nassets = p->nassets;
  for (size_t j = 0; j < nassets; j++) {
    size_t i = 0;
    while (i < ndates && isnan(p->prices[i * nassets + j])) i++;
    p->first_valid[j] = i;
    i = ndates;
    while (i > 0 && !isnan(p->prices[(i - 1) * nassets + j])) i--;
    p->complete_from[j] = i;
  }
}

double *keeli_panel_prices_mut(keel_panel *p) { return p->prices; }

size_t keel_panel_ndates(const keel_panel *p) { return p->ndates; }
size_t keel_panel_nassets(const keel_panel *p) { return p->nassets; }
const keel_date *keel_panel_dates(const keel_panel *p) { return p->dates; }
const double *keel_panel_prices(const keel_panel *p) { return p->prices; }
double keel_panel_price(const keel_panel *p, size_t i, size_t j) { return p->prices[i * p->nassets + j]; }
const char *keel_panel_symbol(const keel_panel *p, size_t j) { return p->symbols[j]; }
size_t keel_panel_first_valid(const keel_panel *p, size_t j) { return p->first_valid[j]; }
size_t keel_panel_complete_from(const keel_panel *p, size_t j) { return p->complete_from[j]; }

int keel_panel_find(const keel_panel *p, const char *sym, size_t *j) {
  for (size_t k = 0; k < p->nassets; k++)
    if (strcmp(p->symbols[k], sym) == 0) {
      if (j) *j = k;
      return 1;
    }
  return 0;
}

const keel_asset_meta *keel_panel_meta(const keel_panel *p, size_t j) { return &p->meta[j]; }

keel_status keel_panel_set_meta(keel_ctx *ctx, keel_panel *p, size_t j, const keel_asset_meta *meta) {
  if (j >= p->nassets) return keeli_error(ctx, KEEL_EINVAL, "asset index %zu out of range (%zu assets)", j, p->nassets);
  if (!(meta->lot >= 0) || !isfinite(meta->lot) || !(meta->min_trade >= 0) || !isfinite(meta->min_trade))
    return keeli_error(ctx, KEEL_EINVAL, "asset %s: lot and min_trade must be finite and >= 0", p->symbols[j]);
  if (memchr(meta->currency, '\0', sizeof meta->currency) == NULL)
    return keeli_error(ctx, KEEL_EINVAL, "asset %s: currency is not NUL-terminated", p->symbols[j]);
  p->meta[j] = *meta;
  return KEEL_OK;
}

void keel_panel_hash(const keel_panel *p, char out[KEEL_PANEL_HASH_BUFSIZE]) {
  static const char hex[] = "0123456789abcdef";
  unsigned long long h = KEEL_FNV_OFFSET;
  unsigned long long dims[2] = {p->ndates, p->nassets};
  h = keeli_fnv1a(h, dims, sizeof dims);
  h = keeli_fnv1a(h, p->dates, p->ndates * sizeof *p->dates);
  for (size_t j = 0; j < p->nassets; j++) h = keeli_fnv1a(h, p->symbols[j], strlen(p->symbols[j]) + 1);
  /* NaN payloads may differ; hash every NaN alike. */
  for (size_t k = 0; k < p->ndates * p->nassets; k++) {
    double v = isnan(p->prices[k]) ? NAN : p->prices[k];
    h = keeli_fnv1a(h, &v, sizeof v);
  }
  for (int i = 15; i >= 0; i--) {
    out[i] = hex[h & 15];
    h >>= 4;
  }
  out[16] = '\0';
}
