/* keel — Monte Carlo path generators and the scenario overlays they carry
 * (keel/mc.h, docs/stress.md). */
#include <fnmatch.h>
#include <lapacke.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/internal.h"
#include "keel/date.h"
#include "keel/mc.h"

/* ---- random numbers ------------------------------------------------------ */

static inline uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline uint64_t mix64(uint64_t v) {
  uint64_t x = v;
  return splitmix64(&x);
}

void keel_rng_seed(keel_rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = mix64(seed) ^ mix64(stream + 0x9e3779b97f4a7c15ULL);
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
  if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1; /* the one forbidden state */
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(keel_rng *r) {
  uint64_t *s = r->s;
  const uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return out;
}

static inline double rng_uniform(keel_rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t keel_rng_next(keel_rng *r) { return rng_next(r); }
double keel_rng_uniform(keel_rng *r) { return rng_uniform(r); }

/* The 256-layer ziggurat (Marsaglia and Tsang 2000): layer i (1..255) is
 * the rectangle of width zx[i] between heights f(zx[i]) and f(zx[i+1]),
 * f(x) = exp(-x^2/2); layer 0 is the base strip plus the tail beyond R,
 * given the width zx[0] = V / f(R) of a rectangle of the same area V. The
 * tables are constants, built once (pthread_once) and only read after. */
#define ZIG_N 256
#define ZIG_R 3.6541528853610088
#define ZIG_V 0.00492867323399
static double zx[ZIG_N + 1], zf[ZIG_N + 1], zx52[ZIG_N], zx51[ZIG_N]; /* zx5k = zx 2^-5k (exactly) */
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static void zig_build(void) {
  zx[0] = ZIG_V / exp(-0.5 * ZIG_R * ZIG_R);
  zx[1] = ZIG_R;
  for (int i = 2; i < ZIG_N; i++) zx[i] = sqrt(-2 * log(ZIG_V / zx[i - 1] + exp(-0.5 * zx[i - 1] * zx[i - 1])));
  zx[ZIG_N] = 0;
  for (int i = 0; i <= ZIG_N; i++) zf[i] = exp(-0.5 * zx[i] * zx[i]);
  for (int i = 0; i < ZIG_N; i++) zx52[i] = zx[i] * 0x1.0p-52;
  for (int i = 0; i < ZIG_N; i++) zx51[i] = zx[i] * 0x1.0p-51;
}

static void zig_init(void) { pthread_once(&zig_once, zig_build); }

static double normal_slow(keel_rng *r, unsigned i, double x) {
  if (i == 0) {
    /* the tail beyond R (Marsaglia 1964) */
    double a, b;
    do {
      a = -log(1 - rng_uniform(r)) / ZIG_R;
      b = -log(1 - rng_uniform(r));
    } while (b + b < a * a);
    return x < 0 ? -(ZIG_R + a) : ZIG_R + a;
  }
  if (zf[i] + rng_uniform(r) * (zf[i + 1] - zf[i]) < exp(-0.5 * x * x)) return x;
  return NAN; /* rejected: draw again */
}

static inline double rng_normal(keel_rng *r) {
  for (;;) {
    uint64_t b = rng_next(r);
    unsigned i = (unsigned)(b & 0xff);
    /* bits 11..63: uniform on [-1, 1), times zx[i]; the power of two
     * folded into the table changes no bit */
    double x = (double)((int64_t)b >> 11) * zx52[i];
    if (fabs(x) < zx[i + 1]) return x;
    x = normal_slow(r, i, x);
    if (x == x) return x;
  }
}

/* The normal generator's paths draw from eight interleaved streams
 * (lanes) and a spare, eight normals at a time. Draw q of lane l gives
 * candidate 8 q + l: the layer i in its low 8 bits and x = ((b >> 12) - 2^51) zx[i]
 * 2^-51 from its top 52 (a conversion that is exact with integer and
 * double operations alone, so the lanes run as vectors whatever the
 * instruction set, with the same bits). A candidate that fails the fast
 * test |x| < zx[i + 1] (0.7% of them) is finished by the spare stream in
 * the candidates' order: normal_slow (the tail, or the wedge's uniform)
 * and, if that rejects, lane_normal draws on the spare until one is taken.
 * The lanes never wait for the rare cases, which is what lets them run
 * as vectors; the spare's uniforms are independent of the candidate, so
 * each normal is still an exact ziggurat draw. */
#define R4_L 8 /* lanes */
typedef struct rng4 {
  uint64_t s[4][R4_L]; /* s[w][l]: word w of lane l (a lane's words across a vector) */
  keel_rng spare;
} rng4;

/* Lane l's state is SplitMix64 outputs 4 l .. 4 l + 3 from keel_rng_seed's
 * start (lane 0 is the stream keel_rng_seed gives), the spare's 32 .. 35. */
static void rng4_seed(rng4 *r, uint64_t seed, uint64_t stream) {
  uint64_t x = mix64(seed) ^ mix64(stream + 0x9e3779b97f4a7c15ULL);
  for (int l = 0; l < R4_L; l++) {
    for (int w = 0; w < 4; w++) r->s[w][l] = splitmix64(&x);
    if (!(r->s[0][l] | r->s[1][l] | r->s[2][l] | r->s[3][l])) r->s[0][l] = 1;
  }
  for (int w = 0; w < 4; w++) r->spare.s[w] = splitmix64(&x);
  if (!(r->spare.s[0] | r->spare.s[1] | r->spare.s[2] | r->spare.s[3])) r->spare.s[0] = 1;
}

static inline double lane_x(uint64_t b, unsigned i) {
  uint64_t ub = (b >> 12) | 0x4330000000000000ULL; /* 2^52 + (b >> 12), exactly */
  double d;
  memcpy(&d, &ub, sizeof d);
  return (d - 0x1.8p52) * zx51[i];
}

static double lane_normal(keel_rng *r) {
  for (;;) {
    const uint64_t b = rng_next(r);
    const unsigned i = (unsigned)(b & 0xff);
    double x = lane_x(b, i);
    if (fabs(x) < zx[i + 1]) return x;
    x = normal_slow(r, i, x);
    if (x == x) return x;
  }
}

/* Candidates that failed the fast test, in order: out[k] from layer i. */
#define R4_CHUNK 64 /* groups of R4_L between fix-ups */
typedef struct r4miss {
  uint32_t k, i;
} r4miss;

static void rng4_fix(rng4 *r, double *out, const r4miss *miss, size_t nmiss) {
  for (size_t q = 0; q < nmiss; q++) {
    double y = normal_slow(&r->spare, miss[q].i, out[miss[q].k]);
    out[miss[q].k] = y == y ? y : lane_normal(&r->spare);
  }
}

/* Groups [g0, g1) of the lanes, portably (one lane at a time). */
static size_t rng4_groups(rng4 *r, double *out, size_t g0, size_t g1, r4miss *miss) {
  size_t nmiss = 0;
  for (size_t g = g0; g < g1; g++)
    for (int l = 0; l < R4_L; l++) {
      keel_rng lr = {{r->s[0][l], r->s[1][l], r->s[2][l], r->s[3][l]}};
      const uint64_t b = rng_next(&lr);
      for (int w = 0; w < 4; w++) r->s[w][l] = lr.s[w];
      const unsigned i = (unsigned)(b & 0xff);
      const double x = lane_x(b, i);
      out[R4_L * g + (size_t)l] = x;
      if (!(fabs(x) < zx[i + 1])) miss[nmiss++] = (r4miss){(uint32_t)(R4_L * g + (size_t)l), i};
    }
  return nmiss;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(KEEL_NO_CLONES)
#include <immintrin.h>
#define KEEL_R4_AVX2 1
/* One xoshiro256** step of four lanes; b their outputs. */
#define R4_STEP(s0, s1, s2, s3, b)                                                                  \
  do {                                                                                              \
    const __m256i a_ = _mm256_add_epi64(s1, _mm256_slli_epi64(s1, 2)); /* s1 * 5 */                 \
    const __m256i r_ = _mm256_or_si256(_mm256_slli_epi64(a_, 7), _mm256_srli_epi64(a_, 57));        \
    const __m256i t_ = _mm256_slli_epi64(s1, 17);                                                   \
    b = _mm256_add_epi64(r_, _mm256_slli_epi64(r_, 3)); /* * 9 */                                   \
    s2 = _mm256_xor_si256(s2, s0);                                                                  \
    s3 = _mm256_xor_si256(s3, s1);                                                                  \
    s1 = _mm256_xor_si256(s1, s2);                                                                  \
    s0 = _mm256_xor_si256(s0, s3);                                                                  \
    s2 = _mm256_xor_si256(s2, t_);                                                                  \
    s3 = _mm256_or_si256(_mm256_slli_epi64(s3, 45), _mm256_srli_epi64(s3, 19));                     \
  } while (0)

/* Candidates of four lanes from their outputs b into out; the lanes that
 * fail the fast test onto miss. */
__attribute__((target("avx2"))) static inline size_t r4_cand(__m256i b, double *out, uint32_t k0, r4miss *miss,
                                                           size_t nmiss) {
  const __m256i li = _mm256_and_si256(b, _mm256_set1_epi64x(0xff));
  const __m256d d = _mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(b, 12), _mm256_set1_epi64x(0x4330000000000000LL)));
  const __m256d w = _mm256_i64gather_pd(zx51, li, 8), lim = _mm256_i64gather_pd(zx + 1, li, 8);
  const __m256d x = _mm256_mul_pd(_mm256_sub_pd(d, _mm256_set1_pd(0x1.8p52)), w);
  _mm256_storeu_pd(out + k0, x);
  const int ok = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_andnot_pd(_mm256_set1_pd(-0.0), x), lim, _CMP_LT_OQ));
  if (__builtin_expect(ok != 0xf, 0)) {
    uint64_t lv[4];
    _mm256_storeu_si256((__m256i *)lv, li);
    for (int l = 0; l < 4; l++)
      if (!(ok >> l & 1)) miss[nmiss++] = (r4miss){k0 + (uint32_t)l, (uint32_t)lv[l]};
  }
  return nmiss;
}

/* rng4_groups with the lanes in AVX2 registers (two sets of four, whose
 * dependency chains overlap): the same integer and double operations, so
 * the same bits. */
__attribute__((target("avx2"))) static size_t rng4_groups_avx2(rng4 *r, double *out, size_t g0, size_t g1,
                                                             r4miss *miss) {
  __m256i s0 = _mm256_loadu_si256((const __m256i *)r->s[0]), s1 = _mm256_loadu_si256((const __m256i *)r->s[1]);
  __m256i s2 = _mm256_loadu_si256((const __m256i *)r->s[2]), s3 = _mm256_loadu_si256((const __m256i *)r->s[3]);
  __m256i u0 = _mm256_loadu_si256((const __m256i *)(r->s[0] + 4)), u1 = _mm256_loadu_si256((const __m256i *)(r->s[1] + 4));
  __m256i u2 = _mm256_loadu_si256((const __m256i *)(r->s[2] + 4)), u3 = _mm256_loadu_si256((const __m256i *)(r->s[3] + 4));
  size_t nmiss = 0;
  for (size_t g = g0; g < g1; g++) {
    __m256i b, c;
    R4_STEP(s0, s1, s2, s3, b);
    R4_STEP(u0, u1, u2, u3, c);
    nmiss = r4_cand(b, out, (uint32_t)(R4_L * g), miss, nmiss);
    nmiss = r4_cand(c, out, (uint32_t)(R4_L * g + 4), miss, nmiss);
  }
  _mm256_storeu_si256((__m256i *)r->s[0], s0);
  _mm256_storeu_si256((__m256i *)r->s[1], s1);
  _mm256_storeu_si256((__m256i *)r->s[2], s2);
  _mm256_storeu_si256((__m256i *)r->s[3], s3);
  _mm256_storeu_si256((__m256i *)(r->s[0] + 4), u0);
  _mm256_storeu_si256((__m256i *)(r->s[1] + 4), u1);
  _mm256_storeu_si256((__m256i *)(r->s[2] + 4), u2);
  _mm256_storeu_si256((__m256i *)(r->s[3] + 4), u3);
  return nmiss;
}

