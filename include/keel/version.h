/* keel — version of the headers and of the linked library. */
#ifndef KEEL_VERSION_H
#define KEEL_VERSION_H

#include "keel/export.h"

#define KEEL_VERSION_MAJOR 0
#define KEEL_VERSION_MINOR 1
#define KEEL_VERSION_PATCH 0
#define KEEL_VERSION "0.1.0"
/* M*1000000 + m*1000 + p, comparable with keel_version_number() */
#define KEEL_VERSION_NUMBER \
  (KEEL_VERSION_MAJOR * 1000000 + KEEL_VERSION_MINOR * 1000 + KEEL_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* Version string of the library actually linked ("0.1.0"). Static storage. */
KEEL_API const char *keel_version(void);
/* KEEL_VERSION_NUMBER of the library actually linked. */
KEEL_API int keel_version_number(void);

#ifdef __cplusplus
}
#endif
#endif
