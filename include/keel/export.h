/** @file
 * @brief keel — symbol visibility. Everything not marked KEEL_API is hidden.
 */
#ifndef KEEL_EXPORT_H
#define KEEL_EXPORT_H

#if defined(KEEL_BUILDING) && defined(__GNUC__)
#define KEEL_API __attribute__((visibility("default")))
#else
/** @brief Marks a declaration as part of the library's exported API: default
 * visibility while keel itself is built (KEEL_BUILDING, GCC or Clang), empty
 * for the programs that include the headers. */
#define KEEL_API
#endif

#endif