/* rng4_groups with the eight lanes in AVX-512 registers: the same integer
 * and double operations (a rotate is one instruction here), so the same
 * bits. */
__attribute__((target("avx512f"))) static size_t rng4_groups_avx512(rng4 *r, double *out, size_t g0, size_t g1,
                                                                  r4miss *miss) {
  __m512i s0 = _mm512_loadu_si512(r->s[0]), s1 = _mm512_loadu_si512(r->s[1]);
  __m512i s2 = _mm512_loadu_si512(r->s[2]), s3 = _mm512_loadu_si512(r->s[3]);
  const __m512i m8 = _mm512_set1_epi64(0xff), e52 = _mm512_set1_epi64(0x4330000000000000LL);
  const __m512d off = _mm512_set1_pd(0x1.8p52);
  size_t nmiss = 0;
  for (size_t g = g0; g < g1; g++) {
    const __m512i a = _mm512_add_epi64(s1, _mm512_slli_epi64(s1, 2)); /* s1 * 5 */
    const __m512i rr = _mm512_rol_epi64(a, 7);
    const __m512i t = _mm512_slli_epi64(s1, 17);
    const __m512i b = _mm512_add_epi64(rr, _mm512_slli_epi64(rr, 3)); /* * 9 */
    s2 = _mm512_xor_si512(s2, s0);
    s3 = _mm512_xor_si512(s3, s1);
    s1 = _mm512_xor_si512(s1, s2);
    s0 = _mm512_xor_si512(s0, s3);
    s2 = _mm512_xor_si512(s2, t);
    s3 = _mm512_rol_epi64(s3, 45);
    const __m512i li = _mm512_and_si512(b, m8);
    const __m512d d = _mm512_castsi512_pd(_mm512_or_si512(_mm512_srli_epi64(b, 12), e52));
    const __m512d w = _mm512_i64gather_pd(li, zx51, 8), lim = _mm512_i64gather_pd(li, zx + 1, 8);
    const __m512d x = _mm512_mul_pd(_mm512_sub_pd(d, off), w);
    _mm512_storeu_pd(out + R4_L * g, x);
    const unsigned ok = _mm512_cmp_pd_mask(_mm512_abs_pd(x), lim, _CMP_LT_OQ);
    if (__builtin_expect(ok != 0xff, 0)) {
      uint64_t lv[8];
      _mm512_storeu_si512(lv, li);
      for (int l = 0; l < 8; l++)
        if (!(ok >> l & 1)) miss[nmiss++] = (r4miss){(uint32_t)(R4_L * g) + (uint32_t)l, (uint32_t)lv[l]};
    }
  }
  _mm512_storeu_si512(r->s[0], s0);
  _mm512_storeu_si512(r->s[1], s1);
  _mm512_storeu_si512(r->s[2], s2);
  _mm512_storeu_si512(r->s[3], s3);
  return nmiss;
}
#endif

int keeli_simd_level(int cap) {
#ifdef KEEL_R4_AVX2
  /* (libgcc's check includes the OS's saving of the vector registers) */
  const int have = __builtin_cpu_supports("avx512f") ? KEELI_SIMD_AVX512
                   : __builtin_cpu_supports("avx2")  ? KEELI_SIMD_AVX2
                                                     : KEELI_SIMD_PORTABLE;
  return have < cap ? have : cap < 0 ? 0 : cap;
#else
  (void)cap;
  return KEELI_SIMD_PORTABLE;
#endif
}

/* m normals into out, m a multiple of R4_L. */
static void rng4_normals(rng4 *r, double *out, size_t m, int vec) {
  (void)vec; /* (a build without the vector code) */
  r4miss miss[R4_L * R4_CHUNK];
  for (size_t g0 = 0; g0 < m / R4_L; g0 += R4_CHUNK) {
    const size_t g1 = m / R4_L - g0 < R4_CHUNK ? m / R4_L : g0 + R4_CHUNK;
    size_t nmiss;
#ifdef KEEL_R4_AVX2
    if (vec >= KEELI_SIMD_AVX512)
      nmiss = rng4_groups_avx512(r, out, g0, g1, miss);
    else if (vec)
      nmiss = rng4_groups_avx2(r, out, g0, g1, miss);
    else
#endif
      nmiss = rng4_groups(r, out, g0, g1, miss);
    rng4_fix(r, out, miss, nmiss);
  }
}

void keeli_mc_lane_normals(uint64_t seed, uint64_t stream, double *out, size_t m, int cap) {
  zig_init();
  rng4 r;
  rng4_seed(&r, seed, stream);
  rng4_normals(&r, out, m, keeli_simd_level(cap));
}

double keel_rng_normal(keel_rng *r) {
  zig_init();
  return rng_normal(r);
}

static double rng_gamma(keel_rng *r, double a) {
  if (a < 1) {
    double u = rng_uniform(r);
    return rng_gamma(r, a + 1) * pow(1 - u, 1 / a);
  }
  const double d = a - 1.0 / 3, c = 1 / sqrt(9 * d);
  for (;;) {
    double x = rng_normal(r), v = 1 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    double u = 1 - rng_uniform(r);
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (log(u) < 0.5 * x * x + d * (1 - v + log(v))) return d * v;
  }
}

double keel_rng_gamma(keel_rng *r, double shape) {
  zig_init();
  if (!(shape > 0)) return NAN;
  return rng_gamma(r, shape);
}

int keeli_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* ---- exp over arrays ------------------------------------------------------ */

/* exp(x) for |x| <= 700 in straight-line code the compiler vectorises:
 * x = (64 e + j) ln2 / 64 + r, 0 <= j < 64, |r| <= ln2 / 128 (Cody-Waite,
 * ln2 / 64 split into a 36-bit head, exact times |k| < 2^17, and a tail),
 * exp(x) = 2^e 2^(j/64) exp(r): the table's 2^(j/64) correctly rounded,
 * exp(r) - 1 = r + r^2 (1/2 + r/6 + r^2/24 + r^3/120) (truncation below
 * 4e-17 relative), and s + s (exp(r) - 1) with s = 2^e 2^(j/64) built in
 * the exponent bits. Within 2 ulp of the correctly rounded value (tested
 * against libm). Blocks of a fixed EXPB values (the tail padded), so even
 * -O2's cheap vectoriser takes it and enough vectors are in flight to hide
 * the polynomial's latency. No fused multiply-adds (the clones' targets
 * have none, and the file is built with -ffp-contract=off): the same bits
 * on every machine. */
#define EXPB 32
/* read as bits (a union: C11 allows the pun) */
static const union {
  double d[64];
  uint64_t u[64];
} EXP2_J64 = {{
    0x1.0000000000000p+0, 0x1.02c9a3e778061p+0, 0x1.059b0d3158574p+0, 0x1.0874518759bc8p+0,
    0x1.0b5586cf9890fp+0, 0x1.0e3ec32d3d1a2p+0, 0x1.11301d0125b51p+0, 0x1.1429aaea92de0p+0,
    0x1.172b83c7d517bp+0, 0x1.1a35beb6fcb75p+0, 0x1.1d4873168b9aap+0, 0x1.2063b88628cd6p+0,
    0x1.2387a6e756238p+0, 0x1.26b4565e27cddp+0, 0x1.29e9df51fdee1p+0, 0x1.2d285a6e4030bp+0,
    0x1.306fe0a31b715p+0, 0x1.33c08b26416ffp+0, 0x1.371a7373aa9cbp+0, 0x1.3a7db34e59ff7p+0,
    0x1.3dea64c123422p+0, 0x1.4160a21f72e2ap+0, 0x1.44e086061892dp+0, 0x1.486a2b5c13cd0p+0,
    0x1.4bfdad5362a27p+0, 0x1.4f9b2769d2ca7p+0, 0x1.5342b569d4f82p+0, 0x1.56f4736b527dap+0,
    0x1.5ab07dd485429p+0, 0x1.5e76f15ad2148p+0, 0x1.6247eb03a5585p+0, 0x1.6623882552225p+0,
    0x1.6a09e667f3bcdp+0, 0x1.6dfb23c651a2fp+0, 0x1.71f75e8ec5f74p+0, 0x1.75feb564267c9p+0,
    0x1.7a11473eb0187p+0, 0x1.7e2f336cf4e62p+0, 0x1.82589994cce13p+0, 0x1.868d99b4492edp+0,
    0x1.8ace5422aa0dbp+0, 0x1.8f1ae99157736p+0, 0x1.93737b0cdc5e5p+0, 0x1.97d829fde4e50p+0,
    0x1.9c49182a3f090p+0, 0x1.a0c667b5de565p+0, 0x1.a5503b23e255dp+0, 0x1.a9e6b5579fdbfp+0,
    0x1.ae89f995ad3adp+0, 0x1.b33a2b84f15fbp+0, 0x1.b7f76f2fb5e47p+0, 0x1.bcc1e904bc1d2p+0,
    0x1.c199bdd85529cp+0, 0x1.c67f12e57d14bp+0, 0x1.cb720dcef9069p+0, 0x1.d072d4a07897cp+0,
    0x1.d5818dcfba487p+0, 0x1.da9e603db3285p+0, 0x1.dfc97337b9b5fp+0, 0x1.e502ee78b3ff6p+0,
    0x1.ea4afa2a490dap+0, 0x1.efa1bee615a27p+0, 0x1.f50765b6e4540p+0, 0x1.fa7c1819e90d8p+0}};
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(KEEL_NO_CLONES)
__attribute__((target_clones("avx2", "default")))
#endif
static long expb_c(const double *x, double *out) {
  const double shift = 0x1.8p52, inv = 0x1.71547652b82fep+6 /* 64 / ln2 */, hi = 0x1.62e42fefa0000p-7,
               lo = 0x1.cf79abc9e3b3ap-46, c2 = 0.5, c3 = 1.0 / 6, c4 = 1.0 / 24, c5 = 1.0 / 120;
  long big = 0; /* how many lie outside [-700, 700]: redone clamped by the caller */
  double r[EXPB], q[EXPB], s[EXPB];
  uint64_t kb[EXPB];
  /* each step over the whole block, so its vectors do not wait on each other */
  for (size_t i = 0; i < EXPB; i++) {
    const double v = x[i];
    big += fabs(v) > 700;
    double kd = v * inv + shift;
    memcpy(&kb[i], &kd, sizeof kd);
    kd -= shift;
    r[i] = (v - kd * hi) - kd * lo;
  }
  for (size_t i = 0; i < EXPB; i++) q[i] = r[i] * r[i] * (c2 + r[i] * (c3 + r[i] * (c4 + r[i] * c5)));
  /* k = 64 e + j is in the low bits of kb (two's complement, |k| < 2^17);
   * the shift constant is a multiple of 64, so kb >> 6 ends in e */
  for (size_t i = 0; i < EXPB; i++) {
    const uint64_t sb = EXP2_J64.u[kb[i] & 63] + ((kb[i] >> 6) << 52);
    memcpy(&s[i], &sb, sizeof sb);
  }
  for (size_t i = 0; i < EXPB; i++) out[i] = s[i] + s[i] * (r[i] + q[i]);
  return big;
}

