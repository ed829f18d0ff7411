/* keel — the batch runner (keel/batch.h, docs/formats.md "Batch jobs").
 *
 * The calling thread reads every job, loads each dataset once, hashes the
 * jobs and drops those already stored; then N workers (each with its own
 * keel_ctx) take jobs in input order and hand finished results to the
 * calling thread through a bounded queue. The calling thread is the only
 * writer: it owns the one store connection and commits one run per
 * transaction. A single writer keeps SQLite's write lock uncontended
 * (workers never wait on busy timeouts), keeps the store handle on one
 * thread as keel_store requires, and makes the order of commits the only
 * thing that depends on scheduling. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backtest/runspec_internal.h"
#include "core/internal.h"
#include "keel/backtest.h"
#include "keel/batch.h"
#include "keel/record.h"
#include "keel/runspec.h"
#include "keel/store.h"

void keel_batch_options_default(keel_batch_options *o) {
  memset(o, 0, sizeof *o);
  o->input_name = "jobs";
  o->threads = 1;
  o->resume = 1;
}

/* ---- hashing ------------------------------------------------------------- */

static void hash_hex(unsigned long long h, char out[KEEL_BATCH_HASH_BUFSIZE]) {
  snprintf(out, KEEL_BATCH_HASH_BUFSIZE, "%016llx", h);
}

/* The canonical text of a job object without "id"; NULL on ENOMEM. Caller
 * frees with free(). */
