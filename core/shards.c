/* shards.c -- placeholder until the reader lands (replaced by its implementation). */
#include "core/ckpt_int.h"

enum err_code shards__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    (void)c;
    return err_setc(e, ERR_FORMAT, "unsupported_format", "%s: reader not built yet", path);
}
