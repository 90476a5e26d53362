/*
 * render: key objects as JSON, written straight into the request's memory
 * pool from catalog views. Strings are never escaped here: names arrive
 * already encoded by jansson (key_view.name_json) and every other string is
 * a fixed ASCII token, a timestamp or a key prefix (base62 and '_').
 */
#ifndef APIKEYD_HTTP_RENDER_H
#define APIKEYD_HTTP_RENDER_H

#include <h2o.h>

#include "core/catalog.h"

/* A growing buffer in a request pool: growing allocates a new pool block, never a heap block. */
struct render_buf {
    h2o_mem_pool_t *pool;
    char *p;
    size_t len, cap;
};

/* Starts an empty buffer with `hint` bytes of room. */
void render_init(struct render_buf *b, h2o_mem_pool_t *pool, size_t hint);

/* Appends `n` bytes. */
void render_raw(struct render_buf *b, const char *s, size_t n);

/*
 * Appends one key object: id, name, key_type, then `extra` (raw JSON members
 * with a leading comma, or NULL), then key_prefix, is_active, is_primary,
 * created_at, last_used, expires_at, rotated_from, rotated_to, leaked_at,
 * scopes, allowed_ips.
 */
void render_key(struct render_buf *b, const struct key_view *v, const char *extra, size_t extra_len);

/*
 * The most bytes render_key appends for `v` with `extra_len` bytes of extra
 * members. A buffer started with this much room never grows: growing leaves
 * the old copy behind in the pool, which matters when `extra` holds a secret.
 */
size_t render_key_max(const struct key_view *v, size_t extra_len);

/* Appends a key's scopes / allowed_ips (guard.h; NULL: unrestricted) as JSON: null or an array of strings. */
void render_scopes(struct render_buf *b, const struct guard *g);
void render_allowed_ips(struct render_buf *b, const struct guard *g);

#endif
