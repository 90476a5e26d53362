/*
 * render: see render.h. The hot path of the list endpoint: no heap
 * allocation, no JSON tree, a handful of memcpys per key.
 */
#include "http/render.h"

#include <string.h>

#include "core/timefmt.h"

#define LIT(b, s) render_raw((b), (s), sizeof(s) - 1)

void render_init(struct render_buf *b, h2o_mem_pool_t *pool, size_t hint)
{
    b->pool = pool;
    b->cap = hint < 256 ? 256 : hint;
    b->p = h2o_mem_alloc_pool(pool, b->cap);
    b->len = 0;
}

static void reserve(struct render_buf *b, size_t n)
{
    char *p;
    size_t cap = b->cap;

    if (b->len + n <= b->cap)
        return;
    while (cap < b->len + n)
        cap *= 2;
    p = h2o_mem_alloc_pool(b->pool, cap);
    memcpy(p, b->p, b->len);
    b->p = p;
    b->cap = cap;
}

void render_raw(struct render_buf *b, const char *s, size_t n)
{
    reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void render_i64(struct render_buf *b, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[sizeof(tmp) - ++n] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        tmp[sizeof(tmp) - ++n] = '-';
    render_raw(b, tmp + sizeof(tmp) - n, n);
}

static void render_time(struct render_buf *b, int64_t t)
{
    char s[TIMEFMT_LEN + 1];

    if (timefmt_format(t, s, sizeof(s)) != 0)
        memcpy(s, "1970-01-01T00:00:00Z", TIMEFMT_LEN + 1);
    reserve(b, TIMEFMT_LEN + 2);
    b->p[b->len++] = '"';
    memcpy(b->p + b->len, s, TIMEFMT_LEN);
    b->len += TIMEFMT_LEN;
    b->p[b->len++] = '"';
}

static void render_time_or_null(struct render_buf *b, int64_t t)
{
    if (t != 0)
        render_time(b, t);
    else
        LIT(b, "null");
}

static void render_id_or_null(struct render_buf *b, int64_t id)
{
    if (id != 0)
        render_i64(b, id);
    else
        LIT(b, "null");
}

/* A canonical list (`sep`-separated names of safe characters: scopes, CIDRs) as a JSON array of strings. */
static void render_list(struct render_buf *b, const char *s, size_t len, char sep)
{
    LIT(b, "[\"");
    for (size_t i = 0; i < len; i++) {
        if (s[i] == sep)
            LIT(b, "\",\"");
        else
            render_raw(b, &s[i], 1);
    }
    LIT(b, "\"]");
}

/* The most bytes render_list appends for `len` bytes of text. */
static size_t list_max(size_t len)
{
    return 3 * len + 8;
}

size_t render_key_max(const struct key_view *v, size_t extra_len)
{
    size_t slen;

    guard_scopes(v->guard, &slen);
    /* The longer of each pair of alternatives in render_key, and the widest number and times. */
    return sizeof("{\"id\":") - 1 + sizeof("-9223372036854775808") - 1 + sizeof(",\"name\":") - 1 + v->name_json_len +
           sizeof(",\"key_type\":\"production\"") - 1 + extra_len + sizeof(",\"key_prefix\":\"") - 1 + strlen(v->prefix) +
           sizeof("\",\"is_active\":false") - 1 + sizeof(",\"is_primary\":false,\"created_at\":") - 1 + TIMEFMT_LEN + 2 +
           sizeof(",\"last_used\":") - 1 + TIMEFMT_LEN + 2 + sizeof(",\"expires_at\":") - 1 + TIMEFMT_LEN + 2 +
           sizeof(",\"rotated_from\":") - 1 + 20 + sizeof(",\"rotated_to\":") - 1 + 20 + sizeof(",\"leaked_at\":") - 1 +
           TIMEFMT_LEN + 2 + sizeof(",\"scopes\":") - 1 + list_max(slen) + sizeof(",\"allowed_ips\":") - 1 +
           list_max(GUARD_IPS_TEXT_MAX) + sizeof(",\"rate_limit\":{\"limit\":1000000000,\"window_seconds\":86400}") - 1 +
           sizeof(",\"remaining\":9007199254740991") - 1 +
           sizeof(",\"refill\":{\"amount\":9007199254740991,\"interval\":\"month\"}") - 1 + sizeof("}") - 1;
}

void render_scopes(struct render_buf *b, const struct guard *g)
{
    size_t slen;
    const char *scopes = guard_scopes(g, &slen);

    if (scopes == NULL)
        LIT(b, "null");
    else if (slen == 0)
        LIT(b, "[]"); /* damaged in the store: grants nothing */
    else
        render_list(b, scopes, slen, ' ');
}

void render_allowed_ips(struct render_buf *b, const struct guard *g)
{
    char text[GUARD_IPS_TEXT_MAX];

    if (!guard_has_ips(g)) {
        LIT(b, "null");
        return;
    }
    guard_format_ips(g, text);
    if (text[0] == '\0')
        LIT(b, "[]"); /* damaged in the store: allows nothing */
    else
        render_list(b, text, strlen(text), ',');
}

void render_key(struct render_buf *b, const struct key_view *v, const char *extra, size_t extra_len)
{
    LIT(b, "{\"id\":");
    render_i64(b, v->id);
    LIT(b, ",\"name\":");
    render_raw(b, v->name_json, v->name_json_len);
    if (v->type == KEY_TYPE_SANDBOX)
        LIT(b, ",\"key_type\":\"sandbox\"");
    else
        LIT(b, ",\"key_type\":\"production\"");
    if (extra != NULL)
        render_raw(b, extra, extra_len);
    LIT(b, ",\"key_prefix\":\"");
    render_raw(b, v->prefix, strlen(v->prefix));
    if (v->active)
        LIT(b, "\",\"is_active\":true");
    else
        LIT(b, "\",\"is_active\":false");
    if (v->primary)
        LIT(b, ",\"is_primary\":true,\"created_at\":");
    else
        LIT(b, ",\"is_primary\":false,\"created_at\":");
    render_time(b, v->created_at);
    LIT(b, ",\"last_used\":");
    render_time_or_null(b, v->last_used);
    LIT(b, ",\"expires_at\":");
    render_time_or_null(b, v->expires_at);
    LIT(b, ",\"rotated_from\":");
    render_id_or_null(b, v->rotated_from);
    LIT(b, ",\"rotated_to\":");
    render_id_or_null(b, v->rotated_to);
    LIT(b, ",\"leaked_at\":");
    render_time_or_null(b, v->leaked_at);
    LIT(b, ",\"scopes\":");
    render_scopes(b, v->guard);
    LIT(b, ",\"allowed_ips\":");
    render_allowed_ips(b, v->guard);
    if (v->rate_limit != 0) {
        LIT(b, ",\"rate_limit\":{\"limit\":");
        render_i64(b, v->rate_limit);
        LIT(b, ",\"window_seconds\":");
        render_i64(b, v->rate_window);
        LIT(b, "}");
    } else {
        LIT(b, ",\"rate_limit\":null");
    }
    if (v->has_quota) {
        LIT(b, ",\"remaining\":");
        render_i64(b, v->remaining);
    } else {
        LIT(b, ",\"remaining\":null");
    }
    if (v->has_quota && v->refill_amount != 0) {
        LIT(b, ",\"refill\":{\"amount\":");
        render_i64(b, v->refill_amount);
        if (v->refill_interval == REFILL_MONTH)
            LIT(b, ",\"interval\":\"month\"}");
        else
            LIT(b, ",\"interval\":\"day\"}");
    } else {
        LIT(b, ",\"refill\":null");
    }
    LIT(b, "}");
}
