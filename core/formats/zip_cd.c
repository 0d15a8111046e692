/* zip_cd.c -- locating a zip's central directory: the end-of-central-directory
 * record in the last 64 KiB + 22 bytes of the file, the ZIP64 locator and end
 * record, and the checks that the directory is one disk and inside the file
 * (docs/checkpoint-formats.md, PyTorch zip files). See zip.h and zip_int.h.
 * Ownership: the end bytes are read into a buffer freed before returning.
 * Stateless: thread-safe.
 */
#include "core/formats/zip.h"

#include <stdlib.h>
#include <string.h>

#include "core/formats/zip_int.h"

#define ZIP_EOCD_LEN   22
#define ZIP_LOC64_LEN  20
#define ZIP_EOCD64_LEN 56
#define ZIP_TAIL_MAX   (ZIP_LOC64_LEN + ZIP_EOCD_LEN + 0xFFFF) /* locator, end, comment */

/* The zip64 end record at `z64` (from the locator) into `cd`. */
static enum err_code zip_read_eocd64(const struct rfile *f, uint64_t z64, struct zip_cd *cd,
                                     struct err *e)
{
    unsigned char p[ZIP_EOCD64_LEN];
    enum err_code rc;

    if (z64 > f->size || f->size - z64 < ZIP_EOCD64_LEN)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "zip64 locator points at no zip64 end record (offset %llu)",
                        (unsigned long long)z64);
    rc = rfile_read(f, z64, ZIP_EOCD64_LEN, p, e);
    if (rc)
        return rc;
    if (memcmp(p, "PK\6\6", 4) != 0)
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "zip64 locator points at no zip64 end record (offset %llu)",
                        (unsigned long long)z64);
    if (zip__u32(p + 16) != 0 || zip__u32(p + 20) != 0 || zip__u64(p + 24) != zip__u64(p + 32))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP, "multi-disk zip64 archive");
    cd->n_entries = zip__u64(p + 32);
    cd->size = zip__u64(p + 40);
    cd->offset = zip__u64(p + 48);
    return ERR_OK;
}

/* The end record in the last bytes `tail` (`n` of them, ending the file). */
static enum err_code zip_find_cd_in(const struct rfile *f, const unsigned char *tail, uint64_t n,
                                    struct zip_cd *cd, struct err *e)
{
    uint64_t pos, lo, len = f->size;
    const unsigned char *p;
    int found = 0;

    lo = n - ZIP_EOCD_LEN > 0xFFFF ? n - ZIP_EOCD_LEN - 0xFFFF : 0;
    for (pos = n - ZIP_EOCD_LEN;; pos--) {
        if (memcmp(tail + pos, "PK\5\6", 4) == 0 &&
            pos + ZIP_EOCD_LEN + zip__u16(tail + pos + 20) == n) {
            found = 1;
            break;
        }
        if (pos == lo)
            break;
    }
    if (!found)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                        "no zip end-of-central-directory record (file cut short?)");
    p = tail + pos;
    if (zip__u16(p + 4) != 0 || zip__u16(p + 6) != 0 || zip__u16(p + 8) != zip__u16(p + 10))
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "multi-disk zip archives are not supported");
    cd->n_entries = zip__u16(p + 10);
    cd->size = zip__u32(p + 12);
    cd->offset = zip__u32(p + 16);
    if (pos >= ZIP_LOC64_LEN && memcmp(p - ZIP_LOC64_LEN, "PK\6\7", 4) == 0) {
        enum err_code rc = zip_read_eocd64(f, zip__u64(p - ZIP_LOC64_LEN + 8), cd, e);
        if (rc)
            return rc;
    } else if (cd->size == ZIP_SAT32 || cd->offset == ZIP_SAT32) {
        /* A count of 0xFFFF alone is a real count: 65 535 members need no zip64
         * record (Python writes them so); the entries below must all be there. */
        return err_setc(e, ERR_FORMAT, ERR_CAT_INVALID_ZIP,
                        "zip64 sentinel values without a zip64 locator");
    }
    if (cd->offset > len || cd->size > len - cd->offset)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                        "central directory (offset %llu, %llu bytes) runs past the end (%llu)",
                        (unsigned long long)cd->offset, (unsigned long long)cd->size,
                        (unsigned long long)len);
    return ERR_OK;
}

/* Where the central directory is, from the end records. */
enum err_code zip__find_cd(const struct rfile *f, struct zip_cd *cd, struct err *e)
{
    uint64_t len = f->size, n = len < ZIP_TAIL_MAX ? len : ZIP_TAIL_MAX;
    unsigned char *tail = NULL;
    enum err_code rc;

    if (len < ZIP_EOCD_LEN)
        return err_setc(e, ERR_FORMAT, ERR_CAT_TRUNCATED,
                        "%llu bytes: too short for a zip end record", (unsigned long long)len);
    tail = calloc(1, (size_t)n);
    if (tail == NULL)
        return err_set(e, ERR_NOMEM, "out of memory reading the zip end record");
    rc = rfile_read(f, len - n, n, tail, e);
    if (rc == ERR_OK)
        rc = zip_find_cd_in(f, tail, n, cd, e);
    free(tail);
    return rc;
}
