/* advice_service: a backend service on libkeel (docs/start-backend.md).
 *
 * It reads advice requests, one JSON object a line, from a file or stdin:
 *
 *   {"id": "u-17", "profile": {...}, "holdings": {...}, "quotes": {...}}
 *
 * (profile, holdings and quotes as in docs/templates.md; "id" and
 * "holdings" may be left out; blank lines are skipped) and writes one JSON
 * line per request to stdout, in the order of the requests:
 *
 *   {"line": 1, "id": "u-17", "advice": { the advice, as `keel advise` prints it }}
 *   {"line": 2, "error": {"status": "invalid argument", "message": "profile: age must be ..."}}
 *
 * ("line" is the request's line number in the input, "id" the request's
 * own, when it gave one.)
 *
 * How it uses keel:
 *
 *  - The template is compiled once, at start (keel_template_load), and all
 *    workers share it: keel_advise may run on one template from many
 *    threads at once; each call takes a prepared sandbox from the
 *    template's pool and gives it back.
 *  - Each worker thread has its own keel_ctx: a context (its allocator and
 *    last error) is used by one thread at a time.
 *  - The price history for the goal odds (-H) is read once and shared
 *    read-only by the workers, as keel allows for const objects.
 *  - A request that fails (bad JSON, a profile out of range, a quote
 *    missing, a template error or limit) gets an error line with
 *    keel_errmsg's message, and the service goes on with the next one.
 *  - At the end of the input, or on SIGINT or SIGTERM, it stops reading,
 *    finishes and writes the requests it has read, frees everything and
 *    exits: 0 when every request got its line (advice or error), 1 when
 *    it could not start or could not read or write, 2 for bad usage.
 *
 * Threads: the main thread reads requests into a ring of slots, the
 * workers take the slots in turn and compute each response, and a writer
 * thread writes the responses in request order. The ring is bounded (four
 * slots a worker), so a fast producer waits rather than filling memory,
 * and a response is written (and flushed) as soon as it and every one
 * before it are done, so a client may send a request and wait for its
 * answer.
 *
 * Build against an installed keel (it also uses jansson for the JSON of
 * the requests):
 *
 *   cc -std=c11 -O2 advice_service.c -o advice_service \
 *      $(pkg-config --cflags --libs keel jansson) -pthread
 *
 * or with CMake: this folder's CMakeLists.txt (find_package(keel)).
 * Run it:
 *
 *   advice_service -j 4 -c 10 /usr/local/share/keel/strategies/templates/standard.lua requests.jsonl
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* sigaction, pthread_sigmask, getopt, O_CLOEXEC */
#endif

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <keel/keel.h>

/* The longest request line accepted; a longer one gets an error line (and
 * is read to its end, not kept), so one bad client cannot fill memory. */
#define MAX_REQUEST (1u << 20)
#define MAX_WORKERS 64
#define MAX_DIRS 8

/* ---- the service: what every worker shares, read-only ---------------- */

typedef struct service_options {
  const char *template_name; /* a template file, or a name found in dirs */
  const char *dirs[MAX_DIRS + 1]; /* folders for the template and its modules; NULL-terminated */
  int workers;               /* worker threads */
  double cost_bps;           /* proportional cost per trade, both sides */
  double fee;                /* fixed fee per trade */
  const char *history;       /* price history CSV for the goal odds, or NULL */
  size_t goal_paths;         /* paths for the goal odds */
} service_options;

static void service_options_default(service_options *o) {
  memset(o, 0, sizeof *o);
  o->workers = 2;
  o->goal_paths = 1000;
}

typedef struct service {
  int workers;
  keel_template *tmpl;    /* compiled once, shared by the workers */
  keel_panel *history;    /* shared read-only; NULL without -H */
  keel_advice_input opts; /* the costs and the goal odds' history, paths and seed */
} service;

/* Compiles the template and reads the history. On failure prints the
 * reason and returns -1 with nothing left allocated. */
