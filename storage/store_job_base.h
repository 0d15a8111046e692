/* store_job_base.h -- the base checkpoint a LoRA adapter job is merged onto
 * (README.md, The service, "LoRA adapters"): what a submission names and a
 * job records (jobs.base_*, schema 6), so the worker can open the merged
 * checkpoint (server/worker.c, peft_merge_open).
 *
 * Plain data, caller-owned; no functions. A base is named either by run and
 * step (a checkpoint the service stores: its identity, source, path and
 * format are copied at submission) or by a path under an allowed root (run
 * ""). A job without a base has sha256 "".
 */
#ifndef STORAGE_STORE_JOB_BASE_H
#define STORAGE_STORE_JOB_BASE_H

#include <stdint.h>

#include "storage/store.h"

struct store_job_base {
    char sha256[THASH_HEX_LEN];    /* its content identity (core/ckpt_id.h); "" = no base */
    int source;                    /* enum store_source (store_jobs.h): upload: the blob
                                      under sha256; path: at `path` */
    char path[STORE_PATH_MAX];     /* STORE_SOURCE_PATH: its realpath; else "" */
    char format[STORE_FORMAT_MAX]; /* the format name it was validated as */
    char run[STORE_RUN_MAX];       /* named by run and step: the run; "" for a path */
    int64_t step;                  /* with run: the step; else 0 */
};

#endif /* STORAGE_STORE_JOB_BASE_H */
