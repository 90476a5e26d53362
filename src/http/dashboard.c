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

/* The asset whose name in dashboard/ (or, with `served`, whose hashed name) is s[0..n), or NULL. */
static const struct dashboard_asset *find_asset(const char *s, size_t n, bool served)
{
    for (unsigned i = 0; i < DASHBOARD_ASSET_COUNT; i++) {
        const char *name = served ? DASHBOARD_ASSETS[i].served : DASHBOARD_ASSETS[i].name;
        if (strlen(name) == n && memcmp(name, s, n) == 0)
            return &DASHBOARD_ASSETS[i];
    }
    return NULL;
}

#define INDEX_PARTS 16 /* text and placeholders of index.html, with room to spare */

int dashboard_init(const char *title)
{
    char msg[VALIDATE_MSG_MAX], *page;
    h2o_iovec_t parts[INDEX_PARTS], all;
    h2o_mem_pool_t pool;
    const char *p = DASHBOARD_INDEX;
    size_t n = 0;
    int r = 0;

    if (title == NULL)
        title = "apikeyd";
    if (strlen(title) > DASHBOARD_TITLE_MAX || validate_name(title, strlen(title), msg, sizeof(msg)) != 0)
        return AK_ERR_ARG;
    h2o_mem_init_pool(&pool);
    /* {{TITLE}} is the title, HTML-escaped; {{name}} of an asset is its hashed name. */
    for (;;) {
        const char *open = strstr(p, "{{"), *close = open != NULL ? strstr(open + 2, "}}") : NULL;
        const struct dashboard_asset *a;

        if (open == NULL || close == NULL || n + 3 > INDEX_PARTS) {
            r = open == NULL || close == NULL ? 0 : AK_ERR_ARG;
            parts[n++] = h2o_iovec_init(p, strlen(p));
            break;
        }
        parts[n++] = h2o_iovec_init(p, (size_t)(open - p));
        if (close - open - 2 == 5 && memcmp(open + 2, "TITLE", 5) == 0)
            parts[n++] = h2o_htmlescape(&pool, title, strlen(title));
        else if ((a = find_asset(open + 2, (size_t)(close - open - 2), false)) != NULL)
            parts[n++] = h2o_iovec_init(a->served, strlen(a->served));
        else
            r = AK_ERR_ARG;
        p = close + 2;
    }
    all = h2o_concat_list(&pool, parts, n);
    if (r == 0 && (page = malloc(all.len + 1)) == NULL)
        r = AK_ERR_NOMEM;
    if (r == 0) {
        memcpy(page, all.base, all.len);
        page[all.len] = '\0';
        free(index_html);
        index_html = page;
        index_len = all.len;
    }
    h2o_mem_clear_pool(&pool);
    return r;
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
    const struct dashboard_asset *a;

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
    if (len > an && memcmp(path, ASSETS, an) == 0 && (a = find_asset(path + an, len - an, true)) != NULL) {
        respond_header(x, "cache-control", "public, max-age=31536000, immutable");
        respond_typed(x, 200, a->type, (const char *)a->bytes, a->len);
        return;
    }
    respond_error(x, 404, "not_found", "no such resource");
}
