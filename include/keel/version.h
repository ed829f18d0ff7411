/** @file
 * @brief keel — version of the headers and of the linked library.
 */
#ifndef KEEL_VERSION_H
#define KEEL_VERSION_H

#include "keel/export.h"

/** @brief Major version of these headers. */
#define KEEL_VERSION_MAJOR 0
/** @brief Minor version of these headers. */
#define KEEL_VERSION_MINOR 1
/** @brief Patch version of these headers. */
#define KEEL_VERSION_PATCH 0
/** @brief Version of these headers as a string ("0.1.0"). */
#define KEEL_VERSION "0.1.0"
/** @brief M*1000000 + m*1000 + p, comparable with @ref keel_version_number(). */
#define KEEL_VERSION_NUMBER \
  (KEEL_VERSION_MAJOR * 1000000 + KEEL_VERSION_MINOR * 1000 + KEEL_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Version string of the library actually linked ("0.1.0").
 * @return a string in static storage */
KEEL_API const char *keel_version(void);
/** @brief Version number of the library actually linked.
 * @return its KEEL_VERSION_NUMBER, to compare with the headers' */
KEEL_API int keel_version_number(void);

#ifdef __cplusplus
}
#endif
#endif
