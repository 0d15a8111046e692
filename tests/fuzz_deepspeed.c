/* fuzz_deepspeed.c -- libFuzzer target for the DeepSpeed folder reader: the
 * input is a small folder, written to a private temporary folder and opened
 * with ckpt_open(); every tensor is then read. It reaches `latest`, the
 * model states and optimizer pickles, the ZeRO-3 partition metadata
 * (partition_count, param_shapes, fp32_flat_groups, shared_params) and the
 * reconstruction reads.
 *
 * Input: records of (1 byte: file index, 4 bytes little-endian: length,
 * bytes), the file index naming one of ds_fuzz_names (modulo its count);
 * gen_deepspeed.py writes the seeds from its fixtures in this format.
 * seeds: tests/fuzz-seeds/deepspeed
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/formats/ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ds_fuzz_names[] = {
    "latest",
    "global_step7/zero_pp_rank_0_mp_rank_00_model_states.pt",
    "global_step7/zero_pp_rank_1_mp_rank_00_model_states.pt",
    "global_step7/zero_pp_rank_0_mp_rank_00_optim_states.pt",
    "global_step7/zero_pp_rank_1_mp_rank_00_optim_states.pt",
    "global_step7/mp_rank_00_model_states.pt",
    "global_step7/bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt",
    "global_step7/bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt",
};
#define DS_FUZZ_N (sizeof(ds_fuzz_names) / sizeof(ds_fuzz_names[0]))

static char ds_fuzz_dir[64];

/* Remove the files of the previous input (the folders stay). */
static void ds_fuzz_clean(void)
{
    char path[160];

    for (size_t i = 0; i < DS_FUZZ_N; i++) {
        (void)snprintf(path, sizeof(path), "%s/%s", ds_fuzz_dir, ds_fuzz_names[i]);
        (void)unlink(path);
    }
}

/* At exit: the files, then the two folders. */
static void ds_fuzz_remove(void)
{
    char path[160];

    ds_fuzz_clean();
    (void)snprintf(path, sizeof(path), "%s/global_step7", ds_fuzz_dir);
    (void)rmdir(path);
    (void)rmdir(ds_fuzz_dir);
}

static void ds_fuzz_write(size_t idx, const uint8_t *p, size_t n)
{
    char path[160];
    FILE *f;

    (void)snprintf(path, sizeof(path), "%s/%s", ds_fuzz_dir, ds_fuzz_names[idx]);
    f = fopen(path, "ab"); /* a name given twice gets both parts */
    if (f == NULL)
        abort();
    if (n > 0 && fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ckpt_limits lim;
    struct ckpt_buf buf = {0};
    struct ckpt *c = NULL;
    char step[96];
    struct err e;
    size_t at = 0;

    if (ds_fuzz_dir[0] == '\0') {
        (void)snprintf(ds_fuzz_dir, sizeof(ds_fuzz_dir), "/tmp/fuzz_deepspeed.XXXXXX");
        if (mkdtemp(ds_fuzz_dir) == NULL)
            abort();
        (void)snprintf(step, sizeof(step), "%s/global_step7", ds_fuzz_dir);
        if (mkdir(step, 0700) != 0)
            abort();
        (void)atexit(ds_fuzz_remove);
    }
    ds_fuzz_clean();
    while (size - at >= 5) {
        size_t idx = data[at] % DS_FUZZ_N;
        uint32_t n = (uint32_t)data[at + 1] | (uint32_t)data[at + 2] << 8 |
                     (uint32_t)data[at + 3] << 16 | (uint32_t)data[at + 4] << 24;
        at += 5;
        if (n > size - at)
            n = (uint32_t)(size - at);
        ds_fuzz_write(idx, data + at, n);
        at += n;
    }
    ckpt_limits_default(&lim);
    lim.max_tensor_bytes = 1 << 20;
    lim.max_pickle_bytes = 1 << 20;
    lim.max_pickle_mem = 8 << 20;
    lim.max_zip_members = 4096;
    lim.max_shards = 64;
    if (ckpt_open(ds_fuzz_dir, CKPT_FORMAT_UNKNOWN, &lim, &c, &e) == ERR_OK) {
        for (size_t i = 0; i < ckpt_n_tensors(c); i++) {
            const void *d = NULL;
            const struct ckpt_tensor *t = ckpt_tensor_at(c, i);
            if (ckpt_tensor_read(c, i, &buf, &d, &e) == ERR_OK && t->nbytes > 0 &&
                (((const unsigned char *)d)[0] ^ ((const unsigned char *)d)[t->nbytes - 1]) ==
                    0x100)
                abort(); /* touch first and last byte: out of range reads trip ASan */
        }
    }
    ckpt_close(c);
    ckpt_buf_free(&buf);
    return 0;
}
