/** @file
 * @brief keel — matrix views over caller-owned memory.
 *
 * Row-major: element (i, j) is data[i * ld + j], ld >= cols. keel never
 * keeps a view past the call it is given to, and checks shapes before use.
 */
#ifndef KEEL_MATRIX_H
#define KEEL_MATRIX_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A writable row-major view: element (i, j) is data[i * ld + j]. */
typedef struct keel_mat {
  double *data; /**< the first element */
  size_t rows;  /**< number of rows */
  size_t cols;  /**< number of columns */
  size_t ld;    /**< leading dimension: elements from one row to the next (>= cols) */
} keel_mat;

/** @brief A read-only row-major view: element (i, j) is data[i * ld + j]. */
typedef struct keel_cmat {
  const double *data; /**< the first element */
  size_t rows;        /**< number of rows */
  size_t cols;        /**< number of columns */
  size_t ld;          /**< leading dimension: elements from one row to the next (>= cols) */
} keel_cmat;

/** @brief A view of a contiguous rows x cols array (ld = cols).
 * @param data rows * cols doubles, row-major
 * @param rows number of rows
 * @param cols number of columns
 * @return the view */
static inline keel_mat keel_mat_view(double *data, size_t rows, size_t cols) {
  keel_mat m = {data, rows, cols, cols};
  return m;
}
/** @brief A read-only view of a contiguous rows x cols array (ld = cols).
 * @param data rows * cols doubles, row-major
 * @param rows number of rows
 * @param cols number of columns
 * @return the view */
static inline keel_cmat keel_cmat_view(const double *data, size_t rows, size_t cols) {
  keel_cmat m = {data, rows, cols, cols};
  return m;
}
/** @brief The read-only view of the same elements as m.
 * @param m a writable view
 * @return the same view, read-only */
static inline keel_cmat keel_mat_const(keel_mat m) {
  keel_cmat c = {m.data, m.rows, m.cols, m.ld};
  return c;
}

#ifdef __cplusplus
}
#endif
#endif
