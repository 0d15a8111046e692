/* test_pickle_mem.c -- the unpickler's memory is bounded in bytes
 * (max_pickle_mem, issue 10 item 2): whatever a pickle builds (millions of
 * small values, pointer floods through DUP and BINGET, lists nested deeply,
 * keys shared into trees of 2^60 nodes, one tensor under a million long
 * paths), pkl_parse() and ckpt_open() hold at most max_pickle_mem bytes for
 * it and answer limit_exceeded naming the limit, while real checkpoints need
 * a small fraction of the default. Keys made to collide in the dict index
 * cost time, not memory: their work is bounded too.
 *
 * Each hostile input runs in a child process (fork) under an alarm, so a
 * crash, a blow-up or a hang is a failed check, not a dead test binary. The
 * child resets its peak resident set (/proc/self/clear_refs), runs the case
 * and reports the growth of VmHWM over its starting VmRSS, which must stay
 * under the limit plus 64 MiB (the sanitizers' shadow and quarantine
 * included). The pickles are generated here; the two .pt files come from
 * tests/fixtures/hostile/make_hostile.py.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/formats/ckpt.h"
#include "core/formats/pickle.h"
#include "tests/check.h"

#define MIB         ((uint64_t)1024 * 1024)
#define TEST_LIMIT  (32 * MIB) /* max_pickle_mem in the hostile cases */
#define SLACK_KB    (64L * 1024)
#define CHILD_ALARM 120 /* seconds: a hang fails the check */

struct outcome {
    int rc;            /* enum err_code of the case */
    char category[40]; /* err_category() */
    char msg[256];     /* the error message */
    long grew_kb;      /* VmHWM at the end - VmRSS at the start */
    uint64_t peak;     /* pkl_mem_peak() when the parse succeeded */
};

typedef void case_fn(const void *arg, struct outcome *o);

/* A line "key:   N kB" of /proc/self/status, in kB (-1 if missing). */
static long status_kb(const char *key)
{
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

static void reset_peak(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY);

    if (fd >= 0) {
        if (write(fd, "5", 1) != 1) { /* without it, VmHWM starts higher: stricter */
        }
        close(fd);
    }
}

