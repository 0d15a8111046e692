/* api.c -- the route table, dispatch, bearer-token auth and problem+json.
 *
 * Dispatch: the percent-decoded path is matched against every route
 * template; a route whose template matches but whose method differs makes a
 * 405 with Allow, no match a 404. Templates are split on '/'; `{name}`
 * matches one non-empty segment, except `{layer}`, which takes every segment
 * up to the template's fixed tail (layer names may contain '/'). HEAD is
 * handled as GET (the server sends no body).
 *
 * Auth (RFC 6750), only when ctx->tokens is set: GET needs the read scope,
 * POST, PUT and DELETE the write scope; /healthz, /readyz and /metrics are open
 * (aggregate counters, no run data; scrape them without a token), and so are
 * the dashboard's static files (/ and /dashboard/{file}: the page asks for a
 * token when the API answers 401).
 */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_dashboard.h"
#include "api/api_int.h"
#include "api/api_recommend_int.h"
#include "core/utf8.h"

enum api_auth_need { API_AUTH_NONE, API_AUTH_READ, API_AUTH_WRITE };

struct api_route {
    const char *method;
    const char *path;
    api_handler_fn *fn;
    enum api_auth_need auth;
    const char *const *params; /* query parameters the route accepts */
};

static const char *const api_q_none[] = {NULL};
static const char *const api_q_page[] = {"page_size", "page_token", NULL};
static const char *const api_q_post[] = {"step",     "preset",    "format",    "layout", "weights",
                                         "base_run", "base_step", "base_path", NULL};
static const char *const api_q_preset[] = {"preset", NULL};
static const char *const api_q_hist[] = {"metrics",  "preset",     "start_step",
                                         "end_step", "max_points", NULL};
static const char *const api_q_heat[] = {"metric",    "preset",     "start_step", "end_step",
                                         "page_size", "page_token", NULL};
static const char *const api_q_sparsity[] = {"target", "epsilon", "block_size", "preset", NULL};
static const char *const api_q_lr[] = {"base_lr",      "min_ratio",   "max_ratio", "map",
                                       "remove_first", "remove_last", "preset",    NULL};
static const char *const api_q_esd[] = {"step", "preset", NULL};
static const char *const api_q_jobs[] = {"state", "run", "page_size", "page_token", NULL};
static const char *const api_q_compare[] = {"a", "b", "preset", "preset_b", NULL};

