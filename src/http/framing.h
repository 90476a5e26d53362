/*
 * framing: a second look at how an HTTP/1.1 request says where its body
 * ends. h2o resolves Content-Length and Transfer-Encoding by itself (the
 * latter wins, the first Content-Length counts) and hides both from
 * handlers; a proxy in front may resolve them differently, which is how
 * requests are smuggled. So apikeyd refuses any request that carries both,
 * or more than one Content-Length. Pure: scans bytes, allocates nothing.
 */
#ifndef APIKEYD_HTTP_FRAMING_H
#define APIKEYD_HTTP_FRAMING_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Scans the header block at the start of `buf` (`len` bytes of the request
 * as received, up to its first empty line). Returns false when it holds
 * Content-Length more than once, or Content-Length and Transfer-Encoding.
 */
bool framing_ok(const char *buf, size_t len);

#endif
