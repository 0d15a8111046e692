/* api_int.h -- internals shared by the api/ handler files (not for server/).
 *
 * A struct api_call is one request being handled: the borrowed context,
 * connection and request, the decoded query and the path parameters of the
 * matched route. Handlers fill the response; every failure becomes a
 * problem+json body through api_problem_err / api_fail (api.h).
 * Thread-safety: as api.h (one call per thread).
 */
#ifndef API_API_INT_H
#define API_API_INT_H

#include <cjson/cJSON.h>

#include "api/api.h"
#include "api/query.h"
#include "core/formats/ckpt_id.h"
#include "core/numerics/esd_hist.h"
#include "storage/store_jobs.h"

#define API_MAX_PATH_PARAMS 4
#define API_ETAG_KEY_MAX    4096 /* normalized request keys built by handlers */

struct api_call {
    const struct api_ctx *ctx;     /* borrowed */
    struct store *s;               /* borrowed: the thread's connection */
    const struct api_request *req; /* borrowed */
    struct api_query q;            /* owned: decoded query */
    size_t n_params;
    const char *pname[API_MAX_PATH_PARAMS]; /* "run", "step", "layer", "id", "sha256" */
    char *pval[API_MAX_PATH_PARAMS];        /* owned copies of the path segments */
};

typedef void api_handler_fn(struct api_call *c, struct api_response *resp);

/* Path parameter `name` of the matched route, or NULL. Borrowed. */
const char *api__param(const struct api_call *c, const char *name);

/* --- Responses (api_resp.c) -------------------------------------------------- */

/* Success answers. Handlers name what happened; the HTTP statuses are
 * written in api_resp.c only (failures: api_fail / api_problem_err). Each
 * takes ownership of its body; a NULL body means allocation failed and the
 * answer becomes the nomem problem. None can fail. */

/* 200 OK with `obj` printed as application/json. */
void api__ok(struct api_response *resp, cJSON *obj);

/* 200 OK with `body` (malloc'd, `len` bytes) of `content_type`. */
void api__ok_body(struct api_response *resp, char *body, size_t len, const char *content_type);

/* A submission whose job is at `location` (Location header): 202 Accepted
 * when `queued` (a new job), else 200 OK (the job that already had it). */
void api__submitted(struct api_response *resp, cJSON *obj, int queued, const char *location);

/* 304 Not Modified: no body; resp->etag and resp->cache_control are kept. */
void api__not_modified(struct api_response *resp);

/* 1 if `resp` is a 200 OK (an answer with a body worth caching). */
int api__is_ok(const struct api_response *resp);

/* RFC 3339 UTC text of unix seconds `t` as a cJSON string, or null when
 * t <= 0. NULL on allocation failure. */
cJSON *api__time_json(double t);

/* The ETag check of every GET of run data: `version` (store_run_version or
 * store_runs_version) plus `key` (the normalized request) give a strong
 * ETag, set in resp->etag. Returns 1 if resp is the answer: If-None-Match
 * matches (a 304, api__not_modified) or the body rendered for this ETag
 * before is in the cache (a 200 with it); the caller stops. Else 0. */
int api__etag(struct api_call *c, struct api_response *resp, int64_t version, const char *key);

/* ETag keys without printf (the 304 path): append `s`, or the decimal of
 * `v`, then `sep` unless it is '\0', to the NUL-terminated text of `len`
 * bytes in key[cap]. The new length; cap once it would not fit (and from
 * then on), so a caller checks the last result < cap. */
size_t api__key_str(char *key, size_t cap, size_t len, const char *s, char sep);
size_t api__key_int(char *key, size_t cap, size_t len, int64_t v, char sep);

/* 1 if the If-None-Match header `inm` matches `etag` under the weak
 * comparison of RFC 9110 §13.1.2 (`*` matches any). */
int api__inm_match(const char *inm, const char *etag);

#define API_RUN_NAME_RULE                                                                    \
    "a run name is 1-127 characters of A-Z a-z 0-9 . _ - (not . or ..; no '/', also not as " \
    "%2F)"

/* 1 if `run` is a valid run name, else 0 with a 400 naming the rule. */
int api__run_name(struct api_response *resp, const char *run);

/* The run's version, answering 404/400/5xx itself: 1 if *version is set. */
int api__run_version(struct api_call *c, struct api_response *resp, const char *run,
                     int64_t *version);

/* The preset of query parameter `preset` (ctx->default_preset when absent)
 * with the selection settings of query parameters `layout` and `weights`
 * when given, and its settings hash: 1 on success, else a 400 (unknown
 * preset, invalid layout or weights) or 5xx in resp. `name` gets the preset
 * name (STORE_PRESET_MAX bytes). */
int api__settings(struct api_call *c, struct api_response *resp, const char *preset_param,
                  char *name, char *hash, char *params_json);

/* The preset of a read (GET with ?preset=), in two steps around the ETag
 * check. api__preset_param: with ?preset=P, P's name and settings hash (1,
 * or 0 with a 400 for an unknown preset); without, name and hash "" (the
 * default, which only changes with the run's version: the ETag key may use
 * ""). api__preset_default, after the ETag check: when name is "", the
 * preset the data was analysed with (store_read_preset: checkpoint `step`
 * >= 0, or the run's when step < 0), else the server's --preset. 1, or 0
 * with a 5xx in resp. Buffers: STORE_PRESET_MAX and THASH_HEX_LEN. */
