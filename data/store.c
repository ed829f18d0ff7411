/* keel — the SQLite store: imported price series and run results.
 *
 * One connection per keel_store, opened with SQLITE_OPEN_NOMUTEX: a store
 * handle is used by one thread at a time, like a keel_ctx. SQLite
 * allocates with its own allocator (its hook is process-global, so keel
 * leaves it alone). Schema and guarantees: docs/store.md. */
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <string.h>

#include "core/internal.h"
#include "data/store_internal.h"
#include "keel/store.h"
#include "keel/version.h"

struct keel_store {
  keeli_heap heap;
  sqlite3 *db;
  char *path;
  int version;
};

/* Migrations: migration k takes the schema from version k to k + 1. Each
 * runs in its own transaction together with the user_version bump. */
static const char *const MIGRATIONS[] = {
    /* 0 -> 1 */
    "CREATE TABLE keel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
    "CREATE TABLE datasets (\n"
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, hash TEXT NOT NULL,\n"
    "  nrows INTEGER NOT NULL, ncols INTEGER NOT NULL,\n"
    "  first_date TEXT NOT NULL, last_date TEXT NOT NULL,\n"
    "  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')));\n"
    "CREATE TABLE dataset_assets (\n"
    "  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,\n"
    "  idx INTEGER NOT NULL, symbol TEXT NOT NULL, currency TEXT NOT NULL DEFAULT '',\n"
    "  lot REAL NOT NULL DEFAULT 0, min_trade REAL NOT NULL DEFAULT 0,\n"
    "  PRIMARY KEY (dataset_id, idx), UNIQUE (dataset_id, symbol)) WITHOUT ROWID;\n"
    "CREATE TABLE prices (\n"
    "  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,\n"
    "  asset_idx INTEGER NOT NULL, date TEXT NOT NULL, price REAL NOT NULL,\n"
    "  PRIMARY KEY (dataset_id, asset_idx, date)) WITHOUT ROWID;\n"
    "CREATE TABLE runs (\n"
    "  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, strategy TEXT NOT NULL,\n"
    "  params TEXT NOT NULL CHECK (json_valid(params)), dataset TEXT NOT NULL,\n"
    "  dataset_hash TEXT NOT NULL, seed INTEGER NOT NULL, keel_version TEXT NOT NULL,\n"
    "  start_date TEXT NOT NULL, end_date TEXT NOT NULL, status TEXT NOT NULL,\n"
    "  npoints INTEGER NOT NULL, ntrades INTEGER NOT NULL,\n"
    "  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')));\n"
    "CREATE TABLE metrics (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  name TEXT NOT NULL, value REAL, PRIMARY KEY (run_id, name)) WITHOUT ROWID;\n"
    "CREATE TABLE equity (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  date TEXT NOT NULL, value REAL NOT NULL, cash REAL,\n"
    "  PRIMARY KEY (run_id, date)) WITHOUT ROWID;\n"
    "CREATE TABLE trades (\n"
    "  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  date TEXT NOT NULL, symbol TEXT NOT NULL, reason TEXT NOT NULL,\n"
    "  shares REAL NOT NULL, price REAL NOT NULL, notional REAL NOT NULL, cost REAL NOT NULL);\n"
    "CREATE INDEX trades_run ON trades(run_id, date);\n",
    /* 1 -> 2: accounts of sub-accounts, events, the optimiser audit trail,
     * batch job identity */
    "ALTER TABLE runs ADD COLUMN job_hash TEXT;\n"
    "ALTER TABLE runs ADD COLUMN error TEXT;\n"
    "ALTER TABLE runs ADD COLUMN nsubs INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE runs ADD COLUMN nevents INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE runs ADD COLUMN nopt_calls INTEGER NOT NULL DEFAULT 0;\n"
    "CREATE UNIQUE INDEX runs_job_hash ON runs(job_hash) WHERE job_hash IS NOT NULL;\n"
    "ALTER TABLE equity ADD COLUMN flow REAL;\n"
    "ALTER TABLE trades ADD COLUMN sub INTEGER NOT NULL DEFAULT 0;\n"
    "CREATE TABLE subaccounts (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  idx INTEGER NOT NULL, name TEXT NOT NULL, capital REAL NOT NULL,\n"
    "  PRIMARY KEY (run_id, idx)) WITHOUT ROWID;\n"
    "CREATE TABLE sub_metrics (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  sub INTEGER NOT NULL, name TEXT NOT NULL, value REAL,\n"
    "  PRIMARY KEY (run_id, sub, name)) WITHOUT ROWID;\n"
    "CREATE TABLE sub_equity (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  sub INTEGER NOT NULL, date TEXT NOT NULL, value REAL NOT NULL, cash REAL, flow REAL,\n"
    "  PRIMARY KEY (run_id, sub, date)) WITHOUT ROWID;\n"
    "CREATE TABLE events (\n"
    "  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  date TEXT NOT NULL, sub INTEGER NOT NULL, symbol TEXT, kind TEXT NOT NULL, stop TEXT,\n"
    "  price REAL, level REAL);\n"
    "CREATE INDEX events_run ON events(run_id, date);\n"
    "CREATE TABLE optimizer_calls (\n"
    "  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  date TEXT NOT NULL, sub INTEGER NOT NULL, status TEXT NOT NULL,\n"
    "  iterations INTEGER NOT NULL, solves INTEGER NOT NULL, polished INTEGER NOT NULL,\n"
    "  res_prim REAL, res_dual REAL, ret REAL, vol REAL);\n"
    "CREATE INDEX optimizer_calls_run ON optimizer_calls(run_id, date);\n",
    /* 2 -> 3: Monte Carlo stress runs */
    "CREATE TABLE stress_runs (\n"
    "  run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  generator TEXT NOT NULL, scenario TEXT NOT NULL, npaths INTEGER NOT NULL, nsteps INTEGER NOT NULL,\n"
    "  steps_per_year REAL NOT NULL, years REAL NOT NULL, capital REAL NOT NULL,\n"
    "  goal REAL, p_goal REAL, p_goal_any REAL, loss_threshold REAL NOT NULL, p_loss REAL,\n"
    "  es_level REAL NOT NULL, mean_in REAL, mean_out REAL);\n"
    "CREATE TABLE stress_stats (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  stat TEXT NOT NULL, measure TEXT NOT NULL, value REAL,\n"
    "  PRIMARY KEY (run_id, stat, measure)) WITHOUT ROWID;\n"
    "CREATE TABLE stress_bands (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  step INTEGER NOT NULL, date TEXT NOT NULL,\n"
    "  p05 REAL, p25 REAL, p50 REAL, p75 REAL, p95 REAL,\n"
    "  PRIMARY KEY (run_id, step)) WITHOUT ROWID;\n",
    /* 3 -> 4: what the reports draw: a benchmark curve, the sub-accounts'
     * weights over time, the stress runs' terminal-wealth histogram, and
     * optimiser runs (their portfolio, assets and frontier) */
    "ALTER TABLE runs ADD COLUMN benchmark TEXT;\n"
    "ALTER TABLE equity ADD COLUMN benchmark REAL;\n"
    "CREATE TABLE sub_weights (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  sub INTEGER NOT NULL, date TEXT NOT NULL, symbol TEXT NOT NULL, weight REAL NOT NULL,\n"
    "  PRIMARY KEY (run_id, sub, date, symbol)) WITHOUT ROWID;\n"
    "CREATE TABLE stress_hist (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  bin INTEGER NOT NULL, lo REAL, hi REAL, share REAL NOT NULL,\n"
    "  PRIMARY KEY (run_id, bin)) WITHOUT ROWID;\n"
    "CREATE TABLE opt_runs (\n"
    "  run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  objective TEXT NOT NULL, cov TEXT NOT NULL, risk_free REAL NOT NULL,\n"
    "  ret REAL, vol REAL, sharpe REAL, turnover REAL, cost REAL, cash REAL,\n"
    "  current_ret REAL, current_vol REAL);\n"
    "CREATE TABLE opt_assets (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  idx INTEGER NOT NULL, symbol TEXT NOT NULL, mu REAL NOT NULL, vol REAL NOT NULL,\n"
    "  weight REAL, current REAL, risk_contrib REAL,\n"
    "  PRIMARY KEY (run_id, idx)) WITHOUT ROWID;\n"
    "CREATE TABLE opt_frontier (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  point INTEGER NOT NULL, ret REAL NOT NULL, vol REAL NOT NULL,\n"
    "  PRIMARY KEY (run_id, point)) WITHOUT ROWID;\n"
    "CREATE TABLE opt_frontier_weights (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  point INTEGER NOT NULL, idx INTEGER NOT NULL, weight REAL NOT NULL,\n"
    "  PRIMARY KEY (run_id, point, idx)) WITHOUT ROWID;\n",
};
#define NMIGRATIONS (sizeof MIGRATIONS / sizeof MIGRATIONS[0])
_Static_assert(NMIGRATIONS == KEEL_STORE_SCHEMA_VERSION, "one migration per schema version");

