/* store.h -- SQLite persistence: runs, checkpoints, the job queue, the
 * team-wide result cache and per-layer results.
 *
 * Every SQL statement of farmsd lives in storage/ behind these functions.
 *
 * Data model (schema in store.c):
 *   run         a training run, by name; carries `version`, a change id bumped
 *               in the same transaction as any change to the run's data
 *               (checkpoints, jobs, layer rows), so an ETag costs one row read
 *   checkpoint  (run, step) -> content identity (SHA-256 hex), source (an
 *               upload in the blob store, or a path), format, size
 *   settings    SHA-256 of canonical params JSON (preset_to_json) -> preset
 *               name (first seen) and the JSON
 *   job         one analysis of a checkpoint under one settings hash
 *   result      the cache: (tensor SHA-256, analysis key, settings hash,
 *               engine version) -> struct farms_result (metrics part)
 *   layer       per (checkpoint, settings) the per-layer rows, in canonical
 *               order, with run and step copied in for fast history reads
 *   results and layer rows also keep the ESD histogram (core/esd_hist.h)
 *   of the analysis, when there is one (schema version 2)
 *
 * Settings hash: the lower-case hex SHA-256 of the canonical params JSON,
 * computed by store_settings_hash() (storage computes it; callers that need
 * it for a cache key call that function or take it from the job).
 *
 * Errors: SQLITE_BUSY -> ERR_BUSY (retry later), other SQLite failures ->
 * ERR_DB with sqlite3_errmsg; entity lookups that find nothing ->
 * ERR_NOTFOUND; "same run+step, other content" -> ERR_CONFLICT. Absence in
 * the cache is not an error (`*hit = 0`).
 *
 * Ownership: results are caller-owned: either a caller-provided struct that
 * is filled, or "Returns a new X; free with x_free()". Strings passed in are
 * borrowed for the call.
 *
 * Thread-safety: a struct store is one SQLite connection opened with
 * SQLITE_OPEN_NOMUTEX: open one per thread and never use it from two threads
 * at once. Any number of connections (threads or processes) may use the same
 * database file: WAL mode, busy_timeout; writes run in BEGIN IMMEDIATE
 * transactions, so job claims are exactly-once across connections.
 */
#ifndef STORAGE_STORE_H
#define STORAGE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/formats/ckpt.h"
#include "core/dtype.h"
#include "core/err.h"
#include "core/numerics/esd_hist.h"
#include "core/numerics/farms.h"
#include "core/formats/layers.h"
#include "core/formats/thash.h"

/* 2: ESD histograms (esd columns); 3: job leases; 4: column xmin is x_min;
 * 5: xmax. A field of FARMS_RESULT_FIELDS with since > 4 adds its column at
 * `since`. */
#define STORE_SCHEMA_VERSION 5

#define STORE_RUN_MAX         128   /* run name bytes incl. NUL (longer: ERR_INVAL) */
#define STORE_PRESET_MAX      64    /* preset name bytes incl. NUL */
#define STORE_PARAMS_MAX      1024  /* params JSON bytes incl. NUL (>= PRESET_JSON_MAX) */
#define STORE_PATH_MAX        4096  /* checkpoint path bytes incl. NUL */
#define STORE_FORMAT_MAX      32    /* checkpoint format name ("safetensors", ...) */
#define STORE_KEY_MAX         128   /* analysis key / engine version bytes incl. NUL */
#define STORE_CATEGORY_MAX    48    /* error category incl. NUL */
#define STORE_MESSAGE_MAX     256   /* error message incl. NUL (longer: truncated) */
#define STORE_TOKEN_MAX       272   /* page token incl. NUL */
#define STORE_OWNER_MAX       64    /* lease owner (worker id) incl. NUL */
#define STORE_PAGE_DEFAULT    100   /* page_size 0 means this */
#define STORE_PAGE_MAX        10000 /* larger page sizes are clamped to this */
#define STORE_BUSY_TIMEOUT_MS 5000

struct store;      /* opaque: one connection */
struct blob_store; /* storage/blob.h */

/* --- Open and close ------------------------------------------------------- */

