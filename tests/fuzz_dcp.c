/* fuzz_dcp.c -- libFuzzer target for the PyTorch Distributed Checkpoint
 * `.metadata` reader: dcp_meta_parse() on arbitrary bytes, strict and
 * lenient, with small limits, then checks of what a successful parse
 * promises the loader (docs/dcp.md): every chunk inside its tensor and
 * placed in a known file, the chunks of each tensor adding up to it, file
 * names without '/'. Every refusal carries a category.
 * seeds: tests/fuzz-seeds/dcp
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/dcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* abort() unless `m` keeps the promises of dcp.h. */
static void fuzz_check(const struct dcp_meta *m)
{
    for (size_t i = 0; i < m->n_files; i++)
        if (m->files[i][0] == '\0' || strchr(m->files[i], '/') != NULL)
            abort();
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct dcp_entry *en = &m->entries[i];
        uint64_t n = 1, sum = 0;
        if (en->is_bytes)
            continue;
        if (en->ndim < 0 || en->ndim > CKPT_MAX_RANK ||
            en->first_chunk + en->n_chunks > m->n_chunks)
            abort();
        for (int d = 0; d < en->ndim; d++)
            n *= (uint64_t)en->size[d];
        for (size_t k = 0; k < en->n_chunks; k++) {
            const struct dcp_chunk *ch = &m->chunks[en->first_chunk + k];
            if (ch->file >= m->n_files)
                abort();
            for (int d = 0; d < en->ndim; d++)
                if (ch->offsets[d] < 0 || ch->sizes[d] < 0 ||
                    ch->offsets[d] + ch->sizes[d] > en->size[d])
                    abort();
            sum += ch->n_elems;
        }
        if (sum != n)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int strict = 0; strict <= 1; strict++) {
        struct ckpt_limits lim;
        struct dcp_meta *m = NULL;
        struct err e;
        enum err_code rc;
        ckpt_limits_default(&lim);
        lim.strict = strict;
        lim.max_pickle_stack = 1000;
        lim.max_pickle_marks = 100;
        lim.max_pickle_memo = 1000;
        lim.max_tensors = 1000;
        lim.max_shards = 64;
        lim.max_pickle_mem = 1u << 20;
        rc = dcp_meta_parse(data, size, &lim, &m, &e);
        if (rc == ERR_OK) {
            fuzz_check(m);
            dcp_meta_free(m);
        } else if (e.category == ERR_CAT_NONE && e.code != ERR_NOMEM) {
            abort(); /* every refusal carries a category */
        }
    }
    return 0;
}
