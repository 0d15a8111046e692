/* shards_int.h -- what shards_plan.c (the plan: an index or folder read,
 * checked and its shards named) shares with shards.c (the ckpt loader).
 * Internal to core/formats/shards*.c. Same ownership and thread-safety as
 * shards.h.
 */
#ifndef CORE_SHARDS_INT_H
#define CORE_SHARDS_INT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/formats/ckpt.h"
#include "core/formats/shards.h"

struct shards_wm {
    const char *name;  /* tensor name, borrowed from the cJSON tree */
    const char *shard; /* shard file name, borrowed from the cJSON tree */
    size_t shard_idx;  /* index into plan.names */
};

struct shards_plan {
    char *dir;    /* owned: folder holding the shards */
    char **names; /* owned array of owned shard file names, sorted, unique */
    size_t n_names;
    cJSON *json;          /* owned: the parsed index, NULL in folder mode */
    struct shards_wm *wm; /* owned, sorted by tensor name; NULL in folder mode */
    size_t n_wm;
};

/* Free what `p` owns and zero it. Safe on a zeroed plan. */
void shards__plan_free(struct shards_plan *p);

/* qsort/bsearch order of weight-map entries: by tensor name. */
int shards__cmp_wm(const void *a, const void *b);

/* "<dir>/<name>" as a new string, or NULL when out of memory. */
char *shards__join(const char *dir, const char *name);

/* Build the plan for `path`: an index file, or a folder. *p is zeroed first
 * and, on failure too, holds what was made: release it with
 * shards__plan_free(). */
enum err_code shards__plan_make(const char *path, const struct ckpt_limits *l,
                                struct shards_plan *p, struct err *e);

/* The error (invalid_index) of shard `shard` that does not exist. */
enum err_code shards__missing(const char *shard, struct err *e);

#endif /* CORE_SHARDS_INT_H */
