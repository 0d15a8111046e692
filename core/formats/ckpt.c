/* ckpt.c -- format sniffing, dispatch to the format loaders, tensor table. */
#include "core/formats/ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/formats/ckpt_int.h"
#include "core/formats/rfile.h"

#define CKPT_SNIFF_LEN 512

void ckpt_limits_default(struct ckpt_limits *l)
{
    l->max_header_bytes = 16u << 20;
    l->max_tensors = 1u << 20;
    l->max_tensor_bytes = (uint64_t)16 << 30;
    l->max_zip_members = 1u << 20;
    l->max_pickle_bytes = 64u << 20;
    l->max_pickle_stack = 100000;
    l->max_pickle_marks = 1000;
    l->max_pickle_memo = 4u << 20;
    l->max_pickle_mem = 256u << 20; /* real data.pkl need well under 1% of it: README */
    l->max_shards = 10000;
    l->strict = 0;
}

void ckpt_buf_free(struct ckpt_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->cap = 0;
}

const char *ckpt_format_name(enum ckpt_format f)
{
    switch (f) {
    case CKPT_FORMAT_SAFETENSORS: return "safetensors";
    case CKPT_FORMAT_SAFETENSORS_INDEX: return "safetensors_index";
    case CKPT_FORMAT_TORCH_ZIP: return "torch_zip";
    case CKPT_FORMAT_NPY: return "npy";
    case CKPT_FORMAT_NPZ: return "npz";
    case CKPT_FORMAT_GGUF: return "gguf";
    case CKPT_FORMAT_DCP: return "dcp";
    case CKPT_FORMAT_DEEPSPEED: return "deepspeed";
    case CKPT_FORMAT_PEFT: return "peft";
    case CKPT_FORMAT_UNKNOWN: break;
    }
    return "unknown";
}

static uint64_t ckpt_le64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int ckpt_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The safetensors rule of format detection (docs/checkpoint-formats.md): a
 * plausible safetensors header length followed by '{'. */
static int ckpt_looks_safetensors(const unsigned char *head, size_t head_len, uint64_t size)
{
    uint64_t n;

    if (head_len < 8)
        return 0;
    n = ckpt_le64(head);
    if (n > 100000000 || 8 + n > size)
        return 0;
    for (size_t i = 8; i < head_len && i < 8 + n; i++) {
        unsigned char ch = head[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
            continue;
        return ch == '{';
    }
    return 0;
}

/* 1 if the tar header `head` (512 bytes) starts a legacy torch.save tar,
 * whose first member is one of its four records. */
static int ckpt_legacy_tar(const unsigned char *head)
{
    static const char *const first[] = {"sys_info", "pickle", "storages", "tensors"};

    for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++)
        if (strncmp((const char *)head, first[i], 100) == 0)
            return 1;
    return 0;
}