static keel_status db_error(keel_ctx *ctx, const keel_store *s, const char *doing) {
  return keeli_error(ctx, KEEL_EIO, "%s: %s: %s", s->path, doing, sqlite3_errmsg(s->db));
}

static int exec(keel_store *s, const char *sql) { return sqlite3_exec(s->db, sql, NULL, NULL, NULL); }

static void rollback(keel_store *s) {
  if (!sqlite3_get_autocommit(s->db)) exec(s, "ROLLBACK");
}

/* A transaction's statements, one at a time: the next one into *q, the
 * last one finalised first. */
static int prepare_next(keel_store *s, sqlite3_stmt **q, const char *sql) {
  sqlite3_finalize(*q);
  *q = NULL;
  return sqlite3_prepare_v2(s->db, sql, -1, q, NULL);
}

/* The end of a transaction of statements in *q: the last finalised, then
 * COMMIT. Returns an SQLite code. */
static int tx_commit(keel_store *s, sqlite3_stmt **q) {
  sqlite3_finalize(*q);
  *q = NULL;
  return exec(s, "COMMIT");
}

/* A failure while doing, inside a transaction: the error (read before the
 * statement q is finalised), then the rollback. */
static keel_status tx_fail(keel_ctx *ctx, keel_store *s, sqlite3_stmt *q, const char *doing) {
  const keel_status st = db_error(ctx, s, doing);
  sqlite3_finalize(q);
  rollback(s);
  return st;
}

/* Reads one integer from a query; returns an SQLite code. */
static int query_int(keel_store *s, const char *sql, long long *out) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *out = sqlite3_column_int64(st, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc;
}

void keel_store_close(keel_store *s) {
  if (!s) return;
  keeli_heap h = s->heap;
  sqlite3_close_v2(s->db);
  keeli_heap_free(&h, s->path);
  keeli_heap_free(&h, s);
}

int keel_store_schema_version(const keel_store *s) { return s->version; }

sqlite3 *keeli_store_db(keel_store *s) { return s->db; }
const char *keeli_store_path(const keel_store *s) { return s->path; }

static keel_status migrate(keel_ctx *ctx, keel_store *s) {
  long long v = 0, ntables = 0;
  if (query_int(s, "PRAGMA user_version", &v) != SQLITE_OK) {
    int code = sqlite3_extended_errcode(s->db) & 0xff;
    if (code == SQLITE_NOTADB)
      return keeli_error(ctx, KEEL_EIO, "%s: not a keel database (not an SQLite file)", s->path);
    return db_error(ctx, s, "reading the schema version");
  }
  if (v > KEEL_STORE_SCHEMA_VERSION)
    return keeli_error(ctx, KEEL_EINVAL,
                       "%s: schema version %lld was made by a newer keel (this one knows up to %d)", s->path, v,
                       KEEL_STORE_SCHEMA_VERSION);
  if (v == 0) {
    if (query_int(s, "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'", &ntables) != SQLITE_OK)
      return db_error(ctx, s, "reading the schema");
    if (ntables > 0)
      return keeli_error(ctx, KEEL_EINVAL, "%s: an SQLite database that is not keel's (it has %lld other objects)",
                         s->path, ntables);
  }
  for (long long k = v; k < KEEL_STORE_SCHEMA_VERSION; k++) {
    char bump[64];
    snprintf(bump, sizeof bump, "PRAGMA user_version = %lld", k + 1);
    if (exec(s, "BEGIN IMMEDIATE") != SQLITE_OK) return db_error(ctx, s, "starting a migration");
    if (exec(s, MIGRATIONS[k]) != SQLITE_OK || exec(s, bump) != SQLITE_OK) {
      keel_status st = db_error(ctx, s, "migrating the schema");
      rollback(s);
      return st;
    }
    if (k == 0) {
      char sql[256];
      snprintf(sql, sizeof sql, "INSERT INTO keel_meta VALUES ('created_by', 'keel %s')", KEEL_VERSION);
      if (exec(s, sql) != SQLITE_OK) {
        keel_status st = db_error(ctx, s, "migrating the schema");
        rollback(s);
        return st;
      }
    }
    if (exec(s, "COMMIT") != SQLITE_OK) {
      keel_status st = db_error(ctx, s, "committing a migration");
      rollback(s);
      return st;
    }
  }
  s->version = KEEL_STORE_SCHEMA_VERSION;
  return KEEL_OK;
}