/* The route table: method, template, handler, scope, query parameters. */
#define API_ROUTE_MAP(X)                                                                      \
    X("GET", "/healthz", api__healthz, API_AUTH_NONE, api_q_none)                             \
    X("GET", "/readyz", api__readyz, API_AUTH_NONE, api_q_none)                               \
    X("GET", "/metrics", api__metrics, API_AUTH_NONE, api_q_none)                             \
    X("GET", "/v1/runs", api__runs_list, API_AUTH_READ, api_q_page)                           \
    X("GET", "/v1/runs/{run}", api__run_get, API_AUTH_READ, api_q_none)                       \
    X("DELETE", "/v1/runs/{run}", api__run_delete, API_AUTH_WRITE, api_q_none)                \
    X("POST", "/v1/runs/{run}/checkpoints", api__checkpoint_post, API_AUTH_WRITE, api_q_post) \
    X("PUT", "/v1/runs/{run}/checkpoints", api__checkpoint_post, API_AUTH_WRITE, api_q_post)  \
    X("GET", "/v1/runs/{run}/checkpoints", api__checkpoints_list, API_AUTH_READ, api_q_page)  \
    X("GET", "/v1/runs/{run}/checkpoints/{step}", api__checkpoint_get, API_AUTH_READ,         \
      api_q_preset)                                                                           \
    X("GET", "/v1/runs/{run}/layers", api__layers_latest, API_AUTH_READ, api_q_preset)        \
    X("GET", "/v1/runs/{run}/layers/{layer}/history", api__layer_history, API_AUTH_READ,      \
      api_q_hist)                                                                             \
    X("GET", "/v1/runs/{run}/history", api__run_history, API_AUTH_READ, api_q_heat)           \
    X("GET", "/v1/runs/{run}/summary/history", api__summary_hist, API_AUTH_READ, api_q_heat)  \
    X("GET", "/v1/runs/{run}/checkpoints/{step}/recommendations/sparsity", api__rec_sparsity, \
      API_AUTH_READ, api_q_sparsity)                                                          \
    X("GET", "/v1/runs/{run}/checkpoints/{step}/recommendations/learning-rates",              \
      api__rec_learning_rates, API_AUTH_READ, api_q_lr)                                       \
    X("GET", "/v1/runs/{run}/layers/{layer}/esd", api__layer_esd, API_AUTH_READ, api_q_esd)   \
    X("GET", "/v1/runs/{run}/layers/{layer}/esd.svg", api__layer_esd_svg, API_AUTH_READ,      \
      api_q_esd)                                                                              \
    X("GET", "/v1/compare", api__compare, API_AUTH_READ, api_q_compare)                       \
    X("GET", "/v1/jobs", api__jobs_list, API_AUTH_READ, api_q_jobs)                           \
    X("GET", "/v1/jobs/{id}", api__job_get, API_AUTH_READ, api_q_none)                        \
    X("DELETE", "/v1/jobs/{id}", api__job_delete, API_AUTH_WRITE, api_q_none)                 \
    X("GET", "/v1/tensors/{sha256}", api__tensor_get, API_AUTH_READ, api_q_none)              \
    X("GET", "/v1/alerts/rules", api__alert_rules_get, API_AUTH_READ, api_q_none)             \
    X("PUT", "/v1/alerts/rules", api__alert_rules_put, API_AUTH_WRITE, api_q_none)            \
    X("GET", "/v1/runs/{run}/alerts/rules", api__run_rules_get, API_AUTH_READ, api_q_none)    \
    X("PUT", "/v1/runs/{run}/alerts/rules", api__run_rules_put, API_AUTH_WRITE, api_q_none)   \
    X("DELETE", "/v1/runs/{run}/alerts/rules", api__rules_delete, API_AUTH_WRITE, api_q_none) \
    X("GET", "/v1/runs/{run}/alerts", api__run_alerts, API_AUTH_READ, api_q_page)             \
    X("GET", "/v1/alerts/deliveries", api__deliveries_list, API_AUTH_READ, api_q_jobs)        \
    X("GET", "/", api__dashboard, API_AUTH_NONE, api_q_none)                                  \
    X("GET", "/dashboard/{file}", api__dashboard, API_AUTH_NONE, api_q_none)

static const struct api_route api_table[] = {
#define X(m, p, fn, auth, q) {m, p, fn, auth, q},
    API_ROUTE_MAP(X)
#undef X
};
#define API_N_ROUTES (sizeof(api_table) / sizeof(api_table[0]))

_Static_assert(API_N_ROUTES < API_STATS_MAX_ROUTES, "raise API_STATS_MAX_ROUTES");

const struct api_route_info *api_routes(void)
{
    static const struct api_route_info list[] = {
#define X(m, p, fn, auth, q) {m, p},
        API_ROUTE_MAP(X)
#undef X
            {NULL, NULL}};
    return list;
}

const char *api__param(const struct api_call *c, const char *name)
{
    for (size_t i = 0; i < c->n_params; i++)
        if (strcmp(c->pname[i], name) == 0)
            return c->pval[i];
    return NULL;
}

/* --- Matching ------------------------------------------------------------------ */

#define API_MAX_SEGS 64

/* Split s on '/' into [start, len) pairs; -1 for an empty segment, a missing
 * leading '/' or too many segments. */
static int api_split(const char *s, const char **seg, size_t *len)
{
    int n = 0;

    if (s[0] != '/')
        return -1;
    for (const char *p = s + 1;; n++) {
        const char *slash = strchr(p, '/');
        size_t l = slash ? (size_t)(slash - p) : strlen(p);
        if (l == 0 || n == API_MAX_SEGS)
            return -1;
        seg[n] = p;
        len[n] = l;
        if (slash == NULL)
            return n + 1;
        p = slash + 1;
    }
}

