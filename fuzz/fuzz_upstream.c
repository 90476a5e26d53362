/*
 * fuzz_upstream: an upstream's response as the gateway reads it (http/upstream,
 * docs/design/issue-15.md): the input is every byte the upstream sent.
 *
 * The head, for a GET and for a HEAD request, from a copy of exactly the
 * input's size: upstream_parse_head returns 1, 0 or -1 (-1 with a printable
 * reason), reads nothing past the input, and
 *   - when it accepts: head_len <= len, the head starts with "HTTP/1." and
 *     ends with an empty line, the status is 200..599, every field has a
 *     non-empty token name, name and value inside the head, no CR, LF or NUL
 *     in a value; and what it says follows from those fields by the rules,
 *     written here apart from upstream.c (white space after a value is not
 *     part of it, RFC 9110 5.5): Content-Length one number of 1..19 digits
 *     (repeats equal), at most one Transfer-Encoding, exactly "chunked" in
 *     any case, not both, at most one Connection; framing none
 *     for HEAD, 204, 304, else chunked, else length, else until close;
 *     content_length the Content-Length or 0; keep_alive as RFC 9112 9.3 says
 *     ("close" wins, HTTP/1.1 persists, HTTP/1.0 with "keep-alive" persists),
 *     never for a body until close nor for an HTTP/1.0 message with
 *     Transfer-Encoding (RFC 9112 6.1); connection the Connection field's value
 *     (white space after it may be left out);
 *   - its answer depends only on the bytes it has seen: a prefix of the
 *     input that it accepts gives the same head as the whole input, one it
 *     refuses is refused whole, an incomplete input has only incomplete
 *     prefixes; the head alone, exactly sized, gives the same head; every
 *     proper prefix of an accepted head is incomplete;
 *   - when the input starts with "clean" heads (CRLF lines, a status line,
 *     token: value fields without white space after the value, at most
 *     UPSTREAM_HEADERS_MAX of them), parsed here apart from picohttpparser:
 *     the answer is the one the rules give (accepted with the same head,
 *     refused, or incomplete for a clean prefix).
 *
 * Then, for an accepted head, the rest of the input as its body, in pieces
 * whose sizes come from a hash of the input, each an exactly-sized copy;
 * for every piece data + extra <= its size, extra only once done, all of it
 * extra once done; Content-Length: never more than content_length bytes of
 * data in all, done exactly when they have come; until close: all data,
 * never done; none: done from the start. Chunked: the same data, the same
 * end and the same extra in pieces as in one call, and, when the body is
 * clean chunked (decoded here apart from picohttpparser: hex sizes of 1..16
 * digits, printable extensions, CRLF, printable trailer lines), exactly its
 * data, its end and the bytes after it.
 */
#include <stdbool.h>
#include <strings.h>

#include "fuzz.h"
#include "http/upstream.h"

#define ERR_CAP 256

/* ---- the rules, apart from upstream.c ---- */

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool same_ci(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);

    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

/* Whether the list `v` (`len` bytes) has an element equal to `tok` (lower case) once trimmed of SP and HTAB. */
static bool list_has(const char *v, size_t len, const char *tok)
{
    size_t at = 0;

    while (at <= len) {
        const char *comma = memchr(v + at, ',', len - at);
        size_t end = comma != NULL ? (size_t)(comma - v) : len, a = at, b = end;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (same_ci(v + a, b - a, tok))
            return true;
        at = end + 1;
    }
    return false;
}

struct expect {
    bool refuse;     /* the fields break a rule */
    bool may_refuse; /* HTTP/1.0 with Transfer-Encoding: refusing it is one way to treat its framing as faulty */
    enum up_framing framing;
    size_t content_length;
    bool keep_alive;
    const char *connection;
    size_t connection_len;
};

