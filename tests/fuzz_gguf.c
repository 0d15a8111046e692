/* fuzz_gguf.c -- libFuzzer target: gguf_parse() on arbitrary bytes.
 *
 * Seed files: every GGUF fixture, good and malformed.
 * seeds: tests/fuzz-seeds/gguf
 * seeds: tests/fixtures/gguf/[a-z]*.gguf
 * seeds: tests/fixtures/gguf/malformed/[a-z]*.gguf
 *
 * On success every tensor must lie inside the input, after the data
 * start, aligned, with its byte size from dtype_nbytes(); tensors of a
 * decoded type (up to 64 Ki elements) are dequantized, so a block decoder
 * reading past its bytes shows up under ASan.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/formats/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ckpt_limits l;
    struct gguf_file g;
    struct rfile f;
    struct err e;

    ckpt_limits_default(&l);
    l.max_header_bytes = 1u << 20;
    rfile_mem(&f, data, size);
    if (gguf_parse(&f, &l, &g, &e) != ERR_OK)
        return 0;
    ERR_ASSERT(g.data_start <= size || g.n_tensors == 0);
    for (size_t i = 0; i < g.n_tensors; i++) {
        const struct gguf_tensor *t = &g.tensors[i];
        uint64_t n = 1, nb = 0;
        double *v;

        ERR_ASSERT(t->offset >= g.data_start && (t->offset - g.data_start) % g.alignment == 0);
        ERR_ASSERT(t->offset <= size && t->nbytes <= size - t->offset);
        for (int d = 0; d < t->n_dims; d++)
            n *= (uint64_t)t->ne[d];
        ERR_ASSERT(dtype_nbytes(t->dtype, n, &nb) == 0 && nb == t->nbytes);
        if (!dtype_is_decodable(t->dtype) || n == 0 || n > (1u << 16))
            continue;
        v = malloc(n * sizeof(*v));
        if (v == NULL)
            continue;
        dtype_to_f64(t->dtype, data + t->offset, n, v);
        free(v);
    }
    gguf_file_free(&g);
    return 0;
}