/* Run `fn` in a child: 1 and *o filled if it finished, 0 if it crashed or hung. */
static int in_child(case_fn *fn, const void *arg, struct outcome *o)
{
    int fds[2], ws = 0;
    pid_t pid;
    ssize_t got;

    memset(o, 0, sizeof(*o));
    if (pipe(fds) != 0)
        return 0;
    pid = fork();
    if (pid == 0) {
        struct outcome r;
        long base;
        close(fds[0]);
        alarm(CHILD_ALARM);
        memset(&r, 0, sizeof(r));
        reset_peak();
        base = status_kb("VmRSS");
        fn(arg, &r);
        r.grew_kb = status_kb("VmHWM") - base;
        if (write(fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
            _exit(3);
        _exit(0);
    }
    close(fds[1]);
    got = pid > 0 ? read(fds[0], o, sizeof(*o)) : -1;
    close(fds[0]);
    if (pid > 0)
        waitpid(pid, &ws, 0);
    if (pid < 0 || got != (ssize_t)sizeof(*o) || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        fprintf(stderr, "child: %s %d\n", WIFSIGNALED(ws) ? "signal" : "exit",
                WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
        return 0;
    }
    return 1;
}

static void note(struct outcome *o, enum err_code rc, const struct err *e)
{
    o->rc = (int)rc;
    if (rc != ERR_OK) {
        snprintf(o->category, sizeof(o->category), "%s", err_category(e));
        snprintf(o->msg, sizeof(o->msg), "%s", e->msg);
    }
}

/* --- Hostile pickles ----------------------------------------------------------------- */

enum trick {
    TRICK_LIST_FLOOD,  /* EMPTY_LIST, then (MARK, 50 000 x EMPTY_LIST, APPENDS)... */
    TRICK_DUP_FLOOD,   /* (MARK, None, DUP x 39 999, APPENDS)... */
    TRICK_MEMO_FLOOD,  /* one memoised list fetched (BINGET) into APPENDS batches */
    TRICK_NESTED_LIST, /* k x EMPTY_LIST, (k - 1) x APPEND: lists nested k deep */
};

struct gen {
    enum trick trick;
    size_t n;         /* values (list flood, nesting) or references (floods) */
    uint64_t limit;   /* max_pickle_mem */
    unsigned char *b; /* generated, owned by the child */
    size_t len;
};

/* b[*at ..] = s[0 .. n), *at advanced. */
static void put_at(unsigned char *b, size_t *at, const char *s, size_t n)
{
    memcpy(b + *at, s, n);
    *at += n;
}

static void put(struct gen *g, const char *s, size_t n)
{
    put_at(g->b, &g->len, s, n);
}

/* Build the pickle of `g` into g->b (about 2 bytes per value at most). */
static int generate(struct gen *g)
{
    g->b = malloc(2 * g->n + 64 * (g->n / 40000 + 1) + 64);
    if (g->b == NULL)
        return 0;
    g->len = 0;
    put(g, "\x80\x02]", 3);
    if (g->trick == TRICK_MEMO_FLOOD)
        put(g,
            "]q\x00"
            "0",
            4); /* memo[0] = a second list, popped */
    if (g->trick == TRICK_NESTED_LIST) {
        for (size_t i = 0; i < g->n; i++)
            g->b[g->len++] = ']';
        for (size_t i = 0; i < g->n; i++)
            g->b[g->len++] = 'a';
        put(g, ".", 1);
        return 1;
    }
    for (size_t done = 0; done < g->n; done += 40000) { /* batches under max_pickle_stack */
        g->b[g->len++] = '(';
        for (size_t i = done; i < g->n && i < done + 40000; i++) {
            if (g->trick == TRICK_LIST_FLOOD)
                g->b[g->len++] = ']';
            else if (g->trick == TRICK_DUP_FLOOD)
                g->b[g->len++] = i == done ? 'N' : '2'; /* DUP needs a value above the MARK */
            else
                put(g, "h\x00", 2);
        }
        g->b[g->len++] = 'e';
    }
    put(g, ".", 1);
    return 1;
}

static void case_parse(const void *arg, struct outcome *o)
{
    struct gen g = *(const struct gen *)arg;
    struct ckpt_limits lim;
    struct pkl_result *r = NULL;
    struct err e = {0};
    enum err_code rc;

    if (!generate(&g)) {
        o->rc = -1;
        return;
    }
    reset_peak(); /* the generated pickle is input, not the parser's */
    ckpt_limits_default(&lim);
    lim.max_pickle_mem = g.limit;
    lim.max_pickle_marks = 1000;
    rc = pkl_parse(g.b, g.len, &lim, &r, &e);
    note(o, rc, &e);
    if (rc == ERR_OK)
        o->peak = pkl_mem_peak(r);
    pkl_free(r);
    free(g.b);
}

/* Refused with limit_exceeded naming max_pickle_mem, within limit + slack. */
static void check_bounded(const char *what, const struct outcome *o, int ran, uint64_t limit)
{
    CHECK(ran);
    CHECK_EQ_INT(o->rc, ERR_TOOBIG);
    CHECK_STR_EQ(o->category, "limit_exceeded");
    CHECK(strstr(o->msg, "max_pickle_mem") != NULL);
    CHECK(o->grew_kb >= 0 && o->grew_kb < (long)(limit / 1024) + SLACK_KB);
    if (!ran || o->rc != ERR_TOOBIG || o->grew_kb >= (long)(limit / 1024) + SLACK_KB)
        fprintf(stderr, "%s: rc %d, %s, grew %ld kB\n", what, o->rc, o->msg, o->grew_kb);
}

/* The reproduction of issue 10: 2 M empty lists (2 MB of pickle, ~800 MB of
 * values unbounded) stop at 32 MiB. */
static void test_list_flood_is_bounded(void)
{
    struct gen g = {TRICK_LIST_FLOOD, 2u << 20, TEST_LIMIT, NULL, 0};
    struct outcome o;
    int ran = in_child(case_parse, &g, &o);

    check_bounded("list flood", &o, ran, TEST_LIMIT);
    CHECK(strstr(o.msg, "for values") != NULL);
}

/* References cost their pointer slot: 8 M DUPs or BINGETs of one value into
 * a list need 64 MiB of items, refused at 32 MiB. */
static void test_reference_floods_are_bounded(void)
{
    struct gen dup = {TRICK_DUP_FLOOD, 8u << 20, TEST_LIMIT, NULL, 0};
    struct gen memo = {TRICK_MEMO_FLOOD, 8u << 20, TEST_LIMIT, NULL, 0};
    struct outcome o;
    int ran;

    ran = in_child(case_parse, &dup, &o);
    check_bounded("DUP flood", &o, ran, TEST_LIMIT);
    CHECK(strstr(o.msg, "for a container's items") != NULL);
    ran = in_child(case_parse, &memo, &o);
    check_bounded("BINGET flood", &o, ran, TEST_LIMIT);
    CHECK(strstr(o.msg, "for a container's items") != NULL);
}

/* Lists nested 50 000 deep parse (the parser does not recurse; walkers
 * bound their depth), and 50 000 x 2 values stay well under the limit. */
static void test_nested_lists(void)
{
    struct gen g = {TRICK_NESTED_LIST, 50000, TEST_LIMIT, NULL, 0};
    struct outcome o;

    CHECK(in_child(case_parse, &g, &o));
    CHECK_EQ_INT(o.rc, ERR_OK);
    CHECK(o.peak > 50000 * sizeof(struct pkl_value) && o.peak <= TEST_LIMIT);
}

/* Every value is counted, and the limit is exact: a parse that peaks at P
 * bytes passes with max_pickle_mem = P and fails with P - 1. */
static void test_limit_is_exact(void)
{
    struct gen g = {TRICK_LIST_FLOOD, 100000, 256u * MIB, NULL, 0};
    struct outcome o;
    uint64_t peak;

    CHECK(in_child(case_parse, &g, &o));
    CHECK_EQ_INT(o.rc, ERR_OK);
    peak = o.peak;
    /* 100 001 values, and the root list's items (8 bytes each, doubled at most) */
    CHECK(peak >= 100001 * sizeof(struct pkl_value) + (uint64_t)100000 * 8);
    CHECK(peak <= 100001 * sizeof(struct pkl_value) * 11 / 10 + (uint64_t)3 * 100000 * 8 + 2 * MIB);
    g.limit = peak;
    CHECK(in_child(case_parse, &g, &o));
    CHECK_EQ_INT(o.rc, ERR_OK);
    CHECK_EQ_INT(o.peak, peak);
    g.limit = peak - 1;
    CHECK(in_child(case_parse, &g, &o));
    CHECK_EQ_INT(o.rc, ERR_TOOBIG);
    CHECK_STR_EQ(o.category, "limit_exceeded");
}

/* --- Keys shared into trees ---------------------------------------------------------- */

struct keygen {
    int depth; /* t0 = (None, None); t(i+1) = (ti, ti); {t_depth: None} */
};

static void case_key(const void *arg, struct outcome *o)
{
    const struct keygen *k = arg;
    unsigned char b[512];
    size_t n = 0;
    struct pkl_result *r = NULL;
    struct err e = {0};
    enum err_code rc;

    put_at(b, &n, "\x80\x02}N2\x86", 6);
    for (int i = 0; i < k->depth; i++)
        b[n++] = '2', b[n++] = 0x86;
    put_at(b, &n, "Ns.", 3);
    rc = pkl_parse(b, n, NULL, &r, &e);
    note(o, rc, &e);
    pkl_free(r);
}

/* A key of 60 nested pairs made with DUP is 2^62 values as a tree: hashing
 * it never ended. Keys are limited to 4096 values counted as a tree. */
static void test_shared_key_trees(void)
{
    struct keygen k60 = {60}, k10 = {10}, k11 = {11};
    struct outcome o;

    CHECK(in_child(case_key, &k60, &o));
    CHECK_EQ_INT(o.rc, ERR_TOOBIG);
    CHECK_STR_EQ(o.category, "limit_exceeded");
    CHECK(in_child(case_key, &k10, &o)); /* 4095 values: allowed */
    CHECK_EQ_INT(o.rc, ERR_OK);
    CHECK(in_child(case_key, &k11, &o)); /* 8191 values */
    CHECK_EQ_INT(o.rc, ERR_TOOBIG);
    CHECK(strstr(o.msg, "more than 4096 values") != NULL);
}

/* A frozenset (a possible key) cannot grow after it is built. */
static void test_frozenset_is_frozen(void)
{
    static const unsigned char add_set[] = "\x80\x04\x8f(K\x01\x90.";
    static const unsigned char add_frozen[] = "\x80\x04(K\x01\x91(K\x02\x90.";
    struct pkl_result *r = NULL;
    struct err e = {0};

    CHECK_EQ_INT(pkl_parse(add_set, sizeof(add_set) - 1, NULL, &r, &e), ERR_OK);
    CHECK(r != NULL && pkl_root(r)->kind == PKL_SET && pkl_root(r)->n_items == 1);
    pkl_free(r);
    r = NULL;
    CHECK_EQ_INT(pkl_parse(add_frozen, sizeof(add_frozen) - 1, NULL, &r, &e), ERR_FORMAT);
    CHECK_STR_EQ(err_category(&e), "invalid_pickle");
    CHECK(strstr(e.msg, "ADDITEMS on a frozenset") != NULL);
}

/* --- Keys made to collide ------------------------------------------------------------ */

static uint64_t inverse(uint64_t a) /* of an odd number, mod 2^64 (Newton) */
{
    uint64_t x = a;

    for (int i = 0; i < 6; i++)
        x *= 2 - a * x;
    return x;
}

/* The int whose dict slot hash (pkl_key_hash of an int, then fmix64, as in
 * core/pickle.c) is `y`: both steps are bijections, so the attacker inverts
 * them. If core/pickle.c changes its hash these keys stop colliding and
 * test_colliding_keys fails: update this mirror. */
static uint64_t int_with_slot_hash(uint64_t y)
{
    const uint64_t h0 = 0xCBF29CE484222325ull;

    y ^= y >> 33;
    y *= inverse(0xC4CEB9FE1A85EC53ull);
    y ^= y >> 33;
    y *= inverse(0xFF51AFD7ED558CCDull);
    y ^= y >> 33;
    y *= inverse(0x100000001B3ull);
    y ^= h0;
    return y - 0x9E3779B97F4A7C15ull - (h0 << 6) - (h0 >> 2);
}

/* {k: None for 40 000 int keys}: colliding (all hash to a multiple of 2^40)
 * or the plain 0 .. 39 999. */
static void case_keys(const void *arg, struct outcome *o)
{
    int colliding = *(const int *)arg;
    size_t n = 40000, len = 0;
    unsigned char *b = malloc(n * 11 + 16);
    struct pkl_result *r = NULL;
    struct err e = {0};
    enum err_code rc;

    if (b == NULL) {
        o->rc = -1;
        return;
    }
    put_at(b, &len, "\x80\x02}(", 4);
    for (size_t j = 1; j <= n; j++) {
        uint64_t k = colliding ? int_with_slot_hash((uint64_t)j << 40) : j;
        b[len++] = 0x8A; /* LONG1, 8 bytes */
        b[len++] = 8;
        for (int i = 0; i < 8; i++)
            b[len++] = (unsigned char)(k >> (8 * i));
        b[len++] = 'N';
    }
    put_at(b, &len, "u.", 2);
    rc = pkl_parse(b, len, NULL, &r, &e);
    note(o, rc, &e);
    if (rc == ERR_OK)
        o->peak = pkl_root(r)->n_items;
    pkl_free(r);
    free(b);
}

/* 40 000 colliding keys took 13 s (n^2 / 2 probes): the key work of a parse
 * is bounded by its length, and real dicts stay far inside it. */
static void test_colliding_keys(void)
{
    int colliding = 1, plain = 0;
    struct outcome o;

    CHECK(in_child(case_keys, &colliding, &o));
    CHECK_EQ_INT(o.rc, ERR_TOOBIG);
    CHECK_STR_EQ(o.category, "limit_exceeded");
    CHECK(strstr(o.msg, "keys made to collide") != NULL);
    CHECK(in_child(case_keys, &plain, &o));
    CHECK_EQ_INT(o.rc, ERR_OK);
    CHECK_EQ_INT(o.peak, 40000);
}

/* --- Whole checkpoints ---------------------------------------------------------------- */

struct open_case {
    const char *path;
    uint64_t limit;
};

static void case_open(const void *arg, struct outcome *o)
{
    const struct open_case *oc = arg;
    struct ckpt_limits lim;
    struct ckpt *c = NULL;
    struct err e = {0};

    ckpt_limits_default(&lim);
    lim.max_pickle_mem = oc->limit;
    note(o, ckpt_open(oc->path, CKPT_FORMAT_UNKNOWN, &lim, &c, &e), &e);
    ckpt_close(c);
}

/* The 17 KB .pt of the issue (16.8 M lists, 6.6 GB before) and a 3 KB .pt
 * listing one tensor under a million 60 KB paths (60 GB of names). */
static void test_hostile_checkpoints(void)
{
    struct open_case lists = {"tests/fixtures/hostile/pt_pickle_list_flood.pt", TEST_LIMIT};
    struct open_case names = {"tests/fixtures/hostile/pt_tensor_name_flood.pt", TEST_LIMIT};
    struct outcome o;
    int ran;

    ran = in_child(case_open, &lists, &o);
    check_bounded("pt_pickle_list_flood.pt", &o, ran, TEST_LIMIT + 16 * MIB); /* + data.pkl */
    ran = in_child(case_open, &names, &o);
    check_bounded("pt_tensor_name_flood.pt", &o, ran, TEST_LIMIT);
    CHECK(strstr(o.msg, "tensor names") != NULL);
}

/* Every torch checkpoint among the fixtures opens with 1/128 of the default
 * (2 MiB): the default leaves room for checkpoints ~100x larger in tensors. */
static void test_real_checkpoints_need_little(void)
{
    static const char *const dirs[] = {
        "tests/fixtures/checkpoints/mlp", "tests/fixtures/checkpoints/cnn",
        "tests/fixtures/checkpoints/llama", "tests/fixtures/checkpoints/gpt2",
        "tests/fixtures/checkpoints/special"};
    struct ckpt_limits def;
    int n_opened = 0;

    ckpt_limits_default(&def);
    CHECK_EQ_INT(def.max_pickle_mem, 256 * MIB);
    for (size_t d = 0; d < sizeof(dirs) / sizeof(dirs[0]); d++) {
        DIR *dir = opendir(dirs[d]);
        struct dirent *de;
        CHECK(dir != NULL);
        while (dir != NULL && (de = readdir(dir)) != NULL) {
            char path[512];
            struct ckpt_limits small = def;
            struct ckpt *c = NULL;
            struct err e = {0};
            size_t n = strlen(de->d_name);
            if (n < 4 || (strcmp(de->d_name + n - 3, ".pt") != 0 &&
                          strcmp(de->d_name + n - 4, ".pth") != 0 &&
                          strcmp(de->d_name + n - 5, ".ckpt") != 0))
                continue;
            snprintf(path, sizeof(path), "%s/%s", dirs[d], de->d_name);
            if (ckpt_open(path, CKPT_FORMAT_UNKNOWN, &def, &c, &e) != ERR_OK)
                continue; /* refused for other reasons (tested elsewhere) */
            ckpt_close(c);
            c = NULL;
            small.max_pickle_mem = 2 * MIB;
            CHECK_EQ_INT(ckpt_open(path, CKPT_FORMAT_UNKNOWN, &small, &c, &e), ERR_OK);
            if (c == NULL)
                fprintf(stderr, "%s: %s\n", path, e.msg);
            ckpt_close(c);
            n_opened++;
        }
        if (dir != NULL)
            closedir(dir);
    }
    CHECK(n_opened >= 20);
}

int main(void)
{
    test_list_flood_is_bounded();
    test_reference_floods_are_bounded();
    test_nested_lists();
    test_limit_is_exact();
    test_shared_key_trees();
    test_frozenset_is_frozen();
    test_colliding_keys();
    test_hostile_checkpoints();
    test_real_checkpoints_need_little();
    return check_report("test_pickle_mem");
}