int api__preset_param(struct api_call *c, struct api_response *resp, char *name, char *hash);
int api__preset_default(struct api_call *c, struct api_response *resp, const char *run,
                        int64_t step, char *name, char *hash);

/* A store page token `cursor` as an API next_page_token member of `obj`
 * (null when cursor is ""). 0 on allocation failure. api__page_ok answers
 * `o` with that member, or (!ok) the nomem problem: as api__ok, owns `o`. */
int api__add_page_token(cJSON *obj, const char *list, const char *cursor);
void api__page_ok(struct api_response *resp, cJSON *o, int ok, const char *list, const char *cur);

/* --- Handlers -------------------------------------------------------------- */

api_handler_fn api__healthz, api__readyz, api__metrics; /* api_ops.c */
api_handler_fn api__runs_list, api__checkpoints_list, api__checkpoint_get,
    api__layers_latest;                                        /* api_runs.c */
api_handler_fn api__layer_history, api__run_history;           /* api_history.c */
api_handler_fn api__job_get, api__job_delete, api__tensor_get; /* api_jobs.c */
api_handler_fn api__checkpoint_post;                           /* api_ingest.c */
api_handler_fn api__layer_esd, api__layer_esd_svg;             /* api_esd.c */
api_handler_fn api__run_get, api__run_delete, api__jobs_list;  /* api_admin.c */
api_handler_fn api__alert_rules_get, api__alert_rules_put, api__run_rules_get, api__run_rules_put,
    api__rules_delete, api__run_alerts, api__deliveries_list; /* api_alerts.c */
api_handler_fn api__summary_hist;                             /* api_summary.c */
api_handler_fn api__compare;                                  /* api_compare.c */

/* Gauges appended to the /metrics text (malloc'd *text, *len bytes), left out
 * when the database does not answer; cannot fail. Alerts: farmsd_run_layers,
 * farmsd_webhook_deliveries; summaries: farmsd_run_summary. */
void api__metrics_alerts(struct api_call *c, char **text, size_t *len);
void api__metrics_summary(struct api_call *c, char **text, size_t *len);

/* Checkpoint summaries (api_summary.c): add member `member` to `o`, the
 * summary of (run, step) under settings `hash` ("": the default; step < 0:
 * the latest, with its "step"), null when there is none yet. 1, or 0 with
 * *e set. */
int api__add_summary(struct api_call *c, cJSON *o, const char *member, const char *run,
                     int64_t step, const char *hash, struct err *e);

/* The SVG picture of histogram `h` of layer `layer` at `step` (api_svg.c):
 * log-log axes, the histogram, the fitted power law from xmin, an xmin
 * marker and a legend with alpha. Returns a new NUL-terminated string of
 * *len bytes (free()), or NULL when out of memory. */
char *api__esd_svg(const struct esd_hist *h, const char *layer, int64_t step, size_t *len);

/* The job as served by GET /v1/jobs/{id} and POST .../checkpoints. */
cJSON *api__job_json(const struct store_job *j);

/* Path ingestion (api_ingest_path.c): the JSON-body variant of POST. */
void api__ingest_path(struct api_call *c, struct api_response *resp, const char *run);

/* The declared format `s` (NULL: sniff): 1, or 0 with a 400 in resp. */
int api__format(struct api_response *resp, const char *s, enum ckpt_format *f);

/* Open `path` with the readers as `declared` to validate it: 1 with the
 * format found in fmt_name, or 0 with the problem of the readers' category
 * (422; 413 for limit_exceeded; invalid_checkpoint when they named none).
 * `shown` (may be NULL) replaces the path in messages. */
int api__validate(struct api_call *c, struct api_response *resp, const char *path,
                  const char *shown, enum ckpt_format declared, char *fmt_name, size_t len);

/* Replace every occurrence of `path` in msg (cap bytes) with `shown`. */
void api__msg_hide(char *msg, size_t cap, const char *path, const char *shown);

/* Path ingestion's checks (api_ingest_path.c), for other paths of a
 * request: resolve `path` into rp (PATH_MAX bytes) under the allowed roots,
 * and take its content identity (core/ckpt_id.h). 1, or 0 with a problem. */
int api__path_resolve(struct api_call *c, struct api_response *resp, const char *path, char *rp);
int api__path_identity(struct api_call *c, struct api_response *resp, const char *rp,
                       enum ckpt_format fmt, struct ckpt_id *id);

struct blob_dir; /* storage/blob_dir.h */

/* Validate an opened checkpoint source, record the checkpoint and job, and
 * answer 202/200 (api_ingest.c). `fmt` is the format that ckpt_open found. */
struct api_ingest {
    const char *run;
    int64_t step;
    const char *sha256;
    enum store_source source;
    const char *path;   /* source path: NULL for uploads */
    const char *format; /* ckpt_format_name */
    uint64_t size;
    const char *preset;                /* preset name */
    const char *params_json;           /* its canonical params (preset_to_json) */
    const struct store_job_base *base; /* a LoRA adapter's base; NULL none */
    struct blob_dir *dir;              /* a tar upload's extracted folder, committed instead
                                          of the request's upload; NULL otherwise (borrowed) */
};
void api__submit(struct api_call *c, struct api_response *resp, const struct api_ingest *in);

#endif /* API_API_INT_H */