static char *canonical_job(const json_t *job) {
  json_t *c = json_copy((json_t *)job);
  if (!c) return NULL;
  json_object_del(c, "id");
  char *s = json_dumps(c, JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(c);
  return s;
}

static unsigned long long job_hash(const char *canon, const keel_panel *panel) {
  unsigned long long h = keeli_fnv1a(KEEL_FNV_OFFSET, canon, strlen(canon));
  if (panel) {
    char ph[KEEL_PANEL_HASH_BUFSIZE];
    keel_panel_hash(panel, ph);
    h = keeli_fnv1a(h, ph, strlen(ph));
  }
  return h;
}

keel_status keel_batch_job_hash(keel_ctx *ctx, const char *job_json, size_t len, const keel_panel *panel,
                                char out[KEEL_BATCH_HASH_BUFSIZE]) {
  if (!job_json || !out) return keeli_error(ctx, KEEL_EINVAL, "keel_batch_job_hash: bad argument");
  json_error_t je;
  json_t *j = json_loadb(job_json, len, JSON_REJECT_DUPLICATES, &je);
  if (!j) return keeli_error(ctx, KEEL_EPARSE, "job:%d:%d: %s", je.line, je.column, je.text);
  keel_status st = KEEL_OK;
  if (!json_is_object(j)) {
    st = keeli_error(ctx, KEEL_EINVAL, "job: must be a JSON object");
  } else {
    char *canon = canonical_job(j);
    if (!canon)
      st = keeli_error(ctx, KEEL_ENOMEM, "job: out of memory");
    else
      hash_hex(job_hash(canon, panel), out);
    free(canon);
  }
  json_decref(j);
  return st;
}

/* ---- jobs and datasets ------------------------------------------------------ */

typedef struct dataset {
  char *name;       /* as written in the jobs */
  keel_panel *panel;
  char *error;      /* why it could not be loaded */
} dataset;

typedef struct job {
  size_t line;
  json_t *root;     /* the job object, or NULL if the line is not one */
  char *id;         /* label as text, or NULL */
  const char *dataset_name;
  dataset *ds;
  char hash[KEEL_BATCH_HASH_BUFSIZE];
  int has_hash;
  char *error;      /* a failure found before running */
} job;

typedef struct item {
  keeli_heap heap;
  size_t job;
  int ok;
  keel_runspec *rs;
  keel_backtest_result *res;
  keel_run_record rec;
  double metrics[KEEL_METRICS_COUNT];
  char *error;
  struct item *next;
} item;

typedef struct batch {
  keel_ctx *ctx;
  const keel_batch_options *o;
  job *jobs;
  size_t njobs, jobcap;
  dataset *ds;
  size_t nds, dscap;
  size_t *todo;
  size_t ntodo;
  /* the pool */
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full;
  size_t next;           /* next todo index to take */
  item *head, *tail;
  size_t queued, qcap;
  int alive;             /* workers still running */
  int stop;              /* the writer failed: workers finish now */
  keel_status worker_st; /* a worker's fatal failure (ENOMEM) */
  char worker_msg[512];
} batch;

static char *xstrdup(keel_ctx *ctx, const char *s) { return s ? keeli_strdup(ctx, s) : NULL; }

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static keel_status job_error(batch *b, job *j, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char full[1200];
  snprintf(full, sizeof full, "%s:%zu: %s", b->o->input_name, j->line, msg);
  keeli_free(b->ctx, j->error);
  j->error = keeli_strdup(b->ctx, full);
  return j->error ? KEEL_OK : KEEL_ENOMEM;
}

/* Reads every non-blank line of the input into b->jobs and checks the
 * shape of each job. */
static keel_status read_jobs(batch *b) {
  keel_ctx *ctx = b->ctx;
  char *line = NULL;
  size_t cap = 0, lineno = 0;
  ssize_t len;
  keel_status st = KEEL_OK;
  while (!st && (len = getline(&line, &cap, b->o->input)) >= 0) {
    lineno++;
    size_t a = 0, e = (size_t)len;
    while (a < e && (line[a] == ' ' || line[a] == '\t' || line[a] == '\r' || line[a] == '\n')) a++;
    while (e > a && (line[e - 1] == ' ' || line[e - 1] == '\t' || line[e - 1] == '\r' || line[e - 1] == '\n')) e--;
    if (a == e) continue;
    if (keeli_reserve(ctx, (void **)&b->jobs, &b->jobcap, b->njobs + 1, sizeof *b->jobs)) {
      st = KEEL_ENOMEM;
      break;
    }
    job *j = &b->jobs[b->njobs++];
    memset(j, 0, sizeof *j);
    j->line = lineno;
    json_error_t je;
    j->root = json_loadb(line + a, e - a, JSON_REJECT_DUPLICATES, &je);
    if (!j->root) {
      /* a line that is not JSON: its identity is its text */
      hash_hex(keeli_fnv1a(KEEL_FNV_OFFSET, line + a, e - a), j->hash);
      j->has_hash = 1;
      st = job_error(b, j, "column %d: %s", je.column, je.text);
      continue;
    }
    if (!json_is_object(j->root)) {
      st = job_error(b, j, "a job must be a JSON object");
    } else {
      const char *key;
      json_t *v;
      json_object_foreach(j->root, key, v) {
        if (strcmp(key, "id") && strcmp(key, "dataset") && strcmp(key, "run")) {
          st = job_error(b, j, "%s: unknown key (expected one of id, dataset, run)", key);
          break;
        }
      }
      json_t *id = json_object_get(j->root, "id"), *ds = json_object_get(j->root, "dataset");
      if (!st && !j->error && id) {
        if (json_is_string(id))
          j->id = xstrdup(ctx, json_string_value(id));
        else if (json_is_integer(id)) {
          char buf[32];
          snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(id));
          j->id = xstrdup(ctx, buf);
        } else
          st = job_error(b, j, "id: must be a string or a whole number");
        if (!st && !j->error && !j->id) st = KEEL_ENOMEM;
      }
      if (!st && !j->error) {
        if (!ds || !json_is_string(ds) || !json_string_value(ds)[0])
          st = job_error(b, j, "dataset: needs a CSV path or \"db:NAME\"");
        else if (!json_is_object(json_object_get(j->root, "run")))
          st = job_error(b, j, "run: needs the run description, an object");
        else
          j->dataset_name = json_string_value(ds);
      }
    }
    /* a job with a shape error is identified by its JSON alone */
    if (!st && j->error) {
      char *canon = canonical_job(j->root);
      if (!canon) {
        st = keeli_error(ctx, KEEL_ENOMEM, "out of memory");
        break;
      }
      hash_hex(job_hash(canon, NULL), j->hash);
      j->has_hash = 1;
      free(canon);
    }
  }
  if (!st && ferror(b->o->input)) st = keeli_error(ctx, KEEL_EIO, "%s: cannot read the jobs", b->o->input_name);
  free(line);
  return st;
}

