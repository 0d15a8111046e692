/* pickle_int.h -- what pickle.c (values, containers, result) shares with
 * pickle_dict.c (dict keys), pickle_ops.c (the opcode interpreter),
 * pickle_globals.c (the allow-list) and pickle_torch.c (calls and torch
 * storages). Same ownership and thread-safety as pickle.h: one parser per
 * call, no shared state.
 */
#ifndef CORE_PICKLE_INT_H
#define CORE_PICKLE_INT_H

#include "core/formats/pickle.h"

#define PKL_CHUNK         256
#define PKL_MAX_VALUES    ((size_t)1 << 24) /* values one parse may create */
#define PKL_MAX_KEY_DEPTH 64                /* nesting of tuple dict keys */
/* Values in one dict key or set member, a shared one counted each time it is
 * reached: hashing and comparing walk them all. */
#define PKL_MAX_KEY_NODES 4096
/* Hash and comparison steps on dict keys one parse may take: keys made to
 * collide cost a probe per key already in their cluster, n^2 / 2 in all (40 000
 * colliding ints took 13 s), where real dicts take a few steps per key. */
#define PKL_KEY_WORK(len) ((uint64_t)(len)*16 + ((uint64_t)1 << 22))

struct pkl_chunk { /* arena block of values */
    struct pkl_chunk *next;
    size_t used;
    struct pkl_value v[PKL_CHUNK];
};

struct pkl_result {
    struct pkl_chunk *chunks; /* owned: every value */
    size_t n_values;
    const struct pkl_value *root; /* borrowed from chunks */
    struct pkl_storage *storages; /* owned array; keys borrowed from chunks */
    size_t n_storages;
    size_t cap_storages;
    struct pkl_value *storage_index; /* dict: key str -> PKL_STORAGE value */
    int protocol;
    uint64_t mem_peak; /* most bytes the parse held at once (pkl_mem_peak) */
};

struct pkl_parser {
    struct pkl_result *r;
    const unsigned char *buf; /* borrowed */
    size_t len;
    size_t pos;    /* next byte to read */
    size_t op_pos; /* position of the opcode being run */
    struct ckpt_limits lim;
    struct pkl_value **stack; /* owned array of borrowed values */
    size_t n_stack, cap_stack;
    size_t *marks; /* owned: stack heights at each MARK */
    size_t n_marks, cap_marks;
    struct pkl_value **memo; /* owned array of borrowed values (NULL: unset) */
    size_t n_memo, cap_memo;
    struct pkl_value *none, *vtrue, *vfalse; /* shared singletons */
    uint64_t mem;      /* bytes allocated now: result, values, payloads, stack, marks, memo */
    uint64_t mem_peak; /* the most `mem` has been, transient realloc copies included */
    uint64_t key_work; /* dict key hash/compare steps, against PKL_KEY_WORK(len) */
    int dcp;           /* 1: pkl_parse_dcp (the DCP metadata classes are allowed) */
    struct err *e;
};

/* --- pickle.c: memory, values ----------------------------------------------------- */

/* Account for an allocation of `need` bytes that replaces one of `old` bytes
 * (0: a new block), before making it: limit_exceeded if the parse would hold
 * more than max_pickle_mem bytes at once, counting the old block too (realloc
 * holds both for a moment). `what` names the allocation in the message. Every
 * byte pickle*.c allocates goes through here, so what a parse holds is
 * bounded by max_pickle_mem whatever the input (shared values are allocated,
 * and counted, once; references to them cost their pointer slot). */
enum err_code pkl__mem(struct pkl_parser *p, uint64_t need, uint64_t old, const char *what);


/* New zeroed value of `kind` in the arena (limit_exceeded past PKL_MAX_VALUES). */
enum err_code pkl__new(struct pkl_parser *p, enum pkl_kind kind, struct pkl_value **out);

/* New PKL_STR / PKL_BYTES / ... value holding a NUL-terminated copy of s[0..n). */
enum err_code pkl__new_str(struct pkl_parser *p, enum pkl_kind kind, const char *s, size_t n,
                           struct pkl_value **out);

/* Append `v` to the items of `c` (tuple, list, set, opaque). */
enum err_code pkl__append(struct pkl_parser *p, struct pkl_value *c, struct pkl_value *v);

/* Room for one more item (and value, for dicts) in `c`. */
enum err_code pkl__reserve(struct pkl_parser *p, struct pkl_value *c);