/* Open (create and migrate if needed) the database at `path`; ":memory:"
 * gives a private database for tests. Sets WAL, synchronous=FULL,
 * busy_timeout, foreign_keys=ON. Migrations run inside BEGIN IMMEDIATE and
 * are idempotent (two processes may open at once). A database with a newer
 * schema than STORE_SCHEMA_VERSION is refused (ERR_DB).
 * Returns a new store in *out; close with store_close(). */
enum err_code store_open(const char *path, struct store **out, struct err *e);

/* Finalize the cached statements and close. NULL is a no-op. Cannot fail. */
void store_close(struct store *s);

/* The backend: "sqlite" or "postgresql". Static. Cannot fail. */
const char *store_backend(const struct store *s);

/* Random id of this database, made at creation (32 hex digits). Put it into
 * ETags so that a recreated database never matches an old one.
 * Borrowed: valid until store_close(s). Cannot fail. */
const char *store_instance_id(const struct store *s);

/* PRAGMA integrity_check: ERR_OK when "ok", else ERR_DB with the first
 * problem. (/readyz, tests) */
enum err_code store_check(struct store *s, struct err *e);

/* --- Settings ----------------------------------------------------------- */

/* Hex SHA-256 of the canonical params JSON `params_json` (bytes up to the
 * NUL). ERR_INTERNAL / ERR_NOMEM from libcrypto. */
enum err_code store_settings_hash(const char *params_json, char hash[THASH_HEX_LEN], struct err *e);

/* Record settings (idempotent: an existing hash keeps its first preset
 * name) and write their hash to `hash`. store_job_submit does this itself;
 * call it before store_result_put for results made outside a job (CLI). */
enum err_code store_settings_put(struct store *s, const char *preset, const char *params_json,
                                 char hash[THASH_HEX_LEN], struct err *e);

/* --- Jobs --------------------------------------------------------------- */

enum store_job_state {
    STORE_JOB_QUEUED,
    STORE_JOB_RUNNING,
    STORE_JOB_SUCCEEDED,
    STORE_JOB_FAILED,
    STORE_JOB_CANCELED,
    STORE_JOB_STATE_COUNT
};

enum store_source {
    STORE_SOURCE_UPLOAD, /* in the blob store under content_sha256 (blob_path) */
    STORE_SOURCE_PATH    /* a file or sharded directory at `path` */
};

/* What POST .../checkpoints hands in. Strings borrowed for the call. */
struct store_submit {
    const char *run;            /* run name, 1..STORE_RUN_MAX-1 bytes */
    int64_t step;               /* >= 0 */
    const char *content_sha256; /* content identity (64 hex): the upload's SHA-256; for
                                   paths whatever identity the caller computes */
    enum store_source source;
    const char *path;        /* STORE_SOURCE_PATH: the path; else NULL */
    const char *format;      /* "safetensors", "torch", ... or NULL (sniffed later) */
    uint64_t size;           /* checkpoint bytes (0 if unknown) */
    const char *preset;      /* preset name */
    const char *params_json; /* canonical params (preset_to_json) */
};

/* A job with its checkpoint and settings: plain data, caller-owned. */
struct store_job {
    int64_t id;
    enum store_job_state state;
    char run[STORE_RUN_MAX];
    int64_t step;
    int64_t checkpoint_id;
    char content_sha256[THASH_HEX_LEN];
    enum store_source source;
    char path[STORE_PATH_MAX];     /* STORE_SOURCE_PATH; "" for uploads */
    char format[STORE_FORMAT_MAX]; /* "" if unknown */
    uint64_t size;                 /* checkpoint bytes */
    char preset[STORE_PRESET_MAX];
    char params_json[STORE_PARAMS_MAX];
    char settings_hash[THASH_HEX_LEN];
    int64_t n_done;                          /* tensors finished (analysed or cache hit) */
    int64_t n_total;                         /* tensors to do; 0 until known */
    int64_t n_cache_hits;                    /* of n_done, served from the cache */
    char error_category[STORE_CATEGORY_MAX]; /* failed: err_category(); else "" */
    char error_message[STORE_MESSAGE_MAX];   /* failed: e.msg; else "" */
    double created, started, finished;       /* unix seconds; 0 = not yet */
    char claimed_by[STORE_OWNER_MAX];        /* the owner that claimed it last; "" */
    double lease_until;                      /* unix seconds; 0 = no lease */
};