/* Bind one template segment (a `{param}` or a literal) to path[from..to). */
static int api_bind(struct api_call *c, const char *tseg, size_t tlen, const char *from,
                    size_t flen, int literal_ok)
{
    static const char *const names[] = {"run", "step", "layer", "id", "sha256", "file"};

    if (tseg[0] != '{')
        return literal_ok && tlen == flen && memcmp(tseg, from, flen) == 0;
    if (c == NULL)
        return 1;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        if (strlen(names[k]) == tlen - 2 && memcmp(names[k], tseg + 1, tlen - 2) == 0 &&
            c->n_params < API_MAX_PATH_PARAMS) {
            char *v = malloc(flen + 1);
            if (v == NULL)
                return -1;
            memcpy(v, from, flen);
            v[flen] = '\0';
            c->pname[c->n_params] = names[k];
            c->pval[c->n_params++] = v;
            return 1;
        }
    }
    return 0;
}

/* A request path split once (api_split), for matching against every route. */
struct api_path {
    const char *s; /* the path */
    const char *seg[API_MAX_SEGS];
    size_t len[API_MAX_SEGS];
    int n; /* -1: not splittable */
};

static void api_path_split(const char *path, struct api_path *p)
{
    p->s = path;
    p->n = api_split(path, p->seg, p->len);
}

/* 1 if path `p` matches template `tpl` (binding parameters into c when c is
 * non-NULL), 0 if not, -1 on allocation failure. */
static int api_match_split(const char *tpl, const struct api_path *p, struct api_call *c)
{
    const char *ts[API_MAX_SEGS], *const *ps = p->seg;
    size_t tl[API_MAX_SEGS];
    const size_t *pl = p->len;
    int nt = api_split(tpl, ts, tl), np = p->n, g = -1;

    if (strcmp(tpl, "/") == 0) /* the root has no segment to split */
        return strcmp(p->s, "/") == 0;
    if (np < 0 || nt < 0)
        return 0;
    for (int i = 0; i < nt; i++)
        if (tl[i] == 7 && memcmp(ts[i], "{layer}", 7) == 0)
            g = i;
    if (g < 0 ? np != nt : np < nt)
        return 0;
    for (int i = 0; i < nt; i++) { /* literals first: no allocation on a miss */
        int pi = g >= 0 && i > g ? np - (nt - i) : i;
        if (ts[i][0] != '{' && api_bind(NULL, ts[i], tl[i], ps[pi], pl[pi], 1) != 1)
            return 0;
    }
    for (int i = 0; c != NULL && i < nt; i++) {
        int pi = g >= 0 && i > g ? np - (nt - i) : i;
        size_t len = pl[pi];
        if (i == g) /* the greedy parameter spans segments g .. np - (nt - g) */
            len = (size_t)(ps[np - (nt - g)] + pl[np - (nt - g)] - ps[g]);
        if (ts[i][0] == '{' && api_bind(c, ts[i], tl[i], ps[pi], len, 0) != 1)
            return -1;
    }
    return 1;
}

static int api_match(const char *tpl, const char *path, struct api_call *c)
{
    struct api_path p;

    api_path_split(path, &p);
    return api_match_split(tpl, &p, c);
}

static const char *api_method_eff(const char *m)
{
    return strcmp(m, "HEAD") == 0 ? "GET" : m;
}

int api_route_index(const char *method, const char *path)
{
    if (method == NULL || path == NULL)
        return -1;
    for (size_t i = 0; i < API_N_ROUTES; i++)
        if (strcmp(api_table[i].method, api_method_eff(method)) == 0 &&
            api_match(api_table[i].path, path, NULL) == 1)
            return (int)i;
    return -1;
}

/* --- Auth ------------------------------------------------------------------------ */

/* Compare without an early exit on the first differing byte. */
static int api_token_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;

    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* A refused token: `category` UNAUTHORIZED (401) or INSUFFICIENT_SCOPE
 * (403), with the WWW-Authenticate challenge. */
