/* safetensors_int.h -- what safetensors.c shares with safetensors_json.c.
 *
 * safetensors_json.c reads the JSON header into a struct st_file (tensor
 * entries in header order, metadata, decoded strings); safetensors.c runs the
 * remaining validation steps of spec §1.4 and serves the queries. Same
 * ownership and thread-safety as safetensors.h.
 */
#ifndef CORE_SAFETENSORS_INT_H
#define CORE_SAFETENSORS_INT_H

#include "core/safetensors.h"

struct st_entry {
    struct st_tensor t;     /* what st_tensor_at() returns */
    const char *dtype_code; /* the header's dtype text, in the arena */
    size_t dtype_len;       /* its length in bytes */
    int dtype_ok;           /* 1 if dtype_code is a known code (t.dtype valid) */
    size_t order;           /* position in the header */
    int big_dim;            /* 1 + the first dimension above INT64_MAX, or 0 */
};

struct st_meta {
    const char *key;   /* in the arena */
    const char *value; /* in the arena */
};

struct st_file {
    const unsigned char *buf; /* borrowed: the whole file image */
    uint64_t len;             /* its length */
    uint64_t header_len;      /* N */
    struct st_entry *entries; /* owned; data-offset order once parsed */
    size_t n_entries, cap_entries;
    const struct st_entry **by_name; /* owned; entries sorted by name */
    struct st_meta *meta;            /* owned; header order */
    size_t n_meta, cap_meta;
    char *arena; /* owned; every decoded JSON string, NUL-terminated */
    size_t arena_used, arena_cap;
};

/* Parse the N header bytes at `hdr` (valid UTF-8 already checked) into `f`:
 * syntax, schema, numbers, names, tensor-count and rank limits. Leaves dtype
 * validity (dtype_ok), duplicates and offsets to the caller. The arena must
 * already hold N + 1 bytes. Fails with invalid_header or limit_exceeded. */
enum err_code st__header_parse(struct st_file *f, const unsigned char *hdr, uint64_t n,
                               const struct ckpt_limits *l, struct err *e);

#endif /* CORE_SAFETENSORS_INT_H */
