/*
 * notify: a strict parser for change-channel payloads. It never allocates,
 * reads nothing past `len`, and accepts only the forms in notify.h.
 */
#include "store/notify.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/error.h"

/* Reads a canonical decimal id in 1..INT64_MAX at s[*pos]; advances *pos. */
static bool parse_id(const char *s, size_t len, size_t *pos, int64_t *ret)
{
    size_t i = *pos;
    uint64_t v = 0;

    if (i >= len || s[i] < '1' || s[i] > '9')
        return false; /* no sign, no leading zero, not empty */
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > ((uint64_t)INT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *pos = i;
    *ret = (int64_t)v;
    return true;
}

/* Skips a decimal in 0..INT64_MAX, canonical ("0" or no leading zero). */
static bool skip_number(const char *s, size_t len, size_t *pos)
{
    int64_t ignored;

    if (*pos < len && s[*pos] == '0') {
        (*pos)++;
        return *pos == len || s[*pos] < '0' || s[*pos] > '9';
    }
    return parse_id(s, len, pos, &ignored);
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

size_t notify_ids_unique(int64_t *ids, size_t n)
{
    size_t k = 0;

    if (n == 0)
        return 0;
    qsort(ids, n, sizeof(*ids), cmp_id);
    for (size_t i = 1; i < n; i++)
        if (ids[i] != ids[k])
            ids[++k] = ids[i];
    return k + 1;
}

int notify_parse(const char *payload, size_t len, struct notify_msg *ret)
{
    size_t pos = 2, n = 0;
    char sep;

    if (len < 3 || len > NOTIFY_PAYLOAD_MAX || payload[1] != ' ')
        return AK_ERR_ARG;
    if (payload[0] == 'k')
        ret->kind = NOTIFY_KEYS, sep = ' ';
    else if (payload[0] == 'a')
        ret->kind = NOTIFY_ACCOUNTS, sep = ' ';
    else if (payload[0] == 't')
        ret->kind = NOTIFY_TOKENS, sep = ' ';
    else if (payload[0] == 'u')
        ret->kind = NOTIFY_USES, sep = ',';
    else
        return AK_ERR_ARG;
    for (;;) {
        int64_t id;
        if (!parse_id(payload, len, &pos, &id))
            return AK_ERR_ARG;
        if (ret->kind == NOTIFY_USES && pos < len && payload[pos] == ':') {
            pos++;
            if (!skip_number(payload, len, &pos))
                return AK_ERR_ARG;
        }
        ret->ids[n++] = id; /* an id takes two bytes at least: room for all, see notify.h */
        if (pos == len)
            break;
        if (payload[pos] != sep || pos + 1 == len)
            return AK_ERR_ARG;
        pos++;
    }
    /* One sort per payload, whatever it holds: a flood costs O(n log n) each. */
    if ((ret->n = notify_ids_unique(ret->ids, n)) > NOTIFY_IDS_MAX)
        return AK_ERR_ARG;
    return 0;
}
