/* cli_synth.c -- `farmsd synth`: write a synthetic checkpoint of a real model
 * shape as safetensors or a torch.save zip, streaming tensor by tensor in
 * chunks of CLI_SYNTH_CHUNK elements (memory stays a few MiB whatever the
 * file size). See cli_synth.h. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/formats/tz_write.h"
#include "server/cli.h"
#include "server/cli_synth.h"

#define CLI_SYNTH_CHUNK (1u << 20) /* elements per generate/encode/write step */

static const char cli_synth_usage[] =
    "usage: farmsd synth --model M --out FILE [options]\n"
    "\n"
    "Write a synthetic checkpoint with the tensor names and shapes of a real model, for\n"
    "benchmarks and load tests. The values depend only on the seed and each tensor's name\n"
    "and shape: the same weights (same SHA-256 per tensor) in either format.\n"
    "\n"
    "  --model M           llama7b (q,k,v,o 4096x4096; gate,up 11008x4096; down 4096x11008),\n"
    "                      llama-tiny (the same names, 64 and 172 wide: for tests),\n"
    "                      gpt2-small (Conv1D c_attn 768x2304, ...), resnet (ResNet-50 convs)\n"
    "  --blocks N          decoder blocks / bottlenecks (default: the model's 32, 32, 12, 16)\n"
    "  --hidden N          LLaMA models: the hidden width (default 4096; llama-tiny 64)\n"
    "  --ffn N             LLaMA models: the MLP width (default 11008; llama-tiny 172)\n"
    "  --dtype T           F32, F16 (default) or BF16\n"
    "  --dist D            gaussian (N(0,1)/sqrt(fan_in), default), heavy (Student-t(3)) or\n"
    "                      mixed (each matrix one or the other, by seed and name)\n"
    "  --seed S            seed (default 0)\n"
    "  --format F          safetensors (default) or torch\n"
    "  --no-embeddings     leave out embeddings (and LLaMA's lm_head)\n"
    "  --out FILE          the file to write (required)\n"
    "  --quiet             no summary line\n"
    "  -h, --help          this help\n";

struct cli_synth_opts {
    const char *out;
    const char *format;
    const char *dist;
    unsigned long long seed;
    int quiet;
};

/* The torch archive folder: the file's stem, [A-Za-z0-9_.-] only. */
static void cli_synth_archive(const char *path, char *arch, size_t cap)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t n = 0;

    for (; base[n] != '\0' && base[n] != '.' && n + 1 < cap && n < 100; n++) {
        char ch = base[n];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '-';
        if (!ok)
            ch = '_';
        arch[n] = ch;
    }
    arch[n] = '\0';
    if (n == 0)
        snprintf(arch, cap, "archive");
}

/* cli_synth_gen_init's `heavy` for a --dist name. */
static int cli_synth_heavy(const char *dist)
{
    return strcmp(dist, "heavy") == 0 ? 1 : strcmp(dist, "mixed") == 0 ? 2 : 0;
}

/* Generate and write every tensor through the chosen writer. */
static enum err_code cli_synth_stream(const struct cli_synth_model *m,
                                      const struct cli_synth_opts *o, uint64_t *bytes,
                                      struct err *e)
{
    int torch = strcmp(o->format, "torch") == 0;
    struct st_writer *sw = NULL;
    struct tz_writer *tw = NULL;
    float *vals = malloc(CLI_SYNTH_CHUNK * sizeof(float));
    unsigned char *enc = malloc((size_t)CLI_SYNTH_CHUNK * 4);
    char arch[128];
    enum err_code rc;

    *bytes = 0;
    cli_synth_archive(o->out, arch, sizeof(arch));
    if (vals == NULL || enc == NULL)
        rc = err_set(e, ERR_NOMEM, "out of memory");
    else if (torch)
        rc = tz_writer_open(o->out, arch, m->t, m->n, &tw, e);
    else
        rc = st_writer_open(o->out, m->t, m->n, &sw, e);
    for (size_t i = 0; i < m->n && rc == ERR_OK; i++) {
        struct cli_synth_gen g;
        uint64_t left = st_wtensor_nbytes(&m->t[i], NULL) / dtype_size(m->dtype);
        cli_synth_gen_init(&g, o->seed, cli_synth_heavy(o->dist), &m->t[i]);
        while (left > 0 && rc == ERR_OK) {
            size_t k = left < CLI_SYNTH_CHUNK ? (size_t)left : CLI_SYNTH_CHUNK;
            size_t nb = k * dtype_size(m->dtype);
            cli_synth_fill(&g, vals, k);
            cli_synth_encode(m->dtype, vals, k, enc);
            rc = torch ? tz_writer_write(tw, enc, nb, e) : st_writer_write(sw, enc, nb, e);
            left -= k;
            *bytes += nb;
        }
    }
    if (rc == ERR_OK) {
        rc = torch ? tz_writer_close(tw, e) : st_writer_close(sw, e);
        tw = NULL;
        sw = NULL;
    }
    tz_writer_abort(tw);
    st_writer_abort(sw);
    free(vals);
    free(enc);
    return rc;
}