/* Loads each dataset named by a job once, in the order first named. */
static keel_status load_datasets(batch *b) {
  keel_ctx *ctx = b->ctx;
  keel_store *dstore = NULL;
  keel_status st = KEEL_OK;
  for (size_t k = 0; !st && k < b->njobs; k++) {
    job *j = &b->jobs[k];
    if (!j->dataset_name) continue;
    size_t d = 0;
    while (d < b->nds && strcmp(b->ds[d].name, j->dataset_name)) d++;
    if (d == b->nds) {
      if (keeli_reserve(ctx, (void **)&b->ds, &b->dscap, b->nds + 1, sizeof *b->ds)) return KEEL_ENOMEM;
      dataset *x = &b->ds[b->nds];
      memset(x, 0, sizeof *x);
      if (!(x->name = keeli_strdup(ctx, j->dataset_name))) return KEEL_ENOMEM;
      b->nds++;
      keel_status ls;
      if (!strncmp(x->name, "db:", 3)) {
        const char *dbpath = b->o->datasets_path ? b->o->datasets_path : b->o->store_path;
        ls = dstore ? KEEL_OK : keel_store_open(ctx, dbpath, &dstore);
        if (!ls) ls = keel_store_get_dataset(ctx, dstore, x->name + 3, &x->panel);
      } else {
        ls = keel_panel_read_csv(ctx, x->name, NULL, &x->panel);
      }
      if (ls == KEEL_ENOMEM) st = KEEL_ENOMEM;
      else if (ls && !(x->error = keeli_strdup(ctx, keel_errmsg(ctx)))) st = KEEL_ENOMEM;
    }
    j->ds = &b->ds[d];
  }
  keel_store_close(dstore);
  return st;
}

/* Hashes the jobs and lists those to run (resume: not in the store; and
 * not repeated earlier in the input). */
static keel_status plan(batch *b, keel_store *store, size_t *skipped) {
  keel_ctx *ctx = b->ctx;
  if (!(b->todo = keeli_alloc_array(ctx, b->njobs ? b->njobs : 1, sizeof *b->todo))) return KEEL_ENOMEM;
  for (size_t k = 0; k < b->njobs; k++) {
    job *j = &b->jobs[k];
    if (!j->has_hash) {
      char *canon = canonical_job(j->root);
      if (!canon) return keeli_error(ctx, KEEL_ENOMEM, "out of memory");
      /* a dataset that could not be loaded: the job alone (it runs again
       * once the data is there, since its hash then changes) */
      hash_hex(job_hash(canon, j->ds && j->ds->panel ? j->ds->panel : NULL), j->hash);
      free(canon);
      j->has_hash = 1;
      if (j->ds && j->ds->error && !j->error) {
        keel_status st = job_error(b, j, "dataset: %s", j->ds->error);
        if (st) return st;
      }
    }
    int dup = 0, found = 0;
    for (size_t i = 0; i < b->ntodo && !dup; i++) dup = !strcmp(b->jobs[b->todo[i]].hash, j->hash);
    if (!dup && b->o->resume) {
      keel_status st = keel_store_has_job(ctx, store, j->hash, &found);
      if (st) return st;
    }
    if (dup || found)
      (*skipped)++;
    else
      b->todo[b->ntodo++] = k;
  }
  return KEEL_OK;
}

/* ---- workers ---------------------------------------------------------------- */

static void item_free(item *it) {
  if (!it) return;
  keeli_heap h = it->heap;
  keel_backtest_record_free(&it->rec);
  keel_backtest_result_free(it->res);
  keel_runspec_free(it->rs);
  keeli_heap_free(&h, it->error);
  keeli_heap_free(&h, it);
}

