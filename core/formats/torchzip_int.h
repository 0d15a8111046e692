/* torchzip_int.h -- what torchzip.c (archive, storages, reading) shares with
 * torchzip_walk.c (tensor listing, aliases, weights location). Same
 * ownership and thread-safety as torchzip.h.
 */
#ifndef CORE_TORCHZIP_INT_H
#define CORE_TORCHZIP_INT_H

#include "core/formats/ckpt_int.h"
#include "core/formats/rfile.h"
#include "core/formats/torchzip.h"

struct tz_storage {             /* one storage record data/<key> */
    const struct zip_member *m; /* borrowed from the archive */
    uint64_t nbytes;            /* numel x element size, == m->usize */
};

struct tz_view {     /* where tensor i lives; parallel to ckpt tensors */
    size_t storage;  /* index into storages */
    uint64_t offset; /* in elements of the tensor's dtype */
    int64_t stride[PKL_MAX_RANK];
};

struct tz_impl {
    struct rfile file;           /* owned, open for the ckpt's life */
    struct zip_archive *zip;     /* owned; borrows file */
    struct tz_storage *storages; /* owned, pkl storage order */
    size_t n_storages;
    struct tz_view *views; /* owned, one per ckpt tensor */
    size_t cap_views;
    int big_endian; /* byteorder record says "big" */
};

/* List the tensors reachable from `root` into `c` (names, dtypes, shapes,
 * views in `impl`), check each view's extent against its storage, mark
 * aliases and the model weights (c->model_prefix, in_model). */
enum err_code tz__list_tensors(struct ckpt *c, struct tz_impl *impl, const struct pkl_value *root,
                               struct err *e);

#endif /* CORE_TORCHZIP_INT_H */
