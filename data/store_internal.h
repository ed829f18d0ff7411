/* keel — the store's connection for the rest of data/ (the report pages
 * read runs with SQL). Private to the library. */
#ifndef KEEL_DATA_STORE_INTERNAL_H
#define KEEL_DATA_STORE_INTERNAL_H

#include <sqlite3.h>

#include "keel/store.h"

sqlite3 *keeli_store_db(keel_store *s);
const char *keeli_store_path(const keel_store *s);

#endif
