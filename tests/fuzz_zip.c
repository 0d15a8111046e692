/* fuzz_zip.c -- libFuzzer target for the zip layer: zip_parse() on arbitrary
 * bytes, then every member read (stored pointer, bounded inflation, CRC).
 * seeds: tests/fixtures/checkpoints/mlp tests/fixtures/checkpoints/special tests/fixtures/checkpoints/malformed
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/formats/zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct zip_archive *z = NULL;
    struct err e;

    if (zip_parse(data, size, 4096, &z, &e) != ERR_OK)
        return 0;
    for (size_t i = 0; i < zip_n_members(z); i++) {
        const struct zip_member *m = zip_member_at(z, i);
        const unsigned char *bytes = NULL;
        unsigned char *owned = NULL;
        if (zip_find(z, m->name) == NULL)
            abort(); /* every listed member must be found by name */
        if (zip_member_read(z, m, &(struct zip_read_opts){.limit = 1 << 20, .verify_crc = 1},
                            &bytes, &owned, &e) == ERR_OK &&
            m->usize > 0 && (bytes[0] ^ bytes[m->usize - 1]) == 0x100)
            abort(); /* touch first and last byte: out of range reads trip ASan */
        free(owned);
    }
    zip_free(z);
    return 0;
}
