/* keel — matrix views over caller-owned memory.
 *
 * Row-major: element (i, j) is data[i * ld + j], ld >= cols. keel never
 * keeps a view past the call it is given to, and checks shapes before use. */
#ifndef KEEL_MATRIX_H
#define KEEL_MATRIX_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct keel_mat {
  double *data;
  size_t rows, cols, ld;
} keel_mat;

typedef struct keel_cmat {
  const double *data;
  size_t rows, cols, ld;
} keel_cmat;

/* A view of a contiguous rows x cols array (ld = cols). */
static inline keel_mat keel_mat_view(double *data, size_t rows, size_t cols) {
  keel_mat m = {data, rows, cols, cols};
  return m;
}
static inline keel_cmat keel_cmat_view(const double *data, size_t rows, size_t cols) {
  keel_cmat m = {data, rows, cols, cols};
  return m;
}
static inline keel_cmat keel_mat_const(keel_mat m) {
  keel_cmat c = {m.data, m.rows, m.cols, m.ld};
  return c;
}

#ifdef __cplusplus
}
#endif
#endif
