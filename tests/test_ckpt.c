/* test_ckpt.c -- the checkpoint front end: tensors are copied into the
 * caller's buffer, never left pointing into the file, and walking a
 * checkpoint much larger than one tensor keeps about one tensor resident. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/formats/ckpt.h"
#include "core/formats/st_write.h"
#include "core/formats/thash.h"
#include "tests/check.h"

#define N_TENSORS 8
#define N_FLOATS  (2u << 20) /* 8 MiB of F32 per tensor, 64 MiB in the file */

static long resident_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

/* A safetensors file of N_TENSORS F32 tensors "w0".."w7"; element j of
 * tensor k is k * 1000 + j % 1000. */
static int write_fixture(const char *path)
{
    struct st_wtensor t[N_TENSORS];
    char names[N_TENSORS][16];
    struct st_writer *w = NULL;
    float *v = malloc(N_FLOATS * sizeof(float));
    int ok = v != NULL;

    for (int k = 0; k < N_TENSORS; k++) {
        snprintf(names[k], sizeof(names[k]), "w%d", k);
        memset(&t[k], 0, sizeof(t[k]));
        t[k].name = names[k];
        t[k].dtype = DTYPE_F32;
        t[k].ndim = 1;
        t[k].shape[0] = N_FLOATS;
    }
    ok = ok && st_writer_open(path, t, N_TENSORS, &w, NULL) == ERR_OK;
    for (int k = 0; ok && k < N_TENSORS; k++) {
        for (uint32_t j = 0; j < N_FLOATS; j++)
            v[j] = (float)(k * 1000 + (int)(j % 1000));
        ok = st_writer_write(w, v, N_FLOATS * sizeof(float), NULL) == ERR_OK;
    }
    if (ok)
        ok = st_writer_close(w, NULL) == ERR_OK;
    else
        st_writer_abort(w);
    free(v);
    return ok;
}

/* Every tensor lands in the caller's buffer with the file's values, and the
 * resident set never grows by much more than that one buffer: the file's 64
 * MiB are not kept (no mapping). */
static void test_walk_keeps_one_tensor_resident(void)
{
    char dir[] = "/tmp/farmsd-ckpt-XXXXXX", path[64];
    struct ckpt_buf buf = {0};
    struct ckpt *c = NULL;
    long before, peak = 0;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/w.safetensors", dir);
    CHECK(write_fixture(path));
    CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, NULL), ERR_OK);
    if (c == NULL)
        goto out;
    CHECK_EQ_INT(ckpt_n_tensors(c), N_TENSORS);
    before = resident_kib();
    for (size_t k = 0; k < ckpt_n_tensors(c); k++) {
        const void *data = NULL;
        float x[2];
        long now;
        CHECK_EQ_INT(ckpt_tensor_read(c, k, &buf, &data, NULL), ERR_OK);
        CHECK(data != NULL && data == buf.data); /* always the caller's buffer */
        if (data == NULL)
            continue;
        memcpy(&x[0], data, sizeof(float));
        memcpy(&x[1], (const char *)data + 1999 * sizeof(float), sizeof(float));
        CHECK(x[0] == (float)(k * 1000) && x[1] == (float)(k * 1000 + 999));
        now = resident_kib();
        peak = now > peak ? now : peak;
    }
    /* one 8 MiB buffer (plus slack for the allocator), never the 64 MiB file */
    CHECK(peak - before < 20L * 1024);
    CHECK(buf.cap >= N_FLOATS * sizeof(float));
out:
    ckpt_close(c);
    ckpt_buf_free(&buf);
    unlink(path);
    rmdir(dir);
}

/* The bytes read stay valid and unchanged after the checkpoint is closed:
 * they are a copy. */
static void test_bytes_outlive_the_checkpoint(void)
{
    char dir[] = "/tmp/farmsd-ckpt-XXXXXX", path[64];
    char h1[THASH_HEX_LEN], h2[THASH_HEX_LEN];
    struct ckpt_buf buf = {0};
    struct ckpt *c = NULL;
    const void *data = NULL;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/w.safetensors", dir);
    CHECK(write_fixture(path));
    CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, NULL), ERR_OK);
    if (c == NULL)
        goto out;
    CHECK_EQ_INT(ckpt_tensor_read(c, 3, &buf, &data, NULL), ERR_OK);
    CHECK_EQ_INT(thash_bytes(data, N_FLOATS * sizeof(float), h1, NULL), ERR_OK);
    ckpt_close(c);
    c = NULL;
    unlink(path);
    CHECK_EQ_INT(thash_bytes(data, N_FLOATS * sizeof(float), h2, NULL), ERR_OK);
    CHECK_STR_EQ(h1, h2);
out:
    ckpt_close(c);
    ckpt_buf_free(&buf);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_walk_keeps_one_tensor_resident();
    test_bytes_outlive_the_checkpoint();
    return check_report("test_ckpt");
}