/* Runs one job into a new item; NULL only on ENOMEM. */
static item *run_job(batch *b, keel_ctx *wctx, size_t k) {
  job *j = &b->jobs[k];
  item *it = keeli_calloc(wctx, 1, sizeof *it);
  if (!it) return NULL;
  it->heap = *keeli_ctx_heap(wctx);
  it->job = k;
  if (j->error) {
    if (!(it->error = keeli_strdup(wctx, j->error))) goto oom;
    return it;
  }
  char name[600];
  snprintf(name, sizeof name, "%s:%zu", b->o->input_name, j->line);
  keel_status st = keeli_runspec_from_json(wctx, name, "run", json_object_get(j->root, "run"), j->ds->panel, NULL,
                                           b->o->loader,
                                           &it->rs);
  if (!st) st = keel_backtest_run_account(wctx, j->ds->panel, keel_runspec_account(it->rs), &it->res);
  if (!st) {
    keel_record_meta meta = {.dataset = j->dataset_name,
                             .params_json = keel_runspec_json(it->rs),
                             .strategy = keel_runspec_strategy(it->rs),
                             .job_hash = j->hash,
                             .spec = keel_runspec_account(it->rs)};
    st = keel_backtest_record_fill(wctx, it->res, j->ds->panel, &meta, &it->rec);
  }
  if (st == KEEL_ENOMEM) goto oom;
  if (st) {
    const char *msg = keel_errmsg(wctx);
    size_t nl = strlen(name);
    char full[1200];
    /* runspec messages already start with the job's name */
    if (!strncmp(msg, name, nl) && msg[nl] == ':')
      snprintf(full, sizeof full, "%s", msg);
    else
      snprintf(full, sizeof full, "%s: %s", name, msg);
    keel_runspec_free(it->rs);
    keel_backtest_result_free(it->res);
    it->rs = NULL, it->res = NULL;
    if (!(it->error = keeli_strdup(wctx, full))) goto oom;
    return it;
  }
  it->ok = 1;
  memcpy(it->metrics, it->rec.metric_values, sizeof it->metrics);
  return it;
oom:
  item_free(it);
  return NULL;
}

typedef struct worker {
  batch *b;
  pthread_t tid;
  keel_ctx *ctx;
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  batch *b = w->b;
  for (;;) {
    pthread_mutex_lock(&b->mu);
    if (b->stop || b->next >= b->ntodo) {
      pthread_mutex_unlock(&b->mu);
      break;
    }
    size_t k = b->todo[b->next++];
    pthread_mutex_unlock(&b->mu);
    item *it = run_job(b, w->ctx, k);
    pthread_mutex_lock(&b->mu);
    if (!it) {
      if (!b->worker_st) {
        b->worker_st = KEEL_ENOMEM;
        snprintf(b->worker_msg, sizeof b->worker_msg, "%s: out of memory running line %zu", b->o->input_name,
                 b->jobs[k].line);
      }
      b->stop = 1;
      pthread_cond_broadcast(&b->not_full);
      pthread_mutex_unlock(&b->mu);
      break;
    }
    while (b->queued >= b->qcap && !b->stop) pthread_cond_wait(&b->not_full, &b->mu);
    if (b->stop) {
      pthread_mutex_unlock(&b->mu);
      item_free(it);
      break;
    }
    if (b->tail)
      b->tail->next = it;
    else
      b->head = it;
    b->tail = it;
    b->queued++;
    pthread_cond_signal(&b->not_empty);
    pthread_mutex_unlock(&b->mu);
  }
  pthread_mutex_lock(&b->mu);
  b->alive--;
  pthread_cond_broadcast(&b->not_empty);
  pthread_mutex_unlock(&b->mu);
  return NULL;
}

