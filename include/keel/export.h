/* keel — symbol visibility. Everything not marked KEEL_API is hidden. */
#ifndef KEEL_EXPORT_H
#define KEEL_EXPORT_H

#if defined(KEEL_BUILDING) && defined(__GNUC__)
#define KEEL_API __attribute__((visibility("default")))
#else
#define KEEL_API
#endif

#endif
