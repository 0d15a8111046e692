/* peft.c -- PEFT LoRA adapters: not read yet (the loader is being written). */
#include "core/formats/peft.h"

#include "core/formats/ckpt_int.h"

enum err_code peft__ckpt_load(struct ckpt *c, const char *path, struct err *e)
{
    (void)c;
    return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                    "%s: PEFT LoRA adapters are not read yet", path);
}

enum err_code peft_merge_open(const char *adapter, const char *base, enum ckpt_format base_format,
                              const struct ckpt_limits *limits, struct ckpt **out, struct err *e)
{
    (void)base;
    (void)base_format;
    (void)limits;
    *out = NULL;
    return err_setc(e, ERR_FORMAT, ERR_CAT_UNSUPPORTED_FORMAT,
                    "%s: merging LoRA adapters is not implemented yet", adapter);
}
