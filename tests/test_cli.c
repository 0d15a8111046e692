/* test_cli.c -- the farmsd command line as a user runs it: build/san/farmsd
 * with real fixture files; exit statuses, error lines, and the JSON shapes of
 * `analyze` and `inspect`. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tests/check.h"
#include "tests/cli_util.h"

#define FIX "tests/fixtures/"
/* In argument lists a path is written (FIX "rel"): the parentheses mark the
 * concatenation as intended (clang-tidy bugprone-suspicious-missing-comma). */

/* farmsd run with `args` and `env` as cli_run_env() does, killed after 60 s. */
static struct cli_run run_farmsd_env(const char *const *args, const char *const *env)
{
    return cli_run_env(args, env, 60);
}

static struct cli_run run_farmsd(const char *const *args)
{
    return run_farmsd_env(args, NULL);
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
                                       "alpha_weighted",
                                       "stable_rank",
                                       "norm_stable_rank",
                                       "log_norm",
                                       "log_spectral_norm",
                                       "entropy",
                                       "xmax",
                                       "sigma",
                                       "num_pl_spikes",
                                       "log_alpha_norm",
                                       "rank_loss",
                                       "weak_rank_loss",
                                       "sv_max",
                                       "sv_min",
                                       "num_spikes",
                                       "sigma_mp",
                                       "mp_softrank",
                                       "bulk_min",
                                       "bulk_max",
                                       "W_scale",
                                       "rand_distance",
                                       "num_traps",
                                       "matrix_rank",
                                       "warning"};
    const char *args[] = {"analyze",  (FIX "numerics/mlpA_digits.safetensors"),
                          "--preset", "farms-cv",
                          "--format", "json",
                          NULL};
    struct cli_run r = run_farmsd(args);
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
    cli_run_free(&r);
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
        struct cli_run r = run_farmsd(args);
        CHECK_EQ_INT(r.status, 2);
        CHECK(strncmp(r.err, cases[i][1], strlen(cases[i][1])) == 0);
        CHECK_STR_EQ(r.out, "");
        cli_run_free(&r);
    }
    {
        const char *args[] = {"analyze", "--input-format", "safetensors",
                              (FIX "checkpoints/malformed/st_truncated_data.safetensors"), NULL};
        struct cli_run r = run_farmsd(args);
        CHECK_EQ_INT(r.status, 2);
        CHECK(strncmp(r.err, "error: truncated: ", 18) == 0);
        cli_run_free(&r);
    }
}

/* --input-format names every format of the readers: each opens its own
 * fixture and `inspect --format json` reports it; declared on a file of
 * another format, the reader's own defect is reported (exit 2). */
static void test_input_format_names_every_reader(void)
{
    static const char *const cases[][2] = {{"gguf", FIX "gguf/llama_f32.gguf"},
                                           {"dcp", FIX "dcp/mlp_fsdp"},
                                           {"deepspeed", FIX "deepspeed/zero2_bf16"},
                                           {"peft", FIX "peft/llama_lora/step0100"}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[] = {"inspect",  "--input-format", cases[i][0], cases[i][1],
                              "--format", "json",           NULL};
        struct cli_run r = run_farmsd(args);
        cJSON *root = cJSON_Parse(r.out);
        const cJSON *f = cJSON_GetObjectItem(root, "format");

        CHECK_EQ_INT(r.status, 0);
        CHECK(cJSON_IsString(f) && strcmp(f->valuestring, cases[i][0]) == 0);
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(root, "tensors")) > 0);
        cJSON_Delete(root);
        cli_run_free(&r);
    }
    {
        const char *args[] = {"inspect", "--input-format", "gguf",
                              (FIX "numerics/tiny_4x3.safetensors"), NULL};
        struct cli_run r = run_farmsd(args);
        CHECK_EQ_INT(r.status, 2);
        CHECK(strstr(r.err, "error: ") != NULL);
        CHECK_STR_EQ(r.out, "");
        cli_run_free(&r);
    }
}

