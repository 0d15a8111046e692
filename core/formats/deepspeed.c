/* deepspeed.c -- DeepSpeed folders: not read yet (the loader is being written). */
#include "core/formats/ckpt_int.h"

enum err_code ds__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    (void)c;
    return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT, "%s: DeepSpeed folders are not read yet", path);
}
