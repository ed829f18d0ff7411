/* keel — the report command and --report of the other commands. */
#ifndef KEEL_CLI_REPORT_CMD_H
#define KEEL_CLI_REPORT_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "keel/keel.h"

/* keel report --db FILE --run ID[,ID...] --out FILE */
int cmd_report(keel_ctx *ctx, int argc, char **argv);
extern const char REPORT_HELP[];

/* Writes the report of runs ids of database db to out; prints where
 * unless quiet. Returns 0, or 1 with keel's message printed. */
int cli_write_report(keel_ctx *ctx, const char *db, const int64_t *ids, size_t n, const char *out, int quiet);

/* A scratch database for --report without --db: a new file name in
 * TMPDIR (buf, size n), and its removal with its WAL files. */
int cli_scratch_db(char *buf, size_t n);
void cli_scratch_db_remove(const char *path);

#endif