static void test_bad_settings_exit_2_naming_the_key(void)
{
    const char *args[] = {"analyze", (FIX "numerics/tiny_4x3.safetensors"), "--set", "bins=zero",
                          NULL};
    const char *args2[] = {"analyze", (FIX "numerics/tiny_4x3.safetensors"), "--preset", "nope",
                           NULL};
    struct cli_run r = run_farmsd(args), r2 = run_farmsd(args2);

    CHECK_EQ_INT(r.status, 2);
    CHECK_STR_EQ(r.err, "farmsd analyze: bins: 'zero' is not an integer in range\n"
                        "Try 'farmsd analyze --help'.\n");
    CHECK_EQ_INT(r2.status, 2);
    CHECK_STR_EQ(r2.err, "farmsd analyze: unknown preset 'nope' (known: farms-llm, farms-cv, "
                         "full)\nTry 'farmsd analyze --help'.\n");
    cli_run_free(&r);
    cli_run_free(&r2);
}

/* Usage errors: one line naming what is wrong, the --help hint, exit 2,
 * nothing on stdout; never the whole help. */
static void test_usage_errors_are_one_line_and_exit_2(void)
{
    static const char *const cases[][4] = {
        {"analyze", "--x", NULL, "farmsd analyze: unknown option '--x'\n"},
        {"analyze", "-z", NULL, "farmsd analyze: unknown option '-z'\n"},
        {"analyze", "--format", NULL, "farmsd analyze: option '--format' needs a value\n"},
        {"analyze", "--threads", "abc", "farmsd analyze: --threads=abc: not a number in 0..256\n"},
        {"analyze", "--format", "xml",
         "farmsd analyze: --format=xml: unknown format (table, json, csv)\n"},
        {"analyze", "--input-format", "onnx",
         "farmsd analyze: --input-format=onnx: unknown input format (auto, safetensors, index, "
         "torch, npy, npz, gguf, dcp, deepspeed, peft)\n"},
        {"inspect", "--wider", NULL, "farmsd inspect: unknown option '--wider'\n"},
        {"inspect", "--wide=yes", NULL, "farmsd inspect: option '--wide' takes no value\n"},
        {"inspect", "--format", "csv",
         "farmsd inspect: --format=csv: unknown format (table, json)\n"},
        {"serve", "--x", NULL, "farmsd serve: unknown option '--x'\n"},
        {"serve", "--listen", NULL, "farmsd serve: option '--listen' needs a value\n"},
        {"synth", "--blocks", "q", "farmsd synth: --blocks=q: not a number in 0..100000\n"},
        {"migrate", "--from", NULL, "farmsd migrate: option '--from' needs a value\n"}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[] = {cases[i][0], (FIX "numerics/tiny_4x3.safetensors"), cases[i][1],
                              cases[i][2], NULL};
        char want[512];
        struct cli_run r;
        if (strcmp(cases[i][0], "analyze") != 0 && strcmp(cases[i][0], "inspect") != 0) {
            args[1] = cases[i][1]; /* serve, synth, migrate take no FILE */
            args[2] = cases[i][2];
            args[3] = NULL;
        }
        r = run_farmsd(args);
        snprintf(want, sizeof(want), "%sTry 'farmsd %s --help'.\n", cases[i][3], cases[i][0]);
        CHECK_EQ_INT(r.status, 2);
        CHECK_STR_EQ(r.err, want);
        CHECK_STR_EQ(r.out, "");
        cli_run_free(&r);
    }
    {
        const char *args[] = {"analyse", NULL};
        struct cli_run r = run_farmsd(args);
        CHECK_EQ_INT(r.status, 2);
        CHECK_STR_EQ(r.err, "farmsd: unknown command 'analyse'\nTry 'farmsd --help'.\n");
        cli_run_free(&r);
    }
}

