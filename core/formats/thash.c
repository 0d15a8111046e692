/* thash.c -- SHA-256 of tensors and byte ranges via libcrypto EVP. See
 * thash.h. No state outside the caller's struct thash: thread-safe.
 *
 * Speed: the bytes are hashed where ckpt_tensor_read put them, in one EVP
 * update; libcrypto picks the SHA-NI / AVX2 code path itself.
 */
#include "core/formats/thash.h"

#include <stdint.h>

#include <openssl/evp.h>

void thash_free(struct thash *h)
{
    if (h == NULL)
        return;
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

enum err_code thash_md_new(struct thash_md **out, struct err *e)
{
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);

    *out = (struct thash_md *)md;
    if (md == NULL)
        return err_set(e, ERR_INTERNAL, "sha256: EVP_MD_fetch failed");
    return ERR_OK;
}

void thash_md_free(struct thash_md *md)
{
    EVP_MD_free((EVP_MD *)md);
}

enum err_code thash_init(struct thash *h, struct err *e)
{
    return thash_init_md(h, NULL, e);
}

enum err_code thash_init_md(struct thash *h, const struct thash_md *md, struct err *e)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    h->ctx = NULL;
    if (ctx == NULL)
        return err_set(e, ERR_NOMEM, "sha256: out of memory for a digest context");
    if (EVP_DigestInit_ex(ctx, md != NULL ? (const EVP_MD *)md : EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return err_set(e, ERR_INTERNAL, "sha256: EVP_DigestInit_ex failed");
    }
    h->ctx = ctx;
    return ERR_OK;
}

enum err_code thash_update(struct thash *h, const void *data, size_t len, struct err *e)
{
    ERR_ASSERT(h->ctx != NULL);
    if (len == 0)
        return ERR_OK;
    if (EVP_DigestUpdate(h->ctx, data, len) != 1)
        return err_set(e, ERR_INTERNAL, "sha256: EVP_DigestUpdate failed");
    return ERR_OK;
}

enum err_code thash_final(struct thash *h, unsigned char digest[THASH_DIGEST_LEN], struct err *e)
{
    enum err_code rc = ERR_OK;
    unsigned int n = 0;

    ERR_ASSERT(h->ctx != NULL);
    if (EVP_DigestFinal_ex(h->ctx, digest, &n) != 1 || n != THASH_DIGEST_LEN)
        rc = err_set(e, ERR_INTERNAL, "sha256: EVP_DigestFinal_ex failed");
    thash_free(h);
    return rc;
}

int thash_hex_ok(const char *s)
{
    size_t i;

    if (s == NULL)
        return 0;
    for (i = 0; i < THASH_HEX_LEN - 1; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return s[THASH_HEX_LEN - 1] == '\0';
}

void thash_hex(const unsigned char digest[THASH_DIGEST_LEN], char hex[THASH_HEX_LEN])
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < THASH_DIGEST_LEN; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 0xf];
    }
    hex[(size_t)2 * THASH_DIGEST_LEN] = '\0';
}

enum err_code thash_bytes(const void *data, size_t len, char hex[THASH_HEX_LEN], struct err *e)
{
    static const unsigned char empty = 0;
    unsigned char digest[THASH_DIGEST_LEN];
    unsigned int n = 0;

    hex[0] = '\0';
    if (EVP_Digest(len > 0 ? data : &empty, len, digest, &n, EVP_sha256(), NULL) != 1 ||
        n != THASH_DIGEST_LEN)
        return err_set(e, ERR_INTERNAL, "sha256: EVP_Digest failed");
    thash_hex(digest, hex);
    return ERR_OK;
}

enum err_code thash_tensor(const struct ckpt *c, size_t i, struct ckpt_buf *buf,
                           char hex[THASH_HEX_LEN], struct err *e)
{
    const struct ckpt_tensor *t = ckpt_tensor_at(c, i);
    const void *data = NULL;
    enum err_code rc;

    hex[0] = '\0';
    if (t->nbytes > SIZE_MAX)
        return err_setc(e, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "tensor '%s': too large to hash",
                        t->name);
    rc = ckpt_tensor_read(c, i, buf, &data, e);
    if (rc)
        return rc;
    rc = thash_bytes(data, (size_t)t->nbytes, hex, e);
    if (rc)
        err_prefix(e, t->name);
    return rc;
}