static void api_unauthorized(struct api_response *resp, enum err_category category,
                             const char *error, const char *scope, const char *detail)
{
    api_fail(resp, ERR_INVAL, category, "%s", detail);
    if (error == NULL)
        snprintf(resp->www_authenticate, sizeof(resp->www_authenticate), "Bearer realm=\"farmsd\"");
    else
        snprintf(resp->www_authenticate, sizeof(resp->www_authenticate),
                 "Bearer realm=\"farmsd\", error=\"%s\"%s%s%s", error, scope ? ", scope=\"" : "",
                 scope ? scope : "", scope ? "\"" : "");
}

/* 1 if the request may go on; else resp holds the 401/403. */
static int api_auth(const struct api_ctx *ctx, const struct api_request *req,
                    enum api_auth_need need, struct api_response *resp)
{
    const char *h = req->authorization, *tok;
    int scope = need == API_AUTH_WRITE ? API_SCOPE_WRITE : API_SCOPE_READ;
    const char *scope_name = scope == API_SCOPE_WRITE ? "write" : "read";

    if (ctx->tokens == NULL || need == API_AUTH_NONE)
        return 1;
    if (h == NULL || h[0] == '\0') {
        api_unauthorized(resp, ERR_CAT_UNAUTHORIZED, NULL, NULL,
                         "this endpoint needs a bearer token "
                         "(Authorization: Bearer TOKEN)");
        return 0;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        api_unauthorized(resp, ERR_CAT_UNAUTHORIZED, NULL, NULL,
                         "the Authorization header must use the Bearer scheme");
        return 0;
    }
    for (tok = h + 7; *tok == ' ';)
        tok++;
    for (size_t i = 0; i < ctx->n_tokens; i++) {
        if (ctx->tokens[i].token == NULL || !api_token_eq(tok, ctx->tokens[i].token))
            continue;
        if ((ctx->tokens[i].scopes & scope) == 0) {
            api_unauthorized(resp, ERR_CAT_INSUFFICIENT_SCOPE, "insufficient_scope", scope_name,
                             scope == API_SCOPE_WRITE
                                 ? "the token lacks the write scope this request needs"
                                 : "the token lacks the read scope this request needs");
            return 0;
        }
        return 1;
    }
    api_unauthorized(resp, ERR_CAT_UNAUTHORIZED, "invalid_token", NULL,
                     "the bearer token is not valid");
    return 0;
}

/* --- Dispatch ------------------------------------------------------------------- */

/* 1 if `path` would match a /v1/runs/{run}... route but for its run name,
 * which holds a '/' (a %2F is decoded before routing, so it arrives as extra
 * segments) or is empty; the run name it carries goes to `run`. */
static int api_run_misnamed(const char *path, char *run, size_t len)
{
    static const char pre[] = "/v1/runs/";
    char cand[1024];
    const char *rest;

    if (strncmp(path, pre, sizeof(pre) - 1) != 0)
        return 0;
    rest = path + sizeof(pre) - 1;
    for (const char *p = rest;; p++) {
        size_t rl = (size_t)(p - rest);
        int n;

        if (*p != '/' && *p != '\0')
            continue;
        n = snprintf(cand, sizeof(cand), "%sx%s", pre, p);
        for (size_t i = 0; (rl == 0 || memchr(rest, '/', rl) != NULL) && n > 0 &&
                           (size_t)n < sizeof(cand) && i < API_N_ROUTES;
             i++) {
            if (strncmp(api_table[i].path, "/v1/runs/{run}", 14) == 0 &&
                api_match(api_table[i].path, cand, NULL) == 1) {
                snprintf(run, len, "%.*s", (int)(rl < 200 ? rl : 200), rest);
                return 1;
            }
        }
        if (*p == '\0')
            return 0;
    }
}

/* Route `c->req`: the matched route's index, or -1 with resp holding the
 * 404/405/503. Binds the path parameters into c. */
