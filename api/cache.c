/* cache.c -- see cache.h. A small open list with an LRU clock: at most
 * API_CACHE_SLOTS entries, evicted oldest-first by `used` stamp, so lookups
 * are a linear scan of short keys (the ETag) — cheap for a few hundred. */
#include "api/cache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/formats/thash.h"

#define API_CACHE_SLOTS 256
#define API_CACHE_KEY   72

struct api_cache_entry {
    char etag[API_CACHE_KEY]; /* "" for a free slot */
    char content_type[64];
    char *body; /* owned */
    size_t len;
    uint64_t used; /* LRU clock at the last hit or insert */
};

struct api_cache {
    pthread_mutex_t mu;
    size_t max_bytes;
    size_t bytes; /* bodies held */
    uint64_t clock;
    struct thash_md *md; /* SHA-256 for ETags, looked up once; NULL: per call */
    struct api_cache_entry slots[API_CACHE_SLOTS];
};

enum err_code api_cache_new(size_t max_bytes, struct api_cache **out, struct err *e)
{
    struct api_cache *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for the response cache");
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    if (thash_md_new(&c->md, NULL) != ERR_OK)
        c->md = NULL; /* ETags still work, a little slower */
    *out = c;
    return ERR_OK;
}

void api_cache_free(struct api_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < API_CACHE_SLOTS; i++)
        free(c->slots[i].body);
    thash_md_free(c->md);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int api_cache_etag(const struct api_cache *c, const char *head, const char *key, char *etag)
{
    struct thash h = {0};
    unsigned char d[THASH_DIGEST_LEN];
    char hex[THASH_HEX_LEN];

    if (thash_init_md(&h, c != NULL ? c->md : NULL, NULL) != ERR_OK ||
        thash_update(&h, head, strlen(head), NULL) != ERR_OK ||
        thash_update(&h, key, strlen(key), NULL) != ERR_OK || thash_final(&h, d, NULL) != ERR_OK) {
        thash_free(&h);
        return 0;
    }
    thash_hex(d, hex);
    etag[0] = '"';
    memcpy(etag + 1, hex, API_CACHE_ETAG_LEN - 3);
    etag[API_CACHE_ETAG_LEN - 2] = '"';
    etag[API_CACHE_ETAG_LEN - 1] = '\0';
    return 1;
}

static struct api_cache_entry *api_cache_find(struct api_cache *c, const char *etag)
{
    for (size_t i = 0; i < API_CACHE_SLOTS; i++)
        if (c->slots[i].etag[0] != '\0' && strcmp(c->slots[i].etag, etag) == 0)
            return &c->slots[i];
    return NULL;
}

int api_cache_get(struct api_cache *c, const char *etag, char **body, size_t *len,
                  char *content_type)
{
    struct api_cache_entry *en;
    char *copy = NULL;

    if (c == NULL || etag[0] == '\0')
        return 0;
    pthread_mutex_lock(&c->mu);
    en = api_cache_find(c, etag);
    if (en != NULL) {
        copy = malloc(en->len ? en->len : 1);
        if (copy != NULL) {
            memcpy(copy, en->body, en->len);
            *len = en->len;
            memcpy(content_type, en->content_type, sizeof(en->content_type));
            en->used = ++c->clock;
        }
    }
    pthread_mutex_unlock(&c->mu);
    *body = copy;
    return copy != NULL;
}

static void api_cache_drop(struct api_cache *c, struct api_cache_entry *en)
{
    c->bytes -= en->len;
    free(en->body);
    memset(en, 0, sizeof(*en));
}

/* A free slot, evicting least recently used entries until `len` more bytes fit. */
static struct api_cache_entry *api_cache_room(struct api_cache *c, size_t len)
{
    struct api_cache_entry *free_slot = NULL;

    for (;;) {
        struct api_cache_entry *oldest = NULL;
        free_slot = NULL;
        for (size_t i = 0; i < API_CACHE_SLOTS; i++) {
            struct api_cache_entry *en = &c->slots[i];
            if (en->etag[0] == '\0') {
                free_slot = free_slot ? free_slot : en;
                continue;
            }
            if (oldest == NULL || en->used < oldest->used)
                oldest = en;
        }
        if (free_slot != NULL && c->bytes + len <= c->max_bytes)
            return free_slot;
        if (oldest == NULL)
            return NULL;
        api_cache_drop(c, oldest);
    }
}

void api_cache_put(struct api_cache *c, const char *etag, const char *body, size_t len,
                   const char *content_type)
{
    struct api_cache_entry *en;
    char *copy;

    if (c == NULL || etag[0] == '\0' || strlen(etag) >= API_CACHE_KEY || len > c->max_bytes / 4)
        return;
    copy = malloc(len ? len : 1);
    if (copy == NULL)
        return;
    memcpy(copy, body, len);
    pthread_mutex_lock(&c->mu);
    en = api_cache_find(c, etag) ? NULL : api_cache_room(c, len);
    if (en != NULL) {
        snprintf(en->etag, sizeof(en->etag), "%s", etag);
        snprintf(en->content_type, sizeof(en->content_type), "%s", content_type);
        en->body = copy;
        en->len = len;
        en->used = ++c->clock;
        c->bytes += len;
        copy = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    free(copy);
}
