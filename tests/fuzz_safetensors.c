/* fuzz_safetensors.c -- libFuzzer target: st_parse() on arbitrary bytes.
 *
 * Seed files: every safetensors fixture, good and malformed.
 * seeds: tests/fixtures/checkpoints/[a-z]*[a-z]/[a-z]*.safetensors
 * seeds: tests/fixtures/checkpoints/llama/sharded/[a-z]*.safetensors
 * seeds: tests/fixtures/numerics/tiny_*.safetensors
 *
 * On success every tensor is looked up by name and its bytes touched, so a
 * data pointer or length outside the input shows up under ASan.
 */
#include <stddef.h>
#include <stdint.h>

#include "core/formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ckpt_limits l;
    struct st_file *f = NULL;
    struct err e;
    const char *k, *v;
    unsigned sum = 0;

    ckpt_limits_default(&l);
    l.max_header_bytes = 1u << 20;
    if (st_parse(data, size, &l, &f, &e) != ERR_OK)
        return 0;
    for (size_t i = 0; i < st_n_tensors(f); i++) {
        const struct st_tensor *t = st_tensor_at(f, i);
        ERR_ASSERT(st_tensor_find(f, t->name, t->name_len) == t);
        ERR_ASSERT(t->data >= data && t->data + (t->end - t->begin) <= data + size);
        if (t->end > t->begin)
            sum += t->data[0] + t->data[t->end - t->begin - 1];
    }
    for (size_t i = 0; i < st_n_metadata(f); i++) {
        st_metadata_at(f, i, &k, &v);
        ERR_ASSERT(st_metadata_get(f, k) != NULL);
    }
    st_free(f);
    return (int)(sum & 0);
}