#ifdef KEEL_R4_AVX2
/* expb in AVX2 vectors, four values at a time: the same operations in the
 * same order (no fused multiply-adds), the table read by a gather, so the
 * same bits as the loops above. */
__attribute__((target("avx2"))) static long expb_avx2(const double *x, double *out) {
  const __m256d shift = _mm256_set1_pd(0x1.8p52), inv = _mm256_set1_pd(0x1.71547652b82fep+6),
                hi = _mm256_set1_pd(0x1.62e42fefa0000p-7), lo = _mm256_set1_pd(0x1.cf79abc9e3b3ap-46),
                c2 = _mm256_set1_pd(0.5), c3 = _mm256_set1_pd(1.0 / 6), c4 = _mm256_set1_pd(1.0 / 24),
                c5 = _mm256_set1_pd(1.0 / 120), lim = _mm256_set1_pd(700), sign = _mm256_set1_pd(-0.0);
  const __m256i m63 = _mm256_set1_epi64x(63);
  long big = 0;
  for (size_t i = 0; i < EXPB; i += 4) {
    const __m256d v = _mm256_loadu_pd(x + i);
    big += __builtin_popcount((unsigned)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_andnot_pd(sign, v), lim, _CMP_GT_OQ)));
    __m256d kd = _mm256_add_pd(_mm256_mul_pd(v, inv), shift);
    const __m256i kb = _mm256_castpd_si256(kd);
    kd = _mm256_sub_pd(kd, shift);
    const __m256d r = _mm256_sub_pd(_mm256_sub_pd(v, _mm256_mul_pd(kd, hi)), _mm256_mul_pd(kd, lo));
    const __m256d p = _mm256_add_pd(c2, _mm256_mul_pd(r, _mm256_add_pd(c3, _mm256_mul_pd(r, _mm256_add_pd(c4, _mm256_mul_pd(r, c5))))));
    const __m256d q = _mm256_mul_pd(_mm256_mul_pd(r, r), p);
    const __m256i t = _mm256_i64gather_epi64((const long long *)EXP2_J64.u, _mm256_and_si256(kb, m63), 8);
    const __m256d sc = _mm256_castsi256_pd(_mm256_add_epi64(t, _mm256_slli_epi64(_mm256_srli_epi64(kb, 6), 52)));
    _mm256_storeu_pd(out + i, _mm256_add_pd(sc, _mm256_mul_pd(sc, _mm256_add_pd(r, q))));
  }
  return big;
}

/* expb in AVX-512 vectors, eight values at a time: the same operations
 * again, so the same bits. */
__attribute__((target("avx512f"))) static long expb_avx512(const double *x, double *out) {
  const __m512d shift = _mm512_set1_pd(0x1.8p52), inv = _mm512_set1_pd(0x1.71547652b82fep+6),
                hi = _mm512_set1_pd(0x1.62e42fefa0000p-7), lo = _mm512_set1_pd(0x1.cf79abc9e3b3ap-46),
                c2 = _mm512_set1_pd(0.5), c3 = _mm512_set1_pd(1.0 / 6), c4 = _mm512_set1_pd(1.0 / 24),
                c5 = _mm512_set1_pd(1.0 / 120), lim = _mm512_set1_pd(700);
  const __m512i m63 = _mm512_set1_epi64(63);
  long big = 0;
  for (size_t i = 0; i < EXPB; i += 8) {
    const __m512d v = _mm512_loadu_pd(x + i);
    big += __builtin_popcount((unsigned)_mm512_cmp_pd_mask(_mm512_abs_pd(v), lim, _CMP_GT_OQ));
    __m512d kd = _mm512_add_pd(_mm512_mul_pd(v, inv), shift);
    const __m512i kb = _mm512_castpd_si512(kd);
    kd = _mm512_sub_pd(kd, shift);
    const __m512d r = _mm512_sub_pd(_mm512_sub_pd(v, _mm512_mul_pd(kd, hi)), _mm512_mul_pd(kd, lo));
    const __m512d p = _mm512_add_pd(c2, _mm512_mul_pd(r, _mm512_add_pd(c3, _mm512_mul_pd(r, _mm512_add_pd(c4, _mm512_mul_pd(r, c5))))));
    const __m512d q = _mm512_mul_pd(_mm512_mul_pd(r, r), p);
    const __m512i t = _mm512_i64gather_epi64(_mm512_and_si512(kb, m63), (const long long *)EXP2_J64.u, 8);
    const __m512d sc = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64(_mm512_srli_epi64(kb, 6), 52)));
    _mm512_storeu_pd(out + i, _mm512_add_pd(sc, _mm512_mul_pd(sc, _mm512_add_pd(r, q))));
  }
  return big;
}
#endif

/* vec: the SIMD level (the caller checked the CPU has it) */
static long expb(const double *x, double *out, int vec) {
#ifdef KEEL_R4_AVX2
  if (vec >= KEELI_SIMD_AVX512) return expb_avx512(x, out);
  if (vec) return expb_avx2(x, out);
#endif
  (void)vec;
  return expb_c(x, out);
}

/* One block of up to EXPB values, clamped to [-700, 700] when any lies outside. */
static void exp_block(const double *x, double *out, size_t m, int vec) {
  double a[EXPB] = {0}, b[EXPB];
  memcpy(a, x, m * sizeof *a);
  if (expb(a, b, vec) > 0) {
    for (size_t i = 0; i < EXPB; i++) a[i] = a[i] > 700 ? 700 : a[i] < -700 ? -700 : a[i];
    expb(a, b, vec);
  }
  memcpy(out, b, m * sizeof *b);
}

void keeli_exp_array_with(size_t n, const double *x, double *out, int cap) {
  const int vec = keeli_simd_level(cap);
  size_t i = 0;
  for (; i + EXPB <= n; i += EXPB)
    if (expb(x + i, out + i, vec) > 0) exp_block(x + i, out + i, EXPB, vec);
  if (i < n) exp_block(x + i, out + i, n - i, vec);
}

void keeli_exp_array(size_t n, const double *x, double *out) { keeli_exp_array_with(n, x, out, KEELI_SIMD_BEST); }

/* ---- the generator -------------------------------------------------------- */

enum { ACT_VOL = 1, ACT_CORR = 2, ACT_WORST = 4, ACT_SHOCK = 8 };

typedef struct cevent {
  keel_scenario_kind kind;
  size_t k0, k1;       /* steps [k0, k1) */
  unsigned char *mask; /* nassets */
  double value;        /* SHOCK: log move per step; VOL: k; CORR: weight */
  size_t row0;         /* WORST: first history row replayed */
} cevent;

struct keel_mc {
  keeli_heap heap;
  keel_mc_kind kind;
  keel_mc_freq freq;
  double spy, dof;
  size_t n, nsteps, nstates;
  double *mu, *cov, *fac, *sd; /* per state: n, n x n (per step), factor n x n, sd n */
  double *fact;                /* per state: the factor transposed (its columns as rows) */
  double *factp;               /* state 0's fact with rows padded to a multiple of 8 by zeros */
  int *tri;                    /* per state: the factor is lower triangular (Cholesky) */
  double *P, *Pcum, *init_cum; /* REGIME */
  double *hist;                /* step log returns, nhist x n, or NULL */
  size_t nhist;
  double pnew; /* BOOTSTRAP: 1 / block_mean */
  /* the scenario */
  cevent *ev;
  size_t nev;
  unsigned char *act; /* per step: which overlays act */
  double *cost_mult, *spread_mult;
  unsigned char *halted;
};

static const char *const KIND_NAMES[] = {"normal", "student_t", "bootstrap", "regime", "constant"};

const char *keel_mc_kind_name(keel_mc_kind k) { return (unsigned)k <= KEEL_MC_CONSTANT ? KIND_NAMES[k] : "unknown"; }

int keel_mc_kind_parse(const char *s, keel_mc_kind *out) {
  static const struct {
    const char *name;
    keel_mc_kind k;
  } alias[] = {{"normal", KEEL_MC_NORMAL},       {"mvn", KEEL_MC_NORMAL},       {"gbm", KEEL_MC_NORMAL},
               {"student_t", KEEL_MC_STUDENT_T}, {"t", KEEL_MC_STUDENT_T},      {"student-t", KEEL_MC_STUDENT_T},
               {"bootstrap", KEEL_MC_BOOTSTRAP}, {"regime", KEEL_MC_REGIME},    {"constant", KEEL_MC_CONSTANT},
               {"scenario", KEEL_MC_CONSTANT}};
  for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
    if (!strcmp(s, alias[i].name)) {
      *out = alias[i].k;
      return 0;
    }
  return -1;
}

void keel_mc_params_default(keel_mc_params *p) {
  memset(p, 0, sizeof *p);
  p->years = 30;
  p->dof = 5;
  p->block_mean = 21;
  p->nstates = 1;
}

void keel_mc_calibration_default(keel_mc_calibration *c) {
  memset(c, 0, sizeof *c);
  c->years = 30;
  c->periods_per_year = 252;
  keel_mean_options_default(&c->mean);
  keel_cov_options_default(&c->cov);
  c->dof = 5;
  c->nstates = 2;
}

static void free_scenario_part(keel_mc *g) {
  for (size_t e = 0; e < g->nev; e++) keeli_heap_free(&g->heap, g->ev[e].mask);
  keeli_heap_free(&g->heap, g->ev);
  keeli_heap_free(&g->heap, g->act);
  keeli_heap_free(&g->heap, g->cost_mult);
  keeli_heap_free(&g->heap, g->spread_mult);
  keeli_heap_free(&g->heap, g->halted);
  g->ev = NULL;
  g->nev = 0;
  g->act = NULL;
  g->cost_mult = g->spread_mult = NULL;
  g->halted = NULL;
}

void keel_mc_free(keel_mc *g) {
  if (!g) return;
  free_scenario_part(g);
  void *b[] = {g->mu, g->cov, g->fac, g->fact, g->factp, g->sd, g->tri, g->P, g->Pcum, g->init_cum, g->hist};
  keeli_heap h = g->heap;
  for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) keeli_heap_free(&h, b[i]);
  keeli_heap_free(&h, g);
}

/* A factor F of the per-step covariance S (n x n, row-major) with F F' = S:
 * Cholesky when S is positive definite, else Q diag(sqrt(lambda)) from its
 * eigen-decomposition when it is semidefinite. */