enum err_code ckpt_sniff(const unsigned char *head, size_t head_len, uint64_t file_size,
                         const char *name, enum ckpt_format *out, struct err *e)
{
    static const unsigned char legacy[] = {0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C,
                                           0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19};

    *out = CKPT_FORMAT_UNKNOWN;
    if (file_size == 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_EMPTY_FILE, "the file is empty (0 bytes)");
    if (head_len >= 4 && memcmp(head, "PK\3\4", 4) == 0) {
        *out = CKPT_FORMAT_TORCH_ZIP; /* the zip reader tells torch from npz */
        return ERR_OK;
    }
    if (head_len >= 4 && memcmp(head, "GGUF", 4) == 0) {
        *out = CKPT_FORMAT_GGUF;
        return ERR_OK;
    }
    if (head_len >= 6 && memcmp(head, "\x93NUMPY", 6) == 0) {
        *out = CKPT_FORMAT_NPY;
        return ERR_OK;
    }
    if (head_len >= 262 && memcmp(head + 257, "ustar", 5) == 0 && !ckpt_legacy_tar(head))
        return err_setc(e, ERR_FORMAT, ERR_CAT_LEGACY_TORCH_FORMAT,
                        "a tar archive, not a checkpoint file: name the extracted folder "
                        "instead, or upload the tar to the service as Content-Type "
                        "application/x-tar (docs/tar.md)");
    if ((head_len >= sizeof(legacy) && memcmp(head, legacy, sizeof(legacy)) == 0) ||
        (head_len >= 8 && memcmp(head, "PYTORCH1", 8) == 0) ||
        (head_len >= 262 && memcmp(head + 257, "ustar", 5) == 0))
        return err_setc(e, ERR_FORMAT, ERR_CAT_LEGACY_TORCH_FORMAT,
                        "legacy torch.save format (torch < 1.6 or "
                        "_use_new_zipfile_serialization=False): re-save with a current torch "
                        "(torch.save(model.state_dict())) or convert to safetensors");
    if (name != NULL && ckpt_ends_with(name, ".index.json")) {
        *out = CKPT_FORMAT_SAFETENSORS_INDEX;
        return ERR_OK;
    }
    if (ckpt_looks_safetensors(head, head_len, file_size)) {
        *out = CKPT_FORMAT_SAFETENSORS;
        return ERR_OK;
    }
    if (head_len >= 2 && head[0] == 0x80 && head[1] <= 5)
        return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                        "a bare pickle, not a torch.save zip archive: re-save with "
                        "torch.save(model.state_dict()) or convert to safetensors");
    return err_setc(e, ERR_FORMAT, ERR_CAT_UNKNOWN_FORMAT,
                    "not a checkpoint: no safetensors, torch zip, npy or npz structure found");
}

/* 1 if folder `dirfd` holds an entry called `name` (any type). */
static int ckpt_dir_has(int dirfd, const char *name)
{
    struct stat st;

    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

enum ckpt_format ckpt_sniff_dir(int dirfd)
{
    if (ckpt_dir_has(dirfd, ".metadata"))
        return CKPT_FORMAT_DCP;
    if (ckpt_dir_has(dirfd, "adapter_config.json"))
        return CKPT_FORMAT_PEFT;
    if (ckpt_dir_has(dirfd, "mp_rank_00_model_states.pt") ||
        ckpt_dir_has(dirfd, "zero_pp_rank_0_mp_rank_00_model_states.pt") ||
        ckpt_dir_has(dirfd, "latest"))
        return CKPT_FORMAT_DEEPSPEED;
    return CKPT_FORMAT_SAFETENSORS_INDEX;
}

/* 1 if `path` is named adapter_model.* (a PEFT adapter's weights) and has an
 * adapter_config.json beside it: the file is read as the adapter (docs/peft.md). */
static int ckpt_is_adapter_file(const char *path)
{
    const char *slash = strrchr(path, '/'), *base = slash != NULL ? slash + 1 : path;
    size_t dir_len = slash != NULL ? (size_t)(slash - path) + 1 : 0;
    char cfg[4096];
    struct stat st;

    if (strncmp(base, "adapter_model.", 14) != 0 || dir_len + 20 > sizeof(cfg))
        return 0;
    memcpy(cfg, path, dir_len);
    memcpy(cfg + dir_len, "adapter_config.json", 20);
    return stat(cfg, &st) == 0 && S_ISREG(st.st_mode);
}

/* Read the first bytes of `path` and sniff them; folders by their entries. */
static enum err_code ckpt_sniff_path(const char *path, enum ckpt_format *out, struct err *e)
{
    enum err_code rc = ERR_OK;
    unsigned char head[CKPT_SNIFF_LEN];
    struct stat st;
    ssize_t got;
    int fd = -1;

    /* The open does not block on a FIFO; it is refused below. */
    rc = rfile_open_stat(path, &fd, &st, e);
    if (rc)
        goto out;
    if (S_ISDIR(st.st_mode)) {
        *out = ckpt_sniff_dir(fd);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_NOT_REGULAR_FILE, "%s is not a regular file", path);
        goto out;
    }
    do
        got = pread(fd, head, sizeof(head), 0);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
        rc = err_set_errno(e, ERR_IO, errno, "read %s", path);
        goto out;
    }
    rc = ckpt_sniff(head, (size_t)got, (uint64_t)st.st_size, path, out, e);
    if (rc == ERR_OK && ckpt_is_adapter_file(path))
        *out = CKPT_FORMAT_PEFT;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

