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

bool store_quota_row(struct quota_row *ret, int64_t id, int64_t remaining, int64_t refill_amount, const char *interval,
                     size_t interval_len, int64_t period, int64_t version)
{
    struct key_rec rec; /* only its quota fields are set or read */

    if (id == 0 || !key_set_quota(&rec, id, remaining, refill_amount, interval, interval_len, period, version))
        return false;
    *ret = (struct quota_row){.id = rec.quota_id,
                              .remaining = rec.remaining,
                              .refill_amount = rec.refill_amount,
                              .interval = rec.refill_interval,
                              .period = rec.quota_period,
                              .version = rec.quota_version};
    return true;
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
