/* test_ckpt.c -- the checkpoint front end: a tensor read from a file mapping
 * leaves the resident set once the caller is done with it (and reads back
 * the same), while bytes outside the mappings are never touched. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ckpt.h"
#include "core/thash.h"
#include "tests/check.h"

#define N_FLOATS (4u << 20) /* one 16 MiB F32 tensor */

static long resident_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, rss = 0;

    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* A safetensors file with one F32 tensor "w" of N_FLOATS values i * 0.5. */
static int write_fixture(char *path)
{
    static const char hdr[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4194304],"
                              "\"data_offsets\":[0,16777216]}}";
    uint64_t n = sizeof(hdr) - 1;
    float *v = malloc(N_FLOATS * sizeof(float));
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    int ok;

    if (v == NULL || f == NULL) {
        free(v);
        return 0;
    }
    for (uint32_t i = 0; i < N_FLOATS; i++)
        v[i] = (float)i * 0.5f;
    ok = fwrite(&n, 8, 1, f) == 1 && fwrite(hdr, 1, n, f) == n &&
         fwrite(v, sizeof(float), N_FLOATS, f) == N_FLOATS;
    free(v);
    return fclose(f) == 0 && ok;
}

static void test_done_tensor_leaves_the_resident_set(void)
{
    char path[] = "/tmp/farmsd-ckpt-XXXXXX";
    struct ckpt_buf buf = {0};
    struct ckpt *c = NULL;
    const void *data = NULL;
    char h1[THASH_HEX_LEN], h2[THASH_HEX_LEN];
    long before, touched, after;

    CHECK(write_fixture(path));
    CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, NULL), ERR_OK);
    if (c == NULL)
        return;
    before = resident_kib();
    CHECK_EQ_INT(ckpt_tensor_read(c, 0, &buf, &data, NULL), ERR_OK);
    CHECK(data != NULL && buf.data == NULL); /* a pointer into the mapping, no copy */
    CHECK_EQ_INT(thash_bytes(data, N_FLOATS * sizeof(float), h1, NULL), ERR_OK);
    touched = resident_kib();
    CHECK(touched - before > 12 * 1024); /* the 16 MiB were paged in */
    ckpt_tensor_done(c, 0, data);
    after = resident_kib();
    CHECK(touched - after > 12 * 1024); /* ... and left again */
    CHECK_EQ_INT(ckpt_tensor_read(c, 0, &buf, &data, NULL), ERR_OK);
    CHECK_EQ_INT(thash_bytes(data, N_FLOATS * sizeof(float), h2, NULL), ERR_OK);
    CHECK_STR_EQ(h1, h2); /* read back from the file, unchanged */
    {
        float v1000; /* the data need not be aligned: copy it out */
        memcpy(&v1000, (const char *)data + 1000 * sizeof(float), sizeof(v1000));
        CHECK(v1000 == 500.0f);
    }
    ckpt_close(c);
    ckpt_buf_free(&buf);
    unlink(path);
}

static void test_heap_bytes_are_left_alone(void)
{
    char path[] = "/tmp/farmsd-ckpt-XXXXXX";
    struct ckpt *c = NULL;
    float *heap = malloc(1024 * sizeof(float));

    CHECK(write_fixture(path));
    CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_UNKNOWN, NULL, &c, NULL), ERR_OK);
    if (c == NULL || heap == NULL) {
        free(heap);
        return;
    }
    for (int i = 0; i < 1024; i++)
        heap[i] = 7.0f;
    ckpt_tensor_done(c, 0, heap); /* not in a mapping of c: nothing happens */
    CHECK(heap[0] == 7.0f && heap[1023] == 7.0f);
    free(heap);
    ckpt_close(c);
    unlink(path);
}

int main(void)
{
    test_done_tensor_leaves_the_resident_set();
    test_heap_bytes_are_left_alone();
    return check_report("test_ckpt");
}