static int service_open(service *S, const service_options *o) {
  memset(S, 0, sizeof *S);
  S->workers = o->workers;
  keel_ctx *ctx = NULL; /* a context for the start only */
  if (keel_ctx_new(NULL, &ctx) != KEEL_OK) {
    fprintf(stderr, "advice_service: out of memory\n");
    return -1;
  }
  keel_lua_config cfg;
  keel_lua_config_default(&cfg); /* the sandbox's memory and instruction limits */
  cfg.paths = o->dirs;
  keel_status st = keel_template_load(ctx, &cfg, o->template_name, &S->tmpl);
  if (st == KEEL_OK && o->history) st = keel_panel_read_csv(ctx, o->history, NULL, &S->history);
  if (st != KEEL_OK) {
    fprintf(stderr, "advice_service: %s\n", keel_errmsg(ctx));
    keel_template_free(S->tmpl);
    keel_ctx_free(ctx);
    S->tmpl = NULL;
    return -1;
  }
  keel_ctx_free(ctx); /* the template and panel keep their own allocator */
  keel_advice_input_default(&S->opts);
  keel_cost_model_default(&S->opts.costs);
  S->opts.costs.buy_bps = S->opts.costs.sell_bps = o->cost_bps;
  S->opts.costs.fee = o->fee;
  S->opts.history = S->history;
  S->opts.goal_paths = o->goal_paths;
  return 0;
}

static void service_close(service *S) {
  keel_template_free(S->tmpl);
  keel_panel_free(S->history);
  memset(S, 0, sizeof *S);
}

/* ---- one request -------------------------------------------------------- */

/* The response line (newline-terminated, malloc'd) for a response object;
 * NULL when out of memory. Takes the reference to resp. */
static char *response_line(json_t *resp) {
  char *s = resp ? json_dumps(resp, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
  json_decref(resp);
  if (!s) return NULL;
  size_t n = strlen(s);
  char *line = realloc(s, n + 2);
  if (!line) {
    free(s);
    return NULL;
  }
  line[n] = '\n';
  line[n + 1] = '\0';
  return line;
}

/* {"line": N, "id": id, "error": {"status": ..., "message": ...}} */
static char *error_line(size_t lineno, json_t *id, keel_status st, const char *message) {
  json_t *resp = json_pack("{s:I}", "line", (json_int_t)lineno);
  if (resp && id) json_object_set(resp, "id", id);
  json_t *err = json_pack("{s:s,s:s}", "status", keel_strerror(st), "message", message);
  if (!resp || !err || json_object_set_new(resp, "error", err)) {
    json_decref(resp);
    return NULL;
  }
  return response_line(resp);
}

/* Computes the response to one request line with the worker's context.
 * Returns the line to write, or NULL when out of memory. Never fails the
 * service: whatever is wrong with the request goes into an error line. */
static char *handle_request(keel_ctx *ctx, const service *S, const char *req, size_t len, size_t lineno) {
  json_error_t jerr;
  json_t *root = json_loadb(req, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    char msg[JSON_ERROR_TEXT_LENGTH + 64];
    snprintf(msg, sizeof msg, "request:%d:%d: %s", jerr.line, jerr.column, jerr.text);
    return error_line(lineno, NULL, KEEL_EPARSE, msg);
  }
  json_t *id = NULL, *profile = NULL, *holdings = NULL, *quotes = NULL;
  char msg[256];
  const char *bad = NULL;
  char *pj = NULL, *hj = NULL, *qj = NULL, *advice_json = NULL, *line = NULL;
  keel_advice *a = NULL;
  json_t *resp = NULL;
  keel_status st;
  if (!json_is_object(root)) {
    bad = "request: a JSON object is needed";
  } else {
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
      if (!strcmp(key, "id")) id = v;
      else if (!strcmp(key, "profile")) profile = v;
      else if (!strcmp(key, "holdings")) holdings = v;
      else if (!strcmp(key, "quotes")) quotes = v;
      else {
        snprintf(msg, sizeof msg, "request: unknown field '%.64s' (id, profile, holdings, quotes)", key);
        bad = msg;
        break;
      }
    }
    if (!bad && !json_is_object(profile)) bad = "request: \"profile\" must be an object";
    else if (!bad && !json_is_object(quotes)) bad = "request: \"quotes\" must be an object";
    else if (!bad && holdings && !json_is_object(holdings)) bad = "request: \"holdings\" must be an object";
  }
  if (bad) {
    line = error_line(lineno, id, KEEL_EINVAL, bad);
    goto done;
  }

  /* keel_advise_json takes the three parts as JSON text and checks them
   * (unknown fields, ranges, every symbol quoted). A service whose data
   * arrives in another shape fills a keel_advice_input itself. */
  pj = json_dumps(profile, JSON_COMPACT);
  hj = holdings ? json_dumps(holdings, JSON_COMPACT) : NULL;
  qj = json_dumps(quotes, JSON_COMPACT);
  if (!pj || !qj || (holdings && !hj)) goto done; /* out of memory */
  st = keel_advise_json(ctx, S->tmpl, pj, hj, qj, &S->opts, &a);
  if (st == KEEL_OK) st = keel_advice_to_json(ctx, a, &advice_json);
  if (st != KEEL_OK) {
    line = error_line(lineno, id, st, keel_errmsg(ctx));
    goto done;
  }
  /* keel prints the advice indented; one line per response needs it
   * compact, so it is read back into the response object */
  resp = json_pack("{s:I}", "line", (json_int_t)lineno);
  if (resp && id) json_object_set(resp, "id", id);
  if (resp && !json_object_set_new(resp, "advice", json_loads(advice_json, 0, &jerr))) line = response_line(resp);
  else json_decref(resp);
done:
  free(advice_json);
  keel_advice_free(a);
  free(pj);
  free(hj);
  free(qj);
  json_decref(root);
  return line;
}