/* What the final head (status, minor, fields) must give; status is 200..599 already. */
static void judge(const struct phr_header *f, size_t n, int minor, int status, bool head_request, struct expect *e)
{
    size_t cl = 0, cls = 0, tes = 0, conns = 0;

    memset(e, 0, sizeof(*e));
    for (size_t i = 0; i < n; i++) {
        size_t vlen;
        if (f[i].name == NULL || f[i].name_len == 0) {
            e->refuse = true;
            continue;
        }
        /* White space around a value is not part of it (RFC 9110 5.5); the parser drops it before. */
        vlen = f[i].value_len;
        while (vlen > 0 && (f[i].value[vlen - 1] == ' ' || f[i].value[vlen - 1] == '\t'))
            vlen--;
        if (same_ci(f[i].name, f[i].name_len, "content-length")) {
            size_t v = 0;
            bool ok = vlen >= 1 && vlen <= 19;
            for (size_t k = 0; ok && k < vlen; k++) {
                unsigned char c = (unsigned char)f[i].value[k];
                if (c < '0' || c > '9')
                    ok = false;
                else
                    v = v * 10 + (size_t)(c - '0');
            }
            if (!ok || (cls > 0 && v != cl))
                e->refuse = true;
            cl = v;
            cls++;
        } else if (same_ci(f[i].name, f[i].name_len, "transfer-encoding")) {
            if (!same_ci(f[i].value, vlen, "chunked"))
                e->refuse = true;
            tes++;
        } else if (same_ci(f[i].name, f[i].name_len, "connection")) {
            e->connection = f[i].value;
            e->connection_len = f[i].value_len;
            conns++;
        }
    }
    if (tes > 1 || conns > 1 || (tes > 0 && cls > 0))
        e->refuse = true;
    e->content_length = cls > 0 ? cl : 0;
    if (head_request || status == 204 || status == 304)
        e->framing = UF_NONE;
    else if (tes > 0)
        e->framing = UF_CHUNKED;
    else if (cls > 0)
        e->framing = UF_LENGTH;
    else
        e->framing = UF_CLOSE;
    if (e->connection != NULL && list_has(e->connection, e->connection_len, "close"))
        e->keep_alive = false;
    else if (minor >= 1)
        e->keep_alive = true;
    else
        e->keep_alive = e->connection != NULL && list_has(e->connection, e->connection_len, "keep-alive");
    if (e->framing == UF_CLOSE)
        e->keep_alive = false;
    if (minor == 0 && tes > 0) {
        e->keep_alive = false;
        e->may_refuse = true;
    }
}

/* ---- heads ---- */

struct result {
    int r;
    size_t head_len, num_headers, content_length, connection_off, connection_len;
    int status, minor;
    enum up_framing framing;
    bool keep_alive, has_connection;
};

static struct up_head head; /* large: not on the stack */

/* upstream_parse_head on an exactly-sized copy of `data`; `head` is left as it gave it (pointing into freed memory). */
static struct result parse(const uint8_t *data, size_t len, bool head_request)
{
    char *copy = fuzz_dup(data, len);
    const char *err = NULL;
    struct result res;