/* ---- the writer ----------------------------------------------------------- */

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The result line of a finished job; NULL on ENOMEM. free() it. */
static char *result_line(const job *j, const item *it, int64_t run_id) {
  json_t *o = json_object();
  if (!o) return NULL;
  int bad = 0;
  bad |= json_object_set_new(o, "id", j->id ? json_string(j->id) : json_null());
  bad |= json_object_set_new(o, "line", json_integer((json_int_t)j->line));
  bad |= json_object_set_new(o, "hash", json_string(j->hash));
  bad |= json_object_set_new(o, "status", json_string(it->ok ? "ok" : "error"));
  bad |= json_object_set_new(o, "run_id", json_integer((json_int_t)run_id));
  if (it->ok) {
    json_t *m = json_object();
    bad |= json_object_set_new(o, "metrics", m);
    for (size_t k = 0; m && k < KEEL_METRICS_COUNT; k++) {
      double v = it->metrics[k];
      bad |= json_object_set_new(m, keel_metrics_name(k), isfinite(v) ? json_real(v) : json_null());
    }
  } else {
    bad |= json_object_set_new(o, "error", json_string(it->error));
  }
  char *s = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  return s;
}

/* Stores one finished job (its run or its error). A job whose hash another
 * writer stored meanwhile counts as skipped. */
static keel_status write_item(batch *b, keel_store *store, item *it, int64_t *run_id, int *skipped) {
  job *j = &b->jobs[it->job];
  keel_run_record err;
  const keel_run_record *rec = &it->rec;
  char *params = NULL;
  *skipped = 0;
  if (!it->ok) {
    memset(&err, 0, sizeof err);
    json_t *run = j->root ? json_object_get(j->root, "run") : NULL;
    params = json_is_object(run) ? json_dumps(run, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    err.kind = "backtest";
    err.strategy = "";
    err.params_json = params ? params : "{}";
    err.dataset = j->dataset_name ? j->dataset_name : "";
    char ph[KEEL_PANEL_HASH_BUFSIZE] = "";
    if (j->ds && j->ds->panel) keel_panel_hash(j->ds->panel, ph);
    err.dataset_hash = ph;
    err.status = "error";
    err.error = it->error;
    err.start = err.end = KEEL_DATE_NONE;
    err.job_hash = j->hash;
    rec = &err;
    keel_status st = keel_store_save_run(b->ctx, store, rec, run_id);
    free(params);
    if (st == KEEL_EIO) {
      int found = 0;
      if (!keel_store_has_job(b->ctx, store, j->hash, &found) && found) return (*skipped = 1), KEEL_OK;
      return keeli_error(b->ctx, KEEL_EIO, "%s", keel_errmsg(b->ctx));
    }
    return st;
  }
  keel_status st = keel_store_save_run(b->ctx, store, rec, run_id);
  if (st == KEEL_EIO) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", keel_errmsg(b->ctx));
    int found = 0;
    if (!keel_store_has_job(b->ctx, store, j->hash, &found) && found) return (*skipped = 1), KEEL_OK;
    return keeli_error(b->ctx, KEEL_EIO, "%s", msg);
  }
  return st;
}

static void free_batch(batch *b) {
  for (size_t k = 0; k < b->njobs; k++) {
    json_decref(b->jobs[k].root);
    keeli_free(b->ctx, b->jobs[k].id);
    keeli_free(b->ctx, b->jobs[k].error);
  }
  for (size_t d = 0; d < b->nds; d++) {
    keel_panel_free(b->ds[d].panel);
    keeli_free(b->ctx, b->ds[d].name);
    keeli_free(b->ctx, b->ds[d].error);
  }
  keeli_free(b->ctx, b->jobs);
  keeli_free(b->ctx, b->ds);
  keeli_free(b->ctx, b->todo);
}