/* ---- the ring of requests, the workers and the writer ------------------- */

enum { SLOT_FREE, SLOT_READ, SLOT_BUSY, SLOT_DONE };

typedef struct slot {
  int state;
  size_t lineno;
  char *req;     /* the request line (NULL when too long) */
  size_t len;
  char *resp;    /* the response line (NULL: out of memory) */
} slot;

typedef struct ring {
  const service *S;
  FILE *out;
  pthread_mutex_t mu;
  pthread_cond_t readable; /* a slot was read, or the input ended */
  pthread_cond_t done;     /* a response is ready */
  pthread_cond_t freed;    /* a slot was written and is free again */
  slot *slots;
  size_t nslots;
  size_t next_read, next_take, next_write; /* request numbers, 0-based */
  int eof;         /* no more requests will be read */
  int write_error; /* errno of a failed write (0: none) */
} ring;

static void *worker_main(void *arg) {
  ring *R = arg;
  keel_ctx *ctx = NULL;
  keel_status ctx_st = keel_ctx_new(NULL, &ctx); /* this thread's own context */
  pthread_mutex_lock(&R->mu);
  for (;;) {
    while (R->next_take == R->next_read && !R->eof) pthread_cond_wait(&R->readable, &R->mu);
    if (R->next_take == R->next_read) break; /* input ended and all taken */
    slot *s = &R->slots[R->next_take++ % R->nslots];
    s->state = SLOT_BUSY;
    pthread_mutex_unlock(&R->mu);

    char *resp = NULL;
    if (!s->req) {
      char msg[96];
      snprintf(msg, sizeof msg, "request: longer than %u bytes", MAX_REQUEST);
      resp = error_line(s->lineno, NULL, KEEL_ELIMIT, msg);
    } else if (ctx_st == KEEL_OK) {
      resp = handle_request(ctx, R->S, s->req, s->len, s->lineno);
    }
    free(s->req);
    s->req = NULL;

    pthread_mutex_lock(&R->mu);
    s->resp = resp;
    s->state = SLOT_DONE;
    pthread_cond_broadcast(&R->done);
  }
  pthread_mutex_unlock(&R->mu);
  keel_ctx_free(ctx);
  return NULL;
}