static int cli_synth_dtype(const char *s, enum dtype *t)
{
    if (strcmp(s, "F32") == 0 || strcmp(s, "f32") == 0)
        *t = DTYPE_F32;
    else if (strcmp(s, "F16") == 0 || strcmp(s, "f16") == 0)
        *t = DTYPE_F16;
    else if (strcmp(s, "BF16") == 0 || strcmp(s, "bf16") == 0)
        *t = DTYPE_BF16;
    else
        return -1;
    return 0;
}

/* A LLaMA width in 1..65536 from s; -1 if it is not one. */
static int cli_synth_width(const char *s, int64_t *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end != '\0' || v < 1 || v > 65536)
        return -1;
    *out = v;
    return 0;
}

/* Parse argv into m and o; -1 to go on, else the exit status. */
static int cli_synth_parse(int argc, char **argv, struct cli_synth_model *m,
                           struct cli_synth_opts *o)
{
    static const struct option longs[] = {{"model", required_argument, NULL, 'm'},
                                          {"blocks", required_argument, NULL, 'b'},
                                          {"hidden", required_argument, NULL, 'H'},
                                          {"ffn", required_argument, NULL, 'F'},
                                          {"dtype", required_argument, NULL, 't'},
                                          {"dist", required_argument, NULL, 'd'},
                                          {"seed", required_argument, NULL, 's'},
                                          {"format", required_argument, NULL, 'f'},
                                          {"out", required_argument, NULL, 'o'},
                                          {"no-embeddings", no_argument, NULL, 'E'},
                                          {"quiet", no_argument, NULL, 'q'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    char *end;
    int ch;
    long blocks = -1;

    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (ch) {
        case 'm': m->model = optarg; break;
        case 'b':
            blocks = strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || blocks < 0 || blocks > 100000)
                return cli_usage_error("synth", "--blocks=%s: not a number in 0..100000", optarg);
            break;
        case 'H':
        case 'F':
            if (cli_synth_width(optarg, ch == 'H' ? &m->hidden : &m->ffn) != 0)
                return cli_usage_error("synth", "--%s=%s: not a number in 1..65536",
                                       ch == 'H' ? "hidden" : "ffn", optarg);
            break;
        case 't':
            if (cli_synth_dtype(optarg, &m->dtype) != 0)
                return cli_usage_error("synth", "--dtype=%s: unknown dtype (F32, F16, BF16)",
                                       optarg);
            break;
        case 'd': o->dist = optarg; break;
        case 's':
            o->seed = strtoull(optarg, &end, 10);
            if (end == optarg || *end != '\0')
                return cli_usage_error("synth", "--seed=%s: not a number", optarg);
            break;
        case 'f': o->format = optarg; break;
        case 'o': o->out = optarg; break;
        case 'E': m->embeddings = 0; break;
        case 'q': o->quiet = 1; break;
        case 'h': fputs(cli_synth_usage, stdout); return 0;
        default: return cli_getopt_error("synth", ch, argv);
        }
    }
    if (optind != argc)
        return cli_usage_error("synth", "unexpected argument '%s'", argv[optind]);
    if (m->model == NULL || o->out == NULL)
        return cli_usage_error("synth", "missing %s", m->model == NULL ? "--model" : "--out");
    if (strcmp(o->dist, "gaussian") != 0 && strcmp(o->dist, "heavy") != 0 &&
        strcmp(o->dist, "mixed") != 0)
        return cli_usage_error("synth", "--dist=%s: unknown distribution (gaussian, heavy, mixed)",
                               o->dist);
    if (strcmp(o->format, "safetensors") != 0 && strcmp(o->format, "torch") != 0)
        return cli_usage_error("synth", "--format=%s: unknown format (safetensors, torch)",
                               o->format);
    m->blocks = blocks >= 0 ? (int)blocks : cli_synth_default_blocks(m->model);
    return -1;
}

int cli_synth_main(int argc, char **argv)
{
    struct cli_synth_model m = {.embeddings = 1, .dtype = DTYPE_F16};
    struct cli_synth_opts o = {.format = "safetensors", .dist = "gaussian"};
    double t0;
    uint64_t bytes = 0;
    struct err e;
    int status = cli_synth_parse(argc, argv, &m, &o);

    if (status >= 0)
        return status;
    ERR_ASSERT(m.model != NULL && o.out != NULL); /* what cli_synth_parse's -1 promises */
    t0 = clock_mono_s();
    if (cli_synth_model_build(&m, &e)) {
        if (e.code == ERR_INVAL)
            cli_settings_error("synth", &e);
        else
            cli_print_error(&e);
        cli_synth_model_free(&m);
        return e.code == ERR_INVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
    }
    if (cli_synth_stream(&m, &o, &bytes, &e)) {
        cli_print_error(&e);
        status = CLI_EXIT_FAILED;
    } else if (!o.quiet) {
        printf("wrote %s: %s, %s x %d blocks, %zu tensors, %s %s, seed %llu, %llu data bytes, "
               "%.1f s\n",
               o.out, o.format, m.model, m.blocks, m.n, dtype_name(m.dtype), o.dist, o.seed,
               (unsigned long long)bytes, clock_mono_s() - t0);
    }
    cli_synth_model_free(&m);
    return status < 0 ? 0 : status;
}
