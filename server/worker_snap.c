/* worker_snap.c -- the snapshots of single-file path checkpoints, shared by
 * this process's runners (worker_int.h).
 *
 * A single path file is analysed from a checked copy (blob_tmp_copy): the
 * runner that first opens a job here (its planner, or a runner taking a
 * task of a job planned elsewhere) makes it; every runner of this process
 * then reads that copy for the job's tasks, so the analysis reads the
 * submitted bytes whatever happens to the file meanwhile. The copy stays
 * while the job runs and is removed when this process sees it end: before
 * the job's end is recorded here (worker__snap_drop), or by an idle
 * runner's sweep when another replica ended it (worker__snap_sweep). An
 * open copy may be unlinked: its readers keep their mapping.
 *
 * Locking: the table (w->snaps) is guarded by w->mu; the copies are made
 * and files removed outside the lock.
 */
#include "server/worker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The entry of (job_id, base), or NULL. Called under mu. */
static struct worker_snap *worker_snap_find(struct worker *w, int64_t job_id, int base)
{
    for (size_t i = 0; i < w->n_snaps; i++)
        if (w->snaps[i].job_id == job_id && w->snaps[i].base == base)
            return &w->snaps[i];
    return NULL;
}

int worker__snap_hold(struct worker *w, int64_t job_id, int base, char *path, size_t len)
{
    struct worker_snap *sn;

    pthread_mutex_lock(&w->mu);
    sn = worker_snap_find(w, job_id, base);
    if (sn != NULL) {
        sn->refs++;
        snprintf(path, len, "%s", sn->path);
    }
    pthread_mutex_unlock(&w->mu);
    return sn != NULL;
}

enum err_code worker__snap_add(struct worker *w, int64_t job_id, int base, char *path, size_t len,
                               struct err *e)
{
    struct worker_snap *sn, *grown;
    enum err_code rc = ERR_OK;
    int lost = 0;

    pthread_mutex_lock(&w->mu);
    sn = worker_snap_find(w, job_id, base);
    if (sn != NULL) { /* another runner made one meanwhile: use it */
        sn->refs++;
        lost = 1;
    } else if (w->n_snaps == w->cap_snaps) {
        size_t cap = w->cap_snaps ? 2 * w->cap_snaps : 8;
        grown = realloc(w->snaps, cap * sizeof(*grown));
        if (grown != NULL) {
            w->snaps = grown;
            w->cap_snaps = cap;
        }
    }
    if (!lost && w->n_snaps < w->cap_snaps) {
        sn = &w->snaps[w->n_snaps++];
        *sn = (struct worker_snap){.job_id = job_id, .base = base, .refs = 1};
        snprintf(sn->path, sizeof(sn->path), "%s", path);
    } else if (!lost) {
        rc = err_set(e, ERR_NOMEM, "out of memory keeping a snapshot");
    }
    pthread_mutex_unlock(&w->mu);
    if (lost || rc != ERR_OK)
        unlink(path);
    if (lost) {
        pthread_mutex_lock(&w->mu);
        sn = worker_snap_find(w, job_id, base);
        snprintf(path, len, "%s", sn != NULL ? sn->path : "");
        pthread_mutex_unlock(&w->mu);
    }
    return rc;
}

void worker__snap_release(struct worker *w, int64_t job_id, int base)
{
    struct worker_snap *sn;

    pthread_mutex_lock(&w->mu);
    sn = worker_snap_find(w, job_id, base);
    if (sn != NULL && sn->refs > 0)
        sn->refs--;
    pthread_mutex_unlock(&w->mu);
}

/* Remove entry i (its file unlinked by the caller). Called under mu. */
static void worker_snap_remove(struct worker *w, size_t i)
{
    w->snaps[i] = w->snaps[--w->n_snaps];
}

void worker__snap_drop(struct worker *w, int64_t job_id)
{
    char paths[2][STORE_PATH_MAX];
    size_t n = 0;

    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->n_snaps;) {
        if (w->snaps[i].job_id == job_id && n < 2) {
            memcpy(paths[n++], w->snaps[i].path, sizeof(paths[0]));
            worker_snap_remove(w, i);
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < n; i++)
        unlink(paths[i]);
}

void worker__snap_sweep(struct worker *w, struct store *s)
{
    int64_t ids[16];
    size_t n = 0;

    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->n_snaps && n < sizeof(ids) / sizeof(ids[0]); i++)
        if (w->snaps[i].refs == 0)
            ids[n++] = w->snaps[i].job_id;
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < n; i++) {
        enum store_job_state st = STORE_JOB_RUNNING;
        enum err_code rc = store_job_state(s, ids[i], &st, NULL);

        if (rc == ERR_NOTFOUND || (rc == ERR_OK && st != STORE_JOB_RUNNING))
            worker__snap_drop(w, ids[i]);
    }
}

void worker__snap_free_all(struct worker *w)
{
    for (size_t i = 0; i < w->n_snaps; i++)
        unlink(w->snaps[i].path);
    free(w->snaps);
    w->snaps = NULL;
    w->n_snaps = w->cap_snaps = 0;
}