static void *writer_main(void *arg) {
  ring *R = arg;
  int dirty = 0; /* written since the last flush */
  pthread_mutex_lock(&R->mu);
  for (;;) {
    slot *s = &R->slots[R->next_write % R->nslots];
    if (s->state != SLOT_DONE && dirty) {
      /* nothing more to write yet: flush (outside the lock), so a client
       * waiting for its answer gets it now */
      pthread_mutex_unlock(&R->mu);
      int err = fflush(R->out) ? (errno ? errno : EIO) : 0;
      dirty = 0;
      pthread_mutex_lock(&R->mu);
      if (err && !R->write_error) R->write_error = err;
      continue;
    }
    if (s->state != SLOT_DONE) {
      if (R->eof && R->next_write == R->next_read) break; /* all written */
      pthread_cond_wait(&R->done, &R->mu);
      continue;
    }
    char *resp = s->resp;
    size_t lineno = s->lineno;
    int failed = R->write_error;
    pthread_mutex_unlock(&R->mu);

    /* after a failed write, responses are still taken (so the reader and
     * the workers never wait for a slot) but not written */
    int err = 0;
    if (!failed) {
      char oom[128];
      if (!resp)
        snprintf(oom, sizeof oom, "{\"line\":%zu,\"error\":{\"status\":\"%s\",\"message\":\"out of memory\"}}\n",
                 lineno, keel_strerror(KEEL_ENOMEM));
      if (fputs(resp ? resp : oom, R->out) == EOF) err = errno ? errno : EIO;
      dirty = 1;
    }
    free(resp);

    pthread_mutex_lock(&R->mu);
    if (err && !R->write_error) R->write_error = err;
    s->resp = NULL;
    s->state = SLOT_FREE;
    R->next_write++;
    pthread_cond_signal(&R->freed);
  }
  pthread_mutex_unlock(&R->mu);
  return NULL;
}

/* The requests are read with read(2) from a descriptor, through a buffer
 * of our own rather than stdio, so a signal interrupts a read that waits
 * for a client and the loop sees the stop flag at once. */
typedef struct reader {
  int fd;
  int eof;
  size_t pos, end;
  char buf[1 << 16];
} reader;

/* Reads the next line (without its newline) into *line, keeping at most
 * MAX_REQUEST bytes (*too_long set when there were more). Returns 1 with
 * a line, 0 at the end of the input, -1 when reading failed (errno) or
 * was interrupted with *stop set. */
static int read_line(reader *rd, char **line, size_t *cap, size_t *len, int *too_long, volatile sig_atomic_t *stop) {
  size_t n = 0;
  int ended = 0; /* a newline ended the line */
  *too_long = 0;
  for (;;) {
    if (rd->pos == rd->end) {
      if (rd->eof) break;
      if (*stop) return -1;
      ssize_t got = read(rd->fd, rd->buf, sizeof rd->buf);
      if (got < 0 && errno == EINTR && !*stop) continue; /* a signal we do not stop for */
      if (got < 0) return -1;
      if (got == 0) {
        rd->eof = 1;
        break;
      }
      rd->pos = 0;
      rd->end = (size_t)got;
    }
    const char *start = rd->buf + rd->pos;
    const char *nl = memchr(start, '\n', rd->end - rd->pos);
    size_t take = nl ? (size_t)(nl - start) : rd->end - rd->pos;
    rd->pos += take + (nl != NULL);
    size_t keep = take;
    if (n + keep > MAX_REQUEST) {
      keep = MAX_REQUEST - n;
      *too_long = 1;
    }
    if (n + keep + 1 > *cap) {
      size_t ncap = *cap ? *cap : 4096;
      while (ncap < n + keep + 1) ncap *= 2;
      char *nb = realloc(*line, ncap);
      if (!nb) {
        errno = ENOMEM;
        return -1;
      }
      *line = nb;
      *cap = ncap;
    }
    memcpy(*line + n, start, keep);
    n += keep;
    if (nl) {
      ended = 1;
      break;
    }
  }
  if (!ended && n == 0 && !*too_long) return 0; /* the end, and no last line without a newline */
  (*line)[n] = '\0';
  *len = n;
  return 1;
}

