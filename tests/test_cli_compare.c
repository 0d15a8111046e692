/* test_cli_compare.c -- `farmsd compare FILE_A FILE_B` as a user runs it
 * (build/san/farmsd, real fixture files): the trained MLP's fc2 in F32
 * against its BF16 copy with the reference alphas of
 * tests/fixtures/numerics/mlpA_fc2{,_bf16}.json, the LLaMA fixture against
 * its GGUF conversion (every layer paired by role, equal alphas), the
 * --db result cache (the second run analyses 0 tensors: the --verbose
 * counter on stderr; in SQLite, and in PostgreSQL at FARMSD_TEST_PG_URL as
 * `make test` provides), the table and CSV, and the usage errors. Also the
 * block / role / params members of `farmsd analyze --format json`.
 * Run from the repository root. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tests/check.h"
#include "tests/cli_util.h"
#include "tests/pg_util.h"

#define FIX "tests/fixtures/"

/* farms_llm of mlpA_fc2.json and mlpA_fc2_bf16.json (results.farms_llm.alpha) */
#define FC2_ALPHA_F32  1.8351573944091797
#define FC2_ALPHA_BF16 1.8344659805297852

/* farmsd run with `args` and `env` as cli_run_env() does, killed after 120 s. */
static struct cli_run run_env(const char *const *args, const char *const *env)
{
    return cli_run_env(args, env, 120);
}

static struct cli_run run(const char *const *args)
{
    return run_env(args, NULL);
}

static const cJSON *jget(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* tests/fixtures/numerics/mlpA_fc2_bf16.safetensors with its one tensor
 * renamed from "weight" to "fc2.weight" (the header rewritten, the bytes
 * kept), at `path`. */
static void write_fc2_bf16(const char *path)
{
    size_t len = 0, hlen;
    char *b = cli_slurp(FIX "numerics/mlpA_fc2_bf16.safetensors", &len), *text = NULL;
    uint64_t n = 0;
    cJSON *h = NULL, *w;
    FILE *f = NULL;

    CHECK(len > 8);
    for (int i = 7; i >= 0; i--)
        n = n << 8 | (unsigned char)b[i];
    CHECK(n + 8 <= len);
    h = cJSON_ParseWithLength(b + 8, (size_t)n);
    w = cJSON_DetachItemFromObject(h, "weight");
    CHECK(w != NULL);
    cJSON_AddItemToObject(h, "fc2.weight", w);
    text = cJSON_PrintUnformatted(h);
    hlen = strlen(text);
    f = fopen(path, "wb");
    CHECK(f != NULL);
    for (int i = 0; f != NULL && i < 8; i++)
        fputc((int)((hlen + (8 - hlen % 8) % 8) >> (8 * i) & 0xff), f);
    if (f != NULL) {
        fputs(text, f);
        for (size_t pad = (8 - hlen % 8) % 8; pad > 0; pad--)
            fputc(' ', f);
        fwrite(b + 8 + n, 1, len - 8 - (size_t)n, f);
        fclose(f);
    }
    cJSON_free(text);
    cJSON_Delete(h);
    free(b);
}

/* fc2 in F32 (mlpA_digits) against its BF16 copy: fc2.weight pairs by
 * name with both reference alphas, delta = b - a; fc1 and fc3 are only in A. */
static void test_f32_against_bf16(void)
{
    char bf16[] = "/tmp/farmsd-cmp-bf16-XXXXXX";
    int fd = mkstemp(bf16);
    const char *args[] = {"compare", (FIX "numerics/mlpA_digits.safetensors"),
                          bf16,      "--format",
                          "json",    "--metric",
                          "alpha,D", NULL};
    struct cli_run r;
    cJSON *j;
    const cJSON *l;

    CHECK(fd >= 0);
    close(fd);
    write_fc2_bf16(bf16);
    r = run(args);
    CHECK_EQ_INT(r.status, 0);
    j = cJSON_Parse(r.out);
    CHECK(j != NULL);
    CHECK_STR_EQ(jstr(jget(j, "a"), "format"), "safetensors");
    CHECK_STR_EQ(jstr(jget(j, "b"), "preset"), "farms-llm");
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "layers")), 1);
    l = cJSON_GetArrayItem(jget(j, "layers"), 0);
    CHECK_STR_EQ(jstr(l, "key"), "fc2.weight");
    CHECK_STR_EQ(jstr(l, "matched_by"), "name");
    CHECK_REL(jnum(jget(l, "a"), "alpha"), FC2_ALPHA_F32, 1e-6);
    CHECK_REL(jnum(jget(l, "b"), "alpha"), FC2_ALPHA_BF16, 1e-6);
    CHECK_NEAR(jnum(jget(l, "delta"), "alpha"), FC2_ALPHA_BF16 - FC2_ALPHA_F32, 1e-6);
    CHECK_NEAR(jnum(jget(l, "delta"), "alpha"),
               jnum(jget(l, "b"), "alpha") - jnum(jget(l, "a"), "alpha"), 1e-15);
    CHECK(cJSON_IsNumber(jget(jget(l, "delta"), "D")));
    CHECK(jget(jget(l, "delta"), "log_norm") == NULL); /* only the metrics asked for */
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "only_a")), 2);
    CHECK_STR_EQ(cJSON_GetArrayItem(jget(j, "only_a"), 0)->valuestring, "fc1.weight");
    CHECK_STR_EQ(cJSON_GetArrayItem(jget(j, "only_a"), 1)->valuestring, "fc3.weight");
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "only_b")), 0);
    CHECK_REL(jnum(jget(jget(j, "summary"), "alpha"), "b"), FC2_ALPHA_BF16, 1e-6);
    cJSON_Delete(j);
    cli_run_free(&r);
    args[3] = "--format=table"; /* the table ends with the unpaired and the means */
    args[4] = "--quiet";
    r = run(args);
    CHECK_EQ_INT(r.status, 0);
    CHECK(strstr(r.out, "\n1 pair; 2 only in A; 0 only in B\n"
                        "only in A: fc1.weight\nonly in A: fc3.weight\nmean alpha: A ") != NULL);
    CHECK(strstr(r.out, "fc2.weight  =        ") != NULL);
    cli_run_free(&r);
    unlink(bf16);
}