static keel_status factor_cov(keel_ctx *ctx, size_t n, const double *S, double *F, int *tri, const char *what) {
  double amax = 0;
  for (size_t i = 0; i < n * n; i++) {
    if (!isfinite(S[i])) return keeli_error(ctx, KEEL_EINVAL, "mc: %s covariance has a non-finite entry (%zu, %zu)",
                                            what, i / n, i % n);
    if (fabs(S[i]) > amax) amax = fabs(S[i]);
  }
  for (size_t i = 0; i < n; i++) {
    if (S[i * n + i] < 0)
      return keeli_error(ctx, KEEL_EINVAL, "mc: %s covariance has a negative variance %g (asset %zu)", what,
                         S[i * n + i], i);
    for (size_t j = 0; j < i; j++)
      if (fabs(S[i * n + j] - S[j * n + i]) > 1e-12 * amax)
        return keeli_error(ctx, KEEL_EINVAL, "mc: %s covariance is not symmetric at (%zu, %zu)", what, i, j);
  }
  double *a = keeli_alloc_array(ctx, n * n, sizeof *a);
  if (!a) return KEEL_ENOMEM;
  memcpy(a, S, n * n * sizeof *a); /* symmetric: column-major reads the same */
  lapack_int info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', (lapack_int)n, a, (lapack_int)n);
  keel_status st = KEEL_OK;
  if (info == 0) {
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) F[i * n + j] = j <= i ? a[i + j * n] : 0;
    *tri = 1;
  } else {
    memcpy(a, S, n * n * sizeof *a);
    double *w = keeli_alloc_array(ctx, n, sizeof *w), q;
    double *work = NULL;
    if (!w) {
      keeli_free(ctx, a);
      return KEEL_ENOMEM;
    }
    info = LAPACKE_dsyev_work(LAPACK_COL_MAJOR, 'V', 'L', (lapack_int)n, a, (lapack_int)n, w, &q, -1);
    size_t lw = info == 0 ? (size_t)q + 1 : 3 * n;
    if (!(work = keeli_alloc_array(ctx, lw, sizeof *work))) {
      st = KEEL_ENOMEM;
    } else if ((info = LAPACKE_dsyev_work(LAPACK_COL_MAJOR, 'V', 'L', (lapack_int)n, a, (lapack_int)n, w, work,
                                          (lapack_int)lw)) != 0) {
      st = keeli_error(ctx, KEEL_ENUMERIC, "mc: %s covariance: the eigen-decomposition failed (info %d)", what,
                       (int)info);
    } else {
      double top = fmax(fabs(w[n - 1]), fabs(w[0]));
      if (w[0] < -1e-10 * top) {
        st = keeli_error(ctx, KEEL_EINVAL,
                         "mc: %s covariance is not positive semidefinite (eigenvalue %.3g, the largest %.3g); "
                         "repair it first (keel_cov_nearest_psd)",
                         what, w[0], top);
      } else {
        /* column c of Q is a[.. + c n] */
        for (size_t i = 0; i < n; i++)
          for (size_t c = 0; c < n; c++) F[i * n + c] = a[i + c * n] * sqrt(fmax(w[c], 0));
        *tri = 0;
      }
    }
    keeli_free(ctx, work);
    keeli_free(ctx, w);
  }
  keeli_free(ctx, a);
  return st;
}

static keel_mc *mc_alloc(keel_ctx *ctx, keel_mc_kind kind, keel_mc_freq freq, double years, size_t n, size_t nstates,
                         keel_status *st) {
  *st = KEEL_OK;
  if ((unsigned)kind > KEEL_MC_CONSTANT) {
    *st = keeli_error(ctx, KEEL_EINVAL, "mc: unknown generator kind %d", (int)kind);
    return NULL;
  }
  if ((unsigned)freq > KEEL_MC_MONTHLY) {
    *st = keeli_error(ctx, KEEL_EINVAL, "mc: unknown step frequency %d", (int)freq);
    return NULL;
  }
  const double spy = freq == KEEL_MC_DAILY ? 252 : 12;
  if (!(years > 0) || !(years * spy <= 1e6)) {
    *st = keeli_error(ctx, KEEL_EINVAL, "mc: the horizon %g years must be > 0 and at most 10^6 steps", years);
    return NULL;
  }
  if (n == 0 || n > 100000) {
    *st = keeli_error(ctx, KEEL_EINVAL, "mc: %zu assets; give from 1 to 100000", n);
    return NULL;
  }
  if (nstates == 0 || nstates > 64) {
    *st = keeli_error(ctx, KEEL_EINVAL, "mc: %zu regime states; give from 1 to 64", nstates);
    return NULL;
  }
  zig_init();
  keel_mc *g = keeli_calloc(ctx, 1, sizeof *g);
  if (!g) {
    *st = KEEL_ENOMEM;
    return NULL;
  }
  g->heap = *keeli_ctx_heap(ctx);
  g->kind = kind;
  g->freq = freq;
  g->spy = spy;
  g->n = n;
  g->nstates = nstates;
  g->nsteps = (size_t)fmax(1, nearbyint(years * spy));
  if (!(g->mu = keeli_calloc(ctx, nstates * n, sizeof(double))) ||
      !(g->cov = keeli_calloc(ctx, nstates * n * n, sizeof(double))) ||
      !(g->fac = keeli_calloc(ctx, nstates * n * n, sizeof(double))) ||
      !(g->fact = keeli_calloc(ctx, nstates * n * n, sizeof(double))) ||
      !(g->factp = keeli_calloc(ctx, n * ((n + 7) / 8 * 8), sizeof(double))) ||
      !(g->sd = keeli_calloc(ctx, nstates * n, sizeof(double))) || !(g->tri = keeli_calloc(ctx, nstates, sizeof(int)))) {
    keel_mc_free(g);
    *st = KEEL_ENOMEM;
    return NULL;
  }
  return g;
}

/* The factors and standard deviations of every state's covariance. */
static keel_status finish_moments(keel_ctx *ctx, keel_mc *g) {
  const size_t n = g->n;
  for (size_t k = 0; k < g->nstates; k++) {
    char what[32];
    if (g->kind == KEEL_MC_REGIME)
      snprintf(what, sizeof what, "state %zu", k);
    else
      snprintf(what, sizeof what, "the");
    keel_status st = factor_cov(ctx, n, g->cov + k * n * n, g->fac + k * n * n, &g->tri[k], what);
    if (st) return st;
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) g->fact[k * n * n + j * n + i] = g->fac[k * n * n + i * n + j];
    if (k == 0)
      for (size_t j = 0; j < n; j++) memcpy(g->factp + j * ((n + 7) / 8 * 8), g->fact + j * n, n * sizeof(double));
    for (size_t i = 0; i < n; i++) g->sd[k * n + i] = sqrt(g->cov[k * n * n + i * n + i]);
  }
  return KEEL_OK;
}

/* Checks P and fills the cumulative rows and the initial distribution
 * (given, or the stationary one: pi (P - I) = 0, sum pi = 1). */
static keel_status finish_transition(keel_ctx *ctx, keel_mc *g, const double *P, const double *initial) {
  const size_t K = g->nstates;
  if (!(g->P = keeli_alloc_array(ctx, K * K, sizeof(double))) ||
      !(g->Pcum = keeli_alloc_array(ctx, K * K, sizeof(double))) ||
      !(g->init_cum = keeli_alloc_array(ctx, K, sizeof(double))))
    return KEEL_ENOMEM;
  for (size_t i = 0; i < K; i++) {
    double s = 0;
    for (size_t j = 0; j < K; j++) {
      double p = P[i * K + j];
      if (!(p >= 0 && p <= 1))
        return keeli_error(ctx, KEEL_EINVAL, "mc: transition matrix entry (%zu, %zu) is %g; it must be in [0, 1]", i,
                           j, p);
      s += p;
      g->P[i * K + j] = p;
    }
    if (fabs(s - 1) > 1e-9)
      return keeli_error(ctx, KEEL_EINVAL, "mc: transition matrix row %zu sums to %.12g, not 1", i, s);
    double c = 0;
    for (size_t j = 0; j < K; j++) g->Pcum[i * K + j] = (c += g->P[i * K + j] / s);
    g->Pcum[i * K + K - 1] = 1;
  }
  double *pi = keeli_alloc_array(ctx, K, sizeof(double));
  if (!pi) return KEEL_ENOMEM;
  keel_status st = KEEL_OK;
  if (initial) {
    double s = 0;
    for (size_t i = 0; i < K; i++) {
      if (!(initial[i] >= 0 && initial[i] <= 1))
        st = keeli_error(ctx, KEEL_EINVAL, "mc: initial state probability %zu is %g; it must be in [0, 1]", i,
                         initial[i]);
      s += initial[i];
    }
    if (!st && fabs(s - 1) > 1e-9)
      st = keeli_error(ctx, KEEL_EINVAL, "mc: the initial state probabilities sum to %.12g, not 1", s);
    for (size_t i = 0; !st && i < K; i++) pi[i] = initial[i] / s;
  } else {
    /* A (column-major K x K): rows 0..K-2 of (P' - I), the last row ones */
    double *A = keeli_alloc_array(ctx, K * K, sizeof(double));
    lapack_int *ip = keeli_alloc_array(ctx, K, sizeof(lapack_int));
    if (!A || !ip) {
      st = KEEL_ENOMEM;
    } else {
      for (size_t i = 0; i < K; i++)
        for (size_t j = 0; j < K; j++) A[i + j * K] = i + 1 == K ? 1 : g->P[j * K + i] - (i == j);
      for (size_t i = 0; i < K; i++) pi[i] = i + 1 == K;
      lapack_int info = LAPACKE_dgesv_work(LAPACK_COL_MAJOR, (lapack_int)K, 1, A, (lapack_int)K, ip, pi, (lapack_int)K);
      int ok = info == 0;
      for (size_t i = 0; ok && i < K; i++) ok = isfinite(pi[i]) && pi[i] > -1e-12;
      if (!ok)
        st = keeli_error(ctx, KEEL_EINVAL,
                         "mc: the transition matrix has no unique stationary distribution; give the initial "
                         "state probabilities");
      for (size_t i = 0; ok && i < K; i++) pi[i] = fmax(pi[i], 0);
    }
    keeli_free(ctx, A);
    keeli_free(ctx, ip);
  }
  if (!st) {
    double c = 0, s = 0;
    for (size_t i = 0; i < K; i++) s += pi[i];
    for (size_t i = 0; i < K; i++) g->init_cum[i] = (c += pi[i] / s);
    g->init_cum[K - 1] = 1;
  }
  keeli_free(ctx, pi);
  return st;
}

/* Sample mean and covariance (T - 1) of rows idx (or all rows when idx is
 * NULL) of X (T x n), per step. */
static void sample_moments(const double *X, size_t T, size_t n, const unsigned *state, unsigned which, double *mu,
                           double *S) {
  size_t m = 0;
  memset(mu, 0, n * sizeof *mu);
  memset(S, 0, n * n * sizeof *S);
  for (size_t t = 0; t < T; t++) {
    if (state && state[t] != which) continue;
    m++;
    for (size_t i = 0; i < n; i++) mu[i] += X[t * n + i];
  }
  if (!m) return;
  for (size_t i = 0; i < n; i++) mu[i] /= (double)m;
  for (size_t t = 0; t < T; t++) {
    if (state && state[t] != which) continue;
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j <= i; j++) S[i * n + j] += (X[t * n + i] - mu[i]) * (X[t * n + j] - mu[j]);
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j <= i; j++) S[j * n + i] = S[i * n + j] = m > 1 ? S[i * n + j] / (double)(m - 1) : 0;
}

