/*
 * dashboard: see dashboard.h. The index is filled in once, at start (the
 * title escaped, the assets' hashed names); requests only copy bytes.
 */
#include "http/dashboard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/validate.h"
#include "http/dashboard_assets.h"

#define PREFIX "/dashboard"
#define ASSETS PREFIX "/assets/"

static char *index_html; /* filled in by dashboard_init, never freed (lives as long as the process) */
static size_t index_len;

/* Appends `s` (`n` bytes) to the growing buffer, HTML-escaped when `escape`. */
static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n, bool escape)
{
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        char one[2] = {s[i], '\0'};
        size_t rn;
        if (escape) {
            switch (s[i]) {
            case '&':
                rep = "&amp;";
                break;
            case '<':
                rep = "&lt;";
                break;
            case '>':
                rep = "&gt;";
                break;
            case '"':
                rep = "&quot;";
                break;
            case '\'':
                rep = "&#39;";
                break;
            }
        }
        if (rep == NULL)
            rep = one;
        rn = strlen(rep);
        if (*len + rn + 1 > *cap) {
            size_t ncap = (*cap + rn + 1) * 2;
            char *nb = realloc(*buf, ncap);
            if (nb == NULL)
                return AK_ERR_NOMEM;
            *buf = nb;
            *cap = ncap;
        }
        memcpy(*buf + *len, rep, rn);
        *len += rn;
    }
    (*buf)[*len] = '\0';
    return 0;
}

/* The hashed name of asset `name`, or NULL. */
static const char *served_name(const char *name, size_t n)
{
    for (unsigned i = 0; i < DASHBOARD_ASSET_COUNT; i++)
        if (strlen(DASHBOARD_ASSETS[i].name) == n && memcmp(DASHBOARD_ASSETS[i].name, name, n) == 0)
            return DASHBOARD_ASSETS[i].served;
    return NULL;
}

int dashboard_init(const char *title)
{
    char msg[VALIDATE_MSG_MAX], *buf = NULL;
    size_t len = 0, cap = 0;
    const char *p = DASHBOARD_INDEX;
    int r = 0;

    if (title == NULL)
        title = "apikeyd";
    if (strlen(title) > DASHBOARD_TITLE_MAX || validate_name(title, strlen(title), msg, sizeof(msg)) != 0)
        return AK_ERR_ARG;
    /* {{TITLE}} is the title, escaped; {{name}} of an asset is its hashed name. */
    while (r == 0 && *p != '\0') {
        const char *open = strstr(p, "{{"), *close = open != NULL ? strstr(open + 2, "}}") : NULL;
        if (open == NULL || close == NULL) {
            r = append(&buf, &len, &cap, p, strlen(p), false);
            break;
        }
        if ((r = append(&buf, &len, &cap, p, (size_t)(open - p), false)) != 0)
            break;
        if (close - open - 2 == 5 && memcmp(open + 2, "TITLE", 5) == 0) {
            r = append(&buf, &len, &cap, title, strlen(title), true);
        } else {
            const char *served = served_name(open + 2, (size_t)(close - open - 2));
            r = served != NULL ? append(&buf, &len, &cap, served, strlen(served), false) : AK_ERR_ARG;
        }
        p = close + 2;
    }
    if (r != 0) {
        free(buf);
        return r;
    }
    free(index_html);
    index_html = buf;
    index_len = len;
    return 0;
}

const char *dashboard_index(size_t *ret_len)
{
    *ret_len = index_len;
    return index_html;
}

bool dashboard_path(const char *path, size_t len)
{
    const size_t n = sizeof(PREFIX) - 1;

    return path != NULL && len >= n && memcmp(path, PREFIX, n) == 0 && (len == n || path[n] == '/');
}

/* The headers of every dashboard answer: no framing, no sniffing, no referrer, this origin only. */
static void security_headers(struct exchange *x)
{
    respond_header(x, "content-security-policy", DASHBOARD_CSP);
    respond_header(x, "x-frame-options", "DENY");
    respond_header(x, "x-content-type-options", "nosniff");
    respond_header(x, "referrer-policy", "no-referrer");
    respond_header(x, "cross-origin-opener-policy", "same-origin");
}

void dashboard_handle(struct exchange *x, const char *path, size_t len)
{
    h2o_req_t *req = x->req;
    const size_t an = sizeof(ASSETS) - 1;

    security_headers(x);
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        respond_header(x, "allow", "GET, HEAD");
        respond_error(x, 405, "method_not_allowed", "use GET");
        return;
    }
    if (len == sizeof(PREFIX) - 1) {
        respond_header(x, "location", PREFIX "/");
        respond_typed(x, 301, "text/plain; charset=utf-8", "", 0);
        return;
    }
    if (len == sizeof(PREFIX) && index_html != NULL) {
        respond_header(x, "cache-control", "no-cache");
        respond_typed(x, 200, "text/html; charset=utf-8", index_html, index_len);
        return;
    }
    if (len > an && memcmp(path, ASSETS, an) == 0) {
        for (unsigned i = 0; i < DASHBOARD_ASSET_COUNT; i++) {
            const struct dashboard_asset *a = &DASHBOARD_ASSETS[i];
            if (strlen(a->served) == len - an && memcmp(a->served, path + an, len - an) == 0) {
                respond_header(x, "cache-control", "public, max-age=31536000, immutable");
                respond_typed(x, 200, a->type, (const char *)a->bytes, a->len);
                return;
            }
        }
    }
    respond_error(x, 404, "not_found", "no such resource");
}