keel_status keel_batch_run(keel_ctx *ctx, const keel_batch_options *o, keel_batch_summary *summary) {
  keel_batch_summary sum = {0};
  if (summary) *summary = sum;
  if (!o || !o->input || !o->store_path || !*o->store_path)
    return keeli_error(ctx, KEEL_EINVAL, "keel_batch_run: the input and the store path are required");
  int threads = o->threads ? o->threads : keel_ctx_config(ctx)->threads;
  if (threads < 1 || threads > 1024)
    return keeli_error(ctx, KEEL_EINVAL, "keel_batch_run: threads must be from 1 to 1024, not %d", threads);
  const double t0 = now_seconds();
  batch b;
  memset(&b, 0, sizeof b);
  b.ctx = ctx;
  b.o = o;
  keel_store *store = NULL;
  worker *ws = NULL;
  int started = 0, mu_ready = 0;
  keel_status st = read_jobs(&b);
  if (!st) st = load_datasets(&b);
  if (!st) st = keel_store_open(ctx, o->store_path, &store);
  if (!st) st = plan(&b, store, &sum.skipped);
  sum.total = b.njobs;
  if (st) goto done;
  size_t done_jobs = sum.skipped, ran = 0;
  if (o->progress) o->progress(o->progress_ud, done_jobs, sum.total, b.ntodo ? -1 : 0);
  if (b.ntodo == 0) goto done;

  if ((size_t)threads > b.ntodo) threads = (int)b.ntodo;
  if (!(ws = keeli_calloc(ctx, (size_t)threads, sizeof *ws))) {
    st = KEEL_ENOMEM;
    goto done;
  }
  keel_config wcfg = *keel_ctx_config(ctx);
  wcfg.threads = 1;
  for (int t = 0; t < threads; t++) {
    ws[t].b = &b;
    if (keel_ctx_new(&wcfg, &ws[t].ctx)) {
      st = keeli_error(ctx, KEEL_ENOMEM, "keel_batch_run: out of memory");
      goto done;
    }
  }
  pthread_mutex_init(&b.mu, NULL);
  pthread_cond_init(&b.not_empty, NULL);
  pthread_cond_init(&b.not_full, NULL);
  mu_ready = 1;
  b.qcap = 2 * (size_t)threads;
  b.alive = threads;
  for (; started < threads; started++)
    if (pthread_create(&ws[started].tid, NULL, worker_main, &ws[started])) break;
  if (started < threads) {
    pthread_mutex_lock(&b.mu);
    b.alive -= threads - started;
    if (started == 0) b.stop = 1;
    pthread_mutex_unlock(&b.mu);
    if (started == 0) {
      st = keeli_error(ctx, KEEL_ENOMEM, "keel_batch_run: cannot start a worker thread");
      goto done;
    }
  }
  for (;;) {
    pthread_mutex_lock(&b.mu);
    while (!b.head && b.alive > 0) pthread_cond_wait(&b.not_empty, &b.mu);
    item *it = b.head;
    if (it) {
      b.head = it->next;
      if (!b.head) b.tail = NULL;
      b.queued--;
      pthread_cond_signal(&b.not_full);
    }
    pthread_mutex_unlock(&b.mu);
    if (!it) break;
    int64_t run_id = 0;
    int skipped = 0;
    st = write_item(&b, store, it, &run_id, &skipped);
    if (st) {
      item_free(it);
      pthread_mutex_lock(&b.mu);
      b.stop = 1;
      pthread_cond_broadcast(&b.not_full);
      pthread_mutex_unlock(&b.mu);
      break;
    }
    if (skipped)
      sum.skipped++;
    else if (it->ok)
      sum.ok++;
    else
      sum.failed++;
    done_jobs++;
    ran++;
    if (o->on_result && !skipped) {
      char *line = result_line(&b.jobs[it->job], it, run_id);
      if (line) o->on_result(o->result_ud, line);
      free(line);
    }
    item_free(it);
    if (o->progress) {
      double el = now_seconds() - t0;
      o->progress(o->progress_ud, done_jobs, sum.total, el / (double)ran * (double)(b.ntodo - ran));
    }
  }
done:
  for (int t = 0; t < started; t++) pthread_join(ws[t].tid, NULL);
  if (mu_ready) {
    for (item *it = b.head, *nx; it; it = nx) {
      nx = it->next;
      item_free(it);
    }
    b.head = b.tail = NULL;
    if (!st && b.worker_st) st = keeli_error(ctx, b.worker_st, "%s", b.worker_msg);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.not_empty);
    pthread_cond_destroy(&b.not_full);
  }
  for (int t = 0; ws && t < threads; t++) keel_ctx_free(ws[t].ctx);
  keeli_free(ctx, ws);
  keel_store_close(store);
  free_batch(&b);
  sum.seconds = now_seconds() - t0;
  if (summary) *summary = sum;
  return st;
}
