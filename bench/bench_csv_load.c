/* Times keel_panel_read_csv on one file: best of R loads.
 * Usage: bench_csv_load FILE [R]. Prints "keel_load_s=<seconds>". */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "keel/keel.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_csv_load FILE [REPEATS]\n");
    return 2;
  }
  int reps = argc > 2 ? atoi(argv[2]) : 5;
  keel_ctx *ctx = NULL;
  if (keel_ctx_new(NULL, &ctx) != KEEL_OK) return 1;
  double best = 1e30;
  size_t nd = 0, na = 0;
  for (int r = 0; r < reps; r++) {
    keel_panel *p = NULL;
    double t0 = now();
    if (keel_panel_read_csv(ctx, argv[1], NULL, &p) != KEEL_OK) {
      fprintf(stderr, "%s\n", keel_errmsg(ctx));
      return 1;
    }
    double t = now() - t0;
    if (t < best) best = t;
    nd = keel_panel_ndates(p);
    na = keel_panel_nassets(p);
    keel_panel_free(p);
  }
  printf("rows=%zu cols=%zu keel_load_s=%.6f\n", nd, na, best);
  keel_ctx_free(ctx);
  return 0;
}
