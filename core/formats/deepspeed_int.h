/* deepspeed_int.h -- what deepspeed.c (folder, `latest`, file names,
 * ZeRO-0/1/2) shares with deepspeed_z3.c (ZeRO-3 reconstruction). Same
 * ownership and thread-safety as deepspeed.h.
 */
#ifndef CORE_DEEPSPEED_INT_H
#define CORE_DEEPSPEED_INT_H

#include <stddef.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/deepspeed.h"

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

#endif /* CORE_DEEPSPEED_INT_H */
