/* ckpt_int.h -- what the checkpoint format readers share with ckpt.c.
 *
 * ckpt.c sniffs the format and calls one loader; the loader fills the
 * struct ckpt it is given: tensors (through ckpt__tensor_add), the model
 * prefix, its private state in `impl` and the ops that read tensor bytes and
 * free `impl`. A loader that fails leaves cleanup to ckpt.c (ckpt_close()
 * frees whatever was filled in). Same thread-safety as ckpt.h.
 */
#ifndef CORE_CKPT_INT_H
#define CORE_CKPT_INT_H

#include "core/formats/ckpt.h"
#include "core/formats/rfile.h"

struct ckpt_ops {
    /* Materialise tensor i (see ckpt_tensor_read): the bytes go into `buf`
     * (at least 1 byte reserved) and *data = buf->data on success. */
    enum err_code (*read)(const struct ckpt *c, size_t i, struct ckpt_buf *buf, const void **data,
                          struct err *e);
    /* Free `impl` (NULL-safe). */
    void (*free_impl)(void *impl);
};

struct ckpt {
    enum ckpt_format format;
    const struct ckpt_ops *ops;  /* set by the loader */
    void *impl;                  /* owned, format-specific; freed by ops->free_impl */
    struct ckpt_tensor *tensors; /* owned array; each name is an owned malloc'd string */
    size_t n_tensors;
    size_t cap_tensors;
    char *model_prefix;        /* owned; NULL means "" */
    struct ckpt_limits limits; /* copy of the caller's limits */
};

/* A tensor as a loader found it in the file, before ckpt__tensor_add checks
 * and copies it. Borrowed. */
struct ckpt__entry {
    const char *name; /* `name_len` bytes, need not be NUL-terminated */
    size_t name_len;
    enum dtype dtype;     /* stored element type */
    int ndim;             /* rank as stored (checked against CKPT_MAX_RANK) */
    const int64_t *shape; /* ndim extents */
};

/* Append the tensor `in` describes (its name copied). Checks rank <= 16, the element count
 * and byte size for u64 overflow (category "overflow") and the max_tensors
 * limit. *out (may be NULL) gets the new record, alias_of = -1, in_model = 1;
 * it stays valid until the next ckpt__tensor_add. */
enum err_code ckpt__tensor_add(struct ckpt *c, const struct ckpt__entry *in,
                               struct ckpt_tensor **out, struct err *e);

/* Grow `b` to at least `n` bytes, honouring max_tensor_bytes of `c`. */
enum err_code ckpt__buf_reserve(const struct ckpt *c, struct ckpt_buf *b, uint64_t n,
                                struct err *e);

/* Where a tensor's bytes lie: `n` bytes at `off` of file `f` (borrowed). */
struct ckpt__extent {
    const struct rfile *f;
    uint64_t off; /* first byte, from the start of the file */
    uint64_t n;   /* byte count */
};

/* Read extent `x` into `b` (grown to at least 1 byte, within
 * max_tensor_bytes) and point *data at them: the read op of the formats
 * whose stored bytes already are the tensor. */
enum err_code ckpt__read_into(const struct ckpt *c, const struct ckpt__extent *x,
                              struct ckpt_buf *b, const void **data, struct err *e);

/* Loaders, one per format (each in its format's .c file). `path` is the file
 * (or folder / index) to read. */
enum err_code st__ckpt_load(struct ckpt *c, const char *path, struct err *e);
enum err_code shards__ckpt_load(struct ckpt *c, const char *path, struct err *e);
enum err_code tz__ckpt_load(struct ckpt *c, const char *path, struct err *e);
enum err_code npy__ckpt_load(struct ckpt *c, const char *path, struct err *e);
enum err_code npz__ckpt_load(struct ckpt *c, const char *path, struct err *e);
enum err_code gguf__ckpt_load(struct ckpt *c, const char *path, struct err *e);
enum err_code dcp__ckpt_load(struct ckpt *c, const char *path, struct err *e);
/* The torch.save archive stored at bytes [off, off + len) of `f` (borrowed: it
 * must outlive `c`), read as tz__ckpt_load reads a file (DCP items). */
enum err_code tz__ckpt_load_window(struct ckpt *c, const struct rfile *f, uint64_t off,
                                   uint64_t len, struct err *e);
enum err_code ds__ckpt_load(struct ckpt *c, const char *path, struct err *e);
enum err_code peft__ckpt_load(struct ckpt *c, const char *path, struct err *e);

#endif /* CORE_CKPT_INT_H */
