/* Solver half of bench/bench_mv.py: reads a long-only utility problem with
 * buy/sell costs (raw little-endian doubles written by the script), times
 * keel's cold solve, a warm-started re-solve after a small change in mu
 * and w0, and one dpotrf of an n x n matrix; prints one JSON line and
 * writes the weights to DIR/w_keel.bin.
 *
 * Usage: bench_mv DIR N K REPEATS   (K = 0: dense covariance S.bin;
 *        K > 0: factor model B.bin (n x k), F.bin (k x k), d.bin) */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/keel.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double *load(const char *dir, const char *name, size_t count) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  double *v = malloc(count * sizeof *v);
  if (!f || !v || fread(v, sizeof *v, count, f) != count) {
    fprintf(stderr, "bench_mv: cannot read %s\n", path);
    exit(1);
  }
  fclose(f);
  return v;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: bench_mv DIR N K REPEATS\n");
    return 2;
  }
  const char *dir = argv[1];
  size_t n = (size_t)atol(argv[2]), k = (size_t)atol(argv[3]);
  int reps = atoi(argv[4]);
  double gamma = 1; /* the script scales S or F and d */
  double *mu = load(dir, "mu.bin", n), *w0 = load(dir, "w0.bin", n), *cb = load(dir, "cb.bin", n);
  double *cs = load(dir, "cs.bin", n), *mu2 = load(dir, "mu2.bin", n), *w02 = load(dir, "w02.bin", n);
  double *S = NULL, *B = NULL, *F = NULL, *d = NULL;
  if (k)
    B = load(dir, "B.bin", n * k), F = load(dir, "F.bin", k * k), d = load(dir, "d.bin", n);
  else
    S = load(dir, "S.bin", n * n);
  (void)gamma;
  double *q = malloc(n * sizeof *q), *A = malloc(n * sizeof *A), one = 1, *lb = calloc(n, sizeof *lb);
  double *ub = malloc(n * sizeof *ub);
  for (size_t i = 0; i < n; i++) q[i] = -mu[i], A[i] = 1, ub[i] = 1;
  keel_ctx *ctx = NULL;
  if (keel_ctx_new(NULL, &ctx)) return 1;
  keel_qp_data dat;
  memset(&dat, 0, sizeof dat);
  dat.n = n, dat.p = 1, dat.m = 0, dat.q = q, dat.A = keel_cmat_view(A, 1, n), dat.b = &one, dat.lb = lb, dat.ub = ub;
  dat.x0 = w0, dat.cu = cb, dat.cd = cs;
  if (k)
    dat.B = keel_cmat_view(B, n, k), dat.F = keel_cmat_view(F, k, k), dat.d = d;
  else
    dat.P = keel_cmat_view(S, n, n);
  keel_qp *qp = NULL;
  if (keel_qp_new(ctx, &(keel_qp_dims){n, 1, 0, k, 1}, &qp)) {
    fprintf(stderr, "bench_mv: %s\n", keel_errmsg(ctx));
    return 1;
  }
  keel_qp_settings set;
  keel_qp_settings_default(&set);
  keel_qp_result r;
  double cold = INFINITY, warm = INFINITY;
  int iters = 0, polished = 0, warm_ok = 1, warm_solves = 0;
  double *w = malloc(n * sizeof *w);
  for (int rep = 0; rep < reps; rep++) {
    /* cold: the first problem */
    for (size_t i = 0; i < n; i++) q[i] = -mu[i];
    dat.x0 = w0;
    set.warm_start = 0;
    double t0 = now();
    if (keel_qp_solve(ctx, qp, &dat, &set, &r) || r.status != KEEL_QP_OPTIMAL) {
      fprintf(stderr, "bench_mv: cold solve failed: %s %s\n", keel_errmsg(ctx), keel_qp_status_name(r.status));
      return 1;
    }
    cold = fmin(cold, now() - t0);
    iters = r.iterations, polished = r.polished;
    memcpy(w, r.x, n * sizeof *w);
    /* warm: mu and w0 moved a little */
    for (size_t i = 0; i < n; i++) q[i] = -mu2[i];
    dat.x0 = w02;
    set.warm_start = 1;
    t0 = now();
    if (keel_qp_solve(ctx, qp, &dat, &set, &r) || r.status != KEEL_QP_OPTIMAL) {
      fprintf(stderr, "bench_mv: warm solve failed\n");
      return 1;
    }
    warm = fmin(warm, now() - t0);
    warm_ok &= r.warm;
    warm_solves = r.polish_iter;
  }
  /* the cold solve of the changed problem, for the ratio */
  double cold2 = INFINITY;
  for (int rep = 0; rep < reps; rep++) {
    set.warm_start = 0;
    double t0 = now();
    keel_qp_solve(ctx, qp, &dat, &set, &r);
    cold2 = fmin(cold2, now() - t0);
  }
  /* one dpotrf of an n x n SPD matrix (the covariance, or for a factor
   * model a formed one), best of the repeats */
  double *M = malloc(n * n * sizeof *M), *Mc = malloc(n * n * sizeof *Mc), tpotrf = INFINITY;
  if (!M || !Mc) return 1;
  if (k) {
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j <= i; j++) {
        double v = i == j ? d[i] : 0;
        for (size_t a = 0; a < k; a++)
          for (size_t c = 0; c < k; c++) v += B[i * k + a] * F[a * k + c] * B[j * k + c];
        M[i * n + j] = M[j * n + i] = v;
      }
  } else {
    memcpy(M, S, n * n * sizeof *M);
  }
  for (int rep = 0; rep < (n > 2000 ? 1 : reps); rep++) {
    memcpy(Mc, M, n * n * sizeof *M);
    double t0 = now();
    LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, Mc, (lapack_int)n);
    tpotrf = fmin(tpotrf, now() - t0);
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/w_keel.bin", dir);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(w, sizeof *w, n, f) != n) return 1;
  fclose(f);
  printf("{\"n\": %zu, \"k\": %zu, \"cold\": %.6g, \"warm\": %.6g, \"cold_changed\": %.6g, \"dpotrf\": %.6g, "
         "\"iterations\": %d, \"polished\": %d, \"warm_used\": %d, \"warm_solves\": %d}\n",
         n, k, cold, warm, cold2, tpotrf, iters, polished, warm_ok, warm_solves);
  keel_qp_free(qp);
  keel_ctx_free(ctx);
  free(mu), free(w0), free(cb), free(cs), free(mu2), free(w02), free(S), free(B), free(F), free(d);
  free(q), free(A), free(lb), free(ub), free(w), free(M), free(Mc);
  return 0;
}
