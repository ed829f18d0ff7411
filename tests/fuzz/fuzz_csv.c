/* libFuzzer target for the CSV loader: the first byte picks the options,
 * the rest is the file. Everything made is freed; any crash, leak or
 * undefined behaviour is a bug. Also linked with replay.c into a plain
 * program that runs the seed corpus on every test run. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "keel/keel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  keel_csv_options o;
  keel_csv_options_default(&o);
  uint8_t sel = data[0];
  o.layout = (keel_csv_layout)(sel % 3);
  static const char delims[4] = {0, ',', ';', '\t'};
  o.delimiter = delims[(sel >> 2) & 3];
  if (sel & 0x10) {
    /* small limits exercise the limit paths */
    o.max_field = 16;
    o.max_line = 64;
    o.max_columns = 4;
    o.max_cells = 32;
  }
  keel_ctx *ctx = NULL;
  if (keel_ctx_new(NULL, &ctx) != KEEL_OK) return 0;
  keel_panel *p = NULL;
  keel_status st = keel_panel_parse_csv(ctx, "fuzz.csv", (const char *)data + 1, size - 1, &o, &p);
  if (st == KEEL_OK) {
    /* a returned panel is valid: sorted dates, positive or missing prices */
    size_t nd = keel_panel_ndates(p), na = keel_panel_nassets(p);
    const keel_date *d = keel_panel_dates(p);
    for (size_t i = 1; i < nd; i++)
      if (d[i] <= d[i - 1]) __builtin_trap();
    for (size_t k = 0; k < nd * na; k++) {
      double v = keel_panel_prices(p)[k];
      if (!(v > 0) && v == v) __builtin_trap();
    }
  } else if (p != NULL || keel_errmsg(ctx)[0] == '\0') {
    __builtin_trap(); /* failure must leave nothing and say why */
  }
  keel_panel_free(p);
  keel_ctx_free(ctx);
  return 0;
}