static int blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
  return 1;
}

/* Serves the requests read from the descriptor in, writing the responses
 * to out, until the end of the input or until *stop is set (by a signal
 * handler; the signal must not restart reads, see main). Returns 0 when
 * every request read got its response line, -1 after a read or write
 * failure (printed). */
static int serve(const service *S, int in, FILE *out, volatile sig_atomic_t *stop) {
  ring R;
  memset(&R, 0, sizeof R);
  R.S = S;
  R.out = out;
  R.nslots = 4 * (size_t)S->workers;
  if (!(R.slots = calloc(R.nslots, sizeof *R.slots))) {
    fprintf(stderr, "advice_service: out of memory\n");
    return -1;
  }
  pthread_mutex_init(&R.mu, NULL);
  pthread_cond_init(&R.readable, NULL);
  pthread_cond_init(&R.done, NULL);
  pthread_cond_init(&R.freed, NULL);

  /* The threads start with SIGINT and SIGTERM blocked, so these signals go
   * to this (the reading) thread and interrupt its read. */
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  pthread_t threads[MAX_WORKERS + 1];
  int nthreads = 0, rc = 0;
  if (pthread_create(&threads[nthreads], NULL, writer_main, &R) == 0) nthreads++;
  for (int i = 0; nthreads > 0 && i < S->workers; i++)
    if (pthread_create(&threads[nthreads], NULL, worker_main, &R) == 0) nthreads++;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (nthreads < 2) { /* not even the writer and one worker */
    fprintf(stderr, "advice_service: cannot start threads\n");
    rc = -1;
  }

  reader *rd = rc == 0 ? malloc(sizeof *rd) : NULL;
  if (rd) {
    rd->fd = in;
    rd->eof = 0;
    rd->pos = rd->end = 0;
  } else if (rc == 0) {
    fprintf(stderr, "advice_service: out of memory\n");
    rc = -1;
  }
  char *buf = NULL;
  size_t cap = 0, len = 0, lineno = 0;
  int too_long, got;
  while (rc == 0 && !*stop && (got = read_line(rd, &buf, &cap, &len, &too_long, stop)) != 0) {
    if (got < 0) {
      if (!*stop) {
        fprintf(stderr, "advice_service: reading the requests: %s\n", strerror(errno));
        rc = -1;
      }
      break;
    }
    lineno++;
    if (!too_long && blank(buf, len)) continue;
    char *req = NULL;
    if (!too_long) {
      if (!(req = malloc(len + 1))) {
        fprintf(stderr, "advice_service: out of memory\n");
        rc = -1;
        break;
      }
      memcpy(req, buf, len + 1);
    }
    pthread_mutex_lock(&R.mu);
    slot *s = &R.slots[R.next_read % R.nslots];
    while (s->state != SLOT_FREE) pthread_cond_wait(&R.freed, &R.mu);
    int failed = R.write_error;
    if (!failed) {
      *s = (slot){.state = SLOT_READ, .lineno = lineno, .req = req, .len = len};
      R.next_read++;
      pthread_cond_signal(&R.readable);
    }
    pthread_mutex_unlock(&R.mu);
    if (failed) { /* nobody reads the responses any more */
      free(req);
      break;
    }
  }
  free(buf);
  free(rd);

  /* No more requests: the workers finish the ones read, the writer writes
   * them, and all threads end. */
  pthread_mutex_lock(&R.mu);
  R.eof = 1;
  pthread_cond_broadcast(&R.readable);
  pthread_cond_broadcast(&R.done);
  pthread_mutex_unlock(&R.mu);
  for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
  if (R.write_error) {
    fprintf(stderr, "advice_service: writing the responses: %s\n", strerror(R.write_error));
    rc = -1;
  }
  pthread_cond_destroy(&R.freed);
  pthread_cond_destroy(&R.done);
  pthread_cond_destroy(&R.readable);
  pthread_mutex_destroy(&R.mu);
  free(R.slots);
  return rc;
}