keel_status keel_store_open(keel_ctx *ctx, const char *path, keel_store **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_store_open: out is NULL");
  *out = NULL;
  if (!path || !*path) return keeli_error(ctx, KEEL_EINVAL, "keel_store_open: no path");
  keel_store *s = keeli_calloc(ctx, 1, sizeof *s);
  if (!s) return KEEL_ENOMEM;
  s->heap = *keeli_ctx_heap(ctx);
  s->path = keeli_strdup(ctx, path);
  if (!s->path) {
    keel_store_close(s);
    return KEEL_ENOMEM;
  }
  int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  keel_status st = KEEL_OK;
  if (rc != SQLITE_OK) {
    st = s->db ? db_error(ctx, s, "cannot open") : keeli_error(ctx, KEEL_ENOMEM, "%s: out of memory", path);
    keel_store_close(s);
    return st;
  }
  sqlite3_extended_result_codes(s->db, 1);
  sqlite3_busy_timeout(s->db, 5000);
  st = migrate(ctx, s);
  if (st == KEEL_OK) {
    char *jm = NULL;
    sqlite3_stmt *q;
    /* WAL: readers don't block the writer; several processes may share a results file */
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &q, NULL) == SQLITE_OK) {
      if (sqlite3_step(q) == SQLITE_ROW) jm = (char *)sqlite3_column_text(q, 0);
      int wal = jm && strcmp(jm, "wal") == 0;
      sqlite3_finalize(q);
      if (!wal) st = keeli_error(ctx, KEEL_EIO, "%s: cannot switch the database to WAL mode", path);
    } else {
      st = db_error(ctx, s, "setting WAL mode");
    }
    if (st == KEEL_OK && (exec(s, "PRAGMA foreign_keys=ON") != SQLITE_OK || exec(s, "PRAGMA synchronous=NORMAL")))
      st = db_error(ctx, s, "setting pragmas");
  }
  if (st != KEEL_OK) {
    keel_store_close(s);
    return st;
  }
  *out = s;
  return KEEL_OK;
}

/* ---- datasets ----------------------------------------------------------- */

/* A date as ISO text; KEEL_DATE_NONE (an error run's start and end) as ''. */
static int bind_date(sqlite3_stmt *q, int col, keel_date d) {
  if (d == KEEL_DATE_NONE) return sqlite3_bind_text(q, col, "", 0, SQLITE_STATIC);
  char b[KEEL_DATE_BUFSIZE];
  keel_date_format(d, b);
  return sqlite3_bind_text(q, col, b, -1, SQLITE_TRANSIENT);
}

keel_status keel_store_put_dataset(keel_ctx *ctx, keel_store *s, const char *name, const keel_panel *p) {
  if (!s || !name || !*name || !p) return keeli_error(ctx, KEEL_EINVAL, "keel_store_put_dataset: bad argument");
  const size_t nd = keel_panel_ndates(p), na = keel_panel_nassets(p);
  const keel_date *dates = keel_panel_dates(p);
  const double *px = keel_panel_prices(p);
  char hash[KEEL_PANEL_HASH_BUFSIZE];
  keel_panel_hash(p, hash);
  sqlite3_stmt *qd = NULL, *qa = NULL, *qp = NULL, *qdel = NULL;
  keel_status st = KEEL_OK;
  const char *doing = "starting a transaction";
  if (exec(s, "BEGIN IMMEDIATE") != SQLITE_OK) goto fail;
  doing = "replacing the dataset";
  if (sqlite3_prepare_v2(s->db, "DELETE FROM datasets WHERE name = ?1", -1, &qdel, NULL) != SQLITE_OK) goto fail;
  sqlite3_bind_text(qdel, 1, name, -1, SQLITE_STATIC);
  if (sqlite3_step(qdel) != SQLITE_DONE) goto fail;
  doing = "inserting the dataset";
  if (sqlite3_prepare_v2(s->db,
                         "INSERT INTO datasets(name, hash, nrows, ncols, first_date, last_date) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                         -1, &qd, NULL) != SQLITE_OK)
    goto fail;
  sqlite3_bind_text(qd, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(qd, 2, hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64(qd, 3, (sqlite3_int64)nd);
  sqlite3_bind_int64(qd, 4, (sqlite3_int64)na);
  bind_date(qd, 5, dates[0]);
  bind_date(qd, 6, dates[nd - 1]);
  if (sqlite3_step(qd) != SQLITE_DONE) goto fail;
  sqlite3_int64 id = sqlite3_last_insert_rowid(s->db);
  if (sqlite3_prepare_v2(s->db, "INSERT INTO dataset_assets VALUES (?1, ?2, ?3, ?4, ?5, ?6)", -1, &qa, NULL) !=
          SQLITE_OK ||
      sqlite3_prepare_v2(s->db, "INSERT INTO prices VALUES (?1, ?2, ?3, ?4)", -1, &qp, NULL) != SQLITE_OK)
    goto fail;
  for (size_t j = 0; j < na; j++) {
    const keel_asset_meta *m = keel_panel_meta(p, j);
    sqlite3_reset(qa);
    sqlite3_bind_int64(qa, 1, id);
    sqlite3_bind_int64(qa, 2, (sqlite3_int64)j);
    sqlite3_bind_text(qa, 3, keel_panel_symbol(p, j), -1, SQLITE_STATIC);
    sqlite3_bind_text(qa, 4, m->currency, -1, SQLITE_STATIC);
    sqlite3_bind_double(qa, 5, m->lot);
    sqlite3_bind_double(qa, 6, m->min_trade);
    if (sqlite3_step(qa) != SQLITE_DONE) goto fail;
  }
  doing = "inserting prices";
  sqlite3_bind_int64(qp, 1, id);
  for (size_t j = 0; j < na; j++) {
    for (size_t i = 0; i < nd; i++) {
      double v = px[i * na + j];
      if (isnan(v)) continue;
      sqlite3_reset(qp); /* binding needs a reset statement */
      sqlite3_bind_int64(qp, 2, (sqlite3_int64)j);
      bind_date(qp, 3, dates[i]);
      sqlite3_bind_double(qp, 4, v);
      if (sqlite3_step(qp) != SQLITE_DONE) goto fail;
    }
  }
  doing = "committing the dataset";
  if (exec(s, "COMMIT") != SQLITE_OK) goto fail;
  goto done;
fail:
  st = db_error(ctx, s, doing);
  rollback(s);
done:
  sqlite3_finalize(qd);
  sqlite3_finalize(qa);
  sqlite3_finalize(qp);
  sqlite3_finalize(qdel);
  return st;
}

static int cmp_date(const void *a, const void *b) {
  keel_date x = *(const keel_date *)a, y = *(const keel_date *)b;
  return (x > y) - (x < y);
}

static int read_date(sqlite3_stmt *q, int col, keel_date *out) {
  const char *t = (const char *)sqlite3_column_text(q, col);
  return t ? keel_date_parse(t, strlen(t), out) : -1;
}

keel_status keel_store_get_dataset(keel_ctx *ctx, keel_store *s, const char *name, keel_panel **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_store_get_dataset: out is NULL");
  *out = NULL;
  if (!s || !name) return keeli_error(ctx, KEEL_EINVAL, "keel_store_get_dataset: bad argument");
  sqlite3_stmt *q = NULL;
  keel_status st = KEEL_OK;
  char **syms = NULL;
  keel_asset_meta *meta = NULL;
  keel_date *dates = NULL;
  double *px = NULL;
  size_t na = 0, nd = 0;
  sqlite3_int64 id;
  const char *doing = "reading the dataset";
  if (exec(s, "BEGIN") != SQLITE_OK) goto fail;
  if (sqlite3_prepare_v2(s->db, "SELECT id, nrows, ncols FROM datasets WHERE name = ?1", -1, &q, NULL) != SQLITE_OK)
    goto fail;
  sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(q);
  if (rc == SQLITE_DONE) {
    st = keeli_error(ctx, KEEL_EINVAL, "%s: no dataset named '%s'", s->path, name);
    goto done;
  }
  if (rc != SQLITE_ROW) goto fail;
  id = sqlite3_column_int64(q, 0);
  nd = (size_t)sqlite3_column_int64(q, 1);
  na = (size_t)sqlite3_column_int64(q, 2);
  sqlite3_finalize(q);
  q = NULL;
  if (nd == 0 || na == 0) {
    st = keeli_error(ctx, KEEL_EIO, "%s: dataset '%s' is empty or damaged", s->path, name);
    goto done;
  }
  syms = keeli_calloc(ctx, na, sizeof *syms);
  meta = keeli_calloc(ctx, na, sizeof *meta);
  dates = keeli_alloc_array(ctx, nd, sizeof *dates);
  px = keeli_alloc_array(ctx, nd, na * sizeof *px);
  if (!syms || !meta || !dates || !px) {
    st = KEEL_ENOMEM;
    goto done;
  }
  if (sqlite3_prepare_v2(s->db,
                         "SELECT idx, symbol, currency, lot, min_trade FROM dataset_assets "
                         "WHERE dataset_id = ?1 ORDER BY idx",
                         -1, &q, NULL) != SQLITE_OK)
    goto fail;
  sqlite3_bind_int64(q, 1, id);
  size_t k = 0;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    if (k >= na || (size_t)sqlite3_column_int64(q, 0) != k) break;
    syms[k] = keeli_strdup(ctx, (const char *)sqlite3_column_text(q, 1));
    if (!syms[k]) {
      st = KEEL_ENOMEM;
      goto done;
    }
    const char *cur = (const char *)sqlite3_column_text(q, 2);
    snprintf(meta[k].currency, sizeof meta[k].currency, "%s", cur ? cur : "");
    meta[k].lot = sqlite3_column_double(q, 3);
    meta[k].min_trade = sqlite3_column_double(q, 4);
    k++;
  }
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) goto fail;
  if (k != na) {
    st = keeli_error(ctx, KEEL_EIO, "%s: dataset '%s' is damaged (asset list)", s->path, name);
    goto done;
  }
  sqlite3_finalize(q);
  q = NULL;
  /* the dates: every date with a price of any asset */
  if (sqlite3_prepare_v2(s->db, "SELECT DISTINCT date FROM prices WHERE dataset_id = ?1 ORDER BY date", -1, &q,
                         NULL) != SQLITE_OK)
    goto fail;
  sqlite3_bind_int64(q, 1, id);
  size_t i = 0;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    if (i >= nd || read_date(q, 0, &dates[i]) != 0) break;
    i++;
  }
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) goto fail;
  if (i != nd) {
    st = keeli_error(ctx, KEEL_EIO, "%s: dataset '%s' is damaged (dates)", s->path, name);
    goto done;
  }
  sqlite3_finalize(q);
  q = NULL;
  for (size_t c = 0; c < nd * na; c++) px[c] = NAN;
  if (sqlite3_prepare_v2(s->db, "SELECT asset_idx, date, price FROM prices WHERE dataset_id = ?1", -1, &q, NULL) !=
      SQLITE_OK)
    goto fail;
  sqlite3_bind_int64(q, 1, id);
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    sqlite3_int64 j = sqlite3_column_int64(q, 0);
    keel_date d;
    const keel_date *at = NULL;
    if (j >= 0 && (size_t)j < na && read_date(q, 1, &d) == 0) at = bsearch(&d, dates, nd, sizeof d, cmp_date);
    if (!at) {
      st = keeli_error(ctx, KEEL_EIO, "%s: dataset '%s' is damaged (prices)", s->path, name);
      goto done;
    }
    px[(size_t)(at - dates) * na + (size_t)j] = sqlite3_column_double(q, 2);
  }
  if (rc != SQLITE_DONE) goto fail;
  exec(s, "COMMIT");
  st = keel_panel_new(ctx, nd, na, dates, (const char *const *)syms, px, out);
  for (size_t j = 0; st == KEEL_OK && j < na; j++) st = keel_panel_set_meta(ctx, *out, j, &meta[j]);
  if (st != KEEL_OK) {
    keel_panel_free(*out);
    *out = NULL;
  }
  goto done;
