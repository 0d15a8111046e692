/* shards_plan.c -- the plan of a shard index / folder of safetensors shards,
 * and shards_list().
 *
 * A "plan" is what the index (or folder) says: the folder, the shard file
 * names (sorted, unique) and, for an index, the weight map sorted by tensor
 * name. shards_list() resolves the plan's shards; the ckpt loader (shards.c)
 * opens them. A plan owns its strings and the parsed index (shards_int.h);
 * plans share no state: thread-safe.
 */
#include "core/formats/shards.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/formats/rfile.h"
#include "core/formats/shards_int.h"

#define SHARDS_INDEX_NAME "model.safetensors.index.json"
#define SHARDS_SUFFIX     ".safetensors"

void shards__plan_free(struct shards_plan *p)
{
    for (size_t i = 0; i < p->n_names; i++)
        free(p->names[i]);
    free(p->names);
    free(p->dir);
    free(p->wm);
    cJSON_Delete(p->json);
    memset(p, 0, sizeof(*p));
}

static int shards_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int shards_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int shards__cmp_wm(const void *a, const void *b)
{
    return strcmp(((const struct shards_wm *)a)->name, ((const struct shards_wm *)b)->name);
}

/* "<dir>/<name>" as a new string, or NULL when out of memory. */
char *shards__join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);

    if (s != NULL)
        (void)snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* Append a copy of `name` to p->names (capacity grows by doubling). */
static enum err_code shards_add_name(struct shards_plan *p, size_t *cap, const char *name,
                                     const struct ckpt_limits *l, struct err *e)
{
    if (p->n_names >= l->max_shards)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "more than %llu shards",
                        (unsigned long long)l->max_shards);
    if (p->n_names == *cap) {
        size_t ncap = *cap ? 2 * *cap : 8;
        char **q = realloc(p->names, ncap * sizeof(*q));
        if (q == NULL)
            return err_set(e, ERR_NOMEM, "out of memory listing shards");
        p->names = q;
        *cap = ncap;
    }
    p->names[p->n_names] = strdup(name);
    if (p->names[p->n_names] == NULL)
        return err_set(e, ERR_NOMEM, "out of memory listing shards");
    p->n_names++;
    return ERR_OK;
}

/* Folder mode: every *.safetensors file in `p->dir`, sorted by name. */
static enum err_code shards_scan_dir(struct shards_plan *p, const struct ckpt_limits *l,
                                     struct err *e)
{
    enum err_code rc = ERR_OK;
    struct dirent *de;
    size_t cap = 0;
    DIR *d = NULL;

    d = opendir(p->dir);
    if (d == NULL) {
        rc = err_set_errno(e, ERR_IO, errno, "open folder %s", p->dir);
        goto out;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !shards_ends_with(de->d_name, SHARDS_SUFFIX))
            continue;
        rc = shards_add_name(p, &cap, de->d_name, l, e);
        if (rc)
            goto out;
    }
    if (p->n_names == 0) {
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                      "folder %s holds neither " SHARDS_INDEX_NAME " nor .safetensors files",
                      p->dir);
        goto out;
    }
    qsort(p->names, p->n_names, sizeof(*p->names), shards_cmp_str);
out:
    if (d != NULL)
        closedir(d);
    return rc;
}

/* Shard names (docs/checkpoint-formats.md, Sharded safetensors): a plain file name ending in
 * .safetensors. */
static enum err_code shards_check_name(const cJSON *v, const char *tensor, struct err *e)
{
    const char *s = cJSON_IsString(v) ? v->valuestring : NULL;

    if (s == NULL)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                        "weight_map value of '%.200s' is not a string", tensor);
    if (s[0] == '/' || strchr(s, '/') != NULL || strchr(s, '\\') != NULL || strcmp(s, ".") == 0 ||
        strcmp(s, "..") == 0)
        return err_setc(e, ERR_INVAL, ERR_CAT_INVALID_INDEX,
                        "unsafe shard name '%.200s' for tensor '%.200s': shards must be plain "
                        "file names in the index's folder",
                        s, tensor);
    if (s[0] == '\0' || !shards_ends_with(s, SHARDS_SUFFIX))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                        "shard name '%.200s' for tensor '%.200s' does not end in .safetensors", s,
                        tensor);
    return ERR_OK;
}

/* Parse the index text (`len` bytes) into p->json and p->wm. */
static enum err_code shards_parse_index(struct shards_plan *p, const unsigned char *text,
                                        size_t len, struct err *e)
{
    const cJSON *wm, *meta, *it;
    enum err_code rc;
    size_t i = 0;

    /* cJSON cuts strings at an escaped NUL; refuse the escape outright. */
    for (size_t k = 0; k + 6 <= len; k++)
        if (text[k] == '\\' && text[k + 1] == 'u' && memcmp(text + k + 2, "0000", 4) == 0)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                            "index holds a NUL character (\\u0000)");
    p->json = cJSON_ParseWithLength((const char *)text, len);
    if (p->json == NULL || !cJSON_IsObject(p->json))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX, "index is not a JSON object%s",
                        p->json == NULL ? " (not valid JSON)" : "");
    wm = cJSON_GetObjectItemCaseSensitive(p->json, "weight_map");
    meta = cJSON_GetObjectItemCaseSensitive(p->json, "metadata");
    if (!cJSON_IsObject(wm))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX, "index lacks a weight_map object");
    if (meta != NULL && !cJSON_IsObject(meta))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX, "index metadata is not an object");
    p->n_wm = (size_t)cJSON_GetArraySize(wm);
    p->wm = calloc(p->n_wm ? p->n_wm : 1, sizeof(*p->wm));
    if (p->wm == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for %zu index entries", p->n_wm);
    cJSON_ArrayForEach(it, wm)
    {
        rc = shards_check_name(it, it->string, e);
        if (rc)
            return rc;
        p->wm[i].name = it->string;
        p->wm[i++].shard = it->valuestring;
    }
    qsort(p->wm, p->n_wm, sizeof(*p->wm), shards__cmp_wm);
    for (i = 1; i < p->n_wm; i++)
        if (strcmp(p->wm[i - 1].name, p->wm[i].name) == 0)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                            "tensor '%.200s' appears twice in weight_map", p->wm[i].name);
    return ERR_OK;
}

