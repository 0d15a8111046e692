/* api_fixture.h -- TEST-ONLY: the in-process API fixture the API tests share:
 * a private in-memory database, the request statistics and an api_ctx
 * ready to serve, a checkpoint submitted under a preset, plus GET and JSON
 * accessors. Header-only (static
 * functions); one fixture per test thread.
 */
#ifndef TESTS_API_FIXTURE_H
#define TESTS_API_FIXTURE_H

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "api/api.h"
#include "api/stats.h"
#include "core/numerics/preset.h"
#include "storage/store.h"
#include "storage/store_jobs.h"
#include "tests/check.h"

struct fx {
    struct store *s;
    struct api_stats st;
    struct api_ctx ctx;
};

/* Open the fixture with `preset` as the server's default preset. */
static inline void fx_open(struct fx *f, const char *preset)
{
    memset(f, 0, sizeof(*f));
    CHECK(store_open(":memory:", &f->s, NULL) == ERR_OK);
    api_stats_init(&f->st);
    f->ctx.default_preset = preset;
    f->ctx.stats = &f->st;
    f->ctx.ready = 1;
}

/* Submit `sub` (run, step, content and source filled in) under preset
 * `preset` with the preset's settings JSON; the job to *job. */
static inline void fx_submit(struct fx *f, struct store_submit *sub, const char *preset,
                             struct store_job *job)
{
    char params[PRESET_JSON_MAX];
    struct farms_params p;
    int existed;

    CHECK(preset_get(preset, &p, NULL) == ERR_OK);
    CHECK(preset_to_json(&p, params, sizeof(params), NULL) == ERR_OK);
    sub->preset = preset;
    sub->params_json = params;
    CHECK(store_job_submit(f->s, sub, job, &existed, NULL) == ERR_OK);
    sub->params_json = NULL; /* params ends here */
}

static inline const cJSON *jget(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Member k as a number; NaN when absent or not a number. */
static inline double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Member k as a string; "" when absent or not a string. */
static inline const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* GET path?query (If-None-Match `inm`, may be NULL) into *r: the parsed
 * JSON body, or NULL when it is not JSON. */
static inline cJSON *fx_get(struct fx *f, const char *path, const char *query, const char *inm,
                            struct api_response *r)
{
    struct api_request rq = {.method = "GET", .path = path, .query = query, .if_none_match = inm};

    api_handle(&f->ctx, f->s, &rq, r);
    return r->body && strstr(r->content_type, "json") ? cJSON_ParseWithLength(r->body, r->body_len)
                                                      : NULL;
}

#endif /* TESTS_API_FIXTURE_H */