fail:
  st = db_error(ctx, s, doing);
done:
  sqlite3_finalize(q);
  rollback(s);
  for (size_t j = 0; syms && j < na; j++) keeli_free(ctx, syms[j]);
  keeli_free(ctx, syms);
  keeli_free(ctx, meta);
  keeli_free(ctx, dates);
  keeli_free(ctx, px);
  return st;
}

/* ---- runs --------------------------------------------------------------- */

/* A record's params_json must be one JSON object (what: the record's kind,
 * for the message). */
static keel_status check_params(keel_ctx *ctx, const char *params_json, const char *what) {
  json_error_t je;
  json_t *j = json_loads(params_json, JSON_REJECT_DUPLICATES, &je);
  if (!j) return keeli_error(ctx, KEEL_EINVAL, "%s: params_json:%d:%d: %s", what, je.line, je.column, je.text);
  int obj = json_is_object(j);
  json_decref(j);
  return obj ? KEEL_OK : keeli_error(ctx, KEEL_EINVAL, "%s: params_json must be a JSON object", what);
}

static keel_status check_record(keel_ctx *ctx, const keel_run_record *r) {
  if (!r->kind || !r->strategy || !r->params_json || !r->dataset || !r->dataset_hash || !r->status)
    return keeli_error(ctx, KEEL_EINVAL, "run record: kind, strategy, params_json, dataset, dataset_hash and "
                                         "status are required");
  keel_status st = check_params(ctx, r->params_json, "run record");
  if (st) return st;
  if (r->nmetrics && (!r->metric_names || !r->metric_values))
    return keeli_error(ctx, KEEL_EINVAL, "run record: metric arrays missing");
  for (size_t k = 0; k < r->nmetrics; k++)
    if (!r->metric_names[k] || !r->metric_names[k][0])
      return keeli_error(ctx, KEEL_EINVAL, "run record: metric %zu has no name", k);
  if (r->npoints && (!r->dates || !r->values)) return keeli_error(ctx, KEEL_EINVAL, "run record: equity arrays missing");
  for (size_t i = 0; i < r->npoints; i++) {
    if (!isfinite(r->values[i])) return keeli_error(ctx, KEEL_EINVAL, "run record: equity value %zu is not finite", i);
    if (i && r->dates[i] <= r->dates[i - 1])
      return keeli_error(ctx, KEEL_EINVAL, "run record: equity dates must increase (point %zu)", i);
  }
  if (r->ntrades && (!r->trades || !r->asset_symbols))
    return keeli_error(ctx, KEEL_EINVAL, "run record: trade arrays or asset symbols missing");
  for (size_t t = 0; t < r->ntrades; t++)
    if (r->trades[t].asset >= r->nassets || !r->asset_symbols[r->trades[t].asset])
      return keeli_error(ctx, KEEL_EINVAL, "run record: trade %zu names asset %u of %zu", t,
                         (unsigned)r->trades[t].asset, r->nassets);
  if (r->job_hash && !r->job_hash[0]) return keeli_error(ctx, KEEL_EINVAL, "run record: job_hash is empty");
  if (r->nsubs && !r->subs) return keeli_error(ctx, KEEL_EINVAL, "run record: sub-account array missing");
  for (size_t k = 0; k < r->nsubs; k++) {
    const keel_run_sub *u = &r->subs[k];
    if (!u->name || !u->name[0]) return keeli_error(ctx, KEEL_EINVAL, "run record: sub-account %zu has no name", k);
    if (u->nmetrics && (!u->metric_names || !u->metric_values))
      return keeli_error(ctx, KEEL_EINVAL, "run record: sub-account %zu: metric arrays missing", k);
    for (size_t m = 0; m < u->nmetrics; m++)
      if (!u->metric_names[m] || !u->metric_names[m][0])
        return keeli_error(ctx, KEEL_EINVAL, "run record: sub-account %zu: metric %zu has no name", k, m);
    for (size_t i = 0; u->values && i < r->npoints; i++)
      if (!isfinite(u->values[i]))
        return keeli_error(ctx, KEEL_EINVAL, "run record: sub-account %zu: value %zu is not finite", k, i);
  }
  for (size_t t = 0; t < r->ntrades; t++)
    if (r->nsubs && r->trades[t].sub >= r->nsubs)
      return keeli_error(ctx, KEEL_EINVAL, "run record: trade %zu names sub-account %u of %zu", t,
                         (unsigned)r->trades[t].sub, r->nsubs);
  if (r->nevents && !r->events) return keeli_error(ctx, KEEL_EINVAL, "run record: event array missing");
  for (size_t e = 0; e < r->nevents; e++)
    if (!r->events[e].kind || (r->nsubs && r->events[e].sub >= r->nsubs))
      return keeli_error(ctx, KEEL_EINVAL, "run record: event %zu has no kind or a bad sub-account", e);
  if (r->nopt_calls && !r->opt_calls) return keeli_error(ctx, KEEL_EINVAL, "run record: optimiser call array missing");
  if (r->nweights && !r->weights) return keeli_error(ctx, KEEL_EINVAL, "run record: weight array missing");
  for (size_t k = 0; k < r->nweights; k++)
    if (!r->weights[k].symbol || (r->nsubs && r->weights[k].sub >= r->nsubs) || !isfinite(r->weights[k].weight))
      return keeli_error(ctx, KEEL_EINVAL, "run record: weight %zu has no symbol, a bad sub-account or a value that is not finite", k);
  for (size_t c = 0; c < r->nopt_calls; c++)
    if (!r->opt_calls[c].status || (r->nsubs && r->opt_calls[c].sub >= r->nsubs))
      return keeli_error(ctx, KEEL_EINVAL, "run record: optimiser call %zu has no status or a bad sub-account", c);
  return KEEL_OK;
}

