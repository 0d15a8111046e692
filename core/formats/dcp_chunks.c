/* dcp_chunks.c -- a tensor entry of the DCP `.metadata` pickle (docs/dcp.md,
 * The .metadata pickle): its size and chunks (ChunkStorageMetadata), each
 * checked to lie inside the tensor, the check that the chunks tile the
 * tensor exactly, and finding a chunk by its offsets for a storage record.
 * dcp_meta.c walks the rest of the pickle. Writes only into the parse state
 * it is given (dcp_int.h), whose dcp_meta owns every chunk; no globals:
 * thread-safe as dcp.h.
 */
#include "core/formats/dcp.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/dcp_int.h"
#include "core/formats/pickle.h"

/* One ChunkStorageMetadata of entry `en`, appended to the chunk table. */
static enum err_code dcp_add_chunk(struct dcp_parse *p, const struct dcp_entry *en,
                                   const struct pkl_value *cv)
{
    struct dcp_meta *m = p->m;
    struct dcp_chunk *ch;
    enum err_code rc;
    int no, ns;

    if (!dcp__is(cv, DCP_MOD, "ChunkStorageMetadata"))
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                        "DCP entry '%.200s': a chunk is not a ChunkStorageMetadata", en->fqn);
    if (m->n_chunks >= p->lim->max_tensors)
        return err_setc(p->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "more than %llu DCP chunks",
                        (unsigned long long)p->lim->max_tensors);
    rc = dcp__grow((void **)&m->chunks, &p->cap_chunks, m->n_chunks, sizeof(*m->chunks), p->e);
    if (rc)
        return rc;
    ch = &m->chunks[m->n_chunks];
    memset(ch, 0, sizeof(*ch));
    ch->file = SIZE_MAX; /* until storage_data places it */
    no = dcp__ints(dcp__field(cv, "offsets"), ch->offsets);
    ns = dcp__ints(dcp__field(cv, "sizes"), ch->sizes);
    if (no != en->ndim || ns != en->ndim)
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_OFFSETS,
                        "DCP entry '%.200s': chunk offsets/sizes are not %d ints", en->fqn,
                        en->ndim);
    ch->n_elems = 1;
    for (int d = 0; d < en->ndim; d++) {
        if (ch->offsets[d] < 0 || ch->sizes[d] < 0 || ch->offsets[d] > en->size[d] ||
            ch->sizes[d] > en->size[d] - ch->offsets[d])
            return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_OFFSETS,
                            "DCP entry '%.200s': chunk %zu (dim %d: offset %lld, size %lld) lies "
                            "outside the tensor (%lld)",
                            en->fqn, m->n_chunks - en->first_chunk, d, (long long)ch->offsets[d],
                            (long long)ch->sizes[d], (long long)en->size[d]);
        ch->n_elems *= (uint64_t)ch->sizes[d]; /* <= the tensor's count: no overflow */
    }
    m->n_chunks++;
    return ERR_OK;
}

/* 1 if chunks a and b share an element (both non-empty). */
static int dcp_overlap(const struct dcp_chunk *a, const struct dcp_chunk *b, int ndim)
{
    for (int d = 0; d < ndim; d++)
        if (a->offsets[d] >= b->offsets[d] + b->sizes[d] ||
            b->offsets[d] >= a->offsets[d] + a->sizes[d])
            return 0;
    return 1;
}

struct dcp_order {
    int64_t off0;
    size_t i;
};

static int dcp_order_cmp(const void *x, const void *y)
{
    const struct dcp_order *a = x, *b = y;

    return a->off0 < b->off0 ? -1 : a->off0 > b->off0;
}

/* The chunks of `en` tile it exactly: their element counts add up to the
 * tensor's and no two overlap (sweep in order of the first dim's offset). */