    memset(&res, 0, sizeof(res));
    memset(&head, 0xa5, sizeof(head));
    res.r = upstream_parse_head(copy, len, head_request, &head, &err);
    FUZZ_CHECK(res.r == 1 || res.r == 0 || res.r == -1);
    if (res.r == -1) {
        FUZZ_CHECK(err != NULL);
        fuzz_check_msg(err, ERR_CAP);
    }
    if (res.r == 0)
        FUZZ_CHECK(len < UPSTREAM_HEAD_MAX);
    if (res.r == 1) {
        struct expect e;
        const char *end = copy + head.head_len;

        FUZZ_CHECK(head.head_len >= 1 && head.head_len <= len && head.head_len <= UPSTREAM_HEAD_MAX);
        FUZZ_CHECK(len >= 7 && memcmp(copy, "HTTP/1.", 7) == 0);
        FUZZ_CHECK(head.head_len >= 2 && end[-1] == '\n' &&
                   (end[-2] == '\n' || (head.head_len >= 3 && end[-2] == '\r' && end[-3] == '\n')));
        FUZZ_CHECK(head.status >= 200 && head.status <= 599);
        FUZZ_CHECK(head.minor >= 0 && head.minor <= 9);
        FUZZ_CHECK(head.reason != NULL && head.reason >= copy && head.reason + head.reason_len <= end);
        FUZZ_CHECK(head.num_headers <= UPSTREAM_HEADERS_MAX);
        for (size_t i = 0; i < head.num_headers; i++) {
            const struct phr_header *f = &head.headers[i];
            FUZZ_CHECK(f->name != NULL && f->name_len > 0);
            FUZZ_CHECK(f->name >= copy && f->name + f->name_len <= end);
            for (size_t k = 0; k < f->name_len; k++)
                FUZZ_CHECK(is_tchar((unsigned char)f->name[k]));
            FUZZ_CHECK(f->value != NULL && f->value >= copy && f->value + f->value_len <= end);
            for (size_t k = 0; k < f->value_len; k++)
                FUZZ_CHECK(f->value[k] != '\r' && f->value[k] != '\n' && f->value[k] != '\0');
        }
        judge(head.headers, head.num_headers, head.minor, head.status, head_request, &e);
        FUZZ_CHECK(!e.refuse);
        FUZZ_CHECK(head.framing == e.framing);
        FUZZ_CHECK(head.content_length == e.content_length);
        FUZZ_CHECK(head.keep_alive == e.keep_alive);
        /* The Connection field's value, perhaps without white space at its end. */
        FUZZ_CHECK(head.connection == e.connection && head.connection_len <= e.connection_len);
        for (size_t k = head.connection_len; k < e.connection_len; k++)
            FUZZ_CHECK(e.connection[k] == ' ' || e.connection[k] == '\t');
        res.head_len = head.head_len;
        res.num_headers = head.num_headers;
        res.content_length = head.content_length;
        res.status = head.status;
        res.minor = head.minor;
        res.framing = head.framing;
        res.keep_alive = head.keep_alive;
        res.has_connection = head.connection != NULL;
        res.connection_off = head.connection != NULL ? (size_t)(head.connection - copy) : 0;
        res.connection_len = head.connection_len;
    }
    free(copy);
    return res;
}

static bool same_head(const struct result *a, const struct result *b)
{
    return a->r == 1 && b->r == 1 && a->head_len == b->head_len && a->num_headers == b->num_headers &&
           a->content_length == b->content_length && a->status == b->status && a->minor == b->minor && a->framing == b->framing &&
           a->keep_alive == b->keep_alive && a->has_connection == b->has_connection && a->connection_off == b->connection_off &&
           a->connection_len == b->connection_len;
}

/* ---- clean heads, parsed apart from picohttpparser ---- */

struct clean {
    int r; /* 1: clean heads up to a final one; 0: a proper prefix of clean heads; -1: not clean (no claim) */
    size_t head_len;
    int status, minor;
    struct phr_header f[UPSTREAM_HEADERS_MAX];
    size_t n;
};

static bool vchar(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e;
}

/* One clean head at b[*at, len): 1 parsed, 0 ran out of bytes while clean, -1 not clean. */
static int clean_head(const char *b, size_t len, size_t *at, struct clean *c)
{
    size_t i = *at;

#define NEED(k)                                                                                                                    \
    do {                                                                                                                           \
        if (len - i < (k))                                                                                                         \
            goto prefix;                                                                                                           \
    } while (0)
    /* "HTTP/1.D SSS reason\r\n", only its visible bytes, spaces and tabs in the reason */
    for (const char *p = "HTTP/1."; *p != '\0'; p++, i++) {
        NEED(1);
        if (b[i] != *p)
            return -1;
    }
    NEED(1);
    if (b[i] < '0' || b[i] > '9')
        return -1;
    c->minor = b[i++] - '0';
    NEED(1);
    if (b[i++] != ' ')
        return -1;
    c->status = 0;
    for (int k = 0; k < 3; k++, i++) {
        NEED(1);
        if (b[i] < '0' || b[i] > '9')
            return -1;
        c->status = c->status * 10 + (b[i] - '0');
    }
    NEED(1);
    if (b[i++] != ' ')
        return -1;
    for (;; i++) {
        NEED(1);
        if (b[i] == '\r')
            break;
        if (!vchar((unsigned char)b[i]) && b[i] != ' ' && b[i] != '\t')
            return -1;
    }
    i++;
    NEED(1);
    if (b[i++] != '\n')
        return -1;
    /* fields: "name:" SP/HTAB* value "\r\n", the value without white space at its end */
    for (c->n = 0;; c->n++) {
        size_t name, vstart, vend;
        NEED(1);
        if (b[i] == '\r') {
            i++;
            NEED(1);
            if (b[i++] != '\n')
                return -1;
            break;
        }
        if (c->n == UPSTREAM_HEADERS_MAX)
            return -1;
        name = i;
        for (;; i++) {
            NEED(1);
            if (b[i] == ':')
                break;
            if (!is_tchar((unsigned char)b[i]))
                return -1;
        }
        if (i == name)
            return -1;
        c->f[c->n].name = b + name;
        c->f[c->n].name_len = i - name;
        i++;
        for (;; i++) {
            NEED(1);
            if (b[i] != ' ' && b[i] != '\t')
                break;
        }
        vstart = vend = i;
        for (;; i++) {
            NEED(1);
            if (b[i] == '\r')
                break;
            if (vchar((unsigned char)b[i]))
                vend = i + 1;
            else if (b[i] != ' ' && b[i] != '\t')
                return -1;
        }
        if (vend != i)
            return -1; /* white space after the value: not clean */
        c->f[c->n].value = b + vstart;
        c->f[c->n].value_len = vend - vstart;
        i++;
        NEED(1);
        if (b[i++] != '\n')
            return -1;
    }
    *at = i;
    return 1;
prefix:
    return 0;
#undef NEED
}

