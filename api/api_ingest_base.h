/* api_ingest_base.h -- the base of a LoRA adapter submission
 * (api_ingest_base.c): the base a request names (base_run + base_step, or
 * base_path), resolved to a stored checkpoint or a path under the allowed
 * roots, and the check that the submitted adapter merges onto it.
 *
 * Internal to api/. Ownership: strings in struct api_base_req are borrowed
 * from the request; struct store_job_base is the caller's. Thread-safety:
 * as api_int.h (one call per request thread).
 */
#ifndef API_INGEST_BASE_H
#define API_INGEST_BASE_H

#include "api/api_int.h"
#include "storage/store_job_base.h"

struct api_base_req { /* what a submission names; strings borrowed */
    const char *run;  /* base_run, or NULL */
    int64_t step;     /* base_step, or -1 */
    const char *path; /* base_path, or NULL */
};

/* Query parameters base_run, base_step, base_path into *q: 1, or 0 with a
 * 400 (a base_step that is no step). */
int api__base_query(struct api_call *c, struct api_response *resp, struct api_base_req *q);

/* The base `q` names, resolved into *b (b->sha256 "" when it names none):
 * 1, or 0 with a problem: 400 invalid_parameter (named both ways, or half),
 * 404 not_found (no such stored run and step), path ingestion's problems
 * for base_path (403 path_not_allowed, ...), the readers' for a base_path
 * that is no checkpoint. */
int api__base_resolve(struct api_call *c, struct api_response *resp, const struct api_base_req *q,
                      struct store_job_base *b);

/* api__validate for a submission with base `b`: it must read as a LoRA
 * adapter (else 400 invalid_parameter) that merges onto the base
 * (peft_merge_open; else 422 with its category, lora_mismatch when the
 * adapter does not fit). 1 with fmt_name "peft", or 0 with a problem. */
int api__validate_merge(struct api_call *c, struct api_response *resp, const char *path,
                        const char *shown, enum ckpt_format declared,
                        const struct store_job_base *b, char *fmt_name, size_t len);

#endif /* API_INGEST_BASE_H */