/* Static names "queued", "running", "succeeded", "failed", "canceled";
 * "?" out of range. Never NULL. */
const char *store_job_state_name(enum store_job_state st);

/* Submit: in ONE transaction, create the run (if new) and the checkpoint
 * (run, step) if new, then the job (checkpoint, settings) if new, and bump
 * the run's version. If the checkpoint exists with the same content and a
 * job for these settings exists, that job is returned and *existed = 1 (any
 * state; nothing changes). Same run+step with other content: ERR_CONFLICT.
 * Bad fields: ERR_INVAL. On success *out is the job (queued if new). */
enum err_code store_job_submit(struct store *s, const struct store_submit *sub,
                               struct store_job *out, int *existed, struct err *e);

/* Fill *out with job `id`. ERR_NOTFOUND if there is none. */
enum err_code store_job_get(struct store *s, int64_t id, struct store_job *out, struct err *e);

/* Only the state (cheap; workers poll it between tensors). ERR_NOTFOUND. */
enum err_code store_job_state(struct store *s, int64_t id, enum store_job_state *state,
                              struct err *e);

/* Atomically take the oldest queued job (FIFO by id), or a running job
 * whose lease expired (its worker died): -> running, started = now,
 * progress reset, claimed_by = this connection's owner, lease_until = now +
 * lease (store_set_lease; no lease: 0, never re-claimed). *claimed = 1 and
 * *out filled, or *claimed = 0 when there is nothing to do. Exactly-once
 * across connections, processes and replicas (PostgreSQL: SELECT ... FOR
 * UPDATE SKIP LOCKED under the writers' lock). */
enum err_code store_job_claim(struct store *s, struct store_job *out, int *claimed, struct err *e);

/* Record progress of a running job and renew its lease (now + lease).
 * ERR_CANCELED if the job is no longer running (canceled: stop work) or,
 * with a lease, if another owner has claimed it since (this lease expired:
 * stop work), ERR_NOTFOUND if there is no such job. */
enum err_code store_job_progress(struct store *s, int64_t id, int64_t n_done, int64_t n_total,
                                 int64_t n_cache_hits, struct err *e);

/* Finish a running job: `state` is STORE_JOB_SUCCEEDED, or STORE_JOB_FAILED
 * with `category` and `message` (may be NULL; message truncated).
 * finished = now. ERR_CANCELED if it was canceled meanwhile (it stays
 * canceled) or, with a lease, claimed by another owner since; ERR_CONFLICT
 * if it is not running, ERR_INVAL for other states. */
enum err_code store_job_finish(struct store *s, int64_t id, enum store_job_state state,
                               const char *category, const char *message, struct err *e);

/* Cancel: queued or running -> canceled (finished = now); already canceled
 * is a no-op. *out (may be NULL) receives the job after the change.
 * ERR_NOTFOUND; ERR_CONFLICT if it already succeeded or failed. */
enum err_code store_job_cancel(struct store *s, int64_t id, struct store_job *out, struct err *e);

/* At start-up: every running job -> queued (progress reset, started = 0);
 * *n_requeued (may be NULL) counts them. Only when no worker of any process
 * is running jobs on this database. */
enum err_code store_jobs_requeue(struct store *s, int64_t *n_requeued, struct err *e);

/* Leases, for several workers or replicas on one database: `owner` (1..
 * STORE_OWNER_MAX-1 bytes, e.g. "host:pid:random") names this connection's
 * claims; lease_s > 0 makes claims expire lease_s seconds after the last
 * progress, so the work of a worker that died is claimed again. lease_s 0:
 * no lease (claims never expire; store_jobs_requeue at start-up recovers
 * them). Only on this connection; no database access. ERR_INVAL. */
enum err_code store_set_lease(struct store *s, const char *owner, double lease_s, struct err *e);

/* At shutdown: every running job claimed by this connection's owner ->
 * queued (as store_jobs_requeue, for one owner); *n_requeued may be NULL. */
enum err_code store_jobs_release(struct store *s, int64_t *n_requeued, struct err *e);

/* --- Copying a database (farmsd migrate) ------------------------------------ */

