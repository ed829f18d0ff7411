/* keel — context, allocator and error state. */
#include <errno.h>
#include <gsl/gsl_errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "keel/version.h"

#define KEEL_ERRMSG_SIZE 1024

struct keel_ctx {
  keel_config cfg;
  keeli_heap heap;
  keel_status errcode;
  char errmsg[KEEL_ERRMSG_SIZE];
};

/* ---- allocator -------------------------------------------------------- */

static void *libc_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
}

/* Header in front of every block: its size, padded to max_align_t. */
#define HDR (sizeof(max_align_t) > sizeof(size_t) ? sizeof(max_align_t) : sizeof(size_t))

void *keeli_heap_alloc(const keeli_heap *h, size_t n) {
  if (n > SIZE_MAX - HDR) return NULL;
  unsigned char *b = h->fn(h->ud, NULL, 0, n + HDR);
  if (!b) return NULL;
  memcpy(b, &n, sizeof n);
  return b + HDR;
}

void *keeli_heap_realloc(const keeli_heap *h, void *p, size_t n) {
  if (!p) return keeli_heap_alloc(h, n);
  if (n == 0) {
    keeli_heap_free(h, p);
    return NULL;
  }
  if (n > SIZE_MAX - HDR) return NULL;
  unsigned char *b = (unsigned char *)p - HDR;
  size_t old;
  memcpy(&old, b, sizeof old);
  unsigned char *nb = h->fn(h->ud, b, old + HDR, n + HDR);
  if (!nb) return NULL;
  memcpy(nb, &n, sizeof n);
  return nb + HDR;
}

void keeli_heap_free(const keeli_heap *h, void *p) {
  if (!p) return;
  unsigned char *b = (unsigned char *)p - HDR;
  size_t old;
  memcpy(&old, b, sizeof old);
  h->fn(h->ud, b, old + HDR, 0);
}

const keeli_heap *keeli_ctx_heap(const keel_ctx *ctx) { return &ctx->heap; }

void *keeli_alloc(keel_ctx *ctx, size_t n) {
  void *p = keeli_heap_alloc(&ctx->heap, n ? n : 1);
  if (!p) keeli_error(ctx, KEEL_ENOMEM, "out of memory (allocating %zu bytes)", n);
  return p;
}

void *keeli_alloc_array(keel_ctx *ctx, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) {
    keeli_error(ctx, KEEL_ENOMEM, "out of memory (%zu x %zu bytes overflows)", n, size);
    return NULL;
  }
  return keeli_alloc(ctx, n * size);
}

void *keeli_calloc(keel_ctx *ctx, size_t n, size_t size) {
  void *p = keeli_alloc_array(ctx, n, size);
  if (p) memset(p, 0, n * size);
  return p;
}

void *keeli_realloc_array(keel_ctx *ctx, void *p, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) {
    keeli_error(ctx, KEEL_ENOMEM, "out of memory (%zu x %zu bytes overflows)", n, size);
    return NULL;
  }
  size_t bytes = (n * size) != 0 ? n * size : 1;
  void *q = keeli_heap_realloc(&ctx->heap, p, bytes);
  if (!q) keeli_error(ctx, KEEL_ENOMEM, "out of memory (allocating %zu bytes)", bytes);
  return q;
}

void keeli_free(keel_ctx *ctx, void *p) { keeli_heap_free(&ctx->heap, p); }

char *keeli_strdup(keel_ctx *ctx, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = keeli_alloc(ctx, n);
  if (d) memcpy(d, s, n);
  return d;
}

/* The capacity keeli_reserve grows *cap to for need (from 16, doubling). */
static size_t grown_cap(size_t cap, size_t need) {
  size_t ncap = cap ? cap : 16;
  while (ncap < need) {
    if (ncap > SIZE_MAX / 2) return need;
    ncap *= 2;
  }
  return ncap;
}

int keeli_reserve(keel_ctx *ctx, void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  const size_t ncap = grown_cap(*cap, need);
  void *q = keeli_realloc_array(ctx, *p, ncap, elem);
  if (!q) return -1;
  *p = q;
  *cap = ncap;
  return 0;
}

