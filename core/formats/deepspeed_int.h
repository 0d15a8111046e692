/* deepspeed_int.h -- what deepspeed.c (folder, `latest`, file names,
 * ZeRO-0/1/2) shares with deepspeed_z3.c (ZeRO-3 reconstruction) and
 * deepspeed_rank.c (ZeRO-3 optimizer partitions). Internal to
 * core/formats/deepspeed*.c. Same ownership and thread-safety as deepspeed.h.
 */
#ifndef CORE_DEEPSPEED_INT_H
#define CORE_DEEPSPEED_INT_H

#include <stddef.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/deepspeed.h"
#include "core/formats/pickle.h"
#include "core/formats/zip.h"

/* The optimizer partition files of one global_stepN/ folder, by
 * data-parallel rank. */
struct ds__optim_files {
    char **path; /* n owned paths; path[r] is rank r's *_optim_states.pt */
    size_t n;    /* 1 + the highest rank found; a missing rank's slot is NULL */
};

/* Reconstruct the ZeRO-3 checkpoint in folder `dir` into `c`: `model` is
 * the path of rank 0's model states file, `optim` its optimizer partitions
 * (borrowed). Sets c->impl and c->ops first, so ckpt_close() frees what a
 * failure leaves. */
enum err_code ds__z3_load(struct ckpt *c, const char *dir, const char *model,
                          const struct ds__optim_files *optim, struct err *e);

/* --- deepspeed_z3.c, deepspeed_rank.c: ZeRO-3 ------------------------------------- */

struct ds_pt { /* a torch.save file opened for its pickle; never moved once open */
    struct rfile file;
    struct zip_archive *zip; /* borrows file */
    struct pkl_result *pkl;
    char folder[256]; /* the archive's top folder */
};

struct ds_group {               /* one fp32 flat group of a rank */
    const struct zip_member *m; /* its storage record, borrowed from the rank's zip */
    uint64_t off;               /* byte offset of its first element in the record */
    uint64_t n;                 /* elements */
};

struct ds_rank {             /* one *_optim_states.pt */
    struct ds_pt pt;         /* owned, open for the ckpt's life; pkl NULL once read */
    struct ds_group *groups; /* owned */
    size_t n_groups;
    uint64_t n_elems; /* sum of the groups' elements */
};

enum ds_src { DS_SRC_BUFFER, DS_SRC_FROZEN, DS_SRC_PARAM, DS_SRC_ALIAS };

struct ds_map { /* where ckpt tensor i comes from; parallel to the tensors */
    enum ds_src src;
    size_t idx;      /* BUFFER: tensor of `model`; FROZEN: its fragment's tensor in every
                        rank's model states; ALIAS: the ckpt tensor it repeats */
    uint64_t offset; /* PARAM: first element in every rank's flat groups */
    uint64_t part;   /* PARAM, FROZEN: elements per rank (ceil(numel / world)) */
};

struct ds_z3 {
    struct ckpt *model;    /* owned: rank 0's model states (the buffers) */
    struct ckpt **ms;      /* owned, world slots: ranks 1.. model states (frozen
                              fragments; opened only when there are frozen params);
                              slot 0 unused (that is `model`) */
    struct ds_rank *ranks; /* owned, world of them */
    size_t world;
    struct ds_map *map; /* owned, cap_map slots */
    size_t cap_map;
};

/* Open `path` as a torch.save zip and unpickle its data.pkl into `pt`
 * (its file.fd -1 beforehand); ds__pt_close() frees what it holds, also
 * after a failure. */
enum err_code ds__pt_open(const char *path, const struct ckpt_limits *lim, struct ds_pt *pt,
                          struct err *e);

/* Close `pt` and leave it closed (file.fd -1). */
void ds__pt_close(struct ds_pt *pt);

/* Open every rank's optimizer file `o` into z->ranks (z->world of them);
 * their count must be partition_count. The ckpt's free (deepspeed_z3.c)
 * closes them, also after a failure. */
enum err_code ds__ranks_open(const struct ckpt *c, struct ds_z3 *z, const struct ds__optim_files *o,
                             const char *dir, struct err *e);

/* Elements [from, from + n) of rank `rk`'s flat groups (concatenated) into `dst`. */
enum err_code ds__rank_read(const struct ds_rank *rk, uint64_t from, uint64_t n, unsigned char *dst,
                            struct err *e);

#endif /* CORE_DEEPSPEED_INT_H */
