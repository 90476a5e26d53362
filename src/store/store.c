/*
 * store: picks the backend for a URI.
 */
#include "store/store.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

int store_open(const char *uri, struct store **ret, char *err, size_t errlen)
{
    if (uri == NULL || *uri == '\0') {
        snprintf(err, errlen, "no database given (--db or APIKEYD_DB)");
        return AK_ERR_ARG;
    }
    if (store_is_postgres(uri))
        return store_postgres_open(uri, ret, err, errlen);
    return store_sqlite_open(uri, ret, err, errlen);
}

bool store_is_postgres(const char *uri)
{
    return strncmp(uri, "postgresql://", 13) == 0 || strncmp(uri, "postgres://", 11) == 0;
}

void store_free(struct store *s)
{
    if (s != NULL)
        s->ops->free(s);
}
