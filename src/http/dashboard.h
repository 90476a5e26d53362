/*
 * dashboard: the web page at /dashboard/ (customers sign in with an API key,
 * operators with an admin token; the page then calls the API like any
 * client). Its files are built into the binary (dashboard_assets.h).
 *
 * Every answer carries a strict Content-Security-Policy (scripts and styles
 * from this origin only, no inline script, no framing), and the assets'
 * names carry their content's hash, so they are cached for a year.
 */
#ifndef APIKEYD_HTTP_DASHBOARD_H
#define APIKEYD_HTTP_DASHBOARD_H

#include <stdbool.h>
#include <stddef.h>

#include "http/respond.h"

#define DASHBOARD_TITLE_MAX 100 /* bytes of --dashboard-title */
#define DASHBOARD_CSP                                                                                                              \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; "       \
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/*
 * Prepares the page with `title` (HTML-escaped here; NULL: "apikeyd").
 * Returns 0, AK_ERR_ARG for a title that is empty, too long or not
 * printable UTF-8 text, or AK_ERR_NOMEM.
 */
int dashboard_init(const char *title);

/* The page as dashboard_init filled it in (NULL before), and its length. */
const char *dashboard_index(size_t *ret_len);

/* Whether `path` (`len` bytes, no query) is the dashboard's: /dashboard or below. */
bool dashboard_path(const char *path, size_t len);

/* Answers a request for a dashboard path (GET and HEAD; 405 otherwise). */
void dashboard_handle(struct exchange *x, const char *path, size_t len);

#endif