/* A bad value that came from the environment names the variable. */
static void test_env_errors_name_the_variable(void)
{
    static const char *const cases[][3] = {
        {"inspect", "FARMSD_FORMAT=csv",
         "farmsd inspect: FARMSD_FORMAT=csv: unknown format (table, json)\n"},
        {"analyze", "FARMSD_FORMAT=xml",
         "farmsd analyze: FARMSD_FORMAT=xml: unknown format (table, json, csv)\n"},
        {"analyze", "FARMSD_THREADS=many",
         "farmsd analyze: FARMSD_THREADS=many: not a number in 0..256\n"},
        {"analyze", "FARMSD_STRICT=yes",
         "farmsd analyze: FARMSD_STRICT=yes: not a number in 0..1\n"},
        {"analyze", "FARMSD_PRESET=nope",
         "farmsd analyze: FARMSD_PRESET=nope: unknown preset 'nope' (known: farms-llm, farms-cv, "
         "full)\n"},
        {"serve", "FARMSD_LEASE=abc",
         "farmsd serve: FARMSD_LEASE=abc: 'abc' is not a number in 1..86400\n"},
        {"serve", "FARMSD_MAX_UPLOAD=lots",
         "farmsd serve: FARMSD_MAX_UPLOAD=lots: 'lots' is not a byte count\n"},
        {"serve", "FARMSD_PRESET=nope",
         "farmsd serve: FARMSD_PRESET=nope: unknown preset 'nope' (known: farms-llm, farms-cv, "
         "full)\n"},
        {"serve", "FARMSD_TOKENS=/nonexistent/tokens",
         "farmsd serve: FARMSD_TOKENS=/nonexistent/tokens: /nonexistent/tokens: No such file or "
         "directory\n"}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[] = {cases[i][0], (FIX "numerics/tiny_4x3.safetensors"), NULL};
        const char *env[] = {cases[i][1], NULL};
        char want[512];
        struct cli_run r;
        if (strcmp(cases[i][0], "serve") == 0)
            args[1] = NULL;
        r = run_farmsd_env(args, env);
        snprintf(want, sizeof(want), "%sTry 'farmsd %s --help'.\n", cases[i][2], cases[i][0]);
        CHECK_EQ_INT(r.status, 2);
        CHECK_STR_EQ(r.err, want);
        cli_run_free(&r);
    }
}

/* Every line of `text` is at most `width` columns; the number of lines. */
static int lines_within(const char *text, size_t width)
{
    int n = 0;

    for (const char *p = text; *p != '\0'; n++) {
        size_t len = strcspn(p, "\n");
        if (len > width) {
            fprintf(stderr, "  line over %zu columns: %.*s\n", width, (int)len, p);
            return -1;
        }
        p += len + (p[len] == '\n');
    }
    return n;
}

/* The last line of `text` (without its newline) into buf. */
static void last_line(const char *text, char *buf, size_t len)
{
    size_t n = strlen(text);
    const char *p;

    while (n > 0 && text[n - 1] == '\n')
        n--;
    for (p = text + n; p > text && p[-1] != '\n'; p--)
        ;
    snprintf(buf, len, "%.*s", (int)(text + n - p), p);
}

/* The default table fits 80 columns (the output is not a terminal and
 * COLUMNS is unset) and ends with the summary; mlpA_digits under farms-cv:
 * fc1/fc2/fc3 weights analysed (alpha 2.29, 1.77, 3.68), the three biases
 * skipped, fc2 over-trained. */
