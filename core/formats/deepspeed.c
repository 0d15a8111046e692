/* deepspeed.c -- DeepSpeed checkpoint folders (docs/deepspeed.md): `latest`,
 * the file names of global_stepN/, ZeRO-0/1/2 through the torch zip loader.
 * See deepspeed.h; ZeRO-3 reconstruction is in deepspeed_z3.c.
 */
#include "core/formats/deepspeed.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/deepspeed_int.h"
#include "core/formats/rfile.h"

#define DS_TAG_MAX 255
#define DS_MODEL   "mp_rank_00_model_states.pt"
#define DS_Z3MODEL "zero_pp_rank_0_mp_rank_00_model_states.pt"

void ds_zero3_partition(uint64_t numel, uint64_t world, uint64_t *part, uint64_t *pad)
{
    uint64_t rem;

    ERR_ASSERT(world >= 1);
    rem = numel % world;
    *part = numel / world + (rem != 0);
    *pad = rem != 0 ? world - rem : 0;
}

int ds_tag_valid(const char *tag)
{
    size_t n = strlen(tag);

    if (n == 0 || n > DS_TAG_MAX || strcmp(tag, ".") == 0 || strcmp(tag, "..") == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (tag[i] == '/' || (unsigned char)tag[i] < 0x20 || tag[i] == 0x7f)
            return 0;
    return 1;
}

/* Consume literal `lit` at *p. */
static int ds_eat(const char **p, const char *lit)
{
    size_t n = strlen(lit);

    if (strncmp(*p, lit, n) != 0)
        return 0;
    *p += n;
    return 1;
}

/* Consume 1..9 decimal digits at *p into *v. */
static int ds_num(const char **p, unsigned long *v)
{
    size_t k = 0;

    *v = 0;
    while (k < 9 && (*p)[k] >= '0' && (*p)[k] <= '9') {
        *v = *v * 10 + (unsigned long)((*p)[k] - '0');
        k++;
    }
    *p += k;
    return k > 0 && !((**p) >= '0' && (**p) <= '9');
}

/* "_mp_rank_NN_<what>" to the end of the name. */
static int ds_mp_tail(const char *p, const char *what, unsigned long *mp)
{
    return ds_eat(&p, "_mp_rank_") && ds_num(&p, mp) && ds_eat(&p, what) && *p == '\0';
}

void ds_file_classify(const char *name, struct ds_file *out)
{
    const char *p = name;
    unsigned long a = 0, b = 0;

    memset(out, 0, sizeof(*out));
    if (ds_eat(&p, "mp_rank_") && ds_num(&p, &b) && strcmp(p, "_model_states.pt") == 0) {
        out->kind = DS_FILE_MODEL;
        out->mp_rank = b;
        return;
    }
    p = name;
    if (!ds_eat(&p, "bf16_"))
        (void)ds_eat(&p, "fp16_");
    if (ds_eat(&p, "zero_pp_rank_") && ds_num(&p, &a)) {
        if (ds_mp_tail(p, "_model_states.pt", &b))
            out->kind = DS_FILE_ZERO_MODEL;
        else if (ds_mp_tail(p, "_optim_states.pt", &b))
            out->kind = DS_FILE_OPTIM;
        out->dp_rank = out->kind != DS_FILE_OTHER ? a : 0;
        out->mp_rank = out->kind != DS_FILE_OTHER ? b : 0;
        return;
    }
    p = name;
    if (ds_eat(&p, "layer_") && strstr(p, "_expert_") == NULL && strstr(p, "model_states.pt"))
        out->kind = DS_FILE_PIPELINE;
    else if ((strncmp(name, "expp_rank_", 10) == 0 && strstr(name, "_optim_states.pt")) ||
             (strstr(name, "expert_") != NULL && strstr(name, "_model_states.pt")))
        out->kind = DS_FILE_EXPERT;
}

static void ds_optim_free(struct ds__optim_files *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->path[i]);
    free(o->path);
    o->path = NULL;
    o->n = 0;
}

