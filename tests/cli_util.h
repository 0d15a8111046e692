/* cli_util.h -- TEST-ONLY: the farmsd command line run as a user runs it,
 * for test_cli and test_cli_compare: build/san/farmsd in a child process
 * with the given arguments and environment, every other FARMSD_* setting
 * and COLUMNS unset, its stdout and stderr captured whole (up to
 * CLI_OUT_MAX each) and its exit status.
 *
 * Header-only (static inline). Ownership: a struct cli_run owns its out and
 * err (cli_run_free). For the main thread; the child is bounded by alarm().
 */
#ifndef TESTS_CLI_UTIL_H
#define TESTS_CLI_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLI_FARMSD  "build/san/farmsd"
#define CLI_OUT_MAX (4u << 20)

struct cli_run {
    char *out;  /* stdout, NUL-terminated */
    char *err;  /* stderr, NUL-terminated */
    int status; /* exit status, -1 if it did not exit normally */
};

/* The first CLI_OUT_MAX bytes of file `path` (none if it cannot be read),
 * NUL-terminated, in a new buffer; their number to *len when len is not
 * NULL. Exits the test when out of memory. */
static inline char *cli_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = calloc(CLI_OUT_MAX + 1, 1);
    size_t n = 0;

    if (buf == NULL) {
        fprintf(stderr, "cli_slurp: out of memory\n");
        exit(1);
    }
    if (f != NULL)
        n = fread(buf, 1, CLI_OUT_MAX, f);
    if (f != NULL)
        fclose(f);
    if (len != NULL)
        *len = n;
    return buf;
}

/* Run farmsd with `args` (NULL-terminated, without argv[0]) and the
 * environment variables `env` ("NAME=VALUE", NULL-terminated, or NULL) set,
 * every other FARMSD_* and COLUMNS unset; killed after `timeout_s` seconds
 * (SIGALRM: a server that should not have started is stopped). */
static inline struct cli_run cli_run_env(const char *const *args, const char *const *env,
                                         unsigned timeout_s)
{
    static const char *const vars[] = {
        "COLUMNS",       "FARMSD_FORMAT",      "FARMSD_THREADS", "FARMSD_STRICT",
        "FARMSD_PRESET", "FARMSD_LISTEN",      "FARMSD_DATA",    "FARMSD_LEASE",
        "FARMSD_TOKENS", "FARMSD_ALLOW_ROOTS", "FARMSD_DB"};
    char out_path[] = "/tmp/farmsd-cli-outXXXXXX", err_path[] = "/tmp/farmsd-cli-errXXXXXX";
    int fo = mkstemp(out_path), fe = mkstemp(err_path), ws = 0;
    struct cli_run r = {NULL, NULL, -1};
    const char *argv[32] = {CLI_FARMSD};
    pid_t pid;

    for (int i = 0; i < 30 && args[i] != NULL; i++)
        argv[i + 1] = args[i];
    pid = fork();
    if (pid == 0) {
        for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
            unsetenv(vars[i]);
        for (int i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)(uintptr_t)env[i]);
        dup2(fo, 1);
        dup2(fe, 2);
        alarm(timeout_s);
        execv(CLI_FARMSD, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    waitpid(pid, &ws, 0);
    close(fo);
    close(fe);
    r.out = cli_slurp(out_path, NULL);
    r.err = cli_slurp(err_path, NULL);
    unlink(out_path);
    unlink(err_path);
    r.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    return r;
}

static inline void cli_run_free(struct cli_run *r)
{
    free(r->out);
    free(r->err);
}

#endif /* TESTS_CLI_UTIL_H */
