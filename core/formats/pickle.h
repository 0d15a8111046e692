/* pickle.h -- restricted Python pickle interpreter for torch.save's data.pkl
 * (docs/checkpoint-formats.md, Restricted unpickler).
 *
 * pkl_parse() runs the pickle opcodes over a buffer and builds plain
 * data: none, bool, int (int64), float, complex, str, bytes, tuple, list,
 * set, dict (insertion-ordered), global (module, name), storage references
 * (persistent ids), tensor references (the allow-listed rebuild functions)
 * and opaque values. Nothing is ever executed: globals are checked the
 * moment they are pushed: the deny-list is refused in every mode
 * ("disallowed_global", the message names the global); the allow-list is
 * interpreted; any other global is refused in strict mode and becomes an
 * inert opaque value in lenient mode (limits->strict == 0), which keeps its
 * arguments, state and items as children so tensors inside stay reachable.
 * Structural errors are "invalid_pickle" with the byte position of the opcode;
 * limits (data size, stack, MARK nesting, memo, values, memory, the size of
 * one dict key, the hashing work on dict keys) are "limit_exceeded". Sizes
 * read from the input are checked against the remaining input before anything
 * is allocated, and every allocation is counted in bytes against
 * max_pickle_mem before it is made, so a parse never holds more than that,
 * whatever the pickle builds.
 *
 * Values are shared, not copied: the memo and repeated BINGETs push the same
 * pointer, so one object (a tensor, a container) can be reachable along
 * several paths and a list may contain itself. Walkers must track visited
 * containers. All values belong to the struct pkl_result (an arena freed at
 * once by pkl_free), which makes cycles harmless where reference counts
 * would leak them.
 *
 * Ownership: pkl_parse() returns a new result; free with pkl_free(). Every
 * value and string reached from it is borrowed: valid until pkl_free().
 * Thread-safety: a result is read-only after pkl_parse(); pkl_parse() uses no
 * shared state, so separate parses may run concurrently.
 */
#ifndef CORE_PICKLE_H
#define CORE_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/formats/ckpt.h"
#include "core/dtype.h"
#include "core/err.h"

#define PKL_MAX_RANK 16

enum pkl_kind {
    PKL_NONE,
    PKL_BOOL,
    PKL_INT,
    PKL_FLOAT,
    PKL_COMPLEX,
    PKL_STR,
    PKL_BYTES,
    PKL_TUPLE,
    PKL_LIST,
    PKL_SET, /* set or frozenset (frozen != 0) */
    PKL_DICT,
    PKL_GLOBAL,
    PKL_STORAGE,
    PKL_TENSOR,
    PKL_OPAQUE
};

struct pkl_storage {  /* one distinct storage named by persistent ids */
    const char *key;  /* [A-Za-z0-9_.-]{1,64}, no ".." : member data/<key> */
    enum dtype dtype; /* of the storage class; U8 for torch.UntypedStorage */
    int untyped;      /* 1 for torch.UntypedStorage (numel counts bytes) */
    uint64_t numel;   /* elements of dtype */
};

struct pkl_tensor {               /* a tensor reference; no data */
    size_t storage;               /* index for pkl_storage_at() */
    enum dtype dtype;             /* element type of the view */
    int ndim;                     /* 0 .. PKL_MAX_RANK */
    uint64_t offset;              /* storage_offset in elements of dtype */
    int64_t size[PKL_MAX_RANK];   /* >= 0 */
    int64_t stride[PKL_MAX_RANK]; /* >= 0, in elements */
};

struct pkl_value { /* plain data, borrowed from the result */
    enum pkl_kind kind;
    int frozen;               /* PKL_SET: frozenset */
    int64_t i;                /* PKL_BOOL (0/1), PKL_INT */
    double f, f_imag;         /* PKL_FLOAT; PKL_COMPLEX (real, imaginary) */
    const char *str;          /* PKL_STR/PKL_BYTES: data, NUL-terminated copy;
                                 PKL_GLOBAL: "module.name"; PKL_OPAQUE: what it is
                                 ("argparse.Namespace()") */
    size_t len;               /* bytes in str */
    size_t dot;               /* PKL_GLOBAL: offset of the '.' between module and name */
    struct pkl_value **items; /* tuple/list/set items, dict keys, opaque children */
    struct pkl_value **vals;  /* PKL_DICT values, parallel to items */
    size_t n_items;
    size_t cap_items;
    struct pkl_tensor tensor; /* PKL_TENSOR */
    size_t storage;           /* PKL_STORAGE: index for pkl_storage_at() */
    uint32_t *hash_slots;     /* PKL_DICT: private lookup index (may be NULL) */
    size_t hash_cap;
};

