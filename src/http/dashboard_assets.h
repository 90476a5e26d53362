/*
 * dashboard_assets: the dashboard's files, built into the binary by
 * cmake/embed_dashboard.cmake (the generated source is in the build tree).
 */
#ifndef APIKEYD_HTTP_DASHBOARD_ASSETS_H
#define APIKEYD_HTTP_DASHBOARD_ASSETS_H

#include <stddef.h>

struct dashboard_asset {
    const char *name;   /* in dashboard/, e.g. "app.js" */
    const char *served; /* under /dashboard/assets/, content-hashed: "app.0123456789ab.js" */
    const char *type;   /* Content-Type */
    const unsigned char *bytes;
    size_t len;
};

extern const struct dashboard_asset DASHBOARD_ASSETS[];
extern const unsigned DASHBOARD_ASSET_COUNT;

/* index.html as written, with {{TITLE}}, {{app.js}} and {{app.css}} to fill in. */
extern const char DASHBOARD_INDEX[];

#endif