/* The HF LLaMA fixture against llama.cpp's F32 conversion of it: every
 * weight matrix pairs by role (the embedding too), with the same alpha. */
static void test_hf_against_gguf(void)
{
    const char *args[] = {"compare",
                          (FIX "checkpoints/llama/llama_step0500.safetensors"),
                          (FIX "gguf/llama_f32.gguf"),
                          "--format",
                          "json",
                          NULL};
    struct cli_run r = run(args);
    cJSON *j = cJSON_Parse(r.out);
    const cJSON *l;
    int n_ok = 0;

    CHECK_EQ_INT(r.status, 0);
    CHECK_STR_EQ(jstr(jget(j, "b"), "format"), "gguf");
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "layers")), 15); /* embedding + 2 blocks x 7 */
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "only_a")), 0);
    CHECK_EQ_INT(cJSON_GetArraySize(jget(j, "only_b")), 0);
    l = cJSON_GetArrayItem(jget(j, "layers"), 0);
    CHECK_STR_EQ(jstr(l, "key"), "embedding");
    l = cJSON_GetArrayItem(jget(j, "layers"), 7);
    CHECK_STR_EQ(jstr(l, "key"), "block 0 mlp_down");
    CHECK_STR_EQ(jstr(l, "name_a"), "model.layers.0.mlp.down_proj.weight");
    CHECK_STR_EQ(jstr(l, "name_b"), "blk.0.ffn_down.weight");
    cJSON_ArrayForEach(l, jget(j, "layers"))
    {
        double a = jnum(jget(l, "a"), "alpha");
        if (strcmp(jstr(l, "key"), "embedding") == 0)
            continue;
        CHECK_STR_EQ(jstr(l, "matched_by"), "role");
        CHECK(a > 1.5 && a < 4.0);
        CHECK_NEAR(jnum(jget(l, "delta"), "alpha"), 0.0, 0.0); /* the same bytes */
        n_ok += isfinite(a);
    }
    CHECK_EQ_INT(n_ok, 14);
    CHECK_NEAR(jnum(jget(jget(j, "summary"), "alpha"), "delta"), 0.0, 0.0);
    cJSON_Delete(j);
    cli_run_free(&r);
}