static void bind_real_or_null(sqlite3_stmt *q, int col, double v) {
  if (isfinite(v))
    sqlite3_bind_double(q, col, v);
  else
    sqlite3_bind_null(q, col);
}

static void bind_text_or_null(sqlite3_stmt *q, int col, const char *t) {
  if (t)
    sqlite3_bind_text(q, col, t, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(q, col);
}

/* The schema-2 parts of a run: sub-accounts, their metrics and series,
 * events and optimiser calls. Returns an SQLite code; *q is the statement
 * in use (the caller's last, finalised first; the caller finalises the last
 * one, at its commit or on failure). */
static int save_v2_parts(keel_store *s, sqlite3_int64 id, const keel_run_record *rec, sqlite3_stmt **q,
                         const char **doing) {
  *doing = "inserting sub-accounts";
  if (prepare_next(s, q, "INSERT INTO subaccounts VALUES (?1, ?2, ?3, ?4)") != SQLITE_OK)
    return SQLITE_ERROR;
  for (size_t k = 0; k < rec->nsubs; k++) {
    sqlite3_reset(*q);
    sqlite3_bind_int64(*q, 1, id);
    sqlite3_bind_int64(*q, 2, (sqlite3_int64)k);
    sqlite3_bind_text(*q, 3, rec->subs[k].name, -1, SQLITE_STATIC);
    sqlite3_bind_double(*q, 4, rec->subs[k].capital);
    if (sqlite3_step(*q) != SQLITE_DONE) return SQLITE_ERROR;
  }
  *doing = "inserting sub-account metrics";
  if (prepare_next(s, q, "INSERT INTO sub_metrics VALUES (?1, ?2, ?3, ?4)") != SQLITE_OK)
    return SQLITE_ERROR;
  for (size_t k = 0; k < rec->nsubs; k++)
    for (size_t m = 0; m < rec->subs[k].nmetrics; m++) {
      sqlite3_reset(*q);
      sqlite3_bind_int64(*q, 1, id);
      sqlite3_bind_int64(*q, 2, (sqlite3_int64)k);
      sqlite3_bind_text(*q, 3, rec->subs[k].metric_names[m], -1, SQLITE_STATIC);
      bind_real_or_null(*q, 4, rec->subs[k].metric_values[m]);
      if (sqlite3_step(*q) != SQLITE_DONE) return SQLITE_ERROR;
    }
  *doing = "inserting sub-account equity curves";
  if (prepare_next(s, q, "INSERT INTO sub_equity VALUES (?1, ?2, ?3, ?4, ?5, ?6)") != SQLITE_OK)
    return SQLITE_ERROR;
  for (size_t k = 0; k < rec->nsubs; k++) {
    const keel_run_sub *u = &rec->subs[k];
    for (size_t i = 0; u->values && i < rec->npoints; i++) {
      sqlite3_reset(*q);
      sqlite3_bind_int64(*q, 1, id);
      sqlite3_bind_int64(*q, 2, (sqlite3_int64)k);
      bind_date(*q, 3, rec->dates[i]);
      sqlite3_bind_double(*q, 4, u->values[i]);
      if (u->cash)
        bind_real_or_null(*q, 5, u->cash[i]);
      else
        sqlite3_bind_null(*q, 5);
      if (u->flows)
        bind_real_or_null(*q, 6, u->flows[i]);
      else
        sqlite3_bind_null(*q, 6);
      if (sqlite3_step(*q) != SQLITE_DONE) return SQLITE_ERROR;
    }
  }
  *doing = "inserting events";
  if (prepare_next(s, q, "INSERT INTO events(run_id, date, sub, symbol, kind, stop, price, level) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)") != SQLITE_OK)
    return SQLITE_ERROR;
  for (size_t e = 0; e < rec->nevents; e++) {
    const keel_run_event *ev = &rec->events[e];
    sqlite3_reset(*q);
    sqlite3_bind_int64(*q, 1, id);
    bind_date(*q, 2, ev->date);
    sqlite3_bind_int64(*q, 3, (sqlite3_int64)ev->sub);
    bind_text_or_null(*q, 4, ev->symbol);
    sqlite3_bind_text(*q, 5, ev->kind, -1, SQLITE_STATIC);
    bind_text_or_null(*q, 6, ev->stop);
    bind_real_or_null(*q, 7, ev->price);
    bind_real_or_null(*q, 8, ev->level);
    if (sqlite3_step(*q) != SQLITE_DONE) return SQLITE_ERROR;
  }
  *doing = "inserting optimiser calls";
  if (prepare_next(s, q, "INSERT INTO optimizer_calls(run_id, date, sub, status, iterations, solves, polished, "
                         "res_prim, res_dual, ret, vol) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)") != SQLITE_OK)
    return SQLITE_ERROR;
  for (size_t c = 0; c < rec->nopt_calls; c++) {
    const keel_run_opt_call *oc = &rec->opt_calls[c];
    sqlite3_reset(*q);
    sqlite3_bind_int64(*q, 1, id);
    bind_date(*q, 2, oc->date);
    sqlite3_bind_int64(*q, 3, (sqlite3_int64)oc->sub);
    sqlite3_bind_text(*q, 4, oc->status, -1, SQLITE_STATIC);
    sqlite3_bind_int(*q, 5, oc->iterations);
    sqlite3_bind_int(*q, 6, oc->solves);
    sqlite3_bind_int(*q, 7, oc->polished);
    bind_real_or_null(*q, 8, oc->res_prim);
    bind_real_or_null(*q, 9, oc->res_dual);
    bind_real_or_null(*q, 10, oc->ret);
    bind_real_or_null(*q, 11, oc->vol);
    if (sqlite3_step(*q) != SQLITE_DONE) return SQLITE_ERROR;
  }
  *doing = "inserting sub-account weights";
  if (prepare_next(s, q, "INSERT INTO sub_weights VALUES (?1, ?2, ?3, ?4, ?5)") != SQLITE_OK)
    return SQLITE_ERROR;
  for (size_t k = 0; k < rec->nweights; k++) {
    const keel_run_weight *w = &rec->weights[k];
    sqlite3_reset(*q);
    sqlite3_bind_int64(*q, 1, id);
    sqlite3_bind_int64(*q, 2, (sqlite3_int64)w->sub);
    bind_date(*q, 3, w->date);
    sqlite3_bind_text(*q, 4, w->symbol, -1, SQLITE_STATIC);
    sqlite3_bind_double(*q, 5, w->weight);
    if (sqlite3_step(*q) != SQLITE_DONE) return SQLITE_ERROR;
  }
  return SQLITE_OK;
}

keel_status keel_store_save_run(keel_ctx *ctx, keel_store *s, const keel_run_record *rec, int64_t *run_id) {
  if (!s || !rec) return keeli_error(ctx, KEEL_EINVAL, "keel_store_save_run: bad argument");
  keel_status st = check_record(ctx, rec);
  if (st) return st;
  sqlite3_stmt *q = NULL;
  const char *doing = "starting a transaction";
  if (exec(s, "BEGIN IMMEDIATE") != SQLITE_OK) goto fail;
  doing = "inserting the run";
  if (sqlite3_prepare_v2(s->db,
                         "INSERT INTO runs(kind, strategy, params, dataset, dataset_hash, seed, keel_version, "
                         "start_date, end_date, status, npoints, ntrades, job_hash, error, nsubs, nevents, "
                         "nopt_calls, benchmark) "
                         "VALUES (?1, ?2, json(?3), ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
                         "?17, ?18)",
                         -1, &q, NULL) != SQLITE_OK)
    goto fail;
  sqlite3_bind_text(q, 1, rec->kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 2, rec->strategy, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 3, rec->params_json, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 4, rec->dataset, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 5, rec->dataset_hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 6, (sqlite3_int64)rec->seed);
  sqlite3_bind_text(q, 7, KEEL_VERSION, -1, SQLITE_STATIC);
  bind_date(q, 8, rec->start);
  bind_date(q, 9, rec->end);
  sqlite3_bind_text(q, 10, rec->status, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 11, (sqlite3_int64)rec->npoints);
  sqlite3_bind_int64(q, 12, (sqlite3_int64)rec->ntrades);
  if (rec->job_hash)
    sqlite3_bind_text(q, 13, rec->job_hash, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(q, 13);
  if (rec->error)
    sqlite3_bind_text(q, 14, rec->error, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(q, 14);
  sqlite3_bind_int64(q, 15, (sqlite3_int64)rec->nsubs);
  sqlite3_bind_int64(q, 16, (sqlite3_int64)rec->nevents);
  sqlite3_bind_int64(q, 17, (sqlite3_int64)rec->nopt_calls);
  bind_text_or_null(q, 18, rec->benchmark_symbol);
  if (sqlite3_step(q) != SQLITE_DONE) goto fail;
  sqlite3_int64 id = sqlite3_last_insert_rowid(s->db);
  doing = "inserting metrics";
  if (prepare_next(s, &q, "INSERT INTO metrics VALUES (?1, ?2, ?3)") != SQLITE_OK) goto fail;
  for (size_t k = 0; k < rec->nmetrics; k++) {
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_text(q, 2, rec->metric_names[k], -1, SQLITE_STATIC);
    bind_real_or_null(q, 3, rec->metric_values[k]);
    if (sqlite3_step(q) != SQLITE_DONE) goto fail;
  }
  doing = "inserting the equity curve";
  if (prepare_next(s, &q,
                   "INSERT INTO equity(run_id, date, value, cash, flow, benchmark) VALUES (?1, ?2, ?3, ?4, ?5, ?6)") !=
      SQLITE_OK)
    goto fail;
  for (size_t i = 0; i < rec->npoints; i++) {
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, id);
    bind_date(q, 2, rec->dates[i]);
    sqlite3_bind_double(q, 3, rec->values[i]);
    if (rec->cash)
      bind_real_or_null(q, 4, rec->cash[i]);
    else
      sqlite3_bind_null(q, 4);
    if (rec->flows)
      bind_real_or_null(q, 5, rec->flows[i]);
    else
      sqlite3_bind_null(q, 5);
    if (rec->benchmark)
      bind_real_or_null(q, 6, rec->benchmark[i]);
    else
      sqlite3_bind_null(q, 6);
    if (sqlite3_step(q) != SQLITE_DONE) goto fail;
  }
  doing = "inserting trades";
  if (prepare_next(s, &q, "INSERT INTO trades(run_id, date, symbol, reason, shares, price, notional, cost, sub) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)") != SQLITE_OK)
    goto fail;
  for (size_t t = 0; t < rec->ntrades; t++) {
    const keel_trade *tr = &rec->trades[t];
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, id);
    bind_date(q, 2, tr->date);
    sqlite3_bind_text(q, 3, rec->asset_symbols[tr->asset], -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, keel_trade_reason_name(tr->reason), -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 5, tr->shares);
    sqlite3_bind_double(q, 6, tr->price);
    sqlite3_bind_double(q, 7, tr->notional);
    sqlite3_bind_double(q, 8, tr->cost);
    sqlite3_bind_int64(q, 9, (sqlite3_int64)tr->sub);
    if (sqlite3_step(q) != SQLITE_DONE) goto fail;
  }
  if (save_v2_parts(s, id, rec, &q, &doing) != SQLITE_OK) goto fail;
  doing = "committing the run";
  if (tx_commit(s, &q) != SQLITE_OK) goto fail;
  if (run_id) *run_id = id;
  return KEEL_OK;
fail:
  return tx_fail(ctx, s, q, doing);
}

keel_status keel_store_has_job(keel_ctx *ctx, keel_store *s, const char *job_hash, int *found) {
  if (!found) return keeli_error(ctx, KEEL_EINVAL, "keel_store_has_job: found is NULL");
  *found = 0;
  if (!s || !job_hash) return keeli_error(ctx, KEEL_EINVAL, "keel_store_has_job: bad argument");
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM runs WHERE job_hash = ?1", -1, &q, NULL) != SQLITE_OK)
    return db_error(ctx, s, "looking up a job");
  sqlite3_bind_text(q, 1, job_hash, -1, SQLITE_STATIC);
  int rc = sqlite3_step(q);
  sqlite3_finalize(q);
  if (rc == SQLITE_ROW) *found = 1;
  else if (rc != SQLITE_DONE) return db_error(ctx, s, "looking up a job");
  return KEEL_OK;
}

/* ---- stress runs (schema version 3) ---------------------------------------- */

/* The runs row of a stress run or an optimisation (status ok, no
 * trades): its id into *id. SQLite's result code; the caller's
 * transaction is left to the caller. */
static int insert_run_row(keel_store *s, const char *kind, const char *strategy, const char *params_json,
                          const char *dataset, const char *dataset_hash, uint64_t seed, keel_date start,
                          keel_date end, size_t npoints, sqlite3_int64 *id) {
  sqlite3_stmt *q = NULL;
  int rc = sqlite3_prepare_v2(s->db,
                              "INSERT INTO runs(kind, strategy, params, dataset, dataset_hash, seed, keel_version, "
                              "start_date, end_date, status, npoints, ntrades) "
                              "VALUES (?1, ?2, json(?3), ?4, ?5, ?6, ?7, ?8, ?9, 'ok', ?10, 0)",
                              -1, &q, NULL);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(q, 1, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 2, strategy, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 3, params_json, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 4, dataset, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 5, dataset_hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 6, (sqlite3_int64)seed);
  sqlite3_bind_text(q, 7, KEEL_VERSION, -1, SQLITE_STATIC);
  bind_date(q, 8, start);
  bind_date(q, 9, end);
  sqlite3_bind_int64(q, 10, (sqlite3_int64)npoints);
  rc = sqlite3_step(q);
  sqlite3_finalize(q);
  if (rc != SQLITE_DONE) return rc;
  *id = sqlite3_last_insert_rowid(s->db);
  return SQLITE_OK;
}

keel_status keel_store_save_stress(keel_ctx *ctx, keel_store *s, const keel_stress_record *rec, int64_t *run_id) {
  if (!s || !rec) return keeli_error(ctx, KEEL_EINVAL, "keel_store_save_stress: bad argument");
  if (!rec->strategy || !rec->params_json || !rec->dataset || !rec->dataset_hash || !rec->generator ||
      !rec->scenario || (rec->nstats && (!rec->stat_names || !rec->measure_names || !rec->stat_values)) ||
      (rec->npoints && (!rec->band_steps || !rec->band_dates || !rec->bands)) ||
      (rec->nhist && (!rec->hist_lo || !rec->hist_hi || !rec->hist_share)))
    return keeli_error(ctx, KEEL_EINVAL, "stress record: a required field is NULL");
  keel_status st = check_params(ctx, rec->params_json, "stress record");
  if (st) return st;
  sqlite3_stmt *q = NULL;
  const char *doing = "starting a transaction";
  if (exec(s, "BEGIN IMMEDIATE") != SQLITE_OK) goto fail;
  doing = "inserting the run";
  sqlite3_int64 id;
  if (insert_run_row(s, "stress", rec->strategy, rec->params_json, rec->dataset, rec->dataset_hash, rec->seed,
                     rec->start, rec->end, rec->npoints, &id) != SQLITE_OK)
    goto fail;
  doing = "inserting the stress run";
  if (sqlite3_prepare_v2(s->db,
                         "INSERT INTO stress_runs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
                         "?14, ?15, ?16)",
                         -1, &q, NULL) != SQLITE_OK)
    goto fail;
  sqlite3_bind_int64(q, 1, id);
  sqlite3_bind_text(q, 2, rec->generator, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 3, rec->scenario, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 4, (sqlite3_int64)rec->npaths);
  sqlite3_bind_int64(q, 5, (sqlite3_int64)rec->nsteps);
  sqlite3_bind_double(q, 6, rec->steps_per_year);
  sqlite3_bind_double(q, 7, rec->years);
  sqlite3_bind_double(q, 8, rec->capital);
  if (rec->goal > 0) {
    sqlite3_bind_double(q, 9, rec->goal);
    bind_real_or_null(q, 10, rec->p_goal);
    bind_real_or_null(q, 11, rec->p_goal_any);
  } else {
    sqlite3_bind_null(q, 9);
    sqlite3_bind_null(q, 10);
    sqlite3_bind_null(q, 11);
  }
  sqlite3_bind_double(q, 12, rec->loss_threshold);
  bind_real_or_null(q, 13, rec->p_loss);
  sqlite3_bind_double(q, 14, rec->es_level);
  bind_real_or_null(q, 15, rec->mean_in);
  bind_real_or_null(q, 16, rec->mean_out);
  if (sqlite3_step(q) != SQLITE_DONE) goto fail;
  doing = "inserting the stress statistics";
  if (prepare_next(s, &q, "INSERT INTO stress_stats VALUES (?1, ?2, ?3, ?4)") != SQLITE_OK)
    goto fail;
  for (size_t i = 0; i < rec->nstats; i++)
    for (size_t m = 0; m < rec->nmeasures; m++) {
      sqlite3_reset(q);
      sqlite3_bind_int64(q, 1, id);
      sqlite3_bind_text(q, 2, rec->stat_names[i], -1, SQLITE_STATIC);
      sqlite3_bind_text(q, 3, rec->measure_names[m], -1, SQLITE_STATIC);
      bind_real_or_null(q, 4, rec->stat_values[i * rec->nmeasures + m]);
      if (sqlite3_step(q) != SQLITE_DONE) goto fail;
    }
  doing = "inserting the fan chart";
  if (prepare_next(s, &q, "INSERT INTO stress_bands VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)") != SQLITE_OK)
    goto fail;
  for (size_t i = 0; i < rec->npoints; i++) {
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)rec->band_steps[i]);
    bind_date(q, 3, rec->band_dates[i]);
    for (int b = 0; b < 5; b++) bind_real_or_null(q, 4 + b, rec->bands[i * 5 + (size_t)b]);
    if (sqlite3_step(q) != SQLITE_DONE) goto fail;
  }
  doing = "inserting the terminal wealth histogram";
  if (prepare_next(s, &q, "INSERT INTO stress_hist VALUES (?1, ?2, ?3, ?4, ?5)") != SQLITE_OK)
    goto fail;
  for (size_t i = 0; i < rec->nhist; i++) {
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)i);
    bind_real_or_null(q, 3, rec->hist_lo[i]);
    bind_real_or_null(q, 4, rec->hist_hi[i]);
    sqlite3_bind_double(q, 5, isfinite(rec->hist_share[i]) ? rec->hist_share[i] : 0);
    if (sqlite3_step(q) != SQLITE_DONE) goto fail;
  }
  doing = "committing the stress run";
  if (tx_commit(s, &q) != SQLITE_OK) goto fail;
  if (run_id) *run_id = id;
  return KEEL_OK;
