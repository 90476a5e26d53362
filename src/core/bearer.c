/*
 * bearer: Authorization header parsing.
 */
#include "core/bearer.h"

#include <strings.h>

#include "core/error.h"

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

int bearer_parse(const char *value, size_t len, const char **ret_token, size_t *ret_len)
{
    size_t start = 0, end = len;

    while (start < end && is_ws(value[start]))
        start++;
    while (end > start && is_ws(value[end - 1]))
        end--;
    if (start == end)
        return AK_ERR_MISSING_KEY;
    if (end - start < 6 || strncasecmp(value + start, "bearer", 6) != 0)
        return AK_ERR_KEY_FORMAT;
    start += 6;
    if (start == end)
        return AK_ERR_MISSING_KEY;
    if (!is_ws(value[start]))
        return AK_ERR_KEY_FORMAT;
    while (start < end && is_ws(value[start]))
        start++;
    for (size_t i = start; i < end; i++)
        if (is_ws(value[i]))
            return AK_ERR_KEY_FORMAT;
    *ret_token = value + start;
    *ret_len = end - start;
    return 0;
}