/* Count "N tensors analysed, M from the cache" of side `side` ('A'/'B'):
 * 1 if the line is there. */
static int counts(const char *err, char side, int *analysed, int *cached)
{
    char tag[16];
    const char *p;
    char *end = NULL;

    snprintf(tag, sizeof(tag), "farmsd: %c: ", side);
    p = strstr(err, tag);
    p = p ? strstr(p + strlen(tag), ": ") : NULL;
    if (p == NULL)
        return 0;
    *analysed = (int)strtol(p + 2, &end, 10);
    if (strncmp(end, " tensors analysed, ", 19) != 0)
        return 0;
    *cached = (int)strtol(end + 19, &end, 10);
    return strncmp(end, " from the cache\n", 16) == 0;
}

/* --db: the first run analyses every tensor and caches it; the second
 * (and one with FARMSD_DB instead of --db) analyses none and prints the
 * same numbers. A tensor with the same bytes in another file (the GGUF
 * conversion) comes from the cache too. */
static void test_db_cache(void)
{
    char dir[] = "/tmp/farmsd-cmp-db-XXXXXX", db[96], env[128], cmd[128];
    const char *a = FIX "checkpoints/llama/llama_step0000.safetensors";
    const char *b = FIX "checkpoints/llama/llama_step0100.safetensors";
    const char *args[] = {"compare", a, b, "--db", db, "--verbose", "--format", "csv", NULL};
    const char *args_env[] = {"compare", a, b, "--verbose", "--format", "csv", NULL};
    const char *args_gguf[] = {"compare",
                               (FIX "gguf/llama_f32.gguf"),
                               (FIX "checkpoints/llama/llama_step0500.safetensors"),
                               "--db",
                               db,
                               "--verbose",
                               NULL};
    const char *envs[] = {env, NULL};
    struct cli_run r1, r2, r3, r4;
    int na = -1, ca = -1, nb = -1, cb = -1;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(db, sizeof(db), "%s/cache.db", dir);
    snprintf(env, sizeof(env), "FARMSD_DB=sqlite:%s", db);
    r1 = run(args);
    CHECK_EQ_INT(r1.status, 0);
    CHECK(counts(r1.err, 'A', &na, &ca) && counts(r1.err, 'B', &nb, &cb));
    CHECK_EQ_INT(na, 14);
    CHECK_EQ_INT(ca, 0);
    CHECK_EQ_INT(nb, 14);
    CHECK_EQ_INT(cb, 0);
    r2 = run(args);
    CHECK_EQ_INT(r2.status, 0);
    CHECK(counts(r2.err, 'A', &na, &ca) && counts(r2.err, 'B', &nb, &cb));
    CHECK_EQ_INT(na, 0);
    CHECK_EQ_INT(ca, 14);
    CHECK_EQ_INT(nb, 0);
    CHECK_EQ_INT(cb, 14);
    CHECK_STR_EQ(r2.out, r1.out); /* the cached results are the results */
    r3 = run_env(args_env, envs);
    CHECK_EQ_INT(r3.status, 0);
    CHECK(counts(r3.err, 'A', &na, &ca) && counts(r3.err, 'B', &nb, &cb));
    CHECK_EQ_INT(na + nb, 0);
    CHECK_EQ_INT(ca + cb, 28);
    CHECK_STR_EQ(r3.out, r1.out);
    r4 = run(args_gguf); /* step 500 is new: its tensors are analysed for A, found for B */
    CHECK_EQ_INT(r4.status, 0);
    CHECK(counts(r4.err, 'A', &na, &ca) && counts(r4.err, 'B', &nb, &cb));
    CHECK_EQ_INT(na, 14);
    CHECK_EQ_INT(nb, 0);
    CHECK_EQ_INT(cb, 14);
    cli_run_free(&r1);
    cli_run_free(&r2);
    cli_run_free(&r3);
    cli_run_free(&r4);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* The same cache in PostgreSQL (FARMSD_TEST_PG_URL, wiped first): the
 * second run analyses nothing. */
static void test_db_cache_postgresql(void)
{
    const char *url = pgu_url();
    const char *args[] = {"compare",
                          (FIX "checkpoints/llama/llama_step0000.safetensors"),
                          (FIX "checkpoints/llama/llama_step0500.safetensors"),
                          "--db",
                          url,
                          "--verbose",
                          "--format",
                          "json",
                          NULL};
    struct cli_run r1, r2;
    int na = -1, ca = -1, nb = -1, cb = -1;

    if (url == NULL || pgu_reset(url) != 0) {
        CHECK(!"PostgreSQL test database reset");
        return;
    }
    r1 = run(args);
    CHECK_EQ_INT(r1.status, 0);
    CHECK(counts(r1.err, 'A', &na, &ca) && counts(r1.err, 'B', &nb, &cb));
    CHECK_EQ_INT(na + nb, 28);
    r2 = run(args);
    CHECK_EQ_INT(r2.status, 0);
    CHECK(counts(r2.err, 'A', &na, &ca) && counts(r2.err, 'B', &nb, &cb));
    CHECK_EQ_INT(na + nb, 0);
    CHECK_EQ_INT(ca + cb, 28);
    CHECK_STR_EQ(r2.out, r1.out);
    cli_run_free(&r1);
    cli_run_free(&r2);
    pgu_reset(url);
}

/* The table and the CSV print the same pairs as the JSON. */
static void test_table_and_csv(void)
{
    const char *a = FIX "checkpoints/llama/llama_step0000.safetensors";
    const char *b = FIX "gguf/llama_f32.gguf";
    const char *t_args[] = {"compare", a, b, NULL};
    const char *c_args[] = {"compare", a, b, "--format", "csv", "--metric", "alpha", NULL};
    struct cli_run t = run(t_args), c = run(c_args);
    int lines = 0;

    CHECK_EQ_INT(t.status, 0);
    CHECK(strncmp(t.out, "name_a", 6) == 0);
    CHECK(strstr(t.out, "alpha_a") != NULL && strstr(t.out, "alpha_b") != NULL);
    CHECK(strstr(t.out, "\n15 pairs; 0 only in A; 0 only in B\n") != NULL);
    CHECK(strstr(t.out, "\nmean alpha: A ") != NULL);
    CHECK_EQ_INT(c.status, 0);
    CHECK(strncmp(c.out,
                  "key,matched_by,name_a,name_b,block,role,status_a,status_b,alpha_a,alpha_b,"
                  "alpha_delta\n",
                  86) == 0);
    CHECK(strstr(c.out, "\nblock 1 mlp_up,role,model.layers.1.mlp.up_proj.weight,"
                        "blk.1.ffn_up.weight,1,mlp_up,ok,ok,") != NULL);
    for (const char *p = c.out; *p; p++)
        lines += *p == '\n';
    CHECK_EQ_INT(lines, 16); /* header + 15 pairs */
    cli_run_free(&t);
    cli_run_free(&c);
}

/* Usage and input errors: exit 2 with one line naming the problem. */
static void test_errors(void)
{
    static const struct {
        const char *args[8];
        int status;
        const char *err;
    } cases[] = {{{"compare", FIX "gguf/llama_f32.gguf", NULL},
                  2,
                  "farmsd compare: two files, FILE_A and FILE_B, got 1\n"},
                 {{"compare", "a", "b", "--format", "xml", NULL},
                  2,
                  "farmsd compare: --format=xml: unknown format (table, json, csv)\n"},
                 {{"compare", "a", "b", "--metric", "alpha,beta", NULL},
                  2,
                  "farmsd compare: --metric=alpha,beta: unknown metric 'beta' (alpha, D, "},
                 {{"compare", "a", "b", "--threads", "x", NULL}, 2, "--threads"},
                 {{"compare", "a", "b", "--bogus", NULL}, 2, "--bogus"},
                 {{"compare", FIX "gguf/llama_f32.gguf", "/nonexistent/b.safetensors", NULL},
                  2,
                  "error: not found: "},
                 {{"compare", "a", "b", "--db", "/nonexistent/dir/cache.db", NULL},
                  2,
                  "farmsd compare: --db=/nonexistent/dir/cache.db: "}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cli_run r = run(cases[i].args);
        CHECK_EQ_INT(r.status, cases[i].status);
        if (strstr(r.err, cases[i].err) == NULL)
            fprintf(stderr, "case %zu: stderr \"%s\" lacks \"%s\"\n", i, r.err, cases[i].err);
        CHECK(strstr(r.err, cases[i].err) != NULL);
        CHECK_STR_EQ(r.out, "");
        cli_run_free(&r);
    }
}

/* `farmsd --help` lists the command; `farmsd compare --help` documents it. */
static void test_help(void)
{
    const char *top[] = {"--help", NULL}, *cmd[] = {"compare", "--help", NULL};
    struct cli_run t = run(top), c = run(cmd);

    CHECK_EQ_INT(t.status, 0);
    CHECK(strstr(t.out, "\n  compare A B ") != NULL);
    CHECK_EQ_INT(c.status, 0);
    CHECK(strncmp(c.out, "usage: farmsd compare FILE_A FILE_B", 35) == 0);
    CHECK(strstr(c.out, "[FARMSD_DB]") != NULL);
    cli_run_free(&t);
    cli_run_free(&c);
}

/* analyze's layer objects carry block, role and params (the layer JSON). */
static void test_analyze_json_grouping(void)
{
    const char *args[] = {"analyze", (FIX "checkpoints/llama/llama_step0500.safetensors"),
                          "--format", "json", NULL};
    struct cli_run r = run(args);
    cJSON *j = cJSON_Parse(r.out);
    const cJSON *l, *down = NULL, *norm = NULL;

    CHECK_EQ_INT(r.status, 0);
    cJSON_ArrayForEach(l, jget(j, "layers"))
    {
        if (strcmp(jstr(l, "name"), "model.layers.1.mlp.down_proj.weight") == 0)
            down = l;
        if (strcmp(jstr(l, "name"), "model.norm.weight") == 0)
            norm = l;
    }
    CHECK(down != NULL && norm != NULL);
    CHECK_EQ_INT(jnum(down, "block"), 1);
    CHECK_STR_EQ(jstr(down, "role"), "mlp_down");
    CHECK_EQ_INT(jnum(down, "params"), 64 * 128);
    CHECK(cJSON_IsNull(jget(norm, "block")));
    CHECK(cJSON_IsNull(jget(norm, "role")));
    CHECK_EQ_INT(jnum(norm, "params"), 64);
    cJSON_Delete(j);
    cli_run_free(&r);
}

int main(void)
{
    test_f32_against_bf16();
    test_hf_against_gguf();
    test_db_cache();
    test_db_cache_postgresql();
    test_table_and_csv();
    test_errors();
    test_help();
    test_analyze_json_grouping();
    return check_report("test_cli_compare");
}
