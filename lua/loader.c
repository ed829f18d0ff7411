/* keel — the strategy loader for run descriptions, batches and stress runs:
 * {"lua": module, "params": {...}} becomes a Lua strategy in its own
 * sandbox. */
#include "keel/lua.h"

#include "core/internal.h"

static keel_status lua_loader(void *ud, keel_ctx *ctx, const char *module, const char *params_json,
                              keel_strategy **out, int *has_schedule, keel_schedule *schedule) {
  const keel_lua_config *cfg = ud;
  keel_status st = keel_lua_strategy_load(ctx, cfg, module, params_json, out);
  if (st) return st;
  *has_schedule = keel_lua_strategy_schedule(*out, schedule);
  return KEEL_OK;
}

keel_strategy_loader keel_lua_loader(const keel_lua_config *cfg) {
  return (keel_strategy_loader){lua_loader, (void *)cfg};
}
