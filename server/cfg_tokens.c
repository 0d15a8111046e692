/* cfg_tokens.c -- the tokens file of --tokens, parsed strictly (format in
 * cfg.h): every line is a token with named scopes, a whole-line comment or
 * blank; anything else stops the start with "FILE:LINE: what is wrong". */
#include "server/cfg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* The scopes word `w` (`n` bytes): API_SCOPE_* bits, 0 if unknown. */
static int cfg_scopes(const char *w, size_t n)
{
    static const struct {
        const char *name;
        int scopes;
    } names[] = {{"read", API_SCOPE_READ},
                 {"write", API_SCOPE_WRITE},
                 {"read,write", API_SCOPE_READ | API_SCOPE_WRITE},
                 {"write,read", API_SCOPE_READ | API_SCOPE_WRITE}};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == n && memcmp(names[i].name, w, n) == 0)
            return names[i].scopes;
    return 0;
}

/* The token that starts `s`: its length, or 0 with the error in `e` (a '#'
 * or a byte that is not printable ASCII inside it, or a length outside
 * CFG_TOKEN_MIN..CFG_TOKEN_MAX). */
static size_t cfg_token_word(const char *s, const char *path, int lineno, struct err *e)
{
    size_t n = 0;

    for (; s[n] != '\0' && s[n] != ' ' && s[n] != '\t'; n++) {
        if (s[n] == '#') {
            err_set(e, ERR_INVAL,
                    "%s:%d: '#' inside the token (comments are whole lines starting with '#')",
                    path, lineno);
            return 0;
        }
        if (n == CFG_TOKEN_MAX) {
            err_set(e, ERR_INVAL, "%s:%d: token longer than %d characters", path, lineno,
                    CFG_TOKEN_MAX);
            return 0;
        }
    }
    if (n < CFG_TOKEN_MIN)
        err_set(e, ERR_INVAL, "%s:%d: token shorter than %d characters", path, lineno,
                CFG_TOKEN_MIN);
    return n < CFG_TOKEN_MIN ? 0 : n;
}

/* One "TOKEN SCOPES" line (`s`: no newline, leading blanks skipped, not a
 * comment) into *t. Every byte is printable ASCII or a tab (checked by the
 * caller). */
static enum err_code cfg_token_line(const char *s, const char *path, int lineno,
                                    struct api_token *t, struct err *e)
{
    size_t n_tok = cfg_token_word(s, path, lineno, e), n_sc;
    const char *sc;

    t->token = NULL;
    t->scopes = 0;
    if (n_tok == 0)
        return ERR_INVAL;
    sc = s + n_tok + strspn(s + n_tok, " \t");
    n_sc = strcspn(sc, " \t");
    if (n_sc == 0)
        return err_set(e, ERR_INVAL, "%s:%d: no scopes after the token (read, write or read,write)",
                       path, lineno);
    t->scopes = cfg_scopes(sc, n_sc);
    if (t->scopes == 0)
        return err_set(e, ERR_INVAL, "%s:%d: unknown scopes '%.*s' (read, write or read,write)",
                       path, lineno, n_sc > 32 ? 32 : (int)n_sc, sc);
    if (sc[n_sc + strspn(sc + n_sc, " \t")] != '\0')
        return err_set(e, ERR_INVAL, "%s:%d: unexpected text after the scopes", path, lineno);
    t->token = strndup(s, n_tok);
    return t->token ? ERR_OK : err_set(e, ERR_NOMEM, "out of memory");
}

/* Check one raw line of `len` bytes (newline removed): not over
 * CFG_TOKEN_LINE_MAX, printable ASCII and tabs only. */
static enum err_code cfg_token_bytes(const char *s, size_t len, const char *path, int lineno,
                                     struct err *e)
{
    if (len > CFG_TOKEN_LINE_MAX)
        return err_set(e, ERR_INVAL, "%s:%d: line longer than %d bytes", path, lineno,
                       CFG_TOKEN_LINE_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 || ch > 0x7e) && ch != '\t')
            return err_set(e, ERR_INVAL, "%s:%d: byte 0x%02x at column %zu is not printable ASCII",
                           path, lineno, ch, i + 1);
    }
    return ERR_OK;
}

/* Append the token of line `s` to *out, refusing a token seen before. */
static enum err_code cfg_token_add(const char *s, const char *path, int lineno,
                                   struct api_token **out, size_t *n, struct err *e)
{
    struct api_token *grown = realloc(*out, (*n + 1) * sizeof(**out));
    enum err_code rc;

    if (grown == NULL)
        return err_set(e, ERR_NOMEM, "out of memory");
    *out = grown;
    rc = cfg_token_line(s, path, lineno, &grown[*n], e);
    if (rc)
        return rc;
    (*n)++;
    for (size_t i = 0; i + 1 < *n; i++)
        if (strcmp(grown[i].token, grown[*n - 1].token) == 0)
            return err_set(e, ERR_INVAL, "%s:%d: the same token appears twice", path, lineno);
    return ERR_OK;
}

enum err_code cfg_load_tokens(const char *path, struct api_token **out, size_t *n, struct err *e)
{
    enum err_code rc = ERR_OK;
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0;

    *out = NULL;
    *n = 0;
    f = fopen(path, "r");
    if (f == NULL)
        return err_set_errno(e, ERR_INVAL, errno, "--tokens %s", path);
    while (rc == ERR_OK && (got = getline(&line, &cap, f)) != -1) {
        size_t len = (size_t)got;
        const char *p;
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r') /* CRLF files */
            line[--len] = '\0';
        p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\0')
            continue; /* a comment or a blank line */
        rc = cfg_token_bytes(line, len, path, lineno, e);
        if (rc == ERR_OK)
            rc = cfg_token_add(p, path, lineno, out, n, e);
    }
    if (rc == ERR_OK && ferror(f))
        rc = err_set_errno(e, ERR_INVAL, errno, "--tokens %s: read", path);
    free(line);
    fclose(f);
    if (rc == ERR_OK && *n == 0)
        rc = err_set(e, ERR_INVAL, "--tokens %s: no tokens in the file", path);
    if (rc) {
        cfg_tokens_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

void cfg_tokens_free(struct api_token *t, size_t n)
{
    for (size_t i = 0; t != NULL && i < n; i++)
        free(t[i].token);
    free(t);
}