keel_status keel_mc_new(keel_ctx *ctx, const keel_mc_params *p, keel_mc **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_mc_new: out is NULL");
  *out = NULL;
  if (!p) return keeli_error(ctx, KEEL_EINVAL, "keel_mc_new: params is NULL");
  const size_t n = p->nassets;
  size_t K = p->kind == KEEL_MC_REGIME ? p->nstates : 1;
  keel_status st;
  keel_mc *g = mc_alloc(ctx, p->kind, p->freq, p->years, n, K, &st);
  if (!g) return st;
  const double dt = 1 / g->spy;
  switch (p->kind) {
    case KEEL_MC_STUDENT_T:
      if (!(p->dof > 2) || !isfinite(p->dof)) {
        st = keeli_error(ctx, KEEL_EINVAL, "mc: Student-t degrees of freedom %g must be finite and > 2", p->dof);
        break;
      }
      g->dof = p->dof;
      /* fall through */
    case KEEL_MC_NORMAL:
    case KEEL_MC_CONSTANT:
      if (!p->mu || (p->kind != KEEL_MC_CONSTANT && !p->cov)) {
        st = keeli_error(ctx, KEEL_EINVAL, "mc: the %s generator needs mu%s", keel_mc_kind_name(p->kind),
                         p->kind == KEEL_MC_CONSTANT ? "" : " and cov");
        break;
      }
      for (size_t i = 0; i < n && !st; i++) {
        if (!isfinite(p->mu[i])) st = keeli_error(ctx, KEEL_EINVAL, "mc: mu[%zu] is not finite", i);
        g->mu[i] = p->mu[i] * dt;
      }
      if (p->cov)
        for (size_t i = 0; i < n * n; i++) g->cov[i] = p->cov[i] * dt;
      break;
    case KEEL_MC_BOOTSTRAP:
      if (!p->history || p->nhistory < 2) {
        st = keeli_error(ctx, KEEL_EINVAL, "mc: the bootstrap needs a history of at least 2 rows (got %zu)",
                         p->nhistory);
        break;
      }
      if (!(p->block_mean >= 1) || !isfinite(p->block_mean)) {
        st = keeli_error(ctx, KEEL_EINVAL, "mc: the mean block length %g must be >= 1", p->block_mean);
        break;
      }
      for (size_t i = 0; i < p->nhistory * n && !st; i++)
        if (!isfinite(p->history[i]))
          st = keeli_error(ctx, KEEL_EINVAL, "mc: history row %zu, asset %zu is not finite", i / n, i % n);
      if (st) break;
      if (!(g->hist = keeli_alloc_array(ctx, p->nhistory * n, sizeof(double)))) {
        st = KEEL_ENOMEM;
        break;
      }
      memcpy(g->hist, p->history, p->nhistory * n * sizeof(double));
      g->nhist = p->nhistory;
      g->pnew = 1 / p->block_mean;
      sample_moments(g->hist, g->nhist, n, NULL, 0, g->mu, g->cov);
      break;
    case KEEL_MC_REGIME:
      if (!p->state_mu || !p->state_cov || !p->transition) {
        st = keeli_error(ctx, KEEL_EINVAL, "mc: the regime generator needs state_mu, state_cov and transition");
        break;
      }
      for (size_t i = 0; i < K * n && !st; i++) {
        if (!isfinite(p->state_mu[i]))
          st = keeli_error(ctx, KEEL_EINVAL, "mc: state %zu mu[%zu] is not finite", i / n, i % n);
        g->mu[i] = p->state_mu[i] * dt;
      }
      for (size_t i = 0; i < K * n * n; i++) g->cov[i] = p->state_cov[i] * dt;
      if (!st) st = finish_transition(ctx, g, p->transition, p->initial);
      break;
  }
  if (!st && p->kind != KEEL_MC_CONSTANT) st = finish_moments(ctx, g);
  if (st) {
    keel_mc_free(g);
    return st;
  }
  *out = g;
  return KEEL_OK;
}

/* The rows of the common window of [start, end) and, for monthly steps,
 * the last row of each calendar month in it. */
keel_status keeli_mc_step_rows(keel_ctx *ctx, const keel_panel *h, size_t start, size_t end, int freq,
                               size_t **rows, size_t *nrows) {
  const size_t na = keel_panel_nassets(h);
  const keel_date *d = keel_panel_dates(h);
  size_t f = start;
  for (size_t j = 0; j < na; j++) {
    size_t v = keel_panel_first_valid(h, j);
    if (v > f) f = v;
  }
  if (f + 1 >= end)
    return keeli_error(ctx, KEEL_EINVAL, "mc: the history has fewer than 2 rows where every asset has a price");
  for (size_t i = f; i < end; i++)
    for (size_t j = 0; j < na; j++)
      if (isnan(keel_panel_price(h, i, j))) {
        char b[KEEL_DATE_BUFSIZE];
        keel_date_format(d[i], b);
        return keeli_error(ctx, KEEL_EINVAL, "mc: %s has no price on %s, inside the history's common window",
                           keel_panel_symbol(h, j), b);
      }
  size_t *r = keeli_alloc_array(ctx, end - f, sizeof *r), m = 0;
  if (!r) return KEEL_ENOMEM;
  for (size_t i = f; i < end; i++) {
    if (freq == KEEL_MC_MONTHLY && i + 1 < end) {
      int y0, m0, d0, y1, m1, d1;
      keel_date_to_ymd(d[i], &y0, &m0, &d0);
      keel_date_to_ymd(d[i + 1], &y1, &m1, &d1);
      if (y0 == y1 && m0 == m1) continue;
    }
    r[m++] = i;
  }
  *rows = r;
  *nrows = m;
  return KEEL_OK;
}

keel_status keel_mc_calibrate(keel_ctx *ctx, const keel_panel *h, const keel_mc_calibration *c, keel_mc **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_mc_calibrate: out is NULL");
  *out = NULL;
  if (!h || !c) return keeli_error(ctx, KEEL_EINVAL, "keel_mc_calibrate: history or calibration is NULL");
  const size_t na = keel_panel_nassets(h), nd = keel_panel_ndates(h), end = c->end ? c->end : nd;
  if (end > nd || c->start >= end)
    return keeli_error(ctx, KEEL_EINVAL, "mc: history rows [%zu, %zu) are not a range of the %zu rows", c->start, end,
                       nd);
  if (!(c->periods_per_year > 0) || !isfinite(c->periods_per_year))
    return keeli_error(ctx, KEEL_EINVAL, "mc: periods_per_year %g must be > 0", c->periods_per_year);
  const size_t K = c->kind == KEEL_MC_REGIME ? c->nstates : 1;
  keel_status st;
  keel_mc *g = mc_alloc(ctx, c->kind, c->freq, c->years, na, K, &st);
  if (!g) return st;
  size_t *rows = NULL, nr = 0, T = 0;
  unsigned *state = NULL;
  double *P = NULL, *basket = NULL, *vol = NULL, *sorted = NULL;
  if ((st = keeli_mc_step_rows(ctx, h, c->start, end, c->freq, &rows, &nr))) goto done;
  T = nr - 1;
  if (T < 2) {
    st = keeli_error(ctx, KEEL_EINVAL, "mc: the history gives %zu %s returns; at least 2 are needed", T,
                     c->freq == KEEL_MC_DAILY ? "daily" : "monthly");
    goto done;
  }
  if (!(g->hist = keeli_alloc_array(ctx, T * na, sizeof(double)))) {
    st = KEEL_ENOMEM;
    goto done;
  }
  g->nhist = T;
  for (size_t t = 0; t < T; t++)
    for (size_t j = 0; j < na; j++)
      g->hist[t * na + j] = log(keel_panel_price(h, rows[t + 1], j) / keel_panel_price(h, rows[t], j));
  /* daily steps from rows of another frequency: moments scaled to a trading day */
  const double scale = c->freq == KEEL_MC_DAILY ? c->periods_per_year / 252 : 1;
  switch (c->kind) {
    case KEEL_MC_STUDENT_T:
      if (!(c->dof > 2) || !isfinite(c->dof)) {
        st = keeli_error(ctx, KEEL_EINVAL, "mc: Student-t degrees of freedom %g must be finite and > 2", c->dof);
        goto done;
      }
      g->dof = c->dof;
      /* fall through */
    case KEEL_MC_NORMAL:
    case KEEL_MC_CONSTANT: {
      keel_mean_options mo = c->mean;
      keel_cov_options co = c->cov;
      mo.periods_per_year = 0;
      co.periods_per_year = 0;
      keel_cmat R = keel_cmat_view(g->hist, T, na);
      if ((st = keel_mean(ctx, R, &mo, g->mu))) goto done;
      if (c->kind != KEEL_MC_CONSTANT && (st = keel_cov(ctx, R, &co, keel_mat_view(g->cov, na, na), NULL))) goto done;
      for (size_t i = 0; i < na; i++) g->mu[i] *= scale;
      for (size_t i = 0; i < na * na; i++) g->cov[i] *= scale;
      break;
    }
    case KEEL_MC_BOOTSTRAP: {
      double b = c->block_mean ? c->block_mean : c->freq == KEEL_MC_DAILY ? 21 : 6;
      if (!(b >= 1) || !isfinite(b)) {
        st = keeli_error(ctx, KEEL_EINVAL, "mc: the mean block length %g must be >= 1", b);
        goto done;
      }
      g->pnew = 1 / b;
      sample_moments(g->hist, T, na, NULL, 0, g->mu, g->cov);
      break;
    }
    case KEEL_MC_REGIME: {
      unsigned w = c->regime_window ? c->regime_window : c->freq == KEEL_MC_DAILY ? 21 : 3;
      if (w < 2) {
        st = keeli_error(ctx, KEEL_EINVAL, "mc: the regime window must be at least 2 steps");
        goto done;
      }
      if (T < 4 * K) {
        st = keeli_error(ctx, KEEL_EINVAL, "mc: %zu history steps are too few for %zu regimes", T, K);
        goto done;
      }
      if (!(state = keeli_alloc_array(ctx, T, sizeof *state)) || !(basket = keeli_alloc_array(ctx, T, sizeof(double))) ||
          !(vol = keeli_alloc_array(ctx, T, sizeof(double))) || !(sorted = keeli_alloc_array(ctx, T, sizeof(double))) ||
          !(P = keeli_alloc_array(ctx, K * K, sizeof(double)))) {
        st = KEEL_ENOMEM;
        goto done;
      }
      for (size_t t = 0; t < T; t++) {
        double s = 0;
        for (size_t j = 0; j < na; j++) s += exp(g->hist[t * na + j]);
        basket[t] = log(s / (double)na);
      }
      for (size_t t = 0; t < T; t++) {
        size_t lo = t + 1 >= w ? t + 1 - w : 0, hi = t + 1 < 2 ? 2 : t + 1;
        double m = 0, v = 0;
        for (size_t u = lo; u < hi; u++) m += basket[u];
        m /= (double)(hi - lo);
        for (size_t u = lo; u < hi; u++) v += (basket[u] - m) * (basket[u] - m);
        vol[t] = sorted[t] = sqrt(v / (double)(hi - lo - 1));
      }
      qsort(sorted, T, sizeof *sorted, keeli_cmp_double);
      for (size_t t = 0; t < T; t++) {
        unsigned s = 0;
        for (size_t k = 1; k < K; k++)
          if (vol[t] > sorted[k * T / K]) s = (unsigned)k;
        state[t] = s;
      }
      for (size_t k = 0; k < K * K; k++) P[k] = 1;
      for (size_t t = 1; t < T; t++) P[state[t - 1] * K + state[t]] += 1;
      for (size_t i = 0; i < K; i++) {
        double s = 0;
        for (size_t j = 0; j < K; j++) s += P[i * K + j];
        for (size_t j = 0; j < K; j++) P[i * K + j] /= s;
      }
      for (size_t k = 0; k < K; k++) {
        size_t cnt = 0;
        for (size_t t = 0; t < T; t++) cnt += state[t] == k;
        if (cnt < 2) {
          st = keeli_error(ctx, KEEL_EINVAL, "mc: regime %zu has %zu history steps; at least 2 are needed", k, cnt);
          goto done;
        }
        sample_moments(g->hist, T, na, state, (unsigned)k, g->mu + k * na, g->cov + k * na * na);
      }
      if (scale != 1)
        for (size_t i = 0; i < K * na * na; i++) g->cov[i] *= scale;
      if (scale != 1)
        for (size_t i = 0; i < K * na; i++) g->mu[i] *= scale;
      if ((st = finish_transition(ctx, g, P, NULL))) goto done;
      break;
    }
  }
  if (c->kind != KEEL_MC_CONSTANT) st = finish_moments(ctx, g);
done:
  keeli_free(ctx, rows);
  keeli_free(ctx, state);
  keeli_free(ctx, P);
  keeli_free(ctx, basket);
  keeli_free(ctx, vol);
  keeli_free(ctx, sorted);
  if (st) {
    keel_mc_free(g);
    return st;
  }
  *out = g;
  return KEEL_OK;
}