/* ---- the command ----------------------------------------------------------- */

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static const char USAGE[] =
    "Usage: advice_service [options] TEMPLATE [REQUESTS]\n"
    "\n"
    "Serves advice requests, one JSON object a line ({\"id\", \"profile\",\n"
    "\"holdings\", \"quotes\"}), from REQUESTS or stdin, writing one JSON line\n"
    "per request to stdout in request order (docs/start-backend.md).\n"
    "\n"
    "  TEMPLATE   a template file, or a name looked up in the -S folders\n"
    "  -j N       worker threads, 1 to 64 (2)\n"
    "  -c BPS     proportional cost per trade, both sides, in basis points (0)\n"
    "  -f FEE     fixed fee per trade (0)\n"
    "  -H CSV     price history for the odds of reaching the goal\n"
    "  -n N       paths for the goal odds (1000)\n"
    "  -S DIR     a folder to search for the template and its modules (up to 8)\n";

static int usage_error(const char *what, const char *arg) {
  fprintf(stderr, "advice_service: %s%s%s\n\n%s", what, arg ? " " : "", arg ? arg : "", USAGE);
  return 2;
}

/* A number in [lo, hi] from the whole of s. */
static int number_arg(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !(v >= lo && v <= hi)) return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  service_options o;
  service_options_default(&o);
  size_t ndirs = 0;
  double v;
  int ch;
  optind = 1;
  while ((ch = getopt(argc, argv, ":j:c:f:H:n:S:h")) != -1) {
    switch (ch) {
      case 'j':
        if (number_arg(optarg, 1, MAX_WORKERS, &v) || v != (double)(long)v) return usage_error("-j: not from 1 to 64:", optarg);
        o.workers = (int)v;
        break;
      case 'c':
        if (number_arg(optarg, 0, 9999, &o.cost_bps)) return usage_error("-c: not from 0 to 9999:", optarg);
        break;
      case 'f':
        if (number_arg(optarg, 0, 1e12, &o.fee)) return usage_error("-f: not a fee >= 0:", optarg);
        break;
      case 'H': o.history = optarg; break;
      case 'n':
        if (number_arg(optarg, 10, 1e6, &v) || v != (double)(long)v) return usage_error("-n: not from 10 to 1000000:", optarg);
        o.goal_paths = (size_t)v;
        break;
      case 'S':
        if (ndirs == MAX_DIRS) return usage_error("at most 8 -S folders", NULL);
        o.dirs[ndirs++] = optarg;
        break;
      case 'h': fputs(USAGE, stdout); return 0;
      case ':': return usage_error("an option needs a value:", argv[optind - 1]);
      default: return usage_error("unknown option:", argv[optind - 1]);
    }
  }
  if (optind == argc) return usage_error("the template is missing", NULL);
  if (argc - optind > 2) return usage_error("unexpected argument:", argv[optind + 2]);
  o.template_name = argv[optind];
  const char *requests = optind + 1 < argc ? argv[optind + 1] : NULL;

  int in = 0, opened = 0; /* stdin, unless a file is named */
  if (requests && strcmp(requests, "-")) {
    if ((in = open(requests, O_RDONLY | O_CLOEXEC)) >= 0) opened = 1;
  }
  if (in < 0) {
    fprintf(stderr, "advice_service: %s: %s\n", requests, strerror(errno));
    return 1;
  }
  service S;
  if (service_open(&S, &o)) {
    if (opened) close(in);
    return 1;
  }

  /* SIGINT and SIGTERM end the service cleanly: no SA_RESTART, so they
   * interrupt the read. A closed stdout shows as a write error, not as a
   * SIGPIPE that would kill the process. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);

  int rc = serve(&S, in, stdout, &stop_requested) ? 1 : 0;
  service_close(&S);
  if (opened) close(in);
  return rc;
}