/* Join folder and name into a new string (NULL: out of memory). */
static char *ds_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);

    if (s != NULL)
        (void)snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* Refuse what farmsd does not reconstruct: model parallelism, pipelines, MoE. */
static enum err_code ds_check_kind(const char *dir, const char *name, const struct ds_file *f,
                                   struct err *e)
{
    if (f->kind == DS_FILE_PIPELINE)
        return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                        "%s: pipeline-parallel DeepSpeed checkpoint (%s): convert it with "
                        "ds_to_universal.py or save the model with save_16bit_model()",
                        dir, name);
    if (f->kind == DS_FILE_EXPERT)
        return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                        "%s: mixture-of-experts DeepSpeed checkpoint (%s): convert it with "
                        "ds_to_universal.py",
                        dir, name);
    if (f->kind != DS_FILE_OTHER && f->mp_rank != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                        "%s: tensor/model-parallel DeepSpeed checkpoint (%s, model-parallel rank "
                        "%lu): farmsd reads mp_rank_00 only; merge the ranks with "
                        "ds_to_universal.py first",
                        dir, name, f->mp_rank);
    return ERR_OK;
}

/* Record optimizer file `name` of rank `rank` in `o` (grown to rank + 1 slots). */
static enum err_code ds_optim_add(const struct ckpt *c, struct ds__optim_files *o, const char *dir,
                                  const char *name, unsigned long rank, struct err *e)
{
    if (rank >= c->limits.max_shards)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "%s: optimizer partition rank %lu exceeds the limit of %llu files", dir,
                        rank, (unsigned long long)c->limits.max_shards);
    if (rank >= o->n) {
        char **np = realloc(o->path, (rank + 1) * sizeof(*np));
        if (np == NULL)
            return err_set(e, ERR_NOMEM, "out of memory listing %s", dir);
        for (size_t i = o->n; i <= rank; i++)
            np[i] = NULL;
        o->path = np;
        o->n = rank + 1;
    }
    if (o->path[rank] != NULL)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                        "%s: two optimizer partition files for rank %lu (%s)", dir, rank, name);
    o->path[rank] = ds_join(dir, name);
    if (o->path[rank] == NULL)
        return err_set(e, ERR_NOMEM, "out of memory listing %s", dir);
    return ERR_OK;
}

/* List global_stepN/ folder `dir`: refuse unsupported layouts, collect the
 * optimizer partitions by rank (gaps are left for ZeRO-3 to refuse: ZeRO-0/1/2
 * never reads them), tell whether the ZeRO-0/1/2 or ZeRO-3 model states file
 * is there. */
static enum err_code ds_scan(const struct ckpt *c, const char *dir, struct ds__optim_files *o,
                             int *has_model, int *has_z3, struct err *e)
{
    enum err_code rc = ERR_OK;
    struct dirent *de;
    DIR *d = NULL;

    *has_model = *has_z3 = 0;
    d = opendir(dir);
    if (d == NULL)
        return err_set_errno(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, errno, "open %s", dir);
    for (errno = 0; rc == ERR_OK && (de = readdir(d)) != NULL; errno = 0) {
        struct ds_file f;
        ds_file_classify(de->d_name, &f);
        rc = ds_check_kind(dir, de->d_name, &f, e);
        if (rc)
            break;
        if (f.kind == DS_FILE_MODEL)
            *has_model = 1;
        else if (f.kind == DS_FILE_ZERO_MODEL && f.dp_rank == 0)
            *has_z3 = 1;
        else if (f.kind == DS_FILE_OPTIM)
            rc = ds_optim_add(c, o, dir, de->d_name, f.dp_rank, e);
    }
    if (rc == ERR_OK && errno != 0)
        rc = err_set_errno(e, ERR_IO, errno, "read folder %s", dir);
    closedir(d);
    return rc;
}

/* The tag in `<dir>/latest`, whitespace stripped (zero_to_fp32.py: read().strip()). */
static enum err_code ds_read_latest(const char *latest, char *tag, size_t cap, struct err *e)
{
    enum err_code rc;
    struct rfile f = {.fd = -1};
    size_t n, a = 0;