keel_mc_kind keel_mc_get_kind(const keel_mc *g) { return g->kind; }
size_t keel_mc_nassets(const keel_mc *g) { return g->n; }
size_t keel_mc_nsteps(const keel_mc *g) { return g->nsteps; }
double keel_mc_steps_per_year(const keel_mc *g) { return g->spy; }
keel_mc_freq keel_mc_get_freq(const keel_mc *g) { return g->freq; }
const double *keel_mc_step_mean(const keel_mc *g, size_t state) {
  return state < g->nstates ? g->mu + state * g->n : NULL;
}
const double *keel_mc_step_cov(const keel_mc *g, size_t state) {
  return state < g->nstates ? g->cov + state * g->n * g->n : NULL;
}
const double *keel_mc_transition(const keel_mc *g, size_t *nstates) {
  if (nstates) *nstates = g->nstates;
  return g->P;
}
const double *keel_mc_history(const keel_mc *g, size_t *rows) {
  if (rows) *rows = g->hist ? g->nhist : 0;
  return g->hist;
}

/* z and the sums of one step, then the normals and sums of a block of ZB steps */
#define ZB 8
_Static_assert(ZB == R4_L, "a block of steps is one draw of the lanes");
size_t keel_mc_work_size(const keel_mc *g) { return ZB * g->n + 2 * g->n; }

/* r = m + scale F z for one step, F given by columns (Ft = F', row j is
 * column j of F; lower triangular F when tri). Each r_i sums its terms in
 * the order j = 0, 1, ..., as a dot product would, while the adds of
 * different i are independent (the loop over i vectorises). */