struct store_copy_stats {
    int64_t rows_read;  /* rows of the source */
    int64_t rows_added; /* of them, new in the destination */
};

/* Copy every run, setting, checkpoint, job, cached result and layer row of
 * `from` into `to` (any backends), with their ids, in one transaction of
 * `to`; rows already there are kept (idempotent: a second copy adds
 * nothing). Jobs running in `from` arrive queued. `stats` may be NULL. */
enum err_code store_copy(struct store *from, struct store *to, struct store_copy_stats *stats,
                         struct err *e);

/* Number of jobs per state (/metrics); counts[STORE_JOB_QUEUED] is the
 * queue depth. */
enum err_code store_job_counts(struct store *s, int64_t counts[STORE_JOB_STATE_COUNT],
                               struct err *e);

/* --- Result cache --------------------------------------------------------- */

/* The cache key. analysis_key says how the bytes were analysed, e.g.
 * "linear F32 512x64" (kind, dtype, analysed shape). */
struct store_result_key {
    const char *tensor_sha256;  /* thash hex */
    const char *analysis_key;   /* 1..STORE_KEY_MAX-1 bytes */
    const char *settings_hash;  /* store_settings_hash */
    const char *engine_version; /* 1..STORE_KEY_MAX-1 bytes */
};

/* Look up a result: *hit = 1 and *out filled (status, reason, warning and
 * every metric of struct farms_result except `layout`, which is zeroed)
 * and, when `esd` is non-NULL, its histogram (esd_hist_init'ed when none
 * was stored), or *hit = 0 and *out, *esd untouched. */
enum err_code store_result_get(struct store *s, const struct store_result_key *key,
                               struct farms_result *out, struct esd_hist *esd, int *hit,
                               struct err *e);

/* Insert a result with its histogram `esd` (NULL or n_eigs == 0: none);
 * an existing one with the same key is kept (ON CONFLICT DO NOTHING: two workers
 * analysing the same tensor is harmless). */
enum err_code store_result_put(struct store *s, const struct store_result_key *key,
                               const struct farms_result *r, const struct esd_hist *esd,
                               struct err *e);

/* One cached result of a tensor, with its settings. */
struct store_result {
    char analysis_key[STORE_KEY_MAX];
    char settings_hash[THASH_HEX_LEN];
    char preset[STORE_PRESET_MAX];      /* "" if the settings were never recorded */
    char params_json[STORE_PARAMS_MAX]; /* "" likewise */
    char engine_version[STORE_KEY_MAX];
    double created;        /* unix seconds */
    struct farms_result r; /* layout zeroed */
};

struct store_result_list {
    size_t n;
    struct store_result *items; /* owned, n entries, ordered by settings hash, analysis
                                   key, engine version */
};

/* Every cached result of tensor `tensor_sha256` (GET /v1/tensors/{sha256});
 * n == 0 when none. Returns a new list in *out; free with
 * store_result_list_free(). At most STORE_PAGE_MAX entries. */
enum err_code store_results_for_tensor(struct store *s, const char *tensor_sha256,
                                       struct store_result_list **out, struct err *e);
void store_result_list_free(struct store_result_list *l);

/* --- Layer rows ------------------------------------------------------------- */

/* One layer row: what json_layer_new() needs, plus its key. */
struct store_layer {
    char *name; /* owned (freed with the list) */
    enum layer_kind kind;
    enum dtype dtype;
    int ndim; /* 0..CKPT_MAX_RANK */
    int64_t shape[CKPT_MAX_RANK];
    char tensor_sha256[THASH_HEX_LEN]; /* "" if not hashed */
    int64_t step;                      /* reads: the checkpoint's step; ignored by put */
    struct farms_result r;             /* status, reason, warning, metrics; layout zeroed */
    struct esd_hist esd;               /* put: stored unless n_eigs == 0; read only by
                                          store_layer_get (else esd_hist_init'ed) */
};

struct store_layer_list {
    char settings_hash[THASH_HEX_LEN]; /* the settings the rows belong to */
    int64_t step;                      /* store_layers_get: the step; latest: max step */
    size_t n;
    struct store_layer *items; /* owned, n entries */
};