static void clean_parse(const char *b, size_t len, struct clean *c)
{
    size_t at = 0;

    for (;;) {
        int r = clean_head(b, len, &at, c);
        if (r != 1) {
            c->r = r;
            return;
        }
        if (c->status >= 100 && c->status <= 199 && c->status != 101)
            continue;
        c->r = 1;
        c->head_len = at;
        return;
    }
}

static void check_clean(const uint8_t *data, size_t len, bool head_request, const struct result *got)
{
    struct clean *c = malloc(sizeof(*c));
    struct expect e;

    if (c == NULL)
        fuzz_fail("malloc", __FILE__, __LINE__);
    clean_parse((const char *)data, len, c);
    if (c->r == 0 && len < UPSTREAM_HEAD_MAX)
        FUZZ_CHECK(got->r == 0);
    if (c->r == 1 && c->head_len <= UPSTREAM_HEAD_MAX) {
        if (c->status < 200 || c->status > 599) {
            FUZZ_CHECK(got->r == -1);
        } else {
            judge(c->f, c->n, c->minor, c->status, head_request, &e);
            if (e.refuse) {
                FUZZ_CHECK(got->r == -1);
            } else if (!(e.may_refuse && got->r == -1)) {
                FUZZ_CHECK(got->r == 1);
                FUZZ_CHECK(got->head_len == c->head_len && got->status == c->status && got->minor == c->minor);
                FUZZ_CHECK(got->num_headers == c->n);
                FUZZ_CHECK(got->framing == e.framing && got->content_length == e.content_length && got->keep_alive == e.keep_alive);
                FUZZ_CHECK(got->has_connection == (e.connection != NULL));
                if (e.connection != NULL)
                    FUZZ_CHECK(got->connection_off == (size_t)(e.connection - (const char *)data) &&
                               got->connection_len == e.connection_len);
            }
        }
    }
    free(c);
}

/* ---- bodies ---- */

static uint64_t hash(const uint8_t *data, size_t len)
{
    uint64_t x = 0xcbf29ce484222325u;

    for (size_t i = 0; i < len; i++)
        x = (x ^ data[i]) * 0x100000001b3u;
    return x;
}

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct fed {
    char *data; /* all the body data, concatenated */
    size_t data_len, extra;
    bool done, failed;
    size_t done_at; /* the input offset at the end of the piece that ended the body */
};

/*
 * Feeds `in` (`len` bytes) to a body of `h`'s framing in pieces: all at once
 * when `seed` is 0, else of sizes drawn from it. The per-piece invariants
 * are checked here.
 */
