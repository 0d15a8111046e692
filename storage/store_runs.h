/* store_runs.h -- runs and checkpoints: change ids (ETags), run and
 * checkpoint pages (store.c, store_runs.c), and run administration: the
 * preset reads default to, the run summary, deleting a run
 * (store_runinfo.c).
 *
 * Errors, ownership and thread-safety: as store.h. Pages are caller-owned:
 * free with their _free function.
 */
#ifndef STORAGE_STORE_RUNS_H
#define STORAGE_STORE_RUNS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "storage/store.h"
#include "storage/store_jobs.h"

/* The run's change id: strictly increases with every committed change to
 * its checkpoints, jobs or layer rows; unchanged by reads. Touches only the
 * runs table (the 304 path); on SQLite, a repeated read with no commit in
 * between, by any process, is answered without a query (store_vcache.c).
 * ERR_NOTFOUND if no run. */
enum err_code store_run_version(struct store *s, const char *run, int64_t *version, struct err *e);

/* The database-wide change id (the highest run version; 0 when empty): the
 * ETag of GET /v1/runs. Kept between reads as store_run_version is. */
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
    struct store_run *items;          /* owned, ascending by name; NULL if n == 0 */
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
    struct store_checkpoint *items;   /* owned, ascending by step; NULL if n == 0 */
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

/* Delete run `run` with its checkpoints, jobs, layer rows, summaries and alerts (rule set, events,
 * deliveries: store_alerts.h), in one write
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

#endif /* STORAGE_STORE_RUNS_H */
