/* A tiny program built against an installed keel (tests/install). */
#include <keel/keel.h>
#include <stdio.h>

int main(void) {
  keel_ctx *ctx = NULL;
  if (keel_ctx_new(NULL, &ctx) != KEEL_OK) return 1;
  keel_date dates[3] = {18000, 18001, 18002};
  double px[3] = {100, 110, 99};
  keel_panel *p = NULL;
  if (keel_panel_new(ctx, 3, 1, dates, (const char *const[]){"X"}, px, &p) != KEEL_OK) return 1;
  double w[1] = {1};
  keel_backtest_config cfg;
  keel_backtest_config_default(&cfg);
  cfg.weights = w;
  cfg.nweights = 1;
  keel_backtest_result *r = NULL;
  if (keel_backtest_run(ctx, p, &cfg, &r) != KEEL_OK) return 1;
  printf("keel %s total_return %.4f\n", keel_version(), keel_backtest_metrics(r)->total_return);
  keel_backtest_result_free(r);
  keel_panel_free(p);
  keel_ctx_free(ctx);
  return keel_version_number() == KEEL_VERSION_NUMBER ? 0 : 1;
}
