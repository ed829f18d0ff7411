/** @file
 * @brief keel — status codes. Every call that can fail returns one.
 */
#ifndef KEEL_STATUS_H
#define KEEL_STATUS_H

#include "keel/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief The outcome of a call: KEEL_OK or a negative error code. The
 * context's @ref keel_errmsg says what went wrong. */
typedef enum keel_status {
  KEEL_OK = 0,           /**< success */
  KEEL_EINVAL = -1,      /**< invalid argument: shape, NaN, out of range, unknown name */
  KEEL_ENOMEM = -2,      /**< an allocation failed (or a configured limit refused it) */
  KEEL_EIO = -3,         /**< a file or database could not be read or written */
  KEEL_EPARSE = -4,      /**< malformed input; the message has file:line:col */
  KEEL_EINFEASIBLE = -5, /**< no solution satisfies the constraints */
  KEEL_ENUMERIC = -6,    /**< a numerical failure (non-PSD, singular, no convergence) */
  KEEL_ELUA = -7,        /**< a Lua script raised an error */
  KEEL_ELIMIT = -8,      /**< a size, memory or instruction limit was reached */
  KEEL_ESTATE = -9       /**< the call is not valid in the object's current state */
} keel_status;

/** @brief Human-readable name of a status.
 * @param st a status code
 * @return a static string ("invalid argument"; "unknown status" for a value
 *         that is not a keel_status), never NULL */
KEEL_API const char *keel_strerror(keel_status st);

#ifdef __cplusplus
}
#endif
#endif