static int api_dispatch_route(struct api_call *c, struct api_response *resp)
{
    const char *method = api_method_eff(c->req->method);
    struct api_path p;
    int found = -1;

    resp->allow[0] = '\0';
    api_path_split(c->req->path, &p);
    for (size_t i = 0; i < API_N_ROUTES; i++) {
        if (api_match_split(api_table[i].path, &p, NULL) != 1)
            continue;
        if (strcmp(api_table[i].method, method) == 0) {
            found = (int)i;
            break;
        }
        if (strstr(resp->allow, api_table[i].method) == NULL) {
            size_t n = strlen(resp->allow);
            snprintf(resp->allow + n, sizeof(resp->allow) - n, "%s%s", n ? ", " : "",
                     api_table[i].method);
        }
    }
    if (found < 0) {
        char run[256];

        if (resp->allow[0] != '\0')
            api_fail(resp, ERR_INVAL, ERR_CAT_METHOD_NOT_ALLOWED,
                     "this route does not allow the method");
        else if (api_run_misnamed(c->req->path, run, sizeof(run)))
            api__run_name(resp, run);
        else
            api_fail(resp, ERR_NOTFOUND, ERR_CAT_NONE, "no such route");
        return -1;
    }
    resp->allow[0] = '\0';
    if (api_match_split(api_table[found].path, &p, c) != 1) {
        api_fail(resp, ERR_NOMEM, ERR_CAT_NONE, "out of memory routing the request");
        return -1;
    }
    return found;
}

/* 1 if every path parameter of `c` is valid UTF-8 (names are echoed into
 * JSON, which must be UTF-8); else 0 with a 400 in resp. */
static int api_params_utf8(const struct api_call *c, struct api_response *resp)
{
    char msg[96];

    for (size_t i = 0; i < c->n_params; i++) {
        size_t n = strlen(c->pval[i]);
        if (utf8_check((const unsigned char *)c->pval[i], n) == n)
            continue;
        snprintf(msg, sizeof(msg), "path parameter '%s': not valid UTF-8", c->pname[i]);
        api_fail(resp, ERR_INVAL, ERR_CAT_INVALID_PARAMETER, "%s", msg);
        return 0;
    }
    return 1;
}

/* Route, authorise and validate the query of c->req: the route index, or -1
 * with the refusal in resp. */
static int api_prepare(struct api_call *c, struct api_response *resp)
{
    struct err e = {0};
    int r;

    memset(resp, 0, sizeof(*resp));
    resp->route_index = -1;
    if (c->req->method == NULL || c->req->path == NULL) {
        api_fail(resp, ERR_INVAL, ERR_CAT_NONE, "no method or path");
        return -1;
    }
    r = api_dispatch_route(c, resp);
    if (r < 0)
        return -1;
    resp->route = api_table[r].path;
    resp->route_index = r;
    if (!api_auth(c->ctx, c->req, api_table[r].auth, resp) || !api_params_utf8(c, resp))
        return -1;
    if (api_query_parse(c->req->query, &c->q, &e) != ERR_OK ||
        api_query_only(&c->q, api_table[r].params, &e) != ERR_OK) {
        api_problem_err(resp, &e);
        return -1;
    }
    return r;
}

static void api_call_free(struct api_call *c)
{
    api_query_free(&c->q);
    for (size_t i = 0; i < c->n_params; i++)
        free(c->pval[i]);
}

void api_handle(const struct api_ctx *ctx, struct store *s, const struct api_request *req,
                struct api_response *resp)
{
    struct api_call c = {.ctx = ctx, .s = s, .req = req};
    int r = api_prepare(&c, resp);

    if (r >= 0)
        api_table[r].fn(&c, resp);
    if (r >= 0 && api__is_ok(resp) && resp->etag[0] != '\0' && resp->body != NULL &&
        strcmp(api_table[r].method, "GET") == 0)
        api_cache_put(ctx->cache, resp->etag, resp->body, resp->body_len, resp->content_type);
    api_call_free(&c);
    api_stats_request(ctx->stats, resp->route_index, resp->status);
}

int api_precheck(const struct api_ctx *ctx, const struct api_request *req,
                 struct api_response *resp)
{
    struct api_call c = {.ctx = ctx, .s = NULL, .req = req};
    int r = api_prepare(&c, resp);

    api_call_free(&c);
    if (r >= 0) {
        memset(resp, 0, sizeof(*resp));
        return 1;
    }
    api_stats_request(ctx->stats, resp->route_index, resp->status);
    return 0;
}