struct pkl_result; /* opaque */

/* --- Parse and free ------------------------------------------------------------ */

/* Interpret the pickle in `buf` (`len` bytes) under `limits` (NULL: the
 * defaults of ckpt_limits_default(), lenient). BINPERSID must name torch
 * storages: ('storage', torch <StorageClass>, key, location, numel); every
 * distinct key becomes one pkl_storage (a key seen again with another dtype
 * or numel is invalid_pickle). On success *out is a new result; free with
 * pkl_free(). Failures: ERR_FORMAT (invalid_pickle, disallowed_global,
 * invalid_dtype, shape_mismatch), ERR_TOOBIG (limit_exceeded), ERR_NOMEM. */
enum err_code pkl_parse(const unsigned char *buf, size_t len, const struct ckpt_limits *limits,
                        struct pkl_result **out, struct err *e);

/* The same for a PyTorch Distributed Checkpoint `.metadata` pickle (docs/dcp.md):
 * the allow-list grows by exactly the DCP metadata classes (Metadata,
 * MetadataIndex, TensorStorageMetadata, BytesStorageMetadata,
 * ChunkStorageMetadata, TensorProperties, _MEM_FORMAT_ENCODING, StorageMeta
 * of torch.distributed.checkpoint.metadata, _StorageInfo of
 * torch.distributed.checkpoint.filesystem, TensorProperties and
 * MEM_FORMAT_ENCODING of torch < 2.4's sharded_tensor.metadata) and the values
 * they hold (torch.strided, pathlib's path classes). Their instances are
 * PKL_OPAQUE values "<module>.<name>()" whose children are the constructor
 * arguments, then the BUILD state; they may be dict keys (MetadataIndex),
 * compared by class, arguments and state. Every other global is treated as in
 * pkl_parse(); pkl_parse() keeps refusing these classes (torch.distributed is
 * deny-listed) in every mode. */
enum err_code pkl_parse_dcp(const unsigned char *buf, size_t len, const struct ckpt_limits *limits,
                            struct pkl_result **out, struct err *e);

/* Free `r` and every value in it. NULL is a no-op. Cannot fail. */
void pkl_free(struct pkl_result *r);

/* --- Query ------------------------------------------------------------------------ */

/* The value STOP returned. Borrowed. Never NULL. */
const struct pkl_value *pkl_root(const struct pkl_result *r);

/* Distinct storages, in order of first reference. */
size_t pkl_n_storages(const struct pkl_result *r);
const struct pkl_storage *pkl_storage_at(const struct pkl_result *r, size_t i);

/* The highest pickle protocol announced by PROTO (0 if none). */
int pkl_protocol(const struct pkl_result *r);

/* The most bytes the parse held allocated at once (values, strings, container
 * item arrays, dict indexes, stack, marks, memo; a realloc's old and new
 * blocks both), the figure max_pickle_mem bounds. */
uint64_t pkl_mem_peak(const struct pkl_result *r);

/* Value of the str key `key` (NUL-terminated) in dict `d`, or NULL when `d`
 * is not a dict or has no such key. Borrowed. */
const struct pkl_value *pkl_dict_get(const struct pkl_value *d, const char *key);

/* 1 and *out set if `g` is a PKL_GLOBAL naming a torch dtype ("torch.float32",
 * "torch.half", ...), else 0 (*out untouched). Cannot fail. */
int pkl_global_dtype(const struct pkl_value *g, enum dtype *out);

/* Name of a kind ("dict", "tensor", ...). Never NULL. */
const char *pkl_kind_name(enum pkl_kind k);

#endif /* CORE_PICKLE_H */