    rc = rfile_open(latest, &f, e);
    if (rc)
        return rc;
    if (f.size > cap - 2) {
        rfile_close(&f);
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX, "%s: %llu bytes, too long for a tag",
                        latest, (unsigned long long)f.size);
    }
    n = (size_t)f.size;
    rc = rfile_read(&f, 0, n, tag, e);
    rfile_close(&f);
    if (rc)
        return rc;
    tag[n] = '\0';
    while (n > 0 &&
           (tag[n - 1] == ' ' || tag[n - 1] == '\n' || tag[n - 1] == '\r' || tag[n - 1] == '\t'))
        tag[--n] = '\0';
    while (tag[a] == ' ' || tag[a] == '\n' || tag[a] == '\r' || tag[a] == '\t')
        a++;
    memmove(tag, tag + a, n - a + 1);
    if (!ds_tag_valid(tag) || memchr(tag, '\0', n - a) != NULL)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                        "%s: '%.100s' is not a checkpoint tag (one folder name such as "
                        "global_step500)",
                        latest, tag);
    return ERR_OK;
}

/* The global_stepN/ folder to read: `path` itself when it holds a model
 * states file, else the folder `latest` names. *step is a new string. */
static enum err_code ds_resolve(const char *path, char **step, struct err *e)
{
    char tag[DS_TAG_MAX + 2], *latest = NULL, *m = NULL, *z = NULL;
    enum err_code rc = ERR_OK;
    struct stat st;

    *step = NULL;
    latest = ds_join(path, "latest");
    m = ds_join(path, DS_MODEL);
    z = ds_join(path, DS_Z3MODEL);
    if (latest == NULL || m == NULL || z == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory opening %s", path);
        goto out;
    }
    if (stat(m, &st) == 0 || stat(z, &st) == 0) {
        *step = strdup(path);
    } else if (stat(latest, &st) == 0) {
        rc = ds_read_latest(latest, tag, sizeof(tag), e);
        if (rc)
            goto out;
        *step = ds_join(path, tag);
        if (*step != NULL && (stat(*step, &st) != 0 || !S_ISDIR(st.st_mode))) {
            rc = err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_INDEX,
                          "%s names tag '%s', but there is no folder %s", latest, tag, *step);
            goto out;
        }
    } else {
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                      "%s: no " DS_MODEL ", no " DS_Z3MODEL " and no `latest` file", path);
        goto out;
    }
    if (*step == NULL)
        rc = err_set(e, ERR_NOMEM, "out of memory opening %s", path);
out:
    if (rc) {
        free(*step);
        *step = NULL;
    }
    free(latest);
    free(m);
    free(z);
    return rc;
}

enum err_code ds__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    struct ds__optim_files optim = {0};
    char *step = NULL, *file = NULL;
    int has_model = 0, has_z3 = 0;
    enum err_code rc = ERR_OK;
    struct stat st;

    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) { /* a model states file itself */
        rc = tz__ckpt_load(c, path, e);
        goto out;
    }
    rc = ds_resolve(path, &step, e);
    if (rc)
        goto out;
    rc = ds_scan(c, step, &optim, &has_model, &has_z3, e);
    if (rc)
        goto out;
    if (!has_model && !has_z3) {
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_MISSING_RECORD,
                      "%s: no " DS_MODEL " (ZeRO-0/1/2) or " DS_Z3MODEL " (ZeRO-3)", step);
        goto out;
    }
    file = ds_join(step, has_model ? DS_MODEL : DS_Z3MODEL);
    if (file == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory opening %s", step);
        goto out;
    }
    if (has_model)
        rc = tz__ckpt_load(c, file, e); /* `module` is the model prefix */
    else
        rc = ds__z3_load(c, step, file, &optim, e);
out:
    c->format = CKPT_FORMAT_DEEPSPEED;
    ds_optim_free(&optim);
    free(step);
    free(file);
    return rc;
}