int keeli_heap_reserve(const keeli_heap *h, void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  const size_t ncap = grown_cap(*cap, need);
  if (elem && ncap > SIZE_MAX / elem) return -1;
  void *q = keeli_heap_realloc(h, *p, ncap * elem);
  if (!q) return -1;
  *p = q;
  *cap = ncap;
  return 0;
}

/* ---- errors ------------------------------------------------------------ */

keel_status keeli_verror(keel_ctx *ctx, keel_status code, const char *fmt, va_list ap) {
  ctx->errcode = code;
  int n = vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
  if (n < 0) snprintf(ctx->errmsg, sizeof ctx->errmsg, "%s", keel_strerror(code));
  return code;
}

keel_status keeli_error(keel_ctx *ctx, keel_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  keeli_verror(ctx, code, fmt, ap);
  va_end(ap);
  return code;
}

const char *keel_strerror(keel_status st) {
  switch (st) {
    case KEEL_OK: return "ok";
    case KEEL_EINVAL: return "invalid argument";
    case KEEL_ENOMEM: return "out of memory";
    case KEEL_EIO: return "input/output error";
    case KEEL_EPARSE: return "malformed input";
    case KEEL_EINFEASIBLE: return "infeasible";
    case KEEL_ENUMERIC: return "numerical failure";
    case KEEL_ELUA: return "Lua error";
    case KEEL_ELIMIT: return "limit reached";
    case KEEL_ESTATE: return "invalid state";
  }
  return "unknown status";
}

const char *keel_errmsg(const keel_ctx *ctx) { return ctx ? ctx->errmsg : "no context"; }
keel_status keel_errcode(const keel_ctx *ctx) { return ctx ? ctx->errcode : KEEL_EINVAL; }
void keel_clear_error(keel_ctx *ctx) {
  ctx->errcode = KEEL_OK;
  ctx->errmsg[0] = '\0';
}

/* ---- context ----------------------------------------------------------- */

/* GSL's default error handler prints and calls abort(). It is a process-wide
 * setting, so it is switched off exactly once, the first time any context is
 * made; keel checks GSL's status returns instead. A host that installs its
 * own GSL handler afterwards takes that responsibility. */
static pthread_once_t gsl_once = PTHREAD_ONCE_INIT;
static void gsl_handler_off(void) { gsl_set_error_handler_off(); }

void keel_config_default(keel_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->alloc = NULL;
  cfg->alloc_ud = NULL;
  cfg->seed = 0x6b65656cULL; /* "keel" */
  cfg->threads = 1;
}

keel_status keel_ctx_new(const keel_config *cfg, keel_ctx **out) {
  keel_config c;
  if (!out) return KEEL_EINVAL;
  *out = NULL;
  if (cfg)
    c = *cfg;
  else
    keel_config_default(&c);
  if (!c.alloc) c.alloc = libc_alloc;
  if (c.threads < 1) c.threads = 1;
  pthread_once(&gsl_once, gsl_handler_off);
  keel_ctx *ctx = c.alloc(c.alloc_ud, NULL, 0, sizeof *ctx);
  if (!ctx) return KEEL_ENOMEM;
  memset(ctx, 0, sizeof *ctx);
  ctx->cfg = c;
  ctx->heap.fn = c.alloc;
  ctx->heap.ud = c.alloc_ud;
  *out = ctx;
  return KEEL_OK;
}

void keel_ctx_free(keel_ctx *ctx) {
  if (!ctx) return;
  ctx->heap.fn(ctx->heap.ud, ctx, sizeof *ctx, 0);
}

const keel_config *keel_ctx_config(const keel_ctx *ctx) { return &ctx->cfg; }

const char *keel_version(void) { return KEEL_VERSION; }
int keel_version_number(void) { return KEEL_VERSION_NUMBER; }

unsigned long long keeli_fnv1a(unsigned long long h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}
