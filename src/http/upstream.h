/*
 * upstream: reading an upstream's HTTP/1.x response, strictly. Pure: no
 * I/O, no allocation; the bytes are untrusted. The head is parsed with
 * picohttpparser (which libh2o ships and exports, without its header: the
 * declarations below are its API, as h2o 2.2.5 builds it). Everything a
 * gateway could read differently from the client behind it is refused:
 * folded or nameless headers, a Content-Length that is not one decimal
 * number, Transfer-Encoding other than chunked, both at once, a 101 nobody
 * asked for.
 *
 * h2o's own HTTP/1 client is not used for this: in h2o 2.2 an HTTP/1.1
 * response with a malformed Content-Length or Transfer-Encoding fails an
 * assert() in it (lib/common/http1client.c, on_error_before_head), which
 * would let any upstream abort the gateway.
 */
#ifndef APIKEYD_HTTP_UPSTREAM_H
#define APIKEYD_HTTP_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* picohttpparser, as exported by libh2o-evloop. */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
};
int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status, const char **msg, size_t *msg_len,
                       struct phr_header *headers, size_t *num_headers, size_t last_len);
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#define UPSTREAM_HEADERS_MAX 100
#define UPSTREAM_HEAD_MAX (64 * 1024) /* a longer head is refused */

enum up_framing {
    UF_NONE = 0, /* no body: HEAD, 204, 304 */
    UF_LENGTH,   /* Content-Length bytes */
    UF_CHUNKED,  /* Transfer-Encoding: chunked */
    UF_CLOSE,    /* until the upstream closes */
};

struct up_head {
    int status; /* 200..599 */
    int minor;  /* HTTP/1.minor */
    const char *reason;
    size_t reason_len;
    struct phr_header headers[UPSTREAM_HEADERS_MAX]; /* pointing into the parsed buffer */
    size_t num_headers;
    size_t head_len; /* bytes of the head, informational (1xx) heads before it included */
    enum up_framing framing;
    size_t content_length;  /* UF_LENGTH */
    bool keep_alive;        /* the connection may carry another exchange once this body is read */
    const char *connection; /* the Connection header's value (its tokens name more hop-by-hop headers), or NULL */
    size_t connection_len;
};

/*
 * Parses the response head at the start of `buf` (`len` bytes), skipping
 * 1xx informational heads. 1 when parsed (`h` filled), 0 when more bytes are
 * needed, -1 when invalid (*err says why).
 * `head_request`: the request was HEAD (no body follows whatever the head says).
 */
int upstream_parse_head(const char *buf, size_t len, bool head_request, struct up_head *h, const char **err);

struct up_body {
    enum up_framing framing;
    size_t left; /* UF_LENGTH: bytes still to come */
    struct phr_chunked_decoder chunked;
    bool done;
};

/* Starts reading the body `h` announces. */
void upstream_body_init(struct up_body *b, const struct up_head *h);

/*
 * Takes the `len` bytes at `buf` (changed in place): on return buf[0,
 * *data) is body data, and *extra bytes right after it came after the end
 * of the body (the connection cannot be reused). 0, or -1 when a chunked
 * body is malformed. b->done says when the body is complete.
 */
int upstream_body_take(struct up_body *b, char *buf, size_t len, size_t *data, size_t *extra);

#endif