/* Replace the layer rows of (checkpoint, settings) with layers[0..n) (array
 * order is the canonical order) and bump the run's version, in one
 * transaction. ERR_NOTFOUND if the checkpoint does not exist. */
enum err_code store_layers_put(struct store *s, int64_t checkpoint_id, const char *settings_hash,
                               const struct store_layer *layers, size_t n, struct err *e);

/* The layer rows of (run, step) in canonical order. `settings_hash` NULL:
 * the settings of the checkpoint's most recent job. ERR_NOTFOUND if the run
 * or checkpoint does not exist; n == 0 if no rows yet. Returns a new list
 * in *out; free with store_layer_list_free(). */
enum err_code store_layers_get(struct store *s, const char *run, int64_t step,
                               const char *settings_hash, struct store_layer_list **out,
                               struct err *e);

/* The latest row (highest step) of every layer of `run`, ordered by canonical
 * position then name. `settings_hash` NULL: those of the run's most recent
 * job. ERR_NOTFOUND if no run. Free with store_layer_list_free(). */
enum err_code store_layers_latest(struct store *s, const char *run, const char *settings_hash,
                                  struct store_layer_list **out, struct err *e);

/* One layer's row with its histogram: layer `layer` of `run` at `step`
 * (step < 0: the highest step that has the layer). `settings_hash` NULL:
 * the settings of that checkpoint's most recent job (step >= 0) or of the
 * run's (step < 0). ERR_NOTFOUND if the run, or the checkpoint at `step`,
 * does not exist; n == 0 if the layer has no row there. Returns a new list
 * in *out (n <= 1); free with store_layer_list_free(). */
enum err_code store_layer_get(struct store *s, const char *run, const char *layer, int64_t step,
                              const char *settings_hash, struct store_layer_list **out,
                              struct err *e);

void store_layer_list_free(struct store_layer_list *l);

/* --- Metrics, history, heatmap --------------------------------------------- */

/* The history metrics: the fields of FARMS_RESULT_FIELDS marked HISTORY
 * (core/numerics/farms_fields.h), in its order; STORE_METRIC_ALPHA, ... */
#define STORE__METRIC_ENUM(member, NAME, type, key, column, json, history, ...) \
    FARMS_FIELD_WHEN_##history(STORE_METRIC_##NAME, )
enum store_metric { FARMS_RESULT_FIELDS(STORE__METRIC_ENUM) STORE_METRIC_COUNT };

/* "alpha, D, ..., entropy, ": every metric name followed by ", " (for
 * messages: print all but the last two characters). */
#define STORE__METRIC_NAME(member, NAME, type, key, column, json, history, ...) \
    FARMS_FIELD_WHEN_##history(key ", ")
#define STORE_METRIC_NAMES FARMS_RESULT_FIELDS(STORE__METRIC_NAME)

/* "alpha", ... ; "?" out of range. Never NULL. */
const char *store_metric_name(enum store_metric m);
/* The metric named exactly `s` (case-sensitive), or -1. */
int store_metric_from_name(const char *s);
/* Metric `m` of `r` as a double (integers converted); NaN unless r->status
 * is ok. Cannot fail. */
double store_metric_value(const struct farms_result *r, enum store_metric m);

/* Step window for history reads: steps in [start_step, end_step]. */
#define STORE_STEP_MIN INT64_MIN
#define STORE_STEP_MAX INT64_MAX

struct store_point {
    int64_t step;
    enum farms_status status;
    enum farms_warning warning;
    double v[STORE_METRIC_COUNT]; /* indexed by enum store_metric; NaN unless status ok */
};

struct store_history {
    char settings_hash[THASH_HEX_LEN];
    size_t n;
    struct store_point *points;       /* owned, ascending step */
    char next_token[STORE_TOKEN_MAX]; /* "" on the last page */
};

/* One layer's history over steps (GET .../layers/{layer}/history): the rows
 * of layer `layer` of `run` under `settings_hash` (NULL: the run's most
 * recent job's), steps in [start_step, end_step], ascending, at most
 * page_size points (0: STORE_PAGE_DEFAULT; clamped to STORE_PAGE_MAX) after
 * `page_token` (NULL or "": from the start). ERR_NOTFOUND if no run;
 * ERR_INVAL for a malformed token. n == 0 if no rows.
 * Returns a new history in *out; free with store_history_free(). */
