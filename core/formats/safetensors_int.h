/* safetensors_int.h -- what safetensors.c shares with safetensors_json.c
 * (and, for st__ckpt_add() and the head reader, with shards.c), and what
 * safetensors_json.c shares with safetensors_lex.c.
 *
 * safetensors_json.c reads the JSON header into a struct st_file (tensor
 * entries in header order, metadata, decoded strings) with the tokens that
 * safetensors_lex.c reads (struct st_ps, st__ws() ... st__skip()); safetensors.c runs the
 * remaining validation steps of docs/checkpoint-formats.md, safetensors and serves the queries.
 * Same ownership and thread-safety as safetensors.h.
 */
#ifndef CORE_SAFETENSORS_INT_H
#define CORE_SAFETENSORS_INT_H

#include "core/formats/ckpt_int.h"
#include "core/formats/rfile.h"
#include "core/formats/safetensors.h"

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
    const unsigned char *buf; /* borrowed during parsing (NULL after st__parse of a head) */
    uint64_t len;             /* the file's length */
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

/* --- safetensors_lex.c: the JSON tokens -------------------------------------- */

struct st_ps {
    const unsigned char *p, *start, *end; /* cursor within the header */
    struct st_file *f;
    const struct ckpt_limits *l;
    struct err *e;
};

/* Skip JSON whitespace. */
void st__ws(struct st_ps *ps);

/* Fail with invalid_header: "header is not valid JSON: <what> at byte <k>". */
enum err_code st__syntax(struct st_ps *ps, const char *what);

/* 1 if the next byte is `ch`, after whitespace; consumes it. */
int st__eat(struct st_ps *ps, unsigned char ch);

/* Decode the string at the cursor (which is at its opening quote) into the
 * arena; *out is NUL-terminated, *out_len excludes the terminator. */
enum err_code st__string(struct st_ps *ps, const char **out, size_t *out_len);

/* A non-negative integer that fits in u64, written as plain digits, for
 * `field` of tensor `name`. Read exactly from its text: no double rounding. */
enum err_code st__uint(struct st_ps *ps, const char *name, const char *field, uint64_t *out);

/* An object's `"key":`: the key in *key (*key_len bytes, unescaped). */
enum err_code st__key(struct st_ps *ps, const char **key, size_t *key_len);

/* Check and skip any JSON value (the value of an unknown entry field) at
 * nesting `depth` (ST_JSON_DEPTH, in safetensors_lex.c, bounds it). */
enum err_code st__skip(struct st_ps *ps, int depth);

/* --- safetensors.c ------------------------------------------------------------- */

/* st_parse on the first `buf_len` bytes of a `file_len`-byte file: `buf`
 * must hold at least min(file_len, 8 + N) bytes for the header length N that
 * passes the checks (st__read_head reads that much). Tensor data
 * pointers are set only when buf_len == file_len (the whole image), else
 * NULL, and the result does not borrow `buf` then. */
enum err_code st__parse(const unsigned char *buf, uint64_t buf_len, uint64_t file_len,
                        const struct ckpt_limits *l, struct st_file **out, struct err *e);

/* Read the length prefix and header of the open file `f` (at most 8 +
 * max_header_bytes bytes, never the data) and st__parse them. On success
 * *out is a new st_file (tensor data pointers NULL). Also fails with
 * rfile_read()'s errors. */
enum err_code st__read_head(const struct rfile *f, const struct ckpt_limits *l,
                            struct st_file **out, struct err *e);

/* Add safetensors tensor `t` (name, dtype, shape) to checkpoint `c`, as
 * ckpt__tensor_add() does; safetensors.c and shards.c list their tensors
 * with it. */
enum err_code st__ckpt_add(struct ckpt *c, const struct st_tensor *t, struct err *e);

#endif /* CORE_SAFETENSORS_INT_H */