/* The distinct shard names of p->wm, sorted, and each entry's shard_idx. */
static enum err_code shards_index_names(struct shards_plan *p, const struct ckpt_limits *l,
                                        struct err *e)
{
    enum err_code rc = ERR_OK;
    const char **all = NULL;
    size_t cap = 0;

    all = malloc((p->n_wm ? p->n_wm : 1) * sizeof(*all));
    if (all == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory for %zu index entries", p->n_wm);
        goto out;
    }
    for (size_t i = 0; i < p->n_wm; i++)
        all[i] = p->wm[i].shard;
    qsort(all, p->n_wm, sizeof(*all), shards_cmp_str);
    for (size_t i = 0; i < p->n_wm; i++) {
        if (i > 0 && strcmp(all[i - 1], all[i]) == 0)
            continue;
        rc = shards_add_name(p, &cap, all[i], l, e);
        if (rc)
            goto out;
    }
    for (size_t i = 0; i < p->n_wm; i++) {
        char **hit =
            bsearch(&p->wm[i].shard, p->names, p->n_names, sizeof(*p->names), shards_cmp_str);
        ERR_ASSERT(hit != NULL);
        p->wm[i].shard_idx = (size_t)(hit - p->names);
    }
out:
    free(all);
    return rc;
}

static enum err_code shards_read_index(struct shards_plan *p, const char *index,
                                       const struct ckpt_limits *l, struct err *e)
{
    unsigned char *text = NULL;
    size_t n = 0;
    enum err_code rc = rfile_slurp(index, l->max_header_bytes, &text, &n, e);

    if (rc == ERR_OK)
        rc = shards_parse_index(p, text, n, e);
    free(text);
    if (rc == ERR_OK)
        rc = shards_index_names(p, l, e);
    return rc;
}

/* Build the plan for `path`: an index file, or a folder. */
enum err_code shards__plan_make(const char *path, const struct ckpt_limits *l,
                                struct shards_plan *p, struct err *e)
{
    enum err_code rc = ERR_OK;
    char *index = NULL;
    struct stat st;

    memset(p, 0, sizeof(*p));
    if (stat(path, &st) != 0)
        return err_set_errno(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, errno, "stat %s", path);
    if (S_ISDIR(st.st_mode)) {
        p->dir = strdup(path);
        index = shards__join(path, SHARDS_INDEX_NAME);
        if (p->dir == NULL || index == NULL) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
            goto out;
        }
        if (stat(index, &st) != 0) {
            rc = shards_scan_dir(p, l, e);
            goto out;
        }
    } else {
        const char *slash = strrchr(path, '/');
        index = strdup(path);
        p->dir = slash == NULL ? strdup(".") : strndup(path, (size_t)(slash - path));
        if (p->dir == NULL || index == NULL) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
            goto out;
        }
        if (p->dir[0] == '\0') { /* "/x.index.json": the root folder */
            free(p->dir);
            p->dir = strdup("/");
            if (p->dir == NULL) {
                rc = err_set(e, ERR_NOMEM, "out of memory");
                goto out;
            }
        }
    }
    rc = shards_read_index(p, index, l, e);
out:
    free(index);
    return rc;
}

enum err_code shards__missing(const char *shard, struct err *e)
{
    return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX, "shard '%.200s' does not exist", shard);
}

enum err_code shards_list(const char *path, const struct ckpt_limits *l, struct shards_paths *out,
                          struct err *e)
{
    struct shards_plan p;
    struct ckpt_limits defaults;
    struct shards_paths r = {0, NULL};
    enum err_code rc;

    memset(out, 0, sizeof(*out));
    if (l == NULL) {
        ckpt_limits_default(&defaults);
        l = &defaults;
    }
    rc = shards__plan_make(path, l, &p, e);
    if (rc)
        goto out;
    r.paths = calloc(p.n_names ? p.n_names : 1, sizeof(*r.paths));
    if (r.paths == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    for (; r.n < p.n_names; r.n++) {
        char *joined = shards__join(p.dir, p.names[r.n]);
        if (joined == NULL) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
            goto out;
        }
        r.paths[r.n] = realpath(joined, NULL);
        free(joined);
        if (r.paths[r.n] == NULL) {
            rc = errno == ENOENT ? shards__missing(p.names[r.n], e)
                                 : err_set_errno(e, ERR_IO, errno, "resolve %s", p.names[r.n]);
            goto out;
        }
    }
    *out = r;
    r.paths = NULL;
    r.n = 0;
out:
    shards_paths_free(&r);
    shards__plan_free(&p);
    return rc;
}

void shards_paths_free(struct shards_paths *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->paths[i]);
    free(p->paths);
    p->paths = NULL;
    p->n = 0;
}
