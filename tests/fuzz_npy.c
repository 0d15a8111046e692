/* fuzz_npy.c -- libFuzzer target: npy_parse() on arbitrary bytes.
 *
 * Seed files: every npy fixture, good and malformed.
 * seeds: tests/fixtures/checkpoints/[a-z]*[a-z]/[a-z]*.npy
 *
 * Arrays that parse (up to 1 MiB) are also materialised to C order, so the
 * Fortran-order and byte-swap paths run on every shape the fuzzer finds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/formats/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct npy_info a;
    struct err e;
    unsigned char *out;

    if (npy_parse(data, size, NULL, &a, &e) != ERR_OK)
        return 0;
    ERR_ASSERT(a.data >= data && a.nbytes <= (uint64_t)(data + size - a.data));
    if (a.nbytes > (1u << 20))
        return 0;
    out = malloc(a.nbytes ? (size_t)a.nbytes : 1);
    if (out == NULL)
        return 0;
    npy_to_c_le(&a, out);
    free(out);
    return 0;
}
