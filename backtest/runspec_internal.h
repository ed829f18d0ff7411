/* keel — run descriptions from an already parsed JSON value (for the batch
 * runner, whose jobs hold the run description inside a larger object).
 * Not installed. */
#ifndef KEEL_RUNSPEC_INTERNAL_H
#define KEEL_RUNSPEC_INTERNAL_H

#include <jansson.h>

#include "keel/runspec.h"

/* As keel_runspec_parse, from the value run; messages read
 * "name: root.path: what" (root may be "" for a top-level description). */
keel_status keeli_runspec_from_json(keel_ctx *ctx, const char *name, const char *root, const json_t *run,
                                    const keel_panel *closes, const keel_panel *opens,
                                    const keel_strategy_loader *loader, keel_runspec **out);

#endif