static inline void correlated(size_t n, const double *restrict Ft, int tri, const double *restrict m,
                              const double *restrict z, double scale, double *restrict a, double *restrict r) {
  for (size_t i = 0; i < n; i++) a[i] = 0;
  for (size_t j = 0; j < n; j++) {
    const double *restrict c = Ft + j * n;
    const double zj = z[j];
    for (size_t i = tri ? j : 0; i < n; i++) a[i] += c[i] * zj;
  }
  for (size_t i = 0; i < n; i++) r[i] = m[i] + scale * a[i];
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(KEEL_NO_CLONES)
#define KEEL_MC_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KEEL_MC_HOT
#endif

/* correlated() for ZB steps at once: rows r[b * n + i] = m_i + (F z_b)_i
 * for b < nb, z_b the column b of zt (zt[j * ZB + b]). Each sum takes its
 * terms in the same order as correlated() (scale 1), so the bits are the
 * same; the adds run across the steps, so they vectorise. */
#if defined(__GNUC__) && !defined(__clang__)
/* The sums of 8 steps in one 8-wide vector (an AVX-512 register, or two
 * AVX2 ones) that stays in registers, four rows i at a time (then two,
 * then one): independent chains of adds, so the adds' latency no longer
 * bounds the loop (one row's chain alone would). */
typedef double v8d __attribute__((vector_size(64)));
#define PUT_ROW(i, a)                                                 \
  do {                                                                \
    double s_[ZB];                                                    \
    memcpy(s_, &(a), sizeof(a));                                      \
    for (size_t b_ = 0; b_ < nb; b_++) r[b_ * n + (i)] = m[i] + s_[b_]; \
  } while (0)
KEEL_MC_HOT static void correlated_rows(size_t n, const double *restrict Ft, int tri, const double *restrict m,
                                        const double *restrict zt, size_t nb, double *restrict r, size_t i) {
  for (; i + 4 <= n; i += 4) {
    v8d a = {0}, c = {0}, d = {0}, e = {0}, z;
    const size_t jn = tri ? i + 1 : n;
    for (size_t j = 0; j < jn; j++) {
      const double *f = Ft + j * n + i;
      memcpy(&z, zt + j * ZB, sizeof z);
      a += f[0] * z;
      c += f[1] * z;
      d += f[2] * z;
      e += f[3] * z;
    }
    if (tri) { /* the triangle's last terms: row i + k takes j up to i + k */
      const double *f = Ft + (i + 1) * n + i;
      memcpy(&z, zt + (i + 1) * ZB, sizeof z);
      c += f[1] * z;
      d += f[2] * z;
      e += f[3] * z;
      f += n;
      memcpy(&z, zt + (i + 2) * ZB, sizeof z);
      d += f[2] * z;
      e += f[3] * z;
      f += n;
      memcpy(&z, zt + (i + 3) * ZB, sizeof z);
      e += f[3] * z;
    }
    PUT_ROW(i, a);
    PUT_ROW(i + 1, c);
    PUT_ROW(i + 2, d);
    PUT_ROW(i + 3, e);
  }
  for (; i + 2 <= n; i += 2) {
    v8d a = {0}, c = {0}, z;
    const size_t jn = tri ? i + 1 : n;
    for (size_t j = 0; j < jn; j++) {
      const double f = Ft[j * n + i], h = Ft[j * n + i + 1];
      memcpy(&z, zt + j * ZB, sizeof z);
      a += f * z;
      c += h * z;
    }
    if (tri) { /* row i + 1's last term, j = i + 1 */
      memcpy(&z, zt + (i + 1) * ZB, sizeof z);
      c += Ft[(i + 1) * n + i + 1] * z;
    }
    PUT_ROW(i, a);
    PUT_ROW(i + 1, c);
  }
  if (i < n) {
    v8d a = {0}, z;
    const size_t jn = tri ? i + 1 : n;
    for (size_t j = 0; j < jn; j++) {
      memcpy(&z, zt + j * ZB, sizeof z);
      a += Ft[j * n + i] * z;
    }
    PUT_ROW(i, a);
  }
}
#undef PUT_ROW
#else
KEEL_MC_HOT static void correlated_rows(size_t n, const double *restrict Ft, int tri, const double *restrict m,
                                        const double *restrict zt, size_t nb, double *restrict r, size_t i0) {
  double a[ZB];
  for (size_t i = i0; i < n; i++) {
    for (size_t b = 0; b < ZB; b++) a[b] = 0;
    const size_t jn = tri ? i + 1 : n;
    for (size_t j = 0; j < jn; j++) {
      const double f = Ft[j * n + i], *restrict zj = zt + j * ZB;
      for (size_t b = 0; b < ZB; b++) a[b] += f * zj[b];
    }
    for (size_t b = 0; b < nb; b++) r[b * n + i] = m[i] + a[b];
  }
}
#endif

#ifdef KEEL_R4_AVX2
/* correlated_rows in AVX-512, eight rows i at a time: eight sums of
 * eight steps in registers (each sum's terms in the same order as above,
 * so the same bits), transposed in registers, so a block's steps are
 * stored as vectors of up to eight assets instead of single values. Fp is
 * Ft with its rows padded to n8 (a multiple of 8) by zeros: the sums of
 * rows past n are zeros, computed and not stored. */
__attribute__((target("avx512f"))) static void correlated_block_avx512(size_t n, const double *restrict Fp, int tri,
                                                                     const double *restrict m,
                                                                     const double *restrict zt, size_t nb,
                                                                     double *restrict r) {
  const size_t n8 = (n + 7) / 8 * 8;
  for (size_t i = 0; i < n; i += 8) {
    __m512d a[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) a[k] = _mm512_setzero_pd();
    const size_t jn = tri ? i + 1 : n;
    for (size_t j = 0; j < jn; j++) {
      const __m512d z = _mm512_loadu_pd(zt + j * ZB);
      const double *f = Fp + j * n8 + i;
#pragma GCC unroll 8
      for (int k = 0; k < 8; k++) a[k] = _mm512_add_pd(a[k], _mm512_mul_pd(_mm512_set1_pd(f[k]), z));
    }
    if (tri) { /* the triangle: row i + k takes j up to i + k */
#pragma GCC unroll 8
      for (int d = 1; d < 8; d++) {
        if (i + (size_t)d >= n) break;
        const __m512d z = _mm512_loadu_pd(zt + (i + (size_t)d) * ZB);
        const double *f = Fp + (i + (size_t)d) * n8 + i;
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
          if (k >= d) a[k] = _mm512_add_pd(a[k], _mm512_mul_pd(_mm512_set1_pd(f[k]), z));
      }
    }
    /* 8 x 8 transpose: a[k] lane b -> o[b] lane k */
    __m512d t[8], u[8], o[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k += 2) {
      t[k] = _mm512_unpacklo_pd(a[k], a[k + 1]);
      t[k + 1] = _mm512_unpackhi_pd(a[k], a[k + 1]);
    }
#pragma GCC unroll 8
    for (int k = 0; k < 8; k += 4) {
      u[k] = _mm512_shuffle_f64x2(t[k], t[k + 2], 0x88);
      u[k + 2] = _mm512_shuffle_f64x2(t[k], t[k + 2], 0xdd);
      u[k + 1] = _mm512_shuffle_f64x2(t[k + 1], t[k + 3], 0x88);
      u[k + 3] = _mm512_shuffle_f64x2(t[k + 1], t[k + 3], 0xdd);
    }
#pragma GCC unroll 8
    for (int q = 0; q < 4; q++) {
      o[q] = _mm512_shuffle_f64x2(u[q], u[q + 4], 0x88);
      o[q + 4] = _mm512_shuffle_f64x2(u[q], u[q + 4], 0xdd);
    }
    const __mmask8 live = n - i >= 8 ? 0xff : (__mmask8)((1u << (n - i)) - 1);
    const __m512d mv = _mm512_maskz_loadu_pd(live, m + i);
    for (size_t b = 0; b < nb; b++) _mm512_mask_storeu_pd(r + b * n + i, live, _mm512_add_pd(mv, o[b]));
  }
}
#endif

/* The block's rows r = m + F z by the code of level vec (Ft, Fp: the
 * factor transposed, unpadded and padded). */
static void correlated_block(size_t n, const double *restrict Ft, const double *restrict Fp, int tri,
                             const double *restrict m, const double *restrict zt, size_t nb, double *restrict r,
                             int vec) {
#ifdef KEEL_R4_AVX2
  if (vec >= KEELI_SIMD_AVX512) {
    correlated_block_avx512(n, Fp, tri, m, zt, nb, r);
    return;
  }
#endif
  (void)vec, (void)Fp;
  correlated_rows(n, Ft, tri, m, zt, nb, r, 0);
}

/* The overlays of step t without random draws (volatility, replays,
 * shocks), on row r of state s; corr draws its factor from rng. */
static void overlay_step(const keel_mc *g, size_t t, size_t s, double *r, keel_rng *rng) {
  const size_t n = g->n;
  const double *m = g->mu + s * n, *sd = g->sd + s * n;
  for (size_t e = 0; e < g->nev; e++) {
    const cevent *ev = &g->ev[e];
    if (t < ev->k0 || t >= ev->k1) continue;
    if (ev->kind == KEEL_SCN_VOL) {
      for (size_t j = 0; j < n; j++)
        if (ev->mask[j]) r[j] = m[j] + ev->value * (r[j] - m[j]);
    } else if (ev->kind == KEEL_SCN_CORR) {
      double f = rng_normal(rng), a = sqrt(1 - ev->value), b = sqrt(ev->value);
      for (size_t j = 0; j < n; j++)
        if (ev->mask[j] && sd[j] > 0) r[j] = m[j] + a * (r[j] - m[j]) + b * sd[j] * f;
    }
  }
  for (size_t e = 0; e < g->nev; e++) {
    const cevent *ev = &g->ev[e];
    if (t < ev->k0 || t >= ev->k1) continue;
    if (ev->kind == KEEL_SCN_WORST) memcpy(r, g->hist + (ev->row0 + t - ev->k0) * n, n * sizeof *r);
  }
  for (size_t e = 0; e < g->nev; e++) {
    const cevent *ev = &g->ev[e];
    if (t < ev->k0 || t >= ev->k1 || ev->kind != KEEL_SCN_SHOCK) continue;
    for (size_t j = 0; j < n; j++)
      if (ev->mask[j]) r[j] += ev->value;
  }
}

static size_t draw_cum(keel_rng *r, const double *cum, size_t K) {
  double u = rng_uniform(r);
  size_t k = 0;
  while (k + 1 < K && u >= cum[k]) k++;
  return k;
}

keel_status keel_mc_path(keel_ctx *ctx, const keel_mc *g, uint64_t seed, uint64_t path, double *logret, double *work,
                         unsigned *states) {
  return keeli_mc_path_with(ctx, g, seed, path, logret, work, states, KEELI_SIMD_BEST);
}

keel_status keeli_mc_path_with(keel_ctx *ctx, const keel_mc *g, uint64_t seed, uint64_t path, double *logret,
                               double *work, unsigned *states, int cap) {
  if (!g || !logret) return keeli_error(ctx, KEEL_EINVAL, "keel_mc_path: generator or output is NULL");
  return keeli_mc_path_blocks(ctx, g, seed, path, logret, NULL, work, states, cap, NULL, NULL);
}

_Static_assert(KEELI_MC_BLOCK % ZB == 0, "a block handed out is whole blocks of the generator's steps");

keel_status keeli_mc_path_blocks(keel_ctx *ctx, const keel_mc *g, uint64_t seed, uint64_t path, double *out,
                                 double *block, double *work, unsigned *states, int cap, keeli_mc_block_fn fn,
                                 void *ud) {
  const size_t n = g->n, T = g->nsteps, K = g->nstates;
  double *own = NULL;
  if (!work && !(work = own = keeli_alloc_array(ctx, keel_mc_work_size(g), sizeof(double)))) return KEEL_ENOMEM;
  double *z = work;
  /* the rows of step t: in the path's array, or in the caller's block
   * buffer of KEELI_MC_BLOCK steps, reused */
#define ROWS(t) (out ? out + (t) * n : block + (t) % KEELI_MC_BLOCK * n)
#define BLOCK0(t) ((t) - (t) % KEELI_MC_BLOCK)
  keel_rng rng;
  keel_rng_seed(&rng, seed, path);
  size_t s = 0, idx = 0;
  int corr = 0; /* a correlation overlay draws after each step's normals */
  for (size_t e = 0; e < g->nev; e++) corr |= g->ev[e].kind == KEEL_SCN_CORR;
  if (g->kind == KEEL_MC_NORMAL && !corr) {
    /* the lanes (rng4), one block of ZB = R4_L steps at a time: draw j of
     * lane b is asset j's normal of step b of the block (zt[j ZB + b], the
     * layout correlated_block reads; in the last block the lanes past the
     * path's end are drawn and unused), then the block's correlated rows,
     * then its steps' overlays (their draws from rng in step order, as
     * when they followed the whole path) */
    double *zt = work + 2 * n;
    rng4 r4;
    rng4_seed(&r4, seed, path);
    const int vec = keeli_simd_level(cap);
    for (size_t t0 = 0; t0 < T; t0 += ZB) {
      const size_t nb = T - t0 < ZB ? T - t0 : ZB;
      double *rows = ROWS(t0);
      rng4_normals(&r4, zt, ZB * n, vec);
      correlated_block(n, g->fact, g->factp, g->tri[0], g->mu, zt, nb, rows, vec);
      for (size_t b = 0; b < nb; b++) {
        if (states) states[t0 + b] = 0;
        if (g->act && g->act[t0 + b]) overlay_step(g, t0 + b, 0, rows + b * n, &rng);
      }
      const size_t t1 = t0 + nb;
      if (fn && (t1 % KEELI_MC_BLOCK == 0 || t1 == T)) fn(ud, BLOCK0(t0), t1 - BLOCK0(t0), ROWS(BLOCK0(t0)));
    }
    keeli_free(ctx, own);
    return KEEL_OK;
  }
  if (g->kind == KEEL_MC_REGIME) s = draw_cum(&rng, g->init_cum, K);
  if (g->kind == KEEL_MC_BOOTSTRAP) idx = (size_t)(rng_uniform(&rng) * (double)g->nhist);
  for (size_t t = 0; t < T; t++) {
    double *r = ROWS(t);
    switch (g->kind) {
      case KEEL_MC_NORMAL:
        for (size_t j = 0; j < n; j++) z[j] = rng_normal(&rng);
        correlated(n, g->fact, g->tri[0], g->mu, z, 1, z + n, r);
        break;
      case KEEL_MC_STUDENT_T: {
        for (size_t j = 0; j < n; j++) z[j] = rng_normal(&rng);
        double W = 2 * rng_gamma(&rng, 0.5 * g->dof);
        correlated(n, g->fact, g->tri[0], g->mu, z, sqrt((g->dof - 2) / W), z + n, r);
        break;
      }
      case KEEL_MC_BOOTSTRAP:
        if (t > 0) {
          if (rng_uniform(&rng) < g->pnew)
            idx = (size_t)(rng_uniform(&rng) * (double)g->nhist);
          else if (++idx == g->nhist)
            idx = 0;
        }
        memcpy(r, g->hist + idx * n, n * sizeof *r);
        break;
      case KEEL_MC_REGIME:
        if (t > 0) s = draw_cum(&rng, g->Pcum + s * K, K);
        for (size_t j = 0; j < n; j++) z[j] = rng_normal(&rng);
        correlated(n, g->fact + s * n * n, g->tri[s], g->mu + s * n, z, 1, z + n, r);
        break;
      case KEEL_MC_CONSTANT: memcpy(r, g->mu, n * sizeof *r); break;
    }
    if (states) states[t] = (unsigned)s;
    /* the overlays of this step: on the deviations from the step mean,
     * then replays, then shocks */
    if (g->act && g->act[t]) overlay_step(g, t, s, r, &rng);
    if (fn && ((t + 1) % KEELI_MC_BLOCK == 0 || t + 1 == T)) fn(ud, BLOCK0(t), t + 1 - BLOCK0(t), ROWS(BLOCK0(t)));
  }
#undef ROWS
#undef BLOCK0
  keeli_free(ctx, own);
  return KEEL_OK;
}

/* ---- scenarios -------------------------------------------------------------- */

typedef struct sgroup {
  char *name;
  unsigned char *mask;
} sgroup;

typedef struct sevent {
  keel_scenario_event ev;
  unsigned char *mask;
} sevent;

struct keel_scenario {
  keeli_heap heap;
  size_t n;
  char **sym;
  sgroup *groups;
  size_t ngroups, gcap;
  sevent *events;
  size_t nevents, ecap;
};

void keel_scenario_free(keel_scenario *sc) {
  if (!sc) return;
  keeli_heap h = sc->heap;
  for (size_t j = 0; sc->sym && j < sc->n; j++) keeli_heap_free(&h, sc->sym[j]);
  for (size_t g = 0; g < sc->ngroups; g++) {
    keeli_heap_free(&h, sc->groups[g].name);
    keeli_heap_free(&h, sc->groups[g].mask);
  }
  for (size_t e = 0; e < sc->nevents; e++) keeli_heap_free(&h, sc->events[e].mask);
  keeli_heap_free(&h, sc->sym);
  keeli_heap_free(&h, sc->groups);
  keeli_heap_free(&h, sc->events);
  keeli_heap_free(&h, sc);
}

keel_status keel_scenario_new(keel_ctx *ctx, size_t nassets, const char *const *symbols, keel_scenario **out) {
  if (!out) return keeli_error(ctx, KEEL_EINVAL, "keel_scenario_new: out is NULL");
  *out = NULL;
  if (!nassets || !symbols) return keeli_error(ctx, KEEL_EINVAL, "scenario: no assets");
  keel_scenario *sc = keeli_calloc(ctx, 1, sizeof *sc);
  if (!sc) return KEEL_ENOMEM;
  sc->heap = *keeli_ctx_heap(ctx);
  if (!(sc->sym = keeli_calloc(ctx, nassets, sizeof *sc->sym))) {
    keel_scenario_free(sc);
    return KEEL_ENOMEM;
  }
  sc->n = nassets;
  for (size_t j = 0; j < nassets; j++)
    if (!symbols[j] || !(sc->sym[j] = keeli_strdup(ctx, symbols[j]))) {
      keel_scenario_free(sc);
      return symbols[j] ? KEEL_ENOMEM : keeli_error(ctx, KEEL_EINVAL, "scenario: asset %zu has no symbol", j);
    }
  *out = sc;
  return KEEL_OK;
}

size_t keel_scenario_nevents(const keel_scenario *sc) { return sc ? sc->nevents : 0; }

/* Marks the assets `expr` names in mask (one term: no '+'). Returns the
 * number matched. */
static size_t match_term(const keel_scenario *sc, const char *t, size_t len, unsigned char *mask) {
  char buf[256];
  if (len == 0 || len >= sizeof buf) return 0;
  memcpy(buf, t, len);
  buf[len] = '\0';
  size_t m = 0;
  if (!strcasecmp(buf, "all")) {
    for (size_t j = 0; j < sc->n; j++) mask[j] = 1;
    return sc->n;
  }
  for (size_t g = 0; g < sc->ngroups; g++)
    if (!strcasecmp(sc->groups[g].name, buf)) {
      for (size_t j = 0; j < sc->n; j++)
        if (sc->groups[g].mask[j]) mask[j] = 1, m++;
      return m;
    }
  int glob = strpbrk(buf, "*?[") != NULL;
  for (size_t j = 0; j < sc->n; j++)
    if (glob ? fnmatch(buf, sc->sym[j], FNM_CASEFOLD) == 0 : strcasecmp(buf, sc->sym[j]) == 0) mask[j] = 1, m++;
  return m;
}

static keel_status resolve(keel_ctx *ctx, const keel_scenario *sc, const char *expr, unsigned char *mask) {
  if (!expr || !*expr) return keeli_error(ctx, KEEL_EINVAL, "scenario: an empty target");
  memset(mask, 0, sc->n);
  const char *p = expr;
  for (;;) {
    const char *q = strchr(p, '+');
    size_t len = q ? (size_t)(q - p) : strlen(p);
    if (!match_term(sc, p, len, mask))
      return keeli_error(ctx, KEEL_EINVAL, "scenario: target '%.*s' matches no asset or group", (int)len, p);
    if (!q) break;
    p = q + 1;
  }
  return KEEL_OK;
}

keel_status keel_scenario_add_group(keel_ctx *ctx, keel_scenario *sc, const char *name, const char *members) {
  if (!sc || !name || !*name || !members) return keeli_error(ctx, KEEL_EINVAL, "scenario: a group needs a name and members");
  if (strpbrk(name, "+*?[:@/;,= ")) return keeli_error(ctx, KEEL_EINVAL, "scenario: bad group name '%s'", name);
  unsigned char *mask = keeli_alloc(ctx, sc->n);
  if (!mask) return KEEL_ENOMEM;
  keel_status st = resolve(ctx, sc, members, mask);
  char *nm = st ? NULL : keeli_strdup(ctx, name);
  if (!st && !nm) st = KEEL_ENOMEM;
  if (!st && keeli_reserve(ctx, (void **)&sc->groups, &sc->gcap, sc->ngroups + 1, sizeof *sc->groups)) st = KEEL_ENOMEM;
  if (st) {
    keeli_free(ctx, mask);
    keeli_free(ctx, nm);
    return st;
  }
  sc->groups[sc->ngroups++] = (sgroup){nm, mask};
  return KEEL_OK;
}

keel_status keel_scenario_add_event(keel_ctx *ctx, keel_scenario *sc, const keel_scenario_event *ev) {
  if (!sc || !ev) return keeli_error(ctx, KEEL_EINVAL, "keel_scenario_add_event: NULL argument");
  if ((unsigned)ev->kind > KEEL_SCN_LIQUIDITY) return keeli_error(ctx, KEEL_EINVAL, "scenario: unknown event kind %d", (int)ev->kind);
  if (!(ev->at >= 0) || !isfinite(ev->at)) return keeli_error(ctx, KEEL_EINVAL, "scenario: event time %g must be >= 0", ev->at);
  if (isnan(ev->duration) || ev->duration == INFINITY)
    return keeli_error(ctx, KEEL_EINVAL, "scenario: event duration must be a number");
  switch (ev->kind) {
    case KEEL_SCN_SHOCK:
      if (!(ev->size > -1) || !isfinite(ev->size) || ev->size == 0)
        return keeli_error(ctx, KEEL_EINVAL, "scenario: a crash or rally of %g: the move must be > -1 and not 0", ev->size);
      break;
    case KEEL_SCN_VOL:
      if (!(ev->size >= 0) || !isfinite(ev->size))
        return keeli_error(ctx, KEEL_EINVAL, "scenario: volatility multiplier %g must be >= 0", ev->size);
      break;
    case KEEL_SCN_CORR:
      if (!(ev->size >= 0 && ev->size <= 1))
        return keeli_error(ctx, KEEL_EINVAL, "scenario: correlation weight %g must be in [0, 1]", ev->size);
      break;
    case KEEL_SCN_WORST:
      if (!(ev->duration > 0)) return keeli_error(ctx, KEEL_EINVAL, "scenario: the worst window needs a length > 0");
      break;
    case KEEL_SCN_LIQUIDITY:
      if (!(ev->cost_mult >= 0) || !isfinite(ev->cost_mult) || !(ev->spread_mult >= 0) || !isfinite(ev->spread_mult))
        return keeli_error(ctx, KEEL_EINVAL, "scenario: liquidity multipliers (%g, %g) must be finite and >= 0",
                           ev->cost_mult, ev->spread_mult);
      if (!(ev->halt >= 0) || !isfinite(ev->halt))
        return keeli_error(ctx, KEEL_EINVAL, "scenario: liquidity halt %g must be >= 0", ev->halt);
      break;
  }
  unsigned char *mask = keeli_alloc(ctx, sc->n);
  if (!mask) return KEEL_ENOMEM;
  keel_status st = resolve(ctx, sc, ev->target ? ev->target : "all", mask);
  if (!st && keeli_reserve(ctx, (void **)&sc->events, &sc->ecap, sc->nevents + 1, sizeof *sc->events)) st = KEEL_ENOMEM;
  if (st) {
    keeli_free(ctx, mask);
    return st;
  }
  sevent *e = &sc->events[sc->nevents++];
  e->ev = *ev;
  e->ev.target = NULL; /* resolved into the mask */
  e->mask = mask;
  return KEEL_OK;
}

/* The steps [k0, k1) of an event's window. */
static keel_status window_of(keel_ctx *ctx, const keel_mc *g, const keel_scenario_event *ev, size_t *k0, size_t *k1) {
  double a = nearbyint(ev->at * g->spy);
  size_t s = a < 1 ? 0 : (size_t)a - 1;
  if (s >= g->nsteps)
    return keeli_error(ctx, KEEL_EINVAL, "scenario: an event at %g years is past the horizon (%g years)", ev->at,
                       (double)g->nsteps / g->spy);
  size_t len;
  if (ev->duration < 0)
    len = g->nsteps - s;
  else
    len = (size_t)fmax(1, nearbyint(ev->duration * g->spy));
  *k0 = s;
  *k1 = len > g->nsteps - s ? g->nsteps : s + len;
  return KEEL_OK;
}

keel_status keel_mc_set_scenario(keel_ctx *ctx, keel_mc *g, const keel_scenario *sc) {
  if (!g) return keeli_error(ctx, KEEL_EINVAL, "keel_mc_set_scenario: generator is NULL");
  free_scenario_part(g);
  if (!sc || !sc->nevents) return KEEL_OK;
  const size_t n = g->n, T = g->nsteps;
  if (sc->n != n)
    return keeli_error(ctx, KEEL_EINVAL, "scenario: made for %zu assets, the generator has %zu", sc->n, n);
  keel_status st = KEEL_OK;
  int liquid = 0;
  for (size_t e = 0; e < sc->nevents; e++) liquid |= sc->events[e].ev.kind == KEEL_SCN_LIQUIDITY;
  if (!(g->ev = keeli_calloc(ctx, sc->nevents, sizeof *g->ev)) || !(g->act = keeli_calloc(ctx, T, 1)) ||
      (liquid && (!(g->cost_mult = keeli_alloc_array(ctx, T, sizeof(double))) ||
                  !(g->spread_mult = keeli_alloc_array(ctx, T, sizeof(double))) ||
                  !(g->halted = keeli_calloc(ctx, T, n))))) {
    free_scenario_part(g);
    return KEEL_ENOMEM;
  }
  for (size_t t = 0; liquid && t < T; t++) g->cost_mult[t] = g->spread_mult[t] = 1;
  for (size_t e = 0; e < sc->nevents && !st; e++) {
    const keel_scenario_event *ev = &sc->events[e].ev;
    cevent *c = &g->ev[g->nev];
    c->kind = ev->kind;
    if ((st = window_of(ctx, g, ev, &c->k0, &c->k1))) break;
    if (!(c->mask = keeli_alloc(ctx, n))) {
      st = KEEL_ENOMEM;
      break;
    }
    g->nev++;
    memcpy(c->mask, sc->events[e].mask, n);
    unsigned char flag = 0;
    switch (ev->kind) {
      case KEEL_SCN_SHOCK:
        c->value = log1p(ev->size) / (double)(c->k1 - c->k0);
        flag = ACT_SHOCK;
        break;
      case KEEL_SCN_VOL:
        c->value = ev->size;
        flag = ACT_VOL;
        break;
      case KEEL_SCN_CORR:
        c->value = ev->size;
        flag = ACT_CORR;
        break;
      case KEEL_SCN_WORST: {
        const size_t L = c->k1 - c->k0;
        if (!g->hist) {
          st = keeli_error(ctx, KEEL_EINVAL, "scenario: a worst-window replay needs a history (calibrate the generator)");
          break;
        }
        if (L > g->nhist) {
          st = keeli_error(ctx, KEEL_EINVAL, "scenario: a worst window of %zu steps is longer than the history (%zu)", L,
                           g->nhist);
          break;
        }
        size_t cnt = 0;
        for (size_t j = 0; j < n; j++) cnt += c->mask[j];
        /* the equally weighted basket of the targets, rebalanced every
         * step: its log return per history row, then the worst sum of L */
        double best = INFINITY;
        double *b = keeli_alloc_array(ctx, g->nhist, sizeof(double));
        if (!b) {
          st = KEEL_ENOMEM;
          break;
        }
        for (size_t t = 0; t < g->nhist; t++) {
          double s = 0;
          for (size_t j = 0; j < n; j++)
            if (c->mask[j]) s += exp(g->hist[t * n + j]);
          b[t] = log(s / (double)cnt);
        }
        /* each window summed afresh (no running sum), so rounding cannot pick the window */
        for (size_t t0 = 0; t0 + L <= g->nhist; t0++) {
          double w = 0;
          for (size_t u = t0; u < t0 + L; u++) w += b[u];
          if (w < best) best = w, c->row0 = t0;
        }
        keeli_free(ctx, b);
        flag = ACT_WORST;
        break;
      }
      case KEEL_SCN_LIQUIDITY: {
        size_t h = ev->halt > 0 ? (size_t)fmax(1, nearbyint(ev->halt * g->spy)) : 0;
        for (size_t t = c->k0; t < c->k1; t++) {
          g->cost_mult[t] *= ev->cost_mult;
          g->spread_mult[t] *= ev->spread_mult;
          if (t < c->k0 + h)
            for (size_t j = 0; j < n; j++) g->halted[t * n + j] |= c->mask[j];
        }
        break;
      }
    }
    for (size_t t = c->k0; t < c->k1; t++) g->act[t] |= flag;
  }
  if (st) free_scenario_part(g);
  return st;
}

void keel_mc_liquidity(const keel_mc *g, const double **cost_mult, const double **spread_mult,
                       const unsigned char **halted) {
  if (cost_mult) *cost_mult = g->cost_mult;
  if (spread_mult) *spread_mult = g->spread_mult;
  if (halted) *halted = g->halted;
}