static void feed(const struct up_head *h, const uint8_t *in, size_t len, uint64_t seed, struct fed *out)
{
    struct up_body b;
    size_t at = 0, total = 0;

    memset(out, 0, sizeof(*out));
    out->data = malloc(len > 0 ? len : 1);
    if (out->data == NULL)
        fuzz_fail("malloc", __FILE__, __LINE__);
    upstream_body_init(&b, h);
    FUZZ_CHECK(b.framing == h->framing);
    FUZZ_CHECK(b.done == (h->framing == UF_NONE || (h->framing == UF_LENGTH && h->content_length == 0)));
    out->done = b.done;
    do {
        size_t n = len - at, data = (size_t)-1, extra = (size_t)-1;
        bool was_done = b.done;
        char *piece;
        int r;
        if (seed != 0) {
            uint64_t v = next(&seed);
            /* mostly a few bytes, sometimes none, sometimes a lot */
            size_t want = (v & 7) == 0 ? (size_t)(v >> 8) % 512 : (v & 7) == 1 ? 0 : (size_t)(v >> 8) % 17;
            if (want < n)
                n = want;
        }
        piece = fuzz_dup(in + at, n);
        r = upstream_body_take(&b, piece, n, &data, &extra);
        FUZZ_CHECK(r == 0 || r == -1);
        if (r == -1) {
            FUZZ_CHECK(h->framing == UF_CHUNKED && !was_done);
            out->failed = true;
            free(piece);
            return;
        }
        FUZZ_CHECK(data <= n && extra <= n - data);
        if (was_done)
            FUZZ_CHECK(b.done && data == 0 && extra == n);
        if (extra != 0)
            FUZZ_CHECK(b.done);
        switch (h->framing) {
        case UF_NONE:
            FUZZ_CHECK(data == 0 && extra == n && b.done);
            break;
        case UF_LENGTH:
            FUZZ_CHECK(total + data <= h->content_length);
            FUZZ_CHECK(data == (n < h->content_length - total ? n : h->content_length - total));
            FUZZ_CHECK(b.done == (total + data == h->content_length));
            FUZZ_CHECK(memcmp(piece, in + at, data) == 0);
            break;
        case UF_CLOSE:
            FUZZ_CHECK(data == n && extra == 0 && !b.done);
            FUZZ_CHECK(memcmp(piece, in + at, n) == 0);
            break;
        case UF_CHUNKED:
            break;
        default:
            FUZZ_CHECK(!"framing");
        }
        if (!was_done && b.done)
            out->done_at = at + n;
        memcpy(out->data + out->data_len, piece, data);
        out->data_len += data;
        out->extra += extra;
        total += data;
        out->done = b.done;
        free(piece);
        at += n;
    } while (at < len);
}

/*
 * A clean chunked body at in[0, len), decoded apart from picohttpparser: 1
 * complete (its end in *end, the data in `out`), 0 a clean prefix (the data
 * so far in `out`), -1 not clean.
 */
static int clean_chunked(const uint8_t *in, size_t len, char *out, size_t *out_len, size_t *end)
{
    size_t i = 0;

    *out_len = 0;
    for (;;) {
        size_t size = 0, digits = 0;
        for (; i < len; i++) {
            int v = in[i] >= '0' && in[i] <= '9'   ? in[i] - '0'
                    : in[i] >= 'a' && in[i] <= 'f' ? in[i] - 'a' + 10
                    : in[i] >= 'A' && in[i] <= 'F' ? in[i] - 'A' + 10
                                                   : -1;
            if (v < 0)
                break;
            if (++digits > 16)
                return -1;
            size = size * 16 + (size_t)v;
        }
        if (i == len)
            return 0;
        if (digits == 0)
            return -1;
        if (in[i] == ';') /* an extension: printable bytes up to CR */
            for (; i < len && in[i] != '\r'; i++)
                if (in[i] < 0x20 || in[i] > 0x7e)
                    return -1;
        if (i == len)
            return 0;
        if (in[i++] != '\r')
            return -1;
        if (i == len)
            return 0;
        if (in[i++] != '\n')
            return -1;
        if (size == 0)
            break;
        if (len - i <= size) {
            memcpy(out + *out_len, in + i, len - i);
            *out_len += len - i;
            return 0;
        }
        memcpy(out + *out_len, in + i, size);
        *out_len += size;
        i += size;
        if (in[i++] != '\r')
            return -1;
        if (i == len)
            return 0;
        if (in[i++] != '\n')
            return -1;
    }
    /* trailer lines: printable, not empty, each ended by CRLF; then CRLF */
    for (;;) {
        if (i == len)
            return 0;
        if (in[i] == '\r') {
            if (++i == len)
                return 0;
            if (in[i++] != '\n')
                return -1;
            *end = i;
            return 1;
        }
        for (; i < len && in[i] != '\r'; i++)
            if (in[i] < 0x20 || in[i] > 0x7e)
                return -1;
        if (i == len)
            return 0;
        if (++i == len)
            return 0;
        if (in[i++] != '\n')
            return -1;
    }
}

