/* test_cli.c -- the farmsd command line as a user runs it: build/san/farmsd
 * with real fixture files; exit statuses, error lines, and the JSON shapes of
 * `analyze` and `inspect`. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tests/check.h"

#define FARMSD "build/san/farmsd"
#define FIX    "tests/fixtures/"
/* In argument lists a path is written (FIX "rel"): the parentheses mark the
 * concatenation as intended (clang-tidy bugprone-suspicious-missing-comma). */
#define OUT_MAX (4u << 20)

struct run {
    char *out;  /* stdout, NUL-terminated */
    char *err;  /* stderr, NUL-terminated */
    int status; /* exit status, -1 if it did not exit normally */
};

static void slurp(const char *path, char **buf)
{
    FILE *f = fopen(path, "rb");

    *buf = calloc(OUT_MAX + 1, 1);
    if (f != NULL && *buf != NULL) {
        size_t n = fread(*buf, 1, OUT_MAX, f);
        (*buf)[n] = '\0';
    }
    if (f != NULL)
        fclose(f);
}

/* Run farmsd with `args` (NULL-terminated, without argv[0]). */
static struct run run_farmsd(const char *const *args)
{
    char out_path[] = "/tmp/farmsd-cli-outXXXXXX", err_path[] = "/tmp/farmsd-cli-errXXXXXX";
    int fo = mkstemp(out_path), fe = mkstemp(err_path), ws = 0;
    struct run r = {NULL, NULL, -1};
    const char *argv[32] = {FARMSD};
    pid_t pid;

    for (int i = 0; i < 30 && args[i] != NULL; i++)
        argv[i + 1] = args[i];
    pid = fork();
    if (pid == 0) {
        dup2(fo, 1);
        dup2(fe, 2);
        execv(FARMSD, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    waitpid(pid, &ws, 0);
    close(fo);
    close(fe);
    slurp(out_path, &r.out);
    slurp(err_path, &r.err);
    unlink(out_path);
    unlink(err_path);
    r.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    return r;
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

static const cJSON *layer_named(const cJSON *layers, const char *name)
{
    const cJSON *l;

    cJSON_ArrayForEach(l, layers)
    {
        if (strcmp(cJSON_GetObjectItem(l, "name")->valuestring, name) == 0)
            return l;
    }
    return NULL;
}

static void test_analyze_json_has_the_documented_shape(void)
{
    static const char *const keys[] = {"name",
                                       "kind",
                                       "dtype",
                                       "shape",
                                       "status",
                                       "reason",
                                       "alpha",
                                       "D",
                                       "xmin",
                                       "n_tail",
                                       "num_eigs",
                                       "windows",
                                       "spectral_norm",
                                       "norm",
                                       "alpha_hat",
                                       "stable_rank",
                                       "norm_stable_rank",
                                       "log_norm",
                                       "log_spectral_norm",
                                       "entropy",
                                       "warning"};
    const char *args[] = {"analyze",  (FIX "numerics/mlpA_digits.safetensors"),
                          "--preset", "farms-cv",
                          "--format", "json",
                          NULL};
    struct run r = run_farmsd(args);
    cJSON *root = cJSON_Parse(r.out);
    const cJSON *layers = cJSON_GetObjectItem(root, "layers"), *fc2, *bias;

    CHECK_EQ_INT(r.status, 0);
    CHECK(root != NULL);
    CHECK_STR_EQ(cJSON_GetObjectItem(root, "preset")->valuestring, "farms-cv");
    CHECK(cJSON_IsObject(cJSON_GetObjectItem(root, "params")));
    CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "params"), "window_rows")->valueint,
                 100);
    CHECK_EQ_INT(cJSON_GetArraySize(layers), 6);
    fc2 = layer_named(layers, "fc2.weight");
    CHECK(fc2 != NULL);
    for (size_t k = 0; fc2 != NULL && k < sizeof(keys) / sizeof(keys[0]); k++)
        CHECK(cJSON_GetObjectItem(fc2, keys[k]) != NULL);
    if (fc2 != NULL) {
        /* mlpA_fc2.json, farms_imgcls: alpha 1.7659395933151245, 8100 eigenvalues */
        CHECK_REL(cJSON_GetObjectItem(fc2, "alpha")->valuedouble, 1.7659395933151245, 1e-3);
        CHECK_EQ_INT(cJSON_GetObjectItem(fc2, "num_eigs")->valueint, 8100);
        CHECK_STR_EQ(cJSON_GetObjectItem(fc2, "status")->valuestring, "ok");
        CHECK_STR_EQ(cJSON_GetObjectItem(fc2, "warning")->valuestring, "over_trained");
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(fc2, "reason")));
    }
    bias = layer_named(layers, "fc2.bias");
    CHECK(bias != NULL && cJSON_IsNull(cJSON_GetObjectItem(bias, "alpha")));
    CHECK(bias != NULL && strcmp(cJSON_GetObjectItem(bias, "status")->valuestring, "skipped") == 0);
    cJSON_Delete(root);
    run_free(&r);
}

