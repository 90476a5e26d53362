/*
 * bearer: extracts the token from an Authorization header value
 * (RFC 6750 "Bearer" scheme, scheme name case-insensitive). Pure; the
 * returned token points into the caller's buffer and is never copied.
 */
#ifndef APIKEYD_CORE_BEARER_H
#define APIKEYD_CORE_BEARER_H

#include <stddef.h>

/*
 * Returns 0 and sets *ret_token / *ret_len to the token; AK_ERR_MISSING_KEY
 * for an empty value or an empty bearer token; AK_ERR_KEY_FORMAT for any
 * other scheme or a token with spaces in it.
 */
int bearer_parse(const char *value, size_t len, const char **ret_token, size_t *ret_len);

#endif