enum err_code ckpt_open(const char *path, enum ckpt_format declared,
                        const struct ckpt_limits *limits, struct ckpt **out, struct err *e)
{
    enum err_code rc = ERR_OK;
    enum ckpt_format fmt = declared;
    struct ckpt *c = NULL;

    *out = NULL;
    if (fmt == CKPT_FORMAT_UNKNOWN) {
        rc = ckpt_sniff_path(path, &fmt, e);
        if (rc)
            goto out;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        rc = err_set(e, ERR_NOMEM, "out of memory opening %s", path);
        goto out;
    }
    c->format = fmt;
    if (limits != NULL)
        c->limits = *limits;
    else
        ckpt_limits_default(&c->limits);
    switch (fmt) {
    case CKPT_FORMAT_SAFETENSORS: rc = st__ckpt_load(c, path, e); break;
    case CKPT_FORMAT_SAFETENSORS_INDEX: rc = shards__ckpt_load(c, path, e); break;
    case CKPT_FORMAT_TORCH_ZIP: rc = tz__ckpt_load(c, path, e); break;
    case CKPT_FORMAT_NPY: rc = npy__ckpt_load(c, path, e); break;
    case CKPT_FORMAT_NPZ: rc = npz__ckpt_load(c, path, e); break;
    case CKPT_FORMAT_GGUF: rc = gguf__ckpt_load(c, path, e); break;
    case CKPT_FORMAT_DCP: rc = dcp__ckpt_load(c, path, e); break;
    case CKPT_FORMAT_DEEPSPEED: rc = ds__ckpt_load(c, path, e); break;
    case CKPT_FORMAT_PEFT: rc = peft__ckpt_load(c, path, e); break;
    case CKPT_FORMAT_UNKNOWN:
        rc = err_setc(e, ERR_FORMAT, ERR_CAT_UNKNOWN_FORMAT, "unknown format");
    }
    if (rc)
        goto out;
    *out = c;
    c = NULL;
out:
    ckpt_close(c);
    return rc;
}

void ckpt_close(struct ckpt *c)
{
    if (c == NULL)
        return;
    if (c->ops != NULL && c->ops->free_impl != NULL)
        c->ops->free_impl(c->impl);
    for (size_t i = 0; i < c->n_tensors; i++)
        free((char *)(uintptr_t)c->tensors[i].name);
    free(c->tensors);
    free(c->model_prefix);
    free(c);
}

enum ckpt_format ckpt_format_of(const struct ckpt *c)
{
    return c->format;
}

const char *ckpt_model_prefix(const struct ckpt *c)
{
    return c->model_prefix != NULL ? c->model_prefix : "";
}

size_t ckpt_n_tensors(const struct ckpt *c)
{
    return c->n_tensors;
}

const struct ckpt_tensor *ckpt_tensor_at(const struct ckpt *c, size_t i)
{
    ERR_ASSERT(i < c->n_tensors);
    return &c->tensors[i];
}

enum err_code ckpt_tensor_read(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                               const void **data, struct err *e)
{
    enum err_code rc;

    *data = NULL;
    ERR_ASSERT(i < c->n_tensors && c->ops != NULL);
    if (c->tensors[i].nbytes > c->limits.max_tensor_bytes)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "tensor '%s': %llu bytes exceed the limit of %llu", c->tensors[i].name,
                        (unsigned long long)c->tensors[i].nbytes,
                        (unsigned long long)c->limits.max_tensor_bytes);
    rc = c->ops->read(c, i, buf, data, e);
    if (rc)
        *data = NULL;
    else
        ERR_ASSERT(*data == buf->data && buf->data != NULL);
    return rc;
}

/* Check the rank and shape of `in` and compute its element count and byte
 * size (dtype_nbytes: whole ggml blocks), guarding both against u64 overflow. */