static void test_unreadable_file_exits_2_with_category(void)
{
    static const char *const cases[][2] = {
        {FIX "checkpoints/malformed/empty.bin", "error: empty_file: "},
        {FIX "checkpoints/malformed/pt_global_os_system.pt", "error: disallowed_global: "},
        {FIX "checkpoints/malformed/pt_legacy_format.pt", "error: legacy_torch_format: "},
        {FIX "checkpoints/malformed/random_4k.bin", "error: unknown_format: "},
        {"/nonexistent/model.safetensors", "error: not found: "}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[] = {"analyze", cases[i][0], NULL};
        struct run r = run_farmsd(args);
        CHECK_EQ_INT(r.status, 2);
        CHECK(strncmp(r.err, cases[i][1], strlen(cases[i][1])) == 0);
        CHECK_STR_EQ(r.out, "");
        run_free(&r);
    }
    {
        const char *args[] = {"analyze", "--input-format", "safetensors",
                              (FIX "checkpoints/malformed/st_truncated_data.safetensors"), NULL};
        struct run r = run_farmsd(args);
        CHECK_EQ_INT(r.status, 2);
        CHECK(strncmp(r.err, "error: truncated: ", 18) == 0);
        run_free(&r);
    }
}

static void test_bad_settings_exit_1_naming_the_key(void)
{
    const char *args[] = {"analyze", (FIX "numerics/tiny_4x3.safetensors"), "--set", "bins=zero",
                          NULL};
    const char *args2[] = {"analyze", (FIX "numerics/tiny_4x3.safetensors"), "--preset", "nope",
                           NULL};
    struct run r = run_farmsd(args), r2 = run_farmsd(args2);

    CHECK_EQ_INT(r.status, 1);
    CHECK(strstr(r.err, "bins") != NULL);
    CHECK_EQ_INT(r2.status, 1);
    CHECK(strstr(r2.err, "nope") != NULL);
    run_free(&r);
    run_free(&r2);
}

static void test_csv_and_table_agree_with_json(void)
{
    const char *args[] = {"analyze",   (FIX "numerics/mlpA_digits.safetensors"),
                          "--preset",  "farms-cv",
                          "--format",  "csv",
                          "--include", "^fc3\\.weight$",
                          NULL};
    const char *args_t[] = {"analyze",   (FIX "numerics/mlpA_digits.safetensors"),
                            "--preset",  "farms-cv",
                            "--include", "^fc3",
                            NULL};
    struct run r = run_farmsd(args), t = run_farmsd(args_t);

    CHECK_EQ_INT(r.status, 0);
    CHECK(strncmp(r.out, "name,kind,dtype,shape,status,reason,alpha,D,", 44) == 0);
    /* mlpA_fc3.json farms_imgcls alpha 3.6754019260406494 (printed with 10 digits) */
    CHECK(strstr(r.out, "\nfc3.weight,linear,F32,10x256,ok,,3.67540") != NULL);
    CHECK(strstr(r.out, "fc3.bias") == NULL);
    CHECK_EQ_INT(t.status, 0);
    CHECK(strstr(t.out, "fc3.weight") != NULL && strstr(t.out, "3.6754") != NULL);
    CHECK(strstr(t.out, "1-D tensor (bias)") != NULL);
    run_free(&r);
    run_free(&t);
}

