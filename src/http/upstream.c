/*
 * upstream: the response head and body framing of an upstream, strictly;
 * see upstream.h.
 */
#include "http/upstream.h"

#include <string.h>
#include <strings.h>

static bool name_is(const struct phr_header *h, const char *lit)
{
    size_t n = strlen(lit);

    return h->name_len == n && strncasecmp(h->name, lit, n) == 0;
}

/* Whether the comma-separated `list` holds `token` (case-insensitive, spaces and tabs around items ignored). */
static bool has_token(const char *list, size_t len, const char *token)
{
    size_t n = strlen(token), i = 0;

    while (i < len) {
        size_t start, end;
        while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            i++;
        start = i;
        while (i < len && list[i] != ',')
            i++;
        end = i;
        while (end > start && (list[end - 1] == ' ' || list[end - 1] == '\t'))
            end--;
        if (end - start == n && strncasecmp(list + start, token, n) == 0)
            return true;
    }
    return false;
}

/* One decimal number of 1..19 digits, nothing else. */
static int parse_length(const char *s, size_t len, size_t *ret)
{
    size_t v = 0;

    if (len == 0 || len > 19)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *ret = v;
    return 0;
}

int upstream_parse_head(const char *buf, size_t len, bool head_request, struct up_head *h, const char **err)
{
    size_t off = 0;
    bool has_length = false, chunked = false;
    int r;

    for (;;) {
        h->num_headers = UPSTREAM_HEADERS_MAX;
        r = phr_parse_response(buf + off, len - off, &h->minor, &h->status, &h->reason, &h->reason_len, h->headers, &h->num_headers,
                               0);
        if (r == -2) {
            if (len >= UPSTREAM_HEAD_MAX) {
                *err = "response head too large";
                return -1;
            }
            return 0;
        }
        if (r < 0) {
            *err = "not an HTTP/1.x response";
            return -1;
        }
        off += (size_t)r;
        if (off > UPSTREAM_HEAD_MAX) {
            *err = "response head too large";
            return -1;
        }
        if (h->status >= 100 && h->status <= 199 && h->status != 101)
            continue; /* informational: the final head follows */
        break;
    }
    if (h->status < 200 || h->status > 599) {
        *err = h->status == 101 ? "a 101 Switching Protocols nobody asked for" : "a status outside 200..599";
        return -1;
    }
    h->head_len = off;
    h->content_length = 0;
    h->connection = NULL;
    h->connection_len = 0;
    for (size_t i = 0; i < h->num_headers; i++) {
        const struct phr_header *f = &h->headers[i];
        if (f->name == NULL || f->name_len == 0) {
            *err = "a folded or nameless header";
            return -1;
        }
        size_t vlen = f->value_len;
        while (vlen != 0 && (f->value[vlen - 1] == ' ' || f->value[vlen - 1] == '\t'))
            vlen--; /* picohttpparser drops the whitespace before a value, not after it */
        if (name_is(f, "content-length")) {
            size_t v;
            if (parse_length(f->value, vlen, &v) != 0 || (has_length && v != h->content_length)) {
                *err = "invalid content-length";
                return -1;
            }
            has_length = true;
            h->content_length = v;
        } else if (name_is(f, "transfer-encoding")) {
            if (chunked || vlen != 7 || strncasecmp(f->value, "chunked", 7) != 0) {
                *err = "a transfer-encoding other than one chunked";
                return -1;
            }
            chunked = true;
        } else if (name_is(f, "connection")) {
            if (h->connection != NULL) {
                *err = "two connection headers";
                return -1;
            }
            h->connection = f->value;
            h->connection_len = f->value_len;
        }
    }
    if (chunked && has_length) {
        *err = "both content-length and transfer-encoding";
        return -1;
    }
    if (chunked && h->minor == 0) {
        *err = "transfer-encoding in an HTTP/1.0 response"; /* RFC 9112, 6.1: its framing is faulty */
        return -1;
    }
    /* "close" always wins (RFC 9112, 9.3); HTTP/1.0 keeps the connection only when asked to. */
    if (h->connection != NULL && has_token(h->connection, h->connection_len, "close"))
        h->keep_alive = false;
    else
        h->keep_alive = h->minor >= 1 || (h->connection != NULL && has_token(h->connection, h->connection_len, "keep-alive"));
    if (head_request || h->status == 204 || h->status == 304)
        h->framing = UF_NONE;
    else if (chunked)
        h->framing = UF_CHUNKED;
    else if (has_length)
        h->framing = UF_LENGTH;
    else {
        h->framing = UF_CLOSE;
        h->keep_alive = false;
    }
    return 1;
}

void upstream_body_init(struct up_body *b, const struct up_head *h)
{
    memset(b, 0, sizeof(*b));
    b->framing = h->framing;
    b->left = h->content_length;
    b->chunked.consume_trailer = 1;
    b->done = h->framing == UF_NONE || (h->framing == UF_LENGTH && h->content_length == 0);
}

int upstream_body_take(struct up_body *b, char *buf, size_t len, size_t *data, size_t *extra)
{
    *data = 0;
    *extra = 0;
    if (b->done) {
        *extra = len;
        return 0;
    }
    switch (b->framing) {
    case UF_LENGTH:
        *data = len < b->left ? len : b->left;
        b->left -= *data;
        *extra = len - *data;
        b->done = b->left == 0;
        return 0;
    case UF_CHUNKED: {
        size_t sz = len;
        ssize_t r = phr_decode_chunked(&b->chunked, buf, &sz);
        if (r == -1)
            return -1;
        *data = sz;
        if (r >= 0) {
            b->done = true;
            *extra = (size_t)r;
        }
        return 0;
    }
    case UF_CLOSE:
        *data = len;
        return 0;
    case UF_NONE:
        break;
    }
    *extra = len;
    return 0;
}