static enum err_code ckpt_entry_size(const struct ckpt__entry *in, uint64_t *n_elems,
                                     uint64_t *nbytes, struct err *e)
{
    int name_len = (int)(in->name_len > 200 ? 200 : in->name_len);
    uint64_t n = 1;

    if (in->ndim < 0 || in->ndim > CKPT_MAX_RANK)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "tensor '%.*s': rank %d exceeds %d",
                        name_len, in->name, in->ndim, CKPT_MAX_RANK);
    for (int d = 0; d < in->ndim; d++) {
        if (in->shape[d] < 0)
            return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                            "tensor '%.*s': negative dimension", name_len, in->name);
        if (in->shape[d] != 0 && n > UINT64_MAX / (uint64_t)in->shape[d])
            return err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW,
                            "tensor '%.*s': element count overflows 64 bits", name_len, in->name);
        n *= (uint64_t)in->shape[d];
    }
    switch (dtype_nbytes(in->dtype, n, nbytes)) {
    case -1:
        return err_setc(e, ERR_FORMAT, ERR_CAT_OVERFLOW,
                        "tensor '%.*s': byte size overflows 64 bits", name_len, in->name);
    case -2:
        return err_setc(e, ERR_FORMAT, ERR_CAT_SHAPE_MISMATCH,
                        "tensor '%.*s': %llu elements are not whole %s blocks", name_len, in->name,
                        (unsigned long long)n, dtype_name(in->dtype));
    default: break;
    }
    *n_elems = n;
    return ERR_OK;
}

enum err_code ckpt__tensor_add(struct ckpt *c, const struct ckpt__entry *in,
                               struct ckpt_tensor **out, struct err *e)
{
    struct ckpt_tensor *t;
    uint64_t n = 0, nbytes = 0;
    enum err_code rc;
    char *copy;

    if (out != NULL)
        *out = NULL;
    rc = ckpt_entry_size(in, &n, &nbytes, e);
    if (rc)
        return rc;
    if (c->n_tensors >= c->limits.max_tensors)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "more than %llu tensors",
                        (unsigned long long)c->limits.max_tensors);
    if (c->n_tensors == c->cap_tensors) {
        size_t cap = c->cap_tensors ? 2 * c->cap_tensors : 64;
        struct ckpt_tensor *nt = realloc(c->tensors, cap * sizeof(*nt));
        if (nt == NULL)
            return err_set(e, ERR_NOMEM, "out of memory listing tensors");
        c->tensors = nt;
        c->cap_tensors = cap;
    }
    copy = malloc(in->name_len + 1);
    if (copy == NULL)
        return err_set(e, ERR_NOMEM, "out of memory listing tensors");
    memcpy(copy, in->name, in->name_len);
    copy[in->name_len] = '\0';
    t = &c->tensors[c->n_tensors++];
    memset(t, 0, sizeof(*t));
    t->name = copy;
    t->dtype = in->dtype;
    t->ndim = in->ndim;
    for (int d = 0; d < in->ndim; d++)
        t->shape[d] = in->shape[d];
    t->n_elems = n;
    t->nbytes = nbytes;
    t->alias_of = -1;
    t->in_model = 1;
    if (out != NULL)
        *out = t;
    return ERR_OK;
}

enum err_code ckpt__buf_reserve(const struct ckpt *c, struct ckpt_buf *b, uint64_t n, struct err *e)
{
    void *p;

    if (n > c->limits.max_tensor_bytes)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                        "%llu bytes exceed the limit of %llu", (unsigned long long)n,
                        (unsigned long long)c->limits.max_tensor_bytes);
    if (n <= b->cap)
        return ERR_OK;
    p = realloc(b->data, (size_t)n);
    if (p == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for %llu bytes", (unsigned long long)n);
    b->data = p;
    b->cap = (size_t)n;
    return ERR_OK;
}

enum err_code ckpt__read_into(const struct ckpt *c, const struct ckpt__extent *x,
                              struct ckpt_buf *b, const void **data, struct err *e)
{
    enum err_code rc;

    *data = NULL;
    rc = ckpt__buf_reserve(c, b, x->n ? x->n : 1, e);
    if (rc == ERR_OK)
        rc = rfile_read(x->f, x->off, x->n, b->data, e);
    if (rc == ERR_OK)
        *data = b->data;
    return rc;
}