static void test_table_fits_80_columns_and_ends_with_a_summary(void)
{
    const char *args[] = {"analyze", (FIX "numerics/mlpA_digits.safetensors"), "--preset",
                          "farms-cv", NULL};
    const char *llama[] = {"analyze", (FIX "checkpoints/llama/llama_step0500.safetensors"), NULL};
    struct cli_run r = run_farmsd(args), l = run_farmsd(llama);
    char last[256];

    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(lines_within(r.out, 80), 9); /* header, 6 rows, blank, summary */
    CHECK(strncmp(r.out, "name        kind     shape         alpha  note\n", 46) == 0);
    CHECK(strstr(r.out, "\nfc2.weight  linear   256x512       1.766  over_trained\n") != NULL);
    CHECK(strstr(r.out, "\nfc1.bias    bias     512               -  1-D tensor (bias)\n") != NULL);
    last_line(r.out, last, sizeof(last));
    CHECK_STR_EQ(last, "3 analysed, 3 skipped, 0 failed; 1 over-trained, 0 under-trained");
    {
        /* conv_32x64x3x3.json: WeightWatcher alpha 7.764993787780817 (preset full) */
        const char *conv[] = {"analyze", (FIX "numerics/conv_32x64x3x3.safetensors"), "--preset",
                              "full", NULL};
        struct cli_run cv = run_farmsd(conv);
        CHECK_EQ_INT(cv.status, 0);
        CHECK(strstr(cv.out, "\nweight  conv2d   32x64x3x3     7.765  under_trained\n") != NULL);
        last_line(cv.out, last, sizeof(last));
        CHECK_STR_EQ(last, "1 analysed, 0 skipped, 0 failed; 0 over-trained, 1 under-trained");
        cli_run_free(&cv);
    }
    /* llama names are 38 characters: their start is cut, the layer index kept */
    CHECK_EQ_INT(l.status, 0);
    CHECK(lines_within(l.out, 80) > 10);
    CHECK(strstr(l.out, "\n...layers.1.self_attn.q_proj.weight  linear") != NULL);
    CHECK(strstr(l.out, "model.layers.0.mlp.gate_proj.weight") != NULL);
    cli_run_free(&r);
    cli_run_free(&l);
}

/* --wide: every column in full; COLUMNS widens or narrows the fitted table. */
static void test_wide_and_columns(void)
{
    const char *args[] = {"analyze", (FIX "checkpoints/llama/llama_step0500.safetensors"), "--wide",
                          NULL};
    const char *fitted[] = {"analyze", (FIX "checkpoints/llama/llama_step0500.safetensors"), NULL};
    const char *wide_env[] = {"COLUMNS=200", NULL}, *narrow_env[] = {"COLUMNS=66", NULL};
    struct cli_run w = run_farmsd(args), c200 = run_farmsd_env(fitted, wide_env),
                   c66 = run_farmsd_env(fitted, narrow_env);
    char last[256];

    CHECK_EQ_INT(w.status, 0);
    CHECK(strstr(w.out, "  kind               shape         status      alpha        D   n_tail"
                        "  num_eigs  warning / reason\n") != NULL);
    CHECK(strstr(w.out, "\nmodel.layers.1.self_attn.q_proj.weight   ") != NULL);
    CHECK(strstr(w.out, "embedding table: not analysed by this preset") != NULL);
    CHECK(lines_within(w.out, 80) < 0); /* the full table is wider */
    last_line(w.out, last, sizeof(last));
    CHECK_STR_EQ(last, "14 analysed, 6 skipped, 0 failed; 0 over-trained (alpha < 2), "
                       "0 under-trained (alpha > 6)");
    CHECK_EQ_INT(c200.status, 0);
    CHECK(lines_within(c200.out, 200) > 10);
    CHECK(strstr(c200.out, "\nmodel.layers.1.self_attn.q_proj.weight   ") != NULL);
    CHECK(strstr(c200.out, "embedding table: not analysed by this preset") != NULL);
    CHECK_EQ_INT(c66.status, 0);
    CHECK(lines_within(c66.out, 66) > 10);
    cli_run_free(&w);
    cli_run_free(&c200);
    cli_run_free(&c66);
}