static enum err_code dcp_check_tiling(struct dcp_parse *p, const struct dcp_entry *en,
                                      uint64_t n_elems)
{
    const struct dcp_chunk *ch = &p->m->chunks[en->first_chunk];
    struct dcp_order *ord = NULL;
    uint64_t sum = 0;
    int over = 0;
    enum err_code rc = ERR_OK;

    for (size_t i = 0; i < en->n_chunks && !over; i++) {
        over = ch[i].n_elems > n_elems - sum; /* checked before adding: never wraps */
        sum += over ? 0 : ch[i].n_elems;
    }
    if (over || sum != n_elems)
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_OFFSETS,
                        "DCP entry '%.200s': its chunks hold %s%llu elements, the tensor %llu",
                        en->fqn, over ? "more than " : "", (unsigned long long)sum,
                        (unsigned long long)n_elems);
    if (en->ndim == 0 || en->n_chunks < 2)
        return ERR_OK;
    ord = malloc(en->n_chunks * sizeof(*ord));
    if (ord == NULL)
        return err_set(p->e, ERR_NOMEM, "out of memory checking DCP chunks");
    for (size_t i = 0; i < en->n_chunks; i++)
        ord[i] = (struct dcp_order){ch[i].offsets[0], i};
    qsort(ord, en->n_chunks, sizeof(*ord), dcp_order_cmp);
    for (size_t i = 0; i < en->n_chunks && !rc; i++) {
        const struct dcp_chunk *a = &ch[ord[i].i];
        for (size_t j = i + 1; j < en->n_chunks && !rc; j++) {
            const struct dcp_chunk *b = &ch[ord[j].i];
            if (b->offsets[0] >= a->offsets[0] + a->sizes[0])
                break;
            if (++p->work > DCP_WORK)
                rc = err_setc(p->e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                              "DCP chunks take too many comparisons to check");
            else if (a->n_elems && b->n_elems && dcp_overlap(a, b, en->ndim))
                rc = err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_OFFSETS,
                              "DCP entry '%.200s': chunks %zu and %zu overlap", en->fqn, ord[i].i,
                              ord[j].i);
        }
    }
    free(ord);
    return rc;
}

/* A TensorStorageMetadata: dtype, size, chunks (checked to tile it). */
enum err_code dcp__tensor_entry(struct dcp_parse *p, struct dcp_entry *en,
                                const struct pkl_value *v)
{
    const struct pkl_value *chunks = dcp__field(v, "chunks");
    uint64_t n = 1;
    enum err_code rc;

    rc = dcp__dtype(p, en->fqn, dcp__field(v, "properties"), &en->dtype);
    if (rc)
        return rc;
    en->ndim = dcp__ints(dcp__field(v, "size"), en->size);
    if (en->ndim < 0 || chunks == NULL || chunks->kind != PKL_LIST)
        return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                        "DCP entry '%.200s': size must be a torch.Size of at most %d ints and "
                        "chunks a list",
                        en->fqn, CKPT_MAX_RANK);
    for (int d = 0; d < en->ndim; d++) {
        if (en->size[d] < 0)
            return err_setc(p->e, ERR_FORMAT, ERR_CAT_INVALID_HEADER,
                            "DCP entry '%.200s': negative dimension", en->fqn);
        if (en->size[d] != 0 && n > UINT64_MAX / (uint64_t)en->size[d])
            return err_setc(p->e, ERR_FORMAT, ERR_CAT_OVERFLOW,
                            "DCP entry '%.200s': element count overflows 64 bits", en->fqn);
        n *= (uint64_t)en->size[d];
    }
    en->first_chunk = p->m->n_chunks;
    for (size_t i = 0; i < chunks->n_items; i++) {
        rc = dcp_add_chunk(p, en, chunks->items[i]);
        if (rc)
            return rc;
        en->n_chunks++;
    }
    return dcp_check_tiling(p, en, n);
}

/* The chunk of `en` starting at `off` (rank en->ndim): the index hint first. */
struct dcp_chunk *dcp__chunk_at(struct dcp_parse *p, const struct dcp_entry *en, const int64_t *off,
                                const struct pkl_value *hint)
{
    struct dcp_chunk *ch = &p->m->chunks[en->first_chunk];
    size_t nb = (size_t)en->ndim * sizeof(*off);

    if (hint != NULL && hint->kind == PKL_INT && hint->i >= 0 && (uint64_t)hint->i < en->n_chunks &&
        memcmp(ch[hint->i].offsets, off, nb) == 0)
        return &ch[hint->i];
    for (size_t i = 0; i < en->n_chunks && ++p->work <= DCP_WORK; i++)
        if (memcmp(ch[i].offsets, off, nb) == 0)
            return &ch[i];
    return NULL;
}