fail:
  return tx_fail(ctx, s, q, doing);
}

/* ---- optimisations (schema version 4) --------------------------------------- */

static void bind_opt_real(sqlite3_stmt *q, int col, const double *v, size_t i) {
  if (v)
    bind_real_or_null(q, col, v[i]);
  else
    sqlite3_bind_null(q, col);
}

keel_status keel_store_save_optimization(keel_ctx *ctx, keel_store *s, const keel_optimization_record *rec,
                                         int64_t *run_id) {
  if (!s || !rec) return keeli_error(ctx, KEEL_EINVAL, "keel_store_save_optimization: bad argument");
  if (!rec->kind || !rec->objective || !rec->cov || !rec->params_json || !rec->dataset || !rec->dataset_hash ||
      !rec->nassets || !rec->symbols || !rec->mu || !rec->vol ||
      (rec->npoints && (!rec->frontier_ret || !rec->frontier_vol)))
    return keeli_error(ctx, KEEL_EINVAL, "optimisation record: a required field is NULL");
  if (strcmp(rec->kind, "optimize") && strcmp(rec->kind, "frontier"))
    return keeli_error(ctx, KEEL_EINVAL, "optimisation record: kind '%s' is not optimize or frontier", rec->kind);
  for (size_t i = 0; i < rec->nassets; i++)
    if (!rec->symbols[i] || !isfinite(rec->mu[i]) || !isfinite(rec->vol[i]))
      return keeli_error(ctx, KEEL_EINVAL, "optimisation record: asset %zu has no symbol or a return or volatility "
                                           "that is not finite", i);
  for (size_t k = 0; k < rec->npoints; k++)
    if (!isfinite(rec->frontier_ret[k]) || !isfinite(rec->frontier_vol[k]))
      return keeli_error(ctx, KEEL_EINVAL, "optimisation record: frontier point %zu is not finite", k);
  keel_status st = check_params(ctx, rec->params_json, "optimisation record");
  if (st) return st;
  sqlite3_stmt *q = NULL;
  const char *doing = "starting a transaction";
  if (exec(s, "BEGIN IMMEDIATE") != SQLITE_OK) goto fail;
  doing = "inserting the run";
  sqlite3_int64 id;
  if (insert_run_row(s, rec->kind, rec->objective, rec->params_json, rec->dataset, rec->dataset_hash, 0, rec->start,
                     rec->end, rec->npoints, &id) != SQLITE_OK)
    goto fail;
  doing = "inserting the optimisation";
  if (sqlite3_prepare_v2(s->db, "INSERT INTO opt_runs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", -1,
                         &q, NULL) != SQLITE_OK)
    goto fail;
  sqlite3_bind_int64(q, 1, id);
  sqlite3_bind_text(q, 2, rec->objective, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 3, rec->cov, -1, SQLITE_STATIC);
  sqlite3_bind_double(q, 4, isfinite(rec->risk_free) ? rec->risk_free : 0);
  const double pv[] = {rec->ret, rec->vol_p, rec->sharpe, rec->turnover, rec->cost, rec->cash, rec->current_ret,
                       rec->current_vol};
  for (int k = 0; k < 8; k++) bind_real_or_null(q, 5 + k, rec->weights || k >= 6 ? pv[k] : NAN);
  if (sqlite3_step(q) != SQLITE_DONE) goto fail;
  doing = "inserting the assets";
  if (prepare_next(s, &q, "INSERT INTO opt_assets VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)") != SQLITE_OK)
    goto fail;
  for (size_t i = 0; i < rec->nassets; i++) {
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)i);
    sqlite3_bind_text(q, 3, rec->symbols[i], -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 4, rec->mu[i]);
    sqlite3_bind_double(q, 5, rec->vol[i]);
    bind_opt_real(q, 6, rec->weights, i);
    bind_opt_real(q, 7, rec->current, i);
    bind_opt_real(q, 8, rec->risk_contrib, i);
    if (sqlite3_step(q) != SQLITE_DONE) goto fail;
  }
  doing = "inserting the frontier";
  if (prepare_next(s, &q, "INSERT INTO opt_frontier VALUES (?1, ?2, ?3, ?4)") != SQLITE_OK)
    goto fail;
  for (size_t k = 0; k < rec->npoints; k++) {
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)k);
    sqlite3_bind_double(q, 3, rec->frontier_ret[k]);
    sqlite3_bind_double(q, 4, rec->frontier_vol[k]);
    if (sqlite3_step(q) != SQLITE_DONE) goto fail;
  }
  if (rec->frontier_weights) {
    doing = "inserting the frontier's weights";
    if (prepare_next(s, &q, "INSERT INTO opt_frontier_weights VALUES (?1, ?2, ?3, ?4)") != SQLITE_OK)
      goto fail;
    for (size_t k = 0; k < rec->npoints; k++)
      for (size_t i = 0; i < rec->nassets; i++) {
        double w = rec->frontier_weights[k * rec->nassets + i];
        if (!isfinite(w)) continue;
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)k);
        sqlite3_bind_int64(q, 3, (sqlite3_int64)i);
        sqlite3_bind_double(q, 4, w);
        if (sqlite3_step(q) != SQLITE_DONE) goto fail;
      }
  }
  doing = "committing the optimisation";
  if (tx_commit(s, &q) != SQLITE_OK) goto fail;
  if (run_id) *run_id = id;
  return KEEL_OK;
fail:
  return tx_fail(ctx, s, q, doing);
}