/* inspect's table fits 80 columns too; --wide has the whole hash. */
static void test_inspect_table_fits_80_columns(void)
{
    const char *args[] = {"inspect", (FIX "checkpoints/mlp/mlp_step0500_train.pt"), NULL};
    const char *wide[] = {"inspect", (FIX "checkpoints/mlp/mlp_step0500_train.pt"), "--wide", NULL};
    struct cli_run r = run_farmsd(args), w = run_farmsd(wide);
    char last[256];

    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(lines_within(r.out, 80), 16); /* format, header, 12 rows, blank, summary */
    CHECK(strstr(r.out, "\nnet.0.weight ") != NULL &&
          strstr(r.out, " 3d9acc9ec4c2  yes\n") != NULL);
    last_line(r.out, last, sizeof(last));
    CHECK_STR_EQ(last, "12 tensors, 3 selected for analysis");
    CHECK_EQ_INT(w.status, 0);
    CHECK(
        strstr(w.out, "3d9acc9ec4c2f11ce480263ed88842c2d5296a96b20ef2afe0d315422e009928  yes\n") !=
        NULL);
    CHECK(strstr(w.out, "not part of the model weights (optimizer or training state)\n") != NULL);
    cli_run_free(&r);
    cli_run_free(&w);
}

/* serve with its port taken: one line, exit 3, and no data folder made. */
static void test_serve_port_taken_is_one_line_and_creates_nothing(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    char dir[] = "/tmp/farmsd-cli-bindXXXXXX", data[64], listen_at[64], want[128];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct stat st;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 1) == 0 &&
          getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    CHECK(mkdtemp(dir) != NULL);
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    {
        const char *args[] = {"serve", "--listen", listen_at, "--data", data, NULL};
        struct cli_run r = run_farmsd(args);
        snprintf(want, sizeof(want), "farmsd serve: cannot listen on %s: address already in use\n",
                 listen_at);
        CHECK_EQ_INT(r.status, 3);
        CHECK_STR_EQ(r.err, want);
        CHECK(stat(data, &st) != 0); /* nothing created */
        cli_run_free(&r);
    }
    close(fd);
    rmdir(data); /* only if the check above failed */
    rmdir(dir);
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
    struct cli_run r = run_farmsd(args), t = run_farmsd(args_t);

    CHECK_EQ_INT(r.status, 0);
    CHECK(strncmp(r.out, "name,kind,dtype,shape,status,reason,alpha,D,", 44) == 0);
    /* mlpA_fc3.json farms_imgcls alpha 3.6754019260406494 (printed with 10 digits) */
    CHECK(strstr(r.out, "\nfc3.weight,linear,F32,10x256,ok,,3.67540") != NULL);
    CHECK(strstr(r.out, "fc3.bias") == NULL);
    CHECK_EQ_INT(t.status, 0);
    CHECK(strstr(t.out, "fc3.weight") != NULL && strstr(t.out, "3.675") != NULL);
    CHECK(strstr(t.out, "1-D tensor (bias)") != NULL);
    cli_run_free(&r);
    cli_run_free(&t);
}

static void test_inspect_lists_hashes_without_analysing(void)
{
    const char *args[] = {"inspect", (FIX "checkpoints/mlp/mlp_step0500_train.pt"), "--format",
                          "json", NULL};
    struct cli_run r = run_farmsd(args);
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
    cli_run_free(&r);
}

/* inspect shows the layout each weight is read in (Keras kernels: keras),
 * and --set layout=torch changes it; a bad weights= regex is a settings
 * error, exit 2 (docs/checkpoint-formats.md, Framework layouts). */
