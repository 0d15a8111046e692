/* api_dashboard.h -- the dashboard's static files, embedded in the binary.
 *
 * api/dashboard/ holds the dashboard (index.html, style.css and the scripts
 * app.js, grid.js, plots.js and export.js that index.html loads in that
 * order: no build step, no external resources). At build time
 * api/dashboard/embed.sh turns each file into a const byte array in
 * build/gen/api_dashboard_assets.c with its Content-Type and a strong ETag
 * (a prefix of its SHA-256), listed in api_dashboard_assets[] (terminated
 * by a NULL name). api_dashboard.c serves them at GET / and GET
 * /dashboard/{file}, and the route table as /dashboard/routes.json (the
 * dashboard enables optional views only when their routes exist).
 *
 * Ownership: the table and its bytes are static, read-only.
 * Thread-safety: read-only data; the handler keeps no state.
 */
#ifndef API_API_DASHBOARD_H
#define API_API_DASHBOARD_H

#include <stddef.h>

#include "api/api_int.h"

struct api_asset {
    const char *name;         /* "index.html"; NULL ends the table */
    const char *content_type; /* "text/html; charset=utf-8" */
    const char *etag;         /* quoted, strong: "\"<32 hex>\"" */
    const unsigned char *data;
    size_t size;
};

extern const struct api_asset api_dashboard_assets[];

/* GET / (index.html) and GET /dashboard/{file}: an embedded file with its
 * Content-Type, ETag and Cache-Control: no-cache (If-None-Match gives 304),
 * or 404 for an unknown name. */
api_handler_fn api__dashboard;

#endif /* API_API_DASHBOARD_H */