/* --- pickle_dict.c: dict keys ------------------------------------------------------- */

/* d[k] = v with Python semantics (existing key: value replaced in place).
 * Unhashable keys are invalid_pickle. */
enum err_code pkl__dict_set(struct pkl_parser *p, struct pkl_value *d, struct pkl_value *k,
                            struct pkl_value *v);

/* Index of key `k` in dict `d`, or -1. The hash and comparison steps it took
 * are added to *work (NULL: not counted). */
long pkl__dict_find(const struct pkl_value *d, const struct pkl_value *k, uint64_t *work);

/* limit_exceeded once the parse's key_work passes PKL_KEY_WORK(len). */
enum err_code pkl__key_work(struct pkl_parser *p);

/* ERR_OK if `k` may be a dict key / set member, else invalid_pickle
 * (limit_exceeded past PKL_MAX_KEY_NODES values). */
enum err_code pkl__check_hashable(struct pkl_parser *p, const struct pkl_value *k);

/* Set an error with the current opcode position: category `cat`. */
enum err_code pkl__fail(struct pkl_parser *p, enum err_code code, enum err_category cat,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#ifdef __clang_analyzer__
/* It returns `code`; see the same analyzer-only macro for err_set in err.h. */
#define pkl__fail(p, code, ...) ((pkl__fail)((p), (code), __VA_ARGS__), (code))
#endif


/* --- pickle_globals.c: globals (allow-list, deny-list) ------------------------------- */

enum pkl_gclass {
    PKL_G_DENIED,
    PKL_G_UNKNOWN,
    PKL_G_ODICT,
    PKL_G_REBUILD,
    PKL_G_FROM_TYPE,
    PKL_G_STORAGE,
    PKL_G_DTYPE,
    PKL_G_TOKEN, /* torch.nn.parameter.Parameter, torch.Tensor */
    PKL_G_SIZE,
    PKL_G_DEVICE,
    PKL_G_ENCODE,
    PKL_G_SET,
    PKL_G_FROZENSET,
    PKL_G_BYTEARRAY,
    PKL_G_COMPLEX,
    PKL_G_DCP,  /* a DCP metadata class (pkl_parse_dcp only): instances are opaque values */
    PKL_G_INERT /* a value DCP metadata pulls in (pkl_parse_dcp only): torch.strided, pathlib */
};

/* Check global `module`.`name` (both NUL-free UTF-8) against the deny-list and
 * allow-list, then push it (or refuse it: disallowed_global). */
enum err_code pkl__global(struct pkl_parser *p, const char *module, size_t module_len,
                          const char *name, size_t name_len);

/* Class of PKL_GLOBAL value `g` (its module and name split at its dot); *dt
 * (NULL: not wanted) gets the dtype of storage classes and dtypes. `dcp` != 0
 * (pkl_parse_dcp): the DCP metadata classes and values are allowed. */
enum pkl_gclass pkl__gclass_of(const struct pkl_value *g, enum dtype *dt, int dcp);

/* --- pickle_torch.c: calls (REDUCE, NEWOBJ, BUILD, BINPERSID; torch) ------------------ */

/* REDUCE: result of calling `func` with `args` (nothing is executed). */
enum err_code pkl__reduce(struct pkl_parser *p, struct pkl_value *func, struct pkl_value *args,
                          struct pkl_value **out);

/* NEWOBJ / NEWOBJ_EX: an instance of `cls` built from `args`. */
enum err_code pkl__newobj(struct pkl_parser *p, struct pkl_value *cls, struct pkl_value *args,
                          struct pkl_value **out);

/* BUILD: apply `state` to `inst` (ignored for dicts and tensors). */
enum err_code pkl__build(struct pkl_parser *p, struct pkl_value *inst, struct pkl_value *state);

/* BINPERSID: the storage named by persistent id `pid` (torch's storage tuple). */
enum err_code pkl__persid(struct pkl_parser *p, struct pkl_value *pid, struct pkl_value **out);

/* Push `v` on the stack (limit_exceeded past max_pickle_stack). */
enum err_code pkl__push(struct pkl_parser *p, struct pkl_value *v);

/* --- pickle_ops.c: interpreter ------------------------------------------------------ */

/* Run the opcodes until STOP; the result's root is set on success. */
enum err_code pkl__run(struct pkl_parser *p);

#endif /* CORE_PICKLE_INT_H */