static void test_inspect_shows_the_layout(void)
{
    const char *args[] = {"inspect", (FIX "layouts/keras_cnn.safetensors"), "--format", "json",
                          NULL};
    const char *torch[] = {
        "inspect", (FIX "layouts/keras_cnn.safetensors"), "--wide", "--set", "layout=torch", NULL};
    const char *bad[] = {"analyze", (FIX "layouts/keras_cnn.safetensors"), "--set", "weights=(",
                         NULL};
    struct cli_run r = run_farmsd(args), t = run_farmsd(torch), b = run_farmsd(bad);
    cJSON *root = cJSON_Parse(r.out);
    const cJSON *it;
    const char *line, *end;
    int n_keras = 0;

    CHECK_EQ_INT(r.status, 0);
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(root, "tensors"))
    {
        const char *name = cJSON_GetObjectItem(it, "name")->valuestring;
        const char *layout = cJSON_GetObjectItem(it, "layout")->valuestring;
        if (strcmp(name, "sequential/conv2d_1/kernel") == 0)
            CHECK_STR_EQ(cJSON_GetObjectItem(it, "kind")->valuestring, "conv2d_hwio");
        if (strcmp(name, "sequential/dense/bias") == 0)
            CHECK_STR_EQ(layout, "-");
        n_keras += strcmp(layout, "keras") == 0;
    }
    CHECK_EQ_INT(n_keras, 4); /* two conv and two dense kernels */
    CHECK_EQ_INT(t.status, 0);
    line = strstr(t.out, "\nsequential/dense/kernel ");
    end = line != NULL ? strchr(line + 1, '\n') : NULL;
    CHECK(line != NULL && end != NULL && strstr(line, "  torch  ") != NULL &&
          strstr(line, "  torch  ") < end);
    CHECK_EQ_INT(b.status, 2);
    CHECK(strstr(b.err, "farmsd analyze: weights: '(' is not a POSIX extended regular "
                        "expression") == b.err);
    cJSON_Delete(root);
    cli_run_free(&r);
    cli_run_free(&t);
    cli_run_free(&b);
}

/* --timings adds, on stderr after the report, the stage table with the
 * counts of the run (3 analysed layers and 99 eigenproblems of mlpA under
 * farms-cv: 20 Grams formed, 79 updated); stdout stays the report. */
static void test_analyze_timings_go_to_stderr(void)
{
    const char *args[] = {"analyze",  (FIX "numerics/mlpA_digits.safetensors"),
                          "--preset", "farms-cv",
                          "--format", "json",
                          "--quiet",  "--timings",
                          NULL};
    struct cli_run r = run_farmsd(args);
    cJSON *root = cJSON_Parse(r.out);

    CHECK_EQ_INT(r.status, 0);
    CHECK(root != NULL); /* stdout is still the JSON report alone */
    CHECK(strstr(r.err, "timings: 3 layers, 99 eigenproblems\n") != NULL);
    CHECK(strstr(r.err, "CPU (20)\n") != NULL);
    CHECK(strstr(r.err, "CPU (79)\n") != NULL);
    CHECK(strstr(r.err, "tridiagonal reduction") != NULL);
    CHECK(strstr(r.err, "read + decode to float64") != NULL);
    cJSON_Delete(root);
    cli_run_free(&r);
}

static void test_help_lists_every_option(void)
{
    static const char *const opts[] = {"--preset",  "--set",     "--format",       "--include",
                                       "--exclude", "--threads", "--input-format", "--strict",
                                       "--quiet",   "--wide",    "--base",         "--timings"};
    const char *args[] = {"analyze", "--help", NULL};
    struct cli_run r = run_farmsd(args);

    CHECK_EQ_INT(r.status, 0);
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        CHECK(strstr(r.out, opts[i]) != NULL);
    cli_run_free(&r);
}

/* A LoRA adapter alone: every module skipped with its rank and norm; with
 * --base: the merged weights analysed under the base's names; an adapter
 * that does not fit its base: exit 2, lora_mismatch (docs/peft.md). */