enum err_code store_layer_history(struct store *s, const char *run, const char *layer,
                                  const char *settings_hash, int64_t start_step, int64_t end_step,
                                  size_t page_size, const char *page_token,
                                  struct store_history **out, struct err *e);
void store_history_free(struct store_history *h);

struct store_cell {
    int64_t step;
    size_t layer; /* index into store_heatmap.layers */
    enum farms_status status;
    double value; /* NaN unless status ok */
};

struct store_heatmap {
    char settings_hash[THASH_HEX_LEN];
    enum store_metric metric;
    size_t n_layers;
    char **layers;  /* owned: the layer names of this page, by first (step,
                       canonical position) */
    size_t n_steps; /* distinct steps in this page */
    size_t n_cells;
    struct store_cell *cells;         /* owned, ordered by step then canonical position */
    char next_token[STORE_TOKEN_MAX]; /* "" on the last page */
};

/* The whole run's history of one metric (GET /v1/runs/{run}/history): every
 * layer x every step in [start_step, end_step]. A page holds at most
 * page_size STEPS (0: STORE_PAGE_DEFAULT; clamped to STORE_PAGE_MAX), always
 * whole steps. Other arguments as store_layer_history.
 * Returns a new heatmap in *out; free with store_heatmap_free(). */
enum err_code store_run_history(struct store *s, const char *run, enum store_metric metric,
                                const char *settings_hash, int64_t start_step, int64_t end_step,
                                size_t page_size, const char *page_token,
                                struct store_heatmap **out, struct err *e);
void store_heatmap_free(struct store_heatmap *h);

/* --- Runs and checkpoints ---------------------------------------------------- */

/* The run's change id: strictly increases with every committed change to
 * its checkpoints, jobs or layer rows; unchanged by reads. Touches only the
 * runs table (the 304 path). ERR_NOTFOUND if no run. */
enum err_code store_run_version(struct store *s, const char *run, int64_t *version, struct err *e);

/* The database-wide change id (the highest run version; 0 when empty): the
 * ETag of GET /v1/runs. */
enum err_code store_runs_version(struct store *s, int64_t *version, struct err *e);

struct store_run {
    char name[STORE_RUN_MAX];
    double created;  /* unix seconds */
    int64_t version; /* store_run_version */
    int64_t n_checkpoints;
    int64_t last_step; /* highest step; -1 if none */
};

struct store_run_page {
    size_t n;
    struct store_run *items;          /* owned, ascending by name */
    char next_token[STORE_TOKEN_MAX]; /* "" on the last page */
};

/* Runs by name, keyset-paginated (page_size/page_token as
 * store_layer_history). Returns a new page in *out; free with
 * store_run_page_free(). */
enum err_code store_runs_list(struct store *s, size_t page_size, const char *page_token,
                              struct store_run_page **out, struct err *e);
void store_run_page_free(struct store_run_page *p);

struct store_checkpoint {
    int64_t id;
    int64_t step;
    char content_sha256[THASH_HEX_LEN];
    enum store_source source;
    char path[STORE_PATH_MAX];     /* STORE_SOURCE_PATH; "" for uploads */
    char format[STORE_FORMAT_MAX]; /* "" if unknown */
    uint64_t size;
    double created;
    /* the most recent job of the checkpoint */
    int64_t job_id;
    enum store_job_state job_state;
    char preset[STORE_PRESET_MAX];
    char settings_hash[THASH_HEX_LEN];
    int64_t n_done, n_total, n_cache_hits;
    int64_t n_layers; /* layer rows under that job's settings */
};

struct store_checkpoint_page {
    size_t n;
    struct store_checkpoint *items;   /* owned, ascending by step */
    char next_token[STORE_TOKEN_MAX]; /* "" on the last page */
};

/* Checkpoint (run, step). ERR_NOTFOUND if the run or step does not exist. */
enum err_code store_checkpoint_get(struct store *s, const char *run, int64_t step,
                                   struct store_checkpoint *out, struct err *e);