static void check_body(const uint8_t *data, size_t size, const struct up_head *h)
{
    const uint8_t *in = data + h->head_len;
    size_t len = size - h->head_len;
    struct fed whole, split;

    feed(h, in, len, 0, &whole);
    feed(h, in, len, hash(data, size) | 1, &split);
    FUZZ_CHECK(whole.failed == split.failed);
    if (!whole.failed) {
        FUZZ_CHECK(whole.done == split.done && whole.data_len == split.data_len && whole.extra == split.extra);
        FUZZ_CHECK(memcmp(whole.data, split.data, whole.data_len) == 0);
        FUZZ_CHECK(whole.data_len + whole.extra <= len);
        if (whole.done)
            FUZZ_CHECK(whole.data_len + whole.extra == len || h->framing == UF_CHUNKED);
    }
    if (h->framing == UF_CHUNKED) {
        char *want = malloc(len > 0 ? len : 1);
        size_t want_len, end = 0;
        int c;
        if (want == NULL)
            fuzz_fail("malloc", __FILE__, __LINE__);
        c = clean_chunked(in, len, want, &want_len, &end);
        if (c >= 0) {
            FUZZ_CHECK(!whole.failed && !split.failed);
            FUZZ_CHECK(whole.data_len == want_len && memcmp(whole.data, want, want_len) == 0);
            FUZZ_CHECK(whole.done == (c == 1));
            if (c == 1) {
                FUZZ_CHECK(whole.extra == len - end && split.done_at >= end);
                FUZZ_CHECK(whole.done_at == len);
            }
        }
        free(want);
    }
    free(whole.data);
    free(split.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t seed = hash(data, size) | 1;

    for (int hr = 0; hr < 2; hr++) {
        struct result all = parse(data, size, hr), part;
        size_t cuts[3];
        struct up_head h;

        check_clean(data, size, hr, &all);
        /* A few prefixes: what they give, the whole input gives. */
        cuts[0] = size / 2;
        cuts[1] = size > 0 ? (size_t)(next(&seed) % size) : 0;
        cuts[2] = size > 0 ? size - 1 : 0;
        for (int k = 0; k < 3; k++) {
            if (cuts[k] >= size)
                continue;
            part = parse(data, cuts[k], hr);
            if (part.r == 1)
                FUZZ_CHECK(same_head(&part, &all));
            if (part.r == -1)
                FUZZ_CHECK(all.r == -1);
            if (all.r == 0)
                FUZZ_CHECK(part.r == 0);
        }
        if (all.r != 1)
            continue;
        /* The head alone, and every proper prefix of it tried here, incomplete. */
        part = parse(data, all.head_len, hr);
        FUZZ_CHECK(same_head(&part, &all));
        cuts[0] = all.head_len - 1;
        cuts[1] = (size_t)(next(&seed) % all.head_len);
        cuts[2] = all.head_len / 2;
        for (int k = 0; k < 3; k++)
            FUZZ_CHECK(parse(data, cuts[k], hr).r == 0);

        /* The body, read from the input as the gateway keeps it. */
        {
            char *copy = fuzz_dup(data, size);
            const char *err = NULL;
            FUZZ_CHECK(upstream_parse_head(copy, size, hr, &head, &err) == 1);
            h = head;
            check_body(data, size, &h);
            free(copy);
        }
    }
    return 0;
}