static void test_inspect_lists_hashes_without_analysing(void)
{
    const char *args[] = {"inspect", (FIX "checkpoints/mlp/mlp_step0500_train.pt"), "--format",
                          "json", NULL};
    struct run r = run_farmsd(args);
    cJSON *root = cJSON_Parse(r.out);
    const cJSON *t, *tensors = cJSON_GetObjectItem(root, "tensors");
    int n_model = 0, n_other = 0;

    CHECK_EQ_INT(r.status, 0);
    CHECK_STR_EQ(cJSON_GetObjectItem(root, "format")->valuestring, "torch_zip");
    CHECK_STR_EQ(cJSON_GetObjectItem(root, "model_prefix")->valuestring, "model.");
    cJSON_ArrayForEach(t, tensors)
    {
        const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
        if (strcmp(name, "net.0.weight") == 0) {
            /* manifest: mlp/mlp_step0500_train.pt model.net.0.weight */
            CHECK_STR_EQ(cJSON_GetObjectItem(t, "sha256")->valuestring,
                         "3d9acc9ec4c2f11ce480263ed88842c2d5296a96b20ef2afe0d315422e009928");
            CHECK(cJSON_IsTrue(cJSON_GetObjectItem(t, "selected")));
            CHECK_STR_EQ(cJSON_GetObjectItem(t, "stored_name")->valuestring, "model.net.0.weight");
        }
        if (strncmp(cJSON_GetObjectItem(t, "stored_name")->valuestring, "model.", 6) == 0)
            n_model++;
        else
            n_other++;
        CHECK_EQ_INT(strlen(cJSON_GetObjectItem(t, "sha256")->valuestring), 64);
    }
    CHECK_EQ_INT(n_model, 6);
    CHECK_EQ_INT(n_other, 6); /* SGD momentum buffers: listed, not selected */
    cJSON_Delete(root);
    run_free(&r);
}

static void test_help_lists_every_option(void)
{
    static const char *const opts[] = {"--preset",       "--set",     "--format",
                                       "--include",      "--exclude", "--threads",
                                       "--input-format", "--strict",  "--quiet"};
    const char *args[] = {"analyze", "--help", NULL};
    struct run r = run_farmsd(args);

    CHECK_EQ_INT(r.status, 0);
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        CHECK(strstr(r.out, opts[i]) != NULL);
    run_free(&r);
}

/* The reproduction of issue 10: a 17 KB .pt whose data.pkl builds 16.8 M
 * lists (6.6 GB before) is refused with limit_exceeded naming the limit, set
 * by FARMSD_MAX_PICKLE_MEM (a real torch file needs far less); bad values
 * of the variable and of serve's --max-pickle-mem are usage errors. */
static void test_pickle_memory_limit(void)
{
    const char *hostile[] = {"analyze", (FIX "hostile/pt_pickle_list_flood.pt"), NULL};
    const char *real[] = {"inspect", (FIX "checkpoints/llama/llama_step0500_lightning.ckpt"), NULL};
    const char *serve_bad[] = {"serve", "--max-pickle-mem", "512K", NULL};
    const char *serve_help[] = {"serve", "--help", NULL};
    struct run r;

    setenv("FARMSD_MAX_PICKLE_MEM", "8M", 1);
    r = run_farmsd(hostile);
    CHECK_EQ_INT(r.status, 2);
    CHECK(strstr(r.err, "error: limit_exceeded: ") != NULL);
    CHECK(strstr(r.err, "more than 8388608 bytes (max_pickle_mem)") != NULL);
    run_free(&r);
    setenv("FARMSD_MAX_PICKLE_MEM", "2M", 1);
    r = run_farmsd(real);
    CHECK_EQ_INT(r.status, 0);
    run_free(&r);
    setenv("FARMSD_MAX_PICKLE_MEM", "lots", 1);
    r = run_farmsd(hostile);
    CHECK_EQ_INT(r.status, 1);
    CHECK(strstr(r.err, "FARMSD_MAX_PICKLE_MEM: 'lots'") != NULL);
    run_free(&r);
    unsetenv("FARMSD_MAX_PICKLE_MEM");
    r = run_farmsd(serve_bad);
    CHECK_EQ_INT(r.status, 1);
    CHECK(strstr(r.err, "--max-pickle-mem: '512K' is below 1M") != NULL);
    run_free(&r);
    r = run_farmsd(serve_help);
    CHECK_EQ_INT(r.status, 0);
    CHECK(strstr(r.out, "--max-pickle-mem BYTES") != NULL);
    CHECK(strstr(r.out, "[FARMSD_MAX_PICKLE_MEM]") != NULL);
    run_free(&r);
}

int main(void)
{
    test_analyze_json_has_the_documented_shape();
    test_unreadable_file_exits_2_with_category();
    test_bad_settings_exit_1_naming_the_key();
    test_csv_and_table_agree_with_json();
    test_inspect_lists_hashes_without_analysing();
    test_help_lists_every_option();
    test_pickle_memory_limit();
    return check_report("test_cli");
}