static void test_lora_adapter_alone_and_with_base(void)
{
    const char *alone[] = {
        "analyze", (FIX "peft/llama_lora/step0100"), "--format", "json", "--quiet", NULL};
    const char *merged[] = {"analyze",  (FIX "peft/llama_lora/step0100"),
                            "--base",   (FIX "checkpoints/llama/llama_step0500.safetensors"),
                            "--format", "json",
                            "--quiet",  NULL};
    const char *misfit[] = {"inspect", (FIX "peft/malformed/not_in_base"), "--base",
                            (FIX "checkpoints/llama/llama_step0500.safetensors"), NULL};
    struct cli_run r = run_farmsd(alone);
    cJSON *root = cJSON_Parse(r.out);
    const cJSON *l, *layers = cJSON_GetObjectItem(root, "layers");

    CHECK_EQ_INT(r.status, 0);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(root, "format")), "peft");
    CHECK_EQ_INT(cJSON_GetArraySize(layers), 10);
    cJSON_ArrayForEach(l, layers)
    {
        const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(l, "reason"));
        CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(l, "status")), "skipped");
        CHECK(why != NULL && strncmp(why, "LoRA adapter, rank 4, ||s*B*A||_2 = ", 36) == 0);
    }
    cJSON_Delete(root);
    cli_run_free(&r);

    r = run_farmsd(merged);
    root = cJSON_Parse(r.out);
    layers = cJSON_GetObjectItem(root, "layers");
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(cJSON_GetArraySize(layers), 20); /* the base's rows */
    l = layer_named(layers, "model.layers.0.self_attn.q_proj.weight");
    CHECK(l != NULL && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(l, "status")), "ok") == 0);
    CHECK(l != NULL && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(l, "dtype")), "F64") == 0);
    cJSON_Delete(root);
    cli_run_free(&r);

    r = run_farmsd(misfit);
    CHECK_EQ_INT(r.status, 2);
    CHECK(strncmp(r.err, "error: lora_mismatch: ", 22) == 0);
    CHECK_STR_EQ(r.out, "");
    cli_run_free(&r);
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
    struct cli_run r;

    setenv("FARMSD_MAX_PICKLE_MEM", "8M", 1);
    r = run_farmsd(hostile);
    CHECK_EQ_INT(r.status, 2);
    CHECK(strstr(r.err, "error: limit_exceeded: ") != NULL);
    CHECK(strstr(r.err, "more than 8388608 bytes (max_pickle_mem)") != NULL);
    cli_run_free(&r);
    setenv("FARMSD_MAX_PICKLE_MEM", "2M", 1);
    r = run_farmsd(real);
    CHECK_EQ_INT(r.status, 0);
    cli_run_free(&r);
    setenv("FARMSD_MAX_PICKLE_MEM", "lots", 1);
    r = run_farmsd(hostile);
    CHECK_EQ_INT(r.status, 2);
    CHECK_STR_EQ(r.err, "farmsd analyze: FARMSD_MAX_PICKLE_MEM=lots: not a byte count >= 1M\n"
                        "Try 'farmsd analyze --help'.\n");
    cli_run_free(&r);
    unsetenv("FARMSD_MAX_PICKLE_MEM");
    r = run_farmsd(serve_bad);
    CHECK_EQ_INT(r.status, 2);
    CHECK(strstr(r.err, "--max-pickle-mem: '512K' is below 1M") != NULL);
    cli_run_free(&r);
    r = run_farmsd(serve_help);
    CHECK_EQ_INT(r.status, 0);
    CHECK(strstr(r.out, "--max-pickle-mem BYTES") != NULL);
    CHECK(strstr(r.out, "[FARMSD_MAX_PICKLE_MEM]") != NULL);
    cli_run_free(&r);
}

int main(void)
{
    test_analyze_json_has_the_documented_shape();
    test_unreadable_file_exits_2_with_category();
    test_input_format_names_every_reader();
    test_bad_settings_exit_2_naming_the_key();
    test_usage_errors_are_one_line_and_exit_2();
    test_env_errors_name_the_variable();
    test_table_fits_80_columns_and_ends_with_a_summary();
    test_wide_and_columns();
    test_inspect_table_fits_80_columns();
    test_serve_port_taken_is_one_line_and_creates_nothing();
    test_csv_and_table_agree_with_json();
    test_inspect_lists_hashes_without_analysing();
    test_inspect_shows_the_layout();
    test_help_lists_every_option();
    test_analyze_timings_go_to_stderr();
    test_lora_adapter_alone_and_with_base();
    test_pickle_memory_limit();
    return check_report("test_cli");
}