/* A run's checkpoints by step, keyset-paginated. ERR_NOTFOUND if no run.
 * Returns a new page in *out; free with store_checkpoint_page_free(). */
enum err_code store_checkpoints_list(struct store *s, const char *run, size_t page_size,
                                     const char *page_token, struct store_checkpoint_page **out,
                                     struct err *e);
void store_checkpoint_page_free(struct store_checkpoint_page *p);

/* --- Run administration (store_runinfo.c) ------------------------------------ */

/* The preset that reads use when the client names none (GET routes without
 * ?preset=): for checkpoint `step` >= 0, the preset of that checkpoint's
 * newest succeeded job, else of its newest job; for the run (step < 0, or
 * a step that has no checkpoint), the preset of the newest succeeded job of
 * the run's highest analysed step, else of the run's newest job. preset and
 * hash are "" when the run has no job (or does not exist). */
enum err_code store_read_preset(struct store *s, const char *run, int64_t step,
                                char preset[STORE_PRESET_MAX], char hash[THASH_HEX_LEN],
                                struct err *e);

#define STORE_RUN_PRESETS_MAX 16 /* presets listed by store_run_summary */

struct store_preset_count {
    char preset[STORE_PRESET_MAX];
    int64_t n_checkpoints; /* checkpoints with a job under this preset */
    int64_t n_succeeded;   /* of them, analysed (job succeeded) */
};

struct store_run_summary {
    char name[STORE_RUN_MAX];
    double created;                        /* unix seconds */
    int64_t version;                       /* store_run_version */
    int64_t n_checkpoints;                 /* checkpoints of the run */
    int64_t first_step, last_step;         /* -1 if none */
    char default_preset[STORE_PRESET_MAX]; /* store_read_preset(run, -1); "" if no job */
    size_t n_presets;                      /* most checkpoints first, then by name */
    struct store_preset_count presets[STORE_RUN_PRESETS_MAX];
    int has_last_job;          /* 1 if the run has a job */
    struct store_job last_job; /* the newest job (highest id) */
};

/* Fill *out with the summary of `run`. ERR_NOTFOUND if no run. */
enum err_code store_run_summary(struct store *s, const char *run, struct store_run_summary *out,
                                struct err *e);

struct store_run_deleted {
    int64_t n_checkpoints, n_jobs, n_layers; /* rows removed */
    int64_t n_blobs;                         /* blobs removed */
};

/* Delete run `run` with its checkpoints, jobs and layer rows, in one write
 * transaction that also bumps the change id (GET /v1/runs sees a new
 * ETag). Queued jobs go with it; while a job of the run is running nothing
 * changes and ERR_CONFLICT names it (cancel it first). With `blobs`
 * (may be NULL), the blobs of the run's checkpoints that no checkpoint of
 * another run refers to are removed inside the transaction, under the
 * writers' lock, so a concurrent submit of the same bytes either sees the
 * run's reference or finds the blob gone (api__submit restores it). The
 * team-wide result cache and the settings stay. ERR_NOTFOUND if no run.
 * `out` (may be NULL) counts what went. */
enum err_code store_run_delete(struct store *s, const char *run, struct blob_store *blobs,
                               struct store_run_deleted *out, struct err *e);

/* Filter and page of store_jobs_list. */
struct store_job_filter {
    int state;       /* enum store_job_state, or -1: any */
    const char *run; /* run name, or NULL: any */
};

struct store_job_page {
    size_t n;
    struct store_job *items;          /* owned, newest first (descending id) */
    char next_token[STORE_TOKEN_MAX]; /* "" on the last page */
};

#define STORE_JOBS_PAGE_MAX 1000 /* a job row is ~6 KB: larger pages are clamped */

/* Jobs matching `f`, newest first, keyset-paginated by id (page_size and
 * page_token as store_layer_history, at most STORE_JOBS_PAGE_MAX). ERR_NOTFOUND if f->run names no
 * run; ERR_INVAL for a malformed token. Free with store_job_page_free(). */
enum err_code store_jobs_list(struct store *s, const struct store_job_filter *f, size_t page_size,
                              const char *page_token, struct store_job_page **out, struct err *e);
void store_job_page_free(struct store_job_page *p);

#endif /* STORAGE_STORE_H */
